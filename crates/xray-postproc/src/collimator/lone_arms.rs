//! The arm rule: a weak line alone at the field's rotation is an arm cut by the image
//! border, not a blade ([`weak_lone_edge`]), unless it lies over a thick trunk
//! ([`blade_over_a_thick_trunk`]); [`drop_lone_arms`] drops such lines.

use super::lone_blade_looks::steps_down_nearly_everywhere;
use super::measure::{Cand, Verdict};
use super::rotation::{field_rotation, rotation_gap};
use super::step_look::STEP_LOOK_LOG_SPAN;
use super::work::Work;
use super::Side;

/// A line the first look accepts on the only side with any at the field's rotation has no
/// other edge to agree with, and there an arm beside a chest, cut by the image border, passes
/// for a blade: the edge of the humerus's shaft or the arm's skin line, with the rest of the
/// arm as the "band". Such a line steps down little (log contrast at most 0.21 on the synth
/// studies), to a level still far from dark (0.40–0.70 of the level just inside) and over a
/// narrow strip (the arm: at most 25 working px deep). A lone line with all three
/// ([`weak_lone_edge`]) is dropped (`drop_lone_arms`); with nothing left, the look for a lone
/// blade then searches the image as if the first look had found nothing.
pub(super) const WEAK_LONE_CONTRAST: f32 = 0.22;
/// See [`WEAK_LONE_CONTRAST`]: the least ratio of the level just outside to just inside.
pub(super) const WEAK_LONE_OUTSIDE_RATIO: f32 = 0.38;
/// See [`WEAK_LONE_CONTRAST`]: the band depth (working px) below which the band may be an arm.
pub(super) const WEAK_LONE_BAND_DEPTH: f32 = 30.0;

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

/// While the field's rotation (from the first look's candidates) leaves one side alone with
/// candidates at it, drops that side's weak lone lines at the rotation (see
/// [`weak_lone_edge`]), except blades over a thick trunk ([`blade_over_a_thick_trunk`], judged
/// on `work`), and takes the rotation again from what is left. Every round drops a candidate
/// or stops. Returns the field's rotation from what is left ([`field_rotation`]).
pub(super) fn drop_lone_arms(
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
