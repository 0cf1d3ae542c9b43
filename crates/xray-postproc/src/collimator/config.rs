//! The parameters of [`detect_collimator`]: [`CollimatorConfig`], its defaults and
//! validation, and [`InputScale`].
//!
//! [`detect_collimator`]: super::detect_collimator

use serde::{Deserialize, Serialize};

use crate::error::{PostprocError, Result};

/// Parameters of [`detect_collimator`]. Contrast-like values are in units of the working
/// image's range (its 0.5–99.5 % spread after log compression), so they do not depend on
/// the input's scale.
///
/// [`detect_collimator`]: super::detect_collimator
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CollimatorConfig {
    /// Longest side of the working copy in pixels (≥ 32).
    pub working_size: usize,
    /// Log-compress the input before searching (recommended for both linear and log data).
    pub log_compress: bool,
    /// Gaussian smoothing of the working copy, in working pixels (0..=8).
    pub smoothing_sigma: f32,
    /// Largest rotation of an edge from its image side, degrees (0..=45).
    pub max_angle_deg: f32,
    /// Least contrast across an edge (0..1).
    pub min_contrast: f32,
    /// Least share of the edge's visible length showing that contrast (0..1).
    pub min_support: f32,
    /// Largest rise, on the way from just outside an edge to the border, above the level just
    /// outside, as a share of the (linear) contrast across the edge (0..1).
    pub max_outside_spread: f32,
    /// Least share of the edge's counted length along which the way to the border stays
    /// that dark (0..1).
    pub min_dark_beyond: f32,
    /// Largest share of the band between an edge and the border that may be that bright
    /// (scatter glow) (0..1).
    pub max_bright_share: f32,
    /// Largest ratio of the (linear, range-normalised) level just outside an edge to the
    /// level just inside (0..1).
    pub max_outside_ratio: f32,
    /// Largest fall, within a few working pixels beyond the level just outside an edge, as a
    /// share of the contrast across the edge, on linear input (0..1). A collimated band is
    /// flat there; beyond a skin line the tissue keeps thickening (an arm at the side of a
    /// chest, a thigh), so the level keeps falling. An edge is rejected when the fall
    /// exceeds this on most of its contrasted length. Not applied to log-processed input,
    /// where the anatomy seen through the collimator keeps its full contrast.
    pub max_outside_fall: f32,
    /// Largest level just outside an edge, as a share of the image's range (its 0.5–99.5 %
    /// spread), on linear input (0..1). Behind a blade only leakage (a few per cent) and
    /// scatter arrive; the strip of arm between a skin line and the image border passes a
    /// fifth of the beam or more. Not applied to log-processed input.
    pub max_outside_level: f32,
    /// Least share of the edge's contrasted length along which the way from the edge to the
    /// border stays clearly darker than the field just inside (0..1): rejects steps whose
    /// "outside" opens onto brighter field again (a skin line, the far side of a bone).
    pub min_dark_rays: f32,
    /// Least share of the edge's contrasted length whose steepest step lies on one straight
    /// line, within about a working pixel (0..1): a collimator blade is straight, anatomy
    /// (a diaphragm, a skin line) curves.
    pub min_straightness: f32,
    /// Largest share of the image one collimated band may cover (0..1): the field is centred
    /// on the anatomy, so a "band" holding most of the image is the field itself, and one
    /// holding two fifths of it (the default, 0.4) is more often dark anatomy (the thick side
    /// of a hip beyond a line along the thigh) than a blade. Raise it for small off-centre
    /// fields.
    pub max_band_fraction: f32,
    /// Least visible length of an edge, as a share of the image side it bounds (0..1).
    pub min_length_fraction: f32,
    /// Refine edges to sub-pixel accuracy on the full-resolution image.
    pub refine: bool,
    /// Whether the input values are linear in the exposure or log-processed; `auto` judges
    /// it from the image's noise, and misjudges about 2 % of the synthetic phantoms, so set it
    /// when the data's scale is known (a DICOM file's `PixelIntensityRelationship` tells it:
    /// [`InputScale::from_dicom`]). The sub-pixel refinement and the linear-only tests
    /// (`max_outside_fall`, `max_outside_level`) depend on it.
    pub input_scale: InputScale,
    /// Largest difference between the rotations of two edges of one field, in degrees
    /// (0..=45), or `None` to judge every side on its own. A collimator's blades form a
    /// rectangle, so every edge of its field is rotated alike; a candidate rotated otherwise
    /// is anatomy (the skin line of an arm cutting a corner of a chest image). The rotation
    /// that the sides' best consistent candidates support most (summed scores) is kept, and
    /// each side takes its best candidate within this much of it. The search runs in 1°
    /// steps, and true edges of one field were found up to 3° apart. The later looks at
    /// sides left empty (the dark end, the relaxed look at log bands, the step along the
    /// found edges' rotation), the look for a lone blade when nothing was found and the check
    /// of lines alone at the field's rotation (a weak step over a narrow strip is an arm
    /// beside a chest) run only with a spread (docs/postprocessing.md).
    pub rotation_spread_deg: Option<f32>,
    /// For log-processed input: the assumed exposure ratio between the field and the
    /// collimated band, in e-folds (3 ≈ a band at 5 % of the field, leakage plus scatter),
    /// used to undo the log across an edge before taking its half level (0.5..=10).
    pub log_contrast: f32,
}

/// How an image's values relate to the exposure, for [`CollimatorConfig::input_scale`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum InputScale {
    /// Judge from the image: quantum noise grows with linear values, shrinks with log ones.
    Auto,
    /// Values proportional to the exposure (DR "for processing" style).
    Linear,
    /// Values proportional to the logarithm of the exposure (CR, "for presentation").
    Log,
}

impl InputScale {
    /// The scale a DICOM `PixelIntensityRelationship` (0028,1040) value names: `LIN` linear,
    /// `LOG` log; `None` for `DISP` (values mapped for display, no known relation to the
    /// exposure) and anything else, which leave [`InputScale::Auto`] to judge. Case and
    /// surrounding blanks do not matter. With `xray-data`, whose
    /// `IntensityRelationship::as_dicom` gives the code the file holds:
    /// `info.intensity_relationship.and_then(|r| InputScale::from_dicom(r.as_dicom()))`.
    ///
    /// # Examples
    /// ```
    /// use xray_postproc::{CollimatorConfig, InputScale};
    /// assert_eq!(InputScale::from_dicom("LOG"), Some(InputScale::Log));
    /// assert_eq!(InputScale::from_dicom(" lin "), Some(InputScale::Linear));
    /// assert_eq!(InputScale::from_dicom("DISP"), None);
    /// // A DX file says LOG: tell the collimator search instead of letting it judge.
    /// let mut cfg = CollimatorConfig::default();
    /// if let Some(scale) = InputScale::from_dicom("LOG") {
    ///     cfg.input_scale = scale;
    /// }
    /// assert_eq!(cfg.input_scale, InputScale::Log);
    /// ```
    pub fn from_dicom(pixel_intensity_relationship: &str) -> Option<InputScale> {
        let code = pixel_intensity_relationship.trim();
        if code.eq_ignore_ascii_case("LIN") {
            Some(InputScale::Linear)
        } else if code.eq_ignore_ascii_case("LOG") {
            Some(InputScale::Log)
        } else {
            None
        }
    }
}

impl Default for CollimatorConfig {
    fn default() -> Self {
        Self {
            working_size: 256,
            log_compress: true,
            smoothing_sigma: 1.0,
            max_angle_deg: 30.0,
            min_contrast: 0.12,
            min_support: 0.6,
            max_outside_spread: 0.35,
            min_dark_beyond: 0.5,
            max_bright_share: 0.25,
            max_outside_ratio: 0.7,
            max_outside_fall: 0.2,
            max_outside_level: 0.15,
            min_dark_rays: 0.8,
            min_straightness: 0.8,
            max_band_fraction: 0.4,
            min_length_fraction: 0.03,
            refine: true,
            input_scale: InputScale::Auto,
            rotation_spread_deg: Some(4.0),
            log_contrast: 3.0,
        }
    }
}

impl CollimatorConfig {
    /// Checks every parameter's range; NaN and infinities are refused (in JSON, a value
    /// beyond the `f32` range, such as `1e308`, reads as infinity). Every `f32` parameter has
    /// a bounded range; `rotation_spread_deg` may be `null` (no spread test), not infinite.
    ///
    /// # Errors
    /// [`PostprocError::OutOfRange`] naming the parameter (as in the JSON config; a
    /// [`Pipeline`](crate::Pipeline) prefixes it with `collimator.`).
    ///
    /// # Examples
    /// ```
    /// use xray_postproc::{CollimatorConfig, PostprocError};
    /// assert!(CollimatorConfig::default().validate().is_ok());
    ///
    /// let steep = CollimatorConfig { max_angle_deg: 60.0, ..Default::default() };
    /// let e = steep.validate().unwrap_err();
    /// assert!(matches!(e, PostprocError::OutOfRange { ref name, .. } if name == "max_angle_deg"));
    ///
    /// // No spread test is allowed; an infinite spread is not.
    /// let free = CollimatorConfig { rotation_spread_deg: None, ..Default::default() };
    /// assert!(free.validate().is_ok());
    /// let inf = CollimatorConfig { rotation_spread_deg: Some(f32::INFINITY), ..Default::default() };
    /// assert!(inf.validate().is_err());
    /// ```
    pub fn validate(&self) -> Result<()> {
        let range = |name: &str, v: f32, lo: f32, hi: f32, expected: &'static str| {
            if v.is_finite() && v >= lo && v <= hi {
                Ok(())
            } else {
                Err(PostprocError::OutOfRange {
                    name: name.to_string(),
                    value: v as f64,
                    expected,
                })
            }
        };
        if self.working_size < 32 || self.working_size > 4096 {
            return Err(PostprocError::OutOfRange {
                name: "working_size".into(),
                value: self.working_size as f64,
                expected: "32..=4096 pixels",
            });
        }
        range(
            "smoothing_sigma",
            self.smoothing_sigma,
            0.0,
            8.0,
            "0..=8 working pixels",
        )?;
        range(
            "max_angle_deg",
            self.max_angle_deg,
            0.0,
            45.0,
            "0..=45 degrees",
        )?;
        range("min_contrast", self.min_contrast, 0.0, 1.0, "[0, 1]")?;
        range("min_support", self.min_support, 0.0, 1.0, "[0, 1]")?;
        range(
            "max_outside_ratio",
            self.max_outside_ratio,
            0.0,
            1.0,
            "[0, 1]",
        )?;
        range("min_dark_beyond", self.min_dark_beyond, 0.0, 1.0, "[0, 1]")?;
        range(
            "max_bright_share",
            self.max_bright_share,
            0.0,
            1.0,
            "[0, 1]",
        )?;
        range(
            "max_outside_spread",
            self.max_outside_spread,
            0.0,
            1.0,
            "[0, 1]",
        )?;
        range(
            "log_contrast",
            self.log_contrast,
            0.5,
            10.0,
            "0.5..=10 e-folds",
        )?;
        range("min_dark_rays", self.min_dark_rays, 0.0, 1.0, "[0, 1]")?;
        range(
            "max_outside_level",
            self.max_outside_level,
            0.0,
            1.0,
            "[0, 1]",
        )?;
        range(
            "max_outside_fall",
            self.max_outside_fall,
            0.0,
            1.0,
            "[0, 1]",
        )?;
        if let Some(spread) = self.rotation_spread_deg {
            range(
                "rotation_spread_deg",
                spread,
                0.0,
                45.0,
                "0..=45 degrees, or null",
            )?;
        }
        range(
            "min_straightness",
            self.min_straightness,
            0.0,
            1.0,
            "[0, 1]",
        )?;
        range(
            "max_band_fraction",
            self.max_band_fraction,
            0.0,
            1.0,
            "[0, 1]",
        )?;
        range(
            "min_length_fraction",
            self.min_length_fraction,
            0.0,
            1.0,
            "[0, 1]",
        )?;
        Ok(())
    }
}
