//! Augmentation: transforms applied jointly to image and mask, and image-only transforms.
