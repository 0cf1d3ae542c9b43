//! Which optimiser, with its hyper-parameters ([`OptimizerConfig`]), and the names of the
//! state each keeps.

use serde::{Deserialize, Serialize};

use crate::error::readable_number;
use crate::{ModelError, Result};

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

/// Every name a variable's state goes by in
/// [`Optimizer::state_tensors`](super::Optimizer::state_tensors), whichever the configuration:
/// the step count and each moment some configuration keeps.
pub(super) const STATE_KEYS: [&str; 6] = [
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
    pub(super) fn state_keys(&self) -> impl Iterator<Item = &'static str> {
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
