//! The real NEMA RG1 chest radiograph (PA, 150 kV, 1841 × 1955): the step from the lungs
//! down to the abdomen at the diaphragm is anatomy, not a collimator edge, and must not be
//! reported as a bottom edge.
//!
//! Set `XRAY_POSTPROC_WRITE_DOCS=1` to (re)write `docs/images/rg1-collimator.png`.

use std::path::Path;

use xray_data::io::{load_image, LoadOptions};
use xray_postproc::{
    baseline_segment, detect_collimator, overlay, save_png, BaselineConfig, CollimatorConfig,
    OverlayConfig, Plane, Side,
};

const RG1: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../../shared/data/nema-cr/RG1_UNCR.dcm"
);

#[test]
fn rg1_chest_has_no_bottom_collimator_edge() {
    let path = Path::new(RG1);
    if !path.exists() {
        eprintln!(
            "SKIPPED: {} is absent (the shared NEMA data are not on this machine)",
            path.display()
        );
        return;
    }
    let img = load_image(path, &LoadOptions::default()).expect("RG1 loads");
    let (w, h) = (img.width() as usize, img.height() as usize);
    assert_eq!((w, h), (1841, 1955));
    let plane = Plane::from_image(&img).unwrap();
    let c = detect_collimator(&plane, &CollimatorConfig::default()).unwrap();
    for e in &c.edges {
        let ((x0, y0), (x1, y1)) = e.line.clip_to(w, h).unwrap();
        eprintln!(
            "{:?}: ({x0:.1}, {y0:.1}) - ({x1:.1}, {y1:.1}), tilt {:.2} deg, contrast {:.2}, support {:.2}",
            e.side,
            e.line.tilt_deg(),
            e.contrast,
            e.support
        );
    }
    assert!(
        c.edge(Side::Bottom).is_none(),
        "the diaphragm was taken for a bottom collimator edge: {:?}",
        c.edge(Side::Bottom)
    );

    let labels = baseline_segment(&plane, Some(&c), &BaselineConfig::default()).unwrap();
    let rgb = overlay(&plane, &labels, Some(&c), &OverlayConfig::default()).unwrap();
    if std::env::var_os("XRAY_POSTPROC_WRITE_DOCS").is_some() {
        let small = image::imageops::resize(
            &rgb,
            (w / 2) as u32,
            (h / 2) as u32,
            image::imageops::FilterType::Triangle,
        );
        let out = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../docs/images/rg1-collimator.png"
        );
        save_png(&small, out).unwrap();
        eprintln!("wrote {out}");
    }
}
