//! U-Net (Ronneberger, Fischer, Brox 2015) with padded ("same") convolutions and batch-norm.
//!
//! `depth` pooling levels; level `l` (1-based from the top) has two [`ConvBnRelu`] of width
//! `base · 2^(l−1)`, the bottleneck two of width `base · 2^depth`. On the way up each level
//! doubles the resolution and halves the channels — with a learnt 2×2 stride-2 transposed
//! convolution (the paper's "up-convolution", the default), or with a parameter-free
//! nearest/bilinear ×2 followed by a [`ConvBnRelu`] (the PyTorch twin's form) — then
//! concatenates the encoder tensor first and applies two more [`ConvBnRelu`]. A 1×1
//! convolution gives the logits.
//!
//! Variable names: `enc{l}.conv{1,2}`, `bottleneck.conv{1,2}`, `up{l}`, `dec{l}.conv{1,2}`,
//! `head`.

use super::blocks::{
    check_common, check_input, conv_flops, flops_sum, pow2_saturating, shr_or_zero,
    BatchNormSettings, ConvBnRelu, Up2, Upsampling, MAX_CHANNELS,
};
use super::parameter_count::{check_parameter_count, count_parameters};
use super::{ModelConfig, Segmenter};
use crate::{ModelError, Result};
use candle_core::{ModuleT, Tensor};
use candle_nn::VarBuilder;

/// Configuration of U-Net. `Default` is Ronneberger's widths (64 … 1024, depth 4) with
/// transposed-convolution up-sampling and batch-norm.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct UNetConfig {
    /// Input channels.
    pub in_channels: usize,
    /// Output classes.
    pub num_classes: usize,
    /// Channels of the top level (64 in the paper); level `l` has `base · 2^(l−1)`.
    pub base_width: usize,
    /// Number of pooling levels (4 in the paper); inputs must be multiples of `2^depth`.
    pub depth: usize,
    /// Convolution kernel size (odd).
    pub kernel_size: usize,
    /// Up-sampling: `transposed_conv` (paper), `nearest` or `bilinear` (+ a conv block).
    pub upsampling: Upsampling,
    /// Batch-norm settings.
    pub batch_norm: BatchNormSettings,
}

impl Default for UNetConfig {
    fn default() -> Self {
        Self {
            in_channels: 1,
            num_classes: 3,
            base_width: 64,
            depth: 4,
            kernel_size: 3,
            upsampling: Upsampling::TransposedConv,
            batch_norm: BatchNormSettings::default(),
        }
    }
}

impl UNetConfig {
    /// Width of level `l` (0-based; `depth` is the bottleneck).
    fn width(&self, l: usize) -> usize {
        self.base_width << l
    }

    /// Checks every field, then the number of parameters they give (at most
    /// [`MAX_PARAMETERS`](super::MAX_PARAMETERS), which keeps an absurd configuration from aborting on allocation).
    ///
    /// # Examples
    /// ```
    /// use xnet_model::models::{UNetConfig, Upsampling};
    /// assert!(UNetConfig::default().validate().is_ok());
    /// let e = UNetConfig { depth: 9, ..Default::default() }.validate().unwrap_err();
    /// assert!(e.to_string().contains("U-Net: depth must be 1 to 8, found 9"), "{e}");
    /// let unpool = UNetConfig { upsampling: Upsampling::IndexUnpool, ..Default::default() };
    /// assert!(unpool.validate().unwrap_err().to_string().contains("index_unpool"));
    /// ```
    pub fn validate(&self) -> Result<()> {
        check_parameter_count(
            "U-Net",
            self.parameter_count()?,
            "base_width, depth and kernel_size",
        )
    }

    /// The number of trainable parameters (weights, biases and batch-norm scales; not the
    /// running statistics), counted without allocating them. It does not apply the
    /// [`MAX_PARAMETERS`](super::MAX_PARAMETERS) ceiling, so it also sizes a configuration that [`Self::validate`]
    /// refuses for its size.
    ///
    /// # Errors
    /// The field checks of [`Self::validate`].
    ///
    /// # Examples
    /// ```
    /// use xnet_model::models::UNetConfig;
    /// # fn main() -> xnet_model::Result<()> {
    /// // depth 1, base 2: 3×3 blocks 1→2, 2→2 | bottleneck 2→4, 4→4 | up-convolution 4→2
    /// // (2×2 kernel + bias: 34) | 4→2, 2→2 | 1×1 head 2→3. A block a→b holds 9ab + 3b
    /// // (kernel, bias, batch-norm scale and shift): 24 + 42 + 84 + 156 + 34 + 78 + 42 + 9.
    /// let cfg = UNetConfig { base_width: 2, depth: 1, ..Default::default() };
    /// assert_eq!(cfg.parameter_count()?, 469);
    /// # Ok(())
    /// # }
    /// ```
    pub fn parameter_count(&self) -> Result<u64> {
        self.validate_fields()?;
        count_parameters(|vb| self.assemble(vb))
    }

    /// The field checks of [`Self::validate`], without the parameter count.
    fn validate_fields(&self) -> Result<()> {
        let bad = |m: String| Err(ModelError::InvalidConfig(format!("U-Net: {m}")));
        check_common(
            "U-Net",
            self.in_channels,
            self.num_classes,
            self.kernel_size,
        )?;
        if !(1..=8).contains(&self.depth) {
            return bad(format!("depth must be 1 to 8, found {}", self.depth));
        }
        // The bottleneck, base · 2^depth, is the widest level (checked: no overflow).
        let widest = self.base_width.checked_mul(1 << self.depth);
        if self.base_width == 0 || widest.is_none_or(|w| w > MAX_CHANNELS) {
            return bad(format!(
                "base_width must be ≥ 1 and base_width · 2^depth (the bottleneck's channels) at \
                 most {MAX_CHANNELS}, found base_width {} and depth {}",
                self.base_width, self.depth
            ));
        }
        if self.upsampling == Upsampling::IndexUnpool {
            return bad("index_unpool does not fit U-Net (the decoder halves the channels); use transposed_conv, nearest or bilinear".into());
        }
        self.batch_norm.validate()
    }

    /// Inputs must have height and width multiples of `2^depth`.
    ///
    /// # Examples
    /// ```
    /// use candle_core::{DType, Device, Tensor};
    /// use candle_nn::{ModuleT, VarBuilder, VarMap};
    /// use xnet_model::models::UNetConfig;
    /// # fn main() -> xnet_model::Result<()> {
    /// assert_eq!(UNetConfig::default().size_multiple(), 16); // the paper's four poolings
    /// let cfg = UNetConfig { base_width: 2, depth: 3, ..Default::default() };
    /// assert_eq!(cfg.size_multiple(), 8);
    /// let net = cfg.build(VarBuilder::from_varmap(&VarMap::new(), DType::F32, &Device::Cpu))?;
    /// let x = Tensor::zeros((1, 1, 8, 24), DType::F32, &Device::Cpu)?;
    /// assert_eq!(net.forward_t(&x, false)?.dims(), &[1, 3, 8, 24]);
    /// let x = Tensor::zeros((1, 1, 8, 12), DType::F32, &Device::Cpu)?;
    /// assert!(net.forward_t(&x, false).is_err()); // 12 is no multiple of 8
    /// # Ok(())
    /// # }
    /// ```
    pub fn size_multiple(&self) -> usize {
        pow2_saturating(self.depth)
    }

    /// FLOPs (2 per multiply-accumulate, convolutions) of one `h × w` forward pass,
    /// saturating at `u64::MAX` for sizes whose count does not fit.
    ///
    /// # Shapes
    /// `h`, then `w` ([tensor order](crate#sizes)): the input is `[1, 1, h, w]`.
    ///
    /// # Examples
    /// ```
    /// use xnet_model::models::{UNetConfig, Upsampling};
    /// // depth 1, base 2, at 8 × 8 (64 pixels), 2 FLOPs per multiply-accumulate of 3×3
    /// // blocks: 1→2 and 2→2 at 64 pixels, the bottleneck 2→4 and 4→4 at 16, then the
    /// // up-convolution 4→2 (2×2 kernel on the 4 × 4 map), 4→2 and 2→2 at 64, and the 1×1
    /// // head 2→3.
    /// let cfg = UNetConfig { base_width: 2, depth: 1, ..Default::default() };
    /// let encoder = 2 * (64 * 9 * (2 + 4) + 16 * 9 * (8 + 16));
    /// let decoder = 2 * (16 * 4 * 8 + 64 * 9 * (8 + 4) + 64 * 6);
    /// assert_eq!(cfg.forward_flops(8, 8), encoder + decoder);
    /// // Nearest up-sampling is free but is followed by a 3×3 block 4→2 at 64 pixels.
    /// let nearest = UNetConfig { upsampling: Upsampling::Nearest, ..cfg.clone() };
    /// let extra = 2 * 64 * 9 * 8 - 2 * 16 * 4 * 8;
    /// assert_eq!(nearest.forward_flops(8, 8), cfg.forward_flops(8, 8) + extra);
    /// assert_eq!(UNetConfig::default().forward_flops(1 << 30, 1 << 30), u64::MAX);
    /// ```
    pub fn forward_flops(&self, h: usize, w: usize) -> u64 {
        let k = self.kernel_size;
        let mut f = 0u64;
        let mut cin = self.in_channels;
        // Saturating widths: a configuration that `validate` refuses must not overflow.
        let width = |l: usize| self.base_width.saturating_mul(pow2_saturating(l));
        for l in 0..=self.depth {
            let (y, x, c) = (shr_or_zero(h, l), shr_or_zero(w, l), width(l));
            f = flops_sum([f, conv_flops(cin, c, k, y, x), conv_flops(c, c, k, y, x)]);
            cin = c;
        }
        for l in (0..self.depth).rev() {
            let (y, x, c) = (shr_or_zero(h, l), shr_or_zero(w, l), width(l));
            let c2 = c.saturating_mul(2);
            let up = match self.upsampling {
                Upsampling::TransposedConv => Up2::flops(self.upsampling, c2, c, y / 2, x / 2),
                _ => conv_flops(c2, c, k, y, x),
            };
            f = flops_sum([f, up, conv_flops(c2, c, k, y, x), conv_flops(c, c, k, y, x)]);
        }
        f.saturating_add(conv_flops(self.base_width, self.num_classes, 1, h, w))
    }

    /// Builds the network (variable names in the [module documentation](self)).
    ///
    /// # Examples
    /// ```
    /// use candle_core::{DType, Device, Tensor};
    /// use candle_nn::{ModuleT, VarBuilder, VarMap};
    /// use xnet_model::models::{count_trainable_parameters, UNetConfig};
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let cfg = UNetConfig { base_width: 2, depth: 1, ..Default::default() };
    /// let varmap = VarMap::new();
    /// let net = cfg.build(VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu))?;
    /// let x = Tensor::zeros((2, 1, 8, 8), DType::F32, &Device::Cpu)?;
    /// assert_eq!(net.forward_t(&x, false)?.dims(), [2, 3, 8, 8]);
    /// assert_eq!(count_trainable_parameters(&varmap) as u64, cfg.parameter_count()?);
    /// assert!(net.forward_t(&Tensor::zeros((1, 1, 9, 9), DType::F32, &Device::Cpu)?, false).is_err());
    /// # Ok(())
    /// # }
    /// ```
    pub fn build(&self, vb: VarBuilder) -> Result<UNet> {
        self.validate()?;
        self.assemble(vb)
    }

    /// Creates the layers of a configuration that [`Self::validate`] accepted.
    fn assemble(&self, vb: VarBuilder) -> Result<UNet> {
        let (k, bn) = (self.kernel_size, self.batch_norm);
        let double = |cin: usize, c: usize, vb: VarBuilder| -> Result<[ConvBnRelu; 2]> {
            Ok([
                ConvBnRelu::new(cin, c, k, bn, vb.pp("conv1"))?,
                ConvBnRelu::new(c, c, k, bn, vb.pp("conv2"))?,
            ])
        };
        let mut enc = Vec::with_capacity(self.depth);
        let mut cin = self.in_channels;
        for l in 0..self.depth {
            enc.push(double(cin, self.width(l), vb.pp(format!("enc{}", l + 1)))?);
            cin = self.width(l);
        }
        let bottleneck = double(cin, self.width(self.depth), vb.pp("bottleneck"))?;
        let mut ups = Vec::with_capacity(self.depth);
        let mut dec = Vec::with_capacity(self.depth);
        for l in 0..self.depth {
            let c = self.width(l);
            let vb_up = vb.pp(format!("up{}", l + 1));
            ups.push(match self.upsampling {
                Upsampling::TransposedConv => {
                    UpStep::Transposed(Up2::new(self.upsampling, 2 * c, c, vb_up)?)
                }
                kind => UpStep::Resample(
                    Up2::new(kind, 2 * c, 2 * c, vb_up.clone())?,
                    ConvBnRelu::new(2 * c, c, k, bn, vb_up)?,
                ),
            });
            dec.push(double(2 * c, c, vb.pp(format!("dec{}", l + 1)))?);
        }
        let head = candle_nn::conv2d(
            self.base_width,
            self.num_classes,
            1,
            Default::default(),
            vb.pp("head"),
        )?;
        Ok(UNet {
            cfg: self.clone(),
            enc,
            bottleneck,
            ups,
            dec,
            head,
        })
    }
}

#[derive(Debug, Clone)]
enum UpStep {
    Transposed(Up2),
    Resample(Up2, ConvBnRelu),
}

/// The U-Net network.
#[derive(Debug, Clone)]
pub struct UNet {
    cfg: UNetConfig,
    enc: Vec<[ConvBnRelu; 2]>,
    bottleneck: [ConvBnRelu; 2],
    ups: Vec<UpStep>,
    dec: Vec<[ConvBnRelu; 2]>,
    head: candle_nn::Conv2d,
}

fn double(b: &[ConvBnRelu; 2], x: &Tensor, train: bool) -> candle_core::Result<Tensor> {
    b[1].forward_t(&b[0].forward_t(x, train)?, train)
}

impl ModuleT for UNet {
    fn forward_t(&self, x: &Tensor, train: bool) -> candle_core::Result<Tensor> {
        check_input("U-Net", x, self.cfg.in_channels, self.cfg.size_multiple())?;
        let mut skips = Vec::with_capacity(self.cfg.depth);
        let mut x = x.clone();
        for b in &self.enc {
            let s = double(b, &x, train)?;
            x = crate::ops::max_pool2d(&s, 2)?;
            skips.push(s);
        }
        x = double(&self.bottleneck, &x, train)?;
        for l in (0..self.cfg.depth).rev() {
            let up = match &self.ups[l] {
                UpStep::Transposed(t) => t.forward(&x)?,
                UpStep::Resample(r, c) => c.forward_t(&r.forward(&x)?, train)?,
            };
            x = double(
                &self.dec[l],
                &crate::kernels::concat_channels(&skips[l], &up)?,
                train,
            )?;
        }
        super::blocks::head_forward(&self.head, &x)
    }
}

impl Segmenter for UNet {
    fn num_classes(&self) -> usize {
        self.cfg.num_classes
    }
    fn size_multiple(&self) -> usize {
        self.cfg.size_multiple()
    }
    fn config(&self) -> ModelConfig {
        ModelConfig::UNet(self.cfg.clone())
    }
    fn fold_batch_norm(&mut self) -> Result<usize> {
        let mut n = 0;
        let ups = self.ups.iter_mut().filter_map(|u| match u {
            UpStep::Resample(_, c) => Some(c),
            UpStep::Transposed(_) => None,
        });
        let blocks = self
            .enc
            .iter_mut()
            .chain(std::iter::once(&mut self.bottleneck))
            .chain(self.dec.iter_mut())
            .flatten();
        for b in blocks.chain(ups) {
            n += usize::from(b.fold_batch_norm()?);
        }
        Ok(n)
    }
}
