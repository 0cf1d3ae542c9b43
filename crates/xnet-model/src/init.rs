//! Seeded weight initialisation.
//!
//! candle's CPU device cannot be seeded (`Device::set_seed` refuses on CPU), so variables
//! created through a plain [`VarMap`] differ from run to run. [`seeded_var_builder`] builds a
//! [`VarBuilder`] whose new variables are drawn from a seeded generator instead, following
//! the same [`Init`] hints the layers give (constants, uniform, normal, Kaiming), so the same
//! seed and the same network give the same initial weights on every run.

use std::sync::Mutex;

use candle_core::{DType, Device, Shape, Tensor, Var};
use candle_nn::init::{Init, NormalOrUniform};
use candle_nn::var_builder::SimpleBackend;
use candle_nn::{VarBuilder, VarMap};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

struct SeededBackend {
    varmap: VarMap,
    rng: Mutex<StdRng>,
}

/// Standard normal sample by Box–Muller (keeps this module free of `rand_distr`).
fn normal(rng: &mut StdRng) -> f64 {
    let u1: f64 = rng.random::<f64>().max(f64::MIN_POSITIVE);
    let u2: f64 = rng.random::<f64>();
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}

fn sample(init: Init, shape: &Shape, rng: &mut StdRng) -> Vec<f32> {
    let n = shape.elem_count();
    let uniform = |rng: &mut StdRng, lo: f64, up: f64| -> Vec<f32> {
        (0..n)
            .map(|_| (lo + (up - lo) * rng.random::<f64>()) as f32)
            .collect()
    };
    let gaussian = |rng: &mut StdRng, mean: f64, std: f64| -> Vec<f32> {
        (0..n).map(|_| (mean + std * normal(rng)) as f32).collect()
    };
    match init {
        Init::Const(v) => vec![v as f32; n],
        Init::Uniform { lo, up } => uniform(rng, lo, up),
        Init::Randn { mean, stdev } => gaussian(rng, mean, stdev),
        Init::Kaiming {
            dist,
            fan,
            non_linearity,
        } => {
            let std = non_linearity.gain() / (fan.for_shape(shape).max(1) as f64).sqrt();
            match dist {
                NormalOrUniform::Uniform => {
                    let bound = 3f64.sqrt() * std;
                    uniform(rng, -bound, bound)
                }
                NormalOrUniform::Normal => gaussian(rng, 0.0, std),
            }
        }
    }
}

impl SimpleBackend for SeededBackend {
    fn get(
        &self,
        s: Shape,
        name: &str,
        h: Init,
        dtype: DType,
        dev: &Device,
    ) -> candle_core::Result<Tensor> {
        let data = self.varmap.data();
        let mut vars = data
            .lock()
            .map_err(|_| candle_core::Error::Msg("variable map lock poisoned".into()))?;
        if let Some(v) = vars.get(name) {
            if v.shape() != &s {
                candle_core::bail!("shape mismatch on {name}: {s:?} <> {:?}", v.shape());
            }
            return Ok(v.as_tensor().clone());
        }
        let values = {
            let mut rng = self
                .rng
                .lock()
                .map_err(|_| candle_core::Error::Msg("generator lock poisoned".into()))?;
            sample(h, &s, &mut rng)
        };
        let t = Tensor::from_vec(values, s, dev)?.to_dtype(dtype)?;
        let var = Var::from_tensor(&t)?;
        let out = var.as_tensor().clone();
        vars.insert(name.to_string(), var);
        Ok(out)
    }

    fn get_unchecked(
        &self,
        name: &str,
        _dtype: DType,
        _dev: &Device,
    ) -> candle_core::Result<Tensor> {
        candle_core::bail!("{name}: a seeded variable map needs a shape and an init to create it")
    }

    fn contains_tensor(&self, name: &str) -> bool {
        self.varmap
            .data()
            .lock()
            .map(|m| m.contains_key(name))
            .unwrap_or(false)
    }
}

/// A [`VarBuilder`] that stores new variables in `varmap` (like
/// [`VarBuilder::from_varmap`]) but draws their initial values from a generator seeded with
/// `seed`. Variables already in `varmap` are reused as they are.
///
/// # Examples
/// ```
/// use candle_core::{DType, Device};
/// use candle_nn::VarMap;
/// use xnet_model::init::seeded_var_builder;
/// use xnet_model::models::{ModelConfig, XNetConfig};
/// let cfg = ModelConfig::XNet(XNetConfig { base_width: 2, ..Default::default() });
/// let weights = |seed| {
///     let vm = VarMap::new();
///     cfg.build(seeded_var_builder(&vm, seed, DType::F32, &Device::Cpu)).unwrap();
///     let mut all: Vec<(String, Vec<f32>)> = vm.data().lock().unwrap().iter()
///         .map(|(k, v)| (k.clone(), v.flatten_all().unwrap().to_vec1().unwrap()))
///         .collect();
///     all.sort_by(|a, b| a.0.cmp(&b.0));
///     all
/// };
/// assert_eq!(weights(7), weights(7));
/// assert_ne!(weights(7), weights(8));
/// ```
pub fn seeded_var_builder(
    varmap: &VarMap,
    seed: u64,
    dtype: DType,
    device: &Device,
) -> VarBuilder<'static> {
    let backend = SeededBackend {
        varmap: varmap.clone(),
        rng: Mutex::new(StdRng::seed_from_u64(seed)),
    };
    VarBuilder::from_backend(Box::new(backend), dtype, device.clone())
}
