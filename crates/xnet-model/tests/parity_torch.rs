//! Parity with the PyTorch twin (`../shared/peers/xnet_torch.py`): XNet, SimpleSegNet and the
//! 3-level U-Net at widths 4/8/16/32 with randomised batch-norm statistics. Weights, input
//! and outputs come from golden/make_golden.py (committed safetensors).
//!
//! Checked: eval-mode logits, train-mode logits (batch statistics), and the running
//! statistics after one train-mode forward (momentum convention) — all within 1e-4.

use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use std::collections::HashMap;
use xnet_model::models::{ModelConfig, SegNetConfig, UNetConfig, Upsampling, XNetConfig};

mod common;
use common::max_abs_diff as max_diff;

fn golden(name: &str) -> (String, HashMap<String, Tensor>) {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/golden");
    let w = format!("{dir}/{name}_weights.safetensors");
    let io = candle_core::safetensors::load(format!("{dir}/{name}_io.safetensors"), &Device::Cpu)
        .unwrap();
    (w, io)
}

fn check(name: &str, cfg: ModelConfig) {
    let (weights, io) = golden(name);
    let x = &io["x"];
    // Eval mode, weights loaded straight from the file.
    let vb = unsafe { VarBuilder::from_mmaped_safetensors(&[&weights], DType::F32, &Device::Cpu) }
        .unwrap();
    let net = cfg.build(vb).unwrap();
    let d = max_diff(&net.forward_t(x, false).unwrap(), &io["eval_out"]);
    assert!(d < 1e-4, "{name} eval: max |candle − torch| = {d}");

    // Train mode through a VarMap, so the running statistics are updated in place.
    let mut vm = VarMap::new();
    let net = cfg
        .build(VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu))
        .unwrap();
    vm.load(&weights).unwrap();
    let d = max_diff(&net.forward_t(x, true).unwrap(), &io["train_out"]);
    assert!(d < 1e-4, "{name} train: max |candle − torch| = {d}");
    let data = vm.data().lock().unwrap();
    let mut checked = 0;
    for (k, want) in io
        .iter()
        .filter_map(|(k, v)| k.strip_prefix("after.").map(|k| (k, v)))
    {
        let got = data
            .get(k)
            .unwrap_or_else(|| panic!("{name}: no variable {k}"));
        let d = max_diff(got.as_tensor(), want);
        assert!(d < 1e-4, "{name}: running statistic {k} differs by {d}");
        checked += 1;
    }
    assert!(checked > 0);
}

#[test]
fn xnet_matches_pytorch() {
    check(
        "xnet",
        ModelConfig::XNet(XNetConfig {
            base_width: 4,
            ..Default::default()
        }),
    );
}

#[test]
fn simple_segnet_matches_pytorch() {
    check(
        "segnet",
        ModelConfig::SegNet(SegNetConfig::simple().narrowed(16)),
    );
}

#[test]
fn unet_matches_pytorch() {
    let cfg = UNetConfig {
        base_width: 4,
        depth: 3,
        upsampling: Upsampling::Nearest,
        ..Default::default()
    };
    check("unet", ModelConfig::UNet(cfg));
}

#[test]
fn loading_weights_of_the_wrong_shape_names_the_tensor() {
    let (weights, _) = golden("xnet");
    let vb = unsafe { VarBuilder::from_mmaped_safetensors(&[&weights], DType::F32, &Device::Cpu) }
        .unwrap();
    let wrong = ModelConfig::XNet(XNetConfig {
        base_width: 8,
        ..Default::default()
    });
    let msg = wrong
        .build(vb)
        .err()
        .expect("shape mismatch must fail")
        .to_string();
    assert!(msg.contains("conv1"), "{msg}");
}
