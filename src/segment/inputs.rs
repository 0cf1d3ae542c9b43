//! The inputs of a `segment` run: command-line files and folders expanded to radiographs,
//! their stems checked, and how many run at once.

use std::path::{Path, PathBuf};

use xray_data::io::detect_format;

use super::outputs::is_segment_output;
use crate::{Error, Result};

/// The files a list of command-line inputs stands for ([`expand_inputs`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Inputs {
    /// The radiographs to segment: files given by name, in the order given, then each
    /// folder's radiographs sorted by name. A folder entry that cannot be inspected (a
    /// dangling symbolic link, a link loop, no permission) is among them, so that segmenting
    /// it reports the problem for that entry alone.
    pub files: Vec<PathBuf>,
    /// Files inside the folders that are not radiographs (a `README.md`, checksums,
    /// sub-folders), left out.
    pub skipped: Vec<PathBuf>,
    /// Files inside the folders that an earlier `segment` run wrote (named
    /// `<stem>.labels.png`, `.field.png`, `.overlay.png`, `.uncertainty.png` or
    /// `.prob-<k>.png`), left out so that a folder used as its own `--out` is not segmented
    /// again with its results. Named explicitly, such a file is segmented like any other.
    pub previous_outputs: Vec<PathBuf>,
}

/// How many files `segment` works on at the same time: `requested` (`--jobs`) when given,
/// else one per core on the CPU and one on a GPU (the network's work is queued on one stream
/// anyway); never more than there are `files` (but at least one).
///
/// # Errors
/// [`Error::Invalid`] for a request of 0 (it used to be taken as 1 without a word).
///
/// # Examples
/// ```
/// use candle_core::Device;
/// use xray_seg::segment::worker_count;
/// assert_eq!(worker_count(Some(4), &Device::Cpu, 2)?, 2);
/// assert_eq!(worker_count(Some(3), &Device::Cpu, 10)?, 3);
/// assert!(worker_count(Some(0), &Device::Cpu, 10).is_err());
/// # Ok::<(), xray_seg::Error>(())
/// ```
pub fn worker_count(
    requested: Option<usize>,
    device: &candle_core::Device,
    files: usize,
) -> Result<usize> {
    let jobs = match requested {
        Some(0) => {
            return Err(Error::Invalid(
                "--jobs must be at least 1 (the number of files segmented at the same time)".into(),
            ))
        }
        Some(n) => n,
        None => match device {
            candle_core::Device::Cpu => std::thread::available_parallelism().map_or(1, |n| n.get()),
            _ => 1,
        },
    };
    Ok(jobs.clamp(1, files.max(1)))
}

/// File extensions taken as radiographs inside a folder even when their content is not
/// recognised, so that a corrupt image is reported rather than silently left out.
const IMAGE_EXTENSIONS: &[&str] = &["png", "tif", "tiff", "dcm", "dicom", "jpg", "jpeg"];

/// Expands command-line inputs: a file is kept as given (its errors come when it is read);
/// a folder gives its radiographs, not recursively, sorted by name: files whose content is
/// PNG, TIFF, JPEG or DICOM ([`detect_format`] on the first 132 bytes, so extension-less
/// DICOM files count), and files named `.png`, `.tif(f)`, `.jp(e)g`, `.dcm` or `.dicom` whatever their
/// content, and entries that cannot be inspected (a broken symbolic link: reading it
/// reports why). An earlier run's outputs are listed in [`Inputs::previous_outputs`],
/// everything else in a folder in [`Inputs::skipped`]. Then no two
/// inputs may share a file stem, since the outputs are named after it
/// ([`check_unique_stems`]).
///
/// # Errors
/// [`Error::Io`] for an input that does not exist or a folder that cannot be listed,
/// [`Error::Invalid`] for no inputs at all, a folder without a radiograph, or two inputs
/// with the same stem.
///
/// # Examples
/// ```
/// use xray_seg::segment::expand_inputs;
/// let dir = std::env::temp_dir().join(format!("xray-doc-inputs-{}", std::process::id()));
/// std::fs::create_dir_all(&dir)?;
/// std::fs::write(dir.join("b.png"), b"\x89PNG\r\n\x1a\n")?;
/// std::fs::write(dir.join("README.md"), "notes")?;
/// let inputs = expand_inputs(&[dir.clone()])?;
/// assert_eq!(inputs.files, vec![dir.join("b.png")]);
/// assert_eq!(inputs.skipped, vec![dir.join("README.md")]);
/// # std::fs::remove_dir_all(&dir)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn expand_inputs(inputs: &[PathBuf]) -> Result<Inputs> {
    if inputs.is_empty() {
        return Err(Error::Invalid("no input radiograph given".into()));
    }
    let mut out = Inputs::default();
    for input in inputs {
        let meta = std::fs::metadata(input).map_err(|e| Error::io(input, e))?;
        if !meta.is_dir() {
            out.files.push(input.clone());
            continue;
        }
        let mut entries = std::fs::read_dir(input)
            .map_err(|e| Error::io(input, e))?
            .map(|entry| entry.map(|e| e.path()))
            .collect::<std::io::Result<Vec<_>>>()
            .map_err(|e| Error::io(input, e))?;
        entries.sort();
        let before = out.files.len();
        for path in entries {
            // An entry that cannot be inspected (a dangling symbolic link, a link loop, no
            // permission) is kept: reading it reports why, as for any other input, and the
            // rest of the folder is still segmented.
            if is_segment_output(&path) {
                out.previous_outputs.push(path);
            } else if is_radiograph_file(&path).unwrap_or(true) {
                out.files.push(path);
            } else {
                out.skipped.push(path);
            }
        }
        if out.files.len() == before {
            return Err(Error::Invalid(format!(
                "{}: no PNG, TIFF, JPEG or DICOM file in this folder",
                input.display()
            )));
        }
    }
    check_unique_stems(&out.files)?;
    Ok(out)
}

/// Whether a folder entry is taken as a radiograph by [`expand_inputs`].
fn is_radiograph_file(path: &Path) -> std::io::Result<bool> {
    use std::io::Read;
    if !std::fs::metadata(path)?.is_file() {
        return Ok(false);
    }
    let named_as_image = path
        .extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| IMAGE_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()));
    if named_as_image {
        return Ok(true);
    }
    let mut head = Vec::with_capacity(132);
    std::fs::File::open(path)?
        .take(132)
        .read_to_end(&mut head)?;
    Ok(detect_format(path, &head).is_ok())
}

/// Checks that no two inputs share a file stem: [`segment_file`](super::segment_file) names
/// every output after the input's stem, so the second would overwrite the first's (`a/x.png`
/// and `b/x.png`, or `x.png` and `x.dcm`).
///
/// # Errors
/// [`Error::Invalid`] naming the first two inputs that collide.
///
/// # Examples
/// ```
/// use std::path::PathBuf;
/// use xray_seg::segment::check_unique_stems;
/// assert!(check_unique_stems(&[PathBuf::from("a/x.png"), PathBuf::from("a/y.png")]).is_ok());
/// let clash = check_unique_stems(&[PathBuf::from("a/x.png"), PathBuf::from("b/x.dcm")]);
/// assert!(clash.unwrap_err().to_string().contains("a/x.png"));
/// ```
pub fn check_unique_stems(files: &[PathBuf]) -> Result<()> {
    let mut seen: std::collections::HashMap<&std::ffi::OsStr, &PathBuf> =
        std::collections::HashMap::new();
    for file in files {
        let stem = file.file_stem().unwrap_or(file.as_os_str());
        if let Some(first) = seen.insert(stem, file) {
            return Err(Error::Invalid(format!(
                "{} and {} would write the same outputs ({}.*): segment them into \
                 different --out folders or rename one",
                first.display(),
                file.display(),
                stem.to_string_lossy()
            )));
        }
    }
    Ok(())
}
