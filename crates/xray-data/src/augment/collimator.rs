//! Collimator simulation: add a shuttered border to an uncollimated image and label it
//! [`crate::IGNORE_LABEL`] (255).

use rand::Rng;
use serde::{Deserialize, Serialize};

use super::{check_same_size, uniform, value_range, Transform};
use crate::synth::collimation::{sample_field, transmission, CollimationConfig, FieldPolygon};
use crate::{DataError, Mask, Radiograph, Result, IGNORE_LABEL};

/// Draws a rotated rectangular field (at least one blade cutting, see
/// [`CollimationConfig`]); outside it the image falls to `lo + leakage · (v − lo)` through a
/// soft penumbra, where `lo` is the image minimum (zero signal for linear images), and the
/// mask becomes 255.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CollimatorSim {
    /// Field geometry, penumbra and leakage ranges.
    pub collimation: CollimationConfig,
}

impl CollimatorSim {
    /// Apply a given field (for tests and callers that draw their own geometry): the image
    /// outside it falls towards its minimum (to `min + leakage · (v − min)`) over a logistic
    /// edge whose 10–90 % width is `penumbra` pixels, and the mask there becomes
    /// [`IGNORE_LABEL`].
    ///
    /// # Errors
    /// [`DataError::InvalidParameter`] for an image and mask of different sizes, a penumbra that is negative or not finite, a
    /// leakage outside `[0, 1]` (or NaN), or a field whose angle, centre or bounds are not
    /// finite.
    ///
    /// # Examples
    /// ```
    /// use xray_data::augment::CollimatorSim;
    /// use xray_data::synth::FieldPolygon;
    /// use xray_data::{Mask, Radiograph, IGNORE_LABEL};
    /// // The left half of a 4 × 1 image: x in [0, 2].
    /// let field = FieldPolygon {
    ///     vertices: vec![[0.0, 0.0], [2.0, 0.0], [2.0, 1.0], [0.0, 1.0]],
    ///     cut: [false, true, false, false],
    ///     angle_deg: 0.0,
    ///     center: [1.0, 0.5],
    ///     u_bounds: [-2.0, 1.0],
    ///     v_bounds: [-2.0, 2.0],
    /// };
    /// let mut image = Radiograph::from_raw(4, 1, vec![10.0, 110.0, 110.0, 110.0]).unwrap();
    /// let mut mask = Mask::from_raw(4, 1, vec![1, 1, 0, 0]).unwrap();
    /// // A hard edge (tiny penumbra) and 10 % leakage.
    /// CollimatorSim::default().apply_field(&mut image, &mut mask, &field, 0.01, 0.1)?;
    /// assert_eq!(mask.as_raw(), &[1, 1, IGNORE_LABEL, IGNORE_LABEL]);
    /// // Inside unchanged; outside falls to min + leakage · (v − min) = 10 + 0.1 · 100.
    /// assert_eq!(&image.as_raw()[..2], &[10.0, 110.0]);
    /// assert!(image.as_raw()[2..].iter().all(|&v| (v - 20.0).abs() < 1e-3));
    /// # Ok::<(), xray_data::DataError>(())
    /// ```
    pub fn apply_field(
        &self,
        image: &mut Radiograph,
        mask: &mut Mask,
        field: &FieldPolygon,
        penumbra: f32,
        leakage: f32,
    ) -> Result<()> {
        check_same_size(image, mask)?;
        // Checked here as `CollimationConfig::validate` checks the drawn ones: a NaN leakage
        // made every pixel NaN, an infinite penumbra dimmed the inside of the field too, and
        // a leakage outside [0, 1] brightened or inverted the border.
        if !(penumbra.is_finite() && penumbra >= 0.0) {
            return Err(DataError::InvalidParameter(format!(
                "collimator: the penumbra must be a finite width of at least 0 pixels, got \
                 {penumbra}"
            )));
        }
        if !(0.0..=1.0).contains(&leakage) {
            return Err(DataError::InvalidParameter(format!(
                "collimator: the leakage must be a fraction in [0, 1], got {leakage}"
            )));
        }
        let geometry = [
            field.angle_deg,
            field.center[0],
            field.center[1],
            field.u_bounds[0],
            field.u_bounds[1],
            field.v_bounds[0],
            field.v_bounds[1],
        ];
        if geometry.iter().any(|v| !v.is_finite()) {
            return Err(DataError::InvalidParameter(
                "collimator: the field's angle, centre and bounds must be finite".to_string(),
            ));
        }
        let dist = field.distance_map(image.width(), image.height());
        let t = transmission(&dist, penumbra, leakage);
        let (lo, _) = value_range(image);
        for ((v, &k), (m, &d)) in image.iter_mut().zip(&t).zip(mask.iter_mut().zip(&dist)) {
            *v = lo + k * (*v - lo);
            if d > 0.0 {
                *m = IGNORE_LABEL;
            }
        }
        Ok(())
    }
}

impl Transform for CollimatorSim {
    fn apply(&self, image: &mut Radiograph, mask: &mut Mask, rng: &mut dyn Rng) -> Result<()> {
        self.collimation.validate()?;
        check_same_size(image, mask)?;
        let field = sample_field(image.width(), image.height(), &self.collimation, true, rng)?;
        let size = image.width().min(image.height()) as f32;
        let pen = uniform(rng, self.collimation.penumbra_px) * size / 256.0;
        let leak = uniform(rng, self.collimation.leakage);
        self.apply_field(image, mask, &field, pen, leak)
    }
}
