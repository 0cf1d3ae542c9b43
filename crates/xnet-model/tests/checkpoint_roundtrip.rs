//! Checkpoints: save/load round trip, strict loading, atomic writes.

mod common;
use common::float_paths;

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

/// The variables of `cfg`'s network, built on the CPU.
fn variables_of(cfg: &ModelConfig) -> VarMap {
    let varmap = VarMap::new();
    cfg.build(VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu))
        .unwrap();
    varmap
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

    for path in [dir.clone(), dir.join(WEIGHTS_FILE), dir.join(CONFIG_FILE)] {
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
    let cfg = small(2);
    let varmap = variables_of(&cfg);
    checkpoint::save(&dir, &varmap, &cfg, serde_json::Value::Null).unwrap();

    // Same names, other widths: the error names a tensor and both shapes.
    let other = temp_dir("mismatch-other");
    let cfg4 = small(4);
    let vm4 = variables_of(&cfg4);
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
    let vm_tc = variables_of(&cfg_tc);
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
    let vm = variables_of(&cfg);
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
    // A path that does not exist is named as given, not as the config it would imply.
    let typo = dir.join("no-such-run");
    let e = checkpoint::load(&typo, &dev).unwrap_err();
    assert!(matches!(e, ModelError::Io { .. }), "{e}");
    let msg = e.to_string();
    assert!(
        msg.contains("no-such-run") && msg.contains("no checkpoint here"),
        "{msg}"
    );
    std::fs::write(dir.join(CONFIG_FILE), "{ not json").unwrap();
    let e = checkpoint::load(&dir, &dev).unwrap_err();
    assert!(matches!(e, ModelError::Json { .. }), "{e}");
    // Valid config, garbage weights.
    let cfg = small(2);
    let varmap = variables_of(&cfg);
    checkpoint::save(&dir, &varmap, &cfg, serde_json::Value::Null).unwrap();
    std::fs::write(dir.join(WEIGHTS_FILE), b"garbage").unwrap();
    let e = checkpoint::load(&dir, &dev).unwrap_err();
    assert!(e.to_string().contains(WEIGHTS_FILE), "{e}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn pipes_and_directories_in_place_of_checkpoint_files_are_refused_without_blocking() {
    let dev = Device::Cpu;
    let dir = temp_dir("pipes");
    std::fs::create_dir_all(&dir).unwrap();
    let cfg = small(2);
    let varmap = variables_of(&cfg);
    checkpoint::save(&dir, &varmap, &cfg, serde_json::Value::Null).unwrap();
    // A directory where the config should be.
    let nested = dir.join("nested");
    std::fs::create_dir_all(nested.join(CONFIG_FILE)).unwrap();
    let e = checkpoint::load(&nested, &dev).unwrap_err().to_string();
    assert!(e.contains("a directory") && e.contains(CONFIG_FILE), "{e}");
    let piped = dir.join("piped");
    std::fs::create_dir_all(&piped).unwrap();
    std::fs::copy(dir.join(CONFIG_FILE), piped.join(CONFIG_FILE)).unwrap();
    let made = std::process::Command::new("mkfifo")
        .arg(piped.join(WEIGHTS_FILE))
        .status()
        .is_ok_and(|s| s.success());
    if !made {
        eprintln!("mkfifo is not available: the named-pipe cases are not checked");
        std::fs::remove_dir_all(&dir).ok();
        return;
    }
    // Nothing writes to these pipes: opening one to read used to wait for a writer for ever.
    let e = checkpoint::load(&piped, &dev).unwrap_err().to_string();
    assert!(e.contains("named pipe") && e.contains(WEIGHTS_FILE), "{e}");
    let varmap2 = variables_of(&cfg);
    let e = checkpoint::load_weights_into(&varmap2, &piped.join(WEIGHTS_FILE), &dev)
        .unwrap_err()
        .to_string();
    assert!(e.contains("named pipe"), "{e}");
    std::fs::remove_file(piped.join(CONFIG_FILE)).unwrap();
    let made = std::process::Command::new("mkfifo")
        .arg(piped.join(CONFIG_FILE))
        .status()
        .is_ok_and(|s| s.success());
    assert!(made);
    let e = checkpoint::read_config(&piped).unwrap_err().to_string();
    assert!(e.contains("named pipe") && e.contains(CONFIG_FILE), "{e}");
    std::fs::remove_dir_all(&dir).ok();
}

/// A checkpoint directory holding `cfg` (written as JSON) beside the weights of a small
/// XNet: enough for loading to reach the configuration check.
fn checkpoint_with_config(tag: &str, model: serde_json::Value) -> PathBuf {
    let dir = temp_dir(tag);
    let cfg = small(2);
    let varmap = variables_of(&cfg);
    checkpoint::save(&dir, &varmap, &cfg, serde_json::Value::Null).unwrap();
    let text = serde_json::json!({"format_version": 1, "model": model, "metadata": null});
    std::fs::write(dir.join(CONFIG_FILE), text.to_string()).unwrap();
    dir
}

#[test]
fn absurd_configurations_are_errors_naming_the_field_and_file() {
    // Each once panicked ("capacity overflow"), aborted on a huge allocation or overflowed
    // a shift before any shape was compared.
    let cases = [
        (
            serde_json::json!({"arch": "xnet", "base_width": 8, "width_multiplier": 1e30}),
            "width_multiplier",
        ),
        (
            serde_json::json!({"arch": "xnet", "base_width": 100000}),
            "base_width",
        ),
        (
            serde_json::json!({"arch": "xnet", "base_width": usize::MAX}),
            "base_width",
        ),
        (
            serde_json::json!({"arch": "xnet", "base_width": 2, "in_channels": 1usize << 40}),
            "in_channels",
        ),
        (
            serde_json::json!({"arch": "xnet", "base_width": 2, "num_classes": 300}),
            "num_classes",
        ),
        (
            serde_json::json!({"arch": "xnet", "base_width": 2, "kernel_size": 1001}),
            "kernel_size",
        ),
        (
            serde_json::json!({"arch": "unet", "base_width": 1usize << 62}),
            "base_width",
        ),
        (
            serde_json::json!({"arch": "unet", "base_width": 64, "depth": 8}),
            "base_width",
        ),
        (
            serde_json::json!({"arch": "segnet", "encoder": [[100000]], "decoder": [[4]]}),
            "width",
        ),
        (
            serde_json::json!({"arch": "segnet", "encoder": [vec![1; 1000]], "decoder": [[1]]}),
            "blocks",
        ),
        (
            serde_json::json!({"arch": "deeplab", "aspp_channels": 1usize << 40}),
            "aspp_channels",
        ),
        (
            serde_json::json!({"arch": "deeplab", "encoder_widths": [8, 100000]}),
            "encoder_widths",
        ),
        (
            serde_json::json!({"arch": "deeplab", "aspp_rates": [6, 12, usize::MAX]}),
            "aspp_rates",
        ),
        // Every field within its bounds, 2.4e11 weights in all.
        (
            serde_json::json!({"arch": "xnet", "base_width": 1024, "kernel_size": 31}),
            "parameters",
        ),
        (
            serde_json::json!({"arch": "segnet", "encoder": [[8192, 8192]], "decoder": [[8192]], "kernel_size": 31, "upsampling": "nearest"}),
            "parameters",
        ),
    ];
    for (k, (model, field)) in cases.into_iter().enumerate() {
        let dir = checkpoint_with_config(&format!("absurd-{k}"), model.clone());
        match checkpoint::load(&dir, &Device::Cpu) {
            Err(ModelError::InvalidConfig(msg)) => {
                assert!(msg.contains(field), "{model}: {msg}");
                assert!(msg.contains(CONFIG_FILE), "{model}: {msg}");
            }
            other => panic!(
                "{model}: expected InvalidConfig, got {:?}",
                other.map(|m| m.config)
            ),
        }
        std::fs::remove_dir_all(&dir).ok();
    }
    // The bounds leave every preset and the paper's sizes valid.
    for cfg in [
        ModelConfig::XNet(XNetConfig::default()),
        ModelConfig::UNet(Default::default()),
        ModelConfig::SegNet(xnet_model::models::SegNetConfig::vgg16()),
        ModelConfig::SegNet(xnet_model::models::SegNetConfig::simple()),
        ModelConfig::DeepLab(Default::default()),
    ] {
        cfg.validate().unwrap();
    }
}

#[test]
fn expected_shapes_are_the_built_variables_of_every_architecture() {
    use xnet_model::models::{DeepLabConfig, SegNetConfig, UNetConfig, Upsampling};
    let configs = [
        small(2),
        ModelConfig::XNet(XNetConfig {
            base_width: 2,
            upsampling: Upsampling::TransposedConv,
            ..Default::default()
        }),
        ModelConfig::UNet(UNetConfig {
            base_width: 2,
            depth: 2,
            ..Default::default()
        }),
        ModelConfig::SegNet(SegNetConfig::vgg16().narrowed(32)),
        ModelConfig::DeepLab(DeepLabConfig {
            encoder_widths: vec![2, 4],
            aspp_channels: 4,
            ..Default::default()
        }),
    ];
    for cfg in configs {
        let shapes = checkpoint::expected_shapes(|vb| cfg.build(vb).map(|_| ())).unwrap();
        let varmap = variables_of(&cfg);
        let built: std::collections::BTreeMap<String, Vec<usize>> = varmap
            .data()
            .lock()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v.dims().to_vec()))
            .collect();
        assert_eq!(shapes, built, "{}", cfg.arch());
    }
}

#[test]
fn header_names_are_compared_before_the_data_are_read() {
    // A tensor dropped from the header (its bytes still in the file): the error lists it,
    // instead of the safetensors reader's "invalid offset".
    let dir = temp_dir("header-missing");
    let cfg = small(2);
    let varmap = variables_of(&cfg);
    checkpoint::save(&dir, &varmap, &cfg, serde_json::Value::Null).unwrap();
    let bytes = std::fs::read(dir.join(WEIGHTS_FILE)).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let mut header: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    header.remove("conv3.bn.running_mean").unwrap();
    let mut h = serde_json::to_vec(&header).unwrap();
    h.resize(h.len().div_ceil(8) * 8, b' ');
    let mut out = (h.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(&h);
    out.extend_from_slice(&bytes[8 + n..]);
    std::fs::write(dir.join(WEIGHTS_FILE), out).unwrap();
    match checkpoint::load(&dir, &Device::Cpu) {
        Err(ModelError::WeightNames {
            missing,
            unexpected,
            ..
        }) => {
            assert_eq!(missing, ["conv3.bn.running_mean"]);
            assert!(unexpected.is_empty());
        }
        other => panic!("expected WeightNames, got {:?}", other.map(|m| m.config)),
    }
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn non_finite_weights_and_negative_running_variances_are_refused() {
    let dev = Device::Cpu;
    let cases = [
        ("conv2.conv.weight", f32::NAN, "not finite"),
        ("conv15.bias", f32::INFINITY, "not finite"),
        ("conv4.bn.running_var", f32::INFINITY, "not finite"),
        ("conv4.bn.running_var", -1.0, "negative"),
    ];
    for (k, (name, value, what)) in cases.into_iter().enumerate() {
        let dir = temp_dir(&format!("values-{k}"));
        let cfg = small(2);
        let varmap = variables_of(&cfg);
        {
            let data = varmap.data().lock().unwrap();
            let var = &data[name];
            let mut values = var.flatten_all().unwrap().to_vec1::<f32>().unwrap();
            values[1] = value;
            var.set(&Tensor::from_vec(values, var.dims(), &dev).unwrap())
                .unwrap();
        }
        checkpoint::save(&dir, &varmap, &cfg, serde_json::Value::Null).unwrap();
        for result in [
            checkpoint::load(&dir, &dev).map(|_| ()),
            checkpoint::load_weights_into(&varmap, &dir.join(WEIGHTS_FILE), &dev),
        ] {
            match result {
                Err(ModelError::WeightValue {
                    tensor, message, ..
                }) => {
                    assert_eq!(tensor, name);
                    assert!(message.contains(what), "{message}");
                    assert!(
                        message.contains("index 1") || message.contains("channel 1"),
                        "{message}"
                    );
                }
                other => panic!("{name} = {value}: expected WeightValue, got {other:?}"),
            }
        }
        std::fs::remove_dir_all(&dir).ok();
    }
}

#[test]
fn weights_and_config_from_different_saves_are_refused() {
    let dev = Device::Cpu;
    let (a, b) = (temp_dir("torn-a"), temp_dir("torn-b"));
    let cfg = small(2);
    for dir in [&a, &b] {
        let varmap = variables_of(&cfg);
        checkpoint::save(dir, &varmap, &cfg, serde_json::Value::Null).unwrap();
    }
    let stored = checkpoint::read_config(&a).unwrap();
    let digest = stored
        .weights_digest
        .clone()
        .expect("save records the digest");
    assert_eq!(
        digest,
        checkpoint::weights_digest(&std::fs::read(a.join(WEIGHTS_FILE)).unwrap())
    );
    assert!(checkpoint::load(&a, &dev).is_ok());
    // What an interrupted save leaves: the other save's weights beside this config (same
    // network, so every shape still fits).
    std::fs::copy(b.join(WEIGHTS_FILE), a.join(WEIGHTS_FILE)).unwrap();
    let e = checkpoint::load(&a, &dev).unwrap_err().to_string();
    assert!(e.contains("different saves"), "{e}");
    // A config without the digest (written before it existed) loads unchecked.
    let old = checkpoint::CheckpointConfig {
        weights_digest: None,
        ..stored
    };
    checkpoint::write_config(&a, &old).unwrap();
    assert!(!std::fs::read_to_string(a.join(CONFIG_FILE))
        .unwrap()
        .contains("weights_digest"));
    assert!(checkpoint::load(&a, &dev).is_ok());
    std::fs::remove_dir_all(&a).ok();
    std::fs::remove_dir_all(&b).ok();
}

#[test]
fn a_truncated_weights_file_is_reported_as_truncated_not_as_another_save() {
    let dev = Device::Cpu;
    let dir = temp_dir("truncated");
    let cfg = small(2);
    let varmap = variables_of(&cfg);
    checkpoint::save(&dir, &varmap, &cfg, serde_json::Value::Null).unwrap();
    assert!(checkpoint::read_config(&dir)
        .unwrap()
        .weights_digest
        .is_some());
    let weights = dir.join(WEIGHTS_FILE);
    let bytes = std::fs::read(&weights).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let data = bytes.len() - 8 - n;
    // An interrupted copy: the header is whole, the data are cut short. It used to be
    // reported as weights and config "from different saves" (the digest differs).
    std::fs::write(&weights, &bytes[..bytes.len() - 20]).unwrap();
    let e = checkpoint::load(&dir, &dev).unwrap_err();
    assert!(matches!(e, ModelError::Safetensors { .. }), "{e}");
    let msg = e.to_string();
    assert!(
        msg.contains(WEIGHTS_FILE)
            && msg.contains(&format!(
                "truncated: the header describes {data} bytes of tensor data, the file holds {}",
                data - 20
            ))
            && !msg.contains("different saves"),
        "{msg}"
    );
    // The same through load_weights_into, which reads the config's digest too.
    let varmap2 = variables_of(&cfg);
    let msg = checkpoint::load_weights_into(&varmap2, &weights, &dev)
        .unwrap_err()
        .to_string();
    assert!(msg.contains("truncated"), "{msg}");
    // Bytes appended after the data.
    let mut longer = bytes.clone();
    longer.extend_from_slice(&[0u8; 12]);
    std::fs::write(&weights, &longer).unwrap();
    let msg = checkpoint::load(&dir, &dev).unwrap_err().to_string();
    assert!(
        msg.contains("12 trailing bytes") && !msg.contains("different saves"),
        "{msg}"
    );
    std::fs::write(&weights, &bytes).unwrap();
    assert!(checkpoint::load(&dir, &dev).is_ok());
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_file_without_a_config_beside_it_is_not_a_checkpoint() {
    let dev = Device::Cpu;
    let dir = temp_dir("not-a-checkpoint");
    std::fs::create_dir_all(&dir).unwrap();
    // What `segment --weights scan.png` gave: a file that exists, no config.json beside it.
    // It was reported as "<dir>/config.json: No such file or directory".
    let png = dir.join("scan.png");
    std::fs::write(&png, b"\x89PNG\r\n\x1a\n").unwrap();
    for e in [
        checkpoint::load(&png, &dev).unwrap_err(),
        checkpoint::read_config(&png).unwrap_err(),
    ] {
        assert!(matches!(e, ModelError::Io { .. }), "{e}");
        let msg = e.to_string();
        assert!(
            msg.starts_with(&format!(
                "{}: not a checkpoint: no {CONFIG_FILE} beside it",
                png.display()
            )),
            "{msg}"
        );
    }
    // A weights file alone is no checkpoint either.
    let weights = dir.join(WEIGHTS_FILE);
    std::fs::write(&weights, b"").unwrap();
    let msg = checkpoint::load(&weights, &dev).unwrap_err().to_string();
    assert!(msg.contains("not a checkpoint"), "{msg}");
    // A config.json given by name is still reported as missing under its own name.
    std::fs::remove_file(&weights).unwrap();
    let msg = checkpoint::read_config(&dir.join(CONFIG_FILE))
        .unwrap_err()
        .to_string();
    assert!(msg.contains("no checkpoint here"), "{msg}");
    std::fs::remove_dir_all(&dir).ok();
}

/// A `config.json` edited by hand with a huge number in any float field of any architecture
/// (`1e308`, which its f64 holds but the f32 network would run as infinity: a batch-norm
/// `eps` of `1e308` zeroed every output) is refused at load, naming the field and the file.
/// The fields are every float of each architecture's default config, so a field added
/// later is covered.
#[test]
fn huge_float_values_in_config_json_are_refused_naming_the_field_and_file() {
    use xnet_model::models::{DeepLabConfig, SegNetConfig, UNetConfig};
    let mut cases = Vec::new();
    for model in [
        ModelConfig::XNet(XNetConfig::default()),
        ModelConfig::UNet(UNetConfig::default()),
        ModelConfig::SegNet(SegNetConfig::default()),
        ModelConfig::DeepLab(DeepLabConfig::default()),
    ] {
        let v = serde_json::to_value(&model).unwrap();
        let mut paths = Vec::new();
        float_paths(&v, "", &mut paths);
        assert!(
            paths.iter().any(|p| p == "batch_norm.eps"),
            "{}: {paths:?}",
            model.arch()
        );
        for path in paths {
            for x in [1e308, -1e308, 1e39] {
                let mut edited = v.clone();
                let mut at = &mut edited;
                for k in path.split('.') {
                    at = &mut at[k];
                }
                *at = serde_json::json!(x);
                cases.push((edited, path.clone()));
            }
        }
    }
    for (k, (model, path)) in cases.into_iter().enumerate() {
        let dir = checkpoint_with_config(&format!("huge-{k}"), model.clone());
        match checkpoint::load(&dir, &Device::Cpu) {
            Err(ModelError::InvalidConfig(msg)) => {
                let field = path.rsplit('.').next().unwrap();
                assert!(msg.contains(field), "{model}: {msg}");
                assert!(msg.contains(CONFIG_FILE), "{model}: {msg}");
                assert!(!msg.contains("00000000"), "a long run of digits: {msg}");
            }
            other => panic!(
                "{model}: expected InvalidConfig, got {:?}",
                other.map(|m| m.config)
            ),
        }
        std::fs::remove_dir_all(&dir).ok();
    }
    // The largest f32 eps is a number (if an absurd one); the weights then load.
    let dir = checkpoint_with_config(
        "huge-eps-f32-max",
        serde_json::json!({"arch": "xnet", "base_width": 2,
                           "batch_norm": {"eps": f32::MAX as f64, "momentum": 0.01}}),
    );
    checkpoint::load(&dir, &Device::Cpu).unwrap();
    std::fs::remove_dir_all(&dir).ok();
}

/// What inference must repeat from a checkpoint's metadata (xnet-model's crate docs) has
/// typed accessors: a crate embedding the library read `metadata["flip_average"]` and
/// `metadata["temperature"]` as raw JSON, where a missing key, a string temperature or a
/// misspelt averaging passed unnoticed (`as_f64().unwrap_or(1.0)`, as the crate docs'
/// example did).
#[test]
fn inference_settings_are_read_from_the_metadata_and_checked() {
    let dir = temp_dir("inference-metadata");
    let dev = Device::Cpu;
    let cfg = small(2);
    let varmap = variables_of(&cfg);
    let load_with = |metadata: serde_json::Value| {
        checkpoint::save(&dir, &varmap, &cfg, metadata).unwrap();
        checkpoint::load(&dir, &dev).unwrap()
    };
    use xnet_model::infer::FlipAverage;
    let recorded = load_with(serde_json::json!({
        "flip_average": "horizontal_vertical",
        "temperature": 0.7,
        "epoch": 3,
    }));
    assert_eq!(
        recorded.flip_average().unwrap(),
        FlipAverage::HorizontalVertical
    );
    assert_eq!(recorded.temperature().unwrap(), Some(0.7));
    for none in [serde_json::json!({ "epoch": 3 }), serde_json::Value::Null] {
        let plain = load_with(none);
        assert_eq!(plain.flip_average().unwrap(), FlipAverage::Off);
        assert_eq!(plain.temperature().unwrap(), None);
    }
    let bad = load_with(serde_json::json!({ "flip_average": "both", "temperature": "0.7" }));
    let e = bad.flip_average().unwrap_err().to_string();
    assert!(
        e.contains("metadata.flip_average") && e.contains("\"both\""),
        "{e}"
    );
    let e = bad.temperature().unwrap_err().to_string();
    assert!(e.contains("metadata.temperature must be a number"), "{e}");
    let out_of_range = load_with(serde_json::json!({ "temperature": 0.0 }));
    let e = out_of_range.temperature().unwrap_err().to_string();
    assert!(
        e.contains("metadata.temperature") && e.contains("[0.01, 100]"),
        "{e}"
    );
    std::fs::remove_dir_all(&dir).ok();
}

/// `save` refuses variables that are not the network's (an empty `VarMap`, a wider
/// network's, one with an extra variable) before writing anything: no folder is made for a
/// new checkpoint, and an earlier one keeps its bytes. Before, each was written and refused
/// only by `load`, the earlier checkpoint lost.
#[test]
fn save_refuses_variables_that_are_not_the_network_s() {
    let dev = Device::Cpu;
    let cfg = small(2);
    let good = variables_of(&cfg);
    let wider = variables_of(&small(4));
    let extra = VarMap::new();
    let vb = VarBuilder::from_varmap(&extra, DType::F32, &dev);
    cfg.build(vb.clone()).unwrap();
    vb.get_with_hints(3, "stray.bias", candle_nn::Init::Const(0.0))
        .unwrap();

    let fresh = temp_dir("save-refused-fresh");
    let kept = temp_dir("save-refused-kept");
    checkpoint::save(&kept, &good, &cfg, serde_json::json!({ "epoch": 1 })).unwrap();
    let bytes = |name: &str| std::fs::read(kept.join(name)).unwrap();
    let (config_before, weights_before) = (bytes(CONFIG_FILE), bytes(WEIGHTS_FILE));
    for (what, varmap, names) in [
        ("empty", VarMap::new(), "missing"),
        ("wider", wider, "has shape"),
        ("extra", extra, "unexpected [\"stray.bias\"]"),
    ] {
        for dir in [&fresh, &kept] {
            let e = checkpoint::save(dir, &varmap, &cfg, serde_json::Value::Null).unwrap_err();
            let text = e.to_string();
            assert!(matches!(e, ModelError::InvalidConfig(_)), "{what}: {e:?}");
            assert!(
                text.contains(&dir.display().to_string())
                    && text.contains("not saved")
                    && text.contains(names),
                "{what}: {text}"
            );
        }
        assert!(!fresh.exists(), "{what}");
        assert_eq!(bytes(CONFIG_FILE), config_before, "{what}");
        assert_eq!(bytes(WEIGHTS_FILE), weights_before, "{what}");
    }
    assert!(checkpoint::load(&kept, &dev).is_ok());
    std::fs::remove_dir_all(&kept).ok();
}

/// `LoadedModel::preprocess` reads `metadata.preprocess` typed and checked against the
/// network (its size multiple, the largest input side, the percentile window), as the
/// workspace's predictor does; an embedding crate read the raw JSON before.
#[test]
fn the_preprocessing_record_is_read_typed_and_checked() {
    let dir = temp_dir("preprocess-record");
    let dev = Device::Cpu;
    let varmap = VarMap::new();
    let cfg = small(2);
    let model = cfg
        .build(VarBuilder::from_varmap(&varmap, DType::F32, &dev))
        .unwrap();
    let multiple = model.size_multiple();
    let side = (4 * multiple) as u64;
    let record = |v: serde_json::Value| {
        checkpoint::save(&dir, &varmap, &cfg, serde_json::json!({ "preprocess": v })).unwrap();
        checkpoint::load(&dir, &dev).unwrap().preprocess()
    };
    let ok = record(serde_json::json!({
        "width": side, "height": 2 * side, "log": true, "percentile": [1.0, 99.0]
    }))
    .unwrap()
    .unwrap();
    assert_eq!(
        (ok.width as u64, ok.height as u64, ok.log, ok.percentile),
        (side, 2 * side, true, Some((1.0, 99.0)))
    );
    checkpoint::save(&dir, &varmap, &cfg, serde_json::json!({ "epoch": 1 })).unwrap();
    assert_eq!(
        checkpoint::load(&dir, &dev).unwrap().preprocess().unwrap(),
        None
    );
    for (v, what) in [
        (
            serde_json::json!({ "width": side, "height": side }),
            "not a preprocessing record",
        ),
        (serde_json::json!("128x128"), "not a preprocessing record"),
        (
            serde_json::json!({ "width": side + 1, "height": side, "log": false }),
            "must be a non-zero multiple",
        ),
        (
            serde_json::json!({ "width": 0, "height": side, "log": false }),
            "must be a non-zero multiple",
        ),
        (
            serde_json::json!({ "width": 16384, "height": side, "log": false }),
            "is larger than 8192x8192",
        ),
        (
            serde_json::json!({ "width": side, "height": side, "log": false, "percentile": [50.0, 50.0] }),
            "low=50, high=50",
        ),
        (
            serde_json::json!({ "width": side, "height": side, "log": false, "percentile": [-1.0, 50.0] }),
            "0 <= low < high <= 100",
        ),
    ] {
        let e = record(v.clone()).unwrap_err();
        let text = e.to_string();
        assert!(matches!(e, ModelError::InvalidConfig(_)), "{v}: {e:?}");
        assert!(
            text.contains("metadata.preprocess") && text.contains(what),
            "{v}: {text}"
        );
    }
    std::fs::remove_dir_all(&dir).ok();
}
