//! Writing radiographs as uncompressed DICOM (for tests, benches and exchange with viewers).

use super::{check_finite, check_size, IntensityRelationship, Photometric};
use crate::{DataError, Radiograph, Result};
use dicom_core::{DataElement, PrimitiveValue, VR};
use dicom_dictionary_std::{tags, uids};
use dicom_object::meta::FileMetaTableBuilder;
use dicom_object::InMemDicomObject;
use std::path::Path;

/// Options of [`save_dicom`] / [`encode_dicom`].
#[derive(Debug, Clone, PartialEq)]
pub struct DicomWriteOptions {
    /// Photometric interpretation to store. With `Monochrome1` the values are stored as they
    /// are; with `Monochrome2` they are mirrored (`2^bits - 1 - v`) so that loading gives the
    /// radiograph back either way.
    pub photometric: Photometric,
    /// Bits stored per sample, 8 to 16 (16 bits are always allocated).
    pub bits_stored: u16,
    /// Pixel spacing (row, column) in mm to record as `ImagerPixelSpacing`, if known; both
    /// must be finite, positive and at most 10 mm (what [`super::PixelSpacing::new`]
    /// accepts, and the loader reads back as a spacing).
    pub pixel_spacing_mm: Option<[f64; 2]>,
    /// `PixelIntensityRelationship` to record, if known (with its sign: +1 for
    /// `Monochrome1`, whose stored values grow with the X-rays, −1 for the mirrored
    /// `Monochrome2`).
    pub intensity_relationship: Option<IntensityRelationship>,
}

impl Default for DicomWriteOptions {
    fn default() -> Self {
        DicomWriteOptions {
            photometric: Photometric::Monochrome1,
            bits_stored: 16,
            pixel_spacing_mm: None,
            intensity_relationship: None,
        }
    }
}

/// Encodes a radiograph as a DICOM Part 10 file (preamble, explicit VR little endian,
/// uncompressed, modality DX) that [`super::load_dicom`] reads back unchanged.
///
/// Values are rounded to the nearest integer and must lie in `0..=2^bits_stored - 1`.
///
/// # Errors
/// [`DataError::InvalidParameter`] for `bits_stored` outside 8..=16 or a
/// `pixel_spacing_mm` that [`super::PixelSpacing::new`] refuses (NaN, ±∞, zero, negative
/// or above 10 mm: it would be written as an invalid `DS` value, or read back as no
/// spacing),
/// [`DataError::ValueOutOfRange`], [`DataError::NonFinite`], [`DataError::EmptyImage`].
///
/// # Examples
/// ```
/// use xray_data::io::{encode_dicom, DicomWriteOptions};
/// use xray_data::{DataError, Radiograph};
/// let img = Radiograph::from_raw(2, 1, vec![0.0, 4095.4]).unwrap();
/// let twelve = DicomWriteOptions { bits_stored: 12, ..DicomWriteOptions::default() };
/// let bytes = encode_dicom(&img, &twelve)?;
/// assert_eq!(&bytes[128..132], b"DICM"); // preamble, then the Part 10 magic
/// // 4095.6 rounds to 4096, beyond 12 bits: refused, naming the pixel.
/// let over = Radiograph::from_raw(2, 1, vec![0.0, 4095.6]).unwrap();
/// let err = encode_dicom(&over, &twelve).unwrap_err();
/// assert!(matches!(err, DataError::ValueOutOfRange { x: 1, y: 0, .. }), "{err}");
/// let seven = DicomWriteOptions { bits_stored: 7, ..DicomWriteOptions::default() };
/// assert!(matches!(encode_dicom(&img, &seven), Err(DataError::InvalidParameter(_))));
/// # Ok::<(), DataError>(())
/// ```
pub fn encode_dicom(img: &Radiograph, opts: &DicomWriteOptions) -> Result<Vec<u8>> {
    encode_at(&super::memory_path(), img, opts)
}

/// Writes a radiograph to `path` as [`encode_dicom`] encodes it, replacing the file
/// atomically as [`save_png16`](super::save_png16) does.
///
/// # Errors
/// As [`encode_dicom`], plus [`DataError::Io`].
///
/// # Examples
/// ```
/// use xray_data::io::{load_image, save_dicom, DicomWriteOptions, LoadOptions};
/// use xray_data::{DataError, Radiograph};
/// let path = std::env::temp_dir().join(format!("xray-doc-save-dicom-{}.dcm", std::process::id()));
/// let img = Radiograph::from_fn(5, 2, |x, y| image::Luma([(x * 10000 + y) as f32]));
/// save_dicom(&path, &img, &DicomWriteOptions::default())?;
/// assert_eq!(load_image(&path, &LoadOptions::default())?, img);
/// std::fs::remove_file(&path).map_err(|e| DataError::io(&path, e))?;
/// // A negative value cannot be stored (unsigned samples); nothing is written.
/// let negative = Radiograph::from_raw(1, 1, vec![-3.0]).unwrap();
/// assert!(save_dicom(&path, &negative, &DicomWriteOptions::default()).is_err());
/// assert!(!path.exists());
/// # Ok::<(), DataError>(())
/// ```
pub fn save_dicom(path: &Path, img: &Radiograph, opts: &DicomWriteOptions) -> Result<()> {
    let bytes = encode_at(path, img, opts)?;
    super::write_atomic(path, &bytes)
}

fn encode_at(path: &Path, img: &Radiograph, opts: &DicomWriteOptions) -> Result<Vec<u8>> {
    let bits = opts.bits_stored;
    if !(8..=16).contains(&bits) {
        return Err(DataError::InvalidParameter(format!(
            "DICOM bits_stored must be 8..=16, got {bits}"
        )));
    }
    if let Some([row, column]) = opts.pixel_spacing_mm {
        // The loader's own check, so that whatever is written is read back as a spacing.
        super::PixelSpacing::new(row, column, super::SpacingSource::ImagerPixelSpacing).map_err(
            |e| {
                DataError::InvalidParameter(format!(
                    "{}: DICOM pixel_spacing_mm: {e}",
                    path.display()
                ))
            },
        )?;
    }
    let (w, h) = img.dimensions();
    check_size(path, w.into(), h.into(), u64::MAX)?;
    if w > u32::from(u16::MAX) || h > u32::from(u16::MAX) {
        return Err(DataError::InvalidParameter(format!(
            "{}: DICOM rows/columns are limited to 65535, image is {w}x{h}",
            path.display()
        )));
    }
    check_finite(path, w, img.as_raw())?;
    let hi = (1u32 << bits) - 1;
    let mut samples = Vec::with_capacity(img.len());
    for (i, &v) in img.as_raw().iter().enumerate() {
        let r = v.round();
        if !(0.0..=hi as f32).contains(&r) {
            return Err(DataError::ValueOutOfRange {
                path: path.to_path_buf(),
                x: (i % w as usize) as u32,
                y: (i / w as usize) as u32,
                value: v,
                min: 0.0,
                max: hi as f32,
            });
        }
        let s = r as u32;
        samples.push(match opts.photometric {
            Photometric::Monochrome1 => s,
            Photometric::Monochrome2 => hi - s,
        } as u16);
    }
    let photometric = match opts.photometric {
        Photometric::Monochrome1 => "MONOCHROME1",
        Photometric::Monochrome2 => "MONOCHROME2",
    };
    let sop_instance = "2.25.1";
    let mut obj = InMemDicomObject::from_element_iter([
        DataElement::new(
            tags::SOP_CLASS_UID,
            VR::UI,
            uids::DIGITAL_X_RAY_IMAGE_STORAGE_FOR_PRESENTATION,
        ),
        DataElement::new(tags::SOP_INSTANCE_UID, VR::UI, sop_instance),
        DataElement::new(tags::MODALITY, VR::CS, "DX"),
        DataElement::new(tags::SAMPLES_PER_PIXEL, VR::US, PrimitiveValue::from(1u16)),
        DataElement::new(tags::PHOTOMETRIC_INTERPRETATION, VR::CS, photometric),
        DataElement::new(tags::ROWS, VR::US, PrimitiveValue::from(h as u16)),
        DataElement::new(tags::COLUMNS, VR::US, PrimitiveValue::from(w as u16)),
        DataElement::new(tags::BITS_ALLOCATED, VR::US, PrimitiveValue::from(16u16)),
        DataElement::new(tags::BITS_STORED, VR::US, PrimitiveValue::from(bits)),
        DataElement::new(tags::HIGH_BIT, VR::US, PrimitiveValue::from(bits - 1)),
        DataElement::new(
            tags::PIXEL_REPRESENTATION,
            VR::US,
            PrimitiveValue::from(0u16),
        ),
        DataElement::new(
            tags::PIXEL_DATA,
            VR::OW,
            PrimitiveValue::U16(samples.into()),
        ),
    ]);
    if let Some([r, c]) = opts.pixel_spacing_mm {
        obj.put(DataElement::new(
            tags::IMAGER_PIXEL_SPACING,
            VR::DS,
            format!("{}\\{}", decimal_string(r), decimal_string(c)),
        ));
    }
    if let Some(rel) = opts.intensity_relationship {
        let sign: i16 = match opts.photometric {
            Photometric::Monochrome1 => 1,
            Photometric::Monochrome2 => -1,
        };
        obj.put(DataElement::new(
            tags::PIXEL_INTENSITY_RELATIONSHIP,
            VR::CS,
            rel.as_dicom(),
        ));
        obj.put(DataElement::new(
            tags::PIXEL_INTENSITY_RELATIONSHIP_SIGN,
            VR::SS,
            PrimitiveValue::from(sign),
        ));
    }
    let file = obj
        .with_meta(FileMetaTableBuilder::new().transfer_syntax(uids::EXPLICIT_VR_LITTLE_ENDIAN))
        .map_err(|e| DataError::InvalidParameter(format!("{}: {e}", path.display())))?;
    let mut out = Vec::new();
    file.write_all(&mut out)
        .map_err(|e| DataError::InvalidParameter(format!("{}: {e}", path.display())))?;
    Ok(out)
}

/// `v` as a DICOM decimal string (DS): at most 16 characters, as the standard allows. Rust
/// writes the shortest text that reads back as the same `f64`, which for a computed spacing
/// (430 mm over 3008 pixels: `0.14295212765957446`) is 19 characters, an invalid value that
/// strict readers refuse; such a value is rounded to the most digits that fit (12 or more
/// significant ones for a spacing of at least 0.001 mm, 10 in exponent notation below).
fn decimal_string(v: f64) -> String {
    const MAX_LEN: usize = 16;
    let plain = v.to_string();
    if plain.len() <= MAX_LEN {
        return plain;
    }
    let text = if v.abs() >= 1e-3 {
        // Fixed notation: the integer part, the point, and as many decimals as fit.
        let integer = format!("{:.0}", v.abs().trunc()).len() + usize::from(v < 0.0);
        let decimals = MAX_LEN.saturating_sub(integer + 1);
        let fixed = format!("{v:.decimals$}");
        let fixed = fixed.trim_end_matches('0');
        fixed.strip_suffix('.').unwrap_or(fixed).to_string()
    } else {
        // Exponent notation, e.g. 1.234567891e-5: ten decimals leave room for the sign
        // and a three-digit exponent.
        format!("{v:.9e}")
    };
    if text.len() <= MAX_LEN {
        text
    } else {
        plain
    }
}

#[cfg(test)]
mod tests {
    use super::decimal_string;

    /// Every spacing the writer accepts fits a DS value's 16 characters and reads back
    /// within the digits kept.
    #[test]
    fn decimal_strings_fit_sixteen_characters() {
        for v in [
            0.2,
            0.1 + 0.2,
            430.0 / 3008.0,
            10.0,
            10.0 - 1e-15,
            9.999_999_999_999_98,
            1e-3,
            1.0 / 3.0 * 1e-3,
            0.000_123_456_789_012_345,
            1e-300,
            f64::MIN_POSITIVE,
            5e-324,
        ] {
            let s = decimal_string(v);
            assert!(s.len() <= 16, "{v}: {s:?}");
            let back: f64 = s.parse().unwrap();
            assert!((back - v).abs() <= v * 1e-9, "{v}: {s:?} reads {back}");
        }
        assert_eq!(decimal_string(0.2), "0.2");
        assert_eq!(decimal_string(430.0 / 3008.0), "0.14295212765957");
        assert_eq!(decimal_string(0.1 + 0.2), "0.3");
    }
}
