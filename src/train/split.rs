//! Training one split (or fold): the network, the trainer and its resume, the evaluation on
//! the test split and the files written into its folder.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use candle_core::DType;
use candle_nn::VarMap;
use xnet_model::checkpoint;
use xnet_model::infer::FlipAverage;
use xnet_model::init::seeded_var_builder;
use xnet_model::models::Segmenter;
use xnet_model::optim::{LrSchedule, OptimizerConfig};
use xnet_model::train::{BatchSource, TrainConfig, Trainer};
use xnet_model::ModelConfig;
use xray_data::augment::Pipeline as Augment;
use xray_data::dataset::{Dataset, Split};

use crate::calibrate::{fit_temperature_on, record_temperature};
use crate::evaluate::{evaluate_samples, write_evaluation};
use crate::predict::{Predictor, FLIP_AVERAGE_KEY};
use crate::prepare::Preprocess;
use crate::segment::{segment_image, SegmentOptions};
use crate::source::DatasetSource;
use crate::{Error, Result};

use super::run_dir::refuse_restart_over_results;
use super::{check_job, check_splits, loss_config, model_config, TrainJob, TrainOutcome};

/// What inference needs to use a checkpoint's weights as they were trained: the
/// preprocessing record and the flip averaging (the run's own `config.json` adds the fitted
/// temperature). Written into `best/` and `last/` as well, so that `--weights RUN/best`
/// shapes its inputs like the run did instead of falling back to XNet's 200 × 200.
fn inference_metadata(
    preprocess: &Preprocess,
    flip_average: FlipAverage,
) -> serde_json::Map<String, serde_json::Value> {
    let mut m = serde_json::Map::new();
    m.insert("preprocess".into(), serde_json::json!(preprocess));
    m.insert(FLIP_AVERAGE_KEY.into(), serde_json::json!(flip_average));
    m
}

/// The job's network, its weights drawn from `--seed` (candle's CPU generator has no seed,
/// so the same seed gives the same initial weights only this way).
fn build_seeded(job: &TrainJob, config: &ModelConfig) -> Result<(VarMap, Box<dyn Segmenter>)> {
    let varmap = VarMap::new();
    let model = config.build(seeded_var_builder(
        &varmap,
        job.seed,
        DType::F32,
        &job.device,
    ))?;
    Ok((varmap, model))
}

/// The trainer of one split (or fold), saving its checkpoints into `dir`.
fn split_trainer<'a>(
    job: &TrainJob,
    model: &'a dyn Segmenter,
    varmap: &'a VarMap,
    dir: &Path,
    preprocess: &Preprocess,
) -> Result<Trainer<'a>> {
    let train_cfg = TrainConfig {
        epochs: job.epochs,
        optimizer: OptimizerConfig::adam(job.lr),
        schedule: LrSchedule::Cosine {
            t_max: job.epochs,
            eta_min: job.lr * 0.05,
        },
        early_stopping_patience: Some(job.patience.max(1)),
        progress: job.progress,
        loss: loss_config(job),
        ..TrainConfig::default()
    };
    Ok(Trainer::new(model, varmap, train_cfg, &job.device)?
        .with_checkpoint_dir(dir)
        .with_checkpoint_metadata(inference_metadata(preprocess, job.flip_average)))
}

/// Loads `dir/last` into `trainer` for a resume, refusing one that would restart over a
/// trained model or that has trained more epochs than `--epochs` already.
fn take_up_run(trainer: &mut Trainer<'_>, job: &TrainJob, dir: &Path) -> Result<()> {
    match trainer.resume()? {
        None => refuse_restart_over_results(dir),
        Some(next) if next > job.epochs => Err(Error::Invalid(format!(
            "{} has trained {next} epochs already, more than --epochs {}: nothing was \
             trained and its options stay recorded as they were; resume with --epochs above \
             {next} to train on",
            dir.display(),
            job.epochs
        ))),
        Some(_) => Ok(()),
    }
}

/// Checks that every split's (every fold's) run in `dirs` can be resumed, before any of them
/// trains: each one's `last/` is loaded as its resume will load it, then its `best/` weights,
/// which the split's training ends by loading (they become its model), then both are
/// dropped. A resume that fails then fails before it has trained or recorded anything, also
/// when a later fold's `last/` or `best/` is the damaged one.
///
/// # Errors
/// The first split's that [`take_up_run`] refuses, naming its folder, or whose `best/`
/// weights do not load ([`checkpoint::load_weights_into`]: not its config's, or damaged),
/// naming the file.
pub(super) fn check_resumable<'a>(
    job: &TrainJob,
    dirs: impl IntoIterator<Item = &'a Path>,
) -> Result<()> {
    let config = model_config(job.arch, job.width, job.upsampling);
    let preprocess = Preprocess::square(job.size);
    for dir in dirs {
        let (varmap, model) = build_seeded(job, &config)?;
        let mut trainer = split_trainer(job, model.as_ref(), &varmap, dir, &preprocess)?;
        take_up_run(&mut trainer, job, dir)?;
        drop(trainer);
        // After the take-up, which may have written `best/` from `last/`. A `best/` without
        // its weights file is refused too: the training would end on other weights.
        let best = dir.join("best");
        if best.exists() {
            checkpoint::load_weights_into(
                &varmap,
                &best.join(checkpoint::WEIGHTS_FILE),
                &job.device,
            )?;
        }
    }
    Ok(())
}

/// Trains on `split.train`, stops early on `split.val`, evaluates the best weights on
/// `split.test` and writes everything into `dir`. Every image of the split is read and
/// checked first ([`check_splits`]).
///
/// # Errors
/// As [`run`](super::run); also an empty train or validation subset.
///
/// # Examples
/// ```
/// use xnet_model::infer::FlipAverage;
/// use xray_data::dataset::Split;
/// use xray_seg::prepare::Preprocess;
/// use xray_seg::train::{open_dataset, plan_splits, train_split, TrainJob};
/// let dir = std::env::temp_dir().join(format!("xray-seg-doc-train-split-{}", std::process::id()));
/// let job = TrainJob {
///     run_dir: dir.clone(),
///     size: 32,
///     width: 2,
///     epochs: 1,
///     batch: 4,
///     synth_count: 6,
///     synth_size: 32,
///     augment: false,
///     flip_average: FlipAverage::Off,
///     calibrate: false,
///     progress: false,
///     overlays: 1,
///     ..TrainJob::default()
/// };
/// let ds = open_dataset(&job)?;
/// let (split, _) = plan_splits(&job, &ds.categories())?.remove(0);
/// let out = train_split(&job, &ds, &split, &dir.join("xnet"))?;
/// assert_eq!(out.split_sizes, [split.train.len(), split.val.len(), split.test.len()]);
/// assert_eq!(out.summary.epochs_run, 1);
/// assert_eq!(out.predictor.preprocess(), &Preprocess::square(32));
/// assert!(dir.join("xnet/model.safetensors").is_file() && dir.join("xnet/overlays").is_dir());
/// // Nothing to train on: refused before any folder is made.
/// let empty = Split { train: Vec::new(), ..split };
/// assert!(train_split(&job, &ds, &empty, &dir.join("empty")).is_err());
/// assert!(!dir.join("empty").exists());
/// # std::fs::remove_dir_all(&dir).ok();
/// # Ok::<(), xray_seg::Error>(())
/// ```
pub fn train_split(
    job: &TrainJob,
    ds: &Arc<Dataset>,
    split: &Split,
    dir: &Path,
) -> Result<TrainOutcome> {
    check_job(job)?;
    check_splits(ds, [split])?;
    train_checked_split(job, ds, split, dir)
}

/// [`train_split`] on a split [`check_splits`] has passed.
pub(super) fn train_checked_split(
    job: &TrainJob,
    ds: &Arc<Dataset>,
    split: &Split,
    dir: &Path,
) -> Result<TrainOutcome> {
    if split.train.is_empty() {
        return Err(Error::Invalid(
            "the split left no training images; more data is needed".into(),
        ));
    }
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let config = model_config(job.arch, job.width, job.upsampling);
    config.validate()?;
    let preprocess = Preprocess::square(job.size);
    preprocess.validate(config.size_multiple())?;

    let (varmap, model) = build_seeded(job, &config)?;
    let parameters = xnet_model::models::count_trainable_parameters(&varmap);
    let augment = if job.augment {
        Some(Augment::from_config(&job.augment_config)?)
    } else {
        None
    };
    let batch_cfg = preprocess.batch_config(job.batch, job.seed);
    let mut train_src = DatasetSource::training(
        ds.clone(),
        split.train.clone(),
        batch_cfg.clone(),
        job.balance,
        augment,
    )?;
    // A very small subset (e.g. a k-fold fold of a tiny set) may leave no validation image:
    // the trainer then monitors the training loss for early stopping and the best epoch.
    let mut val_src = if split.val.is_empty() {
        None
    } else {
        Some(DatasetSource::plain(
            ds.clone(),
            split.val.clone(),
            batch_cfg,
        )?)
    };

    let started = Instant::now();
    let summary = {
        let mut trainer = split_trainer(job, model.as_ref(), &varmap, dir, &preprocess)?;
        if job.resume {
            take_up_run(&mut trainer, job, dir)?;
        }
        trainer.fit(
            &mut train_src,
            val_src.as_mut().map(|v| v as &mut dyn BatchSource),
        )?
    };
    let train_seconds = started.elapsed().as_secs_f64();

    // The best epoch's weights become the run's model, with what inference needs to know.
    let best = dir.join("best");
    if best.join(checkpoint::WEIGHTS_FILE).exists() {
        checkpoint::load_weights_into(&varmap, &best.join(checkpoint::WEIGHTS_FILE), &job.device)?;
    }
    let mut predictor = Predictor::new(
        model,
        config.clone(),
        varmap.clone(),
        preprocess,
        &job.device,
    )?;
    predictor.set_flip_average(job.flip_average);
    // Calibrated on the validation split (the images that chose the best epoch), never on
    // the test split that the report scores.
    // A failed fit (say, validation masks that are all "ignore") must not throw away the
    // training: the run goes on uncalibrated, and says so.
    let temperature = if job.calibrate && !split.val.is_empty() {
        match fit_temperature_on(&predictor, ds, &split.val) {
            Ok(fit) => {
                predictor.set_temperature(fit.temperature)?;
                Some(fit)
            }
            Err(e) => {
                eprintln!(
                    "warning: no softmax temperature fitted, the run stays uncalibrated: {e}"
                );
                None
            }
        }
    } else {
        None
    };
    let mut metadata = serde_json::json!({
        "preprocess": preprocess,
        "seed": job.seed,
        "lr": job.lr,
        "l2": job.l2,
        "loss": job.loss,
        (FLIP_AVERAGE_KEY): job.flip_average,
        "augment": job.augment.then_some(&job.augment_config),
        "best_epoch": summary.best_epoch,
        "best_val_loss": summary.best_loss,
        "epochs_run": summary.epochs_run,
        "dataset": ds.root.display().to_string(),
    });
    if let (Some(fit), Some(metadata)) = (&temperature, metadata.as_object_mut()) {
        record_temperature(metadata, fit);
    }
    checkpoint::save(dir, &varmap, &config, metadata)?;

    let test: &[usize] = if split.test.is_empty() {
        &split.val
    } else {
        &split.test
    };
    let mut evaluation = evaluate_samples(&predictor, ds, test, Some(0.5))?;
    evaluation.report.temperature = temperature;
    write_evaluation(&evaluation, dir)?;
    // The curves of the log's records. A log without any (emptied by hand, or holding only a
    // line cut short, which the resume drops) has none to plot: a resume with nothing to train
    // used to fail on it here, after the evaluation.
    let log = dir.join("log.jsonl");
    let text = match std::fs::read_to_string(&log) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(Error::io(&log, e)),
    };
    if text.lines().any(|line| !line.trim().is_empty()) {
        let curves = xray_metrics::TrainingLog::parse(&text).map_err(|e| e.in_file(&log))?;
        xray_metrics::plot_training_curves(&curves, dir.join("training"))?;
    }
    write_overlays(
        &predictor,
        ds,
        &test[..test.len().min(job.overlays)],
        &dir.join("overlays"),
    )?;
    Ok(TrainOutcome {
        run_dir: dir.to_path_buf(),
        evaluation,
        summary,
        train_seconds,
        parameters,
        split_sizes: [split.train.len(), split.val.len(), split.test.len()],
        predictor,
    })
}

/// Segments the given samples into `dir` (labels, field, overlay per sample).
///
/// # Errors
/// Loading, network or file-system errors.
///
/// # Examples
/// ```
/// use candle_core::Device;
/// use xray_data::dataset::{Dataset, DatasetOptions};
/// use xray_seg::{predict::Predictor, train::write_overlays};
/// let dir = std::env::temp_dir().join(format!("xray-seg-doc-overlays-{}", std::process::id()));
/// xray_data::synth::generate_dataset(&dir.join("data"), 3, 48, 1)?;
/// let ds = Dataset::open(&dir.join("data"), &DatasetOptions::default())?;
/// let predictor = Predictor::load(&xray_seg::shipped_weights_dir(), &Device::Cpu)?;
/// write_overlays(&predictor, &ds, &[0, 2], &dir.join("overlays"))?;
/// // Labels, field mask, field JSON and overlay of each sample, named by its stem.
/// for stem in ["synth_00000", "synth_00002"] {
///     for suffix in ["labels.png", "field.png", "field.json", "overlay.png"] {
///         assert!(dir.join(format!("overlays/{stem}.{suffix}")).is_file());
///     }
/// }
/// assert!(!dir.join("overlays/synth_00001.overlay.png").exists());
/// # std::fs::remove_dir_all(&dir).ok();
/// # Ok::<(), xray_seg::Error>(())
/// ```
pub fn write_overlays(
    predictor: &Predictor,
    ds: &Dataset,
    indices: &[usize],
    dir: &Path,
) -> Result<()> {
    let opts = SegmentOptions::default();
    for &i in indices {
        let (image, _) = ds.load(i)?;
        let s = &ds.samples[i];
        segment_image(
            predictor,
            &image,
            &s.stem,
            &s.image.display().to_string(),
            dir,
            &opts,
        )?;
    }
    Ok(())
}
