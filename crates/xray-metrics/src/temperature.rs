//! Temperature scaling (Guo et al. 2017): one scalar `T > 0` dividing the logits, fitted on
//! validation pixels by minimising the negative log-likelihood.
//!
//! The NLL is convex in `β = 1/T` (log-sum-exp of functions linear in β minus a linear
//! term), with gradient `E_softmax[z] − z_y` and curvature `Var_softmax(z)` per pixel, so a
//! safeguarded Newton iteration on β converges in a handful of passes over the data. Where
//! the curvature underflows (logits hundreds apart: every softmax one-hot in f64), a
//! bisection of the gradient over the allowed range takes over.

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::calibration::ReliabilityBins;
use crate::error::{readable_number, MetricsError, Result};
use crate::validate::{check_len, check_num_classes, first_bad_label, IGNORE_LABEL};

/// Validation logits of one image: class-major `C × pixels` plus labels (255 = ignore).
#[derive(Clone, Copy, Debug)]
pub struct LogitImage<'a> {
    /// Class-major logits (C planes of `labels.len()` pixels).
    pub logits: &'a [f32],
    /// Labels, 255 = ignore.
    pub labels: &'a [u8],
}

/// Settings of [`fit_temperature`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TemperatureConfig {
    /// Newton iterations at most.
    pub max_iter: usize,
    /// Stop when the step on β = 1/T is below this (relative to β); finite and `≥ 0`
    /// (0 runs `max_iter` iterations unless the gradient vanishes).
    pub tolerance: f64,
    /// Equal-width bins for the ECE reported before and after (1..=[`MAX_BINS`](crate::MAX_BINS)).
    pub n_bins: usize,
    /// The fitted temperature is the NLL's minimiser within `[low, high]` (default
    /// `[0.05, 20]`). An unbounded fit runs off to T → ∞ for a network no better than
    /// chance (uniform probabilities minimise its NLL), where `f32` probabilities tie and
    /// arg-max labels degrade to the first class.
    #[serde(default = "default_temperature_range")]
    pub temperature_range: (f64, f64),
}

fn default_temperature_range() -> (f64, f64) {
    (0.05, 20.0)
}

impl TemperatureConfig {
    /// Checks every field: `temperature_range` must satisfy `0 < low ≤ high < ∞`,
    /// `tolerance` must be finite and `≥ 0` (a NaN tolerance never stops the iteration, an
    /// infinite one stops it after the first step), `n_bins` must be in
    /// 1..=[`MAX_BINS`](crate::MAX_BINS).
    /// [`fit_temperature`] calls it before touching the data.
    ///
    /// # Errors
    /// [`MetricsError::InvalidConfig`] naming the field and the value.
    ///
    /// # Examples
    /// ```
    /// use xray_metrics::TemperatureConfig;
    /// assert!(TemperatureConfig::default().validate().is_ok());
    /// let cfg = TemperatureConfig { tolerance: f64::INFINITY, ..TemperatureConfig::default() };
    /// let e = cfg.validate().unwrap_err().to_string();
    /// assert!(e.contains("tolerance must be finite and ≥ 0, got inf"), "{e}");
    /// ```
    pub fn validate(&self) -> Result<()> {
        let (low, high) = self.temperature_range;
        if !(low > 0.0 && low <= high && high.is_finite()) {
            return Err(MetricsError::InvalidConfig(format!(
                "temperature_range must satisfy 0 < low ≤ high < ∞, got ({}, {})",
                readable_number(low),
                readable_number(high)
            )));
        }
        if !(self.tolerance.is_finite() && self.tolerance >= 0.0) {
            return Err(MetricsError::InvalidConfig(format!(
                "temperature tolerance must be finite and ≥ 0, got {}",
                readable_number(self.tolerance)
            )));
        }
        if self.n_bins == 0 {
            return Err(MetricsError::InvalidConfig(
                "temperature n_bins must be ≥ 1, got 0".into(),
            ));
        }
        crate::validate::check_max_bins("temperature n_bins", self.n_bins)?;
        Ok(())
    }
}

impl Default for TemperatureConfig {
    fn default() -> Self {
        Self {
            max_iter: 100,
            tolerance: 1e-10,
            n_bins: 15,
            temperature_range: default_temperature_range(),
        }
    }
}

/// Result of [`fit_temperature`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TemperatureFit {
    /// Fitted temperature: divide logits by it before the softmax.
    #[serde(deserialize_with = "crate::report::nan_from_null")]
    pub temperature: f64,
    /// Mean NLL at T = 1.
    #[serde(deserialize_with = "crate::report::nan_from_null")]
    pub nll_before: f64,
    /// Mean NLL at the fitted T.
    #[serde(deserialize_with = "crate::report::nan_from_null")]
    pub nll_after: f64,
    /// Top-label ECE (l1, `n_bins` equal-width bins) at T = 1.
    #[serde(deserialize_with = "crate::report::nan_from_null")]
    pub ece_before: f64,
    /// Top-label ECE at the fitted T.
    #[serde(deserialize_with = "crate::report::nan_from_null")]
    pub ece_after: f64,
    /// Newton iterations used, plus the passes of the bisection that takes over when the
    /// curvature underflows (logits so far apart that every softmax is one-hot in f64).
    pub iterations: usize,
    /// Scored pixels.
    pub pixels: u64,
}

fn check_images(images: &[LogitImage<'_>], c: usize) -> Result<u64> {
    check_num_classes(c)?;
    let mut scored = 0u64;
    for (k, im) in images.iter().enumerate() {
        let n = im.labels.len();
        check_len(
            &format!("logits of image {k} ({c} class planes × {n} pixels)"),
            n * c,
            im.logits.len(),
        )?;
        first_bad_label(im.labels, c)?;
        if let Some(i) = im.logits.iter().position(|v| !v.is_finite()) {
            return Err(MetricsError::InvalidLogit {
                pixel: i % n,
                class: i / n,
                value: im.logits[i],
            });
        }
        scored += im.labels.iter().filter(|&&l| l != IGNORE_LABEL).count() as u64;
    }
    Ok(scored)
}

/// Pixels per task of [`nll_terms`]: each task sums its run of one image in order.
const NLL_CHUNK: usize = 4096;

/// Sum over pixels of (NLL, dNLL/dβ, d²NLL/dβ²) at β.
///
/// Each image is cut into fixed runs of [`NLL_CHUNK`] pixels, each run summed in order on a
/// rayon task, and the runs' sums added in image and pixel order: the result does not
/// depend on the thread count or on how rayon shares the work out. (A parallel `reduce`
/// added the partial sums in whatever tree work stealing built, so the same logits gave
/// NLLs that differed in the last bits and temperatures in the ninth digit from one run to
/// the next: two `train` runs of one seed wrote the same weights but another
/// `config.json`.)
fn nll_terms(images: &[LogitImage<'_>], c: usize, beta: f64) -> (f64, f64, f64) {
    let runs: Vec<(f64, f64, f64)> = images
        .par_iter()
        .flat_map(|im| {
            let n = im.labels.len();
            (0..n.div_ceil(NLL_CHUNK))
                .into_par_iter()
                .map(move |j| (im, n, j * NLL_CHUNK..n.min((j + 1) * NLL_CHUNK)))
        })
        .map(|(im, n, pixels)| {
            let mut acc = (0.0, 0.0, 0.0);
            for i in pixels {
                let y = im.labels[i];
                if y == IGNORE_LABEL {
                    continue;
                }
                let z = |k: usize| im.logits[k * n + i] as f64;
                let m = (0..c).map(z).fold(f64::NEG_INFINITY, f64::max);
                let (mut s, mut s1, mut s2) = (0.0, 0.0, 0.0);
                for k in 0..c {
                    let zk = z(k);
                    let e = (beta * (zk - m)).exp();
                    s += e;
                    s1 += e * zk;
                    s2 += e * zk * zk;
                }
                let mean = s1 / s;
                let var = (s2 / s - mean * mean).max(0.0);
                let zy = z(y as usize);
                acc.0 += beta * m + s.ln() - beta * zy;
                acc.1 += mean - zy;
                acc.2 += var;
            }
            acc
        })
        // `collect` keeps the order of the runs, whatever thread summed each.
        .collect();
    runs.iter()
        .fold((0.0, 0.0, 0.0), |a, b| (a.0 + b.0, a.1 + b.1, a.2 + b.2))
}

/// Softmax of `logits / temperature`, class-major in and out.
///
/// # Examples
/// ```
/// use xray_metrics::softmax_with_temperature;
/// let p = softmax_with_temperature(&[0.0, 2.0, /* class 1 */ 0.0, 0.0], 2, 1.0).unwrap();
/// assert!((p[0] - 0.5).abs() < 1e-7 && (p[1] + p[3] - 1.0).abs() < 1e-6);
/// ```
pub fn softmax_with_temperature(
    logits: &[f32],
    num_classes: usize,
    temperature: f64,
) -> Result<Vec<f32>> {
    check_num_classes(num_classes)?;
    if !(temperature.is_finite() && temperature > 0.0) {
        return Err(MetricsError::InvalidConfig(format!(
            "temperature must be a positive finite number, got {}",
            readable_number(temperature)
        )));
    }
    if logits.len() / num_classes * num_classes != logits.len() {
        return Err(MetricsError::LengthMismatch {
            what: format!("logits (a multiple of {num_classes} class planes)"),
            expected: logits.len() / num_classes * num_classes,
            found: logits.len(),
        });
    }
    let n = logits.len() / num_classes;
    let mut out = vec![0f32; logits.len()];
    let inv = 1.0 / temperature;
    for i in 0..n {
        let m = (0..num_classes)
            .map(|k| logits[k * n + i] as f64)
            .fold(f64::NEG_INFINITY, f64::max);
        let mut s = 0.0;
        for k in 0..num_classes {
            let e = ((logits[k * n + i] as f64 - m) * inv).exp();
            out[k * n + i] = e as f32;
            s += e;
        }
        for k in 0..num_classes {
            out[k * n + i] = (out[k * n + i] as f64 / s) as f32;
        }
    }
    Ok(out)
}

/// The minimiser of the NLL over `β ∈ [lo, hi]`, found by bisecting its derivative (the NLL
/// is convex in β, so the derivative does not decrease), for when Newton's curvature
/// underflows. Returns it and the passes over the data spent (at most 102).
fn bisect_gradient(
    images: &[LogitImage<'_>],
    c: usize,
    (mut lo, mut hi): (f64, f64),
    tolerance: f64,
) -> (f64, usize) {
    let slope = |beta: f64| nll_terms(images, c, beta).1;
    if slope(lo) >= 0.0 {
        return (lo, 1);
    }
    if slope(hi) <= 0.0 {
        return (hi, 2);
    }
    let mut steps = 2;
    // 100 halvings take any f64 interval down to neighbouring numbers.
    while steps < 102 && hi - lo > tolerance * lo {
        let mid = lo / 2.0 + hi / 2.0;
        if mid <= lo || mid >= hi {
            break;
        }
        steps += 1;
        let g = slope(mid);
        if g > 0.0 {
            hi = mid;
        } else if g < 0.0 {
            lo = mid;
        } else {
            return (mid, steps);
        }
    }
    (lo / 2.0 + hi / 2.0, steps)
}

fn ece_at(images: &[LogitImage<'_>], c: usize, t: f64, n_bins: usize) -> Result<f64> {
    let mut bins = ReliabilityBins::new(n_bins)?;
    for im in images {
        let p = softmax_with_temperature(im.logits, c, t)?;
        bins.merge(&crate::calibration::calibration_bins(
            im.labels, &p, c, n_bins,
        )?)?;
    }
    Ok(bins.reliability().ece())
}

/// Fits the temperature on validation logits and reports NLL and ECE before and after.
///
/// The NLL is convex in `β = 1/T`, so the minimiser within `config.temperature_range` is
/// the unconstrained one clamped to that range. Newton's method finds it; when its
/// curvature is 0 or so small that the step is not a finite number (logits hundreds apart,
/// every softmax one-hot to f64 precision), the derivative is bisected over the range
/// instead, and the better of that and the Newton iterate (clamped) is kept.
///
/// # Errors
/// Checked in this order:
/// - [`MetricsError::InvalidConfig`] for a config that fails
///   [`TemperatureConfig::validate`] (a temperature range that is not `0 < low ≤ high < ∞`,
///   a NaN, infinite or negative tolerance, no bins), or a `num_classes` not in `2..=255`;
/// - then per image, in order: [`MetricsError::LengthMismatch`] when its logits do not hold
///   `num_classes ×` its pixel count, [`MetricsError::LabelOutOfRange`] for a label
///   ≥ `num_classes` other than 255 (ignore), [`MetricsError::InvalidLogit`] for a NaN or
///   infinite logit;
/// - [`MetricsError::Empty`] when no pixel is scored (no images, or every label 255).
///
/// # Examples
/// ```
/// # fn main() -> Result<(), xray_metrics::MetricsError> {
/// use xray_metrics::{fit_temperature, LogitImage, TemperatureConfig};
/// // Four pixels with logits (2 ln 3, 0), three of them of class 0. At T = 1 the network
/// // says 0.9 for class 0; the NLL is least at 3/4 = sigmoid(2 ln 3 / T), so T = 2.
/// let d = 2.0 * 3f32.ln();
/// let logits = [d, d, d, d, /* class 1 */ 0.0, 0.0, 0.0, 0.0];
/// let image = LogitImage { logits: &logits, labels: &[0, 0, 0, 1] };
/// let fit = fit_temperature(&[image], 2, &TemperatureConfig::default())?;
/// assert!((fit.temperature - 2.0).abs() < 1e-5, "{}", fit.temperature);
/// assert!(fit.nll_after < fit.nll_before);
/// assert!((fit.ece_before - 0.15).abs() < 1e-6 && fit.ece_after < 1e-6); // 0.9 vs 3/4 right
/// # Ok(())
/// # }
/// ```
pub fn fit_temperature(
    images: &[LogitImage<'_>],
    num_classes: usize,
    config: &TemperatureConfig,
) -> Result<TemperatureFit> {
    config.validate()?;
    let (low, high) = config.temperature_range;
    let c = num_classes;
    let pixels = check_images(images, c)?;
    if pixels == 0 {
        return Err(MetricsError::Empty(
            "temperature scaling needs at least one labelled pixel".into(),
        ));
    }
    let np = pixels as f64;
    let (nll1, _, _) = nll_terms(images, c, 1.0);
    let mut beta = 1.0f64;
    let (mut f, mut g, mut h) = nll_terms(images, c, beta);
    let mut iterations = 0;
    let mut stalled = false;
    while iterations < config.max_iter {
        iterations += 1;
        if g == 0.0 {
            break;
        }
        let mut step = g / h;
        // A curvature of 0 or one so small that the step leaves f64 (every pixel's softmax
        // one-hot to f64 precision at this β): Newton cannot go on; bisect below instead.
        if !(h > 0.0 && step.is_finite()) {
            stalled = true;
            break;
        }
        // Keep β positive and make sure the NLL goes down (backtracking on the Newton step).
        let mut next = beta - step;
        while next <= beta * 1e-3 {
            step *= 0.5;
            next = beta - step;
        }
        let mut cand = nll_terms(images, c, next);
        let mut halvings = 0;
        while cand.0 > f && halvings < 40 {
            step *= 0.5;
            next = beta - step;
            cand = nll_terms(images, c, next);
            halvings += 1;
        }
        if !(next.is_finite() && cand.0.is_finite()) {
            stalled = true;
            break;
        }
        let done = (next - beta).abs() <= config.tolerance * beta;
        beta = next;
        (f, g, h) = cand;
        if done {
            break;
        }
    }
    if stalled {
        let (root, steps) = bisect_gradient(images, c, (1.0 / high, 1.0 / low), config.tolerance);
        iterations += steps;
        let here = beta.clamp(1.0 / high, 1.0 / low);
        let f_here = nll_terms(images, c, here).0;
        let f_root = nll_terms(images, c, root).0;
        (beta, f) = if f_root < f_here {
            (root, f_root)
        } else {
            (here, f_here)
        };
    }
    let bounded = beta.clamp(1.0 / high, 1.0 / low);
    if bounded != beta {
        beta = bounded;
        f = nll_terms(images, c, beta).0;
    }
    let temperature = 1.0 / beta;
    Ok(TemperatureFit {
        temperature,
        nll_before: nll1 / np,
        nll_after: f / np,
        ece_before: ece_at(images, c, 1.0, config.n_bins)?,
        ece_after: ece_at(images, c, temperature, config.n_bins)?,
        iterations,
        pixels,
    })
}
