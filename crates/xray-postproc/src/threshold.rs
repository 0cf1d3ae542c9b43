//! Probability thresholds: the paper's soft-tissue confidence threshold, per-category
//! thresholds, a per-class "uncertain" threshold, and the sweep that helps pick `t`.

use std::collections::BTreeMap;

use image::GrayImage;
use serde::{Deserialize, Serialize};

use crate::error::{PostprocError, Result};
use crate::probs::{check_class_count, check_unit, ProbMap};

/// Label written for pixels that are uncertain, outside the field, or otherwise ignored:
/// the same value and name as `xray_data::IGNORE_LABEL`, `xnet_model::IGNORE_LABEL` and
/// `xray_metrics::IGNORE_LABEL`.
///
/// # Examples
/// ```
/// use xray_postproc::{apply_thresholds, ProbMap, ThresholdConfig, IGNORE_LABEL};
/// // One pixel, 3 classes, no class at least 50 % sure: "uncertain".
/// let p = [0.4f32, 0.3, 0.3];
/// let map = ProbMap::new(&p, 3, 1, 1)?;
/// let cfg = ThresholdConfig { min_confidence: vec![0.5; 3], ..ThresholdConfig::default() };
/// assert_eq!(apply_thresholds(&map, &cfg, None)?.as_raw(), &vec![IGNORE_LABEL]);
/// # Ok::<(), xray_postproc::PostprocError>(())
/// ```
pub const IGNORE_LABEL: u8 = 255;

/// The ignore label under its old name: [`IGNORE_LABEL`], the name the other crates of the
/// workspace use. Kept so that code written against it still builds (with a deprecation
/// warning).
///
/// # Examples
/// ```
/// #[allow(deprecated)]
/// let old = xray_postproc::IGNORE;
/// assert_eq!(old, xray_postproc::IGNORE_LABEL);
/// ```
///
/// Its uses are flagged (here turned into an error) so that code moves to the new name:
/// ```compile_fail
/// #![deny(deprecated)]
/// let old = xray_postproc::IGNORE;
/// ```
#[deprecated(note = "use IGNORE_LABEL")]
pub const IGNORE: u8 = IGNORE_LABEL;

/// What to do when `soft_class` is not a class of the map ([`ThresholdConfig::validate`]):
/// with the default `soft_class` 1, a one-class map.
const SOFT_CLASS_HINT: &str = "the soft-tissue threshold needs its class in the map \
     (soft_class, 1 by default; thresholds.soft_class in a pipeline config): give a map of at \
     least two classes (for a single sigmoid output p, the two planes 1 - p and p), or set \
     soft_class to one of the map's classes";

/// How probabilities become labels.
///
/// The rule per pixel: take the most likely class; if it is `soft_class` and its probability
/// is not above the soft-tissue threshold `t`, take the most likely of the *other* classes
/// instead (XNet's post-processing, which cut soft-tissue false positives from 5% to 0.5%).
/// Then, if `min_confidence` is non-empty and the chosen class's probability is below
/// `min_confidence[class]`, the pixel becomes [`IGNORE_LABEL`] ("uncertain").
///
/// `t` is `per_category[category]` when a category (e.g. a body part) is given and listed,
/// else `soft_threshold`.
///
/// # Class counts
///
/// A map must have `soft_class` among its classes, even with no soft-tissue threshold set
/// (a config naming a class the map lacks was written for other maps), so the default `soft_class` 1
/// accepts maps of 2 to 255 classes and refuses a one-class map
/// ([`PostprocError::ClassOutOfRange`], saying what to do). A one-class map has nothing to
/// decide, since every pixel's arg-max is class 0; a network with one sigmoid output `p`
/// gives the two planes `1 − p` and `p`. At most 255 classes: labels are `u8` and 255 is
/// [`IGNORE_LABEL`]. A non-empty `min_confidence` needs exactly one value per class.
///
/// # Examples
/// ```
/// use xray_postproc::{ProbMap, ThresholdConfig, apply_thresholds};
/// // 3 classes, one pixel: P = (0.3, 0.45, 0.25)
/// let p = [0.3f32, 0.45, 0.25];
/// let map = ProbMap::new(&p, 3, 1, 1).unwrap();
/// let cfg = ThresholdConfig { soft_threshold: 0.5, ..Default::default() };
/// let labels = apply_thresholds(&map, &cfg, None).unwrap();
/// assert_eq!(labels.get_pixel(0, 0)[0], 0); // soft tissue not confident enough -> open beam
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ThresholdConfig {
    /// Index of the soft-tissue class (1 in the project's convention). It must be a class of
    /// the map, so the default 1 needs at least two classes (see "Class counts" above).
    pub soft_class: usize,
    /// Soft-tissue threshold `t` in `[0, 1]`; 0 disables it (plain arg-max).
    pub soft_threshold: f32,
    /// Soft-tissue thresholds per category (e.g. `"hand" -> 0.9`), overriding `soft_threshold`.
    /// Keys match categories whatever their case; two keys that differ only in case are an
    /// error.
    pub per_category: BTreeMap<String, f32>,
    /// Per-class minimum confidence; empty disables it, otherwise one value in `[0, 1]` per class.
    pub min_confidence: Vec<f32>,
}

impl Default for ThresholdConfig {
    fn default() -> Self {
        Self {
            soft_class: 1,
            soft_threshold: 0.0,
            per_category: BTreeMap::new(),
            min_confidence: Vec::new(),
        }
    }
}

impl ThresholdConfig {
    /// Whether these settings give the plain arg-max for every pixel: no soft-tissue
    /// threshold (global or per category) and no minimum confidence above 0. Then only the
    /// order of each pixel's probabilities matters, not their values.
    ///
    /// # Examples
    /// ```
    /// use xray_postproc::ThresholdConfig;
    /// let mut cfg = ThresholdConfig::default();
    /// assert!(cfg.is_plain_argmax());
    /// cfg.soft_threshold = 0.9;
    /// assert!(!cfg.is_plain_argmax());
    /// ```
    pub fn is_plain_argmax(&self) -> bool {
        self.soft_threshold == 0.0
            && self.per_category.values().all(|&t| t == 0.0)
            && self.min_confidence.iter().all(|&c| c == 0.0)
    }

    /// Checks every threshold against `[0, 1]` (NaN and infinities refused) and the class
    /// indices against a map of `classes` classes.
    ///
    /// # Errors
    /// [`PostprocError::OutOfRange`] naming the threshold,
    /// [`PostprocError::ClassOutOfRange`] when `classes` exceeds 255 or `soft_class` is not
    /// below it (with the default `soft_class` 1: a one-class map, see "Class counts" on
    /// [`ThresholdConfig`]), or
    /// [`PostprocError::ShapeMismatch`] (wrong `min_confidence` length), or
    /// [`PostprocError::Config`] for two `per_category` keys that differ only in case.
    ///
    /// # Examples
    /// ```
    /// use xray_postproc::{PostprocError, ThresholdConfig};
    /// let cfg = ThresholdConfig::default(); // soft_class 1
    /// assert!(cfg.validate(2).is_ok());
    /// let e = cfg.validate(1).unwrap_err();
    /// assert!(matches!(e, PostprocError::ClassOutOfRange { class: 1, classes: 1, .. }));
    /// assert!(e.to_string().contains("at least two classes"), "{e}");
    /// ```
    pub fn validate(&self, classes: usize) -> Result<()> {
        check_class_count(classes)?;
        if self.soft_class >= classes {
            return Err(PostprocError::ClassOutOfRange {
                name: "soft_class",
                class: self.soft_class,
                classes,
                hint: SOFT_CLASS_HINT,
            });
        }
        check_unit("soft_threshold", self.soft_threshold)?;
        for (k, &v) in &self.per_category {
            check_unit(&format!("per_category[{k:?}]"), v)?;
        }
        self.check_category_keys()?;
        if !self.min_confidence.is_empty() && self.min_confidence.len() != classes {
            return Err(PostprocError::ShapeMismatch {
                what: "min_confidence",
                expected: format!("{classes} values (one per class) or none"),
                found: format!("{} values", self.min_confidence.len()),
            });
        }
        for (c, &v) in self.min_confidence.iter().enumerate() {
            check_unit(&format!("min_confidence[{c}]"), v)?;
        }
        Ok(())
    }

    /// Two [`Self::per_category`] keys that differ only in case (or surrounding blanks) are
    /// an error: they would serve the same category.
    pub(crate) fn check_category_keys(&self) -> Result<()> {
        let keys: Vec<&String> = self.per_category.keys().collect();
        for (i, a) in keys.iter().enumerate() {
            if let Some(b) = keys[i + 1..]
                .iter()
                .find(|b| b.trim().eq_ignore_ascii_case(a.trim()))
            {
                return Err(PostprocError::Config(format!(
                    "thresholds.per_category keys {a:?} and {b:?} name the same category \
                     (keys match whatever their case): keep one"
                )));
            }
        }
        Ok(())
    }

    /// The soft-tissue threshold in force for `category`: its [`Self::per_category`] entry
    /// (keys match whatever their case: a file keyed `"CHEST"`, as DICOM writes body parts,
    /// serves the category `"chest"`), else [`Self::soft_threshold`].
    ///
    /// # Examples
    /// ```
    /// use xray_postproc::ThresholdConfig;
    /// let mut cfg = ThresholdConfig::default();
    /// cfg.per_category.insert("CHEST".into(), 0.9);
    /// assert_eq!(cfg.threshold_for(Some("chest")), 0.9);
    /// assert_eq!(cfg.threshold_for(Some("hand")), cfg.soft_threshold);
    /// assert_eq!(cfg.category_key(Some("Chest")), Some("CHEST"));
    /// ```
    pub fn threshold_for(&self, category: Option<&str>) -> f32 {
        self.category_key(category)
            .and_then(|k| self.per_category.get(k).copied())
            .unwrap_or(self.soft_threshold)
    }

    /// The [`Self::per_category`] key that serves `category` (the same name, else the same
    /// name in another case), or `None` when no entry does and the default applies.
    ///
    /// # Examples
    /// ```
    /// use xray_postproc::ThresholdConfig;
    /// let mut cfg = ThresholdConfig::default();
    /// cfg.per_category.insert("CHEST".into(), 0.9);
    /// cfg.per_category.insert("hand".into(), 0.95);
    /// assert_eq!(cfg.category_key(Some("hand")), Some("hand"));
    /// assert_eq!(cfg.category_key(Some(" chest ")), Some("CHEST")); // case and blanks
    /// assert_eq!(cfg.category_key(Some("knee")), None); // soft_threshold applies
    /// assert_eq!(cfg.category_key(None), None);
    /// ```
    pub fn category_key(&self, category: Option<&str>) -> Option<&str> {
        let c = category?.trim();
        self.per_category
            .get_key_value(c)
            .or_else(|| {
                self.per_category
                    .iter()
                    .find(|(k, _)| k.trim().eq_ignore_ascii_case(c))
            })
            .map(|(k, _)| k.as_str())
    }
}

/// Most likely class per pixel (ties go to the lower index). Every label is a class, never
/// [`IGNORE_LABEL`]: a [`ProbMap`] has at most 255 classes.
///
/// # Examples
/// ```
/// use xray_postproc::{ProbMap, argmax};
/// let p = [0.9f32, 0.2, 0.1, 0.8]; // 2 classes, 1 x 2
/// let l = argmax(&ProbMap::new(&p, 2, 1, 2).unwrap());
/// assert_eq!(l.as_raw(), &vec![0u8, 1]);
/// ```
pub fn argmax(probs: &ProbMap) -> GrayImage {
    let cfg = ThresholdConfig {
        soft_class: 0,
        ..Default::default()
    };
    label_with(probs, &cfg, 0.0)
}

/// Applies [`ThresholdConfig`] to a probability map, giving a label map (`W × H`).
///
/// # Errors
/// When the config fails [`ThresholdConfig::validate`] for this map's class count (with the
/// default `soft_class`, a one-class map).
///
/// # Examples
/// ```
/// # fn main() -> Result<(), xray_postproc::PostprocError> {
/// use xray_postproc::{apply_thresholds, ProbMap, ThresholdConfig, IGNORE_LABEL};
/// // 3 classes, 1 × 2 pixels: pixel 0 is bone at 0.9, pixel 1 bone at only 0.4.
/// let probs = [0.05, 0.3, /* soft tissue */ 0.05, 0.3, /* bone */ 0.9, 0.4];
/// let map = ProbMap::new(&probs, 3, 1, 2)?;
/// let cfg = ThresholdConfig { min_confidence: vec![0.5; 3], ..ThresholdConfig::default() };
/// assert_eq!(apply_thresholds(&map, &cfg, None)?.as_raw(), &vec![2, IGNORE_LABEL]); // uncertain
/// // `min_confidence` needs one value per class.
/// let two = ThresholdConfig { min_confidence: vec![0.5; 2], ..ThresholdConfig::default() };
/// assert!(apply_thresholds(&map, &two, None).is_err());
/// # Ok(())
/// # }
/// ```
pub fn apply_thresholds(
    probs: &ProbMap,
    cfg: &ThresholdConfig,
    category: Option<&str>,
) -> Result<GrayImage> {
    cfg.validate(probs.classes())?;
    Ok(label_with(probs, cfg, cfg.threshold_for(category)))
}

fn label_with(probs: &ProbMap, cfg: &ThresholdConfig, t: f32) -> GrayImage {
    let (w, h, c) = (probs.width(), probs.height(), probs.classes());
    let n = w * h;
    let data = probs.data();
    let mut out = vec![0u8; n];
    if c == 3 {
        label_three(data, n, cfg, t, &mut out);
    } else {
        for (i, o) in out.iter_mut().enumerate() {
            let (best, second) = best_two(data, c, n, i, cfg.soft_class);
            *o = finish_label(|k| data[k * n + i], best, second, cfg, t);
        }
    }
    GrayImage::from_raw(w as u32, h as u32, out).unwrap_or_default()
}

/// The threshold rule and `min_confidence` for one pixel whose probabilities `p(class)`
/// give `best` overall and `second` among the classes other than the soft one.
#[inline(always)]
fn finish_label(
    p: impl Fn(usize) -> f32,
    best: usize,
    second: usize,
    cfg: &ThresholdConfig,
    t: f32,
) -> u8 {
    let lab = if t > 0.0 && best == cfg.soft_class && second != best && p(best) <= t {
        second
    } else {
        best
    };
    if !cfg.min_confidence.is_empty() && p(lab) < cfg.min_confidence[lab] {
        IGNORE_LABEL
    } else {
        lab as u8
    }
}

/// [`label_with`] for the project's three classes: the arg-max comparisons of
/// [`best_two`] in the same order, over the three planes zipped, so the loop has no bounds
/// checks or class loop (the pixel loop of `segment` on a 2000² radiograph).
fn label_three(data: &[f32], n: usize, cfg: &ThresholdConfig, t: f32, out: &mut [u8]) {
    let (p0, rest) = data.split_at(n);
    let (p1, p2) = rest.split_at(n);
    // The two classes other than the soft one, in index order (ties go to the lower).
    let (x, y) = match cfg.soft_class {
        0 => (1, 2),
        1 => (0, 2),
        _ => (0, 1),
    };
    for (((o, &a), &b), &c) in out.iter_mut().zip(p0).zip(p1).zip(p2) {
        let v = [a, b, c];
        let mut best = 0;
        if b > a {
            best = 1;
        }
        if c > v[best] {
            best = 2;
        }
        let second = if v[y] > v[x] { y } else { x };
        *o = finish_label(|k| v[k], best, second, cfg, t);
    }
}

/// Returns (arg-max over all classes, arg-max over classes other than `skip`).
#[inline]
fn best_two(data: &[f32], classes: usize, n: usize, i: usize, skip: usize) -> (usize, usize) {
    let mut best = 0;
    let mut other = usize::MAX;
    for k in 0..classes {
        let v = data[k * n + i];
        if v > data[best * n + i] {
            best = k;
        }
        if k != skip && (other == usize::MAX || v > data[other * n + i]) {
            other = k;
        }
    }
    (best, if other == usize::MAX { best } else { other })
}

/// One point of a soft-tissue threshold sweep.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SweepPoint {
    /// The threshold `t`.
    pub threshold: f32,
    /// Pixels labelled soft tissue that are soft tissue.
    pub true_positives: u64,
    /// Pixels labelled soft tissue that are not.
    pub false_positives: u64,
    /// Soft-tissue pixels labelled otherwise.
    pub false_negatives: u64,
    /// Other pixels labelled otherwise.
    pub true_negatives: u64,
    /// `FP / (FP + TN)`: share of non-soft-tissue pixels wrongly called soft tissue.
    pub false_positive_rate: f64,
    /// `TP / (TP + FN)`: share of soft-tissue pixels found.
    pub recall: f64,
    /// `TP / (TP + FP)` (1 when nothing is labelled soft tissue).
    pub precision: f64,
}

/// Sweeps the soft-tissue threshold over `thresholds` and reports, for each, the
/// false-positive rate and recall of the soft-tissue class against `truth`
/// (`W × H` labels; [`IGNORE_LABEL`] pixels are skipped), with the same rule as
/// [`apply_thresholds`] (no `min_confidence`).
///
/// # Examples
/// ```
/// use xray_postproc::{ProbMap, threshold_sweep};
/// let p = [0.4f32, 0.1, 0.6, 0.9]; // 2 classes, 1 x 2; class 1 = soft tissue
/// let m = ProbMap::new(&p, 2, 1, 2).unwrap();
/// let s = threshold_sweep(&m, &[0, 1], 1, &[0.0, 0.7]).unwrap();
/// assert_eq!(s[0].recall, 1.0);
/// assert_eq!(s[0].false_positive_rate, 1.0);
/// assert_eq!(s[1].false_positive_rate, 0.0);
/// ```
///
/// # Errors
/// [`PostprocError::ShapeMismatch`] when `truth` does not hold `W × H` labels,
/// [`PostprocError::ClassOutOfRange`] for a `soft_class` that is not a class of the map,
/// [`PostprocError::OutOfRange`] for a threshold outside `[0, 1]` (NaN included), and
/// [`PostprocError::LabelOutOfRange`] for the first `truth` label (row by row) that is
/// neither a class of the map nor [`IGNORE_LABEL`], at its `(x, y)`: such a pixel would otherwise
/// be counted as a true negative, as [`apply_thresholds`] cannot give it.
///
/// ```
/// use xray_postproc::{threshold_sweep, PostprocError, ProbMap};
/// let p = [0.4f32, 0.1, 0.6, 0.9]; // 2 classes, 1 x 2
/// let m = ProbMap::new(&p, 2, 1, 2).unwrap();
/// let e = threshold_sweep(&m, &[0, 7], 1, &[0.5]).unwrap_err();
/// assert!(matches!(e, PostprocError::LabelOutOfRange { label: 7, x: 1, y: 0, classes: 2, .. }));
/// assert!(threshold_sweep(&m, &[0, 255], 1, &[0.5]).is_ok()); // 255: left out
/// ```
pub fn threshold_sweep(
    probs: &ProbMap,
    truth: &[u8],
    soft_class: usize,
    thresholds: &[f32],
) -> Result<Vec<SweepPoint>> {
    let (w, h, c) = (probs.width(), probs.height(), probs.classes());
    let n = w * h;
    if truth.len() != n {
        return Err(PostprocError::ShapeMismatch {
            what: "ground-truth labels",
            expected: format!("{w} x {h} = {n} labels"),
            found: format!("{} labels", truth.len()),
        });
    }
    if soft_class >= c {
        return Err(PostprocError::ClassOutOfRange {
            name: "soft_class",
            class: soft_class,
            classes: c,
            hint: "pass the index of the soft-tissue class, one of the map's classes",
        });
    }
    for (i, &t) in thresholds.iter().enumerate() {
        check_unit(&format!("thresholds[{i}]"), t)?;
    }
    if let Some(i) = truth
        .iter()
        .position(|&g| g != IGNORE_LABEL && usize::from(g) >= c)
    {
        return Err(PostprocError::LabelOutOfRange {
            what: "ground-truth labels",
            label: truth[i],
            x: i % w,
            y: i / w,
            classes: c,
        });
    }
    // Only pixels whose arg-max is soft tissue depend on t: keep their P(soft), split by truth.
    let data = probs.data();
    let (mut pos_p, mut neg_p) = (Vec::new(), Vec::new());
    let (mut total_pos, mut total_neg) = (0u64, 0u64);
    for (i, &g) in truth.iter().enumerate() {
        if g == IGNORE_LABEL {
            continue;
        }
        let is_soft = g as usize == soft_class;
        if is_soft {
            total_pos += 1;
        } else {
            total_neg += 1;
        }
        let (best, _) = best_two(data, c, n, i, soft_class);
        if best == soft_class {
            let p = data[soft_class * n + i];
            if is_soft {
                pos_p.push(p);
            } else {
                neg_p.push(p);
            }
        }
    }
    pos_p.sort_by(f32::total_cmp);
    neg_p.sort_by(f32::total_cmp);
    let above = |v: &[f32], t: f32| (v.len() - v.partition_point(|&p| p <= t)) as u64;
    Ok(thresholds
        .iter()
        .map(|&t| {
            let tp = above(&pos_p, t);
            let fp = above(&neg_p, t);
            let fn_ = total_pos - tp;
            let tn = total_neg - fp;
            SweepPoint {
                threshold: t,
                true_positives: tp,
                false_positives: fp,
                false_negatives: fn_,
                true_negatives: tn,
                false_positive_rate: if total_neg == 0 {
                    0.0
                } else {
                    fp as f64 / total_neg as f64
                },
                recall: if total_pos == 0 {
                    1.0
                } else {
                    tp as f64 / total_pos as f64
                },
                precision: if tp + fp == 0 {
                    1.0
                } else {
                    tp as f64 / (tp + fp) as f64
                },
            }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Normalised 3-class maps with many exact ties (values on a coarse grid).
    fn tied_probs(n: usize) -> Vec<f32> {
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut raw = vec![0f32; 3 * n];
        for v in raw.iter_mut() {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            *v = (state % 5) as f32;
        }
        for i in 0..n {
            let z = raw[i] + raw[n + i] + raw[2 * n + i];
            for k in 0..3 {
                raw[k * n + i] = if z > 0.0 {
                    raw[k * n + i] / z
                } else {
                    1.0 / 3.0
                };
            }
        }
        raw
    }

    #[test]
    fn three_class_path_matches_the_general_rule_exactly() {
        let n = 4096;
        let data = tied_probs(n);
        for soft_class in 0..3 {
            for t in [0.0f32, 0.3, 0.5, 0.6, 1.0] {
                for min_confidence in [vec![], vec![0.5, 0.4, 0.6]] {
                    let cfg = ThresholdConfig {
                        soft_class,
                        min_confidence,
                        ..Default::default()
                    };
                    let mut fast = vec![0u8; n];
                    label_three(&data, n, &cfg, t, &mut fast);
                    let general: Vec<u8> = (0..n)
                        .map(|i| {
                            let (best, second) = best_two(&data, 3, n, i, soft_class);
                            finish_label(|k| data[k * n + i], best, second, &cfg, t)
                        })
                        .collect();
                    assert_eq!(
                        fast, general,
                        "soft {soft_class}, t {t}, {:?}",
                        cfg.min_confidence
                    );
                }
            }
        }
    }
}
