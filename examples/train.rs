//! Train a segmentation network; with no arguments, a CPU-sized XNet on synthetic data.
//!
//! ```text
//! cargo run --release --example train                       # synthetic data, runs/<timestamp>/
//! cargo run --release --example train -- --data DIR --name hip --model unet --epochs 60
//! cargo run --release --example train -- --kfold 5          # cross-validation
//! ```
//! Writes into `runs/<name>/`: `model.safetensors` + `config.json`, `log.jsonl`,
//! `report.json` + `report.md` (test split), plots (ROC, reliability, confusion, training
//! curves), `overlays/` and `train_job.json` (the options a `--resume` must repeat). Every
//! image and mask is read and checked before the first epoch; a run name in use needs
//! `--resume` (or another `--name`). With `--kfold K`, a folder per fold (`fold-<i>/`) and
//! `kfold.json`: each fold's scores, their mean, sample standard deviation (divisor K − 1)
//! and the half-width of the mean's 95 % confidence interval (Student's t, K − 1 degrees of
//! freedom), the temperatures and the per-category scores pooled over the folds.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::parser::ValueSource;
use clap::{ArgMatches, CommandFactory, FromArgMatches, Parser};
use xnet_model::infer::FlipAverage;
use xnet_model::loss::LossKind;
use xray_data::augment::PipelineConfig;
use xray_seg::train::{check_run_name, run, Arch, TrainJob};

#[derive(Parser, Debug)]
#[command(
    about = "Train XNet / U-Net / SegNet / DeepLab-lite on radiographs (synthetic when no --data)",
    // A negative number after a flag is its value (refused, by the flag's name, where it
    // cannot be), not an unknown option.
    allow_negative_numbers = true
)]
struct Args {
    /// Dataset folder (images/, masks/, categories.csv); synthetic data when absent.
    #[arg(long)]
    data: Option<PathBuf>,
    /// The dataset's PNG/TIFF/JPEG images store display polarity (bone white, as exports from a
    /// viewer or PACS do): mirror them into the convention, larger = more X-rays. DICOM files
    /// carry their polarity and are read as they say.
    #[arg(long, requires = "data")]
    invert: bool,
    /// Convert the dataset's colour PNG/TIFF/JPEG images to grey instead of refusing them.
    #[arg(long, requires = "data")]
    allow_rgb: bool,
    /// Run name: outputs go to runs/<name>/ (default: a timestamp); a plain folder name.
    /// A new run needs a name not in use (or an empty folder).
    #[arg(long)]
    name: Option<String>,
    /// Directory that holds the runs.
    #[arg(long, default_value = "runs")]
    runs: PathBuf,
    /// Network: xnet, unet, segnet or deeplab.
    #[arg(long, default_value = "xnet")]
    model: Arch,
    /// Network input side in pixels (whole radiographs are resized to it).
    #[arg(long, default_value_t = 128)]
    size: u32,
    /// Channels of the first level (64 in the paper; 8 is CPU-sized). XNet and U-Net double
    /// them per level; SegNet keeps them at every level of SegNet-Basic's four, with 3×3
    /// kernels instead of its 7×7 (so --width 64 is not SegNet-Basic's 1.4 M parameters but
    /// 260 k); DeepLab-lite's encoder is 1, 2, 4 and 8 times them and its ASPP 4 times.
    #[arg(long, default_value_t = 8)]
    width: usize,
    /// Maximum number of epochs (the cosine schedule spans them).
    #[arg(long, default_value_t = TrainJob::default().epochs)]
    epochs: usize,
    /// Batch size.
    #[arg(long, default_value_t = 8)]
    batch: usize,
    /// Learning rate (Adam, cosine schedule).
    #[arg(long, default_value_t = 2e-3)]
    lr: f64,
    /// Early-stopping patience in epochs.
    #[arg(long, default_value_t = TrainJob::default().patience)]
    patience: usize,
    /// L2 coefficient on convolution kernels (the paper's 5e-4; the objective gains l2 · Σ w²).
    #[arg(long, default_value_t = 5e-4)]
    l2: f64,
    /// Data term: ce (cross-entropy, the paper's), focal, dice (soft Dice) or ce-dice
    /// (cross-entropy plus --dice-weight × soft Dice).
    #[arg(long, value_enum, default_value_t = LossArg::Ce)]
    loss: LossArg,
    /// Focusing parameter γ of --loss focal (0, or ≥ 1).
    #[arg(long, default_value_t = 2.0)]
    focal_gamma: f64,
    /// Weight of the Dice term in --loss ce-dice.
    #[arg(long, default_value_t = 1.0)]
    dice_weight: f64,
    /// k-fold cross-validation (a report per fold plus mean ± std).
    #[arg(long)]
    kfold: Option<usize>,
    /// Number of synthetic images when no --data is given.
    #[arg(long, default_value_t = 160, conflicts_with = "data")]
    synth_count: usize,
    /// Side of the synthetic images.
    #[arg(long, default_value_t = 256, conflicts_with = "data")]
    synth_size: u32,
    /// Do not augment training images.
    #[arg(long)]
    no_augment: bool,
    /// Augmentation pipeline (JSON or TOML, docs/augmentation.md) instead of the default,
    /// XNet's without its random crop (`PipelineConfig::xnet_no_crop`).
    #[arg(long, value_name = "FILE", conflicts_with = "no_augment")]
    augment_config: Option<PathBuf>,
    /// Do not balance categories.
    #[arg(long)]
    no_balance: bool,
    /// Flip averaging of the trained model's predictions (off, horizontal,
    /// horizontal-vertical: the mean over the image's mirror images, one network pass each),
    /// stored in its checkpoint for evaluate and segment; the temperature is fitted and the
    /// test split scored with it.
    #[arg(long, value_name = "FLIPS", default_value_t = TrainJob::default().flip_average)]
    flip_average: FlipAverage,
    /// Do not fit the softmax temperature on the validation split (the checkpoint then
    /// predicts the network's own softmax).
    #[arg(long)]
    no_calibrate: bool,
    /// Device: cpu, cuda (the first GPU; gpu is taken as the same) or cuda:N (CUDA needs a
    /// build with --features cuda).
    #[arg(long, default_value = "cpu")]
    device: String,
    /// Continue the run from its last checkpoint; the run must exist, and --data, --invert,
    /// --allow-rgb, --seed, --synth-count, --synth-size, --kfold, --model, --width, --size,
    /// --l2 and --loss must be the ones it was started with (stored in
    /// runs/<name>/train_job.json). --epochs, --batch, --lr, --patience, the augmentation,
    /// --no-balance, --flip-average and --no-calibrate may change (with a warning): more
    /// epochs extend a finished run, and the cosine schedule then spans the new count from
    /// the resumed epoch.
    #[arg(long)]
    resume: bool,
    /// Seed of every random choice.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// No progress bars.
    #[arg(long)]
    quiet: bool,
}

/// The `--loss` choices.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum LossArg {
    /// Pixel-wise cross-entropy.
    Ce,
    /// Focal loss with --focal-gamma.
    Focal,
    /// Soft Dice.
    Dice,
    /// Cross-entropy plus --dice-weight × soft Dice.
    CeDice,
}

impl LossArg {
    /// The data term, with the soft Dice smoothing term fixed at 1.
    fn kind(self, focal_gamma: f64, dice_weight: f64) -> LossKind {
        match self {
            LossArg::Ce => LossKind::CrossEntropy,
            LossArg::Focal => LossKind::Focal { gamma: focal_gamma },
            LossArg::Dice => LossKind::Dice { smooth: 1.0 },
            LossArg::CeDice => LossKind::CrossEntropyDice {
                dice_weight,
                smooth: 1.0,
            },
        }
    }
}

/// A loss parameter given on the command line for a data term that does not use it
/// (`--focal-gamma` without `--loss focal`, `--dice-weight` without `--loss ce-dice`): it
/// was ignored without a word, and the run trained on another objective than the one meant.
fn unused_loss_flag(matches: &ArgMatches, loss: LossArg) -> Option<String> {
    let given = |id: &str| matches.value_source(id) == Some(ValueSource::CommandLine);
    // The name clap parses, from the same derive.
    let name = |loss: LossArg| {
        clap::ValueEnum::to_possible_value(&loss)
            .map(|v| v.get_name().to_string())
            .unwrap_or_default()
    };
    [
        ("focal_gamma", "--focal-gamma", LossArg::Focal),
        ("dice_weight", "--dice-weight", LossArg::CeDice),
    ]
    .into_iter()
    .find(|&(id, _, wants)| given(id) && loss != wants)
    .map(|(_, flag, wants)| {
        format!(
            "{flag} applies to --loss {} only, and this call trains with --loss {}: add \
             --loss {} or leave {flag} out",
            name(wants),
            name(loss),
            name(wants)
        )
    })
}

fn timestamp() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    format!("run-{secs}")
}

fn main() -> ExitCode {
    xnet_model::runtime::exit_quietly_on_closed_pipe();
    // The command that parsed, so that an error's usage line names the binary as clap's do.
    let mut command = Args::command();
    let matches = command.get_matches_mut();
    let args = Args::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    if let Some(message) = unused_loss_flag(&matches, args.loss) {
        command
            .error(clap::error::ErrorKind::ArgumentConflict, message)
            .exit();
    }
    // Large layer buffers are reused instead of page-faulted in again on every step.
    xnet_model::memory::keep_freed_memory();
    xnet_model::runtime::tune_candle_threads();
    let device = match xnet_model::runtime::device_by_name(&args.device) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let augment_config = match &args.augment_config {
        Some(path) => match PipelineConfig::from_file(path) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(2);
            }
        },
        None => TrainJob::default().augment_config,
    };
    let name = args.name.clone().unwrap_or_else(timestamp);
    if let Err(e) = check_run_name(&name) {
        eprintln!("error: {e}");
        return ExitCode::from(2);
    }
    let job = TrainJob {
        data: args.data.clone(),
        run_dir: args.runs.join(&name),
        arch: args.model,
        size: args.size,
        width: args.width,
        epochs: args.epochs,
        batch: args.batch,
        lr: args.lr,
        patience: args.patience,
        l2: args.l2,
        loss: args.loss.kind(args.focal_gamma, args.dice_weight),
        seed: args.seed,
        invert: args.invert,
        allow_rgb: args.allow_rgb,
        synth_count: args.synth_count,
        synth_size: args.synth_size,
        augment: !args.no_augment,
        augment_config,
        balance: !args.no_balance,
        calibrate: !args.no_calibrate,
        flip_average: args.flip_average,
        kfold: args.kfold,
        resume: args.resume,
        progress: !args.quiet,
        device,
        ..TrainJob::default()
    };
    eprintln!("run directory: {}", job.run_dir.display());
    match run(&job) {
        Ok((outcomes, kfold)) => {
            for o in &outcomes {
                let r = &o.evaluation.report;
                println!("{}", o.summary_line());
                if args.flip_average != FlipAverage::Off {
                    println!(
                        "  predictions averaged over the image's mirror images (--flip-average {}), stored in the checkpoint",
                        args.flip_average
                    );
                }
                match &r.temperature {
                    Some(t) => {
                        println!(
                            "  softmax temperature {:.3}, fitted on the validation split (its ECE {:.4} → {:.4}); the test scores above use it",
                            t.temperature, t.ece_before, t.ece_after
                        );
                        for warning in xray_seg::calibrate::fit_warnings(t) {
                            println!("  warning: {warning}");
                        }
                    }
                    None if !args.no_calibrate => println!(
                        "  not calibrated: {}",
                        if o.split_sizes[1] == 0 {
                            "the split left no validation image to fit the softmax temperature on"
                        } else {
                            "the temperature fit failed (see the warning above)"
                        }
                    ),
                    None => {}
                }
                // The weakest body part of the test split (all of them in report.md).
                if let Some(worst) = o
                    .evaluation
                    .per_category
                    .iter()
                    .min_by(|a, b| a.scores.f1_weighted.total_cmp(&b.scores.f1_weighted))
                {
                    println!(
                        "  weakest category: {} (weighted F1 {:.4} on {} image{}; every category in report.md)",
                        worst.category,
                        worst.scores.f1_weighted,
                        worst.images,
                        if worst.images == 1 { "" } else { "s" }
                    );
                }
            }
            if let Some(k) = kfold {
                let names = ["accuracy", "F1 weighted", "F1 macro", "AUC weighted", "ECE"];
                println!(
                    "{}-fold cross-validation: mean ± sample std (divisor k − 1) over the folds, \
                     and the 95 % confidence interval of the mean (Student's t, k − 1 degrees \
                     of freedom; the folds share training images, so it is if anything too \
                     narrow):",
                    k.folds
                );
                for (j, n) in names.iter().enumerate() {
                    let (m, ci) = (k.mean[j], k.ci95[j]);
                    println!(
                        "  {n}: {m:.4} ± {:.4}, 95 % CI [{:.4}, {:.4}]",
                        k.std[j],
                        m - ci,
                        m + ci
                    );
                }
                let temperatures: Vec<String> = k
                    .temperatures
                    .iter()
                    .map(|t| t.map_or("none".into(), |t| format!("{t:.3}")))
                    .collect();
                println!(
                    "  softmax temperature per fold: {}",
                    temperatures.join(", ")
                );
                for c in &k.per_category {
                    println!("  {}, pooled over the folds", c.summary_line());
                }
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_loss_parameter_without_its_loss_is_refused() {
        let check = |argv: &[&str]| {
            let matches = Args::command().try_get_matches_from(argv).expect("parses");
            let args = Args::from_arg_matches(&matches).expect("parses");
            unused_loss_flag(&matches, args.loss)
        };
        let e = check(&["train", "--dice-weight", "0.5"]).expect("refused");
        assert!(
            e.contains("--dice-weight") && e.contains("--loss ce-dice"),
            "{e}"
        );
        let e = check(&["train", "--loss", "dice", "--focal-gamma", "3"]).expect("refused");
        assert!(
            e.contains("--focal-gamma") && e.contains("--loss focal"),
            "{e}"
        );
        assert_eq!(
            check(&["train", "--loss", "ce-dice", "--dice-weight", "0.5"]),
            None
        );
        assert_eq!(
            check(&["train", "--loss", "focal", "--focal-gamma", "3"]),
            None
        );
        assert_eq!(check(&["train"]), None); // the defaults are no request
    }

    /// `--synth-count` / `--synth-size` with `--data` were ignored without a word: the run
    /// trained on the folder, whatever count was asked for.
    #[test]
    fn synthetic_data_flags_conflict_with_a_data_folder() {
        let e = Args::try_parse_from(["train", "--data", "d", "--synth-count", "3"])
            .unwrap_err()
            .to_string();
        assert!(e.contains("--synth-count") && e.contains("--data"), "{e}");
        let e = Args::try_parse_from(["train", "--data", "d", "--synth-size", "64"])
            .unwrap_err()
            .to_string();
        assert!(e.contains("--synth-size") && e.contains("--data"), "{e}");
        assert!(Args::try_parse_from(["train", "--synth-count", "30"]).is_ok());
    }

    /// A negative number after a flag is the flag's value, which the job's checks then
    /// refuse by the flag's name; clap took it for an unknown option ("unexpected
    /// argument '-1' found"), which named no flag.
    #[test]
    fn a_negative_number_is_the_flag_s_value() {
        let args = Args::try_parse_from(["train", "--lr", "-1"]).map_err(|e| e.to_string());
        assert_eq!(args.map(|a| a.lr), Ok(-1.0));
        let args = Args::try_parse_from(["train", "--l2", "-0.5"]).map_err(|e| e.to_string());
        assert_eq!(args.map(|a| a.l2), Ok(-0.5));
        let args =
            Args::try_parse_from(["train", "--dice-weight", "-2"]).map_err(|e| e.to_string());
        assert_eq!(args.map(|a| a.dice_weight), Ok(-2.0));
        let e = Args::try_parse_from(["train", "--epochs", "-3"])
            .unwrap_err()
            .to_string();
        assert!(e.contains("'-3' for '--epochs"), "{e}");
    }
}
