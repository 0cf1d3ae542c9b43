//! A run whose files cannot be written (a full disk) stops with an error that names the file,
//! leaves its last whole checkpoint in place and no temporary file behind; a resume while the
//! disk is still full fails the same way, on its own writes; and a resume once there is room
//! goes on exactly as a run that was never stopped.
//!
//! The failed writes are real ones: the process's file-size limit (`RLIMIT_FSIZE`) makes a
//! write past it fail with `EFBIG` after a short write, as a full disk fails one with
//! `ENOSPC`. The limit holds for the whole process, so this test crate has a single test.
#![cfg(target_os = "linux")]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device};
use candle_nn::{VarBuilder, VarMap};
use xnet_model::train::Trainer;

mod file_size_limit;
mod toy_trainer;

use file_size_limit::limit_file_size;
use toy_trainer::{config, read_log, saved_weights, sources, temp_dir, weights, Toy};

/// Trains the toy network in `dir` up to `epochs` epochs, resuming what is there.
fn train_to(dir: &Path, epochs: usize) -> xnet_model::Result<VarMap> {
    let dev = Device::Cpu;
    let (mut train, mut val) = sources();
    let vm = VarMap::new();
    let toy = Toy::new(VarBuilder::from_varmap(&vm, DType::F32, &dev));
    let mut trainer = Trainer::new(&toy, &vm, config(epochs), &dev)?.with_checkpoint_dir(dir);
    trainer.resume()?;
    trainer.fit(&mut train, Some(&mut val))?;
    drop(trainer);
    Ok(vm)
}

/// Every file under `dir`, with its size.
fn files(dir: &Path) -> Vec<(PathBuf, u64)> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            found.extend(files(&path));
        } else {
            let size = std::fs::metadata(&path).unwrap().len();
            found.push((path, size));
        }
    }
    found
}

/// Fails when a temporary file of an atomic write is left anywhere under `dir`.
fn assert_no_temporaries(dir: &Path, case: &str) {
    let leftovers: Vec<PathBuf> = files(dir)
        .into_iter()
        .map(|(p, _)| p)
        .filter(|p| p.to_string_lossy().contains(".tmp-"))
        .collect();
    assert!(
        leftovers.is_empty(),
        "{case}: temporary files left behind: {leftovers:?}"
    );
}

/// Epochs a run has trained when its files stop fitting on the disk: enough that the log
/// (one line of about 170 bytes per epoch) outgrows the run's config, written before it.
const BEFORE: usize = 3;

#[test]
fn a_run_that_runs_out_of_disk_space_loses_nothing_and_resumes_exactly() {
    let reference_dir = temp_dir("io-reference");
    let reference = weights(&train_to(&reference_dir, BEFORE + 2).unwrap());
    let reference_best = saved_weights(&reference_dir.join("best"));
    // A limit one byte below each file's size in a finished run: the next epoch's writes then
    // fail at each file that is the first, in the order they are written, to outgrow it (the
    // run's config at the start, each file of `last/`). `None`: a limit that the next log line
    // crosses, so that it is written only in part.
    let limits: BTreeSet<Option<u64>> = [Some(0), None]
        .into_iter()
        .chain(
            files(&reference_dir)
                .iter()
                .map(|(_, s)| Some(s.saturating_sub(1))),
        )
        .collect();
    let mut failed_files = BTreeSet::new();
    for limit in limits {
        let dir = temp_dir(&format!("io-limit-{limit:?}"));
        train_to(&dir, BEFORE).unwrap();
        let log_size = std::fs::metadata(dir.join("log.jsonl")).unwrap().len();
        limit_file_size(Some(limit.unwrap_or(log_size + 100)));
        let next = train_to(&dir, BEFORE + 1);
        limit_file_size(None);
        if let Err(e) = next {
            let message = e.to_string();
            assert!(
                message.contains(&*dir.to_string_lossy()),
                "limit {limit:?}: the error names no file of the run: {message}"
            );
            let file = message
                .split(':')
                .next()
                .and_then(|p| Path::new(p).file_name())
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            failed_files.insert(file);
        }
        assert_no_temporaries(&dir, &format!("limit {limit:?}"));
        // A resume while the disk is still full: it must fail on a write of its own (trimming
        // the log of the epoch the failed save left behind, finishing the swap, the first
        // epoch's log line), naming the file, and leave nothing that the resume with room
        // below would trip over.
        limit_file_size(Some(0));
        let still_full = train_to(&dir, BEFORE + 2);
        limit_file_size(None);
        match still_full {
            Ok(_) => panic!("limit {limit:?}: a resume with no room wrote nothing"),
            Err(e) => assert!(
                e.to_string().contains(&*dir.to_string_lossy()),
                "limit {limit:?}: the full-disk resume's error names no file of the run: {e}"
            ),
        }
        assert_no_temporaries(&dir, &format!("limit {limit:?}, resumed without room"));
        // Room again: the run goes on to its end exactly as one that never stopped.
        let resumed = weights(&train_to(&dir, BEFORE + 2).unwrap());
        assert_eq!(resumed, reference, "limit {limit:?}: final weights differ");
        assert_eq!(
            saved_weights(&dir.join("best")),
            reference_best,
            "limit {limit:?}: best/ differs"
        );
        let epochs: Vec<usize> = read_log(&dir).iter().map(|r| r.epoch).collect();
        assert_eq!(
            epochs,
            (0..BEFORE + 2).collect::<Vec<_>>(),
            "limit {limit:?}: log epochs"
        );
        let swap_folders: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| {
                let name = p.file_name().unwrap_or_default().to_string_lossy();
                name.contains(".partial") || name.contains(".previous")
            })
            .collect();
        assert!(
            swap_folders.is_empty(),
            "limit {limit:?}: swap folders left: {swap_folders:?}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
    // The limits reached the run's config, its log and the checkpoint's largest file.
    for expected in ["train_config.json", "log.jsonl", "optimizer.safetensors"] {
        assert!(
            failed_files.contains(expected),
            "no write of {expected} failed: {failed_files:?}"
        );
    }
    std::fs::remove_dir_all(&reference_dir).unwrap();
}
