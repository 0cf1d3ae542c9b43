//! Checkpoints: save/load round trip, strict loading, atomic writes.

use std::path::PathBuf;

use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use xnet_model::checkpoint::{self, CONFIG_FILE, WEIGHTS_FILE};
use xnet_model::models::{ModelConfig, XNetConfig};
use xnet_model::ModelError;

fn temp_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("xnet-ckpt-{tag}-{}", std::process::id()));
    std::fs::remove_dir_all(&d).ok();
    d
}

fn small(base_width: usize) -> ModelConfig {
    ModelConfig::XNet(XNetConfig {
        base_width,
        ..Default::default()
    })
}

#[test]
fn save_then_load_gives_the_same_outputs() {
    let dir = temp_dir("roundtrip");
    let dev = Device::Cpu;
    let varmap = VarMap::new();
    let cfg = small(2);
    let model = cfg
        .build(VarBuilder::from_varmap(&varmap, DType::F32, &dev))
        .unwrap();
    // Train-mode forward moves the batch-norm running statistics away from their initial values,
    // so the test also covers them.
    let x = Tensor::randn(0f32, 1.0, (2, 1, 16, 16), &dev).unwrap();
    model.forward_t(&x, true).unwrap();
    let before = model.forward_t(&x, false).unwrap();
    checkpoint::save(&dir, &varmap, &cfg, serde_json::json!({"epoch": 7})).unwrap();
    assert!(dir.join(WEIGHTS_FILE).is_file() && dir.join(CONFIG_FILE).is_file());
    let leftovers: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");

    for path in [dir.clone(), dir.join(WEIGHTS_FILE)] {
        let loaded = checkpoint::load(&path, &dev).unwrap();
        assert_eq!(loaded.config, cfg);
        assert_eq!(loaded.metadata["epoch"], 7);
        let after = loaded.model.forward_t(&x, false).unwrap();
        let diff = (before.clone() - after)
            .unwrap()
            .abs()
            .unwrap()
            .flatten_all()
            .unwrap()
            .max(0)
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert_eq!(diff, 0.0);
        assert_eq!(loaded.varmap.all_vars().len(), varmap.all_vars().len());
    }
    // Saving again over the same directory replaces the files.
    checkpoint::save(&dir, &varmap, &cfg, serde_json::Value::Null).unwrap();
    assert_eq!(
        checkpoint::read_config(&dir).unwrap().metadata,
        serde_json::Value::Null
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn weights_that_do_not_fit_the_config_are_refused() {
    let dir = temp_dir("mismatch");
    let dev = Device::Cpu;
    let varmap = VarMap::new();
    let cfg = small(2);
    cfg.build(VarBuilder::from_varmap(&varmap, DType::F32, &dev))
        .unwrap();
    checkpoint::save(&dir, &varmap, &cfg, serde_json::Value::Null).unwrap();

    // Same names, other widths: the error names a tensor and both shapes.
    let other = temp_dir("mismatch-other");
    let vm4 = VarMap::new();
    let cfg4 = small(4);
    cfg4.build(VarBuilder::from_varmap(&vm4, DType::F32, &dev))
        .unwrap();
    checkpoint::save(&other, &vm4, &cfg4, serde_json::Value::Null).unwrap();
    std::fs::copy(dir.join(WEIGHTS_FILE), other.join(WEIGHTS_FILE)).unwrap();
    match checkpoint::load(&other, &dev) {
        Err(ModelError::WeightShape {
            tensor,
            expected,
            found,
            ..
        }) => {
            assert!(!tensor.is_empty());
            assert_ne!(expected, found);
        }
        other => panic!("expected WeightShape, got {:?}", other.map(|m| m.config)),
    }
    let msg = checkpoint::load(&other, &dev).unwrap_err().to_string();
    assert!(
        msg.contains("has shape") && msg.contains("expects"),
        "{msg}"
    );

    // A different kernel size adds no tensor but a different architecture (transposed-conv
    // up-sampling) has tensors the file lacks: the error lists them.
    let cfg_tc = ModelConfig::XNet(XNetConfig {
        base_width: 2,
        upsampling: xnet_model::models::Upsampling::TransposedConv,
        ..Default::default()
    });
    let tc = temp_dir("mismatch-tc");
    let vm_tc = VarMap::new();
    cfg_tc
        .build(VarBuilder::from_varmap(&vm_tc, DType::F32, &dev))
        .unwrap();
    checkpoint::save(&tc, &vm_tc, &cfg_tc, serde_json::Value::Null).unwrap();
    std::fs::copy(tc.join(WEIGHTS_FILE), dir.join("extra.safetensors")).unwrap();
    std::fs::copy(dir.join(WEIGHTS_FILE), tc.join(WEIGHTS_FILE)).unwrap();
    match checkpoint::load(&tc, &dev) {
        Err(ModelError::WeightNames {
            missing,
            unexpected,
            ..
        }) => {
            assert!(!missing.is_empty(), "transposed-conv weights are missing");
            assert!(unexpected.is_empty());
        }
        other => panic!("expected WeightNames, got {:?}", other.map(|m| m.config)),
    }
    // And the reverse: tensors the model does not have.
    let vm = VarMap::new();
    cfg.build(VarBuilder::from_varmap(&vm, DType::F32, &dev))
        .unwrap();
    match checkpoint::load_weights_into(&vm, &dir.join("extra.safetensors"), &dev) {
        Err(ModelError::WeightNames {
            missing,
            unexpected,
            ..
        }) => {
            assert!(missing.is_empty());
            assert!(!unexpected.is_empty());
        }
        other => panic!("expected WeightNames, got {other:?}"),
    }
    for d in [dir, other, tc] {
        std::fs::remove_dir_all(&d).ok();
    }
}

#[test]
fn missing_or_corrupt_files_are_errors_naming_the_file() {
    let dev = Device::Cpu;
    let dir = temp_dir("missing");
    std::fs::create_dir_all(&dir).unwrap();
    let e = checkpoint::load(&dir, &dev).unwrap_err();
    assert!(matches!(e, ModelError::Io { .. }), "{e}");
    assert!(e.to_string().contains(CONFIG_FILE), "{e}");
    std::fs::write(dir.join(CONFIG_FILE), "{ not json").unwrap();
    let e = checkpoint::load(&dir, &dev).unwrap_err();
    assert!(matches!(e, ModelError::Json { .. }), "{e}");
    // Valid config, garbage weights.
    let varmap = VarMap::new();
    let cfg = small(2);
    cfg.build(VarBuilder::from_varmap(&varmap, DType::F32, &dev))
        .unwrap();
    checkpoint::save(&dir, &varmap, &cfg, serde_json::Value::Null).unwrap();
    std::fs::write(dir.join(WEIGHTS_FILE), b"garbage").unwrap();
    let e = checkpoint::load(&dir, &dev).unwrap_err();
    assert!(e.to_string().contains(WEIGHTS_FILE), "{e}");
    std::fs::remove_dir_all(&dir).ok();
}
