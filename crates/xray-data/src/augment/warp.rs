//! Resampling of an image and its mask through a coordinate map (the engine behind
//! affine, crop-and-resize and elastic transforms).
//!
//! Coordinates are pixel indices: pixel `(x, y)` has its centre at `(x, y)`. For each output
//! row the caller fills the source coordinates of every output pixel; the image is sampled
//! with the chosen [`Interpolation`] and the mask always with nearest neighbour, so labels
//! stay in the label set.

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

/// Resample `image` (and `mask` if given) into new buffers of the same size. `coords(y, xs,
/// ys)` must fill the source x and y coordinates of output row `y`.
pub(crate) fn remap<F>(
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
            // The common case, fused: one coordinate decode serves image and mask.
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
    let img = Radiograph::from_raw(w as u32, h as u32, out).unwrap_or_else(|| image.clone());
    let m = match (mask, mout) {
        (Some(m0), Some(mo)) => {
            Some(Mask::from_raw(w as u32, h as u32, mo).unwrap_or_else(|| m0.clone()))
        }
        _ => None,
    };
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

/// Bilinear image and nearest mask in one pass. In the fast path the nearest pixel is the
/// bilinear corner rounded by the fractions (`floor(s + 0.5) = floor(s) + (frac >= 0.5)`),
/// so both use one conversion.
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
            nearest_row_u8(msrc, w, h, &[sx], &[sy], border, std::slice::from_mut(m));
        }
    }
}

#[cold]
fn bilinear_slow(src: &[f32], w: usize, h: usize, sx: f32, sy: f32, border: Border) -> f32 {
    if !(sx.is_finite() && sy.is_finite()) {
        return border_value(border);
    }
    let x0f = sx.floor();
    let y0f = sy.floor();
    let (fx, fy) = (sx - x0f, sy - y0f);
    let (x0, y0) = (x0f as isize, y0f as isize);
    let a = fetch(src, w, h, x0, y0, border);
    if fx == 0.0 && fy == 0.0 {
        return a;
    }
    let b = fetch(src, w, h, x0 + 1, y0, border);
    let c = fetch(src, w, h, x0, y0 + 1, border);
    let d = fetch(src, w, h, x0 + 1, y0 + 1, border);
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

    #[test]
    fn bilinear_half_pixel_is_mean() {
        let img = Radiograph::from_raw(2, 2, vec![0.0, 2.0, 4.0, 6.0]).unwrap();
        let (o, _) = remap(
            &img,
            None,
            Interpolation::Bilinear,
            Border::Reflect,
            |_, xs, ys| {
                xs.fill(0.5);
                ys.fill(0.5);
            },
        );
        assert!(o.as_raw().iter().all(|&v| (v - 3.0).abs() < 1e-6));
    }
}
