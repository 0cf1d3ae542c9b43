//! Streaming evaluation: add images one by one, then produce a [`Report`].
//!
//! What is kept between images (never the probability planes themselves):
//! - the pooled confusion matrix and one `C × C` matrix per image (per-image reduction);
//! - `n_bins + 1` top-label reliability bins and `C × (n_bins + 1)` class-wise bins;
//! - exact AUC: one `u32` per scored pixel and class (score bits + label flag, see
//!   [`crate::ExactAuc`]), i.e. `4·C` bytes per pixel; or binned AUC: `16·B·C` bytes in all;
//! - equal-mass bins (optional): one `u32` per scored pixel (top-1 confidence + correct);
//! - surface distances (optional): per class, sums over the images where they are defined,
//!   and the range of the spacings they were measured at.

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::boundary::surface_distances_with_spacing;
use crate::calibration::{equal_mass_from_keys, top1, ReliabilityBins};
use crate::confusion::ConfusionMatrix;
use crate::error::{readable_number, MetricsError, Result};
use crate::report::{
    AucSummary, Averages, BoundarySummary, EqualMassSummary, PerImageSummary, Report,
    SpacingSummary,
};
use crate::roc::{key, BinnedAuc, ExactAuc, MicroAuc};
use crate::scores::{mean_over_images, Average, ClassMetric, ZeroDivision};
use crate::spacing::{DistanceUnit, Spacing};
use crate::validate::{check_image_len, check_planes, IGNORE_LABEL};

/// How ROC AUC is accumulated.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AucMethod {
    /// Exact, ties as scikit-learn; 4 bytes per scored pixel and class.
    Exact,
    /// Equal-width histogram with `bins` bins; bounded memory, error bound reported.
    Binned {
        /// Number of bins on [0, 1]; 2..=[`MAX_BINS`](crate::MAX_BINS).
        bins: usize,
    },
    /// No AUC.
    Off,
}

/// Settings of an [`Evaluator`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EvalConfig {
    /// One name per class; its length is the number of classes.
    pub class_names: Vec<String>,
    /// Equal-width reliability bins (torchmetrics-compatible), also the equal-mass bin count;
    /// 1..=[`MAX_BINS`](crate::MAX_BINS).
    pub n_bins: usize,
    /// AUC method.
    pub auc: AucMethod,
    /// Keep top-1 confidences for equal-mass reliability bins (4 bytes per scored pixel).
    pub equal_mass: bool,
    /// Compute per-image surface distances (HD95, ASSD) per class.
    pub boundary: bool,
    /// Distance between adjacent pixel centres, rows and columns alike, for the surface
    /// distances of images added with [`Evaluator::add_image`] (1.0, the default, keeps them
    /// in pixels), in [`EvalConfig::distance_unit`]; finite and `> 0`. An image with a
    /// spacing of its own, or one that differs between rows and columns, is added with
    /// [`Evaluator::add_image_with_spacing`].
    pub pixel_spacing: f64,
    /// The unit of `pixel_spacing`. `None` (the default, and a configuration written
    /// before the field) takes it from the value, as earlier versions did: pixels for 1,
    /// millimetres otherwise; so a spacing of exactly 1 mm needs
    /// `Some(DistanceUnit::Millimetres)`. `Some(DistanceUnit::Pixels)` needs a spacing of 1.
    /// See [`EvalConfig::spacing`].
    #[serde(default)]
    pub distance_unit: Option<DistanceUnit>,
    /// Tolerance on `|Σ_c p_c − 1|` per pixel; `≥ 0`, not NaN. Infinity is accepted by
    /// design and turns the sum check off (every probability must still lie in `[0, 1]`);
    /// the check runs in `f32`, so any value beyond `f32::MAX` acts as infinity.
    pub sum_tolerance: f64,
    /// Value of ratios with a zero denominator.
    pub zero_division: ZeroDivision,
}

impl Default for EvalConfig {
    /// The project's three classes: open beam, soft tissue, bone.
    fn default() -> Self {
        Self::new(["open beam", "soft tissue", "bone"])
    }
}

impl EvalConfig {
    /// Default settings for the given class names.
    ///
    /// # Examples
    /// ```
    /// use xray_metrics::{AucMethod, EvalConfig};
    /// let cfg = EvalConfig::new(["background", "object"]);
    /// assert_eq!(cfg.class_names, ["background", "object"]);
    /// assert_eq!((cfg.n_bins, cfg.auc), (15, AucMethod::Exact));
    /// assert_eq!(EvalConfig::default().class_names, ["open beam", "soft tissue", "bone"]);
    /// ```
    pub fn new<S: Into<String>>(class_names: impl IntoIterator<Item = S>) -> Self {
        Self {
            class_names: class_names.into_iter().map(Into::into).collect(),
            n_bins: 15,
            auc: AucMethod::Exact,
            equal_mass: true,
            boundary: true,
            pixel_spacing: 1.0,
            distance_unit: None,
            sum_tolerance: crate::validate::DEFAULT_SUM_TOLERANCE,
            zero_division: ZeroDivision::Zero,
        }
    }

    /// The spacing images added with [`Evaluator::add_image`] are measured at:
    /// [`EvalConfig::pixel_spacing`] on both axes, in [`EvalConfig::distance_unit`] (when
    /// that is `None`: pixels for a spacing of 1, millimetres otherwise).
    ///
    /// # Examples
    /// ```
    /// use xray_metrics::{DistanceUnit, EvalConfig, Spacing};
    /// let mut cfg = EvalConfig::default();
    /// assert_eq!(cfg.spacing(), Spacing::PIXEL);
    /// cfg.pixel_spacing = 0.2;
    /// assert_eq!(cfg.spacing(), Spacing::mm(0.2, 0.2));
    /// // Exactly 1 mm: say so, or it reads as pixels.
    /// cfg.pixel_spacing = 1.0;
    /// cfg.distance_unit = Some(DistanceUnit::Millimetres);
    /// assert_eq!(cfg.spacing(), Spacing::mm(1.0, 1.0));
    /// ```
    pub fn spacing(&self) -> Spacing {
        let unit = self.distance_unit.unwrap_or(if self.pixel_spacing == 1.0 {
            DistanceUnit::Pixels
        } else {
            DistanceUnit::Millimetres
        });
        Spacing {
            row: self.pixel_spacing,
            column: self.pixel_spacing,
            unit,
        }
    }

    fn validate(&self) -> Result<()> {
        crate::validate::check_num_classes(self.class_names.len())?;
        if self.n_bins == 0 {
            return Err(MetricsError::InvalidConfig("n_bins must be ≥ 1".into()));
        }
        crate::validate::check_max_bins("n_bins", self.n_bins)?;
        if let AucMethod::Binned { bins } = self.auc {
            if bins < 2 {
                return Err(MetricsError::InvalidConfig(format!(
                    "binned AUC needs at least 2 bins, got {bins}"
                )));
            }
            crate::validate::check_max_bins("auc bins", bins)?;
        }
        // Infinity is allowed: it turns the sum check off (see the field's doc).
        if self.sum_tolerance.is_nan() || self.sum_tolerance < 0.0 {
            return Err(MetricsError::InvalidConfig(format!(
                "sum_tolerance must be ≥ 0 (infinity turns the sum check off), got {}",
                readable_number(self.sum_tolerance)
            )));
        }
        if !(self.pixel_spacing.is_finite() && self.pixel_spacing > 0.0) {
            return Err(MetricsError::InvalidConfig(format!(
                "pixel_spacing must be finite and > 0, got {}",
                readable_number(self.pixel_spacing)
            )));
        }
        if self.distance_unit == Some(DistanceUnit::Pixels) && self.pixel_spacing != 1.0 {
            return Err(MetricsError::InvalidConfig(format!(
                "pixel_spacing {} with distance_unit px: a pixel is 1 px; set distance_unit \
                 to the unit of the spacing (mm)",
                readable_number(self.pixel_spacing)
            )));
        }
        Ok(())
    }
}

#[derive(Clone, Debug)]
enum AucAcc {
    Exact(ExactAuc),
    Binned(BinnedAuc),
    Off,
}

/// Accumulates metrics over a dataset, image by image.
///
/// # Examples
/// ```
/// use xray_metrics::{EvalConfig, Evaluator};
/// let mut ev = Evaluator::new(EvalConfig::new(["background", "object"])).unwrap();
/// // a 2 × 2 image: labels and class-major probabilities (plane 0, then plane 1)
/// let labels = [0u8, 0, 1, 255];
/// let probs = [0.9f32, 0.7, 0.2, 0.5, 0.1, 0.3, 0.8, 0.5];
/// ev.add_image(&labels, &probs, 2, 2).unwrap();
/// let report = ev.finish().unwrap();
/// assert_eq!(report.accuracy, Some(1.0));
/// assert_eq!(report.auc.per_class[1], Some(1.0));
/// println!("{}", report.to_markdown());
/// ```
#[derive(Clone, Debug)]
pub struct Evaluator {
    cfg: EvalConfig,
    pooled: ConfusionMatrix,
    per_image: Vec<ConfusionMatrix>,
    per_image_top1: Vec<ReliabilityBins>,
    top1: ReliabilityBins,
    classwise: Vec<ReliabilityBins>,
    top1_keys: Vec<u32>,
    auc: AucAcc,
    /// Per class: (sum hd95, sum assd, sum hausdorff, images).
    boundary: Vec<(f64, f64, f64, usize)>,
    /// The spacings the surface distances were measured at (with `boundary` on).
    spacings: SpacingAcc,
    ignored: u64,
}

/// The unit and range of the spacings of the images added so far.
#[derive(Clone, Debug, Default)]
struct SpacingAcc {
    unit: Option<DistanceUnit>,
    own: usize,
    row: [f64; 2],
    column: [f64; 2],
}

impl SpacingAcc {
    /// Refuses an image `image` measured at `unit` after images in another unit.
    fn check(&self, image: usize, unit: DistanceUnit) -> Result<()> {
        match self.unit {
            Some(earlier) if earlier != unit => Err(MetricsError::MixedDistanceUnits {
                image,
                unit,
                earlier,
            }),
            _ => Ok(()),
        }
    }

    fn push(&mut self, s: Spacing, own: bool) {
        self.join(s.unit, [s.row; 2], [s.column; 2], usize::from(own));
    }

    fn merge(&mut self, other: &SpacingAcc) {
        if let Some(unit) = other.unit {
            self.join(unit, other.row, other.column, other.own);
        }
    }

    /// Widens the ranges by `row` and `column` (each smallest, largest), of images in `unit`
    /// (checked by [`SpacingAcc::check`]), `own` of them given their spacing.
    fn join(&mut self, unit: DistanceUnit, row: [f64; 2], column: [f64; 2], own: usize) {
        let first = self.unit.is_none();
        let widen = |r: [f64; 2], o: [f64; 2]| {
            if first {
                o
            } else {
                [r[0].min(o[0]), r[1].max(o[1])]
            }
        };
        self.row = widen(self.row, row);
        self.column = widen(self.column, column);
        self.unit = Some(unit);
        self.own += own;
    }

    fn summary(&self) -> Option<SpacingSummary> {
        self.unit.map(|unit| SpacingSummary {
            unit,
            images_with_own_spacing: self.own,
            row: self.row,
            column: self.column,
        })
    }
}

impl Evaluator {
    /// A new evaluator; fails on an invalid configuration.
    ///
    /// # Errors
    /// [`MetricsError::InvalidConfig`] naming the field when the class count is not in
    /// 2..=255, `n_bins` is not in 1..=[`MAX_BINS`](crate::MAX_BINS), binned AUC's `bins` is
    /// not in 2..=[`MAX_BINS`](crate::MAX_BINS), `sum_tolerance` is NaN or negative, or
    /// `pixel_spacing` is not finite and `> 0`. Nothing is allocated before the checks.
    ///
    /// # Examples
    /// ```
    /// use xray_metrics::{EvalConfig, Evaluator};
    /// let mut cfg = EvalConfig::new(["background", "object"]);
    /// cfg.pixel_spacing = 0.0;
    /// let e = Evaluator::new(cfg).unwrap_err();
    /// assert!(e.to_string().contains("pixel_spacing"), "{e}");
    /// let e = Evaluator::new(EvalConfig::new(["only class"])).unwrap_err();
    /// assert!(e.to_string().contains("num_classes"), "{e}");
    /// ```
    pub fn new(config: EvalConfig) -> Result<Self> {
        config.validate()?;
        let c = config.class_names.len();
        let auc = match config.auc {
            AucMethod::Exact => AucAcc::Exact(ExactAuc::new(c)?),
            AucMethod::Binned { bins } => AucAcc::Binned(BinnedAuc::new(c, bins)?),
            AucMethod::Off => AucAcc::Off,
        };
        Ok(Self {
            pooled: ConfusionMatrix::new(c)?,
            per_image: Vec::new(),
            per_image_top1: Vec::new(),
            top1: ReliabilityBins::new(config.n_bins)?,
            classwise: vec![ReliabilityBins::new(config.n_bins)?; c],
            top1_keys: Vec::new(),
            auc,
            boundary: vec![(0.0, 0.0, 0.0, 0); c],
            spacings: SpacingAcc::default(),
            ignored: 0,
            cfg: config,
        })
    }

    /// The configuration.
    ///
    /// # Examples
    /// ```
    /// # fn main() -> Result<(), xray_metrics::MetricsError> {
    /// use xray_metrics::{AucMethod, EvalConfig, Evaluator};
    /// let mut cfg = EvalConfig::new(["background", "object"]);
    /// cfg.auc = AucMethod::Binned { bins: 100 };
    /// let ev = Evaluator::new(cfg.clone())?;
    /// assert_eq!(ev.config(), &cfg);
    /// assert_eq!(ev.config().n_bins, 15); // the default
    /// # Ok(())
    /// # }
    /// ```
    pub fn config(&self) -> &EvalConfig {
        &self.cfg
    }

    /// Number of classes: the number of class names in the configuration.
    ///
    /// # Examples
    /// ```
    /// # fn main() -> Result<(), xray_metrics::MetricsError> {
    /// use xray_metrics::{EvalConfig, Evaluator};
    /// assert_eq!(Evaluator::new(EvalConfig::default())?.num_classes(), 3);
    /// assert_eq!(Evaluator::new(EvalConfig::new(["bg", "fg"]))?.num_classes(), 2);
    /// # Ok(())
    /// # }
    /// ```
    pub fn num_classes(&self) -> usize {
        self.cfg.class_names.len()
    }

    /// Images added so far (an image refused with an error does not count).
    ///
    /// # Examples
    /// ```
    /// # fn main() -> Result<(), xray_metrics::MetricsError> {
    /// use xray_metrics::{EvalConfig, Evaluator};
    /// let mut ev = Evaluator::new(EvalConfig::new(["background", "object"]))?;
    /// assert_eq!(ev.images(), 0);
    /// ev.add_image(&[0, 1], &[0.9, 0.2, 0.1, 0.8], 2, 1)?;
    /// ev.add_image(&[1], &[0.4, 0.6], 1, 1)?;
    /// assert!(ev.add_image(&[2], &[0.4, 0.6], 1, 1).is_err()); // no class 2
    /// assert_eq!(ev.images(), 2);
    /// # Ok(())
    /// # }
    /// ```
    pub fn images(&self) -> usize {
        self.per_image.len()
    }

    /// Pooled confusion matrix so far: every scored pixel of every image added.
    ///
    /// # Examples
    /// ```
    /// # fn main() -> Result<(), xray_metrics::MetricsError> {
    /// use xray_metrics::{EvalConfig, Evaluator};
    /// let mut ev = Evaluator::new(EvalConfig::new(["background", "object"]))?;
    /// ev.add_image(&[0, 1], &[0.9, 0.6, 0.1, 0.4], 2, 1)?; // pixel 1 predicted as class 0
    /// ev.add_image(&[1, 255], &[0.3, 0.5, 0.7, 0.5], 2, 1)?; // pixel 1 ignored
    /// assert_eq!(ev.confusion().rows(), [[1, 0], [1, 1]]);
    /// assert_eq!(ev.confusion().total(), 3);
    /// # Ok(())
    /// # }
    /// ```
    pub fn confusion(&self) -> &ConfusionMatrix {
        &self.pooled
    }

    /// Per-image confusion matrices so far, in the order added.
    ///
    /// # Examples
    /// ```
    /// # fn main() -> Result<(), xray_metrics::MetricsError> {
    /// use xray_metrics::{EvalConfig, Evaluator};
    /// let mut ev = Evaluator::new(EvalConfig::new(["background", "object"]))?;
    /// ev.add_image(&[0, 1], &[0.9, 0.6, 0.1, 0.4], 2, 1)?;
    /// ev.add_image(&[1, 255], &[0.3, 0.5, 0.7, 0.5], 2, 1)?;
    /// let per_image = ev.per_image_confusion();
    /// assert_eq!(per_image.len(), 2);
    /// assert_eq!(per_image[0].rows(), [[1, 0], [1, 0]]);
    /// assert_eq!(per_image[1].rows(), [[0, 0], [0, 1]]);
    /// // Summed, they give the pooled matrix.
    /// let mut sum = per_image[0].clone();
    /// sum.merge(&per_image[1])?;
    /// assert_eq!(&sum, ev.confusion());
    /// # Ok(())
    /// # }
    /// ```
    pub fn per_image_confusion(&self) -> &[ConfusionMatrix] {
        &self.per_image
    }

    /// Per-image top-label reliability bins so far (the report's bins), in the order added:
    /// merged over any subset of images they give that subset's calibration error.
    ///
    /// # Examples
    /// ```
    /// # fn main() -> Result<(), xray_metrics::MetricsError> {
    /// use xray_metrics::{EvalConfig, Evaluator};
    /// let mut ev = Evaluator::new(EvalConfig::new(["background", "object"]))?;
    /// ev.add_image(&[0], &[0.75, 0.25], 1, 1)?; // right at confidence 0.75: gap 0.25
    /// ev.add_image(&[1], &[0.75, 0.25], 1, 1)?; // wrong at confidence 0.75: gap 0.75
    /// let bins = ev.per_image_calibration();
    /// assert_eq!(bins[0].reliability().ece(), 0.25);
    /// assert_eq!(bins[1].reliability().ece(), 0.75);
    /// let mut both = bins[0].clone();
    /// both.merge(&bins[1])?; // one bin: confidence 0.75, accuracy 1/2
    /// assert_eq!(both.reliability().ece(), 0.25);
    /// assert_eq!(ev.finish()?.ece, 0.25);
    /// # Ok(())
    /// # }
    /// ```
    pub fn per_image_calibration(&self) -> &[ReliabilityBins] {
        &self.per_image_top1
    }

    /// Adds one image: `labels` (`width × height`, row-major, 255 = ignore) and its softmax
    /// probabilities, class-major (`C` planes of `width × height`). The prediction is the
    /// arg-max class (first one on ties).
    ///
    /// # Shapes
    /// `width`, then `height` ([image order](crate#sizes)): `labels` is `height` rows of `width`
    /// values and `probs` is class-major, `C × height × width`, sized by the same pair (image order
    /// for both, although a probability map is tensor-like elsewhere, as
    /// `xray_postproc::ProbMap::new(data, classes, height, width)`).
    ///
    /// # Errors
    /// Nothing is added when one occurs.
    /// - [`MetricsError::LengthMismatch`] when `labels` does not hold `width × height`
    ///   values (a product that overflows `usize` included), or `probs` not
    ///   `C × width × height`;
    /// - [`MetricsError::LabelOutOfRange`] for the first label ≥ C other than 255 (ignore);
    /// - [`MetricsError::InvalidProbability`] for the first pixel holding a probability that
    ///   is NaN or outside [0, 1], or [`MetricsError::ProbabilitiesNotNormalised`] for the
    ///   first whose probabilities do not sum to 1 within
    ///   [`EvalConfig::sum_tolerance`] (pixels checked in order, each pixel's values before
    ///   its sum).
    ///
    /// # Examples
    /// ```
    /// # fn main() -> Result<(), xray_metrics::MetricsError> {
    /// use xray_metrics::{EvalConfig, Evaluator, MetricsError};
    /// let mut ev = Evaluator::new(EvalConfig::new(["background", "object"]))?;
    /// // 1 × 2 pixels; pixel 1's probabilities sum to 1.2: refused, and nothing is added.
    /// let err = ev.add_image(&[0, 1], &[0.9, 0.5, 0.1, 0.7], 2, 1).unwrap_err();
    /// assert!(matches!(err, MetricsError::ProbabilitiesNotNormalised { pixel: 1, .. }));
    /// assert_eq!(ev.images(), 0);
    /// ev.add_image(&[0, 1], &[0.9, 0.3, 0.1, 0.7], 2, 1)?;
    /// assert_eq!(ev.images(), 1);
    /// assert_eq!(ev.confusion().total(), 2);
    /// # Ok(())
    /// # }
    /// ```
    pub fn add_image(
        &mut self,
        labels: &[u8],
        probs: &[f32],
        width: usize,
        height: usize,
    ) -> Result<()> {
        self.add(labels, probs, width, height, self.cfg.spacing(), false)
    }

    /// As [`Evaluator::add_image`], with the image's own `spacing` for its surface distances
    /// in place of the configuration's: a DICOM file's `PixelSpacing`, which may differ from
    /// image to image and between rows and columns (see [`surface_distances_with_spacing`]).
    ///
    /// Every image's distances must be in one unit, so that their means are: the report's
    /// [`Report::distance_unit`]. The range of the spacings is recorded
    /// ([`Report::spacing`]).
    ///
    /// # Shapes
    /// As [`Evaluator::add_image`]; `spacing` gives rows first, as DICOM does ([`Spacing`]).
    ///
    /// # Errors
    /// As [`Evaluator::add_image`] (nothing is added when one occurs), and, with
    /// [`EvalConfig::boundary`] on:
    /// - [`MetricsError::InvalidConfig`] for a spacing that [`Spacing::validate`] refuses;
    /// - [`MetricsError::MixedDistanceUnits`] when an earlier image (one added with
    ///   [`Evaluator::add_image`] included) was measured in another unit.
    ///
    /// # Examples
    /// ```
    /// # fn main() -> Result<(), xray_metrics::MetricsError> {
    /// use xray_metrics::{DistanceUnit, EvalConfig, Evaluator, MetricsError, Spacing};
    /// let mut ev = Evaluator::new(EvalConfig::new(["background", "object"]))?;
    /// // 1 × 3 pixels: the object, truly at column 0, predicted at column 2.
    /// let probs = [0.9, 0.9, 0.1, /* object */ 0.1, 0.1, 0.9];
    /// ev.add_image_with_spacing(&[1, 0, 0], &probs, 3, 1, Spacing::mm(0.5, 0.1))?;
    /// ev.add_image_with_spacing(&[1, 0, 0], &probs, 3, 1, Spacing::mm(0.5, 0.2))?;
    /// // An image in pixels after images in mm is refused, and not added.
    /// let e = ev.add_image(&[1, 0, 0], &probs, 3, 1).unwrap_err();
    /// assert!(matches!(e, MetricsError::MixedDistanceUnits { image: 2, .. }), "{e}");
    /// let report = ev.finish()?;
    /// assert_eq!(report.distance_unit(), DistanceUnit::Millimetres);
    /// // Two columns apart: 0.2 mm in the first image, 0.4 mm in the second; mean 0.3 mm.
    /// let hausdorff = report.boundary.as_ref().unwrap()[1].hausdorff.unwrap();
    /// assert!((hausdorff - 0.3).abs() < 1e-12);
    /// let spacing = report.spacing.unwrap();
    /// assert_eq!((spacing.column, spacing.images_with_own_spacing), ([0.1, 0.2], 2));
    /// # Ok(())
    /// # }
    /// ```
    pub fn add_image_with_spacing(
        &mut self,
        labels: &[u8],
        probs: &[f32],
        width: usize,
        height: usize,
        spacing: Spacing,
    ) -> Result<()> {
        self.add(labels, probs, width, height, spacing, true)
    }

    /// Adds an image measured at `spacing` (`own`: the caller's, not the configuration's).
    fn add(
        &mut self,
        labels: &[u8],
        probs: &[f32],
        width: usize,
        height: usize,
        spacing: Spacing,
        own: bool,
    ) -> Result<()> {
        let c = self.num_classes();
        check_image_len("labels", width, height, labels.len())?;
        let n = check_planes(labels, probs, c)?;
        crate::validate::first_bad_label(labels, c)?;
        let mut conf = vec![0f32; n];
        let mut pred = vec![0u8; n];
        top1(n, probs, c, self.cfg.sum_tolerance, &mut conf, &mut pred)?;
        let cm = ConfusionMatrix::from_labels(labels, &pred, c)?;
        let mut image_top1 = ReliabilityBins::new(self.cfg.n_bins)?;
        let boundary = if self.cfg.boundary {
            self.spacings.check(self.images(), spacing.unit)?;
            Some(surface_distances_with_spacing(
                labels, &pred, width, height, c, spacing,
            )?)
        } else {
            None
        };
        // All checks passed (`top1` saw every probability): update the accumulators.
        match &mut self.auc {
            AucAcc::Exact(a) => a.add_checked(labels, probs, n),
            AucAcc::Binned(a) => a.add_checked(labels, probs, n),
            AucAcc::Off => {}
        }
        for ((&l, &p), &k) in labels.iter().zip(&conf).zip(&pred) {
            if l != IGNORE_LABEL {
                image_top1.push(p, k == l);
            }
        }
        self.top1.merge(&image_top1)?;
        if self.cfg.equal_mass {
            self.top1_keys.extend(
                labels
                    .iter()
                    .zip(&conf)
                    .zip(&pred)
                    .filter(|((&l, _), _)| l != IGNORE_LABEL)
                    .map(|((&l, &p), &k)| key(p, k == l)),
            );
        }
        self.classwise
            .par_iter_mut()
            .enumerate()
            .for_each(|(k, bins)| {
                for (&l, &p) in labels.iter().zip(&probs[k * n..(k + 1) * n]) {
                    if l != IGNORE_LABEL {
                        bins.push(p, l as usize == k);
                    }
                }
            });
        if let Some(b) = boundary {
            self.spacings.push(spacing, own);
            for (acc, d) in self.boundary.iter_mut().zip(b) {
                if let Some(d) = d {
                    acc.0 += d.hd95;
                    acc.1 += d.assd;
                    acc.2 += d.hausdorff;
                    acc.3 += 1;
                }
            }
        }
        self.ignored += labels.iter().filter(|&&l| l == IGNORE_LABEL).count() as u64;
        self.pooled.merge(&cm)?;
        self.per_image.push(cm);
        self.per_image_top1.push(image_top1);
        Ok(())
    }

    /// Adds another evaluator's images (e.g. one per rayon task over a dataset).
    ///
    /// # Errors
    /// [`MetricsError::InvalidConfig`] when `other` has another configuration, or
    /// [`MetricsError::MixedDistanceUnits`] when its images' boundary distances are in
    /// another unit than this one's ([`Evaluator::add_image_with_spacing`]); nothing is added.
    ///
    /// # Examples
    /// ```
    /// # fn main() -> Result<(), xray_metrics::MetricsError> {
    /// use xray_metrics::{EvalConfig, Evaluator};
    /// let cfg = EvalConfig::new(["background", "object"]);
    /// let (mut a, mut b) = (Evaluator::new(cfg.clone())?, Evaluator::new(cfg)?);
    /// a.add_image(&[0, 1], &[0.9, 0.2, 0.1, 0.8], 2, 1)?;
    /// b.add_image(&[1, 1], &[0.6, 0.3, 0.4, 0.7], 2, 1)?; // the first pixel is missed
    /// a.merge(b)?;
    /// assert_eq!((a.images(), a.confusion().rows()), (2, vec![vec![1, 0], vec![1, 2]]));
    /// assert!(a.merge(Evaluator::new(EvalConfig::new(["a", "b"]))?).is_err());
    /// assert_eq!(a.finish()?.accuracy, Some(0.75));
    /// # Ok(())
    /// # }
    /// ```
    pub fn merge(&mut self, other: Evaluator) -> Result<()> {
        if other.cfg != self.cfg {
            return Err(MetricsError::InvalidConfig(
                "cannot merge evaluators with different configurations".into(),
            ));
        }
        if let Some(unit) = other.spacings.unit {
            self.spacings.check(self.images(), unit)?;
        }
        self.pooled.merge(&other.pooled)?;
        self.per_image.extend(other.per_image);
        self.per_image_top1.extend(other.per_image_top1);
        self.top1.merge(&other.top1)?;
        for (a, b) in self.classwise.iter_mut().zip(&other.classwise) {
            a.merge(b)?;
        }
        self.top1_keys.extend(other.top1_keys);
        match (&mut self.auc, other.auc) {
            (AucAcc::Exact(a), AucAcc::Exact(b)) => a.merge(b)?,
            (AucAcc::Binned(a), AucAcc::Binned(b)) => a.merge(&b)?,
            _ => {}
        }
        self.spacings.merge(&other.spacings);
        for (a, b) in self.boundary.iter_mut().zip(other.boundary) {
            a.0 += b.0;
            a.1 += b.1;
            a.2 += b.2;
            a.3 += b.3;
        }
        self.ignored += other.ignored;
        Ok(())
    }

    /// Computes every metric. Fails only when no pixel was scored.
    ///
    /// # Errors
    /// [`MetricsError::Empty`] when no image was added or every pixel was ignored.
    ///
    /// # Examples
    /// ```
    /// # fn main() -> Result<(), xray_metrics::MetricsError> {
    /// use xray_metrics::{EvalConfig, Evaluator, MetricsError};
    /// let mut ev = Evaluator::new(EvalConfig::new(["background", "object"]))?;
    /// ev.add_image(&[255, 255], &[0.5, 0.5, 0.5, 0.5], 2, 1)?;
    /// let e = ev.clone().finish().unwrap_err();
    /// assert!(matches!(e, MetricsError::Empty(_)), "{e}");
    /// ev.add_image(&[0, 1], &[0.9, 0.6, 0.1, 0.4], 2, 1)?; // pixel 1 predicted as class 0
    /// let report = ev.finish()?;
    /// assert_eq!((report.images, report.pixels, report.ignored_pixels), (2, 2, 2));
    /// assert_eq!(report.recall.per_class, [1.0, 0.0]);
    /// # Ok(())
    /// # }
    /// ```
    pub fn finish(self) -> Result<Report> {
        let c = self.num_classes();
        let cm = &self.pooled;
        if cm.total() == 0 {
            return Err(MetricsError::Empty(match self.per_image.len() {
                0 => "no image was added (Evaluator::add_image)".to_string(),
                1 => "1 image added, but every pixel of it is labelled 255 (ignore), or it has \
                      none"
                    .to_string(),
                n => format!(
                    "{n} images added, but every pixel of them is labelled 255 (ignore), or \
                     they have none"
                ),
            }));
        }
        let zd = self.cfg.zero_division;
        let averages = |m: ClassMetric| Averages {
            micro: cm.score(m, Average::Micro, zd).value().unwrap_or(f64::NAN),
            macro_avg: cm.score(m, Average::Macro, zd).value().unwrap_or(f64::NAN),
            weighted: cm
                .score(m, Average::Weighted, zd)
                .value()
                .unwrap_or(f64::NAN),
            per_class: cm.per_class(m, zd),
        };
        let per_class_opt = |m: ClassMetric| -> Vec<Option<f64>> {
            match mean_over_images(&self.per_image, m, Average::None, zd) {
                crate::Score::PerClass(v) => {
                    v.into_iter().map(|x| (!x.is_nan()).then_some(x)).collect()
                }
                crate::Score::Value(_) => vec![None; c],
            }
        };
        let per_image = PerImageSummary {
            images: self.per_image.len(),
            f1_macro: mean_over_images(&self.per_image, ClassMetric::F1, Average::Macro, zd)
                .value()
                .filter(|v| !v.is_nan()),
            accuracy: {
                let accs: Vec<f64> = self.per_image.iter().filter_map(|m| m.accuracy()).collect();
                (!accs.is_empty()).then(|| accs.iter().sum::<f64>() / accs.len() as f64)
            },
            dice: per_class_opt(ClassMetric::Dice),
            iou: per_class_opt(ClassMetric::Iou),
        };
        let auc_result = match self.auc {
            AucAcc::Exact(a) => Some(a.finish(MicroAuc::Compute)),
            AucAcc::Binned(a) => Some(a.finish()),
            AucAcc::Off => None,
        };
        let auc = match &auc_result {
            Some(r) => {
                let undefined = r.average(Average::Macro).err().map(|e| e.to_string());
                AucSummary {
                    macro_avg: r.average(Average::Macro).ok(),
                    weighted: r.average(Average::Weighted).ok(),
                    micro: r.micro,
                    per_class: r.per_class.iter().map(|x| x.auc).collect(),
                    method: r.method.clone(),
                    error_bound: r.error_bound(),
                    undefined,
                    curves: r.per_class.iter().map(|x| x.curve.clone()).collect(),
                }
            }
            None => AucSummary {
                macro_avg: None,
                weighted: None,
                micro: None,
                per_class: vec![None; c],
                method: "off".into(),
                error_bound: 0.0,
                undefined: Some("AUC not computed (AucMethod::Off)".into()),
                curves: vec![Vec::new(); c],
            },
        };
        let reliability = self.top1.reliability();
        let classwise: Vec<_> = self.classwise.iter().map(|b| b.reliability()).collect();
        let classwise_ece: Vec<f64> = classwise.iter().map(|r| r.ece()).collect();
        let equal_mass = if self.cfg.equal_mass {
            let mut keys = self.top1_keys;
            let r = equal_mass_from_keys(&mut keys, self.cfg.n_bins);
            Some(EqualMassSummary {
                ece: r.ece(),
                mce: r.mce(),
                reliability: r,
            })
        } else {
            None
        };
        let boundary = self.cfg.boundary.then(|| {
            self.boundary
                .iter()
                .map(|&(h, a, m, k)| BoundarySummary {
                    hd95: (k > 0).then(|| h / k as f64),
                    assd: (k > 0).then(|| a / k as f64),
                    hausdorff: (k > 0).then(|| m / k as f64),
                    images: k,
                })
                .collect()
        });
        let spacing = if self.cfg.boundary {
            self.spacings.summary()
        } else {
            None
        };
        // One isotropic spacing for every image, or none to name (NaN, `null` in JSON).
        let pixel_spacing = match &spacing {
            Some(s) if s.is_uniform() && s.row[0] == s.column[0] => s.row[0],
            Some(_) => f64::NAN,
            None => self.cfg.pixel_spacing,
        };
        Ok(Report {
            pixel_spacing,
            spacing,
            class_names: self.cfg.class_names.clone(),
            images: self.per_image.len(),
            pixels: cm.total(),
            ignored_pixels: self.ignored,
            accuracy: cm.accuracy(),
            balanced_accuracy: cm.balanced_accuracy(),
            confidence: self.top1.mean_score(),
            precision: averages(ClassMetric::Precision),
            recall: averages(ClassMetric::Recall),
            specificity: averages(ClassMetric::Specificity),
            f1: averages(ClassMetric::F1),
            iou: averages(ClassMetric::Iou),
            dice: averages(ClassMetric::Dice),
            support: (0..c).map(|k| cm.support(k)).collect(),
            per_image,
            auc,
            ece: reliability.ece(),
            rmsce: reliability.rmsce(),
            mce: reliability.mce(),
            n_bins: self.cfg.n_bins,
            reliability,
            equal_mass,
            classwise_ece_mean: classwise_ece.iter().sum::<f64>() / c as f64,
            classwise_ece,
            classwise_reliability: classwise,
            boundary,
            confusion_matrix: cm.rows(),
            zero_division: zd,
            temperature: None,
        })
    }
}
