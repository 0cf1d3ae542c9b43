//! Elastic deformation (Simard et al. 2003): a random displacement field, smoothed by a
//! Gaussian of `sigma` pixels and scaled by `alpha` pixels, moves every pixel.

use rand::rngs::Xoshiro256PlusPlus;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, StandardNormal};
use serde::{Deserialize, Serialize};

use super::filter::{convolve_separable, gaussian_kernel, upsample_bilinear};
use super::warp::{remap, Border, Interpolation};
use super::{check_range, check_same_size, uniform, ImageTransform, Transform};
use crate::{DataError, Mask, Radiograph, Result};

/// Distribution of the raw displacement noise before smoothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NoiseDistribution {
    /// Uniform in `[-1, 1]` (Simard 2003, imgaug, the XNet reference).
    #[default]
    Uniform,
    /// Standard normal (albumentations 2 default).
    Gaussian,
}

/// Elastic deformation. With `image_only` the mask is left untouched (the XNet reference's
/// mild setting, [`Elastic::xnet_mild`]); otherwise image and mask move together
/// ([`Elastic::xnet_strong`]).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Elastic {
    /// Displacement scale in pixels, drawn uniformly from the range.
    pub alpha: [f32; 2],
    /// Standard deviation of the smoothing Gaussian, pixels.
    pub sigma: f32,
    /// Raw noise distribution.
    pub noise: NoiseDistribution,
    /// Deform the image only (labels unchanged).
    pub image_only: bool,
    /// Image interpolation (the mask is nearest).
    pub interpolation: Interpolation,
    /// What is read outside the source.
    pub border: Border,
    /// Smooth the noise at full resolution. When `false` (default) and `sigma >= 4`, the
    /// field is drawn and smoothed on a grid `floor(sigma / 2)` times coarser and
    /// bilinearly up-sampled. The smoothed field is band-limited (its spectrum at the coarse
    /// Nyquist frequency is `exp(-σ²π²/(2s²)) < 1e-8` of its peak), so nothing is lost by the
    /// coarser sampling; the bilinear up-sampling differs from the full-resolution field by
    /// a few per cent of its amplitude, while the cost drops by about `s³`.
    pub exact: bool,
}

impl Default for Elastic {
    /// The classic Simard values used by the albumentations peer: α = 34, σ = 4, joint.
    fn default() -> Self {
        Self {
            alpha: [34.0, 34.0],
            sigma: 4.0,
            noise: NoiseDistribution::Uniform,
            image_only: false,
            interpolation: Interpolation::Bilinear,
            border: Border::Reflect,
            exact: false,
        }
    }
}

impl Elastic {
    /// XNet's mild image-only elastic jitter: imgaug `ElasticTransformation(alpha=(0.5,
    /// 1.5), sigma=0.25)` applied to the image after cropping.
    pub fn xnet_mild() -> Self {
        Self {
            alpha: [0.5, 1.5],
            sigma: 0.25,
            image_only: true,
            ..Self::default()
        }
    }

    /// XNet's strong joint elastic deformation (`alpha=(50, 60), sigma=16`, applied with
    /// probability 0.5 in the reference code).
    pub fn xnet_strong() -> Self {
        Self {
            alpha: [50.0, 60.0],
            sigma: 16.0,
            image_only: false,
            ..Self::default()
        }
    }

    /// Check the parameters.
    pub fn validate(&self) -> Result<()> {
        check_range("elastic alpha", self.alpha, 0.0, 1e4)?;
        if !(self.sigma.is_finite() && self.sigma > 0.0 && self.sigma <= 1e3) {
            return Err(DataError::InvalidParameter(format!(
                "elastic sigma must be in (0, 1000] pixels, got {}",
                self.sigma
            )));
        }
        Ok(())
    }

    /// Draw one smoothed, unit-`alpha` displacement field `(dx, dy)` for a `width × height`
    /// image (row-major).
    pub fn unit_field(
        &self,
        width: usize,
        height: usize,
        rng: &mut dyn Rng,
    ) -> (Vec<f32>, Vec<f32>) {
        let mut local = Xoshiro256PlusPlus::seed_from_u64(rng.next_u64());
        let stride = if self.exact || self.sigma < 4.0 {
            1
        } else {
            (self.sigma / 2.0).floor() as usize
        };
        let mut one = || -> Vec<f32> {
            let (cw, ch) = (width.div_ceil(stride), height.div_ceil(stride));
            // Keep the smoothed variance of the field independent of the grid: white noise
            // of variance v smoothed by σ has variance ∝ v/σ²; on a grid s times coarser the
            // kernel is σ/s wide, so the noise amplitude is divided by s.
            let amp = 1.0 / stride as f32;
            let mut noise: Vec<f32> = match self.noise {
                NoiseDistribution::Uniform => (0..cw * ch)
                    .map(|_| {
                        ((local.next_u32() >> 8) as f32 * (2.0 / (1u32 << 24) as f32) - 1.0) * amp
                    })
                    .collect(),
                NoiseDistribution::Gaussian => (0..cw * ch)
                    .map(|_| {
                        let v: f32 = StandardNormal.sample(&mut local);
                        v * amp
                    })
                    .collect(),
            };
            let kernel = gaussian_kernel(self.sigma / stride as f32, 3.0);
            convolve_separable(&mut noise, cw, ch, &kernel);
            if stride == 1 {
                noise
            } else {
                upsample_bilinear(&noise, cw, ch, stride, width, height)
            }
        };
        let dx = one();
        let dy = one();
        (dx, dy)
    }

    fn warp(
        &self,
        image: &mut Radiograph,
        mask: Option<&mut Mask>,
        rng: &mut dyn Rng,
    ) -> Result<()> {
        self.validate()?;
        let alpha = uniform(rng, self.alpha);
        let (w, h) = (image.width() as usize, image.height() as usize);
        if alpha == 0.0 || w == 0 || h == 0 {
            // Still consume the field's seed so the random stream does not depend on alpha.
            let _ = rng.next_u64();
            return Ok(());
        }
        let (dx, dy) = self.unit_field(w, h, rng);
        let (img, m) = remap(
            image,
            mask.as_deref(),
            self.interpolation,
            self.border,
            |y, xs, ys| {
                let row = y * w;
                let (rdx, rdy) = (&dx[row..row + w], &dy[row..row + w]);
                let yf = y as f32;
                for (x, ((sx, sy), (&ddx, &ddy))) in xs
                    .iter_mut()
                    .zip(ys.iter_mut())
                    .zip(rdx.iter().zip(rdy))
                    .enumerate()
                {
                    *sx = x as f32 + alpha * ddx;
                    *sy = yf + alpha * ddy;
                }
            },
        );
        *image = img;
        if let (Some(dst), Some(m)) = (mask, m) {
            *dst = m;
        }
        Ok(())
    }
}

impl Transform for Elastic {
    fn apply(&self, image: &mut Radiograph, mask: &mut Mask, rng: &mut dyn Rng) -> Result<()> {
        check_same_size(image, mask)?;
        if self.image_only {
            self.warp(image, None, rng)
        } else {
            self.warp(image, Some(mask), rng)
        }
    }
}

impl ImageTransform for Elastic {
    fn apply_image(&self, image: &mut Radiograph, rng: &mut dyn Rng) -> Result<()> {
        self.warp(image, None, rng)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field_std(e: &Elastic, seed: u64) -> f32 {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let (dx, _) = e.unit_field(128, 128, &mut rng);
        let n = dx.len() as f32;
        let mean = dx.iter().sum::<f32>() / n;
        (dx.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / n).sqrt()
    }

    #[test]
    fn coarse_field_has_the_exact_fields_amplitude() {
        let coarse = Elastic {
            sigma: 8.0,
            exact: false,
            ..Elastic::default()
        };
        let exact = Elastic {
            exact: true,
            ..coarse
        };
        let (mut a, mut b) = (0.0, 0.0);
        for s in 0..6 {
            a += field_std(&coarse, s);
            b += field_std(&exact, 100 + s);
        }
        let ratio = a / b;
        assert!(
            (0.8..1.25).contains(&ratio),
            "coarse/exact field std ratio {ratio}"
        );
    }
}
