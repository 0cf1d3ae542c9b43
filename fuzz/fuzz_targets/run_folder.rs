//! The run folder of the `run_record`, `run_weights`, `run_resume`, `run_kfold`,
//! `interrupted_save` and `interrupted_kfold_save` targets (a module of each, not a target of
//! its own): made once, its files read and put back, and the resume's stop message.
use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

/// A run made by `make` in a fresh `$TMPDIR/xray-fuzz-<label>-<pid>/run` (once per process:
/// the targets keep it in a `OnceLock`), what `make` returned, and every file of the run
/// outside `data/` ([`snapshot`]).
#[allow(dead_code)] // not `interrupted_kfold_save`'s
pub fn fresh_run<T>(
    label: &str,
    make: impl FnOnce(&Path) -> T,
) -> (PathBuf, T, BTreeMap<PathBuf, Vec<u8>>) {
    let dir = std::env::temp_dir().join(format!("xray-fuzz-{label}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    let run_dir = dir.join("run");
    let made = make(&run_dir);
    let mut files = BTreeMap::new();
    snapshot(&run_dir, Path::new(""), &mut files);
    (run_dir, made, files)
}

/// A checkpoint `config.json` without its `weights_digest`, so that edits of the weights
/// beside it reach their names, shapes and values instead of stopping at the digest.
#[allow(dead_code)] // `run_weights`' and `run_resume`'s
pub fn without_digest(config_json: &[u8]) -> Vec<u8> {
    let mut config: serde_json::Value = serde_json::from_slice(config_json).unwrap();
    assert!(
        config
            .as_object_mut()
            .unwrap()
            .remove("weights_digest")
            .is_some(),
        "the fixture's config.json records no weights_digest"
    );
    serde_json::to_vec_pretty(&config).unwrap()
}

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
#[allow(dead_code)] // not `interrupted_save`'s
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
#[allow(dead_code)] // not `interrupted_save`'s
pub fn stopped_at(message: &str) -> Option<usize> {
    let rest = message.split("has trained ").nth(1)?;
    let (n, tail) = rest.split_once(' ')?;
    tail.starts_with("epochs already").then(|| n.parse().ok())?
}
