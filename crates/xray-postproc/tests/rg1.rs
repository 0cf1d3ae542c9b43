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
