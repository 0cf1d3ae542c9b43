//! The fast kernels of `xnet_model::kernels` against stock candle on XNet's heaviest
//! convolution shapes (one 200×200 image): forward and forward + backward; the fused
//! training batch norm + ReLU on XNet's widest 200×200 activation; nearest up-sampling.
//!
//! `RAYON_NUM_THREADS=2 cargo bench --bench kernels`

use std::hint::black_box;

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::ModuleT;
use criterion::{criterion_group, criterion_main, Criterion};
use xnet_model::kernels::{
    batch_norm_relu_train, conv2d_fast, conv2d_reference, upsample_nearest2x_fast,
};

/// `(c_in, c_out, side)`: XNet's c14, c07/c13 and c05 at 200×200 input.
const SHAPES: &[(usize, usize, usize)] = &[(256, 64, 200), (512, 128, 100), (512, 512, 25)];

/// The process settings the examples and the trainer use: freed buffers kept (no page
/// faults on every new activation) and candle's own threads tuned.
fn runtime_setup() {
    xnet_model::memory::keep_freed_memory();
    xnet_model::runtime::tune_candle_threads();
}

fn conv(c: &mut Criterion) {
    runtime_setup();
    let dev = Device::Cpu;
    for &(ci, co, s) in SHAPES {
        let x = Var::from_tensor(&Tensor::rand(0f32, 1., (1, ci, s, s), &dev).unwrap()).unwrap();
        let w =
            Var::from_tensor(&Tensor::rand(-0.05f32, 0.05, (co, ci, 3, 3), &dev).unwrap()).unwrap();
        let b = Var::from_tensor(&Tensor::zeros(co, DType::F32, &dev).unwrap()).unwrap();
        let mut g = c.benchmark_group(format!("conv3x3_{ci}to{co}_at{s}"));
        g.sample_size(10);
        g.bench_function("fast_forward", |bch| {
            bch.iter(|| black_box(conv2d_fast(&x, &w, Some(&b), 1, true).unwrap()))
        });
        g.bench_function("candle_forward", |bch| {
            bch.iter(|| black_box(conv2d_reference(&x, &w, Some(&b), 1, true).unwrap()))
        });
        g.bench_function("fast_forward_backward", |bch| {
            bch.iter(|| {
                let y = conv2d_fast(&x, &w, Some(&b), 1, true).unwrap();
                black_box(y.sum_all().unwrap().backward().unwrap())
            })
        });
        g.bench_function("candle_forward_backward", |bch| {
            bch.iter(|| {
                let y = conv2d_reference(&x, &w, Some(&b), 1, true).unwrap();
                black_box(y.sum_all().unwrap().backward().unwrap())
            })
        });
        g.finish();
    }
}

fn upsample(c: &mut Criterion) {
    runtime_setup();
    let dev = Device::Cpu;
    let x = Tensor::rand(0f32, 1., (1, 256, 100, 100), &dev).unwrap();
    let mut g = c.benchmark_group("upsample_nearest2x_256x100x100");
    g.bench_function("fast", |b| {
        b.iter(|| black_box(upsample_nearest2x_fast(&x).unwrap()))
    });
    g.bench_function("candle", |b| {
        b.iter(|| black_box(x.upsample_nearest2d(200, 200).unwrap()))
    });
    g.finish();
}

/// A batch norm of `c` channels with variables for its affine part and running statistics,
/// as `candle_nn::batch_norm` makes it.
fn batch_norm(c: usize, dev: &Device) -> (candle_nn::BatchNorm, Var, Var) {
    let var = |v: f32| Var::from_tensor(&Tensor::full(v, c, dev).unwrap()).unwrap();
    let (gamma, beta) = (var(1.2), var(0.1));
    let bn = candle_nn::BatchNorm::new(
        c,
        var(0.0).as_tensor().clone(),
        var(1.0).as_tensor().clone(),
        gamma.as_tensor().clone(),
        beta.as_tensor().clone(),
        1e-3,
    )
    .unwrap();
    (bn, gamma, beta)
}

fn batch_norm_relu(c: &mut Criterion) {
    runtime_setup();
    let dev = Device::Cpu;
    let shape = (1, 64, 200, 200);
    let x = Var::from_tensor(&Tensor::randn(0.3f32, 1.5, shape, &dev).unwrap()).unwrap();
    // A non-uniform output gradient, so that the backward's sums are not degenerate.
    let weights = Tensor::randn(0f32, 1., shape, &dev).unwrap();
    let (bn, _gamma, _beta) = batch_norm(64, &dev);
    let mut g = c.benchmark_group("batch_norm_relu_train_64x200x200");
    g.sample_size(20);
    g.bench_function("fast_forward", |b| {
        b.iter(|| black_box(batch_norm_relu_train(&x, &bn, true).unwrap()))
    });
    g.bench_function("candle_forward", |b| {
        b.iter(|| black_box(bn.forward_t(&x, true).unwrap().relu().unwrap()))
    });
    // The backward of a weighted sum, so that the output gradient is not uniform.
    let backward = |y: Tensor| {
        y.mul(&weights)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap()
    };
    g.bench_function("fast_forward_backward", |b| {
        b.iter(|| black_box(backward(batch_norm_relu_train(&x, &bn, true).unwrap())))
    });
    g.bench_function("candle_forward_backward", |b| {
        b.iter(|| black_box(backward(bn.forward_t(&x, true).unwrap().relu().unwrap())))
    });
    g.finish();
}

criterion_group!(benches, conv, batch_norm_relu, upsample);
criterion_main!(benches);
