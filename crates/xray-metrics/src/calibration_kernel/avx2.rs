//! Pass one in AVX2 intrinsics, eight pixels a step, writing the scatter keys directly and
//! scattering them a few steps later in the same loop.
//!
//! The compiler's vectorisation of [`super::pass_one_body`] spends most of its time turning
//! per-pixel booleans into bytes and OR-ing them; here every check is folded into a running
//! vector minimum or maximum that is tested once per call, and the 64-bit keys are two
//! 32-bit halves interleaved. The loop is bound by the vector ports, so it is written for
//! the fewest operations per pixel:
//! - the probability range check is one unsigned maximum of the raw bits (`-0.0`, whose
//!   bits look negative, sends the call to the portable pass, which accepts it);
//! - the sum check keeps the smallest and the largest sum (`fl(s − 1)` is monotonic in `s`,
//!   so `max |fl(s − 1)|` is decided by the two extremes exactly as pixel by pixel);
//! - the confidence's fixed point is the exact product `conf · 2²⁸`, the low half of the key.
//!
//! Pass one is bound by the vector ports and the scatter by memory operations, so they are
//! interleaved: each step scatters the pixels pass one made [`LAG`] pixels earlier (read back
//! from L1, long enough after their stores), and the two streams overlap in the core.
//!
//! Results are bit-identical to the portable body followed by [`super::widen_keys`] (a unit
//! test compares them).

use std::arch::x86_64::*;

use super::{
    Hist, PassArgs, CONF_SCALE, FLAG_BAD_LABEL, FLAG_BAD_PROB, FLAG_NEAR, HIT_KEY_HIGH, NEAR_SLOT,
    PIXEL_KEY_HIGH,
};

/// Pixels per step.
const STEP: usize = 8;
/// How many pixels the scatter trails pass one by (a multiple of [`STEP`]).
const LAG: usize = 4 * STEP;

/// [`super::pass_one_body`] + [`super::widen_keys`] + [`super::scatter`] for `K` classes,
/// writing `keys` (`keys.len() == args.labels.len()`) and `args.bin`, and adding the keys
/// into `hist`. Returns `FLAG_*` bits.
///
/// # Safety
/// The CPU must support AVX2 and FMA.
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn pass_one_scatter<const K: usize>(
    planes: [&[f32]; K],
    mut args: PassArgs<'_>,
    keys: &mut [u64],
    hist: &mut Hist,
) -> u32 {
    let (labels, num_classes, tolerance, n_bins) =
        (args.labels, args.num_classes, args.tolerance, args.n_bins);
    let m = labels.len();
    assert!(
        K >= 1
            && planes.iter().all(|p| p.len() >= m)
            && args.bin.len() >= m
            && args.packed.len() >= m
            && keys.len() >= m
    );
    let main = m - m % STEP;

    let scale = _mm256_set1_ps(n_bins as f32);
    // Same margin as the portable body.
    let eps = _mm256_set1_ps(super::near_margin(n_bins));
    let cap = _mm256_set1_ps(super::near_cap(n_bins));
    let sign = _mm256_set1_ps(-0.0);
    let conf_scale = _mm256_set1_ps(CONF_SCALE);
    let ignore = _mm256_set1_epi32(i32::from(crate::validate::IGNORE_LABEL));
    let ignore_slot = _mm256_set1_epi32(n_bins as i32 + 1);
    let near_slot = _mm256_set1_epi32(i32::from(NEAR_SLOT));
    let (miss_high, hit_high) = (
        _mm256_set1_epi32(PIXEL_KEY_HIGH as i32),
        _mm256_set1_epi32(HIT_KEY_HIGH as i32),
    );
    // Byte 0 of each 32-bit lane to the lane's first four bytes, then lanes 0 and 4 together.
    let low_bytes = _mm256_setr_epi8(
        0, 4, 8, 12, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, //
        0, 4, 8, 12, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
    );
    let gather_lanes = _mm256_setr_epi32(0, 4, 1, 1, 1, 1, 1, 1);

    // Running checks: the unsigned maximum of every probability's bits (anything negative,
    // NaN or above 1.0 has bits above 1.0's), the extreme sums, and any pixel near a
    // boundary (the labels are checked apart, by `first_bad_label`).
    let mut bits_max = _mm256_setzero_si256();
    let mut sum_min = _mm256_set1_ps(1.0);
    let mut sum_max = _mm256_set1_ps(1.0);
    let mut near_any = _mm256_setzero_ps();

    // One pointer each for the stores and the scatter's loads of the same buffers.
    let (bin_out, key_out) = (args.bin.as_mut_ptr(), keys.as_mut_ptr());
    let mut j = 0;
    while j < main {
        // SAFETY (all loads and stores below): j + 8 <= main <= m and every slice holds at
        // least m elements (asserted above).
        let p0 = _mm256_loadu_ps(planes[0].as_ptr().add(j));
        let (mut best, mut k, mut sum) = (p0, _mm256_setzero_si256(), p0);
        let mut bits = _mm256_castps_si256(p0);
        for (c, plane) in planes.iter().enumerate().skip(1) {
            let v = _mm256_loadu_ps(plane.as_ptr().add(j));
            // Strict `>` keeps the first maximum (NaN never wins, as in the portable body).
            let gt = _mm256_cmp_ps::<_CMP_GT_OQ>(v, best);
            best = _mm256_blendv_ps(best, v, gt);
            k = if c == 1 {
                _mm256_srli_epi32::<31>(_mm256_castps_si256(gt))
            } else {
                _mm256_blendv_epi8(k, _mm256_set1_epi32(c as i32), _mm256_castps_si256(gt))
            };
            sum = _mm256_add_ps(sum, v);
            bits = _mm256_max_epu32(bits, _mm256_castps_si256(v));
        }
        bits_max = _mm256_max_epu32(bits_max, bits);
        // A NaN sum needs a NaN or infinite probability, which `bits_max` already catches.
        sum_min = _mm256_min_ps(sum_min, sum);
        sum_max = _mm256_max_ps(sum_max, sum);

        let t = _mm256_mul_ps(best, scale);
        let g = _mm256_cvttps_epi32(t);
        // Distance to the nearest integer, `t` capped below n (see the portable body).
        let capped = _mm256_min_ps(t, cap);
        let r = _mm256_round_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(capped);
        let dist = _mm256_andnot_ps(sign, _mm256_sub_ps(capped, r));
        let near = _mm256_cmp_ps::<_CMP_LT_OQ>(dist, eps);
        near_any = _mm256_or_ps(near_any, near);
        let q = _mm256_cvttps_epi32(_mm256_mul_ps(best, conf_scale));

        let l = _mm256_cvtepu8_epi32(_mm_loadl_epi64(labels.as_ptr().add(j).cast()));
        let is_ignore = _mm256_cmpeq_epi32(l, ignore);
        let hit = _mm256_cmpeq_epi32(k, l);

        let slot = _mm256_blendv_epi8(g, near_slot, _mm256_castps_si256(near));
        let slot = _mm256_blendv_epi8(slot, ignore_slot, is_ignore);
        let bytes = _mm256_permutevar8x32_epi32(_mm256_shuffle_epi8(slot, low_bytes), gather_lanes);
        _mm_storel_epi64(bin_out.add(j).cast(), _mm256_castsi256_si128(bytes));

        // key = q | (1 pixel, hit) << 32: the two halves interleaved.
        let high = _mm256_blendv_epi8(miss_high, hit_high, hit);
        let a = _mm256_unpacklo_epi32(q, high); // keys 0, 1 | 4, 5
        let b = _mm256_unpackhi_epi32(q, high); // keys 2, 3 | 6, 7
        let out = key_out.add(j).cast::<__m256i>();
        _mm256_storeu_si256(out, _mm256_permute2x128_si256::<0x20>(a, b));
        _mm256_storeu_si256(out.add(1), _mm256_permute2x128_si256::<0x31>(a, b));

        if j >= LAG {
            // SAFETY: pixels j - LAG .. j - LAG + 8 were written by an earlier step.
            let s = j - LAG;
            super::scatter8(
                hist,
                &*bin_out.add(s).cast::<[u8; STEP]>(),
                &*key_out.add(s).cast::<[u64; STEP]>(),
            );
        }
        j += STEP;
    }
    let done = main.saturating_sub(LAG);
    super::scatter(hist, &args.bin[done..main], &keys[done..main]);

    let one_bits = _mm256_set1_epi32(1.0f32.to_bits() as i32);
    let probs_in_range = _mm256_cmpeq_epi32(_mm256_max_epu32(bits_max, one_bits), one_bits);
    let all = |v: __m256i| _mm256_movemask_epi8(v) == -1;
    if !all(probs_in_range) {
        // Out of range, NaN, or merely -0.0: the portable pass tells them apart (rewriting
        // the same bins and keys; the tail is scattered here as it would have been below).
        let flags = super::pass_one_portable(planes, args.from(0), keys);
        super::scatter(hist, &args.bin[main..m], &keys[main..m]);
        return flags;
    }
    let one = _mm256_set1_ps(1.0);
    let dev = _mm256_max_ps(_mm256_sub_ps(sum_max, one), _mm256_sub_ps(one, sum_min));
    let sums_ok = _mm256_cmp_ps::<_CMP_LE_OQ>(dev, _mm256_set1_ps(tolerance));
    let mut flags = 0;
    if _mm256_movemask_ps(sums_ok) != 0xFF {
        flags |= FLAG_BAD_PROB;
    }
    if crate::validate::first_bad_label(&labels[..main], num_classes as usize).is_err() {
        flags |= FLAG_BAD_LABEL;
    }
    if _mm256_movemask_ps(near_any) != 0 {
        flags |= FLAG_NEAR;
    }

    if main < m {
        let tail = planes.map(|p| &p[main..m]);
        flags |= super::pass_one_portable(tail, args.from(main), &mut keys[main..m]);
        super::scatter(hist, &args.bin[main..m], &keys[main..m]);
    }
    flags
}
