//! Augmentation: transforms applied jointly to image and mask, and image-only transforms.
//!
//! - [`Transform`]: geometric transforms that move pixels; the image is interpolated with the
//!   chosen [`Interpolation`], the mask always with nearest neighbour, so labels stay in
//!   `{0, 1, 2, 255}`.
//! - [`ImageTransform`]: intensity transforms (noise, blur, gamma...) that never touch the
//!   mask.
//! - [`Pipeline`]: a sequence of transforms with probabilities, built from a serde
//!   [`PipelineConfig`] (JSON or TOML), seeded, with a rayon batch path.
//!
//! Values are whatever the caller holds (16-bit counts or normalised floats): intensity
//! transforms work relative to the image's own range, so they suit both.
//!
//! # Examples
//! ```
//! use rand::SeedableRng;
//! use xray_data::augment::{Pipeline, PipelineConfig};
//! let pipeline = Pipeline::from_config(&PipelineConfig::xnet()).unwrap();
//! let mut image = xray_data::Radiograph::from_pixel(32, 32, image::Luma([100.0]));
//! let mut mask = xray_data::Mask::from_pixel(32, 32, image::Luma([1]));
//! let mut rng = rand::rngs::StdRng::seed_from_u64(7);
//! pipeline.apply(&mut image, &mut mask, &mut rng).unwrap();
//! assert!(mask.pixels().all(|p| [0, 1, 2, 255].contains(&p.0[0])));
//! ```

pub mod collimator;
pub mod elastic;
pub mod filter;
pub mod geometric;
pub mod intensity;
mod peer_sample;
pub mod pipeline;
mod warp;

pub use collimator::CollimatorSim;
pub use elastic::{Elastic, NoiseDistribution};
pub use geometric::{Affine, HorizontalFlip, RandomCrop, VerticalFlip};
pub use intensity::{BrightnessContrast, Gamma, GaussianBlur, GaussianNoise, PoissonNoise};
pub use peer_sample::peer_sample;
pub use pipeline::{balanced_indices, Pipeline, PipelineConfig, Sample, StepConfig, TransformSpec};
pub use warp::{Border, Interpolation};

use rand::Rng;

use crate::{DataError, Mask, Radiograph, Result};

/// A transform applied jointly to an image and its label mask (same geometry for both).
pub trait Transform: Send + Sync + std::fmt::Debug {
    /// Transform `image` and `mask` in place. Errors if their sizes differ.
    fn apply(&self, image: &mut Radiograph, mask: &mut Mask, rng: &mut dyn Rng) -> Result<()>;
}

/// A transform of image values only; the mask is never touched.
pub trait ImageTransform: Send + Sync + std::fmt::Debug {
    /// Transform `image` in place.
    fn apply_image(&self, image: &mut Radiograph, rng: &mut dyn Rng) -> Result<()>;
}

/// Check that an image and a mask have the same size.
pub(crate) fn check_same_size(image: &Radiograph, mask: &Mask) -> Result<()> {
    if image.dimensions() != mask.dimensions() {
        return Err(DataError::InvalidParameter(format!(
            "image is {}x{} but mask is {}x{}: augmentation needs both the same size",
            image.width(),
            image.height(),
            mask.width(),
            mask.height()
        )));
    }
    Ok(())
}

pub(crate) use crate::error::check_range;

/// Uniform draw from `[r[0], r[1]]` (exactly `r[0]` when the range is empty).
pub(crate) fn uniform(rng: &mut dyn Rng, r: [f32; 2]) -> f32 {
    if r[1] > r[0] {
        let u = (rng.next_u32() >> 8) as f32 / (1u32 << 24) as f32;
        r[0] + u * (r[1] - r[0])
    } else {
        r[0]
    }
}

/// Minimum and maximum of an image whose pixels must all be finite (0, 0 when empty): the
/// range the intensity transforms scale their amplitudes by.
///
/// # Errors
/// [`DataError::NonFinite`] (source `<memory>`) naming the first NaN or infinite pixel:
/// such a pixel would make the mean NaN, or turn into 0 under Poisson noise.
pub(crate) fn finite_value_range(image: &Radiograph) -> Result<(f32, f32)> {
    crate::io::check_finite(&crate::io::memory_path(), image.width(), image.as_raw())?;
    Ok(value_range(image))
}

/// Index of the first NaN or infinite value. One vectorisable pass (the largest magnitude
/// bit pattern of each block) finds the block; only a block holding one is searched.
pub(crate) fn first_non_finite(data: &[f32]) -> Option<usize> {
    const EXP_ALL_ONES: u32 = 0x7f80_0000;
    data.chunks(1024).enumerate().find_map(|(c, chunk)| {
        let worst = chunk
            .iter()
            .fold(0u32, |m, v| m.max(v.to_bits() & 0x7fff_ffff));
        (worst >= EXP_ALL_ONES)
            .then(|| chunk.iter().position(|v| !v.is_finite()))
            .flatten()
            .map(|i| c * 1024 + i)
    })
}

/// Finite minimum and maximum of the image (0, 0 for an empty or all-NaN image).
pub(crate) fn value_range(image: &Radiograph) -> (f32, f32) {
    let mut lo = f32::INFINITY;
    let mut hi = f32::NEG_INFINITY;
    for &v in image.as_raw() {
        if v.is_finite() {
            lo = lo.min(v);
            hi = hi.max(v);
        }
    }
    if lo > hi {
        (0.0, 0.0)
    } else {
        (lo, hi)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_non_finite_finds_the_first_in_any_block() {
        let finite = [
            0.0,
            -0.0,
            f32::MAX,
            f32::MIN,
            f32::MIN_POSITIVE,
            1e-45,
            -1.0,
        ];
        let mut data: Vec<f32> = (0..3000).map(|i| finite[i % finite.len()]).collect();
        assert_eq!(first_non_finite(&data), None);
        assert_eq!(first_non_finite(&[]), None);
        for bad in [f32::NAN, -f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
            for at in [0usize, 1023, 1024, 2999] {
                let mut d = data.clone();
                d[at] = bad;
                d[2999] = bad;
                assert_eq!(first_non_finite(&d), Some(at), "{bad} at {at}");
            }
        }
        data.truncate(5);
        data[4] = f32::NAN;
        assert_eq!(first_non_finite(&data), Some(4));
    }
}
