//! Validated views of class-major probability maps and radiograph planes.

use crate::error::{PostprocError, Result};

/// Refuses more than 255 classes: labels are `u8` and 255 is [`IGNORE_LABEL`](crate::IGNORE_LABEL), so a
/// label map holds classes 0..=254 at most. [`ProbMap::new`] and
/// [`ThresholdConfig::validate`](crate::ThresholdConfig::validate) both check it.
pub(crate) fn check_class_count(classes: usize) -> Result<()> {
    if classes > 255 {
        return Err(PostprocError::ClassOutOfRange {
            name: "number of classes (labels are u8, 255 = ignore)",
            class: classes,
            classes: 255,
            hint: "a label map holds at most 255 classes; merge classes before thresholding",
        });
    }
    Ok(())
}

/// A borrowed, validated `C × H × W` class-major probability map (what a softmax over an
/// `[N, C, H, W]` network output gives for one image).
///
/// Construction checks the length, that no dimension is zero, that there are at most 255
/// classes (labels are `u8` and 255 is [`IGNORE_LABEL`](crate::IGNORE_LABEL)), and that every value is
/// a finite number in `[0, 1]`, so the functions that take a `ProbMap` need not check again.
///
/// # Examples
/// ```
/// use xray_postproc::ProbMap;
/// let p = vec![0.2f32, 0.8, 0.8, 0.2]; // 2 classes, 1 x 2 pixels
/// let map = ProbMap::new(&p, 2, 1, 2).unwrap();
/// assert_eq!(map.prob(1, 0, 0), 0.8);
/// assert!(ProbMap::new(&p, 3, 1, 2).is_err());
/// ```
#[derive(Debug, Clone, Copy)]
pub struct ProbMap<'a> {
    data: &'a [f32],
    classes: usize,
    height: usize,
    width: usize,
}

impl<'a> ProbMap<'a> {
    /// Wraps `data` (`classes × height × width` values, class-major, rows in order).
    ///
    /// # Shapes
    /// `classes`, `height`, then `width` ([tensor order](crate#sizes), as candle's `[C, H, W]`):
    /// `data` is `classes` planes of `height` rows of `width` values. [`Plane::new`] takes `width,
    /// height`.
    ///
    /// # Errors
    /// [`PostprocError::Empty`] for a zero dimension, [`PostprocError::ClassOutOfRange`] for
    /// more than 255 classes (no `u8` label map could hold its arg-max: class 255 would read
    /// as [`IGNORE_LABEL`](crate::IGNORE_LABEL), class 256 as 0), [`PostprocError::ShapeMismatch`] when
    /// `data.len()` differs from the product, [`PostprocError::NonFinite`] for NaN/inf and
    /// [`PostprocError::NotAProbability`] for a negative value (any: `-0.0` is zero, not
    /// negative) or one above `1 + 1e-4` (the tolerance is for rounding above 1).
    ///
    /// A softmax never gives a negative value, even rounded, so a negative one means the data
    /// is not softmax output; `xnet_model::infer::apply_temperature` and `xray_metrics` refuse
    /// it too. Until 2026-12-02 values down to `-1e-4` were accepted here (and kept negative),
    /// so the same buffer was a probability map for this crate and refused by the others.
    ///
    /// # Examples
    /// ```
    /// use xray_postproc::{PostprocError, ProbMap};
    /// let p = vec![1.0 / 256.0; 256]; // 256 classes, 1 x 1
    /// let e = ProbMap::new(&p, 256, 1, 1).unwrap_err();
    /// assert!(matches!(e, PostprocError::ClassOutOfRange { class: 256, classes: 255, .. }));
    /// assert!(ProbMap::new(&p[..255], 255, 1, 1).is_ok());
    ///
    /// // The bounds: 0 (and -0.0) and 1 + 1e-4 are accepted, anything below 0 is not.
    /// for ok in [0.0, -0.0, 1.0 + 1e-4] {
    ///     assert!(ProbMap::new(&[ok, 0.5], 2, 1, 1).is_ok(), "{ok}");
    /// }
    /// for bad in [-f32::from_bits(1), -1e-7, -1e-4, 1.0 + 2e-4] {
    ///     let e = ProbMap::new(&[bad, 0.5], 2, 1, 1).unwrap_err();
    ///     assert!(matches!(e, PostprocError::NotAProbability { class: 0, .. }), "{bad}");
    /// }
    /// ```
    pub fn new(data: &'a [f32], classes: usize, height: usize, width: usize) -> Result<Self> {
        if classes == 0 || height == 0 || width == 0 {
            return Err(PostprocError::Empty {
                what: "probability map",
                width,
                height,
                classes,
            });
        }
        check_class_count(classes)?;
        let n = classes
            .checked_mul(height)
            .and_then(|v| v.checked_mul(width))
            .ok_or_else(|| PostprocError::ShapeMismatch {
                what: "probability map",
                expected: format!("{classes} x {height} x {width} values (overflows usize)"),
                found: format!("{} values", data.len()),
            })?;
        if data.len() != n {
            return Err(PostprocError::ShapeMismatch {
                what: "probability map",
                expected: format!("{classes} x {height} x {width} = {n} values"),
                found: format!("{} values", data.len()),
            });
        }
        let plane = height * width;
        for (i, &v) in data.iter().enumerate() {
            // `0.0..` holds -0.0 (it compares equal to 0) and no negative value.
            if !v.is_finite() || !(0.0..=1.0 + 1e-4).contains(&v) {
                let (class, rest) = (i / plane, i % plane);
                let (y, x) = (rest / width, rest % width);
                return Err(if v.is_finite() {
                    PostprocError::NotAProbability {
                        what: "probability map",
                        class,
                        x,
                        y,
                        value: v,
                    }
                } else {
                    PostprocError::NonFinite {
                        what: "probability map",
                        class,
                        x,
                        y,
                        value: v,
                    }
                });
            }
        }
        Ok(Self {
            data,
            classes,
            height,
            width,
        })
    }

    /// Number of classes `C`.
    ///
    /// # Examples
    /// ```
    /// use xray_postproc::ProbMap;
    /// let p = [0.5f32; 12]; // 2 classes, 2 x 3 pixels
    /// let map = ProbMap::new(&p, 2, 2, 3)?;
    /// assert_eq!(map.classes(), 2);
    /// # Ok::<(), xray_postproc::PostprocError>(())
    /// ```
    pub fn classes(&self) -> usize {
        self.classes
    }
    /// Height `H` in pixels.
    ///
    /// # Examples
    /// ```
    /// use xray_postproc::ProbMap;
    /// let p = [0.5f32; 12]; // 2 classes, 2 rows of 3 pixels
    /// let map = ProbMap::new(&p, 2, 2, 3)?;
    /// assert_eq!(map.height(), 2);
    /// # Ok::<(), xray_postproc::PostprocError>(())
    /// ```
    pub fn height(&self) -> usize {
        self.height
    }
    /// Width `W` in pixels.
    ///
    /// # Examples
    /// ```
    /// use xray_postproc::ProbMap;
    /// let p = [0.5f32; 12]; // 2 classes, 2 rows of 3 pixels
    /// let map = ProbMap::new(&p, 2, 2, 3)?;
    /// assert_eq!(map.width(), 3);
    /// # Ok::<(), xray_postproc::PostprocError>(())
    /// ```
    pub fn width(&self) -> usize {
        self.width
    }
    /// The whole class-major buffer.
    ///
    /// # Examples
    /// ```
    /// use xray_postproc::ProbMap;
    /// let p = [0.25f32, 1.0, 0.75, 0.0]; // 2 classes, 1 x 2 pixels
    /// let map = ProbMap::new(&p, 2, 1, 2)?;
    /// assert_eq!(map.data(), &p[..]); // class 0's plane, then class 1's
    /// assert_eq!(map.data().len(), map.classes() * map.height() * map.width());
    /// # Ok::<(), xray_postproc::PostprocError>(())
    /// ```
    pub fn data(&self) -> &'a [f32] {
        self.data
    }
    /// The plane of class `c` (`H × W` values, rows in order).
    ///
    /// # Panics
    /// If `c >= classes()`; [`ProbMap::get_plane`] returns `None` instead.
    ///
    /// # Examples
    /// ```
    /// use xray_postproc::ProbMap;
    /// let p = [0.25f32, 1.0, 0.75, 0.0]; // 2 classes, 1 x 2 pixels
    /// let map = ProbMap::new(&p, 2, 1, 2)?;
    /// assert_eq!(map.plane(0), &[0.25, 1.0]);
    /// assert_eq!(map.plane(1), &[0.75, 0.0]);
    /// # Ok::<(), xray_postproc::PostprocError>(())
    /// ```
    ///
    /// A class past the map panics:
    /// ```should_panic
    /// use xray_postproc::ProbMap;
    /// let p = [0.25f32, 1.0, 0.75, 0.0];
    /// let map = ProbMap::new(&p, 2, 1, 2).unwrap();
    /// map.plane(2);
    /// ```
    pub fn plane(&self, c: usize) -> &'a [f32] {
        self.get_plane(c).unwrap_or_else(|| {
            panic!(
                "ProbMap::plane: class {c} is outside the map ({} classes)",
                self.classes
            )
        })
    }

    /// Probability of class `c` at pixel `(x, y)`.
    ///
    /// # Panics
    /// If `c`, `x` or `y` is out of bounds; [`ProbMap::get`] returns `None` instead. (An
    /// `x` past the width with a `y` inside the map would otherwise read another pixel, so
    /// each index is checked on its own.)
    ///
    /// # Examples
    /// ```
    /// use xray_postproc::ProbMap;
    /// // 2 classes over 2 rows of 2 pixels; class 1 is the complement of class 0.
    /// let p = [0.1f32, 0.2, 0.3, 0.4, /* class 1 */ 0.9, 0.8, 0.7, 0.6];
    /// let map = ProbMap::new(&p, 2, 2, 2)?;
    /// assert_eq!(map.prob(0, 1, 0), 0.2); // x = 1, y = 0
    /// assert_eq!(map.prob(0, 0, 1), 0.3); // x = 0, y = 1
    /// assert_eq!(map.prob(1, 1, 1), 0.6);
    /// # Ok::<(), xray_postproc::PostprocError>(())
    /// ```
    ///
    /// An `x` past the width panics even where `y * width + x` would fall inside the buffer:
    /// ```should_panic
    /// use xray_postproc::ProbMap;
    /// let p = [0.1f32, 0.2, 0.3, 0.4];
    /// let map = ProbMap::new(&p, 1, 2, 2).unwrap();
    /// map.prob(0, 2, 0); // not the pixel (0, 1)
    /// ```
    pub fn prob(&self, c: usize, x: usize, y: usize) -> f32 {
        self.get(c, x, y).unwrap_or_else(|| {
            panic!(
                "ProbMap::prob: class {c}, pixel (x={x}, y={y}) is outside the map ({} classes, \
                 {} x {} pixels)",
                self.classes, self.width, self.height
            )
        })
    }

    /// The plane of class `class` (`H × W` values, rows in order), or `None` when
    /// `class >= classes()`: [`ProbMap::plane`] without the panic, as [`slice::get`].
    ///
    /// # Examples
    /// ```
    /// use xray_postproc::ProbMap;
    /// let p = [0.25f32, 1.0, 0.75, 0.0]; // 2 classes, 1 x 2 pixels
    /// let map = ProbMap::new(&p, 2, 1, 2).unwrap();
    /// assert_eq!(map.get_plane(1), Some(&[0.75f32, 0.0][..]));
    /// assert_eq!(map.get_plane(2), None);
    /// ```
    pub fn get_plane(&self, class: usize) -> Option<&'a [f32]> {
        if class >= self.classes {
            return None;
        }
        let n = self.height * self.width;
        self.data.get(class * n..(class + 1) * n)
    }

    /// Probability of class `class` at pixel `(x, y)`, or `None` when the class, column or
    /// row is out of bounds (each is checked on its own: an `x` past the width is `None`,
    /// not the next row's pixel): [`ProbMap::prob`] without the panic, as [`slice::get`].
    ///
    /// # Examples
    /// ```
    /// use xray_postproc::ProbMap;
    /// let p = [0.25f32, 1.0, 0.75, 0.0]; // 2 classes, 1 x 2 pixels
    /// let map = ProbMap::new(&p, 2, 1, 2).unwrap();
    /// assert_eq!(map.get(1, 0, 0), Some(0.75));
    /// assert_eq!(map.get(0, 1, 0), Some(1.0));
    /// assert_eq!(map.get(2, 0, 0), None); // no class 2
    /// assert_eq!(map.get(0, 2, 0), None); // x past the width
    /// assert_eq!(map.get(0, 0, 1), None); // y past the height
    /// ```
    pub fn get(&self, class: usize, x: usize, y: usize) -> Option<f32> {
        if class >= self.classes || x >= self.width || y >= self.height {
            return None;
        }
        self.data
            .get((class * self.height + y) * self.width + x)
            .copied()
    }
}

/// A borrowed, validated single-plane `f32` image (a radiograph: larger = more X-rays).
///
/// # Examples
/// ```
/// use xray_postproc::Plane;
/// let v = vec![0.0f32; 6];
/// let p = Plane::new(&v, 3, 2).unwrap();
/// assert_eq!((p.width(), p.height()), (3, 2));
/// ```
#[derive(Debug, Clone, Copy)]
pub struct Plane<'a> {
    data: &'a [f32],
    width: usize,
    height: usize,
}

impl<'a> Plane<'a> {
    /// Wraps `data` (`height` rows of `width` values).
    ///
    /// # Shapes
    /// `width`, then `height` ([image order](crate#sizes), as `image::ImageBuffer::new`): `data` is
    /// `height` rows of `width` values. [`ProbMap::new`] takes `classes, height, width`.
    ///
    /// # Errors
    /// Zero size, wrong length or a non-finite value.
    ///
    /// # Examples
    /// ```
    /// use xray_postproc::{Plane, PostprocError};
    /// let v = [0.0f32, 1.0, 2.0, 3.0, 4.0, 5.0];
    /// let p = Plane::new(&v, 3, 2)?; // 2 rows of 3 values
    /// assert_eq!(p.value(0, 1), 3.0);
    ///
    /// // Unlike a probability map, a plane may hold any finite value ...
    /// assert!(Plane::new(&[-2.0, 1e6], 2, 1).is_ok());
    /// // ... but not NaN or infinity, nor the wrong number of values, nor none at all.
    /// let e = Plane::new(&[0.0, f32::NAN], 2, 1).unwrap_err();
    /// assert!(matches!(e, PostprocError::NonFinite { x: 1, y: 0, .. }));
    /// assert!(matches!(Plane::new(&v, 4, 2), Err(PostprocError::ShapeMismatch { .. })));
    /// assert!(matches!(Plane::new(&[], 0, 2), Err(PostprocError::Empty { .. })));
    /// # Ok::<(), PostprocError>(())
    /// ```
    pub fn new(data: &'a [f32], width: usize, height: usize) -> Result<Self> {
        if width == 0 || height == 0 {
            return Err(PostprocError::Empty {
                what: "image",
                width,
                height,
                classes: 1,
            });
        }
        if width.checked_mul(height) != Some(data.len()) {
            return Err(PostprocError::ShapeMismatch {
                what: "image",
                expected: format!(
                    "{width} x {height} = {} values",
                    width.saturating_mul(height)
                ),
                found: format!("{} values", data.len()),
            });
        }
        if let Some(i) = data.iter().position(|v| !v.is_finite()) {
            return Err(PostprocError::NonFinite {
                what: "image",
                class: 0,
                x: i % width,
                y: i / width,
                value: data[i],
            });
        }
        Ok(Self {
            data,
            width,
            height,
        })
    }

    /// Wraps an `image` crate `f32` grayscale buffer (e.g. `xray_data::Radiograph`).
    ///
    /// # Errors
    /// As [`Plane::new`].
    ///
    /// # Examples
    /// ```
    /// use image::{ImageBuffer, Luma};
    /// use xray_postproc::Plane;
    /// let img: ImageBuffer<Luma<f32>, Vec<f32>> =
    ///     ImageBuffer::from_fn(3, 2, |x, y| Luma([(10 * y + x) as f32]));
    /// let p = Plane::from_image(&img)?;
    /// assert_eq!((p.width(), p.height()), (3, 2));
    /// assert_eq!(p.value(2, 1), 12.0);
    /// # Ok::<(), xray_postproc::PostprocError>(())
    /// ```
    pub fn from_image(img: &'a image::ImageBuffer<image::Luma<f32>, Vec<f32>>) -> Result<Self> {
        Self::new(img.as_raw(), img.width() as usize, img.height() as usize)
    }

    /// Width in pixels.
    ///
    /// # Examples
    /// ```
    /// use xray_postproc::Plane;
    /// let v = [0.0f32; 6];
    /// let p = Plane::new(&v, 3, 2)?; // 2 rows of 3 values
    /// assert_eq!(p.width(), 3);
    /// # Ok::<(), xray_postproc::PostprocError>(())
    /// ```
    pub fn width(&self) -> usize {
        self.width
    }
    /// Height in pixels.
    ///
    /// # Examples
    /// ```
    /// use xray_postproc::Plane;
    /// let v = [0.0f32; 6];
    /// let p = Plane::new(&v, 3, 2)?; // 2 rows of 3 values
    /// assert_eq!(p.height(), 2);
    /// # Ok::<(), xray_postproc::PostprocError>(())
    /// ```
    pub fn height(&self) -> usize {
        self.height
    }
    /// The row-major values.
    ///
    /// # Examples
    /// ```
    /// use xray_postproc::Plane;
    /// let v = [0.0f32, 1.0, 2.0, 3.0, 4.0, 5.0];
    /// let p = Plane::new(&v, 3, 2)?;
    /// assert_eq!(p.data(), &v[..]);
    /// // Row y starts at y * width.
    /// assert_eq!(p.data()[p.width()..], [3.0, 4.0, 5.0]);
    /// # Ok::<(), xray_postproc::PostprocError>(())
    /// ```
    pub fn data(&self) -> &'a [f32] {
        self.data
    }
    /// Value at `(x, y)`.
    ///
    /// # Panics
    /// If `x` or `y` is out of bounds; [`Plane::get`] returns `None` instead. (An `x` past
    /// the width with a `y` inside the image would otherwise read another pixel, so each
    /// index is checked on its own.)
    ///
    /// # Examples
    /// ```
    /// use xray_postproc::Plane;
    /// let v = [0.0f32, 1.0, 2.0, 3.0, 4.0, 5.0]; // 3 x 2 pixels
    /// let p = Plane::new(&v, 3, 2).unwrap();
    /// assert_eq!(p.value(2, 1), 5.0);
    /// ```
    pub fn value(&self, x: usize, y: usize) -> f32 {
        self.get(x, y).unwrap_or_else(|| {
            panic!(
                "Plane::value: pixel (x={x}, y={y}) is outside the image ({} x {} pixels)",
                self.width, self.height
            )
        })
    }

    /// Value at `(x, y)`, or `None` when the column or row is out of bounds (each is checked
    /// on its own: an `x` past the width is `None`, not the next row's pixel):
    /// [`Plane::value`] without the panic, as [`slice::get`] (and [`ProbMap::get`] beside
    /// [`ProbMap::prob`]).
    ///
    /// # Examples
    /// ```
    /// use xray_postproc::Plane;
    /// let v = [0.0f32, 1.0, 2.0, 3.0, 4.0, 5.0]; // 3 x 2 pixels
    /// let p = Plane::new(&v, 3, 2).unwrap();
    /// assert_eq!(p.get(2, 1), Some(5.0));
    /// assert_eq!(p.get(3, 0), None); // x past the width
    /// assert_eq!(p.get(0, 2), None); // y past the height
    /// ```
    pub fn get(&self, x: usize, y: usize) -> Option<f32> {
        if x >= self.width || y >= self.height {
            return None;
        }
        self.data.get(y * self.width + x).copied()
    }
}

/// Checks that `value` lies in `[0, 1]`.
pub(crate) fn check_unit(name: &str, value: f32) -> Result<()> {
    if value.is_finite() && (0.0..=1.0).contains(&value) {
        Ok(())
    } else {
        Err(PostprocError::OutOfRange {
            name: name.to_string(),
            value: value as f64,
            expected: "a probability threshold in [0, 1]",
        })
    }
}

/// Checks that a label map matches `width × height`.
pub(crate) fn check_labels(
    what: &'static str,
    labels: &image::GrayImage,
    width: usize,
    height: usize,
) -> Result<()> {
    if labels.width() as usize != width || labels.height() as usize != height {
        return Err(PostprocError::ShapeMismatch {
            what,
            expected: format!("{width} x {height} pixels"),
            found: format!("{} x {} pixels", labels.width(), labels.height()),
        });
    }
    Ok(())
}
