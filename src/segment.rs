//! `segment`: radiographs (PNG, TIFF, DICOM, any size) → label maps at the input's
//! resolution, the detected collimator field, overlays and, optionally, probability maps.

use std::path::{Path, PathBuf};

use serde::Serialize;
use xray_data::io::{load_image, save_mask, LoadOptions};
use xray_data::{Mask, Radiograph};
use xray_postproc::{overlay, save_png, Collimator, OverlayConfig, Pipeline, Plane, ProbMap};

use crate::predict::Predictor;
use crate::{Error, Result};

/// Options of [`segment_file`].
#[derive(Debug, Clone)]
pub struct SegmentOptions {
    /// How inputs are decoded (DICOM frame, RGB conversion, pixel limit).
    pub load: LoadOptions,
    /// Thresholds, field detection and clean-up.
    pub pipeline: Pipeline,
    /// How overlays are drawn.
    pub overlay: OverlayConfig,
    /// Also write one 16-bit PNG probability map per class.
    pub probabilities: bool,
    /// Category (e.g. body part) for per-category thresholds.
    pub category: Option<String>,
}

impl Default for SegmentOptions {
    fn default() -> Self {
        SegmentOptions {
            load: LoadOptions::default(),
            pipeline: Pipeline::new(xray_postproc::PipelineConfig::default())
                .expect("the default post-processing config is valid"),
            overlay: OverlayConfig::default(),
            probabilities: false,
            category: None,
        }
    }
}

/// The detected field as written to `<stem>.field.json`.
#[derive(Debug, Clone, Serialize)]
pub struct FieldReport<'a> {
    /// The input file.
    pub input: String,
    /// Image width, pixels.
    pub width: usize,
    /// Image height, pixels.
    pub height: usize,
    /// Corners of the exposed field (clockwise, pixel coordinates).
    pub polygon: Vec<(f32, f32)>,
    /// The edges found (absent sides omitted; lines `nx·x + ny·y = c`, normal into the field).
    pub field: &'a Collimator,
}

/// What [`segment_file`] wrote for one input.
#[derive(Debug, Clone, PartialEq)]
pub struct Segmented {
    /// The input's file stem, prefix of every output.
    pub stem: String,
    /// Input size (width, height).
    pub size: (u32, u32),
    /// `<stem>.labels.png`: class indices, 255 outside the field or uncertain.
    pub labels: PathBuf,
    /// `<stem>.field.png`: 255 inside the exposed field, 0 outside.
    pub field_mask: PathBuf,
    /// `<stem>.field.json`: the detected edges.
    pub field_json: PathBuf,
    /// `<stem>.overlay.png`.
    pub overlay: PathBuf,
    /// `<stem>.prob-<k>.png` per class, when asked for.
    pub probabilities: Vec<PathBuf>,
    /// Number of collimator edges found.
    pub edges: usize,
    /// Pixel count per label value 0, 1, 2 and 255 (last).
    pub label_counts: [u64; 4],
}

/// Segments one radiograph file and writes its outputs into `out_dir`.
///
/// # Errors
/// Unreadable or invalid inputs (named), network or post-processing errors, file-system
/// errors on the outputs.
pub fn segment_file(
    predictor: &Predictor,
    input: &Path,
    out_dir: &Path,
    opts: &SegmentOptions,
) -> Result<Segmented> {
    let image = load_image(input, &opts.load)?;
    let stem = input
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .ok_or_else(|| Error::Invalid(format!("{}: no file name", input.display())))?;
    segment_image(
        predictor,
        &image,
        &stem,
        &input.display().to_string(),
        out_dir,
        opts,
    )
}

/// As [`segment_file`] for an image already in memory; `stem` names the outputs.
///
/// # Errors
/// As [`segment_file`].
pub fn segment_image(
    predictor: &Predictor,
    image: &Radiograph,
    stem: &str,
    source: &str,
    out_dir: &Path,
    opts: &SegmentOptions,
) -> Result<Segmented> {
    std::fs::create_dir_all(out_dir).map_err(|e| Error::io(out_dir, e))?;
    let (w, h) = image.dimensions();
    let (wu, hu) = (w as usize, h as usize);
    let probs = predictor.predict(image)?;
    let c = predictor.num_classes();
    let plane = Plane::from_image(image)?;
    let map = ProbMap::new(&probs, c, hu, wu)?;
    let out = opts.pipeline.run(&plane, &map, opts.category.as_deref())?;
    let field = out.field.unwrap_or(Collimator {
        width: wu,
        height: hu,
        edges: Vec::new(),
    });

    let path = |suffix: &str| out_dir.join(format!("{stem}.{suffix}"));
    let labels_path = path("labels.png");
    save_mask(&labels_path, &out.labels)?;
    let field_path = path("field.png");
    save_mask(&field_path, &field.field_mask())?;
    let json_path = path("field.json");
    let report = FieldReport {
        input: source.to_string(),
        width: wu,
        height: hu,
        polygon: field.polygon(),
        field: &field,
    };
    let json = serde_json::to_string_pretty(&report).map_err(|e| Error::Invalid(e.to_string()))?;
    std::fs::write(&json_path, json).map_err(|e| Error::io(&json_path, e))?;
    let overlay_path = path("overlay.png");
    let rgb = overlay(&plane, &out.labels, Some(&field), &opts.overlay)?;
    save_png(&rgb, &overlay_path)?;

    let mut prob_paths = Vec::new();
    if opts.probabilities {
        let n = wu * hu;
        for k in 0..c {
            let p = path(&format!("prob-{k}.png"));
            let plane16 = image::ImageBuffer::<image::Luma<u16>, Vec<u16>>::from_raw(
                w,
                h,
                probs[k * n..(k + 1) * n]
                    .iter()
                    .map(|&v| (v.clamp(0.0, 1.0) * 65535.0).round() as u16)
                    .collect(),
            )
            .ok_or_else(|| Error::Invalid("probability plane of the wrong size".into()))?;
            plane16
                .save(&p)
                .map_err(|e| Error::io(&p, std::io::Error::other(e)))?;
            prob_paths.push(p);
        }
    }
    Ok(Segmented {
        stem: stem.to_string(),
        size: (w, h),
        labels: labels_path,
        field_mask: field_path,
        field_json: json_path,
        overlay: overlay_path,
        probabilities: prob_paths,
        edges: field.edges.len(),
        label_counts: count_labels(&out.labels),
    })
}

fn count_labels(labels: &Mask) -> [u64; 4] {
    let mut n = [0u64; 4];
    for &v in labels.as_raw() {
        n[match v {
            0..=2 => v as usize,
            _ => 3,
        }] += 1;
    }
    n
}
