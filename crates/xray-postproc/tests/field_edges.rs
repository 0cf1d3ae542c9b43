//! A field given by the caller (a `Collimator` built by hand or read from a `field.json`) is
//! checked before it masks anything: a NaN edge used to be skipped silently (the field then
//! kept the pixels the edge should have masked) and an edge with an infinite offset masked
//! the whole image. Every function that takes such a field refuses it, naming the edge and
//! its field.

use image::GrayImage;
use xray_postproc::{
    baseline_segment, overlay, BaselineConfig, Collimator, FieldEdge, Line, OverlayConfig,
    Pipeline, PipelineConfig, Plane, PostprocError, ProbMap, Side,
};

const W: usize = 6;
const H: usize = 4;

/// A field of `W × H` pixels, collimated left of x = 1.5, plus `extra`.
fn field_with(extra: FieldEdge) -> Collimator {
    let left = FieldEdge {
        side: Side::Left,
        line: Line {
            nx: 1.0,
            ny: 0.0,
            c: 1.5,
        },
        contrast: 0.5,
        support: 1.0,
    };
    Collimator {
        width: W,
        height: H,
        edges: vec![left, extra],
    }
}

/// A right edge at x = 3.5 (field to its left) with `line` changed by `change`.
fn right_edge(change: impl FnOnce(&mut FieldEdge)) -> FieldEdge {
    let mut e = FieldEdge {
        side: Side::Right,
        line: Line {
            nx: -1.0,
            ny: 0.0,
            c: -3.5,
        },
        contrast: 0.5,
        support: 1.0,
    };
    change(&mut e);
    e
}

/// Three classes, every pixel open beam.
fn open_beam() -> Vec<f32> {
    let mut p = vec![0.0f32; 3 * W * H];
    p[..W * H].fill(1.0);
    p
}

/// `r` is an `OutOfRange` error whose parameter name is `name`; returns the message.
fn refused<T: std::fmt::Debug>(r: Result<T, PostprocError>, name: &str) -> String {
    match r {
        Err(e @ PostprocError::OutOfRange { .. }) => {
            let message = e.to_string();
            let PostprocError::OutOfRange { name: n, .. } = e else {
                unreachable!()
            };
            assert_eq!(n, name, "{message}");
            message
        }
        other => panic!("expected OutOfRange naming {name:?}, got {other:?}"),
    }
}

#[test]
fn a_valid_field_masks_outside_it() {
    let p = open_beam();
    let map = ProbMap::new(&p, 3, H, W).unwrap();
    let pipe = Pipeline::new(PipelineConfig::default()).unwrap();
    let field = field_with(right_edge(|_| {}));
    field.validate().unwrap();
    let out = pipe.run_with_field(&map, Some(field), None).unwrap();
    for y in 0..H as u32 {
        let row: Vec<u8> = (0..W as u32)
            .map(|x| out.labels.get_pixel(x, y)[0])
            .collect();
        assert_eq!(row, [255, 255, 0, 0, 255, 255], "row {y}");
    }
}

#[test]
fn run_with_field_refuses_a_nan_edge_naming_it() {
    let p = open_beam();
    let map = ProbMap::new(&p, 3, H, W).unwrap();
    let pipe = Pipeline::new(PipelineConfig::default()).unwrap();
    for (field, name) in [
        (
            field_with(right_edge(|e| e.line.nx = f32::NAN)),
            "field.edges[1].line.nx (right edge)",
        ),
        (
            field_with(right_edge(|e| e.line.ny = f32::NAN)),
            "field.edges[1].line.ny (right edge)",
        ),
        (
            field_with(right_edge(|e| e.line.c = f32::NAN)),
            "field.edges[1].line.c (right edge)",
        ),
    ] {
        let message = refused(pipe.run_with_field(&map, Some(field), None), name);
        assert!(message.contains("NaN"), "{message}");
    }
}

#[test]
fn run_with_field_refuses_an_infinite_offset_naming_it() {
    let p = open_beam();
    let map = ProbMap::new(&p, 3, H, W).unwrap();
    let pipe = Pipeline::new(PipelineConfig::default()).unwrap();
    for c in [f32::INFINITY, f32::NEG_INFINITY] {
        let field = field_with(right_edge(|e| e.line.c = c));
        let message = refused(
            pipe.run_with_field(&map, Some(field), None),
            "field.edges[1].line.c (right edge)",
        );
        assert!(message.contains("inf"), "{message}");
    }
    // The same edge as the only one: index 0.
    let mut field = field_with(right_edge(|e| e.line.c = f32::INFINITY));
    field.edges.remove(0);
    refused(
        pipe.run_with_field(&map, Some(field), None),
        "field.edges[0].line.c (right edge)",
    );
}

#[test]
fn run_with_field_refuses_a_normal_that_is_not_a_unit_vector() {
    let p = open_beam();
    let map = ProbMap::new(&p, 3, H, W).unwrap();
    let pipe = Pipeline::new(PipelineConfig::default()).unwrap();
    for (nx, ny) in [(0.0, 0.0), (-2.0, 0.0), (-0.5, 0.0), (1e30, 1e30)] {
        let field = field_with(right_edge(|e| e.line = Line { nx, ny, c: -3.5 }));
        let message = refused(
            pipe.run_with_field(&map, Some(field), None),
            "field.edges[1].line.(nx, ny) (right edge)",
        );
        assert!(message.contains("unit"), "{message}");
    }
    // Written with four decimals, (1/√10, 3/√10) is still a unit vector.
    let rounded = field_with(right_edge(|e| {
        e.line = Line {
            nx: -0.9487,
            ny: -0.3162,
            c: -4.0,
        }
    }));
    assert!(pipe.run_with_field(&map, Some(rounded), None).is_ok());
}

#[test]
fn run_with_field_refuses_non_finite_contrast_or_support() {
    let p = open_beam();
    let map = ProbMap::new(&p, 3, H, W).unwrap();
    let pipe = Pipeline::new(PipelineConfig::default()).unwrap();
    refused(
        pipe.run_with_field(
            &map,
            Some(field_with(right_edge(|e| e.contrast = f32::INFINITY))),
            None,
        ),
        "field.edges[1].contrast (right edge)",
    );
    refused(
        pipe.run_with_field(
            &map,
            Some(field_with(right_edge(|e| e.support = f32::NAN))),
            None,
        ),
        "field.edges[1].support (right edge)",
    );
    refused(
        pipe.run_with_field(
            &map,
            Some(field_with(right_edge(|e| e.support = 1.5))),
            None,
        ),
        "field.edges[1].support (right edge)",
    );
}

#[test]
fn mask_labels_overlay_and_baseline_refuse_a_bad_edge_too() {
    let bad = field_with(right_edge(|e| e.line.c = f32::INFINITY));
    let mut labels = GrayImage::new(W as u32, H as u32);
    refused(bad.mask_labels(&mut labels), "edges[1].line.c (right edge)");
    assert!(labels.iter().all(|&l| l == 0), "nothing masked");
    refused(bad.validate(), "edges[1].line.c (right edge)");
    let img = vec![1.0f32; W * H];
    let plane = Plane::new(&img, W, H).unwrap();
    refused(
        overlay(&plane, &labels, Some(&bad), &OverlayConfig::default()),
        "field.edges[1].line.c (right edge)",
    );
    refused(
        baseline_segment(&plane, Some(&bad), &BaselineConfig::default()),
        "field.edges[1].line.c (right edge)",
    );
}

/// A field read from JSON goes through the same check (`1e39` is beyond the `f32` range).
#[test]
fn a_field_from_json_with_a_huge_offset_is_refused() {
    let json = r#"{"width": 6, "height": 4, "edges": [
        {"side": "top", "line": {"nx": 0.0, "ny": 1.0, "c": -1e39}, "contrast": 0.5, "support": 1.0}
    ]}"#;
    // serde_json reads an f32 beyond its range as infinity (or, with its float_roundtrip
    // feature, refuses to parse it): either way the field never masks anything.
    let Ok(field) = serde_json::from_str::<Collimator>(json) else {
        return;
    };
    let p = open_beam();
    let map = ProbMap::new(&p, 3, H, W).unwrap();
    let pipe = Pipeline::new(PipelineConfig::default()).unwrap();
    refused(
        pipe.run_with_field(&map, Some(field), None),
        "field.edges[0].line.c (top edge)",
    );
}

/// A field has at most one edge per side: `Collimator::edge` returns only the first, while
/// masking would use both, so a second edge on a side is refused, naming the side and both
/// indices, wherever a caller's field is taken.
#[test]
fn two_edges_on_one_side_are_refused_naming_the_side_and_indices() {
    // Left edge at index 0, right at 1, another left at 2.
    let mut field = field_with(right_edge(|_| {}));
    let mut second_left = field.edges[0];
    second_left.line.c = 2.5;
    field.edges.push(second_left);
    match field.validate() {
        Err(
            e @ PostprocError::DuplicateEdge {
                side: Side::Left,
                first: 0,
                second: 2,
                ..
            },
        ) => {
            let message = e.to_string();
            assert!(
                message.contains("edges[0] and edges[2] are both left edges"),
                "{message}"
            );
        }
        other => panic!("expected DuplicateEdge, got {other:?}"),
    }
    let mut labels = GrayImage::new(W as u32, H as u32);
    assert!(matches!(
        field.mask_labels(&mut labels),
        Err(PostprocError::DuplicateEdge { .. })
    ));
    assert!(labels.iter().all(|&l| l == 0), "nothing masked");

    let p = open_beam();
    let map = ProbMap::new(&p, 3, H, W).unwrap();
    let pipe = Pipeline::new(PipelineConfig::default()).unwrap();
    let e = pipe
        .run_with_field(&map, Some(field.clone()), None)
        .unwrap_err();
    assert!(
        e.to_string()
            .contains("field.edges[0] and field.edges[2] are both left edges"),
        "{e}"
    );
    let img = vec![1.0f32; W * H];
    let plane = Plane::new(&img, W, H).unwrap();
    assert!(matches!(
        overlay(&plane, &labels, Some(&field), &OverlayConfig::default()),
        Err(PostprocError::DuplicateEdge { .. })
    ));
    assert!(matches!(
        baseline_segment(&plane, Some(&field), &BaselineConfig::default()),
        Err(PostprocError::DuplicateEdge { .. })
    ));

    // The same two right edges, adjacent: indices 1 and 2.
    let mut field = field_with(right_edge(|_| {}));
    field.edges.push(right_edge(|e| e.line.c = -4.0));
    assert!(matches!(
        field.validate(),
        Err(PostprocError::DuplicateEdge {
            side: Side::Right,
            first: 1,
            second: 2,
            ..
        })
    ));
    // One edge per side, all four: valid.
    let four = Collimator {
        width: W,
        height: H,
        edges: vec![
            field.edges[0],
            FieldEdge {
                side: Side::Top,
                line: Line {
                    nx: 0.0,
                    ny: 1.0,
                    c: 0.5,
                },
                contrast: 0.5,
                support: 1.0,
            },
            field.edges[1],
            FieldEdge {
                side: Side::Bottom,
                line: Line {
                    nx: 0.0,
                    ny: -1.0,
                    c: -2.5,
                },
                contrast: 0.5,
                support: 1.0,
            },
        ],
    };
    four.validate().unwrap();
}

/// A field of zero width or height is refused, naming which.
#[test]
fn a_field_of_zero_width_or_height_is_refused() {
    for (width, height, name) in [(0, H, "width"), (W, 0, "height"), (0, 0, "width")] {
        let field = Collimator {
            width,
            height,
            edges: Vec::new(),
        };
        let message = refused(field.validate(), name);
        assert!(message.contains("at least 1 pixel"), "{message}");
    }
    let p = open_beam();
    let map = ProbMap::new(&p, 3, H, W).unwrap();
    let pipe = Pipeline::new(PipelineConfig::default()).unwrap();
    let field = Collimator {
        width: 0,
        height: H,
        edges: Vec::new(),
    };
    refused(pipe.run_with_field(&map, Some(field), None), "field.width");
}
