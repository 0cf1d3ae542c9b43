//! The jobs a user runs, built from the four crates of the workspace: training, evaluation,
//! segmentation of real radiographs and the side-by-side comparison of architectures.
//!
//! The examples under `examples/` are thin command-line wrappers around these functions, so
//! that their core paths are tested on tiny configurations (`tests/jobs.rs`) and can be
//! called from other programs.
//!
//! | module | job |
//! |---|---|
//! | [`prepare`] | how an image becomes network input (shared by training and inference) |
//! | [`source`] | dataset folders as batch sources for the trainer (augmentation, balancing) |
//! | [`predict`] | a loaded checkpoint that returns probabilities at the input's size |
//! | [`calibrate`] | the softmax temperature fitted on labelled images |
//! | [`train`] | `train`: synthetic or given data → checkpoint, report, plots, overlays |
//! | [`evaluate`] | `evaluate`: checkpoint + labelled folder → report and plots |
//! | [`segment`] | `segment`: radiographs → labels, field, overlays |
//! | [`compare`] | `compare`: every architecture under one budget → one table |
//!
//! # Sizes
//!
//! The workspace's convention (docs/architecture.md): tensor-like data (candle tensors,
//! class-major `C × H × W` probability maps) takes (classes,) `height`, then `width`, as
//! candle does; image-like data (radiographs, masks, label maps, planes) takes `width`, then
//! `height`, as the `image` crate does. Sizes are mostly read from the images themselves here;
//! one function takes them and differs from the rule: [`prepare::resize_probabilities`] takes
//! a `C × H × W` map with `(width, height)` pairs, as
//! `xray_data::resize::resize_probabilities`, which it calls.
#![deny(missing_docs)]

/// Replacing output files atomically (`segment`'s images and field). Shared with the
/// library crates by source.
#[path = "../crates/shared-src/atomic_write.rs"]
mod atomic_write;
pub mod calibrate;
pub mod compare;
pub mod error;
pub mod evaluate;
pub mod predict;
pub mod prepare;
pub mod segment;
pub mod source;
pub mod train;

pub use error::{Error, Result};

/// Class names of the project's convention, in label order.
pub const CLASS_NAMES: [&str; 3] = ["open beam", "soft tissue", "bone"];

/// Directory of the shipped CPU-sized XNet checkpoint (`model.safetensors` +
/// `config.json`), used by `segment` when no `--weights` are given.
///
/// # Examples
/// ```
/// use candle_core::Device;
/// use xray_seg::predict::Predictor;
/// let dir = xray_seg::shipped_weights_dir();
/// assert!(dir.join("model.safetensors").is_file() && dir.join("config.json").is_file());
/// let predictor = Predictor::load(&dir, &Device::Cpu)?;
/// assert_eq!(predictor.num_classes(), xray_seg::CLASS_NAMES.len());
/// assert!(predictor.preprocess_recorded());
/// # Ok::<(), xray_seg::Error>(())
/// ```
pub fn shipped_weights_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/weights/xnet-small")
}

/// Checks an output folder given on the command line (`--out`) before any work is done: it
/// must be a folder or not exist yet, and the nearest part of its path that exists must be a
/// folder. A file given there is then reported once, up front, rather than by every write
/// into it after the model has loaded and the inputs have been processed.
///
/// # Errors
/// [`Error::Invalid`] ("--out X is a file, not a folder") when `out`, or the part of it
/// that exists, is a file.
///
/// # Examples
/// ```
/// let dir = std::env::temp_dir().join(format!("xray-seg-doc-out-{}", std::process::id()));
/// std::fs::create_dir_all(&dir)?;
/// assert!(xray_seg::check_out_dir(&dir.join("new/out")).is_ok());
/// std::fs::write(dir.join("notes.txt"), "x")?;
/// let e = xray_seg::check_out_dir(&dir.join("notes.txt")).unwrap_err();
/// assert!(e.to_string().contains("is a file, not a folder"));
/// # std::fs::remove_dir_all(&dir)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn check_out_dir(out: &std::path::Path) -> Result<()> {
    for dir in out.ancestors().filter(|d| !d.as_os_str().is_empty()) {
        // A part that cannot be read (missing, or behind a file) is passed over: the first
        // that can says whether the folder can be made; other errors come when it is.
        let Ok(meta) = std::fs::metadata(dir) else {
            continue;
        };
        if meta.is_dir() {
            return Ok(());
        }
        return Err(Error::Invalid(if dir == out {
            format!("--out {} is a file, not a folder", out.display())
        } else {
            format!(
                "--out {}: {} is a file, not a folder",
                out.display(),
                dir.display()
            )
        }));
    }
    Ok(())
}

/// Reads a pixel spacing given on the command line (`--pixel-spacing` of `evaluate` and
/// `segment`): `ROW[,COLUMN]` in mm, one value for square pixels, DICOM's order (the
/// distance between rows first), marked [`SpacingSource::Stated`]. The message of a
/// refusal names no flag: clap puts it after the flag's name.
///
/// [`SpacingSource::Stated`]: xray_data::io::SpacingSource::Stated
///
/// # Errors
/// A message for text that is not one or two numbers, or a spacing that
/// [`xray_data::io::PixelSpacing::new`] refuses (not finite, not above 0, above 10 mm: a
/// pitch in micrometres).
///
/// # Examples
/// ```
/// use xray_seg::parse_pixel_spacing;
/// let s = parse_pixel_spacing("0.2,0.15").unwrap();
/// assert_eq!((s.row_mm(), s.column_mm()), (0.2, 0.15));
/// assert_eq!(parse_pixel_spacing("0.143").unwrap().column_mm(), 0.143);
/// assert!(parse_pixel_spacing("139").unwrap_err().contains("micrometres"));
/// assert!(parse_pixel_spacing("0.1,0.2,0.3").is_err());
/// ```
pub fn parse_pixel_spacing(text: &str) -> std::result::Result<xray_data::io::PixelSpacing, String> {
    let values: Vec<f64> = text
        .split(',')
        .map(|v| v.trim().parse::<f64>().map_err(|e| format!("{v:?}: {e}")))
        .collect::<std::result::Result<_, _>>()?;
    let (row, column) = match values[..] {
        [square] => (square, square),
        [row, column] => (row, column),
        _ => return Err("expected ROW or ROW,COLUMN in mm, e.g. 0.143 or 0.2,0.15".into()),
    };
    xray_data::io::PixelSpacing::new(row, column, xray_data::io::SpacingSource::Stated)
        .map_err(|e| e.to_string())
}
