//! The preprocessing record of a checkpoint's metadata (`metadata.preprocess`), typed and
//! checked, for a program that embeds this crate without the workspace's `xray_seg`.

use serde::{Deserialize, Serialize};

use super::LoadedModel;
use crate::infer::MAX_INPUT_SIDE;
use crate::{ModelError, Result};

/// How every training radiograph became network input, as the workspace's `train` job
/// records it under `metadata.preprocess` (the crate docs' table says how to repeat it):
/// shrunk whole to `width × height` (area averaging), then normalised per image, min-max to
/// `0..=1` or the `percentile` window, after `ln(1 + v − min)` when `log`.
///
/// Read it with [`LoadedModel::preprocess`], which checks it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PreprocessRecord {
    /// Network input width, pixels.
    pub width: u32,
    /// Network input height, pixels.
    pub height: u32,
    /// Log-transform intensities before normalising.
    pub log: bool,
    /// Percentile window `(low, high)` instead of per-image min-max (the XNet default).
    pub percentile: Option<(f32, f32)>,
}

impl PreprocessRecord {
    /// Checks the record for a network whose input sides must be multiples of
    /// `size_multiple` ([`Segmenter::size_multiple`](crate::Segmenter::size_multiple)).
    ///
    /// # Errors
    /// [`ModelError::InvalidConfig`] when a side is zero, above [`MAX_INPUT_SIDE`] or not a
    /// multiple of `size_multiple`, or the percentile window is not `0 <= low < high <= 100`.
    ///
    /// # Examples
    /// ```
    /// use xnet_model::checkpoint::PreprocessRecord;
    /// let record = PreprocessRecord { width: 128, height: 96, log: false, percentile: None };
    /// assert!(record.validate(8).is_ok());
    /// let e = PreprocessRecord { width: 100, ..record }.validate(8).unwrap_err();
    /// assert!(e.to_string().contains("multiple of 8"), "{e}");
    /// let reversed = PreprocessRecord { percentile: Some((99.0, 1.0)), ..record };
    /// assert!(reversed.validate(8).unwrap_err().to_string().contains("low=99, high=1"));
    /// ```
    pub fn validate(&self, size_multiple: usize) -> Result<()> {
        let refuse = |m: String| Err(ModelError::InvalidConfig(m));
        let (w, h) = (self.width as usize, self.height as usize);
        if w > MAX_INPUT_SIDE || h > MAX_INPUT_SIDE {
            return refuse(format!(
                "network input {w}x{h} is larger than {MAX_INPUT_SIDE}x{MAX_INPUT_SIDE}"
            ));
        }
        let m = size_multiple.max(1);
        if w == 0 || h == 0 || !w.is_multiple_of(m) || !h.is_multiple_of(m) {
            return refuse(format!(
                "input size {w}x{h} must be a non-zero multiple of {m} for this network"
            ));
        }
        if let Some((low, high)) = self.percentile {
            let percent = 0.0..=100.0;
            if !(percent.contains(&low) && percent.contains(&high) && low < high) {
                return refuse(format!(
                    "percentile window must satisfy 0 <= low < high <= 100, got low={low}, \
                     high={high}"
                ));
            }
        }
        Ok(())
    }
}

impl LoadedModel {
    /// The preprocessing its metadata records (`metadata.preprocess`, written by the
    /// workspace's `train` job; the shipped weights hold one), checked against this network
    /// ([`PreprocessRecord::validate`]); `None` when there is none (then the network's input
    /// size is a guess: XNet's is 200 × 200).
    ///
    /// # Errors
    /// [`ModelError::InvalidConfig`] for a value that is not such a record (a field missing or
    /// of another type), or one [`PreprocessRecord::validate`] refuses; the message starts
    /// `metadata.preprocess`.
    ///
    /// # Examples
    /// ```
    /// use candle_core::Device;
    /// use xnet_model::checkpoint;
    /// # fn main() -> xnet_model::Result<()> {
    /// # let shipped = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
    /// #     .join("../../fixtures/weights/xnet-small");
    /// let mut loaded = checkpoint::load(&shipped, &Device::Cpu)?;
    /// let record = loaded.preprocess()?.expect("the shipped weights record it");
    /// assert_eq!((record.width, record.height, record.log), (128, 128, false));
    /// // A record that is not one is refused, quoting the key.
    /// loaded.metadata["preprocess"]["width"] = serde_json::json!("wide");
    /// let e = loaded.preprocess().unwrap_err().to_string();
    /// assert!(e.contains("metadata.preprocess is not a preprocessing record"), "{e}");
    /// # Ok(())
    /// # }
    /// ```
    pub fn preprocess(&self) -> Result<Option<PreprocessRecord>> {
        let Some(v) = self.metadata.get("preprocess") else {
            return Ok(None);
        };
        let record: PreprocessRecord = serde_json::from_value(v.clone()).map_err(|e| {
            ModelError::InvalidConfig(format!(
                "metadata.preprocess is not a preprocessing record: {e}"
            ))
        })?;
        record
            .validate(self.model.size_multiple())
            .map_err(|e| match e {
                ModelError::InvalidConfig(m) => {
                    ModelError::InvalidConfig(format!("metadata.preprocess: {m}"))
                }
                other => other,
            })?;
        Ok(Some(record))
    }
}
