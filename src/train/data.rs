//! The dataset a job trains on, its splits (or folds), and the checks of every image in them
//! before the first epoch.

use std::path::PathBuf;
use std::sync::Arc;

use rand::rngs::StdRng;
use rand::SeedableRng;
use xray_data::dataset::{stratified_kfold, xnet_split, Dataset, Split, SplitConfig};

use crate::{Error, Result};

use super::TrainJob;

/// The record of the seed a synthetic data set was generated with, beside its images
/// (`<run>/data/synthetic.json`).
const SYNTH_RECORD: &str = "synthetic.json";

/// A synthetic data set found in the run folder (an earlier run's, reused so that a resumed
/// run sees the same data) must be the one this job would generate: as many images, of the
/// same side, and (where its record says) of the same seed. `compare` reruns under the same
/// name, which `train_job.json` does not guard, once silently evaluated on the earlier run's
/// images whatever `--synth-count` said, and a rerun with another `--seed` on the images of
/// the earlier seed.
fn check_reused_synthetic(ds: &Dataset, job: &TrainJob) -> Result<()> {
    let record = ds.root.join(SYNTH_RECORD);
    if let Ok(text) = std::fs::read_to_string(&record) {
        let seed = serde_json::from_str::<serde_json::Value>(&text)
            .ok()
            .and_then(|v| v.get("seed").and_then(serde_json::Value::as_u64));
        if seed != Some(job.seed) {
            return Err(Error::Invalid(format!(
                "{} holds an earlier run's synthetic data set of {} ({}), not the one of \
                 --seed {} this call asks for: use another --name, or remove the folder to \
                 generate it again",
                ds.root.display(),
                seed.map_or("an unreadable seed".to_string(), |s| format!("--seed {s}")),
                record.display(),
                job.seed
            )));
        }
    }
    let size = match ds.samples.first() {
        Some(s) => Some(
            image::image_dimensions(&s.image)
                .map_err(|e| Error::io(&s.image, std::io::Error::other(e)))?,
        ),
        None => None,
    };
    let want = (job.synth_size, job.synth_size);
    if ds.len() == job.synth_count && size.is_none_or(|s| s == want) {
        return Ok(());
    }
    Err(Error::Invalid(format!(
        "{} holds an earlier run's synthetic data set ({} image(s){}), not the {} image(s) of \
         {}x{} this call asks for (--synth-count, --synth-size): use another --name, or \
         remove the folder to generate it again",
        ds.root.display(),
        ds.len(),
        size.map_or(String::new(), |(w, h)| format!(" of {w}x{h}")),
        job.synth_count,
        job.synth_size,
        job.synth_size
    )))
}

/// Opens the job's dataset, generating the synthetic one first when no folder is given (and
/// reusing it when it is already there, so a resumed run sees the same data; it must then
/// hold as many images of the same side, and of the same seed, as the job asks for).
///
/// # Errors
/// Dataset errors (named files), generation errors, a reused synthetic data set of another
/// count or size.
///
/// # Examples
/// ```
/// use xray_seg::train::{open_dataset, TrainJob};
/// let run = std::env::temp_dir().join(format!("xray-seg-doc-open-{}", std::process::id()));
/// let job = TrainJob { run_dir: run.clone(), synth_count: 6, synth_size: 32, ..TrainJob::default() };
/// let ds = open_dataset(&job)?; // no `data`: generated into <run>/data
/// assert_eq!((ds.len(), ds.root.clone()), (6, run.join("data")));
/// assert!(ds.has_masks());
/// // Opened again it is reused, and must then be the data set the job asks for.
/// assert_eq!(open_dataset(&job)?.samples, ds.samples);
/// let e = open_dataset(&TrainJob { synth_count: 8, ..job.clone() }).unwrap_err();
/// assert!(e.to_string().contains("earlier run's synthetic data set"), "{e}");
/// // Nor is one of another seed (recorded in <run>/data/synthetic.json).
/// let e = open_dataset(&TrainJob { seed: 2, ..job }).unwrap_err();
/// assert!(e.to_string().contains("--seed 1") && e.to_string().contains("--seed 2"), "{e}");
/// # std::fs::remove_dir_all(&run).ok();
/// # Ok::<(), xray_seg::Error>(())
/// ```
pub fn open_dataset(job: &TrainJob) -> Result<Arc<Dataset>> {
    let mut reused = false;
    let root = match &job.data {
        Some(d) => d.clone(),
        None => {
            let dir = job.run_dir.join("data");
            if dir.join("categories.csv").exists() {
                reused = true;
            } else {
                xray_data::synth::generate_dataset(
                    &dir,
                    job.synth_count,
                    job.synth_size,
                    job.seed,
                )?;
                // What a later reuse is checked against (a data set of an earlier version,
                // without it, is checked by count and size only).
                let record = serde_json::json!({
                    "seed": job.seed,
                    "count": job.synth_count,
                    "size": job.synth_size,
                });
                xnet_model::checkpoint::write_bytes_atomic(
                    &dir.join(SYNTH_RECORD),
                    record.to_string().as_bytes(),
                )?;
            }
            dir
        }
    };
    let ds = Dataset::open(&root, &job.dataset_options())?;
    if reused {
        check_reused_synthetic(&ds, job)?;
    }
    if ds.is_empty() {
        return Err(Error::Invalid(format!(
            "{}: the dataset is empty",
            root.display()
        )));
    }
    if !ds.has_masks() {
        return Err(Error::Invalid(format!(
            "{}: training needs masks/ beside images/",
            root.display()
        )));
    }
    Ok(Arc::new(ds))
}

/// The splits a job trains on, with the directory of each: one XNet split in the run
/// directory, or k folds in `<run>/fold-<k>/` (each fold's training part gives up a
/// validation share for early stopping). Drawn from `job.seed` only.
///
/// # Errors
/// Splitting errors (too few images, bad k).
///
/// # Examples
/// ```
/// use std::path::Path;
/// use xray_seg::train::{plan_splits, TrainJob};
/// let categories: Vec<String> = ["hand", "knee"].iter().cycle().take(20).map(|c| c.to_string()).collect();
/// let job = TrainJob { run_dir: "runs/hip".into(), ..TrainJob::default() };
/// let plan = plan_splits(&job, &categories)?;
/// assert_eq!(plan.len(), 1);
/// assert_eq!(plan[0].1, Path::new("runs/hip"));
/// let s = &plan[0].0;
/// let mut all: Vec<usize> = s.train.iter().chain(&s.val).chain(&s.test).copied().collect();
/// all.sort();
/// assert_eq!(all, (0..20).collect::<Vec<_>>()); // every image in exactly one part
/// assert_eq!(plan_splits(&job, &categories)?, plan); // drawn from the seed alone
/// // Three folds: each image is tested in exactly one of them.
/// let folds = plan_splits(&TrainJob { kfold: Some(3), ..job.clone() }, &categories)?;
/// assert_eq!(folds[2].1, Path::new("runs/hip/fold-2"));
/// let mut tested: Vec<usize> = folds.iter().flat_map(|(s, _)| s.test.clone()).collect();
/// tested.sort();
/// assert_eq!(tested, (0..20).collect::<Vec<_>>());
/// // More folds than images: refused by the flag, with the count.
/// let e = plan_splits(&TrainJob { kfold: Some(30), ..job }, &categories).unwrap_err();
/// assert!(e.to_string().contains("--kfold 30 needs at least 30 images") && e.to_string().contains("has 20"), "{e}");
/// # Ok::<(), xray_seg::Error>(())
/// ```
pub fn plan_splits(job: &TrainJob, categories: &[String]) -> Result<Vec<(Split, PathBuf)>> {
    let mut rng = StdRng::seed_from_u64(job.seed);
    let Some(k) = job.kfold else {
        let split = xnet_split(categories, &SplitConfig::default(), &mut rng)?;
        return Ok(vec![(split, job.run_dir.clone())]);
    };
    // By the flag, as `check_job` refuses it for synthetic data; a folder's image count is
    // only known here (the data crate's "k-fold needs 2 <= k <= number of samples" named
    // neither the flag nor the folder's count as such).
    if k > categories.len() {
        return Err(Error::Invalid(format!(
            "--kfold {k} needs at least {k} images (each fold tests at least one), but the \
             data set has {}",
            categories.len()
        )));
    }
    let folds = stratified_kfold(categories, k, &mut rng)?;
    let mut plan = Vec::with_capacity(folds.len());
    for (f, fold) in folds.iter().enumerate() {
        let sub_categories: Vec<String> =
            fold.train.iter().map(|&i| categories[i].clone()).collect();
        let cfg = SplitConfig {
            train: 0.85,
            val: 0.15,
            test: 0.0,
        };
        let inner = xnet_split(&sub_categories, &cfg, &mut rng)?;
        let split = Split {
            train: inner
                .train
                .iter()
                .chain(&inner.test)
                .map(|&j| fold.train[j])
                .collect(),
            val: inner.val.iter().map(|&j| fold.train[j]).collect(),
            test: fold.test.clone(),
        };
        plan.push((split, job.run_dir.join(format!("fold-{f}"))));
    }
    Ok(plan)
}

/// Reads every image and mask of `splits` as training will (decoding, finite pixels, known
/// labels, mask size; the first error in sample order, naming the file), and checks that
/// each split's masks label at least one pixel where it is needed: training, validation
/// (early stopping) and the scored split (the test split, or validation without one).
/// Run before the first epoch, so bad data is not found after training.
///
/// # Errors
/// The loaders' errors naming the file; [`xray_data::DataError::Dataset`] naming the masks
/// of a split whose every pixel is ignored.
///
/// # Examples
/// ```
/// use image::{GrayImage, Luma};
/// use xray_data::dataset::{Dataset, DatasetOptions, Split};
/// use xray_data::DataError;
/// use xray_seg::{train::check_splits, Error};
/// let dir = std::env::temp_dir().join(format!("xray-seg-doc-check-splits-{}", std::process::id()));
/// xray_data::synth::generate_dataset(&dir, 3, 32, 1)?;
/// let ds = Dataset::open(&dir, &DatasetOptions::default())?;
/// let split = Split { train: vec![0], val: vec![1], test: vec![2] };
/// check_splits(&ds, [&split])?;
/// // The test image's mask made all "ignore" (255): nothing left to score.
/// let mask = ds.samples[2].mask.clone().expect("synthetic data has masks");
/// GrayImage::from_pixel(32, 32, Luma([255])).save(&mask).expect("mask written");
/// match check_splits(&ds, [&split]) {
///     Err(Error::Data(DataError::Dataset { message, .. })) => {
///         assert!(message.contains("test image(s) label no pixel"), "{message}")
///     }
///     other => panic!("expected a dataset error, got {other:?}"),
/// }
/// # std::fs::remove_dir_all(&dir).ok();
/// # Ok::<(), xray_seg::Error>(())
/// ```
pub fn check_splits<'a>(ds: &Dataset, splits: impl IntoIterator<Item = &'a Split>) -> Result<()> {
    use rayon::prelude::*;
    let splits: Vec<&Split> = splits.into_iter().collect();
    let mut used: Vec<usize> = splits
        .iter()
        .flat_map(|s| s.train.iter().chain(&s.val).chain(&s.test).copied())
        .collect();
    used.sort_unstable();
    used.dedup();
    let classes = usize::from(ds.options.num_classes);
    let counts: Vec<Result<(usize, u64)>> = used
        .par_iter()
        .map(|&i| {
            let (_, mask) = ds.load(i)?;
            let labelled = mask.map_or(0, |m| {
                m.as_raw()
                    .iter()
                    .filter(|&&v| usize::from(v) < classes)
                    .count() as u64
            });
            Ok((i, labelled))
        })
        .collect();
    let mut labelled = std::collections::HashMap::with_capacity(counts.len());
    for c in counts {
        let (i, n) = c?;
        labelled.insert(i, n);
    }
    for split in splits {
        // Without a test split the validation split is scored, and checked as such.
        for (name, indices) in [
            ("training", &split.train),
            ("validation", &split.val),
            ("test", &split.test),
        ] {
            if indices.is_empty() || indices.iter().any(|i| labelled.get(i) != Some(&0)) {
                continue;
            }
            let masks: Vec<String> = indices
                .iter()
                .take(4)
                .filter_map(|&i| ds.samples.get(i)?.mask.as_ref())
                .map(|p| p.display().to_string())
                .collect();
            let more = indices.len().saturating_sub(masks.len());
            return Err(xray_data::DataError::Dataset {
                path: ds.root.join("masks"),
                message: format!(
                    "the masks of the {} {name} image(s) label no pixel (all {}, ignore): \
                     nothing to {} ({}{})",
                    indices.len(),
                    xray_data::IGNORE_LABEL,
                    if name == "training" {
                        "learn from"
                    } else {
                        "score"
                    },
                    masks.join(", "),
                    if more > 0 {
                        format!(" and {more} more")
                    } else {
                        String::new()
                    }
                ),
            }
            .into());
        }
    }
    Ok(())
}
