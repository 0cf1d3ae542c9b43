//! Synthetic phantoms: exact labels, physics sanity, collimation, determinism, dataset
//! layout.

use rand::rngs::StdRng;
use rand::SeedableRng;
use xray_data::synth::*;
use xray_data::{BONE, IGNORE_LABEL, OPEN_BEAM, SOFT_TISSUE};

fn mean_where(p: &Phantom, label: u8) -> Option<f64> {
    let v: Vec<f64> = p
        .image
        .as_raw()
        .iter()
        .zip(p.mask.as_raw())
        .filter(|(_, &m)| m == label)
        .map(|(&v, _)| v as f64)
        .collect();
    (v.len() > 20).then(|| v.iter().sum::<f64>() / v.len() as f64)
}

/// Of the horizontal neighbours (1–2 px apart) where one pixel is bone and the other soft
/// tissue, the fraction in which the bone pixel is the darker (fewer X-rays).
fn bone_darker_than_neighbouring_tissue(p: &Phantom) -> f64 {
    let (w, h) = p.mask.dimensions();
    let (mut darker, mut pairs) = (0usize, 0usize);
    for y in 0..h {
        for x in 0..w.saturating_sub(2) {
            for d in 1..=2 {
                let (a, b) = (p.mask.get_pixel(x, y).0[0], p.mask.get_pixel(x + d, y).0[0]);
                let (bone, tissue) = match (a, b) {
                    (BONE, SOFT_TISSUE) => (x, x + d),
                    (SOFT_TISSUE, BONE) => (x + d, x),
                    _ => continue,
                };
                pairs += 1;
                if p.image.get_pixel(bone, y).0[0] < p.image.get_pixel(tissue, y).0[0] {
                    darker += 1;
                }
            }
        }
    }
    darker as f64 / pairs.max(1) as f64
}

fn is_trunk(part: BodyPart) -> bool {
    matches!(part, BodyPart::Chest | BodyPart::Pelvis | BodyPart::Hip)
}

#[test]
fn every_body_part_has_the_expected_classes_and_ordering() {
    let cfg = PhantomConfig {
        collimation_probability: 0.0,
        marker_probability: 0.0,
        ..PhantomConfig::with_size(96)
    };
    let mut rng = StdRng::seed_from_u64(10);
    for part in BodyPart::ALL {
        let mut ordered = 0;
        for _ in 0..4 {
            let p = generate(&cfg, part, &mut rng).unwrap();
            assert_eq!(p.category, part);
            assert!(
                p.mask.pixels().all(|m| [0, 1, 2].contains(&m.0[0])),
                "no 255 without collimation"
            );
            assert!(p
                .image
                .as_raw()
                .iter()
                .all(|&v| (0.0..=65535.0).contains(&v) && v.fract() == 0.0));
            let bone = p.mask.pixels().filter(|m| m.0[0] == BONE).count();
            assert!(bone > 0, "{part}: no bone in view");
            let means = (
                mean_where(&p, OPEN_BEAM),
                mean_where(&p, SOFT_TISSUE),
                mean_where(&p, BONE),
            );
            if is_trunk(part) {
                // Across a whole trunk the class means need not be ordered (ribs over the
                // lungs pass more X-rays than the mediastinum does), which is why a chest
                // defeats global thresholds. What holds: the open beam is the brightest,
                // and a bone is darker than the tissue right beside it.
                if let (Some(o), Some(t), Some(b)) = means {
                    assert!(
                        o > t && o > b,
                        "{part}: open beam {o} not brightest ({t}, {b})"
                    );
                }
                let f = bone_darker_than_neighbouring_tissue(&p);
                if f > 0.65 {
                    ordered += 1;
                }
            } else if let (Some(o), Some(t), Some(b)) = means {
                // Larger = more X-rays: open beam > soft tissue > bone on average.
                if o > t && t > b {
                    ordered += 1;
                }
            } else if let (_, Some(t), Some(b)) = means {
                if t > b {
                    ordered += 1;
                }
            }
        }
        assert!(
            ordered >= 3,
            "{part}: class contrast wrong in {} of 4",
            4 - ordered
        );
    }
}

#[test]
fn labels_are_nested_bone_inside_tissue() {
    // Every bone pixel has tissue around it: no bone label touches open beam directly
    // except through soft tissue (the limb covers its bones).
    let cfg = PhantomConfig {
        collimation_probability: 0.0,
        marker_probability: 0.0,
        ..PhantomConfig::with_size(128)
    };
    let mut rng = StdRng::seed_from_u64(4);
    for part in [BodyPart::Hand, BodyPart::Knee, BodyPart::AnkleFoot] {
        let p = generate(&cfg, part, &mut rng).unwrap();
        let (w, h) = p.mask.dimensions();
        for y in 1..h - 1 {
            for x in 1..w - 1 {
                if p.mask.get_pixel(x, y).0[0] == BONE {
                    for (dx, dy) in [(1i32, 0i32), (-1, 0), (0, 1), (0, -1)] {
                        let n = p
                            .mask
                            .get_pixel((x as i32 + dx) as u32, (y as i32 + dy) as u32)
                            .0[0];
                        assert_ne!(n, OPEN_BEAM, "{part}: bone at ({x},{y}) touches open beam");
                    }
                }
            }
        }
    }
}

#[test]
fn collimated_field_matches_ignore_labels_and_is_dark() {
    let cfg = PhantomConfig {
        collimation_probability: 1.0,
        marker_probability: 0.0,
        ..PhantomConfig::with_size(128)
    };
    let mut rng = StdRng::seed_from_u64(21);
    for _ in 0..6 {
        let p = generate(&cfg, BodyPart::Wrist, &mut rng).unwrap();
        assert!(p.field.is_collimated());
        let (w, h) = p.mask.dimensions();
        let mut outside = 0;
        for y in 0..h {
            for x in 0..w {
                let inside = p.field.contains_pixel(x, y);
                let m = p.mask.get_pixel(x, y).0[0];
                assert_eq!(m == IGNORE_LABEL, !inside, "pixel ({x},{y})");
                outside += (!inside) as usize;
            }
        }
        assert!(outside > 0);
        // Behind the blades the detector sees only leakage: far below the open beam.
        if let (Some(o), Some(c)) = (mean_where(&p, OPEN_BEAM), mean_where(&p, IGNORE_LABEL)) {
            assert!(c < o, "collimated {c} vs open {o}");
        }
    }
}

#[test]
fn markers_are_ignored_and_inside_the_field() {
    let cfg = PhantomConfig {
        marker_probability: 1.0,
        ..PhantomConfig::with_size(160)
    };
    let mut rng = StdRng::seed_from_u64(8);
    let mut seen = 0;
    for _ in 0..8 {
        let p = generate(&cfg, BodyPart::Knee, &mut rng).unwrap();
        if let Some(m) = p.marker {
            seen += 1;
            let (x0, x1, y0, y1) = m.bbox(160, 160);
            let mut lead = 0;
            for y in y0..y1 {
                for x in x0..x1 {
                    assert!(p.field.contains_pixel(x as u32, y as u32));
                    if m.coverage(x, y) >= 0.5 {
                        lead += 1;
                        assert_eq!(p.mask.get_pixel(x as u32, y as u32).0[0], IGNORE_LABEL);
                    }
                }
            }
            assert!(lead > 0);
        }
    }
    assert!(seen >= 6, "marker placed in only {seen} of 8");
}

#[test]
fn same_seed_same_phantom() {
    let cfg = PhantomConfig::with_size(64);
    let a = generate_item(&cfg, 5, 3).unwrap();
    let b = generate_item(&cfg, 5, 3).unwrap();
    let c = generate_item(&cfg, 5, 4).unwrap();
    assert_eq!(a.image.as_raw(), b.image.as_raw());
    assert_eq!(a.mask.as_raw(), b.mask.as_raw());
    assert_eq!(a.field, b.field);
    assert_ne!(a.image.as_raw(), c.image.as_raw());
}

#[test]
fn category_sampling_follows_the_unbalanced_weights() {
    let w = default_category_weights();
    let mut rng = StdRng::seed_from_u64(1);
    let n = 20_000;
    let mut counts = std::collections::BTreeMap::new();
    for _ in 0..n {
        *counts
            .entry(sample_category(&mut rng, &w).unwrap())
            .or_insert(0usize) += 1;
    }
    let total: f32 = w.values().sum();
    for (part, &wt) in &w {
        let got = counts.get(part).copied().unwrap_or(0) as f32 / n as f32;
        let want = wt / total;
        // 4 binomial standard deviations.
        let sd = (want * (1.0 - want) / n as f32).sqrt();
        assert!((got - want).abs() < 4.0 * sd, "{part}: {got} vs {want}");
    }
    assert!(counts[&BodyPart::Hand] > 5 * counts[&BodyPart::Femur]);
    let zero: std::collections::BTreeMap<_, _> = [(BodyPart::Hand, 0.0f32)].into_iter().collect();
    assert!(sample_category(&mut rng, &zero).is_err());
    let neg: std::collections::BTreeMap<_, _> = [(BodyPart::Hand, -1.0f32)].into_iter().collect();
    assert!(sample_category(&mut rng, &neg).is_err());
}

#[test]
fn a_misspelt_config_key_is_an_error_not_a_default() {
    // `heigth` would otherwise leave the height at its default without a word.
    for json in [
        r#"{"width": 40, "heigth": 40}"#,
        r#"{"colimation_probability": 0.2}"#,
        r#"{"physics": {"photon": [100, 200]}}"#,
        r#"{"collimation": {"angle": 3}}"#,
    ] {
        let err = serde_json::from_str::<PhantomConfig>(json)
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown field"), "{json}: {err}");
    }
    let ok: PhantomConfig = serde_json::from_str(r#"{"width": 40, "height": 40}"#).unwrap();
    assert_eq!((ok.width, ok.height), (40, 40));
    // What the generator writes it reads back.
    let round = serde_json::to_string(&PhantomConfig::default()).unwrap();
    assert_eq!(
        serde_json::from_str::<PhantomConfig>(&round).unwrap(),
        PhantomConfig::default()
    );
}

#[test]
fn invalid_config_is_an_error() {
    let mut rng = StdRng::seed_from_u64(0);
    let small = PhantomConfig::with_size(4);
    assert!(generate(&small, BodyPart::Hand, &mut rng).is_err());
    let bad = PhantomConfig {
        collimation_probability: 1.5,
        ..PhantomConfig::with_size(64)
    };
    assert!(generate(&bad, BodyPart::Hand, &mut rng)
        .unwrap_err()
        .to_string()
        .contains("collimation_probability"));
    let mut ph = PhantomConfig::with_size(64);
    ph.physics.photons = [100.0, 10.0];
    assert!(generate(&ph, BodyPart::Hand, &mut rng).is_err());
    let mut ph = PhantomConfig::with_size(64);
    ph.physics.presentation_probability = f32::NAN;
    assert!(generate(&ph, BodyPart::Chest, &mut rng)
        .unwrap_err()
        .to_string()
        .contains("presentation_probability"));
    ph.physics.presentation_probability = 1.0;
    ph.physics.unsharp_gain = [-1.0, 1.0];
    assert!(generate(&ph, BodyPart::Chest, &mut rng)
        .unwrap_err()
        .to_string()
        .contains("unsharp_gain"));
}

#[test]
fn linear_and_log_outputs_differ_in_shape() {
    let mut rng = StdRng::seed_from_u64(2);
    let lin = PhantomConfig {
        output: OutputScale::Linear,
        collimation_probability: 0.0,
        ..PhantomConfig::with_size(96)
    };
    let log = PhantomConfig {
        output: OutputScale::Log,
        ..lin.clone()
    };
    let a = generate(&lin, BodyPart::Knee, &mut rng).unwrap();
    let b = generate(&log, BodyPart::Knee, &mut rng).unwrap();
    assert!(!a.log_output && b.log_output);
    // Thick parts: linear bone pixels sit far below open beam (ratio), log ones much closer.
    let ratio = |p: &Phantom| mean_where(p, BONE).unwrap() / mean_where(p, SOFT_TISSUE).unwrap();
    assert!(
        ratio(&a) < ratio(&b),
        "linear {} log {}",
        ratio(&a),
        ratio(&b)
    );
}

#[test]
fn dataset_folder_has_documented_layout() {
    let dir = std::env::temp_dir().join(format!("xray-synth-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let s = generate_dataset(&dir, 5, 48, 3).unwrap();
    assert_eq!(s.stems.len(), 5);
    let csv = std::fs::read_to_string(dir.join("categories.csv")).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines[0], "stem,category");
    assert_eq!(lines.len(), 6);
    for (line, (stem, cat)) in lines[1..].iter().zip(s.stems.iter().zip(&s.categories)) {
        assert_eq!(*line, format!("{stem},{}", cat.name()));
        assert_eq!(BodyPart::from_name(cat.name()), Some(*cat));
        let img = image::open(dir.join("images").join(format!("{stem}.png"))).unwrap();
        assert!(matches!(img, image::DynamicImage::ImageLuma16(_)));
        let mask = image::open(dir.join("masks").join(format!("{stem}.png")))
            .unwrap()
            .to_luma8();
        assert!(mask.pixels().all(|m| [0, 1, 2, 255].contains(&m.0[0])));
        // What was written is what generate_item gives.
        let p =
            generate_item(&PhantomConfig::with_size(48), 3, stem[6..].parse().unwrap()).unwrap();
        assert_eq!(mask.as_raw(), p.mask.as_raw());
    }
    let fields: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("fields.json")).unwrap()).unwrap();
    assert_eq!(fields.as_array().unwrap().len(), 5);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Renders the preview grid used in docs/synthetic.md. Run with
/// `XRAY_SYNTH_GRID=docs/images/synth-grid.png cargo test -p xray-data --test synth_phantoms -- --ignored`.
#[test]
#[ignore = "writes a picture; run by hand to refresh docs/images"]
fn render_preview_grid() {
    let Ok(path) = std::env::var("XRAY_SYNTH_GRID") else {
        eprintln!("XRAY_SYNTH_GRID not set; nothing written");
        return;
    };
    let cfg = PhantomConfig::with_size(256);
    let mut tiles = Vec::new();
    for (i, part) in BodyPart::ALL
        .iter()
        .cycle()
        .take(2 * BodyPart::ALL.len())
        .enumerate()
    {
        let mut rng = StdRng::seed_from_u64(1000 + i as u64);
        let p = generate(&cfg, *part, &mut rng).unwrap();
        tiles.push(preview(&p.image, &p.mask));
    }
    save_preview(std::path::Path::new(&path), &preview_grid(&tiles, 4)).unwrap();
}

#[test]
fn tiny_and_oblong_images_of_every_part_are_well_formed() {
    // The smallest allowed sides and an oblong field, with every optional step on: no
    // panic, values in range, labels from the convention.
    let mut rng = StdRng::seed_from_u64(8);
    for (width, height) in [(16, 16), (16, 40), (40, 16)] {
        let mut cfg = PhantomConfig {
            width,
            height,
            output: OutputScale::Log,
            collimation_probability: 1.0,
            marker_probability: 1.0,
            ..PhantomConfig::default()
        };
        cfg.physics.presentation_probability = 1.0;
        for part in BodyPart::ALL {
            let p = generate(&cfg, part, &mut rng).unwrap();
            assert_eq!(p.image.dimensions(), (width, height));
            assert!(p
                .image
                .as_raw()
                .iter()
                .all(|&v| (0.0..=65535.0).contains(&v) && v.fract() == 0.0));
            assert!(p.mask.pixels().all(|m| [0, 1, 2, 255].contains(&m.0[0])));
        }
    }
}

#[test]
fn a_smaller_data_set_is_not_written_over_a_larger_one() {
    let dir = std::env::temp_dir().join(format!("xray-synth-over-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    generate_dataset(&dir, 4, 32, 1).unwrap();
    let csv = std::fs::read_to_string(dir.join("categories.csv")).unwrap();
    let first = std::fs::read(dir.join("images/synth_00000.png")).unwrap();
    // Two images fewer: synth_00002 and synth_00003 would stay behind, unlisted in the new
    // categories.csv, beside two images of another seed (once written without a word).
    let err = generate_dataset(&dir, 2, 32, 2).expect_err("a smaller data set over a larger one");
    let text = err.to_string();
    assert!(
        matches!(err, xray_data::DataError::Dataset { .. }) && text.contains("synth_00002.png"),
        "{text}"
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("categories.csv")).unwrap(),
        csv
    );
    assert_eq!(
        std::fs::read(dir.join("images/synth_00000.png")).unwrap(),
        first
    );
    // A file of its own in masks/ is refused the same way.
    std::fs::write(dir.join("masks/notes.txt"), "x").unwrap();
    assert!(generate_dataset(&dir, 4, 32, 1).is_err());
    std::fs::remove_file(dir.join("masks/notes.txt")).unwrap();
    // The same call again, or one with more images, rewrites the folder.
    generate_dataset(&dir, 4, 32, 1).expect("the same data set again");
    assert_eq!(
        std::fs::read(dir.join("images/synth_00000.png")).unwrap(),
        first
    );
    generate_dataset(&dir, 5, 32, 1).expect("a larger data set");
    assert_eq!(
        std::fs::read_to_string(dir.join("categories.csv"))
            .unwrap()
            .lines()
            .count(),
        6
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn an_empty_data_set_is_refused_before_anything_is_written() {
    let dir = std::env::temp_dir().join(format!("xray-synth-zero-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    // `synth --count 0` wrote empty images/ and masks/ and a header-only categories.csv,
    // and succeeded.
    let err = generate_dataset(&dir, 0, 32, 1).expect_err("0 images");
    let text = err.to_string();
    assert!(
        matches!(err, xray_data::DataError::InvalidParameter(_))
            && text.contains("at least 1 image"),
        "{text}"
    );
    assert!(!dir.exists(), "the folder was made");
}
