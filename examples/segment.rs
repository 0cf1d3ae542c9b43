//! Segment radiographs (PNG, TIFF, JPEG or DICOM, any size).
//!
//! ```text
//! cargo run --release --example segment -- ../shared/data/nema-cr/RG2_UNC --out out/
//! cargo run --release --example segment -- --weights runs/x --probs a.png b.dcm --out out/
//! cargo run --release --example segment -- ../shared/data/nema-cr --out out/
//! ```
//! A folder stands for its PNG, TIFF, JPEG and DICOM files (by content, so extension-less DICOM
//! files count); two inputs with the same file stem are refused, since their outputs would
//! share names.
//! Per input stem: `<stem>.labels.png` (class indices at the input's resolution, 255 outside
//! the collimated field), `<stem>.field.png`, `<stem>.field.json`, `<stem>.overlay.png`;
//! with `--probs` one 16-bit probability PNG per class (at the checkpoint's softmax
//! temperature, docs/calibration.md; `--temperature 1` for the network's raw softmax); with
//! `--uncertainty` `<stem>.uncertainty.png` (16-bit, `1 − max_k p_k`) plus the file's
//! expected error rate. `OUT/segment.jsonl` has one JSON line per input, in input order:
//! what was written for it (size, category, edges, field size in mm where the pixel spacing is
//! known, label counts, expected error, paths) or
//! its error; an earlier run's lines for inputs this run does not segment come first, kept
//! while their outputs are in the folder (`xray_seg::segment::write_summary`). Outputs an
//! earlier run wrote for a stem and this run does not (probability maps without `--probs`,
//! everything of an input that now fails) are removed.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};

use clap::Parser;
use indicatif::{ProgressBar, ProgressStyle};
use xray_data::io::{PixelSpacing, SpacingSource};
use xray_postproc::{Pipeline, PipelineConfig};
use xray_seg::predict::Predictor;
use xray_seg::segment::{
    check_category, check_outputs_spare_inputs, expand_inputs, segment_file, worker_count,
    write_summary, SegmentOptions,
};

#[derive(Parser, Debug)]
#[command(
    about = "Segment radiographs into open beam, soft tissue and bone, and find the collimator",
    // A negative number after a flag is its value (refused, by the flag's name, where it
    // cannot be), not an unknown option.
    allow_negative_numbers = true
)]
struct Args {
    /// Input radiographs, or folders of them (not recursive; other files there are skipped).
    #[arg(required = true)]
    inputs: Vec<PathBuf>,
    /// Output directory.
    #[arg(long)]
    out: PathBuf,
    /// Checkpoint directory (or its model.safetensors); default: the shipped weights.
    #[arg(long)]
    weights: Option<PathBuf>,
    /// Also write the probability maps.
    #[arg(long)]
    probs: bool,
    /// Also write <stem>.uncertainty.png (1 − the top class's probability: the calibrated
    /// chance that a pixel's label is wrong) and print each file's expected error rate.
    #[arg(long)]
    uncertainty: bool,
    /// Soft-tissue threshold t in [0, 1] (soft tissue only where P(soft) > t). Not with
    /// --postproc, whose file sets the thresholds (thresholds.soft_threshold).
    #[arg(
        long,
        default_value_t = 0.0,
        value_parser = parse_threshold,
        conflicts_with = "postproc"
    )]
    tissue_threshold: f32,
    /// Post-processing config (JSON, see xray_postproc::PipelineConfig), thresholds
    /// included.
    #[arg(long)]
    postproc: Option<PathBuf>,
    /// Category (body part, as in categories.csv) for per-category thresholds of --postproc;
    /// one the file does not list is refused. Default: a DICOM input's BodyPartExamined
    /// (CHEST → chest, FOOT → ankle_foot, ...); a body part the file does not list gets its
    /// default thresholds.
    #[arg(long)]
    category: Option<String>,
    /// Frame of multi-frame DICOM files, page of multi-page TIFF files (0-based).
    #[arg(long, default_value_t = 0)]
    frame: u32,
    /// Convert colour inputs to grey instead of refusing them.
    #[arg(long)]
    allow_rgb: bool,
    /// PNG/TIFF/JPEG inputs store display polarity (bone white, as exports from a viewer or PACS
    /// do): mirror them into the convention, larger = more X-rays. Without it they are taken
    /// as they are, and a display-polarity image comes out as nonsense (bone called open
    /// beam). DICOM files carry their polarity and are read as they say.
    #[arg(long)]
    invert: bool,
    /// Files segmented at the same time (default: one per core on the CPU, one on a GPU).
    /// Each holds its image and outputs in memory, about 21 bytes per pixel (peak RSS with one
    /// job: 128 MB for a 1841 × 1955 chest, 1.4 GB for an 8192 × 8192 image), so lower it for
    /// very large images. At least 1.
    #[arg(long)]
    jobs: Option<usize>,
    /// Softmax temperature instead of the checkpoint's (1 = the network's own softmax).
    #[arg(long)]
    temperature: Option<f64>,
    /// Flip averaging instead of the checkpoint's (off, horizontal, horizontal-vertical:
    /// the mean over the image's mirror images, one network pass each; the checkpoint's
    /// temperature was fitted with its own).
    #[arg(long, value_name = "FLIPS")]
    flip_average: Option<xnet_model::infer::FlipAverage>,
    /// Device: cpu, cuda (the first GPU; gpu is taken as the same) or cuda:N (CUDA needs a
    /// build with --features cuda).
    #[arg(long, default_value = "cpu")]
    device: String,
    /// Pixel spacing in mm, ROW[,COLUMN] (one value for square pixels): the field is then
    /// measured in mm (<stem>.field.json's size_mm, segment.jsonl's field_size). Default: a
    /// DICOM input's PixelSpacing or ImagerPixelSpacing; PNG, TIFF and JPEG files carry none
    /// this reads (their resolution fields are print settings). Overrides a DICOM's own, with a
    /// warning where they differ.
    #[arg(long, value_name = "MM", value_parser = parse_spacing)]
    pixel_spacing: Option<PixelSpacing>,
    /// Seed (segmentation is deterministic; accepted for symmetry with the other examples).
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

/// `--tissue-threshold`: a probability in [0, 1], refused by the flag's name (the
/// post-processing config refused it later as "thresholds.soft_threshold", after the model
/// had loaded).
fn parse_threshold(text: &str) -> Result<f32, String> {
    match text.parse::<f32>() {
        Ok(t) if (0.0..=1.0).contains(&t) => Ok(t),
        Ok(_) => Err("must be a probability in [0, 1]".into()),
        Err(e) => Err(e.to_string()),
    }
}

/// `--pixel-spacing`: `ROW[,COLUMN]` in mm, refused by the flag's name when not a spacing.
fn parse_spacing(text: &str) -> Result<PixelSpacing, String> {
    let values: Vec<f64> = text
        .split(',')
        .map(|v| v.trim().parse::<f64>().map_err(|e| format!("{v:?}: {e}")))
        .collect::<Result<_, _>>()?;
    let (row, column) = match values[..] {
        [square] => (square, square),
        [row, column] => (row, column),
        _ => return Err("expected ROW or ROW,COLUMN in mm, e.g. 0.143 or 0.2,0.15".into()),
    };
    PixelSpacing::new(row, column, SpacingSource::Stated).map_err(|e| e.to_string())
}

fn main() -> ExitCode {
    xnet_model::runtime::exit_quietly_on_closed_pipe();
    let args = Args::parse();
    // Large layer buffers are reused instead of page-faulted in again on every step.
    xnet_model::memory::keep_freed_memory();
    xnet_model::runtime::tune_candle_threads();
    match run(&args) {
        Ok(0) => ExitCode::SUCCESS,
        Ok(_) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &Args) -> xray_seg::Result<usize> {
    let inputs = expand_inputs(&args.inputs)?;
    check_outputs_spare_inputs(&inputs.files, &args.out)?;
    for skipped in &inputs.skipped {
        eprintln!("{}", skipped_line(skipped));
    }
    if !inputs.previous_outputs.is_empty() {
        eprintln!(
            "skipped {} file(s) named like segment's own outputs (<stem>.labels.png, \
             .overlay.png, ...), e.g. {}",
            inputs.previous_outputs.len(),
            inputs.previous_outputs[0].display()
        );
    }
    let weights = args
        .weights
        .clone()
        .unwrap_or_else(xray_seg::shipped_weights_dir);
    let device = xnet_model::runtime::device_by_name(&args.device)?;
    // Files in parallel, `jobs` at a time (each also uses the kernels' threads): decoding,
    // post-processing and PNG encoding are single-threaded per file. A fixed set of
    // workers rather than a parallel iterator keeps at most `jobs` images in memory.
    // On a GPU one file at a time: the network's work is queued on one stream anyway.
    // Checked here, before the model is loaded: `--jobs 0` is refused at once.
    let jobs = worker_count(args.jobs, &device, inputs.files.len())?;
    let mut predictor = Predictor::load(&weights, &device)?;
    if let Some(warning) = predictor.preprocess_warning(&weights) {
        eprintln!("{warning}");
    }
    if let Some(t) = args.temperature {
        predictor.set_temperature(t)?;
    }
    if let Some(flips) = args.flip_average {
        predictor.set_flip_average(flips);
    }
    let pipeline = match &args.postproc {
        Some(p) => {
            let text = xray_data::io::read_text_file(p)?;
            Pipeline::from_json(&text)
                .map_err(|e| xray_seg::Error::Invalid(format!("{}: {e}", p.display())))?
        }
        None => {
            let mut cfg = PipelineConfig::default();
            cfg.thresholds.soft_threshold = args.tissue_threshold;
            Pipeline::new(cfg)?
        }
    };
    // A category typed here that the config does not know is refused (a typo would apply
    // the default thresholds to every input); a DICOM's body part it does not know gets the
    // default thresholds, so that one file does not stop a batch.
    if let Some(category) = &args.category {
        check_category(&pipeline, category)?;
    }
    let mut opts = SegmentOptions {
        pipeline,
        probabilities: args.probs,
        uncertainty: args.uncertainty,
        category: args.category.clone(),
        pixel_spacing: args.pixel_spacing,
        ..SegmentOptions::default()
    };
    opts.load.frame = args.frame;
    opts.load.allow_rgb = args.allow_rgb;
    opts.load.invert = args.invert;
    let bar = ProgressBar::new(inputs.files.len() as u64);
    bar.set_style(
        ProgressStyle::with_template("{bar:30} {pos}/{len}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let next = AtomicUsize::new(0);
    let records = std::sync::Mutex::new(Vec::new());
    let failures = AtomicUsize::new(0);
    // Categories (from DICOM body parts) that the config's per-category thresholds do not
    // serve, each said once: a key misspelt in the --postproc file otherwise changes nothing.
    let unserved = std::sync::Mutex::new(std::collections::BTreeSet::new());
    let thresholds = &opts.pipeline.config().thresholds;
    std::thread::scope(|scope| {
        for _ in 0..jobs {
            scope.spawn(|| {
                loop {
                    let index = next.fetch_add(1, Ordering::Relaxed);
                    let Some(input) = inputs.files.get(index) else {
                        break;
                    };
                    // Both kinds of line are JSON objects.
                    let record = |mut line: serde_json::Value| {
                        line["input"] = input.display().to_string().into();
                        if let Ok(mut r) = records.lock() {
                            r.push((index, line));
                        }
                    };
                    match segment_file(&predictor, input, &args.out, &opts) {
                        Ok(s) => {
                            record(serde_json::to_value(&s).unwrap_or_default());
                            let first_unserved = s
                                .category
                                .as_deref()
                                .and_then(|c| unserved_category_warning(thresholds, c, input))
                                .filter(|(c, _)| {
                                    unserved
                                        .lock()
                                        .map(|mut set| set.insert(c.clone()))
                                        .unwrap_or(false)
                                });
                            if let Some((_, warning)) = first_unserved {
                                bar.suspend(|| eprintln!("{warning}"));
                            }
                            for warning in &s.warnings {
                                bar.suspend(|| eprintln!("warning: {warning}"));
                            }
                            bar.suspend(|| {
                            println!(
                                "{}: {}x{}{}, {} collimator edge(s){}, pixels open/soft/bone/outside = {:?}{} → {}",
                                input.display(),
                                s.size.0,
                                s.size.1,
                                s.category.as_deref().map_or(String::new(), |c| format!(" ({c})")),
                                s.edges,
                                s.field_size.as_ref().map_or(String::new(), |f| format!(
                                    ", field {:.0} × {:.0} mm",
                                    f.extent_mm[0], f.extent_mm[1]
                                )),
                                s.label_counts,
                                s.expected_error.map_or(String::new(), |e| format!(
                                    ", expected error {:.1} %",
                                    100.0 * e
                                )),
                                s.overlay.display()
                            )
                        })
                        }
                        Err(e) => {
                            failures.fetch_add(1, Ordering::Relaxed);
                            // Most errors already start with the file's name; a colour
                            // image's names --allow-rgb (xray_seg::Error::Data).
                            let text = e.to_string();
                            record(serde_json::json!({ "error": text }));
                            let name = input.display().to_string();
                            bar.suspend(|| {
                                if text.starts_with(&name) {
                                    eprintln!("error: {text}");
                                } else {
                                    eprintln!("error: {name}: {text}");
                                }
                            });
                        }
                    }
                    bar.inc(1);
                }
            });
        }
    });
    bar.finish_and_clear();
    // One JSON line per input, in the order of the inputs: what was written, or the error;
    // after the lines of an earlier run's inputs that this run did not segment.
    let mut records = records.into_inner().unwrap_or_default();
    records.sort_by_key(|(index, _)| *index);
    let lines: Vec<serde_json::Value> = records.into_iter().map(|(_, r)| r).collect();
    let summary = write_summary(&args.out, &lines)?;
    println!("summary of every input: {}", summary.display());
    Ok(failures.into_inner())
}

/// What is said of a folder entry that is not segmented: a sub-folder was called "not a PNG,
/// TIFF, JPEG or DICOM file", which hid that folders are not searched recursively.
fn skipped_line(path: &std::path::Path) -> String {
    if path.is_dir() {
        format!(
            "skipped sub-folder (folders are not searched recursively; give it as an input \
             to segment its radiographs): {}",
            path.display()
        )
    } else {
        format!(
            "skipped (not a PNG, TIFF, JPEG or DICOM file): {}",
            path.display()
        )
    }
}

/// The warning for a category (from a DICOM's body part) that none of the config's
/// per-category thresholds serves, with the category, when the config lists some: a key
/// misspelt in the --postproc file otherwise changes nothing without a word.
fn unserved_category_warning(
    thresholds: &xray_postproc::ThresholdConfig,
    category: &str,
    input: &std::path::Path,
) -> Option<(String, String)> {
    if thresholds.per_category.is_empty() || thresholds.category_key(Some(category)).is_some() {
        return None;
    }
    let keys: Vec<String> = thresholds
        .per_category
        .keys()
        .map(|k| format!("{k:?}"))
        .collect();
    let default = match thresholds.soft_threshold {
        t if t > 0.0 => format!("soft-tissue threshold {t}"),
        _ => "arg-max (no soft-tissue threshold)".to_string(),
    };
    let warning = format!(
        "warning: category {category:?} (from {}) has no per-category threshold, so the \
         default {default} applies to it; the config lists {}",
        input.display(),
        keys.join(", ")
    );
    Some((category.to_string(), warning))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `--pixel-spacing` takes ROW or ROW,COLUMN in mm, marked as stated, and refuses
    /// anything else by its name before the model loads.
    #[test]
    fn pixel_spacing_is_one_or_two_distances() {
        let parse = |v: &str| {
            Args::try_parse_from(["segment", "a.png", "--out", "o", "--pixel-spacing", v])
                .map(|a| {
                    a.pixel_spacing
                        .map(|s| (s.row_mm(), s.column_mm(), s.source()))
                })
                .map_err(|e| e.to_string())
        };
        assert_eq!(
            parse("0.143"),
            Ok(Some((0.143, 0.143, SpacingSource::Stated)))
        );
        assert_eq!(
            parse("0.2, 0.15"),
            Ok(Some((0.2, 0.15, SpacingSource::Stated)))
        );
        for bad in ["0", "-0.2", "0.2,0", "1,2,3", "", "0.2mm", "nan", "5000"] {
            let e = parse(bad).unwrap_err();
            assert!(e.contains("--pixel-spacing"), "{bad}: {e}");
        }
    }

    /// A sub-folder of an input folder was reported as "not a PNG, TIFF, JPEG or DICOM
    /// file", which hid that folders are not searched recursively.
    #[test]
    fn a_skipped_sub_folder_is_called_a_folder() {
        let dir = std::env::temp_dir().join(format!("segment-skipped-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("sub")).unwrap();
        std::fs::write(dir.join("notes.txt"), "x").unwrap();
        std::fs::write(dir.join("a.png"), b"\x89PNG\r\n\x1a\n").unwrap();
        let inputs = expand_inputs(std::slice::from_ref(&dir)).unwrap();
        let lines: Vec<String> = inputs.skipped.iter().map(|p| skipped_line(p)).collect();
        std::fs::remove_dir_all(&dir).ok();
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert!(
            lines[0].contains("notes.txt") && lines[0].contains("not a PNG"),
            "{lines:?}"
        );
        assert!(
            lines[1].contains("sub-folder") && lines[1].contains("recursively"),
            "{lines:?}"
        );
    }

    #[test]
    fn a_tissue_threshold_with_a_postproc_file_is_refused() {
        let e = Args::try_parse_from([
            "segment",
            "a.png",
            "--out",
            "o",
            "--postproc",
            "p.json",
            "--tissue-threshold",
            "0.9",
        ])
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("--tissue-threshold") && e.contains("--postproc"),
            "{e}"
        );
        let args = Args::try_parse_from(["segment", "a.png", "--out", "o", "--postproc", "p.json"]);
        assert!(args.is_ok());
    }

    /// `--tissue-threshold 1.5` was refused only after the model had loaded, as
    /// "parameter thresholds.soft_threshold = 1.5 is out of range", a name the user never typed.
    #[test]
    fn a_tissue_threshold_outside_0_1_names_the_flag() {
        for bad in ["1.5", "-0.1", "NaN"] {
            let e =
                Args::try_parse_from(["segment", "a.png", "--out", "o", "--tissue-threshold", bad])
                    .unwrap_err()
                    .to_string();
            assert!(
                e.contains("--tissue-threshold") && e.contains("[0, 1]"),
                "{e}"
            );
        }
        let args =
            Args::try_parse_from(["segment", "a.png", "--out", "o", "--tissue-threshold", "1"]);
        assert_eq!(args.map(|a| a.tissue_threshold).ok(), Some(1.0));
    }

    /// A negative number after a flag is the flag's value, which the job's checks then
    /// refuse by the flag's name; clap took it for an unknown option ("unexpected
    /// argument '-1' found"), which named no flag.
    #[test]
    fn a_negative_number_is_the_flag_s_value() {
        let e = Args::try_parse_from([
            "segment",
            "a.png",
            "--out",
            "o",
            "--tissue-threshold",
            "-0.5",
        ])
        .unwrap_err()
        .to_string();
        assert!(e.contains("'-0.5' for '--tissue-threshold"), "{e}");
        let args = Args::try_parse_from(["segment", "a.png", "--out", "o", "--temperature", "-1"])
            .map_err(|e| e.to_string());
        assert_eq!(args.map(|a| a.temperature), Ok(Some(-1.0)));
        let e = Args::try_parse_from(["segment", "a.png", "--out", "o", "--jobs", "-2"])
            .unwrap_err()
            .to_string();
        assert!(e.contains("'-2' for '--jobs"), "{e}");
    }
}
