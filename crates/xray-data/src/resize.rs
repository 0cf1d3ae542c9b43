//! Resizing images (area, bilinear) and masks (nearest).
//!
//! Pixel centres are aligned (`align_corners = false` in PyTorch terms): output pixel `x`
//! covers input `[x·s, (x+1)·s)` with `s = in / out`.
//!
//! Sizes are bounded by [`crate::io::DEFAULT_MAX_PIXELS`] (100 megapixels, the loaders'
//! default limit): an output, or the intermediate plane of [`resize`] (input height ×
//! output width), may hold at most that many pixels or as many as the input, whichever is
//! more. A larger request (`100 000 × 100 000` from a 2 × 2 image would allocate 40 GB and
//! abort) is an error; shrinking, or resizing to the input's own size, never is.

use crate::{DataError, Mask, Radiograph, Result};

/// The interpolation used by [`resize`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Filter {
    /// Exact area averaging: every output pixel is the mean of the input area it covers,
    /// weighted by overlap (OpenCV `INTER_AREA` for shrinking; PyTorch `adaptive_avg_pool2d`
    /// for integer factors). The right choice for shrinking: no aliasing.
    #[default]
    Area,
    /// Bilinear interpolation between the four nearest input pixel centres, borders
    /// clamped (PyTorch `interpolate(mode="bilinear", align_corners=False)` without
    /// antialiasing).
    Bilinear,
}

fn check(w_in: u32, h_in: u32, w: u32, h: u32) -> Result<()> {
    if w_in == 0 || h_in == 0 || w == 0 || h == 0 {
        return Err(DataError::InvalidParameter(format!(
            "cannot resize {w_in}x{h_in} to {w}x{h}: sizes must be non-zero"
        )));
    }
    let limit = crate::io::DEFAULT_MAX_PIXELS.max(u64::from(w_in) * u64::from(h_in));
    if u64::from(w) * u64::from(h) > limit {
        return Err(DataError::InvalidParameter(format!(
            "cannot resize {w_in}x{h_in} to {w}x{h}: the output would exceed the limit of \
             {limit} pixels"
        )));
    }
    Ok(())
}

/// [`check`], plus the intermediate plane of the separable resampling (input height ×
/// output width) against the same limit.
fn check_separable(w_in: u32, h_in: u32, w: u32, h: u32) -> Result<()> {
    check(w_in, h_in, w, h)?;
    let limit = crate::io::DEFAULT_MAX_PIXELS.max(u64::from(w_in) * u64::from(h_in));
    if u64::from(h_in) * u64::from(w) > limit {
        return Err(DataError::InvalidParameter(format!(
            "cannot resize {w_in}x{h_in} to {w}x{h}: the intermediate {w}x{h_in} plane would \
             exceed the limit of {limit} pixels"
        )));
    }
    Ok(())
}

/// Resizes a radiograph to `width × height` with `filter`.
///
/// Sums run in `f32`. Where one overflows, which values near `f32::MAX` can do although
/// their mean is finite, the image is redone in `f64`, so a finite image always resizes to
/// a finite one.
///
/// # Shapes
/// `width`, then `height` ([image order](crate#sizes)), of the output.
///
/// # Errors
/// [`DataError::InvalidParameter`] for a zero input or output size, or one above the limit
/// of the [module docs](self) (the output, or input height × output width, above
/// [`crate::io::DEFAULT_MAX_PIXELS`] and above the input's own pixel count).
///
/// # Examples
/// ```
/// use xray_data::resize::{resize, Filter};
/// let img = xray_data::Radiograph::from_raw(2, 2, vec![0.0, 2.0, 4.0, 6.0]).unwrap();
/// let one = resize(&img, 1, 1, Filter::Area).unwrap();
/// assert_eq!(one.as_raw(), &vec![3.0]);
/// ```
pub fn resize(img: &Radiograph, width: u32, height: u32, filter: Filter) -> Result<Radiograph> {
    let (w_in, h_in) = img.dimensions();
    check_separable(w_in, h_in, width, height)?;
    if (w_in, h_in) == (width, height) {
        return Ok(img.clone());
    }
    let src = img.as_raw();
    let mut data = separable::<f32>(src, w_in, h_in, width, height, filter);
    // Weights such as 0.1 round up in f32, so an f32 weighted sum of values near f32::MAX
    // can overflow although the mean is finite. Only then (the check is one pass over the
    // output) is the image redone in f64, where the sums cannot overflow and the means
    // round back into f32 range; ordinary images keep the f32 results bit for bit.
    if data.iter().any(|v| !v.is_finite()) {
        data = separable::<f64>(src, w_in, h_in, width, height, filter);
    }
    Radiograph::from_raw(width, height, data)
        .ok_or_else(|| DataError::InvalidParameter("resize produced a wrong-sized buffer".into()))
}

/// Resizes a label mask with nearest-neighbour sampling at pixel centres
/// (`src = floor((dst + 0.5) · in / out)`, PyTorch's `nearest-exact`), so labels are never
/// mixed.
///
/// # Shapes
/// `width`, then `height` ([image order](crate#sizes)), of the output.
///
/// # Errors
/// [`DataError::InvalidParameter`] for a zero input or output size, or an output above
/// [`crate::io::DEFAULT_MAX_PIXELS`] that is also larger than the input.
///
/// # Examples
/// ```
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use xray_data::resize::resize_mask;
/// let mask = xray_data::Mask::from_raw(2, 1, vec![1, 2]).ok_or("2 labels")?;
/// let up = resize_mask(&mask, 4, 2)?;
/// assert_eq!(up.as_raw(), &vec![1, 1, 2, 2, 1, 1, 2, 2]);
/// // Halving picks input pixels 1 and 3 (the centres of 0..2 and 2..4), never a blend.
/// let row = xray_data::Mask::from_raw(4, 1, vec![0, 1, 2, 255]).ok_or("4 labels")?;
/// assert_eq!(resize_mask(&row, 2, 1)?.as_raw(), &vec![1, 255]);
/// assert!(resize_mask(&row, 0, 1).is_err());
/// # Ok(())
/// # }
/// ```
pub fn resize_mask(mask: &Mask, width: u32, height: u32) -> Result<Mask> {
    let (w_in, h_in) = mask.dimensions();
    check(w_in, h_in, width, height)?;
    let xs: Vec<u32> = (0..width).map(|x| nearest(x, w_in, width)).collect();
    let mut out = Mask::new(width, height);
    for y in 0..height {
        let sy = nearest(y, h_in, height);
        for (x, &sx) in xs.iter().enumerate() {
            out.put_pixel(x as u32, y, *mask.get_pixel(sx, sy));
        }
    }
    Ok(out)
}

/// Resizes class-major probabilities, `classes` planes of `from_w × from_h` (a network's
/// softmax output at its input size), to `to_w × to_h` with [`Filter::Bilinear`], plane by
/// plane, then divides each output pixel's values by their sum so that they still sum to one
/// (a pixel whose values sum to 0 is left at 0); at the same size the map comes back as it
/// is. A convex combination of each class's values, so a pixel's values stay in `[0, 1]`;
/// the values themselves are not checked.
///
/// This is the step that brings probabilities computed on a radiograph shrunk to the
/// network input (a checkpoint's `metadata.preprocess`, see xnet-model's crate docs) back
/// to the radiograph's own size, as the workspace's `xray_seg::predict::Predictor` does.
///
/// # Shapes
/// `probs` is class-major, `classes × height × width`, but its sizes are `(width, height)` pairs
/// ([image order](crate#sizes), as [`resize`] beside it), not tensor order: the one exception to
/// the crate's [size order](crate#sizes), kept because reordering two `u32`s would break callers
/// silently.
///
/// # Errors
/// [`DataError::InvalidParameter`] for no classes, a `probs` length other than
/// `classes × from_w × from_h`, a zero size, or an output above the limit of the
/// [module docs](self).
///
/// # Examples
/// ```
/// use xray_data::resize::resize_probabilities;
/// // Two classes on 2 × 1 pixels: the left pixel is class 0, the right one class 1.
/// let probs = [1.0, 0.0, /* class 1 */ 0.0, 1.0];
/// let out = resize_probabilities(&probs, 2, (2, 1), (4, 2))?;
/// assert_eq!(out.len(), 2 * 4 * 2);
/// let plane = 4 * 2;
/// for i in 0..plane {
///     assert!((out[i] + out[plane + i] - 1.0).abs() < 1e-6); // still sums to one
/// }
/// assert!(out[0] > out[plane] && out[3] < out[plane + 3]); // left class 0, right class 1
/// // Three classes do not fit four values.
/// assert!(resize_probabilities(&probs, 3, (2, 1), (4, 2)).is_err());
/// # Ok::<(), xray_data::DataError>(())
/// ```
pub fn resize_probabilities(
    probs: &[f32],
    classes: usize,
    (from_w, from_h): (u32, u32),
    (to_w, to_h): (u32, u32),
) -> Result<Vec<f32>> {
    let plane = from_w as usize * from_h as usize;
    if classes == 0 || classes.checked_mul(plane) != Some(probs.len()) {
        return Err(DataError::InvalidParameter(format!(
            "probabilities hold {} values, expected {classes} classes x {from_w} x {from_h} \
             (class-major planes)",
            probs.len()
        )));
    }
    check_separable(from_w, from_h, to_w, to_h)?;
    if (from_w, from_h) == (to_w, to_h) {
        return Ok(probs.to_vec());
    }
    let out_plane = to_w as usize * to_h as usize;
    let mut out = Vec::with_capacity(classes * out_plane);
    for class_plane in probs.chunks_exact(plane) {
        let p = Radiograph::from_raw(from_w, from_h, class_plane.to_vec()).ok_or_else(|| {
            DataError::InvalidParameter("probability plane of the wrong size".into())
        })?;
        out.extend_from_slice(resize(&p, to_w, to_h, Filter::Bilinear)?.as_raw());
    }
    for i in 0..out_plane {
        let sum: f32 = (0..classes).map(|c| out[c * out_plane + i]).sum();
        if sum > 0.0 {
            for c in 0..classes {
                out[c * out_plane + i] /= sum;
            }
        }
    }
    Ok(out)
}

fn nearest(dst: u32, n_in: u32, n_out: u32) -> u32 {
    let s = ((u64::from(dst) * 2 + 1) * u64::from(n_in)) / (2 * u64::from(n_out));
    (s as u32).min(n_in - 1)
}

/// The arithmetic of a resampling pass: `f32`, the fast path, or `f64`, the fallback where
/// an `f32` sum overflows.
trait Accumulator:
    Copy
    + PartialOrd
    + std::iter::Sum
    + std::ops::Add<Output = Self>
    + std::ops::Sub<Output = Self>
    + std::ops::Mul<Output = Self>
{
    const ZERO: Self;
    const ONE: Self;
    fn from_f64(v: f64) -> Self;
    fn from_f32(v: f32) -> Self;
    fn into_f32(plane: Vec<Self>) -> Vec<f32>;
}

impl Accumulator for f32 {
    const ZERO: Self = 0.0;
    const ONE: Self = 1.0;
    fn from_f64(v: f64) -> Self {
        v as f32
    }
    fn from_f32(v: f32) -> Self {
        v
    }
    fn into_f32(plane: Vec<Self>) -> Vec<f32> {
        plane
    }
}

impl Accumulator for f64 {
    const ZERO: Self = 0.0;
    const ONE: Self = 1.0;
    fn from_f64(v: f64) -> Self {
        v
    }
    fn from_f32(v: f32) -> Self {
        f64::from(v)
    }
    fn into_f32(plane: Vec<Self>) -> Vec<f32> {
        plane.into_iter().map(|v| v as f32).collect()
    }
}

/// Sparse 1-D resampling weights: for each output index, `(first input index, weights)`.
type Weights<T> = Vec<(usize, Vec<T>)>;

fn area_weights<T: Accumulator>(n_in: u32, n_out: u32) -> Weights<T> {
    let scale = f64::from(n_in) / f64::from(n_out);
    (0..n_out)
        .map(|o| {
            let start = f64::from(o) * scale;
            let end = start + scale;
            let first = start.floor() as usize;
            let last = (end.ceil() as usize).min(n_in as usize);
            let ws: Vec<T> = (first..last)
                .map(|i| {
                    let overlap = end.min(i as f64 + 1.0) - start.max(i as f64);
                    T::from_f64(overlap.max(0.0) / scale)
                })
                .collect();
            (first, ws)
        })
        .collect()
}

fn bilinear_weights<T: Accumulator>(n_in: u32, n_out: u32) -> Weights<T> {
    let scale = f64::from(n_in) / f64::from(n_out);
    let max = f64::from(n_in - 1);
    (0..n_out)
        .map(|o| {
            let src = ((f64::from(o) + 0.5) * scale - 0.5).clamp(0.0, max);
            let i0 = src.floor() as usize;
            let t = T::from_f64(src - i0 as f64);
            if i0 + 1 < n_in as usize && t > T::ZERO {
                (i0, vec![T::ONE - t, t])
            } else {
                (i0, vec![T::ONE])
            }
        })
        .collect()
}

/// Applies the filter's 1-D weights along rows, then along columns, in `T` arithmetic.
fn separable<T: Accumulator>(
    src: &[f32],
    w_in: u32,
    h_in: u32,
    w: u32,
    h: u32,
    filter: Filter,
) -> Vec<f32> {
    let weights: fn(u32, u32) -> Weights<T> = match filter {
        Filter::Area => area_weights,
        Filter::Bilinear => bilinear_weights,
    };
    let wx = weights(w_in, w);
    let wy = weights(h_in, h);
    let (w_in, h_in, w, h) = (w_in as usize, h_in as usize, w as usize, h as usize);
    // Horizontal pass: h_in × w.
    let mut tmp = vec![T::ZERO; h_in * w];
    for (row_in, row_out) in src.chunks_exact(w_in).zip(tmp.chunks_exact_mut(w)) {
        for (o, (first, ws)) in row_out.iter_mut().zip(&wx) {
            *o = ws
                .iter()
                .zip(&row_in[*first..])
                .map(|(&a, &b)| a * T::from_f32(b))
                .sum();
        }
    }
    // Vertical pass: h × w, accumulating whole rows for cache-friendly access.
    let mut out = vec![T::ZERO; h * w];
    for (row_out, (first, ws)) in out.chunks_exact_mut(w).zip(&wy) {
        for (k, &wgt) in ws.iter().enumerate() {
            let row_in = &tmp[(first + k) * w..(first + k + 1) * w];
            row_out
                .iter_mut()
                .zip(row_in)
                .for_each(|(o, &v)| *o = *o + wgt * v);
        }
    }
    T::into_f32(out)
}
