//! Streaming evaluation: add images one by one, then produce a [`Report`].
//!
//! What is kept between images (never the probability planes themselves):
//! - the pooled confusion matrix and one `C × C` matrix per image (per-image reduction);
//! - `n_bins + 1` top-label reliability bins and `C × (n_bins + 1)` class-wise bins;
//! - exact AUC: one `u32` per scored pixel and class (score bits + label flag, see
//!   [`crate::ExactAuc`]), i.e. `4·C` bytes per pixel; or binned AUC: `16·B·C` bytes in all;
//! - equal-mass bins (optional): one `u32` per scored pixel (top-1 confidence + correct);
//! - surface distances (optional): per class, sums over the images where they are defined.

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::boundary::surface_distances;
use crate::calibration::{equal_mass_from_keys, top1, ReliabilityBins};
use crate::confusion::ConfusionMatrix;
use crate::error::{readable_number, MetricsError, Result};
use crate::report::{
    AucSummary, Averages, BoundarySummary, EqualMassSummary, PerImageSummary, Report,
};
use crate::roc::{key, BinnedAuc, ExactAuc, MicroAuc};
use crate::scores::{mean_over_images, Average, ClassMetric, ZeroDivision};
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
    /// Physical size of a pixel for surface distances, in mm (1.0, the default, keeps them in
    /// pixel units); finite and `> 0`. Recorded as [`Report::pixel_spacing`], which labels
    /// the distances `mm` or `px`.
    pub pixel_spacing: f64,
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
            sum_tolerance: crate::validate::DEFAULT_SUM_TOLERANCE,
            zero_division: ZeroDivision::Zero,
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
    ignored: u64,
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
            Some(surface_distances(
                labels,
                &pred,
                width,
                height,
                c,
                self.cfg.pixel_spacing,
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
    /// [`MetricsError::InvalidConfig`] when `other` has another configuration (nothing is
    /// added).
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
        Ok(Report {
            pixel_spacing: self.cfg.pixel_spacing,
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
