//! The error type of `xnet-model`.

/// Result alias with [`ModelError`].
pub type Result<T, E = ModelError> = std::result::Result<T, E>;

/// Everything that can go wrong while building, training, saving or running a network.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// An error raised by candle (shape mismatch, device error, ...).
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
    /// An invalid configuration or argument.
    #[error("invalid configuration: {0}")]
    InvalidConfig(String),
    /// An operating-system I/O error on a named file.
    #[error("{path}: {source}")]
    Io {
        /// The file involved.
        path: std::path::PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// Input data of the wrong size or content (image plane, label map, batch).
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// A JSON file (configuration, checkpoint metadata, training state) could not be read or
    /// written.
    #[error("{path}: {source}")]
    Json {
        /// The file involved.
        path: std::path::PathBuf,
        /// The underlying error.
        #[source]
        source: serde_json::Error,
    },
    /// A safetensors file could not be read or written.
    #[error("{path}: safetensors: {message}")]
    Safetensors {
        /// The file involved.
        path: std::path::PathBuf,
        /// What went wrong.
        message: String,
    },
    /// A stored tensor does not have the shape the configuration expects.
    #[error(
        "{path}: tensor `{tensor}` has shape {found:?} but the model configuration expects \
         {expected:?}; the weights were saved for a different configuration"
    )]
    WeightShape {
        /// The weights file.
        path: std::path::PathBuf,
        /// The tensor's name.
        tensor: String,
        /// The shape the model built from the configuration has.
        expected: Vec<usize>,
        /// The shape stored in the file.
        found: Vec<usize>,
    },
    /// Tensors the model needs are missing from a weights file, or the file holds tensors
    /// the model does not have.
    #[error(
        "{path}: weights do not fit the model configuration: missing {missing:?}, \
         unexpected {unexpected:?}"
    )]
    WeightNames {
        /// The weights file.
        path: std::path::PathBuf,
        /// Tensors the model has but the file lacks.
        missing: Vec<String>,
        /// Tensors the file holds but the model does not have.
        unexpected: Vec<String>,
    },
    /// A stored tensor holds a value the network cannot run with: NaN or infinity, or a
    /// negative batch-norm running variance.
    #[error("{path}: tensor `{tensor}`: {message}")]
    WeightValue {
        /// The weights file.
        path: std::path::PathBuf,
        /// The tensor's name.
        tensor: String,
        /// What is wrong and where (flat index and value).
        message: String,
    },
    /// The training loss, gradient norm, validation loss or a weight became NaN or infinite.
    #[error(
        "non-finite {what} ({value}) at epoch {epoch}, batch {batch}; training stopped{} \
         (the training diverged: a lower learning rate, or gradient clipping, usually helps)",
        match checkpoint {
            Some(p) => format!(", the last good checkpoint is in {}", p.display()),
            None => String::from(" (no checkpoint directory was set)"),
        }
    )]
    NonFinite {
        /// What became non-finite (`"loss"`, `"gradient norm"`, `"validation loss"` or
        /// `"weight"`).
        what: &'static str,
        /// The offending value.
        value: f64,
        /// Epoch (0-based) where it happened.
        epoch: usize,
        /// Batch within the epoch (0-based).
        batch: usize,
        /// Directory of the last good checkpoint, when one was kept.
        checkpoint: Option<std::path::PathBuf>,
    },
    /// An error raised by a caller-supplied batch source (data loading, augmentation).
    #[error("batch source: {0}")]
    Data(#[source] Box<dyn std::error::Error + Send + Sync>),
}

#[path = "../../shared-src/readable_number.rs"]
mod readable;

/// A number as an error message should show it: `{}` for everyday magnitudes, scientific
/// notation (`{:e}`) from 10⁶ up and below 10⁻⁴, so that a refused `1e308` reads `1e308`
/// rather than a 309-digit integer. NaN and the infinities print as `NaN`, `inf`, `-inf`.
/// An `f32` prints with its own shortest digits (`0.1f32` reads `0.1`).
///
/// The rule lives in `crates/shared-src/readable_number.rs`, which xray-data, xray-metrics
/// and xray-postproc include for their own messages too (the crates do not depend on one
/// another).
///
/// # Examples
/// ```
/// use xnet_model::error::readable_number;
/// assert_eq!(readable_number(1e308), "1e308");
/// assert_eq!(readable_number(-2.5e-9), "-2.5e-9");
/// assert_eq!(readable_number(0.5), "0.5");
/// assert_eq!(readable_number(0.0), "0");
/// assert_eq!(readable_number(123456.0), "123456");
/// assert_eq!(readable_number(0.1f32), "0.1");
/// assert_eq!(readable_number(f32::MAX), "3.4028235e38");
/// ```
pub fn readable_number<T>(v: T) -> String
where
    T: Copy + Into<f64> + std::fmt::Display + std::fmt::LowerExp,
{
    readable::readable_number(v)
}

/// Refuses the first of `fields` (name as in the JSON config, value) that is NaN, infinite or
/// beyond the `f32` range (rounds to an infinite `f32`), naming it.
///
/// For the `f64` hyper-parameters that have no upper bound of their own (learning rates,
/// epsilons, weight decays, loss coefficients): the networks compute in `f32`, and candle
/// rounds a scalar to the tensor's type, so a value beyond `f32::MAX` (such as a `1e308`
/// typed into a JSON config, which `f64` holds) would run as infinity. Fields bounded by
/// their own range (a momentum in `[0, 1]`) are refused by that check instead, whose message
/// says more.
pub(crate) fn check_f32_range(fields: &[(&str, f64)]) -> Result<()> {
    for &(name, v) in fields {
        // What candle does with the scalar: round it to f32 (nearest), which overflows to
        // infinity only beyond f32::MAX by half an f32 ulp or more.
        if !(v as f32).is_finite() {
            return Err(ModelError::InvalidConfig(format!(
                "{name} must be a finite number no larger than {} in magnitude (the network \
                 computes in f32, where a larger value is infinity), got {}",
                readable_number(f32::MAX),
                readable_number(v)
            )));
        }
    }
    Ok(())
}
