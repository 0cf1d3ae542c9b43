//! Collimator detection on `xray_data::synth` phantoms, which know their true field.
//!
//! `cargo test -p xray-postproc --test synth_phantoms -- --ignored --nocapture`
//! (`XRAY_POSTPROC_STUDY_N=400 XRAY_POSTPROC_STUDY_SEED=9` for another sample;
//! `XRAY_POSTPROC_STUDY_DUMP=DIR` writes every failing image there, true edges green,
//! found edges red).

use std::path::{Path, PathBuf};

use image::{Rgb, RgbImage};
use rand::rngs::StdRng;
use rand::SeedableRng;
use xray_data::synth::{generate, sample_category, BodyPart, FieldPolygon, PhantomConfig};
use xray_postproc::{detect_collimator, edge_distance, CollimatorConfig, Line, Plane, Side};

/// The true edges of a synth field in this crate's convention (pixel centres at integer
/// coordinates; synth puts them at +0.5), keyed by this crate's sides.
fn true_edges(f: &FieldPolygon) -> Vec<(Side, Line)> {
    let (s, c) = f.angle_deg.to_radians().sin_cos();
    let (cx, cy) = (f.center[0] - 0.5, f.center[1] - 0.5);
    // u = c·dx − s·dy, v = s·dx + c·dy (dx, dy from the centre).
    let mut out = Vec::new();
    let lines = [
        (Side::Left, c, -s, f.u_bounds[0], 1.0),
        (Side::Right, c, -s, f.u_bounds[1], -1.0),
        (Side::Top, s, c, f.v_bounds[0], 1.0),
        (Side::Bottom, s, c, f.v_bounds[1], -1.0),
    ];
    // synth indexes `cut` as Left, Right, Top, Bottom.
    for (k, (side, ax, ay, b, sign)) in lines.into_iter().enumerate() {
        if f.cut[k] {
            let (nx, ny) = (sign * ax, sign * ay);
            out.push((
                side,
                Line {
                    nx,
                    ny,
                    c: sign * (b + ax * cx + ay * cy),
                },
            ));
        }
    }
    let order = |s: &Side| Side::ALL.iter().position(|t| t == s).unwrap_or(0);
    out.sort_by_key(|(s, _)| order(s));
    out
}

/// Writes `image` (log-compressed for display unless it is log output already) with the true
/// edges in green and the found ones in red, for looking at failures.
fn dump(
    dir: &Path,
    name: &str,
    image: &xray_data::Radiograph,
    log_output: bool,
    truth: &[(Side, Line)],
    found: &[Line],
) {
    let (w, h) = image.dimensions();
    let v: Vec<f32> = image
        .as_raw()
        .iter()
        .map(|&x| {
            if log_output {
                x
            } else {
                (x.max(0.0) + 1.0).ln()
            }
        })
        .collect();
    let (lo, hi) = v
        .iter()
        .fold((f32::MAX, f32::MIN), |(a, b), &x| (a.min(x), b.max(x)));
    let scale = 255.0 / (hi - lo).max(1e-6);
    let mut out = RgbImage::from_fn(w, h, |x, y| {
        let g = ((v[(y * w + x) as usize] - lo) * scale) as u8;
        Rgb([g, g, g])
    });
    let mut draw = |l: &Line, colour: Rgb<u8>| {
        if let Some((a, b)) = l.clip_to(w as usize, h as usize) {
            imageproc::drawing::draw_line_segment_mut(&mut out, a, b, colour);
        }
    };
    for (_, l) in truth {
        draw(l, Rgb([0, 220, 0]));
    }
    for l in found {
        draw(l, Rgb([255, 40, 40]));
    }
    let _ = std::fs::create_dir_all(dir);
    let _ = out.save(dir.join(format!("{name}.png")));
}

/// One group of the study's images: how many, how many with a missed or invented edge, and
/// the distances of the edges of the others.
#[derive(Default)]
struct Group {
    images: usize,
    wrong: usize,
    /// Images with the right sides, one of whose edges lies over [`FAR_PX`] from the truth.
    far: usize,
    distances: Vec<f32>,
}

/// An edge this far (px) from the true one is misplaced, not merely imprecise: the image has
/// the right sides but not the right field.
const FAR_PX: f32 = 10.0;

impl Group {
    fn add(&mut self, wrong: bool, distances: &[f32]) {
        self.images += 1;
        self.wrong += wrong as usize;
        self.far += distances.iter().any(|&d| d > FAR_PX) as usize;
        self.distances.extend_from_slice(distances);
    }

    /// Prints one line; returns the mean distance.
    fn report(&mut self, what: &str) -> f32 {
        let (n, wrong, far, d) = (self.images, self.wrong, self.far, &mut self.distances);
        if d.is_empty() {
            println!("{what}: {n} images, {wrong} with a missed or invented edge, no edges");
            return 0.0;
        }
        d.sort_by(f32::total_cmp);
        let q = |p: f32| d[((d.len() - 1) as f32 * p) as usize];
        let mean = d.iter().sum::<f32>() / d.len() as f32;
        println!(
            "{what}: {n} images, {wrong} with a missed or invented edge, {far} more with an edge over {FAR_PX} px off; {} edges: mean {mean:.3} px, median {:.3}, p90 {:.3}, p99 {:.3}, max {:.3}",
            d.len(),
            q(0.5),
            q(0.9),
            q(0.99),
            q(1.0)
        );
        mean
    }
}

/// The study's groups: every image, linear and log output, limbs and trunk views.
#[derive(Default)]
struct Study {
    all: Group,
    linear: Group,
    log: Group,
    limbs: Group,
    trunk: Group,
    notes: Vec<String>,
}

fn is_trunk(part: BodyPart) -> bool {
    matches!(part, BodyPart::Chest | BodyPart::Pelvis | BodyPart::Hip)
}

fn study(n: usize, size: u32, seed: u64) -> Study {
    let mut rng = StdRng::seed_from_u64(seed);
    let cfg = PhantomConfig::with_size(size);
    let dump_dir: Option<PathBuf> = std::env::var_os("XRAY_POSTPROC_STUDY_DUMP").map(Into::into);
    let mut st = Study::default();
    for i in 0..n {
        let cat = sample_category(&mut rng, &cfg.category_weights).unwrap();
        let p = generate(&cfg, cat, &mut rng).unwrap();
        let plane = Plane::from_image(&p.image).unwrap();
        let found = detect_collimator(&plane, &CollimatorConfig::default()).unwrap();
        // The detector's own field always passes the checks a caller's field goes through.
        found.validate().unwrap();
        let truth = true_edges(&p.field);
        let fs: Vec<Side> = found.edges.iter().map(|e| e.side).collect();
        let ts: Vec<Side> = truth.iter().map(|t| t.0).collect();
        let name = format!(
            "{i:04}-{cat:?}-{}",
            if p.log_output { "log" } else { "lin" }
        );
        let lines: Vec<Line> = found.edges.iter().map(|e| e.line).collect();
        let wrong = fs != ts;
        let mut distances = Vec::new();
        if wrong {
            st.notes.push(format!(
                "image {i} ({cat:?}, log {}): found {fs:?}, true {ts:?}",
                p.log_output
            ));
        } else {
            for (side, l) in &truth {
                let d = found
                    .edge(*side)
                    .and_then(|e| edge_distance(&e.line, l, size as usize, size as usize))
                    .unwrap_or(f32::NAN);
                if d > 1.0 {
                    st.notes.push(format!(
                        "image {i} ({cat:?}, log {}): {side:?} off by {d:.2} px",
                        p.log_output
                    ));
                }
                distances.push(d);
            }
        }
        if let Some(dir) = &dump_dir {
            if wrong || distances.iter().any(|&d| d > 1.0) {
                dump(dir, &name, &p.image, p.log_output, &truth, &lines);
            }
        }
        st.all.add(wrong, &distances);
        if p.log_output {
            &mut st.log
        } else {
            &mut st.linear
        }
        .add(wrong, &distances);
        if is_trunk(cat) {
            &mut st.trunk
        } else {
            &mut st.limbs
        }
        .add(wrong, &distances);
    }
    st
}

#[test]
fn synth_phantoms_quick() {
    let mut st = study(6, 256, 5);
    st.all.report("6 synth phantoms 256 x 256");
    for n in &st.notes {
        println!("  {n}");
    }
    // The geometry conversion itself: true edges pass through the synth polygon's vertices.
    let mut rng = StdRng::seed_from_u64(1);
    let cfg = PhantomConfig::with_size(128);
    for _ in 0..20 {
        let cat = sample_category(&mut rng, &cfg.category_weights).unwrap();
        let p = generate(&cfg, cat, &mut rng).unwrap();
        let edges = true_edges(&p.field);
        for v in &p.field.vertices {
            let (x, y) = (v[0] - 0.5, v[1] - 0.5);
            assert!(
                edges.iter().all(|(_, l)| l.signed_distance(x, y) > -1e-2),
                "vertex {v:?} outside {edges:?}"
            );
        }
    }
}

#[test]
#[ignore = "accuracy study on 200 synth phantoms at 512 x 512"]
fn synth_phantoms_study_512() {
    // XRAY_POSTPROC_STUDY_N / _SEED run other samples (e.g. a held-out seed).
    let env = |k: &str, d: u64| {
        std::env::var(k)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(d)
    };
    let n = env("XRAY_POSTPROC_STUDY_N", 200) as usize;
    let seed = env("XRAY_POSTPROC_STUDY_SEED", 2024);
    println!("seed {seed}");
    let mut st = study(n, 512, seed);
    let mean = st.all.report("all, 512 x 512");
    st.linear.report("linear output");
    st.log.report("log output");
    let limbs_mean = st.limbs.report("limbs");
    st.trunk.report("trunk views (chest, pelvis, hip)");
    for s in &st.notes {
        println!("  {s}");
    }
    assert!(
        limbs_mean <= 1.0 && st.limbs.wrong * 100 <= st.limbs.images,
        "goal on limbs: mean <= 1 px and <= 1 % images with a missed/invented edge"
    );
    // Trunk views are a known weakness (docs/postprocessing.md); they and the whole set are
    // held to looser bounds so that neither can get worse unnoticed. Over sixteen samples of
    // 400 (2026-11-30, session 27) the worst read 3.5 % of all images and 15.2 % of trunk
    // views wrong (seed 31); the bounds were 10 % of all images and none on trunk views before.
    // On the fresh seeds 1001-1016 and 2001-2016 (session 30) the worst read 17.3 % of trunk
    // views (seed 1012) and 17.2 % (seed 2016): a fresh seed may come near the bound.
    assert!(
        mean <= 1.0 && st.all.wrong * 100 <= 5 * n,
        "all images: mean <= 1 px and <= 5 % images with a missed/invented edge"
    );
    assert!(
        st.trunk.wrong * 100 <= 20 * st.trunk.images,
        "trunk views: <= 20 % with a missed/invented edge"
    );
}

/// What CI runs (the 512 × 512 study is ignored, being slow in the test profile): 100 default
/// phantoms at 256 × 256, held to what they gave when it was added (2026-11-29), so that a
/// change to the detector or the generator that costs accuracy fails a test instead of
/// waiting for someone to rerun the study.
#[test]
fn synth_phantoms_guard_256() {
    let mut st = study(100, 256, 2024);
    let mean = st.all.report("100 synth phantoms 256 x 256");
    let limbs_mean = st.limbs.report("limbs");
    st.trunk.report("trunk views");
    for n in &st.notes {
        println!("  {n}");
    }
    // Measured when added: limbs 0 of 79 wrong (mean 0.24 px), trunk views 9 of 21; 7 of 21
    // since the one-rectangle rule and the second look at the dark end; 5 of 21 (limbs 0,
    // mean 0.16 px) since the rotation-weighted choice and the tries either side of a peak;
    // 3 of 21 since the third look at the darkest end; 2 of 21 since the look for a lone
    // blade; 0 of 21 since a weak lone step over a narrow strip counts as an arm.
    assert!(
        st.limbs.wrong <= 1 && limbs_mean <= 0.5,
        "limbs: {} of {} wrong, mean {limbs_mean} px (were 0 and 0.24)",
        st.limbs.wrong,
        st.limbs.images
    );
    assert!(
        st.trunk.wrong <= 2,
        "trunk views: {} of {} wrong (were 0)",
        st.trunk.wrong,
        st.trunk.images
    );
    // Since the study counts them (2026-11-30, session 28): none of the 100 has the right
    // sides with an edge over FAR_PX off.
    assert_eq!(
        st.all.far, 0,
        "images with the right sides but an edge over {FAR_PX} px off (were 0)"
    );
    assert!(mean.is_finite());
}

/// Phantom `index` of the 512 × 512 study of `seed` ([`study`]'s stream: a category drawn,
/// then the phantom, for each image in turn), with its category.
fn study_phantom(seed: u64, index: usize) -> (BodyPart, xray_data::synth::Phantom) {
    let mut rng = StdRng::seed_from_u64(seed);
    let cfg = PhantomConfig::with_size(512);
    let mut phantom = None;
    for _ in 0..=index {
        let cat = sample_category(&mut rng, &cfg.category_weights).unwrap();
        phantom = Some((cat, generate(&cfg, cat, &mut rng).unwrap()));
    }
    phantom.unwrap()
}

/// The default detector's field on a phantom, and the sides it found.
fn detect(p: &xray_data::synth::Phantom) -> (xray_postproc::Collimator, Vec<Side>) {
    let plane = Plane::from_image(&p.image).unwrap();
    let found = detect_collimator(&plane, &CollimatorConfig::default()).unwrap();
    let sides = found.edges.iter().map(|e| e.side).collect();
    (found, sides)
}

/// Checks that phantom `index` of seed `seed`'s study is the view (`part`, log output or not)
/// with the collimated `sides` a pinned test was written for, and that the default detector
/// finds exactly those sides, each edge within `max_px` of the truth.
fn assert_finds_the_true_sides(
    seed: u64,
    index: usize,
    part: BodyPart,
    log_output: bool,
    sides: &[Side],
    max_px: f32,
) {
    let (cat, p) = study_phantom(seed, index);
    assert_eq!(cat, part);
    assert_eq!(p.log_output, log_output);
    let truth = true_edges(&p.field);
    assert_eq!(truth.iter().map(|t| t.0).collect::<Vec<_>>(), sides);
    let (found, found_sides) = detect(&p);
    assert_eq!(found_sides, sides);
    for (e, (_, t)) in found.edges.iter().zip(&truth) {
        let d = edge_distance(&e.line, t, 512, 512).unwrap();
        assert!(d < max_px, "{:?} edge {d} px from the truth", e.side);
    }
}

/// A lone blade over a thick trunk whose band holds collimated open beam (the beam beside the
/// body, passed by the blade's leakage), brighter than the band next to the edge: the default
/// generator's phantom 20 of seed 3015 at 512 × 512 (a linear pelvis view, its top side
/// collimated), which the look for a lone blade over a bright band finds and the earlier
/// looks did not (2026-11-30, session 32; docs/postprocessing.md). Seed 3015 was one of the
/// fresh samples that confirmed the look.
#[test]
fn a_lone_blade_over_a_bright_band_is_found() {
    assert_finds_the_true_sides(3015, 20, BodyPart::Pelvis, false, &[Side::Top], 1.0);
}

/// Lone blades over a thick linear hip, field and band both at the darkest end: the default
/// generator's phantom 159 of seed 202 at 512 × 512 (a linear hip view, its left and bottom
/// sides collimated). The field just inside the left blade lies at about 0.5 % of the range
/// and the band at half of that, which the first two looks' offsets compress below their
/// contrast or support, so no look found an edge and no rotation was known for the third
/// look at the darkest end. The look for a lone blade at the darkest end finds the left blade
/// on the third look's working image; its rotation then lets the third look find the bottom
/// one (2026-11-30, session 33 (1); docs/postprocessing.md).
#[test]
fn lone_blades_over_a_thick_linear_hip_are_found_at_the_darkest_end() {
    let sides = [Side::Left, Side::Bottom];
    assert_finds_the_true_sides(202, 159, BodyPart::Hip, false, &sides, 1.0);
}

/// A lone blade over a log pelvis whose band holds collimated open beam: the default
/// generator's phantom 129 of seed 21 at 512 × 512 (a log pelvis view, its right side
/// collimated). The right blade is straight and steps down along its whole length, but its
/// band holds collimated open beam, brighter than the band next to the edge, and the looks
/// for a lone blade refused it with their strict level and band tests; the relaxed look at
/// the band takes it, but needs a rotation. The look for a lone blade with the relaxed look's
/// tests, beside a field under half the range, finds it (2026-12-01, session 33 (2);
/// docs/postprocessing.md).
#[test]
fn a_lone_blade_over_a_log_pelvis_with_a_bright_band_is_found() {
    assert_finds_the_true_sides(21, 129, BodyPart::Pelvis, true, &[Side::Right], 1.0);
}

/// Lone blades over linear trunks whose band the trunk's scatter fills: the default
/// generator's phantom 244 of seed 303 at 512 × 512 (a linear chest view, its left side
/// collimated) and phantom 226 of seed 88 (a linear hip view, left, top and bottom
/// collimated). Their left blades are straight, supported along the whole line, over flat
/// bands 35 and 49 working px deep whose level just outside is 0.27 and 0.32 of the level
/// inside, but that level (0.19 and 0.20 of the range) lies over `max_outside_level` (0.15),
/// so every look refused them and nothing was found. The look for a lone blade over such a
/// band (the strict tests without that ceiling, over a band at least 30 working px deep)
/// finds them, and the hip's left blade gives the rotation for its top and bottom ones
/// (2026-12-01, session 35 (2); docs/postprocessing.md).
#[test]
fn lone_blades_over_a_band_filled_by_scatter_are_found() {
    assert_finds_the_true_sides(303, 244, BodyPart::Chest, false, &[Side::Left], 1.0);
    let sides = [Side::Left, Side::Top, Side::Bottom];
    assert_finds_the_true_sides(88, 226, BodyPart::Hip, false, &sides, 1.0);
}

/// An upper arm beside an uncollimated log chest: the default generator's phantom 36 of seed
/// 31 at 512 × 512 (a log chest view without collimation). The arm's edge along the top of
/// the image, with open beam just inside it, passed every test of the first look for a top
/// blade (log input skips the flat-beyond test), with the rest of the arm as the "band".
/// Beside open beam a blade's band holds only leakage and scatter; this one stays at 0.70 of
/// the field's level and keeps falling beyond the line, as tissue thickening beyond a skin
/// line does, so it is refused and nothing is found (2026-11-30, session 32 (3);
/// docs/postprocessing.md).
#[test]
fn an_arm_beside_open_beam_on_a_log_chest_is_no_blade() {
    assert_finds_the_true_sides(31, 36, BodyPart::Chest, true, &[], 1.0);
}

/// A log image whose anatomy's fine structure the plain noise test took for linear noise: the
/// default generator's phantom 20 of seed 41 at 512 × 512 (a log pelvis view with top, right
/// and bottom blades). With the median Laplacian of every pixel per tenth of the levels, the
/// anatomy's structure kept the noise from falling with the level, so the input was judged
/// linear and every true edge failed the linear-only tests: nothing was found. Judged on the flatter half of each tenth,
/// the noise falls with the level as log noise does, and the three edges are found
/// (2026-11-30, session 32 (2); docs/postprocessing.md).
#[test]
fn a_log_pelvis_with_fine_structure_is_judged_log() {
    let sides = [Side::Top, Side::Right, Side::Bottom];
    assert_finds_the_true_sides(41, 20, BodyPart::Pelvis, true, &sides, 3.0);
}

/// A lone blade over a thick log hip with every mark of an arm: the default generator's
/// phantom 163 of seed 202 at 512 × 512 (a log hip view, its right side collimated). The first
/// look accepts the right blade, but it steps down weakly (contrast 0.20), to a band at 0.45 of
/// the field's level and 18 working px deep, so `drop_lone_arms` dropped it as an arm cut by
/// the border, and the looks for a lone blade refused it for support (0.69–0.87 of the line
/// at the offsets tried, under their 0.9): nothing was found. Its field lies at 0.27 of the range, about 0.6 % of
/// the top exposure, too dark for an arm (whose field passes 2 % and more), and it steps down
/// along its whole length, so it is kept as a blade over a thick trunk (2026-12-01, session
/// 34 (1); docs/postprocessing.md).
#[test]
fn a_weak_lone_blade_over_a_thick_log_hip_is_no_arm() {
    assert_finds_the_true_sides(202, 163, BodyPart::Hip, true, &[Side::Right], 1.5);
}
