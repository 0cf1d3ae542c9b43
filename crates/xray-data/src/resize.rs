//! Resizing images (area, bilinear) and masks (nearest).
