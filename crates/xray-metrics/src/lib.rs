//! Segmentation metrics you can trust: confusion matrices, F1, AUC, calibration, reports and plots.
#![deny(missing_docs)]
