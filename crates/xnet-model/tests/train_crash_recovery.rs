//! The trainer's recovery from a crash: a resume after a save that a crash interrupted at any
//! step (torn files, a staging folder half written or complete, between the two renames of
//! the swap, after them, with older saves moved aside) puts a whole checkpoint back and goes
//! on from it, keeping every whole copy until what is in place loads.

use std::path::{Path, PathBuf};

use candle_core::{DType, Device};
use candle_nn::{VarBuilder, VarMap};
use xnet_model::checkpoint;
use xnet_model::train::Trainer;
use xnet_model::Result;

mod toy_trainer;

use toy_trainer::{config, saved_weights, sources, temp_dir, weights, Toy};

#[test]
fn a_last_checkpoint_torn_by_an_interrupted_save_is_refused_on_resume() {
    let dev = Device::Cpu;
    let (mut train, mut val) = sources();
    // Two runs into two directories: after one epoch, and after two.
    let (one, two) = (temp_dir("torn-one"), temp_dir("torn-two"));
    for (dir, epochs) in [(&one, 1), (&two, 2)] {
        let vm = VarMap::new();
        let toy = Toy::new(VarBuilder::from_varmap(&vm, DType::F32, &dev));
        Trainer::new(&toy, &vm, config(epochs), &dev)
            .unwrap()
            .with_checkpoint_dir(dir)
            .fit(&mut train, Some(&mut val))
            .unwrap();
    }
    let resume = |dir: &Path| {
        let vm = VarMap::new();
        let toy = Toy::new(VarBuilder::from_varmap(&vm, DType::F32, &dev));
        let mut t = Trainer::new(&toy, &vm, config(4), &dev)
            .unwrap()
            .with_checkpoint_dir(dir);
        t.resume().map(|_| ()).map_err(|e| e.to_string())
    };
    assert!(resume(&one).is_ok());
    let last = |dir: &Path, file: &str| dir.join("last").join(file);
    // Interrupted after the weights: the other save's weights beside this config.
    let good = std::fs::read(last(&one, "model.safetensors")).unwrap();
    std::fs::copy(
        last(&two, "model.safetensors"),
        last(&one, "model.safetensors"),
    )
    .unwrap();
    let e = resume(&one).unwrap_err();
    assert!(e.contains("different saves"), "{e}");
    // Interrupted before the trainer state: weights and config of epoch 2, state of epoch 1.
    std::fs::write(last(&one, "model.safetensors"), good).unwrap();
    for file in ["model.safetensors", "config.json"] {
        std::fs::copy(last(&two, file), last(&one, file)).unwrap();
    }
    let e = resume(&one).unwrap_err();
    assert!(e.contains("interrupted save"), "{e}");
    std::fs::remove_dir_all(&one).ok();
    std::fs::remove_dir_all(&two).ok();
}

/// Copies a directory's files, not its subdirectories.
fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        if entry.path().is_file() {
            std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
        }
    }
}

/// A run folder `tag` holding `one`'s files plus the listed folders, each copied from a
/// source folder.
fn crashed_run(tag: &str, one: &Path, folders: &[(&Path, &str)]) -> PathBuf {
    let case = temp_dir(tag);
    copy_dir(one, &case);
    for (from, name) in folders {
        copy_dir(from, &case.join(name));
    }
    case
}

#[test]
fn a_save_interrupted_at_any_step_resumes_from_a_whole_checkpoint() {
    let (one, two) = one_and_two_epoch_runs("crash");
    // Nothing of a save's staging is left behind by a save that finished.
    for name in [
        "last.partial",
        "last.previous",
        "best.partial",
        "best.previous",
    ] {
        assert!(!two.join(name).exists(), "{name} left behind");
    }
    let (epoch_one, epoch_two) = (
        saved_weights(&one.join("last")),
        saved_weights(&two.join("last")),
    );
    assert_ne!(epoch_one, epoch_two);

    // 1. Crashed while the staging directory was written: the last whole save stays, and
    //    the torn staging files go.
    let case = crashed_run(
        "crash-staging",
        &one,
        &[(&one.join("last"), "last"), (&one.join("best"), "best")],
    );
    std::fs::create_dir_all(case.join("last.partial")).unwrap();
    std::fs::copy(
        two.join("last/model.safetensors"),
        case.join("last.partial/model.safetensors"),
    )
    .unwrap();
    assert_eq!(resumed(&case).unwrap(), (Some(1), epoch_one.clone()));
    assert!(!case.join("last.partial").exists());

    // 2. Crashed between the two renames: no `last/`, the old save moved aside and the new
    //    one complete in staging. The new one is put in place.
    let case = crashed_run(
        "crash-between",
        &one,
        &[
            (&one.join("last"), "last.previous"),
            (&two.join("last"), "last.partial"),
            (&two.join("best"), "best"),
        ],
    );
    assert_eq!(resumed(&case).unwrap(), (Some(2), epoch_two.clone()));
    assert!(case.join("last/trainer_state.json").is_file());
    assert!(!case.join("last.previous").exists() && !case.join("last.partial").exists());

    // 3. Crashed before the old save was removed.
    let case = crashed_run(
        "crash-after",
        &one,
        &[
            (&one.join("last"), "last.previous"),
            (&two.join("last"), "last"),
            (&two.join("best"), "best"),
        ],
    );
    assert_eq!(resumed(&case).unwrap(), (Some(2), epoch_two.clone()));
    assert!(!case.join("last.previous").exists());

    // 4. best/ crashed between its renames: put back before training goes on. (The staged
    //    best/ is epoch 1's, ahead of last/: only runs saved before best/ moved after last/
    //    can leave that; the catch-up then rolls best/ back to the state's epoch 0.)
    let case = crashed_run(
        "crash-best",
        &one,
        &[
            (&one.join("last"), "last"),
            (&one.join("best"), "best.previous"),
            (&two.join("best"), "best.partial"),
        ],
    );
    assert_eq!(resumed(&case).unwrap(), (Some(1), epoch_one.clone()));
    assert!(case.join("best/model.safetensors").is_file());
    assert!(!case.join("best.partial").exists() && !case.join("best.previous").exists());

    // 5. Between the renames, with the old save's folder gone too: the staging folder is
    //    complete (its marker was written last), so it is the save.
    let case = crashed_run("crash-alone", &one, &[(&two.join("last"), "last.partial")]);
    assert!(case.join("last.partial/.complete").is_file());
    assert_eq!(resumed(&case).unwrap(), (Some(2), epoch_two.clone()));

    // 6. No `last/` and a staging folder without its marker beside the old save: the
    //    staging folder may be incomplete, so the old save comes back.
    let case = crashed_run(
        "crash-unmarked",
        &one,
        &[
            (&one.join("last"), "last.previous"),
            (&two.join("last"), "last.partial"),
        ],
    );
    std::fs::remove_file(case.join("last.partial/.complete")).unwrap();
    assert_eq!(resumed(&case).unwrap(), (Some(1), epoch_one.clone()));
    assert!(!case.join("last.partial").exists());

    // 7. Crashed after `last/` was replaced by an improving epoch, before `best/` was:
    //    `best/` is an epoch behind (or, after the first epoch, absent). Resume writes it
    //    from `last/`'s weights, with that epoch's figures from the log.
    let best_epoch_of =
        |dir: &Path| checkpoint::read_config(&dir.join("best")).unwrap().metadata["epoch"].as_u64();
    assert_eq!(
        best_epoch_of(&two),
        Some(1),
        "the toy improves in its second epoch"
    );
    let case = crashed_run(
        "crash-before-best",
        &two,
        &[(&two.join("last"), "last"), (&one.join("best"), "best")],
    );
    assert_eq!(best_epoch_of(&case), Some(0));
    assert_eq!(resumed(&case).unwrap(), (Some(2), epoch_two.clone()));
    assert_eq!(best_epoch_of(&case), Some(1));
    assert_eq!(saved_weights(&case.join("best")), epoch_two);
    let (saved, written) = (
        checkpoint::read_config(&case.join("best"))
            .unwrap()
            .metadata,
        checkpoint::read_config(&two.join("best")).unwrap().metadata,
    );
    assert_eq!(saved, written, "the same record as an uninterrupted save");
    let case = crashed_run("crash-first-best", &one, &[(&one.join("last"), "last")]);
    assert_eq!(resumed(&case).unwrap(), (Some(1), epoch_one.clone()));
    assert_eq!(best_epoch_of(&case), Some(0));
    assert_eq!(saved_weights(&case.join("best")), epoch_one);
    // A `best/` another run left in the folder under the same epoch number (here epoch 1's
    // relabelled as epoch 0) is not taken for this run's.
    let case = crashed_run(
        "crash-foreign-best",
        &one,
        &[(&one.join("last"), "last"), (&two.join("best"), "best")],
    );
    let config_path = case.join("best/config.json");
    let mut config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&config_path).unwrap()).unwrap();
    config["metadata"]["epoch"] = serde_json::json!(0);
    std::fs::write(&config_path, config.to_string()).unwrap();
    assert_eq!(resumed(&case).unwrap(), (Some(1), epoch_one.clone()));
    assert_eq!(saved_weights(&case.join("best")), epoch_one);
    // A `best/` of an earlier epoch than the last one is left alone.
    let case = crashed_run(
        "crash-best-older",
        &two,
        &[(&two.join("last"), "last"), (&two.join("best"), "best")],
    );
    let mut state: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(case.join("last/trainer_state.json")).unwrap(),
    )
    .unwrap();
    state["best_epoch"] = serde_json::json!(0);
    std::fs::write(
        case.join("last/trainer_state.json"),
        serde_json::to_string(&state).unwrap(),
    )
    .unwrap();
    let before = std::fs::read(case.join("best/model.safetensors")).unwrap();
    assert_eq!(resumed(&case).unwrap().0, Some(2));
    assert_eq!(
        std::fs::read(case.join("best/model.safetensors")).unwrap(),
        before
    );

    remove_cases("crash");
}

/// Removes this process's folders of the test whose case tags start with `prefix-`
/// ([`temp_dir`]'s names), so that a test need not list every case it made.
fn remove_cases(prefix: &str) {
    let (head, tail) = (
        format!("xnet-train-{prefix}-"),
        format!("-{}", std::process::id()),
    );
    for entry in std::fs::read_dir(std::env::temp_dir())
        .into_iter()
        .flatten()
        .flatten()
    {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with(&head) && name.ends_with(&tail) {
            std::fs::remove_dir_all(entry.path()).ok();
        }
    }
}

/// One- and two-epoch runs of the toy network in fresh folders `<tag>-one` and `<tag>-two`.
fn one_and_two_epoch_runs(tag: &str) -> (PathBuf, PathBuf) {
    let dev = Device::Cpu;
    let (mut train, mut val) = sources();
    let mut run = |epochs: usize, name: &str| {
        let dir = temp_dir(&format!("{tag}-{name}"));
        let vm = VarMap::new();
        let toy = Toy::new(VarBuilder::from_varmap(&vm, DType::F32, &dev));
        Trainer::new(&toy, &vm, config(epochs), &dev)
            .unwrap()
            .with_checkpoint_dir(&dir)
            .fit(&mut train, Some(&mut val))
            .unwrap();
        dir
    };
    (run(1, "one"), run(2, "two"))
}

/// Resumes the toy network's run in `dir` (towards four epochs): the epoch it goes on at
/// and the weights it loaded.
fn resumed(dir: &Path) -> Result<(Option<usize>, Vec<f32>)> {
    let dev = Device::Cpu;
    let vm = VarMap::new();
    let toy = Toy::new(VarBuilder::from_varmap(&vm, DType::F32, &dev));
    let mut trainer = Trainer::new(&toy, &vm, config(4), &dev)?.with_checkpoint_dir(dir);
    let at = trainer.resume()?;
    Ok((at, weights(&vm)))
}

/// The swap folders of `name` (`name.partial`, `name.previous`, `name.previous.1`, ...) in
/// the run folder `dir`.
fn swap_leftovers(dir: &Path, name: &str) -> Vec<String> {
    let mut found: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(&format!("{name}.")))
        .collect();
    found.sort();
    found
}

#[test]
fn a_save_moved_aside_under_a_numbered_name_is_removed_on_resume() {
    // When an older `last.previous/` could not be removed (a file in it still open on NFS),
    // a save moves `last/` aside as `last.previous.1/`. A crash before that one is removed
    // leaves both; the resume must not keep the numbered one forever.
    let (one, two) = one_and_two_epoch_runs("numbered");
    let epoch_two = saved_weights(&two.join("last"));
    let stale = |case: &Path| {
        // The older save, partly removed.
        copy_dir(&one.join("last"), &case.join("last.previous"));
        std::fs::remove_file(case.join("last.previous/model.safetensors")).unwrap();
    };
    // After the renames: `last/` is the new save.
    let case = crashed_run(
        "numbered-after",
        &one,
        &[
            (&two.join("last"), "last"),
            (&one.join("last"), "last.previous.1"),
            (&two.join("best"), "best"),
        ],
    );
    stale(&case);
    assert_eq!(resumed(&case).unwrap(), (Some(2), epoch_two.clone()));
    assert_eq!(swap_leftovers(&case, "last"), Vec::<String>::new());
    // Between the renames: the complete staging folder is put in place.
    let case = crashed_run(
        "numbered-between",
        &one,
        &[
            (&two.join("last"), "last.partial"),
            (&one.join("last"), "last.previous.1"),
            (&two.join("best"), "best"),
        ],
    );
    stale(&case);
    assert_eq!(resumed(&case).unwrap(), (Some(2), epoch_two.clone()));
    assert_eq!(swap_leftovers(&case, "last"), Vec::<String>::new());
    remove_cases("numbered");
}

#[test]
fn with_only_moved_aside_saves_left_the_newest_whole_one_is_put_back() {
    // No `last/` and no complete staging folder (only a copy of the run folder leaves that):
    // the resume puts back a save that a swap moved aside. `last.previous.1/` is the later one
    // (a save takes a number only when `last.previous/` is in use), so a pick by name would
    // retrain from an older epoch than the run had reached.
    let (one, two) = one_and_two_epoch_runs("aside");
    let epoch_one = saved_weights(&one.join("last"));
    let epoch_two = saved_weights(&two.join("last"));
    let case = crashed_run(
        "aside-both-whole",
        &one,
        &[
            (&one.join("last"), "last.previous"),
            (&two.join("last"), "last.previous.1"),
            (&two.join("best"), "best"),
        ],
    );
    assert_eq!(resumed(&case).unwrap(), (Some(2), epoch_two));
    assert_eq!(swap_leftovers(&case, "last"), Vec::<String>::new());
    // The later save lost its weights file: the whole older one is put back instead.
    let case = crashed_run(
        "aside-later-damaged",
        &one,
        &[
            (&one.join("last"), "last.previous"),
            (&two.join("last"), "last.previous.1"),
            (&one.join("best"), "best"),
        ],
    );
    std::fs::remove_file(case.join("last.previous.1/model.safetensors")).unwrap();
    assert_eq!(resumed(&case).unwrap(), (Some(1), epoch_one));
    assert_eq!(swap_leftovers(&case, "last"), Vec::<String>::new());
    remove_cases("aside");
}

#[test]
fn a_swapped_in_save_that_does_not_load_keeps_the_whole_one_it_replaced() {
    // A crash leaves a staging folder marked complete only once every file of it is on the
    // disk, but a copy of the run folder (or a disk that lost a write) can hold a marked one
    // with a damaged or missing file. The resume refuses it, naming the file, and must keep
    // the whole save it was to replace: that one may be the run's only whole checkpoint.
    let (one, two) = one_and_two_epoch_runs("damaged-swap");
    let epoch_one = saved_weights(&one.join("last"));
    let halve = |file: &Path| {
        let bytes = std::fs::read(file).unwrap();
        std::fs::write(file, &bytes[..bytes.len() / 2]).unwrap();
    };
    // Between the renames: the damaged staging folder is put in place as `last/`.
    let case = crashed_run(
        "damaged-between",
        &one,
        &[
            (&two.join("last"), "last.partial"),
            (&one.join("last"), "last.previous"),
            (&two.join("best"), "best"),
        ],
    );
    halve(&case.join("last.partial/model.safetensors"));
    let e = resumed(&case).unwrap_err().to_string();
    assert!(e.contains("model.safetensors"), "{e}");
    assert_eq!(saved_weights(&case.join("last.previous")), epoch_one);
    // With the damaged save moved away, the resume goes on from the kept one.
    std::fs::remove_dir_all(case.join("last")).unwrap();
    assert_eq!(resumed(&case).unwrap(), (Some(1), epoch_one.clone()));
    assert_eq!(swap_leftovers(&case, "last"), Vec::<String>::new());
    // After the renames, the old save not yet removed.
    let case = crashed_run(
        "damaged-after",
        &one,
        &[
            (&two.join("last"), "last"),
            (&one.join("last"), "last.previous"),
            (&two.join("best"), "best"),
        ],
    );
    halve(&case.join("last/optimizer.safetensors"));
    let e = resumed(&case).unwrap_err().to_string();
    assert!(e.contains("optimizer.safetensors"), "{e}");
    assert_eq!(saved_weights(&case.join("last.previous")), epoch_one);
    // A marked staging folder without its trainer state: nothing to resume, but the save
    // it was to replace stays.
    let case = crashed_run(
        "damaged-stateless",
        &one,
        &[
            (&two.join("last"), "last.partial"),
            (&one.join("last"), "last.previous"),
            (&two.join("best"), "best"),
        ],
    );
    std::fs::remove_file(case.join("last.partial/trainer_state.json")).unwrap();
    assert_eq!(resumed(&case).unwrap().0, None);
    assert_eq!(saved_weights(&case.join("last.previous")), epoch_one);
    // `best/` (which the trainer's resume does not load) damaged beside the whole save it
    // replaced: that one stays until a save of `best/` replaces both.
    let case = crashed_run(
        "damaged-best",
        &two,
        &[
            (&two.join("last"), "last"),
            (&two.join("best"), "best"),
            (&one.join("best"), "best.previous"),
        ],
    );
    halve(&case.join("best/model.safetensors"));
    assert_eq!(resumed(&case).unwrap().0, Some(2));
    assert_eq!(
        saved_weights(&case.join("best.previous")),
        saved_weights(&one.join("best"))
    );
    // An intact `best/` lets it go.
    let case = crashed_run(
        "damaged-best-intact",
        &two,
        &[
            (&two.join("last"), "last"),
            (&two.join("best"), "best"),
            (&one.join("best"), "best.previous"),
        ],
    );
    assert_eq!(resumed(&case).unwrap().0, Some(2));
    assert_eq!(swap_leftovers(&case, "best"), Vec::<String>::new());
    remove_cases("damaged");
}

#[test]
fn a_save_interrupted_before_its_renames_or_while_the_old_one_is_removed_resumes_whole() {
    // The points of a save `a_save_interrupted_at_any_step_resumes_from_a_whole_checkpoint`
    // does not stop at, for `last/` and then `best/`.
    let (one, two) = one_and_two_epoch_runs("points");
    let (epoch_one, epoch_two) = (
        saved_weights(&one.join("last")),
        saved_weights(&two.join("last")),
    );
    // The staging folder complete (its marker written), before the first rename: `last/` is
    // still the old save, which the resume keeps (the epoch is trained again).
    let case = crashed_run(
        "points-marked",
        &one,
        &[
            (&one.join("last"), "last"),
            (&two.join("last"), "last.partial"),
            (&one.join("best"), "best"),
        ],
    );
    assert!(case.join("last.partial/.complete").is_file());
    assert_eq!(resumed(&case).unwrap(), (Some(1), epoch_one.clone()));
    assert_eq!(swap_leftovers(&case, "last"), Vec::<String>::new());
    // The staging folder being written: one file in, the next one's temporary file cut short.
    let case = crashed_run(
        "points-temporary",
        &one,
        &[(&one.join("last"), "last"), (&one.join("best"), "best")],
    );
    std::fs::create_dir_all(case.join("last.partial")).unwrap();
    std::fs::copy(
        two.join("last/model.safetensors"),
        case.join("last.partial/model.safetensors"),
    )
    .unwrap();
    let config = std::fs::read(two.join("last/config.json")).unwrap();
    std::fs::write(
        case.join("last.partial/.config.json.tmp-1"),
        &config[..config.len() / 2],
    )
    .unwrap();
    assert_eq!(resumed(&case).unwrap(), (Some(1), epoch_one.clone()));
    assert_eq!(swap_leftovers(&case, "last"), Vec::<String>::new());
    // After the renames, the old save partly removed.
    let case = crashed_run(
        "points-removing",
        &one,
        &[
            (&two.join("last"), "last"),
            (&one.join("last"), "last.previous"),
            (&two.join("best"), "best"),
        ],
    );
    for file in ["model.safetensors", "optimizer.safetensors"] {
        std::fs::remove_file(case.join("last.previous").join(file)).unwrap();
    }
    assert_eq!(resumed(&case).unwrap(), (Some(2), epoch_two.clone()));
    assert_eq!(swap_leftovers(&case, "last"), Vec::<String>::new());
    // `best/` (saved after `last/`, epoch 1 improving): its complete staging folder before
    // the renames is dropped and `best/` caught up from `last/`; after the renames, the old
    // `best/` partly removed goes.
    let case = crashed_run(
        "points-best-marked",
        &two,
        &[
            (&two.join("last"), "last"),
            (&one.join("best"), "best"),
            (&two.join("best"), "best.partial"),
        ],
    );
    assert_eq!(resumed(&case).unwrap(), (Some(2), epoch_two.clone()));
    assert_eq!(saved_weights(&case.join("best")), epoch_two);
    assert_eq!(swap_leftovers(&case, "best"), Vec::<String>::new());
    let case = crashed_run(
        "points-best-removing",
        &two,
        &[
            (&two.join("last"), "last"),
            (&two.join("best"), "best"),
            (&one.join("best"), "best.previous"),
        ],
    );
    std::fs::remove_file(case.join("best.previous/model.safetensors")).unwrap();
    assert_eq!(resumed(&case).unwrap(), (Some(2), epoch_two.clone()));
    assert_eq!(saved_weights(&case.join("best")), epoch_two);
    assert_eq!(swap_leftovers(&case, "best"), Vec::<String>::new());
    remove_cases("points");
}

#[test]
fn a_resume_removes_the_temporary_files_a_stopped_process_left() {
    // A process killed between an atomic write and its rename leaves `.<name>.tmp-<pid>`
    // (4194305 is above Linux's largest process id, so never this process's).
    let (_, two) = one_and_two_epoch_runs("stale-tmp");
    let stale = [".log.jsonl.tmp-4194305", ".train_config.json.tmp-4194305"];
    for name in stale {
        std::fs::write(two.join(name), b"{ \"cut").unwrap();
    }
    let user_file = two.join(".notes.tmp-mine");
    std::fs::write(&user_file, b"kept").unwrap();
    assert_eq!(resumed(&two).unwrap().0, Some(2));
    for name in stale {
        assert!(!two.join(name).exists(), "{name} outlived the resume");
    }
    assert!(
        user_file.is_file(),
        "a file not of this crate's writes was removed"
    );
    remove_cases("stale-tmp");
}

#[test]
fn a_crash_in_the_first_save_before_any_epoch_trains_the_run_from_the_start() {
    // A fresh run writes `last/` before its first epoch (so that a NaN there leaves a good
    // state). A crash inside that save leaves no `last/` and no older save: a staging folder
    // half written, or complete but not yet renamed. Either way the resume must train the
    // whole run, to the weights of one that never stopped.
    /// Trains the toy network in `dir` to `epochs` epochs, resuming what is there; its weights.
    fn fit(dir: &Path, epochs: usize) -> Vec<f32> {
        let dev = Device::Cpu;
        let (mut train, mut val) = sources();
        let vm = VarMap::new();
        let toy = Toy::new(VarBuilder::from_varmap(&vm, DType::F32, &dev));
        let mut trainer = Trainer::new(&toy, &vm, config(epochs), &dev)
            .unwrap()
            .with_checkpoint_dir(dir);
        trainer.resume().unwrap();
        trainer.fit(&mut train, Some(&mut val)).unwrap();
        drop(trainer);
        weights(&vm)
    }
    let uninterrupted = fit(&temp_dir("first-save-whole"), 2);
    // The first save as written before epoch 0: a run whose first step is NaN stops and
    // leaves just that.
    let start = temp_dir("first-save-start");
    {
        let dev = Device::Cpu;
        let (mut train, mut val) = sources();
        let vm = VarMap::new();
        let toy = Toy::new(VarBuilder::from_varmap(&vm, DType::F32, &dev));
        toy.poison.store(true, std::sync::atomic::Ordering::SeqCst);
        let mut trainer = Trainer::new(&toy, &vm, config(2), &dev)
            .unwrap()
            .with_checkpoint_dir(&start);
        assert!(trainer.fit(&mut train, Some(&mut val)).is_err());
    }
    assert!(start.join("last/trainer_state.json").is_file());
    for (tag, complete) in [("first-save-torn", false), ("first-save-complete", true)] {
        let case = temp_dir(tag);
        copy_dir(&start, &case);
        copy_dir(&start.join("last"), &case.join("last.partial"));
        if !complete {
            std::fs::remove_file(case.join("last.partial/.complete")).unwrap();
            std::fs::remove_file(case.join("last.partial/trainer_state.json")).unwrap();
        }
        let resumed_at = resumed(&case).unwrap().0;
        assert_eq!(resumed_at, complete.then_some(0), "{tag}");
        assert_eq!(swap_leftovers(&case, "last"), Vec::<String>::new(), "{tag}");
        assert_eq!(fit(&case, 2), uninterrupted, "{tag}: other final weights");
    }
    remove_cases("first-save");
}
