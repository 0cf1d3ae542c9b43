//! Radiograph and mask input/output, normalisation, synthetic phantoms, augmentation,
//! datasets, splits and batching for the xray-seg workspace.
//!
//! # Conventions
//! - A radiograph is one grayscale plane of `f32` ([`Radiograph`]); after loading, whatever
//!   the source format, **larger value = more X-rays reached the detector** (open beam
//!   brightest).
//! - A mask is a [`Mask`] (`image::GrayImage`) holding class indices: `0` open beam,
//!   `1` soft tissue, `2` bone, [`IGNORE_LABEL`] (`255`) ignored.
//! - Every random operation takes `&mut impl rand::Rng`, so a seed fixes the result.
//!
//! # Sizes
//!
//! Sizes are `width`, then `height`, as the `image` crate's (`ImageBuffer::new(width,
//! height)`, [`resize::resize`]`(img, width, height, filter)`): this crate works on images.
//! The workspace's tensor-like types (xnet-model's functions, xray-postproc's `ProbMap`) take
//! (classes,) `height`, then `width`, as candle does. Both are plain integers, so a swapped
//! pair compiles: every function here that takes a size says its order under `# Shapes`. One
//! function differs from that rule: [`resize::resize_probabilities`] takes a class-major
//! `C × H × W` probability map (tensor-like) with `(width, height)` pairs, as the image
//! resizers beside it do.
#![deny(missing_docs)]

/// Replacing files atomically: the savers write to a temporary sibling and rename it into
/// place. Shared with the other crates by source.
#[path = "../../shared-src/atomic_write.rs"]
mod atomic_write;
pub mod augment;
pub mod dataset;
pub mod error;
pub mod io;
pub mod normalize;
pub mod resize;
pub mod synth;

pub use error::{DataError, Result};

/// One grayscale radiograph plane, row-major `f32`.
pub type Radiograph = image::ImageBuffer<image::Luma<f32>, Vec<f32>>;

/// A label mask holding class indices (`0` open beam, `1` soft tissue, `2` bone, `255` ignore).
pub type Mask = image::GrayImage;

/// The label value that marks pixels to ignore (outside the collimated field or unlabelled).
pub const IGNORE_LABEL: u8 = 255;

/// Label of open beam (direct exposure) pixels.
pub const OPEN_BEAM: u8 = 0;
/// Label of soft-tissue pixels.
pub const SOFT_TISSUE: u8 = 1;
/// Label of bone pixels.
pub const BONE: u8 = 2;
