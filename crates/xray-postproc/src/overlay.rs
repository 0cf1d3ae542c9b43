//! Overlays: a label map blended over the radiograph in fixed colours, with a legend,
//! optional class contours and the collimator edges drawn in.
//!
//! Colours (Okabe–Ito, safe for colour-blind readers; see `docs/postprocessing.md`):
//!
//! | label | meaning | colour | RGB |
//! |---|---|---|---|
//! | 0 | open beam | sky blue | 86, 180, 233 |
//! | 1 | soft tissue | orange | 230, 159, 0 |
//! | 2 | bone | reddish purple | 204, 121, 167 |
//! | 3+ | further classes | bluish green, blue, vermillion (cycled) | |
//! | 255 | uncertain / outside the field | image darkened to 40 % | |
//! | – | collimator edge | yellow | 240, 228, 66 |
//! | – | class contour | white | 255, 255, 255 |

use std::path::Path;

use image::{GrayImage, Rgb, RgbImage};
use imageproc::drawing::{draw_filled_rect_mut, draw_hollow_rect_mut, draw_line_segment_mut};
use imageproc::rect::Rect;
use serde::{Deserialize, Serialize};

use crate::collimator::Collimator;
use crate::error::{PostprocError, Result};
use crate::probs::{check_labels, Plane};
use crate::threshold::IGNORE_LABEL;

/// Colours of labels 0, 1, 2, 3, 4, 5 (cycled for higher labels).
pub const CLASS_COLOURS: [[u8; 3]; 6] = [
    [86, 180, 233],
    [230, 159, 0],
    [204, 121, 167],
    [0, 158, 115],
    [0, 114, 178],
    [213, 94, 0],
];
/// Colour of collimator edges.
pub const FIELD_EDGE_COLOUR: [u8; 3] = [240, 228, 66];
/// Legend swatch colour of [`IGNORE_LABEL`] pixels (they are drawn as the image darkened to 40 %).
pub const UNCERTAIN_COLOUR: [u8; 3] = [60, 60, 60];

/// How an overlay is drawn.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OverlayConfig {
    /// Opacity of the class colours, in `[0, 1]`.
    pub alpha: f32,
    /// Draw white contours between classes.
    pub contours: bool,
    /// Draw the legend (colour swatches with names) in the top-left corner.
    pub legend: bool,
    /// Draw the collimator edges (when a field is given).
    pub draw_field: bool,
    /// Show the radiograph as usual in radiology: more X-rays darker (bone white).
    pub radiology_display: bool,
    /// Names of the classes in the legend (A–Z, digits, space and hyphen are drawn).
    pub class_names: Vec<String>,
}

impl Default for OverlayConfig {
    fn default() -> Self {
        Self {
            alpha: 0.4,
            contours: true,
            legend: true,
            draw_field: true,
            radiology_display: true,
            class_names: vec!["open beam".into(), "soft tissue".into(), "bone".into()],
        }
    }
}

impl OverlayConfig {
    /// Checks `alpha`, the one number of the config: an opacity in `[0, 1]` (NaN and
    /// infinities refused; in JSON, a value beyond the `f32` range, such as `1e308`, reads as
    /// infinity).
    ///
    /// # Errors
    /// [`PostprocError::OutOfRange`] naming `alpha`.
    ///
    /// # Examples
    /// ```
    /// use xray_postproc::OverlayConfig;
    /// assert!(OverlayConfig::default().validate().is_ok());
    /// let cfg: OverlayConfig = serde_json::from_str(r#"{"alpha": 1e308}"#).unwrap();
    /// assert!(cfg.validate().unwrap_err().to_string().contains("alpha = inf"));
    /// ```
    pub fn validate(&self) -> Result<()> {
        if self.alpha.is_finite() && (0.0..=1.0).contains(&self.alpha) {
            Ok(())
        } else {
            Err(PostprocError::OutOfRange {
                name: "alpha".into(),
                value: self.alpha as f64,
                expected: "an opacity in [0, 1]",
            })
        }
    }
}

fn class_colour(l: u8) -> [u8; 3] {
    CLASS_COLOURS[l as usize % CLASS_COLOURS.len()]
}

/// The radiograph as 8-bit grey, stretched between its 0.5 % and 99.5 % levels.
fn display_grey(img: &Plane, radiology: bool) -> Vec<u8> {
    let data = img.data();
    let stride = (data.len() / 200_000).max(1);
    let mut s: Vec<f32> = data.iter().step_by(stride).copied().collect();
    s.sort_by(f32::total_cmp);
    let q = |p: f32| s[((s.len() - 1) as f32 * p).round() as usize];
    let (lo, hi) = (q(0.005), q(0.995));
    let span = if hi > lo { hi - lo } else { 1.0 };
    data.iter()
        .map(|&v| {
            let g = ((v - lo) / span).clamp(0.0, 1.0);
            let g = if radiology { 1.0 - g } else { g };
            crate::round_nonnegative(g * 255.0) as u8
        })
        .collect()
}

/// Draws `labels` over the radiograph `img`, with the edges of `field` when given.
///
/// # Examples
/// ```
/// use image::GrayImage;
/// use xray_postproc::{overlay, OverlayConfig, Plane};
/// let img = vec![1.0f32; 40 * 30];
/// let labels = GrayImage::from_pixel(40, 30, image::Luma([1]));
/// let rgb = overlay(&Plane::new(&img, 40, 30).unwrap(), &labels, None, &OverlayConfig::default()).unwrap();
/// assert_eq!(rgb.dimensions(), (40, 30));
/// ```
///
/// # Errors
/// Label map or field of another size than the image; `alpha` outside `[0, 1]`
/// ([`OverlayConfig::validate`]); a field whose edges break their rules
/// ([`Collimator::validate`]), named `field.edges[i]...`.
pub fn overlay(
    img: &Plane,
    labels: &GrayImage,
    field: Option<&Collimator>,
    cfg: &OverlayConfig,
) -> Result<RgbImage> {
    let (w, h) = (img.width(), img.height());
    check_labels("label map", labels, w, h)?;
    cfg.validate()?;
    if let Some(c) = field {
        if (c.width, c.height) != (w, h) {
            return Err(PostprocError::ShapeMismatch {
                what: "collimator field",
                expected: format!("{w} x {h} (the image)"),
                found: format!("{} x {}", c.width, c.height),
            });
        }
        c.validate()
            .map_err(|e| e.renamed(|name| format!("field.{name}")))?;
    }
    let grey = display_grey(img, cfg.radiology_display);
    let lab = labels.as_raw();
    let a = cfg.alpha;
    // Every pixel's colour depends only on its 8-bit grey level and its label: one table of
    // 256 colours per label value, filled with the per-pixel formula, instead of three
    // blends and roundings per pixel.
    let mut table: Vec<Option<Box<[Rgb<u8>; 256]>>> = vec![None; 256];
    let colour_of = |l: u8| -> Box<[Rgb<u8>; 256]> {
        Box::new(std::array::from_fn(|grey_level| {
            let g = grey_level as f32;
            if l == IGNORE_LABEL {
                let d = (g * 0.4).round() as u8;
                Rgb([d, d, d])
            } else {
                let c = class_colour(l);
                Rgb(std::array::from_fn(|k| {
                    ((1.0 - a) * g + a * c[k] as f32).round() as u8
                }))
            }
        }))
    };
    let mut out = RgbImage::new(w as u32, h as u32);
    for (i, px) in out.pixels_mut().enumerate() {
        let l = lab[i];
        let colours = table[l as usize].get_or_insert_with(|| colour_of(l));
        *px = colours[grey[i] as usize];
    }
    if cfg.contours {
        for y in 0..h {
            for x in 0..w {
                let l = lab[y * w + x];
                let differs = (x + 1 < w && lab[y * w + x + 1] != l)
                    || (y + 1 < h && lab[(y + 1) * w + x] != l);
                if differs && l != IGNORE_LABEL {
                    out.put_pixel(x as u32, y as u32, Rgb([255, 255, 255]));
                }
            }
        }
    }
    let thick = ((w.max(h) / 400) as i32).max(1);
    if let (Some(c), true) = (field, cfg.draw_field) {
        for e in &c.edges {
            if let Some((p0, p1)) = e.line.clip_to(w, h) {
                for o in -thick..=thick {
                    let (dx, dy) = (e.line.nx * o as f32, e.line.ny * o as f32);
                    draw_line_segment_mut(
                        &mut out,
                        (p0.0 + dx, p0.1 + dy),
                        (p1.0 + dx, p1.1 + dy),
                        Rgb(FIELD_EDGE_COLOUR),
                    );
                }
            }
        }
    }
    if cfg.legend {
        draw_legend(&mut out, labels, field.is_some() && cfg.draw_field, cfg);
    }
    Ok(out)
}

fn draw_legend(out: &mut RgbImage, labels: &GrayImage, with_field: bool, cfg: &OverlayConfig) {
    let (w, h) = out.dimensions();
    let scale = (w.max(h) / 500).clamp(1, 6) as i32;
    let mut present = [false; 256];
    for &l in labels.iter() {
        present[l as usize] = true;
    }
    let mut rows: Vec<([u8; 3], String)> = Vec::new();
    let n_named = cfg.class_names.len().max(3);
    for (l, &here) in present.iter().enumerate().take(255) {
        if here || l < n_named.min(cfg.class_names.len()) {
            let name = cfg
                .class_names
                .get(l)
                .cloned()
                .unwrap_or_else(|| format!("class {l}"));
            rows.push((class_colour(l as u8), name));
        }
    }
    if present[IGNORE_LABEL as usize] {
        rows.push((UNCERTAIN_COLOUR, "ignore".into()));
    }
    if with_field {
        rows.push((FIELD_EDGE_COLOUR, "field edge".into()));
    }
    let line_h = 9 * scale;
    let text_w = rows
        .iter()
        .map(|r| r.1.chars().count() as i32 * 6 * scale)
        .max()
        .unwrap_or(0);
    let box_w = 3 * scale + 7 * scale + 3 * scale + text_w + 3 * scale;
    let box_h = rows.len() as i32 * line_h + 4 * scale;
    if box_w as u32 > w || box_h as u32 > h {
        return; // too small an image for a legend
    }
    let (x0, y0) = (2 * scale, 2 * scale);
    draw_filled_rect_mut(
        out,
        Rect::at(x0, y0).of_size(box_w as u32, box_h as u32),
        Rgb([0, 0, 0]),
    );
    draw_hollow_rect_mut(
        out,
        Rect::at(x0, y0).of_size(box_w as u32, box_h as u32),
        Rgb([255, 255, 255]),
    );
    for (i, (c, name)) in rows.iter().enumerate() {
        let y = y0 + 2 * scale + i as i32 * line_h;
        draw_filled_rect_mut(
            out,
            Rect::at(x0 + 3 * scale, y).of_size(7 * scale as u32, 7 * scale as u32),
            Rgb(*c),
        );
        draw_text(out, x0 + 13 * scale, y, scale, name, Rgb([255, 255, 255]));
    }
}

/// A 5 × 7 bitmap glyph (one string of five '#'/'.' per row) for the legend's few words, so
/// no font file is needed.
fn glyph(ch: char) -> Option<[&'static str; 7]> {
    Some(match ch.to_ascii_uppercase() {
        'A' => [
            ".###.", "#...#", "#...#", "#####", "#...#", "#...#", "#...#",
        ],
        'B' => [
            "####.", "#...#", "#...#", "####.", "#...#", "#...#", "####.",
        ],
        'C' => [
            ".###.", "#...#", "#....", "#....", "#....", "#...#", ".###.",
        ],
        'D' => [
            "####.", "#...#", "#...#", "#...#", "#...#", "#...#", "####.",
        ],
        'E' => [
            "#####", "#....", "#....", "####.", "#....", "#....", "#####",
        ],
        'F' => [
            "#####", "#....", "#....", "####.", "#....", "#....", "#....",
        ],
        'G' => [
            ".###.", "#...#", "#....", "#.###", "#...#", "#...#", ".###.",
        ],
        'H' => [
            "#...#", "#...#", "#...#", "#####", "#...#", "#...#", "#...#",
        ],
        'I' => [
            ".###.", "..#..", "..#..", "..#..", "..#..", "..#..", ".###.",
        ],
        'J' => [
            "..###", "...#.", "...#.", "...#.", "...#.", "#..#.", ".##..",
        ],
        'K' => [
            "#...#", "#..#.", "#.#..", "##...", "#.#..", "#..#.", "#...#",
        ],
        'L' => [
            "#....", "#....", "#....", "#....", "#....", "#....", "#####",
        ],
        'M' => [
            "#...#", "##.##", "#.#.#", "#.#.#", "#...#", "#...#", "#...#",
        ],
        'N' => [
            "#...#", "##..#", "#.#.#", "#..##", "#...#", "#...#", "#...#",
        ],
        'O' => [
            ".###.", "#...#", "#...#", "#...#", "#...#", "#...#", ".###.",
        ],
        'P' => [
            "####.", "#...#", "#...#", "####.", "#....", "#....", "#....",
        ],
        'Q' => [
            ".###.", "#...#", "#...#", "#...#", "#.#.#", "#..#.", ".##.#",
        ],
        'R' => [
            "####.", "#...#", "#...#", "####.", "#.#..", "#..#.", "#...#",
        ],
        'S' => [
            ".####", "#....", "#....", ".###.", "....#", "....#", "####.",
        ],
        'T' => [
            "#####", "..#..", "..#..", "..#..", "..#..", "..#..", "..#..",
        ],
        'U' => [
            "#...#", "#...#", "#...#", "#...#", "#...#", "#...#", ".###.",
        ],
        'V' => [
            "#...#", "#...#", "#...#", "#...#", "#...#", ".#.#.", "..#..",
        ],
        'W' => [
            "#...#", "#...#", "#...#", "#.#.#", "#.#.#", "#.#.#", ".#.#.",
        ],
        'X' => [
            "#...#", "#...#", ".#.#.", "..#..", ".#.#.", "#...#", "#...#",
        ],
        'Y' => [
            "#...#", "#...#", ".#.#.", "..#..", "..#..", "..#..", "..#..",
        ],
        'Z' => [
            "#####", "....#", "...#.", "..#..", ".#...", "#....", "#####",
        ],
        '0' => [
            ".###.", "#...#", "#..##", "#.#.#", "##..#", "#...#", ".###.",
        ],
        '1' => [
            "..#..", ".##..", "..#..", "..#..", "..#..", "..#..", ".###.",
        ],
        '2' => [
            ".###.", "#...#", "....#", "...#.", "..#..", ".#...", "#####",
        ],
        '3' => [
            "####.", "....#", "....#", ".###.", "....#", "....#", "####.",
        ],
        '4' => [
            "...#.", "..##.", ".#.#.", "#..#.", "#####", "...#.", "...#.",
        ],
        '5' => [
            "#####", "#....", "####.", "....#", "....#", "#...#", ".###.",
        ],
        '6' => [
            ".###.", "#....", "#....", "####.", "#...#", "#...#", ".###.",
        ],
        '7' => [
            "#####", "....#", "...#.", "..#..", ".#...", ".#...", ".#...",
        ],
        '8' => [
            ".###.", "#...#", "#...#", ".###.", "#...#", "#...#", ".###.",
        ],
        '9' => [
            ".###.", "#...#", "#...#", ".####", "....#", "....#", ".###.",
        ],
        '-' => [
            ".....", ".....", ".....", "#####", ".....", ".....", ".....",
        ],
        _ => return None,
    })
}

fn draw_text(out: &mut RgbImage, x: i32, y: i32, scale: i32, text: &str, colour: Rgb<u8>) {
    for (i, ch) in text.chars().enumerate() {
        let Some(g) = glyph(ch) else { continue };
        let gx = x + i as i32 * 6 * scale;
        for (r, row) in g.iter().enumerate() {
            for (c, b) in row.bytes().enumerate() {
                if b == b'#' {
                    let rect = Rect::at(gx + c as i32 * scale, y + r as i32 * scale)
                        .of_size(scale as u32, scale as u32);
                    draw_filled_rect_mut(out, rect, colour);
                }
            }
        }
    }
}

/// Saves an overlay (or any RGB image) as PNG at `path`, replacing the file atomically
/// (encoded in memory, written to a temporary sibling, renamed into place): a write that
/// fails part way (a full disk) leaves an earlier file whole, and no temporary file.
///
/// The path comes first, as in every saver of the workspace (`xray_data::io::save_png16(path,
/// img)`, `save_mask(path, mask)`). Until 2026-12-02 this one took `(img, path)`; a call in
/// that order does not compile (an image is not a path), so no caller can swap them silently:
/// ```compile_fail,E0308
/// let img = image::RgbImage::new(1, 1);
/// xray_postproc::save_png(&img, "overlay.png")?; // the old order
/// # Ok::<(), xray_postproc::PostprocError>(())
/// ```
///
/// # Errors
/// [`PostprocError::Image`] naming the path when writing fails.
///
/// # Examples
/// ```
/// use image::{Rgb, RgbImage};
/// use xray_postproc::{save_png, PostprocError};
/// let img = RgbImage::from_pixel(4, 3, Rgb([255, 0, 0]));
/// let path = std::env::temp_dir().join(format!("xray_postproc_save_png_{}.png", std::process::id()));
/// save_png(&path, &img)?;
/// let back = image::open(&path).expect("readable PNG").to_rgb8();
/// assert_eq!(back, img); // PNG is lossless
/// std::fs::remove_file(&path).unwrap();
///
/// // A folder that does not exist cannot be written.
/// let bad = std::env::temp_dir().join("xray_postproc_no_such_dir").join("x.png");
/// let e = save_png(&bad, &img).unwrap_err();
/// assert!(matches!(e, PostprocError::Image { .. }));
/// assert!(e.to_string().contains("x.png"), "{e}");
/// # Ok::<(), PostprocError>(())
/// ```
pub fn save_png(path: impl AsRef<Path>, img: &RgbImage) -> Result<()> {
    let path = path.as_ref();
    let error = |source| PostprocError::Image {
        path: path.display().to_string(),
        source,
    };
    let mut bytes = std::io::Cursor::new(Vec::new());
    img.write_to(&mut bytes, image::ImageFormat::Png)
        .map_err(error)?;
    crate::atomic_write::write_atomic(path, bytes.get_ref())
        .map_err(|e| error(image::ImageError::IoError(e)))
}
