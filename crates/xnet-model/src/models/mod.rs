//! The networks: XNet, U-Net, SegNet and DeepLab-lite, behind one [`Segmenter`] trait.
//!
//! Each network has a serde configuration with `Default`, is built from a
//! [`candle_nn::VarBuilder`] and implements [`candle_nn::ModuleT`] (`forward_t(x, train)`:
//! `train` selects batch statistics in batch-norm). Inputs are `[N, C_in, H, W]`, outputs
//! `[N, num_classes, H, W]` logits (no softmax).
//!
//! # Examples
//! ```
//! use candle_core::{DType, Device, Tensor};
//! use candle_nn::{ModuleT, VarBuilder, VarMap};
//! use xnet_model::models::{ModelConfig, XNetConfig};
//!
//! let cfg = ModelConfig::XNet(XNetConfig { base_width: 4, ..Default::default() });
//! let varmap = VarMap::new();
//! let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
//! let net = cfg.build(vb)?;
//! let x = Tensor::zeros((1, 1, 16, 16), DType::F32, &Device::Cpu)?;
//! let logits = net.forward_t(&x, false)?;
//! assert_eq!(logits.dims(), &[1, 3, 16, 16]);
//! # Ok::<(), xnet_model::ModelError>(())
//! ```

use crate::Result;

pub mod blocks;
pub mod deeplab;
mod parameter_count;
pub mod segnet;
pub mod unet;
pub mod xnet;

pub use blocks::{
    BatchNormSettings, ConvBnRelu, Upsampling, MAX_CHANNELS, MAX_CLASSES, MAX_KERNEL_SIZE,
};
pub use deeplab::{DeepLab, DeepLabConfig};
pub use parameter_count::MAX_PARAMETERS;
pub use segnet::{SegNet, SegNetConfig};
pub use unet::{UNet, UNetConfig};
pub use xnet::{XNet, XNetConfig};

/// A segmentation network: maps `[N, C_in, H, W]` images to `[N, C, H, W]` logits.
///
/// Every architecture of this crate implements it, so examples, trainers and benches treat
/// them alike. It is object-safe (`Box<dyn Segmenter>`).
pub trait Segmenter: candle_nn::ModuleT + Send + Sync {
    /// Number of output classes `C`.
    fn num_classes(&self) -> usize;

    /// Height and width of the input must be multiples of this (the product of the pooling
    /// factors).
    fn size_multiple(&self) -> usize;

    /// The configuration the network was built from.
    fn config(&self) -> ModelConfig;

    /// Folds every batch-norm into the convolution before it, for faster inference with the
    /// same eval-mode outputs (within float rounding). The weights become plain tensors
    /// detached from the `VarMap`: a folded network is inference-only, and a training forward
    /// returns an error. Returns how many batch-norms were folded (0 when already folded).
    fn fold_batch_norm(&mut self) -> Result<usize>;

    /// FLOPs (2 per multiply-accumulate, convolution layers) of one forward pass of one
    /// `height × width` image, saturating at `u64::MAX` for sizes whose count does not fit.
    fn forward_flops(&self, height: usize, width: usize) -> u64 {
        self.config().forward_flops(height, width)
    }
}

/// The configuration of any network of this crate, serialised as JSON beside checkpoints
/// (`{"arch": "xnet", ...fields}`).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "arch", rename_all = "lowercase")]
pub enum ModelConfig {
    /// XNet (Bullock et al. 2019).
    XNet(XNetConfig),
    /// U-Net (Ronneberger et al. 2015).
    UNet(UNetConfig),
    /// SegNet with pooling-index unpooling.
    SegNet(SegNetConfig),
    /// DeepLab-style encoder with an atrous spatial pyramid.
    DeepLab(DeepLabConfig),
}

impl Default for ModelConfig {
    fn default() -> Self {
        ModelConfig::XNet(XNetConfig::default())
    }
}

impl ModelConfig {
    /// Checks the configuration; the error says which field is wrong and what is accepted.
    ///
    /// # Examples
    /// ```
    /// use xnet_model::ModelConfig;
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let ok: ModelConfig = serde_json::from_str(r#"{"arch": "unet", "depth": 2}"#)?;
    /// assert!(ok.validate().is_ok());
    /// // An even kernel has no centre for "same" padding.
    /// let even: ModelConfig = serde_json::from_str(r#"{"arch": "unet", "kernel_size": 4}"#)?;
    /// let e = even.validate().unwrap_err().to_string();
    /// assert!(e.contains("U-Net: kernel_size must be odd"), "{e}");
    /// # Ok(())
    /// # }
    /// ```
    pub fn validate(&self) -> Result<()> {
        match self {
            ModelConfig::XNet(c) => c.validate(),
            ModelConfig::UNet(c) => c.validate(),
            ModelConfig::SegNet(c) => c.validate(),
            ModelConfig::DeepLab(c) => c.validate(),
        }
    }

    /// The number of trainable parameters (weights, biases and batch-norm scales; not the
    /// running statistics), counted from the configuration without allocating them: the
    /// `params` of a built network's `VarMap` as
    /// [`count_trainable_parameters`] gives it. A configuration above [`MAX_PARAMETERS`] is
    /// counted too ([`Self::validate`] refuses it).
    ///
    /// # Errors
    /// The field checks of [`Self::validate`].
    ///
    /// # Examples
    /// ```
    /// use xnet_model::models::{ModelConfig, XNetConfig, MAX_PARAMETERS};
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// assert_eq!(ModelConfig::default().parameter_count()?, 11_734_851); // the paper's XNet
    /// // Widths of 1024 to 8192 channels with 31×31 kernels: 2.4·10¹¹ weights, a terabyte.
    /// let absurd = ModelConfig::XNet(XNetConfig {
    ///     base_width: 1024,
    ///     kernel_size: 31,
    ///     ..Default::default()
    /// });
    /// assert!(absurd.parameter_count()? > MAX_PARAMETERS);
    /// let e = absurd.validate().unwrap_err().to_string();
    /// assert!(e.contains("parameters"), "{e}");
    /// # Ok(())
    /// # }
    /// ```
    pub fn parameter_count(&self) -> Result<u64> {
        match self {
            ModelConfig::XNet(c) => c.parameter_count(),
            ModelConfig::UNet(c) => c.parameter_count(),
            ModelConfig::SegNet(c) => c.parameter_count(),
            ModelConfig::DeepLab(c) => c.parameter_count(),
        }
    }

    /// Builds the network, creating its variables in (or loading them from) `vb`.
    ///
    /// With `VarBuilder::from_varmap` the variables are initialised randomly and registered
    /// in the `VarMap` (for training and saving); with a safetensors-backed `VarBuilder` they
    /// are loaded, and a missing tensor or wrong shape is an error naming it.
    ///
    /// # Errors
    /// [`ModelError::InvalidConfig`](crate::ModelError::InvalidConfig) for a configuration
    /// that [`ModelConfig::validate`] refuses, naming the field; candle's errors from `vb` (a
    /// `VarMap` that already holds a variable of that name with another shape, such as one a
    /// network of another width left there, or a tensor a safetensors-backed builder lacks).
    ///
    /// # Examples
    /// ```
    /// use candle_core::{DType, Device, Tensor};
    /// use candle_nn::{ModuleT, VarBuilder, VarMap};
    /// use xnet_model::ModelConfig;
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// // A small U-Net, as a config.json would give it.
    /// let json = r#"{"arch": "unet", "base_width": 4, "depth": 2}"#;
    /// let cfg: ModelConfig = serde_json::from_str(json)?;
    /// let varmap = VarMap::new();
    /// let net = cfg.build(VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu))?;
    /// assert_eq!(net.config(), cfg);
    /// let x = Tensor::zeros((2, 1, 16, 16), DType::F32, &Device::Cpu)?;
    /// assert_eq!(net.forward_t(&x, false)?.dims(), &[2, 3, 16, 16]); // [N, classes, H, W] logits
    ///
    /// // The configuration is validated first.
    /// let bad: ModelConfig = serde_json::from_str(r#"{"arch": "unet", "depth": 0}"#)?;
    /// let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
    /// assert!(bad.build(vb).is_err());
    /// # Ok(())
    /// # }
    /// ```
    pub fn build(&self, vb: candle_nn::VarBuilder) -> Result<Box<dyn Segmenter>> {
        Ok(match self {
            ModelConfig::XNet(c) => Box::new(c.build(vb)?),
            ModelConfig::UNet(c) => Box::new(c.build(vb)?),
            ModelConfig::SegNet(c) => Box::new(c.build(vb)?),
            ModelConfig::DeepLab(c) => Box::new(c.build(vb)?),
        })
    }

    /// Number of output classes.
    ///
    /// # Examples
    /// ```
    /// use xnet_model::ModelConfig;
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// assert_eq!(ModelConfig::default().num_classes(), 3); // open beam, soft tissue, bone
    /// let two: ModelConfig = serde_json::from_str(r#"{"arch": "segnet", "num_classes": 2}"#)?;
    /// assert_eq!(two.num_classes(), 2);
    /// # Ok(())
    /// # }
    /// ```
    pub fn num_classes(&self) -> usize {
        match self {
            ModelConfig::XNet(c) => c.num_classes,
            ModelConfig::UNet(c) => c.num_classes,
            ModelConfig::SegNet(c) => c.num_classes,
            ModelConfig::DeepLab(c) => c.num_classes,
        }
    }

    /// Number of input channels.
    ///
    /// # Examples
    /// ```
    /// use xnet_model::ModelConfig;
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// assert_eq!(ModelConfig::default().in_channels(), 1); // one radiograph plane
    /// let dual: ModelConfig = serde_json::from_str(r#"{"arch": "deeplab", "in_channels": 2}"#)?;
    /// assert_eq!(dual.in_channels(), 2);
    /// # Ok(())
    /// # }
    /// ```
    pub fn in_channels(&self) -> usize {
        match self {
            ModelConfig::XNet(c) => c.in_channels,
            ModelConfig::UNet(c) => c.in_channels,
            ModelConfig::SegNet(c) => c.in_channels,
            ModelConfig::DeepLab(c) => c.in_channels,
        }
    }

    /// Height and width of inputs must be multiples of this.
    ///
    /// # Examples
    /// ```
    /// use candle_core::{DType, Device, Tensor};
    /// use candle_nn::{ModuleT, VarBuilder, VarMap};
    /// use xnet_model::models::{ModelConfig, UNetConfig, XNetConfig};
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let cfg = ModelConfig::XNet(XNetConfig { base_width: 2, ..Default::default() });
    /// assert_eq!(cfg.size_multiple(), 8); // three 2×2 poolings
    /// let unet = ModelConfig::UNet(UNetConfig { depth: 2, ..Default::default() });
    /// assert_eq!(unet.size_multiple(), 4); // 2^depth
    ///
    /// let net = cfg.build(VarBuilder::from_varmap(&VarMap::new(), DType::F32, &Device::Cpu))?;
    /// let x = Tensor::zeros((1, 1, 20, 20), DType::F32, &Device::Cpu)?;
    /// assert!(net.forward_t(&x, false).is_err()); // 20 is no multiple of 8
    /// let side = 20usize.next_multiple_of(cfg.size_multiple()); // pad to 24
    /// let x = x.pad_with_zeros(2, 0, side - 20)?.pad_with_zeros(3, 0, side - 20)?;
    /// assert_eq!(net.forward_t(&x, false)?.dims(), &[1, 3, 24, 24]);
    /// # Ok(())
    /// # }
    /// ```
    pub fn size_multiple(&self) -> usize {
        match self {
            ModelConfig::XNet(_) => 8,
            ModelConfig::UNet(c) => c.size_multiple(),
            ModelConfig::SegNet(c) => c.size_multiple(),
            ModelConfig::DeepLab(c) => c.size_multiple(),
        }
    }

    /// FLOPs (2 per multiply-accumulate, convolution layers) of one forward pass of one
    /// `height × width` image. The count saturates at `u64::MAX` (about 1.8 · 10¹⁹) for
    /// sizes whose count does not fit, rather than overflowing; any configuration may be
    /// asked, even one that [`Self::validate`] refuses.
    ///
    /// # Shapes
    /// `height`, then `width` ([tensor order](crate#sizes)): the input is `[1, 1, height, width]`.
    ///
    /// # Examples
    /// ```
    /// use xnet_model::ModelConfig;
    /// // The paper's XNet (the default) at 200 × 200: 66.43 GFLOP.
    /// let paper = ModelConfig::default();
    /// let flops = paper.forward_flops(200, 200);
    /// assert_eq!((flops as f64 / 1e7).round() / 100.0, 66.43);
    /// // Every convolution's cost grows with the pixels: twice the side, four times the FLOPs.
    /// assert_eq!(paper.forward_flops(400, 400), 4 * flops);
    /// // 4 194 304 pixels a side: more than a u64 counts.
    /// assert_eq!(paper.forward_flops(1 << 22, 1 << 22), u64::MAX);
    /// ```
    pub fn forward_flops(&self, height: usize, width: usize) -> u64 {
        match self {
            ModelConfig::XNet(c) => c.forward_flops(height, width),
            ModelConfig::UNet(c) => c.forward_flops(height, width),
            ModelConfig::SegNet(c) => c.forward_flops(height, width),
            ModelConfig::DeepLab(c) => c.forward_flops(height, width),
        }
    }

    /// The architecture's short name (`"xnet"`, `"unet"`, `"segnet"`, `"deeplab"`), as in JSON.
    ///
    /// # Examples
    /// ```
    /// use xnet_model::models::{ModelConfig, UNetConfig};
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let cfg = ModelConfig::UNet(UNetConfig::default());
    /// assert_eq!(cfg.arch(), "unet");
    /// assert_eq!(serde_json::to_value(&cfg)?["arch"], cfg.arch()); // the JSON tag
    /// assert_eq!(ModelConfig::default().arch(), "xnet");
    /// # Ok(())
    /// # }
    /// ```
    pub fn arch(&self) -> &'static str {
        match self {
            ModelConfig::XNet(_) => "xnet",
            ModelConfig::UNet(_) => "unet",
            ModelConfig::SegNet(_) => "segnet",
            ModelConfig::DeepLab(_) => "deeplab",
        }
    }
}

/// Number of trainable parameters in `varmap`: batch-norm running
/// statistics (`running_mean`, `running_var`) are excluded, as in PyTorch and Keras.
///
/// # Examples
/// ```
/// use candle_core::{DType, Device};
/// use candle_nn::{VarBuilder, VarMap};
/// use xnet_model::models::{count_trainable_parameters, BatchNormSettings, ConvBnRelu};
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// // One 3×3 block from 1 to 4 channels: a 4·1·3·3 kernel, 4 biases, and the batch norm's
/// // 4 scales and 4 shifts; its 4 running means and 4 running variances are not trained.
/// let varmap = VarMap::new();
/// let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
/// ConvBnRelu::new(1, 4, 3, BatchNormSettings::default(), vb)?;
/// assert_eq!(count_trainable_parameters(&varmap), 36 + 4 + 4 + 4);
/// # Ok(())
/// # }
/// ```
pub fn count_trainable_parameters(varmap: &candle_nn::VarMap) -> usize {
    let data = varmap.data().lock().unwrap_or_else(|e| e.into_inner());
    data.iter()
        .filter(|(name, _)| is_trainable(name))
        .map(|(_, v)| v.elem_count())
        .sum()
}

/// Whether a variable of that name is trained: everything but batch-norm running statistics.
pub(crate) fn is_trainable(name: &str) -> bool {
    !(name.ends_with("running_mean") || name.ends_with("running_var"))
}
