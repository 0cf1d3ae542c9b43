//! A resume that passes its checks and trains, on a run folder the input damages. A tiny real
//! run (`tests/support/run_resume_fixture.rs`: a two-epoch run stopped after its first, six
//! synthetic 32×32 images) is made once per process in `$TMPDIR/xray-fuzz-run-resume-<pid>/run`
//! and restored before every input (all but its `data/`); its resume (`xray_seg::train::run`
//! with `resume`, the run's own options) passes every check and trains epoch 1. The first byte
//! mod 8 picks what the rest does:
//!
//! - 0: replaces `last/trainer_state.json`; 1 `log.jsonl`; 4 `last/config.json`; 5
//!   `best/config.json`; 6 `train_job.json`;
//! - 2: edits the real `last/optimizer.safetensors`, and 3 the real `last/model.safetensors`
//!   with the `weights_digest` taken out of `last/config.json` (so that edits reach the
//!   values training starts from): `run_weights`' edits, an optional truncation then 5-byte
//!   patches (`resume_check::edited`);
//! - 7: removes the file or folder the next byte picks from [`REMOVABLE`].
//!
//! `RUN_RESUME_MODE=<0..=7>` in the environment runs every input in that mode instead.
//!
//! Asserts: no panic; a refusal names a file or folder of the run; after a refusal every file
//! outside `data/` is as it was, but a log trimmed to some of its lines and a `best/` caught up
//! with the trainer state; after `Ok`: no temporary file left; the trainer state, the run's
//! `config.json`, `best/` and the summary agree on the epochs run and the best epoch, which
//! the run has trained; the log keeps lines of the old one for the epochs before the resumed
//! one and then this call's records, consecutive (the whole log consecutive where the old one
//! was); the final model, `last/` and `best/` load (digest, finite values); `train_job.json`
//! records the call's options.
#![no_main]
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use xray_seg::train::{run, RunOptions, TrainJob, RUN_OPTIONS_FILE};

mod byte_edits;
#[path = "../../tests/support/run_resume_fixture.rs"]
mod fixture;
mod resume_check;
mod run_folder;
use byte_edits::edited;
use resume_check::{check_trained_split, no_leftovers, remove};
use run_folder::{fresh_run, restore, snapshot, stopped_at, without_digest};

const STATE: &str = "last/trainer_state.json";
const LOG: &str = "log.jsonl";
const OPTIMIZER: &str = "last/optimizer.safetensors";
const MODEL: &str = "last/model.safetensors";
const LAST_CONFIG: &str = "last/config.json";
const BEST_CONFIG: &str = "best/config.json";

/// Mode 7's choices.
const REMOVABLE: [&str; 10] = [
    LOG,
    "best",
    OPTIMIZER,
    MODEL,
    STATE,
    LAST_CONFIG,
    "last",
    RUN_OPTIONS_FILE,
    "train_config.json",
    BEST_CONFIG,
];

struct Fixture {
    run_dir: PathBuf,
    job: TrainJob,
    /// Every file of the run outside `data/`: path relative to the run, contents.
    files: BTreeMap<PathBuf, Vec<u8>>,
    /// `last/config.json` without its `weights_digest` (mode 3).
    config_without_digest: Vec<u8>,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let (run_dir, job, files) = fresh_run("run-resume", fixture::make_resumable);
        let config_without_digest = without_digest(&files[Path::new(LAST_CONFIG)]);
        Fixture {
            run_dir,
            job,
            files,
            config_without_digest,
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let mode = std::env::var("RUN_RESUME_MODE")
        .ok()
        .and_then(|m| m.parse::<u8>().ok())
        .unwrap_or(mode)
        % 8;
    let f = fixture();
    let original = |rel: &str| &f.files[Path::new(rel)];
    let mut changed = BTreeMap::new();
    let mut put = |rel: &str, bytes: Vec<u8>| {
        changed.insert(PathBuf::from(rel), bytes);
    };
    match mode {
        0 => put(STATE, rest.to_vec()),
        1 => put(LOG, rest.to_vec()),
        2 => put(OPTIMIZER, edited(original(OPTIMIZER), rest)),
        3 => {
            put(MODEL, edited(original(MODEL), rest));
            put(LAST_CONFIG, f.config_without_digest.clone());
        }
        4 => put(LAST_CONFIG, rest.to_vec()),
        5 => put(BEST_CONFIG, rest.to_vec()),
        6 => put(RUN_OPTIONS_FILE, rest.to_vec()),
        _ => {}
    }
    restore(&f.run_dir, &f.files, &changed);
    if mode == 7 {
        let Some(&pick) = rest.first() else {
            return;
        };
        remove(&f.run_dir, REMOVABLE[usize::from(pick) % REMOVABLE.len()]);
    }
    let mut before = BTreeMap::new();
    snapshot(&f.run_dir, Path::new(""), &mut before);

    let result = run(&f.job);
    let mut after = BTreeMap::new();
    snapshot(&f.run_dir, Path::new(""), &mut after);
    no_leftovers(&after, "after a resume");
    let run_dir = f.run_dir.display().to_string();
    let log_before = before
        .get(Path::new(LOG))
        .map(|b| String::from_utf8_lossy(b).into_owned());
    match result {
        Err(e) => {
            let e = e.to_string();
            assert!(e.contains(&run_dir), "a refusal that names no file: {e}");
            if let Some(n) = stopped_at(&e) {
                assert!(n > f.job.epochs, "{e}");
            }
            for (rel, bytes) in &after {
                if before.get(rel) == Some(bytes) {
                    continue;
                }
                if rel == Path::new(LOG) {
                    // Trimmed: some of its lines, in order.
                    let old = log_before.as_deref().unwrap_or("");
                    let mut old = old.lines();
                    for line in String::from_utf8_lossy(bytes).lines() {
                        assert!(old.any(|o| o == line), "{e}: log line {line:?} added");
                    }
                } else {
                    assert!(
                        rel.starts_with("best"),
                        "a refused resume changed {}: {e}",
                        rel.display()
                    );
                }
            }
            for rel in before.keys() {
                assert!(
                    after.contains_key(rel) || rel.starts_with("best"),
                    "a refused resume removed {}: {e}",
                    rel.display()
                );
            }
        }
        Ok((outcomes, kfold)) => {
            assert!(kfold.is_none() && outcomes.len() == 1);
            let summary = &outcomes[0].summary;
            check_trained_split(&f.run_dir, log_before.as_deref(), summary);
            let stored: RunOptions =
                serde_json::from_slice(&after[Path::new(RUN_OPTIONS_FILE)]).unwrap();
            assert_eq!(stored, RunOptions::of(&f.job));
        }
    }
});
