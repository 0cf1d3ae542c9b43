//! Segmentation metrics you can trust: confusion matrices, F1, AUC, calibration, reports and plots.
#![deny(missing_docs)]

mod boundary;
mod calibration;
mod confusion;
mod error;
mod evaluator;
mod plot;
mod report;
mod roc;
mod scores;
mod temperature;
mod validate;

pub use boundary::{squared_distance_transform, surface_distances, SurfaceDistance};
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
};
pub use roc::{roc_auc_ovr, roc_ovr, AucResult, BinnedAuc, ClassRoc, ExactAuc, RocPoint};
pub use scores::{mean_over_images, Average, ClassMetric, Score, ZeroDivision};
pub use temperature::{
    fit_temperature, softmax_with_temperature, LogitImage, TemperatureConfig, TemperatureFit,
};
pub use validate::{DEFAULT_SUM_TOLERANCE, IGNORE};
