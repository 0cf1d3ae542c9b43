//! The training loop.
//!
//! A [`Trainer`] takes batches through the narrow [`BatchSource`] trait (plain data:
//! [`TrainBatch`]), so that any loader, augmenter or balancer can feed it. Each epoch it
//! trains, evaluates on a validation source (loss and pixel accuracy), steps the learning-rate
//! schedule, keeps the best checkpoint, appends one JSON line to a log and stops early when
//! the validation loss has not improved for `patience` epochs.
//!
//! With a checkpoint directory `dir` set it writes:
//! - `dir/best/`: [`crate::checkpoint`] of the epoch with the lowest validation
//!   loss (its metadata: the epoch, its losses and whatever
//!   [`Trainer::with_checkpoint_metadata`] adds);
//! - `dir/last/`: checkpoint of the last finished epoch plus `optimizer.safetensors` and
//!   `trainer_state.json`, from which [`Trainer::resume`] continues;
//! - `dir/log.jsonl`: one [`EpochRecord`] per line;
//! - `dir/train_config.json`: the [`TrainConfig`].
//!
//! `best/` and `last/` are each replaced as a whole: written into `<name>.partial/`, then
//! swapped in by renames, every file flushed to the disk first. A process killed at any point
//! leaves the previous epoch's checkpoint or the new one, never files of both;
//! [`Trainer::resume`] finishes or undoes a swap it finds interrupted, and drops the log
//! records of epochs it will train again, so each epoch is logged once. An epoch saves its
//! log record, then `last/`, then `best/`; a run stopped between the last two gets its
//! `best/` written from `last/` on resume, so `best/` holds the epoch the trainer state
//! names. (Runs saved before this order wrote `best/` first; one stopped right after that
//! keeps a `best/` of the epoch it trains again.)
//!
//! A NaN or infinite loss (or gradient norm) stops training with
//! [`ModelError::NonFinite`]; the update that produced it is not applied and `dir/last/`
//! still holds the last good state.

// Files: `batch.rs` (the batches and their sources), `config.rs` (the hyper-parameters),
// `evaluate.rs` (loss and accuracy on a source), `run_files.rs` (the checkpoint folder: resume,
// `best/`, `last/`, the log), and here the records and the trainer itself.

use std::path::PathBuf;
use std::time::Instant;

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::VarMap;
use serde::{Deserialize, Serialize};

use crate::checkpoint;
use crate::loss::{add_l2_gradient, l2_penalty};
use crate::optim::{LrScheduler, Optimizer};
use crate::{ModelError, Result, Segmenter};

mod batch;
mod config;
mod evaluate;
mod run_files;

pub use batch::{BatchSource, InMemoryBatches, TrainBatch};
pub use config::TrainConfig;
pub use evaluate::{evaluate, Evaluation};
use evaluate::{pixel_weights, EvalAccumulator};
use run_files::{append_log, best_metadata, LAST_DIR, LOG_FILE, STATE_FILE, TRAIN_CONFIG_FILE};

/// One line of the training log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochRecord {
    /// Epoch (0-based).
    pub epoch: usize,
    /// Mean data loss over the epoch's training batches (pixel-weighted, without L2).
    pub train_loss: f64,
    /// The L2 penalty at the end of the epoch.
    pub l2_penalty: f64,
    /// Validation loss (data term only), when a validation source was given.
    pub val_loss: Option<f64>,
    /// Validation pixel accuracy over non-ignored pixels.
    pub val_accuracy: Option<f64>,
    /// Learning rate used during the epoch.
    pub lr: f64,
    /// Wall-clock seconds of the epoch (training and validation).
    pub seconds: f64,
    /// Whether this epoch became the best checkpoint.
    pub best: bool,
}

/// The resumable state of a run (`trainer_state.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainState {
    /// The next epoch to run.
    pub next_epoch: usize,
    /// Lowest monitored loss so far (validation loss, or training loss without validation).
    pub best_loss: Option<f64>,
    /// Epoch of `best_loss`.
    pub best_epoch: Option<usize>,
    /// Epochs since the last improvement.
    pub epochs_without_improvement: usize,
    /// The learning-rate scheduler.
    pub scheduler: LrScheduler,
}

/// What [`Trainer::fit`] returns.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainSummary {
    /// One record per epoch run by this call.
    pub epochs: Vec<EpochRecord>,
    /// Epochs run over the whole run, resumes included.
    pub epochs_run: usize,
    /// Epoch with the lowest monitored loss (over the whole run, resumes included).
    pub best_epoch: Option<usize>,
    /// That loss.
    pub best_loss: Option<f64>,
    /// Whether early stopping ended the run.
    pub stopped_early: bool,
}

/// Trains a [`Segmenter`] whose variables live in a [`VarMap`].
///
/// # Examples
/// A run of two epochs (one batch each) with checkpoints, then a new trainer (as a restarted
/// process would build) that resumes the finished run and trains nothing more:
/// ```
/// use candle_core::{DType, Device};
/// use candle_nn::{VarBuilder, VarMap};
/// use xnet_model::models::{ModelConfig, XNetConfig};
/// use xnet_model::train::{InMemoryBatches, TrainBatch, TrainConfig, Trainer};
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// // A real run keeps its checkpoints in a folder of its own, e.g. `runs/xnet`.
/// let dir = std::env::temp_dir().join(format!("xnet-doc-trainer-{}", std::process::id()));
/// let device = Device::Cpu;
/// let cfg = ModelConfig::XNet(XNetConfig { base_width: 2, ..Default::default() });
/// // Left half open beam (0), right half bone (2).
/// let labels: Vec<u8> = (0..16 * 16).map(|i| if i % 16 < 8 { 0 } else { 2 }).collect();
/// let images = labels.iter().map(|&l| f32::from(l) / 2.0).collect();
/// let batch = TrainBatch::new(images, labels, 1, 16, 16)?;
/// let mut train = InMemoryBatches::new(vec![batch.clone()]);
/// let mut val = InMemoryBatches::new(vec![batch]);
/// let config = TrainConfig { epochs: 2, progress: false, ..Default::default() };
///
/// let varmap = VarMap::new();
/// let model = cfg.build(VarBuilder::from_varmap(&varmap, DType::F32, &device))?;
/// let mut trainer =
///     Trainer::new(model.as_ref(), &varmap, config.clone(), &device)?.with_checkpoint_dir(&dir);
/// assert_eq!(trainer.resume()?, None); // nothing in `dir` yet: a fresh run
/// let summary = trainer.fit(&mut train, Some(&mut val))?;
/// assert_eq!((summary.epochs.len(), summary.epochs_run), (2, 2));
/// for name in ["best", "last", "log.jsonl", "train_config.json"] {
///     assert!(dir.join(name).exists(), "{name}");
/// }
/// let log = || std::fs::read_to_string(dir.join("log.jsonl"));
/// assert_eq!(log()?.lines().count(), 2); // one record per epoch
///
/// // Resuming the finished run continues at epoch 2 of 2: nothing more is trained or logged.
/// let varmap = VarMap::new();
/// let model = cfg.build(VarBuilder::from_varmap(&varmap, DType::F32, &device))?;
/// let mut again =
///     Trainer::new(model.as_ref(), &varmap, config, &device)?.with_checkpoint_dir(&dir);
/// assert_eq!(again.resume()?, Some(2));
/// let resumed = again.fit(&mut train, Some(&mut val))?;
/// assert!(resumed.epochs.is_empty());
/// assert_eq!((resumed.epochs_run, resumed.best_epoch), (2, summary.best_epoch));
/// assert_eq!(log()?.lines().count(), 2);
/// std::fs::remove_dir_all(&dir)?;
/// # Ok(())
/// # }
/// ```
pub struct Trainer<'a> {
    model: &'a dyn Segmenter,
    varmap: &'a VarMap,
    config: TrainConfig,
    device: Device,
    checkpoint_dir: Option<PathBuf>,
    checkpoint_metadata: serde_json::Map<String, serde_json::Value>,
    optimizer: Optimizer,
    vars: Vec<Var>,
    state: TrainState,
}

impl std::fmt::Debug for Trainer<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Trainer")
            .field("config", &self.config)
            .field("checkpoint_dir", &self.checkpoint_dir)
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

impl<'a> Trainer<'a> {
    /// A trainer for `model`, whose variables are those of `varmap`, on `device`.
    ///
    /// # Errors
    /// A configuration that [`TrainConfig::validate`] refuses for the model's number of
    /// classes, or an optimiser or schedule that cannot be set up.
    ///
    /// # Examples
    /// ```
    /// use candle_core::{DType, Device};
    /// use candle_nn::{VarBuilder, VarMap};
    /// use xnet_model::models::{ModelConfig, XNetConfig};
    /// use xnet_model::train::{TrainConfig, Trainer};
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let dev = Device::Cpu;
    /// let varmap = VarMap::new();
    /// let cfg = ModelConfig::XNet(XNetConfig { base_width: 2, ..Default::default() });
    /// let model = cfg.build(VarBuilder::from_varmap(&varmap, DType::F32, &dev))?;
    /// let config = TrainConfig { epochs: 5, progress: false, ..Default::default() };
    /// let trainer = Trainer::new(model.as_ref(), &varmap, config.clone(), &dev)?;
    /// assert_eq!(trainer.state().next_epoch, 0);
    ///
    /// // The configuration is checked against the model: three classes, three weights.
    /// let mut two_weights = config;
    /// two_weights.loss.pixel.class_weights = Some(vec![1.0, 5.0]);
    /// let e = Trainer::new(model.as_ref(), &varmap, two_weights, &dev).unwrap_err().to_string();
    /// assert!(e.contains("class_weights has 2 entries but the model has 3 classes"), "{e}");
    /// # Ok(())
    /// # }
    /// ```
    pub fn new(
        model: &'a dyn Segmenter,
        varmap: &'a VarMap,
        config: TrainConfig,
        device: &Device,
    ) -> Result<Self> {
        config.validate(model.num_classes())?;
        let optimizer = Optimizer::from_varmap(config.optimizer.clone(), varmap)?;
        let vars = optimizer.vars();
        let scheduler =
            LrScheduler::new(config.schedule.clone(), config.optimizer.learning_rate())?;
        Ok(Self {
            model,
            varmap,
            config,
            device: device.clone(),
            checkpoint_dir: None,
            checkpoint_metadata: serde_json::Map::new(),
            optimizer,
            vars,
            state: TrainState {
                next_epoch: 0,
                best_loss: None,
                best_epoch: None,
                epochs_without_improvement: 0,
                scheduler,
            },
        })
    }

    /// Keep checkpoints and the log in `dir` (see the module docs for the layout). `dir` is
    /// created by [`Trainer::fit`] when missing; one that exists but is not a folder is
    /// refused by [`Trainer::resume`] and [`Trainer::fit`].
    ///
    /// # Examples
    /// ```
    /// use candle_core::{DType, Device};
    /// use candle_nn::{VarBuilder, VarMap};
    /// use xnet_model::checkpoint;
    /// use xnet_model::models::{ModelConfig, XNetConfig};
    /// use xnet_model::train::{InMemoryBatches, TrainBatch, TrainConfig, Trainer};
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let dir = std::env::temp_dir().join(format!("xnet-doc-trainer-dir-{}", std::process::id()));
    /// let dev = Device::Cpu;
    /// let varmap = VarMap::new();
    /// let cfg = ModelConfig::XNet(XNetConfig { base_width: 2, ..Default::default() });
    /// let model = cfg.build(VarBuilder::from_varmap(&varmap, DType::F32, &dev))?;
    /// let batch = TrainBatch::new(vec![0.5; 16 * 16], vec![1; 16 * 16], 1, 16, 16)?;
    /// let config = TrainConfig { epochs: 1, progress: false, ..Default::default() };
    /// let mut trainer = Trainer::new(model.as_ref(), &varmap, config, &dev)?
    ///     .with_checkpoint_dir(&dir);
    /// trainer.fit(&mut InMemoryBatches::new(vec![batch]), None)?;
    ///
    /// for name in ["best", "last", "log.jsonl", "train_config.json"] {
    ///     assert!(dir.join(name).exists(), "{name}");
    /// }
    /// let best = checkpoint::load(&dir.join("best"), &dev)?; // an ordinary checkpoint
    /// assert_eq!((best.config, &best.metadata["epoch"]), (cfg, &serde_json::json!(0)));
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn with_checkpoint_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.checkpoint_dir = Some(dir.into());
        self
    }

    /// Entries every `best/` and `last/` checkpoint's metadata carries besides the trainer's
    /// own (`epoch`, `next_epoch`, …, which win a clash): what inference needs to use those
    /// weights as they were trained, such as the preprocessing record. Without it, a
    /// `best/` checkpoint loaded on its own cannot say how its inputs were shaped.
    ///
    /// # Examples
    /// ```
    /// use candle_core::{DType, Device};
    /// use candle_nn::{VarBuilder, VarMap};
    /// use xnet_model::checkpoint;
    /// use xnet_model::models::{ModelConfig, XNetConfig};
    /// use xnet_model::train::{InMemoryBatches, TrainBatch, TrainConfig, Trainer};
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let dev = Device::Cpu;
    /// let dir = std::env::temp_dir().join(format!("xnet-doc-meta-{}", std::process::id()));
    /// let varmap = VarMap::new();
    /// let cfg = ModelConfig::XNet(XNetConfig { base_width: 2, ..Default::default() });
    /// let model = cfg.build(VarBuilder::from_varmap(&varmap, DType::F32, &dev))?;
    /// let batch = TrainBatch::new(vec![0.5; 16 * 16], vec![1; 16 * 16], 1, 16, 16)?;
    /// let config = TrainConfig { epochs: 1, progress: false, ..Default::default() };
    /// let extra = serde_json::json!({ "preprocess": { "width": 16, "height": 16 } });
    /// let mut trainer = Trainer::new(model.as_ref(), &varmap, config, &dev)?
    ///     .with_checkpoint_dir(&dir)
    ///     .with_checkpoint_metadata(extra.as_object().cloned().unwrap_or_default());
    /// trainer.fit(&mut InMemoryBatches::new(vec![batch]), None)?;
    /// for sub in ["best", "last"] {
    ///     let c = checkpoint::load(&dir.join(sub), &dev)?;
    ///     assert_eq!(c.metadata["preprocess"], extra["preprocess"], "{sub}");
    /// }
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn with_checkpoint_metadata(
        mut self,
        metadata: serde_json::Map<String, serde_json::Value>,
    ) -> Self {
        self.checkpoint_metadata = metadata;
        self
    }

    /// The trainer's own checkpoint metadata `own` (an object) over the caller's entries.
    fn checkpoint_meta(&self, own: serde_json::Value) -> serde_json::Value {
        let mut merged = self.checkpoint_metadata.clone();
        if let serde_json::Value::Object(own) = own {
            merged.extend(own);
        }
        serde_json::Value::Object(merged)
    }

    /// The configuration.
    ///
    /// # Examples
    /// ```
    /// use candle_core::{DType, Device};
    /// use candle_nn::{VarBuilder, VarMap};
    /// use xnet_model::models::{ModelConfig, XNetConfig};
    /// use xnet_model::train::{TrainConfig, Trainer};
    /// # fn main() -> xnet_model::Result<()> {
    /// let dev = Device::Cpu;
    /// let varmap = VarMap::new();
    /// let cfg = ModelConfig::XNet(XNetConfig { base_width: 2, ..Default::default() });
    /// let model = cfg.build(VarBuilder::from_varmap(&varmap, DType::F32, &dev))?;
    /// let config = TrainConfig { epochs: 3, progress: false, ..Default::default() };
    /// let trainer = Trainer::new(model.as_ref(), &varmap, config.clone(), &dev)?;
    /// assert_eq!(trainer.config(), &config);
    /// assert_eq!(trainer.config().optimizer.learning_rate(), 1e-4); // RMSprop, as the reference
    /// # Ok(())
    /// # }
    /// ```
    pub fn config(&self) -> &TrainConfig {
        &self.config
    }

    /// The resumable state (next epoch, best loss, scheduler).
    ///
    /// # Examples
    /// ```
    /// use candle_core::{DType, Device};
    /// use candle_nn::{VarBuilder, VarMap};
    /// use xnet_model::models::{ModelConfig, XNetConfig};
    /// use xnet_model::train::{InMemoryBatches, TrainBatch, TrainConfig, Trainer};
    /// # fn main() -> xnet_model::Result<()> {
    /// let dev = Device::Cpu;
    /// let varmap = VarMap::new();
    /// let cfg = ModelConfig::XNet(XNetConfig { base_width: 2, ..Default::default() });
    /// let model = cfg.build(VarBuilder::from_varmap(&varmap, DType::F32, &dev))?;
    /// let config = TrainConfig { epochs: 2, progress: false, ..Default::default() };
    /// let mut trainer = Trainer::new(model.as_ref(), &varmap, config, &dev)?;
    /// assert_eq!((trainer.state().next_epoch, trainer.state().best_loss), (0, None));
    ///
    /// let batch = TrainBatch::new(vec![0.5; 16 * 16], vec![1; 16 * 16], 1, 16, 16)?;
    /// let summary = trainer.fit(&mut InMemoryBatches::new(vec![batch]), None)?;
    /// let state = trainer.state();
    /// assert_eq!(state.next_epoch, 2);
    /// // Without validation batches the training loss is monitored.
    /// assert_eq!((state.best_epoch, state.best_loss), (summary.best_epoch, summary.best_loss));
    /// assert!(state.best_loss.is_some_and(f64::is_finite));
    /// assert_eq!(state.scheduler.learning_rate(), 1e-4); // a constant schedule
    /// # Ok(())
    /// # }
    /// ```
    pub fn state(&self) -> &TrainState {
        &self.state
    }

    /// The optimiser.
    ///
    /// # Examples
    /// ```
    /// use candle_core::{DType, Device};
    /// use candle_nn::{VarBuilder, VarMap};
    /// use xnet_model::models::{ModelConfig, XNetConfig};
    /// use xnet_model::optim::OptimizerConfig;
    /// use xnet_model::train::{TrainBatch, TrainConfig, Trainer};
    /// # fn main() -> xnet_model::Result<()> {
    /// let dev = Device::Cpu;
    /// let varmap = VarMap::new();
    /// let cfg = ModelConfig::XNet(XNetConfig { base_width: 2, ..Default::default() });
    /// let model = cfg.build(VarBuilder::from_varmap(&varmap, DType::F32, &dev))?;
    /// let config = TrainConfig {
    ///     optimizer: OptimizerConfig::adam(1e-3),
    ///     progress: false,
    ///     ..Default::default()
    /// };
    /// let mut trainer = Trainer::new(model.as_ref(), &varmap, config, &dev)?;
    /// assert_eq!(trainer.optimizer().config(), &OptimizerConfig::adam(1e-3));
    /// // Every variable of the VarMap, batch-norm running statistics included (which get
    /// // no gradient, so are never updated).
    /// assert_eq!(trainer.optimizer().vars().len(), varmap.all_vars().len());
    ///
    /// let batch = TrainBatch::new(vec![0.5; 16 * 16], vec![1; 16 * 16], 1, 16, 16)?;
    /// assert_eq!(trainer.optimizer().steps(), 0);
    /// trainer.train_step(&batch)?;
    /// trainer.train_step(&batch)?;
    /// assert_eq!(trainer.optimizer().steps(), 2);
    /// assert_eq!(trainer.optimizer().learning_rate(), 1e-3);
    /// # Ok(())
    /// # }
    /// ```
    pub fn optimizer(&self) -> &Optimizer {
        &self.optimizer
    }

    /// One optimisation step on `batch`; returns its data loss (without L2). A non-finite
    /// loss or gradient norm is an error and the update is not applied.
    ///
    /// # Errors
    /// [`ModelError::InvalidInput`] for a batch that [`TrainBatch::validate`] refuses
    /// (shape, a non-finite pixel, a label that is no class nor the ignore label, each
    /// naming the image and pixel); [`ModelError::NonFinite`] for a NaN or infinite loss or
    /// gradient norm; candle's errors from the network, such as a height or width that is
    /// not a multiple of its [`Segmenter::size_multiple`] (the message names both).
    ///
    /// # Examples
    /// ```
    /// use candle_core::{DType, Device, Tensor};
    /// use candle_nn::{ModuleT, VarBuilder, VarMap};
    /// use xnet_model::models::{ModelConfig, XNetConfig};
    /// use xnet_model::optim::OptimizerConfig;
    /// use xnet_model::train::{TrainBatch, TrainConfig, Trainer};
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let dev = Device::Cpu;
    /// let varmap = VarMap::new();
    /// let cfg = ModelConfig::XNet(XNetConfig { base_width: 2, ..Default::default() });
    /// let model = cfg.build(VarBuilder::from_varmap(&varmap, DType::F32, &dev))?;
    /// let config = TrainConfig {
    ///     optimizer: OptimizerConfig::sgd(0.01, 0.9),
    ///     progress: false,
    ///     ..Default::default()
    /// };
    /// let mut trainer = Trainer::new(model.as_ref(), &varmap, config, &dev)?;
    /// let x = Tensor::rand(0f32, 1f32, (1, 1, 16, 16), &dev)?;
    /// let outputs = || model.forward_t(&x, false)?.flatten_all()?.to_vec1::<f32>();
    /// let before = outputs()?;
    ///
    /// // Left half open beam, right half bone.
    /// let labels: Vec<u8> = (0..16 * 16).map(|i| if i % 16 < 8 { 0 } else { 2 }).collect();
    /// let images = labels.iter().map(|&l| f32::from(l) / 2.0).collect();
    /// let loss = trainer.train_step(&TrainBatch::new(images, labels, 1, 16, 16)?)?;
    /// assert!(loss.is_finite() && loss > 0.0);
    /// let updated = outputs()?;
    /// assert_ne!(updated, before);
    ///
    /// // A label the 3-class model does not have: refused, naming the pixel, and no update.
    /// let bad = TrainBatch::new(vec![0.0; 64], vec![3; 64], 1, 8, 8)?;
    /// let e = trainer.train_step(&bad).unwrap_err().to_string();
    /// assert!(e.contains("label 3 at pixel (x=0, y=0)"), "{e}");
    /// assert_eq!(outputs()?, updated);
    /// # Ok(())
    /// # }
    /// ```
    pub fn train_step(&mut self, batch: &TrainBatch) -> Result<f64> {
        self.step_at(batch, self.state.next_epoch, 0)
    }

    fn step_at(&mut self, batch: &TrainBatch, epoch: usize, index: usize) -> Result<f64> {
        let loss_cfg = &self.config.loss;
        batch.validate(self.model.num_classes(), loss_cfg.pixel.ignore_label)?;
        let (x, y) = batch.to_tensors(&self.device)?;
        let logits = self.model.forward_t(&x, true)?;
        let pw = pixel_weights(batch, loss_cfg, &self.device)?;
        let data = loss_cfg.data_loss(&logits, &y, pw.as_ref())?;
        let value = data.to_dtype(DType::F64)?.to_scalar::<f64>()?;
        if !value.is_finite() {
            return Err(self.non_finite("loss", value, epoch, index));
        }
        // The L2 term's gradient is added directly (the same 2λw the graph would give).
        // Parameter gradients delivered directly (see `kernels::backward`).
        let mut grads = crate::kernels::backward(&data)?;
        add_l2_gradient(&mut grads, &self.vars, loss_cfg.l2)?;
        if let Some(max_norm) = self.config.grad_clip_norm {
            let norm = self.optimizer.clip_grad_norm(&mut grads, max_norm)?;
            if !norm.is_finite() {
                return Err(self.non_finite("gradient norm", norm, epoch, index));
            }
        }
        self.optimizer.step(&grads)?;
        Ok(value)
    }

    /// The first NaN or infinite value among the model's variables (weights and batch-norm
    /// statistics), in name order, if any.
    fn first_non_finite_weight(&self) -> Result<Option<f64>> {
        let vars =
            self.varmap.data().lock().map_err(|_| {
                ModelError::InvalidInput("the model's variables are poisoned".into())
            })?;
        // One reduction on the device first: `v − v` is 0 for a finite value and NaN for
        // NaN or ±inf, so the sum over every variable is finite exactly when all weights
        // are. On a GPU that is one transfer per epoch instead of one per variable; the
        // variables are copied out one by one only to name the bad value.
        let zeros: Vec<Tensor> = vars
            .values()
            .map(|v| {
                let t = v.as_tensor();
                t.sub(t)?.sum_all()?.to_dtype(DType::F32)
            })
            .collect::<candle_core::Result<_>>()?;
        if zeros.is_empty()
            || Tensor::stack(&zeros, 0)?
                .sum_all()?
                .to_scalar::<f32>()?
                .is_finite()
        {
            return Ok(None);
        }
        let mut names: Vec<&String> = vars.keys().collect();
        names.sort();
        for name in names {
            let values = vars[name]
                .as_tensor()
                .flatten_all()?
                .to_dtype(DType::F32)?
                .to_vec1::<f32>()?;
            if let Some(v) = values.iter().find(|v| !v.is_finite()) {
                return Ok(Some(f64::from(*v)));
            }
        }
        Ok(None)
    }

    fn non_finite(&self, what: &'static str, value: f64, epoch: usize, batch: usize) -> ModelError {
        let checkpoint = self
            .checkpoint_dir
            .as_ref()
            .map(|d| d.join(LAST_DIR))
            .filter(|d| d.join(STATE_FILE).exists());
        ModelError::NonFinite {
            what,
            value,
            epoch,
            batch,
            checkpoint,
        }
    }

    /// Trains until `config.epochs` (counting resumed epochs) or early stopping.
    ///
    /// A run that starts at epoch 0 (not resumed) replaces any log and `last/` checkpoint
    /// already in the checkpoint directory; call [`Trainer::resume`] first to continue one.
    /// A resumed run that had stopped early trains no further unless the patience was raised.
    ///
    /// Without a validation source the training loss is monitored for early stopping and the
    /// best checkpoint.
    ///
    /// # Errors
    /// Those of [`Trainer::train_step`] for every training batch, naming the epoch and batch
    /// for a non-finite value ([`ModelError::NonFinite`], which also names the last good
    /// checkpoint); [`ModelError::InvalidInput`] for a training source that yields no batch
    /// in an epoch, and a validation source that yields none or whose batches hold no scored
    /// pixel; a source's own errors as it returns them; [`ModelError::Io`] and
    /// [`ModelError::Json`] naming the file for a checkpoint directory that is not a folder
    /// or a file that cannot be written (a full disk: `last/` stays whole, see the module
    /// docs).
    ///
    /// # Examples
    /// Two epochs on one in-memory batch, validated on the same batch (a real run holds out
    /// a validation split):
    /// ```
    /// use candle_core::{DType, Device};
    /// use candle_nn::{VarBuilder, VarMap};
    /// use xnet_model::models::{ModelConfig, XNetConfig};
    /// use xnet_model::train::{InMemoryBatches, TrainBatch, TrainConfig, Trainer};
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let dev = Device::Cpu;
    /// let varmap = VarMap::new();
    /// let cfg = ModelConfig::XNet(XNetConfig { base_width: 2, ..Default::default() });
    /// let model = cfg.build(VarBuilder::from_varmap(&varmap, DType::F32, &dev))?;
    /// // Dark rows open beam (0), bright rows bone (2); the last row is not labelled.
    /// let labels: Vec<u8> = (0..16 * 16)
    ///     .map(|i| match i / 16 { 15 => 255, r if r < 8 => 0, _ => 2 })
    ///     .collect();
    /// let images: Vec<f32> = labels.iter().map(|&l| if l == 0 { 0.1 } else { 0.9 }).collect();
    /// let batch = TrainBatch::new(images, labels, 1, 16, 16)?;
    /// let mut train = InMemoryBatches::new(vec![batch.clone()]);
    /// let mut val = InMemoryBatches::new(vec![batch]);
    ///
    /// let config = TrainConfig {
    ///     epochs: 2,
    ///     early_stopping_patience: None,
    ///     progress: false,
    ///     ..Default::default()
    /// };
    /// let mut trainer = Trainer::new(model.as_ref(), &varmap, config, &dev)?;
    /// let summary = trainer.fit(&mut train, Some(&mut val))?;
    /// assert_eq!((summary.epochs.len(), summary.epochs_run), (2, 2));
    /// assert!(!summary.stopped_early && summary.best_epoch.is_some());
    /// for record in &summary.epochs {
    ///     assert!(record.train_loss.is_finite() && record.lr == 1e-4); // default RMSprop
    ///     let accuracy = record.val_accuracy.ok_or("validated")?;
    ///     assert!((0.0..=1.0).contains(&accuracy));
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub fn fit(
        &mut self,
        train: &mut dyn BatchSource,
        mut val: Option<&mut dyn BatchSource>,
    ) -> Result<TrainSummary> {
        if let Some(dir) = self.checkpoint_dir.clone() {
            check_checkpoint_dir(&dir)?;
            std::fs::create_dir_all(&dir).map_err(|source| ModelError::Io {
                path: dir.clone(),
                source,
            })?;
            checkpoint::write_json_atomic(&dir.join(TRAIN_CONFIG_FILE), &self.config)?;
            if self.state.next_epoch == 0 {
                // A fresh run (not resumed): start a new log, and write a "last good" state
                // now so that a NaN in epoch 0 still leaves one.
                let log = dir.join(LOG_FILE);
                if log.exists() {
                    std::fs::remove_file(&log)
                        .map_err(|source| ModelError::Io { path: log, source })?;
                }
                self.save_last(&dir)?;
            }
        }
        let mut records = Vec::new();
        // A resumed run that had already stopped early (under the current patience) trains
        // no further: resuming a finished run must not change it.
        let mut stopped_early = self.state.next_epoch > 0
            && self
                .config
                .early_stopping_patience
                .is_some_and(|p| self.state.epochs_without_improvement >= p);
        while !stopped_early && self.state.next_epoch < self.config.epochs {
            let epoch = self.state.next_epoch;
            let started = Instant::now();
            let lr = self.state.scheduler.learning_rate();
            self.optimizer.set_learning_rate(lr);

            let bar = self.progress_bar(train.batches_per_epoch(), epoch);
            let (mut loss_sum, mut weight_sum) = (0f64, 0f64);
            let mut batches = 0usize;
            for (i, batch) in train.epoch_batches(epoch).enumerate() {
                let batch = batch?;
                let l = self.step_at(&batch, epoch, i)?;
                let ignore = self.config.loss.pixel.ignore_label;
                let valid = batch.labels.iter().filter(|&&v| Some(v) != ignore).count() as f64;
                loss_sum += l * valid;
                weight_sum += valid;
                batches += 1;
                bar.set_message(format!("loss {l:.4}"));
                bar.inc(1);
            }
            bar.finish_and_clear();
            if batches == 0 {
                return Err(ModelError::InvalidInput(format!(
                    "the training source yielded no batches in epoch {epoch}"
                )));
            }
            let train_loss = loss_sum / weight_sum.max(1.0);

            let (val_loss, val_accuracy) = match val.as_deref_mut() {
                Some(source) => {
                    let mut acc = EvalAccumulator::default();
                    for batch in source.epoch_batches(epoch) {
                        acc.add(self.model, &batch?, &self.config.loss, &self.device)?;
                    }
                    let e = acc.finish()?;
                    if !e.loss.is_finite() {
                        return Err(self.non_finite("validation loss", e.loss, epoch, 0));
                    }
                    (Some(e.loss), Some(e.accuracy))
                }
                None => (None, None),
            };
            // Every step's loss and gradient norm can be finite while the weights or the
            // batch-norm statistics overflow (a learning rate of 1e10): such weights must not
            // become `last/` or `best/`, which would fail to load as corrupt.
            if let Some(value) = self.first_non_finite_weight()? {
                return Err(self.non_finite("weight", value, epoch, batches.saturating_sub(1)));
            }
            let monitored = val_loss.unwrap_or(train_loss);
            let improved = match self.state.best_loss {
                None => true,
                Some(b) => monitored < b - self.config.min_delta,
            };
            if improved {
                self.state.best_loss = Some(monitored);
                self.state.best_epoch = Some(epoch);
                self.state.epochs_without_improvement = 0;
            } else {
                self.state.epochs_without_improvement += 1;
            }
            let l2 = match l2_penalty(&self.vars, self.config.loss.l2)? {
                Some(t) => t.to_dtype(DType::F64)?.to_scalar::<f64>()?,
                None => 0.0,
            };
            self.state.scheduler.step(epoch, Some(monitored));
            self.state.next_epoch = epoch + 1;
            let record = EpochRecord {
                epoch,
                train_loss,
                l2_penalty: l2,
                val_loss,
                val_accuracy,
                lr,
                seconds: started.elapsed().as_secs_f64(),
                best: improved,
            };
            if let Some(dir) = self.checkpoint_dir.clone() {
                // The record, then `last/`, then `best/`: a crash before `last/` is replaced
                // re-runs this epoch on resume (which drops the records of epochs it will
                // run again); a crash after it leaves this epoch's weights in `last/`, from
                // which resume rebuilds a `best/` that was not replaced yet. Saving `best/`
                // first instead left it an epoch ahead of the trainer state after a crash.
                append_log(&dir.join(LOG_FILE), &record)?;
                self.save_last(&dir)?;
                if improved {
                    self.save_best(
                        &dir,
                        best_metadata(epoch, monitored, val_loss, val_accuracy),
                    )?;
                }
            }
            records.push(record);
            if let Some(patience) = self.config.early_stopping_patience {
                if self.state.epochs_without_improvement >= patience {
                    stopped_early = true;
                    break;
                }
            }
        }
        Ok(TrainSummary {
            epochs: records,
            epochs_run: self.state.next_epoch,
            best_epoch: self.state.best_epoch,
            best_loss: self.state.best_loss,
            stopped_early,
        })
    }

    #[cfg(not(feature = "progress"))]
    fn progress_bar(&self, _len: Option<usize>, _epoch: usize) -> NoProgressBar {
        NoProgressBar
    }

    #[cfg(feature = "progress")]
    fn progress_bar(&self, len: Option<usize>, epoch: usize) -> indicatif::ProgressBar {
        if !self.config.progress {
            return indicatif::ProgressBar::hidden();
        }
        let bar = match len {
            Some(n) => indicatif::ProgressBar::new(n as u64),
            None => indicatif::ProgressBar::new_spinner(),
        };
        if let Ok(style) = indicatif::ProgressStyle::with_template(
            "{prefix} [{elapsed_precise}] {bar:30} {pos}/{len} {msg}",
        ) {
            bar.set_style(style);
        }
        bar.set_prefix(format!("epoch {}/{}", epoch + 1, self.config.epochs));
        bar
    }
}

/// Refuses a checkpoint directory that exists but is not a folder (a file, such as a run's
/// `config.json` given as the run): creating it would fail with the OS's "File exists", and
/// [`Trainer::resume`] would find no run in it.
fn check_checkpoint_dir(dir: &std::path::Path) -> Result<()> {
    match std::fs::metadata(dir) {
        Ok(m) if !m.is_dir() => Err(ModelError::Io {
            path: dir.to_path_buf(),
            source: std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "not a folder: a trainer's checkpoint directory (with_checkpoint_dir) is the \
                 folder that holds its run (best/, last/, log.jsonl, train_config.json)",
            ),
        }),
        _ => Ok(()),
    }
}

/// What the trainer's progress bar is in a build without the `progress` feature: the calls
/// [`Trainer::fit`] makes on an indicatif bar, doing nothing.
#[cfg(not(feature = "progress"))]
struct NoProgressBar;

#[cfg(not(feature = "progress"))]
impl NoProgressBar {
    fn set_message(&self, _message: String) {}
    fn inc(&self, _delta: u64) {}
    fn finish_and_clear(&self) {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::{ModelConfig, XNetConfig};
    use candle_nn::{VarBuilder, VarMap};

    /// The one-reduction check finds a NaN, +inf or −inf in any variable (a kernel or a
    /// batch-norm statistic), names the value, and passes finite weights.
    #[test]
    fn a_non_finite_weight_is_found_in_any_variable() {
        let dev = Device::Cpu;
        let varmap = VarMap::new();
        let cfg = ModelConfig::XNet(XNetConfig {
            base_width: 2,
            ..Default::default()
        });
        let model = cfg
            .build(VarBuilder::from_varmap(&varmap, DType::F32, &dev))
            .expect("small network");
        let config = TrainConfig {
            progress: false,
            ..Default::default()
        };
        let trainer = Trainer::new(model.as_ref(), &varmap, config, &dev).expect("trainer");
        assert_eq!(trainer.first_non_finite_weight().expect("check"), None);
        let names: Vec<String> = {
            let mut names: Vec<String> = varmap.data().lock().unwrap().keys().cloned().collect();
            names.sort();
            names
        };
        let picks = [
            names[0].clone(),
            names[names.len() / 2].clone(),
            names[names.len() - 1].clone(),
        ];
        for (name, bad) in picks
            .iter()
            .zip([f32::NAN, f32::INFINITY, f32::NEG_INFINITY])
        {
            let var = varmap.data().lock().unwrap()[name].clone();
            let original = var.as_tensor().copy().unwrap();
            let mut values = original.flatten_all().unwrap().to_vec1::<f32>().unwrap();
            let last = values.len() - 1;
            values[last] = bad;
            var.set(&Tensor::from_vec(values, original.shape(), &dev).unwrap())
                .unwrap();
            let found = trainer.first_non_finite_weight().expect("check");
            assert!(
                found.is_some_and(
                    |v| v.to_bits() == f64::from(bad).to_bits() || v.is_nan() && bad.is_nan()
                ),
                "{name}: {found:?}"
            );
            var.set(&original).unwrap();
            assert_eq!(trainer.first_non_finite_weight().expect("check"), None);
        }
    }
}
