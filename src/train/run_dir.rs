//! The run folder: the record of the options a run was started with (`train_job.json`),
//! and the rules a new run and a resume follow there.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use xnet_model::checkpoint;
use xnet_model::infer::FlipAverage;
use xnet_model::loss::LossKind;
use xnet_model::models::Upsampling;
use xray_data::augment::PipelineConfig as AugmentConfig;

use crate::{Error, Result};

use super::{Arch, TrainJob};

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
    /// Category balancing of the training draws ([`TrainJob::balance`]; `None` in runs
    /// stored before it was recorded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub balance: Option<bool>,
    /// The flip averaging stored in the checkpoint, with which the temperature is fitted
    /// and the test split scored ([`TrainJob::flip_average`]; `None` in runs stored before
    /// it was recorded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flip_average: Option<FlipAverage>,
    /// Whether the softmax temperature is fitted and stored in the checkpoint
    /// ([`TrainJob::calibrate`]; `None` in runs stored before it was recorded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub calibrate: Option<bool>,
}

/// `"FLAG: the run has STORED, this call GIVEN"` where the two differ.
fn change_line(flag: &str, stored: impl ToString, given: impl ToString) -> Option<String> {
    let (stored, given) = (stored.to_string(), given.to_string());
    (stored != given).then(|| format!("{flag}: the run has {stored}, this call {given}"))
}

/// A switch as `change_line` shows it.
fn on_off(on: bool) -> &'static str {
    if on {
        "on"
    } else {
        "off"
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
                balance: Some(job.balance),
                flip_average: Some(job.flip_average),
                calibrate: Some(job.calibrate),
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
                // Compared only where both record them (older runs do not).
                stored
                    .balance
                    .zip(given.balance)
                    .and_then(|(s, g)| change_line("--no-balance", on_off(!s), on_off(!g))),
                stored
                    .flip_average
                    .zip(given.flip_average)
                    .and_then(|(s, g)| change_line("--flip-average", s, g)),
                stored.calibrate.zip(given.calibrate).and_then(|(s, g)| {
                    change_line("--no-calibrate", on_off(!s), on_off(!g)).map(|line| {
                        format!(
                            "{line} (without the fit the checkpoint loses its softmax \
                             temperature and predicts the network's own softmax)"
                        )
                    })
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
pub(super) fn write_run_options(dir: &Path, options: &RunOptions) -> Result<()> {
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

/// The first mark of a train run that `dir` holds (its [`RUN_OPTIONS_FILE`], `log.jsonl` or
/// `best/`), if any: the jobs that write into a folder of their own (`evaluate --out`,
/// `compare --name`) refuse such a folder, whose report, plots and checkpoints they would
/// overwrite.
pub(crate) fn train_run_mark(dir: &Path) -> Option<&'static str> {
    [RUN_OPTIONS_FILE, "log.jsonl", "best"]
        .into_iter()
        .find(|mark| dir.join(mark).exists())
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
pub(super) fn refuse_restart_over_results(dir: &Path) -> Result<()> {
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
pub(super) fn check_run_dir(job: &TrainJob, options: &RunOptions) -> Result<()> {
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
