//! Clean-up on label maps with known answers.

use image::{GrayImage, Luma};
use xray_postproc::{
    bone_cleanup, cleanup, fill_holes, keep_largest_component, remove_small_components,
    CleanupConfig, Connectivity, HoleFill, IGNORE_LABEL,
};

fn rect(l: &mut GrayImage, x0: u32, y0: u32, x1: u32, y1: u32, v: u8) {
    for y in y0..y1 {
        for x in x0..x1 {
            l.put_pixel(x, y, Luma([v]));
        }
    }
}

fn count(l: &GrayImage, v: u8) -> usize {
    l.iter().filter(|&&p| p == v).count()
}

#[test]
fn small_components_go_to_the_surrounding_class() {
    let mut l = GrayImage::from_pixel(40, 30, Luma([0]));
    rect(&mut l, 10, 0, 30, 30, 1); // soft tissue band
    rect(&mut l, 15, 5, 25, 25, 2); // bone: 200 px
    rect(&mut l, 12, 2, 14, 4, 2); // bone speck (4 px) in soft tissue
    rect(&mut l, 2, 2, 5, 5, 1); // soft speck (9 px) in open beam
    l.put_pixel(20, 15, Luma([0])); // open-beam speck inside bone
    assert_eq!(
        remove_small_components(&mut l, 2, 10, Connectivity::Eight),
        1
    );
    assert_eq!(l.get_pixel(12, 2)[0], 1);
    assert_eq!(
        remove_small_components(&mut l, 1, 10, Connectivity::Eight),
        1
    );
    assert_eq!(l.get_pixel(3, 3)[0], 0);
    // Open beam: the 1-px speck inside bone goes to bone; the big regions stay.
    assert_eq!(
        remove_small_components(&mut l, 0, 10, Connectivity::Eight),
        1
    );
    assert_eq!(l.get_pixel(20, 15)[0], 2);
    assert_eq!(count(&l, 2), 200);
    assert_eq!(count(&l, 1), 20 * 30 - 200);
}

#[test]
fn majority_of_the_border_decides() {
    // A 2x2 speck of class 2 with 6 border pixels of class 1 and 2 of class 0.
    let mut l = GrayImage::from_pixel(6, 6, Luma([1]));
    rect(&mut l, 2, 2, 4, 4, 2);
    l.put_pixel(1, 2, Luma([0]));
    l.put_pixel(1, 3, Luma([0]));
    remove_small_components(&mut l, 2, 5, Connectivity::Four);
    assert_eq!(l.get_pixel(2, 2)[0], 1);
    // Surrounded only by IGNORE_LABEL: becomes IGNORE_LABEL; never the removed class itself.
    let mut l = GrayImage::from_pixel(5, 5, Luma([IGNORE_LABEL]));
    l.put_pixel(2, 2, Luma([1]));
    remove_small_components(&mut l, 1, 2, Connectivity::Eight);
    assert_eq!(l.get_pixel(2, 2)[0], IGNORE_LABEL);
}

#[test]
fn holes_and_largest_component() {
    let mut l = GrayImage::from_pixel(30, 30, Luma([1]));
    rect(&mut l, 5, 5, 20, 20, 2);
    rect(&mut l, 8, 8, 10, 10, 1); // 4-px hole in bone
    rect(&mut l, 12, 12, 17, 17, 1); // 25-px hole
    rect(&mut l, 0, 25, 3, 30, 2); // second bone component at the border
    assert_eq!(fill_holes(&mut l, 2, 10), 4);
    assert_eq!(l.get_pixel(8, 8)[0], 2);
    assert_eq!(l.get_pixel(14, 14)[0], 1);
    assert_eq!(fill_holes(&mut l, 2, 0), 25);
    // The soft-tissue region around the border-touching bone is not a hole of bone.
    assert_eq!(count(&l, 2), 15 * 15 + 15);
    assert_eq!(keep_largest_component(&mut l, 2, Connectivity::Eight), 1);
    assert_eq!(count(&l, 2), 15 * 15);
}

#[test]
fn bone_cleanup_opens_then_dilates() {
    let mut l = GrayImage::from_pixel(40, 40, Luma([1]));
    rect(&mut l, 10, 10, 20, 20, 2); // a 10x10 bone survives opening with radius 1
    for x in 25..38 {
        l.put_pixel(x, 30, Luma([2])); // a 1-px line does not
    }
    l.put_pixel(0, 0, Luma([IGNORE_LABEL]));
    bone_cleanup(&mut l, 2, 1, 2);
    assert!((25..38).all(|x| l.get_pixel(x, 30)[0] == 1));
    // Opening keeps the square exactly; dilation by 2 (L-inf) grows it to 14x14.
    assert_eq!(count(&l, 2), 14 * 14);
    assert_eq!(l.get_pixel(8, 8)[0], 2);
    assert_eq!(l.get_pixel(7, 7)[0], 1);
    assert_eq!(l.get_pixel(0, 0)[0], IGNORE_LABEL);
}

#[test]
fn config_runs_all_steps_and_parses_from_json() {
    let cfg: CleanupConfig = serde_json::from_str(
        r#"{"bone_open_radius": 1, "bone_dilate_radius": 0, "min_component_size": [0, 10, 10],
            "fill_holes": [{"class": 2, "max_area": 0}], "keep_largest": [2], "connectivity": "four"}"#,
    )
    .unwrap();
    let mut l = GrayImage::from_pixel(30, 30, Luma([1]));
    rect(&mut l, 5, 5, 15, 15, 2);
    rect(&mut l, 8, 8, 10, 10, 0); // hole
    rect(&mut l, 20, 20, 26, 26, 2); // smaller second bone
    cleanup(&mut l, &cfg).unwrap();
    assert_eq!(count(&l, 2), 100);
    assert!(
        serde_json::from_str::<CleanupConfig>(r#"{"bone_open": 1}"#).is_err(),
        "unknown fields are rejected"
    );
    let bad = CleanupConfig {
        keep_largest: vec![255],
        ..Default::default()
    };
    assert!(cleanup(&mut l, &bad).is_err());
    let _ = HoleFill {
        class: 1,
        max_area: 3,
    };
}

/// Every clean-up step on the smallest maps: a 1 × 1 map is one component (imageproc's
/// labelling panicked on it), a row or column is labelled like any map, and a map with no
/// pixel (W × 0, 0 × H) has nothing to change (`fill_holes` panicked on its border).
#[test]
fn tiny_and_empty_maps() {
    for v in [0u8, 1, 2, IGNORE_LABEL] {
        for conn in [Connectivity::Four, Connectivity::Eight] {
            // 1 × 1: the class's one component is the largest and touches the border, so it
            // is kept; a component too small with no neighbour to take it stays (as on any
            // map whose class fills it).
            let one = GrayImage::from_pixel(1, 1, Luma([v]));
            let mut l = one.clone();
            assert_eq!(keep_largest_component(&mut l, v, conn), 0);
            assert_eq!(l, one);
            let mut l = one.clone();
            assert_eq!(remove_small_components(&mut l, v, 5, conn), 1, "{v}");
            assert_eq!(l, one);
            let mut l = one.clone();
            assert_eq!(remove_small_components(&mut l, v, 1, conn), 0);
            assert_eq!(remove_small_components(&mut l, 7, 5, conn), 0);
            assert_eq!(keep_largest_component(&mut l, 7, conn), 0);
            assert_eq!(l, one);
        }
        let one = GrayImage::from_pixel(1, 1, Luma([v]));
        for class in [0u8, 1, 7] {
            for max_area in [0, 1, 5] {
                // The pixel is on the border: never a hole, whatever its label.
                let mut l = one.clone();
                assert_eq!(fill_holes(&mut l, class, max_area), 0);
                assert_eq!(l, one);
            }
        }
        let mut l = one.clone();
        bone_cleanup(&mut l, v, 1, 1);
        bone_cleanup(&mut l, 2, 2, 0);
    }
    // 1 × 1 through the whole clean-up (Pipeline's step).
    let cfg: CleanupConfig = serde_json::from_str(
        r#"{"bone_open_radius": 1, "bone_dilate_radius": 1, "min_component_size": [0, 3, 3],
            "fill_holes": [{"class": 2, "max_area": 0}], "keep_largest": [1, 2]}"#,
    )
    .unwrap();
    let mut l = GrayImage::from_pixel(1, 1, Luma([1]));
    cleanup(&mut l, &cfg).unwrap();
    assert_eq!(l.as_raw(), &[1]);
    // A row and a column: holes need a border on both sides, which a 1-pixel-wide map
    // never leaves, and components are found as on larger maps.
    for (w, h) in [(5, 1), (1, 5)] {
        let row = GrayImage::from_raw(w, h, vec![2, 1, 2, 2, 1]).unwrap();
        let mut l = row.clone();
        assert_eq!(fill_holes(&mut l, 2, 0), 0);
        assert_eq!(l, row);
        assert_eq!(keep_largest_component(&mut l, 2, Connectivity::Four), 1);
        assert_eq!(l.as_raw(), &[1, 1, 2, 2, 1]);
    }
    // No pixel at all.
    for (w, h) in [(3, 0), (0, 3), (0, 0)] {
        let mut l = GrayImage::new(w, h);
        assert_eq!(fill_holes(&mut l, 1, 0), 0);
        assert_eq!(
            remove_small_components(&mut l, 1, 5, Connectivity::Eight),
            0
        );
        assert_eq!(keep_largest_component(&mut l, 1, Connectivity::Eight), 0);
        bone_cleanup(&mut l, 2, 1, 1);
        cleanup(&mut l, &cfg).unwrap();
        assert_eq!(l.dimensions(), (w, h));
    }
}
