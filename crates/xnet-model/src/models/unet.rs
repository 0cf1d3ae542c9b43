//! UNet (being written: building it returns an error in this revision).

use super::{ModelConfig, Segmenter};
use crate::{ModelError, Result};
use candle_core::Tensor;

/// Configuration of UNet.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct UNetConfig {
    /// Input channels.
    pub in_channels: usize,
    /// Output classes.
    pub num_classes: usize,
}

impl Default for UNetConfig {
    fn default() -> Self {
        Self {
            in_channels: 1,
            num_classes: 3,
        }
    }
}

impl UNetConfig {
    /// Checks the configuration.
    pub fn validate(&self) -> Result<()> {
        Err(ModelError::InvalidConfig(
            "UNet is not available in this revision".into(),
        ))
    }
    /// Input sizes must be multiples of this.
    pub fn size_multiple(&self) -> usize {
        8
    }
    /// Forward FLOPs of one image.
    pub fn forward_flops(&self, _h: usize, _w: usize) -> u64 {
        0
    }
    /// Builds the network.
    pub fn build(&self, _vb: candle_nn::VarBuilder) -> Result<UNet> {
        self.validate()?;
        Ok(UNet { cfg: self.clone() })
    }
}

/// The UNet network.
#[derive(Debug, Clone)]
pub struct UNet {
    cfg: UNetConfig,
}

impl candle_nn::ModuleT for UNet {
    fn forward_t(&self, _x: &Tensor, _train: bool) -> candle_core::Result<Tensor> {
        candle_core::bail!("UNet is not available in this revision")
    }
}

impl Segmenter for UNet {
    fn num_classes(&self) -> usize {
        self.cfg.num_classes
    }
    fn size_multiple(&self) -> usize {
        8
    }
    fn config(&self) -> ModelConfig {
        ModelConfig::UNet(self.cfg.clone())
    }
    fn fold_batch_norm(&mut self) -> Result<usize> {
        Ok(0)
    }
}
