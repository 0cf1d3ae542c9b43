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
//!
//! # Errors
//! Every pixel loss ([`cross_entropy`], [`weighted_cross_entropy`], [`focal`], [`soft_dice`],
//! [`LossConfig::data_loss`]) returns [`ModelError::InvalidInput`] for logits that are not
//! `[N, C, H, W]`, labels that are not `[N, H, W]` of the same `N`, `H`, `W` or not of an
//! integer type, a label `≥ C` other than the ignore label, and pixel weights of another
//! shape than the labels; [`ModelError::InvalidConfig`] for class weights that are not one
//! finite, non-negative value per class, or a loss parameter out of its range (γ, `smooth`).

use candle_core::{DType, Tensor, D};
use serde::{Deserialize, Serialize};

use crate::error::readable_number;
use crate::{ModelError, Result, IGNORE_LABEL};

mod boundary;
mod l2;

pub use boundary::{boundary_weight_map, boundary_weight_maps, BoundaryWeightConfig};
pub use l2::{add_l2_gradient, l2_penalty};

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
