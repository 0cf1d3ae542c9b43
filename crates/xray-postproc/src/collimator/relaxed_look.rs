//! The relaxed look at the band (log input): its tests ([`relaxed_band_look`]) and how far
//! from the field's rotation it looks ([`RELAXED_ROTATION_GAP`]).

use super::config::CollimatorConfig;

/// The relaxed look (log input; see `detect_collimator`) only takes lines within this many
/// degrees of the field's rotation.
pub(super) const RELAXED_ROTATION_GAP: f32 = 1.0;

/// The relaxed look's tests (log input; see `detect_collimator`): long, straight and fully
/// supported lines (`min_support` 0.9, `min_straightness` 0.95) whose band may hold collimated
/// open beam (no `min_dark_beyond`, `max_bright_share` 0.6, `min_dark_rays` 0.4). A
/// configuration already looser or stricter keeps its own values.
pub(super) fn relaxed_band_look(cfg: &CollimatorConfig) -> CollimatorConfig {
    CollimatorConfig {
        min_dark_beyond: 0.0,
        max_bright_share: cfg.max_bright_share.max(0.6),
        min_dark_rays: cfg.min_dark_rays.min(0.4),
        min_support: cfg.min_support.max(0.9),
        min_straightness: cfg.min_straightness.max(0.95),
        ..cfg.clone()
    }
}
