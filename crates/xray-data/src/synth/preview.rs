//! Preview pictures: the radiograph as shown on a light box beside a colour overlay of its
//! mask.
//!
//! Display convention: the image is log-transformed, windowed on the 0.5–99.5 percentiles
//! of the in-field pixels and **inverted**, so bone is white and open beam black as on film
//! (the stored values are the opposite: larger = more X-rays).

use image::{Rgb, RgbImage};

use crate::{Mask, Radiograph, BONE, IGNORE_LABEL, OPEN_BEAM, SOFT_TISSUE};

/// Overlay colour of a label.
pub fn label_color(label: u8) -> [u8; 3] {
    match label {
        OPEN_BEAM => [40, 110, 230],
        SOFT_TISSUE => [50, 200, 80],
        BONE => [250, 200, 40],
        IGNORE_LABEL => [190, 40, 170],
        _ => [255, 0, 0],
    }
}

/// Display grey levels (bone white) of `image`, windowed on the pixels not ignored by `mask`.
pub fn display(image: &Radiograph, mask: &Mask) -> Vec<u8> {
    let logv: Vec<f32> = image
        .as_raw()
        .iter()
        .map(|&v| (v.max(0.0) + 1.0).ln())
        .collect();
    let mut sample: Vec<f32> = logv
        .iter()
        .zip(mask.as_raw())
        .filter(|(v, &m)| m != IGNORE_LABEL && v.is_finite())
        .map(|(&v, _)| v)
        .collect();
    if sample.len() < 16 {
        sample = logv.iter().copied().filter(|v| v.is_finite()).collect();
    }
    if sample.is_empty() {
        return vec![0; logv.len()];
    }
    sample.sort_by(|a, b| a.total_cmp(b));
    let q = |p: f32| sample[((sample.len() - 1) as f32 * p) as usize];
    let (lo, hi) = (q(0.005), q(0.995));
    let span = (hi - lo).max(1e-6);
    logv.iter()
        .map(|&v| {
            let t = ((v - lo) / span).clamp(0.0, 1.0);
            // Inverted (film convention) with a gentle S-curve for contrast.
            let d = 1.0 - t;
            let s = d * d * (3.0 - 2.0 * d);
            ((0.35 * d + 0.65 * s) * 255.0).round() as u8
        })
        .collect()
}

/// The image (light-box display) beside the same display blended with the label colours.
/// Output is `2w + gap` by `h`.
pub fn preview(image: &Radiograph, mask: &Mask) -> RgbImage {
    let (w, h) = image.dimensions();
    let gap = 4u32;
    let disp = display(image, mask);
    let mut out = RgbImage::from_pixel(2 * w + gap, h, Rgb([70, 70, 70]));
    for y in 0..h {
        for x in 0..w {
            let i = (y * w + x) as usize;
            let g = disp[i];
            out.put_pixel(x, y, Rgb([g, g, g]));
            let m = mask
                .get_pixel_checked(x, y)
                .map_or(IGNORE_LABEL, |p| p.0[0]);
            let c = label_color(m);
            let a = 0.5f32;
            let mix = |k: usize| (g as f32 * (1.0 - a) + c[k] as f32 * a).round() as u8;
            out.put_pixel(w + gap + x, y, Rgb([mix(0), mix(1), mix(2)]));
        }
    }
    out
}

/// Tile previews (all the same size) into a grid with `cols` columns and a grey gap.
pub fn preview_grid(tiles: &[RgbImage], cols: usize) -> RgbImage {
    let cols = cols.max(1);
    let Some(first) = tiles.first() else {
        return RgbImage::new(1, 1);
    };
    let (tw, th) = first.dimensions();
    let gap = 8u32;
    let rows = tiles.len().div_ceil(cols) as u32;
    let c = cols.min(tiles.len()) as u32;
    let mut out = RgbImage::from_pixel(
        c * (tw + gap) - gap,
        rows * (th + gap) - gap,
        Rgb([70, 70, 70]),
    );
    for (k, t) in tiles.iter().enumerate() {
        let (ox, oy) = (
            (k % cols) as u32 * (tw + gap),
            (k / cols) as u32 * (th + gap),
        );
        for (x, y, p) in t.enumerate_pixels() {
            if x < tw && y < th {
                out.put_pixel(ox + x, oy + y, *p);
            }
        }
    }
    out
}
