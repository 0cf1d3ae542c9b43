//! Input checks shared by every entry point.

use crate::error::{MetricsError, Result};

/// Label value meaning "do not score this pixel".
pub const IGNORE: u8 = 255;

/// Default tolerance on `|Σ_c p_c − 1|` for one pixel. Float32 softmax outputs are within a
/// few ulps of 1; a larger error means the input is not a probability distribution
/// (logits, a missing class plane, a pixel-major layout...).
pub const DEFAULT_SUM_TOLERANCE: f64 = 1e-3;

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

/// Finds the first label that is neither a class nor [`IGNORE`].
pub(crate) fn first_bad_label(labels: &[u8], num_classes: usize) -> Result<()> {
    match labels
        .iter()
        .position(|&l| l as usize >= num_classes && l != IGNORE)
    {
        Some(pixel) => Err(MetricsError::LabelOutOfRange {
            pixel,
            label: labels[pixel],
            num_classes,
        }),
        None => Ok(()),
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
