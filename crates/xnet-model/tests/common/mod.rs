//! Helpers shared by the integration tests (each test crate uses a subset).
#![allow(dead_code)]

use candle_core::backprop::GradStore;
use candle_core::{DType, Device, Tensor};
use candle_nn::VarMap;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

/// The gradients of `Σ y ⊙ weights`, i.e. of every input of `y` for an output gradient of
/// `weights`.
pub fn grads_of_weighted_sum(y: &Tensor, weights: &Tensor) -> GradStore {
    (y * weights)
        .unwrap()
        .sum_all()
        .unwrap()
        .backward()
        .unwrap()
}

/// Largest absolute element-wise difference of two tensors of the same shape, as `f64`.
pub fn max_abs_diff(a: &Tensor, b: &Tensor) -> f64 {
    assert_eq!(a.dims(), b.dims());
    (a - b)
        .unwrap()
        .abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_dtype(DType::F64)
        .unwrap()
        .to_scalar::<f64>()
        .unwrap()
}

/// Sets every batch norm's γ (`*bn.weight`) and β (`*bn.bias`) in `varmap` to values drawn
/// in [0.5, 1.5) from `seed`, away from their 1 and 0 start: a kernel or a folding that
/// mishandled them would otherwise match its reference by accident.
pub fn draw_batch_norm_affine(varmap: &VarMap, seed: u64) {
    let mut rng = StdRng::seed_from_u64(seed);
    let data = varmap.data().lock().unwrap();
    let mut names: Vec<&String> = data.keys().collect();
    names.sort();
    for name in names {
        if name.ends_with("bn.weight") || name.ends_with("bn.bias") {
            let var = &data[name];
            let values: Vec<f32> = (0..var.elem_count())
                .map(|_| rng.random_range(0.5f32..1.5))
                .collect();
            let t = Tensor::from_vec(values, var.elem_count(), &Device::Cpu).unwrap();
            var.set(&t.to_dtype(var.dtype()).unwrap()).unwrap();
        }
    }
}

/// Paths (`a.b`) of the float values in a JSON value, depth first: the fields a "every float
/// field refuses a huge value" test walks, found from a config serialised with its defaults
/// so that a field added later is covered too.
pub fn float_paths(v: &serde_json::Value, prefix: &str, out: &mut Vec<String>) {
    match v {
        serde_json::Value::Object(map) => {
            for (k, x) in map {
                let path = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                float_paths(x, &path, out);
            }
        }
        serde_json::Value::Number(n) if n.is_f64() => out.push(prefix.to_string()),
        _ => {}
    }
}
