//! X-ray image formation from thickness maps: Beer–Lambert attenuation with randomised
//! coefficients and beam hardening, heel effect, scatter, detector blur, quantum and
//! electronic noise, gain non-uniformity, linear or log (CR-like) output.

use rand::rngs::Xoshiro256PlusPlus;
use rand::{Rng, RngExt, SeedableRng};
use rand_distr::{Distribution, Poisson, StandardNormal};
use serde::{Deserialize, Serialize};

use crate::augment::filter::{downsample_mean, gaussian_blur, upsample_bilinear};
use crate::Result;

/// How detector signal is turned into 16-bit values (both: larger = more X-rays).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutputScale {
    /// Proportional to detector counts (DR "for processing" style).
    Linear,
    /// Proportional to the logarithm of the counts (CR / "for presentation" style).
    Log,
    /// Either, drawn per image with equal probability.
    Mixed,
}

/// Ranges of the physical parameters, each drawn uniformly per image.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PhysicsConfig {
    /// Soft-tissue linear attenuation, 1/mm (water is 0.027 at 40 keV, 0.020 at 60 keV).
    /// Range within `[1e-5, 1]` (1/mm is fifty times water's).
    pub mu_tissue: [f32; 2],
    /// Ratio of cortical-bone to soft-tissue attenuation (≈ 4.8 at 40 keV, 2.9 at 60 keV);
    /// drawn anti-correlated with `mu_tissue` so low energies have both higher. Range
    /// within `[1, 100]`.
    pub bone_ratio: [f32; 2],
    /// Beam-hardening coefficient: the line integral `L` becomes `L / (1 + h·L)`. Range
    /// within `[0, 10]`.
    pub hardening: [f32; 2],
    /// Heel effect: relative intensity change from one side of the field to the other.
    /// Range within `[0, 1)`.
    pub heel: [f32; 2],
    /// Scatter strength: scatter = this × (wide blur of the scatter source
    /// `I₀ (1 − e^{−0.9 μT}) e^{−μT/2}`); about the scatter-to-primary ratio of a hand.
    /// Range within `[0, 100]`.
    pub scatter: [f32; 2],
    /// Detector blur (Gaussian σ, pixels at 256 px; scaled with the image size). Range
    /// within `[0, 32]` (an eighth of the image; real detectors blur about a pixel, and the
    /// blur's cost grows with σ).
    pub detector_blur_px: [f32; 2],
    /// Quanta per pixel in the open beam (sets the quantum noise). Range within
    /// `[1, 1e9]`.
    pub photons: [f32; 2],
    /// Electronic noise σ in quanta. Range within `[0, 1e6]`.
    pub electronic_noise: [f32; 2],
    /// Relative standard deviation of the low-frequency gain non-uniformity. Range within
    /// `[0, 1]`.
    pub gain_variation: [f32; 2],
    /// Probability that a log-processed (CR-like) image also gets a vendor's presentation
    /// processing: a wide unsharp mask, `v + g·(v − blur_σ(v))`, which compresses the
    /// large-scale range (lungs against mediastinum) and sharpens edges, as CR readers'
    /// "for presentation" images have. Linear images are never processed.
    pub presentation_probability: f32,
    /// Width σ of the unsharp mask's blur, as a fraction of the image's smaller side. Range
    /// within `[0, 1]`.
    pub unsharp_sigma: [f32; 2],
    /// Gain `g` of the unsharp mask. Range within `[0, 100]`.
    pub unsharp_gain: [f32; 2],
}

impl Default for PhysicsConfig {
    fn default() -> Self {
        Self {
            mu_tissue: [0.019, 0.028],
            bone_ratio: [2.9, 4.6],
            hardening: [0.01, 0.05],
            heel: [0.05, 0.25],
            scatter: [0.05, 0.4],
            detector_blur_px: [0.4, 1.1],
            photons: [400.0, 6000.0],
            electronic_noise: [0.5, 4.0],
            gain_variation: [0.0, 0.03],
            presentation_probability: 0.5,
            unsharp_sigma: [0.02, 0.1],
            unsharp_gain: [0.5, 2.0],
        }
    }
}

pub(crate) fn draw(rng: &mut (impl Rng + ?Sized), r: [f32; 2]) -> f32 {
    if r[1] > r[0] {
        rng.random_range(r[0]..r[1])
    } else {
        r[0]
    }
}

/// Inputs that are not thickness: the collimator transmission and extra attenuation
/// (lead markers) per pixel.
pub(crate) struct Exposure<'a> {
    pub tissue: &'a [f32],
    pub bone: &'a [f32],
    /// Blade transmission (1 in the field, leakage outside).
    pub blades: &'a [f32],
    /// Extra transmission factor (lead markers), 1 elsewhere.
    pub marker: &'a [f32],
    /// Dose relative to a limb examination (multiplies the drawn quanta per pixel).
    pub technique: f32,
}

/// Form the image. Returns values in `0..=65535` (rounded), larger = more X-rays.
///
/// Errors only as [`gaussian_blur`] does, which a validated config never meets.
pub(crate) fn expose(
    e: &Exposure<'_>,
    width: usize,
    height: usize,
    cfg: &PhysicsConfig,
    log_output: bool,
    rng: &mut (impl Rng + ?Sized),
) -> Result<Vec<f32>> {
    let n = width * height;
    let size = width.min(height) as f32;
    let t = rng.random_range(0.0..1.0f32);
    let mu_t = cfg.mu_tissue[0] + t * (cfg.mu_tissue[1] - cfg.mu_tissue[0]);
    // Anti-correlated: a softer beam (higher mu) has higher bone contrast.
    let ratio = cfg.bone_ratio[0]
        + (t * 0.7 + 0.3 * rng.random_range(0.0..1.0f32)) * (cfg.bone_ratio[1] - cfg.bone_ratio[0]);
    let mu_b = mu_t * ratio;
    let h = draw(rng, cfg.hardening);
    let heel = draw(rng, cfg.heel);
    let heel_dir = rng.random_range(0.0..std::f32::consts::TAU);
    let (hs, hc) = heel_dir.sin_cos();
    let spr = draw(rng, cfg.scatter);
    let blur = draw(rng, cfg.detector_blur_px) * size / 256.0;
    let n0 = draw(rng, cfg.photons) * e.technique;
    let sigma_e = draw(rng, cfg.electronic_noise);
    let gain_sd = draw(rng, cfg.gain_variation);
    let mut local = Xoshiro256PlusPlus::seed_from_u64(rng.next_u64());

    // Incident intensity with heel effect (linear across the anode–cathode axis) and a
    // mild inverse-square fall-off towards the corners.
    let vignette = rng.random_range(0.0..0.08f32);
    let (cx, cy) = (width as f32 / 2.0, height as f32 / 2.0);
    let mut incident = vec![0.0f32; n];
    for y in 0..height {
        let dy = (y as f32 + 0.5 - cy) / size;
        for x in 0..width {
            let dx = (x as f32 + 0.5 - cx) / size;
            let i = y * width + x;
            let along = dx * hc + dy * hs;
            incident[i] =
                (1.0 + heel * along) * (1.0 - vignette * (dx * dx + dy * dy) * 2.0) * e.blades[i];
        }
    }
    // Primary through the object.
    let mut signal = vec![0.0f32; n];
    let mut scatter_src = vec![0.0f32; n];
    for i in 0..n {
        let l = mu_t * e.tissue[i] + (mu_b - mu_t) * e.bone[i];
        let l = l / (1.0 + h * l);
        let p = incident[i] * (-l).exp() * e.marker[i];
        signal[i] = p;
        // Scatter is born where the beam interacts with tissue and half-attenuated on its
        // way out.
        let mt = mu_t * e.tissue[i];
        scatter_src[i] = incident[i] * (1.0 - (-0.9 * mt).exp()) * (-0.5 * mt).exp();
    }
    // Scatter: a very wide blur of the interaction density (done on a coarse grid, it is
    // low-frequency anyway), normalised so `spr` is the scatter-to-primary ratio behind
    // thick tissue.
    let f = (width.min(height) / 32).max(1);
    let (mut coarse, cw, ch) = downsample_mean(&scatter_src, width, height, f);
    gaussian_blur(&mut coarse, cw, ch, (size / 10.0) / f as f32)?;
    let scat = upsample_bilinear(&coarse, cw, ch, f, width, height);
    for (s, &c) in signal.iter_mut().zip(&scat) {
        *s += spr * c;
    }
    // Quantum noise on absorbed quanta (before the scintillator blur, which correlates it).
    for s in signal.iter_mut() {
        let lam = (*s * n0).max(0.0) as f64;
        let k = if lam > 50.0 {
            let z: f64 = StandardNormal.sample(&mut local);
            lam + lam.sqrt() * z
        } else if lam > 0.0 {
            Poisson::new(lam)
                .map(|p| p.sample(&mut local))
                .unwrap_or(lam)
        } else {
            0.0
        };
        *s = k as f32;
    }
    gaussian_blur(&mut signal, width, height, blur)?;
    // Gain non-uniformity: a smooth random field (coarse 6×6 grid, bilinear) plus faint
    // line-to-line banding as left by CR readers.
    let g = 6usize;
    let gain_coarse: Vec<f32> = (0..g * g)
        .map(|_| {
            let z: f32 = StandardNormal.sample(&mut local);
            1.0 + gain_sd * z
        })
        .collect();
    let fx = width.div_ceil(g);
    let gain = upsample_bilinear(&gain_coarse, g, g, fx, width, height);
    let band = gain_sd * 0.2;
    for y in 0..height {
        let zb: f32 = StandardNormal.sample(&mut local);
        let rowg = 1.0 + band * zb;
        for x in 0..width {
            let i = y * width + x;
            let z: f32 = StandardNormal.sample(&mut local);
            signal[i] = signal[i] * gain[i] * rowg + sigma_e * z;
        }
    }
    // Output mapping to 16 bits.
    if log_output {
        // CR-like: v = W + b·ln(counts / n0), a fixed number of decades below white.
        let white = rng.random_range(52000.0..64000.0f32);
        let decades = rng.random_range(2.5..4.0f32);
        let b = white / (decades * std::f32::consts::LN_10);
        for s in signal.iter_mut() {
            let c = s.max(0.5) / n0;
            *s = (white + b * c.ln()).clamp(0.0, 65535.0);
        }
        // Drawn after everything else, so an unprocessed image is the same as without
        // this step.
        if rng.random_bool(cfg.presentation_probability as f64) {
            let sigma = draw(rng, cfg.unsharp_sigma) * size;
            let gain = draw(rng, cfg.unsharp_gain);
            unsharp_mask(&mut signal, width, height, sigma, gain)?;
        }
        for s in signal.iter_mut() {
            *s = s.clamp(0.0, 65535.0).round();
        }
    } else {
        let white = rng.random_range(30000.0..60000.0f32);
        let offset = rng.random_range(0.0..400.0f32);
        let k = white / n0;
        for s in signal.iter_mut() {
            *s = (offset + k * *s).clamp(0.0, 65535.0).round();
        }
    }
    Ok(signal)
}

/// `v + gain·(v − blur_σ(v))`, the blur on a coarse grid when σ is wide (the blurred image
/// is smooth, so this loses nothing visible and keeps the cost linear in the pixels). Errors
/// as [`gaussian_blur`].
fn unsharp_mask(
    signal: &mut [f32],
    width: usize,
    height: usize,
    sigma: f32,
    gain: f32,
) -> Result<()> {
    let f = ((sigma / 3.0) as usize).min(width.min(height) / 4).max(1);
    let (mut coarse, cw, ch) = downsample_mean(signal, width, height, f);
    gaussian_blur(&mut coarse, cw, ch, sigma / f as f32)?;
    let blurred = upsample_bilinear(&coarse, cw, ch, f, width, height);
    for (v, &b) in signal.iter_mut().zip(&blurred) {
        *v += gain * (*v - b);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unsharp_mask_keeps_flat_images_and_steepens_edges() {
        let (w, h) = (64, 64);
        let mut flat = vec![1000.0f32; w * h];
        unsharp_mask(&mut flat, w, h, 6.0, 1.5).unwrap();
        assert!(
            flat.iter().all(|&v| (v - 1000.0).abs() < 1e-2),
            "a flat image stays flat"
        );
        // A step from 0 to 1000 at x = 32: overshoot on the bright side, undershoot on the
        // dark side, and far from the edge the levels are kept.
        let mut step: Vec<f32> = (0..w * h)
            .map(|i| if i % w >= 32 { 1000.0 } else { 0.0 })
            .collect();
        unsharp_mask(&mut step, w, h, 6.0, 1.5).unwrap();
        let row = &step[32 * w..33 * w];
        assert!(row[33] > 1100.0, "bright side {}", row[33]);
        assert!(row[30] < -100.0, "dark side {}", row[30]);
        assert!(
            (row[63] - 1000.0).abs() < 60.0 && row[0].abs() < 60.0,
            "{row:?}"
        );
    }
}
