//! A k-fold run's folder, damaged by the input, under the public `xray_seg::train::run` again.
//! A tiny real k-fold run (`tests/support/run_resume_fixture.rs`: two folds of one epoch on six
//! synthetic 32×32 images, `fold-0/`, `fold-1/` and `kfold.json`) is made once per process in
//! `$TMPDIR/xray-fuzz-run-kfold-<pid>/run` and restored before every input (all but its
//! `data/`). The first byte mod 6 picks what the rest does, in fold F of the second byte
//! (bit 0):
//!
//! - 0: replaces `kfold.json`; 1 `train_job.json`; 2 `fold-F/last/trainer_state.json`; 3
//!   `fold-F/log.jsonl`; 4 `fold-F/best/config.json`;
//! - 5: removes what the next byte picks from [`REMOVABLE`] (in fold F).
//!
//! The second byte (bits 1 and up, mod 3) picks the call: 0 a resume with the run's epochs
//! (nothing to train: each fold is evaluated again and `kfold.json` written again), 1 a resume
//! with one epoch more (each fold trains it), 2 the same job without `--resume` (a rerun,
//! which must refuse a folder holding a run).
//!
//! `RUN_KFOLD_MODE=<0..=5>` in the environment runs every input in that mode instead.
//!
//! Asserts: no panic; a refusal names a file or folder of the run; a rerun without resume is
//! refused and changes nothing; after a refused resume every file outside `data/` is as it
//! was but the folds' logs trimmed to some of their lines and their `best/` caught up with
//! their trainer state; after `Ok`: no temporary file left; `kfold.json` is the returned
//! summary, of two folds; each fold's trainer state, `config.json`, `best/` and summary agree
//! and its log ends with this call's records, consecutive (as `run_resume` checks one split);
//! the weights load; `train_job.json` records the call's options.
#![no_main]
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use xray_seg::train::{run, RunOptions, RUN_OPTIONS_FILE};

#[path = "../../tests/support/run_resume_fixture.rs"]
mod fixture;
mod resume_check;
mod run_folder;
use resume_check::{check_trained_split, no_leftovers, remove};
use run_folder::{fresh_run, restore, snapshot, stopped_at};

const KFOLD: &str = "kfold.json";

/// Mode 5's choices, in `fold-F/` but for `kfold.json` and `train_job.json`.
const REMOVABLE: [&str; 10] = [
    "",
    "last",
    "best",
    "log.jsonl",
    "model.safetensors",
    "config.json",
    "last/optimizer.safetensors",
    "last/trainer_state.json",
    "/kfold.json",
    "/train_job.json",
];

struct Fixture {
    run_dir: PathBuf,
    /// Every file of the run outside `data/`: path relative to the run, contents.
    files: BTreeMap<PathBuf, Vec<u8>>,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let (run_dir, _, files) = fresh_run("run-kfold", fixture::make_kfold);
        Fixture { run_dir, files }
    })
}

fuzz_target!(|data: &[u8]| {
    let [mode, select, rest @ ..] = data else {
        return;
    };
    let mode = std::env::var("RUN_KFOLD_MODE")
        .ok()
        .and_then(|m| m.parse::<u8>().ok())
        .unwrap_or(*mode)
        % 6;
    let fold = format!("fold-{}", select & 1);
    let call = (select >> 1) % 3;
    let f = fixture();
    let in_fold = |rel: &str| match rel.strip_prefix('/') {
        Some(top) => top.to_string(),
        None if rel.is_empty() => fold.clone(),
        None => format!("{fold}/{rel}"),
    };
    let mut changed = BTreeMap::new();
    let target = match mode {
        0 => Some(KFOLD.to_string()),
        1 => Some(RUN_OPTIONS_FILE.to_string()),
        2 => Some(in_fold("last/trainer_state.json")),
        3 => Some(in_fold("log.jsonl")),
        4 => Some(in_fold("best/config.json")),
        _ => None,
    };
    if let Some(rel) = &target {
        changed.insert(PathBuf::from(rel), rest.to_vec());
    }
    restore(&f.run_dir, &f.files, &changed);
    if mode == 5 {
        let Some(&pick) = rest.first() else {
            return;
        };
        remove(
            &f.run_dir,
            &in_fold(REMOVABLE[usize::from(pick) % REMOVABLE.len()]),
        );
    }
    let mut before = BTreeMap::new();
    snapshot(&f.run_dir, Path::new(""), &mut before);

    let job = fixture::kfold_job(f.run_dir.clone(), 1 + usize::from(call == 1), call != 2);
    let result = run(&job);
    let mut after = BTreeMap::new();
    snapshot(&f.run_dir, Path::new(""), &mut after);
    no_leftovers(&after, "after a k-fold call");
    let run_dir = f.run_dir.display().to_string();
    let log_of = |files: &BTreeMap<PathBuf, Vec<u8>>, fold: &str| {
        files
            .get(&Path::new(fold).join("log.jsonl"))
            .map(|b| String::from_utf8_lossy(b).into_owned())
    };
    match result {
        Err(e) => {
            let e = e.to_string();
            assert!(e.contains(&run_dir), "a refusal that names no file: {e}");
            if call == 2 {
                assert!(after == before, "a refused rerun changed the run: {e}");
                return;
            }
            if let Some(n) = stopped_at(&e) {
                assert!(n > job.epochs, "{e}");
            }
            for (rel, bytes) in &after {
                if before.get(rel) == Some(bytes) {
                    continue;
                }
                let in_best = rel
                    .components()
                    .nth(1)
                    .is_some_and(|c| c.as_os_str() == "best");
                if rel.ends_with("log.jsonl") {
                    let fold = rel.parent().unwrap().to_str().unwrap();
                    let old = log_of(&before, fold).unwrap_or_default();
                    let mut old = old.lines();
                    for line in String::from_utf8_lossy(bytes).lines() {
                        assert!(old.any(|o| o == line), "{e}: log line {line:?} added");
                    }
                } else {
                    assert!(in_best, "a refused resume changed {}: {e}", rel.display());
                }
            }
            for rel in before.keys() {
                let in_best = rel
                    .components()
                    .nth(1)
                    .is_some_and(|c| c.as_os_str() == "best");
                assert!(
                    after.contains_key(rel) || in_best,
                    "a refused resume removed {}: {e}",
                    rel.display()
                );
            }
        }
        Ok((outcomes, summary)) => {
            assert!(
                call != 2,
                "a rerun without --resume over a run was accepted"
            );
            let summary = summary.expect("a k-fold summary");
            assert_eq!((summary.folds, outcomes.len()), (2, 2));
            let written: serde_json::Value =
                serde_json::from_slice(&after[Path::new(KFOLD)]).unwrap();
            assert_eq!(written["folds"], 2);
            assert_eq!(
                written["per_fold"].as_array().map(Vec::len),
                Some(2),
                "{written}"
            );
            // Both parsed from text, so that the numbers round the same way.
            let returned: serde_json::Value =
                serde_json::from_str(&serde_json::to_string(&summary).unwrap()).unwrap();
            assert_eq!(written, returned, "kfold.json is not the returned summary");
            for (k, outcome) in outcomes.iter().enumerate() {
                let fold = format!("fold-{k}");
                assert_eq!(outcome.run_dir, f.run_dir.join(&fold));
                check_trained_split(
                    &outcome.run_dir,
                    log_of(&before, &fold).as_deref(),
                    &outcome.summary,
                );
            }
            let stored: RunOptions =
                serde_json::from_slice(&after[Path::new(RUN_OPTIONS_FILE)]).unwrap();
            assert_eq!(stored, RunOptions::of(&job));
        }
    }
});
