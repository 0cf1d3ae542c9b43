//! Dataset folders as batch sources for the trainer: category balancing and fresh
//! augmentation of every copy, prepared in parallel by `xray-data`.

use std::sync::Arc;

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use xnet_model::train::{BatchSource, TrainBatch};
use xnet_model::ModelError;
use xray_data::augment::Pipeline;
use xray_data::dataset::{BalancedSampler, Batch, BatchConfig, Dataset, Draw};

use crate::{Error, Result};

/// Batches of a subset of a dataset, one epoch at a time.
///
/// Every epoch's draws and augmentations derive from `(seed, epoch)` only, so two runs with
/// the same seed see the same batches whatever the thread scheduling.
pub struct DatasetSource {
    dataset: Arc<Dataset>,
    indices: Vec<usize>,
    balance: Option<BalancedSampler>,
    augment: Option<Arc<Pipeline>>,
    shuffle: bool,
    config: BatchConfig,
}

impl std::fmt::Debug for DatasetSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DatasetSource")
            .field("samples", &self.indices.len())
            .field("balanced", &self.balance.is_some())
            .field("augmented", &self.augment.is_some())
            .field("config", &self.config)
            .finish()
    }
}

impl DatasetSource {
    /// Plain, unshuffled batches of `indices` (validation and test).
    ///
    /// # Errors
    /// [`Error::Invalid`] when `indices` is empty or names a sample the dataset does not
    /// hold, or the dataset has no masks; [`Error::Data`] for batch and output sizes that
    /// [`BatchConfig::validate`](xray_data::dataset::BatchConfig::validate) refuses.
    ///
    /// # Examples
    /// ```
    /// use std::sync::Arc;
    /// use xnet_model::train::BatchSource;
    /// use xray_data::dataset::{Dataset, DatasetOptions};
    /// use xray_seg::{prepare::Preprocess, source::DatasetSource};
    /// let dir = std::env::temp_dir().join(format!("xray-seg-doc-plain-{}", std::process::id()));
    /// xray_data::synth::generate_dataset(&dir, 3, 32, 1)?;
    /// let ds = Arc::new(Dataset::open(&dir, &DatasetOptions::default())?);
    /// let config = Preprocess::square(32).batch_config(2, 0);
    /// let mut source = DatasetSource::plain(ds.clone(), vec![0, 1, 2], config.clone())?;
    /// assert_eq!(source.batches_per_epoch(), Some(2)); // 2 + 1 samples
    /// let batches = source.epoch_batches(0).collect::<Result<Vec<_>, _>>()?;
    /// assert_eq!((batches[0].n, batches[0].height, batches[0].width), (2, 32, 32));
    /// assert_eq!(batches[1].n, 1);
    /// // Nothing to draw from, a sample it does not hold, no batch size, or images without
    /// // masks, are refused.
    /// assert!(DatasetSource::plain(ds.clone(), vec![], config.clone()).is_err());
    /// let e = DatasetSource::plain(ds.clone(), vec![0, 3], config.clone()).unwrap_err();
    /// assert!(e.to_string().contains("sample 3 asked for"), "{e}");
    /// let no_batch = Preprocess::square(32).batch_config(0, 0);
    /// assert!(DatasetSource::plain(ds, vec![0], no_batch).is_err());
    /// std::fs::remove_dir_all(dir.join("masks")).ok();
    /// let unlabelled = Arc::new(Dataset::open(&dir, &DatasetOptions::default())?);
    /// let e = DatasetSource::plain(unlabelled, vec![0], config).unwrap_err();
    /// assert!(e.to_string().contains("need masks/"), "{e}");
    /// # std::fs::remove_dir_all(&dir).ok();
    /// # Ok::<(), xray_seg::Error>(())
    /// ```
    pub fn plain(dataset: Arc<Dataset>, indices: Vec<usize>, config: BatchConfig) -> Result<Self> {
        if indices.is_empty() {
            return Err(Error::Invalid(
                "a batch source needs at least one sample".into(),
            ));
        }
        // Checked here rather than at the first draw of the first epoch, which named only
        // the index.
        if let Some(&bad) = indices.iter().find(|&&i| i >= dataset.len()) {
            return Err(Error::Invalid(format!(
                "{}: sample {bad} asked for, but the dataset holds {} images",
                dataset.root.display(),
                dataset.len()
            )));
        }
        config.validate()?;
        if !dataset.has_masks() {
            return Err(Error::Invalid(format!(
                "{}: training and validation need masks/ beside images/",
                dataset.root.display()
            )));
        }
        Ok(DatasetSource {
            dataset,
            indices,
            balance: None,
            augment: None,
            shuffle: false,
            config,
        })
    }

    /// Training batches: shuffled each epoch, optionally balanced by category (every
    /// category oversampled to the largest) and augmented afresh per copy.
    ///
    /// # Errors
    /// As [`DatasetSource::plain`], and balancing errors.
    ///
    /// # Examples
    /// Every epoch's draws and augmentations depend on the seed and the epoch only:
    /// ```
    /// use std::sync::Arc;
    /// use xnet_model::train::BatchSource;
    /// use xray_data::augment::{Pipeline, PipelineConfig};
    /// use xray_data::dataset::{Dataset, DatasetOptions};
    /// use xray_seg::{prepare::Preprocess, source::DatasetSource};
    /// let dir = std::env::temp_dir().join(format!("xray-seg-doc-training-{}", std::process::id()));
    /// xray_data::synth::generate_dataset(&dir, 4, 32, 1)?;
    /// let ds = Arc::new(Dataset::open(&dir, &DatasetOptions::default())?);
    /// let config = Preprocess::square(32).batch_config(2, 9);
    /// let augment = || Pipeline::from_config(&PipelineConfig::xnet_no_crop());
    /// let mut a = DatasetSource::training(ds.clone(), vec![0, 1, 2, 3], config.clone(), true, Some(augment()?))?;
    /// let mut b = DatasetSource::training(ds, vec![0, 1, 2, 3], config, true, Some(augment()?))?;
    /// let first = a.epoch_batches(1).collect::<Result<Vec<_>, _>>()?;
    /// let again = b.epoch_batches(1).collect::<Result<Vec<_>, _>>()?;
    /// assert_eq!(first.iter().map(|t| t.n).sum::<usize>(), a.epoch_len());
    /// assert_eq!(first[0].images, again[0].images);
    /// assert_eq!(first[0].labels, again[0].labels);
    /// # std::fs::remove_dir_all(&dir).ok();
    /// # Ok::<(), xray_seg::Error>(())
    /// ```
    pub fn training(
        dataset: Arc<Dataset>,
        indices: Vec<usize>,
        config: BatchConfig,
        balance: bool,
        augment: Option<Pipeline>,
    ) -> Result<Self> {
        let mut s = Self::plain(dataset, indices, config)?;
        if balance {
            let categories = s.dataset.categories();
            s.balance = Some(BalancedSampler::new(&categories, &s.indices)?);
        }
        s.augment = augment.map(Arc::new);
        s.shuffle = true;
        Ok(s)
    }

    /// Number of draws in one epoch.
    ///
    /// # Examples
    /// ```
    /// use std::collections::BTreeMap;
    /// use std::sync::Arc;
    /// use xray_data::dataset::{Dataset, DatasetOptions};
    /// use xray_seg::{prepare::Preprocess, source::DatasetSource};
    /// let dir = std::env::temp_dir().join(format!("xray-seg-doc-epoch-len-{}", std::process::id()));
    /// xray_data::synth::generate_dataset(&dir, 6, 32, 1)?;
    /// let ds = Arc::new(Dataset::open(&dir, &DatasetOptions::default())?);
    /// let config = Preprocess::square(32).batch_config(2, 0);
    /// let all: Vec<usize> = (0..6).collect();
    /// let plain = DatasetSource::plain(ds.clone(), all.clone(), config.clone())?;
    /// assert_eq!(plain.epoch_len(), 6);
    /// // Balanced: every category drawn as often as the largest.
    /// let mut sizes = BTreeMap::new();
    /// for c in ds.categories() {
    ///     *sizes.entry(c).or_insert(0) += 1;
    /// }
    /// let largest = *sizes.values().max().unwrap();
    /// let balanced = DatasetSource::training(ds, all, config, true, None)?;
    /// assert_eq!(balanced.epoch_len(), sizes.len() * largest);
    /// # std::fs::remove_dir_all(&dir).ok();
    /// # Ok::<(), xray_seg::Error>(())
    /// ```
    pub fn epoch_len(&self) -> usize {
        self.balance
            .as_ref()
            .map_or(self.indices.len(), BalancedSampler::epoch_len)
    }

    fn draws(&self, epoch: usize) -> Vec<Draw> {
        let mut rng = StdRng::seed_from_u64(
            self.config.seed ^ (epoch as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15),
        );
        match &self.balance {
            Some(b) => b.epoch(&mut rng),
            None => {
                let mut d = Draw::plain(&self.indices);
                if self.shuffle {
                    d.shuffle(&mut rng);
                }
                d
            }
        }
    }
}

/// A prepared `xray-data` batch as the trainer's plain batch.
///
/// # Examples
/// ```
/// use xray_data::dataset::{Batch, Draw};
/// use xray_seg::source::to_train_batch;
/// let batch = Batch {
///     images: vec![0.5; 2 * 4 * 3],
///     labels: vec![1; 2 * 4 * 3],
///     n: 2,
///     height: 4,
///     width: 3,
///     stems: vec!["a".into(), "b".into()],
///     draws: Draw::plain(&[0, 1]),
/// };
/// let t = to_train_batch(batch.clone());
/// assert_eq!((t.n, t.height, t.width), (2, 4, 3));
/// assert_eq!((t.images, t.labels), (batch.images, batch.labels));
/// ```
pub fn to_train_batch(b: Batch) -> TrainBatch {
    TrainBatch {
        images: b.images,
        labels: b.labels,
        n: b.n,
        height: b.height,
        width: b.width,
    }
}

fn data_error(e: xray_data::DataError) -> ModelError {
    ModelError::Data(Box::new(e))
}

impl BatchSource for DatasetSource {
    fn epoch_batches(
        &mut self,
        epoch: usize,
    ) -> Box<dyn Iterator<Item = xnet_model::Result<TrainBatch>> + '_> {
        let draws = self.draws(epoch);
        let augment = self.augment.clone();
        let batches = self.dataset.batches(
            draws,
            epoch as u64,
            &self.config,
            move |_, mut img, mut mask, rng| {
                if let Some(p) = &augment {
                    p.apply(&mut img, &mut mask, rng)?;
                }
                Ok((img, mask))
            },
        );
        match batches {
            Ok(it) => Box::new(it.map(|b| b.map(to_train_batch).map_err(data_error))),
            Err(e) => Box::new(std::iter::once(Err(data_error(e)))),
        }
    }

    fn batches_per_epoch(&self) -> Option<usize> {
        let n = self.epoch_len();
        Some(if self.config.drop_last {
            n / self.config.batch_size.max(1)
        } else {
            n.div_ceil(self.config.batch_size.max(1))
        })
    }
}
