//! Scores derived from confusion counts: accuracy, precision, recall, specificity, F-beta,
//! IoU and Dice, with micro / macro / weighted / per-class averaging.
//!
//! Zero division: a ratio whose denominator is 0 (precision of a class never predicted,
//! recall of a class absent from the truth, ...) takes the value chosen by [`ZeroDivision`]
//! (default `Zero`, as scikit-learn's `zero_division="warn"` returns 0).

use serde::{Deserialize, Serialize};

use crate::confusion::ConfusionMatrix;
use crate::error::{readable_number, MetricsError, Result};

/// How per-class scores are combined.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Average {
    /// Sum TP/FP/FN/TN over classes first, then take the ratio. For single-label pixels
    /// micro precision = recall = F1 = accuracy.
    Micro,
    /// Unweighted mean over the classes that occur in the truth or the prediction
    /// (scikit-learn's label set when `labels=None`).
    Macro,
    /// Mean weighted by support (true pixels per class).
    Weighted,
    /// No averaging: one value per class.
    None,
}

/// Value of a ratio whose denominator is zero.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ZeroDivision {
    /// 0 (scikit-learn's default).
    #[default]
    Zero,
    /// 1.
    One,
    /// NaN (the score is undefined; NaNs propagate into averages).
    Nan,
}

impl ZeroDivision {
    fn value(self) -> f64 {
        match self {
            ZeroDivision::Zero => 0.0,
            ZeroDivision::One => 1.0,
            ZeroDivision::Nan => f64::NAN,
        }
    }

    fn ratio(self, num: f64, den: f64) -> f64 {
        if den == 0.0 {
            self.value()
        } else {
            num / den
        }
    }
}

/// A per-class score computed from one-vs-rest counts.
///
/// # F-beta's β
///
/// [`ClassMetric::FBeta`] takes any finite β ≥ 0: β = 0 is precision (as scikit-learn's
/// `fbeta_score`), β = 1 is F1, and a large β approaches recall (one whose square overflows,
/// such as `1e308`, scores as recall). A NaN, negative or infinite β is refused where a
/// metric is built from a config: deserialising `{"f_beta": -2}` fails naming `f_beta`, and
/// [`ClassMetric::validate`] returns [`MetricsError::InvalidConfig`]. The scoring functions
/// ([`ConfusionMatrix::score`], [`ConfusionMatrix::per_class`], [`mean_over_images`]) return
/// no error: given such a β they score NaN for every class, never another F-score (a
/// negative β would otherwise score as F|β|), so call `validate` first on a β that comes
/// from code.
///
/// # Examples
/// ```
/// use xray_metrics::ClassMetric;
/// let f2: ClassMetric = serde_json::from_str(r#"{"f_beta": 2.0}"#).unwrap();
/// assert_eq!(f2, ClassMetric::FBeta(2.0));
/// assert!(serde_json::from_str::<ClassMetric>(r#"{"f_beta": -2.0}"#).is_err());
/// assert!(ClassMetric::FBeta(f64::NAN).validate().is_err());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClassMetric {
    /// TP / (TP + FP).
    Precision,
    /// TP / (TP + FN), also called sensitivity.
    Recall,
    /// TN / (TN + FP).
    Specificity,
    /// 2 TP / (2 TP + FP + FN).
    F1,
    /// (1 + β²) TP / ((1 + β²) TP + β² FN + FP); β > 1 favours recall. β must be finite
    /// and ≥ 0 (see "F-beta's β" above).
    FBeta(#[serde(deserialize_with = "checked_beta")] f64),
    /// Jaccard index TP / (TP + FP + FN).
    Iou,
    /// Sørensen–Dice 2 TP / (2 TP + FP + FN); equal to F1 on pixels.
    Dice,
}

/// Reads an [`ClassMetric::FBeta`]'s β and refuses one [`ClassMetric::validate`] refuses.
fn checked_beta<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<f64, D::Error> {
    let beta = f64::deserialize(d)?;
    ClassMetric::FBeta(beta)
        .validate()
        .map_err(serde::de::Error::custom)?;
    Ok(beta)
}

/// Whether `beta` is a β that [`ClassMetric::FBeta`] takes: finite and ≥ 0.
fn beta_ok(beta: f64) -> bool {
    beta.is_finite() && beta >= 0.0
}

impl ClassMetric {
    /// Checks the metric's parameter: an [`FBeta`](ClassMetric::FBeta)'s β must be finite
    /// and ≥ 0 (see "F-beta's β" on [`ClassMetric`]). Deserialising runs this check.
    ///
    /// # Errors
    /// [`MetricsError::InvalidConfig`] naming `f_beta` and the value, for a NaN, negative or
    /// infinite β.
    ///
    /// # Examples
    /// ```
    /// use xray_metrics::{ClassMetric, MetricsError};
    /// assert!(ClassMetric::FBeta(0.0).validate().is_ok()); // β = 0 is precision
    /// assert!(ClassMetric::FBeta(1e308).validate().is_ok()); // scores as recall
    /// assert!(ClassMetric::Iou.validate().is_ok()); // no parameter to check
    /// let e = ClassMetric::FBeta(-2.0).validate().unwrap_err();
    /// assert!(matches!(e, MetricsError::InvalidConfig(_)));
    /// assert!(e.to_string().contains("f_beta"), "{e}");
    /// assert!(ClassMetric::FBeta(f64::INFINITY).validate().is_err());
    /// ```
    pub fn validate(&self) -> Result<()> {
        match *self {
            ClassMetric::FBeta(beta) if !beta_ok(beta) => {
                Err(MetricsError::InvalidConfig(format!(
                    "f_beta (β) must be finite and ≥ 0, got {} (β = 0 is precision, β = 1 \
                     is F1, a large β approaches recall)",
                    readable_number(beta)
                )))
            }
            _ => Ok(()),
        }
    }

    fn evaluate(self, [tp, fp, fneg, tn]: [f64; 4], zd: ZeroDivision) -> f64 {
        match self {
            ClassMetric::Precision => zd.ratio(tp, tp + fp),
            ClassMetric::Recall => zd.ratio(tp, tp + fneg),
            ClassMetric::Specificity => zd.ratio(tn, tn + fp),
            ClassMetric::F1 | ClassMetric::Dice => zd.ratio(2.0 * tp, 2.0 * tp + fp + fneg),
            ClassMetric::FBeta(beta) => {
                if !beta_ok(beta) {
                    return f64::NAN;
                }
                // The definition divided by 1 + β²: TP / (TP + β²/(1+β²) FN + 1/(1+β²) FP),
                // whose weights stay finite when β² overflows (the weights become 1 and 0:
                // recall), where (1 + β²) TP would be infinite and the ratio NaN.
                let b2 = beta * beta;
                let w_fp = 1.0 / (1.0 + b2);
                let w_fn = if b2 == 0.0 {
                    0.0
                } else {
                    1.0 / (1.0 + 1.0 / b2)
                };
                zd.ratio(tp, tp + w_fn * fneg + w_fp * fp)
            }
            ClassMetric::Iou => zd.ratio(tp, tp + fp + fneg),
        }
    }
}

/// An averaged score, or one value per class for [`Average::None`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Score {
    /// A single averaged value.
    Value(f64),
    /// One value per class (index = class).
    PerClass(Vec<f64>),
}

impl Score {
    /// The averaged value, `None` for a per-class score.
    ///
    /// # Examples
    /// ```
    /// # fn main() -> Result<(), xray_metrics::MetricsError> {
    /// use xray_metrics::{Average, ClassMetric, ConfusionMatrix, ZeroDivision};
    /// let cm = ConfusionMatrix::from_labels(&[0, 0, 1, 1], &[0, 1, 1, 1], 2)?;
    /// let micro = cm.score(ClassMetric::Recall, Average::Micro, ZeroDivision::Zero);
    /// assert_eq!(micro.value(), Some(0.75)); // micro recall = accuracy
    /// let per_class = cm.score(ClassMetric::Recall, Average::None, ZeroDivision::Zero);
    /// assert_eq!(per_class.value(), None);
    /// # Ok(())
    /// # }
    /// ```
    pub fn value(&self) -> Option<f64> {
        match self {
            Score::Value(v) => Some(*v),
            Score::PerClass(_) => None,
        }
    }

    /// The per-class values, `None` for an averaged score.
    ///
    /// # Examples
    /// ```
    /// # fn main() -> Result<(), xray_metrics::MetricsError> {
    /// use xray_metrics::{Average, ClassMetric, ConfusionMatrix, ZeroDivision};
    /// let cm = ConfusionMatrix::from_labels(&[0, 0, 1, 1], &[0, 1, 1, 1], 2)?;
    /// let recall = cm.score(ClassMetric::Recall, Average::None, ZeroDivision::Zero);
    /// assert_eq!(recall.per_class(), Some(&[0.5, 1.0][..]));
    /// let macro_ = cm.score(ClassMetric::Recall, Average::Macro, ZeroDivision::Zero);
    /// assert_eq!(macro_.per_class(), None);
    /// # Ok(())
    /// # }
    /// ```
    pub fn per_class(&self) -> Option<&[f64]> {
        match self {
            Score::Value(_) => None,
            Score::PerClass(v) => Some(v),
        }
    }
}

fn counts_f64(cm: &ConfusionMatrix, class: usize) -> [f64; 4] {
    cm.tp_fp_fn_tn(class).map(|v| v as f64)
}

fn present(cm: &ConfusionMatrix, class: usize) -> bool {
    cm.support(class) > 0 || cm.predicted(class) > 0
}

impl ConfusionMatrix {
    /// Fraction of scored pixels predicted correctly; `None` when no pixel was scored.
    ///
    /// # Examples
    /// ```
    /// use xray_metrics::ConfusionMatrix;
    /// let cm = ConfusionMatrix::from_labels(&[0, 1, 1, 2], &[0, 1, 0, 2], 3).unwrap();
    /// assert_eq!(cm.accuracy(), Some(0.75));
    /// ```
    pub fn accuracy(&self) -> Option<f64> {
        let total = self.total();
        (total > 0).then(|| {
            let diag: u64 = (0..self.num_classes()).map(|c| self.count(c, c)).sum();
            diag as f64 / total as f64
        })
    }

    /// Mean recall over the classes present in the truth (scikit-learn's
    /// `balanced_accuracy_score`); `None` when no pixel was scored.
    ///
    /// # Examples
    /// ```
    /// # fn main() -> Result<(), xray_metrics::MetricsError> {
    /// use xray_metrics::ConfusionMatrix;
    /// // Everything predicted as class 0: 3 of 4 pixels right, but class 1 is never found.
    /// let cm = ConfusionMatrix::from_labels(&[0, 0, 0, 1], &[0, 0, 0, 0], 3)?;
    /// assert_eq!(cm.accuracy(), Some(0.75));
    /// assert_eq!(cm.balanced_accuracy(), Some(0.5)); // (1 + 0) / 2; class 2 is absent
    /// assert_eq!(ConfusionMatrix::new(3)?.balanced_accuracy(), None);
    /// # Ok(())
    /// # }
    /// ```
    pub fn balanced_accuracy(&self) -> Option<f64> {
        let classes: Vec<usize> = (0..self.num_classes())
            .filter(|&c| self.support(c) > 0)
            .collect();
        (!classes.is_empty()).then(|| {
            classes
                .iter()
                .map(|&c| self.count(c, c) as f64 / self.support(c) as f64)
                .sum::<f64>()
                / classes.len() as f64
        })
    }

    /// One value per class.
    ///
    /// # Examples
    /// ```
    /// # fn main() -> Result<(), xray_metrics::MetricsError> {
    /// use xray_metrics::{ClassMetric, ConfusionMatrix, ZeroDivision};
    /// let cm = ConfusionMatrix::from_labels(&[0, 0, 1, 1], &[0, 1, 1, 1], 3)?;
    /// // IoU = TP / (TP + FP + FN): class 0 is 1/2, class 1 is 2/3; class 2 never occurs,
    /// // so its 0/0 takes the zero-division value.
    /// let iou = cm.per_class(ClassMetric::Iou, ZeroDivision::Zero);
    /// assert_eq!(iou, [0.5, 2.0 / 3.0, 0.0]);
    /// assert!(cm.per_class(ClassMetric::Iou, ZeroDivision::Nan)[2].is_nan());
    /// # Ok(())
    /// # }
    /// ```
    pub fn per_class(&self, metric: ClassMetric, zero_division: ZeroDivision) -> Vec<f64> {
        (0..self.num_classes())
            .map(|c| metric.evaluate(counts_f64(self, c), zero_division))
            .collect()
    }

    /// `metric` averaged as asked.
    ///
    /// # Examples
    /// ```
    /// use xray_metrics::{Average, ClassMetric, ConfusionMatrix, ZeroDivision};
    /// let cm = ConfusionMatrix::from_labels(&[0, 0, 1, 1], &[0, 1, 1, 1], 2).unwrap();
    /// let f1 = cm.score(ClassMetric::F1, Average::Macro, ZeroDivision::Zero);
    /// assert!((f1.value().unwrap() - (2.0 / 3.0 + 0.8) / 2.0).abs() < 1e-12);
    /// ```
    pub fn score(
        &self,
        metric: ClassMetric,
        average: Average,
        zero_division: ZeroDivision,
    ) -> Score {
        let c = self.num_classes();
        match average {
            Average::None => Score::PerClass(self.per_class(metric, zero_division)),
            Average::Micro => {
                let mut sum = [0.0f64; 4];
                for k in (0..c).filter(|&k| present(self, k)) {
                    for (s, v) in sum.iter_mut().zip(counts_f64(self, k)) {
                        *s += v;
                    }
                }
                Score::Value(metric.evaluate(sum, zero_division))
            }
            Average::Macro => {
                let vals: Vec<f64> = (0..c)
                    .filter(|&k| present(self, k))
                    .map(|k| metric.evaluate(counts_f64(self, k), zero_division))
                    .collect();
                Score::Value(if vals.is_empty() {
                    zero_division.value()
                } else {
                    vals.iter().sum::<f64>() / vals.len() as f64
                })
            }
            Average::Weighted => {
                let total = self.total();
                if total == 0 {
                    return Score::Value(zero_division.value());
                }
                let s: f64 = (0..c)
                    .filter(|&k| self.support(k) > 0)
                    .map(|k| {
                        self.support(k) as f64 * metric.evaluate(counts_f64(self, k), zero_division)
                    })
                    .sum();
                Score::Value(s / total as f64)
            }
        }
    }
}

/// Per-image reduction: the mean over images of each image's score (each image counts the
/// same however many pixels it has), as opposed to the pooled score of the summed matrix.
///
/// For [`Average::None`] class `k`'s mean is taken over the images where `k` occurs in the
/// truth or the prediction; a class that never occurs gets NaN. Images with no scored pixel
/// are skipped. Matrices should share one class count; where they do not, there is one
/// score per class of the largest, each over the images that have that class.
///
/// # Examples
/// ```
/// # fn main() -> Result<(), xray_metrics::MetricsError> {
/// use xray_metrics::{mean_over_images, Average, ClassMetric, ConfusionMatrix, ZeroDivision};
/// let small = ConfusionMatrix::from_labels(&[0, 1], &[0, 1], 2)?; // micro F1 1
/// let large = ConfusionMatrix::from_labels(&[0, 0, 0, 0, 0, 0, 0, 1], &[0; 8], 2)?; // 7/8
/// let (f1, micro, zd) = (ClassMetric::F1, Average::Micro, ZeroDivision::Zero);
/// let per_image = mean_over_images(&[small.clone(), large.clone()], f1, micro, zd);
/// assert_eq!(per_image.value(), Some((1.0 + 0.875) / 2.0)); // each image weighs the same
/// let mut pooled = small;
/// pooled.merge(&large)?;
/// assert_eq!(pooled.score(f1, micro, zd).value(), Some(0.9)); // each pixel weighs the same
/// # Ok(())
/// # }
/// ```
pub fn mean_over_images(
    images: &[ConfusionMatrix],
    metric: ClassMetric,
    average: Average,
    zero_division: ZeroDivision,
) -> Score {
    let scored: Vec<&ConfusionMatrix> = images.iter().filter(|m| m.total() > 0).collect();
    match average {
        Average::None => {
            // Matrices of other class counts (the caller's mix-up) must not panic: class `k`
            // is taken from the images that have it.
            let c = scored.iter().map(|m| m.num_classes()).max().unwrap_or(0);
            Score::PerClass(
                (0..c)
                    .map(|k| {
                        let vals: Vec<f64> = scored
                            .iter()
                            .filter(|m| k < m.num_classes() && present(m, k))
                            .map(|m| metric.evaluate(counts_f64(m, k), zero_division))
                            .collect();
                        if vals.is_empty() {
                            f64::NAN
                        } else {
                            vals.iter().sum::<f64>() / vals.len() as f64
                        }
                    })
                    .collect(),
            )
        }
        _ => {
            if scored.is_empty() {
                return Score::Value(f64::NAN);
            }
            let s: f64 = scored
                .iter()
                .filter_map(|m| m.score(metric, average, zero_division).value())
                .sum();
            Score::Value(s / scored.len() as f64)
        }
    }
}
