//! The exposed field measured in millimetres: from a DICOM file's spacing, from a spacing
//! the caller states, and not at all without one.

use std::path::{Path, PathBuf};

use candle_core::Device;
use xray_data::io::{save_dicom, save_png16, DicomWriteOptions, PixelSpacing, SpacingSource};
use xray_data::synth::{generate_item, PhantomConfig};
use xray_seg::predict::Predictor;
use xray_seg::segment::{segment_file, SegmentOptions, Segmented};

fn scratch(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("xray-seg-spacing-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A 96 × 80 phantom written as `name` (DICOM when `spacing` is given, else PNG).
fn write_phantom(dir: &Path, name: &str, spacing: Option<[f64; 2]>) -> PathBuf {
    let mut cfg = PhantomConfig::with_size(96);
    cfg.height = 80;
    let image = generate_item(&cfg, 3, 0).unwrap().image;
    let path = dir.join(name);
    match spacing {
        Some(spacing) => {
            let opts = DicomWriteOptions {
                pixel_spacing_mm: Some(spacing),
                ..DicomWriteOptions::default()
            };
            save_dicom(&path, &image, &opts).unwrap();
        }
        None => save_png16(&path, &image).unwrap(),
    }
    path
}

/// Options stating a spacing of `row` × `column` mm.
fn stating(row: f64, column: f64) -> SegmentOptions {
    SegmentOptions {
        pixel_spacing: Some(PixelSpacing::new(row, column, SpacingSource::Stated).unwrap()),
        ..SegmentOptions::default()
    }
}

fn field_json(done: &Segmented) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(&done.field_json).unwrap()).unwrap()
}

/// The field's area agrees with the pixels `field.png` marks, to the pixels its edges cut
/// (at most a pixel's width along the outline).
fn check_area_against_mask(done: &Segmented) {
    let spacing = done.pixel_spacing.unwrap();
    let size = done.field_size.as_ref().unwrap();
    let mask = image::open(&done.field_mask).unwrap().into_luma8();
    let inside = mask.pixels().filter(|p| p.0[0] == 255).count() as f64;
    let perimeter: f64 = size.sides_mm.iter().sum();
    let pitch = spacing.row_mm().max(spacing.column_mm());
    assert!(
        (size.area_mm2 - spacing.area_mm2(inside)).abs() <= perimeter * pitch,
        "{size:?} vs {inside} pixels"
    );
    let (w, h) = (f64::from(done.size.0), f64::from(done.size.1));
    assert!(
        size.extent_mm[0] <= w * spacing.column_mm() + 1e-9,
        "{size:?}"
    );
    assert!(size.extent_mm[1] <= h * spacing.row_mm() + 1e-9, "{size:?}");
}

#[test]
fn a_dicom_spacing_measures_the_field_in_mm() {
    let dir = scratch("dicom");
    let input = write_phantom(&dir, "knee.dcm", Some([0.2, 0.1]));
    let predictor = Predictor::load(&xray_seg::shipped_weights_dir(), &Device::Cpu).unwrap();
    let out = dir.join("out");
    let done = segment_file(&predictor, &input, &out, &SegmentOptions::default()).unwrap();
    let spacing = done.pixel_spacing.expect("the file's spacing");
    assert_eq!(
        (spacing.row_mm(), spacing.column_mm(), spacing.source()),
        (0.2, 0.1, SpacingSource::ImagerPixelSpacing)
    );
    assert!(done.warnings.is_empty(), "{:?}", done.warnings);
    // The phantom is collimated: the field is smaller than the image.
    assert!(done.edges > 0, "{done:?}");
    check_area_against_mask(&done);
    // field.json says the same as the summary line.
    let json = field_json(&done);
    let size = serde_json::to_value(done.field_size.as_ref().unwrap()).unwrap();
    assert_eq!(json["size_mm"], size);
    assert_eq!(json["pixel_spacing"]["source"], "imager_pixel_spacing");
    assert_eq!(json["pixel_spacing"]["row_mm"], 0.2);
    let line = serde_json::to_value(&done).unwrap();
    assert_eq!(line["field_size"], size);

    // A stated spacing overrides the file's and says so; the same one says nothing.
    let opts = stating(0.15, 0.15);
    let done = segment_file(&predictor, &input, &out, &opts).unwrap();
    assert_eq!(done.pixel_spacing, opts.pixel_spacing);
    assert_eq!(done.warnings.len(), 1, "{:?}", done.warnings);
    assert!(
        done.warnings[0].contains("knee.dcm")
            && done.warnings[0].contains("0.15 × 0.15 mm")
            && done.warnings[0].contains("0.2 × 0.1 mm"),
        "{}",
        done.warnings[0]
    );
    check_area_against_mask(&done);
    let done = segment_file(&predictor, &input, &out, &stating(0.2, 0.1)).unwrap();
    assert!(done.warnings.is_empty(), "{:?}", done.warnings);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_png_is_measured_only_with_a_stated_spacing() {
    let dir = scratch("png");
    let input = write_phantom(&dir, "hand.png", None);
    let predictor = Predictor::load(&xray_seg::shipped_weights_dir(), &Device::Cpu).unwrap();
    let out = dir.join("out");
    let done = segment_file(&predictor, &input, &out, &SegmentOptions::default()).unwrap();
    assert_eq!((done.pixel_spacing, done.field_size.as_ref()), (None, None));
    let json = field_json(&done);
    assert!(json.get("size_mm").is_none() && json.get("pixel_spacing").is_none());
    let line = serde_json::to_value(&done).unwrap();
    assert!(line.get("field_size").is_none() && line.get("pixel_spacing").is_none());

    let opts = stating(0.143, 0.143);
    let done = segment_file(&predictor, &input, &out, &opts).unwrap();
    assert_eq!(done.pixel_spacing, opts.pixel_spacing);
    assert!(done.warnings.is_empty(), "{:?}", done.warnings);
    check_area_against_mask(&done);
    assert_eq!(field_json(&done)["pixel_spacing"]["source"], "stated");
    std::fs::remove_dir_all(&dir).ok();
}

/// A DICOM file whose spacing measures nothing (the NEMA chest RG1's `0.000\0.000`) gives
/// no size, and the warning says why and how to state one; a stated spacing measures it
/// without that warning.
#[test]
fn a_dicom_spacing_that_measures_nothing_is_named() {
    let dir = scratch("refused");
    let input = write_phantom(&dir, "chest.dcm", Some([0.5, 0.5]));
    // The writer refuses a spacing of 0: the written value is edited in place instead.
    let bytes = std::fs::read(&input).unwrap();
    let at = bytes
        .windows(7)
        .position(|w| w == b"0.5\\0.5")
        .expect("the spacing's text");
    let mut edited = bytes.clone();
    edited[at..at + 7].copy_from_slice(b"0.0\\0.0");
    std::fs::write(&input, edited).unwrap();
    let predictor = Predictor::load(&xray_seg::shipped_weights_dir(), &Device::Cpu).unwrap();
    let out = dir.join("out");
    let done = segment_file(&predictor, &input, &out, &SegmentOptions::default()).unwrap();
    assert_eq!((done.pixel_spacing, done.field_size.as_ref()), (None, None));
    assert_eq!(done.warnings.len(), 1, "{:?}", done.warnings);
    let warning = &done.warnings[0];
    for part in [
        "chest.dcm",
        "not measured",
        "ImagerPixelSpacing `0.0\\0.0` (0 mm is no distance)",
        "--pixel-spacing",
    ] {
        assert!(warning.contains(part), "{part:?} in {warning}");
    }
    let done = segment_file(&predictor, &input, &out, &stating(0.5, 0.5)).unwrap();
    assert!(done.warnings.is_empty(), "{:?}", done.warnings);
    assert!(done.field_size.is_some());
    std::fs::remove_dir_all(&dir).ok();
}
