//! XNet (Bullock, Cuesta-Lázaro, Quera-Bofarull, SPIE Medical Imaging 2019), faithful to the
//! published Keras reference (`JosephPB/XNet`, `XNet.py`).
//!
//! Every block is `k × k` "same" convolution + batch-norm + ReLU; max-pool 2×2; ×2
//! up-sampling (nearest in the reference); skip concatenations with the encoder tensor first.
//! With widths `f0..f3` (64/128/256/512 in the paper):
//!
//! ```text
//! conv1 in→f0 @H, pool; conv2 f0→f1 @H/2, pool; conv3 f1→f2 @H/4, pool;
//! conv4 f2→f3, conv5 f3→f3 @H/8; up, conv6 f3→f2, cat[conv3, conv6];
//! up, conv7 2f2→f1, cat[conv2, conv7]; conv8 2f1→f1 @H/2, pool; conv9 f1→f2 @H/4, pool;
//! conv10 f2→f3, conv11 f3→f3 @H/8; up, conv12 f3→f2, cat[conv9, conv12];
//! up, conv13 2f2→f1, cat[conv8, conv13]; up, conv14 2f1→f0, cat[conv1, conv14];
//! conv15 1×1 2f0→classes (logits; softmax is left to the loss / inference).
//! ```

use super::blocks::{
    check_common, check_input, conv_flops, flops_sum, scaled_width, scaled_width_f64,
    BatchNormSettings, ConvBnRelu, Up2, Upsampling, MAX_CHANNELS,
};
use super::parameter_count::{check_parameter_count, count_parameters};
use super::{ModelConfig, Segmenter};
use crate::error::readable_number;
use crate::{ModelError, Result};
use candle_core::{ModuleT, Tensor};
use candle_nn::VarBuilder;

/// Configuration of XNet. `Default` is the paper's network (11,734,851 trainable parameters).
///
/// # Examples
/// ```
/// use xnet_model::models::XNetConfig;
/// let small = XNetConfig { base_width: 8, ..Default::default() };
/// assert_eq!(small.widths(), [8, 16, 32, 64]);
/// ```
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct XNetConfig {
    /// Input channels (1 for a radiograph).
    pub in_channels: usize,
    /// Output classes (3: open beam, soft tissue, bone).
    pub num_classes: usize,
    /// Channels of the first level; the levels use `base · (1, 2, 4, 8)` (64 in the paper).
    pub base_width: usize,
    /// Scales every width (rounded, at least 1): `0.25` gives a CPU-sized XNet.
    pub width_multiplier: f64,
    /// Convolution kernel size (odd; 3 in the paper).
    pub kernel_size: usize,
    /// How the decoder doubles the resolution (nearest in the paper; `bilinear` and
    /// `transposed_conv` are also accepted).
    pub upsampling: Upsampling,
    /// Batch-norm settings (Keras defaults: eps 1e-3, momentum 0.99 ⇒ 0.01 here).
    pub batch_norm: BatchNormSettings,
}

impl Default for XNetConfig {
    fn default() -> Self {
        Self {
            in_channels: 1,
            num_classes: 3,
            base_width: 64,
            width_multiplier: 1.0,
            kernel_size: 3,
            upsampling: Upsampling::Nearest,
            batch_norm: BatchNormSettings::default(),
        }
    }
}

impl XNetConfig {
    /// The four level widths `[f0, f1, f2, f3]`.
    ///
    /// # Examples
    /// ```
    /// use xnet_model::models::XNetConfig;
    /// assert_eq!(XNetConfig::default().widths(), [64, 128, 256, 512]); // the paper's
    /// let quarter = XNetConfig { width_multiplier: 0.25, ..Default::default() };
    /// assert_eq!(quarter.widths(), [16, 32, 64, 128]);
    /// // `base · 2^level · multiplier`, rounded (halves away from zero), at least 1.
    /// let odd = XNetConfig { base_width: 10, width_multiplier: 0.25, ..Default::default() };
    /// assert_eq!(odd.widths(), [3, 5, 10, 20]);
    /// let tiny = XNetConfig { base_width: 1, width_multiplier: 0.1, ..Default::default() };
    /// assert_eq!(tiny.widths(), [1, 1, 1, 1]);
    /// ```
    pub fn widths(&self) -> [usize; 4] {
        [0, 1, 2, 3].map(|l| scaled_width(self.base_width, l, self.width_multiplier))
    }

    /// Checks every field, then the number of parameters they give (at most
    /// [`MAX_PARAMETERS`](super::MAX_PARAMETERS), which keeps an absurd configuration from aborting on allocation); the error names the field and the accepted values.
    ///
    /// # Examples
    /// ```
    /// use xnet_model::models::{Upsampling, XNetConfig};
    /// assert!(XNetConfig::default().validate().is_ok());
    /// let e = XNetConfig { base_width: 0, ..Default::default() }.validate().unwrap_err();
    /// assert!(e.to_string().contains("XNet: base_width must be ≥ 1"), "{e}");
    /// // SegNet's index unpooling needs pooled channels that XNet's decoder does not have.
    /// let unpool = XNetConfig { upsampling: Upsampling::IndexUnpool, ..Default::default() };
    /// assert!(unpool.validate().unwrap_err().to_string().contains("index_unpool"));
    /// ```
    pub fn validate(&self) -> Result<()> {
        check_parameter_count(
            "XNet",
            self.parameter_count()?,
            "base_width, width_multiplier and kernel_size",
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
    /// use candle_core::{DType, Device};
    /// use candle_nn::{VarBuilder, VarMap};
    /// use xnet_model::models::{count_trainable_parameters, XNetConfig};
    /// # fn main() -> xnet_model::Result<()> {
    /// // Widths 2, 4, 8, 16: fourteen 3×3 blocks of 9·a·b weights + 3·b (bias, BN scale and
    /// // shift) each, and the 1×1 head 4 → 3 with 15: 11 829 in all.
    /// let cfg = XNetConfig { base_width: 2, ..Default::default() };
    /// assert_eq!(cfg.parameter_count()?, 11_829);
    /// // The same number as a built network's trainable variables.
    /// let varmap = VarMap::new();
    /// cfg.build(VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu))?;
    /// assert_eq!(count_trainable_parameters(&varmap), 11_829);
    /// # Ok(())
    /// # }
    /// ```
    pub fn parameter_count(&self) -> Result<u64> {
        self.validate_fields()?;
        count_parameters(|vb| self.assemble(vb))
    }

    /// The field checks of [`Self::validate`], without the parameter count.
    fn validate_fields(&self) -> Result<()> {
        let bad = |m: String| Err(ModelError::InvalidConfig(format!("XNet: {m}")));
        check_common("XNet", self.in_channels, self.num_classes, self.kernel_size)?;
        if self.base_width == 0
            || !(self.width_multiplier > 0.0 && self.width_multiplier.is_finite())
        {
            return bad(format!(
                "base_width must be ≥ 1 and width_multiplier a positive number, found {} and {}",
                self.base_width,
                readable_number(self.width_multiplier)
            ));
        }
        // The widest level, f3 = base · 8 · multiplier, computed in f64 (no overflow).
        let widest = scaled_width_f64(self.base_width, 3, self.width_multiplier);
        if widest > MAX_CHANNELS as f64 {
            return bad(format!(
                "base_width {} × width_multiplier {:?} gives {widest:.3e} channels at the deepest \
                 level (8 × base_width × width_multiplier); at most {MAX_CHANNELS} are accepted",
                self.base_width, self.width_multiplier
            ));
        }
        if self.upsampling == Upsampling::IndexUnpool {
            return bad("index_unpool does not fit XNet (the decoder's channels differ from the pooled encoder's); use nearest, bilinear or transposed_conv".into());
        }
        self.batch_norm.validate()
    }

    /// FLOPs (2 per multiply-accumulate, convolutions only) of one forward pass of an
    /// `h × w` image (66.43 GFLOP for the paper's XNet at 200×200), saturating at
    /// `u64::MAX` for sizes whose count does not fit.
    ///
    /// # Shapes
    /// `h`, then `w` ([tensor order](crate#sizes)): the input is `[1, 1, h, w]`.
    ///
    /// # Examples
    /// ```
    /// use xnet_model::models::blocks::conv_flops;
    /// use xnet_model::models::{Upsampling, XNetConfig};
    /// let paper = XNetConfig::default();
    /// let flops = paper.forward_flops(200, 200);
    /// assert_eq!((flops as f64 / 1e7).round() / 100.0, 66.43); // GFLOP
    /// // Learnt up-sampling adds its five 2×2 transposed convolutions, on the 25 × 25,
    /// // 50 × 50 and 100 × 100 maps they double (512, 2·256 and 2·128 channels).
    /// let learnt = XNetConfig { upsampling: Upsampling::TransposedConv, ..paper.clone() };
    /// let ups = 2 * conv_flops(512, 512, 2, 25, 25)
    ///     + 2 * conv_flops(512, 512, 2, 50, 50)
    ///     + conv_flops(256, 256, 2, 100, 100);
    /// assert_eq!(learnt.forward_flops(200, 200), flops + ups);
    /// assert_eq!(paper.forward_flops(1 << 22, 1 << 22), u64::MAX);
    /// ```
    pub fn forward_flops(&self, h: usize, w: usize) -> u64 {
        let [f0, f1, f2, f3] = self.widths();
        let (k, c) = (self.kernel_size, self.in_channels);
        let s = |d: usize| (h / d, w / d);
        let cf = |a, b, kk, (y, x): (usize, usize)| conv_flops(a, b, kk, y, x);
        let up = |a, (y, x): (usize, usize)| Up2::flops(self.upsampling, a, a, y, x);
        let two = |f: usize| f.saturating_mul(2);
        flops_sum([
            cf(c, f0, k, s(1)),
            cf(f0, f1, k, s(2)),
            cf(f1, f2, k, s(4)),
            cf(f2, f3, k, s(8)),
            cf(f3, f3, k, s(8)),
            up(f3, s(8)),
            cf(f3, f2, k, s(4)),
            up(two(f2), s(4)),
            cf(two(f2), f1, k, s(2)),
            cf(two(f1), f1, k, s(2)),
            cf(f1, f2, k, s(4)),
            cf(f2, f3, k, s(8)),
            cf(f3, f3, k, s(8)),
            up(f3, s(8)),
            cf(f3, f2, k, s(4)),
            up(two(f2), s(4)),
            cf(two(f2), f1, k, s(2)),
            up(two(f1), s(2)),
            cf(two(f1), f0, k, s(1)),
            cf(two(f0), self.num_classes, 1, s(1)),
        ])
    }

    /// Builds the network; variables are created in (or loaded from) `vb` under the names
    /// `conv1` … `conv14` (each a [`ConvBnRelu`]), `up1` … `up5` (transposed convolutions
    /// only) and `conv15` (the 1×1 classifier).
    ///
    /// # Examples
    /// ```
    /// use candle_core::{DType, Device, Tensor};
    /// use candle_nn::{ModuleT, VarBuilder, VarMap};
    /// use xnet_model::models::XNetConfig;
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let cfg = XNetConfig { base_width: 2, num_classes: 4, ..Default::default() };
    /// let varmap = VarMap::new();
    /// let net = cfg.build(VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu))?;
    /// let x = Tensor::zeros((1, 1, 8, 8), DType::F32, &Device::Cpu)?;
    /// assert_eq!(net.forward_t(&x, false)?.dims(), [1, 4, 8, 8]);
    /// // The classifier `conv15` maps the 2·f0 = 4 concatenated channels to the 4 classes.
    /// let head = varmap.data().lock().map_err(|_| "poisoned")?["conv15.weight"].dims().to_vec();
    /// assert_eq!(head, [4, 4, 1, 1]);
    /// # Ok(())
    /// # }
    /// ```
    pub fn build(&self, vb: VarBuilder) -> Result<XNet> {
        self.validate()?;
        self.assemble(vb)
    }

    /// Creates the layers of a configuration that [`Self::validate`] accepted.
    fn assemble(&self, vb: VarBuilder) -> Result<XNet> {
        let [f0, f1, f2, f3] = self.widths();
        let (k, bn) = (self.kernel_size, self.batch_norm);
        let specs = [
            (self.in_channels, f0),
            (f0, f1),
            (f1, f2),
            (f2, f3),
            (f3, f3),
            (f3, f2),
            (2 * f2, f1),
            (2 * f1, f1),
            (f1, f2),
            (f2, f3),
            (f3, f3),
            (f3, f2),
            (2 * f2, f1),
            (2 * f1, f0),
        ];
        let convs = specs
            .iter()
            .enumerate()
            .map(|(i, &(a, b))| ConvBnRelu::new(a, b, k, bn, vb.pp(format!("conv{}", i + 1))))
            .collect::<Result<Vec<_>>>()?;
        let ups = [f3, 2 * f2, f3, 2 * f2, 2 * f1]
            .iter()
            .enumerate()
            .map(|(i, &c)| Up2::new(self.upsampling, c, c, vb.pp(format!("up{}", i + 1))))
            .collect::<Result<Vec<_>>>()?;
        let head = candle_nn::conv2d(
            2 * f0,
            self.num_classes,
            1,
            Default::default(),
            vb.pp("conv15"),
        )?;
        Ok(XNet {
            cfg: self.clone(),
            convs,
            ups,
            head,
        })
    }
}

/// The XNet network; see the [module documentation](self) for the layer list.
#[derive(Debug, Clone)]
pub struct XNet {
    cfg: XNetConfig,
    convs: Vec<ConvBnRelu>,
    ups: Vec<Up2>,
    head: candle_nn::Conv2d,
}

impl XNet {
    /// The configuration it was built from.
    ///
    /// # Examples
    /// ```
    /// use candle_core::{DType, Device};
    /// use candle_nn::{VarBuilder, VarMap};
    /// use xnet_model::models::{ModelConfig, Segmenter, XNetConfig};
    /// # fn main() -> xnet_model::Result<()> {
    /// let cfg = XNetConfig { base_width: 4, num_classes: 2, ..Default::default() };
    /// let net = cfg.build(VarBuilder::from_varmap(&VarMap::new(), DType::F32, &Device::Cpu))?;
    /// assert_eq!(net.config(), &cfg);
    /// assert_eq!(net.config().widths(), [4, 8, 16, 32]);
    /// // The `Segmenter` trait's `config` gives it wrapped, as checkpoints store it.
    /// assert_eq!(Segmenter::config(&net), ModelConfig::XNet(cfg));
    /// # Ok(())
    /// # }
    /// ```
    pub fn config(&self) -> &XNetConfig {
        &self.cfg
    }
}

impl ModuleT for XNet {
    fn forward_t(&self, x: &Tensor, train: bool) -> candle_core::Result<Tensor> {
        check_input("XNet", x, self.cfg.in_channels, 8)?;
        let c = |i: usize, x: &Tensor| self.convs[i - 1].forward_t(x, train);
        let up = |i: usize, x: &Tensor| self.ups[i - 1].forward(x);
        let a1 = c(1, x)?;
        let a2 = c(2, &crate::ops::max_pool2d(&a1, 2)?)?;
        let a3 = c(3, &crate::ops::max_pool2d(&a2, 2)?)?;
        let x = c(5, &c(4, &crate::ops::max_pool2d(&a3, 2)?)?)?;
        let a6 = c(6, &up(1, &x)?)?;
        let x = crate::kernels::concat_channels(&a3, &a6)?;
        let a7 = c(7, &up(2, &x)?)?;
        let x = crate::kernels::concat_channels(&a2, &a7)?;
        let a8 = c(8, &x)?;
        let a9 = c(9, &crate::ops::max_pool2d(&a8, 2)?)?;
        let x = c(11, &c(10, &crate::ops::max_pool2d(&a9, 2)?)?)?;
        let a12 = c(12, &up(3, &x)?)?;
        let x = crate::kernels::concat_channels(&a9, &a12)?;
        let a13 = c(13, &up(4, &x)?)?;
        let x = crate::kernels::concat_channels(&a8, &a13)?;
        let a14 = c(14, &up(5, &x)?)?;
        let x = crate::kernels::concat_channels(&a1, &a14)?;
        super::blocks::head_forward(&self.head, &x)
    }
}

impl Segmenter for XNet {
    fn num_classes(&self) -> usize {
        self.cfg.num_classes
    }
    fn size_multiple(&self) -> usize {
        8
    }
    fn config(&self) -> ModelConfig {
        ModelConfig::XNet(self.cfg.clone())
    }
    fn fold_batch_norm(&mut self) -> Result<usize> {
        let mut n = 0;
        for b in &mut self.convs {
            n += usize::from(b.fold_batch_norm()?);
        }
        Ok(n)
    }
}
