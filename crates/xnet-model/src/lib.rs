//! XNet, U-Net, SegNet and DeepLab-lite on candle: networks, losses, training,
//! checkpoints and inference for segmenting X-ray radiographs into open beam, soft tissue
//! and bone.
//!
//! Labels follow the workspace convention: `0` open beam, `1` soft tissue, `2` bone and
//! `255` ignored; the number of classes is configuration, not a constant.
//!
//! # Segmenting an image from another crate
//!
//! Load a checkpoint (weights + config, as written by [`checkpoint::save`] or the trainer),
//! fold its batch norms for inference ([`Segmenter::fold_batch_norm`]), get `C × H × W`
//! probabilities with [`infer::predict_proba`] and take the arg-max. The image plane must be
//! normalised as the training data were; any size works (small images are padded, large ones
//! tiled). A checkpoint from the `train` job also holds the softmax temperature fitted on its
//! validation split (`metadata["temperature"]`): [`infer::apply_temperature`] takes the
//! probabilities to it, for calibrated confidences with the same arg-max.
//!
//! ```
//! use candle_core::Device;
//! use xnet_model::{checkpoint, infer};
//! # use candle_core::DType;
//! # use candle_nn::{VarBuilder, VarMap};
//! # use xnet_model::models::{ModelConfig, XNetConfig};
//! # fn main() -> xnet_model::Result<()> {
//! # // Make a small (untrained) checkpoint to load.
//! # let dir = std::env::temp_dir().join(format!("xnet-model-doc-{}", std::process::id()));
//! # let varmap = VarMap::new();
//! # let cfg = ModelConfig::XNet(XNetConfig { base_width: 2, ..Default::default() });
//! # cfg.build(VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu))?;
//! # checkpoint::save(&dir, &varmap, &cfg, serde_json::Value::Null)?;
//! let (height, width) = (40, 52);
//! let image: Vec<f32> = vec![0.25; height * width]; // a normalised radiograph plane
//!
//! let mut loaded = checkpoint::load(&dir, &Device::Cpu)?;
//! // Inference only: one convolution per block instead of convolution + batch norm.
//! loaded.model.fold_batch_norm()?;
//! let probs = infer::predict_proba(
//!     loaded.model.as_ref(), &image, height, width, &infer::InferenceOptions::default())?;
//! let classes = infer::argmax_classes(&probs, loaded.model.num_classes(), height, width)?;
//! assert_eq!(classes.len(), height * width); // 0 open beam, 1 soft tissue, 2 bone
//! # std::fs::remove_dir_all(&dir).ok();
//! # Ok(())
//! # }
//! ```
#![deny(missing_docs)]

pub mod checkpoint;
pub mod error;
pub mod infer;
pub mod init;
pub mod kernels;
pub mod loss;
pub mod memory;
pub mod models;
pub mod ops;
pub mod optim;
pub mod runtime;
pub mod train;

pub use error::{ModelError, Result};
pub use models::{ModelConfig, Segmenter};

/// The label value that marks pixels excluded from losses and metrics.
pub const IGNORE_LABEL: u8 = 255;
