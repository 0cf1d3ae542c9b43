//! A classical, network-free segmenter (in the spirit of Kazeminia et al. 2015): multi-level
//! Otsu thresholds of the log image inside the collimated field, refined by morphology.
//! Same output as the network pipeline (labels 0/1/2, 255 outside the field), so it can sit
//! in the same comparison table.

use image::GrayImage;
use serde::{Deserialize, Serialize};

use crate::cleanup::{bone_cleanup, remove_small_components, Connectivity};
use crate::collimator::{gaussian_smooth, Collimator};
use crate::error::{PostprocError, Result};
use crate::probs::Plane;
use crate::threshold::IGNORE_LABEL;

/// Multi-level Otsu on a histogram: the `n_thresholds` (1 or 2) bin indices that maximise the
/// between-class variance. Class `k` holds bins `t[k−1]+1 ..= t[k]` (the last class runs to
/// the end), as scikit-image's `threshold_multiotsu` splits them.
///
/// # Examples
/// ```
/// use xray_postproc::multi_otsu;
/// let hist = [5u64, 5, 0, 0, 5, 5, 0, 0, 5, 5];
/// assert_eq!(multi_otsu(&hist, 2).unwrap(), vec![1, 5]);
/// ```
///
/// # Errors
/// [`PostprocError::OutOfRange`] unless `n_thresholds` is 1 or 2 and the histogram has more
/// bins than thresholds.
pub fn multi_otsu(hist: &[u64], n_thresholds: usize) -> Result<Vec<usize>> {
    if !(1..=2).contains(&n_thresholds) || hist.len() <= n_thresholds {
        return Err(PostprocError::OutOfRange {
            name: "n_thresholds".into(),
            value: n_thresholds as f64,
            expected: "1 or 2, with more histogram bins than thresholds",
        });
    }
    let n = hist.len();
    // Prefix sums of weight and first moment.
    let mut w = vec![0.0f64; n + 1];
    let mut m = vec![0.0f64; n + 1];
    for (i, &c) in hist.iter().enumerate() {
        w[i + 1] = w[i] + c as f64;
        m[i + 1] = m[i] + c as f64 * i as f64;
    }
    // Σ w_k μ_k² over classes = Σ m_k² / w_k; maximising it maximises between-class variance.
    let term = |a: usize, b: usize| {
        let (ww, mm) = (w[b] - w[a], m[b] - m[a]);
        if ww > 0.0 {
            mm * mm / ww
        } else {
            0.0
        }
    };
    let mut best = (f64::NEG_INFINITY, vec![0; n_thresholds]);
    if n_thresholds == 1 {
        for t in 0..n - 1 {
            let v = term(0, t + 1) + term(t + 1, n);
            if v > best.0 {
                best = (v, vec![t]);
            }
        }
    } else {
        for t1 in 0..n - 2 {
            for t2 in t1 + 1..n - 1 {
                let v = term(0, t1 + 1) + term(t1 + 1, t2 + 1) + term(t2 + 1, n);
                if v > best.0 {
                    best = (v, vec![t1, t2]);
                }
            }
        }
    }
    Ok(best.1)
}

/// Parameters of [`baseline_segment`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BaselineConfig {
    /// Gaussian smoothing (pixels) of the log image before thresholding.
    pub smoothing_sigma: f32,
    /// Histogram bins for Otsu (16..=4096).
    pub bins: usize,
    /// Least gap (in units of the field's log range) between the brightest class's mean and
    /// the middle one's for the brightest class to count as open beam; below it the field is
    /// taken to hold no open beam and is split into soft tissue and bone only (likewise when
    /// the middle class holds under 5 % of the field: it is then only the blur between two
    /// materials).
    pub min_open_beam_gap: f32,
    /// Components smaller than this share of the field's area are merged into their surroundings.
    pub min_component_fraction: f32,
    /// Radius of the opening applied to the bone mask (0 = none).
    pub bone_open_radius: u8,
}

impl BaselineConfig {
    /// Checks every parameter's range: `bins` in 16..=4096, `smoothing_sigma` in 0..=8,
    /// `min_open_beam_gap` and `min_component_fraction` in `[0, 1]`. NaN and infinities are
    /// refused (in JSON, a value beyond the `f32` range, such as `1e308`, reads as infinity).
    ///
    /// # Errors
    /// [`PostprocError::OutOfRange`] naming the parameter and its range.
    ///
    /// # Examples
    /// ```
    /// use xray_postproc::BaselineConfig;
    /// assert!(BaselineConfig::default().validate().is_ok());
    /// let cfg: BaselineConfig = serde_json::from_str(r#"{"min_open_beam_gap": 1e308}"#).unwrap();
    /// let e = cfg.validate().unwrap_err().to_string();
    /// assert!(e.contains("min_open_beam_gap = inf"), "{e}");
    /// ```
    pub fn validate(&self) -> Result<()> {
        if !(16..=4096).contains(&self.bins) {
            return Err(PostprocError::OutOfRange {
                name: "bins".into(),
                value: self.bins as f64,
                expected: "16..=4096",
            });
        }
        for (name, v, hi, expected) in [
            ("smoothing_sigma", self.smoothing_sigma, 8.0, "0..=8 pixels"),
            (
                "min_open_beam_gap",
                self.min_open_beam_gap,
                1.0,
                "[0, 1] (a share of the field's log range)",
            ),
            (
                "min_component_fraction",
                self.min_component_fraction,
                1.0,
                "[0, 1] (a share of the field's area)",
            ),
        ] {
            if !(v.is_finite() && (0.0..=hi).contains(&v)) {
                return Err(PostprocError::OutOfRange {
                    name: name.into(),
                    value: v as f64,
                    expected,
                });
            }
        }
        Ok(())
    }
}

impl Default for BaselineConfig {
    fn default() -> Self {
        Self {
            smoothing_sigma: 1.5,
            bins: 256,
            min_open_beam_gap: 0.15,
            min_component_fraction: 0.001,
            bone_open_radius: 1,
        }
    }
}

/// Segments a radiograph (larger = more X-rays) without a network into `0` open beam,
/// `1` soft tissue, `2` bone, and [`IGNORE_LABEL`] outside `field` (when given).
///
/// Open beam is the brightest Otsu class, bone the darkest; thresholds come from the log
/// image inside the field only, so the collimator's dark band does not pull them.
///
/// # Examples
/// ```
/// use xray_postproc::{baseline_segment, BaselineConfig, Plane};
/// // left third open beam, middle soft tissue, right third bone
/// let img: Vec<f32> = (0..60 * 30).map(|i| [1000.0, 300.0, 80.0][(i % 60) / 20]).collect();
/// let l = baseline_segment(&Plane::new(&img, 60, 30).unwrap(), None, &BaselineConfig::default()).unwrap();
/// assert_eq!(l.get_pixel(5, 5)[0], 0);
/// assert_eq!(l.get_pixel(30, 5)[0], 1);
/// assert_eq!(l.get_pixel(55, 5)[0], 2);
/// ```
///
/// # Errors
/// A `field` of another size than the image or whose edges break their rules
/// ([`Collimator::validate`], named `field.edges[i]...`), or parameters out of range
/// ([`BaselineConfig::validate`]).
pub fn baseline_segment(
    img: &Plane,
    field: Option<&Collimator>,
    cfg: &BaselineConfig,
) -> Result<GrayImage> {
    let (w, h) = (img.width(), img.height());
    cfg.validate()?;
    let mask = match field {
        Some(c) => {
            if (c.width, c.height) != (w, h) {
                return Err(PostprocError::ShapeMismatch {
                    what: "collimator field",
                    expected: format!("{w} x {h} (the image)"),
                    found: format!("{} x {}", c.width, c.height),
                });
            }
            c.validate()
                .map_err(|e| e.renamed(|name| format!("field.{name}")))?;
            c.field_mask().into_raw()
        }
        None => vec![255u8; w * h],
    };
    let data = img.data();
    let (mut lo, mut hi) = (f32::INFINITY, f32::NEG_INFINITY);
    for (&v, &m) in data.iter().zip(&mask) {
        if m > 0 {
            lo = lo.min(v);
            hi = hi.max(v);
        }
    }
    let mut labels = GrayImage::from_pixel(w as u32, h as u32, image::Luma([IGNORE_LABEL]));
    if hi.partial_cmp(&lo).is_none_or(|o| o.is_lt()) {
        return Ok(labels); // empty field
    }
    let span = (hi - lo).max(f32::MIN_POSITIVE);
    let delta = 0.02 * span;
    let (l0, l1) = (delta.ln(), (span + delta).ln());
    let mut v: Vec<f32> = data
        .iter()
        .map(|&x| (((x - lo).max(0.0) + delta).ln() - l0) / (l1 - l0))
        .collect();
    gaussian_smooth(&mut v, w, h, cfg.smoothing_sigma);
    let nb = cfg.bins;
    let bin = |x: f32| ((x.clamp(0.0, 1.0) * nb as f32) as usize).min(nb - 1);
    let mut hist = vec![0u64; nb];
    let mut area = 0usize;
    for (&x, &m) in v.iter().zip(&mask) {
        if m > 0 {
            hist[bin(x)] += 1;
            area += 1;
        }
    }
    let t = multi_otsu(&hist, 2)?;
    let mean = |a: usize, b: usize| {
        let (s, c) = (a..b).fold((0.0f64, 0u64), |acc, i| {
            (acc.0 + hist[i] as f64 * i as f64, acc.1 + hist[i])
        });
        if c == 0 {
            f64::NAN
        } else {
            s / c as f64 / nb as f64
        }
    };
    let gap = mean(t[1] + 1, nb) - mean(t[0] + 1, t[1] + 1);
    // Label by bin: above t_open → open beam, above t_bone → soft tissue, else bone.
    // A middle class of a few per cent is only the blur between two materials: no open beam.
    let middle: u64 = hist[t[0] + 1..=t[1]].iter().sum();
    let three = gap.is_finite()
        && gap >= cfg.min_open_beam_gap as f64
        && middle as f64 >= 0.05 * area as f64;
    let (t_bone, t_open) = if three {
        (t[0], t[1])
    } else {
        (multi_otsu(&hist, 1)?[0], nb)
    };
    for ((l, &x), &m) in labels.iter_mut().zip(&v).zip(&mask) {
        if m > 0 {
            let b = bin(x);
            *l = if b > t_open {
                0
            } else if b > t_bone {
                1
            } else {
                2
            };
        }
    }
    if cfg.bone_open_radius > 0 {
        bone_cleanup(&mut labels, 2, cfg.bone_open_radius, 0);
    }
    let min_size = (cfg.min_component_fraction * area as f32).ceil() as usize;
    if min_size > 1 {
        for c in 0..3u8 {
            remove_small_components(&mut labels, c, min_size, Connectivity::Eight);
        }
    }
    Ok(labels)
}
