//! `segment`: radiographs (PNG, TIFF, DICOM, any size) → label maps at the input's
//! resolution, the detected collimator field, overlays and, optionally, probability maps.

use std::path::{Path, PathBuf};

use serde::Serialize;
use xray_data::io::{
    load_image_with_info, save_mask, ImageInfo, IntensityRelationship, LoadOptions, PixelSpacing,
};
use xray_data::normalize::value_range;
use xray_data::synth::BodyPart;
use xray_data::{Mask, Radiograph};
use xray_postproc::{
    overlay, save_png, Collimator, InputScale, OverlayConfig, Pipeline, Plane, ProbMap,
};

use crate::predict::Predictor;
use crate::{Error, Result};

mod field_size;
mod inputs;
mod outputs;

pub use field_size::{field_outline, measure_field, FieldSize};
pub use inputs::{check_unique_stems, expand_inputs, worker_count, Inputs};
pub use outputs::{check_outputs_spare_inputs, write_summary, SUMMARY_FILE};
use outputs::{discard_outputs, has_outputs_of, remove_stale_outputs};

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
    /// Also write `<stem>.uncertainty.png` (`1 − max_k p_k`, the calibrated probability that
    /// a pixel's label is wrong) and report its mean over the labelled pixels.
    pub uncertainty: bool,
    /// Category (e.g. body part) for per-category thresholds. When `None`, [`segment_file`]
    /// takes it from a DICOM input's `BodyPartExamined` ([`category_of_body_part`]). A
    /// category the pipeline does not list gets its default threshold; [`check_category`]
    /// refuses one given by the user instead.
    pub category: Option<String>,
    /// The physical size of a pixel, stated by the caller ([`SpacingSource::Stated`]
    /// marks it so): the field is then measured in mm ([`FieldSize`]). When `None`,
    /// [`segment_file`] takes a DICOM input's `PixelSpacing` or `ImagerPixelSpacing`; a
    /// stated spacing overrides the file's, with a warning in [`Segmented::warnings`]
    /// where the two differ.
    ///
    /// [`SpacingSource::Stated`]: xray_data::io::SpacingSource::Stated
    pub pixel_spacing: Option<PixelSpacing>,
}

impl Default for SegmentOptions {
    fn default() -> Self {
        SegmentOptions {
            load: LoadOptions::default(),
            pipeline: Pipeline::new(xray_postproc::PipelineConfig::default())
                .expect("the default post-processing config is valid"),
            overlay: OverlayConfig::default(),
            probabilities: false,
            uncertainty: false,
            category: None,
            pixel_spacing: None,
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
    /// The pixel spacing the sizes below were measured with (absent when unknown).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pixel_spacing: Option<PixelSpacing>,
    /// The field measured in mm (absent without a pixel spacing).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size_mm: Option<&'a FieldSize>,
}

/// What [`segment_file`] wrote for one input (serialised as a line of the `segment`
/// example's `segment.jsonl`).
#[derive(Debug, Clone, PartialEq, Serialize)]
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
    /// `<stem>.uncertainty.png`, when asked for.
    pub uncertainty: Option<PathBuf>,
    /// With [`SegmentOptions::uncertainty`]: the mean of `1 − max_k p_k` over the labelled
    /// pixels (inside the field, not marked uncertain), i.e. the fraction of them the
    /// calibrated network expects to have labelled wrongly. It cannot see what the network
    /// never learnt (a radiograph unlike its training data can be wrong with confidence).
    pub expected_error: Option<f64>,
    /// Whether the input's values were mirrored into the convention on reading
    /// ([`xray_data::io::ImageInfo::mirrored`]: a DICOM's polarity, or
    /// [`SegmentOptions::load`]'s `invert` on a PNG, TIFF or JPEG); false for an image
    /// given in memory ([`segment_image`]).
    pub mirrored: bool,
    /// Number of collimator edges found.
    pub edges: usize,
    /// The pixel spacing used: [`SegmentOptions::pixel_spacing`], or the input file's.
    /// Omitted from `segment.jsonl` when unknown.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pixel_spacing: Option<PixelSpacing>,
    /// The exposed field measured in mm with [`Segmented::pixel_spacing`] (the whole image
    /// when no collimator edge was found). Omitted from `segment.jsonl` when unknown.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field_size: Option<FieldSize>,
    /// Pixel count per label value 0, 1, 2 and 255 (last).
    pub label_counts: [u64; 4],
    /// The category the thresholds were chosen by: [`SegmentOptions::category`], or the
    /// one a DICOM input's `BodyPartExamined` names.
    pub category: Option<String>,
    /// The scale the collimator search took from a DICOM input's
    /// `PixelIntensityRelationship` (linear for `LIN`, log for `LOG`; `"linear"` / `"log"` in
    /// `segment.jsonl`), in place of
    /// judging it from the image's noise (`auto`, which misjudges about 2 % of images:
    /// docs/postprocessing.md). `None` when the file names neither, when the pipeline's
    /// collimator configuration already sets a scale, or when it does not look for the field.
    pub input_scale_from_file: Option<InputScale>,
    /// What the input's file said that its user should know, each a sentence naming the
    /// file (the `segment` example prints them): so far, a DICOM whose pixels had bits set
    /// outside `BitsStored` ([`xray_data::io::ImageInfo::pixels_beyond_bits_stored`]).
    /// Omitted from `segment.jsonl` when empty.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

/// The category of a DICOM `BodyPartExamined` value: the project's body-part name
/// (`categories.csv`, e.g. `"chest"`, `"ankle_foot"`) where [`BodyPart::from_dicom`] knows
/// the term, else the term itself in lower case (so a `--postproc` file can still key a
/// threshold on it).
///
/// # Examples
/// ```
/// use xray_seg::segment::category_of_body_part;
/// assert_eq!(category_of_body_part("CHEST"), "chest");
/// assert_eq!(category_of_body_part("FOOT"), "ankle_foot");
/// assert_eq!(category_of_body_part("SKULL"), "skull");
/// ```
pub fn category_of_body_part(body_part_examined: &str) -> String {
    BodyPart::from_dicom(body_part_examined).map_or_else(
        || body_part_examined.trim().to_ascii_lowercase(),
        |b| b.name().to_string(),
    )
}

/// Checks a category the user gave (`segment --category`) against the post-processing
/// config's categories, the keys of `thresholds.per_category`.
///
/// [`Pipeline::run`] gives a category the config does not list its default soft-tissue
/// threshold. For a DICOM input's `BodyPartExamined` that is right (an unknown body part
/// should not stop a batch), so [`segment_file`] does not call this; but a category typed
/// on the command line that the config does not know is most likely a typo, which would
/// otherwise apply the defaults to every input without a word.
///
/// # Errors
/// [`Error::Invalid`] naming the category and the categories the config knows (or saying
/// that it knows none).
///
/// # Examples
/// ```
/// use xray_postproc::Pipeline;
/// use xray_seg::segment::check_category;
/// let pipeline = Pipeline::from_json(r#"{"thresholds": {"per_category": {"chest": 0.9}}}"#)?;
/// assert!(check_category(&pipeline, "chest").is_ok());
/// let err = check_category(&pipeline, "chets").unwrap_err().to_string();
/// assert!(err.contains(r#"its categories: "chest""#), "{err}");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn check_category(pipeline: &Pipeline, category: &str) -> Result<()> {
    let thresholds = &pipeline.config().thresholds;
    let known = &thresholds.per_category;
    if thresholds.category_key(Some(category)).is_some() {
        return Ok(());
    }
    let message = if known.is_empty() {
        format!(
            "--category {category:?} would change nothing: the post-processing config has no \
             per-category thresholds (thresholds.per_category of a --postproc file)"
        )
    } else {
        let names: Vec<String> = known.keys().map(|k| format!("{k:?}")).collect();
        format!(
            "--category {category:?} is not a category of the post-processing config \
             (thresholds.per_category); its categories: {}",
            names.join(", ")
        )
    };
    Err(Error::Invalid(message))
}

/// Segments one radiograph file and writes its outputs into `out_dir`.
///
/// The outputs an earlier run wrote there for the same stem and this one does not (the
/// probability maps of a run with `--probs`, say) are removed, and all of them when the
/// input fails: whatever `<stem>.*` output is in `out_dir` afterwards is this call's. An
/// earlier run is recognised by one of the outputs a run with this network writes (labels,
/// field, overlay, uncertainty or a probability map of one of its classes), so that a batch
/// into a new folder does not list it once per input; a probability map of a class beyond
/// this network's, alone in the folder, is not taken for one.
///
/// A DICOM input's `BodyPartExamined` gives the category when `opts` names none, and its
/// `PixelIntensityRelationship` (`LIN` or `LOG`, see [`input_scale_of`]) the collimator
/// search's input scale when the pipeline's is `auto` ([`Segmented::input_scale_from_file`]).
///
/// # Errors
/// Unreadable or invalid inputs (named), network or post-processing errors, file-system
/// errors on the outputs.
///
/// # Examples
/// ```
/// use candle_core::Device;
/// use xray_data::io::save_png16;
/// use xray_data::synth::{generate_item, PhantomConfig};
/// use xray_seg::predict::Predictor;
/// use xray_seg::segment::{segment_file, SegmentOptions};
/// let dir = std::env::temp_dir().join(format!("xray-seg-doc-segment-file-{}", std::process::id()));
/// std::fs::create_dir_all(&dir)?;
/// let input = dir.join("knee.png");
/// save_png16(&input, &generate_item(&PhantomConfig::with_size(64), 1, 0)?.image)?;
/// let predictor = Predictor::load(&xray_seg::shipped_weights_dir(), &Device::Cpu)?;
/// let out = dir.join("out");
/// let done = segment_file(&predictor, &input, &out, &SegmentOptions::default())?;
/// assert_eq!((done.stem.as_str(), done.size), ("knee", (64, 64)));
/// assert_eq!(done.labels, out.join("knee.labels.png"));
/// assert!(done.labels.is_file() && done.field_json.is_file() && done.overlay.is_file());
/// assert_eq!(done.label_counts.iter().sum::<u64>(), 64 * 64);
/// // An input that cannot be read is an error naming it, and leaves no earlier outputs.
/// std::fs::write(&input, b"not an image")?;
/// let e = segment_file(&predictor, &input, &out, &SegmentOptions::default()).unwrap_err();
/// assert!(e.to_string().contains("knee.png"), "{e}");
/// assert!(!done.labels.exists());
/// # std::fs::remove_dir_all(&dir)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn segment_file(
    predictor: &Predictor,
    input: &Path,
    out_dir: &Path,
    opts: &SegmentOptions,
) -> Result<Segmented> {
    let stem = input
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .ok_or_else(|| Error::Invalid(format!("{}: no file name", input.display())))?;
    let loaded = load_image_with_info(input, &opts.load);
    let (image, info) = match loaded {
        Ok(loaded) => loaded,
        Err(e) => {
            // An unreadable input leaves no earlier run's outputs behind to pass for its own.
            discard_outputs(out_dir, &stem);
            return Err(e.into());
        }
    };
    let config = opts.pipeline.config();
    let scale = input_scale_of(info.intensity_relationship)
        .filter(|_| config.detect_field && config.collimator.input_scale == InputScale::Auto);
    let pipeline = match scale {
        Some(scale) => {
            let mut cfg = config.clone();
            cfg.collimator.input_scale = scale;
            Pipeline::new(cfg)?
        }
        None => opts.pipeline.clone(),
    };
    let category = opts
        .category
        .clone()
        .or_else(|| info.body_part.as_deref().map(category_of_body_part));
    // The stated spacing wins over the file's; said where they differ.
    let overridden = opts
        .pixel_spacing
        .zip(info.pixel_spacing)
        .filter(|(stated, file)| {
            (stated.row_mm(), stated.column_mm()) != (file.row_mm(), file.column_mm())
        });
    let stated_spacing = opts.pixel_spacing;
    let pixel_spacing = stated_spacing.or(info.pixel_spacing);
    let opts = SegmentOptions {
        category,
        pipeline,
        pixel_spacing,
        ..opts.clone()
    };
    let mut done = segment_image(
        predictor,
        &image,
        &stem,
        &input.display().to_string(),
        out_dir,
        &opts,
    )?;
    done.input_scale_from_file = scale;
    done.mirrored = info.mirrored;
    if let Some((stated, file)) = overridden {
        done.warnings.push(format!(
            "{}: the stated pixel spacing ({} × {} mm) was used in place of the file's \
             ({} × {} mm, {:?})",
            input.display(),
            stated.row_mm(),
            stated.column_mm(),
            file.row_mm(),
            file.column_mm(),
            file.source()
        ));
    }
    if stated_spacing.is_none() {
        done.warnings.extend(refused_spacing_warning(input, &info));
    }
    if info.pixels_beyond_bits_stored > 0 {
        done.warnings.push(format!(
            "{}: {} pixel(s) had bits set outside BitsStored and were read without them, as \
             DICOM says; such bits are overlay planes of an old file, or BitsStored is wrong \
             and the image is garbled (check {}.overlay.png)",
            input.display(),
            info.pixels_beyond_bits_stored,
            done.stem
        ));
    }
    Ok(done)
}

/// The collimator search's input scale for a DICOM `PixelIntensityRelationship`: linear for
/// `LIN`, log for `LOG`; `None` for `DISP` (display-mapped values are neither) and when the
/// file names none.
///
/// # Examples
/// ```
/// use xray_data::io::IntensityRelationship;
/// use xray_postproc::InputScale;
/// use xray_seg::segment::input_scale_of;
/// assert_eq!(input_scale_of(Some(IntensityRelationship::Log)), Some(InputScale::Log));
/// assert_eq!(input_scale_of(Some(IntensityRelationship::Display)), None);
/// ```
pub fn input_scale_of(relationship: Option<IntensityRelationship>) -> Option<InputScale> {
    // One mapping of the DICOM codes, the library's, which crates without this one use.
    InputScale::from_dicom(relationship?.as_dicom())
}

/// As [`segment_file`] for an image already in memory; `stem` names the outputs (and, as
/// there, earlier outputs of `stem` that this call does not write are removed).
///
/// # Errors
/// As [`segment_file`]; also a `stem` that is not one plain name (empty, `.` or `..`, or
/// holding a path separator), and a constant image (every pixel the same value: min-max
/// normalisation has nothing to scale, so the network would see a blank input), an
/// [`Error::Io`] of kind `InvalidData` naming `source`.
///
/// # Examples
/// ```
/// use candle_core::Device;
/// use image::Luma;
/// use xray_data::synth::{generate_item, PhantomConfig};
/// use xray_data::Radiograph;
/// use xray_seg::predict::Predictor;
/// use xray_seg::segment::{segment_image, SegmentOptions};
/// use xray_seg::Error;
/// let out = std::env::temp_dir().join(format!("xray-seg-doc-segment-image-{}", std::process::id()));
/// let image = generate_item(&PhantomConfig::with_size(64), 1, 0)?.image;
/// let predictor = Predictor::load(&xray_seg::shipped_weights_dir(), &Device::Cpu)?;
/// let all = SegmentOptions { probabilities: true, uncertainty: true, ..SegmentOptions::default() };
/// let done = segment_image(&predictor, &image, "hand", "phantom 0", &out, &all)?;
/// assert_eq!(done.probabilities.len(), predictor.num_classes());
/// assert!(done.expected_error.is_some_and(|e| (0.0..=1.0).contains(&e)));
/// // Again without them: the earlier probability maps are removed with the others kept.
/// let plain_opts = SegmentOptions::default();
/// let plain = segment_image(&predictor, &image, "hand", "phantom 0", &out, &plain_opts)?;
/// assert!(plain.probabilities.is_empty() && plain.uncertainty.is_none());
/// assert!(!done.probabilities[0].exists() && plain.labels.is_file());
/// // A stem that would write elsewhere, and a constant image, are refused.
/// let e = segment_image(&predictor, &image, "../hand", "phantom 0", &out, &plain_opts);
/// assert!(matches!(e, Err(Error::Invalid(_))));
/// let flat = Radiograph::from_pixel(32, 32, Luma([7.0]));
/// match segment_image(&predictor, &flat, "flat", "flat.png", &out, &plain_opts) {
///     Err(Error::Io { path, source }) => {
///         assert_eq!(path, std::path::Path::new("flat.png"));
///         assert_eq!(source.kind(), std::io::ErrorKind::InvalidData);
///     }
///     other => panic!("expected an Io error, got {other:?}"),
/// }
/// # std::fs::remove_dir_all(&out)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn segment_image(
    predictor: &Predictor,
    image: &Radiograph,
    stem: &str,
    source: &str,
    out_dir: &Path,
    opts: &SegmentOptions,
) -> Result<Segmented> {
    // The outputs are `out_dir/<stem>.*`: a stem with a separator or `..` would write them
    // elsewhere, an empty one as hidden files.
    crate::train::check_plain_name("output stem", stem, "hip")?;
    crate::check_out_dir(out_dir)?;
    let earlier_run = has_outputs_of(out_dir, stem, predictor.num_classes());
    match write_segmentation(predictor, image, stem, source, out_dir, opts) {
        Ok(done) if !earlier_run => Ok(done),
        Ok(done) => {
            let mut written: Vec<&Path> = vec![
                &done.labels,
                &done.field_mask,
                &done.field_json,
                &done.overlay,
            ];
            written.extend(done.probabilities.iter().map(PathBuf::as_path));
            written.extend(done.uncertainty.as_deref());
            remove_stale_outputs(out_dir, stem, &written)?;
            Ok(done)
        }
        Err(e) => {
            discard_outputs(out_dir, stem);
            Err(e)
        }
    }
}

/// [`segment_image`] after its name checks: runs the network and writes the outputs.
fn write_segmentation(
    predictor: &Predictor,
    image: &Radiograph,
    stem: &str,
    source: &str,
    out_dir: &Path,
    opts: &SegmentOptions,
) -> Result<Segmented> {
    if let Some((value, _)) = value_range(image).filter(|(lo, hi)| lo == hi) {
        return Err(Error::io(
            source,
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!(
                    "the image is constant (every pixel is {value}): there is nothing to segment"
                ),
            ),
        ));
    }
    let category = opts.category.clone();
    std::fs::create_dir_all(out_dir).map_err(|e| Error::io(out_dir, e))?;
    let (w, h) = image.dimensions();
    let (wu, hu) = (w as usize, h as usize);
    // The softmax temperature moves each output pixel's confidences but never its arg-max:
    // when no probability map is written and the thresholds are the plain arg-max, the raw
    // softmax gives the same outputs without the per-pixel rescale (a third of the time of a
    // 2000² radiograph).
    let temperature = if opts.probabilities
        || opts.uncertainty
        || !opts.pipeline.config().thresholds.is_plain_argmax()
    {
        predictor.temperature()
    } else {
        1.0
    };
    let probs = predictor
        .predict_many_at(std::slice::from_ref(image), temperature)?
        .remove(0);
    let c = predictor.num_classes();
    let plane = Plane::from_image(image)?;
    let map = ProbMap::new(&probs, c, hu, wu)?;
    let out = opts.pipeline.run(&plane, &map, category.as_deref())?;
    let field = out.field.unwrap_or(Collimator {
        width: wu,
        height: hu,
        edges: Vec::new(),
    });
    let field_size = opts
        .pixel_spacing
        .map(|spacing| measure_field(&field, &spacing));

    let path = |suffix: &str| out_dir.join(format!("{stem}.{suffix}"));
    let labels_path = path("labels.png");
    let field_path = path("field.png");
    let json_path = path("field.json");
    let overlay_path = path("overlay.png");
    let prob_paths: Vec<PathBuf> = if opts.probabilities {
        (0..c).map(|k| path(&format!("prob-{k}.png"))).collect()
    } else {
        Vec::new()
    };
    // The outputs are independent and their PNG encoders single-threaded: written side by
    // side, so that one radiograph's latency does not add up every encoder.
    let write_masks = || -> Result<()> {
        save_mask(&labels_path, &out.labels)?;
        save_mask(&field_path, &field.field_mask())?;
        let report = FieldReport {
            input: source.to_string(),
            width: wu,
            height: hu,
            polygon: field.polygon(),
            field: &field,
            pixel_spacing: opts.pixel_spacing,
            size_mm: field_size.as_ref(),
        };
        let json =
            serde_json::to_string_pretty(&report).map_err(|e| Error::Invalid(e.to_string()))?;
        crate::atomic_write::write_atomic(&json_path, json.as_bytes())
            .map_err(|e| Error::io(&json_path, e))
    };
    let write_overlay = || -> Result<()> {
        let rgb = overlay(&plane, &out.labels, Some(&field), &opts.overlay)?;
        save_png(&overlay_path, &rgb)?;
        Ok(())
    };
    let n = wu * hu;
    // 1 − max_k p_k per pixel, and its mean over the labelled pixels.
    let (uncertainty_path, doubt, expected_error) = if opts.uncertainty {
        let doubt: Vec<f32> = (0..n)
            .map(|i| (1.0 - (0..c).map(|k| probs[k * n + i]).fold(0f32, f32::max)).max(0.0))
            .collect();
        let (sum, count) = out
            .labels
            .as_raw()
            .iter()
            .zip(&doubt)
            .filter(|(&l, _)| usize::from(l) < c)
            .fold((0f64, 0u64), |(s, k), (_, &d)| (s + f64::from(d), k + 1));
        let mean = (count > 0).then(|| sum / count as f64);
        (Some(path("uncertainty.png")), doubt, mean)
    } else {
        (None, Vec::new(), None)
    };
    let write_uncertainty = || match &uncertainty_path {
        Some(p) => save_unit_png16(p, w, h, &doubt),
        None => Ok(()),
    };
    let write_probability =
        |k: usize| save_unit_png16(&prob_paths[k], w, h, &probs[k * n..(k + 1) * n]);
    let ((masks, overlay_written), (probabilities, uncertainty_written)) = rayon::join(
        || rayon::join(write_masks, write_overlay),
        || {
            use rayon::prelude::*;
            rayon::join(
                || {
                    (0..prob_paths.len())
                        .into_par_iter()
                        .map(write_probability)
                        .collect::<Result<Vec<()>>>()
                },
                write_uncertainty,
            )
        },
    );
    masks?;
    overlay_written?;
    probabilities?;
    uncertainty_written?;
    Ok(Segmented {
        stem: stem.to_string(),
        size: (w, h),
        labels: labels_path,
        field_mask: field_path,
        field_json: json_path,
        overlay: overlay_path,
        probabilities: prob_paths,
        uncertainty: uncertainty_path,
        expected_error,
        mirrored: false,
        edges: field.edges.len(),
        pixel_spacing: opts.pixel_spacing,
        field_size,
        label_counts: count_labels(&out.labels),
        category,
        input_scale_from_file: None,
        warnings: Vec::new(),
    })
}

/// Writes a plane of values in [0, 1] (clamped) as a 16-bit grey PNG, 1 → 65535.
fn save_unit_png16(path: &Path, width: u32, height: u32, values: &[f32]) -> Result<()> {
    let plane16 = image::ImageBuffer::<image::Luma<u16>, Vec<u16>>::from_raw(
        width,
        height,
        values
            .iter()
            .map(|&v| xray_postproc::round_nonnegative(v.clamp(0.0, 1.0) * 65535.0) as u16)
            .collect(),
    )
    .ok_or_else(|| Error::Invalid(format!("{}: plane of the wrong size", path.display())))?;
    let mut bytes = std::io::Cursor::new(Vec::new());
    plane16
        .write_to(&mut bytes, image::ImageFormat::Png)
        .map_err(|e| Error::io(path, std::io::Error::other(e)))?;
    crate::atomic_write::write_atomic(path, bytes.get_ref()).map_err(|e| Error::io(path, e))
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

/// The warning for a file's spacing attributes that measure nothing, or `None` when it has
/// none: a user is otherwise left to wonder why a DICOM file's field has no size (RG1:
/// `0.000\0.000`), or why its `ImagerPixelSpacing` was read.
fn refused_spacing_warning(input: &Path, info: &ImageInfo) -> Option<String> {
    if info.refused_spacing.is_empty() {
        return None;
    }
    let refused = info
        .refused_spacing
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    Some(match info.pixel_spacing {
        Some(read) => format!(
            "{}: the file's {refused} is no pixel spacing; its {:?} ({} × {} mm) was read \
             instead",
            input.display(),
            read.source(),
            read.row_mm(),
            read.column_mm()
        ),
        None => format!(
            "{}: the field was not measured in mm: the file's {refused} is no pixel spacing \
             (state one: SegmentOptions::pixel_spacing, segment --pixel-spacing)",
            input.display()
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A refused spacing is named with the reason: as the reason the field is not measured,
    /// or as the reason a later attribute was read; no refusal, no warning.
    #[test]
    fn a_refused_spacing_is_named_in_a_warning() {
        use xray_data::io::{PixelSpacing, RefusedSpacing, SpacingSource};
        let input = Path::new("in/chest.dcm");
        let zero = RefusedSpacing {
            attribute: SpacingSource::PixelSpacing,
            value: "0\\0".into(),
            reason: "0 mm is no distance".into(),
        };
        assert_eq!(refused_spacing_warning(input, &ImageInfo::default()), None);
        let none_read = ImageInfo {
            refused_spacing: vec![zero.clone()],
            ..ImageInfo::default()
        };
        assert_eq!(
            refused_spacing_warning(input, &none_read).as_deref(),
            Some(
                "in/chest.dcm: the field was not measured in mm: the file's PixelSpacing `0\\0` \
                 (0 mm is no distance) is no pixel spacing (state one: \
                 SegmentOptions::pixel_spacing, segment --pixel-spacing)"
            )
        );
        let imager = PixelSpacing::new(0.139, 0.139, SpacingSource::ImagerPixelSpacing).unwrap();
        let fallback = ImageInfo {
            pixel_spacing: Some(imager),
            refused_spacing: vec![zero],
            ..ImageInfo::default()
        };
        assert_eq!(
            refused_spacing_warning(input, &fallback).as_deref(),
            Some(
                "in/chest.dcm: the file's PixelSpacing `0\\0` (0 mm is no distance) is no pixel \
                 spacing; its ImagerPixelSpacing (0.139 × 0.139 mm) was read instead"
            )
        );
    }

    /// The shipped weights on the CPU.
    fn shipped_predictor() -> Predictor {
        Predictor::load(&crate::shipped_weights_dir(), &candle_core::Device::Cpu)
            .expect("shipped weights")
    }

    /// A fresh, empty folder for one test.
    fn scratch(test: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("xray-seg-segment-{}-{test}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("scratch folder");
        dir
    }

    #[cfg(unix)]
    #[test]
    fn broken_links_in_a_folder_are_per_file_errors_not_the_folders() {
        use std::os::unix::fs::symlink;
        let dir = scratch("links");
        let ok = dir.join("ok.png");
        let image = Radiograph::from_fn(16, 16, |x, y| image::Luma([(x * 16 + y) as f32]));
        xray_data::io::save_png16(&ok, &image).expect("test image");
        symlink(dir.join("absent.png"), dir.join("dangling.png")).expect("dangling link");
        symlink(dir.join("loop.png"), dir.join("loop.png")).expect("link loop");
        symlink(dir.join("b.tif"), dir.join("a.tif")).expect("link cycle");
        symlink(dir.join("a.tif"), dir.join("b.tif")).expect("link cycle");
        symlink(dir.join("nowhere"), dir.join("notes")).expect("extension-less link");

        let inputs = expand_inputs(std::slice::from_ref(&dir)).expect("the folder expands");
        let names: Vec<String> = inputs
            .files
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            names,
            [
                "a.tif",
                "b.tif",
                "dangling.png",
                "loop.png",
                "notes",
                "ok.png"
            ]
        );
        assert!(inputs.skipped.is_empty());

        // Each broken entry is its own error, naming it; the good file is segmented.
        let predictor = shipped_predictor();
        let out = dir.join("out");
        let opts = SegmentOptions::default();
        for path in &inputs.files {
            let result = segment_file(&predictor, path, &out, &opts);
            if path == &ok {
                assert_eq!(result.expect("ok.png is segmented").size, (16, 16));
            } else {
                let e = result.expect_err("a broken link is an error");
                assert!(e.to_string().contains(&path.display().to_string()), "{e}");
            }
        }
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn a_rerun_leaves_no_earlier_output_that_it_did_not_write() {
        let predictor = shipped_predictor();
        let dir = scratch("stale");
        let out = dir.join("out");
        let input = dir.join("hip.png");
        let image = Radiograph::from_fn(16, 16, |x, y| image::Luma([(x * 16 + y) as f32]));
        xray_data::io::save_png16(&input, &image).expect("test image");
        let names = || -> Vec<String> {
            let mut names: Vec<String> = std::fs::read_dir(&out)
                .expect("output folder")
                .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
                .collect();
            names.sort();
            names
        };
        // Another input's outputs, a file of the user's and a folder named like an output
        // are not this stem's.
        std::fs::create_dir_all(out.join("hip.prob-7.png")).expect("folder");
        std::fs::write(out.join("knee.labels.png"), b"x").expect("other output");
        std::fs::write(out.join("hip.notes.txt"), b"x").expect("user file");
        let others = ["hip.notes.txt", "hip.prob-7.png", "knee.labels.png"];

        let everything = SegmentOptions {
            probabilities: true,
            uncertainty: true,
            ..SegmentOptions::default()
        };
        let first = segment_file(&predictor, &input, &out, &everything).expect("segmented");
        assert_eq!(first.probabilities.len(), predictor.num_classes());
        assert!(out.join("hip.uncertainty.png").is_file());
        // A stale map of a class this network does not have goes too.
        std::fs::write(out.join("hip.prob-5.png"), b"x").expect("stale map");
        // An earlier run cut short (some maps written, not its labels) is one too.
        let cut_short = dir.join("cut");
        std::fs::create_dir_all(&cut_short).expect("folder");
        std::fs::write(cut_short.join("hip.prob-2.png"), b"x").expect("stale map");
        std::fs::write(cut_short.join("hip.prob-6.png"), b"x").expect("stale map");
        segment_file(&predictor, &input, &cut_short, &SegmentOptions::default())
            .expect("segmented");
        assert!(!cut_short.join("hip.prob-2.png").exists());
        assert!(!cut_short.join("hip.prob-6.png").exists());

        segment_file(&predictor, &input, &out, &SegmentOptions::default()).expect("segmented");
        let mut expected: Vec<String> = [
            "hip.field.json",
            "hip.field.png",
            "hip.labels.png",
            "hip.overlay.png",
        ]
        .into_iter()
        .chain(others)
        .map(String::from)
        .collect();
        expected.sort();
        assert_eq!(names(), expected);

        // An input that no longer reads leaves none of its earlier outputs.
        std::fs::write(&input, b"\x89PNG\r\n\x1a\n cut short").expect("corrupt input");
        let e = segment_file(&predictor, &input, &out, &SegmentOptions::default())
            .expect_err("a corrupt PNG");
        assert!(e.to_string().contains("hip.png"), "{e}");
        assert_eq!(names(), others);

        // Nor does an image that reads but cannot be segmented.
        segment_image(&predictor, &image, "hip", "hip", &out, &everything).expect("segmented");
        let flat = Radiograph::from_pixel(16, 16, image::Luma([3.0]));
        segment_image(&predictor, &flat, "hip", "flat", &out, &everything)
            .expect_err("a constant image");
        assert_eq!(names(), others);
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn a_dicom_with_bits_beyond_bits_stored_is_segmented_with_a_warning() {
        use xray_data::io::{encode_dicom, DicomWriteOptions};
        let predictor = shipped_predictor();
        let dir = scratch("stray-bits");
        let image = Radiograph::from_fn(16, 16, |x, y| image::Luma([(x * 200 + y) as f32]));
        let opts = DicomWriteOptions {
            bits_stored: 12,
            ..DicomWriteOptions::default()
        };
        let mut bytes = encode_dicom(&image, &opts).expect("DICOM");
        let input = dir.join("old.dcm");
        std::fs::write(&input, &bytes).expect("clean file");
        let done =
            segment_file(&predictor, &input, &dir, &SegmentOptions::default()).expect("segmented");
        assert!(done.warnings.is_empty(), "{:?}", done.warnings);
        let line = serde_json::to_value(&done).expect("json");
        assert!(line.get("warnings").is_none(), "{line}");
        // An overlay bit (bit 13) in the last pixel's word, the file's last two bytes.
        let last = bytes.len() - 1;
        bytes[last] |= 0x20;
        std::fs::write(&input, &bytes).expect("file with an overlay bit");
        let done =
            segment_file(&predictor, &input, &dir, &SegmentOptions::default()).expect("segmented");
        assert_eq!(done.warnings.len(), 1, "{:?}", done.warnings);
        let warning = &done.warnings[0];
        assert!(
            warning.contains("old.dcm")
                && warning.contains("1 pixel(s)")
                && warning.contains("BitsStored"),
            "{warning}"
        );
        let line = serde_json::to_value(&done).expect("json");
        assert_eq!(line["warnings"][0], warning.as_str());
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn an_absurd_network_input_size_is_an_error_before_any_allocation() {
        use candle_nn::{VarBuilder, VarMap};
        use xnet_model::models::{ModelConfig, XNetConfig};
        let cfg = ModelConfig::XNet(XNetConfig {
            base_width: 2,
            ..Default::default()
        });
        let varmap = VarMap::new();
        let device = candle_core::Device::Cpu;
        let model = cfg
            .build(VarBuilder::from_varmap(
                &varmap,
                candle_core::DType::F32,
                &device,
            ))
            .expect("small network");
        // A multiple of 8, as the network asks, but a 40 GB input plane.
        let preprocess = crate::prepare::Preprocess::square(100_000);
        // Refused before any buffer of that size exists.
        let Err(e) = Predictor::new(model, cfg, varmap, preprocess, &device) else {
            panic!("a 100000x100000 network input was accepted");
        };
        assert!(e.to_string().contains("100000x100000"), "{e}");
    }

    #[test]
    fn constant_and_subnormal_images() {
        let predictor = shipped_predictor();
        let dir = scratch("constant");
        let opts = SegmentOptions::default();
        // A constant image is reported as such, naming it.
        let flat = Radiograph::from_pixel(24, 16, image::Luma([42.0]));
        let e = segment_image(&predictor, &flat, "flat", "flat.png", &dir, &opts)
            .expect_err("a constant image is an error");
        let text = e.to_string();
        assert!(
            text.starts_with("flat.png: ") && text.contains("constant") && text.contains("42"),
            "{text}"
        );
        // Values around 1e-40 (subnormal f32) are not constant: they are segmented (they
        // once gave a NaN network input).
        let tiny = Radiograph::from_fn(24, 16, |x, y| {
            image::Luma([1e-40 + (x * 16 + y) as f32 * 1e-42])
        });
        let s = segment_image(&predictor, &tiny, "tiny", "tiny.tif", &dir, &opts)
            .expect("subnormal values are segmented");
        assert_eq!(s.label_counts.iter().sum::<u64>(), 24 * 16);
        std::fs::remove_dir_all(&dir).ok();
    }
}
