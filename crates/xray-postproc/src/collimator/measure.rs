//! A candidate line ([`Cand`]) and its judging: what [`measure`] finds along it (contrast,
//! straightness, the band beyond it), the acceptance tests ([`accept`]) and the
//! [`Verdict`] they give; [`evaluate`] runs them all.

use super::config::CollimatorConfig;
use super::step_look::{stepping_share, STEP_LOOK_OPEN_BEAM};
use super::work::{bilinear, percentile_sorted, Work};
use super::{Line, Side};

/// A candidate line in working coordinates: inward normal angle `phi` (radians), offset `rho`.
#[derive(Debug, Clone, Copy)]
pub(super) struct Cand {
    pub(super) phi: f32,
    pub(super) rho: f32,
    /// Degrees the line is turned from its side's nominal direction (the Hough angle step),
    /// kept whole so that candidates of different sides compare exactly.
    pub(super) turn: i32,
}

impl Cand {
    /// How far the edge is rotated from its image side, in degrees (positive
    /// counter-clockwise in image coordinates, the same for every edge of a rotated
    /// rectangle).
    pub(super) fn rotation(self) -> f32 {
        self.turn as f32
    }
}

#[derive(Debug, Clone, Copy)]
pub(super) struct Verdict {
    pub(super) score: f32,
    /// Median linear level just inside (share of the range).
    pub(super) inside: f32,
    /// Median linear level just outside (share of the range).
    pub(super) outside: f32,
    /// Mean depth of the band beyond the line, working px (its pixels per visible sample).
    pub(super) band_depth: f32,
    /// Share of its image side along which the line is visible (both sides inside the image).
    pub(super) visible_share: f32,
    pub(super) contrast: f32,
    pub(super) support: f32,
}

/// How far (working px) beyond a candidate line its band begins (the band the dark-band tests
/// judge; [`band_rows`]).
pub(super) const MARGIN: f32 = 3.0;
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
pub(super) fn band_rows<'w>(
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

pub(super) fn evaluate(
    work: &Work,
    cand: Cand,
    side: Side,
    cfg: &CollimatorConfig,
) -> Option<Verdict> {
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
///
/// [`STEP_LOOK_LOG_SPAN`]: super::step_look::STEP_LOOK_LOG_SPAN
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

/// The least [`stepping_share`] of any look's candidate: a blade's edge steps down along its
/// whole length, whatever lies beyond it, while a line through anatomy that the other tests
/// take (a pelvis's outline running into a dark band at a corner, a line across a hip beside
/// its blade) steps down along only part of it. Measured at the refined edges of five synth
/// samples of 400 (docs/postprocessing.md), the true edges showed 0.33 at the least (one
/// under 0.5 in 3,142) and the wrong ones down to 0.13; 0.4 on the candidates was the best of
/// 0.2–0.5 there.
pub(super) const MIN_STEPPING_SHARE: f32 = 0.4;
