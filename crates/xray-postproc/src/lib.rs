//! Post-processing of radiograph segmentations: thresholds, clean-up, collimator detection and overlays.
#![deny(missing_docs)]
