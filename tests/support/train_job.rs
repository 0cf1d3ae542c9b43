//! A tiny train job and its folders, for the workspace's train tests (`train_checks`,
//! `train_resume_checks`).
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use xray_seg::train::{run, TrainJob};

/// A fresh temporary folder for one test.
pub fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("xray-seg-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A one-epoch job of a width-2 network at 32 px on 14 synthetic 40 px images, in `run_dir`.
pub fn tiny_job(run_dir: PathBuf) -> TrainJob {
    TrainJob {
        run_dir,
        size: 32,
        width: 2,
        epochs: 1,
        batch: 4,
        patience: 1,
        synth_count: 14,
        synth_size: 40,
        progress: false,
        overlays: 0,
        calibrate: false,
        seed: 5,
        ..TrainJob::default()
    }
}

/// A synthetic labelled folder of 14 images in `dir/data`.
pub fn synthetic_folder(dir: &Path) -> PathBuf {
    let data = dir.join("data");
    xray_data::synth::generate_dataset(&data, 14, 40, 9).unwrap();
    data
}

/// The error `run(job)` fails with (the outcome of a run is too long to print).
pub fn error_of(job: &TrainJob, what: &str) -> String {
    match run(job) {
        Ok(_) => panic!("{what}: the run succeeded"),
        Err(e) => e.to_string(),
    }
}

/// Asserts that `job` fails naming `needle` and that no training happened.
pub fn fails_before_training(job: &TrainJob, needle: &str) -> String {
    let err = error_of(job, "bad data must be an error");
    assert!(err.contains(needle), "{needle:?} not in: {err}");
    for trained in ["log.jsonl", "last", "model.safetensors"] {
        assert!(
            !job.run_dir.join(trained).exists(),
            "{trained} exists: training ran before the data was checked ({err})"
        );
    }
    err
}

/// Copies the folder `from` to `to`, recursively.
pub fn copy_folder(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_folder(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), target).unwrap();
        }
    }
}
