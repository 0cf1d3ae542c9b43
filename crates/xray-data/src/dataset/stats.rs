//! Per-class pixel statistics and loss weights.

use crate::{DataError, Mask, Result, IGNORE_LABEL};

/// Pixel counts per class over a set of masks ([`IGNORE_LABEL`] pixels excluded).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClassStats {
    /// Pixels of each class.
    pub pixels: Vec<u64>,
    /// For each class, the total pixel count (ignore excluded) of the masks in which the
    /// class appears (the denominator of median-frequency balancing).
    pub pixels_of_images_with: Vec<u64>,
    /// Pixels labelled [`IGNORE_LABEL`].
    pub ignored: u64,
    /// Number of masks counted.
    pub masks: usize,
}

impl ClassStats {
    /// Empty statistics for `num_classes` classes.
    ///
    /// # Examples
    /// ```
    /// use xray_data::dataset::ClassStats;
    /// let stats = ClassStats::new(3);
    /// assert_eq!(stats.pixels, [0, 0, 0]);
    /// assert_eq!((stats.ignored, stats.masks), (0, 0));
    /// assert_eq!(stats, ClassStats::from_masks(3, []));
    /// ```
    pub fn new(num_classes: usize) -> Self {
        ClassStats {
            pixels: vec![0; num_classes],
            pixels_of_images_with: vec![0; num_classes],
            ignored: 0,
            masks: 0,
        }
    }

    /// Adds one mask. Values other than `0..num_classes` and [`IGNORE_LABEL`] are counted
    /// as ignored (validated masks hold none).
    ///
    /// # Examples
    /// ```
    /// use xray_data::{dataset::ClassStats, Mask};
    /// let mut stats = ClassStats::new(3);
    /// stats.add(&Mask::from_raw(4, 1, vec![0, 0, 1, 255]).ok_or("4 labels")?);
    /// stats.add(&Mask::from_raw(2, 1, vec![2, 9]).ok_or("2 labels")?); // 9: no class of 3
    /// assert_eq!((stats.pixels.clone(), stats.ignored, stats.masks), (vec![2, 1, 1], 2, 2));
    /// // Classes 0 and 1 appear in the first mask (3 labelled pixels), class 2 in the second (1).
    /// assert_eq!(stats.pixels_of_images_with, [3, 3, 1]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn add(&mut self, mask: &Mask) {
        let c = self.pixels.len();
        let mut counts = vec![0u64; c];
        for &v in mask.as_raw() {
            match counts.get_mut(usize::from(v)) {
                Some(n) if v != IGNORE_LABEL => *n += 1,
                _ => self.ignored += 1,
            }
        }
        let total: u64 = counts.iter().sum();
        for ((p, with), &n) in self
            .pixels
            .iter_mut()
            .zip(self.pixels_of_images_with.iter_mut())
            .zip(&counts)
        {
            *p += n;
            if n > 0 {
                *with += total;
            }
        }
        self.masks += 1;
    }

    /// Merges statistics gathered separately (e.g. in parallel).
    ///
    /// # Errors
    /// [`DataError::InvalidParameter`] when the two count different numbers of classes (or
    /// either holds `pixels` and `pixels_of_images_with` of different lengths); `self` is
    /// then left unchanged. Adding a 5-class count to a 3-class one would otherwise drop
    /// classes 3 and 4 while still counting their masks.
    ///
    /// # Examples
    /// ```
    /// use xray_data::dataset::ClassStats;
    /// let mask = xray_data::Mask::from_raw(3, 1, vec![0, 1, 2]).unwrap();
    /// let mut total = ClassStats::new(3);
    /// total.merge(&ClassStats::from_masks(3, [&mask]))?;
    /// assert_eq!(total.pixels, vec![1, 1, 1]);
    /// assert!(total.merge(&ClassStats::from_masks(5, [&mask])).is_err());
    /// assert_eq!(total.masks, 1);
    /// # Ok::<(), xray_data::DataError>(())
    /// ```
    pub fn merge(&mut self, other: &ClassStats) -> Result<()> {
        let classes = self.pixels.len();
        let lengths = [
            self.pixels_of_images_with.len(),
            other.pixels.len(),
            other.pixels_of_images_with.len(),
        ];
        if lengths.iter().any(|&n| n != classes) {
            return Err(DataError::InvalidParameter(format!(
                "cannot merge class statistics of {} classes into statistics of {classes} \
                 (pixels / pixels_of_images_with lengths: {classes}/{} and {}/{})",
                other.pixels.len(),
                lengths[0],
                lengths[1],
                lengths[2]
            )));
        }
        for (a, b) in self.pixels.iter_mut().zip(&other.pixels) {
            *a += b;
        }
        for (a, b) in self
            .pixels_of_images_with
            .iter_mut()
            .zip(&other.pixels_of_images_with)
        {
            *a += b;
        }
        self.ignored += other.ignored;
        self.masks += other.masks;
        Ok(())
    }

    /// Statistics of a set of masks.
    ///
    /// # Examples
    /// ```
    /// use xray_data::{dataset::ClassStats, Mask};
    /// let a = Mask::from_raw(3, 1, vec![0, 1, 255]).ok_or("3 labels")?;
    /// let b = Mask::from_raw(2, 1, vec![2, 2]).ok_or("2 labels")?;
    /// let stats = ClassStats::from_masks(3, [&a, &b]);
    /// assert_eq!((stats.pixels.clone(), stats.ignored, stats.masks), (vec![1, 1, 2], 1, 2));
    /// // The same as adding them one by one.
    /// let mut added = ClassStats::new(3);
    /// added.add(&a);
    /// added.add(&b);
    /// assert_eq!(stats, added);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn from_masks<'a>(num_classes: usize, masks: impl IntoIterator<Item = &'a Mask>) -> Self {
        let mut s = ClassStats::new(num_classes);
        masks.into_iter().for_each(|m| s.add(m));
        s
    }

    /// Fraction of labelled pixels in each class.
    ///
    /// # Examples
    /// ```
    /// use xray_data::{dataset::ClassStats, Mask};
    /// let mask = Mask::from_raw(5, 1, vec![0, 0, 1, 2, 255]).ok_or("5 labels")?;
    /// let stats = ClassStats::from_masks(3, [&mask]);
    /// assert_eq!(stats.frequencies(), [0.5, 0.25, 0.25]); // of the 4 labelled pixels
    /// assert_eq!(ClassStats::new(3).frequencies(), [0.0; 3]); // nothing counted: zeros
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn frequencies(&self) -> Vec<f64> {
        let total: u64 = self.pixels.iter().sum();
        self.pixels
            .iter()
            .map(|&p| {
                if total == 0 {
                    0.0
                } else {
                    p as f64 / total as f64
                }
            })
            .collect()
    }

    /// Inverse-frequency weights `total / (C · pixels_c)` (scikit-learn's
    /// `class_weight="balanced"`); a class with no pixels gets weight 0.
    ///
    /// # Examples
    /// ```
    /// use xray_data::dataset::ClassStats;
    /// let mask = xray_data::Mask::from_raw(5, 1, vec![0, 0, 1, 2, 255]).unwrap();
    /// let stats = ClassStats::from_masks(3, [&mask]);
    /// assert_eq!((stats.pixels.clone(), stats.ignored), (vec![2, 1, 1], 1));
    /// // 4 labelled pixels, 3 classes: 4 / (3 · 2), 4 / (3 · 1), 4 / (3 · 1)
    /// let w = stats.inverse_frequency_weights();
    /// let expected = [2.0 / 3.0, 4.0 / 3.0, 4.0 / 3.0];
    /// assert!(w.iter().zip(expected).all(|(a, b)| (a - b).abs() < 1e-6), "{w:?}");
    /// ```
    pub fn inverse_frequency_weights(&self) -> Vec<f32> {
        let total: u64 = self.pixels.iter().sum();
        let c = self.pixels.len() as f64;
        self.pixels
            .iter()
            .map(|&p| {
                if p == 0 {
                    0.0
                } else {
                    (total as f64 / (c * p as f64)) as f32
                }
            })
            .collect()
    }

    /// Median-frequency weights (Eigen & Fergus 2015, as SegNet): with
    /// `freq_c = pixels_c / pixels of the masks where c appears`, the weight is
    /// `median(freq) / freq_c` over the classes that appear; absent classes get 0.
    ///
    /// # Examples
    /// ```
    /// use xray_data::{dataset::ClassStats, Mask};
    /// let a = Mask::from_raw(4, 1, vec![0, 0, 0, 1]).ok_or("4 labels")?;
    /// let b = Mask::from_raw(4, 1, vec![0, 0, 2, 2]).ok_or("4 labels")?;
    /// let stats = ClassStats::from_masks(4, [&a, &b]);
    /// // freq: class 0 5/8 (both masks), class 1 1/4, class 2 2/4; median 0.5; class 3 absent.
    /// let w = stats.median_frequency_weights();
    /// let expected = [0.5 / 0.625, 0.5 / 0.25, 1.0, 0.0];
    /// assert!(w.iter().zip(expected).all(|(a, b)| (a - b).abs() < 1e-6), "{w:?}");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn median_frequency_weights(&self) -> Vec<f32> {
        let freq: Vec<Option<f64>> = self
            .pixels
            .iter()
            .zip(&self.pixels_of_images_with)
            .map(|(&p, &d)| (p > 0 && d > 0).then(|| p as f64 / d as f64))
            .collect();
        let mut present: Vec<f64> = freq.iter().flatten().copied().collect();
        if present.is_empty() {
            return vec![0.0; self.pixels.len()];
        }
        present.sort_by(f64::total_cmp);
        let m = present.len();
        let median = if m % 2 == 1 {
            present[m / 2]
        } else {
            0.5 * (present[m / 2 - 1] + present[m / 2])
        };
        freq.iter()
            .map(|f| f.map_or(0.0, |f| (median / f) as f32))
            .collect()
    }
}
