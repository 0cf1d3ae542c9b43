//! Replacing a file atomically, shared by the workspace's crates (each includes this file
//! with `#[path]`, so that none has to depend on another for it, and maps the
//! `std::io::Error` into its own error type naming the file).
//!
//! The bytes go to a temporary sibling, `.<name>.tmp-<pid>` (the same directory, so that
//! the rename cannot cross file systems; the name `xnet_model::checkpoint`'s clean-up of a
//! stopped process's leftovers looks for), and the temporary file is renamed over `path`: a
//! reader finds the old file or the new one whole, and a write that fails part way (a full
//! disk) or a process that stops leaves the old file as it was. A failed write removes its
//! temporary file, which would otherwise hold the space the disk lacked.
//!
//! `write_atomic` does not flush the bytes to the disk before the rename: it writes
//! outputs (images, masks, reports, plots) that can be made again, by the hundred (a
//! synthetic data set), and a flush costs about 2 ms a file on this project's VM (0.55 s for
//! 320 files, against 0.01 s). Checkpoints, which a power cut must not cost, go through
//! `write_atomic_synced` (`xnet_model::checkpoint::write_bytes_atomic`).

use std::path::{Path, PathBuf};

/// The temporary sibling of `path` that [`write_atomic`] writes first.
fn temp_sibling(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.tmp-{}", std::process::id()))
}

/// Replaces `path` with `bytes` atomically (module docs), without flushing them to the disk
/// first. The error is the failed step's; the caller names `path` in it, the name the user
/// knows.
// Each crate that includes this file uses one of the two writers.
#[allow(dead_code)]
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    replace(path, bytes, false)
}

/// [`write_atomic`], flushing the bytes to the disk before the rename, so that the rename
/// cannot reach the disk before the data (a power cut would otherwise be able to leave an
/// empty file under the final name): for checkpoints.
#[allow(dead_code)]
pub(crate) fn write_atomic_synced(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    replace(path, bytes, true)
}

fn replace(path: &Path, bytes: &[u8], flush: bool) -> std::io::Result<()> {
    use std::io::Write;
    let tmp = temp_sibling(path);
    let written = std::fs::File::create(&tmp).and_then(|mut file| {
        file.write_all(bytes)?;
        if flush {
            file.sync_all()?;
        }
        Ok(())
    });
    if let Err(e) = written.and_then(|()| std::fs::rename(&tmp, path)) {
        // A write that failed part way (a full disk) must not leave the part behind, holding
        // the space it lacked.
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    Ok(())
}
