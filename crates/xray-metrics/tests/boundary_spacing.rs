//! Boundary distances at a spacing that differs between rows and columns and from image to
//! image, in a unit the report states: closed-form cases, the exact transform against brute
//! force, unit mixing refused, and reports written before the unit was recorded.

use serde_json::json;
use xray_metrics::*;

mod common;
use common::Rng;

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-12 * b.abs().max(1.0)
}

/// Class 1 on the pixels `on(x, y)` says, class 0 elsewhere (`w × h`, row-major).
fn labels(w: usize, h: usize, on: impl Fn(usize, usize) -> bool) -> Vec<u8> {
    (0..w * h).map(|i| u8::from(on(i % w, i / w))).collect()
}

/// Class-major probabilities whose arg-max is `pred` (two classes).
fn probs_of(pred: &[u8]) -> Vec<f32> {
    let p1: Vec<f32> = pred
        .iter()
        .map(|&p| if p == 1 { 0.9 } else { 0.1 })
        .collect();
    p1.iter()
        .map(|p| 1.0 - p)
        .chain(p1.iter().copied())
        .collect()
}

fn class1(d: &[Option<SurfaceDistance>]) -> SurfaceDistance {
    d[1].expect("class 1 in truth and prediction")
}

/// 0.2 mm between rows, 0.1 mm between columns: a strip predicted k pixels off is
/// k × 0.1 mm off when it moved across (columns) and k × 0.2 mm when it moved down (rows).
#[test]
fn a_strip_k_pixels_off_is_k_times_that_axis_s_spacing_away() {
    let (w, h) = (16, 12);
    let spacing = Spacing::mm(0.2, 0.1);
    for k in 1..=3usize {
        // A vertical strip (one column) moved k columns to the right.
        let truth = labels(w, h, |x, _| x == 4);
        let pred = labels(w, h, |x, _| x == 4 + k);
        let d = class1(&surface_distances_with_spacing(&truth, &pred, w, h, 2, spacing).unwrap());
        let want = k as f64 * 0.1;
        for got in [d.hausdorff, d.hd95, d.assd] {
            assert!(close(got, want), "across by {k}: {d:?}, want {want}");
        }
        // A horizontal strip (one row) moved k rows down.
        let truth = labels(w, h, |_, y| y == 3);
        let pred = labels(w, h, |_, y| y == 3 + k);
        let d = class1(&surface_distances_with_spacing(&truth, &pred, w, h, 2, spacing).unwrap());
        let want = k as f64 * 0.2;
        for got in [d.hausdorff, d.hd95, d.assd] {
            assert!(close(got, want), "down by {k}: {d:?}, want {want}");
        }
    }
}

/// The spacing decides which pixel is nearest: 2 rows down (0.4 mm) is farther than
/// 3 columns across (0.3 mm), though nearer in pixels. A transform in pixels scaled
/// afterwards would measure 0.4 mm (or 2 × any one spacing).
#[test]
fn the_nearest_pixel_is_nearest_in_millimetres_not_in_pixels() {
    let (w, h) = (8, 6);
    let spacing = Spacing::mm(0.2, 0.1);
    let mut features = vec![false; w * h];
    features[2 * w] = true; // (x 0, y 2)
    features[3] = true; // (x 3, y 0)
    let d = squared_distance_transform_with_spacing(&features, w, h, spacing).unwrap();
    assert!(close(d[0].sqrt(), 0.3), "{}", d[0].sqrt());
    // Diagonal: 3 rows and 4 columns from (x 3, y 0) is (x 7, y 3): 0.6 and 0.4 mm.
    assert!(close(d[3 * w + 7], 0.6f64.powi(2) + 0.4f64.powi(2)));
}

/// The separable transform is exact at any spacing: brute force over every feature pixel
/// agrees on random masks, for pixels, isotropic and anisotropic spacings.
#[test]
fn the_anisotropic_transform_is_the_brute_force_minimum() {
    let mut rng = Rng(7);
    for case in 0..60 {
        let (w, h) = (1 + case % 9, 1 + (case * 7) % 11);
        let density = 1 + case % 5;
        let features: Vec<bool> = (0..w * h)
            .map(|_| rng.next_u64() % 16 < density as u64)
            .collect();
        for spacing in [
            Spacing::PIXEL,
            Spacing::mm(0.25, 0.25),
            Spacing::mm(0.2, 0.1),
            Spacing::mm(0.07, 1.3),
        ] {
            let d = squared_distance_transform_with_spacing(&features, w, h, spacing).unwrap();
            for (i, &got) in d.iter().enumerate() {
                let (x, y) = ((i % w) as f64, (i / w) as f64);
                let want = (0..w * h)
                    .filter(|&j| features[j])
                    .map(|j| {
                        let dx = (x - (j % w) as f64) * spacing.column;
                        let dy = (y - (j / w) as f64) * spacing.row;
                        dx * dx + dy * dy
                    })
                    .fold(f64::INFINITY, f64::min);
                assert!(
                    got == want || close(got, want),
                    "case {case} {w}x{h} {spacing:?} pixel {i}: {got} vs {want}"
                );
            }
        }
        // At 1 × 1 the pixel transform's numbers, to the bit.
        assert_eq!(
            squared_distance_transform_with_spacing(&features, w, h, Spacing::PIXEL).unwrap(),
            squared_distance_transform(&features, w, h).unwrap()
        );
    }
}

/// The `f64` API is the isotropic case of the new one, to the last bit.
#[test]
fn the_isotropic_api_is_unchanged() {
    let mut rng = Rng(11);
    let (w, h) = (13, 9);
    for _ in 0..10 {
        let truth: Vec<u8> = (0..w * h).map(|_| (rng.next_u64() % 3) as u8).collect();
        let pred: Vec<u8> = (0..w * h).map(|_| (rng.next_u64() % 3) as u8).collect();
        for s in [1.0, 0.143, 0.2] {
            let old = surface_distances(&truth, &pred, w, h, 3, s).unwrap();
            let new =
                surface_distances_with_spacing(&truth, &pred, w, h, 3, Spacing::mm(s, s)).unwrap();
            assert_eq!(old, new);
        }
    }
    let e = surface_distances(&[0], &[0], 1, 1, 2, 0.0).unwrap_err();
    assert!(
        e.to_string().contains("pixel spacing must be positive"),
        "{e}"
    );
    let e =
        surface_distances_with_spacing(&[0], &[0], 1, 1, 2, Spacing::mm(0.1, -1.0)).unwrap_err();
    assert!(e.to_string().contains("[0.1, -1]"), "{e}");
}

fn two_class() -> EvalConfig {
    EvalConfig::new(["background", "object"])
}

/// A vertical strip predicted one column off: 1 column away.
fn strip_image() -> (Vec<u8>, Vec<f32>, usize, usize) {
    let (w, h) = (8, 5);
    let truth = labels(w, h, |x, _| x == 2);
    let pred = labels(w, h, |x, _| x == 3);
    (truth, probs_of(&pred), w, h)
}

#[test]
fn each_image_is_measured_at_its_own_spacing() {
    let (truth, probs, w, h) = strip_image();
    let mut ev = Evaluator::new(two_class()).unwrap();
    ev.add_image_with_spacing(&truth, &probs, w, h, Spacing::mm(0.2, 0.1))
        .unwrap();
    ev.add_image_with_spacing(&truth, &probs, w, h, Spacing::mm(0.1, 0.3))
        .unwrap();
    let report = ev.finish().unwrap();
    let b = &report.boundary.as_ref().unwrap()[1];
    // One column off: 0.1 mm and 0.3 mm; the mean over images 0.2 mm.
    assert!(close(b.hausdorff.unwrap(), 0.2), "{b:?}");
    assert_eq!(report.distance_unit(), DistanceUnit::Millimetres);
    let s = report.spacing.clone().unwrap();
    assert_eq!((s.row, s.column), ([0.1, 0.2], [0.1, 0.3]));
    assert_eq!(s.images_with_own_spacing, 2);
    // No one spacing to name: null in JSON, NaN back.
    assert!(report.pixel_spacing.is_nan());
    let json: serde_json::Value = serde_json::from_str(&report.to_json().unwrap()).unwrap();
    assert!(json["pixel_spacing"].is_null(), "{json}");
    assert_eq!(json["spacing"]["unit"], "mm");
    assert_eq!(json["spacing"]["column"], json!([0.1, 0.3]));
    let back = Report::from_json(&report.to_json().unwrap()).unwrap();
    assert!(back.pixel_spacing.is_nan());
    assert_eq!(back.spacing, report.spacing);
    let md = report.to_markdown();
    assert!(md.contains("| HD95 mm | ASSD mm |"), "{md}");
    assert!(
        md.contains("| boundary distances in | 0.1–0.2 × 0.1–0.3 mm (rows × columns), each image at its own |"),
        "{md}"
    );
    // The same anisotropic spacing for every image: still no isotropic one to name.
    let mut ev = Evaluator::new(two_class()).unwrap();
    ev.add_image_with_spacing(&truth, &probs, w, h, Spacing::mm(0.2, 0.1))
        .unwrap();
    let report = ev.finish().unwrap();
    assert!(report.pixel_spacing.is_nan());
    assert!(report.spacing.as_ref().unwrap().is_uniform());
    // One isotropic spacing given with every image: named.
    let mut ev = Evaluator::new(two_class()).unwrap();
    ev.add_image_with_spacing(&truth, &probs, w, h, Spacing::mm(0.15, 0.15))
        .unwrap();
    assert_eq!(ev.finish().unwrap().pixel_spacing, 0.15);
}

#[test]
fn pixels_and_millimetres_are_never_averaged_together() {
    let (truth, probs, w, h) = strip_image();
    // Pixels (the default configuration) first, then an image in mm: refused, not added.
    let mut ev = Evaluator::new(two_class()).unwrap();
    ev.add_image(&truth, &probs, w, h).unwrap();
    let e = ev
        .add_image_with_spacing(&truth, &probs, w, h, Spacing::mm(0.2, 0.2))
        .unwrap_err();
    assert!(
        matches!(
            e,
            MetricsError::MixedDistanceUnits {
                image: 1,
                unit: DistanceUnit::Millimetres,
                earlier: DistanceUnit::Pixels
            }
        ),
        "{e}"
    );
    assert!(
        e.to_string().contains("in mm, the images before it in px"),
        "{e}"
    );
    assert_eq!(ev.images(), 1);
    // Merging an evaluator whose images are in mm into one in px: refused, nothing added.
    let mut mm = Evaluator::new(two_class()).unwrap();
    mm.add_image_with_spacing(&truth, &probs, w, h, Spacing::mm(0.2, 0.2))
        .unwrap();
    let e = ev.merge(mm.clone()).unwrap_err();
    assert!(
        matches!(e, MetricsError::MixedDistanceUnits { image: 1, .. }),
        "{e}"
    );
    assert_eq!(ev.images(), 1);
    // Two evaluators in mm merge, their ranges joined.
    let mut other = Evaluator::new(two_class()).unwrap();
    other
        .add_image_with_spacing(&truth, &probs, w, h, Spacing::mm(0.1, 0.3))
        .unwrap();
    mm.merge(other).unwrap();
    let s = mm.finish().unwrap().spacing.unwrap();
    assert_eq!(
        (s.row, s.column, s.images_with_own_spacing),
        ([0.1, 0.2], [0.2, 0.3], 2)
    );
    // Without boundary distances there is nothing to mix.
    let mut off = Evaluator::new(EvalConfig {
        boundary: false,
        ..two_class()
    })
    .unwrap();
    off.add_image(&truth, &probs, w, h).unwrap();
    off.add_image_with_spacing(&truth, &probs, w, h, Spacing::mm(0.2, 0.2))
        .unwrap();
    assert_eq!(off.finish().unwrap().spacing, None);
    // A spacing in pixels is 1 × 1.
    let e = Evaluator::new(EvalConfig {
        pixel_spacing: 0.5,
        distance_unit: Some(DistanceUnit::Pixels),
        ..two_class()
    })
    .unwrap_err();
    assert!(e.to_string().contains("distance_unit px"), "{e}");
}

/// A spacing of exactly 1 mm is millimetres: the unit is stated, not read from the value.
#[test]
fn one_millimetre_is_labelled_mm() {
    let (truth, probs, w, h) = strip_image();
    let mut ev = Evaluator::new(EvalConfig {
        pixel_spacing: 1.0,
        distance_unit: Some(DistanceUnit::Millimetres),
        ..two_class()
    })
    .unwrap();
    ev.add_image(&truth, &probs, w, h).unwrap();
    let report = ev.finish().unwrap();
    assert_eq!(report.distance_unit(), DistanceUnit::Millimetres);
    assert_eq!(report.pixel_spacing, 1.0);
    let md = report.to_markdown();
    assert!(md.contains("| HD95 mm | ASSD mm |"), "{md}");
    assert!(md.contains("| boundary distances in | 1 mm |"), "{md}");
    let back = Report::from_json(&report.to_json().unwrap()).unwrap();
    assert_eq!(back.distance_unit(), DistanceUnit::Millimetres);
    // The default stays pixels, and says so.
    let mut ev = Evaluator::new(two_class()).unwrap();
    ev.add_image(&truth, &probs, w, h).unwrap();
    let report = ev.finish().unwrap();
    assert_eq!(report.distance_unit(), DistanceUnit::Pixels);
    assert!(report.to_markdown().contains("| HD95 px | ASSD px |"));
    // ... and its table is as it was (no spacing row: `px` says it all).
    assert!(!report.to_markdown().contains("boundary distances in"));
}

/// A report.json written before the unit was recorded (no `spacing`, perhaps no
/// `pixel_spacing`) loads and reads as it did: pixels at 1, millimetres otherwise.
#[test]
fn a_report_written_before_the_unit_reads_as_it_did() {
    let (truth, probs, w, h) = strip_image();
    let mut ev = Evaluator::new(EvalConfig {
        pixel_spacing: 0.2,
        ..two_class()
    })
    .unwrap();
    ev.add_image(&truth, &probs, w, h).unwrap();
    let new = serde_json::to_value(ev.finish().unwrap()).unwrap();
    let old_of = |spacing: Option<f64>| {
        let mut old = new.clone();
        let fields = old.as_object_mut().unwrap();
        fields.remove("spacing");
        match spacing {
            Some(s) => {
                fields.insert("pixel_spacing".into(), json!(s));
            }
            None => {
                fields.remove("pixel_spacing");
            }
        }
        Report::from_json(&old.to_string()).unwrap()
    };
    let mm = old_of(Some(0.2));
    assert_eq!((mm.spacing.clone(), mm.pixel_spacing), (None, 0.2));
    assert_eq!(mm.distance_unit(), DistanceUnit::Millimetres);
    assert!(mm.to_markdown().contains("| HD95 mm | ASSD mm |"));
    assert!(!mm.to_markdown().contains("boundary distances in"));
    let px = old_of(Some(1.0));
    assert_eq!(px.distance_unit(), DistanceUnit::Pixels);
    assert!(px.to_markdown().contains("| HD95 px | ASSD px |"));
    let oldest = old_of(None);
    assert_eq!(oldest.pixel_spacing, 1.0);
    assert_eq!(oldest.distance_unit(), DistanceUnit::Pixels);
    // An EvalConfig written before distance_unit reads as None: the unit from the value.
    let mut cfg = serde_json::to_value(two_class()).unwrap();
    cfg.as_object_mut().unwrap().remove("distance_unit");
    let cfg: EvalConfig = serde_json::from_value(cfg).unwrap();
    assert_eq!(cfg.distance_unit, None);
}
