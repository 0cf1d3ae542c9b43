//! The Hough search: each side's peaks ([`hough_side`]), the accepted lines near them
//! ([`accepted_candidates`], [`near_peak`]), and the later looks' search of the sides left
//! without an edge ([`search_empty_sides`]).

use super::config::CollimatorConfig;
use super::measure::{evaluate, Cand, Verdict};
use super::work::Work;
use super::Side;

pub(super) fn hough_side(work: &Work, side: Side, cfg: &CollimatorConfig) -> Vec<Cand> {
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
pub(super) fn accepted_candidates(
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
pub(super) fn near_peak(
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
pub(super) fn search_empty_sides(
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

#[cfg(test)]
mod tests {
    use super::{evaluate, near_peak, Cand, CollimatorConfig, Side};
    use crate::collimator::work::{build_work, downsample, LOG_OFFSET};
    use crate::probs::Plane;

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
}
