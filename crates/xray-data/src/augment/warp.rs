//! Resampling of an image and its mask through a coordinate map (the engine behind
//! affine, crop-and-resize and elastic transforms).
//!
//! Coordinates are pixel indices: pixel `(x, y)` has its centre at `(x, y)`. For each output
//! row segment the caller fills the source coordinates of every output pixel; the image is
//! sampled with the chosen [`Interpolation`] and the mask always with nearest neighbour
//! (round half up), so labels stay in the label set. [`remap`] is the fast path (tiles,
//! AVX2); `remap_reference`, the row-wise scalar code, is kept for the tests, which require
//! both to agree bit for bit.

use std::cell::RefCell;

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

impl Border {
    /// Refuses a constant border whose image value is NaN or infinite (`owner` names the
    /// transform in the message: `affine border value = inf must be finite`).
    pub(crate) fn validate(&self, owner: &str) -> crate::Result<()> {
        if let Border::Constant { value, .. } = *self {
            crate::error::check_finite(&format!("{owner} border "), &[("value", &[value])])?;
        }
        Ok(())
    }
}

fn default_mask_fill() -> u8 {
    IGNORE_LABEL
}

/// Rows of one output tile. With [`AFFINE_TILE_COLS`] columns, the source rows one tile of
/// a rotation reads (≈ 256 × 85 pixels for ±15°) stay in the L2 cache and the few an output
/// row adds stay in L1, where visiting whole output rows walks diagonally through up to a
/// hundred source rows per row (about 4× slower). 16 × 256 tiles took about 10 % less time
/// than 32 × 64 ones (0.40 against 0.45 ms per 512² affine call on the Zen 4 here).
const TILE_ROWS: usize = 16;

/// Tile width for maps that rotate (affine); maps that stay near the identity (elastic,
/// crop) pass `usize::MAX` and are visited row by row.
pub(crate) const AFFINE_TILE_COLS: usize = 256;

/// Resample `image` (and `mask` if given) into planes of the same size: new ones, or those a
/// transform on this thread replaced before (see [`spare_or_zeroed`]).
/// `coords(y, x0, xs, ys)` must fill the source x and y coordinates of the output pixels
/// `x0 .. x0 + xs.len()` of row `y`. The output is visited in tiles of [`TILE_ROWS`] rows
/// by `tile_cols` columns, each tile row by row.
///
/// Bilinear sampling runs 8 pixels at a time with AVX2 where the CPU has it (detected at
/// run time), and tiled maps (`tile_cols` below `usize::MAX`: affine) 16 at a time with
/// AVX-512 where it has that too (row-wise maps keep the AVX2 kernel: elastic fields, whose
/// taps do not follow a line, took 1.63 ms per 512² call with it against 1.44 ms). Every
/// kernel computes exactly what the scalar code computes (same operations in the same
/// order, no fused multiply-add), so results do not depend on the CPU.
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
    let kernel = match best_kernel() {
        Kernel::Avx512 if tile_cols == usize::MAX => Kernel::Avx2,
        k => k,
    };
    remap_with(image, mask, interp, border, tile_cols, kernel, coords)
}

/// Which bilinear kernel [`remap`] runs (all compute the same bits).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
enum Kernel {
    /// Portable code, pixel by pixel.
    Scalar,
    /// 8 pixels per step with AVX2.
    Avx2,
    /// 16 pixels per step with AVX-512 (F, BW, VL, VBMI); the AVX2 kernel takes the chunks
    /// it does not.
    Avx512,
}

/// The fastest kernel this CPU can run (detected at run time).
fn best_kernel() -> Kernel {
    #[cfg(target_arch = "x86_64")]
    {
        if std::is_x86_feature_detected!("avx2") {
            if std::is_x86_feature_detected!("avx512f")
                && std::is_x86_feature_detected!("avx512bw")
                && std::is_x86_feature_detected!("avx512vl")
                && std::is_x86_feature_detected!("avx512vbmi")
            {
                return Kernel::Avx512;
            }
            return Kernel::Avx2;
        }
    }
    Kernel::Scalar
}

/// [`remap`] with the kernel choice explicit (tests run every kernel the CPU has).
fn remap_with<F>(
    image: &Radiograph,
    mask: Option<&Mask>,
    interp: Interpolation,
    border: Border,
    tile_cols: usize,
    kernel: Kernel,
    coords: F,
) -> (Radiograph, Option<Mask>)
where
    F: FnMut(usize, usize, &mut [f32], &mut [f32]),
{
    #[cfg(target_arch = "x86_64")]
    {
        match kernel {
            // SAFETY: `best_kernel` names a vector kernel only when the CPU has its features.
            Kernel::Avx512 => {
                return unsafe { remap_avx512(image, mask, interp, border, tile_cols, coords) }
            }
            Kernel::Avx2 => {
                return unsafe { remap_avx2(image, mask, interp, border, tile_cols, coords) }
            }
            Kernel::Scalar => {}
        }
    }
    remap_body(
        image,
        mask,
        interp,
        border,
        tile_cols,
        Kernel::Scalar,
        coords,
    )
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
    remap_body(image, mask, interp, border, tile_cols, Kernel::Avx2, coords)
}

/// [`remap_body`] compiled for AVX-512 (the coordinate closure 16 lanes wide).
///
/// # Safety
/// The CPU must support AVX2 and AVX-512 F, BW, VL and VBMI.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,avx512f,avx512bw,avx512vl,avx512vbmi")]
unsafe fn remap_avx512<F>(
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
    remap_body(
        image,
        mask,
        interp,
        border,
        tile_cols,
        Kernel::Avx512,
        coords,
    )
}

#[inline(always)]
fn remap_body<F>(
    image: &Radiograph,
    mask: Option<&Mask>,
    interp: Interpolation,
    border: Border,
    tile_cols: usize,
    kernel: Kernel,
    mut coords: F,
) -> (Radiograph, Option<Mask>)
where
    F: FnMut(usize, usize, &mut [f32], &mut [f32]),
{
    let (w, h) = (image.width() as usize, image.height() as usize);
    let src = image.as_raw();
    let msrc = mask.map(|m| m.as_raw().as_slice());
    let mut out = spare_or_zeroed(&SPARE_F32, w * h);
    let mut mout = mask.map(|_| spare_or_zeroed(&SPARE_U8, w * h));
    let tile_cols = tile_cols.clamp(1, w.max(1));
    let mut xs = vec![0.0f32; tile_cols];
    let mut ys = vec![0.0f32; tile_cols];
    // The vector kernels index with i32 lanes.
    let kernel = if w * h <= i32::MAX as usize / 2 {
        kernel
    } else {
        Kernel::Scalar
    };
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
                        bilinear_segment(&plane, xs, ys, orow, mrow, kernel);
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

/// Largest plane (in elements of capacity) kept for reuse: 1024 × 1024, at most 5 MiB per
/// thread (image and mask), held until the thread ends. Training augments at 128–512 px;
/// keeping radiograph-sized planes would hold tens of MB in every rayon worker.
const MAX_SPARE_LEN: usize = 1024 * 1024;

thread_local! {
    /// The image plane a transform on this thread replaced last, for the next output.
    static SPARE_F32: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
    /// The mask plane a transform on this thread replaced last.
    static SPARE_U8: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// A buffer of `len` elements with unspecified (but initialised) contents: the plane a
/// transform replaced last on this thread when it has that length, else a new zeroed one.
/// The resampler writes every element. Reusing the plane saves zeroing it and, for planes
/// the allocator maps fresh from the system, the page faults of touching it (together
/// ≈ 0.04 ms of CPU time of a 0.40 ms 512² affine call on the Zen 4 here).
fn spare_or_zeroed<T: Copy + Default>(
    spare: &'static std::thread::LocalKey<RefCell<Vec<T>>>,
    len: usize,
) -> Vec<T> {
    let reused = spare
        .try_with(|s| {
            let mut s = s.try_borrow_mut().ok()?;
            (s.len() == len).then(|| std::mem::take(&mut *s))
        })
        .ok()
        .flatten();
    reused.unwrap_or_else(|| vec![T::default(); len])
}

/// Replaces `image` (and `mask`) by the resampler's output and keeps the old planes for the
/// next call on this thread (see [`spare_or_zeroed`]).
pub(crate) fn replace_planes(
    image: &mut Radiograph,
    mask: Option<&mut Mask>,
    new_image: Radiograph,
    new_mask: Option<Mask>,
) {
    let old = std::mem::replace(image, new_image);
    keep_spare(&SPARE_F32, old.into_raw());
    if let (Some(mask), Some(new_mask)) = (mask, new_mask) {
        let old = std::mem::replace(mask, new_mask);
        keep_spare(&SPARE_U8, old.into_raw());
    }
}

fn keep_spare<T>(spare: &'static std::thread::LocalKey<RefCell<Vec<T>>>, plane: Vec<T>) {
    if plane.capacity() > MAX_SPARE_LEN {
        return;
    }
    // During thread teardown, or re-entered, the plane is simply freed.
    let _ = spare.try_with(|s| {
        if let Ok(mut s) = s.try_borrow_mut() {
            *s = plane;
        }
    });
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
fn bilinear_segment(
    s: &Src,
    xs: &[f32],
    ys: &[f32],
    out: &mut [f32],
    mout: &mut [u8],
    kernel: Kernel,
) {
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: `kernel` names a vector kernel only when the CPU has its features
        // (`best_kernel`) and the plane is small enough for i32 lane indices
        // (`remap_body`).
        match kernel {
            Kernel::Avx512 => return unsafe { avx512::bilinear(s, xs, ys, out, mout) },
            Kernel::Avx2 => return unsafe { avx2::bilinear(s, xs, ys, out, mout) },
            Kernel::Scalar => {}
        }
    }
    let _ = kernel;
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

#[cfg(target_arch = "x86_64")]
mod avx512 {
    //! The bilinear kernel, 16 output pixels per step (used for affine maps, whose taps
    //! follow a straight line through the source). Instead of two 64-bit loads per pixel
    //! and row, a chunk loads windows of the few source rows it touches and picks its taps
    //! from them with lane permutes:
    //! - all 2 × 2 neighbourhoods inside, taps within 16 columns and 8 rows: the windows of
    //!   two rows side by side form one 32-entry table, so one permute serves two rows (with
    //!   prefetches of the rows below, which the next output rows will read);
    //! - inside, taps within 31 columns and 8 rows: one 32-column window per row;
    //! - reflect-101 border, every lane within one reflection: the reflected taps from one
    //!   32-column window per row;
    //!
    //! any other chunk goes to the AVX2 kernel. The arithmetic is the scalar code's,
    //! operation for operation (no FMA), so results are bit-identical.

    use std::arch::x86_64::*;

    use super::{avx2, Border, Src};

    /// Most source rows one chunk may touch on the 32-column path.
    const MAX_ROWS: i32 = 8;

    /// Columns left of lane 0's tap the 32-column window starts (maps that are not
    /// monotonic in x).
    const SLACK: i32 = 2;

    /// # Safety
    /// The CPU must support AVX2 and AVX-512 F, BW, VL and VBMI, and `w * h` must fit in
    /// an `i32` with room for `w`.
    #[target_feature(enable = "avx2,avx512f,avx512bw,avx512vl,avx512vbmi")]
    pub(super) unsafe fn bilinear(
        s: &Src,
        xs: &[f32],
        ys: &[f32],
        out: &mut [f32],
        mout: &mut [u8],
    ) {
        let n = out.len().min(xs.len()).min(ys.len());
        if !mout.is_empty() && mout.len() >= n && !s.mask.is_empty() {
            run::<true>(s, &xs[..n], &ys[..n], &mut out[..n], &mut mout[..n]);
        } else {
            run::<false>(s, &xs[..n], &ys[..n], &mut out[..n], &mut []);
        }
    }

    /// [`bilinear`] over equally long slices (`mout` too when `MASK`).
    ///
    /// # Safety
    /// As for [`bilinear`].
    #[inline]
    #[target_feature(enable = "avx2,avx512f,avx512bw,avx512vl,avx512vbmi")]
    unsafe fn run<const MASK: bool>(
        s: &Src,
        xs: &[f32],
        ys: &[f32],
        out: &mut [f32],
        mout: &mut [u8],
    ) {
        let n = out.len();
        let (w, h) = (s.w as isize, s.h as isize);
        let len = w * h;
        let zero = _mm512_setzero_ps();
        let vwm1 = _mm512_set1_ps(s.w as f32 - 1.0);
        let vhm1 = _mm512_set1_ps(s.h as f32 - 1.0);
        let one = _mm512_set1_epi32(1);
        let fifteen = _mm512_set1_epi32(15);
        let thirty = _mm512_set1_epi32(30);
        let half = _mm512_set1_ps(0.5);
        let img = s.img.as_ptr();
        let msk = s.mask.as_ptr();
        let reflect = matches!(s.border, Border::Reflect);
        let mut i = 0;
        while i + 16 <= n {
            let sx = _mm512_loadu_ps(xs.as_ptr().add(i));
            let sy = _mm512_loadu_ps(ys.as_ptr().add(i));
            let o = out.as_mut_ptr().add(i);
            let mo = if MASK {
                mout.as_mut_ptr().add(i)
            } else {
                std::ptr::null_mut()
            };
            // Ordered comparisons: NaN lanes fail.
            let inside = _mm512_cmp_ps_mask::<_CMP_GE_OQ>(sx, zero)
                & _mm512_cmp_ps_mask::<_CMP_LT_OQ>(sx, vwm1)
                & _mm512_cmp_ps_mask::<_CMP_GE_OQ>(sy, zero)
                & _mm512_cmp_ps_mask::<_CMP_LT_OQ>(sy, vhm1);
            if inside == 0xFFFF {
                // Inside: truncation is floor, and the lower taps are one row further.
                let x0 = _mm512_cvttps_epi32(sx);
                let y0 = _mm512_cvttps_epi32(sy);
                // Upper rows lo ..= hi: those of the first and last lanes (an affine
                // map's extremes), else the real extremes.
                let ya = _mm512_cvtsi512_si32(y0);
                let yb = _mm_extract_epi32::<3>(_mm512_extracti32x4_epi32::<3>(y0));
                let (mut lo, mut hi) = (ya.min(yb), ya.max(yb));
                let mut rel = _mm512_sub_epi32(y0, _mm512_set1_epi32(lo));
                if _mm512_cmple_epu32_mask(rel, _mm512_set1_epi32(hi - lo)) != 0xFFFF {
                    lo = _mm512_reduce_min_epi32(y0);
                    hi = _mm512_reduce_max_epi32(y0);
                    rel = _mm512_sub_epi32(y0, _mm512_set1_epi32(lo));
                }
                // Window origin: lane 0's column, else the leftmost one.
                let mut bx = _mm512_cvtsi512_si32(x0);
                let mut idx = _mm512_sub_epi32(x0, _mm512_set1_epi32(bx));
                if _mm512_cmple_epu32_mask(idx, fifteen) != 0xFFFF {
                    bx = _mm512_reduce_min_epi32(x0);
                    idx = _mm512_sub_epi32(x0, _mm512_set1_epi32(bx));
                }
                let fx = _mm512_sub_ps(sx, _mm512_cvtepi32_ps(x0));
                let fy = _mm512_sub_ps(sy, _mm512_cvtepi32_ps(y0));
                // Rows lo ..= hi + 1 in pairs (lo + 2p, lo + 2p + 1); the windows of the
                // last pair (16 pixels from column bx for the left taps, bx + 1 for the
                // right ones, 32 labels from bx) must end inside the plane (lo and bx are
                // not negative here). They may run into the neighbouring rows, whose pixels
                // no lane selects.
                let pairs = (hi - lo + 3) / 2;
                let first = lo as isize * w + bx as isize;
                let last = (lo + 2 * pairs - 1) as isize * w + bx as isize + 32;
                if _mm512_cmple_epu32_mask(idx, fifteen) == 0xFFFF && last <= len {
                    // The rows the next output rows will read (two below the last one
                    // here), fetched ahead: the windows move down through the source.
                    let ahead = last + 2 * w - 32;
                    if ahead + 32 <= len {
                        _mm_prefetch::<_MM_HINT_T0>(img.offset(ahead).cast());
                        _mm_prefetch::<_MM_HINT_T0>(img.offset(ahead + 16).cast());
                        if MASK {
                            _mm_prefetch::<_MM_HINT_T0>(msk.offset(ahead).cast());
                        }
                    }
                    let c = Chunk {
                        img: img.offset(first),
                        msk: if MASK { msk.offset(first) } else { msk },
                        w,
                        fx,
                        fy,
                        idx,
                        rel,
                        gx: _mm512_cmp_ps_mask::<_CMP_GE_OQ>(fx, half),
                        gy: _mm512_cmp_ps_mask::<_CMP_GE_OQ>(fy, half),
                    };
                    let done = match pairs {
                        1 => {
                            paired::<MASK, 1>(&c, o, mo);
                            true
                        }
                        2 => {
                            paired::<MASK, 2>(&c, o, mo);
                            true
                        }
                        3 => {
                            paired::<MASK, 3>(&c, o, mo);
                            true
                        }
                        4 => {
                            paired::<MASK, 4>(&c, o, mo);
                            true
                        }
                        _ => false,
                    };
                    if done {
                        i += 16;
                        continue;
                    }
                }
                // One 32-column window per row.
                let bx = _mm512_cvtsi512_si32(x0).min(bx + SLACK) - SLACK;
                let idx = _mm512_sub_epi32(x0, _mm512_set1_epi32(bx));
                let first = lo as isize * w + bx as isize;
                let last = (hi as isize + 1) * w + bx as isize + 32;
                if _mm512_cmple_epu32_mask(idx, thirty) == 0xFFFF
                    && hi + 2 - lo <= MAX_ROWS
                    && first >= 0
                    && last <= len
                {
                    let gx = _mm512_cmp_ps_mask::<_CMP_GE_OQ>(fx, half);
                    let gy = _mm512_cmp_ps_mask::<_CMP_GE_OQ>(fy, half);
                    let yn = _mm512_mask_add_epi32(y0, gy, y0, one);
                    let idx1 = _mm512_add_epi32(idx, one);
                    let nidx = _mm256_castsi128_si256(_mm512_cvtepi32_epi8(_mm512_mask_add_epi32(
                        idx, gx, idx, one,
                    )));
                    let (mut a, mut b, mut c, mut d) = (zero, zero, zero, zero);
                    let mut labels = _mm256_setzero_si256();
                    let mut upper: __mmask16 = 0;
                    let mut at = first;
                    for r in lo..=hi + 1 {
                        let vr = _mm512_set1_epi32(r);
                        let p = img.offset(at);
                        let (w0, w1) = (_mm512_loadu_ps(p), _mm512_loadu_ps(p.add(16)));
                        let left = _mm512_permutex2var_ps(w0, idx, w1);
                        let right = _mm512_permutex2var_ps(w0, idx1, w1);
                        // Lanes whose upper row is r, and (from the previous row) those
                        // whose lower row is r.
                        let cur = _mm512_cmpeq_epi32_mask(y0, vr);
                        a = _mm512_mask_mov_ps(a, cur, left);
                        b = _mm512_mask_mov_ps(b, cur, right);
                        c = _mm512_mask_mov_ps(c, upper, left);
                        d = _mm512_mask_mov_ps(d, upper, right);
                        upper = cur;
                        if MASK {
                            let row = _mm256_loadu_si256(msk.offset(at).cast());
                            let near = _mm512_cmpeq_epi32_mask(yn, vr);
                            labels = _mm256_mask_permutexvar_epi8(labels, near as u32, nidx, row);
                        }
                        at += w;
                    }
                    finish::<MASK>(a, b, c, d, fx, fy, labels, o, mo);
                    i += 16;
                    continue;
                }
            }
            if reflect && reflected::<MASK>(s, sx, sy, o, mo) {
                i += 16;
                continue;
            }
            let m: &mut [u8] = if MASK { &mut mout[i..i + 16] } else { &mut [] };
            avx2::bilinear(s, &xs[i..i + 16], &ys[i..i + 16], &mut out[i..i + 16], m);
            i += 16;
        }
        if i < n {
            let m: &mut [u8] = if MASK { &mut mout[i..n] } else { &mut [] };
            avx2::bilinear(s, &xs[i..n], &ys[i..n], &mut out[i..n], m);
        }
    }

    /// One inside chunk for [`paired`]: its window origin (row `lo`, column `bx`), the
    /// taps' columns `idx` (0 ..= 15) and upper rows `rel` from there, the fractions, and
    /// where the nearest label lies (one column right: `gx`, one row down: `gy`).
    struct Chunk {
        img: *const f32,
        msk: *const u8,
        w: isize,
        fx: __m512,
        fy: __m512,
        idx: __m512i,
        rel: __m512i,
        gx: __mmask16,
        gy: __mmask16,
    }

    /// The 16 pixels (and labels) of an inside chunk whose taps lie within 16 columns and
    /// `2 P` rows: entry `k + 16` of a pair's table is column `k` of its second row, so one
    /// permute serves two rows.
    ///
    /// # Safety
    /// As for [`bilinear`]; the windows of `P` row pairs from `c.img` (17 pixels, and 32
    /// labels from `c.msk` when `MASK`) must be inside the planes, `out` (and `mout` when
    /// `MASK`) valid for 16 writes.
    #[inline]
    #[target_feature(enable = "avx2,avx512f,avx512bw,avx512vl,avx512vbmi")]
    unsafe fn paired<const MASK: bool, const P: i32>(c: &Chunk, out: *mut f32, mout: *mut u8) {
        let one = _mm512_set1_epi32(1);
        let sixteen = _mm512_set1_epi32(16);
        let w = c.w;
        let odd = _mm512_test_epi32_mask(c.rel, one);
        let iu = _mm512_mask_add_epi32(c.idx, odd, c.idx, sixteen);
        let il = _mm512_mask_add_epi32(c.idx, !odd, c.idx, sixteen);
        let pair = |at: isize| {
            let p = c.img.offset(at);
            let (l0, l1) = (_mm512_loadu_ps(p), _mm512_loadu_ps(p.offset(w)));
            let (r0, r1) = (_mm512_loadu_ps(p.add(1)), _mm512_loadu_ps(p.offset(w + 1)));
            (
                _mm512_permutex2var_ps(l0, iu, l1),
                _mm512_permutex2var_ps(r0, iu, r1),
                _mm512_permutex2var_ps(l0, il, l1),
                _mm512_permutex2var_ps(r0, il, r1),
            )
        };
        let (mut a, mut b, mut cc, mut d) = pair(0);
        if P > 1 {
            let pu = _mm512_srli_epi32::<1>(c.rel);
            let pl = _mm512_srli_epi32::<1>(_mm512_add_epi32(c.rel, one));
            for p in 1..P {
                let vp = _mm512_set1_epi32(p);
                let (ku, kl) = (
                    _mm512_cmpeq_epi32_mask(pu, vp),
                    _mm512_cmpeq_epi32_mask(pl, vp),
                );
                let (pa, pb, pc, pd) = pair(2 * p as isize * w);
                a = _mm512_mask_mov_ps(a, ku, pa);
                b = _mm512_mask_mov_ps(b, ku, pb);
                cc = _mm512_mask_mov_ps(cc, kl, pc);
                d = _mm512_mask_mov_ps(d, kl, pd);
            }
        }
        let mut labels = _mm256_setzero_si256();
        if MASK {
            // Nearest label: floor + (fraction >= 0.5), the scalar rule.
            let reln = _mm512_mask_add_epi32(c.rel, c.gy, c.rel, one);
            let xn = _mm512_mask_add_epi32(c.idx, c.gx, c.idx, one);
            let nodd = _mm512_test_epi32_mask(reln, one);
            let nidx = _mm256_castsi128_si256(_mm512_cvtepi32_epi8(_mm512_mask_add_epi32(
                xn,
                nodd,
                xn,
                _mm512_set1_epi32(32),
            )));
            let labels_of = |at: isize| {
                let p = c.msk.offset(at);
                let (m0, m1) = (
                    _mm256_loadu_si256(p.cast()),
                    _mm256_loadu_si256(p.offset(w).cast()),
                );
                _mm256_permutex2var_epi8(m0, nidx, m1)
            };
            labels = labels_of(0);
            if P > 1 {
                let pn = _mm512_srli_epi32::<1>(reln);
                for p in 1..P {
                    let kn = _mm512_cmpeq_epi32_mask(pn, _mm512_set1_epi32(p));
                    labels = _mm256_mask_mov_epi8(labels, kn as u32, labels_of(2 * p as isize * w));
                }
            }
        }
        finish::<MASK>(a, b, cc, d, c.fx, c.fy, labels, out, mout);
    }

    /// Interpolate from the taps (the scalar code's operations) and store the 16 pixels
    /// (and labels when `MASK`).
    ///
    /// # Safety
    /// `out` (and `mout` when `MASK`) valid for 16 writes; AVX-512 as for [`bilinear`].
    #[allow(clippy::too_many_arguments)]
    #[inline]
    #[target_feature(enable = "avx2,avx512f,avx512bw,avx512vl,avx512vbmi")]
    unsafe fn finish<const MASK: bool>(
        a: __m512,
        b: __m512,
        c: __m512,
        d: __m512,
        fx: __m512,
        fy: __m512,
        labels: __m256i,
        out: *mut f32,
        mout: *mut u8,
    ) {
        let top = _mm512_add_ps(a, _mm512_mul_ps(fx, _mm512_sub_ps(b, a)));
        let bot = _mm512_add_ps(c, _mm512_mul_ps(fx, _mm512_sub_ps(d, c)));
        let v = _mm512_add_ps(top, _mm512_mul_ps(fy, _mm512_sub_ps(bot, top)));
        _mm512_storeu_ps(out, v);
        if MASK {
            _mm_storeu_si128(mout.cast(), _mm256_castsi256_si128(labels));
        }
    }

    /// `n1 - |n1 - |i||` with `n1 = n - 1`: reflect-101, exact within one reflection.
    #[inline]
    #[target_feature(enable = "avx2,avx512f,avx512bw,avx512vl,avx512vbmi")]
    unsafe fn reflect(i: __m512i, n1: __m512i) -> __m512i {
        _mm512_sub_epi32(
            n1,
            _mm512_abs_epi32(_mm512_sub_epi32(n1, _mm512_abs_epi32(i))),
        )
    }

    /// A chunk of 16 that reaches beyond the image under the reflect-101 border, every lane
    /// within one reflection (the AVX2 kernel's gather tier, same operations): reflected
    /// taps picked from one 32-column window per source row. Writes the 16 pixels (and
    /// labels when `MASK`) and returns true, or returns false without writing
    /// when the taps spread too far.
    ///
    /// # Safety
    /// As for [`bilinear`]; `out` (and `mout` when `MASK`) must be valid for 16 writes.
    #[inline]
    #[target_feature(enable = "avx2,avx512f,avx512bw,avx512vl,avx512vbmi")]
    unsafe fn reflected<const MASK: bool>(
        s: &Src,
        sx: __m512,
        sy: __m512,
        out: *mut f32,
        mout: *mut u8,
    ) -> bool {
        let (wf, hf) = (s.w as f32, s.h as f32);
        // Ordered comparisons: NaN lanes fail.
        let ok = _mm512_cmp_ps_mask::<_CMP_GE_OQ>(sx, _mm512_set1_ps(1.0 - wf))
            & _mm512_cmp_ps_mask::<_CMP_LT_OQ>(sx, _mm512_set1_ps(2.0 * wf - 2.0))
            & _mm512_cmp_ps_mask::<_CMP_GE_OQ>(sy, _mm512_set1_ps(1.0 - hf))
            & _mm512_cmp_ps_mask::<_CMP_LT_OQ>(sy, _mm512_set1_ps(2.0 * hf - 2.0));
        if ok != 0xFFFF {
            return false;
        }
        const FLOOR: i32 = _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC;
        let flx = _mm512_roundscale_ps::<FLOOR>(sx);
        let fly = _mm512_roundscale_ps::<FLOOR>(sy);
        let fx = _mm512_sub_ps(sx, flx);
        let fy = _mm512_sub_ps(sy, fly);
        let x0 = _mm512_cvtps_epi32(flx);
        let y0 = _mm512_cvtps_epi32(fly);
        let one = _mm512_set1_epi32(1);
        let wm1 = _mm512_set1_epi32(s.w as i32 - 1);
        let hm1 = _mm512_set1_epi32(s.h as i32 - 1);
        let xa = reflect(x0, wm1);
        let xb = reflect(_mm512_add_epi32(x0, one), wm1);
        let ra = reflect(y0, hm1);
        let rb = reflect(_mm512_add_epi32(y0, one), hm1);
        let bx = _mm512_reduce_min_epi32(_mm512_min_epi32(xa, xb));
        let ia = _mm512_sub_epi32(xa, _mm512_set1_epi32(bx));
        let ib = _mm512_sub_epi32(xb, _mm512_set1_epi32(bx));
        let lo = _mm512_reduce_min_epi32(_mm512_min_epi32(ra, rb));
        let hi = _mm512_reduce_max_epi32(_mm512_max_epi32(ra, rb));
        let w = s.w as isize;
        if _mm512_cmple_epu32_mask(_mm512_max_epu32(ia, ib), _mm512_set1_epi32(31)) != 0xFFFF
            || hi + 1 - lo > MAX_ROWS
            || hi as isize * w + bx as isize + 32 > (s.w * s.h) as isize
        {
            return false;
        }
        let half = _mm512_set1_ps(0.5);
        let gx = _mm512_cmp_ps_mask::<_CMP_GE_OQ>(fx, half);
        let gy = _mm512_cmp_ps_mask::<_CMP_GE_OQ>(fy, half);
        let rn = _mm512_mask_blend_epi32(gy, ra, rb);
        let nidx =
            _mm256_castsi128_si256(_mm512_cvtepi32_epi8(_mm512_mask_blend_epi32(gx, ia, ib)));
        let zero = _mm512_setzero_ps();
        let (mut a, mut b, mut c, mut d) = (zero, zero, zero, zero);
        let mut labels = _mm256_setzero_si256();
        let mut at = lo as isize * w + bx as isize;
        for r in lo..=hi {
            let vr = _mm512_set1_epi32(r);
            let p = s.img.as_ptr().offset(at);
            let (w0, w1) = (_mm512_loadu_ps(p), _mm512_loadu_ps(p.add(16)));
            let left = _mm512_permutex2var_ps(w0, ia, w1);
            let right = _mm512_permutex2var_ps(w0, ib, w1);
            let (ku, kl) = (
                _mm512_cmpeq_epi32_mask(ra, vr),
                _mm512_cmpeq_epi32_mask(rb, vr),
            );
            a = _mm512_mask_mov_ps(a, ku, left);
            b = _mm512_mask_mov_ps(b, ku, right);
            c = _mm512_mask_mov_ps(c, kl, left);
            d = _mm512_mask_mov_ps(d, kl, right);
            if MASK {
                let row = _mm256_loadu_si256(s.mask.as_ptr().offset(at).cast());
                let kn = _mm512_cmpeq_epi32_mask(rn, vr);
                labels = _mm256_mask_permutexvar_epi8(labels, kn as u32, nidx, row);
            }
            at += w;
        }
        finish::<MASK>(a, b, c, d, fx, fy, labels, out, mout);
        true
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

    /// Leaves planes of `len` elements holding garbage (NaN, label 77) as this thread's
    /// spares, so that a resampler that skipped an output pixel would show it.
    fn poison_spares(len: usize) {
        keep_spare(&SPARE_F32, vec![f32::NAN; len]);
        keep_spare(&SPARE_U8, vec![77u8; len]);
    }

    /// The planes a transform replaces are reused for the next output of that size on the
    /// same thread, and only then.
    #[test]
    fn replaced_planes_are_reused_for_the_next_output() {
        let (img, mask) = plane(9, 5);
        let (mut a, mut m) = (img.clone(), mask.clone());
        let (old_img, old_mask) = (a.as_raw().as_ptr(), m.as_raw().as_ptr());
        let (ni, nm) = remap(
            &a,
            Some(&m),
            Interpolation::Bilinear,
            Border::Reflect,
            64,
            |y, x0, xs, ys| {
                for (x, (sx, sy)) in (x0..).zip(xs.iter_mut().zip(ys.iter_mut())) {
                    (*sx, *sy) = (x as f32 + 0.25, y as f32);
                }
            },
        );
        replace_planes(&mut a, Some(&mut m), ni, nm);
        assert_eq!(
            spare_or_zeroed(&SPARE_F32, 44),
            vec![0.0f32; 44],
            "other sizes start zeroed"
        );
        let f = spare_or_zeroed(&SPARE_F32, 45);
        let u = spare_or_zeroed(&SPARE_U8, 45);
        assert_eq!((f.as_ptr(), u.as_ptr()), (old_img, old_mask));
        assert_eq!(
            (&f[..], &u[..]),
            (img.as_raw().as_slice(), mask.as_raw().as_slice())
        );
        // Taken once: the next request of that size gets a new zeroed plane.
        assert!(spare_or_zeroed(&SPARE_F32, 45).iter().all(|&v| v == 0.0));
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
        let kernels = match best_kernel() {
            Kernel::Scalar => vec![Kernel::Scalar],
            Kernel::Avx2 => vec![Kernel::Scalar, Kernel::Avx2],
            Kernel::Avx512 => vec![Kernel::Scalar, Kernel::Avx2, Kernel::Avx512],
        };
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
                            for &kernel in &kernels {
                                for tile in [1usize, 5, 64, usize::MAX] {
                                    poison_spares(wu * hu);
                                    let (fi, fm) = remap_with(
                                        &img,
                                        m,
                                        interp,
                                        border,
                                        tile,
                                        kernel,
                                        |y, x0, xs, ys| {
                                            for (x, (sx, sy)) in
                                                (x0..).zip(xs.iter_mut().zip(ys.iter_mut()))
                                            {
                                                (*sx, *sy) = map(kind, wu, hu, x, y);
                                            }
                                        },
                                    );
                                    let what = format!(
                                        "{w}x{h} kind {kind} {border:?} {interp:?} mask {with_mask} {kernel:?} tile {tile}"
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

    /// Affine maps like XNet's augmentation (±15° rotation, ±2° shear, ±1 % translation)
    /// and wider ones (rotation to ±40°, scale 0.8 to 1.25), computed as the affine
    /// transform computes them (row origin in f64, then one f32 multiply-add per pixel):
    /// every kernel this CPU has reproduces the reference bit for bit on them, image and
    /// mask, both borders. These maps take the AVX-512 kernel's paired-row path with one to
    /// four row pairs, its 32-column path and its reflected path.
    #[test]
    fn affine_maps_match_the_reference_exactly() {
        let kernels = match best_kernel() {
            Kernel::Scalar => vec![Kernel::Scalar],
            Kernel::Avx2 => vec![Kernel::Scalar, Kernel::Avx2],
            Kernel::Avx512 => vec![Kernel::Scalar, Kernel::Avx2, Kernel::Avx512],
        };
        let borders = [
            Border::Reflect,
            Border::Constant {
                value: 0.25,
                mask_value: 9,
            },
        ];
        // (rotation °, shear °, scale, translation as a fraction of the size)
        let maps = [
            (14.7f64, 1.9f64, 1.0f64, [0.01f64, -0.008f64]),
            (-15.0, -2.0, 1.0, [-0.01, 0.01]),
            (3.3, 0.4, 1.0, [0.004, 0.002]),
            (-0.6, 1.1, 1.0, [-0.0071, 0.0093]),
            (8.1, -1.3, 1.0, [0.0, 0.0]),
            (-11.2, 0.0, 1.0, [0.0097, -0.0031]),
            (37.0, 5.0, 1.25, [0.03, -0.02]),
            (-40.0, -3.0, 0.8, [-0.05, 0.04]),
        ];
        for (w, h) in [(300u32, 200u32), (97, 131)] {
            let (img, mask) = plane(w, h);
            let (wf, hf) = (w as f64, h as f64);
            let (cx, cy) = ((wf - 1.0) / 2.0, (hf - 1.0) / 2.0);
            for (rot, shear, scale, t) in maps {
                let (sn, cs) = rot.to_radians().sin_cos();
                let sh = shear.to_radians().tan();
                let (a11, a12) = (scale * cs, scale * (cs * sh + sn));
                let (a21, a22) = (-scale * sn, scale * (-sn * sh + cs));
                let det = a11 * a22 - a12 * a21;
                let (i11, i12, i21, i22) = (a22 / det, -a12 / det, -a21 / det, a11 / det);
                let (tx, ty) = (t[0] * wf, t[1] * hf);
                let coords = |y: usize, x0: usize, xs: &mut [f32], ys: &mut [f32]| {
                    let dy = y as f64 - cy - ty;
                    let ox = -cx - tx;
                    let bx = (i11 * ox + i12 * dy + cx) as f32;
                    let by = (i21 * ox + i22 * dy + cy) as f32;
                    let (ax, ay) = (i11 as f32, i21 as f32);
                    for (x, (sx, sy)) in (x0 as i32..).zip(xs.iter_mut().zip(ys.iter_mut())) {
                        *sx = bx + ax * x as f32;
                        *sy = by + ay * x as f32;
                    }
                };
                for border in borders {
                    let (ri, rm) = remap_reference(
                        &img,
                        Some(&mask),
                        Interpolation::Bilinear,
                        border,
                        |y, xs, ys| coords(y, 0, xs, ys),
                    );
                    for &kernel in &kernels {
                        for tile in [AFFINE_TILE_COLS, 64] {
                            poison_spares((w * h) as usize);
                            let (fi, fm) = remap_with(
                                &img,
                                Some(&mask),
                                Interpolation::Bilinear,
                                border,
                                tile,
                                kernel,
                                coords,
                            );
                            let what = format!(
                                "{w}x{h} rotate {rot} shear {shear} scale {scale} {border:?} {kernel:?} tile {tile}"
                            );
                            for (k, (a, b)) in ri.as_raw().iter().zip(fi.as_raw()).enumerate() {
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
