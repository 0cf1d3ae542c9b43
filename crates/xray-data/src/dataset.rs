//! Dataset folders, splits, k-fold, category balancing, class statistics and batching.
//!
//! # Folder format
//! ```text
//! root/
//!   images/<stem>.{png,tif,tiff,jpg,jpeg,dcm}   one radiograph per stem (required)
//!   masks/<stem>.png                             index-PNG label mask per stem (optional folder)
//!   categories.csv                               `stem,category` lines (optional)
//! ```
//! DICOM files are also found by their content whatever their name (`IM000001`, a UID), with
//! the whole file name as their stem. Without `masks/` the dataset is inference-only. See
//! `docs/data-format.md`.

mod balance;
mod batch;
mod folder;
mod split;
mod stats;

pub use balance::{BalancedSampler, Draw};
pub use batch::{Batch, BatchConfig, BatchIter, PrepareFn, SampleContext};
pub use folder::{parse_categories, Dataset, DatasetOptions, Sample, IMAGE_EXTENSIONS};
pub use split::{stratified_kfold, xnet_split, Fold, Split, SplitConfig};
pub use stats::ClassStats;
