//! Loss and pixel accuracy of a model on a batch source ([`evaluate`]).

use candle_core::{DType, Device, Tensor};

use crate::loss::{boundary_weight_maps, LossConfig};
use crate::{ModelError, Result, Segmenter};

use super::{BatchSource, TrainBatch};

/// Loss and pixel accuracy of a model on a batch source.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Evaluation {
    /// Data loss, the mean of batch losses weighted by their non-ignored pixel counts.
    pub loss: f64,
    /// Fraction of non-ignored pixels whose arg-max class equals the label.
    pub accuracy: f64,
    /// Number of non-ignored pixels.
    pub pixels: usize,
}

/// Evaluates `model` (inference mode) on every batch of `source` epoch 0.
///
/// # Errors
/// A batch that [`TrainBatch::validate`] refuses for the model's classes and the loss's
/// ignore label, a source that yields an error, no batch at all or no scored pixel (every
/// label the ignore label), or a failing forward pass.
///
/// # Examples
/// ```
/// use candle_core::{DType, Device};
/// use candle_nn::{VarBuilder, VarMap};
/// use xnet_model::loss::LossConfig;
/// use xnet_model::models::{ModelConfig, XNetConfig};
/// use xnet_model::train::{evaluate, InMemoryBatches, TrainBatch};
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let dev = Device::Cpu;
/// let cfg = ModelConfig::XNet(XNetConfig { base_width: 2, ..Default::default() });
/// let model = cfg.build(VarBuilder::from_varmap(&VarMap::new(), DType::F32, &dev))?;
/// // One 8×8 image whose first row is ignored: 56 pixels are scored.
/// let labels = (0..64).map(|i| if i < 8 { 255 } else { (i % 3) as u8 }).collect();
/// let batch = TrainBatch::new(vec![0.5; 64], labels, 1, 8, 8)?;
/// let ev = evaluate(model.as_ref(), &mut InMemoryBatches::new(vec![batch]), &LossConfig::default(), &dev)?;
/// assert_eq!(ev.pixels, 56);
/// assert!(ev.loss.is_finite() && (0.0..=1.0).contains(&ev.accuracy));
/// let e = evaluate(model.as_ref(), &mut InMemoryBatches::default(), &LossConfig::default(), &dev);
/// assert!(e.unwrap_err().to_string().contains("yielded no batches"));
/// let unlabelled = TrainBatch::new(vec![0.5; 64], vec![255; 64], 1, 8, 8)?;
/// let e = evaluate(model.as_ref(), &mut InMemoryBatches::new(vec![unlabelled]), &LossConfig::default(), &dev);
/// assert!(e.unwrap_err().to_string().contains("no scored pixel"));
/// # Ok(())
/// # }
/// ```
pub fn evaluate(
    model: &dyn Segmenter,
    source: &mut dyn BatchSource,
    loss: &LossConfig,
    device: &Device,
) -> Result<Evaluation> {
    let mut acc = EvalAccumulator::default();
    for batch in source.epoch_batches(0) {
        let batch = batch?;
        acc.add(model, &batch, loss, device)?;
    }
    acc.finish()
}

#[derive(Default)]
pub(super) struct EvalAccumulator {
    loss_sum: f64,
    correct: usize,
    pixels: usize,
    batches: usize,
}

impl EvalAccumulator {
    pub(super) fn add(
        &mut self,
        model: &dyn Segmenter,
        batch: &TrainBatch,
        loss: &LossConfig,
        device: &Device,
    ) -> Result<()> {
        let ignore = loss.pixel.ignore_label;
        batch.validate(model.num_classes(), ignore)?;
        let (x, y) = batch.to_tensors(device)?;
        let logits = model.forward_t(&x, false)?;
        let pw = pixel_weights(batch, loss, device)?;
        let l = loss
            .data_loss(&logits, &y, pw.as_ref())?
            .to_dtype(DType::F64)?
            .to_scalar::<f64>()?;
        let pred = logits.argmax(1)?.flatten_all()?.to_vec1::<u32>()?;
        let mut valid = 0usize;
        for (&p, &l) in pred.iter().zip(&batch.labels) {
            if Some(l) != ignore {
                valid += 1;
                if p == l as u32 {
                    self.correct += 1;
                }
            }
        }
        self.loss_sum += l * valid as f64;
        self.pixels += valid;
        self.batches += 1;
        Ok(())
    }

    pub(super) fn finish(&self) -> Result<Evaluation> {
        if self.batches == 0 {
            return Err(ModelError::InvalidInput(
                "the evaluation source yielded no batches".into(),
            ));
        }
        // A loss of 0 over no pixel would pass for a perfect model (and, as a validation
        // loss, hold early stopping's best at the first epoch).
        if self.pixels == 0 {
            return Err(ModelError::InvalidInput(format!(
                "the evaluation source's {} batch(es) hold no scored pixel: every label is the \
                 ignore label",
                self.batches
            )));
        }
        let denom = self.pixels as f64;
        Ok(Evaluation {
            loss: self.loss_sum / denom,
            accuracy: self.correct as f64 / denom,
            pixels: self.pixels,
        })
    }
}

/// The boundary weight maps of `batch` when the loss asks for them.
pub(super) fn pixel_weights(
    batch: &TrainBatch,
    loss: &LossConfig,
    device: &Device,
) -> Result<Option<Tensor>> {
    match &loss.boundary {
        None => Ok(None),
        Some(cfg) => {
            let w = boundary_weight_maps(
                &batch.labels,
                batch.n,
                batch.height,
                batch.width,
                cfg,
                loss.pixel.ignore_label,
            )?;
            Ok(Some(Tensor::from_vec(
                w,
                (batch.n, batch.height, batch.width),
                device,
            )?))
        }
    }
}
