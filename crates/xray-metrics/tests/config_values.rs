//! The float fields of the crate's serde configs ([`EvalConfig`], [`TemperatureConfig`]) refuse
//! NaN and infinity, naming the field, except `EvalConfig::sum_tolerance`, where infinity
//! turns the sum check off by design.
//!
//! Both configs hold `f64` fields, which JSON cannot set to infinity: serde_json refuses a
//! number beyond the `f64` range (`1e309`) while parsing, and reads `1e308` as the finite
//! number it is. NaN and the infinities reach these configs from code only, so that is how
//! they are tested here.

use serde_json::json;
use xray_metrics::{
    calibration_bins, calibration_error, calibration_error_torch_f32, classwise_reliability,
    fit_temperature, torch_bin_boundaries, AucMethod, BinnedAuc, CalibrationNorm, EvalConfig,
    Evaluator, LogitImage, ReliabilityBins, TemperatureConfig, MAX_BINS,
};

fn eval_config() -> EvalConfig {
    let mut cfg = EvalConfig::new(["a", "b"]);
    cfg.boundary = false;
    cfg
}

#[test]
fn json_cannot_carry_infinity_into_an_f64_field() {
    let mut v = serde_json::to_value(eval_config()).unwrap();
    v["pixel_spacing"] = json!(1e308);
    let cfg: EvalConfig = serde_json::from_value(v.clone()).unwrap();
    assert_eq!(cfg.pixel_spacing, 1e308);
    let text = v.to_string();
    let at = text.find("\"pixel_spacing\":").unwrap() + "\"pixel_spacing\":".len();
    let end = at + text[at..].find([',', '}']).unwrap();
    let text = format!("{}1e309{}", &text[..at], &text[end..]);
    let e = serde_json::from_str::<EvalConfig>(&text).unwrap_err();
    assert!(e.to_string().contains("number out of range"), "{e}");
    let e = serde_json::from_str::<TemperatureConfig>(
        r#"{"max_iter": 10, "tolerance": 1e309, "n_bins": 15}"#,
    )
    .unwrap_err();
    assert!(e.to_string().contains("number out of range"), "{e}");
}

#[test]
fn eval_config_refuses_non_finite_pixel_spacing_and_nan_sum_tolerance() {
    for v in [f64::INFINITY, f64::NEG_INFINITY, f64::NAN] {
        let cfg = EvalConfig {
            pixel_spacing: v,
            ..eval_config()
        };
        let e = Evaluator::new(cfg).unwrap_err().to_string();
        assert!(
            e.contains("pixel_spacing must be finite and > 0"),
            "{v}: {e}"
        );
    }
    for v in [f64::NAN, f64::NEG_INFINITY, -1e-3] {
        let cfg = EvalConfig {
            sum_tolerance: v,
            ..eval_config()
        };
        let e = Evaluator::new(cfg).unwrap_err().to_string();
        assert!(e.contains("sum_tolerance must be ≥ 0"), "{v}: {e}");
    }
}

/// An infinite `sum_tolerance` (or one beyond the `f32` range, where the check runs) turns
/// the sum check off and nothing else: every probability must still lie in `[0, 1]`.
#[test]
fn an_infinite_sum_tolerance_turns_the_sum_check_off() {
    let labels = [0u8, 1];
    let unnormalised = [0.9f32, 0.2, 0.9, 0.7]; // pixel sums 1.8 and 0.9
    let mut strict = Evaluator::new(eval_config()).unwrap();
    let e = strict
        .add_image(&labels, &unnormalised, 2, 1)
        .unwrap_err()
        .to_string();
    assert!(e.contains("sum to"), "{e}");
    for tolerance in [f64::INFINITY, 1e308] {
        let cfg = EvalConfig {
            sum_tolerance: tolerance,
            ..eval_config()
        };
        let mut ev = Evaluator::new(cfg).unwrap();
        ev.add_image(&labels, &unnormalised, 2, 1).unwrap();
        let e = ev
            .add_image(&labels, &[1.5f32, 0.0, 0.0, 1.0], 2, 1)
            .unwrap_err()
            .to_string();
        assert!(e.contains("not a number in [0, 1]"), "{tolerance}: {e}");
    }
}

#[test]
fn temperature_config_refuses_non_finite_fields_naming_them() {
    let (logits, labels) = ([2.0f32, 0.0, 0.0, 1.0], [0u8, 1]);
    let images = [LogitImage {
        logits: &logits,
        labels: &labels,
    }];
    let cases: Vec<(TemperatureConfig, &str)> = [f64::NAN, f64::INFINITY, f64::NEG_INFINITY]
        .into_iter()
        .flat_map(|v| {
            [
                (
                    TemperatureConfig {
                        tolerance: v,
                        ..TemperatureConfig::default()
                    },
                    "tolerance must be finite and ≥ 0",
                ),
                (
                    TemperatureConfig {
                        temperature_range: (0.05, v),
                        ..TemperatureConfig::default()
                    },
                    "temperature_range must satisfy 0 < low ≤ high < ∞",
                ),
                (
                    TemperatureConfig {
                        temperature_range: (v, 20.0),
                        ..TemperatureConfig::default()
                    },
                    "temperature_range must satisfy 0 < low ≤ high < ∞",
                ),
            ]
        })
        .collect();
    for (cfg, expected) in cases {
        let e = cfg.validate().unwrap_err().to_string();
        assert!(e.contains(expected), "{cfg:?}: {e}");
        let e = fit_temperature(&images, 2, &cfg).unwrap_err().to_string();
        assert!(e.contains(expected), "{cfg:?}: {e}");
    }
    let negative = TemperatureConfig {
        tolerance: -1e-10,
        ..TemperatureConfig::default()
    };
    assert!(negative.validate().is_err());
    let no_bins = TemperatureConfig {
        n_bins: 0,
        ..TemperatureConfig::default()
    };
    let e = fit_temperature(&images, 2, &no_bins)
        .unwrap_err()
        .to_string();
    assert!(e.contains("n_bins must be ≥ 1"), "{e}");
    assert!(fit_temperature(&images, 2, &TemperatureConfig::default()).is_ok());
}

/// Bin counts are capped at `MAX_BINS` wherever they are taken, refused before anything is
/// allocated: `n_bins: 1 << 33` aborted on a 34 GB allocation, and `usize::MAX` bins
/// overflowed `n_bins + 1` and `classes × bins`.
#[test]
fn bin_counts_above_max_bins_are_refused() {
    let too_many = [MAX_BINS + 1, 1 << 33, usize::MAX];
    for n in too_many {
        let cfg = EvalConfig {
            n_bins: n,
            ..eval_config()
        };
        let e = Evaluator::new(cfg).unwrap_err().to_string();
        assert!(e.contains("n_bins must be at most 1000000"), "{n}: {e}");
        let cfg = EvalConfig {
            auc: AucMethod::Binned { bins: n },
            ..eval_config()
        };
        let e = Evaluator::new(cfg).unwrap_err().to_string();
        assert!(e.contains("auc bins must be at most 1000000"), "{n}: {e}");
        let e = BinnedAuc::new(3, n).unwrap_err().to_string();
        assert!(e.contains("bins must be at most 1000000"), "{n}: {e}");
        let e = ReliabilityBins::new(n).unwrap_err().to_string();
        assert!(e.contains("n_bins must be at most 1000000"), "{n}: {e}");
        assert!(torch_bin_boundaries(n).is_err(), "{n}");
        let cfg = TemperatureConfig {
            n_bins: n,
            ..TemperatureConfig::default()
        };
        let e = cfg.validate().unwrap_err().to_string();
        assert!(e.contains("temperature n_bins must be at most"), "{n}: {e}");
        let (labels, probs) = ([0u8, 1], [0.75f32, 0.4, 0.25, 0.6]);
        assert!(calibration_bins(&labels, &probs, 2, n).is_err(), "{n}");
        for norm in [CalibrationNorm::L1, CalibrationNorm::Max] {
            assert!(calibration_error(&labels, &probs, 2, n, norm).is_err());
            assert!(calibration_error_torch_f32(&labels, &probs, 2, n, norm).is_err());
        }
        assert!(classwise_reliability(&labels, &probs, 2, n).is_err(), "{n}");
    }
    // The cap itself is accepted; 0 bins (1 for binned AUC) still is not.
    assert_eq!(ReliabilityBins::new(MAX_BINS).unwrap().total(), 0);
    assert_eq!(torch_bin_boundaries(MAX_BINS).unwrap().len(), MAX_BINS + 1);
    BinnedAuc::new(2, MAX_BINS).unwrap();
    let cfg = EvalConfig {
        n_bins: MAX_BINS,
        auc: AucMethod::Binned { bins: MAX_BINS },
        ..eval_config()
    };
    Evaluator::new(cfg).unwrap();
    assert!(ReliabilityBins::new(0).is_err());
    assert!(torch_bin_boundaries(0).is_err());
    assert!(BinnedAuc::new(2, 1).is_err());
    let cfg = EvalConfig {
        auc: AucMethod::Binned { bins: 1 },
        ..eval_config()
    };
    let e = Evaluator::new(cfg).unwrap_err().to_string();
    assert!(e.contains("at least 2 bins, got 1"), "{e}");
}

/// The report records the spacing its boundary distances were measured with and labels
/// them by it: pixels at 1 (the default), mm otherwise, the distances scaled by it (closed
/// form: a 2-pixel-wide strip predicted 2 pixels off has HD95 and Hausdorff 2 px). A
/// report written before the field existed reads as pixels. Before, the table said `px`
/// whatever the spacing.
#[test]
fn boundary_distances_carry_their_unit_into_the_report() {
    // 8 × 4: truth class 1 in columns 2..4, prediction in columns 4..6; class 0 elsewhere.
    let (w, h) = (8usize, 4usize);
    let labels: Vec<u8> = (0..w * h)
        .map(|i| u8::from((2..4).contains(&(i % w))))
        .collect();
    let probs: Vec<f32> = {
        let pred1: Vec<f32> = (0..w * h)
            .map(|i| if (4..6).contains(&(i % w)) { 0.9 } else { 0.1 })
            .collect();
        pred1
            .iter()
            .map(|p| 1.0 - p)
            .chain(pred1.iter().copied())
            .collect()
    };
    let report_at = |spacing: f64| {
        let cfg = EvalConfig {
            pixel_spacing: spacing,
            ..EvalConfig::new(["a", "b"])
        };
        let mut e = Evaluator::new(cfg).unwrap();
        e.add_image(&labels, &probs, w, h).unwrap();
        e.finish().unwrap()
    };
    let px = report_at(1.0);
    let mm = report_at(0.2);
    assert_eq!((px.pixel_spacing, mm.pixel_spacing), (1.0, 0.2));
    let (b_px, b_mm) = (
        &px.boundary.as_ref().unwrap()[1],
        &mm.boundary.as_ref().unwrap()[1],
    );
    assert_eq!(b_px.hausdorff, Some(2.0));
    let scaled = |v: Option<f64>| v.map(|v| v * 0.2);
    for (got, want) in [
        (b_mm.hd95, scaled(b_px.hd95)),
        (b_mm.assd, scaled(b_px.assd)),
        (b_mm.hausdorff, scaled(b_px.hausdorff)),
    ] {
        assert!(
            (got.unwrap() - want.unwrap()).abs() < 1e-12,
            "{got:?} {want:?}"
        );
    }
    assert!(px.to_markdown().contains("| HD95 px | ASSD px |"));
    assert!(mm.to_markdown().contains("| HD95 mm | ASSD mm |"));
    // A report without the field (written before it) reads as pixels.
    let mut old = serde_json::to_value(&mm).unwrap();
    old.as_object_mut().unwrap().remove("pixel_spacing");
    let back: xray_metrics::Report = serde_json::from_value(old).unwrap();
    assert_eq!(back.pixel_spacing, 1.0);
}
