//! Property tests (perfect prediction, permutation invariance, ignored pixels), bad-input
//! errors, streaming/parallel consistency and the binned-AUC error bound.

use xray_metrics::*;

mod common;
use common::Rng;

/// Random labels and class-major softmax probabilities with signal on the true class.
fn data(n: usize, c: usize, seed: u64) -> (Vec<u8>, Vec<f32>) {
    let mut rng = Rng(seed);
    let labels: Vec<u8> = (0..n).map(|_| rng.below(c) as u8).collect();
    let mut logits = vec![0f32; n * c];
    for i in 0..n {
        for k in 0..c {
            let boost = if labels[i] as usize == k { 1.0 } else { 0.0 };
            logits[k * n + i] = (boost + rng.normal()) as f32;
        }
    }
    (labels, softmax_with_temperature(&logits, c, 1.0).unwrap())
}

fn config(c: usize) -> EvalConfig {
    let mut cfg = EvalConfig::new((0..c).map(|k| format!("class {k}")));
    cfg.boundary = false;
    cfg
}

fn report(labels: &[u8], probs: &[f32], c: usize) -> Report {
    let mut ev = Evaluator::new(config(c)).unwrap();
    ev.add_image(labels, probs, labels.len(), 1).unwrap();
    ev.finish().unwrap()
}

#[test]
fn perfect_confident_prediction_scores_one_and_zero_ece() {
    let c = 3;
    let (w, h) = (12, 10);
    let labels: Vec<u8> = (0..w * h).map(|i| ((i / 7) % c) as u8).collect();
    let n = labels.len();
    let mut probs = vec![0f32; c * n];
    for (i, &l) in labels.iter().enumerate() {
        probs[l as usize * n + i] = 1.0;
    }
    let mut cfg = config(c);
    cfg.boundary = true;
    let mut ev = Evaluator::new(cfg).unwrap();
    ev.add_image(&labels, &probs, w, h).unwrap();
    let r = ev.finish().unwrap();
    assert_eq!(r.accuracy, Some(1.0));
    assert_eq!((r.f1.micro, r.f1.macro_avg, r.f1.weighted), (1.0, 1.0, 1.0));
    assert!(r.f1.per_class.iter().all(|&v| v == 1.0));
    assert!(r.auc.per_class.iter().all(|&a| a == Some(1.0)));
    assert_eq!(r.auc.weighted, Some(1.0));
    assert_eq!(r.auc.micro, Some(1.0));
    assert_eq!((r.ece, r.mce, r.rmsce), (0.0, 0.0, 0.0));
    assert_eq!(r.confidence, Some(1.0));
    for b in r.boundary.unwrap() {
        assert_eq!((b.hd95, b.assd), (Some(0.0), Some(0.0)));
    }
}

#[test]
fn pixel_permutation_does_not_change_the_report() {
    let (c, n) = (3, 5000);
    let (labels, probs) = data(n, c, 1);
    let mut rng = Rng(2);
    let mut perm: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        perm.swap(i, rng.below(i + 1));
    }
    let pl: Vec<u8> = perm.iter().map(|&i| labels[i]).collect();
    let mut pp = vec![0f32; c * n];
    for k in 0..c {
        for (j, &i) in perm.iter().enumerate() {
            pp[k * n + j] = probs[k * n + i];
        }
    }
    let (a, b) = (report(&labels, &probs, c), report(&pl, &pp, c));
    assert_eq!(a.confusion_matrix, b.confusion_matrix);
    assert_eq!(a.f1, b.f1);
    assert_eq!(a.auc, b.auc);
    // Bin sums are f64 additions in another order: equal up to rounding.
    assert!((a.ece - b.ece).abs() < 1e-12 && (a.mce - b.mce).abs() < 1e-12);
    assert_eq!(a.equal_mass.unwrap().reliability.bins.len(), 15);
}

#[test]
fn ignored_pixels_never_count() {
    let (c, n) = (3, 3000);
    let (labels, probs) = data(n, c, 3);
    // Mark every third pixel ignored and overwrite its probabilities with something else.
    let mut ign = labels.clone();
    let mut noisy = probs.clone();
    for i in (0..n).step_by(3) {
        ign[i] = IGNORE_LABEL;
        for k in 0..c {
            noisy[k * n + i] = if k == 2 { 1.0 } else { 0.0 };
        }
    }
    let keep: Vec<usize> = (0..n).filter(|i| i % 3 != 0).collect();
    let kl: Vec<u8> = keep.iter().map(|&i| labels[i]).collect();
    let mut kp = vec![0f32; c * keep.len()];
    for k in 0..c {
        for (j, &i) in keep.iter().enumerate() {
            kp[k * keep.len() + j] = probs[k * n + i];
        }
    }
    let (a, b) = (report(&ign, &noisy, c), report(&kl, &kp, c));
    assert_eq!(a.ignored_pixels, n.div_ceil(3) as u64);
    assert_eq!(a.pixels, b.pixels);
    assert_eq!(a.confusion_matrix, b.confusion_matrix);
    assert_eq!(a.auc.per_class, b.auc.per_class);
    assert_eq!(a.f1, b.f1);
    assert!((a.ece - b.ece).abs() < 1e-15);
    // Predictions at ignored pixels may be anything, even out of range.
    let pred: Vec<u8> = ign
        .iter()
        .map(|&l| if l == IGNORE_LABEL { 99 } else { l })
        .collect();
    let cm = ConfusionMatrix::from_labels(&ign, &pred, c).unwrap();
    assert_eq!(cm.total(), keep.len() as u64);
}

#[test]
fn bad_input_is_an_error_naming_the_pixel() {
    let c = 3;
    let labels = [0u8, 1, 2, 1];
    let good = [
        0.8f32, 0.1, 0.1, 0.2, 0.1, 0.8, 0.1, 0.7, 0.1, 0.1, 0.8, 0.1,
    ];
    let mut ev = Evaluator::new(config(c)).unwrap();
    assert!(matches!(
        ev.add_image(&labels, &good[..11], 4, 1),
        Err(MetricsError::LengthMismatch {
            expected: 12,
            found: 11,
            ..
        })
    ));
    assert!(matches!(
        ev.add_image(&labels, &good, 2, 3),
        Err(MetricsError::LengthMismatch {
            expected: 6,
            found: 4,
            ..
        })
    ));
    assert!(matches!(
        ev.add_image(&[0, 1, 7, 1], &good, 4, 1),
        Err(MetricsError::LabelOutOfRange {
            pixel: 2,
            label: 7,
            num_classes: 3
        })
    ));
    let mut nan = good;
    nan[4 + 3] = f32::NAN;
    assert!(matches!(
        ev.add_image(&labels, &nan, 4, 1),
        Err(MetricsError::InvalidProbability {
            pixel: 3,
            class: 1,
            ..
        })
    ));
    let mut unnormalised = good;
    unnormalised[1] = 0.5;
    let err = ev.add_image(&labels, &unnormalised, 4, 1).unwrap_err();
    assert!(
        matches!(
            err,
            MetricsError::ProbabilitiesNotNormalised { pixel: 1, .. }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("class-major"));
    assert_eq!(ev.images(), 0, "failed images must not be half-added");
    assert!(matches!(
        ConfusionMatrix::from_labels(&[0, 1], &[0, 3], 3),
        Err(MetricsError::PredictionOutOfRange {
            pixel: 1,
            label: 3,
            ..
        })
    ));
    assert!(matches!(
        ConfusionMatrix::new(1),
        Err(MetricsError::InvalidConfig(_))
    ));
    assert!(matches!(
        calibration_error(&labels, &good, 3, 0, CalibrationNorm::L1),
        Err(MetricsError::InvalidConfig(_))
    ));
    // Everything ignored.
    let mut ev = Evaluator::new(config(c)).unwrap();
    ev.add_image(&[255, 255, 255, 255], &good, 4, 1).unwrap();
    assert!(matches!(ev.finish(), Err(MetricsError::Empty(_))));
}

/// A width × height that overflows `usize` is a length mismatch naming the overflow (it
/// panicked in `width * height`), for the evaluator and for surface distances.
#[test]
fn image_sizes_that_overflow_are_a_length_mismatch() {
    let (w, h) = (1usize << 33, 1usize << 31);
    let labels = [0u8, 1, 2, 1];
    let probs = [
        0.8f32, 0.1, 0.1, 0.2, 0.1, 0.8, 0.1, 0.7, 0.1, 0.1, 0.8, 0.1,
    ];
    let mut cfg = config(3);
    cfg.boundary = true;
    let mut ev = Evaluator::new(cfg).unwrap();
    for e in [
        ev.add_image(&labels, &probs, w, h).unwrap_err(),
        ev.add_image(&labels, &probs, h, w).unwrap_err(),
        surface_distances(&labels, &labels, w, h, 3, 1.0).unwrap_err(),
        surface_distances(&labels, &labels, usize::MAX, 2, 3, 1.0).unwrap_err(),
    ] {
        assert!(
            matches!(e, MetricsError::LengthMismatch { found: 4, .. }),
            "{e}"
        );
        assert!(e.to_string().contains("overflows usize"), "{e}");
    }
    assert_eq!(ev.images(), 0);
    // The sizes that fit still work.
    ev.add_image(&labels, &probs, 2, 2).unwrap();
    assert_eq!(
        surface_distances(&labels, &labels, 2, 2, 3, 1.0)
            .unwrap()
            .len(),
        3
    );
}

#[test]
fn refused_numbers_print_readably() {
    // Each of these printed the refused number in full (-1e300: 301 digits).
    let err = softmax_with_temperature(&[0.0; 3], 3, -1e300).unwrap_err();
    assert!(err.to_string().ends_with("got -1e300"), "{err}");
    let (logits, labels) = ([0.0f32; 3], [0u8]);
    let images = [LogitImage {
        logits: &logits,
        labels: &labels,
    }];
    let range = TemperatureConfig {
        temperature_range: (0.0, 1e300),
        ..TemperatureConfig::default()
    };
    let err = fit_temperature(&images, 3, &range).unwrap_err();
    assert!(err.to_string().ends_with("got (0, 1e300)"), "{err}");
    let spacing = EvalConfig {
        pixel_spacing: -1e-7,
        ..config(3)
    };
    let err = Evaluator::new(spacing).unwrap_err();
    assert!(err.to_string().ends_with("got -1e-7"), "{err}");
    let mut ev = Evaluator::new(config(3)).unwrap();
    let err = ev.add_image(&[0], &[1e30, 0.0, 0.0], 1, 1).unwrap_err();
    assert!(
        err.to_string()
            .contains("probability of class 0 at pixel 0 is 1e30, not a number"),
        "{err}"
    );
}

#[test]
fn auc_of_an_absent_class_is_undefined_not_a_number() {
    let labels = [0u8, 1, 0, 1];
    let probs = [
        0.6f32, 0.3, 0.5, 0.2, 0.3, 0.6, 0.4, 0.7, 0.1, 0.1, 0.1, 0.1,
    ];
    let err = roc_auc_ovr(&labels, &probs, 3, Average::Weighted).unwrap_err();
    assert!(matches!(
        err,
        MetricsError::AucUndefined {
            class: 2,
            positives: 0,
            negatives: 4
        }
    ));
    let r = roc_ovr(&labels, &probs, 3, MicroAuc::Skip).unwrap();
    assert_eq!(r.per_class[2].auc, None);
    assert_eq!(r.per_class[0].auc, Some(1.0));
    let rep = report(&labels, &probs, 3);
    assert_eq!(rep.auc.per_class[2], None);
    assert_eq!(rep.auc.weighted, None);
    assert!(rep
        .auc
        .undefined
        .as_deref()
        .unwrap_or("")
        .contains("class 2"));
    let json = rep.to_json().unwrap();
    assert!(json.contains("\"weighted\": null"));
}

/// Every AUC entry point refuses a score outside [0, 1] with the pixel and class; NaN, the
/// infinities and values of 2 or more used to overflow the radix sort's histogram of
/// `roc_ovr` (a panic) instead.
#[test]
fn auc_refuses_probabilities_outside_0_1() {
    let labels = [0u8, 1];
    for bad in [
        f32::NAN,
        f32::INFINITY,
        f32::NEG_INFINITY,
        2.0,
        1e30,
        1.5,
        -0.5,
    ] {
        let probs = [bad, 0.2, 0.5, 0.8];
        let is_refusal = |r: std::result::Result<(), MetricsError>| match r {
            Err(MetricsError::InvalidProbability {
                pixel: 0,
                class: 0,
                value,
            }) => value.to_bits() == bad.to_bits(),
            _ => false,
        };
        for average in [Average::Macro, Average::Weighted, Average::Micro] {
            let r = roc_auc_ovr(&labels, &probs, 2, average).map(|_| ());
            assert!(is_refusal(r), "roc_auc_ovr, {bad}, {average:?}");
        }
        for micro in [MicroAuc::Skip, MicroAuc::Compute] {
            let r = roc_ovr(&labels, &probs, 2, micro).map(|_| ());
            assert!(is_refusal(r), "roc_ovr, {bad}");
        }
        // An ignored pixel's score is checked as well.
        let r = roc_ovr(&[255, 1], &probs, 2, MicroAuc::Skip).map(|_| ());
        assert!(is_refusal(r), "roc_ovr, ignored pixel, {bad}");
        let mut exact = ExactAuc::new(2).unwrap();
        assert!(is_refusal(exact.add(&labels, &probs)), "ExactAuc, {bad}");
        let mut binned = BinnedAuc::new(2, 16).unwrap();
        assert!(is_refusal(binned.add(&labels, &probs)), "BinnedAuc, {bad}");
    }
}

#[test]
fn binned_auc_stays_within_its_bound_and_the_bound_shrinks() {
    let (c, n) = (3, 20_000);
    let (labels, probs) = data(n, c, 4);
    let exact = roc_ovr(&labels, &probs, c, MicroAuc::Skip).unwrap();
    let mut last = f64::INFINITY;
    for bins in [16, 256, 4096] {
        let mut b = BinnedAuc::new(c, bins).unwrap();
        // Streamed in three uneven pieces.
        for (lo, hi) in [(0, 7000), (7000, 7001), (7001, n)] {
            let m = hi - lo;
            let mut part = vec![0f32; c * m];
            for k in 0..c {
                part[k * m..(k + 1) * m].copy_from_slice(&probs[k * n + lo..k * n + hi]);
            }
            b.add(&labels[lo..hi], &part).unwrap();
        }
        let r = b.finish();
        for k in 0..c {
            let (est, bound) = (r.per_class[k].auc.unwrap(), r.per_class[k].error_bound);
            let truth = exact.per_class[k].auc.unwrap();
            assert!(
                (est - truth).abs() <= bound + 1e-12,
                "bins {bins}: {est} vs {truth} ± {bound}"
            );
        }
        assert!(r.error_bound() < last);
        last = r.error_bound();
    }
    assert!(
        last < 1e-3,
        "4096 bins should bound the error below 1e-3, got {last}"
    );
}

#[test]
fn streaming_merge_and_thread_count_do_not_change_results() {
    let (c, n) = (3, 40_000);
    let (labels, probs) = data(n, c, 5);
    let whole = report(&labels, &probs, c);
    // Four images of 10 000 pixels, in two evaluators merged.
    let part = |i: usize| {
        let (lo, hi) = (i * 10_000, (i + 1) * 10_000);
        let mut p = vec![0f32; c * 10_000];
        for k in 0..c {
            p[k * 10_000..(k + 1) * 10_000].copy_from_slice(&probs[k * n + lo..k * n + hi]);
        }
        (labels[lo..hi].to_vec(), p)
    };
    let mut a = Evaluator::new(config(c)).unwrap();
    let mut b = Evaluator::new(config(c)).unwrap();
    for i in 0..4 {
        let (l, p) = part(i);
        if i < 2 { &mut a } else { &mut b }
            .add_image(&l, &p, 10_000, 1)
            .unwrap();
    }
    a.merge(b).unwrap();
    let merged = a.finish().unwrap();
    assert_eq!(merged.confusion_matrix, whole.confusion_matrix);
    assert_eq!(merged.auc.per_class, whole.auc.per_class);
    assert_eq!(merged.auc.micro, whole.auc.micro);
    assert!((merged.ece - whole.ece).abs() < 1e-12);
    assert_eq!(merged.per_image.images, 4);
    let one = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap();
    let seq = one.install(|| {
        (
            calibration_error(&labels, &probs, c, 15, CalibrationNorm::L1).unwrap(),
            roc_auc_ovr(&labels, &probs, c, Average::Weighted).unwrap(),
        )
    });
    assert_eq!(
        seq.0,
        calibration_error(&labels, &probs, c, 15, CalibrationNorm::L1).unwrap()
    );
    assert_eq!(
        seq.1,
        roc_auc_ovr(&labels, &probs, c, Average::Weighted).unwrap()
    );
    let pred: Vec<u8> = (0..n).map(|i| ((i * 7) % 3) as u8).collect();
    assert_eq!(
        ConfusionMatrix::from_labels(&labels, &pred, c).unwrap(),
        ConfusionMatrix::from_labels_par(&labels, &pred, c).unwrap()
    );
}

#[test]
fn torch_f32_ece_is_close_to_the_f64_one() {
    let (c, n) = (3, 10_000);
    let (labels, probs) = data(n, c, 6);
    let a = calibration_error(&labels, &probs, c, 15, CalibrationNorm::L1).unwrap();
    let b = calibration_error_torch_f32(&labels, &probs, c, 15, CalibrationNorm::L1).unwrap();
    assert!((a - b).abs() < 1e-5, "{a} vs {b}");
}

#[test]
fn distance_transform_matches_brute_force() {
    let mut rng = Rng(7);
    for &(w, h) in &[(1, 1), (7, 3), (13, 11), (1, 9)] {
        let f: Vec<bool> = (0..w * h).map(|_| rng.uniform() < 0.15).collect();
        let d = squared_distance_transform(&f, w, h).unwrap();
        for y in 0..h {
            for x in 0..w {
                let mut best = f64::INFINITY;
                for yy in 0..h {
                    for xx in 0..w {
                        if f[yy * w + xx] {
                            let (dx, dy) = (x as f64 - xx as f64, y as f64 - yy as f64);
                            best = best.min(dx * dx + dy * dy);
                        }
                    }
                }
                assert_eq!(d[y * w + x], best, "({x},{y}) in {w}x{h}");
            }
        }
    }
}

/// A feature map that is not `width × height` values is an error, not a panic (too short)
/// or a silently ignored tail (too long); a zero dimension is an empty map.
#[test]
fn distance_transform_refuses_a_map_of_the_wrong_size() {
    for (len, w, h) in [(3, 2, 2), (5, 2, 2), (0, 2, 2), (1, 0, 1)] {
        let e = squared_distance_transform(&vec![true; len], w, h).unwrap_err();
        assert!(
            matches!(e, MetricsError::LengthMismatch { expected, found, .. }
                if expected == w * h && found == len),
            "{len} for {w}x{h}: {e}"
        );
    }
    let e = squared_distance_transform(&[true; 4], 1 << 33, 1 << 31).unwrap_err();
    assert!(e.to_string().contains("overflows usize"), "{e}");
    assert_eq!(
        squared_distance_transform(&[], 0, 1 << 40).unwrap(),
        Vec::<f64>::new()
    );
    assert_eq!(
        squared_distance_transform(&[], 7, 0).unwrap(),
        Vec::<f64>::new()
    );
}

#[test]
fn temperature_recovers_a_known_scale() {
    // Labels drawn from softmax(z): calibrated at T = 1, so logits 2.5·z need T ≈ 2.5.
    let (c, n) = (3, 20_000);
    let mut rng = Rng(8);
    let mut z = vec![0f32; c * n];
    let mut labels = vec![0u8; n];
    for i in 0..n {
        let zs: Vec<f64> = (0..c).map(|_| 1.5 * rng.normal()).collect();
        let m = zs.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let e: Vec<f64> = zs.iter().map(|v| (v - m).exp()).collect();
        let s: f64 = e.iter().sum();
        let mut u = rng.uniform() * s;
        labels[i] = (c - 1) as u8;
        for (k, ek) in e.iter().enumerate() {
            if u < *ek {
                labels[i] = k as u8;
                break;
            }
            u -= ek;
        }
        for k in 0..c {
            z[k * n + i] = (2.5 * zs[k]) as f32;
        }
    }
    let fit = fit_temperature(
        &[LogitImage {
            logits: &z,
            labels: &labels,
        }],
        c,
        &TemperatureConfig::default(),
    )
    .unwrap();
    assert!(
        (fit.temperature - 2.5).abs() < 0.1,
        "T = {}",
        fit.temperature
    );
    assert!(fit.nll_after < fit.nll_before && fit.ece_after < fit.ece_before);
    assert!(matches!(
        fit_temperature(
            &[LogitImage {
                logits: &z[..5],
                labels: &labels
            }],
            c,
            &TemperatureConfig::default()
        ),
        Err(MetricsError::LengthMismatch { .. })
    ));
}

/// The fitted temperature is the same to the bit on any thread count and in every run: the
/// NLL's parallel `reduce` added its partial sums in whatever order work stealing gave, so
/// two `train` runs of one seed fitted temperatures that differed in the ninth digit (and
/// Newton took 5 steps in one, 9 in the other) and wrote different `config.json` files.
#[test]
fn temperature_fit_does_not_depend_on_the_thread_count_or_the_run() {
    let c = 3;
    let mut rng = Rng(21);
    // Images of unequal sizes, none a multiple of the kernel's run length.
    let images: Vec<(Vec<f32>, Vec<u8>)> = [30_011, 17_003, 4_099, 65_537]
        .iter()
        .map(|&n| {
            let labels: Vec<u8> = (0..n)
                .map(|_| {
                    if rng.uniform() < 0.05 {
                        255
                    } else {
                        rng.below(c) as u8
                    }
                })
                .collect();
            let logits: Vec<f32> = (0..c * n)
                .map(|j| {
                    let own = labels[j % n] as usize == j / n;
                    (3.0 * rng.normal() + if own { 2.0 } else { 0.0 }) as f32
                })
                .collect();
            (logits, labels)
        })
        .collect();
    let fit = || {
        let views: Vec<LogitImage<'_>> = images
            .iter()
            .map(|(logits, labels)| LogitImage { logits, labels })
            .collect();
        let f = fit_temperature(&views, c, &TemperatureConfig::default()).unwrap();
        (
            f.temperature.to_bits(),
            f.nll_before.to_bits(),
            f.nll_after.to_bits(),
            f.iterations,
        )
    };
    let first = fit();
    for threads in [1, 2, 3, 5, 8] {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        for run in 0..4 {
            assert_eq!(pool.install(fit), first, "{threads} threads, run {run}");
        }
    }
}

#[test]
fn report_json_has_the_contract_fields_and_markdown_renders() {
    let (labels, probs) = data(2000, 3, 9);
    let r = report(&labels, &probs, 3);
    let v: serde_json::Value = serde_json::from_str(&r.to_json().unwrap()).unwrap();
    for path in [
        "/accuracy",
        "/f1/weighted",
        "/f1/macro",
        "/f1/per_class",
        "/auc/weighted",
        "/auc/per_class",
        "/ece",
        "/mce",
        "/confidence",
        "/confusion_matrix",
        "/class_names",
    ] {
        assert!(
            v.pointer(path).is_some_and(|x| !x.is_null()),
            "missing {path}"
        );
    }
    assert_eq!(
        v.pointer("/confusion_matrix/0")
            .unwrap()
            .as_array()
            .unwrap()
            .len(),
        3
    );
    // serde_json's float parsing may differ in the last bit; structure and counts are exact.
    let back = Report::from_json(&r.to_json().unwrap()).unwrap();
    assert_eq!(back.confusion_matrix, r.confusion_matrix);
    assert_eq!(back.class_names, r.class_names);
    assert!((back.f1.weighted - r.f1.weighted).abs() < 1e-15);
    // NaN scores (ZeroDivision::Nan) survive the trip as null.
    let mut cfg = config(3);
    cfg.zero_division = ZeroDivision::Nan;
    let mut ev = Evaluator::new(cfg).unwrap();
    ev.add_image(
        &[0, 0, 1, 1],
        &[0.9, 0.8, 0.7, 0.6, 0.05, 0.1, 0.2, 0.3, 0.05, 0.1, 0.1, 0.1],
        4,
        1,
    )
    .unwrap();
    let nan = ev.finish().unwrap();
    assert!(nan.precision.per_class[2].is_nan());
    let back = Report::from_json(&nan.to_json().unwrap()).unwrap();
    assert!(back.precision.per_class[2].is_nan());
    let md = r.to_markdown();
    assert!(md.contains("| class 2 |") && md.contains("ECE") && md.contains("**weighted**"));
}

#[test]
fn plots_and_training_log() {
    let dir = std::env::temp_dir().join(format!("xray-metrics-plots-{}", std::process::id()));
    let (labels, probs) = data(3000, 3, 10);
    let r = report(&labels, &probs, 3);
    let files = save_plots(&r, &dir).unwrap();
    assert_eq!(files.len(), 6);
    for f in &files {
        assert!(
            std::fs::metadata(f).unwrap().len() > 1000,
            "{}",
            f.display()
        );
    }
    let svg = std::fs::read_to_string(dir.join("roc.svg")).unwrap();
    assert!(svg.contains("class 1 (AUC"));
    let svg = std::fs::read_to_string(dir.join("reliability.svg")).unwrap();
    assert!(svg.contains("ECE"));
    let log = TrainingLog::parse(
        "{\"epoch\":1,\"train_loss\":1.0,\"val_accuracy\":0.5}\n\n{\"epoch\":2,\"train_loss\":0.5,\"val_accuracy\":0.7,\"val_loss\":0.8}\n",
    )
    .unwrap();
    assert_eq!(log.rows, 2);
    assert!(log.columns["val_loss"][0].is_nan());
    plot_training_curves(&log, dir.join("training")).unwrap();
    assert!(matches!(
        TrainingLog::parse("{\"epoch\":1}\nnot json"),
        Err(MetricsError::Log {
            file: None,
            line: 2,
            ..
        })
    ));
    // Read from a file, the error names it: a run folder holds several logs (one per fold).
    let bad = dir.join("log.jsonl");
    std::fs::write(&bad, "{\"epoch\":1}\n{\"epoch\":2,\n").unwrap();
    let e = TrainingLog::load(&bad).unwrap_err();
    assert!(
        matches!(&e, MetricsError::Log { file: Some(f), line: 2, .. } if f == &bad),
        "{e:?}"
    );
    assert!(
        e.to_string()
            .starts_with(&format!("{}: training log line 2:", bad.display())),
        "{e}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn temperature_stays_in_its_range() {
    // Logits unrelated to the labels: the NLL keeps falling as T grows (towards uniform
    // probabilities), so the fit stops at the range's upper end.
    let (c, n) = (3, 5_000);
    let mut rng = Rng(21);
    let z: Vec<f32> = (0..c * n).map(|_| (3.0 * rng.normal()) as f32).collect();
    let labels: Vec<u8> = (0..n)
        .map(|_| (rng.uniform() * 3.0).min(2.0) as u8)
        .collect();
    let images = [LogitImage {
        logits: &z,
        labels: &labels,
    }];
    let bounded = fit_temperature(&images, c, &TemperatureConfig::default()).unwrap();
    assert_eq!(bounded.temperature, 20.0);
    assert!(bounded.nll_after < bounded.nll_before);
    let wide = TemperatureConfig {
        temperature_range: (0.05, 1e6),
        ..TemperatureConfig::default()
    };
    let unbounded = fit_temperature(&images, c, &wide).unwrap();
    assert!(
        unbounded.temperature > 20.0,
        "T = {}",
        unbounded.temperature
    );
    assert!(unbounded.nll_after <= bounded.nll_after);
    // A sharp, correct network wants T < 1; a floor above its optimum holds it there.
    let sharp: Vec<f32> = (0..c * n)
        .map(|j| {
            if j / n == usize::from(labels[j % n]) {
                0.5
            } else {
                0.0
            }
        })
        .collect();
    let floor = TemperatureConfig {
        temperature_range: (0.5, 20.0),
        ..TemperatureConfig::default()
    };
    let fit = fit_temperature(
        &[LogitImage {
            logits: &sharp,
            labels: &labels,
        }],
        c,
        &floor,
    )
    .unwrap();
    assert_eq!(fit.temperature, 0.5);
    for bad in [
        (0.0, 1.0),
        (2.0, 1.0),
        (0.1, f64::INFINITY),
        (f64::NAN, 1.0),
    ] {
        let cfg = TemperatureConfig {
            temperature_range: bad,
            ..TemperatureConfig::default()
        };
        assert!(
            fit_temperature(&images, c, &cfg).is_err(),
            "range {bad:?} accepted"
        );
    }
}
