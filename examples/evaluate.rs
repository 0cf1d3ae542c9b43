//! Evaluate a checkpoint on every labelled image of a dataset folder.
//!
//! ```text
//! cargo run --release --example evaluate -- --weights runs/x --data DIR --out OUT --tissue-threshold 0.9
//! ```
//! Writes `OUT/report.json`, `OUT/report.md` and the plots (ROC, reliability, confusion);
//! with `--tissue-threshold` also the arg-max versus thresholded comparison
//! (`OUT/thresholds.json`, appended to `report.md`); when the folder has a `categories.csv`,
//! the scores per category (`OUT/categories.json`, a table in `report.md`, a line each on
//! the terminal). `--fit-temperature` first fits the softmax temperature on the folder and
//! stores it in the checkpoint (calibrating a trained network on a site's labelled images
//! without retraining; docs/calibration.md).
//!
//! Boundary distances (HD95, ASSD, Hausdorff) are in mm at each image's own pixel spacing
//! when every image is a DICOM file that carries one (`PixelSpacing`, else
//! `ImagerPixelSpacing`; rows and columns apart), and in pixels when none does.
//! `--pixel-spacing ROW[,COLUMN]` states one spacing in mm for every image instead, with a
//! warning for each file spacing it replaces. A folder where only some images carry a
//! spacing is refused before any image is evaluated (their distances would be partly mm,
//! partly pixels): state one with `--pixel-spacing`, or evaluate the two kinds apart.
//! `report.json` records the unit and the range of spacings (`spacing`), `report.md` labels
//! the columns `mm` or `px`, and `OUT/spacings.json` lists each image's spacing (the one used
//! and its file's) when the distances are in mm. docs/metrics.md, "Boundary distances in
//! millimetres".

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use indicatif::{ProgressBar, ProgressStyle};
use xnet_model::infer::FlipAverage;
use xray_data::dataset::Dataset;
use xray_data::io::PixelSpacing;
use xray_seg::calibrate::{fit_temperature_on, store_temperature};
use xray_seg::evaluate::{
    evaluate_samples_with, write_evaluation, BoundarySpacing, EvaluateOptions,
};
use xray_seg::predict::Predictor;
use xray_seg::train::TrainJob;

#[derive(Parser, Debug)]
#[command(
    about = "Evaluate a trained checkpoint on a labelled dataset folder",
    // A negative number after a flag is its value (refused, by the flag's name, where it
    // cannot be), not an unknown option.
    allow_negative_numbers = true
)]
struct Args {
    /// Checkpoint directory (or its model.safetensors); default: the shipped weights.
    #[arg(long)]
    weights: Option<PathBuf>,
    /// Dataset folder with images/ and masks/.
    #[arg(long)]
    data: PathBuf,
    /// The dataset's PNG/TIFF/JPEG images store display polarity (bone white, as exports from a
    /// viewer or PACS do): mirror them into the convention, larger = more X-rays. DICOM files
    /// carry their polarity and are read as they say.
    #[arg(long)]
    invert: bool,
    /// Convert the dataset's colour PNG/TIFF/JPEG images to grey instead of refusing them.
    #[arg(long)]
    allow_rgb: bool,
    /// Output directory.
    #[arg(long)]
    out: PathBuf,
    /// The paper's soft-tissue threshold t in [0, 1]: soft tissue only where P(soft) > t.
    #[arg(long)]
    tissue_threshold: Option<f32>,
    /// Pixel spacing in mm for every image, ROW[,COLUMN] (one value for square pixels):
    /// boundary distances (HD95, ASSD, Hausdorff) are measured at it. Default: each DICOM
    /// image's own PixelSpacing or ImagerPixelSpacing (in pixels when no image has one; a
    /// folder where only some do is refused). Overrides a file's own, with a warning where
    /// they differ.
    #[arg(long, value_name = "MM", value_parser = xray_seg::parse_pixel_spacing)]
    pixel_spacing: Option<PixelSpacing>,
    /// Softmax temperature instead of the checkpoint's (1 = the network's own softmax).
    #[arg(long, conflicts_with = "fit_temperature")]
    temperature: Option<f64>,
    /// Fit the softmax temperature on DATA first and store it in the checkpoint given by
    /// --weights (its config.json; the weights are not touched). The scores are then on the
    /// images it was fitted on: evaluate on other images to judge it.
    #[arg(long, requires = "weights")]
    fit_temperature: bool,
    /// Flip averaging instead of the checkpoint's (off, horizontal, horizontal-vertical:
    /// the mean over the image's mirror images, one network pass each). The checkpoint's
    /// temperature was fitted with its own; with --fit-temperature the new fit and this
    /// averaging are stored together.
    #[arg(long, value_name = "FLIPS")]
    flip_average: Option<FlipAverage>,
    /// Device: cpu, cuda (the first GPU; gpu is taken as the same) or cuda:N (CUDA needs a
    /// build with --features cuda).
    #[arg(long, default_value = "cpu")]
    device: String,
    /// Seed (evaluation is deterministic; accepted for symmetry with the other examples).
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

fn main() -> ExitCode {
    xnet_model::runtime::exit_quietly_on_closed_pipe();
    let args = Args::parse();
    // Large layer buffers are reused instead of page-faulted in again on every step.
    xnet_model::memory::keep_freed_memory();
    xnet_model::runtime::tune_candle_threads();
    if let Some(t) = args.tissue_threshold {
        if !(0.0..=1.0).contains(&t) {
            eprintln!("error: --tissue-threshold must be in [0, 1], got {t}");
            return ExitCode::from(2);
        }
    }
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &Args) -> xray_seg::Result<()> {
    // Before the model loads and the images are evaluated: the report is written last.
    xray_seg::evaluate::check_evaluation_out_dir(&args.out)?;
    let weights = args
        .weights
        .clone()
        .unwrap_or_else(xray_seg::shipped_weights_dir);
    let device = xnet_model::runtime::device_by_name(&args.device)?;
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
    // Read as `train` reads a dataset folder, so that the same flags mean the same images.
    let reading = TrainJob {
        invert: args.invert,
        allow_rgb: args.allow_rgb,
        ..TrainJob::default()
    };
    let ds = Dataset::open(&args.data, &reading.dataset_options())?;
    let indices: Vec<usize> = (0..ds.len()).collect();
    let bar = ProgressBar::new_spinner();
    bar.set_style(ProgressStyle::default_spinner());
    bar.enable_steady_tick(std::time::Duration::from_millis(200));
    let fit = if args.fit_temperature {
        bar.set_message(format!(
            "fitting the softmax temperature on {} images",
            ds.len()
        ));
        let fit = fit_temperature_on(&predictor, &ds, &indices)?;
        predictor.set_temperature(fit.temperature)?;
        store_temperature(&weights, &fit, predictor.flip_average())?;
        Some(fit)
    } else {
        None
    };
    bar.set_message(format!("evaluating {} images", ds.len()));
    let opts = EvaluateOptions {
        tissue_threshold: args.tissue_threshold,
        pixel_spacing: args.pixel_spacing,
        ..EvaluateOptions::default()
    };
    let mut eval = evaluate_samples_with(&predictor, &ds, &indices, &opts)?;
    bar.finish_and_clear();
    for warning in &eval.warnings {
        eprintln!("warning: {warning}");
    }
    if let Some(fit) = &fit {
        println!(
            "softmax temperature {:.3} fitted on these {} images (ECE {:.4} → {:.4}), stored in {}; the scores below are on the same images",
            fit.temperature,
            ds.len(),
            fit.ece_before,
            fit.ece_after,
            xnet_model::checkpoint::resolve(&weights).1.display()
        );
        for warning in xray_seg::calibrate::fit_warnings(fit) {
            println!("warning: {warning}");
        }
    }
    eval.report.temperature = fit;
    write_evaluation(&eval, &args.out)?;
    let r = &eval.report;
    println!(
        "{} images: {} (softmax temperature {:.3}, flip averaging {})",
        r.images,
        r.headline(),
        predictor.temperature(),
        predictor.flip_average()
    );
    if let Some(t) = &eval.thresholded {
        println!(
            "soft-tissue false positives: arg-max {:.2}% → {} {:.2}% (soft-tissue recall {:.2}% → {:.2}%)",
            100.0 * eval.argmax.soft_tissue_false_positive_rate,
            t.method,
            100.0 * t.soft_tissue_false_positive_rate,
            100.0 * eval.argmax.soft_tissue_recall,
            100.0 * t.soft_tissue_recall
        );
    }
    for c in &eval.per_category {
        println!("  {}", c.summary_line());
    }
    if r.boundary.is_some() {
        println!("{}", boundary_line(&eval.spacing, r));
    }
    println!("wrote {}", args.out.display());
    Ok(())
}

/// Where the boundary distances' unit came from, for the terminal.
fn boundary_line(spacing: &BoundarySpacing, report: &xray_metrics::Report) -> String {
    let range = report
        .spacing
        .as_ref()
        .map(|s| s.describe(report.images))
        .unwrap_or_default();
    match spacing {
        BoundarySpacing::Pixels => "boundary distances (HD95, ASSD) in pixels: no image carries \
                                    a pixel spacing (--pixel-spacing MM states one)"
            .to_string(),
        BoundarySpacing::FromFiles => {
            format!("boundary distances (HD95, ASSD) in mm at each DICOM file's spacing: {range}")
        }
        BoundarySpacing::Stated(_) => {
            format!("boundary distances (HD95, ASSD) in mm at {spacing}")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A negative number after a flag is the flag's value, which the job's checks then
    /// refuse by the flag's name; clap took it for an unknown option ("unexpected
    /// argument '-1' found"), which named no flag.
    #[test]
    fn a_negative_number_is_the_flag_s_value() {
        let args = Args::try_parse_from([
            "evaluate",
            "--data",
            "d",
            "--out",
            "o",
            "--tissue-threshold",
            "-0.5",
        ])
        .map_err(|e| e.to_string());
        assert_eq!(args.map(|a| a.tissue_threshold), Ok(Some(-0.5)));
        let args = Args::try_parse_from([
            "evaluate",
            "--data",
            "d",
            "--out",
            "o",
            "--temperature",
            "-1",
        ])
        .map_err(|e| e.to_string());
        assert_eq!(args.map(|a| a.temperature), Ok(Some(-1.0)));
    }

    /// `--pixel-spacing` takes ROW[,COLUMN] in mm above 0 and refuses anything else by its
    /// name, before the model loads.
    #[test]
    fn pixel_spacing_is_a_positive_distance() {
        let parse = |v: &str| {
            Args::try_parse_from([
                "evaluate",
                "--data",
                "d",
                "--out",
                "o",
                "--pixel-spacing",
                v,
            ])
            .map(|a| a.pixel_spacing)
            .map_err(|e| e.to_string())
        };
        let mm = |v: Result<Option<PixelSpacing>, String>| {
            v.map(|s| s.map(|s| (s.row_mm(), s.column_mm())))
        };
        assert_eq!(mm(parse("0.143")), Ok(Some((0.143, 0.143))));
        assert_eq!(mm(parse("10")), Ok(Some((10.0, 10.0))));
        // Rows, then columns, as segment --pixel-spacing takes them.
        assert_eq!(mm(parse("0.2,0.15")), Ok(Some((0.2, 0.15))));
        for bad in [
            "0",
            "-0.2",
            "inf",
            "NaN",
            "0.2mm",
            "139",
            "5000",
            "0.1,0.2,0.3",
        ] {
            let e = parse(bad).unwrap_err();
            assert!(e.contains("--pixel-spacing"), "{bad}: {e}");
        }
        // A detector's pitch in micrometres (139 µm), as segment --pixel-spacing refuses it.
        let e = parse("139").unwrap_err();
        assert!(e.contains("micrometres"), "{e}");
    }
}
