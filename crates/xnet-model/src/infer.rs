//! Inference: whole-image and tiled probability maps.
