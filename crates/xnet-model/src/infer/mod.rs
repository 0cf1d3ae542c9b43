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

use candle_core::Device;
use serde::{Deserialize, Serialize};

use crate::{ModelError, Result, Segmenter};

mod temperature;
#[cfg(test)]
mod tests;
mod tiling;

pub use temperature::{apply_temperature, check_temperature, TEMPERATURE_RANGE};
use tiling::predict_as_is;

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
/// # Shapes
/// `height`, then `width` ([tensor order](crate#sizes), as candle's `[N, C, H, W]`): `image` is
/// `height` rows of `width` values, and the result `C × height × width`.
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
/// # Shapes
/// `n`, `height`, then `width` ([tensor order](crate#sizes)): `images` is `n × height × width`, the
/// result `n × C × height × width`.
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

/// Per-pixel arg-max of `C × H × W` probabilities: the `H × W` class map (ties go to the
/// lower class).
///
/// # Shapes
/// `num_classes`, `height`, then `width` ([tensor order](crate#sizes)): `probs` is `num_classes ×
/// height × width`, the result `height × width`.
///
/// # Errors
/// [`ModelError::InvalidInput`] when `probs` does not hold `num_classes × height × width`
/// values (a product that overflows `usize` included), or `num_classes` is 0 or above 255:
/// class 255 would read as the ignore label ([`crate::IGNORE_LABEL`]), and no network of
/// this crate has more than 255 classes.
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
    if num_classes == 0 || num_classes > 255 || values != Some(probs.len()) {
        return Err(ModelError::InvalidInput(format!(
            "probabilities must be C × H × W = {num_classes} × {height} × {width} (C in 1..=255: \
             label 255 is the ignore label), got {} values",
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
