//! Simple synthetic collimated radiographs with known field edges, for tests.
#![allow(dead_code, clippy::excessive_precision)]

pub mod nema;

use rand::{Rng, RngExt};
use xray_postproc::{Line, Side};

/// One true edge: side, rotation (degrees) and distance of its midpoint from the border.
#[derive(Debug, Clone, Copy)]
pub struct EdgeSpec {
    pub side: Side,
    pub tilt_deg: f32,
    pub inset: f32,
}

/// A phantom: image (larger = more X-rays, linear), its true edges, and the field factor.
pub struct Phantom {
    pub width: usize,
    pub height: usize,
    pub image: Vec<f32>,
    pub edges: Vec<(Side, Line)>,
}

#[derive(Debug, Clone)]
pub struct PhantomSpec {
    pub width: usize,
    pub height: usize,
    pub edges: Vec<EdgeSpec>,
    /// Penumbra: Gaussian sigma in pixels.
    pub penumbra: f32,
    /// Photons per pixel in the open beam (Poisson-like noise); 0 = no noise.
    pub photons: f32,
    /// Transmission of the collimator.
    pub collimator_transmission: f32,
    /// Add anatomy (soft-tissue and bone ellipses, some crossing the field edges).
    pub anatomy: bool,
    /// Add an "L" lead marker inside the field.
    pub marker: bool,
}

impl PhantomSpec {
    pub fn new(width: usize, height: usize, edges: Vec<EdgeSpec>) -> Self {
        Self {
            width,
            height,
            edges,
            penumbra: 1.5,
            photons: 0.0,
            collimator_transmission: 0.03,
            anatomy: false,
            marker: false,
        }
    }
}

pub fn true_line(side: Side, tilt_deg: f32, inset: f32, w: usize, h: usize) -> Line {
    let (cx, cy) = ((w - 1) as f32 / 2.0, (h - 1) as f32 / 2.0);
    let (mx, my, phi0) = match side {
        Side::Left => (inset, cy, 0.0f32),
        Side::Top => (cx, inset, 90.0),
        Side::Right => ((w - 1) as f32 - inset, cy, 180.0),
        Side::Bottom => (cx, (h - 1) as f32 - inset, 270.0),
    };
    let phi = (phi0 + tilt_deg).to_radians();
    let (nx, ny) = (phi.cos(), phi.sin());
    Line {
        nx,
        ny,
        c: nx * mx + ny * my,
    }
}

fn phi_cdf(z: f32) -> f32 {
    // Abramowitz–Stegun erf approximation (|error| < 1.5e-7).
    let x = z / std::f32::consts::SQRT_2;
    let t = 1.0 / (1.0 + 0.3275911 * x.abs());
    let y = 1.0
        - (((((1.061405429 * t - 1.453152027) * t) + 1.421413741) * t - 0.284496736) * t
            + 0.254829592)
            * t
            * (-x * x).exp();
    0.5 * (1.0 + if x >= 0.0 { y } else { -y })
}

fn gauss(rng: &mut impl Rng) -> f32 {
    let u1: f32 = rng.random_range(1e-7f32..1.0);
    let u2: f32 = rng.random();
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f32::consts::PI * u2).cos()
}

pub fn make(spec: &PhantomSpec, rng: &mut impl Rng) -> Phantom {
    let (w, h) = (spec.width, spec.height);
    let edges: Vec<(Side, Line)> = spec
        .edges
        .iter()
        .map(|e| (e.side, true_line(e.side, e.tilt_deg, e.inset, w, h)))
        .collect();
    // Anatomy: ellipses (cx, cy, rx, ry, angle, transmission).
    let mut blobs: Vec<(f32, f32, f32, f32, f32, f32)> = Vec::new();
    if spec.anatomy {
        let (wf, hf) = (w as f32, h as f32);
        // A limb crossing the whole image vertically (touches top/bottom edges).
        blobs.push((
            wf * rng.random_range(0.4..0.6),
            hf * 0.5,
            wf * 0.22,
            hf * 0.8,
            rng.random_range(-0.2..0.2),
            0.35,
        ));
        // Its bone.
        let b = blobs[0];
        blobs.push((b.0, b.1, b.2 * 0.35, b.3 * 0.9, b.4, 0.45));
        // A blob crossing the left edge region.
        blobs.push((
            wf * 0.12,
            hf * rng.random_range(0.3..0.7),
            wf * 0.15,
            hf * 0.1,
            0.3,
            0.5,
        ));
    }
    let mut image = vec![0.0f32; w * h];
    for y in 0..h {
        for x in 0..w {
            let (xf, yf) = (x as f32, y as f32);
            let mut field = 1.0f32;
            for (_, l) in &edges {
                let d = l.signed_distance(xf, yf);
                field *= if spec.penumbra > 0.0 {
                    phi_cdf(d / spec.penumbra)
                } else if d >= 0.0 {
                    1.0
                } else {
                    0.0
                };
            }
            let mut t = 1.0f32;
            for &(cx, cy, rx, ry, a, tr) in &blobs {
                let (dx, dy) = (xf - cx, yf - cy);
                let (u, v) = (dx * a.cos() + dy * a.sin(), -dx * a.sin() + dy * a.cos());
                let r = ((u / rx).powi(2) + (v / ry).powi(2)).sqrt();
                // Smooth boundary so anatomy is not itself a sharp straight edge.
                let inside = (1.0 - r).clamp(-0.05, 0.05) * 10.0 + 0.5;
                t *= 1.0 - (1.0 - tr) * inside.clamp(0.0, 1.0);
            }
            image[y * w + x] =
                t * (spec.collimator_transmission + (1.0 - spec.collimator_transmission) * field);
        }
    }
    if spec.marker {
        // An "L" of lead inside the field, about 1/8 of the image from the top-left corner.
        let (x0, y0) = ((w as f32 * 0.3) as usize, (h as f32 * 0.25) as usize);
        let (len, thick) = ((w / 12).max(4), (w / 60).max(2));
        for y in y0..(y0 + len).min(h) {
            for x in x0..(x0 + thick).min(w) {
                image[y * w + x] *= 0.02;
            }
        }
        for y in (y0 + len - thick).min(h)..(y0 + len).min(h) {
            for x in x0..(x0 + len * 2 / 3).min(w) {
                image[y * w + x] *= 0.02;
            }
        }
    }
    if spec.photons > 0.0 {
        for v in image.iter_mut() {
            let n = *v * spec.photons;
            *v = (n + n.sqrt() * gauss(rng)).max(0.0);
        }
    } else {
        for v in image.iter_mut() {
            *v *= 1000.0;
        }
    }
    Phantom {
        width: w,
        height: h,
        image,
        edges,
    }
}

/// A random spec: each side present with probability `p_present`, tilts within ±`max_tilt`.
pub fn random_spec(
    w: usize,
    h: usize,
    p_present: f64,
    max_tilt: f32,
    rng: &mut impl Rng,
) -> PhantomSpec {
    let mut edges = Vec::new();
    for side in Side::ALL {
        if rng.random_bool(p_present) {
            let dim = match side {
                Side::Left | Side::Right => w,
                _ => h,
            } as f32;
            edges.push(EdgeSpec {
                side,
                tilt_deg: rng.random_range(-max_tilt..=max_tilt),
                inset: dim * rng.random_range(0.06..0.22),
            });
        }
    }
    let mut spec = PhantomSpec::new(w, h, edges);
    spec.penumbra = rng.random_range(0.8..3.0);
    spec.photons = rng.random_range(300.0..3000.0);
    spec.anatomy = rng.random_bool(0.8);
    spec.marker = rng.random_bool(0.5);
    spec
}
