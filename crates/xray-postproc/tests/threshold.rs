//! Thresholds, the sweep, multi-level Otsu (golden values from scikit-image) and bad input.

use xray_postproc::{
    apply_thresholds, argmax, multi_otsu, threshold_sweep, PostprocError, ProbMap, ThresholdConfig,
    IGNORE_LABEL,
};

/// (histogram, number of thresholds, scikit-image's threshold bin indices), from
/// `tests/golden/multi_otsu.py`.
#[rustfmt::skip]
const OTSU_GOLDEN: &[(&[u64], usize, &[usize])] = &[
    (&[2, 6, 41, 145, 411, 642, 754, 541, 322, 142, 120, 170, 304, 500, 643, 745, 792, 667, 479, 306, 156, 85, 70, 174, 389, 641, 477, 200, 65, 9, 2, 0], 1, &[13]),
    (&[2, 6, 41, 145, 411, 642, 754, 541, 322, 142, 120, 170, 304, 500, 643, 745, 792, 667, 479, 306, 156, 85, 70, 174, 389, 641, 477, 200, 65, 9, 2, 0], 2, &[10, 20]),
    (&[0, 0, 1, 9, 8, 31, 64, 99, 155, 198, 291, 352, 363, 368, 309, 258, 209, 133, 95, 70, 45, 59, 70, 89, 123, 161, 222, 252, 327, 362, 386, 429, 387, 361, 340, 295, 263, 221, 180, 133, 104, 62, 48, 28, 39, 39, 75, 144, 227, 331, 373, 379, 340, 269, 171, 97, 31, 14, 8, 3, 0, 0, 0, 0], 1, &[28]),
    (&[0, 0, 1, 9, 8, 31, 64, 99, 155, 198, 291, 352, 363, 368, 309, 258, 209, 133, 95, 70, 45, 59, 70, 89, 123, 161, 222, 252, 327, 362, 386, 429, 387, 361, 340, 295, 263, 221, 180, 133, 104, 62, 48, 28, 39, 39, 75, 144, 227, 331, 373, 379, 340, 269, 171, 97, 31, 14, 8, 3, 0, 0, 0, 0], 2, &[22, 40]),
    (&[0, 0, 0, 0, 3, 1, 3, 8, 3, 8, 13, 18, 23, 33, 46, 45, 62, 79, 99, 124, 130, 165, 160, 174, 184, 216, 186, 191, 156, 146, 140, 118, 112, 92, 85, 44, 54, 41, 32, 22, 22, 23, 33, 27, 33, 30, 50, 56, 66, 64, 70, 99, 108, 110, 105, 142, 163, 175, 160, 201, 158, 169, 205, 203, 208, 196, 176, 195, 159, 169, 153, 151, 118, 137, 125, 114, 114, 70, 69, 49, 59, 48, 40, 32, 39, 17, 21, 19, 14, 23, 19, 31, 43, 63, 69, 86, 134, 126, 207, 196, 219, 242, 244, 183, 231, 192, 164, 143, 109, 80, 78, 44, 33, 23, 12, 12, 7, 4, 2, 1, 0, 0, 0, 0, 0, 0, 0, 0], 1, &[62]),
    (&[0, 0, 0, 0, 3, 1, 3, 8, 3, 8, 13, 18, 23, 33, 46, 45, 62, 79, 99, 124, 130, 165, 160, 174, 184, 216, 186, 191, 156, 146, 140, 118, 112, 92, 85, 44, 54, 41, 32, 22, 22, 23, 33, 27, 33, 30, 50, 56, 66, 64, 70, 99, 108, 110, 105, 142, 163, 175, 160, 201, 158, 169, 205, 203, 208, 196, 176, 195, 159, 169, 153, 151, 118, 137, 125, 114, 114, 70, 69, 49, 59, 48, 40, 32, 39, 17, 21, 19, 14, 23, 19, 31, 43, 63, 69, 86, 134, 126, 207, 196, 219, 242, 244, 183, 231, 192, 164, 143, 109, 80, 78, 44, 33, 23, 12, 12, 7, 4, 2, 1, 0, 0, 0, 0, 0, 0, 0, 0], 2, &[44, 82]),
    (&[1, 0, 0, 0, 0, 0, 0, 1, 0, 0, 2, 0, 1, 1, 0, 5, 1, 5, 3, 4, 5, 1, 2, 9, 6, 17, 17, 20, 21, 22, 21, 31, 33, 42, 44, 55, 48, 52, 70, 76, 69, 64, 67, 68, 95, 74, 75, 89, 96, 98, 83, 105, 91, 85, 85, 108, 86, 80, 78, 76, 62, 73, 52, 60, 64, 43, 39, 49, 37, 32, 38, 32, 31, 21, 21, 19, 12, 16, 16, 19, 12, 12, 8, 13, 15, 12, 28, 21, 16, 17, 15, 22, 28, 25, 18, 31, 26, 25, 36, 44, 34, 39, 46, 48, 57, 54, 64, 67, 51, 63, 59, 70, 63, 69, 76, 77, 81, 94, 100, 102, 85, 97, 94, 92, 94, 99, 90, 103, 104, 98, 105, 76, 91, 86, 104, 93, 87, 87, 96, 82, 80, 77, 86, 68, 64, 67, 48, 65, 54, 64, 67, 41, 51, 36, 43, 33, 29, 38, 43, 36, 44, 24, 21, 18, 28, 17, 11, 15, 13, 13, 7, 9, 13, 7, 10, 10, 9, 6, 13, 10, 14, 15, 20, 14, 20, 11, 34, 45, 41, 50, 51, 63, 57, 79, 74, 86, 90, 113, 128, 125, 110, 140, 93, 152, 135, 153, 134, 126, 128, 127, 125, 101, 104, 92, 80, 73, 75, 65, 48, 55, 48, 37, 37, 19, 23, 13, 14, 11, 8, 9, 8, 3, 2, 1, 1, 3, 2, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], 1, &[133]),
    (&[1, 0, 0, 0, 0, 0, 0, 1, 0, 0, 2, 0, 1, 1, 0, 5, 1, 5, 3, 4, 5, 1, 2, 9, 6, 17, 17, 20, 21, 22, 21, 31, 33, 42, 44, 55, 48, 52, 70, 76, 69, 64, 67, 68, 95, 74, 75, 89, 96, 98, 83, 105, 91, 85, 85, 108, 86, 80, 78, 76, 62, 73, 52, 60, 64, 43, 39, 49, 37, 32, 38, 32, 31, 21, 21, 19, 12, 16, 16, 19, 12, 12, 8, 13, 15, 12, 28, 21, 16, 17, 15, 22, 28, 25, 18, 31, 26, 25, 36, 44, 34, 39, 46, 48, 57, 54, 64, 67, 51, 63, 59, 70, 63, 69, 76, 77, 81, 94, 100, 102, 85, 97, 94, 92, 94, 99, 90, 103, 104, 98, 105, 76, 91, 86, 104, 93, 87, 87, 96, 82, 80, 77, 86, 68, 64, 67, 48, 65, 54, 64, 67, 41, 51, 36, 43, 33, 29, 38, 43, 36, 44, 24, 21, 18, 28, 17, 11, 15, 13, 13, 7, 9, 13, 7, 10, 10, 9, 6, 13, 10, 14, 15, 20, 14, 20, 11, 34, 45, 41, 50, 51, 63, 57, 79, 74, 86, 90, 113, 128, 125, 110, 140, 93, 152, 135, 153, 134, 126, 128, 127, 125, 101, 104, 92, 80, 73, 75, 65, 48, 55, 48, 37, 37, 19, 23, 13, 14, 11, 8, 9, 8, 3, 2, 1, 1, 3, 2, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], 2, &[89, 165]),
];

#[test]
fn multi_otsu_matches_scikit_image() {
    for (i, (hist, n, want)) in OTSU_GOLDEN.iter().enumerate() {
        let got = multi_otsu(hist, *n).unwrap();
        assert_eq!(&got[..], *want, "case {i}");
    }
}

fn probs_3x(pixels: &[[f32; 3]]) -> Vec<f32> {
    let n = pixels.len();
    let mut v = vec![0.0; 3 * n];
    for (i, p) in pixels.iter().enumerate() {
        for c in 0..3 {
            v[c * n + i] = p[c];
        }
    }
    v
}

#[test]
fn soft_tissue_threshold_rule() {
    let px = [
        [0.3, 0.45, 0.25],
        [0.1, 0.6, 0.3],
        [0.05, 0.92, 0.03],
        [0.2, 0.3, 0.5],
        [0.34, 0.33, 0.33],
    ];
    let v = probs_3x(&px);
    let m = ProbMap::new(&v, 3, 1, 5).unwrap();
    let plain = argmax(&m);
    assert_eq!(plain.as_raw(), &vec![1, 1, 1, 2, 0]);
    let mut cfg = ThresholdConfig {
        soft_threshold: 0.5,
        ..Default::default()
    };
    assert_eq!(
        apply_thresholds(&m, &cfg, None).unwrap().as_raw(),
        &vec![0, 1, 1, 2, 0]
    );
    cfg.soft_threshold = 0.9;
    assert_eq!(
        apply_thresholds(&m, &cfg, None).unwrap().as_raw(),
        &vec![0, 2, 1, 2, 0]
    );
    // Per category: "hand" is stricter, unknown categories fall back to the default.
    cfg.soft_threshold = 0.5;
    cfg.per_category.insert("hand".into(), 0.95);
    assert_eq!(
        apply_thresholds(&m, &cfg, Some("hand")).unwrap().as_raw(),
        &vec![0, 2, 0, 2, 0]
    );
    assert_eq!(
        apply_thresholds(&m, &cfg, Some("chest")).unwrap().as_raw(),
        &vec![0, 1, 1, 2, 0]
    );
    // Uncertain pixels.
    cfg.min_confidence = vec![0.4, 0.5, 0.45];
    assert_eq!(
        apply_thresholds(&m, &cfg, None).unwrap().as_raw(),
        &vec![IGNORE_LABEL, 1, 1, 2, IGNORE_LABEL]
    );
}

#[test]
fn sweep_counts_match_direct_thresholding() {
    // Brute force: for each t, label with apply_thresholds and count against the truth.
    let n = 200;
    let mut v = vec![0.0f32; 3 * n];
    let mut truth = vec![0u8; n];
    let mut s = 12345u32;
    let mut next = || {
        s = s.wrapping_mul(1664525).wrapping_add(1013904223);
        (s >> 8) as f32 / (1u32 << 24) as f32
    };
    for i in 0..n {
        let (a, b, c) = (next(), next(), next());
        let z = a + b + c;
        v[i] = a / z;
        v[n + i] = b / z;
        v[2 * n + i] = c / z;
        truth[i] = if next() < 0.1 {
            IGNORE_LABEL
        } else {
            (next() * 3.0) as u8 % 3
        };
    }
    let m = ProbMap::new(&v, 3, 10, 20).unwrap();
    let ts = [0.0, 0.3, 0.4, 0.5, 0.6, 0.8, 1.0];
    let sweep = threshold_sweep(&m, &truth, 1, &ts).unwrap();
    for (p, &t) in sweep.iter().zip(&ts) {
        let cfg = ThresholdConfig {
            soft_threshold: t,
            ..Default::default()
        };
        let l = apply_thresholds(&m, &cfg, None).unwrap();
        let (mut tp, mut fp, mut fneg, mut tn) = (0, 0, 0, 0);
        for (&g, &x) in truth.iter().zip(l.iter()) {
            if g == IGNORE_LABEL {
                continue;
            }
            match (g == 1, x == 1) {
                (true, true) => tp += 1,
                (false, true) => fp += 1,
                (true, false) => fneg += 1,
                (false, false) => tn += 1,
            }
        }
        assert_eq!(
            (
                p.true_positives,
                p.false_positives,
                p.false_negatives,
                p.true_negatives
            ),
            (tp, fp, fneg, tn),
            "t = {t}"
        );
        assert!((p.false_positive_rate - fp as f64 / (fp + tn) as f64).abs() < 1e-12);
        assert!((p.recall - tp as f64 / (tp + fneg) as f64).abs() < 1e-12);
    }
    // Raising t never raises the false-positive rate or the recall.
    for w in sweep.windows(2) {
        assert!(w[1].false_positive_rate <= w[0].false_positive_rate && w[1].recall <= w[0].recall);
    }
}

/// A map of more than 255 classes is refused when it is built, so `argmax` cannot give class
/// 255 as `IGNORE_LABEL` or class 256 as 0 (`lab as u8`); `apply_thresholds` refused it already.
#[test]
fn maps_of_more_than_255_classes_are_refused() {
    for classes in [256usize, 257, 1000] {
        // One pixel, most likely its last class.
        let mut p = vec![0.0f32; classes];
        p[classes - 1] = 1.0;
        let e = ProbMap::new(&p, classes, 1, 1).unwrap_err();
        assert!(
            matches!(e, PostprocError::ClassOutOfRange { class, classes: 255, .. } if class == classes),
            "{e}"
        );
        assert!(e.to_string().contains("at most 255 classes"), "{e}");
    }
    // 255 classes: the last one, 254, is a label like any other.
    let mut p = vec![0.0f32; 2 * 255];
    p[2 * 254] = 1.0; // pixel 0: class 254
    p[1] = 1.0; // pixel 1: class 0
    let map = ProbMap::new(&p, 255, 1, 2).unwrap();
    assert_eq!(argmax(&map).as_raw(), &vec![254, 0]);
    let cfg = ThresholdConfig {
        soft_class: 0,
        ..Default::default()
    };
    assert_eq!(
        apply_thresholds(&map, &cfg, None).unwrap().as_raw(),
        &vec![254, 0]
    );
    assert!(cfg.validate(256).is_err());
}

#[test]
fn bad_input_gives_clear_errors() {
    let v = vec![0.5f32; 12];
    assert!(matches!(
        ProbMap::new(&v, 3, 2, 3),
        Err(PostprocError::ShapeMismatch { .. })
    ));
    assert!(matches!(
        ProbMap::new(&v, 3, 0, 4),
        Err(PostprocError::Empty { .. })
    ));
    let mut bad = v.clone();
    bad[7] = f32::NAN;
    let e = ProbMap::new(&bad, 3, 2, 2).unwrap_err();
    assert!(
        matches!(
            e,
            PostprocError::NonFinite {
                class: 1,
                x: 1,
                y: 1,
                ..
            }
        ),
        "{e}"
    );
    assert!(e.to_string().contains("x=1, y=1"), "{e}");
    bad[7] = 1.7;
    assert!(matches!(
        ProbMap::new(&bad, 3, 2, 2),
        Err(PostprocError::NotAProbability { .. })
    ));
    let m = ProbMap::new(&v, 3, 2, 2).unwrap();
    for cfg in [
        ThresholdConfig {
            soft_threshold: 1.5,
            ..Default::default()
        },
        ThresholdConfig {
            soft_threshold: -0.1,
            ..Default::default()
        },
        ThresholdConfig {
            soft_threshold: f32::NAN,
            ..Default::default()
        },
        ThresholdConfig {
            min_confidence: vec![0.5, 2.0, 0.5],
            ..Default::default()
        },
    ] {
        let e = apply_thresholds(&m, &cfg, None).unwrap_err();
        assert!(matches!(e, PostprocError::OutOfRange { .. }), "{e}");
    }
    let e = apply_thresholds(
        &m,
        &ThresholdConfig {
            min_confidence: vec![0.5],
            ..Default::default()
        },
        None,
    )
    .unwrap_err();
    assert!(matches!(e, PostprocError::ShapeMismatch { .. }), "{e}");
    let e = apply_thresholds(
        &m,
        &ThresholdConfig {
            soft_class: 3,
            ..Default::default()
        },
        None,
    )
    .unwrap_err();
    assert!(matches!(e, PostprocError::ClassOutOfRange { .. }), "{e}");
    assert!(threshold_sweep(&m, &[0, 1, 2], 1, &[0.5]).is_err());
    assert!(threshold_sweep(&m, &[0, 1, 2, 1], 1, &[1.2]).is_err());
    assert!(multi_otsu(&[1, 2], 2).is_err());
}

/// DICOM writes body parts in capitals (`CHEST`) and the category is lower case (`chest`):
/// a key in either case serves it (an upper-case key used to change nothing, silently);
/// two keys for one category are refused.
#[test]
fn per_category_keys_match_whatever_their_case() {
    let probs = [0.1f32, 0.2, 0.6, 0.3, 0.3, 0.5];
    let m = ProbMap::new(&probs, 3, 2, 1).unwrap();
    let mut cfg = ThresholdConfig::default();
    cfg.per_category.insert(" CHEST".into(), 0.9);
    assert_eq!(cfg.threshold_for(Some("chest")), 0.9);
    assert_eq!(cfg.category_key(Some("Chest ")), Some(" CHEST"));
    assert_eq!(cfg.category_key(Some("hand")), None);
    assert_eq!(
        apply_thresholds(&m, &cfg, Some("chest")).unwrap().as_raw(),
        apply_thresholds(&m, &cfg, Some("CHEST")).unwrap().as_raw()
    );
    cfg.per_category.insert("chest".into(), 0.8);
    // An exact key wins the lookup, but the pair is refused as ambiguous.
    assert_eq!(cfg.threshold_for(Some("chest")), 0.8);
    let e = cfg.validate(3).unwrap_err().to_string();
    assert!(e.contains("name the same category"), "{e}");
    let e = xray_postproc::Pipeline::from_json(
        r#"{"thresholds": {"per_category": {"hip": 0.9, "HIP": 0.95}}}"#,
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains(r#""HIP" and "hip""#), "{e}");
}

/// A truth label that is no class of the map (nor 255) was counted as a true negative of
/// soft tissue, and the sweep returned rates over pixels that cannot be scored; now it is
/// refused at its pixel, as xray-metrics refuses such a label.
#[test]
fn sweep_refuses_truth_labels_that_are_no_class() {
    // 3 classes, 2 x 2 pixels, all soft tissue at 0.6.
    let p = probs_3x(&[[0.2, 0.6, 0.2]; 4]);
    let m = ProbMap::new(&p, 3, 2, 2).unwrap();
    let e = match threshold_sweep(&m, &[1, 0, 255, 3], 1, &[0.5]) {
        Ok(s) => panic!("label 3 of a 3-class map was swept: {s:?}"),
        Err(e) => e,
    };
    let msg = e.to_string();
    assert!(msg.contains("label 3 at pixel (x=1, y=1)"), "{msg}");
    assert!(msg.contains("are only 3 classes"), "{msg}");
    // The same map with the label ignored sweeps as before.
    let s = threshold_sweep(&m, &[1, 0, 255, 255], 1, &[0.5]).unwrap();
    assert_eq!((s[0].true_positives, s[0].false_positives), (1, 1));
}
