//! `evaluate`: a checkpoint against a labelled dataset folder → report and plots, with and
//! without the paper's soft-tissue threshold.

use std::collections::btree_map::{BTreeMap, Entry};
use std::path::Path;

use serde::Serialize;
use xnet_model::checkpoint::write_bytes_atomic;
use xray_data::dataset::Dataset;
use xray_metrics::{
    Average, ClassMetric, ConfusionMatrix, EvalConfig, Evaluator, ReliabilityBins, Report,
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
/// resolution, streaming image by image.
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
        ..EvaluateOptions::default()
    };
    evaluate_samples_with(predictor, dataset, indices, &opts)
}

/// What [`evaluate_samples_with`] does beyond the arg-max scores.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct EvaluateOptions {
    /// Also score the labels of the paper's soft-tissue threshold `t` in `[0, 1]`
    /// ([`Evaluation::thresholded`]).
    pub tissue_threshold: Option<f32>,
    /// The images' pixel spacing in mm, for boundary distances (HD95, ASSD, Hausdorff) in mm
    /// ([`xray_metrics::Report::pixel_spacing`]); `None` keeps them in pixels. One spacing
    /// for every image: a dataset mixing detectors is measured in pixels, or per detector.
    pub pixel_spacing_mm: Option<f64>,
}

/// As [`evaluate_samples`], with [`EvaluateOptions`].
///
/// # Errors
/// As [`evaluate_samples`]; also [`Error::Invalid`] for a `pixel_spacing_mm` that
/// [`xray_data::io::PixelSpacing::new`] refuses (not finite, not above 0, or above 10 mm:
/// a detector pitch in micrometres, 139 for 0.139 mm).
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
    let mut config = EvalConfig::new(names.clone());
    if let Some(spacing) = opts.pixel_spacing_mm {
        // The bound every spacing in the workspace has (a pitch in micrometres is refused).
        xray_data::io::PixelSpacing::new(spacing, spacing, xray_data::io::SpacingSource::Stated)
            .map_err(|e| Error::Invalid(format!("EvaluateOptions::pixel_spacing_mm: {e}")))?;
        config.pixel_spacing = spacing;
    }
    let mut evaluator = Evaluator::new(config)?;
    let mut thresh_cm = ConfusionMatrix::new(c)?;
    let thresholds = tissue_threshold.map(|t| ThresholdConfig {
        soft_threshold: t,
        ..ThresholdConfig::default()
    });
    if let Some(t) = &thresholds {
        t.validate(c)?;
    }
    for &i in indices {
        let (image, mask) = dataset.load(i)?;
        let mask =
            mask.ok_or_else(|| Error::Invalid(format!("{}: no mask", dataset.samples[i].stem)))?;
        let (w, h) = (image.width() as usize, image.height() as usize);
        let probs = predictor.predict(&image)?;
        evaluator.add_image(mask.as_raw(), &probs, w, h)?;
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
    Ok(Evaluation {
        report: evaluator.finish()?,
        argmax,
        thresholded: tissue_threshold
            .map(|t| LabelScores::from_confusion(format!("soft-tissue threshold {t}"), &thresh_cm)),
        per_category,
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
/// thresholded) and `categories.json` (per-category scores, when there are any; an earlier
/// evaluation's copy of either is removed when this one has none) and the plots (`roc`, `reliability`, `confusion`, PNG and
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
