//! Parsing a dataset folder.

use crate::io::{load_image_with_info, load_mask_with_classes, ImageInfo, LoadOptions};
use crate::{DataError, Mask, Radiograph, Result};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

/// Extensions (lower case) accepted in `images/`; other files there are ignored.
pub const IMAGE_EXTENSIONS: [&str; 6] = ["png", "tif", "tiff", "dcm", "jpg", "jpeg"];

/// Options of [`Dataset::open`] and sample loading.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatasetOptions {
    /// How images are decoded.
    pub load: LoadOptions,
    /// Number of classes; mask values must be below it or `255` (ignore).
    pub num_classes: u8,
}

impl Default for DatasetOptions {
    fn default() -> Self {
        DatasetOptions {
            load: LoadOptions::default(),
            num_classes: 3,
        }
    }
}

/// One entry of a dataset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sample {
    /// File name without extension, unique in the dataset (a DICOM file found by its
    /// content, [`Dataset::open`], keeps its whole name unless it ends in `.dicom`).
    pub stem: String,
    /// The radiograph file.
    pub image: PathBuf,
    /// The mask file, when the dataset has masks.
    pub mask: Option<PathBuf>,
    /// The category from `categories.csv` (e.g. body part), when present.
    pub category: Option<String>,
}

/// A dataset folder: samples sorted by stem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dataset {
    /// The folder it was read from.
    pub root: PathBuf,
    /// Samples, sorted by stem.
    pub samples: Vec<Sample>,
    /// Options used to load samples.
    pub options: DatasetOptions,
}

fn ds_err(path: impl Into<PathBuf>, message: impl Into<String>) -> DataError {
    DataError::Dataset {
        path: path.into(),
        message: message.into(),
    }
}

/// What a dataset folder holds, for the errors of [`check_layout`].
const LAYOUT: &str = "a dataset folder holds its radiographs in images/ and, to train or \
                      evaluate, their label masks in masks/ (same file stems), optionally \
                      categories.csv (docs/data-format.md)";

/// Refuses a dataset `root` that does not exist, is not a folder or has no `images/`
/// folder, with what a dataset folder holds: listing `root/images` alone said only "No such
/// file or directory", for a mistyped path as for a folder of radiographs given in place of
/// the dataset folder (which this counts).
fn check_layout(root: &Path) -> Result<()> {
    let meta = match std::fs::metadata(root) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(ds_err(root, format!("does not exist; {LAYOUT}")));
        }
        Err(e) => return Err(DataError::io(root, e)),
    };
    if !meta.is_dir() {
        return Err(ds_err(root, format!("is not a folder; {LAYOUT}")));
    }
    let images = root.join("images");
    if images.exists() {
        return Ok(());
    }
    let direct = list_dir(root)?
        .iter()
        .filter_map(|name| split_name(name))
        .filter(|(_, ext)| IMAGE_EXTENSIONS.contains(&ext.as_str()))
        .count();
    let found = match direct {
        0 => String::new(),
        n => format!(
            " (this folder holds {n} image file{} itself: move them into images/)",
            if n == 1 { "" } else { "s" }
        ),
    };
    Err(ds_err(root, format!("no images/ folder: {LAYOUT}{found}")))
}

fn list_dir(dir: &Path) -> Result<Vec<String>> {
    let mut names = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| DataError::io(dir, e))? {
        let entry = entry.map_err(|e| DataError::io(dir, e))?;
        let is_file = entry
            .file_type()
            .map_err(|e| DataError::io(entry.path(), e))?
            .is_file()
            || entry.path().is_file();
        if !is_file {
            continue;
        }
        match entry.file_name().into_string() {
            Ok(n) => names.push(n),
            Err(n) => {
                return Err(ds_err(
                    dir.join(&n),
                    "file name is not valid UTF-8; rename it",
                ))
            }
        }
    }
    names.sort();
    Ok(names)
}

/// Splits `name` into (stem, lower-case extension); hidden files and files without an
/// extension give `None`.
fn split_name(name: &str) -> Option<(&str, String)> {
    if name.starts_with('.') {
        return None;
    }
    let (stem, ext) = name.rsplit_once('.')?;
    (!stem.is_empty()).then(|| (stem, ext.to_ascii_lowercase()))
}

/// The stem of a DICOM file found by its content: a `.dicom` name without that extension,
/// any other its whole name (`IM000001`; `1.2.840.10008.1.1`, a UID, whose last dot
/// starts no extension).
fn content_dicom_stem(name: &str) -> &str {
    match name.rsplit_once('.') {
        Some((stem, ext)) if !stem.is_empty() && ext.eq_ignore_ascii_case("dicom") => stem,
        _ => name,
    }
}

/// The names in `images` (files of the folder `dir`) that no image extension names but
/// whose content is DICOM (`DICM` at offset 128): modalities and PACS exports write files
/// without an extension (`IM000001`) or named by their UID (`1.2.840….7`), and `segment`
/// reads those by content too. Hidden files are left out; a file too short to hold the
/// magic, or unreadable, is not DICOM and is left out as other files are.
fn dicom_by_content(dir: &Path, images: &[String]) -> Result<Vec<String>> {
    use std::io::Read;
    let mut found = Vec::new();
    for name in images {
        if name.starts_with('.') {
            continue;
        }
        if split_name(name).is_some_and(|(_, ext)| IMAGE_EXTENSIONS.contains(&ext.as_str())) {
            continue;
        }
        let mut head = [0u8; 132];
        let Ok(file) = std::fs::File::open(dir.join(name)) else {
            continue;
        };
        let mut read = 0;
        let mut file = file.take(132);
        while read < head.len() {
            match file.read(&mut head[read..]) {
                Ok(0) => break,
                Ok(n) => read += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(DataError::io(dir.join(name), e)),
            }
        }
        if read == head.len() && &head[128..] == b"DICM" {
            found.push(name.clone());
        }
    }
    Ok(found)
}

/// Parses `categories.csv` text into `(stem, category)` pairs, in file order.
///
/// One `stem,category` pair per line; surrounding whitespace is trimmed; blank lines and
/// lines starting with `#` are skipped; a first line `stem,category` (any case) is a header.
/// `path` only names the file in errors.
///
/// # Errors
/// [`DataError::Dataset`] naming the line for a line without a comma, an empty stem or
/// category, more than two fields, or a stem listed twice.
///
/// # Examples
/// ```
/// use std::path::Path;
/// let pairs = xray_data::dataset::parse_categories("stem,category\na, hand\nb,foot\n", Path::new("c.csv")).unwrap();
/// assert_eq!(pairs, vec![("a".to_string(), "hand".to_string()), ("b".to_string(), "foot".to_string())]);
/// ```
pub fn parse_categories(text: &str, path: &Path) -> Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    let mut seen: HashMap<String, usize> = HashMap::new();
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    for (i, line) in text.lines().enumerate() {
        let line_no = i + 1;
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let fields: Vec<&str> = line.split(',').map(str::trim).collect();
        if out.is_empty()
            && seen.is_empty()
            && fields.len() == 2
            && fields[0].eq_ignore_ascii_case("stem")
            && fields[1].eq_ignore_ascii_case("category")
        {
            continue;
        }
        let [stem, category] = fields.as_slice() else {
            return Err(ds_err(
                path,
                format!(
                    "line {line_no}: expected `stem,category`, found {} field(s): {line:?}",
                    fields.len()
                ),
            ));
        };
        if stem.is_empty() || category.is_empty() {
            return Err(ds_err(
                path,
                format!("line {line_no}: empty stem or category: {line:?}"),
            ));
        }
        if let Some(first) = seen.insert(stem.to_string(), line_no) {
            return Err(ds_err(
                path,
                format!("line {line_no}: stem {stem:?} already listed on line {first}"),
            ));
        }
        out.push((stem.to_string(), category.to_string()));
    }
    Ok(out)
}

impl Dataset {
    /// Reads a dataset folder (see the [module documentation](super)): lists `images/`,
    /// pairs every image with `masks/<stem>.png` when `masks/` exists, and attaches
    /// categories from `categories.csv` when it exists. Pixels are not read; see
    /// [`Dataset::validate`].
    ///
    /// Images are the files with one of the [`IMAGE_EXTENSIONS`], plus DICOM files found by
    /// their content (`DICM` at offset 128) whatever their name: an extension-less
    /// `IM000001` or a UID-named `1.2.840.113619.2.1` has its whole file name as its stem
    /// (its mask is `masks/IM000001.png`), a `.dicom` file its name less that extension.
    ///
    /// # Errors
    /// [`DataError::Dataset`] naming the file for a duplicate stem, a missing mask, a mask
    /// without image, an image missing from `categories.csv` (or a listed stem without
    /// image), a malformed `categories.csv`, an empty `images/`, and for a `root` that does
    /// not exist, is not a folder or has no `images/` (saying what a dataset folder holds,
    /// and how many image files `root` holds itself, as a folder of radiographs given in its
    /// place does); [`DataError::Io`] when `images/` cannot be read.
    ///
    /// # Examples
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use xray_data::dataset::{Dataset, DatasetOptions};
    /// use xray_data::io::{save_mask, save_png16};
    /// use xray_data::{Mask, Radiograph};
    /// let root = std::env::temp_dir().join(format!("xray-doc-open-{}", std::process::id()));
    /// std::fs::create_dir_all(root.join("images"))?;
    /// std::fs::create_dir_all(root.join("masks"))?;
    /// for stem in ["b", "a"] {
    ///     let image = Radiograph::from_pixel(4, 3, image::Luma([500.0]));
    ///     save_png16(&root.join(format!("images/{stem}.png")), &image)?;
    ///     let mask = Mask::from_pixel(4, 3, image::Luma([1])); // soft tissue
    ///     save_mask(&root.join(format!("masks/{stem}.png")), &mask)?;
    /// }
    /// std::fs::write(root.join("categories.csv"), "stem,category\na,hand\nb,knee\n")?;
    /// let ds = Dataset::open(&root, &DatasetOptions::default())?;
    /// assert_eq!(ds.len(), 2);
    /// assert_eq!(ds.samples[0].stem, "a"); // sorted by stem
    /// assert_eq!(ds.categories(), ["hand", "knee"]);
    /// let (image, mask) = ds.load(1)?;
    /// assert_eq!(image.dimensions(), (4, 3));
    /// assert!(mask.is_some_and(|m| m.pixels().all(|p| p.0[0] == 1)));
    /// // A mask without an image is refused, naming the file.
    /// save_mask(&root.join("masks/c.png"), &Mask::new(4, 3))?;
    /// let err = Dataset::open(&root, &DatasetOptions::default()).unwrap_err();
    /// assert!(err.to_string().contains("c.png"), "{err}");
    /// # std::fs::remove_dir_all(&root).ok();
    /// # Ok(())
    /// # }
    /// ```
    pub fn open(root: &Path, options: &DatasetOptions) -> Result<Dataset> {
        check_layout(root)?;
        let images = list_dir(&root.join("images"))?;
        // `masks` and `categories.csv` are optional, but one that exists as the wrong kind
        // of entry (a file named masks, a folder named categories.csv) is an error, not
        // silently absent.
        let masks_dir = root.join("masks");
        let masks = if masks_dir.exists() {
            if !masks_dir.is_dir() {
                return Err(ds_err(&masks_dir, "exists but is not a folder"));
            }
            Some(list_dir(&masks_dir)?)
        } else {
            None
        };
        let csv_path = root.join("categories.csv");
        let csv = if csv_path.exists() {
            if !csv_path.is_file() {
                return Err(ds_err(&csv_path, "exists but is not a file"));
            }
            Some(crate::io::read_text_file(&csv_path)?)
        } else {
            None
        };
        let found_by_content = dicom_by_content(&root.join("images"), &images)?;
        Self::from_names(
            root,
            &images,
            &found_by_content,
            masks.as_deref(),
            csv.as_deref(),
            options,
        )
    }

    /// Builds a dataset from file names (as [`Dataset::open`] lists them) without touching
    /// the file system: `images` and `masks` are bare file names inside `root/images` and
    /// `root/masks`, `categories_csv` the text of `categories.csv`. Only names with one of the
    /// [`IMAGE_EXTENSIONS`] are images here: finding DICOM files of other names takes their
    /// content, which [`Dataset::open`] reads.
    ///
    /// # Errors
    /// As [`Dataset::open`].
    ///
    /// # Examples
    /// ```
    /// use std::path::Path;
    /// use xray_data::dataset::{Dataset, DatasetOptions};
    /// let names = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    /// let images = names(&["b.tif", "a.png", "notes.txt", ".hidden.png"]);
    /// let masks = names(&["a.png", "b.png"]);
    /// let ds = Dataset::from_listing(
    ///     Path::new("set"),
    ///     &images,
    ///     Some(&masks),
    ///     Some("a,hand\nb,knee\n"),
    ///     &DatasetOptions::default(),
    /// )?;
    /// // Other extensions and hidden files are skipped; samples are sorted by stem.
    /// let stems: Vec<_> = ds.samples.iter().map(|s| s.stem.as_str()).collect();
    /// assert_eq!(stems, ["a", "b"]);
    /// assert_eq!(ds.samples[1].image, Path::new("set/images/b.tif"));
    /// assert_eq!(ds.samples[1].mask.as_deref(), Some(Path::new("set/masks/b.png")));
    /// // An image without its mask is refused, naming the mask that is missing.
    /// let err = Dataset::from_listing(
    ///     Path::new("set"),
    ///     &images,
    ///     Some(&masks[..1]),
    ///     None,
    ///     &DatasetOptions::default(),
    /// )
    /// .unwrap_err();
    /// assert!(err.to_string().contains("b.png"), "{err}");
    /// # Ok::<(), xray_data::DataError>(())
    /// ```
    pub fn from_listing(
        root: &Path,
        images: &[String],
        masks: Option<&[String]>,
        categories_csv: Option<&str>,
        options: &DatasetOptions,
    ) -> Result<Dataset> {
        Self::from_names(root, images, &[], masks, categories_csv, options)
    }

    /// [`Dataset::from_listing`] plus `dicom_by_content`: names in `images` that
    /// [`Dataset::open`] found to be DICOM by their content, whatever their extension.
    fn from_names(
        root: &Path,
        images: &[String],
        dicom_by_content: &[String],
        masks: Option<&[String]>,
        categories_csv: Option<&str>,
        options: &DatasetOptions,
    ) -> Result<Dataset> {
        let image_dir = root.join("images");
        let mut by_stem: BTreeMap<&str, &str> = BTreeMap::new();
        for name in images {
            let stem = match split_name(name) {
                Some((stem, ext)) if IMAGE_EXTENSIONS.contains(&ext.as_str()) => stem,
                _ if dicom_by_content.contains(name) => content_dicom_stem(name),
                _ => continue,
            };
            if let Some(prev) = by_stem.insert(stem, name) {
                return Err(ds_err(
                    image_dir.join(name),
                    format!(
                        "duplicate stem {stem:?}: also {}",
                        image_dir.join(prev).display()
                    ),
                ));
            }
        }
        if by_stem.is_empty() {
            return Err(ds_err(
                &image_dir,
                format!(
                    "no images found (expected files with extensions {})",
                    IMAGE_EXTENSIONS.join(", ")
                ),
            ));
        }

        let mask_dir = root.join("masks");
        let mask_set: Option<BTreeMap<&str, &str>> = match masks {
            None => None,
            Some(list) => {
                let mut m = BTreeMap::new();
                for name in list {
                    let Some((stem, ext)) = split_name(name) else {
                        continue;
                    };
                    if ext != "png" {
                        continue;
                    }
                    if m.insert(stem, name.as_str()).is_some() {
                        return Err(ds_err(
                            mask_dir.join(name),
                            format!("duplicate mask stem {stem:?} (file names differing only in extension case)"),
                        ));
                    }
                    if !by_stem.contains_key(stem) {
                        return Err(ds_err(
                            mask_dir.join(name),
                            format!(
                                "mask without image: no images/{stem}.{{{}}}",
                                IMAGE_EXTENSIONS.join(",")
                            ),
                        ));
                    }
                }
                Some(m)
            }
        };

        let csv_path = root.join("categories.csv");
        let categories: Option<HashMap<String, String>> = match categories_csv {
            None => None,
            Some(text) => {
                let pairs = parse_categories(text, &csv_path)?;
                for (stem, _) in &pairs {
                    if !by_stem.contains_key(stem.as_str()) {
                        return Err(ds_err(
                            &csv_path,
                            format!("stem {stem:?} has no image in images/"),
                        ));
                    }
                }
                Some(pairs.into_iter().collect())
            }
        };

        let mut samples = Vec::with_capacity(by_stem.len());
        for (stem, name) in by_stem {
            let mask = match &mask_set {
                None => None,
                Some(m) => match m.get(stem) {
                    Some(mname) => Some(mask_dir.join(mname)),
                    None => {
                        return Err(ds_err(
                            mask_dir.join(format!("{stem}.png")),
                            format!("missing mask for image {}", image_dir.join(name).display()),
                        ))
                    }
                },
            };
            let category = match &categories {
                None => None,
                Some(c) => match c.get(stem) {
                    Some(cat) => Some(cat.clone()),
                    None => {
                        return Err(ds_err(
                            &csv_path,
                            format!("no category for image {}", image_dir.join(name).display()),
                        ))
                    }
                },
            };
            samples.push(Sample {
                stem: stem.to_string(),
                image: image_dir.join(name),
                mask,
                category,
            });
        }
        Ok(Dataset {
            root: root.to_path_buf(),
            samples,
            options: options.clone(),
        })
    }

    /// Number of samples.
    ///
    /// # Examples
    /// ```
    /// use std::path::Path;
    /// use xray_data::dataset::{Dataset, DatasetOptions};
    /// let names = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    /// let images = names(&["x.png", "y.dcm", "z.jpeg", "readme.md"]);
    /// let opts = DatasetOptions::default();
    /// let ds = Dataset::from_listing(Path::new("set"), &images, None, None, &opts)?;
    /// assert_eq!(ds.len(), 3); // readme.md is not an image
    /// # Ok::<(), xray_data::DataError>(())
    /// ```
    pub fn len(&self) -> usize {
        self.samples.len()
    }

    /// Whether the dataset has no samples (never true for an opened dataset).
    ///
    /// # Examples
    /// ```
    /// use std::path::Path;
    /// use xray_data::dataset::{Dataset, DatasetOptions};
    /// let names = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    /// let opts = DatasetOptions::default();
    /// let ds = Dataset::from_listing(Path::new("set"), &names(&["x.png"]), None, None, &opts)?;
    /// assert!(!ds.is_empty());
    /// // A listing without images is an error, not an empty dataset.
    /// assert!(Dataset::from_listing(Path::new("set"), &[], None, None, &opts).is_err());
    /// # Ok::<(), xray_data::DataError>(())
    /// ```
    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }

    /// Whether the dataset holds samples and every one has a mask (a training dataset),
    /// rather than none (inference). A dataset without samples (only a hand-built one:
    /// [`Dataset::open`] refuses an empty `images/`) has no masks to train or score on.
    ///
    /// # Examples
    /// ```
    /// use std::path::Path;
    /// use xray_data::dataset::{Dataset, DatasetOptions};
    /// let names = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    /// let images = names(&["x.png", "y.png"]);
    /// let opts = DatasetOptions::default();
    /// let inference = Dataset::from_listing(Path::new("set"), &images, None, None, &opts)?;
    /// assert!(!inference.has_masks());
    /// let masks = names(&["x.png", "y.png"]);
    /// let training = Dataset::from_listing(Path::new("set"), &images, Some(&masks), None, &opts)?;
    /// assert!(training.has_masks());
    /// let empty = Dataset { samples: Vec::new(), ..training };
    /// assert!(!empty.has_masks());
    /// # Ok::<(), xray_data::DataError>(())
    /// ```
    pub fn has_masks(&self) -> bool {
        !self.samples.is_empty() && self.samples.iter().all(|s| s.mask.is_some())
    }

    /// The category of every sample, in sample order; samples without one get `""`.
    ///
    /// # Examples
    /// ```
    /// use std::path::Path;
    /// use xray_data::dataset::{Dataset, DatasetOptions};
    /// let names = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    /// let images = names(&["b.png", "a.png"]);
    /// let opts = DatasetOptions::default();
    /// let csv = "stem,category\nb,knee\na,hand\n";
    /// let ds = Dataset::from_listing(Path::new("set"), &images, None, Some(csv), &opts)?;
    /// assert_eq!(ds.categories(), ["hand", "knee"]); // in sample (stem) order
    /// let plain = Dataset::from_listing(Path::new("set"), &images, None, None, &opts)?;
    /// assert_eq!(plain.categories(), ["", ""]);
    /// # Ok::<(), xray_data::DataError>(())
    /// ```
    pub fn categories(&self) -> Vec<String> {
        self.samples
            .iter()
            .map(|s| s.category.clone().unwrap_or_default())
            .collect()
    }

    /// Loads sample `index`: its radiograph and, when present, its mask, checked to have the
    /// image's size and only labels below `num_classes` or 255.
    ///
    /// # Errors
    /// [`DataError::InvalidParameter`] for an index out of range; the loaders' errors;
    /// [`DataError::SizeMismatch`] naming the mask when sizes differ.
    ///
    /// # Examples
    /// ```
    /// use xray_data::dataset::{Dataset, DatasetOptions};
    /// use xray_data::io::{save_mask, save_png16};
    /// use xray_data::{DataError, Mask, Radiograph};
    /// let name = format!("xray-doc-dataset-load-{}", std::process::id());
    /// let root = std::env::temp_dir().join(name);
    /// for d in ["images", "masks"] {
    ///     std::fs::create_dir_all(root.join(d)).map_err(|e| DataError::io(&root, e))?;
    /// }
    /// let image = Radiograph::from_fn(3, 2, |x, y| image::Luma([(100 * x + 10 * y) as f32]));
    /// save_png16(&root.join("images/a.png"), &image)?;
    /// let labels = Mask::from_raw(3, 2, vec![0, 1, 2, 255, 1, 0]).unwrap();
    /// save_mask(&root.join("masks/a.png"), &labels)?;
    /// save_png16(&root.join("images/b.png"), &image)?;
    /// save_mask(&root.join("masks/b.png"), &Mask::new(2, 2))?; // the wrong size
    /// let ds = Dataset::open(&root, &DatasetOptions::default())?;
    /// let (loaded, mask) = ds.load(0)?;
    /// assert_eq!(loaded, image); // 16-bit PNG keeps integer counts exactly
    /// assert_eq!(mask.map(|m| m.into_raw()), Some(vec![0, 1, 2, 255, 1, 0]));
    /// assert!(matches!(ds.load(1), Err(DataError::SizeMismatch { .. })));
    /// assert!(matches!(ds.load(2), Err(DataError::InvalidParameter(_))));
    /// // A label of no class is refused.
    /// let two = DatasetOptions { num_classes: 2, ..DatasetOptions::default() };
    /// assert!(Dataset::open(&root, &two)?.load(0).is_err());
    /// # std::fs::remove_dir_all(&root).ok();
    /// # Ok::<(), DataError>(())
    /// ```
    pub fn load(&self, index: usize) -> Result<(Radiograph, Option<Mask>)> {
        let (img, mask, _) = self.load_with_info(index)?;
        Ok((img, mask))
    }

    /// As [`Dataset::load`], with what the image's file says beyond its pixels
    /// ([`ImageInfo`]): a DICOM file's pixel spacing (for measuring in mm), body part,
    /// polarity.
    ///
    /// # Errors
    /// As [`Dataset::load`].
    ///
    /// # Examples
    /// ```
    /// use xray_data::dataset::{Dataset, DatasetOptions};
    /// use xray_data::io::{save_dicom, save_mask, save_png16, DicomWriteOptions};
    /// use xray_data::{DataError, Mask, Radiograph};
    /// let name = format!("xray-doc-dataset-info-{}", std::process::id());
    /// let root = std::env::temp_dir().join(name);
    /// for d in ["images", "masks"] {
    ///     std::fs::create_dir_all(root.join(d)).map_err(|e| DataError::io(&root, e))?;
    /// }
    /// let image = Radiograph::from_fn(3, 2, |x, y| image::Luma([(100 * x + 10 * y) as f32]));
    /// // A DICOM file with 0.2 mm between rows and 0.1 mm between columns, and a PNG.
    /// let dicom = DicomWriteOptions { pixel_spacing_mm: Some([0.2, 0.1]), ..Default::default() };
    /// save_dicom(&root.join("images/a.dcm"), &image, &dicom)?;
    /// save_png16(&root.join("images/b.png"), &image)?;
    /// for stem in ["a", "b"] {
    ///     save_mask(&root.join(format!("masks/{stem}.png")), &Mask::new(3, 2))?;
    /// }
    /// let ds = Dataset::open(&root, &DatasetOptions::default())?;
    /// let (_, mask, info) = ds.load_with_info(0)?;
    /// assert!(mask.is_some());
    /// let spacing = info.pixel_spacing.expect("the DICOM file's spacing");
    /// assert_eq!((spacing.row_mm(), spacing.column_mm()), (0.2, 0.1));
    /// assert_eq!(ds.load_with_info(1)?.2.pixel_spacing, None); // a PNG carries none
    /// # std::fs::remove_dir_all(&root).ok();
    /// # Ok::<(), DataError>(())
    /// ```
    pub fn load_with_info(&self, index: usize) -> Result<(Radiograph, Option<Mask>, ImageInfo)> {
        let s = self.samples.get(index).ok_or_else(|| {
            DataError::InvalidParameter(format!(
                "sample index {index} out of range (dataset has {})",
                self.samples.len()
            ))
        })?;
        let (img, info) = load_image_with_info(&s.image, &self.options.load)?;
        let mask = match &s.mask {
            None => None,
            Some(p) => {
                let m = load_mask_with_classes(p, self.options.num_classes)?;
                if m.dimensions() != img.dimensions() {
                    return Err(DataError::SizeMismatch {
                        path: p.clone(),
                        expected_width: img.width(),
                        expected_height: img.height(),
                        found_width: m.width(),
                        found_height: m.height(),
                    });
                }
                Some(m)
            }
        };
        Ok((img, mask, info))
    }

    /// Per-class pixel statistics of the masks of `indices` (e.g. the training split),
    /// loaded in parallel; feed [`super::ClassStats::inverse_frequency_weights`] or
    /// [`super::ClassStats::median_frequency_weights`] to a weighted loss.
    ///
    /// # Errors
    /// [`DataError::Dataset`] when the dataset has no samples or no masks; the first error
    /// of [`Dataset::load`].
    ///
    /// # Examples
    /// ```
    /// use xray_data::dataset::{Dataset, DatasetOptions};
    /// use xray_data::io::{save_mask, save_png16};
    /// use xray_data::{DataError, Mask, Radiograph};
    /// let root = std::env::temp_dir().join(format!("xray-doc-stats-{}", std::process::id()));
    /// for d in ["images", "masks"] {
    ///     std::fs::create_dir_all(root.join(d)).map_err(|e| DataError::io(&root, e))?;
    /// }
    /// for (stem, labels) in [("a", [0, 0, 1, 255]), ("b", [2, 2, 2, 1])] {
    ///     save_png16(&root.join(format!("images/{stem}.png")), &Radiograph::new(2, 2))?;
    ///     let mask = Mask::from_raw(2, 2, labels.to_vec()).unwrap();
    ///     save_mask(&root.join(format!("masks/{stem}.png")), &mask)?;
    /// }
    /// let ds = Dataset::open(&root, &DatasetOptions::default())?;
    /// let all = ds.class_stats(&[0, 1])?;
    /// assert_eq!((all.pixels.clone(), all.ignored, all.masks), (vec![2, 2, 3], 1, 2));
    /// assert_eq!(ds.class_stats(&[1])?.pixels, [0, 1, 3]); // only the split asked for
    /// // Without masks there is nothing to count.
    /// std::fs::remove_dir_all(root.join("masks")).map_err(|e| DataError::io(&root, e))?;
    /// let images_only = Dataset::open(&root, &DatasetOptions::default())?;
    /// assert!(matches!(images_only.class_stats(&[0]), Err(DataError::Dataset { .. })));
    /// # std::fs::remove_dir_all(&root).ok();
    /// # Ok::<(), DataError>(())
    /// ```
    pub fn class_stats(&self, indices: &[usize]) -> Result<super::ClassStats> {
        use rayon::prelude::*;
        if self.is_empty() {
            return Err(ds_err(&self.root, "no samples: nothing to count"));
        }
        if !self.has_masks() {
            return Err(ds_err(
                &self.root,
                "no masks/ folder: class statistics need masks",
            ));
        }
        let c = usize::from(self.options.num_classes);
        let parts: Vec<Result<super::ClassStats>> = indices
            .par_iter()
            .map(|&i| {
                let (_, m) = self.load(i)?;
                let mut s = super::ClassStats::new(c);
                if let Some(m) = m {
                    s.add(&m);
                }
                Ok(s)
            })
            .collect();
        let mut total = super::ClassStats::new(c);
        for p in parts {
            total.merge(&p?)?;
        }
        Ok(total)
    }

    /// Loads every sample in parallel and returns the first error in sample order: catches
    /// corrupt files, mis-sized masks and unknown labels before training starts.
    ///
    /// # Errors
    /// The first error of [`Dataset::load`].
    ///
    /// # Examples
    /// ```
    /// use xray_data::dataset::{Dataset, DatasetOptions};
    /// use xray_data::io::{save_mask, save_png16};
    /// use xray_data::{DataError, Mask, Radiograph};
    /// let root = std::env::temp_dir().join(format!("xray-doc-validate-{}", std::process::id()));
    /// for d in ["images", "masks"] {
    ///     std::fs::create_dir_all(root.join(d)).map_err(|e| DataError::io(&root, e))?;
    /// }
    /// for stem in ["a", "b", "c"] {
    ///     save_png16(&root.join(format!("images/{stem}.png")), &Radiograph::new(2, 2))?;
    ///     save_mask(&root.join(format!("masks/{stem}.png")), &Mask::new(2, 2))?;
    /// }
    /// let ds = Dataset::open(&root, &DatasetOptions::default())?;
    /// ds.validate()?;
    /// // Listing the folder reads no pixels; validate reads them all.
    /// let corrupt = root.join("images/b.png");
    /// std::fs::write(&corrupt, b"not a png").map_err(|e| DataError::io(&corrupt, e))?;
    /// let ds = Dataset::open(&root, &DatasetOptions::default())?;
    /// let err = ds.validate().unwrap_err();
    /// assert!(err.to_string().contains("b.png"), "{err}");
    /// # std::fs::remove_dir_all(&root).ok();
    /// # Ok::<(), DataError>(())
    /// ```
    pub fn validate(&self) -> Result<()> {
        use rayon::prelude::*;
        (0..self.len())
            .into_par_iter()
            .map(|i| self.load(i).map(|_| ()))
            .collect::<Vec<_>>()
            .into_iter()
            .collect()
    }
}
