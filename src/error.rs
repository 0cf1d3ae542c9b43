//! The error type of the jobs: one variant per crate, plus the jobs' own checks.

use std::path::PathBuf;

/// Result alias with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything a job can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Reading, writing or preparing data. The message is the data error's, followed, where
    /// a flag of the examples avoids the error, by that flag: `--allow-rgb` for a colour
    /// image ([`xray_data::DataError::ColorImage`], whose own message names the library's
    /// `LoadOptions::allow_rgb`).
    ///
    /// ```
    /// use std::path::PathBuf;
    /// use xray_data::DataError;
    /// let colour = DataError::ColorImage { path: PathBuf::from("hip.png"), found: "Rgb8".into() };
    /// let e = xray_seg::Error::from(colour).to_string();
    /// assert!(e.starts_with("hip.png: not plain grayscale") && e.contains("--allow-rgb converts"), "{e}");
    /// ```
    #[error("{0}{hint}", hint = flag_hint(.0))]
    Data(#[from] xray_data::DataError),
    /// Building, training or running a network.
    #[error(transparent)]
    Model(#[from] xnet_model::ModelError),
    /// Computing metrics, reports or plots.
    #[error(transparent)]
    Metrics(#[from] xray_metrics::MetricsError),
    /// Post-processing (thresholds, collimator, overlays).
    #[error(transparent)]
    Postproc(#[from] xray_postproc::PostprocError),
    /// An operating-system error on a named file.
    #[error("{path}: {source}")]
    Io {
        /// The file involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A job option or an input that cannot work, with what was expected. The message names
    /// the flag or the file itself (many are not about an option: an empty dataset, a folder
    /// that holds a training run), so it carries no prefix.
    ///
    /// ```
    /// let e = xray_seg::Error::Invalid("runs/data: the dataset is empty".into());
    /// assert_eq!(e.to_string(), "runs/data: the dataset is empty");
    /// ```
    #[error("{0}")]
    Invalid(String),
}

impl Error {
    /// An [`Error::Io`] on `path`.
    ///
    /// # Examples
    /// ```
    /// use std::io::{Error as IoError, ErrorKind};
    /// use std::path::Path;
    /// use xray_seg::Error;
    /// let e = Error::io("runs/hip/report.json", IoError::new(ErrorKind::PermissionDenied, "denied"));
    /// assert_eq!(e.to_string(), "runs/hip/report.json: denied");
    /// let Error::Io { path, source } = e else { panic!("not an Io error") };
    /// assert_eq!(path, Path::new("runs/hip/report.json"));
    /// assert_eq!(source.kind(), ErrorKind::PermissionDenied);
    /// ```
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}

/// The examples' flag that avoids a data error, as a suffix of its message, or nothing.
fn flag_hint(e: &xray_data::DataError) -> &'static str {
    match e {
        xray_data::DataError::ColorImage { .. } => {
            " (with the examples: --allow-rgb converts colour images to grey)"
        }
        _ => "",
    }
}
