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

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::VarMap;
use serde::{Deserialize, Serialize};

use crate::checkpoint;
use crate::error::readable_number;
use crate::loss::{add_l2_gradient, boundary_weight_maps, l2_penalty, LossConfig};
use crate::optim::{LrSchedule, LrScheduler, Optimizer, OptimizerConfig};
use crate::{ModelError, Result, Segmenter};

/// One batch of training data as plain row-major data.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainBatch {
    /// `n × 1 × height × width` normalised image planes.
    pub images: Vec<f32>,
    /// `n × height × width` class labels (255 = ignore, see the loss configuration).
    pub labels: Vec<u8>,
    /// Number of images.
    pub n: usize,
    /// Height of every image.
    pub height: usize,
    /// Width of every image.
    pub width: usize,
}

impl TrainBatch {
    /// A batch, checking that the vectors have `n·height·width` elements.
    ///
    /// # Errors
    /// [`ModelError::InvalidInput`], as [`Self::check_shape`]: an empty batch, a pixel count
    /// that overflows a `usize`, or vectors of another length.
    ///
    /// # Examples
    /// ```
    /// use xnet_model::train::TrainBatch;
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// // Two 2×3 images: planes and label maps one after the other, rows first.
    /// let images = vec![0.1, 0.2, 0.9, 0.1, 0.8, 0.9, /* image 2 */ 0.0, 0.5, 0.5, 0.0, 0.5, 1.0];
    /// let labels = vec![0, 1, 2, 0, 2, 2, /* image 2 */ 0, 1, 1, 0, 1, 255];
    /// let batch = TrainBatch::new(images.clone(), labels, 2, 2, 3)?;
    /// assert_eq!(batch.labels[11], 255); // ignored by the losses
    ///
    /// // A label map of the wrong length is refused.
    /// let e = TrainBatch::new(images, vec![0; 6], 2, 2, 3).unwrap_err().to_string();
    /// assert!(e.contains("needs 12 pixels, got 12 image values and 6 labels"), "{e}");
    /// # Ok(())
    /// # }
    /// ```
    pub fn new(
        images: Vec<f32>,
        labels: Vec<u8>,
        n: usize,
        height: usize,
        width: usize,
    ) -> Result<Self> {
        let b = Self {
            images,
            labels,
            n,
            height,
            width,
        };
        b.check_shape()?;
        Ok(b)
    }

    /// Checks the element counts.
    ///
    /// # Errors
    /// [`ModelError::InvalidInput`] for an empty batch, a pixel count `n · height · width`
    /// that overflows a `usize`, or vectors of another length.
    ///
    /// # Examples
    /// ```
    /// use xnet_model::train::TrainBatch;
    /// // The fields are public: a batch edited after `new` is checked again before use.
    /// let mut batch = TrainBatch { images: vec![0.0; 4], labels: vec![0; 4], n: 1, height: 2, width: 2 };
    /// assert!(batch.check_shape().is_ok());
    /// batch.n = usize::MAX; // n · height · width does not fit a usize
    /// let e = batch.check_shape().unwrap_err().to_string();
    /// assert!(e.contains("the count overflows"), "{e}");
    /// batch.n = 0;
    /// assert!(batch.check_shape().unwrap_err().to_string().contains("empty batch"));
    /// ```
    pub fn check_shape(&self) -> Result<()> {
        if self.n == 0 || self.height == 0 || self.width == 0 {
            return Err(ModelError::InvalidInput(format!(
                "empty batch: n × height × width = {} × {} × {}",
                self.n, self.height, self.width
            )));
        }
        let Some(expected) = self
            .n
            .checked_mul(self.height)
            .and_then(|p| p.checked_mul(self.width))
        else {
            return Err(ModelError::InvalidInput(format!(
                "batch of n × height × width = {} × {} × {} pixels: the count overflows",
                self.n, self.height, self.width
            )));
        };
        if self.images.len() != expected || self.labels.len() != expected {
            return Err(ModelError::InvalidInput(format!(
                "batch of {} image{} of {}×{} needs {expected} pixels, got {} image values and \
                 {} labels",
                self.n,
                if self.n == 1 { "" } else { "s" },
                self.height,
                self.width,
                self.images.len(),
                self.labels.len()
            )));
        }
        Ok(())
    }

    /// Checks shapes, finite image values and labels `< num_classes` (or `ignore`); the
    /// error names the image and pixel.
    ///
    /// # Errors
    /// [`ModelError::InvalidInput`]: the shape errors of [`Self::check_shape`], then the
    /// first non-finite image value, then the first label that is neither a class nor
    /// `ignore`, each naming the image and the pixel's `(x, y)`.
    ///
    /// # Examples
    /// ```
    /// use xnet_model::train::TrainBatch;
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// // Two 2×2 images; the second has label 3 at its pixel 1, i.e. x = 1, y = 0.
    /// let batch = TrainBatch::new(vec![0.5; 8], vec![0, 1, 2, 255, 2, 3, 1, 0], 2, 2, 2)?;
    /// assert!(batch.validate(4, Some(255)).is_ok());
    /// let e = batch.validate(3, Some(255)).unwrap_err().to_string();
    /// assert!(e.contains("image 1 of the batch has label 3 at pixel (x=1, y=0)"), "{e}");
    /// // Without an ignore label, 255 is a label like any other.
    /// let e = batch.validate(4, None).unwrap_err().to_string();
    /// assert!(e.contains("image 0 of the batch has label 255 at pixel (x=1, y=1)"), "{e}");
    /// # Ok(())
    /// # }
    /// ```
    pub fn validate(&self, num_classes: usize, ignore: Option<u8>) -> Result<()> {
        self.check_shape()?;
        let plane = self.height * self.width;
        if let Some(i) = self.images.iter().position(|v| !v.is_finite()) {
            return Err(ModelError::InvalidInput(format!(
                "image {} of the batch has a non-finite value {} at pixel (x={}, y={})",
                i / plane,
                self.images[i],
                (i % plane) % self.width,
                (i % plane) / self.width
            )));
        }
        if let Some(i) = self
            .labels
            .iter()
            .position(|&l| (l as usize) >= num_classes && Some(l) != ignore)
        {
            return Err(ModelError::InvalidInput(format!(
                "image {} of the batch has label {} at pixel (x={}, y={}); the model has {} \
                 classes{}",
                i / plane,
                self.labels[i],
                (i % plane) % self.width,
                (i % plane) / self.width,
                num_classes,
                ignore
                    .map(|l| format!(" and {l} is ignored"))
                    .unwrap_or_default()
            )));
        }
        Ok(())
    }

    /// `([n, 1, h, w]` f32 images, `[n, h, w]` u8 labels`)` on `device`.
    ///
    /// # Examples
    /// ```
    /// use candle_core::{DType, Device};
    /// use xnet_model::train::TrainBatch;
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let batch = TrainBatch::new(vec![0.5; 2 * 4 * 4], vec![1; 2 * 4 * 4], 2, 4, 4)?;
    /// let (x, y) = batch.to_tensors(&Device::Cpu)?;
    /// assert_eq!((x.dims(), x.dtype()), (&[2, 1, 4, 4][..], DType::F32));
    /// assert_eq!((y.dims(), y.dtype()), (&[2, 4, 4][..], DType::U8));
    /// assert_eq!(y.flatten_all()?.to_vec1::<u8>()?, batch.labels);
    /// # Ok(())
    /// # }
    /// ```
    pub fn to_tensors(&self, device: &Device) -> Result<(Tensor, Tensor)> {
        self.check_shape()?;
        let x = Tensor::from_slice(&self.images, (self.n, 1, self.height, self.width), device)?;
        let y = Tensor::from_slice(&self.labels, (self.n, self.height, self.width), device)?;
        Ok((x, y))
    }
}

/// Where batches come from: a loader, an augmenting pipeline, a balancer...
pub trait BatchSource {
    /// The batches of one epoch (0-based). A source may reshuffle or re-augment per epoch;
    /// for reproducible runs, derive its randomness from a seed and `epoch`.
    fn epoch_batches(&mut self, epoch: usize) -> Box<dyn Iterator<Item = Result<TrainBatch>> + '_>;

    /// Number of batches per epoch, if known (sizes the progress bar).
    fn batches_per_epoch(&self) -> Option<usize> {
        None
    }
}

/// The same batches every epoch, held in memory (tests, small validation sets).
#[derive(Debug, Clone, Default)]
pub struct InMemoryBatches {
    /// The batches, in order.
    pub batches: Vec<TrainBatch>,
}

impl InMemoryBatches {
    /// A source over `batches`.
    ///
    /// # Examples
    /// ```
    /// use xnet_model::train::{BatchSource, InMemoryBatches, TrainBatch};
    /// # fn main() -> xnet_model::Result<()> {
    /// let one = TrainBatch::new(vec![0.0; 16], vec![0; 16], 1, 4, 4)?;
    /// let two = TrainBatch::new(vec![1.0; 32], vec![2; 32], 2, 4, 4)?;
    /// let mut source = InMemoryBatches::new(vec![one, two]);
    /// assert_eq!(source.batches_per_epoch(), Some(2));
    /// // The same batches, in the same order, every epoch.
    /// for epoch in 0..3 {
    ///     let sizes: Vec<usize> =
    ///         source.epoch_batches(epoch).map(|b| b.map(|b| b.n)).collect::<Result<_, _>>()?;
    ///     assert_eq!(sizes, [1, 2]);
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub fn new(batches: Vec<TrainBatch>) -> Self {
        Self { batches }
    }
}

impl BatchSource for InMemoryBatches {
    fn epoch_batches(
        &mut self,
        _epoch: usize,
    ) -> Box<dyn Iterator<Item = Result<TrainBatch>> + '_> {
        Box::new(self.batches.iter().cloned().map(Ok))
    }

    fn batches_per_epoch(&self) -> Option<usize> {
        Some(self.batches.len())
    }
}

/// Hyper-parameters of a training run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TrainConfig {
    /// Maximum number of epochs.
    pub epochs: usize,
    /// Optimiser (default: RMSprop, lr 10⁻⁴, as the reference).
    pub optimizer: OptimizerConfig,
    /// Learning-rate schedule, stepped once per epoch.
    pub schedule: LrSchedule,
    /// Loss: data term, class weights, ignore label, boundary weights, L2.
    pub loss: LossConfig,
    /// Clip the global gradient norm to this value (`None`: no clipping).
    pub grad_clip_norm: Option<f64>,
    /// Stop after this many epochs without validation-loss improvement (`None`: never).
    pub early_stopping_patience: Option<usize>,
    /// Improvement of the validation loss smaller than this does not count.
    pub min_delta: f64,
    /// Show an indicatif progress bar on stderr.
    pub progress: bool,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            epochs: 50,
            optimizer: OptimizerConfig::default(),
            schedule: LrSchedule::Constant,
            loss: LossConfig::default(),
            grad_clip_norm: None,
            early_stopping_patience: Some(10),
            min_delta: 0.0,
            progress: true,
        }
    }
}

impl TrainConfig {
    /// Checks every field against a model with `num_classes` classes: the optimiser
    /// ([`OptimizerConfig::validate`]), schedule ([`LrSchedule::validate`]) and loss
    /// ([`LossConfig::validate`]), which refuse NaN, infinities and values beyond the `f32`
    /// range; `grad_clip_norm` and `min_delta` must be finite (they are compared in `f64`,
    /// with the gradient norm and the validation loss).
    ///
    /// # Errors
    /// [`ModelError::InvalidConfig`] naming the field and the value.
    ///
    /// # Examples
    /// ```
    /// use xnet_model::train::TrainConfig;
    /// let config = TrainConfig { progress: false, ..Default::default() };
    /// assert!(config.validate(3).is_ok());
    /// let nan_delta = TrainConfig { min_delta: f64::NAN, ..config.clone() };
    /// let e = nan_delta.validate(3).unwrap_err().to_string();
    /// assert!(e.contains("min_delta must be finite"), "{e}");
    /// let no_patience = TrainConfig { early_stopping_patience: Some(0), ..config };
    /// let e = no_patience.validate(3).unwrap_err().to_string();
    /// assert!(e.contains("early_stopping_patience"), "{e}");
    /// ```
    pub fn validate(&self, num_classes: usize) -> Result<()> {
        if self.epochs == 0 {
            return Err(ModelError::InvalidConfig("epochs must be ≥ 1".into()));
        }
        self.optimizer.validate()?;
        self.schedule.validate()?;
        self.loss.validate(num_classes)?;
        if let Some(c) = self.grad_clip_norm {
            if !(c.is_finite() && c > 0.0) {
                return Err(ModelError::InvalidConfig(format!(
                    "grad_clip_norm must be finite and > 0, got {}",
                    readable_number(c)
                )));
            }
        }
        if self.early_stopping_patience == Some(0) {
            return Err(ModelError::InvalidConfig(
                "early_stopping_patience must be ≥ 1 (or null to disable)".into(),
            ));
        }
        if !(self.min_delta.is_finite() && self.min_delta >= 0.0) {
            return Err(ModelError::InvalidConfig(format!(
                "min_delta must be finite and ≥ 0, got {}",
                readable_number(self.min_delta)
            )));
        }
        Ok(())
    }
}

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

/// Loss and pixel accuracy of a model on a batch source.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Evaluation {
    /// Data loss, the mean of batch losses weighted by their non-ignored pixel counts.
    pub loss: f64,
    /// Fraction of non-ignored pixels whose arg-max class equals the label.
    pub accuracy: f64,
    /// Number of non-ignored pixels.
    pub pixels: usize,
}

/// Evaluates `model` (inference mode) on every batch of `source` epoch 0.
///
/// # Errors
/// A batch that [`TrainBatch::validate`] refuses for the model's classes and the loss's
/// ignore label, a source that yields an error, no batch at all or no scored pixel (every
/// label the ignore label), or a failing forward pass.
///
/// # Examples
/// ```
/// use candle_core::{DType, Device};
/// use candle_nn::{VarBuilder, VarMap};
/// use xnet_model::loss::LossConfig;
/// use xnet_model::models::{ModelConfig, XNetConfig};
/// use xnet_model::train::{evaluate, InMemoryBatches, TrainBatch};
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let dev = Device::Cpu;
/// let cfg = ModelConfig::XNet(XNetConfig { base_width: 2, ..Default::default() });
/// let model = cfg.build(VarBuilder::from_varmap(&VarMap::new(), DType::F32, &dev))?;
/// // One 8×8 image whose first row is ignored: 56 pixels are scored.
/// let labels = (0..64).map(|i| if i < 8 { 255 } else { (i % 3) as u8 }).collect();
/// let batch = TrainBatch::new(vec![0.5; 64], labels, 1, 8, 8)?;
/// let ev = evaluate(model.as_ref(), &mut InMemoryBatches::new(vec![batch]), &LossConfig::default(), &dev)?;
/// assert_eq!(ev.pixels, 56);
/// assert!(ev.loss.is_finite() && (0.0..=1.0).contains(&ev.accuracy));
/// let e = evaluate(model.as_ref(), &mut InMemoryBatches::default(), &LossConfig::default(), &dev);
/// assert!(e.unwrap_err().to_string().contains("yielded no batches"));
/// let unlabelled = TrainBatch::new(vec![0.5; 64], vec![255; 64], 1, 8, 8)?;
/// let e = evaluate(model.as_ref(), &mut InMemoryBatches::new(vec![unlabelled]), &LossConfig::default(), &dev);
/// assert!(e.unwrap_err().to_string().contains("no scored pixel"));
/// # Ok(())
/// # }
/// ```
pub fn evaluate(
    model: &dyn Segmenter,
    source: &mut dyn BatchSource,
    loss: &LossConfig,
    device: &Device,
) -> Result<Evaluation> {
    let mut acc = EvalAccumulator::default();
    for batch in source.epoch_batches(0) {
        let batch = batch?;
        acc.add(model, &batch, loss, device)?;
    }
    acc.finish()
}

#[derive(Default)]
struct EvalAccumulator {
    loss_sum: f64,
    correct: usize,
    pixels: usize,
    batches: usize,
}

impl EvalAccumulator {
    fn add(
        &mut self,
        model: &dyn Segmenter,
        batch: &TrainBatch,
        loss: &LossConfig,
        device: &Device,
    ) -> Result<()> {
        let ignore = loss.pixel.ignore_label;
        batch.validate(model.num_classes(), ignore)?;
        let (x, y) = batch.to_tensors(device)?;
        let logits = model.forward_t(&x, false)?;
        let pw = pixel_weights(batch, loss, device)?;
        let l = loss
            .data_loss(&logits, &y, pw.as_ref())?
            .to_dtype(DType::F64)?
            .to_scalar::<f64>()?;
        let pred = logits.argmax(1)?.flatten_all()?.to_vec1::<u32>()?;
        let mut valid = 0usize;
        for (&p, &l) in pred.iter().zip(&batch.labels) {
            if Some(l) != ignore {
                valid += 1;
                if p == l as u32 {
                    self.correct += 1;
                }
            }
        }
        self.loss_sum += l * valid as f64;
        self.pixels += valid;
        self.batches += 1;
        Ok(())
    }

    fn finish(&self) -> Result<Evaluation> {
        if self.batches == 0 {
            return Err(ModelError::InvalidInput(
                "the evaluation source yielded no batches".into(),
            ));
        }
        // A loss of 0 over no pixel would pass for a perfect model (and, as a validation
        // loss, hold early stopping's best at the first epoch).
        if self.pixels == 0 {
            return Err(ModelError::InvalidInput(format!(
                "the evaluation source's {} batch(es) hold no scored pixel: every label is the \
                 ignore label",
                self.batches
            )));
        }
        let denom = self.pixels as f64;
        Ok(Evaluation {
            loss: self.loss_sum / denom,
            accuracy: self.correct as f64 / denom,
            pixels: self.pixels,
        })
    }
}

fn pixel_weights(batch: &TrainBatch, loss: &LossConfig, device: &Device) -> Result<Option<Tensor>> {
    match &loss.boundary {
        None => Ok(None),
        Some(cfg) => {
            let w = boundary_weight_maps(
                &batch.labels,
                batch.n,
                batch.height,
                batch.width,
                cfg,
                loss.pixel.ignore_label,
            )?;
            Ok(Some(Tensor::from_vec(
                w,
                (batch.n, batch.height, batch.width),
                device,
            )?))
        }
    }
}

const BEST_DIR: &str = "best";
const LAST_DIR: &str = "last";
const LOG_FILE: &str = "log.jsonl";
const OPTIMIZER_FILE: &str = "optimizer.safetensors";
const STATE_FILE: &str = "trainer_state.json";
const TRAIN_CONFIG_FILE: &str = "train_config.json";

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

    /// Keep checkpoints and the log in `dir` (see the module docs for the layout).
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

    /// Continues from `checkpoint_dir/last` when it exists: weights, optimiser state, epoch
    /// counter, best loss and scheduler. Returns the epoch training will continue at, or
    /// `None` when there was nothing to resume. The stored model configuration must equal
    /// the model's. When this trainer's schedule or learning rate differ from the run's
    /// (e.g. more epochs for a cosine schedule), they apply from the resumed epoch
    /// ([`LrScheduler::resumed_at`]); otherwise the stored scheduler continues exactly.
    ///
    /// # Errors
    /// Unreadable or inconsistent files in `last/`, a model configuration other than the
    /// model's, or a stored learning rate that is negative, NaN or beyond the `f32` range
    /// (one edited into `trainer_state.json`), naming the file.
    ///
    /// # Examples
    /// A run of one epoch, continued to two by another trainer (as a new process would):
    /// ```
    /// use candle_core::{DType, Device, Tensor};
    /// use candle_nn::{ModuleT, VarBuilder, VarMap};
    /// use xnet_model::models::{ModelConfig, XNetConfig};
    /// use xnet_model::train::{InMemoryBatches, TrainBatch, TrainConfig, Trainer};
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let dir = std::env::temp_dir().join(format!("xnet-doc-resume-{}", std::process::id()));
    /// let dev = Device::Cpu;
    /// let cfg = ModelConfig::XNet(XNetConfig { base_width: 2, ..Default::default() });
    /// let batch = TrainBatch::new(vec![0.5; 16 * 16], vec![1; 16 * 16], 1, 16, 16)?;
    /// let mut data = InMemoryBatches::new(vec![batch]);
    /// let config = |epochs| TrainConfig { epochs, progress: false, ..Default::default() };
    /// let x = Tensor::rand(0f32, 1f32, (1, 1, 16, 16), &dev)?;
    ///
    /// let varmap = VarMap::new();
    /// let model = cfg.build(VarBuilder::from_varmap(&varmap, DType::F32, &dev))?;
    /// let mut first =
    ///     Trainer::new(model.as_ref(), &varmap, config(1), &dev)?.with_checkpoint_dir(&dir);
    /// assert_eq!(first.resume()?, None); // nothing to resume yet
    /// first.fit(&mut data, None)?;
    /// let trained = model.forward_t(&x, false)?.flatten_all()?.to_vec1::<f32>()?;
    ///
    /// // A freshly built network: resume loads the weights of `dir/last`.
    /// let varmap = VarMap::new();
    /// let model = cfg.build(VarBuilder::from_varmap(&varmap, DType::F32, &dev))?;
    /// let mut second =
    ///     Trainer::new(model.as_ref(), &varmap, config(2), &dev)?.with_checkpoint_dir(&dir);
    /// assert_eq!(second.resume()?, Some(1));
    /// assert_eq!(model.forward_t(&x, false)?.flatten_all()?.to_vec1::<f32>()?, trained);
    /// let summary = second.fit(&mut data, None)?;
    /// assert_eq!((summary.epochs.len(), summary.epochs[0].epoch, summary.epochs_run), (1, 1, 2));
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn resume(&mut self) -> Result<Option<usize>> {
        let Some(dir) = &self.checkpoint_dir else {
            return Ok(None);
        };
        let last = dir.join(LAST_DIR);
        // A save the previous process did not finish: put the last whole one in place.
        checkpoint::recover_replaced_dir(&last)?;
        checkpoint::recover_replaced_dir(&dir.join(BEST_DIR))?;
        let state_path = last.join(STATE_FILE);
        if !state_path.exists() {
            return Ok(None);
        }
        let stored = checkpoint::read_config(&last)?;
        let ours = self.model.config();
        if stored.model != ours {
            return Err(ModelError::InvalidConfig(format!(
                "{}: the checkpoint was written for model {:?} but the trainer's model is {:?}",
                last.display(),
                stored.model,
                ours
            )));
        }
        let text = std::fs::read_to_string(&state_path).map_err(|source| ModelError::Io {
            path: state_path.clone(),
            source,
        })?;
        let state: TrainState = serde_json::from_str(&text).map_err(|source| ModelError::Json {
            path: state_path.clone(),
            source,
        })?;
        // A stored scheduler that continues the run brings its rate: one edited into the file
        // (`1e308`, which f64 holds, would run as infinity in the f32 update) is refused like
        // a configured one, before anything is loaded. One that does not is rebuilt from the
        // config below, so its contents do not matter.
        if state
            .scheduler
            .follows(&self.config.schedule, self.config.optimizer.learning_rate())
        {
            state.scheduler.validate().map_err(|e| match e {
                ModelError::InvalidConfig(m) => {
                    ModelError::InvalidConfig(format!("{}: {m}", state_path.display()))
                }
                other => other,
            })?;
        }
        // `last/` is replaced as a whole, but runs written before that renamed its four
        // files into place one by one (weights, config, optimizer, state), and an interrupted
        // save left them from two epochs. The weights must be the config's, and the config
        // (written second) of the state's epoch (written last).
        let weights = last.join(checkpoint::WEIGHTS_FILE);
        let saved_epoch = stored.metadata.get("next_epoch").and_then(|v| v.as_u64());
        if saved_epoch.is_some_and(|e| e != state.next_epoch as u64) {
            return Err(ModelError::InvalidConfig(format!(
                "{}: an interrupted save left it inconsistent (its weights and config were saved \
                 before epoch {}, its trainer state before epoch {}); the run's best/ checkpoint \
                 is not affected",
                last.display(),
                saved_epoch.unwrap_or_default(),
                state.next_epoch
            )));
        }
        checkpoint::load_weights_into(self.varmap, &weights, &self.device)?;
        self.optimizer
            .load_state(&last.join(OPTIMIZER_FILE), &self.device)?;
        let mut state = state;
        // The stored scheduler continues the run exactly; a configuration with another
        // schedule or rate (more epochs for a cosine, a new learning rate) takes effect from
        // the epoch the run resumes at, instead of being ignored.
        let base_lr = self.config.optimizer.learning_rate();
        if !state.scheduler.follows(&self.config.schedule, base_lr) {
            state.scheduler =
                LrScheduler::resumed_at(self.config.schedule.clone(), base_lr, state.next_epoch)?;
        }
        self.optimizer
            .set_learning_rate(state.scheduler.learning_rate());
        self.state = state;
        let log = trim_log(&dir.join(LOG_FILE), self.state.next_epoch)?;
        self.catch_up_best(dir, &log)?;
        Ok(Some(self.state.next_epoch))
    }

    /// A process stopped after `last/` was replaced by an improving epoch and before
    /// `best/` was leaves `best/` behind the trainer state (or absent after the first
    /// epoch). `last/` holds that epoch's weights, loaded by now, so `best/` is written from
    /// them, with the epoch's validation figures from the (trimmed) `log`.
    fn catch_up_best(&self, dir: &Path, log: &str) -> Result<()> {
        let (Some(epoch), Some(monitored)) = (self.state.best_epoch, self.state.best_loss) else {
            return Ok(());
        };
        if epoch + 1 != self.state.next_epoch {
            return Ok(());
        }
        // Epoch and loss together: a `best/` left by another run in the folder may carry the
        // same epoch number.
        let saved = checkpoint::read_config(&dir.join(BEST_DIR)).ok().map(|c| {
            let field = |k: &str| c.metadata.get(k).cloned();
            (field("epoch"), field("monitored_loss"))
        });
        if saved == Some((Some(epoch.into()), Some(monitored.into()))) {
            return Ok(());
        }
        let (val_loss, val_accuracy) =
            log_record(log, epoch).map_or((None, None), |r| (r.val_loss, r.val_accuracy));
        self.save_best(dir, best_metadata(epoch, monitored, val_loss, val_accuracy))
    }

    /// Replaces `best/` as a whole with the current weights.
    fn save_best(&self, dir: &Path, meta: serde_json::Value) -> Result<()> {
        let meta = self.checkpoint_meta(meta);
        checkpoint::replace_dir(&dir.join(BEST_DIR), |staging| {
            checkpoint::save(staging, self.varmap, &self.model.config(), meta)
        })
    }

    /// One optimisation step on `batch`; returns its data loss (without L2). A non-finite
    /// loss or gradient norm is an error and the update is not applied.
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

    /// Replaces `last/` as a whole (see [`checkpoint::replace_dir`]): a crash leaves either
    /// the previous epoch's four files or this one's, never a mix.
    fn save_last(&self, dir: &Path) -> Result<()> {
        let meta = self.checkpoint_meta(serde_json::json!({ "next_epoch": self.state.next_epoch }));
        checkpoint::replace_dir(&dir.join(LAST_DIR), |staging| {
            checkpoint::save(staging, self.varmap, &self.model.config(), meta)?;
            self.optimizer.save_state(&staging.join(OPTIMIZER_FILE))?;
            checkpoint::write_json_atomic(&staging.join(STATE_FILE), &self.state)
        })
    }

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

/// Keeps only the log records of epochs before `next_epoch`: those after it belong to epochs
/// a resumed run trains again (their record was written, the checkpoint was not), and a last
/// line cut short by a crash (no newline after it) is dropped too. Any other line that is not
/// an epoch record is an error and the log is left as it is: a crash only ever cuts the last
/// line, so such a line was edited or damaged, and rewriting the log would delete it. The
/// log is rewritten atomically, and only if needed. Returns the kept records' text (empty
/// without a log).
fn trim_log(path: &Path, next_epoch: usize) -> Result<String> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(String::new()),
        Err(source) => {
            return Err(ModelError::Io {
                path: path.to_path_buf(),
                source,
            })
        }
    };
    #[derive(Deserialize)]
    struct Epoch {
        epoch: usize,
    }
    let torn_tail = !text.is_empty() && !text.ends_with('\n');
    let count = text.lines().count();
    let mut kept: Vec<&str> = Vec::with_capacity(count);
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue; // a blank line holds no record (the rewrite drops it)
        }
        match serde_json::from_str::<Epoch>(line) {
            Ok(r) if r.epoch < next_epoch => kept.push(line),
            Ok(_) => {}
            Err(_) if torn_tail && n + 1 == count => {}
            Err(e) => {
                return Err(ModelError::InvalidConfig(format!(
                    "{}: line {} is not an epoch record ({e}); a crash only cuts the last \
                     line short, so the log was edited or damaged: mend or delete that line \
                     and resume again (the log is left as it is)",
                    path.display(),
                    n + 1
                )))
            }
        }
    }
    if kept.len() == text.lines().count() && (text.is_empty() || text.ends_with('\n')) {
        return Ok(text);
    }
    let mut trimmed = kept.join("\n");
    if !trimmed.is_empty() {
        trimmed.push('\n');
    }
    checkpoint::write_bytes_atomic(path, trimmed.as_bytes())?;
    Ok(trimmed)
}

/// What `best/`'s config records of the epoch it holds.
fn best_metadata(
    epoch: usize,
    monitored: f64,
    val_loss: Option<f64>,
    val_accuracy: Option<f64>,
) -> serde_json::Value {
    serde_json::json!({
        "epoch": epoch, "monitored_loss": monitored,
        "val_loss": val_loss, "val_accuracy": val_accuracy,
    })
}

/// The record of `epoch` in the log's text, if it has one.
fn log_record(log: &str, epoch: usize) -> Option<EpochRecord> {
    log.lines()
        .filter_map(|line| serde_json::from_str::<EpochRecord>(line).ok())
        .find(|r| r.epoch == epoch)
}

fn append_log(path: &Path, record: &EpochRecord) -> Result<()> {
    let line = serde_json::to_string(record).map_err(|source| ModelError::Json {
        path: path.to_path_buf(),
        source,
    })?;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|source| ModelError::Io {
            path: path.to_path_buf(),
            source,
        })?;
    writeln!(f, "{line}").map_err(|source| ModelError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    // On the disk before `last/` says the epoch is done (`last/` is flushed too).
    f.sync_data().map_err(|source| ModelError::Io {
        path: path.to_path_buf(),
        source,
    })
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
