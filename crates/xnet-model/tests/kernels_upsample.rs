//! Nearest ×2 up-sampling against candle's `upsample_nearest2d` (forward and gradient).

use candle_core::{DType, Device, Tensor, Var};
use rand::{rngs::StdRng, RngExt, SeedableRng};
use xnet_model::kernels::{upsample_nearest2x, upsample_nearest2x_fast};

mod common;
use common::grads_of_weighted_sum;

fn rand_tensor(rng: &mut StdRng, shape: &[usize]) -> Tensor {
    let n: usize = shape.iter().product();
    let v: Vec<f32> = (0..n).map(|_| rng.random_range(-1.0..1.0)).collect();
    Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
}

#[test]
fn forward_and_gradient_match_candle() {
    let mut rng = StdRng::seed_from_u64(5);
    for &(n, c, h, w) in &[(1, 1, 1, 1), (2, 3, 4, 5), (1, 4, 7, 3)] {
        let x = Var::from_tensor(&rand_tensor(&mut rng, &[n, c, h, w])).unwrap();
        let r = rand_tensor(&mut rng, &[n, c, 2 * h, 2 * w]);
        let fast = upsample_nearest2x_fast(&x).unwrap();
        let reference = x.upsample_nearest2d(2 * h, 2 * w).unwrap();
        let diff = (&fast - &reference)
            .unwrap()
            .abs()
            .unwrap()
            .sum_all()
            .unwrap();
        assert_eq!(
            diff.to_scalar::<f32>().unwrap(),
            0.0,
            "forward {:?}",
            (n, c, h, w)
        );
        let dispatched = upsample_nearest2x(&x).unwrap();
        assert_eq!(dispatched.dims(), reference.dims());
        let gf = grads_of_weighted_sum(&fast, &r);
        let gr = grads_of_weighted_sum(&reference, &r);
        let err = (gf.get(&x).unwrap() - gr.get(&x).unwrap())
            .unwrap()
            .abs()
            .unwrap()
            .flatten_all()
            .unwrap()
            .max(0)
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!(err <= 1e-6, "gradient {:?} differs by {err}", (n, c, h, w));
    }
}

#[test]
fn f64_is_supported_and_other_dtypes_are_errors() {
    let x = Tensor::ones((1, 1, 2, 2), DType::F64, &Device::Cpu).unwrap();
    let y = upsample_nearest2x_fast(&x).unwrap();
    assert_eq!(y.dims(), &[1, 1, 4, 4]);
    let xu = Tensor::ones((1, 1, 2, 2), DType::U8, &Device::Cpu).unwrap();
    assert!(upsample_nearest2x_fast(&xu).is_err());
}
