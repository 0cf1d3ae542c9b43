//! The field's rotation: the gap between two rotations modulo a quarter turn, the weight of
//! a candidate by its gap, the rotation the sides' best candidates agree on
//! ([`field_rotation`]) and each side's best candidate at it ([`best_at_rotation`]).

use super::measure::{Cand, Verdict};
use super::Side;

/// The difference between two field rotations, in degrees: a rectangle turned by `r` is the
/// one turned by `r ± 90°`, so it is taken modulo 90, within ±45.
pub(super) fn rotation_gap(a: f32, b: f32) -> f32 {
    let d = a - b;
    (d - 90.0 * (d / 90.0).round()).abs()
}

/// How much a candidate rotated `gap` degrees from the field's rotation counts, for a
/// largest spread of `spread` degrees: 1 at the rotation, falling as `1 − (gap/(spread+1))²`
/// (0.36 at the spread for 4°), 0 beyond it. A strong edge leaves a ridge of accepted
/// candidates through the middle of its visible length at neighbouring angles, all scoring
/// alike; weighting them by their gap makes the field's rotation the one its strongest edges
/// agree on, not the middle of a ridge, and lets each side take the line at that rotation.
fn rotation_weight(gap: f32, spread: f32) -> f32 {
    if gap > spread {
        0.0
    } else {
        (1.0 - (gap / (spread + 1.0)).powi(2)).max(0.0)
    }
}

/// The rotation of the collimated field (see [`CollimatorConfig::rotation_spread_deg`]):
/// each accepted candidate's rotation is tried, and the one whose sides' best candidates
/// within `spread` of it, weighted by [`rotation_weight`], score highest in sum wins (the
/// smaller rotation on a tie). `None` when nothing was accepted.
///
/// [`CollimatorConfig::rotation_spread_deg`]: super::CollimatorConfig::rotation_spread_deg
pub(super) fn field_rotation(
    accepted: &[(Side, Vec<(Cand, Verdict)>)],
    spread: f32,
) -> Option<f32> {
    let support = |r: f32| -> f32 {
        accepted
            .iter()
            .map(|(_, found)| {
                found
                    .iter()
                    .map(|(c, v)| v.score * rotation_weight(rotation_gap(c.rotation(), r), spread))
                    .fold(0.0f32, f32::max)
            })
            .sum()
    };
    accepted
        .iter()
        .flat_map(|(_, found)| found.iter().map(|(c, _)| c.rotation()))
        .map(|r| (support(r), r))
        .max_by(|a, b| a.0.total_cmp(&b.0).then(b.1.abs().total_cmp(&a.1.abs())))
        .map(|(_, r)| r)
}

/// A side's edge among its accepted candidates: with the field's `rotation` (rotation,
/// spread), the candidate within the spread whose score weighted by [`rotation_weight`] is
/// highest; without, the highest score. The first of equal ones (the stronger Hough peak).
pub(super) fn best_at_rotation(
    found: Vec<(Cand, Verdict)>,
    rotation: Option<(f32, f32)>,
) -> Option<(Cand, Verdict)> {
    let weighted = |(cand, verdict): &(Cand, Verdict)| {
        verdict.score
            * rotation.map_or(1.0, |(r, spread)| {
                rotation_weight(rotation_gap(cand.rotation(), r), spread)
            })
    };
    found
        .into_iter()
        .filter(|(cand, _)| {
            rotation.is_none_or(|(r, spread)| rotation_gap(cand.rotation(), r) <= spread)
        })
        .reduce(|best, next| {
            if weighted(&next) > weighted(&best) {
                next
            } else {
                best
            }
        })
}

#[cfg(test)]
mod tests {
    use super::{
        best_at_rotation, field_rotation, rotation_gap, rotation_weight, Cand, Side, Verdict,
    };

    fn found(cands: &[(i32, f32)]) -> Vec<(Cand, Verdict)> {
        cands
            .iter()
            .map(|&(turn, score)| {
                (
                    Cand {
                        phi: (turn as f32).to_radians(),
                        rho: 10.0 + turn as f32,
                        turn,
                    },
                    Verdict {
                        score,
                        inside: 0.0,
                        outside: 0.0,
                        band_depth: 20.0,
                        visible_share: 1.0,
                        contrast: 0.5,
                        support: 1.0,
                    },
                )
            })
            .collect()
    }

    #[test]
    fn the_field_rotation_is_where_its_strongest_edges_agree() {
        // Synth pelvis (seed 2024, image 19): one strong edge at 7°, and a weak top edge that
        // left a ridge of accepted lines from 4° to 8°, the best of them at 4°. Counting
        // every candidate within 4° alike, 4° and 7° tie (and the smaller won), and the top
        // took its 4° line, 13 px off at the corner; weighted by the gap, 7° wins.
        let accepted = vec![
            (Side::Left, found(&[(3, 1.07), (2, 1.20)])),
            (
                Side::Top,
                found(&[(5, 12.38), (4, 12.44), (6, 12.20), (7, 12.32), (8, 12.35)]),
            ),
            (Side::Right, found(&[(7, 134.2), (12, 22.5), (-2, 25.1)])),
            (Side::Bottom, found(&[(8, 6.68), (7, 6.51), (10, 6.30)])),
        ];
        assert_eq!(field_rotation(&accepted, 4.0), Some(7.0));
        let top = best_at_rotation(accepted[1].1.clone(), Some((7.0, 4.0))).unwrap();
        assert_eq!(top.0.turn, 7);
        // Judged alone, a side takes its best score; beyond the spread nothing counts.
        let top = best_at_rotation(accepted[1].1.clone(), None).unwrap();
        assert_eq!(top.0.turn, 4);
        assert!(best_at_rotation(found(&[(12, 5.0)]), Some((7.0, 4.0))).is_none());
        assert_eq!(rotation_weight(0.0, 4.0), 1.0);
        assert_eq!(rotation_weight(4.5, 4.0), 0.0);
    }

    #[test]
    fn rotation_gaps_are_taken_modulo_a_quarter_turn() {
        assert_eq!(rotation_gap(4.0, -4.0), 8.0);
        assert_eq!(rotation_gap(-16.0, -20.0), 4.0);
        // A rectangle turned by 44° is the one turned by −46°: 2° from one turned by −44°.
        assert_eq!(rotation_gap(44.0, -44.0), 2.0);
        assert_eq!(rotation_gap(-45.0, 45.0), 0.0);
        assert_eq!(rotation_gap(30.0, -30.0), 30.0);
    }
}
