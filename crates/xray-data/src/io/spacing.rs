//! The physical size of a pixel, and where it was read from.
//!
//! Only DICOM files carry a spacing this crate trusts. A PNG's `pHYs` chunk and a TIFF's
//! resolution tags are left unread: they are written for printing (72 or 300 dots per inch
//! by default in most tools), not measured, and a detector's real pitch stated as
//! 72 dpi would turn a 43 cm plate into a 4 m one. A caller that knows the pitch of such an
//! image states it with [`SpacingSource::Stated`].

use serde::Serialize;

use crate::error::{DataError, Result};

/// Which attribute a [`PixelSpacing`] came from, which says what it measures.
///
/// In projection radiography an object between the X-ray source and the detector casts a
/// magnified shadow (source-to-detector over source-to-object distance, typically 1.05 to
/// 1.2 for a body part on the table): a length at the detector is longer than the same
/// length in the patient by that factor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SpacingSource {
    /// DICOM `PixelSpacing` (0028,0030), at the top level or, in a multi-frame
    /// ("enhanced") file, in the `PixelMeasuresSequence` (0028,9110) of the frame's
    /// functional groups (its own, else the shared ones). In a DX or CR image it is either
    /// the detector's pitch again or a spacing calibrated to some plane in the patient (the
    /// file's `PixelSpacingCalibrationType` says which); read as given.
    PixelSpacing,
    /// DICOM `ImagerPixelSpacing` (0018,1164), read when `PixelSpacing` is absent: the pitch
    /// at the detector's front face, where lengths in the patient appear magnified.
    ImagerPixelSpacing,
    /// Given by the caller (for example `segment --pixel-spacing`), for an image whose file
    /// carries none or whose file's value is known to be wrong.
    Stated,
}

/// How a file's `PixelSpacing` was calibrated to a plane in the patient: DICOM
/// `PixelSpacingCalibrationType` (0028,0A02), which DX files give where their
/// `PixelSpacing` is not simply the detector's pitch.
///
/// A spacing with this calibration measures lengths in that plane (a bone, an implant), not
/// at the detector; [`crate::io::DicomImage::imager_pixel_spacing`] still holds the
/// detector's pitch, the plane in which a collimated field is compared with the receptor.
///
/// # Examples
/// ```
/// use xray_data::io::SpacingCalibration;
/// assert_eq!(SpacingCalibration::from_dicom("GEOMETRY"), Some(SpacingCalibration::Geometry));
/// assert_eq!(SpacingCalibration::from_dicom("fiducial "), Some(SpacingCalibration::Fiducial));
/// assert_eq!(SpacingCalibration::from_dicom("NONE"), None);
/// assert_eq!(SpacingCalibration::Geometry.as_dicom(), "GEOMETRY");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SpacingCalibration {
    /// `GEOMETRY`: corrected for the geometric magnification, i.e. `ImagerPixelSpacing`
    /// divided by the `EstimatedRadiographicMagnificationFactor`
    /// ([`crate::io::DicomImage::magnification_factor`]): lengths in the plane that factor
    /// was estimated for (the table top or a typical depth).
    Geometry,
    /// `FIDUCIAL`: calibrated with an object of known size in the image (a marker): lengths
    /// in the marker's plane.
    Fiducial,
}

impl SpacingCalibration {
    /// The calibration a `PixelSpacingCalibrationType` value names (`GEOMETRY`,
    /// `FIDUCIAL`; surrounding spaces and case ignored), `None` for anything else.
    ///
    /// # Examples
    /// ```
    /// use xray_data::io::SpacingCalibration;
    /// assert_eq!(SpacingCalibration::from_dicom(" Geometry"), Some(SpacingCalibration::Geometry));
    /// assert_eq!(SpacingCalibration::from_dicom(""), None);
    /// ```
    pub fn from_dicom(value: &str) -> Option<Self> {
        match value
            .trim_matches(|c: char| c.is_whitespace() || c == '\0')
            .to_ascii_uppercase()
            .as_str()
        {
            "GEOMETRY" => Some(Self::Geometry),
            "FIDUCIAL" => Some(Self::Fiducial),
            _ => None,
        }
    }

    /// The DICOM value: `GEOMETRY` or `FIDUCIAL`.
    ///
    /// # Examples
    /// ```
    /// use xray_data::io::SpacingCalibration;
    /// assert_eq!(SpacingCalibration::Fiducial.as_dicom(), "FIDUCIAL");
    /// ```
    pub fn as_dicom(self) -> &'static str {
        match self {
            Self::Geometry => "GEOMETRY",
            Self::Fiducial => "FIDUCIAL",
        }
    }
}

/// A spacing attribute that a file holds but that is no usable distance, kept so that a
/// caller can say why an image has no [`PixelSpacing`] (or why a fallback was read instead)
/// rather than leave the user to guess: the NEMA chest sample RG1 carries `PixelSpacing`
/// `0.000\0.000`, which reads as numbers but measures nothing.
///
/// # Examples
/// ```
/// use xray_data::io::{RefusedSpacing, SpacingSource};
/// let r = RefusedSpacing {
///     attribute: SpacingSource::PixelSpacing,
///     value: "0.000\\0.000".into(),
///     reason: "0 mm is no distance".into(),
/// };
/// assert_eq!(r.to_string(), "PixelSpacing `0.000\\0.000` (0 mm is no distance)");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct RefusedSpacing {
    /// The attribute the value was read from ([`SpacingSource::PixelSpacing`] also for a
    /// multi-frame file's functional groups).
    pub attribute: SpacingSource,
    /// The value as the file stores it (a DS element's text, values joined by `\`).
    pub value: String,
    /// Why it is no spacing.
    pub reason: String,
}

impl std::fmt::Display for RefusedSpacing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let name = match self.attribute {
            SpacingSource::PixelSpacing => "PixelSpacing",
            SpacingSource::ImagerPixelSpacing => "ImagerPixelSpacing",
            SpacingSource::Stated => "stated spacing",
        };
        write!(f, "{name} `{}` ({})", self.value, self.reason)
    }
}

/// Why the numbers `values` read from a spacing attribute are no [`PixelSpacing`]
/// (`None` when they are one).
pub(crate) fn spacing_refusal(values: &[f64]) -> Option<String> {
    match values {
        [] => Some("no value".into()),
        [_] => Some("one number, where a row and a column spacing are two".into()),
        [r, c, ..] => {
            let r = (*r, *c);
            if r.0.is_finite() && r.1.is_finite() && (r.0 <= 0.0 || r.1 <= 0.0) {
                return Some(format!(
                    "{} mm is no distance",
                    if r.0 <= 0.0 { r.0 } else { r.1 }
                ));
            }
            PixelSpacing::new(r.0, r.1, SpacingSource::Stated)
                .err()
                .map(|e| e.to_string())
        }
    }
}

/// The distance between the centres of adjacent pixels, in millimetres, checked once to be
/// finite and positive (so that every length and area computed from it is too).
///
/// The order is DICOM's: the distance between **rows** (vertical, along `y`) first, then
/// between **columns** (horizontal, along `x`).
///
/// # Examples
/// ```
/// use xray_data::io::{PixelSpacing, SpacingSource};
/// // 0.2 mm between rows, 0.1 mm between columns.
/// let s = PixelSpacing::new(0.2, 0.1, SpacingSource::Stated)?;
/// assert_eq!((s.row_mm(), s.column_mm()), (0.2, 0.1));
/// // 10 px across (x) and 10 px down (y): 1 mm and 2 mm.
/// assert!((s.length_mm(10.0, 0.0) - 1.0).abs() < 1e-12);
/// assert!((s.length_mm(0.0, 10.0) - 2.0).abs() < 1e-12);
/// assert!((s.area_mm2(100.0) - 2.0).abs() < 1e-12);
/// // Zero, negative or non-finite spacings are refused.
/// assert!(PixelSpacing::new(0.0, 0.1, SpacingSource::Stated).is_err());
/// assert!(PixelSpacing::new(f64::NAN, 0.1, SpacingSource::Stated).is_err());
/// # Ok::<(), xray_data::DataError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct PixelSpacing {
    row_mm: f64,
    column_mm: f64,
    source: SpacingSource,
}

// Both spacings are finite (checked in `new`), so `==` is reflexive: the `Eq` that lets
// `ImageInfo` keep deriving it holds.
impl Eq for PixelSpacing {}

/// Spacings beyond this are refused as a unit error. The coarsest pitch of a real detector
/// is about 1 mm, and a 43 cm plate at 10 mm would be 43 pixels across; but a pitch written
/// in micrometres, as detector data sheets give it (139 for 0.139 mm), is 10 or more for
/// every radiography detector (dental sensors have about 18 µm), so this bound catches it.
/// (It was 1000 mm, which let every micrometre pitch through as a pixel 1000 times too large.)
const LARGEST_SPACING_MM: f64 = 10.0;

impl PixelSpacing {
    /// A spacing of `row_mm` between rows and `column_mm` between columns, read from
    /// `source`.
    ///
    /// # Errors
    /// [`DataError::InvalidParameter`] when either value is not finite, not positive, or
    /// above 10 mm (a pitch in micrometres taken for mm: 139 for 0.139 mm).
    ///
    /// # Examples
    /// ```
    /// use xray_data::io::{PixelSpacing, SpacingSource};
    /// let s = PixelSpacing::new(0.143, 0.143, SpacingSource::ImagerPixelSpacing)?;
    /// assert_eq!(s.source(), SpacingSource::ImagerPixelSpacing);
    /// let e = PixelSpacing::new(0.143, -1.0, SpacingSource::Stated).unwrap_err();
    /// assert!(e.to_string().contains("-1"), "{e}");
    /// // A data sheet's 139 µm pitch taken for mm is refused, the unit named.
    /// let e = PixelSpacing::new(139.0, 139.0, SpacingSource::Stated).unwrap_err();
    /// assert!(e.to_string().contains("micrometres"), "{e}");
    /// assert!(PixelSpacing::new(10.0, 10.0, SpacingSource::Stated).is_ok());
    /// # Ok::<(), xray_data::DataError>(())
    /// ```
    pub fn new(row_mm: f64, column_mm: f64, source: SpacingSource) -> Result<Self> {
        let valid = |v: f64| v.is_finite() && v > 0.0 && v <= LARGEST_SPACING_MM;
        if !(valid(row_mm) && valid(column_mm)) {
            return Err(DataError::InvalidParameter(format!(
                "pixel spacing must be two finite distances in mm above 0 and at most \
                 {LARGEST_SPACING_MM} (rows, columns), got [{row_mm}, {column_mm}]{}",
                if row_mm > LARGEST_SPACING_MM || column_mm > LARGEST_SPACING_MM {
                    " (a pitch in micrometres? 139 micrometres is 0.139 mm)"
                } else {
                    ""
                }
            )));
        }
        Ok(PixelSpacing {
            row_mm,
            column_mm,
            source,
        })
    }

    /// The distance between adjacent rows (vertical, along `y`), mm.
    ///
    /// # Examples
    /// ```
    /// use xray_data::io::{PixelSpacing, SpacingSource};
    /// let s = PixelSpacing::new(0.2, 0.1, SpacingSource::PixelSpacing)?;
    /// assert_eq!(s.row_mm(), 0.2);
    /// # Ok::<(), xray_data::DataError>(())
    /// ```
    pub fn row_mm(&self) -> f64 {
        self.row_mm
    }

    /// The distance between adjacent columns (horizontal, along `x`), mm.
    ///
    /// # Examples
    /// ```
    /// use xray_data::io::{PixelSpacing, SpacingSource};
    /// let s = PixelSpacing::new(0.2, 0.1, SpacingSource::PixelSpacing)?;
    /// assert_eq!(s.column_mm(), 0.1);
    /// # Ok::<(), xray_data::DataError>(())
    /// ```
    pub fn column_mm(&self) -> f64 {
        self.column_mm
    }

    /// Where the spacing was read from, which says what it measures ([`SpacingSource`]).
    ///
    /// # Examples
    /// ```
    /// use xray_data::io::{PixelSpacing, SpacingSource};
    /// let s = PixelSpacing::new(0.2, 0.2, SpacingSource::Stated)?;
    /// assert_eq!(s.source(), SpacingSource::Stated);
    /// # Ok::<(), xray_data::DataError>(())
    /// ```
    pub fn source(&self) -> SpacingSource {
        self.source
    }

    /// The same spacing, marked as coming from `source`.
    ///
    /// # Examples
    /// ```
    /// use xray_data::io::{PixelSpacing, SpacingSource};
    /// let s = PixelSpacing::new(0.2, 0.2, SpacingSource::PixelSpacing)?;
    /// assert_eq!(s.with_source(SpacingSource::Stated).source(), SpacingSource::Stated);
    /// # Ok::<(), xray_data::DataError>(())
    /// ```
    pub fn with_source(self, source: SpacingSource) -> Self {
        PixelSpacing { source, ..self }
    }

    /// The length in mm of a displacement of `dx` pixels across (columns) and `dy` pixels
    /// down (rows).
    ///
    /// # Examples
    /// ```
    /// use xray_data::io::{PixelSpacing, SpacingSource};
    /// let s = PixelSpacing::new(0.4, 0.3, SpacingSource::Stated)?;
    /// // 10 px across, 10 px down: a 3-4-5 triangle of 3 mm and 4 mm.
    /// assert!((s.length_mm(10.0, 10.0) - 5.0).abs() < 1e-12);
    /// # Ok::<(), xray_data::DataError>(())
    /// ```
    pub fn length_mm(&self, dx: f64, dy: f64) -> f64 {
        (dx * self.column_mm).hypot(dy * self.row_mm)
    }

    /// The area in mm² of a region of `pixels` pixels (any shape: each pixel covers
    /// row × column spacing).
    ///
    /// # Examples
    /// ```
    /// use xray_data::io::{PixelSpacing, SpacingSource};
    /// let s = PixelSpacing::new(0.2, 0.2, SpacingSource::Stated)?;
    /// // A 2000 × 2000 image at 0.2 mm: 400 × 400 mm.
    /// assert!((s.area_mm2(2000.0 * 2000.0) - 160_000.0).abs() < 1e-6);
    /// # Ok::<(), xray_data::DataError>(())
    /// ```
    pub fn area_mm2(&self, pixels: f64) -> f64 {
        pixels * self.row_mm * self.column_mm
    }
}
