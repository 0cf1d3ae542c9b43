//! Segmentation metrics you can trust: confusion matrices, F1, AUC, calibration, reports and plots.
//!
//! Inputs are plain slices, no candle or image types: labels `&[u8]` (255 = ignore) and
//! softmax probabilities `&[f32]` laid out class-major (`C` planes of `width × height`).
//! Numbers are checked against scikit-learn, torchmetrics and scipy (`tests/golden/`).
//!
//! - [`Evaluator`]: add images one by one, then [`Evaluator::finish`] gives a [`Report`]
//!   (JSON via serde, Markdown via [`Report::to_markdown`]);
//! - plots: [`save_plots`] (ROC, reliability, confusion), [`plot_training_curves`];
//! - building blocks: [`ConfusionMatrix`] and [`ConfusionMatrix::score`], [`roc_auc_ovr`] /
//!   [`ExactAuc`] / [`BinnedAuc`], [`calibration_error`] (and the float32, torchmetrics-exact
//!   [`calibration_error_torch_f32`]), [`classwise_reliability`], [`fit_temperature`],
//!   [`surface_distances`] / [`surface_distances_with_spacing`] (row and column [`Spacing`]
//!   apart, in a stated [`DistanceUnit`]).
//!
//! ```
//! use xray_metrics::{EvalConfig, Evaluator};
//! let mut ev = Evaluator::new(EvalConfig::new(["open beam", "soft tissue", "bone"])).unwrap();
//! let (w, h) = (2, 1);
//! let labels = [0u8, 2];
//! let probs = [0.7f32, 0.1, /* soft tissue */ 0.2, 0.2, /* bone */ 0.1, 0.7];
//! ev.add_image(&labels, &probs, w, h).unwrap();
//! let report = ev.finish().unwrap();
//! assert_eq!(report.accuracy, Some(1.0));
//! assert_eq!(report.auc.weighted, None); // soft tissue has no pixel: AUC undefined, not a number
//! ```
//!
//! # Sizes
//!
//! Functions that take an image's size take `width`, then `height`, as the `image` crate does
//! ([`Evaluator::add_image`]`(labels, probs, width, height)`, [`surface_distances`],
//! [`squared_distance_transform`]); `add_image` sizes its class-major `C × H × W`
//! probabilities by the same pair. The workspace's tensor-like types (xnet-model's functions,
//! xray-postproc's `ProbMap::new(data, classes, height, width)`) take (classes,) `height`,
//! then `width`, as candle does. Both are plain integers, so a swapped pair compiles: every
//! function here that takes a size says its order under `# Shapes`.
#![deny(missing_docs)]

/// Replacing files atomically: the reports and plots an earlier evaluation wrote must
/// survive a rewrite that fails part way. Shared with the other crates by source.
#[path = "../../shared-src/atomic_write.rs"]
mod atomic_write;
mod boundary;
mod calibration;
mod calibration_kernel;
mod confusion;
mod error;
mod evaluator;
mod plot;
mod report;
mod roc;
mod scores;
mod spacing;
mod temperature;
mod validate;

pub use boundary::{
    squared_distance_transform, squared_distance_transform_with_spacing, surface_distances,
    surface_distances_with_spacing, SurfaceDistance,
};
pub use calibration::{
    calibration_bins, calibration_error, calibration_error_torch_f32, classwise_reliability,
    torch_bin_boundaries, CalibrationNorm, Reliability, ReliabilityBin, ReliabilityBins,
};
pub use confusion::ConfusionMatrix;
pub use error::{MetricsError, Result};
pub use evaluator::{AucMethod, EvalConfig, Evaluator};
pub use plot::{
    plot_confusion, plot_reliability, plot_roc, plot_training_curves, register_font, save_plots,
    TrainingLog,
};
pub use report::{
    AucSummary, Averages, BoundarySummary, EqualMassSummary, PerImageSummary, Report,
    SpacingSummary,
};
pub use roc::{roc_auc_ovr, roc_ovr, AucResult, BinnedAuc, ClassRoc, ExactAuc, MicroAuc, RocPoint};
pub use scores::{mean_over_images, Average, ClassMetric, Score, ZeroDivision};
pub use spacing::{DistanceUnit, Spacing};
pub use temperature::{
    fit_temperature, softmax_with_temperature, LogitImage, TemperatureConfig, TemperatureFit,
};
#[allow(deprecated)]
pub use validate::IGNORE;
pub use validate::{DEFAULT_SUM_TOLERANCE, IGNORE_LABEL, MAX_BINS};
