//! A loaded checkpoint that returns class probabilities at the input's own size.

use std::path::Path;

use candle_core::Device;
use candle_nn::VarMap;
use xnet_model::checkpoint;
use xnet_model::infer::{
    apply_temperature, check_temperature, predict_proba_batch, FlipAverage, InferenceOptions,
};
use xnet_model::{ModelConfig, Segmenter};
use xray_data::Radiograph;

use crate::prepare::{resize_probabilities, Preprocess};
use crate::{Error, Result};

/// The checkpoint metadata key of the fitted softmax temperature (a number > 0).
pub const TEMPERATURE_KEY: &str = "temperature";

/// The checkpoint metadata key of the flip averaging its predictions use
/// ([`FlipAverage`], e.g. `"horizontal_vertical"`; absent means off). The train job writes
/// it with the temperature, which it fitted on predictions made that way.
pub const FLIP_AVERAGE_KEY: &str = "flip_average";

/// The softmax temperatures a predictor accepts (wider than the fitted range,
/// `xray_metrics::TemperatureConfig::temperature_range`, [0.05, 20] by default).
pub use xnet_model::infer::TEMPERATURE_RANGE;

/// A network plus the preprocessing it was trained with and the softmax temperature it was
/// calibrated with.
pub struct Predictor {
    model: Box<dyn Segmenter>,
    config: ModelConfig,
    preprocess: Preprocess,
    preprocess_recorded: bool,
    options: InferenceOptions,
    temperature: f64,
    // Keeps the weights alive for the model's lifetime.
    _varmap: VarMap,
}

impl std::fmt::Debug for Predictor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Predictor")
            .field("config", &self.config)
            .field("preprocess", &self.preprocess)
            .field("device", &self.options.device.location())
            .field("temperature", &self.temperature)
            .field("flip_average", &self.options.flip_average)
            .finish_non_exhaustive()
    }
}

/// Refuses a folder that holds neither checkpoint file ([`checkpoint::WEIGHTS_FILE`],
/// [`checkpoint::CONFIG_FILE`]) with an error that says so and names the sub-folders that
/// hold one: a k-fold run keeps a checkpoint per fold (`fold-<k>/`) and a `compare` run one
/// per model, and `--weights` given such a run's folder used to fail with "config.json: No
/// such file or directory", which says neither. Anything else is left to
/// [`checkpoint::load`].
fn check_holds_checkpoint(path: &Path) -> Result<()> {
    let holds = |dir: &Path| {
        [checkpoint::WEIGHTS_FILE, checkpoint::CONFIG_FILE]
            .iter()
            .any(|f| dir.join(f).exists())
    };
    if !path.is_dir() || holds(path) {
        return Ok(());
    }
    let mut below: Vec<String> = std::fs::read_dir(path)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.is_dir() && p.join(checkpoint::CONFIG_FILE).is_file())
                .map(|p| p.display().to_string())
                .collect()
        })
        .unwrap_or_default();
    below.sort();
    let hint = if below.is_empty() {
        format!(
            "expected a checkpoint folder holding {} and {} (a train run's folder, or its \
             best/ or last/)",
            checkpoint::WEIGHTS_FILE,
            checkpoint::CONFIG_FILE
        )
    } else {
        format!(
            "it holds no {} or {}, but these sub-folders hold a checkpoint each (the folds \
             of a k-fold run, the models of a compare run): {}; give one of them",
            checkpoint::WEIGHTS_FILE,
            checkpoint::CONFIG_FILE,
            below.join(", ")
        )
    };
    Err(Error::io(
        path,
        std::io::Error::new(
            std::io::ErrorKind::NotFound,
            format!("no checkpoint in this folder: {hint}"),
        ),
    ))
}

impl Predictor {
    /// Loads a checkpoint directory (or its `model.safetensors`) written by `train`.
    ///
    /// The preprocessing comes from the checkpoint's metadata (`"preprocess"`); a checkpoint
    /// without it is taken as XNet's default (200×200, min-max). The softmax temperature
    /// comes from `"temperature"` (written by the train job, see [`crate::calibrate`]); a
    /// checkpoint without it is uncalibrated (T = 1). The flip averaging comes from
    /// `"flip_average"` ([`FLIP_AVERAGE_KEY`]); without it there is none.
    ///
    /// # Errors
    /// Missing or corrupt files, weights that do not fit the config, a preprocessing record
    /// that does not fit the network, a temperature that is not a number in
    /// [`TEMPERATURE_RANGE`], a flip-averaging record that is not one of [`FlipAverage`]'s.
    /// A folder that holds neither checkpoint file is an [`Error::Io`] of kind `NotFound`
    /// that says so and names its sub-folders that hold a checkpoint (the `fold-<k>/` of a
    /// k-fold run, the models of a `compare` run), one of which was most likely meant.
    ///
    /// # Examples
    ///
    /// The shipped weights on a radiograph of any size (here a gradient standing in for one
    /// read with `xray_data::io::load_image`):
    ///
    /// ```
    /// use candle_core::Device;
    /// use xray_data::Radiograph;
    /// use xray_seg::predict::Predictor;
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    /// let weights = root.join("fixtures/weights/xnet-small");
    /// let predictor = Predictor::load(&weights, &Device::Cpu)?;
    /// let (width, height) = (300u32, 200u32);
    /// let image = Radiograph::from_fn(width, height, |x, _| image::Luma([x as f32 / 300.0]));
    /// let probs = predictor.predict(&image)?; // class-major: C planes of height × width
    /// let plane = (width * height) as usize;
    /// assert_eq!(probs.len(), predictor.num_classes() * plane);
    /// // Each pixel's probabilities sum to 1; its label is the arg-max.
    /// let p: Vec<f32> = (0..predictor.num_classes()).map(|c| probs[c * plane]).collect();
    /// assert!((p.iter().sum::<f32>() - 1.0).abs() < 1e-4);
    /// # Ok(())
    /// # }
    /// ```
    pub fn load(path: &Path, device: &Device) -> Result<Self> {
        check_holds_checkpoint(path)?;
        let loaded = checkpoint::load(path, device)?;
        // The record is in the config file: its errors name it (a percentile window out of
        // order said only "invalid parameter: percentile window must satisfy ...").
        let config_file = checkpoint::resolve(path).1;
        // The library's reader of the record, its errors naming the config file.
        let record = loaded.preprocess().map_err(|e| match e {
            xnet_model::ModelError::InvalidConfig(m) => {
                Error::Invalid(format!("{}: {m}", config_file.display()))
            }
            other => Error::Model(other),
        })?;
        let recorded = record.is_some();
        let preprocess = record.map_or_else(Preprocess::default, Preprocess::from);
        // The checks of the library's readers (a number within the temperature range; one of
        // the averaging names), their messages prefixed with the checkpoint.
        let in_file = |e: xnet_model::ModelError| match e {
            xnet_model::ModelError::InvalidConfig(m) => {
                Error::Invalid(format!("{}: {m}", path.display()))
            }
            other => Error::Model(other),
        };
        let temperature = loaded.temperature().map_err(in_file)?;
        let flip_average = loaded.flip_average().map_err(in_file)?;
        // `new` validates the record; its errors name the config file that holds it.
        let mut predictor = Self::new(
            loaded.model,
            loaded.config,
            loaded.varmap,
            preprocess,
            device,
        )
        .map_err(|e| match e {
            Error::Invalid(m) | Error::Data(xray_data::DataError::InvalidParameter(m)) => {
                Error::Invalid(format!(
                    "{}: metadata.preprocess: {m}",
                    config_file.display()
                ))
            }
            Error::Model(xnet_model::ModelError::InvalidConfig(m)) => {
                Error::Invalid(format!("{}: {m}", config_file.display()))
            }
            other => other,
        })?;
        if let Some(t) = temperature {
            predictor.set_temperature(t)?;
        }
        predictor.set_flip_average(flip_average);
        predictor.preprocess_recorded = recorded;
        Ok(predictor)
    }

    /// Wraps an already built model, folding its batch-norms into the convolutions
    /// ([`Segmenter::fold_batch_norm`]): a predictor only runs inference, and a folded block
    /// is one convolution where it was a convolution plus four element-wise passes (the fast
    /// CPU kernels fold on the fly anyway; on a GPU every pass is a kernel launch). The
    /// `varmap` keeps the trained, unfolded weights.
    ///
    /// # Errors
    /// A preprocessing size that is not a multiple of the network's size multiple; a
    /// `config` that is not the model's own ([`Segmenter::config`]), which [`Self::config`]
    /// would then misreport; a model whose input is not one channel (a radiograph).
    ///
    /// # Examples
    /// A freshly built (untrained) network, as the train job wraps its own:
    /// ```
    /// use candle_core::{DType, Device};
    /// use candle_nn::VarMap;
    /// use xnet_model::infer::FlipAverage;
    /// use xnet_model::init::seeded_var_builder;
    /// use xnet_model::models::XNetConfig;
    /// use xnet_model::ModelConfig;
    /// use xray_seg::{predict::Predictor, prepare::Preprocess};
    /// let config = ModelConfig::XNet(XNetConfig { base_width: 2, ..XNetConfig::default() });
    /// let build = || {
    ///     let varmap = VarMap::new();
    ///     let model = config.build(seeded_var_builder(&varmap, 1, DType::F32, &Device::Cpu));
    ///     model.map(|m| (m, varmap))
    /// };
    /// let (model, varmap) = build()?;
    /// let predictor = Predictor::new(model, config.clone(), varmap, Preprocess::square(32), &Device::Cpu)?;
    /// assert_eq!(predictor.config(), &config);
    /// assert_eq!((predictor.temperature(), predictor.flip_average()), (1.0, FlipAverage::Off));
    /// // XNet needs sides that are multiples of 8.
    /// let (model, varmap) = build()?;
    /// let e = Predictor::new(model, config, varmap, Preprocess::square(36), &Device::Cpu).unwrap_err();
    /// assert!(e.to_string().contains("multiple of 8"), "{e}");
    /// # Ok::<(), xray_seg::Error>(())
    /// ```
    pub fn new(
        mut model: Box<dyn Segmenter>,
        config: ModelConfig,
        varmap: VarMap,
        preprocess: Preprocess,
        device: &Device,
    ) -> Result<Self> {
        // Model errors, not `Invalid`: `load` reads `Invalid` from here as a fault of the
        // checkpoint's preprocessing record and says so.
        if model.config() != config {
            return Err(Error::Model(xnet_model::ModelError::InvalidConfig(
                format!(
                    "the configuration given ({config:?}) is not the model's own ({:?})",
                    model.config()
                ),
            )));
        }
        if config.in_channels() != 1 {
            return Err(Error::Model(xnet_model::ModelError::InvalidConfig(
                format!(
                    "the model takes {} input channels; a predictor feeds it one (a radiograph)",
                    config.in_channels()
                ),
            )));
        }
        preprocess.validate(model.size_multiple())?;
        model.fold_batch_norm()?;
        let tile = preprocess.width.max(preprocess.height) as usize;
        let options = InferenceOptions {
            tile_size: tile,
            overlap: 0,
            batch_size: 4,
            device: device.clone(),
            ..InferenceOptions::default()
        };
        Ok(Predictor {
            model,
            config,
            preprocess,
            preprocess_recorded: true,
            options,
            temperature: 1.0,
            _varmap: varmap,
        })
    }

    /// The flip averaging of every prediction ([`InferenceOptions::flip_average`]).
    ///
    /// # Examples
    /// ```
    /// use candle_core::Device;
    /// use xnet_model::infer::FlipAverage;
    /// use xray_seg::predict::Predictor;
    /// // The shipped checkpoint records the averaging its temperature was fitted with.
    /// let predictor = Predictor::load(&xray_seg::shipped_weights_dir(), &Device::Cpu)?;
    /// assert_eq!(predictor.flip_average(), FlipAverage::HorizontalVertical);
    /// # Ok::<(), xray_seg::Error>(())
    /// ```
    pub fn flip_average(&self) -> FlipAverage {
        self.options.flip_average
    }

    /// Sets the flip averaging: each prediction becomes the mean over the image and its
    /// mirror images (one network pass per copy). A temperature fitted without it (or with
    /// another) is no longer the fitted one; the train job fits it with the averaging it
    /// records.
    ///
    /// # Examples
    /// Averaged over its mirror images, a prediction mirrors with its input:
    /// ```
    /// use candle_core::Device;
    /// use image::{imageops, Luma};
    /// use xnet_model::infer::FlipAverage;
    /// use xray_data::Radiograph;
    /// use xray_seg::predict::Predictor;
    /// let mut predictor = Predictor::load(&xray_seg::shipped_weights_dir(), &Device::Cpu)?;
    /// predictor.set_flip_average(FlipAverage::Horizontal);
    /// assert_eq!(predictor.flip_average(), FlipAverage::Horizontal);
    /// // At the network's input size, so that no resize stands between the two.
    /// let image = Radiograph::from_fn(128, 128, |x, y| Luma([(x * x + 3 * y) as f32]));
    /// let mirrored = imageops::flip_horizontal(&image);
    /// let (p, q) = (predictor.predict(&image)?, predictor.predict(&mirrored)?);
    /// let plane = 128 * 128;
    /// for (c, y, x) in [(0, 5, 7), (1, 64, 3), (2, 100, 120)] {
    ///     let (a, b) = (p[c * plane + y * 128 + x], q[c * plane + y * 128 + (127 - x)]);
    ///     assert!((a - b).abs() < 1e-4, "class {c} at ({x}, {y}): {a} vs {b}");
    /// }
    /// # Ok::<(), xray_seg::Error>(())
    /// ```
    pub fn set_flip_average(&mut self, flips: FlipAverage) {
        self.options.flip_average = flips;
    }

    /// The network's configuration.
    ///
    /// # Examples
    /// ```
    /// use candle_core::Device;
    /// use xnet_model::ModelConfig;
    /// use xray_seg::predict::Predictor;
    /// let predictor = Predictor::load(&xray_seg::shipped_weights_dir(), &Device::Cpu)?;
    /// let ModelConfig::XNet(xnet) = predictor.config() else {
    ///     panic!("the shipped network is an XNet");
    /// };
    /// assert_eq!((xnet.base_width, xnet.num_classes), (8, 3));
    /// # Ok::<(), xray_seg::Error>(())
    /// ```
    pub fn config(&self) -> &ModelConfig {
        &self.config
    }

    /// The preprocessing applied before the network.
    ///
    /// # Examples
    /// ```
    /// use candle_core::Device;
    /// use xray_seg::{predict::Predictor, prepare::Preprocess};
    /// let predictor = Predictor::load(&xray_seg::shipped_weights_dir(), &Device::Cpu)?;
    /// // The shipped network was trained on 128×128 min-max normalised inputs.
    /// assert_eq!(predictor.preprocess(), &Preprocess::square(128));
    /// # Ok::<(), xray_seg::Error>(())
    /// ```
    pub fn preprocess(&self) -> &Preprocess {
        &self.preprocess
    }

    /// Whether the preprocessing is the checkpoint's own record: false when [`Self::load`]
    /// found none and took XNet's default (200×200, min-max) instead, which is wrong for a
    /// network trained at another size. Programs that load checkpoints they did not write
    /// should say so to their user (the example programs print a warning).
    ///
    /// # Examples
    /// A checkpoint saved without the record is loaded with XNet's default, and says so:
    /// ```
    /// use candle_core::{DType, Device};
    /// use candle_nn::VarMap;
    /// use xnet_model::{checkpoint, init::seeded_var_builder, models::XNetConfig, ModelConfig};
    /// use xray_seg::{predict::Predictor, prepare::Preprocess};
    /// let dir = std::env::temp_dir().join(format!("xray-seg-doc-unrecorded-{}", std::process::id()));
    /// let config = ModelConfig::XNet(XNetConfig { base_width: 2, ..XNetConfig::default() });
    /// let varmap = VarMap::new();
    /// config.build(seeded_var_builder(&varmap, 1, DType::F32, &Device::Cpu))?;
    /// checkpoint::save(&dir, &varmap, &config, serde_json::json!({}))?;
    /// let predictor = Predictor::load(&dir, &Device::Cpu)?;
    /// assert!(!predictor.preprocess_recorded());
    /// assert_eq!(predictor.preprocess(), &Preprocess::default()); // 200×200, a guess
    /// assert!(predictor.preprocess_warning(&dir).is_some());
    /// # std::fs::remove_dir_all(&dir).ok();
    /// # Ok::<(), xray_seg::Error>(())
    /// ```
    pub fn preprocess_recorded(&self) -> bool {
        self.preprocess_recorded
    }

    /// The warning to show a user when the preprocessing is a guess
    /// ([`Self::preprocess_recorded`] is false), naming the checkpoint `path`; `None` when
    /// the checkpoint recorded it.
    ///
    /// # Examples
    /// ```
    /// use candle_core::Device;
    /// use xray_seg::predict::Predictor;
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let weights = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/weights/xnet-small");
    /// let predictor = Predictor::load(&weights, &Device::Cpu)?;
    /// assert!(predictor.preprocess_recorded());
    /// assert_eq!(predictor.preprocess_warning(&weights), None);
    /// # Ok(())
    /// # }
    /// ```
    pub fn preprocess_warning(&self, path: &Path) -> Option<String> {
        (!self.preprocess_recorded).then(|| {
            format!(
                "warning: {} records no preprocessing (metadata.preprocess), so its inputs are \
                 shaped as XNet's default ({}x{}); a network trained at another size \
                 will segment badly. The `best/` and `last/` folders of runs trained before \
                 2026-11-30 lack the record: load the run folder itself.",
                path.display(),
                self.preprocess.width,
                self.preprocess.height,
            )
        })
    }

    /// The device the network runs on, the one given to [`Predictor::load`] or
    /// [`Predictor::new`]: [`Device::Cpu`], or a CUDA GPU (with the `cuda` feature), whose
    /// [`location`](Device::location) names its ordinal. What a program that embeds the
    /// predictor logs, or checks before it sends a batch.
    ///
    /// # Examples
    /// ```
    /// use candle_core::{Device, DeviceLocation};
    /// use xray_seg::predict::Predictor;
    /// let predictor = Predictor::load(&xray_seg::shipped_weights_dir(), &Device::Cpu)?;
    /// assert!(predictor.device().is_cpu());
    /// assert!(matches!(predictor.device().location(), DeviceLocation::Cpu));
    /// // Loaded on the first GPU, where there is one:
    /// if let Ok(gpu) = Device::new_cuda(0) {
    ///     let on_gpu = Predictor::load(&xray_seg::shipped_weights_dir(), &gpu)?;
    ///     assert!(matches!(on_gpu.device().location(), DeviceLocation::Cuda { gpu_id: 0 }));
    /// }
    /// # Ok::<(), xray_seg::Error>(())
    /// ```
    pub fn device(&self) -> &Device {
        &self.options.device
    }

    /// Number of classes of the probability maps.
    ///
    /// # Examples
    /// ```
    /// use candle_core::Device;
    /// use xray_seg::predict::Predictor;
    /// let predictor = Predictor::load(&xray_seg::shipped_weights_dir(), &Device::Cpu)?;
    /// assert_eq!(predictor.num_classes(), xray_seg::CLASS_NAMES.len());
    /// # Ok::<(), xray_seg::Error>(())
    /// ```
    pub fn num_classes(&self) -> usize {
        self.model.num_classes()
    }

    /// The softmax temperature applied to every prediction (1 = the network's own softmax).
    ///
    /// # Examples
    /// ```
    /// use candle_core::Device;
    /// use xray_seg::predict::Predictor;
    /// // The shipped checkpoint holds the temperature the train job fitted.
    /// let predictor = Predictor::load(&xray_seg::shipped_weights_dir(), &Device::Cpu)?;
    /// assert!((predictor.temperature() - 0.6938).abs() < 1e-4);
    /// # Ok::<(), xray_seg::Error>(())
    /// ```
    pub fn temperature(&self) -> f64 {
        self.temperature
    }

    /// Sets the softmax temperature: predictions become `softmax(z / T)` for the network's
    /// logits `z`. It changes confidences, never the arg-max.
    ///
    /// # Errors
    /// A temperature outside [`TEMPERATURE_RANGE`].
    ///
    /// # Examples
    /// ```
    /// use candle_core::Device;
    /// use image::Luma;
    /// use xray_data::Radiograph;
    /// use xray_seg::predict::{Predictor, TEMPERATURE_RANGE};
    /// let mut predictor = Predictor::load(&xray_seg::shipped_weights_dir(), &Device::Cpu)?;
    /// let image = Radiograph::from_fn(64, 48, |x, y| Luma([(x * y) as f32]));
    /// let sharp = predictor.predict(&image)?;
    /// predictor.set_temperature(4.0)?;
    /// assert_eq!(predictor.temperature(), 4.0);
    /// let soft = predictor.predict(&image)?;
    /// // Softer confidences, the same arg-max.
    /// let plane = 64 * 48;
    /// let top = |p: &[f32], i: usize| {
    ///     (0..3).max_by(|&a, &b| p[a * plane + i].total_cmp(&p[b * plane + i])).unwrap()
    /// };
    /// for i in [0, 1000, plane - 1] {
    ///     assert_eq!(top(&sharp, i), top(&soft, i));
    ///     assert!(soft[top(&soft, i) * plane + i] <= sharp[top(&sharp, i) * plane + i]);
    /// }
    /// // Outside the accepted range: refused, and the temperature stays.
    /// assert!(predictor.set_temperature(0.0).is_err());
    /// assert!(predictor.set_temperature(TEMPERATURE_RANGE.1 * 2.0).is_err());
    /// assert!(predictor.set_temperature(f64::NAN).is_err());
    /// assert_eq!(predictor.temperature(), 4.0);
    /// # Ok::<(), xray_seg::Error>(())
    /// ```
    pub fn set_temperature(&mut self, temperature: f64) -> Result<()> {
        check_temperature(temperature)?;
        self.temperature = temperature;
        Ok(())
    }

    /// Images per forward pass (default 4).
    ///
    /// # Examples
    /// The batch size changes how many images share a forward pass, not the result:
    /// ```
    /// use candle_core::Device;
    /// use image::Luma;
    /// use xray_data::Radiograph;
    /// use xray_seg::predict::Predictor;
    /// let mut predictor = Predictor::load(&xray_seg::shipped_weights_dir(), &Device::Cpu)?;
    /// let images: Vec<Radiograph> =
    ///     (1..=3).map(|k| Radiograph::from_fn(40, 40, |x, y| Luma([(k * x + y) as f32]))).collect();
    /// let batched = predictor.predict_many(&images)?;
    /// predictor.set_batch_size(0); // taken as 1
    /// let one_by_one = predictor.predict_many(&images)?;
    /// for (a, b) in batched.iter().zip(&one_by_one) {
    ///     assert!(a.iter().zip(b).all(|(p, q)| (p - q).abs() < 1e-5));
    /// }
    /// # Ok::<(), xray_seg::Error>(())
    /// ```
    pub fn set_batch_size(&mut self, batch_size: usize) {
        self.options.batch_size = batch_size.max(1);
    }

    /// `C × H × W` probabilities of one radiograph (detector units, any size), at its own
    /// size: the image is resized to the network input and normalised as in training, the
    /// network's probabilities are resized back (bilinear), and each output pixel's are taken
    /// to the predictor's temperature (so its arg-max is the uncalibrated one).
    ///
    /// # Errors
    /// An empty image; a NaN or infinite pixel, reported at its position in the shrunk network
    /// input ([`Preprocess::network_input`]), not in `image`; a network error, or probabilities
    /// that are not finite (a network with non-finite weights).
    ///
    /// # Examples
    /// ```
    /// use candle_core::Device;
    /// use image::Luma;
    /// use xray_data::{DataError, Radiograph};
    /// use xray_seg::{predict::Predictor, Error};
    /// let predictor = Predictor::load(&xray_seg::shipped_weights_dir(), &Device::Cpu)?;
    /// let image = Radiograph::from_fn(50, 30, |x, y| Luma([(x + 2 * y) as f32]));
    /// let probs = predictor.predict(&image)?;
    /// assert_eq!(probs.len(), 3 * 50 * 30); // C × H × W at the image's own size
    /// assert!(probs.iter().all(|p| (0.0..=1.0).contains(p)));
    /// // A NaN pixel is refused, at its place in the 128×128 network input.
    /// let mut bad = image.clone();
    /// bad.put_pixel(0, 0, Luma([f32::NAN]));
    /// let e = predictor.predict(&bad).unwrap_err();
    /// assert!(matches!(e, Error::Data(DataError::NonFinite { x: 0, y: 0, .. })), "{e}");
    /// assert!(predictor.predict(&Radiograph::new(0, 0)).is_err()); // an empty image
    /// # Ok::<(), xray_seg::Error>(())
    /// ```
    pub fn predict(&self, image: &Radiograph) -> Result<Vec<f32>> {
        Ok(self.predict_many(std::slice::from_ref(image))?.remove(0))
    }

    /// As [`Predictor::predict`] for several radiographs, batched through the network.
    ///
    /// # Errors
    /// As [`Predictor::predict`].
    ///
    /// # Examples
    /// ```
    /// use candle_core::Device;
    /// use image::Luma;
    /// use xray_data::Radiograph;
    /// use xray_seg::predict::Predictor;
    /// let predictor = Predictor::load(&xray_seg::shipped_weights_dir(), &Device::Cpu)?;
    /// let small = Radiograph::from_fn(40, 24, |x, y| Luma([(x + y) as f32]));
    /// let large = Radiograph::from_fn(96, 80, |x, y| Luma([(x * y) as f32]));
    /// let probs = predictor.predict_many(&[small.clone(), large])?;
    /// // One map per image, each at its image's size.
    /// assert_eq!((probs[0].len(), probs[1].len()), (3 * 40 * 24, 3 * 96 * 80));
    /// let alone = predictor.predict(&small)?;
    /// assert!(probs[0].iter().zip(&alone).all(|(a, b)| (a - b).abs() < 1e-5));
    /// assert!(predictor.predict_many(&[])?.is_empty());
    /// # Ok::<(), xray_seg::Error>(())
    /// ```
    pub fn predict_many(&self, images: &[Radiograph]) -> Result<Vec<Vec<f32>>> {
        self.predict_many_at(images, self.temperature)
    }

    /// As [`Predictor::predict_many`] at the given temperature instead of the predictor's
    /// (1 gives the network's own softmax, which a temperature fit starts from).
    ///
    /// # Errors
    /// As [`Predictor::predict`]; a temperature outside [`TEMPERATURE_RANGE`].
    ///
    /// # Examples
    /// ```
    /// use candle_core::Device;
    /// use image::Luma;
    /// use xray_data::Radiograph;
    /// use xray_seg::predict::Predictor;
    /// let predictor = Predictor::load(&xray_seg::shipped_weights_dir(), &Device::Cpu)?;
    /// let image = Radiograph::from_fn(32, 32, |x, y| Luma([(x + 5 * y) as f32]));
    /// let at_own = predictor.predict_many(std::slice::from_ref(&image))?;
    /// let at_own_again = predictor.predict_many_at(std::slice::from_ref(&image), predictor.temperature())?;
    /// assert_eq!(at_own, at_own_again);
    /// // T = 1: the network's own softmax, less confident than at the fitted T < 1.
    /// let raw = predictor.predict_many_at(std::slice::from_ref(&image), 1.0)?;
    /// let max = |p: &[f32]| p.iter().copied().fold(0f32, f32::max);
    /// assert!(max(&raw[0]) <= max(&at_own[0]));
    /// // A temperature out of range is refused before the network runs, even with no image.
    /// assert!(predictor.predict_many_at(&[], 0.0).is_err());
    /// # Ok::<(), xray_seg::Error>(())
    /// ```
    pub fn predict_many_at(
        &self,
        images: &[Radiograph],
        temperature: f64,
    ) -> Result<Vec<Vec<f32>>> {
        // Before the network runs, not after.
        check_temperature(temperature)?;
        if images.is_empty() {
            return Ok(Vec::new());
        }
        let (w, h) = (self.preprocess.width, self.preprocess.height);
        let plane = w as usize * h as usize;
        let mut inputs = Vec::with_capacity(images.len() * plane);
        for img in images {
            inputs.extend_from_slice(self.preprocess.network_input(img)?.as_raw());
        }
        let probs = predict_proba_batch(
            self.model.as_ref(),
            &inputs,
            images.len(),
            h as usize,
            w as usize,
            &self.options,
        )?;
        let c = self.num_classes();
        images
            .iter()
            .enumerate()
            .map(|(i, img)| {
                let p = &probs[i * c * plane..(i + 1) * c * plane];
                let mut out = resize_probabilities(p, c, (w, h), img.dimensions())?;
                // After the resize, so that each output pixel keeps its arg-max: the
                // temperature changes confidences, not labels.
                apply_temperature(&mut out, c, temperature)?;
                Ok(out)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Tensor};
    use xnet_model::init::seeded_var_builder;
    use xnet_model::models::XNetConfig;

    /// A configuration that is not the model's, or a model that does not take one channel,
    /// is refused (`config()` reported the wrong network; every `predict` failed).
    #[test]
    fn a_config_that_is_not_the_models_is_refused() {
        let dev = Device::Cpu;
        let xnet = ModelConfig::XNet(XNetConfig {
            base_width: 2,
            ..Default::default()
        });
        let build = |cfg: &ModelConfig| {
            cfg.build(seeded_var_builder(&VarMap::new(), 1, DType::F32, &dev))
                .unwrap()
        };
        let unet = ModelConfig::UNet(xnet_model::models::UNetConfig {
            base_width: 2,
            ..Default::default()
        });
        let e = Predictor::new(
            build(&xnet),
            unet,
            VarMap::new(),
            Preprocess::square(32),
            &dev,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("is not the model's own"), "{e}");
        let two = ModelConfig::XNet(XNetConfig {
            base_width: 2,
            in_channels: 2,
            ..Default::default()
        });
        let e = Predictor::new(
            build(&two),
            two.clone(),
            VarMap::new(),
            Preprocess::square(32),
            &dev,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("2 input channels"), "{e}");
        // Loaded from a checkpoint, the error names its config file, and not as a fault of
        // the preprocessing record.
        let dir =
            std::env::temp_dir().join(format!("xray-seg-two-channels-{}", std::process::id()));
        let varmap = VarMap::new();
        two.build(seeded_var_builder(&varmap, 1, DType::F32, &dev))
            .unwrap();
        let meta = serde_json::json!({ "preprocess": Preprocess::square(32) });
        xnet_model::checkpoint::save(&dir, &varmap, &two, meta).unwrap();
        let e = Predictor::load(&dir, &dev).unwrap_err().to_string();
        assert!(
            e.contains("config.json: ")
                && e.contains("2 input channels")
                && !e.contains("metadata.preprocess"),
            "{e}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// The predictor folds its network's batch-norms; its probabilities must equal those of
    /// the unfolded network on the same weights, and the trained weights stay trainable.
    #[test]
    fn folded_predictor_matches_the_unfolded_network() {
        let dev = Device::Cpu;
        let config = ModelConfig::XNet(XNetConfig {
            base_width: 2,
            ..Default::default()
        });
        let varmap = VarMap::new();
        let unfolded = config
            .build(seeded_var_builder(&varmap, 3, DType::F32, &dev))
            .unwrap();
        // γ, β and the running statistics away from 1, 0 and (0, 1), so that every term of
        // the folding has work to do.
        for (name, var) in varmap.data().lock().unwrap().iter() {
            if name.ends_with("bn.weight") || name.ends_with("bn.bias") {
                let n = var.elem_count();
                var.set(&Tensor::rand(0.5f32, 1.5, n, &dev).unwrap())
                    .unwrap();
            }
        }
        for seed in 0..3u64 {
            let x = Tensor::rand(0f32, 1.0 + seed as f32, (2, 1, 32, 32), &dev).unwrap();
            unfolded.forward_t(&x, true).unwrap();
        }
        let folded = config.build(candle_nn::VarBuilder::from_varmap(
            &varmap,
            DType::F32,
            &dev,
        ));
        let preprocess = Preprocess::square(32);
        let predictor =
            Predictor::new(folded.unwrap(), config, varmap.clone(), preprocess, &dev).unwrap();

        let pixels: Vec<f32> = (0..45 * 37).map(|i| ((i * 7919) % 1000) as f32).collect();
        let image = Radiograph::from_raw(45, 37, pixels).unwrap();
        let got = predictor.predict(&image).unwrap();
        let input = preprocess.network_input(&image).unwrap();
        let want = predict_proba_batch(
            unfolded.as_ref(),
            input.as_raw(),
            1,
            32,
            32,
            &predictor.options,
        )
        .unwrap();
        let want = resize_probabilities(&want, 3, (32, 32), (45, 37)).unwrap();
        assert_eq!(got.len(), want.len());
        let worst = got
            .iter()
            .zip(&want)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(worst <= 1e-5, "folded and unfolded differ by {worst}");
        // The varmap still holds the unfolded network: it trains.
        let x = Tensor::rand(0f32, 1.0, (1, 1, 32, 32), &dev).unwrap();
        assert!(unfolded.forward_t(&x, true).is_ok());
    }
}
