//! Collimator detection on `xray_data::synth` phantoms, which know their true field.
//!
//! `cargo test -p xray-postproc --test synth_phantoms -- --ignored --nocapture`

use rand::rngs::StdRng;
use rand::SeedableRng;
use xray_data::synth::{generate, sample_category, FieldPolygon, PhantomConfig};
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

fn study(n: usize, size: u32, seed: u64) -> (usize, Vec<f32>, Vec<String>) {
    let mut rng = StdRng::seed_from_u64(seed);
    let cfg = PhantomConfig::with_size(size);
    let (mut wrong, mut dists, mut notes) = (0, Vec::new(), Vec::new());
    for i in 0..n {
        let cat = sample_category(&mut rng, &cfg.category_weights).unwrap();
        let p = generate(&cfg, cat, &mut rng).unwrap();
        let plane = Plane::from_image(&p.image).unwrap();
        let found = detect_collimator(&plane, &CollimatorConfig::default()).unwrap();
        let truth = true_edges(&p.field);
        let fs: Vec<Side> = found.edges.iter().map(|e| e.side).collect();
        let ts: Vec<Side> = truth.iter().map(|t| t.0).collect();
        if fs != ts {
            wrong += 1;
            notes.push(format!(
                "image {i} ({cat:?}, log {}): found {fs:?}, true {ts:?}",
                p.log_output
            ));
            continue;
        }
        for (side, l) in &truth {
            let d = edge_distance(
                &found.edge(*side).unwrap().line,
                l,
                size as usize,
                size as usize,
            )
            .unwrap_or(f32::NAN);
            if d > 1.0 {
                notes.push(format!(
                    "image {i} ({cat:?}, log {}): {side:?} off by {d:.2} px",
                    p.log_output
                ));
            }
            dists.push(d);
        }
    }
    dists.sort_by(f32::total_cmp);
    (wrong, dists, notes)
}

fn report(n: usize, size: u32, wrong: usize, d: &[f32]) -> f32 {
    let q = |p: f32| d[((d.len() - 1) as f32 * p) as usize];
    let mean = d.iter().sum::<f32>() / d.len().max(1) as f32;
    println!(
        "{n} synth phantoms {size}x{size}: {wrong} with a missed or invented edge; {} edges: mean {mean:.3} px, median {:.3}, p90 {:.3}, p99 {:.3}, max {:.3}",
        d.len(),
        q(0.5),
        q(0.9),
        q(0.99),
        q(1.0)
    );
    mean
}

#[test]
fn synth_phantoms_quick() {
    let (wrong, d, notes) = study(6, 256, 5);
    report(6, 256, wrong, &d);
    for n in &notes {
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
    let n = 200;
    let (wrong, d, notes) = study(n, 512, 2024);
    let mean = report(n, 512, wrong, &d);
    for s in &notes {
        println!("  {s}");
    }
    assert!(
        mean <= 1.0 && wrong * 100 <= n,
        "goal: mean <= 1 px and <= 1 % images with a missed/invented edge"
    );
}
