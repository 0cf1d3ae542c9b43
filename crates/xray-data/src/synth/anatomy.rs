//! Limb and trunk anatomy as projected thickness maps.
//!
//! Each body part is a set of analytic primitives in millimetres (a canonical frame with
//! the limb or spine axis along y), placed in the image by a random pose and rasterised to
//! - `tissue`: soft-tissue path length (mm), the union (max) of smooth tubes and ellipsoids,
//!   less the air inside the body (lungs, bowel gas; see below);
//! - `bone`: bone path length in cortical-bone equivalents (mm), the sum over bones, so
//!   overlapping bones add up as they do on film.
//!
//! Long bones are tubes whose radius widens towards the ends (metaphysis, epiphysis) with
//! a dense cortical shell around a light medulla; at the ends the shell thins and the
//! interior becomes denser trabecular bone. Carpals, tarsals, the patella, condyles and
//! vertebral bodies are ellipsoids with a thin shell; flat bones (scapula, iliac wing,
//! sacrum) are ellipsoids flattened along the beam. Ribs and clavicles are chains of short
//! tubes along quadratic Bézier curves.
//!
//! The trunk is thick (200–250 mm of tissue), and what makes a chest a chest is air: the
//! lungs (and gas in the bowel) are ellipsoids of air whose path length is taken out of the
//! tissue's, while the heart, the diaphragm's domes and the branching pulmonary vessels (the
//! lung markings) push the air aside. Air never removes more than 70 % of a ray's tissue (the
//! chest wall stays), so the lungs remain soft tissue in the labels, as they are in the
//! paper's convention.

use rand::{Rng, RngExt};
use serde::{Deserialize, Serialize};

/// Body part (examination category).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BodyPart {
    /// Hand, PA: five fingers with their phalanges, metacarpals, carpals.
    Hand,
    /// Wrist: distal radius and ulna, carpals, metacarpal bases.
    Wrist,
    /// Forearm: radius and ulna (crossing when pronated).
    Forearm,
    /// Elbow: distal humerus with condyles, radial head, olecranon.
    Elbow,
    /// Knee: femoral condyles, patella, tibial plateau, fibular head.
    Knee,
    /// Lower leg: tibia and fibula.
    LowerLeg,
    /// Ankle and foot (dorsoplantar): distal tibia/fibula, tarsals, metatarsals, toes.
    AnkleFoot,
    /// Femur segment in thick soft tissue.
    Femur,
    /// Chest, PA: lungs, heart, ribs, clavicles, spine, scapulae, shoulders and upper arms.
    Chest,
    /// Pelvis, AP: both hip bones, sacrum, lower lumbar spine, proximal femurs, bowel gas.
    Pelvis,
    /// Hip, AP: one hip joint and proximal femur, with the hemipelvis around it.
    Hip,
}

impl BodyPart {
    /// Every body part, in a fixed order (the index used by category weights).
    pub const ALL: [BodyPart; 11] = [
        BodyPart::Hand,
        BodyPart::Wrist,
        BodyPart::Forearm,
        BodyPart::Elbow,
        BodyPart::Knee,
        BodyPart::LowerLeg,
        BodyPart::AnkleFoot,
        BodyPart::Femur,
        BodyPart::Chest,
        BodyPart::Pelvis,
        BodyPart::Hip,
    ];

    /// The name written to `categories.csv` (snake case).
    ///
    /// # Examples
    /// ```
    /// use xray_data::synth::BodyPart;
    /// assert_eq!(BodyPart::AnkleFoot.name(), "ankle_foot");
    /// assert_eq!(BodyPart::Chest.to_string(), "chest"); // `Display` writes the name
    /// ```
    pub fn name(self) -> &'static str {
        match self {
            BodyPart::Hand => "hand",
            BodyPart::Wrist => "wrist",
            BodyPart::Forearm => "forearm",
            BodyPart::Elbow => "elbow",
            BodyPart::Knee => "knee",
            BodyPart::LowerLeg => "lower_leg",
            BodyPart::AnkleFoot => "ankle_foot",
            BodyPart::Femur => "femur",
            BodyPart::Chest => "chest",
            BodyPart::Pelvis => "pelvis",
            BodyPart::Hip => "hip",
        }
    }

    /// Parse a name written by [`BodyPart::name`].
    ///
    /// # Examples
    /// ```
    /// use xray_data::synth::BodyPart;
    /// assert_eq!(BodyPart::from_name("lower_leg"), Some(BodyPart::LowerLeg));
    /// assert_eq!(BodyPart::from_name("Lower_Leg"), None); // exact, case-sensitive
    /// for part in BodyPart::ALL {
    ///     assert_eq!(BodyPart::from_name(part.name()), Some(part));
    /// }
    /// ```
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|b| b.name() == name)
    }

    /// The body part a DICOM `BodyPartExamined` value (a defined term of PS3.16 CID 4031,
    /// upper case; surrounding spaces ignored) stands for, where it is one of these:
    /// `HAND`, `WRIST`, `FOREARM`, `ELBOW`, `KNEE`, `LEG` / `LOWER_LEG`, `ANKLE` / `FOOT`,
    /// `THIGH` / `FEMUR`, `CHEST` / `THORAX`, `PELVIS`, `HIP`. Anything else is `None`.
    ///
    /// # Examples
    /// ```
    /// use xray_data::synth::BodyPart;
    /// assert_eq!(BodyPart::from_dicom("CHEST "), Some(BodyPart::Chest));
    /// assert_eq!(BodyPart::from_dicom("foot"), Some(BodyPart::AnkleFoot));
    /// assert_eq!(BodyPart::from_dicom("SKULL"), None);
    /// ```
    pub fn from_dicom(body_part_examined: &str) -> Option<Self> {
        Some(
            match body_part_examined.trim().to_ascii_uppercase().as_str() {
                "HAND" => BodyPart::Hand,
                "WRIST" => BodyPart::Wrist,
                "FOREARM" => BodyPart::Forearm,
                "ELBOW" => BodyPart::Elbow,
                "KNEE" => BodyPart::Knee,
                "LEG" | "LOWER_LEG" | "LOWERLEG" => BodyPart::LowerLeg,
                "ANKLE" | "FOOT" => BodyPart::AnkleFoot,
                "THIGH" | "FEMUR" => BodyPart::Femur,
                "CHEST" | "THORAX" => BodyPart::Chest,
                "PELVIS" => BodyPart::Pelvis,
                "HIP" => BodyPart::Hip,
                _ => return None,
            },
        )
    }

    /// Position in [`BodyPart::ALL`].
    ///
    /// # Examples
    /// ```
    /// use xray_data::synth::BodyPart;
    /// assert_eq!(BodyPart::Hand.index(), 0);
    /// assert_eq!(BodyPart::Hip.index(), 10);
    /// for (i, part) in BodyPart::ALL.into_iter().enumerate() {
    ///     assert_eq!(part.index(), i);
    /// }
    /// ```
    pub fn index(self) -> usize {
        Self::ALL.iter().position(|&b| b == self).unwrap_or(0)
    }
}

impl std::fmt::Display for BodyPart {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A ray of the hand or foot: base, direction (degrees), long-bone length, radius and
/// phalanx lengths (0 = absent).
type Ray = ([f32; 2], f32, f32, f32, [f32; 3]);

/// Shape of a primitive in canonical millimetres.
#[derive(Debug, Clone, Copy)]
enum Shape {
    /// Capsule from `a` to `b`; radius `ra → rb` linearly, times `1 + widen_a` (resp.
    /// `widen_b`) at the ends, fading over the end fifth.
    Tube {
        a: [f32; 2],
        b: [f32; 2],
        ra: f32,
        rb: f32,
        widen_a: f32,
        widen_b: f32,
    },
    /// Ellipse (projected ellipsoid) with centre, semi-axes and rotation (radians).
    Blob {
        c: [f32; 2],
        rx: f32,
        ry: f32,
        angle: f32,
    },
}

#[derive(Debug, Clone, Copy)]
enum Kind {
    /// Bone with cortical shell fraction (of the radius), relative density of the medulla
    /// in the shaft, and a factor on the path length (1 for round bones, less for flat
    /// bones seen face on).
    Bone {
        cortex: f32,
        medulla: f32,
        scale: f32,
    },
    /// Soft matter: which map it goes to, depth factor (path length / projected width) and
    /// outline wobble (amplitudes and phases of three harmonics along the tube or around
    /// the ellipse).
    Soft {
        layer: Layer,
        depth: f32,
        wobble: [f32; 6],
    },
}

/// Where a soft primitive's path length goes; each map is the union (max) of its
/// primitives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Layer {
    /// Soft tissue.
    Tissue,
    /// Air inside the body (lungs, bowel gas): taken out of the tissue's path length.
    Air,
    /// Organs and vessels that push the air aside (heart, the diaphragm's domes, the lung
    /// markings): taken out of `Air`.
    Displace,
}

#[derive(Debug, Clone, Copy)]
struct Prim {
    shape: Shape,
    kind: Kind,
    /// Bone identity: primitives of one bone (shaft, condyles...) merge by maximum,
    /// different bones add up where they overlap.
    group: u32,
}

/// A body part's primitives plus its nominal framing.
#[derive(Debug, Clone)]
pub(crate) struct Anatomy {
    prims: Vec<Prim>,
    /// Point (mm) the framing centres on.
    pub center: [f32; 2],
    /// Nominal field of view (mm) across the image.
    pub extent: f32,
    /// Dose relative to a limb (multiplies the open beam's quanta per pixel).
    pub technique: f32,
}

/// The fraction of a ray's tissue that air (lungs, gas) always leaves: the body wall.
const MIN_TISSUE_LEFT: f32 = 0.3;

/// Rasterised thickness maps.
#[derive(Debug, Clone)]
pub(crate) struct ThicknessMaps {
    /// Soft-tissue path length, mm.
    pub tissue: Vec<f32>,
    /// Bone path length in cortical equivalents, mm.
    pub bone: Vec<f32>,
}

fn j(rng: &mut (impl Rng + ?Sized), s: f32) -> f32 {
    rng.random_range(-s..=s)
}

fn wobble(rng: &mut (impl Rng + ?Sized), amp: f32) -> [f32; 6] {
    let mut w = [0.0; 6];
    for k in 0..3 {
        w[2 * k] = rng.random_range(0.0..amp) / (k as f32 + 1.0);
        w[2 * k + 1] = rng.random_range(0.0..std::f32::consts::TAU);
    }
    w
}

/// How a bone's path length is made up: cortical shell fraction (of the radius), relative
/// density inside, and a factor on the whole (1 for round bones, well below 1 for flat
/// bones seen face on).
#[derive(Debug, Clone, Copy)]
struct Density {
    cortex: f32,
    medulla: f32,
    scale: f32,
}

impl Density {
    const fn new(cortex: f32, medulla: f32, scale: f32) -> Self {
        Self {
            cortex,
            medulla,
            scale,
        }
    }
    fn kind(self) -> Kind {
        Kind::Bone {
            cortex: self.cortex,
            medulla: self.medulla,
            scale: self.scale,
        }
    }
    /// Rounded ends of long bones, femoral and humeral heads, trochanters: thin shell
    /// around dense trabecular bone.
    const EPIPHYSIS: Self = Self::new(0.12, 0.5, 1.0);
    /// Carpals, tarsals, condyles, the patella: the limbs' small bones.
    const EPIPHYSIS_SMALL: Self = Self::new(0.12, 0.45, 1.0);
    /// Vertebral bodies: a thin shell around light trabecular bone.
    const VERTEBRA: Self = Self::new(0.1, 0.22, 0.55);
    /// Pedicles and small processes: rings of cortex seen end on.
    const PEDICLE: Self = Self::new(0.4, 0.4, 1.0);
    /// Scapula and iliac wing seen face on: a thin plate.
    const PLATE: Self = Self::new(0.35, 0.3, 0.1);
    /// The thick parts of flat bones (glenoid, acromion, above the acetabulum).
    const FLAT_BODY: Self = Self::new(0.15, 0.45, 0.7);
    /// Sacrum: spongy, with the foramina lightening it.
    const SACRUM: Self = Self::new(0.2, 0.4, 0.3);
    /// Posterior rib arcs and floating ribs.
    const RIB: Self = Self::new(0.3, 0.3, 0.8);
    /// Anterior rib arcs: thinner, flatter, fainter.
    const RIB_FRONT: Self = Self::new(0.35, 0.3, 0.6);
    /// Clavicle: a round tubular bone.
    const CLAVICLE: Self = Self::new(0.3, 0.25, 1.0);
}

struct Builder<'a, R: Rng + ?Sized> {
    prims: Vec<Prim>,
    rng: &'a mut R,
    group: u32,
    join: bool,
    /// Size of this individual: multiplies the canonical positions and radii given to
    /// `bone_blob`, `curved_bone`, `bone_at`, `tissue_at` and `soft_blob` (not those of
    /// the limb builders, whose size comes from the pose alone).
    size: f32,
}

impl<R: Rng + ?Sized> Builder<'_, R> {
    /// A canonical point at the individual's size.
    fn sized(&self, p: [f32; 2]) -> [f32; 2] {
        [p[0] * self.size, p[1] * self.size]
    }
    /// The next bone primitive belongs to the same bone as the previous one.
    fn join(&mut self) -> &mut Self {
        self.join = true;
        self
    }
    fn next_group(&mut self) -> u32 {
        if !std::mem::take(&mut self.join) {
            self.group += 1;
        }
        self.group
    }
    /// A long bone of the limbs: light medulla, cortex `cortex`.
    #[allow(clippy::too_many_arguments)]
    fn bone(&mut self, a: [f32; 2], b: [f32; 2], ra: f32, rb: f32, wa: f32, wb: f32, cortex: f32) {
        self.bone_at(a, b, [ra, rb], [wa, wb], Density::new(cortex, 0.12, 1.0));
    }
    /// A small bone of the limbs (carpal, tarsal, condyle, patella).
    fn blob(&mut self, c: [f32; 2], rx: f32, ry: f32, angle_deg: f32) {
        self.bone_blob(c, rx, ry, angle_deg, Density::EPIPHYSIS_SMALL);
    }
    fn tissue(&mut self, a: [f32; 2], b: [f32; 2], ra: f32, rb: f32, depth: f32) {
        let w = wobble(self.rng, 0.06);
        self.soft_tube(Layer::Tissue, a, b, [ra, rb], depth, w);
    }
    fn soft_tube(
        &mut self,
        layer: Layer,
        a: [f32; 2],
        b: [f32; 2],
        [ra, rb]: [f32; 2],
        depth: f32,
        w: [f32; 6],
    ) {
        self.prims.push(Prim {
            shape: Shape::Tube {
                a,
                b,
                ra,
                rb,
                widen_a: 0.0,
                widen_b: 0.0,
            },
            kind: Kind::Soft {
                layer,
                depth,
                wobble: w,
            },
            group: 0,
        });
    }
    /// The pulmonary vessels of one lung: a tree of blood-filled tubes from the hilum
    /// that push the lung's air aside (the lung markings). Five trunks fan out from
    /// `hilum` (`side` −1 or 1 gives the outward direction), each forking in two
    /// three times over (four generations of tubes), shorter and thinner at every fork.
    fn vessel_tree(&mut self, hilum: [f32; 2], side: f32) {
        let k = self.size;
        let mut stack: Vec<([f32; 2], f32, f32, f32, u32)> = [20.0f32, 60.0, 100.0, 140.0, 168.0]
            .iter()
            .map(|&a| (hilum, side * (a + j(self.rng, 10.0)), 42.0, 6.5, 0))
            .collect();
        while let Some((start, angle, len, r, level)) = stack.pop() {
            let len = len * self.rng.random_range(0.75..1.25f32);
            let end = add(start, dir(angle), len);
            let (a, b) = (self.sized(start), self.sized(end));
            self.soft_tube(Layer::Displace, a, b, [r * k, 0.85 * r * k], 1.0, [0.0; 6]);
            if level < 3 {
                for turn in [-1.0f32, 1.0] {
                    let fork = angle + turn * self.rng.random_range(15.0..35.0f32);
                    stack.push((end, fork, len * 0.72, r * 0.7, level + 1));
                }
            }
        }
    }
    fn tissue_blob(&mut self, c: [f32; 2], rx: f32, ry: f32, angle_deg: f32, depth: f32) {
        self.soft_blob(Layer::Tissue, c, rx, ry, angle_deg, depth);
    }
    fn soft_blob(
        &mut self,
        layer: Layer,
        c: [f32; 2],
        rx: f32,
        ry: f32,
        angle_deg: f32,
        depth: f32,
    ) {
        let k = self.size;
        let w = wobble(self.rng, 0.05);
        self.prims.push(Prim {
            shape: Shape::Blob {
                c: self.sized(c),
                rx: rx * k,
                ry: ry * k,
                angle: angle_deg.to_radians(),
            },
            kind: Kind::Soft {
                layer,
                depth,
                wobble: w,
            },
            group: 0,
        });
    }
    /// A tube of soft tissue at the individual's size (trunk, neck, arms, thighs).
    fn tissue_at(&mut self, a: [f32; 2], b: [f32; 2], ra: f32, rb: f32, depth: f32) {
        let k = self.size;
        self.tissue(self.sized(a), self.sized(b), ra * k, rb * k, depth);
    }
    /// An ellipsoidal bone of the given make-up, at the individual's size.
    fn bone_blob(&mut self, c: [f32; 2], rx: f32, ry: f32, angle_deg: f32, d: Density) {
        let s = self.size * (1.0 + j(self.rng, 0.07));
        let group = self.next_group();
        self.prims.push(Prim {
            shape: Shape::Blob {
                c: self.sized(c),
                rx: rx * s,
                ry: ry * s,
                angle: angle_deg.to_radians(),
            },
            kind: d.kind(),
            group,
        });
    }
    /// A straight tube of bone (radius `ra → rb`, ends widened by `widen`), at the
    /// individual's size.
    fn bone_at(&mut self, a: [f32; 2], b: [f32; 2], r: [f32; 2], widen: [f32; 2], d: Density) {
        let s = self.size * (1.0 + j(self.rng, 0.06));
        let group = self.next_group();
        self.prims.push(Prim {
            shape: Shape::Tube {
                a: self.sized(a),
                b: self.sized(b),
                ra: r[0] * s,
                rb: r[1] * s,
                widen_a: widen[0],
                widen_b: widen[1],
            },
            kind: d.kind(),
            group,
        });
    }
    /// A curved bone (rib, clavicle): short tubes along the quadratic Bézier curve
    /// `p[0] → p[2]` with control point `p[1]`, radius `r[0] → r[1]`, all one bone.
    fn curved_bone(&mut self, p: [[f32; 2]; 3], r: [f32; 2], d: Density) {
        const SEGMENTS: usize = 6;
        let k = self.size;
        let at = |t: f32| {
            let u = 1.0 - t;
            let (w0, w1, w2) = (u * u, 2.0 * u * t, t * t);
            [
                k * (w0 * p[0][0] + w1 * p[1][0] + w2 * p[2][0]),
                k * (w0 * p[0][1] + w1 * p[1][1] + w2 * p[2][1]),
            ]
        };
        for i in 0..SEGMENTS {
            let (t0, t1) = (i as f32 / SEGMENTS as f32, (i + 1) as f32 / SEGMENTS as f32);
            if i > 0 {
                self.join = true;
            }
            let group = self.next_group();
            self.prims.push(Prim {
                shape: Shape::Tube {
                    a: at(t0),
                    b: at(t1),
                    ra: k * (r[0] + (r[1] - r[0]) * t0),
                    rb: k * (r[0] + (r[1] - r[0]) * t1),
                    widen_a: 0.0,
                    widen_b: 0.0,
                },
                kind: d.kind(),
                group,
            });
        }
    }
}

fn add(p: [f32; 2], d: [f32; 2], len: f32) -> [f32; 2] {
    [p[0] + d[0] * len, p[1] + d[1] * len]
}

fn dir(deg: f32) -> [f32; 2] {
    // 0° points up (−y, towards the fingertips), positive angles turn towards +x.
    let r = deg.to_radians();
    [r.sin(), -r.cos()]
}

/// Upper limb, canonical frame: wrist at the origin, fingers towards −y, elbow at
/// y ≈ +255, shoulder towards +y. Thumb on the −x side.
fn upper_limb<R: Rng + ?Sized>(b: &mut Builder<'_, R>) {
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
fn lower_limb<R: Rng + ?Sized>(b: &mut Builder<'_, R>) {
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
fn foot<R: Rng + ?Sized>(b: &mut Builder<'_, R>) {
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

/// Chest, PA, canonical frame: origin in the middle of the chest at about the seventh
/// thoracic vertebra, head towards −y, the heart on the +x side. An adult of about 300 mm
/// across the ribs and 220 mm front to back.
fn thorax<R: Rng + ?Sized>(b: &mut Builder<'_, R>) {
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
fn pelvis<R: Rng + ?Sized>(b: &mut Builder<'_, R>) {
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

/// Build a body part with random anatomy variations (not yet posed).
pub(crate) fn build<R: Rng + ?Sized>(part: BodyPart, rng: &mut R) -> Anatomy {
    let mut b = Builder {
        prims: Vec::with_capacity(48),
        rng,
        group: 0,
        join: false,
        size: 1.0,
    };
    // Which model, the point the framing centres on (mm) and the nominal field of view (mm);
    // parts of one model differ only in framing. Trunk examinations use several times a
    // limb's dose (higher kV and mAs), so they are not more quantum-limited than a hand.
    type Model<R> = fn(&mut Builder<'_, R>);
    let (model, mut center, extent, technique): (Model<R>, [f32; 2], f32, f32) = match part {
        BodyPart::Hand => (upper_limb, [0.0, -62.0], 215.0, 1.0),
        BodyPart::Wrist => (upper_limb, [0.0, -8.0], 120.0, 1.0),
        BodyPart::Forearm => (upper_limb, [0.0, 130.0], 300.0, 1.0),
        BodyPart::Elbow => (upper_limb, [0.0, 255.0], 160.0, 1.0),
        BodyPart::Knee => (lower_limb, [0.0, 0.0], 210.0, 1.0),
        BodyPart::LowerLeg => (lower_limb, [0.0, 190.0], 430.0, 1.0),
        BodyPart::Femur => (lower_limb, [0.0, -230.0], 380.0, 1.0),
        BodyPart::AnkleFoot => (foot, [0.0, 55.0], 240.0, 1.0),
        BodyPart::Chest => (thorax, [0.0, -20.0], 400.0, 4.0),
        BodyPart::Pelvis => (pelvis, [0.0, -70.0], 400.0, 8.0),
        BodyPart::Hip => (pelvis, [100.0, -10.0], 250.0, 8.0),
    };
    model(&mut b);
    // A hip view centres on either hip joint.
    if part == BodyPart::Hip && b.rng.random_bool(0.5) {
        center[0] = -center[0];
    }
    Anatomy {
        prims: b.prims,
        center,
        extent,
        technique,
    }
}

/// Similarity pose from canonical mm to pixel coordinates.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Pose {
    /// Pixels per millimetre.
    pub scale: f32,
    /// Rotation, radians.
    pub angle: f32,
    /// Mirror x before rotating (left/right limb).
    pub mirror: bool,
    /// Canonical point mapped to `target`.
    pub origin: [f32; 2],
    /// Pixel position of `origin`.
    pub target: [f32; 2],
}

impl Pose {
    fn map(&self, p: [f32; 2]) -> [f32; 2] {
        let mut x = p[0] - self.origin[0];
        let y = p[1] - self.origin[1];
        if self.mirror {
            x = -x;
        }
        let (s, c) = self.angle.sin_cos();
        [
            self.target[0] + self.scale * (c * x - s * y),
            self.target[1] + self.scale * (s * x + c * y),
        ]
    }
}

/// Wobble of a tissue outline at tube parameter `t`.
#[inline]
fn wobble_at(w: &[f32; 6], t: f32) -> f32 {
    1.0 + w[0] * (std::f32::consts::TAU * t + w[1]).sin()
        + w[2] * (2.0 * std::f32::consts::TAU * t + w[3]).sin()
        + w[4] * (3.0 * std::f32::consts::TAU * t + w[5]).sin()
}

impl Anatomy {
    /// Rasterise into `width × height` maps under `pose`. Values in mm.
    pub(crate) fn rasterise(&self, width: usize, height: usize, pose: &Pose) -> ThicknessMaps {
        let n = width * height;
        let mut tissue = vec![0.0f32; n];
        let mut bone = vec![0.0f32; n];
        // Limbs have no air: its maps are only allocated for the trunk.
        let map_for = |layer: Layer| {
            let used = self
                .prims
                .iter()
                .any(|p| matches!(p.kind, Kind::Soft { layer: l, .. } if l == layer));
            if used {
                vec![0.0f32; n]
            } else {
                Vec::new()
            }
        };
        let mut air = map_for(Layer::Air);
        let mut displaced = map_for(Layer::Displace);
        // One bone's primitives merge by maximum in `gbuf`; finished bones add into `bone`.
        let mut gbuf = vec![0.0f32; n];
        let mut gbox: Option<(usize, usize, usize, usize)> = None;
        let mut current = u32::MAX;
        let flush = |gbuf: &mut [f32],
                     bone: &mut [f32],
                     gbox: &mut Option<(usize, usize, usize, usize)>| {
            if let Some((x0, x1, y0, y1)) = gbox.take() {
                for y in y0..y1 {
                    let r = y * width;
                    for (b, g) in bone[r + x0..r + x1]
                        .iter_mut()
                        .zip(&mut gbuf[r + x0..r + x1])
                    {
                        *b += *g;
                        *g = 0.0;
                    }
                }
            }
        };
        let mm_per_px = 1.0 / pose.scale;
        for prim in &self.prims {
            if matches!(prim.kind, Kind::Bone { .. }) && prim.group != current {
                flush(&mut gbuf, &mut bone, &mut gbox);
                current = prim.group;
            }
            let soft_map: &mut Vec<f32> = match prim.kind {
                Kind::Soft {
                    layer: Layer::Air, ..
                } => &mut air,
                Kind::Soft {
                    layer: Layer::Displace,
                    ..
                } => &mut displaced,
                _ => &mut tissue,
            };
            match prim.shape {
                Shape::Tube {
                    a,
                    b,
                    ra,
                    rb,
                    widen_a,
                    widen_b,
                } => {
                    let (pa, pb) = (pose.map(a), pose.map(b));
                    let (ra, rb) = (ra * pose.scale, rb * pose.scale);
                    let rmax = ra.max(rb) * (1.0 + widen_a.max(widen_b)) * 1.2 + 1.0;
                    let Some((x0, x1, y0, y1)) = bbox(pa, pb, rmax, width, height) else {
                        continue;
                    };
                    if matches!(prim.kind, Kind::Bone { .. }) {
                        gbox = Some(union(gbox, (x0, x1, y0, y1)));
                    }
                    let (dx, dy) = (pb[0] - pa[0], pb[1] - pa[1]);
                    let len = (dx * dx + dy * dy).sqrt().max(1e-3);
                    let (ux, uy) = (dx / len, dy / len);
                    // Bone ends are flattened caps (an articular surface, not a hemisphere):
                    // the axial overshoot counts `cap` times, so the cap reaches r/cap.
                    let cap = match prim.kind {
                        Kind::Bone { .. } => 2.0,
                        Kind::Soft { .. } => 1.0,
                    };
                    for y in y0..y1 {
                        let py = y as f32 + 0.5 - pa[1];
                        let row = y * width;
                        for x in x0..x1 {
                            let px = x as f32 + 0.5 - pa[0];
                            let along = px * ux + py * uy;
                            let perp = px * uy - py * ux;
                            let over = if along < 0.0 {
                                -along
                            } else if along > len {
                                along - len
                            } else {
                                0.0
                            };
                            let t = (along / len).clamp(0.0, 1.0);
                            let d2 = perp * perp + cap * cap * over * over;
                            let base = ra + (rb - ra) * t;
                            match prim.kind {
                                Kind::Bone {
                                    cortex,
                                    medulla,
                                    scale,
                                } => {
                                    let ea = (1.0 - t / 0.2).max(0.0);
                                    let eb = ((t - 0.8) / 0.2).max(0.0);
                                    let r = base * (1.0 + widen_a * ea * ea + widen_b * eb * eb);
                                    let r2 = r * r;
                                    if d2 >= r2 {
                                        continue;
                                    }
                                    let endness = ea.max(eb);
                                    let ri = r * (1.0 - cortex * (1.0 - 0.7 * endness));
                                    let rho = medulla + (0.42 - medulla) * endness;
                                    let outer = 2.0 * (r2 - d2).sqrt();
                                    let inner = 2.0 * (ri * ri - d2).max(0.0).sqrt();
                                    let v = (outer - inner + rho * inner) * scale * mm_per_px;
                                    let g = &mut gbuf[row + x];
                                    *g = g.max(v);
                                }
                                Kind::Soft { depth, wobble, .. } => {
                                    let r = base * wobble_at(&wobble, t);
                                    let r2 = r * r;
                                    if d2 >= r2 {
                                        continue;
                                    }
                                    let th = depth * 2.0 * (r2 - d2).sqrt() * mm_per_px;
                                    let cell = &mut soft_map[row + x];
                                    *cell = cell.max(th);
                                }
                            }
                        }
                    }
                }
                Shape::Blob { c, rx, ry, angle } => {
                    let pc = pose.map(c);
                    let (rx, ry) = (rx * pose.scale, ry * pose.scale);
                    let r = rx.max(ry) * 1.2 + 1.0;
                    let Some((x0, x1, y0, y1)) = bbox(pc, pc, r, width, height) else {
                        continue;
                    };
                    if matches!(prim.kind, Kind::Bone { .. }) {
                        gbox = Some(union(gbox, (x0, x1, y0, y1)));
                    }
                    // Axis directions in the image: the canonical angle plus the pose's.
                    let mut ang = angle;
                    if pose.mirror {
                        ang = -ang;
                    }
                    let (s, co) = (ang + pose.angle).sin_cos();
                    let rz = 0.5 * (rx + ry);
                    for y in y0..y1 {
                        let py = y as f32 + 0.5 - pc[1];
                        let row = y * width;
                        for x in x0..x1 {
                            let px = x as f32 + 0.5 - pc[0];
                            let u = (co * px + s * py) / rx;
                            let v = (-s * px + co * py) / ry;
                            let q = u * u + v * v;
                            match prim.kind {
                                Kind::Bone {
                                    cortex,
                                    medulla,
                                    scale,
                                } => {
                                    if q >= 1.0 {
                                        continue;
                                    }
                                    let k = 1.0 - cortex;
                                    let outer = 2.0 * rz * (1.0 - q).sqrt();
                                    let inner = 2.0 * rz * k * (1.0 - q / (k * k)).max(0.0).sqrt();
                                    let v = (outer - inner + medulla * inner) * scale * mm_per_px;
                                    let g = &mut gbuf[row + x];
                                    *g = g.max(v);
                                }
                                Kind::Soft { depth, wobble, .. } => {
                                    let theta = v.atan2(u) / std::f32::consts::TAU;
                                    let wr = wobble_at(&wobble, theta);
                                    let q = q / (wr * wr);
                                    if q >= 1.0 {
                                        continue;
                                    }
                                    let th = depth * 2.0 * rz * (1.0 - q).sqrt() * mm_per_px;
                                    let cell = &mut soft_map[row + x];
                                    *cell = cell.max(th);
                                }
                            }
                        }
                    }
                }
            }
        }
        flush(&mut gbuf, &mut bone, &mut gbox);
        if !air.is_empty() {
            for (i, t) in tissue.iter_mut().enumerate() {
                let a = air[i] - displaced.get(i).copied().unwrap_or(0.0);
                if a > 0.0 && *t > 0.0 {
                    *t = (*t - a).max(MIN_TISSUE_LEFT * *t);
                }
            }
        }
        // Bone lies inside the limb: where a bone pokes out of a tissue outline, give it a
        // covering of about 2 mm (at least one pixel) all round, so the labels stay nested
        // (bone ⊂ tissue) as in a real limb.
        let r = ((2.0 * pose.scale).round() as usize).max(1);
        let near_bone = dilate_square(&bone, width, height, r);
        for ((t, &b), &near) in tissue.iter_mut().zip(&bone).zip(&near_bone) {
            if b > 0.0 {
                *t = t.max(b + 2.0);
            } else if near {
                *t = t.max(2.0);
            }
        }
        ThicknessMaps { tissue, bone }
    }
}

/// Whether each pixel has a positive value of `v` within the `(2r + 1)²` square around it
/// (clipped to the image): two sliding-window passes, so the cost does not grow with `r`.
fn dilate_square(v: &[f32], width: usize, height: usize, r: usize) -> Vec<bool> {
    let span = 2 * r + 1;
    let mut rows = vec![0u32; width * height];
    for (src, dst) in v.chunks_exact(width).zip(rows.chunks_exact_mut(width)) {
        let mut count = 0u32;
        for x in 0..width + r {
            if x < width && src[x] > 0.0 {
                count += 1;
            }
            if x >= span && src[x - span] > 0.0 {
                count -= 1;
            }
            if x >= r {
                dst[x - r] = count;
            }
        }
    }
    let mut out = vec![false; width * height];
    for x in 0..width {
        let mut count = 0u32;
        for y in 0..height + r {
            if y < height && rows[y * width + x] > 0 {
                count += 1;
            }
            if y >= span && rows[(y - span) * width + x] > 0 {
                count -= 1;
            }
            if y >= r {
                out[(y - r) * width + x] = count > 0;
            }
        }
    }
    out
}

fn union(
    a: Option<(usize, usize, usize, usize)>,
    b: (usize, usize, usize, usize),
) -> (usize, usize, usize, usize) {
    match a {
        None => b,
        Some(a) => (a.0.min(b.0), a.1.max(b.1), a.2.min(b.2), a.3.max(b.3)),
    }
}

fn bbox(
    a: [f32; 2],
    b: [f32; 2],
    r: f32,
    w: usize,
    h: usize,
) -> Option<(usize, usize, usize, usize)> {
    let x0 = (a[0].min(b[0]) - r).floor().max(0.0);
    let x1 = (a[0].max(b[0]) + r).ceil().min(w as f32);
    let y0 = (a[1].min(b[1]) - r).floor().max(0.0);
    let y1 = (a[1].max(b[1]) + r).ceil().min(h as f32);
    if x0 >= x1 || y0 >= y1 {
        None
    } else {
        Some((x0 as usize, x1 as usize, y0 as usize, y1 as usize))
    }
}

/// Draw a pose: the part's framing centre near the image centre, scale so that its nominal
/// extent fills 75–130 % of the image, rotation mostly near vertical.
pub(crate) fn sample_pose(
    anat: &Anatomy,
    width: usize,
    height: usize,
    rng: &mut (impl Rng + ?Sized),
) -> Pose {
    let size = width.min(height) as f32;
    let scale = size / anat.extent * rng.random_range(0.75..1.3f32);
    let base = if rng.random_bool(0.8) {
        0.0
    } else {
        std::f32::consts::FRAC_PI_2
    };
    let flip = if rng.random_bool(0.5) {
        std::f32::consts::PI
    } else {
        0.0
    };
    let angle = base + flip + rng.random_range(-0.35..0.35f32);
    Pose {
        scale,
        angle,
        mirror: rng.random_bool(0.5),
        origin: anat.center,
        target: [
            width as f32 * (0.5 + rng.random_range(-0.12..0.12f32)),
            height as f32 * (0.5 + rng.random_range(-0.12..0.12f32)),
        ],
    }
}

#[cfg(test)]
mod tests {
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
            (at(30, 35) - (chord(50.0, (20.0f32.powi(2) + 15.0f32.powi(2)).sqrt()) - a)).abs()
                < 1e-3
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
}
