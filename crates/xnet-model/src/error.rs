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
}
