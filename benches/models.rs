//! Forward and train-step throughput of XNet, U-Net and SegNet on the CPU, through the
//! crate's kernels (`xnet_model::kernels`; `XNET_REFERENCE_KERNELS=1` for stock candle).
//!
//! Not the `throughput` example's step, which docs/performance.md sets beside the twin: here
//! batch-norm stays unfolded, the C allocator and candle's thread pool keep their defaults,
//! and the train step is candle's `AdamW` (its default weight decay 0.01) with candle's
//! backward and no L2 term.
//!
//! Shapes follow the PyTorch twin (`../shared/peers/xnet_torch.py`, RESULTS.md): XNet at
//! 1×1×200×200 and 8×1×128×128; U-Net (3 levels, nearest + conv up-path) and SegNet
//! (`SimpleSegNet`) at 8×1×128×128, all at the paper's widths.
//! - forward = eval mode + softmax;
//! - train = train-mode forward + pixel cross-entropy + backward + AdamW step (lr 1e-4).
//!
//! Besides criterion's report, each bench prints `images/s` and achieved `GFLOP/s` from the
//! median of its samples: FLOPs = convolution FLOPs per image (2 per multiply-accumulate;
//! 66.43 G for XNet at 200²) for forward, and 3× that for a train step (forward + the two
//! backward convolutions; the twin's FlopCounterMode gives 3.0×).
//!
//! Run: `cargo bench --bench models` (add a filter such as `forward/xnet` to run one).

use candle_core::{DType, Device, Tensor};
use candle_nn::{AdamW, Optimizer, ParamsAdamW, VarBuilder, VarMap};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::cell::RefCell;
use std::time::{Duration, Instant};
use xnet_model::models::{
    ModelConfig, SegNetConfig, Segmenter, UNetConfig, Upsampling, XNetConfig,
};

fn nets() -> Vec<(&'static str, ModelConfig)> {
    vec![
        ("xnet", ModelConfig::XNet(XNetConfig::default())),
        (
            "unet",
            ModelConfig::UNet(UNetConfig {
                depth: 3,
                upsampling: Upsampling::Nearest,
                ..Default::default()
            }),
        ),
        ("segnet", ModelConfig::SegNet(SegNetConfig::simple())),
    ]
}

fn cases() -> Vec<(&'static str, ModelConfig, usize, usize)> {
    let mut v = Vec::new();
    for (name, cfg) in nets() {
        if name == "xnet" {
            v.push((name, cfg.clone(), 1, 200));
        }
        v.push((name, cfg, 8, 128));
    }
    v
}

fn build(cfg: &ModelConfig) -> (VarMap, Box<dyn Segmenter>) {
    let vm = VarMap::new();
    let net = cfg
        .build(VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu))
        .expect("valid benchmark config");
    (vm, net)
}

/// Runs `f` under criterion, then prints images/s and GFLOP/s at the median sample.
fn timed(
    c: &mut Criterion,
    group: &str,
    id: &str,
    batch: usize,
    flops_per_image: f64,
    mut f: impl FnMut(),
) {
    let mut g = c.benchmark_group(group);
    g.sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(5))
        .throughput(Throughput::Elements(batch as u64));
    let per_iter = RefCell::new(Vec::new());
    g.bench_function(id, |b| {
        b.iter_custom(|iters| {
            let t = Instant::now();
            for _ in 0..iters {
                f();
            }
            let e = t.elapsed();
            per_iter.borrow_mut().push(e.as_secs_f64() / iters as f64);
            e
        })
    });
    g.finish();
    let mut s = per_iter.into_inner();
    s.sort_by(f64::total_cmp);
    if let Some(&med) = s.get(s.len() / 2) {
        let ips = batch as f64 / med;
        println!(
            "{group}/{id}: median step {:.3} s, {:.3} images/s, {:.1} GFLOP/s ({:.2} GFLOP/image)",
            med,
            ips,
            ips * flops_per_image / 1e9,
            flops_per_image / 1e9
        );
    }
}

fn forward(c: &mut Criterion) {
    for (name, cfg, batch, size) in cases() {
        let (_vm, net) = build(&cfg);
        let x = Tensor::rand(0f32, 1., (batch, 1, size, size), &Device::Cpu).expect("input");
        let flops = cfg.forward_flops(size, size) as f64;
        timed(
            c,
            "forward",
            &format!("{name}/{batch}x{size}"),
            batch,
            flops,
            || {
                let y = net
                    .forward_t(&x, false)
                    .and_then(|y| candle_nn::ops::softmax(&y, 1))
                    .expect("forward");
                std::hint::black_box(y);
            },
        );
    }
}

fn train(c: &mut Criterion) {
    for (name, cfg, batch, size) in cases() {
        let (vm, net) = build(&cfg);
        let mut opt = AdamW::new(
            vm.all_vars(),
            ParamsAdamW {
                lr: 1e-4,
                ..Default::default()
            },
        )
        .expect("optimiser");
        let x = Tensor::rand(0f32, 1., (batch, 1, size, size), &Device::Cpu).expect("input");
        let y = (Tensor::rand(0f32, 3., (batch * size * size,), &Device::Cpu)
            .expect("labels")
            .floor())
        .and_then(|t| t.to_dtype(DType::U32))
        .expect("labels");
        let flops = 3.0 * cfg.forward_flops(size, size) as f64;
        timed(
            c,
            "train",
            &format!("{name}/{batch}x{size}"),
            batch,
            flops,
            || {
                let logits = net.forward_t(&x, true).expect("forward");
                let c = cfg.num_classes();
                let flat = logits
                    .permute((0, 2, 3, 1))
                    .and_then(|t| t.reshape(((), c)))
                    .expect("reshape");
                let loss = candle_nn::loss::cross_entropy(&flat, &y).expect("loss");
                opt.backward_step(&loss).expect("step");
            },
        );
    }
}

criterion_group!(benches, forward, train);
criterion_main!(benches);
