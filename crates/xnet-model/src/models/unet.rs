//! UNet.

/// Configuration of UNet.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct UNetConfig {}
