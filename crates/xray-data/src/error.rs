//! The error type of `xray-data`.

use std::path::PathBuf;

/// Result alias with [`DataError`].
pub type Result<T, E = DataError> = std::result::Result<T, E>;

/// Everything that can go wrong while reading, writing or preparing radiographs and masks.
///
/// Every variant that concerns a file names it (`path`); data decoded from memory is
/// named `<memory>`.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// An operating-system I/O error on a named file.
    #[error("{path}: {source}")]
    Io {
        /// The file involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A parameter given by the caller is invalid.
    #[error("invalid parameter: {0}")]
    InvalidParameter(String),
    /// The file is neither PNG, TIFF, JPEG nor DICOM (by content and extension).
    #[error("{path}: unrecognised image format ({reason}); expected PNG, TIFF, JPEG or DICOM")]
    UnknownFormat {
        /// The file involved.
        path: PathBuf,
        /// What was found instead.
        reason: String,
    },
    /// The file is corrupt, truncated or otherwise not decodable.
    #[error("{path}: cannot decode {format}: {message}")]
    Decode {
        /// The file involved.
        path: PathBuf,
        /// The format that was being decoded (`PNG`, `TIFF`, `DICOM`, `CSV`).
        format: &'static str,
        /// What the decoder reported.
        message: String,
    },
    /// The file is valid but uses a pixel layout this crate does not support.
    #[error("{path}: unsupported {what}: found {found}, expected {expected}")]
    Unsupported {
        /// The file involved.
        path: PathBuf,
        /// The property (bit depth, photometric interpretation, colour type, ...).
        what: &'static str,
        /// The value found in the file.
        found: String,
        /// What is supported.
        expected: String,
    },
    /// The image is in colour, or grayscale with an alpha channel that carries more than a
    /// `tRNS` chunk's one transparent grey value (partly transparent pixels, or transparent
    /// ones of several values), and the caller did not ask for conversion to plain grayscale.
    #[error(
        "{path}: not plain grayscale ({found}: colour, or an alpha channel); set \
         LoadOptions::allow_rgb to convert it to luma (alpha is dropped)"
    )]
    ColorImage {
        /// The file involved.
        path: PathBuf,
        /// The colour type found.
        found: String,
    },
    /// The image has zero width or height.
    #[error("{path}: empty image ({width}x{height})")]
    EmptyImage {
        /// The file involved.
        path: PathBuf,
        /// Width found.
        width: u64,
        /// Height found.
        height: u64,
    },
    /// The image has more pixels than the configured limit.
    #[error("{path}: image of {width}x{height} pixels exceeds the limit of {max_pixels} pixels")]
    TooLarge {
        /// The file involved.
        path: PathBuf,
        /// Width found.
        width: u64,
        /// Height found.
        height: u64,
        /// The configured limit (`LoadOptions::max_pixels`).
        max_pixels: u64,
    },
    /// A pixel value is NaN or infinite.
    #[error("{path}: non-finite pixel value {value} at (x={x}, y={y})")]
    NonFinite {
        /// The file involved.
        path: PathBuf,
        /// Column of the first offending pixel.
        x: u32,
        /// Row of the first offending pixel.
        y: u32,
        /// The value found.
        value: f32,
    },
    /// A pixel value cannot be represented in the output format.
    #[error(
        "{path}: pixel value {} at (x={x}, y={y}) outside {}..={}",
        readable_number(*.value),
        readable_number(*.min),
        readable_number(*.max)
    )]
    ValueOutOfRange {
        /// The file involved.
        path: PathBuf,
        /// Column of the first offending pixel.
        x: u32,
        /// Row of the first offending pixel.
        y: u32,
        /// The value found.
        value: f32,
        /// Smallest representable value.
        min: f32,
        /// Largest representable value.
        max: f32,
    },
    /// The requested frame of a multi-frame image does not exist.
    #[error("{path}: frame {frame} requested but the file has {frames} frame(s)")]
    FrameOutOfRange {
        /// The file involved.
        path: PathBuf,
        /// The frame asked for (0-based).
        frame: u32,
        /// The number of frames in the file.
        frames: u32,
    },
    /// A mask holds a value that is not a known label.
    #[error("{path}: unknown label {value} at (x={x}, y={y}); expected a class below {num_classes} or 255 (ignore)")]
    UnknownLabel {
        /// The mask file involved.
        path: PathBuf,
        /// Column of the first offending pixel.
        x: u32,
        /// Row of the first offending pixel.
        y: u32,
        /// The value found.
        value: u8,
        /// Number of classes the labels were checked against.
        num_classes: u8,
    },
    /// Two things that must have the same size do not.
    #[error(
        "{path}: size {found_width}x{found_height}, expected {expected_width}x{expected_height}"
    )]
    SizeMismatch {
        /// The file (or item) whose size is wrong.
        path: PathBuf,
        /// Expected width.
        expected_width: u32,
        /// Expected height.
        expected_height: u32,
        /// Width found.
        found_width: u32,
        /// Height found.
        found_height: u32,
    },
    /// A dataset folder is malformed (missing mask, duplicate stem, empty, bad categories.csv).
    #[error("{path}: {message}")]
    Dataset {
        /// The file or folder involved.
        path: PathBuf,
        /// What is wrong and what was expected.
        message: String,
    },
}

impl DataError {
    /// Builds [`DataError::Io`] from a path and an I/O error.
    ///
    /// # Examples
    /// ```
    /// use std::io::ErrorKind;
    /// use xray_data::DataError;
    /// let path = std::path::Path::new("/no/such/folder/scan.png");
    /// let err = DataError::io(path, std::fs::read(path).unwrap_err());
    /// let DataError::Io { source, .. } = &err else { panic!("{err}") };
    /// assert_eq!(source.kind(), ErrorKind::NotFound);
    /// assert!(err.to_string().starts_with("/no/such/folder/scan.png: "), "{err}");
    /// ```
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        DataError::Io {
            path: path.into(),
            source,
        }
    }
}

/// How error messages print a number: the rule of `xnet_model::error::readable_number`,
/// included by source (see the file) because the crates do not depend on one another.
#[path = "../../shared-src/readable_number.rs"]
mod readable;
pub(crate) use readable::readable_number;

/// Refuses the first setting of a configuration holding a NaN or an infinity, as
/// `{prefix}{name} = {value} must be finite` (`[low, high]` for a range). serde reads an
/// `f32` written `1e308` or `-1e39` as ±∞ and TOML spells `inf`, so range checks alone
/// (`low > 0 && low <= high`) would let one through. A config whose rules do not already
/// require finite values (`CollimationConfig`, a constant `Border`) lists all its float
/// settings here once, before those rules.
pub(crate) fn check_finite(prefix: &str, fields: &[(&str, &[f32])]) -> Result<()> {
    for (name, values) in fields {
        if values.iter().all(|v| v.is_finite()) {
            continue;
        }
        return Err(DataError::InvalidParameter(format!(
            "{prefix}{name} = {} must be finite",
            readable_values(values)
        )));
    }
    Ok(())
}

/// Settings as messages print them: one value alone, several as `[low, high]`, each by
/// [`readable_number`].
pub(crate) fn readable_values(values: &[f32]) -> String {
    let shown: Vec<String> = values.iter().map(|&v| readable_number(v)).collect();
    match shown.as_slice() {
        [one] => one.clone(),
        many => format!("[{}]", many.join(", ")),
    }
}

/// Check a `[low, high]` range: finite, ordered, inside `[min, max]` (augmentation and
/// phantom settings).
pub(crate) fn check_range(name: &str, r: [f32; 2], min: f32, max: f32) -> Result<()> {
    if !(r[0].is_finite() && r[1].is_finite()) || r[0] > r[1] || r[0] < min || r[1] > max {
        return Err(DataError::InvalidParameter(format!(
            "{name} range {} must be finite, ordered and within [{}, {}]",
            readable_values(&r),
            readable_number(min),
            readable_number(max)
        )));
    }
    Ok(())
}
