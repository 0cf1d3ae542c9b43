//! The trunk in its canonical frames: the chest (ribs, spine, lungs, heart, vessels) and
//! the pelvis with the hips.

use rand::{Rng, RngExt};

use super::{j, Builder, Density, Layer};

/// Chest, PA, canonical frame: origin in the middle of the chest at about the seventh
/// thoracic vertebra, head towards −y, the heart on the +x side. An adult of about 300 mm
/// across the ribs and 220 mm front to back.
pub(super) fn thorax<R: Rng + ?Sized>(b: &mut Builder<'_, R>) {
    b.size = 1.0 + j(b.rng, 0.08);
    // Body: trunk, shoulders, neck, upper arms at the sides.
    let depth = b.rng.random_range(0.62..0.8f32);
    b.tissue_at([0.0, -200.0], [0.0, 460.0], 150.0, 158.0, depth);
    b.tissue_at([-195.0, -182.0], [195.0, -182.0], 48.0, 48.0, 0.9);
    b.tissue_at([0.0, -420.0], [0.0, -190.0], 56.0, 62.0, 0.95);
    let arm_out = b.rng.random_range(0.0..40.0f32);
    for side in [-1.0f32, 1.0] {
        let shoulder = [side * 205.0, -180.0];
        let elbow = [side * (225.0 + arm_out), 250.0];
        b.tissue_at(shoulder, elbow, 47.0, 40.0, 0.9);
        // Humerus with its head in the glenoid; scapula (a plate, face on) with the glenoid
        // and acromion; clavicle from the sternum to the acromion.
        let head = [side * 198.0, -178.0];
        b.bone_at(
            head,
            elbow,
            [14.0, 11.0],
            [0.9, 0.2],
            Density::new(0.3, 0.12, 1.0),
        );
        b.join()
            .bone_blob(head, 23.0, 24.0, 0.0, Density::EPIPHYSIS);
        let tilt = side * (12.0 + j(b.rng, 8.0));
        b.bone_blob([side * 150.0, -100.0], 48.0, 78.0, tilt, Density::PLATE);
        b.join()
            .bone_blob([side * 178.0, -176.0], 12.0, 20.0, 0.0, Density::FLAT_BODY);
        b.join().bone_blob(
            [side * 172.0, -206.0],
            24.0,
            9.0,
            side * 10.0,
            Density::FLAT_BODY,
        );
        let dip = j(b.rng, 10.0);
        let clavicle = [
            [side * 18.0, -165.0],
            [side * 95.0, -170.0 + dip],
            [side * 172.0, -202.0],
        ];
        b.curved_bone(clavicle, [8.5, 7.0], Density::CLAVICLE);
    }
    // Thoracic and upper lumbar spine: vertebral bodies widening downwards, with pedicles.
    for k in 0..18 {
        let y = -290.0 + 30.0 * k as f32;
        let w = 17.0 + 0.75 * k as f32;
        let x = j(b.rng, 1.5);
        b.bone_blob([x, y], w, 12.5, 0.0, Density::VERTEBRA);
        for side in [-1.0f32, 1.0] {
            b.join()
                .bone_blob([side * (w - 3.0), y - 3.0], 4.5, 7.0, 0.0, Density::PEDICLE);
        }
    }
    // Ribs 1–10 as seen PA: the posterior arc rises from the spine and runs out to the
    // lateral chest wall; the fainter anterior arc curves down and in towards the sternum
    // (its cartilage is invisible, so it stops short of the midline). Ribs 11–12 float.
    let half_width = [
        72.0, 102.0, 122.0, 135.0, 142.0, 146.0, 147.0, 145.0, 140.0, 132.0,
    ];
    let slope = b.rng.random_range(0.8..1.2f32);
    for side in [-1.0f32, 1.0] {
        for (k, &w) in half_width.iter().enumerate() {
            let k = k as f32;
            let y0 = -192.0 + 26.0 * k + j(b.rng, 2.0);
            let lateral = [side * w, y0 + 18.0 * slope + 2.0 * k];
            let r = 5.0 + 0.15 * k;
            let back = [[side * 20.0, y0], [side * w * 0.55, y0 - 24.0], lateral];
            b.curved_bone(back, [r, r], Density::RIB);
            let front = [
                lateral,
                [side * w * 1.02, y0 + 62.0 * slope],
                [side * (w * 0.3 + 12.0), y0 + (70.0 + 5.0 * k) * slope],
            ];
            b.join()
                .curved_bone(front, [r, 0.8 * r], Density::RIB_FRONT);
        }
        for k in [0.0f32, 1.0] {
            let y0 = 72.0 + 26.0 * k;
            let floating = [
                [side * 24.0, y0],
                [side * 60.0, y0 - 6.0],
                [side * (110.0 - 30.0 * k), y0 + 40.0],
            ];
            b.curved_bone(floating, [5.0, 4.0], Density::RIB);
        }
    }
    // Lungs: air, each the union of an upper and a lower ellipsoid; the right lung is
    // the larger. The heart and the domes of the diaphragm (liver on the right) push the
    // air aside; the trachea is a narrow column of air above.
    let inspiration = b.rng.random_range(0.9..1.1f32);
    let air = b.rng.random_range(0.45..0.58f32);
    for (side, width) in [(-1.0f32, 62.0f32), (1.0, 58.0)] {
        let (upper, lower) = ([side * 78.0, -30.0], [side * 95.0, 35.0 * inspiration]);
        b.soft_blob(
            Layer::Air,
            upper,
            width,
            135.0 * inspiration,
            -side * 4.0,
            air,
        );
        b.soft_blob(
            Layer::Air,
            lower,
            width - 8.0,
            80.0 * inspiration,
            -side * 8.0,
            air * 0.95,
        );
        let dome = [
            side * 80.0,
            if side < 0.0 { 150.0 } else { 165.0 } * inspiration,
        ];
        b.soft_blob(Layer::Displace, dome, 95.0, 62.0, 0.0, 1.0);
    }
    for side in [-1.0f32, 1.0] {
        b.vessel_tree([side * 45.0, -25.0], side);
    }
    let heart = b.rng.random_range(0.85..1.2f32);
    let centre = [28.0, 45.0 * inspiration];
    b.soft_blob(
        Layer::Displace,
        centre,
        72.0 * heart,
        56.0 * heart,
        -25.0,
        0.75,
    );
    b.soft_blob(Layer::Air, [0.0, -215.0], 9.0, 75.0, 0.0, 0.14);
}

/// Pelvis, AP, canonical frame: origin midway between the hip joints, head towards −y.
/// About 380 mm across the hips and 230 mm front to back.
pub(super) fn pelvis<R: Rng + ?Sized>(b: &mut Builder<'_, R>) {
    b.size = 1.0 + j(b.rng, 0.08);
    let depth = b.rng.random_range(0.62..0.8f32);
    b.tissue_at([0.0, -420.0], [0.0, 40.0], 160.0, 185.0, depth);
    for side in [-1.0f32, 1.0] {
        b.tissue_at([side * 92.0, 0.0], [side * 110.0, 500.0], 98.0, 72.0, 0.85);
    }
    // Gas in the bowel above the pelvic inlet, and often in the rectum.
    let pockets = b.rng.random_range(4..12);
    for _ in 0..pockets {
        let c = [
            b.rng.random_range(-120.0..120.0f32),
            b.rng.random_range(-320.0..-60.0f32),
        ];
        let (rx, ry) = (
            b.rng.random_range(8.0..32.0f32),
            b.rng.random_range(6.0..22.0f32),
        );
        let a = b.rng.random_range(-90.0..90.0f32);
        b.soft_blob(Layer::Air, c, rx, ry, a, 0.8);
    }
    if b.rng.random_bool(0.5) {
        let x = j(b.rng, 10.0);
        b.soft_blob(Layer::Air, [x, -30.0], 14.0, 20.0, 0.0, 0.8);
    }
    // Lower lumbar spine (L4, L5) with transverse processes, then the sacrum and coccyx.
    for (k, y) in [-262.0f32, -222.0].into_iter().enumerate() {
        let w = 27.0 + 2.0 * k as f32;
        b.bone_blob([0.0, y], w, 16.0, 0.0, Density::VERTEBRA);
        for side in [-1.0f32, 1.0] {
            let tip = [side * (52.0 - 4.0 * k as f32), y + 3.0];
            b.join().bone_at(
                [side * 14.0, y],
                tip,
                [6.0, 5.0],
                [0.0, 0.3],
                Density::PEDICLE,
            );
        }
    }
    b.bone_blob([0.0, -150.0], 58.0, 42.0, 0.0, Density::SACRUM);
    b.join()
        .bone_blob([0.0, -95.0], 32.0, 42.0, 0.0, Density::SACRUM);
    b.bone_blob([0.0, -45.0], 7.0, 14.0, 0.0, Density::EPIPHYSIS);
    let flare = j(b.rng, 8.0);
    let cortical = Density::new(0.35, 0.12, 1.0);
    for side in [-1.0f32, 1.0] {
        // Hip bone: iliac wing (a plate, seen obliquely), the thick body above the
        // acetabulum, ischium, both pubic rami and the body at the symphysis.
        let wing = side * (-22.0 + flare);
        b.bone_blob([side * 112.0, -140.0], 76.0, 56.0, wing, Density::PLATE);
        b.join()
            .bone_blob([side * 98.0, -95.0], 46.0, 44.0, 0.0, Density::PLATE);
        b.join().bone_blob(
            [side * 92.0, -55.0],
            32.0,
            40.0,
            side * 15.0,
            Density::FLAT_BODY,
        );
        let (ischium, tuberosity) = ([side * 88.0, -30.0], [side * 74.0, 52.0]);
        b.join()
            .bone_at(ischium, tuberosity, [16.0, 13.0], [0.0, 0.45], cortical);
        let (acetabulum, symphysis) = ([side * 78.0, -28.0], [side * 16.0, 2.0]);
        b.join()
            .bone_at(acetabulum, symphysis, [10.0, 9.0], [0.0, 0.0], cortical);
        b.join().bone_at(
            tuberosity,
            [side * 18.0, 28.0],
            [8.0, 8.0],
            [0.0, 0.0],
            cortical,
        );
        b.join()
            .bone_blob([side * 11.0, 14.0], 9.0, 22.0, 0.0, Density::EPIPHYSIS);
        // Proximal femur: head in the acetabulum, neck, greater and lesser trochanter,
        // shaft.
        let abduction = j(b.rng, 6.0);
        let head = [side * 96.0, -38.0];
        b.bone_blob(head, 24.0, 24.0, 0.0, Density::EPIPHYSIS);
        b.join().bone_at(
            head,
            [side * 130.0, 2.0],
            [15.0, 17.0],
            [0.0, 0.3],
            cortical,
        );
        b.join().bone_blob(
            [side * 143.0, 4.0],
            20.0,
            28.0,
            side * 10.0,
            Density::EPIPHYSIS,
        );
        b.join()
            .bone_blob([side * 112.0, 46.0], 9.0, 11.0, 0.0, Density::EPIPHYSIS);
        let (top, knee) = ([side * 136.0, 10.0], [side * (122.0 + abduction), 500.0]);
        b.join().bone_at(
            top,
            knee,
            [17.0, 14.0],
            [0.5, 0.1],
            Density::new(0.3, 0.12, 1.0),
        );
    }
}
