//! The exposed field's size in millimetres: what a radiographer checks the collimation
//! against (a 35 × 43 cm cassette, a field no larger than the body part).

use serde::Serialize;
use xray_data::io::PixelSpacing;
use xray_postproc::{Collimator, FieldEdge, Line};

/// The detected field measured in millimetres with a [`PixelSpacing`].
///
/// Measured on [`field_outline`], whose image-border sides lie on the pixels' outer edges:
/// a field that is the whole of a 2000 × 2000 image at 0.2 mm is 400 × 400 mm. The sizes
/// are in the plane the spacing describes ([`PixelSpacing::source`]): with
/// `ImagerPixelSpacing` at the detector, which is what a collimation check compares with the
/// detector, a body part's own size being smaller by the magnification; with a
/// `PixelSpacing` the file calibrated to the patient
/// ([`DicomImage::spacing_calibration`]) in that plane, the field then measuring smaller
/// than at the detector. To measure such a file at the detector, state its
/// [`DicomImage::imager_pixel_spacing`] ([`SegmentOptions::pixel_spacing`]).
///
/// [`DicomImage::spacing_calibration`]: xray_data::io::DicomImage::spacing_calibration
/// [`DicomImage::imager_pixel_spacing`]: xray_data::io::DicomImage::imager_pixel_spacing
/// [`SegmentOptions::pixel_spacing`]: super::SegmentOptions::pixel_spacing
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FieldSize {
    /// The field's area, mm².
    pub area_mm2: f64,
    /// The field's bounding box: its width along the image's columns (x) and its height
    /// along the rows (y), mm.
    pub extent_mm: [f64; 2],
    /// The length of each side of [`field_outline`], mm, in the outline's vertex order
    /// (side `i` runs from vertex `i` to vertex `i + 1`). For a rectangular field the
    /// sides alternate between its width and height.
    pub sides_mm: Vec<f64>,
}

/// The field's outline in pixel coordinates: the image rectangle `[−0.5, w − 0.5] ×
/// [−0.5, h − 0.5]` (the pixels' outer edges) cut by every edge, vertices in the order
/// of [`Collimator::polygon`] (which runs through the border pixels' centres instead).
/// Empty when nothing of the image is in the field.
///
/// # Examples
/// ```
/// use xray_postproc::{Collimator, FieldEdge, Line, Side};
/// use xray_seg::segment::field_outline;
/// // A 10 × 4 image whose field starts right of x = 2.5: pixels 3..=9 are in it.
/// let edge = FieldEdge {
///     side: Side::Left,
///     line: Line { nx: 1.0, ny: 0.0, c: 2.5 },
///     contrast: 1.0,
///     support: 1.0,
/// };
/// let field = Collimator { width: 10, height: 4, edges: vec![edge] };
/// let outline = field_outline(&field);
/// let expected = [(2.5, -0.5), (9.5, -0.5), (9.5, 3.5), (2.5, 3.5)];
/// assert_eq!(outline.len(), 4);
/// for (&(x, y), &(ex, ey)) in outline.iter().zip(&expected) {
///     assert!((x - ex).abs() < 1e-5 && (y - ey).abs() < 1e-5, "{outline:?}");
/// }
/// ```
pub fn field_outline(field: &Collimator) -> Vec<(f64, f64)> {
    // `polygon` clips `[0, w − 1] × [0, h − 1]`. The same clip of a field one pixel larger,
    // its edges moved half a pixel right and down, is the outline moved the same way.
    let shifted = Collimator {
        width: field.width + 1,
        height: field.height + 1,
        edges: field
            .edges
            .iter()
            .map(|e| FieldEdge {
                line: Line {
                    c: e.line.c + 0.5 * (e.line.nx + e.line.ny),
                    ..e.line
                },
                ..*e
            })
            .collect(),
    };
    shifted
        .polygon()
        .into_iter()
        .map(|(x, y)| (f64::from(x) - 0.5, f64::from(y) - 0.5))
        .collect()
}

/// Measures the detected field with `spacing` ([`FieldSize`]); all zero (and no sides)
/// when nothing of the image is in the field.
///
/// # Examples
/// ```
/// use xray_data::io::{PixelSpacing, SpacingSource};
/// use xray_postproc::Collimator;
/// use xray_seg::segment::measure_field;
/// // No edge found: the field is the whole 2000 × 1500 image, at 0.2 mm per pixel.
/// let field = Collimator { width: 2000, height: 1500, edges: Vec::new() };
/// let spacing = PixelSpacing::new(0.2, 0.2, SpacingSource::ImagerPixelSpacing)?;
/// let size = measure_field(&field, &spacing);
/// assert!((size.extent_mm[0] - 400.0).abs() < 1e-3 && (size.extent_mm[1] - 300.0).abs() < 1e-3);
/// assert!((size.area_mm2 - 120_000.0).abs() < 0.1);
/// assert_eq!(size.sides_mm.len(), 4);
/// # Ok::<(), xray_data::DataError>(())
/// ```
pub fn measure_field(field: &Collimator, spacing: &PixelSpacing) -> FieldSize {
    let outline = field_outline(field);
    let n = outline.len();
    let next = |i: usize| outline[(i + 1) % n];
    // Shoelace formula in pixels²; each pixel covers row × column spacing.
    let twice_area: f64 = (0..n)
        .map(|i| {
            let ((x0, y0), (x1, y1)) = (outline[i], next(i));
            x0 * y1 - x1 * y0
        })
        .sum();
    let span = |coordinate: fn(&(f64, f64)) -> f64| {
        let values = outline.iter().map(coordinate);
        let max = values.clone().fold(f64::NEG_INFINITY, f64::max);
        let min = values.fold(f64::INFINITY, f64::min);
        if n == 0 {
            0.0
        } else {
            max - min
        }
    };
    FieldSize {
        area_mm2: spacing.area_mm2(twice_area.abs() / 2.0),
        extent_mm: [
            span(|p| p.0) * spacing.column_mm(),
            span(|p| p.1) * spacing.row_mm(),
        ],
        sides_mm: (0..n)
            .map(|i| {
                let ((x0, y0), (x1, y1)) = (outline[i], next(i));
                spacing.length_mm(x1 - x0, y1 - y0)
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use xray_data::io::SpacingSource;
    use xray_postproc::Side;

    fn edge(side: Side, nx: f32, ny: f32, c: f32) -> FieldEdge {
        FieldEdge {
            side,
            line: Line { nx, ny, c },
            contrast: 1.0,
            support: 1.0,
        }
    }

    /// A field cut on all four sides, at a spacing that differs between rows and columns:
    /// the sizes are the pixels' count in each direction times that direction's spacing,
    /// and the area agrees with the field mask's pixel count.
    #[test]
    fn an_axis_aligned_field_measures_its_pixels() {
        // Columns 10..=59 (50 px) and rows 5..=34 (30 px) of a 80 × 40 image.
        let field = Collimator {
            width: 80,
            height: 40,
            edges: vec![
                edge(Side::Left, 1.0, 0.0, 9.5),
                edge(Side::Right, -1.0, 0.0, -59.5),
                edge(Side::Top, 0.0, 1.0, 4.5),
                edge(Side::Bottom, 0.0, -1.0, -34.5),
            ],
        };
        let spacing = PixelSpacing::new(0.3, 0.1, SpacingSource::Stated).unwrap();
        let size = measure_field(&field, &spacing);
        let pixels = field
            .field_mask()
            .pixels()
            .filter(|p| p.0[0] == 255)
            .count();
        assert_eq!(pixels, 50 * 30);
        assert!((size.extent_mm[0] - 5.0).abs() < 1e-4, "{size:?}");
        assert!((size.extent_mm[1] - 9.0).abs() < 1e-4, "{size:?}");
        assert!((size.area_mm2 - spacing.area_mm2(pixels as f64)).abs() < 1e-3);
        let mut sides = size.sides_mm.clone();
        sides.sort_by(f64::total_cmp);
        for (got, want) in sides.iter().zip([5.0, 5.0, 9.0, 9.0]) {
            assert!((got - want).abs() < 1e-4, "{size:?}");
        }
    }

    /// A field rotated by 30° inside a large image: its sides are the rotated rectangle's
    /// (closed form: a square of side 2·r in pixels), whatever its angle.
    #[test]
    fn a_rotated_field_measures_its_sides() {
        let (cx, cy, r) = (500.0f32, 400.0f32, 150.0f32);
        let (s, c) = 30f32.to_radians().sin_cos();
        // Normals into the field: ±(c, s) and ±(−s, c), each line r from the centre.
        let line = |nx: f32, ny: f32| nx * cx + ny * cy - r;
        let field = Collimator {
            width: 1000,
            height: 800,
            edges: vec![
                edge(Side::Left, c, s, line(c, s)),
                edge(Side::Right, -c, -s, line(-c, -s)),
                edge(Side::Top, -s, c, line(-s, c)),
                edge(Side::Bottom, s, -c, line(s, -c)),
            ],
        };
        let spacing = PixelSpacing::new(0.1, 0.1, SpacingSource::Stated).unwrap();
        let size = measure_field(&field, &spacing);
        assert_eq!(size.sides_mm.len(), 4, "{size:?}");
        for side in &size.sides_mm {
            assert!((side - 30.0).abs() < 1e-2, "{size:?}");
        }
        assert!((size.area_mm2 - 900.0).abs() < 0.5, "{size:?}");
        // The bounding box of a square of side a turned by 30°: a (cos 30° + sin 30°).
        let extent = 30.0 * f64::from(c + s);
        assert!((size.extent_mm[0] - extent).abs() < 1e-2, "{size:?}");
        assert!((size.extent_mm[1] - extent).abs() < 1e-2, "{size:?}");
    }

    #[test]
    fn an_empty_field_measures_nothing() {
        let field = Collimator {
            width: 8,
            height: 4,
            edges: vec![edge(Side::Left, 1.0, 0.0, 20.0)],
        };
        let spacing = PixelSpacing::new(0.2, 0.2, SpacingSource::Stated).unwrap();
        let size = measure_field(&field, &spacing);
        assert_eq!(size.area_mm2, 0.0);
        assert_eq!(size.extent_mm, [0.0, 0.0]);
        assert!(size.sides_mm.is_empty());
    }
}
