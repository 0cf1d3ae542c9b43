//! The train job's checks before it trains: every image of every split is read and checked
//! first, run names and folders are not overwritten or misread, and bad options are refused
//! by their flag before any file is written. The checks of a resumed run are in
//! `train_resume_checks.rs`.

use std::path::Path;

use xray_data::dataset::{Dataset, DatasetOptions};
use xray_seg::train::{check_run_name, open_dataset, plan_splits, run, TrainJob};

#[path = "support/train_job.rs"]
mod train_job;

use train_job::{
    copy_folder, error_of, fails_before_training, synthetic_folder, temp_dir, tiny_job,
};

/// Damages one file of a dataset folder.
type Spoil<'a> = Box<dyn Fn(&Path) + 'a>;

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
