//! Train and evaluate SegNet, U-Net, XNet and DeepLab-lite (with up-sampling variants) and
//! the classical no-network baseline under the same data, budget and seed.
//!
//! ```text
//! cargo run --release --example compare -- --epochs 12 --name compare
//! ```
//! Prints what every row shares (the data, the one split and its sizes, the seed, input size,
//! width and budget), where it was timed (CPU, worker threads, kernels, release or debug
//! build: a debug build's timing columns are not comparable with a release build's) and a
//! table (parameters, GFLOP per network pass, epochs trained, the best epoch whose weights
//! were scored, train time, inference images/s, weighted F1 with its 95 % bootstrap interval
//! over the scored images, AUC, ECE and the softmax temperature they were taken at), and
//! writes them to
//! `runs/<name>/compare.md` (the rows alone to `compare.json`, every shared option and the
//! machine to `compare_settings.json`). Every network trains the whole budget (the patience
//! is `--epochs`) and is scored with the weights of its epoch of lowest validation loss.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use xray_seg::compare::{default_variants, run, to_markdown};
use xray_seg::train::{check_run_name, Arch, TrainJob};

#[derive(Parser, Debug)]
#[command(
    about = "Compare architectures and the classical baseline on the same data and budget",
    // A negative number after a flag is its value (refused, by the flag's name, where it
    // cannot be), not an unknown option.
    allow_negative_numbers = true
)]
struct Args {
    /// Dataset folder; synthetic data when absent.
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
    /// Run name: outputs go to runs/<name>/ (a rerun under the same name replaces them; without --data it reuses runs/<name>/data, which must hold --synth-count images generated with the same --seed; a train run's folder is refused).
    #[arg(long, default_value = "compare")]
    name: String,
    /// Directory that holds the runs.
    #[arg(long, default_value = "runs")]
    runs: PathBuf,
    /// Only these families (comma separated: xnet,unet,segnet,deeplab).
    #[arg(long, value_delimiter = ',')]
    models: Vec<Arch>,
    /// Network input side.
    #[arg(long, default_value_t = 128)]
    size: u32,
    /// Channels of the first level of every network.
    #[arg(long, default_value_t = 8)]
    width: usize,
    /// Epoch budget of every network.
    #[arg(long, default_value_t = 12)]
    epochs: usize,
    /// Batch size.
    #[arg(long, default_value_t = 8)]
    batch: usize,
    /// Learning rate.
    #[arg(long, default_value_t = 2e-3)]
    lr: f64,
    /// Flip averaging at evaluation (off, horizontal, horizontal-vertical), the same for
    /// every network; off keeps the inference rate a single pass's.
    #[arg(long, value_name = "FLIPS", default_value_t = xnet_model::infer::FlipAverage::Off)]
    flip_average: xnet_model::infer::FlipAverage,
    /// Synthetic images when no --data is given.
    #[arg(long, default_value_t = 120, conflicts_with = "data")]
    synth_count: usize,
    /// Seed.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Device: cpu, cuda (the first GPU; gpu is taken as the same) or cuda:N (CUDA needs a
    /// build with --features cuda).
    #[arg(long, default_value = "cpu")]
    device: String,
    /// No progress bars.
    #[arg(long)]
    quiet: bool,
}

fn main() -> ExitCode {
    xnet_model::runtime::exit_quietly_on_closed_pipe();
    let args = Args::parse();
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
    if let Err(e) = check_run_name(&args.name) {
        eprintln!("error: {e}");
        return ExitCode::from(2);
    }
    let job = TrainJob {
        data: args.data.clone(),
        run_dir: args.runs.join(&args.name),
        size: args.size,
        width: args.width,
        epochs: args.epochs,
        batch: args.batch,
        lr: args.lr,
        patience: args.epochs,
        flip_average: args.flip_average,
        seed: args.seed,
        invert: args.invert,
        allow_rgb: args.allow_rgb,
        synth_count: args.synth_count,
        progress: !args.quiet,
        device,
        ..TrainJob::default()
    };
    let variants: Vec<_> = default_variants()
        .into_iter()
        .filter(|v| args.models.is_empty() || args.models.contains(&v.arch))
        .collect();
    match run(&job, &variants) {
        Ok(rows) => {
            // compare.md: what every row shares, then the tables.
            let md = job.run_dir.join("compare.md");
            match std::fs::read_to_string(&md) {
                Ok(text) => print!("{text}"),
                Err(_) => println!("{}", to_markdown(&rows)),
            }
            println!("written to {}", md.display());
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

    /// `--synth-count` / `--synth-size` with `--data` were ignored without a word: the run
    /// trained on the folder, whatever count was asked for.
    #[test]
    fn synthetic_data_flags_conflict_with_a_data_folder() {
        let e = Args::try_parse_from(["compare", "--data", "d", "--synth-count", "3"])
            .unwrap_err()
            .to_string();
        assert!(e.contains("--synth-count") && e.contains("--data"), "{e}");
        assert!(Args::try_parse_from(["compare", "--synth-count", "30"]).is_ok());
    }

    /// A negative number after a flag is the flag's value, which the job's checks then
    /// refuse by the flag's name; clap took it for an unknown option ("unexpected
    /// argument '-1' found"), which named no flag.
    #[test]
    fn a_negative_number_is_the_flag_s_value() {
        let args = Args::try_parse_from(["compare", "--lr", "-1"]).map_err(|e| e.to_string());
        assert_eq!(args.map(|a| a.lr), Ok(-1.0));
        let e = Args::try_parse_from(["compare", "--epochs", "-3"])
            .unwrap_err()
            .to_string();
        assert!(e.contains("'-3' for '--epochs"), "{e}");
    }
}
