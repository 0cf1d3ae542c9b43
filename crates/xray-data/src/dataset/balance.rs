//! Category balancing by oversampling.

use crate::{DataError, Result};
use rand::seq::SliceRandom;
use rand::Rng;
use std::collections::BTreeMap;

/// One draw of an epoch: a sample and which copy of it this is (`0` = first), so that
/// every copy can be augmented afresh (see [`super::BatchConfig`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Draw {
    /// Index of the sample in the dataset.
    pub index: usize,
    /// Copy number of that sample within the epoch.
    pub copy: u32,
}

impl Draw {
    /// One draw per index, copy 0, in the given order (no balancing).
    ///
    /// # Examples
    /// ```
    /// use xray_data::dataset::Draw;
    /// assert_eq!(
    ///     Draw::plain(&[4, 2]),
    ///     [Draw { index: 4, copy: 0 }, Draw { index: 2, copy: 0 }]
    /// );
    /// ```
    pub fn plain(indices: &[usize]) -> Vec<Draw> {
        indices
            .iter()
            .map(|&index| Draw { index, copy: 0 })
            .collect()
    }
}

/// Oversamples every category up to the size of the largest one.
///
/// Each epoch, a category with `m` samples contributes `M` draws (`M` = largest category):
/// every sample `floor(M/m)` or `ceil(M/m)` times (which ones get the extra copy is random),
/// then the whole epoch is shuffled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BalancedSampler {
    groups: Vec<Vec<usize>>,
    largest: usize,
}

impl BalancedSampler {
    /// A sampler over `indices` (e.g. the training split), grouped by
    /// `categories[index]`.
    ///
    /// # Errors
    /// [`DataError::InvalidParameter`] for no indices or an index outside `categories`.
    ///
    /// # Examples
    /// ```
    /// use xray_data::dataset::BalancedSampler;
    /// let categories: Vec<String> = ["hand", "knee", "hand"].map(String::from).to_vec();
    /// // Only the samples listed count: here sample 2 is left out.
    /// let sampler = BalancedSampler::new(&categories, &[0, 1])?;
    /// assert_eq!(sampler.epoch_len(), 2); // one hand, one knee
    /// assert!(BalancedSampler::new(&categories, &[]).is_err());
    /// assert!(BalancedSampler::new(&categories, &[0, 3]).is_err()); // no category for 3
    /// # Ok::<(), xray_data::DataError>(())
    /// ```
    pub fn new(categories: &[String], indices: &[usize]) -> Result<Self> {
        if indices.is_empty() {
            return Err(DataError::InvalidParameter(
                "balanced sampler needs at least one sample".into(),
            ));
        }
        let mut g: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
        for &i in indices {
            let c = categories.get(i).ok_or_else(|| {
                DataError::InvalidParameter(format!(
                    "sample index {i} out of range ({} categories)",
                    categories.len()
                ))
            })?;
            g.entry(c.as_str()).or_default().push(i);
        }
        let groups: Vec<Vec<usize>> = g.into_values().collect();
        let largest = groups.iter().map(Vec::len).max().unwrap_or(0);
        Ok(BalancedSampler { groups, largest })
    }

    /// Number of draws per epoch: number of categories × size of the largest.
    ///
    /// # Examples
    /// ```
    /// use xray_data::dataset::BalancedSampler;
    /// let names = ["hand", "hand", "hand", "knee", "hip"];
    /// let categories: Vec<String> = names.map(String::from).to_vec();
    /// let sampler = BalancedSampler::new(&categories, &[0, 1, 2, 3, 4])?;
    /// assert_eq!(sampler.epoch_len(), 3 * 3); // 3 categories, the largest of 3 samples
    /// # Ok::<(), xray_data::DataError>(())
    /// ```
    pub fn epoch_len(&self) -> usize {
        self.groups.len() * self.largest
    }

    /// The draws of one epoch, shuffled.
    ///
    /// # Examples
    /// ```
    /// use rand::SeedableRng;
    /// use xray_data::dataset::{BalancedSampler, Draw};
    /// let categories: Vec<String> = ["hand", "hand", "hand", "knee"].map(String::from).to_vec();
    /// let sampler = BalancedSampler::new(&categories, &[0, 1, 2, 3])?;
    /// let mut draws = sampler.epoch(&mut rand::rngs::StdRng::seed_from_u64(0));
    /// assert_eq!(draws.len(), sampler.epoch_len());
    /// // Every hand once; the one knee three times, each copy numbered.
    /// draws.sort();
    /// let expected = [(0, 0), (1, 0), (2, 0), (3, 0), (3, 1), (3, 2)]
    ///     .map(|(index, copy)| Draw { index, copy });
    /// assert_eq!(draws, expected);
    /// # Ok::<(), xray_data::DataError>(())
    /// ```
    pub fn epoch<R: Rng + ?Sized>(&self, rng: &mut R) -> Vec<Draw> {
        let mut out = Vec::with_capacity(self.epoch_len());
        for g in &self.groups {
            let mut perm = g.clone();
            perm.shuffle(rng);
            for j in 0..self.largest {
                out.push(Draw {
                    index: perm[j % perm.len()],
                    copy: (j / perm.len()) as u32,
                });
            }
        }
        out.shuffle(rng);
        out
    }
}
