//! PNG, TIFF and JPEG radiographs.

use super::{check_finite, check_size, to_radiograph, LoadOptions};
use crate::{DataError, Radiograph, Result};
use std::io::Cursor;
use std::path::Path;

/// Rec. 709 luma weights, as `image`'s own conversion uses.
const LUMA: [f32; 3] = [0.2126, 0.7152, 0.0722];

fn decode_err(path: &Path, format: &'static str, e: impl std::fmt::Display) -> DataError {
    DataError::Decode {
        path: path.to_path_buf(),
        format,
        message: e.to_string(),
    }
}

fn check_frame(path: &Path, opts: &LoadOptions) -> Result<()> {
    if opts.frame != 0 {
        return Err(DataError::FrameOutOfRange {
            path: path.to_path_buf(),
            frame: opts.frame,
            frames: 1,
        });
    }
    Ok(())
}

/// Samples of one pixel type converted to the crate's plane, with optional luma conversion
/// and inversion within the type's range (`range` = `(lo, hi)`, `None` for floats):
/// `v' = lo + hi - v`, i.e. `hi - v` for unsigned samples and `-1 - v` for signed ones.
/// `hi` is also the alpha of an opaque pixel.
fn to_plane<T: Copy + Into<f64>>(
    path: &Path,
    samples: &[T],
    channels: usize,
    has_alpha: bool,
    range: Option<(f64, f64)>,
    opts: &LoadOptions,
    color_name: &str,
) -> Result<Vec<f32>> {
    if channels > 1
        && !opts.allow_rgb
        && !(channels == 2 && has_alpha && alpha_keeps_grey(samples, range.map(|r| r.1)))
    {
        return Err(DataError::ColorImage {
            path: path.to_path_buf(),
            found: color_name.to_string(),
        });
    }
    let colour = channels - usize::from(has_alpha);
    let mut out: Vec<f32> = if channels == 1 {
        samples.iter().map(|&v| v.into() as f32).collect()
    } else if colour == 1 {
        samples
            .chunks_exact(channels)
            .map(|p| p[0].into() as f32)
            .collect()
    } else {
        samples
            .chunks_exact(channels)
            .map(|p| {
                (LUMA[0] as f64 * p[0].into()
                    + LUMA[1] as f64 * p[1].into()
                    + LUMA[2] as f64 * p[2].into()) as f32
            })
            .collect()
    };
    if opts.invert {
        let Some((lo, hi)) = range else {
            return Err(DataError::Unsupported {
                path: path.to_path_buf(),
                what: "inversion",
                found: format!("floating-point samples ({color_name})"),
                expected: "integer samples (a float file has no range to mirror in)".into(),
            });
        };
        // `lo + hi` is exact (0 + max, or -1 for signed types), so unsigned samples get
        // `max - v` as before.
        let mirror = (lo + hi) as f32;
        out.iter_mut().for_each(|v| *v = mirror - *v);
    }
    Ok(out)
}

/// Whether a grayscale + alpha image's grey samples are the image, alpha adding nothing to
/// drop: every pixel opaque, or every transparent one holding the same grey value (what a
/// grayscale PNG with a `tRNS` chunk decodes to: one grey value marked transparent). Partly
/// transparent pixels, or transparent ones of several values, are left to
/// [`LoadOptions::allow_rgb`].
fn alpha_keeps_grey<T: Copy + Into<f64>>(samples: &[T], range_max: Option<f64>) -> bool {
    let opaque = range_max.unwrap_or(1.0);
    let mut transparent_value: Option<f64> = None;
    for p in samples.chunks_exact(2) {
        let (grey, alpha) = (p[0].into(), p[1].into());
        if alpha == opaque {
            continue;
        }
        if alpha != 0.0 || transparent_value.is_some_and(|v| v != grey) {
            return false;
        }
        transparent_value = Some(grey);
    }
    true
}

/// Decodes a PNG radiograph; a panic in the decoder is a decoding error.
pub(crate) fn decode_png(path: &Path, bytes: &[u8], opts: &LoadOptions) -> Result<Radiograph> {
    super::quiet_panic::decode_guarded(path, "PNG", || decode_png_unguarded(path, bytes, opts))
}

/// Decodes `bytes` as `format` with `image`, after checking the frame and the header's size
/// against the options and running `before_pixels` (a format's own check of the file).
fn decode_with_image(
    path: &Path,
    bytes: &[u8],
    format: image::ImageFormat,
    name: &'static str,
    opts: &LoadOptions,
    before_pixels: impl FnOnce() -> Result<()>,
) -> Result<(image::DynamicImage, u32, u32)> {
    use image::ImageDecoder;
    check_frame(path, opts)?;
    let reader = image::ImageReader::with_format(Cursor::new(bytes), format);
    let decoder = reader
        .into_decoder()
        .map_err(|e| decode_err(path, name, e))?;
    let (w, h) = decoder.dimensions();
    check_size(path, w.into(), h.into(), opts.max_pixels)?;
    before_pixels()?;
    let img = image::DynamicImage::from_decoder(decoder).map_err(|e| decode_err(path, name, e))?;
    Ok((img, w, h))
}

fn decode_png_unguarded(path: &Path, bytes: &[u8], opts: &LoadOptions) -> Result<Radiograph> {
    use image::DynamicImage;
    let (img, w, h) =
        decode_with_image(path, bytes, image::ImageFormat::Png, "PNG", opts, || Ok(()))?;
    let name = format!("{:?}", img.color());
    let data = match &img {
        DynamicImage::ImageLuma8(b) => {
            to_plane(path, b.as_raw(), 1, false, Some((0.0, 255.0)), opts, &name)?
        }
        DynamicImage::ImageLumaA8(b) => {
            to_plane(path, b.as_raw(), 2, true, Some((0.0, 255.0)), opts, &name)?
        }
        DynamicImage::ImageRgb8(b) => {
            to_plane(path, b.as_raw(), 3, false, Some((0.0, 255.0)), opts, &name)?
        }
        DynamicImage::ImageRgba8(b) => {
            to_plane(path, b.as_raw(), 4, true, Some((0.0, 255.0)), opts, &name)?
        }
        DynamicImage::ImageLuma16(b) => to_plane(
            path,
            b.as_raw(),
            1,
            false,
            Some((0.0, 65535.0)),
            opts,
            &name,
        )?,
        DynamicImage::ImageLumaA16(b) => {
            to_plane(path, b.as_raw(), 2, true, Some((0.0, 65535.0)), opts, &name)?
        }
        DynamicImage::ImageRgb16(b) => to_plane(
            path,
            b.as_raw(),
            3,
            false,
            Some((0.0, 65535.0)),
            opts,
            &name,
        )?,
        DynamicImage::ImageRgba16(b) => {
            to_plane(path, b.as_raw(), 4, true, Some((0.0, 65535.0)), opts, &name)?
        }
        DynamicImage::ImageRgb32F(b) => to_plane(path, b.as_raw(), 3, false, None, opts, &name)?,
        DynamicImage::ImageRgba32F(b) => to_plane(path, b.as_raw(), 4, true, None, opts, &name)?,
        other => {
            return Err(DataError::Unsupported {
                path: path.to_path_buf(),
                what: "PNG colour type",
                found: format!("{:?}", other.color()),
                expected: "8- or 16-bit grayscale".into(),
            })
        }
    };
    check_finite(path, w, &data)?;
    to_radiograph(path, "PNG", w, h, data)
}

/// Decodes a JPEG radiograph (8-bit baseline or progressive, grey or colour); a panic in
/// the decoder is a decoding error. JPEG is lossy: the values are the decoder's
/// reconstruction of what was compressed, good enough to segment an export from a viewer but
/// never a label mask ([`super::load_mask`] refuses one).
pub(crate) fn decode_jpeg(path: &Path, bytes: &[u8], opts: &LoadOptions) -> Result<Radiograph> {
    super::quiet_panic::decode_guarded(path, "JPEG", || decode_jpeg_unguarded(path, bytes, opts))
}

fn decode_jpeg_unguarded(path: &Path, bytes: &[u8], opts: &LoadOptions) -> Result<Radiograph> {
    use image::DynamicImage;
    // The decoder fills what a truncated file lacks with mid-grey and says nothing.
    let complete = || jpeg_end_of_image(bytes).map_err(|m| decode_err(path, "JPEG", m));
    let (img, w, h) = decode_with_image(
        path,
        bytes,
        image::ImageFormat::Jpeg,
        "JPEG",
        opts,
        complete,
    )?;
    let name = format!("{:?}", img.color());
    let range = Some((0.0, 255.0));
    let data = match &img {
        DynamicImage::ImageLuma8(b) => to_plane(path, b.as_raw(), 1, false, range, opts, &name)?,
        DynamicImage::ImageRgb8(b) => to_plane(path, b.as_raw(), 3, false, range, opts, &name)?,
        other => {
            return Err(DataError::Unsupported {
                path: path.to_path_buf(),
                what: "JPEG colour type",
                found: format!("{:?}", other.color()),
                expected: "8-bit grayscale (or colour with allow_rgb)".into(),
            })
        }
    };
    to_radiograph(path, "JPEG", w, h, data)
}

/// Checks that a JPEG's data reaches its end-of-image marker: walks the marker segments by
/// their lengths and, after each start of scan, the entropy-coded data to the next marker
/// (a `0xFF` followed by neither a stuffed `0x00`, a restart marker nor fill). Bytes where a
/// marker should be are skipped, as decoders skip them; only running out of data before the
/// end of image is an error, naming where the file ends.
fn jpeg_end_of_image(bytes: &[u8]) -> std::result::Result<(), String> {
    let truncated = || {
        format!(
            "the file ends at byte {} before its end-of-image marker: it is truncated (the \
             decoder would fill the missing part with grey)",
            bytes.len()
        )
    };
    let next_ff = |from: usize| {
        bytes
            .get(from..)
            .and_then(|rest| rest.iter().position(|&b| b == 0xFF))
            .map(|k| from + k)
    };
    // After the start-of-image marker.
    let mut i = 2;
    loop {
        let at = next_ff(i).ok_or_else(truncated)?;
        let marker = *bytes.get(at + 1).ok_or_else(truncated)?;
        i = at + 2;
        match marker {
            0xD9 => return Ok(()),
            // Fill bytes, stray restart markers and TEM carry no length.
            0xFF => i = at + 1,
            0x00 | 0x01 | 0xD0..=0xD7 => {}
            _ => {
                let len = bytes
                    .get(i..i + 2)
                    .map(|l| usize::from(u16::from_be_bytes([l[0], l[1]])))
                    .ok_or_else(truncated)?;
                i += len.max(2);
                if marker == 0xDA {
                    // Entropy-coded data up to the next real marker.
                    loop {
                        let ff = next_ff(i).ok_or_else(truncated)?;
                        match *bytes.get(ff + 1).ok_or_else(truncated)? {
                            0x00 | 0xD0..=0xD7 => i = ff + 2,
                            0xFF => i = ff + 1,
                            _ => {
                                i = ff;
                                break;
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Decodes a TIFF radiograph (page `opts.frame`); a panic in the decoder is a decoding error.
pub(crate) fn decode_tiff(path: &Path, bytes: &[u8], opts: &LoadOptions) -> Result<Radiograph> {
    super::quiet_panic::decode_guarded(path, "TIFF", || decode_tiff_unguarded(path, bytes, opts))
}

fn decode_tiff_unguarded(path: &Path, bytes: &[u8], opts: &LoadOptions) -> Result<Radiograph> {
    use tiff::decoder::{Decoder, DecodingResult, Limits};
    use tiff::ColorType;
    let err = |e: tiff::TiffError| decode_err(path, "TIFF", e);
    let mut limits = Limits::default();
    // The largest accepted image as 64-bit samples of four channels; the pixel limit itself
    // is checked on the header's dimensions below.
    limits.decoding_buffer_size = usize::try_from(opts.max_pixels.saturating_mul(32))
        .unwrap_or(usize::MAX)
        .max(1 << 20);
    let mut dec = Decoder::new(Cursor::new(bytes))
        .map_err(err)?
        .with_limits(limits);
    // A multi-page TIFF holds one image per page; `frame` picks the page (0-based).
    for page in 0..opts.frame {
        if !dec.more_images() {
            return Err(DataError::FrameOutOfRange {
                path: path.to_path_buf(),
                frame: opts.frame,
                frames: page + 1,
            });
        }
        dec.next_image().map_err(err)?;
    }
    let (w, h) = dec.dimensions().map_err(err)?;
    check_size(path, w.into(), h.into(), opts.max_pixels)?;
    let ct = dec.colortype().map_err(err)?;
    let (channels, alpha) = match ct {
        ColorType::Gray(b) if b >= 8 => (1, false),
        ColorType::GrayA(b) if b >= 8 => (2, true),
        ColorType::RGB(b) if b >= 8 => (3, false),
        ColorType::RGBA(b) if b >= 8 => (4, true),
        other => {
            return Err(DataError::Unsupported {
                path: path.to_path_buf(),
                what: "TIFF colour type",
                found: format!("{other:?}"),
                expected: "grayscale with 8, 16 or 32 (float) bits per sample".into(),
            })
        }
    };
    let name = format!("{ct:?}");
    let data = match dec.read_image().map_err(err)? {
        DecodingResult::U8(v) => {
            to_plane(path, &v, channels, alpha, Some((0.0, 255.0)), opts, &name)?
        }
        DecodingResult::U16(v) => {
            to_plane(path, &v, channels, alpha, Some((0.0, 65535.0)), opts, &name)?
        }
        DecodingResult::I8(v) => to_plane(
            path,
            &v,
            channels,
            alpha,
            Some((-128.0, 127.0)),
            opts,
            &name,
        )?,
        DecodingResult::I16(v) => to_plane(
            path,
            &v,
            channels,
            alpha,
            Some((-32768.0, 32767.0)),
            opts,
            &name,
        )?,
        DecodingResult::F32(v) => to_plane(path, &v, channels, alpha, None, opts, &name)?,
        DecodingResult::F64(v) => to_plane(path, &v, channels, alpha, None, opts, &name)?,
        _ => {
            return Err(DataError::Unsupported {
                path: path.to_path_buf(),
                what: "TIFF sample format",
                found: name,
                expected: "8/16-bit integer or 32/64-bit float samples".into(),
            })
        }
    };
    check_finite(path, w, &data)?;
    to_radiograph(path, "TIFF", w, h, data)
}

/// Writes a radiograph as a 16-bit grayscale PNG.
///
/// The file is replaced atomically (encoded in memory, written to a temporary sibling, renamed
/// into place): a write that fails part way (a full disk) leaves an earlier file whole.
///
/// Each value is rounded to the nearest integer (halves away from zero); values must lie in
/// `0.0..=65535.0` (after rounding, so `-0.4` and `65535.4` are accepted). Integer-valued
/// radiographs in that range therefore round-trip exactly through [`super::load_image`].
///
/// # Errors
/// [`DataError::ValueOutOfRange`] or [`DataError::NonFinite`] naming the first offending
/// pixel, [`DataError::EmptyImage`], or [`DataError::Io`].
///
/// # Examples
/// ```
/// use xray_data::io::save_png16;
/// let path = std::env::temp_dir().join(format!("xray-doc-png16-{}.png", std::process::id()));
/// let img = xray_data::Radiograph::from_pixel(2, 2, image::Luma([70000.0]));
/// assert!(save_png16(&path, &img).is_err()); // above 65535
/// ```
pub fn save_png16(path: &Path, img: &Radiograph) -> Result<()> {
    let (w, h) = img.dimensions();
    check_size(path, w.into(), h.into(), u64::MAX)?;
    let mut out = Vec::with_capacity(img.len());
    for (i, &v) in img.as_raw().iter().enumerate() {
        let (x, y) = ((i % w as usize) as u32, (i / w as usize) as u32);
        if !v.is_finite() {
            return Err(DataError::NonFinite {
                path: path.to_path_buf(),
                x,
                y,
                value: v,
            });
        }
        let r = v.round();
        if !(0.0..=65535.0).contains(&r) {
            return Err(DataError::ValueOutOfRange {
                path: path.to_path_buf(),
                x,
                y,
                value: v,
                min: 0.0,
                max: 65535.0,
            });
        }
        out.push(r as u16);
    }
    let buf = image::ImageBuffer::<image::Luma<u16>, Vec<u16>>::from_raw(w, h, out)
        .ok_or_else(|| DataError::InvalidParameter("radiograph buffer size mismatch".into()))?;
    let mut bytes = std::io::Cursor::new(Vec::new());
    buf.write_to(&mut bytes, image::ImageFormat::Png)
        .map_err(|e| image_write_err(path, e))?;
    super::write_atomic(path, bytes.get_ref())
}

pub(crate) fn image_write_err(path: &Path, e: image::ImageError) -> DataError {
    match e {
        image::ImageError::IoError(io) => DataError::io(path, io),
        other => DataError::InvalidParameter(format!("{}: {other}", path.display())),
    }
}

/// Writes a radiograph as an uncompressed 32-bit float grayscale TIFF (lossless for every
/// finite `f32`). Replaced atomically, as [`save_png16`] does.
///
/// # Errors
/// [`DataError::NonFinite`], [`DataError::EmptyImage`] or [`DataError::Io`].
///
/// # Examples
/// ```
/// use xray_data::io::{load_image, save_tiff_f32, LoadOptions};
/// use xray_data::{DataError, Radiograph};
/// let path = std::env::temp_dir().join(format!("xray-doc-tiff-f32-{}.tif", std::process::id()));
/// // Fractional and negative values survive exactly, unlike a 16-bit PNG.
/// let img = Radiograph::from_raw(3, 1, vec![-0.5, 0.1, 1e6]).unwrap();
/// save_tiff_f32(&path, &img)?;
/// assert_eq!(load_image(&path, &LoadOptions::default())?, img);
/// let nan = Radiograph::from_raw(1, 1, vec![f32::NAN]).unwrap();
/// assert!(matches!(save_tiff_f32(&path, &nan), Err(DataError::NonFinite { .. })));
/// # std::fs::remove_file(&path).ok();
/// # Ok::<(), DataError>(())
/// ```
pub fn save_tiff_f32(path: &Path, img: &Radiograph) -> Result<()> {
    use tiff::encoder::{colortype::Gray32Float, TiffEncoder};
    let (w, h) = img.dimensions();
    check_size(path, w.into(), h.into(), u64::MAX)?;
    check_finite(path, w, img.as_raw())?;
    let mut bytes = std::io::Cursor::new(Vec::new());
    let tiff_err = |e: tiff::TiffError| match e {
        tiff::TiffError::IoError(io) => DataError::io(path, io),
        other => DataError::InvalidParameter(format!("{}: {other}", path.display())),
    };
    TiffEncoder::new(&mut bytes)
        .map_err(tiff_err)?
        .write_image::<Gray32Float>(w, h, img.as_raw())
        .map_err(tiff_err)?;
    super::write_atomic(path, bytes.get_ref())
}
