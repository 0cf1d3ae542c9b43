//! U-Net's boundary weight map (Ronneberger et al. 2015, eq. 2): its configuration and the
//! maps of label images, computed on the CPU with an exact Euclidean distance transform.

use serde::{Deserialize, Serialize};

use crate::error::readable_number;
use crate::{ModelError, Result};

/// U-Net's boundary weight map (Ronneberger et al. 2015, eq. 2).
///
/// `w(x) = w_c(x) + w0 · exp(−(d1(x) + d2(x))² / (2σ²))` on background pixels, where `d1`
/// and `d2` are the Euclidean distances to the nearest and second-nearest object. Objects are
/// the 4-connected components of pixels that are neither background nor ignored (tissue and
/// bone together), so the term emphasises narrow gaps of open beam between separate body
/// parts. `w_c` is 1, or the class-balancing weight `total / (K · count_c)` over the `K`
/// classes present when `balance_classes` is set. Ignored pixels get weight 0.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct BoundaryWeightConfig {
    /// Amplitude of the border term (10 in U-Net).
    pub w0: f32,
    /// Width σ of the border term, pixels (5 in U-Net).
    pub sigma: f32,
    /// Label of the background between objects (0, open beam).
    pub background_label: u8,
    /// Add class-frequency balancing `w_c` instead of 1.
    pub balance_classes: bool,
}

impl Default for BoundaryWeightConfig {
    fn default() -> Self {
        Self {
            w0: 10.0,
            sigma: 5.0,
            background_label: 0,
            balance_classes: false,
        }
    }
}

impl BoundaryWeightConfig {
    /// Checks that the parameters are usable: `w0` finite and ≥ 0, `sigma` finite and > 0.
    ///
    /// # Errors
    /// [`ModelError::InvalidConfig`] naming the parameter and its value.
    ///
    /// # Examples
    /// ```
    /// use xnet_model::loss::BoundaryWeightConfig;
    /// assert!(BoundaryWeightConfig::default().validate().is_ok()); // U-Net's w0 10, σ 5
    /// // w0 = 0 turns the border term off: plain (or class-balanced) weights.
    /// assert!(BoundaryWeightConfig { w0: 0.0, ..Default::default() }.validate().is_ok());
    /// let flat = BoundaryWeightConfig { sigma: 0.0, ..Default::default() };
    /// let e = flat.validate().unwrap_err().to_string();
    /// assert!(e.contains("boundary weight sigma must be finite and > 0, got 0"), "{e}");
    /// let nan = BoundaryWeightConfig { w0: f32::NAN, ..Default::default() };
    /// assert!(nan.validate().unwrap_err().to_string().contains("w0"));
    /// ```
    pub fn validate(&self) -> Result<()> {
        if !(self.w0.is_finite() && self.w0 >= 0.0) {
            return Err(ModelError::InvalidConfig(format!(
                "boundary weight w0 must be finite and ≥ 0, got {}",
                readable_number(self.w0)
            )));
        }
        if !(self.sigma.is_finite() && self.sigma > 0.0) {
            return Err(ModelError::InvalidConfig(format!(
                "boundary weight sigma must be finite and > 0, got {}",
                readable_number(self.sigma)
            )));
        }
        Ok(())
    }
}

/// U-Net's boundary weight map of one `height × width` label map (row-major), see
/// [`BoundaryWeightConfig`]. Plain data in, plain data out (computed on the CPU; cost
/// `O(K·H·W)` for `K` objects).
///
/// # Shapes
/// `height`, then `width` ([tensor order](crate#sizes), although `labels` is a label map): `labels`
/// and the result are `height` rows of `width` values.
///
/// # Errors
/// [`ModelError::InvalidConfig`] for a configuration that [`BoundaryWeightConfig::validate`]
/// refuses; [`ModelError::InvalidInput`] when `labels` does not hold `height · width`
/// values or that product overflows a `usize`.
///
/// # Examples
/// ```
/// use xnet_model::loss::{boundary_weight_map, BoundaryWeightConfig};
/// # fn main() -> xnet_model::Result<()> {
/// // Two objects (label 1) separated by a one-pixel gap of open beam (label 0).
/// let labels = [1u8, 0, 1];
/// let w = boundary_weight_map(&labels, 1, 3, &BoundaryWeightConfig::default(), Some(255))?;
/// // d1 = d2 = 1 at the gap: 1 + 10·exp(−4/50).
/// assert!((w[1] - (1.0 + 10.0 * (-4.0f32 / 50.0).exp())).abs() < 1e-5);
/// assert_eq!(w[0], 1.0);
/// # Ok(())
/// # }
/// ```
pub fn boundary_weight_map(
    labels: &[u8],
    height: usize,
    width: usize,
    cfg: &BoundaryWeightConfig,
    ignore_label: Option<u8>,
) -> Result<Vec<f32>> {
    cfg.validate()?;
    let Some(pixels) = height.checked_mul(width) else {
        return Err(ModelError::InvalidInput(format!(
            "label map of height × width = {height} × {width} pixels: the count overflows"
        )));
    };
    if labels.len() != pixels {
        return Err(ModelError::InvalidInput(format!(
            "label map has {} pixels but height × width = {height} × {width} = {pixels}",
            labels.len(),
        )));
    }
    let ignored = |l: u8| ignore_label == Some(l);
    let is_object = |l: u8| l != cfg.background_label && !ignored(l);
    let (components, count) = label_components(labels, height, width, is_object);

    // Two smallest distances to distinct objects, per pixel.
    let mut d1 = vec![f32::INFINITY; labels.len()];
    let mut d2 = vec![f32::INFINITY; labels.len()];
    let mut mask = vec![false; labels.len()];
    for k in 1..=count {
        for (m, &c) in mask.iter_mut().zip(&components) {
            *m = c == k;
        }
        let dist = euclidean_distance_transform(&mask, height, width);
        for i in 0..labels.len() {
            let d = dist[i];
            if d < d1[i] {
                d2[i] = d1[i];
                d1[i] = d;
            } else if d < d2[i] {
                d2[i] = d;
            }
        }
    }

    let class_term = class_balance(labels, cfg.balance_classes, ignore_label);
    let two_sigma2 = 2.0 * cfg.sigma * cfg.sigma;
    Ok(labels
        .iter()
        .enumerate()
        .map(|(i, &l)| {
            if ignored(l) {
                return 0.0;
            }
            let wc = class_term[l as usize];
            if l == cfg.background_label && d2[i].is_finite() {
                let s = d1[i] + d2[i];
                wc + cfg.w0 * (-(s * s) / two_sigma2).exp()
            } else {
                wc
            }
        })
        .collect())
}

/// Per-label weight `w_c`: 1, or `total / (K · count_c)` over the `K` labels present.
fn class_balance(labels: &[u8], balance: bool, ignore_label: Option<u8>) -> [f32; 256] {
    let mut out = [1.0f32; 256];
    if !balance {
        return out;
    }
    let mut counts = [0usize; 256];
    for &l in labels {
        if ignore_label != Some(l) {
            counts[l as usize] += 1;
        }
    }
    let total: usize = counts.iter().sum();
    let present = counts.iter().filter(|&&c| c > 0).count();
    for (o, &c) in out.iter_mut().zip(&counts) {
        if c > 0 {
            *o = total as f32 / (present as f32 * c as f32);
        }
    }
    out
}

/// 4-connected components of the pixels where `keep` holds; 0 = not kept, 1..=count.
fn label_components(
    labels: &[u8],
    height: usize,
    width: usize,
    keep: impl Fn(u8) -> bool,
) -> (Vec<u32>, u32) {
    let mut comp = vec![0u32; labels.len()];
    let mut count = 0u32;
    let mut stack = Vec::new();
    for start in 0..labels.len() {
        if comp[start] != 0 || !keep(labels[start]) {
            continue;
        }
        count += 1;
        comp[start] = count;
        stack.push(start);
        while let Some(i) = stack.pop() {
            let (y, x) = (i / width, i % width);
            let mut visit = |j: usize| {
                if comp[j] == 0 && keep(labels[j]) {
                    comp[j] = count;
                    stack.push(j);
                }
            };
            if x > 0 {
                visit(i - 1);
            }
            if x + 1 < width {
                visit(i + 1);
            }
            if y > 0 {
                visit(i - width);
            }
            if y + 1 < height {
                visit(i + width);
            }
        }
    }
    (comp, count)
}

/// Exact Euclidean distance from every pixel to the nearest `true` pixel (Felzenszwalb &
/// Huttenlocher's separable algorithm); infinite everywhere when no pixel is `true`.
fn euclidean_distance_transform(mask: &[bool], height: usize, width: usize) -> Vec<f32> {
    const INF: f64 = 1e20;
    let mut g: Vec<f64> = mask.iter().map(|&m| if m { 0.0 } else { INF }).collect();
    let mut f = vec![0.0f64; height.max(width)];
    let mut out = vec![0.0f64; height.max(width)];
    let mut v = vec![0usize; height.max(width)];
    let mut z = vec![0.0f64; height.max(width) + 1];
    // Columns, then rows.
    for x in 0..width {
        for y in 0..height {
            f[y] = g[y * width + x];
        }
        dt_1d(&f[..height], &mut out[..height], &mut v, &mut z);
        for y in 0..height {
            g[y * width + x] = out[y];
        }
    }
    for y in 0..height {
        f[..width].copy_from_slice(&g[y * width..(y + 1) * width]);
        dt_1d(&f[..width], &mut out[..width], &mut v, &mut z);
        g[y * width..(y + 1) * width].copy_from_slice(&out[..width]);
    }
    g.into_iter()
        .map(|d| {
            if d >= INF / 2.0 {
                f32::INFINITY
            } else {
                d.sqrt() as f32
            }
        })
        .collect()
}

/// 1-D squared distance transform of sampled function `f` (lower envelope of parabolas).
fn dt_1d(f: &[f64], d: &mut [f64], v: &mut [usize], z: &mut [f64]) {
    let n = f.len();
    if n == 0 {
        return;
    }
    let mut k = 0usize;
    v[0] = 0;
    z[0] = f64::NEG_INFINITY;
    z[1] = f64::INFINITY;
    for q in 1..n {
        loop {
            let p = v[k];
            let s =
                ((f[q] + (q * q) as f64) - (f[p] + (p * p) as f64)) / (2.0 * (q as f64 - p as f64));
            if s <= z[k] && k > 0 {
                k -= 1;
            } else if s <= z[k] {
                // k == 0 and the new parabola dominates from −∞: replace it.
                v[0] = q;
                z[0] = f64::NEG_INFINITY;
                z[1] = f64::INFINITY;
                break;
            } else {
                k += 1;
                v[k] = q;
                z[k] = s;
                z[k + 1] = f64::INFINITY;
                break;
            }
        }
    }
    k = 0;
    for (q, dq) in d.iter_mut().enumerate() {
        while z[k + 1] < q as f64 {
            k += 1;
        }
        let p = v[k];
        let diff = q as f64 - p as f64;
        *dq = diff * diff + f[p];
    }
}

/// The boundary weight maps of a batch of `n` label maps (`N × H × W`, row-major) as one
/// `N × H × W` vector.
///
/// # Shapes
/// `n`, `height`, then `width` ([tensor order](crate#sizes)): `labels` and the result are `n ×
/// height × width`.
///
/// # Errors
/// As [`boundary_weight_map`], and [`ModelError::InvalidInput`] when `labels` does not
/// hold `n · height · width` values or that product overflows a `usize`.
///
/// # Examples
/// ```
/// use xnet_model::loss::{boundary_weight_map, boundary_weight_maps, BoundaryWeightConfig};
/// # fn main() -> xnet_model::Result<()> {
/// let cfg = BoundaryWeightConfig::default();
/// // Two 1×3 label maps: a gap of open beam between two objects, then one object.
/// let labels = [1u8, 0, 1, /* image 2 */ 1, 1, 1];
/// let w = boundary_weight_maps(&labels, 2, 1, 3, &cfg, Some(255))?;
/// assert_eq!(w.len(), 6);
/// assert_eq!(w[..3], boundary_weight_map(&labels[..3], 1, 3, &cfg, Some(255))?[..]);
/// assert!((w[1] - (1.0 + 10.0 * (-4.0f32 / 50.0).exp())).abs() < 1e-5); // d1 = d2 = 1
/// assert_eq!(w[3..], [1.0, 1.0, 1.0]); // no background: no border term
/// // Labels that do not fill N × H × W are refused.
/// assert!(boundary_weight_maps(&labels[..5], 2, 1, 3, &cfg, Some(255)).is_err());
/// # Ok(())
/// # }
/// ```
pub fn boundary_weight_maps(
    labels: &[u8],
    n: usize,
    height: usize,
    width: usize,
    cfg: &BoundaryWeightConfig,
    ignore_label: Option<u8>,
) -> Result<Vec<f32>> {
    let Some((plane, total)) = height
        .checked_mul(width)
        .and_then(|plane| Some((plane, plane.checked_mul(n)?)))
    else {
        return Err(ModelError::InvalidInput(format!(
            "label batch of N × H × W = {n} × {height} × {width} values: the count overflows"
        )));
    };
    if labels.len() != total {
        return Err(ModelError::InvalidInput(format!(
            "label batch has {} values but N × H × W = {n} × {height} × {width} = {total}",
            labels.len(),
        )));
    }
    let mut out = Vec::with_capacity(labels.len());
    for img in labels.chunks(plane.max(1)).take(n) {
        out.extend(boundary_weight_map(img, height, width, cfg, ignore_label)?);
    }
    Ok(out)
}
