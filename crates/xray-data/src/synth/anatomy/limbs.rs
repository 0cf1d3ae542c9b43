//! The limbs in their canonical frames: the upper limb (hand, wrist, forearm, elbow), the
//! lower limb (knee, leg, ankle) and the foot.

use rand::{Rng, RngExt};

use super::{add, dir, j, Builder};

/// A ray of the hand or foot: base, direction (degrees), long-bone length, radius and
/// phalanx lengths (0 = absent).
type Ray = ([f32; 2], f32, f32, f32, [f32; 3]);

/// Upper limb, canonical frame: wrist at the origin, fingers towards −y, elbow at
/// y ≈ +255, shoulder towards +y. Thumb on the −x side.
pub(super) fn upper_limb<R: Rng + ?Sized>(b: &mut Builder<'_, R>) {
    let pronated = b.rng.random_bool(0.35);
    // Forearm: radius (thumb side) and ulna. Pronation crosses the radius over the ulna.
    let rad_d = if pronated { [-13.0, 6.0] } else { [-14.0, 6.0] };
    let rad_p = if pronated {
        [9.0, 262.0]
    } else {
        [-12.0, 262.0]
    };
    b.bone(rad_d, rad_p, 11.0, 7.5, 0.6, 0.3, 0.3);
    b.join().blob([rad_p[0], 267.0], 10.5, 5.0, 0.0); // radial head, a disc seen edge-on
    b.bone([14.0, 14.0], [7.0, 262.0], 6.0, 9.0, 0.25, 0.55, 0.32);
    b.join().blob([6.0, 252.0], 10.0, 11.0, 0.0); // olecranon, superimposed on the humerus
                                                  // Distal humerus: widened metaphysis, trochlea and capitulum, epicondyles.
    b.bone([0.0, 246.0], [0.0, 600.0], 13.0, 11.0, 1.1, 0.15, 0.28);
    b.join().blob([-13.0, 248.0], 12.0, 8.0, 0.0);
    b.join().blob([12.0, 249.0], 13.0, 7.5, 0.0);
    b.join().blob([-25.0, 240.0], 8.0, 6.0, 20.0);
    b.join().blob([25.0, 238.0], 9.0, 6.5, -20.0);
    // Carpals (two rows), metacarpals, phalanges.
    let carpals: [([f32; 2], f32, f32, f32); 8] = [
        ([-14.0, -9.0], 9.0, 6.0, 35.0),
        ([-2.0, -7.0], 7.0, 7.0, 0.0),
        ([9.0, -9.0], 6.0, 6.5, -20.0),
        ([14.5, -13.0], 4.0, 4.0, 0.0),
        ([-19.0, -23.0], 7.0, 6.0, 20.0),
        ([-9.0, -25.0], 5.0, 6.0, 0.0),
        ([1.0, -23.0], 7.0, 9.5, 0.0),
        ([12.0, -22.0], 7.0, 8.0, -10.0),
    ];
    for (c, rx, ry, a) in carpals {
        let c = [c[0] + j(b.rng, 0.8), c[1] + j(b.rng, 0.8)];
        let a = a + j(b.rng, 15.0);
        b.blob(c, rx * 1.12, ry * 1.08, a);
    }
    b.tissue([0.0, 300.0], [0.0, 0.0], 44.0, 29.0, 0.85);
    b.tissue([0.0, 620.0], [0.0, 280.0], 50.0, 44.0, 0.9);
    b.tissue_blob([0.0, -55.0], 40.0, 36.0, 0.0, 0.55);
    let spread = b.rng.random_range(0.4..1.3f32);
    // (base, angle of the ray, metacarpal length, radius, phalanx lengths)
    let rays: [Ray; 5] = [
        ([-20.0, -27.0], -38.0, 44.0, 5.0, [31.0, 0.0, 23.0]),
        ([-11.0, -34.0], -7.0, 64.0, 4.6, [40.0, 24.0, 18.0]),
        ([-1.0, -35.0], 0.0, 62.0, 4.6, [44.0, 28.0, 19.0]),
        ([8.0, -34.0], 7.0, 57.0, 4.3, [41.0, 26.0, 18.0]),
        ([16.0, -31.0], 15.0, 52.0, 4.0, [33.0, 19.0, 16.0]),
    ];
    for (i, (base, ang, mlen, r, ph)) in rays.into_iter().enumerate() {
        let ray_ang = ang * spread + j(b.rng, 3.0);
        let d = dir(ray_ang);
        let head = add(base, d, mlen);
        b.bone(base, head, r * 1.05, r, 0.35, 0.45, 0.34);
        // Fingers continue with extra spread at the knuckle.
        let fa = ray_ang + (ray_ang * 0.25 + j(b.rng, 4.0)) * spread;
        let fd = dir(fa);
        let mut p = add(head, fd, 3.0 + r * 0.3);
        let mut pr = r * 0.92;
        let mut tip = p;
        for (k, &len) in ph.iter().enumerate() {
            if len == 0.0 {
                continue;
            }
            let len = len * (1.0 + j(b.rng, 0.05));
            let q = add(p, fd, len);
            let taper = if k == 2 { 0.65 } else { 0.85 };
            b.bone(p, q, pr, pr * taper, 0.45, 0.35, 0.36);
            tip = q;
            p = add(q, fd, 3.2);
            pr *= 0.82;
        }
        let fr = if i == 0 { 11.0 } else { 9.0 };
        b.tissue(
            add(head, fd, -14.0),
            add(tip, fd, 4.0),
            fr * 1.15,
            fr * 0.75,
            0.85,
        );
    }
}

/// Lower limb, canonical frame: knee joint at the origin, hip towards −y, ankle at
/// y ≈ +380.
pub(super) fn lower_limb<R: Rng + ?Sized>(b: &mut Builder<'_, R>) {
    // Femur with two condyles; joint space of ~6 mm above the tibial plateau.
    b.bone([0.0, -30.0], [4.0, -470.0], 24.0, 15.0, 0.8, 0.1, 0.3);
    b.join().blob([-20.0, -16.0], 19.0, 15.0, 0.0);
    b.join().blob([20.0, -16.0], 18.0, 14.0, 0.0);
    // Patella over the femur (superimposed on AP).
    let pat = [j(b.rng, 5.0), -34.0 + j(b.rng, 6.0)];
    let tilt = j(b.rng, 8.0);
    b.blob(pat, 21.0, 24.0, tilt);
    // Tibia: wide plateau, medial malleolus at the ankle.
    b.bone([-2.0, 22.0], [-4.0, 372.0], 26.0, 15.0, 0.65, 0.3, 0.3);
    b.join().blob([-20.0, 382.0], 7.0, 10.0, 0.0);
    // Fibula: head beside (partly behind) the lateral tibia, lateral malleolus.
    b.bone([34.0, 36.0], [33.0, 392.0], 7.0, 7.0, 0.45, 0.35, 0.4);
    b.tissue([0.0, -500.0], [0.0, -40.0], 85.0, 60.0, 0.9);
    b.tissue([0.0, -60.0], [0.0, 170.0], 62.0, 60.0, 0.9);
    b.tissue([0.0, 150.0], [0.0, 420.0], 60.0, 38.0, 0.9);
}

/// Foot in dorsoplantar projection: ankle joint at the origin, toes towards +y.
pub(super) fn foot<R: Rng + ?Sized>(b: &mut Builder<'_, R>) {
    b.bone([-2.0, -160.0], [-2.0, -6.0], 14.0, 18.0, 0.1, 0.45, 0.3);
    b.join().blob([-22.0, 2.0], 6.0, 9.0, 0.0); // medial malleolus
    b.bone([26.0, -160.0], [27.0, 8.0], 6.0, 8.0, 0.1, 0.4, 0.4);
    b.blob([0.0, 18.0], 19.0, 17.0, 0.0); // talus
    b.blob([8.0, 14.0], 21.0, 28.0, 10.0); // calcaneus behind the talus
    b.blob([-8.0, 43.0], 15.0, 8.0, -10.0); // navicular
    b.blob([17.0, 52.0], 10.0, 12.0, 10.0); // cuboid
    b.blob([-16.0, 60.0], 7.0, 10.0, 0.0);
    b.blob([-5.0, 62.0], 5.0, 8.0, 0.0);
    b.blob([5.0, 63.0], 5.0, 8.0, 0.0);
    let spread = b.rng.random_range(0.7..1.2f32);
    // (base, angle from +y, metatarsal length, radius, phalanges)
    let rays: [Ray; 5] = [
        ([-17.0, 70.0], -8.0, 62.0, 7.5, [30.0, 0.0, 22.0]),
        ([-6.0, 72.0], -2.0, 72.0, 4.5, [22.0, 12.0, 9.0]),
        ([4.0, 71.0], 4.0, 68.0, 4.2, [20.0, 11.0, 8.0]),
        ([13.0, 68.0], 10.0, 64.0, 4.2, [18.0, 10.0, 8.0]),
        ([22.0, 63.0], 16.0, 58.0, 4.4, [16.0, 9.0, 8.0]),
    ];
    b.tissue([0.0, -180.0], [2.0, 20.0], 36.0, 34.0, 1.0);
    b.tissue_blob([4.0, 80.0], 44.0, 68.0, 0.0, 0.7);
    for (i, (base, ang, mlen, r, ph)) in rays.into_iter().enumerate() {
        let a = ang * spread + j(b.rng, 2.0);
        let rr = (180.0 - a).to_radians();
        let d = [rr.sin(), -rr.cos()];
        let head = add(base, d, mlen);
        b.bone(base, head, r * 1.1, r * 0.9, 0.4, 0.5, 0.34);
        let mut p = add(head, d, 3.2);
        let mut pr = r * 0.85;
        let mut tip = p;
        for &len in ph.iter() {
            if len == 0.0 {
                continue;
            }
            let q = add(p, d, len * (1.0 + j(b.rng, 0.06)));
            b.bone(p, q, pr, pr * 0.85, 0.35, 0.35, 0.38);
            tip = q;
            p = add(q, d, 2.8);
            pr *= 0.85;
        }
        let tr = if i == 0 { 12.0 } else { 8.5 };
        b.tissue(add(head, d, -10.0), add(tip, d, 3.0), tr, tr * 0.8, 0.8);
    }
}
