//! `compare`: every architecture (and up-sampling variant) and the classical no-network
//! baseline under the same data, budget and seed, in one table (and, when the data has
//! categories, a second one of weighted F1 per category).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use serde::Serialize;
use xnet_model::checkpoint::write_bytes_atomic;
use xnet_model::models::Upsampling;
use xray_data::dataset::{xnet_split, Dataset, SplitConfig};
use xray_metrics::ConfusionMatrix;
use xray_postproc::{baseline_segment, detect_collimator, BaselineConfig, CollimatorConfig, Plane};

use crate::evaluate::{per_category_scores, table_header, CategoryScores, LabelScores};
use crate::predict::Predictor;
use crate::train::{check_job, open_dataset, train_split, Arch, TrainJob};
use crate::{Error, Result};

/// One contestant: a network family with an up-sampling kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Variant {
    /// Network family.
    pub arch: Arch,
    /// Up-sampling used by its decoder.
    pub upsampling: Upsampling,
}

impl Variant {
    /// A short name, e.g. `xnet/nearest`.
    ///
    /// # Examples
    /// ```
    /// use xnet_model::models::Upsampling;
    /// use xray_seg::{compare::Variant, train::Arch};
    /// let v = Variant { arch: Arch::UNet, upsampling: Upsampling::TransposedConv };
    /// assert_eq!(v.name(), "unet/transposed_conv");
    /// ```
    pub fn name(&self) -> String {
        format!("{}/{}", self.arch, self.upsampling)
    }
}

/// The default line-up: each family with its own up-sampling, plus the paper's "lego"
/// alternatives where the decoder allows them.
///
/// # Examples
/// ```
/// use xnet_model::models::Upsampling;
/// use xray_seg::{compare::default_variants, train::Arch};
/// let variants = default_variants();
/// assert_eq!(variants.len(), 7);
/// // Every family takes part, and no contestant twice.
/// for arch in [Arch::XNet, Arch::UNet, Arch::SegNet, Arch::DeepLab] {
///     assert!(variants.iter().any(|v| v.arch == arch));
/// }
/// let mut names: Vec<String> = variants.iter().map(|v| v.name()).collect();
/// names.sort();
/// names.dedup();
/// assert_eq!(names.len(), 7);
/// assert!(names.contains(&"segnet/index_unpool".to_string()));
/// assert!(variants.iter().all(|v| v.arch == Arch::SegNet || v.upsampling != Upsampling::IndexUnpool));
/// ```
pub fn default_variants() -> Vec<Variant> {
    use Upsampling::*;
    [
        (Arch::SegNet, IndexUnpool),
        (Arch::SegNet, Nearest),
        (Arch::UNet, TransposedConv),
        (Arch::UNet, Bilinear),
        (Arch::XNet, Nearest),
        (Arch::XNet, TransposedConv),
        (Arch::DeepLab, Bilinear),
    ]
    .into_iter()
    .map(|(arch, upsampling)| Variant { arch, upsampling })
    .collect()
}

/// One row of the comparison table.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    /// Contestant.
    pub name: String,
    /// Trainable parameters (0 for the baseline).
    pub parameters: usize,
    /// Forward GFLOP per network input (0 for the baseline).
    pub gflop_per_image: f64,
    /// Training wall-clock seconds.
    pub train_seconds: f64,
    /// Inference images per second on the test images (whole pipeline: resize, network,
    /// resize back).
    pub images_per_second: f64,
    /// Weighted F1 on the test split.
    pub f1_weighted: f64,
    /// The 95 % percentile-bootstrap interval of `f1_weighted` over the scored images
    /// ([`f1_bootstrap_interval`]; the same resamples for every row); `None` with fewer than
    /// two images. A table of a few dozen test images gave its F1 to four decimals with
    /// nothing to say how far one image more or less moves it.
    pub f1_weighted_ci95: Option<[f64; 2]>,
    /// Weighted one-vs-rest AUC (`None` for the baseline: it has no probabilities).
    pub auc_weighted: Option<f64>,
    /// Expected calibration error (`None` for the baseline), at `temperature`.
    pub ece: Option<f64>,
    /// The softmax temperature fitted on the validation images, at which ECE and AUC were
    /// taken; `None` where none was fitted (the baseline, a split without validation images,
    /// or a fit that failed, which only a warning on the terminal said: that row's ECE was
    /// then at temperature 1 among rows at their fitted ones).
    pub temperature: Option<f64>,
    /// Epochs trained (compare sets the patience to the budget, so every network trains
    /// them all).
    pub epochs: usize,
    /// The epoch (counted from 0) whose weights were scored: the one of lowest validation
    /// loss (training loss without validation images), which may be well before the last;
    /// `None` for the baseline. The table used to show the epochs trained alone, and its
    /// settings said "no early stopping", as if every network were scored at its last epoch.
    pub best_epoch: Option<usize>,
    /// Weighted F1 of each category's test images (empty without categories).
    pub f1_by_category: BTreeMap<String, f64>,
}

fn f1_by_category(scores: &[CategoryScores]) -> BTreeMap<String, f64> {
    scores
        .iter()
        .map(|c| (c.category.clone(), c.scores.f1_weighted))
        .collect()
}

/// `v` rounded to `digits` significant digits (no decimals once its integer part has that
/// many); `0` for zero.
fn significant_digits(v: f64, digits: usize) -> String {
    if v == 0.0 || !v.is_finite() {
        return format!("{v}");
    }
    let magnitude = v.abs().log10().floor() as i64;
    let decimals = (digits as i64 - 1 - magnitude).max(0) as usize;
    format!("{v:.decimals$}")
}

/// The table as Markdown.
///
/// # Examples
/// ```
/// use std::collections::BTreeMap;
/// use xray_seg::compare::{to_markdown, Row};
/// let row = Row {
///     name: "classical baseline (Otsu + field)".into(),
///     parameters: 0,
///     gflop_per_image: 0.0,
///     train_seconds: 0.0,
///     images_per_second: 52.31,
///     f1_weighted: 0.81234,
///     f1_weighted_ci95: Some([0.75, 0.8612]),
///     auc_weighted: None,
///     ece: None,
///     temperature: None,
///     epochs: 0,
///     best_epoch: None,
///     f1_by_category: BTreeMap::from([("hand".to_string(), 0.9), ("knee".to_string(), f64::NAN)]),
/// };
/// let md = to_markdown(std::slice::from_ref(&row));
/// let line = "| classical baseline (Otsu + field) | 0 | 0 | 0 | n/a | 0.0 | 52.3 | 0.8123 | 0.7500–0.8612 | n/a | n/a | n/a |";
/// assert!(md.contains(line), "{md}");
/// // A network's row says which epoch's weights were scored.
/// let net = Row { name: "xnet/nearest".into(), epochs: 12, best_epoch: Some(7), ..row.clone() };
/// assert!(to_markdown(&[net.clone()]).contains("| xnet/nearest | 0 | 0 | 12 | 7 | "));
/// // GFLOP to four significant digits: a small network's 0.0086 read 0.009 and a tiny
/// // one's 0.0004 read 0.000, as if it cost nothing.
/// for (gflop, shown) in [(0.000_412_3, "0.0004123"), (0.008_602, "0.008602"), (0.428_605, "0.4286"), (66.432, "66.43")] {
///     let md = to_markdown(&[Row { gflop_per_image: gflop, ..net.clone() }]);
///     assert!(md.contains(&format!("| xnet/nearest | 0 | {shown} | 12 |")), "{md}");
/// }
/// // With categories, a second table: a category without scored pixels reads n/a.
/// assert!(md.contains("| model | hand | knee |"), "{md}");
/// assert!(md.contains("| classical baseline (Otsu + field) | 0.9000 | n/a |"), "{md}");
/// // So does a weighted F1 without any scored pixel in the main table.
/// let empty = Row { name: "empty".into(), f1_weighted: f64::NAN, f1_weighted_ci95: None, ..row.clone() };
/// assert!(to_markdown(&[empty]).contains("| 52.3 | n/a | n/a | n/a | n/a | n/a |"));
/// // The temperature each network's ECE was taken at.
/// let fitted = Row { name: "unet".into(), ece: Some(0.02), temperature: Some(0.7163), ..row };
/// assert!(to_markdown(&[fitted]).contains("| n/a | 0.0200 | 0.716 |"));
/// ```
pub fn to_markdown(rows: &[Row]) -> String {
    let opt = |v: Option<f64>| v.map_or("n/a".to_string(), |v| format!("{v:.4}"));
    let mut s = String::from(
        "| model | params | GFLOP/img | epochs | best epoch | train s | infer img/s | F1 (weighted) | F1 95 % CI | AUC (weighted) | ECE | T |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for r in rows {
        s += &format!(
            // Tenths of a second: a small comparison trains each network in a second or two,
            // which whole seconds showed as 0, 1 or 2.
            "| {} | {} | {} | {} | {} | {:.1} | {:.1} | {} | {} | {} | {} | {} |\n",
            r.name,
            r.parameters,
            significant_digits(r.gflop_per_image, 4),
            r.epochs,
            r.best_epoch.map_or("n/a".to_string(), |e| e.to_string()),
            r.train_seconds,
            r.images_per_second,
            // NaN without a scored pixel, shown as the per-category table shows it.
            opt(Some(r.f1_weighted).filter(|f| f.is_finite())),
            r.f1_weighted_ci95
                .map_or("n/a".to_string(), |[lo, hi]| format!("{lo:.4}–{hi:.4}")),
            opt(r.auc_weighted),
            opt(r.ece),
            r.temperature
                .map_or("n/a".to_string(), |t| format!("{t:.3}")),
        );
    }
    let categories: BTreeSet<&String> = rows.iter().flat_map(|r| r.f1_by_category.keys()).collect();
    if !categories.is_empty() {
        s += "\nWeighted F1 by category of the test images:\n\n";
        s += &table_header("model", categories.iter().map(|c| c.to_string()));
        for r in rows {
            s += &format!("| {} |", r.name);
            for c in &categories {
                s += &r
                    .f1_by_category
                    .get(*c)
                    // A category without a scored pixel has F1 NaN (see CategoryScores).
                    .filter(|f| f.is_finite())
                    .map_or(" n/a |".to_string(), |f| format!(" {f:.4} |"));
            }
            s += "\n";
        }
    }
    s
}

/// What every row of the table shares, as a paragraph written above it in `compare.md`:
/// the data, the one split (its sizes) every network and the baseline use, the seed, the
/// input size, width and budget, and what the timing columns count. A table without it did
/// not say which images, split or budget its rows were measured on.
///
/// `images` is the dataset's size and `split` the train / validation / test sizes.
///
/// # Examples
/// ```
/// use std::path::PathBuf;
/// use xray_seg::compare::settings_markdown;
/// use xray_seg::train::TrainJob;
/// let job = TrainJob { epochs: 4, size: 64, synth_count: 60, ..TrainJob::default() };
/// let md = settings_markdown(&job, 60, [42, 9, 9]);
/// assert!(md.contains("60 images (synthetic: 60 at 256×256, seed 1)"), "{md}");
/// assert!(md.contains("42 train / 9 validation / 9 test images"), "{md}");
/// assert!(md.contains("bootstrap of the weighted F1 over the 9 scored images (1000 resamples"), "{md}");
/// assert!(md.contains("input 64×64, first-level width 8, 4 epochs each"), "{md}");
/// // Which weights are scored, and what one GFLOP/img stands for with flip averaging.
/// assert!(md.contains("scored with the weights of its epoch of lowest validation loss"), "{md}");
/// assert!(md.contains("one network pass at the input size (a prediction averaged over 4 \
///     mirror images makes 4 passes, which infer img/s includes)"), "{md}");
/// let folder = TrainJob { data: Some(PathBuf::from("hips")), ..job.clone() };
/// let md = settings_markdown(&folder, 30, [21, 4, 0]);
/// assert!(md.contains("30 images (folder hips)"), "{md}");
/// // Without test images, every method is scored on the validation images.
/// assert!(md.contains("scored on the same 4 validation images"), "{md}");
/// // ...which also picked each network's best epoch and its temperature: say so.
/// assert!(md.contains("these images also chose each network's best epoch and fitted its \
///     temperature, so its scores are optimistic"), "{md}");
/// // Without validation images, no temperature is fitted.
/// let md = settings_markdown(&TrainJob { epochs: 1, ..job.clone() }, 12, [9, 0, 3]);
/// assert!(md.contains("no softmax temperature fitted (the split left no validation image)"), "{md}");
/// assert!(md.contains("1 epoch each"), "{md}");
/// assert!(md.contains("its epoch of lowest training loss"), "{md}");
/// let one_pass = TrainJob { flip_average: xnet_model::infer::FlipAverage::Off, ..job };
/// assert!(!settings_markdown(&one_pass, 60, [42, 9, 9]).contains("mirror images"));
/// ```
pub fn settings_markdown(job: &TrainJob, images: usize, split: [usize; 3]) -> String {
    let source = match &job.data {
        Some(dir) => format!("folder {}", dir.display()),
        None => format!(
            "synthetic: {} at {s}×{s}, seed {}",
            job.synth_count,
            job.seed,
            s = job.synth_size
        ),
    };
    let [train, val, test] = split;
    let scored = if test == 0 {
        format!(
            "{val} validation images (the split left no test image: these images also chose \
             each network's best epoch{}, so its scores are optimistic)",
            if job.calibrate {
                " and fitted its temperature"
            } else {
                ""
            }
        )
    } else {
        format!("{test} test images")
    };
    let (monitored, val_pass) = if val == 0 {
        ("training", "")
    } else {
        ("validation", "validation pass and ")
    };
    let passes = job.flip_average.flips().len();
    let flip_passes = if passes > 1 {
        format!(
            " (a prediction averaged over {passes} mirror images makes {passes} passes, which \
             infer img/s includes)"
        )
    } else {
        String::new()
    };
    let temperature = if !job.calibrate {
        "no softmax temperature fitted".to_string()
    } else if val == 0 {
        "no softmax temperature fitted (the split left no validation image)".to_string()
    } else {
        format!("its softmax temperature fitted on the same {val} validation images")
    };
    format!(
        "Every row: the same {images} images ({source}), one split by category with seed {seed}: \
         {train} train / {val} validation / {test} test images. Each network trains on the same \
         {train}, with {temperature}, and is scored on the same {scored}, as the classical \
         baseline is. Networks: input {size}×{size}, first-level width {width}, {epochs} epoch{plural} \
         each (no early stopping), each scored with the weights of its epoch of lowest \
         {monitored} loss (best epoch, counted from 0), batch {batch}, Adam lr {lr} with the \
         cosine schedule, augmentation {augment}, category balancing {balance}, initialisation \
         and augmentation seed {seed}, flip averaging {flips}. GFLOP/img: forward convolution \
         FLOPs of one network pass at the input size{flip_passes}; train s: wall seconds of \
         training, each epoch's {val_pass}checkpoint writes included; infer img/s: \
         the whole path (resize, network, resize back), one scored image at a time, after one \
         untimed image, over whole passes of at least 1 s. F1 95 % CI: percentile bootstrap of \
         the weighted F1 over the {scored_images} scored images ({resamples} resamples drawn \
         with seed {seed}, the same images for every row; n/a below two images).\n\n",
        seed = job.seed,
        size = job.size,
        width = job.width,
        epochs = job.epochs,
        plural = if job.epochs == 1 { "" } else { "s" },
        batch = job.batch,
        lr = job.lr,
        augment = if job.augment { "on" } else { "off" },
        balance = if job.balance { "on" } else { "off" },
        flips = job.flip_average,
        scored_images = if test == 0 { val } else { test },
        resamples = BOOTSTRAP_RESAMPLES,
    )
}

/// The CPU a measurement ran on: `/proc/cpuinfo`'s model name, family and model (Linux;
/// `None` elsewhere) and the vector extensions the kernels choose from at run time. The
/// `throughput` example's JSON record carries it as its `cpu`.
///
/// # Examples
/// ```
/// use xray_seg::compare::CpuInfo;
/// let cpu = CpuInfo::current();
/// let json = serde_json::to_value(&cpu).unwrap();
/// for key in ["model_name", "family", "model", "avx2_fma", "avx512f"] {
///     assert!(json.get(key).is_some(), "{key}");
/// }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CpuInfo {
    /// `model name` of `/proc/cpuinfo`.
    pub model_name: Option<String>,
    /// `cpu family` of `/proc/cpuinfo`.
    pub family: Option<String>,
    /// `model` of `/proc/cpuinfo`.
    pub model: Option<String>,
    /// AVX2 and FMA are both available (x86-64).
    pub avx2_fma: bool,
    /// AVX-512F is available (x86-64): the GEMM library then takes other micro-kernels, and
    /// trained weights differ from an AVX2-only CPU's.
    pub avx512f: bool,
}

impl CpuInfo {
    /// The CPU this process runs on.
    ///
    /// # Examples
    /// ```
    /// use xray_seg::compare::CpuInfo;
    /// assert_eq!(CpuInfo::current(), CpuInfo::current());
    /// ```
    pub fn current() -> Self {
        let info = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let field = |name: &str| {
            info.lines()
                .find(|l| l.split(':').next().is_some_and(|k| k.trim() == name))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        };
        #[cfg(target_arch = "x86_64")]
        let (avx2_fma, avx512f) = (
            std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma"),
            std::arch::is_x86_feature_detected!("avx512f"),
        );
        #[cfg(not(target_arch = "x86_64"))]
        let (avx2_fma, avx512f) = (false, false);
        CpuInfo {
            model_name: field("model name"),
            family: field("cpu family"),
            model: field("model"),
            avx2_fma,
            avx512f,
        }
    }
}

/// Where and how a comparison's timing columns were measured: the CPU, the worker threads,
/// which kernels ran, and whether the build was optimised. `compare.md` said none of it, so a
/// table made by a debug build (`cargo run --example compare`, whose own crates are built at
/// opt-level 1 with debug assertions) read like a release build's, and one made on two
/// threads like one made on sixteen.
///
/// # Examples
/// ```
/// use xray_seg::compare::{CpuInfo, Machine};
/// let machine = Machine {
///     cpu: CpuInfo { model_name: Some("AMD EPYC 9B14".into()), family: None, model: None, avx2_fma: true, avx512f: true },
///     threads: 2,
///     fast_kernels: true,
///     optimized: false,
///     version: "0.1.0".into(),
/// };
/// let md = machine.markdown();
/// assert!(md.contains("AMD EPYC 9B14 (AVX2+FMA, AVX-512F) with 2 worker threads"), "{md}");
/// assert!(md.contains("a debug build"), "{md}");
/// assert!(md.contains("not comparable with a release build"), "{md}");
/// let release = Machine { optimized: true, ..machine };
/// assert!(release.markdown().contains("a release build of xray-seg 0.1.0"));
/// // This process: the threads of rayon's pool, which the kernels share out the work on.
/// assert_eq!(Machine::current().threads, rayon::current_num_threads());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Machine {
    /// The CPU.
    pub cpu: CpuInfo,
    /// Worker threads of rayon's global pool (the kernels' and the data pipeline's).
    pub threads: usize,
    /// The crate's CPU kernels ran (`false`: stock candle, `XNET_REFERENCE_KERNELS=1`).
    pub fast_kernels: bool,
    /// Built without debug assertions (a release build); `false` for the dev profile, whose
    /// timing columns are not comparable with a release build's.
    pub optimized: bool,
    /// The xray-seg version.
    pub version: String,
}

impl Machine {
    /// This process's machine and build.
    pub fn current() -> Self {
        Machine {
            cpu: CpuInfo::current(),
            threads: rayon::current_num_threads(),
            fast_kernels: xnet_model::kernels::fast_kernels_enabled(),
            optimized: !cfg!(debug_assertions),
            version: env!("CARGO_PKG_VERSION").to_string(),
        }
    }

    /// One paragraph for `compare.md`, below [`settings_markdown`].
    pub fn markdown(&self) -> String {
        let mut extensions = Vec::new();
        if self.cpu.avx2_fma {
            extensions.push("AVX2+FMA");
        }
        if self.cpu.avx512f {
            extensions.push("AVX-512F");
        }
        let extensions = if extensions.is_empty() {
            "neither AVX2+FMA nor AVX-512F".to_string()
        } else {
            extensions.join(", ")
        };
        format!(
            "Timed on {} ({extensions}) with {} worker thread{}, the {} kernels, in a {} of \
             xray-seg {}{}.\n\n",
            self.cpu.model_name.as_deref().unwrap_or("an unnamed CPU"),
            self.threads,
            if self.threads == 1 { "" } else { "s" },
            if self.fast_kernels {
                "crate's"
            } else {
                "stock candle (reference)"
            },
            if self.optimized {
                "release build"
            } else {
                "debug build"
            },
            self.version,
            if self.optimized {
                ""
            } else {
                " (dev profile: its train s and infer img/s are not comparable with a release \
                 build's)"
            },
        )
    }
}

/// Trains and evaluates every variant with `job`'s data, budget and seed (each in
/// `<run>/<arch>-<upsampling>/`), then the classical baseline; writes `compare.json` (the
/// rows), [`SETTINGS_FILE`] (what they share, and the [`Machine`] that timed them) and
/// `compare.md` ([`settings_markdown`] and [`Machine::markdown`] above the table) into the
/// run directory and returns the rows.
///
/// Every variant's options are checked first, before any image is generated or folder made,
/// and a run directory that holds a `train` run is refused.
///
/// # Errors
/// As [`crate::train::run`].
///
/// # Examples
/// One contestant against the classical baseline, on six synthetic 32×32 images:
/// ```
/// use xnet_model::infer::FlipAverage;
/// use xnet_model::models::Upsampling;
/// use xray_seg::compare::{run, Variant};
/// use xray_seg::train::{Arch, TrainJob};
/// let dir = std::env::temp_dir().join(format!("xray-seg-doc-compare-{}", std::process::id()));
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
///     ..TrainJob::default()
/// };
/// let xnet = Variant { arch: Arch::XNet, upsampling: Upsampling::Nearest };
/// let rows = run(&job, &[xnet])?;
/// assert_eq!(rows.len(), 2);
/// assert_eq!((rows[0].name.as_str(), rows[0].epochs), ("xnet/nearest", 1));
/// assert!(rows[0].parameters > 0 && rows[0].ece.is_some());
/// assert_eq!((rows[1].parameters, rows[1].auc_weighted), (0, None)); // the baseline
/// assert!(dir.join("xnet-nearest/model.safetensors").is_file());
/// assert!(dir.join("compare.md").is_file() && dir.join("compare.json").is_file());
/// // The table says what its rows share.
/// let md = std::fs::read_to_string(dir.join("compare.md")).unwrap();
/// assert!(md.starts_with("Every row: the same 6 images (synthetic: 6 at 32×32, seed 1)"), "{md}");
/// // ...and where it was timed, also in compare_settings.json with every option.
/// assert!(md.contains("worker thread"), "{md}");
/// let settings: serde_json::Value =
///     serde_json::from_str(&std::fs::read_to_string(dir.join("compare_settings.json")).unwrap()).unwrap();
/// assert_eq!((settings["epochs"].as_u64(), settings["l2"].as_f64()), (Some(1), Some(5e-4)));
/// assert!(settings["machine"]["threads"].as_u64() >= Some(1));
/// // The scored epoch of each network (the baseline has none).
/// assert_eq!((rows[0].best_epoch, rows[1].best_epoch), (Some(0), None));
/// // Every row's weighted F1 with its bootstrap interval over the test images.
/// for r in &rows {
///     let [lo, hi] = r.f1_weighted_ci95.expect("two test images or more");
///     assert!(0.0 <= lo && lo <= hi && hi <= 1.0, "{r:?}");
/// }
/// // Options are checked before anything is written; k folds are not supported.
/// let elsewhere = dir.join("refused");
/// assert!(run(&TrainJob { epochs: 0, run_dir: elsewhere.clone(), ..job.clone() }, &[xnet]).is_err());
/// assert!(run(&TrainJob { kfold: Some(2), run_dir: elsewhere.clone(), ..job }, &[xnet]).is_err());
/// assert!(!elsewhere.exists());
/// # std::fs::remove_dir_all(&dir).ok();
/// # Ok::<(), xray_seg::Error>(())
/// ```
pub fn run(job: &TrainJob, variants: &[Variant]) -> Result<Vec<Row>> {
    if job.kfold.is_some() {
        return Err(Error::Invalid(
            "compare uses one split; --kfold is not supported here".into(),
        ));
    }
    // Every contestant's options, before any image is generated or folder made (`--epochs
    // 0` once generated the synthetic data and a model folder before it was refused).
    for v in variants {
        check_job(&variant_job(job, v))?;
    }
    check_not_a_train_run(&job.run_dir)?;
    std::fs::create_dir_all(&job.run_dir).map_err(|e| Error::io(&job.run_dir, e))?;
    let ds = open_dataset(job)?;
    let mut rng = StdRng::seed_from_u64(job.seed);
    let split = xnet_split(&ds.categories(), &SplitConfig::default(), &mut rng)?;
    let test = if split.test.is_empty() {
        split.val.clone()
    } else {
        split.test.clone()
    };
    let mut rows = Vec::new();
    for v in variants {
        let j = variant_job(job, v);
        let dir = job.run_dir.join(format!("{}-{}", v.arch, v.upsampling));
        let out = train_split(&j, &ds, &split, &dir)?;
        let ips = inference_rate(&out.predictor, &ds, &test)?;
        let per_image = per_image_confusion(&out.predictor, &ds, &test)?;
        let r = &out.evaluation.report;
        rows.push(Row {
            name: v.name(),
            parameters: out.parameters,
            gflop_per_image: out
                .predictor
                .config()
                .forward_flops(job.size as usize, job.size as usize)
                as f64
                / 1e9,
            train_seconds: out.train_seconds,
            images_per_second: ips,
            f1_weighted: r.f1.weighted,
            f1_weighted_ci95: f1_bootstrap_interval(&per_image, BOOTSTRAP_RESAMPLES, job.seed)?,
            auc_weighted: r.auc.weighted,
            ece: Some(r.ece),
            temperature: r.temperature.as_ref().map(|t| t.temperature),
            epochs: out.summary.epochs_run,
            best_epoch: out.summary.best_epoch,
            f1_by_category: f1_by_category(&out.evaluation.per_category),
        });
    }
    rows.push(baseline_row(&ds, &test, job.seed)?);
    let json = serde_json::to_string_pretty(&rows).map_err(|e| Error::Invalid(e.to_string()))?;
    // Whole or not at all: a write that fails part way keeps an earlier table as it was.
    write_bytes_atomic(&job.run_dir.join("compare.json"), json.as_bytes())?;
    let split_sizes = [split.train.len(), split.val.len(), split.test.len()];
    let machine = Machine::current();
    let settings = settings_json(job, ds.len(), split_sizes, &machine);
    let settings =
        serde_json::to_string_pretty(&settings).map_err(|e| Error::Invalid(e.to_string()))?;
    write_bytes_atomic(&job.run_dir.join(SETTINGS_FILE), settings.as_bytes())?;
    let md =
        settings_markdown(job, ds.len(), split_sizes) + &machine.markdown() + &to_markdown(&rows);
    write_bytes_atomic(&job.run_dir.join("compare.md"), md.as_bytes())?;
    Ok(rows)
}

/// The file beside `compare.json` that records, as JSON, what every row shares
/// ([`settings_markdown`]'s settings and the [`Machine`]).
pub const SETTINGS_FILE: &str = "compare_settings.json";

/// What every row shares, machine-readable: the data, the split sizes, every option that
/// sets a row's weights (the loss, L2 and augmentation pipeline included, which
/// `compare.md` does not spell out) and the [`Machine`] that timed them.
fn settings_json(
    job: &TrainJob,
    images: usize,
    split: [usize; 3],
    machine: &Machine,
) -> serde_json::Value {
    serde_json::json!({
        "data": job.data.as_ref().map(|d| d.display().to_string()),
        "synthetic": job.data.is_none().then(|| serde_json::json!({
            "count": job.synth_count,
            "size": job.synth_size,
        })),
        "images": images,
        "split": { "train": split[0], "validation": split[1], "test": split[2] },
        "scored": if split[2] == 0 { "validation" } else { "test" },
        "seed": job.seed,
        "size": job.size,
        "width": job.width,
        "epochs": job.epochs,
        "patience": job.patience,
        "batch": job.batch,
        "lr": job.lr,
        "l2": job.l2,
        "loss": job.loss,
        "augment": job.augment.then_some(&job.augment_config),
        "balance": job.balance,
        "flip_average": job.flip_average,
        "calibrate": job.calibrate,
        "invert": job.invert,
        "allow_rgb": job.allow_rgb,
        "machine": machine,
    })
}

/// Refuses a run folder that holds a `train` run (its options file, log or best
/// checkpoint): `compare --name` of a training run's name wrote the table, a folder per
/// model and perhaps synthetic data into that run's folder without a word.
fn check_not_a_train_run(dir: &std::path::Path) -> Result<()> {
    match crate::train::train_run_mark(dir) {
        Some(mark) => Err(Error::Invalid(format!(
            "{} holds a train run ({mark}): compare would write its table and a folder per \
             model into it; give --name another name",
            dir.display()
        ))),
        None => Ok(()),
    }
}

/// `job` for one contestant: its network family and up-sampling, no overlays.
fn variant_job(job: &TrainJob, v: &Variant) -> TrainJob {
    TrainJob {
        arch: v.arch,
        upsampling: Some(v.upsampling),
        overlays: 0,
        ..job.clone()
    }
}

/// Resamples of [`f1_bootstrap_interval`] in `compare`'s table.
pub const BOOTSTRAP_RESAMPLES: usize = 1000;

/// The 95 % percentile-bootstrap interval of the weighted F1 over images: `resamples` times,
/// as many images as `per_image` holds are drawn with replacement (from `seed`), their
/// confusion matrices pooled and the weighted F1 taken; the interval runs from the 2.5th to
/// the 97.5th percentile of those (linear interpolation between order statistics; resamples
/// without a scored pixel are left out). `None` with fewer than two images (no spread to
/// resample) or no resample with a scored pixel.
///
/// The draws depend on `seed` and the image count only, so `compare` resamples the same
/// images for every row (a paired bootstrap): the rows' intervals then differ by the
/// methods, not the draws. The interval is of one method's score on images like these; two
/// rows whose intervals overlap may still differ consistently image by image.
///
/// # Errors
/// Matrices of different class counts.
///
/// # Examples
/// ```
/// use xray_metrics::ConfusionMatrix;
/// use xray_seg::compare::f1_bootstrap_interval;
/// // Two classes; image k gets k of its 10 pixels right.
/// let images: Vec<ConfusionMatrix> = (0..=10u8)
///     .map(|k| {
///         let truth = [0u8, 1, 0, 1, 0, 1, 0, 1, 0, 1];
///         let pred: Vec<u8> = truth.iter().enumerate().map(|(i, &t)| if i < k as usize { t } else { 1 - t }).collect();
///         ConfusionMatrix::from_labels(&truth, &pred, 2)
///     })
///     .collect::<Result<_, _>>()?;
/// let [lo, hi] = f1_bootstrap_interval(&images, 1000, 1)?.expect("eleven images");
/// // The pooled score is 0.5; the interval holds it and lies well inside [0, 1].
/// assert!(0.2 < lo && lo < 0.5 && 0.5 < hi && hi < 0.8, "{lo} {hi}");
/// // Drawn from the seed: the same interval again.
/// assert_eq!(f1_bootstrap_interval(&images, 1000, 1)?, Some([lo, hi]));
/// // Identical images leave no spread; one image, nothing to resample.
/// let same = vec![images[7].clone(); 5];
/// let [lo, hi] = f1_bootstrap_interval(&same, 200, 1)?.expect("five images");
/// assert!((hi - lo).abs() < 1e-12);
/// assert_eq!(f1_bootstrap_interval(&images[..1], 1000, 1)?, None);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn f1_bootstrap_interval(
    per_image: &[ConfusionMatrix],
    resamples: usize,
    seed: u64,
) -> Result<Option<[f64; 2]>> {
    let n = per_image.len();
    let Some(first) = per_image.first() else {
        return Ok(None);
    };
    if n < 2 {
        return Ok(None);
    }
    let mut rng = StdRng::seed_from_u64(seed);
    let mut scores = Vec::with_capacity(resamples);
    for _ in 0..resamples {
        let mut pooled = ConfusionMatrix::new(first.num_classes())?;
        for _ in 0..n {
            pooled.merge(&per_image[rng.random_range(0..n)])?;
        }
        let f1 = LabelScores::from_confusion("resample", &pooled).f1_weighted;
        if f1.is_finite() {
            scores.push(f1);
        }
    }
    if scores.is_empty() {
        return Ok(None);
    }
    scores.sort_by(f64::total_cmp);
    let quantile = |q: f64| {
        let at = q * (scores.len() - 1) as f64;
        let (below, above) = (at.floor() as usize, at.ceil() as usize);
        scores[below] + (scores[above] - scores[below]) * (at - below as f64)
    };
    Ok(Some([quantile(0.025), quantile(0.975)]))
}

/// Each scored image's confusion matrix of the predictor's arg-max labels (the first
/// largest probability, as the evaluation's): what [`f1_bootstrap_interval`] resamples.
fn per_image_confusion(
    predictor: &Predictor,
    ds: &Dataset,
    indices: &[usize],
) -> Result<Vec<ConfusionMatrix>> {
    let classes = predictor.num_classes();
    indices
        .iter()
        .map(|&i| {
            let (image, mask) = ds.load(i)?;
            let mask =
                mask.ok_or_else(|| Error::Invalid(format!("{}: no mask", ds.samples[i].stem)))?;
            let probs = predictor.predict(&image)?;
            let (h, w) = (image.height() as usize, image.width() as usize);
            let labels = xnet_model::infer::argmax_classes(&probs, classes, h, w)?;
            Ok(ConfusionMatrix::from_labels(
                mask.as_raw(),
                &labels,
                classes,
            )?)
        })
        .collect()
}

fn inference_rate(predictor: &Predictor, ds: &Dataset, indices: &[usize]) -> Result<f64> {
    let images = indices
        .iter()
        .map(|&i| ds.load(i).map(|(img, _)| img))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    let warm_up = images.first();
    timed_rate(
        images.len(),
        || warm_up.map_or(Ok(()), |img| predictor.predict(img).map(|_| ())),
        || {
            images
                .iter()
                .try_for_each(|img| predictor.predict(img).map(|_| ()))
        },
        INFERENCE_SECONDS,
    )
}

/// Least wall time over which the inference column times its passes over the scored images.
pub const INFERENCE_SECONDS: f64 = 1.0;

/// Items per second of `pass` (which handles `items` items), after one untimed `warm_up`
/// call, over as many whole passes as take at least `min_seconds` (at least one).
///
/// `compare`'s inference column timed one pass over the test images, with nothing before
/// it: a few dozen milliseconds for a small split, so one stall of a busy machine, or the
/// first call's one-time costs, set the figure (three identical runs gave xnet/nearest 231,
/// 197 and 110 images/s).
///
/// # Errors
/// The first error of `warm_up` or `pass`.
///
/// # Examples
/// ```
/// use std::cell::Cell;
/// use std::time::Duration;
/// use xray_seg::compare::timed_rate;
/// let (warmed, passes) = (Cell::new(false), Cell::new(0));
/// let rate = timed_rate(
///     4,
///     || { warmed.set(true); Ok(()) }, // once, before the timed passes
///     || {
///         assert!(warmed.get(), "a pass ran before the warm-up");
///         passes.set(passes.get() + 1);
///         std::thread::sleep(Duration::from_millis(10));
///         Ok(())
///     },
///     0.1,
/// )?;
/// // Bounds that hold however busy the machine is (no wall-clock guess): each pass takes
/// // at least 10 ms, so at most 400 items a second, and the passes span at least 0.1 s.
/// let n = passes.get() as f64;
/// assert!(n >= 1.0 && rate > 0.0 && rate <= 400.0 && rate <= 4.0 * n / 0.1, "{rate}");
/// # Ok::<(), xray_seg::Error>(())
/// ```
pub fn timed_rate(
    items: usize,
    warm_up: impl FnOnce() -> Result<()>,
    mut pass: impl FnMut() -> Result<()>,
    min_seconds: f64,
) -> Result<f64> {
    warm_up()?;
    let started = Instant::now();
    let mut passes = 0usize;
    loop {
        pass()?;
        passes += 1;
        if started.elapsed().as_secs_f64() >= min_seconds {
            break;
        }
    }
    Ok((passes * items) as f64 / started.elapsed().as_secs_f64().max(1e-9))
}

/// The classical baseline's labels of one image: the collimator found, then Otsu levels
/// inside it.
fn baseline_labels(plane: &Plane) -> Result<image::GrayImage> {
    let field = detect_collimator(plane, &CollimatorConfig::default())?;
    Ok(baseline_segment(
        plane,
        Some(&field),
        &BaselineConfig::default(),
    )?)
}

/// Predicted labels as the confusion matrix can score them: a pixel the prediction left
/// out (255) where the truth has a class counts as wrong. The two are read pixel by pixel
/// together, so the result is as long as the shorter; scoring it against a longer `truth`
/// is then refused by [`ConfusionMatrix::from_labels`](xray_metrics::ConfusionMatrix::from_labels).
///
/// # Examples
/// ```
/// use xray_metrics::ConfusionMatrix;
/// use xray_seg::compare::scoreable_prediction;
/// let truth = [0, 1, 2, 255];
/// let pred = [0, 255, 2, 255]; // the second pixel was left out
/// let scored = scoreable_prediction(&truth, &pred, 3);
/// assert_eq!(scored, [0, 2, 2, 0]); // left out → another class than the truth
/// let cm = ConfusionMatrix::from_labels(&truth, &scored, 3)?;
/// assert_eq!(cm.total(), 3); // the ignored truth pixel is not scored
/// assert_eq!(cm.accuracy(), Some(2.0 / 3.0));
/// # Ok::<(), xray_seg::Error>(())
/// ```
pub fn scoreable_prediction(truth: &[u8], pred: &[u8], classes: usize) -> Vec<u8> {
    truth
        .iter()
        .zip(pred)
        .map(|(&t, &p)| {
            if (p as usize) < classes {
                p
            } else if (t as usize) < classes {
                ((t as usize + 1) % classes) as u8
            } else {
                0
            }
        })
        .collect()
}

fn baseline_row(ds: &Dataset, indices: &[usize], seed: u64) -> Result<Row> {
    let classes = 3;
    let mut cm = ConfusionMatrix::new(classes)?;
    let mut per_image = Vec::with_capacity(indices.len());
    let mut images = Vec::with_capacity(indices.len());
    for &i in indices {
        let (image, mask) = ds.load(i)?;
        let mask =
            mask.ok_or_else(|| Error::Invalid(format!("{}: no mask", ds.samples[i].stem)))?;
        let labels = baseline_labels(&Plane::from_image(&image)?)?;
        let image_cm = ConfusionMatrix::from_labels(
            mask.as_raw(),
            &scoreable_prediction(mask.as_raw(), labels.as_raw(), classes),
            classes,
        )?;
        cm.merge(&image_cm)?;
        per_image.push(image_cm);
        images.push(image);
    }
    let planes = images
        .iter()
        .map(Plane::from_image)
        .collect::<std::result::Result<Vec<_>, _>>()?;
    // Timed as the networks' column is (inference_rate): the path alone, on images already
    // in memory, over whole passes of at least INFERENCE_SECONDS after one untimed image.
    // It used to time one pass that also loaded and scored each image.
    let images_per_second = timed_rate(
        planes.len(),
        || {
            planes
                .first()
                .map_or(Ok(()), |p| baseline_labels(p).map(drop))
        },
        || planes.iter().try_for_each(|p| baseline_labels(p).map(drop)),
        INFERENCE_SECONDS,
    )?;
    let categories = indices.iter().map(|&i| ds.samples[i].category.as_deref());
    let by_category = per_category_scores(categories, &per_image, None, classes)?;
    let scores = LabelScores::from_confusion("classical baseline", &cm);
    Ok(Row {
        name: "classical baseline (Otsu + field)".into(),
        parameters: 0,
        gflop_per_image: 0.0,
        train_seconds: 0.0,
        images_per_second,
        f1_weighted: scores.f1_weighted,
        f1_weighted_ci95: f1_bootstrap_interval(&per_image, BOOTSTRAP_RESAMPLES, seed)?,
        auc_weighted: None,
        ece: None,
        temperature: None,
        epochs: 0,
        best_epoch: None,
        f1_by_category: f1_by_category(&by_category),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use xnet_model::infer::FlipAverage;

    /// The bootstrap resamples per-image matrices that compare computes apart from the
    /// evaluation; pooled, they must be the evaluation's arg-max matrix (the same labels,
    /// the same pixels scored), or the interval would be of another score than the F1 beside
    /// it. Checked with flip averaging and a fitted temperature, which the predictor applies.
    #[test]
    fn per_image_matrices_pool_to_the_evaluation_s() {
        let dir = std::env::temp_dir().join(format!("xray-seg-compare-cm-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let job = TrainJob {
            run_dir: dir.clone(),
            size: 32,
            width: 2,
            epochs: 1,
            batch: 4,
            synth_count: 14,
            synth_size: 48,
            flip_average: FlipAverage::Horizontal,
            progress: false,
            overlays: 0,
            ..TrainJob::default()
        };
        let ds = open_dataset(&job).expect("synthetic data");
        let mut rng = StdRng::seed_from_u64(job.seed);
        let split = xnet_split(&ds.categories(), &SplitConfig::default(), &mut rng).expect("split");
        let out = train_split(&job, &ds, &split, &dir.join("xnet")).expect("trains");
        let per_image = per_image_confusion(&out.predictor, &ds, &split.test).expect("scored");
        assert_eq!(per_image.len(), split.test.len());
        let mut pooled = ConfusionMatrix::new(3).expect("3 classes");
        for cm in &per_image {
            pooled.merge(cm).expect("same classes");
        }
        assert_eq!(pooled.rows(), out.evaluation.argmax.confusion_matrix);
        // The networks' F1 column (the report's) and the baseline's (LabelScores of its
        // matrix) are the same score of the same matrix, zero divisions included.
        let f1 = LabelScores::from_confusion("pooled", &pooled).f1_weighted;
        assert!(
            (f1 - out.evaluation.report.f1.weighted).abs() < 1e-12,
            "{f1}"
        );
        let [lo, hi] = f1_bootstrap_interval(&per_image, 200, 1)
            .expect("same classes")
            .expect("two images or more");
        assert!(0.0 <= lo && lo <= hi && hi <= 1.0, "{lo} {hi}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
