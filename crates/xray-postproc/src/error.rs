//! The crate's single error type.

use thiserror::Error;

/// Everything that can go wrong in post-processing. Each variant names the offending input
/// (which argument, which pixel, expected versus found) so that a person can act on it.
#[derive(Debug, Error)]
pub enum PostprocError {
    /// An image, probability map or label map has zero width, height or classes.
    #[error("{what} is empty ({width} x {height} pixels, {classes} classes); give it at least one pixel and one class")]
    Empty {
        /// Which input was empty.
        what: &'static str,
        /// Width that was given.
        width: usize,
        /// Height that was given.
        height: usize,
        /// Number of classes that was given (1 for single-plane inputs).
        classes: usize,
    },
    /// A buffer's length or an image's size does not match the shape it should have.
    #[error("shape mismatch for {what}: expected {expected}, found {found}")]
    ShapeMismatch {
        /// Which input had the wrong shape.
        what: &'static str,
        /// The shape that was expected, in words (e.g. "3 x 64 x 64 = 12288 values").
        expected: String,
        /// The shape that was found.
        found: String,
    },
    /// A probability or pixel value is NaN or infinite.
    #[error("{what} holds a non-finite value {value} at class {class}, pixel (x={x}, y={y})")]
    NonFinite {
        /// Which input held the value.
        what: &'static str,
        /// The class plane (0 for single-plane images).
        class: usize,
        /// Column of the pixel.
        x: usize,
        /// Row of the pixel.
        y: usize,
        /// The offending value.
        value: f32,
    },
    /// A probability lies outside [0, 1].
    #[error("{what} holds {value} at class {class}, pixel (x={x}, y={y}); probabilities must lie in [0, 1] (apply softmax first)")]
    NotAProbability {
        /// Which input held the value.
        what: &'static str,
        /// The class plane.
        class: usize,
        /// Column of the pixel.
        x: usize,
        /// Row of the pixel.
        y: usize,
        /// The offending value.
        value: f32,
    },
    /// A threshold or other parameter is outside its valid range.
    #[error("parameter {name} = {value} is out of range: {expected}")]
    OutOfRange {
        /// Parameter name as it appears in the config.
        name: String,
        /// The value given.
        value: f64,
        /// The valid range, in words.
        expected: &'static str,
    },
    /// A class index refers to a class the probability map or label map does not have.
    #[error("{name} refers to class {class}, but there are only {classes} classes (0..{classes})")]
    ClassOutOfRange {
        /// Parameter name.
        name: &'static str,
        /// The class index given.
        class: usize,
        /// Number of classes available.
        classes: usize,
    },
    /// A configuration could not be parsed.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// Writing an image failed.
    #[error("cannot write {path}: {source}")]
    Image {
        /// The path being written.
        path: String,
        /// The underlying error.
        #[source]
        source: image::ImageError,
    },
}

/// Result alias for this crate.
pub type Result<T> = std::result::Result<T, PostprocError>;
