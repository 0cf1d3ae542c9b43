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

/// A second `segment` run into a folder that holds an earlier run's results (other inputs,
/// or some of the same) kept the earlier outputs but replaced `segment.jsonl` with its own
/// lines alone: the summary of the earlier inputs (label counts, expected error, warnings,
/// errors) was lost while their outputs stayed. The summary now keeps an earlier line for
/// an input this run did not segment, while its outputs are still there, ahead of this
/// run's lines in input order; a line of an input segmented again is replaced.
#[test]
fn a_second_segment_run_keeps_the_summary_of_the_earlier_inputs() {
    use xray_data::io::save_png16;
    use xray_data::synth::{generate_item, PhantomConfig};
    use xray_seg::segment::{segment_file, write_summary, SegmentOptions, SUMMARY_FILE};
    let dir = scratch("summary");
    let out = dir.join("seg");
    let predictor = Predictor::load(&xray_seg::shipped_weights_dir(), &Device::Cpu).unwrap();
    let cfg = PhantomConfig::with_size(48);
    let inputs: Vec<PathBuf> = ["a", "b", "c", "gone"]
        .iter()
        .enumerate()
        .map(|(i, stem)| {
            let path = dir.join(format!("{stem}.png"));
            save_png16(&path, &generate_item(&cfg, 3, i as u64).unwrap().image).unwrap();
            path
        })
        .collect();
    std::fs::write(dir.join("bad.png"), b"not a png").unwrap();
    // The example's lines: what segment_file wrote, or the error, each with its input.
    let lines = |files: &[PathBuf]| -> Vec<serde_json::Value> {
        files
            .iter()
            .map(|f| {
                let mut line = match segment_file(&predictor, f, &out, &SegmentOptions::default()) {
                    Ok(s) => serde_json::to_value(&s).unwrap(),
                    Err(e) => serde_json::json!({ "error": e.to_string() }),
                };
                line["input"] = f.display().to_string().into();
                line
            })
            .collect()
    };
    let stems_in = |text: &str| -> Vec<String> {
        text.lines()
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).unwrap();
                let input = v["input"].as_str().unwrap().to_string();
                let stem = Path::new(&input).file_stem().unwrap();
                stem.to_string_lossy().into_owned()
            })
            .collect()
    };
    // First run: a, b, gone and one that fails.
    let first = [
        inputs[0].clone(),
        inputs[1].clone(),
        inputs[3].clone(),
        dir.join("bad.png"),
    ];
    let path = write_summary(&out, &lines(&first)).unwrap();
    assert_eq!(path, out.join(SUMMARY_FILE));
    let text = std::fs::read_to_string(&path).unwrap();
    assert_eq!(stems_in(&text), ["a", "b", "gone", "bad"]);
    // The user deletes one input's outputs; then a second run: c, and b again.
    std::fs::remove_file(out.join("gone.labels.png")).unwrap();
    let second = [inputs[2].clone(), inputs[1].clone()];
    write_summary(&out, &lines(&second)).unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    // a and bad's error kept (not segmented again), gone dropped (its outputs are no longer
    // there), then this run's c and b, b once.
    assert_eq!(stems_in(&text), ["a", "bad", "c", "b"], "{text}");
    assert!(text.lines().nth(1).unwrap().contains("\"error\""), "{text}");
    // A line that is not JSON (edited by hand) is kept as it was.
    std::fs::write(&path, format!("{text}not json\n")).unwrap();
    write_summary(&out, &lines(&second[..1])).unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.lines().any(|l| l == "not json"), "{text}");
    assert_eq!(
        text.lines().filter(|l| l.contains("c.png")).count(),
        1,
        "{text}"
    );
    std::fs::remove_dir_all(&dir).ok();
}

/// A resume that changes category balancing (`--no-balance`), the flip averaging stored in
/// the checkpoint (`--flip-average`) or the temperature fit (`--no-calibrate`) went through
/// without a word, where one that changes `--lr` or the augmentation warns: the first
/// changes how the rest of the run samples its images, the other two what the saved
/// checkpoint predicts. Runs recorded before these settings were stored get no line.
#[test]
fn a_resume_that_changes_balancing_flips_or_calibration_says_so() {
    use xnet_model::infer::FlipAverage;
    use xray_seg::train::{RunOptions, TrainJob};
    let stored = RunOptions::of(&TrainJob::default());
    let now = RunOptions::of(&TrainJob {
        balance: false,
        flip_average: FlipAverage::Off,
        calibrate: false,
        ..TrainJob::default()
    });
    let lines = stored.setting_changes(&now);
    for flag in ["--no-balance", "--flip-average", "--no-calibrate"] {
        assert!(
            lines.iter().any(|l| l.starts_with(flag)),
            "{flag} not in {lines:?}"
        );
    }
    assert!(stored.differences(&now).is_empty(), "settings, not options");
    assert!(stored.setting_changes(&stored).is_empty());
    // A record without them (an older run) is compared on what it has.
    let mut json = serde_json::to_value(&stored).unwrap();
    let settings = json["settings"].as_object_mut().unwrap();
    for key in ["balance", "flip_average", "calibrate"] {
        settings.remove(key);
    }
    let older: RunOptions = serde_json::from_value(json).unwrap();
    assert!(
        older.setting_changes(&now).is_empty(),
        "{:?}",
        older.setting_changes(&now)
    );
}

/// `compare --name X` where `runs/X` holds a `train` run wrote its table, its models'
/// folders (and, without `--data`, synthetic data) into the training run's folder without a
/// word (`evaluate` refuses such a folder as `--out`). It is now refused before anything is
/// written there.
#[test]
fn compare_refuses_a_train_run_s_folder() {
    use xnet_model::infer::FlipAverage;
    use xnet_model::models::Upsampling;
    use xray_seg::compare::{run, Variant};
    use xray_seg::train::{Arch, TrainJob, RUN_OPTIONS_FILE};
    let dir = scratch("compare-into-run");
    let run_dir = dir.join("hip");
    std::fs::create_dir_all(&run_dir).unwrap();
    std::fs::write(run_dir.join(RUN_OPTIONS_FILE), "{}").unwrap();
    let job = TrainJob {
        run_dir: run_dir.clone(),
        size: 32,
        width: 2,
        epochs: 1,
        batch: 4,
        synth_count: 6,
        synth_size: 32,
        augment: false,
        flip_average: FlipAverage::Off,
        calibrate: false,
        progress: false,
        ..TrainJob::default()
    };
    let xnet = Variant {
        arch: Arch::XNet,
        upsampling: Upsampling::Nearest,
    };
    let e = run(&job, &[xnet])
        .expect_err("a train run's folder is no compare folder")
        .to_string();
    assert!(e.contains("hip") && e.contains("train run"), "{e}");
    let left: Vec<_> = std::fs::read_dir(&run_dir).unwrap().flatten().collect();
    assert_eq!(left.len(), 1, "written into the run: {left:?}");
    // A compare folder of its own is used again (a rerun replaces its table).
    let own = dir.join("compare");
    assert!(run(
        &TrainJob {
            run_dir: own.clone(),
            ..job.clone()
        },
        &[xnet]
    )
    .is_ok());
    assert!(run(
        &TrainJob {
            run_dir: own,
            ..job
        },
        &[xnet]
    )
    .is_ok());
    std::fs::remove_dir_all(&dir).ok();
}
