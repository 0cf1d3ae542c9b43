//! Results do not depend on the number of threads the CPU kernels run on: forward outputs
//! and weight gradients are the same bit for bit on 1, 2, 3 and 5 threads, kernel by kernel
//! (every convolution path) and through whole networks, so a training run's weights depend
//! on its seed and the code, not on the machine's core count. The kernels make every choice
//! that sets the rounding (the weight gradients' partial sums, the Winograd tile blocks) for
//! a fixed nominal thread count, and let the actual threads only share out the work.

use candle_core::{DType, Device, Tensor};
use candle_nn::VarMap;
use xnet_model::init::seeded_var_builder;
use xnet_model::kernels::{
    conv2d_fast, conv2d_fast_path, conv2d_fast_weight_grad, conv2d_fast_weight_grad_path,
};
use xnet_model::models::{DeepLabConfig, SegNetConfig, UNetConfig, Upsampling, XNetConfig};
use xnet_model::ModelConfig;

/// The thread counts compared: one, the nominal two, and counts above it (spare threads
/// split the GEMMs), one of them odd.
const THREADS: [usize; 4] = [1, 2, 3, 5];

/// Runs `f` on a pool of `threads` threads.
fn on_threads<T: Send>(threads: usize, f: impl FnOnce() -> T + Send) -> T {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .expect("a thread pool")
        .install(f)
}

/// A deterministic `[dims]` tensor of values in [-1, 1] that differ from element to element.
fn wave(dims: &[usize], step: f64, phase: f64) -> Tensor {
    let len: usize = dims.iter().product();
    Tensor::arange(0u32, len as u32, &Device::Cpu)
        .and_then(|t| t.to_dtype(DType::F32))
        .and_then(|t| t.affine(step, phase))
        .and_then(|t| t.sin())
        .and_then(|t| t.reshape(dims))
        .expect("a test tensor")
}

fn bits(t: &Tensor) -> Vec<u32> {
    t.flatten_all()
        .and_then(|t| t.to_vec1::<f32>())
        .expect("f32 values")
        .iter()
        .map(|v| v.to_bits())
        .collect()
}

#[test]
fn every_convolution_path_gives_the_same_bits_on_any_thread_count() {
    // (n, c_in, c_out, side, k, dilation, forward path, weight-gradient path); the comments
    // say which split of the work each exercises.
    let cases = [
        // Direct: the first layer's single input channel, a 1×1 head, a dilated layer.
        (2, 1, 16, 40, 3, 1, "direct", "direct"),
        (2, 16, 3, 40, 1, 1, "direct", "direct"),
        (2, 16, 16, 24, 3, 2, "direct", "direct"),
        // F(4×4, 3×3) forward in several tile blocks; weight gradient split by tiles
        // (100 tiles an image).
        (2, 64, 64, 40, 3, 1, "winograd-f43", "winograd-f43"),
        // F(2×2, 3×3) forward in several row blocks (8 images of 16², 512 tiles of 2×2);
        // weight gradient split by Winograd component (16 tiles an image).
        (8, 64, 64, 16, 3, 1, "winograd-f23", "winograd-f43"),
        // One image of few tiles: F(2×2, 3×3) in one block, the GEMMs split instead.
        (1, 64, 128, 12, 3, 1, "winograd-f23", "winograd-f43"),
    ];
    for (n, ci, co, side, k, dil, forward_path, grad_path) in cases {
        assert_eq!(
            conv2d_fast_path(n, ci, co, side, side, k, dil),
            forward_path
        );
        assert_eq!(
            conv2d_fast_weight_grad_path(n, ci, co, side, side, k, dil),
            grad_path
        );
        let x = wave(&[n, ci, side, side], 1.3e-3, 0.0);
        let w = wave(&[co, ci, k, k], 0.7e-3, 0.1);
        let dy = wave(&[n, co, side, side], 2.1e-3, 0.3);
        let run = |threads| {
            on_threads(threads, || {
                let y = conv2d_fast(&x, &w, None, dil, false).expect("forward");
                let dw = conv2d_fast_weight_grad(&x, &dy, k, dil).expect("weight gradient");
                (bits(&y), bits(&dw))
            })
        };
        let nominal = run(2);
        for threads in THREADS {
            let (y, dw) = run(threads);
            let case = format!("{n}×{ci}→{co} at {side}², {k}×{k}, dilation {dil}");
            assert!(
                y == nominal.0,
                "{case}: forward differs on a pool of {threads}"
            );
            assert!(
                dw == nominal.1,
                "{case}: weight gradient differs on a pool of {threads}"
            );
        }
    }
}

/// Train-mode logits and every gradient of `Σ logits²`, as bits, by variable name.
fn train_step_bits(cfg: &ModelConfig, batch: usize, side: usize) -> Vec<(String, Vec<u32>)> {
    let varmap = VarMap::new();
    let net = cfg
        .build(seeded_var_builder(&varmap, 7, DType::F32, &Device::Cpu))
        .expect("the network builds");
    let x = wave(&[batch, 1, side, side], 1e-3, 0.0);
    let logits = net.forward_t(&x, true).expect("forward");
    let grads = (&logits * &logits)
        .and_then(|t| t.sum_all())
        .and_then(|t| t.backward())
        .expect("backward");
    let data = varmap.data().lock().expect("the variables");
    let mut named: Vec<(String, Vec<u32>)> = data
        .iter()
        .filter_map(|(name, var)| Some((name.clone(), bits(grads.get(var)?))))
        .collect();
    named.push(("logits".to_string(), bits(&logits)));
    named.sort();
    named
}

#[test]
fn networks_give_the_same_logits_and_gradients_on_any_thread_count() {
    let xnet = |upsampling| {
        ModelConfig::XNet(XNetConfig {
            base_width: 16,
            upsampling,
            ..XNetConfig::default()
        })
    };
    let networks = [
        ("XNet, nearest", xnet(Upsampling::Nearest)),
        ("XNet, transposed conv", xnet(Upsampling::TransposedConv)),
        ("XNet, bilinear", xnet(Upsampling::Bilinear)),
        (
            "U-Net",
            ModelConfig::UNet(UNetConfig {
                base_width: 16,
                ..UNetConfig::default()
            }),
        ),
        (
            "SegNet",
            ModelConfig::SegNet(SegNetConfig {
                encoder: vec![vec![16], vec![64]],
                center: vec![64],
                decoder: vec![vec![64], vec![16]],
                ..SegNetConfig::default()
            }),
        ),
        (
            "DeepLab",
            ModelConfig::DeepLab(DeepLabConfig {
                encoder_widths: vec![16, 64],
                aspp_channels: 64,
                ..DeepLabConfig::default()
            }),
        ),
    ];
    for (name, cfg) in &networks {
        let nominal = on_threads(2, || train_step_bits(cfg, 2, 48));
        assert!(nominal.len() > 1, "{name}: no gradients");
        for threads in THREADS {
            let other = on_threads(threads, || train_step_bits(cfg, 2, 48));
            for ((what, a), (_, b)) in nominal.iter().zip(&other) {
                assert!(a == b, "{name}: {what} differs on a pool of {threads}");
            }
        }
    }
}
