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
pub use pipeline::{
    balanced_indices, Pipeline, PipelineConfig, Sample, StepConfig, TransformSpec,
    MAX_PIXEL_MAGNITUDE,
};
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
    let (range, all_finite) = range_and_finiteness(image);
    if !all_finite {
        // Only to name the pixel: the range pass has already seen there is one.
        crate::io::check_finite(&crate::io::memory_path(), image.width(), image.as_raw())?;
    }
    Ok(range)
}

/// Finite minimum and maximum of the image (0, 0 for an empty or all-NaN image).
pub(crate) fn value_range(image: &Radiograph) -> (f32, f32) {
    range_and_finiteness(image).0
}

/// [`value_range`], and whether every pixel is finite, in one pass.
fn range_and_finiteness(image: &Radiograph) -> ((f32, f32), bool) {
    let mut lo = f32::INFINITY;
    let mut hi = f32::NEG_INFINITY;
    let mut all_finite = true;
    for &v in image.as_raw() {
        if v.is_finite() {
            lo = lo.min(v);
            hi = hi.max(v);
        } else {
            all_finite = false;
        }
    }
    let range = if lo > hi { (0.0, 0.0) } else { (lo, hi) };
    (range, all_finite)
}
