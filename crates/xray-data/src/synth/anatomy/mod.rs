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
//!
//! Files: `limbs.rs` and `trunk.rs` build the body parts from the primitives defined here,
//! `raster.rs` turns them into thickness maps.

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

mod limbs;
mod raster;
#[cfg(test)]
mod tests;
mod trunk;

use limbs::{foot, lower_limb, upper_limb};
use trunk::{pelvis, thorax};

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
