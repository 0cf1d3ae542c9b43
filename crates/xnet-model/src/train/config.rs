//! The hyper-parameters of a training run ([`TrainConfig`]) and their checks.

use serde::{Deserialize, Serialize};

use crate::error::readable_number;
use crate::loss::LossConfig;
use crate::optim::{LrSchedule, OptimizerConfig};
use crate::{ModelError, Result};

/// Hyper-parameters of a training run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TrainConfig {
    /// Maximum number of epochs.
    pub epochs: usize,
    /// Optimiser (default: RMSprop, lr 10⁻⁴, as the reference).
    pub optimizer: OptimizerConfig,
    /// Learning-rate schedule, stepped once per epoch.
    pub schedule: LrSchedule,
    /// Loss: data term, class weights, ignore label, boundary weights, L2.
    pub loss: LossConfig,
    /// Clip the global gradient norm to this value (`None`: no clipping).
    pub grad_clip_norm: Option<f64>,
    /// Stop after this many epochs without validation-loss improvement (`None`: never).
    pub early_stopping_patience: Option<usize>,
    /// Improvement of the validation loss smaller than this does not count.
    pub min_delta: f64,
    /// Show an indicatif progress bar on stderr. Only in a build with the crate's `progress`
    /// feature (a default one); without it no bar is shown, whatever this says.
    pub progress: bool,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            epochs: 50,
            optimizer: OptimizerConfig::default(),
            schedule: LrSchedule::Constant,
            loss: LossConfig::default(),
            grad_clip_norm: None,
            early_stopping_patience: Some(10),
            min_delta: 0.0,
            progress: true,
        }
    }
}

impl TrainConfig {
    /// Checks every field against a model with `num_classes` classes: the optimiser
    /// ([`OptimizerConfig::validate`]), schedule ([`LrSchedule::validate`]) and loss
    /// ([`LossConfig::validate`]), which refuse NaN, infinities and values beyond the `f32`
    /// range; `grad_clip_norm` and `min_delta` must be finite (they are compared in `f64`,
    /// with the gradient norm and the validation loss).
    ///
    /// # Errors
    /// [`ModelError::InvalidConfig`] naming the field and the value.
    ///
    /// # Examples
    /// ```
    /// use xnet_model::train::TrainConfig;
    /// let config = TrainConfig { progress: false, ..Default::default() };
    /// assert!(config.validate(3).is_ok());
    /// let nan_delta = TrainConfig { min_delta: f64::NAN, ..config.clone() };
    /// let e = nan_delta.validate(3).unwrap_err().to_string();
    /// assert!(e.contains("min_delta must be finite"), "{e}");
    /// let no_patience = TrainConfig { early_stopping_patience: Some(0), ..config };
    /// let e = no_patience.validate(3).unwrap_err().to_string();
    /// assert!(e.contains("early_stopping_patience"), "{e}");
    /// ```
    pub fn validate(&self, num_classes: usize) -> Result<()> {
        if self.epochs == 0 {
            return Err(ModelError::InvalidConfig("epochs must be ≥ 1".into()));
        }
        self.optimizer.validate()?;
        self.schedule.validate()?;
        self.loss.validate(num_classes)?;
        if let Some(c) = self.grad_clip_norm {
            if !(c.is_finite() && c > 0.0) {
                return Err(ModelError::InvalidConfig(format!(
                    "grad_clip_norm must be finite and > 0, got {}",
                    readable_number(c)
                )));
            }
        }
        if self.early_stopping_patience == Some(0) {
            return Err(ModelError::InvalidConfig(
                "early_stopping_patience must be ≥ 1 (or null to disable)".into(),
            ));
        }
        if !(self.min_delta.is_finite() && self.min_delta >= 0.0) {
            return Err(ModelError::InvalidConfig(format!(
                "min_delta must be finite and ≥ 0, got {}",
                readable_number(self.min_delta)
            )));
        }
        Ok(())
    }
}
