//! Collimator simulation: add a shuttered border to an uncollimated image and label it
//! [`crate::IGNORE_LABEL`] (255).

use rand::Rng;
use serde::{Deserialize, Serialize};

use super::{check_same_size, uniform, value_range, Transform};
use crate::synth::collimation::{sample_field, transmission, CollimationConfig, FieldPolygon};
use crate::{Mask, Radiograph, Result, IGNORE_LABEL};

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
    /// Apply a given field (for tests and callers that draw their own geometry).
    pub fn apply_field(
        &self,
        image: &mut Radiograph,
        mask: &mut Mask,
        field: &FieldPolygon,
        penumbra: f32,
        leakage: f32,
    ) -> Result<()> {
        check_same_size(image, mask)?;
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
