//! The networks: XNet, U-Net, SegNet and DeepLab-lite, behind one [`Segmenter`] trait.

use candle_core::Tensor;

pub mod deeplab;
pub mod segnet;
pub mod unet;
pub mod xnet;

pub use deeplab::DeepLabConfig;
pub use segnet::SegNetConfig;
pub use unet::UNetConfig;
pub use xnet::XNetConfig;

/// A segmentation network: maps `[N, 1, H, W]` images to `[N, C, H, W]` logits.
///
/// Every architecture of this crate implements it, so examples, trainers and benches treat
/// them alike.
pub trait Segmenter: candle_nn::ModuleT + Send + Sync {
    /// Number of output classes `C`.
    fn num_classes(&self) -> usize;

    /// Height and width of the input must be multiples of this (the product of the pooling
    /// factors).
    fn size_multiple(&self) -> usize;
}

/// The configuration of any network of this crate, serialised as JSON beside checkpoints.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "arch", rename_all = "lowercase")]
pub enum ModelConfig {
    /// XNet (Bullock et al. 2019).
    XNet(XNetConfig),
    /// U-Net (Ronneberger et al. 2015).
    UNet(UNetConfig),
    /// SegNet with pooling-index unpooling.
    SegNet(SegNetConfig),
    /// DeepLab-style encoder with an atrous spatial pyramid.
    DeepLab(DeepLabConfig),
}
