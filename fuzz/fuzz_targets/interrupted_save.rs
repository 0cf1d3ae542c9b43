//! A resume after a checkpoint save that a crash interrupted: the swap folders
//! (`<dir>.partial/`, `<dir>.previous/`) that `checkpoint::replace_dir` leaves at each point of
//! its sequence, which `Trainer::resume` finishes or undoes. A tiny real run
//! (`tests/support/run_resume_fixture.rs`: a two-epoch run stopped after its first) is made
//! once per process in `$TMPDIR/xray-fuzz-interrupted-save-<pid>/run`; a copy of it is resumed
//! beside it (`ref/`, training epoch 1), which gives the saves its epoch-1 `last/` and `best/`
//! would have been replaced with (the old ones `O`, the new ones `N`). Before every input the
//! run is put back (all but its `data/`) with `last*` and `best*` built as the input says:
//!
//! - byte 0 mod 7: the point of `last/`'s save the crash came at: 0 before it began; 1 while
//!   `last.partial/` was written (byte 2: how many of the save's files, in the order they are
//!   written, and a temporary file of the next one cut short); 2 after its `.complete` marker;
//!   3 between the renames (`last.partial/` = N, `last.previous/` = O, no `last/`); 4 after
//!   them (`last/` = N beside `last.previous/`); 5 while `last.previous/` was removed (byte 2:
//!   the files already gone); 6 after (`last/` = N);
//! - byte 1 mod 7: the same for `best/` (byte 3); a crash can only reach a point past 0 in
//!   `best/` with `last/` at 6 (`best/` is saved after `last/`);
//! - byte 4: bit 0 the log holds epoch 1's record at `last/` point 0 (it is appended before
//!   `last/` is saved, so it does from point 1 on); bit 1, at points 3 to 5, an older
//!   `<dir>.previous/` that could not be removed (a save's files partly gone) is there, and the
//!   save moved aside went to `<dir>.previous.1/` (what `replace_dir` does then); bits 2 and up
//!   mod 5, what a crash cannot leave but a user's copy can: 0 nothing; 1 an edit of a file of
//!   one of the swap folders (byte 5 picks the folder and the file, the rest is
//!   `byte_edits::edited`'s truncation and patches); 2 a `.complete` marker in every
//!   `.partial/`; 3 no marker anywhere in the folder (byte 5 bit 0: `last` or `best`); 4 a
//!   file removed (byte 5 as in 1).
//!
//! Then the public resume (`xray_seg::train::run`, the run's options: two epochs).
//!
//! Asserts: no panic; a state a crash can leave resumes (`Ok`); after `Ok`: no swap folder or
//! temporary file left, the records agree (`resume_check::check_trained_split`) and, where the
//! training is deterministic (checked once per process), `last/` and `best/` hold the weights
//! `ref/` ended with (the resume went on from a whole save, never a half-written or mixed
//! one); a refusal names a file or folder of the run, leaves every file outside the swap
//! folders and `data/` as it was (but the log trimmed to some of its lines), leaves in each
//! of `last*` and `best*` only folders that were there before (or `best/` caught up from the
//! weights of `last*`), and keeps a whole copy of `last/`'s (and of `best/`'s) save where one
//! was there before.
#![no_main]
use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use xray_seg::train::{run, TrainJob};

mod byte_edits;
#[path = "../../tests/support/run_resume_fixture.rs"]
mod fixture;
mod resume_check;
mod run_folder;
mod swap_state;
use resume_check::{check_trained_split, no_leftovers};
use run_folder::{fresh_run, snapshot};
use swap_state::{
    assert_files_kept, assert_saves_kept, copy_tree, crash_state, read_save, users_copy,
    write_slots, Folder, BEST_ORDER, LAST_ORDER, WEIGHTS,
};

const LOG: &str = "log.jsonl";

struct Fixture {
    run_dir: PathBuf,
    job: TrainJob,
    /// The run's files outside `data/`, `last/` and `best/`.
    root: BTreeMap<PathBuf, Vec<u8>>,
    /// The log with epoch 1's record (`ref/`'s).
    new_log: Vec<u8>,
    last: Folder,
    best: Folder,
    /// `ref/`'s `last/` and `best/` weights after its resume, when a second resume of a
    /// copy ended with the same bytes (training deterministic).
    final_weights: Option<(Vec<u8>, Vec<u8>)>,
}

/// Resumes a copy of the run in `run_dir` as `<parent>/<name>` (training epoch 1).
fn resume_copy(run_dir: &Path, name: &str) -> PathBuf {
    let dir = run_dir.parent().unwrap().join(name);
    let _ = fs::remove_dir_all(&dir);
    copy_tree(run_dir, &dir);
    let (outcomes, _) = run(&fixture::resume_job(dir.clone()))
        .unwrap_or_else(|e| panic!("resuming the fixture's copy: {e}"));
    assert_eq!(outcomes[0].summary.epochs.len(), 1);
    dir
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let (run_dir, job, files) = fresh_run("interrupted-save", fixture::make_resumable);
        let reference = resume_copy(&run_dir, "ref");
        let again = resume_copy(&run_dir, "ref-again");
        let weights = |d: &Path| {
            (
                fs::read(d.join("last").join(WEIGHTS)).unwrap(),
                fs::read(d.join("best").join(WEIGHTS)).unwrap(),
            )
        };
        let final_weights = (weights(&reference) == weights(&again)).then(|| weights(&reference));
        if final_weights.is_none() {
            eprintln!("interrupted_save: two resumes of the fixture trained different weights");
        }
        let folder = |name: &'static str, order: &'static [&'static str]| {
            let (old, new) = (
                read_save(&run_dir.join(name)),
                read_save(&reference.join(name)),
            );
            for save in [&old, &new] {
                let names: Vec<&str> = save.keys().map(String::as_str).collect();
                let mut expected = order.to_vec();
                expected.sort_unstable();
                assert_eq!(names, expected, "{name}/ of the fixture");
            }
            Folder { order, old, new }
        };
        let (last, best) = (folder("last", &LAST_ORDER), folder("best", &BEST_ORDER));
        assert_ne!(last.old, last.new);
        assert_ne!(
            best.old[WEIGHTS], best.new[WEIGHTS],
            "the fixture's epoch 1 improves (else best/ is not saved again)"
        );
        let root = files
            .into_iter()
            .filter(|(rel, _)| !rel.starts_with("last") && !rel.starts_with("best"))
            .collect();
        Fixture {
            run_dir,
            job,
            root,
            new_log: fs::read(reference.join(LOG)).unwrap(),
            last,
            best,
            final_weights,
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let [last_point, best_point, last_aux, best_aux, flags, pick, rest @ ..] = data else {
        return;
    };
    let f = fixture();
    let (last_point, best_point) = (last_point % 7, best_point % 7);
    let stale = flags & 2 != 0;
    let mut last = crash_state(&f.last, last_point, *last_aux, stale);
    let mut best = crash_state(&f.best, best_point, *best_aux, stale);
    let new_log = last_point > 0 || flags & 1 != 0;
    let crash_made = best_point == 0 || last_point == 6;
    let (last_made, best_made) = (last.clone(), best.clone());
    // What a user's copy can hold beside.
    users_copy(flags >> 2, *pick, rest, &mut last, &mut best);
    // Not a state a crash leaves (both folders mid-swap, or edited): checked as a user's copy.
    let crash_made = crash_made && last == last_made && best == best_made;

    // Put the run back with these folders.
    for entry in fs::read_dir(&f.run_dir).unwrap() {
        let path = entry.unwrap().path();
        if path.file_name().unwrap() == "data" {
            continue;
        }
        if path.is_dir() {
            fs::remove_dir_all(&path).unwrap();
        } else {
            fs::remove_file(&path).unwrap();
        }
    }
    for (rel, bytes) in &f.root {
        let path = f.run_dir.join(rel);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, bytes).unwrap();
    }
    if new_log {
        fs::write(f.run_dir.join(LOG), &f.new_log).unwrap();
    }
    write_slots(&f.run_dir, "last", &last);
    write_slots(&f.run_dir, "best", &best);
    let mut before = BTreeMap::new();
    snapshot(&f.run_dir, Path::new(""), &mut before);

    let result = run(&f.job);
    let mut after = BTreeMap::new();
    snapshot(&f.run_dir, Path::new(""), &mut after);
    let describe = || {
        format!(
            "last point {last_point}, best point {best_point}, log with epoch 1: {new_log}, \
             user's copy: {}, before: {:?}",
            !crash_made,
            before.keys().collect::<Vec<_>>()
        )
    };
    match result {
        Ok((outcomes, _)) => {
            no_leftovers(&after, &describe());
            let summary = &outcomes[0].summary;
            let log_before = before
                .get(Path::new(LOG))
                .map(|b| String::from_utf8_lossy(b).into_owned());
            check_trained_split(&f.run_dir, log_before.as_deref(), summary);
            if let (true, Some((last_w, best_w))) = (crash_made, &f.final_weights) {
                assert!(
                    after[Path::new("last/model.safetensors")] == *last_w,
                    "last/ holds other weights than an uninterrupted run's; {}",
                    describe()
                );
                assert!(
                    after[Path::new("best/model.safetensors")] == *best_w,
                    "best/ holds other weights than an uninterrupted run's; {}",
                    describe()
                );
            }
        }
        Err(e) => {
            let e = e.to_string();
            assert!(
                !crash_made,
                "a crash's leftovers were refused: {e}; {}",
                describe()
            );
            let run_dir = f.run_dir.display().to_string();
            assert!(e.contains(&run_dir), "a refusal that names no file: {e}");
            let swap = |rel: &Path| {
                let first = rel
                    .components()
                    .next()
                    .unwrap()
                    .as_os_str()
                    .to_string_lossy();
                first.starts_with("last") || first.starts_with("best")
            };
            assert_files_kept(
                &before,
                &after,
                swap,
                |rel| rel == Path::new(LOG),
                &e,
                &describe,
            );
            assert_saves_kept(
                &before,
                &after,
                "last",
                [("last", &f.last), ("best", &f.best)],
                &e,
                &describe,
            );
        }
    }
});
