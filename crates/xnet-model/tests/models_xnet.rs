//! XNet: parameter counts of the paper's network, shapes, input errors, config JSON,
//! batch-norm folding.

use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use xnet_model::models::{
    count_trainable_parameters, ModelConfig, Segmenter, Upsampling, XNetConfig,
};

fn build(cfg: &XNetConfig) -> (VarMap, Box<dyn Segmenter>) {
    let vm = VarMap::new();
    let vb = VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu);
    let net = ModelConfig::XNet(cfg.clone()).build(vb).unwrap();
    (vm, net)
}

#[test]
fn paper_parameter_count_k3() {
    let (vm, _) = build(&XNetConfig::default());
    assert_eq!(count_trainable_parameters(&vm), 11_734_851);
}

#[test]
fn paper_parameter_count_k5() {
    let (vm, _) = build(&XNetConfig {
        kernel_size: 5,
        ..Default::default()
    });
    assert_eq!(count_trainable_parameters(&vm), 32_576_323);
}

#[test]
fn paper_forward_flops_at_200() {
    // 66.432 GFLOP per 200×200 image (the PyTorch twin's FlopCounterMode figure).
    let f = ModelConfig::XNet(XNetConfig::default()).forward_flops(200, 200);
    assert_eq!(f / 1_000_000, 66_432);
}

/// FLOP counts beyond `u64::MAX` saturate: the products and sums overflowed (a panic in
/// debug builds, a wrapped count in release) from about 2²² pixels a side on the paper's
/// XNet. Configurations that `validate` refuses (more levels than a shift has bits, fewer
/// decoder levels than encoder levels) are counted without panicking too.
#[test]
fn forward_flops_saturate_instead_of_overflowing() {
    use xnet_model::models::{DeepLabConfig, SegNetConfig, UNetConfig};
    let big = 1usize << 22;
    assert_eq!(
        ModelConfig::XNet(XNetConfig::default()).forward_flops(big, big),
        u64::MAX
    );
    let all = [
        ModelConfig::XNet(XNetConfig::default()),
        ModelConfig::UNet(UNetConfig::default()),
        ModelConfig::SegNet(SegNetConfig::vgg16()),
        ModelConfig::DeepLab(DeepLabConfig::default()),
    ];
    for cfg in &all {
        assert!(cfg.forward_flops(big, big) >= cfg.forward_flops(big / 2, big / 2));
        assert_eq!(
            cfg.forward_flops(usize::MAX, usize::MAX),
            u64::MAX,
            "{}",
            cfg.arch()
        );
        let small = cfg.forward_flops(64, 64);
        assert!(small > 0 && small < u64::MAX, "{}", cfg.arch());
    }
    let refused = [
        ModelConfig::XNet(XNetConfig {
            base_width: usize::MAX,
            ..Default::default()
        }),
        ModelConfig::UNet(UNetConfig {
            depth: 100,
            ..Default::default()
        }),
        ModelConfig::SegNet(SegNetConfig {
            decoder: vec![],
            ..SegNetConfig::basic()
        }),
        ModelConfig::DeepLab(DeepLabConfig {
            encoder_widths: vec![8; 100],
            aspp_channels: usize::MAX,
            ..Default::default()
        }),
    ];
    for cfg in &refused {
        assert!(cfg.validate().is_err());
        cfg.forward_flops(256, 256);
        cfg.forward_flops(usize::MAX, 1);
    }
}

fn tiny() -> XNetConfig {
    XNetConfig {
        base_width: 4,
        ..Default::default()
    }
}

#[test]
fn small_xnet_shapes_train_and_eval() {
    let (_, net) = build(&tiny());
    let x = Tensor::rand(0f32, 1., (2, 1, 16, 24), &Device::Cpu).unwrap();
    for train in [true, false] {
        let y = net.forward_t(&x, train).unwrap();
        assert_eq!(y.dims(), &[2, 3, 16, 24]);
    }
    assert_eq!(net.num_classes(), 3);
    assert_eq!(net.size_multiple(), 8);
}

#[test]
fn every_upsampling_kind_that_fits() {
    for up in [
        Upsampling::Nearest,
        Upsampling::Bilinear,
        Upsampling::TransposedConv,
    ] {
        let (_, net) = build(&XNetConfig {
            upsampling: up,
            ..tiny()
        });
        let x = Tensor::rand(0f32, 1., (1, 1, 16, 16), &Device::Cpu).unwrap();
        assert_eq!(
            net.forward_t(&x, true).unwrap().dims(),
            &[1, 3, 16, 16],
            "{up}"
        );
    }
    let bad = ModelConfig::XNet(XNetConfig {
        upsampling: Upsampling::IndexUnpool,
        ..tiny()
    });
    assert!(bad.validate().is_err());
}

#[test]
fn bad_inputs_are_errors_not_panics() {
    let (_, net) = build(&tiny());
    let x = Tensor::zeros((1, 1, 12, 16), DType::F32, &Device::Cpu).unwrap();
    let msg = net.forward_t(&x, false).unwrap_err().to_string();
    assert!(msg.contains("multiples of 8"), "{msg}");
    let x = Tensor::zeros((1, 2, 16, 16), DType::F32, &Device::Cpu).unwrap();
    assert!(net.forward_t(&x, false).is_err());
    for cfg in [
        XNetConfig {
            kernel_size: 4,
            ..tiny()
        },
        XNetConfig {
            base_width: 0,
            ..tiny()
        },
        XNetConfig {
            width_multiplier: -1.0,
            ..tiny()
        },
        XNetConfig {
            num_classes: 0,
            ..tiny()
        },
    ] {
        assert!(ModelConfig::XNet(cfg).validate().is_err());
    }
    let mut bad_bn = tiny();
    bad_bn.batch_norm.momentum = 0.99 + 1.0;
    assert!(ModelConfig::XNet(bad_bn).validate().is_err());
}

#[test]
fn config_json_round_trip_and_defaults() {
    let cfg = ModelConfig::XNet(XNetConfig {
        base_width: 16,
        kernel_size: 5,
        ..Default::default()
    });
    let s = serde_json::to_string(&cfg).unwrap();
    assert!(s.contains("\"arch\":\"xnet\""), "{s}");
    assert_eq!(serde_json::from_str::<ModelConfig>(&s).unwrap(), cfg);
    // Missing fields take the paper's defaults.
    let partial: ModelConfig = serde_json::from_str(r#"{"arch":"xnet","base_width":8}"#).unwrap();
    assert_eq!(
        partial,
        ModelConfig::XNet(XNetConfig {
            base_width: 8,
            ..Default::default()
        })
    );
}

#[test]
fn width_multiplier_scales_widths() {
    let c = XNetConfig {
        width_multiplier: 0.25,
        ..Default::default()
    };
    assert_eq!(c.widths(), [16, 32, 64, 128]);
}
