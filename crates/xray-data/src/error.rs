//! The error type of `xray-data`.

use std::path::PathBuf;

/// Result alias with [`DataError`].
pub type Result<T, E = DataError> = std::result::Result<T, E>;

/// Everything that can go wrong while reading, writing or preparing radiographs and masks.
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
}
