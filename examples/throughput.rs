//! CPU throughput of the crate's networks, printed as one JSON line in the same shape as the
//! PyTorch twin (`../shared/peers/xnet_torch.py --json`), so both can run alternately.
//!
//! ```text
//! RAYON_NUM_THREADS=2 cargo run --release --example throughput -- \
//!     --model xnet --mode forward --batch 1 --size 200 --threads 2 --iters 5
//! ```
//!
//! `forward`: eval mode + softmax over classes (batch-norm folded into the convolutions
//! unless `--no-fold`). `train`: forward with batch statistics, cross-entropy + 5e-4·Σw²
//! over the convolution kernels, backward and one Adam step (lr 1e-4), as the twin does.
//! `--reference` forces the stock candle kernels (`XNET_REFERENCE_KERNELS=1`). On the CPU,
//! a batch and size whose tensors would not fit the memory available are refused up front,
//! and so is an option of another mode (`--tile`, `--overlap`, `--tile-batch` outside
//! `--mode tiled`, `--no-fold` in it, `--candle-backward` outside `--mode train`, a
//! `--batch` other than 1 in tiled mode). `--seed` draws the weights (as `train` does), the
//! input and the labels, so two runs with one seed time the same network. `gflop_per_image`
//! counts the convolutions (2 FLOPs per multiply-accumulate) of one forward pass at `--size`,
//! times 3 in train mode; `images_per_s` is `--batch` over the median wall time of a step
//! (input creation excluded; softmax, loss, backward and optimiser step included where the
//! mode has them); `cpu` and `threads` say where it ran.

use std::time::Instant;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarMap;
use clap::parser::ValueSource;
use clap::{ArgMatches, CommandFactory, FromArgMatches, Parser, ValueEnum};
use rand::{rngs::StdRng, RngExt, SeedableRng};
use xnet_model::init::seeded_var_builder;
use xnet_model::models::{
    count_trainable_parameters, DeepLabConfig, SegNetConfig, Segmenter, UNetConfig, Upsampling,
    XNetConfig,
};
use xnet_model::optim::{Optimizer, OptimizerConfig};
use xnet_model::ModelConfig;

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Model {
    Xnet,
    Unet,
    Segnet,
    /// DeepLab-lite (`DeepLabConfig::default()`: dilated ASPP, bilinear up-sampling). The
    /// PyTorch twin has no counterpart, so only this side runs.
    Deeplab,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Mode {
    Forward,
    Train,
    /// Whole-radiograph inference by tiles (`xnet_model::infer::predict_proba`) of one
    /// `size × size` plane; `--batch` does not apply (refused unless 1), `--tile-batch` does.
    Tiled,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum DeviceKind {
    Cpu,
    /// The first CUDA GPU (needs a build with `--features cuda`).
    Cuda,
}

/// Images per second of a network's forward pass or training step on the CPU or a CUDA GPU.
#[derive(Debug, Parser)]
struct Args {
    /// Network, configured as the PyTorch twin's (XNet 64/128/256/512; 3-level U-Net with
    /// nearest up-sampling; SimpleSegNet), or DeepLab-lite with its defaults.
    #[arg(long, value_enum, default_value = "xnet")]
    model: Model,
    /// `forward` (inference + softmax) or `train` (forward, loss, backward, Adam step with
    /// `xnet_model::optim`, lr 1e-4, as the twin's `torch.optim.Adam`).
    #[arg(long, value_enum, default_value = "forward")]
    mode: Mode,
    /// Where to run. The timer stops after the device has finished (`synchronize`).
    #[arg(long, value_enum, default_value = "cpu")]
    device: DeviceKind,
    /// Images per batch.
    #[arg(long, default_value_t = 8)]
    batch: usize,
    /// Square image side in pixels: a multiple of 8 in forward and train mode, any side in
    /// tiled mode (the plane is padded and cropped as a radiograph is).
    #[arg(long, default_value_t = 128)]
    size: usize,
    /// Worker threads (rayon's global pool, which candle and the kernels share).
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// Timed iterations (the median is reported).
    #[arg(long, default_value_t = 5)]
    iters: usize,
    /// Untimed warm-up iterations.
    #[arg(long, default_value_t = 2)]
    warmup: usize,
    /// Use the stock candle kernels instead of `xnet_model::kernels`.
    #[arg(long)]
    reference: bool,
    /// Keep the batch-norms separate in forward mode (the twin does not fold them either);
    /// refused in tiled mode, which always folds (train mode never folds).
    #[arg(long)]
    no_fold: bool,
    /// Tiled mode only: tile side (a multiple of the model's size multiple).
    #[arg(long, default_value_t = 256)]
    tile: usize,
    /// Tiled mode only: overlap between neighbouring tiles, pixels.
    #[arg(long, default_value_t = 32)]
    overlap: usize,
    /// Tiled mode only: tiles per forward pass.
    #[arg(long, default_value_t = 1)]
    tile_batch: usize,
    /// Random seed for weights, input and labels.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Leave the C allocator at its defaults instead of calling
    /// `xnet_model::memory::keep_freed_memory` (which stops large freed buffers from being
    /// returned to the kernel and page-faulted in again on the next step).
    #[arg(long)]
    malloc_default: bool,
    /// Leave candle's thread pool at its defaults (workers spin after each job, one per
    /// core) instead of calling `xnet_model::runtime::tune_candle_threads`.
    #[arg(long)]
    candle_default: bool,
    /// Train mode only: candle's own `loss.backward()` instead of `xnet_model::kernels::backward`
    /// (which hands the convolutions' parameter gradients over without candle's serial
    /// `zeros_like + add`).
    #[arg(long)]
    candle_backward: bool,
    /// Free text copied into the JSON record.
    #[arg(long, default_value = "")]
    tag: String,
}

/// CPU time of this process so far (all threads), from `/proc/self/task/*/schedstat`, in
/// seconds; 0 where that is unavailable. On a shared machine it separates our work from
/// waiting for a core.
fn process_cpu_s() -> f64 {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return 0.0;
    };
    tasks
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next()?.parse::<f64>().ok())
        .sum::<f64>()
        / 1e9
}

/// On-CPU seconds of the calling thread: candle's element-wise ops and the backward's
/// gradient accumulation run here while the pool's workers wait, so it measures the
/// step's serial part.
fn calling_thread_cpu_s() -> f64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<f64>().ok())
        .map_or(0.0, |ns| ns / 1e9)
}

/// Where a timed step started: wall clock, process CPU and calling-thread CPU.
struct StepStart {
    at: Instant,
    cpu_s: f64,
    calling_cpu_s: f64,
}

impl StepStart {
    fn now() -> Self {
        Self {
            at: Instant::now(),
            cpu_s: process_cpu_s(),
            calling_cpu_s: calling_thread_cpu_s(),
        }
    }
}

/// Wall, process-CPU and calling-thread-CPU seconds of the timed (post-warm-up) steps.
#[derive(Default)]
struct StepTimes {
    wall: Vec<f64>,
    cpu: Vec<f64>,
    calling_cpu: Vec<f64>,
}

impl StepTimes {
    /// Records a step that began at `start` and took `wall` seconds.
    fn record(&mut self, start: &StepStart, wall: f64) {
        self.wall.push(wall);
        self.cpu.push(process_cpu_s() - start.cpu_s);
        self.calling_cpu
            .push(calling_thread_cpu_s() - start.calling_cpu_s);
    }
}

/// Refuses a run whose tensors would not fit the memory the machine has available
/// (`MemAvailable` of `/proc/meminfo`; no check where that cannot be read): an allocation
/// that fails aborts the process without a word on the options, and one that the kernel
/// grants then swaps or is killed.
///
/// The per-pixel figures are peak resident memory measured with `/usr/bin/time -f %M` at
/// batch 2, 128² against 256² (2026-11-30): forward 4.7 KB (XNet), 2.5 KB (U-Net), 1.7 KB
/// (SegNet) per input pixel, train 10.9, 9.0 and 5.4 KB; taken as 8 KB and 16 KB to cover
/// DeepLab-lite (unmeasured) with room. Tiled mode holds the plane, its class
/// probabilities, the blending weights and one batch of tiles.
fn check_memory(args: &Args, classes: usize) -> Result<(), Box<dyn std::error::Error>> {
    let Some(available) = available_memory_bytes() else {
        return Ok(());
    };
    let side = args.size as u128;
    // Per mode: images of `side²` held at once, bytes per input pixel, bytes of the tile
    // batch, and the options named in the refusal.
    let (images, per_pixel, tiles, options, lower) = match args.mode {
        Mode::Forward | Mode::Train => (
            args.batch as u128,
            if args.mode == Mode::Train {
                16 << 10
            } else {
                8 << 10
            },
            0,
            format!("--batch {} --size {}", args.batch, args.size),
            "--batch or --size",
        ),
        Mode::Tiled => (
            1,
            4 * (2 + 2 * classes as u128),
            (args.tile_batch as u128)
                .saturating_mul((args.tile as u128).saturating_pow(2))
                .saturating_mul(8 << 10),
            format!(
                "--size {} --tile {} --tile-batch {}",
                args.size, args.tile, args.tile_batch
            ),
            "--size, --tile or --tile-batch",
        ),
    };
    // Saturating: `--size` near 2^64 must be refused, not wrap to a small need.
    let need = images
        .saturating_mul(side)
        .saturating_mul(side)
        .saturating_mul(per_pixel)
        .saturating_add(tiles);
    if need > u128::from(available) {
        let gib = |b: u128| b as f64 / f64::from(1u32 << 30);
        return Err(format!(
            "{options} needs about {:.1} GiB, more than the {:.1} GiB this machine has \
             available: lower {lower}",
            gib(need),
            gib(u128::from(available)),
        )
        .into());
    }
    Ok(())
}

/// The sides the mode needs: the network input (`--size` in forward and train mode, `--tile`
/// in tiled mode) a positive multiple of the model's size multiple `m`, and in tiled mode an
/// overlap smaller than the tile. Tiled mode pads and crops a plane of any size, as it does a
/// radiograph; `--size 500 --mode tiled` was refused ("--size must be a positive multiple of
/// 8") while `--tile` went unchecked until the tiler named it `tile_size`.
fn check_sizes(args: &Args, m: usize) -> Result<(), String> {
    match args.mode {
        Mode::Forward | Mode::Train => {
            if args.size == 0 || !args.size.is_multiple_of(m) {
                return Err(format!(
                    "--size must be a positive multiple of {m}, got {}",
                    args.size
                ));
            }
        }
        Mode::Tiled => {
            if args.size == 0 {
                return Err("--size must be at least 1".into());
            }
            if args.tile == 0 || !args.tile.is_multiple_of(m) {
                return Err(format!(
                    "--tile must be a positive multiple of {m}, got {}",
                    args.tile
                ));
            }
            if args.overlap >= args.tile {
                return Err(format!(
                    "--overlap {} must be smaller than --tile {}",
                    args.overlap, args.tile
                ));
            }
        }
    }
    Ok(())
}

/// `MemAvailable` of `/proc/meminfo`, bytes; `None` where it cannot be read.
fn available_memory_bytes() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    kib.checked_mul(1024)
}

/// The twin's `bn_buffers`: elements of the batch-norms' running means and variances (the
/// variables [`count_trainable_parameters`] leaves out).
fn bn_buffer_count(varmap: &VarMap) -> usize {
    let data = varmap.data().lock().unwrap_or_else(|e| e.into_inner());
    data.iter()
        .filter(|(name, _)| name.ends_with("running_mean") || name.ends_with("running_var"))
        .map(|(_, v)| v.elem_count())
        .sum()
}

/// The network of `cfg` with its weights drawn from `seed` (`--seed`). It was built with
/// `VarBuilder::from_varmap`, whose draws candle's unseeded generator makes, so `--seed`
/// ("for weights, input and labels") set the input and labels only, and two runs timed and
/// trained different networks.
fn build_network(
    cfg: &ModelConfig,
    seed: u64,
    dev: &Device,
) -> xnet_model::Result<(VarMap, Box<dyn Segmenter>)> {
    let varmap = VarMap::new();
    let net = cfg.build(seeded_var_builder(&varmap, seed, DType::F32, dev))?;
    Ok((varmap, net))
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    if s.len() % 2 == 1 {
        s[s.len() / 2]
    } else {
        0.5 * (s[s.len() / 2 - 1] + s[s.len() / 2])
    }
}

fn main() {
    xnet_model::runtime::exit_quietly_on_closed_pipe();
    if let Err(e) = run() {
        eprintln!("throughput: {e}");
        std::process::exit(1);
    }
}

/// A flag given on the command line for a mode that does not use it: `--tile`,
/// `--overlap` and `--tile-batch` outside `--mode tiled`, `--no-fold` in `--mode tiled`
/// (which always folds; train mode never folds, so it is harmless there and
/// `scripts/compare_throughput.sh`'s `EXTRA="--no-fold"` keeps working), `--candle-backward`
/// outside `--mode train`, and a `--batch` other than 1 in tiled mode (one plane per call).
/// Each was ignored without a word, and the JSON record did not say so: `--mode tiled
/// --no-fold` timed a folded network, `--mode forward --candle-backward` printed
/// `"candle_backward": true`.
fn unused_mode_flag(matches: &ArgMatches, args: &Args) -> Option<String> {
    let given = |id: &str| matches.value_source(id) == Some(ValueSource::CommandLine);
    let mode = |m: Mode| {
        ValueEnum::to_possible_value(&m)
            .map(|v| v.get_name().to_string())
            .unwrap_or_default()
    };
    let flags: [(&str, &str, &[Mode]); 5] = [
        ("tile", "--tile", &[Mode::Tiled]),
        ("overlap", "--overlap", &[Mode::Tiled]),
        ("tile_batch", "--tile-batch", &[Mode::Tiled]),
        ("no_fold", "--no-fold", &[Mode::Forward, Mode::Train]),
        ("candle_backward", "--candle-backward", &[Mode::Train]),
    ];
    if let Some((_, flag, modes)) = flags
        .into_iter()
        .find(|&(id, _, modes)| given(id) && !modes.contains(&args.mode))
    {
        let modes: Vec<String> = modes
            .iter()
            .map(|&m| format!("--mode {}", mode(m)))
            .collect();
        return Some(format!(
            "{flag} applies to {} only, and this call runs --mode {}: leave {flag} out",
            modes.join(" and "),
            mode(args.mode)
        ));
    }
    if args.mode == Mode::Tiled && given("batch") && args.batch != 1 {
        return Some(format!(
            "--batch {} does not apply to --mode tiled (one plane per call; tiles per pass \
             are --tile-batch): leave --batch out",
            args.batch
        ));
    }
    None
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let mut command = Args::command();
    let matches = command.get_matches_mut();
    let args = Args::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    if let Some(message) = unused_mode_flag(&matches, &args) {
        command
            .error(clap::error::ErrorKind::ArgumentConflict, message)
            .exit();
    }
    let kept_freed_memory = !args.malloc_default && xnet_model::memory::keep_freed_memory();
    let candle_threads = (!args.candle_default).then(xnet_model::runtime::tune_candle_threads);
    if args.iters == 0 || args.batch == 0 || args.threads == 0 {
        return Err("--iters, --batch and --threads must be at least 1".into());
    }
    if args.reference {
        // Before any thread starts: the kernels read it on every call.
        std::env::set_var("XNET_REFERENCE_KERNELS", "1");
    }
    // candle sizes its own gemm parallelism from RAYON_NUM_THREADS as well.
    std::env::set_var("RAYON_NUM_THREADS", args.threads.to_string());
    rayon::ThreadPoolBuilder::new()
        .num_threads(args.threads)
        .build_global()?;

    let cfg = match args.model {
        Model::Xnet => ModelConfig::XNet(XNetConfig::default()),
        // The twin's U-Net: 3 levels of 64/128/256, 512 bottleneck, nearest ×2 + conv up.
        Model::Unet => ModelConfig::UNet(UNetConfig {
            depth: 3,
            upsampling: Upsampling::Nearest,
            ..Default::default()
        }),
        // The twin's SimpleSegNet (the XNet paper's comparator).
        Model::Segnet => ModelConfig::SegNet(SegNetConfig::simple()),
        Model::Deeplab => ModelConfig::DeepLab(DeepLabConfig::default()),
    };
    check_sizes(&args, cfg.size_multiple())?;
    if args.device == DeviceKind::Cpu {
        check_memory(&args, cfg.num_classes())?;
    }
    let dev = match args.device {
        DeviceKind::Cpu => Device::Cpu,
        DeviceKind::Cuda => xnet_model::runtime::device_by_name("cuda")?,
    };
    let (varmap, mut net) = build_network(&cfg, args.seed, &dev)?;
    let params = count_trainable_parameters(&varmap);
    let bn_buffers = bn_buffer_count(&varmap);

    let mut rng = StdRng::seed_from_u64(args.seed);
    // Tiled mode runs one plane; the batch tensors below stay small.
    let n = if args.mode == Mode::Tiled {
        1
    } else {
        args.batch
    };
    let s = args.size;
    let x: Vec<f32> = (0..n * s * s).map(|_| rng.random::<f32>()).collect();
    let x = Tensor::from_vec(x, (n, cfg.in_channels(), s, s), &dev)?;
    let classes = cfg.num_classes();
    let y: Vec<u32> = (0..n * s * s)
        .map(|_| rng.random_range(0..classes as u32))
        .collect();
    let y = Tensor::from_vec(y, n * s * s, &dev)?;

    let mut folded = false;
    let mut steps = StepTimes::default();
    // Train mode: wall seconds of [forward + loss, backward, L2 gradient + optimiser step].
    let mut phases: Vec<[f64; 3]> = Vec::with_capacity(args.iters);
    match args.mode {
        Mode::Forward => {
            if !args.no_fold {
                folded = net.fold_batch_norm()? > 0;
            }
            for i in 0..args.warmup + args.iters {
                let t0 = StepStart::now();
                let p = candle_nn::ops::softmax(&net.forward_t(&x, false)?, 1)?;
                // candle is eager on the CPU; a GPU runs asynchronously.
                let _ = p.dims();
                dev.synchronize()?;
                let dt = t0.at.elapsed().as_secs_f64();
                if i >= args.warmup {
                    steps.record(&t0, dt);
                }
            }
        }
        Mode::Tiled => {
            folded = net.fold_batch_norm()? > 0;
            let opts = xnet_model::infer::InferenceOptions {
                tile_size: args.tile,
                overlap: args.overlap,
                batch_size: args.tile_batch,
                device: dev.clone(),
                ..Default::default()
            };
            let plane: Vec<f32> = (0..s * s).map(|_| rng.random::<f32>()).collect();
            for i in 0..args.warmup + args.iters {
                let t0 = StepStart::now();
                let p = xnet_model::infer::predict_proba(net.as_ref(), &plane, s, s, &opts)?;
                let _ = p.len();
                let dt = t0.at.elapsed().as_secs_f64();
                if i >= args.warmup {
                    steps.record(&t0, dt);
                }
            }
        }
        Mode::Train => {
            // Kernels of the convolutions: the rank-4 variables.
            let kernels: Vec<_> = varmap
                .all_vars()
                .into_iter()
                .filter(|v| v.rank() == 4)
                .collect();
            // The library's optimiser (the trainer's): Adam as the twin's, L2 in the loss.
            let mut opt = Optimizer::from_varmap(OptimizerConfig::adam(1e-4), &varmap)?;
            for i in 0..args.warmup + args.iters {
                let t0 = StepStart::now();
                let logits = net.forward_t(&x, true)?;
                // [N, C, H, W] -> [N·H·W, C] for the per-pixel cross-entropy.
                let flat = logits.permute((0, 2, 3, 1))?.reshape(((), classes))?;
                let ce = candle_nn::loss::cross_entropy(&flat, &y)?;
                dev.synchronize()?;
                let t_forward = t0.at.elapsed().as_secs_f64();
                // As the trainer does: parameter gradients without candle's serial
                // accumulation (`--candle-backward` times candle's own).
                let mut grads = if args.candle_backward {
                    ce.backward()?
                } else {
                    xnet_model::kernels::backward(&ce)?
                };
                dev.synchronize()?;
                let t_backward = t0.at.elapsed().as_secs_f64();
                // L2 5e-4 on the kernels as the twin's loss, its gradient 2λw added directly
                // (as the trainer does; the same gradient as back-propagating λΣw²).
                xnet_model::loss::add_l2_gradient(&mut grads, &kernels, 5e-4)?;
                opt.step(&grads)?;
                let _ = ce.to_dtype(DType::F32)?.to_scalar::<f32>()?;
                dev.synchronize()?;
                let dt = t0.at.elapsed().as_secs_f64();
                if i >= args.warmup {
                    steps.record(&t0, dt);
                    phases.push([t_forward, t_backward - t_forward, dt - t_backward]);
                }
            }
        }
    }
    let mut sorted = steps.wall.clone();
    sorted.sort_by(f64::total_cmp);
    let median_s = median(&steps.wall);
    let cpu_median = median(&steps.cpu);
    let fwd_flops = cfg.forward_flops(s, s) as f64;
    // Forward + backward is 3× the forward convolution FLOPs (as the twin's FlopCounter).
    let flops_per_image = match args.mode {
        // Nominal (un-tiled) FLOPs: overlapping tiles do more work than this.
        Mode::Forward | Mode::Tiled => fwd_flops,
        Mode::Train => 3.0 * fwd_flops,
    };
    let images_per_s = n as f64 / median_s;
    let record = serde_json::json!({
        "impl": "xray-seg",
        "model": format!("{:?}", args.model).to_lowercase(),
        "mode": format!("{:?}", args.mode).to_lowercase(),
        "batch": n,
        "size": s,
        "threads": args.threads,
        "device": format!("{:?}", args.device).to_lowercase(),
        "iters": args.iters,
        "warmup": args.warmup,
        "median_s": median_s,
        "min_s": sorted[0],
        "cpu_s_median": cpu_median,
        "calling_thread_cpu_s_median": median(&steps.calling_cpu),
        "max_s": sorted[sorted.len() - 1],
        "images_per_s": images_per_s,
        "params": params,
        "params_trainable": params,
        "bn_buffers": bn_buffers,
        "gflop_per_image": flops_per_image / 1e9,
        "achieved_gflops": flops_per_image * images_per_s / 1e9,
        "keep_freed_memory": kept_freed_memory,
        "candle_workers_park_at_once": candle_threads.is_some_and(|t| t.workers_park_at_once),
        "candle_single_threaded": candle_threads.is_some_and(|t| t.single_threaded),
        "candle_backward": args.candle_backward,
        // Train mode: medians of the forward (with the loss), backward and update phases.
        "phase_s": if phases.is_empty() {
            serde_json::Value::Null
        } else {
            serde_json::json!({
                "forward": median(&phases.iter().map(|p| p[0]).collect::<Vec<_>>()),
                "backward": median(&phases.iter().map(|p| p[1]).collect::<Vec<_>>()),
                "update": median(&phases.iter().map(|p| p[2]).collect::<Vec<_>>()),
            })
        },
        "kernels": if xnet_model::kernels::fast_kernels_enabled() { "fast" } else { "reference" },
        // The same VM has changed CPU generation under the project (Zen 3 → Zen 4).
        "cpu": xray_seg::compare::CpuInfo::current(),
        "bn_folded": folded,
        "tag": args.tag,
    });
    println!("{record}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The record carried the twin's `params_trainable` but not its `bn_buffers`, so the two
    /// networks' sizes could be set side by side only in part. XNet at the paper's widths has
    /// 14 batch-normed blocks of 64, 128, 256, 512, 512, 256, 128, 128, 256, 512, 512, 256,
    /// 128 and 64 channels (`xnet_torch.py`'s c1–c14): 2 × 3712 running statistics.
    #[test]
    fn bn_buffers_count_the_running_statistics_as_the_twin_does() {
        let varmap = VarMap::new();
        let cfg = ModelConfig::XNet(XNetConfig::default());
        cfg.build(candle_nn::VarBuilder::from_varmap(
            &varmap,
            DType::F32,
            &Device::Cpu,
        ))
        .expect("builds");
        assert_eq!(bn_buffer_count(&varmap), 7424);
        assert_eq!(count_trainable_parameters(&varmap), 11_734_851);
    }

    /// `--seed` is "for weights, input and labels": the weights were drawn by candle's
    /// unseeded generator, so two runs with one seed timed and trained different networks.
    #[test]
    fn the_seed_sets_the_weights() {
        let cfg = ModelConfig::XNet(XNetConfig {
            base_width: 2,
            ..Default::default()
        });
        let weights = |seed| {
            let (varmap, _) = build_network(&cfg, seed, &Device::Cpu).expect("builds");
            let data = varmap.data().lock().expect("not poisoned");
            let mut all: Vec<(String, Vec<f32>)> = data
                .iter()
                .map(|(k, v)| {
                    let values = v.flatten_all().and_then(|t| t.to_vec1()).expect("f32");
                    (k.clone(), values)
                })
                .collect();
            all.sort_by(|a, b| a.0.cmp(&b.0));
            all
        };
        assert_eq!(weights(3), weights(3));
        assert_ne!(weights(3), weights(4));
    }

    fn parse(argv: &[&str]) -> Args {
        Args::try_parse_from(argv).expect("parses")
    }

    /// Tiled mode times a plane of any size (the tiler pads and crops it), so only its tile
    /// must be a multiple of the network's; forward and train mode feed `--size` to it.
    #[test]
    fn tiled_mode_checks_the_tile_not_the_plane() {
        let ok = |argv: &[&str]| check_sizes(&parse(argv), 8);
        assert_eq!(ok(&["t", "--mode", "tiled", "--size", "500"]), Ok(()));
        assert_eq!(ok(&["t", "--mode", "tiled", "--size", "2000"]), Ok(()));
        for (argv, flag) in [
            (&["t", "--mode", "tiled", "--tile", "100"][..], "--tile"),
            (&["t", "--mode", "tiled", "--tile", "0"], "--tile"),
            (&["t", "--mode", "tiled", "--size", "0"], "--size"),
            (
                &["t", "--mode", "tiled", "--tile", "64", "--overlap", "64"],
                "--overlap",
            ),
            (&["t", "--size", "500"], "--size"),
            (&["t", "--mode", "train", "--size", "0"], "--size"),
        ] {
            let e = ok(argv).expect_err("refused");
            assert!(e.contains(flag), "{argv:?}: {e}");
        }
        assert_eq!(ok(&["t", "--size", "200"]), Ok(()));
    }

    fn check(argv: &[&str]) -> Option<String> {
        let matches = Args::command().try_get_matches_from(argv).expect("parses");
        let args = Args::from_arg_matches(&matches).expect("parses");
        unused_mode_flag(&matches, &args)
    }

    /// Each of these was ignored without a word and the run timed something else than asked:
    /// `--no-fold` in tiled mode (which always folds), the tile options outside
    /// tiled mode, `--candle-backward` outside train mode, `--batch 8` in tiled mode.
    #[test]
    fn a_flag_of_another_mode_is_refused_by_name() {
        for (argv, flag) in [
            (&["t", "--mode", "tiled", "--no-fold"][..], "--no-fold"),
            (&["t", "--tile", "128"], "--tile"),
            (&["t", "--mode", "train", "--overlap", "16"], "--overlap"),
            (&["t", "--tile-batch", "2"], "--tile-batch"),
            (&["t", "--candle-backward"], "--candle-backward"),
            (
                &["t", "--mode", "tiled", "--candle-backward"],
                "--candle-backward",
            ),
            (&["t", "--mode", "tiled", "--batch", "8"], "--batch 8"),
        ] {
            let e = check(argv).unwrap_or_else(|| panic!("{argv:?} was accepted"));
            assert!(e.contains(flag), "{argv:?}: {e}");
        }
        // Each in its own mode, the defaults, and the docs' commands.
        for argv in [
            &["t"][..],
            &["t", "--mode", "forward", "--no-fold"],
            &["t", "--mode", "train", "--no-fold"],
            &["t", "--mode", "train", "--candle-backward", "--batch", "2"],
            &[
                "t",
                "--mode",
                "tiled",
                "--tile",
                "128",
                "--overlap",
                "16",
                "--tile-batch",
                "2",
            ],
            &["t", "--mode", "tiled", "--batch", "1"],
            &[
                "t",
                "--model",
                "xnet",
                "--mode",
                "forward",
                "--batch",
                "1",
                "--size",
                "200",
                "--threads",
                "2",
                "--iters",
                "5",
            ],
            &[
                "t",
                "--model",
                "xnet",
                "--mode",
                "tiled",
                "--size",
                "2000",
                "--tile",
                "256",
                "--overlap",
                "32",
                "--tile-batch",
                "1",
                "--iters",
                "1",
                "--warmup",
                "0",
            ],
        ] {
            assert_eq!(check(argv), None, "{argv:?}");
        }
    }
}
