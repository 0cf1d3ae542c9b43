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

/// Replaces `path` (a 16-bit grey PNG) by an 8-bit RGB copy, as a viewer's export is.
fn make_rgb(path: &Path) {
    let grey = image::open(path).unwrap().to_luma8();
    image::DynamicImage::ImageLuma8(grey)
        .to_rgb8()
        .save(path)
        .unwrap();
}

/// A colour image among a `--data` folder's images stopped `train`, `evaluate` and
/// `compare` with "...; set LoadOptions::allow_rgb to convert it to luma": a field of the
/// library, where the user of the examples needs the flag `--allow-rgb` (`segment` alone
/// appended it). The jobs' errors now name the flag, whichever job meets the image.
#[test]
fn a_colour_image_error_names_the_allow_rgb_flag() {
    use xray_data::dataset::Dataset;
    use xray_seg::segment::{segment_file, SegmentOptions};
    use xray_seg::train::{run, TrainJob};
    let dir = scratch("colour");
    let data = dir.join("data");
    xray_data::synth::generate_dataset(&data, 8, 32, 4).unwrap();
    let rgb = data.join("images/synth_00003.png");
    make_rgb(&rgb);
    let name = rgb.display().to_string();
    let job = TrainJob {
        data: Some(data.clone()),
        run_dir: dir.join("run"),
        size: 32,
        width: 2,
        epochs: 1,
        batch: 4,
        patience: 1,
        progress: false,
        overlays: 0,
        calibrate: false,
        ..TrainJob::default()
    };
    // train (and compare, which reads the data set the same way)
    let e = match run(&job) {
        Ok(_) => panic!("a colour image trained without --allow-rgb"),
        Err(e) => e.to_string(),
    };
    assert!(e.contains(&name) && e.contains("--allow-rgb"), "{e}");
    // evaluate
    let ds = Dataset::open(&data, &job.dataset_options()).unwrap();
    let predictor = Predictor::load(&xray_seg::shipped_weights_dir(), &Device::Cpu).unwrap();
    let all: Vec<usize> = (0..ds.len()).collect();
    let e = xray_seg::evaluate::evaluate_samples(&predictor, &ds, &all, None)
        .expect_err("a colour image evaluated without --allow-rgb")
        .to_string();
    assert!(e.contains(&name) && e.contains("--allow-rgb"), "{e}");
    // segment, once (it appended the flag itself, which must not now come twice)
    let e = segment_file(
        &predictor,
        &rgb,
        &dir.join("seg"),
        &SegmentOptions::default(),
    )
    .expect_err("a colour image segmented without --allow-rgb")
    .to_string();
    assert_eq!(e.matches("--allow-rgb").count(), 1, "{e}");
    // With the flag, the image is read.
    let job = TrainJob {
        allow_rgb: true,
        ..job
    };
    assert!(run(&job).is_ok());
    std::fs::remove_dir_all(&dir).ok();
}
