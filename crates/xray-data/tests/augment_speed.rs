//! Throughput measurements (ignored by default; no wall-clock assertions). The criterion
//! benches `benches/augment.rs` and `benches/synth.rs` in the root package measure the same
//! things; this file gives the figures without building the whole workspace in release:
//!
//! ```bash
//! cargo test --release -p xray-data --test augment_speed -- --ignored --nocapture --test-threads 1
//! ```

use std::time::Instant;

use rand::rngs::StdRng;
use rand::SeedableRng;
use xray_data::augment::{peer_sample, Affine, Elastic, NoiseDistribution, Pipeline, Transform};
use xray_data::synth::{generate, sample_category, PhantomConfig};

/// Median seconds per call over `iters` calls after 5 warm-up calls, plus process CPU time
/// per call.
fn time<F: FnMut()>(iters: usize, mut f: F) -> (f64, f64) {
    for _ in 0..5 {
        f();
    }
    let cpu0 = cpu_seconds();
    let mut ts: Vec<f64> = (0..iters)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64()
        })
        .collect();
    let cpu = cpu_seconds() - cpu0;
    ts.sort_by(|a, b| a.total_cmp(b));
    (ts[ts.len() / 2], cpu / iters as f64)
}

/// CPU time of this process: the sum over its threads of `/proc/self/task/*/schedstat`
/// (nanoseconds on the CPU; the work runs on rayon threads), else user + system from
/// `/proc/self/stat` (100 Hz ticks); 0 where neither is available.
fn cpu_seconds() -> f64 {
    if let Ok(tasks) = std::fs::read_dir("/proc/self/task") {
        let mut ns = 0u64;
        let mut any = false;
        for t in tasks.flatten() {
            let Ok(s) = std::fs::read_to_string(t.path().join("schedstat")) else {
                continue;
            };
            if let Some(v) = s
                .split_whitespace()
                .next()
                .and_then(|v| v.parse::<u64>().ok())
            {
                ns += v;
                any = true;
            }
        }
        if any {
            return ns as f64 * 1e-9;
        }
    }
    let Ok(s) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    let Some(rest) = s.rsplit(')').next() else {
        return 0.0;
    };
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // Fields after the command: state is index 0, utime 11, stime 12 (clock ticks of 100 Hz).
    (ticks(11) + ticks(12)) / 100.0
}

#[test]
#[ignore = "timing; run in release by hand"]
fn augmentation_throughput_512() {
    let (img, mask) = peer_sample(512);
    let one = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap();
    let e = Elastic::default();
    let ex = Elastic {
        exact: true,
        ..Elastic::default()
    };
    // The peer draws Gaussian noise (albumentations 2); our default is uniform (Simard).
    let eg = Elastic {
        noise: NoiseDistribution::Gaussian,
        ..Elastic::default()
    };
    let a = Affine::default();
    let cases: Vec<(&str, Vec<Box<dyn Transform>>)> = vec![
        ("elastic", vec![Box::new(e)]),
        ("elastic_gaussian", vec![Box::new(eg)]),
        ("elastic_exact", vec![Box::new(ex)]),
        ("affine", vec![Box::new(a)]),
        // Translation only: the same kernel with sequential source access.
        (
            "affine_translate",
            vec![Box::new(Affine {
                rotate_deg: [0.0, 0.0],
                shear_deg: [0.0, 0.0],
                ..a
            })],
        ),
        ("elastic+affine", vec![Box::new(e), Box::new(a)]),
        ("elastic_exact+affine", vec![Box::new(ex), Box::new(a)]),
    ];
    println!(
        "load: {}",
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .trim()
    );
    // `AUGMENT_SPEED_ONLY=affine` runs one case (for profiling), `=batch` the rayon batch.
    let only = std::env::var("AUGMENT_SPEED_ONLY").ok();
    for (name, steps) in cases {
        if only.as_deref().is_some_and(|o| o != name) {
            continue;
        }
        let mut p = Pipeline::new();
        for s in steps {
            p.push(s, 1.0).unwrap();
        }
        let mut rng = StdRng::seed_from_u64(1);
        let (med, cpu) = one.install(|| {
            time(100, || {
                let (mut i, mut m) = (img.clone(), mask.clone());
                p.apply(&mut i, &mut m, &mut rng).unwrap();
            })
        });
        println!(
            "{name:22} median {:7.2} ms  {:7.1} img/s   cpu {:7.2} ms/img",
            med * 1e3,
            1.0 / med,
            cpu * 1e3
        );
        // The same transform on one pair kept from call to call: the call alone, without
        // the copy of the input above (0.03 ms at 512²), as a training loop runs it on the
        // freshly loaded sample. The peer's call does not copy its input either.
        let mut rng = StdRng::seed_from_u64(1);
        let (mut i, mut m) = (img.clone(), mask.clone());
        let (med, cpu) = one.install(|| {
            time(100, || {
                p.apply(&mut i, &mut m, &mut rng).unwrap();
            })
        });
        println!(
            "{:22} median {:7.2} ms  {:7.1} img/s   cpu {:7.2} ms/img",
            format!("{name} (no copy)"),
            med * 1e3,
            1.0 / med,
            cpu * 1e3
        );
    }
    let mut p = Pipeline::new();
    p.push(Box::new(e), 1.0)
        .unwrap()
        .push(Box::new(a), 1.0)
        .unwrap();
    for threads in [1usize, 2] {
        if only.as_deref().is_some_and(|o| o != "batch") {
            break;
        }
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        let mut seed = 0;
        let (med, cpu) = pool.install(|| {
            time(8, || {
                let mut batch: Vec<_> = (0..16).map(|_| (img.clone(), mask.clone())).collect();
                seed += 1;
                p.apply_batch(&mut batch, seed).unwrap();
            })
        });
        println!(
            "batch16 elastic+affine {threads} thread(s): {:7.1} img/s   cpu {:7.2} ms/img",
            16.0 / med,
            cpu * 1e3 / 16.0
        );
    }
}

#[test]
#[ignore = "timing; run in release by hand"]
fn synth_throughput_256() {
    println!(
        "load: {}",
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .trim()
    );
    for size in [256u32, 512] {
        let cfg = PhantomConfig::with_size(size);
        let mut rng = StdRng::seed_from_u64(1);
        let (med, cpu) = time(60, || {
            let part = sample_category(&mut rng, &cfg.category_weights).unwrap();
            generate(&cfg, part, &mut rng).unwrap();
        });
        println!(
            "synth {size}x{size}: median {:7.2} ms  {:7.1} img/s   cpu {:7.2} ms/img",
            med * 1e3,
            1.0 / med,
            cpu * 1e3
        );
    }
}
