//! The looks for a lone blade, run when the first look found no edge at all: their tests
//! ([`strict_first_edge`], [`lone_blade_over_a_bright_band`], [`lone_blade_over_scatter`],
//! [`lone_blade_at_the_darkest_end`]), the Hough peaks they share ([`SidePeaks`]) and the
//! look itself ([`lone_blade_look`]).

use super::config::CollimatorConfig;
use super::darkest_look::darkest_look;
use super::hough::{hough_side, near_peak};
use super::measure::{Cand, Verdict};
use super::step_look::stepping_share;
use super::work::Work;
use super::Side;

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
pub(super) fn strict_first_edge(cfg: &CollimatorConfig) -> CollimatorConfig {
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
///
/// [`STEP_LOOK_OPEN_BEAM`]: super::step_look::STEP_LOOK_OPEN_BEAM
pub(super) fn lone_blade_over_a_bright_band(strict: &CollimatorConfig) -> CollimatorConfig {
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
///
/// [`WEAK_LONE_CONTRAST`]: super::lone_arms::WEAK_LONE_CONTRAST
/// [`WEAK_LONE_BAND_DEPTH`]: super::lone_arms::WEAK_LONE_BAND_DEPTH
pub(super) fn lone_blade_over_scatter(strict: &CollimatorConfig) -> CollimatorConfig {
    CollimatorConfig {
        max_outside_level: 1.0,
        ..strict.clone()
    }
}

/// On log input, the level just inside (share of the range) under which the look for a lone
/// blade with the relaxed look's tests takes a line (see `detect_collimator`). On the
/// [`STEP_LOOK_LOG_SPAN`] a log image is taken to span, half the range is about 3 % of the
/// exposure at its top: a field over a thick trunk. On the fitted synth samples the lone blades
/// of log pelvises, hips and a chest it found lay beside fields at 0.24–0.48 of the range, and
/// the lines it took on log chests without collimation (a shoulder, an upper arm) beside fields
/// at 0.51–0.56 (with 0.572, `BRIGHT_FIELD_LEVEL`'s 5 % on that span, three of them were taken).
///
/// [`STEP_LOOK_LOG_SPAN`]: super::step_look::STEP_LOOK_LOG_SPAN
pub(super) const LONE_LOG_FIELD_LEVEL: f32 = 0.5;

/// The look for a lone blade on `work` with `tests`: every side's candidates are replaced by
/// its accepted lines among `peaks` (its Hough peaks on `work`, see [`side_peaks`]) whose
/// band is deep enough ([`LONE_EDGE_BAND_DEPTH`]), that are visible along enough of their side
/// ([`LONE_EDGE_VISIBLE_SHARE`]) and that `keep` keeps.
pub(super) fn lone_blade_look(
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
pub(super) struct SidePeaks {
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
pub(super) fn side_peaks(work: &Work, cfg: &CollimatorConfig) -> SidePeaks {
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
pub(super) fn steps_down_nearly_everywhere(work: &Work, cand: Cand) -> bool {
    stepping_share(work, (cand.phi.cos(), cand.phi.sin()), cand.rho)
        >= LONE_BRIGHT_BAND_STEPPING_SHARE
}

/// The tests of the look for a lone blade at the darkest end (linear input, run when the looks
/// for a lone blade above found nothing): the third look's ([`darkest_look`]) with the lone
/// looks' straightness (0.95), support (0.9) and bright share (0.1; see
/// [`strict_first_edge`]). The level just outside keeps the plain `max_outside_ratio`: over a
/// thick trunk the band's scatter is large next to the primary (the lone blades of linear hips
/// this look is for stepped down to 0.26–0.54 of the field's level), and what keeps anatomy
/// out instead is a field under [`BRIGHT_FIELD_LEVEL`] and a step along nearly the whole line
/// (see `detect_collimator`).
///
/// [`BRIGHT_FIELD_LEVEL`]: super::darkest_look::BRIGHT_FIELD_LEVEL
pub(super) fn lone_blade_at_the_darkest_end(cfg: &CollimatorConfig) -> CollimatorConfig {
    let darkest = darkest_look(cfg);
    CollimatorConfig {
        min_support: darkest.min_support.max(0.9),
        min_straightness: darkest.min_straightness.max(0.95),
        max_bright_share: darkest.max_bright_share.min(0.1),
        ..darkest
    }
}
