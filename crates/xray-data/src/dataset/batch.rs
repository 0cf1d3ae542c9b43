//! Parallel batch preparation with bounded prefetch.

use super::{Dataset, Draw};
use crate::normalize::{normalize, NormalizeConfig};
use crate::resize::{resize, resize_mask, Filter};
use crate::{DataError, Mask, Radiograph, Result, IGNORE_LABEL};
use rand::rngs::StdRng;
use rand::SeedableRng;
use rayon::prelude::*;
use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::Arc;
use std::thread::JoinHandle;

/// Where a sample being prepared comes from; handed to the prepare function.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SampleContext<'a> {
    /// The epoch number given to [`Dataset::batches`].
    pub epoch: u64,
    /// The draw (sample index and copy number).
    pub draw: Draw,
    /// The sample's stem.
    pub stem: &'a str,
}

/// The per-sample preparation hook (typically augmentation): receives the resized,
/// normalised image and mask (all [`IGNORE_LABEL`] for an inference dataset) and an RNG
/// seeded from `(seed, epoch, index, copy)` only, so the result does not depend on thread
/// scheduling. It must return the configured size.
pub type PrepareFn = dyn Fn(&SampleContext<'_>, Radiograph, Mask, &mut StdRng) -> Result<(Radiograph, Mask)>
    + Send
    + Sync;

/// Configuration of [`Dataset::batches`].
#[derive(Debug, Clone, PartialEq)]
pub struct BatchConfig {
    /// Samples per batch (the last batch may be smaller unless `drop_last`).
    pub batch_size: usize,
    /// Width every sample is resized to.
    pub width: u32,
    /// Height every sample is resized to. `width × height` may be at most
    /// [`crate::io::DEFAULT_MAX_PIXELS`].
    pub height: u32,
    /// Interpolation of images when resizing (masks always use nearest).
    pub filter: Filter,
    /// Intensity normalisation after resizing; `None` keeps detector units.
    pub normalize: Option<NormalizeConfig>,
    /// Batches prepared ahead of the consumer (bounded channel capacity).
    pub prefetch: usize,
    /// Drop a final incomplete batch.
    pub drop_last: bool,
    /// Seed of the per-sample RNGs.
    pub seed: u64,
}

impl Default for BatchConfig {
    /// Batches of 8 at 200×200 (XNet's input size), area resizing, min-max
    /// normalisation, 2 batches of prefetch.
    fn default() -> Self {
        BatchConfig {
            batch_size: 8,
            width: 200,
            height: 200,
            filter: Filter::Area,
            normalize: Some(NormalizeConfig::default()),
            prefetch: 2,
            drop_last: false,
            seed: 0,
        }
    }
}

impl BatchConfig {
    /// Checks the sizes: a batch size and an output size of at least 1, and an output of at
    /// most [`crate::io::DEFAULT_MAX_PIXELS`] pixels. [`Dataset::batches`] checks them too.
    ///
    /// # Errors
    /// [`DataError::InvalidParameter`] naming the size that does not fit.
    ///
    /// # Examples
    /// ```
    /// use xray_data::dataset::BatchConfig;
    /// assert!(BatchConfig::default().validate().is_ok());
    /// let empty = BatchConfig { batch_size: 0, ..BatchConfig::default() };
    /// assert!(empty.validate().unwrap_err().to_string().contains("batch_size=0"));
    /// let huge = BatchConfig { width: 1 << 20, height: 1 << 20, ..BatchConfig::default() };
    /// assert!(huge.validate().unwrap_err().to_string().contains("exceeds the limit"));
    /// ```
    pub fn validate(&self) -> Result<()> {
        if self.batch_size == 0 || self.width == 0 || self.height == 0 {
            return Err(DataError::InvalidParameter(format!(
                "batch size and output size must be non-zero, got batch_size={}, {}x{}",
                self.batch_size, self.width, self.height
            )));
        }
        let pixels = u64::from(self.width) * u64::from(self.height);
        if pixels > crate::io::DEFAULT_MAX_PIXELS {
            return Err(DataError::InvalidParameter(format!(
                "output size {}x{} exceeds the limit of {} pixels",
                self.width,
                self.height,
                crate::io::DEFAULT_MAX_PIXELS
            )));
        }
        Ok(())
    }
}

/// A batch ready for a network.
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    /// Images, `n × 1 × height × width`, row-major.
    pub images: Vec<f32>,
    /// Labels, `n × height × width` ([`IGNORE_LABEL`] where unknown).
    pub labels: Vec<u8>,
    /// Number of samples.
    pub n: usize,
    /// Height of every sample.
    pub height: usize,
    /// Width of every sample.
    pub width: usize,
    /// Stems of the samples, in batch order.
    pub stems: Vec<String>,
    /// The draws the samples came from, in batch order.
    pub draws: Vec<Draw>,
}

/// Iterator over prepared batches; a background thread prepares them with rayon and stays
/// at most [`BatchConfig::prefetch`] batches ahead. Dropping it stops the thread.
pub struct BatchIter {
    rx: Option<Receiver<Result<Batch>>>,
    worker: Option<JoinHandle<()>>,
    remaining: usize,
}

impl std::fmt::Debug for BatchIter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BatchIter")
            .field("remaining", &self.remaining)
            .finish()
    }
}

/// A 64-bit mix (SplitMix64 finaliser) combining the seed with a draw's coordinates.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The RNG seed of one draw in one epoch.
pub(crate) fn draw_seed(seed: u64, epoch: u64, draw: Draw) -> u64 {
    let mut h = mix(seed ^ 0x9e37_79b9_7f4a_7c15);
    h = mix(h ^ epoch);
    h = mix(h ^ draw.index as u64);
    mix(h ^ u64::from(draw.copy))
}

impl Dataset {
    /// Loads, resizes, normalises and prepares one draw (what a batch is made of).
    ///
    /// # Errors
    /// Loading errors (a NaN or infinite pixel in the file is [`DataError::NonFinite`] from
    /// the loader, naming the file; [`resize`] keeps a finite image finite, even near
    /// `f32::MAX`); should a resized pixel still be non-finite and `cfg.normalize` be set,
    /// [`DataError::NonFinite`] names the image file as `<file> (resized to WxH)` with the
    /// pixel's `(x, y)` in the resized image; [`DataError::InvalidParameter`] from
    /// [`resize`] for a zero output size or one above its pixel limit (see
    /// [`crate::resize`]); and [`DataError::SizeMismatch`] when `prepare` returns another
    /// size.
    ///
    /// # Examples
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use rand::RngExt;
    /// use xray_data::dataset::{BatchConfig, Dataset, DatasetOptions, Draw, PrepareFn};
    /// use xray_data::{DataError, Mask, Radiograph};
    /// let root = std::env::temp_dir().join(format!("xray-doc-prepare-{}", std::process::id()));
    /// std::fs::create_dir_all(root.join("images"))?;
    /// let image = Radiograph::from_fn(8, 8, |x, y| image::Luma([(x * 100 + y) as f32]));
    /// xray_data::io::save_png16(&root.join("images/a.png"), &image)?;
    /// let ds = Dataset::open(&root, &DatasetOptions::default())?;
    /// let cfg = BatchConfig { width: 4, height: 4, ..BatchConfig::default() };
    /// // A hook that adds noise drawn from the draw's own generator.
    /// let noisy: &PrepareFn = &|_, mut img: Radiograph, mask: Mask, rng| {
    ///     img.iter_mut().for_each(|v| *v += rng.random::<f32>());
    ///     Ok((img, mask))
    /// };
    /// let draw = Draw { index: 0, copy: 0 };
    /// let (img, mask) = ds.prepare_sample(draw, 3, &cfg, noisy)?;
    /// assert_eq!(img.dimensions(), (4, 4));
    /// assert!(mask.pixels().all(|m| m.0[0] == 255)); // no masks/: all ignored
    /// // The generator depends on (seed, epoch, index, copy) only: reproducible...
    /// assert_eq!(ds.prepare_sample(draw, 3, &cfg, noisy)?.0, img);
    /// // ...and a second copy of the same sample is augmented afresh.
    /// let copy = Draw { index: 0, copy: 1 };
    /// assert_ne!(ds.prepare_sample(copy, 3, &cfg, noisy)?.0, img);
    /// // A hook must keep the configured size.
    /// let shrink: &PrepareFn = &|_, _, _, _| Ok((Radiograph::new(2, 2), Mask::new(2, 2)));
    /// let err = ds.prepare_sample(draw, 3, &cfg, shrink).unwrap_err();
    /// assert!(matches!(err, DataError::SizeMismatch { .. }), "{err}");
    /// # std::fs::remove_dir_all(&root).ok();
    /// # Ok(())
    /// # }
    /// ```
    pub fn prepare_sample(
        &self,
        draw: Draw,
        epoch: u64,
        cfg: &BatchConfig,
        prepare: &PrepareFn,
    ) -> Result<(Radiograph, Mask)> {
        let (img, mask) = self.load(draw.index)?;
        let s = &self.samples[draw.index];
        let img = resize(&img, cfg.width, cfg.height, cfg.filter)?;
        let img = match &cfg.normalize {
            // `normalize` names an in-memory image `<memory>`: name the sample's file, and
            // that the position is in the resized image, not in the file.
            Some(n) => normalize(&img, n).map_err(|e| match e {
                DataError::NonFinite { x, y, value, .. } => DataError::NonFinite {
                    path: std::path::PathBuf::from(format!(
                        "{} (resized to {}x{})",
                        s.image.display(),
                        cfg.width,
                        cfg.height
                    )),
                    x,
                    y,
                    value,
                },
                other => other,
            })?,
            None => img,
        };
        let mask = match mask {
            Some(m) => resize_mask(&m, cfg.width, cfg.height)?,
            None => Mask::from_pixel(cfg.width, cfg.height, image::Luma([IGNORE_LABEL])),
        };
        let mut rng = StdRng::seed_from_u64(draw_seed(cfg.seed, epoch, draw));
        let ctx = SampleContext {
            epoch,
            draw,
            stem: &s.stem,
        };
        let (img, mask) = prepare(&ctx, img, mask, &mut rng)?;
        for (what, dims) in [("image", img.dimensions()), ("mask", mask.dimensions())] {
            if dims != (cfg.width, cfg.height) {
                return Err(DataError::SizeMismatch {
                    path: std::path::PathBuf::from(format!("{} ({what} after prepare)", s.stem)),
                    expected_width: cfg.width,
                    expected_height: cfg.height,
                    found_width: dims.0,
                    found_height: dims.1,
                });
            }
        }
        Ok((img, mask))
    }

    /// Batches of `draws` (e.g. [`Draw::plain`] of a split, or a
    /// [`super::BalancedSampler`] epoch) prepared in parallel in the background.
    /// `prepare` is applied to every sample after resizing and normalisation (pass
    /// `|_, i, m, _| Ok((i, m))` for none); its RNG depends only on
    /// `(cfg.seed, epoch, draw)`, so batches are reproducible.
    ///
    /// # Errors
    /// [`DataError::InvalidParameter`] for sizes [`BatchConfig::validate`] refuses, or a draw
    /// index out of range. Per-sample errors arrive as `Err` items of the iterator, after
    /// which it ends.
    ///
    /// # Examples
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use std::sync::Arc;
    /// use xray_data::dataset::{BatchConfig, Dataset, DatasetOptions, Draw};
    /// let root = std::env::temp_dir().join(format!("xray-doc-batches-{}", std::process::id()));
    /// xray_data::synth::generate_dataset(&root, 3, 32, 1)?;
    /// let ds = Arc::new(Dataset::open(&root, &DatasetOptions::default())?);
    /// let cfg = BatchConfig { batch_size: 2, width: 16, height: 16, ..BatchConfig::default() };
    /// // The last argument would augment each sample; this one keeps it as it is.
    /// let draws = Draw::plain(&[0, 1, 2]);
    /// let batches = ds.batches(draws, 0, &cfg, |_, img, mask, _| Ok((img, mask)))?;
    /// let batches: Vec<_> = batches.collect::<Result<_, _>>()?;
    /// assert_eq!(batches.iter().map(|b| b.n).collect::<Vec<_>>(), [2, 1]); // the last is smaller
    /// assert_eq!(batches[0].images.len(), 2 * 16 * 16); // n × 1 × height × width
    /// assert_eq!(batches[0].labels.len(), 2 * 16 * 16);
    /// assert!(batches[0].images.iter().all(|v| (0.0..=1.0).contains(v))); // min-max normalised
    /// assert_eq!(batches[1].stems, ["synth_00002"]);
    /// # std::fs::remove_dir_all(&root).ok();
    /// # Ok(())
    /// # }
    /// ```
    pub fn batches<F>(
        self: &Arc<Self>,
        draws: Vec<Draw>,
        epoch: u64,
        cfg: &BatchConfig,
        prepare: F,
    ) -> Result<BatchIter>
    where
        F: Fn(&SampleContext<'_>, Radiograph, Mask, &mut StdRng) -> Result<(Radiograph, Mask)>
            + Send
            + Sync
            + 'static,
    {
        cfg.validate()?;
        if let Some(d) = draws.iter().find(|d| d.index >= self.len()) {
            return Err(DataError::InvalidParameter(format!(
                "draw index {} out of range (dataset has {} samples)",
                d.index,
                self.len()
            )));
        }
        let n_batches = if cfg.drop_last {
            draws.len() / cfg.batch_size
        } else {
            draws.len().div_ceil(cfg.batch_size)
        };
        let (tx, rx) = sync_channel(cfg.prefetch);
        let ds = Arc::clone(self);
        let cfg = cfg.clone();
        let worker = std::thread::Builder::new()
            .name("xray-data-batches".into())
            .spawn(move || {
                let prepare: &PrepareFn = &prepare;
                for chunk in draws.chunks(cfg.batch_size).take(n_batches) {
                    let samples: Vec<Result<(Radiograph, Mask)>> = chunk
                        .par_iter()
                        .map(|&d| ds.prepare_sample(d, epoch, &cfg, prepare))
                        .collect();
                    let batch = assemble(&ds, chunk, samples, &cfg);
                    let failed = batch.is_err();
                    if tx.send(batch).is_err() || failed {
                        return;
                    }
                }
            })
            .map_err(|e| DataError::io("<batch worker thread>", e))?;
        Ok(BatchIter {
            rx: Some(rx),
            worker: Some(worker),
            remaining: n_batches,
        })
    }
}

fn assemble(
    ds: &Dataset,
    chunk: &[Draw],
    samples: Vec<Result<(Radiograph, Mask)>>,
    cfg: &BatchConfig,
) -> Result<Batch> {
    let (w, h) = (cfg.width as usize, cfg.height as usize);
    let n = chunk.len();
    let mut images = Vec::with_capacity(n * w * h);
    let mut labels = Vec::with_capacity(n * w * h);
    for s in samples {
        let (img, mask) = s?;
        images.extend_from_slice(img.as_raw());
        labels.extend_from_slice(mask.as_raw());
    }
    Ok(Batch {
        images,
        labels,
        n,
        height: h,
        width: w,
        stems: chunk
            .iter()
            .map(|d| ds.samples[d.index].stem.clone())
            .collect(),
        draws: chunk.to_vec(),
    })
}

impl BatchIter {
    /// Batches not yet received.
    ///
    /// # Examples
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use std::sync::Arc;
    /// use xray_data::dataset::{BatchConfig, Dataset, DatasetOptions, Draw};
    /// let root = std::env::temp_dir().join(format!("xray-doc-remaining-{}", std::process::id()));
    /// std::fs::create_dir_all(root.join("images"))?;
    /// for stem in ["a", "b", "c"] {
    ///     let image = xray_data::Radiograph::from_pixel(4, 4, image::Luma([9.0]));
    ///     xray_data::io::save_png16(&root.join(format!("images/{stem}.png")), &image)?;
    /// }
    /// let ds = Arc::new(Dataset::open(&root, &DatasetOptions::default())?);
    /// let cfg = BatchConfig { batch_size: 2, width: 4, height: 4, ..BatchConfig::default() };
    /// let mut batches = ds.batches(Draw::plain(&[0, 1, 2]), 0, &cfg, |_, i, m, _| Ok((i, m)))?;
    /// assert_eq!(batches.remaining(), 2); // 3 draws in batches of 2
    /// batches.next().transpose()?;
    /// assert_eq!(batches.remaining(), 1);
    /// batches.next().transpose()?;
    /// assert_eq!((batches.remaining(), batches.next().is_none()), (0, true));
    /// # std::fs::remove_dir_all(&root).ok();
    /// # Ok(())
    /// # }
    /// ```
    pub fn remaining(&self) -> usize {
        self.remaining
    }
}

impl Iterator for BatchIter {
    type Item = Result<Batch>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.remaining == 0 {
            return None;
        }
        let rx = self.rx.as_ref()?;
        match rx.recv() {
            Ok(item) => {
                self.remaining = if item.is_err() { 0 } else { self.remaining - 1 };
                Some(item)
            }
            Err(_) => {
                // The worker ended early without an error item: it panicked.
                self.remaining = 0;
                self.rx = None;
                let panicked = self
                    .worker
                    .take()
                    .map(|h| h.join().is_err())
                    .unwrap_or(false);
                Some(Err(DataError::InvalidParameter(format!(
                    "batch preparation thread stopped unexpectedly{}",
                    if panicked {
                        " (the prepare function panicked)"
                    } else {
                        ""
                    }
                ))))
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (0, Some(self.remaining))
    }
}

impl Drop for BatchIter {
    fn drop(&mut self) {
        // Closing the channel makes the worker's next send fail, so it stops.
        self.rx = None;
        if let Some(h) = self.worker.take() {
            let _ = h.join();
        }
    }
}
