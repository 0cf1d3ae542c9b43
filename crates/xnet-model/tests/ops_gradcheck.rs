//! Finite-difference gradient checks (f64, tiny tensors) for every custom op, and agreement
//! of the CPU custom ops with their stock-candle twins (the path non-CPU devices take).

use candle_core::{DType, Device, Tensor, Var};
use xnet_model::ops::{
    max_pool2d_indices, max_pool2d_with_indices, max_pool2d_with_indices_generic, max_unpool2d,
    max_unpool2d_generic, pool_gather, resize_bilinear, resize_bilinear_generic,
};

/// Central finite differences of `sum(f(x) · r)` against candle's backward.
fn grad_check(x0: &Tensor, f: &dyn Fn(&Tensor) -> candle_core::Result<Tensor>) {
    let x = Var::from_tensor(x0).unwrap();
    let y = f(x.as_tensor()).unwrap();
    let r = Tensor::randn(0f64, 1., y.shape(), &Device::Cpu).unwrap();
    let loss = (y * &r).unwrap().sum_all().unwrap();
    let grads = loss.backward().unwrap();
    let g = grads
        .get(x.as_tensor())
        .expect("no gradient")
        .flatten_all()
        .unwrap()
        .to_vec1::<f64>()
        .unwrap();
    let base = x0.flatten_all().unwrap().to_vec1::<f64>().unwrap();
    let eps = 1e-6;
    let eval = |v: &[f64]| -> f64 {
        let t = Tensor::from_vec(v.to_vec(), x0.shape(), &Device::Cpu).unwrap();
        (f(&t).unwrap() * &r)
            .unwrap()
            .sum_all()
            .unwrap()
            .to_scalar::<f64>()
            .unwrap()
    };
    for i in 0..base.len() {
        let mut p = base.clone();
        p[i] += eps;
        let mut m = base.clone();
        m[i] -= eps;
        let fd = (eval(&p) - eval(&m)) / (2.0 * eps);
        assert!(
            (fd - g[i]).abs() < 1e-6,
            "element {i}: finite difference {fd} vs backward {}",
            g[i]
        );
    }
}

fn randn(shape: &[usize]) -> Tensor {
    Tensor::randn(0f64, 1., shape, &Device::Cpu).unwrap()
}

#[test]
fn bilinear_gradient_matches_finite_differences() {
    for (shape, out) in [
        ([1, 2, 3, 4], (6, 8)),
        ([2, 1, 5, 3], (3, 7)),
        ([1, 1, 4, 4], (2, 2)),
        ([1, 1, 1, 2], (3, 5)),
    ] {
        let x = randn(&shape);
        grad_check(&x, &|t| resize_bilinear(t, out.0, out.1));
        grad_check(&x, &|t| resize_bilinear_generic(t, out.0, out.1));
    }
}

#[test]
fn pool_and_unpool_gradients_match_finite_differences() {
    // Distinct values (randn) so that a ±1e-6 step never changes the arg-max.
    for shape in [[1, 2, 4, 6], [2, 1, 5, 5]] {
        let x = randn(&shape);
        grad_check(&x, &|t| Ok(max_pool2d_with_indices(t, 2)?.0));
        grad_check(&x, &|t| Ok(max_pool2d_with_indices_generic(t, 2)?.0));
        let (v, idx) = max_pool2d_with_indices(&x, 2).unwrap();
        let size = (shape[2], shape[3]);
        grad_check(&v, &|t| max_unpool2d(t, &idx, size));
        grad_check(&v, &|t| max_unpool2d_generic(t, &idx, size));
        grad_check(&x, &|t| pool_gather(t, &idx));
    }
}

#[test]
fn custom_ops_agree_with_stock_candle_twins() {
    let x = Tensor::randn(0f32, 1., (2, 3, 9, 10), &Device::Cpu).unwrap();
    let (v, i) = max_pool2d_with_indices(&x, 2).unwrap();
    let (vg, ig) = max_pool2d_with_indices_generic(&x, 2).unwrap();
    assert_eq!(
        i.flatten_all().unwrap().to_vec1::<u32>().unwrap(),
        ig.flatten_all().unwrap().to_vec1::<u32>().unwrap()
    );
    assert_eq!(
        v.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
        vg.flatten_all().unwrap().to_vec1::<f32>().unwrap()
    );
    // Values equal candle's own max_pool2d.
    let vc = x.max_pool2d(2).unwrap();
    assert_eq!(
        v.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
        vc.flatten_all().unwrap().to_vec1::<f32>().unwrap()
    );
    let u = max_unpool2d(&v, &i, (9, 10)).unwrap();
    let ug = max_unpool2d_generic(&v, &i, (9, 10)).unwrap();
    assert_eq!(
        u.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
        ug.flatten_all().unwrap().to_vec1::<f32>().unwrap()
    );
    let b = resize_bilinear(&x, 13, 4).unwrap();
    let bg = resize_bilinear_generic(&x, 13, 4).unwrap();
    let d = (b - bg)
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();
    assert!(d < 1e-5, "{d}");
}

#[test]
fn ties_pick_the_first_maximum_and_one_gradient_per_window() {
    let x = Tensor::zeros((1, 1, 2, 2), DType::F64, &Device::Cpu).unwrap();
    let idx = max_pool2d_indices(&x, 2).unwrap();
    assert_eq!(
        idx.flatten_all().unwrap().to_vec1::<u32>().unwrap(),
        vec![0]
    );
    let xv = Var::from_tensor(&x).unwrap();
    let (v, _) = max_pool2d_with_indices(xv.as_tensor(), 2).unwrap();
    let g = v.sum_all().unwrap().backward().unwrap();
    let g = g
        .get(xv.as_tensor())
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1::<f64>()
        .unwrap();
    assert_eq!(g, vec![1.0, 0.0, 0.0, 0.0]);
}

#[test]
fn bad_arguments_are_errors() {
    let x = randn(&[1, 1, 3, 3]);
    assert!(max_pool2d_with_indices(&x, 4).is_err());
    assert!(max_pool2d_with_indices(&x, 0).is_err());
    assert!(resize_bilinear(&x, 0, 3).is_err());
    let (v, i) = max_pool2d_with_indices(&randn(&[1, 1, 4, 4]), 2).unwrap();
    // Indices of a 4×4 plane do not fit a 2×2 output.
    assert!(max_unpool2d(&v, &i, (2, 2)).is_err());
    assert!(max_unpool2d(&v, &i.narrow(3, 0, 1).unwrap(), (4, 4)).is_err());
    assert!(resize_bilinear(&randn(&[3, 3]), 2, 2).is_err());
    // Output sizes whose element count overflows (the plane H·W panicked in debug builds).
    for size in [(usize::MAX, 2), (1 << 32, 1 << 32), (2, usize::MAX)] {
        for unpool in [max_unpool2d, max_unpool2d_generic] {
            let e = unpool(&v, &i, size).unwrap_err().to_string();
            assert!(
                e.contains("more elements than a usize counts"),
                "{size:?}: {e}"
            );
        }
    }
    // The generic path's u32 positions would wrap beyond 2³² elements.
    let e = max_unpool2d_generic(&v, &i, (1 << 20, 1 << 13))
        .unwrap_err()
        .to_string();
    assert!(e.contains("u32 positions"), "{e}");
}

#[test]
fn cuda_twins_match_cpu_kernels_when_a_gpu_is_present() {
    if !candle_core::utils::cuda_is_available() {
        eprintln!("skipped: built without the `cuda` feature or no GPU present");
        return;
    }
    let dev = Device::new_cuda(0).unwrap();
    let x = Tensor::randn(0f32, 1., (2, 3, 10, 12), &Device::Cpu).unwrap();
    let xg = x.to_device(&dev).unwrap();
    let (v, i) = max_pool2d_with_indices(&x, 2).unwrap();
    let (vg, ig) = max_pool2d_with_indices(&xg, 2).unwrap();
    let back = |t: &Tensor| t.to_device(&Device::Cpu).unwrap().flatten_all().unwrap();
    assert_eq!(
        i.flatten_all().unwrap().to_vec1::<u32>().unwrap(),
        back(&ig).to_vec1::<u32>().unwrap()
    );
    assert_eq!(
        v.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
        back(&vg).to_vec1::<f32>().unwrap()
    );
    let u = max_unpool2d(&v, &i, (10, 12)).unwrap();
    let ug = max_unpool2d(&vg, &ig, (10, 12)).unwrap();
    assert_eq!(
        u.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
        back(&ug).to_vec1::<f32>().unwrap()
    );
    let b = resize_bilinear(&x, 7, 25).unwrap();
    let bg = back(&resize_bilinear(&xg, 7, 25).unwrap());
    let d = (b.flatten_all().unwrap() - bg)
        .unwrap()
        .abs()
        .unwrap()
        .max(0)
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();
    assert!(d < 1e-5, "{d}");
}
