//! xray-seg: the workspace root package; it owns the examples and benches.
