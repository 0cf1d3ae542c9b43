//! `ProbMap`'s and `Plane`'s accessors: the non-panicking `get`, `get_plane` and
//! `Plane::get` agree with `prob`, `plane` and `Plane::value` inside the map and return
//! `None` outside it, one index at a time; the panicking ones panic for an `x` past the
//! width instead of reading the next row.

use xray_postproc::{Plane, ProbMap};

/// A 3-class, 4 × 2 map whose values encode (class, x, y).
fn values() -> Vec<f32> {
    let (c, h, w) = (3, 2, 4);
    (0..c * h * w).map(|i| i as f32 / 100.0).collect()
}

#[test]
fn get_and_get_plane_agree_with_prob_and_plane_inside_the_map() {
    let v = values();
    let map = ProbMap::new(&v, 3, 2, 4).unwrap();
    for c in 0..3 {
        assert_eq!(map.get_plane(c), Some(map.plane(c)));
        assert_eq!(map.get_plane(c).unwrap().len(), 8);
        for y in 0..2 {
            for x in 0..4 {
                assert_eq!(map.get(c, x, y), Some(map.prob(c, x, y)));
                assert_eq!(map.get(c, x, y), Some(v[(c * 2 + y) * 4 + x]));
            }
        }
    }
}

#[test]
fn get_and_get_plane_return_none_outside_the_map() {
    let v = values();
    let map = ProbMap::new(&v, 3, 2, 4).unwrap();
    assert_eq!(map.get_plane(3), None);
    assert_eq!(map.get_plane(usize::MAX), None);
    for (c, x, y) in [
        (3, 0, 0),
        (0, 4, 0), // past the width on the first row: not the second row's first pixel
        (0, 0, 2),
        (2, 4, 1),
        (2, 3, 2),
        (usize::MAX, 0, 0),
        (0, usize::MAX, 0),
        (0, 0, usize::MAX),
        (usize::MAX, usize::MAX, usize::MAX),
    ] {
        assert_eq!(map.get(c, x, y), None, "class {c}, pixel ({x}, {y})");
    }
}

/// `prob` panics as documented for an `x` past the width, also where the flat index would
/// land on a pixel of the next row.
#[test]
#[should_panic(expected = "outside the map")]
fn prob_panics_for_x_past_the_width() {
    let v = values();
    let map = ProbMap::new(&v, 3, 2, 4).unwrap();
    let _ = map.prob(0, 4, 0);
}

#[test]
#[should_panic]
fn plane_panics_past_the_last_class() {
    let v = values();
    let map = ProbMap::new(&v, 3, 2, 4).unwrap();
    let _ = map.plane(3);
}

/// `Plane::value` checks `x` against the width on its own: `(width, 0)` would otherwise read
/// the first pixel of the second row.
#[test]
#[should_panic(expected = "outside the image")]
fn plane_value_panics_for_x_past_the_width() {
    let v = [0.0f32, 1.0, 2.0, 3.0, 4.0, 5.0]; // 3 x 2
    let plane = Plane::new(&v, 3, 2).unwrap();
    let _ = plane.value(3, 0);
}

#[test]
#[should_panic(expected = "outside the image")]
fn plane_value_panics_for_y_past_the_height() {
    let v = [0.0f32, 1.0, 2.0, 3.0, 4.0, 5.0]; // 3 x 2
    let plane = Plane::new(&v, 3, 2).unwrap();
    let _ = plane.value(0, 2);
}

#[test]
fn plane_value_and_get_read_row_major_inside_the_image() {
    let v = [0.0f32, 1.0, 2.0, 3.0, 4.0, 5.0]; // 3 x 2
    let plane = Plane::new(&v, 3, 2).unwrap();
    for y in 0..2 {
        for x in 0..3 {
            assert_eq!(plane.value(x, y), v[y * 3 + x]);
            assert_eq!(plane.get(x, y), Some(v[y * 3 + x]));
        }
    }
    for (x, y) in [(3, 0), (0, 2), (3, 1), (usize::MAX, 0), (0, usize::MAX)] {
        assert_eq!(plane.get(x, y), None, "pixel ({x}, {y})");
    }
}
