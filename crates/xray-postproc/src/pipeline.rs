//! The whole post-processing chain from one serde config: radiograph + probabilities →
//! final label map (pixels outside the collimated field → 255).

use image::GrayImage;
use serde::{Deserialize, Serialize};

use crate::cleanup::{cleanup, CleanupConfig};
use crate::collimator::{detect_collimator, Collimator, CollimatorConfig};
use crate::error::{PostprocError, Result};
use crate::probs::{Plane, ProbMap};
use crate::threshold::{apply_thresholds, ThresholdConfig};

/// Configuration of a [`Pipeline`]; every part has a default, so `{}` is a valid config.
///
/// # Class counts
///
/// The configuration is checked against each probability map's number of classes when it
/// runs. The default configuration accepts maps of **2 to 255 classes** and refuses a
/// one-class map: the soft-tissue threshold needs its class in the map
/// (`thresholds.soft_class`, 1 by default, see [`ThresholdConfig`]'s "Class counts"), and
/// labels are `u8` with 255 meaning ignore. A one-class map has nothing to decide (every
/// pixel's arg-max is class 0): a network with one sigmoid output `p` gives the two planes
/// `1 − p` and `p`. Settings that name classes narrow this further: a non-empty
/// `thresholds.min_confidence` needs one value per class, and every class an enabled
/// clean-up step names must exist ([`CleanupConfig::validate_classes`]).
///
/// Every `f32` parameter must be finite and within its documented range
/// ([`Pipeline::new`]); in JSON, a value beyond ±3.4·10³⁸ (`1e308`) reads as infinity and is
/// refused as such.
///
/// # Examples
/// ```
/// use xray_postproc::PipelineConfig;
/// let cfg: PipelineConfig = serde_json::from_str(r#"{
///     "thresholds": {"soft_threshold": 0.9, "per_category": {"hand": 0.95}},
///     "cleanup": {"bone_open_radius": 1, "bone_dilate_radius": 1, "min_component_size": [0, 30, 30]},
///     "detect_field": true
/// }"#).unwrap();
/// assert_eq!(cfg.thresholds.soft_threshold, 0.9);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PipelineConfig {
    /// How probabilities become labels.
    pub thresholds: ThresholdConfig,
    /// Clean-up of the label map.
    pub cleanup: CleanupConfig,
    /// Whether to find the collimated field and mark everything outside it 255.
    pub detect_field: bool,
    /// Parameters of the collimator detection.
    pub collimator: CollimatorConfig,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        Self {
            thresholds: ThresholdConfig::default(),
            cleanup: CleanupConfig::default(),
            detect_field: true,
            collimator: CollimatorConfig::default(),
        }
    }
}

/// What a [`Pipeline`] run gives.
#[derive(Debug, Clone)]
pub struct PipelineOutput {
    /// The final labels (`W × H`): class indices, 255 for uncertain or outside the field.
    pub labels: GrayImage,
    /// The detected field, when `detect_field` is on.
    pub field: Option<Collimator>,
}

/// Thresholds, field detection and clean-up, configured once and run per image.
///
/// With the default configuration, a probability map needs 2 to 255 classes: a one-class
/// map is refused with [`PostprocError::ClassOutOfRange`] naming `soft_class` and what to do
/// (see "Class counts" on [`PipelineConfig`]).
///
/// # Examples
/// ```
/// use xray_postproc::{Pipeline, PipelineConfig, Plane, ProbMap};
/// let (w, h) = (32, 32);
/// let img: Vec<f32> = (0..w * h).map(|i| if i % w < 8 { 5.0 } else { 900.0 }).collect();
/// let mut probs = vec![0.0f32; 3 * w * h];
/// probs[..w * h].iter_mut().for_each(|p| *p = 1.0); // everything "open beam"
/// let pipe = Pipeline::new(PipelineConfig::default()).unwrap();
/// let out = pipe.run(&Plane::new(&img, w, h).unwrap(), &ProbMap::new(&probs, 3, h, w).unwrap(), None).unwrap();
/// assert_eq!(out.labels.get_pixel(2, 10)[0], 255); // collimated
/// assert_eq!(out.labels.get_pixel(20, 10)[0], 0);
/// ```
#[derive(Debug, Clone)]
pub struct Pipeline {
    cfg: PipelineConfig,
}

impl Pipeline {
    /// Validates and wraps a config (class-count checks happen per run, see "Class counts"
    /// on [`PipelineConfig`]).
    ///
    /// # Errors
    /// [`PostprocError::OutOfRange`] naming the parameter as in the JSON config (e.g.
    /// `thresholds.soft_threshold`, `collimator.max_angle_deg`): thresholds outside
    /// `[0, 1]`, other parameters outside their ranges, and any NaN or infinite value (which
    /// is what a JSON value beyond the `f32` range, such as `1e308`, reads as). Clean-up
    /// classes of 255 ([`CleanupConfig::validate`](crate::CleanupConfig::validate)).
    /// [`PostprocError::Config`] for two `thresholds.per_category` keys that differ only in
    /// case.
    ///
    /// # Examples
    /// ```
    /// use xray_postproc::{Pipeline, PipelineConfig, PostprocError};
    /// let mut cfg = PipelineConfig::default();
    /// cfg.thresholds.soft_threshold = 0.8;
    /// assert_eq!(Pipeline::new(cfg.clone())?.config().thresholds.soft_threshold, 0.8);
    ///
    /// // Parameters are named as in the JSON config.
    /// cfg.thresholds.soft_threshold = 1.5;
    /// let e = Pipeline::new(cfg.clone()).unwrap_err();
    /// assert!(matches!(e, PostprocError::OutOfRange { ref name, .. }
    ///     if name == "thresholds.soft_threshold"));
    /// cfg.thresholds.soft_threshold = 0.8;
    /// cfg.collimator.max_angle_deg = f32::NAN;
    /// let e = Pipeline::new(cfg).unwrap_err();
    /// assert!(matches!(e, PostprocError::OutOfRange { ref name, .. }
    ///     if name == "collimator.max_angle_deg"));
    /// # Ok::<(), PostprocError>(())
    /// ```
    pub fn new(cfg: PipelineConfig) -> Result<Self> {
        crate::probs::check_unit("thresholds.soft_threshold", cfg.thresholds.soft_threshold)?;
        for (k, &v) in &cfg.thresholds.per_category {
            crate::probs::check_unit(&format!("thresholds.per_category[{k:?}]"), v)?;
        }
        cfg.thresholds.check_category_keys()?;
        for (c, &v) in cfg.thresholds.min_confidence.iter().enumerate() {
            crate::probs::check_unit(&format!("thresholds.min_confidence[{c}]"), v)?;
        }
        cfg.cleanup.validate()?;
        cfg.collimator
            .validate()
            .map_err(|e| e.renamed(|name| format!("collimator.{name}")))?;
        Ok(Self { cfg })
    }

    /// Parses a JSON config and validates it.
    ///
    /// # Errors
    /// [`PostprocError::Config`] for malformed JSON or unknown fields, else as [`Pipeline::new`].
    ///
    /// # Examples
    /// ```
    /// use xray_postproc::{Pipeline, PipelineConfig, PostprocError};
    /// // Every part has a default.
    /// assert_eq!(Pipeline::from_json("{}")?.config(), &PipelineConfig::default());
    ///
    /// let e = Pipeline::from_json(r#"{"detect_feild": false}"#).unwrap_err();
    /// assert!(matches!(e, PostprocError::Config(_)), "{e}"); // unknown field
    /// let e = Pipeline::from_json(r#"{"thresholds": {"soft_threshold": -0.1}}"#).unwrap_err();
    /// assert!(matches!(e, PostprocError::OutOfRange { .. }), "{e}");
    /// # Ok::<(), PostprocError>(())
    /// ```
    pub fn from_json(json: &str) -> Result<Self> {
        let cfg: PipelineConfig =
            serde_json::from_str(json).map_err(|e| PostprocError::Config(e.to_string()))?;
        Self::new(cfg)
    }

    /// The configuration in force.
    ///
    /// # Examples
    /// ```
    /// use xray_postproc::Pipeline;
    /// let pipe = Pipeline::from_json(r#"{"detect_field": false}"#)?;
    /// assert!(!pipe.config().detect_field);
    /// assert_eq!(pipe.config().thresholds.soft_class, 1); // the default
    /// # Ok::<(), xray_postproc::PostprocError>(())
    /// ```
    pub fn config(&self) -> &PipelineConfig {
        &self.cfg
    }

    /// Runs the chain: thresholds → field detection (outside → 255) → clean-up.
    ///
    /// `category` picks a per-category soft-tissue threshold (e.g. a body part).
    ///
    /// # Errors
    /// Image and probability map of different sizes, or a config that does not fit the
    /// map's class count (with the default config, a one-class map). Both are checked before
    /// the field is detected.
    ///
    /// # Examples
    /// ```
    /// # fn main() -> Result<(), xray_postproc::PostprocError> {
    /// use xray_postproc::{Pipeline, Plane, ProbMap};
    /// let pipe = Pipeline::from_json(
    ///     r#"{"thresholds": {"soft_threshold": 0.6, "per_category": {"hand": 0.9}},
    ///         "detect_field": false}"#,
    /// )?;
    /// // 2 × 1 pixels, 3 classes: both most likely soft tissue, at 0.7.
    /// let probs = [0.2, 0.2, /* soft tissue */ 0.7, 0.7, /* bone */ 0.1, 0.1];
    /// let map = ProbMap::new(&probs, 3, 1, 2)?;
    /// let pixels = [500.0, 600.0];
    /// let image = Plane::new(&pixels, 2, 1)?;
    /// assert_eq!(pipe.run(&image, &map, None)?.labels.as_raw(), &vec![1, 1]); // 0.7 > 0.6
    /// // A hand's threshold is 0.9: the next most likely class, open beam, wins.
    /// assert_eq!(pipe.run(&image, &map, Some("hand"))?.labels.as_raw(), &vec![0, 0]);
    /// // An image of another size than the map is refused.
    /// assert!(pipe.run(&Plane::new(&pixels[..1], 1, 1)?, &map, None).is_err());
    /// # Ok(())
    /// # }
    /// ```
    pub fn run(
        &self,
        image: &Plane,
        probs: &ProbMap,
        category: Option<&str>,
    ) -> Result<PipelineOutput> {
        // Checked whether or not the field is detected: a map of another size than its
        // image is the caller's mistake either way (labels at the wrong size).
        if (image.width(), image.height()) != (probs.width(), probs.height()) {
            return Err(PostprocError::ShapeMismatch {
                what: "probability map versus image",
                expected: format!("{} x {} (the image)", image.width(), image.height()),
                found: format!("{} x {}", probs.width(), probs.height()),
            });
        }
        // Before the field detection, the slowest step: a map the config cannot label is
        // refused at once.
        self.check_classes(probs.classes())?;
        let field = if self.cfg.detect_field {
            Some(detect_collimator(image, &self.cfg.collimator)?)
        } else {
            None
        };
        self.label(probs, field, category)
    }

    /// As [`Pipeline::run`], with a field found elsewhere (or `None` for no masking); the
    /// image is not needed.
    ///
    /// # Errors
    /// A field whose edges break their rules, checked first ([`Collimator::validate`]: a NaN
    /// or infinite line coefficient, a normal that is not a unit vector, ...), as
    /// [`PostprocError::OutOfRange`] naming the edge and its field, e.g.
    /// `field.edges[1].line.c (right edge)` (or `field.width` for a zero size), or with two
    /// edges on one side, as [`PostprocError::DuplicateEdge`]; a field of another size than the map, or a
    /// config that does not fit the map's class count ([`ThresholdConfig::validate`],
    /// [`CleanupConfig::validate_classes`](crate::CleanupConfig::validate_classes)).
    ///
    /// # Examples
    /// ```
    /// # fn main() -> Result<(), xray_postproc::PostprocError> {
    /// use xray_postproc::{Collimator, FieldEdge, Line, Pipeline, PipelineConfig, ProbMap, Side};
    /// // 4 × 1 pixels, 3 classes, all open beam.
    /// let mut probs = vec![0.0f32; 3 * 4];
    /// probs[..4].fill(1.0);
    /// let map = ProbMap::new(&probs, 3, 1, 4)?;
    /// // A field found elsewhere: collimated left of x = 1.5.
    /// let left = FieldEdge {
    ///     side: Side::Left,
    ///     line: Line { nx: 1.0, ny: 0.0, c: 1.5 },
    ///     contrast: 1.0,
    ///     support: 1.0,
    /// };
    /// let field = Collimator { width: 4, height: 1, edges: vec![left] };
    /// let pipe = Pipeline::new(PipelineConfig::default())?;
    /// let out = pipe.run_with_field(&map, Some(field), None)?;
    /// assert_eq!(out.labels.as_raw(), &vec![255, 255, 0, 0]);
    /// // Without a field nothing is masked.
    /// assert_eq!(pipe.run_with_field(&map, None, None)?.labels.as_raw(), &vec![0; 4]);
    /// # Ok(())
    /// # }
    /// ```
    pub fn run_with_field(
        &self,
        probs: &ProbMap,
        field: Option<Collimator>,
        category: Option<&str>,
    ) -> Result<PipelineOutput> {
        if let Some(f) = &field {
            f.validate()
                .map_err(|e| e.renamed(|name| format!("field.{name}")))?;
        }
        self.check_classes(probs.classes())?;
        self.label(probs, field, category)
    }

    /// Thresholds, masking by `field` and clean-up, once the class counts have been checked
    /// ([`Pipeline::run`] checks them before detecting the field, [`Pipeline::run_with_field`]
    /// with the field it was given).
    fn label(
        &self,
        probs: &ProbMap,
        field: Option<Collimator>,
        category: Option<&str>,
    ) -> Result<PipelineOutput> {
        let mut labels = apply_thresholds(probs, &self.cfg.thresholds, category)?;
        if let Some(f) = &field {
            f.mask_labels(&mut labels)?;
        }
        cleanup(&mut labels, &self.cfg.cleanup)?;
        Ok(PipelineOutput { labels, field })
    }

    /// Whether the config fits a map of `classes` classes: the thresholds' classes (a
    /// one-class map has no `soft_class` 1) and those the enabled clean-up steps name.
    fn check_classes(&self, classes: usize) -> Result<()> {
        self.cfg.thresholds.validate(classes)?;
        self.cfg.cleanup.validate_classes(classes)
    }
}
