//! The bilinear kernel, 8 output pixels per step, three tiers per chunk of 8:
//! - all 2 × 2 neighbourhoods inside the image: one offset per pixel, each row's pair
//!   of taps one 64-bit load;
//! - inside in x, within one reflection in y (reflect-101 border), or inside in x and y
//!   for a constant border: the same with reflected row offsets;
//! - within one reflection in x too: AVX2 gathers with reflected lane indices
//!   (`n1 - |n1 - |i||` with `n1 = n - 1` is exact there);
//!
//! any other chunk (far outside, not finite) goes to the scalar code. The arithmetic is
//! the scalar code's, operation for operation (no FMA), so results are bit-identical.

use std::arch::x86_64::*;

use super::{bilinear_scalar, Border, Src};

#[inline]
#[target_feature(enable = "avx2")]
unsafe fn reflect(i: __m256i, n1: __m256i) -> __m256i {
    _mm256_sub_epi32(
        n1,
        _mm256_abs_epi32(_mm256_sub_epi32(n1, _mm256_abs_epi32(i))),
    )
}

/// The pairs `(src[k], src[k + 1])` at the 8 offsets `at`, as two vectors holding
/// pixels (0, 1, 4, 5) and (2, 3, 6, 7).
///
/// # Safety
/// Every `at[k] + 1` must be inside `src` (AVX2 as for [`bilinear`]).
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn pairs(src: *const f32, at: &[i32; 8]) -> (__m256, __m256) {
    let ld = |k: usize| {
        src.add(at[k] as u32 as usize)
            .cast::<i64>()
            .read_unaligned()
    };
    let p = _mm256_set_epi64x(ld(5), ld(4), ld(1), ld(0));
    let q = _mm256_set_epi64x(ld(7), ld(6), ld(3), ld(2));
    (_mm256_castsi256_ps(p), _mm256_castsi256_ps(q))
}

/// # Safety
/// The CPU must support AVX2 and `w * h` must fit in an `i32` with room for `w`.
#[target_feature(enable = "avx2")]
pub(super) unsafe fn bilinear(s: &Src, xs: &[f32], ys: &[f32], out: &mut [f32], mout: &mut [u8]) {
    let n = out.len().min(xs.len()).min(ys.len());
    let with_mask = !mout.is_empty() && mout.len() >= n && !s.mask.is_empty();
    let (wf, hf) = (s.w as f32, s.h as f32);
    // Coordinates whose taps x0 = floor(sx) and x0 + 1 need no border rule beyond what
    // the kernel does: [lo, hi) per axis.
    let (lox, hix, loy, hiy) = match s.border {
        Border::Reflect => (1.0 - wf, 2.0 * wf - 2.0, 1.0 - hf, 2.0 * hf - 2.0),
        Border::Constant { .. } => (0.0, wf - 1.0, 0.0, hf - 1.0),
    };
    let (vlox, vhix) = (_mm256_set1_ps(lox), _mm256_set1_ps(hix));
    let (vloy, vhiy) = (_mm256_set1_ps(loy), _mm256_set1_ps(hiy));
    let wm1 = _mm256_set1_epi32(s.w as i32 - 1);
    let hm1 = _mm256_set1_epi32(s.h as i32 - 1);
    let vw = _mm256_set1_epi32(s.w as i32);
    let one = _mm256_set1_epi32(1);
    let half = _mm256_set1_ps(0.5);
    let img = s.img.as_ptr();
    let zero = _mm256_setzero_ps();
    let vwm1 = _mm256_set1_ps(wf - 1.0);
    let vhm1 = _mm256_set1_ps(hf - 1.0);
    let mut idx = [0i32; 8];
    let mut top = [0i32; 8];
    let mut bottom = [0i32; 8];
    let mut i = 0;
    while i + 8 <= n {
        let sx = _mm256_loadu_ps(xs.as_ptr().add(i));
        let sy = _mm256_loadu_ps(ys.as_ptr().add(i));
        // Ordered comparisons: NaN lanes fail and take the scalar path.
        let okx = _mm256_and_ps(
            _mm256_cmp_ps::<_CMP_GE_OQ>(sx, vlox),
            _mm256_cmp_ps::<_CMP_LT_OQ>(sx, vhix),
        );
        let oky = _mm256_and_ps(
            _mm256_cmp_ps::<_CMP_GE_OQ>(sy, vloy),
            _mm256_cmp_ps::<_CMP_LT_OQ>(sy, vhiy),
        );
        // Inside in x: the taps x0 and x0 + 1 are adjacent, so each row's pair is one
        // 64-bit load (with four gathers instead, a 512 × 512 affine call took 0.96 ms
        // of CPU on the Zen 3 here, with pair loads 0.75 ms).
        let inx = _mm256_and_ps(
            _mm256_cmp_ps::<_CMP_GE_OQ>(sx, zero),
            _mm256_cmp_ps::<_CMP_LT_OQ>(sx, vwm1),
        );
        let iny = _mm256_and_ps(
            _mm256_cmp_ps::<_CMP_GE_OQ>(sy, zero),
            _mm256_cmp_ps::<_CMP_LT_OQ>(sy, vhm1),
        );
        if _mm256_movemask_ps(_mm256_and_ps(inx, iny)) == 0xFF {
            // Inside (the common case): truncation is floor and the lower pair is one
            // row further, so one offset per pixel serves image and mask. The offsets
            // go through memory (`black_box`): 8 scalar loads are cheaper than the
            // 2-µop lane extractions the compiler would otherwise emit.
            let x0 = _mm256_cvttps_epi32(sx);
            let y0 = _mm256_cvttps_epi32(sy);
            let fx = _mm256_sub_ps(sx, _mm256_cvtepi32_ps(x0));
            let fy = _mm256_sub_ps(sy, _mm256_cvtepi32_ps(y0));
            let t = _mm256_add_epi32(_mm256_mullo_epi32(y0, vw), x0);
            _mm256_storeu_si256(top.as_mut_ptr().cast(), t);
            let at = std::hint::black_box(&top);
            let (ab, cd) = (pairs(img, at), pairs(img.add(s.w), at));
            let a = _mm256_shuffle_ps::<0x88>(ab.0, ab.1);
            let b = _mm256_shuffle_ps::<0xDD>(ab.0, ab.1);
            let c = _mm256_shuffle_ps::<0x88>(cd.0, cd.1);
            let d = _mm256_shuffle_ps::<0xDD>(cd.0, cd.1);
            let tp = _mm256_add_ps(a, _mm256_mul_ps(fx, _mm256_sub_ps(b, a)));
            let bt = _mm256_add_ps(c, _mm256_mul_ps(fx, _mm256_sub_ps(d, c)));
            let v = _mm256_add_ps(tp, _mm256_mul_ps(fy, _mm256_sub_ps(bt, tp)));
            _mm256_storeu_ps(out.as_mut_ptr().add(i), v);
            if with_mask {
                let gx = _mm256_castps_si256(_mm256_cmp_ps::<_CMP_GE_OQ>(fx, half));
                let gy = _mm256_castps_si256(_mm256_cmp_ps::<_CMP_GE_OQ>(fy, half));
                let j = _mm256_add_epi32(_mm256_sub_epi32(t, gx), _mm256_and_si256(gy, vw));
                _mm256_storeu_si256(idx.as_mut_ptr().cast(), j);
                let at = std::hint::black_box(&idx);
                let mo = mout.as_mut_ptr().add(i);
                for (k, &jk) in at.iter().enumerate() {
                    *mo.add(k) = *s.mask.get_unchecked(jk as u32 as usize);
                }
            }
            i += 8;
            continue;
        }
        if _mm256_movemask_ps(_mm256_and_ps(inx, oky)) == 0xFF {
            let flx = _mm256_floor_ps(sx);
            let fly = _mm256_floor_ps(sy);
            let fx = _mm256_sub_ps(sx, flx);
            let fy = _mm256_sub_ps(sy, fly);
            let x0 = _mm256_cvtps_epi32(flx);
            let y0 = _mm256_cvtps_epi32(fly);
            let ra = _mm256_mullo_epi32(reflect(y0, hm1), vw);
            let rb = _mm256_mullo_epi32(reflect(_mm256_add_epi32(y0, one), hm1), vw);
            _mm256_storeu_si256(top.as_mut_ptr().cast(), _mm256_add_epi32(ra, x0));
            _mm256_storeu_si256(bottom.as_mut_ptr().cast(), _mm256_add_epi32(rb, x0));
            // Pixels (0, 1, 4, 5) and (2, 3, 6, 7), so that the in-lane shuffles below
            // give the pixels in order: [a0 b0 a1 b1 | a4 b4 a5 b5].
            let (ab, cd) = (pairs(img, &top), pairs(img, &bottom));
            let a = _mm256_shuffle_ps::<0x88>(ab.0, ab.1);
            let b = _mm256_shuffle_ps::<0xDD>(ab.0, ab.1);
            let c = _mm256_shuffle_ps::<0x88>(cd.0, cd.1);
            let d = _mm256_shuffle_ps::<0xDD>(cd.0, cd.1);
            let t = _mm256_add_ps(a, _mm256_mul_ps(fx, _mm256_sub_ps(b, a)));
            let bt = _mm256_add_ps(c, _mm256_mul_ps(fx, _mm256_sub_ps(d, c)));
            let v = _mm256_add_ps(t, _mm256_mul_ps(fy, _mm256_sub_ps(bt, t)));
            _mm256_storeu_ps(out.as_mut_ptr().add(i), v);
            if with_mask {
                let gx = _mm256_castps_si256(_mm256_cmp_ps::<_CMP_GE_OQ>(fx, half));
                let gy = _mm256_castps_si256(_mm256_cmp_ps::<_CMP_GE_OQ>(fy, half));
                // gx is -1 where the right column is nearer.
                let j = _mm256_sub_epi32(_mm256_add_epi32(_mm256_blendv_epi8(ra, rb, gy), x0), gx);
                _mm256_storeu_si256(idx.as_mut_ptr().cast(), j);
                let mo = mout.as_mut_ptr().add(i);
                for (k, &jk) in idx.iter().enumerate() {
                    *mo.add(k) = *s.mask.get_unchecked(jk as usize);
                }
            }
            i += 8;
            continue;
        }
        if _mm256_movemask_ps(_mm256_and_ps(okx, oky)) != 0xFF {
            let m: &mut [u8] = if with_mask {
                &mut mout[i..i + 8]
            } else {
                &mut []
            };
            bilinear_scalar(s, &xs[i..i + 8], &ys[i..i + 8], &mut out[i..i + 8], m);
            i += 8;
            continue;
        }
        let flx = _mm256_floor_ps(sx);
        let fly = _mm256_floor_ps(sy);
        let fx = _mm256_sub_ps(sx, flx);
        let fy = _mm256_sub_ps(sy, fly);
        let x0 = _mm256_cvtps_epi32(flx);
        let y0 = _mm256_cvtps_epi32(fly);
        let xa = reflect(x0, wm1);
        let xb = reflect(_mm256_add_epi32(x0, one), wm1);
        let ra = _mm256_mullo_epi32(reflect(y0, hm1), vw);
        let rb = _mm256_mullo_epi32(reflect(_mm256_add_epi32(y0, one), hm1), vw);
        let a = _mm256_i32gather_ps::<4>(img, _mm256_add_epi32(ra, xa));
        let b = _mm256_i32gather_ps::<4>(img, _mm256_add_epi32(ra, xb));
        let c = _mm256_i32gather_ps::<4>(img, _mm256_add_epi32(rb, xa));
        let d = _mm256_i32gather_ps::<4>(img, _mm256_add_epi32(rb, xb));
        let top = _mm256_add_ps(a, _mm256_mul_ps(fx, _mm256_sub_ps(b, a)));
        let bot = _mm256_add_ps(c, _mm256_mul_ps(fx, _mm256_sub_ps(d, c)));
        let v = _mm256_add_ps(top, _mm256_mul_ps(fy, _mm256_sub_ps(bot, top)));
        _mm256_storeu_ps(out.as_mut_ptr().add(i), v);
        if with_mask {
            // Nearest = floor + (fraction >= 0.5), the scalar rule.
            let gx = _mm256_castps_si256(_mm256_cmp_ps::<_CMP_GE_OQ>(fx, half));
            let gy = _mm256_castps_si256(_mm256_cmp_ps::<_CMP_GE_OQ>(fy, half));
            let j = _mm256_add_epi32(
                _mm256_blendv_epi8(ra, rb, gy),
                _mm256_blendv_epi8(xa, xb, gx),
            );
            _mm256_storeu_si256(idx.as_mut_ptr().cast(), j);
            let mo = mout.as_mut_ptr().add(i);
            for (k, &jk) in idx.iter().enumerate() {
                *mo.add(k) = *s.mask.get_unchecked(jk as usize);
            }
        }
        i += 8;
    }
    if i < n {
        let m: &mut [u8] = if with_mask { &mut mout[i..n] } else { &mut [] };
        bilinear_scalar(s, &xs[i..n], &ys[i..n], &mut out[i..n], m);
    }
}
