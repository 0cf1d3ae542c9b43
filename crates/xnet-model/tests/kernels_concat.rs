//! Channel concatenation against candle's `Tensor::cat` (forward bit for bit, gradients),
//! and its errors.

use candle_core::{DType, Device, Tensor, Var};
use rand::{rngs::StdRng, RngExt, SeedableRng};
use xnet_model::kernels::concat_channels;

mod common;
use common::{grads_of_weighted_sum, max_abs_diff};

fn rand_tensor(rng: &mut StdRng, shape: &[usize], dtype: DType) -> Tensor {
    let n: usize = shape.iter().product();
    let v: Vec<f64> = (0..n).map(|_| rng.random_range(-1.0..1.0)).collect();
    Tensor::from_vec(v, shape, &Device::Cpu)
        .unwrap()
        .to_dtype(dtype)
        .unwrap()
}

/// `(n, c1, c2, h, w)`: single pixels, batches, and images larger than the copy chunk.
const CASES: &[(usize, usize, usize, usize, usize)] = &[
    (1, 1, 1, 1, 1),
    (2, 3, 5, 4, 7),
    (3, 1, 4, 2, 3),
    (1, 64, 64, 40, 50),
    (2, 70, 3, 33, 31),
];

#[test]
fn forward_and_gradients_match_candle_cat() {
    let mut rng = StdRng::seed_from_u64(21);
    for dtype in [DType::F32, DType::F64] {
        for &(n, c1, c2, h, w) in CASES {
            let a = Var::from_tensor(&rand_tensor(&mut rng, &[n, c1, h, w], dtype)).unwrap();
            let b = Var::from_tensor(&rand_tensor(&mut rng, &[n, c2, h, w], dtype)).unwrap();
            let fast = concat_channels(&a, &b).unwrap();
            let reference = Tensor::cat(&[a.as_tensor(), b.as_tensor()], 1).unwrap();
            assert_eq!(fast.dims(), reference.dims());
            assert_eq!(
                max_abs_diff(&fast, &reference),
                0.0,
                "{:?}",
                (n, c1, c2, h, w)
            );
            let r = rand_tensor(&mut rng, &[n, c1 + c2, h, w], dtype);
            let gf = grads_of_weighted_sum(&fast, &r);
            let gr = grads_of_weighted_sum(&reference, &r);
            for v in [&a, &b] {
                let d = max_abs_diff(gf.get(v).unwrap(), gr.get(v).unwrap());
                assert_eq!(d, 0.0, "gradient {:?}", (n, c1, c2, h, w));
            }
        }
    }
}

#[test]
fn non_contiguous_inputs_are_copied_first() {
    let mut rng = StdRng::seed_from_u64(22);
    // A transposed view as the second input.
    let a = rand_tensor(&mut rng, &[1, 2, 3, 4], DType::F32);
    let b = rand_tensor(&mut rng, &[1, 3, 4, 3], DType::F32)
        .transpose(2, 3)
        .unwrap();
    assert!(!b.is_contiguous());
    let fast = concat_channels(&a, &b).unwrap();
    let reference = Tensor::cat(&[&a, &b], 1).unwrap();
    assert_eq!(max_abs_diff(&fast, &reference), 0.0);
}

#[test]
fn mismatched_inputs_are_errors() {
    let dev = Device::Cpu;
    let a = Tensor::zeros((1, 2, 4, 4), DType::F32, &dev).unwrap();
    let taller = Tensor::zeros((1, 2, 5, 4), DType::F32, &dev).unwrap();
    let batch = Tensor::zeros((2, 2, 4, 4), DType::F32, &dev).unwrap();
    let f64s = Tensor::zeros((1, 2, 4, 4), DType::F64, &dev).unwrap();
    assert!(concat_channels(&a, &taller).is_err());
    assert!(concat_channels(&a, &batch).is_err());
    assert!(concat_channels(&a, &f64s).is_err());
}
