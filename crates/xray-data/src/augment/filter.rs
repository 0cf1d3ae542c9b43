//! Separable Gaussian filtering of `f32` planes (used by blur, elastic fields and the
//! synthetic physics).
//!
//! The inner loops run over whole rows (`out[x] += w * src[x + j]`), which the compiler
//! vectorises; borders are handled once per row by padding, so no per-pixel bounds logic.

use crate::error::readable_number;
use crate::{DataError, Result};

/// Index reflection without repeating the edge sample (`dcb|abcd|cba`, OpenCV's
/// `BORDER_REFLECT_101`), valid for any offset, also far outside `0..n`.
#[inline]
pub(crate) fn reflect101(i: isize, n: usize) -> usize {
    if n <= 1 {
        return 0;
    }
    let n = n as isize;
    // Filters and interpolation taps reach at most one reflection away; only farther
    // indices pay for the modulo (an integer division).
    if i >= 0 && i < n {
        return i as usize;
    }
    if i < 0 && i > -n {
        return (-i) as usize;
    }
    if i >= n && i < 2 * n - 1 {
        return (2 * n - 2 - i) as usize;
    }
    let period = 2 * n - 2;
    let mut m = i.rem_euclid(period);
    if m >= n {
        m = period - m;
    }
    m as usize
}

/// The largest kernel radius (taps either side of the centre) [`gaussian_kernel`] and
/// [`gaussian_blur`] build: 65 536, far above what any setting of this crate asks for (σ is
/// at most 1000 pixels, a radius of 3000 at 3σ).
///
/// A wider kernel cannot be cut down to the plane instead: borders reflect (`dcb|abcd|cba`,
/// OpenCV's `BORDER_REFLECT_101`), so taps beyond the plane fold back onto it and still
/// change the result.
pub const MAX_KERNEL_RADIUS: usize = 1 << 16;

/// Normalised 1-D Gaussian kernel of standard deviation `sigma` (pixels), truncated at
/// `truncate` standard deviations (at least one tap either side): `2r + 1` taps with
/// `r = max(1, ⌈truncate · σ⌉)`.
///
/// # Errors
/// [`DataError::InvalidParameter`] when `sigma` is not finite and positive (zero or NaN
/// gave NaN taps), `truncate` is not finite and non-negative, or the radius exceeds
/// [`MAX_KERNEL_RADIUS`] (σ = 1e30 overflowed computing it).
///
/// # Examples
/// ```
/// use xray_data::augment::filter::gaussian_kernel;
/// let k = gaussian_kernel(1.0, 3.0)?;
/// assert_eq!(k.len(), 7);
/// assert!((k.iter().sum::<f32>() - 1.0).abs() < 1e-6);
/// assert!(gaussian_kernel(0.0, 3.0).is_err());
/// assert!(gaussian_kernel(1e30, 3.0).is_err());
/// # Ok::<(), xray_data::DataError>(())
/// ```
pub fn gaussian_kernel(sigma: f32, truncate: f32) -> Result<Vec<f32>> {
    if !(sigma.is_finite() && sigma > 0.0) {
        return Err(DataError::InvalidParameter(format!(
            "Gaussian kernel sigma must be finite and positive, got {}",
            readable_number(sigma)
        )));
    }
    if !(truncate.is_finite() && truncate >= 0.0) {
        return Err(DataError::InvalidParameter(format!(
            "Gaussian kernel truncate must be finite and non-negative, got {}",
            readable_number(truncate)
        )));
    }
    // The radius as before (in f32; finite factors, so at worst +inf), checked before it
    // sizes anything.
    let reach = (truncate * sigma).ceil();
    if reach > MAX_KERNEL_RADIUS as f32 {
        return Err(DataError::InvalidParameter(format!(
            "Gaussian kernel of sigma {} truncated at {} standard deviations needs a radius \
             of {} taps, above the limit of {MAX_KERNEL_RADIUS}",
            readable_number(sigma),
            readable_number(truncate),
            readable_number(reach)
        )));
    }
    let radius = (reach as usize).max(1);
    let s2 = 2.0 * (sigma as f64) * (sigma as f64);
    let mut k: Vec<f64> = (0..=2 * radius)
        .map(|i| {
            let d = i as f64 - radius as f64;
            (-d * d / s2).exp()
        })
        .collect();
    let sum: f64 = k.iter().sum();
    k.iter_mut().for_each(|v| *v /= sum);
    Ok(k.into_iter().map(|v| v as f32).collect())
}

/// Blur a `width × height` row-major plane in place with a Gaussian of standard deviation
/// `sigma` pixels (truncated at 3σ), reflecting at the borders. `sigma <= 0` (and an empty
/// plane) leaves the plane unchanged.
///
/// # Shapes
/// `width`, then `height` ([image order](crate#sizes)): `data` is `height` rows of `width` values.
///
/// # Errors
/// [`DataError::InvalidParameter`], the plane left unchanged, when `sigma` is NaN or
/// infinite, its kernel radius `⌈3σ⌉` exceeds [`MAX_KERNEL_RADIUS`] (σ = 1e12 on a 4 × 4
/// plane tried to allocate 48 TB), or `data.len() != width * height`.
///
/// # Examples
/// ```
/// let mut plane = vec![0.0f32; 81];
/// plane[40] = 1.0; // centre of a 9 × 9 plane, away from the borders
/// xray_data::augment::filter::gaussian_blur(&mut plane, 9, 9, 0.8)?;
/// let sum: f32 = plane.iter().sum();
/// assert!((sum - 1.0).abs() < 1e-5);
/// assert!(plane[40] > plane[39] && plane[39] > plane[38]);
/// assert!(xray_data::augment::filter::gaussian_blur(&mut plane, 9, 9, f32::NAN).is_err());
/// # Ok::<(), xray_data::DataError>(())
/// ```
pub fn gaussian_blur(data: &mut [f32], width: usize, height: usize, sigma: f32) -> Result<()> {
    if width.checked_mul(height) != Some(data.len()) {
        return Err(DataError::InvalidParameter(format!(
            "Gaussian blur of a {width}x{height} plane given {} values",
            data.len()
        )));
    }
    if sigma.is_nan() || sigma == f32::INFINITY {
        return Err(DataError::InvalidParameter(format!(
            "Gaussian blur sigma must be finite, got {}",
            readable_number(sigma)
        )));
    }
    if sigma <= 0.0 || data.is_empty() {
        return Ok(());
    }
    let kernel = gaussian_kernel(sigma, 3.0)?;
    convolve_separable(data, width, height, &kernel);
    Ok(())
}

/// Convolve a plane in place with the same symmetric 1-D `kernel` along x then y
/// (reflect-101 borders). `kernel.len()` must be odd.
///
/// Where the CPU has AVX2 (detected at run time) the same code is compiled 8 lanes wide;
/// every output is still `Σ k_j · s_j` summed in tap order with separate multiplies and
/// adds, so the result is bit-identical either way.
pub(crate) fn convolve_separable(data: &mut [f32], width: usize, height: usize, kernel: &[f32]) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::is_x86_feature_detected!("avx2") {
            // SAFETY: AVX2 was detected just above.
            unsafe { convolve_separable_avx2(data, width, height, kernel) };
            return;
        }
    }
    convolve_separable_body(data, width, height, kernel);
}

/// [`convolve_separable_body`] compiled for AVX2.
///
/// # Safety
/// The CPU must support AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn convolve_separable_avx2(data: &mut [f32], width: usize, height: usize, kernel: &[f32]) {
    convolve_separable_body(data, width, height, kernel);
}

#[inline(always)]
fn convolve_separable_body(data: &mut [f32], width: usize, height: usize, kernel: &[f32]) {
    let r = kernel.len() / 2;
    let mut tmp = vec![0.0f32; width * height];
    // Horizontal pass into tmp.
    let mut pad = vec![0.0f32; width + 2 * r];
    for (src_row, dst_row) in data.chunks_exact(width).zip(tmp.chunks_exact_mut(width)) {
        for (i, p) in pad.iter_mut().enumerate() {
            *p = src_row[reflect101(i as isize - r as isize, width)];
        }
        dst_row.fill(0.0);
        for (j, &kj) in kernel.iter().enumerate() {
            let src = &pad[j..j + width];
            for (o, &s) in dst_row.iter_mut().zip(src) {
                *o += kj * s;
            }
        }
    }
    // Vertical pass back into data.
    for y in 0..height {
        let dst_row = &mut data[y * width..(y + 1) * width];
        dst_row.fill(0.0);
        for (j, &kj) in kernel.iter().enumerate() {
            let sy = reflect101(y as isize + j as isize - r as isize, height);
            let src = &tmp[sy * width..(sy + 1) * width];
            for (o, &s) in dst_row.iter_mut().zip(src) {
                *o += kj * s;
            }
        }
    }
}

/// Down-sample a plane by an integer factor `f` (block mean; a partial last block
/// averages what it has). Returns the plane and its size.
pub(crate) fn downsample_mean(
    data: &[f32],
    width: usize,
    height: usize,
    f: usize,
) -> (Vec<f32>, usize, usize) {
    let f = f.max(1);
    let (cw, ch) = (width.div_ceil(f), height.div_ceil(f));
    let mut out = vec![0.0f32; cw * ch];
    let mut cnt = vec![0u32; cw * ch];
    for y in 0..height {
        let cy = y / f;
        let row = &data[y * width..(y + 1) * width];
        for (x, &v) in row.iter().enumerate() {
            let i = cy * cw + x / f;
            out[i] += v;
            cnt[i] += 1;
        }
    }
    for (o, &c) in out.iter_mut().zip(&cnt) {
        *o /= c.max(1) as f32;
    }
    (out, cw, ch)
}

/// Bilinear up-sampling of a coarse plane made by [`downsample_mean`] with factor `f` back to
/// `width × height` (coarse sample `i` sits at the centre of its block).
pub(crate) fn upsample_bilinear(
    coarse: &[f32],
    cw: usize,
    ch: usize,
    f: usize,
    width: usize,
    height: usize,
) -> Vec<f32> {
    let mut out = vec![0.0f32; width * height];
    let f32f = f as f32;
    let half = (f32f - 1.0) * 0.5;
    // Precompute the x taps once; they are the same on every row.
    let xtaps: Vec<(usize, usize, f32)> = (0..width)
        .map(|x| {
            let cx = ((x as f32 - half) / f32f).clamp(0.0, (cw - 1) as f32);
            let x0 = cx.floor() as usize;
            let x1 = (x0 + 1).min(cw - 1);
            (x0, x1, cx - x0 as f32)
        })
        .collect();
    for y in 0..height {
        let cy = ((y as f32 - half) / f32f).clamp(0.0, (ch - 1) as f32);
        let y0 = cy.floor() as usize;
        let y1 = (y0 + 1).min(ch - 1);
        let fy = cy - y0 as f32;
        let r0 = &coarse[y0 * cw..(y0 + 1) * cw];
        let r1 = &coarse[y1 * cw..(y1 + 1) * cw];
        let orow = &mut out[y * width..(y + 1) * width];
        for (o, &(x0, x1, fx)) in orow.iter_mut().zip(&xtaps) {
            let a = r0[x0] + fx * (r0[x1] - r0[x0]);
            let b = r1[x0] + fx * (r1[x1] - r1[x0]);
            *o = a + fy * (b - a);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reflect101_matches_opencv_convention() {
        // n = 4: ... 2 1 | 0 1 2 3 | 2 1 0 ...
        let got: Vec<usize> = (-3..8).map(|i| reflect101(i, 4)).collect();
        assert_eq!(got, vec![3, 2, 1, 0, 1, 2, 3, 2, 1, 0, 1]);
        assert_eq!(reflect101(-5, 1), 0);
        // The one-reflection shortcuts agree with the periodic formula everywhere.
        for n in 2..7usize {
            let period = 2 * n as isize - 2;
            for i in -40..40isize {
                let mut m = i.rem_euclid(period);
                if m >= n as isize {
                    m = period - m;
                }
                assert_eq!(reflect101(i, n), m as usize, "i={i} n={n}");
            }
        }
    }

    #[test]
    fn blur_preserves_constant_and_mass() {
        let mut c = vec![3.5f32; 7 * 5];
        gaussian_blur(&mut c, 7, 5, 1.3).unwrap();
        assert!(c.iter().all(|v| (v - 3.5).abs() < 1e-5));
        // Impulse far from the border: the 2-D response is the outer product of the kernel.
        let (w, h) = (21, 21);
        let mut d = vec![0.0f32; w * h];
        d[10 * w + 10] = 1.0;
        gaussian_blur(&mut d, w, h, 1.5).unwrap();
        let k = gaussian_kernel(1.5, 3.0).unwrap();
        let r = k.len() / 2;
        for dy in 0..k.len() {
            for dx in 0..k.len() {
                let v = d[(10 + dy - r) * w + 10 + dx - r];
                assert!((v - k[dy] * k[dx]).abs() < 1e-6);
            }
        }
    }

    /// The AVX2 build of the convolution is bit-identical to the portable one.
    #[test]
    fn avx2_convolution_is_bit_identical() {
        #[cfg(target_arch = "x86_64")]
        {
            if !std::is_x86_feature_detected!("avx2") {
                eprintln!("no AVX2 on this CPU: nothing to compare");
                return;
            }
            for (w, h, sigma) in [(37usize, 23usize, 1.7f32), (64, 9, 4.0), (5, 40, 0.6)] {
                let plane: Vec<f32> = (0..w * h)
                    .map(|i| ((i * 7919) % 1009) as f32 / 97.0 - 5.0)
                    .collect();
                let kernel = gaussian_kernel(sigma, 3.0).unwrap();
                let mut a = plane.clone();
                convolve_separable_body(&mut a, w, h, &kernel);
                let mut b = plane;
                // SAFETY: AVX2 was detected above.
                unsafe { convolve_separable_avx2(&mut b, w, h, &kernel) };
                let same = a.iter().zip(&b).all(|(x, y)| x.to_bits() == y.to_bits());
                assert!(same, "{w}x{h} sigma {sigma}");
            }
        }
    }

    #[test]
    fn kernel_matches_closed_form() {
        let k = gaussian_kernel(1.0, 3.0).unwrap();
        assert_eq!(k.len(), 7);
        let raw: Vec<f64> = (-3..=3)
            .map(|d: i32| (-(d * d) as f64 / 2.0).exp())
            .collect();
        let s: f64 = raw.iter().sum();
        for (a, b) in k.iter().zip(&raw) {
            assert!((*a as f64 - b / s).abs() < 1e-7);
        }
    }

    /// Bad sigmas are errors, not NaN taps, an overflow panic or a terabyte allocation.
    #[test]
    fn kernel_refuses_bad_sigma_truncate_and_radius() {
        for sigma in [
            0.0,
            -1.0,
            f32::NAN,
            f32::INFINITY,
            f32::NEG_INFINITY,
            1e30,
            3e38,
        ] {
            let err = gaussian_kernel(sigma, 3.0).unwrap_err();
            assert!(
                matches!(err, DataError::InvalidParameter(_)),
                "{sigma}: {err}"
            );
        }
        for truncate in [-1.0, f32::NAN, f32::INFINITY] {
            assert!(gaussian_kernel(1.0, truncate).is_err(), "{truncate}");
        }
        // The largest radius is accepted, one more is not.
        let limit = MAX_KERNEL_RADIUS as f32;
        assert_eq!(
            gaussian_kernel(limit, 1.0).unwrap().len(),
            2 * MAX_KERNEL_RADIUS + 1
        );
        assert!(gaussian_kernel(limit + 1.0, 1.0).is_err());
        // A tiny positive sigma is the identity kernel, still finite.
        assert_eq!(gaussian_kernel(1e-30, 3.0).unwrap(), vec![0.0, 1.0, 0.0]);
        assert_eq!(gaussian_kernel(0.1, 0.0).unwrap().len(), 3);
    }

    #[test]
    fn blur_refuses_bad_sigma_and_sizes_leaving_the_plane() {
        let plane: Vec<f32> = (0..16).map(|i| i as f32).collect();
        for sigma in [f32::NAN, f32::INFINITY, 1e12, 1e30] {
            let mut d = plane.clone();
            assert!(gaussian_blur(&mut d, 4, 4, sigma).is_err(), "{sigma}");
            assert_eq!(d, plane);
        }
        let mut d = plane.clone();
        assert!(gaussian_blur(&mut d, 4, 3, 1.0).is_err());
        assert!(gaussian_blur(&mut d, usize::MAX, 2, 1.0).is_err());
        assert_eq!(d, plane);
        // Zero or negative sigma and an empty plane: unchanged, as documented.
        for sigma in [0.0, -2.0, f32::NEG_INFINITY] {
            gaussian_blur(&mut d, 4, 4, sigma).unwrap();
            assert_eq!(d, plane);
        }
        gaussian_blur(&mut [], 0, 5, 1.0).unwrap();
        // A kernel wider than the plane still works (taps fold back by reflection).
        gaussian_blur(&mut d, 4, 4, 100.0).unwrap();
        assert!(d.iter().all(|v| v.is_finite()));
    }
}
