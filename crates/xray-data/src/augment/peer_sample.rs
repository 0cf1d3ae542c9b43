//! The sample that the albumentations peer (`../shared/peers/aug_peer.py`) augments, so that
//! this crate's speed test and the root package's criterion bench time the same input.

use image::Luma;

use crate::{Mask, Radiograph};

/// The peer's `make_sample` pattern, `size × size`: `0.5 + 0.3 sin(6x) cos(4y)` on `[0, 1)²`
/// (its small Gaussian noise term is left out; it does not change the cost), and a mask of
/// 3 classes by thresholds 0.45 and 0.7.
///
/// # Examples
/// ```
/// let (img, mask) = xray_data::augment::peer_sample(64);
/// assert_eq!(img.dimensions(), (64, 64));
/// assert!(mask.pixels().all(|p| p.0[0] <= 2));
/// ```
pub fn peer_sample(size: u32) -> (Radiograph, Mask) {
    let s = size as f32;
    let img = Radiograph::from_fn(size, size, |x, y| {
        let (xx, yy) = (x as f32 / s, y as f32 / s);
        Luma([(0.5 + 0.3 * (6.0 * xx).sin() * (4.0 * yy).cos()).clamp(0.0, 1.0)])
    });
    let mask = Mask::from_fn(size, size, |x, y| {
        let v = img.get_pixel(x, y).0[0];
        Luma([if v > 0.7 {
            2
        } else if v > 0.45 {
            1
        } else {
            0
        }])
    });
    (img, mask)
}
