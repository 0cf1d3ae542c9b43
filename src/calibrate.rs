//! Temperature scaling of a trained network's softmax on labelled images: one `T` that makes
//! the confidences honest (docs/calibration.md), fitted on the validation split by the train
//! job and stored in the checkpoint, so that `segment` and `evaluate` report calibrated
//! probabilities.

use std::path::Path;

use xnet_model::checkpoint;
use xnet_model::infer::FlipAverage;
use xray_data::dataset::Dataset;
use xray_metrics::{fit_temperature, LogitImage, TemperatureConfig, TemperatureFit};

use crate::predict::{Predictor, FLIP_AVERAGE_KEY, TEMPERATURE_KEY};
use crate::{Error, Result};

/// The checkpoint metadata key of the whole [`TemperatureFit`] (beside
/// [`TEMPERATURE_KEY`], which holds the temperature itself).
pub const TEMPERATURE_FIT_KEY: &str = "temperature_fit";

/// At most this many pixels, over all images, enter a fit: the fit needs the network's
/// log-probabilities of every pixel it uses, `C` floats each, so large radiographs are
/// sampled on a regular grid (every `s`-th pixel in raster order) to stay within it.
pub const MAX_FIT_PIXELS: usize = 1 << 22;

/// Fits the softmax temperature of `predictor`'s network on the labelled samples `indices`
/// of `dataset` (at the images' own resolution, as `evaluate` scores them), starting from the
/// network's own softmax whatever temperature the predictor holds.
///
/// The log-probabilities `ln softmax(z)` stand in for the logits `z`: they differ by one
/// constant per pixel, which the softmax ignores, so the fitted `T` is the same.
///
/// # Errors
/// No samples, an index out of range, a sample without a mask, a mask whose size differs
/// from its image, no labelled pixel, or a network error.
///
/// # Examples
/// ```no_run
/// # fn main() -> xray_seg::Result<()> {
/// use xray_data::dataset::{Dataset, DatasetOptions};
/// use xray_seg::{calibrate, predict::Predictor};
/// let mut predictor = Predictor::load("runs/hip".as_ref(), &candle_core::Device::Cpu)?;
/// let site_data = Dataset::open("site-labels".as_ref(), &DatasetOptions::default())?;
/// let all: Vec<usize> = (0..site_data.len()).collect();
/// let fit = calibrate::fit_temperature_on(&predictor, &site_data, &all)?;
/// predictor.set_temperature(fit.temperature)?;
/// println!("T = {:.3}, ECE {:.4} → {:.4}", fit.temperature, fit.ece_before, fit.ece_after);
/// # Ok(())
/// # }
/// ```
pub fn fit_temperature_on(
    predictor: &Predictor,
    dataset: &Dataset,
    indices: &[usize],
) -> Result<TemperatureFit> {
    if indices.is_empty() {
        return Err(Error::Invalid(
            "temperature scaling needs at least one labelled image".into(),
        ));
    }
    let c = predictor.num_classes();
    let per_image = (MAX_FIT_PIXELS / indices.len()).max(1);
    let mut logits: Vec<Vec<f32>> = Vec::with_capacity(indices.len());
    let mut labels: Vec<Vec<u8>> = Vec::with_capacity(indices.len());
    for &i in indices {
        let stem = &dataset
            .samples
            .get(i)
            .ok_or_else(|| {
                Error::Invalid(format!(
                    "sample {i} does not exist ({} samples)",
                    dataset.len()
                ))
            })?
            .stem;
        let (image, mask) = dataset.load(i)?;
        let mask = mask
            .ok_or_else(|| Error::Invalid(format!("{stem}: temperature scaling needs a mask")))?;
        if mask.dimensions() != image.dimensions() {
            return Err(Error::Invalid(format!(
                "{stem}: mask {:?} and image {:?} differ in size",
                mask.dimensions(),
                image.dimensions()
            )));
        }
        let probs = predictor
            .predict_many_at(std::slice::from_ref(&image), 1.0)?
            .remove(0);
        let plane = mask.as_raw().len();
        let stride = plane.div_ceil(per_image);
        let kept: Vec<usize> = (0..plane).step_by(stride).collect();
        // ln 0 would be -inf, which the fit refuses; the smallest normal f32 is far below
        // any probability that matters (its log is -87).
        let mut z = Vec::with_capacity(c * kept.len());
        for k in 0..c {
            let class = &probs[k * plane..(k + 1) * plane];
            z.extend(kept.iter().map(|&p| class[p].max(f32::MIN_POSITIVE).ln()));
        }
        logits.push(z);
        labels.push(kept.iter().map(|&p| mask.as_raw()[p]).collect());
    }
    let images: Vec<LogitImage<'_>> = logits
        .iter()
        .zip(&labels)
        .map(|(logits, labels)| LogitImage { logits, labels })
        .collect();
    Ok(fit_temperature(&images, c, &TemperatureConfig::default())?)
}

/// Stores a fitted temperature in a checkpoint (directory or weights file): its
/// `config.json` gets `metadata.temperature` (which [`Predictor::load`] applies) and the whole
/// fit under `metadata.temperature_fit`, and `metadata.flip_average` the flip averaging the
/// fit's predictions were made with (the predictor's, [`Predictor::flip_average`]), since the
/// temperature holds for that averaging only; the rest of the file and the weights stay as
/// they are. Written atomically.
///
/// # Errors
/// An unreadable or invalid `config.json`, metadata that is not a JSON object, or a write
/// error.
///
/// # Examples
/// ```
/// use candle_core::Device;
/// use xnet_model::infer::FlipAverage;
/// use xray_metrics::TemperatureFit;
/// use xray_seg::{calibrate::store_temperature, predict::Predictor};
/// // A copy of the shipped checkpoint, to store another fit into.
/// let dir = std::env::temp_dir().join(format!("xray-seg-doc-store-t-{}", std::process::id()));
/// std::fs::create_dir_all(&dir)?;
/// for file in ["config.json", "model.safetensors"] {
///     std::fs::copy(xray_seg::shipped_weights_dir().join(file), dir.join(file))?;
/// }
/// let fit = TemperatureFit {
///     temperature: 1.5,
///     nll_before: 0.30,
///     nll_after: 0.25,
///     ece_before: 0.08,
///     ece_after: 0.02,
///     iterations: 7,
///     pixels: 4096,
/// };
/// store_temperature(&dir, &fit, FlipAverage::Off)?;
/// let predictor = Predictor::load(&dir, &Device::Cpu)?;
/// assert_eq!(predictor.temperature(), 1.5);
/// assert_eq!(predictor.flip_average(), FlipAverage::Off);
/// let config: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(dir.join("config.json"))?)?;
/// assert_eq!(config["metadata"]["temperature_fit"]["pixels"], 4096);
/// assert_eq!(config["metadata"]["preprocess"]["width"], 128); // the rest stays
/// // No checkpoint there: an error.
/// assert!(store_temperature(&dir.join("missing"), &fit, FlipAverage::Off).is_err());
/// # std::fs::remove_dir_all(&dir)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn store_temperature(
    checkpoint_path: &Path,
    fit: &TemperatureFit,
    flip_average: FlipAverage,
) -> Result<()> {
    let mut config = checkpoint::read_config(checkpoint_path)?;
    if config.metadata.is_null() {
        config.metadata = serde_json::json!({});
    }
    let Some(metadata) = config.metadata.as_object_mut() else {
        return Err(Error::Invalid(format!(
            "{}: the checkpoint's metadata is not a JSON object",
            checkpoint_path.display()
        )));
    };
    record_temperature(metadata, fit);
    metadata.insert(FLIP_AVERAGE_KEY.into(), serde_json::json!(flip_average));
    checkpoint::write_config(checkpoint_path, &config)?;
    Ok(())
}

/// Writes a fit into checkpoint metadata: the temperature that [`Predictor::load`] reads
/// and the whole fit beside it.
pub(crate) fn record_temperature(
    metadata: &mut serde_json::Map<String, serde_json::Value>,
    fit: &TemperatureFit,
) {
    metadata.insert(TEMPERATURE_KEY.into(), serde_json::json!(fit.temperature));
    metadata.insert(TEMPERATURE_FIT_KEY.into(), serde_json::json!(fit));
}

/// Every warning a fit calls for, in the order to print them: [`bound_warning`]'s, then
/// [`ece_rise_warning`]'s. Empty for a fit that needs no comment.
///
/// # Examples
/// ```
/// use xray_metrics::TemperatureFit;
/// use xray_seg::calibrate::fit_warnings;
/// let fit = TemperatureFit {
///     temperature: 1.3,
///     nll_before: 0.30,
///     nll_after: 0.27,
///     ece_before: 0.02,
///     ece_after: 0.01,
///     iterations: 4,
///     pixels: 10_000,
/// };
/// assert!(fit_warnings(&fit).is_empty());
/// let worse = TemperatureFit { ece_after: 0.03, ..fit };
/// assert_eq!(fit_warnings(&worse).len(), 1);
/// ```
pub fn fit_warnings(fit: &TemperatureFit) -> Vec<String> {
    bound_warning(fit)
        .into_iter()
        .chain(ece_rise_warning(fit))
        .collect()
}

/// A warning for a fit that lowered the negative log-likelihood but raised the expected
/// calibration error on the very pixels it was fitted on, or `None`.
///
/// The fit minimises the NLL (a proper scoring rule, dominated by confident mistakes); the
/// ECE measures the gap between confidence and accuracy per confidence bin. When a network
/// is over-confident in some bins and under-confident in others, one temperature cannot
/// mend both, and the one that lowers the NLL can widen the binned gaps (seen on six real
/// images after two epochs: ECE 0.0906 → 0.1058). The temperature is still kept: it is the
/// better fit by the NLL, but by the ECE the network's own softmax was the better
/// calibrated on those images, and the user should know.
///
/// # Examples
/// ```
/// use xray_metrics::TemperatureFit;
/// use xray_seg::calibrate::ece_rise_warning;
/// let fit = TemperatureFit {
///     temperature: 0.8,
///     nll_before: 0.50,
///     nll_after: 0.45,
///     ece_before: 0.0906,
///     ece_after: 0.1058,
///     iterations: 5,
///     pixels: 4096,
/// };
/// let w = ece_rise_warning(&fit).expect("the ECE rose");
/// assert!(w.contains("0.0906") && w.contains("0.1058"), "{w}");
/// assert!(ece_rise_warning(&TemperatureFit { ece_after: 0.05, ..fit }).is_none());
/// ```
pub fn ece_rise_warning(fit: &TemperatureFit) -> Option<String> {
    // Only a rise that shows at the precision the ECE is printed with is worth a word.
    let rise = fit.ece_after - fit.ece_before;
    if rise.is_nan() || rise < 5e-5 {
        return None;
    }
    Some(format!(
        "the fitted temperature lowered the NLL on the images it was fitted on ({:.4} → \
         {:.4}) but raised their expected calibration error ({:.4} → {:.4}): the network \
         is over-confident in some confidence bins and under-confident in others, which one \
         temperature cannot mend; the temperature is kept (the better fit by the NLL), but \
         by the ECE the network's own softmax was better calibrated there (docs/calibration.md)",
        fit.nll_before, fit.nll_after, fit.ece_before, fit.ece_after
    ))
}

/// A warning for a fit that stopped at an end of the default temperature range
/// ([`TemperatureConfig::temperature_range`], [0.05, 20]; the range
/// [`fit_temperature_on`] fits in), or `None`. There the
/// temperature is the range's bound, not a calibration: at the upper end the network is
/// about as good as chance on those images (too short a training, too few validation
/// images), and every probability it then reports is near uniform (`segment
/// --uncertainty` calls most pixels wrong); at the lower end the softmax is pushed to one-hot.
/// The train job stored such a fit (T = 20.000 after two epochs on six real images) and
/// printed it as any other.
///
/// # Examples
/// ```
/// use xray_metrics::TemperatureFit;
/// use xray_seg::calibrate::bound_warning;
/// let fit = |temperature| TemperatureFit {
///     temperature,
///     nll_before: 1.0,
///     nll_after: 0.9,
///     ece_before: 0.2,
///     ece_after: 0.1,
///     iterations: 3,
///     pixels: 100,
/// };
/// assert!(bound_warning(&fit(0.8)).is_none());
/// let w = bound_warning(&fit(20.0)).expect("at the upper end");
/// assert!(w.contains("20") && w.contains("near chance"), "{w}");
/// assert!(bound_warning(&fit(0.05)).is_some());
/// ```
pub fn bound_warning(fit: &TemperatureFit) -> Option<String> {
    let (low, high) = TemperatureConfig::default().temperature_range;
    let t = fit.temperature;
    let at = |bound: f64| (t - bound).abs() <= 1e-6 * bound;
    if at(high) {
        Some(format!(
            "the softmax temperature stopped at the upper end of its range ({high}): on these \
             images the network is near chance, and its probabilities come out near uniform; \
             train longer or fit on more images"
        ))
    } else if at(low) {
        Some(format!(
            "the softmax temperature stopped at the lower end of its range ({low}): the fit \
             found no calibrated temperature on these images (its probabilities come out \
             near one-hot); fit on more images"
        ))
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::prepare::Preprocess;
    use candle_core::{DType, Device};
    use candle_nn::VarMap;
    use xnet_model::init::seeded_var_builder;
    use xnet_model::models::{ModelConfig, XNetConfig};
    use xray_data::dataset::DatasetOptions;

    fn tiny_predictor() -> Predictor {
        let config = ModelConfig::XNet(XNetConfig {
            base_width: 2,
            ..Default::default()
        });
        let varmap = VarMap::new();
        let model = config
            .build(seeded_var_builder(&varmap, 5, DType::F32, &Device::Cpu))
            .unwrap();
        Predictor::new(model, config, varmap, Preprocess::square(32), &Device::Cpu).unwrap()
    }

    #[test]
    fn fits_within_the_range_and_refuses_bad_requests() {
        let dir = std::env::temp_dir().join(format!("xray-seg-calibrate-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        xray_data::synth::generate_dataset(&dir, 3, 40, 2).unwrap();
        let ds = Dataset::open(&dir, &DatasetOptions::default()).unwrap();
        let mut predictor = tiny_predictor();
        // The fit starts from the raw softmax whatever the predictor holds.
        predictor.set_temperature(3.0).unwrap();
        let fit = fit_temperature_on(&predictor, &ds, &[0, 1, 2]).unwrap();
        predictor.set_temperature(1.0).unwrap();
        assert_eq!(
            fit_temperature_on(&predictor, &ds, &[0, 1, 2]).unwrap(),
            fit
        );
        assert!(
            (0.05..=20.0).contains(&fit.temperature),
            "T = {}",
            fit.temperature
        );
        assert!(fit.nll_after <= fit.nll_before + 1e-12);
        assert!(fit.pixels > 0 && fit.pixels <= 3 * 40 * 40);
        assert!(fit_temperature_on(&predictor, &ds, &[])
            .unwrap_err()
            .to_string()
            .contains("at least one"));
        assert!(fit_temperature_on(&predictor, &ds, &[0, 7])
            .unwrap_err()
            .to_string()
            .contains("does not exist"));
        // Without masks there is nothing to fit on.
        std::fs::remove_dir_all(dir.join("masks")).unwrap();
        let unlabelled = Dataset::open(&dir, &DatasetOptions::default()).unwrap();
        assert!(fit_temperature_on(&predictor, &unlabelled, &[0]).is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
