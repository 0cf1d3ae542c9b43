//! Lead side markers ("L" / "R") placed inside the field.

use rand::{Rng, RngExt};
use serde::{Deserialize, Serialize};

use super::collimation::FieldPolygon;

/// Which letter a marker shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum MarkerLetter {
    /// Left.
    L,
    /// Right.
    R,
}

/// A placed lead marker: letter, top-left corner and glyph cell size in pixels.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Marker {
    /// The letter.
    pub letter: MarkerLetter,
    /// Top-left corner of the glyph box, pixels.
    pub origin: [f32; 2],
    /// Size of one glyph cell (the glyph is 5 × 7 cells), pixels.
    pub cell: f32,
}

// 5×7 bitmap glyphs, one row per byte, bit 4 = leftmost column.
const GLYPH_L: [u8; 7] = [
    0b10000, 0b10000, 0b10000, 0b10000, 0b10000, 0b10000, 0b11111,
];
const GLYPH_R: [u8; 7] = [
    0b11110, 0b10001, 0b10001, 0b11110, 0b10100, 0b10010, 0b10001,
];

impl Marker {
    fn glyph(&self) -> &'static [u8; 7] {
        match self.letter {
            MarkerLetter::L => &GLYPH_L,
            MarkerLetter::R => &GLYPH_R,
        }
    }

    /// Lead coverage of pixel `(x, y)` in `[0, 1]` (fraction of the pixel covered, by 2×2
    /// supersampling).
    ///
    /// # Examples
    /// ```
    /// use xray_data::synth::{Marker, MarkerLetter};
    /// let l = Marker { letter: MarkerLetter::L, origin: [0.0, 0.0], cell: 1.0 };
    /// assert_eq!(l.coverage(0, 0), 1.0); // the stem of the L
    /// assert_eq!(l.coverage(1, 0), 0.0);
    /// assert_eq!(l.coverage(4, 6), 1.0); // its foot
    /// assert_eq!(l.coverage(5, 6), 0.0); // beyond the 5 × 7 glyph
    /// // One pixel per glyph cell: the L has 11 lead cells.
    /// let cells = (0..7).flat_map(|y| (0..5).map(move |x| (x, y)));
    /// let total: f32 = cells.map(|(x, y)| l.coverage(x, y)).sum();
    /// assert_eq!(total, 11.0);
    /// // Shifted half a pixel, the stem covers half of pixel (0, 0).
    /// let shifted = Marker { origin: [0.5, 0.0], ..l };
    /// assert_eq!(shifted.coverage(0, 0), 0.5);
    /// ```
    pub fn coverage(&self, x: usize, y: usize) -> f32 {
        let mut hit = 0u32;
        for (ox, oy) in [(0.25f32, 0.25f32), (0.75, 0.25), (0.25, 0.75), (0.75, 0.75)] {
            let gx = (x as f32 + ox - self.origin[0]) / self.cell;
            let gy = (y as f32 + oy - self.origin[1]) / self.cell;
            if gx < 0.0 || gy < 0.0 || gx >= 5.0 || gy >= 7.0 {
                continue;
            }
            let row = self.glyph()[gy as usize];
            if row & (0b10000 >> (gx as usize)) != 0 {
                hit += 1;
            }
        }
        hit as f32 / 4.0
    }

    /// Pixel bounding box `(x0, x1, y0, y1)` (exclusive ends) clipped to the image.
    ///
    /// # Shapes
    /// `width`, then `height` ([image order](crate#sizes)) of the image to clip to.
    ///
    /// # Examples
    /// ```
    /// use xray_data::synth::{Marker, MarkerLetter};
    /// // 5 × 7 cells of 2 pixels from (2.5, 3): x in [2.5, 12.5], y in [3, 17].
    /// let r = Marker { letter: MarkerLetter::R, origin: [2.5, 3.0], cell: 2.0 };
    /// assert_eq!(r.bbox(100, 100), (2, 13, 3, 17));
    /// assert_eq!(r.bbox(10, 10), (2, 10, 3, 10)); // clipped to the image
    /// // No lead outside the box.
    /// assert_eq!(r.coverage(1, 5) + r.coverage(13, 5) + r.coverage(5, 17), 0.0);
    /// let off = Marker { origin: [-3.0, -3.0], cell: 1.0, ..r };
    /// assert_eq!(off.bbox(10, 10), (0, 2, 0, 4));
    /// ```
    pub fn bbox(&self, width: usize, height: usize) -> (usize, usize, usize, usize) {
        let x0 = self.origin[0].floor().max(0.0) as usize;
        let y0 = self.origin[1].floor().max(0.0) as usize;
        let x1 = ((self.origin[0] + 5.0 * self.cell).ceil().max(0.0) as usize).min(width);
        let y1 = ((self.origin[1] + 7.0 * self.cell).ceil().max(0.0) as usize).min(height);
        (x0.min(x1), x1, y0.min(y1), y1)
    }
}

/// Place a marker in a corner of the field, fully inside it. `None` if the field is too
/// small for one.
pub(crate) fn place(
    field: &FieldPolygon,
    width: usize,
    height: usize,
    rng: &mut (impl Rng + ?Sized),
) -> Option<Marker> {
    let size = width.min(height) as f32;
    let cell = size * rng.random_range(0.008..0.014f32);
    let (gw, gh) = (5.0 * cell, 7.0 * cell);
    let letter = if rng.random_bool(0.5) {
        MarkerLetter::L
    } else {
        MarkerLetter::R
    };
    for _ in 0..12 {
        let cx = if rng.random_bool(0.5) {
            rng.random_range(0.04..0.2f32)
        } else {
            rng.random_range(0.8..0.96f32)
        };
        let cy = if rng.random_bool(0.5) {
            rng.random_range(0.04..0.2f32)
        } else {
            rng.random_range(0.8..0.96f32)
        };
        let origin = [cx * width as f32 - gw / 2.0, cy * height as f32 - gh / 2.0];
        let margin = cell * 1.5;
        let corners = [
            (origin[0], origin[1]),
            (origin[0] + gw, origin[1]),
            (origin[0], origin[1] + gh),
            (origin[0] + gw, origin[1] + gh),
        ];
        let inside = corners.iter().all(|&(x, y)| {
            x >= 0.0
                && y >= 0.0
                && x < width as f32
                && y < height as f32
                && field.signed_distance(x, y) < -margin
        });
        if inside {
            return Some(Marker {
                letter,
                origin,
                cell,
            });
        }
    }
    None
}
