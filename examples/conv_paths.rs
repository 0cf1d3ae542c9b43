//! Per-layer timings and f32 accuracy of the three forward paths of
//! `xnet_model::kernels::conv2d_fast` (direct shifted GEMMs, Winograd F(2×2, 3×3) and
//! F(4×4, 3×3), forced one at a time with `XNET_CONV_PATH=direct|f23|f43`) on XNet's
//! 3×3 layer shapes: every forward convolution and every input-gradient convolution (the
//! same shape with the channels swapped).
//!
//! `cargo run --release --example conv_paths -- --batch 1 --size 200 --threads 2 --reps 5`
//! prints a Markdown table of the minimum wall time and the minimum CPU time per call of each
//! path, and the path `conv2d_fast` picks by default. `--accuracy` prints instead the
//! largest absolute error of each path in f32 against the direct path in f64, on
//! He-initialised weights and post-BN-ReLU-like inputs (`max(N(0, 1), 0)`).
//! `--weight-grad` does either for the weight gradient of each forward layer (output
//! gradient `N(0, 1)`) instead.

use std::time::Instant;

use candle_core::{DType, Device, Tensor};
use clap::Parser;
use rand::{rngs::StdRng, RngExt, SeedableRng};
use xnet_model::kernels::{
    conv2d_fast, conv2d_fast_path, conv2d_fast_weight_grad, conv2d_fast_weight_grad_path,
};

#[derive(Parser, Debug)]
#[command(about = "Time and check the direct / F(2,3) / F(4,3) paths on XNet's layer shapes")]
struct Args {
    /// Images per batch.
    #[arg(long, default_value_t = 1)]
    batch: usize,
    /// Input side of the network (the layers run at side, side/2, side/4, side/8).
    #[arg(long, default_value_t = 200)]
    size: usize,
    /// Worker threads.
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// Timed calls per path and shape (the minimum is reported).
    #[arg(long, default_value_t = 5)]
    reps: usize,
    /// Only the paths listed (comma-separated among direct, f23, f43).
    #[arg(long, default_value = "direct,f23,f43")]
    paths: String,
    /// Only the layers whose label (`n×c_in→c_out @side`) contains this text.
    #[arg(long, default_value = "")]
    only: String,
    /// Print accuracy against f64 instead of timings.
    #[arg(long)]
    accuracy: bool,
    /// Time (or check) the weight gradient of each forward layer instead of the forward
    /// and input-gradient convolutions.
    #[arg(long)]
    weight_grad: bool,
    /// Compare whole-XNet logits (eval and train mode, `batch × 1 × size²`, weights and
    /// input drawn from a fixed seed) of the default paths and of each forced path with the stock candle kernels.
    /// Takes --batch, --size and --threads; the per-layer options are refused beside it.
    #[arg(long)]
    network: bool,
}

/// Largest absolute difference and largest magnitude of `b`.
fn max_diff(a: &Tensor, b: &Tensor) -> candle_core::Result<(f64, f64)> {
    let d = (a - b)?.abs()?.flatten_all()?.max(0)?.to_scalar::<f32>()?;
    let m = b.abs()?.flatten_all()?.max(0)?.to_scalar::<f32>()?;
    Ok((f64::from(d), f64::from(m)))
}

/// Whole-network logits with each kernel choice against the stock candle path.
fn network(args: &Args) -> candle_core::Result<()> {
    use candle_nn::VarMap;
    use xnet_model::models::XNetConfig;
    use xnet_model::ModelConfig;
    let dev = Device::Cpu;
    let varmap = VarMap::new();
    // Fixed weights and input (seed 5, as the kernel timings): runs compare.
    let net = ModelConfig::XNet(XNetConfig::default())
        .build(xnet_model::init::seeded_var_builder(
            &varmap,
            5,
            DType::F32,
            &dev,
        ))
        .map_err(|e| candle_core::Error::Msg(e.to_string()))?;
    let mut rng = StdRng::seed_from_u64(5);
    let pixels: Vec<f32> = (0..args.batch * args.size * args.size)
        .map(|_| rng.random_range(0.0f32..1.0))
        .collect();
    let x = Tensor::from_vec(pixels, (args.batch, 1, args.size, args.size), &dev)?;
    let run = |reference: bool, path: Option<&str>, train: bool| {
        if reference {
            std::env::set_var("XNET_REFERENCE_KERNELS", "1");
        }
        match path {
            Some(p) => set_path(p),
            None => std::env::remove_var("XNET_CONV_PATH"),
        }
        let y = net.forward_t(&x, train);
        std::env::remove_var("XNET_REFERENCE_KERNELS");
        std::env::remove_var("XNET_CONV_PATH");
        y.map_err(|e| candle_core::Error::Msg(e.to_string()))
    };
    for train in [false, true] {
        // Train-mode forwards update running statistics the eval pass does not use here.
        let reference = run(true, None, train)?;
        for path in [None, Some("direct"), Some("f23"), Some("f43")] {
            let (d, m) = max_diff(&run(false, path, train)?, &reference)?;
            println!(
                "xnet {}×1×{}² {} {:<7} max |fast − candle| = {d:.2e}, max |logit| = {m:.3}, ratio {:.1e}",
                args.batch,
                args.size,
                if train { "train" } else { "eval " },
                path.unwrap_or("default"),
                d / m.max(1.0)
            );
        }
    }
    Ok(())
}

/// `(c_in, c_out, divisor of the input side)` of XNet's 3×3 convolutions (64/128/256/512).
const FORWARD: &[(usize, usize, usize)] = &[
    (1, 64, 1),
    (64, 128, 2),
    (128, 256, 4),
    (256, 512, 8),
    (512, 512, 8),
    (512, 256, 4),
    (512, 128, 2),
    (256, 128, 2),
    (256, 64, 1),
];

/// CPU time of the whole process in seconds: the sum over its threads of the run time in
/// `/proc/self/task/*/schedstat` (nanoseconds; robust to other processes' load, unlike the
/// wall clock, though rayon's idle spinning counts).
fn cpu_seconds() -> f64 {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return 0.0;
    };
    let mut ns = 0u64;
    for t in tasks.flatten() {
        if let Ok(s) = std::fs::read_to_string(t.path().join("schedstat")) {
            ns += s
                .split_whitespace()
                .next()
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0);
        }
    }
    ns as f64 * 1e-9
}

fn normal(rng: &mut StdRng) -> f64 {
    let u1: f64 = rng.random_range(f64::EPSILON..1.0);
    let u2: f64 = rng.random_range(0.0..1.0);
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}

/// Forces a path for the following calls (read by the kernels on every call; set between
/// calls, never while one runs).
fn set_path(path: &str) {
    std::env::set_var("XNET_CONV_PATH", path);
}

/// The 3×3 layer shapes `(c_in, c_out, side)` timed or checked: the forward shapes, then
/// the input-gradient shapes (channels swapped) not already listed (forward only with
/// `--weight-grad`).
fn shapes(args: &Args) -> Vec<(usize, usize, usize)> {
    let mut shapes: Vec<(usize, usize, usize)> = Vec::new();
    for &(ci, co, d) in FORWARD {
        let transposed = (co, ci, args.size / d);
        let candidates = if args.weight_grad {
            vec![(ci, co, args.size / d)]
        } else {
            vec![(ci, co, args.size / d), transposed]
        };
        for s in candidates {
            if !shapes.contains(&s) {
                shapes.push(s);
            }
        }
    }
    shapes
}

/// A layer's label in the table, which `--only` matches.
fn label(n: usize, ci: usize, co: usize, side: usize) -> String {
    format!("{n}×{ci}→{co} @{side}")
}

/// The options that would print a table of zeros, infinities or dashes, or none: a batch or
/// repeat count of 0 (every time 0.0, or inf), a size whose smallest layer (side / 8) is
/// empty, a `--paths` entry that is no path (every cell "–"), an `--only` no layer matches
/// (a table without rows); and the per-layer options beside `--network`, which compares
/// every path once over the whole network and used none of them without a word.
fn check_args(args: &Args) -> Result<(), String> {
    if args.network {
        let ignored: Vec<&str> = [
            ("--accuracy", args.accuracy),
            ("--weight-grad", args.weight_grad),
            ("--reps", args.reps != 5),
            ("--paths", args.paths != "direct,f23,f43"),
            ("--only", !args.only.is_empty()),
        ]
        .into_iter()
        .filter(|&(_, given)| given)
        .map(|(flag, _)| flag)
        .collect();
        if !ignored.is_empty() {
            return Err(format!(
                "{} do{} not apply to --network (whole-XNet logits of the default and of \
                 every forced path against stock candle, once each): leave {} out, or drop \
                 --network for the per-layer tables",
                ignored.join(", "),
                if ignored.len() == 1 { "es" } else { "" },
                if ignored.len() == 1 { "it" } else { "them" }
            ));
        }
    }
    let zero: Vec<&str> = [
        ("--batch", args.batch),
        ("--reps", args.reps),
        ("--threads", args.threads),
    ]
    .into_iter()
    .filter(|&(_, v)| v == 0)
    .map(|(flag, _)| flag)
    .collect();
    if !zero.is_empty() {
        return Err(format!("{} must be at least 1", zero.join(", ")));
    }
    if args.size < 8 || !args.size.is_multiple_of(8) {
        return Err(format!(
            "--size must be a positive multiple of 8 (the layers run at side, side/2, side/4 \
             and side/8), got {}",
            args.size
        ));
    }
    const PATHS: [&str; 3] = ["direct", "f23", "f43"];
    if let Some(bad) = args.paths.split(',').find(|p| !PATHS.contains(&p.trim())) {
        return Err(format!(
            "--paths: {bad:?} is not a path; expected a comma-separated list among {}",
            PATHS.join(", ")
        ));
    }
    let labels: Vec<String> = shapes(args)
        .into_iter()
        .map(|(ci, co, s)| label(args.batch, ci, co, s))
        .collect();
    if !args.network && !labels.iter().any(|l| l.contains(&args.only)) {
        return Err(format!(
            "--only {:?} matches no layer; the layers: {}",
            args.only,
            labels.join(", ")
        ));
    }
    Ok(())
}

fn main() -> candle_core::Result<()> {
    xnet_model::runtime::exit_quietly_on_closed_pipe();
    let args = Args::parse();
    if let Err(e) = check_args(&args) {
        eprintln!("conv_paths: {e}");
        std::process::exit(2);
    }
    // As the throughput example and the trainer: large freed buffers stay mapped, so the
    // timings do not include the page faults a long-running process avoids.
    xnet_model::memory::keep_freed_memory();
    rayon::ThreadPoolBuilder::new()
        .num_threads(args.threads)
        .build_global()
        .map_err(|e| candle_core::Error::Msg(e.to_string()))?;
    if args.network {
        return network(&args);
    }
    let dev = Device::Cpu;
    let shapes = shapes(&args);
    let mut rng = StdRng::seed_from_u64(5);
    if args.accuracy {
        println!("| layer | max abs ref | direct f32 | F(2,3) f32 | F(4,3) f32 | F(4,3) f64 |");
        println!("|---|---|---|---|---|---|");
    } else {
        println!(
            "| layer (n×c_in→c_out @side) | direct ms (cpu) | F(2,3) ms (cpu) | F(4,3) ms (cpu) | default |"
        );
        println!("|---|---|---|---|---|");
    }
    for &(ci, co, s) in &shapes {
        let n = args.batch;
        let label = label(n, ci, co, s);
        if !label.contains(&args.only) {
            continue;
        }
        let x: Vec<f64> = (0..n * ci * s * s)
            .map(|_| normal(&mut rng).max(0.0))
            .collect();
        let he = (2.0 / (9.0 * ci as f64)).sqrt();
        let w: Vec<f64> = (0..co * ci * 9).map(|_| he * normal(&mut rng)).collect();
        let dy: Vec<f64> = (0..n * co * s * s).map(|_| normal(&mut rng)).collect();
        let dy64 = Tensor::from_vec(dy, (n, co, s, s), &dev)?;
        let dy32 = dy64.to_dtype(DType::F32)?;
        let x64 = Tensor::from_vec(x, (n, ci, s, s), &dev)?;
        let w64 = Tensor::from_vec(w, (co, ci, 3, 3), &dev)?;
        let x32 = x64.to_dtype(DType::F32)?;
        let w32 = w64.to_dtype(DType::F32)?;
        let winograd = ci >= 2 && co >= 2;
        let paths: &[&str] = if winograd {
            &["direct", "f23", "f43"]
        } else {
            &["direct"]
        };
        if args.accuracy {
            // The operation checked: the forward, or with --weight-grad the weight gradient.
            let op = |x: &Tensor, w: &Tensor, dy: &Tensor| {
                if args.weight_grad {
                    conv2d_fast_weight_grad(x, dy, 3, 1)
                } else {
                    conv2d_fast(x, w, None, 1, false)
                }
            };
            set_path("direct");
            let reference = op(&x64, &w64, &dy64)?;
            let max_ref = reference.abs()?.flatten_all()?.max(0)?.to_scalar::<f64>()?;
            let err = |y: &Tensor| -> candle_core::Result<f64> {
                (y.to_dtype(DType::F64)? - &reference)?
                    .abs()?
                    .flatten_all()?
                    .max(0)?
                    .to_scalar::<f64>()
            };
            let mut cells = Vec::new();
            for p in ["direct", "f23", "f43"] {
                set_path(p);
                cells.push(if paths.contains(&p) {
                    let e = err(&op(&x32, &w32, &dy32)?)?;
                    format!("{e:.2e} ({:.1e} rel)", e / max_ref)
                } else {
                    "–".into()
                });
            }
            set_path("f43");
            let e64 = if winograd {
                format!("{:.1e}", err(&op(&x64, &w64, &dy64)?)?)
            } else {
                "–".into()
            };
            println!(
                "| {label} | {max_ref:.3} | {} | {} | {} | {e64} |",
                cells[0], cells[1], cells[2]
            );
            continue;
        }
        let b = Tensor::zeros(co, DType::F32, &dev)?;
        let mut cells = Vec::new();
        for p in ["direct", "f23", "f43"] {
            if !paths.contains(&p) || !args.paths.split(',').any(|q| q.trim() == p) {
                cells.push("–".to_string());
                continue;
            }
            set_path(p);
            let run = || {
                if args.weight_grad {
                    conv2d_fast_weight_grad(&x32, &dy32, 3, 1)
                } else {
                    conv2d_fast(&x32, &w32, Some(&b), 1, true)
                }
            };
            drop(run()?);
            let (mut best, mut cpu) = (f64::INFINITY, f64::INFINITY);
            for _ in 0..args.reps {
                let (t0, c0) = (Instant::now(), cpu_seconds());
                drop(run()?);
                best = best.min(t0.elapsed().as_secs_f64());
                cpu = cpu.min(cpu_seconds() - c0);
            }
            cells.push(format!("{:.1} ({:.1})", 1e3 * best, 1e3 * cpu));
        }
        std::env::remove_var("XNET_CONV_PATH");
        println!(
            "| {label} | {} | {} | {} | {} |",
            cells[0],
            cells[1],
            cells[2],
            if args.weight_grad {
                conv2d_fast_weight_grad_path(n, ci, co, s, s, 3, 1)
            } else {
                conv2d_fast_path(n, ci, co, s, s, 3, 1)
            }
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(extra: &[&str]) -> Args {
        let mut argv = vec!["conv_paths"];
        argv.extend_from_slice(extra);
        Args::try_parse_from(argv).expect("parses")
    }

    /// Each of these printed a table of zeros (--batch 0), infinities (--reps 0), dashes
    /// (--paths bogus), empty layers (--size 4) or no row at all (--only nothing), and
    /// exited 0.
    #[test]
    fn options_that_measure_nothing_are_refused_by_name() {
        for (argv, flag) in [
            (&["--batch", "0"][..], "--batch"),
            (&["--reps", "0"], "--reps"),
            (&["--threads", "0"], "--threads"),
            (&["--size", "4"], "--size"),
            (&["--size", "100"], "--size"),
            (&["--paths", "direct,bogus"], "\"bogus\""),
            (&["--only", "nothing"], "--only"),
        ] {
            let e = check_args(&parse(argv)).expect_err("refused");
            assert!(e.contains(flag), "{argv:?}: {e}");
        }
        assert!(check_args(&parse(&[])).is_ok());
        assert!(check_args(&parse(&[
            "--size", "32", "--paths", "f23, f43", "--only", "@4"
        ]))
        .is_ok());
    }

    /// `--network` compares whole-XNet logits once per path: --accuracy, --weight-grad,
    /// --reps, --paths and --only were accepted beside it and ignored, so
    /// `--network --weight-grad` printed the forward's logits as if they were gradients.
    #[test]
    fn per_layer_options_beside_network_are_refused_by_name() {
        for (argv, flag) in [
            (&["--network", "--accuracy"][..], "--accuracy"),
            (&["--network", "--weight-grad"], "--weight-grad"),
            (&["--network", "--reps", "3"], "--reps"),
            (&["--network", "--paths", "f23"], "--paths"),
            (&["--network", "--only", "@25"], "--only"),
        ] {
            let e = check_args(&parse(argv)).expect_err("refused");
            assert!(e.contains(flag) && e.contains("--network"), "{argv:?}: {e}");
        }
        assert!(check_args(&parse(&["--network", "--batch", "2", "--size", "64"])).is_ok());
    }
}
