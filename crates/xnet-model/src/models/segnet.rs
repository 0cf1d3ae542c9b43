//! SegNet.

/// Configuration of SegNet.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SegNetConfig {}
