//! Checkpoints: safetensors weights plus the config as JSON, written atomically.
