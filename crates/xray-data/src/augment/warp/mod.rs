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
mod avx2;

#[cfg(target_arch = "x86_64")]
mod avx512;

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
mod tests;
