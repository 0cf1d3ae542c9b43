//! Pictures (PNG and SVG, with plotters): ROC curves, reliability diagram, confusion
//! heatmap, training curves.
//!
//! Text is drawn with DejaVu Sans, embedded in the crate (`assets/`, Bitstream Vera /
//! DejaVu licence in `assets/DejaVuSans-LICENSE.txt`), so no system font is needed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::calibration::ReliabilityBin;
use crate::error::{readable_number, MetricsError, Result};
use crate::report::Report;

const FONT: &str = "sans-serif";
static FONT_BYTES: &[u8] = include_bytes!("../assets/DejaVuSans.ttf");

/// Registers the embedded font with plotters (idempotent; every plot function calls it).
///
/// # Errors
/// [`MetricsError::Plot`] naming `assets/DejaVuSans.ttf` if the embedded font cannot be
/// parsed (it always can: the font is part of the crate).
///
/// # Examples
/// ```
/// use xray_metrics::register_font;
/// assert!(register_font().is_ok());
/// assert!(register_font().is_ok()); // a second call changes nothing
/// ```
pub fn register_font() -> Result<()> {
    static DONE: OnceLock<bool> = OnceLock::new();
    let ok = *DONE.get_or_init(|| {
        plotters::style::register_font(FONT, FontStyle::Normal, FONT_BYTES).is_ok()
    });
    if ok {
        Ok(())
    } else {
        Err(MetricsError::Plot {
            path: PathBuf::from("assets/DejaVuSans.ttf"),
            reason: "embedded font could not be parsed".into(),
        })
    }
}

type DrawResult<T = ()> = std::result::Result<T, Box<dyn std::error::Error>>;

/// `stem` with `.ext` appended to its file name: `out/roc` → `out/roc.png`, and
/// `out/epoch-1.5` → `out/epoch-1.5.png` ([`Path::with_extension`] would replace the `.5`
/// and write `out/epoch-1.png`, so that the stems `run.a` and `run.b` wrote the same
/// files). A stem without a file name (`""`, `..`) is left to `with_extension`.
fn stem_file(stem: &Path, ext: &str) -> PathBuf {
    match stem.file_name() {
        Some(name) => {
            let mut name = name.to_os_string();
            name.push(".");
            name.push(ext);
            stem.with_file_name(name)
        }
        None => stem.with_extension(ext),
    }
}

/// Draws with `draw` into `stem.png` and `stem.svg`; returns both paths. Both pictures are
/// drawn in memory and then written atomically (`atomic_write`), so that a write that fails
/// part way (a full disk) leaves an earlier run's pictures as they were.
macro_rules! render_both {
    ($stem:expr, $size:expr, $draw:ident, $($arg:expr),*) => {{
        register_font()?;
        let stem: &Path = $stem;
        let png = stem_file(stem, "png");
        let svg = stem_file(stem, "svg");
        if let Some(dir) = stem.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| MetricsError::Io {
                path: dir.to_path_buf(),
                source,
            })?;
        }
        let (width, height): (u32, u32) = $size;
        let plot_error = |path: &Path, e: Box<dyn std::error::Error>| MetricsError::Plot {
            path: path.to_path_buf(),
            reason: e.to_string(),
        };
        let mut rgb = vec![0u8; width as usize * height as usize * 3];
        {
            let root = BitMapBackend::with_buffer(&mut rgb, (width, height)).into_drawing_area();
            $draw(&root, $($arg),*)
                .and_then(|_| root.present().map_err(|e| e.to_string().into()))
                .map_err(|e| plot_error(&png, e))?;
        }
        let png_bytes = encode_png(&rgb, width, height).map_err(|e| plot_error(&png, e))?;
        let mut svg_text = String::new();
        {
            let root = SVGBackend::with_string(&mut svg_text, (width, height)).into_drawing_area();
            $draw(&root, $($arg),*)
                .and_then(|_| root.present().map_err(|e| e.to_string().into()))
                .map_err(|e| plot_error(&svg, e))?;
        }
        for (path, bytes) in [(&png, png_bytes.as_slice()), (&svg, svg_text.as_bytes())] {
            crate::atomic_write::write_atomic(path, bytes).map_err(|source| MetricsError::Io {
                path: path.clone(),
                source,
            })?;
        }
        Ok(vec![png, svg])
    }};
}

/// An RGB picture as PNG bytes, as plotters' own file backend encodes it (the image crate's
/// PNG encoder at its defaults).
fn encode_png(rgb: &[u8], width: u32, height: u32) -> DrawResult<Vec<u8>> {
    use image::ImageEncoder;
    let mut bytes = Vec::new();
    image::codecs::png::PngEncoder::new(&mut bytes).write_image(
        rgb,
        width,
        height,
        image::ExtendedColorType::Rgb8,
    )?;
    Ok(bytes)
}

fn color(i: usize) -> RGBColor {
    const C: [RGBColor; 8] = [
        RGBColor(31, 119, 180),
        RGBColor(214, 39, 40),
        RGBColor(44, 160, 44),
        RGBColor(148, 103, 189),
        RGBColor(255, 127, 14),
        RGBColor(140, 86, 75),
        RGBColor(227, 119, 194),
        RGBColor(23, 190, 207),
    ];
    C[i % C.len()]
}

/// A rate or probability held to the plots' `[0, 1]` axes: a report's fields are public
/// and read from JSON, and plotters overflows on coordinates far outside its range. A
/// value already in `[0, 1]` (every report [`Evaluator`](crate::Evaluator) makes) is kept.
fn unit(v: f64) -> f64 {
    v.clamp(0.0, 1.0)
}

fn draw_roc<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, r: &Report) -> DrawResult
where
    DB::ErrorType: 'static,
{
    root.fill(&WHITE)?;
    let title = match r.auc.weighted {
        Some(w) => format!("ROC, one vs rest (weighted AUC {w:.4}, {})", r.auc.method),
        None => format!("ROC, one vs rest ({})", r.auc.method),
    };
    let mut chart = ChartBuilder::on(root)
        .caption(title, (FONT, 24))
        .margin(20)
        .x_label_area_size(50)
        .y_label_area_size(60)
        .build_cartesian_2d(0f64..1f64, 0f64..1f64)?;
    chart
        .configure_mesh()
        .x_desc("False positive rate")
        .y_desc("True positive rate")
        .label_style((FONT, 16))
        .axis_desc_style((FONT, 18))
        .light_line_style(RGBColor(235, 235, 235))
        .draw()?;
    chart.draw_series(LineSeries::new(
        vec![(0.0, 0.0), (1.0, 1.0)],
        RGBColor(150, 150, 150).stroke_width(1),
    ))?;
    for (k, curve) in r.auc.curves.iter().enumerate() {
        let c = color(k);
        let auc = r.auc.per_class[k]
            .map(|a| format!("AUC {a:.4}"))
            .unwrap_or_else(|| "AUC undefined".into());
        chart
            .draw_series(LineSeries::new(
                curve.iter().map(|p| (unit(p.fpr), unit(p.tpr))),
                c.stroke_width(2),
            ))?
            .label(format!("{} ({auc})", r.class_names[k]))
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 24, y)], c.stroke_width(3)));
    }
    chart
        .configure_series_labels()
        .label_font((FONT, 18))
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .position(SeriesLabelPosition::LowerRight)
        .draw()?;
    Ok(())
}

/// Display bins: torchmetrics' zero-width `[1, 1]` bin is folded into the last real bin.
fn display_bins(bins: &[ReliabilityBin]) -> Vec<ReliabilityBin> {
    let mut out: Vec<ReliabilityBin> = bins.to_vec();
    if out.len() >= 2 && out[out.len() - 1].lower >= 1.0 {
        let top = out.pop().unwrap_or_else(|| unreachable!());
        let last = out.last_mut().unwrap_or_else(|| unreachable!());
        let n = last.count.saturating_add(top.count);
        if n > 0 {
            last.confidence = (last.confidence * last.count as f64
                + top.confidence * top.count as f64)
                / n as f64;
            last.accuracy =
                (last.accuracy * last.count as f64 + top.accuracy * top.count as f64) / n as f64;
        }
        last.count = n;
        last.upper = 1.0;
    }
    out
}

fn draw_reliability<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, r: &Report) -> DrawResult
where
    DB::ErrorType: 'static,
{
    root.fill(&WHITE)?;
    let (top, bottom) = root.split_vertically((root.dim_in_pixel().1 as f64 * 0.74) as u32);
    let bins: Vec<ReliabilityBin> = display_bins(&r.reliability.bins)
        .into_iter()
        .map(|b| ReliabilityBin {
            lower: unit(b.lower),
            upper: unit(b.upper),
            confidence: unit(b.confidence),
            accuracy: unit(b.accuracy),
            ..b
        })
        .collect();
    let mut chart = ChartBuilder::on(&top)
        .caption(
            format!(
                "Reliability: confidence {:.4} vs accuracy {:.4}",
                r.confidence.unwrap_or(f64::NAN),
                r.accuracy.unwrap_or(f64::NAN)
            ),
            (FONT, 24),
        )
        .margin(20)
        .x_label_area_size(10)
        .y_label_area_size(60)
        .build_cartesian_2d(0f64..1f64, 0f64..1f64)?;
    chart
        .configure_mesh()
        .y_desc("Accuracy (fraction correct)")
        .x_labels(0)
        .label_style((FONT, 16))
        .axis_desc_style((FONT, 18))
        .light_line_style(RGBColor(235, 235, 235))
        .draw()?;
    let bar = RGBColor(31, 119, 180);
    let gap = RGBColor(214, 39, 40);
    chart
        .draw_series(bins.iter().filter(|b| b.count > 0).map(|b| {
            Rectangle::new(
                [(b.lower, 0.0), (b.upper, b.accuracy)],
                bar.mix(0.85).filled(),
            )
        }))?
        .label("accuracy per bin")
        .legend(move |(x, y)| Rectangle::new([(x, y - 6), (x + 18, y + 6)], bar.filled()));
    chart
        .draw_series(bins.iter().filter(|b| b.count > 0).map(|b| {
            Rectangle::new(
                [(b.lower, b.accuracy), (b.upper, b.confidence)],
                gap.mix(0.35).filled(),
            )
        }))?
        .label("gap to mean confidence")
        .legend(move |(x, y)| {
            Rectangle::new([(x, y - 6), (x + 18, y + 6)], gap.mix(0.35).filled())
        });
    chart
        .draw_series(LineSeries::new(
            vec![(0.0, 0.0), (1.0, 1.0)],
            BLACK.mix(0.6).stroke_width(2),
        ))?
        .label("perfect calibration")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], BLACK.stroke_width(2)));
    chart.draw_series(std::iter::once(Text::new(
        format!(
            "ECE {:.4}   MCE {:.4}   RMSCE {:.4}   ({} bins)",
            r.ece, r.mce, r.rmsce, r.n_bins
        ),
        (0.03, 0.95),
        (FONT, 20).into_font().color(&BLACK),
    )))?;
    chart
        .configure_series_labels()
        .label_font((FONT, 16))
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .position(SeriesLabelPosition::MiddleLeft)
        .draw()?;
    let total = bins.iter().map(|b| b.count as f64).sum::<f64>().max(1.0);
    let ymax = bins
        .iter()
        .map(|b| b.count as f64 / total)
        .fold(0.0, f64::max)
        .max(1e-9)
        * 1.1;
    let mut hist = ChartBuilder::on(&bottom)
        .margin_left(20)
        .margin_right(20)
        .margin_bottom(10)
        .x_label_area_size(50)
        .y_label_area_size(60)
        .build_cartesian_2d(0f64..1f64, 0f64..ymax)?;
    hist.configure_mesh()
        .x_desc("Confidence (top-1 probability)")
        .y_desc("Fraction of pixels")
        .y_labels(3)
        .label_style((FONT, 16))
        .axis_desc_style((FONT, 18))
        .light_line_style(RGBColor(235, 235, 235))
        .draw()?;
    hist.draw_series(bins.iter().map(|b| {
        Rectangle::new(
            [(b.lower, 0.0), (b.upper, b.count as f64 / total)],
            RGBColor(120, 120, 120).filled(),
        )
    }))?;
    Ok(())
}

fn draw_confusion<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, r: &Report) -> DrawResult
where
    DB::ErrorType: 'static,
{
    root.fill(&WHITE)?;
    let c = r.class_names.len() as i32;
    let rows: Vec<Vec<f64>> = r
        .confusion_matrix
        .iter()
        .map(|row| {
            // u128: counts edited past u64 must not overflow the sum.
            let s: u128 = row.iter().map(|&v| u128::from(v)).sum();
            row.iter()
                .map(|&v| if s == 0 { 0.0 } else { v as f64 / s as f64 })
                .collect()
        })
        .collect();
    let names = r.class_names.clone();
    let names_y = r.class_names.clone();
    let mut chart = ChartBuilder::on(root)
        .caption("Confusion matrix (row-normalised)", (FONT, 24))
        .margin(20)
        .x_label_area_size(60)
        .y_label_area_size(120)
        .build_cartesian_2d(0f64..c as f64, 0f64..c as f64)?;
    chart
        .configure_mesh()
        .disable_mesh()
        .x_labels(0)
        .y_labels(0)
        .x_desc("Predicted class")
        .y_desc("True class")
        .axis_desc_style((FONT, 18))
        .draw()?;
    for (t, row) in rows.iter().enumerate() {
        for (p, &v) in row.iter().enumerate() {
            let y = (c as usize - 1 - t) as f64;
            // White → blue ramp.
            let shade = |lo: f64, hi: f64| (lo + (hi - lo) * v).round() as u8;
            let fill = RGBColor(shade(247.0, 8.0), shade(251.0, 48.0), shade(255.0, 107.0));
            chart.draw_series(std::iter::once(Rectangle::new(
                [(p as f64, y), (p as f64 + 1.0, y + 1.0)],
                fill.filled(),
            )))?;
            let ink = if v > 0.5 { WHITE } else { BLACK };
            let centre = (p as f64 + 0.5, y + 0.5);
            let style = |size: i32| {
                (FONT, size)
                    .into_font()
                    .color(&ink)
                    .pos(Pos::new(HPos::Center, VPos::Center))
            };
            chart.draw_series(std::iter::once(
                EmptyElement::at(centre)
                    + Text::new(format!("{:.1}%", 100.0 * v), (0, -12), style(24))
                    + Text::new(
                        format!("({})", r.confusion_matrix[t][p]),
                        (0, 16),
                        style(16),
                    ),
            ))?;
        }
    }
    // Class names under the columns and beside the rows.
    let label = (FONT, 18)
        .into_font()
        .color(&BLACK)
        .pos(Pos::new(HPos::Center, VPos::Top));
    for (k, name) in names.iter().enumerate() {
        chart.draw_series(std::iter::once(
            EmptyElement::at((k as f64 + 0.5, 0.0))
                + Text::new(name.clone(), (0, 8), label.clone()),
        ))?;
    }
    let label_y = (FONT, 18)
        .into_font()
        .color(&BLACK)
        .pos(Pos::new(HPos::Right, VPos::Center));
    for (k, name) in names_y.iter().enumerate() {
        let y = (c as usize - 1 - k) as f64 + 0.5;
        chart.draw_series(std::iter::once(
            EmptyElement::at((0.0, y)) + Text::new(name.clone(), (-8, 0), label_y.clone()),
        ))?;
    }
    Ok(())
}

/// ROC curves per class with AUC in the legend → `stem.png`, `stem.svg`.
///
/// # Errors
/// [`MetricsError::LengthMismatch`] for a report that fails [`Report::validate`] (checked
/// before any file is written); [`MetricsError::Io`] when the folder cannot be created or a
/// picture cannot be written (both are drawn first, then each replaced atomically: a write
/// that fails part way leaves an earlier picture of that name as it was);
/// [`MetricsError::Plot`] when drawing fails.
///
/// # Examples
/// ```
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use xray_metrics::{plot_roc, EvalConfig, Evaluator, MetricsError};
/// let mut ev = Evaluator::new(EvalConfig::new(["background", "object"]))?;
/// ev.add_image(&[0, 0, 1, 1], &[0.9, 0.7, 0.2, 0.4, 0.1, 0.3, 0.8, 0.6], 2, 2)?;
/// let report = ev.finish()?;
/// let name = format!("xray-doc-plot-roc-{}.v1", std::process::id());
/// let stem = std::env::temp_dir().join(&name);
/// let files = plot_roc(&report, &stem)?;
/// // `.png` and `.svg` are appended to the stem's whole name, dots and all.
/// let dir = std::env::temp_dir();
/// assert_eq!(files, [dir.join(format!("{name}.png")), dir.join(format!("{name}.svg"))]);
/// let png = std::fs::read(&files[0])?;
/// assert_eq!(&png[1..4], b"PNG");
/// // The PNG header holds the picture's size: 900 x 800 pixels.
/// assert_eq!(png[16..24], [0, 0, 3, 132, 0, 0, 3, 32]);
/// assert!(std::fs::read_to_string(&files[1])?.contains("<svg"));
/// for f in &files {
///     std::fs::remove_file(f)?;
/// }
///
/// // A report whose fields disagree on the number of classes is refused, writing nothing.
/// let mut broken = report.clone();
/// broken.support.pop();
/// let e = plot_roc(&broken, &stem).unwrap_err();
/// assert!(matches!(e, MetricsError::LengthMismatch { .. }), "{e}");
/// assert!(!files[0].exists());
/// # Ok(())
/// # }
/// ```
pub fn plot_roc(report: &Report, stem: impl AsRef<Path>) -> Result<Vec<PathBuf>> {
    report.validate()?;
    render_both!(stem.as_ref(), (900, 800), draw_roc, report)
}

/// Reliability diagram with the gap shaded, ECE printed and a pixel histogram below →
/// `stem.png`, `stem.svg`.
///
/// # Errors
/// As [`plot_roc`].
///
/// # Examples
/// ```
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use xray_metrics::{plot_reliability, EvalConfig, Evaluator};
/// let mut ev = Evaluator::new(EvalConfig::new(["background", "object"]))?;
/// ev.add_image(&[0, 0, 1, 1], &[0.9, 0.7, 0.2, 0.4, 0.1, 0.3, 0.8, 0.6], 2, 2)?;
/// let report = ev.finish()?;
/// let stem = std::env::temp_dir().join(format!("xray-doc-plot-rel-{}", std::process::id()));
/// let files = plot_reliability(&report, &stem)?;
/// assert_eq!(files, [stem.with_extension("png"), stem.with_extension("svg")]);
/// let png = std::fs::read(&files[0])?;
/// assert_eq!(png[16..24], [0, 0, 3, 132, 0, 0, 3, 132]); // 900 x 900 pixels
/// assert!(std::fs::metadata(&files[1])?.len() > 0);
/// for f in &files {
///     std::fs::remove_file(f)?;
/// }
/// # Ok(())
/// # }
/// ```
pub fn plot_reliability(report: &Report, stem: impl AsRef<Path>) -> Result<Vec<PathBuf>> {
    report.validate()?;
    render_both!(stem.as_ref(), (900, 900), draw_reliability, report)
}

/// Row-normalised confusion heatmap with percentages and counts → `stem.png`, `stem.svg`.
///
/// # Errors
/// As [`plot_roc`].
///
/// # Examples
/// ```
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use xray_metrics::{plot_confusion, EvalConfig, Evaluator};
/// let mut ev = Evaluator::new(EvalConfig::new(["background", "object"]))?;
/// ev.add_image(&[0, 0, 1, 1], &[0.9, 0.7, 0.2, 0.4, 0.1, 0.3, 0.8, 0.6], 2, 2)?;
/// let report = ev.finish()?;
/// let stem = std::env::temp_dir().join(format!("xray-doc-plot-cm-{}", std::process::id()));
/// let files = plot_confusion(&report, &stem)?;
/// assert_eq!(files, [stem.with_extension("png"), stem.with_extension("svg")]);
/// let png = std::fs::read(&files[0])?;
/// assert_eq!(png[16..24], [0, 0, 3, 82, 0, 0, 3, 32]); // 850 x 800 pixels
/// // The SVG names the classes.
/// assert!(std::fs::read_to_string(&files[1])?.contains("object"));
/// for f in &files {
///     std::fs::remove_file(f)?;
/// }
/// # Ok(())
/// # }
/// ```
pub fn plot_confusion(report: &Report, stem: impl AsRef<Path>) -> Result<Vec<PathBuf>> {
    report.validate()?;
    render_both!(stem.as_ref(), (850, 800), draw_confusion, report)
}

/// `roc`, `reliability` and `confusion` plots (PNG and SVG) into `dir`.
///
/// # Errors
/// As [`plot_roc`]; a report that fails [`Report::validate`] is refused before any file
/// is written.
///
/// # Examples
/// ```
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use xray_metrics::{save_plots, EvalConfig, Evaluator};
/// let mut ev = Evaluator::new(EvalConfig::new(["background", "object"]))?;
/// ev.add_image(&[0, 0, 1, 1], &[0.9, 0.7, 0.2, 0.4, 0.1, 0.3, 0.8, 0.6], 2, 2)?;
/// let report = ev.finish()?;
/// let dir = std::env::temp_dir().join(format!("xray-doc-save-plots-{}", std::process::id()));
/// let files = save_plots(&report, &dir)?; // creates the folder
/// let names: Vec<_> = files.iter().map(|f| f.strip_prefix(&dir).unwrap()).collect();
/// assert_eq!(
///     names,
///     ["roc.png", "roc.svg", "reliability.png", "reliability.svg", "confusion.png", "confusion.svg"]
///         .map(std::path::Path::new)
/// );
/// assert!(files.iter().all(|f| f.metadata().is_ok_and(|m| m.len() > 0)));
/// std::fs::remove_dir_all(&dir)?;
/// # Ok(())
/// # }
/// ```
pub fn save_plots(report: &Report, dir: impl AsRef<Path>) -> Result<Vec<PathBuf>> {
    report.validate()?;
    let dir = dir.as_ref();
    let mut out = plot_roc(report, dir.join("roc"))?;
    out.extend(plot_reliability(report, dir.join("reliability"))?);
    out.extend(plot_confusion(report, dir.join("confusion"))?);
    Ok(out)
}

/// A trainer log: one JSON object per line; every numeric field becomes a column.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TrainingLog {
    /// Numeric columns by name, one value per row (`NaN` where a row lacks the field).
    pub columns: BTreeMap<String, Vec<f64>>,
    /// Rows read.
    pub rows: usize,
}

impl TrainingLog {
    /// Parses JSON lines (blank lines skipped). Non-numeric fields are ignored.
    ///
    /// # Examples
    /// ```
    /// use xray_metrics::TrainingLog;
    /// let log = TrainingLog::parse("{\"epoch\":1,\"train_loss\":0.9}\n{\"epoch\":2,\"train_loss\":0.5}").unwrap();
    /// assert_eq!(log.columns["train_loss"], vec![0.9, 0.5]);
    /// ```
    pub fn parse(text: &str) -> Result<Self> {
        let mut log = TrainingLog::default();
        for (i, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let v: serde_json::Value =
                serde_json::from_str(line).map_err(|e| MetricsError::Log {
                    file: None,
                    line: i + 1,
                    reason: e.to_string(),
                })?;
            let obj = v.as_object().ok_or_else(|| MetricsError::Log {
                file: None,
                line: i + 1,
                reason: "expected a JSON object".into(),
            })?;
            for (k, x) in obj {
                if let Some(x) = x.as_f64() {
                    let col = log
                        .columns
                        .entry(k.clone())
                        .or_insert_with(|| vec![f64::NAN; log.rows]);
                    col.push(x);
                }
            }
            log.rows += 1;
            for col in log.columns.values_mut() {
                col.resize(log.rows, f64::NAN);
            }
        }
        if log.rows == 0 {
            return Err(MetricsError::Log {
                file: None,
                line: 0,
                reason: "the log has no rows".into(),
            });
        }
        Ok(log)
    }

    /// Reads and parses a JSON-lines file.
    ///
    /// # Errors
    /// [`MetricsError::Io`] naming `path` when the file cannot be read; otherwise as
    /// [`TrainingLog::parse`] ([`MetricsError::Log`] with `path` and the line number).
    ///
    /// # Examples
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use xray_metrics::{MetricsError, TrainingLog};
    /// let path = std::env::temp_dir().join(format!("xray-doc-log-{}.jsonl", std::process::id()));
    /// std::fs::write(&path, "{\"epoch\":1,\"val_dice\":0.8}\n\n{\"epoch\":2}\n")?;
    /// let log = TrainingLog::load(&path)?;
    /// std::fs::remove_file(&path)?;
    /// assert_eq!(log.rows, 2); // the blank line is skipped
    /// assert_eq!(log.columns["epoch"], [1.0, 2.0]);
    /// assert!(log.columns["val_dice"][1].is_nan()); // row 2 lacks the field
    ///
    /// let e = TrainingLog::load(&path).unwrap_err(); // the file is gone
    /// assert!(matches!(e, MetricsError::Io { .. }), "{e}");
    /// # Ok(())
    /// # }
    /// ```
    pub fn load(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| MetricsError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&text).map_err(|e| e.in_file(path))
    }

    /// The x axis: `epoch`, else `step`, else the row number.
    fn x(&self) -> (String, Vec<f64>) {
        for name in ["epoch", "step"] {
            if let Some(c) = self.columns.get(name) {
                return (name.into(), c.clone());
            }
        }
        ("row".into(), (0..self.rows).map(|i| i as f64).collect())
    }
}

/// Lowest and highest finite value (`(inf, -inf)` when there is none).
fn finite_extent<'a>(values: impl Iterator<Item = &'a f64>) -> (f64, f64) {
    values
        .filter(|v| v.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &v| {
            (a.min(v), b.max(v))
        })
}

/// A drawable axis `(low, high)` for finite values from `lo` to `hi`, padded by `pad`.
/// Plotters needs `high − low` finite (an infinite width never finishes placing its tick
/// marks) and not lost below the values' precision; so a range wider than the largest f64
/// is refused, padding that would overflow is dropped, and a range too narrow for the
/// magnitude of its values is spread to ±5 % (at least `min_half`) around its centre.
/// Ranges of everyday values come back exactly as `pad` makes them.
fn axis_range(
    (lo, hi): (f64, f64),
    pad: impl Fn(f64, f64) -> (f64, f64),
    min_half: f64,
) -> std::result::Result<(f64, f64), String> {
    if lo > hi {
        return Ok((0.0, 1.0)); // no finite value
    }
    if !(hi - lo).is_finite() {
        return Err(format!(
            "values run from {} to {}, wider than a plot axis can hold (the width passes the \
             largest f64); drop or rescale them",
            readable_number(lo),
            readable_number(hi)
        ));
    }
    let (mut a, mut b) = pad(lo, hi);
    if !(a.is_finite() && b.is_finite() && (b - a).is_finite()) {
        (a, b) = (lo, hi);
    }
    if b - a <= 1e-12 * a.abs().max(b.abs()) {
        let m = a / 2.0 + b / 2.0;
        let h = (m.abs() * 0.05).max(min_half);
        (a, b) = if (m - h).is_finite() && (m + h).is_finite() {
            (m - h, m + h)
        } else if m > 0.0 {
            (m - 2.0 * h, m)
        } else {
            (m, m + 2.0 * h)
        };
    }
    Ok((a, b))
}

/// `((x_low, x_high), (y_low, y_high))` of a panel.
type PanelRanges = ((f64, f64), (f64, f64));

/// The x and y ranges of one training-curve panel (see [`axis_range`]).
fn panel_ranges(
    title: &str,
    x: &[f64],
    series: &[(&String, &Vec<f64>)],
) -> std::result::Result<PanelRanges, String> {
    let xr = axis_range(
        finite_extent(x.iter()),
        |lo, hi| {
            if lo < hi {
                (lo, hi)
            } else {
                (lo - 1.0, lo + 1.0)
            }
        },
        1.0,
    )
    .map_err(|e| format!("x axis: {e}"))?;
    let yr = axis_range(
        finite_extent(series.iter().flat_map(|(_, v)| v.iter())),
        |lo, hi| {
            let pad = ((hi - lo).abs() * 0.05).max(1e-6);
            (lo - pad, hi + pad)
        },
        1e-6,
    )
    .map_err(|e| format!("{title} panel: {e}"))?;
    Ok((xr, yr))
}

/// The columns of the left (loss) and right (metrics) panels and the x axis.
type Panels<'a> = (
    String,
    Vec<f64>,
    Vec<(&'a String, &'a Vec<f64>)>,
    Vec<(&'a String, &'a Vec<f64>)>,
);

fn panels(log: &TrainingLog) -> Panels<'_> {
    let (x_name, x) = log.x();
    let others: Vec<(&String, &Vec<f64>)> =
        log.columns.iter().filter(|(k, _)| **k != x_name).collect();
    let (losses, metrics): (Vec<_>, Vec<_>) =
        others.into_iter().partition(|(k, _)| k.contains("loss"));
    (x_name, x, losses, metrics)
}

fn draw_panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    title: &str,
    x_name: &str,
    x: &[f64],
    series: &[(&String, &Vec<f64>)],
    color_offset: usize,
    legend: SeriesLabelPosition,
) -> DrawResult
where
    DB::ErrorType: 'static,
{
    let ((x0, x1), (y0, y1)) = panel_ranges(title, x, series)?;
    let mut chart = ChartBuilder::on(area)
        .caption(title, (FONT, 22))
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(65)
        .build_cartesian_2d(x0..x1, y0..y1)?;
    let integral = x.iter().all(|v| !v.is_finite() || v.fract() == 0.0);
    chart
        .configure_mesh()
        .x_desc(x_name)
        .x_label_formatter(&|v| {
            if integral {
                format!("{v:.0}")
            } else {
                format!("{v:.3}")
            }
        })
        .label_style((FONT, 15))
        .axis_desc_style((FONT, 17))
        .light_line_style(RGBColor(235, 235, 235))
        .draw()?;
    for (i, (name, v)) in series.iter().enumerate() {
        let c = color(i + color_offset);
        let pts: Vec<(f64, f64)> = x
            .iter()
            .zip(v.iter())
            .filter(|(a, b)| a.is_finite() && b.is_finite())
            .map(|(&a, &b)| (a, b))
            .collect();
        chart.draw_series(pts.iter().map(|&p| Circle::new(p, 3, c.filled())))?;
        chart
            .draw_series(LineSeries::new(pts, c.stroke_width(2)))?
            .label(name.as_str())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 22, y)], c.stroke_width(2)));
    }
    if !series.is_empty() {
        chart
            .configure_series_labels()
            .label_font((FONT, 15))
            .background_style(WHITE.mix(0.9))
            .border_style(BLACK)
            .position(legend)
            .draw()?;
    }
    Ok(())
}

fn draw_training<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, log: &TrainingLog) -> DrawResult
where
    DB::ErrorType: 'static,
{
    root.fill(&WHITE)?;
    let (x_name, x, losses, metrics) = panels(log);
    let panels = root.split_evenly((1, 2));
    draw_panel(
        &panels[0],
        "Loss",
        &x_name,
        &x,
        &losses,
        0,
        SeriesLabelPosition::UpperRight,
    )?;
    draw_panel(
        &panels[1],
        "Metrics",
        &x_name,
        &x,
        &metrics,
        losses.len(),
        SeriesLabelPosition::LowerRight,
    )?;
    Ok(())
}

/// Training curves: columns whose name contains `loss` on the left, every other numeric
/// column on the right, against `epoch` (or `step`, or the row number).
///
/// # Errors
/// [`MetricsError::Plot`] naming the axis, before any file is written, when a panel's
/// values span more than the largest f64 (e.g. a loss of `1e308` and one of `-1e308`:
/// no axis can hold both), and when drawing or writing a picture fails;
/// [`MetricsError::Io`] when the folder cannot be created.
///
/// # Examples
/// ```
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use xray_metrics::{plot_training_curves, MetricsError, TrainingLog};
/// let log = TrainingLog::parse(
///     "{\"epoch\":1,\"train_loss\":0.9,\"val_dice\":0.6}\n\
///      {\"epoch\":2,\"train_loss\":0.5,\"val_dice\":0.8}",
/// )?;
/// let stem = std::env::temp_dir().join(format!("xray-doc-curves-{}", std::process::id()));
/// let files = plot_training_curves(&log, &stem)?;
/// assert_eq!(files, [stem.with_extension("png"), stem.with_extension("svg")]);
/// let png = std::fs::read(&files[0])?;
/// assert_eq!(png[16..24], [0, 0, 5, 120, 0, 0, 2, 88]); // 1400 x 600 pixels
/// let svg = std::fs::read_to_string(&files[1])?;
/// assert!(svg.contains("train_loss") && svg.contains("val_dice"), "legends");
/// for f in &files {
///     std::fs::remove_file(f)?;
/// }
///
/// // No axis holds both 1e308 and -1e308: refused before any file is written.
/// let wide = TrainingLog::parse("{\"loss\":1e308}\n{\"loss\":-1e308}")?;
/// let e = plot_training_curves(&wide, &stem).unwrap_err();
/// assert!(matches!(e, MetricsError::Plot { .. }), "{e}");
/// assert!(!files[0].exists() && !files[1].exists());
/// # Ok(())
/// # }
/// ```
pub fn plot_training_curves(log: &TrainingLog, stem: impl AsRef<Path>) -> Result<Vec<PathBuf>> {
    let (_, x, losses, metrics) = panels(log);
    for (title, series) in [("Loss", &losses), ("Metrics", &metrics)] {
        panel_ranges(title, &x, series).map_err(|reason| MetricsError::Plot {
            path: stem_file(stem.as_ref(), "png"),
            reason,
        })?;
    }
    render_both!(stem.as_ref(), (1400, 600), draw_training, log)
}
