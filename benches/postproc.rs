//! Post-processing benches: collimator detection on a 2000 × 2000 radiograph (goal: under
//! 100 ms on one core; the detector is single-threaded), thresholds + clean-up and the
//! classical baseline on 512 × 512.
//!
//! `cargo bench --bench postproc`

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use xray_postproc::{
    apply_thresholds, baseline_segment, cleanup, detect_collimator, BaselineConfig, CleanupConfig,
    CollimatorConfig, Plane, ProbMap, ThresholdConfig,
};

/// A collimated field (a rectangle turned by 3°, as the blades of a collimator make it, with
/// a different inset on each side), a soft-tissue ellipse with a bone inside, penumbra and
/// deterministic pseudo-noise. Larger = more X-rays.
fn phantom(n: usize) -> Vec<f32> {
    let s = n as f32;
    // Each side tilted on its own (as this phantom had until 2026-11-29) is no collimator's
    // field: the detector's one-rectangle rule then keeps 3 of the 4 edges.
    let edges = [(3f32, 0.12), (3.0, 0.1), (3.0, 0.15), (3.0, 0.08)];
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut out = vec![0.0f32; n * n];
    for y in 0..n {
        for x in 0..n {
            let (xf, yf) = (x as f32, y as f32);
            let mut field = 1.0f32;
            for (k, &(tilt, inset)) in edges.iter().enumerate() {
                let phi = (90.0 * k as f32 + tilt).to_radians();
                let (nx, ny) = (phi.cos(), phi.sin());
                let (mx, my) = match k {
                    0 => (inset * s, s / 2.0),
                    1 => (s / 2.0, inset * s),
                    2 => (s - inset * s, s / 2.0),
                    _ => (s / 2.0, s - inset * s),
                };
                let d = nx * (xf - mx) + ny * (yf - my);
                field *= 1.0 / (1.0 + (-d / 2.0).exp());
            }
            let (dx, dy) = ((xf - s * 0.5) / (s * 0.25), (yf - s * 0.5) / (s * 0.45));
            let r2 = dx * dx + dy * dy;
            let t = if r2 < 0.1 {
                0.15
            } else if r2 < 1.0 {
                0.4
            } else {
                1.0
            };
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let noise = ((state >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 0.04;
            out[y * n + x] = 1000.0 * t * (0.03 + 0.97 * field) * (1.0 + noise);
        }
    }
    out
}

fn bench(c: &mut Criterion) {
    let big = phantom(2000);
    let plane = Plane::new(&big, 2000, 2000).unwrap();
    let cfg = CollimatorConfig::default();
    assert_eq!(detect_collimator(&plane, &cfg).unwrap().edges.len(), 4);
    c.bench_function("detect_collimator 2000x2000", |b| {
        b.iter(|| detect_collimator(black_box(&plane), &cfg).unwrap())
    });

    // The label rule alone on a radiograph-sized map (the `segment` pixel loop).
    let m = 2000 * 2000;
    let mut big_probs = vec![0.0f32; 3 * m];
    for (i, &v) in big.iter().enumerate() {
        let a = (v / 1000.0).clamp(0.0, 1.0);
        let b = (1.0 - (a - 0.4).abs() * 2.0).clamp(0.0, 1.0);
        let z = a + b + (1.0 - a) + 1e-6;
        big_probs[i] = a / z;
        big_probs[m + i] = b / z;
        big_probs[2 * m + i] = (1.0 - a) / z;
    }
    let big_pm = ProbMap::new(&big_probs, 3, 2000, 2000).unwrap();
    let soft = ThresholdConfig {
        soft_threshold: 0.6,
        ..Default::default()
    };
    c.bench_function("apply_thresholds 2000x2000", |b| {
        b.iter(|| apply_thresholds(black_box(&big_pm), &soft, None).unwrap())
    });

    let n = 512;
    let small = phantom(n);
    let splane = Plane::new(&small, n, n).unwrap();
    let mut probs = vec![0.0f32; 3 * n * n];
    for i in 0..n * n {
        let v = small[i] / 1000.0;
        let (a, b) = (
            v.clamp(0.0, 1.0),
            (1.0 - (v - 0.4).abs() * 2.0).clamp(0.0, 1.0),
        );
        let cc = (1.0 - a).max(0.0);
        let z = a + b + cc + 1e-6;
        probs[i] = a / z;
        probs[n * n + i] = b / z;
        probs[2 * n * n + i] = cc / z;
    }
    let pm = ProbMap::new(&probs, 3, n, n).unwrap();
    let tcfg = ThresholdConfig {
        soft_threshold: 0.6,
        ..Default::default()
    };
    let ccfg = CleanupConfig {
        bone_open_radius: 2,
        bone_dilate_radius: 1,
        min_component_size: vec![50, 50, 50],
        ..Default::default()
    };
    c.bench_function("thresholds+cleanup 512x512", |b| {
        b.iter(|| {
            let mut l = apply_thresholds(black_box(&pm), &tcfg, None).unwrap();
            cleanup(&mut l, &ccfg).unwrap();
            l
        })
    });
    let field = detect_collimator(&splane, &cfg).unwrap();
    c.bench_function("baseline_segment 512x512", |b| {
        b.iter(|| {
            baseline_segment(black_box(&splane), Some(&field), &BaselineConfig::default()).unwrap()
        })
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20);
    targets = bench
}
criterion_main!(benches);
