//! The run folder of the `run_record` and `run_weights` targets (a module of both, not a
//! target of its own): its files read and put back, and the resume's stop message.
use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

/// Every file below `root/rel` outside `data/` (which a resume only reads): path relative
/// to `root`, contents.
pub fn snapshot(root: &Path, rel: &Path, out: &mut BTreeMap<PathBuf, Vec<u8>>) {
    for entry in fs::read_dir(root.join(rel)).unwrap() {
        let path = entry.unwrap().path();
        let rel = rel.join(path.file_name().unwrap());
        if rel == Path::new("data") {
            continue;
        }
        if path.is_dir() {
            snapshot(root, &rel, out);
        } else {
            out.insert(rel, fs::read(&path).unwrap());
        }
    }
}

/// Puts the run in `run_dir` back as `files` (a [`snapshot`]), with `changed` in place of
/// some of them (a resume may trim the log or rewrite `best/`).
pub fn restore(
    run_dir: &Path,
    files: &BTreeMap<PathBuf, Vec<u8>>,
    changed: &BTreeMap<PathBuf, Vec<u8>>,
) {
    for entry in fs::read_dir(run_dir).unwrap() {
        let path = entry.unwrap().path();
        if path.file_name().unwrap() == "data" {
            continue;
        }
        if path.is_dir() {
            fs::remove_dir_all(&path).unwrap();
        } else {
            fs::remove_file(&path).unwrap();
        }
    }
    for (rel, bytes) in files.iter().chain(changed) {
        let path = run_dir.join(rel);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, bytes).unwrap();
    }
}

/// The epochs a stopped resume reports ("… has trained N epochs already …").
pub fn stopped_at(message: &str) -> Option<usize> {
    let rest = message.split("has trained ").nth(1)?;
    let (n, tail) = rest.split_once(' ')?;
    tail.starts_with("epochs already").then(|| n.parse().ok())?
}
