//! The fast convolution against stock candle (forward and gradients, f32) and against
//! central finite differences (f64).

use candle_core::{DType, Device, Tensor, Var};
use rand::{rngs::StdRng, RngExt, SeedableRng};
use xnet_model::kernels::{
    conv2d, conv2d_fast, conv2d_fast_path, conv2d_fast_weight_grad, conv2d_fast_weight_grad_path,
    conv2d_reference, fold_batch_norm,
};

mod common;
use common::max_abs_diff;

fn rand_tensor(rng: &mut StdRng, shape: &[usize], dtype: DType) -> Tensor {
    let n: usize = shape.iter().product();
    let v: Vec<f64> = (0..n).map(|_| rng.random_range(-1.0..1.0)).collect();
    Tensor::from_vec(v, shape, &Device::Cpu)
        .and_then(|t| t.to_dtype(dtype))
        .unwrap()
}

fn max_abs(a: &Tensor) -> f64 {
    a.abs()
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

/// `(n, c_in, c_out, h, w, k, dilation)`: odd and even sizes, 1×1 to 5×5, dilated, a
/// single row, and more channels than pixels; below 64 channels the direct shifted-GEMM
/// path runs, from 64 channels in and out (3×3, no dilation) Winograd F(2×2, 3×3), with
/// enough 4×4 tiles F(4×4, 3×3) ([`path_choice_follows_the_measured_rule`]).
/// `XNET_CONV_PATH=direct|f23|f43 cargo test --test kernels_conv` runs every 3×3,
/// undilated case through one path.
const CASES: &[(usize, usize, usize, usize, usize, usize, usize)] = &[
    (1, 1, 4, 6, 6, 3, 1),
    (2, 3, 5, 7, 9, 3, 1),
    (2, 8, 3, 5, 4, 1, 1),
    (1, 4, 6, 9, 8, 5, 1),
    (2, 5, 4, 8, 7, 3, 2),
    (1, 2, 3, 1, 11, 3, 1),
    (3, 16, 24, 4, 4, 3, 1),
    (1, 6, 2, 12, 10, 5, 2),
    // ≥ 256 channels in, 128..=in out: the Winograd path (odd and even sizes, one row).
    (2, 256, 128, 5, 7, 3, 1),
    (1, 256, 256, 4, 4, 3, 1),
    (1, 300, 129, 1, 5, 3, 1),
    // Many channels but dilated: the direct path again.
    (1, 256, 128, 6, 6, 3, 2),
    // 13·13 = 169 tiles of 4×4 with 64 channels: Winograd F(4×4, 3×3) by default, forward
    // and input gradient (sides not multiples of 4: partial tiles at both edges).
    (1, 64, 64, 50, 51, 3, 1),
];

/// The per-layer choice of [`conv2d_fast_path`] on XNet's shapes, and that the test cases
/// above reach every path (unless the environment forces one).
#[test]
fn path_choice_follows_the_measured_rule() {
    if std::env::var_os("XNET_CONV_PATH").is_some()
        || std::env::var_os("XNET_CONV_DIRECT").is_some()
    {
        println!("a path is forced by the environment; the default choice is not checked");
        return;
    }
    // (n, c_in, c_out, side, expected)
    for (n, ci, co, s, want) in [
        (1, 1, 64, 200, "direct"),
        (1, 256, 64, 200, "winograd-f43"),
        (1, 512, 128, 100, "winograd-f43"),
        (1, 512, 256, 50, "winograd-f43"),
        (1, 512, 512, 25, "winograd-f23"),
        (8, 512, 256, 16, "winograd-f23"),
        (8, 512, 512, 16, "winograd-f23"),
        (8, 512, 512, 20, "winograd-f43"),
        (8, 512, 512, 32, "winograd-f43"),
        (1, 256, 128, 6, "winograd-f23"),
    ] {
        assert_eq!(
            conv2d_fast_path(n, ci, co, s, s, 3, 1),
            want,
            "{n}×{ci}→{co} @{s}"
        );
    }
    // The weight gradient: F(3×3, 4×4) wherever Winograd applies, whatever the tiles.
    for (n, ci, co, s, want) in [
        (1, 1, 64, 200, "direct"),
        (1, 256, 64, 200, "winograd-f43"),
        (1, 512, 512, 25, "winograd-f43"),
        (8, 512, 512, 16, "winograd-f43"),
        (1, 256, 128, 6, "winograd-f43"),
        (1, 32, 128, 100, "direct"),
    ] {
        assert_eq!(
            conv2d_fast_weight_grad_path(n, ci, co, s, s, 3, 1),
            want,
            "weight gradient {n}×{ci}→{co} @{s}"
        );
    }
    assert_eq!(
        conv2d_fast_weight_grad_path(1, 256, 256, 100, 100, 3, 2),
        "direct"
    );
    assert_eq!(conv2d_fast_path(1, 256, 256, 100, 100, 3, 2), "direct");
    assert_eq!(conv2d_fast_path(1, 256, 256, 100, 100, 5, 1), "direct");
    // Any sizes may be asked about: the tile counts saturate instead of overflowing.
    let huge = usize::MAX;
    assert_eq!(
        conv2d_fast_path(huge, 64, 64, huge, huge, 3, 1),
        "winograd-f43"
    );
    let paths: Vec<&str> = CASES
        .iter()
        .map(|&(n, ci, co, h, w, k, d)| conv2d_fast_path(n, ci, co, h, w, k, d))
        .collect();
    for p in ["direct", "winograd-f23", "winograd-f43"] {
        assert!(paths.contains(&p), "no test case takes the {p} path");
    }
}

#[test]
fn forward_matches_candle_conv2d() {
    let mut rng = StdRng::seed_from_u64(1);
    for &(n, ci, co, h, w, k, d) in CASES {
        let x = rand_tensor(&mut rng, &[n, ci, h, w], DType::F32);
        let wt = rand_tensor(&mut rng, &[co, ci, k, k], DType::F32);
        let b = rand_tensor(&mut rng, &[co], DType::F32);
        for relu in [false, true] {
            for bias in [None, Some(&b)] {
                let fast = conv2d_fast(&x, &wt, bias, d, relu).unwrap();
                let reference = conv2d_reference(&x, &wt, bias, d, relu).unwrap();
                let err = max_abs_diff(&fast, &reference);
                assert!(
                    err <= 1e-4 * max_abs(&reference).max(1.0),
                    "case {:?} relu {relu} bias {}: max |fast - candle| = {err}",
                    (n, ci, co, h, w, k, d),
                    bias.is_some()
                );
                let dispatched = conv2d(&x, &wt, bias, d, relu).unwrap();
                assert!(
                    max_abs_diff(&dispatched, &reference) <= 1e-4 * max_abs(&reference).max(1.0)
                );
            }
        }
    }
}

#[test]
fn gradients_match_candle_conv2d() {
    let mut rng = StdRng::seed_from_u64(2);
    for &(n, ci, co, h, w, k, d) in CASES {
        for relu in [false, true] {
            let x = Var::from_tensor(&rand_tensor(&mut rng, &[n, ci, h, w], DType::F32)).unwrap();
            let wt = Var::from_tensor(&rand_tensor(&mut rng, &[co, ci, k, k], DType::F32)).unwrap();
            let b = Var::from_tensor(&rand_tensor(&mut rng, &[co], DType::F32)).unwrap();
            // A random linear functional of the output, so every output pixel matters.
            let r = rand_tensor(&mut rng, &[n, co, h, w], DType::F32);
            let loss = |y: Tensor| (y * &r).unwrap().sum_all().unwrap();
            let g_fast = loss(conv2d_fast(&x, &wt, Some(&b), d, relu).unwrap())
                .backward()
                .unwrap();
            let g_ref = loss(conv2d_reference(&x, &wt, Some(&b), d, relu).unwrap())
                .backward()
                .unwrap();
            for (name, var) in [("input", &x), ("weight", &wt), ("bias", &b)] {
                let gf = g_fast.get(var).expect("fast gradient");
                let gr = g_ref.get(var).expect("reference gradient");
                let err = max_abs_diff(gf, gr);
                assert!(
                    err <= 1e-4 * max_abs(gr).max(1.0),
                    "case {:?} relu {relu}: grad {name} differs by {err}",
                    (n, ci, co, h, w, k, d)
                );
            }
        }
    }
}

/// Operands that carry no gradient (a plain input tensor, a frozen weight, the zero bias
/// behind `None`) get none, and the gradients of the others are unchanged.
#[test]
fn untracked_operands_get_no_gradient() {
    let mut rng = StdRng::seed_from_u64(3);
    let (n, ci, co, h, w) = (2, 64, 64, 9, 11);
    let x_t = rand_tensor(&mut rng, &[n, ci, h, w], DType::F32);
    let w_t = rand_tensor(&mut rng, &[co, ci, 3, 3], DType::F32);
    let r = rand_tensor(&mut rng, &[n, co, h, w], DType::F32);
    let loss = |y: Tensor| (y * &r).unwrap().sum_all().unwrap();
    let (xv, wv) = (
        Var::from_tensor(&x_t).unwrap(),
        Var::from_tensor(&w_t).unwrap(),
    );
    let all = loss(conv2d_fast(&xv, &wv, None, 1, false).unwrap())
        .backward()
        .unwrap();
    // The input as a plain tensor: only the weight's gradient.
    let only_w = loss(conv2d_fast(&x_t, &wv, None, 1, false).unwrap())
        .backward()
        .unwrap();
    assert!(only_w.get(&x_t).is_none());
    assert_eq!(
        max_abs_diff(only_w.get(&wv).unwrap(), all.get(&wv).unwrap()),
        0.0
    );
    // A frozen weight: only the input's gradient.
    let only_x = loss(conv2d_fast(&xv, &w_t, None, 1, false).unwrap())
        .backward()
        .unwrap();
    assert!(only_x.get(&w_t).is_none());
    assert_eq!(
        max_abs_diff(only_x.get(&xv).unwrap(), all.get(&xv).unwrap()),
        0.0
    );
}

/// Central differences in f64 on the fast op alone: checks the custom backward without
/// trusting candle's conv backward.
#[test]
fn gradients_match_finite_differences_f64() {
    let mut rng = StdRng::seed_from_u64(3);
    for &(n, ci, co, h, w, k, d) in &[
        (1, 2, 3, 5, 4, 3, 1),
        (2, 2, 2, 6, 5, 3, 2),
        (1, 3, 2, 4, 4, 5, 1),
        (1, 256, 128, 3, 2, 3, 1),
    ] {
        let xt = rand_tensor(&mut rng, &[n, ci, h, w], DType::F64);
        let wtt = rand_tensor(&mut rng, &[co, ci, k, k], DType::F64);
        let bt = rand_tensor(&mut rng, &[co], DType::F64);
        let r = rand_tensor(&mut rng, &[n, co, h, w], DType::F64);
        // No ReLU here: its kink makes finite differences ill-defined at zero.
        let f = |x: &Tensor, wt: &Tensor, b: &Tensor| -> f64 {
            (conv2d_fast(x, wt, Some(b), d, false).unwrap() * &r)
                .unwrap()
                .sum_all()
                .unwrap()
                .to_scalar::<f64>()
                .unwrap()
        };
        let x = Var::from_tensor(&xt).unwrap();
        let wt = Var::from_tensor(&wtt).unwrap();
        let b = Var::from_tensor(&bt).unwrap();
        let grads = (conv2d_fast(&x, &wt, Some(&b), d, false).unwrap() * &r)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        let eps = 1e-6;
        let perturb = |t: &Tensor, i: usize, delta: f64| -> Tensor {
            let mut v = t.flatten_all().unwrap().to_vec1::<f64>().unwrap();
            v[i] += delta;
            Tensor::from_vec(v, t.dims(), &Device::Cpu).unwrap()
        };
        for (which, base) in [(0, &xt), (1, &wtt), (2, &bt)] {
            let analytic = grads
                .get([&x, &wt, &b][which])
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1::<f64>()
                .unwrap();
            // At most ~60 elements per operand (an odd stride visits varied positions).
            let step = (base.elem_count() / 60).max(1) | 1;
            for i in (0..base.elem_count()).step_by(step) {
                let eval = |delta: f64| {
                    let p = perturb(base, i, delta);
                    match which {
                        0 => f(&p, &wtt, &bt),
                        1 => f(&xt, &p, &bt),
                        _ => f(&xt, &wtt, &p),
                    }
                };
                let numeric = (eval(eps) - eval(-eps)) / (2.0 * eps);
                assert!(
                    (numeric - analytic[i]).abs() <= 1e-6 * numeric.abs().max(1.0),
                    "operand {which} element {i}: numeric {numeric}, analytic {}",
                    analytic[i]
                );
            }
        }
    }
}

#[test]
fn folded_batch_norm_matches_conv_then_batch_norm() {
    let mut rng = StdRng::seed_from_u64(4);
    let (n, ci, co, h, w) = (2, 3, 4, 6, 5);
    let x = rand_tensor(&mut rng, &[n, ci, h, w], DType::F32);
    let wt = rand_tensor(&mut rng, &[co, ci, 3, 3], DType::F32);
    let b = rand_tensor(&mut rng, &[co], DType::F32);
    let gamma = rand_tensor(&mut rng, &[co], DType::F32);
    let beta = rand_tensor(&mut rng, &[co], DType::F32);
    let mean = rand_tensor(&mut rng, &[co], DType::F32);
    let var = (rand_tensor(&mut rng, &[co], DType::F32).abs().unwrap() + 0.1).unwrap();
    let eps = 1e-3;
    let bn = candle_nn::BatchNorm::new(
        co,
        mean.clone(),
        var.clone(),
        gamma.clone(),
        beta.clone(),
        eps,
    )
    .unwrap();
    use candle_nn::ModuleT;
    let reference = bn
        .forward_t(
            &conv2d_reference(&x, &wt, Some(&b), 1, false).unwrap(),
            false,
        )
        .unwrap()
        .relu()
        .unwrap();
    let (wf, bf) = fold_batch_norm(&wt, Some(&b), &gamma, &beta, &mean, &var, eps).unwrap();
    let fused = conv2d_fast(&x, &wf, Some(&bf), 1, true).unwrap();
    let err = max_abs_diff(&fused, &reference);
    assert!(
        err <= 1e-4 * max_abs(&reference).max(1.0),
        "folded BN differs by {err}"
    );
}

#[test]
fn bad_shapes_are_errors_not_panics() {
    let dev = Device::Cpu;
    let x = Tensor::zeros((1, 3, 4, 4), DType::F32, &dev).unwrap();
    let w_wrong_cin = Tensor::zeros((2, 4, 3, 3), DType::F32, &dev).unwrap();
    assert!(conv2d_fast(&x, &w_wrong_cin, None, 1, false).is_err());
    let w_even = Tensor::zeros((2, 3, 2, 2), DType::F32, &dev).unwrap();
    assert!(conv2d_fast(&x, &w_even, None, 1, false).is_err());
    let w = Tensor::zeros((2, 3, 3, 3), DType::F32, &dev).unwrap();
    let b_wrong = Tensor::zeros(5, DType::F32, &dev).unwrap();
    assert!(conv2d_fast(&x, &w, Some(&b_wrong), 1, false).is_err());
    assert!(conv2d_fast(&x, &w, None, 0, false).is_err());
    let x64 = x.to_dtype(DType::F64).unwrap();
    assert!(conv2d_fast(&x64, &w, None, 1, false).is_err());
    // An empty kernel takes the reference path, whose padding `dilation·(k−1)/2` underflowed.
    let w_empty = Tensor::zeros((1, 3, 0, 0), DType::F32, &dev).unwrap();
    assert!(conv2d(&x, &w_empty, None, 1, false).is_err());
    assert!(conv2d_reference(&x, &w_empty, None, 1, false).is_err());
    // The weight gradient alone takes any odd kernel side: one whose padding overflows is
    // an error, a dilation beyond the input runs at the input's side.
    let dy = Tensor::ones((1, 2, 4, 4), DType::F32, &dev).unwrap();
    assert!(conv2d_fast_weight_grad(&x, &dy, usize::MAX, 1).is_err());
    assert!(conv2d_fast_weight_grad(&x, &dy, (1 << 33) + 1, 1 << 31).is_err());
    let far = conv2d_fast_weight_grad(&x, &dy, 3, usize::MAX).unwrap();
    let near = conv2d_fast_weight_grad(&x, &dy, 3, 4).unwrap();
    assert_eq!(max_abs_diff(&far, &near), 0.0);
}

/// A dilation beyond the input's larger side: every tap but the centre reads zero padding,
/// so the fast kernel runs it at that side. The output is the unclamped convolution's bit
/// for bit (computed here by padding the input by the whole dilation, so that the kernel
/// does not clamp, and cropping), the gradients match candle's unclamped convolution, and
/// dilations whose padding would not fit in memory (DeepLab's scaled rates reached 32768 on
/// an 8 × 8 map, a 17 GB padded plane) or in a `usize` run as cheaply.
#[test]
fn dilation_beyond_the_input_is_exact_and_cheap() {
    let mut rng = StdRng::seed_from_u64(7);
    // (n, c_in, c_out, h, w, k): direct path, Winograd-sized channels, 5×5, one pixel.
    for (n, ci, co, h, w, k) in [
        (2, 3, 4, 5, 7, 3),
        (1, 64, 64, 6, 6, 3),
        (1, 4, 3, 4, 3, 5),
        (1, 2, 2, 1, 1, 3),
    ] {
        for dtype in [DType::F32, DType::F64] {
            let x = rand_tensor(&mut rng, &[n, ci, h, w], dtype);
            let wt = rand_tensor(&mut rng, &[co, ci, k, k], dtype);
            let b = rand_tensor(&mut rng, &[co], dtype);
            for relu in [false, true] {
                let side = h.max(w).max(2);
                let at_side = conv2d_fast(&x, &wt, Some(&b), side, relu).unwrap();
                for d in [side + 1, 2 * side + 3, 40] {
                    let clamped = conv2d_fast(&x, &wt, Some(&b), d, relu).unwrap();
                    // Unclamped: padded by the whole reach of the kernel, the input's larger
                    // side exceeds `d`.
                    let p = d * (k - 1) / 2;
                    let xp = x.pad_with_zeros(2, p, p).unwrap();
                    let xp = xp.pad_with_zeros(3, p, p).unwrap();
                    let unclamped = conv2d_fast(&xp, &wt, Some(&b), d, relu)
                        .unwrap()
                        .narrow(2, p, h)
                        .unwrap()
                        .narrow(3, p, w)
                        .unwrap();
                    let case = format!("{n}×{ci}→{co} {h}×{w} k{k} {dtype:?} d{d} relu {relu}");
                    assert_eq!(max_abs_diff(&clamped, &unclamped), 0.0, "{case}");
                    assert_eq!(max_abs_diff(&clamped, &at_side), 0.0, "{case}");
                    let candle = x.conv2d(&wt, p, 1, d, 1).unwrap();
                    let candle = candle.broadcast_add(&b.reshape((1, co, 1, 1)).unwrap());
                    let candle = candle.unwrap();
                    let candle = if relu { candle.relu().unwrap() } else { candle };
                    let err = max_abs_diff(&clamped, &candle);
                    assert!(err <= 1e-4 * max_abs(&candle).max(1.0), "{case}: {err}");
                }
                for d in [4096, 32768, usize::MAX / 2, usize::MAX] {
                    let y = conv2d_fast(&x, &wt, Some(&b), d, relu).unwrap();
                    assert_eq!(max_abs_diff(&y, &at_side), 0.0, "d {d}");
                    let r = conv2d_reference(&x, &wt, Some(&b), d, relu).unwrap();
                    assert!(max_abs_diff(&y, &r) <= 1e-4 * max_abs(&r).max(1.0), "d {d}");
                }
            }
            // Gradients of the clamped kernel against candle's unclamped convolution.
            let d = 40;
            let p = d * (k - 1) / 2;
            let xv = Var::from_tensor(&x).unwrap();
            let wv = Var::from_tensor(&wt).unwrap();
            let r = rand_tensor(&mut rng, &[n, co, h, w], dtype);
            let loss = |y: Tensor| (y * &r).unwrap().sum_all().unwrap();
            let g_fast = loss(conv2d_fast(&xv, &wv, None, d, false).unwrap())
                .backward()
                .unwrap();
            let g_ref = loss(xv.conv2d(&wv, p, 1, d, 1).unwrap())
                .backward()
                .unwrap();
            for var in [&xv, &wv] {
                let (gf, gr) = (g_fast.get(var).unwrap(), g_ref.get(var).unwrap());
                let err = max_abs_diff(gf, gr);
                assert!(err <= 1e-4 * max_abs(gr).max(1.0), "grad: {err}");
            }
        }
    }
}

/// Empty images and zero channels give empty or bias-only results, forward and backward,
/// on the direct and the Winograd path, instead of panicking while splitting the work.
#[test]
fn empty_shapes_give_empty_results() {
    let dev = Device::Cpu;
    for (n, ci, co, h, w) in [
        (1, 64, 64, 0, 5),
        (0, 64, 64, 6, 6),
        (1, 3, 2, 4, 0),
        (1, 64, 0, 6, 6),
    ] {
        let x = Var::from_tensor(&Tensor::zeros((n, ci, h, w), DType::F32, &dev).unwrap()).unwrap();
        let wt =
            Var::from_tensor(&Tensor::ones((co, ci, 3, 3), DType::F32, &dev).unwrap()).unwrap();
        let y = conv2d_fast(&x, &wt, None, 1, true).unwrap();
        assert_eq!(y.dims(), &[n, co, h, w]);
        let grads = y.sum_all().unwrap().backward().unwrap();
        let gw = grads
            .get(&wt)
            .map(|g| g.sum_all().unwrap().to_scalar::<f32>().unwrap());
        assert!(gw.unwrap_or(0.0) == 0.0, "{n}×{ci}→{co} at {h}×{w}");
    }
    // No input channel: every pixel is the activated bias.
    let x = Tensor::zeros((1, 0, 3, 3), DType::F32, &dev).unwrap();
    let wt = Tensor::zeros((2, 0, 3, 3), DType::F32, &dev).unwrap();
    let b = Tensor::new(&[1.5f32, -2.0], &dev).unwrap();
    let y = conv2d_fast(&x, &wt, Some(&b), 1, true).unwrap();
    let v = y.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    assert_eq!(&v[..9], &[1.5; 9]);
    assert_eq!(&v[9..], &[0.0; 9]);
}

/// Gradients of `loss` by candle's own backward and by `kernels::backward`, for `vars`.
fn both_backwards(loss: &Tensor, vars: &[&Var]) -> Vec<(Tensor, Tensor)> {
    let candle = loss.backward().unwrap();
    let direct = xnet_model::kernels::backward(loss).unwrap();
    vars.iter()
        .map(|v| {
            (
                candle.get(v.as_tensor()).expect("candle gradient").clone(),
                direct.get(v.as_tensor()).expect("direct gradient").clone(),
            )
        })
        .collect()
}

/// `kernels::backward` hands the parameter gradients over without candle's accumulation:
/// every gradient is bit-identical to `loss.backward()`'s, for a two-layer net with a
/// ReLU, a weight shared by two convolutions (the sink sums its two gradients), and a
/// weight that also gets a gradient from outside the convolution (a penalty).
#[test]
fn direct_backward_gives_candle_gradients() {
    let mut rng = StdRng::seed_from_u64(81);
    let x = rand_tensor(&mut rng, &[2, 3, 9, 7], DType::F32);
    let w1 = Var::from_tensor(&rand_tensor(&mut rng, &[5, 3, 3, 3], DType::F32)).unwrap();
    let b1 = Var::from_tensor(&rand_tensor(&mut rng, &[5], DType::F32)).unwrap();
    let shared = Var::from_tensor(&rand_tensor(&mut rng, &[5, 5, 3, 3], DType::F32)).unwrap();
    let head = Var::from_tensor(&rand_tensor(&mut rng, &[2, 5, 1, 1], DType::F32)).unwrap();
    let h = conv2d_fast(&x, w1.as_tensor(), Some(b1.as_tensor()), 1, true).unwrap();
    let h = conv2d_fast(&h, shared.as_tensor(), None, 1, true).unwrap();
    let h = conv2d_fast(&h, shared.as_tensor(), None, 2, false).unwrap();
    let y = conv2d_fast(&h, head.as_tensor(), None, 1, false).unwrap();
    let penalty = head.as_tensor().sqr().unwrap().sum_all().unwrap();
    let loss = (y.sqr().unwrap().mean_all().unwrap() + penalty).unwrap();
    let vars = [&w1, &b1, &shared, &head];
    for (i, (candle, direct)) in both_backwards(&loss, &vars).into_iter().enumerate() {
        assert_eq!(candle.dims(), direct.dims(), "variable {i}");
        let (c, d) = (
            candle.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            direct.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
        );
        // Candle sums the shared weight's two gradients into zeros in its order; the
        // sink adds the second to the first: the same two roundings.
        assert_eq!(c, d, "variable {i}");
    }
}

/// After `kernels::backward` returns, a plain `loss.backward()` on the same thread gets
/// the parameter gradients from candle again (no sink is left behind).
#[test]
fn no_sink_is_left_behind() {
    let mut rng = StdRng::seed_from_u64(82);
    let x = rand_tensor(&mut rng, &[1, 2, 6, 6], DType::F32);
    let w = Var::from_tensor(&rand_tensor(&mut rng, &[3, 2, 3, 3], DType::F32)).unwrap();
    let loss = conv2d_fast(&x, w.as_tensor(), None, 1, false)
        .unwrap()
        .sum_all()
        .unwrap();
    let direct = xnet_model::kernels::backward(&loss).unwrap();
    let plain = loss.backward().unwrap();
    let (a, b) = (
        direct.get(w.as_tensor()).expect("direct gradient"),
        plain
            .get(w.as_tensor())
            .expect("a plain backward still stores the weight gradient"),
    );
    assert_eq!(
        a.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
        b.flatten_all().unwrap().to_vec1::<f32>().unwrap()
    );
}
