//! How a radiograph becomes network input, in one place for training and inference.
//!
//! Training batches are made by [`xray_data::dataset::Dataset::batches`], which resizes every
//! image to the network's input size (area filter) and then normalises it. Inference must do
//! exactly the same, or the network sees other statistics than it learned from; the
//! [`Preprocess`] record travels in the checkpoint's metadata for that reason.

use serde::{Deserialize, Serialize};
use xnet_model::checkpoint::PreprocessRecord;
use xray_data::dataset::BatchConfig;
use xray_data::normalize::{normalize, Method, NormalizeConfig};
use xray_data::resize::{resize, Filter};
use xray_data::Radiograph;

use crate::{Error, Result};

/// Largest network input side accepted. Radiographs are resized to the network input, whose
/// side is a few hundred pixels (the shipped weights use 128, the XNet paper 200); a larger
/// one is a corrupt or mistyped record: one 100 000 × 100 000 input plane alone is 40 GB.
/// The same bound as [`xnet_model::infer::MAX_INPUT_SIDE`], which caps a resize target.
pub const MAX_INPUT_SIDE: u32 = xnet_model::infer::MAX_INPUT_SIDE as u32;

/// The preprocessing a checkpoint was trained with (stored under `"preprocess"` in its
/// `config.json` metadata).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Preprocess {
    /// Network input width: whole radiographs are resized to it.
    pub width: u32,
    /// Network input height.
    pub height: u32,
    /// Log-transform intensities before normalising.
    pub log: bool,
    /// Percentile window `(low, high)` instead of per-image min-max (the XNet default).
    pub percentile: Option<(f32, f32)>,
}

impl Default for Preprocess {
    /// XNet's 200×200 input with per-image min-max normalisation.
    fn default() -> Self {
        Preprocess {
            width: 200,
            height: 200,
            log: false,
            percentile: None,
        }
    }
}

/// The record as xnet-model reads it from a checkpoint ([`LoadedModel::preprocess`], which
/// checked it against the network).
///
/// [`LoadedModel::preprocess`]: xnet_model::checkpoint::LoadedModel::preprocess
///
/// # Examples
/// ```
/// use xnet_model::checkpoint::PreprocessRecord;
/// use xray_seg::prepare::Preprocess;
/// let record = PreprocessRecord { width: 64, height: 32, log: true, percentile: Some((1.0, 99.0)) };
/// let p = Preprocess::from(record);
/// assert_eq!((p.width, p.height, p.log, p.percentile), (64, 32, true, Some((1.0, 99.0))));
/// ```
impl From<Preprocess> for PreprocessRecord {
    fn from(p: Preprocess) -> Self {
        PreprocessRecord {
            width: p.width,
            height: p.height,
            log: p.log,
            percentile: p.percentile,
        }
    }
}

impl From<PreprocessRecord> for Preprocess {
    fn from(r: PreprocessRecord) -> Self {
        Preprocess {
            width: r.width,
            height: r.height,
            log: r.log,
            percentile: r.percentile,
        }
    }
}

impl Preprocess {
    /// A square input of `size` pixels, min-max normalised.
    ///
    /// # Examples
    /// ```
    /// use xray_seg::prepare::Preprocess;
    /// let p = Preprocess::square(64);
    /// assert_eq!((p.width, p.height), (64, 64));
    /// // Otherwise XNet's default: no log transform, per-image min-max.
    /// assert_eq!(p, Preprocess { width: 64, height: 64, ..Preprocess::default() });
    /// assert!(!p.log && p.percentile.is_none());
    /// ```
    pub fn square(size: u32) -> Self {
        Preprocess {
            width: size,
            height: size,
            ..Self::default()
        }
    }

    /// The normalisation as `xray-data` configures it.
    ///
    /// # Examples
    /// ```
    /// use xray_data::normalize::Method;
    /// use xray_seg::prepare::Preprocess;
    /// assert_eq!(Preprocess::square(64).normalize_config().method, Method::MinMax);
    /// let windowed = Preprocess { log: true, percentile: Some((1.0, 99.0)), ..Preprocess::square(64) };
    /// let n = windowed.normalize_config();
    /// assert_eq!(n.method, Method::Percentile { low: 1.0, high: 99.0 });
    /// assert!(n.log);
    /// ```
    pub fn normalize_config(&self) -> NormalizeConfig {
        NormalizeConfig {
            method: match self.percentile {
                Some((low, high)) => Method::Percentile { low, high },
                None => Method::MinMax,
            },
            log: self.log,
        }
    }

    /// Checks the sizes against a network's size multiple.
    ///
    /// # Errors
    /// [`Error::Invalid`] when a side is zero, larger than [`MAX_INPUT_SIDE`] or not a
    /// multiple of `size_multiple`, or the percentile window is not `0 <= low < high <= 100`
    /// ([`PreprocessRecord::validate`]'s checks, which a checkpoint's record gets too).
    ///
    /// # Examples
    /// ```
    /// use xray_seg::prepare::{Preprocess, MAX_INPUT_SIDE};
    /// use xray_seg::Error;
    /// assert!(Preprocess::square(96).validate(8).is_ok());
    /// let e = Preprocess::square(100).validate(8).unwrap_err();
    /// assert!(matches!(e, Error::Invalid(_)));
    /// assert!(e.to_string().contains("multiple of 8"), "{e}");
    /// assert!(Preprocess::square(0).validate(1).is_err());
    /// assert!(Preprocess::square(MAX_INPUT_SIDE + 8).validate(8).is_err());
    /// // The percentile window is checked too.
    /// let reversed = Preprocess { percentile: Some((99.0, 1.0)), ..Preprocess::square(96) };
    /// assert!(matches!(reversed.validate(8), Err(Error::Invalid(_))));
    /// ```
    pub fn validate(&self, size_multiple: usize) -> Result<()> {
        // The checks a checkpoint's record gets from xnet-model, in one place.
        PreprocessRecord::from(*self)
            .validate(size_multiple)
            .map_err(|e| match e {
                xnet_model::ModelError::InvalidConfig(m) => Error::Invalid(m),
                other => Error::Model(other),
            })
    }

    /// Batch settings that prepare training samples exactly as [`Preprocess::network_input`].
    ///
    /// # Examples
    /// ```
    /// use xray_data::resize::Filter;
    /// use xray_seg::prepare::Preprocess;
    /// let p = Preprocess::square(64);
    /// let b = p.batch_config(4, 7);
    /// assert_eq!((b.batch_size, b.width, b.height, b.seed), (4, 64, 64, 7));
    /// // The same resize filter and normalisation as `network_input`.
    /// assert_eq!(b.filter, Filter::Area);
    /// assert_eq!(b.normalize, Some(p.normalize_config()));
    /// ```
    pub fn batch_config(&self, batch_size: usize, seed: u64) -> BatchConfig {
        BatchConfig {
            batch_size,
            width: self.width,
            height: self.height,
            filter: Filter::Area,
            normalize: Some(self.normalize_config()),
            seed,
            ..BatchConfig::default()
        }
    }

    /// The network input for `image`: resized (area) to the input size, then normalised.
    ///
    /// # Errors
    /// An empty image or invalid normalisation parameters; [`xray_data::DataError::NonFinite`]
    /// (as [`Error::Data`]) for a NaN or infinite pixel, found after resizing: its `(x, y)` is
    /// a position in the resized network input (`width × height`), not in `image`, and its
    /// source reads `<memory>`. A NaN in `image` spreads to every input pixel that averages
    /// it, and finite values near `f32::MAX` can overflow to ±∞ in the resize.
    ///
    /// # Examples
    /// ```
    /// use image::Luma;
    /// use xray_data::{DataError, Radiograph};
    /// use xray_seg::{prepare::Preprocess, Error};
    /// let image = Radiograph::from_fn(100, 80, |x, y| Luma([1000.0 + (x + y) as f32 * 10.0]));
    /// let input = Preprocess::square(32).network_input(&image)?;
    /// assert_eq!(input.dimensions(), (32, 32));
    /// // Min-max normalised: the darkest input pixel is 0, the brightest 1.
    /// let values = input.as_raw().iter().copied();
    /// let (lo, hi) = values.fold((f32::MAX, f32::MIN), |(lo, hi), v| (lo.min(v), hi.max(v)));
    /// assert_eq!((lo, hi), (0.0, 1.0));
    /// // A NaN pixel is refused at its place in the 32×32 input.
    /// let mut bad = image.clone();
    /// bad.put_pixel(99, 79, Luma([f32::NAN]));
    /// match Preprocess::square(32).network_input(&bad) {
    ///     Err(Error::Data(DataError::NonFinite { x, y, .. })) => assert_eq!((x, y), (31, 31)),
    ///     other => panic!("expected NonFinite, got {other:?}"),
    /// }
    /// # Ok::<(), xray_seg::Error>(())
    /// ```
    pub fn network_input(&self, image: &Radiograph) -> Result<Radiograph> {
        let small = resize(image, self.width, self.height, Filter::Area)?;
        Ok(normalize(&small, &self.normalize_config())?)
    }
}

/// Resizes class-major probabilities `C × from_h × from_w` to `C × to_h × to_w` (bilinear,
/// per class), then renormalises each pixel so the classes still sum to one:
/// [`xray_data::resize::resize_probabilities`] with this crate's error type.
///
/// # Shapes
/// `probs` is class-major, `classes × height × width`, but its sizes are `(width, height)` pairs
/// ([image order](crate#sizes)), as `xray_data::resize::resize_probabilities`, which it calls: an
/// exception to the [size order](crate#sizes), kept because reordering two `u32`s would break
/// callers silently.
///
/// # Errors
/// A length that does not match `C × from_h × from_w`, a zero size, or a size beyond the
/// resize's limit ([`Error::Data`]).
///
/// # Examples
/// ```
/// use xray_seg::prepare::resize_probabilities;
/// // Two classes on a 2×1 image: the left pixel is class 0, the right one class 1.
/// let probs = [1.0, 0.0, 0.0, 1.0];
/// let out = resize_probabilities(&probs, 2, (2, 1), (4, 2))?;
/// assert_eq!(out.len(), 2 * 4 * 2);
/// let plane = 8;
/// for i in 0..plane {
///     assert!((out[i] + out[plane + i] - 1.0).abs() < 1e-6); // still sums to one
/// }
/// assert!(out[0] > out[plane]); // the left column stays class 0
/// assert!(out[3] < out[plane + 3]); // the right one class 1
/// // Three classes do not fit four values.
/// assert!(resize_probabilities(&probs, 3, (2, 1), (4, 2)).is_err());
/// # Ok::<(), xray_seg::Error>(())
/// ```
pub fn resize_probabilities(
    probs: &[f32],
    classes: usize,
    (from_w, from_h): (u32, u32),
    (to_w, to_h): (u32, u32),
) -> Result<Vec<f32>> {
    // The library's, which crates without this one use; the same arithmetic this function
    // held (bilinear per class plane, then each pixel renormalised).
    Ok(xray_data::resize::resize_probabilities(
        probs,
        classes,
        (from_w, from_h),
        (to_w, to_h),
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resized_probabilities_still_sum_to_one() {
        let (w, h) = (4u32, 3u32);
        let n = (w * h) as usize;
        let mut probs = vec![0f32; 2 * n];
        for i in 0..n {
            probs[i] = i as f32 / n as f32;
            probs[n + i] = 1.0 - probs[i];
        }
        let out = resize_probabilities(&probs, 2, (w, h), (9, 7)).unwrap();
        assert_eq!(out.len(), 2 * 63);
        for i in 0..63 {
            assert!((out[i] + out[63 + i] - 1.0).abs() < 1e-6);
        }
    }

    #[test]
    fn wrong_length_is_an_error() {
        assert!(resize_probabilities(&[0.5; 5], 2, (2, 2), (4, 4)).is_err());
    }

    /// A zero size is refused either way, also between equal sizes (which returned a copy
    /// of nothing before the check came first).
    #[test]
    fn a_zero_size_is_an_error_even_between_equal_sizes() {
        for (from, to) in [((0, 3), (0, 3)), ((0, 3), (4, 4)), ((2, 2), (0, 4))] {
            let len = 2 * from.0 as usize * from.1 as usize;
            let err = resize_probabilities(&vec![0.5; len], 2, from, to).unwrap_err();
            assert!(
                err.to_string().contains("zero"),
                "{from:?} -> {to:?}: {err}"
            );
        }
    }

    #[test]
    fn input_size_must_fit_the_network() {
        assert!(Preprocess::square(100).validate(8).is_err());
        assert!(Preprocess::square(96).validate(8).is_ok());
    }

    #[test]
    fn a_nan_pixel_is_refused_at_its_place_in_the_network_input() {
        // 8×8 with one NaN at (6, 5): the 4×4 input's pixel (3, 2) averages it.
        let mut img = Radiograph::from_fn(8, 8, |x, y| image::Luma([(x + y) as f32]));
        img.put_pixel(6, 5, image::Luma([f32::NAN]));
        match Preprocess::square(4).network_input(&img) {
            Err(Error::Data(xray_data::DataError::NonFinite { path, x, y, value })) => {
                assert_eq!((x, y), (3, 2));
                assert!(value.is_nan());
                assert_eq!(path, std::path::Path::new("<memory>"));
            }
            other => panic!("expected NonFinite, got {other:?}"),
        }
    }
}
