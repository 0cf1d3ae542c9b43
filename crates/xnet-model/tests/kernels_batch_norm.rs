//! The fused training-mode batch norm + ReLU against `candle_nn::BatchNorm` + `relu`:
//! output, running statistics and gradients (f32), and central differences (f64).

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::{BatchNorm, ModuleT};
use rand::{rngs::StdRng, RngExt, SeedableRng};
use xnet_model::kernels::batch_norm_relu_train;

mod common;
use common::{grads_of_weighted_sum, max_abs_diff as max_diff};

fn rand_vec(rng: &mut StdRng, n: usize, lo: f64, hi: f64) -> Vec<f64> {
    (0..n).map(|_| rng.random_range(lo..hi)).collect()
}

fn tensor(v: Vec<f64>, shape: &[usize], dtype: DType) -> Tensor {
    Tensor::from_vec(v, shape, &Device::Cpu)
        .and_then(|t| t.to_dtype(dtype))
        .unwrap()
}

/// A BatchNorm whose gamma/beta are variables (so gradients reach them) and whose running
/// statistics are variables (as `candle_nn::batch_norm` makes them).
fn make_bn(rng: &mut StdRng, c: usize, dtype: DType) -> (BatchNorm, Var, Var) {
    let gamma = Var::from_tensor(&tensor(rand_vec(rng, c, 0.5, 1.5), &[c], dtype)).unwrap();
    let beta = Var::from_tensor(&tensor(rand_vec(rng, c, -0.5, 0.5), &[c], dtype)).unwrap();
    let mean = Var::from_tensor(&tensor(rand_vec(rng, c, -0.1, 0.1), &[c], dtype)).unwrap();
    let var = Var::from_tensor(&tensor(rand_vec(rng, c, 0.9, 1.1), &[c], dtype)).unwrap();
    let bn = BatchNorm::new_with_momentum(
        c,
        mean.as_tensor().clone(),
        var.as_tensor().clone(),
        gamma.as_tensor().clone(),
        beta.as_tensor().clone(),
        1e-3,
        0.01,
    )
    .unwrap();
    (bn, gamma, beta)
}

#[test]
fn matches_candle_batch_norm_and_relu() {
    let mut rng = StdRng::seed_from_u64(11);
    for &(n, c, h, w) in &[(1, 3, 5, 4), (4, 2, 3, 3), (2, 5, 1, 7)] {
        for relu in [false, true] {
            let mut r1 = StdRng::seed_from_u64(100 + c as u64);
            let mut r2 = StdRng::seed_from_u64(100 + c as u64);
            let (bn_fast, g_fast, b_fast) = make_bn(&mut r1, c, DType::F32);
            let (bn_ref, g_ref, b_ref) = make_bn(&mut r2, c, DType::F32);
            let x = Var::from_tensor(&tensor(
                rand_vec(&mut rng, n * c * h * w, -2.0, 3.0),
                &[n, c, h, w],
                DType::F32,
            ))
            .unwrap();
            let weights = tensor(
                rand_vec(&mut rng, n * c * h * w, -1.0, 1.0),
                &[n, c, h, w],
                DType::F32,
            );
            let y_fast = batch_norm_relu_train(&x, &bn_fast, relu).unwrap();
            let mut y_ref = bn_ref.forward_t(&x, true).unwrap();
            if relu {
                y_ref = y_ref.relu().unwrap();
            }
            assert!(
                max_diff(&y_fast, &y_ref) <= 1e-4,
                "output {:?}",
                (n, c, h, w)
            );
            assert!(max_diff(bn_fast.running_mean(), bn_ref.running_mean()) <= 1e-6);
            assert!(max_diff(bn_fast.running_var(), bn_ref.running_var()) <= 1e-6);
            let gf = grads_of_weighted_sum(&y_fast, &weights);
            let gr = grads_of_weighted_sum(&y_ref, &weights);
            let dx = max_diff(gf.get(&x).unwrap(), gr.get(&x).unwrap());
            let dg = max_diff(gf.get(&g_fast).unwrap(), gr.get(&g_ref).unwrap());
            let db = max_diff(gf.get(&b_fast).unwrap(), gr.get(&b_ref).unwrap());
            assert!(
                dx <= 1e-4 && dg <= 1e-4 && db <= 1e-4,
                "grads {dx} {dg} {db} at {:?} relu {relu}",
                (n, c, h, w)
            );
        }
    }
}

#[test]
fn gradients_match_finite_differences_f64() {
    let mut rng = StdRng::seed_from_u64(12);
    let (n, c, h, w) = (2, 2, 3, 2);
    let (bn, gamma, beta) = make_bn(&mut rng, c, DType::F64);
    // Momentum 0 keeps the running statistics fixed across the many evaluations below.
    let bn = BatchNorm::new_with_momentum(
        c,
        bn.running_mean().clone(),
        bn.running_var().clone(),
        gamma.as_tensor().clone(),
        beta.as_tensor().clone(),
        1e-3,
        0.0,
    )
    .unwrap();
    let xv = rand_vec(&mut rng, n * c * h * w, -2.0, 2.0);
    let weights = tensor(
        rand_vec(&mut rng, n * c * h * w, -1.0, 1.0),
        &[n, c, h, w],
        DType::F64,
    );
    let x = Var::from_tensor(&tensor(xv.clone(), &[n, c, h, w], DType::F64)).unwrap();
    // No ReLU: its kink makes finite differences ill-defined.
    let loss = |x: &Tensor| {
        (batch_norm_relu_train(x, &bn, false).unwrap() * &weights)
            .unwrap()
            .sum_all()
            .unwrap()
    };
    let grads = loss(&x).backward().unwrap();
    let dx = grads
        .get(&x)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1::<f64>()
        .unwrap();
    let eps = 1e-6;
    for i in 0..xv.len() {
        let mut p = xv.clone();
        p[i] += eps;
        let mut m = xv.clone();
        m[i] -= eps;
        let fp = loss(&tensor(p, &[n, c, h, w], DType::F64))
            .to_scalar::<f64>()
            .unwrap();
        let fm = loss(&tensor(m, &[n, c, h, w], DType::F64))
            .to_scalar::<f64>()
            .unwrap();
        let numeric = (fp - fm) / (2.0 * eps);
        assert!(
            (numeric - dx[i]).abs() <= 1e-6 * numeric.abs().max(1.0),
            "x[{i}]: {numeric} vs {}",
            dx[i]
        );
    }
    for v in [&gamma, &beta] {
        assert!(grads.get(v).is_some());
    }
}
