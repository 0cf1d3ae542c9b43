//! The examples' core paths on a tiny configuration: train → checkpoint → evaluate →
//! segment, asserting the files and their contents.

use std::path::Path;

use xray_data::dataset::{Dataset, DatasetOptions};
use xray_data::io::load_mask;
use xray_seg::evaluate::{evaluate_samples, write_evaluation};
use xray_seg::predict::Predictor;
use xray_seg::segment::{segment_file, SegmentOptions};
use xray_seg::train::{run, TrainJob};

fn tiny_job(dir: &Path) -> TrainJob {
    TrainJob {
        run_dir: dir.join("run"),
        size: 32,
        width: 2,
        epochs: 2,
        batch: 4,
        patience: 2,
        synth_count: 14,
        synth_size: 48,
        progress: false,
        overlays: 1,
        seed: 3,
        ..TrainJob::default()
    }
}

/// A NEMA WG-04 sample of `../shared/data/nema-cr`, or `None` (saying so) where the shared
/// folder is absent.
fn nema_sample(name: &str) -> Option<std::path::PathBuf> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/data/nema-cr")
        .join(name);
    if path.exists() {
        Some(path)
    } else {
        eprintln!(
            "skipped: {} is absent (the shared NEMA CR samples are not on this machine)",
            path.display()
        );
        None
    }
}

fn in_unit(v: f64) -> bool {
    (0.0..=1.0).contains(&v)
}

/// Adds confusion matrix `m` (rows) into `sum`.
fn add_rows(sum: &mut [Vec<u64>], m: &[Vec<u64>]) {
    for (row, add) in sum.iter_mut().zip(m) {
        for (v, a) in row.iter_mut().zip(add) {
            *v += a;
        }
    }
}

#[test]
fn train_then_evaluate_then_segment() {
    let tmp = std::env::temp_dir().join(format!("xray-seg-jobs-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    // 24 images leave a validation split (with 14, every category but one has a single
    // image, and the XNet split puts those in training), which the temperature is fitted on.
    let job = TrainJob {
        synth_count: 24,
        ..tiny_job(&tmp)
    };
    let (outcomes, kfold) = run(&job).expect("training runs");
    assert!(kfold.is_none());
    let o = &outcomes[0];
    let run_dir = &job.run_dir;
    for f in [
        "model.safetensors",
        "config.json",
        "log.jsonl",
        "report.json",
        "report.md",
        "roc.png",
        "reliability.png",
        "confusion.png",
        "training.png",
    ] {
        assert!(
            run_dir.join(f).is_file(),
            "{f} missing from the run directory"
        );
    }
    assert_eq!(o.split_sizes.iter().sum::<usize>(), 24);
    // The printed summary names the best epoch in words (it printed `best Some(0)`).
    let line = o.summary_line();
    let best = o
        .summary
        .best_epoch
        .expect("a validation split gives a best epoch");
    assert!(
        line.contains(&format!("(best epoch {best})")) && !line.contains("Some("),
        "{line}"
    );
    assert_eq!(xray_seg::train::best_epoch_text(None), "no best epoch");
    assert!(
        o.split_sizes[1] > 0,
        "no validation split: {:?}",
        o.split_sizes
    );
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run_dir.join("report.json")).unwrap())
            .unwrap();
    for key in ["accuracy", "ece", "mce", "confidence"] {
        let v = report[key]
            .as_f64()
            .unwrap_or_else(|| panic!("{key} is not a number"));
        assert!(in_unit(v), "{key} = {v} outside [0, 1]");
    }
    let f1 = report["f1"]["weighted"].as_f64().unwrap();
    assert!(in_unit(f1));
    assert_eq!(report["confusion_matrix"].as_array().unwrap().len(), 3);
    assert!(std::fs::read_dir(run_dir.join("overlays")).unwrap().count() >= 4);

    // The softmax temperature, fitted on the validation split, is in the checkpoint, the
    // report shows the fit, and the loaded predictor applies it.
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run_dir.join("config.json")).unwrap())
            .unwrap();
    // `best/` and `last/` record how inputs were shaped too: loaded on their own they
    // preprocess like the run (they fell back to 200 × 200 and segmented badly).
    for sub in ["best", "last"] {
        let loaded = Predictor::load(&run_dir.join(sub), &candle_core::Device::Cpu).unwrap();
        assert!(loaded.preprocess_recorded(), "{sub}");
        assert_eq!(
            serde_json::json!(loaded.preprocess()),
            config["metadata"]["preprocess"],
            "{sub}"
        );
        assert_eq!(
            loaded.flip_average(),
            Predictor::load(run_dir, &candle_core::Device::Cpu)
                .unwrap()
                .flip_average(),
            "{sub}"
        );
        assert_eq!(loaded.preprocess_warning(run_dir), None);
    }
    let temperature = config["metadata"]["temperature"]
        .as_f64()
        .expect("metadata.temperature is a number");
    assert!(temperature.is_finite() && temperature > 0.0);
    let fit = &report["temperature"];
    assert_eq!(fit["temperature"].as_f64(), Some(temperature));
    assert!(
        fit["nll_after"].as_f64().unwrap() <= fit["nll_before"].as_f64().unwrap() + 1e-12,
        "the fit cannot raise the validation NLL: {fit}"
    );
    assert!(fit["pixels"].as_u64().unwrap() > 0);

    // Evaluate the checkpoint on the whole synthetic folder, with the tissue threshold.
    let predictor = Predictor::load(run_dir, &candle_core::Device::Cpu).expect("checkpoint loads");
    assert_eq!(predictor.preprocess().width, 32);
    assert_eq!(predictor.temperature(), temperature);
    let ds = Dataset::open(&run_dir.join("data"), &DatasetOptions::default()).unwrap();
    let all: Vec<usize> = (0..ds.len()).collect();
    let eval = evaluate_samples(&predictor, &ds, &all, Some(0.9)).unwrap();
    assert_eq!(eval.report.images, ds.len());
    // The temperature moves confidences, never the arg-max.
    let mut raw = Predictor::load(run_dir, &candle_core::Device::Cpu).unwrap();
    raw.set_temperature(1.0).unwrap();
    let eval_raw = evaluate_samples(&raw, &ds, &all, None).unwrap();
    assert_eq!(
        eval_raw.report.confusion_matrix,
        eval.report.confusion_matrix
    );
    if (temperature - 1.0).abs() > 1e-3 {
        assert_ne!(eval_raw.report.confidence, eval.report.confidence);
    }
    let t = eval.thresholded.as_ref().unwrap();
    assert!(
        t.soft_tissue_false_positive_rate <= eval.argmax.soft_tissue_false_positive_rate + 1e-12,
        "a higher soft-tissue threshold cannot add soft-tissue false positives"
    );
    // Per category: every image counted once, and the categories' matrices add up to the
    // pooled one.
    let mut names: Vec<&str> = ds
        .samples
        .iter()
        .filter_map(|s| s.category.as_deref())
        .collect();
    names.sort_unstable();
    names.dedup();
    let got: Vec<&str> = eval
        .per_category
        .iter()
        .map(|c| c.category.as_str())
        .collect();
    assert_eq!(got, names);
    assert_eq!(
        eval.per_category.iter().map(|c| c.images).sum::<usize>(),
        ds.len()
    );
    let mut pooled = vec![vec![0u64; 3]; 3];
    for c in &eval.per_category {
        assert_eq!(
            c.pixels,
            c.scores.confusion_matrix.iter().flatten().sum::<u64>()
        );
        add_rows(&mut pooled, &c.scores.confusion_matrix);
    }
    assert_eq!(pooled, eval.argmax.confusion_matrix);
    // Their calibration: the categories' reliability bins pooled again give the report's ECE.
    let mut all_bins: Option<xray_metrics::ReliabilityBins> = None;
    for c in &eval.per_category {
        let ece = c.ece.expect("probabilities were scored");
        assert!((0.0..=1.0).contains(&ece));
        let bins = c.calibration.as_ref().unwrap();
        assert_eq!(bins.total(), c.pixels);
        match &mut all_bins {
            Some(all) => all.merge(bins).unwrap(),
            None => all_bins = Some(bins.clone()),
        }
    }
    let pooled_ece = all_bins.unwrap().reliability().ece();
    assert!(
        (pooled_ece - eval.report.ece).abs() < 1e-12,
        "{pooled_ece} vs the report's {}",
        eval.report.ece
    );
    let out = tmp.join("eval");
    write_evaluation(&eval, &out).unwrap();
    assert!(out.join("thresholds.json").is_file());
    let per_category: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("categories.json")).unwrap())
            .unwrap();
    assert_eq!(per_category.as_array().unwrap().len(), names.len());
    assert!(std::fs::read_to_string(out.join("report.md"))
        .unwrap()
        .contains("## By category (arg-max)"));
    assert!(std::fs::read_to_string(out.join("report.md"))
        .unwrap()
        .contains("soft-tissue threshold 0.9"));
    // Written again into the same folder without a threshold or categories, the earlier
    // thresholds.json and categories.json go: they described the earlier scoring.
    let plain = xray_seg::evaluate::Evaluation {
        thresholded: None,
        per_category: Vec::new(),
        ..eval.clone()
    };
    write_evaluation(&plain, &out).unwrap();
    assert!(!out.join("thresholds.json").exists());
    assert!(!out.join("categories.json").exists());
    // Categories and confusion matrices must pair up (images were dropped silently).
    let cm = xray_metrics::ConfusionMatrix::from_labels(&[0, 1], &[0, 2], 3).unwrap();
    let e = xray_seg::evaluate::per_category_scores([Some("hand")], &[cm.clone(), cm], None, 3)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("1 images' categories for 2 confusion matrices"),
        "{e}"
    );

    // Segment one image at its own resolution.
    let input = &ds.samples[0].image;
    let seg_dir = tmp.join("seg");
    let opts = SegmentOptions {
        probabilities: true,
        ..SegmentOptions::default()
    };
    let s = segment_file(&predictor, input, &seg_dir, &opts).unwrap();
    let labels = load_mask(&s.labels).unwrap();
    assert_eq!(labels.dimensions(), (48, 48));
    assert!(
        labels.as_raw().iter().all(|&v| v <= 2 || v == 255),
        "labels outside {{0,1,2,255}}"
    );
    let field = image::open(&s.field_mask).unwrap().to_luma8();
    assert_eq!(field.dimensions(), (48, 48));
    assert!(field.as_raw().iter().all(|&v| v == 0 || v == 255));
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&s.field_json).unwrap()).unwrap();
    assert_eq!(json["width"], 48);
    assert_eq!(s.probabilities.len(), 3);
    assert!(s.overlay.is_file());
    let _ = std::fs::remove_dir_all(&tmp);
}

#[test]
fn bad_options_are_clear_errors() {
    let tmp = std::env::temp_dir().join(format!("xray-seg-bad-{}", std::process::id()));
    let mut job = tiny_job(&tmp);
    job.size = 30; // not a multiple of XNet's 8
    let err = run(&job).unwrap_err().to_string();
    assert!(err.contains("multiple of 8"), "{err}");
    let mut job = tiny_job(&tmp);
    job.kfold = Some(1);
    assert!(run(&job).unwrap_err().to_string().contains("k ≥ 2"));
    let missing = Predictor::load(&tmp.join("nowhere"), &candle_core::Device::Cpu);
    assert!(missing.is_err());
    // No images, no predictions (it was an "empty input" error).
    let shipped =
        Predictor::load(&xray_seg::shipped_weights_dir(), &candle_core::Device::Cpu).unwrap();
    assert!(shipped.predict_many(&[]).unwrap().is_empty());
    let _ = std::fs::remove_dir_all(&tmp);
}

/// A fresh `tmp` holding the shipped weights file, and the shipped config to write beside it.
fn shipped_weights_copy(tmp: &std::path::Path) -> serde_json::Value {
    let _ = std::fs::remove_dir_all(tmp);
    std::fs::create_dir_all(tmp).unwrap();
    let shipped = xray_seg::shipped_weights_dir();
    std::fs::copy(
        shipped.join("model.safetensors"),
        tmp.join("model.safetensors"),
    )
    .unwrap();
    serde_json::from_str(&std::fs::read_to_string(shipped.join("config.json")).unwrap()).unwrap()
}

#[test]
fn a_bad_temperature_in_a_checkpoint_is_an_error() {
    let tmp = std::env::temp_dir().join(format!("xray-seg-temperature-{}", std::process::id()));
    let config = shipped_weights_copy(&tmp);
    for (value, ok) in [
        (serde_json::json!(1.5), true),
        (serde_json::json!(0.0), false),
        (serde_json::json!(-2.0), false),
        (serde_json::json!(1e-9), false),
        (serde_json::json!(1e9), false),
        (serde_json::json!("warm"), false),
        (serde_json::json!(null), false),
    ] {
        let mut c = config.clone();
        c["metadata"]["temperature"] = value.clone();
        std::fs::write(tmp.join("config.json"), c.to_string()).unwrap();
        match Predictor::load(&tmp, &candle_core::Device::Cpu) {
            Ok(p) => {
                assert!(ok, "temperature {value} was accepted");
                assert_eq!(p.temperature(), 1.5);
            }
            Err(e) => {
                assert!(!ok, "temperature {value}: {e}");
                assert!(e.to_string().contains("temperature"), "{e}");
            }
        }
    }
    // An out-of-range number is printed readably: 1e308 once came out as 309 digits.
    for (value, shown) in [
        (1e308, "got 1e308"),
        (1e-300, "got 1e-300"),
        (250.0, "got 250"),
    ] {
        let mut c = config.clone();
        c["metadata"]["temperature"] = serde_json::json!(value);
        std::fs::write(tmp.join("config.json"), c.to_string()).unwrap();
        let err = Predictor::load(&tmp, &candle_core::Device::Cpu)
            .err()
            .unwrap_or_else(|| panic!("temperature {value} was accepted"))
            .to_string();
        assert!(err.contains("must be in [0.01, 100]"), "{err}");
        assert!(err.contains(shown), "{shown:?} not in: {err}");
        assert!(!err.contains("00000000"), "a long run of digits: {err}");
    }
    // A fit stored afterwards replaces the temperature and keeps the rest.
    std::fs::write(tmp.join("config.json"), config.to_string()).unwrap();
    let fit = xray_metrics::TemperatureFit {
        temperature: 2.25,
        nll_before: 0.5,
        nll_after: 0.4,
        ece_before: 0.05,
        ece_after: 0.01,
        iterations: 3,
        pixels: 100,
    };
    xray_seg::calibrate::store_temperature(&tmp, &fit, xnet_model::infer::FlipAverage::Horizontal)
        .unwrap();
    let reloaded = Predictor::load(&tmp, &candle_core::Device::Cpu).unwrap();
    assert_eq!(reloaded.temperature(), 2.25);
    // The temperature holds for the flip averaging it was fitted with, which is stored too.
    assert_eq!(
        reloaded.flip_average(),
        xnet_model::infer::FlipAverage::Horizontal
    );
    let stored: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(tmp.join("config.json")).unwrap()).unwrap();
    assert_eq!(
        stored["metadata"]["preprocess"],
        config["metadata"]["preprocess"]
    );
    assert_eq!(stored["model"], config["model"]);
    assert_eq!(stored["metadata"]["temperature_fit"]["pixels"], 100);
    let _ = std::fs::remove_dir_all(&tmp);
}

#[test]
fn a_bad_preprocessing_record_in_a_checkpoint_names_its_config_file() {
    let tmp = std::env::temp_dir().join(format!("xray-seg-preprocess-{}", std::process::id()));
    let config = shipped_weights_copy(&tmp);
    let config_file = tmp.join("config.json");
    for (field, value, what) in [
        (
            "percentile",
            serde_json::json!([99.0, 1.0]),
            "percentile window must satisfy 0 <= low < high <= 100, got low=99, high=1",
        ),
        ("width", serde_json::json!(30), "multiple of 8"),
        (
            "log",
            serde_json::json!("yes"),
            "not a preprocessing record",
        ),
    ] {
        let mut c = config.clone();
        c["metadata"]["preprocess"][field] = value.clone();
        std::fs::write(&config_file, c.to_string()).unwrap();
        // Given as the directory or as the weights file, the error names the config file.
        for given in [tmp.clone(), tmp.join("model.safetensors")] {
            let err = Predictor::load(&given, &candle_core::Device::Cpu)
                .unwrap_err()
                .to_string();
            assert!(
                err.contains(&format!("{}: metadata.preprocess", config_file.display()))
                    && err.contains(what),
                "{field} = {value}: {err}"
            );
        }
    }
    // No record at all loads with XNet's default, and the predictor says it is a guess.
    let mut c = config.clone();
    c["metadata"].as_object_mut().unwrap().remove("preprocess");
    std::fs::write(&config_file, c.to_string()).unwrap();
    let guessed = Predictor::load(&tmp, &candle_core::Device::Cpu).unwrap();
    assert!(!guessed.preprocess_recorded());
    assert_eq!(
        (guessed.preprocess().width, guessed.preprocess().height),
        (200, 200)
    );
    let warning = guessed.preprocess_warning(&tmp).unwrap();
    assert!(
        warning.contains(&tmp.display().to_string()) && warning.contains("no preprocessing"),
        "{warning}"
    );
    let _ = std::fs::remove_dir_all(&tmp);
}

#[test]
fn shipped_weights_segment_the_real_hip_radiograph() {
    let weights = xray_seg::shipped_weights_dir();
    let predictor =
        Predictor::load(&weights, &candle_core::Device::Cpu).expect("the shipped checkpoint loads");
    assert_eq!(predictor.num_classes(), 3);
    let Some(rg2) = nema_sample("RG2_UNC") else {
        return;
    };
    let out = std::env::temp_dir().join(format!("xray-seg-rg2-{}", std::process::id()));
    let s = segment_file(&predictor, &rg2, &out, &SegmentOptions::default()).expect("RG2 segments");
    assert_eq!(s.size, (1760, 2140));
    let labels = load_mask(&s.labels).unwrap();
    assert_eq!(labels.dimensions(), (1760, 2140));
    assert!(
        s.edges >= 2,
        "the left and right collimator bands must be found, got {} edges",
        s.edges
    );
    // The collimator bands (left and right borders) are outside the field: 255.
    for y in [100, 1000, 2000] {
        assert_eq!(labels.get_pixel(20, y)[0], 255);
        assert_eq!(labels.get_pixel(1740, y)[0], 255);
    }
    let [open, soft, bone, _] = s.label_counts;
    assert!(
        open > 0 && soft > 0 && bone > 0,
        "every class should appear on a hip radiograph: {:?}",
        s.label_counts
    );
    // Its DICOM BodyPartExamined ("HIP") chose the category.
    assert_eq!(s.category.as_deref(), Some("hip"));
    // MONOCHROME2: stored for display (bone white), mirrored on reading.
    assert!(s.mirrored);
    let _ = std::fs::remove_dir_all(&out);
}

#[test]
fn the_uncertainty_map_is_one_minus_the_top_probability() {
    let tmp = std::env::temp_dir().join(format!("xray-seg-doubt-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    xray_data::synth::generate_dataset(&tmp.join("data"), 1, 64, 4).unwrap();
    let input = tmp.join("data/images/synth_00000.png");
    let mut predictor =
        Predictor::load(&xray_seg::shipped_weights_dir(), &candle_core::Device::Cpu).unwrap();
    let opts = SegmentOptions {
        uncertainty: true,
        probabilities: true,
        ..SegmentOptions::default()
    };
    let mut expected = Vec::new();
    for t in [0.5, 2.0] {
        predictor.set_temperature(t).unwrap();
        let s = segment_file(&predictor, &input, &tmp.join(format!("t{t}")), &opts).unwrap();
        let map = image::open(s.uncertainty.as_ref().unwrap())
            .unwrap()
            .to_luma16();
        assert_eq!(map.dimensions(), s.size);
        // Pixel by pixel: 1 − the largest of the written probabilities (both 16-bit).
        let probs: Vec<_> = s
            .probabilities
            .iter()
            .map(|p| image::open(p).unwrap().to_luma16())
            .collect();
        for (i, d) in map.as_raw().iter().enumerate() {
            let top = probs.iter().map(|p| p.as_raw()[i]).max().unwrap();
            assert!(
                (i32::from(*d) - (65535 - i32::from(top))).abs() <= 2,
                "pixel {i}"
            );
        }
        let e = s.expected_error.unwrap();
        assert!((0.0..=1.0).contains(&e));
        expected.push(e);
        // As a line of segment.jsonl.
        let line = serde_json::to_value(&s).unwrap();
        assert_eq!(line["expected_error"].as_f64(), Some(e));
        assert_eq!(line["size"], serde_json::json!([s.size.0, s.size.1]));
        assert!(line["uncertainty"]
            .as_str()
            .unwrap()
            .ends_with(".uncertainty.png"));
    }
    // A softer softmax (T = 2) is less sure of every label than a sharper one (T = 0.5).
    assert!(expected[1] > expected[0], "{expected:?}");
    let _ = std::fs::remove_dir_all(&tmp);
}

#[test]
fn a_dicom_body_part_picks_the_per_category_threshold() {
    let Some(rg1) = nema_sample("RG1_UNCR.dcm") else {
        return;
    };
    let predictor =
        Predictor::load(&xray_seg::shipped_weights_dir(), &candle_core::Device::Cpu).unwrap();
    let out = std::env::temp_dir().join(format!("xray-seg-bodypart-{}", std::process::id()));
    let plain = segment_file(&predictor, &rg1, &out, &SegmentOptions::default()).unwrap();
    assert_eq!(
        plain.category.as_deref(),
        Some("chest"),
        "BodyPartExamined is CHEST"
    );
    // A soft-tissue threshold for chests only: RG1 gets it without being told it is a chest.
    let mut cfg = xray_postproc::PipelineConfig::default();
    cfg.thresholds.per_category.insert("chest".into(), 0.999);
    let chest_threshold = SegmentOptions {
        pipeline: xray_postproc::Pipeline::new(cfg).unwrap(),
        ..SegmentOptions::default()
    };
    let strict = segment_file(&predictor, &rg1, &out, &chest_threshold).unwrap();
    assert!(
        strict.label_counts[1] < plain.label_counts[1],
        "the chest threshold must take soft tissue away: {:?} vs {:?}",
        strict.label_counts,
        plain.label_counts
    );
    // A category given by the caller wins over the file's.
    let as_hand = SegmentOptions {
        category: Some("hand".into()),
        ..chest_threshold
    };
    let hand = segment_file(&predictor, &rg1, &out, &as_hand).unwrap();
    assert_eq!(hand.category.as_deref(), Some("hand"));
    assert_eq!(hand.label_counts, plain.label_counts);
    let _ = std::fs::remove_dir_all(&out);
}

#[test]
fn kfold_writes_a_report_per_fold_and_the_summary() {
    let tmp = std::env::temp_dir().join(format!("xray-seg-kfold-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    let mut job = tiny_job(&tmp);
    job.kfold = Some(2);
    job.epochs = 1;
    job.overlays = 0;
    let (outcomes, summary) = run(&job).expect("k-fold runs");
    let summary = summary.expect("a k-fold summary");
    assert_eq!(outcomes.len(), 2);
    assert_eq!(summary.folds, 2);
    for (f, o) in outcomes.iter().enumerate() {
        assert!(job.run_dir.join(format!("fold-{f}/report.json")).is_file());
        assert!(o.split_sizes[2] > 0);
    }
    // Every image is tested exactly once across the folds.
    assert_eq!(outcomes.iter().map(|o| o.split_sizes[2]).sum::<usize>(), 14);
    // Per category, pooled over the folds: every image once, and the categories' matrices
    // add up to the folds' pooled arg-max matrices.
    assert_eq!(
        summary.per_category.iter().map(|c| c.images).sum::<usize>(),
        14
    );
    let mut by_category = vec![vec![0u64; 3]; 3];
    for c in &summary.per_category {
        add_rows(&mut by_category, &c.scores.confusion_matrix);
    }
    let mut by_fold = vec![vec![0u64; 3]; 3];
    for o in &outcomes {
        add_rows(&mut by_fold, &o.evaluation.argmax.confusion_matrix);
    }
    assert_eq!(by_category, by_fold);
    for c in &summary.per_category {
        let bins = c
            .calibration
            .as_ref()
            .expect("every fold scored probabilities");
        assert_eq!(bins.total(), c.pixels);
        assert_eq!(c.ece, Some(bins.reliability().ece()));
    }
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(job.run_dir.join("kfold.json")).unwrap())
            .unwrap();
    assert_eq!(json["columns"][1], "f1_weighted");
    assert_eq!(summary.temperatures.len(), 2);
    for (t, o) in summary.temperatures.iter().zip(&outcomes) {
        assert_eq!(
            *t,
            o.evaluation
                .report
                .temperature
                .as_ref()
                .map(|f| f.temperature)
        );
    }
    let f1: Vec<f64> = outcomes
        .iter()
        .map(|o| o.evaluation.report.f1.weighted)
        .collect();
    assert!((summary.mean[1] - (f1[0] + f1[1]) / 2.0).abs() < 1e-12);
    // Two folds: the sample std (divisor k − 1 = 1) is |a − b| / √2, and the mean's 95 %
    // interval t(0.975, 1 df) = 12.706 times std / √2 (kfold.json had "mean ± std" only).
    let std = (f1[0] - f1[1]).abs() / 2f64.sqrt();
    assert!((summary.std[1] - std).abs() < 1e-12);
    assert!((summary.ci95[1] - 12.7062 * std / 2f64.sqrt()).abs() < 1e-12);
    assert_eq!(json["ci95"].as_array().map(Vec::len), Some(5));
    let _ = std::fs::remove_dir_all(&tmp);
}

#[test]
fn compare_scores_every_variant_and_the_baseline_per_category() {
    use xnet_model::models::Upsampling;
    use xray_seg::compare::{run as compare, Variant};
    use xray_seg::train::Arch;
    let tmp = std::env::temp_dir().join(format!("xray-seg-compare-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    let mut job = tiny_job(&tmp);
    job.epochs = 1;
    job.overlays = 0;
    // Enough images for a validation split, on which each network's temperature is fitted.
    job.synth_count = 24;
    let variants = [
        Variant {
            arch: Arch::XNet,
            upsampling: Upsampling::Nearest,
        },
        Variant {
            arch: Arch::SegNet,
            upsampling: Upsampling::IndexUnpool,
        },
    ];
    let rows = compare(&job, &variants).expect("compare runs");
    assert_eq!(rows.len(), 3, "two variants and the baseline");
    // Each network's ECE is at the temperature its row shows (fitted on the validation
    // images); the baseline has none.
    let temperatures: Vec<bool> = rows.iter().map(|r| r.temperature.is_some()).collect();
    assert_eq!(temperatures, [true, true, false]);
    assert_eq!(rows[0].name, "xnet/nearest");
    assert!(rows[2].name.starts_with("classical baseline"));
    // Every contestant is scored on the same test images, so on the same categories.
    let categories: Vec<&String> = rows[0].f1_by_category.keys().collect();
    assert!(!categories.is_empty());
    for r in &rows {
        assert_eq!(r.f1_by_category.keys().collect::<Vec<_>>(), categories);
        assert!(r.f1_by_category.values().all(|&f| in_unit(f)), "{r:?}");
        assert!(in_unit(r.f1_weighted));
    }
    let md = std::fs::read_to_string(job.run_dir.join("compare.md")).unwrap();
    assert!(md.contains("| classical baseline (Otsu + field) |"));
    assert!(md.contains("Weighted F1 by category of the test images"));
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(job.run_dir.join("compare.json")).unwrap())
            .unwrap();
    assert_eq!(json.as_array().unwrap().len(), 3);
    let _ = std::fs::remove_dir_all(&tmp);
}

#[test]
fn compare_checks_its_options_before_generating_data() {
    use xnet_model::models::Upsampling;
    use xray_seg::compare::{run as compare, Variant};
    use xray_seg::train::Arch;
    let tmp = std::env::temp_dir().join(format!("xray-seg-compare-bad-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    let variants = [Variant {
        arch: Arch::XNet,
        upsampling: Upsampling::Nearest,
    }];
    // `compare --epochs 0` generated its synthetic images and made a model folder before
    // the training of the first variant refused the budget.
    // The compare example derives the patience from --epochs, as here; the message names
    // the option the user gave, by its flag, and not the derived patience.
    let mut job = tiny_job(&tmp);
    job.epochs = 0;
    job.patience = 0;
    let err = compare(&job, &variants).unwrap_err().to_string();
    assert!(err.contains("--epochs must be at least 1, got 0"), "{err}");
    assert!(
        !err.contains("patience"),
        "a derived patience reported: {err}"
    );
    assert!(!err.contains("--batch"), "a valid batch reported: {err}");
    assert!(!job.run_dir.exists(), "the run folder was made");
    // A variant whose network does not fit the input size is refused up front too.
    let mut job = tiny_job(&tmp);
    job.size = 30;
    let err = compare(&job, &variants).unwrap_err().to_string();
    assert!(err.contains("multiple of 8"), "{err}");
    assert!(!job.run_dir.exists(), "the run folder was made");
    // Too few synthetic images are refused by their flag, as in `train`.
    let mut job = tiny_job(&tmp);
    job.synth_count = 5;
    let err = compare(&job, &variants).unwrap_err().to_string();
    assert!(
        err.contains("--synth-count must be at least 6 without --data"),
        "{err}"
    );
    assert!(!job.run_dir.exists(), "the run folder was made");
    let _ = std::fs::remove_dir_all(&tmp);
}

#[test]
fn a_dicom_intensity_relationship_sets_the_collimator_scale() {
    use xray_data::io::{
        encode_dicom, load_image, DicomWriteOptions, IntensityRelationship, LoadOptions,
    };
    use xray_postproc::{InputScale, Pipeline, PipelineConfig};
    let tmp = std::env::temp_dir().join(format!("xray-seg-scale-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    xray_data::synth::generate_dataset(&tmp.join("data"), 1, 96, 5).unwrap();
    let img = load_image(
        &tmp.join("data/images/synth_00000.png"),
        &LoadOptions::default(),
    )
    .unwrap();
    let predictor =
        Predictor::load(&xray_seg::shipped_weights_dir(), &candle_core::Device::Cpu).unwrap();
    let dicom = |rel: Option<IntensityRelationship>, name: &str| {
        let opts = DicomWriteOptions {
            intensity_relationship: rel,
            ..DicomWriteOptions::default()
        };
        let path = tmp.join(name);
        std::fs::write(&path, encode_dicom(&img, &opts).unwrap()).unwrap();
        path
    };
    let with_scale = |scale: InputScale| {
        let mut cfg = PipelineConfig::default();
        cfg.collimator.input_scale = scale;
        SegmentOptions {
            pipeline: Pipeline::new(cfg).unwrap(),
            ..SegmentOptions::default()
        }
    };
    let field = |s: &xray_seg::segment::Segmented| std::fs::read_to_string(&s.field_json).unwrap();
    let segment = |input: &Path, dir: &str, opts: &SegmentOptions| {
        segment_file(&predictor, input, &tmp.join(dir), opts).unwrap()
    };
    let plain = dicom(None, "plain.dcm");
    for (rel, scale, name) in [
        (IntensityRelationship::Log, InputScale::Log, "log"),
        (IntensityRelationship::Linear, InputScale::Linear, "linear"),
    ] {
        let tagged = dicom(Some(rel), &format!("{name}.dcm"));
        let from_tag = segment(&tagged, &format!("{name}-tag"), &SegmentOptions::default());
        assert_eq!(from_tag.input_scale_from_file, Some(scale));
        let line = serde_json::to_value(&from_tag).unwrap();
        assert_eq!(line["input_scale_from_file"], name);
        // The field found is the one the untagged file gives with that scale set by hand.
        let by_hand = segment(&plain, &format!("{name}-hand"), &with_scale(scale));
        assert_eq!(by_hand.input_scale_from_file, None);
        assert_eq!(
            field(&from_tag).replace(&format!("{name}.dcm"), "plain.dcm"),
            field(&by_hand)
        );
        // A scale the configuration sets wins over the file's.
        let other = if scale == InputScale::Log {
            InputScale::Linear
        } else {
            InputScale::Log
        };
        let config_wins = segment(&tagged, &format!("{name}-config"), &with_scale(other));
        assert_eq!(config_wins.input_scale_from_file, None);
    }
    // The two scales place this phantom's edges differently (the refinement linearises log
    // profiles), so the equalities above say which scale the detector used.
    let fields: Vec<String> = ["log", "linear"]
        .iter()
        .map(|n| std::fs::read_to_string(tmp.join(format!("{n}-hand/plain.field.json"))).unwrap())
        .collect();
    assert_ne!(fields[0], fields[1]);
    // Without a field search there is no scale to set.
    let no_field = SegmentOptions {
        pipeline: Pipeline::new(PipelineConfig {
            detect_field: false,
            ..PipelineConfig::default()
        })
        .unwrap(),
        ..SegmentOptions::default()
    };
    let s = segment(
        &dicom(Some(IntensityRelationship::Log), "nofield.dcm"),
        "nofield",
        &no_field,
    );
    assert_eq!((s.input_scale_from_file, s.edges), (None, 0));
    // DISP names neither scale: the noise test stays in charge.
    let disp = dicom(Some(IntensityRelationship::Display), "disp.dcm");
    let s = segment_file(
        &predictor,
        &disp,
        &tmp.join("disp"),
        &SegmentOptions::default(),
    )
    .unwrap();
    assert_eq!(s.input_scale_from_file, None);
    let _ = std::fs::remove_dir_all(&tmp);
}

#[test]
fn a_display_polarity_png_segments_with_invert_as_its_convention_copy() {
    let predictor = Predictor::load(&xray_seg::shipped_weights_dir(), &candle_core::Device::Cpu)
        .expect("the shipped checkpoint loads");
    let dir = std::env::temp_dir().join(format!("xray-seg-invert-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    xray_data::synth::generate_dataset(&dir.join("data"), 1, 96, 4).unwrap();
    let convention = dir.join("data/images/synth_00000.png");
    let mut img =
        xray_data::io::load_image(&convention, &xray_data::io::LoadOptions::default()).unwrap();
    for v in img.iter_mut() {
        *v = 65535.0 - *v;
    }
    let display = dir.join("display.png");
    xray_data::io::save_png16(&display, &img).unwrap();
    let labels = |path: &Path, invert: bool, out: &str| {
        let mut opts = SegmentOptions::default();
        opts.load.invert = invert;
        let s = segment_file(&predictor, path, &dir.join(out), &opts).expect("it segments");
        // The summary says how the file was read.
        assert_eq!(s.mirrored, invert);
        load_mask(&s.labels).unwrap()
    };
    let reference = labels(&convention, false, "convention");
    assert_eq!(labels(&display, true, "inverted"), reference);
    assert_ne!(labels(&display, false, "as-is"), reference);
    let _ = std::fs::remove_dir_all(&dir);
}
