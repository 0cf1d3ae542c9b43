//! Tests of the anatomy and its rasterisation.

use super::raster::dilate_square;
use super::*;
use rand::SeedableRng;

fn soft(layer: Layer, c: [f32; 2], r: f32, depth: f32) -> Prim {
    Prim {
        shape: Shape::Blob {
            c,
            rx: r,
            ry: r,
            angle: 0.0,
        },
        kind: Kind::Soft {
            layer,
            depth,
            wobble: [0.0; 6],
        },
        group: 0,
    }
}

/// One pixel per millimetre, canonical origin at the image's top-left corner.
fn identity_pose() -> Pose {
    Pose {
        scale: 1.0,
        angle: 0.0,
        mirror: false,
        origin: [0.0; 2],
        target: [0.0; 2],
    }
}

#[test]
fn air_is_taken_from_tissue_but_leaves_the_body_wall_and_yields_to_organs() {
    // A ball of tissue (100 mm through its centre), a ball of air (radius 20, 40 mm
    // through its centre) inside it, and an organ displacing 25 mm of air at the
    // air ball's centre. Pixel centres sit at half-millimetres.
    let anat = Anatomy {
        prims: vec![
            soft(Layer::Tissue, [50.5, 50.5], 50.0, 1.0),
            soft(Layer::Air, [30.5, 50.5], 20.0, 1.0),
            soft(Layer::Air, [70.5, 50.5], 20.0, 5.0),
            soft(Layer::Displace, [30.5, 50.5], 12.5, 1.0),
        ],
        center: [50.0; 2],
        extent: 100.0,
        technique: 1.0,
    };
    let maps = anat.rasterise(101, 101, &identity_pose());
    let at = |x: usize, y: usize| maps.tissue[y * 101 + x];
    let chord = |r: f32, d: f32| 2.0 * (r * r - d * d).max(0.0).sqrt();
    // Air ball centre: 40 mm of air less 25 mm displaced leaves 15 mm of air.
    let t = chord(50.0, 20.0);
    assert!((at(30, 50) - (t - 15.0)).abs() < 1e-3, "{}", at(30, 50));
    // Beside the organ (10 mm off its centre... outside its 12.5 mm radius at 15 mm).
    let a = chord(20.0, 15.0);
    assert!(
        (at(30, 35) - (chord(50.0, (20.0f32.powi(2) + 15.0f32.powi(2)).sqrt()) - a)).abs() < 1e-3
    );
    // Five times more air than tissue would leave nothing: the wall's 30 % stays.
    assert!(
        (at(70, 50) - MIN_TISSUE_LEFT * t).abs() < 1e-3,
        "{}",
        at(70, 50)
    );
    // No air: tissue untouched; outside the body: nothing.
    assert!((at(50, 10) - chord(50.0, 40.0)).abs() < 1e-3);
    assert_eq!(at(0, 0), 0.0);
    assert!(maps.bone.iter().all(|&b| b == 0.0));
}

#[test]
fn square_dilation_matches_the_brute_force_window() {
    let (w, h) = (23, 17);
    let v: Vec<f32> = (0..w * h)
        .map(|i| if (i * 7919) % 53 == 0 { 1.0 } else { 0.0 })
        .collect();
    for r in [1, 2, 5, 30] {
        let fast = dilate_square(&v, w, h, r);
        for y in 0..h {
            for x in 0..w {
                let slow = (y.saturating_sub(r)..(y + r + 1).min(h)).any(|yy| {
                    (x.saturating_sub(r)..(x + r + 1).min(w)).any(|xx| v[yy * w + xx] > 0.0)
                });
                assert_eq!(fast[y * w + x], slow, "r {r} at ({x}, {y})");
            }
        }
    }
}

#[test]
fn chest_lungs_are_thinner_than_the_mediastinum_and_the_spine_is_bone() {
    for seed in 0..4 {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let anat = build(BodyPart::Chest, &mut rng);
        assert!(anat.technique > 1.0);
        // 2 mm per pixel, canonical (0, 0) at pixel (150, 150).
        let pose = Pose {
            scale: 0.5,
            angle: 0.0,
            mirror: false,
            origin: [0.0; 2],
            target: [150.0; 2],
        };
        let maps = anat.rasterise(300, 300, &pose);
        let px = |p: [f32; 2]| {
            let q = pose.map(p);
            q[1] as usize * 300 + q[0] as usize
        };
        for side in [-1.0f32, 1.0] {
            let lung = maps.tissue[px([side * 80.0, -60.0])];
            let middle = maps.tissue[px([0.0, -60.0])];
            assert!(
                lung > 0.0 && lung < 0.7 * middle,
                "seed {seed}: lung {lung} mm, mediastinum {middle} mm"
            );
        }
        assert!(
            maps.bone[px([0.0, -20.0])] > 0.0,
            "seed {seed}: no vertebra"
        );
        // Below the diaphragm (liver): full thickness of tissue again.
        let liver = maps.tissue[px([-80.0, 230.0])];
        assert!(liver > 120.0, "seed {seed}: liver {liver} mm");
    }
}

#[test]
fn pelvis_and_hip_share_one_anatomy_with_bone_at_both_hip_joints() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(3);
    let anat = build(BodyPart::Pelvis, &mut rng);
    let pose = Pose {
        scale: 0.5,
        angle: 0.0,
        mirror: false,
        origin: [0.0; 2],
        target: [150.0; 2],
    };
    let maps = anat.rasterise(300, 300, &pose);
    for side in [-1.0f32, 1.0] {
        let q = pose.map([side * 96.0, -38.0]);
        let i = q[1] as usize * 300 + q[0] as usize;
        // Femoral head over the acetabulum: two bones add up.
        assert!(maps.bone[i] > 20.0, "femoral head {} mm", maps.bone[i]);
        assert!(maps.tissue[i] > maps.bone[i]);
    }
    let hip = build(BodyPart::Hip, &mut rng);
    assert_eq!(hip.extent, 250.0);
    assert_eq!(hip.center[0].abs(), 100.0);
}
