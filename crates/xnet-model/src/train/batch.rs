//! One batch of training data ([`TrainBatch`]) and where batches come from ([`BatchSource`],
//! [`InMemoryBatches`]).

use candle_core::{Device, Tensor};

use crate::{ModelError, Result};

/// One batch of training data as plain row-major data.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainBatch {
    /// `n × 1 × height × width` normalised image planes.
    pub images: Vec<f32>,
    /// `n × height × width` class labels (255 = ignore, see the loss configuration).
    pub labels: Vec<u8>,
    /// Number of images.
    pub n: usize,
    /// Height of every image.
    pub height: usize,
    /// Width of every image.
    pub width: usize,
}

impl TrainBatch {
    /// A batch, checking that the vectors have `n·height·width` elements.
    ///
    /// # Shapes
    /// `n`, `height`, then `width` ([tensor order](crate#sizes)): `images` and `labels` are `n ×
    /// height × width`.
    ///
    /// # Errors
    /// [`ModelError::InvalidInput`], as [`Self::check_shape`]: an empty batch, a pixel count
    /// that overflows a `usize`, or vectors of another length.
    ///
    /// # Examples
    /// ```
    /// use xnet_model::train::TrainBatch;
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// // Two 2×3 images: planes and label maps one after the other, rows first.
    /// let images = vec![0.1, 0.2, 0.9, 0.1, 0.8, 0.9, /* image 2 */ 0.0, 0.5, 0.5, 0.0, 0.5, 1.0];
    /// let labels = vec![0, 1, 2, 0, 2, 2, /* image 2 */ 0, 1, 1, 0, 1, 255];
    /// let batch = TrainBatch::new(images.clone(), labels, 2, 2, 3)?;
    /// assert_eq!(batch.labels[11], 255); // ignored by the losses
    ///
    /// // A label map of the wrong length is refused.
    /// let e = TrainBatch::new(images, vec![0; 6], 2, 2, 3).unwrap_err().to_string();
    /// assert!(e.contains("needs 12 pixels, got 12 image values and 6 labels"), "{e}");
    /// # Ok(())
    /// # }
    /// ```
    pub fn new(
        images: Vec<f32>,
        labels: Vec<u8>,
        n: usize,
        height: usize,
        width: usize,
    ) -> Result<Self> {
        let b = Self {
            images,
            labels,
            n,
            height,
            width,
        };
        b.check_shape()?;
        Ok(b)
    }

    /// Checks the element counts.
    ///
    /// # Errors
    /// [`ModelError::InvalidInput`] for an empty batch, a pixel count `n · height · width`
    /// that overflows a `usize`, or vectors of another length.
    ///
    /// # Examples
    /// ```
    /// use xnet_model::train::TrainBatch;
    /// // The fields are public: a batch edited after `new` is checked again before use.
    /// let mut batch = TrainBatch { images: vec![0.0; 4], labels: vec![0; 4], n: 1, height: 2, width: 2 };
    /// assert!(batch.check_shape().is_ok());
    /// batch.n = usize::MAX; // n · height · width does not fit a usize
    /// let e = batch.check_shape().unwrap_err().to_string();
    /// assert!(e.contains("the count overflows"), "{e}");
    /// batch.n = 0;
    /// assert!(batch.check_shape().unwrap_err().to_string().contains("empty batch"));
    /// ```
    pub fn check_shape(&self) -> Result<()> {
        if self.n == 0 || self.height == 0 || self.width == 0 {
            return Err(ModelError::InvalidInput(format!(
                "empty batch: n × height × width = {} × {} × {}",
                self.n, self.height, self.width
            )));
        }
        let Some(expected) = self
            .n
            .checked_mul(self.height)
            .and_then(|p| p.checked_mul(self.width))
        else {
            return Err(ModelError::InvalidInput(format!(
                "batch of n × height × width = {} × {} × {} pixels: the count overflows",
                self.n, self.height, self.width
            )));
        };
        if self.images.len() != expected || self.labels.len() != expected {
            return Err(ModelError::InvalidInput(format!(
                "batch of {} image{} of {}×{} needs {expected} pixels, got {} image values and \
                 {} labels",
                self.n,
                if self.n == 1 { "" } else { "s" },
                self.height,
                self.width,
                self.images.len(),
                self.labels.len()
            )));
        }
        Ok(())
    }

    /// Checks shapes, finite image values and labels `< num_classes` (or `ignore`); the
    /// error names the image and pixel.
    ///
    /// # Errors
    /// [`ModelError::InvalidInput`]: the shape errors of [`Self::check_shape`], then the
    /// first non-finite image value, then the first label that is neither a class nor
    /// `ignore`, each naming the image and the pixel's `(x, y)`.
    ///
    /// # Examples
    /// ```
    /// use xnet_model::train::TrainBatch;
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// // Two 2×2 images; the second has label 3 at its pixel 1, i.e. x = 1, y = 0.
    /// let batch = TrainBatch::new(vec![0.5; 8], vec![0, 1, 2, 255, 2, 3, 1, 0], 2, 2, 2)?;
    /// assert!(batch.validate(4, Some(255)).is_ok());
    /// let e = batch.validate(3, Some(255)).unwrap_err().to_string();
    /// assert!(e.contains("image 1 of the batch has label 3 at pixel (x=1, y=0)"), "{e}");
    /// // Without an ignore label, 255 is a label like any other.
    /// let e = batch.validate(4, None).unwrap_err().to_string();
    /// assert!(e.contains("image 0 of the batch has label 255 at pixel (x=1, y=1)"), "{e}");
    /// # Ok(())
    /// # }
    /// ```
    pub fn validate(&self, num_classes: usize, ignore: Option<u8>) -> Result<()> {
        self.check_shape()?;
        let plane = self.height * self.width;
        if let Some(i) = self.images.iter().position(|v| !v.is_finite()) {
            return Err(ModelError::InvalidInput(format!(
                "image {} of the batch has a non-finite value {} at pixel (x={}, y={})",
                i / plane,
                self.images[i],
                (i % plane) % self.width,
                (i % plane) / self.width
            )));
        }
        if let Some(i) = self
            .labels
            .iter()
            .position(|&l| (l as usize) >= num_classes && Some(l) != ignore)
        {
            return Err(ModelError::InvalidInput(format!(
                "image {} of the batch has label {} at pixel (x={}, y={}); the model has {} \
                 classes{}",
                i / plane,
                self.labels[i],
                (i % plane) % self.width,
                (i % plane) / self.width,
                num_classes,
                ignore
                    .map(|l| format!(" and {l} is ignored"))
                    .unwrap_or_default()
            )));
        }
        Ok(())
    }

    /// `([n, 1, h, w]` f32 images, `[n, h, w]` u8 labels`)` on `device`.
    ///
    /// # Examples
    /// ```
    /// use candle_core::{DType, Device};
    /// use xnet_model::train::TrainBatch;
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let batch = TrainBatch::new(vec![0.5; 2 * 4 * 4], vec![1; 2 * 4 * 4], 2, 4, 4)?;
    /// let (x, y) = batch.to_tensors(&Device::Cpu)?;
    /// assert_eq!((x.dims(), x.dtype()), (&[2, 1, 4, 4][..], DType::F32));
    /// assert_eq!((y.dims(), y.dtype()), (&[2, 4, 4][..], DType::U8));
    /// assert_eq!(y.flatten_all()?.to_vec1::<u8>()?, batch.labels);
    /// # Ok(())
    /// # }
    /// ```
    pub fn to_tensors(&self, device: &Device) -> Result<(Tensor, Tensor)> {
        self.check_shape()?;
        let x = Tensor::from_slice(&self.images, (self.n, 1, self.height, self.width), device)?;
        let y = Tensor::from_slice(&self.labels, (self.n, self.height, self.width), device)?;
        Ok((x, y))
    }
}

/// Where batches come from: a loader, an augmenting pipeline, a balancer...
pub trait BatchSource {
    /// The batches of one epoch (0-based). A source may reshuffle or re-augment per epoch;
    /// for reproducible runs, derive its randomness from a seed and `epoch`.
    fn epoch_batches(&mut self, epoch: usize) -> Box<dyn Iterator<Item = Result<TrainBatch>> + '_>;

    /// Number of batches per epoch, if known (sizes the progress bar).
    fn batches_per_epoch(&self) -> Option<usize> {
        None
    }
}

/// The same batches every epoch, held in memory (tests, small validation sets).
#[derive(Debug, Clone, Default)]
pub struct InMemoryBatches {
    /// The batches, in order.
    pub batches: Vec<TrainBatch>,
}

impl InMemoryBatches {
    /// A source over `batches`.
    ///
    /// # Examples
    /// ```
    /// use xnet_model::train::{BatchSource, InMemoryBatches, TrainBatch};
    /// # fn main() -> xnet_model::Result<()> {
    /// let one = TrainBatch::new(vec![0.0; 16], vec![0; 16], 1, 4, 4)?;
    /// let two = TrainBatch::new(vec![1.0; 32], vec![2; 32], 2, 4, 4)?;
    /// let mut source = InMemoryBatches::new(vec![one, two]);
    /// assert_eq!(source.batches_per_epoch(), Some(2));
    /// // The same batches, in the same order, every epoch.
    /// for epoch in 0..3 {
    ///     let sizes: Vec<usize> =
    ///         source.epoch_batches(epoch).map(|b| b.map(|b| b.n)).collect::<Result<_, _>>()?;
    ///     assert_eq!(sizes, [1, 2]);
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub fn new(batches: Vec<TrainBatch>) -> Self {
        Self { batches }
    }
}

impl BatchSource for InMemoryBatches {
    fn epoch_batches(
        &mut self,
        _epoch: usize,
    ) -> Box<dyn Iterator<Item = Result<TrainBatch>> + '_> {
        Box::new(self.batches.iter().cloned().map(Ok))
    }

    fn batches_per_epoch(&self) -> Option<usize> {
        Some(self.batches.len())
    }
}
