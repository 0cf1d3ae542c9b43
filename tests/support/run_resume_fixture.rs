//! The tiny train runs behind the `run_resume` and `run_kfold` fuzz targets
//! (`fuzz/fuzz_targets/`) and their seed writer (`tests/run_resume_fuzz_seeds.rs`), which all
//! include this file, so that the seeds are files of the runs the targets resume.
//!
//! Both runs: XNet of base width 2 on six synthetic 32×32 images, with the default
//! augmentation, patience 5 (so that a resume asking for more epochs trains them).
//!
//! - [`make_resumable`]: one split, a run of two epochs stopped after its first (as a process
//!   killed during epoch 1 leaves it): its resume ([`resume_job`]) passes every check and
//!   trains epoch 1.
//! - [`make_kfold`]: two folds (`fold-0/`, `fold-1/`, `kfold.json`) of one epoch each; its
//!   resume ([`kfold_job`] with `resume` and 1 or 2 epochs) evaluates the folds again or
//!   trains each one epoch more, then writes `kfold.json` again.
#![allow(dead_code)] // each includer uses its part

use std::path::{Path, PathBuf};

use xnet_model::checkpoint;
use xnet_model::infer::FlipAverage;
use xnet_model::optim::{LrSchedule, LrScheduler};
use xnet_model::train::{TrainConfig, TrainState};
use xray_seg::train::{run, RunOptions, TrainJob, RUN_OPTIONS_FILE};

/// The job of both runs in `run_dir`, with `epochs`.
fn tiny_job(run_dir: PathBuf, epochs: usize) -> TrainJob {
    TrainJob {
        run_dir,
        size: 32,
        width: 2,
        epochs,
        batch: 4,
        patience: 5,
        synth_count: 6,
        synth_size: 32,
        flip_average: FlipAverage::Off,
        calibrate: false,
        progress: false,
        overlays: 0,
        ..TrainJob::default()
    }
}

/// The resume of [`make_resumable`]'s run: its own options (two epochs), `resume` set.
pub fn resume_job(run_dir: PathBuf) -> TrainJob {
    TrainJob {
        resume: true,
        ..tiny_job(run_dir, 2)
    }
}

/// The k-fold job of [`make_kfold`]'s run with `epochs` (it was trained with 1).
pub fn kfold_job(run_dir: PathBuf, epochs: usize, resume: bool) -> TrainJob {
    TrainJob {
        kfold: Some(2),
        resume,
        ..tiny_job(run_dir, epochs)
    }
}

/// Removes the files of `dir` that no resume reads (the report, plots, per-category scores),
/// keeping the folders and `keep`.
fn prune(dir: &Path, keep: &[&str]) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if path.is_file() && !keep.contains(&name.as_str()) {
            std::fs::remove_file(&path).unwrap();
        }
    }
}

/// Files of a split's folder a resume reads or keeps.
const SPLIT_FILES: [&str; 5] = [
    "log.jsonl",
    "train_config.json",
    checkpoint::WEIGHTS_FILE,
    checkpoint::CONFIG_FILE,
    RUN_OPTIONS_FILE,
];

/// Trains one epoch of [`resume_job`]'s run into `run_dir` (which must not hold one), then
/// makes it what a two-epoch run stopped during its second epoch leaves: `train_job.json`,
/// `train_config.json` and the trainer state's scheduler of the two-epoch job (the cosine at
/// epoch 1 of 2), and no final model (`config.json`, `model.safetensors`), report or plots.
pub fn make_resumable(run_dir: &Path) -> TrainJob {
    let job = resume_job(run_dir.to_path_buf());
    let first = TrainJob {
        epochs: 1,
        resume: false,
        ..job.clone()
    };
    run(&first).unwrap_or_else(|e| panic!("training the fixture run: {e}"));
    prune(
        run_dir,
        &["log.jsonl", "train_config.json", RUN_OPTIONS_FILE],
    );
    let options = RunOptions::of(&job);
    checkpoint::write_json_atomic(&run_dir.join(RUN_OPTIONS_FILE), &options).unwrap();
    let schedule = LrSchedule::Cosine {
        t_max: job.epochs,
        eta_min: job.lr * 0.05,
    };
    let state_path = run_dir.join("last/trainer_state.json");
    let mut state: TrainState =
        serde_json::from_slice(&std::fs::read(&state_path).unwrap()).unwrap();
    assert_eq!(state.next_epoch, 1);
    state.scheduler = LrScheduler::resumed_at(schedule.clone(), job.lr, 1).unwrap();
    checkpoint::write_json_atomic(&state_path, &state).unwrap();
    let config_path = run_dir.join("train_config.json");
    let mut config: TrainConfig =
        serde_json::from_slice(&std::fs::read(&config_path).unwrap()).unwrap();
    config.epochs = job.epochs;
    config.schedule = schedule;
    checkpoint::write_json_atomic(&config_path, &config).unwrap();
    job
}

/// Trains [`kfold_job`]'s run (one epoch) into `run_dir` (which must not hold one), then
/// removes what no resume reads (reports, plots) from each fold.
pub fn make_kfold(run_dir: &Path) -> TrainJob {
    let job = kfold_job(run_dir.to_path_buf(), 1, false);
    run(&job).unwrap_or_else(|e| panic!("training the fixture run: {e}"));
    prune(run_dir, &["kfold.json", RUN_OPTIONS_FILE]);
    for fold in ["fold-0", "fold-1"] {
        prune(&run_dir.join(fold), &SPLIT_FILES);
    }
    job
}
