//! What a user of the examples runs into with their own files, at the level of the library
//! functions the examples call: a `--weights` folder that holds checkpoints only in its
//! sub-folders (a k-fold or `compare` run), a colour image in a `--data` folder, and a
//! second `segment` run into a folder that holds an earlier run's results.

use std::path::{Path, PathBuf};

use candle_core::Device;
use xray_seg::predict::Predictor;

/// A fresh, empty folder for one test.
fn scratch(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("xray-seg-user-{}-{test}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch folder");
    dir
}

/// Copies the shipped checkpoint's two files into `dir`.
fn copy_shipped_weights(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    let shipped = xray_seg::shipped_weights_dir();
    for file in ["model.safetensors", "config.json"] {
        std::fs::copy(shipped.join(file), dir.join(file)).unwrap();
    }
}

/// `--weights runs/cv` for a k-fold run (or `runs/compare`) holds no checkpoint itself,
/// only one per fold (or per model): the error said only "runs/cv/config.json: No such file
/// or directory", which neither says that the folder is no checkpoint nor where the
/// checkpoints are.
#[test]
fn a_weights_folder_with_checkpoints_only_below_names_them() {
    let dir = scratch("kfold-weights");
    let run = dir.join("cv");
    copy_shipped_weights(&run.join("fold-0"));
    copy_shipped_weights(&run.join("fold-1"));
    std::fs::write(run.join("kfold.json"), "{}").unwrap();
    let e = Predictor::load(&run, &Device::Cpu)
        .expect_err("a k-fold run's folder is no checkpoint")
        .to_string();
    assert!(e.contains("no checkpoint"), "{e}");
    assert!(
        e.contains(&run.join("fold-0").display().to_string())
            && e.contains(&run.join("fold-1").display().to_string()),
        "{e}"
    );
    // Each fold's folder loads.
    assert!(Predictor::load(&run.join("fold-1"), &Device::Cpu).is_ok());
    // A folder with no checkpoint anywhere says what a checkpoint folder holds.
    let empty = dir.join("empty");
    std::fs::create_dir_all(empty.join("notes")).unwrap();
    let e = Predictor::load(&empty, &Device::Cpu)
        .expect_err("an empty folder is no checkpoint")
        .to_string();
    assert!(
        e.contains("no checkpoint") && e.contains("model.safetensors") && e.contains("config.json"),
        "{e}"
    );
    std::fs::remove_dir_all(&dir).ok();
}
