//! The float fields of the crate's serde configs refuse NaN, infinities and, for the `f64`
//! hyper-parameters without an upper bound of their own, values beyond the `f32` range: a
//! `1e308` typed into a JSON config is a finite `f64`, but the networks compute in `f32`,
//! where candle rounds it to infinity. Each refusal names the field.
//!
//! The fields are found by serialising each config with its defaults and taking every
//! float value, so a field added later is covered too.

mod common;
use common::float_paths;

use serde_json::{json, Value};
use xnet_model::loss::{BoundaryWeightConfig, LossConfig, LossKind};
use xnet_model::optim::{LrSchedule, OptimizerConfig};
use xnet_model::train::TrainConfig;
use xnet_model::ModelError;

fn with(v: &Value, path: &str, x: f64) -> Value {
    let mut v = v.clone();
    let mut at = &mut v;
    for k in path.split('.') {
        at = &mut at[k];
    }
    *at = json!(x);
    v
}

fn invalid_config(r: xnet_model::Result<()>, what: &str) -> String {
    match r {
        Err(ModelError::InvalidConfig(m)) => m,
        other => panic!("{what}: expected InvalidConfig, got {other:?}"),
    }
}

/// Every float field of every optimiser set to ±1e308 (and 1e39, just beyond `f32::MAX`)
/// is refused, naming it.
#[test]
fn every_optimizer_hyper_parameter_refuses_values_beyond_f32() {
    for cfg in [
        OptimizerConfig::adam(1e-3),
        OptimizerConfig::adamw(1e-3),
        OptimizerConfig::rmsprop(1e-4),
        OptimizerConfig::sgd(0.1, 0.9),
    ] {
        let v = serde_json::to_value(&cfg).unwrap();
        let mut paths = Vec::new();
        float_paths(&v, "", &mut paths);
        assert!(paths.len() >= 4, "{v}");
        for path in &paths {
            for x in [1e308, -1e308, 1e39] {
                let edited = with(&v, path, x);
                let parsed: OptimizerConfig = serde_json::from_value(edited.clone()).unwrap();
                let m = invalid_config(parsed.validate(), &edited.to_string());
                assert!(
                    m.contains(&format!("optimizer {path} must be")),
                    "{edited}: {m}"
                );
                assert!(m.contains(&format!("got {x:e}")), "{edited}: {m}");
            }
        }
        cfg.validate().unwrap();
    }
    // The largest f32 is still a number.
    OptimizerConfig::adam(f64::from(f32::MAX))
        .validate()
        .unwrap();
}

#[test]
fn every_schedule_parameter_refuses_values_beyond_f32() {
    for (schedule, name) in [
        (
            LrSchedule::Step {
                step_size: 10,
                gamma: 0.5,
            },
            "step schedule",
        ),
        (
            LrSchedule::Cosine {
                t_max: 10,
                eta_min: 0.0,
            },
            "cosine schedule",
        ),
        (LrSchedule::reduce_on_plateau(), "reduce-on-plateau"),
    ] {
        let v = serde_json::to_value(&schedule).unwrap();
        let mut paths = Vec::new();
        float_paths(&v, "", &mut paths);
        assert!(!paths.is_empty(), "{v}");
        for path in &paths {
            let edited = with(&v, path, 1e308);
            let parsed: LrSchedule = serde_json::from_value(edited.clone()).unwrap();
            let m = invalid_config(parsed.validate(), &edited.to_string());
            assert!(
                m.contains(&format!("{name}: {path} must be")),
                "{edited}: {m}"
            );
            assert!(m.contains("1e308"), "{edited}: {m}");
        }
    }
}

/// The loss's `f64` coefficients are refused beyond the `f32` range; its `f32` fields (class
/// weights, boundary weights) read `1e308` as infinity, refused too.
#[test]
fn every_loss_coefficient_refuses_1e308() {
    let kinds = [
        LossKind::CrossEntropy,
        LossKind::Focal { gamma: 2.0 },
        LossKind::Dice { smooth: 1.0 },
        LossKind::CrossEntropyDice {
            dice_weight: 0.5,
            smooth: 1.0,
        },
    ];
    for kind in kinds {
        let cfg = LossConfig {
            kind,
            pixel: xnet_model::loss::PixelLossOptions {
                class_weights: Some(vec![1.0, 2.0, 3.0]),
                ..Default::default()
            },
            boundary: Some(BoundaryWeightConfig::default()),
            ..LossConfig::default()
        };
        cfg.validate(3).unwrap();
        let v = serde_json::to_value(&cfg).unwrap();
        let mut paths = Vec::new();
        float_paths(&v, "", &mut paths);
        assert!(paths.contains(&"l2".to_string()), "{v}");
        assert!(paths.contains(&"boundary.w0".to_string()), "{v}");
        for path in &paths {
            let edited = with(&v, path, 1e308);
            let parsed: LossConfig = serde_json::from_value(edited.clone()).unwrap();
            let m = invalid_config(parsed.validate(3), &edited.to_string());
            let field = path.rsplit('.').next().unwrap();
            assert!(m.contains(field), "{edited}: {m}");
            assert!(
                m.contains("1e308") || m.contains("got inf"),
                "{edited}: {m}"
            );
        }
        let mut weights = v.clone();
        weights["pixel"]["class_weights"][1] = json!(1e308);
        let parsed: LossConfig = serde_json::from_value(weights).unwrap();
        let m = invalid_config(parsed.validate(3), "class_weights");
        assert!(m.contains("class weight 1 must be finite"), "{m}");
    }
}

/// `TrainConfig` nests the three above; its own `grad_clip_norm` and `min_delta` are
/// compared in `f64` and only need to be finite (JSON cannot give an `f64` infinity).
#[test]
fn train_config_refuses_what_its_parts_refuse() {
    let v = serde_json::to_value(TrainConfig::default()).unwrap();
    let mut paths = Vec::new();
    float_paths(&v, "", &mut paths);
    for path in &paths {
        let edited = with(&v, path, 1e308);
        let parsed: TrainConfig = serde_json::from_value(edited.clone()).unwrap();
        let r = parsed.validate(3);
        if path == "min_delta" {
            r.unwrap();
        } else {
            let m = invalid_config(r, &edited.to_string());
            assert!(m.contains("1e308"), "{edited}: {m}");
        }
    }
    for bad in [f64::NAN, f64::INFINITY] {
        for cfg in [
            TrainConfig {
                grad_clip_norm: Some(bad),
                ..TrainConfig::default()
            },
            TrainConfig {
                min_delta: bad,
                ..TrainConfig::default()
            },
        ] {
            assert!(cfg.validate(3).is_err(), "{cfg:?}");
        }
    }
    // A finite clipping norm however large only never clips.
    TrainConfig {
        grad_clip_norm: Some(1e308),
        ..TrainConfig::default()
    }
    .validate(3)
    .unwrap();
}
