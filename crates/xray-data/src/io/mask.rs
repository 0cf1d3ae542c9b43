//! Label masks: index PNGs and the colour-coded label images of the XNet reference data.

use super::raster::image_write_err;
use crate::{DataError, Mask, Result, BONE, IGNORE_LABEL, OPEN_BEAM, SOFT_TISSUE};
use image::{Rgb, RgbImage};
use std::io::Cursor;
use std::path::Path;

/// Per-channel tolerance of [`decode_color_mask`]: a pixel matches a colour when every
/// channel is within ±100 (inclusive) of it, as `numpy.isclose(..., atol=100)` in XNet's
/// `rgb2label.py`.
pub const COLOR_TOLERANCE: u8 = 100;

/// Soft tissue in the XNet label images: BGR `[255,255,0]`, i.e. RGB `(0,255,255)` (cyan).
const SOFT_TISSUE_RGB: [u8; 3] = [0, 255, 255];
/// Bone in the XNet label images: BGR `[0,0,255]`, i.e. RGB `(255,0,0)` (red).
const BONE_RGB: [u8; 3] = [255, 0, 0];
/// Open beam as [`encode_color_mask`] writes it: white.
const OPEN_BEAM_RGB: [u8; 3] = [255, 255, 255];

fn close(p: &[u8; 3], c: &[u8; 3]) -> bool {
    p.iter()
        .zip(c)
        .all(|(&a, &b)| a.abs_diff(b) <= COLOR_TOLERANCE)
}

/// Decodes a colour-coded XNet label image, given in **RGB** channel order (as `image`
/// loads it), into class indices.
///
/// The reference data were read with OpenCV, i.e. in BGR order: BGR `[255,255,0]` (RGB cyan
/// `(0,255,255)`) is soft tissue (`1`), BGR `[0,0,255]` (RGB red `(255,0,0)`) is bone (`2`),
/// everything else is open beam (`0`); each channel may differ by up to
/// [`COLOR_TOLERANCE`]. The two colours are more than twice the tolerance apart, so no
/// pixel can match both.
///
/// # Examples
/// ```
/// use image::{Rgb, RgbImage};
/// let mut rgb = RgbImage::from_pixel(3, 1, Rgb([255, 255, 255]));
/// rgb.put_pixel(1, 0, Rgb([20, 230, 240])); // cyan-ish: soft tissue
/// rgb.put_pixel(2, 0, Rgb([200, 90, 0])); // red-ish: bone
/// let mask = xray_data::io::decode_color_mask(&rgb);
/// assert_eq!(mask.as_raw(), &vec![0, 1, 2]);
/// ```
pub fn decode_color_mask(rgb: &RgbImage) -> Mask {
    let (w, h) = rgb.dimensions();
    let data = rgb
        .pixels()
        .map(|Rgb(p)| {
            if close(p, &SOFT_TISSUE_RGB) {
                SOFT_TISSUE
            } else if close(p, &BONE_RGB) {
                BONE
            } else {
                OPEN_BEAM
            }
        })
        .collect();
    Mask::from_raw(w, h, data).unwrap_or_else(|| Mask::new(w, h))
}

/// Encodes class indices as an XNet colour label image in **RGB** order: open beam white,
/// soft tissue cyan `(0,255,255)`, bone red `(255,0,0)`. [`decode_color_mask`] inverts it.
///
/// # Errors
/// [`DataError::UnknownLabel`] for any value other than 0, 1, 2 (the colour scheme has no
/// colour for [`IGNORE_LABEL`]).
///
/// # Examples
/// ```
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use xray_data::io::{decode_color_mask, encode_color_mask};
/// let mask = xray_data::Mask::from_raw(3, 1, vec![0, 1, 2]).ok_or("3 labels")?;
/// let rgb = encode_color_mask(&mask)?;
/// assert_eq!(rgb.get_pixel(1, 0).0, [0, 255, 255]); // soft tissue: cyan
/// assert_eq!(rgb.get_pixel(2, 0).0, [255, 0, 0]); // bone: red
/// assert_eq!(decode_color_mask(&rgb), mask);
/// // 255 (ignore) has no colour in the scheme
/// let ignored = xray_data::Mask::from_raw(1, 1, vec![255]).ok_or("1 label")?;
/// assert!(encode_color_mask(&ignored).is_err());
/// # Ok(())
/// # }
/// ```
pub fn encode_color_mask(mask: &Mask) -> Result<RgbImage> {
    let (w, h) = mask.dimensions();
    let mut out = RgbImage::new(w, h);
    for (x, y, p) in mask.enumerate_pixels() {
        let c = match p.0[0] {
            OPEN_BEAM => OPEN_BEAM_RGB,
            SOFT_TISSUE => SOFT_TISSUE_RGB,
            BONE => BONE_RGB,
            value => {
                return Err(DataError::UnknownLabel {
                    path: super::memory_path(),
                    x,
                    y,
                    value,
                    num_classes: 3,
                })
            }
        };
        out.put_pixel(x, y, Rgb(c));
    }
    Ok(out)
}

/// Checks that every value of `mask` is a class index below `num_classes` or
/// [`IGNORE_LABEL`]; `path` names the mask in the error.
///
/// # Errors
/// [`DataError::UnknownLabel`] naming the first offending pixel.
///
/// # Examples
/// ```
/// use std::path::Path;
/// use xray_data::{io::validate_mask, DataError, Mask};
/// // 2 × 2, row by row: the 3 at index 3 is pixel (x = 1, y = 1).
/// let mask = Mask::from_raw(2, 2, vec![0, 255, 2, 3]).ok_or("4 labels")?;
/// validate_mask(Path::new("m.png"), &mask, 4)?; // 255 is always allowed (ignore)
/// let e = validate_mask(Path::new("m.png"), &mask, 3).unwrap_err();
/// assert!(matches!(e, DataError::UnknownLabel { x: 1, y: 1, value: 3, num_classes: 3, .. }), "{e}");
/// assert!(e.to_string().contains("m.png"), "{e}");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn validate_mask(path: &Path, mask: &Mask, num_classes: u8) -> Result<()> {
    let w = mask.width().max(1) as usize;
    if let Some(i) = mask
        .as_raw()
        .iter()
        .position(|&v| v >= num_classes && v != IGNORE_LABEL)
    {
        return Err(DataError::UnknownLabel {
            path: path.to_path_buf(),
            x: (i % w) as u32,
            y: (i / w) as u32,
            value: mask.as_raw()[i],
            num_classes,
        });
    }
    Ok(())
}

/// Loads an index-PNG mask (8-bit grayscale) holding labels `0` (open beam), `1` (soft
/// tissue), `2` (bone) or `255` (ignore).
///
/// # Errors
/// As [`load_mask_with_classes`] with three classes.
///
/// # Examples
/// ```
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use xray_data::io::{load_mask, save_mask};
/// use xray_data::{DataError, Mask};
/// let dir = std::env::temp_dir().join(format!("xray-doc-load-mask-{}", std::process::id()));
/// std::fs::create_dir_all(&dir)?;
/// let path = dir.join("mask.png");
/// let mask = Mask::from_raw(3, 1, vec![0, 2, 255]).ok_or("3 labels")?;
/// save_mask(&path, &mask)?;
/// assert_eq!(load_mask(&path)?, mask);
/// // 7 is neither a class (0, 1, 2) nor 255: refused, naming the pixel
/// save_mask(&path, &Mask::from_raw(2, 1, vec![1, 7]).ok_or("2 labels")?)?;
/// let err = load_mask(&path).unwrap_err();
/// assert!(matches!(err, DataError::UnknownLabel { x: 1, y: 0, value: 7, .. }));
/// # std::fs::remove_dir_all(&dir).ok();
/// # Ok(())
/// # }
/// ```
pub fn load_mask(path: &Path) -> Result<Mask> {
    load_mask_with_classes(path, 3)
}

/// Loads an index-PNG mask whose labels are `0..num_classes` or `255` (ignore).
///
/// # Errors
/// [`DataError::Io`], [`DataError::Decode`] for a corrupt file, [`DataError::Unsupported`]
/// for anything but 8-bit grayscale (a 1-, 2- or 4-bit grayscale PNG included: decoding
/// scales its values to 0..255, so its labels would not survive; a palette PNG, as PASCAL
/// VOC and labelme save label masks, is named as such: its indices are not read as labels,
/// since a palette may as well encode colours), [`DataError::EmptyImage`],
/// [`DataError::UnknownLabel`].
///
/// # Examples
/// ```
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use xray_data::io::{load_mask_with_classes, save_mask};
/// use xray_data::{DataError, Mask};
/// let path = std::env::temp_dir().join(format!("xray-doc-mask5-{}.png", std::process::id()));
/// let mask = Mask::from_raw(3, 1, vec![0, 4, 255]).ok_or("3 labels")?;
/// save_mask(&path, &mask)?;
/// assert_eq!(load_mask_with_classes(&path, 5)?, mask); // label 4 is a class of 5
/// let e = load_mask_with_classes(&path, 3).unwrap_err(); // but not of 3
/// std::fs::remove_file(&path)?;
/// assert!(matches!(e, DataError::UnknownLabel { x: 1, y: 0, value: 4, .. }), "{e}");
/// # Ok(())
/// # }
/// ```
pub fn load_mask_with_classes(path: &Path, num_classes: u8) -> Result<Mask> {
    let bytes = super::read_image_file(path)?;
    // The decoder expands 1-, 2- and 4-bit grey to 8 bits by scaling (a 1-bit 1 becomes
    // 255, the ignore label; a 2-bit 1 becomes 85): the labels would be silently wrong.
    if let Some(depth) = low_bit_grey_png_depth(&bytes) {
        return Err(DataError::Unsupported {
            path: path.to_path_buf(),
            what: "mask bit depth",
            found: format!("{depth}-bit grayscale"),
            expected: "8-bit grayscale index PNG (a 1-, 2- or 4-bit one would load its labels \
                       scaled to 0..255)"
                .into(),
        });
    }
    // The decoder expands a palette to its colours: saying "Rgb8" would describe a file
    // the user does not have, and hide that the indices they saved are not read.
    if is_palette_png(&bytes) {
        return Err(DataError::Unsupported {
            path: path.to_path_buf(),
            what: "mask colour type",
            found: "a palette (indexed-colour) PNG, whose indices are not read as labels".into(),
            expected: "8-bit grayscale index PNG holding the labels themselves (0, 1, 2, 255): \
                       save the index image as grayscale (e.g. PIL mode \"L\")"
                .into(),
        });
    }
    let img = decode_png_any(path, &bytes)?;
    let mask = match img {
        image::DynamicImage::ImageLuma8(m) => m,
        other => {
            return Err(DataError::Unsupported {
                path: path.to_path_buf(),
                what: "mask colour type",
                found: format!("{:?}", other.color()),
                expected: "8-bit grayscale index PNG (use load_color_mask for colour labels)"
                    .into(),
            })
        }
    };
    validate_mask(path, &mask, num_classes)?;
    Ok(mask)
}

/// Loads a colour-coded XNet label PNG and decodes it with [`decode_color_mask`].
///
/// # Errors
/// [`DataError::Io`], [`DataError::Decode`], [`DataError::EmptyImage`], or
/// [`DataError::Unsupported`] for a grayscale file.
///
/// # Examples
/// ```
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use xray_data::io::{encode_color_mask, load_color_mask, save_mask};
/// use xray_data::{DataError, Mask};
/// let dir = std::env::temp_dir().join(format!("xray-doc-color-mask-{}", std::process::id()));
/// std::fs::create_dir_all(&dir)?;
/// let mask = Mask::from_raw(3, 1, vec![2, 1, 0]).ok_or("3 labels")?;
/// let rgb = dir.join("labels.png");
/// encode_color_mask(&mask)?.save(&rgb)?;
/// assert_eq!(load_color_mask(&rgb)?, mask);
/// // An index mask is not a colour label image.
/// let grey = dir.join("index.png");
/// save_mask(&grey, &mask)?;
/// assert!(matches!(load_color_mask(&grey), Err(DataError::Unsupported { .. })));
/// # std::fs::remove_dir_all(&dir).ok();
/// # Ok(())
/// # }
/// ```
pub fn load_color_mask(path: &Path) -> Result<Mask> {
    let bytes = super::read_image_file(path)?;
    let img = decode_png_any(path, &bytes)?;
    match img {
        image::DynamicImage::ImageRgb8(_) | image::DynamicImage::ImageRgba8(_) => {
            Ok(decode_color_mask(&img.to_rgb8()))
        }
        other => Err(DataError::Unsupported {
            path: path.to_path_buf(),
            what: "colour label image type",
            found: format!("{:?}", other.color()),
            expected: "8-bit RGB or RGBA".into(),
        }),
    }
}

/// The bit depth of a PNG whose header (`IHDR`) says grayscale or grayscale+alpha with
/// fewer than 8 bits per sample; `None` for any other file.
fn low_bit_grey_png_depth(bytes: &[u8]) -> Option<u8> {
    const SIGNATURE: &[u8] = b"\x89PNG\r\n\x1a\n";
    // Signature, IHDR length and type, width, height, then bit depth and colour type.
    let header = bytes.get(..26)?;
    if &header[..8] != SIGNATURE || &header[12..16] != b"IHDR" {
        return None;
    }
    let (depth, colour_type) = (header[24], header[25]);
    // Colour types 0 (grayscale) and 4 (grayscale+alpha); palettes decode to colour.
    (matches!(colour_type, 0 | 4) && depth < 8).then_some(depth)
}

/// Whether `bytes` are a PNG of colour type 3 (palette), read from its header.
fn is_palette_png(bytes: &[u8]) -> bool {
    const SIGNATURE: &[u8] = b"\x89PNG\r\n\x1a\n";
    bytes
        .get(..26)
        .is_some_and(|h| &h[..8] == SIGNATURE && &h[12..16] == b"IHDR" && h[25] == 3)
}

/// Decodes a mask image of any format `image` reads; a panic in the decoder is a decoding
/// error.
fn decode_png_any(path: &Path, bytes: &[u8]) -> Result<image::DynamicImage> {
    // Lossy compression moves values across label boundaries (a 1 next to 2s may come back
    // as 2) while every value stays a valid label: nothing after decoding could tell.
    if super::detect_format(path, bytes).is_ok_and(|f| f == super::ImageFormat::Jpeg) {
        return Err(DataError::Unsupported {
            path: path.to_path_buf(),
            what: "mask format",
            found: "JPEG, which is lossy: its labels are not the ones compressed".into(),
            expected: "a lossless 8-bit grayscale index PNG (or TIFF)".into(),
        });
    }
    super::quiet_panic::decode_guarded(path, "mask image", || decode_any_unguarded(path, bytes))
}

fn decode_any_unguarded(path: &Path, bytes: &[u8]) -> Result<image::DynamicImage> {
    use image::ImageDecoder;
    let reader = image::ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| DataError::io(path, e))?;
    let decoder = reader.into_decoder().map_err(|e| DataError::Decode {
        path: path.to_path_buf(),
        format: "mask image",
        message: e.to_string(),
    })?;
    let (w, h) = decoder.dimensions();
    super::check_size(path, w.into(), h.into(), super::DEFAULT_MAX_PIXELS)?;
    image::DynamicImage::from_decoder(decoder).map_err(|e| DataError::Decode {
        path: path.to_path_buf(),
        format: "mask image",
        message: e.to_string(),
    })
}

/// Writes a mask as an 8-bit grayscale index PNG (lossless), replacing the file atomically
/// as [`save_png16`](super::save_png16) does.
///
/// # Errors
/// [`DataError::EmptyImage`] or [`DataError::Io`].
///
/// # Examples
/// ```
/// use xray_data::io::{load_mask, save_mask};
/// use xray_data::{DataError, Mask};
/// let path = std::env::temp_dir().join(format!("xray-doc-save-mask-{}.png", std::process::id()));
/// let mask = Mask::from_raw(4, 1, vec![0, 1, 2, 255]).unwrap();
/// save_mask(&path, &mask)?;
/// assert_eq!(load_mask(&path)?, mask); // labels unchanged, ignore included
/// std::fs::remove_file(&path).map_err(|e| DataError::io(&path, e))?;
/// assert!(matches!(save_mask(&path, &Mask::new(0, 3)), Err(DataError::EmptyImage { .. })));
/// # Ok::<(), DataError>(())
/// ```
pub fn save_mask(path: &Path, mask: &Mask) -> Result<()> {
    super::check_size(path, mask.width().into(), mask.height().into(), u64::MAX)?;
    let mut bytes = std::io::Cursor::new(Vec::new());
    mask.write_to(&mut bytes, image::ImageFormat::Png)
        .map_err(|e| image_write_err(path, e))?;
    super::write_atomic(path, bytes.get_ref())
}
