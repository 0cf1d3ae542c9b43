//! XNet, U-Net, SegNet and DeepLab-lite on candle: networks, losses, training,
//! checkpoints and inference for segmenting X-ray radiographs into open beam, soft tissue
//! and bone.
//!
//! Labels follow the workspace convention: `0` open beam, `1` soft tissue, `2` bone and
//! `255` ignored; the number of classes is configuration, not a constant.
#![deny(missing_docs)]

pub mod checkpoint;
pub mod error;
pub mod infer;
pub mod kernels;
pub mod loss;
pub mod models;
pub mod ops;
pub mod optim;
pub mod train;

pub use error::{ModelError, Result};
pub use models::{ModelConfig, Segmenter};

/// The label value that marks pixels excluded from losses and metrics.
pub const IGNORE_LABEL: u8 = 255;
