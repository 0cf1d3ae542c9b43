//! The crate's single error type.

use std::path::PathBuf;

/// Everything that can go wrong in `xray-metrics`. Every variant names what was wrong and
/// where (pixel, class, file, line), so the caller can fix the input.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    /// Two inputs that must describe the same pixels have different lengths.
    #[error("length mismatch: {what} has {found} values, expected {expected}")]
    LengthMismatch {
        /// Which input, in words (e.g. "probabilities (C × pixels)").
        what: String,
        /// Length implied by the other inputs.
        expected: usize,
        /// Length received.
        found: usize,
    },
    /// A label is neither a class index below `num_classes` nor 255 (ignore).
    #[error(
        "label {label} at pixel {pixel} is not a class: expected a class below {num_classes} or 255 (ignore)"
    )]
    LabelOutOfRange {
        /// Pixel index (row-major within the image).
        pixel: usize,
        /// The offending value.
        label: u8,
        /// Number of classes configured.
        num_classes: usize,
    },
    /// A predicted class is not below `num_classes` (255 is not allowed in predictions).
    #[error("predicted class {label} at pixel {pixel} is not below num_classes = {num_classes}")]
    PredictionOutOfRange {
        /// Pixel index.
        pixel: usize,
        /// The offending value.
        label: u8,
        /// Number of classes configured.
        num_classes: usize,
    },
    /// A probability is NaN, infinite or outside [0, 1].
    #[error(
        "probability of class {class} at pixel {pixel} is {}, not a number in [0, 1]",
        readable_number(*.value)
    )]
    InvalidProbability {
        /// Pixel index.
        pixel: usize,
        /// Class plane.
        class: usize,
        /// The offending value.
        value: f32,
    },
    /// The class probabilities of a pixel do not sum to 1.
    #[error(
        "probabilities at pixel {pixel} sum to {}, not 1 within {}; \
         pass softmax outputs laid out class-major (C planes of pixels)",
        readable_number(*.sum),
        readable_number(*.tolerance)
    )]
    ProbabilitiesNotNormalised {
        /// Pixel index.
        pixel: usize,
        /// The sum found.
        sum: f64,
        /// Tolerance in force.
        tolerance: f64,
    },
    /// A logit is NaN or infinite.
    #[error("logit of class {class} at pixel {pixel} is {value}, not finite")]
    InvalidLogit {
        /// Pixel index.
        pixel: usize,
        /// Class plane.
        class: usize,
        /// The offending value.
        value: f32,
    },
    /// One-vs-rest AUC of a class is undefined because the class has no positive or no
    /// negative pixel (scikit-learn raises in this case too).
    #[error(
        "AUC of class {class} is undefined: it has {positives} positive and {negatives} negative \
         pixels; both must be > 0 (scikit-learn refuses this case as well)"
    )]
    AucUndefined {
        /// Class index.
        class: usize,
        /// Pixels labelled `class`.
        positives: u64,
        /// Other labelled pixels.
        negatives: u64,
    },
    /// There is nothing to compute on (all pixels ignored, no images added, ...).
    #[error("nothing to evaluate: {0}")]
    Empty(String),
    /// A configuration value is out of its domain.
    #[error("invalid configuration: {0}")]
    InvalidConfig(String),
    /// An image's boundary distances would be in another unit than those of the images
    /// before it: their mean would add pixels to millimetres.
    #[error(
        "image {image} (counting from 0, in the order added) has its boundary distances in \
         {unit}, the images before it in {earlier}: one mean cannot hold both; give every \
         image a spacing in the same unit"
    )]
    MixedDistanceUnits {
        /// The image refused (its index among the images added, merged evaluators counted
        /// after the receiving one's).
        image: usize,
        /// Its unit.
        unit: crate::DistanceUnit,
        /// The unit of the images before it.
        earlier: crate::DistanceUnit,
    },
    /// A trainer log could not be parsed.
    #[error("{}training log line {line}: {reason}", file_prefix(file.as_deref()))]
    Log {
        /// The log file, when the text was read from one ([`TrainingLog::load`], or an error
        /// given its file by [`MetricsError::in_file`]).
        ///
        /// [`TrainingLog::load`]: crate::TrainingLog::load
        file: Option<PathBuf>,
        /// 1-based line number (0: the log as a whole, e.g. it has no rows).
        line: usize,
        /// What was wrong.
        reason: String,
    },
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// Drawing a plot failed.
    #[error("plot {path}: {reason}")]
    Plot {
        /// The output file.
        path: PathBuf,
        /// What the backend reported.
        reason: String,
    },
    /// JSON (de)serialisation failed.
    #[error("JSON: {0}")]
    Json(#[from] serde_json::Error),
}

/// `Result` with [`MetricsError`].
pub type Result<T> = std::result::Result<T, MetricsError>;

impl MetricsError {
    /// Names `path` as the file a [`MetricsError::Log`] was read from (one that names a
    /// file already keeps it); any other error is returned as it is. For a caller that read
    /// the log's text itself and parsed it with [`TrainingLog::parse`].
    ///
    /// [`TrainingLog::parse`]: crate::TrainingLog::parse
    ///
    /// # Examples
    /// ```
    /// use xray_metrics::TrainingLog;
    /// let e = TrainingLog::parse("{\"epoch\":1}\nnot json").unwrap_err();
    /// let e = e.in_file("runs/a/log.jsonl");
    /// assert!(e.to_string().starts_with("runs/a/log.jsonl: training log line 2:"), "{e}");
    /// ```
    pub fn in_file(self, path: impl AsRef<std::path::Path>) -> Self {
        match self {
            MetricsError::Log {
                file: None,
                line,
                reason,
            } => MetricsError::Log {
                file: Some(path.as_ref().to_path_buf()),
                line,
                reason,
            },
            other => other,
        }
    }
}

/// `"<file>: "` before a log error's text, or nothing when no file is known.
fn file_prefix(file: Option<&std::path::Path>) -> String {
    file.map(|f| format!("{}: ", f.display()))
        .unwrap_or_default()
}

/// How error messages print a number: the rule of `xnet_model::error::readable_number`,
/// included by source (see the file) because the crates do not depend on one another.
#[path = "../../shared-src/readable_number.rs"]
mod readable;
pub(crate) use readable::readable_number;
