//! A seeded sequence of transforms with probabilities, built from a serde config.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::{
    check_same_size, Affine, Border, BrightnessContrast, CollimatorSim, Elastic, Gamma,
    GaussianBlur, GaussianNoise, HorizontalFlip, ImageTransform, PoissonNoise, RandomCrop,
    Transform, VerticalFlip,
};
use crate::error::readable_number;
use crate::synth::item_seed;
use crate::{DataError, Mask, Radiograph, Result};
use std::path::{Path, PathBuf};

/// One transform with its settings, tagged by `type` in JSON/TOML
/// (e.g. `{"type": "affine", "rotate_deg": [-15, 15]}`); omitted settings take the
/// transform's defaults.
///
/// A setting the transform does not have is an error (a misspelt name would otherwise leave
/// the default in place without a word), and so is any setting given to a flip.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum TransformSpec {
    /// [`HorizontalFlip`].
    #[serde(deserialize_with = "no_settings")]
    HorizontalFlip,
    /// [`VerticalFlip`].
    #[serde(deserialize_with = "no_settings")]
    VerticalFlip,
    /// [`Affine`].
    Affine(Affine),
    /// [`RandomCrop`].
    RandomCrop(RandomCrop),
    /// [`Elastic`] (joint, or image-only with `image_only = true`).
    Elastic(Elastic),
    /// [`GaussianBlur`] (image only).
    GaussianBlur(GaussianBlur),
    /// [`GaussianNoise`] (image only).
    GaussianNoise(GaussianNoise),
    /// [`PoissonNoise`] (image only).
    PoissonNoise(PoissonNoise),
    /// [`Gamma`] (image only).
    Gamma(Gamma),
    /// [`BrightnessContrast`] (image only).
    BrightnessContrast(BrightnessContrast),
    /// [`CollimatorSim`].
    Collimator(CollimatorSim),
    /// Exactly one of the choices, drawn uniformly.
    OneOf {
        /// The alternatives.
        choices: Vec<TransformSpec>,
    },
}

/// A transform and the probability of applying it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepConfig {
    /// Probability in `[0, 1]` (default 1).
    #[serde(default = "one")]
    pub p: f32,
    /// The transform.
    #[serde(flatten)]
    pub transform: TransformSpec,
}

fn one() -> f32 {
    1.0
}

/// The settings of a transform that has none (a flip): any key besides `type` and `p` is an
/// error naming it.
fn no_settings<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> std::result::Result<(), D::Error> {
    struct NoSettings;
    impl<'de> serde::de::Visitor<'de> for NoSettings {
        type Value = ();
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("no settings besides `type`")
        }
        fn visit_unit<E: serde::de::Error>(self) -> std::result::Result<(), E> {
            Ok(())
        }
        fn visit_map<M: serde::de::MapAccess<'de>>(
            self,
            mut map: M,
        ) -> std::result::Result<(), M::Error> {
            match map.next_key::<String>()? {
                None => Ok(()),
                Some(key) => Err(serde::de::Error::custom(format!(
                    "unknown field `{key}`: a flip takes no settings (a step's `p` goes beside \
                     its `type`, not inside a one_of choice)"
                ))),
            }
        }
    }
    deserializer.deserialize_any(NoSettings)
}

/// A pipeline configuration: steps applied in order.
///
/// JSON: `{"steps": [{"type": "horizontal_flip", "p": 0.5}, {"type": "affine"}]}`.
/// TOML: `[[steps]]` tables with the same keys.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipelineConfig {
    /// The steps, in order.
    pub steps: Vec<StepConfig>,
}

impl PipelineConfig {
    /// The XNet reference's on-the-fly augmentation: flips (p = 0.5 each), affine
    /// (±1 % translate, ±15° rotate, ±2° shear, reflect), a random crop keeping 60–90 % of
    /// each side resized back, then one of a Gaussian blur (σ ≤ 0.4) or the mild image-only
    /// elastic jitter.
    ///
    /// # Examples
    /// ```
    /// use xray_data::augment::{Pipeline, PipelineConfig, TransformSpec};
    /// let cfg = PipelineConfig::xnet();
    /// let kinds: Vec<_> = cfg.steps.iter().map(|s| (&s.transform, s.p)).collect();
    /// assert!(matches!(kinds[0], (TransformSpec::HorizontalFlip, 0.5)));
    /// assert!(matches!(kinds[1], (TransformSpec::VerticalFlip, 0.5)));
    /// assert!(matches!(kinds[2], (TransformSpec::Affine(_), 1.0)));
    /// assert!(matches!(kinds[3], (TransformSpec::RandomCrop(c), 1.0) if c.keep == [0.6, 0.9]));
    /// match kinds[4].0 {
    ///     TransformSpec::OneOf { choices } => assert_eq!(choices.len(), 2),
    ///     other => panic!("expected one_of, got {other:?}"),
    /// }
    /// assert_eq!(Pipeline::from_config(&cfg)?.len(), 5); // every setting is valid
    /// # Ok::<(), xray_data::DataError>(())
    /// ```
    pub fn xnet() -> Self {
        Self {
            steps: vec![
                StepConfig {
                    p: 0.5,
                    transform: TransformSpec::HorizontalFlip,
                },
                StepConfig {
                    p: 0.5,
                    transform: TransformSpec::VerticalFlip,
                },
                StepConfig {
                    p: 1.0,
                    transform: TransformSpec::Affine(Affine::default()),
                },
                StepConfig {
                    p: 1.0,
                    transform: TransformSpec::RandomCrop(RandomCrop::default()),
                },
                StepConfig {
                    p: 1.0,
                    transform: TransformSpec::OneOf {
                        choices: vec![
                            TransformSpec::GaussianBlur(GaussianBlur { sigma: [0.0, 0.4] }),
                            TransformSpec::Elastic(Elastic::xnet_mild()),
                        ],
                    },
                },
            ],
        }
    }

    /// [`PipelineConfig::xnet`] without its random crop: flips, affine, then one of the blur
    /// or the mild elastic jitter. The train job's default: networks that infer on whole
    /// radiographs resized to their input see anatomy at the scale they trained on, where
    /// the crop enlarged it 1.1–1.7× (measured in docs/augmentation.md).
    ///
    /// # Examples
    /// ```
    /// use xray_data::augment::{PipelineConfig, TransformSpec};
    /// let uncropped = PipelineConfig::xnet_no_crop();
    /// assert_eq!(uncropped.steps.len(), PipelineConfig::xnet().steps.len() - 1);
    /// assert!(!uncropped
    ///     .steps
    ///     .iter()
    ///     .any(|s| matches!(s.transform, TransformSpec::RandomCrop(_))));
    /// ```
    pub fn xnet_no_crop() -> Self {
        let mut c = Self::xnet();
        c.steps
            .retain(|s| !matches!(s.transform, TransformSpec::RandomCrop(_)));
        c
    }

    /// [`PipelineConfig::xnet`] plus the reference's strong joint elastic deformation
    /// (α 50–60 px, σ 16 px, p = 0.5) after the affine step, and collimator simulation
    /// (p = 0.3) so uncollimated images teach the 255 border.
    ///
    /// # Examples
    /// ```
    /// use xray_data::augment::{Pipeline, PipelineConfig, TransformSpec};
    /// let strong = PipelineConfig::xnet_strong();
    /// assert_eq!(strong.steps.len(), PipelineConfig::xnet().steps.len() + 2);
    /// // The joint elastic deformation follows the affine step...
    /// assert!(matches!(strong.steps[2].transform, TransformSpec::Affine(_)));
    /// match &strong.steps[3].transform {
    ///     TransformSpec::Elastic(e) => {
    ///         assert!(!e.image_only); // it moves the mask too
    ///         assert_eq!(strong.steps[3].p, 0.5);
    ///     }
    ///     other => panic!("expected elastic, got {other:?}"),
    /// }
    /// // ...and the collimator simulation comes last.
    /// let last = strong.steps.last().unwrap();
    /// assert!(matches!(last.transform, TransformSpec::Collimator(_)));
    /// assert_eq!(last.p, 0.3);
    /// Pipeline::from_config(&strong)?;
    /// # Ok::<(), xray_data::DataError>(())
    /// ```
    pub fn xnet_strong() -> Self {
        let mut c = Self::xnet();
        c.steps.insert(
            3,
            StepConfig {
                p: 0.5,
                transform: TransformSpec::Elastic(Elastic::xnet_strong()),
            },
        );
        c.steps.push(StepConfig {
            p: 0.3,
            transform: TransformSpec::Collimator(CollimatorSim::default()),
        });
        c
    }

    /// Parse JSON.
    ///
    /// # Errors
    /// [`DataError::InvalidParameter`] with serde's message (line and column).
    ///
    /// # Examples
    /// ```
    /// use xray_data::augment::{PipelineConfig, TransformSpec};
    /// use xray_data::DataError;
    /// let cfg = PipelineConfig::from_json(
    ///     r#"{"steps": [{"type": "horizontal_flip", "p": 0.5}, {"type": "gamma"}]}"#,
    /// )?;
    /// assert_eq!(cfg.steps[0].transform, TransformSpec::HorizontalFlip);
    /// assert_eq!(cfg.steps[0].p, 0.5);
    /// assert_eq!(cfg.steps[1].p, 1.0); // `p` defaults to 1
    /// let TransformSpec::Gamma(g) = cfg.steps[1].transform else { panic!() };
    /// assert_eq!(g.gamma, [0.8, 1.25]); // the transform's defaults
    /// // A misspelt setting is an error, not a silent default.
    /// let err = PipelineConfig::from_json(r#"{"steps": [{"type": "gamma", "gama": [1, 2]}]}"#)
    ///     .unwrap_err();
    /// assert!(matches!(&err, DataError::InvalidParameter(m) if m.contains("gama")), "{err}");
    /// # Ok::<(), DataError>(())
    /// ```
    pub fn from_json(text: &str) -> Result<Self> {
        serde_json::from_str(text)
            .map_err(|e| DataError::InvalidParameter(format!("augmentation config (JSON): {e}")))
    }

    /// Parse TOML.
    ///
    /// # Errors
    /// [`DataError::InvalidParameter`] with the TOML parser's message.
    ///
    /// # Examples
    /// ```
    /// use xray_data::augment::{GaussianBlur, PipelineConfig, StepConfig, TransformSpec};
    /// let cfg = PipelineConfig::from_toml(
    ///     "[[steps]]\ntype = \"vertical_flip\"\np = 0.25\n\n\
    ///      [[steps]]\ntype = \"gaussian_blur\"\nsigma = [0.5, 1.0]\n",
    /// )?;
    /// assert_eq!(
    ///     cfg.steps,
    ///     [
    ///         StepConfig { p: 0.25, transform: TransformSpec::VerticalFlip },
    ///         StepConfig {
    ///             p: 1.0,
    ///             transform: TransformSpec::GaussianBlur(GaussianBlur { sigma: [0.5, 1.0] }),
    ///         },
    ///     ]
    /// );
    /// assert!(PipelineConfig::from_toml("[[steps]]\ntype = \"no_such_transform\"\n").is_err());
    /// # Ok::<(), xray_data::DataError>(())
    /// ```
    pub fn from_toml(text: &str) -> Result<Self> {
        toml::from_str(text)
            .map_err(|e| DataError::InvalidParameter(format!("augmentation config (TOML): {e}")))
    }

    /// Read a `.json` or `.toml` file (by extension).
    ///
    /// # Errors
    /// [`DataError::Io`] or [`DataError::InvalidParameter`] naming the file.
    ///
    /// # Examples
    /// ```
    /// use xray_data::augment::{PipelineConfig, TransformSpec};
    /// let dir = std::env::temp_dir().join(format!("xray-doc-pipeline-{}", std::process::id()));
    /// std::fs::create_dir_all(&dir).map_err(|e| xray_data::DataError::io(&dir, e))?;
    /// // TOML by extension (any case)...
    /// let toml = dir.join("aug.TOML");
    /// std::fs::write(&toml, "[[steps]]\ntype = \"horizontal_flip\"\n")
    ///     .map_err(|e| xray_data::DataError::io(&toml, e))?;
    /// let cfg = PipelineConfig::from_file(&toml)?;
    /// assert_eq!(cfg.steps[0].transform, TransformSpec::HorizontalFlip);
    /// // ...JSON otherwise; a parse error names the file.
    /// let json = dir.join("aug.json");
    /// std::fs::write(&json, r#"{"steps": [{"type": "affine", "rotate": 5}]}"#)
    ///     .map_err(|e| xray_data::DataError::io(&json, e))?;
    /// let err = PipelineConfig::from_file(&json).unwrap_err();
    /// assert!(err.to_string().contains("aug.json"), "{err}");
    /// // A missing file is an I/O error.
    /// let missing = PipelineConfig::from_file(&dir.join("missing.json")).unwrap_err();
    /// assert!(matches!(missing, xray_data::DataError::Io { .. }), "{missing}");
    /// # std::fs::remove_dir_all(&dir).ok();
    /// # Ok::<(), xray_data::DataError>(())
    /// ```
    pub fn from_file(path: &std::path::Path) -> Result<Self> {
        let text = crate::io::read_text_file(path)?;
        let is_toml = path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("toml"));
        let r = if is_toml {
            Self::from_toml(&text)
        } else {
            Self::from_json(&text)
        };
        r.map_err(|e| match e {
            // Its own message, after the path: not "invalid parameter: " twice.
            DataError::InvalidParameter(m) => {
                DataError::InvalidParameter(format!("{}: {m}", path.display()))
            }
            other => other,
        })
    }

    /// Refuses a pipeline that may write a mask label a network with `num_classes` classes
    /// cannot take: a constant border's `mask_value` that is neither a class
    /// (`0..num_classes`) nor [`crate::IGNORE_LABEL`]. Without this check such a pipeline
    /// fails only when a border first shows up in a training batch, which names the batch,
    /// not the setting.
    ///
    /// # Errors
    /// [`DataError::InvalidParameter`] naming the step and the label.
    ///
    /// # Examples
    /// ```
    /// use xray_data::augment::PipelineConfig;
    /// let ok = r#"{"steps": [{"type": "affine", "border": {"mode": "constant", "value": 0}}]}"#;
    /// PipelineConfig::from_json(ok)?.check_mask_labels(3)?; // mask_value defaults to 255
    /// let bad = r#"{"steps": [{"type": "affine",
    ///     "border": {"mode": "constant", "value": 0, "mask_value": 7}}]}"#;
    /// let err = PipelineConfig::from_json(bad)?.check_mask_labels(3).unwrap_err();
    /// assert!(err.to_string().contains("step 0: affine border mask_value 7"));
    /// # Ok::<(), xray_data::DataError>(())
    /// ```
    pub fn check_mask_labels(&self, num_classes: u8) -> Result<()> {
        fn check(spec: &TransformSpec, num_classes: u8) -> std::result::Result<(), String> {
            let (owner, border) = match spec {
                TransformSpec::Affine(t) => ("affine", t.border),
                TransformSpec::Elastic(t) if !t.image_only => ("elastic", t.border),
                TransformSpec::OneOf { choices } => {
                    return choices.iter().try_for_each(|c| check(c, num_classes));
                }
                _ => return Ok(()),
            };
            match border {
                Border::Constant { mask_value, .. }
                    if mask_value >= num_classes && mask_value != crate::IGNORE_LABEL =>
                {
                    Err(format!(
                        "{owner} border mask_value {mask_value} is not a class of a \
                         {num_classes}-class model (0..={}) nor the ignore label {}",
                        num_classes.saturating_sub(1),
                        crate::IGNORE_LABEL
                    ))
                }
                _ => Ok(()),
            }
        }
        for (i, s) in self.steps.iter().enumerate() {
            check(&s.transform, num_classes)
                .map_err(|m| DataError::InvalidParameter(format!("step {i}: {m}")))?;
        }
        Ok(())
    }
}

#[derive(Debug)]
enum Step {
    Joint(Box<dyn Transform>),
    Image(Box<dyn ImageTransform>),
    OneOf(Vec<Step>),
}

impl Step {
    fn from_spec(spec: &TransformSpec) -> Result<Self> {
        Ok(match spec {
            TransformSpec::HorizontalFlip => Step::Joint(Box::new(HorizontalFlip)),
            TransformSpec::VerticalFlip => Step::Joint(Box::new(VerticalFlip)),
            TransformSpec::Affine(a) => {
                a.validate()?;
                Step::Joint(Box::new(*a))
            }
            TransformSpec::RandomCrop(c) => {
                c.validate()?;
                Step::Joint(Box::new(*c))
            }
            TransformSpec::Elastic(e) => {
                e.validate()?;
                if e.image_only {
                    Step::Image(Box::new(*e))
                } else {
                    Step::Joint(Box::new(*e))
                }
            }
            TransformSpec::GaussianBlur(t) => {
                t.validate()?;
                Step::Image(Box::new(*t))
            }
            TransformSpec::GaussianNoise(t) => {
                t.validate()?;
                Step::Image(Box::new(*t))
            }
            TransformSpec::PoissonNoise(t) => {
                t.validate()?;
                Step::Image(Box::new(*t))
            }
            TransformSpec::Gamma(t) => {
                t.validate()?;
                Step::Image(Box::new(*t))
            }
            TransformSpec::BrightnessContrast(t) => {
                t.validate()?;
                Step::Image(Box::new(*t))
            }
            TransformSpec::Collimator(t) => {
                t.collimation.validate()?;
                Step::Joint(Box::new(*t))
            }
            TransformSpec::OneOf { choices } => {
                if choices.is_empty() {
                    return Err(DataError::InvalidParameter(
                        "one_of needs at least one choice".into(),
                    ));
                }
                Step::OneOf(choices.iter().map(Step::from_spec).collect::<Result<_>>()?)
            }
        })
    }

    /// Runs the step; `Ok(true)` when an intensity (image-only) transform ran, whose
    /// amplitudes compound from step to step.
    fn run(&self, image: &mut Radiograph, mask: &mut Mask, rng: &mut dyn Rng) -> Result<bool> {
        match self {
            Step::Joint(t) => t.apply(image, mask, rng).map(|()| false),
            Step::Image(t) => t.apply_image(image, rng).map(|()| true),
            Step::OneOf(c) => {
                let k = ((rng.next_u32() as u64 * c.len() as u64) >> 32) as usize;
                c[k.min(c.len() - 1)].run(image, mask, rng)
            }
        }
    }
}

/// An image with its mask.
pub type Sample = (Radiograph, Mask);

/// The largest pixel magnitude [`Pipeline::apply`] takes: beyond it, interpolation, noise or
/// contrast could carry a value past the `f32` range. Radiographs hold counts up to 65535 or
/// normalised values; 1e30 leaves any real data far inside.
pub const MAX_PIXEL_MAGNITUDE: f32 = 1e30;

/// Refuses a NaN or infinite pixel ([`DataError::NonFinite`]) and one beyond
/// ±[`MAX_PIXEL_MAGNITUDE`], in one pass.
fn check_pixels(source: &Path, image: &Radiograph) -> Result<()> {
    let data = image.as_raw();
    let worst = crate::io::max_magnitude_bits(data);
    if worst <= MAX_PIXEL_MAGNITUDE.to_bits() {
        return Ok(());
    }
    crate::io::check_finite(source, image.width(), data)?;
    let w = image.width().max(1) as usize;
    let k = data
        .iter()
        .position(|v| v.abs() > MAX_PIXEL_MAGNITUDE)
        .unwrap_or_default();
    Err(DataError::InvalidParameter(format!(
        "{}: pixel (x={}, y={}) is {}, beyond the ±1e30 augmentation takes (interpolation, \
         noise or contrast could carry it past the f32 range)",
        source.display(),
        k % w,
        k / w,
        readable_number(data.get(k).copied().unwrap_or_default())
    )))
}

/// A seeded sequence of transforms, each applied with its probability.
#[derive(Debug, Default)]
pub struct Pipeline {
    steps: Vec<(Step, f32)>,
}

fn check_p(p: f32) -> Result<()> {
    if !(0.0..=1.0).contains(&p) {
        return Err(DataError::InvalidParameter(format!(
            "step probability {} must be in [0, 1]",
            readable_number(p)
        )));
    }
    Ok(())
}

/// `e` with the step's index in front: "invalid parameter: step 2: gamma …", not the
/// inner error's own "invalid parameter: " a second time.
fn in_step(i: usize, e: DataError) -> DataError {
    match e {
        DataError::InvalidParameter(m) => DataError::InvalidParameter(format!("step {i}: {m}")),
        other => DataError::InvalidParameter(format!("step {i}: {other}")),
    }
}

impl Pipeline {
    /// An empty pipeline (the identity).
    ///
    /// # Examples
    /// ```
    /// use rand::SeedableRng;
    /// use xray_data::augment::Pipeline;
    /// use xray_data::{Mask, Radiograph};
    /// let identity = Pipeline::new();
    /// assert!(identity.is_empty());
    /// let mut image = Radiograph::from_fn(3, 2, |x, y| image::Luma([(x + 3 * y) as f32]));
    /// let mut mask = Mask::from_pixel(3, 2, image::Luma([1]));
    /// let before = (image.clone(), mask.clone());
    /// identity.apply(&mut image, &mut mask, &mut rand::rngs::StdRng::seed_from_u64(0))?;
    /// assert_eq!((image, mask), before);
    /// # Ok::<(), xray_data::DataError>(())
    /// ```
    pub fn new() -> Self {
        Self::default()
    }

    /// Build from a config, validating every step.
    ///
    /// # Errors
    /// [`DataError::InvalidParameter`] naming the bad setting.
    ///
    /// # Examples
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use rand::SeedableRng;
    /// use xray_data::augment::{Pipeline, PipelineConfig};
    /// use xray_data::{Mask, Radiograph};
    /// // One step, applied always (`p` defaults to 1).
    /// let cfg = PipelineConfig::from_json(r#"{"steps": [{"type": "horizontal_flip"}]}"#)?;
    /// let pipeline = Pipeline::from_config(&cfg)?;
    /// let mut image = Radiograph::from_raw(3, 1, vec![1.0, 2.0, 3.0]).ok_or("3 values")?;
    /// let mut mask = Mask::from_raw(3, 1, vec![0, 1, 2]).ok_or("3 labels")?;
    /// let mut rng = rand::rngs::StdRng::seed_from_u64(0);
    /// pipeline.apply(&mut image, &mut mask, &mut rng)?;
    /// assert_eq!(image.as_raw(), &vec![3.0, 2.0, 1.0]); // image and mask move together
    /// assert_eq!(mask.as_raw(), &vec![2, 1, 0]);
    /// // A bad setting is refused, naming its step.
    /// let bad = PipelineConfig::from_json(
    ///     r#"{"steps": [{"type": "vertical_flip"}, {"type": "horizontal_flip", "p": 1.5}]}"#,
    /// )?;
    /// let err = Pipeline::from_config(&bad).unwrap_err();
    /// assert!(err.to_string().contains("step 1"), "{err}");
    /// # Ok(())
    /// # }
    /// ```
    pub fn from_config(cfg: &PipelineConfig) -> Result<Self> {
        let mut p = Self::new();
        for (i, s) in cfg.steps.iter().enumerate() {
            check_p(s.p).map_err(|e| in_step(i, e))?;
            let step = Step::from_spec(&s.transform).map_err(|e| in_step(i, e))?;
            p.steps.push((step, s.p));
        }
        Ok(p)
    }

    /// Append a joint transform applied with probability `p`.
    ///
    /// # Errors
    /// When `p` is outside `[0, 1]`.
    ///
    /// # Examples
    /// ```
    /// use rand::SeedableRng;
    /// use xray_data::augment::{HorizontalFlip, Pipeline, VerticalFlip};
    /// use xray_data::{Mask, Radiograph};
    /// let mut pipeline = Pipeline::new();
    /// pipeline
    ///     .push(Box::new(HorizontalFlip), 1.0)?
    ///     .push(Box::new(VerticalFlip), 1.0)?;
    /// assert_eq!(pipeline.len(), 2);
    /// // Both flips: a half turn of image and mask.
    /// let mut image = Radiograph::from_raw(2, 2, vec![1.0, 2.0, 3.0, 4.0]).unwrap();
    /// let mut mask = Mask::from_raw(2, 2, vec![0, 1, 2, 255]).unwrap();
    /// pipeline.apply(&mut image, &mut mask, &mut rand::rngs::StdRng::seed_from_u64(0))?;
    /// assert_eq!(image.as_raw(), &[4.0, 3.0, 2.0, 1.0]);
    /// assert_eq!(mask.as_raw(), &[255, 2, 1, 0]);
    /// // A probability outside [0, 1] is refused and adds no step.
    /// assert!(pipeline.push(Box::new(HorizontalFlip), 1.5).is_err());
    /// assert_eq!(pipeline.len(), 2);
    /// # Ok::<(), xray_data::DataError>(())
    /// ```
    pub fn push(&mut self, t: Box<dyn Transform>, p: f32) -> Result<&mut Self> {
        check_p(p)?;
        self.steps.push((Step::Joint(t), p));
        Ok(self)
    }

    /// Append an image-only transform applied with probability `p`.
    ///
    /// # Errors
    /// When `p` is outside `[0, 1]`.
    ///
    /// # Examples
    /// ```
    /// use rand::SeedableRng;
    /// use xray_data::augment::{Gamma, Pipeline};
    /// use xray_data::{Mask, Radiograph};
    /// let mut pipeline = Pipeline::new();
    /// // γ = 2 exactly: t ↦ t² on the image's own range [0, 1].
    /// pipeline.push_image(Box::new(Gamma { gamma: [2.0, 2.0] }), 1.0)?;
    /// let mut image = Radiograph::from_raw(3, 1, vec![0.0, 0.5, 1.0]).unwrap();
    /// let mut mask = Mask::from_raw(3, 1, vec![0, 1, 2]).unwrap();
    /// pipeline.apply(&mut image, &mut mask, &mut rand::rngs::StdRng::seed_from_u64(0))?;
    /// assert_eq!(image.as_raw(), &[0.0, 0.25, 1.0]);
    /// assert_eq!(mask.as_raw(), &[0, 1, 2]); // the mask is never touched
    /// assert!(pipeline.push_image(Box::new(Gamma::default()), -0.1).is_err());
    /// # Ok::<(), xray_data::DataError>(())
    /// ```
    pub fn push_image(&mut self, t: Box<dyn ImageTransform>, p: f32) -> Result<&mut Self> {
        check_p(p)?;
        self.steps.push((Step::Image(t), p));
        Ok(self)
    }

    /// Number of steps.
    ///
    /// # Examples
    /// ```
    /// use xray_data::augment::{Pipeline, PipelineConfig};
    /// assert_eq!(Pipeline::new().len(), 0);
    /// // One step per configured step (a one_of counts once).
    /// let cfg = PipelineConfig::xnet();
    /// assert_eq!(Pipeline::from_config(&cfg)?.len(), cfg.steps.len());
    /// # Ok::<(), xray_data::DataError>(())
    /// ```
    pub fn len(&self) -> usize {
        self.steps.len()
    }

    /// True when there are no steps.
    ///
    /// # Examples
    /// ```
    /// use xray_data::augment::{Pipeline, PipelineConfig, VerticalFlip};
    /// assert!(Pipeline::from_config(&PipelineConfig::default())?.is_empty());
    /// let mut pipeline = Pipeline::new();
    /// pipeline.push(Box::new(VerticalFlip), 0.0)?; // a step, even one never applied
    /// assert!(!pipeline.is_empty());
    /// # Ok::<(), xray_data::DataError>(())
    /// ```
    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }

    /// Apply the pipeline to one image and mask in place. Every step draws its coin even
    /// when skipped, so the random stream of later steps does not depend on earlier coins.
    ///
    /// # Errors
    /// - [`DataError::InvalidParameter`] when image and mask sizes differ (nothing is
    ///   changed).
    /// - [`DataError::NonFinite`] (source `<memory>`) for a NaN or infinite input pixel,
    ///   named at its `(x, y)`; nothing is changed. Such a pixel would spread (a blur, a
    ///   contrast around a NaN mean), vanish (Poisson noise turned NaN into 0) or pass
    ///   through to the network.
    /// - [`DataError::InvalidParameter`] for a pixel beyond ±[`MAX_PIXEL_MAGNITUDE`]
    ///   (1e30), named at its `(x, y)`; nothing is changed. Below it no single built-in
    ///   transform leaves the `f32` range; intensity transforms compound, so when one ran the
    ///   result is checked again (an error when they carried a pixel past the range). With
    ///   built-in transforms an `Ok` result is always finite; a transform of your own must
    ///   keep its output finite itself.
    /// - Any error of a transform that rejects its input (e.g. a value range too wide for
    ///   it, see [`super::intensity`]).
    ///
    /// The pixels are checked in one pass before the first step (about 8 µs for 512 × 512
    /// on the Zen 4 here), and once after the steps when an intensity transform ran; checking
    /// after every step cost a 512² affine call a third of its time. After an error raised by a step, image and mask hold what the earlier
    /// steps made.
    ///
    /// # Examples
    /// ```
    /// use rand::SeedableRng;
    /// use xray_data::augment::{GaussianNoise, HorizontalFlip, Pipeline};
    /// use xray_data::{DataError, Mask, Radiograph};
    /// let mut pipeline = Pipeline::new();
    /// pipeline
    ///     .push(Box::new(HorizontalFlip), 0.5)?
    ///     .push_image(Box::new(GaussianNoise { std: [0.01, 0.05] }), 1.0)?;
    /// let image = Radiograph::from_fn(4, 4, |x, _| image::Luma([x as f32]));
    /// let mask = Mask::from_fn(4, 4, |x, _| image::Luma([(x % 3) as u8]));
    /// // The same seed gives the same result.
    /// let run = |seed| -> Result<(Radiograph, Mask), DataError> {
    ///     let (mut i, mut m) = (image.clone(), mask.clone());
    ///     pipeline.apply(&mut i, &mut m, &mut rand::rngs::StdRng::seed_from_u64(seed))?;
    ///     Ok((i, m))
    /// };
    /// assert_eq!(run(3)?, run(3)?);
    /// // A mask of another size is refused, leaving both unchanged.
    /// let (mut i, mut small) = (image.clone(), Mask::new(2, 2));
    /// let err = pipeline.apply(&mut i, &mut small, &mut rand::rngs::StdRng::seed_from_u64(0));
    /// assert!(matches!(err, Err(DataError::InvalidParameter(_))));
    /// assert_eq!(i, image);
    /// // So is a NaN pixel, named at its position.
    /// let mut bad = image.clone();
    /// bad.put_pixel(1, 2, image::Luma([f32::NAN]));
    /// let mut m = mask.clone();
    /// let err = pipeline
    ///     .apply(&mut bad, &mut m, &mut rand::rngs::StdRng::seed_from_u64(0))
    ///     .unwrap_err();
    /// assert!(matches!(err, DataError::NonFinite { .. }), "{err}");
    /// # Ok::<(), DataError>(())
    /// ```
    pub fn apply(&self, image: &mut Radiograph, mask: &mut Mask, rng: &mut impl Rng) -> Result<()> {
        self.apply_named(image, mask, rng, &crate::io::memory_path())
    }

    /// [`Pipeline::apply`], naming the input `source` in its errors.
    fn apply_named(
        &self,
        image: &mut Radiograph,
        mask: &mut Mask,
        rng: &mut dyn Rng,
        source: &Path,
    ) -> Result<()> {
        check_same_size(image, mask)?;
        check_pixels(source, image)?;
        let mut rescaled = false;
        for (step, p) in &self.steps {
            let u = (rng.next_u32() >> 8) as f32 / (1u32 << 24) as f32;
            if u < *p {
                rescaled |= step.run(image, mask, rng)?;
            }
        }
        // One step cannot leave the f32 range from within ±1e30, but intensity steps
        // compound (five contrast factors of 100 take 1e30 to 1e40): their output is checked
        // once more. Geometric steps interpolate, which keeps values within the input's range.
        if rescaled && crate::io::max_magnitude_bits(image.as_raw()) >= crate::io::INFINITY_BITS {
            return Err(DataError::InvalidParameter(format!(
                "{}: the intensity steps carried a pixel past the f32 range (their amplitudes \
                 compound; e.g. several strong contrast steps)",
                source.display()
            )));
        }
        Ok(())
    }

    /// Apply to a batch in parallel (rayon). Item `i` uses its own generator seeded from
    /// `(seed, i)`, so the result does not depend on the number of threads.
    ///
    /// Each transform allocates its output; with glibc's default settings those blocks go
    /// back to the kernel on free and threads then contend page-faulting them in again, which
    /// caps the scaling (1.3–1.4× on two cores). A program that sets the allocator to keep
    /// freed memory (as `xnet_model::memory::keep_freed_memory` does) scales 1.6–1.9×; see
    /// docs/performance.md.
    ///
    /// # Errors
    /// An error of some item, as [`Pipeline::apply`] gives it; the pipeline's own checks
    /// (a NaN, infinite or too large input pixel, an intensity result past the `f32` range)
    /// name the item `<batch item i>` where `apply` says `<memory>`.
    ///
    /// # Examples
    /// ```
    /// use rand::SeedableRng;
    /// use xray_data::augment::{GaussianNoise, Pipeline};
    /// use xray_data::synth::item_seed;
    /// use xray_data::{Mask, Radiograph};
    /// let mut pipeline = Pipeline::new();
    /// pipeline.push_image(Box::new(GaussianNoise { std: [0.05, 0.05] }), 1.0)?;
    /// let sample = (
    ///     Radiograph::from_fn(4, 4, |x, y| image::Luma([(x + y) as f32])),
    ///     Mask::new(4, 4),
    /// );
    /// let mut batch = vec![sample.clone(); 3];
    /// pipeline.apply_batch(&mut batch, 42)?;
    /// // Item 2 is what `apply` makes with a generator seeded from (42, 2)...
    /// let (mut image, mut mask) = sample.clone();
    /// let mut rng = rand::rngs::StdRng::seed_from_u64(item_seed(42, 2));
    /// pipeline.apply(&mut image, &mut mask, &mut rng)?;
    /// assert_eq!(batch[2], (image, mask));
    /// // ...so equal inputs still get different noise.
    /// assert_ne!(batch[0].0, batch[1].0);
    /// // Errors name the item.
    /// batch[1].0.put_pixel(0, 0, image::Luma([f32::INFINITY]));
    /// let err = pipeline.apply_batch(&mut batch, 42).unwrap_err();
    /// assert!(err.to_string().contains("<batch item 1>"), "{err}");
    /// # Ok::<(), xray_data::DataError>(())
    /// ```
    pub fn apply_batch(&self, batch: &mut [(Radiograph, Mask)], seed: u64) -> Result<()> {
        batch
            .par_iter_mut()
            .enumerate()
            .try_for_each(|(i, (img, m))| {
                let mut rng = StdRng::seed_from_u64(item_seed(seed, i as u64));
                let source = PathBuf::from(format!("<batch item {i}>"));
                self.apply_named(img, m, &mut rng, &source)
            })
    }

    /// Balance categories by augmentation: every category is brought to the size of the
    /// largest by cycling through its members, and **every** copy (originals included) is
    /// augmented with its own seed (see [`balanced_indices`]). Returns the augmented copies
    /// and, for each, the index of its source.
    ///
    /// # Errors
    /// When `samples` and `categories` differ in length, or as [`Pipeline::apply_batch`].
    ///
    /// # Examples
    /// ```
    /// use xray_data::augment::{Pipeline, VerticalFlip};
    /// use xray_data::{Mask, Radiograph};
    /// let samples: Vec<(Radiograph, Mask)> = (0..3)
    ///     .map(|k| (Radiograph::from_pixel(2, 2, image::Luma([k as f32])), Mask::new(2, 2)))
    ///     .collect();
    /// let categories = ["hand", "hand", "knee"];
    /// let mut pipeline = Pipeline::new();
    /// pipeline.push(Box::new(VerticalFlip), 1.0)?;
    /// let (copies, sources) = pipeline.augment_balanced(&samples, &categories, 7)?;
    /// // The one knee is copied twice to match the two hands.
    /// assert_eq!(sources, [0, 1, 2, 2]);
    /// assert_eq!(copies.len(), 4);
    /// assert_eq!(copies[3].0.get_pixel(0, 0).0, [2.0]); // a copy of sample 2
    /// // One category per sample.
    /// assert!(pipeline.augment_balanced(&samples, &categories[..2], 7).is_err());
    /// # Ok::<(), xray_data::DataError>(())
    /// ```
    pub fn augment_balanced<C: Ord + Clone + Sync>(
        &self,
        samples: &[(Radiograph, Mask)],
        categories: &[C],
        seed: u64,
    ) -> Result<(Vec<Sample>, Vec<usize>)> {
        if samples.len() != categories.len() {
            return Err(DataError::InvalidParameter(format!(
                "{} samples but {} categories",
                samples.len(),
                categories.len()
            )));
        }
        let idx = balanced_indices(categories);
        let mut out: Vec<Sample> = idx.iter().map(|&i| samples[i].clone()).collect();
        self.apply_batch(&mut out, seed)?;
        Ok((out, idx))
    }
}

/// Indices that balance `categories`: each category's members are cycled until it has as
/// many entries as the largest category. Order: by category, then cycle.
///
/// # Examples
/// ```
/// use xray_data::augment::balanced_indices;
/// let categories = ["knee", "hand", "hand", "hand", "knee"];
/// // hand (samples 1, 2, 3) first, then knee (0, 4) cycled to three entries.
/// assert_eq!(balanced_indices(&categories), [1, 2, 3, 0, 4, 0]);
/// assert!(balanced_indices::<u8>(&[]).is_empty());
/// ```
pub fn balanced_indices<C: Ord + Clone>(categories: &[C]) -> Vec<usize> {
    let mut groups: std::collections::BTreeMap<C, Vec<usize>> = Default::default();
    for (i, c) in categories.iter().enumerate() {
        groups.entry(c.clone()).or_default().push(i);
    }
    let target = groups.values().map(Vec::len).max().unwrap_or(0);
    let mut out = Vec::with_capacity(target * groups.len());
    for members in groups.values() {
        out.extend((0..target).map(|k| members[k % members.len()]));
    }
    out
}
