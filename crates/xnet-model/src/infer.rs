//! Inference: class probabilities of whole images and of large radiographs by tiles.
//!
//! [`predict_proba`] turns one normalised image plane into `C × H × W` probabilities at the
//! input's own size:
//!
//! - **Inputs that fit in a tile** (`height ≤ tile_size` and `width ≤ tile_size`) run in one
//!   forward pass. With [`SmallInput::Pad`] (the default) the plane is padded by edge
//!   replication up to the next multiple of the model's
//!   [`size_multiple`](crate::Segmenter::size_multiple) and the probabilities are cropped back;
//!   with [`SmallInput::Resize`] it is resized (bilinear, half-pixel centres as PyTorch's
//!   `align_corners=False`) to the size the model was trained at and the probabilities are
//!   resized back (a convex combination, so they still sum to 1).
//! - **Larger inputs** (2000×2000 radiographs and up) run tile by tile: `tile_size²` windows
//!   with `overlap` pixels between neighbours, `batch_size` tiles per forward pass. Each
//!   tile's probabilities are blended with a separable window that is 0 on the outer
//!   `overlap/4` pixels of every edge shared with a neighbour (where the network sees zero
//!   padding instead of image), rises as a half cosine over the next `overlap/2` pixels and
//!   is 1 elsewhere, including along the image border. A network whose receptive field
//!   radius is at most `overlap/4` therefore gives exactly the whole-image result; wider ones
//!   get smooth seams. Memory for activations is bounded by `batch_size` tiles; only the
//!   `C × H × W` output and an `H × W` weight plane scale with the image.
//!
//! - **Flip averaging** ([`InferenceOptions::flip_average`], off by default): the
//!   probabilities are averaged over the input and its mirror images (left–right, and with
//!   [`FlipAverage::HorizontalVertical`] also top–bottom and both), each mirrored back before
//!   the average. It costs one pass per copy and suits networks trained with flips (the XNet
//!   augmentation pipeline flips both ways); the result is equivariant to the flips averaged.
//!
//! The input plane must already be prepared the way the training data were (the caller's
//! job: e.g. `xray-data`'s resizing and normalisation); this module does no intensity
//! scaling. For checkpoints of the `train` job, which record how, see the crate
//! documentation's section on them ([`crate`]).

use candle_core::{Device, Tensor};
use serde::{Deserialize, Serialize};

use crate::error::readable_number;
use crate::{ModelError, Result, Segmenter};

/// How inputs that fit in one tile are brought to a size the network accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SmallInput {
    /// Pad by edge replication to a multiple of `size_multiple`, crop the output.
    #[default]
    Pad,
    /// Resize (bilinear) to `height × width` (e.g. the training size, 200×200 for XNet),
    /// resize the probabilities back. Each side must be a positive multiple of
    /// `size_multiple` and at most [`MAX_INPUT_SIDE`]: [`InferenceOptions::validate`]
    /// refuses a larger target as a mistyped option.
    Resize {
        /// Network input height (a multiple of `size_multiple`, at most [`MAX_INPUT_SIDE`]).
        height: usize,
        /// Network input width (a multiple of `size_multiple`, at most [`MAX_INPUT_SIDE`]).
        width: usize,
    },
}

/// Test-time augmentation by mirror images: which flipped copies of the input
/// [`predict_proba`] averages the probabilities over.
///
/// JSON (e.g. in checkpoint metadata): `"off"`, `"horizontal"`, `"horizontal_vertical"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FlipAverage {
    /// One pass on the input as it is.
    #[default]
    Off,
    /// The input and its left–right mirror image (2 passes).
    Horizontal,
    /// The input, its left–right, top–bottom and both-ways mirror images (4 passes).
    HorizontalVertical,
}

impl FlipAverage {
    /// The copies averaged, as `(left–right, top–bottom)` flips; the first is the input.
    ///
    /// # Examples
    /// ```
    /// use xnet_model::infer::FlipAverage;
    /// assert_eq!(FlipAverage::Off.flips(), &[(false, false)]);
    /// assert_eq!(FlipAverage::HorizontalVertical.flips().len(), 4);
    /// ```
    pub fn flips(self) -> &'static [(bool, bool)] {
        match self {
            FlipAverage::Off => &[(false, false)],
            FlipAverage::Horizontal => &[(false, false), (true, false)],
            FlipAverage::HorizontalVertical => {
                &[(false, false), (true, false), (false, true), (true, true)]
            }
        }
    }
}

impl std::fmt::Display for FlipAverage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            FlipAverage::Off => "off",
            FlipAverage::Horizontal => "horizontal",
            FlipAverage::HorizontalVertical => "horizontal-vertical",
        })
    }
}

impl std::str::FromStr for FlipAverage {
    type Err = ModelError;

    /// `off`, `horizontal` (or `h`), `horizontal-vertical` (or `horizontal_vertical`, `hv`).
    ///
    /// # Examples
    /// ```
    /// use xnet_model::infer::FlipAverage;
    /// assert_eq!("hv".parse::<FlipAverage>()?, FlipAverage::HorizontalVertical);
    /// assert!("diagonal".parse::<FlipAverage>().is_err());
    /// # Ok::<(), xnet_model::ModelError>(())
    /// ```
    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().replace('_', "-").as_str() {
            "off" | "none" => Ok(FlipAverage::Off),
            "horizontal" | "h" => Ok(FlipAverage::Horizontal),
            "horizontal-vertical" | "hv" => Ok(FlipAverage::HorizontalVertical),
            _ => Err(ModelError::InvalidConfig(format!(
                "flip averaging must be off, horizontal or horizontal-vertical, got {s:?}"
            ))),
        }
    }
}

/// Largest side of a [`SmallInput::Resize`] target that [`InferenceOptions::validate`]
/// accepts. The network input is a few hundred pixels (the shipped weights use 128, the XNet
/// paper 200); a larger target is a mistyped option, and one 8192 × 8192 plane is already
/// 256 MiB per image and class. The workspace's preprocessing (`xray_seg::prepare`) caps the
/// network input at this same side.
pub const MAX_INPUT_SIDE: usize = 8192;

/// Options of [`predict_proba`].
#[derive(Debug, Clone)]
pub struct InferenceOptions {
    /// Side of the square tiles; images larger than this in either dimension are tiled.
    /// Must be a multiple of the model's `size_multiple`.
    pub tile_size: usize,
    /// Overlap between neighbouring tiles, pixels (< `tile_size`).
    pub overlap: usize,
    /// Tiles (or images) per forward pass.
    pub batch_size: usize,
    /// Policy for inputs that fit in one tile.
    pub small_input: SmallInput,
    /// Device to run on (the model's).
    pub device: Device,
    /// Average the probabilities over mirror images of the input (test-time augmentation).
    pub flip_average: FlipAverage,
}

impl Default for InferenceOptions {
    fn default() -> Self {
        Self {
            tile_size: 512,
            overlap: 64,
            batch_size: 4,
            small_input: SmallInput::Pad,
            device: Device::Cpu,
            flip_average: FlipAverage::Off,
        }
    }
}

impl InferenceOptions {
    /// Checks the options against a model's `size_multiple`.
    ///
    /// # Errors
    /// [`ModelError::InvalidConfig`] for a `tile_size` that is zero or not a multiple of
    /// `size_multiple`, an `overlap` not below `tile_size`, a zero `batch_size`, or a
    /// [`SmallInput::Resize`] target with a side that is zero, not a multiple of
    /// `size_multiple` or larger than [`MAX_INPUT_SIDE`].
    ///
    /// # Examples
    /// ```
    /// use xnet_model::infer::{InferenceOptions, SmallInput, MAX_INPUT_SIDE};
    /// // The defaults (512-pixel tiles, 64 overlap) fit a network of size multiple 16.
    /// let opts = InferenceOptions::default();
    /// opts.validate(16)?;
    /// // A resize target at the cap is accepted; one past it is refused.
    /// let at_cap = InferenceOptions {
    ///     small_input: SmallInput::Resize { height: 200, width: MAX_INPUT_SIDE },
    ///     ..InferenceOptions::default()
    /// };
    /// at_cap.validate(8)?;
    /// let too_large = InferenceOptions {
    ///     small_input: SmallInput::Resize { height: 200, width: MAX_INPUT_SIDE + 8 },
    ///     ..InferenceOptions::default()
    /// };
    /// let e = too_large.validate(8).unwrap_err();
    /// assert!(e.to_string().contains("larger than the largest network input"), "{e}");
    /// // Tiles that are not a multiple of the network's size multiple are refused too.
    /// assert!(InferenceOptions { tile_size: 500, ..opts }.validate(16).is_err());
    /// # Ok::<(), xnet_model::ModelError>(())
    /// ```
    pub fn validate(&self, size_multiple: usize) -> Result<()> {
        let m = size_multiple.max(1);
        if self.tile_size == 0 || !self.tile_size.is_multiple_of(m) {
            return Err(ModelError::InvalidConfig(format!(
                "tile_size {} must be a positive multiple of the model's size multiple {m}",
                self.tile_size
            )));
        }
        if self.overlap >= self.tile_size {
            return Err(ModelError::InvalidConfig(format!(
                "overlap {} must be smaller than tile_size {}",
                self.overlap, self.tile_size
            )));
        }
        if self.batch_size == 0 {
            return Err(ModelError::InvalidConfig("batch_size must be ≥ 1".into()));
        }
        if let SmallInput::Resize { height, width } = self.small_input {
            if height == 0 || width == 0 || height % m != 0 || width % m != 0 {
                return Err(ModelError::InvalidConfig(format!(
                    "resize target {height}×{width} must be positive multiples of the model's \
                     size multiple {m}"
                )));
            }
            if height > MAX_INPUT_SIDE || width > MAX_INPUT_SIDE {
                return Err(ModelError::InvalidConfig(format!(
                    "resize target {height}×{width} is larger than the largest network input \
                     accepted, {MAX_INPUT_SIDE}×{MAX_INPUT_SIDE} (infer::MAX_INPUT_SIDE)"
                )));
            }
        }
        Ok(())
    }
}

/// `C × H × W` class probabilities of one normalised `height × width` plane (row-major).
///
/// # Errors
/// As [`predict_proba_batch`].
///
/// # Examples
/// ```
/// # use candle_core::{DType, Device};
/// # use candle_nn::{VarBuilder, VarMap};
/// # use xnet_model::models::{ModelConfig, XNetConfig};
/// use xnet_model::infer::{predict_proba, InferenceOptions};
/// # fn main() -> xnet_model::Result<()> {
/// # let varmap = VarMap::new();
/// # let cfg = ModelConfig::XNet(XNetConfig { base_width: 2, ..Default::default() });
/// # let model = cfg.build(VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu))?;
/// let (h, w) = (21, 30); // not a multiple of 8: padded, then cropped
/// let image = vec![0.5f32; h * w];
/// let probs = predict_proba(model.as_ref(), &image, h, w, &InferenceOptions::default())?;
/// assert_eq!(probs.len(), 3 * h * w);
/// # Ok(())
/// # }
/// ```
pub fn predict_proba(
    model: &dyn Segmenter,
    image: &[f32],
    height: usize,
    width: usize,
    opts: &InferenceOptions,
) -> Result<Vec<f32>> {
    predict_proba_batch(model, image, 1, height, width, opts)
}

/// `N × C × H × W` probabilities of `n` equal-size planes (`N × H × W`, row-major), batched
/// `batch_size` images (or tiles) per forward pass; with [`InferenceOptions::flip_average`]
/// the mean over the mirrored copies.
///
/// # Errors
/// [`ModelError::InvalidConfig`] for options that do not fit the model
/// ([`InferenceOptions::validate`]); [`ModelError::InvalidInput`] for a zero dimension,
/// dimensions whose product overflows `usize`, an `images` length other than
/// `n × height × width`, or a non-finite value (naming the image and pixel), and for a
/// network whose output is NaN or infinite (finite weights of a damaged checkpoint, such as
/// one of 1.7e38, can carry it past the `f32` range; naming the image, class and pixel);
/// candle's errors from the forward pass.
///
/// # Examples
/// ```
/// # use candle_core::{DType, Device};
/// # use candle_nn::{VarBuilder, VarMap};
/// # use xnet_model::models::{ModelConfig, XNetConfig};
/// use xnet_model::infer::{predict_proba_batch, FlipAverage, InferenceOptions};
/// # fn main() -> xnet_model::Result<()> {
/// # let varmap = VarMap::new();
/// # let cfg = ModelConfig::XNet(XNetConfig { base_width: 2, ..Default::default() });
/// # let model = cfg.build(VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu))?;
/// let (n, h, w) = (2, 16, 24);
/// let images: Vec<f32> = (0..n * h * w).map(|i| (i % 7) as f32 / 7.0).collect();
/// let opts = InferenceOptions {
///     flip_average: FlipAverage::Horizontal,
///     ..InferenceOptions::default()
/// };
/// let probs = predict_proba_batch(model.as_ref(), &images, n, h, w, &opts)?;
/// assert_eq!(probs.len(), n * 3 * h * w);
/// # Ok(())
/// # }
/// ```
pub fn predict_proba_batch(
    model: &dyn Segmenter,
    images: &[f32],
    n: usize,
    height: usize,
    width: usize,
    opts: &InferenceOptions,
) -> Result<Vec<f32>> {
    let m = model.size_multiple().max(1);
    opts.validate(m)?;
    if n == 0 || height == 0 || width == 0 {
        return Err(ModelError::InvalidInput(format!(
            "empty input: n × height × width = {n} × {height} × {width}"
        )));
    }
    // Checked: sizes that overflow `usize` are a wrong argument, not a panic.
    let Some(values) = height.checked_mul(width).and_then(|p| p.checked_mul(n)) else {
        return Err(ModelError::InvalidInput(format!(
            "n × height × width = {n} × {height} × {width} overflows usize; pass the \
             dimensions of the planes in `images` ({} values)",
            images.len()
        )));
    };
    let plane = height * width;
    if images.len() != values {
        let (images_of, need) = if n == 1 {
            ("image", "needs")
        } else {
            ("images", "need")
        };
        return Err(ModelError::InvalidInput(format!(
            "{n} {images_of} of {height}×{width} {need} {values} values, got {}",
            images.len()
        )));
    }
    if let Some(i) = images.iter().position(|v| !v.is_finite()) {
        return Err(ModelError::InvalidInput(format!(
            "image {} has a non-finite value {} at pixel (x={}, y={})",
            i / plane,
            images[i],
            (i % plane) % width,
            (i % plane) / width
        )));
    }
    // The first copy is the input as it is.
    let flips = opts.flip_average.flips();
    let mut sum = predict_as_is(model, images, n, height, width, opts)?;
    for &(left_right, top_bottom) in &flips[1..] {
        let mirrored = mirror_planes(images, height, width, left_right, top_bottom);
        let probs = predict_as_is(model, &mirrored, n, height, width, opts)?;
        let back = mirror_planes(&probs, height, width, left_right, top_bottom);
        for (s, p) in sum.iter_mut().zip(&back) {
            *s += p;
        }
    }
    if flips.len() > 1 {
        let share = 1.0 / flips.len() as f32;
        sum.iter_mut().for_each(|s| *s *= share);
    }
    check_output_finite(&sum, model.num_classes(), height, width)?;
    Ok(sum)
}

/// Refuses probabilities that are NaN or infinite. Finite weights can still carry a
/// network's output past the `f32` range (a damaged or hostile checkpoint holding a weight of
/// 1.7e38 gave NaN probabilities for every pixel, returned as `Ok`); labels drawn from them
/// would be meaningless.
fn check_output_finite(probs: &[f32], classes: usize, height: usize, width: usize) -> Result<()> {
    let Some(i) = probs.iter().position(|v| !v.is_finite()) else {
        return Ok(());
    };
    let plane = (height * width).max(1);
    let (image, class) = (i / plane / classes.max(1), i / plane % classes.max(1));
    let pixel = i % plane;
    Err(ModelError::InvalidInput(format!(
        "the network's output for image {image} is not finite ({} for class {class} at pixel \
         (x={}, y={})): its weights, or this input, carry it past the f32 range (a damaged \
         checkpoint?)",
        probs[i],
        pixel % width.max(1),
        pixel / width.max(1)
    )))
}

/// The planes of `data` (`… × height × width`, row-major) mirrored left–right and/or
/// top–bottom (its own inverse).
fn mirror_planes(
    data: &[f32],
    height: usize,
    width: usize,
    left_right: bool,
    top_bottom: bool,
) -> Vec<f32> {
    let plane = height * width;
    let mut out = vec![0f32; data.len()];
    for (src, dst) in data.chunks_exact(plane).zip(out.chunks_exact_mut(plane)) {
        for (y, row) in src.chunks_exact(width).enumerate() {
            let to = if top_bottom { height - 1 - y } else { y };
            let dst_row = &mut dst[to * width..(to + 1) * width];
            dst_row.copy_from_slice(row);
            if left_right {
                dst_row.reverse();
            }
        }
    }
    out
}

/// [`predict_proba_batch`] without flip averaging, on checked input.
fn predict_as_is(
    model: &dyn Segmenter,
    images: &[f32],
    n: usize,
    height: usize,
    width: usize,
    opts: &InferenceOptions,
) -> Result<Vec<f32>> {
    let plane = height * width;
    let c = model.num_classes();
    let mut out = Vec::with_capacity(n * c * plane);
    if height <= opts.tile_size && width <= opts.tile_size {
        // Saturating: a `batch_size` beyond the number of images means one chunk.
        for chunk in images.chunks(opts.batch_size.saturating_mul(plane)) {
            let k = chunk.len() / plane;
            out.extend(whole(model, chunk, k, height, width, opts)?);
        }
    } else {
        for img in images.chunks(plane) {
            out.extend(tiled(model, img, height, width, opts)?);
        }
    }
    Ok(out)
}

/// The softmax temperatures [`apply_temperature`] accepts: beyond them `1/T` times a
/// log-probability leaves `f32`'s useful range.
pub const TEMPERATURE_RANGE: (f64, f64) = (0.01, 100.0);

/// Checks a softmax temperature against [`TEMPERATURE_RANGE`].
///
/// # Errors
/// [`ModelError::InvalidConfig`] outside it (NaN included).
///
/// # Examples
/// ```
/// use xnet_model::infer::{check_temperature, TEMPERATURE_RANGE};
/// assert!(check_temperature(1.0).is_ok()); // T = 1 leaves the probabilities as they are
/// let (low, high) = TEMPERATURE_RANGE; // both accepted
/// assert!(check_temperature(low).is_ok() && check_temperature(high).is_ok());
/// for refused in [0.0, -1.0, 1000.0, f64::NAN] {
///     let e = check_temperature(refused).unwrap_err().to_string();
///     assert!(e.contains("the softmax temperature must be in [0.01, 100]"), "{e}");
/// }
/// ```
pub fn check_temperature(temperature: f64) -> Result<()> {
    let (low, high) = TEMPERATURE_RANGE;
    if (low..=high).contains(&temperature) {
        Ok(())
    } else {
        Err(ModelError::InvalidConfig(format!(
            "the softmax temperature must be in [{low}, {high}], got {}",
            readable_number(temperature)
        )))
    }
}

/// Takes class-major probabilities `softmax(z)` (`C` planes, any number of pixels) to the
/// softmax temperature `T` in place: each pixel becomes `softmax(z / T)`, computed from the
/// probabilities themselves (their logarithms differ from `z` by one constant per pixel,
/// which the softmax ignores). `T > 1` softens, `T < 1` sharpens; a pixel's arg-max stays
/// (unless `f32` rounding makes two classes equal), and zero probabilities stay zero.
///
/// # Errors
/// [`ModelError::InvalidInput`] for no classes, a length that is not a multiple of the
/// class count, or a probability that is NaN, infinite or negative (at any `T`, 1 included),
/// naming the first such one by pixel index (then class) and leaving `probs` unchanged;
/// [`ModelError::InvalidConfig`] for `T` outside [`TEMPERATURE_RANGE`].
///
/// # Examples
/// ```
/// // One pixel, two classes: softmax([ln 0.8, ln 0.2] / 2) = [2/3, 1/3].
/// let mut p = [0.8f32, 0.2];
/// xnet_model::infer::apply_temperature(&mut p, 2, 2.0)?;
/// assert!((p[0] - 2.0 / 3.0).abs() < 1e-6 && (p[1] - 1.0 / 3.0).abs() < 1e-6);
/// // Not a probability: an error, and `q` as it was.
/// let mut q = [f32::NAN, 0.5];
/// assert!(xnet_model::infer::apply_temperature(&mut q, 2, 2.0).is_err());
/// assert_eq!(q[1], 0.5);
/// # Ok::<(), xnet_model::ModelError>(())
/// ```
pub fn apply_temperature(probs: &mut [f32], num_classes: usize, temperature: f64) -> Result<()> {
    if num_classes == 0 || !probs.len().is_multiple_of(num_classes) {
        return Err(ModelError::InvalidInput(format!(
            "{} probabilities are not {num_classes} class planes",
            probs.len()
        )));
    }
    check_temperature(temperature)?;
    // Every value is checked before the first is written, so that refused input is left as
    // it was: one read-only pass, about 2.5 ms for 2000² pixels of 3 classes against about
    // 65 ms for the rescale (one thread). Flagging bad values inside the rescale's own first
    // loop would cost nothing but would have rewritten the blocks before the bad one.
    if let Some((pixel, class)) = first_invalid_probability(probs, num_classes) {
        let value = probs[class * (probs.len() / num_classes) + pixel];
        return Err(ModelError::InvalidInput(format!(
            "probability of class {class} of pixel {pixel} is {}; probabilities must be \
             finite and ≥ 0 (softmax outputs, class-major)",
            readable_number(value)
        )));
    }
    if temperature != 1.0 {
        rescale_temperature(probs, num_classes, temperature);
    }
    Ok(())
}

/// Pixels per block of [`rescale_temperature`] and [`first_invalid_probability`].
const TEMPERATURE_BLOCK: usize = 8192;

/// Whether `v` can be a probability for [`apply_temperature`]: finite and `≥ 0` (`-0.0`
/// included).
#[inline]
fn is_probability(v: f32) -> bool {
    (0.0..=f32::MAX).contains(&v)
}

/// `(pixel, class)` of the first value of class-major `probs` that is not a probability
/// ([`is_probability`]), by pixel index and then class; `None` when all are.
fn first_invalid_probability(probs: &[f32], classes: usize) -> Option<(usize, usize)> {
    use rayon::prelude::*;
    let plane = probs.len() / classes;
    let bad_block = (0..plane.div_ceil(TEMPERATURE_BLOCK))
        .into_par_iter()
        .find_first(|&b| {
            let pixels = b * TEMPERATURE_BLOCK..((b + 1) * TEMPERATURE_BLOCK).min(plane);
            !(0..classes).all(|k| {
                probs[k * plane + pixels.start..k * plane + pixels.end]
                    .iter()
                    .fold(true, |ok, &v| ok & is_probability(v))
            })
        })?;
    // Pixel by pixel in the one block that holds it (error path only).
    (bad_block * TEMPERATURE_BLOCK..((bad_block + 1) * TEMPERATURE_BLOCK).min(plane))
        .flat_map(|i| (0..classes).map(move |k| (i, k)))
        .find(|&(i, k)| !is_probability(probs[k * plane + i]))
}

/// Turns class-major `softmax(z)` into `softmax(z / T)` pixel by pixel: since
/// `ln softmax(z)_k = z_k − logsumexp(z)`, dividing the log-probabilities by `T` and taking
/// the softmax again gives exactly `softmax(z / T)` (the per-pixel constant cancels). A
/// monotone map of each pixel's probabilities, so its arg-max stays (unless `f32` rounding
/// makes two classes equal). Zero probabilities (softmax underflow) stay zero.
///
/// Blocks of pixels in parallel; inside a block each class plane is a contiguous run, and
/// [`ln_f32`] / [`exp_f32`] are branch-free, so the loops vectorise (libm's scalar calls made
/// this a third of a 2000² radiograph's `segment --probs` time).
fn rescale_temperature(probs: &mut [f32], classes: usize, temperature: f64) {
    use rayon::prelude::*;
    let c = classes;
    let plane = probs.len() / c;
    if plane == 0 {
        return;
    }
    let inv_t = (1.0 / temperature) as f32;
    let blocks = plane.div_ceil(TEMPERATURE_BLOCK);
    let mut per_block: Vec<Vec<&mut [f32]>> = (0..blocks).map(|_| Vec::with_capacity(c)).collect();
    for class_plane in probs.chunks_exact_mut(plane) {
        for (b, chunk) in class_plane.chunks_mut(TEMPERATURE_BLOCK).enumerate() {
            per_block[b].push(chunk);
        }
    }
    per_block.into_par_iter().for_each(|mut chunks| {
        let n = chunks[0].len();
        let mut max = vec![f32::NEG_INFINITY; n];
        for chunk in chunks.iter_mut() {
            for (v, m) in chunk.iter_mut().zip(max.iter_mut()) {
                *v = ln_f32(*v) * inv_t;
                *m = m.max(*v);
            }
        }
        let mut sum = vec![0f32; n];
        for chunk in chunks.iter_mut() {
            for ((v, m), s) in chunk.iter_mut().zip(&max).zip(sum.iter_mut()) {
                *v = exp_f32(*v - *m);
                *s += *v;
            }
        }
        for chunk in chunks.iter_mut() {
            for (v, s) in chunk.iter_mut().zip(&sum) {
                // An all-zero pixel (not a distribution) stays all zero.
                *v = if *s > 0.0 { *v / *s } else { 0.0 };
            }
        }
    });
}

/// Natural logarithm of an `f32`, branch-free: `ln x = e·ln 2 + ln m` with `x = m·2^e`,
/// `m ∈ [√½, √2)`, and `ln m = 2·atanh(s)`, `s = (m − 1)/(m + 1)`, `|s| ≤ 0.172`, by its
/// odd series to `s⁹/9` (truncation below 4e-10). Within a few `f32` ulps of `f64::ln` for
/// normal positive `x`; `−∞` for `x ≤ 0` and for subnormals, which a probability of that
/// size may as well be.
#[inline]
fn ln_f32(x: f32) -> f32 {
    const LN_2: f32 = std::f32::consts::LN_2;
    let bits = x.to_bits();
    let exponent = ((bits >> 23) & 0xff) as i32 - 127;
    let mantissa = f32::from_bits((bits & 0x007f_ffff) | 0x3f80_0000); // in [1, 2)
    let high = mantissa > std::f32::consts::SQRT_2;
    let m = if high { mantissa * 0.5 } else { mantissa };
    let e = (exponent + i32::from(high)) as f32;
    let s = (m - 1.0) / (m + 1.0);
    let s2 = s * s;
    let series =
        s * (2.0 + s2 * (2.0 / 3.0 + s2 * (2.0 / 5.0 + s2 * (2.0 / 7.0 + s2 * (2.0 / 9.0)))));
    let ln = e * LN_2 + series;
    if x >= f32::MIN_POSITIVE {
        ln
    } else {
        f32::NEG_INFINITY
    }
}

/// `eˣ` of an `f32` for `x ≤ 0`, branch-free: `eˣ = 2ⁿ·eʳ` with `n = round(x / ln 2)`,
/// `r = x − n·ln 2` (ln 2 split in two so `r` is exact to `f32`), `|r| ≤ 0.347`, and `eʳ` by
/// its Taylor series to `r⁷/7!` (truncation below 6e-9). Within a few `f32` ulps of `f64::exp`;
/// 0 below −87.3 (where `eˣ` leaves the normal `f32` range) and for `−∞`.
#[inline]
fn exp_f32(x: f32) -> f32 {
    const LOG2_E: f32 = std::f32::consts::LOG2_E;
    const LN_2_HI: f32 = 0.693_145_75; // 12 significant bits of ln 2: n·LN_2_HI is exact
    const LN_2_LO: f32 = 1.428_606_8e-6; // ln 2 − LN_2_HI
    let xc = x.max(-87.0);
    let n = (xc * LOG2_E).round();
    let r = (xc - n * LN_2_HI) - n * LN_2_LO;
    let p = 1.0
        + r * (1.0
            + r * (0.5
                + r * (1.0 / 6.0
                    + r * (1.0 / 24.0
                        + r * (1.0 / 120.0 + r * (1.0 / 720.0 + r * (1.0 / 5040.0)))))));
    let scale = f32::from_bits(((n as i32 + 127) as u32) << 23);
    if x >= -87.0 {
        p * scale
    } else {
        0.0
    }
}

/// Per-pixel arg-max of `C × H × W` probabilities: the `H × W` class map.
///
/// # Examples
/// ```
/// // Two classes, two pixels: class 1 wins the first, class 0 the second.
/// let probs = [0.2f32, 0.9, 0.8, 0.1];
/// assert_eq!(xnet_model::infer::argmax_classes(&probs, 2, 1, 2)?, vec![1, 0]);
/// # Ok::<(), xnet_model::ModelError>(())
/// ```
pub fn argmax_classes(
    probs: &[f32],
    num_classes: usize,
    height: usize,
    width: usize,
) -> Result<Vec<u8>> {
    // Checked: sizes that overflow `usize` are a wrong argument, not a panic.
    let values = height
        .checked_mul(width)
        .and_then(|p| p.checked_mul(num_classes));
    if num_classes == 0 || num_classes > 256 || values != Some(probs.len()) {
        return Err(ModelError::InvalidInput(format!(
            "probabilities must be C × H × W = {num_classes} × {height} × {width} (C in 1..=256), \
             got {} values",
            probs.len()
        )));
    }
    let plane = height * width;
    Ok((0..plane)
        .map(|i| {
            let mut best = 0usize;
            for k in 1..num_classes {
                if probs[k * plane + i] > probs[best * plane + i] {
                    best = k;
                }
            }
            best as u8
        })
        .collect())
}

/// Runs `[k, 1, h, w]` through the model and returns `k × C × h × w` softmax probabilities.
fn forward_probs(
    model: &dyn Segmenter,
    planes: Vec<f32>,
    k: usize,
    h: usize,
    w: usize,
    device: &Device,
) -> Result<Vec<f32>> {
    let x = Tensor::from_vec(planes, (k, 1, h, w), device)?;
    let logits = model.forward_t(&x, false)?;
    let c = model.num_classes();
    if logits.dims() != [k, c, h, w] {
        return Err(ModelError::InvalidInput(format!(
            "the model returned logits of shape {:?} for input [{k}, 1, {h}, {w}]; expected \
             [{k}, {c}, {h}, {w}]",
            logits.dims()
        )));
    }
    let probs = candle_nn::ops::softmax(&logits, 1)?;
    Ok(probs.flatten_all()?.to_vec1::<f32>()?)
}

/// Whole-image path for `k` planes that fit in a tile.
fn whole(
    model: &dyn Segmenter,
    planes: &[f32],
    k: usize,
    h: usize,
    w: usize,
    opts: &InferenceOptions,
) -> Result<Vec<f32>> {
    let c = model.num_classes();
    let m = model.size_multiple().max(1);
    let plane = h * w;
    match opts.small_input {
        SmallInput::Pad => {
            let (ph, pw) = (h.div_ceil(m) * m, w.div_ceil(m) * m);
            let mut input = Vec::with_capacity(k * ph * pw);
            for img in planes.chunks(plane) {
                input.extend(extract_clamped(img, h, w, 0, 0, ph, pw));
            }
            let probs = forward_probs(model, input, k, ph, pw, &opts.device)?;
            let mut out = Vec::with_capacity(k * c * plane);
            for pc in probs.chunks(ph * pw) {
                for y in 0..h {
                    out.extend_from_slice(&pc[y * pw..y * pw + w]);
                }
            }
            Ok(out)
        }
        SmallInput::Resize {
            height: rh,
            width: rw,
        } => {
            let mut input = Vec::with_capacity(k * rh * rw);
            for img in planes.chunks(plane) {
                input.extend(resize_bilinear(img, h, w, rh, rw));
            }
            let probs = forward_probs(model, input, k, rh, rw, &opts.device)?;
            let mut out = Vec::with_capacity(k * c * plane);
            for pc in probs.chunks(rh * rw) {
                out.extend(resize_bilinear(pc, rh, rw, h, w));
            }
            Ok(out)
        }
    }
}

/// The `th × tw` window at `(y0, x0)`, indices clamped into the image (edge replication).
fn extract_clamped(
    img: &[f32],
    h: usize,
    w: usize,
    y0: usize,
    x0: usize,
    th: usize,
    tw: usize,
) -> Vec<f32> {
    let mut out = Vec::with_capacity(th * tw);
    for dy in 0..th {
        let y = (y0 + dy).min(h - 1);
        let row = &img[y * w..(y + 1) * w];
        for dx in 0..tw {
            out.push(row[(x0 + dx).min(w - 1)]);
        }
    }
    out
}

/// Tile origins along one axis of `size` pixels with tiles of `extent` and `overlap`.
fn tile_origins(size: usize, extent: usize, overlap: usize) -> Vec<usize> {
    if size <= extent {
        return vec![0];
    }
    let stride = extent - overlap;
    let mut origins: Vec<usize> = (0..)
        .map(|i| i * stride)
        .take_while(|&o| o + extent < size)
        .collect();
    origins.push(size - extent);
    origins
}

/// Blending weights along one axis of a tile of `extent` starting at `origin` on an axis of
/// `size` (see the module docs).
fn axis_window(origin: usize, extent: usize, size: usize, overlap: usize) -> Vec<f32> {
    let discard = overlap / 4;
    let ramp = (overlap / 2).max(1);
    let lead_shared = origin > 0;
    let trail_shared = origin + extent < size;
    let side = |d: usize, shared: bool| -> f32 {
        if !shared || overlap == 0 {
            1.0
        } else if d < discard {
            0.0
        } else if d < discard + ramp {
            let t = (d - discard) as f32 + 0.5;
            let s = (std::f32::consts::FRAC_PI_2 * t / ramp as f32).sin();
            s * s
        } else {
            1.0
        }
    };
    (0..extent)
        .map(|i| side(i, lead_shared) * side(extent - 1 - i, trail_shared))
        .collect()
}

/// Tiled path for one plane larger than a tile.
fn tiled(
    model: &dyn Segmenter,
    img: &[f32],
    h: usize,
    w: usize,
    opts: &InferenceOptions,
) -> Result<Vec<f32>> {
    let c = model.num_classes();
    let m = model.size_multiple().max(1);
    // An axis shorter than a tile is covered by one tile padded to the size multiple.
    let th = opts.tile_size.min(h.div_ceil(m) * m);
    let tw = opts.tile_size.min(w.div_ceil(m) * m);
    let ys = tile_origins(h, th, opts.overlap);
    let xs = tile_origins(w, tw, opts.overlap);
    let tiles: Vec<(usize, usize)> = ys
        .iter()
        .flat_map(|&y| xs.iter().map(move |&x| (y, x)))
        .collect();

    let plane = h * w;
    let mut acc = vec![0f32; c * plane];
    let mut wsum = vec![0f32; plane];
    for group in tiles.chunks(opts.batch_size) {
        let mut input = Vec::with_capacity(group.len() * th * tw);
        for &(y0, x0) in group {
            input.extend(extract_clamped(img, h, w, y0, x0, th, tw));
        }
        let probs = forward_probs(model, input, group.len(), th, tw, &opts.device)?;
        for (t, &(y0, x0)) in group.iter().enumerate() {
            let wy = axis_window(y0, th, h, opts.overlap);
            let wx = axis_window(x0, tw, w, opts.overlap);
            let tile = &probs[t * c * th * tw..(t + 1) * c * th * tw];
            for dy in 0..th.min(h - y0) {
                let y = y0 + dy;
                for dx in 0..tw.min(w - x0) {
                    let x = x0 + dx;
                    let wt = wy[dy] * wx[dx];
                    if wt == 0.0 {
                        continue;
                    }
                    wsum[y * w + x] += wt;
                    for k in 0..c {
                        acc[k * plane + y * w + x] += wt * tile[k * th * tw + dy * tw + dx];
                    }
                }
            }
        }
    }
    for k in 0..c {
        for (a, &s) in acc[k * plane..(k + 1) * plane].iter_mut().zip(&wsum) {
            // Every pixel is covered with positive weight by construction (see axis_window).
            *a /= s;
        }
    }
    Ok(acc)
}

/// Bilinear resize of one plane, half-pixel centres (PyTorch `align_corners=False`, no
/// antialiasing).
fn resize_bilinear(src: &[f32], h: usize, w: usize, nh: usize, nw: usize) -> Vec<f32> {
    let coords = |n_out: usize, n_in: usize| -> Vec<(usize, usize, f32)> {
        let scale = n_in as f32 / n_out as f32;
        (0..n_out)
            .map(|o| {
                let s = ((o as f32 + 0.5) * scale - 0.5).max(0.0);
                let i0 = (s.floor() as usize).min(n_in - 1);
                let i1 = (i0 + 1).min(n_in - 1);
                (i0, i1, s - i0 as f32)
            })
            .collect()
    };
    let cy = coords(nh, h);
    let cx = coords(nw, w);
    let mut out = Vec::with_capacity(nh * nw);
    for &(y0, y1, fy) in &cy {
        for &(x0, x1, fx) in &cx {
            let top = src[y0 * w + x0] * (1.0 - fx) + src[y0 * w + x1] * fx;
            let bot = src[y1 * w + x0] * (1.0 - fx) + src[y1 * w + x1] * fx;
            out.push(top * (1.0 - fy) + bot * fy);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by the `checkpoint` fuzz target: one weight of 1.7e38 in an otherwise sound
    /// checkpoint made every probability NaN, and `predict_proba` returned them as `Ok`.
    #[test]
    fn non_finite_output_is_refused() {
        use candle_core::{DType, Device, Tensor};
        use candle_nn::{VarBuilder, VarMap};
        let dev = Device::Cpu;
        let varmap = VarMap::new();
        let cfg = crate::ModelConfig::XNet(crate::models::XNetConfig {
            base_width: 2,
            ..Default::default()
        });
        let model = cfg
            .build(VarBuilder::from_varmap(&varmap, DType::F32, &dev))
            .unwrap();
        let (h, w) = (16, 16);
        let image: Vec<f32> = (0..h * w).map(|i| (i % 13) as f32 / 13.0).collect();
        let opts = InferenceOptions::default();
        for var in varmap.all_vars() {
            var.set(&Tensor::full(0.5f32, var.shape(), &dev).unwrap())
                .unwrap();
        }
        let vars = varmap.data().lock().unwrap();
        let conv = &vars["conv3.conv.weight"];
        let mut values = vec![0.5f32; conv.elem_count()];
        values[0] = 1.7e38;
        conv.set(&Tensor::from_vec(values, conv.shape(), &dev).unwrap())
            .unwrap();
        drop(vars);
        let e = predict_proba(model.as_ref(), &image, h, w, &opts).unwrap_err();
        assert!(matches!(e, ModelError::InvalidInput(_)), "{e}");
        assert!(e.to_string().contains("is not finite"), "{e}");
    }
    #[test]
    fn ln_and_exp_are_within_a_few_ulps() {
        // ln over (0, 1] and a bit above, spread over every binade.
        let mut worst_ln = 0f64;
        let mut x = f32::MIN_POSITIVE;
        while x < 4.0 {
            for step in [1.0f32, 1.0001, 1.37, 1.9999] {
                let v = x * step;
                let want = f64::from(v).ln();
                let got = f64::from(ln_f32(v));
                worst_ln = worst_ln.max((got - want).abs() / want.abs().max(1.0));
            }
            x *= 2.0;
        }
        assert!(worst_ln < 1e-6, "ln: worst error {worst_ln:e}");
        assert_eq!(ln_f32(0.0), f32::NEG_INFINITY);
        assert_eq!(ln_f32(-1.0), f32::NEG_INFINITY);
        assert_eq!(ln_f32(1.0), 0.0);
        // exp over [-87, 0], relative error.
        let mut worst_exp = 0f64;
        for i in 0..=86_990 {
            let v = -(i as f32) * 1e-3;
            let want = f64::from(v).exp();
            let got = f64::from(exp_f32(v));
            worst_exp = worst_exp.max((got - want).abs() / want);
        }
        assert!(worst_exp < 1e-6, "exp: worst relative error {worst_exp:e}");
        assert_eq!(exp_f32(0.0), 1.0);
        assert_eq!(exp_f32(-100.0), 0.0);
        assert_eq!(exp_f32(f32::NEG_INFINITY), 0.0);
    }

    #[test]
    fn temperature_rescaling_is_the_softmax_of_scaled_logits() {
        let softmax = |z: &[f64]| {
            let m = z.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let e: Vec<f64> = z.iter().map(|v| (v - m).exp()).collect();
            let s: f64 = e.iter().sum();
            e.into_iter().map(|v| v / s).collect::<Vec<f64>>()
        };
        // Three pixels of three classes, class-major; the last pixel's logits are extreme.
        let logits = [[2.0, -1.0, 0.5], [0.1, 0.2, 0.3], [40.0, -40.0, 0.0]];
        for t in [0.5, 1.0, 1.7, 4.0] {
            let mut probs = vec![0f32; 9];
            for (i, z) in logits.iter().enumerate() {
                for (k, p) in softmax(z).iter().enumerate() {
                    probs[k * 3 + i] = *p as f32;
                }
            }
            rescale_temperature(&mut probs, 3, t);
            for (i, z) in logits.iter().enumerate() {
                let scaled: Vec<f64> = z.iter().map(|v| v / t).collect();
                for (k, want) in softmax(&scaled).iter().enumerate() {
                    let got = f64::from(probs[k * 3 + i]);
                    assert!(
                        (got - want).abs() < 1e-6,
                        "T {t} pixel {i} class {k}: {got} vs {want}"
                    );
                }
            }
        }
        // Underflowed zeros stay zero and the rest still sums to one.
        let mut probs = vec![1.0f32, 0.0];
        rescale_temperature(&mut probs, 2, 3.0);
        assert_eq!(probs, vec![1.0, 0.0]);
    }

    /// NaN, infinite or negative probabilities are refused, naming the first bad pixel (the
    /// lowest pixel index, then the lowest class), at every temperature, and the buffer is
    /// left as it was; `-0.0` and all-zero pixels are accepted.
    #[test]
    fn temperature_refuses_non_finite_and_negative_probabilities() {
        // The case the review found: [NaN, 0.5] came out as [0, 1].
        for t in [0.5, 1.0, 2.0] {
            let mut p = [f32::NAN, 0.5];
            let e = apply_temperature(&mut p, 2, t).unwrap_err().to_string();
            assert!(
                e.contains("class 0 of pixel 0") && e.contains("NaN"),
                "T {t}: {e}"
            );
            assert!(p[0].is_nan() && p[1] == 0.5, "T {t}: {p:?}");
        }
        // Three classes over more pixels than one block: the first bad pixel by index wins,
        // whichever class plane (and block) holds it.
        let plane = 20_000;
        let fresh = || -> Vec<f32> {
            (0..3 * plane)
                .map(|i| [0.2f32, 0.3, 0.5][i / plane])
                .collect()
        };
        for t in [0.7, 1.0] {
            for (bad, want) in [
                (f32::NAN, "NaN"),
                (f32::INFINITY, "inf"),
                (f32::NEG_INFINITY, "-inf"),
                (-0.25, "-0.25"),
            ] {
                let mut probs = fresh();
                probs[2 * plane + 15_000] = bad;
                probs[15_001] = bad;
                probs[17_000] = bad;
                probs[plane + 19_999] = bad;
                let before = probs.clone();
                let e = apply_temperature(&mut probs, 3, t).unwrap_err().to_string();
                assert!(
                    e.contains(&format!("class 2 of pixel 15000 is {want}")),
                    "T {t}: {e}"
                );
                let same = probs
                    .iter()
                    .zip(&before)
                    .all(|(a, b)| a.to_bits() == b.to_bits());
                assert!(same, "T {t}: the probabilities were changed");
            }
        }
        // Negative zero is zero, and an all-zero pixel stays all zero.
        let mut p = [-0.0f32, 0.0, 1.0, 0.0];
        apply_temperature(&mut p, 2, 2.0).unwrap();
        assert_eq!(p, [0.0, 0.0, 1.0, 0.0]);
    }

    #[test]
    fn windows_cover_every_pixel() {
        for (size, extent, overlap) in [(100, 32, 8), (65, 32, 16), (300, 64, 63), (33, 32, 0)] {
            let origins = tile_origins(size, extent, overlap);
            let mut total = vec![0f32; size];
            for &o in &origins {
                for (i, wv) in axis_window(o, extent, size, overlap)
                    .into_iter()
                    .enumerate()
                {
                    if o + i < size {
                        total[o + i] += wv;
                    }
                }
            }
            assert!(
                total.iter().all(|&t| t > 0.0),
                "{size} {extent} {overlap}: {total:?}"
            );
        }
    }

    #[test]
    fn bilinear_identity_and_constant() {
        let src: Vec<f32> = (0..12).map(|v| v as f32).collect();
        assert_eq!(resize_bilinear(&src, 3, 4, 3, 4), src);
        let c = resize_bilinear(&[2.0; 6], 2, 3, 7, 5);
        assert!(c.iter().all(|&v| (v - 2.0).abs() < 1e-6));
    }
}
