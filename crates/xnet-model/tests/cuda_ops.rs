//! The CUDA kernels of the custom operations (feature `cuda`):
//! - every kernel source compiles with NVRTC (needs the NVRTC library, not a GPU);
//! - with a GPU, every operation's CUDA forward and backward match the CPU's within 1e-5 on
//!   small seeded inputs, ties and NaNs included for the pooling operations. Without a GPU
//!   those tests print `skipped: no CUDA device` and pass. Tiny SegNet, DeepLab-lite and
//!   XNet networks also agree between the devices (within 1e-4: cuBLAS convolutions), in
//!   train and eval mode and with their batch norms folded for inference.
//!
//! Run: `CUDA_COMPUTE_CAP=80 cargo test -p xnet-model --features cuda --test cuda_ops`.
#![cfg(feature = "cuda")]

mod common;

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::{VarBuilder, VarMap};
use common::max_abs_diff;
use rand::{rngs::StdRng, RngExt, SeedableRng};
use xnet_model::models::{
    DeepLabConfig, ModelConfig, SegNetConfig, Segmenter, Upsampling, XNetConfig,
};
use xnet_model::ops::{
    cuda::{compile_kernels, KERNEL_NAMES},
    max_pool2d, max_pool2d_indices, max_pool2d_with_indices, max_unpool2d, pool_gather,
    resize_bilinear,
};

const TOL: f64 = 1e-5;

/// The first CUDA device, or `None` (with the reason printed) when there is none.
fn cuda(test: &str) -> Option<Device> {
    match Device::new_cuda(0) {
        Ok(d) => Some(d),
        Err(e) => {
            // The first line only: candle appends a backtrace when RUST_BACKTRACE is set.
            let e = e.to_string();
            let reason = e.lines().next().unwrap_or_default();
            eprintln!("skipped: no CUDA device for {test} ({reason})");
            None
        }
    }
}

/// Seeded uniform values in `[lo, hi)`.
fn uniform(rng: &mut StdRng, shape: &[usize], lo: f64, hi: f64, dtype: DType) -> Tensor {
    let n: usize = shape.iter().product();
    let v: Vec<f64> = (0..n).map(|_| rng.random_range(lo..hi)).collect();
    Tensor::from_vec(v, shape, &Device::Cpu)
        .unwrap()
        .to_dtype(dtype)
        .unwrap()
}

/// Seeded small integers in `[0, levels)`: most pooling windows hold ties.
fn with_ties(rng: &mut StdRng, shape: &[usize], levels: u32, dtype: DType) -> Tensor {
    let n: usize = shape.iter().product();
    let v: Vec<f64> = (0..n).map(|_| rng.random_range(0..levels) as f64).collect();
    Tensor::from_vec(v, shape, &Device::Cpu)
        .unwrap()
        .to_dtype(dtype)
        .unwrap()
}

/// Seeded `u32` indices in `[0, plane)` (duplicates likely).
fn random_indices(rng: &mut StdRng, shape: &[usize], plane: u32) -> Tensor {
    let n: usize = shape.iter().product();
    let v: Vec<u32> = (0..n).map(|_| rng.random_range(0..plane)).collect();
    Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
}

fn u32s(t: &Tensor) -> Vec<u32> {
    t.to_device(&Device::Cpu)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1::<u32>()
        .unwrap()
}

/// `f(x)` and the gradient of `sum(f(x) · r)` in `x`, with `x` and `r` moved to `dev`;
/// both results come back on the CPU.
fn forward_backward(
    x: &Tensor,
    r_seed: u64,
    dev: &Device,
    f: &dyn Fn(&Tensor) -> candle_core::Result<Tensor>,
) -> (Tensor, Tensor) {
    let xv = Var::from_tensor(&x.to_device(dev).unwrap()).unwrap();
    let y = f(xv.as_tensor()).unwrap();
    let mut rng = StdRng::seed_from_u64(r_seed);
    let r = uniform(&mut rng, y.dims(), -1.0, 1.0, y.dtype())
        .to_device(dev)
        .unwrap();
    let grads = (&y * &r).unwrap().sum_all().unwrap().backward().unwrap();
    let g = grads.get(xv.as_tensor()).expect("no gradient").clone();
    (
        y.to_device(&Device::Cpu).unwrap(),
        g.to_device(&Device::Cpu).unwrap(),
    )
}

/// Runs `f` on the CPU and on `gpu` and asserts forward and gradient agree within [`TOL`].
fn assert_same(
    what: &str,
    x: &Tensor,
    gpu: &Device,
    f: &dyn Fn(&Tensor) -> candle_core::Result<Tensor>,
) {
    let (y_cpu, g_cpu) = forward_backward(x, 7, &Device::Cpu, f);
    let (y_gpu, g_gpu) = forward_backward(x, 7, gpu, f);
    let dy = max_abs_diff(&y_cpu, &y_gpu);
    let dg = max_abs_diff(&g_cpu, &g_gpu);
    assert!(dy <= TOL, "{what}: forward differs by {dy}");
    assert!(dg <= TOL, "{what}: gradient differs by {dg}");
}

#[test]
fn nvrtc_compiles_every_kernel() {
    // Needs libnvrtc (linked by cudarc), not a GPU.
    let ptx = compile_kernels().expect("the kernel source does not compile with NVRTC");
    for name in KERNEL_NAMES {
        assert!(
            ptx.contains(&format!(".entry {name}(")),
            "kernel {name} is missing from the PTX"
        );
    }
    // `--fmad=false`: no fused multiply-adds, so products and sums round as on the CPU.
    assert!(!ptx.contains("fma.rn"), "PTX contains fused multiply-adds");
}

#[test]
fn pool_indices_match_cpu_with_ties_and_nans() {
    let Some(gpu) = cuda("pool_indices_match_cpu_with_ties_and_nans") else {
        return;
    };
    let mut rng = StdRng::seed_from_u64(1);
    for dtype in [DType::F32, DType::F64] {
        for (shape, k) in [([2, 3, 8, 8], 2), ([1, 2, 7, 9], 2), ([2, 1, 10, 11], 3)] {
            let mut x = with_ties(&mut rng, &shape, 3, dtype);
            if k == 3 {
                // A few NaNs: a NaN wins over numbers, the first NaN over later ones.
                let mut v = x.flatten_all().unwrap().to_dtype(DType::F64).unwrap();
                let mut data = v.to_vec1::<f64>().unwrap();
                for i in [0, 5, 6, 40, 41, 100] {
                    data[i] = f64::NAN;
                }
                v = Tensor::from_vec(data, &shape, &Device::Cpu).unwrap();
                x = v.to_dtype(dtype).unwrap();
            }
            let cpu = u32s(&max_pool2d_indices(&x, k).unwrap());
            let gpu_idx = u32s(&max_pool2d_indices(&x.to_device(&gpu).unwrap(), k).unwrap());
            assert_eq!(cpu, gpu_idx, "{dtype:?} {shape:?} k={k}: indices differ");
        }
    }
}

#[test]
fn max_pool_matches_cpu_forward_and_backward() {
    let Some(gpu) = cuda("max_pool_matches_cpu_forward_and_backward") else {
        return;
    };
    let mut rng = StdRng::seed_from_u64(2);
    for dtype in [DType::F32, DType::F64] {
        for shape in [[2, 3, 8, 8], [1, 2, 7, 9]] {
            // Ties: the gradient must go to the first maximum on both devices.
            let x = with_ties(&mut rng, &shape, 3, dtype);
            assert_same("max_pool2d (ties)", &x, &gpu, &|t| max_pool2d(t, 2));
            let x = uniform(&mut rng, &shape, -1.0, 1.0, dtype);
            assert_same("max_pool2d", &x, &gpu, &|t| max_pool2d(t, 2));
            assert_same("max_pool2d_with_indices", &x, &gpu, &|t| {
                Ok(max_pool2d_with_indices(t, 2)?.0)
            });
        }
    }
}

#[test]
fn pool_gather_matches_cpu_forward_and_backward() {
    let Some(gpu) = cuda("pool_gather_matches_cpu_forward_and_backward") else {
        return;
    };
    let mut rng = StdRng::seed_from_u64(3);
    for dtype in [DType::F32, DType::F64] {
        let x = uniform(&mut rng, &[2, 3, 6, 5], -1.0, 1.0, dtype);
        // Random indices repeat, so the backward (an unpooling) sums duplicates.
        let idx = random_indices(&mut rng, &[2, 3, 4, 4], 30);
        let idx_gpu = idx.to_device(&gpu).unwrap();
        assert_same("pool_gather", &x, &gpu, &|t| {
            let i = if t.device().is_cpu() { &idx } else { &idx_gpu };
            pool_gather(t, i)
        });
    }
}

#[test]
fn max_unpool_matches_cpu_forward_and_backward() {
    let Some(gpu) = cuda("max_unpool_matches_cpu_forward_and_backward") else {
        return;
    };
    let mut rng = StdRng::seed_from_u64(4);
    for dtype in [DType::F32, DType::F64] {
        // Indices from pooling (distinct) and random ones (duplicates are summed).
        let src = with_ties(&mut rng, &[2, 3, 8, 10], 4, dtype);
        let pooled = max_pool2d_indices(&src, 2).unwrap();
        let random = random_indices(&mut rng, &[2, 3, 4, 5], 80);
        for idx in [pooled, random] {
            let idx_gpu = idx.to_device(&gpu).unwrap();
            let v = uniform(&mut rng, &[2, 3, 4, 5], -1.0, 1.0, dtype);
            assert_same("max_unpool2d", &v, &gpu, &|t| {
                let i = if t.device().is_cpu() { &idx } else { &idx_gpu };
                max_unpool2d(t, i, (8, 10))
            });
        }
    }
}

#[test]
fn bad_indices_are_errors_on_cuda_as_on_cpu() {
    let Some(gpu) = cuda("bad_indices_are_errors_on_cuda_as_on_cpu") else {
        return;
    };
    let x = Tensor::zeros((1, 1, 2, 2), DType::F32, &gpu).unwrap();
    let bad = Tensor::new(&[[[[0u32, 4]]]], &gpu).unwrap();
    let e = pool_gather(&x, &bad).unwrap_err().to_string();
    assert!(e.contains("index 4 is outside the 4-element plane"), "{e}");
    let v = Tensor::ones((1, 1, 1, 2), DType::F32, &gpu).unwrap();
    let e = max_unpool2d(&v, &bad, (1, 3)).unwrap_err().to_string();
    assert!(e.contains("outside the 3-element plane"), "{e}");
    // The device is still usable afterwards (the kernels never read out of bounds).
    let ok = Tensor::new(&[[[[3u32, 0]]]], &gpu).unwrap();
    let y = pool_gather(&x, &ok).unwrap();
    assert_eq!(y.dims(), &[1, 1, 1, 2]);
}

#[test]
fn resize_bilinear_matches_cpu_forward_and_backward() {
    let Some(gpu) = cuda("resize_bilinear_matches_cpu_forward_and_backward") else {
        return;
    };
    let mut rng = StdRng::seed_from_u64(5);
    for dtype in [DType::F32, DType::F64] {
        for (shape, out) in [
            ([1, 2, 3, 4], (6, 8)),
            ([2, 1, 5, 3], (3, 7)),
            ([1, 1, 8, 8], (3, 2)),
            ([1, 1, 1, 2], (3, 5)),
            ([2, 3, 13, 11], (50, 40)),
        ] {
            let x = uniform(&mut rng, &shape, -1.0, 1.0, dtype);
            assert_same("resize_bilinear", &x, &gpu, &|t| {
                resize_bilinear(t, out.0, out.1)
            });
        }
    }
}

/// Tiny networks that use every custom op: SegNet with index unpooling, DeepLab-lite with
/// bilinear up-sampling, XNet with max-pooling.
fn tiny_networks() -> Vec<ModelConfig> {
    vec![
        ModelConfig::SegNet(SegNetConfig {
            upsampling: Upsampling::IndexUnpool,
            kernel_size: 3,
            ..SegNetConfig::basic().narrowed(16)
        }),
        ModelConfig::DeepLab(DeepLabConfig {
            encoder_widths: vec![4, 8, 8],
            aspp_channels: 4,
            upsampling: Upsampling::Bilinear,
            ..Default::default()
        }),
        ModelConfig::XNet(XNetConfig {
            base_width: 4,
            ..Default::default()
        }),
    ]
}

#[test]
fn tiny_networks_match_cpu_on_cuda() {
    let Some(gpu) = cuda("tiny_networks_match_cpu_on_cuda") else {
        return;
    };
    let mut rng = StdRng::seed_from_u64(6);
    for cfg in tiny_networks() {
        let vm_cpu = VarMap::new();
        let mut net_cpu = cfg
            .build(VarBuilder::from_varmap(&vm_cpu, DType::F32, &Device::Cpu))
            .unwrap();
        let vm_gpu = VarMap::new();
        let mut net_gpu = cfg
            .build(VarBuilder::from_varmap(&vm_gpu, DType::F32, &gpu))
            .unwrap();
        // The same weights on both devices.
        {
            let cpu_vars = vm_cpu.data().lock().unwrap();
            for (name, var) in vm_gpu.data().lock().unwrap().iter() {
                let w = cpu_vars[name].as_tensor().to_device(&gpu).unwrap();
                var.set(&w).unwrap();
            }
        }
        let m = net_cpu.size_multiple().max(8);
        let x = uniform(&mut rng, &[2, 1, 2 * m, m], 0.0, 1.0, DType::F32);
        for train in [false, true] {
            // Convolutions run on candle's CPU kernels vs cuBLAS (different summation
            // orders), so the network-level tolerance is 1e-4, not the ops' 1e-5.
            let run = |net: &dyn Segmenter, dev: &Device| {
                forward_backward(&x, 8, dev, &|t| net.forward_t(t, train))
            };
            let (y_cpu, g_cpu) = run(net_cpu.as_ref(), &Device::Cpu);
            let (y_gpu, g_gpu) = run(net_gpu.as_ref(), &gpu);
            let (dy, dg) = (max_abs_diff(&y_cpu, &y_gpu), max_abs_diff(&g_cpu, &g_gpu));
            let what = format!("{} (train: {train})", cfg.arch());
            assert!(dy <= 1e-4, "{what}: outputs differ by {dy}");
            assert!(dg <= 1e-4, "{what}: input gradients differ by {dg}");
        }
        // Folded for inference (as `Predictor` does; the folding itself runs on the CPU).
        let folded = net_cpu.fold_batch_norm().unwrap();
        assert_eq!(net_gpu.fold_batch_norm().unwrap(), folded);
        let y_cpu = net_cpu.forward_t(&x, false).unwrap();
        let y_gpu = net_gpu
            .forward_t(&x.to_device(&gpu).unwrap(), false)
            .unwrap()
            .to_device(&Device::Cpu)
            .unwrap();
        let d = max_abs_diff(&y_cpu, &y_gpu);
        assert!(d <= 1e-4, "{} folded: outputs differ by {d}", cfg.arch());
    }
}
