//! The tiny train run behind the `run_record` and `run_weights` fuzz targets
//! (`fuzz/fuzz_targets/`) and their seed writer (`tests/run_record_fuzz_seeds.rs`), which all
//! include this file, so that the seeds are files of the run the targets resume.
//!
//! The run: XNet of base width 2 on six synthetic 32×32 images, two epochs, with the default
//! augmentation (so that `train_job.json` records a pipeline). Its resume ([`resume_job`])
//! asks for one epoch, fewer than the run has trained: a resume that passes every check of
//! the run folder then stops with "has trained 2 epochs already" before it trains or
//! records anything.

use std::path::{Path, PathBuf};

use xnet_model::infer::FlipAverage;
use xray_seg::train::{run, TrainJob};

/// The files of a run folder that a resume reads, the fuzz target's modes in order:
/// `train_job.json`, the state and log `Trainer::resume` reads, and the run's `config.json`
/// (read for the seed and size of a run without `train_job.json`).
pub const RECORDS: [&str; 4] = [
    xray_seg::train::RUN_OPTIONS_FILE,
    "last/trainer_state.json",
    "log.jsonl",
    "config.json",
];

/// The job that trained the run in `run_dir`.
pub fn fixture_job(run_dir: PathBuf) -> TrainJob {
    TrainJob {
        run_dir,
        size: 32,
        width: 2,
        epochs: 2,
        batch: 4,
        patience: 1,
        synth_count: 6,
        synth_size: 32,
        flip_average: FlipAverage::Off,
        calibrate: false,
        progress: false,
        overlays: 0,
        ..TrainJob::default()
    }
}

/// The resume of the run in `run_dir`: the same options, one epoch.
pub fn resume_job(run_dir: PathBuf) -> TrainJob {
    TrainJob {
        epochs: 1,
        resume: true,
        ..fixture_job(run_dir)
    }
}

/// Trains the run into `run_dir` (which must not hold one), then removes what no resume
/// reads (the report, plots and per-category scores), keeping `train_job.json`, the log,
/// `last/`, `best/`, the final model and `data/`.
pub fn make_fixture(run_dir: &Path) -> TrainJob {
    let job = fixture_job(run_dir.to_path_buf());
    run(&job).unwrap_or_else(|e| panic!("training the fixture run: {e}"));
    for entry in std::fs::read_dir(run_dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let kept = ["data", "last", "best", "model.safetensors", "log.jsonl"]
            .contains(&name.as_str())
            || RECORDS.contains(&name.as_str());
        if !kept && path.is_file() {
            std::fs::remove_file(&path).unwrap();
        }
    }
    job
}
