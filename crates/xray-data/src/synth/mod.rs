//! Synthetic radiographs with exact labels (limb phantoms, X-ray physics, collimation).
