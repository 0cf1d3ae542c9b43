//! DeepLab-lite: a small DeepLab-v3-style network — a convolutional encoder, an atrous
//! spatial pyramid pooling (ASPP) head and bilinear up-sampling to the input size.
//!
//! Encoder level `l` is two [`ConvBnRelu`] of width `encoder_widths[l]`, with a 2×2 max-pool
//! between levels (output stride `2^(levels−1)`). ASPP has five branches on the encoder
//! output: a 1×1 block, three 3×3 blocks dilated by the scaled rates, and image pooling
//! (global average → 1×1 convolution + ReLU → broadcast back; no batch-norm, since a 1×1
//! map gives no spatial statistics). The branches are concatenated, projected by a 1×1 block,
//! classified by a 1×1 convolution and resized to the input (bilinear, PyTorch
//! `align_corners=False`, with an exact backward from [`crate::ops::resize_bilinear`]).
//!
//! **Rates scale with the input**: the configured rates are meant for an encoder output of
//! `reference_feature_size` pixels (DeepLab-v3 uses 6/12/18 at 33 ≈ 513/16); at run time a
//! rate `r` becomes `max(1, round(r · s / reference_feature_size))` with `s` the smaller
//! side of the actual encoder output. Dilation does not change the weights, so one network
//! serves every input size. A rate beyond the encoder output's larger side runs at that side
//! ([`ConvBnRelu::forward_dilated`]): every tap but the centre reads zero padding either way,
//! so the output is the same, and the padding stays the size of the map (rates scale without
//! bound: 4096 at `reference_feature_size` 1 is 32768 on an 8 × 8 map).
//!
//! Variable names: `enc{l}.conv{1,2}`, `aspp.conv1x1`, `aspp.atrous{1,2,3}`,
//! `aspp.pool` (plain convolution), `aspp.project`, `head`.

use super::blocks::{
    check_channels, check_common, check_input, conv_flops, flops_sum, pow2_saturating, shr_or_zero,
    BatchNormSettings, ConvBnRelu, Upsampling, MAX_CHANNELS,
};
use super::parameter_count::{check_parameter_count, count_parameters};
use super::{ModelConfig, Segmenter};
use crate::{ModelError, Result};
use candle_core::{Module, ModuleT, Tensor};
use candle_nn::VarBuilder;

/// The largest ASPP dilation rate and reference feature size (DeepLab-v3 uses 6 to 18 at 33).
const MAX_RATE: usize = 4096;

/// Configuration of DeepLab-lite.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct DeepLabConfig {
    /// Input channels.
    pub in_channels: usize,
    /// Output classes.
    pub num_classes: usize,
    /// Width of each encoder level (top first); pools between levels.
    pub encoder_widths: Vec<usize>,
    /// Convolution kernel size of the encoder (odd).
    pub kernel_size: usize,
    /// Channels of every ASPP branch and of its projection.
    pub aspp_channels: usize,
    /// Dilation rates of the three 3×3 ASPP branches at the reference feature size.
    pub aspp_rates: [usize; 3],
    /// Encoder-output size (pixels, smaller side) at which `aspp_rates` apply unscaled.
    pub reference_feature_size: usize,
    /// Final up-sampling to the input size: `bilinear` (default) or `nearest`.
    pub upsampling: Upsampling,
    /// Batch-norm settings.
    pub batch_norm: BatchNormSettings,
}

impl Default for DeepLabConfig {
    fn default() -> Self {
        Self {
            in_channels: 1,
            num_classes: 3,
            encoder_widths: vec![32, 64, 128, 256],
            kernel_size: 3,
            aspp_channels: 128,
            aspp_rates: [6, 12, 18],
            reference_feature_size: 33,
            upsampling: Upsampling::Bilinear,
            batch_norm: BatchNormSettings::default(),
        }
    }
}

impl DeepLabConfig {
    /// Checks every field, then the number of parameters they give (at most
    /// [`MAX_PARAMETERS`](super::MAX_PARAMETERS), which keeps an absurd configuration from aborting on allocation).
    ///
    /// # Examples
    /// ```
    /// use xnet_model::models::DeepLabConfig;
    /// assert!(DeepLabConfig::default().validate().is_ok());
    /// let e = DeepLabConfig { encoder_widths: vec![], ..Default::default() }.validate().unwrap_err();
    /// assert!(e.to_string().contains("encoder_widths"), "{e}");
    /// ```
    pub fn validate(&self) -> Result<()> {
        check_parameter_count(
            "DeepLab",
            self.parameter_count()?,
            "encoder_widths, aspp_channels and kernel_size",
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
    /// use xnet_model::models::DeepLabConfig;
    /// # fn main() -> xnet_model::Result<()> {
    /// let cfg = DeepLabConfig { encoder_widths: vec![4, 8], aspp_channels: 4, ..Default::default() };
    /// // A block a→b with a k×k kernel holds k²·a·b weights and 3·b (bias, batch-norm scale
    /// // and shift). Encoder: 1→4, 4→4, 4→8, 8→8 (3×3); ASPP: a 1×1 block 8→4, three 3×3
    /// // blocks 8→4, the pooling branch's plain 1×1 convolution 8→4 (32 + 4) and the 1×1
    /// // projection 20→4; the 1×1 head 4→3 (12 + 3).
    /// let encoder = 48 + 156 + 312 + 600;
    /// let aspp = 44 + 3 * 300 + 36 + 92;
    /// assert_eq!(cfg.parameter_count()?, encoder + aspp + 15);
    ///
    /// let no_rates = DeepLabConfig { aspp_rates: [6, 0, 18], ..cfg };
    /// let e = no_rates.parameter_count().unwrap_err().to_string();
    /// assert!(e.contains("aspp_rates"), "{e}");
    /// # Ok(())
    /// # }
    /// ```
    pub fn parameter_count(&self) -> Result<u64> {
        self.validate_fields()?;
        count_parameters(|vb| self.assemble(vb))
    }

    /// The field checks of [`Self::validate`], without the parameter count.
    fn validate_fields(&self) -> Result<()> {
        let bad = |m: String| Err(ModelError::InvalidConfig(format!("DeepLab: {m}")));
        check_common(
            "DeepLab",
            self.in_channels,
            self.num_classes,
            self.kernel_size,
        )?;
        check_channels("DeepLab", "aspp_channels", self.aspp_channels)?;
        if self.encoder_widths.is_empty()
            || self.encoder_widths.len() > 8
            || self
                .encoder_widths
                .iter()
                .any(|w| !(1..=MAX_CHANNELS).contains(w))
        {
            return bad(format!(
                "encoder_widths must list 1 to 8 widths of 1 to {MAX_CHANNELS}, found {:?}",
                self.encoder_widths
            ));
        }
        if self.aspp_rates.iter().any(|r| !(1..=MAX_RATE).contains(r))
            || !(1..=MAX_RATE).contains(&self.reference_feature_size)
        {
            return bad(format!(
                "aspp_rates and reference_feature_size must be 1 to {MAX_RATE}, found {:?} and {}",
                self.aspp_rates, self.reference_feature_size
            ));
        }
        if !matches!(self.upsampling, Upsampling::Bilinear | Upsampling::Nearest) {
            return bad(format!(
                "upsampling must be bilinear or nearest, found {}",
                self.upsampling
            ));
        }
        self.batch_norm.validate()
    }

    /// Inputs must have height and width multiples of the output stride `2^(levels−1)`.
    ///
    /// # Examples
    /// ```
    /// use xnet_model::models::DeepLabConfig;
    /// assert_eq!(DeepLabConfig::default().size_multiple(), 8); // four levels, three pools
    /// let one = DeepLabConfig { encoder_widths: vec![16], ..Default::default() };
    /// assert_eq!(one.size_multiple(), 1); // no pooling: any size
    /// ```
    pub fn size_multiple(&self) -> usize {
        pow2_saturating(self.encoder_widths.len().max(1) - 1)
    }

    /// The three ASPP dilation rates used for an `h × w` input (a rate beyond the encoder
    /// output's larger side then runs at that side, with the same result; see the
    /// [module documentation](self)).
    ///
    /// # Shapes
    /// `h`, then `w` ([tensor order](crate#sizes)): the input is `[N, 1, h, w]`.
    ///
    /// # Examples
    /// ```
    /// use xnet_model::models::DeepLabConfig;
    /// let cfg = DeepLabConfig::default(); // rates 6, 12, 18 at 33 pixels; output stride 8
    /// assert_eq!(cfg.size_multiple(), 8);
    /// assert_eq!(cfg.rates_for(264, 264), [6, 12, 18]); // 264 / 8 = 33: unscaled
    /// assert_eq!(cfg.rates_for(512, 64), [1, 3, 4]); // smaller side 64 / 8 = 8: r · 8 / 33
    /// assert_eq!(cfg.rates_for(8, 8), [1, 1, 1]); // never below 1
    /// ```
    pub fn rates_for(&self, h: usize, w: usize) -> [usize; 3] {
        let s = h.min(w) / self.size_multiple();
        self.aspp_rates.map(|r| {
            let scaled = (r as f64 * s as f64) / self.reference_feature_size.max(1) as f64;
            (scaled.round() as usize).max(1)
        })
    }

    /// FLOPs (2 per multiply-accumulate, convolutions) of one `h × w` forward pass,
    /// saturating at `u64::MAX` for sizes whose count does not fit.
    ///
    /// # Shapes
    /// `h`, then `w` ([tensor order](crate#sizes)): the input is `[1, 1, h, w]`.
    ///
    /// # Examples
    /// ```
    /// use xnet_model::models::DeepLabConfig;
    /// let cfg = DeepLabConfig { encoder_widths: vec![4, 8], aspp_channels: 4, ..Default::default() };
    /// // 2 FLOPs per multiply-accumulate, at 16 × 16: the encoder at 256 and 64 pixels, the
    /// // ASPP, projection and head at the 8 × 8 output of the encoder, and the pooling
    /// // branch once on its 1 × 1 average. The final resize is not a convolution.
    /// let encoder = 2 * (256 * 9 * (4 + 16) + 64 * 9 * (32 + 64));
    /// let aspp = 2 * (64 * 32 + 3 * 64 * 9 * 32 + 32 + 64 * 80 + 64 * 12);
    /// assert_eq!(cfg.forward_flops(16, 16), encoder + aspp);
    /// // Twice the side: four times everything but the pooling branch's 64 FLOPs.
    /// assert_eq!(cfg.forward_flops(32, 32), 4 * cfg.forward_flops(16, 16) - 3 * 64);
    /// ```
    pub fn forward_flops(&self, h: usize, w: usize) -> u64 {
        let k = self.kernel_size;
        let mut f = 0u64;
        let mut c = self.in_channels;
        for (l, &o) in self.encoder_widths.iter().enumerate() {
            let (y, x) = (shr_or_zero(h, l), shr_or_zero(w, l));
            f = flops_sum([f, conv_flops(c, o, k, y, x), conv_flops(o, o, k, y, x)]);
            c = o;
        }
        let m = self.size_multiple();
        let (y, x, a) = (h / m, w / m, self.aspp_channels);
        flops_sum([
            f,
            conv_flops(c, a, 1, y, x),
            conv_flops(c, a, 3, y, x).saturating_mul(3),
            conv_flops(c, a, 1, 1, 1),
            conv_flops(a.saturating_mul(5), a, 1, y, x),
            conv_flops(a, self.num_classes, 1, y, x),
        ])
    }

    /// Builds the network (variable names in the [module documentation](self)).
    ///
    /// # Errors
    /// What [`Self::validate`] refuses; errors of `vb` (a missing or misshapen tensor).
    ///
    /// # Examples
    /// ```
    /// use candle_core::{DType, Device, Tensor};
    /// use candle_nn::{ModuleT, VarBuilder, VarMap};
    /// use xnet_model::models::{count_trainable_parameters, DeepLabConfig, Upsampling};
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let cfg = DeepLabConfig { encoder_widths: vec![4, 8], aspp_channels: 4, ..Default::default() };
    /// let varmap = VarMap::new();
    /// let net = cfg.build(VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu))?;
    /// assert_eq!(count_trainable_parameters(&varmap) as u64, cfg.parameter_count()?);
    /// assert_eq!(varmap.data().lock().map_err(|_| "poisoned")?["aspp.project.conv.weight"].dims(),
    ///     &[4, 20, 1, 1]); // the five 4-channel branches, concatenated
    /// // Logits at the input's size (the encoder works at half of it).
    /// for (h, w) in [(16, 16), (8, 30)] {
    ///     let x = Tensor::randn(0f32, 1.0, (1, 1, h, w), &Device::Cpu)?;
    ///     assert_eq!(net.forward_t(&x, false)?.dims(), &[1, 3, h, w]);
    /// }
    ///
    /// // The final resize must be bilinear or nearest.
    /// let unpool = DeepLabConfig { upsampling: Upsampling::IndexUnpool, ..cfg };
    /// assert!(unpool.build(VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu)).is_err());
    /// # Ok(())
    /// # }
    /// ```
    pub fn build(&self, vb: VarBuilder) -> Result<DeepLab> {
        self.validate()?;
        self.assemble(vb)
    }

    /// Creates the layers of a configuration that [`Self::validate`] accepted.
    fn assemble(&self, vb: VarBuilder) -> Result<DeepLab> {
        let (k, bn, a) = (self.kernel_size, self.batch_norm, self.aspp_channels);
        let mut encoder = Vec::new();
        let mut c = self.in_channels;
        for (l, &o) in self.encoder_widths.iter().enumerate() {
            let vb = vb.pp(format!("enc{}", l + 1));
            encoder.push([
                ConvBnRelu::new(c, o, k, bn, vb.pp("conv1"))?,
                ConvBnRelu::new(o, o, k, bn, vb.pp("conv2"))?,
            ]);
            c = o;
        }
        let va = vb.pp("aspp");
        let conv1x1 = ConvBnRelu::new(c, a, 1, bn, va.pp("conv1x1"))?;
        let atrous = [1, 2, 3]
            .map(|i| ConvBnRelu::new(c, a, 3, bn, va.pp(format!("atrous{i}"))))
            .into_iter()
            .collect::<Result<Vec<_>>>()?;
        let pool = candle_nn::conv2d(c, a, 1, Default::default(), va.pp("pool"))?;
        let project = ConvBnRelu::new(5 * a, a, 1, bn, va.pp("project"))?;
        let head = candle_nn::conv2d(a, self.num_classes, 1, Default::default(), vb.pp("head"))?;
        Ok(DeepLab {
            cfg: self.clone(),
            encoder,
            conv1x1,
            atrous,
            pool,
            project,
            head,
        })
    }
}

/// The DeepLab-lite network.
#[derive(Debug, Clone)]
pub struct DeepLab {
    cfg: DeepLabConfig,
    encoder: Vec<[ConvBnRelu; 2]>,
    conv1x1: ConvBnRelu,
    atrous: Vec<ConvBnRelu>,
    pool: candle_nn::Conv2d,
    project: ConvBnRelu,
    head: candle_nn::Conv2d,
}

impl ModuleT for DeepLab {
    fn forward_t(&self, x: &Tensor, train: bool) -> candle_core::Result<Tensor> {
        let m = self.cfg.size_multiple();
        check_input("DeepLab", x, self.cfg.in_channels, m)?;
        let (_, _, h, w) = x.dims4()?;
        let mut y = x.clone();
        for (l, b) in self.encoder.iter().enumerate() {
            if l > 0 {
                y = crate::ops::max_pool2d(&y, 2)?;
            }
            y = b[1].forward_t(&b[0].forward_t(&y, train)?, train)?;
        }
        let rates = self.cfg.rates_for(h, w);
        let mut branches = vec![self.conv1x1.forward_t(&y, train)?];
        for (b, r) in self.atrous.iter().zip(rates) {
            branches.push(b.forward_dilated(&y, train, r)?);
        }
        let pooled = self
            .pool
            .forward(&y.mean_keepdim(3)?.mean_keepdim(2)?)?
            .relu()?;
        branches.push(pooled.broadcast_as(branches[0].shape())?.contiguous()?);
        let z = self.project.forward_t(&Tensor::cat(&branches, 1)?, train)?;
        let logits = super::blocks::head_forward(&self.head, &z)?;
        match self.cfg.upsampling {
            Upsampling::Nearest => logits.upsample_nearest2d(h, w),
            _ => crate::ops::resize_bilinear(&logits, h, w),
        }
    }
}

impl Segmenter for DeepLab {
    fn num_classes(&self) -> usize {
        self.cfg.num_classes
    }
    fn size_multiple(&self) -> usize {
        self.cfg.size_multiple()
    }
    fn config(&self) -> ModelConfig {
        ModelConfig::DeepLab(self.cfg.clone())
    }
    fn fold_batch_norm(&mut self) -> Result<usize> {
        let mut n = 0;
        let blocks = self.encoder.iter_mut().flatten();
        let aspp = std::iter::once(&mut self.conv1x1)
            .chain(self.atrous.iter_mut())
            .chain(std::iter::once(&mut self.project));
        for b in blocks.chain(aspp) {
            n += usize::from(b.fold_batch_norm()?);
        }
        Ok(n)
    }
}
