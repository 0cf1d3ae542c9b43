//! The train job's checks before it trains: every image of every split is read and checked
//! first, run directories are not overwritten, and a resumed run keeps its data, split and
//! network.

use std::path::{Path, PathBuf};

use xray_data::dataset::{Dataset, DatasetOptions};
use xray_seg::train::{check_run_name, open_dataset, plan_splits, run, TrainJob};

/// Damages one file of a dataset folder.
type Spoil<'a> = Box<dyn Fn(&Path) + 'a>;

/// A fresh temporary folder for one test.
fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("xray-seg-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn tiny_job(run_dir: PathBuf) -> TrainJob {
    TrainJob {
        run_dir,
        size: 32,
        width: 2,
        epochs: 1,
        batch: 4,
        patience: 1,
        synth_count: 14,
        synth_size: 40,
        progress: false,
        overlays: 0,
        calibrate: false,
        seed: 5,
        ..TrainJob::default()
    }
}

/// A synthetic labelled folder of 14 images in `dir/data`.
fn synthetic_folder(dir: &Path) -> PathBuf {
    let data = dir.join("data");
    xray_data::synth::generate_dataset(&data, 14, 40, 9).unwrap();
    data
}

/// The error `run(job)` fails with (the outcome of a run is too long to print).
fn error_of(job: &TrainJob, what: &str) -> String {
    match run(job) {
        Ok(_) => panic!("{what}: the run succeeded"),
        Err(e) => e.to_string(),
    }
}

/// Asserts that `job` fails naming `needle` and that no training happened.
fn fails_before_training(job: &TrainJob, needle: &str) -> String {
    let err = error_of(job, "bad data must be an error");
    assert!(err.contains(needle), "{needle:?} not in: {err}");
    for trained in ["log.jsonl", "last", "model.safetensors"] {
        assert!(
            !job.run_dir.join(trained).exists(),
            "{trained} exists: training ran before the data was checked ({err})"
        );
    }
    err
}

#[test]
fn every_image_is_checked_before_the_first_epoch() {
    let tmp = temp_dir("train-bad-data");
    let data = synthetic_folder(&tmp);
    let stems: Vec<String> = std::fs::read_dir(data.join("masks"))
        .unwrap()
        .map(|e| {
            let name = e.unwrap().file_name().into_string().unwrap();
            name.trim_end_matches(".png").to_string()
        })
        .collect();
    let mut stems = stems;
    stems.sort();
    // Every sample in turn: wherever the split puts it, it is read before training.
    let last = stems.last().unwrap().clone();
    let first = stems.first().unwrap().clone();
    let cases: Vec<(&str, Spoil)> = vec![
        (
            "unreadable image",
            Box::new(|d: &Path| {
                std::fs::write(d.join(format!("images/{last}.png")), "not an image").unwrap()
            }),
        ),
        (
            "label 7",
            Box::new(|d: &Path| {
                let p = d.join(format!("masks/{first}.png"));
                let mut m = image::open(&p).unwrap().to_luma8();
                m.put_pixel(3, 4, image::Luma([7]));
                m.save(&p).unwrap();
            }),
        ),
        (
            "NaN pixel in a float TIFF",
            Box::new(|d: &Path| {
                let png = d.join(format!("images/{first}.png"));
                let mut img = xray_data::Radiograph::from_pixel(40, 40, image::Luma([0.5]));
                img.put_pixel(5, 6, image::Luma([1234.5]));
                let tif = d.join(format!("images/{first}.tif"));
                xray_data::io::save_tiff_f32(&tif, &img).unwrap();
                std::fs::remove_file(png).unwrap();
                // The one 1234.5 becomes a NaN (an uncompressed TIFF holds the raw floats).
                let mut bytes = std::fs::read(&tif).unwrap();
                let marker = 1234.5f32.to_le_bytes();
                let at = bytes.windows(4).position(|w| w == marker).unwrap();
                bytes[at..at + 4].copy_from_slice(&f32::NAN.to_le_bytes());
                std::fs::write(&tif, bytes).unwrap();
            }),
        ),
        (
            "wrong-size mask",
            Box::new(|d: &Path| {
                let p = d.join(format!("masks/{last}.png"));
                image::GrayImage::new(40, 36).save(&p).unwrap();
            }),
        ),
    ];
    for (i, (what, spoil)) in cases.iter().enumerate() {
        let copy = tmp.join(format!("case-{i}"));
        copy_folder(&data, &copy);
        spoil(&copy);
        let job = TrainJob {
            data: Some(copy.clone()),
            ..tiny_job(tmp.join(format!("run-{i}")))
        };
        let err = fails_before_training(&job, &copy.display().to_string());
        eprintln!("{what}: {err}");
    }
    let _ = std::fs::remove_dir_all(&tmp);
}

#[test]
fn a_split_without_labelled_pixels_is_an_error_before_training() {
    let tmp = temp_dir("train-all-ignore");
    let data = synthetic_folder(&tmp);
    let job = TrainJob {
        data: Some(data.clone()),
        ..tiny_job(tmp.join("run"))
    };
    let ds = Dataset::open(&data, &DatasetOptions::default()).unwrap();
    let plan = plan_splits(&job, &ds.categories()).unwrap();
    let blank = |indices: &[usize]| {
        for &i in indices {
            let p = ds.samples[i].mask.as_ref().unwrap();
            let (w, h) = image::image_dimensions(p).unwrap();
            image::GrayImage::from_pixel(w, h, image::Luma([255]))
                .save(p)
                .unwrap();
        }
    };
    // Only the test split is unlabelled: the training would run, and score nothing.
    blank(&plan[0].0.test);
    let err = fails_before_training(&job, "ignore");
    assert!(err.contains("test image"), "{err}");
    eprintln!("{err}");
    // Nothing labelled at all: nothing to learn from.
    blank(&(0..ds.len()).collect::<Vec<_>>());
    let err = fails_before_training(&job, "ignore");
    assert!(err.contains("training image"), "{err}");
    let _ = std::fs::remove_dir_all(&tmp);
}

fn copy_folder(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_folder(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), target).unwrap();
        }
    }
}

#[test]
fn a_run_name_in_use_needs_resume() {
    let tmp = temp_dir("train-reuse");
    let job = tiny_job(tmp.join("run"));
    run(&job).expect("first run trains");
    let weights = std::fs::read(job.run_dir.join("model.safetensors")).unwrap();
    // Run again, with other synthetic data: refused, and nothing is overwritten.
    let again = TrainJob {
        synth_size: 48,
        ..job.clone()
    };
    let err = error_of(&again, "a used run name is an error");
    eprintln!("{err}");
    assert!(
        err.contains("already exists") && err.contains("--resume"),
        "{err}"
    );
    assert_eq!(
        std::fs::read(job.run_dir.join("model.safetensors")).unwrap(),
        weights
    );
    // Resuming with another seed, size or data is refused, naming the option.
    for (changed, option) in [
        (
            TrainJob {
                seed: 6,
                resume: true,
                ..job.clone()
            },
            "--seed",
        ),
        (
            TrainJob {
                size: 64,
                resume: true,
                ..job.clone()
            },
            "--size",
        ),
        (
            TrainJob {
                synth_size: 48,
                resume: true,
                ..job.clone()
            },
            "--synth-size",
        ),
        (
            TrainJob {
                width: 4,
                resume: true,
                ..job.clone()
            },
            "--width",
        ),
        (
            TrainJob {
                data: Some(tmp.join("elsewhere")),
                resume: true,
                ..job.clone()
            },
            "--data",
        ),
        (
            TrainJob {
                l2: 0.0,
                resume: true,
                ..job.clone()
            },
            "--l2",
        ),
        (
            TrainJob {
                loss: xnet_model::loss::LossKind::Dice { smooth: 1.0 },
                resume: true,
                ..job.clone()
            },
            "--loss",
        ),
    ] {
        let err = error_of(&changed, "a resume with other options is an error");
        assert!(err.contains(option), "{option} not in: {err}");
        eprintln!("{err}");
    }
    // The same options resume (a finished run trains no further).
    let resumed = TrainJob {
        resume: true,
        epochs: 2,
        ..job.clone()
    };
    run(&resumed).expect("the same options resume");
    // A train_job.json from before --l2 existed reads as the default it was trained with.
    let options_path = job.run_dir.join("train_job.json");
    let mut stored: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&options_path).unwrap()).unwrap();
    stored.as_object_mut().unwrap().remove("l2");
    stored.as_object_mut().unwrap().remove("loss");
    std::fs::write(&options_path, stored.to_string()).unwrap();
    run(&resumed).expect("a run stored without l2 and loss resumes at the defaults");
    let meta = xnet_model::checkpoint::read_config(&job.run_dir)
        .unwrap()
        .metadata;
    assert_eq!(
        (meta["lr"].as_f64(), meta["l2"].as_f64()),
        (Some(job.lr), Some(job.l2))
    );
    assert_eq!(meta["loss"]["kind"].as_str(), Some("cross_entropy"));
    // A run from before train_job.json: its checkpoint's metadata still tells the seed.
    std::fs::remove_file(job.run_dir.join("train_job.json")).unwrap();
    let err = error_of(
        &TrainJob {
            seed: 6,
            ..resumed.clone()
        },
        "an older run resumed with another seed",
    );
    assert!(err.contains("--seed"), "{err}");
    run(&resumed).expect("an older run resumes with its own options");
    assert!(job.run_dir.join("train_job.json").is_file());
    // An empty directory may be used for a fresh run.
    let empty = tmp.join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    run(&tiny_job(empty)).expect("an empty run directory is a fresh run");
    let _ = std::fs::remove_dir_all(&tmp);
}

#[test]
fn resuming_a_run_that_does_not_exist_is_an_error() {
    let tmp = temp_dir("train-resume-missing");
    let job = TrainJob {
        resume: true,
        ..tiny_job(tmp.join("never-ran"))
    };
    let err = error_of(&job, "nothing to resume is an error");
    eprintln!("{err}");
    assert!(err.contains("never-ran"), "{err}");
    assert!(
        !job.run_dir.join("log.jsonl").exists(),
        "a fresh run was started"
    );
    let _ = std::fs::remove_dir_all(&tmp);
}

#[test]
fn resuming_a_trained_run_without_its_last_checkpoint_is_refused() {
    let tmp = temp_dir("train-resume-no-last");
    let job = tiny_job(tmp.join("run"));
    run(&job).expect("first run trains");
    let weights = std::fs::read(job.run_dir.join("model.safetensors")).unwrap();
    let log = std::fs::read(job.run_dir.join("log.jsonl")).unwrap();
    // last/ lost (deleted to save space): a resume once trained again from epoch 0 and
    // replaced the model, best/ and the log without a word.
    std::fs::remove_dir_all(job.run_dir.join("last")).unwrap();
    let resumed = TrainJob {
        resume: true,
        epochs: 2,
        ..job.clone()
    };
    let err = error_of(&resumed, "a resume without last/ over a trained model");
    assert!(err.contains("last/") && err.contains("run"), "{err}");
    assert_eq!(
        std::fs::read(job.run_dir.join("model.safetensors")).unwrap(),
        weights
    );
    assert_eq!(std::fs::read(job.run_dir.join("log.jsonl")).unwrap(), log);
    // A run stopped before its first epoch ended has nothing to lose: it starts over.
    for result in ["best", "model.safetensors", "config.json"] {
        let path = job.run_dir.join(result);
        if path.is_dir() {
            std::fs::remove_dir_all(&path).unwrap();
        } else {
            std::fs::remove_file(&path).unwrap();
        }
    }
    run(&resumed).expect("a run with no epoch saved starts over");
    assert!(job.run_dir.join("last").is_dir());
    let _ = std::fs::remove_dir_all(&tmp);
}

#[test]
fn a_reused_synthetic_data_set_must_be_the_one_asked_for() {
    let tmp = temp_dir("train-synth-reuse");
    let job = TrainJob {
        synth_count: 6,
        synth_size: 32,
        ..tiny_job(tmp.join("run"))
    };
    assert_eq!(open_dataset(&job).expect("generated").len(), 6);
    assert_eq!(open_dataset(&job).expect("reused as it is").len(), 6);
    // `compare` reruns under the same name: the earlier data set was reused whatever
    // --synth-count or --synth-size said.
    for other in [
        TrainJob {
            synth_count: 9,
            ..job.clone()
        },
        TrainJob {
            synth_size: 48,
            ..job.clone()
        },
    ] {
        let err = open_dataset(&other)
            .map(|ds| ds.len())
            .expect_err("another data set");
        let text = err.to_string();
        assert!(
            text.contains("6 image(s) of 32x32") && text.contains("--synth-count"),
            "{text}"
        );
    }
    let _ = std::fs::remove_dir_all(&tmp);
}

#[test]
fn run_names_stay_inside_the_runs_folder() {
    for good in ["hip", "hip-unet_2", "run-1700000000", "a.b", "..hip"] {
        check_run_name(good).unwrap_or_else(|e| panic!("{good:?} refused: {e}"));
    }
    for bad in ["", " ", ".", "..", "a/b", "../x", "/tmp/x", "a\\b", "hip/"] {
        let err = check_run_name(bad)
            .expect_err("an unsafe run name is an error")
            .to_string();
        assert!(err.contains("run name"), "{bad:?}: {err}");
    }
    // `train --name $'a\nb'` made a folder with a newline in its name.
    for bad in [
        "a\nb",
        "a\tb",
        "hip\r",
        "\u{1b}[31mred",
        "a\u{0}b",
        "a\u{7f}b",
        "a\u{85}b",
    ] {
        let err = check_run_name(bad)
            .expect_err("a run name with a control character is an error")
            .to_string();
        assert!(err.contains("control character"), "{bad:?}: {err}");
    }
}

#[test]
fn a_zero_width_patience_or_bad_loss_is_an_error_before_any_file() {
    let tmp = temp_dir("train-zero-options");
    for (job, what, expected) in [
        (
            TrainJob {
                width: 0,
                ..tiny_job(tmp.join("w"))
            },
            "width 0",
            "--width must be at least 1, got 0",
        ),
        (
            TrainJob {
                patience: 0,
                ..tiny_job(tmp.join("p"))
            },
            "patience 0",
            "--patience must be at least 1, got 0",
        ),
        (
            TrainJob {
                batch: 0,
                size: 0,
                ..tiny_job(tmp.join("bs"))
            },
            "batch and size 0",
            "--batch must be at least 1, got 0; --size must be at least 1, got 0",
        ),
        (
            TrainJob {
                loss: xnet_model::loss::LossKind::Focal { gamma: 0.5 },
                ..tiny_job(tmp.join("g"))
            },
            "focal gamma 0.5",
            "focal gamma must be 0 or",
        ),
    ] {
        let err = error_of(&job, what);
        assert!(err.contains(expected), "{what}: {err}");
        // Only the options that are wrong are named.
        for flag in ["--epochs", "--batch", "--size", "--width", "--patience"] {
            assert_eq!(
                err.contains(flag),
                expected.contains(flag),
                "{what}: {flag} in {err}"
            );
        }
        assert!(!job.run_dir.exists(), "{what}: a run folder was made");
    }
    let _ = std::fs::remove_dir_all(&tmp);
}

/// `--lr 1e308` is a finite f64 but infinity in the f32 network: it was let through and the
/// run refused later as "optimizer lr ...", a name the user never typed. `--l2` likewise
/// (refused as the loss's "l2"). Both are refused naming the flag, before any file.
#[test]
fn an_lr_or_l2_beyond_the_f32_range_names_its_flag() {
    let tmp = temp_dir("train-f32-range");
    let beyond_f32 = f64::from(f32::MAX) * 2.0;
    for (i, v) in [1e308, f64::MAX, beyond_f32].into_iter().enumerate() {
        for (flag, job) in [
            (
                "--lr",
                TrainJob {
                    lr: v,
                    ..tiny_job(tmp.join(format!("lr{i}")))
                },
            ),
            (
                "--l2",
                TrainJob {
                    l2: v,
                    ..tiny_job(tmp.join(format!("l2{i}")))
                },
            ),
        ] {
            let err = error_of(&job, &format!("{flag} {v:e}"));
            assert!(
                err.contains(&format!("{flag} must be")) && err.contains("f32"),
                "{flag} {v:e}: {err}"
            );
            assert!(!err.contains("optimizer lr"), "{flag} {v:e}: {err}");
            assert!(!job.run_dir.exists(), "{flag} {v:e}: a run folder was made");
        }
    }
    // Negative values and NaN are still refused as before, naming the flag.
    for (flag, job) in [
        (
            "--lr",
            TrainJob {
                lr: -1e-3,
                ..tiny_job(tmp.join("lr-neg"))
            },
        ),
        (
            "--l2",
            TrainJob {
                l2: f64::NAN,
                ..tiny_job(tmp.join("l2-nan"))
            },
        ),
    ] {
        let err = error_of(&job, flag);
        assert!(err.contains(&format!("{flag} must be")), "{flag}: {err}");
    }
    let _ = std::fs::remove_dir_all(&tmp);
}

#[test]
fn too_few_synthetic_images_name_the_synth_count_flag() {
    // The message said "at least 6 synthetic images are needed ..., got 5" without the flag
    // to change, where every other option check names its flag.
    let tmp = temp_dir("train-synth-count");
    let job = TrainJob {
        synth_count: 5,
        ..tiny_job(tmp.join("s"))
    };
    let err = error_of(&job, "5 synthetic images");
    assert!(
        err.contains("--synth-count must be at least 6 without --data") && err.ends_with("got 5"),
        "{err}"
    );
    assert!(!job.run_dir.exists(), "a run folder was made");
    // With --data the count is not used and not checked: the check after it speaks.
    let job = TrainJob {
        synth_count: 5,
        data: Some(synthetic_folder(&tmp)),
        kfold: Some(1),
        ..tiny_job(tmp.join("d"))
    };
    let err = error_of(&job, "k = 1 with --data");
    assert!(err.contains("--kfold needs k ≥ 2, got 1"), "{err}");
    let _ = std::fs::remove_dir_all(&tmp);
}

#[test]
fn a_custom_augmentation_pipeline_and_flip_averaging_are_checked_first_and_recorded() {
    use xray_data::augment::{PipelineConfig, StepConfig, TransformSpec};
    let tmp = temp_dir("train-augment-config");
    let flip = |p: f32| PipelineConfig {
        steps: vec![StepConfig {
            p,
            transform: TransformSpec::HorizontalFlip,
        }],
    };
    let bad = TrainJob {
        augment_config: flip(1.5),
        ..tiny_job(tmp.join("bad"))
    };
    let err = error_of(&bad, "a step with p = 1.5");
    assert!(
        err.contains("augmentation pipeline") && err.contains("step 0"),
        "{err}"
    );
    assert!(!bad.run_dir.exists(), "a run folder was made");

    let good = TrainJob {
        augment_config: flip(0.5),
        flip_average: xnet_model::infer::FlipAverage::Horizontal,
        ..tiny_job(tmp.join("good"))
    };
    run(&good).expect("trains with the custom pipeline");
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(good.run_dir.join("config.json")).unwrap())
            .unwrap();
    let recorded: PipelineConfig =
        serde_json::from_value(config["metadata"]["augment"].clone()).unwrap();
    assert_eq!(recorded, flip(0.5));
    assert_eq!(config["metadata"]["flip_average"], "horizontal");
    let predictor =
        xray_seg::predict::Predictor::load(&good.run_dir, &candle_core::Device::Cpu).unwrap();
    assert_eq!(
        predictor.flip_average(),
        xnet_model::infer::FlipAverage::Horizontal
    );
    // A record that is not a flip averaging is refused by name.
    let mut spoiled = config.clone();
    spoiled["metadata"]["flip_average"] = serde_json::json!("diagonal");
    std::fs::write(good.run_dir.join("config.json"), spoiled.to_string()).unwrap();
    let err = xray_seg::predict::Predictor::load(&good.run_dir, &candle_core::Device::Cpu)
        .unwrap_err()
        .to_string();
    assert!(err.contains("metadata.flip_average"), "{err}");

    // Without augmentation the checkpoint says so, whatever pipeline was configured.
    let off = TrainJob {
        augment: false,
        augment_config: flip(1.5),
        ..tiny_job(tmp.join("off"))
    };
    run(&off).expect("an unused pipeline is not checked");
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(off.run_dir.join("config.json")).unwrap())
            .unwrap();
    assert!(config["metadata"]["augment"].is_null());
    let _ = std::fs::remove_dir_all(&tmp);
}

#[test]
fn a_border_label_the_model_cannot_take_is_refused_before_the_run_starts() {
    // It used to fail at the first batch that showed a border: "image 0 of the batch has
    // label 7 at pixel (x=0, y=0)", which does not point at the augmentation setting.
    let tmp = temp_dir("train-augment-mask-value");
    let job = TrainJob {
        augment_config: xray_data::augment::PipelineConfig::from_json(
            r#"{"steps": [{"type": "affine", "rotate_deg": [30, 40],
                "border": {"mode": "constant", "value": 0, "mask_value": 7}}]}"#,
        )
        .unwrap(),
        ..tiny_job(tmp.join("m7"))
    };
    let err = error_of(&job, "a constant border labelled 7 for 3 classes");
    assert!(
        err.contains("augmentation pipeline")
            && err.contains("step 0: affine border mask_value 7 is not a class"),
        "{err}"
    );
    assert!(!job.run_dir.exists(), "a run folder was made");
    let _ = std::fs::remove_dir_all(&tmp);
}

#[test]
fn a_resume_that_changes_the_schedule_or_augmentation_says_so_without_refusing() {
    use xray_seg::train::RunOptions;
    let job = tiny_job(PathBuf::from("runs/unused"));
    let stored = RunOptions::of(&job);
    assert!(stored.setting_changes(&RunOptions::of(&job)).is_empty());
    let longer = TrainJob {
        epochs: 200,
        augment: false,
        ..job.clone()
    };
    let now = RunOptions::of(&longer);
    // Not a difference that refuses the resume...
    assert!(stored.differences(&now).is_empty());
    // ...but each change is named.
    let changes = stored.setting_changes(&now);
    assert_eq!(changes.len(), 2, "{changes:?}");
    assert!(changes[0].contains("--epochs: the run has 1, this call 200"));
    assert!(changes[1].contains("augmentation pipeline"));
    // A run stored before the settings were recorded: this call's are stated.
    let older = RunOptions {
        settings: None,
        ..stored.clone()
    };
    let changes = older.setting_changes(&now);
    assert_eq!(changes.len(), 1);
    assert!(
        changes[0].contains("does not record") && changes[0].contains("200 epochs"),
        "{}",
        changes[0]
    );
    // The stored file round-trips, and one without the settings still reads.
    let json = serde_json::to_string(&stored).unwrap();
    assert_eq!(serde_json::from_str::<RunOptions>(&json).unwrap(), stored);
    let mut v: serde_json::Value = serde_json::from_str(&json).unwrap();
    v.as_object_mut().unwrap().remove("settings");
    assert_eq!(serde_json::from_value::<RunOptions>(v).unwrap(), older);
}

/// The CPU thread count is recorded, for the record: the weights do not depend on it, so a
/// resume on another count changes nothing and says nothing; runs stored before it was
/// recorded and GPU runs have none.
#[test]
fn a_resume_on_another_thread_count_is_no_change() {
    use xray_seg::train::RunOptions;
    let job = tiny_job(PathBuf::from("runs/unused"));
    let now = RunOptions::of(&job);
    let threads = now.settings.as_ref().and_then(|s| s.threads);
    assert_eq!(threads, Some(rayon::current_num_threads()));
    let with = |threads: Option<usize>| {
        let mut options = now.clone();
        if let Some(s) = options.settings.as_mut() {
            s.threads = threads;
        }
        options
    };
    let other = with(Some(rayon::current_num_threads() + 3));
    assert!(other.differences(&now).is_empty());
    assert!(other.setting_changes(&now).is_empty());
    assert!(with(None).setting_changes(&now).is_empty());
    assert!(now.setting_changes(&with(None)).is_empty());
    // Recorded in train_job.json, and a record without it still reads.
    let json = serde_json::to_value(&now).unwrap();
    assert_eq!(json["settings"]["threads"], rayon::current_num_threads());
    let mut older = json.clone();
    older["settings"].as_object_mut().unwrap().remove("threads");
    assert_eq!(
        serde_json::from_value::<RunOptions>(older).unwrap(),
        with(None)
    );
}

/// A resume that fails leaves `train_job.json` as it was (it recorded the new `--epochs`
/// before the damaged `last/` was read), and one asking for fewer epochs than the run has
/// trained is refused instead of rewriting the record and training nothing.
#[test]
fn a_failed_or_shrinking_resume_leaves_the_run_record_alone() {
    let tmp = temp_dir("train-resume-record");
    let job = TrainJob {
        epochs: 2,
        ..tiny_job(tmp.join("run"))
    };
    run(&job).expect("the first run trains");
    let record = job.run_dir.join(xray_seg::train::RUN_OPTIONS_FILE);
    let before = std::fs::read(&record).unwrap();

    let shorter = TrainJob {
        resume: true,
        epochs: 1,
        ..job.clone()
    };
    let err = error_of(&shorter, "fewer epochs than trained");
    assert!(
        err.contains("trained 2 epochs already, more than --epochs 1")
            && err.contains("nothing was trained"),
        "{err}"
    );
    assert_eq!(std::fs::read(&record).unwrap(), before);

    // The optimizer state cut short: the resume fails, the record stays.
    let optimizer = job.run_dir.join("last/optimizer.safetensors");
    let bytes = std::fs::read(&optimizer).unwrap();
    std::fs::write(&optimizer, &bytes[..bytes.len() / 2]).unwrap();
    let longer = TrainJob {
        resume: true,
        epochs: 3,
        ..job.clone()
    };
    let err = error_of(&longer, "a damaged optimizer state");
    assert!(err.contains("optimizer.safetensors"), "{err}");
    assert_eq!(std::fs::read(&record).unwrap(), before);

    // Mended, the same resume trains on and records its epochs.
    std::fs::write(&optimizer, &bytes).unwrap();
    let (outcomes, _) = run(&longer).expect("the resume trains a third epoch");
    let line = outcomes[0].summary_line();
    assert!(line.contains("3 epochs (1 in this call) in"), "{line}");
    let after: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&record).unwrap()).unwrap();
    assert_eq!(after["settings"]["epochs"], 3, "{after}");
    let _ = std::fs::remove_dir_all(&tmp);
}

/// With k folds, every fold's `last/` is taken up before any fold trains on: a damaged
/// second fold fails the resume before the first fold trains a further epoch under the new
/// options or the record says it did.
#[test]
fn a_kfold_resume_with_a_damaged_later_fold_trains_and_records_nothing() {
    let tmp = temp_dir("train-resume-kfold");
    let job = TrainJob {
        kfold: Some(2),
        synth_count: 8,
        ..tiny_job(tmp.join("run"))
    };
    run(&job).expect("the first run trains both folds");
    let record = job.run_dir.join(xray_seg::train::RUN_OPTIONS_FILE);
    let before = std::fs::read(&record).unwrap();
    let log = |fold: &str| std::fs::read(job.run_dir.join(fold).join("log.jsonl")).unwrap();
    let first_fold_log = log("fold-0");

    let optimizer = job.run_dir.join("fold-1/last/optimizer.safetensors");
    let bytes = std::fs::read(&optimizer).unwrap();
    std::fs::write(&optimizer, &bytes[..bytes.len() / 2]).unwrap();
    let longer = TrainJob {
        resume: true,
        epochs: 2,
        ..job.clone()
    };
    let err = error_of(&longer, "a damaged second fold");
    assert!(
        err.contains("fold-1") && err.contains("optimizer.safetensors"),
        "{err}"
    );
    assert_eq!(std::fs::read(&record).unwrap(), before);
    assert_eq!(log("fold-0"), first_fold_log, "fold 0 trained on");

    // Mended, both folds train their second epoch and the record says 2.
    std::fs::write(&optimizer, &bytes).unwrap();
    let (outcomes, kfold) = run(&longer).expect("the resume trains on");
    assert_eq!((outcomes.len(), kfold.map(|k| k.folds)), (2, Some(2)));
    for o in &outcomes {
        let line = o.summary_line();
        assert!(line.contains("2 epochs (1 in this call) in"), "{line}");
    }
    let after: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&record).unwrap()).unwrap();
    assert_eq!(after["settings"]["epochs"], 2, "{after}");
    let _ = std::fs::remove_dir_all(&tmp);
}

/// A fold's `best/`, which its training reads last (its weights become the fold's model), is
/// checked with its `last/` before any fold trains: a `best/` whose weights are not its
/// config's failed the resume only after the earlier folds had trained on under the new
/// record (the `run_kfold` fuzz target, 2026-12-02).
#[test]
fn a_kfold_resume_with_a_damaged_later_best_checkpoint_trains_and_records_nothing() {
    let tmp = temp_dir("train-resume-kfold-best");
    let job = TrainJob {
        kfold: Some(2),
        synth_count: 8,
        ..tiny_job(tmp.join("run"))
    };
    run(&job).expect("the first run trains both folds");
    let record = job.run_dir.join(xray_seg::train::RUN_OPTIONS_FILE);
    let before = std::fs::read(&record).unwrap();
    let fold_files = |fold: &str| {
        ["log.jsonl", "last/trainer_state.json", "model.safetensors"]
            .map(|f| std::fs::read(job.run_dir.join(fold).join(f)).unwrap())
    };
    let first_fold = fold_files("fold-0");

    // fold-1/best/config.json records fold 0's weights. Its epoch and loss are the trainer
    // state's, so the resume's catch-up of best/ leaves it as it is; both say 1e-9, so the
    // epoch the resume trains does not improve on it and replace best/.
    let config_path = job.run_dir.join("fold-1/best/config.json");
    let state_path = job.run_dir.join("fold-1/last/trainer_state.json");
    let good = std::fs::read(&config_path).unwrap();
    let good_state = std::fs::read(&state_path).unwrap();
    let mut state: serde_json::Value = serde_json::from_slice(&good_state).unwrap();
    state["best_loss"] = serde_json::json!(1e-9);
    std::fs::write(&state_path, serde_json::to_vec_pretty(&state).unwrap()).unwrap();
    let digest_of = |fold: &str| {
        let config: serde_json::Value = serde_json::from_slice(
            &std::fs::read(job.run_dir.join(fold).join("best/config.json")).unwrap(),
        )
        .unwrap();
        config["weights_digest"].clone()
    };
    let mut config: serde_json::Value = serde_json::from_slice(&good).unwrap();
    assert_ne!(digest_of("fold-0"), config["weights_digest"]);
    config["weights_digest"] = digest_of("fold-0");
    config["metadata"]["monitored_loss"] = serde_json::json!(1e-9);
    std::fs::write(&config_path, serde_json::to_vec_pretty(&config).unwrap()).unwrap();
    let longer = TrainJob {
        resume: true,
        epochs: 2,
        ..job.clone()
    };
    let err = error_of(&longer, "a damaged best/ in the second fold");
    assert!(
        err.contains("fold-1") && err.contains("best") && err.contains("model.safetensors"),
        "{err}"
    );
    assert!(
        std::fs::read(&record).unwrap() == before,
        "the record changed: {err}"
    );
    assert!(
        fold_files("fold-0") == first_fold,
        "fold 0 trained on: {err}"
    );

    // Mended, both folds train their second epoch.
    std::fs::write(&config_path, &good).unwrap();
    std::fs::write(&state_path, &good_state).unwrap();
    let (outcomes, _) = run(&longer).expect("the resume trains on");
    assert!(outcomes.iter().all(|o| o.summary.epochs_run == 2));
    let _ = std::fs::remove_dir_all(&tmp);
}

/// A resume with nothing to train whose log holds no epoch record (emptied, or only a line cut
/// short, which the resume drops) evaluates the run again without plotting curves: it failed
/// with "training log line 0: the log has no rows", naming no file, after the evaluation (and
/// with k folds, after the earlier folds had been written again; the `run_kfold` fuzz target,
/// 2026-12-02).
#[test]
fn a_resume_whose_log_holds_no_record_skips_the_curves() {
    let tmp = temp_dir("train-resume-empty-log");
    let job = tiny_job(tmp.join("run"));
    run(&job).expect("the first run trains");
    let again = TrainJob {
        resume: true,
        ..job.clone()
    };
    let log = job.run_dir.join("log.jsonl");
    for text in ["", "\n\n", "{\"epo"] {
        std::fs::write(&log, text).unwrap();
        let (outcomes, _) = run(&again).unwrap_or_else(|e| panic!("{text:?}: {e}"));
        assert_eq!(outcomes[0].summary.epochs_run, 1);
        assert!(outcomes[0].summary.epochs.is_empty(), "{text:?}");
    }
    let _ = std::fs::remove_dir_all(&tmp);
}

/// A learning rate that blows the weights up while every step's loss stays finite (1e10:
/// batch-norm variances overflow) stops the run at the end of the epoch, before such weights
/// become `best/`; they used to be saved and then failed to load as "corrupt".
#[test]
fn weights_that_overflow_stop_training_before_they_are_saved() {
    let tmp = temp_dir("train-diverged");
    let job = TrainJob {
        lr: 1e10,
        ..tiny_job(tmp.join("run"))
    };
    let err = error_of(&job, "diverged weights");
    assert!(
        err.contains("non-finite weight") && err.contains("lower learning rate"),
        "{err}"
    );
    assert!(!job.run_dir.join("best").exists(), "{err}");
    let _ = std::fs::remove_dir_all(&tmp);
}

/// A folder holding someone else's files is not called a run (the message said "holds a run"
/// and `--resume` then said it held none).
#[test]
fn a_folder_of_other_files_is_not_called_a_run() {
    let tmp = temp_dir("train-other-files");
    let job = tiny_job(tmp.join("notes"));
    std::fs::create_dir_all(&job.run_dir).unwrap();
    std::fs::write(job.run_dir.join("todo.txt"), "x").unwrap();
    let err = error_of(&job, "a folder of other files");
    assert!(
        err.contains("holds files that are not a train run") && !err.contains("--resume"),
        "{err}"
    );
    assert_eq!(std::fs::read_dir(&job.run_dir).unwrap().count(), 1);
    let _ = std::fs::remove_dir_all(&tmp);
}

/// Options of the synthetic data found only when the data were made (a phantom size the
/// generator refuses, more folds than images) left `train_job.json` behind, and the run's
/// name could then not be used again with any fix; they are refused before any file.
#[test]
fn synthetic_data_options_are_checked_before_the_run_folder_is_written() {
    let tmp = temp_dir("train-synth-options");
    for (job, needle) in [
        (
            TrainJob {
                synth_size: 0,
                ..tiny_job(tmp.join("size"))
            },
            "--synth-size 0",
        ),
        (
            TrainJob {
                kfold: Some(20),
                synth_count: 6,
                ..tiny_job(tmp.join("folds"))
            },
            "--kfold 20 needs at least 20 images, but --synth-count is 6",
        ),
    ] {
        let err = error_of(&job, needle);
        assert!(err.contains(needle), "{needle:?} not in: {err}");
        assert!(!job.run_dir.exists(), "{err}: the run folder was written");
    }
    let _ = std::fs::remove_dir_all(&tmp);
}

/// `train_split` checks the job as `run` does (width 0 trained as width 1).
#[test]
fn train_split_checks_the_job_first() {
    let tmp = temp_dir("train-split-check");
    let data = synthetic_folder(&tmp);
    let ds =
        std::sync::Arc::new(xray_data::dataset::Dataset::open(&data, &Default::default()).unwrap());
    let split = xray_data::dataset::Split {
        train: vec![0, 1],
        val: vec![2],
        test: vec![3],
    };
    let job = TrainJob {
        width: 0,
        ..tiny_job(tmp.join("run"))
    };
    let err = xray_seg::train::train_split(&job, &ds, &split, &tmp.join("run"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("--width must be at least 1"), "{err}");
    assert!(!tmp.join("run").exists());
    let _ = std::fs::remove_dir_all(&tmp);
}

/// A copy of the labelled folder `from` whose images are stored in display polarity (bone
/// white: `65535 − v`), as a viewer's or PACS's PNG export holds them; masks and categories
/// unchanged.
fn display_polarity_copy(from: &Path, to: &Path) {
    copy_folder(from, to);
    let images = to.join("images");
    for entry in std::fs::read_dir(&images).unwrap() {
        let path = entry.unwrap().path();
        let mut img =
            xray_data::io::load_image(&path, &xray_data::io::LoadOptions::default()).unwrap();
        for v in img.iter_mut() {
            *v = 65535.0 - *v;
        }
        xray_data::io::save_png16(&path, &img).unwrap();
    }
}

#[test]
fn a_display_polarity_dataset_trains_with_invert_as_its_convention_copy() {
    let tmp = temp_dir("train-invert");
    let data = synthetic_folder(&tmp);
    let display = tmp.join("display");
    display_polarity_copy(&data, &display);
    let trained = |name: &str, data: &Path, invert: bool| {
        let job = TrainJob {
            data: Some(data.to_path_buf()),
            invert,
            ..tiny_job(tmp.join(name))
        };
        run(&job).expect("the run trains");
        std::fs::read(job.run_dir.join("model.safetensors")).unwrap()
    };
    let convention = trained("convention", &data, false);
    // Mirrored back on reading, the display copy is the same data: the same weights.
    assert_eq!(trained("inverted", &display, true), convention);
    // Read as it is, it is other data.
    assert_ne!(trained("as-is", &display, false), convention);
    // The run records it, and a resume must keep it.
    let resumed = TrainJob {
        data: Some(display.clone()),
        invert: false,
        resume: true,
        ..tiny_job(tmp.join("inverted"))
    };
    let err = error_of(&resumed, "a resume without --invert must be refused");
    assert!(
        err.contains("--invert: the run has true, this call false"),
        "{err}"
    );
    // Synthetic data is written in the convention: neither flag applies to it.
    for (job, flag) in [
        (
            TrainJob {
                invert: true,
                ..tiny_job(tmp.join("synthetic-invert"))
            },
            "--invert",
        ),
        (
            TrainJob {
                allow_rgb: true,
                ..tiny_job(tmp.join("synthetic-rgb"))
            },
            "--allow-rgb",
        ),
    ] {
        let err = fails_before_training(&job, flag);
        assert!(err.contains("--data"), "{err}");
        assert!(
            !job.run_dir.exists(),
            "{} was created",
            job.run_dir.display()
        );
    }
    std::fs::remove_dir_all(&tmp).ok();
}

/// A `best/` that lost its weights file but kept its config was passed by the resume check,
/// which loaded `best/`'s weights only when the file was there: the run then took its final
/// weights for the model while recording `best/`'s epoch, and left a `best/` that does not
/// load (the `interrupted_save` fuzz target, 2026-12-02).
#[test]
fn a_resume_refuses_a_best_checkpoint_without_its_weights_before_training() {
    let tmp = temp_dir("train-resume-best-without-weights");
    let job = tiny_job(tmp.join("run"));
    run(&job).expect("the first run trains");
    let weights = job.run_dir.join("best/model.safetensors");
    std::fs::remove_file(&weights).unwrap();
    let record = || {
        [
            "last/trainer_state.json",
            "log.jsonl",
            xray_seg::train::RUN_OPTIONS_FILE,
        ]
        .map(|f| std::fs::read(job.run_dir.join(f)).unwrap())
    };
    let before = record();
    let longer = TrainJob {
        resume: true,
        epochs: 2,
        ..job.clone()
    };
    let err = error_of(&longer, "a best/ without its weights");
    assert!(err.contains(&weights.display().to_string()), "{err}");
    assert!(
        record() == before,
        "the resume trained or recorded something: {err}"
    );
    std::fs::remove_dir_all(&tmp).ok();
}

/// A process stopped between an atomic write and its rename leaves the temporary file
/// (`.<name>.tmp-<pid>`) beside the file it was to replace: a fold's final model or config,
/// its `train_config.json` when it started, the run's `kfold.json`. A resume writes each of
/// them again but kept the temporary ones for good, each as large as its file (the
/// `interrupted_kfold_save` fuzz target, 2026-12-02); a refused resume still keeps them.
#[test]
fn a_kfold_resume_removes_the_temporary_files_a_crash_left() {
    let tmp = temp_dir("train-resume-kfold-tmp");
    let job = TrainJob {
        kfold: Some(3),
        synth_count: 9,
        ..tiny_job(tmp.join("run"))
    };
    run(&job).expect("the first run trains the three folds");
    let run_dir = &job.run_dir;
    // The pid of a stopped process (above Linux's largest, so never a live one).
    let stale = |name: &str| format!(".{name}.tmp-4194305");
    let half = |path: &Path| {
        let bytes = std::fs::read(path).unwrap();
        bytes[..bytes.len() / 2].to_vec()
    };
    let left = [
        ("fold-1", "model.safetensors"),
        ("fold-1", "config.json"),
        ("fold-2", "train_config.json"),
        ("", "kfold.json"),
    ]
    .map(|(fold, name)| {
        let dir = run_dir.join(fold);
        let path = dir.join(stale(name));
        std::fs::write(&path, half(&dir.join(name))).unwrap();
        path
    });
    let temporaries = || -> Vec<PathBuf> {
        let mut found = Vec::new();
        for dir in ["", "fold-0", "fold-1", "fold-2"] {
            for entry in std::fs::read_dir(run_dir.join(dir)).unwrap() {
                let path = entry.unwrap().path();
                if path.to_string_lossy().contains(".tmp-") {
                    found.push(path);
                }
            }
        }
        found.sort();
        found
    };
    let mut expected = left.to_vec();
    expected.sort();
    assert_eq!(temporaries(), expected);

    // Refused (another seed): nothing is removed.
    let refused = TrainJob {
        resume: true,
        seed: 6,
        ..job.clone()
    };
    let err = error_of(&refused, "a resume with another seed");
    assert!(err.contains("--seed"), "{err}");
    assert_eq!(temporaries(), expected, "{err}");

    let (outcomes, kfold) = run(&TrainJob {
        resume: true,
        ..job.clone()
    })
    .expect("the resume evaluates the folds again");
    assert_eq!((outcomes.len(), kfold.map(|k| k.folds)), (3, Some(3)));
    assert_eq!(
        temporaries(),
        Vec::<PathBuf>::new(),
        "a crash's temporary files outlived the resume"
    );
    let _ = std::fs::remove_dir_all(&tmp);
}
