//! Confidence and calibration: reliability bins (equal-width and equal-mass), ECE (l1),
//! RMSCE (l2), MCE (max), per-class (class-wise) calibration.
//!
//! Equal-width bins reproduce torchmetrics' `MulticlassCalibrationError` exactly: the
//! boundaries are `torch.linspace(0, 1, n_bins + 1)` in `f32` (rebuilt bit for bit), a
//! confidence `x` goes to bin `bucketize(x, boundaries, right=True) − 1`, so bin `i` holds
//! `boundaries[i] ≤ x < boundaries[i+1]` and a confidence of exactly 1.0 lands in an extra
//! bin `[1, 1]` of its own (torchmetrics does the same). Sums are kept in `f64`, except in
//! the fast kernel of [`calibration_bins`] (2–4 classes, ≤ 250 bins), which sums confidences
//! exactly in 2⁻²⁸ fixed point (exact for every top-1 confidence ≥ 2⁻⁵, which the top-1 of
//! 2–4 classes always is; below that each pixel moves by less than 3.7e-9).

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::{MetricsError, Result};
use crate::roc::radix_sort;
use crate::validate::{check_max_bins, check_planes, explain_bad_probs, IGNORE_LABEL};

/// Norm of the calibration error.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CalibrationNorm {
    /// ECE: `Σ_b |acc_b − conf_b| · n_b / N`.
    L1,
    /// RMSCE: `sqrt(Σ_b (acc_b − conf_b)² · n_b / N)`.
    L2,
    /// MCE: `max_b |acc_b − conf_b|` over non-empty bins.
    Max,
}

/// Bin boundaries exactly as `torch.linspace(0, 1, n_bins + 1, dtype=float32)`.
///
/// # Errors
/// [`MetricsError::InvalidConfig`] when `n_bins` is 0 or above [`MAX_BINS`](crate::MAX_BINS).
///
/// # Examples
/// ```
/// use xray_metrics::torch_bin_boundaries;
/// assert_eq!(torch_bin_boundaries(4).unwrap(), [0.0, 0.25, 0.5, 0.75, 1.0]);
/// assert!(torch_bin_boundaries(0).is_err());
/// ```
pub fn torch_bin_boundaries(n_bins: usize) -> Result<Vec<f32>> {
    check_bin_count("n_bins", n_bins)?;
    let steps = n_bins + 1;
    let step = 1.0f32 / n_bins as f32;
    let half = steps / 2;
    // torch's CPU kernel evaluates the two halves from either end with fused multiply-adds.
    Ok((0..steps)
        .map(|i| {
            if i < half {
                step.mul_add(i as f32, 0.0)
            } else {
                (-step).mul_add((steps - i - 1) as f32, 1.0)
            }
        })
        .collect())
}

/// Refuses a reliability bin count of 0 or above [`MAX_BINS`](crate::MAX_BINS); `what` names the parameter.
fn check_bin_count(what: &str, n_bins: usize) -> Result<()> {
    if n_bins == 0 {
        return Err(MetricsError::InvalidConfig(format!(
            "{what} must be ≥ 1: reliability needs at least one bin"
        )));
    }
    check_max_bins(what, n_bins)
}

/// `bucketize(x, bounds, right=True) − 1` for x ≥ 0: the number of boundaries ≤ x, minus one.
#[inline(always)]
pub(crate) fn bucket(x: f32, bounds: &[f32]) -> usize {
    let n = bounds.len() - 1;
    let mut g = ((x * n as f32) as usize).min(n);
    while g > 0 && bounds[g] > x {
        g -= 1;
    }
    while g < n && bounds[g + 1] <= x {
        g += 1;
    }
    g
}

/// One reliability bin.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ReliabilityBin {
    /// Lower edge (inclusive).
    #[serde(deserialize_with = "crate::report::nan_from_null")]
    pub lower: f64,
    /// Upper edge (exclusive, except for the `[1, 1]` bin and equal-mass bins).
    #[serde(deserialize_with = "crate::report::nan_from_null")]
    pub upper: f64,
    /// Pixels in the bin.
    pub count: u64,
    /// Mean confidence (predicted probability) of those pixels; 0 when empty.
    #[serde(deserialize_with = "crate::report::nan_from_null")]
    pub confidence: f64,
    /// Fraction of those pixels that were correct (top-1) or of the class (class-wise);
    /// 0 when empty.
    #[serde(deserialize_with = "crate::report::nan_from_null")]
    pub accuracy: f64,
}

/// A reliability diagram: bins of confidence against observed accuracy.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Reliability {
    /// The bins, in increasing confidence.
    pub bins: Vec<ReliabilityBin>,
}

impl Reliability {
    /// Pixels over all bins (saturating at `u64::MAX`).
    ///
    /// # Examples
    /// ```
    /// use xray_metrics::{Reliability, ReliabilityBin};
    /// let bin = |count, confidence, accuracy| ReliabilityBin {
    ///     lower: 0.0, upper: 1.0, count, confidence, accuracy,
    /// };
    /// // 3 pixels at confidence 0.5, all right (gap 0.5); 1 at 0.75, wrong (gap 0.75).
    /// let r = Reliability { bins: vec![bin(3, 0.5, 1.0), bin(1, 0.75, 0.0)] };
    /// assert_eq!(r.total(), 4);
    /// assert_eq!(Reliability { bins: vec![] }.total(), 0);
    /// ```
    pub fn total(&self) -> u64 {
        // Saturating: bins read from an edited JSON file may hold counts past u64.
        self.bins
            .iter()
            .fold(0u64, |a, b| a.saturating_add(b.count))
    }

    /// Calibration error under `norm`; 0 when there is no pixel.
    ///
    /// # Examples
    /// ```
    /// use xray_metrics::{CalibrationNorm, Reliability, ReliabilityBin};
    /// let bin = |count, confidence, accuracy| ReliabilityBin {
    ///     lower: 0.0, upper: 1.0, count, confidence, accuracy,
    /// };
    /// // 3 pixels at confidence 0.5, all right (gap 0.5); 1 at 0.75, wrong (gap 0.75).
    /// let r = Reliability { bins: vec![bin(3, 0.5, 1.0), bin(1, 0.75, 0.0)] };
    /// assert_eq!(r.error(CalibrationNorm::L1), 0.5 * 0.75 + 0.75 * 0.25); // = r.ece()
    /// assert_eq!(r.error(CalibrationNorm::L2), (0.25f64 * 0.75 + 0.5625 * 0.25).sqrt());
    /// assert_eq!(r.error(CalibrationNorm::Max), 0.75); // = r.mce()
    /// assert_eq!(Reliability { bins: vec![] }.ece(), 0.0); // no pixel: 0, not NaN
    /// ```
    pub fn error(&self, norm: CalibrationNorm) -> f64 {
        let total = self.total();
        if total == 0 {
            return 0.0;
        }
        let gaps = self.bins.iter().map(|b| {
            (
                (b.accuracy - b.confidence).abs(),
                b.count as f64 / total as f64,
            )
        });
        match norm {
            CalibrationNorm::L1 => gaps.map(|(g, w)| g * w).sum(),
            CalibrationNorm::L2 => gaps.map(|(g, w)| g * g * w).sum::<f64>().sqrt(),
            // Over the non-empty bins only (a bin's weight is 0 exactly when it is empty):
            // an empty bin of a hand-built or edited reliability may hold any confidence
            // and accuracy.
            CalibrationNorm::Max => gaps
                .filter(|&(_, w)| w > 0.0)
                .map(|(g, _)| g)
                .fold(0.0, f64::max),
        }
    }

    /// Expected calibration error (l1).
    ///
    /// # Examples
    /// ```
    /// use xray_metrics::{Reliability, ReliabilityBin};
    /// let bin = |count, confidence, accuracy| ReliabilityBin {
    ///     lower: 0.0, upper: 1.0, count, confidence, accuracy,
    /// };
    /// // 3 pixels at confidence 0.5, all right (gap 0.5); 1 at 0.75, wrong (gap 0.75).
    /// let r = Reliability { bins: vec![bin(3, 0.5, 1.0), bin(1, 0.75, 0.0)] };
    /// // Gaps weighted by the bins' shares of the pixels: 0.5 · 3/4 + 0.75 · 1/4.
    /// assert_eq!(r.ece(), 0.5625);
    /// ```
    pub fn ece(&self) -> f64 {
        self.error(CalibrationNorm::L1)
    }

    /// Root-mean-square calibration error (l2).
    ///
    /// # Examples
    /// ```
    /// use xray_metrics::{Reliability, ReliabilityBin};
    /// let bin = |count, confidence, accuracy| ReliabilityBin {
    ///     lower: 0.0, upper: 1.0, count, confidence, accuracy,
    /// };
    /// // 3 pixels at confidence 0.5, all right (gap 0.5); 1 at 0.75, wrong (gap 0.75).
    /// let r = Reliability { bins: vec![bin(3, 0.5, 1.0), bin(1, 0.75, 0.0)] };
    /// // sqrt(0.5² · 3/4 + 0.75² · 1/4)
    /// assert!((r.rmsce() - 0.328125f64.sqrt()).abs() < 1e-15);
    /// assert!(r.rmsce() >= r.ece()); // l2 ≥ l1 for the same weights
    /// ```
    pub fn rmsce(&self) -> f64 {
        self.error(CalibrationNorm::L2)
    }

    /// Maximum calibration error: the largest gap between a non-empty bin's accuracy and
    /// confidence, whatever its share of the pixels.
    ///
    /// # Examples
    /// ```
    /// use xray_metrics::{Reliability, ReliabilityBin};
    /// let bin = |count, confidence, accuracy| ReliabilityBin {
    ///     lower: 0.0, upper: 1.0, count, confidence, accuracy,
    /// };
    /// // 3 pixels at confidence 0.5, all right (gap 0.5); 1 at 0.75, wrong (gap 0.75).
    /// let r = Reliability { bins: vec![bin(3, 0.5, 1.0), bin(1, 0.75, 0.0)] };
    /// assert_eq!(r.mce(), 0.75); // the one wrong pixel's bin
    /// ```
    pub fn mce(&self) -> f64 {
        self.error(CalibrationNorm::Max)
    }
}

/// Streaming equal-width reliability bins over (score, hit) pairs.
#[derive(Clone, Debug, PartialEq)]
pub struct ReliabilityBins {
    bounds: Vec<f32>,
    count: Vec<u64>,
    sum: Vec<f64>,
    hits: Vec<u64>,
}

impl ReliabilityBins {
    /// `n_bins` torchmetrics-compatible bins (plus the `[1, 1]` bin).
    ///
    /// # Errors
    /// [`MetricsError::InvalidConfig`] when `n_bins` is 0 or above [`MAX_BINS`](crate::MAX_BINS).
    ///
    /// # Examples
    /// ```
    /// # fn main() -> Result<(), xray_metrics::MetricsError> {
    /// use xray_metrics::ReliabilityBins;
    /// let r = ReliabilityBins::new(4)?.reliability();
    /// assert_eq!(r.bins.len(), 5); // [0, .25) [.25, .5) [.5, .75) [.75, 1) and [1, 1]
    /// assert_eq!((r.bins[4].lower, r.bins[4].upper), (1.0, 1.0));
    /// let e = ReliabilityBins::new(0).unwrap_err();
    /// assert!(e.to_string().contains("n_bins"), "{e}");
    /// # Ok(())
    /// # }
    /// ```
    pub fn new(n_bins: usize) -> Result<Self> {
        Ok(Self {
            bounds: torch_bin_boundaries(n_bins)?,
            count: vec![0; n_bins + 1],
            sum: vec![0.0; n_bins + 1],
            hits: vec![0; n_bins + 1],
        })
    }

    /// Adds one pixel: `score` in [0, 1], `hit` = correct / of the class.
    ///
    /// Unchecked, for the per-pixel loops of callers that checked their scores already (as
    /// the [`crate::Evaluator`] does): a score outside [0, 1] lands in the first or last
    /// bin, and a NaN makes the bin's mean score NaN. [`ReliabilityBins::try_push`] refuses
    /// them instead.
    ///
    /// # Examples
    /// ```
    /// # fn main() -> Result<(), xray_metrics::MetricsError> {
    /// use xray_metrics::ReliabilityBins;
    /// let mut bins = ReliabilityBins::new(4)?;
    /// bins.push(0.8, true);
    /// bins.push(0.9, false);
    /// bins.push(1.0, true); // exactly 1 has a bin of its own, as in torchmetrics
    /// let r = bins.reliability();
    /// assert_eq!((r.bins[3].count, r.bins[3].accuracy), (2, 0.5)); // [0.75, 1)
    /// assert_eq!((r.bins[4].count, r.bins[4].accuracy), (1, 1.0)); // [1, 1]
    /// # Ok(())
    /// # }
    /// ```
    #[inline]
    pub fn push(&mut self, score: f32, hit: bool) {
        let b = bucket(score, &self.bounds);
        self.count[b] += 1;
        self.sum[b] += score as f64;
        self.hits[b] += hit as u64;
    }

    /// [`ReliabilityBins::push`] for a score that has not been checked.
    ///
    /// # Errors
    /// [`MetricsError::InvalidProbability`] (pixel and class 0) for a score that is NaN,
    /// infinite or outside [0, 1]; nothing is added.
    ///
    /// # Examples
    /// ```
    /// # fn main() -> Result<(), xray_metrics::MetricsError> {
    /// use xray_metrics::ReliabilityBins;
    /// let mut bins = ReliabilityBins::new(4)?;
    /// bins.try_push(0.8, true)?;
    /// assert!(bins.try_push(f32::NAN, true).is_err());
    /// assert!(bins.try_push(1.5, false).is_err());
    /// assert_eq!(bins.total(), 1);
    /// # Ok(())
    /// # }
    /// ```
    pub fn try_push(&mut self, score: f32, hit: bool) -> Result<()> {
        if !(0.0..=1.0).contains(&score) {
            return Err(MetricsError::InvalidProbability {
                pixel: 0,
                class: 0,
                value: score,
            });
        }
        self.push(score, hit);
        Ok(())
    }

    /// Adds another accumulator with the same bins. Counts saturate at `u64::MAX` rather
    /// than wrap.
    ///
    /// # Errors
    /// [`MetricsError::InvalidConfig`] when `other` has other boundaries (nothing is added).
    ///
    /// # Examples
    /// ```
    /// # fn main() -> Result<(), xray_metrics::MetricsError> {
    /// use xray_metrics::ReliabilityBins;
    /// let (mut a, mut b) = (ReliabilityBins::new(10)?, ReliabilityBins::new(10)?);
    /// a.push(0.95, true);
    /// b.push(0.15, false);
    /// a.merge(&b)?;
    /// assert_eq!(a.total(), 2);
    /// assert!(a.merge(&ReliabilityBins::new(5)?).is_err()); // other boundaries
    /// assert_eq!(a.total(), 2);
    /// // Merged into itself 70 times: 2 · 2⁷⁰ pixels, held as u64::MAX instead of wrapping.
    /// for _ in 0..70 {
    ///     a.merge(&a.clone())?;
    /// }
    /// assert_eq!(a.total(), u64::MAX);
    /// assert!(a.reliability().bins.iter().all(|b| b.accuracy.is_finite()));
    /// # Ok(())
    /// # }
    /// ```
    pub fn merge(&mut self, other: &ReliabilityBins) -> Result<()> {
        if other.bounds != self.bounds {
            return Err(MetricsError::InvalidConfig(
                "cannot merge reliability bins with different boundaries".into(),
            ));
        }
        // Saturating: merging a set into itself again and again doubles its counts, which
        // would wrap past u64 after 64 rounds (pixels pushed one by one never get there).
        for i in 0..self.count.len() {
            self.count[i] = self.count[i].saturating_add(other.count[i]);
            self.sum[i] += other.sum[i];
            self.hits[i] = self.hits[i].saturating_add(other.hits[i]);
        }
        Ok(())
    }

    /// Pixels added.
    ///
    /// # Examples
    /// ```
    /// # fn main() -> Result<(), xray_metrics::MetricsError> {
    /// use xray_metrics::ReliabilityBins;
    /// let mut bins = ReliabilityBins::new(10)?;
    /// assert_eq!(bins.total(), 0);
    /// for score in [0.05, 0.55, 1.0] {
    ///     bins.push(score, true);
    /// }
    /// assert_eq!(bins.total(), 3); // whatever their bins and hits
    /// # Ok(())
    /// # }
    /// ```
    pub fn total(&self) -> u64 {
        self.count.iter().fold(0u64, |a, &c| a.saturating_add(c))
    }

    /// Mean score over all pixels (the "confidence" for top-1 bins); `None` if empty.
    ///
    /// # Examples
    /// ```
    /// # fn main() -> Result<(), xray_metrics::MetricsError> {
    /// use xray_metrics::ReliabilityBins;
    /// let mut bins = ReliabilityBins::new(10)?;
    /// assert_eq!(bins.mean_score(), None);
    /// bins.push(0.5, true);
    /// bins.push(0.75, false);
    /// assert_eq!(bins.mean_score(), Some(0.625)); // over all bins, hit or not
    /// # Ok(())
    /// # }
    /// ```
    pub fn mean_score(&self) -> Option<f64> {
        let t = self.total();
        (t > 0).then(|| self.sum.iter().sum::<f64>() / t as f64)
    }

    /// The bins as a [`Reliability`].
    ///
    /// # Examples
    /// ```
    /// # fn main() -> Result<(), xray_metrics::MetricsError> {
    /// use xray_metrics::ReliabilityBins;
    /// let mut bins = ReliabilityBins::new(2)?; // [0, 0.5), [0.5, 1), [1, 1]
    /// for (score, hit) in [(0.75, true), (0.75, true), (0.75, false), (0.25, false)] {
    ///     bins.push(score, hit);
    /// }
    /// let r = bins.reliability();
    /// assert_eq!((r.bins[1].confidence, r.bins[1].accuracy), (0.75, 2.0 / 3.0));
    /// assert_eq!((r.bins[0].confidence, r.bins[0].accuracy), (0.25, 0.0));
    /// // ECE: gaps weighted by the share of pixels, (0.75 − 2/3) · 3/4 + 0.25 · 1/4.
    /// assert!((r.ece() - 0.125).abs() < 1e-12);
    /// # Ok(())
    /// # }
    /// ```
    pub fn reliability(&self) -> Reliability {
        let n = self.bounds.len() - 1;
        Reliability {
            bins: (0..=n)
                .map(|i| {
                    let c = self.count[i];
                    ReliabilityBin {
                        lower: self.bounds[i] as f64,
                        upper: if i < n {
                            self.bounds[i + 1] as f64
                        } else {
                            1.0
                        },
                        count: c,
                        confidence: if c == 0 { 0.0 } else { self.sum[i] / c as f64 },
                        accuracy: if c == 0 {
                            0.0
                        } else {
                            self.hits[i] as f64 / c as f64
                        },
                    }
                })
                .collect(),
        }
    }
}

/// Equal-mass bins from keys `(f32 bits << 1) | hit`: sorted, then split into `n_bins`
/// contiguous groups of sizes differing by at most one (like `numpy.array_split`).
pub(crate) fn equal_mass_from_keys(keys: &mut Vec<u32>, n_bins: usize) -> Reliability {
    let mut scratch = Vec::new();
    radix_sort(keys, &mut scratch);
    let n = keys.len();
    let bins = n_bins.min(n.max(1));
    let (base, extra) = (n / bins, n % bins);
    let mut start = 0;
    let mut out = Vec::with_capacity(bins);
    for b in 0..bins {
        let len = base + usize::from(b < extra);
        let part = &keys[start..start + len];
        start += len;
        if part.is_empty() {
            continue;
        }
        let score = |k: u32| f32::from_bits(k >> 1) as f64;
        let sum: f64 = part.iter().map(|&k| score(k)).sum();
        let hits: u64 = part.iter().map(|&k| (k & 1) as u64).sum();
        out.push(ReliabilityBin {
            lower: score(part[0]),
            upper: score(part[len - 1]),
            count: len as u64,
            confidence: sum / len as f64,
            accuracy: hits as f64 / len as f64,
        });
    }
    Reliability { bins: out }
}

/// Pixels per block of the top-1 kernel (fits L1 with a few planes).
pub(crate) const BLOCK: usize = 2048;

/// Top-1 confidence and class of pixels `start..start+conf.len()` of class-major planes,
/// with the probability checks (finite, in [0, 1], sum within `tolerance`) done on the way.
/// Returns `false` when some pixel of the block failed a check.
#[inline]
pub(crate) fn top1_block(
    probs: &[f32],
    n: usize,
    num_classes: usize,
    start: usize,
    tolerance: f32,
    conf: &mut [f32],
    pred: &mut [u8],
) -> bool {
    let m = conf.len();
    let plane = |c: usize| &probs[c * n + start..c * n + start + m];
    match num_classes {
        2 => top1_fixed([plane(0), plane(1)], tolerance, conf, pred),
        3 => top1_fixed([plane(0), plane(1), plane(2)], tolerance, conf, pred),
        4 => top1_fixed(
            [plane(0), plane(1), plane(2), plane(3)],
            tolerance,
            conf,
            pred,
        ),
        _ => top1_any(probs, n, num_classes, start, tolerance, conf, pred),
    }
}

/// Top-1 of pixel `j` over `K` class planes: `(confidence, class, invalid)`, where invalid
/// means a value outside [0, 1] (NaN included) or a sum off 1 by more than `tolerance`.
/// Strict `>` keeps the first maximum, as numpy/torch argmax do. Selects, not branches:
/// which class wins is data-dependent and would mispredict half the time; callers' loops
/// vectorise.
#[inline(always)]
pub(crate) fn top1_pixel<const K: usize>(
    planes: &[&[f32]; K],
    j: usize,
    tolerance: f32,
) -> (f32, u32, bool) {
    let mut best = planes[0][j];
    let mut k = 0u32;
    let mut sum = best;
    let mut bad = !(0.0..=1.0).contains(&best);
    for (c, p) in planes.iter().enumerate().skip(1) {
        let v = p[j];
        let gt = v > best;
        best = if gt { v } else { best };
        k = if gt { c as u32 } else { k };
        sum += v;
        bad |= !(0.0..=1.0).contains(&v);
    }
    bad |= sum.is_nan() || (sum - 1.0).abs() > tolerance;
    (best, k, bad)
}

/// Pixel-by-pixel top-1 for a class count known at compile time (the common 2–4 classes).
#[inline(always)]
fn top1_fixed<const K: usize>(
    planes: [&[f32]; K],
    tolerance: f32,
    conf: &mut [f32],
    pred: &mut [u8],
) -> bool {
    let m = conf.len();
    let pred = &mut pred[..m];
    let planes = planes.map(|p| &p[..m]);
    let mut bad = false;
    for j in 0..m {
        let (best, k, invalid) = top1_pixel(&planes, j, tolerance);
        bad |= invalid;
        conf[j] = best;
        pred[j] = k as u8;
    }
    !bad
}

/// Plane-by-plane top-1 for any class count.
fn top1_any(
    probs: &[f32],
    n: usize,
    num_classes: usize,
    start: usize,
    tolerance: f32,
    conf: &mut [f32],
    pred: &mut [u8],
) -> bool {
    let m = conf.len();
    let mut sum = [0f32; BLOCK];
    let sum = &mut sum[..m];
    let mut bad = false;
    for (((cf, pd), s), &v) in conf
        .iter_mut()
        .zip(pred.iter_mut())
        .zip(sum.iter_mut())
        .zip(&probs[start..start + m])
    {
        *cf = v;
        *pd = 0;
        *s = v;
        bad |= !(0.0..=1.0).contains(&v);
    }
    for c in 1..num_classes {
        let pc = &probs[c * n + start..c * n + start + m];
        let cu = c as u8;
        for (((cf, pd), s), &v) in conf
            .iter_mut()
            .zip(pred.iter_mut())
            .zip(sum.iter_mut())
            .zip(pc)
        {
            if v > *cf {
                *cf = v;
                *pd = cu;
            }
            *s += v;
            bad |= !(0.0..=1.0).contains(&v);
        }
    }
    for s in sum.iter() {
        bad |= s.is_nan() || (s - 1.0).abs() > tolerance;
    }
    !bad
}

/// Top-1 confidence and predicted class of every pixel, checking the probabilities.
pub(crate) fn top1(
    labels_len: usize,
    probs: &[f32],
    num_classes: usize,
    tolerance: f64,
    conf: &mut [f32],
    pred: &mut [u8],
) -> Result<()> {
    let n = labels_len;
    let mut start = 0;
    while start < n {
        let m = BLOCK.min(n - start);
        if !top1_block(
            probs,
            n,
            num_classes,
            start,
            tolerance as f32,
            &mut conf[start..start + m],
            &mut pred[start..start + m],
        ) {
            return Err(explain_bad_probs(probs, n, num_classes, tolerance));
        }
        start += m;
    }
    Ok(())
}

/// Top-label calibration of class-major probabilities against labels (255 = ignore), in
/// torchmetrics-compatible equal-width bins. Pixels run in parallel blocks on the current
/// rayon pool; the result does not depend on the number of threads.
///
/// # Errors
/// - [`MetricsError::InvalidConfig`] when `num_classes` is not in 2..=255 or `n_bins` is 0
///   or above [`MAX_BINS`](crate::MAX_BINS);
/// - [`MetricsError::LengthMismatch`] when `probs` is not `num_classes` planes of
///   `labels.len()` values;
/// - [`MetricsError::LabelOutOfRange`], [`MetricsError::InvalidProbability`] or
///   [`MetricsError::ProbabilitiesNotNormalised`] for the first bad label or pixel.
///
/// # Examples
/// ```
/// use xray_metrics::calibration_bins;
/// let labels = [0u8, 1, 1, 255];
/// let probs = [0.9f32, 0.2, 0.4, 0.5, /* class 1: */ 0.1, 0.8, 0.6, 0.5];
/// let bins = calibration_bins(&labels, &probs, 2, 10).unwrap();
/// assert_eq!(bins.total(), 3);
/// let ece = bins.reliability().ece();
/// assert!((ece - (0.1 + 0.2 + 0.4) / 3.0).abs() < 1e-6);
/// ```
pub fn calibration_bins(
    labels: &[u8],
    probs: &[f32],
    num_classes: usize,
    n_bins: usize,
) -> Result<ReliabilityBins> {
    let n = check_planes(labels, probs, num_classes)?;
    let proto = ReliabilityBins::new(n_bins)?;
    let fast = crate::calibration_kernel::supports(num_classes, n_bins);
    if !fast {
        // Labels are checked once up front (a vectorised scan), so the hot loop has no
        // error path; the fast kernel checks them on its way instead.
        crate::validate::first_bad_label(labels, num_classes)?;
    }
    const PAR: usize = 1 << 17;
    let nb = proto.bounds.len();
    // Boundaries padded with +∞ so the one-step correction below may look at `g + 1 = n + 1`.
    let mut padded = proto.bounds.clone();
    padded.push(f32::INFINITY);
    let scale = (nb - 1) as f32;
    let parts: Vec<Result<ReliabilityBins>> = labels
        .par_chunks(PAR)
        .enumerate()
        .map(|(k, lab)| {
            let base = k * PAR;
            if fast {
                return match crate::calibration_kernel::bin_pixels(
                    lab,
                    probs,
                    n,
                    num_classes,
                    base,
                    &padded,
                    crate::validate::DEFAULT_SUM_TOLERANCE as f32,
                ) {
                    Ok(t) => {
                        let mut acc = proto.clone();
                        let unit = (-(crate::calibration_kernel::CONF_FRAC_BITS as f64)).exp2();
                        for b in 0..nb {
                            acc.count[b] = t.count[b];
                            acc.hits[b] = t.hits[b];
                            // Exact: a chunk's fixed-point sum stays far below 2^53.
                            acc.sum[b] = t.conf_fixed[b] as f64 * unit;
                        }
                        Ok(acc)
                    }
                    Err(crate::calibration_kernel::Refused::Labels) => {
                        crate::validate::first_bad_label(labels, num_classes).and(Err(
                            MetricsError::InvalidConfig(
                                "internal: the label check of the binning kernel disagreed".into(),
                            ),
                        ))
                    }
                    Err(crate::calibration_kernel::Refused::Probabilities) => {
                        Err(explain_bad_probs(
                            probs,
                            n,
                            num_classes,
                            crate::validate::DEFAULT_SUM_TOLERANCE,
                        ))
                    }
                };
            }
            // Slot `nb` collects ignored pixels and is dropped. Four interleaved lanes break
            // the add→add dependency when neighbouring pixels share a bin; count and hits share
            // one u64 (hits in the high half: a chunk has far fewer than 2^32 pixels).
            let mut count_hits = vec![[0u64; 4]; nb + 1];
            let mut sum = vec![[0f64; 4]; nb + 1];
            let mut conf = [0f32; BLOCK];
            let mut pred = [0u8; BLOCK];
            let mut off = 0;
            while off < lab.len() {
                let m = BLOCK.min(lab.len() - off);
                if !top1_block(
                    probs,
                    n,
                    num_classes,
                    base + off,
                    crate::validate::DEFAULT_SUM_TOLERANCE as f32,
                    &mut conf[..m],
                    &mut pred[..m],
                ) {
                    return Err(explain_bad_probs(
                        probs,
                        n,
                        num_classes,
                        crate::validate::DEFAULT_SUM_TOLERANCE,
                    ));
                }
                for (j, ((&l, &x), &p)) in lab[off..off + m]
                    .iter()
                    .zip(&conf[..m])
                    .zip(&pred[..m])
                    .enumerate()
                {
                    let g = bucket_fast(x, scale, &padded);
                    let g = if l == IGNORE_LABEL { nb } else { g };
                    let lane = j & 3;
                    count_hits[g][lane] += 1 | (u64::from(p == l) << 32);
                    sum[g][lane] += x as f64;
                }
                off += m;
            }
            let mut acc = proto.clone();
            for b in 0..nb {
                acc.count[b] = count_hits[b].iter().map(|v| v & 0xFFFF_FFFF).sum();
                acc.sum[b] = (sum[b][0] + sum[b][1]) + (sum[b][2] + sum[b][3]);
                acc.hits[b] = count_hits[b].iter().map(|v| v >> 32).sum();
            }
            Ok(acc)
        })
        .collect();
    let mut acc = proto;
    for p in parts {
        acc.merge(&p?)?;
    }
    Ok(acc)
}

/// Branch-free [`bucket`] for x in [0, 1]: `x · n` truncated is within one bin of the answer
/// (the `f32` boundaries are within an ulp of `i / n`), so one step each way corrects it.
/// `padded` is the boundaries followed by +∞.
#[inline(always)]
pub(crate) fn bucket_fast(x: f32, scale: f32, padded: &[f32]) -> usize {
    let n = padded.len() - 2;
    let g = ((x * scale) as usize).min(n);
    let g = g - usize::from(padded[g] > x);
    g + usize::from(padded[g + 1] <= x)
}

/// Top-label calibration error, as torchmetrics'
/// `multiclass_calibration_error(probs, target, num_classes, n_bins, norm, ignore_index=255)`.
///
/// # Errors
/// As [`calibration_bins`].
///
/// # Examples
/// ```
/// # fn main() -> Result<(), xray_metrics::MetricsError> {
/// use xray_metrics::{calibration_error, calibration_error_torch_f32, CalibrationNorm};
/// // Pixel 0: class 0 at 0.75, right. Pixel 1: class 0 at 0.65, wrong. Pixel 2: ignored.
/// let labels = [0u8, 1, 255];
/// let probs = [0.75f32, 0.65, 0.5, /* class 1 */ 0.25, 0.35, 0.5];
/// let ece = calibration_error(&labels, &probs, 2, 10, CalibrationNorm::L1)?;
/// assert!((ece - (0.25 + 0.65) / 2.0).abs() < 1e-6); // gaps |1 − 0.75|, |0 − 0.65|
/// let mce = calibration_error(&labels, &probs, 2, 10, CalibrationNorm::Max)?;
/// assert!((mce - 0.65).abs() < 1e-6);
/// let torch = calibration_error_torch_f32(&labels, &probs, 2, 10, CalibrationNorm::L1)?;
/// assert!((torch - ece).abs() < 1e-6);
/// # Ok(())
/// # }
/// ```
pub fn calibration_error(
    labels: &[u8],
    probs: &[f32],
    num_classes: usize,
    n_bins: usize,
    norm: CalibrationNorm,
) -> Result<f64> {
    Ok(calibration_bins(labels, probs, num_classes, n_bins)?
        .reliability()
        .error(norm))
}

/// Top-label calibration error computed the way torchmetrics does on the CPU: per-bin sums
/// accumulated in `f32` in pixel order (`scatter_add_` on a float32 tensor), then `f32`
/// divisions and an `f32` sum. Use it to reproduce a torchmetrics number to the last digits;
/// [`calibration_error`] (f64 sums) is the more accurate value. On 10 million pixels the two
/// differ by about 5e-5 (float32 loses about 0.1 % of a bin's confidence sum). With no
/// scored pixel (every label ignored) it is 0 for every norm, as [`calibration_error`] is.
///
/// # Errors
/// As [`calibration_bins`].
///
/// Single-threaded by construction (the summation order is part of the result).
///
/// # Examples
/// ```
/// # fn main() -> Result<(), xray_metrics::MetricsError> {
/// use xray_metrics::{calibration_error, calibration_error_torch_f32, CalibrationNorm};
/// // 3 pixels, the last ignored; top-1 confidences 0.75 (right) and 0.65 (wrong).
/// let labels = [0u8, 1, 255];
/// let probs = [0.75f32, 0.65, 0.5, /* class 1 */ 0.25, 0.35, 0.5];
/// let ece = calibration_error_torch_f32(&labels, &probs, 2, 10, CalibrationNorm::L1)?;
/// assert!((ece - (0.25 + 0.65) / 2.0).abs() < 1e-6);
/// // f32 arithmetic: the f64 value to within float32 rounding.
/// let exact = calibration_error(&labels, &probs, 2, 10, CalibrationNorm::L1)?;
/// assert!((ece - exact).abs() < 1e-6);
/// let mce = calibration_error_torch_f32(&labels, &probs, 2, 10, CalibrationNorm::Max)?;
/// assert!((mce - 0.65).abs() < 1e-6);
/// # Ok(())
/// # }
/// ```
pub fn calibration_error_torch_f32(
    labels: &[u8],
    probs: &[f32],
    num_classes: usize,
    n_bins: usize,
    norm: CalibrationNorm,
) -> Result<f64> {
    let n = check_planes(labels, probs, num_classes)?;
    crate::validate::first_bad_label(labels, num_classes)?;
    let bounds = torch_bin_boundaries(n_bins)?;
    let mut count = vec![0f32; n_bins + 1];
    let mut sum = vec![0f32; n_bins + 1];
    let mut hits = vec![0f32; n_bins + 1];
    let mut conf = [0f32; BLOCK];
    let mut pred = [0u8; BLOCK];
    let tol = crate::validate::DEFAULT_SUM_TOLERANCE;
    let mut off = 0;
    while off < n {
        let m = BLOCK.min(n - off);
        if !top1_block(
            probs,
            n,
            num_classes,
            off,
            tol as f32,
            &mut conf[..m],
            &mut pred[..m],
        ) {
            return Err(explain_bad_probs(probs, n, num_classes, tol));
        }
        for j in 0..m {
            let l = labels[off + j];
            if l != IGNORE_LABEL {
                let b = bucket(conf[j], &bounds);
                count[b] += 1.0;
                sum[b] += conf[j];
                hits[b] += f32::from(u8::from(pred[j] == l));
            }
        }
        off += m;
    }
    let total: f32 = count.iter().sum();
    if total == 0.0 {
        // No scored pixel (every label ignored): 0, as `calibration_error` gives, instead of
        // the 0/0 bin weights' NaN.
        return Ok(0.0);
    }
    let gaps = (0..=n_bins).map(|b| {
        let (cb, ab) = if count[b] > 0.0 {
            (sum[b] / count[b], hits[b] / count[b])
        } else {
            (0.0, 0.0)
        };
        ((ab - cb).abs(), count[b] / total)
    });
    Ok(match norm {
        CalibrationNorm::L1 => gaps.map(|(g, w)| g * w).sum::<f32>() as f64,
        CalibrationNorm::L2 => (gaps.map(|(g, w)| g * g * w).sum::<f32>() as f64).sqrt(),
        CalibrationNorm::Max => gaps.map(|(g, _)| g).fold(0.0f32, f32::max) as f64,
    })
}

/// Class-wise reliability: for each class `k`, bins of `p_k` over all scored pixels against
/// the frequency of label `k` (Kull et al. 2019 "classwise-ECE" averages their ECEs).
///
/// # Errors
/// As [`calibration_bins`], except that the probabilities are checked one by one (finite,
/// in [0, 1]; [`MetricsError::InvalidProbability`]), not for their sum.
///
/// # Examples
/// ```
/// # fn main() -> Result<(), xray_metrics::MetricsError> {
/// use xray_metrics::classwise_reliability;
/// let labels = [0u8, 0, 1, 1];
/// let probs = [0.95f32, 0.85, 0.45, 0.15, /* class 1 */ 0.05, 0.15, 0.55, 0.85];
/// let per_class = classwise_reliability(&labels, &probs, 2, 10)?;
/// assert_eq!(per_class.len(), 2);
/// // Class 1: p = 0.05 and 0.15 on class-0 pixels (gaps 0.05, 0.15), 0.55 and 0.85 on
/// // class-1 pixels (gaps 0.45, 0.15), each alone in its bin.
/// let ece = per_class[1].ece();
/// assert!((ece - (0.05 + 0.15 + 0.45 + 0.15) / 4.0).abs() < 1e-6, "{ece}");
/// assert_eq!(per_class[1].total(), 4);
/// # Ok(())
/// # }
/// ```
pub fn classwise_reliability(
    labels: &[u8],
    probs: &[f32],
    num_classes: usize,
    n_bins: usize,
) -> Result<Vec<Reliability>> {
    let n = check_planes(labels, probs, num_classes)?;
    crate::validate::first_bad_label(labels, num_classes)?;
    (0..num_classes)
        .map(|k| {
            let mut acc = ReliabilityBins::new(n_bins)?;
            let plane = &probs[k * n..(k + 1) * n];
            for (i, (&l, &p)) in labels.iter().zip(plane).enumerate() {
                if l != IGNORE_LABEL {
                    if !(0.0..=1.0).contains(&p) {
                        return Err(MetricsError::InvalidProbability {
                            pixel: i,
                            class: k,
                            value: p,
                        });
                    }
                    acc.push(p, l as usize == k);
                }
            }
            Ok(acc.reliability())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The branch-free bucket agrees with the reference search on every boundary, its
    /// neighbouring floats and a sweep of [0, 1], for many bin counts.
    #[test]
    fn fast_bucket_matches_reference() {
        for n in 1..=64usize {
            let bounds = torch_bin_boundaries(n).unwrap();
            let mut padded = bounds.clone();
            padded.push(f32::INFINITY);
            let mut xs: Vec<f32> = (0..=2000).map(|i| i as f32 / 2000.0).collect();
            for &b in &bounds {
                for d in [-2i32, -1, 0, 1, 2] {
                    let v = f32::from_bits((b.to_bits() as i32 + d).max(0) as u32);
                    if (0.0..=1.0).contains(&v) {
                        xs.push(v);
                    }
                }
            }
            for x in xs {
                assert_eq!(
                    bucket_fast(x, n as f32, &padded),
                    bucket(x, &bounds),
                    "n={n} x={x}"
                );
            }
        }
    }
}
