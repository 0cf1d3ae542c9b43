//! Pass one in AVX2 intrinsics, eight pixels a step, writing the scatter keys directly.
//!
//! The compiler's vectorisation of [`super::pass_one_body`] spends most of its time turning
//! per-pixel booleans into bytes and OR-ing them; here every check is folded into a running
//! vector maximum that is tested once per call, and the 64-bit keys are built from two
//! 32-bit halves instead of a second widening loop. Results are bit-identical to the
//! portable body followed by [`super::widen_keys`] (a unit test compares them).

use std::arch::x86_64::*;

use super::{PassArgs, CONF_SCALE, FLAG_BAD_LABEL, FLAG_BAD_PROB, FLAG_NEAR, NEAR_SLOT};

/// Pixels per step.
const STEP: usize = 8;

/// [`super::pass_one_body`] + [`super::widen_keys`] for `K` classes, writing `keys`
/// (`keys.len() == args.labels.len()`). Returns `FLAG_*` bits.
///
/// # Safety
/// The CPU must support AVX2 and FMA.
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn pass_one_keys<const K: usize>(
    planes: [&[f32]; K],
    mut args: PassArgs<'_>,
    keys: &mut [u64],
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
    let eps = 8.0 * n_bins as f32 * f32::EPSILON;
    let (lo_eps, hi_eps) = (_mm256_set1_ps(eps), _mm256_set1_ps(1.0 - eps));
    let (zero, one) = (_mm256_setzero_ps(), _mm256_set1_ps(1.0));
    let (conf_scale, half) = (_mm256_set1_ps(CONF_SCALE), _mm256_set1_ps(0.5));
    let sign = _mm256_set1_ps(-0.0);
    let ignore = _mm256_set1_epi32(i32::from(crate::validate::IGNORE));
    let ignore_slot = _mm256_set1_epi32(n_bins as i32 + 1);
    let near_slot = _mm256_set1_epi32(i32::from(NEAR_SLOT));
    let (count_one, hit_bit) = (_mm256_set1_epi32(1), _mm256_set1_epi32(1 << 12));
    // Byte 0 of each 32-bit lane to the lane's first four bytes, then lanes 0 and 4 together.
    let low_bytes = _mm256_setr_epi8(
        0, 4, 8, 12, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, //
        0, 4, 8, 12, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
    );
    let gather_lanes = _mm256_setr_epi32(0, 4, 1, 1, 1, 1, 1, 1);

    // Running checks: the unsigned maximum of every probability's bits after `+ 0.0` (which
    // maps -0.0 to +0.0; anything negative, NaN or above 1.0 has bits above 1.0's), the
    // maximum |sum − 1|, the maximum non-ignored label, and any pixel near a boundary.
    let mut bits_max = _mm256_setzero_si256();
    let mut dev_max = _mm256_setzero_ps();
    let mut label_max = _mm256_setzero_si256();
    let mut near_any = _mm256_setzero_si256();

    let mut j = 0;
    while j < main {
        // SAFETY (all loads and stores below): j + 8 <= main <= m and every slice holds at
        // least m elements (asserted above).
        let p0 = _mm256_loadu_ps(planes[0].as_ptr().add(j));
        let (mut best, mut k, mut sum) = (p0, _mm256_setzero_si256(), p0);
        bits_max = _mm256_max_epu32(bits_max, _mm256_castps_si256(_mm256_add_ps(p0, zero)));
        for (c, plane) in planes.iter().enumerate().skip(1) {
            let v = _mm256_loadu_ps(plane.as_ptr().add(j));
            // Strict `>` keeps the first maximum (NaN never wins, as in the portable body).
            let gt = _mm256_cmp_ps::<_CMP_GT_OQ>(v, best);
            best = _mm256_blendv_ps(best, v, gt);
            k = _mm256_blendv_epi8(k, _mm256_set1_epi32(c as i32), _mm256_castps_si256(gt));
            sum = _mm256_add_ps(sum, v);
            bits_max = _mm256_max_epu32(bits_max, _mm256_castps_si256(_mm256_add_ps(v, zero)));
        }
        // A NaN sum needs a NaN or infinite probability, which `bits_max` already catches.
        dev_max = _mm256_max_ps(dev_max, _mm256_andnot_ps(sign, _mm256_sub_ps(sum, one)));

        let t = _mm256_mul_ps(best, scale);
        let g = _mm256_cvttps_epi32(t);
        let frac = _mm256_sub_ps(t, _mm256_cvtepi32_ps(g));
        let near_edge = _mm256_or_ps(
            _mm256_cmp_ps::<_CMP_LT_OQ>(frac, lo_eps),
            _mm256_cmp_ps::<_CMP_GT_OQ>(frac, hi_eps),
        );
        // `x > 0` is implied for accepted input (the top-1 of probabilities summing to 1 is
        // at least 1/K); for refused input the bins do not matter.
        let inside = _mm256_cmp_ps::<_CMP_LT_OQ>(best, one);
        let near = _mm256_castps_si256(_mm256_and_ps(near_edge, inside));
        near_any = _mm256_or_si256(near_any, near);
        // Multiply then add, two roundings, exactly as the portable body.
        let q = _mm256_cvttps_epi32(_mm256_add_ps(_mm256_mul_ps(best, conf_scale), half));

        let l = _mm256_cvtepu8_epi32(_mm_loadl_epi64(labels.as_ptr().add(j).cast()));
        let is_ignore = _mm256_cmpeq_epi32(l, ignore);
        label_max = _mm256_max_epu32(label_max, _mm256_andnot_si256(is_ignore, l));
        let hit = _mm256_cmpeq_epi32(k, l);

        let slot = _mm256_blendv_epi8(g, near_slot, near);
        let slot = _mm256_blendv_epi8(slot, ignore_slot, is_ignore);
        let bytes = _mm256_permutevar8x32_epi32(_mm256_shuffle_epi8(slot, low_bytes), gather_lanes);
        _mm_storel_epi64(
            args.bin.as_mut_ptr().add(j).cast(),
            _mm256_castsi256_si128(bytes),
        );

        // key = 1 | hit << 12 | q << 24 as u64: low half and high half (q < 2^29).
        let low = _mm256_or_si256(
            _mm256_or_si256(count_one, _mm256_and_si256(hit, hit_bit)),
            _mm256_slli_epi32::<24>(q),
        );
        let high = _mm256_srli_epi32::<8>(q);
        let a = _mm256_unpacklo_epi32(low, high); // keys 0, 1 | 4, 5
        let b = _mm256_unpackhi_epi32(low, high); // keys 2, 3 | 6, 7
        let out = keys.as_mut_ptr().add(j).cast::<__m256i>();
        _mm256_storeu_si256(out, _mm256_permute2x128_si256::<0x20>(a, b));
        _mm256_storeu_si256(out.add(1), _mm256_permute2x128_si256::<0x31>(a, b));
        j += STEP;
    }

    let one_bits = _mm256_set1_epi32(1.0f32.to_bits() as i32);
    let probs_ok = _mm256_cmpeq_epi32(_mm256_max_epu32(bits_max, one_bits), one_bits);
    let sums_ok = _mm256_cmp_ps::<_CMP_LE_OQ>(dev_max, _mm256_set1_ps(tolerance));
    let top_label = _mm256_set1_epi32(num_classes as i32 - 1);
    let labels_ok = _mm256_cmpeq_epi32(_mm256_max_epu32(label_max, top_label), top_label);
    let all = |v: __m256i| _mm256_movemask_epi8(v) == -1;
    let mut flags = 0;
    if !all(probs_ok) || _mm256_movemask_ps(sums_ok) != 0xFF {
        flags |= FLAG_BAD_PROB;
    }
    if !all(labels_ok) {
        flags |= FLAG_BAD_LABEL;
    }
    if _mm256_movemask_epi8(near_any) != 0 {
        flags |= FLAG_NEAR;
    }

    if main < m {
        let tail = planes.map(|p| &p[main..m]);
        flags |= super::pass_one_portable(tail, args.from(main), &mut keys[main..m]);
    }
    flags
}
