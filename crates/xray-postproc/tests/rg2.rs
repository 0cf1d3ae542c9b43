//! The real NEMA RG2 hip radiograph: the collimator bands down its left and right edges.
//!
//! Set `XRAY_POSTPROC_WRITE_DOCS=1` to (re)write `docs/images/rg2-collimator.png`.

use std::path::Path;

use xray_data::io::{load_image, LoadOptions};
use xray_postproc::{
    baseline_segment, detect_collimator, overlay, save_png, BaselineConfig, CollimatorConfig,
    OverlayConfig, Plane, Side,
};

const RG2: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../../shared/data/nema-cr/RG2_UNC"
);

#[test]
fn rg2_collimator_bands_left_and_right() {
    let path = Path::new(RG2);
    if !path.exists() {
        eprintln!(
            "SKIPPED: {} is absent (the shared NEMA data are not on this machine)",
            path.display()
        );
        return;
    }
    let img = load_image(path, &LoadOptions::default()).expect("RG2 loads");
    let (w, h) = (img.width() as usize, img.height() as usize);
    assert_eq!((w, h), (1760, 2140));
    let plane = Plane::from_image(&img).unwrap();
    let c = detect_collimator(&plane, &CollimatorConfig::default()).unwrap();
    for e in &c.edges {
        let ((x0, y0), (x1, y1)) = e.line.clip_to(w, h).unwrap();
        eprintln!("{:?}: ({x0:.1}, {y0:.1}) - ({x1:.1}, {y1:.1}), tilt {:.2} deg, contrast {:.2}, support {:.2}", e.side, e.line.tilt_deg(), e.contrast, e.support);
    }
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
                s += plane.get(x, y) as f64;
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
            "/../../docs/images/rg2-collimator.png"
        );
        save_png(&small, out).unwrap();
        eprintln!("wrote {out}");
    }
}
