//! A loaded checkpoint that returns class probabilities at the input's own size.

use std::path::Path;

use candle_core::Device;
use candle_nn::VarMap;
use xnet_model::checkpoint;
use xnet_model::infer::{predict_proba_batch, InferenceOptions};
use xnet_model::{ModelConfig, Segmenter};
use xray_data::Radiograph;

use crate::prepare::{resize_probabilities, Preprocess};
use crate::{Error, Result};

/// The checkpoint metadata key of the fitted softmax temperature (a number > 0).
pub const TEMPERATURE_KEY: &str = "temperature";

/// The softmax temperatures a predictor accepts. Wider than the fitted range
/// (`xray_metrics::TemperatureConfig::temperature_range`, [0.05, 20] by default), and narrow
/// enough that `1/T` times a log-probability stays finite in `f32`.
pub const TEMPERATURE_RANGE: (f64, f64) = (0.01, 100.0);

fn check_temperature(temperature: f64) -> Result<()> {
    let (low, high) = TEMPERATURE_RANGE;
    if (low..=high).contains(&temperature) {
        Ok(())
    } else {
        Err(Error::Invalid(format!(
            "the softmax temperature must be in [{low}, {high}], got {temperature}"
        )))
    }
}

/// A network plus the preprocessing it was trained with and the softmax temperature it was
/// calibrated with.
pub struct Predictor {
    model: Box<dyn Segmenter>,
    config: ModelConfig,
    preprocess: Preprocess,
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
            .field("temperature", &self.temperature)
            .finish_non_exhaustive()
    }
}

impl Predictor {
    /// Loads a checkpoint directory (or its `model.safetensors`) written by `train`.
    ///
    /// The preprocessing comes from the checkpoint's metadata (`"preprocess"`); a checkpoint
    /// without it is taken as XNet's default (200×200, min-max). The softmax temperature
    /// comes from `"temperature"` (written by the train job, see [`crate::calibrate`]); a
    /// checkpoint without it is uncalibrated (T = 1).
    ///
    /// # Errors
    /// Missing or corrupt files, weights that do not fit the config, a preprocessing record
    /// that does not fit the network, a temperature that is not a finite number > 0.
    pub fn load(path: &Path, device: &Device) -> Result<Self> {
        let loaded = checkpoint::load(path, device)?;
        let preprocess = match loaded.metadata.get("preprocess") {
            Some(v) => serde_json::from_value(v.clone()).map_err(|e| {
                Error::Invalid(format!(
                    "{}: metadata.preprocess is not a preprocessing record: {e}",
                    path.display()
                ))
            })?,
            None => Preprocess::default(),
        };
        let mut predictor = Self::new(
            loaded.model,
            loaded.config,
            loaded.varmap,
            preprocess,
            device,
        )?;
        if let Some(v) = loaded.metadata.get(TEMPERATURE_KEY) {
            let t = v.as_f64().ok_or_else(|| {
                Error::Invalid(format!(
                    "{}: metadata.{TEMPERATURE_KEY} must be a number, got {v}",
                    path.display()
                ))
            })?;
            predictor
                .set_temperature(t)
                .map_err(|e| Error::Invalid(format!("{}: {e}", path.display())))?;
        }
        Ok(predictor)
    }

    /// Wraps an already built model, folding its batch-norms into the convolutions
    /// ([`Segmenter::fold_batch_norm`]): a predictor only runs inference, and a folded block
    /// is one convolution where it was a convolution plus four element-wise passes (the fast
    /// CPU kernels fold on the fly anyway; on a GPU every pass is a kernel launch). The
    /// `varmap` keeps the trained, unfolded weights.
    ///
    /// # Errors
    /// A preprocessing size that is not a multiple of the network's size multiple.
    pub fn new(
        mut model: Box<dyn Segmenter>,
        config: ModelConfig,
        varmap: VarMap,
        preprocess: Preprocess,
        device: &Device,
    ) -> Result<Self> {
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
            options,
            temperature: 1.0,
            _varmap: varmap,
        })
    }

    /// The network's configuration.
    pub fn config(&self) -> &ModelConfig {
        &self.config
    }

    /// The preprocessing applied before the network.
    pub fn preprocess(&self) -> &Preprocess {
        &self.preprocess
    }

    /// Number of classes of the probability maps.
    pub fn num_classes(&self) -> usize {
        self.model.num_classes()
    }

    /// The softmax temperature applied to every prediction (1 = the network's own softmax).
    pub fn temperature(&self) -> f64 {
        self.temperature
    }

    /// Sets the softmax temperature: predictions become `softmax(z / T)` for the network's
    /// logits `z`. It changes confidences, never the arg-max.
    ///
    /// # Errors
    /// [`Error::Invalid`] unless `temperature` is in [`TEMPERATURE_RANGE`].
    pub fn set_temperature(&mut self, temperature: f64) -> Result<()> {
        check_temperature(temperature)?;
        self.temperature = temperature;
        Ok(())
    }

    /// Images per forward pass (default 4).
    pub fn set_batch_size(&mut self, batch_size: usize) {
        self.options.batch_size = batch_size.max(1);
    }

    /// `C × H × W` probabilities of one radiograph (detector units, any size), at its own
    /// size: the image is resized to the network input and normalised as in training, the
    /// network's probabilities are resized back (bilinear), and each output pixel's are taken
    /// to the predictor's temperature (so its arg-max is the uncalibrated one).
    ///
    /// # Errors
    /// An empty image, or a network error.
    pub fn predict(&self, image: &Radiograph) -> Result<Vec<f32>> {
        Ok(self.predict_many(std::slice::from_ref(image))?.remove(0))
    }

    /// As [`Predictor::predict`] for several radiographs, batched through the network.
    ///
    /// # Errors
    /// As [`Predictor::predict`].
    pub fn predict_many(&self, images: &[Radiograph]) -> Result<Vec<Vec<f32>>> {
        self.predict_many_at(images, self.temperature)
    }

    /// As [`Predictor::predict_many`] at the given temperature instead of the predictor's
    /// (1 gives the network's own softmax, which a temperature fit starts from).
    ///
    /// # Errors
    /// As [`Predictor::predict`]; a temperature outside [`TEMPERATURE_RANGE`].
    pub fn predict_many_at(
        &self,
        images: &[Radiograph],
        temperature: f64,
    ) -> Result<Vec<Vec<f32>>> {
        check_temperature(temperature)?;
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
                if temperature != 1.0 {
                    rescale_temperature(&mut out, c, temperature);
                }
                Ok(out)
            })
            .collect()
    }
}

/// Turns class-major `softmax(z)` into `softmax(z / T)` pixel by pixel: since
/// `ln softmax(z)_k = z_k − logsumexp(z)`, dividing the log-probabilities by `T` and taking
/// the softmax again gives exactly `softmax(z / T)` (the per-pixel constant cancels). A
/// monotone map of each pixel's probabilities, so its arg-max stays (unless `f32` rounding
/// makes two classes equal). Zero probabilities (softmax underflow) stay zero.
///
/// Blocks of pixels in parallel; inside a block each class plane is a contiguous run, and
/// [`ln_f32`] / [`exp_f32`] are branch-free, so the loops vectorise (libm's scalar calls made
/// this a third of a 2000² radiograph's `segment --probs` time).
fn rescale_temperature(probs: &mut [f32], classes: usize, temperature: f64) {
    use rayon::prelude::*;
    const BLOCK: usize = 8192;
    let c = classes.max(1);
    let plane = probs.len() / c;
    if plane == 0 {
        return;
    }
    let inv_t = (1.0 / temperature) as f32;
    let blocks = plane.div_ceil(BLOCK);
    let mut per_block: Vec<Vec<&mut [f32]>> = (0..blocks).map(|_| Vec::with_capacity(c)).collect();
    for class_plane in probs.chunks_exact_mut(plane) {
        for (b, chunk) in class_plane.chunks_mut(BLOCK).enumerate() {
            per_block[b].push(chunk);
        }
    }
    per_block.into_par_iter().for_each(|mut chunks| {
        let n = chunks[0].len();
        let mut max = vec![f32::NEG_INFINITY; n];
        for chunk in chunks.iter_mut() {
            for (v, m) in chunk.iter_mut().zip(max.iter_mut()) {
                *v = ln_f32(*v) * inv_t;
                *m = m.max(*v);
            }
        }
        let mut sum = vec![0f32; n];
        for chunk in chunks.iter_mut() {
            for ((v, m), s) in chunk.iter_mut().zip(&max).zip(sum.iter_mut()) {
                *v = exp_f32(*v - *m);
                *s += *v;
            }
        }
        for chunk in chunks.iter_mut() {
            for (v, s) in chunk.iter_mut().zip(&sum) {
                // An all-zero pixel (not a distribution) stays all zero.
                *v = if *s > 0.0 { *v / *s } else { 0.0 };
            }
        }
    });
}

/// Natural logarithm of an `f32`, branch-free: `ln x = e·ln 2 + ln m` with `x = m·2^e`,
/// `m ∈ [√½, √2)`, and `ln m = 2·atanh(s)`, `s = (m − 1)/(m + 1)`, `|s| ≤ 0.172`, by its
/// odd series to `s⁹/9` (truncation below 4e-10). Within a few `f32` ulps of `f64::ln` for
/// normal positive `x`; `−∞` for `x ≤ 0` and for subnormals, which a probability of that
/// size may as well be.
#[inline]
fn ln_f32(x: f32) -> f32 {
    const LN_2: f32 = std::f32::consts::LN_2;
    let bits = x.to_bits();
    let exponent = ((bits >> 23) & 0xff) as i32 - 127;
    let mantissa = f32::from_bits((bits & 0x007f_ffff) | 0x3f80_0000); // in [1, 2)
    let high = mantissa > std::f32::consts::SQRT_2;
    let m = if high { mantissa * 0.5 } else { mantissa };
    let e = (exponent + i32::from(high)) as f32;
    let s = (m - 1.0) / (m + 1.0);
    let s2 = s * s;
    let series =
        s * (2.0 + s2 * (2.0 / 3.0 + s2 * (2.0 / 5.0 + s2 * (2.0 / 7.0 + s2 * (2.0 / 9.0)))));
    let ln = e * LN_2 + series;
    if x >= f32::MIN_POSITIVE {
        ln
    } else {
        f32::NEG_INFINITY
    }
}

/// `eˣ` of an `f32` for `x ≤ 0`, branch-free: `eˣ = 2ⁿ·eʳ` with `n = round(x / ln 2)`,
/// `r = x − n·ln 2` (ln 2 split in two so `r` is exact to `f32`), `|r| ≤ 0.347`, and `eʳ` by
/// its Taylor series to `r⁷/7!` (truncation below 6e-9). Within a few `f32` ulps of `f64::exp`;
/// 0 below −87.3 (where `eˣ` leaves the normal `f32` range) and for `−∞`.
#[inline]
fn exp_f32(x: f32) -> f32 {
    const LOG2_E: f32 = std::f32::consts::LOG2_E;
    const LN_2_HI: f32 = 0.693_145_75; // 12 significant bits of ln 2: n·LN_2_HI is exact
    const LN_2_LO: f32 = 1.428_606_8e-6; // ln 2 − LN_2_HI
    let xc = x.max(-87.0);
    let n = (xc * LOG2_E).round();
    let r = (xc - n * LN_2_HI) - n * LN_2_LO;
    let p = 1.0
        + r * (1.0
            + r * (0.5
                + r * (1.0 / 6.0
                    + r * (1.0 / 24.0
                        + r * (1.0 / 120.0 + r * (1.0 / 720.0 + r * (1.0 / 5040.0)))))));
    let scale = f32::from_bits(((n as i32 + 127) as u32) << 23);
    if x >= -87.0 {
        p * scale
    } else {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Tensor};
    use xnet_model::init::seeded_var_builder;
    use xnet_model::models::XNetConfig;

    #[test]
    fn ln_and_exp_are_within_a_few_ulps() {
        // ln over (0, 1] and a bit above, spread over every binade.
        let mut worst_ln = 0f64;
        let mut x = f32::MIN_POSITIVE;
        while x < 4.0 {
            for step in [1.0f32, 1.0001, 1.37, 1.9999] {
                let v = x * step;
                let want = f64::from(v).ln();
                let got = f64::from(ln_f32(v));
                worst_ln = worst_ln.max((got - want).abs() / want.abs().max(1.0));
            }
            x *= 2.0;
        }
        assert!(worst_ln < 1e-6, "ln: worst error {worst_ln:e}");
        assert_eq!(ln_f32(0.0), f32::NEG_INFINITY);
        assert_eq!(ln_f32(-1.0), f32::NEG_INFINITY);
        assert_eq!(ln_f32(1.0), 0.0);
        // exp over [-87, 0], relative error.
        let mut worst_exp = 0f64;
        for i in 0..=86_990 {
            let v = -(i as f32) * 1e-3;
            let want = f64::from(v).exp();
            let got = f64::from(exp_f32(v));
            worst_exp = worst_exp.max((got - want).abs() / want);
        }
        assert!(worst_exp < 1e-6, "exp: worst relative error {worst_exp:e}");
        assert_eq!(exp_f32(0.0), 1.0);
        assert_eq!(exp_f32(-100.0), 0.0);
        assert_eq!(exp_f32(f32::NEG_INFINITY), 0.0);
    }

    #[test]
    fn temperature_rescaling_is_the_softmax_of_scaled_logits() {
        let softmax = |z: &[f64]| {
            let m = z.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let e: Vec<f64> = z.iter().map(|v| (v - m).exp()).collect();
            let s: f64 = e.iter().sum();
            e.into_iter().map(|v| v / s).collect::<Vec<f64>>()
        };
        // Three pixels of three classes, class-major; the last pixel's logits are extreme.
        let logits = [[2.0, -1.0, 0.5], [0.1, 0.2, 0.3], [40.0, -40.0, 0.0]];
        for t in [0.5, 1.0, 1.7, 4.0] {
            let mut probs = vec![0f32; 9];
            for (i, z) in logits.iter().enumerate() {
                for (k, p) in softmax(z).iter().enumerate() {
                    probs[k * 3 + i] = *p as f32;
                }
            }
            rescale_temperature(&mut probs, 3, t);
            for (i, z) in logits.iter().enumerate() {
                let scaled: Vec<f64> = z.iter().map(|v| v / t).collect();
                for (k, want) in softmax(&scaled).iter().enumerate() {
                    let got = f64::from(probs[k * 3 + i]);
                    assert!(
                        (got - want).abs() < 1e-6,
                        "T {t} pixel {i} class {k}: {got} vs {want}"
                    );
                }
            }
        }
        // Underflowed zeros stay zero and the rest still sums to one.
        let mut probs = vec![1.0f32, 0.0];
        rescale_temperature(&mut probs, 2, 3.0);
        assert_eq!(probs, vec![1.0, 0.0]);
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
