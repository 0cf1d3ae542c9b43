//! A k-fold run resumed after a crash that stopped one of its folds in a checkpoint save (the
//! swap folders `checkpoint::replace_dir` leaves, as `interrupted_save` feeds them for one
//! split), in its final save (its model and config written beside its checkpoints, then the
//! run's `kfold.json`), or at its start (`train_config.json`), with two to four folds and the
//! folds before it finished.
//!
//! Made once per process in `$TMPDIR/xray-fuzz-interrupted-kfold-save-<pid>/k<K>/` for each
//! number of folds K (2, 3, 4), from `tests/support/run_resume_fixture.rs`'s k-fold job (six
//! synthetic 32×32 images, XNet of base width 2) with K folds:
//!
//! - `a/`: the job with two epochs, uninterrupted (the reference);
//! - `b/`: the job with one epoch;
//! - `r/`: a copy of `b/` made what a two-epoch run stopped after every fold's first epoch
//!   would leave (its records and schedulers the two-epoch job's, no fold's final model or
//!   `kfold.json`), and `e0/`, a copy of it resumed with two epochs;
//! - `e1/`: a copy of `b/` resumed with two epochs (each fold trains its second).
//!
//! The crashed fold F's saves are its epoch-0 ones (O: `r/`'s or `b/`'s) and its epoch-1
//! ones (N: `e0/`'s or `e1/`'s). Two ways the crash came about (byte 0 bit 2):
//!
//! - 0, a two-epoch run from the start: folds before F finished (`e0/`'s), F stopped, no
//!   fold after it, no `kfold.json`; an uninterrupted run ends with `e0/`'s folds up to F and
//!   `a/`'s after it (or with `a/`'s F where F is retrained from its start);
//! - 1, a finished one-epoch run resumed with two: folds before F finished their second epoch
//!   (`e1/`'s), F stopped, the folds after it and `kfold.json` still `b/`'s; an
//!   uninterrupted resume ends with `e1/`'s folds.
//!
//! The input: byte 0 mod 3 + 2 the number of folds (bit 2 the way above); byte 1 mod K the
//! fold F; byte 2 mod 9 the crash point in F: 0 to 6 `last/`'s save as `interrupted_save`
//! numbers them (byte 4 its aux byte), 7 the fold's final save after both checkpoints (byte 4
//! mod 5: 0 a temporary file of `model.safetensors` cut short, 1 the model written, 2 and a
//! temporary `config.json` cut short, 3 both written, 4 and, in the last fold, a temporary
//! `kfold.json` cut short), 8 the fold's start (a temporary `train_config.json` cut short;
//! with way 0 nothing else of the fold); byte 3 mod 7 the point of `best/`'s save (byte 5
//! its aux byte; past 0 only with `last/` at 6 is a crash's state, and only where epoch 1
//! improved F's best); byte 6: bit 0 the log holds epoch 1's record at `last/` point 0, bit 1
//! the older `<dir>.previous/` beside (`interrupted_save`'s), bits 2 and up mod 5 what only a
//! user's copy holds (`swap_state::users_copy`, byte 7 the pick, the rest the edits); then the
//! public resume (`xray_seg::train::run`) with two epochs.
//!
//! Asserts: no panic; a state a crash can leave resumes (`Ok`); after `Ok`: no swap folder or
//! temporary file left anywhere in the run, `kfold.json` is the returned summary of K folds,
//! each fold passes `run_resume`'s checks of a split (`resume_check::check_trained_split`),
//! `train_job.json` holds the call's options, and, where the training was found
//! deterministic, every fold's `last/`, `best/` and final model hold the weights of an
//! uninterrupted run, byte for byte; a refusal names a file or folder of the run, changes
//! nothing outside F's swap folders but logs trimmed to some of their lines and a `best/`
//! caught up, leaves in F's `last*` and `best*` only folders that were there before (or a
//! `best/` caught up from `last*`'s weights), and keeps a whole copy of each of F's saves
//! where one was there.
#![no_main]
use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use xnet_model::checkpoint;
use xnet_model::optim::{LrSchedule, LrScheduler};
use xnet_model::train::{TrainConfig, TrainState};
use xray_seg::train::{run, RunOptions, TrainJob, RUN_OPTIONS_FILE};

mod byte_edits;
#[path = "../../tests/support/run_resume_fixture.rs"]
mod fixture;
mod resume_check;
mod run_folder;
mod swap_state;
use resume_check::{check_trained_split, no_leftovers};
use run_folder::snapshot;
use swap_state::{
    assert_files_kept, assert_saves_kept, copy_tree, crash_state, users_copy, write_slots, Folder,
    Save, BEST_ORDER, LAST_ORDER, WEIGHTS,
};

/// Every file of a run outside `data/`: path relative to the run, contents.
type Files = BTreeMap<PathBuf, Vec<u8>>;

const KFOLD: &str = "kfold.json";
const LOG: &str = "log.jsonl";
const TRAIN_CONFIG: &str = "train_config.json";
/// The process id in the names of the temporary files a crashed process left (above Linux's
/// largest, so never a live one).
const DEAD_PID: u32 = 4_194_305;
/// The files of a fold's folder the fixture keeps (a resume reads or keeps them; the reports
/// and plots it writes again).
const FOLD_FILES: [&str; 4] = [LOG, TRAIN_CONFIG, WEIGHTS, "config.json"];

/// The runs of one number of folds.
struct Runs {
    folds: usize,
    /// The run resumed by every input (its `data/` is the fixture's).
    work: PathBuf,
    a: Files,
    b: Files,
    r: Files,
    e0: Files,
    e1: Files,
    /// Whether a second resume of `r/` trained `e0/`'s weights again (the byte comparisons
    /// run only then).
    deterministic: bool,
}

fn job(run_dir: PathBuf, folds: usize, epochs: usize, resume: bool) -> TrainJob {
    TrainJob {
        kfold: Some(folds),
        ..fixture::kfold_job(run_dir, epochs, resume)
    }
}

fn files_of(run_dir: &Path) -> Files {
    let mut files = Files::new();
    snapshot(run_dir, Path::new(""), &mut files);
    // What a resume reads or keeps: the folds' records, checkpoints and final models, and the
    // run's record and summary.
    files.retain(|rel, _| {
        let mut parts = rel.components().map(|c| c.as_os_str().to_string_lossy());
        match (parts.next(), parts.next(), parts.next()) {
            (Some(top), None, _) => top == RUN_OPTIONS_FILE || top == KFOLD,
            (Some(fold), Some(file), None) => {
                fold.starts_with("fold-") && FOLD_FILES.contains(&file.as_ref())
            }
            (Some(fold), Some(sub), Some(_)) => {
                fold.starts_with("fold-") && (sub == "last" || sub == "best")
            }
            _ => false,
        }
    });
    files
}

/// A copy of `from` (with its data) at `to`, resumed with two epochs.
fn resumed_copy(from: &Path, to: &Path, folds: usize) -> Files {
    let _ = fs::remove_dir_all(to);
    copy_tree(from, to);
    let (outcomes, _) = run(&job(to.to_path_buf(), folds, 2, true))
        .unwrap_or_else(|e| panic!("resuming {}: {e}", to.display()));
    assert_eq!(outcomes.len(), folds);
    files_of(to)
}

/// Makes the finished one-epoch run in `dir` what a two-epoch run stopped after each fold's
/// first epoch leaves (as `fixture::make_resumable` does for one split).
fn make_resumable(dir: &Path, folds: usize) {
    let two = job(dir.to_path_buf(), folds, 2, false);
    fs::remove_file(dir.join(KFOLD)).unwrap();
    checkpoint::write_json_atomic(&dir.join(RUN_OPTIONS_FILE), &RunOptions::of(&two)).unwrap();
    let schedule = LrSchedule::Cosine {
        t_max: two.epochs,
        eta_min: two.lr * 0.05,
    };
    for k in 0..folds {
        let fold = dir.join(format!("fold-{k}"));
        for file in [WEIGHTS, "config.json"] {
            fs::remove_file(fold.join(file)).unwrap();
        }
        let state_path = fold.join("last/trainer_state.json");
        let mut state: TrainState =
            serde_json::from_slice(&fs::read(&state_path).unwrap()).unwrap();
        assert_eq!(state.next_epoch, 1);
        state.scheduler = LrScheduler::resumed_at(schedule.clone(), two.lr, 1).unwrap();
        checkpoint::write_json_atomic(&state_path, &state).unwrap();
        let config_path = fold.join(TRAIN_CONFIG);
        let mut config: TrainConfig =
            serde_json::from_slice(&fs::read(&config_path).unwrap()).unwrap();
        config.epochs = two.epochs;
        config.schedule = schedule.clone();
        checkpoint::write_json_atomic(&config_path, &config).unwrap();
    }
}

fn make_runs(root: &Path, folds: usize) -> Runs {
    let dir = root.join(format!("k{folds}"));
    let path = |name: &str| dir.join(name);
    run(&job(path("a"), folds, 2, false)).unwrap_or_else(|e| panic!("the two-epoch run: {e}"));
    run(&job(path("b"), folds, 1, false)).unwrap_or_else(|e| panic!("the one-epoch run: {e}"));
    let e1 = resumed_copy(&path("b"), &path("e1"), folds);
    let _ = fs::remove_dir_all(path("r"));
    copy_tree(&path("b"), &path("r"));
    make_resumable(&path("r"), folds);
    let e0 = resumed_copy(&path("r"), &path("e0"), folds);
    let again = resumed_copy(&path("r"), &path("e0-again"), folds);
    let weights = |files: &Files| -> Vec<Vec<u8>> {
        files
            .iter()
            .filter(|(rel, _)| rel.ends_with(WEIGHTS))
            .map(|(_, b)| b.clone())
            .collect()
    };
    let deterministic = weights(&e0) == weights(&again);
    let a = files_of(&path("a"));
    eprintln!(
        "interrupted_kfold_save: {folds} folds: two resumes of r/ {} weights; e0/ and a/ \
         {}; e1/ and a/ {}",
        if deterministic {
            "trained the same"
        } else {
            "trained different"
        },
        if weights(&e0) == weights(&a) {
            "agree"
        } else {
            "differ"
        },
        if weights(&e1) == weights(&a) {
            "agree"
        } else {
            "differ"
        },
    );
    let work = path("work");
    let _ = fs::remove_dir_all(&work);
    copy_tree(&path("b"), &work);
    Runs {
        folds,
        work,
        a,
        b: files_of(&path("b")),
        r: files_of(&path("r")),
        e0,
        e1,
        deterministic,
    }
}

fn runs() -> &'static [Runs] {
    static RUNS: OnceLock<Vec<Runs>> = OnceLock::new();
    RUNS.get_or_init(|| {
        let root = std::env::temp_dir().join(format!(
            "xray-fuzz-interrupted-kfold-save-{}",
            std::process::id()
        ));
        let _ = fs::remove_dir_all(&root);
        (2..=4).map(|k| make_runs(&root, k)).collect()
    })
}

/// The files of `files` below `prefix` (a folder of the run), relative to it.
fn below(files: &Files, prefix: &str) -> Save {
    files
        .iter()
        .filter_map(|(rel, b)| {
            let rest = rel.strip_prefix(prefix).ok()?;
            (rest.components().count() == 1)
                .then(|| (rest.to_string_lossy().into_owned(), b.clone()))
        })
        .collect()
}

/// Whether `rel` lies in one of F's swap folders (`fold-F/last*`, `fold-F/best*`).
fn in_swap(rel: &Path, fold: &str) -> bool {
    let mut parts = rel.components().map(|c| c.as_os_str().to_string_lossy());
    parts.next().is_some_and(|f| f == fold)
        && parts.next().is_some_and(|s| {
            (s.starts_with("last") || s.starts_with("best")) && parts.next().is_some()
        })
}

/// Whether `rel` lies in some fold's `best/`.
fn in_best(rel: &Path) -> bool {
    rel.components()
        .nth(1)
        .is_some_and(|c| c.as_os_str() == "best")
}

/// The first `cut` sixteenths of `bytes`.
fn torn(bytes: &[u8], cut: u8) -> Vec<u8> {
    bytes[..bytes.len() * usize::from(cut % 16) / 16].to_vec()
}

fn temp_name(name: &str) -> String {
    format!(".{name}.tmp-{DEAD_PID}")
}

fuzz_target!(
    init: {
        runs();
    },
    |data: &[u8]| {
        let [shape, fold_byte, last_point, best_point, last_aux, best_aux, flags, pick, rest @ ..] =
            data
        else {
            return;
        };
        let runs = &runs()[usize::from(shape % 3)];
        let extended = shape & 4 != 0;
        let k = runs.folds;
        let f = usize::from(*fold_byte) % k;
        let fold = format!("fold-{f}");
        let (last_point, mut best_point) = (last_point % 9, best_point % 7);
        // Where the crashed fold's saves come from, and the finished folds' files.
        let (old, new) = if extended {
            (&runs.b, &runs.e1)
        } else {
            (&runs.r, &runs.e0)
        };
        let folder = |name: &str, order: &'static [&'static str]| Folder {
            order,
            old: below(old, &format!("{fold}/{name}")),
            new: below(new, &format!("{fold}/{name}")),
        };
        let (last_folder, best_folder) = (folder("last", &LAST_ORDER), folder("best", &BEST_ORDER));
        if best_folder.old == best_folder.new {
            best_point = 0; // epoch 1 did not improve: best/ was not saved again
        }
        // `last/`'s point in its swap: done before the final save, not begun at the start.
        let swap_point = match last_point {
            7 => 6,
            8 => 0,
            p => p,
        };
        let best_point = if swap_point == 6 { best_point } else { 0 };
        // At the start of a fresh run's fold, nothing of it is there yet.
        let fold_absent = last_point == 8 && !extended;
        let stale = flags & 2 != 0;
        let mut last = crash_state(&last_folder, swap_point, *last_aux, stale);
        let mut best = crash_state(&best_folder, best_point, *best_aux, stale);
        let new_log = (1..8).contains(&last_point) || (last_point == 0 && flags & 1 != 0);
        let (last_made, best_made) = (last.clone(), best.clone());
        if !fold_absent {
            users_copy(flags >> 2, *pick, rest, &mut last, &mut best);
        }
        let crash_made = last == last_made && best == best_made;

        // The run as the crash left it.
        let mut state = Files::new();
        let top = |files: &Files, name: &str| files.get(Path::new(name)).cloned();
        if let Some(b) = top(new, RUN_OPTIONS_FILE) {
            state.insert(RUN_OPTIONS_FILE.into(), b);
        }
        if extended {
            if let Some(b) = top(&runs.b, KFOLD) {
                state.insert(KFOLD.into(), b);
            }
        }
        let fold_files = |files: &Files, g: usize| -> Vec<(PathBuf, Vec<u8>)> {
            let prefix = format!("fold-{g}");
            files
                .iter()
                .filter(|(rel, _)| rel.starts_with(&prefix))
                .map(|(rel, b)| (rel.clone(), b.clone()))
                .collect()
        };
        for g in 0..f {
            state.extend(fold_files(new, g));
        }
        if extended {
            for g in f + 1..k {
                state.extend(fold_files(&runs.b, g));
            }
        }
        // The crashed fold, but its swap folders.
        let fold_dir = PathBuf::from(&fold);
        if !fold_absent {
            for (rel, b) in fold_files(old, f) {
                if !in_swap(&rel, &fold) {
                    state.insert(rel, b);
                }
            }
            if last_point != 8 {
                let config = new[&fold_dir.join(TRAIN_CONFIG)].clone();
                state.insert(fold_dir.join(TRAIN_CONFIG), config);
            }
            if new_log {
                state.insert(fold_dir.join(LOG), new[&fold_dir.join(LOG)].clone());
            }
        }
        if last_point == 8 {
            let config = &new[&fold_dir.join(TRAIN_CONFIG)];
            state.insert(fold_dir.join(temp_name(TRAIN_CONFIG)), torn(config, *last_aux));
        }
        if last_point == 7 {
            let variant = last_aux % 5;
            let model = &new[&fold_dir.join(WEIGHTS)];
            let config = &new[&fold_dir.join("config.json")];
            if variant == 0 {
                state.insert(fold_dir.join(temp_name(WEIGHTS)), torn(model, *best_aux));
            } else {
                state.insert(fold_dir.join(WEIGHTS), model.clone());
            }
            if variant == 2 {
                state.insert(fold_dir.join(temp_name("config.json")), torn(config, *best_aux));
            }
            if variant >= 3 {
                state.insert(fold_dir.join("config.json"), config.clone());
            }
            if variant == 4 && f + 1 == k {
                let summary = torn(&new[Path::new(KFOLD)], *best_aux);
                state.insert(PathBuf::from(temp_name(KFOLD)), summary);
            }
        }
        run_folder::restore(&runs.work, &state, &BTreeMap::new());
        if !fold_absent {
            write_slots(&runs.work, &format!("{fold}/last"), &last);
            write_slots(&runs.work, &format!("{fold}/best"), &best);
        }
        let mut before = Files::new();
        snapshot(&runs.work, Path::new(""), &mut before);

        let call = job(runs.work.clone(), k, 2, true);
        let result = run(&call);
        let mut after = Files::new();
        snapshot(&runs.work, Path::new(""), &mut after);
        let describe = || {
            format!(
                "{k} folds, {} run, fold {f}, last point {last_point} (aux {last_aux}), best \
                 point {best_point} (aux {best_aux}), log with epoch 1: {new_log}, user's copy: \
                 {}, before: {:?}",
                if extended { "an extended" } else { "a fresh" },
                !crash_made,
                before.keys().collect::<Vec<_>>()
            )
        };
        match result {
            Ok((outcomes, summary)) => {
                no_leftovers(&after, &describe());
                let summary = summary.expect("a k-fold summary");
                assert_eq!((summary.folds, outcomes.len()), (k, k), "{}", describe());
                let written: serde_json::Value =
                    serde_json::from_slice(&after[Path::new(KFOLD)]).unwrap();
                let returned: serde_json::Value =
                    serde_json::from_str(&serde_json::to_string(&summary).unwrap()).unwrap();
                assert_eq!(written, returned, "kfold.json is not the returned summary");
                for (g, outcome) in outcomes.iter().enumerate() {
                    let name = format!("fold-{g}");
                    assert_eq!(outcome.run_dir, runs.work.join(&name));
                    let log_before = before
                        .get(&Path::new(&name).join(LOG))
                        .map(|b| String::from_utf8_lossy(b).into_owned());
                    check_trained_split(&outcome.run_dir, log_before.as_deref(), &outcome.summary);
                    if !crash_made || !runs.deterministic {
                        continue;
                    }
                    // An uninterrupted run's folds: retrained from their start, the two-epoch
                    // run's; resumed from their first epoch, the resumed copy's.
                    let from_start = !extended && (g > f || (g == f && last_point == 8));
                    let reference = if from_start { &runs.a } else { new };
                    for file in ["last/model.safetensors", "best/model.safetensors", WEIGHTS] {
                        let rel = Path::new(&name).join(file);
                        assert!(
                            after.get(&rel) == reference.get(&rel),
                            "{} holds other weights than an uninterrupted run's; {}",
                            rel.display(),
                            describe()
                        );
                    }
                }
                let stored: RunOptions =
                    serde_json::from_slice(&after[Path::new(RUN_OPTIONS_FILE)]).unwrap();
                assert_eq!(stored, RunOptions::of(&call));
            }
            Err(e) => {
                let e = e.to_string();
                assert!(
                    !crash_made,
                    "a crash's leftovers were refused: {e}; {}",
                    describe()
                );
                let run_dir = runs.work.display().to_string();
                assert!(e.contains(&run_dir), "a refusal that names no file: {e}");
                assert_files_kept(
                    &before,
                    &after,
                    |rel| in_swap(rel, &fold) || in_best(rel),
                    |rel| rel.ends_with(LOG),
                    &e,
                    &describe,
                );
                let last_name = format!("{fold}/last");
                let best_name = format!("{fold}/best");
                assert_saves_kept(
                    &before,
                    &after,
                    &last_name,
                    [(&last_name, &last_folder), (&best_name, &best_folder)],
                    &e,
                    &describe,
                );
            }
        }
    }
);
