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
//!
//! This file holds the public types (the found field's [`Side`], [`Line`], [`FieldEdge`] and
//! [`Collimator`], [`edge_distance`]) and [`detect_collimator`], which runs the looks in
//! turn. The rest lies beside it, one concern a file:
//! - `config.rs`: [`CollimatorConfig`] and [`InputScale`];
//! - `work.rs`: the downsampled working image and the looks' log offsets;
//! - `measure.rs`: a candidate line, what is measured along it and the acceptance tests;
//! - `hough.rs`: the Hough search per side and the later looks' search of empty sides;
//! - `rotation.rs`: the field's rotation and each side's best candidate at it;
//! - `lone_arms.rs`: dropping an arm cut by the border taken for a lone blade;
//! - `lone_blade_looks.rs`: the looks for a lone blade when nothing was found;
//! - `darkest_look.rs`: the third look, at the darkest end (linear input);
//! - `relaxed_look.rs`: the relaxed look at the band (log input);
//! - `step_look.rs`: the last look, a step along the field's rotation, and the stepping share;
//! - `crossed_bands.rs`: dropping a found edge whose band a neighbouring edge's step crosses;
//! - `refine.rs`: the sub-pixel refinement on the full-resolution image;
//! - `input_scale.rs`: whether the input is log-processed, judged from its noise.

use image::GrayImage;
use serde::{Deserialize, Serialize};

use crate::error::{PostprocError, Result};
use crate::probs::{check_labels, Plane};
use crate::threshold::IGNORE_LABEL;

mod config;
mod crossed_bands;
mod darkest_look;
mod hough;
mod input_scale;
mod lone_arms;
mod lone_blade_looks;
mod measure;
mod refine;
mod relaxed_look;
mod rotation;
mod step_look;
mod work;

pub use config::{CollimatorConfig, InputScale};
pub(crate) use work::gaussian_smooth;

use crossed_bands::drop_crossed_bands;
use darkest_look::{darkest_look, darkest_work, BRIGHT_FIELD_LEVEL, DARKEST_LOOK_OUTSIDE_RATIO};
use hough::{accepted_candidates, search_empty_sides};
use input_scale::looks_log;
use lone_arms::{drop_lone_arms, WEAK_LONE_BAND_DEPTH};
use lone_blade_looks::{
    lone_blade_at_the_darkest_end, lone_blade_look, lone_blade_over_a_bright_band,
    lone_blade_over_scatter, side_peaks, steps_down_nearly_everywhere, strict_first_edge,
    LONE_LOG_FIELD_LEVEL,
};
use measure::{Cand, Verdict};
use refine::refine;
use relaxed_look::{relaxed_band_look, RELAXED_ROTATION_GAP};
use rotation::{best_at_rotation, field_rotation, rotation_gap};
use step_look::{edge_step, shallow_beside_bright_field, step_look, STEP_LOOK_OPEN_BEAM};
use work::{build_work, downsample, Work, FAINT_LOG_OFFSET, LOG_OFFSET};

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
    /// # Shapes
    /// `width`, then `height` ([image order](crate#sizes)) of the image.
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
/// # Shapes
/// `width`, then `height` ([image order](crate#sizes)) of the image.
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

    /// Marks every pixel of `labels` outside the field as [`IGNORE_LABEL`].
    ///
    /// # Errors
    /// [`PostprocError::ShapeMismatch`] when `labels` is not `width × height`;
    /// [`PostprocError::OutOfRange`] or [`PostprocError::DuplicateEdge`] for a field that
    /// fails [`Collimator::validate`] (then `labels` is left as it was).
    ///
    /// # Examples
    /// ```
    /// use image::GrayImage;
    /// use xray_postproc::{Collimator, FieldEdge, Line, PostprocError, Side, IGNORE_LABEL};
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
    /// assert_eq!(labels.as_raw(), &[IGNORE_LABEL, IGNORE_LABEL, 1, 1, IGNORE_LABEL, IGNORE_LABEL, 1, 1]);
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
                *l = IGNORE_LABEL;
            }
        }
        Ok(())
    }
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
    // An edge whose band a neighbouring edge's step runs on into is an outline in the field,
    // not a blade (see `drop_crossed_bands`); only with the one-rectangle rule, whose premise
    // (the edges bound one field) it shares.
    if cfg.rotation_spread_deg.is_some() {
        drop_crossed_bands(&work, &mut out.edges);
    }
    for e in out.edges.iter_mut() {
        e.contrast = edge_step(&work, &e.line);
    }
    Ok(out)
}
