//! `train`: a dataset (synthetic when none is given) → split the XNet way → train with
//! augmentation and category balancing → checkpoint, report on the test split, plots and
//! overlays in one run directory. Optionally k-fold cross-validation.
//!
//! Where each part lives: the job, its outcome and [`run`] here; the run folder's record and
//! rules in `run_dir` ([`RunOptions`], [`check_run_name`]); the checks of a job's options in
//! `checks`; the dataset, its splits and their checks in `data` ([`open_dataset`],
//! [`plan_splits`], [`check_splits`]); training one split in `split` ([`train_split`],
//! [`write_overlays`]).

use std::path::PathBuf;

use candle_core::Device;
use serde::{Deserialize, Serialize};
use xnet_model::checkpoint;
use xnet_model::infer::FlipAverage;
use xnet_model::loss::{LossConfig, LossKind};
use xnet_model::models::{
    BatchNormSettings, DeepLabConfig, SegNetConfig, UNetConfig, Upsampling, XNetConfig,
};
use xnet_model::train::TrainSummary;
use xnet_model::ModelConfig;
use xray_data::augment::PipelineConfig as AugmentConfig;
use xray_data::dataset::DatasetOptions;
use xray_data::io::LoadOptions;
use xray_metrics::Report;

use crate::evaluate::{pool_category_scores, CategoryScores, Evaluation};
use crate::predict::Predictor;
use crate::{Error, Result};

mod checks;
mod data;
mod run_dir;
mod split;

pub(crate) use checks::check_job;
pub use data::{check_splits, open_dataset, plan_splits};
pub(crate) use run_dir::{check_plain_name, train_run_mark};
use run_dir::{check_run_dir, write_run_options};
pub use run_dir::{check_run_name, RunOptions, TrainSettings, RUN_OPTIONS_FILE};
use split::{check_resumable, train_checked_split};
pub use split::{train_split, write_overlays};

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
/// XNet and U-Net double the width per level; SegNet is SegNet-Basic's four levels with
/// `width` channels at every level and 3×3 kernels instead of its 7×7 (at width 64 that is
/// 260,355 parameters, not [`SegNetConfig::basic`]'s 1,409,795); DeepLab-lite's encoder is
/// `width`·(1, 2, 4, 8) with a `4·width`-channel ASPP.
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
/// assert_eq!(model_config(Arch::SegNet, 64, None).parameter_count()?, 260_355);
/// assert_eq!(model_config(Arch::XNet, 8, None).parameter_count()?, 184_683);
/// # Ok::<(), xnet_model::ModelError>(())
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
    /// Sample standard deviations of the columns (divisor k − 1).
    pub std: [f64; 5],
    /// Half-widths of the columns' 95 % confidence intervals for the mean, Student's t with
    /// k − 1 degrees of freedom times `std / √k` ([`fold_statistics`]). With 2 or 3 folds it is
    /// 9 or 2.5 times the standard deviation: a "mean ± std" of so few folds read as far
    /// tighter than it is. A rough interval: the folds share training images, so their scores
    /// are not independent, and it is, if anything, too narrow.
    pub ci95: [f64; 5],
    /// Per fold: the softmax temperature fitted on its validation split (`None` where the
    /// fold was not calibrated); the folds' ECE above is at these temperatures.
    pub temperatures: Vec<Option<f64>>,
    /// Arg-max scores per category, pooled over the folds' test images (each image is
    /// tested once, so this is the cross-validated score of each category); empty without
    /// categories.
    pub per_category: Vec<CategoryScores>,
}

/// The training objective of `job`.
fn loss_config(job: &TrainJob) -> LossConfig {
    LossConfig {
        kind: job.loss.clone(),
        l2: job.l2,
        ..LossConfig::default()
    }
}

/// Runs the job: one split, or k folds (`<run>/fold-<k>/` each plus `kfold.json`).
///
/// Before the first epoch it checks the run directory (a new run needs a missing or empty
/// one; `resume` needs a run there, started with the same [`RunOptions`], recorded in
/// `<run>/train_job.json`) and reads every image and mask of every split
/// ([`check_splits`]). A resume that passes its checks removes the temporary files a stopped
/// process's atomic writes left in the run's folder and in each split's (fold's)
/// ([`checkpoint::remove_stale_temporaries`]).
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
        // A process stopped inside an atomic write (a fold's final model or config, its
        // `train_config.json`, the run's `kfold.json`) left the temporary file it wrote, which
        // nothing else removes; this resume writes each of those files again.
        let dirs = plan.iter().map(|(_, dir)| dir.as_path());
        for dir in std::iter::once(job.run_dir.as_path()).chain(dirs) {
            checkpoint::remove_stale_temporaries(dir);
        }
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

/// The two-sided 95 % quantile of Student's t with `df` degrees of freedom (`df` ≥ 1):
/// tabulated to 30, then the Cornish-Fisher expansion about the normal's 1.96 (within 1e-4
/// of the exact value there).
fn student_t_975(df: usize) -> f64 {
    const TABLE: [f64; 30] = [
        12.7062, 4.3027, 3.1824, 2.7764, 2.5706, 2.4469, 2.3646, 2.3060, 2.2622, 2.2281, 2.2010,
        2.1788, 2.1604, 2.1448, 2.1314, 2.1199, 2.1098, 2.1009, 2.0930, 2.0860, 2.0796, 2.0739,
        2.0687, 2.0639, 2.0595, 2.0555, 2.0518, 2.0484, 2.0452, 2.0423,
    ];
    match df {
        0 => f64::NAN,
        1..=30 => TABLE[df - 1],
        _ => {
            let (z, d) = (1.959_964_f64, df as f64);
            z + (z.powi(3) + z) / (4.0 * d)
                + (5.0 * z.powi(5) + 16.0 * z.powi(3) + 3.0 * z) / (96.0 * d * d)
        }
    }
}

/// Mean, sample standard deviation (divisor n − 1) and the half-width of the 95 %
/// confidence interval for the mean (Student's t with n − 1 degrees of freedom, times
/// std / √n) of the folds' values of one metric, as [`KFoldSummary`] reports them. One value
/// has no spread to estimate: its std and half-width are NaN (not 0, which read as "no
/// uncertainty"); a NaN value (a fold without the metric) makes all three NaN.
///
/// # Examples
/// ```
/// use xray_seg::train::fold_statistics;
/// let (mean, std, ci95) = fold_statistics(&[0.90, 0.92, 0.94]);
/// assert!((mean - 0.92).abs() < 1e-12);
/// assert!((std - 0.02).abs() < 1e-12); // sample std: √(0.0008 / 2), not √(0.0008 / 3)
/// assert!((ci95 - 4.3027 * 0.02 / 3f64.sqrt()).abs() < 1e-12); // t(0.975, 2 df) = 4.3027
/// // Two folds: the interval is 12.7 std / √2, about nine times the std.
/// let (_, std, ci95) = fold_statistics(&[0.90, 0.94]);
/// assert!((ci95 / std - 12.7062 / 2f64.sqrt()).abs() < 1e-9);
/// assert!(fold_statistics(&[0.9]).1.is_nan());
/// assert!(fold_statistics(&[0.9, f64::NAN]).0.is_nan());
/// ```
pub fn fold_statistics(values: &[f64]) -> (f64, f64, f64) {
    let n = values.len();
    if n == 0 {
        return (f64::NAN, f64::NAN, f64::NAN);
    }
    let mean = values.iter().sum::<f64>() / n as f64;
    if n == 1 {
        return (mean, f64::NAN, f64::NAN);
    }
    let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
    let std = var.sqrt();
    (mean, std, student_t_975(n - 1) * std / (n as f64).sqrt())
}

fn kfold_summary(outcomes: &[TrainOutcome]) -> Result<KFoldSummary> {
    let per_fold: Vec<[f64; 5]> = outcomes
        .iter()
        .map(|o| key_metrics(&o.evaluation.report))
        .collect();
    let mut mean = [0.0; 5];
    let mut std = [0.0; 5];
    let mut ci95 = [0.0; 5];
    for j in 0..5 {
        let column: Vec<f64> = per_fold.iter().map(|r| r[j]).collect();
        (mean[j], std[j], ci95[j]) = fold_statistics(&column);
    }
    Ok(KFoldSummary {
        folds: outcomes.len(),
        columns: ["accuracy", "f1_weighted", "f1_macro", "auc_weighted", "ece"],
        per_fold,
        mean,
        std,
        ci95,
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
