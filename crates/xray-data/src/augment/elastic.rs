//! Elastic deformation (Simard et al. 2003): a random displacement field, smoothed by a
//! Gaussian of `sigma` pixels and scaled by `alpha` pixels, moves every pixel.

use rand::rngs::Xoshiro256PlusPlus;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, StandardNormal};
use serde::{Deserialize, Serialize};

use super::filter::{convolve_separable, gaussian_kernel};
use super::warp::{remap, replace_planes, Border, Interpolation};
use super::{check_range, check_same_size, uniform, ImageTransform, Transform};
use crate::error::readable_number;
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
#[serde(default, deny_unknown_fields)]
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
    ///
    /// # Examples
    /// ```
    /// use xray_data::augment::Elastic;
    /// let mild = Elastic::xnet_mild();
    /// assert!(mild.image_only); // the mask does not move
    /// assert_eq!((mild.alpha, mild.sigma), ([0.5, 1.5], 0.25));
    /// assert!(mild.validate().is_ok());
    /// ```
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
    ///
    /// # Examples
    /// ```
    /// use rand::SeedableRng;
    /// use xray_data::augment::{Elastic, Transform};
    /// use xray_data::{Mask, Radiograph};
    /// let strong = Elastic::xnet_strong();
    /// assert!(!strong.image_only); // image and mask move together
    /// assert_eq!((strong.alpha, strong.sigma), ([50.0, 60.0], 16.0));
    /// let mut image = Radiograph::from_fn(16, 16, |x, _| image::Luma([x as f32]));
    /// let mut mask = Mask::from_fn(16, 16, |x, _| image::Luma([u8::from(x >= 8)]));
    /// strong.apply(&mut image, &mut mask, &mut rand::rngs::StdRng::seed_from_u64(1))?;
    /// // The mask is resampled with nearest neighbour: still only labels 0 and 1.
    /// assert!(mask.pixels().all(|p| p.0[0] <= 1));
    /// # Ok::<(), xray_data::DataError>(())
    /// ```
    pub fn xnet_strong() -> Self {
        Self {
            alpha: [50.0, 60.0],
            sigma: 16.0,
            image_only: false,
            ..Self::default()
        }
    }

    /// Check the parameters (all finite, including a constant border's value).
    ///
    /// # Errors
    /// [`DataError::InvalidParameter`] naming the setting: an `alpha` range that is not
    /// finite, ordered and within `[0, 10000]` pixels, a `sigma` outside `(0, 1000]`
    /// pixels, or a constant border whose value is not finite.
    ///
    /// # Examples
    /// ```
    /// use xray_data::augment::{Border, Elastic};
    /// assert!(Elastic::default().validate().is_ok());
    /// let err = Elastic { sigma: 0.0, ..Elastic::default() }.validate().unwrap_err();
    /// assert!(err.to_string().contains("elastic sigma must be in (0, 1000] pixels, got 0"));
    /// assert!(Elastic { alpha: [40.0, 30.0], ..Elastic::default() }.validate().is_err());
    /// let fill = Border::Constant { value: f32::INFINITY, mask_value: 255 };
    /// assert!(Elastic { border: fill, ..Elastic::default() }.validate().is_err());
    /// ```
    pub fn validate(&self) -> Result<()> {
        check_range("elastic alpha", self.alpha, 0.0, 1e4)?;
        if !(self.sigma.is_finite() && self.sigma > 0.0 && self.sigma <= 1e3) {
            return Err(DataError::InvalidParameter(format!(
                "elastic sigma must be in (0, 1000] pixels, got {}",
                readable_number(self.sigma)
            )));
        }
        self.border.validate("elastic")
    }

    /// Draw one smoothed, unit-`alpha` displacement field `(dx, dy)` for a `width × height`
    /// image (row-major). This is the field [`Transform::apply`] uses, bit for bit.
    ///
    /// # Shapes
    /// `width`, then `height` ([image order](crate#sizes)): each field is `height` rows of `width`
    /// values.
    ///
    /// # Errors
    /// [`DataError::InvalidParameter`] when the settings fail [`Elastic::validate`] (a NaN,
    /// zero, infinite or huge `sigma` would divide by zero, overflow, or allocate terabytes
    /// for the smoothing kernel), or when `width × height` exceeds
    /// [`crate::io::DEFAULT_MAX_PIXELS`]. Nothing is drawn from `rng` then.
    ///
    /// # Examples
    /// ```
    /// use rand::SeedableRng;
    /// use xray_data::augment::Elastic;
    /// let mut rng = rand::rngs::StdRng::seed_from_u64(1);
    /// let (dx, dy) = Elastic::default().unit_field(8, 4, &mut rng)?;
    /// assert_eq!((dx.len(), dy.len()), (32, 32));
    /// let bad = Elastic { sigma: f32::NAN, ..Elastic::default() };
    /// assert!(bad.unit_field(8, 4, &mut rng).is_err());
    /// # Ok::<(), xray_data::DataError>(())
    /// ```
    pub fn unit_field(
        &self,
        width: usize,
        height: usize,
        rng: &mut dyn Rng,
    ) -> Result<(Vec<f32>, Vec<f32>)> {
        self.validate()?;
        let pixels = (width as u64).saturating_mul(height as u64);
        if pixels > crate::io::DEFAULT_MAX_PIXELS {
            return Err(DataError::InvalidParameter(format!(
                "elastic field of {width}x{height} pixels exceeds the limit of {} pixels",
                crate::io::DEFAULT_MAX_PIXELS
            )));
        }
        let f = self.coarse_field(width, height, rng)?;
        let mut up = RowUpsampler::new(f.cw, f.ch, f.stride, width);
        let mut dx = vec![0.0f32; width * height];
        let mut dy = vec![0.0f32; width * height];
        if width > 0 {
            for (y, (rx, ry)) in dx
                .chunks_exact_mut(width)
                .zip(dy.chunks_exact_mut(width))
                .enumerate()
            {
                up.row(&f.dx, y, rx);
                up.row(&f.dy, y, ry);
            }
        }
        Ok((dx, dy))
    }

    /// The smoothed field on its own grid (full resolution, or `floor(sigma / 2)` times
    /// coarser, see [`Elastic::exact`]).
    fn coarse_field(&self, width: usize, height: usize, rng: &mut dyn Rng) -> Result<CoarseField> {
        let mut local = Xoshiro256PlusPlus::seed_from_u64(rng.next_u64());
        let stride = if self.exact || self.sigma < 4.0 {
            1
        } else {
            (self.sigma / 2.0).floor() as usize
        };
        let (cw, ch) = (width.div_ceil(stride), height.div_ceil(stride));
        // The same kernel smooths both components.
        let kernel = gaussian_kernel(self.sigma / stride as f32, 3.0)?;
        let mut one = || -> Vec<f32> {
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
            if cw > 0 && ch > 0 {
                convolve_separable(&mut noise, cw, ch, &kernel);
            }
            noise
        };
        let dx = one();
        let dy = one();
        Ok(CoarseField {
            dx,
            dy,
            cw,
            ch,
            stride,
        })
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
        // The field is up-sampled row by row inside the resampler instead of into two
        // full-size planes first: the coordinates are consumed while still in L1.
        let f = self.coarse_field(w, h, rng)?;
        let mut up = RowUpsampler::new(f.cw, f.ch, f.stride, w);
        let (mut rdx, mut rdy) = (vec![0.0f32; w], vec![0.0f32; w]);
        let mut row_y = usize::MAX;
        let (img, m) = remap(
            image,
            mask.as_deref(),
            self.interpolation,
            self.border,
            usize::MAX,
            |y, xstart, xs, ys| {
                if y != row_y {
                    up.row(&f.dx, y, &mut rdx);
                    up.row(&f.dy, y, &mut rdy);
                    row_y = y;
                }
                let n = xs.len();
                let (rdx, rdy) = (&rdx[xstart..xstart + n], &rdy[xstart..xstart + n]);
                let yf = y as f32;
                // i32 -> f32 vectorises (usize -> f32 does not); widths are far below 2^24.
                for (x, ((sx, sy), (&ddx, &ddy))) in
                    (xstart as i32..).zip(xs.iter_mut().zip(ys.iter_mut()).zip(rdx.iter().zip(rdy)))
                {
                    *sx = x as f32 + alpha * ddx;
                    *sy = yf + alpha * ddy;
                }
            },
        );
        replace_planes(image, mask, img, m);
        Ok(())
    }
}

/// A smoothed unit-alpha displacement field on a grid `stride` times coarser than the image.
struct CoarseField {
    dx: Vec<f32>,
    dy: Vec<f32>,
    cw: usize,
    ch: usize,
    stride: usize,
}

/// Bilinear up-sampling of a coarse plane, one output row at a time. Coarse sample `i` sits
/// at the centre of its block of `stride` pixels (as in `filter::upsample_bilinear`); the
/// two coarse rows are blended first (a contiguous, vectorised pass over the coarse width),
/// then the columns, so each output pixel costs two indexed loads instead of four.
struct RowUpsampler {
    /// Per output column: left coarse column, right coarse column, weight of the right.
    taps: Vec<(usize, usize, f32)>,
    /// One vertically blended coarse row.
    blend: Vec<f32>,
    cw: usize,
    ch: usize,
    stride: usize,
}

impl RowUpsampler {
    fn new(cw: usize, ch: usize, stride: usize, width: usize) -> Self {
        let s = stride.max(1) as f32;
        let half = (s - 1.0) * 0.5;
        let last = cw.saturating_sub(1) as f32;
        let taps = (0..width)
            .map(|x| {
                let cx = ((x as f32 - half) / s).clamp(0.0, last);
                let x0 = cx as usize;
                (x0, (x0 + 1).min(cw.saturating_sub(1)), cx - x0 as f32)
            })
            .collect();
        Self {
            taps,
            blend: vec![0.0; cw],
            cw,
            ch,
            stride: stride.max(1),
        }
    }

    /// Write output row `y` of the up-sampled `coarse` plane into `out` (the full width).
    #[inline]
    fn row(&mut self, coarse: &[f32], y: usize, out: &mut [f32]) {
        let cw = self.cw;
        if self.stride == 1 {
            out.copy_from_slice(&coarse[y * cw..(y + 1) * cw]);
            return;
        }
        let s = self.stride as f32;
        let half = (s - 1.0) * 0.5;
        let cy = ((y as f32 - half) / s).clamp(0.0, self.ch.saturating_sub(1) as f32);
        let y0 = cy as usize;
        let y1 = (y0 + 1).min(self.ch.saturating_sub(1));
        let fy = cy - y0 as f32;
        let (r0, r1) = (
            &coarse[y0 * cw..(y0 + 1) * cw],
            &coarse[y1 * cw..(y1 + 1) * cw],
        );
        for ((b, &a0), &a1) in self.blend.iter_mut().zip(r0).zip(r1) {
            *b = a0 + fy * (a1 - a0);
        }
        let blend = &self.blend;
        for (o, &(x0, x1, fx)) in out.iter_mut().zip(&self.taps) {
            let (a, b) = (blend[x0], blend[x1]);
            *o = a + fx * (b - a);
        }
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
        let (dx, _) = e.unit_field(128, 128, &mut rng).unwrap();
        let n = dx.len() as f32;
        let mean = dx.iter().sum::<f32>() / n;
        (dx.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / n).sqrt()
    }

    /// The fused path (field up-sampled row by row inside the tiled, vectorised resampler)
    /// equals drawing the full field with `unit_field` and resampling it with the row-wise
    /// scalar reference, bit for bit.
    #[test]
    fn elastic_matches_full_field_and_scalar_reference() {
        use crate::augment::warp::remap_reference;
        let (w, h) = (53usize, 38usize);
        let img = Radiograph::from_fn(w as u32, h as u32, |x, y| {
            image::Luma([((x * 31 + y * 17) % 97) as f32 + 0.25 * (x % 3) as f32])
        });
        let mask = Mask::from_fn(w as u32, h as u32, |x, y| {
            image::Luma([[0u8, 1, 2, 255][((x / 3 + y / 4) % 4) as usize]])
        });
        let cases = [
            Elastic::default(),
            Elastic {
                exact: true,
                ..Elastic::default()
            },
            Elastic::xnet_strong(),
            Elastic::xnet_mild(),
            Elastic {
                sigma: 6.0,
                noise: NoiseDistribution::Gaussian,
                border: Border::Constant {
                    value: -1.0,
                    mask_value: 255,
                },
                ..Elastic::default()
            },
        ];
        for e in cases {
            let mut rng = rand::rngs::StdRng::seed_from_u64(11);
            let (mut i2, mut m2) = (img.clone(), mask.clone());
            e.apply(&mut i2, &mut m2, &mut rng).unwrap();
            let mut rng = rand::rngs::StdRng::seed_from_u64(11);
            let alpha = uniform(&mut rng, e.alpha);
            let (dx, dy) = e.unit_field(w, h, &mut rng).unwrap();
            let (ri, rm) = remap_reference(
                &img,
                (!e.image_only).then_some(&mask),
                e.interpolation,
                e.border,
                |y, xs, ys| {
                    for (x, (sx, sy)) in xs.iter_mut().zip(ys.iter_mut()).enumerate() {
                        *sx = x as f32 + alpha * dx[y * w + x];
                        *sy = y as f32 + alpha * dy[y * w + x];
                    }
                },
            );
            assert_eq!(i2.as_raw(), ri.as_raw(), "{e:?}");
            assert_eq!(m2.as_raw(), rm.as_ref().unwrap_or(&mask).as_raw(), "{e:?}");
            assert_ne!(i2.as_raw(), img.as_raw(), "{e:?} changed nothing");
        }
    }

    /// Blending the coarse rows first is the same bilinear up-sampling as
    /// `filter::upsample_bilinear` (columns first), up to f32 rounding.
    #[test]
    fn row_upsampler_matches_plane_upsampler() {
        use crate::augment::filter::upsample_bilinear;
        for (stride, w, h) in [(2usize, 37usize, 20usize), (3, 16, 16), (8, 100, 9)] {
            let (cw, ch) = (w.div_ceil(stride), h.div_ceil(stride));
            let coarse: Vec<f32> = (0..cw * ch)
                .map(|i| ((i * 7919) % 101) as f32 / 50.0 - 1.0)
                .collect();
            let want = upsample_bilinear(&coarse, cw, ch, stride, w, h);
            let mut up = RowUpsampler::new(cw, ch, stride, w);
            let mut row = vec![0.0f32; w];
            for y in 0..h {
                up.row(&coarse, y, &mut row);
                for (x, (a, b)) in row.iter().zip(&want[y * w..(y + 1) * w]).enumerate() {
                    assert!(
                        (a - b).abs() < 1e-6,
                        "stride {stride} ({x}, {y}): {a} vs {b}"
                    );
                }
            }
        }
    }

    /// `unit_field` validates its settings: a NaN sigma panicked dividing by zero, an
    /// infinite one overflowed, 1e30 tried to allocate terabytes and 0 gave a NaN field.
    #[test]
    fn unit_field_refuses_invalid_settings_and_sizes() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(2);
        for sigma in [
            f32::NAN,
            f32::INFINITY,
            f32::NEG_INFINITY,
            1e30,
            1e4,
            0.0,
            -1.0,
        ] {
            let e = Elastic {
                sigma,
                ..Elastic::default()
            };
            let err = e.unit_field(16, 16, &mut rng).unwrap_err();
            assert!(err.to_string().contains("elastic sigma"), "{sigma}: {err}");
        }
        let e = Elastic {
            alpha: [f32::NAN, 1.0],
            ..Elastic::default()
        };
        assert!(e.unit_field(16, 16, &mut rng).is_err());
        let err = Elastic::default()
            .unit_field(usize::MAX, 2, &mut rng)
            .unwrap_err();
        assert!(err.to_string().contains("exceeds the limit"), "{err}");
        // A refused call draws nothing: the next field is the one a fresh generator gives.
        let (a, _) = Elastic::default().unit_field(16, 16, &mut rng).unwrap();
        let mut fresh = rand::rngs::StdRng::seed_from_u64(2);
        let (b, _) = Elastic::default().unit_field(16, 16, &mut fresh).unwrap();
        assert_eq!(a, b);
        assert!(a.iter().all(|v| v.is_finite()));
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
