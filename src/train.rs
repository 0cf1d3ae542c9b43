//! `train`: a dataset (synthetic when none is given) → split the XNet way → train with
//! augmentation and category balancing → checkpoint, report on the test split, plots and
//! overlays in one run directory. Optionally k-fold cross-validation.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use candle_core::{DType, Device};
use candle_nn::VarMap;
use rand::rngs::StdRng;
use rand::SeedableRng;
use serde::{Deserialize, Serialize};
use xnet_model::checkpoint;
use xnet_model::error::readable_number;
use xnet_model::infer::FlipAverage;
use xnet_model::init::seeded_var_builder;
use xnet_model::loss::{LossConfig, LossKind};
use xnet_model::models::{
    BatchNormSettings, DeepLabConfig, SegNetConfig, Segmenter, UNetConfig, Upsampling, XNetConfig,
};
use xnet_model::optim::{LrSchedule, OptimizerConfig};
use xnet_model::train::{BatchSource, TrainConfig, TrainSummary, Trainer};
use xnet_model::ModelConfig;
use xray_data::augment::{Pipeline as Augment, PipelineConfig as AugmentConfig};
use xray_data::dataset::{
    stratified_kfold, xnet_split, Dataset, DatasetOptions, Split, SplitConfig,
};
use xray_data::io::LoadOptions;
use xray_metrics::Report;

use crate::calibrate::{fit_temperature_on, record_temperature};
use crate::evaluate::{
    evaluate_samples, pool_category_scores, write_evaluation, CategoryScores, Evaluation,
};
use crate::predict::{Predictor, FLIP_AVERAGE_KEY};
use crate::prepare::Preprocess;
use crate::segment::{segment_image, SegmentOptions};
use crate::source::DatasetSource;
use crate::{Error, Result};

/// The network families.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Arch {
    /// XNet (Bullock et al. 2019).
    XNet,
    /// U-Net (Ronneberger et al. 2015).
    UNet,
    /// SegNet-Basic with index unpooling.
    SegNet,
    /// DeepLab-lite (atrous spatial pyramid).
    DeepLab,
}

impl std::str::FromStr for Arch {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "xnet" => Ok(Arch::XNet),
            "unet" | "u-net" => Ok(Arch::UNet),
            "segnet" => Ok(Arch::SegNet),
            "deeplab" | "deeplab-lite" => Ok(Arch::DeepLab),
            other => Err(Error::Invalid(format!(
                "unknown model {other:?}: expected xnet, unet, segnet or deeplab"
            ))),
        }
    }
}

impl std::fmt::Display for Arch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Arch::XNet => "xnet",
            Arch::UNet => "unet",
            Arch::SegNet => "segnet",
            Arch::DeepLab => "deeplab",
        })
    }
}

/// A network of family `arch` whose first level has `width` channels (the paper's XNet
/// and U-Net use 64), with an optional up-sampling override.
///
/// Batch-norm running statistics use PyTorch's momentum 0.1 rather than Keras' 0.01 (the
/// paper's): a CPU-sized run makes a few hundred optimiser steps, and with 0.01 the
/// inference-mode statistics would still lag far behind the weights when training stops.
///
/// # Examples
/// ```
/// use xnet_model::models::Upsampling;
/// use xnet_model::ModelConfig;
/// use xray_seg::train::{model_config, Arch};
/// let ModelConfig::XNet(xnet) = model_config(Arch::XNet, 4, None) else {
///     panic!("not an XNet");
/// };
/// assert_eq!((xnet.base_width, xnet.upsampling), (4, Upsampling::Nearest));
/// assert_eq!(xnet.batch_norm.momentum, 0.1);
/// let ModelConfig::UNet(unet) = model_config(Arch::UNet, 4, Some(Upsampling::Bilinear)) else {
///     panic!("not a U-Net");
/// };
/// assert_eq!(unet.upsampling, Upsampling::Bilinear); // the override
/// // A width of 0 is taken as 1.
/// assert_eq!(model_config(Arch::DeepLab, 0, None), model_config(Arch::DeepLab, 1, None));
/// assert!(model_config(Arch::SegNet, 2, None).validate().is_ok());
/// ```
pub fn model_config(arch: Arch, width: usize, upsampling: Option<Upsampling>) -> ModelConfig {
    let width = width.max(1);
    let batch_norm = BatchNormSettings {
        momentum: 0.1,
        ..BatchNormSettings::default()
    };
    match arch {
        Arch::XNet => ModelConfig::XNet(XNetConfig {
            base_width: width,
            upsampling: upsampling.unwrap_or(Upsampling::Nearest),
            batch_norm,
            ..XNetConfig::default()
        }),
        Arch::UNet => ModelConfig::UNet(UNetConfig {
            base_width: width,
            upsampling: upsampling.unwrap_or(Upsampling::TransposedConv),
            batch_norm,
            ..UNetConfig::default()
        }),
        Arch::SegNet => {
            let mut cfg = SegNetConfig::basic();
            for w in cfg
                .encoder
                .iter_mut()
                .chain(cfg.decoder.iter_mut())
                .flatten()
            {
                *w = width;
            }
            cfg.kernel_size = 3;
            cfg.batch_norm = batch_norm;
            if let Some(u) = upsampling {
                cfg.upsampling = u;
            }
            ModelConfig::SegNet(cfg)
        }
        Arch::DeepLab => ModelConfig::DeepLab(DeepLabConfig {
            encoder_widths: vec![width, 2 * width, 4 * width, 8 * width],
            aspp_channels: 4 * width,
            upsampling: upsampling.unwrap_or(Upsampling::Bilinear),
            batch_norm,
            ..DeepLabConfig::default()
        }),
    }
}

/// Everything the `train` job needs; [`TrainJob::default`] is the README's main command.
#[derive(Debug, Clone)]
pub struct TrainJob {
    /// Dataset folder; `None` generates a synthetic one into `<run>/data`.
    pub data: Option<PathBuf>,
    /// Run directory (created): for [`run`], missing or empty unless `resume`.
    pub run_dir: PathBuf,
    /// Network family.
    pub arch: Arch,
    /// Up-sampling override (`None`: the family's own).
    pub upsampling: Option<Upsampling>,
    /// Network input side, pixels (whole radiographs are resized to it).
    pub size: u32,
    /// Channels of the first level.
    pub width: usize,
    /// Maximum epochs.
    pub epochs: usize,
    /// Batch size.
    pub batch: usize,
    /// Learning rate (Adam): > 0 and within the `f32` range the network computes in.
    pub lr: f64,
    /// Early-stopping patience, epochs.
    pub patience: usize,
    /// L2 coefficient λ on convolution kernels (the objective gains `λ · Σ w²`; see
    /// [`xnet_model::loss::LossConfig::l2`]). The paper's 5·10⁻⁴ is the default. ≥ 0 and
    /// within the `f32` range.
    pub l2: f64,
    /// The data term (cross-entropy, the paper's, by default).
    pub loss: LossKind,
    /// Seed of every random choice (data, split, initialisation, augmentation).
    pub seed: u64,
    /// Read the dataset's PNG, TIFF and JPEG images as display polarity (bone white, as most
    /// exports from a viewer or PACS are) and mirror them into the project's convention
    /// (larger = more X-rays); [`LoadOptions::invert`]. DICOM files carry their polarity and
    /// are not affected. Only with `data`: synthetic data is written in the convention.
    pub invert: bool,
    /// Convert the dataset's colour (RGB, RGBA, grey + alpha) PNG, TIFF and JPEG images to grey
    /// instead of refusing them; [`LoadOptions::allow_rgb`]. Only with `data`.
    pub allow_rgb: bool,
    /// Synthetic images to generate when `data` is `None`.
    pub synth_count: usize,
    /// Side of the synthetic images.
    pub synth_size: u32,
    /// Augment training samples.
    pub augment: bool,
    /// The augmentation pipeline when `augment` is set (default:
    /// [`AugmentConfig::xnet_no_crop`], XNet's without its random crop).
    pub augment_config: AugmentConfig,
    /// Oversample categories to the largest.
    pub balance: bool,
    /// k-fold cross-validation instead of one split.
    pub kfold: Option<usize>,
    /// Continue the run in `run_dir` from `<run>/last` (when present); for [`run`] the
    /// directory must hold a run started with the same [`RunOptions`].
    pub resume: bool,
    /// Progress bars.
    pub progress: bool,
    /// Overlays of this many test images.
    pub overlays: usize,
    /// Flip averaging of the trained model's predictions (test-time augmentation), recorded
    /// in its checkpoint so that `evaluate` and `segment` predict the same way; the
    /// temperature is fitted on predictions made with it, and the test report scores them.
    pub flip_average: FlipAverage,
    /// Fit the softmax temperature on the validation split after training and store it in
    /// the checkpoint ([`crate::calibrate`]); the test report is then on calibrated
    /// probabilities and shows the fit.
    pub calibrate: bool,
    /// Device.
    pub device: Device,
}

impl Default for TrainJob {
    fn default() -> Self {
        TrainJob {
            data: None,
            run_dir: PathBuf::from("runs/train"),
            arch: Arch::XNet,
            upsampling: None,
            size: 128,
            width: 8,
            epochs: 150,
            batch: 8,
            lr: 2e-3,
            patience: 25,
            l2: 5e-4,
            loss: LossKind::CrossEntropy,
            seed: 1,
            invert: false,
            allow_rgb: false,
            synth_count: 160,
            synth_size: 256,
            augment: true,
            augment_config: AugmentConfig::xnet_no_crop(),
            balance: true,
            kfold: None,
            resume: false,
            progress: true,
            overlays: 4,
            flip_average: FlipAverage::HorizontalVertical,
            calibrate: true,
            device: Device::Cpu,
        }
    }
}

impl TrainJob {
    /// How the dataset's images are read: [`TrainJob::invert`] and [`TrainJob::allow_rgb`]
    /// over the defaults.
    ///
    /// # Examples
    /// ```
    /// use xray_seg::train::TrainJob;
    /// let job = TrainJob { data: Some("exports".into()), invert: true, ..TrainJob::default() };
    /// let opts = job.dataset_options();
    /// assert!(opts.load.invert && !opts.load.allow_rgb);
    /// assert_eq!(opts.num_classes, 3);
    /// ```
    pub fn dataset_options(&self) -> DatasetOptions {
        DatasetOptions {
            load: LoadOptions {
                invert: self.invert,
                allow_rgb: self.allow_rgb,
                ..LoadOptions::default()
            },
            ..DatasetOptions::default()
        }
    }
}

/// What one training run (or one fold) produced.
#[derive(Debug)]
pub struct TrainOutcome {
    /// The run (or fold) directory.
    pub run_dir: PathBuf,
    /// Evaluation on the test split.
    pub evaluation: Evaluation,
    /// The trainer's summary.
    pub summary: TrainSummary,
    /// Wall-clock seconds of training alone.
    pub train_seconds: f64,
    /// Trainable parameters.
    pub parameters: usize,
    /// Sizes of the train / validation / test subsets.
    pub split_sizes: [usize; 3],
    /// The trained network (best epoch), ready for inference.
    pub predictor: Predictor,
}

impl TrainOutcome {
    /// The line `train` prints for the run (or fold): where it is, its size and split, how
    /// long it trained and its best epoch ("best epoch 12", or "no best epoch" when no epoch
    /// was scored), then the test split's scores.
    ///
    /// # Examples
    /// ```
    /// use xnet_model::infer::FlipAverage;
    /// use xray_seg::train::{run, TrainJob};
    /// let dir = std::env::temp_dir().join(format!("xray-seg-doc-summary-{}", std::process::id()));
    /// let job = TrainJob {
    ///     run_dir: dir.clone(),
    ///     size: 32,
    ///     width: 2,
    ///     epochs: 1,
    ///     batch: 4,
    ///     synth_count: 6,
    ///     synth_size: 32,
    ///     augment: false,
    ///     flip_average: FlipAverage::Off,
    ///     calibrate: false,
    ///     progress: false,
    ///     overlays: 0,
    ///     ..TrainJob::default()
    /// };
    /// let (outcomes, _) = run(&job)?;
    /// let o = &outcomes[0];
    /// let line = o.summary_line();
    /// let start = format!("{}: {} params, split {:?}, 1 epochs in ", dir.display(), o.parameters, o.split_sizes);
    /// assert!(line.starts_with(&start), "{line}");
    /// assert!(line.contains("(best epoch 0); test: "), "{line}");
    /// # std::fs::remove_dir_all(&dir).ok();
    /// # Ok::<(), xray_seg::Error>(())
    /// ```
    pub fn summary_line(&self) -> String {
        let r = &self.evaluation.report;
        // A resumed run trained only some of its epochs in this call, and timed only those.
        let this_call = self.summary.epochs.len();
        let epochs = if this_call == self.summary.epochs_run {
            format!("{this_call} epochs")
        } else {
            format!(
                "{} epochs ({this_call} in this call)",
                self.summary.epochs_run
            )
        };
        format!(
            "{}: {} params, split {:?}, {epochs} in {:.0} s ({}); test: {}, confidence {}",
            self.run_dir.display(),
            self.parameters,
            self.split_sizes,
            self.train_seconds,
            best_epoch_text(self.summary.best_epoch),
            r.headline(),
            r.confidence.map_or("n/a".into(), |c| format!("{c:.4}")),
        )
    }
}

/// "best epoch N", or "no best epoch" (it printed as `best Some(N)`).
///
/// # Examples
/// ```
/// use xray_seg::train::best_epoch_text;
/// assert_eq!(best_epoch_text(Some(0)), "best epoch 0");
/// assert_eq!(best_epoch_text(None), "no best epoch");
/// ```
pub fn best_epoch_text(best: Option<usize>) -> String {
    best.map_or_else(|| "no best epoch".into(), |e| format!("best epoch {e}"))
}

/// Summary of k-fold cross-validation: the mean and standard deviation of each metric.
#[derive(Debug, Clone, Serialize)]
pub struct KFoldSummary {
    /// Number of folds.
    pub folds: usize,
    /// Names of the columns of `per_fold`, `mean` and `std`.
    pub columns: [&'static str; 5],
    /// Per fold: `[accuracy, f1 weighted, f1 macro, auc weighted, ece]`.
    pub per_fold: Vec<[f64; 5]>,
    /// Means of the columns.
    pub mean: [f64; 5],
    /// Sample standard deviations of the columns.
    pub std: [f64; 5],
    /// Per fold: the softmax temperature fitted on its validation split (`None` where the
    /// fold was not calibrated); the folds' ECE above is at these temperatures.
    pub temperatures: Vec<Option<f64>>,
    /// Arg-max scores per category, pooled over the folds' test images (each image is
    /// tested once, so this is the cross-validated score of each category); empty without
    /// categories.
    pub per_category: Vec<CategoryScores>,
}

/// The file in a run directory that records the options fixing the run's data, split and
/// network ([`RunOptions`]); written when training starts, compared on a resume.
pub const RUN_OPTIONS_FILE: &str = "train_job.json";

/// The options of a [`TrainJob`] that fix which images a run trains, validates and tests on,
/// which network it trains and on which objective: a resumed run must keep every one of them
/// (another seed re-splits the data and moves test images into training; another size or
/// network does not fit the stored weights; another L2 coefficient would change the
/// objective halfway through, with nothing in the run's files to say so).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunOptions {
    /// The dataset folder (canonical path), `None` for synthetic data in `<run>/data`.
    pub data: Option<PathBuf>,
    /// The seed of the split (and of the synthetic data).
    pub seed: u64,
    /// The dataset's PNG, TIFF and JPEG images are read as display polarity and mirrored
    /// ([`TrainJob::invert`]; false in runs stored before it existed).
    #[serde(default)]
    pub invert: bool,
    /// The dataset's colour images are converted to grey ([`TrainJob::allow_rgb`]; false in
    /// runs stored before it existed).
    #[serde(default)]
    pub allow_rgb: bool,
    /// Synthetic images (`None` with a dataset folder).
    pub synth_count: Option<usize>,
    /// Side of the synthetic images (`None` with a dataset folder).
    pub synth_size: Option<u32>,
    /// k-fold cross-validation.
    pub kfold: Option<usize>,
    /// Network family.
    pub model: Arch,
    /// Channels of the first level.
    pub width: usize,
    /// Up-sampling override.
    pub upsampling: Option<Upsampling>,
    /// Network input side.
    pub size: u32,
    /// L2 coefficient on convolution kernels (runs stored before it existed used the
    /// default, 5·10⁻⁴).
    #[serde(default = "default_l2")]
    pub l2: f64,
    /// The data term (runs stored before it existed used cross-entropy).
    #[serde(default = "default_loss")]
    pub loss: LossKind,
    /// The schedule and augmentation the run trains with (`None` in runs stored before it
    /// was recorded). A resume may change them, but says so ([`RunOptions::setting_changes`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub settings: Option<TrainSettings>,
}

/// The training settings a resumed run may change: they fix neither its data, split nor
/// network, and extending a finished run with more epochs is a use of `--resume`; but a
/// resume that changes them (say, after the defaults moved) should not do so silently.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainSettings {
    /// Maximum epochs (the cosine schedule spans them).
    pub epochs: usize,
    /// Batch size.
    pub batch: usize,
    /// Learning rate.
    pub lr: f64,
    /// Early-stopping patience.
    pub patience: usize,
    /// The augmentation pipeline (`None` without augmentation).
    pub augment: Option<AugmentConfig>,
    /// Threads the CPU kernels ran on (rayon's pool: `RAYON_NUM_THREADS`, else one per
    /// core); `None` on a GPU and in runs stored before it was recorded. For the record
    /// only: the weights do not depend on it (the kernels round as for a fixed nominal
    /// count, so a run repeats bit for bit on any number of threads), and a resume on
    /// another count is not a change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threads: Option<usize>,
}

/// `"FLAG: the run has STORED, this call GIVEN"` where the two differ.
fn change_line(flag: &str, stored: impl ToString, given: impl ToString) -> Option<String> {
    let (stored, given) = (stored.to_string(), given.to_string());
    (stored != given).then(|| format!("{flag}: the run has {stored}, this call {given}"))
}

/// The training objective of `job`.
fn loss_config(job: &TrainJob) -> LossConfig {
    LossConfig {
        kind: job.loss.clone(),
        l2: job.l2,
        ..LossConfig::default()
    }
}

/// The data term of runs stored before [`RunOptions::loss`] existed.
fn default_loss() -> LossKind {
    LossKind::CrossEntropy
}

/// The L2 coefficient of runs stored before [`RunOptions::l2`] existed.
fn default_l2() -> f64 {
    TrainJob::default().l2
}

impl RunOptions {
    /// The options of `job`.
    ///
    /// # Examples
    /// ```
    /// use std::path::PathBuf;
    /// use xray_seg::train::{Arch, RunOptions, TrainJob};
    /// let job = TrainJob { seed: 7, size: 64, ..TrainJob::default() };
    /// let options = RunOptions::of(&job);
    /// assert_eq!((options.seed, options.size, options.model), (7, 64, Arch::XNet));
    /// // Synthetic data: its count and side are part of the run's identity.
    /// assert_eq!((options.synth_count, options.synth_size), (Some(160), Some(256)));
    /// assert_eq!(options.settings.as_ref().map(|s| s.epochs), Some(150));
    /// // A dataset folder instead (canonicalised where it exists).
    /// let folder = RunOptions::of(&TrainJob { data: Some("no-such-scans".into()), ..job });
    /// assert_eq!(folder.data, Some(PathBuf::from("no-such-scans")));
    /// assert_eq!(folder.synth_count, None);
    /// ```
    pub fn of(job: &TrainJob) -> Self {
        let synthetic = job.data.is_none();
        RunOptions {
            data: job
                .data
                .as_ref()
                .map(|d| std::fs::canonicalize(d).unwrap_or_else(|_| d.clone())),
            seed: job.seed,
            invert: job.invert,
            allow_rgb: job.allow_rgb,
            synth_count: synthetic.then_some(job.synth_count),
            synth_size: synthetic.then_some(job.synth_size),
            kfold: job.kfold,
            model: job.arch,
            width: job.width,
            upsampling: job.upsampling,
            size: job.size,
            l2: job.l2,
            loss: job.loss.clone(),
            settings: Some(TrainSettings {
                epochs: job.epochs,
                batch: job.batch,
                lr: job.lr,
                patience: job.patience,
                augment: job.augment.then(|| job.augment_config.clone()),
                threads: job.device.is_cpu().then(rayon::current_num_threads),
            }),
        }
    }

    /// What a resume with `now` changes in the stored run's [`TrainSettings`], one line per
    /// setting, named as the `train` example's flag; for a run stored without them, one line
    /// saying that this call's apply.
    ///
    /// # Examples
    /// ```
    /// use xray_seg::train::{RunOptions, TrainJob};
    /// let stored = RunOptions::of(&TrainJob::default());
    /// let now = RunOptions::of(&TrainJob { epochs: 200, lr: 1e-3, seed: 5, ..TrainJob::default() });
    /// assert_eq!(
    ///     stored.setting_changes(&now),
    ///     ["--epochs: the run has 150, this call 200", "--lr: the run has 0.002, this call 0.001"]
    /// ); // the seed is no setting: see `differences`
    /// assert!(stored.setting_changes(&stored).is_empty());
    /// // A run stored before the settings were recorded gets one line on this call's.
    /// let old = RunOptions { settings: None, ..stored };
    /// let lines = old.setting_changes(&now);
    /// assert_eq!(lines.len(), 1);
    /// assert!(lines[0].contains("up to 200 epochs, batch 8"), "{}", lines[0]);
    /// ```
    pub fn setting_changes(&self, now: &RunOptions) -> Vec<String> {
        match (&self.settings, &now.settings) {
            (Some(stored), Some(given)) => [
                change_line("--epochs", stored.epochs, given.epochs),
                change_line("--batch", stored.batch, given.batch),
                change_line("--lr", stored.lr, given.lr),
                change_line("--patience", stored.patience, given.patience),
                (stored.augment != given.augment).then(|| {
                    "--augment-config / --no-augment: this call's augmentation pipeline is \
                     not the run's"
                        .to_string()
                }),
            ]
            .into_iter()
            .flatten()
            .collect(),
            (None, Some(given)) => vec![format!(
                "the run does not record its schedule and augmentation (started before they \
                 were recorded): this call trains up to {} epochs, batch {}, lr {}, patience \
                 {}, {} (the defaults before 2026-11-29 were 60 epochs, patience 8 and the \
                 XNet pipeline with its random crop)",
                given.epochs,
                given.batch,
                given.lr,
                given.patience,
                if given.augment.is_some() {
                    "with its augmentation pipeline"
                } else {
                    "without augmentation"
                }
            )],
            _ => Vec::new(),
        }
    }

    /// What differs between the stored options (`self`) and `now`, one line per option,
    /// named as the `train` example's flag.
    ///
    /// # Examples
    /// ```
    /// use xray_seg::train::{Arch, RunOptions, TrainJob};
    /// let stored = RunOptions::of(&TrainJob::default());
    /// let now = RunOptions::of(&TrainJob {
    ///     seed: 2,
    ///     arch: Arch::UNet,
    ///     epochs: 10, // a setting, not an option that fixes the run
    ///     ..TrainJob::default()
    /// });
    /// assert_eq!(
    ///     stored.differences(&now),
    ///     ["--seed: the run has 1, this call 2", "--model: the run has xnet, this call unet"]
    /// );
    /// assert!(stored.differences(&stored).is_empty());
    /// ```
    pub fn differences(&self, now: &RunOptions) -> Vec<String> {
        fn show<T: std::fmt::Debug>(v: &Option<T>) -> String {
            v.as_ref().map_or("none".into(), |v| format!("{v:?}"))
        }
        let mut out = Vec::new();
        let mut differ = |flag: &str, stored: String, given: String| {
            out.extend(change_line(flag, stored, given));
        };
        let data = |d: &Option<PathBuf>| {
            d.as_ref().map_or("synthetic data (no --data)".into(), |d| {
                format!("{}", d.display())
            })
        };
        differ("--data", data(&self.data), data(&now.data));
        differ("--seed", self.seed.to_string(), now.seed.to_string());
        differ("--invert", self.invert.to_string(), now.invert.to_string());
        differ(
            "--allow-rgb",
            self.allow_rgb.to_string(),
            now.allow_rgb.to_string(),
        );
        if self.data.is_none() && now.data.is_none() {
            differ(
                "--synth-count",
                show(&self.synth_count),
                show(&now.synth_count),
            );
            differ(
                "--synth-size",
                show(&self.synth_size),
                show(&now.synth_size),
            );
        }
        differ("--kfold", show(&self.kfold), show(&now.kfold));
        differ("--model", self.model.to_string(), now.model.to_string());
        differ("--width", self.width.to_string(), now.width.to_string());
        differ("up-sampling", show(&self.upsampling), show(&now.upsampling));
        differ("--size", self.size.to_string(), now.size.to_string());
        differ("--l2", self.l2.to_string(), now.l2.to_string());
        differ(
            "--loss",
            format!("{:?}", self.loss),
            format!("{:?}", now.loss),
        );
        out
    }
}

/// Checks a run name (`runs/<name>/`): one plain path component, so that the run stays
/// inside the runs folder.
///
/// # Errors
/// [`Error::Invalid`] for an empty or blank name, `.`, `..`, a name with a path separator
/// (`/` or `\`), an absolute one, or one holding a control character (a newline, a tab,
/// an escape…), which would make an unreadable folder name and break the log lines that
/// print it.
///
/// # Examples
/// ```
/// use xray_seg::{train::check_run_name, Error};
/// assert!(check_run_name("hip-unet").is_ok());
/// assert!(check_run_name("run.2").is_ok());
/// for bad in ["", "  ", ".", "..", "a/b", r"a\b", "/tmp", "two\nlines"] {
///     assert!(matches!(check_run_name(bad), Err(Error::Invalid(_))), "{bad:?}");
/// }
/// let e = check_run_name("../elsewhere").unwrap_err().to_string();
/// assert!(e.contains("holds a path separator"), "{e}");
/// ```
pub fn check_run_name(name: &str) -> Result<()> {
    check_plain_name("run name", name, "hip-unet")
}

/// `name` must be one plain file or folder name (not empty, no separator, not `.` or `..`,
/// no control character); `what` and `example` word the error.
pub(crate) fn check_plain_name(what: &str, name: &str, example: &str) -> Result<()> {
    let bad = |why: &str| {
        Err(Error::Invalid(format!(
            "{what} {name:?} {why}: use a plain name such as {example:?}"
        )))
    };
    if name.trim().is_empty() {
        return bad("is empty");
    }
    if name == "." || name == ".." {
        return bad("names a folder, not a run");
    }
    if name.contains(['/', '\\']) || Path::new(name).has_root() || Path::new(name).is_absolute() {
        return bad("holds a path separator");
    }
    if name.chars().any(char::is_control) {
        return bad("holds a control character (a newline, tab or the like)");
    }
    let mut components = Path::new(name).components();
    match (components.next(), components.next()) {
        (Some(std::path::Component::Normal(c)), None) if c == name => Ok(()),
        _ => bad("is not a plain name"),
    }
}

/// Whether `dir` holds anything (a missing directory holds nothing).
fn holds_anything(dir: &Path) -> Result<bool> {
    match std::fs::read_dir(dir) {
        Ok(mut entries) => Ok(entries.next().is_some()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(Error::io(dir, e)),
    }
}

/// Reads `<run>/train_job.json`, or `None` where the run has none.
fn read_run_options(dir: &Path) -> Result<Option<RunOptions>> {
    let path = dir.join(RUN_OPTIONS_FILE);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io(&path, e)),
    };
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|e| Error::Invalid(format!("{}: {e}", path.display())))
}

/// Writes `<run>/train_job.json` (temporary file, then rename).
fn write_run_options(dir: &Path, options: &RunOptions) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    Ok(checkpoint::write_json_atomic(
        &dir.join(RUN_OPTIONS_FILE),
        options,
    )?)
}

/// For a run written before `train_job.json` existed: the seed and input size its
/// checkpoint's metadata records (`<run>/config.json`, or the first fold's).
fn legacy_seed_and_size(dir: &Path) -> (Option<u64>, Option<u32>) {
    for candidate in [dir.to_path_buf(), dir.join("fold-0")] {
        if let Ok(config) = checkpoint::read_config(&candidate) {
            let seed = config.metadata.get("seed").and_then(|v| v.as_u64());
            let size = config
                .metadata
                .get("preprocess")
                .and_then(|p| p.get("width"))
                .and_then(|v| v.as_u64())
                .and_then(|v| u32::try_from(v).ok());
            return (seed, size);
        }
    }
    (None, None)
}

/// Whether `dir` holds a run of the train job written before `train_job.json` existed.
fn is_legacy_run(dir: &Path) -> bool {
    let trained = |d: &Path| {
        d.join("last/trainer_state.json").is_file() || d.join(checkpoint::CONFIG_FILE).is_file()
    };
    trained(dir) || trained(&dir.join("fold-0"))
}

/// A resume with no saved epoch to continue from (`last/` absent) trains from epoch 0, which
/// is right for a run stopped during its first epoch, but would replace the results of a run
/// that got further and then lost `last/` (deleted to save space, say): its `best/`
/// checkpoint and final model are written only after `last/`, so either one means the
/// restart would overwrite a trained model.
///
/// # Errors
/// [`Error::Invalid`] naming the folder and what it holds.
fn refuse_restart_over_results(dir: &Path) -> Result<()> {
    let results: Vec<String> = ["best", checkpoint::WEIGHTS_FILE]
        .into_iter()
        .filter(|name| dir.join(name).exists())
        .map(|name| {
            if dir.join(name).is_dir() {
                format!("{name}/")
            } else {
                name.to_string()
            }
        })
        .collect();
    if results.is_empty() {
        return Ok(());
    }
    Err(Error::Invalid(format!(
        "cannot resume {}: it has no last/ checkpoint to continue from, but holds {} of a \
         trained model; a resume would train again from epoch 0 and replace them. Start a new \
         run under another --name (or move the folder away)",
        dir.display(),
        results.join(" and ")
    )))
}

/// The run directory's rules: a fresh run needs a directory that does not exist or is empty
/// (a run is never overwritten); a resume needs a run there, with the same [`RunOptions`].
///
/// # Errors
/// [`Error::Invalid`] saying which rule failed and what to do instead.
fn check_run_dir(job: &TrainJob, options: &RunOptions) -> Result<()> {
    let dir = &job.run_dir;
    if dir.exists() && !dir.is_dir() {
        return Err(Error::Invalid(format!(
            "run directory {} is a file, not a folder",
            dir.display()
        )));
    }
    let used = holds_anything(dir)?;
    if !job.resume {
        if used {
            let is_run = dir.join(RUN_OPTIONS_FILE).exists() || is_legacy_run(dir);
            return Err(Error::Invalid(if is_run {
                format!(
                    "run directory {} already exists and holds a run: pass --resume to \
                     continue it, or another --name for a new run",
                    dir.display()
                )
            } else {
                format!(
                    "run directory {} already exists and holds files that are not a train \
                     run: give another --name (nothing was written there)",
                    dir.display()
                )
            }));
        }
        return Ok(());
    }
    if !used {
        return Err(Error::Invalid(format!(
            "nothing to resume: run directory {} {}; drop --resume to start a new run",
            dir.display(),
            if dir.exists() {
                "is empty"
            } else {
                "does not exist"
            }
        )));
    }
    let differences = match read_run_options(dir)? {
        Some(stored) => {
            for change in stored.setting_changes(options) {
                eprintln!(
                    "warning: resuming {} with other settings, which apply from the epoch it \
                     resumes at (the cosine schedule spans this call's epochs): {change}",
                    dir.display()
                );
            }
            stored.differences(options)
        }
        None if is_legacy_run(dir) => {
            // Written before train_job.json: its checkpoint metadata still records the seed
            // and size; the trainer compares the network when it resumes.
            let (seed, size) = legacy_seed_and_size(dir);
            eprintln!(
                "warning: {} has no {RUN_OPTIONS_FILE} (an older run): only its seed, size and \
                 network can be checked against this call",
                dir.display()
            );
            [
                seed.and_then(|seed| change_line("--seed", seed, job.seed)),
                size.and_then(|size| change_line("--size", size, job.size)),
            ]
            .into_iter()
            .flatten()
            .collect()
        }
        None => {
            return Err(Error::Invalid(format!(
                "nothing to resume: {} holds no train run (no {RUN_OPTIONS_FILE})",
                dir.display()
            )))
        }
    };
    if differences.is_empty() {
        Ok(())
    } else {
        Err(Error::Invalid(format!(
            "cannot resume {} with other options than it was started with ({}); rerun with \
             the run's options, or start a new run under another --name",
            dir.display(),
            differences.join("; ")
        )))
    }
}

/// Checks a job's options before any file is written or image read: the budget, the
/// network and its input size, the optimiser, loss and augmentation settings, the synthetic
/// data's size and the number of folds.
pub(crate) fn check_job(job: &TrainJob) -> Result<()> {
    // Each option that is 0, by its flag. The patience is left out while the epochs are 0:
    // `compare` derives its patience from `--epochs`, and a patience cannot be judged
    // without a budget, so `--epochs 0` must not also report a `--patience` never given.
    let mut counts = vec![
        ("--epochs", job.epochs == 0),
        ("--batch", job.batch == 0),
        ("--size", job.size == 0),
        ("--width", job.width == 0),
    ];
    if job.epochs > 0 {
        counts.push(("--patience", job.patience == 0));
    }
    let zero: Vec<String> = counts
        .into_iter()
        .filter(|&(_, is_zero)| is_zero)
        .map(|(flag, _)| format!("{flag} must be at least 1, got 0"))
        .collect();
    if !zero.is_empty() {
        return Err(Error::Invalid(zero.join("; ")));
    }
    if job.data.is_none() && (job.invert || job.allow_rgb) {
        return Err(Error::Invalid(format!(
            "{} applies to a dataset folder's images (--data): synthetic data is written in \
             grey and in the project's polarity (larger = more X-rays)",
            if job.invert {
                "--invert"
            } else {
                "--allow-rgb"
            }
        )));
    }
    // The network and its input size, before any file is written or image read.
    let config = model_config(job.arch, job.width, job.upsampling);
    config.validate()?;
    Preprocess::square(job.size).validate(config.size_multiple())?;
    // The network computes in f32: a value that rounds to infinity there (beyond f32::MAX,
    // such as 1e308, which f64 holds) is refused here by its flag, as the optimiser and the
    // loss would refuse it later under their own field names ("optimizer lr", "l2").
    let in_f32 = |v: f64| (v as f32).is_finite();
    if !(job.lr.is_finite() && job.lr > 0.0 && in_f32(job.lr)) {
        return Err(Error::Invalid(format!(
            "--lr must be a finite number > 0 and no larger than {} (the network computes in \
             f32, where a larger value is infinity), got {}",
            readable_number(f32::MAX),
            readable_number(job.lr)
        )));
    }
    if !(job.l2.is_finite() && job.l2 >= 0.0 && in_f32(job.l2)) {
        return Err(Error::Invalid(format!(
            "--l2 must be finite, ≥ 0 and no larger than {} (the network computes in f32, \
             where a larger value is infinity), got {}",
            readable_number(f32::MAX),
            readable_number(job.l2)
        )));
    }
    loss_config(job).validate(config.num_classes())?;
    if job.augment {
        Augment::from_config(&job.augment_config)
            .and_then(|_| {
                let classes = u8::try_from(config.num_classes()).unwrap_or(u8::MAX);
                job.augment_config.check_mask_labels(classes)
            })
            .map_err(|e| Error::Invalid(format!("augmentation pipeline: {e}")))?;
    }
    if job.data.is_none() && job.synth_count < 6 {
        return Err(Error::Invalid(format!(
            "--synth-count must be at least 6 without --data (a train/val/test split of \
             synthetic images), got {}",
            job.synth_count
        )));
    }
    if let Some(k) = job.kfold {
        if k < 2 {
            return Err(Error::Invalid(format!("--kfold needs k ≥ 2, got {k}")));
        }
        if job.data.is_none() && k > job.synth_count {
            return Err(Error::Invalid(format!(
                "--kfold {k} needs at least {k} images, but --synth-count is {}",
                job.synth_count
            )));
        }
    }
    // The phantoms' size, here rather than when the data are generated: by then the run's
    // options are recorded, and a run refused so late could not be retried under its name.
    if job.data.is_none() {
        xray_data::synth::PhantomConfig::with_size(job.synth_size)
            .validate()
            .map_err(|e| Error::Invalid(format!("--synth-size {}: {e}", job.synth_size)))?;
    }
    Ok(())
}

/// A synthetic data set found in the run folder (an earlier run's, reused so that a resumed
/// run sees the same data) must be the one this job would generate: as many images, of the
/// same side. `compare` reruns under the same name, which `train_job.json` does not guard,
/// once silently evaluated on the earlier run's images whatever `--synth-count` said.
fn check_reused_synthetic(ds: &Dataset, job: &TrainJob) -> Result<()> {
    let size = match ds.samples.first() {
        Some(s) => Some(
            image::image_dimensions(&s.image)
                .map_err(|e| Error::io(&s.image, std::io::Error::other(e)))?,
        ),
        None => None,
    };
    let want = (job.synth_size, job.synth_size);
    if ds.len() == job.synth_count && size.is_none_or(|s| s == want) {
        return Ok(());
    }
    Err(Error::Invalid(format!(
        "{} holds an earlier run's synthetic data set ({} image(s){}), not the {} image(s) of \
         {}x{} this call asks for (--synth-count, --synth-size): use another --name, or \
         remove the folder to generate it again",
        ds.root.display(),
        ds.len(),
        size.map_or(String::new(), |(w, h)| format!(" of {w}x{h}")),
        job.synth_count,
        job.synth_size,
        job.synth_size
    )))
}

/// Opens the job's dataset, generating the synthetic one first when no folder is given (and
/// reusing it when it is already there, so a resumed run sees the same data; it must then
/// hold as many images of the same side as the job asks for).
///
/// # Errors
/// Dataset errors (named files), generation errors, a reused synthetic data set of another
/// count or size.
///
/// # Examples
/// ```
/// use xray_seg::train::{open_dataset, TrainJob};
/// let run = std::env::temp_dir().join(format!("xray-seg-doc-open-{}", std::process::id()));
/// let job = TrainJob { run_dir: run.clone(), synth_count: 6, synth_size: 32, ..TrainJob::default() };
/// let ds = open_dataset(&job)?; // no `data`: generated into <run>/data
/// assert_eq!((ds.len(), ds.root.clone()), (6, run.join("data")));
/// assert!(ds.has_masks());
/// // Opened again it is reused, and must then be the data set the job asks for.
/// assert_eq!(open_dataset(&job)?.samples, ds.samples);
/// let e = open_dataset(&TrainJob { synth_count: 8, ..job }).unwrap_err();
/// assert!(e.to_string().contains("earlier run's synthetic data set"), "{e}");
/// # std::fs::remove_dir_all(&run).ok();
/// # Ok::<(), xray_seg::Error>(())
/// ```
pub fn open_dataset(job: &TrainJob) -> Result<Arc<Dataset>> {
    let mut reused = false;
    let root = match &job.data {
        Some(d) => d.clone(),
        None => {
            let dir = job.run_dir.join("data");
            if dir.join("categories.csv").exists() {
                reused = true;
            } else {
                xray_data::synth::generate_dataset(
                    &dir,
                    job.synth_count,
                    job.synth_size,
                    job.seed,
                )?;
            }
            dir
        }
    };
    let ds = Dataset::open(&root, &job.dataset_options())?;
    if reused {
        check_reused_synthetic(&ds, job)?;
    }
    if ds.is_empty() {
        return Err(Error::Invalid(format!(
            "{}: the dataset is empty",
            root.display()
        )));
    }
    if !ds.has_masks() {
        return Err(Error::Invalid(format!(
            "{}: training needs masks/ beside images/",
            root.display()
        )));
    }
    Ok(Arc::new(ds))
}

/// The splits a job trains on, with the directory of each: one XNet split in the run
/// directory, or k folds in `<run>/fold-<k>/` (each fold's training part gives up a
/// validation share for early stopping). Drawn from `job.seed` only.
///
/// # Errors
/// Splitting errors (too few images, bad k).
///
/// # Examples
/// ```
/// use std::path::Path;
/// use xray_seg::train::{plan_splits, TrainJob};
/// let categories: Vec<String> = ["hand", "knee"].iter().cycle().take(20).map(|c| c.to_string()).collect();
/// let job = TrainJob { run_dir: "runs/hip".into(), ..TrainJob::default() };
/// let plan = plan_splits(&job, &categories)?;
/// assert_eq!(plan.len(), 1);
/// assert_eq!(plan[0].1, Path::new("runs/hip"));
/// let s = &plan[0].0;
/// let mut all: Vec<usize> = s.train.iter().chain(&s.val).chain(&s.test).copied().collect();
/// all.sort();
/// assert_eq!(all, (0..20).collect::<Vec<_>>()); // every image in exactly one part
/// assert_eq!(plan_splits(&job, &categories)?, plan); // drawn from the seed alone
/// // Three folds: each image is tested in exactly one of them.
/// let folds = plan_splits(&TrainJob { kfold: Some(3), ..job.clone() }, &categories)?;
/// assert_eq!(folds[2].1, Path::new("runs/hip/fold-2"));
/// let mut tested: Vec<usize> = folds.iter().flat_map(|(s, _)| s.test.clone()).collect();
/// tested.sort();
/// assert_eq!(tested, (0..20).collect::<Vec<_>>());
/// assert!(plan_splits(&TrainJob { kfold: Some(30), ..job }, &categories).is_err());
/// # Ok::<(), xray_seg::Error>(())
/// ```
pub fn plan_splits(job: &TrainJob, categories: &[String]) -> Result<Vec<(Split, PathBuf)>> {
    let mut rng = StdRng::seed_from_u64(job.seed);
    let Some(k) = job.kfold else {
        let split = xnet_split(categories, &SplitConfig::default(), &mut rng)?;
        return Ok(vec![(split, job.run_dir.clone())]);
    };
    let folds = stratified_kfold(categories, k, &mut rng)?;
    let mut plan = Vec::with_capacity(folds.len());
    for (f, fold) in folds.iter().enumerate() {
        let sub_categories: Vec<String> =
            fold.train.iter().map(|&i| categories[i].clone()).collect();
        let cfg = SplitConfig {
            train: 0.85,
            val: 0.15,
            test: 0.0,
        };
        let inner = xnet_split(&sub_categories, &cfg, &mut rng)?;
        let split = Split {
            train: inner
                .train
                .iter()
                .chain(&inner.test)
                .map(|&j| fold.train[j])
                .collect(),
            val: inner.val.iter().map(|&j| fold.train[j]).collect(),
            test: fold.test.clone(),
        };
        plan.push((split, job.run_dir.join(format!("fold-{f}"))));
    }
    Ok(plan)
}

/// Reads every image and mask of `splits` as training will (decoding, finite pixels, known
/// labels, mask size; the first error in sample order, naming the file), and checks that
/// each split's masks label at least one pixel where it is needed: training, validation
/// (early stopping) and the scored split (the test split, or validation without one).
/// Run before the first epoch, so bad data is not found after training.
///
/// # Errors
/// The loaders' errors naming the file; [`xray_data::DataError::Dataset`] naming the masks
/// of a split whose every pixel is ignored.
///
/// # Examples
/// ```
/// use image::{GrayImage, Luma};
/// use xray_data::dataset::{Dataset, DatasetOptions, Split};
/// use xray_data::DataError;
/// use xray_seg::{train::check_splits, Error};
/// let dir = std::env::temp_dir().join(format!("xray-seg-doc-check-splits-{}", std::process::id()));
/// xray_data::synth::generate_dataset(&dir, 3, 32, 1)?;
/// let ds = Dataset::open(&dir, &DatasetOptions::default())?;
/// let split = Split { train: vec![0], val: vec![1], test: vec![2] };
/// check_splits(&ds, [&split])?;
/// // The test image's mask made all "ignore" (255): nothing left to score.
/// let mask = ds.samples[2].mask.clone().expect("synthetic data has masks");
/// GrayImage::from_pixel(32, 32, Luma([255])).save(&mask).expect("mask written");
/// match check_splits(&ds, [&split]) {
///     Err(Error::Data(DataError::Dataset { message, .. })) => {
///         assert!(message.contains("test image(s) label no pixel"), "{message}")
///     }
///     other => panic!("expected a dataset error, got {other:?}"),
/// }
/// # std::fs::remove_dir_all(&dir).ok();
/// # Ok::<(), xray_seg::Error>(())
/// ```
pub fn check_splits<'a>(ds: &Dataset, splits: impl IntoIterator<Item = &'a Split>) -> Result<()> {
    use rayon::prelude::*;
    let splits: Vec<&Split> = splits.into_iter().collect();
    let mut used: Vec<usize> = splits
        .iter()
        .flat_map(|s| s.train.iter().chain(&s.val).chain(&s.test).copied())
        .collect();
    used.sort_unstable();
    used.dedup();
    let classes = usize::from(ds.options.num_classes);
    let counts: Vec<Result<(usize, u64)>> = used
        .par_iter()
        .map(|&i| {
            let (_, mask) = ds.load(i)?;
            let labelled = mask.map_or(0, |m| {
                m.as_raw()
                    .iter()
                    .filter(|&&v| usize::from(v) < classes)
                    .count() as u64
            });
            Ok((i, labelled))
        })
        .collect();
    let mut labelled = std::collections::HashMap::with_capacity(counts.len());
    for c in counts {
        let (i, n) = c?;
        labelled.insert(i, n);
    }
    for split in splits {
        // Without a test split the validation split is scored, and checked as such.
        for (name, indices) in [
            ("training", &split.train),
            ("validation", &split.val),
            ("test", &split.test),
        ] {
            if indices.is_empty() || indices.iter().any(|i| labelled.get(i) != Some(&0)) {
                continue;
            }
            let masks: Vec<String> = indices
                .iter()
                .take(4)
                .filter_map(|&i| ds.samples.get(i)?.mask.as_ref())
                .map(|p| p.display().to_string())
                .collect();
            let more = indices.len().saturating_sub(masks.len());
            return Err(xray_data::DataError::Dataset {
                path: ds.root.join("masks"),
                message: format!(
                    "the masks of the {} {name} image(s) label no pixel (all {}, ignore): \
                     nothing to {} ({}{})",
                    indices.len(),
                    xray_data::IGNORE_LABEL,
                    if name == "training" {
                        "learn from"
                    } else {
                        "score"
                    },
                    masks.join(", "),
                    if more > 0 {
                        format!(" and {more} more")
                    } else {
                        String::new()
                    }
                ),
            }
            .into());
        }
    }
    Ok(())
}

/// Runs the job: one split, or k folds (`<run>/fold-<k>/` each plus `kfold.json`).
///
/// Before the first epoch it checks the run directory (a new run needs a missing or empty
/// one; `resume` needs a run there, started with the same [`RunOptions`], recorded in
/// `<run>/train_job.json`) and reads every image and mask of every split
/// ([`check_splits`]).
///
/// # Errors
/// Invalid options, a run directory in use (or nothing to resume, or a resume with other
/// options), data, model or file-system errors, a non-finite loss.
///
/// # Examples
/// A tiny run on six synthetic 32×32 images, one epoch:
/// ```
/// use xnet_model::infer::FlipAverage;
/// use xray_seg::train::{run, TrainJob, RUN_OPTIONS_FILE};
/// let dir = std::env::temp_dir().join(format!("xray-seg-doc-train-run-{}", std::process::id()));
/// let job = TrainJob {
///     run_dir: dir.join("run"),
///     size: 32,
///     width: 2,
///     epochs: 1,
///     batch: 4,
///     patience: 1,
///     synth_count: 6,
///     synth_size: 32,
///     augment: false,
///     flip_average: FlipAverage::Off,
///     calibrate: false,
///     progress: false,
///     overlays: 0,
///     ..TrainJob::default()
/// };
/// let (outcomes, kfold) = run(&job)?;
/// assert!(kfold.is_none()); // one split, no folds
/// assert_eq!(outcomes[0].split_sizes.iter().sum::<usize>(), 6);
/// for file in ["model.safetensors", "report.json", "log.jsonl", RUN_OPTIONS_FILE] {
///     assert!(job.run_dir.join(file).is_file(), "{file}");
/// }
/// // The folder now holds a run: a second call must resume it or pick another name.
/// let e = run(&job).unwrap_err();
/// assert!(e.to_string().contains("pass --resume"), "{e}");
/// # std::fs::remove_dir_all(&dir).ok();
/// # Ok::<(), xray_seg::Error>(())
/// ```
pub fn run(job: &TrainJob) -> Result<(Vec<TrainOutcome>, Option<KFoldSummary>)> {
    check_job(job)?;
    let options = RunOptions::of(job);
    check_run_dir(job, &options)?;
    // Synthetic data is generated into the run folder: record the options it is made with
    // first, so that a run that fails later (in the split checks) can be resumed with the
    // same options, and not rerun with others over data made for these. A folder of the
    // user's is only checked, so nothing is written until it passes.
    // A resume records its options (new epochs, say) only once every split's (every
    // fold's) `last/` has been taken up: a resume that fails (a damaged `last/`, of the
    // third fold say) must leave the record as it was, and train nothing under the new one.
    let synthetic = job.data.is_none();
    if synthetic && !job.resume {
        write_run_options(&job.run_dir, &options)?;
    }
    let ds = open_dataset(job)?;
    let plan = plan_splits(job, &ds.categories())?;
    check_splits(&ds, plan.iter().map(|(split, _)| split))?;
    if job.resume {
        check_resumable(job, plan.iter().map(|(_, dir)| dir.as_path()))?;
    }
    if !synthetic || job.resume {
        write_run_options(&job.run_dir, &options)?;
    }
    let mut outcomes = Vec::with_capacity(plan.len());
    for (split, dir) in &plan {
        outcomes.push(train_checked_split(job, &ds, split, dir)?);
    }
    if job.kfold.is_none() {
        return Ok((outcomes, None));
    }
    let summary = kfold_summary(&outcomes)?;
    checkpoint::write_json_atomic(&job.run_dir.join("kfold.json"), &summary)?;
    Ok((outcomes, Some(summary)))
}

fn key_metrics(r: &Report) -> [f64; 5] {
    [
        r.accuracy.unwrap_or(f64::NAN),
        r.f1.weighted,
        r.f1.macro_avg,
        r.auc.weighted.unwrap_or(f64::NAN),
        r.ece,
    ]
}

fn kfold_summary(outcomes: &[TrainOutcome]) -> Result<KFoldSummary> {
    let per_fold: Vec<[f64; 5]> = outcomes
        .iter()
        .map(|o| key_metrics(&o.evaluation.report))
        .collect();
    let n = per_fold.len() as f64;
    let mut mean = [0.0; 5];
    let mut std = [0.0; 5];
    for j in 0..5 {
        mean[j] = per_fold.iter().map(|r| r[j]).sum::<f64>() / n;
        std[j] = if n > 1.0 {
            (per_fold
                .iter()
                .map(|r| (r[j] - mean[j]).powi(2))
                .sum::<f64>()
                / (n - 1.0))
                .sqrt()
        } else {
            0.0
        };
    }
    Ok(KFoldSummary {
        folds: outcomes.len(),
        columns: ["accuracy", "f1_weighted", "f1_macro", "auc_weighted", "ece"],
        per_fold,
        mean,
        std,
        temperatures: outcomes
            .iter()
            .map(|o| {
                o.evaluation
                    .report
                    .temperature
                    .as_ref()
                    .map(|t| t.temperature)
            })
            .collect(),
        per_category: pool_category_scores(
            outcomes
                .iter()
                .map(|o| o.evaluation.per_category.as_slice()),
        )?,
    })
}

/// What inference needs to use a checkpoint's weights as they were trained: the
/// preprocessing record and the flip averaging (the run's own `config.json` adds the fitted
/// temperature). Written into `best/` and `last/` as well, so that `--weights RUN/best`
/// shapes its inputs like the run did instead of falling back to XNet's 200 × 200.
fn inference_metadata(
    preprocess: &Preprocess,
    flip_average: FlipAverage,
) -> serde_json::Map<String, serde_json::Value> {
    let mut m = serde_json::Map::new();
    m.insert("preprocess".into(), serde_json::json!(preprocess));
    m.insert(FLIP_AVERAGE_KEY.into(), serde_json::json!(flip_average));
    m
}

/// The job's network, its weights drawn from `--seed` (candle's CPU generator has no seed,
/// so the same seed gives the same initial weights only this way).
fn build_seeded(job: &TrainJob, config: &ModelConfig) -> Result<(VarMap, Box<dyn Segmenter>)> {
    let varmap = VarMap::new();
    let model = config.build(seeded_var_builder(
        &varmap,
        job.seed,
        DType::F32,
        &job.device,
    ))?;
    Ok((varmap, model))
}

/// The trainer of one split (or fold), saving its checkpoints into `dir`.
fn split_trainer<'a>(
    job: &TrainJob,
    model: &'a dyn Segmenter,
    varmap: &'a VarMap,
    dir: &Path,
    preprocess: &Preprocess,
) -> Result<Trainer<'a>> {
    let train_cfg = TrainConfig {
        epochs: job.epochs,
        optimizer: OptimizerConfig::adam(job.lr),
        schedule: LrSchedule::Cosine {
            t_max: job.epochs,
            eta_min: job.lr * 0.05,
        },
        early_stopping_patience: Some(job.patience.max(1)),
        progress: job.progress,
        loss: loss_config(job),
        ..TrainConfig::default()
    };
    Ok(Trainer::new(model, varmap, train_cfg, &job.device)?
        .with_checkpoint_dir(dir)
        .with_checkpoint_metadata(inference_metadata(preprocess, job.flip_average)))
}

/// Loads `dir/last` into `trainer` for a resume, refusing one that would restart over a
/// trained model or that has trained more epochs than `--epochs` already.
fn take_up_run(trainer: &mut Trainer<'_>, job: &TrainJob, dir: &Path) -> Result<()> {
    match trainer.resume()? {
        None => refuse_restart_over_results(dir),
        Some(next) if next > job.epochs => Err(Error::Invalid(format!(
            "{} has trained {next} epochs already, more than --epochs {}: nothing was \
             trained and its options stay recorded as they were; resume with --epochs above \
             {next} to train on",
            dir.display(),
            job.epochs
        ))),
        Some(_) => Ok(()),
    }
}

/// Whether every split's (every fold's) run in `dirs` can be resumed, checked before any of
/// them trains: each one's `last/` is loaded as its resume will load it, then dropped. A
/// resume that fails then fails before it has trained or recorded anything, also when a
/// later fold's `last/` is the damaged one.
///
/// # Errors
/// The first split's that [`take_up_run`] refuses, naming its folder.
fn check_resumable<'a>(job: &TrainJob, dirs: impl IntoIterator<Item = &'a Path>) -> Result<()> {
    let config = model_config(job.arch, job.width, job.upsampling);
    let preprocess = Preprocess::square(job.size);
    for dir in dirs {
        let (varmap, model) = build_seeded(job, &config)?;
        let mut trainer = split_trainer(job, model.as_ref(), &varmap, dir, &preprocess)?;
        take_up_run(&mut trainer, job, dir)?;
    }
    Ok(())
}

/// Trains on `split.train`, stops early on `split.val`, evaluates the best weights on
/// `split.test` and writes everything into `dir`. Every image of the split is read and
/// checked first ([`check_splits`]).
///
/// # Errors
/// As [`run`]; also an empty train or validation subset.
///
/// # Examples
/// ```
/// use xnet_model::infer::FlipAverage;
/// use xray_data::dataset::Split;
/// use xray_seg::prepare::Preprocess;
/// use xray_seg::train::{open_dataset, plan_splits, train_split, TrainJob};
/// let dir = std::env::temp_dir().join(format!("xray-seg-doc-train-split-{}", std::process::id()));
/// let job = TrainJob {
///     run_dir: dir.clone(),
///     size: 32,
///     width: 2,
///     epochs: 1,
///     batch: 4,
///     synth_count: 6,
///     synth_size: 32,
///     augment: false,
///     flip_average: FlipAverage::Off,
///     calibrate: false,
///     progress: false,
///     overlays: 1,
///     ..TrainJob::default()
/// };
/// let ds = open_dataset(&job)?;
/// let (split, _) = plan_splits(&job, &ds.categories())?.remove(0);
/// let out = train_split(&job, &ds, &split, &dir.join("xnet"))?;
/// assert_eq!(out.split_sizes, [split.train.len(), split.val.len(), split.test.len()]);
/// assert_eq!(out.summary.epochs_run, 1);
/// assert_eq!(out.predictor.preprocess(), &Preprocess::square(32));
/// assert!(dir.join("xnet/model.safetensors").is_file() && dir.join("xnet/overlays").is_dir());
/// // Nothing to train on: refused before any folder is made.
/// let empty = Split { train: Vec::new(), ..split };
/// assert!(train_split(&job, &ds, &empty, &dir.join("empty")).is_err());
/// assert!(!dir.join("empty").exists());
/// # std::fs::remove_dir_all(&dir).ok();
/// # Ok::<(), xray_seg::Error>(())
/// ```
pub fn train_split(
    job: &TrainJob,
    ds: &Arc<Dataset>,
    split: &Split,
    dir: &Path,
) -> Result<TrainOutcome> {
    check_job(job)?;
    check_splits(ds, [split])?;
    train_checked_split(job, ds, split, dir)
}

/// [`train_split`] on a split [`check_splits`] has passed.
fn train_checked_split(
    job: &TrainJob,
    ds: &Arc<Dataset>,
    split: &Split,
    dir: &Path,
) -> Result<TrainOutcome> {
    if split.train.is_empty() {
        return Err(Error::Invalid(
            "the split left no training images; more data is needed".into(),
        ));
    }
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let config = model_config(job.arch, job.width, job.upsampling);
    config.validate()?;
    let preprocess = Preprocess::square(job.size);
    preprocess.validate(config.size_multiple())?;

    let (varmap, model) = build_seeded(job, &config)?;
    let parameters = xnet_model::models::count_trainable_parameters(&varmap);
    let augment = if job.augment {
        Some(Augment::from_config(&job.augment_config)?)
    } else {
        None
    };
    let batch_cfg = preprocess.batch_config(job.batch, job.seed);
    let mut train_src = DatasetSource::training(
        ds.clone(),
        split.train.clone(),
        batch_cfg.clone(),
        job.balance,
        augment,
    )?;
    // A very small subset (e.g. a k-fold fold of a tiny set) may leave no validation image:
    // the trainer then monitors the training loss for early stopping and the best epoch.
    let mut val_src = if split.val.is_empty() {
        None
    } else {
        Some(DatasetSource::plain(
            ds.clone(),
            split.val.clone(),
            batch_cfg,
        )?)
    };

    let started = Instant::now();
    let summary = {
        let mut trainer = split_trainer(job, model.as_ref(), &varmap, dir, &preprocess)?;
        if job.resume {
            take_up_run(&mut trainer, job, dir)?;
        }
        trainer.fit(
            &mut train_src,
            val_src.as_mut().map(|v| v as &mut dyn BatchSource),
        )?
    };
    let train_seconds = started.elapsed().as_secs_f64();

    // The best epoch's weights become the run's model, with what inference needs to know.
    let best = dir.join("best");
    if best.join(checkpoint::WEIGHTS_FILE).exists() {
        checkpoint::load_weights_into(&varmap, &best.join(checkpoint::WEIGHTS_FILE), &job.device)?;
    }
    let mut predictor = Predictor::new(
        model,
        config.clone(),
        varmap.clone(),
        preprocess,
        &job.device,
    )?;
    predictor.set_flip_average(job.flip_average);
    // Calibrated on the validation split (the images that chose the best epoch), never on
    // the test split that the report scores.
    // A failed fit (say, validation masks that are all "ignore") must not throw away the
    // training: the run goes on uncalibrated, and says so.
    let temperature = if job.calibrate && !split.val.is_empty() {
        match fit_temperature_on(&predictor, ds, &split.val) {
            Ok(fit) => {
                predictor.set_temperature(fit.temperature)?;
                Some(fit)
            }
            Err(e) => {
                eprintln!(
                    "warning: no softmax temperature fitted, the run stays uncalibrated: {e}"
                );
                None
            }
        }
    } else {
        None
    };
    let mut metadata = serde_json::json!({
        "preprocess": preprocess,
        "seed": job.seed,
        "lr": job.lr,
        "l2": job.l2,
        "loss": job.loss,
        (FLIP_AVERAGE_KEY): job.flip_average,
        "augment": job.augment.then_some(&job.augment_config),
        "best_epoch": summary.best_epoch,
        "best_val_loss": summary.best_loss,
        "epochs_run": summary.epochs_run,
        "dataset": ds.root.display().to_string(),
    });
    if let (Some(fit), Some(metadata)) = (&temperature, metadata.as_object_mut()) {
        record_temperature(metadata, fit);
    }
    checkpoint::save(dir, &varmap, &config, metadata)?;

    let test: &[usize] = if split.test.is_empty() {
        &split.val
    } else {
        &split.test
    };
    let mut evaluation = evaluate_samples(&predictor, ds, test, Some(0.5))?;
    evaluation.report.temperature = temperature;
    write_evaluation(&evaluation, dir)?;
    let log = dir.join("log.jsonl");
    if log.exists() {
        let curves = xray_metrics::TrainingLog::load(&log)?;
        xray_metrics::plot_training_curves(&curves, dir.join("training"))?;
    }
    write_overlays(
        &predictor,
        ds,
        &test[..test.len().min(job.overlays)],
        &dir.join("overlays"),
    )?;
    Ok(TrainOutcome {
        run_dir: dir.to_path_buf(),
        evaluation,
        summary,
        train_seconds,
        parameters,
        split_sizes: [split.train.len(), split.val.len(), split.test.len()],
        predictor,
    })
}

/// Segments the given samples into `dir` (labels, field, overlay per sample).
///
/// # Errors
/// Loading, network or file-system errors.
///
/// # Examples
/// ```
/// use candle_core::Device;
/// use xray_data::dataset::{Dataset, DatasetOptions};
/// use xray_seg::{predict::Predictor, train::write_overlays};
/// let dir = std::env::temp_dir().join(format!("xray-seg-doc-overlays-{}", std::process::id()));
/// xray_data::synth::generate_dataset(&dir.join("data"), 3, 48, 1)?;
/// let ds = Dataset::open(&dir.join("data"), &DatasetOptions::default())?;
/// let predictor = Predictor::load(&xray_seg::shipped_weights_dir(), &Device::Cpu)?;
/// write_overlays(&predictor, &ds, &[0, 2], &dir.join("overlays"))?;
/// // Labels, field mask, field JSON and overlay of each sample, named by its stem.
/// for stem in ["synth_00000", "synth_00002"] {
///     for suffix in ["labels.png", "field.png", "field.json", "overlay.png"] {
///         assert!(dir.join(format!("overlays/{stem}.{suffix}")).is_file());
///     }
/// }
/// assert!(!dir.join("overlays/synth_00001.overlay.png").exists());
/// # std::fs::remove_dir_all(&dir).ok();
/// # Ok::<(), xray_seg::Error>(())
/// ```
pub fn write_overlays(
    predictor: &Predictor,
    ds: &Dataset,
    indices: &[usize],
    dir: &Path,
) -> Result<()> {
    let opts = SegmentOptions::default();
    for &i in indices {
        let (image, _) = ds.load(i)?;
        let s = &ds.samples[i];
        segment_image(
            predictor,
            &image,
            &s.stem,
            &s.image.display().to_string(),
            dir,
            &opts,
        )?;
    }
    Ok(())
}
