//! The jobs a user runs, built from the four crates of the workspace: training, evaluation,
//! segmentation of real radiographs and the side-by-side comparison of architectures.
//!
//! The examples under `examples/` are thin command-line wrappers around these functions, so
//! that their core paths are tested on tiny configurations (`tests/jobs.rs`) and can be
//! called from other programs.
//!
//! | module | job |
//! |---|---|
//! | [`prepare`] | how an image becomes network input (shared by training and inference) |
//! | [`source`] | dataset folders as batch sources for the trainer (augmentation, balancing) |
//! | [`predict`] | a loaded checkpoint that returns probabilities at the input's size |
//! | [`calibrate`] | the softmax temperature fitted on labelled images |
//! | [`train`] | `train`: synthetic or given data → checkpoint, report, plots, overlays |
//! | [`evaluate`] | `evaluate`: checkpoint + labelled folder → report and plots |
//! | [`segment`] | `segment`: radiographs → labels, field, overlays |
//! | [`compare`] | `compare`: every architecture under one budget → one table |
#![deny(missing_docs)]

pub mod calibrate;
pub mod compare;
pub mod error;
pub mod evaluate;
pub mod predict;
pub mod prepare;
pub mod segment;
pub mod source;
pub mod train;

pub use error::{Error, Result};

/// Class names of the project's convention, in label order.
pub const CLASS_NAMES: [&str; 3] = ["open beam", "soft tissue", "bone"];

/// Directory of the shipped CPU-sized XNet checkpoint (`model.safetensors` +
/// `config.json`), used by `segment` when no `--weights` are given.
pub fn shipped_weights_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/weights/xnet-small")
}
