//! Optimisers (Adam, AdamW, RMSprop, SGD with momentum), learning-rate schedules (step,
//! cosine, reduce-on-plateau) and gradient clipping by global norm.
//!
//! candle-nn ships plain SGD and AdamW only; these optimisers follow PyTorch's update rules
//! exactly (`torch.optim.Adam`, `AdamW`, `RMSprop`, `SGD`) so that hyper-parameters carry
//! over, and expose their state so that training can resume.

use std::collections::HashMap;
use std::path::Path;

use candle_core::backprop::GradStore;
use candle_core::{DType, Device, Tensor, Var};
use serde::{Deserialize, Serialize};

use crate::error::readable_number;
use crate::{ModelError, Result};

mod fused_adam;
#[cfg(test)]
mod schedule_tests;

/// `XNET_REFERENCE_OPTIMIZER=1` makes Adam/AdamW take the allocating tensor-op path on the
/// CPU too (the reference the fused in-place update is tested against).
fn reference_optimizer() -> bool {
    matches!(std::env::var("XNET_REFERENCE_OPTIMIZER"), Ok(v) if !v.is_empty() && v != "0")
}

/// Which optimiser, with its hyper-parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum OptimizerConfig {
    /// Adam (Kingma & Ba); `weight_decay` is added to the gradient (L2), as `torch.optim.Adam`.
    Adam {
        /// Learning rate.
        lr: f64,
        /// Decay of the first moment.
        beta1: f64,
        /// Decay of the second moment.
        beta2: f64,
        /// Added to the denominator.
        eps: f64,
        /// Coupled L2 coefficient (0 = none).
        weight_decay: f64,
    },
    /// AdamW (Loshchilov & Hutter): decoupled weight decay `θ ← θ(1 − lr·wd)`.
    AdamW {
        /// Learning rate.
        lr: f64,
        /// Decay of the first moment.
        beta1: f64,
        /// Decay of the second moment.
        beta2: f64,
        /// Added to the denominator.
        eps: f64,
        /// Decoupled weight decay.
        weight_decay: f64,
    },
    /// RMSprop with PyTorch's update
    /// `v ← αv + (1−α)g²; θ ← θ − lr·g/(√v + ε)` (optionally centred and with momentum).
    /// [`OptimizerConfig::rmsprop`] uses Keras' defaults α = 0.9, ε = 10⁻⁷ as in the
    /// reference implementation (which trained with lr = 10⁻⁴).
    RmsProp {
        /// Learning rate.
        lr: f64,
        /// Smoothing constant α (Keras' `rho`).
        alpha: f64,
        /// Added to the denominator.
        eps: f64,
        /// Momentum factor (0 = none).
        momentum: f64,
        /// Normalise by the variance estimate instead of the raw second moment. Where
        /// rounding makes that estimate negative (a gradient that has long stayed the same),
        /// it counts as zero; `torch.optim.RMSprop` takes its square root and gives NaN.
        centered: bool,
    },
    /// SGD with optional (Nesterov) momentum, as `torch.optim.SGD`.
    Sgd {
        /// Learning rate.
        lr: f64,
        /// Momentum factor (0 = plain SGD).
        momentum: f64,
        /// Dampening of the momentum.
        dampening: f64,
        /// Use Nesterov momentum (needs momentum > 0 and dampening = 0).
        nesterov: bool,
        /// Coupled L2 coefficient (0 = none).
        weight_decay: f64,
    },
}

impl Default for OptimizerConfig {
    /// The reference implementation's optimiser: RMSprop, lr = 10⁻⁴.
    fn default() -> Self {
        Self::rmsprop(1e-4)
    }
}

/// Every name a variable's state goes by in [`Optimizer::state_tensors`], whichever the
/// configuration: the step count and each moment some configuration keeps.
const STATE_KEYS: [&str; 6] = [
    "step",
    "exp_avg",
    "exp_avg_sq",
    "square_avg",
    "grad_avg",
    "momentum_buffer",
];

impl OptimizerConfig {
    /// The state an update keeps for each variable, besides its step count: Adam's two
    /// moments, RMSprop's squared average (and the mean gradient when centred, the momentum
    /// buffer with momentum), SGD's momentum buffer with momentum.
    fn state_keys(&self) -> impl Iterator<Item = &'static str> {
        let keys: [(&'static str, bool); 3] = match *self {
            OptimizerConfig::Adam { .. } | OptimizerConfig::AdamW { .. } => {
                [("exp_avg", true), ("exp_avg_sq", true), ("", false)]
            }
            OptimizerConfig::RmsProp {
                momentum, centered, ..
            } => [
                ("square_avg", true),
                ("grad_avg", centered),
                ("momentum_buffer", momentum > 0.0),
            ],
            OptimizerConfig::Sgd { momentum, .. } => [
                ("momentum_buffer", momentum > 0.0),
                ("", false),
                ("", false),
            ],
        };
        keys.into_iter().filter(|&(_, kept)| kept).map(|(k, _)| k)
    }

    /// Adam with PyTorch's defaults (β = (0.9, 0.999), ε = 10⁻⁸, no weight decay).
    pub fn adam(lr: f64) -> Self {
        Self::Adam {
            lr,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
        }
    }

    /// AdamW with PyTorch's defaults (weight decay 0.01).
    pub fn adamw(lr: f64) -> Self {
        Self::AdamW {
            lr,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.01,
        }
    }

    /// RMSprop with Keras' defaults (α = 0.9, ε = 10⁻⁷, no momentum).
    pub fn rmsprop(lr: f64) -> Self {
        Self::RmsProp {
            lr,
            alpha: 0.9,
            eps: 1e-7,
            momentum: 0.0,
            centered: false,
        }
    }

    /// SGD with the given momentum (no dampening, no Nesterov, no weight decay).
    pub fn sgd(lr: f64, momentum: f64) -> Self {
        Self::Sgd {
            lr,
            momentum,
            dampening: 0.0,
            nesterov: false,
            weight_decay: 0.0,
        }
    }

    /// The configured (initial) learning rate.
    pub fn learning_rate(&self) -> f64 {
        match self {
            Self::Adam { lr, .. }
            | Self::AdamW { lr, .. }
            | Self::RmsProp { lr, .. }
            | Self::Sgd { lr, .. } => *lr,
        }
    }

    /// Checks every hyper-parameter's range. NaN and infinities are refused, and so is a
    /// value beyond the `f32` range (a `1e308` in a JSON config): the update runs in `f32`,
    /// where a learning rate of `1e308` would be infinity.
    ///
    /// # Errors
    /// [`ModelError::InvalidConfig`] naming the hyper-parameter and the value.
    ///
    /// # Examples
    /// ```
    /// use xnet_model::optim::OptimizerConfig;
    /// assert!(OptimizerConfig::adam(1e-3).validate().is_ok());
    /// let e = OptimizerConfig::adam(1e308).validate().unwrap_err().to_string();
    /// assert!(e.contains("optimizer lr must be a finite number"), "{e}");
    /// ```
    pub fn validate(&self) -> Result<()> {
        // The hyper-parameters without an upper bound of their own; the betas and alpha lie
        // in [0, 1), checked below.
        let unbounded: &[(&str, f64)] = match *self {
            Self::Adam {
                lr,
                eps,
                weight_decay,
                ..
            }
            | Self::AdamW {
                lr,
                eps,
                weight_decay,
                ..
            } => &[
                ("optimizer lr", lr),
                ("optimizer eps", eps),
                ("optimizer weight_decay", weight_decay),
            ],
            Self::RmsProp {
                lr, eps, momentum, ..
            } => &[
                ("optimizer lr", lr),
                ("optimizer eps", eps),
                ("optimizer momentum", momentum),
            ],
            Self::Sgd {
                lr,
                momentum,
                dampening,
                weight_decay,
                ..
            } => &[
                ("optimizer lr", lr),
                ("optimizer momentum", momentum),
                ("optimizer dampening", dampening),
                ("optimizer weight_decay", weight_decay),
            ],
        };
        crate::error::check_f32_range(unbounded)?;
        let check = |what: &str, v: f64, ok: bool, range: &str| {
            if ok {
                Ok(())
            } else {
                Err(ModelError::InvalidConfig(format!(
                    "optimizer {what} must be {range}, got {}",
                    readable_number(v)
                )))
            }
        };
        let non_negative =
            |what: &str, v: f64| check(what, v, v.is_finite() && v >= 0.0, "finite and ≥ 0");
        let unit = |what: &str, v: f64| check(what, v, (0.0..1.0).contains(&v), "in [0, 1)");
        let lr = self.learning_rate();
        check("lr", lr, lr.is_finite() && lr > 0.0, "finite and > 0")?;
        match *self {
            Self::Adam {
                beta1,
                beta2,
                eps,
                weight_decay,
                ..
            }
            | Self::AdamW {
                beta1,
                beta2,
                eps,
                weight_decay,
                ..
            } => {
                unit("beta1", beta1)?;
                unit("beta2", beta2)?;
                non_negative("eps", eps)?;
                non_negative("weight_decay", weight_decay)?;
            }
            Self::RmsProp {
                alpha,
                eps,
                momentum,
                ..
            } => {
                unit("alpha", alpha)?;
                non_negative("eps", eps)?;
                non_negative("momentum", momentum)?;
            }
            Self::Sgd {
                momentum,
                dampening,
                nesterov,
                weight_decay,
                ..
            } => {
                non_negative("momentum", momentum)?;
                non_negative("dampening", dampening)?;
                non_negative("weight_decay", weight_decay)?;
                if nesterov && (momentum <= 0.0 || dampening != 0.0) {
                    return Err(ModelError::InvalidConfig(
                        "Nesterov momentum needs momentum > 0 and dampening = 0".into(),
                    ));
                }
            }
        }
        Ok(())
    }
}

/// One parameter and its optimiser state.
struct Param {
    name: String,
    var: Var,
    /// Updates applied to this parameter (Adam's bias correction counts per parameter).
    step: u64,
    /// Named state tensors: `exp_avg`, `exp_avg_sq`, `grad_avg`, `momentum_buffer`.
    state: HashMap<&'static str, Tensor>,
}

/// An optimiser over named variables (see [`OptimizerConfig`] for the update rules).
///
/// # Examples
/// ```
/// use candle_core::{Device, Tensor, Var};
/// use xnet_model::optim::{Optimizer, OptimizerConfig};
/// # fn main() -> xnet_model::Result<()> {
/// let x = Var::new(&[3.0f32], &Device::Cpu)?;
/// let mut opt = Optimizer::new(OptimizerConfig::sgd(0.1, 0.0), vec![("x".into(), x.clone())])?;
/// let loss = x.as_tensor().sqr()?.sum_all()?; // d/dx x² = 2x = 6
/// opt.step(&loss.backward()?)?;
/// assert!((x.as_tensor().to_vec1::<f32>()?[0] - 2.4).abs() < 1e-6);
/// # Ok(())
/// # }
/// ```
pub struct Optimizer {
    config: OptimizerConfig,
    lr: f64,
    params: Vec<Param>,
    /// Adam/AdamW on contiguous CPU tensors in place ([`fused_adam`]); off with
    /// `XNET_REFERENCE_OPTIMIZER=1`.
    fused: bool,
}

impl std::fmt::Debug for Optimizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Optimizer")
            .field("config", &self.config)
            .field("lr", &self.lr)
            .field("params", &self.params.len())
            .finish()
    }
}

impl Optimizer {
    /// An optimiser over the given `(name, variable)` pairs; non-float variables are skipped.
    /// Names key the saved state and must be unique.
    pub fn new(config: OptimizerConfig, vars: Vec<(String, Var)>) -> Result<Self> {
        config.validate()?;
        let mut params: Vec<Param> = vars
            .into_iter()
            .filter(|(_, v)| v.dtype().is_float())
            .map(|(name, var)| Param {
                name,
                var,
                step: 0,
                state: HashMap::new(),
            })
            .collect();
        params.sort_by(|a, b| a.name.cmp(&b.name));
        if let Some(w) = params.windows(2).find(|w| w[0].name == w[1].name) {
            return Err(ModelError::InvalidConfig(format!(
                "variable name `{}` given twice to the optimizer",
                w[0].name
            )));
        }
        Ok(Self {
            lr: config.learning_rate(),
            config,
            params,
            fused: !reference_optimizer(),
        })
    }

    /// An optimiser over every float variable of a [`candle_nn::VarMap`] (batch-norm running
    /// statistics included: they receive no gradient, so they are never updated).
    pub fn from_varmap(config: OptimizerConfig, varmap: &candle_nn::VarMap) -> Result<Self> {
        let vars = named_vars(varmap)?;
        Self::new(config, vars)
    }

    /// The configuration it was built with.
    pub fn config(&self) -> &OptimizerConfig {
        &self.config
    }

    /// The current learning rate.
    pub fn learning_rate(&self) -> f64 {
        self.lr
    }

    /// Sets the learning rate (what schedules do).
    pub fn set_learning_rate(&mut self, lr: f64) {
        self.lr = lr;
    }

    /// The variables it updates, sorted by name.
    pub fn vars(&self) -> Vec<Var> {
        self.params.iter().map(|p| p.var.clone()).collect()
    }

    /// Number of updates applied so far (the largest per-parameter count).
    pub fn steps(&self) -> u64 {
        self.params.iter().map(|p| p.step).max().unwrap_or(0)
    }

    /// Applies one update from the gradients of a `loss.backward()`. Variables without a
    /// gradient are left alone (and their step count does not advance).
    pub fn step(&mut self, grads: &GradStore) -> Result<()> {
        let lr = self.lr;
        let config = self.config.clone();
        for p in &mut self.params {
            let Some(g) = grads.get(p.var.as_tensor()) else {
                continue;
            };
            let g = g.detach();
            let theta = p.var.as_tensor().detach();
            p.step += 1;
            let t = p.step as i32;
            let next = match config {
                OptimizerConfig::Adam {
                    beta1,
                    beta2,
                    eps,
                    weight_decay,
                    ..
                }
                | OptimizerConfig::AdamW {
                    beta1,
                    beta2,
                    eps,
                    weight_decay,
                    ..
                } => {
                    let decoupled = matches!(config, OptimizerConfig::AdamW { .. });
                    if self.fused && fused_adam::applies(&theta, &g) {
                        let s = fused_adam::AdamStep {
                            beta1,
                            beta2,
                            eps,
                            l2: if decoupled { 0.0 } else { weight_decay },
                            decay: if decoupled {
                                1.0 - lr * weight_decay
                            } else {
                                1.0
                            },
                            step_size: lr / (1.0 - beta1.powi(t)),
                            sqrt_bc2: (1.0 - beta2.powi(t)).sqrt(),
                        };
                        let (m, v) = fused_adam::step(
                            &theta,
                            &g,
                            p.state.get("exp_avg"),
                            p.state.get("exp_avg_sq"),
                            s,
                        )?;
                        p.state.insert("exp_avg", m);
                        p.state.insert("exp_avg_sq", v);
                        continue;
                    }
                    let g = if !decoupled && weight_decay != 0.0 {
                        (g + (&theta * weight_decay)?)?
                    } else {
                        g
                    };
                    let m = match p.state.get("exp_avg") {
                        Some(m) => ((m * beta1)? + (&g * (1.0 - beta1))?)?,
                        None => (&g * (1.0 - beta1))?,
                    };
                    let v = match p.state.get("exp_avg_sq") {
                        Some(v) => ((v * beta2)? + (g.sqr()? * (1.0 - beta2))?)?,
                        None => (g.sqr()? * (1.0 - beta2))?,
                    };
                    let bc1 = 1.0 - beta1.powi(t);
                    let bc2 = 1.0 - beta2.powi(t);
                    let denom = ((v.sqrt()? / bc2.sqrt())? + eps)?;
                    let update = ((&m / &denom)? * (lr / bc1))?;
                    let theta = if decoupled && weight_decay != 0.0 {
                        (&theta * (1.0 - lr * weight_decay))?
                    } else {
                        theta
                    };
                    p.state.insert("exp_avg", m);
                    p.state.insert("exp_avg_sq", v);
                    (theta - update)?
                }
                OptimizerConfig::RmsProp {
                    alpha,
                    eps,
                    momentum,
                    centered,
                    ..
                } => {
                    let v = match p.state.get("square_avg") {
                        Some(v) => ((v * alpha)? + (g.sqr()? * (1.0 - alpha))?)?,
                        None => (g.sqr()? * (1.0 - alpha))?,
                    };
                    let avg = if centered {
                        let ga = match p.state.get("grad_avg") {
                            Some(a) => ((a * alpha)? + (&g * (1.0 - alpha))?)?,
                            None => (&g * (1.0 - alpha))?,
                        };
                        // The variance is ≥ 0 in exact arithmetic, but rounding takes it
                        // below once a gradient has long stayed the same, and its square
                        // root would be NaN (as in torch.optim): read as zero instead.
                        let avg = ((&v - ga.sqr()?)?.relu()?.sqrt()? + eps)?;
                        p.state.insert("grad_avg", ga);
                        avg
                    } else {
                        (v.sqrt()? + eps)?
                    };
                    p.state.insert("square_avg", v);
                    if momentum > 0.0 {
                        let scaled = (&g / &avg)?;
                        let buf = match p.state.get("momentum_buffer") {
                            Some(b) => ((b * momentum)? + scaled)?,
                            None => scaled,
                        };
                        let next = (&theta - (&buf * lr)?)?;
                        p.state.insert("momentum_buffer", buf);
                        next
                    } else {
                        (&theta - ((&g / &avg)? * lr)?)?
                    }
                }
                OptimizerConfig::Sgd {
                    momentum,
                    dampening,
                    nesterov,
                    weight_decay,
                    ..
                } => {
                    let g = if weight_decay != 0.0 {
                        (g + (&theta * weight_decay)?)?
                    } else {
                        g
                    };
                    let g = if momentum > 0.0 {
                        let buf = match p.state.get("momentum_buffer") {
                            Some(b) => ((b * momentum)? + (&g * (1.0 - dampening))?)?,
                            None => g.clone(),
                        };
                        let g = if nesterov {
                            (&g + (&buf * momentum)?)?
                        } else {
                            buf.clone()
                        };
                        p.state.insert("momentum_buffer", buf);
                        g
                    } else {
                        g
                    };
                    (&theta - (g * lr)?)?
                }
            };
            p.var.set(&next)?;
        }
        Ok(())
    }

    /// Scales the gradients of this optimiser's variables so that their global L2 norm is
    /// at most `max_norm`, as `torch.nn.utils.clip_grad_norm_`; returns the norm before
    /// clipping. See [`clip_grad_norm`].
    pub fn clip_grad_norm(&self, grads: &mut GradStore, max_norm: f64) -> Result<f64> {
        clip_grad_norm(grads, &self.vars(), max_norm)
    }

    /// The optimiser state as named tensors (`<variable>/<state>`), plus one `<variable>/step`
    /// scalar per parameter.
    pub fn state_tensors(&self) -> Result<HashMap<String, Tensor>> {
        let mut out = HashMap::new();
        for p in &self.params {
            for (k, t) in &p.state {
                // A copy: the fused Adam step updates its moments in place.
                out.insert(format!("{}/{k}", p.name), t.copy()?);
            }
            out.insert(
                format!("{}/step", p.name),
                Tensor::new(p.step as f64, p.var.device())?,
            );
        }
        Ok(out)
    }

    /// Writes [`Optimizer::state_tensors`] to a safetensors file, atomically.
    pub fn save_state(&self, path: &Path) -> Result<()> {
        let tensors = self.state_tensors()?;
        crate::checkpoint::write_safetensors_atomic(path, &tensors).map(|_| ())
    }

    /// Restores state written by [`Optimizer::save_state`] for the same variables and
    /// optimiser configuration; only the state this configuration keeps is read (another
    /// configuration's moments, e.g. RMSprop's mean gradient when it is no longer centred,
    /// are passed over). A tensor that belongs to no variable of this optimiser, or that is
    /// no state any optimiser keeps, is an error listing them (the file of another network,
    /// or a damaged one). A state
    /// tensor whose shape does not match its variable, a variable whose step count is
    /// missing, or a moment this configuration keeps missing for a variable that has taken a
    /// step, is an error naming it, as is a damaged value no update can run with: a step
    /// count that is not a single whole number ≥ 0, a state value that is NaN or infinite
    /// (in the variable's dtype), or a negative squared average (`exp_avg_sq`,
    /// `square_avg`, whose square root the update takes). Errors name the file; on an error
    /// the optimiser's state is left as it was.
    pub fn load_state(&mut self, path: &Path, device: &Device) -> Result<()> {
        let tensors =
            candle_core::safetensors::load(path, device).map_err(|e| ModelError::Safetensors {
                path: path.to_path_buf(),
                message: e.to_string(),
            })?;
        let damaged = |tensor: &str, message: String| ModelError::WeightValue {
            path: path.to_path_buf(),
            tensor: tensor.to_string(),
            message: format!("{message}; the optimiser state is damaged"),
        };
        // A tensor of no variable here, or no state any optimiser keeps, means the file
        // belongs to another network (or is damaged); loading the rest would resume from a
        // state that is not this run's.
        let mut unexpected: Vec<String> = tensors
            .keys()
            .filter(|name| match name.rsplit_once('/') {
                Some((var, key)) => {
                    !(STATE_KEYS.contains(&key) && self.params.iter().any(|p| p.name == var))
                }
                None => true,
            })
            .cloned()
            .collect();
        if !unexpected.is_empty() {
            unexpected.sort();
            return Err(ModelError::WeightNames {
                path: path.to_path_buf(),
                missing: vec![],
                unexpected,
            });
        }
        let mut restored = Vec::with_capacity(self.params.len());
        for p in &self.params {
            let step_key = format!("{}/step", p.name);
            let step = tensors
                .get(&step_key)
                .ok_or_else(|| ModelError::WeightNames {
                    path: path.to_path_buf(),
                    missing: vec![step_key.clone()],
                    unexpected: vec![],
                })?;
            if step.rank() != 0 {
                return Err(damaged(
                    &step_key,
                    format!(
                        "a step count is one number, the file holds shape {:?}",
                        step.dims()
                    ),
                ));
            }
            let step = step.to_dtype(DType::F64)?.to_scalar::<f64>()?;
            // `as u64` would read NaN and negatives as 0 and cut fractions silently.
            if !(step.is_finite() && step >= 0.0 && step.fract() == 0.0 && step < 2f64.powi(64)) {
                return Err(damaged(
                    &step_key,
                    format!("step count {step} is not a whole number ≥ 0"),
                ));
            }
            let mut state = HashMap::new();
            // Only what this configuration keeps: every update stores all of it, so a
            // variable that has taken a step must hold each (a missing one would silently
            // restart from zero); another configuration's extra state is not read.
            for key in self.config.state_keys() {
                let name = format!("{}/{key}", p.name);
                let Some(t) = tensors.get(&name) else {
                    if step > 0.0 {
                        return Err(ModelError::WeightValue {
                            path: path.to_path_buf(),
                            tensor: name,
                            message: format!(
                                "missing, though the variable has taken {step} step(s) and \
                                 this optimiser keeps it: the state of another optimiser \
                                 configuration, or a damaged file"
                            ),
                        });
                    }
                    continue;
                };
                if t.dims() != p.var.dims() {
                    return Err(ModelError::WeightShape {
                        path: path.to_path_buf(),
                        tensor: name,
                        expected: p.var.dims().to_vec(),
                        found: t.dims().to_vec(),
                    });
                }
                let t = t.to_dtype(p.var.dtype())?;
                let values = t.flatten_all()?.to_dtype(DType::F64)?.to_vec1::<f64>()?;
                if let Some((i, v)) = values.iter().enumerate().find(|(_, v)| !v.is_finite()) {
                    return Err(damaged(
                        &name,
                        format!("value {v} at index {i} is not finite"),
                    ));
                }
                if key == "exp_avg_sq" || key == "square_avg" {
                    if let Some((i, v)) = values.iter().enumerate().find(|(_, &v)| v < 0.0) {
                        return Err(damaged(
                            &name,
                            format!("value {v} at index {i} is negative (a squared average)"),
                        ));
                    }
                }
                state.insert(key, t);
            }
            restored.push((step as u64, state));
        }
        for (p, (step, state)) in self.params.iter_mut().zip(restored) {
            p.step = step;
            p.state = state;
        }
        Ok(())
    }
}

/// Every float variable of a VarMap with its name, sorted by name.
pub fn named_vars(varmap: &candle_nn::VarMap) -> Result<Vec<(String, Var)>> {
    let data = varmap
        .data()
        .lock()
        .map_err(|_| ModelError::InvalidConfig("the VarMap's lock is poisoned".into()))?;
    let mut vars: Vec<(String, Var)> = data
        .iter()
        .filter(|(_, v)| v.dtype().is_float())
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    vars.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(vars)
}

/// Scales the gradients of `vars` in place so that their global L2 norm is at most
/// `max_norm` (factor `max_norm / (norm + 10⁻⁶)`, as `torch.nn.utils.clip_grad_norm_`);
/// returns the total norm before clipping, which may be NaN or infinite (the caller decides).
pub fn clip_grad_norm(grads: &mut GradStore, vars: &[Var], max_norm: f64) -> Result<f64> {
    if !(max_norm.is_finite() && max_norm > 0.0) {
        return Err(ModelError::InvalidConfig(format!(
            "gradient clipping max_norm must be finite and > 0, got {}",
            readable_number(max_norm)
        )));
    }
    let mut sq = 0f64;
    for v in vars {
        if let Some(g) = grads.get(v.as_tensor()) {
            sq += g
                .sqr()?
                .sum_all()?
                .to_dtype(DType::F64)?
                .to_scalar::<f64>()?;
        }
    }
    let norm = sq.sqrt();
    if norm.is_finite() && norm > max_norm {
        let factor = max_norm / (norm + 1e-6);
        for v in vars {
            if let Some(g) = grads.remove(v.as_tensor()) {
                grads.insert(v.as_tensor(), (g * factor)?);
            }
        }
    }
    Ok(norm)
}

/// A learning-rate schedule, stepped once per epoch.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum LrSchedule {
    /// The initial learning rate throughout.
    #[default]
    Constant,
    /// `lr₀ · γ^⌊epoch / step_size⌋` (`torch.optim.lr_scheduler.StepLR`).
    ///
    /// `gamma` is a decay factor in (0, 1] (1 keeps the rate). PyTorch's `StepLR` takes any
    /// gamma, but one above 1 grows the rate geometrically without bound: from 10⁻³ with
    /// gamma 2 it passes the `f32` range the update runs in (infinity) after 138 decays,
    /// mid-run. [`LrSchedule::validate`] refuses it, so that every rate a valid schedule gives
    /// lies between 0 and its base rate.
    Step {
        /// Epochs between decays (> 0).
        step_size: usize,
        /// Decay factor, in (0, 1].
        gamma: f64,
    },
    /// `η_min + (lr₀ − η_min)(1 + cos(π·epoch/t_max))/2` for `epoch ≤ t_max`, then `η_min`
    /// (PyTorch's `CosineAnnealingLR` without its restart-like rise after `t_max`).
    Cosine {
        /// Epochs of the half cosine (> 0).
        t_max: usize,
        /// Final learning rate.
        eta_min: f64,
    },
    /// Multiply by `factor` when the validation loss has not improved by more than a relative
    /// `threshold` for more than `patience` epochs (`ReduceLROnPlateau`, mode `min`,
    /// threshold mode `rel`).
    ReduceOnPlateau {
        /// Factor in (0, 1).
        factor: f64,
        /// Epochs without improvement tolerated.
        patience: usize,
        /// Relative improvement that counts (PyTorch: 10⁻⁴).
        threshold: f64,
        /// Epochs to wait after a reduction before counting again.
        cooldown: usize,
        /// Lower bound of the learning rate.
        min_lr: f64,
    },
}

impl LrSchedule {
    /// `ReduceOnPlateau` with PyTorch's defaults (factor 0.1, patience 10, threshold 10⁻⁴).
    pub fn reduce_on_plateau() -> Self {
        Self::ReduceOnPlateau {
            factor: 0.1,
            patience: 10,
            threshold: 1e-4,
            cooldown: 0,
            min_lr: 0.0,
        }
    }

    /// Checks the parameters. NaN and infinities are refused, and so is a value beyond the
    /// `f32` range (a `1e308` in a JSON config): the learning rate it gives runs in `f32`. A
    /// step schedule's `gamma` must lie in (0, 1] (see [`LrSchedule::Step`]).
    ///
    /// # Errors
    /// [`ModelError::InvalidConfig`] naming the schedule, the parameter and the value.
    ///
    /// # Examples
    /// ```
    /// use xnet_model::optim::LrSchedule;
    /// assert!(LrSchedule::Step { step_size: 10, gamma: 0.5 }.validate().is_ok());
    /// let e = LrSchedule::Cosine { t_max: 10, eta_min: 1e308 }.validate().unwrap_err();
    /// assert!(e.to_string().contains("cosine schedule: eta_min must be a finite number"), "{e}");
    /// ```
    pub fn validate(&self) -> Result<()> {
        let err = |m: String| Err(ModelError::InvalidConfig(m));
        // The parameters without an upper bound of their own (factor lies in (0, 1)).
        let unbounded: &[(&str, f64)] = match *self {
            Self::Constant => &[],
            Self::Step { gamma, .. } => &[("step schedule: gamma", gamma)],
            Self::Cosine { eta_min, .. } => &[("cosine schedule: eta_min", eta_min)],
            Self::ReduceOnPlateau {
                threshold, min_lr, ..
            } => &[
                ("reduce-on-plateau: threshold", threshold),
                ("reduce-on-plateau: min_lr", min_lr),
            ],
        };
        crate::error::check_f32_range(unbounded)?;
        match *self {
            Self::Constant => Ok(()),
            Self::Step { step_size, gamma } => {
                if step_size == 0 {
                    return err("step schedule: step_size must be > 0".into());
                }
                // Above 1 the rate would grow without bound, past the f32 range mid-run.
                if !(gamma > 0.0 && gamma <= 1.0) {
                    return err(format!(
                        "step schedule: gamma must be in (0, 1] (a decay factor; above 1 the \
                         learning rate grows without bound), got {}",
                        readable_number(gamma)
                    ));
                }
                Ok(())
            }
            Self::Cosine { t_max, eta_min } => {
                if t_max == 0 {
                    return err("cosine schedule: t_max must be > 0".into());
                }
                if !(eta_min.is_finite() && eta_min >= 0.0) {
                    return err(format!(
                        "cosine schedule: eta_min must be ≥ 0, got {}",
                        readable_number(eta_min)
                    ));
                }
                Ok(())
            }
            Self::ReduceOnPlateau {
                factor,
                threshold,
                min_lr,
                ..
            } => {
                if !(factor > 0.0 && factor < 1.0) {
                    return err(format!(
                        "reduce-on-plateau: factor must be in (0, 1), got {}",
                        readable_number(factor)
                    ));
                }
                if !(threshold.is_finite() && threshold >= 0.0) {
                    return err(format!(
                        "reduce-on-plateau: threshold must be ≥ 0, got {}",
                        readable_number(threshold)
                    ));
                }
                if !(min_lr.is_finite() && min_lr >= 0.0) {
                    return err(format!(
                        "reduce-on-plateau: min_lr must be ≥ 0, got {}",
                        readable_number(min_lr)
                    ));
                }
                Ok(())
            }
        }
    }
}

/// A schedule with its state (serialisable, so that training can resume).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LrScheduler {
    schedule: LrSchedule,
    base_lr: f64,
    lr: f64,
    /// Best metric so far (`None` before the first; JSON has no infinity).
    best: Option<f64>,
    bad_epochs: usize,
    cooldown_left: usize,
}

impl LrScheduler {
    /// A scheduler starting at `base_lr`.
    ///
    /// With a valid schedule and base rate, every rate the scheduler gives lies in
    /// `[0, max(base_lr, eta_min or min_lr)]`, within the `f32` range the update runs in.
    ///
    /// # Errors
    /// [`ModelError::InvalidConfig`] for a schedule that [`LrSchedule::validate`] refuses,
    /// or a `base_lr` that is not a positive number within the `f32` range: NaN, infinite,
    /// beyond `f32::MAX` (such as `1e308`, infinity in the `f32` update) or ≤ 0. The message
    /// names `base_lr`.
    ///
    /// # Examples
    /// ```
    /// use xnet_model::optim::{LrSchedule, LrScheduler};
    /// assert!(LrScheduler::new(LrSchedule::Constant, 1e-3).is_ok());
    /// let e = LrScheduler::new(LrSchedule::Constant, 1e308).unwrap_err().to_string();
    /// assert!(e.contains("base_lr must be a finite number"), "{e}");
    /// assert!(LrScheduler::new(LrSchedule::Constant, 0.0).is_err());
    /// ```
    pub fn new(schedule: LrSchedule, base_lr: f64) -> Result<Self> {
        let scheduler = Self {
            schedule,
            base_lr,
            lr: base_lr,
            best: None,
            bad_epochs: 0,
            cooldown_left: 0,
        };
        scheduler.validate()?;
        Ok(scheduler)
    }

    /// Checks what [`LrScheduler::new`] checks, and the current rate: finite in `f32` and
    /// ≥ 0. A scheduler read back from a file (a `trainer_state.json`) was not built by
    /// `new`, and an edited rate (`1e308`, which `f64` holds) would run as infinity.
    ///
    /// # Errors
    /// As [`LrScheduler::new`]; a current rate that is NaN, beyond the `f32` range or
    /// negative, naming `learning rate (lr)`.
    ///
    /// # Examples
    /// ```
    /// use xnet_model::optim::{LrSchedule, LrScheduler};
    /// let s = LrScheduler::new(LrSchedule::Constant, 1e-3)?;
    /// s.validate()?;
    /// let mut state = serde_json::to_value(&s)?;
    /// state["lr"] = serde_json::json!(-0.5);
    /// let edited: LrScheduler = serde_json::from_value(state)?;
    /// assert!(edited.validate().unwrap_err().to_string().contains("must be ≥ 0"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn validate(&self) -> Result<()> {
        self.schedule.validate()?;
        crate::error::check_f32_range(&[
            ("lr scheduler: base_lr", self.base_lr),
            ("lr scheduler: learning rate (lr)", self.lr),
        ])?;
        if self.base_lr <= 0.0 {
            return Err(ModelError::InvalidConfig(format!(
                "lr scheduler: base_lr must be > 0, got {}",
                readable_number(self.base_lr)
            )));
        }
        // A schedule decays to 0 at most (eta_min, min_lr ≥ 0).
        if self.lr < 0.0 {
            return Err(ModelError::InvalidConfig(format!(
                "lr scheduler: learning rate (lr) must be ≥ 0, got {}",
                readable_number(self.lr)
            )));
        }
        Ok(())
    }

    /// The learning rate for the next epoch.
    pub fn learning_rate(&self) -> f64 {
        self.lr
    }

    /// Whether this scheduler runs `schedule` from `base_lr` (a resumed run whose
    /// configuration changed its schedule does not).
    pub fn follows(&self, schedule: &LrSchedule, base_lr: f64) -> bool {
        self.schedule == *schedule && self.base_lr == base_lr
    }

    /// A scheduler for `schedule` from `base_lr` as it stands before epoch `next_epoch`: the
    /// rate the schedule gives that epoch. What a resumed run whose schedule or rate changed
    /// continues with (say, a finished cosine run extended to more epochs: the cosine then
    /// spans the new count, instead of staying at its floor). Reduce-on-plateau depends on
    /// the losses seen, not on the epoch, so it starts afresh at `base_lr`.
    ///
    /// # Errors
    /// As [`LrScheduler::new`].
    ///
    /// # Examples
    /// ```
    /// use xnet_model::optim::{LrSchedule, LrScheduler};
    /// let cosine = LrSchedule::Cosine { t_max: 200, eta_min: 0.0 };
    /// let at = LrScheduler::resumed_at(cosine, 1.0, 100)?;
    /// assert!((at.learning_rate() - 0.5).abs() < 1e-12);
    /// # Ok::<(), xnet_model::ModelError>(())
    /// ```
    pub fn resumed_at(schedule: LrSchedule, base_lr: f64, next_epoch: usize) -> Result<Self> {
        let mut scheduler = Self::new(schedule, base_lr)?;
        if next_epoch > 0 {
            scheduler.step(next_epoch - 1, None);
        }
        Ok(scheduler)
    }

    /// Call after epoch `epoch` (0-based) with its validation loss (needed only by
    /// reduce-on-plateau; `None` leaves it unchanged); returns the rate for epoch `epoch + 1`.
    pub fn step(&mut self, epoch: usize, val_loss: Option<f64>) -> f64 {
        let next = epoch + 1;
        self.lr = match self.schedule {
            LrSchedule::Constant => self.base_lr,
            LrSchedule::Step { step_size, gamma } => {
                self.base_lr * gamma.powi((next / step_size) as i32)
            }
            LrSchedule::Cosine { t_max, eta_min } => {
                if next >= t_max {
                    eta_min
                } else {
                    let c = (std::f64::consts::PI * next as f64 / t_max as f64).cos();
                    eta_min + (self.base_lr - eta_min) * (1.0 + c) / 2.0
                }
            }
            LrSchedule::ReduceOnPlateau {
                factor,
                patience,
                threshold,
                cooldown,
                min_lr,
            } => {
                let mut lr = self.lr;
                if let Some(metric) = val_loss {
                    let better = match self.best {
                        None => true,
                        Some(best) => metric < best * (1.0 - threshold),
                    };
                    if better {
                        self.best = Some(metric);
                        self.bad_epochs = 0;
                    } else {
                        self.bad_epochs += 1;
                    }
                    if self.cooldown_left > 0 {
                        self.cooldown_left -= 1;
                        self.bad_epochs = 0;
                    }
                    if self.bad_epochs > patience {
                        let new_lr = (lr * factor).max(min_lr);
                        if lr - new_lr > 1e-8 {
                            lr = new_lr;
                        }
                        self.cooldown_left = cooldown;
                        self.bad_epochs = 0;
                    }
                }
                lr
            }
        };
        self.lr
    }
}

#[cfg(test)]
mod state_key_tests {
    use super::*;

    #[test]
    fn every_kept_moment_is_a_state_key() {
        let configs = [
            OptimizerConfig::adam(1e-3),
            OptimizerConfig::adamw(1e-3),
            OptimizerConfig::RmsProp {
                lr: 1e-3,
                alpha: 0.9,
                eps: 1e-8,
                momentum: 0.9,
                centered: true,
            },
            OptimizerConfig::sgd(0.1, 0.9),
        ];
        let mut seen = vec!["step"];
        for config in &configs {
            for key in config.state_keys() {
                assert!(STATE_KEYS.contains(&key), "{key} is not in STATE_KEYS");
                seen.push(key);
            }
        }
        for key in STATE_KEYS {
            assert!(seen.contains(&key), "no configuration keeps {key}");
        }
    }
}
