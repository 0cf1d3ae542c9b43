//! Collimator detection from the raw radiograph alone.
//!
//! The exposed field is a convex polygon bounded by up to four straight collimator edges,
//! one per image side, each possibly rotated and each possibly absent. Outside the field few
//! X-rays arrive, so (in the project's convention, larger = more X-rays) the collimated band
//! between an edge and the image border is dark and nearly uniform, and the image brightens
//! across the edge going inwards.
//!
//! Method (see `docs/postprocessing.md`):
//! 1. a working copy, box-averaged so that its longest side is about
//!    [`CollimatorConfig::working_size`], log-compressed (so linear and log-processed inputs
//!    behave alike) and normalised to its 0.5–99.5 % range, then Gaussian-smoothed;
//! 2. per side, a Hough vote of strong gradients that point inwards (brighter inside), over
//!    angles within ±[`CollimatorConfig::max_angle_deg`] of the side's direction;
//! 3. a strict acceptance test of the best peaks: contrast across the line along most of its
//!    visible length, the step on one straight line (anatomy such as a diaphragm curves),
//!    and the region between the line and the border dark: nothing in it as bright as the
//!    field just inside, and not most of the image. A side with no accepted peak has no
//!    edge: edges are never invented to complete a rectangle;
//! 4. refinement on the full-resolution image: the half-level crossing of profiles across
//!    the edge (averaged over short chunks along it, undoing any log first: whether the
//!    input is log-processed is judged from how its noise varies with the level), then a
//!    robust total-least-squares fit.

use image::GrayImage;
use serde::{Deserialize, Serialize};

use crate::error::{PostprocError, Result};
use crate::probs::{check_labels, Plane};
use crate::threshold::IGNORE;

/// Which side of the image an edge bounds the field on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Side {
    /// The edge near x = 0; the field lies to its right.
    Left,
    /// The edge near y = 0; the field lies below it.
    Top,
    /// The edge near x = width − 1; the field lies to its left.
    Right,
    /// The edge near y = height − 1; the field lies above it.
    Bottom,
}

impl Side {
    /// All four sides, in the order edges are reported.
    pub const ALL: [Side; 4] = [Side::Left, Side::Top, Side::Right, Side::Bottom];

    /// The side's name as in JSON (`"left"`, ...), for error messages.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Side::Left => "left",
            Side::Top => "top",
            Side::Right => "right",
            Side::Bottom => "bottom",
        }
    }

    /// The side's position in [`Side::ALL`] (the order edges are reported in).
    fn index(self) -> usize {
        self as usize
    }

    /// Angle (degrees) of the inward normal of an unrotated edge on this side.
    fn nominal_deg(self) -> f32 {
        match self {
            Side::Left => 0.0,
            Side::Top => 90.0,
            Side::Right => 180.0,
            Side::Bottom => 270.0,
        }
    }
}

/// A straight line in input pixel coordinates (pixel centres at integer `(x, y)`, x to the
/// right, y down), stored as an inward unit normal `(nx, ny)` and offset `c`: the signed
/// distance of a point from the line is `nx·x + ny·y − c`, positive on the field side.
///
/// The fields are public (and a line can be read from JSON), so nothing stops a caller
/// building a line that breaks these rules; [`Line::validate`] checks them, and every
/// function that masks or draws with a caller's field runs it first.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Line {
    /// x component of the unit normal pointing into the field.
    pub nx: f32,
    /// y component of the unit normal pointing into the field.
    pub ny: f32,
    /// Offset: the line is `nx·x + ny·y = c`.
    pub c: f32,
}

impl Line {
    /// The line through `(x0, y0)` and `(x1, y1)`, with the field on the side containing
    /// `inside`. Returns `None` for coincident points.
    ///
    /// # Examples
    /// ```
    /// use xray_postproc::Line;
    /// let l = Line::through((10.0, 0.0), (10.0, 5.0), (20.0, 0.0)).unwrap();
    /// assert!((l.signed_distance(12.0, 3.0) - 2.0).abs() < 1e-6);
    /// ```
    pub fn through(p0: (f32, f32), p1: (f32, f32), inside: (f32, f32)) -> Option<Line> {
        let (dx, dy) = (p1.0 - p0.0, p1.1 - p0.1);
        let len = (dx * dx + dy * dy).sqrt();
        if len.is_nan() || len <= 0.0 {
            return None;
        }
        let (mut nx, mut ny) = (-dy / len, dx / len);
        let mut c = nx * p0.0 + ny * p0.1;
        if nx * inside.0 + ny * inside.1 - c < 0.0 {
            nx = -nx;
            ny = -ny;
            c = -c;
        }
        Some(Line { nx, ny, c })
    }

    /// Checks the line's rules: `nx`, `ny` and `c` finite, and `(nx, ny)` a unit vector
    /// (its length within [`Line::UNIT_TOLERANCE`] of 1, so that normals written with four
    /// decimals pass). A NaN line would otherwise be skipped when masking (as if absent) and
    /// an infinite offset would put the whole image outside the field.
    ///
    /// # Errors
    /// [`PostprocError::OutOfRange`] named `nx`, `ny` or `c` for a NaN or infinite value
    /// (checked in that order), or `(nx, ny)`, with the normal's length as the value, for a
    /// normal that is not a unit vector, such as `(0, 0)`.
    ///
    /// # Examples
    /// ```
    /// use xray_postproc::Line;
    /// assert!(Line { nx: 0.6, ny: 0.8, c: 10.0 }.validate().is_ok());
    /// assert!(Line { nx: 1.0, ny: 0.0, c: f32::INFINITY }.validate().is_err());
    /// assert!(Line { nx: 0.0, ny: 0.0, c: 10.0 }.validate().is_err());
    /// ```
    pub fn validate(&self) -> Result<()> {
        for (name, value) in [("nx", self.nx), ("ny", self.ny), ("c", self.c)] {
            if !value.is_finite() {
                return Err(PostprocError::OutOfRange {
                    name: name.to_string(),
                    value: f64::from(value),
                    expected: "a finite number",
                });
            }
        }
        // In f64, so that a huge component gives its length, not infinity.
        let length = f64::from(self.nx).hypot(f64::from(self.ny));
        if (length - 1.0).abs() > f64::from(Self::UNIT_TOLERANCE) {
            return Err(PostprocError::OutOfRange {
                name: "(nx, ny)".to_string(),
                value: length,
                expected: "a unit vector, length 1 within 1e-3 (the value shown is its \
                           length): the normal pointing into the field",
            });
        }
        Ok(())
    }

    /// How far from 1 the length of a valid line's normal `(nx, ny)` may be
    /// ([`Line::validate`]).
    pub const UNIT_TOLERANCE: f32 = 1e-3;

    /// Signed distance of `(x, y)` from the line; positive on the field side.
    ///
    /// # Examples
    /// ```
    /// use xray_postproc::Line;
    /// // The vertical line x = 10, field to its right.
    /// let l = Line { nx: 1.0, ny: 0.0, c: 10.0 };
    /// assert_eq!(l.signed_distance(12.0, 5.0), 2.0); // in the field
    /// assert_eq!(l.signed_distance(7.0, 5.0), -3.0); // collimated side
    /// assert_eq!(l.signed_distance(10.0, 99.0), 0.0); // on the line
    /// ```
    pub fn signed_distance(&self, x: f32, y: f32) -> f32 {
        self.nx * x + self.ny * y - self.c
    }

    /// Angle of the line's direction to the nearest image axis, in degrees (−45..45):
    /// 0 for an edge parallel to the image side, positive when rotated clockwise on screen.
    ///
    /// # Examples
    /// ```
    /// use xray_postproc::Line;
    /// // Unrotated edges of every side have no tilt.
    /// for (nx, ny) in [(1.0, 0.0), (0.0, 1.0), (-1.0, 0.0), (0.0, -1.0)] {
    ///     assert_eq!(Line { nx, ny, c: 0.0 }.tilt_deg(), 0.0);
    /// }
    /// // A left and a top edge of one field rotated 5 degrees clockwise on screen (y down).
    /// let a = 5f32.to_radians();
    /// let left = Line { nx: a.cos(), ny: a.sin(), c: 10.0 };
    /// let top = Line { nx: -a.sin(), ny: a.cos(), c: 10.0 };
    /// assert!((left.tilt_deg() - 5.0).abs() < 1e-4);
    /// assert!((top.tilt_deg() - 5.0).abs() < 1e-4);
    /// ```
    pub fn tilt_deg(&self) -> f32 {
        let a = self.ny.atan2(self.nx).to_degrees();
        let r = a - (a / 90.0).round() * 90.0;
        if r > 45.0 {
            r - 90.0
        } else {
            r
        }
    }

    /// The part of the line inside the rectangle `[0, width−1] × [0, height−1]`, as two end
    /// points, or `None` when the line misses it.
    ///
    /// # Examples
    /// ```
    /// use xray_postproc::Line;
    /// // The vertical line x = 10 crosses a 64 x 32 image from top to bottom.
    /// let l = Line { nx: 1.0, ny: 0.0, c: 10.0 };
    /// assert_eq!(l.clip_to(64, 32), Some(((10.0, 0.0), (10.0, 31.0))));
    /// // x = 100 lies right of the image.
    /// assert_eq!(Line { nx: 1.0, ny: 0.0, c: 100.0 }.clip_to(64, 32), None);
    /// ```
    pub fn clip_to(&self, width: usize, height: usize) -> Option<((f32, f32), (f32, f32))> {
        let (w, h) = ((width.max(1) - 1) as f32, (height.max(1) - 1) as f32);
        let (tx, ty) = (-self.ny, self.nx);
        let (px, py) = (self.nx * self.c, self.ny * self.c);
        let (mut s0, mut s1) = (f32::NEG_INFINITY, f32::INFINITY);
        for (p, d, lo, hi) in [(px, tx, 0.0, w), (py, ty, 0.0, h)] {
            if d.abs() < 1e-9 {
                if p < lo - 1e-4 || p > hi + 1e-4 {
                    return None;
                }
            } else {
                let (a, b) = ((lo - p) / d, (hi - p) / d);
                s0 = s0.max(a.min(b));
                s1 = s1.min(a.max(b));
            }
        }
        (s0 <= s1).then_some(((px + s0 * tx, py + s0 * ty), (px + s1 * tx, py + s1 * ty)))
    }
}

/// Mean distance (pixels) from points along `truth` (its part inside a `width × height`
/// image, 101 evenly spaced points) to the line `found`: the accuracy measure used for
/// collimator edges. `None` when `truth` misses the image.
///
/// # Examples
/// ```
/// use xray_postproc::{edge_distance, Line};
/// let a = Line { nx: 1.0, ny: 0.0, c: 10.0 };
/// let b = Line { nx: 1.0, ny: 0.0, c: 11.5 };
/// assert!((edge_distance(&b, &a, 64, 64).unwrap() - 1.5).abs() < 1e-5);
/// ```
pub fn edge_distance(found: &Line, truth: &Line, width: usize, height: usize) -> Option<f32> {
    let (p0, p1) = truth.clip_to(width, height)?;
    let n = 100;
    let sum: f32 = (0..=n)
        .map(|i| {
            let t = i as f32 / n as f32;
            let (x, y) = (p0.0 + t * (p1.0 - p0.0), p0.1 + t * (p1.1 - p0.1));
            found.signed_distance(x, y).abs()
        })
        .sum();
    Some(sum / (n + 1) as f32)
}

/// One detected collimator edge.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct FieldEdge {
    /// The image side this edge bounds the field on.
    pub side: Side,
    /// The edge, in input pixel coordinates, normal pointing into the field.
    pub line: Line,
    /// How far the exposure steps down across the edge, in e-folds: the median of the log
    /// level a little inside the (refined) line minus the median a little outside, at the
    /// detector's working resolution (2 working px either side). On linear input that is
    /// `ln(inside / outside)`, with a floor of 0.2 % of the image's range under both levels
    /// (a band at the floor reads about 6 e-folds below a field at the range's top); on log
    /// input the range is taken to span 7 e-folds (docs/postprocessing.md). The same scale
    /// for every edge, whichever look found it; 0 when the line has no sample pair inside
    /// the image.
    pub contrast: f32,
    /// Share of the edge's visible length along which the inside is clearly brighter (for
    /// the last look's edges: the share of 8-sample stretches showing half the median step).
    pub support: f32,
}

impl FieldEdge {
    /// Checks the edge: its line ([`Line::validate`]), a finite `contrast` and a `support`
    /// in `[0, 1]`.
    ///
    /// # Errors
    /// [`PostprocError::OutOfRange`] named as in JSON: `line.nx`, `line.ny`, `line.c`,
    /// `line.(nx, ny)` (a normal that is not a unit vector), `contrast` or `support`.
    ///
    /// # Examples
    /// ```
    /// use xray_postproc::{FieldEdge, Line, PostprocError, Side};
    /// let mut edge = FieldEdge {
    ///     side: Side::Left,
    ///     line: Line { nx: 1.0, ny: 0.0, c: 10.0 },
    ///     contrast: 2.0,
    ///     support: 0.9,
    /// };
    /// assert!(edge.validate().is_ok());
    ///
    /// edge.support = 1.5; // a share above 1
    /// let e = edge.validate().unwrap_err();
    /// assert!(matches!(e, PostprocError::OutOfRange { ref name, .. } if name == "support"));
    ///
    /// edge.support = 0.9;
    /// edge.line.ny = 1.0; // the normal (1, 1) is not a unit vector
    /// let e = edge.validate().unwrap_err();
    /// assert!(matches!(e, PostprocError::OutOfRange { ref name, .. } if name == "line.(nx, ny)"));
    /// ```
    pub fn validate(&self) -> Result<()> {
        self.line
            .validate()
            .map_err(|e| e.renamed(|n| format!("line.{n}")))?;
        if !self.contrast.is_finite() {
            return Err(PostprocError::OutOfRange {
                name: "contrast".to_string(),
                value: f64::from(self.contrast),
                expected: "a finite number",
            });
        }
        if !(self.support.is_finite() && (0.0..=1.0).contains(&self.support)) {
            return Err(PostprocError::OutOfRange {
                name: "support".to_string(),
                value: f64::from(self.support),
                expected: "a share in [0, 1]",
            });
        }
        Ok(())
    }
}

/// The detected exposed field: up to four edges (at most one per side) in an image of
/// `width × height` pixels. With no edges the whole image is the field.
///
/// A field built by hand or read from JSON (a `field.json`) may break these rules (a zero
/// `width` or `height`, two edges on one side) or the rules of its edges
/// ([`FieldEdge::validate`]); [`Collimator::validate`] checks them.
/// [`Collimator::mask_labels`], [`Pipeline::run_with_field`](crate::Pipeline::run_with_field),
/// [`overlay`](crate::overlay()) and [`baseline_segment`](crate::baseline_segment) refuse a
/// field that fails it; [`Collimator::field_mask`], [`Collimator::contains`] and
/// [`Collimator::polygon`] return no error and assume a valid field (a NaN edge is then
/// skipped by `field_mask` but leaves `contains` and `polygon` no point in the field; an
/// offset `c` of +∞ puts everything outside the field, one of −∞ everything inside).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Collimator {
    /// Width of the image the edges refer to.
    pub width: usize,
    /// Height of the image the edges refer to.
    pub height: usize,
    /// The edges found, in the order left, top, right, bottom (absent sides omitted).
    pub edges: Vec<FieldEdge>,
}

impl Collimator {
    /// Checks the field: a `width` and `height` of at least one pixel, and every edge
    /// ([`FieldEdge::validate`]: finite line coefficients, a unit normal, a finite contrast
    /// and a support in `[0, 1]`), at most one per side. [`Collimator::edge`] returns only
    /// the first edge on a side while masking uses them all, so a second edge on a side is
    /// refused rather than half used. [`detect_collimator`]'s fields always pass.
    ///
    /// # Errors
    /// [`PostprocError::OutOfRange`] named `width` or `height` for a zero size, or naming
    /// the edge by its index and side, and its field, e.g. `edges[1].line.c (right edge)` for
    /// an infinite offset; [`PostprocError::DuplicateEdge`] naming the side and the indices
    /// of the first two edges on one side. Checked in that order, the edges by index (an
    /// edge's own rules before whether an earlier edge has its side).
    ///
    /// # Examples
    /// ```
    /// use xray_postproc::{Collimator, FieldEdge, Line, Side};
    /// let edge = FieldEdge {
    ///     side: Side::Top,
    ///     line: Line { nx: 0.0, ny: 1.0, c: f32::NAN },
    ///     contrast: 0.5,
    ///     support: 1.0,
    /// };
    /// let field = Collimator { width: 8, height: 8, edges: vec![edge] };
    /// let e = field.validate().unwrap_err();
    /// assert!(e.to_string().contains("edges[0].line.c (top edge)"), "{e}");
    /// ```
    pub fn validate(&self) -> Result<()> {
        for (name, value) in [("width", self.width), ("height", self.height)] {
            if value == 0 {
                return Err(PostprocError::OutOfRange {
                    name: name.to_string(),
                    value: value as f64,
                    expected: "at least 1 pixel: the size of the image the edges refer to",
                });
            }
        }
        for (i, e) in self.edges.iter().enumerate() {
            e.validate().map_err(|err| {
                err.renamed(|n| format!("edges[{i}].{n} ({} edge)", e.side.name()))
            })?;
            if let Some(first) = self.edges[..i].iter().position(|o| o.side == e.side) {
                return Err(PostprocError::DuplicateEdge {
                    name: "edges".to_string(),
                    side: e.side,
                    first,
                    second: i,
                });
            }
        }
        Ok(())
    }

    /// The edge on `side`, if one was found (the first one, in a field that breaks the rule
    /// of one edge per side: see [`Collimator::validate`]).
    ///
    /// # Examples
    /// ```
    /// use xray_postproc::{Collimator, FieldEdge, Line, Side};
    /// let left = FieldEdge {
    ///     side: Side::Left,
    ///     line: Line { nx: 1.0, ny: 0.0, c: 2.5 },
    ///     contrast: 1.0,
    ///     support: 1.0,
    /// };
    /// let field = Collimator { width: 8, height: 4, edges: vec![left] };
    /// assert_eq!(field.edge(Side::Left).map(|e| e.line.c), Some(2.5));
    /// assert!(field.edge(Side::Top).is_none());
    /// ```
    pub fn edge(&self, side: Side) -> Option<&FieldEdge> {
        self.edges.iter().find(|e| e.side == side)
    }

    /// Whether the point `(x, y)` lies in the field (on the inner side of every edge, or on it).
    ///
    /// # Examples
    /// ```
    /// use xray_postproc::{Collimator, FieldEdge, Line, Side};
    /// let left = FieldEdge {
    ///     side: Side::Left,
    ///     line: Line { nx: 1.0, ny: 0.0, c: 2.5 },
    ///     contrast: 1.0,
    ///     support: 1.0,
    /// };
    /// let field = Collimator { width: 8, height: 4, edges: vec![left] };
    /// assert!(field.contains(3.0, 0.0));
    /// assert!(field.contains(2.5, 1.0)); // on the edge
    /// assert!(!field.contains(2.0, 0.0));
    /// // With no edges the whole image is the field.
    /// assert!(Collimator { width: 8, height: 4, edges: vec![] }.contains(0.0, 0.0));
    /// ```
    pub fn contains(&self, x: f32, y: f32) -> bool {
        self.edges
            .iter()
            .all(|e| e.line.signed_distance(x, y) >= 0.0)
    }

    /// The field mask at input resolution: 255 inside the field, 0 in the collimated region.
    ///
    /// # Examples
    /// ```
    /// use xray_postproc::{Collimator, FieldEdge, Line, Side};
    /// let c = Collimator { width: 8, height: 4, edges: vec![FieldEdge {
    ///     side: Side::Left, line: Line { nx: 1.0, ny: 0.0, c: 2.5 }, contrast: 1.0, support: 1.0 }] };
    /// let m = c.field_mask();
    /// assert_eq!(m.get_pixel(2, 0)[0], 0);
    /// assert_eq!(m.get_pixel(3, 0)[0], 255);
    /// ```
    pub fn field_mask(&self) -> GrayImage {
        let (w, h) = (self.width as u32, self.height as u32);
        let mut m = GrayImage::new(w, h);
        for y in 0..h {
            // Per row, the field is an interval (convex polygon): find it edge by edge.
            let (mut lo, mut hi) = (0.0f32, (w as f32) - 1.0);
            for e in &self.edges {
                let l = &e.line;
                let rest = l.c - l.ny * y as f32; // nx·x >= rest
                if l.nx.abs() < 1e-9 {
                    if rest > 0.0 {
                        hi = -1.0;
                    }
                } else if l.nx > 0.0 {
                    lo = lo.max(rest / l.nx);
                } else {
                    hi = hi.min(rest / l.nx);
                }
            }
            let x0 = lo.ceil().max(0.0) as i64;
            let x1 = (hi.floor() as i64).min(w as i64 - 1);
            for x in x0..=x1 {
                m.put_pixel(x as u32, y, image::Luma([255]));
            }
        }
        m
    }

    /// The field polygon: the image rectangle `[0, w−1] × [0, h−1]` cut by every edge,
    /// as vertices in order (empty when nothing of the image is in the field).
    ///
    /// # Examples
    /// ```
    /// use xray_postproc::{Collimator, FieldEdge, Line, Side};
    /// let left = |c| FieldEdge {
    ///     side: Side::Left,
    ///     line: Line { nx: 1.0, ny: 0.0, c },
    ///     contrast: 1.0,
    ///     support: 1.0,
    /// };
    /// // An 8 x 4 image cut at x = 2.5: the rectangle [2.5, 7] x [0, 3].
    /// let field = Collimator { width: 8, height: 4, edges: vec![left(2.5)] };
    /// let poly = field.polygon();
    /// let expected = [(2.5, 0.0), (7.0, 0.0), (7.0, 3.0), (2.5, 3.0)];
    /// assert_eq!(poly.len(), expected.len());
    /// for (&(x, y), &(ex, ey)) in poly.iter().zip(&expected) {
    ///     assert!((x - ex).abs() < 1e-5 && (y - ey).abs() < 1e-5, "{poly:?}");
    /// }
    /// // An edge right of the image leaves nothing in the field.
    /// let gone = Collimator { width: 8, height: 4, edges: vec![left(20.0)] };
    /// assert!(gone.polygon().is_empty());
    /// ```
    pub fn polygon(&self) -> Vec<(f32, f32)> {
        let (w, h) = (
            (self.width.max(1) - 1) as f32,
            (self.height.max(1) - 1) as f32,
        );
        let mut poly = vec![(0.0, 0.0), (w, 0.0), (w, h), (0.0, h)];
        for e in &self.edges {
            let l = e.line;
            let mut out = Vec::with_capacity(poly.len() + 1);
            for i in 0..poly.len() {
                let a = poly[i];
                let b = poly[(i + 1) % poly.len()];
                let (da, db) = (l.signed_distance(a.0, a.1), l.signed_distance(b.0, b.1));
                if da >= 0.0 {
                    out.push(a);
                }
                if (da >= 0.0) != (db >= 0.0) {
                    let t = da / (da - db);
                    out.push((a.0 + t * (b.0 - a.0), a.1 + t * (b.1 - a.1)));
                }
            }
            poly = out;
            if poly.is_empty() {
                break;
            }
        }
        poly
    }

    /// Marks every pixel of `labels` outside the field as [`IGNORE`].
    ///
    /// # Errors
    /// [`PostprocError::ShapeMismatch`] when `labels` is not `width × height`;
    /// [`PostprocError::OutOfRange`] or [`PostprocError::DuplicateEdge`] for a field that
    /// fails [`Collimator::validate`] (then `labels` is left as it was).
    ///
    /// # Examples
    /// ```
    /// use image::GrayImage;
    /// use xray_postproc::{Collimator, FieldEdge, Line, PostprocError, Side, IGNORE};
    /// let left = FieldEdge {
    ///     side: Side::Left,
    ///     line: Line { nx: 1.0, ny: 0.0, c: 1.5 },
    ///     contrast: 1.0,
    ///     support: 1.0,
    /// };
    /// let field = Collimator { width: 4, height: 2, edges: vec![left] };
    /// let mut labels = GrayImage::from_pixel(4, 2, image::Luma([1]));
    /// field.mask_labels(&mut labels)?;
    /// // Columns 0 and 1 lie left of x = 1.5, outside the field.
    /// assert_eq!(labels.as_raw(), &[IGNORE, IGNORE, 1, 1, IGNORE, IGNORE, 1, 1]);
    ///
    /// let mut small = GrayImage::new(3, 2);
    /// let e = field.mask_labels(&mut small).unwrap_err();
    /// assert!(matches!(e, PostprocError::ShapeMismatch { .. }));
    /// # Ok::<(), PostprocError>(())
    /// ```
    pub fn mask_labels(&self, labels: &mut GrayImage) -> Result<()> {
        check_labels("label map", labels, self.width, self.height)?;
        self.validate()?;
        let m = self.field_mask();
        for (l, &f) in labels.iter_mut().zip(m.iter()) {
            if f == 0 {
                *l = IGNORE;
            }
        }
        Ok(())
    }
}

/// Parameters of [`detect_collimator`]. Contrast-like values are in units of the working
/// image's range (its 0.5–99.5 % spread after log compression), so they do not depend on
/// the input's scale.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CollimatorConfig {
    /// Longest side of the working copy in pixels (≥ 32).
    pub working_size: usize,
    /// Log-compress the input before searching (recommended for both linear and log data).
    pub log_compress: bool,
    /// Gaussian smoothing of the working copy, in working pixels (0..=8).
    pub smoothing_sigma: f32,
    /// Largest rotation of an edge from its image side, degrees (0..=45).
    pub max_angle_deg: f32,
    /// Least contrast across an edge (0..1).
    pub min_contrast: f32,
    /// Least share of the edge's visible length showing that contrast (0..1).
    pub min_support: f32,
    /// Largest rise, on the way from just outside an edge to the border, above the level just
    /// outside, as a share of the (linear) contrast across the edge (0..1).
    pub max_outside_spread: f32,
    /// Least share of the edge's counted length along which the way to the border stays
    /// that dark (0..1).
    pub min_dark_beyond: f32,
    /// Largest share of the band between an edge and the border that may be that bright
    /// (scatter glow) (0..1).
    pub max_bright_share: f32,
    /// Largest ratio of the (linear, range-normalised) level just outside an edge to the
    /// level just inside (0..1).
    pub max_outside_ratio: f32,
    /// Largest fall, within a few working pixels beyond the level just outside an edge, as a
    /// share of the contrast across the edge, on linear input (0..1). A collimated band is
    /// flat there; beyond a skin line the tissue keeps thickening (an arm at the side of a
    /// chest, a thigh), so the level keeps falling. An edge is rejected when the fall
    /// exceeds this on most of its contrasted length. Not applied to log-processed input,
    /// where the anatomy seen through the collimator keeps its full contrast.
    pub max_outside_fall: f32,
    /// Largest level just outside an edge, as a share of the image's range (its 0.5–99.5 %
    /// spread), on linear input (0..1). Behind a blade only leakage (a few per cent) and
    /// scatter arrive; the strip of arm between a skin line and the image border passes a
    /// fifth of the beam or more. Not applied to log-processed input.
    pub max_outside_level: f32,
    /// Least share of the edge's contrasted length along which the way from the edge to the
    /// border stays clearly darker than the field just inside (0..1): rejects steps whose
    /// "outside" opens onto brighter field again (a skin line, the far side of a bone).
    pub min_dark_rays: f32,
    /// Least share of the edge's contrasted length whose steepest step lies on one straight
    /// line, within about a working pixel (0..1): a collimator blade is straight, anatomy
    /// (a diaphragm, a skin line) curves.
    pub min_straightness: f32,
    /// Largest share of the image one collimated band may cover (0..1): the field is centred
    /// on the anatomy, so a "band" holding most of the image is the field itself, and one
    /// holding two fifths of it (the default, 0.4) is more often dark anatomy (the thick side
    /// of a hip beyond a line along the thigh) than a blade. Raise it for small off-centre
    /// fields.
    pub max_band_fraction: f32,
    /// Least visible length of an edge, as a share of the image side it bounds (0..1).
    pub min_length_fraction: f32,
    /// Refine edges to sub-pixel accuracy on the full-resolution image.
    pub refine: bool,
    /// Whether the input values are linear in the exposure or log-processed; `auto` judges
    /// it from the image's noise, and misjudges about 2 % of the synthetic phantoms, so set it
    /// when the data's scale is known. The sub-pixel refinement and the linear-only tests
    /// (`max_outside_fall`, `max_outside_level`) depend on it.
    pub input_scale: InputScale,
    /// Largest difference between the rotations of two edges of one field, in degrees
    /// (0..=45), or `None` to judge every side on its own. A collimator's blades form a
    /// rectangle, so every edge of its field is rotated alike; a candidate rotated otherwise
    /// is anatomy (the skin line of an arm cutting a corner of a chest image). The rotation
    /// that the sides' best consistent candidates support most (summed scores) is kept, and
    /// each side takes its best candidate within this much of it. The search runs in 1°
    /// steps, and true edges of one field were found up to 3° apart. The later looks at
    /// sides left empty (the dark end, the relaxed look at log bands, the step along the
    /// found edges' rotation), the look for a lone blade when nothing was found and the check
    /// of lines alone at the field's rotation (a weak step over a narrow strip is an arm
    /// beside a chest) run only with a spread (docs/postprocessing.md).
    pub rotation_spread_deg: Option<f32>,
    /// For log-processed input: the assumed exposure ratio between the field and the
    /// collimated band, in e-folds (3 ≈ a band at 5 % of the field, leakage plus scatter),
    /// used to undo the log across an edge before taking its half level (0.5..=10).
    pub log_contrast: f32,
}

/// How an image's values relate to the exposure, for [`CollimatorConfig::input_scale`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum InputScale {
    /// Judge from the image: quantum noise grows with linear values, shrinks with log ones.
    Auto,
    /// Values proportional to the exposure (DR "for processing" style).
    Linear,
    /// Values proportional to the logarithm of the exposure (CR, "for presentation").
    Log,
}

impl Default for CollimatorConfig {
    fn default() -> Self {
        Self {
            working_size: 256,
            log_compress: true,
            smoothing_sigma: 1.0,
            max_angle_deg: 30.0,
            min_contrast: 0.12,
            min_support: 0.6,
            max_outside_spread: 0.35,
            min_dark_beyond: 0.5,
            max_bright_share: 0.25,
            max_outside_ratio: 0.7,
            max_outside_fall: 0.2,
            max_outside_level: 0.15,
            min_dark_rays: 0.8,
            min_straightness: 0.8,
            max_band_fraction: 0.4,
            min_length_fraction: 0.03,
            refine: true,
            input_scale: InputScale::Auto,
            rotation_spread_deg: Some(4.0),
            log_contrast: 3.0,
        }
    }
}

impl CollimatorConfig {
    /// Checks every parameter's range; NaN and infinities are refused (in JSON, a value
    /// beyond the `f32` range, such as `1e308`, reads as infinity). Every `f32` parameter has
    /// a bounded range; `rotation_spread_deg` may be `null` (no spread test), not infinite.
    ///
    /// # Errors
    /// [`PostprocError::OutOfRange`] naming the parameter (as in the JSON config; a
    /// [`Pipeline`](crate::Pipeline) prefixes it with `collimator.`).
    ///
    /// # Examples
    /// ```
    /// use xray_postproc::{CollimatorConfig, PostprocError};
    /// assert!(CollimatorConfig::default().validate().is_ok());
    ///
    /// let steep = CollimatorConfig { max_angle_deg: 60.0, ..Default::default() };
    /// let e = steep.validate().unwrap_err();
    /// assert!(matches!(e, PostprocError::OutOfRange { ref name, .. } if name == "max_angle_deg"));
    ///
    /// // No spread test is allowed; an infinite spread is not.
    /// let free = CollimatorConfig { rotation_spread_deg: None, ..Default::default() };
    /// assert!(free.validate().is_ok());
    /// let inf = CollimatorConfig { rotation_spread_deg: Some(f32::INFINITY), ..Default::default() };
    /// assert!(inf.validate().is_err());
    /// ```
    pub fn validate(&self) -> Result<()> {
        let range = |name: &str, v: f32, lo: f32, hi: f32, expected: &'static str| {
            if v.is_finite() && v >= lo && v <= hi {
                Ok(())
            } else {
                Err(PostprocError::OutOfRange {
                    name: name.to_string(),
                    value: v as f64,
                    expected,
                })
            }
        };
        if self.working_size < 32 || self.working_size > 4096 {
            return Err(PostprocError::OutOfRange {
                name: "working_size".into(),
                value: self.working_size as f64,
                expected: "32..=4096 pixels",
            });
        }
        range(
            "smoothing_sigma",
            self.smoothing_sigma,
            0.0,
            8.0,
            "0..=8 working pixels",
        )?;
        range(
            "max_angle_deg",
            self.max_angle_deg,
            0.0,
            45.0,
            "0..=45 degrees",
        )?;
        range("min_contrast", self.min_contrast, 0.0, 1.0, "[0, 1]")?;
        range("min_support", self.min_support, 0.0, 1.0, "[0, 1]")?;
        range(
            "max_outside_ratio",
            self.max_outside_ratio,
            0.0,
            1.0,
            "[0, 1]",
        )?;
        range("min_dark_beyond", self.min_dark_beyond, 0.0, 1.0, "[0, 1]")?;
        range(
            "max_bright_share",
            self.max_bright_share,
            0.0,
            1.0,
            "[0, 1]",
        )?;
        range(
            "max_outside_spread",
            self.max_outside_spread,
            0.0,
            1.0,
            "[0, 1]",
        )?;
        range(
            "log_contrast",
            self.log_contrast,
            0.5,
            10.0,
            "0.5..=10 e-folds",
        )?;
        range("min_dark_rays", self.min_dark_rays, 0.0, 1.0, "[0, 1]")?;
        range(
            "max_outside_level",
            self.max_outside_level,
            0.0,
            1.0,
            "[0, 1]",
        )?;
        range(
            "max_outside_fall",
            self.max_outside_fall,
            0.0,
            1.0,
            "[0, 1]",
        )?;
        if let Some(spread) = self.rotation_spread_deg {
            range(
                "rotation_spread_deg",
                spread,
                0.0,
                45.0,
                "0..=45 degrees, or null",
            )?;
        }
        range(
            "min_straightness",
            self.min_straightness,
            0.0,
            1.0,
            "[0, 1]",
        )?;
        range(
            "max_band_fraction",
            self.max_band_fraction,
            0.0,
            1.0,
            "[0, 1]",
        )?;
        range(
            "min_length_fraction",
            self.min_length_fraction,
            0.0,
            1.0,
            "[0, 1]",
        )?;
        Ok(())
    }
}

/// The downsampled, normalised working copy: one per look's log offset, sharing the
/// offset-free planes of the [`Downsampled`] it was built from.
struct Work<'a> {
    w: usize,
    h: usize,
    /// Downsampling factor: working pixel (i, j) covers input pixels [i·f, i·f+f).
    f: usize,
    /// Log-compressed, normalised values: gradients and contrast.
    v: Vec<f32>,
    /// Linearly normalised values: the test that the collimated band holds nothing bright
    /// (log compression would magnify the dim scatter glow that real collimators show).
    lin: &'a [f32],
    /// Whether the input's values are log-processed ([`CollimatorConfig::input_scale`]).
    log_input: bool,
    /// Linear level (share of the range) up to which the band may be bright without counting
    /// against an edge, besides the usual rise above just outside: the third look's
    /// collimated open beam beside a dark trunk (see [`DARKEST_LOG_OFFSET`]).
    band_ceiling: f32,
    gx: Vec<f32>,
    gy: Vec<f32>,
    /// Log exposure (see [`step_exposure`]): the step look's plane, and the test that a
    /// candidate line steps down along enough of its length ([`stepping_share`]).
    exposure: &'a [f32],
}

impl Work<'_> {
    /// The line with inward unit normal `n` at working offset `rho`, in input coordinates:
    /// working pixel (i, j) is the mean of input pixels i·f ..= i·f + f − 1, centred at
    /// i·f + (f − 1)/2.
    fn input_line(&self, n: (f32, f32), rho: f32) -> Line {
        let f = self.f as f32;
        Line {
            nx: n.0,
            ny: n.1,
            c: f * rho + (f - 1.0) / 2.0 * (n.0 + n.1),
        }
    }

    /// The working offset of `line` (input coordinates): [`Work::input_line`] undone.
    fn working_offset(&self, line: &Line) -> f32 {
        let f = self.f as f32;
        (line.c - (f - 1.0) / 2.0 * (line.nx + line.ny)) / f
    }

    #[inline]
    fn at(&self, x: f32, y: f32) -> Option<f32> {
        bilinear(&self.v, self.w, self.h, x, y)
    }
}

#[inline]
fn bilinear(v: &[f32], w: usize, h: usize, x: f32, y: f32) -> Option<f32> {
    if !(x >= 0.0 && y >= 0.0 && x <= (w - 1) as f32 && y <= (h - 1) as f32) {
        return None;
    }
    let (x0, y0) = (x.floor() as usize, y.floor() as usize);
    let (x1, y1) = ((x0 + 1).min(w - 1), (y0 + 1).min(h - 1));
    let (fx, fy) = (x - x0 as f32, y - y0 as f32);
    let a = v[y0 * w + x0] + fx * (v[y0 * w + x1] - v[y0 * w + x0]);
    let b = v[y1 * w + x0] + fx * (v[y1 * w + x1] - v[y1 * w + x0]);
    Some(a + fy * (b - a))
}

fn percentile_sorted(sorted: &[f32], q: f32) -> f32 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() - 1) as f32 * q).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

pub(crate) fn gaussian_smooth(v: &mut [f32], w: usize, h: usize, sigma: f32) {
    if sigma <= 0.0 {
        return;
    }
    let r = (3.0 * sigma).ceil() as isize;
    let k: Vec<f32> = (-r..=r)
        .map(|i| (-(i * i) as f32 / (2.0 * sigma * sigma)).exp())
        .collect();
    let s: f32 = k.iter().sum();
    let k: Vec<f32> = k.iter().map(|x| x / s).collect();
    let mut tmp = vec![0.0f32; v.len()];
    for y in 0..h {
        for x in 0..w {
            let mut acc = 0.0;
            for (j, kv) in k.iter().enumerate() {
                let xx = (x as isize + j as isize - r).clamp(0, w as isize - 1) as usize;
                acc += kv * v[y * w + xx];
            }
            tmp[y * w + x] = acc;
        }
    }
    for y in 0..h {
        for x in 0..w {
            let mut acc = 0.0;
            for (j, kv) in k.iter().enumerate() {
                let yy = (y as isize + j as isize - r).clamp(0, h as isize - 1) as usize;
                acc += kv * tmp[yy * w + x];
            }
            v[y * w + x] = acc;
        }
    }
}

/// Offset of the working image's log compression, as a share of the range: large enough to
/// keep the dark collimator's noise from being blown up.
const LOG_OFFSET: f32 = 0.1;
/// The offset of the second look at sides left without an edge at the field's rotation. As a
/// first look it found more faint edges but invented more; restricted to the rotation of the
/// edges already found it loses none (synth studies, docs/postprocessing.md).
const FAINT_LOG_OFFSET: f32 = 0.01;
/// The offset of the third look, on linear input, at sides still without an edge at the
/// field's rotation: the very dark end, where a blade over a pelvis or hip leaves the field
/// at under 1 % of the range and the band at a third of that.
const DARKEST_LOG_OFFSET: f32 = 0.002;

/// The look at an image whose first look found nothing (see `strict_first_edge`) only takes
/// a line whose band is on average at least this many working px deep: a line hugging the
/// border (the far, darkest part of an arm cut by it) leaves the flat-beyond test too short
/// a stretch to see the tissue thicken. The lone blades it is there for left 9.7 and 11.6.
const LONE_EDGE_BAND_DEPTH: f32 = 5.0;

/// ... and a line visible along at least this share of its image side: with no other edge to
/// agree with, a line clipping a corner is too little evidence (a fresh synth sample, seed 3,
/// gave a line 0.2 of its side long deep inside a chest's collimated band, 78 px from the true
/// edge, which this look had missed). The lone blades it found were visible along 0.37–0.71.
const LONE_EDGE_VISIBLE_SHARE: f32 = 0.3;

/// A line the first look accepts on the only side with any at the field's rotation has no
/// other edge to agree with, and there an arm beside a chest, cut by the image border, passes
/// for a blade: the edge of the humerus's shaft or the arm's skin line, with the rest of the
/// arm as the "band". Such a line steps down little (log contrast at most 0.21 on the synth
/// studies), to a level still far from dark (0.40–0.70 of the level just inside) and over a
/// narrow strip (the arm: at most 25 working px deep). A lone line with all three
/// ([`weak_lone_edge`]) is dropped (`drop_lone_arms`); with nothing left, the look for a lone
/// blade then searches the image as if the first look had found nothing.
const WEAK_LONE_CONTRAST: f32 = 0.22;
/// See [`WEAK_LONE_CONTRAST`]: the least ratio of the level just outside to just inside.
const WEAK_LONE_OUTSIDE_RATIO: f32 = 0.38;
/// See [`WEAK_LONE_CONTRAST`]: the band depth (working px) below which the band may be an arm.
const WEAK_LONE_BAND_DEPTH: f32 = 30.0;

/// The field level under which a weak lone line ([`weak_lone_edge`]) may still be a blade, as
/// a share of the exposure at the top of the range (see [`blade_over_a_thick_trunk`]).
const THICK_TRUNK_FIELD_EXPOSURE: f32 = 0.01;

/// Whether a lone line of the first look lies beside a field under
/// [`THICK_TRUNK_FIELD_EXPOSURE`] of the exposure at the top of the range (on linear input that
/// share of the range; on log input `1 + ln(0.01) / STEP_LOOK_LOG_SPAN`, about 0.34) and steps
/// down along nearly its whole length ([`steps_down_nearly_everywhere`]): a blade over a thick
/// trunk, which `drop_lone_arms` keeps even when it has every mark of an arm.
///
/// An upper arm is thin: the strip beyond its skin line or humerus passes a good part of the
/// beam, and the field just inside its line (the gap to the chest, the arm's own soft tissue)
/// at least as much; the arms of the synth chests that the first look took lay beside fields at
/// 2 % of the top exposure or more (log levels 0.44 and up; linear 0.17 of the range and up). A
/// field under 1 % lies under a thick trunk (a hip or a pelvis), where scatter is large next to
/// the primary, so that a blade over it steps down weakly, to a band near the field's level:
/// the marks of an arm. What still tells such a blade from the trunk's own outline is the
/// blade's signature that the looks for a lone blade ask for: it steps down along nearly its
/// whole length, whatever lies beyond it. On the fitted synth samples the two lone log hip
/// blades dropped as arms (seed 202's hip 163, seed 606's hip 369: contrast 0.20, level just
/// outside 0.45–0.47 of the inside, bands 18 working px deep, fields at 0.22–0.27 of the range,
/// 0.4–0.6 % of the top exposure) stepped down along all of it; a line along a log pelvis's
/// outline beside such a field (seed 303's pelvis 79) along 0.71, and is still dropped.
fn blade_over_a_thick_trunk(work: &Work, cand: Cand, v: &Verdict) -> bool {
    let level = if work.log_input {
        1.0 + THICK_TRUNK_FIELD_EXPOSURE.ln() / STEP_LOOK_LOG_SPAN
    } else {
        THICK_TRUNK_FIELD_EXPOSURE
    };
    v.inside < level && steps_down_nearly_everywhere(work, cand)
}

/// Whether a lone line of the first look looks like an arm cut by the image border rather
/// than a blade (see [`WEAK_LONE_CONTRAST`]).
fn weak_lone_edge(v: &Verdict) -> bool {
    v.contrast < WEAK_LONE_CONTRAST
        && v.outside > WEAK_LONE_OUTSIDE_RATIO * v.inside
        && v.band_depth < WEAK_LONE_BAND_DEPTH
}

/// The relaxed look (log input; see `detect_collimator`) only takes lines within this many
/// degrees of the field's rotation.
const RELAXED_ROTATION_GAP: f32 = 1.0;

/// The working copy's linear values: box-averaged to `cfg.working_size` and smoothed, with
/// their range (the 0.5–99.5 % spread), and what every look's working image shares: the
/// values normalised to that range and their log exposure.
struct Downsampled {
    w: usize,
    h: usize,
    f: usize,
    v: Vec<f32>,
    lo: f32,
    span: f32,
    /// See [`Work::lin`].
    lin: Vec<f32>,
    /// See [`Work::log_input`].
    log_input: bool,
    /// See [`Work::exposure`].
    exposure: Vec<f32>,
}

/// The input box-averaged and smoothed; `None` for an image under 8 working pixels a side or
/// a flat one.
fn downsample(img: &Plane, cfg: &CollimatorConfig, log_input: bool) -> Option<Downsampled> {
    let (iw, ih) = (img.width(), img.height());
    let f = iw.max(ih).div_ceil(cfg.working_size).max(1);
    let (w, h) = (iw.div_ceil(f), ih.div_ceil(f));
    if w < 8 || h < 8 {
        return None;
    }
    let data = img.data();
    // Box average: each working pixel is the mean of an f × f block (smaller at the far
    // borders). Summed in f64 so that huge finite inputs cannot overflow.
    let mut sum = vec![0.0f64; w * h];
    for (y, row) in data.chunks_exact(iw).enumerate() {
        let acc = &mut sum[(y / f) * w..(y / f + 1) * w];
        for (a, block) in acc.iter_mut().zip(row.chunks(f)) {
            *a += block.iter().map(|&v| v as f64).sum::<f64>();
        }
    }
    let block = |i: usize, n: usize| (n - i * f).min(f) as f64;
    let mut v: Vec<f32> = sum
        .iter()
        .enumerate()
        .map(|(k, s)| (s / (block(k % w, iw) * block(k / w, ih))) as f32)
        .collect();
    // Smooth the linear values first: isolated dark noise must not set the range.
    gaussian_smooth(&mut v, w, h, cfg.smoothing_sigma);
    let mut sorted = v.clone();
    sorted.sort_by(f32::total_cmp);
    let (lo, hi) = (
        percentile_sorted(&sorted, 0.005),
        percentile_sorted(&sorted, 0.995),
    );
    if hi.is_nan() || lo.is_nan() || hi <= lo {
        return None;
    }
    let span = hi - lo;
    let lin: Vec<f32> = v.iter().map(|x| (x - lo) / span).collect();
    let exposure = step_exposure(&lin, log_input);
    Some(Downsampled {
        w,
        h,
        f,
        v,
        lo,
        span,
        lin,
        log_input,
        exposure,
    })
}

/// The working copy: the downsampled values normalised to their range and (with
/// `cfg.log_compress`) log-compressed with an offset of `log_offset` of it, and their
/// gradients.
fn build_work<'a>(d: &'a Downsampled, cfg: &CollimatorConfig, log_offset: f32) -> Work<'a> {
    let (w, h, f, lo, span) = (d.w, d.h, d.f, d.lo, d.span);
    let mut v = d.v.clone();
    if cfg.log_compress {
        let delta = log_offset * span;
        let (l0, l1) = (delta.ln(), (span + delta).ln());
        for x in v.iter_mut() {
            *x = (((*x - lo).max(0.0) + delta).ln() - l0) / (l1 - l0);
        }
    } else {
        for x in v.iter_mut() {
            *x = (*x - lo) / span;
        }
    }
    let mut gx = vec![0.0f32; w * h];
    let mut gy = vec![0.0f32; w * h];
    for y in 1..h - 1 {
        for x in 1..w - 1 {
            let p = |dx: isize, dy: isize| {
                v[(y as isize + dy) as usize * w + (x as isize + dx) as usize]
            };
            gx[y * w + x] =
                (p(1, -1) + 2.0 * p(1, 0) + p(1, 1) - p(-1, -1) - 2.0 * p(-1, 0) - p(-1, 1)) / 8.0;
            gy[y * w + x] =
                (p(-1, 1) + 2.0 * p(0, 1) + p(1, 1) - p(-1, -1) - 2.0 * p(0, -1) - p(1, -1)) / 8.0;
        }
    }
    Work {
        w,
        h,
        f,
        v,
        lin: &d.lin,
        log_input: d.log_input,
        band_ceiling: 0.0,
        gx,
        gy,
        exposure: &d.exposure,
    }
}

/// A candidate line in working coordinates: inward normal angle `phi` (radians), offset `rho`.
#[derive(Debug, Clone, Copy)]
struct Cand {
    phi: f32,
    rho: f32,
    /// Degrees the line is turned from its side's nominal direction (the Hough angle step),
    /// kept whole so that candidates of different sides compare exactly.
    turn: i32,
}

impl Cand {
    /// How far the edge is rotated from its image side, in degrees (positive
    /// counter-clockwise in image coordinates, the same for every edge of a rotated
    /// rectangle).
    fn rotation(self) -> f32 {
        self.turn as f32
    }
}

#[derive(Debug, Clone, Copy)]
struct Verdict {
    score: f32,
    /// Median linear level just inside (share of the range).
    inside: f32,
    /// Median linear level just outside (share of the range).
    outside: f32,
    /// Mean depth of the band beyond the line, working px (its pixels per visible sample).
    band_depth: f32,
    /// Share of its image side along which the line is visible (both sides inside the image).
    visible_share: f32,
    contrast: f32,
    support: f32,
}

const MARGIN: f32 = 3.0;
/// How far (working px) on either side of a candidate line its steepest step is looked for.
const STEEP_REACH: i32 = 4;
/// Least number of working pixels in a collimated band.
const MIN_BAND: usize = 16;
/// A ray from an edge to the border counts as dark when it stays below the level just inside
/// by at least this share of the step across the edge.
const DARK_RAY_MARGIN: f32 = 0.25;
/// How far (working px) beyond the level just outside an edge the fall is measured.
const FALL_REACH: usize = 10;
/// Share of an edge's contrasted length on which a fall beyond
/// [`CollimatorConfig::max_outside_fall`] rejects it.
const FALLING_SHARE: f32 = 0.5;

/// Share of `(t, d)` points (position along a line, offset across it) within `tol` of a
/// straight line fitted to them by least squares with one round of outlier rejection.
fn straightness(pts: &[(f32, f32)], tol: f32) -> f32 {
    let fit = |p: &[(f32, f32)]| -> Option<(f32, f32)> {
        let n = p.len() as f64;
        if n < 2.0 {
            return None;
        }
        let (st, sd) = p.iter().fold((0.0f64, 0.0f64), |a, q| {
            (a.0 + q.0 as f64, a.1 + q.1 as f64)
        });
        let (mt, md) = (st / n, sd / n);
        let (mut stt, mut std) = (0.0f64, 0.0f64);
        for q in p {
            stt += (q.0 as f64 - mt).powi(2);
            std += (q.0 as f64 - mt) * (q.1 as f64 - md);
        }
        let b = if stt > 0.0 { std / stt } else { 0.0 };
        Some(((md - b * mt) as f32, b as f32))
    };
    let Some((a, b)) = fit(pts) else {
        return 0.0;
    };
    let near: Vec<(f32, f32)> = pts
        .iter()
        .copied()
        .filter(|q| (q.1 - a - b * q.0).abs() <= 2.0 * tol)
        .collect();
    let (a, b) = fit(&near).unwrap_or((a, b));
    pts.iter()
        .filter(|q| (q.1 - a - b * q.0).abs() <= tol)
        .count() as f32
        / pts.len().max(1) as f32
}

/// What [`measure`] finds along a candidate line (working units).
#[derive(Debug, Clone, Copy, Default)]
struct Measures {
    /// Working pixels of the band between the line (beyond the margin) and the border.
    band: usize,
    /// Visible samples along the line (both sides inside the image).
    visible: usize,
    /// Samples that count for or against the edge.
    counted: usize,
    /// Samples whose inside is brighter than the outside by at least `min_contrast`.
    pass: usize,
    /// Median log contrast of the passing samples.
    contrast: f32,
    /// Share of passing samples whose steepest step lies on one straight line.
    straight: f32,
    /// Share of counted samples whose ray to the border never rises far above just outside.
    dark_beyond: f32,
    /// Share of the band brighter than just outside by that much.
    bright_share: f32,
    /// Median linear level just outside / just inside the passing samples.
    just_outside: f32,
    inside_level: f32,
    /// Median linear contrast of the passing samples.
    lin_contrast: f32,
    /// Share of passing samples whose ray to the border stays well below the inside level.
    dark_rays: f32,
    /// Share of passing samples whose level falls, within [`FALL_REACH`] beyond just outside,
    /// by more than `max_outside_fall` of their linear contrast.
    falling: f32,
}

/// Per row of the working image, the columns `lo..hi` of the band beyond `cand`'s line: the
/// pixels more than [`MARGIN`] outside it (an empty range where the row has none).
fn band_rows<'w>(
    work: &'w Work<'_>,
    cand: Cand,
) -> impl Iterator<Item = (usize, usize, usize)> + 'w {
    let (nx, ny) = (cand.phi.cos(), cand.phi.sin());
    let w = work.w;
    (0..work.h).map(move |y| {
        let out = |x: usize| nx * x as f32 + ny * y as f32 - cand.rho < -MARGIN;
        if nx == 0.0 {
            return (y, 0, if out(0) { w } else { 0 });
        }
        // The distance is monotonic along the row: start from the solved boundary and step
        // to the last (nx > 0) or first (nx < 0) pixel that is out.
        let b = (cand.rho - MARGIN - ny * y as f32) / nx;
        let guess = if b.is_finite() {
            b.floor().clamp(0.0, (w - 1) as f32) as usize
        } else {
            0
        };
        if nx > 0.0 {
            // Out for x < boundary: find the count of leading out pixels.
            let mut k = guess;
            while k < w && out(k) {
                k += 1;
            }
            while k > 0 && !out(k - 1) {
                k -= 1;
            }
            (y, 0, k)
        } else {
            // Out for x > boundary: find the first out pixel.
            let mut k = guess;
            while k > 0 && out(k - 1) {
                k -= 1;
            }
            while k < w && !out(k) {
                k += 1;
            }
            (y, k, w)
        }
    })
}

fn measure(work: &Work, cand: Cand, side: Side, cfg: &CollimatorConfig) -> Option<Measures> {
    let (nx, ny) = (cand.phi.cos(), cand.phi.sin());
    let (w, h) = (work.w, work.h);
    let mut m = Measures {
        band: band_rows(work, cand).map(|(_, lo, hi)| hi - lo).sum(),
        ..Measures::default()
    };
    if m.band == 0 {
        return Some(m);
    }
    let line = Line {
        nx,
        ny,
        c: cand.rho,
    };
    let ((x0, y0), (x1, y1)) = line.clip_to(w, h)?;
    let len = ((x1 - x0).powi(2) + (y1 - y0).powi(2)).sqrt();
    let n = len.floor() as usize;
    // (log inside, log outside, linear inside, linear outside, brightest linear value on the
    // ray from just outside to the border, offset of the steepest step, darkest linear value
    // within FALL_REACH of just outside) per visible sample.
    let mut samples: Vec<[f32; 7]> = Vec::with_capacity(n + 1);
    // Where each sample lies on the line.
    let mut at: Vec<(f32, f32)> = Vec::with_capacity(n + 1);
    for i in 0..=n {
        let t = if n == 0 { 0.0 } else { i as f32 / n as f32 };
        let (px, py) = (x0 + t * (x1 - x0), y0 + t * (y1 - y0));
        let (qx, qy) = (px + MARGIN * nx, py + MARGIN * ny);
        let (rx, ry) = (px - MARGIN * nx, py - MARGIN * ny);
        let (Some(vin), Some(vout)) = (work.at(qx, qy), work.at(rx, ry)) else {
            continue;
        };
        let lin_in = bilinear(work.lin, w, h, qx, qy).unwrap_or(vin);
        let lin_out = bilinear(work.lin, w, h, rx, ry).unwrap_or(vout);
        // The ray and the steepest step are filled in below, for the samples that count.
        samples.push([vin, vout, lin_in, lin_out, lin_out, f32::NAN, lin_out]);
        at.push((px, py));
    }
    m.visible = samples.len();
    let passes = |s: &[f32; 7]| s[0] - s[1] >= cfg.min_contrast;
    // Inside as dark as the collimator: another side's band or very dense anatomy, which
    // neither supports nor refutes the edge.
    let mut outs: Vec<f32> = samples.iter().map(|s| s[1]).collect();
    outs.sort_by(f32::total_cmp);
    let dark = percentile_sorted(&outs, 0.5) + cfg.min_contrast;
    let mut contrasts = Vec::with_capacity(samples.len());
    for s in &samples {
        let c = s[0] - s[1];
        if c >= cfg.min_contrast {
            m.pass += 1;
            m.counted += 1;
            contrasts.push(c);
        } else if s[0] >= dark {
            m.counted += 1;
        }
    }
    if m.pass == 0 {
        return Some(m);
    }
    contrasts.sort_by(f32::total_cmp);
    m.contrast = percentile_sorted(&contrasts, 0.5);
    // The rest is only needed for a candidate that passes the band, length and support tests.
    if !long_and_supported(&m, work, side, cfg) {
        return Some(m);
    }
    for (s, &(px, py)) in samples.iter_mut().zip(&at) {
        if !(s[0] - s[1] >= cfg.min_contrast || s[0] >= dark) {
            continue;
        }
        let (rx, ry) = (px - MARGIN * nx, py - MARGIN * ny);
        let (mut ray_max, mut near_min) = (s[3], s[3]);
        let (mut x, mut y) = (rx - nx, ry - ny);
        let mut step = 0;
        while x >= -0.5 && y >= -0.5 && x < w as f32 - 0.5 && y < h as f32 - 0.5 {
            let v = work.lin[y.round() as usize * w + x.round() as usize];
            ray_max = ray_max.max(v);
            if step < FALL_REACH {
                near_min = near_min.min(v);
            }
            step += 1;
            x -= nx;
            y -= ny;
        }
        // Where across the line the step is steepest (working px, positive inwards).
        let mut steep = (f32::NEG_INFINITY, f32::NAN);
        for k in -2 * STEEP_REACH..=2 * STEEP_REACH {
            let u = k as f32 * 0.5;
            let a = work.at(px + (u + 0.5) * nx, py + (u + 0.5) * ny);
            let b = work.at(px + (u - 0.5) * nx, py + (u - 0.5) * ny);
            if let (Some(a), Some(b)) = (a, b) {
                if a - b > steep.0 {
                    steep = (a - b, u);
                }
            }
        }
        s[4] = ray_max;
        s[5] = steep.1;
        s[6] = near_min;
    }
    let median_of = |k: usize, only_pass: bool| {
        let mut v: Vec<f32> = samples
            .iter()
            .filter(|s| !only_pass || passes(s))
            .map(|s| if k == 99 { s[2] - s[3] } else { s[k] })
            .collect();
        v.sort_by(f32::total_cmp);
        percentile_sorted(&v, 0.5)
    };
    let steep: Vec<(f32, f32)> = samples
        .iter()
        .enumerate()
        .filter(|(_, s)| passes(s) && s[5].is_finite())
        .map(|(i, s)| (i as f32, s[5]))
        .collect();
    m.straight = straightness(&steep, 1.25);
    m.lin_contrast = median_of(99, true);
    m.just_outside = median_of(3, true);
    m.inside_level = median_of(2, true);
    let rise = (cfg.max_outside_spread * m.lin_contrast).max(work.band_ceiling - m.just_outside);
    m.dark_beyond = samples
        .iter()
        .filter(|s| (passes(s) || s[0] >= dark) && s[4] - s[3] <= rise)
        .count() as f32
        / m.counted.max(1) as f32;
    m.bright_share = band_rows(work, cand)
        .map(|(y, lo, hi)| {
            work.lin[y * w + lo..y * w + hi]
                .iter()
                .filter(|&&v| v - m.just_outside > rise)
                .count()
        })
        .sum::<usize>() as f32
        / m.band as f32;
    m.falling = samples
        .iter()
        .filter(|s| passes(s) && s[3] - s[6] > cfg.max_outside_fall * (s[2] - s[3]))
        .count() as f32
        / m.pass as f32;
    m.dark_rays = samples
        .iter()
        .filter(|s| passes(s) && s[4] <= s[2] - DARK_RAY_MARGIN * (s[2] - s[3]))
        .count() as f32
        / m.pass as f32;
    Some(m)
}

fn evaluate(work: &Work, cand: Cand, side: Side, cfg: &CollimatorConfig) -> Option<Verdict> {
    if stepping_share(work, (cand.phi.cos(), cand.phi.sin()), cand.rho) < MIN_STEPPING_SHARE {
        return None;
    }
    let m = measure(work, cand, side, cfg)?;
    accept(&m, work, side, cfg)
}

/// The length of `side` of the working image, working px.
fn side_length(work: &Work, side: Side) -> f32 {
    let len = match side {
        Side::Left | Side::Right => work.h,
        Side::Top | Side::Bottom => work.w,
    };
    len as f32
}

/// The first acceptance tests, which need only the levels just inside and outside: a band
/// of the right size, enough counted length, and enough of it contrasted.
fn long_and_supported(m: &Measures, work: &Work, side: Side, cfg: &CollimatorConfig) -> bool {
    let side_len = side_length(work, side);
    // A collimated band must lie beyond the margin, on average at least a working pixel
    // deep (a line hugging the border has no band to judge), and must not hold most of the
    // image (then the "field" would be a corner of it).
    if m.band < m.visible.max(MIN_BAND)
        || m.band as f32 > cfg.max_band_fraction * (work.w * work.h) as f32
    {
        return false;
    }
    if (m.counted as f32) < cfg.min_length_fraction * side_len || m.counted == 0 {
        return false;
    }
    m.pass as f32 / m.counted as f32 >= cfg.min_support
}

fn accept(m: &Measures, work: &Work, side: Side, cfg: &CollimatorConfig) -> Option<Verdict> {
    if !long_and_supported(m, work, side, cfg) {
        return None;
    }
    let support = m.pass as f32 / m.counted as f32;
    // The collimated band must hold nothing bright, judged on linear values: along most of
    // the edge, nothing on the way from just outside it to the border may rise above the
    // level just outside by a good part of the step (open beam beyond a skin line, the
    // field beyond a marker's or a bone's edge). Scatter glow, which fades outwards, and
    // darker anatomy showing through the collimator are allowed. Over the whole band only
    // a small share (scatter glow) may be that bright, and just outside a collimator edge
    // few X-rays arrive: far fewer than just inside.
    if m.dark_beyond < cfg.min_dark_beyond
        || m.bright_share > cfg.max_bright_share
        || m.just_outside > cfg.max_outside_ratio * m.inside_level
    {
        return None;
    }
    // Where the edge shows, the band beyond it stays darker than the field just inside, and
    // the step runs along one straight line.
    if m.dark_rays < cfg.min_dark_rays || m.straight < cfg.min_straightness {
        return None;
    }
    // On linear input the band right beyond a blade is flat and dark (leakage and scatter);
    // beyond a skin line the tissue keeps thickening, and it passes far more of the beam.
    if !work.log_input && (m.falling > FALLING_SHARE || m.just_outside > cfg.max_outside_level) {
        return None;
    }
    // On log input the band may keep falling beyond a blade (anatomy seen through the
    // collimator keeps its log contrast), but not beside open beam with a shallow step: there
    // the band holds only leakage and scatter of the open beam, and a level that stays above
    // `OPEN_BEAM_ARM_RATIO` of the field's and keeps falling is tissue thickening beyond a
    // skin line, an arm cut by the image border.
    if work.log_input && falling_arm_beside_open_beam(m) {
        return None;
    }
    // Prefer the darkest outside: a dark, uniform band of anatomy next to the collimator
    // (bone along the field edge) also steps down, but to a level well above the collimator's.
    let darkness = (1.0 - m.just_outside / m.inside_level.max(1e-6)).clamp(0.0, 1.0);
    Some(Verdict {
        inside: m.inside_level,
        outside: m.just_outside,
        band_depth: m.band as f32 / m.visible.max(1) as f32,
        visible_share: m.visible as f32 / side_length(work, side),
        score: support * m.contrast * m.counted as f32 * darkness * darkness,
        contrast: m.contrast,
        support,
    })
}

/// The least ratio of the level just outside to the level just inside (log input, both
/// range-normalised) at which a line beside open beam whose band keeps falling is taken for
/// an arm ([`falling_arm_beside_open_beam`]). A blade beside open beam passes its leakage (at
/// most 4 % on the synth phantoms, 3.2 e-folds down) plus scatter: on the
/// [`STEP_LOOK_LOG_SPAN`] the field is taken to span, the band lies at most about 0.54 of the
/// field's level; scatter raises a flat band beyond that, but a band that keeps falling is not
/// scatter-dominated. On the fitted synth samples the true edges of log images beside open
/// beam with a falling band stepped down to 0.47–0.55, the arms to 0.64–0.70.
const OPEN_BEAM_ARM_RATIO: f32 = 0.6;

/// Whether a candidate on log input lies beside open beam (level just inside at least
/// [`STEP_LOOK_OPEN_BEAM`]), with its band falling beyond the level just outside along most of
/// the line (`falling` over [`FALLING_SHARE`], the flat-beyond test of linear input) and the
/// level just outside above [`OPEN_BEAM_ARM_RATIO`] of the level inside: an upper arm beside a
/// chest, its skin line or humerus taken for a blade, with the rest of the arm as the "band".
fn falling_arm_beside_open_beam(m: &Measures) -> bool {
    m.inside_level >= STEP_LOOK_OPEN_BEAM
        && m.falling > FALLING_SHARE
        && m.just_outside > OPEN_BEAM_ARM_RATIO * m.inside_level
}

fn hough_side(work: &Work, side: Side, cfg: &CollimatorConfig) -> Vec<Cand> {
    let (w, h) = (work.w, work.h);
    let amax = cfg.max_angle_deg.round() as i32;
    let n_theta = (2 * amax + 1) as usize;
    let phi0 = side.nominal_deg();
    let diag = ((w * w + h * h) as f32).sqrt().ceil() as i32 + 2;
    let n_rho = (2 * diag + 1) as usize;
    let trig: Vec<(f32, f32)> = (0..n_theta)
        .map(|k| {
            let a = (phi0 + (k as i32 - amax) as f32).to_radians();
            (a.cos(), a.sin())
        })
        .collect();
    let mut acc = vec![0.0f32; n_theta * n_rho];
    let gmin = cfg.min_contrast / 8.0;
    let spread = 3i32;
    for y in 1..h - 1 {
        for x in 1..w - 1 {
            let (gx, gy) = (work.gx[y * w + x], work.gy[y * w + x]);
            let m2 = gx * gx + gy * gy;
            if m2 < gmin * gmin {
                continue;
            }
            let mut rel = gy.atan2(gx).to_degrees() - phi0;
            rel -= (rel / 360.0).round() * 360.0;
            if rel.abs() > (amax + spread) as f32 {
                continue;
            }
            let m = m2.sqrt();
            let k0 = rel.round() as i32 + amax;
            for k in (k0 - spread).max(0)..=(k0 + spread).min(2 * amax) {
                let (c, s) = trig[k as usize];
                let rho = c * x as f32 + s * y as f32;
                let r = rho.round() as i32 + diag;
                acc[k as usize * n_rho + r as usize] += m;
            }
        }
    }
    // Peaks: local maxima over ±2 angle bins and ±2 offsets, strongest first.
    let mut peaks: Vec<(f32, usize, usize)> = Vec::new();
    for k in 0..n_theta {
        for r in 0..n_rho {
            let v = acc[k * n_rho + r];
            if v <= 0.0 {
                continue;
            }
            let mut is_max = true;
            'n: for dk in -2i32..=2 {
                for dr in -2i32..=2 {
                    let (kk, rr) = (k as i32 + dk, r as i32 + dr);
                    if (dk, dr) == (0, 0)
                        || kk < 0
                        || rr < 0
                        || kk >= n_theta as i32
                        || rr >= n_rho as i32
                    {
                        continue;
                    }
                    let u = acc[kk as usize * n_rho + rr as usize];
                    if u > v || (u == v && (kk, rr) < (k as i32, r as i32)) {
                        is_max = false;
                        break 'n;
                    }
                }
            }
            if is_max {
                peaks.push((v, k, r));
            }
        }
    }
    peaks.sort_by(|a, b| b.0.total_cmp(&a.0));
    peaks.truncate(12);
    peaks
        .into_iter()
        .map(|(_, k, r)| Cand {
            phi: (phi0 + (k as i32 - amax) as f32).to_radians(),
            rho: (r as i32 - diag) as f32,
            turn: k as i32 - amax,
        })
        .collect()
}

/// How far (working px) either side of a Hough peak's offset the acceptance tests also try
/// the line. The accumulator's offsets are whole working pixels and each vote is spread over
/// ±3°, so a peak can sit a pixel or two off the edge; there its "just outside" samples fall
/// in the penumbra or, a step further, its rays from the band start in brighter anatomy, and a
/// true edge failed the tests one or two pixels from where it passes them.
const OFFSET_JITTER: i32 = 2;

/// The Hough candidates of `side` that `keep` keeps and the acceptance tests accept, with
/// their verdicts, strongest peak first. Each peak's line is tried at its offset and up to
/// [`OFFSET_JITTER`] working px either side, and the best-scoring accepted one stands for it.
fn accepted_candidates(
    work: &Work,
    side: Side,
    cfg: &CollimatorConfig,
    keep: impl Fn(Cand) -> bool,
) -> Vec<(Cand, Verdict)> {
    hough_side(work, side, cfg)
        .into_iter()
        .filter(|c| keep(*c))
        .filter_map(|peak| near_peak(work, peak, side, cfg))
        .collect()
}

/// The best-scoring accepted line among `peak`'s and its shifts by up to [`OFFSET_JITTER`]
/// working px (the first of equal scores: the peak's own, then the nearer shifts).
fn near_peak(
    work: &Work,
    peak: Cand,
    side: Side,
    cfg: &CollimatorConfig,
) -> Option<(Cand, Verdict)> {
    std::iter::once(0)
        .chain((1..=OFFSET_JITTER).flat_map(|k| [-k, k]))
        .filter_map(|d| {
            let cand = Cand {
                rho: peak.rho + d as f32,
                ..peak
            };
            evaluate(work, cand, side, cfg).map(|v| (cand, v))
        })
        .reduce(|best, next| {
            if next.1.score > best.1.score {
                next
            } else {
                best
            }
        })
}

/// Each later look: the candidates of every side with none `consistent` with the field's
/// rotation are replaced by what `search` accepts for that side.
fn search_empty_sides(
    accepted: &mut [(Side, Vec<(Cand, Verdict)>)],
    consistent: impl Fn(Cand) -> bool,
    mut search: impl FnMut(Side) -> Vec<(Cand, Verdict)>,
) {
    for (side, found) in accepted.iter_mut() {
        if !found.iter().any(|(c, _)| consistent(*c)) {
            *found = search(*side);
        }
    }
}

/// The acceptance tests of the look at an image whose first look found no edge at all (see
/// `detect_collimator`): the second look's working image with no field rotation to hold
/// candidates to, so only lines at least as straight (0.95), as fully supported (0.9), with
/// as little bright beyond them (0.1 of the band) and as dark just outside (0.35 of the level
/// just inside) as the blades it is there for are taken. With the plain tests this look
/// invented edges on chests without any (an arm's skin line, a weak line through the
/// shoulder); with these it invented none on the synth studies (docs/postprocessing.md,
/// "Accuracy"). The flat-beyond and dark-beyond tests stay at least at their defaults even
/// where the configuration turns them off: at the second look's offset the far, darkest part
/// of an arm cut by the border passes the dark-beyond test, and only the flat-beyond test
/// sees the tissue thicken there. A configuration already stricter keeps its own values.
fn strict_first_edge(cfg: &CollimatorConfig) -> CollimatorConfig {
    let defaults = CollimatorConfig::default();
    CollimatorConfig {
        min_support: cfg.min_support.max(0.9),
        min_straightness: cfg.min_straightness.max(0.95),
        max_bright_share: cfg.max_bright_share.min(0.1),
        max_outside_ratio: cfg.max_outside_ratio.min(0.35),
        max_outside_fall: cfg.max_outside_fall.min(defaults.max_outside_fall),
        max_outside_level: cfg.max_outside_level.min(defaults.max_outside_level),
        ..cfg.clone()
    }
}

/// The least [`stepping_share`] of a line taken by the look for a lone blade over a bright
/// band (see [`lone_blade_over_a_bright_band`]) or at the darkest end (see
/// [`lone_blade_at_the_darkest_end`]): a blade steps down along its whole length, whatever
/// lies beyond it; with the dark-band tests or the level just outside relaxed, only a line
/// that does so along nearly all of it is taken, with no field rotation to hold it to.
const LONE_BRIGHT_BAND_STEPPING_SHARE: f32 = 0.9;

/// The tests of the look for a lone blade whose band holds collimated open beam (run when the
/// look for a lone blade found nothing): `strict` ([`strict_first_edge`]) with the dark-band
/// tests relaxed as in the relaxed look at the band (no `min_dark_beyond`, `max_bright_share`
/// 0.6, `min_dark_rays` 0.4): over a thick trunk the band beyond a blade can hold the beam
/// beside the body, passed by the blade's leakage, brighter than the band next to the edge.
/// The candidates it takes must also step down along at least
/// [`LONE_BRIGHT_BAND_STEPPING_SHARE`] of their line, with the field just inside under
/// [`STEP_LOOK_OPEN_BEAM`] (beside open beam a blade steps down by the whole range, which the
/// first look sees; a weaker step there is the body's outline).
fn lone_blade_over_a_bright_band(strict: &CollimatorConfig) -> CollimatorConfig {
    CollimatorConfig {
        min_dark_beyond: 0.0,
        max_bright_share: strict.max_bright_share.max(0.6),
        min_dark_rays: strict.min_dark_rays.min(0.4),
        ..strict.clone()
    }
}

/// The tests of the look for a lone blade over a band that the trunk's scatter fills (linear
/// input, run when the looks for a lone blade above found nothing): `strict`
/// ([`strict_first_edge`]) without the level ceiling `max_outside_level`. Beyond a skin line
/// the tissue keeps thickening and passes far more of the beam, which that ceiling is there
/// to refuse; over a thick trunk a blade's band holds the trunk's scatter, above the ceiling
/// beside a bright field, but flat (the flat-beyond test stays) and under 0.35 of the level
/// inside (an arm's strip stays at 0.40–0.70 of it, see [`WEAK_LONE_CONTRAST`]). Only lines
/// over a band at least [`WEAK_LONE_BAND_DEPTH`] deep are taken (see `detect_collimator`): an
/// arm cut by the border leaves a narrower strip.
fn lone_blade_over_scatter(strict: &CollimatorConfig) -> CollimatorConfig {
    CollimatorConfig {
        max_outside_level: 1.0,
        ..strict.clone()
    }
}

/// The relaxed look's tests (log input; see `detect_collimator`): long, straight and fully
/// supported lines (`min_support` 0.9, `min_straightness` 0.95) whose band may hold collimated
/// open beam (no `min_dark_beyond`, `max_bright_share` 0.6, `min_dark_rays` 0.4). A
/// configuration already looser or stricter keeps its own values.
fn relaxed_band_look(cfg: &CollimatorConfig) -> CollimatorConfig {
    CollimatorConfig {
        min_dark_beyond: 0.0,
        max_bright_share: cfg.max_bright_share.max(0.6),
        min_dark_rays: cfg.min_dark_rays.min(0.4),
        min_support: cfg.min_support.max(0.9),
        min_straightness: cfg.min_straightness.max(0.95),
        ..cfg.clone()
    }
}

/// On log input, the level just inside (share of the range) under which the look for a lone
/// blade with the relaxed look's tests takes a line (see `detect_collimator`). On the
/// [`STEP_LOOK_LOG_SPAN`] a log image is taken to span, half the range is about 3 % of the
/// exposure at its top: a field over a thick trunk. On the fitted synth samples the lone blades
/// of log pelvises, hips and a chest it found lay beside fields at 0.24–0.48 of the range, and
/// the lines it took on log chests without collimation (a shoulder, an upper arm) beside fields
/// at 0.51–0.56 (with 0.572, `BRIGHT_FIELD_LEVEL`'s 5 % on that span, three of them were taken).
const LONE_LOG_FIELD_LEVEL: f32 = 0.5;

/// The look for a lone blade on `work` with `tests`: every side's candidates are replaced by
/// its accepted lines among `peaks` (its Hough peaks on `work`, see [`side_peaks`]) whose
/// band is deep enough ([`LONE_EDGE_BAND_DEPTH`]), that are visible along enough of their side
/// ([`LONE_EDGE_VISIBLE_SHARE`]) and that `keep` keeps.
fn lone_blade_look(
    accepted: &mut [(Side, Vec<(Cand, Verdict)>)],
    work: &Work,
    peaks: &SidePeaks,
    tests: &CollimatorConfig,
    keep: impl Fn(Cand, &Verdict) -> bool,
) {
    // Peaks shared between looks must be the ones these tests' Hough search would give.
    debug_assert!(
        peaks.searched_as(tests),
        "Hough peaks shared with a look of other search settings"
    );
    for (side, found) in accepted.iter_mut() {
        *found = peaks
            .of(*side)
            .iter()
            .filter_map(|&peak| near_peak(work, peak, *side, tests))
            .filter(|(c, v)| {
                v.band_depth >= LONE_EDGE_BAND_DEPTH
                    && v.visible_share >= LONE_EDGE_VISIBLE_SHARE
                    && keep(*c, v)
            })
            .collect();
    }
}

/// Every side's Hough peaks on one working image, in [`Side::ALL`] order, with the two
/// settings they depend on ([`hough_side`] reads only `min_contrast` and `max_angle_deg`).
struct SidePeaks {
    sides: Vec<Vec<Cand>>,
    min_contrast: f32,
    max_angle_deg: f32,
}

impl SidePeaks {
    /// Whether `tests`' Hough search gives these peaks: the looks for a lone blade that share
    /// a working image relax other tests, never these two.
    fn searched_as(&self, tests: &CollimatorConfig) -> bool {
        self.min_contrast == tests.min_contrast && self.max_angle_deg == tests.max_angle_deg
    }

    /// The peaks of `side`.
    fn of(&self, side: Side) -> &[Cand] {
        let i = Side::ALL.iter().position(|&s| s == side).unwrap_or(0);
        &self.sides[i]
    }
}

/// Every side's Hough peaks on `work` ([`hough_side`]): computed once for the looks for a
/// lone blade that share a working image.
fn side_peaks(work: &Work, cfg: &CollimatorConfig) -> SidePeaks {
    SidePeaks {
        sides: Side::ALL
            .iter()
            .map(|&side| hough_side(work, side, cfg))
            .collect(),
        min_contrast: cfg.min_contrast,
        max_angle_deg: cfg.max_angle_deg,
    }
}

/// Whether `cand` steps down along at least [`LONE_BRIGHT_BAND_STEPPING_SHARE`] of its line:
/// the blade's own signature, which stands in for the field rotation the looks with relaxed
/// tests for a lone blade do not have.
fn steps_down_nearly_everywhere(work: &Work, cand: Cand) -> bool {
    stepping_share(work, (cand.phi.cos(), cand.phi.sin()), cand.rho)
        >= LONE_BRIGHT_BAND_STEPPING_SHARE
}

/// The third look's tests (linear input; see `detect_collimator`): its contrast asks for the
/// same exposure ratio as the first look's, and the flat-beyond test is left out.
fn darkest_look(cfg: &CollimatorConfig) -> CollimatorConfig {
    let lr = |e: f32| ((1.0 + e) / e).ln();
    CollimatorConfig {
        min_contrast: cfg.min_contrast * lr(LOG_OFFSET) / lr(DARKEST_LOG_OFFSET),
        max_outside_fall: 1.0,
        ..cfg.clone()
    }
}

/// The third look's working image: compressed at [`DARKEST_LOG_OFFSET`], its band allowed to
/// hold collimated open beam up to `max_outside_level` without counting as bright.
fn darkest_work<'a>(down: &'a Downsampled, cfg: &CollimatorConfig) -> Work<'a> {
    Work {
        band_ceiling: cfg.max_outside_level,
        ..build_work(down, cfg, DARKEST_LOG_OFFSET)
    }
}

/// The tests of the look for a lone blade at the darkest end (linear input, run when the looks
/// for a lone blade above found nothing): the third look's ([`darkest_look`]) with the lone
/// looks' straightness (0.95), support (0.9) and bright share (0.1; see
/// [`strict_first_edge`]). The level just outside keeps the plain `max_outside_ratio`: over a
/// thick trunk the band's scatter is large next to the primary (the lone blades of linear hips
/// this look is for stepped down to 0.26–0.54 of the field's level), and what keeps anatomy
/// out instead is a field under [`BRIGHT_FIELD_LEVEL`] and a step along nearly the whole line
/// (see `detect_collimator`).
fn lone_blade_at_the_darkest_end(cfg: &CollimatorConfig) -> CollimatorConfig {
    let darkest = darkest_look(cfg);
    CollimatorConfig {
        min_support: darkest.min_support.max(0.9),
        min_straightness: darkest.min_straightness.max(0.95),
        max_bright_share: darkest.max_bright_share.min(0.1),
        ..darkest
    }
}

/// While the field's rotation (from the first look's candidates) leaves one side alone with
/// candidates at it, drops that side's weak lone lines at the rotation (see
/// [`weak_lone_edge`]), except blades over a thick trunk ([`blade_over_a_thick_trunk`], judged
/// on `work`), and takes the rotation again from what is left. Every round drops a candidate
/// or stops. Returns the field's rotation from what is left ([`field_rotation`]).
fn drop_lone_arms(
    accepted: &mut [(Side, Vec<(Cand, Verdict)>)],
    spread: f32,
    work: &Work,
) -> Option<f32> {
    loop {
        let r = field_rotation(accepted, spread)?;
        let at = |c: &Cand| rotation_gap(c.rotation(), r) <= spread;
        let mut sides = accepted
            .iter_mut()
            .filter(|(_, found)| found.iter().any(|(c, _)| at(c)));
        let (Some((_, found)), None) = (sides.next(), sides.next()) else {
            return Some(r);
        };
        let before = found.len();
        found.retain(|(c, v)| {
            !(at(c) && weak_lone_edge(v) && !blade_over_a_thick_trunk(work, *c, v))
        });
        if found.len() == before {
            return Some(r);
        }
    }
}

/// The difference between two field rotations, in degrees: a rectangle turned by `r` is the
/// one turned by `r ± 90°`, so it is taken modulo 90, within ±45.
fn rotation_gap(a: f32, b: f32) -> f32 {
    let d = a - b;
    (d - 90.0 * (d / 90.0).round()).abs()
}

/// How much a candidate rotated `gap` degrees from the field's rotation counts, for a
/// largest spread of `spread` degrees: 1 at the rotation, falling as `1 − (gap/(spread+1))²`
/// (0.36 at the spread for 4°), 0 beyond it. A strong edge leaves a ridge of accepted
/// candidates through the middle of its visible length at neighbouring angles, all scoring
/// alike; weighting them by their gap makes the field's rotation the one its strongest edges
/// agree on, not the middle of a ridge, and lets each side take the line at that rotation.
fn rotation_weight(gap: f32, spread: f32) -> f32 {
    if gap > spread {
        0.0
    } else {
        (1.0 - (gap / (spread + 1.0)).powi(2)).max(0.0)
    }
}

/// The rotation of the collimated field (see [`CollimatorConfig::rotation_spread_deg`]):
/// each accepted candidate's rotation is tried, and the one whose sides' best candidates
/// within `spread` of it, weighted by [`rotation_weight`], score highest in sum wins (the
/// smaller rotation on a tie). `None` when nothing was accepted.
fn field_rotation(accepted: &[(Side, Vec<(Cand, Verdict)>)], spread: f32) -> Option<f32> {
    let support = |r: f32| -> f32 {
        accepted
            .iter()
            .map(|(_, found)| {
                found
                    .iter()
                    .map(|(c, v)| v.score * rotation_weight(rotation_gap(c.rotation(), r), spread))
                    .fold(0.0f32, f32::max)
            })
            .sum()
    };
    accepted
        .iter()
        .flat_map(|(_, found)| found.iter().map(|(c, _)| c.rotation()))
        .map(|r| (support(r), r))
        .max_by(|a, b| a.0.total_cmp(&b.0).then(b.1.abs().total_cmp(&a.1.abs())))
        .map(|(_, r)| r)
}

/// A side's edge among its accepted candidates: with the field's `rotation` (rotation,
/// spread), the candidate within the spread whose score weighted by [`rotation_weight`] is
/// highest; without, the highest score. The first of equal ones (the stronger Hough peak).
fn best_at_rotation(
    found: Vec<(Cand, Verdict)>,
    rotation: Option<(f32, f32)>,
) -> Option<(Cand, Verdict)> {
    let weighted = |(cand, verdict): &(Cand, Verdict)| {
        verdict.score
            * rotation.map_or(1.0, |(r, spread)| {
                rotation_weight(rotation_gap(cand.rotation(), r), spread)
            })
    };
    found
        .into_iter()
        .filter(|(cand, _)| {
            rotation.is_none_or(|(r, spread)| rotation_gap(cand.rotation(), r) <= spread)
        })
        .reduce(|best, next| {
            if weighted(&next) > weighted(&best) {
                next
            } else {
                best
            }
        })
}

/// Finds the exposed field of a radiograph (larger value = more X-rays; linear or log).
///
/// # Examples
/// ```
/// use xray_postproc::{detect_collimator, CollimatorConfig, Plane, Side};
/// // 64 x 64, collimated (dark) left of x = 15.5, open beam elsewhere.
/// let img: Vec<f32> = (0..64 * 64).map(|i| if i % 64 < 16 { 10.0 } else { 1000.0 }).collect();
/// let c = detect_collimator(&Plane::new(&img, 64, 64).unwrap(), &CollimatorConfig::default()).unwrap();
/// let left = c.edge(Side::Left).unwrap();
/// assert!((left.line.signed_distance(15.5, 30.0)).abs() < 0.5);
/// assert_eq!(c.edges.len(), 1);
/// ```
///
/// # Errors
/// When `cfg` fails [`CollimatorConfig::validate`]. A flat or tiny image (under 8 working
/// pixels a side) is not an error: it gives no edges.
pub fn detect_collimator(img: &Plane, cfg: &CollimatorConfig) -> Result<Collimator> {
    cfg.validate()?;
    let mut out = Collimator {
        width: img.width(),
        height: img.height(),
        edges: Vec::new(),
    };
    let log_input = match cfg.input_scale {
        InputScale::Auto => looks_log(img),
        InputScale::Linear => false,
        InputScale::Log => true,
    };
    let Some(down) = downsample(img, cfg, log_input) else {
        return Ok(out);
    };
    let work = build_work(&down, cfg, LOG_OFFSET);
    let mut accepted: Vec<(Side, Vec<(Cand, Verdict)>)> = Side::ALL
        .iter()
        .map(|&side| (side, accepted_candidates(&work, side, cfg, |_| true)))
        .collect();
    // Lines on the only side with any at the field's rotation have no other edge to agree
    // with; among them a weak step over a narrow strip is an arm cut by the border, not a
    // blade (see `weak_lone_edge`), unless it lies beside a field too dark for an arm and
    // steps down along nearly its whole length: a blade over a thick trunk, where scatter
    // makes any blade's step weak (see `blade_over_a_thick_trunk`). Only with the
    // one-rectangle rule: judged side by side, every side stands alone.
    let mut rotation = cfg
        .rotation_spread_deg
        .and_then(|spread| drop_lone_arms(&mut accepted, spread, &work).map(|r| (r, spread)));
    // Nothing found at all: a lone blade over thick anatomy (a pelvis's top edge, a hip's
    // side) leaves field and band both within a few per cent of the range, which the first
    // look compresses below its contrast. Its sides are searched once on the second look's
    // working image, taking only lines that are straight, fully supported and hold almost
    // nothing bright beyond them (see `strict_first_edge`); an edge found this way gives the
    // field its rotation for the looks below.
    let mut faint: Option<Work> = None;
    // The third look's working image (see below), which the look for a lone blade at the
    // darkest end may build first.
    let mut darkest: Option<Work> = None;
    if rotation.is_none() && cfg.log_compress {
        if let Some(spread) = cfg.rotation_spread_deg {
            let faint_work = faint.insert(build_work(&down, cfg, FAINT_LOG_OFFSET));
            let strict = strict_first_edge(cfg);
            let faint_peaks = side_peaks(faint_work, &strict);
            lone_blade_look(&mut accepted, faint_work, &faint_peaks, &strict, |_, _| {
                true
            });
            rotation = field_rotation(&accepted, spread).map(|r| (r, spread));
            // Still nothing: a lone blade over a thick trunk whose band holds collimated open
            // beam (the beam beside the body, passed by the blade's leakage), brighter than
            // the band next to the edge, fails the dark-band tests above. The band tests are
            // relaxed as in the relaxed look below, and what stands for the rotation that look
            // has is the blade's own signature: the exposure steps down along (nearly) the
            // whole line, and the field just inside is not open beam (see
            // `lone_blade_over_a_bright_band`).
            if rotation.is_none() {
                let loose = lone_blade_over_a_bright_band(&strict);
                lone_blade_look(&mut accepted, faint_work, &faint_peaks, &loose, |c, v| {
                    v.inside < STEP_LOOK_OPEN_BEAM && steps_down_nearly_everywhere(faint_work, c)
                });
                rotation = field_rotation(&accepted, spread).map(|r| (r, spread));
            }
            // Still nothing on linear input: over a thick hip or pelvis a lone blade can leave
            // the field under 1 % of the range and the band at half of that, which even the
            // second look's offset compresses below the support it needs; only the third
            // look's working image spreads them, and that look needs a rotation. The third
            // look's tests are used with the lone looks' straightness, support and bright
            // share (see `lone_blade_at_the_darkest_end`), for lines beside a field under
            // BRIGHT_FIELD_LEVEL (an arm's skin line or bone beside a chest lies beside a
            // brighter one) that step down along nearly their whole length.
            if rotation.is_none() && !log_input {
                let dark_work = darkest.insert(darkest_work(&down, cfg));
                let lone = lone_blade_at_the_darkest_end(cfg);
                let dark_peaks = side_peaks(dark_work, &lone);
                lone_blade_look(&mut accepted, dark_work, &dark_peaks, &lone, |c, v| {
                    v.inside < BRIGHT_FIELD_LEVEL && steps_down_nearly_everywhere(dark_work, c)
                });
                rotation = field_rotation(&accepted, spread).map(|r| (r, spread));
            }
            // Still nothing on linear input: over a thick trunk the trunk's scatter can fill
            // the band beyond a lone blade to a level above `max_outside_level` (0.19–0.29 of
            // the range beside fields at 0.55–0.86 on the fitted synth samples) while the band
            // stays flat and the level just outside under the lone looks' 0.35 of the level
            // inside. The strict look's tests are used without the level ceiling, for lines
            // over a band at least WEAK_LONE_BAND_DEPTH deep (see `lone_blade_over_scatter`).
            if rotation.is_none() && !log_input {
                let scatter = lone_blade_over_scatter(&strict);
                lone_blade_look(&mut accepted, faint_work, &faint_peaks, &scatter, |_, v| {
                    v.band_depth >= WEAK_LONE_BAND_DEPTH
                });
                rotation = field_rotation(&accepted, spread).map(|r| (r, spread));
            }
            // Still nothing on log input: the lone blades of log pelvises and hips that no look
            // above takes pass the relaxed look's tests below (the band beyond them holds
            // collimated open beam, and the level just outside reaches 0.38–0.63 of the level
            // inside, which the lone looks' 0.35 refuses), and that look needs a rotation. They
            // are searched for with those tests on the first look's working image, beside a
            // field under LONE_LOG_FIELD_LEVEL (the upper arms and shoulders of log chests
            // without collimation lie beside brighter ones) and stepping down along nearly
            // their whole length.
            if rotation.is_none() && log_input {
                let relaxed = relaxed_band_look(cfg);
                let peaks = side_peaks(&work, &relaxed);
                lone_blade_look(&mut accepted, &work, &peaks, &relaxed, |c, v| {
                    v.inside < LONE_LOG_FIELD_LEVEL && steps_down_nearly_everywhere(&work, c)
                });
                rotation = field_rotation(&accepted, spread).map(|r| (r, spread));
            }
        }
    }
    let consistent =
        |cand: Cand| rotation.is_none_or(|(r, spread)| rotation_gap(cand.rotation(), r) <= spread);
    // A side with no edge at the field's rotation is searched again on a working image
    // whose log compression spreads the dark end (a blade over a thick trunk: field and band
    // both within a few per cent of the range), for candidates at that rotation only.
    if rotation.is_some() && cfg.log_compress {
        search_empty_sides(&mut accepted, consistent, |side| {
            let faint = faint.get_or_insert_with(|| build_work(&down, cfg, FAINT_LOG_OFFSET));
            accepted_candidates(faint, side, cfg, consistent)
        });
        // A third look, on linear input, at sides still empty: the darkest end, for edges
        // over thick anatomy, whose field and band the first two looks compress together.
        // Its contrast asks for the same exposure ratio as the first look's; the flat-beyond
        // test is left out (over a thick trunk the band's scatter glow falls by more than
        // that test allows, on blades the first looks refused for it alone), and the band
        // may hold collimated open beam up to `max_outside_level` (brighter than the field
        // over a thick trunk). What keeps arms out: candidates at the field's rotation only,
        // the level just outside under `max_outside_level` as in the first look (an arm's
        // strip beside a chest lies above it), and, beside a field above
        // BRIGHT_FIELD_LEVEL, a step down to at most DARKEST_LOOK_OUTSIDE_RATIO of it.
        if !log_input {
            let darkest_cfg = darkest_look(cfg);
            search_empty_sides(&mut accepted, consistent, |side| {
                let work = darkest.get_or_insert_with(|| darkest_work(&down, cfg));
                accepted_candidates(work, side, &darkest_cfg, consistent)
                    .into_iter()
                    .filter(|(_, v)| {
                        let (inside, outside) = (v.inside.ln(), v.outside.ln());
                        !shallow_beside_bright_field(
                            inside,
                            inside - outside,
                            BRIGHT_FIELD_LEVEL,
                            DARKEST_LOOK_OUTSIDE_RATIO,
                        )
                    })
                    .collect()
            });
        }
    }
    // On log input, a side still without an edge at the field's rotation is searched once
    // more on the first working image with the dark-band tests relaxed, for lines within
    // RELAXED_ROTATION_GAP of the rotation that are long, straight and fully supported: the
    // band beyond a blade over a thick trunk can hold collimated open beam (the beam beside
    // the body, attenuated by the blade's leakage), brighter than the band next to the edge.
    // On log output that beam can stand above the band next to the edge by more than a third
    // of the edge's step on almost every ray (its log contrast against the body survives the
    // blade), so the look does not ask for any dark-beyond share; the rays must still stay
    // clear of the field's level (`min_dark_rays`), and most of the band must not be bright.
    if let (true, Some((r, _))) = (log_input, rotation) {
        let relaxed = relaxed_band_look(cfg);
        let tight = |c: Cand| rotation_gap(c.rotation(), r) <= RELAXED_ROTATION_GAP;
        search_empty_sides(&mut accepted, consistent, |side| {
            accepted_candidates(&work, side, &relaxed, tight)
        });
    }
    for (side, found) in accepted {
        let best = best_at_rotation(found, rotation);
        let Some((cand, verdict)) = best else {
            continue;
        };
        out.edges.push(FieldEdge {
            side,
            line: work.input_line((cand.phi.cos(), cand.phi.sin()), cand.rho),
            // Every edge's contrast is measured alike once all are refined, below.
            contrast: 0.0,
            support: verdict.support,
        });
    }
    // Linearises log profiles in the refinement (see `linearise`); 0 for linear input.
    let k = if log_input { cfg.log_contrast } else { 0.0 };
    if cfg.refine && !out.edges.is_empty() {
        let coarse: Vec<Line> = out.edges.iter().map(|e| e.line).collect();
        for (i, e) in out.edges.iter_mut().enumerate() {
            let others: Vec<Line> = coarse
                .iter()
                .enumerate()
                .filter(|(j, _)| *j != i)
                .map(|(_, l)| *l)
                .collect();
            e.line = refine(img, coarse[i], &others, work.f, k);
        }
    }
    // A last look at sides still without an edge, now that the found edges give the field's
    // rotation to sub-pixel accuracy: a blade missed by every look above is often still a
    // clean step along the whole line at that rotation (see `step_look`).
    if cfg.rotation_spread_deg.is_some() {
        for (side, line, share) in step_look(&work, &out.edges) {
            let others: Vec<Line> = out.edges.iter().map(|e| e.line).collect();
            let line = if cfg.refine {
                refine(img, line, &others, work.f, k)
            } else {
                line
            };
            out.edges.push(FieldEdge {
                side,
                line,
                contrast: 0.0,
                support: share,
            });
        }
        out.edges.sort_by_key(|e| e.side.index());
    }
    for e in out.edges.iter_mut() {
        e.contrast = edge_step(&work, &e.line);
    }
    Ok(out)
}

/// The median step of the log exposure across `line` (input coordinates), e-folds: what
/// [`FieldEdge::contrast`] reports (see [`step_exposure`], [`across_line`]).
fn edge_step(work: &Work, line: &Line) -> f32 {
    let rho = work.working_offset(line);
    median_step(&across_line(
        work.exposure,
        work.w,
        work.h,
        (line.nx, line.ny),
        rho,
    ))
}

/// The median of the inside samples minus the median of the outside ones (see
/// [`across_line`]).
fn median_step(samples: &[(f32, f32)]) -> f32 {
    median(samples.iter().map(|s| s.0).collect()) - median(samples.iter().map(|s| s.1).collect())
}

/// The mean step (inside minus outside) over each whole stretch of [`STEP_LOOK_STRETCH`]
/// samples along a line (see [`across_line`]).
fn stretch_steps(samples: &[(f32, f32)]) -> Vec<f32> {
    samples
        .chunks_exact(STEP_LOOK_STRETCH)
        .map(|c| c.iter().map(|s| s.0 - s.1).sum::<f32>() / c.len() as f32)
        .collect()
}

/// The step look's least step across a line, in e-folds of the exposure (see [`step_look`]).
const STEP_LOOK_MIN_STEP: f32 = 0.2;
/// The step look's least share of a line's stretches that show at least half its step.
const STEP_LOOK_MIN_SHARE: f32 = 0.7;
/// How deep into the image (share of its extent across the side) the step look searches.
const STEP_LOOK_DEPTH: f32 = 0.3;
/// Working px either side of a line at which the step look compares levels.
const STEP_LOOK_REACH: f32 = 2.0;
/// Working samples per stretch of a line, for the step look's share.
const STEP_LOOK_STRETCH: usize = 8;
/// The e-folds a log-processed input's range is taken to span in the step look (the
/// phantoms' CR-like output spans 2.5–4 decades, 6–9 e-folds, from open beam to zero).
const STEP_LOOK_LOG_SPAN: f32 = 7.0;
/// The step look takes no line whose level just inside is at least this share of the range:
/// that is open beam, beside which a blade steps down by the whole range (its leakage passes
/// a few per cent), which the first look always sees. A weaker step there is the body's
/// outline (a shoulder, an arm), not a blade.
const STEP_LOOK_OPEN_BEAM: f32 = 0.9;
/// A third look line whose field just inside receives at least this share of the exposure at
/// the top of the range must step down to at most [`DARKEST_LOOK_OUTSIDE_RATIO`] of it (a step
/// look line, from [`STEP_LOOK_BRIGHT_FIELD_LEVEL`] on, to [`WEAK_LONE_OUTSIDE_RATIO`]): behind
/// a blade only leakage and scatter arrive, and only where the field itself is dark (a thick
/// trunk, whose scatter is large next to its primary) does the band come close to the field's
/// level. A shallower step beside a bright field is anatomy: an arm cut by the border (whose
/// strip stays at 0.40–0.70 of the level inside, see [`WEAK_LONE_CONTRAST`]), a limb's
/// outline seen through the presentation mask.
const BRIGHT_FIELD_LEVEL: f32 = 0.05;
/// The third look's largest level just outside a line beside a field above
/// [`BRIGHT_FIELD_LEVEL`], as a share of the level just inside (linear, range-normalised
/// values). Looser than the step look's [`WEAK_LONE_OUTSIDE_RATIO`]: the blades this look
/// finds lie over thick trunks whose scatter glows in the band next to the edge; those the
/// first two looks refused on the synth studies stepped down to 0.12–0.5 of their field
/// (5th–95th percentile), and a step to two thirds of a field at 12 % of the range is refused
/// (tests/collimator.rs).
const DARKEST_LOOK_OUTSIDE_RATIO: f32 = 0.62;

/// The step look's field level (share of the exposure at the top of the range) from which a
/// line must step down to at most [`WEAK_LONE_OUTSIDE_RATIO`] of it (see
/// [`BRIGHT_FIELD_LEVEL`], which it was until 2026-12-01, session 35 (1)). On the fitted synth
/// samples the blades the step look refused for a shallow step alone (pelvis and chest views
/// with other edges found) stepped down to 0.44–0.76 of their field (the trunk's scatter fills
/// the band next to the edge); six of them lay beside fields at 5–16 % of the top exposure,
/// while the lines it refused so that were no blades (upper arms beside chests, a knee's
/// outline on log output) lay beside fields at 21 % and more (16 % and more on seeds
/// 1001–1006). The other five lay beside fields at 35–56 %, among the arms, and stay refused.
/// A tenth,
/// not more: a step to two thirds of a field at 12 % of the beam stays refused
/// (tests/collimator.rs, `a_faint_blade_over_a_dense_trunk_is_found_at_the_dark_end`). Under
/// it the look takes a step to any level, as under [`BRIGHT_FIELD_LEVEL`] before; what keeps
/// anatomy out there is the step along the whole line at the field's rotation.
const STEP_LOOK_BRIGHT_FIELD_LEVEL: f32 = 0.1;

/// Whether a step of `step` e-folds down from a field whose exposure just inside is `inside`
/// (natural log of its share of the top of the range) is too shallow for a blade beside a
/// field that bright: at `level` (share of the top of the range) or above, the band must
/// fall to at most `max_ratio` of the field's level.
fn shallow_beside_bright_field(inside: f32, step: f32, level: f32, max_ratio: f32) -> bool {
    inside >= level.ln() && step < -max_ratio.ln()
}

/// Samples across a line at `rho` (working units, inward unit normal `n`) of a working
/// plane `p`: the values [`STEP_LOOK_REACH`] inside and outside, where both lie in the image.
fn across_line(p: &[f32], w: usize, h: usize, n: (f32, f32), rho: f32) -> Vec<(f32, f32)> {
    let (nx, ny) = n;
    let (fx, fy) = (nx * rho, ny * rho);
    let reach = (w + h) as i32;
    let r = STEP_LOOK_REACH;
    // Only the steps along the line where both samples can lie in the image: each of their
    // coordinates, a + b·t, must stay within 0..=len. Widened by a step either side against
    // rounding; the samples themselves are still checked.
    let mut lo = -reach as f32;
    let mut hi = reach as f32;
    for (a, b, len) in [
        (fx + r * nx, -ny, (w - 1) as f32),
        (fx - r * nx, -ny, (w - 1) as f32),
        (fy + r * ny, nx, (h - 1) as f32),
        (fy - r * ny, nx, (h - 1) as f32),
    ] {
        if b.abs() < 1e-6 {
            // Moves by under 0.002 px over the whole range of steps.
            if !(-1.0..=len + 1.0).contains(&a) {
                return Vec::new();
            }
            continue;
        }
        let (t0, t1) = ((0.0 - a) / b, (len - a) / b);
        lo = lo.max(t0.min(t1));
        hi = hi.min(t0.max(t1));
    }
    if lo > hi {
        return Vec::new();
    }
    let first = (lo.floor() as i32 - 1).max(-reach);
    let last = (hi.ceil() as i32 + 1).min(reach);
    (first..=last)
        .filter_map(|t| {
            let (x, y) = (fx - t as f32 * ny, fy + t as f32 * nx);
            Some((
                bilinear(p, w, h, x + r * nx, y + r * ny)?,
                bilinear(p, w, h, x - r * nx, y - r * ny)?,
            ))
        })
        .collect()
}

/// The step looks' plane: log exposure, from linear input with the third look's offset at the
/// dark end (where the faint blades the step look is for lie), from log input scaled by
/// [`STEP_LOOK_LOG_SPAN`].
fn step_exposure(lin: &[f32], log_input: bool) -> Vec<f32> {
    lin.iter()
        .map(|&l| {
            if log_input {
                l * STEP_LOOK_LOG_SPAN
            } else {
                (l.max(0.0) + DARKEST_LOG_OFFSET).ln()
            }
        })
        .collect()
}

/// The share of a line's stretches ([`STEP_LOOK_STRETCH`] samples along it) across which the
/// log exposure steps down outwards by more than [`STEPPING_MIN_STEP`], [`STEP_LOOK_REACH`]
/// working px either side (1 when no whole stretch lies in the image). `n` is the inward unit
/// normal and `rho` the offset, working units.
fn stepping_share(work: &Work, n: (f32, f32), rho: f32) -> f32 {
    let stretches = stretch_steps(&across_line(work.exposure, work.w, work.h, n, rho));
    share_over(&stretches, STEPPING_MIN_STEP)
}

/// The share of `stretches` (see [`stretch_steps`]) whose step exceeds `min` (1 when there
/// are none).
fn share_over(stretches: &[f32], min: f32) -> f32 {
    if stretches.is_empty() {
        return 1.0;
    }
    stretches.iter().filter(|&&d| d > min).count() as f32 / stretches.len() as f32
}

/// The step (e-folds) a stretch of a line must show to count in [`stepping_share`].
const STEPPING_MIN_STEP: f32 = 0.1;

/// The least [`stepping_share`] of any look's candidate: a blade's edge steps down along its
/// whole length, whatever lies beyond it, while a line through anatomy that the other tests
/// take (a pelvis's outline running into a dark band at a corner, a line across a hip beside
/// its blade) steps down along only part of it. Measured at the refined edges of five synth
/// samples of 400 (docs/postprocessing.md), the true edges showed 0.33 at the least (one
/// under 0.5 in 3,142) and the wrong ones down to 0.13; 0.4 on the candidates was the best of
/// 0.2–0.5 there.
const MIN_STEPPING_SHARE: f32 = 0.4;

/// The median of `v`: [`percentile_sorted`]'s element at 0.5, found by selection instead of
/// a full sort (0 when empty).
fn median(mut v: Vec<f32>) -> f32 {
    if v.is_empty() {
        return 0.0;
    }
    let i = ((v.len() - 1) as f32 * 0.5).round() as usize;
    *v.select_nth_unstable_by(i, f32::total_cmp).1
}

/// The last look, at the sides still without an edge once the field's edges are found and
/// refined: the field is a rectangle, so a missing side's blade lies at the rotation of the
/// first found edge (in [`Side::ALL`] order), and along it the exposure steps down across
/// the whole line, however faint the step (a blade over a thick trunk, field and band both
/// in the dark end) and whatever lies beyond it. For each such side, among the lines at that
/// rotation within [`STEP_LOOK_DEPTH`] of the border and visible along at least a fifth of
/// the side, the one with the largest median step (log exposure [`STEP_LOOK_REACH`] working
/// px inside minus outside) is taken when that step is at least [`STEP_LOOK_MIN_STEP`]
/// e-folds, at least [`STEP_LOOK_MIN_SHARE`] of its stretches show half of it, and it is
/// not the body's outline, an arm or a limb's outline ([`STEP_LOOK_OPEN_BEAM`],
/// [`STEP_LOOK_BRIGHT_FIELD_LEVEL`]). Returns (side, line in input coordinates, share).
fn step_look(work: &Work, edges: &[FieldEdge]) -> Vec<(Side, Line, f32)> {
    let Some(first) = edges.first() else {
        return Vec::new();
    };
    let (w, h, lin, log_input) = (work.w, work.h, work.lin, work.log_input);
    let exposure = work.exposure;
    // The inward normal of side k: the first edge's normal turned by quarter turns.
    let j = first.side.index();
    let normal = |k: usize| {
        let (mut nx, mut ny) = (first.line.nx, first.line.ny);
        for _ in 0..(k + 4 - j) % 4 {
            (nx, ny) = (-ny, nx);
        }
        (nx, ny)
    };
    let corners = [
        (0.0, 0.0),
        ((w - 1) as f32, 0.0),
        (0.0, (h - 1) as f32),
        ((w - 1) as f32, (h - 1) as f32),
    ];
    let mut out = Vec::new();
    for (k, &side) in Side::ALL.iter().enumerate() {
        if edges.iter().any(|e| e.side == side) {
            continue;
        }
        let n = normal(k);
        let (lo, hi) = corners
            .iter()
            .fold((f32::MAX, f32::MIN), |(a, b), &(x, y)| {
                let d = n.0 * x + n.1 * y;
                (a.min(d), b.max(d))
            });
        let side_len = if n.0.abs() > n.1.abs() { h } else { w } as f32;
        // (median step, offset) of the line with the largest step, and its samples.
        let mut best: Option<(f32, f32)> = None;
        let mut best_samples = Vec::new();
        let mut rho = lo;
        while rho <= lo + STEP_LOOK_DEPTH * (hi - lo) {
            let samples = across_line(exposure, w, h, n, rho);
            if samples.len() as f32 >= 0.2 * side_len && samples.len() >= STEP_LOOK_STRETCH {
                let step = median_step(&samples);
                if best.is_none_or(|b| step > b.0) {
                    best = Some((step, rho));
                    best_samples = samples;
                }
            }
            rho += 1.0;
        }
        let Some((step, rho)) = best else {
            continue;
        };
        let share = share_over(&stretch_steps(&best_samples), step / 2.0);
        let inside = median(across_line(lin, w, h, n, rho).iter().map(|s| s.0).collect());
        // The exposure just inside in e-folds below the top of the range.
        let inside_exposure = if log_input {
            (inside - 1.0) * STEP_LOOK_LOG_SPAN
        } else {
            inside.max(f32::MIN_POSITIVE).ln()
        };
        let shallow = shallow_beside_bright_field(
            inside_exposure,
            step,
            STEP_LOOK_BRIGHT_FIELD_LEVEL,
            WEAK_LONE_OUTSIDE_RATIO,
        );
        if step >= STEP_LOOK_MIN_STEP
            && share >= STEP_LOOK_MIN_SHARE
            && inside < STEP_LOOK_OPEN_BEAM
            && (!shallow || blade_over_a_deep_band(work, n, rho, step, best_samples.len()))
        {
            out.push((side, work.input_line(n, rho), share));
        }
    }
    out
}

/// Whether a step look line at `rho` (inward unit normal `n`, working units) that steps down
/// by `step` e-folds along `visible` samples, too shallow a step beside a bright field
/// ([`shallow_beside_bright_field`]), is still a blade: its band is on average at least
/// [`WEAK_LONE_BAND_DEPTH`] working px deep and the step goes down to at most
/// [`DARKEST_LOOK_OUTSIDE_RATIO`] of the field's level. The shallow steps beside bright fields
/// that are no blades are arms cut by the image border, whose strip is narrower (the arm
/// rule's depth: at most 25 working px on the synth studies), and limbs' outlines on log
/// output, which step down less (to 0.74–0.78 of the field on the fitted synth samples); blades
/// over linear chests and pelvises whose band the trunk's scatter fills step down to 0.45–0.47
/// of fields at 36–44 % of the top exposure over bands 56 working px deep (seed 303's chest
/// 311, seed 41's pelvis 23; docs/postprocessing.md, session 35 (1)).
fn blade_over_a_deep_band(work: &Work, n: (f32, f32), rho: f32, step: f32, visible: usize) -> bool {
    if step < -DARKEST_LOOK_OUTSIDE_RATIO.ln() {
        return false;
    }
    let cand = Cand {
        phi: n.1.atan2(n.0),
        rho,
        turn: 0,
    };
    let band: usize = band_rows(work, cand).map(|(_, lo, hi)| hi - lo).sum();
    band as f32 >= WEAK_LONE_BAND_DEPTH * visible.max(1) as f32
}

/// Sub-pixel refinement on the full-resolution image (two passes, narrowing the window).
/// `k` linearises log-processed profiles (see [`linearise`]); 0 for linear input.
fn refine(img: &Plane, coarse: Line, others: &[Line], f: usize, k: f32) -> Line {
    let mut line = coarse;
    for &r in &[(4 * f + 8) as f32, (2 * f + 6) as f32] {
        if let Some(l) = refine_pass(img, line, others, r, k) {
            // A refinement that wanders off (profiles dominated by anatomy) is not trusted.
            let (w, h) = (img.width(), img.height());
            let turned = (l.nx * coarse.nx + l.ny * coarse.ny)
                .clamp(-1.0, 1.0)
                .acos()
                .to_degrees();
            if turned < 3.0 && edge_distance(&l, &coarse, w, h).is_some_and(|d| d <= r) {
                line = l;
            }
        }
    }
    line
}

/// One pass: profiles across the edge averaged over short chunks along it, each normalised
/// to its plateaus and linearised, the half-level crossing per chunk, then a robust line fit.
fn refine_pass(img: &Plane, line: Line, others: &[Line], radius: f32, k: f32) -> Option<Line> {
    let (w, h) = (img.width(), img.height());
    let data = img.data();
    let ((x0, y0), (x1, y1)) = line.clip_to(w, h)?;
    let len = ((x1 - x0).powi(2) + (y1 - y0).powi(2)).sqrt();
    let (tx, ty) = ((x1 - x0) / len.max(1e-6), (y1 - y0) / len.max(1e-6));
    let (nx, ny) = (line.nx, line.ny);
    let chunk = (radius / 2.0).clamp(8.0, 24.0);
    let n_chunks = (len / chunk).floor() as usize;
    let r = radius.ceil() as i32;
    let n_u = (2 * r + 1) as usize;
    // (position along the edge, profile normalised to its plateaus, plateau difference).
    let mut chunks: Vec<(f32, Vec<f32>, f32)> = Vec::new();
    let mut prof = vec![0.0f32; n_u];
    let mut cnt = vec![0u32; n_u];
    for ci in 0..n_chunks {
        prof.iter_mut().for_each(|p| *p = 0.0);
        cnt.iter_mut().for_each(|c| *c = 0);
        let s_start = ci as f32 * chunk;
        let steps = chunk as usize;
        // Chunks near or beyond another edge mix two edges' profiles: skip them.
        let (mx, my) = (
            x0 + (s_start + chunk / 2.0) * tx,
            y0 + (s_start + chunk / 2.0) * ty,
        );
        if others
            .iter()
            .any(|o| o.signed_distance(mx, my) < radius + chunk / 2.0)
        {
            continue;
        }
        for si in 0..steps {
            let s = s_start + si as f32 + 0.5;
            let (px, py) = (x0 + s * tx, y0 + s * ty);
            for (k, (p, c)) in prof.iter_mut().zip(cnt.iter_mut()).enumerate() {
                let u = k as f32 - r as f32;
                if let Some(v) = bilinear(data, w, h, px + u * nx, py + u * ny) {
                    *p += v;
                    *c += 1;
                }
            }
        }
        // The inside must be fully sampled; the outside may be cut short by the image border
        // (a thin band), as long as a few pixels of its plateau remain.
        let full = |c: &u32| (*c as usize) >= steps / 2;
        let first = cnt.iter().rposition(|c| !full(c)).map_or(0, |i| i + 1);
        let q = (n_u / 4).max(1);
        let outer = (r as usize).saturating_sub(first);
        if first > r as usize || outer < (q / 2).max(3) {
            continue;
        }
        for (p, &c) in prof.iter_mut().zip(&cnt).skip(first) {
            *p /= c as f32;
        }
        let q_out = q.min(outer / 2).max(2);
        let mut outs: Vec<f32> = prof[first..first + q_out].to_vec();
        let mut ins: Vec<f32> = prof[n_u - q..].to_vec();
        outs.sort_by(f32::total_cmp);
        ins.sort_by(f32::total_cmp);
        let (lo, hi) = (percentile_sorted(&outs, 0.5), percentile_sorted(&ins, 0.5));
        if hi.is_nan() || lo.is_nan() || hi <= lo {
            continue;
        }
        let t: Vec<f32> = prof
            .iter()
            .enumerate()
            .map(|(j, p)| {
                if j < first {
                    f32::NAN
                } else {
                    linearise((p - lo) / (hi - lo), k)
                }
            })
            .collect();
        chunks.push((s_start + chunk / 2.0, t, hi - lo));
    }
    // Chunks with little contrast (anatomy as dark as the collimator inside) are unreliable.
    let mut cs: Vec<f32> = chunks.iter().map(|c| c.2).collect();
    cs.sort_by(f32::total_cmp);
    let cmin = 0.3 * percentile_sorted(&cs, 0.5);
    let pts: Vec<(f32, f32)> = chunks
        .iter()
        .filter(|c| c.2 >= cmin)
        .filter_map(|(s, t, _)| {
            // On log input, the steepest point near the half-level crossing: see
            // `STEEPEST_REACH`.
            let u = crossing(t, r);
            let u = if k > 0.0 {
                u.map(|c| steepest_near(t, r, c).unwrap_or(c))
            } else {
                u
            };
            u.map(|u| (x0 + s * tx + u * nx, y0 + s * ty + u * ny))
        })
        .collect();
    fit_line_robust(&pts, line)
}

/// Whether the input looks log-processed, judged from its quantum noise: in linear data
/// the noise grows with the signal (Poisson), after a log it shrinks (the log compresses
/// bright values). Measured on a sparse grid: the robust (median absolute) Laplacian per
/// tenth of the level distribution, then the slope of its log-square against the level.
/// Within each tenth only the flatter half of the pixels count (by the differences across
/// 4 px, which a pixel's own noise hardly moves): anatomy's fine structure (a lung's
/// vessels, a hand's bones) raises the Laplacian at the levels it lies at, and in the
/// plain median it overruled the noise on about 2 % of the phantoms (log chests and hips
/// taken as linear, linear hands as log; docs/postprocessing.md, session 32 (2)).
fn looks_log(img: &Plane) -> bool {
    let (w, h) = (img.width(), img.height());
    if w < 8 || h < 8 {
        return false;
    }
    let data = img.data();
    let stride = (((w * h) as f32 / 60_000.0).sqrt().ceil() as usize).max(1);
    // (level, |Laplacian|, differences across 4 px)
    let mut pts: Vec<(f32, f32, f32)> = Vec::new();
    for y in (2..h - 2).step_by(stride) {
        for x in (2..w - 2).step_by(stride) {
            let at = |x: usize, y: usize| data[y * w + x];
            let c = at(x, y);
            let n4 = at(x, y - 1) + at(x, y + 1) + at(x - 1, y) + at(x + 1, y);
            let across = (at(x + 2, y) - at(x - 2, y)).abs() + (at(x, y + 2) - at(x, y - 2)).abs();
            pts.push(((c + n4) / 5.0, (c - n4 / 4.0).abs(), across));
        }
    }
    if pts.len() < 500 {
        return false;
    }
    pts.sort_by(|a, b| a.0.total_cmp(&b.0));
    let n = pts.len();
    let range = pts[n * 995 / 1000].0 - pts[n * 5 / 1000].0;
    if !range.is_finite() || range <= 0.0 {
        return false;
    }
    let bins = 10;
    let (mut xs, mut ys) = (Vec::new(), Vec::new());
    let mut tenth: Vec<(f32, f32, f32)> = Vec::new();
    for b in 0..bins {
        let lo = n * (20 + 96 * b) / 1000;
        let hi = n * (20 + 96 * (b + 1)) / 1000;
        tenth.clear();
        tenth.extend_from_slice(&pts[lo..hi]);
        let flat = tenth.len() / 2;
        tenth.select_nth_unstable_by(flat, |a, b| a.2.total_cmp(&b.2));
        let mut noise: Vec<f32> = tenth[..flat].iter().map(|p| p.1).collect();
        let mid = noise.len() / 2;
        let (_, &mut m, _) = noise.select_nth_unstable_by(mid, f32::total_cmp);
        if m > 0.0 {
            xs.push(pts[(lo + hi) / 2].0 as f64);
            ys.push(2.0 * (m as f64).ln());
        }
    }
    if xs.len() < 5 {
        return false;
    }
    let k = xs.len() as f64;
    let (mx, my) = (xs.iter().sum::<f64>() / k, ys.iter().sum::<f64>() / k);
    let (sxx, sxy) = xs.iter().zip(&ys).fold((0.0, 0.0), |a, (x, y)| {
        (a.0 + (x - mx).powi(2), a.1 + (x - mx) * (y - my))
    });
    sxx > 0.0 && sxy / sxx * (range as f64) < LOG_NOISE_SLOPE
}

/// Slope of ln(noise²) over the image's level range below which the input is taken as
/// log-processed (−0.4 with the plain median, on the limbs-only phantoms it was set on;
/// −0.2 since the flatter half: on seeds 31, 88, 21, 505, 3 and 5 it misjudged 9 of 1205
/// log and 11 of 1195 linear images, against 18 and 27 before; docs/postprocessing.md).
const LOG_NOISE_SLOPE: f64 = -0.2;

#[inline]
fn linearise(t: f32, k: f32) -> f32 {
    if k == 0.0 {
        t
    } else {
        ((k * t).exp() - 1.0) / (k.exp() - 1.0)
    }
}

/// How far (input px) either side of a chunk's half-level crossing the refinement of a log
/// input's edge looks for the profile's steepest point. The half level lies between the
/// plateaus either side of the edge, and a vendor's presentation processing (an unsharp
/// mask) tilts them, each its own way, so the crossing wanders off the edge; the steepest
/// point of the linearised profile stays at it (the mask's own term, `v − blur(v)`, is
/// antisymmetric across a step). Taken anywhere in the window, the steepest point is as
/// often some anatomy's (trunk edges moved off); near the crossing it is the edge's.
const STEEPEST_REACH: i32 = 3;

/// The steepest rise of the profile `t` (offsets −r..=r) within [`STEEPEST_REACH`] of the
/// offset `near`, to a fraction of a sample (a parabola through the central differences).
/// `None` without a rise there or with the window cut by the profile's ends.
fn steepest_near(t: &[f32], r: i32, near: f32) -> Option<f32> {
    let j0 = (near + r as f32).round() as i32;
    let (lo, hi) = (j0 - STEEPEST_REACH, j0 + STEEPEST_REACH);
    if lo < 2 || hi as usize + 2 >= t.len() {
        return None;
    }
    let slope = |j: i32| t[j as usize + 1] - t[j as usize - 1];
    let (j, d) = (lo..=hi)
        .map(|j| (j, slope(j)))
        .filter(|(_, d)| d.is_finite())
        .max_by(|a, b| a.1.total_cmp(&b.1))?;
    if d <= 0.0 {
        return None;
    }
    let (a, c) = (slope(j - 1), slope(j + 1));
    let curvature = a - 2.0 * d + c;
    let shift = if a.is_finite() && c.is_finite() && curvature < 0.0 {
        (0.5 * (a - c) / curvature).clamp(-0.5, 0.5)
    } else {
        0.0
    };
    Some(j as f32 + shift - r as f32)
}

/// Offset (relative to the profile's centre index `r`) of the 0.5 crossing nearest the centre.
fn crossing(t: &[f32], r: i32) -> Option<f32> {
    let mut best: Option<f32> = None;
    for k in 0..t.len().saturating_sub(1) {
        let (a, b) = (t[k], t[k + 1]);
        if a < 0.5 && b >= 0.5 {
            let u = k as f32 + (0.5 - a) / (b - a) - r as f32;
            if best.is_none_or(|bu| u.abs() < bu.abs()) {
                best = Some(u);
            }
        }
    }
    best
}

/// Total-least-squares fit with iterative rejection of outliers; keeps `reference`'s side.
fn fit_line_robust(pts: &[(f32, f32)], reference: Line) -> Option<Line> {
    let mut keep: Vec<(f32, f32)> = pts.to_vec();
    let mut line = None;
    for _ in 0..4 {
        if keep.len() < 3 {
            return line;
        }
        let n = keep.len() as f64;
        let (mx, my) = keep.iter().fold((0.0f64, 0.0f64), |a, p| {
            (a.0 + p.0 as f64, a.1 + p.1 as f64)
        });
        let (mx, my) = (mx / n, my / n);
        let (mut sxx, mut sxy, mut syy) = (0.0f64, 0.0f64, 0.0f64);
        for p in &keep {
            let (dx, dy) = (p.0 as f64 - mx, p.1 as f64 - my);
            sxx += dx * dx;
            sxy += dx * dy;
            syy += dy * dy;
        }
        // Normal = eigenvector of the smaller eigenvalue of the scatter matrix.
        let theta = 0.5 * (2.0 * sxy).atan2(sxx - syy); // direction of largest spread
        let (mut nx, mut ny) = (-(theta.sin()), theta.cos());
        if nx * reference.nx as f64 + ny * reference.ny as f64 <= 0.0 {
            nx = -nx;
            ny = -ny;
        }
        let l = Line {
            nx: nx as f32,
            ny: ny as f32,
            c: (nx * mx + ny * my) as f32,
        };
        let mut res: Vec<f32> = keep
            .iter()
            .map(|p| l.signed_distance(p.0, p.1).abs())
            .collect();
        line = Some(l);
        res.sort_by(f32::total_cmp);
        let mad = percentile_sorted(&res, 0.5) * 1.4826;
        let cut = (2.5 * mad).max(0.75);
        let before = keep.len();
        keep.retain(|p| l.signed_distance(p.0, p.1).abs() <= cut);
        if keep.len() == before {
            break;
        }
    }
    line
}

#[cfg(test)]
mod tests {
    use super::{
        best_at_rotation, build_work, downsample, evaluate, field_rotation, near_peak,
        rotation_gap, rotation_weight, step_look, stepping_share, Cand, CollimatorConfig,
        FieldEdge, Line, Side, Verdict, LOG_OFFSET, MIN_STEPPING_SHARE,
    };
    use crate::probs::Plane;
    use rand::rngs::StdRng;
    use rand::{RngExt, SeedableRng};

    #[test]
    fn across_line_visits_exactly_the_steps_whose_samples_lie_in_the_image() {
        // The reference: every step of the line's full range, each sample checked.
        fn every_step(p: &[f32], w: usize, h: usize, n: (f32, f32), rho: f32) -> Vec<(f32, f32)> {
            let (nx, ny) = n;
            let r = super::STEP_LOOK_REACH;
            let reach = (w + h) as i32;
            (-reach..=reach)
                .filter_map(|t| {
                    let (x, y) = (nx * rho - t as f32 * ny, ny * rho + t as f32 * nx);
                    Some((
                        super::bilinear(p, w, h, x + r * nx, y + r * ny)?,
                        super::bilinear(p, w, h, x - r * nx, y - r * ny)?,
                    ))
                })
                .collect()
        }
        let mut rng = StdRng::seed_from_u64(7);
        for &(w, h) in &[(256usize, 256usize), (97, 203), (5, 5)] {
            let p: Vec<f32> = (0..w * h).map(|_| rng.random_range(0.0..1.0)).collect();
            let mut lines: Vec<((f32, f32), f32)> = Vec::new();
            // Axis-aligned normals (a zero component), near-axis ones and any angle; offsets
            // inside, at and beyond the border.
            for deg in [0.0f32, 90.0, 180.0, 270.0, 0.0001, 89.9999, 45.0] {
                for rho in [-300.0f32, -4.0, -2.0, 0.0, 1.5, 100.0, 250.0, 400.0] {
                    let a = deg.to_radians();
                    lines.push(((a.cos(), a.sin()), rho));
                }
            }
            for _ in 0..500 {
                let a: f32 = rng.random_range(0.0..std::f32::consts::TAU);
                let rho = rng.random_range(-400.0..400.0);
                lines.push(((a.cos(), a.sin()), rho));
            }
            for (n, rho) in lines {
                assert_eq!(
                    super::across_line(&p, w, h, n, rho),
                    every_step(&p, w, h, n, rho),
                    "{w}x{h}, n {n:?}, rho {rho}"
                );
            }
        }
    }

    fn found(cands: &[(i32, f32)]) -> Vec<(Cand, Verdict)> {
        cands
            .iter()
            .map(|&(turn, score)| {
                (
                    Cand {
                        phi: (turn as f32).to_radians(),
                        rho: 10.0 + turn as f32,
                        turn,
                    },
                    Verdict {
                        score,
                        inside: 0.0,
                        outside: 0.0,
                        band_depth: 20.0,
                        visible_share: 1.0,
                        contrast: 0.5,
                        support: 1.0,
                    },
                )
            })
            .collect()
    }

    #[test]
    fn the_field_rotation_is_where_its_strongest_edges_agree() {
        // Synth pelvis (seed 2024, image 19): one strong edge at 7°, and a weak top edge that
        // left a ridge of accepted lines from 4° to 8°, the best of them at 4°. Counting
        // every candidate within 4° alike, 4° and 7° tie (and the smaller won), and the top
        // took its 4° line, 13 px off at the corner; weighted by the gap, 7° wins.
        let accepted = vec![
            (Side::Left, found(&[(3, 1.07), (2, 1.20)])),
            (
                Side::Top,
                found(&[(5, 12.38), (4, 12.44), (6, 12.20), (7, 12.32), (8, 12.35)]),
            ),
            (Side::Right, found(&[(7, 134.2), (12, 22.5), (-2, 25.1)])),
            (Side::Bottom, found(&[(8, 6.68), (7, 6.51), (10, 6.30)])),
        ];
        assert_eq!(field_rotation(&accepted, 4.0), Some(7.0));
        let top = best_at_rotation(accepted[1].1.clone(), Some((7.0, 4.0))).unwrap();
        assert_eq!(top.0.turn, 7);
        // Judged alone, a side takes its best score; beyond the spread nothing counts.
        let top = best_at_rotation(accepted[1].1.clone(), None).unwrap();
        assert_eq!(top.0.turn, 4);
        assert!(best_at_rotation(found(&[(12, 5.0)]), Some((7.0, 4.0))).is_none());
        assert_eq!(rotation_weight(0.0, 4.0), 1.0);
        assert_eq!(rotation_weight(4.5, 4.0), 0.0);
    }

    #[test]
    fn a_peak_beside_a_thin_band_is_tried_a_pixel_or_two_further_in() {
        // A collimated band 6 px wide along the left border (linear, 4 % leakage), a field
        // with a darker body across its middle. The Hough accumulator's offsets are whole
        // pixels and its votes are spread over ±3°, so a peak can land 2 px outwards of the
        // edge: there the band beyond the margin is empty and the line is rejected; 2 px
        // further in, at the edge, it is accepted.
        let (w, h) = (128usize, 128usize);
        let img: Vec<f32> = (0..w * h)
            .map(|i| {
                let (x, y) = ((i % w) as f32, (i / w) as f32);
                let body = if (40.0..90.0).contains(&y) { 0.3 } else { 1.0 };
                let field = 1.0 / (1.0 + (-(x - 5.5) / 0.7).exp());
                1000.0 * body * (0.04 + 0.96 * field)
            })
            .collect();
        let cfg = CollimatorConfig::default();
        let plane = Plane::new(&img, w, h).unwrap();
        let down = downsample(&plane, &cfg, false).unwrap();
        assert_eq!(down.f, 1);
        let work = build_work(&down, &cfg, LOG_OFFSET);
        let peak = Cand {
            phi: 0.0,
            rho: 3.0,
            turn: 0,
        };
        assert!(evaluate(&work, peak, Side::Left, &cfg).is_none());
        let (found, _) = near_peak(&work, peak, Side::Left, &cfg).expect("the edge 2 px in");
        // (the sub-pixel refinement on the full image then places it)
        assert!((found.rho - 5.5).abs() <= 1.5, "found at {}", found.rho);
    }

    #[test]
    fn rotation_gaps_are_taken_modulo_a_quarter_turn() {
        assert_eq!(rotation_gap(4.0, -4.0), 8.0);
        assert_eq!(rotation_gap(-16.0, -20.0), 4.0);
        // A rectangle turned by 44° is the one turned by −46°: 2° from one turned by −44°.
        assert_eq!(rotation_gap(44.0, -44.0), 2.0);
        assert_eq!(rotation_gap(-45.0, 45.0), 0.0);
        assert_eq!(rotation_gap(30.0, -30.0), 30.0);
    }

    /// 256 × 256 (one working pixel per input pixel): a dark band left of x = 29.5 (the
    /// field's known left edge), the field at `inside` with open beam at the top middle (so
    /// the range is open beam's), and from x = 220 on, `beyond(x)` (the right band).
    fn field_with_right_band(inside: f32, beyond: impl Fn(usize) -> f32) -> Vec<f32> {
        let n = 256;
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut out = vec![0.0f32; n * n];
        for y in 0..n {
            for x in 0..n {
                let v = if x < 30 {
                    5.0
                } else if x >= 220 {
                    beyond(x)
                } else if y < 40 && (60..180).contains(&x) {
                    1000.0
                } else {
                    inside
                };
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                let noise = ((state >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 0.04;
                out[y * n + x] = v * (1.0 + noise);
            }
        }
        out
    }

    /// The sides and lines the step look adds to a field whose left edge is known.
    fn step_look_on(img: &[f32], log_input: bool) -> Vec<(Side, Line)> {
        let plane = Plane::new(img, 256, 256).unwrap();
        let cfg = CollimatorConfig::default();
        let down = downsample(&plane, &cfg, log_input).unwrap();
        let work = build_work(&down, &cfg, LOG_OFFSET);
        let left = FieldEdge {
            side: Side::Left,
            line: Line {
                nx: 1.0,
                ny: 0.0,
                c: 29.5,
            },
            contrast: 1.0,
            support: 1.0,
        };
        step_look(&work, &[left])
            .into_iter()
            .map(|(side, line, _)| (side, line))
            .collect()
    }

    #[test]
    fn the_step_look_finds_a_faint_blade_over_a_dark_trunk() {
        // Field and band both in the dark end (2 % and 1.2 % of the open beam): a log step
        // of about 0.45 e-folds, with scatter keeping the band at 0.6 of the field.
        let found = step_look_on(&field_with_right_band(20.0, |_| 12.0), false);
        assert_eq!(found.len(), 1, "{found:?}");
        let (side, line) = found[0];
        assert_eq!(side, Side::Right);
        assert!(line.signed_distance(219.5, 128.0).abs() <= 1.0, "{line:?}");
        // No step at all: nothing.
        assert!(step_look_on(&field_with_right_band(20.0, |_| 20.0), false).is_empty());
    }

    #[test]
    fn the_step_look_takes_no_shallow_step_beside_a_bright_field() {
        // A field at 0.3 of the range stepping to 0.67 of itself: an arm cut by the border.
        assert!(step_look_on(&field_with_right_band(300.0, |_| 200.0), false).is_empty());
        // The same field stepping to a fifth of itself is a blade.
        let found = step_look_on(&field_with_right_band(300.0, |_| 60.0), false);
        assert_eq!(found.len(), 1, "{found:?}");
    }

    #[test]
    fn the_step_look_takes_a_shallow_step_beside_a_field_over_a_thick_trunk() {
        // A field at 6.5 % of the range (under STEP_LOOK_BRIGHT_FIELD_LEVEL, above
        // BRIGHT_FIELD_LEVEL) stepping down to 0.6 of itself: a blade over a pelvis, hip or
        // chest whose band the trunk's scatter fills (synth seed 88's pelvis 68).
        let found = step_look_on(&field_with_right_band(70.0, |_| 42.0), false);
        assert_eq!(found.len(), 1, "{found:?}");
        let (side, line) = found[0];
        assert_eq!(side, Side::Right);
        assert!(line.signed_distance(219.5, 128.0).abs() <= 1.0, "{line:?}");
        // Log input: a field at 0.6 of the range (about 6 % of the top exposure on the
        // 7 e-folds) stepping down by 0.42 e-folds (synth seed 606's chest 28).
        let found = step_look_on(&field_with_right_band(600.0, |_| 540.0), true);
        assert_eq!(found.len(), 1, "{found:?}");
        // The same step beside a field at a quarter of the range, over a strip 17 px deep
        // beyond the margin (an arm beside a chest, cut by the border), is still refused.
        let arm = |x: usize| if x < 236 { 250.0 } else { 150.0 };
        assert!(step_look_on(&field_with_right_band(250.0, arm), false).is_empty());
    }

    #[test]
    fn the_step_look_takes_a_shallow_step_beside_a_bright_field_over_a_deep_band() {
        // A field at 0.4 of the range stepping down to 0.45 of itself, over a band 33 working
        // px deep beyond the margin: a blade over a linear chest or pelvis whose band the
        // trunk's scatter fills (synth seed 303's chest 311, seed 41's pelvis 23).
        let found = step_look_on(&field_with_right_band(400.0, |_| 180.0), false);
        assert_eq!(found.len(), 1, "{found:?}");
        let (side, line) = found[0];
        assert_eq!(side, Side::Right);
        assert!(line.signed_distance(219.5, 128.0).abs() <= 1.0, "{line:?}");
        // The same step 20 px from the border (a strip 17 px deep beyond the margin, as an
        // arm cut by the border leaves): refused.
        let narrow = |x: usize| if x < 236 { 400.0 } else { 180.0 };
        assert!(step_look_on(&field_with_right_band(400.0, narrow), false).is_empty());
    }

    #[test]
    fn the_step_look_takes_no_step_from_open_beam() {
        // Open beam inside, 0.3 of it beyond (a step of 1.2 e-folds, deep enough for a bright
        // field): a blade there would step by the whole range.
        assert!(step_look_on(&field_with_right_band(1000.0, |_| 300.0), false).is_empty());
    }

    #[test]
    fn on_log_input_a_bright_field_needs_a_deep_step_too() {
        // Log input: a field at 0.85 of the range (about a third of the open beam's
        // exposure) stepping down by 0.28 e-folds is a limb's outline, not a blade.
        assert!(step_look_on(&field_with_right_band(850.0, |_| 810.0), true).is_empty());
        // The same step from a field at 0.4 of the range (a thick trunk) is a blade.
        let found = step_look_on(&field_with_right_band(400.0, |_| 360.0), true);
        assert_eq!(found.len(), 1, "{found:?}");
    }

    /// The stepping share of the line x = 29.5 (inward normal +x) on a 256 × 256 linear
    /// image whose field (200) has a dark band (5) left of it in rows `band_rows` only, the
    /// rest of the left strip at the field's level.
    fn stepping_share_beside(band_rows: std::ops::Range<usize>) -> f32 {
        let n = 256;
        let img: Vec<f32> = (0..n * n)
            .map(|i| {
                let (x, y) = (i % n, i / n);
                if x < 30 && band_rows.contains(&y) {
                    5.0
                } else {
                    200.0
                }
            })
            .collect();
        let plane = Plane::new(&img, n, n).unwrap();
        let cfg = CollimatorConfig::default();
        let down = downsample(&plane, &cfg, false).unwrap();
        let work = build_work(&down, &cfg, LOG_OFFSET);
        assert_eq!(work.f, 1);
        stepping_share(&work, (1.0, 0.0), 29.5)
    }

    #[test]
    fn a_line_stepping_down_along_part_of_its_length_only_is_no_edge() {
        // A blade: the step runs along the whole line.
        assert!(stepping_share_beside(0..256) >= 0.95);
        // Along 30 % of it (an outline meeting a dark band at a corner): refused.
        let part = stepping_share_beside(0..77);
        assert!((0.25..0.35).contains(&part), "{part}");
        assert!(part < MIN_STEPPING_SHARE);
        // Along 60 %: a blade over anatomy that fills its band in places, kept.
        assert!(stepping_share_beside(50..204) >= MIN_STEPPING_SHARE);
    }
}
