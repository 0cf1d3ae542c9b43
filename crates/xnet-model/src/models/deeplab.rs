//! DeepLab.

/// Configuration of DeepLab.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct DeepLabConfig {}
