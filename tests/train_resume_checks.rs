//! The train job's checks of a resumed run: the run must exist and hold its `last/`; a
//! resume that changes settings says so; one that fails (a damaged later fold, a `best/`
//! without its weights) trains and records nothing; and it clears what a crash left.

use std::path::{Path, PathBuf};

use xray_seg::train::{run, TrainJob};

#[path = "support/train_job.rs"]
mod train_job;

use train_job::{error_of, temp_dir, tiny_job};

#[test]
fn resuming_a_run_that_does_not_exist_is_an_error() {
    let tmp = temp_dir("train-resume-missing");
    let job = TrainJob {
        resume: true,
        ..tiny_job(tmp.join("never-ran"))
    };
    let err = error_of(&job, "nothing to resume is an error");
    eprintln!("{err}");
    assert!(err.contains("never-ran"), "{err}");
    assert!(
        !job.run_dir.join("log.jsonl").exists(),
        "a fresh run was started"
    );
    let _ = std::fs::remove_dir_all(&tmp);
}

#[test]
fn resuming_a_trained_run_without_its_last_checkpoint_is_refused() {
    let tmp = temp_dir("train-resume-no-last");
    let job = tiny_job(tmp.join("run"));
    run(&job).expect("first run trains");
    let weights = std::fs::read(job.run_dir.join("model.safetensors")).unwrap();
    let log = std::fs::read(job.run_dir.join("log.jsonl")).unwrap();
    // last/ lost (deleted to save space): a resume once trained again from epoch 0 and
    // replaced the model, best/ and the log without a word.
    std::fs::remove_dir_all(job.run_dir.join("last")).unwrap();
    let resumed = TrainJob {
        resume: true,
        epochs: 2,
        ..job.clone()
    };
    let err = error_of(&resumed, "a resume without last/ over a trained model");
    assert!(err.contains("last/") && err.contains("run"), "{err}");
    assert_eq!(
        std::fs::read(job.run_dir.join("model.safetensors")).unwrap(),
        weights
    );
    assert_eq!(std::fs::read(job.run_dir.join("log.jsonl")).unwrap(), log);
    // A run stopped before its first epoch ended has nothing to lose: it starts over.
    for result in ["best", "model.safetensors", "config.json"] {
        let path = job.run_dir.join(result);
        if path.is_dir() {
            std::fs::remove_dir_all(&path).unwrap();
        } else {
            std::fs::remove_file(&path).unwrap();
        }
    }
    run(&resumed).expect("a run with no epoch saved starts over");
    assert!(job.run_dir.join("last").is_dir());
    let _ = std::fs::remove_dir_all(&tmp);
}

#[test]
fn a_resume_that_changes_the_schedule_or_augmentation_says_so_without_refusing() {
    use xray_seg::train::RunOptions;
    let job = tiny_job(PathBuf::from("runs/unused"));
    let stored = RunOptions::of(&job);
    assert!(stored.setting_changes(&RunOptions::of(&job)).is_empty());
    let longer = TrainJob {
        epochs: 200,
        augment: false,
        ..job.clone()
    };
    let now = RunOptions::of(&longer);
    // Not a difference that refuses the resume...
    assert!(stored.differences(&now).is_empty());
    // ...but each change is named.
    let changes = stored.setting_changes(&now);
    assert_eq!(changes.len(), 2, "{changes:?}");
    assert!(changes[0].contains("--epochs: the run has 1, this call 200"));
    assert!(changes[1].contains("augmentation pipeline"));
    // A run stored before the settings were recorded: this call's are stated.
    let older = RunOptions {
        settings: None,
        ..stored.clone()
    };
    let changes = older.setting_changes(&now);
    assert_eq!(changes.len(), 1);
    assert!(
        changes[0].contains("does not record") && changes[0].contains("200 epochs"),
        "{}",
        changes[0]
    );
    // The stored file round-trips, and one without the settings still reads.
    let json = serde_json::to_string(&stored).unwrap();
    assert_eq!(serde_json::from_str::<RunOptions>(&json).unwrap(), stored);
    let mut v: serde_json::Value = serde_json::from_str(&json).unwrap();
    v.as_object_mut().unwrap().remove("settings");
    assert_eq!(serde_json::from_value::<RunOptions>(v).unwrap(), older);
}

/// The CPU thread count is recorded, for the record: the weights do not depend on it, so a
/// resume on another count changes nothing and says nothing; runs stored before it was
/// recorded and GPU runs have none.
#[test]
fn a_resume_on_another_thread_count_is_no_change() {
    use xray_seg::train::RunOptions;
    let job = tiny_job(PathBuf::from("runs/unused"));
    let now = RunOptions::of(&job);
    let threads = now.settings.as_ref().and_then(|s| s.threads);
    assert_eq!(threads, Some(rayon::current_num_threads()));
    let with = |threads: Option<usize>| {
        let mut options = now.clone();
        if let Some(s) = options.settings.as_mut() {
            s.threads = threads;
        }
        options
    };
    let other = with(Some(rayon::current_num_threads() + 3));
    assert!(other.differences(&now).is_empty());
    assert!(other.setting_changes(&now).is_empty());
    assert!(with(None).setting_changes(&now).is_empty());
    assert!(now.setting_changes(&with(None)).is_empty());
    // Recorded in train_job.json, and a record without it still reads.
    let json = serde_json::to_value(&now).unwrap();
    assert_eq!(json["settings"]["threads"], rayon::current_num_threads());
    let mut older = json.clone();
    older["settings"].as_object_mut().unwrap().remove("threads");
    assert_eq!(
        serde_json::from_value::<RunOptions>(older).unwrap(),
        with(None)
    );
}

/// A resume that fails leaves `train_job.json` as it was (it recorded the new `--epochs`
/// before the damaged `last/` was read), and one asking for fewer epochs than the run has
/// trained is refused instead of rewriting the record and training nothing.
#[test]
fn a_failed_or_shrinking_resume_leaves_the_run_record_alone() {
    let tmp = temp_dir("train-resume-record");
    let job = TrainJob {
        epochs: 2,
        ..tiny_job(tmp.join("run"))
    };
    run(&job).expect("the first run trains");
    let record = job.run_dir.join(xray_seg::train::RUN_OPTIONS_FILE);
    let before = std::fs::read(&record).unwrap();

    let shorter = TrainJob {
        resume: true,
        epochs: 1,
        ..job.clone()
    };
    let err = error_of(&shorter, "fewer epochs than trained");
    assert!(
        err.contains("trained 2 epochs already, more than --epochs 1")
            && err.contains("nothing was trained"),
        "{err}"
    );
    assert_eq!(std::fs::read(&record).unwrap(), before);

    // The optimizer state cut short: the resume fails, the record stays.
    let optimizer = job.run_dir.join("last/optimizer.safetensors");
    let bytes = std::fs::read(&optimizer).unwrap();
    std::fs::write(&optimizer, &bytes[..bytes.len() / 2]).unwrap();
    let longer = TrainJob {
        resume: true,
        epochs: 3,
        ..job.clone()
    };
    let err = error_of(&longer, "a damaged optimizer state");
    assert!(err.contains("optimizer.safetensors"), "{err}");
    assert_eq!(std::fs::read(&record).unwrap(), before);

    // Mended, the same resume trains on and records its epochs.
    std::fs::write(&optimizer, &bytes).unwrap();
    let (outcomes, _) = run(&longer).expect("the resume trains a third epoch");
    let line = outcomes[0].summary_line();
    assert!(line.contains("3 epochs (1 in this call) in"), "{line}");
    let after: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&record).unwrap()).unwrap();
    assert_eq!(after["settings"]["epochs"], 3, "{after}");
    let _ = std::fs::remove_dir_all(&tmp);
}

/// A tiny two-fold run trained one epoch, for the k-fold resume checks.
struct TwoFoldRun {
    /// The temporary folder holding the run.
    tmp: PathBuf,
    /// The job that trained it.
    job: TrainJob,
    /// The run's record of its options (`train_job.json`), and its bytes after the run.
    record: PathBuf,
    before: Vec<u8>,
    /// The same job resumed with two epochs.
    longer: TrainJob,
}

fn two_fold_run(tag: &str) -> TwoFoldRun {
    let tmp = temp_dir(tag);
    let job = TrainJob {
        kfold: Some(2),
        synth_count: 8,
        ..tiny_job(tmp.join("run"))
    };
    run(&job).expect("the first run trains both folds");
    let record = job.run_dir.join(xray_seg::train::RUN_OPTIONS_FILE);
    let before = std::fs::read(&record).unwrap();
    let longer = TrainJob {
        resume: true,
        epochs: 2,
        ..job.clone()
    };
    TwoFoldRun {
        tmp,
        job,
        record,
        before,
        longer,
    }
}

/// With k folds, every fold's `last/` is taken up before any fold trains on: a damaged
/// second fold fails the resume before the first fold trains a further epoch under the new
/// options or the record says it did.
#[test]
fn a_kfold_resume_with_a_damaged_later_fold_trains_and_records_nothing() {
    let TwoFoldRun {
        tmp,
        job,
        record,
        before,
        longer,
    } = two_fold_run("train-resume-kfold");
    let log = |fold: &str| std::fs::read(job.run_dir.join(fold).join("log.jsonl")).unwrap();
    let first_fold_log = log("fold-0");

    let optimizer = job.run_dir.join("fold-1/last/optimizer.safetensors");
    let bytes = std::fs::read(&optimizer).unwrap();
    std::fs::write(&optimizer, &bytes[..bytes.len() / 2]).unwrap();
    let err = error_of(&longer, "a damaged second fold");
    assert!(
        err.contains("fold-1") && err.contains("optimizer.safetensors"),
        "{err}"
    );
    assert_eq!(std::fs::read(&record).unwrap(), before);
    assert_eq!(log("fold-0"), first_fold_log, "fold 0 trained on");

    // Mended, both folds train their second epoch and the record says 2.
    std::fs::write(&optimizer, &bytes).unwrap();
    let (outcomes, kfold) = run(&longer).expect("the resume trains on");
    assert_eq!((outcomes.len(), kfold.map(|k| k.folds)), (2, Some(2)));
    for o in &outcomes {
        let line = o.summary_line();
        assert!(line.contains("2 epochs (1 in this call) in"), "{line}");
    }
    let after: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&record).unwrap()).unwrap();
    assert_eq!(after["settings"]["epochs"], 2, "{after}");
    let _ = std::fs::remove_dir_all(&tmp);
}

/// A fold's `best/`, which its training reads last (its weights become the fold's model), is
/// checked with its `last/` before any fold trains: a `best/` whose weights are not its
/// config's failed the resume only after the earlier folds had trained on under the new
/// record (the `run_kfold` fuzz target, 2026-12-02).
#[test]
fn a_kfold_resume_with_a_damaged_later_best_checkpoint_trains_and_records_nothing() {
    let TwoFoldRun {
        tmp,
        job,
        record,
        before,
        longer,
    } = two_fold_run("train-resume-kfold-best");
    let fold_files = |fold: &str| {
        ["log.jsonl", "last/trainer_state.json", "model.safetensors"]
            .map(|f| std::fs::read(job.run_dir.join(fold).join(f)).unwrap())
    };
    let first_fold = fold_files("fold-0");

    // fold-1/best/config.json records fold 0's weights. Its epoch and loss are the trainer
    // state's, so the resume's catch-up of best/ leaves it as it is; both say 1e-9, so the
    // epoch the resume trains does not improve on it and replace best/.
    let config_path = job.run_dir.join("fold-1/best/config.json");
    let state_path = job.run_dir.join("fold-1/last/trainer_state.json");
    let good = std::fs::read(&config_path).unwrap();
    let good_state = std::fs::read(&state_path).unwrap();
    let mut state: serde_json::Value = serde_json::from_slice(&good_state).unwrap();
    state["best_loss"] = serde_json::json!(1e-9);
    std::fs::write(&state_path, serde_json::to_vec_pretty(&state).unwrap()).unwrap();
    let digest_of = |fold: &str| {
        let config: serde_json::Value = serde_json::from_slice(
            &std::fs::read(job.run_dir.join(fold).join("best/config.json")).unwrap(),
        )
        .unwrap();
        config["weights_digest"].clone()
    };
    let mut config: serde_json::Value = serde_json::from_slice(&good).unwrap();
    assert_ne!(digest_of("fold-0"), config["weights_digest"]);
    config["weights_digest"] = digest_of("fold-0");
    config["metadata"]["monitored_loss"] = serde_json::json!(1e-9);
    std::fs::write(&config_path, serde_json::to_vec_pretty(&config).unwrap()).unwrap();
    let err = error_of(&longer, "a damaged best/ in the second fold");
    assert!(
        err.contains("fold-1") && err.contains("best") && err.contains("model.safetensors"),
        "{err}"
    );
    assert!(
        std::fs::read(&record).unwrap() == before,
        "the record changed: {err}"
    );
    assert!(
        fold_files("fold-0") == first_fold,
        "fold 0 trained on: {err}"
    );

    // Mended, both folds train their second epoch.
    std::fs::write(&config_path, &good).unwrap();
    std::fs::write(&state_path, &good_state).unwrap();
    let (outcomes, _) = run(&longer).expect("the resume trains on");
    assert!(outcomes.iter().all(|o| o.summary.epochs_run == 2));
    let _ = std::fs::remove_dir_all(&tmp);
}

/// A resume with nothing to train whose log holds no epoch record (emptied, or only a line cut
/// short, which the resume drops) evaluates the run again without plotting curves: it failed
/// with "training log line 0: the log has no rows", naming no file, after the evaluation (and
/// with k folds, after the earlier folds had been written again; the `run_kfold` fuzz target,
/// 2026-12-02).
#[test]
fn a_resume_whose_log_holds_no_record_skips_the_curves() {
    let tmp = temp_dir("train-resume-empty-log");
    let job = tiny_job(tmp.join("run"));
    run(&job).expect("the first run trains");
    let again = TrainJob {
        resume: true,
        ..job.clone()
    };
    let log = job.run_dir.join("log.jsonl");
    for text in ["", "\n\n", "{\"epo"] {
        std::fs::write(&log, text).unwrap();
        let (outcomes, _) = run(&again).unwrap_or_else(|e| panic!("{text:?}: {e}"));
        assert_eq!(outcomes[0].summary.epochs_run, 1);
        assert!(outcomes[0].summary.epochs.is_empty(), "{text:?}");
    }
    let _ = std::fs::remove_dir_all(&tmp);
}

/// A `best/` that lost its weights file but kept its config was passed by the resume check,
/// which loaded `best/`'s weights only when the file was there: the run then took its final
/// weights for the model while recording `best/`'s epoch, and left a `best/` that does not
/// load (the `interrupted_save` fuzz target, 2026-12-02).
#[test]
fn a_resume_refuses_a_best_checkpoint_without_its_weights_before_training() {
    let tmp = temp_dir("train-resume-best-without-weights");
    let job = tiny_job(tmp.join("run"));
    run(&job).expect("the first run trains");
    let weights = job.run_dir.join("best/model.safetensors");
    std::fs::remove_file(&weights).unwrap();
    let record = || {
        [
            "last/trainer_state.json",
            "log.jsonl",
            xray_seg::train::RUN_OPTIONS_FILE,
        ]
        .map(|f| std::fs::read(job.run_dir.join(f)).unwrap())
    };
    let before = record();
    let longer = TrainJob {
        resume: true,
        epochs: 2,
        ..job.clone()
    };
    let err = error_of(&longer, "a best/ without its weights");
    assert!(err.contains(&weights.display().to_string()), "{err}");
    assert!(
        record() == before,
        "the resume trained or recorded something: {err}"
    );
    std::fs::remove_dir_all(&tmp).ok();
}

/// A process stopped between an atomic write and its rename leaves the temporary file
/// (`.<name>.tmp-<pid>`) beside the file it was to replace: a fold's final model or config,
/// its `train_config.json` when it started, the run's `kfold.json`. A resume writes each of
/// them again but kept the temporary ones for good, each as large as its file (the
/// `interrupted_kfold_save` fuzz target, 2026-12-02); a refused resume still keeps them.
#[test]
fn a_kfold_resume_removes_the_temporary_files_a_crash_left() {
    let tmp = temp_dir("train-resume-kfold-tmp");
    let job = TrainJob {
        kfold: Some(3),
        synth_count: 9,
        ..tiny_job(tmp.join("run"))
    };
    run(&job).expect("the first run trains the three folds");
    let run_dir = &job.run_dir;
    // The pid of a stopped process (above Linux's largest, so never a live one).
    let stale = |name: &str| format!(".{name}.tmp-4194305");
    let half = |path: &Path| {
        let bytes = std::fs::read(path).unwrap();
        bytes[..bytes.len() / 2].to_vec()
    };
    let left = [
        ("fold-1", "model.safetensors"),
        ("fold-1", "config.json"),
        ("fold-2", "train_config.json"),
        ("", "kfold.json"),
    ]
    .map(|(fold, name)| {
        let dir = run_dir.join(fold);
        let path = dir.join(stale(name));
        std::fs::write(&path, half(&dir.join(name))).unwrap();
        path
    });
    let temporaries = || -> Vec<PathBuf> {
        let mut found = Vec::new();
        for dir in ["", "fold-0", "fold-1", "fold-2"] {
            for entry in std::fs::read_dir(run_dir.join(dir)).unwrap() {
                let path = entry.unwrap().path();
                if path.to_string_lossy().contains(".tmp-") {
                    found.push(path);
                }
            }
        }
        found.sort();
        found
    };
    let mut expected = left.to_vec();
    expected.sort();
    assert_eq!(temporaries(), expected);

    // Refused (another seed): nothing is removed.
    let refused = TrainJob {
        resume: true,
        seed: 6,
        ..job.clone()
    };
    let err = error_of(&refused, "a resume with another seed");
    assert!(err.contains("--seed"), "{err}");
    assert_eq!(temporaries(), expected, "{err}");

    let (outcomes, kfold) = run(&TrainJob {
        resume: true,
        ..job.clone()
    })
    .expect("the resume evaluates the folds again");
    assert_eq!((outcomes.len(), kfold.map(|k| k.folds)), (3, Some(3)));
    assert_eq!(
        temporaries(),
        Vec::<PathBuf>::new(),
        "a crash's temporary files outlived the resume"
    );
    let _ = std::fs::remove_dir_all(&tmp);
}
