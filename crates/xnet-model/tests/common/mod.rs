//! Helpers shared by the integration tests (each test crate uses a subset).
#![allow(dead_code)]

use candle_core::backprop::GradStore;
use candle_core::{DType, Tensor};

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
