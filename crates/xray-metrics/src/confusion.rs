//! The counting kernel: a confusion matrix over pixels (rows = true class, columns = prediction).

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::{MetricsError, Result};
use crate::validate::{check_len, check_num_classes, IGNORE_LABEL};

/// Pixel counts `counts[t * C + p]`: pixels whose true class is `t` and predicted class is `p`.
/// Ignored pixels (label 255) are never counted.
///
/// Deserialising checks the fields as [`ConfusionMatrix::from_counts`] does (a class count in
/// 2..=255 and `C²` counts), so a matrix read from JSON is as consistent as a built one.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "ConfusionMatrixFields")]
pub struct ConfusionMatrix {
    num_classes: usize,
    counts: Vec<u64>,
}

/// [`ConfusionMatrix`]'s serialised fields, checked on the way in.
#[derive(Deserialize)]
struct ConfusionMatrixFields {
    num_classes: usize,
    counts: Vec<u64>,
}

impl TryFrom<ConfusionMatrixFields> for ConfusionMatrix {
    type Error = MetricsError;

    fn try_from(f: ConfusionMatrixFields) -> Result<Self> {
        Self::from_counts(f.num_classes, f.counts)
    }
}

/// Pixels per rayon task in the parallel kernel; large enough that task overhead is noise.
const PAR_CHUNK: usize = 1 << 18;

impl ConfusionMatrix {
    /// An all-zero matrix for `num_classes` classes (2..=255).
    ///
    /// # Errors
    /// [`MetricsError::InvalidConfig`] when `num_classes` is not in `2..=255` (255 is the
    /// ignore label).
    ///
    /// # Examples
    /// ```
    /// # fn main() -> Result<(), xray_metrics::MetricsError> {
    /// use xray_metrics::ConfusionMatrix;
    /// let cm = ConfusionMatrix::new(3)?;
    /// assert_eq!(cm.counts(), [0; 9]);
    /// assert_eq!(cm.accuracy(), None); // no pixel scored yet
    /// // One class is nothing to segment; 256 would collide with the ignore label 255.
    /// for bad in [1, 256] {
    ///     let e = ConfusionMatrix::new(bad).unwrap_err();
    ///     assert!(e.to_string().contains("num_classes"), "{e}");
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub fn new(num_classes: usize) -> Result<Self> {
        check_num_classes(num_classes)?;
        Ok(Self {
            num_classes,
            counts: vec![0; num_classes * num_classes],
        })
    }

    /// Builds a matrix from raw counts, row-major, rows = true class.
    ///
    /// # Errors
    /// - [`MetricsError::InvalidConfig`] when `num_classes` is not in `2..=255`;
    /// - [`MetricsError::LengthMismatch`] when `counts` does not hold `num_classes²` values.
    ///
    /// # Examples
    /// ```
    /// # fn main() -> Result<(), xray_metrics::MetricsError> {
    /// use xray_metrics::{ConfusionMatrix, MetricsError};
    /// let cm = ConfusionMatrix::from_counts(2, vec![5, 1, 2, 8])?; // rows: truth 0, truth 1
    /// assert_eq!(cm.count(1, 0), 2); // two class-1 pixels predicted as class 0
    /// assert_eq!(cm.support(1), 10);
    /// let e = ConfusionMatrix::from_counts(2, vec![5, 1, 2]).unwrap_err();
    /// assert!(matches!(e, MetricsError::LengthMismatch { expected: 4, found: 3, .. }));
    /// assert!(e.to_string().contains("confusion counts"), "{e}");
    /// # Ok(())
    /// # }
    /// ```
    pub fn from_counts(num_classes: usize, counts: Vec<u64>) -> Result<Self> {
        check_num_classes(num_classes)?;
        check_len(
            "confusion counts (C × C)",
            num_classes * num_classes,
            counts.len(),
        )?;
        Ok(Self {
            num_classes,
            counts,
        })
    }

    /// Counts `truth` (255 = ignore) against `pred`, single thread.
    ///
    /// # Errors
    /// - [`MetricsError::InvalidConfig`] when `num_classes` is not in `2..=255`;
    /// - [`MetricsError::LengthMismatch`] when `pred` is not as long as `truth`;
    /// - [`MetricsError::LabelOutOfRange`] for the first true label ≥ `num_classes` other
    ///   than 255 (ignore), checked before the predictions;
    /// - [`MetricsError::PredictionOutOfRange`] for the first prediction ≥ `num_classes` at
    ///   a scored pixel (predictions at ignored pixels are not looked at).
    ///
    /// # Examples
    /// ```
    /// use xray_metrics::ConfusionMatrix;
    /// let cm = ConfusionMatrix::from_labels(&[0, 1, 2, 255], &[0, 2, 2, 7], 3).unwrap();
    /// assert_eq!(cm.count(1, 2), 1);
    /// assert_eq!(cm.total(), 3);
    /// ```
    pub fn from_labels(truth: &[u8], pred: &[u8], num_classes: usize) -> Result<Self> {
        let mut cm = Self::new(num_classes)?;
        cm.add_labels(truth, pred)?;
        Ok(cm)
    }

    /// As [`ConfusionMatrix::from_labels`], split across the rayon pool.
    ///
    /// # Errors
    /// As [`ConfusionMatrix::from_labels`], with the same pixel indices (counted from the
    /// start of `truth`, not of a chunk); when several chunks hold a bad value, the first
    /// chunk's error is returned.
    ///
    /// # Examples
    /// ```
    /// # fn main() -> Result<(), xray_metrics::MetricsError> {
    /// use xray_metrics::{ConfusionMatrix, MetricsError};
    /// // 300 000 pixels: two parallel chunks of 2^18. Pixel 299 999 is class 2 (299 999 % 3).
    /// let truth: Vec<u8> = (0..300_000u32).map(|i| (i % 3) as u8).collect();
    /// let mut pred = truth.clone();
    /// pred[299_999] = 0;
    /// let cm = ConfusionMatrix::from_labels_par(&truth, &pred, 3)?;
    /// assert_eq!(cm, ConfusionMatrix::from_labels(&truth, &pred, 3)?);
    /// assert_eq!(cm.count(2, 0), 1);
    /// // A bad label in the second chunk is reported at its index in the whole slice.
    /// let mut bad = truth;
    /// bad[299_998] = 7;
    /// let e = ConfusionMatrix::from_labels_par(&bad, &pred, 3).unwrap_err();
    /// assert!(matches!(e, MetricsError::LabelOutOfRange { pixel: 299_998, label: 7, .. }));
    /// # Ok(())
    /// # }
    /// ```
    pub fn from_labels_par(truth: &[u8], pred: &[u8], num_classes: usize) -> Result<Self> {
        check_num_classes(num_classes)?;
        check_len("predicted labels", truth.len(), pred.len())?;
        let parts: Vec<Result<Self>> = truth
            .par_chunks(PAR_CHUNK)
            .zip(pred.par_chunks(PAR_CHUNK))
            .enumerate()
            .map(|(k, (t, p))| {
                let mut cm = Self::new(num_classes)?;
                cm.add_labels(t, p)
                    .map_err(|e| shift_pixel(e, k * PAR_CHUNK))?;
                Ok(cm)
            })
            .collect();
        let mut cm = Self::new(num_classes)?;
        for part in parts {
            cm.merge(&part?)?;
        }
        Ok(cm)
    }

    /// Adds the pixels of one image (or any slice of pixels).
    ///
    /// # Errors
    /// Nothing is added when one occurs.
    /// - [`MetricsError::LengthMismatch`] when `pred` is not as long as `truth`;
    /// - [`MetricsError::LabelOutOfRange`] for the first true label ≥ the class count other
    ///   than 255 (ignore), checked before the predictions;
    /// - [`MetricsError::PredictionOutOfRange`] for the first prediction ≥ the class count
    ///   at a scored pixel (predictions at ignored pixels are not looked at).
    ///
    /// # Examples
    /// ```
    /// # fn main() -> Result<(), xray_metrics::MetricsError> {
    /// use xray_metrics::{ConfusionMatrix, MetricsError};
    /// let mut cm = ConfusionMatrix::new(2)?;
    /// cm.add_labels(&[0, 1, 255], &[0, 0, 9])?; // an ignored pixel's prediction is not read
    /// cm.add_labels(&[1, 1], &[1, 1])?;
    /// assert_eq!(cm.rows(), [[1, 0], [1, 2]]);
    /// // Prediction 2 at a scored pixel of a 2-class matrix: refused, nothing added.
    /// let e = cm.add_labels(&[0, 1], &[1, 2]).unwrap_err();
    /// assert!(matches!(e, MetricsError::PredictionOutOfRange { pixel: 1, label: 2, .. }));
    /// assert_eq!(cm.total(), 4);
    /// # Ok(())
    /// # }
    /// ```
    pub fn add_labels(&mut self, truth: &[u8], pred: &[u8]) -> Result<()> {
        check_len("predicted labels", truth.len(), pred.len())?;
        let c = self.num_classes;
        let stride = c + 2;
        // Lookup tables turn the per-pixel validity checks into table reads: slot C collects
        // ignored pixels, slot C+1 invalid values, checked once after the loop.
        let mut lut_t = [0u16; 256];
        let mut lut_p = [0u16; 256];
        for v in 0..256usize {
            let t = if v < c {
                v
            } else if v == IGNORE_LABEL as usize {
                c
            } else {
                c + 1
            };
            lut_t[v] = (t * stride) as u16;
            lut_p[v] = if v < c { v as u16 } else { (c + 1) as u16 };
        }
        let cells = stride * stride;
        // Four interleaved tables break the store→load dependency when consecutive pixels
        // hit the same cell, which is the common case in segmentation masks.
        let mut tables = vec![0u64; 4 * cells];
        let (t4, t_rest) = truth.split_at(truth.len() / 4 * 4);
        let (p4, p_rest) = pred.split_at(t4.len());
        for (t, p) in t4.chunks_exact(4).zip(p4.chunks_exact(4)) {
            tables[lut_t[t[0] as usize] as usize + lut_p[p[0] as usize] as usize] += 1;
            tables[cells + lut_t[t[1] as usize] as usize + lut_p[p[1] as usize] as usize] += 1;
            tables[2 * cells + lut_t[t[2] as usize] as usize + lut_p[p[2] as usize] as usize] += 1;
            tables[3 * cells + lut_t[t[3] as usize] as usize + lut_p[p[3] as usize] as usize] += 1;
        }
        for (&t, &p) in t_rest.iter().zip(p_rest) {
            tables[lut_t[t as usize] as usize + lut_p[p as usize] as usize] += 1;
        }
        let mut merged = vec![0u64; cells];
        for k in 0..4 {
            for (m, v) in merged.iter_mut().zip(&tables[k * cells..(k + 1) * cells]) {
                *m += v;
            }
        }
        let invalid_truth: u64 = merged[(c + 1) * stride..].iter().sum();
        let invalid_pred: u64 = (0..c).map(|r| merged[r * stride + c + 1]).sum();
        if invalid_truth > 0 {
            crate::validate::first_bad_label(truth, c)?;
        }
        if invalid_pred > 0 {
            if let Some(pixel) = truth
                .iter()
                .zip(pred)
                .position(|(&t, &p)| (t as usize) < c && p as usize >= c)
            {
                return Err(MetricsError::PredictionOutOfRange {
                    pixel,
                    label: pred[pixel],
                    num_classes: c,
                });
            }
        }
        for r in 0..c {
            for q in 0..c {
                self.counts[r * c + q] += merged[r * stride + q];
            }
        }
        Ok(())
    }

    /// Adds another matrix with the same number of classes.
    ///
    /// # Errors
    /// [`MetricsError::InvalidConfig`] when `other` has a different number of classes (then
    /// nothing is added).
    ///
    /// # Examples
    /// ```
    /// # fn main() -> Result<(), xray_metrics::MetricsError> {
    /// use xray_metrics::{ConfusionMatrix, MetricsError};
    /// let mut a = ConfusionMatrix::from_labels(&[0, 1], &[0, 0], 2)?;
    /// a.merge(&ConfusionMatrix::from_labels(&[1, 1], &[1, 0], 2)?)?;
    /// assert_eq!(a.rows(), [[1, 0], [2, 1]]);
    /// let e = a.merge(&ConfusionMatrix::new(3)?).unwrap_err();
    /// assert!(matches!(e, MetricsError::InvalidConfig(_)), "{e}");
    /// assert_eq!(a.total(), 4); // unchanged
    /// # Ok(())
    /// # }
    /// ```
    pub fn merge(&mut self, other: &Self) -> Result<()> {
        if other.num_classes != self.num_classes {
            return Err(MetricsError::InvalidConfig(format!(
                "cannot merge a {}-class confusion matrix into a {}-class one",
                other.num_classes, self.num_classes
            )));
        }
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
        Ok(())
    }

    /// Number of classes.
    ///
    /// # Examples
    /// ```
    /// # fn main() -> Result<(), xray_metrics::MetricsError> {
    /// use xray_metrics::ConfusionMatrix;
    /// assert_eq!(ConfusionMatrix::new(3)?.num_classes(), 3);
    /// // As given, even when some classes never occur.
    /// assert_eq!(ConfusionMatrix::from_labels(&[0], &[0], 4)?.num_classes(), 4);
    /// # Ok(())
    /// # }
    /// ```
    pub fn num_classes(&self) -> usize {
        self.num_classes
    }

    /// Raw counts, row-major, rows = true class: `counts()[truth * num_classes() + pred]`.
    ///
    /// # Examples
    /// ```
    /// # fn main() -> Result<(), xray_metrics::MetricsError> {
    /// use xray_metrics::ConfusionMatrix;
    /// // Truth 0 predicted 1, truth 1 predicted 1 twice.
    /// let cm = ConfusionMatrix::from_labels(&[0, 1, 1], &[1, 1, 1], 2)?;
    /// assert_eq!(cm.counts(), [0, 1, 0, 2]);
    /// assert_eq!(cm.counts()[2 + 1], cm.count(1, 1));
    /// # Ok(())
    /// # }
    /// ```
    pub fn counts(&self) -> &[u64] {
        &self.counts
    }

    /// Pixels with true class `truth` predicted as `pred`.
    ///
    /// # Panics
    /// When `truth` or `pred` is not below [`ConfusionMatrix::num_classes`] (the message
    /// names the index and the class count); an index out of range never reads another cell.
    /// [`ConfusionMatrix::get`] returns `None` instead. Each panicking accessor has such a
    /// counterpart for indices that come from data, named as `slice::get` is to indexing:
    /// `count` → `get`, and `get_` before the name for the others
    /// ([`get_support`](ConfusionMatrix::get_support),
    /// [`get_predicted`](ConfusionMatrix::get_predicted),
    /// [`get_tp_fp_fn_tn`](ConfusionMatrix::get_tp_fp_fn_tn)), as `xray_postproc`'s
    /// `ProbMap::plane` → `get_plane`.
    ///
    /// # Examples
    /// ```
    /// # fn main() -> Result<(), xray_metrics::MetricsError> {
    /// use xray_metrics::ConfusionMatrix;
    /// let cm = ConfusionMatrix::from_labels(&[0, 1, 2], &[0, 2, 2], 3)?;
    /// assert_eq!(cm.count(1, 2), 1); // the class-1 pixel predicted as class 2
    /// assert_eq!(cm.count(2, 1), 0); // rows are truth, columns prediction: not symmetric
    /// assert!(std::panic::catch_unwind(|| cm.count(0, 3)).is_err()); // no class 3
    /// # Ok(())
    /// # }
    /// ```
    #[track_caller]
    pub fn count(&self, truth: usize, pred: usize) -> u64 {
        self.assert_class("true class", truth);
        self.assert_class("predicted class", pred);
        self.counts[truth * self.num_classes + pred]
    }

    /// The count of pixels of true class `truth` predicted as `pred`, or `None` when either
    /// is not a class of the matrix: [`ConfusionMatrix::count`] for indices that come from
    /// data (a label read from a file), as `slice::get` is to indexing.
    ///
    /// # Examples
    /// ```
    /// # fn main() -> Result<(), xray_metrics::MetricsError> {
    /// use xray_metrics::ConfusionMatrix;
    /// let cm = ConfusionMatrix::from_labels(&[0, 1, 2], &[0, 2, 2], 3)?;
    /// assert_eq!(cm.get(1, 2), Some(1));
    /// assert_eq!(cm.get(0, 3), None); // no class 3: no panic
    /// assert_eq!(cm.get(usize::MAX, 0), None);
    /// # Ok(())
    /// # }
    /// ```
    pub fn get(&self, truth: usize, pred: usize) -> Option<u64> {
        let c = self.num_classes;
        (truth < c && pred < c).then(|| self.counts[truth * c + pred])
    }

    /// Panics, naming the index (`what` says which) and the class count, unless
    /// `class < num_classes`.
    #[track_caller]
    fn assert_class(&self, what: &str, class: usize) {
        let c = self.num_classes;
        assert!(
            class < c,
            "ConfusionMatrix: {what} {class} is out of range; this matrix has {c} classes (0..{c})"
        );
    }

    /// Rows (true class) as nested vectors, for JSON.
    ///
    /// # Examples
    /// ```
    /// # fn main() -> Result<(), xray_metrics::MetricsError> {
    /// use xray_metrics::ConfusionMatrix;
    /// let cm = ConfusionMatrix::from_labels(&[0, 1, 1], &[1, 1, 1], 2)?;
    /// assert_eq!(cm.rows(), [[0, 1], [0, 2]]); // row 1: both class-1 pixels right
    /// assert_eq!(serde_json::to_string(&cm.rows()).unwrap(), "[[0,1],[0,2]]");
    /// # Ok(())
    /// # }
    /// ```
    pub fn rows(&self) -> Vec<Vec<u64>> {
        self.counts
            .chunks(self.num_classes)
            .map(|r| r.to_vec())
            .collect()
    }

    /// Each row divided by its sum (the fraction of class-`t` pixels predicted as each class);
    /// a row with no pixels is all zeros.
    ///
    /// # Examples
    /// ```
    /// # fn main() -> Result<(), xray_metrics::MetricsError> {
    /// use xray_metrics::ConfusionMatrix;
    /// let cm = ConfusionMatrix::from_labels(&[0, 0, 0, 0, 1], &[0, 0, 0, 1, 1], 3)?;
    /// let rows = cm.row_normalised();
    /// assert_eq!(rows[0], [0.75, 0.25, 0.0]); // 3 of the 4 class-0 pixels are right
    /// assert_eq!(rows[1], [0.0, 1.0, 0.0]);
    /// assert_eq!(rows[2], [0.0, 0.0, 0.0]); // no class-2 pixel: zeros, not NaN
    /// # Ok(())
    /// # }
    /// ```
    pub fn row_normalised(&self) -> Vec<Vec<f64>> {
        self.counts
            .chunks(self.num_classes)
            .map(|r| {
                let s: u64 = r.iter().sum();
                r.iter()
                    .map(|&v| if s == 0 { 0.0 } else { v as f64 / s as f64 })
                    .collect()
            })
            .collect()
    }

    /// Scored pixels (ignored pixels, label 255, are not counted).
    ///
    /// # Examples
    /// ```
    /// # fn main() -> Result<(), xray_metrics::MetricsError> {
    /// use xray_metrics::ConfusionMatrix;
    /// let cm = ConfusionMatrix::from_labels(&[0, 1, 255, 1], &[0, 0, 1, 1], 2)?;
    /// assert_eq!(cm.total(), 3);
    /// assert_eq!(ConfusionMatrix::new(2)?.total(), 0);
    /// # Ok(())
    /// # }
    /// ```
    pub fn total(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// Pixels whose true class is `class` (row sum).
    ///
    /// # Panics
    /// When `class` is not below [`ConfusionMatrix::num_classes`] (the message names it).
    /// [`ConfusionMatrix::get_support`] returns `None` instead (the `get_` counterpart, as
    /// [`ConfusionMatrix::get`] is `count`'s).
    ///
    /// # Examples
    /// ```
    /// # fn main() -> Result<(), xray_metrics::MetricsError> {
    /// use xray_metrics::ConfusionMatrix;
    /// let cm = ConfusionMatrix::from_labels(&[0, 1, 1, 255], &[1, 1, 0, 0], 2)?;
    /// assert_eq!(cm.support(1), 2); // the true class counts, whatever was predicted
    /// assert_eq!(cm.support(0), 1); // the ignored pixel is not anyone's support
    /// # Ok(())
    /// # }
    /// ```
    #[track_caller]
    pub fn support(&self, class: usize) -> u64 {
        self.assert_class("true class", class);
        self.counts[class * self.num_classes..(class + 1) * self.num_classes]
            .iter()
            .sum()
    }

    /// Pixels predicted as `class` (column sum).
    ///
    /// # Panics
    /// When `class` is not below [`ConfusionMatrix::num_classes`] (the message names it).
    /// [`ConfusionMatrix::get_predicted`] returns `None` instead.
    ///
    /// # Examples
    /// ```
    /// # fn main() -> Result<(), xray_metrics::MetricsError> {
    /// use xray_metrics::ConfusionMatrix;
    /// let cm = ConfusionMatrix::from_labels(&[0, 1, 1, 255], &[1, 1, 0, 0], 2)?;
    /// assert_eq!(cm.predicted(1), 2); // pixels 0 and 1
    /// assert_eq!(cm.predicted(0), 1); // pixel 2; pixel 3's prediction is ignored with it
    /// # Ok(())
    /// # }
    /// ```
    #[track_caller]
    pub fn predicted(&self, class: usize) -> u64 {
        self.assert_class("predicted class", class);
        (0..self.num_classes).map(|t| self.count(t, class)).sum()
    }

    /// True positives, false positives, false negatives and true negatives of one class
    /// against the rest.
    ///
    /// # Panics
    /// When `class` is not below [`ConfusionMatrix::num_classes`] (the message names it).
    /// [`ConfusionMatrix::get_tp_fp_fn_tn`] returns `None` instead.
    ///
    /// # Examples
    /// ```
    /// # fn main() -> Result<(), xray_metrics::MetricsError> {
    /// use xray_metrics::ConfusionMatrix;
    /// // One class-1 pixel is predicted as class 0.
    /// let cm = ConfusionMatrix::from_labels(&[0, 1, 1, 2], &[0, 0, 1, 2], 3)?;
    /// assert_eq!(cm.tp_fp_fn_tn(0), [1, 1, 0, 2]); // [TP, FP, FN, TN]
    /// assert_eq!(cm.tp_fp_fn_tn(1), [1, 0, 1, 2]);
    /// assert_eq!(cm.tp_fp_fn_tn(2), [1, 0, 0, 3]);
    /// # Ok(())
    /// # }
    /// ```
    #[track_caller]
    pub fn tp_fp_fn_tn(&self, class: usize) -> [u64; 4] {
        self.assert_class("class", class);
        let tp = self.count(class, class);
        let fp = self.predicted(class) - tp;
        let fneg = self.support(class) - tp;
        let tn = self.total() - tp - fp - fneg;
        [tp, fp, fneg, tn]
    }

    /// Pixels whose true class is `class` (row sum), or `None` when `class` is not a class
    /// of the matrix: [`ConfusionMatrix::support`] for a class that comes from data, without
    /// its panic.
    ///
    /// # Examples
    /// ```
    /// # fn main() -> Result<(), xray_metrics::MetricsError> {
    /// use xray_metrics::ConfusionMatrix;
    /// let cm = ConfusionMatrix::from_labels(&[0, 1, 1, 255], &[1, 1, 0, 0], 2)?;
    /// assert_eq!(cm.get_support(1), Some(2));
    /// assert_eq!(cm.get_support(2), None); // no class 2: no panic
    /// assert_eq!(cm.get_support(usize::MAX), None);
    /// # Ok(())
    /// # }
    /// ```
    pub fn get_support(&self, class: usize) -> Option<u64> {
        (class < self.num_classes).then(|| self.support(class))
    }

    /// Pixels predicted as `class` (column sum), or `None` when `class` is not a class of
    /// the matrix: [`ConfusionMatrix::predicted`] without its panic.
    ///
    /// # Examples
    /// ```
    /// # fn main() -> Result<(), xray_metrics::MetricsError> {
    /// use xray_metrics::ConfusionMatrix;
    /// let cm = ConfusionMatrix::from_labels(&[0, 1, 1, 255], &[1, 1, 0, 0], 2)?;
    /// assert_eq!(cm.get_predicted(1), Some(2));
    /// assert_eq!(cm.get_predicted(2), None); // no class 2: no panic
    /// assert_eq!(cm.get_predicted(usize::MAX), None);
    /// # Ok(())
    /// # }
    /// ```
    pub fn get_predicted(&self, class: usize) -> Option<u64> {
        (class < self.num_classes).then(|| self.predicted(class))
    }

    /// `[TP, FP, FN, TN]` of one class against the rest, or `None` when `class` is not a
    /// class of the matrix: [`ConfusionMatrix::tp_fp_fn_tn`] without its panic.
    ///
    /// # Examples
    /// ```
    /// # fn main() -> Result<(), xray_metrics::MetricsError> {
    /// use xray_metrics::ConfusionMatrix;
    /// let cm = ConfusionMatrix::from_labels(&[0, 1, 1, 2], &[0, 0, 1, 2], 3)?;
    /// assert_eq!(cm.get_tp_fp_fn_tn(1), Some([1, 0, 1, 2]));
    /// assert_eq!(cm.get_tp_fp_fn_tn(3), None); // no class 3: no panic
    /// assert_eq!(cm.get_tp_fp_fn_tn(usize::MAX), None);
    /// # Ok(())
    /// # }
    /// ```
    pub fn get_tp_fp_fn_tn(&self, class: usize) -> Option<[u64; 4]> {
        (class < self.num_classes).then(|| self.tp_fp_fn_tn(class))
    }
}

pub(crate) fn shift_pixel(e: MetricsError, offset: usize) -> MetricsError {
    match e {
        MetricsError::LabelOutOfRange {
            pixel,
            label,
            num_classes,
        } => MetricsError::LabelOutOfRange {
            pixel: pixel + offset,
            label,
            num_classes,
        },
        MetricsError::PredictionOutOfRange {
            pixel,
            label,
            num_classes,
        } => MetricsError::PredictionOutOfRange {
            pixel: pixel + offset,
            label,
            num_classes,
        },
        MetricsError::InvalidProbability {
            pixel,
            class,
            value,
        } => MetricsError::InvalidProbability {
            pixel: pixel + offset,
            class,
            value,
        },
        MetricsError::ProbabilitiesNotNormalised {
            pixel,
            sum,
            tolerance,
        } => MetricsError::ProbabilitiesNotNormalised {
            pixel: pixel + offset,
            sum,
            tolerance,
        },
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A class index out of range is a clear panic on either index; `count(0, 5)` of a
    /// 3-class matrix used to read cell (1, 2), and the others panicked on a slice index.
    #[test]
    fn out_of_range_classes_panic_with_a_clear_message_and_never_alias() {
        let cm = ConfusionMatrix::from_labels(&[0, 1, 2], &[0, 2, 2], 3).unwrap();
        type Call = fn(&ConfusionMatrix) -> u64;
        let calls: [(&str, Call); 7] = [
            ("true class 3", |cm| cm.count(3, 0)),
            ("predicted class 5", |cm| cm.count(0, 5)),
            ("predicted class 3", |cm| cm.count(1, 3)),
            ("true class 3", |cm| cm.support(3)),
            ("predicted class 3", |cm| cm.predicted(3)),
            ("class 3", |cm| cm.tp_fp_fn_tn(3)[0]),
            ("true class 18446744073709551615", |cm| {
                cm.count(usize::MAX, 0)
            }),
        ];
        for (want, f) in calls {
            let err =
                std::panic::catch_unwind(|| f(&cm)).expect_err(&format!("no panic for {want}"));
            let msg = err.downcast_ref::<String>().cloned().unwrap_or_default();
            assert!(msg.contains(want), "{msg}");
            assert!(msg.contains("this matrix has 3 classes"), "{msg}");
        }
        // In range, the cells read are the ones asked for.
        assert_eq!(cm.count(1, 2), 1);
        assert_eq!(cm.count(2, 2), 1);
        assert_eq!(cm.tp_fp_fn_tn(2), [1, 1, 0, 1]);
    }

    /// Every panicking accessor has a `get` counterpart (the embedding walkthrough found only
    /// `get` for `count`): in range it agrees with it, out of range it is `None`, not a panic.
    #[test]
    fn get_counterparts_agree_in_range_and_return_none_outside() {
        let cm = ConfusionMatrix::from_labels(&[0, 1, 1, 2, 255], &[0, 0, 1, 2, 1], 3).unwrap();
        for class in 0..3 {
            assert_eq!(cm.get_support(class), Some(cm.support(class)));
            assert_eq!(cm.get_predicted(class), Some(cm.predicted(class)));
            assert_eq!(cm.get_tp_fp_fn_tn(class), Some(cm.tp_fp_fn_tn(class)));
            for pred in 0..3 {
                assert_eq!(cm.get(class, pred), Some(cm.count(class, pred)));
            }
        }
        for class in [3, 4, 255, usize::MAX] {
            let out = std::panic::catch_unwind(|| {
                (
                    cm.get_support(class),
                    cm.get_predicted(class),
                    cm.get_tp_fp_fn_tn(class),
                )
            });
            assert_eq!(out.ok(), Some((None, None, None)), "class {class}");
        }
    }

    /// JSON whose counts do not fit its class count is refused (it deserialised, then
    /// `support` and the scores panicked on a short slice or read the wrong cells).
    #[test]
    fn deserialising_checks_the_fields() {
        let cm = ConfusionMatrix::from_labels(&[0, 1, 2], &[0, 2, 2], 3).unwrap();
        let json = serde_json::to_string(&cm).unwrap();
        assert_eq!(serde_json::from_str::<ConfusionMatrix>(&json).unwrap(), cm);
        for bad in [
            r#"{"num_classes": 3, "counts": [1]}"#,
            r#"{"num_classes": 2, "counts": [1, 2, 3, 4, 5, 6, 7, 8, 9]}"#,
            r#"{"num_classes": 1, "counts": [1]}"#,
            r#"{"num_classes": 0, "counts": []}"#,
        ] {
            let e = serde_json::from_str::<ConfusionMatrix>(bad).unwrap_err();
            let e = e.to_string();
            assert!(
                e.contains("confusion counts") || e.contains("num_classes"),
                "{bad}: {e}"
            );
        }
    }
}
