//! The evaluation report: JSON (serde) and Markdown.

use std::fmt::Write as _;
use std::path::Path;

use serde::{Deserialize, Deserializer, Serialize};

use crate::calibration::Reliability;
use crate::error::{MetricsError, Result};
use crate::roc::RocPoint;
use crate::scores::ZeroDivision;
use crate::spacing::DistanceUnit;
use crate::temperature::TemperatureFit;
use crate::validate::check_len;

/// JSON has no NaN: serde_json writes it as `null`; read `null` back as NaN. Every plain
/// `f64` field of the report's types reads with it, so every report `save_json` writes
/// reads back.
pub(crate) fn nan_from_null<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<f64, D::Error> {
    Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::NAN))
}

pub(crate) fn nans_from_nulls<'de, D: Deserializer<'de>>(
    d: D,
) -> std::result::Result<Vec<f64>, D::Error> {
    Ok(Vec::<Option<f64>>::deserialize(d)?
        .into_iter()
        .map(|v| v.unwrap_or(f64::NAN))
        .collect())
}

/// A per-class score with its averages (NaN, from `ZeroDivision::Nan`, is `null` in JSON). JSON: `{"micro", "macro", "weighted", "per_class"}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Averages {
    /// Micro average (pooled TP/FP/FN/TN).
    #[serde(deserialize_with = "nan_from_null")]
    pub micro: f64,
    /// Macro average over the classes present in truth or prediction.
    #[serde(rename = "macro", deserialize_with = "nan_from_null")]
    pub macro_avg: f64,
    /// Support-weighted average.
    #[serde(deserialize_with = "nan_from_null")]
    pub weighted: f64,
    /// One value per class.
    #[serde(deserialize_with = "nans_from_nulls")]
    pub per_class: Vec<f64>,
}

/// ROC AUC summary. Undefined values (a class with no positive or no negative pixel) are
/// `null`, never a number; `undefined` then says why.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AucSummary {
    /// Macro average over classes.
    #[serde(rename = "macro")]
    pub macro_avg: Option<f64>,
    /// Average weighted by positives (scikit-learn `average="weighted"`).
    pub weighted: Option<f64>,
    /// Micro average (exact method only).
    pub micro: Option<f64>,
    /// Per-class one-vs-rest AUC.
    pub per_class: Vec<Option<f64>>,
    /// `"exact"`, `"binned(B)"` or `"off"`.
    pub method: String,
    /// Bound on the absolute error of every per-class AUC (0 when exact).
    #[serde(deserialize_with = "nan_from_null")]
    pub error_bound: f64,
    /// Why the averages are missing, if they are.
    pub undefined: Option<String>,
    /// Thinned ROC curves per class, for plots.
    pub curves: Vec<Vec<RocPoint>>,
}

/// Equal-mass reliability summary.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EqualMassSummary {
    /// ECE over equal-mass bins.
    #[serde(deserialize_with = "nan_from_null")]
    pub ece: f64,
    /// MCE over equal-mass bins.
    #[serde(deserialize_with = "nan_from_null")]
    pub mce: f64,
    /// The bins.
    pub reliability: Reliability,
}

/// Per-image reduction: every image weighs the same.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PerImageSummary {
    /// Images.
    pub images: usize,
    /// Mean over images of the macro F1.
    pub f1_macro: Option<f64>,
    /// Mean over images of the accuracy.
    pub accuracy: Option<f64>,
    /// Per class: mean Dice over the images where the class occurs (truth or prediction).
    pub dice: Vec<Option<f64>>,
    /// Per class: mean IoU over the images where the class occurs.
    pub iou: Vec<Option<f64>>,
}

/// Per-class boundary quality, averaged over the images where it is defined.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BoundarySummary {
    /// Mean HD95.
    pub hd95: Option<f64>,
    /// Mean ASSD.
    pub assd: Option<f64>,
    /// Mean Hausdorff distance.
    pub hausdorff: Option<f64>,
    /// Images where the class is in both truth and prediction.
    pub images: usize,
}

/// The pixel spacing of a report written before [`Report::pixel_spacing`] was recorded:
/// distances then were always in pixels.
fn pixel_units() -> f64 {
    1.0
}

/// The spacings boundary distances were measured at: their unit, and the smallest and
/// largest spacing between rows and between columns over the images.
///
/// # Examples
/// ```
/// # fn main() -> Result<(), xray_metrics::MetricsError> {
/// use xray_metrics::{DistanceUnit, EvalConfig, Evaluator, Spacing};
/// let mut ev = Evaluator::new(EvalConfig::new(["background", "object"]))?;
/// let probs = [0.9, 0.1, 0.1, 0.9];
/// ev.add_image_with_spacing(&[0, 1], &probs, 2, 1, Spacing::mm(0.2, 0.1))?;
/// ev.add_image_with_spacing(&[0, 1], &probs, 2, 1, Spacing::mm(0.15, 0.15))?;
/// let s = ev.finish()?.spacing.expect("boundary distances are on by default");
/// assert_eq!(s.unit, DistanceUnit::Millimetres);
/// assert_eq!((s.row, s.column), ([0.15, 0.2], [0.1, 0.15]));
/// assert!(!s.is_uniform());
/// assert_eq!(s.describe(2), "0.15–0.2 × 0.1–0.15 mm (rows × columns), each image at its own");
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SpacingSummary {
    /// The unit of every boundary distance in the report.
    pub unit: DistanceUnit,
    /// Images measured at a spacing given with them
    /// ([`Evaluator::add_image_with_spacing`](crate::Evaluator::add_image_with_spacing)); the
    /// others were measured at the configuration's
    /// ([`EvalConfig::spacing`](crate::EvalConfig::spacing)).
    pub images_with_own_spacing: usize,
    /// Smallest and largest distance between rows, in `unit`.
    pub row: [f64; 2],
    /// Smallest and largest distance between columns, in `unit`.
    pub column: [f64; 2],
}

impl SpacingSummary {
    /// Every image at the same spacing (rows and columns may still differ).
    ///
    /// # Examples
    /// ```
    /// use xray_metrics::{DistanceUnit, SpacingSummary};
    /// let s = SpacingSummary {
    ///     unit: DistanceUnit::Millimetres,
    ///     images_with_own_spacing: 3,
    ///     row: [0.2, 0.2],
    ///     column: [0.1, 0.1],
    /// };
    /// assert!(s.is_uniform());
    /// ```
    pub fn is_uniform(&self) -> bool {
        self.row[0] == self.row[1] && self.column[0] == self.column[1]
    }

    /// The spacing in words, as `report.md` gives it, for a report of `images` images:
    /// `0.2 mm`, `0.2 × 0.1 mm (rows × columns)`, or ranges (`0.1–0.2 × 0.1 mm`), followed
    /// by how many images were given their own spacing, when the spacings differ.
    ///
    /// # Examples
    /// ```
    /// use xray_metrics::{DistanceUnit, SpacingSummary};
    /// let mut s = SpacingSummary {
    ///     unit: DistanceUnit::Millimetres,
    ///     images_with_own_spacing: 0,
    ///     row: [1.0, 1.0],
    ///     column: [1.0, 1.0],
    /// };
    /// assert_eq!(s.describe(4), "1 mm");
    /// s.images_with_own_spacing = 4;
    /// s.row = [0.2, 0.2];
    /// assert_eq!(s.describe(4), "0.2 × 1 mm (rows × columns)");
    /// s.images_with_own_spacing = 1;
    /// s.row = [0.2, 0.3];
    /// let partly = "0.2–0.3 × 1 mm (rows × columns), 1 of 4 images at a spacing given with them";
    /// assert_eq!(s.describe(4), partly);
    /// ```
    pub fn describe(&self, images: usize) -> String {
        let range = |r: [f64; 2]| {
            if r[0] == r[1] {
                format!("{}", r[0])
            } else {
                format!("{}–{}", r[0], r[1])
            }
        };
        let mut s = if self.row == self.column && self.row[0] == self.row[1] {
            format!("{} {}", range(self.row), self.unit)
        } else {
            format!(
                "{} × {} {} (rows × columns)",
                range(self.row),
                range(self.column),
                self.unit
            )
        };
        match self.images_with_own_spacing {
            0 => {}
            // One spacing for all, whoever gave it: the value says everything.
            _ if self.is_uniform() => {}
            n if n == images => s += ", each image at its own",
            n => s += &format!(", {n} of {images} images at a spacing given with them"),
        }
        s
    }
}

/// Everything an evaluation produces. JSON field names are the public contract
/// (`accuracy`, `f1.weighted`, `f1.macro`, `f1.per_class`, `auc.weighted`, `auc.per_class`,
/// `ece`, `mce`, `confidence`, `confusion_matrix`, `class_names`, ...).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// Class names, index = class.
    pub class_names: Vec<String>,
    /// Images evaluated.
    pub images: usize,
    /// Scored pixels.
    pub pixels: u64,
    /// Pixels labelled 255.
    pub ignored_pixels: u64,
    /// Pixel accuracy.
    pub accuracy: Option<f64>,
    /// Mean recall over classes present in the truth.
    pub balanced_accuracy: Option<f64>,
    /// Mean top-1 probability.
    pub confidence: Option<f64>,
    /// Precision.
    pub precision: Averages,
    /// Recall (sensitivity).
    pub recall: Averages,
    /// Specificity.
    pub specificity: Averages,
    /// F1.
    pub f1: Averages,
    /// IoU (Jaccard).
    pub iou: Averages,
    /// Dice.
    pub dice: Averages,
    /// True pixels per class.
    pub support: Vec<u64>,
    /// Per-image reduction.
    pub per_image: PerImageSummary,
    /// ROC AUC.
    pub auc: AucSummary,
    /// Expected calibration error (l1, equal-width bins).
    #[serde(deserialize_with = "nan_from_null")]
    pub ece: f64,
    /// Root-mean-square calibration error (l2).
    #[serde(deserialize_with = "nan_from_null")]
    pub rmsce: f64,
    /// Maximum calibration error.
    #[serde(deserialize_with = "nan_from_null")]
    pub mce: f64,
    /// Equal-width bins used.
    pub n_bins: usize,
    /// Top-label reliability bins (equal width, torchmetrics-compatible).
    pub reliability: Reliability,
    /// Equal-mass reliability, if kept.
    pub equal_mass: Option<EqualMassSummary>,
    /// Class-wise ECE per class.
    #[serde(deserialize_with = "nans_from_nulls")]
    pub classwise_ece: Vec<f64>,
    /// Mean class-wise ECE.
    #[serde(deserialize_with = "nan_from_null")]
    pub classwise_ece_mean: f64,
    /// Class-wise reliability bins per class.
    pub classwise_reliability: Vec<Reliability>,
    /// Boundary quality per class, if computed.
    pub boundary: Option<Vec<BoundarySummary>>,
    /// The one spacing every image's boundary distances were measured at, rows and columns
    /// alike ([`EvalConfig::pixel_spacing`], or the same spacing given with every image):
    /// mm per pixel, or 1 for distances in pixels (a report without the field reads as 1).
    /// NaN (`null` in JSON) when the images had different spacings, or rows and columns
    /// did: [`Report::spacing`] then gives their range. Its unit is
    /// [`Report::distance_unit`].
    ///
    /// [`EvalConfig::pixel_spacing`]: crate::EvalConfig::pixel_spacing
    #[serde(default = "pixel_units", deserialize_with = "nan_from_null")]
    pub pixel_spacing: f64,
    /// The unit and range of the spacings the boundary distances were measured at; `None`
    /// without boundary distances, and in a report written before it was recorded (its
    /// unit then follows from [`Report::pixel_spacing`]: see [`Report::distance_unit`]).
    #[serde(default)]
    pub spacing: Option<SpacingSummary>,
    /// Pixel counts, rows = true class, columns = predicted class.
    pub confusion_matrix: Vec<Vec<u64>>,
    /// Zero-division rule used.
    pub zero_division: ZeroDivision,
    /// Temperature scaling result, when the caller fitted one.
    pub temperature: Option<TemperatureFit>,
}

fn f(v: Option<f64>) -> String {
    match v {
        Some(x) if x.is_finite() => format!("{x:.4}"),
        _ => "n/a".into(),
    }
}

impl Report {
    /// The unit of the boundary distances ([`Report::boundary`]): [`SpacingSummary::unit`],
    /// which states it. A report written before that was recorded has none, and reads as it
    /// did then: pixels for a [`Report::pixel_spacing`] of 1, millimetres otherwise.
    ///
    /// # Examples
    /// ```
    /// # fn main() -> Result<(), xray_metrics::MetricsError> {
    /// use xray_metrics::{DistanceUnit, EvalConfig, Evaluator, Spacing};
    /// let mut ev = Evaluator::new(EvalConfig::new(["background", "object"]))?;
    /// ev.add_image_with_spacing(&[0, 1], &[0.9, 0.1, 0.1, 0.9], 2, 1, Spacing::mm(1.0, 1.0))?;
    /// let report = ev.finish()?;
    /// // 1 mm is millimetres.
    /// assert_eq!(report.distance_unit(), DistanceUnit::Millimetres);
    /// assert!(report.to_markdown().contains("| HD95 mm | ASSD mm |"));
    /// # Ok(())
    /// # }
    /// ```
    pub fn distance_unit(&self) -> DistanceUnit {
        match &self.spacing {
            Some(s) => s.unit,
            None if self.pixel_spacing == 1.0 => DistanceUnit::Pixels,
            None => DistanceUnit::Millimetres,
        }
    }

    /// The headline scores on one line, as the `train` and `evaluate` jobs print them:
    /// accuracy, weighted F1, weighted AUC (`undefined` without one) and ECE, four decimals.
    ///
    /// # Examples
    /// ```
    /// use xray_metrics::{EvalConfig, Evaluator};
    /// let mut ev = Evaluator::new(EvalConfig::new(["background", "object"])).unwrap();
    /// ev.add_image(&[0u8, 0, 1, 1], &[0.9f32, 0.7, 0.2, 0.4, 0.1, 0.3, 0.8, 0.6], 2, 2).unwrap();
    /// let line = ev.finish().unwrap().headline();
    /// assert!(line.starts_with("accuracy 1.0000, weighted F1 1.0000, weighted AUC 1.0000, ECE "));
    /// ```
    pub fn headline(&self) -> String {
        format!(
            "accuracy {:.4}, weighted F1 {:.4}, weighted AUC {}, ECE {:.4}",
            self.accuracy.unwrap_or(f64::NAN),
            self.f1.weighted,
            self.auc
                .weighted
                .map_or("undefined".into(), |a| format!("{a:.4}")),
            self.ece
        )
    }

    /// Pretty JSON.
    ///
    /// # Examples
    /// ```
    /// # fn main() -> Result<(), xray_metrics::MetricsError> {
    /// use xray_metrics::{EvalConfig, Evaluator, Report};
    /// let mut ev = Evaluator::new(EvalConfig::new(["background", "object"]))?;
    /// ev.add_image(&[0, 0, 1, 1], &[0.9, 0.7, 0.2, 0.4, 0.1, 0.3, 0.8, 0.6], 2, 2)?;
    /// let report = ev.finish()?;
    /// let json = report.to_json()?;
    /// assert!(json.contains(r#""accuracy": 1.0"#));
    /// // Counts come back exact; a float may be read back one unit in the last place off.
    /// let back = Report::from_json(&json)?;
    /// assert_eq!(back.confusion_matrix, [[2, 0], [0, 2]]);
    /// assert_eq!(back.headline(), report.headline());
    /// # Ok(())
    /// # }
    /// ```
    pub fn to_json(&self) -> Result<String> {
        Ok(serde_json::to_string_pretty(self)?)
    }

    /// Parses a report written by [`Report::to_json`] and checks it with
    /// [`Report::validate`], so an edited file whose lengths disagree is refused here rather
    /// than breaking [`Report::to_markdown`] or the plots later.
    ///
    /// # Errors
    /// [`MetricsError::Json`] for text that is not a report (a missing field, a string where
    /// a number belongs, ...); [`MetricsError::LengthMismatch`] naming the first field whose
    /// length disagrees with `class_names` (see [`Report::validate`]).
    ///
    /// # Examples
    /// ```
    /// # fn main() -> Result<(), xray_metrics::MetricsError> {
    /// use xray_metrics::{EvalConfig, Evaluator, MetricsError, Report};
    /// let mut ev = Evaluator::new(EvalConfig::new(["background", "object"]))?;
    /// ev.add_image(&[0, 0, 1, 1], &[0.9, 0.7, 0.2, 0.4, 0.1, 0.3, 0.8, 0.6], 2, 2)?;
    /// let json = ev.finish()?.to_json()?;
    /// let edited = json.replace(r#""object""#, r#""object", "extra""#);
    /// let e = Report::from_json(&edited).unwrap_err();
    /// assert!(matches!(e, MetricsError::LengthMismatch { expected: 3, found: 2, .. }), "{e}");
    /// assert!(e.to_string().contains("`support`"), "{e}");
    /// # Ok(())
    /// # }
    /// ```
    pub fn from_json(s: &str) -> Result<Self> {
        let report: Self = serde_json::from_str(s)?;
        report.validate()?;
        Ok(report)
    }

    /// Checks that the report describes one set of classes: `support`, every `per_class`
    /// vector (precision, recall, specificity, F1, IoU, Dice, AUC), `per_image.dice` and
    /// `.iou`, `auc.curves`, `classwise_ece`, `classwise_reliability`, `boundary` (when
    /// present) and the rows and columns of `confusion_matrix` must each have one entry per
    /// class name. A report from [`Evaluator::finish`](crate::Evaluator::finish) always
    /// passes; [`Report::from_json`], [`Report::save_markdown`] and the plot functions call
    /// it, as the fields are public and a report can be edited or built by hand.
    ///
    /// # Errors
    /// [`MetricsError::LengthMismatch`] naming the first field whose length disagrees with
    /// the number of `class_names`.
    ///
    /// # Examples
    /// ```
    /// # fn main() -> Result<(), xray_metrics::MetricsError> {
    /// use xray_metrics::{EvalConfig, Evaluator, MetricsError};
    /// let mut ev = Evaluator::new(EvalConfig::new(["background", "object"]))?;
    /// ev.add_image(&[0, 1], &[0.9, 0.2, 0.1, 0.8], 2, 1)?;
    /// let mut report = ev.finish()?;
    /// report.validate()?;
    /// // A third class name without its numbers:
    /// report.class_names.push("bone".into());
    /// let e = report.validate().unwrap_err();
    /// assert!(matches!(e, MetricsError::LengthMismatch { expected: 3, found: 2, .. }), "{e}");
    /// assert!(e.to_string().contains("`support`"), "{e}"); // the first field checked
    /// # Ok(())
    /// # }
    /// ```
    pub fn validate(&self) -> Result<()> {
        let c = self.class_names.len();
        let per_class = |field: &str, found: usize| {
            check_len(
                &format!("report field `{field}` (one entry per name in `class_names`)"),
                c,
                found,
            )
        };
        per_class("support", self.support.len())?;
        for (name, a) in [
            ("precision", &self.precision),
            ("recall", &self.recall),
            ("specificity", &self.specificity),
            ("f1", &self.f1),
            ("iou", &self.iou),
            ("dice", &self.dice),
        ] {
            per_class(&format!("{name}.per_class"), a.per_class.len())?;
        }
        per_class("auc.per_class", self.auc.per_class.len())?;
        per_class("auc.curves", self.auc.curves.len())?;
        per_class("per_image.dice", self.per_image.dice.len())?;
        per_class("per_image.iou", self.per_image.iou.len())?;
        per_class("classwise_ece", self.classwise_ece.len())?;
        per_class("classwise_reliability", self.classwise_reliability.len())?;
        if let Some(b) = &self.boundary {
            per_class("boundary", b.len())?;
        }
        per_class("confusion_matrix", self.confusion_matrix.len())?;
        for (k, row) in self.confusion_matrix.iter().enumerate() {
            per_class(&format!("confusion_matrix[{k}]"), row.len())?;
        }
        Ok(())
    }

    /// Writes pretty JSON to `path`, atomically: a temporary sibling, flushed, then renamed
    /// over it, so that a write that fails part way (a full disk) leaves an earlier file at
    /// `path` as it was, and no temporary file.
    ///
    /// # Errors
    /// [`MetricsError::Json`] when the report cannot be serialised; [`MetricsError::Io`]
    /// naming `path` when the file cannot be written.
    ///
    /// # Examples
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use xray_metrics::{EvalConfig, Evaluator, MetricsError, Report};
    /// let mut ev = Evaluator::new(EvalConfig::new(["background", "object"]))?;
    /// ev.add_image(&[0, 1], &[0.9, 0.2, 0.1, 0.8], 2, 1)?;
    /// let report = ev.finish()?;
    /// let path = std::env::temp_dir().join(format!("xray-doc-save-json-{}.json", std::process::id()));
    /// report.save_json(&path)?;
    /// let back = Report::from_json(&std::fs::read_to_string(&path)?)?;
    /// std::fs::remove_file(&path)?;
    /// assert_eq!(back.confusion_matrix, [[1, 0], [0, 1]]);
    /// let missing_dir = path.with_extension("no-such-dir").join("report.json");
    /// let e = report.save_json(&missing_dir).unwrap_err();
    /// assert!(matches!(&e, MetricsError::Io { path, .. } if *path == missing_dir), "{e}");
    /// # Ok(())
    /// # }
    /// ```
    pub fn save_json(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        crate::atomic_write::write_atomic(path, self.to_json()?.as_bytes()).map_err(|source| {
            MetricsError::Io {
                path: path.to_path_buf(),
                source,
            }
        })
    }

    /// Writes the Markdown tables to `path`, atomically as [`Report::save_json`] does.
    ///
    /// # Errors
    /// [`MetricsError::LengthMismatch`] for a report that fails [`Report::validate`] (nothing
    /// is written); [`MetricsError::Io`] when the file cannot be written.
    ///
    /// # Examples
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use xray_metrics::{EvalConfig, Evaluator, MetricsError};
    /// let mut ev = Evaluator::new(EvalConfig::new(["background", "object"]))?;
    /// ev.add_image(&[0, 1], &[0.9, 0.2, 0.1, 0.8], 2, 1)?;
    /// let mut report = ev.finish()?;
    /// let path = std::env::temp_dir().join(format!("xray-doc-save-md-{}.md", std::process::id()));
    /// report.save_markdown(&path)?;
    /// assert_eq!(std::fs::read_to_string(&path)?, report.to_markdown());
    /// std::fs::remove_file(&path)?;
    /// report.support.push(0); // a third class out of nowhere: refused, nothing written
    /// let e = report.save_markdown(&path).unwrap_err();
    /// assert!(matches!(e, MetricsError::LengthMismatch { .. }) && e.to_string().contains("`support`"));
    /// assert!(!path.exists());
    /// # Ok(())
    /// # }
    /// ```
    pub fn save_markdown(&self, path: impl AsRef<Path>) -> Result<()> {
        self.validate()?;
        let path = path.as_ref();
        crate::atomic_write::write_atomic(path, self.to_markdown().as_bytes()).map_err(|source| {
            MetricsError::Io {
                path: path.to_path_buf(),
                source,
            }
        })
    }

    /// Markdown: a per-class table, the averages, calibration and the confusion matrix.
    ///
    /// A report that fails [`Report::validate`] (lengths that disagree, e.g. an edited JSON
    /// file) renders as a heading and the error instead of the tables;
    /// [`Report::save_markdown`] refuses it.
    ///
    /// # Examples
    /// ```
    /// # fn main() -> Result<(), xray_metrics::MetricsError> {
    /// use xray_metrics::{EvalConfig, Evaluator};
    /// let mut ev = Evaluator::new(EvalConfig::new(["background", "object"]))?;
    /// ev.add_image(&[0, 1, 1, 255], &[0.9, 0.2, 0.6, 0.5, 0.1, 0.8, 0.4, 0.5], 2, 2)?;
    /// let md = ev.finish()?.to_markdown();
    /// assert!(md.starts_with("## Evaluation: 1 image, 3 scored pixels (1 ignored)"));
    /// // class, support, precision, recall, ...: one object pixel of two was missed
    /// assert!(md.contains("| object | 2 | 1.0000 | 0.5000 |"), "{md}");
    /// # Ok(())
    /// # }
    /// ```
    pub fn to_markdown(&self) -> String {
        let mut s = String::new();
        if let Err(e) = self.validate() {
            let _ = writeln!(s, "## Evaluation: inconsistent report\n\n{e}");
            return s;
        }
        let c = self.class_names.len();
        let _ = writeln!(
            s,
            "## Evaluation: {} image{}, {} scored pixel{} ({} ignored)\n",
            self.images,
            if self.images == 1 { "" } else { "s" },
            self.pixels,
            if self.pixels == 1 { "" } else { "s" },
            self.ignored_pixels
        );
        let unit = self.distance_unit();
        let _ = writeln!(
            s,
            "| class | support | precision | recall | specificity | F1 | IoU | Dice | AUC | HD95 {unit} | ASSD {unit} |"
        );
        let _ = writeln!(s, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
        for k in 0..c {
            let (hd, asd) = match &self.boundary {
                Some(b) => (b[k].hd95, b[k].assd),
                None => (None, None),
            };
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                self.class_names[k],
                self.support[k],
                f(Some(self.precision.per_class[k])),
                f(Some(self.recall.per_class[k])),
                f(Some(self.specificity.per_class[k])),
                f(Some(self.f1.per_class[k])),
                f(Some(self.iou.per_class[k])),
                f(Some(self.dice.per_class[k])),
                f(self.auc.per_class[k]),
                f(hd),
                f(asd)
            );
        }
        for (name, pick, auc) in [
            ("macro", 0, self.auc.macro_avg),
            ("weighted", 1, self.auc.weighted),
            ("micro", 2, self.auc.micro),
        ] {
            let g = |a: &Averages| {
                f(Some(match pick {
                    0 => a.macro_avg,
                    1 => a.weighted,
                    _ => a.micro,
                }))
            };
            let _ = writeln!(
                s,
                "| **{name}** | {} | {} | {} | {} | {} | {} | {} | {} | | |",
                self.pixels,
                g(&self.precision),
                g(&self.recall),
                g(&self.specificity),
                g(&self.f1),
                g(&self.iou),
                g(&self.dice),
                f(auc)
            );
        }
        let _ = writeln!(s, "\n| summary | value |\n|---|---:|");
        let rows = [
            ("accuracy", self.accuracy),
            ("balanced accuracy", self.balanced_accuracy),
            ("confidence (mean top-1 probability)", self.confidence),
            ("per-image mean accuracy", self.per_image.accuracy),
            ("per-image mean macro F1", self.per_image.f1_macro),
            ("ECE (l1, equal width)", Some(self.ece)),
            ("RMSCE (l2)", Some(self.rmsce)),
            ("MCE (max)", Some(self.mce)),
            ("ECE (equal mass)", self.equal_mass.as_ref().map(|e| e.ece)),
            ("class-wise ECE (mean)", Some(self.classwise_ece_mean)),
        ];
        for (name, v) in rows {
            let _ = writeln!(s, "| {name} | {} |", f(v));
        }
        let _ = writeln!(
            s,
            "| AUC method | {}{} |",
            self.auc.method,
            if self.auc.error_bound > 0.0 {
                format!(" (± {:.2e})", self.auc.error_bound)
            } else {
                String::new()
            }
        );
        if let Some(why) = &self.auc.undefined {
            let _ = writeln!(s, "| AUC undefined | {why} |");
        }
        // In pixels the table's `px` says all; in mm, at what spacing (a range where images
        // had their own).
        let in_mm = |s: &&SpacingSummary| s.unit == DistanceUnit::Millimetres;
        if let (Some(_), Some(spacing)) = (&self.boundary, self.spacing.as_ref().filter(in_mm)) {
            let _ = writeln!(
                s,
                "| boundary distances in | {} |",
                spacing.describe(self.images)
            );
        }
        if let Some(t) = &self.temperature {
            let _ = writeln!(
                s,
                "| temperature | {:.4} (ECE {:.4} → {:.4}, NLL {:.4} → {:.4}) |",
                t.temperature, t.ece_before, t.ece_after, t.nll_before, t.nll_after
            );
            // The fit lowers the NLL; a rise of the ECE it also reports would otherwise read
            // as a calibration that worked.
            if t.ece_after - t.ece_before >= 5e-5 {
                let _ = writeln!(
                    s,
                    "| temperature note | the fit lowered the NLL but raised the ECE on the \
                     pixels it was fitted on: by the ECE the network's own softmax was the \
                     better calibrated there |"
                );
            }
        }
        let _ = writeln!(
            s,
            "\nConfusion matrix (rows = true class, columns = predicted; count and row %):\n"
        );
        let _ = write!(s, "| true \\ pred |");
        for n in &self.class_names {
            let _ = write!(s, " {n} |");
        }
        let _ = write!(s, "\n|---|");
        for _ in 0..c {
            let _ = write!(s, "---:|");
        }
        let _ = writeln!(s);
        for (k, row) in self.confusion_matrix.iter().enumerate() {
            // u128: counts edited past u64 must not overflow the sum.
            let total: u128 = row.iter().map(|&v| u128::from(v)).sum();
            let _ = write!(s, "| {} |", self.class_names[k]);
            for &v in row {
                let pct = if total == 0 {
                    0.0
                } else {
                    100.0 * v as f64 / total as f64
                };
                let _ = write!(s, " {v} ({pct:.1}%) |");
            }
            let _ = writeln!(s);
        }
        s
    }
}
