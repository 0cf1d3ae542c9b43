//! Every `f32` parameter of the crate's serde configs refuses a non-finite value, naming the
//! parameter. In JSON, an `f32` field reads a number beyond its range (`1e308`) as infinity
//! while parsing, before any check: each check must refuse infinity, not only values out of
//! a range that infinity happens to fall outside of.

use serde_json::{json, Value};
use xray_postproc::{
    BaselineConfig, CollimatorConfig, OverlayConfig, Pipeline, PostprocError, ThresholdConfig,
};

/// The keys of a config serialised with its defaults whose values are floats: its `f32`
/// parameters (counts serialise as integers), so that a parameter added later is covered.
fn float_keys(config: impl serde::Serialize) -> Vec<String> {
    let v = serde_json::to_value(config).unwrap();
    v.as_object()
        .unwrap()
        .iter()
        .filter(|(_, x)| x.is_f64())
        .map(|(k, _)| k.clone())
        .collect()
}

/// `e` is the refusal of parameter `name` holding `±inf`, and says that it is not finite.
fn assert_refused(e: PostprocError, name: &str, json: &str) {
    let message = e.to_string();
    match &e {
        PostprocError::OutOfRange { name: n, value, .. } => {
            assert_eq!(n, name, "{json}: {message}");
            assert!(value.is_infinite(), "{json}: {message}");
        }
        other => panic!("{json}: expected OutOfRange for {name}, got {other:?}"),
    }
    assert!(
        message.contains(&format!("parameter {name} = "))
            && message.contains("inf is out of range"),
        "{json}: {message}"
    );
    assert!(message.contains("not a finite number"), "{json}: {message}");
    assert!(message.contains("1e308"), "{json}: {message}");
}

#[test]
fn every_f32_parameter_of_a_pipeline_config_refuses_1e308() {
    assert_eq!(float_keys(ThresholdConfig::default()), ["soft_threshold"]);
    let collimator = float_keys(CollimatorConfig::default());
    // Every f32 field of CollimatorConfig, `rotation_spread_deg` (an Option) included.
    assert_eq!(collimator.len(), 16, "{collimator:?}");
    let mut cases: Vec<(Value, String)> = vec![
        (
            json!({"thresholds": {"soft_threshold": 1e308}}),
            "thresholds.soft_threshold".into(),
        ),
        (
            json!({"thresholds": {"per_category": {"hand": 0.9, "chest": 1e308}}}),
            r#"thresholds.per_category["chest"]"#.into(),
        ),
        (
            json!({"thresholds": {"min_confidence": [0.5, -1e308, 0.5]}}),
            "thresholds.min_confidence[1]".into(),
        ),
    ];
    for key in &collimator {
        for v in [1e308, -1e308] {
            cases.push((json!({"collimator": {key: v}}), format!("collimator.{key}")));
        }
    }
    for (config, name) in cases {
        let json = config.to_string();
        let e = Pipeline::from_json(&json).unwrap_err();
        assert_refused(e, &name, &json);
    }
}

#[test]
fn baseline_and_overlay_parameters_refuse_1e308() {
    let baseline = float_keys(BaselineConfig::default());
    assert_eq!(baseline.len(), 3, "{baseline:?}");
    for key in baseline {
        let json = json!({ &key: 1e308 }).to_string();
        let cfg: BaselineConfig = serde_json::from_str(&json).unwrap();
        assert_refused(cfg.validate().unwrap_err(), &key, &json);
    }
    assert_eq!(float_keys(OverlayConfig::default()), ["alpha"]);
    let json = json!({"alpha": 1e308}).to_string();
    let cfg: OverlayConfig = serde_json::from_str(&json).unwrap();
    assert_refused(cfg.validate().unwrap_err(), "alpha", &json);
}

/// NaN cannot be written in JSON but can be set in code; it is refused by the same checks.
#[test]
fn nan_parameters_are_refused_too() {
    let cfg = ThresholdConfig {
        soft_threshold: f32::NAN,
        ..ThresholdConfig::default()
    };
    let e = cfg.validate(3).unwrap_err().to_string();
    assert!(e.contains("soft_threshold = NaN"), "{e}");
    assert!(e.contains("not a finite number"), "{e}");
    let cfg = CollimatorConfig {
        rotation_spread_deg: Some(f32::NAN),
        ..CollimatorConfig::default()
    };
    let e = cfg.validate().unwrap_err().to_string();
    assert!(e.contains("rotation_spread_deg = NaN"), "{e}");
    // A finite value out of range says nothing about finiteness.
    let e = Pipeline::from_json(r#"{"thresholds": {"soft_threshold": 1.5}}"#)
        .unwrap_err()
        .to_string();
    assert!(!e.contains("finite"), "{e}");
}
