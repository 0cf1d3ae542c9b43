//! U-Net, SegNet and DeepLab-lite: parameter counts (against the PyTorch twin where it has
//! the same network), shapes in train and eval mode, gradients reaching every variable,
//! validation errors.

use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use xnet_model::models::{
    count_trainable_parameters, DeepLabConfig, ModelConfig, SegNetConfig, Segmenter, UNetConfig,
    Upsampling,
};

fn build(cfg: &ModelConfig) -> (VarMap, Box<dyn Segmenter>) {
    let vm = VarMap::new();
    let vb = VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu);
    let net = cfg.build(vb).unwrap();
    (vm, net)
}

fn params(cfg: ModelConfig) -> usize {
    count_trainable_parameters(&build(&cfg).0)
}

#[test]
fn parameter_counts_match_the_pytorch_twin() {
    // xnet_torch.py: UNet 8,563,011 and SimpleSegNet 5,462,403 trainable parameters.
    let unet3 = UNetConfig {
        depth: 3,
        upsampling: Upsampling::Nearest,
        ..Default::default()
    };
    assert_eq!(params(ModelConfig::UNet(unet3)), 8_563_011);
    assert_eq!(
        params(ModelConfig::SegNet(SegNetConfig::simple())),
        5_462_403
    );
}

#[test]
fn forward_flops_match_the_pytorch_twin_hand_count() {
    // xnet_torch.conv_flops_by_hand(model, 1×1×128×128) (forward hooks on real shapes).
    let unet3 = UNetConfig {
        depth: 3,
        upsampling: Upsampling::Nearest,
        ..Default::default()
    };
    assert_eq!(
        ModelConfig::UNet(unet3).forward_flops(128, 128),
        24_788_336_640
    );
    assert_eq!(
        ModelConfig::SegNet(SegNetConfig::simple()).forward_flops(128, 128),
        10_292_822_016
    );
    let xnet = ModelConfig::XNet(xnet_model::models::XNetConfig::default());
    assert_eq!(xnet.forward_flops(128, 128), 27_210_547_200);
}

#[test]
fn parameter_counts_of_the_standard_networks() {
    // Expected values from an independent layer-by-layer count (docs/models.md).
    assert_eq!(params(ModelConfig::UNet(UNetConfig::default())), 31_042_499);
    let small = UNetConfig {
        base_width: 16,
        ..Default::default()
    };
    assert_eq!(params(ModelConfig::UNet(small)), 1_943_795);
    assert_eq!(
        params(ModelConfig::SegNet(SegNetConfig::basic())),
        1_409_795
    );
    assert_eq!(
        params(ModelConfig::SegNet(SegNetConfig::vgg16())),
        29_479_107
    );
}

fn tiny_configs() -> Vec<ModelConfig> {
    let mut v = Vec::new();
    for up in [
        Upsampling::TransposedConv,
        Upsampling::Nearest,
        Upsampling::Bilinear,
    ] {
        v.push(ModelConfig::UNet(UNetConfig {
            base_width: 4,
            depth: 2,
            upsampling: up,
            ..Default::default()
        }));
    }
    for up in [
        Upsampling::IndexUnpool,
        Upsampling::Nearest,
        Upsampling::Bilinear,
        Upsampling::TransposedConv,
    ] {
        let basic = SegNetConfig {
            upsampling: up,
            kernel_size: 3,
            ..SegNetConfig::basic().narrowed(16)
        };
        v.push(ModelConfig::SegNet(basic));
    }
    v.push(ModelConfig::SegNet(SegNetConfig::vgg16().narrowed(32)));
    v.push(ModelConfig::SegNet(SegNetConfig::simple().narrowed(16)));
    for up in [Upsampling::Bilinear, Upsampling::Nearest] {
        v.push(ModelConfig::DeepLab(DeepLabConfig {
            encoder_widths: vec![4, 8, 8],
            aspp_channels: 4,
            upsampling: up,
            ..Default::default()
        }));
    }
    v
}

#[test]
fn tiny_networks_run_and_every_variable_gets_a_gradient() {
    for cfg in tiny_configs() {
        cfg.validate().unwrap();
        let (vm, net) = build(&cfg);
        let m = net.size_multiple();
        let x = Tensor::rand(0f32, 1., (2, 1, 2 * m.max(8), m.max(8)), &Device::Cpu).unwrap();
        let y = net.forward_t(&x, false).unwrap();
        assert_eq!(y.dims(), &[2, 3, 2 * m.max(8), m.max(8)], "{cfg:?}");
        let y = net.forward_t(&x, true).unwrap();
        let loss = y.sqr().unwrap().mean_all().unwrap();
        let grads = loss.backward().unwrap();
        for (name, var) in vm.data().lock().unwrap().iter() {
            if name.contains("running_") {
                continue;
            }
            let g = grads.get(var.as_tensor());
            assert!(g.is_some(), "{}: no gradient for {name}", cfg.arch());
        }
        assert!(net.forward_flops(64, 64) > 0);
    }
}

#[test]
fn deeplab_rates_scale_with_the_input() {
    let c = DeepLabConfig::default();
    assert_eq!(c.size_multiple(), 8);
    // 264 px → 33 px encoder output: the reference rates.
    assert_eq!(c.rates_for(264, 264), [6, 12, 18]);
    assert_eq!(c.rates_for(200, 200), [5, 9, 14]);
    assert_eq!(c.rates_for(16, 16), [1, 1, 1]);
}

/// Rates that scale far beyond the encoder output run at its larger side, where every tap
/// of a dilated 3×3 but the centre reads zero padding either way. The configuration below
/// passes `validate`; its rates scale to 32768 on the 8 × 8 encoder output of a 16 × 16
/// input, and the padding of that dilation (a 17 GB plane) aborted the process.
#[test]
fn deeplab_rates_beyond_the_feature_map_run_at_its_size() {
    let probe: ModelConfig = serde_json::from_str(
        r#"{"arch": "deeplab", "encoder_widths": [1, 1], "aspp_channels": 1,
            "aspp_rates": [4096, 4096, 4096], "reference_feature_size": 1}"#,
    )
    .unwrap();
    probe.validate().unwrap();
    let ModelConfig::DeepLab(c) = &probe else {
        unreachable!()
    };
    assert_eq!(c.rates_for(16, 16), [32768; 3]);
    let (vm, net) = build(&probe);
    let x = Tensor::rand(0f32, 1., (2, 1, 16, 16), &Device::Cpu).unwrap();
    // The same weights with rates of the map's side: the same output, bit for bit.
    let at_side = ModelConfig::DeepLab(DeepLabConfig {
        aspp_rates: [8, 8, 8],
        reference_feature_size: 8,
        ..c.clone()
    });
    let twin = at_side
        .build(VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu))
        .unwrap();
    let values = |t: Tensor| t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    for train in [false, true] {
        let y = values(net.forward_t(&x, train).unwrap());
        assert!(y.iter().all(|v| v.is_finite()));
        assert_eq!(
            y,
            values(twin.forward_t(&x, train).unwrap()),
            "train {train}"
        );
    }
    // The default rates at 1024 px with reference_feature_size 1 (up to 2304 on 128²).
    let wide = DeepLabConfig {
        reference_feature_size: 1,
        ..Default::default()
    };
    assert_eq!(wide.rates_for(1024, 1024), [768, 1536, 2304]);
}

#[test]
fn invalid_configurations_are_rejected_with_reasons() {
    let cases: Vec<(ModelConfig, &str)> = vec![
        (
            ModelConfig::UNet(UNetConfig {
                depth: 0,
                ..Default::default()
            }),
            "depth",
        ),
        (
            ModelConfig::UNet(UNetConfig {
                upsampling: Upsampling::IndexUnpool,
                ..Default::default()
            }),
            "index_unpool",
        ),
        (
            ModelConfig::SegNet(SegNetConfig {
                upsampling: Upsampling::IndexUnpool,
                ..SegNetConfig::simple()
            }),
            "index_unpool",
        ),
        (
            ModelConfig::SegNet(SegNetConfig {
                decoder: vec![],
                ..SegNetConfig::basic()
            }),
            "decoder",
        ),
        (
            ModelConfig::SegNet(SegNetConfig {
                encoder: vec![vec![], vec![4]],
                decoder: vec![vec![4], vec![4]],
                ..SegNetConfig::basic()
            }),
            "no blocks",
        ),
        (
            ModelConfig::DeepLab(DeepLabConfig {
                upsampling: Upsampling::IndexUnpool,
                ..Default::default()
            }),
            "upsampling",
        ),
        (
            ModelConfig::DeepLab(DeepLabConfig {
                encoder_widths: vec![],
                ..Default::default()
            }),
            "encoder_widths",
        ),
    ];
    for (cfg, word) in cases {
        let msg = cfg.validate().unwrap_err().to_string();
        assert!(msg.contains(word), "{msg} should mention {word}");
        let vm = VarMap::new();
        assert!(cfg
            .build(VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu))
            .is_err());
    }
}

#[test]
fn configs_round_trip_through_json() {
    for cfg in tiny_configs() {
        let s = serde_json::to_string(&cfg).unwrap();
        assert_eq!(serde_json::from_str::<ModelConfig>(&s).unwrap(), cfg, "{s}");
    }
}
