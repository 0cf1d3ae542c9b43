//! How error messages print a number, shared by source: xnet-model, xray-data, xray-metrics
//! and xray-postproc include this file (`#[path]`) instead of depending on one another, since
//! a dependency edge for one function would pull candle or the image and DICOM decoders into
//! a crate that has no use for them. xnet-model makes it public as
//! `xnet_model::error::readable_number`, with its examples.

/// A number as an error message should show it: `{}` for everyday magnitudes, scientific
/// notation (`{:e}`) from 10⁶ up and below 10⁻⁴, so that a refused `1e308` reads `1e308`
/// rather than a 309-digit integer; NaN and the infinities print as `NaN`, `inf`, `-inf`. An
/// `f32` prints with its own shortest digits (`0.1`, not the `f64` widening's).
pub fn readable_number<T>(v: T) -> String
where
    T: Copy + Into<f64> + std::fmt::Display + std::fmt::LowerExp,
{
    let x: f64 = v.into();
    if x.is_finite() && x != 0.0 && !(1e-4..1e6).contains(&x.abs()) {
        format!("{v:e}")
    } else {
        format!("{v}")
    }
}
