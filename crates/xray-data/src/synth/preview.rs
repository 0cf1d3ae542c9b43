//! Preview pictures: the radiograph as shown on a light box beside a colour overlay of its
//! mask.
//!
//! Display convention: the image is log-transformed, windowed on the 0.5–99.5 percentiles
//! of the in-field pixels and **inverted**, so bone is white and open beam black as on film
//! (the stored values are the opposite: larger = more X-rays).

use image::{Rgb, RgbImage};

use crate::{Mask, Radiograph, BONE, IGNORE_LABEL, OPEN_BEAM, SOFT_TISSUE};

/// Overlay colour of a label.
///
/// # Examples
/// ```
/// use xray_data::synth::preview::label_color;
/// use xray_data::{BONE, IGNORE_LABEL, OPEN_BEAM, SOFT_TISSUE};
/// assert_eq!(label_color(BONE), [250, 200, 40]);
/// let known = [OPEN_BEAM, SOFT_TISSUE, BONE, IGNORE_LABEL].map(label_color);
/// for (i, a) in known.iter().enumerate() {
///     assert!(known[i + 1..].iter().all(|b| a != b)); // four distinct colours
/// }
/// assert_eq!(label_color(7), [255, 0, 0]); // anything else is plain red
/// ```
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
///
/// # Examples
/// ```
/// use xray_data::synth::preview::display;
/// use xray_data::{Mask, Radiograph};
/// // Four columns from no X-rays (bone-like) to many (open beam).
/// let columns = [0.0, 10.0, 100.0, 1000.0];
/// let image = Radiograph::from_fn(4, 4, |x, _| image::Luma([columns[x as usize]]));
/// let grey = display(&image, &Mask::new(4, 4));
/// assert_eq!(grey.len(), 16);
/// assert_eq!((grey[0], grey[3]), (255, 0)); // inverted: the fewest X-rays white
/// assert!(grey[..4].windows(2).all(|w| w[0] > w[1]));
/// ```
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
///
/// # Examples
/// ```
/// use xray_data::synth::preview::{display, label_color, preview};
/// use xray_data::{Mask, Radiograph, BONE};
/// let image = Radiograph::from_fn(5, 3, |x, y| image::Luma([(x * 100 + y) as f32]));
/// let mask = Mask::from_pixel(5, 3, image::Luma([BONE]));
/// let rgb = preview(&image, &mask);
/// assert_eq!(rgb.dimensions(), (2 * 5 + 4, 3)); // two panels and a 4-pixel gap
/// let g = display(&image, &mask)[0];
/// assert_eq!(rgb.get_pixel(0, 0).0, [g, g, g]); // left: the grey display
/// assert_eq!(rgb.get_pixel(5, 0).0, [70, 70, 70]); // the gap
/// // Right: half grey, half the label's colour.
/// let c = label_color(BONE);
/// let mix = |k: usize| ((g as f32 + c[k] as f32) / 2.0).round() as u8;
/// assert_eq!(rgb.get_pixel(9, 0).0, [mix(0), mix(1), mix(2)]);
/// ```
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

/// Tile previews into a grid with `cols` columns and a grey gap. Each tile sits at the top
/// left of a cell the size of the largest tile, so tiles of different sizes are never cut.
///
/// # Examples
/// ```
/// use image::{Rgb, RgbImage};
/// use xray_data::synth::preview_grid;
/// let tiles: Vec<RgbImage> = (0..3).map(|k| RgbImage::from_pixel(4, 2, Rgb([k, k, k]))).collect();
/// // Two columns: two rows, 8-pixel gaps between tiles.
/// let grid = preview_grid(&tiles, 2);
/// assert_eq!(grid.dimensions(), (4 + 8 + 4, 2 + 8 + 2));
/// assert_eq!(grid.get_pixel(12, 0).0, [1, 1, 1]); // tile 1, top right
/// assert_eq!(grid.get_pixel(0, 10).0, [2, 2, 2]); // tile 2, second row
/// assert_eq!(grid.get_pixel(12, 10).0, [70, 70, 70]); // no tile there
/// assert_eq!(preview_grid(&tiles, 5).dimensions(), (3 * 4 + 2 * 8, 2)); // one row
/// assert_eq!(preview_grid(&[], 2).dimensions(), (1, 1));
/// // A larger tile widens every cell instead of being cut.
/// let mixed = [RgbImage::new(4, 2), RgbImage::from_pixel(6, 3, Rgb([9, 9, 9]))];
/// let grid = preview_grid(&mixed, 2);
/// assert_eq!(grid.dimensions(), (6 + 8 + 6, 3));
/// assert_eq!(grid.get_pixel(6 + 8 + 5, 2).0, [9, 9, 9]); // the large tile's last pixel
/// assert_eq!(grid.get_pixel(5, 2).0, [70, 70, 70]); // beside the small one: grey
/// ```
pub fn preview_grid(tiles: &[RgbImage], cols: usize) -> RgbImage {
    let cols = cols.max(1);
    if tiles.is_empty() {
        return RgbImage::new(1, 1);
    }
    let tw = tiles.iter().map(|t| t.width()).max().unwrap_or(1);
    let th = tiles.iter().map(|t| t.height()).max().unwrap_or(1);
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
            out.put_pixel(ox + x, oy + y, *p);
        }
    }
    out
}
