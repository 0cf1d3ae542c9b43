//! Losses: pixel-wise cross-entropy with class weights and an ignore label, focal loss, soft
//! Dice, L2 regularisation of convolution kernels and U-Net's boundary weight map.
//!
//! Every pixel loss takes `[N, C, H, W]` logits (what a [`Segmenter`](crate::Segmenter)
//! returns) and `[N, H, W]` integer labels (`u8`, `u32` or `i64`). Pixels whose label equals
//! the ignore label (by default [`crate::IGNORE_LABEL`] = 255) contribute
//! nothing, neither to the numerator nor to the normalisation.
//!
//! The weighting follows PyTorch's `F.cross_entropy(weight=w, ignore_index=255)`: the loss is
//! `Σ w[yᵢ]·ℓᵢ / Σ w[yᵢ]` over the non-ignored pixels `i`. One difference: when every pixel is
//! ignored, PyTorch returns NaN while these functions return 0 (a batch without labels
//! teaches nothing, and must not stop training).

use candle_core::{DType, Tensor, Var, D};
use serde::{Deserialize, Serialize};

use crate::error::readable_number;
use crate::{ModelError, Result, IGNORE_LABEL};

/// Options shared by the pixel losses.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct PixelLossOptions {
    /// One weight per class (length `C`), as PyTorch's `weight=`; `None` weighs classes
    /// equally.
    pub class_weights: Option<Vec<f32>>,
    /// Label value excluded from the loss; `None` means every label must be a valid class.
    pub ignore_label: Option<u8>,
}

impl Default for PixelLossOptions {
    fn default() -> Self {
        Self {
            class_weights: None,
            ignore_label: Some(IGNORE_LABEL),
        }
    }
}

/// Which data term the trainer minimises.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum LossKind {
    /// Pixel-wise cross-entropy (the paper's loss).
    CrossEntropy,
    /// Focal loss `−α_y (1 − p_y)^γ log p_y` (Lin et al. 2017), α = the class weights.
    Focal {
        /// Focusing parameter γ: 0 (cross-entropy) or ≥ 1 (2 in the paper that introduced
        /// it); [`LossConfig::validate`] refuses 0 < γ < 1.
        gamma: f64,
    },
    /// Soft Dice loss `1 − mean_c (2 Σ p·g + s) / (Σ p + Σ g + s)`.
    Dice {
        /// Smoothing term `s` > 0 that keeps absent classes finite.
        smooth: f64,
    },
    /// Cross-entropy plus `dice_weight` × soft Dice.
    CrossEntropyDice {
        /// Weight of the Dice term.
        dice_weight: f64,
        /// Smoothing term of the Dice part.
        smooth: f64,
    },
}

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

/// The complete training objective: a data term plus L2 on convolution kernels.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct LossConfig {
    /// The data term.
    pub kind: LossKind,
    /// Class weights and ignore label.
    pub pixel: PixelLossOptions,
    /// Multiply the per-pixel cross-entropy / focal loss by U-Net's boundary weight map.
    pub boundary: Option<BoundaryWeightConfig>,
    /// L2 coefficient λ on convolution kernels (Keras convention: the objective gains
    /// `λ · Σ w²`, whose gradient is `2λw`; PyTorch's `weight_decay=λ'` corresponds to
    /// `λ = λ'/2`). The paper's value 5·10⁻⁴ is the default.
    pub l2: f64,
}

impl Default for LossConfig {
    fn default() -> Self {
        Self {
            kind: LossKind::CrossEntropy,
            pixel: PixelLossOptions::default(),
            boundary: None,
            l2: 5e-4,
        }
    }
}

impl LossConfig {
    /// Checks the configuration against the number of classes of the model. NaN and
    /// infinities are refused, and so is an `f64` coefficient beyond the `f32` range (a
    /// `1e308` in a JSON config), which the loss, computed in `f32`, would run as infinity.
    /// (The `f32` class weights and boundary weights read such a value as infinity already.)
    ///
    /// # Errors
    /// [`ModelError::InvalidConfig`] naming the field and the value.
    ///
    /// # Examples
    /// ```
    /// use xnet_model::loss::LossConfig;
    /// assert!(LossConfig::default().validate(3).is_ok());
    /// let cfg: LossConfig = serde_json::from_str(r#"{"l2": 1e308}"#)?;
    /// let e = cfg.validate(3).unwrap_err().to_string();
    /// assert!(e.contains("l2 must be a finite number"), "{e}");
    /// # Ok::<(), serde_json::Error>(())
    /// ```
    pub fn validate(&self, num_classes: usize) -> Result<()> {
        if let Some(w) = &self.pixel.class_weights {
            check_class_weights(w, num_classes)?;
        }
        let data_term: &[(&str, f64)] = match self.kind {
            LossKind::CrossEntropy => &[],
            LossKind::Focal { gamma } => &[("focal gamma", gamma)],
            LossKind::Dice { smooth } => &[("dice smooth", smooth)],
            LossKind::CrossEntropyDice {
                dice_weight,
                smooth,
            } => &[("dice_weight", dice_weight), ("dice smooth", smooth)],
        };
        crate::error::check_f32_range(&[("l2", self.l2)])?;
        crate::error::check_f32_range(data_term)?;
        if !(self.l2.is_finite() && self.l2 >= 0.0) {
            return Err(ModelError::InvalidConfig(format!(
                "l2 must be finite and ≥ 0, got {}",
                readable_number(self.l2)
            )));
        }
        match &self.kind {
            LossKind::CrossEntropy => {}
            LossKind::Focal { gamma } => {
                if !(gamma.is_finite() && (*gamma == 0.0 || *gamma >= 1.0)) {
                    return Err(ModelError::InvalidConfig(format!(
                        "focal gamma must be 0 or a finite value ≥ 1 (the gradient is unbounded \
                         for 0 < γ < 1), got {}",
                        readable_number(*gamma)
                    )));
                }
            }
            LossKind::Dice { smooth } | LossKind::CrossEntropyDice { smooth, .. } => {
                if !(smooth.is_finite() && *smooth > 0.0) {
                    return Err(ModelError::InvalidConfig(format!(
                        "dice smooth must be finite and > 0, got {}",
                        readable_number(*smooth)
                    )));
                }
            }
        }
        if let LossKind::CrossEntropyDice { dice_weight, .. } = &self.kind {
            if !(dice_weight.is_finite() && *dice_weight >= 0.0) {
                return Err(ModelError::InvalidConfig(format!(
                    "dice_weight must be finite and ≥ 0, got {}",
                    readable_number(*dice_weight)
                )));
            }
        }
        if let Some(b) = &self.boundary {
            b.validate()?;
        }
        Ok(())
    }

    /// The data term for a batch (a scalar tensor), without the L2 part.
    ///
    /// `pixel_weights` (`[N, H, W]`, e.g. from [`boundary_weight_map`]) multiply the
    /// per-pixel cross-entropy / focal loss; the Dice term ignores them.
    ///
    /// # Examples
    /// ```
    /// use candle_core::{DType, Device, Tensor};
    /// use xnet_model::loss::{LossConfig, LossKind};
    /// # fn main() -> xnet_model::Result<()> {
    /// let dev = Device::Cpu;
    /// // Two classes, one 1×2 image labelled [0, 1], equal logits: every probability is 1/2.
    /// let logits = Tensor::zeros((1, 2, 1, 2), DType::F32, &dev)?;
    /// let labels = Tensor::new(&[[[0u8, 1]]], &dev)?;
    /// let cfg = LossConfig {
    ///     kind: LossKind::CrossEntropyDice { dice_weight: 0.5, smooth: 1.0 },
    ///     ..Default::default()
    /// };
    /// // Cross-entropy ln 2, plus 0.5 × Dice loss 1 − (2·½ + 1)/(1 + 1 + 1) = 1/3 per class.
    /// let loss = cfg.data_loss(&logits, &labels, None)?.to_scalar::<f32>()?;
    /// assert!((loss - (2f32.ln() + 0.5 / 3.0)).abs() < 1e-6);
    /// # Ok(())
    /// # }
    /// ```
    pub fn data_loss(
        &self,
        logits: &Tensor,
        labels: &Tensor,
        pixel_weights: Option<&Tensor>,
    ) -> Result<Tensor> {
        match &self.kind {
            LossKind::CrossEntropy => {
                weighted_cross_entropy(logits, labels, &self.pixel, pixel_weights)
            }
            LossKind::Focal { gamma } => {
                focal_impl(logits, labels, *gamma, &self.pixel, pixel_weights)
            }
            LossKind::Dice { smooth } => soft_dice(logits, labels, *smooth, &self.pixel),
            LossKind::CrossEntropyDice {
                dice_weight,
                smooth,
            } => {
                let ce = weighted_cross_entropy(logits, labels, &self.pixel, pixel_weights)?;
                let dice = soft_dice(logits, labels, *smooth, &self.pixel)?;
                Ok((ce + (dice * *dice_weight)?)?)
            }
        }
    }
}

fn check_class_weights(w: &[f32], num_classes: usize) -> Result<()> {
    if w.len() != num_classes {
        return Err(ModelError::InvalidConfig(format!(
            "class_weights has {} entries but the model has {num_classes} classes",
            w.len()
        )));
    }
    if let Some((c, v)) = w
        .iter()
        .enumerate()
        .find(|(_, v)| !(v.is_finite() && **v >= 0.0))
    {
        return Err(ModelError::InvalidConfig(format!(
            "class weight {c} must be finite and ≥ 0, got {}",
            readable_number(*v)
        )));
    }
    Ok(())
}

/// Shape checks and the pieces every pixel loss needs.
struct Prepared {
    /// `[N, 1, H, W]` u32 target with ignored pixels replaced by class 0.
    target: Tensor,
    /// `[N, H, W]` (compute dtype): 1 where the pixel counts, 0 where ignored.
    valid: Tensor,
    /// `[N, H, W]` (compute dtype): class weight of the pixel's label times `valid`.
    class_w: Tensor,
}

fn prepare(logits: &Tensor, labels: &Tensor, opts: &PixelLossOptions) -> Result<Prepared> {
    let dtype = compute_dtype(logits);
    let (n, c, h, w) = logits.dims4().map_err(|_| {
        ModelError::InvalidInput(format!(
            "logits must be [N, C, H, W], got shape {:?}",
            logits.dims()
        ))
    })?;
    if labels.dims() != [n, h, w] {
        return Err(ModelError::InvalidInput(format!(
            "labels must be [N, H, W] = [{n}, {h}, {w}] to match logits {:?}, got {:?}",
            logits.dims(),
            labels.dims()
        )));
    }
    if labels.dtype().is_float() {
        return Err(ModelError::InvalidInput(format!(
            "labels must be an integer tensor (u8, u32 or i64), got {:?}",
            labels.dtype()
        )));
    }
    let labels = labels.to_dtype(DType::U32)?;
    let valid = match opts.ignore_label {
        Some(ignore) => labels.ne(ignore as u32)?,
        None => labels.ones_like()?.to_dtype(DType::U8)?,
    };
    let target = valid.where_cond(&labels, &labels.zeros_like()?)?;
    let max_label = target.flatten_all()?.max(0)?.to_scalar::<u32>()?;
    if max_label as usize >= c {
        return Err(ModelError::InvalidInput(format!(
            "label {max_label} found but the logits have only {c} classes (valid labels are \
             0..{c}{})",
            match opts.ignore_label {
                Some(i) => format!(" and the ignore label {i}"),
                None => String::new(),
            }
        )));
    }
    let valid = valid.to_dtype(dtype)?;
    let class_w = match &opts.class_weights {
        Some(weights) => {
            check_class_weights(weights, c)?;
            let table = Tensor::from_slice(weights, c, logits.device())?.to_dtype(dtype)?;
            let per_pixel = table
                .index_select(&target.flatten_all()?, 0)?
                .reshape((n, h, w))?;
            (per_pixel * &valid)?
        }
        None => valid.clone(),
    };
    Ok(Prepared {
        target: target.unsqueeze(1)?,
        valid,
        class_w,
    })
}

/// Losses are computed in f64 for f64 logits and in f32 otherwise (half precision is
/// upcast: sums over millions of pixels need the mantissa).
fn compute_dtype(logits: &Tensor) -> DType {
    if logits.dtype() == DType::F64 {
        DType::F64
    } else {
        DType::F32
    }
}

fn check_pixel_weights(pw: &Tensor, valid: &Tensor) -> Result<()> {
    if pw.dims() != valid.dims() {
        return Err(ModelError::InvalidInput(format!(
            "pixel weights must be [N, H, W] = {:?}, got {:?}",
            valid.dims(),
            pw.dims()
        )));
    }
    Ok(())
}

/// `Σ num / Σ den`, 0 when nothing counts.
fn normalised(num: &Tensor, den: &Tensor) -> Result<Tensor> {
    let den = den.sum_all()?.maximum(f32::MIN_POSITIVE)?;
    Ok(num.sum_all()?.div(&den)?)
}

/// Pixel-wise cross-entropy, mean over non-ignored pixels, weighted as PyTorch's
/// `F.cross_entropy(logits, labels, weight=class_weights, ignore_index=ignore_label)`.
///
/// # Examples
/// ```
/// use candle_core::{Device, Tensor};
/// use xnet_model::loss::{cross_entropy, PixelLossOptions};
/// # fn main() -> xnet_model::Result<()> {
/// let dev = Device::Cpu;
/// // Two classes, one 1×2 image: equal logits give log 2 per pixel.
/// let logits = Tensor::zeros((1, 2, 1, 2), candle_core::DType::F32, &dev)?;
/// let labels = Tensor::new(&[[[0u8, 255]]], &dev)?; // second pixel ignored
/// let loss = cross_entropy(&logits, &labels, &PixelLossOptions::default())?;
/// assert!((loss.to_scalar::<f32>()? - 2f32.ln()).abs() < 1e-6);
/// # Ok(())
/// # }
/// ```
pub fn cross_entropy(logits: &Tensor, labels: &Tensor, opts: &PixelLossOptions) -> Result<Tensor> {
    weighted_cross_entropy(logits, labels, opts, None)
}

/// Cross-entropy whose per-pixel terms are multiplied by `pixel_weights` (`[N, H, W]`, e.g.
/// U-Net's boundary map); normalised by the sum of class weights of the non-ignored pixels
/// (so that a map of ones gives [`cross_entropy`]).
///
/// # Examples
/// ```
/// use candle_core::{DType, Device, Tensor};
/// use xnet_model::loss::{cross_entropy, weighted_cross_entropy, PixelLossOptions};
/// # fn main() -> xnet_model::Result<()> {
/// let dev = Device::Cpu;
/// let opts = PixelLossOptions::default();
/// // Three classes, equal logits: ln 3 per pixel.
/// let logits = Tensor::zeros((1, 3, 1, 2), DType::F32, &dev)?;
/// let labels = Tensor::new(&[[[0u8, 2]]], &dev)?;
/// let ones = Tensor::ones((1, 1, 2), DType::F32, &dev)?;
/// let plain = cross_entropy(&logits, &labels, &opts)?.to_scalar::<f32>()?;
/// let with_ones = weighted_cross_entropy(&logits, &labels, &opts, Some(&ones))?;
/// assert_eq!(with_ones.to_scalar::<f32>()?, plain);
/// // Weights 1 and 3 multiply the two terms; the sum is still divided by the 2 pixels'
/// // class weights: (1 + 3)·ln 3 / 2.
/// let w = Tensor::new(&[[[1f32, 3.0]]], &dev)?;
/// let loss = weighted_cross_entropy(&logits, &labels, &opts, Some(&w))?.to_scalar::<f32>()?;
/// assert!((loss - 2.0 * 3f32.ln()).abs() < 1e-6);
/// // Weights of another shape than the labels are refused.
/// let wrong = Tensor::ones((1, 2, 1), DType::F32, &dev)?;
/// assert!(weighted_cross_entropy(&logits, &labels, &opts, Some(&wrong)).is_err());
/// # Ok(())
/// # }
/// ```
pub fn weighted_cross_entropy(
    logits: &Tensor,
    labels: &Tensor,
    opts: &PixelLossOptions,
    pixel_weights: Option<&Tensor>,
) -> Result<Tensor> {
    let p = prepare(logits, labels, opts)?;
    let log_probs = candle_nn::ops::log_softmax(&logits.to_dtype(compute_dtype(logits))?, 1)?;
    let nll = log_probs.gather(&p.target, 1)?.squeeze(1)?.neg()?;
    let mut w = p.class_w.clone();
    if let Some(pw) = pixel_weights {
        check_pixel_weights(pw, &p.valid)?;
        w = (w * pw.to_dtype(compute_dtype(logits))?)?;
    }
    normalised(&(nll * w)?, &p.class_w)
}

/// Multi-class focal loss `−α_y (1 − p_y)^γ log p_y` (Lin et al. 2017), with α the class
/// weights (1 when `None`), normalised like [`cross_entropy`]: `Σ α_y·FLᵢ / Σ α_y`. With
/// γ = 0 it equals [`cross_entropy`]. Use γ = 0 or γ ≥ 1: for 0 < γ < 1 the gradient of
/// `(1 − p_y)^γ` is unbounded as `p_y → 1`.
///
/// # Examples
/// ```
/// use candle_core::{DType, Device, Tensor};
/// use xnet_model::loss::{cross_entropy, focal, PixelLossOptions};
/// # fn main() -> xnet_model::Result<()> {
/// let dev = Device::Cpu;
/// let opts = PixelLossOptions::default();
/// // Two classes, equal logits: p_y = 1/2, so the loss is (1 − ½)^γ · ln 2.
/// let logits = Tensor::zeros((1, 2, 1, 2), DType::F32, &dev)?;
/// let labels = Tensor::new(&[[[0u8, 1]]], &dev)?;
/// let fl = focal(&logits, &labels, 2.0, &opts)?.to_scalar::<f32>()?;
/// assert!((fl - 0.25 * 2f32.ln()).abs() < 1e-6);
/// // γ = 0 is the cross-entropy.
/// let ce = cross_entropy(&logits, &labels, &opts)?.to_scalar::<f32>()?;
/// assert!((focal(&logits, &labels, 0.0, &opts)?.to_scalar::<f32>()? - ce).abs() < 1e-6);
/// assert!(focal(&logits, &labels, -1.0, &opts).is_err());
/// # Ok(())
/// # }
/// ```
pub fn focal(
    logits: &Tensor,
    labels: &Tensor,
    gamma: f64,
    opts: &PixelLossOptions,
) -> Result<Tensor> {
    focal_impl(logits, labels, gamma, opts, None)
}

fn focal_impl(
    logits: &Tensor,
    labels: &Tensor,
    gamma: f64,
    opts: &PixelLossOptions,
    pixel_weights: Option<&Tensor>,
) -> Result<Tensor> {
    if !(gamma.is_finite() && gamma >= 0.0) {
        return Err(ModelError::InvalidConfig(format!(
            "focal gamma must be finite and ≥ 0, got {}",
            readable_number(gamma)
        )));
    }
    let p = prepare(logits, labels, opts)?;
    let log_probs = candle_nn::ops::log_softmax(&logits.to_dtype(compute_dtype(logits))?, 1)?;
    let logp_t = log_probs.gather(&p.target, 1)?.squeeze(1)?;
    // exp(x) ≤ 1 for x ≤ 0 in IEEE arithmetic, so 1 − p_t never goes negative.
    let one_minus = (1.0 - logp_t.exp()?)?;
    let modulating = one_minus.powf(gamma)?;
    let per_pixel = (modulating * logp_t)?.neg()?;
    let mut w = p.class_w.clone();
    if let Some(pw) = pixel_weights {
        check_pixel_weights(pw, &p.valid)?;
        w = (w * pw.to_dtype(compute_dtype(logits))?)?;
    }
    normalised(&(per_pixel * w)?, &p.class_w)
}

/// Soft (multi-class) Dice loss over the whole batch:
/// `1 − Σ_c α_c (2 Σ p_c g_c + s) / (Σ p_c + Σ g_c + s) / Σ_c α_c`, sums over the non-ignored
/// pixels of all images, `p` the softmax probabilities, `g` the one-hot labels, `α` the class
/// weights (equal when `None`) and `s` = `smooth` > 0.
///
/// # Examples
/// ```
/// use candle_core::{DType, Device, Tensor};
/// use xnet_model::loss::{soft_dice, PixelLossOptions};
/// # fn main() -> xnet_model::Result<()> {
/// let dev = Device::Cpu;
/// let opts = PixelLossOptions::default();
/// let labels = Tensor::new(&[[[0u8, 1], [1, 2]]], &dev)?; // one 2×2 image, 3 classes
/// // Logits that pick every label with near certainty: the masks are identical, loss ≈ 0.
/// let onehot: Vec<f32> = [[1., 0., 0., 0.], [0., 1., 1., 0.], [0., 0., 0., 1.]].concat();
/// let sure = (Tensor::from_vec(onehot, (1, 3, 2, 2), &dev)? * 30.0)?;
/// assert!(soft_dice(&sure, &labels, 1.0, &opts)?.to_scalar::<f32>()? < 1e-6);
///
/// // Two classes, equal logits on a 1×2 image labelled [0, 1]: per class 2·½ shared,
/// // Σp = Σg = 1, so Dice (1 + s)/(2 + s) = 2/3 with s = 1, and the loss is 1/3.
/// let even = Tensor::zeros((1, 2, 1, 2), DType::F32, &dev)?;
/// let labels = Tensor::new(&[[[0u8, 1]]], &dev)?;
/// let loss = soft_dice(&even, &labels, 1.0, &opts)?.to_scalar::<f32>()?;
/// assert!((loss - 1.0 / 3.0).abs() < 1e-6);
/// # Ok(())
/// # }
/// ```
pub fn soft_dice(
    logits: &Tensor,
    labels: &Tensor,
    smooth: f64,
    opts: &PixelLossOptions,
) -> Result<Tensor> {
    if !(smooth.is_finite() && smooth > 0.0) {
        return Err(ModelError::InvalidConfig(format!(
            "dice smooth must be finite and > 0, got {}",
            readable_number(smooth)
        )));
    }
    let prep = prepare(logits, labels, opts)?;
    let c = logits.dim(1)?;
    let probs = candle_nn::ops::softmax(&logits.to_dtype(compute_dtype(logits))?, 1)?;
    let classes = Tensor::arange(0u32, c as u32, logits.device())?.reshape((1, c, 1, 1))?;
    let valid = prep.valid.unsqueeze(1)?;
    let onehot = prep
        .target
        .broadcast_eq(&classes)?
        .to_dtype(compute_dtype(logits))?
        .broadcast_mul(&valid)?;
    let probs = probs.broadcast_mul(&valid)?;
    let sum_nhw = |t: &Tensor| -> Result<Tensor> { Ok(t.sum(D::Minus1)?.sum(D::Minus1)?.sum(0)?) };
    let inter = sum_nhw(&(&probs * &onehot)?)?;
    let denom = (sum_nhw(&probs)? + sum_nhw(&onehot)?)?;
    let dice = (((inter * 2.0)? + smooth)? / (denom + smooth)?)?;
    let mean_dice = match &opts.class_weights {
        Some(w) => {
            let wt = Tensor::from_slice(w, c, logits.device())?.to_dtype(compute_dtype(logits))?;
            let total: f32 = w.iter().sum();
            if total <= 0.0 {
                return Err(ModelError::InvalidConfig(
                    "class weights sum to 0; the Dice loss needs at least one positive weight"
                        .into(),
                ));
            }
            ((dice * wt)?.sum_all()? / total as f64)?
        }
        None => dice.mean_all()?,
    };
    Ok((1.0 - mean_dice)?)
}

/// L2 penalty `λ · Σ w²` over the convolution kernels among `vars` (the rank-4 tensors:
/// conv and transposed-conv weights; biases and batch-norm parameters are rank 1 and are not
/// penalised), as Keras' `kernel_regularizer=l2(λ)` of the reference implementation.
///
/// Its gradient is `2λw`; PyTorch's `weight_decay=λ'` corresponds to `λ = λ'/2`.
///
/// # Examples
/// ```
/// use candle_core::{Device, Var};
/// use xnet_model::loss::l2_penalty;
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let kernel = Var::from_vec(vec![1.0f32, -2.0, 3.0, 0.5], (1, 1, 2, 2), &Device::Cpu)?;
/// let bias = Var::from_vec(vec![100.0f32], 1, &Device::Cpu)?; // rank 1: not penalised
/// let vars = [kernel, bias];
/// let penalty = l2_penalty(&vars, 1e-2)?.ok_or("a kernel is among the vars")?;
/// // λ · Σ w² = 0.01 · (1 + 4 + 9 + 0.25)
/// assert!((penalty.to_scalar::<f32>()? - 0.1425).abs() < 1e-6);
/// assert!(l2_penalty(&vars, 0.0)?.is_none()); // λ = 0: no term at all
/// # Ok(())
/// # }
/// ```
pub fn l2_penalty(vars: &[Var], lambda: f64) -> Result<Option<Tensor>> {
    if lambda == 0.0 {
        return Ok(None);
    }
    let mut total: Option<Tensor> = None;
    for v in vars
        .iter()
        .filter(|v| v.rank() == 4 && v.dtype().is_float())
    {
        let s = v.as_tensor().sqr()?.sum_all()?.to_dtype(DType::F32)?;
        total = Some(match total {
            Some(t) => (t + s)?,
            None => s,
        });
    }
    match total {
        Some(t) => Ok(Some((t * lambda)?)),
        None => Ok(None),
    }
}

/// Adds the gradient of [`l2_penalty`], `2λw`, to each convolution kernel's gradient in
/// `grads` (and inserts it for a kernel the data term did not reach): the gradient that
/// back-propagating `data + l2_penalty(vars, λ)` gives, without the graph's square, sum,
/// scale and accumulation passes over every kernel. On contiguous CPU tensors the gradient is
/// updated in place (one pass, no allocation).
///
/// # Examples
/// ```
/// use candle_core::{Device, Var};
/// use xnet_model::loss::{add_l2_gradient, l2_penalty};
/// # fn main() -> xnet_model::Result<()> {
/// let kernel = Var::from_vec(vec![1.0f32, -2.0, 3.0, 0.5], (1, 1, 2, 2), &Device::Cpu)?;
/// let data = kernel.as_tensor().sum_all()?; // d data / dw = 1
/// let mut grads = data.backward()?;
/// add_l2_gradient(&mut grads, &[kernel.clone()], 5e-4)?;
/// let g = grads.get(kernel.as_tensor()).unwrap().flatten_all()?.to_vec1::<f32>()?;
/// assert!((g[1] - (1.0 + 2.0 * 5e-4 * -2.0)).abs() < 1e-7);
/// # Ok(())
/// # }
/// ```
pub fn add_l2_gradient(
    grads: &mut candle_core::backprop::GradStore,
    vars: &[Var],
    lambda: f64,
) -> Result<()> {
    if lambda == 0.0 {
        return Ok(());
    }
    let scale = 2.0 * lambda;
    for v in vars
        .iter()
        .filter(|v| v.rank() == 4 && v.dtype().is_float())
    {
        let w = v.as_tensor();
        match grads.get(w) {
            Some(g)
                if g.device().is_cpu()
                    && g.is_contiguous()
                    && w.is_contiguous()
                    && g.shape() == w.shape()
                    && g.dtype() == w.dtype() =>
            {
                g.inplace_op2(&w.detach(), &AddScaled(scale))?;
            }
            Some(g) => {
                let sum = (g + (w.detach() * scale)?)?;
                grads.insert(w, sum);
            }
            None => {
                let own = (w.detach() * scale)?;
                grads.insert(w, own);
            }
        }
    }
    Ok(())
}

/// `dst += c · src`, in place, for contiguous f32/f64 CPU tensors of one shape.
struct AddScaled(f64);

impl candle_core::InplaceOp2 for AddScaled {
    fn name(&self) -> &'static str {
        "xnet-add-scaled"
    }

    fn cpu_fwd(
        &self,
        dst: &mut candle_core::CpuStorage,
        dst_l: &candle_core::Layout,
        src: &candle_core::CpuStorage,
        src_l: &candle_core::Layout,
    ) -> candle_core::Result<()> {
        use candle_core::CpuStorage;
        use rayon::prelude::*;
        let (Some((d0, d1)), Some((s0, s1))) =
            (dst_l.contiguous_offsets(), src_l.contiguous_offsets())
        else {
            candle_core::bail!("add-scaled: operands must be contiguous");
        };
        if d1 - d0 != s1 - s0 {
            candle_core::bail!("add-scaled: {} against {} elements", d1 - d0, s1 - s0);
        }
        const CHUNK: usize = 1 << 15;
        match (dst, src) {
            (CpuStorage::F32(d), CpuStorage::F32(s)) => {
                let c = self.0 as f32;
                d[d0..d1]
                    .par_chunks_mut(CHUNK)
                    .zip(s[s0..s1].par_chunks(CHUNK))
                    .for_each(|(d, s)| d.iter_mut().zip(s).for_each(|(d, &s)| *d += s * c));
            }
            (CpuStorage::F64(d), CpuStorage::F64(s)) => {
                let c = self.0;
                d[d0..d1]
                    .par_chunks_mut(CHUNK)
                    .zip(s[s0..s1].par_chunks(CHUNK))
                    .for_each(|(d, s)| d.iter_mut().zip(s).for_each(|(d, &s)| *d += s * c));
            }
            _ => candle_core::bail!("add-scaled: f32 or f64 operands of one dtype"),
        }
        Ok(())
    }
}

/// U-Net's boundary weight map of one `height × width` label map (row-major), see
/// [`BoundaryWeightConfig`]. Plain data in, plain data out (computed on the CPU; cost
/// `O(K·H·W)` for `K` objects).
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
