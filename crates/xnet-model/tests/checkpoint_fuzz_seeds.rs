//! Writes the seed corpus of the `checkpoint` cargo-fuzz target in `fuzz/` (ignored by
//! default): `cargo test -p xnet-model --test checkpoint_fuzz_seeds -- --ignored`.
//!
//! The checkpoint is the one the target builds for itself: an XNet of base width 2 whose
//! every variable is 0.5, so that its bytes, and the weights digest in its config, are the
//! same here and there. Keep the two in step.

use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use std::fs;
use std::path::PathBuf;
use xnet_model::checkpoint::{self, CONFIG_FILE, WEIGHTS_FILE};
use xnet_model::models::XNetConfig;
use xnet_model::ModelConfig;

#[test]
#[ignore = "writes fuzz/corpus; run by hand before fuzzing"]
fn write_fuzz_seeds() {
    let out = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../fuzz/corpus/checkpoint"
    ));
    fs::create_dir_all(&out).unwrap();
    let tmp = std::env::temp_dir().join(format!("xnet-fuzz-seeds-{}", std::process::id()));
    let dev = Device::Cpu;
    let varmap = VarMap::new();
    let cfg = ModelConfig::XNet(XNetConfig {
        base_width: 2,
        ..Default::default()
    });
    cfg.build(VarBuilder::from_varmap(&varmap, DType::F32, &dev))
        .unwrap();
    for var in varmap.all_vars() {
        var.set(&Tensor::full(0.5f32, var.shape(), &dev).unwrap())
            .unwrap();
    }
    checkpoint::save(&tmp, &varmap, &cfg, serde_json::json!({"epoch": 3})).unwrap();
    checkpoint::load(&tmp, &dev).unwrap();
    let config = fs::read(tmp.join(CONFIG_FILE)).unwrap();
    let weights = fs::read(tmp.join(WEIGHTS_FILE)).unwrap();
    let mut undigested = checkpoint::read_config(&tmp.join(CONFIG_FILE)).unwrap();
    undigested.weights_digest = None;
    let undigested = serde_json::to_vec_pretty(&undigested).unwrap();
    let with = |mode: u8, parts: &[&[u8]]| {
        let mut v = vec![mode];
        for (i, p) in parts.iter().enumerate() {
            if i > 0 {
                v.push(0);
            }
            v.extend_from_slice(p);
        }
        v
    };
    // 0: config.json beside the fixed weights; 1: weights beside the fixed config without a
    // digest; 2: config, NUL, weights.
    fs::write(out.join("seed_config"), with(0, &[&config])).unwrap();
    fs::write(out.join("seed_config_nodigest"), with(0, &[&undigested])).unwrap();
    fs::write(out.join("seed_weights"), with(1, &[&weights])).unwrap();
    fs::write(out.join("seed_both"), with(2, &[&undigested, &weights])).unwrap();
    let unet = serde_json::json!({
        "format_version": 1,
        "model": {"arch": "unet", "depth": 2, "base_width": 2}
    });
    fs::write(
        out.join("seed_unet"),
        with(0, &[&serde_json::to_vec(&unet).unwrap()]),
    )
    .unwrap();
    fs::remove_dir_all(&tmp).ok();
}
