//! Resampling of an image and its mask through a coordinate map (the engine behind
//! affine, crop-and-resize and elastic transforms).
//!
//! Coordinates are pixel indices: pixel `(x, y)` has its centre at `(x, y)`. For each output
//! row segment the caller fills the source coordinates of every output pixel; the image is
//! sampled with the chosen [`Interpolation`] and the mask always with nearest neighbour
//! (round half up), so labels stay in the label set. [`remap`] is the fast path (tiles,
//! AVX2); `remap_reference`, the row-wise scalar code, is kept for the tests, which require
//! both to agree bit for bit.

use serde::{Deserialize, Serialize};

use super::filter::reflect101;
use crate::{Mask, Radiograph, IGNORE_LABEL};

/// How the image is interpolated between pixel centres (the mask is always nearest).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Interpolation {
    /// Nearest neighbour.
    Nearest,
    /// Bilinear (OpenCV `INTER_LINEAR`, scikit-image order 1).
    #[default]
    Bilinear,
    /// Bicubic with the OpenCV kernel (`a = -0.75`).
    Bicubic,
}

/// What a transform reads outside the source image.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "mode")]
pub enum Border {
    /// Mirror without repeating the edge pixel (OpenCV `BORDER_REFLECT_101`, the
    /// albumentations default; imgaug/XNet `mode="reflect"`).
    #[default]
    Reflect,
    /// A constant image value; the mask reads `mask_value` there (by default
    /// [`IGNORE_LABEL`], because nothing is known about those pixels).
    Constant {
        /// Image value outside the source.
        value: f32,
        /// Mask label outside the source.
        #[serde(default = "default_mask_fill")]
        mask_value: u8,
    },
}

fn default_mask_fill() -> u8 {
    IGNORE_LABEL
}

/// Rows of one output tile. With [`AFFINE_TILE_COLS`] columns, the source pixels one tile
/// of a rotation reads (≈ 70 × 50 for ±15°) stay in the L1 cache, where an output row alone
/// walks diagonally through up to a hundred source rows.
const TILE_ROWS: usize = 32;

/// Tile width for maps that rotate (affine); maps that stay near the identity (elastic,
/// crop) pass `usize::MAX` and are visited row by row.
pub(crate) const AFFINE_TILE_COLS: usize = 64;

/// Resample `image` (and `mask` if given) into new buffers of the same size.
/// `coords(y, x0, xs, ys)` must fill the source x and y coordinates of the output pixels
/// `x0 .. x0 + xs.len()` of row `y`. The output is visited in tiles of [`TILE_ROWS`] rows
/// by `tile_cols` columns, each tile row by row.
///
/// Bilinear sampling runs 8 pixels at a time with AVX2 where the CPU has it (detected at
/// run time); it computes exactly what the scalar code computes (same operations in the
/// same order, no fused multiply-add), so results do not depend on the CPU.
pub(crate) fn remap<F>(
    image: &Radiograph,
    mask: Option<&Mask>,
    interp: Interpolation,
    border: Border,
    tile_cols: usize,
    coords: F,
) -> (Radiograph, Option<Mask>)
where
    F: FnMut(usize, usize, &mut [f32], &mut [f32]),
{
    remap_with(
        image,
        mask,
        interp,
        border,
        tile_cols,
        simd_available(),
        coords,
    )
}

/// Whether the AVX2 kernel can run on this CPU.
fn simd_available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::is_x86_feature_detected!("avx2")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// [`remap`] with the kernel choice explicit (tests run both).
fn remap_with<F>(
    image: &Radiograph,
    mask: Option<&Mask>,
    interp: Interpolation,
    border: Border,
    tile_cols: usize,
    simd: bool,
    coords: F,
) -> (Radiograph, Option<Mask>)
where
    F: FnMut(usize, usize, &mut [f32], &mut [f32]),
{
    #[cfg(target_arch = "x86_64")]
    {
        if simd {
            // SAFETY: `simd` is only true when AVX2 was detected at run time.
            return unsafe { remap_avx2(image, mask, interp, border, tile_cols, coords) };
        }
    }
    remap_body(image, mask, interp, border, tile_cols, simd, coords)
}

/// [`remap_body`] compiled for AVX2, with the caller's coordinate closure inlined into it
/// (so that it is vectorised 8 lanes wide too).
///
/// # Safety
/// The CPU must support AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn remap_avx2<F>(
    image: &Radiograph,
    mask: Option<&Mask>,
    interp: Interpolation,
    border: Border,
    tile_cols: usize,
    coords: F,
) -> (Radiograph, Option<Mask>)
where
    F: FnMut(usize, usize, &mut [f32], &mut [f32]),
{
    remap_body(image, mask, interp, border, tile_cols, true, coords)
}

#[inline(always)]
fn remap_body<F>(
    image: &Radiograph,
    mask: Option<&Mask>,
    interp: Interpolation,
    border: Border,
    tile_cols: usize,
    simd: bool,
    mut coords: F,
) -> (Radiograph, Option<Mask>)
where
    F: FnMut(usize, usize, &mut [f32], &mut [f32]),
{
    let (w, h) = (image.width() as usize, image.height() as usize);
    let src = image.as_raw();
    let msrc = mask.map(|m| m.as_raw().as_slice());
    let mut out = vec![0.0f32; w * h];
    let mut mout = mask.map(|_| vec![0u8; w * h]);
    let tile_cols = tile_cols.clamp(1, w.max(1));
    let mut xs = vec![0.0f32; tile_cols];
    let mut ys = vec![0.0f32; tile_cols];
    // The vector kernel indexes with i32 lanes.
    let simd = simd && w * h <= i32::MAX as usize / 2;
    let plane = Src {
        img: src,
        mask: msrc.unwrap_or(&[]),
        w,
        h,
        border,
    };
    for ty in (0..h).step_by(TILE_ROWS) {
        for tx in (0..w).step_by(tile_cols) {
            let n = tile_cols.min(w - tx);
            let (xs, ys) = (&mut xs[..n], &mut ys[..n]);
            for y in ty..(ty + TILE_ROWS).min(h) {
                coords(y, tx, xs, ys);
                let r = y * w + tx..y * w + tx + n;
                let orow = &mut out[r.clone()];
                match interp {
                    Interpolation::Bilinear => {
                        let mrow: &mut [u8] = match (msrc, mout.as_mut()) {
                            (Some(_), Some(mo)) => &mut mo[r.clone()],
                            _ => &mut [],
                        };
                        bilinear_segment(&plane, xs, ys, orow, mrow, simd);
                        continue;
                    }
                    Interpolation::Nearest => nearest_row_f32(src, w, h, xs, ys, border, orow),
                    Interpolation::Bicubic => bicubic_row(src, w, h, xs, ys, border, orow),
                }
                if let (Some(ms), Some(mo)) = (msrc, mout.as_mut()) {
                    nearest_row_u8(ms, w, h, xs, ys, border, &mut mo[r]);
                }
            }
        }
    }
    let img = Radiograph::from_raw(w as u32, h as u32, out).unwrap_or_else(|| image.clone());
    let m = match (mask, mout) {
        (Some(m0), Some(mo)) => {
            Some(Mask::from_raw(w as u32, h as u32, mo).unwrap_or_else(|| m0.clone()))
        }
        _ => None,
    };
    (img, m)
}

/// The source planes and border rule, for the segment kernels. `mask` is empty when there
/// is no mask to resample.
#[derive(Clone, Copy)]
struct Src<'a> {
    img: &'a [f32],
    mask: &'a [u8],
    w: usize,
    h: usize,
    border: Border,
}

/// Bilinear image (and nearest mask when `mout` is not empty) for one output segment.
fn bilinear_segment(s: &Src, xs: &[f32], ys: &[f32], out: &mut [f32], mout: &mut [u8], simd: bool) {
    #[cfg(target_arch = "x86_64")]
    {
        if simd {
            // SAFETY: `simd` is only true when AVX2 was detected at run time
            // (`simd_available`) and the plane is small enough for i32 lane indices
            // (`remap_with`).
            unsafe { avx2::bilinear(s, xs, ys, out, mout) };
            return;
        }
    }
    let _ = simd;
    bilinear_scalar(s, xs, ys, out, mout);
}

/// The scalar path, pixel by pixel (the reference the vector kernel must reproduce).
fn bilinear_scalar(s: &Src, xs: &[f32], ys: &[f32], out: &mut [f32], mout: &mut [u8]) {
    if mout.is_empty() {
        bilinear_row(s.img, s.w, s.h, xs, ys, s.border, out);
    } else {
        bilinear_nearest_row(s.img, s.mask, s.w, s.h, xs, ys, s.border, out, mout);
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
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
    pub(super) unsafe fn bilinear(
        s: &Src,
        xs: &[f32],
        ys: &[f32],
        out: &mut [f32],
        mout: &mut [u8],
    ) {
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
                    let j =
                        _mm256_sub_epi32(_mm256_add_epi32(_mm256_blendv_epi8(ra, rb, gy), x0), gx);
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
}

/// The row-by-row scalar resampler, kept as the reference for the tiled, vectorised
/// [`remap`] (tests compare the two bit for bit).
#[cfg(test)]
pub(crate) fn remap_reference<F>(
    image: &Radiograph,
    mask: Option<&Mask>,
    interp: Interpolation,
    border: Border,
    mut coords: F,
) -> (Radiograph, Option<Mask>)
where
    F: FnMut(usize, &mut [f32], &mut [f32]),
{
    let (w, h) = (image.width() as usize, image.height() as usize);
    let src = image.as_raw();
    let msrc = mask.map(|m| m.as_raw().as_slice());
    let mut out = vec![0.0f32; w * h];
    let mut mout = mask.map(|_| vec![0u8; w * h]);
    let mut xs = vec![0.0f32; w];
    let mut ys = vec![0.0f32; w];
    for y in 0..h {
        coords(y, &mut xs, &mut ys);
        let orow = &mut out[y * w..(y + 1) * w];
        if let (Interpolation::Bilinear, Some(ms), Some(mo)) = (interp, msrc, mout.as_mut()) {
            let mrow = &mut mo[y * w..(y + 1) * w];
            bilinear_nearest_row(src, ms, w, h, &xs, &ys, border, orow, mrow);
            continue;
        }
        match interp {
            Interpolation::Bilinear => bilinear_row(src, w, h, &xs, &ys, border, orow),
            Interpolation::Nearest => nearest_row_f32(src, w, h, &xs, &ys, border, orow),
            Interpolation::Bicubic => bicubic_row(src, w, h, &xs, &ys, border, orow),
        }
        if let (Some(ms), Some(mo)) = (msrc, mout.as_mut()) {
            nearest_row_u8(ms, w, h, &xs, &ys, border, &mut mo[y * w..(y + 1) * w]);
        }
    }
    let img = Radiograph::from_raw(w as u32, h as u32, out).expect("buffer size");
    let m = mout.map(|mo| Mask::from_raw(w as u32, h as u32, mo).expect("buffer size"));
    (img, m)
}

#[inline]
fn border_value(border: Border) -> f32 {
    match border {
        Border::Reflect => 0.0,
        Border::Constant { value, .. } => value,
    }
}

/// Fetch one source pixel with the border rule (slow path only).
#[inline]
fn fetch(src: &[f32], w: usize, h: usize, x: isize, y: isize, border: Border) -> f32 {
    if x >= 0 && y >= 0 && (x as usize) < w && (y as usize) < h {
        return src[y as usize * w + x as usize];
    }
    match border {
        Border::Reflect => src[reflect101(y, h) * w + reflect101(x, w)],
        Border::Constant { value, .. } => value,
    }
}

fn bilinear_row(
    src: &[f32],
    w: usize,
    h: usize,
    xs: &[f32],
    ys: &[f32],
    border: Border,
    out: &mut [f32],
) {
    let (wm1, hm1) = (w as f32 - 1.0, h as f32 - 1.0);
    for ((o, &sx), &sy) in out.iter_mut().zip(xs).zip(ys) {
        // Fast path: the 2×2 neighbourhood is inside. The comparisons are false for NaN, and
        // for non-negative values `as usize` truncation is `floor` (without SSE4.1 a real
        // `floor` is a libm call, which dominated the cost of this loop).
        if sx >= 0.0 && sy >= 0.0 && sx < wm1 && sy < hm1 {
            let (x0, y0) = (sx as usize, sy as usize);
            let (fx, fy) = (sx - x0 as f32, sy - y0 as f32);
            let i = y0 * w + x0;
            // i + w + 1 < w * h holds by the checks above. With fx = fy = 0 the result is
            // exactly `a` (a + 0 * (b - a)), which keeps identity maps exact.
            let (a, b) = (src[i], src[i + 1]);
            let (c, d) = (src[i + w], src[i + w + 1]);
            let top = a + fx * (b - a);
            let bot = c + fx * (d - c);
            *o = top + fy * (bot - top);
        } else {
            *o = bilinear_slow(src, w, h, sx, sy, border);
        }
    }
}

/// Bilinear image and nearest mask in one pass. The nearest pixel is the bilinear corner
/// rounded by the fractions (`floor(s) + (frac >= 0.5)`, round half up), so both use one
/// conversion.
#[allow(clippy::too_many_arguments)]
fn bilinear_nearest_row(
    src: &[f32],
    msrc: &[u8],
    w: usize,
    h: usize,
    xs: &[f32],
    ys: &[f32],
    border: Border,
    out: &mut [f32],
    mout: &mut [u8],
) {
    let (wm1, hm1) = (w as f32 - 1.0, h as f32 - 1.0);
    for (((o, m), &sx), &sy) in out.iter_mut().zip(mout.iter_mut()).zip(xs).zip(ys) {
        if sx >= 0.0 && sy >= 0.0 && sx < wm1 && sy < hm1 {
            let (x0, y0) = (sx as usize, sy as usize);
            let (fx, fy) = (sx - x0 as f32, sy - y0 as f32);
            let i = y0 * w + x0;
            let (a, b) = (src[i], src[i + 1]);
            let (c, d) = (src[i + w], src[i + w + 1]);
            let top = a + fx * (b - a);
            let bot = c + fx * (d - c);
            *o = top + fy * (bot - top);
            let j = i + (fx >= 0.5) as usize + if fy >= 0.5 { w } else { 0 };
            *m = msrc[j];
        } else {
            *o = bilinear_slow(src, w, h, sx, sy, border);
            *m = nearest_label_slow(msrc, w, h, sx, sy, border);
        }
    }
}

/// `floor` without the libm call (see `bilinear_row`): exact for every finite `v` (values
/// of magnitude 2²³ and more are integers already).
#[inline]
fn floor_fast(v: f32) -> f32 {
    if v.abs() < 8_388_608.0 {
        let t = v as i32 as f32;
        if t > v {
            t - 1.0
        } else {
            t
        }
    } else {
        v
    }
}

/// The nearest label outside the fast path, with the fast path's rounding (floor, then one
/// more when the fraction is at least 0.5) so that both agree everywhere.
#[cold]
fn nearest_label_slow(msrc: &[u8], w: usize, h: usize, sx: f32, sy: f32, border: Border) -> u8 {
    let fill = match border {
        Border::Reflect => IGNORE_LABEL,
        Border::Constant { mask_value, .. } => mask_value,
    };
    if !(sx.is_finite() && sy.is_finite()) {
        return fill;
    }
    let (x0f, y0f) = (floor_fast(sx), floor_fast(sy));
    let x = (x0f as isize).saturating_add((sx - x0f >= 0.5) as isize);
    let y = (y0f as isize).saturating_add((sy - y0f >= 0.5) as isize);
    if x >= 0 && y >= 0 && (x as usize) < w && (y as usize) < h {
        return msrc[y as usize * w + x as usize];
    }
    match border {
        Border::Reflect => msrc[reflect101(y, h) * w + reflect101(x, w)],
        Border::Constant { .. } => fill,
    }
}

#[cold]
fn bilinear_slow(src: &[f32], w: usize, h: usize, sx: f32, sy: f32, border: Border) -> f32 {
    if !(sx.is_finite() && sy.is_finite()) {
        return border_value(border);
    }
    let x0f = floor_fast(sx);
    let y0f = floor_fast(sy);
    let (fx, fy) = (sx - x0f, sy - y0f);
    let (x0, y0) = (x0f as isize, y0f as isize);
    let a = fetch(src, w, h, x0, y0, border);
    if fx == 0.0 && fy == 0.0 {
        return a;
    }
    let (x1, y1) = (x0.saturating_add(1), y0.saturating_add(1));
    let b = fetch(src, w, h, x1, y0, border);
    let c = fetch(src, w, h, x0, y1, border);
    let d = fetch(src, w, h, x1, y1, border);
    let top = a + fx * (b - a);
    let bot = c + fx * (d - c);
    top + fy * (bot - top)
}

fn nearest_row_f32(
    src: &[f32],
    w: usize,
    h: usize,
    xs: &[f32],
    ys: &[f32],
    border: Border,
    out: &mut [f32],
) {
    for ((o, &sx), &sy) in out.iter_mut().zip(xs).zip(ys) {
        if !(sx.is_finite() && sy.is_finite()) {
            *o = border_value(border);
            continue;
        }
        let x = (sx + 0.5).floor() as isize;
        let y = (sy + 0.5).floor() as isize;
        *o = fetch(src, w, h, x, y, border);
    }
}

fn nearest_row_u8(
    src: &[u8],
    w: usize,
    h: usize,
    xs: &[f32],
    ys: &[f32],
    border: Border,
    out: &mut [u8],
) {
    let fill = match border {
        Border::Reflect => IGNORE_LABEL,
        Border::Constant { mask_value, .. } => mask_value,
    };
    let (wf, hf) = (w as f32 - 0.5, h as f32 - 0.5);
    for ((o, &sx), &sy) in out.iter_mut().zip(xs).zip(ys) {
        // Fast path without `floor` (see `bilinear_row`): round half up of a value >= -0.5.
        if sx >= -0.5 && sy >= -0.5 && sx < wf && sy < hf {
            let (x, y) = ((sx + 0.5) as usize, (sy + 0.5) as usize);
            *o = src[y * w + x];
            continue;
        }
        if !(sx.is_finite() && sy.is_finite()) {
            *o = fill;
            continue;
        }
        let x = (sx + 0.5).floor() as isize;
        let y = (sy + 0.5).floor() as isize;
        *o = if x >= 0 && y >= 0 && (x as usize) < w && (y as usize) < h {
            src[y as usize * w + x as usize]
        } else {
            match border {
                Border::Reflect => src[reflect101(y, h) * w + reflect101(x, w)],
                Border::Constant { .. } => fill,
            }
        };
    }
}

/// OpenCV's cubic convolution weights (`a = -0.75`) for fractional offset `t`.
#[inline]
fn cubic_weights(t: f32) -> [f32; 4] {
    const A: f32 = -0.75;
    let w0 = ((A * (t + 1.0) - 5.0 * A) * (t + 1.0) + 8.0 * A) * (t + 1.0) - 4.0 * A;
    let w1 = ((A + 2.0) * t - (A + 3.0)) * t * t + 1.0;
    let w2 = ((A + 2.0) * (1.0 - t) - (A + 3.0)) * (1.0 - t) * (1.0 - t) + 1.0;
    [w0, w1, w2, 1.0 - w0 - w1 - w2]
}

fn bicubic_row(
    src: &[f32],
    w: usize,
    h: usize,
    xs: &[f32],
    ys: &[f32],
    border: Border,
    out: &mut [f32],
) {
    for ((o, &sx), &sy) in out.iter_mut().zip(xs).zip(ys) {
        if !(sx.is_finite() && sy.is_finite()) {
            *o = border_value(border);
            continue;
        }
        let x0f = sx.floor();
        let y0f = sy.floor();
        let (fx, fy) = (sx - x0f, sy - y0f);
        let (x0, y0) = (x0f as isize, y0f as isize);
        if fx == 0.0 && fy == 0.0 {
            *o = fetch(src, w, h, x0, y0, border);
            continue;
        }
        let wx = cubic_weights(fx);
        let wy = cubic_weights(fy);
        let mut acc = 0.0f32;
        for (j, &wyj) in wy.iter().enumerate() {
            let yy = y0 - 1 + j as isize;
            let mut row = 0.0f32;
            for (i, &wxi) in wx.iter().enumerate() {
                row += wxi * fetch(src, w, h, x0 - 1 + i as isize, yy, border);
            }
            acc += wyj * row;
        }
        *o = acc;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cubic_weights_sum_to_one_and_interpolate() {
        for t in [0.0f32, 0.25, 0.5, 0.9] {
            let w = cubic_weights(t);
            assert!((w.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        }
        assert_eq!(cubic_weights(0.0), [0.0, 1.0, 0.0, 0.0]);
    }

    fn plane(w: u32, h: u32) -> (Radiograph, Mask) {
        let img = Radiograph::from_fn(w, h, |x, y| {
            image::Luma([((x * 7919 + y * 104_729) % 1013) as f32 * 0.37 + 1.0])
        });
        let mask = Mask::from_fn(w, h, |x, y| {
            image::Luma([[0u8, 1, 2, 255][((x * 13 + y * 29) % 4) as usize]])
        });
        (img, mask)
    }

    /// Source coordinates of output pixel `(x, y)` for a family of maps: a rotation that
    /// leaves the source, a jitter, far/non-finite values, integer and boundary values.
    fn map(kind: usize, w: usize, h: usize, x: usize, y: usize) -> (f32, f32) {
        let (xf, yf) = (x as f32, y as f32);
        let (wf, hf) = (w as f32, h as f32);
        let hash = ((x * 2_654_435_761 + y * 40_503 + kind * 977) % 10_007) as f32 / 10_007.0;
        match kind {
            0 => {
                let (c, s) = (0.91f32, 0.41f32);
                let (u, v) = (xf - wf / 2.0, yf - hf / 2.0);
                (
                    1.3 * (c * u + s * v) + wf / 2.0,
                    1.3 * (-s * u + c * v) + hf / 2.0,
                )
            }
            1 => (xf + 6.0 * hash - 3.0, yf + 5.0 * (1.0 - hash) - 2.5),
            2 => match (x + 3 * y) % 9 {
                0 => (f32::NAN, yf),
                1 => (xf, f32::INFINITY),
                2 => (xf * 50.0 - 1000.0, yf),
                3 => (-wf - 0.5, 2.0 * hf),
                4 => (2.0 * wf - 2.0, hf - 1.0),
                5 => (1.0 - wf, -(hf - 1.0)),
                6 => (wf - 1.0 - 1e-4, hf - 1.5),
                7 => (2.0 * wf - 2.0 - 1e-3, 0.5),
                _ => (xf - 0.5, yf + 0.5),
            },
            3 => (xf - 2.0, yf + 1.0),
            _ => (wf - 1.0 - xf * 0.999, (yf * 1.7) % hf),
        }
    }

    /// The tiled (scalar and AVX2) resampler reproduces the row-wise scalar reference bit
    /// for bit, for every map family, size, border, interpolation and tiling.
    #[test]
    fn tiled_and_vector_paths_match_the_reference_exactly() {
        let borders = [
            Border::Reflect,
            Border::Constant {
                value: -3.0,
                mask_value: 7,
            },
        ];
        let interps = [
            Interpolation::Bilinear,
            Interpolation::Nearest,
            Interpolation::Bicubic,
        ];
        let mut simds = vec![false];
        if simd_available() {
            simds.push(true);
        }
        for (w, h) in [(1u32, 1u32), (1, 7), (2, 2), (9, 5), (37, 23), (70, 41)] {
            let (img, mask) = plane(w, h);
            let (wu, hu) = (w as usize, h as usize);
            for kind in 0..5 {
                for border in borders {
                    for interp in interps {
                        for with_mask in [true, false] {
                            let m = with_mask.then_some(&mask);
                            let (ri, rm) = remap_reference(&img, m, interp, border, |y, xs, ys| {
                                for (x, (sx, sy)) in xs.iter_mut().zip(ys.iter_mut()).enumerate() {
                                    (*sx, *sy) = map(kind, wu, hu, x, y);
                                }
                            });
                            for &simd in &simds {
                                for tile in [1usize, 5, 64, usize::MAX] {
                                    let (fi, fm) = remap_with(
                                        &img,
                                        m,
                                        interp,
                                        border,
                                        tile,
                                        simd,
                                        |y, x0, xs, ys| {
                                            for (x, (sx, sy)) in
                                                (x0..).zip(xs.iter_mut().zip(ys.iter_mut()))
                                            {
                                                (*sx, *sy) = map(kind, wu, hu, x, y);
                                            }
                                        },
                                    );
                                    let what = format!(
                                        "{w}x{h} kind {kind} {border:?} {interp:?} mask {with_mask} simd {simd} tile {tile}"
                                    );
                                    for (k, (a, b)) in
                                        ri.as_raw().iter().zip(fi.as_raw()).enumerate()
                                    {
                                        assert_eq!(
                                            a.to_bits(),
                                            b.to_bits(),
                                            "{what}: pixel {k}: {a} vs {b}"
                                        );
                                    }
                                    assert_eq!(
                                        rm.as_ref().map(|m| m.as_raw()),
                                        fm.as_ref().map(|m| m.as_raw()),
                                        "{what}"
                                    );
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn floor_fast_is_floor() {
        for v in [
            0.0f32,
            -0.0,
            0.5,
            -0.5,
            1.0,
            -1.0,
            2.999_999_8,
            -2.999_999_8,
            8_388_607.5,
            -8_388_607.5,
            1e9,
            -1e9,
            1e30,
            -7.0,
        ] {
            assert_eq!(floor_fast(v), v.floor(), "{v}");
        }
    }

    #[test]
    fn bilinear_half_pixel_is_mean() {
        let img = Radiograph::from_raw(2, 2, vec![0.0, 2.0, 4.0, 6.0]).unwrap();
        let (o, _) = remap(
            &img,
            None,
            Interpolation::Bilinear,
            Border::Reflect,
            usize::MAX,
            |_, _, xs, ys| {
                xs.fill(0.5);
                ys.fill(0.5);
            },
        );
        assert!(o.as_raw().iter().all(|&v| (v - 3.0).abs() < 1e-6));
    }
}
