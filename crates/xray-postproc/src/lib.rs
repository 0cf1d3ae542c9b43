//! Post-processing of radiograph segmentations: thresholds, clean-up, collimator detection and overlays.
//!
//! Inputs are plain data: class-major `C × H × W` probabilities ([`ProbMap`]) and `f32`
//! image planes ([`Plane`], larger = more X-rays). Labels follow the project's convention:
//! `0` open beam, `1` soft tissue, `2` bone, [`IGNORE_LABEL`] (255) for uncertain pixels and
//! pixels outside the collimated field (`IGNORE`, its old name, is a deprecated alias).
//!
//! - [`threshold`]: the soft-tissue confidence threshold, per-category thresholds, the
//!   "uncertain" threshold, and [`threshold_sweep`] to choose `t`;
//! - [`mod@cleanup`]: XNet's bone clean-up, small components, holes, largest component;
//! - [`collimator`]: [`detect_collimator`] finds the exposed field from the image alone;
//! - [`baseline`]: a classical, network-free segmenter for comparison;
//! - [`pipeline`]: [`Pipeline`] ties the steps together from a serde config;
//! - [`mod@overlay`]: label maps blended over the radiograph in fixed colours, PNG output.
//!
//! # Sizes
//!
//! A [`ProbMap`] is tensor-like (one image of a softmax's `[N, C, H, W]`) and takes
//! `classes, height, width`, as candle does; a [`Plane`] and the other image-like inputs
//! (collimator geometry: [`Line::clip_to`], [`edge_distance`]) take `width, height`, as the
//! `image` crate does (`ImageBuffer::new(width, height)`). Both are plain `usize`s, so a
//! swapped pair compiles: every function here that takes a size says its order under
//! `# Shapes`.
//!
//! # Changes
//!
//! - 2026-12-02: [`save_png`] takes `(path, img)`, the path first as in xray-data's savers
//!   (`save_png16(path, img)`, `save_mask(path, mask)`); it took `(img, path)`. A call in the
//!   old order does not compile, so it cannot go wrong silently: swap the two arguments.
#![deny(missing_docs)]

/// Replacing files atomically ([`save_png`]). Shared with the other crates by source.
#[path = "../../shared-src/atomic_write.rs"]
mod atomic_write;
pub mod baseline;
pub mod cleanup;
pub mod collimator;
pub mod error;
pub mod overlay;
pub mod pipeline;
pub mod probs;
pub mod threshold;

pub use baseline::{baseline_segment, multi_otsu, BaselineConfig};
pub use cleanup::{
    bone_cleanup, cleanup, fill_holes, keep_largest_component, remove_small_components,
    CleanupConfig, Connectivity, HoleFill,
};
pub use collimator::{
    detect_collimator, edge_distance, Collimator, CollimatorConfig, FieldEdge, InputScale, Line,
    Side,
};
pub use error::{PostprocError, Result};
pub use overlay::{
    overlay, save_png, OverlayConfig, CLASS_COLOURS, FIELD_EDGE_COLOUR, UNCERTAIN_COLOUR,
};
pub use pipeline::{Pipeline, PipelineConfig, PipelineOutput};
pub use probs::{Plane, ProbMap};
#[allow(deprecated)]
pub use threshold::IGNORE;
pub use threshold::{
    apply_thresholds, argmax, threshold_sweep, SweepPoint, ThresholdConfig, IGNORE_LABEL,
};

/// `x.round() as u32` for every `x`, without a library call: on the x86-64
/// baseline, `f32::round` is a call to `roundf` (no SSE4.1), which showed up as 9 % of the
/// `segment` example's time when quantising images and probability maps pixel by pixel.
/// Meant for non-negative values (NaN and negative inputs give 0, as `x.round() as u32`
/// does; large ones saturate as it does).
///
/// # Examples
/// ```
/// use xray_postproc::round_nonnegative;
/// assert_eq!(round_nonnegative(2.5), 3);
/// assert_eq!(round_nonnegative(2.4999998), 2);
/// assert_eq!(round_nonnegative(65534.5), 65535);
/// assert_eq!(round_nonnegative(f32::NAN), 0);
/// assert_eq!(round_nonnegative(-0.7), 0);
/// ```
#[inline]
pub fn round_nonnegative(x: f32) -> u32 {
    // `as` truncates (saturating, NaN → 0). The fraction `x − i` is exact: below 2²³ `i`
    // and `x` share a binade or differ by less than one unit, and from 2²³ up every float
    // is an integer (fraction 0). Comparing it with ½ rounds half away from zero, as
    // `f32::round`.
    let i = x as u32;
    i.saturating_add(u32::from(x - i as f32 >= 0.5))
}

#[cfg(test)]
mod tests {
    use super::round_nonnegative;

    fn agrees(x: f32) {
        assert_eq!(
            round_nonnegative(x),
            x.round() as u32,
            "x = {x:e} ({:#010x})",
            x.to_bits()
        );
    }

    #[test]
    fn round_nonnegative_is_f32_round() {
        // Every 251st bit pattern: all signs, binades, NaNs and infinities.
        for bits in (0..=u32::MAX).step_by(251) {
            agrees(f32::from_bits(bits));
        }
        // The halves and their neighbours, where rounding decides, up to 2¹⁷.
        for k in 0..(1u32 << 17) {
            let half = k as f32 + 0.5;
            for x in [
                half.next_down(),
                half,
                half.next_up(),
                k as f32,
                (k as f32).next_up(),
            ] {
                agrees(x);
            }
        }
        for x in [
            0.0,
            -0.0,
            f32::INFINITY,
            f32::NEG_INFINITY,
            f32::NAN,
            4294967040.0,
            1e30,
        ] {
            agrees(x);
        }
    }
}
