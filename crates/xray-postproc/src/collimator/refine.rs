//! The sub-pixel refinement on the full-resolution image ([`refine`]): profiles across the
//! edge, linearised on log input ([`linearise`]), their half-level crossing or steepest
//! point, and a robust line fit ([`fit_line_robust`]).

use crate::probs::Plane;

use super::work::{bilinear, percentile_sorted};
use super::{edge_distance, Line};

/// Sub-pixel refinement on the full-resolution image (two passes, narrowing the window).
/// `k` linearises log-processed profiles (see [`linearise`]); 0 for linear input.
pub(super) fn refine(img: &Plane, coarse: Line, others: &[Line], f: usize, k: f32) -> Line {
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
