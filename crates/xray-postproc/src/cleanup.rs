//! Morphological clean-up of label maps: XNet's bone clean-up, small-component removal,
//! hole filling and keep-largest-component, built on `imageproc`'s morphology and
//! connected-component labelling.

use image::{GrayImage, ImageBuffer, Luma};
use imageproc::distance_transform::Norm;
use imageproc::morphology::{dilate, open};
use imageproc::region_labelling::{connected_components, Connectivity as IpConnectivity};
use serde::{Deserialize, Serialize};

use crate::error::{PostprocError, Result};
use crate::threshold::IGNORE_LABEL;

/// Pixel connectivity used to group a class's pixels into components.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Connectivity {
    /// Edge neighbours only.
    Four,
    /// Edge and corner neighbours.
    #[default]
    Eight,
}

impl From<Connectivity> for IpConnectivity {
    fn from(c: Connectivity) -> Self {
        match c {
            Connectivity::Four => IpConnectivity::Four,
            Connectivity::Eight => IpConnectivity::Eight,
        }
    }
}

/// Hole filling for one class.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HoleFill {
    /// The class whose holes are filled.
    pub class: u8,
    /// Largest hole (in pixels) that is filled; 0 fills holes of any size.
    pub max_area: usize,
}

/// Clean-up steps, applied in this order: bone clean-up, small-component removal,
/// hole filling, keep-largest. Every step is off by default.
///
/// # Examples
/// ```
/// use xray_postproc::CleanupConfig;
/// let cfg: CleanupConfig = serde_json::from_str(r#"{"min_component_size": [0, 20, 20]}"#).unwrap();
/// assert_eq!(cfg.min_component_size[1], 20);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CleanupConfig {
    /// The bone class (2 in the project's convention).
    pub bone_class: u8,
    /// Radius (square structuring element, L∞) of the opening of the bone mask; 0 = off.
    pub bone_open_radius: u8,
    /// Radius (L∞) of the dilation of the opened bone mask; 0 = off.
    pub bone_dilate_radius: u8,
    /// Per class (indexed by label), components smaller than this many pixels are given to
    /// the class most common along their border. Empty or 0 = off for that class.
    pub min_component_size: Vec<usize>,
    /// Hole filling per class.
    pub fill_holes: Vec<HoleFill>,
    /// Classes for which only the largest component is kept (the rest are reassigned).
    pub keep_largest: Vec<u8>,
    /// Connectivity of a class's components.
    pub connectivity: Connectivity,
}

impl Default for CleanupConfig {
    fn default() -> Self {
        Self {
            bone_class: 2,
            bone_open_radius: 0,
            bone_dilate_radius: 0,
            min_component_size: Vec::new(),
            fill_holes: Vec::new(),
            keep_largest: Vec::new(),
            connectivity: Connectivity::Eight,
        }
    }
}

impl CleanupConfig {
    /// Checks class indices against [`IGNORE_LABEL`] (which is not a class), and that
    /// `min_component_size` has at most one entry per possible class.
    ///
    /// # Errors
    /// [`PostprocError::ClassOutOfRange`] when a class index is 255;
    /// [`PostprocError::ShapeMismatch`] when `min_component_size` has more than 255 entries.
    ///
    /// # Examples
    /// ```
    /// use xray_postproc::{CleanupConfig, PostprocError, IGNORE_LABEL};
    /// assert!(CleanupConfig::default().validate().is_ok());
    ///
    /// let cfg = CleanupConfig { keep_largest: vec![2, IGNORE_LABEL], ..CleanupConfig::default() };
    /// let e = cfg.validate().unwrap_err();
    /// assert!(matches!(e, PostprocError::ClassOutOfRange { class: 255, .. }));
    ///
    /// let cfg = CleanupConfig { min_component_size: vec![0; 256], ..CleanupConfig::default() };
    /// assert!(matches!(cfg.validate(), Err(PostprocError::ShapeMismatch { .. })));
    /// ```
    pub fn validate(&self) -> Result<()> {
        let bad = |c: u8| c == IGNORE_LABEL;
        if bad(self.bone_class)
            || self.fill_holes.iter().any(|h| bad(h.class))
            || self.keep_largest.iter().any(|&c| bad(c))
        {
            return Err(PostprocError::ClassOutOfRange {
                name: "clean-up class (255 means ignore, not a class)",
                class: 255,
                classes: 255,
                hint: "name a class below 255",
            });
        }
        if self.min_component_size.len() > 255 {
            return Err(PostprocError::ShapeMismatch {
                what: "min_component_size",
                expected: "at most 255 entries (one per class)".into(),
                found: format!("{} entries", self.min_component_size.len()),
            });
        }
        Ok(())
    }

    /// Checks the classes the enabled steps name against a label map of `classes` classes
    /// (`0..classes`): the bone class when the bone opening or dilation is on, every class
    /// with a non-zero `min_component_size`, every `fill_holes` and `keep_largest` class. A
    /// step naming a class the map cannot hold would change nothing: a config written for
    /// another number of classes (e.g. three-class settings on a two-class model).
    ///
    /// # Errors
    /// [`PostprocError::ClassOutOfRange`] naming the field and the class.
    ///
    /// # Examples
    /// ```
    /// use xray_postproc::CleanupConfig;
    /// let cfg = CleanupConfig { bone_open_radius: 1, ..CleanupConfig::default() };
    /// assert!(cfg.validate_classes(3).is_ok());
    /// assert!(cfg.validate_classes(2).is_err()); // no class 2 to open
    /// assert!(CleanupConfig::default().validate_classes(2).is_ok()); // bone steps off
    /// ```
    pub fn validate_classes(&self, classes: usize) -> Result<()> {
        let check = |name: &'static str, class: usize| {
            if class < classes {
                Ok(())
            } else {
                Err(PostprocError::ClassOutOfRange {
                    name,
                    class,
                    classes,
                    hint: "the step names a class the map does not have (a config written for \
                           more classes): turn the step off or name one of the map's classes",
                })
            }
        };
        if self.bone_open_radius > 0 || self.bone_dilate_radius > 0 {
            check("cleanup.bone_class", usize::from(self.bone_class))?;
        }
        for (class, &min) in self.min_component_size.iter().enumerate() {
            if min > 0 {
                check("cleanup.min_component_size (one entry per class)", class)?;
            }
        }
        for h in &self.fill_holes {
            check("cleanup.fill_holes class", usize::from(h.class))?;
        }
        for &c in &self.keep_largest {
            check("cleanup.keep_largest", usize::from(c))?;
        }
        Ok(())
    }
}

/// Applies every step of `cfg` to `labels` in place.
///
/// # Errors
/// When `cfg` fails [`CleanupConfig::validate`].
///
/// # Examples
/// ```
/// # fn main() -> Result<(), xray_postproc::PostprocError> {
/// use image::{GrayImage, Luma};
/// use xray_postproc::{cleanup, CleanupConfig};
/// let mut labels = GrayImage::from_pixel(5, 5, Luma([1])); // soft tissue
/// labels.put_pixel(2, 1, Luma([2])); // a stray bone pixel
/// for x in 0..5 {
///     labels.put_pixel(x, 4, Luma([2])); // a bone of 5 pixels along the bottom
/// }
/// let cfg = CleanupConfig { min_component_size: vec![0, 0, 3], ..CleanupConfig::default() };
/// cleanup(&mut labels, &cfg)?;
/// assert_eq!(labels.get_pixel(2, 1)[0], 1); // given to the class around it
/// assert_eq!(labels.get_pixel(2, 4)[0], 2); // large enough: kept
/// // 255 means ignore, not a class.
/// let bad = CleanupConfig { keep_largest: vec![255], ..CleanupConfig::default() };
/// assert!(cleanup(&mut labels, &bad).is_err());
/// # Ok(())
/// # }
/// ```
pub fn cleanup(labels: &mut GrayImage, cfg: &CleanupConfig) -> Result<()> {
    cfg.validate()?;
    if cfg.bone_open_radius > 0 || cfg.bone_dilate_radius > 0 {
        bone_cleanup(
            labels,
            cfg.bone_class,
            cfg.bone_open_radius,
            cfg.bone_dilate_radius,
        );
    }
    for (class, &min) in cfg.min_component_size.iter().enumerate() {
        if min > 0 {
            remove_small_components(labels, class as u8, min, cfg.connectivity);
        }
    }
    for h in &cfg.fill_holes {
        fill_holes(labels, h.class, h.max_area);
    }
    for &c in &cfg.keep_largest {
        keep_largest_component(labels, c, cfg.connectivity);
    }
    Ok(())
}

fn class_mask(labels: &GrayImage, class: u8) -> GrayImage {
    let mut m = GrayImage::new(labels.width(), labels.height());
    for (o, &l) in m.iter_mut().zip(labels.iter()) {
        *o = if l == class { 255 } else { 0 };
    }
    m
}

/// Gives every component `k` with `selected[k]` the label most common among the
/// 4-neighbours just outside it, preferring real classes over [`IGNORE_LABEL`] and never choosing
/// `exclude`. Components with no eligible neighbour are left as they are.
fn reassign_components(
    labels: &mut GrayImage,
    comps: &ImageBuffer<Luma<u32>, Vec<u32>>,
    selected: &[bool],
    exclude: Option<u8>,
) {
    let (w, h) = (labels.width() as usize, labels.height() as usize);
    let cid = comps.as_raw();
    let lab = labels.as_raw();
    // One 256-bin histogram per selected component (sparse: selected ones are few and small).
    let mut slot = vec![usize::MAX; selected.len()];
    let mut hists: Vec<[u32; 256]> = Vec::new();
    for (k, &s) in selected.iter().enumerate() {
        if s {
            slot[k] = hists.len();
            hists.push([0; 256]);
        }
    }
    if hists.is_empty() {
        return;
    }
    for y in 0..h {
        for x in 0..w {
            let i = y * w + x;
            let k = cid[i] as usize;
            if k == 0 || !selected[k] {
                continue;
            }
            let hist = &mut hists[slot[k]];
            let mut see = |j: usize| {
                if cid[j] as usize != k {
                    hist[lab[j] as usize] += 1;
                }
            };
            if x > 0 {
                see(i - 1);
            }
            if x + 1 < w {
                see(i + 1);
            }
            if y > 0 {
                see(i - w);
            }
            if y + 1 < h {
                see(i + w);
            }
        }
    }
    let choice: Vec<Option<u8>> = hists
        .iter()
        .map(|hist| {
            let mut best: Option<(u32, u8)> = None;
            for (l, &n) in hist.iter().enumerate() {
                let l = l as u8;
                if n == 0 || Some(l) == exclude || l == IGNORE_LABEL {
                    continue;
                }
                if best.is_none_or(|(bn, _)| n > bn) {
                    best = Some((n, l));
                }
            }
            best.map(|(_, l)| l).or((hist[IGNORE_LABEL as usize] > 0
                && exclude != Some(IGNORE_LABEL))
            .then_some(IGNORE_LABEL))
        })
        .collect();
    for (l, &k) in labels.iter_mut().zip(cid.iter()) {
        let k = k as usize;
        if k != 0 && selected[k] {
            if let Some(c) = choice[slot[k]] {
                *l = c;
            }
        }
    }
}

/// Connected components of the non-zero pixels of `mask` (labels from 1, 0 = background),
/// as imageproc's `connected_components`, which indexes its union-find with one slot per
/// pixel by label from 1: the one label of a 1 × 1 mask's set pixel is past its only slot
/// (an assertion panic). Any larger binary mask has fewer labels than pixels (two of its
/// pixels are neighbours), so only that size is labelled here.
fn components(mask: &GrayImage, conn: IpConnectivity) -> ImageBuffer<Luma<u32>, Vec<u32>> {
    if mask.dimensions() == (1, 1) {
        let set = u32::from(mask.get_pixel(0, 0)[0] != 0);
        return ImageBuffer::from_pixel(1, 1, Luma([set]));
    }
    connected_components(mask, conn, Luma([0u8]))
}

fn component_sizes(comps: &ImageBuffer<Luma<u32>, Vec<u32>>) -> Vec<usize> {
    let n = comps.iter().copied().max().unwrap_or(0) as usize;
    let mut sizes = vec![0usize; n + 1];
    for &k in comps.iter() {
        sizes[k as usize] += 1;
    }
    sizes
}

/// Reassigns components of `class` smaller than `min_size` pixels to the class most common
/// along their border (the surrounding class). Returns how many components were removed.
///
/// # Examples
/// ```
/// use image::GrayImage;
/// use xray_postproc::{remove_small_components, Connectivity};
/// let mut l = GrayImage::from_pixel(5, 5, image::Luma([1]));
/// l.put_pixel(2, 2, image::Luma([2])); // a one-pixel "bone" speck inside soft tissue
/// assert_eq!(remove_small_components(&mut l, 2, 2, Connectivity::Eight), 1);
/// assert_eq!(l.get_pixel(2, 2)[0], 1);
/// ```
pub fn remove_small_components(
    labels: &mut GrayImage,
    class: u8,
    min_size: usize,
    conn: Connectivity,
) -> usize {
    let comps = components(&class_mask(labels, class), conn.into());
    let sizes = component_sizes(&comps);
    let selected: Vec<bool> = sizes
        .iter()
        .enumerate()
        .map(|(k, &s)| k > 0 && s < min_size)
        .collect();
    let n = selected.iter().filter(|&&s| s).count();
    reassign_components(labels, &comps, &selected, Some(class));
    n
}

/// Keeps only the largest component of `class`; the others are reassigned to the class
/// most common along their border. Returns how many components were reassigned.
///
/// # Examples
/// ```
/// use image::GrayImage;
/// use xray_postproc::{keep_largest_component, Connectivity};
/// let mut l = GrayImage::from_raw(5, 1, vec![1, 1, 0, 1, 0]).unwrap();
/// assert_eq!(keep_largest_component(&mut l, 1, Connectivity::Four), 1);
/// assert_eq!(l.as_raw(), &vec![1, 1, 0, 0, 0]);
/// ```
pub fn keep_largest_component(labels: &mut GrayImage, class: u8, conn: Connectivity) -> usize {
    let comps = components(&class_mask(labels, class), conn.into());
    let sizes = component_sizes(&comps);
    let Some(largest) = (1..sizes.len()).max_by_key(|&k| (sizes[k], std::cmp::Reverse(k))) else {
        return 0;
    };
    let selected: Vec<bool> = (0..sizes.len()).map(|k| k > 0 && k != largest).collect();
    reassign_components(labels, &comps, &selected, Some(class));
    sizes.len().saturating_sub(2)
}

/// Fills holes in `class`: 4-connected regions of other labels that do not touch the image
/// border and are entirely enclosed by `class`, of at most `max_area` pixels (0 = any size).
/// Returns the number of pixels filled. A map one pixel wide or high has no hole (every
/// pixel is on the border), nor has a map with no pixel.
///
/// # Examples
/// ```
/// use image::GrayImage;
/// use xray_postproc::fill_holes;
/// let mut l = GrayImage::from_pixel(5, 5, image::Luma([2]));
/// l.put_pixel(2, 2, image::Luma([1]));
/// assert_eq!(fill_holes(&mut l, 2, 0), 1);
/// assert_eq!(l.get_pixel(2, 2)[0], 2);
/// ```
pub fn fill_holes(labels: &mut GrayImage, class: u8, max_area: usize) -> usize {
    let (w, h) = labels.dimensions();
    if w == 0 || h == 0 {
        // No pixel, so no hole (and no border row or column to look along).
        return 0;
    }
    let mut other = class_mask(labels, class);
    for p in other.iter_mut() {
        *p = 255 - *p;
    }
    // Components of "not this class" are holes when they touch neither the border nor,
    // through 8-adjacency of the class, the outside; 4-connectivity for the background is the
    // dual of 8-connectivity for the foreground.
    let comps = components(&other, IpConnectivity::Four);
    let sizes = component_sizes(&comps);
    let mut touches = vec![false; sizes.len()];
    for x in 0..w {
        touches[comps.get_pixel(x, 0)[0] as usize] = true;
        touches[comps.get_pixel(x, h - 1)[0] as usize] = true;
    }
    for y in 0..h {
        touches[comps.get_pixel(0, y)[0] as usize] = true;
        touches[comps.get_pixel(w - 1, y)[0] as usize] = true;
    }
    let fill: Vec<bool> = (0..sizes.len())
        .map(|k| k > 0 && !touches[k] && (max_area == 0 || sizes[k] <= max_area))
        .collect();
    let mut n = 0;
    for (l, &k) in labels.iter_mut().zip(comps.iter()) {
        if fill[k as usize] {
            *l = class;
            n += 1;
        }
    }
    n
}

/// XNet's bone clean-up: open the bone mask with a square of radius `open_radius`
/// (removing thin false-positive bone), give the removed pixels to the class most common
/// around them, then dilate the opened mask by `dilate_radius` pixels and label the grown
/// pixels bone (never pixels marked [`IGNORE_LABEL`]).
///
/// # Examples
/// ```
/// use image::GrayImage;
/// use xray_postproc::bone_cleanup;
/// let mut l = GrayImage::from_pixel(9, 9, image::Luma([1]));
/// for x in 0..9 { l.put_pixel(x, 4, image::Luma([2])); } // a 1-px bone line: noise
/// bone_cleanup(&mut l, 2, 1, 0);
/// assert!(l.iter().all(|&v| v == 1));
/// ```
pub fn bone_cleanup(labels: &mut GrayImage, bone: u8, open_radius: u8, dilate_radius: u8) {
    let mask = class_mask(labels, bone);
    let opened = if open_radius > 0 {
        open(&mask, Norm::LInf, open_radius)
    } else {
        mask.clone()
    };
    let mut removed = GrayImage::new(labels.width(), labels.height());
    for ((r, &m), &o) in removed.iter_mut().zip(mask.iter()).zip(opened.iter()) {
        *r = if m > 0 && o == 0 { 255 } else { 0 };
    }
    let comps = components(&removed, IpConnectivity::Eight);
    let n = comps.iter().copied().max().unwrap_or(0) as usize;
    let selected: Vec<bool> = (0..=n).map(|k| k > 0).collect();
    reassign_components(labels, &comps, &selected, Some(bone));
    if dilate_radius > 0 {
        let grown = dilate(&opened, Norm::LInf, dilate_radius);
        for (l, &g) in labels.iter_mut().zip(grown.iter()) {
            if g > 0 && *l != IGNORE_LABEL {
                *l = bone;
            }
        }
    }
}
