//! Post-processing of radiograph segmentations: thresholds, clean-up, collimator detection and overlays.
//!
//! Inputs are plain data: class-major `C × H × W` probabilities ([`ProbMap`]) and `f32`
//! image planes ([`Plane`], larger = more X-rays). Labels follow the project's convention:
//! `0` open beam, `1` soft tissue, `2` bone, [`IGNORE`] (255) for uncertain pixels and pixels
//! outside the collimated field.
//!
//! - [`threshold`]: the soft-tissue confidence threshold, per-category thresholds, the
//!   "uncertain" threshold, and [`threshold_sweep`] to choose `t`;
//! - [`mod@cleanup`]: XNet's bone clean-up, small components, holes, largest component;
//! - [`collimator`]: [`detect_collimator`] finds the exposed field from the image alone;
//! - [`baseline`]: a classical, network-free segmenter for comparison;
//! - [`pipeline`]: [`Pipeline`] ties the steps together from a serde config;
//! - [`mod@overlay`]: label maps blended over the radiograph in fixed colours, PNG output.
#![deny(missing_docs)]

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
pub use threshold::{
    apply_thresholds, argmax, threshold_sweep, SweepPoint, ThresholdConfig, IGNORE,
};
