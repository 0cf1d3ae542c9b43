//! One-vs-rest ROC curves and AUC: exact (ties as scikit-learn) and binned (bounded memory).
//!
//! **Exact AUC** keeps, per class, one `u32` per scored pixel: the score's `f32` bit pattern
//! shifted left by one with the "is this class" flag in the low bit. Non-negative floats
//! order like their bit patterns, so a 3-pass LSD radix sort (11 + 11 + 9 bits) sorts the
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
use crate::validate::{check_planes, first_bad_label, IGNORE};

/// Sort key of a score in [0, 1] and its positive flag.
#[inline(always)]
pub(crate) fn key(score: f32, positive: bool) -> u32 {
    // `+ 0.0` turns -0.0 into +0.0 so both sort as zero.
    ((score + 0.0).to_bits() << 1) | positive as u32
}

/// Digit histograms of the 3-pass radix sort (11 + 11 + 9 bits).
pub(crate) type RadixHist = [[u32; 1 << RADIX_BITS]; 3];
const RADIX_BITS: usize = 11;
const RADIX_MASK: u32 = (1 << RADIX_BITS) - 1;

#[inline(always)]
fn count_digits(hist: &mut RadixHist, k: u32) {
    hist[0][(k & RADIX_MASK) as usize] += 1;
    hist[1][((k >> RADIX_BITS) & RADIX_MASK) as usize] += 1;
    hist[2][((k >> (2 * RADIX_BITS)) & RADIX_MASK) as usize] += 1;
}

/// LSD radix sort of keys below 2^31 (scores in [0, 1]); `scratch` is reused.
pub(crate) fn radix_sort(keys: &mut Vec<u32>, scratch: &mut Vec<u32>) {
    if keys.len() > u32::MAX as usize {
        keys.sort_unstable();
        return;
    }
    let mut hist: Box<RadixHist> = Box::new([[0; 1 << RADIX_BITS]; 3]);
    for &k in keys.iter() {
        count_digits(&mut hist, k);
    }
    radix_sort_with_hist(keys, scratch, &mut hist);
}

/// Radix sort with the digit histograms already counted (while the keys were built).
/// Counts are `u32`: callers sort at most `u32::MAX` keys per call.
pub(crate) fn radix_sort_with_hist(
    keys: &mut Vec<u32>,
    scratch: &mut Vec<u32>,
    hist: &mut RadixHist,
) {
    let n = keys.len();
    if n < 2 {
        return;
    }
    scratch.clear();
    scratch.resize(n, 0);
    for (pass, h) in hist.iter_mut().enumerate() {
        // A digit shared by every key does not reorder anything: skip the pass.
        if h.contains(&(n as u32)) {
            continue;
        }
        let mut sum = 0u32;
        for c in h.iter_mut() {
            let v = *c;
            *c = sum;
            sum += v;
        }
        let shift = pass * RADIX_BITS;
        for &k in keys.iter() {
            let d = ((k >> shift) & RADIX_MASK) as usize;
            scratch[h[d] as usize] = k;
            h[d] += 1;
        }
        std::mem::swap(keys, scratch);
    }
}

/// One point of a ROC curve.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct RocPoint {
    /// False-positive rate.
    pub fpr: f64,
    /// True-positive rate.
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
    if kept.last() != Some(&(neg_below, pos_below)) {
        kept.push((neg_below, pos_below));
    }
    let (pf, nf) = (positives.max(1) as f64, negatives.max(1) as f64);
    // Below-threshold counts → rates of the pixels at or above the threshold.
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

/// Groups of a sorted key slice: `(pos_g, neg_g)` per distinct score.
struct SliceGroups<'a> {
    keys: &'a [u32],
    i: usize,
}

impl Iterator for SliceGroups<'_> {
    type Item = (u64, u64);
    #[inline]
    fn next(&mut self) -> Option<(u64, u64)> {
        let keys = self.keys;
        let start = self.i;
        let first = *keys.get(start)?;
        let v = first >> 1;
        let mut j = start + 1;
        let mut pos = (first & 1) as u64;
        while j < keys.len() && keys[j] >> 1 == v {
            pos += (keys[j] & 1) as u64;
            j += 1;
        }
        self.i = j;
        Some((pos, (j - start) as u64 - pos))
    }
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
    pub fn add(&mut self, labels: &[u8], probs: &[f32]) -> Result<()> {
        let c = self.keys.len();
        let n = check_planes(labels, probs, c)?;
        first_bad_label(labels, c)?;
        for (class, keys) in self.keys.iter_mut().enumerate() {
            let plane = &probs[class * n..(class + 1) * n];
            if let Some(i) = plane.iter().position(|v| !(0.0..=1.0).contains(v)) {
                return Err(MetricsError::InvalidProbability {
                    pixel: i,
                    class,
                    value: plane[i],
                });
            }
            keys.reserve(n);
            let cl = class as u8;
            keys.extend(
                labels
                    .iter()
                    .zip(plane)
                    .filter(|(&l, _)| l != IGNORE)
                    .map(|(&l, &p)| key(p, l == cl)),
            );
        }
        let mut scored = 0u64;
        for &l in labels {
            if l != IGNORE {
                self.positives[l as usize] += 1;
                scored += 1;
            }
        }
        self.scored += scored;
        self.sorted = false;
        Ok(())
    }

    /// Adds another accumulator's pixels.
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
    /// plus the micro average when `micro` is set (a merge over all classes' keys).
    pub fn finish(mut self, micro: bool) -> AucResult {
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
                let (auc, curve) = roc_from_groups(SliceGroups { keys, i: 0 }, pos, neg);
                ClassRoc {
                    positives: pos,
                    negatives: neg,
                    auc,
                    error_bound: 0.0,
                    curve,
                }
            })
            .collect();
        let micro = if micro {
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
    /// `bins` equal-width bins on [0, 1] (at least 2).
    pub fn new(num_classes: usize, bins: usize) -> Result<Self> {
        crate::validate::check_num_classes(num_classes)?;
        if bins < 2 {
            return Err(MetricsError::InvalidConfig(format!(
                "binned AUC needs at least 2 bins, got {bins}"
            )));
        }
        Ok(Self {
            num_classes,
            bins,
            hist: vec![[0; 2]; num_classes * bins],
        })
    }

    /// Adds one image (same input rules as [`ExactAuc::add`]).
    pub fn add(&mut self, labels: &[u8], probs: &[f32]) -> Result<()> {
        let c = self.num_classes;
        let n = check_planes(labels, probs, c)?;
        first_bad_label(labels, c)?;
        let b = self.bins;
        let scale = b as f32;
        for class in 0..c {
            let plane = &probs[class * n..(class + 1) * n];
            if let Some(i) = plane.iter().position(|v| !(0.0..=1.0).contains(v)) {
                return Err(MetricsError::InvalidProbability {
                    pixel: i,
                    class,
                    value: plane[i],
                });
            }
            let h = &mut self.hist[class * b..(class + 1) * b];
            for (&l, &p) in labels.iter().zip(plane) {
                if l != IGNORE {
                    // `p * B` is monotone in p, so bins are ordered like the scores.
                    let bin = ((p * scale) as usize).min(b - 1);
                    h[bin][(l as usize != class) as usize] += 1;
                }
            }
        }
        Ok(())
    }

    /// Adds another accumulator with the same classes and bins.
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
    roc_ovr(labels, probs, num_classes, average == Average::Micro)?.average(average)
}

/// All per-class ROC curves and AUCs (exact), plus micro when asked.
pub fn roc_ovr(labels: &[u8], probs: &[f32], num_classes: usize, micro: bool) -> Result<AucResult> {
    let n = check_planes(labels, probs, num_classes)?;
    first_bad_label(labels, num_classes)?;
    // Build each class's keys on its own rayon task.
    let keys: Vec<Result<Vec<u32>>> = (0..num_classes)
        .into_par_iter()
        .map(|class| {
            let plane = &probs[class * n..(class + 1) * n];
            let cl = class as u8;
            let mut keys = Vec::with_capacity(n);
            let mut hist: Box<RadixHist> = Box::new([[0; 1 << RADIX_BITS]; 3]);
            let mut bad = false;
            for (&l, &p) in labels.iter().zip(plane) {
                bad |= !(0.0..=1.0).contains(&p);
                if l != IGNORE {
                    let k = key(p, l == cl);
                    count_digits(&mut hist, k);
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
            if keys.len() > u32::MAX as usize {
                radix_sort(&mut keys, &mut scratch);
            } else {
                radix_sort_with_hist(&mut keys, &mut scratch, &mut hist);
            }
            Ok(keys)
        })
        .collect();
    let mut positives = vec![0u64; num_classes];
    let mut scored = 0;
    for &l in labels {
        if l != IGNORE {
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
