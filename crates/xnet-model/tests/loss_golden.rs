//! Losses against PyTorch (values and autograd gradients) and scipy (boundary weight map);
//! golden data made by `tests/golden/loss/make_loss_golden.py`.

use candle_core::{DType, Device, Tensor, Var};
use xnet_model::loss::{
    add_l2_gradient, boundary_weight_map, boundary_weight_maps, cross_entropy, focal, l2_penalty,
    soft_dice, weighted_cross_entropy, BoundaryWeightConfig, LossConfig, LossKind,
    PixelLossOptions,
};
use xnet_model::ModelError;

const GOLDEN: &str = include_str!("golden/loss/loss_golden.json");

struct Golden {
    json: serde_json::Value,
}

impl Golden {
    fn load() -> Self {
        Self {
            json: serde_json::from_str(GOLDEN).unwrap(),
        }
    }
    fn f64s(&self, path: &[&str]) -> Vec<f64> {
        let mut v = &self.json;
        for p in path {
            v = &v[*p];
        }
        match v.as_f64() {
            Some(x) => vec![x],
            None => v
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_f64().unwrap())
                .collect(),
        }
    }
    fn shape(&self) -> (usize, usize, usize, usize) {
        let s = self.f64s(&["shape"]);
        (s[0] as usize, s[1] as usize, s[2] as usize, s[3] as usize)
    }
    fn logits(&self) -> Var {
        Var::from_vec(self.f64s(&["logits"]), self.shape(), &Device::Cpu).unwrap()
    }
    fn labels(&self) -> Tensor {
        let (n, _, h, w) = self.shape();
        let l: Vec<u8> = self.f64s(&["labels"]).iter().map(|&v| v as u8).collect();
        Tensor::from_vec(l, (n, h, w), &Device::Cpu).unwrap()
    }
    fn class_weights(&self) -> Vec<f32> {
        self.f64s(&["class_weights"])
            .iter()
            .map(|&v| v as f32)
            .collect()
    }
    fn pixel_weights(&self) -> Tensor {
        let (n, _, h, w) = self.shape();
        Tensor::from_vec(self.f64s(&["pixel_weights"]), (n, h, w), &Device::Cpu).unwrap()
    }
}

/// Value and gradient w.r.t. the logits of `f`, compared with the golden case `name`.
fn check(g: &Golden, name: &str, f: impl Fn(&Tensor) -> xnet_model::Result<Tensor>) {
    let logits = g.logits();
    let loss = f(logits.as_tensor()).unwrap();
    let value = loss.to_scalar::<f64>().unwrap();
    let expected = g.f64s(&["cases", name, "value"]);
    // Class weights travel as f32, hence ~1e-7 relative differences.
    assert!(
        (value - expected[0]).abs() < 1e-6 * expected[0].abs().max(1.0),
        "{name}: {value} vs {}",
        expected[0]
    );
    let grads = loss.backward().unwrap();
    let grad = grads
        .get(logits.as_tensor())
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1::<f64>()
        .unwrap();
    let expected = g.f64s(&["cases", name, "grad"]);
    for (i, (a, b)) in grad.iter().zip(&expected).enumerate() {
        assert!((a - b).abs() < 1e-6, "{name}: grad[{i}] {a} vs {b}");
    }
}

#[test]
fn cross_entropy_matches_pytorch() {
    let g = Golden::load();
    let labels = g.labels();
    let plain = PixelLossOptions::default();
    check(&g, "ce", |x| cross_entropy(x, &labels, &plain));
    let weighted = PixelLossOptions {
        class_weights: Some(g.class_weights()),
        ignore_label: Some(255),
    };
    check(&g, "ce_weighted", |x| cross_entropy(x, &labels, &weighted));
    let pw = g.pixel_weights();
    check(&g, "ce_pixel_weighted", |x| {
        weighted_cross_entropy(x, &labels, &weighted, Some(&pw))
    });
}

#[test]
fn focal_matches_pytorch_formula() {
    let g = Golden::load();
    let labels = g.labels();
    let plain = PixelLossOptions::default();
    check(&g, "focal_g2", |x| focal(x, &labels, 2.0, &plain));
    check(&g, "focal_g0", |x| focal(x, &labels, 0.0, &plain));
    // γ = 0 is cross-entropy.
    check(&g, "ce", |x| focal(x, &labels, 0.0, &plain));
    let weighted = PixelLossOptions {
        class_weights: Some(g.class_weights()),
        ignore_label: Some(255),
    };
    check(&g, "focal_g2_weighted", |x| {
        focal(x, &labels, 2.0, &weighted)
    });
}

#[test]
fn dice_matches_pytorch_formula() {
    let g = Golden::load();
    let labels = g.labels();
    check(&g, "dice", |x| {
        soft_dice(x, &labels, 1.0, &PixelLossOptions::default())
    });
    let weighted = PixelLossOptions {
        class_weights: Some(g.class_weights()),
        ignore_label: Some(255),
    };
    check(&g, "dice_weighted", |x| {
        soft_dice(x, &labels, 1.0, &weighted)
    });
}

#[test]
fn loss_config_dispatches() {
    let g = Golden::load();
    let labels = g.labels();
    let cfg = LossConfig {
        kind: LossKind::CrossEntropyDice {
            dice_weight: 0.5,
            smooth: 1.0,
        },
        ..Default::default()
    };
    cfg.validate(3).unwrap();
    let v = cfg
        .data_loss(g.logits().as_tensor(), &labels, None)
        .unwrap()
        .to_scalar::<f64>()
        .unwrap();
    let expected =
        g.f64s(&["cases", "ce", "value"])[0] + 0.5 * g.f64s(&["cases", "dice", "value"])[0];
    assert!((v - expected).abs() < 1e-9);
    // f32 logits give the same value to f32 precision.
    let l32 = g.logits().as_tensor().to_dtype(DType::F32).unwrap();
    let v32 = cfg
        .data_loss(&l32, &labels, None)
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();
    assert!((v32 as f64 - expected).abs() < 1e-5);
    // Bad configurations name the field.
    let bad = LossConfig {
        pixel: PixelLossOptions {
            class_weights: Some(vec![1.0, 2.0]),
            ignore_label: Some(255),
        },
        ..Default::default()
    };
    let e = bad.validate(3).unwrap_err().to_string();
    assert!(e.contains("class_weights has 2 entries"), "{e}");
    let bad = LossConfig {
        kind: LossKind::Focal { gamma: -1.0 },
        ..Default::default()
    };
    assert!(bad.validate(3).is_err());
}

/// The gradient of the focal loss (the most intricate expression) by central finite
/// differences in f64.
#[test]
fn focal_gradient_matches_finite_differences() {
    let g = Golden::load();
    let labels = g.labels();
    let opts = PixelLossOptions {
        class_weights: Some(g.class_weights()),
        ignore_label: Some(255),
    };
    let base: Vec<f64> = g.f64s(&["logits"]);
    let shape = g.shape();
    let f = |v: &[f64]| -> f64 {
        let t = Tensor::from_slice(v, shape, &Device::Cpu).unwrap();
        focal(&t, &labels, 2.5, &opts)
            .unwrap()
            .to_scalar::<f64>()
            .unwrap()
    };
    let var = Var::from_slice(&base, shape, &Device::Cpu).unwrap();
    let loss = focal(var.as_tensor(), &labels, 2.5, &opts).unwrap();
    let grad = loss
        .backward()
        .unwrap()
        .get(var.as_tensor())
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1::<f64>()
        .unwrap();
    let eps = 1e-6;
    for i in (0..base.len()).step_by(7) {
        let mut p = base.clone();
        p[i] += eps;
        let mut m = base.clone();
        m[i] -= eps;
        let fd = (f(&p) - f(&m)) / (2.0 * eps);
        assert!(
            (fd - grad[i]).abs() < 1e-7,
            "logit {i}: autograd {} vs finite difference {fd}",
            grad[i]
        );
    }
}

#[test]
fn ignored_pixels_and_bad_labels() {
    let dev = Device::Cpu;
    let logits = Tensor::randn(0f32, 1.0, (1, 3, 2, 2), &dev).unwrap();
    // All ignored: 0 (PyTorch would give NaN), and still differentiable.
    let all_ignored = Tensor::new(&[[[255u8, 255], [255, 255]]], &dev).unwrap();
    for l in [
        cross_entropy(&logits, &all_ignored, &PixelLossOptions::default()).unwrap(),
        focal(&logits, &all_ignored, 2.0, &PixelLossOptions::default()).unwrap(),
    ] {
        assert_eq!(l.to_scalar::<f32>().unwrap(), 0.0);
    }
    // A label beyond the classes is an error naming it.
    let bad = Tensor::new(&[[[0u8, 1], [3, 255]]], &dev).unwrap();
    let e = cross_entropy(&logits, &bad, &PixelLossOptions::default()).unwrap_err();
    assert!(matches!(e, ModelError::InvalidInput(_)));
    assert!(e.to_string().contains("label 3"), "{e}");
    // 255 without an ignore label is a label too.
    let no_ignore = PixelLossOptions {
        class_weights: None,
        ignore_label: None,
    };
    let ok = Tensor::new(&[[[0u8, 1], [2, 255]]], &dev).unwrap();
    assert!(cross_entropy(&logits, &ok, &no_ignore).is_err());
    // Shape mismatch.
    let wrong = Tensor::zeros((1, 3, 2), DType::U8, &dev).unwrap();
    let e = cross_entropy(&logits, &wrong, &PixelLossOptions::default()).unwrap_err();
    assert!(e.to_string().contains("labels must be [N, H, W]"), "{e}");
    // Float labels are refused.
    let float_labels = Tensor::zeros((1, 2, 2), DType::F32, &dev).unwrap();
    assert!(cross_entropy(&logits, &float_labels, &PixelLossOptions::default()).is_err());
}

#[test]
fn l2_penalty_is_keras_convention_on_conv_kernels_only() {
    let dev = Device::Cpu;
    let kernel = Var::from_vec(vec![1.0f32, -2.0, 3.0, 0.5], (1, 1, 2, 2), &dev).unwrap();
    let bias = Var::from_vec(vec![10.0f32], 1, &dev).unwrap();
    let vars = vec![kernel.clone(), bias.clone()];
    let l2 = l2_penalty(&vars, 5e-4).unwrap().unwrap();
    let sum_sq = 1.0 + 4.0 + 9.0 + 0.25;
    assert!((l2.to_scalar::<f32>().unwrap() - 5e-4 * sum_sq).abs() < 1e-9);
    let grads = l2.backward().unwrap();
    let gk = grads
        .get(kernel.as_tensor())
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap();
    for (g, w) in gk.iter().zip([1.0f32, -2.0, 3.0, 0.5]) {
        assert!((g - 2.0 * 5e-4 * w).abs() < 1e-9, "d/dw λw² = 2λw");
    }
    assert!(
        grads.get(bias.as_tensor()).is_none(),
        "biases are not penalised"
    );
    assert!(l2_penalty(&vars, 0.0).unwrap().is_none());
}

/// `add_l2_gradient` after `data.backward()` gives the gradients of `data + l2_penalty`:
/// in place on CPU kernels that have a gradient, inserted for a kernel the data term does not
/// use, nothing for biases; f32 and f64.
#[test]
fn add_l2_gradient_equals_backprop_through_l2_penalty() {
    let dev = Device::Cpu;
    for dtype in [DType::F32, DType::F64] {
        let lambda = 5e-4;
        let vals = |n: usize, k: f64| -> Vec<f64> {
            (0..n).map(|i| ((i as f64 + 1.0) * k).sin()).collect()
        };
        let var = |v: Vec<f64>, shape: &[usize]| {
            Var::from_tensor(
                &Tensor::from_vec(v, shape, &dev)
                    .unwrap()
                    .to_dtype(dtype)
                    .unwrap(),
            )
            .unwrap()
        };
        let used = var(vals(2 * 3 * 3 * 3, 0.7), &[2, 3, 3, 3]);
        let unused = var(vals(4, 1.3), &[1, 1, 2, 2]);
        let bias = var(vals(2, 0.4), &[2]);
        let vars = vec![used.clone(), unused.clone(), bias.clone()];
        let data = |vars: &[Var]| {
            let w = vars[0].as_tensor();
            let b = vars[2].as_tensor();
            ((w.sqr().unwrap() * 0.3).unwrap().sum_all().unwrap()
                + (w.sin().unwrap().sum_all().unwrap() * b.sum_all().unwrap()).unwrap())
            .unwrap()
        };
        let reference = {
            let l2 = l2_penalty(&vars, lambda)
                .unwrap()
                .unwrap()
                .to_dtype(dtype)
                .unwrap();
            (data(&vars) + l2).unwrap().backward().unwrap()
        };
        let mut direct = data(&vars).backward().unwrap();
        add_l2_gradient(&mut direct, &vars, lambda).unwrap();
        // f64: `l2_penalty` sums in f32, so the graph's λ is λ rounded to f32 (≈ 3e-8 relative
        // on the L2 part); the direct gradient uses λ itself.
        let tol = if dtype == DType::F32 { 1e-6 } else { 1e-9 };
        for (name, v) in [("used", &used), ("unused", &unused), ("bias", &bias)] {
            let r = reference.get(v.as_tensor()).map(|t| {
                t.to_dtype(DType::F64)
                    .unwrap()
                    .flatten_all()
                    .unwrap()
                    .to_vec1::<f64>()
                    .unwrap()
            });
            let d = direct.get(v.as_tensor()).map(|t| {
                t.to_dtype(DType::F64)
                    .unwrap()
                    .flatten_all()
                    .unwrap()
                    .to_vec1::<f64>()
                    .unwrap()
            });
            assert_eq!(
                r.is_some(),
                d.is_some(),
                "{name} {dtype:?}: gradient presence"
            );
            if let (Some(r), Some(d)) = (r, d) {
                for (a, b) in r.iter().zip(&d) {
                    assert!(
                        (a - b).abs() <= tol * a.abs().max(1.0),
                        "{name} {dtype:?}: {a} vs {b}"
                    );
                }
            }
        }
    }
}

fn golden_map(g: &Golden, key: &str) -> Vec<f64> {
    g.f64s(&["boundary", key])
}

#[test]
fn boundary_weight_map_matches_scipy() {
    let g = Golden::load();
    let h = g.json["boundary"]["height"].as_u64().unwrap() as usize;
    let w = g.json["boundary"]["width"].as_u64().unwrap() as usize;
    let labels: Vec<u8> = golden_map(&g, "labels").iter().map(|&v| v as u8).collect();
    let ours =
        boundary_weight_map(&labels, h, w, &BoundaryWeightConfig::default(), Some(255)).unwrap();
    for (i, (a, b)) in ours.iter().zip(golden_map(&g, "weights")).enumerate() {
        assert!(
            ((*a as f64) - b).abs() < 1e-4,
            "pixel (x={}, y={}): {a} vs {b}",
            i % w,
            i / w
        );
    }
    let cfg = BoundaryWeightConfig {
        w0: 5.0,
        sigma: 3.0,
        balance_classes: true,
        ..Default::default()
    };
    let ours = boundary_weight_map(&labels, h, w, &cfg, Some(255)).unwrap();
    for (i, (a, b)) in ours
        .iter()
        .zip(golden_map(&g, "weights_balanced_w0_5_sigma_3"))
        .enumerate()
    {
        assert!(((*a as f64) - b).abs() < 1e-4, "pixel {i}: {a} vs {b}");
    }
    // The gap between objects is weighted above the open beam far away.
    assert!(ours.iter().cloned().fold(0.0f32, f32::max) > 1.5);
}

#[test]
fn boundary_weight_map_edge_cases() {
    let cfg = BoundaryWeightConfig::default();
    // No object, or one object: no border term.
    assert!(boundary_weight_map(&[0; 12], 3, 4, &cfg, Some(255))
        .unwrap()
        .iter()
        .all(|&v| v == 1.0));
    let one = [0u8, 1, 1, 0];
    assert_eq!(
        boundary_weight_map(&one, 1, 4, &cfg, Some(255)).unwrap(),
        vec![1.0; 4]
    );
    // Wrong size and bad parameters are errors.
    assert!(boundary_weight_map(&[0; 5], 2, 3, &cfg, Some(255)).is_err());
    let bad = BoundaryWeightConfig { sigma: 0.0, ..cfg };
    assert!(boundary_weight_map(&[0; 4], 2, 2, &bad, Some(255)).is_err());
    // Sizes whose pixel count overflows are refused (the product panicked in debug builds
    // and wrapped in release: 2^33 × 2^31 = 2^64 to 0, which empty labels matched).
    let overflows = |r: xnet_model::Result<Vec<f32>>| matches!(r, Err(ModelError::InvalidInput(m)) if m.contains("overflows"));
    assert!(overflows(boundary_weight_map(
        &[],
        1 << 33,
        1 << 31,
        &cfg,
        Some(255)
    )));
    assert!(overflows(boundary_weight_map(
        &[],
        usize::MAX,
        3,
        &cfg,
        None
    )));
    for (n, h, w) in [
        (1, 1 << 33, 1 << 31),
        (1 << 33, 1 << 31, 1),
        (5, 1 << 62, 1),
    ] {
        assert!(
            overflows(boundary_weight_maps(&[], n, h, w, &cfg, Some(255))),
            "{n} × {h} × {w}"
        );
    }
}
