//! `evaluate`'s boundary distances in millimetres: each DICOM image at its own spacing (rows
//! and columns apart), a stated spacing overriding the files' with a warning, a folder where
//! only some images carry a spacing refused (or, for the train job, measured in pixels with
//! a warning), and a folder of PNG files in pixels as before.

use std::path::{Path, PathBuf};

use candle_core::Device;
use xray_data::dataset::{Dataset, DatasetOptions};
use xray_data::io::{save_dicom, save_mask, save_png16, DicomWriteOptions};
use xray_data::synth::{generate_item, PhantomConfig};
use xray_metrics::{surface_distances_with_spacing, DistanceUnit, Spacing};
use xray_seg::evaluate::{
    evaluate_samples, evaluate_samples_with, write_evaluation, BoundarySpacing, EvaluateOptions,
    Evaluation,
};
use xray_seg::predict::Predictor;

fn scratch(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "xray-seg-eval-spacing-{test}-{}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    for sub in ["images", "masks"] {
        std::fs::create_dir_all(dir.join(sub)).unwrap();
    }
    dir
}

/// Writes phantom `seed` (48 × 40) as `images/<stem>.dcm` with `spacing` (row, column mm)
/// in its ImagerPixelSpacing, or as `images/<stem>.png` when `png`; its labels beside.
fn write_sample(dir: &Path, stem: &str, seed: u64, spacing: Option<[f64; 2]>, png: bool) {
    let mut cfg = PhantomConfig::with_size(48);
    cfg.height = 40;
    let item = generate_item(&cfg, seed, 0).unwrap();
    if png {
        save_png16(&dir.join(format!("images/{stem}.png")), &item.image).unwrap();
    } else {
        let opts = DicomWriteOptions {
            pixel_spacing_mm: spacing,
            ..DicomWriteOptions::default()
        };
        save_dicom(&dir.join(format!("images/{stem}.dcm")), &item.image, &opts).unwrap();
    }
    save_mask(&dir.join(format!("masks/{stem}.png")), &item.mask).unwrap();
}

fn predictor() -> Predictor {
    Predictor::load(&xray_seg::shipped_weights_dir(), &Device::Cpu).unwrap()
}

fn all(ds: &Dataset) -> Vec<usize> {
    (0..ds.len()).collect()
}

/// The boundary means the report should hold when image `k` is measured at `spacing[k]`:
/// the predictor's arg-max labels against the mask, per image, then the mean per class
/// over the images where the class is in both.
fn expected_hd95(ds: &Dataset, p: &Predictor, spacing: &[Spacing]) -> Vec<Option<f64>> {
    let c = p.num_classes();
    let mut sums = vec![(0.0, 0usize); c];
    for (k, s) in spacing.iter().enumerate() {
        let (image, mask) = ds.load(k).unwrap();
        let (w, h) = (image.width() as usize, image.height() as usize);
        let probs = p.predict(&image).unwrap();
        let n = w * h;
        let pred: Vec<u8> = (0..n)
            .map(|i| {
                (0..c)
                    .max_by(|&a, &b| {
                        probs[a * n + i]
                            .total_cmp(&probs[b * n + i])
                            .then(b.cmp(&a))
                    })
                    .unwrap() as u8
            })
            .collect();
        let mask = mask.unwrap();
        let d = surface_distances_with_spacing(mask.as_raw(), &pred, w, h, c, *s).unwrap();
        for (acc, d) in sums.iter_mut().zip(d) {
            if let Some(d) = d {
                acc.0 += d.hd95;
                acc.1 += 1;
            }
        }
    }
    sums.iter()
        .map(|&(s, n)| (n > 0).then(|| s / n as f64))
        .collect()
}

fn hd95(eval: &Evaluation) -> Vec<Option<f64>> {
    eval.report
        .boundary
        .as_ref()
        .unwrap()
        .iter()
        .map(|b| b.hd95)
        .collect()
}

fn assert_close(got: &[Option<f64>], want: &[Option<f64>]) {
    assert_eq!(got.len(), want.len());
    for (g, w) in got.iter().zip(want) {
        match (g, w) {
            (Some(g), Some(w)) => assert!(
                (g - w).abs() <= 1e-9 * w.abs().max(1.0),
                "{got:?} vs {want:?}"
            ),
            _ => assert_eq!(g, w),
        }
    }
}

/// Four DICOM files: two at 0.2 × 0.1 mm (rows × columns), one at 0.1 × 0.2, one at 0.15.
fn dicom_folder(test: &str) -> (PathBuf, Vec<[f64; 2]>) {
    let dir = scratch(test);
    let spacings = vec![[0.2, 0.1], [0.2, 0.1], [0.1, 0.2], [0.15, 0.15]];
    for (k, s) in spacings.iter().enumerate() {
        write_sample(&dir, &format!("s{k}"), 10 + k as u64, Some(*s), false);
    }
    (dir, spacings)
}

#[test]
fn each_dicom_image_is_measured_at_its_own_spacing() {
    let (dir, spacings) = dicom_folder("own");
    let ds = Dataset::open(&dir, &DatasetOptions::default()).unwrap();
    let p = predictor();
    let eval = evaluate_samples_with(&p, &ds, &all(&ds), &EvaluateOptions::default()).unwrap();
    assert_eq!(eval.spacing, BoundarySpacing::FromFiles);
    assert!(eval.warnings.is_empty(), "{:?}", eval.warnings);
    let own: Vec<Spacing> = spacings.iter().map(|s| Spacing::mm(s[0], s[1])).collect();
    let want = expected_hd95(&ds, &p, &own);
    assert!(want.iter().any(Option::is_some), "{want:?}");
    assert_close(&hd95(&eval), &want);
    // At one spacing for all (the old behaviour) the numbers differ.
    let one = expected_hd95(&ds, &p, &[Spacing::mm(0.15, 0.15); 4]);
    assert_ne!(hd95(&eval), one);
    let r = &eval.report;
    assert_eq!(r.distance_unit(), DistanceUnit::Millimetres);
    let s = r.spacing.as_ref().unwrap();
    assert_eq!(
        (s.row, s.column, s.images_with_own_spacing),
        ([0.1, 0.2], [0.1, 0.2], 4)
    );
    assert!(r.pixel_spacing.is_nan(), "no one spacing to name");
    // report.json says so; report.md labels mm and gives the range.
    let out = dir.join("out");
    write_evaluation(&eval, &out).unwrap();
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap()).unwrap();
    assert_eq!(json["spacing"]["unit"], "mm");
    assert_eq!(json["spacing"]["images_with_own_spacing"], 4);
    assert!(json["pixel_spacing"].is_null());
    // spacings.json names each image's.
    let listed: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("spacings.json")).unwrap()).unwrap();
    let listed = listed.as_array().unwrap();
    assert_eq!(listed.len(), 4);
    assert_eq!(listed[2]["stem"], "s2");
    assert_eq!(listed[2]["spacing"]["row_mm"], 0.1);
    assert_eq!(listed[2]["spacing"]["column_mm"], 0.2);
    assert_eq!(listed[2]["spacing"]["source"], "imager_pixel_spacing");
    assert_eq!(listed[2]["file"], listed[2]["spacing"]);
    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(md.contains("| HD95 mm | ASSD mm |"), "{md}");
    assert!(
        md.contains("| boundary distances in | 0.1–0.2 × 0.1–0.2 mm (rows × columns), each image at its own |"),
        "{md}"
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_stated_spacing_overrides_every_file_and_names_those_it_replaced() {
    let (dir, _) = dicom_folder("stated");
    let ds = Dataset::open(&dir, &DatasetOptions::default()).unwrap();
    let p = predictor();
    let opts = EvaluateOptions {
        pixel_spacing_mm: Some(0.15),
        ..EvaluateOptions::default()
    };
    let eval = evaluate_samples_with(&p, &ds, &all(&ds), &opts).unwrap();
    assert!(matches!(eval.spacing, BoundarySpacing::Stated(s) if s.row_mm() == 0.15));
    assert_close(
        &hd95(&eval),
        &expected_hd95(&ds, &p, &[Spacing::mm(0.15, 0.15); 4]),
    );
    assert_eq!(eval.report.pixel_spacing, 0.15);
    let s0 = &eval.image_spacings[0];
    assert_eq!((s0.stem.as_str(), s0.spacing.row_mm()), ("s0", 0.15));
    assert_eq!(
        s0.file.map(|f| (f.row_mm(), f.column_mm())),
        Some((0.2, 0.1))
    );
    // One warning per file spacing replaced (s0 and s1 say the same; s3's is the stated one),
    // in segment's words.
    assert_eq!(eval.warnings.len(), 2, "{:?}", eval.warnings);
    let w = &eval.warnings[0];
    assert!(
        w.contains("s0.dcm: the stated pixel spacing (0.15 × 0.15 mm) was used in place of the file's (0.2 × 0.1 mm, ImagerPixelSpacing)")
            && w.ends_with("; so it was for 1 more image whose file says the same"),
        "{w}"
    );
    let w = &eval.warnings[1];
    assert!(
        w.contains("s2.dcm") && w.contains("(0.1 × 0.2 mm, ImagerPixelSpacing)"),
        "{w}"
    );
    // Rows and columns apart, stated.
    let opts = EvaluateOptions {
        pixel_spacing: Some(xray_seg::parse_pixel_spacing("0.2,0.1").unwrap()),
        ..EvaluateOptions::default()
    };
    let eval = evaluate_samples_with(&p, &ds, &all(&ds), &opts).unwrap();
    assert_close(
        &hd95(&eval),
        &expected_hd95(&ds, &p, &[Spacing::mm(0.2, 0.1); 4]),
    );
    assert_eq!(eval.warnings.len(), 2, "{:?}", eval.warnings); // s2's and s3's
                                                               // Both forms at once: refused.
    let both = EvaluateOptions {
        pixel_spacing_mm: Some(0.15),
        ..opts
    };
    let e = evaluate_samples_with(&p, &ds, &[0], &both).unwrap_err();
    assert!(e.to_string().contains("not both"), "{e}");
    std::fs::remove_dir_all(&dir).ok();
}

/// Some images carry a spacing and others not: refused before any image is evaluated,
/// naming the first without one; the train job's evaluate_samples measures all in pixels
/// and says so; a stated spacing measures all in mm.
#[test]
fn a_folder_where_only_some_images_carry_a_spacing_is_not_averaged_in_mixed_units() {
    let dir = scratch("mixed");
    write_sample(&dir, "a", 1, Some([0.2, 0.2]), false);
    write_sample(&dir, "b", 2, None, true); // a PNG
    write_sample(&dir, "c", 3, None, false); // a DICOM file without a spacing
    let ds = Dataset::open(&dir, &DatasetOptions::default()).unwrap();
    let p = predictor();
    let e = evaluate_samples_with(&p, &ds, &all(&ds), &EvaluateOptions::default())
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("1 of 3 images carry a pixel spacing and 2 do not (the first: ")
            && e.contains("b.png")
            && e.contains("evaluate --pixel-spacing MM"),
        "{e}"
    );
    let eval = evaluate_samples(&p, &ds, &all(&ds), None).unwrap();
    assert_eq!(eval.spacing, BoundarySpacing::Pixels);
    assert_eq!(eval.report.distance_unit(), DistanceUnit::Pixels);
    assert_eq!(eval.warnings.len(), 1, "{:?}", eval.warnings);
    assert!(
        eval.warnings[0].contains("2 of 3 images carry no pixel spacing")
            && eval.warnings[0].contains("b.png"),
        "{}",
        eval.warnings[0]
    );
    assert_close(&hd95(&eval), &expected_hd95(&ds, &p, &[Spacing::PIXEL; 3]));
    let opts = EvaluateOptions {
        pixel_spacing_mm: Some(0.2),
        ..EvaluateOptions::default()
    };
    let eval = evaluate_samples_with(&p, &ds, &all(&ds), &opts).unwrap();
    assert_eq!(eval.report.distance_unit(), DistanceUnit::Millimetres);
    assert!(eval.warnings.is_empty(), "{:?}", eval.warnings); // a's 0.2 mm is the stated one
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_folder_of_png_files_stays_in_pixels() {
    let dir = scratch("png");
    write_sample(&dir, "a", 1, None, true);
    write_sample(&dir, "b", 2, None, true);
    let ds = Dataset::open(&dir, &DatasetOptions::default()).unwrap();
    let p = predictor();
    let eval = evaluate_samples_with(&p, &ds, &all(&ds), &EvaluateOptions::default()).unwrap();
    assert_eq!(eval.spacing, BoundarySpacing::Pixels);
    assert!(eval.warnings.is_empty(), "{:?}", eval.warnings);
    let r = &eval.report;
    assert_eq!(
        (r.distance_unit(), r.pixel_spacing),
        (DistanceUnit::Pixels, 1.0)
    );
    let md = r.to_markdown();
    assert!(
        md.contains("| HD95 px | ASSD px |") && !md.contains("boundary distances in"),
        "{md}"
    );
    assert!(eval.image_spacings.is_empty());
    // 1 mm stated is millimetres, not pixels.
    let opts = EvaluateOptions {
        pixel_spacing_mm: Some(1.0),
        ..EvaluateOptions::default()
    };
    let eval = evaluate_samples_with(&p, &ds, &all(&ds), &opts).unwrap();
    assert_eq!(eval.report.distance_unit(), DistanceUnit::Millimetres);
    assert!(eval.report.to_markdown().contains("| HD95 mm | ASSD mm |"));
    assert_close(&hd95(&eval), &expected_hd95(&ds, &p, &[Spacing::PIXEL; 2]));
    // An evaluation in pixels written where one in mm was: its spacings.json goes.
    let out = dir.join("out");
    write_evaluation(&eval, &out).unwrap();
    assert!(out.join("spacings.json").is_file());
    let in_px = evaluate_samples_with(&p, &ds, &all(&ds), &EvaluateOptions::default()).unwrap();
    write_evaluation(&in_px, &out).unwrap();
    assert!(!out.join("spacings.json").exists());
    std::fs::remove_dir_all(&dir).ok();
}
