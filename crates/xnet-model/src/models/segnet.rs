//! SegNet (Badrinarayanan, Kendall, Cipolla 2017) with true pooling-index unpooling.
//!
//! The encoder is a list of levels, each a few [`ConvBnRelu`] followed by a 2×2 max-pool that
//! records its arg-max indices ([`crate::ops::max_pool2d_with_indices`]). Optional centre
//! blocks run at the lowest resolution. The decoder visits the levels deepest first: it
//! doubles the resolution — by default with [`crate::ops::max_unpool2d`] at the recorded
//! indices — then runs that level's decoder blocks. A 1×1 convolution gives the logits.
//!
//! Presets: [`SegNetConfig::basic`] (SegNet-Basic: 4 levels of one 7×7 conv, 64 channels),
//! [`SegNetConfig::vgg16`] (the VGG-16-depth SegNet: 13 encoder convs, 5 levels) and
//! [`SegNetConfig::simple`] (the XNet paper's comparator `SimpleSegNet.py`, nearest
//! up-sampling).
//!
//! Variable names: `enc{l}.conv{j}`, `center.conv{j}`, `up{l}` (transposed convolutions only),
//! `dec{l}.conv{j}`, `head` (levels and blocks 1-based).

use super::blocks::{
    check_common, check_input, conv_flops, pow2_saturating, shr_or_zero, BatchNormSettings,
    ConvBnRelu, Up2, Upsampling, MAX_CHANNELS,
};
use super::parameter_count::{check_parameter_count, count_parameters};
use super::{ModelConfig, Segmenter};
use crate::ops::{max_pool2d_with_indices, max_unpool2d};
use crate::{ModelError, Result};
use candle_core::{ModuleT, Tensor};
use candle_nn::VarBuilder;

/// The most blocks one SegNet level (or its centre) may have (VGG-16 has 3).
const MAX_BLOCKS: usize = 64;

/// Configuration of SegNet: explicit output widths of every block. `Default` is
/// [`SegNetConfig::basic`].
///
/// # Examples
/// ```
/// use xnet_model::models::SegNetConfig;
/// assert!(SegNetConfig::vgg16().validate().is_ok());
/// assert_eq!(SegNetConfig::vgg16().size_multiple(), 32);
/// ```
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct SegNetConfig {
    /// Input channels.
    pub in_channels: usize,
    /// Output classes.
    pub num_classes: usize,
    /// Output widths of the blocks of each encoder level (top level first); every level ends
    /// with a 2×2 max-pool.
    pub encoder: Vec<Vec<usize>>,
    /// Output widths of blocks at the lowest resolution, between encoder and decoder.
    pub center: Vec<usize>,
    /// Output widths of the blocks of each decoder level, indexed like `encoder` (the
    /// decoder runs `decoder[L−1]` first, right after up-sampling to level `L−1`'s size).
    pub decoder: Vec<Vec<usize>>,
    /// Convolution kernel size (odd).
    pub kernel_size: usize,
    /// `index_unpool` (SegNet), `nearest`, `bilinear` or `transposed_conv`.
    pub upsampling: Upsampling,
    /// Batch-norm settings.
    pub batch_norm: BatchNormSettings,
}

impl Default for SegNetConfig {
    fn default() -> Self {
        Self::basic()
    }
}

impl SegNetConfig {
    /// SegNet-Basic: four levels of one 7×7 block of 64 channels each way, index unpooling.
    ///
    /// # Examples
    /// ```
    /// use xnet_model::models::SegNetConfig;
    /// # fn main() -> xnet_model::Result<()> {
    /// let basic = SegNetConfig::basic();
    /// assert_eq!(basic.size_multiple(), 16); // four 2×2 poolings
    /// // Eight 7×7 blocks (49·a·b weights + 3·b), 1→64 then seven 64→64, and a 1×1 head
    /// // 64→3: 3 328 + 7 · 200 896 + 195.
    /// assert_eq!(basic.parameter_count()?, 1_409_795);
    /// # Ok(())
    /// # }
    /// ```
    pub fn basic() -> Self {
        Self {
            in_channels: 1,
            num_classes: 3,
            encoder: vec![vec![64]; 4],
            center: vec![],
            decoder: vec![vec![64]; 4],
            kernel_size: 7,
            upsampling: Upsampling::IndexUnpool,
            batch_norm: BatchNormSettings::default(),
        }
    }

    /// The VGG-16-depth SegNet: encoder 64², 128², 256³, 512³, 512³ (13 convs), mirrored
    /// decoder whose last block of each level narrows to the next level's width, 3×3 kernels,
    /// index unpooling.
    ///
    /// # Examples
    /// ```
    /// use candle_core::{DType, Device, Tensor};
    /// use candle_nn::{ModuleT, VarBuilder, VarMap};
    /// use xnet_model::models::SegNetConfig;
    /// # fn main() -> xnet_model::Result<()> {
    /// let vgg = SegNetConfig::vgg16();
    /// assert_eq!(vgg.encoder.iter().map(Vec::len).sum::<usize>(), 13);
    /// assert_eq!(vgg.size_multiple(), 32); // five 2×2 poolings
    /// // Each decoder level ends with the channels that the level above pooled.
    /// let ends: Vec<usize> = vgg.decoder.iter().map(|l| l[l.len() - 1]).collect();
    /// assert_eq!(ends, [64, 64, 128, 256, 512]);
    /// assert!(vgg.validate().is_ok());
    ///
    /// // A sixteenth of the widths runs on a CPU in no time.
    /// let small = SegNetConfig::vgg16().narrowed(16);
    /// let net = small.build(VarBuilder::from_varmap(&VarMap::new(), DType::F32, &Device::Cpu))?;
    /// let x = Tensor::zeros((1, 1, 32, 32), DType::F32, &Device::Cpu)?;
    /// assert_eq!(net.forward_t(&x, false)?.dims(), &[1, 3, 32, 32]);
    /// # Ok(())
    /// # }
    /// ```
    pub fn vgg16() -> Self {
        Self {
            in_channels: 1,
            num_classes: 3,
            encoder: vec![
                vec![64; 2],
                vec![128; 2],
                vec![256; 3],
                vec![512; 3],
                vec![512; 3],
            ],
            center: vec![],
            decoder: vec![
                vec![64, 64],
                vec![128, 64],
                vec![256, 256, 128],
                vec![512, 512, 256],
                vec![512, 512, 512],
            ],
            kernel_size: 3,
            upsampling: Upsampling::IndexUnpool,
            batch_norm: BatchNormSettings::default(),
        }
    }

    /// The XNet paper's SegNet comparator (`SimpleSegNet.py`): encoder 64, 128, 256 with
    /// pools, centre 512, 512, decoder 256, 128, 64 after nearest ×2 up-sampling.
    ///
    /// # Examples
    /// ```
    /// use candle_core::{DType, Device, Tensor};
    /// use candle_nn::{ModuleT, VarBuilder, VarMap};
    /// use xnet_model::models::{SegNetConfig, Upsampling};
    /// # fn main() -> xnet_model::Result<()> {
    /// let simple = SegNetConfig::simple();
    /// assert_eq!((simple.upsampling, simple.size_multiple()), (Upsampling::Nearest, 8));
    /// assert_eq!(simple.center, [512, 512]);
    ///
    /// let small = simple.narrowed(32); // widths 2, 4, 8 and a centre of 16
    /// let net = small.build(VarBuilder::from_varmap(&VarMap::new(), DType::F32, &Device::Cpu))?;
    /// let x = Tensor::zeros((2, 1, 16, 16), DType::F32, &Device::Cpu)?;
    /// assert_eq!(net.forward_t(&x, false)?.dims(), &[2, 3, 16, 16]);
    /// # Ok(())
    /// # }
    /// ```
    pub fn simple() -> Self {
        Self {
            in_channels: 1,
            num_classes: 3,
            encoder: vec![vec![64], vec![128], vec![256]],
            center: vec![512, 512],
            decoder: vec![vec![64], vec![128], vec![256]],
            kernel_size: 3,
            upsampling: Upsampling::Nearest,
            batch_norm: BatchNormSettings::default(),
        }
    }

    /// Divides every width by `divisor` (rounding up, at least 1): a CPU-sized variant.
    ///
    /// # Examples
    /// ```
    /// use xnet_model::models::SegNetConfig;
    /// let small = SegNetConfig::simple().narrowed(3);
    /// // 64, 128, 256 and 512 divided by 3, rounded up.
    /// assert_eq!(small.encoder, [[22], [43], [86]]);
    /// assert_eq!(small.center, [171, 171]);
    /// assert!(small.validate().is_ok());
    /// assert_eq!(SegNetConfig::basic().narrowed(0), SegNetConfig::basic()); // 0 acts as 1
    /// ```
    pub fn narrowed(mut self, divisor: usize) -> Self {
        let d = divisor.max(1);
        let f = |w: &mut usize| *w = w.div_ceil(d).max(1);
        self.encoder.iter_mut().flatten().for_each(f);
        self.center.iter_mut().for_each(f);
        self.decoder.iter_mut().flatten().for_each(f);
        self
    }

    /// Channels entering the up-sampling of each level (deepest first visited) and leaving
    /// the decoder: `(entering[l], out)`.
    fn channel_walk(&self) -> (Vec<usize>, usize) {
        let levels = self.encoder.len();
        let mut c = self.in_channels;
        for lvl in &self.encoder {
            c = *lvl.last().unwrap_or(&c);
        }
        c = *self.center.last().unwrap_or(&c);
        let mut entering = vec![0; levels];
        for l in (0..levels).rev() {
            entering[l] = c;
            c = *self.decoder[l].last().unwrap_or(&c);
        }
        (entering, c)
    }

    /// Checks every field, then the number of parameters they give (at most
    /// [`MAX_PARAMETERS`](super::MAX_PARAMETERS), which keeps an absurd configuration from aborting on allocation), including that index unpooling meets equal channel counts.
    ///
    /// # Examples
    /// ```
    /// use xnet_model::models::SegNetConfig;
    /// let mut cfg = SegNetConfig::basic();
    /// cfg.decoder.pop(); // three decoder levels for four encoder levels
    /// let e = cfg.validate().unwrap_err().to_string();
    /// assert!(e.contains("decoder must have as many levels as the encoder (4), found 3"), "{e}");
    /// ```
    pub fn validate(&self) -> Result<()> {
        check_parameter_count(
            "SegNet",
            self.parameter_count()?,
            "the encoder, center and decoder widths and kernel_size",
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
    /// use xnet_model::models::{count_trainable_parameters, SegNetConfig};
    /// # fn main() -> xnet_model::Result<()> {
    /// // One level of one 3×3 block each way, 2 channels: 1→2 (18 weights, then bias,
    /// // batch-norm scale and shift: 24) down, 2→2 (42) up, and the 1×1 head 2→3 (9).
    /// let cfg = SegNetConfig {
    ///     encoder: vec![vec![2]],
    ///     decoder: vec![vec![2]],
    ///     kernel_size: 3,
    ///     ..SegNetConfig::basic()
    /// };
    /// assert_eq!(cfg.parameter_count()?, 24 + 42 + 9);
    /// let varmap = VarMap::new();
    /// cfg.build(VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu))?;
    /// assert_eq!(count_trainable_parameters(&varmap), 75);
    ///
    /// // SegNet-VGG16 at full width: 14 721 984 in the encoder, 14 756 928 in the decoder
    /// // and 195 in the head.
    /// assert_eq!(SegNetConfig::vgg16().parameter_count()?, 29_479_107);
    /// // A block of width 0 is refused, not counted.
    /// let empty = SegNetConfig { center: vec![0], ..cfg };
    /// assert!(empty.parameter_count().is_err());
    /// # Ok(())
    /// # }
    /// ```
    pub fn parameter_count(&self) -> Result<u64> {
        self.validate_fields()?;
        count_parameters(|vb| self.assemble(vb))
    }

    /// The field checks of [`Self::validate`], without the parameter count.
    fn validate_fields(&self) -> Result<()> {
        let bad = |m: String| Err(ModelError::InvalidConfig(format!("SegNet: {m}")));
        check_common(
            "SegNet",
            self.in_channels,
            self.num_classes,
            self.kernel_size,
        )?;
        if self.encoder.is_empty() || self.encoder.len() > 8 {
            return bad(format!(
                "encoder must have 1 to 8 levels, found {}",
                self.encoder.len()
            ));
        }
        if self.decoder.len() != self.encoder.len() {
            return bad(format!(
                "decoder must have as many levels as the encoder ({}), found {}",
                self.encoder.len(),
                self.decoder.len()
            ));
        }
        if let Some(l) = self.encoder.iter().position(|l| l.is_empty()) {
            return bad(format!("encoder level {} has no blocks", l + 1));
        }
        let all = self
            .encoder
            .iter()
            .chain(self.decoder.iter())
            .flatten()
            .chain(self.center.iter());
        if let Some(w) = all.into_iter().find(|&&w| !(1..=MAX_CHANNELS).contains(&w)) {
            return bad(format!(
                "every block width must be 1 to {MAX_CHANNELS}, found {w}"
            ));
        }
        let blocks = self
            .encoder
            .iter()
            .chain(self.decoder.iter())
            .map(Vec::len)
            .chain(std::iter::once(self.center.len()));
        if let Some(n) = blocks.into_iter().find(|&n| n > MAX_BLOCKS) {
            return bad(format!(
                "a level (or the centre) may have at most {MAX_BLOCKS} blocks, found {n}"
            ));
        }
        if self.upsampling == Upsampling::IndexUnpool {
            let (entering, _) = self.channel_walk();
            for (l, (&c, enc)) in entering.iter().zip(&self.encoder).enumerate() {
                let pooled = *enc.last().unwrap_or(&0);
                if c != pooled {
                    return bad(format!(
                        "index_unpool at level {} receives {c} channels but its pooling indices have {pooled}; make the blocks before it end with {pooled} channels or use another up-sampling",
                        l + 1
                    ));
                }
            }
        }
        self.batch_norm.validate()
    }

    /// Inputs must have height and width multiples of `2^levels`.
    ///
    /// # Examples
    /// ```
    /// use candle_core::{DType, Device, Tensor};
    /// use candle_nn::{ModuleT, VarBuilder, VarMap};
    /// use xnet_model::models::SegNetConfig;
    /// # fn main() -> xnet_model::Result<()> {
    /// let cfg = SegNetConfig::basic().narrowed(32); // four levels of 2 channels
    /// assert_eq!(cfg.size_multiple(), 16);
    /// let net = cfg.build(VarBuilder::from_varmap(&VarMap::new(), DType::F32, &Device::Cpu))?;
    /// let ok = Tensor::zeros((1, 1, 16, 32), DType::F32, &Device::Cpu)?;
    /// assert_eq!(net.forward_t(&ok, false)?.dims(), &[1, 3, 16, 32]);
    /// let odd = Tensor::zeros((1, 1, 16, 24), DType::F32, &Device::Cpu)?;
    /// let e = net.forward_t(&odd, false).unwrap_err().to_string();
    /// assert!(e.contains("positive multiples of 16"), "{e}");
    /// # Ok(())
    /// # }
    /// ```
    pub fn size_multiple(&self) -> usize {
        pow2_saturating(self.encoder.len())
    }

    /// FLOPs (2 per multiply-accumulate, convolutions) of one `h × w` forward pass,
    /// saturating at `u64::MAX` for sizes whose count does not fit.
    ///
    /// # Shapes
    /// `h`, then `w` ([tensor order](crate#sizes)): the input is `[1, 1, h, w]`.
    ///
    /// # Examples
    /// ```
    /// use xnet_model::models::{SegNetConfig, Upsampling};
    /// // One level of one 3×3 block of 2 channels each way.
    /// let cfg = SegNetConfig {
    ///     encoder: vec![vec![2]],
    ///     decoder: vec![vec![2]],
    ///     kernel_size: 3,
    ///     ..SegNetConfig::basic()
    /// };
    /// // At 8 × 8 (64 pixels), 2 FLOPs per multiply-accumulate: the block 1→2 (9 · 2 per
    /// // pixel), the block 2→2 (9 · 4) and the 1×1 head 2→3 (6); unpooling costs none.
    /// assert_eq!(cfg.forward_flops(8, 8), 2 * 64 * (18 + 36 + 6));
    /// // A transposed convolution (2×2, 2→2 channels, on the 4 × 4 pooled map) does.
    /// let learnt = SegNetConfig { upsampling: Upsampling::TransposedConv, ..cfg.clone() };
    /// assert_eq!(learnt.forward_flops(8, 8), cfg.forward_flops(8, 8) + 2 * 16 * (4 * 4));
    /// assert_eq!(SegNetConfig::vgg16().forward_flops(1 << 30, 1 << 30), u64::MAX);
    /// ```
    pub fn forward_flops(&self, h: usize, w: usize) -> u64 {
        let k = self.kernel_size;
        let levels = self.encoder.len();
        let s = |l: usize| (shr_or_zero(h, l), shr_or_zero(w, l));
        let mut f = 0u64;
        let mut c = self.in_channels;
        for (l, lvl) in self.encoder.iter().enumerate() {
            for &o in lvl {
                f = f.saturating_add(conv_flops(c, o, k, s(l).0, s(l).1));
                c = o;
            }
        }
        for &o in &self.center {
            f = f.saturating_add(conv_flops(c, o, k, s(levels).0, s(levels).1));
            c = o;
        }
        for l in (0..levels).rev() {
            let (y, x) = s(l + 1);
            f = f.saturating_add(Up2::flops(self.upsampling, c, c, y, x));
            // `get`: a configuration that `validate` refuses may have fewer decoder levels.
            for &o in self.decoder.get(l).into_iter().flatten() {
                f = f.saturating_add(conv_flops(c, o, k, s(l).0, s(l).1));
                c = o;
            }
        }
        f.saturating_add(conv_flops(c, self.num_classes, 1, h, w))
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
    /// use xnet_model::models::SegNetConfig;
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// // Two levels; each decoder level ends with the channels its unpooling indices have.
    /// let cfg = SegNetConfig {
    ///     encoder: vec![vec![4], vec![8]],
    ///     decoder: vec![vec![4], vec![4]],
    ///     kernel_size: 3,
    ///     ..SegNetConfig::basic()
    /// };
    /// let varmap = VarMap::new();
    /// let net = cfg.build(VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu))?;
    /// let x = Tensor::randn(0f32, 1.0, (1, 1, 16, 16), &Device::Cpu)?;
    /// assert_eq!(net.forward_t(&x, false)?.dims(), &[1, 3, 16, 16]);
    /// let vars = varmap.data().lock().map_err(|_| "poisoned")?;
    /// assert_eq!(vars["enc2.conv1.conv.weight"].dims(), &[8, 4, 3, 3]);
    /// assert_eq!(vars["dec2.conv1.conv.weight"].dims(), &[4, 8, 3, 3]);
    /// assert_eq!(vars["head.weight"].dims(), &[3, 4, 1, 1]);
    ///
    /// // Level 1's decoder would receive 6 channels at indices pooled from 4.
    /// let bad = SegNetConfig { decoder: vec![vec![4], vec![6]], ..cfg };
    /// let e = bad
    ///     .build(VarBuilder::from_varmap(&VarMap::new(), DType::F32, &Device::Cpu))
    ///     .unwrap_err()
    ///     .to_string();
    /// assert!(e.contains("index_unpool at level 1 receives 6 channels"), "{e}");
    /// # Ok(())
    /// # }
    /// ```
    pub fn build(&self, vb: VarBuilder) -> Result<SegNet> {
        self.validate()?;
        self.assemble(vb)
    }

    /// Creates the layers of a configuration that [`Self::validate`] accepted.
    fn assemble(&self, vb: VarBuilder) -> Result<SegNet> {
        let (k, bn) = (self.kernel_size, self.batch_norm);
        let mut c = self.in_channels;
        let mut chain = |widths: &[usize], vb: VarBuilder| -> Result<Vec<ConvBnRelu>> {
            let mut out = Vec::with_capacity(widths.len());
            for (j, &o) in widths.iter().enumerate() {
                out.push(ConvBnRelu::new(
                    c,
                    o,
                    k,
                    bn,
                    vb.pp(format!("conv{}", j + 1)),
                )?);
                c = o;
            }
            Ok(out)
        };
        let mut encoder = Vec::new();
        for (l, lvl) in self.encoder.iter().enumerate() {
            encoder.push(chain(lvl, vb.pp(format!("enc{}", l + 1)))?);
        }
        let center = chain(&self.center, vb.pp("center"))?;
        let levels = self.encoder.len();
        let mut decoder: Vec<(Option<Up2>, Vec<ConvBnRelu>)> = Vec::with_capacity(levels);
        let (entering, _) = self.channel_walk();
        for l in (0..levels).rev() {
            let up = match self.upsampling {
                Upsampling::IndexUnpool => None,
                kind => Some(Up2::new(
                    kind,
                    entering[l],
                    entering[l],
                    vb.pp(format!("up{}", l + 1)),
                )?),
            };
            decoder.push((up, chain(&self.decoder[l], vb.pp(format!("dec{}", l + 1)))?));
        }
        decoder.reverse();
        let head = candle_nn::conv2d(c, self.num_classes, 1, Default::default(), vb.pp("head"))?;
        Ok(SegNet {
            cfg: self.clone(),
            encoder,
            center,
            decoder,
            head,
        })
    }
}

/// The SegNet network.
#[derive(Debug, Clone)]
pub struct SegNet {
    cfg: SegNetConfig,
    encoder: Vec<Vec<ConvBnRelu>>,
    center: Vec<ConvBnRelu>,
    /// Per level (top first): up-sampling (None = index unpooling) and blocks.
    decoder: Vec<(Option<Up2>, Vec<ConvBnRelu>)>,
    head: candle_nn::Conv2d,
}

fn run(blocks: &[ConvBnRelu], x: Tensor, train: bool) -> candle_core::Result<Tensor> {
    blocks.iter().try_fold(x, |x, b| b.forward_t(&x, train))
}

impl ModuleT for SegNet {
    fn forward_t(&self, x: &Tensor, train: bool) -> candle_core::Result<Tensor> {
        check_input("SegNet", x, self.cfg.in_channels, self.cfg.size_multiple())?;
        let unpool = self.cfg.upsampling == Upsampling::IndexUnpool;
        let mut pools = Vec::with_capacity(self.encoder.len());
        let mut x = x.clone();
        for lvl in &self.encoder {
            let y = run(lvl, x, train)?;
            let (_, _, h, w) = y.dims4()?;
            x = if unpool {
                let (v, idx) = max_pool2d_with_indices(&y, 2)?;
                pools.push(Some((idx, (h, w))));
                v
            } else {
                pools.push(None);
                crate::ops::max_pool2d(&y, 2)?
            };
        }
        x = run(&self.center, x, train)?;
        for (l, (up, blocks)) in self.decoder.iter().enumerate().rev() {
            x = match (up, &pools[l]) {
                (Some(up), _) => up.forward(&x)?,
                (None, Some((idx, size))) => max_unpool2d(&x, idx, *size)?,
                (None, None) => {
                    candle_core::bail!("SegNet: missing pooling indices at level {}", l + 1)
                }
            };
            x = run(blocks, x, train)?;
        }
        super::blocks::head_forward(&self.head, &x)
    }
}

impl Segmenter for SegNet {
    fn num_classes(&self) -> usize {
        self.cfg.num_classes
    }
    fn size_multiple(&self) -> usize {
        self.cfg.size_multiple()
    }
    fn config(&self) -> ModelConfig {
        ModelConfig::SegNet(self.cfg.clone())
    }
    fn fold_batch_norm(&mut self) -> Result<usize> {
        let mut n = 0;
        let dec = self.decoder.iter_mut().flat_map(|(_, b)| b.iter_mut());
        for b in self
            .encoder
            .iter_mut()
            .flatten()
            .chain(self.center.iter_mut())
            .chain(dec)
        {
            n += usize::from(b.fold_batch_norm()?);
        }
        Ok(n)
    }
}
