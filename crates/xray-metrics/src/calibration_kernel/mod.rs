//! The hot loop of [`crate::calibration_bins`]: top-1, bin index and bin sums in two
//! passes over an L1-sized block of pixels.
//!
//! Pass one is branch-free: hand-written AVX2 intrinsics ([`avx2`]) when the CPU has them,
//! else a portable loop the compiler vectorises (the reference the intrinsics are tested
//! against, bit for bit). Per pixel it finds the top-1 class and confidence, checks the
//! probabilities, computes the bin as `⌊conf · n_bins⌋`, and packs "one pixel, hit or not,
//! its confidence" into a single `u64` (confidence in 2⁻²⁸ fixed point in bits 0..38, hit
//! in 38..50, count in 50..62). Pass two is the only scatter: one integer add per pixel
//! into four interleaved lanes per bin, its bins read eight to a load. So a pixel costs one
//! read-modify-write instead of three, and integer sums do not depend on the order or the
//! number of threads.
//!
//! `⌊conf · n⌋` is the torchmetrics bin except within a few ulps of a boundary (the
//! `f32` boundaries of `torch.linspace` are not exactly `i / n`); pixels that close to a
//! boundary are flagged in pass one and re-binned exactly against the boundaries.
//!
//! Fixed point: each confidence is truncated to a multiple of 2⁻²⁸. That is exact for
//! confidences ≥ 2⁻⁵ (`conf · 2²⁸` is then an integer), so always for the top-1 of 2–4
//! classes summing to 1; otherwise the error is below 2⁻²⁸ ≈ 3.7e-9 per pixel.

use crate::calibration::{bucket_fast, top1_pixel, BLOCK};
use crate::validate::IGNORE_LABEL;

#[cfg(target_arch = "x86_64")]
mod avx2;

/// Bits of the fixed-point confidence fraction.
pub(crate) const CONF_FRAC_BITS: u32 = 28;
const CONF_SCALE: f32 = (1u32 << CONF_FRAC_BITS) as f32;
/// Lanes per bin in the scatter (breaks the add→add chain of neighbouring pixels).
const LANES: usize = 4;
/// Counters per lane: one per possible `u8` bin, so that no bin byte can index out of a lane.
const LANE_STRIDE: usize = 256;
/// High half of the key of one pixel: count 1 at bit 50 of the `u64`.
const PIXEL_KEY_HIGH: u32 = 1 << (COUNT_SHIFT - 32);
/// High half of the key of one correctly predicted pixel: also hit 1 at bit 38.
const HIT_KEY_HIGH: u32 = PIXEL_KEY_HIGH | 1 << (HIT_SHIFT - 32);
/// Key bit of the hit count (the confidence sum takes bits 0..38: `LANE_ADDS · 2²⁸ < 2³⁸`).
const HIT_SHIFT: u32 = 38;
/// Key bit of the pixel count.
const COUNT_SHIFT: u32 = 50;
/// Adds into one lane counter before it is emptied.
const LANE_ADDS: usize = BLOCK / LANES;
/// Pixels per alternation of pass one and the scatter (the lane counters are emptied every
/// `BLOCK` pixels).
const SUB: usize = 512;
/// Most bins the kernel takes (bin indices and the ignore slot must fit a `u8`).
pub(crate) const MAX_FAST_BINS: usize = 250;
const _: () = assert!(
    LANE_ADDS < (1 << (COUNT_SHIFT - HIT_SHIFT))
        && (LANE_ADDS as u64) << CONF_FRAC_BITS < 1 << HIT_SHIFT
        && COUNT_SHIFT + 12 <= 64,
    "a lane's counts and confidence sum must fit their fields"
);

/// Per-bin totals of a run of pixels, in integers.
#[derive(Clone, Debug)]
pub(crate) struct BinTotals {
    /// Pixels per bin (`n_bins + 1` bins; the last is the `[1, 1]` bin).
    pub count: Vec<u64>,
    /// Correct top-1 predictions per bin.
    pub hits: Vec<u64>,
    /// Sum of confidences per bin, in units of 2⁻²⁸.
    pub conf_fixed: Vec<u64>,
}

/// Why a run of pixels was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refused {
    /// A probability is NaN or outside [0, 1], or a pixel's probabilities do not sum to 1.
    Probabilities,
    /// A label is ≥ the class count and not 255.
    Labels,
}

const FLAG_BAD_PROB: u32 = 1;
const FLAG_BAD_LABEL: u32 = 2;
const FLAG_NEAR: u32 = 4;
/// Bin written by pass one for a pixel too close to a boundary to trust `⌊conf · n⌋`
/// (above every real bin and the ignore slot, since bins ≤ [`MAX_FAST_BINS`]).
const NEAR_SLOT: u8 = 255;

/// Bins pixels `start..start + labels.len()` of class-major `probs` (`n` pixels per plane)
/// into `n_bins` torchmetrics-compatible equal-width bins, checking labels and
/// probabilities on the way. `padded` is the boundaries followed by +∞.
pub(crate) fn bin_pixels(
    labels: &[u8],
    probs: &[f32],
    n: usize,
    num_classes: usize,
    start: usize,
    padded: &[f32],
    tolerance: f32,
) -> Result<BinTotals, Refused> {
    let n_bins = padded.len() - 2;
    debug_assert!(supports(num_classes, n_bins));
    let slots = n_bins + 1;
    let mut totals = BinTotals {
        count: vec![0; slots],
        hits: vec![0; slots],
        conf_fixed: vec![0; slots],
    };
    // Lane-major (`lane · LANE_STRIDE + bin`): each lane's address is `base + bin · 8`, one
    // addressing mode with no shift. Slot `slots` collects ignored pixels and is dropped;
    // 256 bins per lane so that no `u8` bin can index out of it.
    let mut hist = [0u64; LANE_STRIDE * LANES];
    let mut bin = [0u8; SUB];
    let mut packed = [0u32; SUB];
    let mut keys = [0u64; SUB];
    let mut off = 0;
    while off < labels.len() {
        let m = BLOCK.min(labels.len() - off);
        // Small sub-blocks alternate the streaming pass with the scatter finely, so that the
        // loads of the next sub-block overlap the scatter of this one.
        let mut so = 0;
        while so < m {
            let sm = SUB.min(m - so);
            let at = off + so;
            let lab = &labels[at..at + sm];
            let plane = |c: usize| &probs[c * n + start + at..c * n + start + at + sm];
            let args = PassArgs {
                labels: lab,
                num_classes: num_classes as u32,
                tolerance,
                n_bins,
                bin: &mut bin[..sm],
                packed: &mut packed[..sm],
            };
            let keys = &mut keys[..sm];
            let flags = match num_classes {
                2 => pass_and_scatter([plane(0), plane(1)], args, keys, &mut hist),
                3 => pass_and_scatter([plane(0), plane(1), plane(2)], args, keys, &mut hist),
                _ => pass_and_scatter(
                    [plane(0), plane(1), plane(2), plane(3)],
                    args,
                    keys,
                    &mut hist,
                ),
            };
            if flags & FLAG_BAD_LABEL != 0 {
                return Err(Refused::Labels);
            }
            if flags & FLAG_BAD_PROB != 0 {
                return Err(Refused::Probabilities);
            }
            if flags & FLAG_NEAR != 0 {
                // Rare (a pixel within a few ulps of a boundary, scattered into NEAR_SLOT):
                // re-bin it exactly against the boundaries, in its own lane.
                for (j, &g) in bin[..sm].iter().enumerate() {
                    if g == NEAR_SLOT {
                        let x = (0..num_classes).map(|c| plane(c)[j]).fold(0.0f32, f32::max);
                        let b = bucket_fast(x, n_bins as f32, padded);
                        hist[(j % LANES) * LANE_STRIDE + b] += keys[j];
                    }
                }
                for lane in hist.chunks_exact_mut(LANE_STRIDE) {
                    lane[usize::from(NEAR_SLOT)] = 0;
                }
            }
            so += sm;
        }
        for lane in hist.chunks_exact_mut(LANE_STRIDE) {
            for (b, v) in lane[..slots].iter_mut().enumerate() {
                totals.count[b] += *v >> COUNT_SHIFT;
                totals.hits[b] += (*v >> HIT_SHIFT) & ((1 << (COUNT_SHIFT - HIT_SHIFT)) - 1);
                totals.conf_fixed[b] += *v & ((1 << HIT_SHIFT) - 1);
                *v = 0;
            }
            lane[slots] = 0;
        }
        off += m;
    }
    Ok(totals)
}

/// `packed` (`q << 1 | hit`) → the scatter key: `q` in bits 0..38, the hit at
/// [`HIT_SHIFT`], count 1 at [`COUNT_SHIFT`]. A separate loop so that pass one stays 32 bits
/// wide.
fn widen_keys(packed: &[u32], keys: &mut [u64]) {
    for (k, &p) in keys.iter_mut().zip(packed) {
        *k = u64::from(p >> 1) | (u64::from(p & 1) << HIT_SHIFT) | (1 << COUNT_SHIFT);
    }
}

/// How close to an integer `conf · n_bins` must be for the pixel to be re-binned exactly:
/// |⌊x·n⌋ − torch bin| can only be nonzero within n·2e-7 of a boundary (rounding of x·n
/// plus that of torch's boundaries); this margin is four times as wide.
fn near_margin(n_bins: usize) -> f32 {
    8.0 * n_bins as f32 * f32::EPSILON
}

/// `t = conf · n` is capped here before the nearest-integer test. Below `n − ½` only
/// boundaries `1..n − 1` are near; above it only the top boundary `n`, which is exactly 1.0
/// in torch's boundaries and exactly `n` in `t` (every `x < 1` has `fl(x · n) < n`), so
/// pixels there need no re-binning, and `x = 1` (the `[1, 1]` bin) is not flagged.
fn near_cap(n_bins: usize) -> f32 {
    n_bins as f32 - 0.5
}

/// Adding then subtracting 1.5 · 2²³ rounds an `f32` in [0, 2²²) to the nearest integer,
/// ties to even (what `vroundps` does), in any vector width.
const ROUND_MAGIC: f32 = 12_582_912.0;

/// Whether [`bin_pixels`] handles this class and bin count (others take the general path).
pub(crate) fn supports(num_classes: usize, n_bins: usize) -> bool {
    (2..=4).contains(&num_classes) && n_bins <= MAX_FAST_BINS
}

struct PassArgs<'a> {
    labels: &'a [u8],
    num_classes: u32,
    tolerance: f32,
    n_bins: usize,
    bin: &'a mut [u8],
    packed: &'a mut [u32],
}

impl PassArgs<'_> {
    /// The same pass over pixels `start..` only (what a vector loop leaves as its tail).
    fn from(&mut self, start: usize) -> PassArgs<'_> {
        let m = self.labels.len();
        PassArgs {
            labels: &self.labels[start..],
            num_classes: self.num_classes,
            tolerance: self.tolerance,
            n_bins: self.n_bins,
            bin: &mut self.bin[start..m],
            packed: &mut self.packed[start..m],
        }
    }
}

/// The lane counters of one block: lane-major (`lane · LANE_STRIDE + bin`).
type Hist = [u64; LANE_STRIDE * LANES];

/// Adds the keys of eight pixels into their bins, pixel `i` into lane `i % LANES`; the
/// bins come from one load (the scatter is bound by memory operations: three per pixel
/// this way).
#[inline(always)]
fn scatter8(hist: &mut Hist, bins: &[u8; 8], keys: &[u64; 8]) {
    let mut word = u64::from_le_bytes(*bins);
    for (i, &key) in keys.iter().enumerate() {
        hist[(i % LANES) * LANE_STRIDE + (word & 0xFF) as usize] += key;
        word >>= 8;
    }
}

/// [`scatter8`] over a run of pixels whose first one is in lane 0.
fn scatter(hist: &mut Hist, bins: &[u8], keys: &[u64]) {
    let (bins8, keys8) = (bins.chunks_exact(8), keys.chunks_exact(8));
    let (bin_tail, key_tail) = (bins8.remainder(), keys8.remainder());
    for (g, k) in bins8.zip(keys8) {
        if let (Ok(g), Ok(k)) = (g.try_into(), k.try_into()) {
            scatter8(hist, g, k);
        }
    }
    for (i, (&g, &k)) in bin_tail.iter().zip(key_tail).enumerate() {
        hist[(i % LANES) * LANE_STRIDE + usize::from(g)] += k;
    }
}

/// Pass one, its keys scattered into `hist` (pixel `j` into lane `j % LANES`; pixels near a
/// boundary into [`NEAR_SLOT`], ignored ones into slot `n_bins + 1`). Dispatched to the AVX2
/// intrinsics, which scatter as they go, when the CPU has them; the portable body,
/// [`widen_keys`] and [`scatter`] otherwise. `bin` and `keys` are left filled either way.
/// Returns `FLAG_*` bits.
fn pass_and_scatter<const K: usize>(
    planes: [&[f32]; K],
    args: PassArgs<'_>,
    keys: &mut [u64],
    hist: &mut Hist,
) -> u32 {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            // SAFETY: the CPU supports the features the intrinsics need.
            return unsafe { avx2::pass_one_scatter(planes, args, keys, hist) };
        }
    }
    portable_pass_and_scatter(planes, args, keys, hist)
}

/// [`pass_one_portable`] followed by [`scatter`].
fn portable_pass_and_scatter<const K: usize>(
    planes: [&[f32]; K],
    mut args: PassArgs<'_>,
    keys: &mut [u64],
    hist: &mut Hist,
) -> u32 {
    let m = args.labels.len();
    let flags = pass_one_portable(planes, args.from(0), keys);
    scatter(hist, &args.bin[..m], &keys[..m]);
    flags
}

/// The portable pass one: the vectorised-by-the-compiler body, then [`widen_keys`].
fn pass_one_portable<const K: usize>(
    planes: [&[f32]; K],
    mut args: PassArgs<'_>,
    keys: &mut [u64],
) -> u32 {
    let flags = pass_one_body(planes, args.from(0));
    let m = args.labels.len();
    widen_keys(&args.packed[..m], &mut keys[..m]);
    flags
}

/// Per pixel: top-1 class and confidence, checks, `⌊conf · n⌋`, and `packed` =
/// `(conf in 2⁻²⁸ fixed point, truncated) << 1 | hit`. All lanes 32 bits wide so that it vectorises
/// eight pixels at a time.
#[inline(always)]
fn pass_one_body<const K: usize>(planes: [&[f32]; K], args: PassArgs<'_>) -> u32 {
    let PassArgs {
        labels,
        num_classes,
        tolerance,
        n_bins,
        bin,
        packed,
    } = args;
    let m = labels.len();
    let (bin, packed) = (&mut bin[..m], &mut packed[..m]);
    let planes = planes.map(|p| &p[..m]);
    let scale = n_bins as f32;
    let eps = near_margin(n_bins);
    let cap = near_cap(n_bins);
    let ignore_slot = (n_bins + 1) as u32;
    let ignore = u32::from(IGNORE_LABEL);
    let (mut bad, mut bad_label, mut any_near) = (false, false, false);
    for j in 0..m {
        let (best, k, invalid) = top1_pixel(&planes, j, tolerance);
        bad |= invalid;
        // Clamped (NaN becomes 0) so that the unchecked conversions below are defined;
        // a pixel outside [0, 1] already failed the check above and its block is refused.
        // Not `clamp`: it keeps NaN, `max` does not.
        #[allow(clippy::manual_clamp)]
        let x = best.max(0.0).min(1.0);
        let t = x * scale;
        // SAFETY: t is finite and in [0, n_bins], x·2^28 finite and at most 2^28.
        let g = unsafe { t.to_int_unchecked::<i32>() } as u32;
        let q = unsafe { (x * CONF_SCALE).to_int_unchecked::<i32>() } as u32;
        let capped = t.min(cap);
        let nearest = (capped + ROUND_MAGIC) - ROUND_MAGIC;
        let near = (capped - nearest).abs() < eps;
        any_near |= near;
        let l = u32::from(labels[j]);
        bad_label |= (l >= num_classes) & (l != ignore);
        packed[j] = (q << 1) | u32::from(k == l);
        let slot = if near { u32::from(NEAR_SLOT) } else { g };
        bin[j] = if l == ignore { ignore_slot } else { slot } as u8;
    }
    (u32::from(bad) * FLAG_BAD_PROB)
        | (u32::from(bad_label) * FLAG_BAD_LABEL)
        | (u32::from(any_near) * FLAG_NEAR)
}

#[cfg(test)]
mod tests {
    use crate::calibration::{calibration_bins, ReliabilityBins};

    /// Class-major probabilities whose top-1 confidences sit on, and a few ulps either
    /// side of, every bin boundary, plus ordinary random pixels.
    fn planted(num_classes: usize, n_bins: usize, n: usize) -> (Vec<u8>, Vec<f32>) {
        let bounds = crate::calibration::torch_bin_boundaries(n_bins).unwrap();
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let mut labels = Vec::with_capacity(n);
        let mut probs = vec![0f32; num_classes * n];
        for i in 0..n {
            let r = next();
            // Every other pixel takes a planted confidence near a boundary.
            let conf = if i % 2 == 0 {
                let b = bounds[(r as usize >> 8) % bounds.len()];
                let ulps = ((r >> 40) % 7) as i32 - 3;
                f32::from_bits((b.to_bits() as i32 + ulps).max(0) as u32).min(1.0)
            } else {
                (r >> 40) as f32 / (1u64 << 24) as f32
            };
            let conf = conf.max(1.0 / num_classes as f32);
            let top = (r % num_classes as u64) as usize;
            let rest = (1.0 - conf) / (num_classes - 1) as f32;
            for c in 0..num_classes {
                probs[c * n + i] = if c == top { conf } else { rest };
            }
            labels.push(match (r >> 20) % 5 {
                0 => crate::validate::IGNORE_LABEL,
                _ => ((r >> 24) % num_classes as u64) as u8,
            });
        }
        (labels, probs)
    }

    #[test]
    fn fast_bins_equal_the_reference_bins() {
        for num_classes in 2..=4 {
            for n_bins in [1, 2, 10, 15, 100, 250] {
                let n = 9_000;
                let (labels, probs) = planted(num_classes, n_bins, n);
                assert!(super::supports(num_classes, n_bins));
                let fast = calibration_bins(&labels, &probs, num_classes, n_bins).unwrap();
                let mut reference = ReliabilityBins::new(n_bins).unwrap();
                for (i, &l) in labels.iter().enumerate() {
                    if l == crate::validate::IGNORE_LABEL {
                        continue;
                    }
                    let (mut best, mut k) = (probs[i], 0);
                    for c in 1..num_classes {
                        if probs[c * n + i] > best {
                            (best, k) = (probs[c * n + i], c);
                        }
                    }
                    reference.push(best, k == l as usize);
                }
                let (f, r) = (fast.reliability(), reference.reliability());
                for (bf, br) in f.bins.iter().zip(&r.bins) {
                    let what = format!("{num_classes} classes, {n_bins} bins, bin {}", bf.lower);
                    assert_eq!(bf.count, br.count, "{what}");
                    assert_eq!(bf.accuracy, br.accuracy, "{what}");
                    // Exact: the fixed point holds every top-1 confidence (≥ 1/4) exactly,
                    // and the reference's f64 sums of these f32 values are exact too.
                    assert_eq!(bf.confidence, br.confidence, "{what}");
                }
            }
        }
    }

    #[cfg(target_arch = "x86_64")]
    fn to_array<'a, const K: usize>(planes: &[&'a [f32]]) -> [&'a [f32]; K] {
        std::array::from_fn(|c| planes[c])
    }

    /// The portable pass and scatter, or the AVX2 one.
    #[cfg(target_arch = "x86_64")]
    fn one_path<const K: usize>(
        planes: [&[f32]; K],
        args: super::PassArgs<'_>,
        keys: &mut [u64],
        hist: &mut super::Hist,
        vector: bool,
    ) -> u32 {
        if vector {
            // SAFETY: the caller checked for AVX2 and FMA.
            unsafe { super::avx2::pass_one_scatter(planes, args, keys, hist) }
        } else {
            super::portable_pass_and_scatter(planes, args, keys, hist)
        }
    }

    /// The AVX2 intrinsics and the portable pass give the same bins, keys, scattered
    /// counters and flags, on
    /// boundary-near confidences, ties, -0.0, exact 0 and 1, ignored pixels, lengths that are
    /// not a multiple of eight, and on each kind of bad input.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn avx2_pass_equals_the_portable_pass() {
        if !(std::arch::is_x86_feature_detected!("avx2")
            && std::arch::is_x86_feature_detected!("fma"))
        {
            eprintln!("skipped: this CPU has no AVX2 + FMA");
            return;
        }
        // With -0.0 the intrinsics hand the run to the portable pass; without, they decide.
        for (num_classes, negative_zero) in (2..=4).flat_map(|k| [(k, false), (k, true)]) {
            for n_bins in [1, 7, 15, 100, 250] {
                let n = 509;
                let (labels, mut probs) = planted(num_classes, n_bins, n);
                // Ties, exact 0/1 confidences (and signed zeros) at fixed places.
                for i in (0..n).step_by(11) {
                    let tie = 1.0 / num_classes as f32;
                    for c in 0..num_classes {
                        probs[c * n + i] = tie;
                    }
                }
                for i in (5..n).step_by(13) {
                    for c in 0..num_classes {
                        probs[c * n + i] = if c == i % num_classes { 1.0 } else { 0.0 };
                    }
                    if negative_zero {
                        probs[((i + 1) % num_classes) * n + i] = -0.0;
                    }
                }
                let run = |labels: &[u8], probs: &[f32], vector: bool| {
                    let planes: Vec<&[f32]> =
                        (0..num_classes).map(|c| &probs[c * n..][..n]).collect();
                    let (mut bin, mut packed, mut keys) =
                        (vec![0u8; n], vec![0u32; n], vec![0u64; n]);
                    let mut hist = [0u64; super::LANE_STRIDE * super::LANES];
                    let args = super::PassArgs {
                        labels,
                        num_classes: num_classes as u32,
                        tolerance: 1e-4,
                        n_bins,
                        bin: &mut bin,
                        packed: &mut packed,
                    };
                    let flags = match num_classes {
                        2 => one_path(to_array::<2>(&planes), args, &mut keys, &mut hist, vector),
                        3 => one_path(to_array::<3>(&planes), args, &mut keys, &mut hist, vector),
                        _ => one_path(to_array::<4>(&planes), args, &mut keys, &mut hist, vector),
                    };
                    (flags, bin, keys, hist)
                };
                let what = format!("{num_classes} classes, {n_bins} bins, -0.0 {negative_zero}");
                let (portable, vector) = (run(&labels, &probs, false), run(&labels, &probs, true));
                assert_eq!(portable.0, vector.0, "flags, {what}");
                assert_eq!(
                    portable.0 & (super::FLAG_BAD_PROB | super::FLAG_BAD_LABEL),
                    0,
                    "{what}"
                );
                assert_eq!(portable.1, vector.1, "bins, {what}");
                assert_eq!(portable.2, vector.2, "keys, {what}");
                assert_eq!(portable.3, vector.3, "scattered lane counters, {what}");

                // Each kind of bad input, in the vector part and in the tail.
                for at in [3, n - 2] {
                    let mut bad_label = labels.clone();
                    bad_label[at] = num_classes as u8;
                    let mut cases = vec![(bad_label, probs.clone(), super::FLAG_BAD_LABEL)];
                    for v in [f32::NAN, -0.25, 1.5, f32::INFINITY] {
                        let mut p = probs.clone();
                        p[(at % num_classes) * n + at] = v;
                        cases.push((labels.clone(), p, super::FLAG_BAD_PROB));
                    }
                    let mut off_sum = probs.clone();
                    for c in 0..num_classes {
                        off_sum[c * n + at] = 0.9 / num_classes as f32;
                    }
                    cases.push((labels.clone(), off_sum, super::FLAG_BAD_PROB));
                    for (l, p, flag) in cases {
                        let (a, b) = (run(&l, &p, false).0, run(&l, &p, true).0);
                        assert_ne!(a & flag, 0, "{what}, pixel {at}, portable");
                        assert_ne!(b & flag, 0, "{what}, pixel {at}, avx2");
                    }
                }
            }
        }
    }
}
