//! What `run_resume`, `run_kfold`, `interrupted_save` and `interrupted_kfold_save` check of a
//! split's folder after a resume (a module of each, not a target of its own): the input's
//! edits, the log, the weights and the records.
use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use candle_core::Device;
use serde::Deserialize;
use xnet_model::checkpoint;
use xnet_model::train::{TrainState, TrainSummary};

/// Removes `rel` (a file or a folder) below `root`, if present.
#[allow(dead_code)] // `run_resume`'s and `run_kfold`'s
pub fn remove(root: &Path, rel: &str) {
    let path = root.join(rel);
    if path.is_dir() {
        fs::remove_dir_all(&path).unwrap();
    } else if path.exists() {
        fs::remove_file(&path).unwrap();
    }
}

/// A log line as `Trainer::resume` reads it.
#[derive(Deserialize)]
struct Epoch {
    epoch: usize,
}

/// The epochs of the log's lines (`None` for a line that is not an epoch record).
pub fn log_epochs(text: &str) -> Vec<Option<usize>> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str::<Epoch>(l).ok().map(|r| r.epoch))
        .collect()
}

/// No temporary file or unfinished folder swap is left below `dir` (`.x.tmp-<pid>`,
/// `<dir>.partial`, `<dir>.previous`).
pub fn no_leftovers(files: &BTreeMap<PathBuf, Vec<u8>>, what: &str) {
    for rel in files.keys() {
        let s = rel.to_string_lossy();
        assert!(
            !s.contains(".tmp-") && !s.contains(".partial") && !s.contains(".previous"),
            "{what}: {s} left behind"
        );
    }
}

/// After an `Ok` resume of the split in `dir` (relative `rel` in the snapshots) whose log
/// was `log_before`: the trainer state, the log, the weights and the checkpoint records agree
/// with `summary`.
pub fn check_trained_split(dir: &Path, log_before: Option<&str>, summary: &TrainSummary) {
    let state: TrainState =
        serde_json::from_slice(&fs::read(dir.join("last/trainer_state.json")).unwrap()).unwrap();
    assert_eq!(state.next_epoch, summary.epochs_run, "{}", dir.display());
    assert_eq!(state.best_epoch, summary.best_epoch, "{}", dir.display());
    // The log: the records kept of the old one (epochs before the resumed one), then this
    // call's, one per epoch, consecutive.
    // (A log the user removed stays absent when no epoch was trained.)
    let log = fs::read_to_string(dir.join("log.jsonl")).unwrap_or_default();
    let epochs = log_epochs(&log);
    let start = summary.epochs_run - summary.epochs.len();
    let (kept, new) = epochs.split_at(epochs.len() - summary.epochs.len());
    let new: Vec<usize> = new
        .iter()
        .map(|e| e.expect("a record of this call"))
        .collect();
    assert_eq!(
        new,
        (start..summary.epochs_run).collect::<Vec<_>>(),
        "{}: {log:?}",
        dir.display()
    );
    assert!(
        kept.iter().all(|e| e.is_some_and(|e| e < start)),
        "{}: kept log lines of later epochs: {log:?}",
        dir.display()
    );
    if let Some(before) = log_before {
        // Kept lines are the old log's, in order (a resume only drops lines).
        let old: Vec<&str> = before.lines().filter(|l| !l.trim().is_empty()).collect();
        let mut old = old.iter();
        for line in log.lines().take(kept.len()) {
            assert!(
                old.any(|o| *o == line),
                "{}: log line {line:?} is not the old log's",
                dir.display()
            );
        }
        // A consecutive old log stays consecutive.
        let old_epochs = log_epochs(before);
        if old_epochs.iter().copied().eq((0..start).map(Some)) {
            assert!(
                epochs.iter().copied().eq((0..summary.epochs_run).map(Some)),
                "{}: {log:?}",
                dir.display()
            );
        }
    }
    // Finite weights in the final model, `last/` and `best/` (`checkpoint::load` checks
    // them and the digest).
    for sub in ["", "last", "best"] {
        let d = dir.join(sub);
        if sub == "best" && !d.exists() {
            continue;
        }
        if let Err(e) = checkpoint::load(&d, &Device::Cpu) {
            panic!("{}: written weights do not load: {e}", d.display());
        }
    }
    // The best epoch is one the run has trained, and `best/` holds it.
    if let Some(b) = summary.best_epoch {
        assert!(b < summary.epochs_run, "{}: best epoch {b}", dir.display());
    }
    if dir.join("best").exists() {
        let best = checkpoint::read_config(&dir.join("best")).unwrap().metadata;
        assert_eq!(
            best.get("epoch").and_then(|v| v.as_u64()),
            summary.best_epoch.map(|e| e as u64),
            "{}: best/ and the trainer state",
            dir.display()
        );
    }
    let meta = checkpoint::read_config(dir).unwrap().metadata;
    assert_eq!(
        meta.get("epochs_run").and_then(|v| v.as_u64()),
        Some(summary.epochs_run as u64),
        "{}",
        dir.display()
    );
    assert_eq!(
        meta.get("best_epoch").and_then(|v| v.as_u64()),
        summary.best_epoch.map(|e| e as u64),
        "{}",
        dir.display()
    );
}
