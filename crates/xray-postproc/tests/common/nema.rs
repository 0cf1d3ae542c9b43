//! The real NEMA WG-04 radiographs in `../shared/data/nema-cr/`, for the RG1 / RG2 tests.

use std::path::Path;

use xray_data::io::{load_image, LoadOptions};
use xray_data::Radiograph;
use xray_postproc::{
    baseline_segment, detect_collimator, overlay, save_png, BaselineConfig, Collimator,
    CollimatorConfig, OverlayConfig, Plane,
};

/// Loads `../shared/data/nema-cr/<file>`, or prints why the test is skipped and returns
/// `None` when the shared data are not on this machine.
pub fn load(file: &str) -> Option<Radiograph> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/data/nema-cr")
        .join(file);
    if !path.exists() {
        eprintln!(
            "SKIPPED: {} is absent (the shared NEMA data are not on this machine)",
            path.display()
        );
        return None;
    }
    Some(load_image(&path, &LoadOptions::default()).expect("NEMA image loads"))
}

/// Detects the collimator with the default settings and prints every edge found.
pub fn detect_and_print(plane: &Plane) -> Collimator {
    let c = detect_collimator(plane, &CollimatorConfig::default()).unwrap();
    for e in &c.edges {
        let ((x0, y0), (x1, y1)) = e.line.clip_to(plane.width(), plane.height()).unwrap();
        eprintln!(
            "{:?}: ({x0:.1}, {y0:.1}) - ({x1:.1}, {y1:.1}), tilt {:.2} deg, contrast {:.2}, support {:.2}",
            e.side,
            e.line.tilt_deg(),
            e.contrast,
            e.support
        );
    }
    c
}

/// Builds the classical-baseline overlay with the field edges and, when
/// `XRAY_POSTPROC_WRITE_DOCS` is set, writes it at half size to `docs/images/<file>`.
pub fn overlay_for_docs(plane: &Plane, c: &Collimator, file: &str) {
    let labels = baseline_segment(plane, Some(c), &BaselineConfig::default()).unwrap();
    let rgb = overlay(plane, &labels, Some(c), &OverlayConfig::default()).unwrap();
    if std::env::var_os("XRAY_POSTPROC_WRITE_DOCS").is_some() {
        let small = image::imageops::resize(
            &rgb,
            (plane.width() / 2) as u32,
            (plane.height() / 2) as u32,
            image::imageops::FilterType::Triangle,
        );
        let out = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../docs/images")
            .join(file);
        save_png(&out, &small).unwrap();
        eprintln!("wrote {}", out.display());
    }
}
