//! Non-finite numbers in deserialised configurations. serde reads an `f32` written as `1e308`
//! (or `-1e39`) as ±infinity, and TOML spells `inf` outright; every float setting of the
//! augmentation and phantom configs must then be refused, naming the setting, when the
//! pipeline is built or the phantom config validated, not run with infinite parameters.
//!
//! The table-driven tests walk the serialised configs and overwrite every float leaf in
//! turn (`f32` fields serialise as JSON floats, integer fields as integers), so a float
//! field added later is covered without touching this file.

use rand::rngs::StdRng;
use rand::SeedableRng;
use serde_json::Value;
use xray_data::augment::*;
use xray_data::synth::{generate, BodyPart, CollimationConfig, PhantomConfig};

/// The values substituted: both overflow `f32` (to `+inf` and `-inf`).
const HUGE: [f64; 2] = [1e308, -1e39];

/// Every float leaf of `v` as (JSON pointer, name of the nearest enclosing key).
fn float_leaves(v: &Value) -> Vec<(String, String)> {
    fn walk(v: &Value, pointer: String, key: &str, out: &mut Vec<(String, String)>) {
        match v {
            Value::Object(map) => {
                for (k, child) in map {
                    walk(child, format!("{pointer}/{k}"), k, out);
                }
            }
            Value::Array(items) => {
                for (i, child) in items.iter().enumerate() {
                    walk(child, format!("{pointer}/{i}"), key, out);
                }
            }
            Value::Number(n) if n.is_f64() => out.push((pointer, key.to_string())),
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(v, String::new(), "", &mut out);
    out
}

/// `v` with the leaf at `pointer` replaced by `x`, as JSON text.
fn with_leaf(v: &Value, pointer: &str, x: f64) -> String {
    let mut v = v.clone();
    let leaf = v.pointer_mut(pointer).expect("pointer from float_leaves");
    *leaf = Value::from(x);
    serde_json::to_string(&v).expect("a JSON value serialises")
}

/// One step of every transform type, every float setting present (constant borders carry
/// a float `value`), plus a `one_of` holding a transform.
fn every_transform() -> PipelineConfig {
    let constant = Border::Constant {
        value: 0.5,
        mask_value: 255,
    };
    let specs = vec![
        TransformSpec::HorizontalFlip,
        TransformSpec::Affine(Affine {
            border: constant,
            ..Affine::default()
        }),
        TransformSpec::RandomCrop(RandomCrop::default()),
        TransformSpec::Elastic(Elastic {
            border: constant,
            ..Elastic::default()
        }),
        TransformSpec::GaussianBlur(GaussianBlur::default()),
        TransformSpec::GaussianNoise(GaussianNoise::default()),
        TransformSpec::PoissonNoise(PoissonNoise::default()),
        TransformSpec::Gamma(Gamma::default()),
        TransformSpec::BrightnessContrast(BrightnessContrast::default()),
        TransformSpec::Collimator(CollimatorSim::default()),
        TransformSpec::OneOf {
            choices: vec![
                TransformSpec::VerticalFlip,
                TransformSpec::Gamma(Gamma::default()),
            ],
        },
    ];
    PipelineConfig {
        steps: specs
            .into_iter()
            .map(|transform| StepConfig { p: 0.5, transform })
            .collect(),
    }
}

/// What the error must contain to name the setting called `key` in JSON.
fn expected_name(key: &str) -> &str {
    match key {
        "p" => "step probability",
        k => k,
    }
}

#[test]
fn every_float_of_every_transform_refuses_infinity_when_the_pipeline_is_built() {
    let base = serde_json::to_value(every_transform()).unwrap();
    Pipeline::from_config(&PipelineConfig::from_json(&base.to_string()).unwrap()).unwrap();
    let leaves = float_leaves(&base);
    // Guard the walk itself: the fields this test exists for are among the leaves.
    for must in [
        "p",
        "rotate_deg",
        "keep",
        "alpha",
        "sigma",
        "value",
        "std",
        "photons",
    ] {
        assert!(leaves.iter().any(|(_, k)| k == must), "{must} not walked");
    }
    for must in ["gamma", "brightness", "contrast", "penumbra_px", "leakage"] {
        assert!(leaves.iter().any(|(_, k)| k == must), "{must} not walked");
    }
    assert!(leaves.len() > 40, "{} leaves", leaves.len());
    for (pointer, key) in &leaves {
        let step: usize = pointer
            .split('/')
            .nth(2)
            .and_then(|s| s.parse().ok())
            .expect("/steps/<i>/...");
        for x in HUGE {
            let text = with_leaf(&base, pointer, x);
            let cfg = PipelineConfig::from_json(&text).unwrap();
            let err = Pipeline::from_config(&cfg)
                .expect_err(&format!("{pointer} = {x:e} accepted"))
                .to_string();
            let name = expected_name(key);
            assert!(
                err.contains(&format!("step {step}: "))
                    && err.contains(name)
                    && err.contains("inf"),
                "{pointer} = {x:e}: {err}"
            );
            // TOML spells the same value `inf`; it is refused alike.
            let toml_text = toml::to_string(&cfg).unwrap();
            assert!(toml_text.contains("inf"), "{toml_text}");
            let err_toml = Pipeline::from_config(&PipelineConfig::from_toml(&toml_text).unwrap())
                .unwrap_err()
                .to_string();
            assert_eq!(err_toml, err);
        }
    }
}

#[test]
fn collimator_penumbra_of_1e308_is_refused_by_name() {
    let json =
        r#"{"steps": [{"type": "collimator", "collimation": {"penumbra_px": [0.8, 1e308]}}]}"#;
    let cfg = PipelineConfig::from_json(json).unwrap();
    match &cfg.steps[0].transform {
        TransformSpec::Collimator(c) => assert_eq!(c.collimation.penumbra_px[1], f32::INFINITY),
        other => panic!("{other:?}"),
    }
    let err = Pipeline::from_config(&cfg).unwrap_err().to_string();
    assert_eq!(
        err,
        "invalid parameter: step 0: collimation: penumbra_px = [0.8, inf] \
         must be finite"
    );
    // The config validated directly refuses it too.
    let collimation = CollimationConfig {
        penumbra_px: [0.8, f32::INFINITY],
        ..CollimationConfig::default()
    };
    assert!(collimation
        .validate()
        .unwrap_err()
        .to_string()
        .contains("penumbra_px = [0.8, inf] must be finite"));
}

#[test]
fn an_infinite_border_value_and_intensity_setting_are_refused_from_a_file() {
    let dir = std::env::temp_dir().join(format!("xray-config-finite-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cases = [
        (
            "affine.json",
            r#"{"steps": [{"type": "affine", "border": {"mode": "constant", "value": -1e39}}]}"#,
            "step 0: affine border value = -inf must be finite",
        ),
        (
            "elastic.toml",
            "[[steps]]\ntype = \"elastic\"\nborder = { mode = \"constant\", value = inf }\n",
            "step 0: elastic border value = inf must be finite",
        ),
        (
            "noise.json",
            r#"{"steps": [{"type": "gaussian_noise", "std": [1e308, 1e308]}]}"#,
            "step 0: gaussian noise std range [inf, inf] must be finite",
        ),
        (
            "gamma.json",
            r#"{"steps": [{"type": "horizontal_flip"}, {"type": "gamma", "p": 0.1, "gamma": [0.8, 1e308]}]}"#,
            "step 1: gamma range [0.8, inf] must be finite",
        ),
    ];
    for (name, text, expected) in cases {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        let err = PipelineConfig::from_file(&path)
            .and_then(|cfg| Pipeline::from_config(&cfg))
            .unwrap_err()
            .to_string();
        assert!(err.contains(expected), "{name}: {err}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn every_float_of_the_phantom_config_refuses_infinity() {
    let base = serde_json::to_value(PhantomConfig::with_size(32)).unwrap();
    let ok: PhantomConfig = serde_json::from_value(base.clone()).unwrap();
    ok.validate().unwrap();
    let leaves = float_leaves(&base);
    for must in [
        "collimation_probability",
        "marker_probability",
        "mu_tissue",
        "presentation_probability",
        "unsharp_gain",
        "penumbra_px",
        "side_probability",
        "hand",
    ] {
        assert!(leaves.iter().any(|(_, k)| k == must), "{must} not walked");
    }
    phantom_refuses_each(&base, &leaves, HUGE, "inf");
}

/// Each of `leaves` of the phantom config `base` set to each of `values` in turn: `validate`
/// refuses it with a message naming the field (and holding `also`), and `generate` refuses
/// it with the same message.
fn phantom_refuses_each(base: &Value, leaves: &[(String, String)], values: [f64; 2], also: &str) {
    let mut rng = StdRng::seed_from_u64(0);
    for (pointer, key) in leaves {
        for x in values {
            let text = with_leaf(base, pointer, x);
            let cfg: PhantomConfig = serde_json::from_str(&text).unwrap();
            let err = cfg
                .validate()
                .expect_err(&format!("{pointer} = {x:e} accepted"))
                .to_string();
            assert!(
                err.contains(key.as_str()) && err.contains(also),
                "{pointer} = {x:e}: {err}"
            );
            let err_gen = generate(&cfg, BodyPart::Hand, &mut rng)
                .unwrap_err()
                .to_string();
            assert_eq!(err_gen, err);
        }
    }
}

#[test]
fn phantom_penumbra_of_1e308_is_refused_by_name() {
    let cfg: PhantomConfig =
        serde_json::from_str(r#"{"collimation": {"penumbra_px": [1.0, 1e308]}}"#).unwrap();
    assert_eq!(cfg.collimation.penumbra_px, [1.0, f32::INFINITY]);
    assert_eq!(
        cfg.validate().unwrap_err().to_string(),
        "invalid parameter: collimation: penumbra_px = [1, inf] must be finite"
    );
    let cfg: PhantomConfig =
        serde_json::from_str(r#"{"collimation": {"penumbra_px": [1e308, 1e308]}}"#).unwrap();
    assert!(cfg
        .validate()
        .unwrap_err()
        .to_string()
        .contains("penumbra_px = [inf, inf] must be finite"));
}

#[test]
fn a_constant_border_may_write_only_a_class_or_the_ignore_label_into_masks() {
    let config =
        |step: &str| PipelineConfig::from_json(&format!(r#"{{"steps": [{step}]}}"#)).unwrap();
    let affine = |mask: u8| {
        format!(
            r#"{{"type": "affine", "border": {{"mode": "constant", "value": 0, "mask_value": {mask}}}}}"#
        )
    };
    // Classes 0..=2 and the ignore label pass; reflect borders write nothing.
    for ok in [0u8, 2, 255] {
        config(&affine(ok)).check_mask_labels(3).unwrap();
    }
    config(r#"{"type": "affine"}"#)
        .check_mask_labels(1)
        .unwrap();
    let err = config(&affine(3))
        .check_mask_labels(3)
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        "invalid parameter: step 0: affine border mask_value 3 is not a class of a 3-class \
         model (0..=2) nor the ignore label 255"
    );
    // A joint elastic deformation is checked, an image-only one never touches the mask;
    // one_of choices are checked, and the step is named.
    let elastic = |image_only: bool| {
        format!(
            r#"{{"type": "elastic", "image_only": {image_only}, "border": {{"mode": "constant", "value": 0, "mask_value": 9}}}}"#
        )
    };
    config(&elastic(true)).check_mask_labels(3).unwrap();
    let err = config(&elastic(false))
        .check_mask_labels(3)
        .unwrap_err()
        .to_string();
    assert!(err.contains("step 0: elastic border mask_value 9"), "{err}");
    let nested = format!(
        r#"{{"type": "horizontal_flip"}}, {{"type": "one_of", "choices": [{{"type": "gaussian_blur"}}, {}]}}"#,
        affine(4)
    );
    let err = config(&nested)
        .check_mask_labels(3)
        .unwrap_err()
        .to_string();
    assert!(err.contains("step 1: affine border mask_value 4"), "{err}");
    // The shipped presets pass for any class count.
    for preset in [PipelineConfig::xnet(), PipelineConfig::xnet_strong()] {
        preset.check_mask_labels(1).unwrap();
    }
}

/// Finite but huge: `3e38` is an `f32` (below `f32::MAX`), so finiteness checks pass it, and
/// it overflows to infinity once scaled (a penumbra times the image size / 256).
const FINITE_HUGE: [f64; 2] = [3e38, -3e38];

/// Every float setting of the phantom config (the category weights aside: they are relative
/// frequencies, see the next test) has bounds, so a finite but huge value is refused by
/// name, by `validate` and by `generate` alike; the default config and every body part pass.
#[test]
fn every_float_of_the_phantom_config_refuses_a_finite_huge_value() {
    let base = serde_json::to_value(PhantomConfig::with_size(32)).unwrap();
    PhantomConfig::default().validate().unwrap();
    let ok: PhantomConfig = serde_json::from_value(base.clone()).unwrap();
    let mut rng = StdRng::seed_from_u64(0);
    for part in BodyPart::ALL {
        generate(&ok, part, &mut rng).unwrap();
    }
    let leaves: Vec<_> = float_leaves(&base)
        .into_iter()
        .filter(|(pointer, _)| !pointer.starts_with("/category_weights/"))
        .collect();
    // The ranges this test exists for are among the leaves.
    for must in [
        "penumbra_px",
        "photons",
        "detector_blur_px",
        "scatter",
        "mu_tissue",
        "bone_ratio",
        "hardening",
        "electronic_noise",
        "gain_variation",
        "unsharp_sigma",
        "unsharp_gain",
    ] {
        assert!(leaves.iter().any(|(_, k)| k == must), "{must} not walked");
    }
    phantom_refuses_each(&base, &leaves, FINITE_HUGE, "");
}

/// The bounds named in the messages, at and beyond them.
#[test]
fn phantom_range_bounds_are_named_and_inclusive() {
    let mut cfg = PhantomConfig::with_size(32);
    cfg.collimation.penumbra_px = [0.8, 3e38];
    assert_eq!(
        cfg.validate().unwrap_err().to_string(),
        "invalid parameter: collimation: penumbra_px must be an ordered positive range \
         within (0, 256], got [0.8, 3e38]"
    );
    cfg.collimation.penumbra_px = [0.8, 256.0];
    cfg.validate().unwrap();

    let mut cfg = PhantomConfig::with_size(32);
    cfg.physics.photons = [400.0, 3e38];
    assert_eq!(
        cfg.validate().unwrap_err().to_string(),
        "invalid parameter: physics.photons range [400, 3e38] must be finite, ordered and \
         within [1, 1e9]"
    );
    cfg.physics.photons = [400.0, 1e9];
    cfg.validate().unwrap();
    cfg.physics.detector_blur_px = [0.4, 33.0];
    assert!(cfg.validate().unwrap_err().to_string().contains(
        "physics.detector_blur_px range [0.4, 33] must be finite, ordered and within [0, 32]"
    ));
}

/// Category weights are relative, so one huge weight is fine, but weights whose sum leaves
/// the `f32` range are refused (drawing a category from an infinite total would panic).
#[test]
fn category_weights_whose_sum_overflows_are_refused() {
    let mut cfg = PhantomConfig::with_size(32);
    cfg.category_weights.insert(BodyPart::Hand, 3e38);
    cfg.validate().unwrap();
    for part in BodyPart::ALL {
        cfg.category_weights.insert(part, 3e38);
    }
    let err = cfg.validate().unwrap_err().to_string();
    assert!(err.contains("category weights sum to inf"), "{err}");
    let mut rng = StdRng::seed_from_u64(0);
    assert!(xray_data::synth::sample_category(&mut rng, &cfg.category_weights).is_err());
}
