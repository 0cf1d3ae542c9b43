//! One-vs-rest ROC curves and AUC: exact (ties as scikit-learn) and binned (bounded memory).
//!
//! **Exact AUC** keeps, per class, one `u32` per scored pixel: the score's `f32` bit pattern
//! shifted left by one with the "is this class" flag in the low bit. Non-negative floats
//! order like their bit patterns, so a radix sort (one scatter on the top 13 bits, then two
//! in-cache passes of 9 bits inside each top bucket) sorts the
//! scores exactly, and one scan over equal-score groups gives the Mann–Whitney statistic
//! `Σ_groups pos_g · (2·neg_below + neg_g)` in integers. That is exactly the trapezoidal area
//! scikit-learn's `roc_auc_score` computes (a tied group is one diagonal step, worth half a
//! pair). Memory: 4 bytes × classes × scored pixels.
//!
//! **Binned AUC** keeps, per class, positive and negative counts in `B` equal-width bins on
//! [0, 1] (`16·B·C` bytes whatever the pixel count). Pairs in different bins are ordered
//! correctly; a pair in the same bin is counted as a tie (½) while its true credit is 0, ½
//! or 1, so `|AUC_binned − AUC_exact| ≤ ½ · Σ_b pos_b·neg_b / (P·N)`, a bound computed from
//! the same histogram and reported with the estimate.

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::{MetricsError, Result};
use crate::scores::Average;
use crate::validate::{check_planes, first_bad_label, first_bad_probability, IGNORE_LABEL};

/// Sort key of a score in [0, 1] and its positive flag. Callers check the score first: the
/// key of NaN, an infinity or a score of 2 or more is 2^31 or more, past the radix sort's
/// top-digit histogram ([`count_top_digit`] would index out of bounds).
#[inline(always)]
pub(crate) fn key(score: f32, positive: bool) -> u32 {
    // `+ 0.0` turns -0.0 into +0.0 so both sort as zero.
    ((score + 0.0).to_bits() << 1) | positive as u32
}

/// Top-digit histogram of the radix sort: keys are below 2^31, the top digit is bits 18..31.
pub(crate) type TopHist = [usize; TOP_BUCKETS];
const TOP_SHIFT: u32 = 18;
const TOP_BUCKETS: usize = 1 << (31 - TOP_SHIFT);
/// The low 18 bits are sorted inside each top bucket in two passes of 9 bits.
const LOW_A_BITS: u32 = 9;
const LOW_A_MASK: u32 = (1 << LOW_A_BITS) - 1;
const LOW_B_MASK: u32 = (1 << (TOP_SHIFT - LOW_A_BITS)) - 1;

/// Counts a key's top digit (done while the keys are built, so the sort needs no extra pass).
#[inline(always)]
pub(crate) fn count_top_digit(hist: &mut TopHist, k: u32) {
    hist[(k >> TOP_SHIFT) as usize] += 1;
}

/// An empty top-digit histogram.
pub(crate) fn new_top_hist() -> Box<TopHist> {
    Box::new([0; TOP_BUCKETS])
}

/// Radix sort of keys below 2^31 (scores in [0, 1]); `scratch` is reused.
pub(crate) fn radix_sort(keys: &mut Vec<u32>, scratch: &mut Vec<u32>) {
    let mut hist = new_top_hist();
    for &k in keys.iter() {
        count_top_digit(&mut hist, k);
    }
    radix_sort_with_hist(keys, scratch, &hist);
}

/// Radix sort with the top-digit histogram already counted: one scatter pass on the top 13
/// bits (exponent and 4 mantissa bits), then each top bucket (a few hundred kB at most for
/// ordinary score spreads, so it stays in L2) sorted on its low 18 bits by two LSD passes. Three passes over
/// the keys as a whole fell out of cache on every pass; this makes one.
pub(crate) fn radix_sort_with_hist(keys: &mut Vec<u32>, scratch: &mut Vec<u32>, hist: &TopHist) {
    let n = keys.len();
    if n < 2 {
        return;
    }
    scratch.clear();
    scratch.resize(n, 0);
    let mut next = [0usize; TOP_BUCKETS];
    let mut sum = 0;
    for (nx, &c) in next.iter_mut().zip(hist.iter()) {
        *nx = sum;
        sum += c;
    }
    debug_assert_eq!(sum, n, "histogram does not match the keys");
    for &k in keys.iter() {
        let d = (k >> TOP_SHIFT) as usize;
        scratch[next[d]] = k;
        next[d] += 1;
    }
    // `next[d]` is now the end of bucket d; the same range of `keys` is its temp space.
    // Buckets are independent: they are sorted in parallel on the current rayon pool.
    let mut buckets = Vec::new();
    let (mut rest_s, mut rest_k) = (&mut scratch[..], &mut keys[..]);
    let mut start = 0;
    for &end in next.iter() {
        let (b_s, r_s) = std::mem::take(&mut rest_s).split_at_mut(end - start);
        let (b_k, r_k) = std::mem::take(&mut rest_k).split_at_mut(end - start);
        if end - start > 1 {
            buckets.push((b_s, b_k));
        }
        (rest_s, rest_k, start) = (r_s, r_k, end);
    }
    buckets
        .into_par_iter()
        .with_min_len(8)
        .for_each(|(b, tmp)| sort_low_bits(b, tmp));
    std::mem::swap(keys, scratch);
}

/// Sorts keys that share their top digit by their low 18 bits; `tmp` is as long as `keys`.
fn sort_low_bits(keys: &mut [u32], tmp: &mut [u32]) {
    let n = keys.len();
    if n <= 64 {
        keys.sort_unstable();
        return;
    }
    let mut ha = [0usize; 1 << LOW_A_BITS];
    let mut hb = [0usize; 1 << (TOP_SHIFT - LOW_A_BITS)];
    for &k in keys.iter() {
        ha[(k & LOW_A_MASK) as usize] += 1;
        hb[((k >> LOW_A_BITS) & LOW_B_MASK) as usize] += 1;
    }
    let mut in_tmp = false;
    for (shift, mask, h) in [
        (0, LOW_A_MASK, &mut ha[..]),
        (LOW_A_BITS, LOW_B_MASK, &mut hb[..]),
    ] {
        // A digit shared by every key does not reorder anything: skip the pass.
        if h.contains(&n) {
            continue;
        }
        let mut sum = 0;
        for c in h.iter_mut() {
            let v = *c;
            *c = sum;
            sum += v;
        }
        let (src, dst): (&[u32], &mut [u32]) = if in_tmp {
            (&*tmp, &mut *keys)
        } else {
            (&*keys, &mut *tmp)
        };
        for &k in src {
            let d = ((k >> shift) & mask) as usize;
            dst[h[d]] = k;
            h[d] += 1;
        }
        in_tmp = !in_tmp;
    }
    if in_tmp {
        keys.copy_from_slice(tmp);
    }
}

/// One point of a ROC curve.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct RocPoint {
    /// False-positive rate.
    #[serde(deserialize_with = "crate::report::nan_from_null")]
    pub fpr: f64,
    /// True-positive rate.
    #[serde(deserialize_with = "crate::report::nan_from_null")]
    pub tpr: f64,
}

/// One-vs-rest ROC of one class.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClassRoc {
    /// Pixels of this class.
    pub positives: u64,
    /// Scored pixels of other classes.
    pub negatives: u64,
    /// Area under the curve; `None` when `positives` or `negatives` is 0 (undefined).
    pub auc: Option<f64>,
    /// Bound on `|auc − exact AUC|`: 0 for the exact method.
    pub error_bound: f64,
    /// The curve from (0, 0) to (1, 1), thinned to at most about 500 points (a point is
    /// kept when FPR or TPR moved by ≥ 1/250); for plotting.
    pub curve: Vec<RocPoint>,
}

/// Scan ascending `(value, positive)` groups and compute the ROC of one binary problem.
/// `groups` yields `(pos_g, neg_g)` per distinct score, ascending.
#[inline]
fn roc_from_groups(
    groups: impl Iterator<Item = (u64, u64)>,
    positives: u64,
    negatives: u64,
) -> (Option<f64>, Vec<RocPoint>) {
    let mut num2: u128 = 0;
    let mut neg_below: u64 = 0;
    let mut pos_below: u64 = 0;
    // Curve thinning in integers (no per-group division): keep a point once 1/250 of the
    // negatives or positives went by since the last kept one.
    let (step_n, step_p) = (
        negatives.div_ceil(250).max(1),
        positives.div_ceil(250).max(1),
    );
    let mut kept = vec![(0u64, 0u64)];
    let (mut last_n, mut last_p) = (0u64, 0u64);
    for (pos_g, neg_g) in groups {
        num2 += pos_g as u128 * (2 * neg_below as u128 + neg_g as u128);
        neg_below += neg_g;
        pos_below += pos_g;
        if neg_below - last_n >= step_n || pos_below - last_p >= step_p {
            kept.push((neg_below, pos_below));
            (last_n, last_p) = (neg_below, pos_below);
        }
    }
    finish_roc(kept, (neg_below, pos_below), num2, positives, negatives)
}

/// Closes a scan: adds the end point `(neg_below, pos_below)` if the thinning skipped it,
/// turns below-threshold counts into rates of the pixels at or above the threshold (from
/// (0, 0) to (1, 1)), and the doubled Mann–Whitney count `num2` into the AUC.
fn finish_roc(
    mut kept: Vec<(u64, u64)>,
    end: (u64, u64),
    num2: u128,
    positives: u64,
    negatives: u64,
) -> (Option<f64>, Vec<RocPoint>) {
    if kept.last() != Some(&end) {
        kept.push(end);
    }
    let (pf, nf) = (positives.max(1) as f64, negatives.max(1) as f64);
    let pts = kept
        .iter()
        .rev()
        .map(|&(nb, pb)| RocPoint {
            fpr: (negatives - nb) as f64 / nf,
            tpr: (positives - pb) as f64 / pf,
        })
        .collect();
    let auc = (positives > 0 && negatives > 0)
        .then(|| num2 as f64 / (2.0 * positives as f64 * negatives as f64));
    (auc, pts)
}

/// [`roc_from_groups`] over a sorted key slice, without a branch per group (groups of
/// random length would mispredict on almost every key). Within a score, negatives (flag 0)
/// sort before positives, so a positive's credit `2·neg_below_group + neg_in_group` is
/// `neg_before_it + neg_before_its_group`.
fn roc_from_sorted_keys(
    keys: &[u32],
    positives: u64,
    negatives: u64,
) -> (Option<f64>, Vec<RocPoint>) {
    let (step_n, step_p) = (
        negatives.div_ceil(250).max(1),
        positives.div_ceil(250).max(1),
    );
    let mut kept = vec![(0u64, 0u64)];
    let (mut last_n, mut last_p) = (0u64, 0u64);
    let mut num2: u128 = 0;
    let mut neg_before = 0u64;
    let mut group_neg_start = 0u64;
    let mut seen = 0u64;
    // Contributions are below 2^36 each; a u64 partial over 2^26 keys cannot overflow.
    for chunk in keys.chunks(1 << 26) {
        let mut partial = 0u64;
        let mut prev = u32::MAX;
        if seen > 0 {
            prev = keys[seen as usize - 1] >> 1;
        }
        for &k in chunk {
            let v = k >> 1;
            let pos = u64::from(k & 1);
            let new_group = v != prev;
            let pos_before = seen - neg_before;
            let want = (neg_before - last_n >= step_n) | (pos_before - last_p >= step_p);
            if want & new_group {
                kept.push((neg_before, pos_before));
                (last_n, last_p) = (neg_before, pos_before);
            }
            group_neg_start = if new_group {
                neg_before
            } else {
                group_neg_start
            };
            partial += pos * (neg_before + group_neg_start);
            neg_before += 1 - pos;
            seen += 1;
            prev = v;
        }
        num2 += u128::from(partial);
    }
    let end = (neg_before, seen - neg_before);
    finish_roc(kept, end, num2, positives, negatives)
}

/// Groups of a sorted key stream: `(pos_g, neg_g)` per distinct score.
struct Groups<I: Iterator<Item = u32>> {
    it: std::iter::Peekable<I>,
}

impl<I: Iterator<Item = u32>> Iterator for Groups<I> {
    type Item = (u64, u64);
    #[inline]
    fn next(&mut self) -> Option<(u64, u64)> {
        let first = self.it.next()?;
        let v = first >> 1;
        let mut pos = (first & 1) as u64;
        let mut cnt = 1u64;
        while let Some(&k) = self.it.peek() {
            if k >> 1 != v {
                break;
            }
            pos += (k & 1) as u64;
            cnt += 1;
            self.it.next();
        }
        Some((pos, cnt - pos))
    }
}

/// Merge of a few sorted key slices (for micro averaging).
struct MergeSorted<'a> {
    slices: Vec<&'a [u32]>,
}

impl Iterator for MergeSorted<'_> {
    type Item = u32;
    #[inline]
    fn next(&mut self) -> Option<u32> {
        let mut best: Option<usize> = None;
        for (i, s) in self.slices.iter().enumerate() {
            if let Some(&k) = s.first() {
                if best.is_none_or(|b| k < self.slices[b][0]) {
                    best = Some(i);
                }
            }
        }
        let b = best?;
        let k = self.slices[b][0];
        self.slices[b] = &self.slices[b][1..];
        Some(k)
    }
}

/// Whether [`roc_ovr`] and [`ExactAuc::finish`] also compute the micro-averaged AUC
/// (scikit-learn's `average="micro"`: every class's pixels ranked together as one binary
/// problem), which costs a merge over all classes' sorted keys and as much memory again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MicroAuc {
    /// Per-class results only; [`AucResult::micro`] is `None`.
    Skip,
    /// Per-class results and the micro average.
    Compute,
}

/// ROC results for all classes plus micro averaging.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AucResult {
    /// Per-class one-vs-rest ROC.
    pub per_class: Vec<ClassRoc>,
    /// Micro-averaged AUC (every (pixel, class) pair as one binary sample, scikit-learn's
    /// `average="micro"`); `None` when undefined or not computed (binned method).
    pub micro: Option<f64>,
    /// `"exact"` or `"binned(B)"`.
    pub method: String,
}

impl AucResult {
    /// Averaged AUC. Macro = unweighted mean of the classes, weighted = weighted by
    /// positives (scikit-learn `multi_class="ovr"`). Fails with
    /// [`MetricsError::AucUndefined`] when any class has no positive or no negative pixel,
    /// as scikit-learn does; [`Average::None`] is not a single number and is refused too.
    ///
    /// # Examples
    /// ```
    /// # fn main() -> Result<(), xray_metrics::MetricsError> {
    /// use xray_metrics::{roc_ovr, Average, MetricsError, MicroAuc};
    /// let labels = [0u8, 1, 0, 1];
    /// // Class-major: planes of classes 0, 1 and 2; no pixel is of class 2.
    /// let probs = [0.9f32, 0.4, 0.6, 0.2, 0.1, 0.6, 0.4, 0.8, 0.0, 0.0, 0.0, 0.0];
    /// let roc = roc_ovr(&labels, &probs, 3, MicroAuc::Skip)?;
    /// assert_eq!(roc.per_class[1].auc, Some(1.0));
    /// assert_eq!(roc.per_class[2].auc, None);
    /// let err = roc.average(Average::Macro).unwrap_err();
    /// assert!(matches!(err, MetricsError::AucUndefined { class: 2, positives: 0, .. }));
    /// # Ok(())
    /// # }
    /// ```
    pub fn average(&self, average: Average) -> Result<f64> {
        if let Some((class, r)) = self
            .per_class
            .iter()
            .enumerate()
            .find(|(_, r)| r.auc.is_none())
        {
            return Err(MetricsError::AucUndefined {
                class,
                positives: r.positives,
                negatives: r.negatives,
            });
        }
        let aucs = self.per_class.iter().map(|r| r.auc.unwrap_or(f64::NAN));
        match average {
            Average::Macro => Ok(aucs.sum::<f64>() / self.per_class.len() as f64),
            Average::Weighted => {
                let total: u64 = self.per_class.iter().map(|r| r.positives).sum();
                Ok(self
                    .per_class
                    .iter()
                    .zip(aucs)
                    .map(|(r, a)| r.positives as f64 * a)
                    .sum::<f64>()
                    / total as f64)
            }
            Average::Micro => self.micro.ok_or_else(|| {
                MetricsError::InvalidConfig(format!(
                    "micro-averaged AUC is not available for the {} method",
                    self.method
                ))
            }),
            Average::None => Err(MetricsError::InvalidConfig(
                "Average::None is per class: read AucResult::per_class".into(),
            )),
        }
    }

    /// Largest per-class error bound (0 for the exact method).
    ///
    /// # Examples
    /// ```
    /// # fn main() -> Result<(), xray_metrics::MetricsError> {
    /// use xray_metrics::{roc_ovr, BinnedAuc, MicroAuc};
    /// let labels = [0u8, 1, 1, 0];
    /// let probs = [0.8f32, 0.1, 0.4, 0.05, /* class 1 */ 0.2, 0.9, 0.6, 0.95];
    /// assert_eq!(roc_ovr(&labels, &probs, 2, MicroAuc::Skip)?.error_bound(), 0.0);
    /// let mut binned = BinnedAuc::new(2, 2)?;
    /// binned.add(&labels, &probs)?;
    /// // Both classes have 2 of their 4 (positive, negative) pairs in one bin: ½ · 2/4.
    /// assert_eq!(binned.finish().error_bound(), 0.25);
    /// # Ok(())
    /// # }
    /// ```
    pub fn error_bound(&self) -> f64 {
        self.per_class
            .iter()
            .map(|r| r.error_bound)
            .fold(0.0, f64::max)
    }
}

/// Streaming exact one-vs-rest AUC: keeps one `u32` per scored pixel and class.
#[derive(Clone, Debug)]
pub struct ExactAuc {
    keys: Vec<Vec<u32>>,
    positives: Vec<u64>,
    scored: u64,
    /// Every class's keys are already sorted (set by `roc_ovr`, cleared by `add`/`merge`).
    sorted: bool,
}

impl ExactAuc {
    /// Empty accumulator for `num_classes` classes.
    ///
    /// # Errors
    /// [`MetricsError::InvalidConfig`] when `num_classes` is not in 2..=255.
    ///
    /// # Examples
    /// ```
    /// # fn main() -> Result<(), xray_metrics::MetricsError> {
    /// use xray_metrics::{ExactAuc, MicroAuc};
    /// let roc = ExactAuc::new(3)?.finish(MicroAuc::Compute);
    /// assert_eq!(roc.per_class.len(), 3);
    /// assert_eq!((roc.per_class[0].auc, roc.micro), (None, None)); // no pixel: undefined
    /// let e = ExactAuc::new(1).unwrap_err();
    /// assert!(e.to_string().contains("num_classes"), "{e}");
    /// # Ok(())
    /// # }
    /// ```
    pub fn new(num_classes: usize) -> Result<Self> {
        crate::validate::check_num_classes(num_classes)?;
        Ok(Self {
            keys: vec![Vec::new(); num_classes],
            positives: vec![0; num_classes],
            scored: 0,
            sorted: false,
        })
    }

    /// Adds one image: `labels` (255 = ignore) and class-major probabilities. Labels are
    /// checked; probabilities are assumed checked by the caller (the evaluator does) but
    /// must lie in [0, 1] for the key order to hold, so values outside are rejected here.
    ///
    /// # Examples
    /// ```
    /// # fn main() -> Result<(), xray_metrics::MetricsError> {
    /// use xray_metrics::{ExactAuc, MicroAuc};
    /// let mut acc = ExactAuc::new(2)?;
    /// // Two images of two pixels, class-major: class-0 plane, then class-1 plane.
    /// acc.add(&[0, 1], &[0.8, 0.3, 0.2, 0.7])?;
    /// acc.add(&[1, 0], &[0.7, 0.6, 0.3, 0.4])?;
    /// let roc = acc.finish(MicroAuc::Skip);
    /// // Class 1 over both images: positives score 0.7 and 0.3, negatives 0.2 and 0.4;
    /// // 3 of the 4 (positive, negative) pairs are ordered right.
    /// assert_eq!(roc.per_class[1].auc, Some(0.75));
    /// assert_eq!((roc.per_class[1].positives, roc.per_class[1].negatives), (2, 2));
    /// # Ok(())
    /// # }
    /// ```
    pub fn add(&mut self, labels: &[u8], probs: &[f32]) -> Result<()> {
        let c = self.keys.len();
        let n = check_planes(labels, probs, c)?;
        first_bad_label(labels, c)?;
        // Every plane before any is taken in: a refused call must leave the counts as they
        // were (a later plane's bad value once left the earlier classes' keys added and
        // their positives not, and `finish` then underflowed).
        first_bad_probability(probs, n)?;
        self.add_checked(labels, probs, n);
        Ok(())
    }

    /// [`ExactAuc::add`] after its checks (the planes' shape, the labels, every probability
    /// in [0, 1]), for a caller that made them already (the [`crate::Evaluator`]).
    pub(crate) fn add_checked(&mut self, labels: &[u8], probs: &[f32], n: usize) {
        for (class, keys) in self.keys.iter_mut().enumerate() {
            let plane = &probs[class * n..(class + 1) * n];
            keys.reserve(n);
            let cl = class as u8;
            keys.extend(
                labels
                    .iter()
                    .zip(plane)
                    .filter(|(&l, _)| l != IGNORE_LABEL)
                    .map(|(&l, &p)| key(p, l == cl)),
            );
        }
        let mut scored = 0u64;
        for &l in labels {
            if l != IGNORE_LABEL {
                self.positives[l as usize] += 1;
                scored += 1;
            }
        }
        self.scored += scored;
        self.sorted = false;
    }

    /// Adds another accumulator's pixels.
    ///
    /// # Errors
    /// [`MetricsError::InvalidConfig`] when `other` has another class count.
    ///
    /// # Examples
    /// ```
    /// # fn main() -> Result<(), xray_metrics::MetricsError> {
    /// use xray_metrics::{ExactAuc, MicroAuc};
    /// let (mut a, mut b) = (ExactAuc::new(2)?, ExactAuc::new(2)?);
    /// a.add(&[0, 1], &[0.8, 0.3, 0.2, 0.7])?;
    /// b.add(&[1, 0], &[0.7, 0.6, 0.3, 0.4])?;
    /// a.merge(b)?; // as adding both images to `a` (see ExactAuc::add)
    /// assert_eq!(a.clone().finish(MicroAuc::Skip).per_class[1].auc, Some(0.75));
    /// assert!(a.merge(ExactAuc::new(3)?).is_err());
    /// # Ok(())
    /// # }
    /// ```
    pub fn merge(&mut self, other: ExactAuc) -> Result<()> {
        if other.keys.len() != self.keys.len() {
            return Err(MetricsError::InvalidConfig(
                "cannot merge ExactAuc accumulators with different class counts".into(),
            ));
        }
        for (a, b) in self.keys.iter_mut().zip(other.keys) {
            a.extend(b);
        }
        for (a, b) in self.positives.iter_mut().zip(other.positives) {
            *a += b;
        }
        self.scored += other.scored;
        self.sorted = false;
        Ok(())
    }

    /// Sorts (classes in parallel on the rayon pool) and computes the ROC of every class,
    /// plus the micro average when `micro` asks for it (a merge over all classes' keys).
    ///
    /// # Examples
    /// ```
    /// # fn main() -> Result<(), xray_metrics::MetricsError> {
    /// use xray_metrics::{ExactAuc, MicroAuc};
    /// let mut acc = ExactAuc::new(2)?;
    /// acc.add(&[0, 1, 1, 0], &[0.5, 0.5, 0.1, 0.9, /* class 1 */ 0.5, 0.5, 0.9, 0.1])?;
    /// let roc = acc.finish(MicroAuc::Compute);
    /// // Class 1: positives 0.5 and 0.9, negatives 0.5 and 0.1. The tie 0.5 = 0.5 counts
    /// // half a pair, the 3 other pairs are ordered right: 3.5 / 4.
    /// assert_eq!(roc.per_class[1].auc, Some(0.875));
    /// // Micro: the 8 (pixel, class) scores as one problem, 14 of 16 pairs' credit.
    /// assert_eq!(roc.micro, Some(0.875));
    /// assert_eq!(roc.method, "exact");
    /// # Ok(())
    /// # }
    /// ```
    pub fn finish(mut self, micro: MicroAuc) -> AucResult {
        let scored = self.scored;
        let positives = self.positives.clone();
        let sorted = self.sorted;
        let per_class: Vec<ClassRoc> = self
            .keys
            .par_iter_mut()
            .zip(positives.par_iter())
            .map(|(keys, &pos)| {
                if !sorted {
                    let mut scratch = Vec::new();
                    radix_sort(keys, &mut scratch);
                }
                let neg = scored - pos;
                let (auc, curve) = roc_from_sorted_keys(keys, pos, neg);
                ClassRoc {
                    positives: pos,
                    negatives: neg,
                    auc,
                    error_bound: 0.0,
                    curve,
                }
            })
            .collect();
        let micro = if micro == MicroAuc::Compute {
            let c = self.keys.len() as u64;
            let it = MergeSorted {
                slices: self.keys.iter().map(|k| k.as_slice()).collect(),
            };
            roc_from_groups(Groups { it: it.peekable() }, scored, scored * (c - 1)).0
        } else {
            None
        };
        AucResult {
            per_class,
            micro,
            method: "exact".into(),
        }
    }
}

/// Streaming binned one-vs-rest AUC with bounded memory and a reported error bound.
#[derive(Clone, Debug)]
pub struct BinnedAuc {
    num_classes: usize,
    bins: usize,
    /// `[class][bin] -> (positives, negatives)`.
    hist: Vec<[u64; 2]>,
}

impl BinnedAuc {
    /// `bins` equal-width bins on [0, 1] (at least 2, at most [`MAX_BINS`](crate::MAX_BINS)).
    ///
    /// # Errors
    /// [`MetricsError::InvalidConfig`] when `num_classes` is not in 2..=255 or `bins` is
    /// below 2 or above [`MAX_BINS`](crate::MAX_BINS).
    ///
    /// # Examples
    /// ```
    /// # fn main() -> Result<(), xray_metrics::MetricsError> {
    /// use xray_metrics::BinnedAuc;
    /// assert_eq!(BinnedAuc::new(3, 100)?.finish().method, "binned(100)");
    /// let e = BinnedAuc::new(3, 1).unwrap_err();
    /// assert!(e.to_string().contains("at least 2 bins"), "{e}");
    /// assert!(BinnedAuc::new(3, 2_000_000).is_err()); // above MAX_BINS
    /// # Ok(())
    /// # }
    /// ```
    pub fn new(num_classes: usize, bins: usize) -> Result<Self> {
        crate::validate::check_num_classes(num_classes)?;
        if bins < 2 {
            return Err(MetricsError::InvalidConfig(format!(
                "binned AUC needs at least 2 bins, got {bins}"
            )));
        }
        crate::validate::check_max_bins("binned AUC bins", bins)?;
        Ok(Self {
            num_classes,
            bins,
            hist: vec![[0; 2]; num_classes * bins],
        })
    }

    /// Adds one image (same input rules as [`ExactAuc::add`]).
    ///
    /// # Errors
    /// As [`ExactAuc::add`]: [`MetricsError::LengthMismatch`] when `probs` is not
    /// `num_classes` planes of `labels.len()` values, [`MetricsError::LabelOutOfRange`] and
    /// [`MetricsError::InvalidProbability`] for the first bad label or probability; nothing
    /// is added then.
    ///
    /// # Examples
    /// ```
    /// # fn main() -> Result<(), xray_metrics::MetricsError> {
    /// use xray_metrics::{BinnedAuc, MetricsError};
    /// let mut acc = BinnedAuc::new(2, 10)?;
    /// acc.add(&[0, 1, 255], &[0.9, 0.2, 0.5, /* class 1 */ 0.1, 0.8, 0.5])?;
    /// let e = acc.add(&[0, 2], &[0.9, 0.2, 0.1, 0.8]).unwrap_err();
    /// assert!(matches!(e, MetricsError::LabelOutOfRange { pixel: 1, label: 2, .. }));
    /// let e = acc.add(&[0, 1], &[0.9, 1.5, 0.1, 0.8]).unwrap_err();
    /// assert!(matches!(e, MetricsError::InvalidProbability { pixel: 1, class: 0, .. }));
    /// // Only the first image counts; its ignored pixel is not scored.
    /// let class1 = &acc.finish().per_class[1];
    /// assert_eq!((class1.positives, class1.negatives), (1, 1));
    /// assert_eq!(class1.auc, Some(1.0));
    /// # Ok(())
    /// # }
    /// ```
    pub fn add(&mut self, labels: &[u8], probs: &[f32]) -> Result<()> {
        let c = self.num_classes;
        let n = check_planes(labels, probs, c)?;
        first_bad_label(labels, c)?;
        // Every plane before any is counted, as in `ExactAuc::add`.
        first_bad_probability(probs, n)?;
        self.add_checked(labels, probs, n);
        Ok(())
    }

    /// [`BinnedAuc::add`] after its checks, as [`ExactAuc::add_checked`].
    pub(crate) fn add_checked(&mut self, labels: &[u8], probs: &[f32], n: usize) {
        let c = self.num_classes;
        let b = self.bins;
        let scale = b as f32;
        for class in 0..c {
            let plane = &probs[class * n..(class + 1) * n];
            let h = &mut self.hist[class * b..(class + 1) * b];
            for (&l, &p) in labels.iter().zip(plane) {
                if l != IGNORE_LABEL {
                    // `p * B` is monotone in p, so bins are ordered like the scores.
                    let bin = ((p * scale) as usize).min(b - 1);
                    h[bin][(l as usize != class) as usize] += 1;
                }
            }
        }
    }

    /// Adds another accumulator with the same classes and bins.
    ///
    /// # Errors
    /// [`MetricsError::InvalidConfig`] when `other` has another class or bin count.
    ///
    /// # Examples
    /// ```
    /// # fn main() -> Result<(), xray_metrics::MetricsError> {
    /// use xray_metrics::BinnedAuc;
    /// let (mut a, mut b) = (BinnedAuc::new(2, 10)?, BinnedAuc::new(2, 10)?);
    /// a.add(&[0, 1], &[0.8, 0.3, 0.2, 0.7])?;
    /// b.add(&[1, 0], &[0.35, 0.95, 0.65, 0.05])?;
    /// a.merge(&b)?;
    /// let class1 = &a.finish().per_class[1];
    /// assert_eq!((class1.positives, class1.negatives), (2, 2));
    /// // Positives 0.7 and 0.65 share no bin with negatives 0.2 and 0.05: all pairs right.
    /// assert_eq!((class1.auc, class1.error_bound), (Some(1.0), 0.0));
    /// assert!(a.merge(&BinnedAuc::new(2, 20)?).is_err());
    /// # Ok(())
    /// # }
    /// ```
    pub fn merge(&mut self, other: &BinnedAuc) -> Result<()> {
        if other.num_classes != self.num_classes || other.bins != self.bins {
            return Err(MetricsError::InvalidConfig(
                "cannot merge BinnedAuc accumulators with different classes or bins".into(),
            ));
        }
        for (a, b) in self.hist.iter_mut().zip(&other.hist) {
            a[0] += b[0];
            a[1] += b[1];
        }
        Ok(())
    }

    /// Per-class AUC estimates with their error bounds.
    ///
    /// # Examples
    /// ```
    /// # fn main() -> Result<(), xray_metrics::MetricsError> {
    /// use xray_metrics::{roc_ovr, BinnedAuc, MicroAuc};
    /// let labels = [0u8, 1, 1, 0];
    /// let probs = [0.8f32, 0.1, 0.4, 0.05, /* class 1 */ 0.2, 0.9, 0.6, 0.95];
    /// let mut binned = BinnedAuc::new(2, 2)?; // bins [0, 0.5) and [0.5, 1]
    /// binned.add(&labels, &probs)?;
    /// let class1 = &binned.finish().per_class[1];
    /// // Class 1: positives 0.9 and 0.6, negatives 0.2 and 0.95. Exactly, 0.95 outranks both
    /// // positives: AUC 2/4. Binned, the two pairs sharing bin [0.5, 1] count ½ each: 3/4,
    /// // and the bound ½ · 2/4 covers the difference.
    /// assert_eq!((class1.auc, class1.error_bound), (Some(0.75), 0.25));
    /// assert_eq!(roc_ovr(&labels, &probs, 2, MicroAuc::Skip)?.per_class[1].auc, Some(0.5));
    /// # Ok(())
    /// # }
    /// ```
    pub fn finish(&self) -> AucResult {
        let b = self.bins;
        let per_class = (0..self.num_classes)
            .map(|class| {
                let h = &self.hist[class * b..(class + 1) * b];
                let pos: u64 = h.iter().map(|x| x[0]).sum();
                let neg: u64 = h.iter().map(|x| x[1]).sum();
                let (auc, curve) = roc_from_groups(h.iter().map(|x| (x[0], x[1])), pos, neg);
                let same_bin: f64 = h.iter().map(|x| x[0] as f64 * x[1] as f64).sum();
                let error_bound = if pos > 0 && neg > 0 {
                    0.5 * same_bin / (pos as f64 * neg as f64)
                } else {
                    0.0
                };
                ClassRoc {
                    positives: pos,
                    negatives: neg,
                    auc,
                    error_bound,
                    curve,
                }
            })
            .collect();
        AucResult {
            per_class,
            micro: None,
            method: format!("binned({b})"),
        }
    }
}

/// Exact one-vs-rest ROC AUC of class-major probabilities, like scikit-learn's
/// `roc_auc_score(y, p, multi_class="ovr", average=...)` (pixels labelled 255 are left out).
/// Classes run in parallel on the current rayon pool.
///
/// # Errors
/// As [`roc_ovr`], plus [`AucResult::average`]'s: [`MetricsError::AucUndefined`] when a class
/// has no positive or no negative pixel.
///
/// # Examples
/// ```
/// use xray_metrics::{roc_auc_ovr, Average};
/// let labels = [0u8, 1, 0, 1];
/// // class-major: plane 0 then plane 1
/// let probs = [0.9f32, 0.4, 0.6, 0.2, 0.1, 0.6, 0.4, 0.8];
/// let auc = roc_auc_ovr(&labels, &probs, 2, Average::Macro).unwrap();
/// assert_eq!(auc, 1.0);
/// ```
pub fn roc_auc_ovr(
    labels: &[u8],
    probs: &[f32],
    num_classes: usize,
    average: Average,
) -> Result<f64> {
    let micro = if average == Average::Micro {
        MicroAuc::Compute
    } else {
        MicroAuc::Skip
    };
    roc_ovr(labels, probs, num_classes, micro)?.average(average)
}

/// All per-class ROC curves and AUCs (exact), plus micro when asked.
///
/// # Errors
/// - [`MetricsError::InvalidConfig`] when `num_classes` is not in 2..=255;
/// - [`MetricsError::LengthMismatch`] when `probs` is not `num_classes` planes of
///   `labels.len()` values;
/// - [`MetricsError::LabelOutOfRange`] for a label that is neither a class nor 255;
/// - [`MetricsError::InvalidProbability`] for a probability that is NaN, infinite or outside
///   [0, 1] (an ignored pixel's included).
///
/// # Examples
/// ```
/// # fn main() -> Result<(), xray_metrics::MetricsError> {
/// use xray_metrics::{roc_ovr, MicroAuc, RocPoint};
/// let labels = [0u8, 0, 1, 1];
/// let probs = [0.9f32, 0.4, 0.6, 0.2, /* class 1 */ 0.1, 0.6, 0.4, 0.8];
/// let roc = roc_ovr(&labels, &probs, 2, MicroAuc::Compute)?;
/// // Class 1, thresholds 0.8, 0.6, 0.4, 0.1: one positive, then one negative, then
/// // the other positive, then the other negative.
/// let pt = |fpr, tpr| RocPoint { fpr, tpr };
/// let curve = [pt(0.0, 0.0), pt(0.0, 0.5), pt(0.5, 0.5), pt(0.5, 1.0), pt(1.0, 1.0)];
/// assert_eq!(roc.per_class[1].curve, curve);
/// assert_eq!(roc.per_class[1].auc, Some(0.75)); // the area under those steps
/// assert_eq!(roc.micro, Some(0.75)); // 12 of 16 pairs over both planes
/// # Ok(())
/// # }
/// ```
pub fn roc_ovr(
    labels: &[u8],
    probs: &[f32],
    num_classes: usize,
    micro: MicroAuc,
) -> Result<AucResult> {
    let n = check_planes(labels, probs, num_classes)?;
    first_bad_label(labels, num_classes)?;
    // Build each class's keys on its own rayon task.
    let keys: Vec<Result<Vec<u32>>> = (0..num_classes)
        .into_par_iter()
        .map(|class| {
            let plane = &probs[class * n..(class + 1) * n];
            let cl = class as u8;
            let mut keys = Vec::with_capacity(n);
            let mut hist = new_top_hist();
            let mut bad = false;
            for (&l, &p) in labels.iter().zip(plane) {
                // Checked before the key reaches the histogram: NaN, the infinities and
                // scores of 2 or more have keys of 2^31 or more, past its last bucket.
                let ok = (0.0..=1.0).contains(&p);
                bad |= !ok;
                if l != IGNORE_LABEL && ok {
                    let k = key(p, l == cl);
                    count_top_digit(&mut hist, k);
                    keys.push(k);
                }
            }
            if bad {
                let i = plane
                    .iter()
                    .position(|v| !(0.0..=1.0).contains(v))
                    .unwrap_or(0);
                return Err(MetricsError::InvalidProbability {
                    pixel: i,
                    class,
                    value: plane[i],
                });
            }
            let mut scratch = Vec::new();
            radix_sort_with_hist(&mut keys, &mut scratch, &hist);
            Ok(keys)
        })
        .collect();
    let mut positives = vec![0u64; num_classes];
    let mut scored = 0;
    for &l in labels {
        if l != IGNORE_LABEL {
            positives[l as usize] += 1;
            scored += 1;
        }
    }
    let acc = ExactAuc {
        keys: keys.into_iter().collect::<Result<_>>()?,
        positives,
        scored,
        sorted: true,
    };
    Ok(acc.finish(micro))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn xorshift(seed: u64) -> impl FnMut() -> u64 {
        let mut s = seed;
        move || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            s
        }
    }

    #[test]
    fn radix_sort_sorts_any_spread_of_scores() {
        let mut next = xorshift(7);
        // Wide spread, heavy ties, one crowded top bucket, tiny and empty inputs.
        let cases: Vec<Vec<u32>> = vec![
            (0..50_000)
                .map(|_| key((next() >> 40) as f32 / (1u64 << 24) as f32, next() & 1 == 1))
                .collect(),
            (0..20_000)
                .map(|_| key((next() % 7) as f32 / 6.0, next() & 1 == 1))
                .collect(),
            (0..30_000)
                .map(|_| key(0.999 + (next() % 1000) as f32 * 1e-6, next() & 1 == 1))
                .collect(),
            vec![key(0.5, true)],
            vec![],
        ];
        for mut keys in cases {
            let mut want = keys.clone();
            want.sort_unstable();
            radix_sort(&mut keys, &mut Vec::new());
            assert_eq!(keys, want);
        }
    }

    #[test]
    fn branch_free_scan_equals_the_group_scan() {
        let mut next = xorshift(11);
        for ties in [3u64, 50, 1 << 20] {
            let mut keys: Vec<u32> = (0..40_000)
                .map(|_| key((next() % ties) as f32 / ties as f32, next() % 3 < 1))
                .collect();
            keys.sort_unstable();
            let pos = keys.iter().filter(|&&k| k & 1 == 1).count() as u64;
            let neg = keys.len() as u64 - pos;
            let fast = roc_from_sorted_keys(&keys, pos, neg);
            let groups = Groups {
                it: keys.iter().copied().peekable(),
            };
            assert_eq!(
                fast,
                roc_from_groups(groups, pos, neg),
                "{ties} distinct scores"
            );
        }
    }
}
