//! The third look (linear input), at sides still without an edge: the darkest end, its
//! tests ([`darkest_look`]) and working image ([`darkest_work`]), and the levels that keep
//! arms out of it ([`BRIGHT_FIELD_LEVEL`], [`DARKEST_LOOK_OUTSIDE_RATIO`]).

use super::config::CollimatorConfig;
use super::work::{build_work, Downsampled, Work, DARKEST_LOG_OFFSET, LOG_OFFSET};

/// The third look's tests (linear input; see `detect_collimator`): its contrast asks for the
/// same exposure ratio as the first look's, and the flat-beyond test is left out.
pub(super) fn darkest_look(cfg: &CollimatorConfig) -> CollimatorConfig {
    let lr = |e: f32| ((1.0 + e) / e).ln();
    CollimatorConfig {
        min_contrast: cfg.min_contrast * lr(LOG_OFFSET) / lr(DARKEST_LOG_OFFSET),
        max_outside_fall: 1.0,
        ..cfg.clone()
    }
}

/// The third look's working image: compressed at [`DARKEST_LOG_OFFSET`], its band allowed to
/// hold collimated open beam up to `max_outside_level` without counting as bright.
pub(super) fn darkest_work<'a>(down: &'a Downsampled, cfg: &CollimatorConfig) -> Work<'a> {
    Work {
        band_ceiling: cfg.max_outside_level,
        ..build_work(down, cfg, DARKEST_LOG_OFFSET)
    }
}

/// A third look line whose field just inside receives at least this share of the exposure at
/// the top of the range must step down to at most [`DARKEST_LOOK_OUTSIDE_RATIO`] of it (a step
/// look line, from [`STEP_LOOK_BRIGHT_FIELD_LEVEL`] on, to [`WEAK_LONE_OUTSIDE_RATIO`]): behind
/// a blade only leakage and scatter arrive, and only where the field itself is dark (a thick
/// trunk, whose scatter is large next to its primary) does the band come close to the field's
/// level. A shallower step beside a bright field is anatomy: an arm cut by the border (whose
/// strip stays at 0.40–0.70 of the level inside, see [`WEAK_LONE_CONTRAST`]), a limb's
/// outline seen through the presentation mask.
///
/// [`STEP_LOOK_BRIGHT_FIELD_LEVEL`]: super::step_look::STEP_LOOK_BRIGHT_FIELD_LEVEL
/// [`WEAK_LONE_OUTSIDE_RATIO`]: super::lone_arms::WEAK_LONE_OUTSIDE_RATIO
/// [`WEAK_LONE_CONTRAST`]: super::lone_arms::WEAK_LONE_CONTRAST
pub(super) const BRIGHT_FIELD_LEVEL: f32 = 0.05;
/// The third look's largest level just outside a line beside a field above
/// [`BRIGHT_FIELD_LEVEL`], as a share of the level just inside (linear, range-normalised
/// values). Looser than the step look's [`WEAK_LONE_OUTSIDE_RATIO`]: the blades this look
/// finds lie over thick trunks whose scatter glows in the band next to the edge; those the
/// first two looks refused on the synth studies stepped down to 0.12–0.5 of their field
/// (5th–95th percentile), and a step to two thirds of a field at 12 % of the range is refused
/// (tests/collimator.rs).
///
/// [`WEAK_LONE_OUTSIDE_RATIO`]: super::lone_arms::WEAK_LONE_OUTSIDE_RATIO
pub(super) const DARKEST_LOOK_OUTSIDE_RATIO: f32 = 0.62;
