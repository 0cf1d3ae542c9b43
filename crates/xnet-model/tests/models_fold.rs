//! Batch-norm folding: the folded network gives the same eval-mode outputs (within 1e-5) as
//! the unfolded one on stock candle ops (`XNET_REFERENCE_KERNELS=1`, candle's `BatchNorm`)
//! and on the fast kernels (which fold on the fly), for every architecture; it folds once,
//! and refuses to train afterwards.

use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
mod common;
use common::{draw_batch_norm_affine, max_abs_diff};
use xnet_model::kernels::{with_kernels, KernelChoice};
use xnet_model::models::{
    BatchNormSettings, DeepLabConfig, ModelConfig, SegNetConfig, UNetConfig, XNetConfig,
};

fn configs() -> Vec<ModelConfig> {
    // A large momentum so that a few training forwards move the running statistics far from
    // their (0, 1) start and folding is not trivially the identity.
    let bn = BatchNormSettings {
        eps: 1e-3,
        momentum: 0.7,
    };
    vec![
        ModelConfig::XNet(XNetConfig {
            base_width: 4,
            batch_norm: bn,
            ..Default::default()
        }),
        ModelConfig::UNet(UNetConfig {
            base_width: 4,
            depth: 2,
            batch_norm: bn,
            ..Default::default()
        }),
        ModelConfig::SegNet(SegNetConfig {
            batch_norm: bn,
            ..SegNetConfig::basic().narrowed(16)
        }),
        ModelConfig::DeepLab(DeepLabConfig {
            encoder_widths: vec![4, 8, 8],
            aspp_channels: 4,
            batch_norm: bn,
            ..Default::default()
        }),
    ]
}

#[test]
fn folded_networks_match_within_1e5() {
    for cfg in configs() {
        let vm = VarMap::new();
        let mut net = cfg
            .build(VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu))
            .unwrap();
        draw_batch_norm_affine(&vm, 7);
        for _ in 0..3 {
            let x = (Tensor::rand(0f32, 1., (2, 1, 16, 16), &Device::Cpu).unwrap() * 3.0).unwrap();
            net.forward_t(&x, true).unwrap();
        }
        let x = Tensor::rand(0f32, 1., (2, 1, 16, 16), &Device::Cpu).unwrap();
        let before = with_kernels(KernelChoice::Reference, || net.forward_t(&x, false)).unwrap();
        let before_fast = with_kernels(KernelChoice::Fast, || net.forward_t(&x, false)).unwrap();
        let folded = net.fold_batch_norm().unwrap();
        assert!(folded > 0);
        assert_eq!(
            net.fold_batch_norm().unwrap(),
            0,
            "second fold must be a no-op"
        );
        let after = net.forward_t(&x, false).unwrap();
        let scale = before
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .map(f64::from)
            .unwrap()
            .max(1.0);
        for (what, out) in [
            ("folded", &after),
            ("fast, folded on the fly,", &before_fast),
        ] {
            let d = max_abs_diff(&before, out);
            assert!(
                d / scale < 1e-5,
                "{}: {what} output differs from the stock path by {d} (scale {scale})",
                cfg.arch()
            );
        }
        let msg = net.forward_t(&x, true).unwrap_err().to_string();
        assert!(msg.contains("folded"), "{msg}");
    }
}
