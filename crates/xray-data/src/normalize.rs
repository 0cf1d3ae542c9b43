//! Intensity normalisation: min-max, percentile windowing, log transform.
//!
//! All functions map a radiograph in detector units to `0.0..=1.0` (the log transform alone
//! keeps its own scale) and never produce NaN from finite values, whatever their range
//! (subnormal values around `1e-40`, or a range wider than `f32::MAX`: computed in `f64`
//! where `f32` would overflow): a constant image maps to all zeros ([`value_range`] tells
//! one apart).
//!
//! [`normalize`] refuses NaN and ±∞ pixels, as the loaders in [`crate::io`] do:
//! [`DataError::NonFinite`] at the first one's `(x, y)` in the image it was given (source
//! `<memory>`; [`crate::dataset::Dataset::prepare_sample`] names the sample's file instead).
//! The building blocks it uses ([`min_max`], [`window_in_place`], [`log_transform`],
//! [`value_range`], [`percentiles`]) do not check; [`min_max`] documents what they do with
//! such values.

use crate::error::readable_number;
use crate::{DataError, Radiograph, Result};

/// How [`normalize`] maps intensities to `0.0..=1.0`.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum Method {
    /// Per-image min-max: `(v - min) / (max - min)` (the XNet default).
    #[default]
    MinMax,
    /// Percentile windowing: values below the `low`-th percentile map to 0, above the
    /// `high`-th to 1, linear between (percentiles as numpy's default "linear" method).
    Percentile {
        /// Lower percentile, `0.0..100.0`.
        low: f32,
        /// Upper percentile, `low..=100.0`.
        high: f32,
    },
}

/// Configuration of [`normalize`].
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct NormalizeConfig {
    /// The intensity mapping.
    pub method: Method,
    /// Apply [`log_transform`] before the mapping (attenuation-like contrast).
    pub log: bool,
}

impl NormalizeConfig {
    /// Checks the parameters.
    ///
    /// # Errors
    /// [`DataError::InvalidParameter`] when percentiles are outside `0..=100` or not ordered.
    ///
    /// # Examples
    /// ```
    /// use xray_data::normalize::{Method, NormalizeConfig};
    /// let window = |low, high| NormalizeConfig { method: Method::Percentile { low, high }, log: false };
    /// assert!(window(1.0, 99.0).validate().is_ok());
    /// let e = window(99.0, 1.0).validate().unwrap_err().to_string();
    /// assert!(e.contains("low=99, high=1"), "{e}");
    /// assert!(window(0.0, 101.0).validate().is_err()); // not a percentile
    /// ```
    pub fn validate(&self) -> Result<()> {
        if let Method::Percentile { low, high } = self.method {
            if !(0.0..=100.0).contains(&low) || !(0.0..=100.0).contains(&high) || low >= high {
                return Err(DataError::InvalidParameter(format!(
                    "percentile window must satisfy 0 <= low < high <= 100, got low={}, high={}",
                    readable_number(low),
                    readable_number(high)
                )));
            }
        }
        Ok(())
    }
}

/// Normalises `img` as `cfg` says.
///
/// # Errors
/// [`DataError::InvalidParameter`] from [`NormalizeConfig::validate`];
/// [`DataError::NonFinite`] for a NaN or infinite pixel, naming the first one (row by row)
/// at its `(x, y)` in `img`, with the source `<memory>`.
///
/// # Examples
/// ```
/// use xray_data::normalize::{normalize, NormalizeConfig};
/// let img = xray_data::Radiograph::from_raw(3, 1, vec![10.0, 20.0, 30.0]).unwrap();
/// let out = normalize(&img, &NormalizeConfig::default()).unwrap();
/// assert_eq!(out.as_raw(), &vec![0.0, 0.5, 1.0]);
/// ```
pub fn normalize(img: &Radiograph, cfg: &NormalizeConfig) -> Result<Radiograph> {
    cfg.validate()?;
    // As the loaders: a NaN would pass through (or vanish into an all-zero image when the
    // finite pixels are all equal) and ±∞ would squash the window.
    crate::io::check_finite(&crate::io::memory_path(), img.width(), img.as_raw())?;
    let mut out = if cfg.log {
        log_transform(img)
    } else {
        img.clone()
    };
    match cfg.method {
        Method::MinMax => min_max_in_place(&mut out),
        Method::Percentile { low, high } => {
            let (lo, hi) = percentiles(out.as_raw(), low, high);
            window_in_place(&mut out, lo, hi);
        }
    }
    Ok(out)
}

/// Per-image min-max normalisation to `0.0..=1.0`; a constant image becomes all zeros.
///
/// Non-finite pixels are not refused here ([`normalize`] refuses them) but left out of the
/// range: where the finite pixels span one, `+∞` maps to 1, `−∞` to 0 and NaN stays NaN;
/// where they are all equal (or there are none), every pixel becomes 0, NaN included.
///
/// # Examples
/// ```
/// use xray_data::normalize::min_max;
/// let img = xray_data::Radiograph::from_raw(4, 1, vec![0.0, 10.0, f32::INFINITY, f32::NAN]);
/// let out = min_max(&img.unwrap());
/// assert_eq!(&out.as_raw()[..3], &[0.0, 1.0, 1.0]);
/// assert!(out.as_raw()[3].is_nan());
/// let flat = xray_data::Radiograph::from_raw(2, 1, vec![5.0, f32::NAN]).unwrap();
/// assert_eq!(min_max(&flat).as_raw(), &vec![0.0, 0.0]);
/// ```
pub fn min_max(img: &Radiograph) -> Radiograph {
    let mut out = img.clone();
    min_max_in_place(&mut out);
    out
}

/// In-place form of [`min_max`].
///
/// # Examples
/// ```
/// use xray_data::normalize::{min_max, min_max_in_place};
/// let mut img = xray_data::Radiograph::from_raw(3, 1, vec![100.0, 300.0, 200.0]).unwrap();
/// let copy = min_max(&img);
/// min_max_in_place(&mut img);
/// assert_eq!(img.as_raw(), &[0.0, 1.0, 0.5]);
/// assert_eq!(img, copy); // the same as the copying form
/// ```
pub fn min_max_in_place(img: &mut Radiograph) {
    // No finite value at all: an empty window, so all zeros.
    let (lo, hi) = value_range(img).unwrap_or((0.0, 0.0));
    window_in_place(img, lo, hi);
}

/// Maps `lo..=hi` linearly to `0.0..=1.0`, clamping outside; `hi <= lo` gives all zeros.
///
/// Where `f32` holds the range and its inverse as normal numbers (every ordinary image) the
/// mapping is computed in `f32`, as it always was; otherwise in `f64`, so that a range of
/// subnormal values (around `1e-40`, whose inverse overflows `f32`) or one wider than
/// `f32::MAX` (`-3e38..3e38`) still maps to `0..=1` instead of NaN or all zeros.
///
/// # Examples
/// ```
/// use xray_data::normalize::window_in_place;
/// let raw = vec![0.0, 64.0, 128.0, 160.0, 255.0];
/// let mut img = xray_data::Radiograph::from_raw(5, 1, raw.clone()).unwrap();
/// window_in_place(&mut img, 64.0, 192.0);
/// assert_eq!(img.as_raw(), &vec![0.0, 0.0, 0.5, 0.75, 1.0]); // clamped outside 64..=192
/// let mut empty_window = xray_data::Radiograph::from_raw(5, 1, raw).unwrap();
/// window_in_place(&mut empty_window, 100.0, 100.0);
/// assert!(empty_window.pixels().all(|p| p.0[0] == 0.0));
/// ```
pub fn window_in_place(img: &mut Radiograph, lo: f32, hi: f32) {
    let range = hi - lo;
    let inv = 1.0 / range;
    if range > 0.0 && range.is_normal() && inv.is_normal() {
        img.iter_mut()
            .for_each(|v| *v = ((*v - lo) * inv).clamp(0.0, 1.0));
        return;
    }
    let (lo, hi) = (f64::from(lo), f64::from(hi));
    let range = hi - lo;
    if range > 0.0 && range.is_finite() {
        let inv = 1.0 / range;
        img.iter_mut()
            .for_each(|v| *v = ((f64::from(*v) - lo) * inv).clamp(0.0, 1.0) as f32);
    } else {
        img.iter_mut().for_each(|v| *v = 0.0);
    }
}

/// The smallest and largest value of an image, or `None` when it has no finite value.
/// A constant image has `min == max`: min-max normalisation maps it to all zeros, which a
/// caller may want to report rather than process (nothing in it can be told apart).
///
/// # Examples
/// ```
/// use xray_data::normalize::value_range;
/// let img = xray_data::Radiograph::from_raw(3, 1, vec![2.0, -1.0, 7.0]).unwrap();
/// assert_eq!(value_range(&img), Some((-1.0, 7.0)));
/// ```
pub fn value_range(img: &Radiograph) -> Option<(f32, f32)> {
    // Sixteen running minima and maxima, each a compare and a select on finite values only
    // (`f32::min` must mind NaN, which keeps a plain fold from vectorising): a 2000 × 2000
    // image in about a quarter of the fold's time.
    const LANES: usize = 16;
    let values = img.as_raw();
    let mut lo = [f32::INFINITY; LANES];
    let mut hi = [f32::NEG_INFINITY; LANES];
    let chunks = values.chunks_exact(LANES);
    let rest = chunks.remainder();
    for chunk in chunks {
        for ((&v, l), h) in chunk.iter().zip(&mut lo).zip(&mut hi) {
            // `abs() < ∞` is false for NaN and ±∞ alike.
            let finite = v.abs() < f32::INFINITY;
            *l = if finite && v < *l { v } else { *l };
            *h = if finite && v > *h { v } else { *h };
        }
    }
    let (mut lo, mut hi) = lo
        .iter()
        .zip(&hi)
        .fold((f32::INFINITY, f32::NEG_INFINITY), |(a, b), (&l, &h)| {
            (a.min(l), b.max(h))
        });
    for &v in rest.iter().filter(|v| v.is_finite()) {
        lo = lo.min(v);
        hi = hi.max(v);
    }
    (lo <= hi).then_some((lo, hi))
}

/// The `low`-th and `high`-th percentiles of `values` (numpy's default linear
/// interpolation between closest ranks). Empty input gives `(0, 0)`.
///
/// # Examples
/// ```
/// use xray_data::normalize::percentiles;
/// // Sorted, the values are 1..=5 at ranks 0..=4: the 12.5th percentile sits at rank 0.5,
/// // halfway between 1 and 2; the 75th at rank 3, the value 4.
/// assert_eq!(percentiles(&[5.0, 1.0, 4.0, 2.0, 3.0], 12.5, 75.0), (1.5, 4.0));
/// assert_eq!(percentiles(&[], 1.0, 99.0), (0.0, 0.0));
/// ```
pub fn percentiles(values: &[f32], low: f32, high: f32) -> (f32, f32) {
    if values.is_empty() {
        return (0.0, 0.0);
    }
    let mut v = values.to_vec();
    let lo = percentile_select(&mut v, low);
    let hi = percentile_select(&mut v, high);
    (lo, hi)
}

fn percentile_select(v: &mut [f32], pct: f32) -> f32 {
    let n = v.len();
    let pos = (f64::from(pct.clamp(0.0, 100.0)) / 100.0) * (n - 1) as f64;
    let i = pos.floor() as usize;
    let frac = (pos - i as f64) as f32;
    let (_, &mut a, rest) = v.select_nth_unstable_by(i, f32::total_cmp);
    if frac == 0.0 || rest.is_empty() {
        return a;
    }
    // The next order statistic is the minimum of the part above the i-th.
    let b = rest.iter().copied().fold(f32::INFINITY, f32::min);
    let d = b - a;
    if d.is_finite() {
        a + d * frac
    } else {
        // Values more than f32::MAX apart: interpolated in f64.
        (f64::from(a) + (f64::from(b) - f64::from(a)) * f64::from(frac)) as f32
    }
}

/// Log transform `ln(1 + max(v - min, 0))`: compresses the large dynamic range of
/// transmitted intensity so that thick and thin parts get comparable contrast. Shifting by
/// the image minimum keeps the argument at least 1, so the result is finite and `>= 0`.
///
/// # Examples
/// ```
/// use xray_data::{normalize::log_transform, Radiograph};
/// let img = Radiograph::from_raw(3, 1, vec![5.0, 6.0, 8.0]).ok_or("3 pixels")?;
/// // Shifted by the minimum 5: ln(1 + 0), ln(1 + 1), ln(1 + 3) = 0, ln 2, 2 ln 2.
/// let out = log_transform(&img);
/// let ln2 = std::f32::consts::LN_2;
/// let expected = [0.0, ln2, 2.0 * ln2];
/// assert!(out.as_raw().iter().zip(expected).all(|(a, b)| (a - b).abs() < 1e-6), "{:?}", out.as_raw());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn log_transform(img: &Radiograph) -> Radiograph {
    let lo = img.as_raw().iter().copied().fold(f32::INFINITY, f32::min);
    let lo = if lo.is_finite() { lo } else { 0.0 };
    let mut out = img.clone();
    out.iter_mut().for_each(|v| {
        let d = *v - lo;
        *v = if d.is_finite() {
            d.max(0.0).ln_1p()
        } else {
            // Values more than f32::MAX apart: the difference in f64.
            (f64::from(*v) - f64::from(lo)).max(0.0).ln_1p() as f32
        }
    });
    out
}
