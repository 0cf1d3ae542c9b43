//! Geometric transforms: flips, affine (translate, rotate, shear, scale) and random crop
//! resized back to the input size.

use rand::Rng;
use serde::{Deserialize, Serialize};

use super::warp::{remap, replace_planes, Border, Interpolation, AFFINE_TILE_COLS};
use super::{check_range, check_same_size, uniform, Transform};
use crate::error::{check_finite, readable_number, readable_values};
use crate::{Mask, Radiograph, Result};

/// Mirror left-right. Exact (a permutation of pixels).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct HorizontalFlip;

/// Mirror top-bottom. Exact (a permutation of pixels).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct VerticalFlip;

fn flip_rows<T: Copy>(data: &mut [T], width: usize) {
    for row in data.chunks_exact_mut(width) {
        row.reverse();
    }
}

fn flip_cols<T: Copy>(data: &mut [T], width: usize, height: usize) {
    for y in 0..height / 2 {
        let (top, bottom) = data.split_at_mut((height - 1 - y) * width);
        top[y * width..(y + 1) * width].swap_with_slice(&mut bottom[..width]);
    }
}

impl Transform for HorizontalFlip {
    fn apply(&self, image: &mut Radiograph, mask: &mut Mask, _rng: &mut dyn Rng) -> Result<()> {
        check_same_size(image, mask)?;
        let w = image.width() as usize;
        if w == 0 {
            return Ok(());
        }
        flip_rows(image, w);
        flip_rows(mask, w);
        Ok(())
    }
}

impl Transform for VerticalFlip {
    fn apply(&self, image: &mut Radiograph, mask: &mut Mask, _rng: &mut dyn Rng) -> Result<()> {
        check_same_size(image, mask)?;
        let (w, h) = (image.width() as usize, image.height() as usize);
        if w == 0 {
            return Ok(());
        }
        flip_cols(image, w, h);
        flip_cols(mask, w, h);
        Ok(())
    }
}

/// Random affine map about the image centre: rotation, shear along x, isotropic scale and
/// translation, each drawn uniformly from its range.
///
/// A positive angle rotates counter-clockwise as displayed (y pointing down). Angles that
/// are multiples of 90° use exact sines and cosines, so a 90° rotation of a square image is
/// the exact pixel rotation.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Affine {
    /// Rotation range in degrees.
    pub rotate_deg: [f32; 2],
    /// Shear range in degrees (x shear).
    pub shear_deg: [f32; 2],
    /// Translation range as a fraction of width (x) and height (y), drawn independently.
    pub translate_frac: [f32; 2],
    /// Scale range (1 = unchanged).
    pub scale: [f32; 2],
    /// Image interpolation (the mask is always nearest).
    pub interpolation: Interpolation,
    /// What is read outside the source.
    pub border: Border,
}

impl Default for Affine {
    /// XNet's on-the-fly ranges (JosephPB/XNet `TrainingClass.py`): translate ±1 %, rotate
    /// ±15°, shear ±2°, bilinear, reflect.
    fn default() -> Self {
        Self {
            rotate_deg: [-15.0, 15.0],
            shear_deg: [-2.0, 2.0],
            translate_frac: [-0.01, 0.01],
            scale: [1.0, 1.0],
            interpolation: Interpolation::Bilinear,
            border: Border::Reflect,
        }
    }
}

/// Sine and cosine of an angle in degrees, exact at multiples of 90°.
fn sin_cos_deg(deg: f64) -> (f64, f64) {
    let q = deg / 90.0;
    if (q - q.round()).abs() < 1e-12 {
        match (q.round() as i64).rem_euclid(4) {
            0 => (0.0, 1.0),
            1 => (1.0, 0.0),
            2 => (0.0, -1.0),
            _ => (-1.0, 0.0),
        }
    } else {
        deg.to_radians().sin_cos()
    }
}

impl Affine {
    /// Check the ranges (finite, scale positive, shear within ±60°) and that a constant
    /// border's value is finite.
    ///
    /// # Errors
    /// [`crate::DataError::InvalidParameter`] naming the first bad setting and its values.
    ///
    /// # Examples
    /// ```
    /// use xray_data::augment::{Affine, Border};
    /// assert!(Affine::default().validate().is_ok());
    /// let err = Affine { shear_deg: [-75.0, 0.0], ..Affine::default() }.validate().unwrap_err();
    /// assert!(err.to_string().contains("affine shear_deg range [-75, 0]"), "{err}");
    /// assert!(Affine { scale: [0.0, 1.0], ..Affine::default() }.validate().is_err());
    /// let nan_fill = Border::Constant { value: f32::NAN, mask_value: 255 };
    /// let err = Affine { border: nan_fill, ..Affine::default() }.validate().unwrap_err();
    /// assert!(err.to_string().contains("affine border value"), "{err}");
    /// ```
    pub fn validate(&self) -> Result<()> {
        check_range("affine rotate_deg", self.rotate_deg, -360.0, 360.0)?;
        check_range("affine shear_deg", self.shear_deg, -60.0, 60.0)?;
        check_range("affine translate_frac", self.translate_frac, -1.0, 1.0)?;
        check_range("affine scale", self.scale, 1e-3, 1e3)?;
        self.border.validate("affine")
    }

    /// Apply one fixed map (angles in degrees, translation in pixels). Used by
    /// [`Transform::apply`] after drawing the parameters, and by callers wanting a known
    /// geometry. The parameters are not bound to the ranges of `self`, only its
    /// interpolation and border are used.
    ///
    /// # Errors
    /// [`crate::DataError::InvalidParameter`], image and mask left unchanged, when their
    /// sizes differ, a parameter is NaN or infinite (a NaN angle or scale, or an infinite
    /// translation, would otherwise move every pixel outside the source and blank the
    /// sample), the border's constant value is not finite, or the map is singular
    /// (`scale` 0 or so close to it that the determinant is below 1e-12).
    ///
    /// # Examples
    /// ```
    /// use xray_data::augment::{Affine, Border};
    /// use xray_data::{Mask, Radiograph};
    /// let image = Radiograph::from_raw(3, 3, (1..=9).map(|v| v as f32).collect()).unwrap();
    /// let mask = Mask::from_raw(3, 3, vec![0, 0, 1, 0, 1, 2, 1, 2, 2]).unwrap();
    /// // A quarter turn counter-clockwise (as displayed) is exact on a square image.
    /// let (mut i, mut m) = (image.clone(), mask.clone());
    /// Affine::default().apply_fixed(&mut i, &mut m, 90.0, 0.0, 1.0, [0.0, 0.0])?;
    /// assert_eq!(i.as_raw(), &[3.0, 6.0, 9.0, 2.0, 5.0, 8.0, 1.0, 4.0, 7.0]);
    /// assert_eq!(m.as_raw(), &[1, 2, 2, 0, 1, 2, 0, 0, 1]);
    /// // One pixel to the right: the uncovered column reads the constant border.
    /// let fill = Affine {
    ///     border: Border::Constant { value: -1.0, mask_value: 255 },
    ///     ..Affine::default()
    /// };
    /// let (mut i, mut m) = (image.clone(), mask.clone());
    /// fill.apply_fixed(&mut i, &mut m, 0.0, 0.0, 1.0, [1.0, 0.0])?;
    /// assert_eq!(i.as_raw(), &[-1.0, 1.0, 2.0, -1.0, 4.0, 5.0, -1.0, 7.0, 8.0]);
    /// assert_eq!(m.as_raw(), &[255, 0, 0, 255, 0, 1, 255, 1, 2]);
    /// // A singular map is refused, leaving both unchanged.
    /// let (mut i, mut m) = (image.clone(), mask.clone());
    /// assert!(fill.apply_fixed(&mut i, &mut m, 0.0, 0.0, 0.0, [0.0, 0.0]).is_err());
    /// assert_eq!((i, m), (image, mask));
    /// # Ok::<(), xray_data::DataError>(())
    /// ```
    pub fn apply_fixed(
        &self,
        image: &mut Radiograph,
        mask: &mut Mask,
        rotate_deg: f32,
        shear_deg: f32,
        scale: f32,
        translate_px: [f32; 2],
    ) -> Result<()> {
        check_same_size(image, mask)?;
        check_finite(
            "affine ",
            &[
                ("rotate_deg", &[rotate_deg]),
                ("shear_deg", &[shear_deg]),
                ("scale", &[scale]),
                ("translate_px", &translate_px),
            ],
        )?;
        self.border.validate("affine")?;
        let Some(inv) = InverseMap::new(
            image.width(),
            image.height(),
            rotate_deg,
            shear_deg,
            scale,
            translate_px,
        )?
        else {
            return Ok(());
        };
        let (img, m) = remap(
            image,
            Some(mask),
            self.interpolation,
            self.border,
            AFFINE_TILE_COLS,
            |y, xstart, xs, ys| inv.coords(y, xstart, xs, ys),
        );
        replace_planes(image, Some(mask), img, m);
        Ok(())
    }
}

/// The inverse of an affine map about the image centre: source = `A⁻¹ (out − c − t) + c`.
struct InverseMap {
    i11: f64,
    i12: f64,
    i21: f64,
    i22: f64,
    cx: f64,
    cy: f64,
    tx: f64,
    ty: f64,
}

impl InverseMap {
    /// `None` for the identity (nothing to resample).
    fn new(
        width: u32,
        height: u32,
        rotate_deg: f32,
        shear_deg: f32,
        scale: f32,
        translate_px: [f32; 2],
    ) -> Result<Option<Self>> {
        let (w, h) = (width as f64, height as f64);
        let (cx, cy) = ((w - 1.0) / 2.0, (h - 1.0) / 2.0);
        let (s, c) = sin_cos_deg(rotate_deg as f64);
        let sh = (shear_deg as f64).to_radians().tan();
        let k = scale as f64;
        // Forward map of centred coordinates: A = R · Shear · Scale, with the displayed
        // counter-clockwise rotation R = [[c, s], [-s, c]] (y down).
        let a11 = k * c;
        let a12 = k * (c * sh + s);
        let a21 = -k * s;
        let a22 = k * (-s * sh + c);
        let det = a11 * a22 - a12 * a21;
        if det.abs() < 1e-12 {
            return Err(crate::DataError::InvalidParameter(format!(
                "affine map is singular (rotate {}, shear {}, scale {})",
                readable_number(rotate_deg),
                readable_number(shear_deg),
                readable_number(scale)
            )));
        }
        let (i11, i12, i21, i22) = (a22 / det, -a12 / det, -a21 / det, a11 / det);
        let (tx, ty) = (translate_px[0] as f64, translate_px[1] as f64);
        if i11 == 1.0 && i12 == 0.0 && i21 == 0.0 && i22 == 1.0 && tx == 0.0 && ty == 0.0 {
            return Ok(None);
        }
        Ok(Some(Self {
            i11,
            i12,
            i21,
            i22,
            cx,
            cy,
            tx,
            ty,
        }))
    }

    /// Source coordinates of output pixels `xstart .. xstart + xs.len()` of row `y`.
    #[inline]
    fn coords(&self, y: usize, xstart: usize, xs: &mut [f32], ys: &mut [f32]) {
        let dy = y as f64 - self.cy - self.ty;
        // Row origin in f64, then one multiply-add per pixel in f32 (vectorised); the f32
        // step error stays far below a pixel for any realistic width.
        let x0 = -self.cx - self.tx;
        let bx = (self.i11 * x0 + self.i12 * dy + self.cx) as f32;
        let by = (self.i21 * x0 + self.i22 * dy + self.cy) as f32;
        let (ax, ay) = (self.i11 as f32, self.i21 as f32);
        // i32 -> f32 converts 8 lanes per instruction; usize -> f32 has no vector form.
        // Widths are far below 2^24, where both are exact.
        for (x, (sx, sy)) in (xstart as i32..).zip(xs.iter_mut().zip(ys.iter_mut())) {
            let xf = x as f32;
            *sx = bx + ax * xf;
            *sy = by + ay * xf;
        }
    }
}

impl Transform for Affine {
    fn apply(&self, image: &mut Radiograph, mask: &mut Mask, rng: &mut dyn Rng) -> Result<()> {
        self.validate()?;
        let rot = uniform(rng, self.rotate_deg);
        let shear = uniform(rng, self.shear_deg);
        let scale = uniform(rng, self.scale);
        let tx = uniform(rng, self.translate_frac) * image.width() as f32;
        let ty = uniform(rng, self.translate_frac) * image.height() as f32;
        self.apply_fixed(image, mask, rot, shear, scale, [tx, ty])
    }
}

/// Random crop keeping a fraction of each side (drawn independently for width and
/// height), resized back to the input size. XNet crops away 10–40 % (keep 0.6–0.9).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RandomCrop {
    /// Fraction of each side kept, `(0, 1]`.
    pub keep: [f32; 2],
    /// Image interpolation for the resize (the mask is nearest).
    pub interpolation: Interpolation,
}

impl Default for RandomCrop {
    fn default() -> Self {
        Self {
            keep: [0.6, 0.9],
            interpolation: Interpolation::Bilinear,
        }
    }
}

impl RandomCrop {
    /// Check the keep range: finite, ordered, within `[0.001, 1]`.
    ///
    /// # Errors
    /// [`crate::DataError::InvalidParameter`] naming the setting and its values.
    ///
    /// # Examples
    /// ```
    /// use xray_data::augment::RandomCrop;
    /// assert!(RandomCrop::default().validate().is_ok()); // keep 60–90 %
    /// assert!(RandomCrop { keep: [1.0, 1.0], ..RandomCrop::default() }.validate().is_ok());
    /// let err = RandomCrop { keep: [0.5, 1.2], ..RandomCrop::default() }.validate().unwrap_err();
    /// assert!(err.to_string().contains("random crop keep range [0.5, 1.2]"), "{err}");
    /// assert!(RandomCrop { keep: [0.0, 0.5], ..RandomCrop::default() }.validate().is_err());
    /// ```
    pub fn validate(&self) -> Result<()> {
        check_range("random crop keep", self.keep, 1e-3, 1.0)?;
        Ok(())
    }

    /// Crop the window starting at `origin` (pixels) of size `size` (pixels, fractional
    /// allowed) and resize it to the full image.
    ///
    /// # Errors
    /// [`crate::DataError::InvalidParameter`], image and mask left unchanged, when their
    /// sizes differ, `origin` or `size` holds a NaN or an infinity (which would blank the
    /// sample: image 0, mask 255), or a side of `size` is not positive.
    ///
    /// # Examples
    /// ```
    /// use xray_data::augment::{Interpolation, RandomCrop};
    /// use xray_data::{Mask, Radiograph};
    /// let mut image = Radiograph::from_fn(4, 4, |x, y| image::Luma([(10 * y + x) as f32]));
    /// let mut mask = Mask::from_fn(4, 4, |x, y| image::Luma([(x / 2 + y / 2) as u8]));
    /// let crop = RandomCrop { interpolation: Interpolation::Nearest, ..RandomCrop::default() };
    /// // The top-left 2 × 2 window, enlarged back to 4 × 4: each pixel becomes a 2 × 2 block.
    /// crop.apply_window(&mut image, &mut mask, [0.0, 0.0], [2.0, 2.0])?;
    /// assert_eq!(image.as_raw()[..4], [0.0, 0.0, 1.0, 1.0]);
    /// assert_eq!(image.as_raw()[12..], [10.0, 10.0, 11.0, 11.0]);
    /// assert!(mask.pixels().all(|p| p.0[0] == 0)); // that window is all label 0
    /// assert!(crop.apply_window(&mut image, &mut mask, [0.0, 0.0], [0.0, 2.0]).is_err());
    /// # Ok::<(), xray_data::DataError>(())
    /// ```
    pub fn apply_window(
        &self,
        image: &mut Radiograph,
        mask: &mut Mask,
        origin: [f32; 2],
        size: [f32; 2],
    ) -> Result<()> {
        check_same_size(image, mask)?;
        check_finite("random crop ", &[("origin", &origin), ("size", &size)])?;
        if !(size[0] > 0.0 && size[1] > 0.0) {
            return Err(crate::DataError::InvalidParameter(format!(
                "random crop size {} must be positive",
                readable_values(&size)
            )));
        }
        let (w, h) = (image.width() as f32, image.height() as f32);
        let (sx, sy) = (size[0] / w, size[1] / h);
        let (ox, oy) = (origin[0], origin[1]);
        if sx == 1.0 && sy == 1.0 && ox == 0.0 && oy == 0.0 {
            return Ok(());
        }
        // Pixel-centre alignment as in OpenCV's resize: src = o + (x + 0.5) · s − 0.5.
        let (img, m) = remap(
            image,
            Some(mask),
            self.interpolation,
            Border::Reflect,
            usize::MAX,
            |y, xstart, xs, ys| {
                let syv = oy + (y as f32 + 0.5) * sy - 0.5;
                for (x, (px, py)) in (xstart..).zip(xs.iter_mut().zip(ys.iter_mut())) {
                    *px = ox + (x as f32 + 0.5) * sx - 0.5;
                    *py = syv;
                }
            },
        );
        replace_planes(image, Some(mask), img, m);
        Ok(())
    }
}

impl Transform for RandomCrop {
    fn apply(&self, image: &mut Radiograph, mask: &mut Mask, rng: &mut dyn Rng) -> Result<()> {
        self.validate()?;
        let (w, h) = (image.width() as f32, image.height() as f32);
        let kw = uniform(rng, self.keep);
        let kh = uniform(rng, self.keep);
        let (cw, ch) = ((kw * w).round().max(1.0), (kh * h).round().max(1.0));
        let ox = uniform(rng, [0.0, w - cw]).floor();
        let oy = uniform(rng, [0.0, h - ch]).floor();
        self.apply_window(image, mask, [ox, oy], [cw, ch])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::augment::warp::remap_reference;

    /// The tiled, vectorised affine path equals the row-wise scalar reference bit for bit.
    #[test]
    fn affine_matches_the_scalar_reference() {
        let (w, h) = (67u32, 45u32);
        let img = Radiograph::from_fn(w, h, |x, y| {
            image::Luma([((x * 31 + y * 17) % 97) as f32 + 0.25 * (x % 3) as f32])
        });
        let mask = Mask::from_fn(w, h, |x, y| {
            image::Luma([[0u8, 1, 2, 255][((x / 3 + y / 4) % 4) as usize]])
        });
        let cases = [
            (13.7f32, 1.5f32, 1.0f32, [0.4f32, -0.6f32]),
            (-15.0, -2.0, 1.2, [3.0, 1.0]),
            (170.0, 10.0, 0.7, [-5.0, 2.5]),
        ];
        for (rot, shear, scale, t) in cases {
            for border in [
                Border::Reflect,
                Border::Constant {
                    value: 0.0,
                    mask_value: 255,
                },
            ] {
                let a = Affine {
                    border,
                    ..Affine::default()
                };
                let (mut i2, mut m2) = (img.clone(), mask.clone());
                a.apply_fixed(&mut i2, &mut m2, rot, shear, scale, t)
                    .unwrap();
                let inv = InverseMap::new(w, h, rot, shear, scale, t)
                    .unwrap()
                    .unwrap();
                let (ri, rm) = remap_reference(
                    &img,
                    Some(&mask),
                    Interpolation::Bilinear,
                    border,
                    |y, xs, ys| inv.coords(y, 0, xs, ys),
                );
                assert_eq!(i2.as_raw(), ri.as_raw(), "{rot} {border:?}");
                assert_eq!(m2.as_raw(), rm.unwrap().as_raw(), "{rot} {border:?}");
            }
        }
    }
}
