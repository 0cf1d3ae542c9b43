//! Replacing a checkpoint folder as a whole (a staging folder swapped in by two renames) and
//! finishing or undoing a swap that a crash interrupted.

use std::path::{Path, PathBuf};

use super::atomic::{sync_dir, write_synced};
use super::{read_config, weights_digest, WEIGHTS_FILE};
use crate::{ModelError, Result};

/// The empty file that marks a staging folder as completely written.
const COMPLETE_MARKER: &str = ".complete";

/// The sibling a directory is written under before it replaces the directory.
fn staging_dir(dir: &Path) -> PathBuf {
    sibling_with_suffix(dir, "partial")
}

/// The sibling the replaced directory is moved to until its successor is in place.
fn previous_dir(dir: &Path) -> PathBuf {
    sibling_with_suffix(dir, "previous")
}

fn sibling_with_suffix(dir: &Path, suffix: &str) -> PathBuf {
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    dir.with_file_name(format!("{name}.{suffix}"))
}

/// Replaces the directory `dir` as a whole: `write` fills a fresh staging sibling
/// (`<dir>.partial`, marked complete by an empty `.complete` file written last), which then
/// takes `dir`'s place by two renames (`dir` to
/// `<dir>.previous`, the staging directory to `dir`) before the old one is removed. A reader
/// therefore never finds files from two saves mixed in `dir`; a crash between the renames
/// leaves no `dir` but a complete staging directory, which [`recover_replaced_dir`] puts in
/// place. `dir` must be a directory this crate owns: whatever else it held is replaced too.
pub(crate) fn replace_dir(dir: &Path, write: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    recover_replaced_dir(dir)?;
    let staging = staging_dir(dir);
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| ModelError::Io { path, source }
    };
    std::fs::create_dir_all(&staging).map_err(io(&staging))?;
    if let Err(e) = write(&staging) {
        let _ = std::fs::remove_dir_all(&staging);
        return Err(e);
    }
    // Written last, once everything else is on the disk: recovery promotes only a staging
    // folder that holds it.
    write_synced(&staging.join(COMPLETE_MARKER), b"")?;
    sync_dir(&staging);
    let mut previous = previous_dir(dir);
    if previous.exists() {
        // An old save that could not be removed (a file in it still open on NFS, say): the
        // swap needs the name, and recovery only needs it while `dir` is missing.
        previous = unused_sibling(&previous);
    }
    if dir.exists() {
        std::fs::rename(dir, &previous).map_err(io(dir))?;
    }
    std::fs::rename(&staging, dir).map_err(io(dir))?;
    if let Some(parent) = dir.parent() {
        sync_dir(parent);
    }
    // The new save is in place: failing to delete the old one loses nothing.
    let _ = std::fs::remove_dir_all(&previous);
    Ok(())
}

/// `path` with the first free numeric suffix (`.1`, `.2`, ...).
fn unused_sibling(path: &Path) -> PathBuf {
    (1u32..)
        .map(|n| sibling_with_suffix(path, &n.to_string()))
        .find(|p| !p.exists())
        .unwrap_or_else(|| path.to_path_buf())
}

/// The folders a save of `dir` may have moved it aside to that exist: `<dir>.previous`, then
/// the numbered ones [`replace_dir`] takes when that name is in use (`<dir>.previous.1`, ...),
/// by number.
fn previous_dirs(dir: &Path) -> Vec<PathBuf> {
    let previous = previous_dir(dir);
    let mut found: Vec<(u32, PathBuf)> = Vec::new();
    if previous.exists() {
        found.push((0, previous.clone()));
    }
    let prefix = format!(
        "{}.",
        previous
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    );
    let parent = dir
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    for entry in std::fs::read_dir(parent).into_iter().flatten().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let number = name.strip_prefix(&prefix).and_then(|n| {
            n.bytes()
                .all(|b| b.is_ascii_digit())
                .then(|| n.parse::<u32>().ok())
                .flatten()
        });
        if let Some(n) = number {
            found.push((n, parent.join(&name)));
        }
    }
    found.sort();
    found.into_iter().map(|(_, path)| path).collect()
}

/// Finishes or undoes a [`replace_dir`] that a crash interrupted, so that `dir` holds one
/// whole save again. Returns whether anything was left to clean up.
///
/// - No `dir`: the crash came between the two renames. The staging directory becomes `dir`
///   if it was completely written (it holds the marker written last), else the newest whole
///   save it replaced (`<dir>.previous`, or a numbered sibling) is put back.
/// - A `<dir>.partial` beside an existing `dir`: an unfinished save; it is removed, and `dir`
///   keeps the last complete one.
/// - A `<dir>.previous` beside an existing `dir`: the old save that was not yet removed.
///
/// A save that found `<dir>.previous` in use moved `dir` aside as `<dir>.previous.1` (or the
/// next free number): those count as `<dir>.previous` too, after it.
///
/// The two steps, [`restore_replaced_dir`] and [`remove_replaced_leftovers`], are apart for a
/// caller that removes the leftovers only once `dir` has loaded (a resume).
pub(crate) fn recover_replaced_dir(dir: &Path) -> Result<bool> {
    let restored = restore_replaced_dir(dir)?;
    Ok(remove_replaced_leftovers(dir) || restored)
}

/// The first step of [`recover_replaced_dir`]: when `dir` is missing, puts the complete
/// staging folder or else the previous save in its place, and returns whether it did. The
/// other folders stay: a save marked complete can still be damaged (in a copy of the run
/// folder, or on a disk that lost a write), and the one it was to replace may then be the only
/// whole save.
pub(crate) fn restore_replaced_dir(dir: &Path) -> Result<bool> {
    let staging = staging_dir(dir);
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| ModelError::Io { path, source }
    };
    let mut recovered = false;
    if !dir.exists() {
        let newest = if staging.join(COMPLETE_MARKER).is_file() {
            Some(staging.clone())
        } else {
            newest_previous(dir)
        };
        if let Some(newest) = newest {
            std::fs::rename(&newest, dir).map_err(io(dir))?;
            recovered = true;
        }
    }
    Ok(recovered)
}

/// The save to put back when `dir` is missing and no staging folder is complete (only a copy
/// of the run folder, or a disk that lost a write, leaves that): of the folders swaps moved
/// `dir` aside to, the one that holds its weights, then the one whose metadata records the
/// latest epoch (`next_epoch` for a trainer's `last/`, `epoch` for its `best/`), then the one
/// moved aside last. `<dir>.previous` is older than any numbered sibling (a save takes a
/// number only when that name is in use), so a name-order pick would retrain from an older
/// epoch than the run had reached.
fn newest_previous(dir: &Path) -> Option<PathBuf> {
    previous_dirs(dir)
        .into_iter()
        .enumerate()
        .filter(|(_, p)| p.is_dir())
        .max_by_key(|(order, p)| (holds_its_weights(p), recorded_epoch(p), *order))
        .map(|(_, p)| p)
}

/// The epoch a checkpoint folder's metadata records, if it reads and records one.
fn recorded_epoch(dir: &Path) -> Option<u64> {
    let config = read_config(dir).ok()?;
    ["next_epoch", "epoch"]
        .iter()
        .find_map(|key| config.metadata.get(*key).and_then(|v| v.as_u64()))
}

/// The second step of [`recover_replaced_dir`], for when `dir` holds a whole save: removes the
/// staging and previous folders of its swap, and returns whether there were any. Leftovers
/// that cannot be deleted are left, not an error (the next save swaps around them).
pub(crate) fn remove_replaced_leftovers(dir: &Path) -> bool {
    let mut found = false;
    for leftover in std::iter::once(staging_dir(dir)).chain(previous_dirs(dir)) {
        if leftover.exists() {
            let _ = std::fs::remove_dir_all(&leftover);
            found = true;
        }
    }
    found
}

/// Whether the checkpoint folder `dir` holds the weights its config was saved with: the config
/// reads, and the weights file is there, with the recorded [`weights_digest`] if any. (Not
/// whether every value is finite: [`load`](super::load) checks that.)
pub(crate) fn holds_its_weights(dir: &Path) -> bool {
    let Ok(config) = read_config(dir) else {
        return false;
    };
    let Ok(bytes) = std::fs::read(dir.join(WEIGHTS_FILE)) else {
        return false;
    };
    config
        .weights_digest
        .is_none_or(|want| weights_digest(&bytes) == want)
}
