//! A toy network and its data for the trainer's tests (`train_loop`, `train_crash_recovery`,
//! `train_io_errors`): a 3×3 convolution, zero-initialised, on small batches whose classes
//! follow intensity bands, so that a run is deterministic and takes milliseconds.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use candle_core::{DType, Device, Module, Tensor};
use candle_nn::{Init, VarBuilder, VarMap};
use xnet_model::checkpoint;
use xnet_model::models::ModelConfig;
use xnet_model::optim::OptimizerConfig;
use xnet_model::train::{EpochRecord, InMemoryBatches, TrainBatch, TrainConfig};
use xnet_model::{Result, Segmenter};

/// A 3×3 convolution with deterministic (zero) initial weights; `poison` makes it return NaN.
pub struct Toy {
    weight: Tensor,
    bias: Tensor,
    /// Set: the forward returns NaN.
    pub poison: AtomicBool,
}

impl Toy {
    /// The toy network, its two tensors created in `vb` as zeros.
    pub fn new(vb: VarBuilder) -> Self {
        Self {
            weight: vb
                .get_with_hints((3, 1, 3, 3), "conv.weight", Init::Const(0.0))
                .unwrap(),
            bias: vb.get_with_hints(3, "conv.bias", Init::Const(0.0)).unwrap(),
            poison: AtomicBool::new(false),
        }
    }
}

impl Module for Toy {
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let y = x
            .conv2d(&self.weight, 1, 1, 1, 1)?
            .broadcast_add(&self.bias.reshape((1, 3, 1, 1))?)?;
        if self.poison.load(Ordering::SeqCst) {
            y * f64::NAN
        } else {
            Ok(y)
        }
    }
}

impl Segmenter for Toy {
    fn num_classes(&self) -> usize {
        3
    }
    fn size_multiple(&self) -> usize {
        1
    }
    fn config(&self) -> ModelConfig {
        ModelConfig::default()
    }
    fn fold_batch_norm(&mut self) -> Result<usize> {
        Ok(0)
    }
}

/// Intensity bands → classes (0.9 open beam, 0.5 tissue, 0.1 bone), a few ignored pixels.
pub fn batch(seed: usize) -> TrainBatch {
    let (n, h, w) = (2, 12, 12);
    let mut images = Vec::new();
    let mut labels = Vec::new();
    for i in 0..n * h * w {
        let class = (i * 31 + seed * 7 + (i / 5) * 3) % 3;
        images.push([0.9f32, 0.5, 0.1][class] + ((i * 13) % 7) as f32 * 0.005);
        labels.push(if i % 29 == 0 { 255 } else { class as u8 });
    }
    TrainBatch::new(images, labels, n, h, w).unwrap()
}

/// Two training batches and one validation batch.
pub fn sources() -> (InMemoryBatches, InMemoryBatches) {
    (
        InMemoryBatches::new(vec![batch(0), batch(1)]),
        InMemoryBatches::new(vec![batch(2)]),
    )
}

/// Adam at 0.05 for `epochs` epochs, no progress bar, no early stopping.
pub fn config(epochs: usize) -> TrainConfig {
    TrainConfig {
        epochs,
        optimizer: OptimizerConfig::adam(0.05),
        progress: false,
        early_stopping_patience: None,
        ..Default::default()
    }
}

/// `$TMPDIR/xnet-train-<tag>-<pid>`, removed if it exists (not created).
pub fn temp_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("xnet-train-{tag}-{}", std::process::id()));
    std::fs::remove_dir_all(&d).ok();
    d
}

/// The epoch records of the run folder `dir`'s log.
pub fn read_log(dir: &Path) -> Vec<EpochRecord> {
    std::fs::read_to_string(dir.join("log.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Every value of `varmap`, its tensors in name order.
pub fn weights(varmap: &VarMap) -> Vec<f32> {
    let data = varmap.data().lock().unwrap();
    let mut names: Vec<_> = data.keys().cloned().collect();
    names.sort();
    names
        .iter()
        .flat_map(|n| {
            data[n]
                .as_tensor()
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap()
        })
        .collect()
}

/// The toy network's weights saved in the checkpoint folder `dir`.
pub fn saved_weights(dir: &Path) -> Vec<f32> {
    let dev = Device::Cpu;
    let vm = VarMap::new();
    let _toy = Toy::new(VarBuilder::from_varmap(&vm, DType::F32, &dev));
    checkpoint::load_weights_into(&vm, &dir.join("model.safetensors"), &dev).unwrap();
    weights(&vm)
}
