//! The trainer: logging, best/last checkpoints, early stopping, resume, NaN handling.

use std::path::PathBuf;
use std::sync::atomic::Ordering;

use candle_core::{DType, Device};
use candle_nn::{VarBuilder, VarMap};
use xnet_model::checkpoint;
use xnet_model::loss::{BoundaryWeightConfig, LossConfig};
use xnet_model::optim::{LrSchedule, OptimizerConfig};
use xnet_model::train::{evaluate, BatchSource, InMemoryBatches, TrainBatch, TrainConfig, Trainer};
use xnet_model::{ModelError, Result};

mod toy_trainer;

use toy_trainer::{batch, config, read_log, sources, temp_dir, weights, Toy};

#[test]
fn fit_logs_checkpoints_and_learns() {
    let dir = temp_dir("fit");
    let dev = Device::Cpu;
    let varmap = VarMap::new();
    let toy = Toy::new(VarBuilder::from_varmap(&varmap, DType::F32, &dev));
    let (mut train, mut val) = sources();
    let mut cfg = config(12);
    cfg.schedule = LrSchedule::Step {
        step_size: 6,
        gamma: 0.5,
    };
    cfg.grad_clip_norm = Some(5.0);
    let mut trainer = Trainer::new(&toy, &varmap, cfg, &dev)
        .unwrap()
        .with_checkpoint_dir(&dir);
    let summary = trainer.fit(&mut train, Some(&mut val)).unwrap();
    assert_eq!(summary.epochs.len(), 12);
    assert!(!summary.stopped_early);
    let first = &summary.epochs[0];
    let last = &summary.epochs[11];
    assert!(
        last.val_loss.unwrap() < 0.5 * first.val_loss.unwrap(),
        "{first:?} → {last:?}"
    );
    assert!(last.val_accuracy.unwrap() > 0.95, "{last:?}");
    assert_eq!(first.lr, 0.05);
    assert_eq!(
        last.lr, 0.025,
        "step schedule halves the rate after 6 epochs"
    );
    assert!(last.l2_penalty > 0.0);
    // The log on disk holds the records returned (to JSON's decimal precision).
    let log = read_log(&dir);
    assert_eq!(log.len(), summary.epochs.len());
    for (a, b) in log.iter().zip(&summary.epochs) {
        assert_eq!((a.epoch, a.best, a.lr), (b.epoch, b.best, b.lr));
        assert!((a.train_loss - b.train_loss).abs() < 1e-12);
        assert!((a.val_loss.unwrap() - b.val_loss.unwrap()).abs() < 1e-12);
    }
    // Best checkpoint: loadable, metadata names its epoch.
    let best = checkpoint::read_config(&dir.join("best")).unwrap();
    assert_eq!(
        best.metadata["epoch"].as_u64().map(|e| e as usize),
        summary.best_epoch
    );
    assert!(dir.join("last/optimizer.safetensors").is_file());
    assert!(dir.join("train_config.json").is_file());
    // Evaluating the trained model on the validation source agrees with the last record.
    let e = evaluate(&toy, &mut val, &LossConfig::default(), &dev).unwrap();
    assert!((e.loss - last.val_loss.unwrap()).abs() < 1e-6);
    assert_eq!(e.pixels, 2 * 144 - (0..288).filter(|i| i % 29 == 0).count());
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn early_stopping_after_patience() {
    let dev = Device::Cpu;
    let varmap = VarMap::new();
    let toy = Toy::new(VarBuilder::from_varmap(&varmap, DType::F32, &dev));
    let (mut train, mut val) = sources();
    let cfg = TrainConfig {
        early_stopping_patience: Some(2),
        min_delta: 10.0, // no improvement can be this large
        ..config(20)
    };
    let mut trainer = Trainer::new(&toy, &varmap, cfg, &dev).unwrap();
    let summary = trainer.fit(&mut train, Some(&mut val)).unwrap();
    assert!(summary.stopped_early);
    assert_eq!(
        summary.epochs.len(),
        3,
        "epoch 0 is the best; 1 and 2 do not improve"
    );
    assert_eq!(summary.best_epoch, Some(0));
    assert!(summary.epochs[0].best && !summary.epochs[1].best);
}

#[test]
fn resuming_an_early_stopped_run_changes_nothing_unless_patience_grows() {
    let dev = Device::Cpu;
    let dir = temp_dir("resume-stopped");
    let stopping = TrainConfig {
        early_stopping_patience: Some(2),
        min_delta: 10.0, // no improvement can be this large: stops after epoch 2
        ..config(20)
    };
    let (mut train, mut val) = sources();
    let vm = VarMap::new();
    let toy = Toy::new(VarBuilder::from_varmap(&vm, DType::F32, &dev));
    let first = Trainer::new(&toy, &vm, stopping.clone(), &dev)
        .unwrap()
        .with_checkpoint_dir(&dir)
        .fit(&mut train, Some(&mut val))
        .unwrap();
    assert!(first.stopped_early);
    assert_eq!(first.epochs_run, 3);
    let before = weights(&vm);

    // Resumed under the same patience: no epoch, same weights, same log.
    let vm2 = VarMap::new();
    let toy2 = Toy::new(VarBuilder::from_varmap(&vm2, DType::F32, &dev));
    let mut t = Trainer::new(&toy2, &vm2, stopping.clone(), &dev)
        .unwrap()
        .with_checkpoint_dir(&dir);
    assert_eq!(t.resume().unwrap(), Some(3));
    let again = t.fit(&mut train, Some(&mut val)).unwrap();
    assert!(again.stopped_early && again.epochs.is_empty());
    assert_eq!((again.epochs_run, again.best_epoch), (3, Some(0)));
    assert_eq!(weights(&vm2), before);
    assert_eq!(read_log(&dir).len(), 3);

    // Resumed with more patience: it goes on from epoch 3.
    let vm3 = VarMap::new();
    let toy3 = Toy::new(VarBuilder::from_varmap(&vm3, DType::F32, &dev));
    let patient = TrainConfig {
        early_stopping_patience: Some(4),
        ..stopping
    };
    let mut t = Trainer::new(&toy3, &vm3, patient, &dev)
        .unwrap()
        .with_checkpoint_dir(&dir);
    t.resume().unwrap();
    let more = t.fit(&mut train, Some(&mut val)).unwrap();
    assert_eq!(
        more.epochs.iter().map(|r| r.epoch).collect::<Vec<_>>(),
        vec![3, 4]
    );
    assert_eq!(more.epochs_run, 5);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn resume_continues_exactly() {
    let dev = Device::Cpu;
    let cfg4 = TrainConfig {
        schedule: LrSchedule::reduce_on_plateau(),
        ..config(4)
    };
    // Uninterrupted: four epochs.
    let vm_a = VarMap::new();
    let toy_a = Toy::new(VarBuilder::from_varmap(&vm_a, DType::F32, &dev));
    let (mut train, mut val) = sources();
    Trainer::new(&toy_a, &vm_a, cfg4.clone(), &dev)
        .unwrap()
        .fit(&mut train, Some(&mut val))
        .unwrap();

    // Two epochs, then a new process (fresh model and trainer) resumes to four.
    let dir = temp_dir("resume");
    let vm_b = VarMap::new();
    let toy_b = Toy::new(VarBuilder::from_varmap(&vm_b, DType::F32, &dev));
    let cfg2 = TrainConfig {
        epochs: 2,
        ..cfg4.clone()
    };
    let mut t = Trainer::new(&toy_b, &vm_b, cfg2, &dev)
        .unwrap()
        .with_checkpoint_dir(&dir);
    assert_eq!(t.resume().unwrap(), None);
    t.fit(&mut train, Some(&mut val)).unwrap();

    let vm_c = VarMap::new();
    let toy_c = Toy::new(VarBuilder::from_varmap(&vm_c, DType::F32, &dev));
    let mut t = Trainer::new(&toy_c, &vm_c, cfg4, &dev)
        .unwrap()
        .with_checkpoint_dir(&dir);
    assert_eq!(t.resume().unwrap(), Some(2));
    let summary = t.fit(&mut train, Some(&mut val)).unwrap();
    assert_eq!(
        summary.epochs.iter().map(|r| r.epoch).collect::<Vec<_>>(),
        vec![2, 3]
    );
    assert_eq!(
        weights(&vm_c),
        weights(&vm_a),
        "weights and optimiser state restored exactly"
    );
    assert_eq!(read_log(&dir).len(), 4);
    // A new run (not resumed) into the same directory starts a fresh log.
    let vm_d = VarMap::new();
    let toy_d = Toy::new(VarBuilder::from_varmap(&vm_d, DType::F32, &dev));
    let cfg1 = TrainConfig {
        epochs: 1,
        ..config(1)
    };
    let mut t = Trainer::new(&toy_d, &vm_d, cfg1, &dev)
        .unwrap()
        .with_checkpoint_dir(&dir);
    t.fit(&mut train, None).unwrap();
    assert_eq!(read_log(&dir).len(), 1);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn non_finite_loss_stops_and_keeps_the_last_good_checkpoint() {
    let dir = temp_dir("nan");
    let dev = Device::Cpu;
    let varmap = VarMap::new();
    let toy = Toy::new(VarBuilder::from_varmap(&varmap, DType::F32, &dev));
    let (mut train, mut val) = sources();
    let mut t = Trainer::new(&toy, &varmap, config(1), &dev)
        .unwrap()
        .with_checkpoint_dir(&dir);
    t.fit(&mut train, Some(&mut val)).unwrap();
    let good = weights(&varmap);

    toy.poison.store(true, Ordering::SeqCst);
    let mut t = Trainer::new(&toy, &varmap, config(3), &dev)
        .unwrap()
        .with_checkpoint_dir(&dir);
    assert_eq!(t.resume().unwrap(), Some(1));
    let err = t.fit(&mut train, Some(&mut val)).unwrap_err();
    match &err {
        ModelError::NonFinite {
            what,
            epoch,
            batch,
            checkpoint,
            ..
        } => {
            assert_eq!((*what, *epoch, *batch), ("loss", 1, 0));
            assert_eq!(checkpoint.as_deref(), Some(dir.join("last").as_path()));
        }
        other => panic!("expected NonFinite, got {other}"),
    }
    assert!(err.to_string().contains("last good checkpoint"), "{err}");
    // The failing update was not applied, and the checkpoint holds the good weights.
    assert_eq!(weights(&varmap), good);
    let vm = VarMap::new();
    Toy::new(VarBuilder::from_varmap(&vm, DType::F32, &dev));
    checkpoint::load_weights_into(&vm, &dir.join("last/model.safetensors"), &dev).unwrap();
    assert_eq!(weights(&vm), good);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn boundary_weighted_training_runs() {
    let dev = Device::Cpu;
    let varmap = VarMap::new();
    let toy = Toy::new(VarBuilder::from_varmap(&varmap, DType::F32, &dev));
    let (mut train, _) = sources();
    let mut cfg = config(2);
    cfg.loss.boundary = Some(BoundaryWeightConfig::default());
    let summary = Trainer::new(&toy, &varmap, cfg, &dev)
        .unwrap()
        .fit(&mut train, None)
        .unwrap();
    assert!(summary
        .epochs
        .iter()
        .all(|r| r.train_loss.is_finite() && r.val_loss.is_none()));
}

#[test]
fn bad_batches_and_configs_are_errors() {
    let dev = Device::Cpu;
    let varmap = VarMap::new();
    let toy = Toy::new(VarBuilder::from_varmap(&varmap, DType::F32, &dev));
    assert!(TrainBatch::new(vec![0.0; 3], vec![0; 4], 1, 2, 2).is_err());
    let mut b = batch(0);
    b.labels[12 * 3 + 5] = 7;
    let mut t = Trainer::new(&toy, &varmap, config(1), &dev).unwrap();
    let e = t.train_step(&b).unwrap_err().to_string();
    assert!(e.contains("label 7") && e.contains("x=5, y=3"), "{e}");
    for bad in [
        TrainConfig {
            epochs: 0,
            ..config(1)
        },
        TrainConfig {
            early_stopping_patience: Some(0),
            ..config(1)
        },
        TrainConfig {
            grad_clip_norm: Some(-1.0),
            ..config(1)
        },
        TrainConfig {
            optimizer: OptimizerConfig::adam(0.0),
            ..config(1)
        },
    ] {
        assert!(Trainer::new(&toy, &varmap, bad, &dev).is_err());
    }
    // An empty source is an error, not a silent no-op.
    let mut empty = InMemoryBatches::default();
    assert!(t.fit(&mut empty, None).is_err());
    // TrainConfig round-trips through JSON, and missing fields take defaults.
    let json = serde_json::to_string(&TrainConfig::default()).unwrap();
    assert_eq!(
        serde_json::from_str::<TrainConfig>(&json).unwrap(),
        TrainConfig::default()
    );
    let partial: TrainConfig = serde_json::from_str(r#"{"epochs": 3}"#).unwrap();
    assert_eq!(partial.epochs, 3);
    assert_eq!(partial.loss.l2, 5e-4);
    // A source's errors pass through.
    struct Failing;
    impl BatchSource for Failing {
        fn epoch_batches(&mut self, _: usize) -> Box<dyn Iterator<Item = Result<TrainBatch>> + '_> {
            Box::new(std::iter::once(Err(ModelError::Data(
                "disk on fire".into(),
            ))))
        }
    }
    let e = t.fit(&mut Failing, None).unwrap_err().to_string();
    assert!(e.contains("disk on fire"), "{e}");
}

/// A fresh folder `tag` holding a finished two-epoch run of the toy network.
fn two_epoch_run(tag: &str, train: &mut InMemoryBatches, val: &mut InMemoryBatches) -> PathBuf {
    let dev = Device::Cpu;
    let dir = temp_dir(tag);
    let vm = VarMap::new();
    let toy = Toy::new(VarBuilder::from_varmap(&vm, DType::F32, &dev));
    Trainer::new(&toy, &vm, config(2), &dev)
        .unwrap()
        .with_checkpoint_dir(&dir)
        .fit(train, Some(val))
        .unwrap();
    dir
}

#[test]
fn a_resumed_run_logs_each_epoch_once_even_after_a_crash_between_log_and_checkpoint() {
    let dev = Device::Cpu;
    let (mut train, mut val) = sources();
    let dir = two_epoch_run("log-crash", &mut train, &mut val);
    // The record of epoch 2 was written, its checkpoint was not, and the process died in
    // the middle of one more line.
    let log = dir.join("log.jsonl");
    let mut text = std::fs::read_to_string(&log).unwrap();
    let mut extra = read_log(&dir)[1].clone();
    extra.epoch = 2;
    text.push_str(&serde_json::to_string(&extra).unwrap());
    text.push_str("\n{\"epoch\": 3, \"train_lo");
    std::fs::write(&log, text).unwrap();

    let vm = VarMap::new();
    let toy = Toy::new(VarBuilder::from_varmap(&vm, DType::F32, &dev));
    let mut t = Trainer::new(&toy, &vm, config(4), &dev)
        .unwrap()
        .with_checkpoint_dir(&dir);
    assert_eq!(t.resume().unwrap(), Some(2));
    assert_eq!(
        read_log(&dir).iter().map(|r| r.epoch).collect::<Vec<_>>(),
        [0, 1]
    );
    t.fit(&mut train, Some(&mut val)).unwrap();
    assert_eq!(
        read_log(&dir).iter().map(|r| r.epoch).collect::<Vec<_>>(),
        [0, 1, 2, 3]
    );
    std::fs::remove_dir_all(&dir).ok();
}

/// A damaged line that is not the last one cannot come from a crash: the resume refuses and
/// leaves the log as it was (it used to delete the line and go on).
#[test]
fn a_damaged_log_line_before_the_last_is_refused_and_kept() {
    let dev = Device::Cpu;
    let (mut train, mut val) = sources();
    let dir = two_epoch_run("log-damaged", &mut train, &mut val);
    let log = dir.join("log.jsonl");
    let text = std::fs::read_to_string(&log).unwrap();
    let second = text.lines().nth(1).unwrap().to_string();
    let damaged = format!("{{\"epoch\": 0, \"train_lo\n{second}\n");
    std::fs::write(&log, &damaged).unwrap();
    let vm = VarMap::new();
    let toy = Toy::new(VarBuilder::from_varmap(&vm, DType::F32, &dev));
    let mut t = Trainer::new(&toy, &vm, config(4), &dev)
        .unwrap()
        .with_checkpoint_dir(&dir);
    let err = t.resume().unwrap_err().to_string();
    assert!(
        err.contains("log.jsonl: line 1 is not an epoch record") && err.contains("left as it is"),
        "{err}"
    );
    assert_eq!(std::fs::read_to_string(&log).unwrap(), damaged);
    // Blank lines hold no record: a log ending in one resumes (it was refused for a moment).
    std::fs::write(&log, format!("{text}\n")).unwrap();
    assert_eq!(t.resume().unwrap(), Some(2));
    assert_eq!(read_log(&dir).len(), 2);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn resuming_with_another_schedule_or_rate_continues_on_the_new_one() {
    let dev = Device::Cpu;
    let cosine = |t_max: usize, lr: f64| TrainConfig {
        schedule: LrSchedule::Cosine {
            t_max,
            eta_min: 0.005,
        },
        optimizer: OptimizerConfig::adam(lr),
        ..config(t_max)
    };
    let (mut train, mut val) = sources();
    let dir = temp_dir("resume-schedule");
    let run = |cfg: TrainConfig, train: &mut InMemoryBatches, val: &mut InMemoryBatches| {
        let vm = VarMap::new();
        let toy = Toy::new(VarBuilder::from_varmap(&vm, DType::F32, &dev));
        let mut t = Trainer::new(&toy, &vm, cfg, &dev)
            .unwrap()
            .with_checkpoint_dir(&dir);
        t.resume().unwrap();
        t.fit(train, Some(val)).unwrap()
    };
    // A finished two-epoch cosine run ends at its floor...
    run(cosine(2, 0.05), &mut train, &mut val);
    // ...and extended to four epochs it follows the four-epoch cosine from epoch 2, not
    // the old one's floor (0.005).
    let summary = run(cosine(4, 0.05), &mut train, &mut val);
    let lrs: Vec<f64> = summary.epochs.iter().map(|r| r.lr).collect();
    let want = |epoch: usize, t_max: usize, lr: f64| {
        0.005
            + (lr - 0.005) * (1.0 + (std::f64::consts::PI * epoch as f64 / t_max as f64).cos())
                / 2.0
    };
    assert_eq!(lrs.len(), 2);
    for (got, epoch) in lrs.iter().zip([2, 3]) {
        assert!((got - want(epoch, 4, 0.05)).abs() < 1e-12, "{lrs:?}");
    }
    // A new learning rate takes effect too (it used to be ignored for the stored one).
    let summary = run(cosine(5, 0.1), &mut train, &mut val);
    assert_eq!(summary.epochs.len(), 1);
    assert!(
        (summary.epochs[0].lr - want(4, 5, 0.1)).abs() < 1e-12,
        "{:?}",
        summary.epochs[0].lr
    );
    assert_eq!(read_log(&dir).len(), 5);
    std::fs::remove_dir_all(&dir).ok();
}

/// A batch with the wrong number of values says how many its images need, in words that
/// agree with their number ("batch of 1 images" before).
#[test]
fn wrong_batch_lengths_count_images_in_singular_and_plural() {
    for (n, want) in [
        (1, "batch of 1 image of 2×2 needs 4 pixels"),
        (2, "batch of 2 images of 2×2 needs 8 pixels"),
    ] {
        let e = TrainBatch::new(vec![0.0; 3], vec![0; 3], n, 2, 2)
            .unwrap_err()
            .to_string();
        assert!(e.contains(want), "{e}");
    }
}

/// A pixel count `n · height · width` that overflows is refused: it panicked in debug
/// builds, and in release wrapped to 0, so that empty vectors passed as a valid batch.
#[test]
fn batch_sizes_whose_pixel_count_overflows_are_refused() {
    for (n, h, w) in [(1 << 32, 1 << 32, 1), (1, usize::MAX, 2), (5, 1 << 62, 1)] {
        let e = TrainBatch::new(vec![], vec![], n, h, w).unwrap_err();
        assert!(
            matches!(e, ModelError::InvalidInput(ref m) if m.contains("overflows")),
            "{n} × {h} × {w}: {e}"
        );
        let b = TrainBatch {
            images: vec![],
            labels: vec![],
            n,
            height: h,
            width: w,
        };
        assert!(b.validate(3, None).is_err());
        assert!(b.to_tensors(&Device::Cpu).is_err());
    }
}

/// A learning rate edited into `trainer_state.json` beyond the `f32` range (`1e308`, which
/// the file's f64 holds, would run as infinity in the f32 update) or below 0 is refused on
/// resume, naming the file, like a configured one.
#[test]
fn a_huge_learning_rate_in_the_trainer_state_is_refused_on_resume() {
    let dev = Device::Cpu;
    let (mut train, mut val) = sources();
    let dir = temp_dir("state-lr");
    let vm = VarMap::new();
    let toy = Toy::new(VarBuilder::from_varmap(&vm, DType::F32, &dev));
    Trainer::new(&toy, &vm, config(1), &dev)
        .unwrap()
        .with_checkpoint_dir(&dir)
        .fit(&mut train, Some(&mut val))
        .unwrap();
    let state_path = dir.join("last").join("trainer_state.json");
    let good = std::fs::read_to_string(&state_path).unwrap();
    let resume = || {
        let vm = VarMap::new();
        let toy = Toy::new(VarBuilder::from_varmap(&vm, DType::F32, &dev));
        let mut t = Trainer::new(&toy, &vm, config(3), &dev)
            .unwrap()
            .with_checkpoint_dir(&dir);
        t.resume().map(|_| ()).map_err(|e| e.to_string())
    };
    assert!(resume().is_ok());
    for (lr, expected) in [
        (1e308, "must be a finite number"),
        (-1e308, "must be a finite number"),
        (1e39, "must be a finite number"),
        (-0.5, "must be ≥ 0"),
    ] {
        let mut state: serde_json::Value = serde_json::from_str(&good).unwrap();
        state["scheduler"]["lr"] = serde_json::json!(lr);
        std::fs::write(&state_path, state.to_string()).unwrap();
        let e = resume().unwrap_err();
        assert!(e.contains("trainer_state.json"), "{lr}: {e}");
        assert!(e.contains("learning rate (lr)"), "{lr}: {e}");
        assert!(e.contains(expected), "{lr}: {e}");
    }
    std::fs::write(&state_path, &good).unwrap();
    assert!(resume().is_ok());
    std::fs::remove_dir_all(&dir).ok();
}

/// A trainer state whose best epoch is not one the run has trained (at or after its next
/// epoch), or which names a best epoch without a best loss or the other way round, is refused
/// on resume, naming the file: resumed, such a state trained on and recorded a best epoch
/// that `best/` does not hold (the `run_resume` fuzz target, 2026-12-02).
#[test]
fn a_trainer_state_with_an_untrained_or_half_recorded_best_epoch_is_refused_on_resume() {
    let dev = Device::Cpu;
    let (mut train, mut val) = sources();
    let dir = temp_dir("state-best");
    let vm = VarMap::new();
    let toy = Toy::new(VarBuilder::from_varmap(&vm, DType::F32, &dev));
    Trainer::new(&toy, &vm, config(1), &dev)
        .unwrap()
        .with_checkpoint_dir(&dir)
        .fit(&mut train, Some(&mut val))
        .unwrap();
    let state_path = dir.join("last").join("trainer_state.json");
    let good = std::fs::read_to_string(&state_path).unwrap();
    let resume = || {
        let vm = VarMap::new();
        let toy = Toy::new(VarBuilder::from_varmap(&vm, DType::F32, &dev));
        let mut t = Trainer::new(&toy, &vm, config(3), &dev)
            .unwrap()
            .with_checkpoint_dir(&dir);
        t.resume().map_err(|e| e.to_string())
    };
    assert_eq!(resume(), Ok(Some(1)));
    for (best_epoch, best_loss, expected) in [
        (serde_json::json!(1), serde_json::json!(0.5), "best_epoch 1"),
        (
            serde_json::json!(7),
            serde_json::json!(1e-4),
            "best_epoch 7",
        ),
        (
            serde_json::Value::Null,
            serde_json::json!(1e-4),
            "best_loss",
        ),
        (serde_json::json!(0), serde_json::Value::Null, "best_loss"),
    ] {
        let mut state: serde_json::Value = serde_json::from_str(&good).unwrap();
        state["best_epoch"] = best_epoch.clone();
        state["best_loss"] = best_loss.clone();
        std::fs::write(&state_path, state.to_string()).unwrap();
        let e = resume().unwrap_err();
        assert!(
            e.contains("trainer_state.json"),
            "{best_epoch} {best_loss}: {e}"
        );
        assert!(e.contains(expected), "{best_epoch} {best_loss}: {e}");
    }
    // Neither recorded (a run that has trained no epoch) is whole.
    let mut state: serde_json::Value = serde_json::from_str(&good).unwrap();
    state["best_epoch"] = serde_json::Value::Null;
    state["best_loss"] = serde_json::Value::Null;
    std::fs::write(&state_path, state.to_string()).unwrap();
    assert_eq!(resume(), Ok(Some(1)));
    std::fs::write(&state_path, &good).unwrap();
    assert_eq!(resume(), Ok(Some(1)));
    std::fs::remove_dir_all(&dir).ok();
}

/// A checkpoint directory that is a file (a run's `config.json` given as the run) was
/// reported by the OS as "File exists (os error 17)" from `fit`, and `resume` took it for a
/// run not started (`Ok(None)`). Both now refuse it as not a folder, naming it, and leave
/// the file as it was.
#[test]
fn a_checkpoint_dir_that_is_a_file_is_refused_as_such() {
    let dir = temp_dir("dir-is-file");
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("config.json");
    std::fs::write(&file, b"{}").unwrap();
    let dev = Device::Cpu;
    let varmap = VarMap::new();
    let toy = Toy::new(VarBuilder::from_varmap(&varmap, DType::F32, &dev));
    let (mut train, _) = sources();
    let mut trainer = Trainer::new(&toy, &varmap, config(1), &dev)
        .unwrap()
        .with_checkpoint_dir(&file);
    let resumed = trainer.resume();
    assert!(
        resumed.is_err(),
        "resume took a file for a run: {resumed:?}"
    );
    let fitted = trainer.fit(&mut train, None).map(|s| s.epochs_run);
    for e in [resumed.map(|_| ()), fitted.map(|_| ())] {
        let e = e.unwrap_err().to_string();
        assert!(
            e.contains("config.json") && e.contains("not a folder"),
            "{e}"
        );
    }
    assert_eq!(std::fs::read(&file).unwrap(), b"{}");
    std::fs::remove_dir_all(&dir).ok();
}
