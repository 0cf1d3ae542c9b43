//! Files written atomically: a temporary sibling flushed to the disk, then renamed into place.

use std::collections::HashMap;
use std::path::Path;

use candle_core::Tensor;
use serde::Serialize;

use super::weights_digest;
use crate::{ModelError, Result};

/// Writes named tensors as safetensors: temporary file, then rename. Returns the file's
/// [`weights_digest`].
pub(crate) fn write_safetensors_atomic(
    path: &Path,
    tensors: &HashMap<String, Tensor>,
) -> Result<String> {
    // Sorted for a deterministic file.
    let mut sorted: Vec<(&String, &Tensor)> = tensors.iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(b.0));
    let bytes =
        safetensors::tensor::serialize(sorted, None).map_err(|e| ModelError::Safetensors {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
    let digest = weights_digest(&bytes);
    write_bytes_atomic(path, &bytes)?;
    Ok(digest)
}

/// Writes `bytes` to `path` and flushes them to the disk before returning, so that a rename
/// that follows cannot reach the disk before the data (a power cut would otherwise be able to
/// leave an empty file under the final name).
pub(super) fn write_synced(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let io = |source| ModelError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut file = std::fs::File::create(path).map_err(io)?;
    file.write_all(bytes).map_err(io)?;
    file.sync_all().map_err(io)
}

/// Flushes a directory's entries (renames into it) to the disk. Best effort: not every
/// platform can open a directory for that, and the data are already safe.
pub(super) fn sync_dir(dir: &Path) {
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
}

/// Writes bytes to `path` atomically: a temporary sibling (`.<name>.tmp-<pid>`) flushed to
/// the disk, then renamed into place, so that a reader finds the old file or the new one
/// whole, never a mix, and a write that fails (a full disk) or a crash leaves the old file as
/// it was. A failed write removes its temporary file.
///
/// # Errors
/// [`ModelError::Io`] naming `path` when the file cannot be written or renamed into place.
///
/// # Examples
/// ```
/// use xnet_model::checkpoint::write_bytes_atomic;
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let dir = std::env::temp_dir().join(format!("xnet-doc-bytes-{}", std::process::id()));
/// std::fs::create_dir_all(&dir)?;
/// let path = dir.join("summary.jsonl");
/// write_bytes_atomic(&path, b"{\"a\":1}\n")?;
/// write_bytes_atomic(&path, b"{\"a\":1}\n{\"b\":2}\n")?; // replaces it whole
/// assert_eq!(std::fs::read_to_string(&path)?.lines().count(), 2);
/// assert_eq!(std::fs::read_dir(&dir)?.count(), 1); // no temporary file left behind
/// let e = write_bytes_atomic(&dir.join("no/such/dir.txt"), b"x").unwrap_err();
/// assert!(e.to_string().contains("dir.txt"), "{e}");
/// std::fs::remove_dir_all(&dir)?;
/// # Ok(())
/// # }
/// ```
pub fn write_bytes_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    // The error of the temporary file is reported on the file it was to become: that is the
    // name a user knows, and the temporary one is gone.
    crate::atomic_write::write_atomic_synced(path, bytes).map_err(|source| ModelError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// Writes a value as pretty JSON: temporary file, then rename.
///
/// # Errors
/// A value that does not serialise, or a file-system error.
///
/// # Examples
/// ```
/// use xnet_model::checkpoint::write_json_atomic;
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let dir = std::env::temp_dir().join(format!("xnet-doc-json-{}", std::process::id()));
/// std::fs::create_dir_all(&dir)?;
/// let path = dir.join("state.json");
/// write_json_atomic(&path, &serde_json::json!({ "next_epoch": 3 }))?;
/// write_json_atomic(&path, &serde_json::json!({ "next_epoch": 4 }))?; // replaces it whole
/// let back: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path)?)?;
/// assert_eq!(back["next_epoch"], 4);
/// assert_eq!(std::fs::read_dir(&dir)?.count(), 1); // no temporary file left behind
/// // A missing folder is an error naming the file.
/// let e = write_json_atomic(&dir.join("no/such/dir.json"), &1).unwrap_err();
/// assert!(e.to_string().contains("dir.json"), "{e}");
/// std::fs::remove_dir_all(&dir)?;
/// # Ok(())
/// # }
/// ```
pub fn write_json_atomic<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    let text = serde_json::to_string_pretty(value).map_err(|source| ModelError::Json {
        path: path.to_path_buf(),
        source,
    })?;
    write_bytes_atomic(path, text.as_bytes())
}
