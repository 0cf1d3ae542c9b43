//! Synthetic radiographs with exact labels (limb and trunk phantoms, X-ray physics, collimation).
//!
//! [`generate`] draws one [`Phantom`]: a limb, chest or pelvis (see [`BodyPart`]) rasterised as projected
//! soft-tissue and bone thickness ([`anatomy`]), exposed through a collimator
//! ([`collimation`]) with optional lead markers ([`markers`]) and formed into a 16-bit
//! image by the detector model ([`physics`]). The mask is computed from the same thickness
//! maps, so it is exact: bone where any bone is in the beam path, soft tissue where only
//! tissue is, open beam elsewhere, [`IGNORE_LABEL`] outside the collimated field and under
//! lead markers.
//!
//! Image values follow the crate convention (larger = more X-rays, open beam brightest)
//! in `0..=65535`, either linear in detector counts or log-processed (CR-like).
//!
//! # Examples
//! ```
//! use rand::SeedableRng;
//! use xray_data::synth::{generate, BodyPart, PhantomConfig};
//! let cfg = PhantomConfig::with_size(64);
//! let mut rng = rand::rngs::StdRng::seed_from_u64(1);
//! let p = generate(&cfg, BodyPart::Hand, &mut rng).unwrap();
//! assert_eq!(p.image.dimensions(), (64, 64));
//! assert!(p.mask.pixels().all(|m| [0, 1, 2, 255].contains(&m.0[0])));
//! ```

pub mod anatomy;
pub mod collimation;
pub mod markers;
pub mod physics;
pub mod preview;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use rand::{Rng, RngExt, SeedableRng};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

pub use anatomy::BodyPart;
pub use collimation::{CollimationConfig, FieldPolygon, Side};
pub use markers::{Marker, MarkerLetter};
pub use physics::{OutputScale, PhysicsConfig};
pub use preview::{preview, preview_grid};

use crate::error::{check_range, readable_number};
use crate::{DataError, Mask, Radiograph, Result, BONE, IGNORE_LABEL, OPEN_BEAM, SOFT_TISSUE};

/// Settings of the phantom generator. Every range is drawn uniformly per image.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PhantomConfig {
    /// Image width, pixels.
    pub width: u32,
    /// Image height, pixels.
    pub height: u32,
    /// Linear, log (CR-like) or a mix.
    pub output: OutputScale,
    /// X-ray physics ranges.
    pub physics: PhysicsConfig,
    /// Probability that an image is collimated (at least one blade shows).
    pub collimation_probability: f32,
    /// Collimator geometry ranges.
    pub collimation: CollimationConfig,
    /// Probability of a lead "L"/"R" marker in the field.
    pub marker_probability: f32,
    /// Relative frequency of each body part for [`sample_category`]; deliberately
    /// unbalanced by default, as clinical sets are.
    pub category_weights: BTreeMap<BodyPart, f32>,
}

/// The default, deliberately unbalanced category weights (hands common, femurs rare;
/// a tenth chests and as many pelvis and hip views together, so a model trained on the
/// default set has seen thick, air-filled anatomy).
///
/// # Examples
/// ```
/// use xray_data::synth::{default_category_weights, BodyPart, PhantomConfig};
/// let w = default_category_weights();
/// assert_eq!(w.len(), BodyPart::ALL.len()); // every body part can be drawn
/// assert!((w.values().sum::<f32>() - 1.0).abs() < 1e-6);
/// assert!(w[&BodyPart::Hand] > w[&BodyPart::Femur]); // unbalanced on purpose
/// assert_eq!(PhantomConfig::default().category_weights, w);
/// ```
pub fn default_category_weights() -> BTreeMap<BodyPart, f32> {
    [
        (BodyPart::Hand, 0.24),
        (BodyPart::Wrist, 0.14),
        (BodyPart::Knee, 0.13),
        (BodyPart::AnkleFoot, 0.10),
        (BodyPart::Chest, 0.10),
        (BodyPart::Forearm, 0.07),
        (BodyPart::LowerLeg, 0.06),
        (BodyPart::Pelvis, 0.05),
        (BodyPart::Elbow, 0.04),
        (BodyPart::Hip, 0.04),
        (BodyPart::Femur, 0.03),
    ]
    .into_iter()
    .collect()
}

impl Default for PhantomConfig {
    fn default() -> Self {
        Self {
            width: 256,
            height: 256,
            output: OutputScale::Mixed,
            physics: PhysicsConfig::default(),
            collimation_probability: 0.7,
            collimation: CollimationConfig::default(),
            marker_probability: 0.4,
            category_weights: default_category_weights(),
        }
    }
}

impl PhantomConfig {
    /// The default configuration for `size × size` images.
    ///
    /// # Examples
    /// ```
    /// use xray_data::synth::PhantomConfig;
    /// let cfg = PhantomConfig::with_size(64);
    /// assert_eq!((cfg.width, cfg.height), (64, 64));
    /// assert_eq!(cfg, PhantomConfig { width: 64, height: 64, ..PhantomConfig::default() });
    /// assert!(cfg.validate().is_ok());
    /// assert!(PhantomConfig::with_size(8).validate().is_err()); // below 16 pixels a side
    /// ```
    pub fn with_size(size: u32) -> Self {
        Self {
            width: size,
            height: size,
            ..Self::default()
        }
    }

    /// Check sizes, probabilities and ranges; every float setting must be finite (serde
    /// reads `1e308` as `inf`) and within its bounds (documented on each field of
    /// [`PhysicsConfig`] and [`CollimationConfig`]: a finite but huge value such as `3e38`
    /// is refused too), the category weights' sum must be finite, and the error names the
    /// first setting that fails.
    ///
    /// # Errors
    /// [`DataError::InvalidParameter`] naming that setting.
    ///
    /// # Examples
    /// ```
    /// use xray_data::synth::{BodyPart, PhantomConfig};
    /// use xray_data::DataError;
    /// assert!(PhantomConfig::default().validate().is_ok());
    /// let mut cfg = PhantomConfig::with_size(32);
    /// cfg.marker_probability = 1.5;
    /// let err = cfg.validate().unwrap_err();
    /// assert!(matches!(&err, DataError::InvalidParameter(m) if m.contains("marker_probability")));
    /// // A finite but absurd physics setting is refused too, by name.
    /// let mut cfg = PhantomConfig::with_size(32);
    /// cfg.physics.photons = [100.0, 3e38];
    /// assert!(cfg.validate().unwrap_err().to_string().contains("physics.photons"));
    /// let mut cfg = PhantomConfig::with_size(32);
    /// cfg.category_weights.insert(BodyPart::Knee, -1.0);
    /// assert!(cfg.validate().unwrap_err().to_string().contains("knee"));
    /// ```
    pub fn validate(&self) -> Result<()> {
        if !(16..=8192).contains(&self.width) || !(16..=8192).contains(&self.height) {
            return Err(DataError::InvalidParameter(format!(
                "phantom size {}x{} must be between 16 and 8192 pixels per side",
                self.width, self.height
            )));
        }
        for (name, p) in [
            ("collimation_probability", self.collimation_probability),
            ("marker_probability", self.marker_probability),
            (
                "physics.presentation_probability",
                self.physics.presentation_probability,
            ),
        ] {
            if !(0.0..=1.0).contains(&p) {
                return Err(DataError::InvalidParameter(format!(
                    "{name} = {} must be in [0, 1]",
                    readable_number(p)
                )));
            }
        }
        self.collimation.validate()?;
        let ph = &self.physics;
        // Each range's bounds (documented on its field): the upper ones lie far above any
        // realistic value, so that a finite but huge setting (`3e38`) is refused instead of
        // overflowing to infinity once scaled (or running a blur of σ = 3e38 pixels).
        for (name, r, lo, hi) in [
            ("mu_tissue", ph.mu_tissue, 1e-5, 1.0),
            ("bone_ratio", ph.bone_ratio, 1.0, 100.0),
            ("hardening", ph.hardening, 0.0, 10.0),
            ("heel", ph.heel, 0.0, 1.0),
            ("scatter", ph.scatter, 0.0, 100.0),
            ("detector_blur_px", ph.detector_blur_px, 0.0, 32.0),
            ("photons", ph.photons, 1.0, 1e9),
            ("electronic_noise", ph.electronic_noise, 0.0, 1e6),
            ("gain_variation", ph.gain_variation, 0.0, 1.0),
            ("unsharp_sigma", ph.unsharp_sigma, 0.0, 1.0),
            ("unsharp_gain", ph.unsharp_gain, 0.0, 100.0),
        ] {
            check_range(&format!("physics.{name}"), r, lo, hi)?;
        }
        if ph.heel[1] >= 1.0 {
            return Err(DataError::InvalidParameter(
                "physics.heel must stay below 1".into(),
            ));
        }
        check_weights(&self.category_weights)?;
        Ok(())
    }
}

fn check_weights(w: &BTreeMap<BodyPart, f32>) -> Result<f32> {
    let mut total = 0.0;
    for (part, &v) in w {
        if !(v.is_finite() && v >= 0.0) {
            return Err(DataError::InvalidParameter(format!(
                "category weight of {part} is {}; weights must be finite and >= 0",
                readable_number(v)
            )));
        }
        total += v;
    }
    if !total.is_finite() {
        return Err(DataError::InvalidParameter(format!(
            "category weights sum to {}; weights are relative frequencies: scale them down",
            readable_number(total)
        )));
    }
    if total <= 0.0 {
        return Err(DataError::InvalidParameter(
            "category weights are all zero: give at least one body part a positive weight".into(),
        ));
    }
    Ok(total)
}

/// Draw a body part with probability proportional to its weight.
///
/// # Errors
/// [`DataError::InvalidParameter`] when a weight is negative or not finite, all are 0, or
/// their sum is beyond the `f32` range.
///
/// # Examples
/// ```
/// use rand::SeedableRng;
/// use std::collections::BTreeMap;
/// use xray_data::synth::{sample_category, BodyPart};
/// let mut rng = rand::rngs::StdRng::seed_from_u64(5);
/// let weights = BTreeMap::from([
///     (BodyPart::Hand, 3.0),
///     (BodyPart::Knee, 1.0),
///     (BodyPart::Hip, 0.0),
/// ]);
/// let mut hands = 0;
/// for _ in 0..1000 {
///     match sample_category(&mut rng, &weights)? {
///         BodyPart::Hand => hands += 1,
///         BodyPart::Knee => {}
///         other => panic!("{other} has weight 0"),
///     }
/// }
/// assert!((650..850).contains(&hands), "{hands}"); // about 3 in 4
/// let zero = BTreeMap::from([(BodyPart::Hand, 0.0)]);
/// assert!(sample_category(&mut rng, &zero).is_err());
/// # Ok::<(), xray_data::DataError>(())
/// ```
pub fn sample_category(rng: &mut impl Rng, weights: &BTreeMap<BodyPart, f32>) -> Result<BodyPart> {
    let total = check_weights(weights)?;
    let mut u = rng.random_range(0.0..total);
    let mut last = BodyPart::Hand;
    for (&part, &v) in weights {
        if v > 0.0 {
            last = part;
            if u < v {
                return Ok(part);
            }
            u -= v;
        }
    }
    Ok(last)
}

/// One synthetic radiograph with its exact labels.
#[derive(Debug, Clone)]
pub struct Phantom {
    /// The image, `0..=65535`, larger = more X-rays.
    pub image: Radiograph,
    /// Labels: 0 open beam, 1 soft tissue, 2 bone, 255 outside the field or under lead.
    pub mask: Mask,
    /// The collimated field (polygon in image coordinates plus which blades cut).
    pub field: FieldPolygon,
    /// The body part.
    pub category: BodyPart,
    /// The lead marker, if one was placed.
    pub marker: Option<Marker>,
    /// Whether the values are log-processed (CR-like) rather than linear.
    pub log_output: bool,
}

/// Generate one phantom of the given body part.
///
/// # Errors
/// [`DataError::InvalidParameter`] when `cfg` fails [`PhantomConfig::validate`].
///
/// # Examples
/// ```
/// use rand::SeedableRng;
/// use xray_data::synth::{generate, BodyPart, OutputScale, PhantomConfig};
/// use xray_data::IGNORE_LABEL;
/// let mut cfg = PhantomConfig::with_size(32);
/// cfg.collimation_probability = 1.0; // always at least one blade
/// cfg.output = OutputScale::Linear;
/// let mut rng = rand::rngs::StdRng::seed_from_u64(3);
/// let p = generate(&cfg, BodyPart::Knee, &mut rng)?;
/// assert_eq!(p.category, BodyPart::Knee);
/// assert!(p.field.is_collimated() && !p.log_output);
/// assert!(p.image.pixels().all(|v| (0.0..=65535.0).contains(&v.0[0])));
/// // Pixels outside the collimated field are labelled "ignore".
/// for (x, y, m) in p.mask.enumerate_pixels() {
///     if !p.field.contains_pixel(x, y) {
///         assert_eq!(m.0[0], IGNORE_LABEL);
///     }
/// }
/// cfg.width = 4; // too small
/// assert!(generate(&cfg, BodyPart::Knee, &mut rng).is_err());
/// # Ok::<(), xray_data::DataError>(())
/// ```
pub fn generate(cfg: &PhantomConfig, category: BodyPart, rng: &mut impl Rng) -> Result<Phantom> {
    cfg.validate()?;
    let (w, h) = (cfg.width as usize, cfg.height as usize);
    let size = w.min(h) as f32;
    let anat = anatomy::build(category, rng);
    let pose = anatomy::sample_pose(&anat, w, h, rng);
    let maps = anat.rasterise(w, h, &pose);

    let field = if rng.random_bool(cfg.collimation_probability as f64) {
        collimation::sample_field(cfg.width, cfg.height, &cfg.collimation, true, rng)?
    } else {
        FieldPolygon::full(cfg.width, cfg.height)
    };
    let dist = field.distance_map(cfg.width, cfg.height);
    let penumbra = physics::draw(rng, cfg.collimation.penumbra_px) * size / 256.0;
    let leakage = physics::draw(rng, cfg.collimation.leakage);
    let blades = collimation::transmission(&dist, penumbra, leakage);

    let mut lead = vec![1.0f32; w * h];
    let mut marker_cover = Vec::new();
    let marker = if rng.random_bool(cfg.marker_probability as f64) {
        markers::place(&field, w, h, rng)
    } else {
        None
    };
    if let Some(m) = &marker {
        let (x0, x1, y0, y1) = m.bbox(w, h);
        for y in y0..y1 {
            for x in x0..x1 {
                let c = m.coverage(x, y);
                if c > 0.0 {
                    // About 3 % of the beam passes the lead.
                    lead[y * w + x] = 1.0 - 0.97 * c;
                    marker_cover.push((y * w + x, c));
                }
            }
        }
    }
    let log_output = match cfg.output {
        OutputScale::Linear => false,
        OutputScale::Log => true,
        OutputScale::Mixed => rng.random_bool(0.5),
    };
    let exposure = physics::Exposure {
        tissue: &maps.tissue,
        bone: &maps.bone,
        blades: &blades,
        marker: &lead,
        technique: anat.technique,
    };
    let values = physics::expose(&exposure, w, h, &cfg.physics, log_output, rng)?;

    let mut labels: Vec<u8> = dist
        .iter()
        .zip(maps.tissue.iter().zip(&maps.bone))
        .map(|(&d, (&t, &b))| {
            if d > 0.0 {
                IGNORE_LABEL
            } else if b > 0.0 {
                BONE
            } else if t > 0.0 {
                SOFT_TISSUE
            } else {
                OPEN_BEAM
            }
        })
        .collect();
    for (i, c) in marker_cover {
        if c >= 0.5 {
            labels[i] = IGNORE_LABEL;
        }
    }
    let image = Radiograph::from_raw(cfg.width, cfg.height, values)
        .ok_or_else(|| DataError::InvalidParameter("internal: image buffer size".into()))?;
    let mask = Mask::from_raw(cfg.width, cfg.height, labels)
        .ok_or_else(|| DataError::InvalidParameter("internal: mask buffer size".into()))?;
    Ok(Phantom {
        image,
        mask,
        field,
        category,
        marker,
        log_output,
    })
}

/// What [`generate_dataset`] wrote.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DatasetSummary {
    /// The dataset folder.
    pub dir: PathBuf,
    /// File stems in index order (`synth_00000`, ...).
    pub stems: Vec<String>,
    /// Body part of each stem, same order.
    pub categories: Vec<BodyPart>,
}

impl DatasetSummary {
    /// Number of images per body part.
    ///
    /// # Examples
    /// ```
    /// use xray_data::synth::{BodyPart, DatasetSummary};
    /// let summary = DatasetSummary {
    ///     dir: "set".into(),
    ///     stems: vec!["synth_00000".into(), "synth_00001".into(), "synth_00002".into()],
    ///     categories: vec![BodyPart::Hand, BodyPart::Chest, BodyPart::Hand],
    /// };
    /// let counts = summary.counts();
    /// assert_eq!(counts[&BodyPart::Hand], 2);
    /// assert_eq!(counts[&BodyPart::Chest], 1);
    /// assert!(!counts.contains_key(&BodyPart::Knee)); // only parts that occur
    /// ```
    pub fn counts(&self) -> BTreeMap<BodyPart, usize> {
        let mut m = BTreeMap::new();
        for &c in &self.categories {
            *m.entry(c).or_insert(0) += 1;
        }
        m
    }
}

/// Independent, well-mixed seed for item `index` of a dataset seeded with `seed`
/// (SplitMix64), so every image is the same whatever the thread count or order.
///
/// # Examples
/// ```
/// use xray_data::synth::item_seed;
/// assert_eq!(item_seed(7, 3), item_seed(7, 3)); // a pure function of (seed, index)
/// // Neighbouring items and neighbouring data sets get unrelated seeds.
/// assert_ne!(item_seed(7, 3), item_seed(7, 4));
/// assert_ne!(item_seed(7, 3), item_seed(8, 3));
/// assert!((item_seed(0, 0) ^ item_seed(0, 1)).count_ones() > 10);
/// ```
pub fn item_seed(seed: u64, index: u64) -> u64 {
    let mut z = seed
        ^ index
            .wrapping_mul(0x9E37_79B9_7F4A_7C15)
            .wrapping_add(0xD1B5_4A32_D192_ED03);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Generate item `index` of a seeded dataset: category then phantom, from
/// [`item_seed`]`(seed, index)`.
///
/// # Errors
/// As [`generate`].
///
/// # Examples
/// ```
/// use rand::SeedableRng;
/// use xray_data::synth::{generate, generate_item, item_seed, sample_category, PhantomConfig};
/// let cfg = PhantomConfig::with_size(24);
/// let a = generate_item(&cfg, 11, 5)?;
/// // The same as drawing category then phantom from the item's own seed...
/// let mut rng = rand::rngs::StdRng::seed_from_u64(item_seed(11, 5));
/// let category = sample_category(&mut rng, &cfg.category_weights)?;
/// let b = generate(&cfg, category, &mut rng)?;
/// assert_eq!((a.category, &a.image, &a.mask), (b.category, &b.image, &b.mask));
/// // ...so it can be regenerated alone, in any order.
/// assert_eq!(generate_item(&cfg, 11, 5)?.image, a.image);
/// # Ok::<(), xray_data::DataError>(())
/// ```
pub fn generate_item(cfg: &PhantomConfig, seed: u64, index: u64) -> Result<Phantom> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(item_seed(seed, index));
    let category = sample_category(&mut rng, &cfg.category_weights)?;
    generate(cfg, category, &mut rng)
}

/// Write `count` phantoms of `size × size` with the default configuration into `dir` (see
/// [`generate_dataset_with`] for the layout).
///
/// # Errors
/// As [`generate_dataset_with`].
///
/// # Examples
/// ```
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use xray_data::synth::{generate_dataset, generate_item, PhantomConfig};
/// let dir = std::env::temp_dir().join(format!("xray-doc-synth-set-{}", std::process::id()));
/// let summary = generate_dataset(&dir, 3, 32, 7)?;
/// assert_eq!(summary.stems, ["synth_00000", "synth_00001", "synth_00002"]);
/// assert!(dir.join("images/synth_00002.png").is_file());
/// assert!(dir.join("masks/synth_00002.png").is_file());
/// let csv = std::fs::read_to_string(dir.join("categories.csv"))?;
/// assert_eq!(csv.lines().count(), 1 + 3); // header, then one row per image
/// // Item `i` depends only on the seed and `i`: regenerate one alone.
/// let item = generate_item(&PhantomConfig::with_size(32), 7, 1)?;
/// assert_eq!(item.category, summary.categories[1]);
/// assert!(generate_dataset(&dir, 0, 32, 7).is_err()); // an empty data set
/// # std::fs::remove_dir_all(&dir).ok();
/// # Ok(())
/// # }
/// ```
pub fn generate_dataset(dir: &Path, count: usize, size: u32, seed: u64) -> Result<DatasetSummary> {
    generate_dataset_with(dir, count, &PhantomConfig::with_size(size), seed, &|| {})
}

/// Write `count` phantoms into `dir`, in parallel (rayon), deterministic by `seed`:
///
/// ```text
/// dir/images/<stem>.png   16-bit grayscale, larger = more X-rays
/// dir/masks/<stem>.png    8-bit labels 0/1/2/255
/// dir/categories.csv      header `stem,category`, one row per image
/// dir/fields.json         per stem: collimated field polygon and cut blades
/// ```
///
/// `progress` is called once per image written (from worker threads).
///
/// A folder that already holds a data set may be written again (the same call rewrites the
/// same files), but not with fewer images: `images/` and `masks/` may hold no file that this
/// call does not write, since such a file would stay behind, unlisted in the new
/// `categories.csv`, and mix two data sets in one folder.
///
/// # Errors
/// [`DataError::InvalidParameter`] for a `count` of 0 (an empty data set, which nothing can
/// train or be scored on) or a bad configuration, [`DataError::Dataset`] naming a
/// file in `images/` or `masks/` that this call would not replace, [`DataError::Io`] naming
/// the file that could not be written.
///
/// # Examples
/// ```
/// use std::sync::atomic::{AtomicUsize, Ordering};
/// use xray_data::synth::{generate_dataset_with, PhantomConfig};
/// use xray_data::DataError;
/// let dir = std::env::temp_dir().join(format!("xray-doc-synth-with-{}", std::process::id()));
/// let mut cfg = PhantomConfig::with_size(24);
/// cfg.marker_probability = 0.0;
/// let written = AtomicUsize::new(0);
/// let progress = || {
///     written.fetch_add(1, Ordering::Relaxed);
/// };
/// let summary = generate_dataset_with(&dir, 2, &cfg, 1, &progress)?;
/// assert_eq!(written.load(Ordering::Relaxed), 2); // once per image
/// assert_eq!(summary.stems.len(), 2);
/// assert!(dir.join("fields.json").is_file());
/// // The same call may run again; fewer images into the same folder may not.
/// generate_dataset_with(&dir, 2, &cfg, 1, &|| {})?;
/// let err = generate_dataset_with(&dir, 1, &cfg, 1, &|| {}).unwrap_err();
/// // synth_00001.png would stay behind, unlisted.
/// assert!(matches!(&err, DataError::Dataset { message, .. } if message.contains("synth_00001")));
/// # std::fs::remove_dir_all(&dir).ok();
/// # Ok::<(), DataError>(())
/// ```
pub fn generate_dataset_with(
    dir: &Path,
    count: usize,
    cfg: &PhantomConfig,
    seed: u64,
    progress: &(dyn Fn() + Sync),
) -> Result<DatasetSummary> {
    if count == 0 {
        return Err(DataError::InvalidParameter(format!(
            "a synthetic data set needs at least 1 image, asked for 0 (into {})",
            dir.display()
        )));
    }
    cfg.validate()?;
    let images = dir.join("images");
    let masks = dir.join("masks");
    for d in [&images, &masks] {
        check_only_own_files(d, count)?;
    }
    for d in [&images, &masks] {
        std::fs::create_dir_all(d).map_err(|e| DataError::Io {
            path: d.clone(),
            source: e,
        })?;
    }
    let results: Vec<Result<(String, BodyPart, FieldPolygon)>> = (0..count)
        .into_par_iter()
        .map(|i| {
            let p = generate_item(cfg, seed, i as u64)?;
            let stem = format!("synth_{i:05}");
            crate::io::save_png16(&images.join(format!("{stem}.png")), &p.image)?;
            crate::io::save_mask(&masks.join(format!("{stem}.png")), &p.mask)?;
            progress();
            Ok((stem, p.category, p.field))
        })
        .collect();
    let mut summary = DatasetSummary {
        dir: dir.to_path_buf(),
        stems: Vec::new(),
        categories: Vec::new(),
    };
    let mut fields = Vec::with_capacity(count);
    for r in results {
        let (stem, cat, field) = r?;
        fields.push(serde_json::json!({ "stem": stem, "field": field }));
        summary.stems.push(stem);
        summary.categories.push(cat);
    }
    let mut csv = String::from("stem,category\n");
    for (s, c) in summary.stems.iter().zip(&summary.categories) {
        csv.push_str(&format!("{s},{}\n", c.name()));
    }
    write_file(&dir.join("categories.csv"), csv.as_bytes())?;
    let json = serde_json::to_vec_pretty(&fields)
        .map_err(|e| DataError::InvalidParameter(format!("cannot serialise fields: {e}")))?;
    write_file(&dir.join("fields.json"), &json)?;
    Ok(summary)
}

/// Refuses a folder (`images/` or `masks/` of a data set being written) holding any entry
/// other than the `synth_<i>.png`, `i < count`, that [`generate_dataset_with`] writes.
fn check_only_own_files(dir: &Path, count: usize) -> Result<()> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(DataError::io(dir, e)),
    };
    let mut others = Vec::new();
    for entry in entries {
        let name = entry.map_err(|e| DataError::io(dir, e))?.file_name();
        let ours = name
            .to_str()
            .and_then(|n| n.strip_prefix("synth_")?.strip_suffix(".png"))
            .and_then(|i| i.parse::<usize>().ok())
            .is_some_and(|i| {
                i < count && name.to_str() == Some(format!("synth_{i:05}.png").as_str())
            });
        if !ours {
            others.push(name.to_string_lossy().into_owned());
        }
    }
    if others.is_empty() {
        return Ok(());
    }
    others.sort();
    Err(DataError::Dataset {
        path: dir.to_path_buf(),
        message: format!(
            "holds {} file(s) that a data set of {count} image(s) would not replace (e.g. {}): \
             they would stay behind and mix two data sets; write into a new or empty folder",
            others.len(),
            others[0]
        ),
    })
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<()> {
    crate::io::write_atomic(path, bytes)
}

/// Save an RGB preview (as made by [`preview()`] or [`preview_grid`]) as PNG, replacing the
/// file atomically as [`save_png16`](crate::io::save_png16) does.
///
/// # Errors
/// [`DataError::Io`] naming the file.
///
/// # Examples
/// ```
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use xray_data::synth::{preview, save_preview};
/// use xray_data::{Mask, Radiograph};
/// let image = Radiograph::from_fn(8, 6, |x, _| image::Luma([100.0 * x as f32]));
/// let mask = Mask::from_pixel(8, 6, image::Luma([1]));
/// let rgb = preview(&image, &mask);
/// let path = std::env::temp_dir().join(format!("xray-doc-preview-{}.png", std::process::id()));
/// save_preview(&path, &rgb)?;
/// let back = image::open(&path)?.into_rgb8();
/// assert_eq!(back, rgb); // PNG is lossless
/// std::fs::remove_file(&path)?;
/// // An unwritable path is an I/O error naming it.
/// let err = save_preview(&path.join("inside-a-file.png"), &rgb).unwrap_err();
/// assert!(matches!(err, xray_data::DataError::Io { .. }), "{err}");
/// # Ok(())
/// # }
/// ```
pub fn save_preview(path: &Path, rgb: &image::RgbImage) -> Result<()> {
    let mut bytes = std::io::Cursor::new(Vec::new());
    rgb.write_to(&mut bytes, image::ImageFormat::Png)
        .map_err(|e| DataError::Io {
            path: path.to_path_buf(),
            source: std::io::Error::other(e),
        })?;
    crate::io::write_atomic(path, bytes.get_ref())
}
