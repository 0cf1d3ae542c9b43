//! DICOM radiographs (CR/DX) through dicom-rs.

use super::quiet_panic::catch_unwind_quietly;
use super::{
    check_finite, check_size, spacing::spacing_refusal, to_radiograph, LoadOptions, PixelSpacing,
    RefusedSpacing, SpacingCalibration, SpacingSource,
};
use crate::{DataError, Radiograph, Result};
use dicom_dictionary_std::tags;
use dicom_dictionary_std::uids::RLE_LOSSLESS;
use dicom_object::file::ReadPreamble;
use dicom_object::{DefaultDicomObject, OpenFileOptions};
use dicom_pixeldata::PixelDecoder;
use std::path::Path;

/// How the stored values of a DICOM image are meant to be displayed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Photometric {
    /// The smallest value displays white (film-like: already "larger = more X-rays").
    Monochrome1,
    /// The smallest value displays black (mirrored on loading).
    Monochrome2,
}

/// What the stored values are proportional to: DICOM `PixelIntensityRelationship`
/// (0028,1040), required in DX images, optional elsewhere (CR files rarely carry it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IntensityRelationship {
    /// `LIN`: linear in the X-ray intensity at the detector ("for processing" DX data).
    Linear,
    /// `LOG`: proportional to the logarithm of the intensity (most CR and processed data).
    Log,
    /// `DISP`: already mapped for display; neither linear nor logarithmic.
    Display,
}

impl IntensityRelationship {
    /// The relationship a `PixelIntensityRelationship` value names (`LIN`, `LOG`, `DISP`;
    /// surrounding spaces and case ignored), `None` for anything else.
    ///
    /// # Examples
    /// ```
    /// use xray_data::io::IntensityRelationship;
    /// assert_eq!(IntensityRelationship::from_dicom("LOG "), Some(IntensityRelationship::Log));
    /// assert_eq!(IntensityRelationship::from_dicom("lin"), Some(IntensityRelationship::Linear));
    /// assert_eq!(IntensityRelationship::from_dicom("SQRT"), None);
    /// ```
    pub fn from_dicom(value: &str) -> Option<Self> {
        match value.trim().to_ascii_uppercase().as_str() {
            "LIN" => Some(Self::Linear),
            "LOG" => Some(Self::Log),
            "DISP" => Some(Self::Display),
            _ => None,
        }
    }

    /// The DICOM value: `LIN`, `LOG` or `DISP`.
    ///
    /// # Examples
    /// ```
    /// use xray_data::io::IntensityRelationship;
    /// assert_eq!(IntensityRelationship::Log.as_dicom(), "LOG");
    /// ```
    pub fn as_dicom(self) -> &'static str {
        match self {
            Self::Linear => "LIN",
            Self::Log => "LOG",
            Self::Display => "DISP",
        }
    }
}

/// A DICOM radiograph in the crate's convention plus the metadata that explains it.
#[derive(Debug, Clone, PartialEq)]
pub struct DicomImage {
    /// The selected frame: rescaled values, larger = more X-rays.
    pub image: Radiograph,
    /// Photometric interpretation as stored in the file.
    pub photometric: Photometric,
    /// Whether the values were mirrored to reach the convention: a
    /// `PixelIntensityRelationshipSign` of −1 where the file gives the sign, else MONOCHROME2
    /// without an `INVERSE` presentation LUT shape, or MONOCHROME1 with one.
    pub inverted: bool,
    /// Bits stored per sample (8 to 16).
    pub bits_stored: u16,
    /// Bits allocated per sample (8 or 16).
    pub bits_allocated: u16,
    /// Whether samples are two's-complement signed (`PixelRepresentation` 1).
    pub signed: bool,
    /// Number of rows (image height).
    pub rows: u32,
    /// Number of columns (image width).
    pub columns: u32,
    /// Number of frames in the file.
    pub frames: u32,
    /// The frame that was decoded (0-based).
    pub frame: u32,
    /// `RescaleSlope` (1 when absent).
    pub rescale_slope: f64,
    /// `RescaleIntercept` (0 when absent).
    pub rescale_intercept: f64,
    /// Spacing between rows and between columns in mm: `PixelSpacing` (at the top level,
    /// else in a multi-frame file's functional groups for the decoded frame), or
    /// `ImagerPixelSpacing` (at the detector) when the former is absent or invalid; the
    /// values of [`DicomImage::pixel_spacing`], kept as a plain pair.
    pub pixel_spacing_mm: Option<[f64; 2]>,
    /// The same spacing as a checked [`PixelSpacing`] that says which attribute it came
    /// from ([`SpacingSource`]: at the detector, or as the file calibrated it).
    pub pixel_spacing: Option<PixelSpacing>,
    /// `ImagerPixelSpacing` (0018,1164) when valid: the pitch at the detector's front face,
    /// also where [`DicomImage::pixel_spacing`] is the file's `PixelSpacing` (which a DX
    /// file may have calibrated to a plane in the patient, [`DicomImage::spacing_calibration`]).
    /// Lengths measured with it are at the detector, magnified by
    /// [`DicomImage::magnification_factor`] against the patient.
    pub imager_pixel_spacing: Option<PixelSpacing>,
    /// The spacing attributes read for [`DicomImage::pixel_spacing`] that were present but
    /// held no usable distance, in the order they were read (`PixelSpacing` first): RG1's
    /// `0.000\0.000`, a single number, a pitch in micrometres. Empty when every attribute
    /// read was usable or absent. With a spacing found, they say why a later attribute was
    /// read; without one, why the image has none.
    pub refused_spacing: Vec<RefusedSpacing>,
    /// `PixelSpacingCalibrationType` (0028,0A02), when `GEOMETRY` or `FIDUCIAL`: the file's
    /// `PixelSpacing` is calibrated to a plane in the patient, so lengths measured with a
    /// [`DicomImage::pixel_spacing`] read from it are in that plane, not at the detector.
    pub spacing_calibration: Option<SpacingCalibration>,
    /// `EstimatedRadiographicMagnificationFactor` (0018,1114), source-to-detector over
    /// source-to-object distance, when a number from 1 to 10 (anything else is `None`: the
    /// object cannot be farther from the source than the detector). A length at the detector
    /// divided by it is the length in that object's plane; `GEOMETRY` calibration is
    /// `ImagerPixelSpacing` divided by it.
    pub magnification_factor: Option<f64>,
    /// Transfer syntax UID of the file.
    pub transfer_syntax: String,
    /// `Modality` (e.g. `CR`, `DX`), when present.
    pub modality: Option<String>,
    /// `BodyPartExamined`, when present.
    pub body_part: Option<String>,
    /// `PixelIntensityRelationship`, when present and one of `LIN`, `LOG`, `DISP`. Mirroring
    /// a MONOCHROME2 image to the crate's convention keeps a linear image linear (up to an
    /// offset) and a logarithmic one logarithmic.
    pub intensity_relationship: Option<IntensityRelationship>,
    /// `PixelIntensityRelationshipSign` (0028,1041), when present and +1 or −1: +1 when
    /// larger stored values mean more X-rays, −1 when they mean fewer. Where it is given it
    /// decides [`DicomImage::inverted`] (−1 mirrors), whatever the photometric
    /// interpretation and presentation LUT say about display.
    pub intensity_sign: Option<i8>,
    /// Pixels of the frame whose stored word had bits set outside its `BitsStored` bits
    /// (below `HighBit + 1 − BitsStored`, or above `HighBit`, where a signed value may
    /// only repeat its sign). They are masked off, as the standard says; but the bits are
    /// either overlay planes of an old file or a sign that `BitsStored` is wrong, in which
    /// case the image is garbled: a reader should say so (the `segment` example warns).
    pub pixels_beyond_bits_stored: u64,
}

/// Which bits of a stored word lie outside its `BitsStored` bits ([`StrayBits::holds`]).
struct StrayBits {
    /// The word's bits outside the stored ones.
    outside: u32,
    /// The bits above `HighBit`, where a signed value may repeat its sign.
    above: u32,
    /// `HighBit`.
    high_bit: u32,
    signed: bool,
}

impl StrayBits {
    fn new(bits_allocated: u32, bits_stored: u32, high_bit: u32, signed: bool) -> Self {
        let word = (1u32 << bits_allocated) - 1;
        let stored = ((1u32 << bits_stored) - 1) << (high_bit + 1 - bits_stored);
        StrayBits {
            outside: word & !stored,
            above: word & !((1u32 << (high_bit + 1)) - 1),
            high_bit,
            signed,
        }
    }

    /// Whether `word` has a bit set outside the stored bits, a signed value's copies of its
    /// sign above `HighBit` (two's complement over the whole word, as many writers store
    /// it) excepted.
    fn holds(&self, word: u32) -> bool {
        let stray = word & self.outside;
        if stray == 0 {
            return false;
        }
        if self.signed && (word >> self.high_bit) & 1 == 1 {
            return stray != self.above;
        }
        true
    }
}

/// The uncompressed little-endian transfer syntaxes (implicit VR, explicit VR, and explicit
/// VR deflated, which the parser has inflated by the time the pixel data is read): their
/// pixel data is the frames' words as they are, so [`native_frame`] can read a frame in place.
const NATIVE_LITTLE_ENDIAN: [&str; 3] = [
    "1.2.840.10008.1.2",
    "1.2.840.10008.1.2.1",
    "1.2.840.10008.1.2.1.99",
];

/// One frame of native pixel data, borrowed from the parsed object.
enum NativeFrame<'a> {
    /// Little-endian words of `BitsAllocated` bits (one byte or two per pixel).
    Bytes(&'a [u8]),
    /// 16-bit words the parser has already read as numbers.
    Words(&'a [u16]),
}

/// Frame `frame` of `pixels` pixels, read in place from native little-endian pixel data, or
/// `None` where the pixel-data decoder must do it (compressed or big-endian data, a value
/// of another kind, a frame past the data's end: the decoder then says what is wrong).
/// Going through the decoder copies the frame into a buffer of its own first, which for a
/// 2000 × 2000 image cost more than the conversion to `f32` (docs/performance.md, "Data I/O").
fn native_frame(
    obj: &DefaultDicomObject,
    pixels: usize,
    bits_allocated: u32,
    frame: u32,
) -> Option<NativeFrame<'_>> {
    use dicom_core::PrimitiveValue;
    let syntax = obj.meta().transfer_syntax().trim_end_matches('\0');
    if !NATIVE_LITTLE_ENDIAN.contains(&syntax) {
        return None;
    }
    let value = obj.element(tags::PIXEL_DATA).ok()?.value().primitive()?;
    let frame = usize::try_from(frame).ok()?;
    match (value, bits_allocated) {
        (PrimitiveValue::U8(bytes), 8 | 16) => {
            let len = pixels.checked_mul(bits_allocated as usize / 8)?;
            let start = frame.checked_mul(len)?;
            bytes
                .get(start..start.checked_add(len)?)
                .map(NativeFrame::Bytes)
        }
        (PrimitiveValue::U16(words), 16) => {
            let start = frame.checked_mul(pixels)?;
            words
                .get(start..start.checked_add(pixels)?)
                .map(NativeFrame::Words)
        }
        _ => None,
    }
}

/// Every stored word's value (after the bit shift, sign, inversion and rescale) and whether
/// it holds stray bits, worked out once for each of the `2^BitsAllocated` words, so that
/// converting a frame is one lookup a pixel.
struct WordTable {
    /// `value[word]`: the word's pixel value.
    value: Vec<f32>,
    /// `stray[word]`: [`StrayBits::holds`] for the word.
    stray: Vec<bool>,
}

impl WordTable {
    fn new(bits_allocated: u32, convert: impl Fn(u32) -> f32, beyond: &StrayBits) -> Self {
        let words = 0..1u32 << bits_allocated;
        WordTable {
            value: words.clone().map(convert).collect(),
            stray: words.map(|w| beyond.holds(w)).collect(),
        }
    }

    /// The first `pixels` little-endian words of `raw` (fewer if it is shorter: the
    /// image's size check then refuses the result), and how many hold stray bits.
    fn convert_bytes(&self, raw: &[u8], pixels: usize) -> (Vec<f32>, u64) {
        // 256 entries: one byte a word.
        if self.value.len() == 256 {
            self.convert(raw.iter().take(pixels).map(|&b| usize::from(b)))
        } else {
            self.convert(
                raw.chunks_exact(2)
                    .take(pixels)
                    .map(|c| usize::from(u16::from_le_bytes([c[0], c[1]]))),
            )
        }
    }

    /// 16-bit words already read as numbers, and how many hold stray bits.
    fn convert_words(&self, words: &[u16]) -> (Vec<f32>, u64) {
        self.convert(words.iter().map(|&w| usize::from(w)))
    }

    /// Two passes over the words, the lookup and the count of stray ones: apart, each
    /// loop is simple enough to run without a capacity check a pixel.
    fn convert(&self, words: impl ExactSizeIterator<Item = usize> + Clone) -> (Vec<f32>, u64) {
        let data = words.clone().map(|w| self.value[w]).collect();
        let stray = words.filter(|&w| self.stray[w]).count() as u64;
        (data, stray)
    }
}

/// Loads a DICOM file (with or without preamble) into a [`DicomImage`].
///
/// Supports MONOCHROME1/MONOCHROME2, BitsStored 8 to 16 (signed or unsigned), Rescale
/// Slope/Intercept, and the uncompressed, RLE lossless, JPEG (lossless), JPEG 2000 and
/// JPEG-LS transfer syntaxes; [`LoadOptions::frame`] selects the frame of a multi-frame file.
///
/// # Errors
/// A [`DataError`] naming `path`: [`DataError::Decode`] for a corrupt or truncated file or a
/// missing attribute (a value longer than the file, sequences nested more than 64 deep, or a
/// deflated data set inflating past 64 times its size and 64 MiB are refused before the
/// DICOM parser sees them, and a compressed frame whose own header disagrees with Columns ×
/// Rows before it is decoded: docs/data-format.md), [`DataError::Unsupported`] for bit
/// depths, sample counts or photometric interpretations outside the list above,
/// [`DataError::FrameOutOfRange`],
/// [`DataError::EmptyImage`], [`DataError::TooLarge`], [`DataError::NonFinite`].
///
/// # Examples
/// ```
/// use xray_data::io::{load_dicom, save_dicom, DicomWriteOptions, LoadOptions, Photometric};
/// use xray_data::{DataError, Radiograph};
/// let path = std::env::temp_dir().join(format!("xray-doc-load-dicom-{}.dcm", std::process::id()));
/// let img = Radiograph::from_fn(4, 3, |x, y| image::Luma([(1000 * x + y) as f32]));
/// // MONOCHROME2 stores the values mirrored (bone bright); loading mirrors them back.
/// let opts = DicomWriteOptions {
///     photometric: Photometric::Monochrome2,
///     pixel_spacing_mm: Some([0.2, 0.15]),
///     ..DicomWriteOptions::default()
/// };
/// save_dicom(&path, &img, &opts)?;
/// let d = load_dicom(&path, &LoadOptions::default())?;
/// assert_eq!(d.image, img);
/// assert!(d.inverted);
/// assert_eq!((d.columns, d.rows, d.frames, d.bits_stored), (4, 3, 1, 16));
/// assert_eq!(d.pixel_spacing_mm, Some([0.2, 0.15]));
/// // Written as the detector's pitch (`ImagerPixelSpacing`), and read back as such.
/// let spacing = d.pixel_spacing.expect("a spacing");
/// assert_eq!((spacing.row_mm(), spacing.column_mm()), (0.2, 0.15));
/// assert_eq!(spacing.source(), xray_data::io::SpacingSource::ImagerPixelSpacing);
/// assert_eq!(d.modality.as_deref(), Some("DX"));
/// // A frame the file does not have is refused.
/// let second = LoadOptions { frame: 1, ..LoadOptions::default() };
/// assert!(matches!(load_dicom(&path, &second), Err(DataError::FrameOutOfRange { .. })));
/// # std::fs::remove_file(&path).ok();
/// # Ok::<(), DataError>(())
/// ```
pub fn load_dicom(path: &Path, opts: &LoadOptions) -> Result<DicomImage> {
    let bytes = super::read_image_file(path)?;
    decode_dicom_at(path, &bytes, opts)
}

/// Decodes an in-memory DICOM file (with or without the 128-byte preamble); errors name the
/// source `<memory>`.
///
/// # Errors
/// As [`load_dicom`].
///
/// # Examples
/// ```
/// use xray_data::io::{decode_dicom, encode_dicom, DicomWriteOptions, LoadOptions};
/// use xray_data::Radiograph;
/// let img = Radiograph::from_fn(3, 3, |x, y| image::Luma([(x * 3 + y) as f32]));
/// let opts = DicomWriteOptions { bits_stored: 12, ..DicomWriteOptions::default() };
/// let bytes = encode_dicom(&img, &opts)?;
/// let d = decode_dicom(&bytes, &LoadOptions::default())?;
/// assert_eq!((d.image, d.bits_stored, d.inverted), (img, 12, false));
/// // Without the 128-byte preamble too.
/// assert!(decode_dicom(&bytes[128..], &LoadOptions::default()).is_ok());
/// // A truncated file is an error naming `<memory>`.
/// let err = decode_dicom(&bytes[..bytes.len() - 4], &LoadOptions::default()).unwrap_err();
/// assert!(err.to_string().starts_with("<memory>"), "{err}");
/// # Ok::<(), xray_data::DataError>(())
/// ```
pub fn decode_dicom(bytes: &[u8], opts: &LoadOptions) -> Result<DicomImage> {
    decode_dicom_at(&super::memory_path(), bytes, opts)
}

fn derr(path: &Path, message: impl Into<String>) -> DataError {
    DataError::Decode {
        path: path.to_path_buf(),
        format: "DICOM",
        message: message.into(),
    }
}

fn unsupported(path: &Path, what: &'static str, found: String, expected: &str) -> DataError {
    DataError::Unsupported {
        path: path.to_path_buf(),
        what,
        found,
        expected: expected.into(),
    }
}

/// `PixelIntensityRelationshipSign` when it is +1 or −1 (any other value, or none, is
/// `None`: the photometric interpretation then decides the orientation).
fn get_intensity_sign(obj: &DefaultDicomObject) -> Option<i8> {
    let e = obj
        .element_opt(tags::PIXEL_INTENSITY_RELATIONSHIP_SIGN)
        .ok()??;
    match e.to_int::<i32>().ok()? {
        1 => Some(1),
        -1 => Some(-1),
        _ => None,
    }
}

fn get_str(obj: &DefaultDicomObject, tag: dicom_core::Tag) -> Option<String> {
    let e = obj.element_opt(tag).ok()??;
    let s = e.to_str().ok()?;
    let s = s.trim_matches(|c: char| c.is_whitespace() || c == '\0');
    (!s.is_empty()).then(|| s.to_string())
}

fn get_int(
    path: &Path,
    obj: &DefaultDicomObject,
    tag: dicom_core::Tag,
    name: &str,
) -> Result<Option<i64>> {
    match obj.element_opt(tag) {
        Ok(Some(e)) => e
            .to_int::<i64>()
            .map(Some)
            .map_err(|err| derr(path, format!("attribute {name} is not an integer: {err}"))),
        _ => Ok(None),
    }
}

fn require_int(
    path: &Path,
    obj: &DefaultDicomObject,
    tag: dicom_core::Tag,
    name: &str,
) -> Result<i64> {
    get_int(path, obj, tag, name)?
        .ok_or_else(|| derr(path, format!("required attribute {name} is missing")))
}

fn get_float(
    path: &Path,
    obj: &DefaultDicomObject,
    tag: dicom_core::Tag,
    name: &str,
) -> Result<Option<f64>> {
    match obj.element_opt(tag) {
        Ok(Some(e)) => {
            let v = e
                .to_float64()
                .map_err(|err| derr(path, format!("attribute {name} is not a number: {err}")))?;
            if !v.is_finite() {
                return Err(derr(path, format!("attribute {name} is not finite ({v})")));
            }
            Ok(Some(v))
        }
        _ => Ok(None),
    }
}

/// Native (uncompressed) pixel data must hold exactly what the header describes: Rows ×
/// Columns × BitsAllocated / 8 bytes per frame, times NumberOfFrames, plus at most one
/// padding byte. The decoder reads only the first frame's worth, so a header that
/// understates the data (Rows 1 over a whole image, BitsAllocated 8 over 16-bit data) would
/// otherwise give a wrong image without a word. Encapsulated (compressed) data is checked by
/// [`check_codestream_header`] and its decoder.
fn check_native_length(
    path: &Path,
    obj: &DefaultDicomObject,
    rows: u32,
    cols: u32,
    bits_allocated: i64,
    frames: u32,
) -> Result<()> {
    use dicom_core::header::HasLength;
    let Ok(element) = obj.element(tags::PIXEL_DATA) else {
        return Err(derr(path, "required attribute PixelData is missing"));
    };
    let Some(value) = element.value().primitive() else {
        return Ok(());
    };
    let Some(found) = value.length().get() else {
        return Ok(());
    };
    let expected =
        u64::from(rows) * u64::from(cols) * (bits_allocated as u64 / 8) * u64::from(frames);
    let found = u64::from(found);
    if found == expected || found == expected + 1 {
        return Ok(());
    }
    Err(derr(
        path,
        format!(
            "the pixel data holds {found} bytes, but Rows × Columns × BitsAllocated/8 × \
             NumberOfFrames = {rows} × {cols} × {} × {frames} = {expected}: the header does not \
             describe this data{}",
            bits_allocated / 8,
            if found < expected {
                " (is the file truncated?)"
            } else {
                ""
            }
        ),
    ))
}

/// Compressed (encapsulated) pixel data: every fragment that starts a JPEG, JPEG-LS or
/// JPEG 2000 codestream must declare Rows × Columns and one component in its own header.
/// The decoders allocate for the codestream's size, which `max_pixels` never saw (a SIZ
/// marker changed to 60000 × 60000 cost 14 GB and 106 s before the decoder panicked); a
/// frame of another size was refused after decoding anyway.
fn check_codestream_header(
    path: &Path,
    obj: &DefaultDicomObject,
    rows: u32,
    cols: u32,
) -> Result<()> {
    let Ok(element) = obj.element(tags::PIXEL_DATA) else {
        return Ok(()); // check_native_length reports it
    };
    let Some(fragments) = element.value().fragments() else {
        return Ok(());
    };
    for (i, fragment) in fragments.iter().enumerate() {
        let Some(d) = super::codestream::declared_frame(fragment) else {
            continue;
        };
        if (d.width, d.height) != (cols, rows) {
            return Err(derr(
                path,
                format!(
                    "fragment {i} of the pixel data is a {}x{} image by its own header, but \
                     Columns x Rows say {cols}x{rows}: refused before decoding",
                    d.width, d.height
                ),
            ));
        }
        // SamplesPerPixel is 1 by now; more components would each cost a whole plane.
        if d.components != 1 {
            return Err(derr(
                path,
                format!(
                    "fragment {i} of the pixel data has {} components by its own header, but \
                     SamplesPerPixel is 1: refused before decoding",
                    d.components
                ),
            ));
        }
    }
    Ok(())
}

/// For RLE Lossless, the frame's segments must decode to exactly one byte plane each
/// (see `super::rle`); other transfer syntaxes pass.
fn check_rle_segments(
    path: &Path,
    obj: &DefaultDicomObject,
    rows: u32,
    cols: u32,
    bits_allocated: i64,
    frame: u32,
) -> Result<()> {
    if obj.meta().transfer_syntax().trim_end_matches('\0') != RLE_LOSSLESS {
        return Ok(());
    }
    let Some(fragments) = obj
        .element(tags::PIXEL_DATA)
        .ok()
        .and_then(|e| e.value().fragments())
    else {
        return Ok(()); // the decoder reports the missing fragments
    };
    let Some(fragment) = fragments.get(frame as usize) else {
        return Ok(());
    };
    let pixels = rows as usize * cols as usize;
    let segments = (bits_allocated / 8) as usize;
    super::rle::check_rle_frame(fragment, pixels, segments).map_err(|e| {
        derr(
            path,
            format!("frame {frame} of the pixel data is refused: {e}"),
        )
    })
}

/// The numbers of a DS (decimal string) element as devices write them: each value trimmed
/// of spaces, exponent notation allowed, and empty values at the end dropped (a trailing
/// backslash, `0.139\0.139\`, which some devices write, makes an empty last value that
/// would otherwise make the whole element unreadable). `None` when any other value is not a
/// number.
fn ds_values(e: &dicom_object::mem::InMemElement) -> Option<Vec<f64>> {
    if let Ok(v) = e.to_multi_float64() {
        return Some(v);
    }
    let strs = e.to_multi_str().ok()?;
    let mut values: Vec<&str> = strs
        .iter()
        .map(|s| s.trim_matches(|c: char| c.is_whitespace() || c == '\0'))
        .collect();
    while values.last() == Some(&"") {
        values.pop();
    }
    values.iter().map(|v| v.parse::<f64>().ok()).collect()
}

/// A spacing attribute of `item` when it holds two valid distances (at least two numbers,
/// the first two finite, above 0 and at most 10 mm); one that is present but holds no such
/// pair goes into `refused`, with the reason.
fn read_spacing(
    item: &dicom_object::InMemDicomObject,
    tag: dicom_core::Tag,
    source: SpacingSource,
    refused: &mut Vec<RefusedSpacing>,
) -> Option<PixelSpacing> {
    let element = item.element_opt(tag).ok()??;
    let reason = match ds_values(element) {
        None => Some("not a number".to_string()),
        Some(v) => match spacing_refusal(&v) {
            None => return PixelSpacing::new(v[0], v[1], source).ok(),
            reason => reason,
        },
    };
    if let Some(reason) = reason {
        let value = element
            .to_str()
            .map(|v| v.trim_end_matches(['\0', ' ']).to_string())
            .unwrap_or_else(|_| "(not text)".to_string());
        refused.push(RefusedSpacing {
            attribute: source,
            value,
            reason,
        });
    }
    None
}

/// `ImagerPixelSpacing` when valid, whatever `PixelSpacing` says.
fn get_imager_spacing(
    obj: &DefaultDicomObject,
    refused: &mut Vec<RefusedSpacing>,
) -> Option<PixelSpacing> {
    read_spacing(
        obj,
        tags::IMAGER_PIXEL_SPACING,
        SpacingSource::ImagerPixelSpacing,
        refused,
    )
}

/// `EstimatedRadiographicMagnificationFactor` when a number from 1 to 10.
fn get_magnification(obj: &DefaultDicomObject) -> Option<f64> {
    let v = ds_values(
        obj.element_opt(tags::ESTIMATED_RADIOGRAPHIC_MAGNIFICATION_FACTOR)
            .ok()??,
    )?;
    match v.as_slice() {
        [m] if (1.0..=10.0).contains(m) => Some(*m),
        _ => None,
    }
}

/// The pixel spacing of frame `frame`: `PixelSpacing`, else the `PixelSpacing` of a
/// multi-frame ("enhanced") file's functional groups (the frame's own
/// `PerFrameFunctionalGroupsSequence` item, else the `SharedFunctionalGroupsSequence`, each
/// through its `PixelMeasuresSequence`), else `ImagerPixelSpacing`. An invalid value (zero,
/// negative, not finite, a unit error, one number) is no spacing: the next place may still
/// hold a usable one.
fn get_spacing(
    obj: &DefaultDicomObject,
    frame: u32,
    refused: &mut Vec<RefusedSpacing>,
) -> Option<PixelSpacing> {
    /// Item `index` of the sequence `tag` in `item` (`None` when absent or shorter).
    fn nth(
        item: &dicom_object::InMemDicomObject,
        tag: dicom_core::Tag,
        index: usize,
    ) -> Option<&dicom_object::InMemDicomObject> {
        item.element_opt(tag).ok()??.items()?.get(index)
    }
    let functional_group = |groups, index, refused: &mut Vec<RefusedSpacing>| {
        let group = nth(obj, groups, index)?;
        let measures = nth(group, tags::PIXEL_MEASURES_SEQUENCE, 0)?;
        read_spacing(
            measures,
            tags::PIXEL_SPACING,
            SpacingSource::PixelSpacing,
            refused,
        )
    };
    if let Some(s) = read_spacing(
        obj,
        tags::PIXEL_SPACING,
        SpacingSource::PixelSpacing,
        refused,
    ) {
        return Some(s);
    }
    if let Ok(frame) = usize::try_from(frame) {
        if let Some(s) =
            functional_group(tags::PER_FRAME_FUNCTIONAL_GROUPS_SEQUENCE, frame, refused)
        {
            return Some(s);
        }
    }
    functional_group(tags::SHARED_FUNCTIONAL_GROUPS_SEQUENCE, 0, refused)
        .or_else(|| get_imager_spacing(obj, refused))
}

pub(crate) fn decode_dicom_at(path: &Path, bytes: &[u8], opts: &LoadOptions) -> Result<DicomImage> {
    if bytes.is_empty() {
        return Err(derr(path, "file is empty (0 bytes)"));
    }
    // Before the parser: it allocates a value's buffer from its declared length and nests
    // sequences by recursion, so a few corrupt bytes could cost gigabytes or overflow the
    // stack (an abort, which no catch_unwind stops).
    let cut = super::dicom_structure::walk_structure(bytes)
        .map_err(|m| derr(path, format!("not a readable DICOM file: {m}")))?;
    // A file cut inside an element header parses up to the cut; what is missing then is
    // missing because the file is short, which the bare "is missing" did not say.
    decode_walked(path, bytes, opts).map_err(|e| match (e, cut) {
        (
            DataError::Decode {
                path,
                format,
                message,
            },
            Some(at),
        ) if message.starts_with("required attribute") => DataError::Decode {
            path,
            format,
            message: format!(
                "{message}: the file ends inside an element header at byte {at} of {}, \
                     so it looks truncated",
                bytes.len()
            ),
        },
        (e, _) => e,
    })
}

/// [`decode_dicom_at`] after the structure walk.
fn decode_walked(path: &Path, bytes: &[u8], opts: &LoadOptions) -> Result<DicomImage> {
    let preamble = if bytes.len() >= 132 && &bytes[128..132] == b"DICM" {
        ReadPreamble::Always
    } else {
        ReadPreamble::Never
    };
    // A third-party decoder must not take the process down on hostile input; a panic in it
    // is reported as a decoding error, without the panic hook's report on stderr (fuzzing
    // still sees it: under `cfg(fuzzing)` libFuzzer's hook runs, and aborts).
    let parsed = catch_unwind_quietly(|| {
        OpenFileOptions::new()
            .read_preamble(preamble)
            .from_reader(bytes)
    })
    .map_err(|_| derr(path, "the DICOM parser panicked on this file"))?;
    let obj = parsed.map_err(|e| {
        // The parser's top-level message ("Could not read data set token") hides the cause;
        // give the chain, and say so plainly when the file simply ends too early.
        let mut message = e.to_string();
        let mut truncated = false;
        let mut source = std::error::Error::source(&e);
        while let Some(cause) = source {
            if cause
                .downcast_ref::<std::io::Error>()
                .is_some_and(|io| io.kind() == std::io::ErrorKind::UnexpectedEof)
            {
                truncated = true;
            }
            let text = cause.to_string();
            if !message.contains(&text) {
                message = format!("{message}: {text}");
            }
            source = cause.source();
        }
        let hint = if truncated {
            " (the file ends early: truncated?)"
        } else {
            ""
        };
        derr(path, format!("not a readable DICOM file: {message}{hint}"))
    })?;

    let rows = require_int(path, &obj, tags::ROWS, "Rows")?;
    let cols = require_int(path, &obj, tags::COLUMNS, "Columns")?;
    if rows < 0 || cols < 0 || rows > u32::MAX as i64 || cols > u32::MAX as i64 {
        return Err(derr(path, format!("invalid size {cols}x{rows}")));
    }
    check_size(path, cols as u64, rows as u64, opts.max_pixels)?;
    let (rows, cols) = (rows as u32, cols as u32);

    let frames = get_int(path, &obj, tags::NUMBER_OF_FRAMES, "NumberOfFrames")?.unwrap_or(1);
    if !(1..=i64::from(u32::MAX)).contains(&frames) {
        return Err(derr(path, format!("invalid NumberOfFrames {frames}")));
    }
    let frames = frames as u32;
    if opts.frame >= frames {
        return Err(DataError::FrameOutOfRange {
            path: path.to_path_buf(),
            frame: opts.frame,
            frames,
        });
    }

    let spp = get_int(path, &obj, tags::SAMPLES_PER_PIXEL, "SamplesPerPixel")?.unwrap_or(1);
    let photometric_str = get_str(&obj, tags::PHOTOMETRIC_INTERPRETATION).ok_or_else(|| {
        derr(
            path,
            "required attribute PhotometricInterpretation is missing",
        )
    })?;
    let photometric = match photometric_str.as_str() {
        "MONOCHROME1" => Photometric::Monochrome1,
        "MONOCHROME2" => Photometric::Monochrome2,
        other => {
            return Err(unsupported(
                path,
                "photometric interpretation",
                other.to_string(),
                "MONOCHROME1 or MONOCHROME2",
            ))
        }
    };
    if spp != 1 {
        return Err(unsupported(path, "samples per pixel", spp.to_string(), "1"));
    }
    let bits_allocated = require_int(path, &obj, tags::BITS_ALLOCATED, "BitsAllocated")?;
    if bits_allocated != 8 && bits_allocated != 16 {
        return Err(unsupported(
            path,
            "bits allocated",
            bits_allocated.to_string(),
            "8 or 16",
        ));
    }
    let bits_stored = require_int(path, &obj, tags::BITS_STORED, "BitsStored")?;
    if !(8..=bits_allocated).contains(&bits_stored) {
        return Err(unsupported(
            path,
            "bits stored",
            bits_stored.to_string(),
            &format!("8 to {bits_allocated} (BitsAllocated)"),
        ));
    }
    let high_bit = get_int(path, &obj, tags::HIGH_BIT, "HighBit")?.unwrap_or(bits_stored - 1);
    if high_bit < bits_stored - 1 || high_bit >= bits_allocated {
        return Err(unsupported(
            path,
            "high bit",
            high_bit.to_string(),
            &format!("{} to {}", bits_stored - 1, bits_allocated - 1),
        ));
    }
    let signed = match get_int(
        path,
        &obj,
        tags::PIXEL_REPRESENTATION,
        "PixelRepresentation",
    )?
    .unwrap_or(0)
    {
        0 => false,
        1 => true,
        other => {
            return Err(unsupported(
                path,
                "pixel representation",
                other.to_string(),
                "0 or 1",
            ))
        }
    };
    let slope = get_float(path, &obj, tags::RESCALE_SLOPE, "RescaleSlope")?.unwrap_or(1.0);
    let intercept =
        get_float(path, &obj, tags::RESCALE_INTERCEPT, "RescaleIntercept")?.unwrap_or(0.0);
    if slope == 0.0 {
        return Err(derr(path, "RescaleSlope is 0"));
    }
    let inverse_lut = get_str(&obj, tags::PRESENTATION_LUT_SHAPE).as_deref() == Some("INVERSE");
    let intensity_sign = get_intensity_sign(&obj);
    // The sign states how stored values follow the beam; photometric interpretation and
    // presentation LUT only say how to display them, so the sign decides where it is given.
    let inverted = match intensity_sign {
        Some(sign) => sign < 0,
        None => (photometric == Photometric::Monochrome2) != inverse_lut,
    };

    check_native_length(path, &obj, rows, cols, bits_allocated, frames)?;
    check_codestream_header(path, &obj, rows, cols)?;
    check_rle_segments(path, &obj, rows, cols, bits_allocated, opts.frame)?;
    let bits = bits_stored as u32;
    let shift = (high_bit + 1 - bits_stored) as u32;
    let mask: u32 = (1u32 << bits) - 1;
    let (lo, hi): (i64, i64) = if signed {
        (-(1i64 << (bits - 1)), (1i64 << (bits - 1)) - 1)
    } else {
        (0, (1i64 << bits) - 1)
    };
    let convert = |word: u32| -> f32 {
        let u = (word >> shift) & mask;
        let mut v = if signed && u & (1 << (bits - 1)) != 0 {
            i64::from(u) - (1i64 << bits)
        } else {
            i64::from(u)
        };
        if inverted {
            v = lo + hi - v;
        }
        (slope * v as f64 + intercept) as f32
    };
    let beyond = StrayBits::new(
        bits_allocated as u32,
        bits_stored as u32,
        high_bit as u32,
        signed,
    );
    let table = WordTable::new(bits_allocated as u32, convert, &beyond);
    let n = rows as usize * cols as usize;
    let (data, pixels_beyond_bits_stored) =
        match native_frame(&obj, n, bits_allocated as u32, opts.frame) {
            Some(NativeFrame::Bytes(raw)) => table.convert_bytes(raw, n),
            Some(NativeFrame::Words(words)) => table.convert_words(words),
            None => {
                let decoded = catch_unwind_quietly(|| obj.decode_pixel_data_frame(opts.frame))
                    .map_err(|_| derr(path, "the pixel-data decoder panicked on this file"))?
                    .map_err(|e| derr(path, format!("cannot decode pixel data: {e}")))?;
                if decoded.rows() != rows || decoded.columns() != cols {
                    return Err(derr(
                        path,
                        format!(
                            "decoded frame is {}x{}, header says {cols}x{rows}",
                            decoded.columns(),
                            decoded.rows()
                        ),
                    ));
                }
                let raw = decoded.frame_data(0).map_err(|e| {
                    derr(
                        path,
                        format!("pixel data too short for frame {}: {e}", opts.frame),
                    )
                })?;
                table.convert_bytes(raw, n)
            }
        };
    check_finite(path, cols, &data)?;
    let image = to_radiograph(path, "DICOM", cols, rows, data)?;
    let mut refused_spacing = Vec::new();
    let spacing = get_spacing(&obj, opts.frame, &mut refused_spacing);
    Ok(DicomImage {
        image,
        photometric,
        inverted,
        bits_stored: bits_stored as u16,
        bits_allocated: bits_allocated as u16,
        signed,
        rows,
        columns: cols,
        frames,
        frame: opts.frame,
        rescale_slope: slope,
        rescale_intercept: intercept,
        pixel_spacing_mm: spacing.map(|s| [s.row_mm(), s.column_mm()]),
        pixel_spacing: spacing,
        imager_pixel_spacing: get_imager_spacing(&obj, &mut Vec::new()),
        refused_spacing,
        spacing_calibration: get_str(&obj, tags::PIXEL_SPACING_CALIBRATION_TYPE)
            .and_then(|v| SpacingCalibration::from_dicom(&v)),
        magnification_factor: get_magnification(&obj),
        transfer_syntax: obj.meta().transfer_syntax().to_string(),
        modality: get_str(&obj, tags::MODALITY),
        body_part: get_str(&obj, tags::BODY_PART_EXAMINED),
        intensity_relationship: get_str(&obj, tags::PIXEL_INTENSITY_RELATIONSHIP)
            .and_then(|v| IntensityRelationship::from_dicom(&v)),
        intensity_sign,
        pixels_beyond_bits_stored,
    })
}

#[cfg(test)]
mod stray_bits_tests {
    use super::StrayBits;

    #[test]
    fn unsigned_words_with_any_bit_outside_the_stored_ones() {
        // 12 bits stored in 16, HighBit 11: bits 12-15 are outside.
        let b = StrayBits::new(16, 12, 11, false);
        assert!(!b.holds(0x0FFF));
        assert!(!b.holds(0));
        assert!(b.holds(0x1000));
        assert!(b.holds(0x8001));
        // 12 bits stored at bits 2-13 (HighBit 13): bits 0-1 and 14-15 are outside.
        let b = StrayBits::new(16, 12, 13, false);
        assert!(!b.holds(0x3FFC));
        assert!(b.holds(0x0001));
        assert!(b.holds(0x4000));
        // All 16 bits stored: nothing is outside.
        let b = StrayBits::new(16, 16, 15, false);
        assert!(!b.holds(0xFFFF));
        let b = StrayBits::new(8, 8, 7, false);
        assert!(!b.holds(0xFF));
    }

    #[test]
    fn a_signed_value_may_repeat_its_sign_above_the_high_bit() {
        let b = StrayBits::new(16, 12, 11, true);
        // -5 as 12 bits, with the sign extended over 16 bits, and without it.
        assert!(!b.holds(0xFFFB));
        assert!(!b.holds(0x0FFB));
        // +5 with ones above: not a sign extension.
        assert!(b.holds(0xF005));
        // A negative value with only some of the bits above set.
        assert!(b.holds(0x8FFB));
        // Below the stored bits nothing may be set, sign or not.
        let b = StrayBits::new(16, 12, 13, true);
        assert!(!b.holds(0xFFFC));
        assert!(b.holds(0xFFFD));
    }
}
