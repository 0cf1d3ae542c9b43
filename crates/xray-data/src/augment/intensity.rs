//! Image-only transforms: blur, Gaussian and Poisson noise, gamma, brightness and contrast.
//! None of them reads or writes the mask. Amplitudes are relative to the image's own value
//! range, so the same settings suit 16-bit counts and normalised images.
//!
//! The transforms that read that range ([`GaussianNoise`], [`PoissonNoise`], [`Gamma`],
//! [`BrightnessContrast`]) refuse an image holding a NaN or infinite pixel with
//! [`crate::DataError::NonFinite`] (source `<memory>`), leaving it unchanged. An image whose
//! range spans more than `f32` holds (`hi − lo` overflows, e.g. `±3e38`) is refused by the
//! noise and brightness transforms, whose amplitudes are a fraction of that span, with
//! [`crate::DataError::InvalidParameter`]; [`Gamma`] maps it in `f64` instead. Large pixels
//! can still be pushed past `±f32::MAX` by noise or contrast (a contrast of 100 takes
//! anything above about 3e36 there) and become infinite; [`super::Pipeline`] refuses input
//! beyond ±1e30 and checks the result again after intensity steps.

use rand::rngs::Xoshiro256PlusPlus;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Poisson, StandardNormal};
use serde::{Deserialize, Serialize};

use super::filter::gaussian_blur;
use super::{check_range, finite_value_range, uniform, ImageTransform};
use crate::error::readable_number;
use crate::{DataError, Radiograph, Result};

/// The error for an image whose value range `[lo, hi]` is too wide for `what`.
fn range_too_wide(what: &str, lo: f32, hi: f32) -> DataError {
    DataError::InvalidParameter(format!(
        "{what}: the image's value range [{}, {}] is too wide: its span overflows f32",
        readable_number(lo),
        readable_number(hi)
    ))
}

/// Gaussian blur with σ (pixels) drawn from a range; σ = 0 is the identity. XNet draws
/// σ in `[0, 0.4]`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GaussianBlur {
    /// Range of the standard deviation, pixels.
    pub sigma: [f32; 2],
}

impl Default for GaussianBlur {
    fn default() -> Self {
        Self { sigma: [0.0, 0.4] }
    }
}

impl GaussianBlur {
    /// Check the σ range: finite, ordered, within `[0, 1000]` pixels.
    ///
    /// # Errors
    /// [`crate::DataError::InvalidParameter`] naming the setting and its values.
    ///
    /// # Examples
    /// ```
    /// use xray_data::augment::GaussianBlur;
    /// assert!(GaussianBlur::default().validate().is_ok()); // σ in [0, 0.4]
    /// assert!(GaussianBlur { sigma: [2.0, 2.0] }.validate().is_ok()); // a fixed σ
    /// let err = GaussianBlur { sigma: [0.5, 0.2] }.validate().unwrap_err();
    /// assert_eq!(
    ///     err.to_string(),
    ///     "invalid parameter: gaussian blur sigma range [0.5, 0.2] must be finite, ordered and \
    ///      within [0, 1000]"
    /// );
    /// assert!(GaussianBlur { sigma: [0.0, f32::INFINITY] }.validate().is_err());
    /// ```
    pub fn validate(&self) -> Result<()> {
        check_range("gaussian blur sigma", self.sigma, 0.0, 1e3)?;
        Ok(())
    }
}

impl ImageTransform for GaussianBlur {
    fn apply_image(&self, image: &mut Radiograph, rng: &mut dyn Rng) -> Result<()> {
        self.validate()?;
        let s = uniform(rng, self.sigma);
        let (w, h) = (image.width() as usize, image.height() as usize);
        gaussian_blur(image, w, h, s)
    }
}

/// Additive Gaussian noise whose standard deviation is a fraction (drawn from `std`) of the
/// image's value range (max − min).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GaussianNoise {
    /// Range of the noise standard deviation, as a fraction of the value range.
    pub std: [f32; 2],
}

impl Default for GaussianNoise {
    fn default() -> Self {
        Self { std: [0.0, 0.02] }
    }
}

impl GaussianNoise {
    /// Check the std range: finite, ordered, within `[0, 10]`.
    ///
    /// # Errors
    /// [`crate::DataError::InvalidParameter`] naming the setting and its values.
    ///
    /// # Examples
    /// ```
    /// use xray_data::augment::GaussianNoise;
    /// assert!(GaussianNoise::default().validate().is_ok()); // 0–2 % of the value range
    /// assert!(GaussianNoise { std: [-0.1, 0.1] }.validate().is_err()); // negative std
    /// let err = GaussianNoise { std: [0.0, 11.0] }.validate().unwrap_err();
    /// assert!(err.to_string().contains("gaussian noise std range [0, 11]"), "{err}");
    /// ```
    pub fn validate(&self) -> Result<()> {
        check_range("gaussian noise std", self.std, 0.0, 10.0)?;
        Ok(())
    }
}

impl ImageTransform for GaussianNoise {
    fn apply_image(&self, image: &mut Radiograph, rng: &mut dyn Rng) -> Result<()> {
        self.validate()?;
        let f = uniform(rng, self.std);
        let seed = rng.next_u64();
        let (lo, hi) = finite_value_range(image)?;
        let s = f * (hi - lo);
        if s == 0.0 || f == 0.0 {
            return Ok(());
        }
        if !s.is_finite() {
            // The span overflows, or std (up to 10) times it does: every pixel would
            // become ±∞ or NaN.
            return Err(range_too_wide(
                &format!("gaussian noise of std {}", readable_number(f)),
                lo,
                hi,
            ));
        }
        let mut local = Xoshiro256PlusPlus::seed_from_u64(seed);
        for v in image.iter_mut() {
            let n: f32 = StandardNormal.sample(&mut local);
            *v += s * n;
        }
        Ok(())
    }
}

/// Quantum (Poisson) noise for linear images: values are read as counts relative to the
/// image maximum, which is taken to have received `photons` quanta (drawn from the range);
/// each pixel is redrawn from a Poisson law with that mean and scaled back. Fewer photons,
/// more noise. Values below zero are treated as zero.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PoissonNoise {
    /// Range of the number of quanta at the image maximum.
    pub photons: [f32; 2],
}

impl Default for PoissonNoise {
    fn default() -> Self {
        Self {
            photons: [200.0, 5000.0],
        }
    }
}

impl PoissonNoise {
    /// Check the photons range: finite, ordered, within `[0.001, 1e9]`.
    ///
    /// # Errors
    /// [`crate::DataError::InvalidParameter`] naming the setting and its values.
    ///
    /// # Examples
    /// ```
    /// use xray_data::augment::PoissonNoise;
    /// assert!(PoissonNoise::default().validate().is_ok()); // 200–5000 quanta
    /// // Zero quanta would be no signal at all.
    /// let err = PoissonNoise { photons: [0.0, 100.0] }.validate().unwrap_err();
    /// assert!(err.to_string().contains("poisson noise photons range [0, 100]"), "{err}");
    /// assert!(PoissonNoise { photons: [100.0, 1e10] }.validate().is_err());
    /// ```
    pub fn validate(&self) -> Result<()> {
        check_range("poisson noise photons", self.photons, 1e-3, 1e9)?;
        Ok(())
    }
}

impl ImageTransform for PoissonNoise {
    fn apply_image(&self, image: &mut Radiograph, rng: &mut dyn Rng) -> Result<()> {
        self.validate()?;
        let n = uniform(rng, self.photons);
        let seed = rng.next_u64();
        let (_, hi) = finite_value_range(image)?;
        if hi <= 0.0 {
            return Ok(());
        }
        let scale = n / hi;
        // A maximum so small (1e-40) that `n / hi` overflows f32: the scale is taken in f64
        // there, where it cannot (ordinary images keep the f32 arithmetic bit for bit).
        let wide = !scale.is_finite();
        let scale64 = if wide {
            n as f64 / hi as f64
        } else {
            scale as f64
        };
        let mut local = Xoshiro256PlusPlus::seed_from_u64(seed);
        for v in image.iter_mut() {
            let lam = if wide {
                v.max(0.0) as f64 * scale64
            } else {
                (v.max(0.0) * scale) as f64
            };
            let k = if lam <= 0.0 {
                0.0
            } else if lam > 64.0 {
                // Normal approximation with continuity, indistinguishable at these means and
                // an order of magnitude faster than the rejection sampler.
                let z: f64 = StandardNormal.sample(&mut local);
                (lam + lam.sqrt() * z).round().max(0.0)
            } else {
                match Poisson::new(lam) {
                    Ok(p) => p.sample(&mut local),
                    Err(_) => lam,
                }
            };
            *v = (k / scale64) as f32;
        }
        Ok(())
    }
}

/// Gamma curve on the image normalised to its own range: `v' = lo + (hi − lo)·t^γ` with
/// `t = (v − lo)/(hi − lo)`; γ = 1 is the identity.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Gamma {
    /// Range of γ.
    pub gamma: [f32; 2],
}

impl Default for Gamma {
    fn default() -> Self {
        Self { gamma: [0.8, 1.25] }
    }
}

impl Gamma {
    /// Check the γ range: finite, ordered, within `[0.001, 1000]`.
    ///
    /// # Errors
    /// [`crate::DataError::InvalidParameter`] naming the setting and its values.
    ///
    /// # Examples
    /// ```
    /// use xray_data::augment::Gamma;
    /// assert!(Gamma::default().validate().is_ok()); // γ in [0.8, 1.25]
    /// assert!(Gamma { gamma: [1.0, 1.0] }.validate().is_ok()); // the identity
    /// let err = Gamma { gamma: [0.0, 2.0] }.validate().unwrap_err();
    /// assert!(err.to_string().contains("gamma range [0, 2]"), "{err}"); // γ = 0 is flat
    /// assert!(Gamma { gamma: [2.0, f32::NAN] }.validate().is_err());
    /// ```
    pub fn validate(&self) -> Result<()> {
        check_range("gamma", self.gamma, 1e-3, 1e3)?;
        Ok(())
    }
}

impl ImageTransform for Gamma {
    fn apply_image(&self, image: &mut Radiograph, rng: &mut dyn Rng) -> Result<()> {
        self.validate()?;
        let g = uniform(rng, self.gamma);
        let (lo, hi) = finite_value_range(image)?;
        if g == 1.0 || hi <= lo {
            return Ok(());
        }
        let span = hi - lo;
        if !span.is_finite() {
            // `hi − lo` overflows f32 (an image spanning ±3e38): map in f64, where it does
            // not; the result stays within [lo, hi].
            let (lo, span, g) = (lo as f64, hi as f64 - lo as f64, g as f64);
            for v in image.iter_mut() {
                let t = ((*v as f64 - lo) / span).clamp(0.0, 1.0);
                *v = (lo + span * t.powf(g)) as f32;
            }
            return Ok(());
        }
        for v in image.iter_mut() {
            let t = ((*v - lo) / span).clamp(0.0, 1.0);
            *v = lo + span * t.powf(g);
        }
        Ok(())
    }
}

/// Brightness and contrast: `v' = mean + c·(v − mean) + b·(hi − lo)`, with `c` drawn from
/// `contrast` and `b` from `brightness` (a fraction of the value range). `c = 1, b = 0` is
/// the identity.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BrightnessContrast {
    /// Range of the additive shift, as a fraction of the value range.
    pub brightness: [f32; 2],
    /// Range of the contrast factor around the mean.
    pub contrast: [f32; 2],
}

impl Default for BrightnessContrast {
    fn default() -> Self {
        Self {
            brightness: [-0.1, 0.1],
            contrast: [0.8, 1.2],
        }
    }
}

impl BrightnessContrast {
    /// Check both ranges: finite, ordered, brightness within `[-10, 10]`, contrast within
    /// `[0, 100]`.
    ///
    /// # Errors
    /// [`crate::DataError::InvalidParameter`] naming the setting and its values.
    ///
    /// # Examples
    /// ```
    /// use xray_data::augment::BrightnessContrast;
    /// assert!(BrightnessContrast::default().validate().is_ok());
    /// // Contrast 0 (a flat image at the mean) is allowed, a negative one (inversion) is not.
    /// let flat = BrightnessContrast { brightness: [0.0, 0.0], contrast: [0.0, 0.0] };
    /// assert!(flat.validate().is_ok());
    /// let inverted = BrightnessContrast { contrast: [-1.0, -1.0], ..Default::default() };
    /// let err = inverted.validate().unwrap_err();
    /// assert!(err.to_string().contains("contrast range [-1, -1]"), "{err}");
    /// let err = BrightnessContrast { brightness: [0.0, 20.0], ..Default::default() }
    ///     .validate()
    ///     .unwrap_err();
    /// assert!(err.to_string().contains("brightness range [0, 20]"), "{err}");
    /// ```
    pub fn validate(&self) -> Result<()> {
        check_range("brightness", self.brightness, -10.0, 10.0)?;
        check_range("contrast", self.contrast, 0.0, 100.0)
    }
}

impl ImageTransform for BrightnessContrast {
    fn apply_image(&self, image: &mut Radiograph, rng: &mut dyn Rng) -> Result<()> {
        self.validate()?;
        let b = uniform(rng, self.brightness);
        let c = uniform(rng, self.contrast);
        let (lo, hi) = finite_value_range(image)?;
        if b == 0.0 && c == 1.0 {
            return Ok(());
        }
        let shift = b * (hi - lo);
        if !(hi - lo).is_finite() || !shift.is_finite() {
            return Err(range_too_wide(
                &format!("brightness shift {}", readable_number(b)),
                lo,
                hi,
            ));
        }
        let n = image.len().max(1) as f64;
        let mean = (image.iter().map(|&v| v as f64).sum::<f64>() / n) as f32;
        for v in image.iter_mut() {
            *v = mean + c * (*v - mean) + shift;
        }
        Ok(())
    }
}
