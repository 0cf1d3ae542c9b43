//! `evaluate`: a checkpoint against a labelled dataset folder → report and plots, with and
//! without the paper's soft-tissue threshold; boundary distances in mm at each image's own
//! pixel spacing, or at a stated one ([`BoundarySpacing`], [`MixedSpacing`]).

use std::collections::btree_map::{BTreeMap, Entry};
use std::path::Path;

use rayon::prelude::*;
use serde::Serialize;
use xnet_model::checkpoint::write_bytes_atomic;
use xray_data::dataset::Dataset;
use xray_data::io::{PixelSpacing, RefusedSpacing, SpacingSource};
use xray_metrics::{
    Average, ClassMetric, ConfusionMatrix, EvalConfig, Evaluator, ReliabilityBins, Report, Spacing,
    ZeroDivision,
};
use xray_postproc::{apply_thresholds, ProbMap, ThresholdConfig};

use crate::predict::Predictor;
use crate::{Error, Result, CLASS_NAMES};

/// Label-only scores of a thresholded prediction (no probabilities left to score AUC or
/// calibration on).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LabelScores {
    /// What produced the labels (e.g. `"soft-tissue threshold 0.9"`, `"classical baseline"`).
    pub method: String,
    /// Pixel accuracy.
    pub accuracy: Option<f64>,
    /// F1 averaged by support; NaN (`null` in JSON, "n/a" in tables) when no pixel was
    /// scored, since there is nothing to score (not a score of 0).
    pub f1_weighted: f64,
    /// Unweighted mean F1 over present classes; NaN when no pixel was scored.
    pub f1_macro: f64,
    /// F1 per class; NaN for every class when no pixel was scored.
    pub f1_per_class: Vec<f64>,
    /// Fraction of pixels that are not soft tissue but were labelled soft tissue (the paper's
    /// "soft-tissue false positives").
    pub soft_tissue_false_positive_rate: f64,
    /// Recall of soft tissue.
    pub soft_tissue_recall: f64,
    /// Confusion matrix, rows = true labels.
    pub confusion_matrix: Vec<Vec<u64>>,
}

impl LabelScores {
    /// Scores from a confusion matrix (soft tissue = class 1). A matrix without a scored
    /// pixel gives NaN F1 scores (see [`LabelScores::f1_weighted`]).
    ///
    /// # Examples
    /// ```
    /// use xray_metrics::ConfusionMatrix;
    /// use xray_seg::evaluate::LabelScores;
    /// // Truth, then prediction: one soft-tissue pixel found, one missed, one invented.
    /// let cm = ConfusionMatrix::from_labels(&[0, 1, 1, 2], &[0, 1, 2, 1], 3)?;
    /// let s = LabelScores::from_confusion("arg-max", &cm);
    /// assert_eq!(s.method, "arg-max");
    /// assert_eq!(s.accuracy, Some(0.5));
    /// assert_eq!(s.soft_tissue_recall, 0.5);
    /// assert_eq!(s.soft_tissue_false_positive_rate, 0.5); // 1 of the 2 other pixels
    /// assert_eq!(s.confusion_matrix[1], [0, 1, 1]);
    /// assert_eq!(s.f1_per_class[0], 1.0);
    /// // Nothing scored: the F1 scores are undefined, not 0.
    /// let none = LabelScores::from_confusion("empty", &ConfusionMatrix::new(3)?);
    /// assert!(none.f1_weighted.is_nan() && none.f1_per_class.iter().all(|f| f.is_nan()));
    /// # Ok::<(), xray_seg::Error>(())
    /// ```
    pub fn from_confusion(method: impl Into<String>, cm: &ConfusionMatrix) -> Self {
        let zd = ZeroDivision::Zero;
        let scored = cm.total() > 0;
        let f1 = |avg| {
            if scored {
                cm.score(ClassMetric::F1, avg, zd).value().unwrap_or(0.0)
            } else {
                f64::NAN
            }
        };
        let [tp, fp, fneg, tn] = if cm.num_classes() > 1 {
            cm.tp_fp_fn_tn(1)
        } else {
            [0; 4]
        };
        let ratio = |a: u64, b: u64| if b == 0 { 0.0 } else { a as f64 / b as f64 };
        LabelScores {
            method: method.into(),
            accuracy: cm.accuracy(),
            f1_weighted: f1(Average::Weighted),
            f1_macro: f1(Average::Macro),
            f1_per_class: if scored {
                cm.per_class(ClassMetric::F1, zd)
            } else {
                vec![f64::NAN; cm.num_classes()]
            },
            soft_tissue_false_positive_rate: ratio(fp, fp + tn),
            soft_tissue_recall: ratio(tp, tp + fneg),
            confusion_matrix: cm.rows(),
        }
    }

    /// A Markdown table of these scores.
    ///
    /// # Examples
    /// ```
    /// use xray_metrics::ConfusionMatrix;
    /// use xray_seg::evaluate::{class_names, LabelScores};
    /// let cm = ConfusionMatrix::from_labels(&[0, 1, 1, 2], &[0, 1, 2, 1], 3)?;
    /// let md = LabelScores::from_confusion("soft-tissue threshold 0.9", &cm).to_markdown(&class_names(3));
    /// assert!(md.starts_with("## soft-tissue threshold 0.9\n"));
    /// assert!(md.contains("| accuracy | 0.5000 |"), "{md}");
    /// assert!(md.contains("| F1 open beam | 1.0000 |"), "{md}");
    /// assert!(md.contains("| soft-tissue recall | 50.00% |"), "{md}");
    /// # Ok::<(), xray_seg::Error>(())
    /// ```
    pub fn to_markdown(&self, class_names: &[String]) -> String {
        let pct = |v: f64| format!("{:.2}%", 100.0 * v);
        let mut s = format!("## {}\n\n| metric | value |\n|---|---|\n", self.method);
        s += &format!(
            "| accuracy | {} |\n",
            self.accuracy.map_or("n/a".into(), |a| format!("{a:.4}"))
        );
        s += &format!(
            "| F1 weighted | {} |\n| F1 macro | {} |\n",
            score(self.f1_weighted),
            score(self.f1_macro)
        );
        for (name, &f) in class_names.iter().zip(&self.f1_per_class) {
            s += &format!("| F1 {name} | {} |\n", score(f));
        }
        s += &format!(
            "| soft-tissue false positives | {} |\n| soft-tissue recall | {} |\n",
            pct(self.soft_tissue_false_positive_rate),
            pct(self.soft_tissue_recall),
        );
        s
    }
}

/// A score to four decimals, or "n/a" when it is undefined (NaN: nothing was scored).
fn score(v: f64) -> String {
    if v.is_finite() {
        format!("{v:.4}")
    } else {
        "n/a".into()
    }
}

/// Arg-max scores of the images of one category (body part), so a model that is good on
/// hands and poor on chests shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CategoryScores {
    /// The category as the dataset's `categories.csv` names it.
    pub category: String,
    /// Number of images of this category that were evaluated.
    pub images: usize,
    /// Scored (not ignored) pixels of these images.
    pub pixels: u64,
    /// Their pooled arg-max scores (`method` is the category).
    pub scores: LabelScores,
    /// Top-label ECE (l1, the report's 15 equal-width torchmetrics bins) of these images'
    /// probabilities, at the predictor's temperature; `None` when only labels were scored,
    /// or when no pixel was.
    pub ece: Option<f64>,
    /// The reliability bins the ECE comes from, kept so that disjoint image sets (folds)
    /// can be pooled.
    #[serde(skip)]
    pub calibration: Option<ReliabilityBins>,
}

impl CategoryScores {
    /// One line for a terminal: name, weighted F1, ECE and image count ("n/a" for a score
    /// that is undefined: no probabilities, or no scored pixel).
    ///
    /// # Examples
    /// ```
    /// use xray_metrics::ConfusionMatrix;
    /// use xray_seg::evaluate::per_category_scores;
    /// let cm = ConfusionMatrix::from_labels(&[0, 1], &[0, 1], 2).unwrap();
    /// let scores = per_category_scores([Some("knee")], &[cm], None, 2).unwrap();
    /// assert_eq!(
    ///     scores[0].summary_line(),
    ///     "knee             weighted F1 1.0000, ECE n/a over   1 image(s)"
    /// );
    /// ```
    pub fn summary_line(&self) -> String {
        format!(
            "{:<16} weighted F1 {}, ECE {} over {:>3} image(s)",
            self.category,
            score(self.scores.f1_weighted),
            self.ece.map_or("n/a".into(), score),
            self.images
        )
    }
}

/// Category of images that `categories.csv` does not list.
pub const UNCATEGORISED: &str = "(no category)";

/// What [`evaluate_samples`] measured.
#[derive(Debug, Clone)]
pub struct Evaluation {
    /// The full report on arg-max predictions and raw probabilities.
    pub report: Report,
    /// Arg-max labels scored as labels (comparable with `thresholded`).
    pub argmax: LabelScores,
    /// Labels after the soft-tissue threshold, when one was asked for.
    pub thresholded: Option<LabelScores>,
    /// Arg-max scores per category, sorted by name; empty when the dataset has no
    /// categories. Images without one are pooled under [`UNCATEGORISED`].
    pub per_category: Vec<CategoryScores>,
    /// The spacing the boundary distances were measured at (their unit and range are in
    /// [`Report::spacing`]).
    pub spacing: BoundarySpacing,
    /// What the caller should know about the spacing (a stated spacing that differs from a
    /// file's, images at spacings from different planes, a fall-back to pixels), one
    /// sentence each, for a terminal; empty when there is nothing to say.
    pub warnings: Vec<String>,
    /// The spacing of every image evaluated, in the order evaluated; empty when the boundary
    /// distances are in pixels. [`write_evaluation`] writes it as `spacings.json`.
    pub image_spacings: Vec<ImageSpacing>,
}

/// The spacing one image's boundary distances were measured at (`spacings.json`).
///
/// # Examples
/// ```
/// use xray_data::io::{PixelSpacing, SpacingSource};
/// use xray_seg::evaluate::ImageSpacing;
/// let file = PixelSpacing::new(0.2, 0.1, SpacingSource::ImagerPixelSpacing)?;
/// let entry = ImageSpacing { stem: "knee".into(), spacing: file, file: Some(file) };
/// let json = serde_json::to_value(&entry).unwrap();
/// assert_eq!(json["spacing"]["row_mm"], 0.2);
/// assert_eq!(json["spacing"]["source"], "imager_pixel_spacing");
/// # Ok::<(), xray_data::DataError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ImageSpacing {
    /// The sample's stem (its file name without the extension).
    pub stem: String,
    /// The spacing used: the file's, or the stated one ([`SpacingSource::Stated`]).
    pub spacing: PixelSpacing,
    /// The spacing the image's file carries (absent for a PNG, TIFF or JPEG file, or a DICOM
    /// file without one); differs from `spacing` where a stated one replaced it.
    pub file: Option<PixelSpacing>,
}

/// The spacing the boundary distances (HD95, ASSD, Hausdorff) of an [`Evaluation`] were
/// measured at.
///
/// # Examples
/// ```
/// use xray_seg::evaluate::BoundarySpacing;
/// assert_eq!(BoundarySpacing::FromFiles.to_string(), "each image's own (its DICOM file's)");
/// assert_eq!(BoundarySpacing::Pixels.to_string(), "pixels");
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum BoundarySpacing {
    /// In pixels: no image's file carries a spacing and none was stated (or, with
    /// [`MixedSpacing::Pixels`], only some images' files do).
    Pixels,
    /// Every image at the spacing stated in [`EvaluateOptions`], whatever its file says.
    Stated(PixelSpacing),
    /// Every image at the spacing its DICOM file carries
    /// ([`xray_data::io::ImageInfo::pixel_spacing`]), which may differ from image to image
    /// and between rows and columns.
    FromFiles,
}

impl std::fmt::Display for BoundarySpacing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BoundarySpacing::Pixels => f.write_str("pixels"),
            BoundarySpacing::Stated(s) if s.row_mm() == s.column_mm() => {
                write!(f, "the stated {} mm", s.row_mm())
            }
            BoundarySpacing::Stated(s) => write!(
                f,
                "the stated {} × {} mm (rows × columns)",
                s.row_mm(),
                s.column_mm()
            ),
            BoundarySpacing::FromFiles => f.write_str("each image's own (its DICOM file's)"),
        }
    }
}

/// What [`evaluate_samples_with`] does when some images' files carry a pixel spacing and
/// others do not (PNG, TIFF and JPEG files never do; a DICOM file may lack one). Their
/// boundary distances would be partly in mm and partly in pixels, and no mean over both
/// means anything, so one of the two is given up, never silently.
///
/// # Examples
/// ```
/// use xray_seg::evaluate::{EvaluateOptions, MixedSpacing};
/// assert_eq!(MixedSpacing::default(), MixedSpacing::Refuse);
/// // A job that must finish: all in pixels, with a warning, when only some carry one.
/// let opts = EvaluateOptions { mixed_spacing: MixedSpacing::Pixels, ..EvaluateOptions::default() };
/// assert_ne!(opts, EvaluateOptions::default());
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum MixedSpacing {
    /// Refuse the evaluation before any image is evaluated, naming the first image without
    /// a spacing and the way out (state one for every image: `--pixel-spacing`,
    /// [`EvaluateOptions::pixel_spacing_mm`]). The default: whoever evaluates a DICOM
    /// dataset expects millimetres, and a report in pixels would be found out only later.
    #[default]
    Refuse,
    /// Measure every image in pixels, with a warning ([`Evaluation::warnings`]) that says
    /// how many images lack a spacing: for a job that must not fail after its work is done
    /// (the `train` job's test-split report, [`evaluate_samples`]).
    Pixels,
}

/// One category's images pooled: confusion counts add up, and reliability bins merge while
/// every part added has them.
struct CategoryPool {
    images: usize,
    confusion: ConfusionMatrix,
    calibration: Option<ReliabilityBins>,
    calibrated: bool,
}

impl CategoryPool {
    fn new(classes: usize) -> Result<Self> {
        Ok(CategoryPool {
            images: 0,
            confusion: ConfusionMatrix::new(classes)?,
            calibration: None,
            calibrated: true,
        })
    }

    fn add(
        &mut self,
        images: usize,
        confusion: &ConfusionMatrix,
        calibration: Option<&ReliabilityBins>,
    ) -> Result<()> {
        self.images += images;
        self.confusion.merge(confusion)?;
        match (calibration, &mut self.calibration) {
            (Some(b), Some(pooled)) if self.calibrated => pooled.merge(b)?,
            (Some(b), None) if self.calibrated => self.calibration = Some(b.clone()),
            _ => {
                self.calibrated = false;
                self.calibration = None;
            }
        }
        Ok(())
    }

    fn finish(self, name: &str) -> CategoryScores {
        CategoryScores {
            category: name.to_string(),
            images: self.images,
            pixels: self.confusion.total(),
            scores: LabelScores::from_confusion(name, &self.confusion),
            // No scored pixel: no calibration to speak of (the bins' ECE would read 0).
            ece: self
                .calibration
                .as_ref()
                .filter(|b| b.total() > 0)
                .map(|b| b.reliability().ece()),
            calibration: self.calibration,
        }
    }
}

/// Pools per-image confusion matrices by category (`categories[k]` is image `k`'s), sorted
/// by name; images without a category go under [`UNCATEGORISED`]. With `calibration` (image
/// `k`'s top-label reliability bins, e.g. [`Evaluator::per_image_calibration`]) each category
/// also gets its ECE. Empty when no image has a category.
///
/// # Errors
/// Matrices of other than `classes` classes, or a `calibration` of another length than
/// `matrices`.
///
/// # Examples
/// ```
/// use xray_metrics::ConfusionMatrix;
/// use xray_seg::evaluate::{per_category_scores, UNCATEGORISED};
/// let right = ConfusionMatrix::from_labels(&[0, 1, 2], &[0, 1, 2], 3).unwrap();
/// let wrong = ConfusionMatrix::from_labels(&[0, 1, 2], &[1, 2, 0], 3).unwrap();
/// let scores = per_category_scores(
///     [Some("hand"), Some("chest"), None, Some("hand")],
///     &[right.clone(), wrong.clone(), wrong, right],
///     None,
///     3,
/// )
/// .unwrap();
/// let names: Vec<&str> = scores.iter().map(|c| c.category.as_str()).collect();
/// assert_eq!(names, ["(no category)", "chest", "hand"]);
/// assert_eq!(scores[0].category, UNCATEGORISED);
/// assert_eq!((scores[2].images, scores[2].pixels), (2, 6));
/// assert_eq!(scores[2].scores.accuracy, Some(1.0));
/// assert_eq!(scores[1].scores.accuracy, Some(0.0));
/// assert_eq!(scores[1].ece, None); // no reliability bins given
/// ```
pub fn per_category_scores<'a>(
    categories: impl IntoIterator<Item = Option<&'a str>>,
    matrices: &[ConfusionMatrix],
    calibration: Option<&[ReliabilityBins]>,
    classes: usize,
) -> Result<Vec<CategoryScores>> {
    if let Some(bins) = calibration {
        if bins.len() != matrices.len() {
            return Err(Error::Invalid(format!(
                "{} images' reliability bins for {} confusion matrices",
                bins.len(),
                matrices.len()
            )));
        }
    }
    let categories: Vec<Option<&str>> = categories.into_iter().collect();
    if categories.len() != matrices.len() {
        return Err(Error::Invalid(format!(
            "{} images' categories for {} confusion matrices",
            categories.len(),
            matrices.len()
        )));
    }
    let mut any = false;
    let mut pools: BTreeMap<&str, CategoryPool> = BTreeMap::new();
    for (k, (category, cm)) in categories.into_iter().zip(matrices).enumerate() {
        any |= category.is_some();
        let pool = match pools.entry(category.unwrap_or(UNCATEGORISED)) {
            Entry::Occupied(e) => e.into_mut(),
            Entry::Vacant(e) => e.insert(CategoryPool::new(classes)?),
        };
        pool.add(1, cm, calibration.map(|bins| &bins[k]))?;
    }
    if !any {
        return Ok(Vec::new());
    }
    Ok(pools
        .into_iter()
        .map(|(name, pool)| pool.finish(name))
        .collect())
}

/// Pools per-category scores of disjoint image sets (the folds of a cross-validation) into
/// one entry per category: images and confusion matrices add up, scores are recomputed, and
/// a category's calibration is pooled when every part has it.
///
/// # Errors
/// Matrices of different class counts for one category.
///
/// # Examples
/// ```
/// use xray_metrics::ConfusionMatrix;
/// use xray_seg::evaluate::{per_category_scores, pool_category_scores};
/// let right = ConfusionMatrix::from_labels(&[0, 1], &[0, 1], 2).unwrap();
/// let wrong = ConfusionMatrix::from_labels(&[0, 1], &[1, 0], 2).unwrap();
/// let fold_a = per_category_scores([Some("hand")], &[right], None, 2).unwrap();
/// let fold_b = per_category_scores([Some("hand")], &[wrong], None, 2).unwrap();
/// let pooled = pool_category_scores([fold_a.as_slice(), fold_b.as_slice()]).unwrap();
/// assert_eq!((pooled[0].images, pooled[0].pixels), (2, 4));
/// assert_eq!(pooled[0].scores.accuracy, Some(0.5));
/// ```
pub fn pool_category_scores<'a>(
    parts: impl IntoIterator<Item = &'a [CategoryScores]>,
) -> Result<Vec<CategoryScores>> {
    let mut pools: BTreeMap<&str, CategoryPool> = BTreeMap::new();
    for part in parts {
        for c in part {
            let rows = &c.scores.confusion_matrix;
            let cm =
                ConfusionMatrix::from_counts(rows.len(), rows.iter().flatten().copied().collect())?;
            let pool = match pools.entry(c.category.as_str()) {
                Entry::Occupied(e) => e.into_mut(),
                Entry::Vacant(e) => e.insert(CategoryPool::new(rows.len())?),
            };
            pool.add(c.images, &cm, c.calibration.as_ref())?;
        }
    }
    Ok(pools
        .into_iter()
        .map(|(name, pool)| pool.finish(name))
        .collect())
}

/// A Markdown table of per-category scores (empty string for no categories).
///
/// # Examples
/// ```
/// use xray_metrics::ConfusionMatrix;
/// use xray_seg::evaluate::{class_names, per_category_markdown, per_category_scores};
/// let cm = ConfusionMatrix::from_labels(&[0, 1, 2, 2], &[0, 1, 2, 1], 3).unwrap();
/// let scores = per_category_scores([Some("knee")], &[cm], None, 3).unwrap();
/// let md = per_category_markdown(&scores, &class_names(3));
/// assert!(md.contains("| knee | 1 | 4 | 0.7500 |"));
/// assert!(per_category_markdown(&[], &class_names(3)).is_empty());
/// ```
pub fn per_category_markdown(scores: &[CategoryScores], class_names: &[String]) -> String {
    if scores.is_empty() {
        return String::new();
    }
    let fixed = ["images", "pixels", "accuracy", "F1 weighted", "F1 macro"].map(String::from);
    let per_class = class_names.iter().map(|name| format!("F1 {name}"));
    let mut s = String::from("## By category (arg-max)\n\n");
    s += &table_header(
        "category",
        fixed
            .into_iter()
            .chain(per_class)
            .chain(std::iter::once("ECE".to_string())),
    );
    for c in scores {
        let l = &c.scores;
        s += &format!(
            "| {} | {} | {} | {} | {} | {} |",
            c.category,
            c.images,
            c.pixels,
            l.accuracy.map_or("n/a".into(), |a| format!("{a:.4}")),
            score(l.f1_weighted),
            score(l.f1_macro)
        );
        for &f in &l.f1_per_class {
            s += &format!(" {} |", score(f));
        }
        s += &format!(" {} |\n", c.ece.map_or("n/a".into(), score));
    }
    s
}

/// Header and rule of a Markdown table: `first` left-aligned, then the `rest` right-aligned
/// (numbers), each line ending in a newline.
pub(crate) fn table_header(first: &str, rest: impl IntoIterator<Item = String>) -> String {
    let (mut head, mut rule) = (format!("| {first} |"), String::from("|---|"));
    for name in rest {
        head += &format!(" {name} |");
        rule += "---:|";
    }
    format!("{head}\n{rule}\n")
}

/// The class names for `classes` classes: the project's names for three, else `class k`.
///
/// # Examples
/// ```
/// use xray_seg::evaluate::class_names;
/// assert_eq!(class_names(3), xray_seg::CLASS_NAMES);
/// assert_eq!(class_names(2), ["class 0", "class 1"]);
/// assert!(class_names(0).is_empty());
/// ```
pub fn class_names(classes: usize) -> Vec<String> {
    if classes == CLASS_NAMES.len() {
        CLASS_NAMES.iter().map(|s| s.to_string()).collect()
    } else {
        (0..classes).map(|k| format!("class {k}")).collect()
    }
}

/// Evaluates `predictor` on the samples `indices` of a labelled dataset, at each image's own
/// resolution, streaming image by image. Boundary distances are at each image's own pixel
/// spacing when every image's file carries one (DICOM), and in pixels otherwise
/// ([`MixedSpacing::Pixels`], with a warning in [`Evaluation::warnings`] when only some
/// do): this is what the `train` job's test-split report uses, which must not fail after
/// training. [`evaluate_samples_with`] states a spacing or refuses a mixed dataset.
///
/// # Errors
/// A dataset without masks, no indices, loading errors, a threshold outside `[0, 1]`.
///
/// # Examples
/// ```
/// use candle_core::Device;
/// use xray_data::dataset::{Dataset, DatasetOptions};
/// use xray_seg::evaluate::{class_names, evaluate_samples};
/// use xray_seg::predict::Predictor;
/// let dir = std::env::temp_dir().join(format!("xray-seg-doc-evaluate-{}", std::process::id()));
/// xray_data::synth::generate_dataset(&dir, 2, 48, 1)?;
/// let ds = Dataset::open(&dir, &DatasetOptions::default())?;
/// let predictor = Predictor::load(&xray_seg::shipped_weights_dir(), &Device::Cpu)?;
/// let eval = evaluate_samples(&predictor, &ds, &[0, 1], Some(0.5))?;
/// assert_eq!(eval.report.class_names, class_names(3));
/// // Every labelled pixel is scored once (255, "ignore", is not).
/// let mut labelled = 0;
/// for i in 0..2 {
///     let mask = ds.load(i)?.1.expect("synthetic data has masks");
///     labelled += mask.as_raw().iter().filter(|&&l| l < 3).count() as u64;
/// }
/// assert_eq!(eval.argmax.confusion_matrix.iter().flatten().sum::<u64>(), labelled);
/// let thresholded = eval.thresholded.as_ref().expect("a threshold was given");
/// assert_eq!(thresholded.method, "soft-tissue threshold 0.5");
/// assert!(!eval.per_category.is_empty()); // synthetic images have body parts
/// // Nothing to evaluate, or a threshold outside [0, 1], is an error.
/// assert!(evaluate_samples(&predictor, &ds, &[], None).is_err());
/// assert!(evaluate_samples(&predictor, &ds, &[0], Some(1.5)).is_err());
/// # std::fs::remove_dir_all(&dir).ok();
/// # Ok::<(), xray_seg::Error>(())
/// ```
pub fn evaluate_samples(
    predictor: &Predictor,
    dataset: &Dataset,
    indices: &[usize],
    tissue_threshold: Option<f32>,
) -> Result<Evaluation> {
    let opts = EvaluateOptions {
        tissue_threshold,
        mixed_spacing: MixedSpacing::Pixels,
        ..EvaluateOptions::default()
    };
    evaluate_samples_with(predictor, dataset, indices, &opts)
}

/// What [`evaluate_samples_with`] does beyond the arg-max scores.
///
/// # Examples
/// ```
/// use xray_seg::evaluate::{EvaluateOptions, MixedSpacing};
/// // The default: no threshold, each image at its file's spacing, a mixed folder refused.
/// let opts = EvaluateOptions::default();
/// assert_eq!((opts.tissue_threshold, opts.pixel_spacing_mm), (None, None));
/// assert_eq!(opts.mixed_spacing, MixedSpacing::Refuse);
/// // The paper's threshold, and 0.143 mm stated for every image.
/// let opts = EvaluateOptions {
///     tissue_threshold: Some(0.9),
///     pixel_spacing: Some(xray_seg::parse_pixel_spacing("0.143").unwrap()),
///     ..EvaluateOptions::default()
/// };
/// assert_eq!(opts.stated_spacing()?.map(|s| s.column_mm()), Some(0.143));
/// # Ok::<(), xray_seg::Error>(())
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct EvaluateOptions {
    /// Also score the labels of the paper's soft-tissue threshold `t` in `[0, 1]`
    /// ([`Evaluation::thresholded`]).
    pub tissue_threshold: Option<f32>,
    /// A pixel spacing in mm stated for every image, the same between rows and between
    /// columns: the boundary distances (HD95, ASSD, Hausdorff) are measured at it, in mm,
    /// in place of the spacing an image's DICOM file carries ([`BoundarySpacing::Stated`];
    /// a warning in [`Evaluation::warnings`] names the files whose own spacing differs).
    /// `None` (with `pixel_spacing` `None`): each image at its file's own spacing, in mm,
    /// or in pixels when no file carries one ([`BoundarySpacing`]). Give this or
    /// `pixel_spacing`, not both.
    pub pixel_spacing_mm: Option<f64>,
    /// As `pixel_spacing_mm`, with the spacing between rows and between columns apart
    /// (`evaluate --pixel-spacing ROW,COLUMN`); its source should be
    /// [`SpacingSource::Stated`].
    pub pixel_spacing: Option<PixelSpacing>,
    /// What to do when only some images' files carry a spacing and none is stated.
    pub mixed_spacing: MixedSpacing,
}

impl EvaluateOptions {
    /// The spacing stated for every image: `pixel_spacing`, or `pixel_spacing_mm` on both
    /// axes; `None` when neither is given.
    ///
    /// # Errors
    /// [`Error::Invalid`] when both are given, or for a `pixel_spacing_mm` that
    /// [`PixelSpacing::new`] refuses (not finite, not above 0, or above 10 mm: a detector
    /// pitch in micrometres, 139 for 0.139 mm).
    ///
    /// # Examples
    /// ```
    /// use xray_data::io::{PixelSpacing, SpacingSource};
    /// use xray_seg::evaluate::EvaluateOptions;
    /// let opts = EvaluateOptions { pixel_spacing_mm: Some(0.2), ..EvaluateOptions::default() };
    /// let s = opts.stated_spacing()?.expect("stated");
    /// assert_eq!((s.row_mm(), s.column_mm(), s.source()), (0.2, 0.2, SpacingSource::Stated));
    /// assert_eq!(EvaluateOptions::default().stated_spacing()?, None);
    /// let both = EvaluateOptions {
    ///     pixel_spacing: Some(PixelSpacing::new(0.2, 0.1, SpacingSource::Stated)?),
    ///     ..opts
    /// };
    /// assert!(both.stated_spacing().is_err());
    /// # Ok::<(), xray_seg::Error>(())
    /// ```
    pub fn stated_spacing(&self) -> Result<Option<PixelSpacing>> {
        match (self.pixel_spacing_mm, self.pixel_spacing) {
            (Some(_), Some(_)) => Err(Error::Invalid(
                "EvaluateOptions: give pixel_spacing_mm or pixel_spacing, not both".into(),
            )),
            (Some(mm), None) => PixelSpacing::new(mm, mm, SpacingSource::Stated)
                .map(Some)
                .map_err(|e| Error::Invalid(format!("EvaluateOptions::pixel_spacing_mm: {e}"))),
            (None, stated) => Ok(stated),
        }
    }
}

/// The warning for an image whose file's pixel spacing a stated one replaced, in the words
/// of `segment` (`SegmentOptions::pixel_spacing`); `None` when the two are the same
/// distances (where each came from aside).
///
/// # Examples
/// ```
/// use xray_data::io::{PixelSpacing, SpacingSource};
/// use xray_seg::evaluate::spacing_override_warning;
/// let stated = PixelSpacing::new(0.15, 0.15, SpacingSource::Stated)?;
/// let file = PixelSpacing::new(0.2, 0.1, SpacingSource::ImagerPixelSpacing)?;
/// let w = spacing_override_warning("images/knee.dcm", &stated, &file).expect("they differ");
/// assert_eq!(
///     w,
///     "images/knee.dcm: the stated pixel spacing (0.15 × 0.15 mm) was used in place of the \
///      file's (0.2 × 0.1 mm, ImagerPixelSpacing)"
/// );
/// assert_eq!(spacing_override_warning("a.dcm", &file, &file.with_source(SpacingSource::PixelSpacing)), None);
/// # Ok::<(), xray_data::DataError>(())
/// ```
pub fn spacing_override_warning(
    file_name: &str,
    stated: &PixelSpacing,
    file: &PixelSpacing,
) -> Option<String> {
    ((stated.row_mm(), stated.column_mm()) != (file.row_mm(), file.column_mm())).then(|| {
        format!(
            "{file_name}: the stated pixel spacing ({} × {} mm) was used in place of the \
             file's ({} × {} mm, {:?})",
            stated.row_mm(),
            stated.column_mm(),
            file.row_mm(),
            file.column_mm(),
            file.source()
        )
    })
}

/// The spacing in mm that the metrics crate measures with.
fn metric_spacing(s: &PixelSpacing) -> Spacing {
    Spacing::mm(s.row_mm(), s.column_mm())
}

/// Decides the spacing of the images `indices` without a stated one: each file's own
/// when every image's file carries one, pixels when none does; a mix is refused or
/// measured in pixels as `mixed` says. Reads every image's file first (a decode, no
/// network pass: a small part of an evaluation's time), so that a refusal comes before
/// the evaluation's work.
fn file_spacings(
    dataset: &Dataset,
    indices: &[usize],
    mixed: MixedSpacing,
    warnings: &mut Vec<String>,
) -> Result<BoundarySpacing> {
    let read: Vec<Result<(Option<PixelSpacing>, Vec<RefusedSpacing>)>> = indices
        .par_iter()
        .map(|&i| {
            let info = dataset.load_with_info(i)?.2;
            Ok((info.pixel_spacing, info.refused_spacing))
        })
        .collect();
    let (spacings, refused): (Vec<_>, Vec<_>) = read
        .into_iter()
        .collect::<Result<Vec<_>>>()?
        .into_iter()
        .unzip();
    let with = spacings.iter().filter(|s| s.is_some()).count();
    if with == 0 {
        return Ok(BoundarySpacing::Pixels);
    }
    let first_without = spacings
        .iter()
        .zip(indices.iter().zip(&refused))
        .find_map(|(s, i)| s.is_none().then_some(i));
    if let Some((&i, refused)) = first_without {
        let without = spacings.len() - with;
        // Why that file has none, when it holds a spacing attribute that measures nothing.
        let why = refused
            .iter()
            .map(|r| format!(", whose {r} is no spacing"))
            .collect::<String>();
        let file = format!("{}{why}", dataset.samples[i].image.display());
        let (does, carries) = if without == 1 {
            ("does", "carries")
        } else {
            ("do", "carry")
        };
        return match mixed {
            MixedSpacing::Refuse => Err(Error::Invalid(format!(
                "{with} of {} images carry a pixel spacing and {without} {does} not (the first: \
                 {file}; PNG, TIFF and JPEG files never do): their boundary distances would \
                 be partly in mm and partly in pixels, and no mean holds both. State one \
                 spacing for every image (evaluate --pixel-spacing MM, \
                 EvaluateOptions::pixel_spacing_mm), or evaluate the two kinds apart",
                spacings.len()
            ))),
            MixedSpacing::Pixels => {
                warnings.push(format!(
                    "boundary distances in pixels for every image: {without} of {} images \
                     {carries} no pixel spacing (the first: {file}), so the {with} that do were \
                     measured in pixels too",
                    spacings.len()
                ));
                Ok(BoundarySpacing::Pixels)
            }
        };
    }
    // All in mm: say so when they measure in different planes.
    let from = |source| {
        spacings
            .iter()
            .filter(|s| s.is_some_and(|s| s.source() == source))
            .count()
    };
    let (calibrated, detector) = (
        from(SpacingSource::PixelSpacing),
        from(SpacingSource::ImagerPixelSpacing),
    );
    if calibrated > 0 && detector > 0 {
        warnings.push(format!(
            "the images' spacings come from different attributes: {calibrated} from \
             PixelSpacing, {detector} from ImagerPixelSpacing (the detector's pitch, at which \
             lengths in the patient read magnified, typically by 1.05-1.2); their boundary \
             distances are in mm of different planes (docs/data-format.md, \"Pixel spacing\")"
        ));
    }
    Ok(BoundarySpacing::FromFiles)
}

/// Stated spacings that replaced a file's, one entry per distinct file spacing: the first
/// file with it, and how many more.
#[derive(Default)]
struct Overrides(Vec<(PixelSpacing, String, usize)>);

impl Overrides {
    fn add(&mut self, file: PixelSpacing, name: impl FnOnce() -> String) {
        let same = |s: &PixelSpacing| {
            (s.row_mm(), s.column_mm(), s.source())
                == (file.row_mm(), file.column_mm(), file.source())
        };
        match self.0.iter_mut().find(|(s, _, _)| same(s)) {
            Some(entry) => entry.2 += 1,
            None => self.0.push((file, name(), 0)),
        }
    }

    fn warnings(&self, stated: &PixelSpacing) -> impl Iterator<Item = String> + '_ {
        let stated = *stated;
        self.0.iter().filter_map(move |(file, name, more)| {
            let w = spacing_override_warning(name, &stated, file)?;
            Some(match more {
                0 => w,
                1 => format!("{w}; so it was for 1 more image whose file says the same"),
                n => format!("{w}; so it was for {n} more images whose files say the same"),
            })
        })
    }
}

/// As [`evaluate_samples`], with [`EvaluateOptions`]: boundary distances at a stated
/// spacing, or at each image's own (its DICOM file's, rows and columns apart), or in pixels
/// when no image's file carries one ([`Evaluation::spacing`]). A dataset where only some
/// files carry a spacing is refused by default ([`MixedSpacing`]).
///
/// # Errors
/// As [`evaluate_samples`]; also [`Error::Invalid`] for a stated spacing that
/// [`EvaluateOptions::stated_spacing`] refuses, and, with [`MixedSpacing::Refuse`] and no
/// stated spacing, for a dataset where some images' files carry a spacing and others do
/// not (before any image is evaluated; the message names the first without one).
///
/// # Examples
/// ```
/// use candle_core::Device;
/// use xray_data::dataset::{Dataset, DatasetOptions};
/// use xray_seg::evaluate::{evaluate_samples_with, EvaluateOptions};
/// use xray_seg::predict::Predictor;
/// let dir = std::env::temp_dir().join(format!("xray-seg-doc-evaluate-mm-{}", std::process::id()));
/// xray_data::synth::generate_dataset(&dir, 1, 48, 1)?;
/// let ds = Dataset::open(&dir, &DatasetOptions::default())?;
/// let predictor = Predictor::load(&xray_seg::shipped_weights_dir(), &Device::Cpu)?;
/// let in_px = evaluate_samples_with(&predictor, &ds, &[0], &EvaluateOptions::default())?;
/// let opts = EvaluateOptions { pixel_spacing_mm: Some(0.2), ..EvaluateOptions::default() };
/// let in_mm = evaluate_samples_with(&predictor, &ds, &[0], &opts)?;
/// assert_eq!((in_px.report.pixel_spacing, in_mm.report.pixel_spacing), (1.0, 0.2));
/// assert_eq!(in_px.spacing, xray_seg::evaluate::BoundarySpacing::Pixels); // a PNG has none
/// assert_eq!(in_mm.report.distance_unit(), xray_metrics::DistanceUnit::Millimetres);
/// let hd95 = |e: &xray_seg::evaluate::Evaluation| e.report.boundary.as_ref().unwrap()[2].hd95;
/// if let (Some(px), Some(mm)) = (hd95(&in_px), hd95(&in_mm)) {
///     assert!((mm - 0.2 * px).abs() < 1e-9);
/// }
/// assert!(in_mm.report.to_markdown().contains("HD95 mm"));
/// for v in [0.0, 139.0] {
///     let bad = EvaluateOptions { pixel_spacing_mm: Some(v), ..EvaluateOptions::default() };
///     let e = evaluate_samples_with(&predictor, &ds, &[0], &bad).unwrap_err();
///     assert!(e.to_string().contains("pixel_spacing_mm"), "{e}");
/// }
/// # std::fs::remove_dir_all(&dir).ok();
/// # Ok::<(), xray_seg::Error>(())
/// ```
pub fn evaluate_samples_with(
    predictor: &Predictor,
    dataset: &Dataset,
    indices: &[usize],
    opts: &EvaluateOptions,
) -> Result<Evaluation> {
    let tissue_threshold = opts.tissue_threshold;
    if indices.is_empty() {
        return Err(Error::Invalid(
            "nothing to evaluate: no labelled samples".into(),
        ));
    }
    if !dataset.has_masks() {
        return Err(Error::Invalid(format!(
            "{}: evaluation needs masks/ beside images/",
            dataset.root.display()
        )));
    }
    let c = predictor.num_classes();
    let names = class_names(c);
    let stated = opts.stated_spacing()?;
    let mut warnings = Vec::new();
    let spacing = match stated {
        Some(s) => BoundarySpacing::Stated(s),
        None => file_spacings(dataset, indices, opts.mixed_spacing, &mut warnings)?,
    };
    let mut overrides = Overrides::default();
    let mut image_spacings = Vec::new();
    let mut evaluator = Evaluator::new(EvalConfig::new(names.clone()))?;
    let mut thresh_cm = ConfusionMatrix::new(c)?;
    let thresholds = tissue_threshold.map(|t| ThresholdConfig {
        soft_threshold: t,
        ..ThresholdConfig::default()
    });
    if let Some(t) = &thresholds {
        t.validate(c)?;
    }
    for &i in indices {
        let (image, mask, info) = dataset.load_with_info(i)?;
        let mask =
            mask.ok_or_else(|| Error::Invalid(format!("{}: no mask", dataset.samples[i].stem)))?;
        let (w, h) = (image.width() as usize, image.height() as usize);
        let probs = predictor.predict(&image)?;
        let at = match spacing {
            BoundarySpacing::Pixels => None,
            BoundarySpacing::Stated(s) => {
                if let Some(file) = info.pixel_spacing {
                    overrides.add(file, || dataset.samples[i].image.display().to_string());
                }
                Some(s)
            }
            // Every file had one a moment ago; one changed since is measured in pixels,
            // which the evaluator refuses to mix with the others' mm.
            BoundarySpacing::FromFiles => info.pixel_spacing,
        };
        match at {
            Some(s) => {
                evaluator.add_image_with_spacing(
                    mask.as_raw(),
                    &probs,
                    w,
                    h,
                    metric_spacing(&s),
                )?;
                image_spacings.push(ImageSpacing {
                    stem: dataset.samples[i].stem.clone(),
                    spacing: s,
                    file: info.pixel_spacing,
                });
            }
            None => evaluator.add_image(mask.as_raw(), &probs, w, h)?,
        }
        if let Some(t) = &thresholds {
            let map = ProbMap::new(&probs, c, h, w)?;
            let category = dataset.samples[i].category.as_deref();
            let labels = apply_thresholds(&map, t, category)?;
            thresh_cm.add_labels(mask.as_raw(), labels.as_raw())?;
        }
    }
    // The evaluator already counts the arg-max predictions and bins the confidences per
    // image; reuse both.
    let argmax = LabelScores::from_confusion("arg-max", evaluator.confusion());
    let per_category = per_category_scores(
        indices
            .iter()
            .map(|&i| dataset.samples[i].category.as_deref()),
        evaluator.per_image_confusion(),
        Some(evaluator.per_image_calibration()),
        c,
    )?;
    if let Some(s) = stated {
        warnings.extend(overrides.warnings(&s));
    }
    Ok(Evaluation {
        report: evaluator.finish()?,
        argmax,
        thresholded: tissue_threshold
            .map(|t| LabelScores::from_confusion(format!("soft-tissue threshold {t}"), &thresh_cm)),
        per_category,
        spacing,
        warnings,
        image_spacings,
    })
}

/// Checks `dir` as the output folder of a stand-alone evaluation, before any work:
/// [`crate::check_out_dir`], and not a training run's folder (one holding
/// [`crate::train::RUN_OPTIONS_FILE`], `log.jsonl` or `best/`), whose test-split report,
/// plots and `categories.json` the evaluation would overwrite with scores of other images.
///
/// # Errors
/// [`Error::Invalid`] naming the folder.
///
/// # Examples
/// ```
/// let dir = std::env::temp_dir().join(format!("xray-seg-doc-eval-out-{}", std::process::id()));
/// std::fs::create_dir_all(&dir)?;
/// assert!(xray_seg::evaluate::check_evaluation_out_dir(&dir).is_ok());
/// std::fs::write(dir.join("log.jsonl"), "")?;
/// let e = xray_seg::evaluate::check_evaluation_out_dir(&dir).unwrap_err();
/// assert!(e.to_string().contains("training run"));
/// # std::fs::remove_dir_all(&dir)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn check_evaluation_out_dir(dir: &Path) -> Result<()> {
    crate::check_out_dir(dir)?;
    if let Some(mark) = crate::train::train_run_mark(dir) {
        return Err(Error::Invalid(format!(
            "{} holds a training run ({mark}): its report and plots would be overwritten by \
             this evaluation; give --out another folder",
            dir.display()
        )));
    }
    Ok(())
}

/// Writes `report.json`, `report.md` (with the thresholded comparison when present, and the
/// per-category table when the dataset has categories), `thresholds.json` (when
/// thresholded), `categories.json` (per-category scores, when there are any) and
/// `spacings.json` (each image's pixel spacing, [`Evaluation::image_spacings`], when the
/// boundary distances are in mm); an earlier evaluation's copy of any of these three is
/// removed when this one has none; and the plots (`roc`, `reliability`, `confusion`, PNG and
/// SVG) into `dir`. The JSON and Markdown files are each replaced atomically (a temporary file
/// renamed into place): a write that fails part way, on a full disk, leaves an earlier
/// evaluation's file as it was.
///
/// # Errors
/// File-system or plotting errors.
///
/// # Examples
/// ```
/// use candle_core::Device;
/// use xray_data::dataset::{Dataset, DatasetOptions};
/// use xray_seg::evaluate::{evaluate_samples, write_evaluation};
/// use xray_seg::predict::Predictor;
/// let dir = std::env::temp_dir().join(format!("xray-seg-doc-write-eval-{}", std::process::id()));
/// xray_data::synth::generate_dataset(&dir.join("data"), 1, 32, 1)?;
/// let ds = Dataset::open(&dir.join("data"), &DatasetOptions::default())?;
/// let predictor = Predictor::load(&xray_seg::shipped_weights_dir(), &Device::Cpu)?;
/// let out = dir.join("report");
/// write_evaluation(&evaluate_samples(&predictor, &ds, &[0], Some(0.9))?, &out)?;
/// for file in ["report.json", "report.md", "thresholds.json", "categories.json", "roc.svg"] {
///     assert!(out.join(file).is_file(), "{file}");
/// }
/// // Evaluated again without the threshold: the earlier thresholds.json goes.
/// write_evaluation(&evaluate_samples(&predictor, &ds, &[0], None)?, &out)?;
/// assert!(!out.join("thresholds.json").exists());
/// let md = std::fs::read_to_string(out.join("report.md"))?;
/// assert!(md.contains("By category"), "{md}");
/// # std::fs::remove_dir_all(&dir)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn write_evaluation(eval: &Evaluation, dir: &Path) -> Result<()> {
    crate::check_out_dir(dir)?;
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    // Each file whole or not at all: a write that fails part way (a full disk) keeps an
    // earlier evaluation's file as it was instead of cutting it.
    let write = |name: &str, text: &str| write_bytes_atomic(&dir.join(name), text.as_bytes());
    eval.report.validate()?;
    write("report.json", &eval.report.to_json()?)?;
    let mut md = eval.report.to_markdown();
    if let Some(t) = &eval.thresholded {
        md += "\n";
        md += &eval.argmax.to_markdown(&eval.report.class_names);
        md += "\n";
        md += &t.to_markdown(&eval.report.class_names);
        let json = serde_json::to_string_pretty(&[&eval.argmax, t])
            .map_err(|e| Error::Invalid(e.to_string()))?;
        write("thresholds.json", &json)?;
    } else {
        remove_stale(&dir.join("thresholds.json"))?;
    }
    if !eval.per_category.is_empty() {
        md += "\n";
        md += &per_category_markdown(&eval.per_category, &eval.report.class_names);
        let json = serde_json::to_string_pretty(&eval.per_category)
            .map_err(|e| Error::Invalid(e.to_string()))?;
        write("categories.json", &json)?;
    } else {
        remove_stale(&dir.join("categories.json"))?;
    }
    if eval.image_spacings.is_empty() {
        remove_stale(&dir.join("spacings.json"))?;
    } else {
        let json = serde_json::to_string_pretty(&eval.image_spacings)
            .map_err(|e| Error::Invalid(e.to_string()))?;
        write("spacings.json", &json)?;
    }
    write("report.md", &md)?;
    xray_metrics::save_plots(&eval.report, dir)?;
    Ok(())
}

/// Removes an earlier evaluation's optional output that this one does not write, so that
/// the folder does not keep scores of other images beside the new report.
fn remove_stale(path: &Path) -> Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::io(path, e)),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_category_without_scored_pixels_has_no_scores_and_is_not_the_weakest() {
        // "knee": one image, every pixel ignored; "hand": scored, half right.
        let empty = ConfusionMatrix::new(3).unwrap();
        let half = ConfusionMatrix::from_labels(&[0, 1, 2, 2], &[0, 1, 0, 1], 3).unwrap();
        let mut bins = ReliabilityBins::new(15).unwrap();
        bins.push(0.9, true);
        bins.push(0.8, false);
        let calibration = [ReliabilityBins::new(15).unwrap(), bins];
        let scores = per_category_scores(
            [Some("knee"), Some("hand")],
            &[empty, half],
            Some(&calibration),
            3,
        )
        .unwrap();
        let (hand, knee) = (&scores[0], &scores[1]);
        assert_eq!((knee.category.as_str(), knee.pixels), ("knee", 0));
        assert!(knee.scores.f1_weighted.is_nan() && knee.scores.f1_macro.is_nan());
        assert_eq!(knee.ece, None);
        assert_eq!(
            knee.summary_line(),
            "knee             weighted F1 n/a, ECE n/a over   1 image(s)"
        );
        assert!(
            hand.summary_line().contains("weighted F1 0."),
            "{}",
            hand.summary_line()
        );
        let md = per_category_markdown(&scores, &class_names(3));
        assert!(
            md.contains("| knee | 1 | 0 | n/a | n/a | n/a | n/a | n/a | n/a | n/a |"),
            "{md}"
        );
        assert!(!md.contains("NaN"), "{md}");
        // JSON says null, not 0.
        let json = serde_json::to_value(knee).unwrap();
        assert!(json["scores"]["f1_weighted"].is_null(), "{json}");
        // The train job names the category of least weighted F1 (`total_cmp`): never one
        // without pixels, whose NaN sorts after every score.
        let weakest = scores
            .iter()
            .min_by(|a, b| a.scores.f1_weighted.total_cmp(&b.scores.f1_weighted))
            .unwrap();
        assert_eq!(weakest.category, "hand");
        let md = LabelScores::from_confusion("arg-max", &ConfusionMatrix::new(3).unwrap())
            .to_markdown(&class_names(3));
        assert!(
            md.contains("| F1 weighted | n/a |") && !md.contains("NaN"),
            "{md}"
        );
    }
}
