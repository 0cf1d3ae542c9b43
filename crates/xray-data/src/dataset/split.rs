//! Train/validation/test splits and stratified k-fold, by category.

use crate::error::readable_number;
use crate::{DataError, Result};
use rand::seq::SliceRandom;
use rand::Rng;
use std::collections::BTreeMap;

/// Fractions of [`xnet_split`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SplitConfig {
    /// Fraction for training.
    pub train: f64,
    /// Fraction for validation.
    pub val: f64,
    /// Fraction for testing.
    pub test: f64,
}

impl Default for SplitConfig {
    /// 70 / 15 / 15, as XNet.
    fn default() -> Self {
        SplitConfig {
            train: 0.70,
            val: 0.15,
            test: 0.15,
        }
    }
}

impl SplitConfig {
    /// Checks that the fractions are in `0..=1`, sum to 1 and give training a share.
    ///
    /// # Errors
    /// [`DataError::InvalidParameter`].
    ///
    /// # Examples
    /// ```
    /// use xray_data::dataset::SplitConfig;
    /// assert!(SplitConfig::default().validate().is_ok()); // 70 / 15 / 15
    /// assert!(SplitConfig { train: 1.0, val: 0.0, test: 0.0 }.validate().is_ok());
    /// let err = SplitConfig { train: 0.7, val: 0.2, test: 0.2 }.validate().unwrap_err();
    /// assert!(err.to_string().contains("train=0.7, val=0.2, test=0.2"), "{err}"); // sums to 1.1
    /// assert!(SplitConfig { train: 0.0, val: 0.5, test: 0.5 }.validate().is_err());
    /// ```
    pub fn validate(&self) -> Result<()> {
        let f = [self.train, self.val, self.test];
        let sum: f64 = f.iter().sum();
        if f.iter().any(|v| !(0.0..=1.0).contains(v))
            || (sum - 1.0).abs() > 1e-6
            || self.train <= 0.0
        {
            return Err(DataError::InvalidParameter(format!(
                "split fractions must be in 0..=1, sum to 1 and train > 0; got train={}, val={}, test={}",
                readable_number(self.train),
                readable_number(self.val),
                readable_number(self.test)
            )));
        }
        Ok(())
    }
}

/// Indices of a train/validation/test split, each sorted ascending.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Split {
    /// Training indices.
    pub train: Vec<usize>,
    /// Validation indices.
    pub val: Vec<usize>,
    /// Test indices.
    pub test: Vec<usize>,
}

/// One fold of [`stratified_kfold`]: disjoint train and test index sets, sorted ascending.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Fold {
    /// Training indices (every other fold).
    pub train: Vec<usize>,
    /// Test indices (this fold).
    pub test: Vec<usize>,
}

fn groups(categories: &[String]) -> BTreeMap<&str, Vec<usize>> {
    let mut g: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, c) in categories.iter().enumerate() {
        g.entry(c.as_str()).or_default().push(i);
    }
    g
}

/// The XNet split of samples `0..categories.len()` by category: within each category the
/// samples are shuffled and divided by the configured fractions (rounded), but every
/// category with more than one sample keeps at least one in training, and a category with a
/// single sample goes entirely to test. The result is disjoint and complete.
///
/// # Errors
/// [`DataError::InvalidParameter`] from [`SplitConfig::validate`] or for no samples.
///
/// # Examples
/// ```
/// use rand::SeedableRng;
/// use xray_data::dataset::{xnet_split, SplitConfig};
/// let cats: Vec<String> = ["hand", "hand", "hand", "foot", "foot", "skull"].map(String::from).to_vec();
/// let mut rng = rand::rngs::StdRng::seed_from_u64(7);
/// let s = xnet_split(&cats, &SplitConfig::default(), &mut rng).unwrap();
/// assert_eq!(s.train.len() + s.val.len() + s.test.len(), 6);
/// assert!(s.test.contains(&5)); // the only skull goes to test
/// ```
pub fn xnet_split<R: Rng + ?Sized>(
    categories: &[String],
    cfg: &SplitConfig,
    rng: &mut R,
) -> Result<Split> {
    cfg.validate()?;
    if categories.is_empty() {
        return Err(DataError::InvalidParameter(
            "cannot split an empty dataset".into(),
        ));
    }
    let mut split = Split::default();
    for (_, mut idx) in groups(categories) {
        idx.shuffle(rng);
        let n = idx.len();
        if n == 1 {
            split.test.extend(idx);
            continue;
        }
        let mut n_val = (n as f64 * cfg.val).round() as usize;
        let mut n_test = (n as f64 * cfg.test).round() as usize;
        while n_val + n_test > n - 1 {
            if n_val >= n_test && n_val > 0 {
                n_val -= 1;
            } else {
                n_test -= 1;
            }
        }
        let n_train = n - n_val - n_test;
        split.train.extend_from_slice(&idx[..n_train]);
        split.val.extend_from_slice(&idx[n_train..n_train + n_val]);
        split.test.extend_from_slice(&idx[n_train + n_val..]);
    }
    split.train.sort_unstable();
    split.val.sort_unstable();
    split.test.sort_unstable();
    Ok(split)
}

/// Stratified k-fold by category: each category's samples are shuffled and dealt in turn
/// to the `k` folds (continuing where the previous category stopped, so fold sizes differ
/// by at most one); fold `i` tests on its own samples and trains on the rest. Every sample
/// is tested exactly once. A category with fewer than `k` samples is absent from some
/// folds' test sets.
///
/// # Errors
/// [`DataError::InvalidParameter`] for `k < 2` or `k` larger than the number of samples.
///
/// # Examples
/// ```
/// # fn main() -> Result<(), xray_data::DataError> {
/// use rand::SeedableRng;
/// use xray_data::dataset::stratified_kfold;
/// let cats: Vec<String> =
///     ["hand", "hand", "hand", "hand", "knee", "knee"].map(String::from).to_vec();
/// let mut rng = rand::rngs::StdRng::seed_from_u64(3);
/// let folds = stratified_kfold(&cats, 2, &mut rng)?;
/// let mut tested: Vec<usize> = folds.iter().flat_map(|f| f.test.clone()).collect();
/// tested.sort();
/// assert_eq!(tested, [0, 1, 2, 3, 4, 5]); // every sample tested exactly once
/// for fold in &folds {
///     assert_eq!(fold.train.len() + fold.test.len(), 6);
///     assert_eq!(fold.test.iter().filter(|&&i| cats[i] == "knee").count(), 1); // stratified
/// }
/// assert!(stratified_kfold(&cats, 7, &mut rng).is_err()); // more folds than samples
/// # Ok(())
/// # }
/// ```
pub fn stratified_kfold<R: Rng + ?Sized>(
    categories: &[String],
    k: usize,
    rng: &mut R,
) -> Result<Vec<Fold>> {
    let n = categories.len();
    if k < 2 || k > n {
        return Err(DataError::InvalidParameter(format!(
            "k-fold needs 2 <= k <= number of samples ({n}), got k={k}"
        )));
    }
    let mut fold_of = vec![0usize; n];
    let mut next = 0usize;
    for (_, mut idx) in groups(categories) {
        idx.shuffle(rng);
        for i in idx {
            fold_of[i] = next;
            next = (next + 1) % k;
        }
    }
    Ok((0..k)
        .map(|f| {
            let (test, train): (Vec<usize>, Vec<usize>) = (0..n).partition(|&i| fold_of[i] == f);
            Fold { train, test }
        })
        .collect())
}
