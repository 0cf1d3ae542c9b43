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
//! prepared as the training data were: [`infer::predict_proba`] runs any size (small images
//! are padded, large ones tiled), but a network trained on whole radiographs shrunk to a
//! small input, as the `train` job's and the shipped weights are, must be given the image at
//! that size (see [the next section](#checkpoints-of-the-train-job-and-the-shipped-weights)).
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
//!
//! # Checkpoints of the `train` job and the shipped weights
//!
//! The workspace's `train` job (and so `fixtures/weights/xnet-small`) records in
//! `config.json`'s metadata what inference must repeat:
//!
//! | key | what it means | what to do |
//! |---|---|---|
//! | `preprocess` | `{"width", "height", "log", "percentile"}` ([`checkpoint::PreprocessRecord`], from [`checkpoint::LoadedModel::preprocess`]): every training radiograph was shrunk whole to `width × height` (area averaging), then normalised per image: min-max to `0..=1`, or the `percentile: [low, high]` window; after `ln(1 + v − min)` when `log` | the same with `xray-data`: `resize::resize(&image, width, height, Filter::Area)`, then `normalize::normalize` (`Method::MinMax` or `Method::Percentile`, `log`); run the network on that `height × width` plane in one tile ([`infer::InferenceOptions::tile_size`] at least `max(width, height)`, `overlap` 0) |
//! | `flip_average` | `"off"`, `"horizontal"` or `"horizontal_vertical"` ([`infer::FlipAverage`]; absent: off) | [`infer::InferenceOptions::flip_average`], from [`checkpoint::LoadedModel::flip_average`] |
//! | `temperature` | the softmax temperature fitted on the validation split, with that flip averaging | [`infer::apply_temperature`] on the probabilities, with [`checkpoint::LoadedModel::temperature`] |
//!
//! The probabilities come out at `width × height`: resize each class plane back to the
//! radiograph (`Filter::Bilinear`), divide each pixel's by their sum
//! (`xray_data::resize::resize_probabilities` does both), then apply the temperature (it
//! keeps every pixel's arg-max). A full-size radiograph given straight to
//! [`infer::predict_proba`] instead is tiled at a scale the network never saw: on the NEMA
//! chest radiograph (1841 × 1955) the shipped weights then call 40 % of it soft tissue
//! instead of 15 %, and take 10 s instead of a fraction of one. In this workspace
//! `xray_seg::predict::Predictor` does all of the above (`tests/embedding.rs` checks that
//! these steps give its probabilities).
//!
//! ```
//! use candle_core::Device;
//! use xnet_model::{checkpoint, infer};
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let shipped = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
//! #     .join("../../fixtures/weights/xnet-small");
//! let mut loaded = checkpoint::load(&shipped, &Device::Cpu)?;
//! loaded.model.fold_batch_norm()?;
//! // Each checked: a record that does not fit the network, an unknown averaging or a
//! // temperature out of range is an error.
//! let record = loaded.preprocess()?.ok_or("no metadata.preprocess")?;
//! let (width, height) = (record.width as usize, record.height as usize);
//! assert_eq!((width, height), (128, 128));
//! let flip_average = loaded.flip_average()?; // `Off` when not recorded
//! let temperature = loaded.temperature()?.unwrap_or(1.0);
//!
//! // `plane`: the radiograph resized to width × height and normalised (xray-data).
//! # let plane = vec![0.5f32; width * height];
//! // One tile holding the whole network input, as in training (the default tile, 512 px,
//! // would cut a checkpoint trained at a larger size into tiles).
//! let opts = infer::InferenceOptions {
//!     flip_average,
//!     tile_size: width.max(height),
//!     overlap: 0,
//!     ..Default::default()
//! };
//! let mut probs = infer::predict_proba(loaded.model.as_ref(), &plane, height, width, &opts)?;
//! // ... resize each class plane back to the radiograph and renormalise
//! // (xray_data::resize::resize_probabilities), then:
//! infer::apply_temperature(&mut probs, loaded.model.num_classes(), temperature)?;
//! # Ok(())
//! # }
//! ```
//!
//! A program that must not depend on files beside it (a device's firmware) can carry the
//! checkpoint inside itself: [`checkpoint::load_from_bytes`] takes the bytes of the two
//! files (`include_bytes!("model/config.json")`, `include_bytes!("model/model.safetensors")`)
//! with every check [`checkpoint::load`] makes.
//!
//! # Cargo features
//!
//! | feature | default | what it adds |
//! |---|---|---|
//! | `avx512` | yes | `gemm`'s AVX-512 micro-kernels, picked at run time on CPUs with AVX-512F |
//! | `progress` | yes | the trainer's indicatif progress bar on stderr ([`train::TrainConfig::progress`]); without it no bar is drawn and indicatif is not built |
//! | `cuda`, `cudnn` | no | the CUDA path (needs `nvcc`), and cuDNN convolutions |
//! | `mkl` | no | candle's MKL back end |
//!
//! A program that only runs networks can depend on the crate with
//! `default-features = false, features = ["avx512"]`.
//!
//! # Sizes
//!
//! Everything here takes sizes in tensor order, as candle does: (batch `n`,) (channels or
//! classes,) `height`, then `width`, the order of the `[N, C, H, W]` shapes the networks read
//! and write, also where the input is a plain plane or label map that becomes a tensor
//! (`infer::predict_proba(model, image, height, width, opts)`,
//! `loss::boundary_weight_map(labels, height, width, ..)`, `ops::resize_bilinear(x, out_h,
//! out_w)`, `forward_flops(h, w)`). The workspace's image-like types take `width`, then
//! `height`, as the `image` crate does (`ImageBuffer::new(width, height)`: xray-data,
//! xray-metrics, xray-postproc's `Plane`). Both orders are plain integers, so a swapped pair
//! compiles: every function here that takes a size says its order under `# Shapes`.
#![deny(missing_docs)]

/// Replacing files atomically (`checkpoint::write_bytes_atomic`). Shared with the other
/// crates by source, so that every file of the workspace is written under the one temporary
/// name that `checkpoint::remove_stale_temporaries` recognises.
#[path = "../../shared-src/atomic_write.rs"]
mod atomic_write;
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
