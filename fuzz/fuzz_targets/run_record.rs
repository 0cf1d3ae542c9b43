//! A run folder's records on arbitrary bytes, through the public resume check
//! `xray_seg::train::run` with `resume` set. A tiny real run (`tests/support/
//! run_record_fixture.rs`: two epochs, six synthetic 32×32 images) is trained once per process
//! into `$TMPDIR/xray-fuzz-run-record-<pid>/run` and restored before every input (all but its
//! `data/`, which a resume only reads). The first byte mod 4 picks the file the rest replaces:
//! 0 `train_job.json`; 1 `last/trainer_state.json`; 2 `log.jsonl`; 3 `config.json`, with
//! `train_job.json` removed (a run stored before that record, whose checkpoint metadata gives
//! the seed and size). The resume asks for one epoch, so a folder that passes every check
//! stops with "has trained 2 epochs already" before training or recording anything; a state
//! (mode 1) that parses with a next epoch of 0 or 1 would train, and is skipped.
//!
//! Asserts: no panic; never `Ok`; `train_job.json` is left as it was (a resume that fails
//! records nothing); (mode 0) the resume stops at the run's epochs exactly when the record
//! parses as `RunOptions` without a difference from this call's; (mode 3) a refusal names the
//! seed or size, and a stop follows a config whose seed, if it has one, is the call's; a stop
//! reports the state's next epoch (2 for the run's own state) and leaves a log whose every
//! line is an epoch record before it; a log refused for a damaged line is left as it was.
#![no_main]
use std::collections::BTreeMap;
use std::fs;
use std::path::PathBuf;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use serde::Deserialize;
use xnet_model::checkpoint;
use xnet_model::train::TrainState;
use xray_seg::train::{run, RunOptions, RUN_OPTIONS_FILE};

#[path = "../../tests/support/run_record_fixture.rs"]
mod fixture;
mod run_folder;
use run_folder::{fresh_run, restore, stopped_at};

struct Fixture {
    run_dir: PathBuf,
    /// Every file of the run outside `data/`: path relative to the run, contents.
    files: BTreeMap<PathBuf, Vec<u8>>,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let (run_dir, _, files) = fresh_run("run-record", fixture::make_fixture);
        Fixture { run_dir, files }
    })
}

/// A log line as `Trainer::resume` reads it.
#[derive(Deserialize)]
struct Epoch {
    epoch: usize,
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, record)) = data.split_first() else {
        return;
    };
    let mode = usize::from(mode % 4);
    let text = std::str::from_utf8(record).ok();
    if mode == 1 {
        let state = text.and_then(|t| serde_json::from_str::<TrainState>(t).ok());
        if state.is_some_and(|s| s.next_epoch <= 1) {
            return; // the resume would pass and train
        }
    }
    let f = fixture();
    restore(&f.run_dir, &f.files, &BTreeMap::new());
    let job = fixture::resume_job(f.run_dir.clone());
    let record_path = f.run_dir.join(fixture::RECORDS[mode]);
    fs::write(&record_path, record).unwrap();
    let options_path = f.run_dir.join(RUN_OPTIONS_FILE);
    let options_before = if mode == 3 {
        fs::remove_file(&options_path).unwrap();
        None
    } else {
        Some(fs::read(&options_path).unwrap())
    };

    let e = match run(&job) {
        Ok(_) => panic!("the resume trained a run that has trained more epochs than it asks"),
        Err(e) => e.to_string(),
    };
    assert_eq!(
        fs::read(&options_path).ok(),
        options_before,
        "a failed resume changed {RUN_OPTIONS_FILE}: {e}"
    );
    let stopped = stopped_at(&e);
    match mode {
        0 => {
            let agrees = text
                .and_then(|t| serde_json::from_str::<RunOptions>(t).ok())
                .is_some_and(|s| s.differences(&RunOptions::of(&job)).is_empty());
            assert_eq!(stopped.is_some(), agrees, "{e}");
        }
        // Only the seed and size can differ: a refusal names one of them, and a stop
        // means the metadata's seed, where it has one, is the call's.
        3 if stopped.is_none() => assert!(
            e.contains("cannot resume") && (e.contains("--seed") || e.contains("--size")),
            "{e}"
        ),
        3 => {
            if let Ok(config) = checkpoint::read_config(&f.run_dir) {
                let seed = config.metadata.get("seed").and_then(|v| v.as_u64());
                assert!(seed.is_none_or(|s| s == job.seed), "{e}");
            }
        }
        _ => {}
    }
    if let Some(n) = stopped {
        let expected = match mode {
            1 => {
                serde_json::from_str::<TrainState>(text.unwrap())
                    .unwrap()
                    .next_epoch
            }
            _ => 2,
        };
        assert_eq!(n, expected, "{e}");
        let log = fs::read_to_string(f.run_dir.join("log.jsonl")).unwrap();
        for line in log.lines() {
            let r: Epoch =
                serde_json::from_str(line).unwrap_or_else(|err| panic!("{line:?}: {err}"));
            assert!(r.epoch < n, "log line {line:?} after a resume at epoch {n}");
        }
    } else if mode == 2 && e.contains("is not an epoch record") {
        assert_eq!(
            fs::read(&record_path).unwrap(),
            record,
            "a refused log was changed"
        );
    }
});
