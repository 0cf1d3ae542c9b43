//! The real NEMA RG1 chest radiograph (PA, 150 kV, 1841 × 1955): the step from the lungs
//! down to the abdomen at the diaphragm is anatomy, not a collimator edge, and must not be
//! reported as a bottom edge.
//!
//! Set `XRAY_POSTPROC_WRITE_DOCS=1` to (re)write `docs/images/rg1-collimator.png`.

mod common;

use common::nema;
use xray_postproc::{Plane, Side};

#[test]
fn rg1_chest_has_no_bottom_collimator_edge() {
    let Some(img) = nema::load("RG1_UNCR.dcm") else {
        return;
    };
    let plane = Plane::from_image(&img).unwrap();
    assert_eq!((plane.width(), plane.height()), (1841, 1955));
    let c = nema::detect_and_print(&plane);
    assert!(
        c.edge(Side::Bottom).is_none(),
        "the diaphragm was taken for a bottom collimator edge: {:?}",
        c.edge(Side::Bottom)
    );
    // Its top rows and right strip are the reader's flat padding, not collimator shadows
    // (docs/postprocessing.md): no edge at all.
    assert!(c.edges.is_empty(), "edges on RG1: {:?}", c.edges);
    nema::overlay_for_docs(&plane, &c, "rg1-collimator.png");
}

/// `detect_collimator` on the real images, one thread: RG1 (no edge, so every look runs)
/// and RG2 (two edges), fastest and median of 21 calls each.
#[test]
#[ignore = "timing on the NEMA images: cargo test --release -p xray-postproc --test rg1 -- --ignored --nocapture timing_real_images"]
fn timing_real_images() {
    for name in ["RG1_UNCR.dcm", "RG2_UNC"] {
        let Some(img) = nema::load(name) else {
            return;
        };
        let plane = Plane::from_image(&img).unwrap();
        let cfg = xray_postproc::CollimatorConfig::default();
        let mut times = Vec::new();
        let mut edges = 0;
        for _ in 0..21 {
            let t = std::time::Instant::now();
            edges = xray_postproc::detect_collimator(&plane, &cfg)
                .unwrap()
                .edges
                .len();
            times.push(t.elapsed().as_secs_f64() * 1e3);
        }
        times.sort_by(f64::total_cmp);
        println!(
            "{name}: {edges} edge(s), fastest {:.1} ms, median {:.1} ms (21 runs, one thread)",
            times[0], times[10]
        );
    }
}
