//! A found edge whose band a neighbouring edge's step runs on into: no blade but an outline
//! in the field, dropped by [`drop_crossed_bands`].

use super::lone_arms::WEAK_LONE_BAND_DEPTH;
use super::measure::{band_rows, Cand, MARGIN};
use super::step_look::{
    across_line, edge_step, median, STEP_LOOK_MIN_STEP, STEP_LOOK_REACH, STEP_LOOK_STRETCH,
};
use super::work::{bilinear, Work};
use super::{FieldEdge, Line};

/// How far (working px) beyond an edge's line the samples across a neighbouring edge must
/// lie to count as in its band ([`step_beyond`]): twice the acceptance tests' margin, so that
/// neither the edge's own penumbra (up to 8 input px, 4 working px, on the synth studies) nor
/// the neighbour's reach of [`STEP_LOOK_REACH`] either side of its line brings a sample back
/// to the field.
const CROSSING_MARGIN: f32 = 2.0 * MARGIN;

/// The median step of the log exposure across `t`'s line (inside minus outside,
/// [`STEP_LOOK_REACH`] working px either side, e-folds as in [`edge_step`]) over the part of
/// it where both samples lie beyond `s`'s line by more than [`CROSSING_MARGIN`]: in `s`'s
/// band. `None` with fewer than [`STEP_LOOK_STRETCH`] such sample pairs (the band too thin,
/// or `t` not crossing it inside the image).
fn step_beyond(work: &Work, t: &Line, s: &Line) -> Option<f32> {
    let (w, h) = (work.w, work.h);
    let (tx, ty) = (t.nx, t.ny);
    let (rho_t, rho_s) = (work.working_offset(t), work.working_offset(s));
    let beyond = |x: f32, y: f32| s.nx * x + s.ny * y - rho_s < -CROSSING_MARGIN;
    let (fx, fy) = (tx * rho_t, ty * rho_t);
    let reach = (w + h) as i32;
    let r = STEP_LOOK_REACH;
    let steps: Vec<f32> = (-reach..=reach)
        .filter_map(|k| {
            let (x, y) = (fx - k as f32 * ty, fy + k as f32 * tx);
            let (xi, yi) = (x + r * tx, y + r * ty);
            let (xo, yo) = (x - r * tx, y - r * ty);
            if !(beyond(xi, yi) && beyond(xo, yo)) {
                return None;
            }
            Some(bilinear(work.exposure, w, h, xi, yi)? - bilinear(work.exposure, w, h, xo, yo)?)
        })
        .collect();
    (steps.len() >= STEP_LOOK_STRETCH).then(|| median(steps))
}

/// Drops found edges whose band is exposed field: beyond a blade only its leakage and
/// scatter arrive, flat, so the neighbouring blades' edges, which bound the same field, end
/// where its band begins (the corner beyond both is collimated by both: a blade's
/// transmission depends on the distance to the field, not to each blade). An edge that is an
/// outline in the field (an upper arm's skin line or humerus along the border of a chest, a
/// shoulder) has a strip of exposed anatomy beyond it, and a neighbouring blade collimates
/// that strip as it does the rest of the field: its step runs on across the strip. So an edge
/// is dropped when an edge on an adjacent side steps down across its band (beyond
/// [`CROSSING_MARGIN`]) undiminished: by at least its own median step along its whole line,
/// by at least as much as the edge itself steps down, and by at least the step look's least
/// step for a blade ([`STEP_LOOK_MIN_STEP`]). Beyond a blade a neighbour's step is weaker
/// than along the field: it is left only with the anatomy's contrast, which the blade's
/// leakage keeps in log terms, and the fall of the field's scatter into the band (the true
/// blades of the fitted synth samples kept at most 0.68 of their neighbour's step there; the
/// outlines taken for blades 1.19 and more). The edge's own step is needed as well: an
/// outline taken for an edge is itself a neighbour of the true blades, and its weak step
/// runs on into their bands as strongly as along the field, but no further than the
/// outline's own step, which the blade's exceeds. Only an edge over a strip narrower than
/// an arm's is judged ([`narrow_band`]): with the two conditions alone, on fresh synth
/// samples, true blades beside an edge that was no blade (an invented one, one 100 px into
/// the field) were dropped, and the outlines this is for leave narrow strips.
/// When two neighbouring edges each run on so into the other's band, one of them is an
/// outline but the steps cannot tell which (a weak blade beside a strong outline: the
/// outline's step runs on into the blade's band by more than the blade's own, and the blade's
/// across the outline's strip): both are kept. Of the rest, the edge with the largest excess
/// of a neighbour's step across its band over its own goes first, and the others are judged
/// again without it.
pub(super) fn drop_crossed_bands(work: &Work, edges: &mut Vec<FieldEdge>) {
    loop {
        let own: Vec<f32> = edges.iter().map(|e| edge_step(work, &e.line)).collect();
        let narrow: Vec<bool> = edges.iter().map(|e| narrow_band(work, &e.line)).collect();
        // Whether edge j's step runs on undiminished across edge i's band (only a neighbouring
        // side's line crosses it: opposite sides are parallel), and by how much it exceeds
        // edge i's own step.
        let crosses = |i: usize, j: usize| -> Option<f32> {
            let (s, t) = (&edges[i], &edges[j]);
            if !narrow[i] || (s.side.index() + t.side.index()) % 2 == 0 {
                return None;
            }
            let step = step_beyond(work, &t.line, &s.line)?;
            (step >= STEP_LOOK_MIN_STEP && step >= own[i] && step >= own[j])
                .then_some(step - own[i])
        };
        let mut worst: Option<(usize, f32)> = None;
        for i in 0..edges.len() {
            for j in 0..edges.len() {
                let Some(excess) = crosses(i, j) else {
                    continue;
                };
                if crosses(j, i).is_none() && worst.is_none_or(|(_, e)| excess > e) {
                    worst = Some((i, excess));
                }
            }
        }
        let Some((i, _)) = worst else {
            return;
        };
        edges.remove(i);
    }
}

/// Whether the band beyond `line` is on average under [`WEAK_LONE_BAND_DEPTH`] working px
/// deep (its pixels beyond the margin per visible sample of the line): the strip an upper arm
/// cut by the image border leaves (at most 25 working px on the synth studies).
fn narrow_band(work: &Work, line: &Line) -> bool {
    let n = (line.nx, line.ny);
    let rho = work.working_offset(line);
    let visible = across_line(work.exposure, work.w, work.h, n, rho).len();
    let cand = Cand {
        phi: n.1.atan2(n.0),
        rho,
        turn: 0,
    };
    let band: usize = band_rows(work, cand).map(|(_, lo, hi)| hi - lo).sum();
    (band as f32) < WEAK_LONE_BAND_DEPTH * visible.max(1) as f32
}
