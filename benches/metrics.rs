//! xray-metrics throughput: confusion/F1, ECE, exact and binned AUC, the streaming evaluator.
//!
//! `cargo bench --bench metrics` (1M pixels × 3 classes, synthetic, deterministic). The
//! 10M-pixel comparison with the Python peer is `cargo run --release -p xray-metrics
//! --example peer_compare` (see docs/performance.md).

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use xray_metrics::{
    calibration_error, calibration_error_torch_f32, roc_auc_ovr, Average, BinnedAuc,
    CalibrationNorm, ClassMetric, ConfusionMatrix, EvalConfig, Evaluator, ZeroDivision,
};

const C: usize = 3;

/// Labels and class-major softmax probabilities with signal on the true class (SplitMix64).
fn data(n: usize) -> (Vec<u8>, Vec<f32>, Vec<u8>) {
    let mut s = 0x1234_5678u64;
    let mut next = move || {
        s = s.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = s;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    };
    let labels: Vec<u8> = (0..n).map(|_| (next() % C as u64) as u8).collect();
    let mut probs = vec![0f32; C * n];
    let mut pred = vec![0u8; n];
    for i in 0..n {
        let z: Vec<f32> = (0..C)
            .map(|k| {
                let u = (next() >> 40) as f32 / (1u64 << 24) as f32;
                3.0 * u + if labels[i] as usize == k { 1.0 } else { 0.0 }
            })
            .collect();
        let m = z.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
        let e: Vec<f32> = z.iter().map(|v| (v - m).exp()).collect();
        let s: f32 = e.iter().sum();
        let mut best = 0;
        for k in 0..C {
            probs[k * n + i] = e[k] / s;
            if probs[k * n + i] > probs[best * n + i] {
                best = k;
            }
        }
        pred[i] = best as u8;
    }
    (labels, probs, pred)
}

fn bench(c: &mut Criterion) {
    let n = 1_000_000;
    let (labels, probs, pred) = data(n);
    let mut g = c.benchmark_group("metrics_1M_px_3_classes");
    g.throughput(Throughput::Elements(n as u64));
    g.sample_size(10);
    g.bench_function("f1_weighted_confusion", |b| {
        b.iter(|| {
            ConfusionMatrix::from_labels(black_box(&labels), black_box(&pred), C)
                .unwrap()
                .score(ClassMetric::F1, Average::Weighted, ZeroDivision::Zero)
        })
    });
    g.bench_function("f1_weighted_confusion_par", |b| {
        b.iter(|| ConfusionMatrix::from_labels_par(black_box(&labels), black_box(&pred), C))
    });
    g.bench_function("ece_l1_15_bins_f64", |b| {
        b.iter(|| {
            calibration_error(
                black_box(&labels),
                black_box(&probs),
                C,
                15,
                CalibrationNorm::L1,
            )
        })
    });
    g.bench_function("ece_l1_15_bins_torch_f32", |b| {
        b.iter(|| {
            calibration_error_torch_f32(
                black_box(&labels),
                black_box(&probs),
                C,
                15,
                CalibrationNorm::L1,
            )
        })
    });
    g.bench_function("auc_exact_weighted", |b| {
        b.iter(|| roc_auc_ovr(black_box(&labels), black_box(&probs), C, Average::Weighted))
    });
    g.bench_function("auc_binned_4096", |b| {
        b.iter(|| {
            let mut acc = BinnedAuc::new(C, 4096).unwrap();
            acc.add(black_box(&labels), black_box(&probs)).unwrap();
            acc.finish()
        })
    });
    g.bench_function("evaluator_4_images_512x488_no_boundary", |b| {
        let (w, h) = (512, 488);
        b.iter(|| {
            let cfg = EvalConfig {
                boundary: false,
                ..EvalConfig::default()
            };
            let mut ev = Evaluator::new(cfg).unwrap();
            for im in 0..4 {
                let (lo, m) = (im * w * h, w * h);
                let mut p = vec![0f32; C * m];
                for k in 0..C {
                    p[k * m..(k + 1) * m].copy_from_slice(&probs[k * n + lo..k * n + lo + m]);
                }
                ev.add_image(&labels[lo..lo + m], &p, w, h).unwrap();
            }
            ev.finish().unwrap()
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
