//! Collimation: a rotated rectangular field that may cut any subset of the image sides, with
//! a soft penumbra and leakage outside.
//!
//! Coordinates here are continuous image coordinates: the image covers `[0, w] × [0, h]`
//! and pixel `(x, y)` is the unit square whose centre is `(x + 0.5, y + 0.5)`. A pixel is
//! inside the field when its centre is.

use rand::{Rng, RngExt};
use serde::{Deserialize, Serialize};

use crate::error::{check_finite, readable_values};
use crate::{DataError, Result};

/// One side of the collimator rectangle, in the collimator's own (rotated) frame: `Left`
/// and `Right` bound its first axis, `Top` and `Bottom` its second. With zero rotation
/// they are the image's left, right, top and bottom.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Side {
    /// Lower bound of the first axis.
    Left,
    /// Upper bound of the first axis.
    Right,
    /// Lower bound of the second axis.
    Top,
    /// Upper bound of the second axis.
    Bottom,
}

/// The collimated (exposed) field: a rotated rectangle clipped to the image.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FieldPolygon {
    /// Vertices of the field clipped to the image, in boundary order, image coordinates
    /// (see the module docs). For an uncollimated image: the image corners.
    pub vertices: Vec<[f32; 2]>,
    /// Which blades cut into the image, indexed as [`Side`] (`Left, Right, Top, Bottom`).
    pub cut: [bool; 4],
    /// Rotation of the rectangle, degrees (counter-clockwise as displayed).
    pub angle_deg: f32,
    /// Rectangle centre.
    pub center: [f32; 2],
    /// Rectangle bounds along its first axis relative to the centre `[lo, hi]`.
    pub u_bounds: [f32; 2],
    /// Rectangle bounds along its second axis relative to the centre `[lo, hi]`.
    pub v_bounds: [f32; 2],
}

impl FieldPolygon {
    /// The whole image as the field (no side cut).
    ///
    /// # Shapes
    /// `width`, then `height` ([image order](crate#sizes)).
    ///
    /// # Examples
    /// ```
    /// use xray_data::synth::FieldPolygon;
    /// let field = FieldPolygon::full(4, 3);
    /// assert_eq!(field.vertices, [[0.0, 0.0], [4.0, 0.0], [4.0, 3.0], [0.0, 3.0]]);
    /// assert!(!field.is_collimated());
    /// // Every pixel is inside, at least a pixel from the rectangle's edge.
    /// assert!(field.distance_map(4, 3).iter().all(|&d| d <= -1.0));
    /// ```
    pub fn full(width: u32, height: u32) -> Self {
        let (w, h) = (width as f32, height as f32);
        Self {
            vertices: vec![[0.0, 0.0], [w, 0.0], [w, h], [0.0, h]],
            cut: [false; 4],
            angle_deg: 0.0,
            center: [w / 2.0, h / 2.0],
            u_bounds: [-w / 2.0 - 1.0, w / 2.0 + 1.0],
            v_bounds: [-h / 2.0 - 1.0, h / 2.0 + 1.0],
        }
    }

    /// True when at least one blade shows in the image.
    ///
    /// # Examples
    /// ```
    /// use rand::SeedableRng;
    /// use xray_data::synth::{collimation::sample_field, CollimationConfig, FieldPolygon};
    /// assert!(!FieldPolygon::full(32, 32).is_collimated());
    /// let mut rng = rand::rngs::StdRng::seed_from_u64(2);
    /// let cfg = CollimationConfig::default();
    /// let forced = sample_field(32, 32, &cfg, true, &mut rng)?;
    /// assert!(forced.is_collimated());
    /// let never = CollimationConfig { side_probability: 0.0, ..cfg };
    /// assert!(!sample_field(32, 32, &never, false, &mut rng)?.is_collimated());
    /// # Ok::<(), xray_data::DataError>(())
    /// ```
    pub fn is_collimated(&self) -> bool {
        self.cut.iter().any(|&c| c)
    }

    /// Signed distance (pixels) from point `(x, y)` to the rectangle edge, positive
    /// outside, negative inside (the max of the four half-plane distances).
    ///
    /// # Examples
    /// ```
    /// use xray_data::synth::FieldPolygon;
    /// // An unrotated 4 × 6 pixel field centred at (5, 5): x in [3, 7], y in [2, 8].
    /// let field = FieldPolygon {
    ///     vertices: vec![[3.0, 2.0], [7.0, 2.0], [7.0, 8.0], [3.0, 8.0]],
    ///     cut: [true; 4],
    ///     angle_deg: 0.0,
    ///     center: [5.0, 5.0],
    ///     u_bounds: [-2.0, 2.0],
    ///     v_bounds: [-3.0, 3.0],
    /// };
    /// assert_eq!(field.signed_distance(5.0, 5.0), -2.0); // the centre: 2 px from the sides
    /// assert_eq!(field.signed_distance(7.0, 5.0), 0.0); // on the right edge
    /// assert_eq!(field.signed_distance(9.0, 5.0), 2.0); // 2 px outside
    /// assert_eq!(field.signed_distance(5.0, 0.0), 2.0); // 2 px above the top
    /// ```
    pub fn signed_distance(&self, x: f32, y: f32) -> f32 {
        let (s, c) = self.angle_deg.to_radians().sin_cos();
        let (dx, dy) = (x - self.center[0], y - self.center[1]);
        // Axis u = (c, −s), v = (s, c): counter-clockwise as displayed with y down.
        let u = c * dx - s * dy;
        let v = s * dx + c * dy;
        (self.u_bounds[0] - u)
            .max(u - self.u_bounds[1])
            .max(self.v_bounds[0] - v)
            .max(v - self.v_bounds[1])
    }

    /// Whether the centre of pixel `(x, y)` lies inside the field.
    ///
    /// # Examples
    /// ```
    /// use xray_data::synth::FieldPolygon;
    /// // An unrotated 4 × 6 pixel field centred at (5, 5): x in [3, 7], y in [2, 8].
    /// let field = FieldPolygon {
    ///     vertices: vec![[3.0, 2.0], [7.0, 2.0], [7.0, 8.0], [3.0, 8.0]],
    ///     cut: [true; 4],
    ///     angle_deg: 0.0,
    ///     center: [5.0, 5.0],
    ///     u_bounds: [-2.0, 2.0],
    ///     v_bounds: [-3.0, 3.0],
    /// };
    /// assert!(field.contains_pixel(3, 2)); // centre (3.5, 2.5)
    /// assert!(field.contains_pixel(6, 7)); // centre (6.5, 7.5)
    /// assert!(!field.contains_pixel(7, 5)); // centre (7.5, 5.5), right of x = 7
    /// assert!(!field.contains_pixel(4, 1)); // centre (4.5, 1.5), above y = 2
    /// let inside = (0..10).flat_map(|y| (0..10).map(move |x| (x, y)));
    /// assert_eq!(inside.filter(|&(x, y)| field.contains_pixel(x, y)).count(), 4 * 6);
    /// ```
    pub fn contains_pixel(&self, x: u32, y: u32) -> bool {
        self.signed_distance(x as f32 + 0.5, y as f32 + 0.5) <= 0.0
    }

    /// Per-pixel signed distances for a `width × height` image (row-major), computed with
    /// incremental steps along rows.
    ///
    /// # Shapes
    /// `width`, then `height` ([image order](crate#sizes)): the result is `height` rows of `width`
    /// values.
    ///
    /// # Examples
    /// ```
    /// use rand::SeedableRng;
    /// use xray_data::synth::{collimation::sample_field, CollimationConfig};
    /// let mut rng = rand::rngs::StdRng::seed_from_u64(9);
    /// let field = sample_field(20, 12, &CollimationConfig::default(), true, &mut rng)?;
    /// let map = field.distance_map(20, 12);
    /// assert_eq!(map.len(), 20 * 12);
    /// // Entry (x, y) is the signed distance of pixel (x, y)'s centre.
    /// for (i, &d) in map.iter().enumerate() {
    ///     let (x, y) = ((i % 20) as u32, (i / 20) as u32);
    ///     assert_eq!(d, field.signed_distance(x as f32 + 0.5, y as f32 + 0.5));
    ///     assert_eq!(d <= 0.0, field.contains_pixel(x, y));
    /// }
    /// # Ok::<(), xray_data::DataError>(())
    /// ```
    pub fn distance_map(&self, width: u32, height: u32) -> Vec<f32> {
        let (w, h) = (width as usize, height as usize);
        let (s, c) = self.angle_deg.to_radians().sin_cos();
        let mut out = vec![0.0f32; w * h];
        for y in 0..h {
            let dy = y as f32 + 0.5 - self.center[1];
            let row = &mut out[y * w..(y + 1) * w];
            for (x, o) in row.iter_mut().enumerate() {
                let dx = x as f32 + 0.5 - self.center[0];
                let u = c * dx - s * dy;
                let v = s * dx + c * dy;
                *o = (self.u_bounds[0] - u)
                    .max(u - self.u_bounds[1])
                    .max(self.v_bounds[0] - v)
                    .max(v - self.v_bounds[1]);
            }
        }
        out
    }
}

/// How collimation is drawn.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CollimationConfig {
    /// Probability that each blade independently cuts into the image.
    pub side_probability: f32,
    /// Range of the depth a cutting blade reaches, as a fraction of the image's extent
    /// along that axis.
    pub inset: [f32; 2],
    /// Range of the rectangle's rotation, degrees.
    pub rotation_deg: [f32; 2],
    /// Range of the penumbra width (pixels at 256 px, 10–90 % ramp; scaled with the image
    /// size). Range within `(0, 256]`: a penumbra as wide as the image, far above the few
    /// pixels a real one spans.
    pub penumbra_px: [f32; 2],
    /// Range of the leakage (fraction of the primary that passes the blades).
    pub leakage: [f32; 2],
}

impl Default for CollimationConfig {
    fn default() -> Self {
        Self {
            side_probability: 0.6,
            inset: [0.03, 0.25],
            rotation_deg: [-12.0, 12.0],
            penumbra_px: [0.8, 4.0],
            leakage: [0.005, 0.04],
        }
    }
}

impl CollimationConfig {
    /// Check the ranges: every setting finite, then the rules below.
    ///
    /// # Errors
    /// [`DataError::InvalidParameter`] naming the first bad setting (`collimation: ...`).
    ///
    /// # Examples
    /// ```
    /// use xray_data::synth::CollimationConfig;
    /// assert!(CollimationConfig::default().validate().is_ok());
    /// let reversed = CollimationConfig { inset: [0.2, 0.1], ..Default::default() };
    /// let err = reversed.validate().unwrap_err().to_string();
    /// assert!(err.contains("collimation: inset must be an ordered range"), "{err}");
    /// let nan = CollimationConfig { leakage: [0.0, f32::NAN], ..Default::default() };
    /// assert!(nan.validate().unwrap_err().to_string().contains("collimation: leakage"));
    /// ```
    pub fn validate(&self) -> Result<()> {
        check_finite(
            "collimation: ",
            &[
                ("side_probability", &[self.side_probability]),
                ("inset", &self.inset),
                ("rotation_deg", &self.rotation_deg),
                ("penumbra_px", &self.penumbra_px),
                ("leakage", &self.leakage),
            ],
        )?;
        let bad = |what: &str, got: &[f32]| {
            Err(DataError::InvalidParameter(format!(
                "collimation: {what}, got {}",
                readable_values(got)
            )))
        };
        if !(0.0..=1.0).contains(&self.side_probability) {
            return bad(
                "side_probability must be in [0, 1]",
                &[self.side_probability],
            );
        }
        if !(self.inset[0] >= 0.0 && self.inset[0] <= self.inset[1] && self.inset[1] < 0.45) {
            return bad(
                "inset must be an ordered range within [0, 0.45)",
                &self.inset,
            );
        }
        if !(self.rotation_deg[0] <= self.rotation_deg[1]
            && self.rotation_deg[0] >= -90.0
            && self.rotation_deg[1] <= 90.0)
        {
            return bad(
                "rotation_deg must be an ordered range within [-90, 90]",
                &self.rotation_deg,
            );
        }
        if !(self.penumbra_px[0] > 0.0
            && self.penumbra_px[0] <= self.penumbra_px[1]
            && self.penumbra_px[1] <= 256.0)
        {
            return bad(
                "penumbra_px must be an ordered positive range within (0, 256]",
                &self.penumbra_px,
            );
        }
        if !(self.leakage[0] >= 0.0 && self.leakage[0] <= self.leakage[1] && self.leakage[1] < 1.0)
        {
            return bad(
                "leakage must be an ordered range within [0, 1)",
                &self.leakage,
            );
        }
        Ok(())
    }
}

fn draw(rng: &mut (impl Rng + ?Sized), r: [f32; 2]) -> f32 {
    if r[1] > r[0] {
        rng.random_range(r[0]..r[1])
    } else {
        r[0]
    }
}

/// Draw a field for a `width × height` image. Each blade cuts with
/// `cfg.side_probability`; with `force_cut` at least one blade cuts.
///
/// # Shapes
/// `width`, then `height` ([image order](crate#sizes)) of the image the field is drawn in.
///
/// # Errors
/// [`DataError::InvalidParameter`] when `cfg` fails [`CollimationConfig::validate`]
/// (checked before anything is drawn, so a valid config draws the same field as before).
///
/// # Examples
/// ```
/// use rand::SeedableRng;
/// use xray_data::synth::{collimation::sample_field, CollimationConfig};
/// let cfg = CollimationConfig::default();
/// let draw = |seed| {
///     let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
///     sample_field(64, 48, &cfg, true, &mut rng)
/// };
/// let field = draw(4)?;
/// assert_eq!(field, draw(4)?); // a seed fixes the field
/// assert!(field.is_collimated()); // `force_cut`
/// // The clipped polygon lies within the image.
/// assert!(field.vertices.len() >= 3);
/// for [x, y] in &field.vertices {
///     assert!((-1e-3..=64.001).contains(x) && (-1e-3..=48.001).contains(y));
/// }
/// // Part of the image is outside the field, and the centre is inside.
/// assert!(!(0..64).all(|x| (0..48).all(|y| field.contains_pixel(x, y))));
/// assert!(field.contains_pixel(32, 24));
/// let bad = CollimationConfig { side_probability: 1.5, ..cfg };
/// assert!(sample_field(64, 48, &bad, true, &mut rand::rngs::StdRng::seed_from_u64(4)).is_err());
/// # Ok::<(), xray_data::DataError>(())
/// ```
pub fn sample_field(
    width: u32,
    height: u32,
    cfg: &CollimationConfig,
    force_cut: bool,
    rng: &mut (impl Rng + ?Sized),
) -> Result<FieldPolygon> {
    // A probability outside [0, 1] panics in `random_bool`, and a non-finite rotation
    // range in `random_range`.
    cfg.validate()?;
    let (w, h) = (width as f32, height as f32);
    let mut cut = [false; 4];
    for c in cut.iter_mut() {
        *c = rng.random_bool(cfg.side_probability as f64);
    }
    if force_cut && !cut.iter().any(|&c| c) {
        cut[rng.random_range(0..4)] = true;
    }
    let angle_deg = if cut.iter().any(|&c| c) {
        draw(rng, cfg.rotation_deg)
    } else {
        0.0
    };
    let center = [
        w / 2.0 + draw(rng, [-0.04, 0.04]) * w,
        h / 2.0 + draw(rng, [-0.04, 0.04]) * h,
    ];
    let (s, c) = angle_deg.to_radians().sin_cos();
    // Extent of the image along the rotated axes, relative to the centre.
    let (mut umin, mut umax, mut vmin, mut vmax) = (f32::MAX, f32::MIN, f32::MAX, f32::MIN);
    for (x, y) in [(0.0, 0.0), (w, 0.0), (w, h), (0.0, h)] {
        let (dx, dy) = (x - center[0], y - center[1]);
        let u = c * dx - s * dy;
        let v = s * dx + c * dy;
        umin = umin.min(u);
        umax = umax.max(u);
        vmin = vmin.min(v);
        vmax = vmax.max(v);
    }
    let (ul, vl) = (umax - umin, vmax - vmin);
    // A cutting blade lies strictly inside the image's extent along its axis, so its edge
    // line crosses the image; a blade that does not cut lies beyond the extent.
    let u0 = if cut[0] {
        umin + draw(rng, cfg.inset) * ul + 1.0
    } else {
        umin - 2.0
    };
    let u1 = if cut[1] {
        umax - draw(rng, cfg.inset) * ul - 1.0
    } else {
        umax + 2.0
    };
    let v0 = if cut[2] {
        vmin + draw(rng, cfg.inset) * vl + 1.0
    } else {
        vmin - 2.0
    };
    let v1 = if cut[3] {
        vmax - draw(rng, cfg.inset) * vl - 1.0
    } else {
        vmax + 2.0
    };
    let mut field = FieldPolygon {
        vertices: Vec::new(),
        cut,
        angle_deg,
        center,
        u_bounds: [u0, u1],
        v_bounds: [v0, v1],
    };
    // Rectangle corners back in image coordinates (inverse rotation), clipped to the image.
    let corners: Vec<[f32; 2]> = [(u0, v0), (u1, v0), (u1, v1), (u0, v1)]
        .iter()
        .map(|&(u, v)| [c * u + s * v + center[0], -s * u + c * v + center[1]])
        .collect();
    field.vertices = clip_to_box(&corners, w, h);
    Ok(field)
}

/// Sutherland–Hodgman clipping of a convex polygon to `[0, w] × [0, h]`.
fn clip_to_box(poly: &[[f32; 2]], w: f32, h: f32) -> Vec<[f32; 2]> {
    let mut out = poly.to_vec();
    // Each edge: inside test value f(p) >= 0.
    let planes: [(f32, f32, f32); 4] = [
        (1.0, 0.0, 0.0),
        (-1.0, 0.0, w),
        (0.0, 1.0, 0.0),
        (0.0, -1.0, h),
    ];
    for (a, b, c) in planes {
        let input = std::mem::take(&mut out);
        let n = input.len();
        for i in 0..n {
            let p = input[i];
            let q = input[(i + 1) % n];
            let fp = a * p[0] + b * p[1] + c;
            let fq = a * q[0] + b * q[1] + c;
            if fp >= 0.0 {
                out.push(p);
            }
            if (fp >= 0.0) != (fq >= 0.0) {
                let t = fp / (fp - fq);
                out.push([p[0] + t * (q[0] - p[0]), p[1] + t * (q[1] - p[1])]);
            }
        }
        if out.is_empty() {
            break;
        }
    }
    out
}

/// Blade transmission from a signed distance map: 1 deep inside, `leakage` far outside,
/// a smooth (logistic) ramp whose 10–90 % width is `penumbra` pixels in between.
pub(crate) fn transmission(dist: &[f32], penumbra: f32, leakage: f32) -> Vec<f32> {
    // Logistic 10–90 % width is 2·ln 9 / k, so k = 4.394 / penumbra.
    let k = 4.394 / penumbra.max(1e-3);
    let reach = 12.0 / k;
    dist.iter()
        .map(|&d| {
            let e = if d <= -reach {
                1.0
            } else if d >= reach {
                0.0
            } else {
                1.0 / (1.0 + (k * d).exp())
            };
            leakage + (1.0 - leakage) * e
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn cut_sides_cross_the_image_and_uncut_do_not() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        let cfg = CollimationConfig::default();
        for _ in 0..200 {
            let f = sample_field(64, 48, &cfg, false, &mut rng).unwrap();
            let d = f.distance_map(64, 48);
            let outside = d.iter().filter(|&&v| v > 0.0).count();
            assert_eq!(outside > 0, f.is_collimated(), "{f:?}");
            assert!(f.vertices.len() >= 3);
            for v in &f.vertices {
                assert!(v[0] >= -1e-3 && v[0] <= 64.001 && v[1] >= -1e-3 && v[1] <= 48.001);
            }
        }
    }

    /// A config that fails `validate` is an error, not a panic inside the random draws
    /// (`random_bool(1.5)`, `random_range` over `[0, inf]`).
    #[test]
    fn an_invalid_config_is_an_error_not_a_panic() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(5);
        let bad = [
            CollimationConfig {
                side_probability: 1.5,
                ..Default::default()
            },
            CollimationConfig {
                side_probability: f32::NAN,
                ..Default::default()
            },
            CollimationConfig {
                side_probability: 1.0,
                rotation_deg: [0.0, f32::INFINITY],
                ..Default::default()
            },
            CollimationConfig {
                inset: [0.2, 0.1],
                ..Default::default()
            },
        ];
        for cfg in bad {
            for force_cut in [false, true] {
                let err = sample_field(64, 48, &cfg, force_cut, &mut rng).unwrap_err();
                assert!(err.to_string().contains("collimation: "), "{cfg:?}: {err}");
            }
        }
    }

    #[test]
    fn polygon_area_matches_inside_pixel_count() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(11);
        let cfg = CollimationConfig {
            side_probability: 1.0,
            ..Default::default()
        };
        for _ in 0..20 {
            let f = sample_field(128, 128, &cfg, true, &mut rng).unwrap();
            let inside = f
                .distance_map(128, 128)
                .iter()
                .filter(|&&v| v <= 0.0)
                .count() as f32;
            let p = &f.vertices;
            let area = 0.5
                * (0..p.len())
                    .map(|i| {
                        let (a, b) = (p[i], p[(i + 1) % p.len()]);
                        a[0] * b[1] - b[0] * a[1]
                    })
                    .sum::<f32>()
                    .abs();
            // Pixel-centre sampling of a polygon: the error is about one pixel per unit of
            // perimeter, well under 3 % here.
            assert!(
                (inside - area).abs() / area < 0.03,
                "inside {inside} area {area}"
            );
        }
    }
}
