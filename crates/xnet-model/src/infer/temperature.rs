//! Softmax temperature on probabilities that are already computed: its range and check,
//! and rescaling `p ↦ softmax(ln p / T)` in place ([`apply_temperature`]).

use crate::error::readable_number;
use crate::{ModelError, Result};

/// The softmax temperatures [`apply_temperature`] accepts: beyond them `1/T` times a
/// log-probability leaves `f32`'s useful range.
pub const TEMPERATURE_RANGE: (f64, f64) = (0.01, 100.0);

/// Checks a softmax temperature against [`TEMPERATURE_RANGE`].
///
/// # Errors
/// [`ModelError::InvalidConfig`] outside it (NaN included).
///
/// # Examples
/// ```
/// use xnet_model::infer::{check_temperature, TEMPERATURE_RANGE};
/// assert!(check_temperature(1.0).is_ok()); // T = 1 leaves the probabilities as they are
/// let (low, high) = TEMPERATURE_RANGE; // both accepted
/// assert!(check_temperature(low).is_ok() && check_temperature(high).is_ok());
/// for refused in [0.0, -1.0, 1000.0, f64::NAN] {
///     let e = check_temperature(refused).unwrap_err().to_string();
///     assert!(e.contains("the softmax temperature must be in [0.01, 100]"), "{e}");
/// }
/// ```
pub fn check_temperature(temperature: f64) -> Result<()> {
    let (low, high) = TEMPERATURE_RANGE;
    if (low..=high).contains(&temperature) {
        Ok(())
    } else {
        Err(ModelError::InvalidConfig(format!(
            "the softmax temperature must be in [{low}, {high}], got {}",
            readable_number(temperature)
        )))
    }
}

/// Takes class-major probabilities `softmax(z)` (`C` planes, any number of pixels) to the
/// softmax temperature `T` in place: each pixel becomes `softmax(z / T)`, computed from the
/// probabilities themselves (their logarithms differ from `z` by one constant per pixel,
/// which the softmax ignores). `T > 1` softens, `T < 1` sharpens; a pixel's arg-max stays
/// (unless `f32` rounding makes two classes equal), and zero probabilities stay zero.
///
/// # Errors
/// [`ModelError::InvalidInput`] for no classes, a length that is not a multiple of the
/// class count, or a probability that is NaN, infinite or negative (at any `T`, 1 included),
/// naming the first such one by pixel index (then class) and leaving `probs` unchanged;
/// [`ModelError::InvalidConfig`] for `T` outside [`TEMPERATURE_RANGE`].
///
/// # Examples
/// ```
/// // One pixel, two classes: softmax([ln 0.8, ln 0.2] / 2) = [2/3, 1/3].
/// let mut p = [0.8f32, 0.2];
/// xnet_model::infer::apply_temperature(&mut p, 2, 2.0)?;
/// assert!((p[0] - 2.0 / 3.0).abs() < 1e-6 && (p[1] - 1.0 / 3.0).abs() < 1e-6);
/// // Not a probability: an error, and `q` as it was.
/// let mut q = [f32::NAN, 0.5];
/// assert!(xnet_model::infer::apply_temperature(&mut q, 2, 2.0).is_err());
/// assert_eq!(q[1], 0.5);
/// # Ok::<(), xnet_model::ModelError>(())
/// ```
pub fn apply_temperature(probs: &mut [f32], num_classes: usize, temperature: f64) -> Result<()> {
    if num_classes == 0 || !probs.len().is_multiple_of(num_classes) {
        return Err(ModelError::InvalidInput(format!(
            "{} probabilities are not {num_classes} class planes",
            probs.len()
        )));
    }
    check_temperature(temperature)?;
    // Every value is checked before the first is written, so that refused input is left as
    // it was: one read-only pass, about 2.5 ms for 2000² pixels of 3 classes against about
    // 65 ms for the rescale (one thread). Flagging bad values inside the rescale's own first
    // loop would cost nothing but would have rewritten the blocks before the bad one.
    if let Some((pixel, class)) = first_invalid_probability(probs, num_classes) {
        let value = probs[class * (probs.len() / num_classes) + pixel];
        return Err(ModelError::InvalidInput(format!(
            "probability of class {class} of pixel {pixel} is {}; probabilities must be \
             finite and ≥ 0 (softmax outputs, class-major)",
            readable_number(value)
        )));
    }
    if temperature != 1.0 {
        rescale_temperature(probs, num_classes, temperature);
    }
    Ok(())
}

/// Pixels per block of [`rescale_temperature`] and [`first_invalid_probability`].
const TEMPERATURE_BLOCK: usize = 8192;

/// Whether `v` can be a probability for [`apply_temperature`]: finite and `≥ 0` (`-0.0`
/// included).
#[inline]
fn is_probability(v: f32) -> bool {
    (0.0..=f32::MAX).contains(&v)
}

/// `(pixel, class)` of the first value of class-major `probs` that is not a probability
/// ([`is_probability`]), by pixel index and then class; `None` when all are.
fn first_invalid_probability(probs: &[f32], classes: usize) -> Option<(usize, usize)> {
    use rayon::prelude::*;
    let plane = probs.len() / classes;
    let bad_block = (0..plane.div_ceil(TEMPERATURE_BLOCK))
        .into_par_iter()
        .find_first(|&b| {
            let pixels = b * TEMPERATURE_BLOCK..((b + 1) * TEMPERATURE_BLOCK).min(plane);
            !(0..classes).all(|k| {
                probs[k * plane + pixels.start..k * plane + pixels.end]
                    .iter()
                    .fold(true, |ok, &v| ok & is_probability(v))
            })
        })?;
    // Pixel by pixel in the one block that holds it (error path only).
    (bad_block * TEMPERATURE_BLOCK..((bad_block + 1) * TEMPERATURE_BLOCK).min(plane))
        .flat_map(|i| (0..classes).map(move |k| (i, k)))
        .find(|&(i, k)| !is_probability(probs[k * plane + i]))
}

/// Turns class-major `softmax(z)` into `softmax(z / T)` pixel by pixel: since
/// `ln softmax(z)_k = z_k − logsumexp(z)`, dividing the log-probabilities by `T` and taking
/// the softmax again gives exactly `softmax(z / T)` (the per-pixel constant cancels). A
/// monotone map of each pixel's probabilities, so its arg-max stays (unless `f32` rounding
/// makes two classes equal). Zero probabilities (softmax underflow) stay zero.
///
/// Blocks of pixels in parallel; inside a block each class plane is a contiguous run, and
/// [`ln_f32`] / [`exp_f32`] are branch-free, so the loops vectorise (libm's scalar calls made
/// this a third of a 2000² radiograph's `segment --probs` time).
pub(super) fn rescale_temperature(probs: &mut [f32], classes: usize, temperature: f64) {
    use rayon::prelude::*;
    let c = classes;
    let plane = probs.len() / c;
    if plane == 0 {
        return;
    }
    let inv_t = (1.0 / temperature) as f32;
    let blocks = plane.div_ceil(TEMPERATURE_BLOCK);
    let mut per_block: Vec<Vec<&mut [f32]>> = (0..blocks).map(|_| Vec::with_capacity(c)).collect();
    for class_plane in probs.chunks_exact_mut(plane) {
        for (b, chunk) in class_plane.chunks_mut(TEMPERATURE_BLOCK).enumerate() {
            per_block[b].push(chunk);
        }
    }
    per_block.into_par_iter().for_each(|mut chunks| {
        let n = chunks[0].len();
        let mut max = vec![f32::NEG_INFINITY; n];
        for chunk in chunks.iter_mut() {
            for (v, m) in chunk.iter_mut().zip(max.iter_mut()) {
                *v = ln_f32(*v) * inv_t;
                *m = m.max(*v);
            }
        }
        let mut sum = vec![0f32; n];
        for chunk in chunks.iter_mut() {
            for ((v, m), s) in chunk.iter_mut().zip(&max).zip(sum.iter_mut()) {
                *v = exp_f32(*v - *m);
                *s += *v;
            }
        }
        for chunk in chunks.iter_mut() {
            for (v, s) in chunk.iter_mut().zip(&sum) {
                // An all-zero pixel (not a distribution) stays all zero.
                *v = if *s > 0.0 { *v / *s } else { 0.0 };
            }
        }
    });
}

/// Natural logarithm of an `f32`, branch-free: `ln x = e·ln 2 + ln m` with `x = m·2^e`,
/// `m ∈ [√½, √2)`, and `ln m = 2·atanh(s)`, `s = (m − 1)/(m + 1)`, `|s| ≤ 0.172`, by its
/// odd series to `s⁹/9` (truncation below 4e-10). Within a few `f32` ulps of `f64::ln` for
/// normal positive `x`; `−∞` for `x ≤ 0` and for subnormals, which a probability of that
/// size may as well be.
#[inline]
pub(super) fn ln_f32(x: f32) -> f32 {
    const LN_2: f32 = std::f32::consts::LN_2;
    let bits = x.to_bits();
    let exponent = ((bits >> 23) & 0xff) as i32 - 127;
    let mantissa = f32::from_bits((bits & 0x007f_ffff) | 0x3f80_0000); // in [1, 2)
    let high = mantissa > std::f32::consts::SQRT_2;
    let m = if high { mantissa * 0.5 } else { mantissa };
    let e = (exponent + i32::from(high)) as f32;
    let s = (m - 1.0) / (m + 1.0);
    let s2 = s * s;
    let series =
        s * (2.0 + s2 * (2.0 / 3.0 + s2 * (2.0 / 5.0 + s2 * (2.0 / 7.0 + s2 * (2.0 / 9.0)))));
    let ln = e * LN_2 + series;
    if x >= f32::MIN_POSITIVE {
        ln
    } else {
        f32::NEG_INFINITY
    }
}

/// `eˣ` of an `f32` for `x ≤ 0`, branch-free: `eˣ = 2ⁿ·eʳ` with `n = round(x / ln 2)`,
/// `r = x − n·ln 2` (ln 2 split in two so `r` is exact to `f32`), `|r| ≤ 0.347`, and `eʳ` by
/// its Taylor series to `r⁷/7!` (truncation below 6e-9). Within a few `f32` ulps of `f64::exp`;
/// 0 below −87.3 (where `eˣ` leaves the normal `f32` range) and for `−∞`.
#[inline]
pub(super) fn exp_f32(x: f32) -> f32 {
    const LOG2_E: f32 = std::f32::consts::LOG2_E;
    const LN_2_HI: f32 = 0.693_145_75; // 12 significant bits of ln 2: n·LN_2_HI is exact
    const LN_2_LO: f32 = 1.428_606_8e-6; // ln 2 − LN_2_HI
    let xc = x.max(-87.0);
    let n = (xc * LOG2_E).round();
    let r = (xc - n * LN_2_HI) - n * LN_2_LO;
    let p = 1.0
        + r * (1.0
            + r * (0.5
                + r * (1.0 / 6.0
                    + r * (1.0 / 24.0
                        + r * (1.0 / 120.0 + r * (1.0 / 720.0 + r * (1.0 / 5040.0)))))));
    let scale = f32::from_bits(((n as i32 + 127) as u32) << 23);
    if x >= -87.0 {
        p * scale
    } else {
        0.0
    }
}
