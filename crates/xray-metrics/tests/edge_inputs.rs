//! Inputs at the edges: reports that do not describe one set of classes (an edited
//! `report.json`), NaN fields on a JSON round trip, logits whose curvature underflows in
//! temperature scaling, training logs spanning the whole f64 range.

use xray_metrics::*;

/// A small, consistent three-class report with boundary quality and AUC curves.
fn report() -> Report {
    let mut cfg = EvalConfig::new(["open beam", "soft tissue", "bone"]);
    cfg.boundary = true;
    let mut ev = Evaluator::new(cfg).unwrap();
    let labels = [0u8, 0, 1, 1, 2, 2];
    let mut probs = vec![0f32; 18];
    for (i, &l) in labels.iter().enumerate() {
        for k in 0..3 {
            probs[k * 6 + i] = if k == usize::from(l) { 0.8 } else { 0.1 };
        }
    }
    // One soft-tissue pixel called bone, so every score is not 1.
    probs[6 + 3] = 0.1;
    probs[12 + 3] = 0.8;
    ev.add_image(&labels, &probs, 3, 2).unwrap();
    ev.finish().unwrap()
}

fn temp_dir(tag: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("xray-metrics-edge-{tag}-{}", std::process::id()))
}

#[test]
fn nan_fields_survive_a_json_round_trip() {
    let mut r = report();
    r.ece = f64::NAN;
    r.rmsce = f64::NAN;
    r.mce = f64::NAN;
    r.classwise_ece[1] = f64::NAN;
    r.classwise_ece_mean = f64::NAN;
    r.reliability.bins[0].confidence = f64::NAN;
    r.auc.curves[0][0].tpr = f64::NAN;
    r.auc.error_bound = f64::NAN;
    r.temperature = Some(TemperatureFit {
        temperature: f64::NAN,
        nll_before: f64::NAN,
        nll_after: f64::NAN,
        ece_before: f64::NAN,
        ece_after: f64::NAN,
        iterations: 3,
        pixels: 6,
    });
    let json = r.to_json().unwrap();
    assert!(json.contains(r#""ece": null"#), "{json}");
    let back = Report::from_json(&json).unwrap();
    assert!(back.ece.is_nan() && back.rmsce.is_nan() && back.mce.is_nan());
    assert!(back.classwise_ece[1].is_nan() && back.classwise_ece_mean.is_nan());
    assert!(back.reliability.bins[0].confidence.is_nan());
    assert!(back.auc.curves[0][0].tpr.is_nan() && back.auc.error_bound.is_nan());
    let t = back.temperature.unwrap();
    assert!(t.temperature.is_nan() && t.nll_after.is_nan() && t.ece_after.is_nan());
    assert_eq!(t.iterations, 3);
    // And through the files the jobs write.
    let dir = temp_dir("nan");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("report.json");
    r.save_json(&path).unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(Report::from_json(&text).unwrap().ece.is_nan());
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Edits the JSON of [`report`] with `edit`, then parses it back.
fn edited(edit: impl FnOnce(&mut serde_json::Value)) -> Result<Report> {
    let mut v: serde_json::Value = serde_json::from_str(&report().to_json().unwrap()).unwrap();
    edit(&mut v);
    Report::from_json(&v.to_string())
}

fn assert_names(r: Result<Report>, field: &str) {
    match r {
        Err(e @ MetricsError::LengthMismatch { .. }) => {
            assert!(e.to_string().contains(&format!("`{field}`")), "{e}")
        }
        other => panic!("expected a LengthMismatch naming `{field}`, got {other:?}"),
    }
}

#[test]
fn from_json_refuses_a_report_whose_lengths_disagree() {
    assert!(edited(|_| ()).is_ok());
    // Two names for three classes, four names for three.
    assert_names(
        edited(|v| v["class_names"] = serde_json::json!(["a", "b"])),
        "support",
    );
    assert_names(
        edited(|v| v["class_names"] = serde_json::json!(["a", "b", "c", "d"])),
        "support",
    );
    assert_names(
        edited(|v| v["boundary"] = serde_json::json!([])),
        "boundary",
    );
    assert_names(
        edited(|v| v["f1"]["per_class"] = serde_json::json!([0.5, 0.5])),
        "f1.per_class",
    );
    assert_names(
        edited(|v| v["auc"]["per_class"] = serde_json::json!([0.5, 0.5, 0.5, 0.5])),
        "auc.per_class",
    );
    assert_names(
        edited(|v| v["auc"]["curves"] = serde_json::json!([])),
        "auc.curves",
    );
    assert_names(
        edited(|v| v["per_image"]["iou"] = serde_json::json!([null])),
        "per_image.iou",
    );
    assert_names(
        edited(|v| v["classwise_reliability"] = serde_json::json!([])),
        "classwise_reliability",
    );
    assert_names(
        edited(|v| v["confusion_matrix"] = serde_json::json!([[1, 0, 0], [0, 1, 0]])),
        "confusion_matrix",
    );
    assert_names(
        edited(|v| v["confusion_matrix"][1] = serde_json::json!([0, 1])),
        "confusion_matrix[1]",
    );
    // No boundary at all is fine (EvalConfig::boundary = false).
    assert!(edited(|v| v["boundary"] = serde_json::Value::Null).is_ok());
}

#[test]
fn markdown_and_plots_of_an_inconsistent_report_do_not_panic() {
    let dir = temp_dir("inconsistent");
    let mut cases: Vec<(Report, &str)> = Vec::new();
    let mut r = report();
    r.class_names.truncate(2);
    cases.push((r, "support"));
    let mut r = report();
    r.class_names.push("extra".into());
    cases.push((r, "support"));
    let mut r = report();
    r.boundary = Some(Vec::new());
    cases.push((r, "boundary"));
    let mut r = report();
    r.confusion_matrix[2].pop();
    cases.push((r, "confusion_matrix[2]"));
    for (r, field) in cases {
        assert_names(Err(r.validate().unwrap_err()), field);
        let md = r.to_markdown();
        assert!(md.starts_with("## Evaluation: inconsistent report"), "{md}");
        assert!(md.contains(&format!("`{field}`")), "{md}");
        assert_names(
            Err(r.save_markdown(dir.join("report.md")).unwrap_err()),
            field,
        );
        assert_names(Err(save_plots(&r, &dir).unwrap_err()), field);
        assert_names(Err(plot_roc(&r, dir.join("roc")).unwrap_err()), field);
        assert_names(
            Err(plot_confusion(&r, dir.join("confusion")).unwrap_err()),
            field,
        );
        assert_names(
            Err(plot_reliability(&r, dir.join("reliability")).unwrap_err()),
            field,
        );
        assert!(!dir.exists(), "a refused report wrote {}", dir.display());
    }
}

#[test]
fn counts_past_u64_in_an_edited_report_do_not_overflow() {
    let dir = temp_dir("counts");
    let mut r = report();
    r.confusion_matrix[0] = vec![u64::MAX, u64::MAX, 1];
    let n = r.reliability.bins.len();
    r.reliability.bins[n - 1].count = u64::MAX;
    r.reliability.bins[n - 2].count = u64::MAX;
    let r = Report::from_json(&r.to_json().unwrap()).unwrap();
    assert!(r.to_markdown().contains("| open beam |"));
    assert_eq!(r.reliability.total(), u64::MAX);
    assert!(r.ece.is_finite() && r.reliability.ece().is_finite());
    assert_eq!(save_plots(&r, &dir).unwrap().len(), 6);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn plots_of_a_report_with_values_outside_0_1_do_not_panic() {
    let dir = temp_dir("values");
    for v in [f64::NAN, f64::INFINITY, -f64::INFINITY, 1e308, -1e308, 1e30] {
        let mut r = report();
        for (k, b) in r.reliability.bins.iter_mut().enumerate() {
            b.lower = v;
            b.upper = -v;
            b.accuracy = v;
            b.confidence = -v;
            b.count = k as u64;
        }
        for p in r.auc.curves.iter_mut().flatten() {
            p.fpr = v;
            p.tpr = -v;
        }
        r.auc.weighted = Some(v);
        r.auc.per_class[0] = Some(v);
        r.ece = v;
        r.confidence = Some(v);
        let r = Report::from_json(&r.to_json().unwrap()).unwrap();
        assert_eq!(save_plots(&r, &dir).unwrap().len(), 6, "{v}");
        assert!(r.to_markdown().contains("| open beam |"));
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Runs `f` on its own thread; a hang fails the test instead of stalling it.
fn within<T: Send + 'static>(secs: u64, what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(std::time::Duration::from_secs(secs))
        .unwrap_or_else(|_| panic!("{what}: no answer within {secs} s"))
}

#[test]
fn training_curves_spanning_more_than_f64_are_refused_not_hung() {
    let dir = temp_dir("training");
    let refused = [
        "{\"epoch\":1,\"loss\":1e308}\n{\"epoch\":2,\"loss\":-1e308}",
        "{\"epoch\":1,\"val_accuracy\":-1.5e308}\n{\"epoch\":2,\"val_accuracy\":1.5e308}",
        "{\"step\":-1e308,\"loss\":1}\n{\"step\":1e308,\"loss\":2}",
    ];
    for (i, text) in refused.into_iter().enumerate() {
        let log = TrainingLog::parse(text).unwrap();
        let stem = dir.join(format!("refused{i}"));
        let r = within(60, text, move || plot_training_curves(&log, stem));
        match r {
            Err(e @ MetricsError::Plot { .. }) => {
                assert!(e.to_string().contains("wider than"), "{e}")
            }
            other => panic!("{text}: expected a Plot error, got {other:?}"),
        }
        assert!(!dir.join(format!("refused{i}.png")).exists());
    }
    // Extreme but drawable: huge values, ranges too narrow for their magnitude, padding
    // that would pass f64::MAX, columns without a finite value.
    let drawable = [
        "{\"epoch\":1,\"loss\":0}\n{\"epoch\":2,\"loss\":1.79e308}",
        "{\"epoch\":1,\"loss\":-1.79e308}\n{\"epoch\":2,\"loss\":-1.78e308}",
        "{\"epoch\":1,\"loss\":1e300}\n{\"epoch\":2,\"loss\":1e300}",
        "{\"epoch\":1,\"loss\":1e300}\n{\"epoch\":2,\"loss\":1.0000000000000002e300}",
        "{\"step\":100000000000000000,\"loss\":1}",
        "{\"step\":1.7e308,\"loss\":1}\n{\"step\":1.7976931348623157e308,\"loss\":2}",
    ];
    for (i, text) in drawable.into_iter().enumerate() {
        let log = TrainingLog::parse(text).unwrap();
        let stem = dir.join(format!("drawable{i}"));
        let r = within(60, text, move || plot_training_curves(&log, stem));
        assert_eq!(r.unwrap().len(), 2, "{text}");
    }
    let mut log = TrainingLog::parse("{\"epoch\":1,\"loss\":1}").unwrap();
    log.columns.insert("epoch".into(), vec![f64::NAN]);
    log.columns.insert("loss".into(), vec![f64::INFINITY]);
    log.columns
        .insert("accuracy".into(), vec![f64::NEG_INFINITY]);
    let stem = dir.join("no_finite");
    assert_eq!(
        within(60, "no finite value", move || plot_training_curves(
            &log, stem
        ))
        .unwrap()
        .len(),
        2
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

fn fit(logits: &'static [f32], labels: &'static [u8], range: (f64, f64)) -> TemperatureFit {
    let what = format!("fit_temperature({logits:?}, {labels:?}, {range:?})");
    within(60, &what.clone(), move || {
        let cfg = TemperatureConfig {
            temperature_range: range,
            ..TemperatureConfig::default()
        };
        fit_temperature(&[LogitImage { logits, labels }], 2, &cfg)
    })
    .unwrap_or_else(|e| panic!("{what}: {e}"))
}

fn close(a: f64, b: f64, tol: f64, what: &str) {
    assert!((a - b).abs() <= tol, "{what}: {a} vs {b}");
}

#[test]
fn temperature_fit_survives_curvature_underflow() {
    // Logits (0, -z) labelled 1: the NLL 'z β + ln(1 + exp(-z β))' falls as β = 1/T falls,
    // so the fit belongs at the range's top, T = 20. At T = 1 the softmax variance (the
    // curvature) is subnormal (z = 740: the Newton step was infinite and its halving never
    // ended) or exactly 0 (z = 800: the fit stopped at T = 1 with an NLL of 800).
    for z in [700f32, 740.0, 800.0, 3e38] {
        let logits: &'static [f32] = Box::leak(Box::new([0.0, -z]));
        let r = fit(logits, &[1], (0.05, 20.0));
        assert_eq!(r.temperature, 20.0, "z = {z}");
        close(
            r.nll_before,
            f64::from(z),
            1e-9 * f64::from(z),
            "NLL at T = 1",
        );
        close(
            r.nll_after,
            f64::from(z) / 20.0,
            1e-9 * f64::from(z),
            "NLL at T = 20",
        );
    }
    // Two pixels with the same logits, one of each class: the NLL is least at β = 0.
    let r = fit(&[0.0, 0.0, -740.0, -740.0], &[0, 1], (0.05, 20.0));
    assert_eq!(r.temperature, 20.0);
    close(r.nll_after, 18.5, 1e-9, "NLL at T = 20");
    // A wider range: the minimiser is inside it. Three pixels of class 0 and one of class 1,
    // all with logits (0, -800): the NLL's derivative 800 (1 - 4 sigmoid(-800 β)) vanishes
    // at exp(800 β) = 3, T = 800 / ln 3.
    let logits: &'static [f32] = &[0.0, 0.0, 0.0, 0.0, -800.0, -800.0, -800.0, -800.0];
    let r = fit(logits, &[0, 0, 0, 1], (0.05, 1e6));
    close(r.temperature, 800.0 / 3f64.ln(), 1e-6, "interior T");
    let at_top = fit(logits, &[0, 0, 0, 1], (0.05, 1e6 - 1.0));
    assert!(r.nll_after < 1.0 && r.nll_after <= at_top.nll_after);
    // Whatever the range, the fit lands on its minimiser: no sampled T in the range does
    // better.
    for range in [(0.05, 20.0), (0.5, 2.0), (100.0, 5000.0), (1000.0, 1e6)] {
        let r = fit(logits, &[0, 0, 0, 1], range);
        assert!(r.temperature >= range.0 && r.temperature <= range.1);
        for i in 0..=50 {
            let t = range.0 * (range.1 / range.0).powf(f64::from(i) / 50.0);
            let cfg = TemperatureConfig {
                temperature_range: (t, t),
                ..TemperatureConfig::default()
            };
            let images = [LogitImage {
                logits,
                labels: &[0, 0, 0, 1],
            }];
            let pinned = fit_temperature(&images, 2, &cfg).unwrap();
            assert!(
                r.nll_after <= pinned.nll_after + 1e-12,
                "range {range:?}: T = {} gives {}, T = {t} gives {}",
                r.temperature,
                r.nll_after,
                pinned.nll_after
            );
        }
    }
    // Confident and right: T = 1 is as good as any (the NLL is 0 to f64 precision).
    let r = fit(&[0.0, -800.0], &[0], (0.05, 20.0));
    assert_eq!(r.nll_after, 0.0);
}

/// A call refused for a bad probability in a later class plane leaves the AUC accumulators
/// as they were: earlier planes were once taken in without their positives, so the next
/// `finish` underflowed (debug) or scored wrongly (release).
#[test]
fn a_refused_add_leaves_the_auc_accumulators_unchanged() {
    let labels = [0u8, 1, 1, 0];
    let good = [0.8f32, 0.3, 0.4, 0.6, /* class 1 */ 0.2, 0.7, 0.6, 0.4];
    let more = [0.1f32, 0.9, 0.5, /* class 1 */ 0.9, 0.1, 0.5];
    let more_labels = [1u8, 0, 255];
    // Class 0 in range, class 1 not (2.0, and a NaN after it).
    let bad = [
        0.5f32,
        0.5,
        0.5,
        0.5,
        /* class 1 */ 0.5,
        2.0,
        f32::NAN,
        0.5,
    ];

    let mut exact = ExactAuc::new(2).unwrap();
    exact.add(&labels, &good).unwrap();
    match exact.add(&labels, &bad) {
        Err(MetricsError::InvalidProbability {
            pixel: 1,
            class: 1,
            value,
        }) => assert_eq!(value, 2.0),
        other => panic!("expected class 1's pixel 1 to be named, got {other:?}"),
    }
    exact.add(&more_labels, &more).unwrap();
    let mut clean = ExactAuc::new(2).unwrap();
    clean.add(&labels, &good).unwrap();
    clean.add(&more_labels, &more).unwrap();
    assert_eq!(
        exact.finish(MicroAuc::Compute),
        clean.finish(MicroAuc::Compute)
    );

    let mut binned = BinnedAuc::new(2, 16).unwrap();
    binned.add(&labels, &good).unwrap();
    assert!(binned.add(&labels, &bad).is_err());
    binned.add(&more_labels, &more).unwrap();
    let mut clean = BinnedAuc::new(2, 16).unwrap();
    clean.add(&labels, &good).unwrap();
    clean.add(&more_labels, &more).unwrap();
    assert_eq!(binned.finish(), clean.finish());
}

/// Per-image means over matrices of different class counts (a caller's mix-up) give one
/// score per class of the largest, each over the images that have it, instead of panicking
/// on the smaller matrix.
#[test]
fn per_image_means_over_mixed_class_counts_do_not_panic() {
    let two = ConfusionMatrix::from_labels(&[0, 1], &[0, 1], 2).unwrap();
    let three = ConfusionMatrix::from_labels(&[0, 1, 2, 2], &[0, 1, 2, 1], 3).unwrap();
    for images in [[two.clone(), three.clone()], [three, two]] {
        let s = mean_over_images(
            &images,
            ClassMetric::Recall,
            Average::None,
            ZeroDivision::Zero,
        );
        // Class 2's recall (1 of 2) comes from the three-class image alone.
        assert_eq!(s, Score::PerClass(vec![1.0, 1.0, 0.5]));
    }
}

/// The evaluator hands its AUC accumulator the probabilities unchecked, relying on its own
/// check of every pixel (an ignored one's and a non-top class's included, the sum check
/// off): a bad value there is still refused, and the image is not counted.
#[test]
fn the_evaluator_refuses_a_bad_probability_of_any_pixel_before_the_auc_counts_it() {
    let mut cfg = EvalConfig::new(["open beam", "bone"]);
    cfg.sum_tolerance = f64::INFINITY;
    let mut ev = Evaluator::new(cfg).unwrap();
    let labels = [0u8, 255];
    // Pixel 1 is ignored, and its class-1 probability 1.5 is out of range.
    let bad = [0.9f32, 0.1, /* class 1 */ 0.1, 1.5];
    match ev.add_image(&labels, &bad, 2, 1) {
        Err(MetricsError::InvalidProbability { .. }) => {}
        other => panic!("expected the bad probability to be refused, got {other:?}"),
    }
    ev.add_image(&labels, &[0.9, 0.1, 0.1, 0.9], 2, 1).unwrap();
    assert_eq!(ev.confusion().total(), 1);
}

#[test]
fn mce_ignores_the_empty_bins_of_an_edited_reliability() {
    // `CalibrationNorm::Max` is the largest gap over the non-empty bins. The crate's own
    // empty bins hold confidence and accuracy 0 (gap 0), but an edited or hand-built
    // reliability's need not: this one's empty bin once gave an MCE of 0.3.
    let bin = |count, confidence, accuracy| ReliabilityBin {
        lower: 0.0,
        upper: 1.0,
        count,
        confidence,
        accuracy,
    };
    let r = Reliability {
        bins: vec![bin(0, 0.3, 0.0), bin(2, 0.6, 0.5)],
    };
    assert!((r.mce() - 0.1).abs() < 1e-12, "{}", r.mce());
    assert_eq!(r.error(CalibrationNorm::Max), r.mce());
    // ECE and RMSCE weight bins by their pixels, so an empty bin never counted there.
    assert!((r.ece() - 0.1).abs() < 1e-12 && (r.rmsce() - 0.1).abs() < 1e-12);
    // No pixel at all: 0, as for the other norms.
    let empty = Reliability {
        bins: vec![bin(0, 0.3, 0.0)],
    };
    assert_eq!((empty.mce(), empty.ece()), (0.0, 0.0));
}

#[test]
fn a_plot_stem_with_a_dot_keeps_its_whole_name() {
    // The plots write `stem.png` and `stem.svg`. The extension was once set with
    // `Path::with_extension`, which replaced the part after a dot: the stems `run.a` and
    // `run.b` both wrote `run.png` and `run.svg`, the second plot over the first.
    let dir = temp_dir("dotted-stems");
    let r = report();
    let a = plot_roc(&r, dir.join("run.a")).unwrap();
    let b = plot_confusion(&r, dir.join("run.b")).unwrap();
    assert_eq!(a, [dir.join("run.a.png"), dir.join("run.a.svg")]);
    assert_eq!(b, [dir.join("run.b.png"), dir.join("run.b.svg")]);
    assert!(a.iter().chain(&b).all(|f| f.exists()));
    assert!(!dir.join("run.png").exists());
    let rel = plot_reliability(&r, dir.join("epoch-1.5")).unwrap();
    assert_eq!(rel[0], dir.join("epoch-1.5.png"));
    let log = TrainingLog::parse("{\"epoch\":1,\"loss\":0.5}").unwrap();
    let curves = plot_training_curves(&log, dir.join("curves.v2")).unwrap();
    assert_eq!(curves[1], dir.join("curves.v2.svg"));
    // The refusal before drawing names the same file.
    let wide = TrainingLog::parse("{\"loss\":1e308}\n{\"loss\":-1e308}").unwrap();
    match plot_training_curves(&wide, dir.join("curves.v3")) {
        Err(MetricsError::Plot { path, .. }) => assert_eq!(path, dir.join("curves.v3.png")),
        other => panic!("expected a plot error, got {other:?}"),
    }
    // Stems without a dot are as before.
    assert_eq!(
        plot_roc(&r, dir.join("roc")).unwrap()[0],
        dir.join("roc.png")
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// With every pixel ignored, the torchmetrics-style float32 calibration error is 0 for every
/// norm, as the f64 one is (its bin weights were 0/0, so L1 and L2 came out NaN).
#[test]
fn torch_f32_calibration_error_of_no_scored_pixel_is_zero() {
    let labels = [255u8, 255, 255];
    let probs = [0.75f32, 0.65, 0.5, 0.25, 0.35, 0.5];
    for norm in [
        CalibrationNorm::L1,
        CalibrationNorm::L2,
        CalibrationNorm::Max,
    ] {
        let torch = calibration_error_torch_f32(&labels, &probs, 2, 10, norm).unwrap();
        let exact = calibration_error(&labels, &probs, 2, 10, norm).unwrap();
        assert_eq!((torch, exact), (0.0, 0.0), "{norm:?}");
    }
}

/// A temperature fit lowers the NLL it minimises; when it raised the ECE on the same pixels,
/// the markdown says so instead of showing the rise as a calibration that worked.
#[test]
fn a_fit_that_raised_the_ece_is_flagged_in_the_markdown() {
    let fit = TemperatureFit {
        temperature: 0.8,
        nll_before: 0.50,
        nll_after: 0.45,
        ece_before: 0.0906,
        ece_after: 0.1058,
        iterations: 5,
        pixels: 4096,
    };
    let mut r = report();
    r.temperature = Some(fit.clone());
    let md = r.to_markdown();
    assert!(
        md.contains("| temperature | 0.8000 (ECE 0.0906 → 0.1058"),
        "{md}"
    );
    assert!(
        md.contains("| temperature note | the fit lowered the NLL but raised the ECE"),
        "{md}"
    );
    for ece_after in [0.02, 0.0906, f64::NAN] {
        r.temperature = Some(TemperatureFit {
            ece_after,
            ..fit.clone()
        });
        assert!(!r.to_markdown().contains("temperature note"), "{ece_after}");
    }
}

/// Finishing with nothing to score says what was added: it read "0 images added, every
/// pixel ignored or none at all" (and "1 images added") whether no image was given or every
/// pixel of the images was ignored.
#[test]
fn finishing_with_nothing_scored_says_what_was_added() {
    let nothing = Evaluator::new(EvalConfig::default()).unwrap();
    let e = nothing.finish().unwrap_err().to_string();
    assert!(e.contains("no image was added"), "{e}");
    for n in [1usize, 2] {
        let mut ev = Evaluator::new(EvalConfig::default()).unwrap();
        for _ in 0..n {
            ev.add_image(&[255, 255], &[0.2, 0.2, 0.3, 0.3, 0.5, 0.5], 2, 1)
                .unwrap();
        }
        let e = ev.finish().unwrap_err().to_string();
        let want = if n == 1 {
            "1 image added, but every pixel of it is labelled 255"
        } else {
            "2 images added, but every pixel of them is labelled 255"
        };
        assert!(e.contains(want), "{e}");
    }
}
