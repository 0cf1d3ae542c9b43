//! Times xray-metrics against `../shared/peers/metrics_peer.py` on its exact 10M-pixel inputs.
//!
//! ```text
//! /work/venv/bin/python ../shared/peers/metrics_peer.py --dump /tmp/metrics-peer   # writes inputs
//! cargo run --release -p xray-metrics --example peer_compare -- /tmp/metrics-peer [repeats]
//! ```
//! The dump is pixel-major (`N × 3` rows); it is transposed to the crate's class-major layout
//! before timing (the peer gets its native layout for free too). Each metric is timed as the
//! median of `repeats` calls after one warm-up, first in a 1-thread rayon pool (the peer's
//! sklearn is single-threaded and its torchmetrics ran on 1 thread), then in the global pool.

use std::time::Instant;

use xray_metrics::{
    calibration_error, calibration_error_torch_f32, roc_auc_ovr, Average, CalibrationNorm,
    ClassMetric, ConfusionMatrix, ZeroDivision,
};

/// Peer figures from `../shared/peers/results_metrics.jsonl` (value, median seconds).
const PEER: [(&str, f64, f64); 4] = [
    (
        "exact weighted AUC (sklearn roc_auc_score ovr)",
        0.813712712374681,
        18.2033969109998,
    ),
    (
        "weighted F1 (sklearn f1_score)",
        0.6338172181020443,
        1.8987424619999729,
    ),
    (
        "ECE l1 15 bins (torchmetrics; ours f64 sums)",
        0.000674418406561017,
        1.0300504869996985,
    ),
    (
        "ECE l1 15 bins (ours, torch-compatible f32 sums)",
        0.000674418406561017,
        1.0300504869996985,
    ),
];

fn read(path: &std::path::Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| {
        eprintln!(
            "cannot read {}: {e}; run metrics_peer.py --dump DIR first",
            path.display()
        );
        std::process::exit(2)
    })
}

/// CPU time of the whole process (all threads), from /proc (Linux); 0 elsewhere. On a
/// shared, overloaded machine wall time includes waiting for a core; CPU time does not.
fn process_cpu_seconds() -> f64 {
    let Ok(dir) = std::fs::read_dir("/proc/self/task") else {
        return 0.0;
    };
    dir.filter_map(|e| e.ok())
        .filter_map(|e| std::fs::read_to_string(e.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .sum::<u64>() as f64
        * 1e-9
}

/// (value, median wall s, min wall s, median CPU s)
fn time<T>(repeats: usize, mut f: impl FnMut() -> T) -> (T, f64, f64, f64) {
    let v = f();
    let mut ts = Vec::new();
    let mut cpu = Vec::new();
    for _ in 0..repeats {
        let c0 = process_cpu_seconds();
        let t = Instant::now();
        std::hint::black_box(f());
        ts.push(t.elapsed().as_secs_f64());
        cpu.push(process_cpu_seconds() - c0);
    }
    ts.sort_by(f64::total_cmp);
    cpu.sort_by(f64::total_cmp);
    (v, ts[ts.len() / 2], ts[0], cpu[cpu.len() / 2])
}

fn main() {
    let mut args = std::env::args().skip(1);
    let dir = std::path::PathBuf::from(args.next().unwrap_or_else(|| "/tmp/metrics-peer".into()));
    let repeats: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(5);
    let y = read(&dir.join("y.u8"));
    let pred = read(&dir.join("pred.u8"));
    let raw = read(&dir.join("probs.f32"));
    let n = y.len();
    let c = 3;
    assert_eq!(
        raw.len(),
        n * c * 4,
        "probs.f32 must hold N × 3 little-endian f32"
    );
    let mut probs = vec![0f32; n * c];
    for (i, row) in raw.chunks_exact(4 * c).enumerate() {
        for k in 0..c {
            let b = [row[4 * k], row[4 * k + 1], row[4 * k + 2], row[4 * k + 3]];
            probs[k * n + i] = f32::from_le_bytes(b);
        }
    }
    drop(raw);
    let threads = rayon::current_num_threads();
    println!("N = {n}, {c} classes, {repeats} repeats (median), global pool {threads} threads");
    for pool_threads in [1, threads] {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(pool_threads)
            .build()
            .expect("thread pool");
        pool.install(|| {
            let auc = time(repeats, || {
                roc_auc_ovr(&y, &probs, c, Average::Weighted).unwrap()
            });
            let f1 = time(repeats, || {
                let cm = if pool_threads == 1 {
                    ConfusionMatrix::from_labels(&y, &pred, c)
                } else {
                    ConfusionMatrix::from_labels_par(&y, &pred, c)
                };
                cm.unwrap()
                    .score(ClassMetric::F1, Average::Weighted, ZeroDivision::Zero)
                    .value()
                    .unwrap()
            });
            let ece = time(repeats, || {
                calibration_error(&y, &probs, c, 15, CalibrationNorm::L1).unwrap()
            });
            // Memory floor: one pass that only reads the probabilities (what any ECE must do).
            let floor = time(repeats, || {
                let mut acc = [0f32; 8];
                for ch in probs.chunks_exact(8) {
                    for (a, v) in acc.iter_mut().zip(ch) {
                        *a += v;
                    }
                }
                acc.iter().sum::<f32>()
            });
            println!(
                "{pool_threads} thr  read-only pass over the probabilities (memory floor): \
                 median {:.4} s (min {:.4}, CPU {:.4})",
                floor.1, floor.2, floor.3
            );
            let ece32 = time(repeats, || {
                calibration_error_torch_f32(&y, &probs, c, 15, CalibrationNorm::L1).unwrap()
            });
            let peer = PEER.iter();
            for ((name, pv, ps), (v, med, min, cpu)) in peer.zip([auc, f1, ece, ece32]) {
                println!(
                    "{pool_threads} thr  {name:48} value {v:.9} (peer {pv:.9}, |Δ| {:.1e})  \
                     median {med:8.4} s (min {min:.4}, CPU {cpu:.4})  peer {ps:.3} s  \
                     ratio {:6.1}× (min {:6.1}×)",
                    (v - pv).abs(),
                    ps / med,
                    ps / min
                );
            }
        });
    }
}
