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
    /// [`Error::Invalid`] when `indices` is empty or the dataset has no masks.
    pub fn plain(dataset: Arc<Dataset>, indices: Vec<usize>, config: BatchConfig) -> Result<Self> {
        if indices.is_empty() {
            return Err(Error::Invalid(
                "a batch source needs at least one sample".into(),
            ));
        }
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
