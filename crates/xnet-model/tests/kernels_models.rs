//! The networks with the fast kernels (`crate::kernels`, the default) against the same
//! networks on stock candle ops (`XNET_REFERENCE_KERNELS=1`): eval outputs, train-mode
//! outputs and every gradient. Each test picks the path per call on its own thread
//! (`kernels::with_kernels`), so they run side by side.
//!
//! Gradients are compared in two ways, because the gradient of a ReLU network is not
//! continuous: an input moved by 3e-5 (relative) moves the exact (f64) XNet gradient by
//! about 2e-3, where a pre-activation crosses 0. In f32 either path's rounding can cross such
//! a kink by chance, so:
//! - in `f64` the two paths must agree elementwise to 1e-10 of the largest gradient: the same
//!   function and the same derivative, with rounding out of the way (measured: 1e-14);
//! - in `f32` the fast path's gradients, against the `f64` ones of the same weights, must be
//!   within 1e-5 (relative L2, all of them together) for the median of three seeds; away
//!   from a kink they are 3e-7 to 1.2e-6, on a kink about 2e-3, and the stock path's alike.
//!
//! The figures in docs/performance.md ("Gradients of the fast path") come from the ignored
//! `gradient_accuracy_over_seeds` below.

use candle_core::{DType, Device, Tensor};
use candle_nn::VarMap;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use xnet_model::init::seeded_var_builder;
use xnet_model::kernels::KernelChoice;
use xnet_model::models::{SegNetConfig, UNetConfig, Upsampling, XNetConfig};
use xnet_model::{ModelConfig, Segmenter};

mod common;
use common::{draw_batch_norm_affine, max_abs_diff as max_diff};

fn scale(a: &Tensor) -> f64 {
    let m = a
        .abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_dtype(DType::F64)
        .unwrap()
        .to_scalar::<f64>()
        .unwrap();
    m.max(1.0)
}

/// Runs `f` with the fast kernels (`reference = false`) or the stock candle path, on this
/// thread only: the tests of this binary run side by side.
fn with_kernels<T>(reference: bool, f: impl FnOnce() -> T) -> T {
    let choice = if reference {
        KernelChoice::Reference
    } else {
        KernelChoice::Fast
    };
    xnet_model::kernels::with_kernels(choice, f)
}

/// Every gradient, flattened to `f64`, by variable name.
type NamedGrads = Vec<(String, Vec<f64>)>;

/// Train-mode logits and the gradients of `Σ logits²` by variable name.
fn train_step(net: &dyn Segmenter, varmap: &VarMap, x: &Tensor) -> (Tensor, NamedGrads) {
    let train = net.forward_t(x, true).unwrap();
    let grads = (&train * &train)
        .unwrap()
        .sum_all()
        .unwrap()
        .backward()
        .unwrap();
    let data = varmap.data().lock().unwrap();
    let mut named: NamedGrads = data
        .iter()
        .filter_map(|(name, var)| {
            let g = grads.get(var)?.to_dtype(DType::F64).ok()?;
            Some((name.clone(), g.flatten_all().ok()?.to_vec1::<f64>().ok()?))
        })
        .collect();
    named.sort_by(|a, b| a.0.cmp(&b.0));
    (train, named)
}

/// Largest elementwise difference of two gradient sets, over their largest magnitude, and
/// the relative L2 distance of all of them together (`b` is the reference).
fn gradient_distance(a: &NamedGrads, b: &NamedGrads) -> (f64, f64) {
    assert_eq!(a.len(), b.len(), "same variables get gradients");
    assert!(!a.is_empty());
    let (mut max_abs, mut max_ref, mut diff2, mut ref2) = (0f64, 0f64, 0f64, 0f64);
    for ((na, ga), (nb, gb)) in a.iter().zip(b) {
        assert_eq!(na, nb);
        assert_eq!(ga.len(), gb.len(), "{na}: gradient sizes differ");
        for (&p, &q) in ga.iter().zip(gb) {
            assert!(p.is_finite() && q.is_finite(), "{na}: non-finite gradient");
            max_abs = max_abs.max((p - q).abs());
            max_ref = max_ref.max(q.abs());
            diff2 += (p - q) * (p - q);
            ref2 += q * q;
        }
    }
    (
        max_abs / max_ref.max(1e-300),
        (diff2 / ref2.max(1e-300)).sqrt(),
    )
}

/// How the batch-norms' γ and β are set.
#[derive(Clone, Copy, Debug)]
enum Affine {
    /// γ = 1, β = 0, as initialised: about half the pre-activations sit near 0.
    Initial,
    /// γ and β drawn in [0.5, 1.5), as after some training; a kernel that mishandled them
    /// cannot match the reference by accident.
    Drawn,
}

/// The network of `cfg` in `dtype` with the weights of `seed` and batch-norm γ, β as
/// `affine` says, or with the weights of `like` (cast) when given.
fn build(
    cfg: &ModelConfig,
    seed: u64,
    affine: Affine,
    dtype: DType,
    like: Option<&VarMap>,
) -> (Box<dyn Segmenter>, VarMap) {
    let varmap = VarMap::new();
    let net = cfg
        .build(seeded_var_builder(&varmap, seed, dtype, &Device::Cpu))
        .unwrap();
    match like {
        None if matches!(affine, Affine::Initial) => {}
        None => draw_batch_norm_affine(&varmap, seed + 1000),
        Some(source) => {
            let source = source.data().lock().unwrap();
            for (name, var) in varmap.data().lock().unwrap().iter() {
                var.set(&source[name].as_tensor().to_dtype(dtype).unwrap())
                    .unwrap();
            }
        }
    }
    (net, varmap)
}

/// The three networks the comparison runs on. XNet's base width 32 reaches 256 channels, so
/// the Winograd path runs too.
fn configs() -> [ModelConfig; 3] {
    [
        ModelConfig::XNet(XNetConfig {
            base_width: 32,
            ..Default::default()
        }),
        ModelConfig::UNet(UNetConfig {
            base_width: 16,
            depth: 3,
            upsampling: Upsampling::Nearest,
            ..Default::default()
        }),
        ModelConfig::SegNet(SegNetConfig::simple().narrowed(4)),
    ]
}

/// How far apart the paths are for one network and one seed (input and weights).
struct Distances {
    /// f32 eval outputs, fast vs stock, over max(|stock|, 1).
    eval_f32: f64,
    /// f32 train-mode outputs, fast vs stock, over max(|stock|, 1).
    train_f32: f64,
    /// f64 train-mode outputs, fast vs stock, over max(|stock|, 1).
    train_f64: f64,
    /// f64 gradients, fast vs stock: largest elementwise difference over the largest gradient.
    grad_f64_elementwise: f64,
    /// f64 gradients, fast vs stock: relative L2 of all of them.
    grad_f64: f64,
    /// f32 fast-path gradients against the f64 (stock) ones, relative L2.
    grad_f32_fast: f64,
    /// f32 stock-path gradients against the f64 ones, relative L2.
    grad_f32_stock: f64,
}

fn compare(cfg: &ModelConfig, seed: u64, affine: Affine) -> Distances {
    let dev = Device::Cpu;
    let mut rng = StdRng::seed_from_u64(seed);
    // 32² so that the deepest batch-norms still see 2·4·4 values per channel.
    let pixels: Vec<f32> = (0..2 * 32 * 32).map(|_| rng.random::<f32>()).collect();
    let x = Tensor::from_vec(pixels, (2, 1, 32, 32), &dev).unwrap();
    let x64 = x.to_dtype(DType::F64).unwrap();
    // The f64 comparison is only worth something if f64 takes the fast kernels.
    let w64 = Tensor::zeros((4, 1, 3, 3), DType::F64, &dev).unwrap();
    assert!(
        xnet_model::kernels::fast_conv_supported(&x64, &w64)
            && xnet_model::kernels::fused_batch_norm_supported(&x64)
    );
    let (net, varmap) = build(cfg, seed, affine, DType::F32, None);
    // Eval first: the train-mode forwards below update the running statistics.
    let ef = with_kernels(false, || net.forward_t(&x, false).unwrap());
    let er = with_kernels(true, || net.forward_t(&x, false).unwrap());
    // Train-mode outputs use batch statistics, so the update does not matter here.
    let (tf, gf) = with_kernels(false, || train_step(net.as_ref(), &varmap, &x));
    let (tr, gr) = with_kernels(true, || train_step(net.as_ref(), &varmap, &x));
    // The same weights in f64: both paths, outputs and gradients.
    let (net64, varmap64) = build(cfg, seed, affine, DType::F64, Some(&varmap));
    let (tf64, gf64) = with_kernels(false, || train_step(net64.as_ref(), &varmap64, &x64));
    let (tr64, gr64) = with_kernels(true, || train_step(net64.as_ref(), &varmap64, &x64));
    let (grad_f64_elementwise, grad_f64) = gradient_distance(&gf64, &gr64);
    Distances {
        eval_f32: max_diff(&ef, &er) / scale(&er),
        train_f32: max_diff(&tf, &tr) / scale(&tr),
        train_f64: max_diff(&tf64, &tr64) / scale(&tr64),
        grad_f64_elementwise,
        grad_f64,
        grad_f32_fast: gradient_distance(&gf, &gr64).1,
        grad_f32_stock: gradient_distance(&gr, &gr64).1,
    }
}

#[test]
fn fast_kernels_match_the_reference_path() {
    for cfg in &configs() {
        let arch = cfg.arch();
        let mut f32_distances = Vec::new();
        for seed in 1..=3 {
            let d = compare(cfg, seed, Affine::Drawn);
            assert!(d.eval_f32 <= 1e-4, "{arch} eval differs: {:e}", d.eval_f32);
            assert!(
                d.train_f32 <= 1e-4,
                "{arch} train output differs: {:e}",
                d.train_f32
            );
            assert!(
                d.train_f64 <= 1e-10,
                "{arch} f64 train output differs: {:e}",
                d.train_f64
            );
            assert!(
                d.grad_f64_elementwise <= 1e-10,
                "{arch} seed {seed}: f64 gradients differ by {:e} of the largest",
                d.grad_f64_elementwise
            );
            println!(
                "{arch} seed {seed}: f32 gradients from the f64 ones (relative L2): fast {:.2e}, stock {:.2e}",
                d.grad_f32_fast, d.grad_f32_stock
            );
            f32_distances.push(d.grad_f32_fast);
        }
        f32_distances.sort_by(f64::total_cmp);
        assert!(
            f32_distances[1] <= 1e-5,
            "{arch}: f32 fast-path gradients are {:e} (relative L2, median of 3 seeds) from the f64 ones",
            f32_distances[1]
        );
    }
}

/// The figures of docs/performance.md, "Gradients of the fast path":
/// `cargo test -p xnet-model --test kernels_models -- --ignored --nocapture`.
#[test]
#[ignore = "measurement over eight seeds and two γ/β settings (about 45 s); prints only"]
fn gradient_accuracy_over_seeds() {
    for affine in [Affine::Initial, Affine::Drawn] {
        println!("γ, β {affine:?}; seed arch: f64 fast vs stock | f32 fast vs f64 | f32 stock vs f64 (relative L2 of all gradients)");
        for seed in 1..=8 {
            for cfg in &configs() {
                let d = compare(cfg, seed, affine);
                println!(
                    "{seed} {}: {:.2e} | {:.2e} | {:.2e}",
                    cfg.arch(),
                    d.grad_f64,
                    d.grad_f32_fast,
                    d.grad_f32_stock
                );
            }
        }
    }
    // The kinks: how far the exact (f64, stock path) XNet gradient moves when the input moves.
    let cfg = &configs()[0];
    for seed in [1u64, 5] {
        let mut rng = StdRng::seed_from_u64(seed);
        let pixels: Vec<f64> = (0..2 * 32 * 32)
            .map(|_| f64::from(rng.random::<f32>()))
            .collect();
        let (_, varmap) = build(cfg, seed, Affine::Drawn, DType::F32, None);
        let (net, varmap) = build(cfg, seed, Affine::Drawn, DType::F64, Some(&varmap));
        let input = |eps: f64| {
            let mut r = StdRng::seed_from_u64(99);
            let v: Vec<f64> = pixels
                .iter()
                .map(|&p| p * (1.0 + eps * r.random_range(-1.0..1.0)))
                .collect();
            Tensor::from_vec(v, (2, 1, 32, 32), &Device::Cpu).unwrap()
        };
        let (_, exact) = with_kernels(true, || train_step(net.as_ref(), &varmap, &input(0.0)));
        for eps in [1e-6, 1e-5, 3e-5, 1e-4] {
            let (_, moved) = with_kernels(true, || train_step(net.as_ref(), &varmap, &input(eps)));
            println!(
                "xnet seed {seed}, γ, β drawn: input moved by {eps:e} (relative) moves the f64 gradient by {:.2e}",
                gradient_distance(&moved, &exact).1
            );
        }
    }
}
