//! Tests of inference: tiling, flips, temperature.

use super::temperature::{exp_f32, ln_f32, rescale_temperature};
use super::tiling::{axis_window, resize_bilinear, tile_origins};
use super::*;

/// Found by the `checkpoint` fuzz target: one weight of 1.7e38 in an otherwise sound
/// checkpoint made every probability NaN, and `predict_proba` returned them as `Ok`.
#[test]
fn non_finite_output_is_refused() {
    use candle_core::{DType, Device, Tensor};
    use candle_nn::{VarBuilder, VarMap};
    let dev = Device::Cpu;
    let varmap = VarMap::new();
    let cfg = crate::ModelConfig::XNet(crate::models::XNetConfig {
        base_width: 2,
        ..Default::default()
    });
    let model = cfg
        .build(VarBuilder::from_varmap(&varmap, DType::F32, &dev))
        .unwrap();
    let (h, w) = (16, 16);
    let image: Vec<f32> = (0..h * w).map(|i| (i % 13) as f32 / 13.0).collect();
    let opts = InferenceOptions::default();
    for var in varmap.all_vars() {
        var.set(&Tensor::full(0.5f32, var.shape(), &dev).unwrap())
            .unwrap();
    }
    let vars = varmap.data().lock().unwrap();
    let conv = &vars["conv3.conv.weight"];
    let mut values = vec![0.5f32; conv.elem_count()];
    values[0] = 1.7e38;
    conv.set(&Tensor::from_vec(values, conv.shape(), &dev).unwrap())
        .unwrap();
    drop(vars);
    let e = predict_proba(model.as_ref(), &image, h, w, &opts).unwrap_err();
    assert!(matches!(e, ModelError::InvalidInput(_)), "{e}");
    assert!(e.to_string().contains("is not finite"), "{e}");
}
#[test]
fn ln_and_exp_are_within_a_few_ulps() {
    // ln over (0, 1] and a bit above, spread over every binade.
    let mut worst_ln = 0f64;
    let mut x = f32::MIN_POSITIVE;
    while x < 4.0 {
        for step in [1.0f32, 1.0001, 1.37, 1.9999] {
            let v = x * step;
            let want = f64::from(v).ln();
            let got = f64::from(ln_f32(v));
            worst_ln = worst_ln.max((got - want).abs() / want.abs().max(1.0));
        }
        x *= 2.0;
    }
    assert!(worst_ln < 1e-6, "ln: worst error {worst_ln:e}");
    assert_eq!(ln_f32(0.0), f32::NEG_INFINITY);
    assert_eq!(ln_f32(-1.0), f32::NEG_INFINITY);
    assert_eq!(ln_f32(1.0), 0.0);
    // exp over [-87, 0], relative error.
    let mut worst_exp = 0f64;
    for i in 0..=86_990 {
        let v = -(i as f32) * 1e-3;
        let want = f64::from(v).exp();
        let got = f64::from(exp_f32(v));
        worst_exp = worst_exp.max((got - want).abs() / want);
    }
    assert!(worst_exp < 1e-6, "exp: worst relative error {worst_exp:e}");
    assert_eq!(exp_f32(0.0), 1.0);
    assert_eq!(exp_f32(-100.0), 0.0);
    assert_eq!(exp_f32(f32::NEG_INFINITY), 0.0);
}

#[test]
fn temperature_rescaling_is_the_softmax_of_scaled_logits() {
    let softmax = |z: &[f64]| {
        let m = z.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let e: Vec<f64> = z.iter().map(|v| (v - m).exp()).collect();
        let s: f64 = e.iter().sum();
        e.into_iter().map(|v| v / s).collect::<Vec<f64>>()
    };
    // Three pixels of three classes, class-major; the last pixel's logits are extreme.
    let logits = [[2.0, -1.0, 0.5], [0.1, 0.2, 0.3], [40.0, -40.0, 0.0]];
    for t in [0.5, 1.0, 1.7, 4.0] {
        let mut probs = vec![0f32; 9];
        for (i, z) in logits.iter().enumerate() {
            for (k, p) in softmax(z).iter().enumerate() {
                probs[k * 3 + i] = *p as f32;
            }
        }
        rescale_temperature(&mut probs, 3, t);
        for (i, z) in logits.iter().enumerate() {
            let scaled: Vec<f64> = z.iter().map(|v| v / t).collect();
            for (k, want) in softmax(&scaled).iter().enumerate() {
                let got = f64::from(probs[k * 3 + i]);
                assert!(
                    (got - want).abs() < 1e-6,
                    "T {t} pixel {i} class {k}: {got} vs {want}"
                );
            }
        }
    }
    // Underflowed zeros stay zero and the rest still sums to one.
    let mut probs = vec![1.0f32, 0.0];
    rescale_temperature(&mut probs, 2, 3.0);
    assert_eq!(probs, vec![1.0, 0.0]);
}

/// NaN, infinite or negative probabilities are refused, naming the first bad pixel (the
/// lowest pixel index, then the lowest class), at every temperature, and the buffer is
/// left as it was; `-0.0` and all-zero pixels are accepted.
#[test]
fn temperature_refuses_non_finite_and_negative_probabilities() {
    // The case the review found: [NaN, 0.5] came out as [0, 1].
    for t in [0.5, 1.0, 2.0] {
        let mut p = [f32::NAN, 0.5];
        let e = apply_temperature(&mut p, 2, t).unwrap_err().to_string();
        assert!(
            e.contains("class 0 of pixel 0") && e.contains("NaN"),
            "T {t}: {e}"
        );
        assert!(p[0].is_nan() && p[1] == 0.5, "T {t}: {p:?}");
    }
    // Three classes over more pixels than one block: the first bad pixel by index wins,
    // whichever class plane (and block) holds it.
    let plane = 20_000;
    let fresh = || -> Vec<f32> {
        (0..3 * plane)
            .map(|i| [0.2f32, 0.3, 0.5][i / plane])
            .collect()
    };
    for t in [0.7, 1.0] {
        for (bad, want) in [
            (f32::NAN, "NaN"),
            (f32::INFINITY, "inf"),
            (f32::NEG_INFINITY, "-inf"),
            (-0.25, "-0.25"),
        ] {
            let mut probs = fresh();
            probs[2 * plane + 15_000] = bad;
            probs[15_001] = bad;
            probs[17_000] = bad;
            probs[plane + 19_999] = bad;
            let before = probs.clone();
            let e = apply_temperature(&mut probs, 3, t).unwrap_err().to_string();
            assert!(
                e.contains(&format!("class 2 of pixel 15000 is {want}")),
                "T {t}: {e}"
            );
            let same = probs
                .iter()
                .zip(&before)
                .all(|(a, b)| a.to_bits() == b.to_bits());
            assert!(same, "T {t}: the probabilities were changed");
        }
    }
    // Negative zero is zero, and an all-zero pixel stays all zero.
    let mut p = [-0.0f32, 0.0, 1.0, 0.0];
    apply_temperature(&mut p, 2, 2.0).unwrap();
    assert_eq!(p, [0.0, 0.0, 1.0, 0.0]);
}

#[test]
fn windows_cover_every_pixel() {
    for (size, extent, overlap) in [(100, 32, 8), (65, 32, 16), (300, 64, 63), (33, 32, 0)] {
        let origins = tile_origins(size, extent, overlap);
        let mut total = vec![0f32; size];
        for &o in &origins {
            for (i, wv) in axis_window(o, extent, size, overlap)
                .into_iter()
                .enumerate()
            {
                if o + i < size {
                    total[o + i] += wv;
                }
            }
        }
        assert!(
            total.iter().all(|&t| t > 0.0),
            "{size} {extent} {overlap}: {total:?}"
        );
    }
}

#[test]
fn bilinear_identity_and_constant() {
    let src: Vec<f32> = (0..12).map(|v| v as f32).collect();
    assert_eq!(resize_bilinear(&src, 3, 4, 3, 4), src);
    let c = resize_bilinear(&[2.0; 6], 2, 3, 7, 5);
    assert!(c.iter().all(|&v| (v - 2.0).abs() < 1e-6));
}
