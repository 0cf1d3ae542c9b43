//! The files a `segment` run writes beside its inputs: their names, the clean-up of an
//! earlier run's, and the check that no output would overwrite an input.

use std::path::{Path, PathBuf};

use xnet_model::models::MAX_CLASSES;

use crate::{Error, Result};

/// The outputs `<stem>.<kind>` of an input other than its probability maps
/// (`<stem>.prob-<k>.png`).
const OUTPUT_KINDS: [&str; 5] = [
    "labels.png",
    "field.png",
    "field.json",
    "overlay.png",
    "uncertainty.png",
];

/// Whether `out_dir` holds an output that a `segment` run with a network of `classes`
/// classes writes for `stem` (`<stem>.labels.png`, `.field.png`, `.field.json`,
/// `.overlay.png`, `.uncertainty.png`, `.prob-<k>.png` for `k < classes`), even one run cut
/// short: a few lookups, so that a batch into a folder without them looks for no stale
/// output ([`remove_stale_outputs`] looks up every name an earlier run could have written).
pub(super) fn has_outputs_of(out_dir: &Path, stem: &str, classes: usize) -> bool {
    let exists =
        |kind: &str| std::fs::symlink_metadata(out_dir.join(format!("{stem}.{kind}"))).is_ok();
    OUTPUT_KINDS.iter().any(|kind| exists(kind))
        || (0..classes).any(|k| exists(&format!("prob-{k}.png")))
}

/// After an input failed: removes every earlier output of `stem` in `out_dir`, so that none
/// passes for this run's. The input's own error is the one to report, so nothing is said
/// here: a stem that is not a plain name or an `out_dir` that is not a folder has no outputs
/// of ours, and a stale output that cannot be removed stays, as it would have without this
/// clean-up.
pub(super) fn discard_outputs(out_dir: &Path, stem: &str) {
    if crate::train::check_plain_name("output stem", stem, "hip").is_ok()
        && crate::check_out_dir(out_dir).is_ok()
    {
        let _ = remove_stale_outputs(out_dir, stem, &[]);
    }
}

/// Removes the files named as `stem`'s outputs in `out_dir` (`<stem>.labels.png`,
/// `.field.png`, `.field.json`, `.overlay.png`, `.uncertainty.png`, `.prob-<k>.png` for any
/// `k` below [`MAX_CLASSES`]) other than `keep`, and returns them: what an earlier run wrote
/// and this one did not (probability maps of a run with `--probs` or with a network of more
/// classes, every output of an input that now fails) would otherwise pass for this run's. A
/// folder that does not exist holds none.
///
/// It looks each name up rather than listing the folder: a rerun into a folder of `n` inputs'
/// outputs would otherwise list `4n` or more entries once per input, a cost that grows as the
/// square of the batch (17 ms per listing of 50 000 entries), where the lookups cost the same
/// whatever the folder holds.
///
/// # Errors
/// [`Error::Io`] for a file that cannot be removed.
pub(super) fn remove_stale_outputs(
    out_dir: &Path,
    stem: &str,
    keep: &[&Path],
) -> Result<Vec<PathBuf>> {
    let fixed = OUTPUT_KINDS.map(|kind| format!("{stem}.{kind}"));
    let maps = (0..MAX_CLASSES).map(|k| format!("{stem}.prob-{k}.png"));
    let mut removed = Vec::new();
    for name in fixed.into_iter().chain(maps) {
        let path = out_dir.join(name);
        // A folder named like an output is not one of ours; a link is removed, not followed.
        let is_file = std::fs::symlink_metadata(&path).is_ok_and(|m| !m.is_dir());
        if !is_file || keep.iter().any(|k| *k == path) {
            continue;
        }
        match std::fs::remove_file(&path) {
            Ok(()) => removed.push(path),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io(&path, e)),
        }
    }
    Ok(removed)
}

/// Whether a file name is one of the images [`segment_file`](super::segment_file) writes.
pub(super) fn is_segment_output(path: &Path) -> bool {
    path.file_name()
        .and_then(|n| n.to_str())
        .and_then(output_stem)
        .is_some()
}

/// The input stem of a file name that [`segment_file`](super::segment_file) writes (`hip`
/// for `hip.labels.png`, `hip.field.json`, `hip.prob-2.png`, ...), or `None` for any other
/// name.
fn output_stem(name: &str) -> Option<&str> {
    if let Some(base) = name.strip_suffix(".field.json") {
        return (!base.is_empty()).then_some(base);
    }
    let (base, kind) = name.strip_suffix(".png")?.rsplit_once('.')?;
    let known = matches!(kind, "labels" | "field" | "overlay" | "uncertainty")
        || kind
            .strip_prefix("prob-")
            .is_some_and(|k| !k.is_empty() && k.bytes().all(|b| b.is_ascii_digit()));
    (!base.is_empty() && known).then_some(base)
}

/// The summary the `segment` example writes into its output folder, one JSON line per input.
pub const SUMMARY_FILE: &str = "segment.jsonl";

/// Writes [`SUMMARY_FILE`] into `out_dir` (created if need be) and returns its path: one
/// JSON line per input of this run, in the order given (each a [`Segmented`](super::Segmented)
/// or `{"error": ...}` object with the input's path under `"input"`), after the lines an
/// earlier run wrote there for inputs this run did not segment.
///
/// An output folder is often used again (another batch, one file redone): a summary of this
/// run alone would drop the lines of the earlier inputs whose outputs stay in the folder, and
/// with them their label counts, expected errors, warnings and errors. So an earlier line is
/// kept when its input's stem (`"stem"`, else the file stem of `"input"`) is not one of this
/// run's and either its `<stem>.labels.png` is still in `out_dir` or it reports an error (a
/// failed input has no outputs); a line that is not a JSON object (edited by hand) is kept as
/// it is. A line of an input segmented again is replaced by this run's.
///
/// # Errors
/// [`Error::Io`] when the folder cannot be made or the summary cannot be read, and
/// [`Error::Model`] holding an I/O error naming the summary when it cannot be written (it is
/// replaced atomically, so the earlier one then stays as it was).
///
/// # Examples
/// ```
/// use serde_json::json;
/// use xray_seg::segment::write_summary;
/// let out = std::env::temp_dir().join(format!("xray-doc-summary-{}", std::process::id()));
/// let failed = |input: &str| json!({ "input": input, "error": "cannot decode" });
/// write_summary(&out, &[failed("a.png"), failed("b.png")])?;
/// // Later, b alone again: a's line stays, b's is this run's.
/// let path = write_summary(&out, &[json!({ "input": "in/b.png", "error": "still bad" })])?;
/// let text = std::fs::read_to_string(path)?;
/// assert_eq!(text.lines().count(), 2);
/// assert!(text.starts_with(r#"{"error":"cannot decode","input":"a.png"}"#), "{text}");
/// assert!(text.contains("still bad") && !text.contains(r#""input":"b.png""#), "{text}");
/// # std::fs::remove_dir_all(&out)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn write_summary(out_dir: &Path, lines: &[serde_json::Value]) -> Result<PathBuf> {
    let summary = out_dir.join(SUMMARY_FILE);
    let ours: std::collections::HashSet<String> = lines.iter().filter_map(line_stem).collect();
    let earlier = match std::fs::read_to_string(&summary) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(Error::io(&summary, e)),
    };
    let mut text = String::new();
    for line in earlier.lines().filter(|l| !l.trim().is_empty()) {
        let keep = match serde_json::from_str::<serde_json::Value>(line) {
            Ok(value) if value.is_object() => line_stem(&value).is_some_and(|stem| {
                !ours.contains(&stem)
                    && (value.get("error").is_some()
                        || out_dir.join(format!("{stem}.labels.png")).is_file())
            }),
            _ => true,
        };
        if keep {
            text.push_str(line);
            text.push('\n');
        }
    }
    for line in lines {
        text.push_str(&format!("{line}\n"));
    }
    std::fs::create_dir_all(out_dir).map_err(|e| Error::io(out_dir, e))?;
    // Atomically: the file now carries the earlier runs' lines too, which a write that
    // failed part way (a full disk) would otherwise lose.
    xnet_model::checkpoint::write_bytes_atomic(&summary, text.as_bytes())?;
    Ok(summary)
}

/// The input stem of a summary line: its `"stem"`, else the file stem of its `"input"`.
fn line_stem(line: &serde_json::Value) -> Option<String> {
    if let Some(stem) = line.get("stem").and_then(|s| s.as_str()) {
        return Some(stem.to_string());
    }
    let input = line.get("input").and_then(|s| s.as_str())?;
    Path::new(input)
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
}

/// Checks that segmenting `files` into `out_dir` overwrites none of them: every input's
/// outputs are named after its stem (`<stem>.labels.png`, `.field.png`, `.field.json`,
/// `.overlay.png`, `.uncertainty.png`, `.prob-<k>.png`, plus [`SUMMARY_FILE`]), so an input
/// named `x.labels.png` in `out_dir` beside an input `x.png` would be replaced by `x.png`'s
/// label map, and then read (or not) in its place. Inputs found in a folder never include
/// such names ([`Inputs::previous_outputs`](super::Inputs::previous_outputs)); inputs named
/// explicitly can.
///
/// `out_dir` itself is checked first ([`crate::check_out_dir`]): a file there is refused
/// once, before the model loads, rather than by every input's outputs.
///
/// # Errors
/// [`Error::Invalid`] for an `out_dir` that is a file, or naming the first input that would
/// be overwritten.
///
/// # Examples
/// ```
/// use std::path::PathBuf;
/// use xray_seg::segment::check_outputs_spare_inputs;
/// let dir = std::env::temp_dir().join(format!("xray-doc-spare-{}", std::process::id()));
/// std::fs::create_dir_all(&dir)?;
/// let (a, b) = (dir.join("a.png"), dir.join("a.labels.png"));
/// std::fs::write(&a, b"\x89PNG\r\n\x1a\n")?;
/// std::fs::write(&b, b"\x89PNG\r\n\x1a\n")?;
/// assert!(check_outputs_spare_inputs(&[a.clone(), b.clone()], &dir).is_err());
/// assert!(check_outputs_spare_inputs(&[a, b], &dir.join("out")).is_ok());
/// # std::fs::remove_dir_all(&dir)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn check_outputs_spare_inputs(files: &[PathBuf], out_dir: &Path) -> Result<()> {
    crate::check_out_dir(out_dir)?;
    // A folder that does not exist yet holds no input.
    let Ok(out_dir) = std::fs::canonicalize(out_dir) else {
        return Ok(());
    };
    let stems: std::collections::HashSet<&str> = files
        .iter()
        .filter_map(|f| f.file_stem().and_then(|s| s.to_str()))
        .collect();
    let written = |name: &str| {
        name == SUMMARY_FILE || output_stem(name).is_some_and(|stem| stems.contains(stem))
    };
    for file in files {
        // The entry as named, and the file it leads to after symbolic links: writing the
        // output opens the first and replaces the second.
        let named = file.file_name().and_then(|name| {
            let parent = file.parent().filter(|p| !p.as_os_str().is_empty());
            std::fs::canonicalize(parent.unwrap_or(Path::new(".")))
                .ok()
                .map(|p| p.join(name))
        });
        let target = std::fs::canonicalize(file).ok();
        let overwritten = [named, target].into_iter().flatten().any(|path| {
            path.parent() == Some(out_dir.as_path())
                && path
                    .file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(written)
        });
        if overwritten {
            return Err(Error::Invalid(format!(
                "{}: segmenting into {} would overwrite this input with an output (outputs \
                 are named <stem>.labels.png, .field.png, .field.json, .overlay.png, ... and \
                 {SUMMARY_FILE}): choose another --out or rename the input",
                file.display(),
                out_dir.display()
            )));
        }
    }
    Ok(())
}
