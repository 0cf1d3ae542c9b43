//! Learning-rate schedules (step, cosine, reduce-on-plateau) and the stepped scheduler
//! that keeps their state.

use serde::{Deserialize, Serialize};

use crate::error::readable_number;
use crate::{ModelError, Result};

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
#[path = "schedule_tests.rs"]
mod tests;
