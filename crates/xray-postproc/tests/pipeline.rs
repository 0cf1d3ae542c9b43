//! The pipeline, the classical baseline and overlays on synthetic cases with known answers.

mod common;

use common::{make, EdgeSpec, PhantomSpec};
use image::GrayImage;
use rand::rngs::StdRng;
use rand::SeedableRng;
use xray_postproc::{
    baseline_segment, detect_collimator, overlay, save_png, BaselineConfig, CollimatorConfig,
    OverlayConfig, Pipeline, PipelineConfig, Plane, PostprocError, ProbMap, Side, CLASS_COLOURS,
    FIELD_EDGE_COLOUR, IGNORE_LABEL,
};

/// Three vertical bands (open beam | soft tissue | bone) inside a field collimated on the
/// left and right; the ground truth is known exactly.
fn bands(w: usize, h: usize) -> (Vec<f32>, Vec<u8>) {
    let mut img = vec![0.0f32; w * h];
    let mut truth = vec![0u8; w * h];
    for y in 0..h {
        for x in 0..w {
            let class = if x < w / 3 {
                0
            } else if x < 2 * w / 3 {
                1
            } else {
                2
            };
            let t = [1.0, 0.35, 0.12][class];
            let field = if x < 12 || x >= w - 12 { 0.02 } else { 1.0 };
            // Deterministic, mild texture.
            let tex = 1.0 + 0.03 * (((x * 7 + y * 13) % 17) as f32 / 17.0 - 0.5);
            img[y * w + x] = 1000.0 * t * field * tex;
            truth[y * w + x] = if field < 1.0 {
                IGNORE_LABEL
            } else {
                class as u8
            };
        }
    }
    (img, truth)
}

#[test]
fn baseline_recovers_three_bands_inside_the_field() {
    let (w, h) = (120, 60);
    let (img, truth) = bands(w, h);
    let plane = Plane::new(&img, w, h).unwrap();
    let field = detect_collimator(&plane, &CollimatorConfig::default()).unwrap();
    assert_eq!(
        field.edges.iter().map(|e| e.side).collect::<Vec<_>>(),
        vec![Side::Left, Side::Right]
    );
    let l = baseline_segment(&plane, Some(&field), &BaselineConfig::default()).unwrap();
    let agree = l.iter().zip(&truth).filter(|(a, b)| a == b).count();
    assert!(
        agree as f32 >= 0.97 * (w * h) as f32,
        "{agree} of {} pixels agree",
        w * h
    );
    // Without open beam in the field, no class is called open beam.
    let img2: Vec<f32> = img
        .iter()
        .zip(&truth)
        .map(|(&v, &t)| if t == 0 { 350.0 } else { v })
        .collect();
    let l2 = baseline_segment(
        &Plane::new(&img2, w, h).unwrap(),
        Some(&field),
        &BaselineConfig::default(),
    )
    .unwrap();
    let n0 = l2.iter().filter(|&&v| v == 0).count();
    assert_eq!(
        n0,
        0,
        "{n0} pixels called open beam; {} soft, {} bone",
        l2.iter().filter(|&&v| v == 1).count(),
        l2.iter().filter(|&&v| v == 2).count()
    );
}

#[test]
fn pipeline_masks_outside_the_field_and_applies_thresholds() {
    let (w, h) = (120, 60);
    let (img, truth) = bands(w, h);
    // Probabilities: the truth with confidence 0.7, soft tissue ones at 0.55.
    let n = w * h;
    let mut p = vec![0.0f32; 3 * n];
    for i in 0..n {
        let c = if truth[i] == IGNORE_LABEL {
            1
        } else {
            truth[i] as usize
        };
        let conf = if c == 1 { 0.55 } else { 0.7 };
        for k in 0..3 {
            p[k * n + i] = if k == c { conf } else { (1.0 - conf) / 2.0 };
        }
    }
    let probs = ProbMap::new(&p, 3, h, w).unwrap();
    let plane = Plane::new(&img, w, h).unwrap();
    let pipe = Pipeline::from_json(r#"{"thresholds": {"soft_threshold": 0.5}, "cleanup": {"min_component_size": [20, 20, 20]}}"#).unwrap();
    let out = pipe.run(&plane, &probs, None).unwrap();
    assert_eq!(
        out.labels,
        GrayImage::from_raw(w as u32, h as u32, truth.clone()).unwrap()
    );
    // A stricter soft-tissue threshold turns soft tissue into the next most likely class.
    let strict = Pipeline::from_json(r#"{"thresholds": {"soft_threshold": 0.6}}"#).unwrap();
    let out = strict.run(&plane, &probs, None).unwrap();
    assert_eq!(out.labels.iter().filter(|&&v| v == 1).count(), 0);
    assert!(out.field.is_some());
}

#[test]
fn pipeline_errors() {
    assert!(matches!(
        Pipeline::from_json(r#"{"thresholds": {"soft_threshold": 2.0}}"#),
        Err(PostprocError::OutOfRange { .. })
    ));
    assert!(matches!(
        Pipeline::from_json(r#"{"threshold": {}}"#),
        Err(PostprocError::Config(_))
    ));
    assert!(matches!(
        Pipeline::from_json(r#"{"collimator": {"max_angle_deg": 80}}"#),
        Err(PostprocError::OutOfRange { .. })
    ));
    let img = vec![1.0f32; 20 * 10];
    let p = vec![0.5f32; 2 * 10 * 10];
    let pipe = Pipeline::new(PipelineConfig::default()).unwrap();
    let e = pipe
        .run(
            &Plane::new(&img, 20, 10).unwrap(),
            &ProbMap::new(&p, 2, 10, 10).unwrap(),
            None,
        )
        .unwrap_err();
    assert!(matches!(e, PostprocError::ShapeMismatch { .. }), "{e}");
    assert!(matches!(
        Plane::new(&[], 0, 0),
        Err(PostprocError::Empty { .. })
    ));
    assert!(matches!(
        Plane::new(&[1.0, f32::NAN], 2, 1),
        Err(PostprocError::NonFinite { x: 1, .. })
    ));
    assert!(matches!(
        Plane::new(&[1.0; 5], 2, 2),
        Err(PostprocError::ShapeMismatch { .. })
    ));
}

/// `run` refuses a probability map of another size than its image with the field detection
/// off too (its doc promises the error; it used to label the map and return labels of the
/// map's size); `run_with_field`, which takes no image, still runs.
#[test]
fn run_refuses_a_map_of_another_size_without_field_detection() {
    let img = vec![1.0f32; 20 * 10];
    let p = vec![1.0f32 / 3.0; 3 * 10 * 10];
    let probs = ProbMap::new(&p, 3, 10, 10).unwrap();
    let pipe = Pipeline::new(PipelineConfig {
        detect_field: false,
        ..PipelineConfig::default()
    })
    .unwrap();
    let e = pipe
        .run(&Plane::new(&img, 20, 10).unwrap(), &probs, None)
        .unwrap_err();
    assert!(matches!(e, PostprocError::ShapeMismatch { .. }), "{e}");
    assert!(e.to_string().contains("20 x 10"), "{e}");
    let out = pipe.run_with_field(&probs, None, None).unwrap();
    assert_eq!(out.labels.dimensions(), (10, 10));
}

/// A 1 × 1 image runs through every clean-up step, field detection included (the
/// connected-component labelling panicked on it).
#[test]
fn a_one_pixel_image_runs_through_the_pipeline() {
    let pipe = Pipeline::from_json(
        r#"{"cleanup": {"keep_largest": [1], "min_component_size": [0, 5, 5],
            "fill_holes": [{"class": 2, "max_area": 0}], "bone_open_radius": 1}}"#,
    )
    .unwrap();
    let image = Plane::new(&[500.0], 1, 1).unwrap();
    for (probs, want) in [
        ([0.1f32, 0.8, 0.1], 1u8),
        ([0.1, 0.1, 0.8], 2),
        ([0.8, 0.1, 0.1], 0),
    ] {
        let map = ProbMap::new(&probs, 3, 1, 1).unwrap();
        let out = pipe.run(&image, &map, None).unwrap();
        assert_eq!(out.labels.as_raw(), &vec![want]);
        let out = pipe.run_with_field(&map, None, None).unwrap();
        assert_eq!(out.labels.as_raw(), &vec![want]);
    }
}

/// A clean-up written for three classes (docs/postprocessing.md's example) on a two-class
/// map is refused, naming the field, instead of skipping the steps whose class the map
/// lacks; steps that are off, and classes the map has, pass.
#[test]
fn cleanup_classes_must_exist_in_the_map() {
    let three_class = r#"{"cleanup": {"bone_open_radius": 1, "min_component_size": [50, 50, 50]},
                          "detect_field": false}"#;
    let pipe = Pipeline::from_json(three_class).unwrap();
    let p2 = vec![0.5f32; 2 * 8 * 8];
    let e = pipe
        .run_with_field(&ProbMap::new(&p2, 2, 8, 8).unwrap(), None, None)
        .unwrap_err();
    assert!(
        matches!(
            e,
            PostprocError::ClassOutOfRange {
                class: 2,
                classes: 2,
                ..
            }
        ),
        "{e}"
    );
    assert!(e.to_string().contains("cleanup.bone_class"), "{e}");
    let p3 = vec![1.0f32 / 3.0; 3 * 8 * 8];
    assert!(pipe
        .run_with_field(&ProbMap::new(&p3, 3, 8, 8).unwrap(), None, None)
        .is_ok());
    // Bone steps off: only the component sizes name classes, and the third is set.
    let sizes = Pipeline::from_json(r#"{"cleanup": {"min_component_size": [0, 0, 5]}}"#).unwrap();
    let e = sizes
        .run_with_field(&ProbMap::new(&p2, 2, 8, 8).unwrap(), None, None)
        .unwrap_err();
    assert!(e.to_string().contains("min_component_size"), "{e}");
    for json in [
        r#"{"cleanup": {"keep_largest": [3]}}"#,
        r#"{"cleanup": {"fill_holes": [{"class": 3, "max_area": 0}]}}"#,
    ] {
        let pipe = Pipeline::from_json(json).unwrap();
        let e = pipe
            .run_with_field(&ProbMap::new(&p3, 3, 8, 8).unwrap(), None, None)
            .unwrap_err();
        assert!(
            matches!(e, PostprocError::ClassOutOfRange { class: 3, .. }),
            "{json}: {e}"
        );
    }
    // The default clean-up (bone steps off, nothing else) fits any class count.
    let default = Pipeline::new(PipelineConfig::default()).unwrap();
    assert!(default
        .run_with_field(&ProbMap::new(&p2, 2, 8, 8).unwrap(), None, None)
        .is_ok());
}

#[test]
fn refused_numbers_print_readably() {
    // Refused parameters were printed in full: a threshold of 1e30 as the 31 digits
    // 1000000015047466200000000000000, one of 1.1 as 1.100000023841858 (the f32 widened to
    // f64). A threshold of 1e308 does not reach the check as 1e308: the f32 field saturates it
    // to inf while parsing, and the message says `inf`.
    let refused = |json: &str| Pipeline::from_json(json).unwrap_err().to_string();
    let e = refused(r#"{"thresholds": {"soft_threshold": 1e30}}"#);
    assert!(
        e.contains("thresholds.soft_threshold = 1e30 is out of range"),
        "{e}"
    );
    let e = refused(r#"{"thresholds": {"per_category": {"chest": -1e-7}}}"#);
    assert!(e.contains("= -1e-7 is out of range"), "{e}");
    let e = refused(r#"{"thresholds": {"min_confidence": [0.5, 1.1]}}"#);
    assert!(
        e.contains("thresholds.min_confidence[1] = 1.1 is out of range"),
        "{e}"
    );
    let e = refused(r#"{"collimator": {"max_angle_deg": 1e30}}"#);
    assert!(e.contains("max_angle_deg = 1e30 is out of range"), "{e}");
    let e = refused(r#"{"collimator": {"working_size": 20000000}}"#);
    assert!(e.contains("working_size = 2e7 is out of range"), "{e}");
    let e = ProbMap::new(&[0.5, 1e30], 1, 1, 2).unwrap_err().to_string();
    assert!(e.contains("holds 1e30 at class 0, pixel (x=1, y=0)"), "{e}");
}

#[test]
fn overlay_colours_legend_and_field() {
    let mut rng = StdRng::seed_from_u64(9);
    let edges = vec![
        EdgeSpec {
            side: Side::Left,
            tilt_deg: 5.0,
            inset: 30.0,
        },
        EdgeSpec {
            side: Side::Bottom,
            tilt_deg: 0.0,
            inset: 20.0,
        },
    ];
    let mut spec = PhantomSpec::new(200, 160, edges);
    spec.anatomy = true;
    let p = make(&spec, &mut rng);
    let plane = Plane::new(&p.image, 200, 160).unwrap();
    let field = detect_collimator(&plane, &CollimatorConfig::default()).unwrap();
    let labels = baseline_segment(&plane, Some(&field), &BaselineConfig::default()).unwrap();
    let cfg = OverlayConfig {
        alpha: 1.0,
        contours: false,
        legend: false,
        ..Default::default()
    };
    let rgb = overlay(&plane, &labels, Some(&field), &cfg).unwrap();
    // With alpha 1, a class pixel away from edges is exactly its colour.
    let (x, y) = (150, 60);
    let l = labels.get_pixel(x, y)[0] as usize;
    assert_eq!(rgb.get_pixel(x, y).0, CLASS_COLOURS[l]);
    // The left edge is drawn in the edge colour.
    let e = field.edge(Side::Left).unwrap().line;
    let yy = 80.0;
    let xx = ((e.c - e.ny * yy) / e.nx).round() as u32;
    assert_eq!(rgb.get_pixel(xx, yy as u32).0, FIELD_EDGE_COLOUR);
    // Outside the field: darkened grey.
    let px = rgb.get_pixel(2, 80).0;
    assert!(px[0] == px[1] && px[1] == px[2]);
    // Legend drawn in the corner; save round trip.
    let with_legend = overlay(&plane, &labels, Some(&field), &OverlayConfig::default()).unwrap();
    assert_ne!(with_legend.get_pixel(4, 4), rgb.get_pixel(4, 4));
    let path =
        std::env::temp_dir().join(format!("xray-postproc-overlay-{}.png", std::process::id()));
    save_png(&path, &with_legend).unwrap();
    let back = image::open(&path).unwrap().to_rgb8();
    assert_eq!(back, with_legend);
    std::fs::remove_file(&path).ok();
    // Errors.
    let bad = OverlayConfig {
        alpha: 1.5,
        ..Default::default()
    };
    assert!(overlay(&plane, &labels, None, &bad).is_err());
    assert!(overlay(&plane, &GrayImage::new(3, 3), None, &cfg).is_err());
    assert!(save_png("/nonexistent-dir/x.png", &rgb).is_err());
}

/// The default config refuses a one-class map (its `soft_class` is 1), saying so and what to
/// do; two classes are the fewest it takes. `run` refuses the map before detecting the field.
#[test]
fn a_one_class_map_is_refused_saying_what_to_do() {
    let (w, h) = (16, 12);
    let img = vec![100.0f32; w * h];
    let image = Plane::new(&img, w, h).unwrap();
    let one = vec![1.0f32; w * h];
    let probs = ProbMap::new(&one, 1, h, w).unwrap();
    let pipe = Pipeline::new(PipelineConfig::default()).unwrap();
    for e in [
        pipe.run(&image, &probs, None).unwrap_err(),
        pipe.run_with_field(&probs, None, None).unwrap_err(),
    ] {
        assert!(
            matches!(
                e,
                PostprocError::ClassOutOfRange {
                    name: "soft_class",
                    class: 1,
                    classes: 1,
                    ..
                }
            ),
            "{e:?}"
        );
        let message = e.to_string();
        for part in [
            "soft_class refers to class 1, but there is only 1 class (0..1)",
            "thresholds.soft_class",
            "give a map of at least two classes",
            "the two planes 1 - p and p",
        ] {
            assert!(message.contains(part), "{part:?} not in: {message}");
        }
    }
    // Two planes (1 - p and p) are accepted.
    let two: Vec<f32> = vec![0.25f32; w * h]
        .into_iter()
        .chain(vec![0.75f32; w * h])
        .collect();
    let out = pipe
        .run_with_field(&ProbMap::new(&two, 2, h, w).unwrap(), None, None)
        .unwrap();
    assert!(out.labels.iter().all(|&l| l == 1));
    // So is a one-class map under a soft_class the map has (every pixel is class 0).
    let soft0 = Pipeline::from_json(r#"{"thresholds": {"soft_class": 0}}"#).unwrap();
    let out = soft0.run_with_field(&probs, None, None).unwrap();
    assert!(out.labels.iter().all(|&l| l == 0));
}
