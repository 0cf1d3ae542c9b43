//! The real NEMA RG2 hip radiograph: the collimator bands down its left and right edges.
//!
//! Set `XRAY_POSTPROC_WRITE_DOCS=1` to (re)write `docs/images/rg2-collimator.png`.

mod common;

use common::nema;
use xray_postproc::{Plane, Side};

#[test]
fn rg2_collimator_bands_left_and_right() {
    let Some(img) = nema::load("RG2_UNC") else {
        return;
    };
    let plane = Plane::from_image(&img).unwrap();
    let (w, h) = (plane.width(), plane.height());
    assert_eq!((w, h), (1760, 2140));
    let c = nema::detect_and_print(&plane);
    let left = c.edge(Side::Left).expect("left collimator band found");
    let right = c.edge(Side::Right).expect("right collimator band found");
    // Both bands run the whole height, nearly vertical, in the outer fifth of the image.
    for (e, lo, hi) in [
        (left, 0.0, 0.2 * w as f32),
        (right, 0.8 * w as f32, w as f32),
    ] {
        assert!(
            e.line.tilt_deg().abs() < 3.0,
            "{:?} tilt {}",
            e.side,
            e.line.tilt_deg()
        );
        let ((x0, _), (x1, _)) = e.line.clip_to(w, h).unwrap();
        assert!(
            x0 > lo && x0 < hi && x1 > lo && x1 < hi,
            "{:?} edge at x = {x0}..{x1}",
            e.side
        );
    }
    // The band itself is collimated (dark), just inside the edge is the field.
    let mean = |x0: usize, x1: usize| {
        let mut s = 0.0f64;
        for y in h / 4..3 * h / 4 {
            for x in x0..x1 {
                s += plane.value(x, y) as f64;
            }
        }
        s / ((x1 - x0) * h / 2) as f64
    };
    let lx = left.line.clip_to(w, h).unwrap().0 .0 as usize;
    assert!(mean(0, lx.saturating_sub(20).max(1)) < mean(lx + 20, lx + 80));
    assert!(
        c.edge(Side::Top).is_none() && c.edge(Side::Bottom).is_none(),
        "no top/bottom collimation in RG2: {:?}",
        c.edges
    );

    nema::overlay_for_docs(&plane, &c, "rg2-collimator.png");
}
