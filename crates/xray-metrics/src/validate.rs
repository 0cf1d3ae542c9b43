//! Input checks shared by every entry point.

use crate::error::{MetricsError, Result};

/// Label value meaning "do not score this pixel" (outside the collimated field, or
/// unlabelled): the same value and name as `xray_data::IGNORE_LABEL`,
/// `xnet_model::IGNORE_LABEL` and `xray_postproc::IGNORE_LABEL`.
///
/// # Examples
/// ```
/// use xray_metrics::{ConfusionMatrix, IGNORE_LABEL};
/// let cm = ConfusionMatrix::from_labels(&[0, IGNORE_LABEL, 1], &[0, 1, 1], 2).unwrap();
/// assert_eq!(cm.total(), 2); // the ignored pixel is not scored
/// ```
pub const IGNORE_LABEL: u8 = 255;

/// The ignore label under its old name: [`IGNORE_LABEL`], the name the other crates of the
/// workspace use. Kept so that code written against it still builds (with a deprecation
/// warning).
///
/// # Examples
/// ```
/// #[allow(deprecated)]
/// let old = xray_metrics::IGNORE;
/// assert_eq!(old, xray_metrics::IGNORE_LABEL);
/// ```
///
/// Its uses are flagged (here turned into an error) so that code moves to the new name:
/// ```compile_fail
/// #![deny(deprecated)]
/// let old = xray_metrics::IGNORE;
/// ```
#[deprecated(note = "use IGNORE_LABEL")]
pub const IGNORE: u8 = IGNORE_LABEL;

/// Default tolerance on `|Σ_c p_c − 1|` for one pixel. Float32 softmax outputs are within a
/// few ulps of 1; a larger error means the input is not a probability distribution
/// (logits, a missing class plane, a pixel-major layout...).
pub const DEFAULT_SUM_TOLERANCE: f64 = 1e-3;

/// Most bins a binned quantity may have: reliability bins (`n_bins` of [`crate::EvalConfig`],
/// [`crate::TemperatureConfig`], [`crate::ReliabilityBins::new`], the calibration functions,
/// [`crate::torch_bin_boundaries`]) and binned AUC ([`crate::AucMethod::Binned`],
/// [`crate::BinnedAuc::new`]). A million bins already resolve probabilities to 10⁻⁶, far finer
/// than any evaluation needs; a larger count is refused with
/// [`MetricsError::InvalidConfig`] before anything is
/// allocated (2³³ bins would ask for tens of GB, `usize::MAX` overflowed).
pub const MAX_BINS: usize = 1_000_000;

/// Refuses a bin count above [`MAX_BINS`]; `what` names the parameter (e.g. "n_bins").
pub(crate) fn check_max_bins(what: &str, bins: usize) -> Result<()> {
    if bins > MAX_BINS {
        return Err(MetricsError::InvalidConfig(format!(
            "{what} must be at most {MAX_BINS} (MAX_BINS), got {bins}"
        )));
    }
    Ok(())
}

pub(crate) fn check_num_classes(num_classes: usize) -> Result<()> {
    if !(2..=255).contains(&num_classes) {
        return Err(MetricsError::InvalidConfig(format!(
            "num_classes must be in 2..=255 (255 is the ignore label), got {num_classes}"
        )));
    }
    Ok(())
}

pub(crate) fn check_len(what: &str, expected: usize, found: usize) -> Result<()> {
    if expected != found {
        return Err(MetricsError::LengthMismatch {
            what: what.to_string(),
            expected,
            found,
        });
    }
    Ok(())
}

/// Checks that `found` values are `width × height` pixels and returns the pixel count;
/// `what` names the input. A product that overflows `usize` is a mismatch too: no slice is
/// that long (`expected` then saturates at `usize::MAX` and `what` says it overflows).
pub(crate) fn check_image_len(
    what: &str,
    width: usize,
    height: usize,
    found: usize,
) -> Result<usize> {
    match width.checked_mul(height) {
        Some(n) => {
            check_len(&format!("{what} ({width} × {height} pixels)"), n, found)?;
            Ok(n)
        }
        None => Err(MetricsError::LengthMismatch {
            what: format!("{what} ({width} × {height} pixels, a product that overflows usize)"),
            expected: usize::MAX,
            found,
        }),
    }
}

/// Checks `probs.len() == num_classes * labels.len()` and returns the pixel count.
pub(crate) fn check_planes(labels: &[u8], probs: &[f32], num_classes: usize) -> Result<usize> {
    check_num_classes(num_classes)?;
    let n = labels.len();
    check_len(
        &format!("probabilities ({num_classes} class planes × {n} pixels)"),
        n * num_classes,
        probs.len(),
    )?;
    Ok(n)
}

/// Finds the first label that is neither a class nor [`IGNORE_LABEL`].
///
/// `l + 1` wraps [`IGNORE_LABEL`] (255) to 0, so every label is valid when the largest `l + 1`
/// is at most `num_classes`: a branch-free byte maximum per chunk, which vectorises, and
/// a search for the position only in a chunk that fails.
pub(crate) fn first_bad_label(labels: &[u8], num_classes: usize) -> Result<()> {
    const CHUNK: usize = 4096;
    for (k, chunk) in labels.chunks(CHUNK).enumerate() {
        let top = chunk.iter().fold(0u8, |t, &l| t.max(l.wrapping_add(1)));
        if usize::from(top) <= num_classes {
            continue;
        }
        if let Some(i) = chunk
            .iter()
            .position(|&l| l as usize >= num_classes && l != IGNORE_LABEL)
        {
            let pixel = k * CHUNK + i;
            return Err(MetricsError::LabelOutOfRange {
                pixel,
                label: labels[pixel],
                num_classes,
            });
        }
    }
    Ok(())
}

/// Finds the first probability outside `[0, 1]` (NaN and the infinities included) in `probs`,
/// class planes of `n` values each, plane by plane: the check accumulators run before they
/// take anything in, so that a refused call leaves them as they were.
pub(crate) fn first_bad_probability(probs: &[f32], n: usize) -> Result<()> {
    let bad = |v: &f32| !(0.0..=1.0).contains(v);
    match probs.iter().position(bad) {
        None => Ok(()),
        Some(i) => Err(MetricsError::InvalidProbability {
            pixel: i % n.max(1),
            class: i / n.max(1),
            value: probs[i],
        }),
    }
}

/// Slow path run only after a fast kernel flagged a problem, to name the first bad pixel.
pub(crate) fn explain_bad_probs(
    probs: &[f32],
    n: usize,
    num_classes: usize,
    tolerance: f64,
) -> MetricsError {
    for i in 0..n {
        let mut sum = 0.0f64;
        for c in 0..num_classes {
            let v = probs[c * n + i];
            if !(0.0..=1.0).contains(&v) {
                return MetricsError::InvalidProbability {
                    pixel: i,
                    class: c,
                    value: v,
                };
            }
            sum += v as f64;
        }
        if (sum - 1.0).abs() > tolerance {
            return MetricsError::ProbabilitiesNotNormalised {
                pixel: i,
                sum,
                tolerance,
            };
        }
    }
    MetricsError::InvalidConfig("probability check failed but no bad pixel was found".into())
}

#[cfg(test)]
mod tests {
    use super::{first_bad_label, IGNORE_LABEL};
    use crate::MetricsError;

    /// The first bad label is named at its pixel, also past the first chunk and after
    /// ignored pixels; ignored labels and the largest class pass.
    #[test]
    fn first_bad_label_names_the_first_offender() {
        let mut labels = vec![2u8; 10_000];
        for i in (0..labels.len()).step_by(7) {
            labels[i] = IGNORE_LABEL;
        }
        assert!(first_bad_label(&labels, 3).is_ok());
        assert!(first_bad_label(&labels, 2).is_err());
        for at in [0, 4095, 4096, 9_999] {
            let mut bad = labels.clone();
            bad[at] = 3;
            if let Some(later) = bad.get_mut(at + 10) {
                *later = 200;
            }
            match first_bad_label(&bad, 3) {
                Err(MetricsError::LabelOutOfRange {
                    pixel,
                    label,
                    num_classes,
                }) => assert_eq!((pixel, label, num_classes), (at, 3, 3)),
                other => panic!("pixel {at}: {other:?}"),
            }
        }
        assert!(first_bad_label(&[254, IGNORE_LABEL, 0], 255).is_ok());
        assert!(first_bad_label(&[], 1).is_ok());
    }
}
