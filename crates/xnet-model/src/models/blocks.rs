//! Building blocks shared by the networks: the convolution + batch-norm + ReLU block, the
//! up-sampling kinds and the batch-norm settings.
//!
//! [`ConvBnRelu`] is the one place where a network's convolutions run, so a faster
//! convolution (see `crate::kernels`) replaces them all by changing [`ConvBnRelu::forward_dilated`].

use crate::error::readable_number;
use crate::{ModelError, Result};
use candle_core::{DType, Device, Module, ModuleT, Tensor};
use candle_nn::{BatchNorm, BatchNormConfig, VarBuilder};

/// Batch-normalisation settings of every block of a network.
///
/// `momentum` uses PyTorch's convention (weight of the new batch statistic):
/// `running = (1 − momentum) · running + momentum · batch`. Keras' `momentum=0.99` (the XNet
/// reference) is `0.01` here.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct BatchNormSettings {
    /// Added to the variance before the square root (Keras' default `1e-3`).
    pub eps: f64,
    /// Weight of the current batch in the running statistics (PyTorch convention).
    pub momentum: f64,
}

impl Default for BatchNormSettings {
    fn default() -> Self {
        Self {
            eps: 1e-3,
            momentum: 0.01,
        }
    }
}

impl BatchNormSettings {
    /// Checks `0 < eps ≤ f32::MAX` and `0 ≤ momentum ≤ 1`. NaN and infinities are refused,
    /// and so is an `eps` beyond the `f32` range (a `1e308` in a checkpoint's `config.json`):
    /// the network computes in `f32`, where it would be infinity and zero every output.
    ///
    /// # Errors
    /// [`ModelError::InvalidConfig`] naming the field and the value.
    ///
    /// # Examples
    /// ```
    /// use xnet_model::models::BatchNormSettings;
    /// assert!(BatchNormSettings::default().validate().is_ok());
    /// let huge = BatchNormSettings { eps: 1e308, ..Default::default() };
    /// let e = huge.validate().unwrap_err().to_string();
    /// assert!(e.contains("batch-norm eps must be a finite number"), "{e}");
    /// ```
    pub fn validate(&self) -> Result<()> {
        crate::error::check_f32_range(&[("batch-norm eps", self.eps)])?;
        if !(self.eps > 0.0 && self.eps.is_finite()) {
            return Err(ModelError::InvalidConfig(format!(
                "batch-norm eps must be a positive number, found {}",
                readable_number(self.eps)
            )));
        }
        if !(0.0..=1.0).contains(&self.momentum) {
            return Err(ModelError::InvalidConfig(format!(
                "batch-norm momentum must be in [0, 1] (PyTorch convention; Keras 0.99 is 0.01), found {}",
                readable_number(self.momentum)
            )));
        }
        Ok(())
    }
}

impl From<BatchNormSettings> for BatchNormConfig {
    fn from(s: BatchNormSettings) -> Self {
        BatchNormConfig {
            eps: s.eps,
            remove_mean: true,
            affine: true,
            momentum: s.momentum,
        }
    }
}

/// How a decoder doubles the resolution (the up-sampling "lego" of the XNet paper).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Upsampling {
    /// Nearest-neighbour repetition (Keras `UpSampling2D`), no parameters.
    Nearest,
    /// SegNet's unpooling: each value goes back to the position of the maximum recorded by
    /// the matching encoder pooling, zeros elsewhere. Needs equal channel counts at both ends.
    IndexUnpool,
    /// A learnt 2×2 transposed convolution with stride 2 (U-Net).
    TransposedConv,
    /// Bilinear interpolation, PyTorch `align_corners=False`, no parameters.
    Bilinear,
}

impl std::fmt::Display for Upsampling {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Upsampling::Nearest => "nearest",
            Upsampling::IndexUnpool => "index_unpool",
            Upsampling::TransposedConv => "transposed_conv",
            Upsampling::Bilinear => "bilinear",
        })
    }
}

/// FLOPs (2 per multiply-accumulate) of a `k × k` convolution from `cin` to `cout` channels
/// producing an `h × w` output, saturating at `u64::MAX` (a count beyond it, for sizes no
/// machine runs, is reported as `u64::MAX` instead of overflowing).
///
/// # Shapes
/// `h`, then `w` ([tensor order](crate#sizes)): the output is `[cout, h, w]`.
///
/// # Examples
/// ```
/// use xnet_model::models::blocks::conv_flops;
/// assert_eq!(conv_flops(64, 128, 3, 100, 100), 2 * 64 * 128 * 9 * 100 * 100);
/// assert_eq!(conv_flops(8192, 8192, 31, 1 << 22, 1 << 22), u64::MAX);
/// ```
pub fn conv_flops(cin: usize, cout: usize, k: usize, h: usize, w: usize) -> u64 {
    [cin, cout, k, k, h, w]
        .into_iter()
        .fold(2u64, |f, v| f.saturating_mul(v as u64))
}

/// The sum of FLOP counts, saturating at `u64::MAX` (the networks' `forward_flops`).
pub(crate) fn flops_sum(terms: impl IntoIterator<Item = u64>) -> u64 {
    terms.into_iter().fold(0, u64::saturating_add)
}

/// `v >> l`, 0 once `l` reaches the bits of a `usize` (a level count of a configuration
/// that `validate` would refuse must not overflow a shift).
pub(crate) fn shr_or_zero(v: usize, l: usize) -> usize {
    u32::try_from(l)
        .ok()
        .and_then(|l| v.checked_shr(l))
        .unwrap_or(0)
}

/// Convolution ("same" padding, stride 1, with bias) → batch-norm → ReLU.
///
/// Variables under its `VarBuilder` prefix: `conv.weight` `[out, in, k, k]`, `conv.bias`,
/// `bn.weight`, `bn.bias`, `bn.running_mean`, `bn.running_var` (PyTorch's
/// `Sequential(Conv2d, BatchNorm2d, ReLU)` gives `0.*` and `1.*`).
#[derive(Debug, Clone)]
pub struct ConvBnRelu {
    weight: Tensor,
    bias: Option<Tensor>,
    bn: Option<BatchNorm>,
    kernel_size: usize,
    dilation: usize,
}

/// The most input channels a [`ConvBnRelu`] may have: DeepLab's projection takes the
/// concatenation of its five ASPP branches, of up to [`MAX_CHANNELS`] each.
const MAX_BLOCK_INPUT_CHANNELS: usize = 5 * MAX_CHANNELS;

impl ConvBnRelu {
    /// A block of `kernel_size × kernel_size` convolutions (odd sizes keep the resolution).
    ///
    /// # Errors
    /// As [`Self::new_dilated`].
    ///
    /// # Examples
    /// ```
    /// use candle_core::{DType, Device, Tensor};
    /// use candle_nn::{ModuleT, VarBuilder, VarMap};
    /// use xnet_model::models::{BatchNormSettings, ConvBnRelu};
    /// use xnet_model::ModelError;
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let varmap = VarMap::new();
    /// let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
    /// let block = ConvBnRelu::new(1, 4, 3, BatchNormSettings::default(), vb.pp("enc1"))?;
    /// let x = Tensor::randn(0f32, 1.0, (2, 1, 16, 16), &Device::Cpu)?;
    /// let y = block.forward_t(&x, false)?;
    /// assert_eq!(y.dims(), &[2, 4, 16, 16]); // "same" padding keeps 16 × 16
    /// assert!(y.min_all()?.to_scalar::<f32>()? >= 0.0); // after the ReLU
    ///
    /// // Its variables, under the builder's prefix.
    /// let mut names: Vec<String> =
    ///     varmap.data().lock().map_err(|_| "poisoned")?.keys().cloned().collect();
    /// names.sort();
    /// assert_eq!(names, [
    ///     "enc1.bn.bias", "enc1.bn.running_mean", "enc1.bn.running_var", "enc1.bn.weight",
    ///     "enc1.conv.bias", "enc1.conv.weight",
    /// ]);
    ///
    /// // An even kernel has no centre pixel: refused before anything is allocated.
    /// let even = ConvBnRelu::new(1, 4, 2, BatchNormSettings::default(), vb.pp("enc2"));
    /// assert!(matches!(even, Err(ModelError::InvalidConfig(_))));
    /// assert_eq!(varmap.all_vars().len(), 6);
    /// # Ok(())
    /// # }
    /// ```
    pub fn new(
        in_channels: usize,
        out_channels: usize,
        kernel_size: usize,
        bn: BatchNormSettings,
        vb: VarBuilder,
    ) -> Result<Self> {
        Self::new_dilated(in_channels, out_channels, kernel_size, 1, bn, vb)
    }

    /// A block whose convolution has the given default dilation (padding `dilation · (k−1)/2`).
    ///
    /// # Errors
    /// [`ModelError::InvalidConfig`], before anything is allocated, for `out_channels`
    /// outside `1..=MAX_CHANNELS` ([`MAX_CHANNELS`]), `in_channels` outside
    /// `1..=5 · MAX_CHANNELS` (the widest input a network gives a block: DeepLab's five
    /// concatenated ASPP branches), a kernel size that is even or above
    /// [`MAX_KERNEL_SIZE`], dilation 0, and batch-norm settings that
    /// [`BatchNormSettings::validate`] refuses (an `eps` that is not a positive finite
    /// number, a momentum outside `[0, 1]`); errors of `vb` (a missing or misshapen
    /// tensor) as [`ModelError::Candle`].
    ///
    /// # Examples
    /// ```
    /// use candle_core::{DType, Device, Tensor};
    /// use candle_nn::{ModuleT, VarBuilder, VarMap};
    /// use xnet_model::models::{BatchNormSettings, ConvBnRelu};
    /// use xnet_model::ModelError;
    /// # fn main() -> xnet_model::Result<()> {
    /// let varmap = VarMap::new();
    /// let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
    /// let bn = BatchNormSettings::default();
    /// let dilated = ConvBnRelu::new_dilated(2, 4, 3, 2, bn, vb.pp("aspp"))?;
    /// let x = Tensor::randn(0f32, 1.0, (1, 2, 16, 16), &Device::Cpu)?;
    /// let y = dilated.forward_t(&x, false)?;
    /// assert_eq!(y.dims(), &[1, 4, 16, 16]); // padding 2 · (3 − 1) / 2 = 2 keeps 16 × 16
    ///
    /// // The weights do not depend on the dilation: an undilated block over the same
    /// // variables gives the same output when run at dilation 2.
    /// let plain = ConvBnRelu::new(2, 4, 3, bn, vb.pp("aspp"))?;
    /// assert_eq!(varmap.all_vars().len(), 6); // no new variables
    /// let same = plain.forward_dilated(&x, false, 2)?;
    /// assert_eq!((&y - &same)?.abs()?.max_all()?.to_scalar::<f32>()?, 0.0);
    /// let undilated = plain.forward_t(&x, false)?;
    /// assert!((&y - &undilated)?.abs()?.max_all()?.to_scalar::<f32>()? > 0.0);
    ///
    /// let zero = ConvBnRelu::new_dilated(2, 4, 3, 0, bn, vb.pp("bad"));
    /// assert!(matches!(zero, Err(ModelError::InvalidConfig(_))));
    /// # Ok(())
    /// # }
    /// ```
    pub fn new_dilated(
        in_channels: usize,
        out_channels: usize,
        kernel_size: usize,
        dilation: usize,
        bn: BatchNormSettings,
        vb: VarBuilder,
    ) -> Result<Self> {
        if !(1..=MAX_BLOCK_INPUT_CHANNELS).contains(&in_channels)
            || !(1..=MAX_CHANNELS).contains(&out_channels)
        {
            return Err(ModelError::InvalidConfig(format!(
                "conv block needs 1 to {MAX_BLOCK_INPUT_CHANNELS} input channels and 1 to \
                 {MAX_CHANNELS} output channels, found {in_channels} → {out_channels}"
            )));
        }
        if kernel_size % 2 != 1 || kernel_size > MAX_KERNEL_SIZE || dilation == 0 {
            return Err(ModelError::InvalidConfig(format!(
                "conv block needs an odd kernel size of at most {MAX_KERNEL_SIZE} and dilation \
                 ≥ 1, found k={kernel_size}, dilation={dilation}"
            )));
        }
        bn.validate()?;
        let conv = candle_nn::conv2d(
            in_channels,
            out_channels,
            kernel_size,
            candle_nn::Conv2dConfig::default(),
            vb.pp("conv"),
        )?;
        let bn = candle_nn::batch_norm(out_channels, bn, vb.pp("bn"))?;
        Ok(Self {
            weight: conv.weight().clone(),
            bias: conv.bias().cloned(),
            bn: Some(bn),
            kernel_size,
            dilation,
        })
    }

    /// Output channels.
    ///
    /// # Examples
    /// ```
    /// use candle_core::{DType, Device};
    /// use candle_nn::{VarBuilder, VarMap};
    /// use xnet_model::models::{BatchNormSettings, ConvBnRelu};
    /// # fn main() -> xnet_model::Result<()> {
    /// let vb = VarBuilder::from_varmap(&VarMap::new(), DType::F32, &Device::Cpu);
    /// let block = ConvBnRelu::new(3, 8, 3, BatchNormSettings::default(), vb)?;
    /// assert_eq!(block.out_channels(), 8);
    /// # Ok(())
    /// # }
    /// ```
    pub fn out_channels(&self) -> usize {
        self.weight.dims()[0]
    }

    /// Input channels.
    ///
    /// # Examples
    /// ```
    /// use candle_core::{DType, Device, Tensor};
    /// use candle_nn::{ModuleT, VarBuilder, VarMap};
    /// use xnet_model::models::{BatchNormSettings, ConvBnRelu};
    /// # fn main() -> xnet_model::Result<()> {
    /// let vb = VarBuilder::from_varmap(&VarMap::new(), DType::F32, &Device::Cpu);
    /// let block = ConvBnRelu::new(3, 8, 3, BatchNormSettings::default(), vb)?;
    /// assert_eq!(block.in_channels(), 3);
    /// // An input with another number of channels is an error.
    /// let x = Tensor::zeros((1, 2, 8, 8), DType::F32, &Device::Cpu)?;
    /// assert!(block.forward_t(&x, false).is_err());
    /// # Ok(())
    /// # }
    /// ```
    pub fn in_channels(&self) -> usize {
        self.weight.dims()[1]
    }

    /// Whether the batch-norm has been folded into the convolution.
    ///
    /// # Examples
    /// ```
    /// use candle_core::{DType, Device};
    /// use candle_nn::{VarBuilder, VarMap};
    /// use xnet_model::models::{BatchNormSettings, ConvBnRelu};
    /// # fn main() -> xnet_model::Result<()> {
    /// let vb = VarBuilder::from_varmap(&VarMap::new(), DType::F32, &Device::Cpu);
    /// let mut block = ConvBnRelu::new(1, 4, 3, BatchNormSettings::default(), vb)?;
    /// assert!(!block.is_folded());
    /// block.fold_batch_norm()?;
    /// assert!(block.is_folded());
    /// # Ok(())
    /// # }
    /// ```
    pub fn is_folded(&self) -> bool {
        self.bn.is_none()
    }

    /// The convolution weight `[out, in, k, k]` and bias (after folding, the folded ones).
    ///
    /// # Examples
    /// ```
    /// use candle_core::{DType, Device};
    /// use candle_nn::{VarBuilder, VarMap};
    /// use xnet_model::models::{BatchNormSettings, ConvBnRelu};
    /// # fn main() -> xnet_model::Result<()> {
    /// let vb = VarBuilder::from_varmap(&VarMap::new(), DType::F32, &Device::Cpu);
    /// let mut block = ConvBnRelu::new(3, 8, 5, BatchNormSettings::default(), vb)?;
    /// let (w, b) = block.conv_weights();
    /// assert_eq!(w.dims(), &[8, 3, 5, 5]);
    /// assert_eq!(b.map(|b| b.dims().to_vec()), Some(vec![8]));
    /// let (w, b) = (w.clone(), b.cloned());
    ///
    /// // A fresh batch norm (mean 0, variance 1, scale 1, shift 0) folds into a division of
    /// // the weight and bias by √(1 + eps).
    /// block.fold_batch_norm()?;
    /// let (wf, bf) = block.conv_weights();
    /// let s = (1.0f64 + 1e-3).sqrt();
    /// let err = |a: &candle_core::Tensor, b: &candle_core::Tensor| -> candle_core::Result<f32> {
    ///     (a - (b / s)?)?.abs()?.max_all()?.to_scalar::<f32>()
    /// };
    /// assert!(err(wf, &w)? < 1e-6);
    /// assert!(err(bf.expect("a folded block has a bias"), &b.expect("bias"))? < 1e-6);
    /// # Ok(())
    /// # }
    /// ```
    pub fn conv_weights(&self) -> (&Tensor, Option<&Tensor>) {
        (&self.weight, self.bias.as_ref())
    }

    /// Forward with the convolution's dilation overridden (DeepLab scales its rates to the
    /// input size at run time; the weights do not depend on the dilation).
    ///
    /// A dilation larger than the input's larger side runs as that side: every tap but the
    /// centre one reads the zero padding either way, so the output is the same (see
    /// [`crate::kernels::conv2d_fast`]), and the padding stays the size of the input.
    ///
    /// # Errors
    /// Dilation 0, an input that is not `[N, in_channels, H, W]`, and a training forward
    /// after [`Self::fold_batch_norm`].
    ///
    /// # Examples
    /// ```
    /// use candle_core::{DType, Device, Tensor};
    /// use candle_nn::{VarBuilder, VarMap};
    /// use xnet_model::models::{BatchNormSettings, ConvBnRelu};
    /// # fn main() -> xnet_model::Result<()> {
    /// let vb = VarBuilder::from_varmap(&VarMap::new(), DType::F32, &Device::Cpu);
    /// let block = ConvBnRelu::new(2, 4, 3, BatchNormSettings::default(), vb)?;
    /// let x = Tensor::randn(0f32, 1.0, (1, 2, 16, 16), &Device::Cpu)?;
    /// let y = block.forward_dilated(&x, false, 4)?;
    /// assert_eq!(y.dims(), &[1, 4, 16, 16]);
    ///
    /// // Beyond the input's side, every tap but the centre one reads padding: dilation 1000
    /// // gives what dilation 16 gives.
    /// let far = block.forward_dilated(&x, false, 1000)?;
    /// let side = block.forward_dilated(&x, false, 16)?;
    /// assert_eq!((far - side)?.abs()?.max_all()?.to_scalar::<f32>()?, 0.0);
    ///
    /// assert!(block.forward_dilated(&x, false, 0).is_err());
    /// # Ok(())
    /// # }
    /// ```
    pub fn forward_dilated(
        &self,
        x: &Tensor,
        train: bool,
        dilation: usize,
    ) -> candle_core::Result<Tensor> {
        if dilation == 0 {
            candle_core::bail!("conv block: dilation must be at least 1");
        }
        let (_, _, h, w) = x.dims4()?;
        let dilation = crate::kernels::effective_dilation(dilation, h, w);
        if crate::kernels::fast_kernels_enabled()
            && crate::kernels::fast_conv_supported(x, &self.weight)
        {
            return self.forward_fast(x, train, dilation);
        }
        // The reference path (stock candle ops), also forced by XNET_REFERENCE_KERNELS=1.
        let padding = dilation * (self.kernel_size - 1) / 2;
        let mut y = x.conv2d(&self.weight, padding, 1, dilation, 1)?;
        if let Some(b) = &self.bias {
            y = y.broadcast_add(&b.reshape((1, (), 1, 1))?)?;
        }
        let y = match &self.bn {
            Some(bn) => bn.forward_t(&y, train)?,
            None if train => candle_core::bail!(
                "this network's batch-norm was folded for inference; it cannot be trained"
            ),
            None => y,
        };
        y.relu()
    }

    /// [`Self::forward_dilated`] through `crate::kernels`: conv + bias + ReLU in one pass
    /// with the inference batch-norm folded on the fly, or conv + bias then the fused
    /// training batch-norm + ReLU (same running-statistics update as candle's).
    fn forward_fast(
        &self,
        x: &Tensor,
        train: bool,
        dilation: usize,
    ) -> candle_core::Result<Tensor> {
        use crate::kernels;
        let (w, b) = (&self.weight, self.bias.as_ref());
        let Some(bn) = &self.bn else {
            if train {
                candle_core::bail!(
                    "this network's batch-norm was folded for inference; it cannot be trained"
                );
            }
            return kernels::conv2d_fast(x, w, b, dilation, true);
        };
        match bn.weight_and_bias() {
            Some(_) if train && kernels::fused_batch_norm_supported(x) => {
                kernels::batch_norm_relu_train(
                    &kernels::conv2d_fast(x, w, b, dilation, false)?,
                    bn,
                    true,
                )
            }
            Some((gamma, beta)) if !train => {
                let (wf, bf) = kernels::fold_batch_norm(
                    w,
                    b,
                    gamma,
                    beta,
                    bn.running_mean(),
                    bn.running_var(),
                    bn.eps(),
                )?;
                kernels::conv2d_fast(x, &wf, Some(&bf), dilation, true)
            }
            _ => bn
                .forward_t(&kernels::conv2d_fast(x, w, b, dilation, false)?, train)?
                .relu(),
        }
    }

    /// FLOPs of this block's convolution for an `h × w` output, saturating at `u64::MAX`
    /// (see [`conv_flops`]).
    ///
    /// # Shapes
    /// `h`, then `w` ([tensor order](crate#sizes)): the output is `h × w`.
    ///
    /// # Examples
    /// ```
    /// use candle_core::{DType, Device};
    /// use candle_nn::{VarBuilder, VarMap};
    /// use xnet_model::models::blocks::conv_flops;
    /// use xnet_model::models::{BatchNormSettings, ConvBnRelu};
    /// # fn main() -> xnet_model::Result<()> {
    /// let vb = VarBuilder::from_varmap(&VarMap::new(), DType::F32, &Device::Cpu);
    /// let block = ConvBnRelu::new(3, 8, 5, BatchNormSettings::default(), vb)?;
    /// // 2 FLOPs for each of the 3 · 25 multiply-accumulates of each of 8 · 16 · 16 outputs.
    /// assert_eq!(block.flops(16, 16), 2 * 3 * 25 * 8 * 16 * 16);
    /// assert_eq!(block.flops(16, 16), conv_flops(3, 8, 5, 16, 16));
    /// # Ok(())
    /// # }
    /// ```
    pub fn flops(&self, h: usize, w: usize) -> u64 {
        conv_flops(
            self.in_channels(),
            self.out_channels(),
            self.kernel_size,
            h,
            w,
        )
    }

    /// Folds the batch-norm's running statistics and affine parameters into the convolution:
    /// `w' = w · γ/√(σ²+ε)`, `b' = (b − μ) · γ/√(σ²+ε) + β`. Afterwards the block is
    /// inference-only (a training forward is an error). Returns `false` when already folded.
    ///
    /// # Examples
    /// ```
    /// use candle_core::{DType, Device, Tensor};
    /// use candle_nn::{ModuleT, VarBuilder, VarMap};
    /// use xnet_model::models::{BatchNormSettings, ConvBnRelu};
    /// # fn main() -> xnet_model::Result<()> {
    /// let vb = VarBuilder::from_varmap(&VarMap::new(), DType::F32, &Device::Cpu);
    /// let bn = BatchNormSettings { momentum: 0.5, ..Default::default() };
    /// let mut block = ConvBnRelu::new(2, 4, 3, bn, vb)?;
    /// let x = Tensor::randn(0f32, 1.0, (2, 2, 8, 8), &Device::Cpu)?;
    /// block.forward_t(&(&x * 3.0)?, true)?; // a training step moves the running statistics
    /// let before = block.forward_t(&x, false)?;
    ///
    /// assert!(block.fold_batch_norm()?);
    /// assert!(!block.fold_batch_norm()?); // already folded
    /// let after = block.forward_t(&x, false)?;
    /// assert!((&after - &before)?.abs()?.max_all()?.to_scalar::<f32>()? < 1e-5);
    /// assert!(block.forward_t(&x, true).is_err()); // inference only now
    /// # Ok(())
    /// # }
    /// ```
    pub fn fold_batch_norm(&mut self) -> Result<bool> {
        let Some(bn) = self.bn.take() else {
            return Ok(false);
        };
        let dev = self.weight.device().clone();
        let dtype = self.weight.dtype();
        // Folded on the CPU in f64, whatever the device: folding adds no rounding worth
        // mentioning, needs no f64 kernels on a GPU, and gives the same folded weights on
        // every device.
        let f64_cpu = |t: &Tensor| t.to_device(&Device::Cpu)?.to_dtype(DType::F64);
        let mean = f64_cpu(bn.running_mean())?;
        let var = f64_cpu(bn.running_var())?;
        let mut scale = (var + bn.eps())?.sqrt()?.recip()?;
        let mut shift = scale.zeros_like()?;
        if let Some((gamma, beta)) = bn.weight_and_bias() {
            scale = (scale * f64_cpu(gamma)?)?;
            shift = f64_cpu(beta)?;
        }
        let w = f64_cpu(&self.weight)?.broadcast_mul(&scale.reshape(((), 1, 1, 1))?)?;
        let b = match &self.bias {
            Some(b) => f64_cpu(b)?,
            None => mean.zeros_like()?,
        };
        let b = ((b - mean)? * &scale)?.broadcast_add(&shift)?;
        self.weight = w.to_dtype(dtype)?.to_device(&dev)?.detach();
        self.bias = Some(b.to_dtype(dtype)?.to_device(&dev)?.detach());
        Ok(true)
    }
}

impl ModuleT for ConvBnRelu {
    fn forward_t(&self, x: &Tensor, train: bool) -> candle_core::Result<Tensor> {
        self.forward_dilated(x, train, self.dilation)
    }
}

/// A parameter-free or learnt ×2 up-sampling layer (not [`Upsampling::IndexUnpool`], which
/// needs the encoder's indices and lives in SegNet).
#[derive(Debug, Clone)]
pub(crate) enum Up2 {
    Nearest,
    Bilinear,
    Transposed(candle_nn::ConvTranspose2d),
}

impl Up2 {
    /// `channels_in → channels_out`; only a transposed convolution may change the channels.
    pub(crate) fn new(kind: Upsampling, cin: usize, cout: usize, vb: VarBuilder) -> Result<Self> {
        match kind {
            Upsampling::Nearest => Ok(Up2::Nearest),
            Upsampling::Bilinear => Ok(Up2::Bilinear),
            Upsampling::TransposedConv => {
                let cfg = candle_nn::ConvTranspose2dConfig {
                    stride: 2,
                    ..Default::default()
                };
                Ok(Up2::Transposed(candle_nn::conv_transpose2d(
                    cin, cout, 2, cfg, vb,
                )?))
            }
            Upsampling::IndexUnpool => Err(ModelError::InvalidConfig(
                "index unpooling needs the encoder's pooling indices; this decoder has none".into(),
            )),
        }
    }

    pub(crate) fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let (_, _, h, w) = x.dims4()?;
        match self {
            Up2::Nearest => crate::kernels::upsample_nearest2x(x),
            Up2::Bilinear => crate::ops::resize_bilinear(x, 2 * h, 2 * w),
            Up2::Transposed(c) => c.forward(x),
        }
    }

    /// FLOPs of a transposed convolution for an `h × w` input (0 for the parameter-free
    /// kinds), saturating at `u64::MAX`.
    pub(crate) fn flops(kind: Upsampling, cin: usize, cout: usize, h: usize, w: usize) -> u64 {
        match kind {
            Upsampling::TransposedConv => conv_flops(cin, cout, 2, h, w),
            _ => 0,
        }
    }
}

/// A 1×1 classifier head (`candle_nn::Conv2d` without padding, stride or dilation) run
/// through [`crate::kernels::conv2d`]: the fast kernel on the CPU, whose backward is a GEMM
/// (candle's input gradient of a convolution is a serial direct loop), candle's
/// convolution elsewhere.
pub(crate) fn head_forward(head: &candle_nn::Conv2d, x: &Tensor) -> candle_core::Result<Tensor> {
    crate::kernels::conv2d(x, head.weight(), head.bias(), 1, false)
}

/// Checks that both spatial sizes of a `[N, C, H, W]` input are positive multiples of `m`.
pub(crate) fn check_input(
    arch: &str,
    x: &Tensor,
    in_channels: usize,
    m: usize,
) -> candle_core::Result<()> {
    let (_, c, h, w) = x.dims4()?;
    if c != in_channels {
        candle_core::bail!(
            "{arch} expects {in_channels} input channel(s), found {c} (input shape {:?})",
            x.shape()
        );
    }
    if h == 0 || w == 0 || h % m != 0 || w % m != 0 {
        candle_core::bail!(
            "{arch} needs height and width that are positive multiples of {m}, found {h}×{w}; pad or resize the input"
        );
    }
    Ok(())
}

/// Channels after scaling `base · 2^level` by `multiplier`, at least 1 (and at most
/// `usize::MAX` for a configuration that [`check_channels`] would refuse: computed in `f64`,
/// so that no product overflows).
pub(crate) fn scaled_width(base: usize, level: u32, multiplier: f64) -> usize {
    scaled_width_f64(base, level, multiplier) as usize
}

/// [`scaled_width`] before the conversion to an integer (may be huge or not finite).
pub(crate) fn scaled_width_f64(base: usize, level: u32, multiplier: f64) -> f64 {
    (base as f64 * f64::from(1u32 << level.min(31)) * multiplier)
        .round()
        .max(1.0)
}

/// `2^n`, saturating at `usize::MAX` (a size multiple of a configuration that `validate`
/// would refuse must not overflow a shift).
pub(crate) fn pow2_saturating(n: usize) -> usize {
    u32::try_from(n)
        .ok()
        .and_then(|n| 1usize.checked_shl(n))
        .unwrap_or(usize::MAX)
}

/// The most channels any layer of a network may have. The widest layers in use have 512
/// (XNet) to 1024 (U-Net); a checkpoint or config asking for more than this is corrupt or
/// mistyped and is refused before anything is allocated.
pub const MAX_CHANNELS: usize = 8192;
/// The largest convolution kernel side a network may have.
pub const MAX_KERNEL_SIZE: usize = 31;
/// The most output classes a network may have: labels are `u8`, and 255 means "ignore".
pub const MAX_CLASSES: usize = 255;

/// Checks a channel count: `1 ≤ value ≤ MAX_CHANNELS`. The error names `arch` and `field`.
pub(crate) fn check_channels(arch: &str, field: &str, value: usize) -> Result<()> {
    if !(1..=MAX_CHANNELS).contains(&value) {
        return Err(ModelError::InvalidConfig(format!(
            "{arch}: {field} must be 1 to {MAX_CHANNELS}, found {value}"
        )));
    }
    Ok(())
}

/// Checks the fields every network has: `in_channels` (≤ [`MAX_CHANNELS`]), `num_classes`
/// (≤ [`MAX_CLASSES`]) and an odd `kernel_size` ≤ [`MAX_KERNEL_SIZE`].
pub(crate) fn check_common(
    arch: &str,
    in_channels: usize,
    num_classes: usize,
    kernel_size: usize,
) -> Result<()> {
    check_channels(arch, "in_channels", in_channels)?;
    if !(1..=MAX_CLASSES).contains(&num_classes) {
        return Err(ModelError::InvalidConfig(format!(
            "{arch}: num_classes must be 1 to {MAX_CLASSES} (labels are bytes, 255 means ignore), found {num_classes}"
        )));
    }
    if kernel_size % 2 != 1 || kernel_size > MAX_KERNEL_SIZE {
        return Err(ModelError::InvalidConfig(format!(
            "{arch}: kernel_size must be odd (for 'same' padding) and at most {MAX_KERNEL_SIZE}, found {kernel_size}"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_nn::VarMap;

    fn block(
        cin: usize,
        cout: usize,
        k: usize,
        bn: BatchNormSettings,
    ) -> (VarMap, Result<ConvBnRelu>) {
        let vm = VarMap::new();
        let vb = VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu);
        let b = ConvBnRelu::new(cin, cout, k, bn, vb);
        (vm, b)
    }

    /// Absurd channel counts and kernel sizes are refused before anything is allocated
    /// (2⁴⁰ output channels aborted the process on allocation), and so are batch-norm
    /// settings that `validate` refuses (a NaN eps was accepted and made every output NaN).
    #[test]
    fn new_refuses_absurd_sizes_and_bad_batch_norm_settings() {
        let bn = BatchNormSettings::default();
        for (cin, cout, k) in [
            (1, 1 << 40, 3),
            (1 << 40, 1, 3),
            (1, usize::MAX, 1),
            (0, 4, 3),
            (4, 0, 3),
            (1, MAX_CHANNELS + 1, 3),
            (5 * MAX_CHANNELS + 1, 4, 1),
            (1, 4, MAX_KERNEL_SIZE + 2),
            (1, 4, usize::MAX),
            (1, 4, 2),
        ] {
            let (vm, b) = block(cin, cout, k, bn);
            assert!(
                matches!(b, Err(ModelError::InvalidConfig(_))),
                "{cin} → {cout}, k {k}: {b:?}"
            );
            assert!(vm.all_vars().is_empty(), "{cin} → {cout}, k {k}");
        }
        for (eps, momentum) in [
            (f64::NAN, 0.01),
            (0.0, 0.01),
            (-1e-3, 0.01),
            (f64::INFINITY, 0.01),
            (1e308, 0.01),
            (1e-3, f64::NAN),
            (1e-3, 1.5),
        ] {
            let (vm, b) = block(1, 4, 3, BatchNormSettings { eps, momentum });
            let e = b.unwrap_err().to_string();
            assert!(
                e.contains("batch-norm"),
                "eps {eps}, momentum {momentum}: {e}"
            );
            assert!(vm.all_vars().is_empty());
        }
        // The widest blocks the networks build are accepted (DeepLab's projection).
        let (_, b) = block(5 * MAX_CHANNELS, 1, 1, bn);
        assert!(b.is_ok());
        let (_, b) = block(1, 4, MAX_KERNEL_SIZE, bn);
        assert!(b.is_ok());
    }

    /// Dilation 0 is an error on both paths (the reference path passed it to candle).
    #[test]
    fn forward_dilated_refuses_dilation_zero() {
        let (_, b) = block(2, 3, 3, BatchNormSettings::default());
        let b = b.unwrap();
        let x = Tensor::ones((1, 2, 5, 5), DType::F32, &Device::Cpu).unwrap();
        let e = b.forward_dilated(&x, false, 0).unwrap_err().to_string();
        assert!(e.contains("dilation must be at least 1"), "{e}");
        assert_eq!(
            b.forward_dilated(&x, false, 7).unwrap().dims(),
            &[1, 3, 5, 5]
        );
    }
}
