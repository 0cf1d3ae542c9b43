//! A job's options checked before any file is written or image read.

use xnet_model::error::readable_number;
use xray_data::augment::Pipeline as Augment;

use crate::prepare::Preprocess;
use crate::{Error, Result};

use super::{loss_config, model_config, TrainJob};

/// Checks a job's options before any file is written or image read: the budget, the
/// network and its input size, the optimiser, loss and augmentation settings, the synthetic
/// data's size and the number of folds.
pub(crate) fn check_job(job: &TrainJob) -> Result<()> {
    // Each option that is 0, by its flag. The patience is left out while the epochs are 0:
    // `compare` derives its patience from `--epochs`, and a patience cannot be judged
    // without a budget, so `--epochs 0` must not also report a `--patience` never given.
    let mut counts = vec![
        ("--epochs", job.epochs == 0),
        ("--batch", job.batch == 0),
        ("--size", job.size == 0),
        ("--width", job.width == 0),
    ];
    if job.epochs > 0 {
        counts.push(("--patience", job.patience == 0));
    }
    let zero: Vec<String> = counts
        .into_iter()
        .filter(|&(_, is_zero)| is_zero)
        .map(|(flag, _)| format!("{flag} must be at least 1, got 0"))
        .collect();
    if !zero.is_empty() {
        return Err(Error::Invalid(zero.join("; ")));
    }
    if job.data.is_none() && (job.invert || job.allow_rgb) {
        return Err(Error::Invalid(format!(
            "{} applies to a dataset folder's images (--data): synthetic data is written in \
             grey and in the project's polarity (larger = more X-rays)",
            if job.invert {
                "--invert"
            } else {
                "--allow-rgb"
            }
        )));
    }
    // The network and its input size, before any file is written or image read.
    let config = model_config(job.arch, job.width, job.upsampling);
    config.validate()?;
    Preprocess::square(job.size).validate(config.size_multiple())?;
    // The network computes in f32: a value that rounds to infinity there (beyond f32::MAX,
    // such as 1e308, which f64 holds) is refused here by its flag, as the optimiser and the
    // loss would refuse it later under their own field names ("optimizer lr", "l2").
    let in_f32 = |v: f64| (v as f32).is_finite();
    if !(job.lr.is_finite() && job.lr > 0.0 && in_f32(job.lr)) {
        return Err(Error::Invalid(format!(
            "--lr must be a finite number > 0 and no larger than {} (the network computes in \
             f32, where a larger value is infinity), got {}",
            readable_number(f32::MAX),
            readable_number(job.lr)
        )));
    }
    if !(job.l2.is_finite() && job.l2 >= 0.0 && in_f32(job.l2)) {
        return Err(Error::Invalid(format!(
            "--l2 must be finite, ≥ 0 and no larger than {} (the network computes in f32, \
             where a larger value is infinity), got {}",
            readable_number(f32::MAX),
            readable_number(job.l2)
        )));
    }
    loss_config(job).validate(config.num_classes())?;
    if job.augment {
        Augment::from_config(&job.augment_config)
            .and_then(|_| {
                let classes = u8::try_from(config.num_classes()).unwrap_or(u8::MAX);
                job.augment_config.check_mask_labels(classes)
            })
            .map_err(|e| Error::Invalid(format!("augmentation pipeline: {e}")))?;
    }
    if job.data.is_none() && job.synth_count < 6 {
        return Err(Error::Invalid(format!(
            "--synth-count must be at least 6 without --data (a train/val/test split of \
             synthetic images), got {}",
            job.synth_count
        )));
    }
    if let Some(k) = job.kfold {
        if k < 2 {
            return Err(Error::Invalid(format!("--kfold needs k ≥ 2, got {k}")));
        }
        if job.data.is_none() && k > job.synth_count {
            return Err(Error::Invalid(format!(
                "--kfold {k} needs at least {k} images, but --synth-count is {}",
                job.synth_count
            )));
        }
    }
    // The phantoms' size, here rather than when the data are generated: by then the run's
    // options are recorded, and a run refused so late could not be retried under its name.
    if job.data.is_none() {
        xray_data::synth::PhantomConfig::with_size(job.synth_size)
            .validate()
            .map_err(|e| Error::Invalid(format!("--synth-size {}: {e}", job.synth_size)))?;
    }
    Ok(())
}
