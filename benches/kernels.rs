//! The fast kernels of `xnet_model::kernels` against stock candle on XNet's heaviest
//! convolution shapes (one 200×200 image): forward and forward + backward.
//!
//! `RAYON_NUM_THREADS=2 cargo bench --bench kernels`

use std::hint::black_box;

use candle_core::{DType, Device, Tensor, Var};
use criterion::{criterion_group, criterion_main, Criterion};
use xnet_model::kernels::{conv2d_fast, conv2d_reference, upsample_nearest2x_fast};

/// `(c_in, c_out, side)`: XNet's c14, c07/c13 and c05 at 200×200 input.
const SHAPES: &[(usize, usize, usize)] = &[(256, 64, 200), (512, 128, 100), (512, 512, 25)];

fn conv(c: &mut Criterion) {
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

criterion_group!(benches, conv, upsample);
criterion_main!(benches);
