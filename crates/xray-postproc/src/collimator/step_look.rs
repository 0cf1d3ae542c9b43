//! The step look, the last look at sides still without an edge ([`step_look`]): the log
//! exposure across a line ([`step_exposure`], [`across_line`]), its step and the share of
//! the line that steps down ([`stepping_share`], which every look's candidates must pass),
//! the step reported as an edge's contrast ([`edge_step`]), and the step look's constants.

use super::darkest_look::DARKEST_LOOK_OUTSIDE_RATIO;
use super::lone_arms::{WEAK_LONE_BAND_DEPTH, WEAK_LONE_OUTSIDE_RATIO};
use super::measure::{band_rows, Cand};
use super::work::{bilinear, Work, DARKEST_LOG_OFFSET};
use super::{FieldEdge, Line, Side};

/// The median step of the log exposure across `line` (input coordinates), e-folds: what
/// [`FieldEdge::contrast`] reports (see [`step_exposure`], [`across_line`]).
pub(super) fn edge_step(work: &Work, line: &Line) -> f32 {
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
pub(super) const STEP_LOOK_MIN_STEP: f32 = 0.2;
/// The step look's least share of a line's stretches that show at least half its step.
const STEP_LOOK_MIN_SHARE: f32 = 0.7;
/// How deep into the image (share of its extent across the side) the step look searches.
const STEP_LOOK_DEPTH: f32 = 0.3;
/// Working px either side of a line at which the step look compares levels.
pub(super) const STEP_LOOK_REACH: f32 = 2.0;
/// Working samples per stretch of a line, for the step look's share.
pub(super) const STEP_LOOK_STRETCH: usize = 8;
/// The e-folds a log-processed input's range is taken to span in the step look (the
/// phantoms' CR-like output spans 2.5–4 decades, 6–9 e-folds, from open beam to zero).
pub(super) const STEP_LOOK_LOG_SPAN: f32 = 7.0;
/// The step look takes no line whose level just inside is at least this share of the range:
/// that is open beam, beside which a blade steps down by the whole range (its leakage passes
/// a few per cent), which the first look always sees. A weaker step there is the body's
/// outline (a shoulder, an arm), not a blade.
pub(super) const STEP_LOOK_OPEN_BEAM: f32 = 0.9;

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
///
/// [`BRIGHT_FIELD_LEVEL`]: super::darkest_look::BRIGHT_FIELD_LEVEL
pub(super) const STEP_LOOK_BRIGHT_FIELD_LEVEL: f32 = 0.1;

/// Whether a step of `step` e-folds down from a field whose exposure just inside is `inside`
/// (natural log of its share of the top of the range) is too shallow for a blade beside a
/// field that bright: at `level` (share of the top of the range) or above, the band must
/// fall to at most `max_ratio` of the field's level.
pub(super) fn shallow_beside_bright_field(
    inside: f32,
    step: f32,
    level: f32,
    max_ratio: f32,
) -> bool {
    inside >= level.ln() && step < -max_ratio.ln()
}

/// Samples across a line at `rho` (working units, inward unit normal `n`) of a working
/// plane `p`: the values [`STEP_LOOK_REACH`] inside and outside, where both lie in the image.
pub(super) fn across_line(
    p: &[f32],
    w: usize,
    h: usize,
    n: (f32, f32),
    rho: f32,
) -> Vec<(f32, f32)> {
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
pub(super) fn step_exposure(lin: &[f32], log_input: bool) -> Vec<f32> {
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
pub(super) fn stepping_share(work: &Work, n: (f32, f32), rho: f32) -> f32 {
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

/// The median of `v`: [`percentile_sorted`]'s element at 0.5, found by selection instead of
/// a full sort (0 when empty).
///
/// [`percentile_sorted`]: super::work::percentile_sorted
pub(super) fn median(mut v: Vec<f32>) -> f32 {
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
pub(super) fn step_look(work: &Work, edges: &[FieldEdge]) -> Vec<(Side, Line, f32)> {
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

#[cfg(test)]
mod tests {
    use super::{step_look, stepping_share, FieldEdge, Line, Side};
    use crate::collimator::config::CollimatorConfig;
    use crate::collimator::measure::MIN_STEPPING_SHARE;
    use crate::collimator::work::{build_work, downsample, LOG_OFFSET};
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
