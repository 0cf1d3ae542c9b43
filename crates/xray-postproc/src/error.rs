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
    #[error(
        "{what} holds {} at class {class}, pixel (x={x}, y={y}); probabilities must lie in [0, 1] (apply softmax first)",
        readable_number(*.value)
    )]
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
    ///
    /// A NaN or infinite value is refused by every parameter's range, and the message then
    /// says so: in JSON, an `f32` parameter reads a number beyond its range (about
    /// ±3.4·10³⁸, e.g. `1e308`) as infinity, so the value shown is `inf`.
    #[error(
        "parameter {name} = {} is out of range: {expected}{}",
        readable_parameter(*.value),
        non_finite_note(*.value)
    )]
    OutOfRange {
        /// Parameter name as it appears in the config.
        name: String,
        /// The value given (the crate's `f32` parameters and `usize` counts, widened).
        value: f64,
        /// The valid range, in words.
        expected: &'static str,
    },
    /// A collimator field has two edges on the same side of the image; a field has at most
    /// one edge per side (see [`Collimator`](crate::Collimator)).
    #[error(
        "{name}[{first}] and {name}[{second}] are both {} edges; a field has at most one edge per side (remove one of them)",
        .side.name()
    )]
    DuplicateEdge {
        /// Where the edges sit, as in JSON: `edges`, or `field.edges` inside a larger input.
        name: String,
        /// The side both edges bound the field on.
        side: crate::Side,
        /// Index of the first edge on that side.
        first: usize,
        /// Index of the second edge on that side.
        second: usize,
    },
    /// A class index refers to a class the probability map or label map does not have.
    #[error(
        "{name} refers to class {class}, but there {} (0..{classes}); {hint}",
        class_count(*.classes)
    )]
    ClassOutOfRange {
        /// Parameter name.
        name: &'static str,
        /// The class index given.
        class: usize,
        /// Number of classes available.
        classes: usize,
        /// What to do about it, in words.
        hint: &'static str,
    },
    /// A label map (ground truth) holds a label that is neither a class of the probability
    /// map it is compared with nor [`IGNORE_LABEL`](crate::IGNORE_LABEL) (255).
    #[error(
        "{what} has label {label} at pixel (x={x}, y={y}), but there {} (0..{classes}) and \
         255 means ignore; relabel it, or mark it 255 to leave it out",
        class_count(*.classes)
    )]
    LabelOutOfRange {
        /// Which label map, e.g. `ground-truth labels`.
        what: &'static str,
        /// The label found.
        label: u8,
        /// Its column.
        x: usize,
        /// Its row.
        y: usize,
        /// Number of classes of the probability map.
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

impl PostprocError {
    /// The error with an [`PostprocError::OutOfRange`]'s parameter name or a
    /// [`PostprocError::DuplicateEdge`]'s name rewritten by `f` (e.g. prefixed with where the
    /// parameter sits in a larger config); other variants are returned unchanged.
    pub(crate) fn renamed(mut self, f: impl FnOnce(&str) -> String) -> Self {
        if let PostprocError::OutOfRange { name, .. } | PostprocError::DuplicateEdge { name, .. } =
            &mut self
        {
            *name = f(name);
        }
        self
    }
}

/// Result alias for this crate.
pub type Result<T> = std::result::Result<T, PostprocError>;

/// How error messages print a number: the rule of `xnet_model::error::readable_number`,
/// included by source (see the file) because the crates do not depend on one another.
#[path = "../../shared-src/readable_number.rs"]
mod readable;
pub(crate) use readable::readable_number;

/// [`readable_number`] for [`PostprocError::OutOfRange`]'s `value`, an `f64` that mostly holds
/// a widened `f32` parameter: a value an `f32` holds exactly prints with the `f32`'s shortest
/// digits, so that a threshold of `1.1` reads `1.1`, not `1.100000023841858` (and `1e30`
/// reads `1e30`, not `1.0000000150474662e30`). A count of 2²⁴ or more that an `f32` holds
/// exactly (a power of two) so prints with the `f32`'s eight significant digits.
fn readable_parameter(v: f64) -> String {
    let narrow = v as f32;
    if f64::from(narrow) == v {
        readable_number(narrow)
    } else {
        readable_number(v)
    }
}

/// What [`PostprocError::OutOfRange`] adds after the range for a NaN or infinite value (empty
/// for a finite one). The value shown is then `inf` where the user may have written `1e308`:
/// an `f32` field of a JSON config saturates a number beyond its range to infinity while
/// parsing, before any check sees it.
fn non_finite_note(v: f64) -> &'static str {
    if v.is_finite() {
        ""
    } else {
        " (not a finite number; an f32 parameter reads a JSON value beyond ±3.4e38, such as \
         1e308, as infinity)"
    }
}

/// "are only 3 classes", "is only 1 class" for [`PostprocError::ClassOutOfRange`].
fn class_count(classes: usize) -> String {
    if classes == 1 {
        "is only 1 class".to_string()
    } else {
        format!("are only {classes} classes")
    }
}
