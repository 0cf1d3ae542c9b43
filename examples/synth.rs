//! Generate a synthetic radiograph dataset with exact labels.
//!
//! ```bash
//! cargo run --release --example synth -- --out runs/synth --count 24 --size 256 --seed 1
//! ```
//!
//! Writes `OUT/images/<stem>.png` (16-bit, larger = more X-rays), `OUT/masks/<stem>.png`
//! (0 open beam, 1 soft tissue, 2 bone, 255 outside the field / under lead),
//! `OUT/categories.csv`, `OUT/fields.json`, and `OUT/preview/<stem>.png`: the image as on a
//! light box (bone white) beside a colour overlay of its mask (blue open beam, green soft
//! tissue, yellow bone, magenta ignored). `--grid FILE` also writes the previews as one grid.
//!
//! It records what it wrote in `OUT/synth.json` (seed, count, generator settings): the same
//! command may run again into `OUT`, but a data set written with other settings, or one it did
//! not record, is replaced only with `--overwrite`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use xray_data::synth::{self, BodyPart, OutputScale, PhantomConfig};

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Output {
    Linear,
    Log,
    Mixed,
}

#[derive(Debug, Parser)]
#[command(
    about = "Generate synthetic limb, chest and pelvis radiographs with exact open-beam / soft-tissue / bone labels",
    // A negative number after a flag is its value (refused, by the flag's name, where it
    // cannot be), not an unknown option.
    allow_negative_numbers = true
)]
struct Args {
    /// Output folder (created).
    #[arg(long)]
    out: PathBuf,
    /// Number of images (at least 1).
    #[arg(long, default_value_t = 24, value_parser = parse_count)]
    count: usize,
    /// Image side, pixels [default: 256, or the config's].
    #[arg(long)]
    size: Option<u32>,
    /// Random seed (same seed, same dataset).
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Detector output scale [default: mixed, or the config's].
    #[arg(long, value_enum)]
    output: Option<Output>,
    /// Probability that an image is collimated.
    #[arg(long)]
    collimation_probability: Option<f32>,
    /// Probability of a lead L/R marker.
    #[arg(long)]
    marker_probability: Option<f32>,
    /// Only these body parts, equally often (comma separated, names as in categories.csv:
    /// hand, wrist, forearm, elbow, knee, lower_leg, ankle_foot, femur, chest, pelvis, hip).
    #[arg(long, value_delimiter = ',')]
    parts: Vec<String>,
    /// Generator configuration as JSON (a serialised `PhantomConfig`; missing fields take
    /// their defaults). The flags above, when given, override it.
    #[arg(long)]
    config: Option<PathBuf>,
    /// How many previews to write to OUT/preview (0 = none).
    #[arg(long, default_value_t = 24)]
    previews: usize,
    /// Also write the previews as one grid PNG here.
    #[arg(long)]
    grid: Option<PathBuf>,
    /// Columns of the grid.
    #[arg(long, default_value_t = 4, value_parser = parse_columns)]
    grid_cols: usize,
    /// Replace a data set in OUT that was written with other settings (or not by synth).
    /// Without it only the same command may write into OUT again.
    #[arg(long)]
    overwrite: bool,
}

/// The record of what `synth` wrote into its output folder.
const RECORD_FILE: &str = "synth.json";

/// What a data set was generated with: two with the same record are the same files.
#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct SynthRecord {
    seed: u64,
    count: usize,
    config: PhantomConfig,
}

/// Refuses to write into `out` when it holds a data set other than the one `record` describes,
/// unless `overwrite`: one whose `synth.json` records other settings, or, without a record, a
/// non-empty `images/`. The generator rewrites every file of the same names, so another seed
/// or configuration replaced an earlier data set in place without a word.
fn check_out_folder(out: &Path, record: &SynthRecord, overwrite: bool) -> Result<(), String> {
    if overwrite {
        return Ok(());
    }
    let again = "give another --out, or --overwrite to replace it";
    let path = out.join(RECORD_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => match serde_json::from_str::<SynthRecord>(&text) {
            Ok(stored) if stored == *record => Ok(()),
            Ok(stored) => Err(format!(
                "{} holds a synthetic data set written with other settings ({}; this call: \
                 {}); {again}",
                out.display(),
                describe(&stored, record),
                describe(record, &stored)
            )),
            Err(e) => Err(format!(
                "{}: not a record synth wrote ({e}); {again}",
                path.display()
            )),
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let images = out.join("images");
            let held = std::fs::read_dir(&images).map_or(0, |entries| entries.count());
            if held > 0 {
                Err(format!(
                    "{} already holds a data set ({held} file(s) in {}) that synth did not \
                     record; {again}",
                    out.display(),
                    images.display()
                ))
            } else {
                Ok(())
            }
        }
        Err(e) => Err(format!("{}: {e}", path.display())),
    }
}

/// The settings of `a` that differ from `b`'s, for a message.
fn describe(a: &SynthRecord, b: &SynthRecord) -> String {
    let mut parts = Vec::new();
    if a.seed != b.seed {
        parts.push(format!("seed {}", a.seed));
    }
    if a.count != b.count {
        parts.push(format!("{} images", a.count));
    }
    if a.config != b.config {
        parts.push(format!(
            "{}x{} images, other generator settings",
            a.config.width, a.config.height
        ));
    }
    parts.join(", ")
}

/// `--grid FILE` in a folder that does not exist failed only after the whole data set and
/// its previews were written; it is refused before anything is.
fn check_grid_path(grid: Option<&std::path::Path>) -> Result<(), String> {
    let Some(grid) = grid else {
        return Ok(());
    };
    match grid.parent().filter(|p| !p.as_os_str().is_empty()) {
        Some(parent) if !parent.is_dir() => Err(format!(
            "--grid {}: the folder {} does not exist (the grid is written last, after the \
             data set)",
            grid.display(),
            parent.display()
        )),
        _ => Ok(()),
    }
}

fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    check_grid_path(args.grid.as_deref())?;
    let mut cfg = match &args.config {
        Some(p) => {
            let text = xray_data::io::read_text_file(p)?;
            serde_json::from_str::<PhantomConfig>(&text)
                .map_err(|e| format!("{}: {e}", p.display()))?
        }
        None => PhantomConfig::default(),
    };
    if let Some(size) = args.size {
        (cfg.width, cfg.height) = (size, size);
    }
    if let Some(output) = args.output {
        cfg.output = match output {
            Output::Linear => OutputScale::Linear,
            Output::Log => OutputScale::Log,
            Output::Mixed => OutputScale::Mixed,
        };
    }
    if let Some(p) = args.collimation_probability {
        cfg.collimation_probability = p;
    }
    if let Some(p) = args.marker_probability {
        cfg.marker_probability = p;
    }
    if !args.parts.is_empty() {
        cfg.category_weights = args
            .parts
            .iter()
            .map(|name| {
                BodyPart::from_name(name.trim())
                    .map(|part| (part, 1.0))
                    .ok_or_else(|| {
                        let known: Vec<&str> = BodyPart::ALL.iter().map(|b| b.name()).collect();
                        format!(
                            "--parts: unknown body part {name:?}; known: {}",
                            known.join(", ")
                        )
                    })
            })
            .collect::<Result<_, _>>()?;
    }
    cfg.validate()?;
    let record = SynthRecord {
        seed: args.seed,
        count: args.count,
        config: cfg.clone(),
    };
    check_out_folder(&args.out, &record, args.overwrite)?;
    // Before the images: a run stopped part way leaves the record of what it was writing, so
    // the same command can finish it.
    std::fs::create_dir_all(&args.out).map_err(|e| format!("{}: {e}", args.out.display()))?;
    xnet_model::checkpoint::write_json_atomic(&args.out.join(RECORD_FILE), &record)?;

    let bar = ProgressBar::new(args.count as u64);
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} {bar:40} {pos}/{len} images  {per_sec}  eta {eta}",
        )?
        .progress_chars("=> "),
    );
    let t0 = std::time::Instant::now();
    let summary =
        synth::generate_dataset_with(&args.out, args.count, &cfg, args.seed, &|| bar.inc(1))?;
    bar.finish();
    let secs = t0.elapsed().as_secs_f64();

    let n_prev = args.previews.min(args.count);
    let mut tiles = Vec::new();
    if n_prev > 0 || args.grid.is_some() {
        let dir = args.out.join("preview");
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let n = if n_prev > 0 {
            n_prev
        } else {
            args.count.min(24)
        };
        // Regenerate from the same per-item seeds (identical to what was written).
        tiles = (0..n)
            .into_par_iter()
            .map(|i| -> Result<_, xray_data::DataError> {
                let p = synth::generate_item(&cfg, args.seed, i as u64)?;
                let rgb = synth::preview(&p.image, &p.mask);
                if n_prev > 0 {
                    synth::save_preview(&dir.join(format!("{}.png", summary.stems[i])), &rgb)?;
                }
                Ok(rgb)
            })
            .collect::<Result<Vec<_>, _>>()?;
    }
    if let Some(g) = &args.grid {
        synth::save_preview(g, &synth::preview_grid(&tiles, args.grid_cols))?;
    }
    println!(
        "wrote {} images ({}x{}) to {} in {:.2} s ({:.1} images/s)",
        args.count,
        cfg.width,
        cfg.height,
        args.out.display(),
        secs,
        args.count as f64 / secs.max(1e-9)
    );
    for (part, n) in summary.counts() {
        println!("  {part:<11} {n}");
    }
    Ok(())
}

/// `--grid-cols`: a whole number, at least 1 (0 was taken as 1 without a word).
fn parse_columns(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(0) => Err("must be at least 1".into()),
        Ok(n) => Ok(n),
        Err(e) => Err(e.to_string()),
    }
}

/// `--count`: a whole number, at least 1 (0 wrote an empty data set and succeeded).
fn parse_count(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(0) => Err("must be at least 1: an empty data set is of no use".into()),
        Ok(n) => Ok(n),
        Err(e) => Err(e.to_string()),
    }
}

fn main() -> ExitCode {
    xnet_model::runtime::exit_quietly_on_closed_pipe();
    match run(Args::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grid_options_are_checked_before_the_data_set_is_written() {
        let e = Args::try_parse_from(["synth", "--out", "o", "--grid-cols", "0"])
            .unwrap_err()
            .to_string();
        assert!(e.contains("--grid-cols") && e.contains("at least 1"), "{e}");
        let missing = std::env::temp_dir().join(format!("synth-no-dir-{}", std::process::id()));
        let e = check_grid_path(Some(&missing.join("grid.png"))).unwrap_err();
        assert!(e.contains("--grid") && e.contains("does not exist"), "{e}");
        assert!(check_grid_path(Some(&std::env::temp_dir().join("grid.png"))).is_ok());
        assert!(check_grid_path(Some(std::path::Path::new("grid.png"))).is_ok());
        assert!(check_grid_path(None).is_ok());
    }

    /// Another seed into a folder that held a data set replaced it in place without a word.
    #[test]
    fn another_data_set_is_replaced_only_with_overwrite() {
        let out = std::env::temp_dir().join(format!("synth-out-check-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&out);
        let record = |seed| SynthRecord {
            seed,
            count: 2,
            config: PhantomConfig::with_size(24),
        };
        // An empty or missing folder takes anything.
        assert!(check_out_folder(&out, &record(1), false).is_ok());
        std::fs::create_dir_all(out.join("images")).unwrap();
        assert!(check_out_folder(&out, &record(1), false).is_ok());
        // A data set synth did not record is kept.
        std::fs::write(out.join("images/x.png"), b"x").unwrap();
        let e = check_out_folder(&out, &record(1), false).unwrap_err();
        assert!(
            e.contains("did not record") && e.contains("--overwrite"),
            "{e}"
        );
        assert!(check_out_folder(&out, &record(1), true).is_ok());
        // The same settings again are the same files; another seed is refused, naming both.
        let text = serde_json::to_string(&record(1)).unwrap();
        std::fs::write(out.join(RECORD_FILE), text).unwrap();
        assert!(check_out_folder(&out, &record(1), false).is_ok());
        let e = check_out_folder(&out, &record(2), false).unwrap_err();
        assert!(e.contains("seed 1") && e.contains("seed 2"), "{e}");
        let mut larger = record(1);
        larger.config = PhantomConfig::with_size(32);
        let e = check_out_folder(&out, &larger, false).unwrap_err();
        assert!(e.contains("24x24") && e.contains("32x32"), "{e}");
        assert!(check_out_folder(&out, &record(2), true).is_ok());
        std::fs::write(out.join(RECORD_FILE), "{").unwrap();
        let e = check_out_folder(&out, &record(1), false).unwrap_err();
        assert!(e.contains(RECORD_FILE) && e.contains("not a record"), "{e}");
        std::fs::remove_dir_all(&out).unwrap();
    }

    /// A negative number after a flag is the flag's value, which the job's checks then
    /// refuse by the flag's name; clap took it for an unknown option ("unexpected
    /// argument '-1' found"), which named no flag.
    #[test]
    fn a_negative_number_is_the_flag_s_value() {
        let args =
            Args::try_parse_from(["synth", "--out", "o", "--collimation-probability", "-0.5"])
                .map_err(|e| e.to_string());
        assert_eq!(args.map(|a| a.collimation_probability), Ok(Some(-0.5)));
        let args = Args::try_parse_from(["synth", "--out", "o", "--marker-probability", "-1"])
            .map_err(|e| e.to_string());
        assert_eq!(args.map(|a| a.marker_probability), Ok(Some(-1.0)));
        let e = Args::try_parse_from(["synth", "--out", "o", "--count", "-4"])
            .unwrap_err()
            .to_string();
        assert!(e.contains("'-4' for '--count"), "{e}");
    }
}
