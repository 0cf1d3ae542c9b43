//! The size of a pixel for boundary distances: row and column spacing kept apart, with the
//! unit they are in stated rather than guessed from the value.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::{readable_number, MetricsError, Result};

/// The unit of boundary distances (HD95, ASSD, Hausdorff) and of the [`Spacing`] they were
/// measured with. JSON: `"px"` or `"mm"`.
///
/// # Examples
/// ```
/// use xray_metrics::DistanceUnit;
/// assert_eq!(DistanceUnit::Millimetres.symbol(), "mm");
/// assert_eq!(DistanceUnit::Pixels.to_string(), "px");
/// assert_eq!(serde_json::to_string(&DistanceUnit::Millimetres).unwrap(), r#""mm""#);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum DistanceUnit {
    /// Pixels: the distance between adjacent pixel centres is 1 in both directions.
    #[serde(rename = "px")]
    Pixels,
    /// Millimetres, from a pixel spacing a file carries or a caller states.
    #[serde(rename = "mm")]
    Millimetres,
}

impl DistanceUnit {
    /// The unit's symbol as tables print it: `px` or `mm`.
    ///
    /// # Examples
    /// ```
    /// use xray_metrics::DistanceUnit;
    /// assert_eq!(DistanceUnit::Pixels.symbol(), "px");
    /// ```
    pub fn symbol(self) -> &'static str {
        match self {
            DistanceUnit::Pixels => "px",
            DistanceUnit::Millimetres => "mm",
        }
    }
}

impl fmt::Display for DistanceUnit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.symbol())
    }
}

/// The distance between the centres of adjacent pixels, in [`Spacing::unit`]: `row` between
/// rows (vertical, along `y`), `column` between columns (horizontal, along `x`), in DICOM's
/// order (`PixelSpacing` (0028,0030) gives the row spacing first). Two pixel centres `dr`
/// rows and `dc` columns apart are `sqrt((dr·row)² + (dc·column)²)` apart.
///
/// The fields are public; the functions that take a spacing check it
/// ([`Spacing::validate`]).
///
/// # Examples
/// ```
/// use xray_metrics::{DistanceUnit, Spacing};
/// let s = Spacing::mm(0.2, 0.1); // 0.2 mm between rows, 0.1 mm between columns
/// assert_eq!((s.row, s.column, s.unit), (0.2, 0.1, DistanceUnit::Millimetres));
/// assert!(!s.is_isotropic());
/// assert_eq!(Spacing::PIXEL.unit, DistanceUnit::Pixels);
/// // 1 mm is millimetres, not pixels: the unit is stated, not read from the value.
/// assert_eq!(Spacing::mm(1.0, 1.0).unit, DistanceUnit::Millimetres);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Spacing {
    /// Distance between adjacent rows (vertical, along `y`).
    pub row: f64,
    /// Distance between adjacent columns (horizontal, along `x`).
    pub column: f64,
    /// The unit of both.
    pub unit: DistanceUnit,
}

impl Spacing {
    /// Distances in pixels: 1 between rows and between columns.
    ///
    /// # Examples
    /// ```
    /// use xray_metrics::{surface_distances_with_spacing, DistanceUnit, Spacing};
    /// assert_eq!((Spacing::PIXEL.row, Spacing::PIXEL.column), (1.0, 1.0));
    /// assert_eq!(Spacing::PIXEL.unit, DistanceUnit::Pixels);
    /// // One column apart: 1 px.
    /// let d = surface_distances_with_spacing(&[1, 0], &[0, 1], 2, 1, 2, Spacing::PIXEL)?;
    /// assert_eq!(d[1].unwrap().hausdorff, 1.0);
    /// # Ok::<(), xray_metrics::MetricsError>(())
    /// ```
    pub const PIXEL: Spacing = Spacing {
        row: 1.0,
        column: 1.0,
        unit: DistanceUnit::Pixels,
    };

    /// `row_mm` between rows and `column_mm` between columns, in millimetres (DICOM order:
    /// rows first). Not checked here: see [`Spacing::validate`].
    ///
    /// # Examples
    /// ```
    /// use xray_metrics::Spacing;
    /// let s = Spacing::mm(0.143, 0.143);
    /// assert!(s.is_isotropic() && s.validate().is_ok());
    /// assert!(Spacing::mm(0.0, 0.1).validate().is_err());
    /// ```
    pub fn mm(row_mm: f64, column_mm: f64) -> Self {
        Spacing {
            row: row_mm,
            column: column_mm,
            unit: DistanceUnit::Millimetres,
        }
    }

    /// The same distance between rows and between columns.
    ///
    /// # Examples
    /// ```
    /// use xray_metrics::Spacing;
    /// assert!(Spacing::mm(0.2, 0.2).is_isotropic());
    /// assert!(!Spacing::mm(0.2, 0.1).is_isotropic());
    /// ```
    pub fn is_isotropic(&self) -> bool {
        self.row == self.column
    }

    /// Checks that both distances are finite and above 0, and that a spacing in pixels is
    /// 1 × 1 (a pixel is one pixel: another value there is a spacing in some other unit).
    ///
    /// # Errors
    /// [`MetricsError::InvalidConfig`] naming the values.
    ///
    /// # Examples
    /// ```
    /// use xray_metrics::{DistanceUnit, Spacing};
    /// assert!(Spacing::mm(0.2, 0.1).validate().is_ok());
    /// let e = Spacing::mm(f64::NAN, 0.1).validate().unwrap_err();
    /// assert!(e.to_string().contains("NaN"), "{e}");
    /// let odd = Spacing { row: 2.0, column: 2.0, unit: DistanceUnit::Pixels };
    /// assert!(odd.validate().is_err());
    /// ```
    pub fn validate(&self) -> Result<()> {
        let valid = |v: f64| v.is_finite() && v > 0.0;
        if !(valid(self.row) && valid(self.column)) {
            return Err(MetricsError::InvalidConfig(format!(
                "pixel spacing must be positive and finite (rows, columns), got [{}, {}] {}",
                readable_number(self.row),
                readable_number(self.column),
                self.unit
            )));
        }
        if self.unit == DistanceUnit::Pixels && (self.row, self.column) != (1.0, 1.0) {
            return Err(MetricsError::InvalidConfig(format!(
                "a spacing in pixels is 1 × 1, got [{}, {}] px; give a spacing in another \
                 unit as such (Spacing::mm)",
                readable_number(self.row),
                readable_number(self.column)
            )));
        }
        Ok(())
    }
}
