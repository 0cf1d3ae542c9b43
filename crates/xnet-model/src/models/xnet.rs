//! XNet.

/// Configuration of XNet.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct XNetConfig {}
