//! The trainer: logging, best/last checkpoints, early stopping, resume, NaN handling.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use candle_core::{DType, Device, Module, Tensor};
use candle_nn::{Init, VarBuilder, VarMap};
use xnet_model::checkpoint;
use xnet_model::loss::{BoundaryWeightConfig, LossConfig};
use xnet_model::models::ModelConfig;
use xnet_model::optim::{LrSchedule, OptimizerConfig};
use xnet_model::train::{
    evaluate, BatchSource, EpochRecord, InMemoryBatches, TrainBatch, TrainConfig, Trainer,
};
use xnet_model::{ModelError, Result, Segmenter};

/// A 3×3 convolution with deterministic (zero) initial weights; `poison` makes it return NaN.
struct Toy {
    weight: Tensor,
    bias: Tensor,
    poison: AtomicBool,
}

impl Toy {
    fn new(vb: VarBuilder) -> Self {
        Self {
            weight: vb
                .get_with_hints((3, 1, 3, 3), "conv.weight", Init::Const(0.0))
                .unwrap(),
            bias: vb.get_with_hints(3, "conv.bias", Init::Const(0.0)).unwrap(),
            poison: AtomicBool::new(false),
        }
    }
}

impl Module for Toy {
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let y = x
            .conv2d(&self.weight, 1, 1, 1, 1)?
            .broadcast_add(&self.bias.reshape((1, 3, 1, 1))?)?;
        if self.poison.load(Ordering::SeqCst) {
            y * f64::NAN
        } else {
            Ok(y)
        }
    }
}

impl Segmenter for Toy {
    fn num_classes(&self) -> usize {
        3
    }
    fn size_multiple(&self) -> usize {
        1
    }
    fn config(&self) -> ModelConfig {
        ModelConfig::default()
    }
    fn fold_batch_norm(&mut self) -> Result<usize> {
        Ok(0)
    }
}

/// Intensity bands → classes (0.9 open beam, 0.5 tissue, 0.1 bone), a few ignored pixels.
fn batch(seed: usize) -> TrainBatch {
    let (n, h, w) = (2, 12, 12);
    let mut images = Vec::new();
    let mut labels = Vec::new();
    for i in 0..n * h * w {
        let class = (i * 31 + seed * 7 + (i / 5) * 3) % 3;
        images.push([0.9f32, 0.5, 0.1][class] + ((i * 13) % 7) as f32 * 0.005);
        labels.push(if i % 29 == 0 { 255 } else { class as u8 });
    }
    TrainBatch::new(images, labels, n, h, w).unwrap()
}

fn sources() -> (InMemoryBatches, InMemoryBatches) {
    (
        InMemoryBatches::new(vec![batch(0), batch(1)]),
        InMemoryBatches::new(vec![batch(2)]),
    )
}

fn config(epochs: usize) -> TrainConfig {
    TrainConfig {
        epochs,
        optimizer: OptimizerConfig::adam(0.05),
        progress: false,
        early_stopping_patience: None,
        ..Default::default()
    }
}

fn temp_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("xnet-train-{tag}-{}", std::process::id()));
    std::fs::remove_dir_all(&d).ok();
    d
}

fn read_log(dir: &Path) -> Vec<EpochRecord> {
    std::fs::read_to_string(dir.join("log.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn weights(varmap: &VarMap) -> Vec<f32> {
    let data = varmap.data().lock().unwrap();
    let mut names: Vec<_> = data.keys().cloned().collect();
    names.sort();
    names
        .iter()
        .flat_map(|n| {
            data[n]
                .as_tensor()
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap()
        })
        .collect()
}

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

/// The toy network's weights saved in the checkpoint folder `dir`.
fn saved_weights(dir: &Path) -> Vec<f32> {
    let dev = Device::Cpu;
    let vm = VarMap::new();
    let _toy = Toy::new(VarBuilder::from_varmap(&vm, DType::F32, &dev));
    checkpoint::load_weights_into(&vm, &dir.join("model.safetensors"), &dev).unwrap();
    weights(&vm)
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
