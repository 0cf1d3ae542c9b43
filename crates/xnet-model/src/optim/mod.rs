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

use crate::error::readable_number;
use crate::{ModelError, Result};

mod config;
mod fused_adam;
mod schedule;

pub use config::OptimizerConfig;
use config::STATE_KEYS;
pub use schedule::{LrSchedule, LrScheduler};

/// `XNET_REFERENCE_OPTIMIZER=1` makes Adam/AdamW take the allocating tensor-op path on the
/// CPU too (the reference the fused in-place update is tested against).
fn reference_optimizer() -> bool {
    matches!(std::env::var("XNET_REFERENCE_OPTIMIZER"), Ok(v) if !v.is_empty() && v != "0")
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
