//! Checkpoints: safetensors weights plus the config as JSON, written atomically.
//!
//! A checkpoint is a directory holding [`WEIGHTS_FILE`] (every variable of the model's
//! [`VarMap`], batch-norm running statistics included) and [`CONFIG_FILE`] (a
//! [`CheckpointConfig`]: the [`ModelConfig`] plus free-form metadata). Each file is written to
//! a temporary name in the same directory, flushed to the disk and renamed into place, so a
//! crash (or a power cut) mid-write never leaves a truncated file under the final name. The two are renamed one after the other, so
//! the config records the weights' [`weights_digest`]: a pair from two saves (a crash between
//! the renames) is refused at load ([`load`], [`load_weights_into`]) rather than mixed.
//!
//! Loading validates the stored configuration, compares the tensors it needs (names and
//! shapes, found without allocating them) with the safetensors header, and only then reads
//! the data, builds the network and fills its variables: a tensor whose shape differs from
//! what the configuration builds, a missing tensor, an unexpected one, a NaN or infinite
//! value or a negative batch-norm running variance is an error naming it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use candle_core::{DType, Device, Shape, Tensor};
use candle_nn::var_builder::SimpleBackend;
use candle_nn::{Init, VarBuilder, VarMap};
use serde::{Deserialize, Serialize};

use crate::{ModelConfig, ModelError, Result, Segmenter};

mod atomic;
mod loading;
mod preprocess_record;
mod swap;
mod weights_file;

pub(crate) use atomic::write_safetensors_atomic;
pub use atomic::{write_bytes_atomic, write_json_atomic};
pub use loading::{load, load_from_bytes, load_weights_into, load_with, IN_MEMORY};
pub use preprocess_record::PreprocessRecord;
pub(crate) use swap::{
    holds_its_weights, remove_replaced_leftovers, replace_dir, restore_replaced_dir,
};
pub(crate) use weights_file::varmap_tensors;

/// File name of the weights inside a checkpoint directory.
pub const WEIGHTS_FILE: &str = "model.safetensors";
/// File name of the configuration inside a checkpoint directory.
pub const CONFIG_FILE: &str = "config.json";
/// Version of the [`CheckpointConfig`] layout written by this crate.
pub const FORMAT_VERSION: u32 = 1;

/// What `config.json` holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckpointConfig {
    /// Layout version ([`FORMAT_VERSION`]).
    pub format_version: u32,
    /// The network's configuration.
    pub model: ModelConfig,
    /// Free-form metadata (training epoch, validation loss, normalisation, ...).
    #[serde(default)]
    pub metadata: serde_json::Value,
    /// Digest of the weights file saved with this config ([`weights_digest`]), so that a
    /// pair torn by an interrupted save (the two files are renamed into place one after the
    /// other) is refused at load instead of mixing two saves. Absent in checkpoints written
    /// before it existed, which load unchecked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weights_digest: Option<String>,
}

/// A digest of a weights file's bytes: their length and 64-bit FNV-1a hash, as
/// `"fnv1a64:<16 hex digits>:<length>"`. Not cryptographic: it tells two saves apart.
///
/// # Examples
/// ```
/// use xnet_model::checkpoint::weights_digest;
/// assert_eq!(weights_digest(b""), "fnv1a64:cbf29ce484222325:0");
/// assert_eq!(weights_digest(b"a"), "fnv1a64:af63dc4c8601ec8c:1");
/// ```
pub fn weights_digest(bytes: &[u8]) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("fnv1a64:{hash:016x}:{}", bytes.len())
}

/// A network loaded from a checkpoint.
pub struct LoadedModel {
    /// The network, ready for [`crate::infer::predict_proba`].
    pub model: Box<dyn Segmenter>,
    /// The configuration stored in the checkpoint's `config.json`. [`load_with`] builds the
    /// network with a builder that may change it (another up-sampling, say): then
    /// `model.config()` is the one the network was built from, and this stays the stored one.
    pub config: ModelConfig,
    /// Its variables (keep it to fine-tune or save again).
    pub varmap: VarMap,
    /// The metadata stored beside it.
    pub metadata: serde_json::Value,
}

impl LoadedModel {
    /// The test-time flip averaging its metadata records (`metadata.flip_average`, as the
    /// workspace's `train` job writes it and the shipped weights hold it):
    /// [`FlipAverage::Off`](crate::infer::FlipAverage::Off) when there is none. Give it to
    /// [`InferenceOptions::flip_average`](crate::infer::InferenceOptions::flip_average): the
    /// temperature was fitted on probabilities averaged that way.
    ///
    /// # Errors
    /// [`ModelError::InvalidConfig`] for a value other than `"off"`, `"horizontal"` or
    /// `"horizontal_vertical"`, quoting it.
    ///
    /// # Examples
    /// ```
    /// use candle_core::Device;
    /// use xnet_model::{checkpoint, infer::FlipAverage};
    /// # fn main() -> xnet_model::Result<()> {
    /// # let shipped = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
    /// #     .join("../../fixtures/weights/xnet-small");
    /// let loaded = checkpoint::load(&shipped, &Device::Cpu)?;
    /// assert_eq!(loaded.flip_average()?, FlipAverage::HorizontalVertical);
    /// # Ok(())
    /// # }
    /// ```
    pub fn flip_average(&self) -> Result<crate::infer::FlipAverage> {
        match self.metadata.get("flip_average") {
            None => Ok(crate::infer::FlipAverage::Off),
            Some(v) => serde_json::from_value(v.clone()).map_err(|_| {
                ModelError::InvalidConfig(format!(
                    "metadata.flip_average must be \"off\", \"horizontal\" or \
                     \"horizontal_vertical\", got {v}"
                ))
            }),
        }
    }

    /// The softmax temperature its metadata records (`metadata.temperature`, fitted on the
    /// validation split by the workspace's `train` job), `None` when there is none. Apply it
    /// with [`infer::apply_temperature`](crate::infer::apply_temperature) to probabilities
    /// computed with [`Self::flip_average`].
    ///
    /// # Errors
    /// [`ModelError::InvalidConfig`] for a value that is not a number, or one outside
    /// [`TEMPERATURE_RANGE`](crate::infer::TEMPERATURE_RANGE), quoting it.
    ///
    /// # Examples
    /// ```
    /// use candle_core::Device;
    /// use xnet_model::checkpoint;
    /// # fn main() -> xnet_model::Result<()> {
    /// # let shipped = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
    /// #     .join("../../fixtures/weights/xnet-small");
    /// let loaded = checkpoint::load(&shipped, &Device::Cpu)?;
    /// let t = loaded.temperature()?.unwrap_or(1.0);
    /// assert!((t - 0.694).abs() < 5e-4, "{t}");
    /// # Ok(())
    /// # }
    /// ```
    pub fn temperature(&self) -> Result<Option<f64>> {
        let Some(v) = self.metadata.get("temperature") else {
            return Ok(None);
        };
        let t = v.as_f64().ok_or_else(|| {
            ModelError::InvalidConfig(format!("metadata.temperature must be a number, got {v}"))
        })?;
        crate::infer::check_temperature(t).map_err(|e| match e {
            ModelError::InvalidConfig(m) => {
                ModelError::InvalidConfig(format!("metadata.temperature: {m}"))
            }
            other => other,
        })?;
        Ok(Some(t))
    }
}

impl std::fmt::Debug for LoadedModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedModel")
            .field("config", &self.config)
            .field("metadata", &self.metadata)
            .finish_non_exhaustive()
    }
}

/// Saves `varmap` and `config` (plus `metadata`, e.g. `serde_json::json!({"epoch": 3})` or
/// `Value::Null`) into directory `dir`, creating it if needed. Both files are written
/// atomically (temporary file + rename).
///
/// `varmap` must hold exactly the variables the network `config` builds, with their
/// shapes: a checkpoint of another network's variables, or of an empty `VarMap`, would be
/// written only to be refused when [`load`] reads it, and would have replaced a good
/// checkpoint on its way. A network built by a [`load_with`] builder that asks for other
/// variables than its config is saved with [`save_with`] and that builder.
///
/// # Errors
/// [`ModelError::InvalidConfig`] naming `dir`, before anything is written, when `varmap`
/// does not hold `config`'s variables (the names missing and unexpected, or the first
/// variable of another shape). [`ModelError::Io`] naming `dir` or the file when the folder
/// cannot be created (a file of that name, say) or a file cannot be written; the file
/// already under that name then stays as it was. Candle's errors reading the variables.
///
/// # Examples
/// ```
/// use candle_core::{DType, Device};
/// use candle_nn::{VarBuilder, VarMap};
/// use xnet_model::checkpoint;
/// use xnet_model::models::{ModelConfig, XNetConfig};
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let dir = std::env::temp_dir().join(format!("xnet-doc-save-{}", std::process::id()));
/// let varmap = VarMap::new();
/// let cfg = ModelConfig::XNet(XNetConfig { base_width: 2, ..Default::default() });
/// cfg.build(VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu))?;
/// checkpoint::save(&dir, &varmap, &cfg, serde_json::json!({ "epoch": 3 }))?;
///
/// assert!(dir.join(checkpoint::WEIGHTS_FILE).is_file());
/// let stored = checkpoint::read_config(&dir.join(checkpoint::CONFIG_FILE))?;
/// assert_eq!(stored.model, cfg);
/// assert_eq!(stored.metadata["epoch"], 3);
///
/// // Another network's variables are refused, and the checkpoint there is kept.
/// let wider = ModelConfig::XNet(XNetConfig { base_width: 4, ..Default::default() });
/// let e = checkpoint::save(&dir, &varmap, &wider, serde_json::Value::Null).unwrap_err();
/// assert!(e.to_string().contains("not saved"), "{e}");
/// assert_eq!(checkpoint::read_config(&dir.join(checkpoint::CONFIG_FILE))?.model, cfg);
/// # std::fs::remove_dir_all(&dir)?;
/// # Ok(())
/// # }
/// ```
pub fn save(
    dir: &Path,
    varmap: &VarMap,
    config: &ModelConfig,
    metadata: serde_json::Value,
) -> Result<()> {
    save_with(dir, varmap, config, metadata, |cfg, vb| cfg.build(vb))
}

/// As [`save`], for a network that `build` made of `config` (the builder the checkpoint
/// will be read with, by [`load_with`]): `varmap` must hold the variables `build` asks for.
///
/// # Errors
/// As [`save`], the variables compared with `build`'s; also `build`'s own errors.
///
/// # Examples
/// ```
/// use candle_core::{DType, Device};
/// use candle_nn::{VarBuilder, VarMap};
/// use xnet_model::checkpoint;
/// use xnet_model::models::{ModelConfig, XNetConfig};
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let dir = std::env::temp_dir().join(format!("xnet-doc-save-with-{}", std::process::id()));
/// // A two-class network stored under a three-class config: only its builder knows.
/// let two_classes = |stored: &ModelConfig, vb: VarBuilder| match stored {
///     ModelConfig::XNet(c) => ModelConfig::XNet(XNetConfig { num_classes: 2, ..c.clone() }).build(vb),
///     other => other.build(vb),
/// };
/// let cfg = ModelConfig::XNet(XNetConfig { base_width: 2, ..Default::default() });
/// let varmap = VarMap::new();
/// two_classes(&cfg, VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu))?;
/// assert!(checkpoint::save(&dir, &varmap, &cfg, serde_json::Value::Null).is_err());
/// checkpoint::save_with(&dir, &varmap, &cfg, serde_json::Value::Null, two_classes)?;
/// assert!(checkpoint::load_with(&dir, &Device::Cpu, two_classes).is_ok());
/// # std::fs::remove_dir_all(&dir)?;
/// # Ok(())
/// # }
/// ```
pub fn save_with(
    dir: &Path,
    varmap: &VarMap,
    config: &ModelConfig,
    metadata: serde_json::Value,
    build: impl Fn(&ModelConfig, VarBuilder) -> Result<Box<dyn Segmenter>>,
) -> Result<()> {
    let tensors = varmap_tensors(varmap)?;
    let expected = expected_shapes(|vb| build(config, vb).map(|_| ()))?;
    check_varmap_fits(dir, &expected, &tensors)?;
    write_checkpoint(dir, &tensors, config, metadata)
}

/// Saves a model's variables without comparing them with a builder's: for the
/// [`Trainer`](crate::train::Trainer), whose `VarMap` holds by construction the variables
/// of the model it trains, whatever builder made that model (a network of the caller's own,
/// read back with [`load_with`] and its builder).
pub(crate) fn save_model_variables(
    dir: &Path,
    varmap: &VarMap,
    config: &ModelConfig,
    metadata: serde_json::Value,
) -> Result<()> {
    write_checkpoint(dir, &varmap_tensors(varmap)?, config, metadata)
}

/// Writes the two files of a checkpoint, the weights first (the config records their
/// digest).
fn write_checkpoint(
    dir: &Path,
    tensors: &std::collections::HashMap<String, Tensor>,
    config: &ModelConfig,
    metadata: serde_json::Value,
) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|source| ModelError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    let digest = write_safetensors_atomic(&dir.join(WEIGHTS_FILE), tensors)?;
    let cfg = CheckpointConfig {
        format_version: FORMAT_VERSION,
        model: config.clone(),
        metadata,
        weights_digest: Some(digest),
    };
    write_json_atomic(&dir.join(CONFIG_FILE), &cfg)
}

/// Refuses to save variables that are not the network's: names missing or unexpected, or
/// a variable of another shape (the first, by name).
fn check_varmap_fits(
    dir: &Path,
    expected: &BTreeMap<String, Vec<usize>>,
    tensors: &std::collections::HashMap<String, Tensor>,
) -> Result<()> {
    let shapes: BTreeMap<String, Vec<usize>> = tensors
        .iter()
        .map(|(name, t)| (name.clone(), t.dims().to_vec()))
        .collect();
    // The loader's comparison; its errors speak of a file, these of a VarMap not saved.
    let detail = match weights_file::check_names_and_shapes(dir, expected, shapes.iter()) {
        Ok(()) => return Ok(()),
        Err(ModelError::WeightNames {
            missing,
            unexpected,
            ..
        }) => {
            let list = |names: &[String]| match names.len() {
                0 => "none".to_string(),
                n if n > 5 => format!("{:?} and {} more", &names[..5], n - 5),
                _ => format!("{names:?}"),
            };
            format!(
                "missing {}, unexpected {}",
                list(&missing),
                list(&unexpected)
            )
        }
        Err(ModelError::WeightShape {
            tensor,
            expected,
            found,
            ..
        }) => format!("`{tensor}` has shape {found:?}, the network's is {expected:?}"),
        Err(other) => return Err(other),
    };
    Err(ModelError::InvalidConfig(format!(
        "{}: not saved: the VarMap does not hold the variables of the network the \
         configuration builds ({detail})",
        dir.display()
    )))
}

/// Removes the temporary files that atomic writes of another process left in `dir` (not
/// below it): `.<name>.tmp-<pid>`, the name every file of this module is written under before
/// it is renamed into place ([`save`], [`write_json_atomic`]). Only a process stopped between
/// the write and the rename (a crash, a kill, a power cut) leaves one, and it never holds
/// anything the file under its final name has not or will not get again: the rename is what
/// makes a write count. Those of this process (its own id) are kept. Returns the files
/// removed; a file that cannot be removed is left (it is only space), and a folder that does
/// not exist holds none.
///
/// For a caller that takes up a folder a stopped process wrote in (a resumed training run),
/// once it has checked that it will write there: only one process may write a folder at a
/// time, or its temporary files would go too.
///
/// # Examples
/// ```
/// use xnet_model::checkpoint::{remove_stale_temporaries, write_json_atomic};
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let dir = std::env::temp_dir().join(format!("xnet-doc-stale-tmp-{}", std::process::id()));
/// std::fs::create_dir_all(&dir)?;
/// write_json_atomic(&dir.join("kfold.json"), &serde_json::json!({ "folds": 2 }))?;
/// // A process killed before its rename left half a file.
/// std::fs::write(dir.join(".kfold.json.tmp-4194305"), b"{ \"fol")?;
/// std::fs::write(dir.join(".notes.tmp-x"), b"not one of ours")?;
/// assert_eq!(remove_stale_temporaries(&dir), vec![dir.join(".kfold.json.tmp-4194305")]);
/// assert!(dir.join("kfold.json").is_file() && dir.join(".notes.tmp-x").is_file());
/// assert!(remove_stale_temporaries(&dir.join("missing")).is_empty());
/// # std::fs::remove_dir_all(&dir)?;
/// # Ok(())
/// # }
/// ```
pub fn remove_stale_temporaries(dir: &Path) -> Vec<PathBuf> {
    let ours = std::process::id().to_string();
    let mut removed = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some((stem, pid)) = name.rsplit_once(".tmp-") else {
            continue;
        };
        let temporary = stem.len() > 1
            && stem.starts_with('.')
            && !pid.is_empty()
            && pid.bytes().all(|b| b.is_ascii_digit())
            && pid != ours;
        if temporary
            && entry.file_type().is_ok_and(|t| t.is_file())
            && std::fs::remove_file(entry.path()).is_ok()
        {
            removed.push(entry.path());
        }
    }
    removed.sort();
    removed
}

/// Resolves a checkpoint path: a directory, its weights file or its `config.json` (the
/// other file is the sibling). Returns `(weights file, config file)`.
///
/// # Examples
/// ```
/// use std::path::Path;
/// use xnet_model::checkpoint::resolve;
/// let (w, c) = resolve(Path::new("runs/hip/config.json"));
/// assert_eq!((w.as_path(), c.as_path()), (Path::new("runs/hip/model.safetensors"), Path::new("runs/hip/config.json")));
/// ```
pub fn resolve(path: &Path) -> (PathBuf, PathBuf) {
    if path.is_dir() {
        return (path.join(WEIGHTS_FILE), path.join(CONFIG_FILE));
    }
    let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
    if path.file_name().is_some_and(|n| n == CONFIG_FILE) {
        (dir.join(WEIGHTS_FILE), path.to_path_buf())
    } else {
        (path.to_path_buf(), dir.join(CONFIG_FILE))
    }
}

/// A checkpoint's files are read whole: a named pipe, socket or device given in their place
/// would block the read or never end, so anything but a regular file (after symbolic links)
/// is refused by name before it is opened.
fn require_regular_file(path: &Path) -> Result<()> {
    let io = |source| ModelError::Io {
        path: path.to_path_buf(),
        source,
    };
    let kind = std::fs::metadata(path).map_err(io)?.file_type();
    if kind.is_file() {
        return Ok(());
    }
    let what = if kind.is_dir() {
        "a directory"
    } else {
        "a named pipe, socket or device"
    };
    Err(io(std::io::Error::new(
        std::io::ErrorKind::InvalidInput,
        format!("not a regular file but {what}: a checkpoint file is read whole"),
    )))
}

/// The weights file must be the one saved with its config: what [`weights_digest`] gave
/// when the pair was saved (`want`, from `config_path`), against what the bytes read give.
fn check_digest(want: &str, bytes: &[u8], weights: &Path, config_path: &Path) -> Result<()> {
    let found = weights_digest(bytes);
    if found == want {
        return Ok(());
    }
    Err(ModelError::InvalidConfig(format!(
        "{} and {} come from different saves (the config records the weights as {want}, the \
         file is {found}): a save was interrupted between the two, or one file was replaced \
         by hand",
        weights.display(),
        config_path.display(),
    )))
}

/// Reads `config.json` of a checkpoint (directory, weights file or the config itself).
///
/// # Errors
/// A path that does not exist, or a file without a `config.json` beside it (both named as
/// given, not as the config file they would imply), an unreadable or invalid `config.json`,
/// or a format version newer than this crate's.
///
/// # Examples
/// ```
/// use candle_core::{DType, Device};
/// use candle_nn::{VarBuilder, VarMap};
/// use xnet_model::checkpoint;
/// use xnet_model::models::{ModelConfig, XNetConfig};
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let dir = std::env::temp_dir().join(format!("xnet-doc-read-config-{}", std::process::id()));
/// # let varmap = VarMap::new();
/// # let cfg = ModelConfig::XNet(XNetConfig { base_width: 2, ..Default::default() });
/// # cfg.build(VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu))?;
/// # checkpoint::save(&dir, &varmap, &cfg, serde_json::json!({ "epoch": 7 }))?;
/// // `dir`: a checkpoint saved with `{"epoch": 7}` as metadata. Its configuration is read
/// // without loading the weights, from the directory or from either file in it.
/// let stored = checkpoint::read_config(&dir)?;
/// assert_eq!((stored.model.arch(), stored.model.num_classes()), ("xnet", 3));
/// assert_eq!(stored.metadata["epoch"], 7);
/// assert_eq!(checkpoint::read_config(&dir.join(checkpoint::WEIGHTS_FILE))?, stored);
///
/// // A path that does not exist is an error naming it.
/// let e = checkpoint::read_config(&dir.join("no-such-run")).unwrap_err().to_string();
/// assert!(e.contains("no-such-run") && e.contains("no checkpoint here"), "{e}");
/// # std::fs::remove_dir_all(&dir)?;
/// # Ok(())
/// # }
/// ```
pub fn read_config(path: &Path) -> Result<CheckpointConfig> {
    if !path.exists() {
        return Err(ModelError::Io {
            path: path.to_path_buf(),
            source: std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!(
                    "no checkpoint here: expected a run directory holding {WEIGHTS_FILE} and \
                     {CONFIG_FILE}, or one of those files"
                ),
            ),
        });
    }
    let (_, cfg_path) = resolve(path);
    if !path.is_dir() && cfg_path != path && !cfg_path.exists() {
        // A file given for the weights (an image, say) with nothing beside it: saying that
        // the config it implies does not exist would hide that the path is no checkpoint.
        return Err(ModelError::Io {
            path: path.to_path_buf(),
            source: std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!(
                    "not a checkpoint: no {CONFIG_FILE} beside it (expected a run directory \
                     holding {WEIGHTS_FILE} and {CONFIG_FILE}, or one of those files)"
                ),
            ),
        });
    }
    require_regular_file(&cfg_path)?;
    let text = std::fs::read_to_string(&cfg_path).map_err(|source| ModelError::Io {
        path: cfg_path.clone(),
        source,
    })?;
    let cfg: CheckpointConfig = serde_json::from_str(&text).map_err(|source| ModelError::Json {
        path: cfg_path.clone(),
        source,
    })?;
    check_format_version(&cfg, &cfg_path)?;
    Ok(cfg)
}

/// Refuses a configuration of a format newer than this crate reads.
fn check_format_version(cfg: &CheckpointConfig, cfg_path: &Path) -> Result<()> {
    if cfg.format_version > FORMAT_VERSION {
        return Err(ModelError::InvalidConfig(format!(
            "{}: checkpoint format version {} is newer than this crate's {FORMAT_VERSION}",
            cfg_path.display(),
            cfg.format_version
        )));
    }
    Ok(())
}

/// Rewrites `config.json` of a checkpoint (given as its directory, its weights file or the
/// `config.json` itself) atomically, e.g. with metadata added to what [`read_config`]
/// returned; the weights are not touched.
///
/// # Errors
/// The file cannot be written.
///
/// # Examples
/// ```
/// use candle_core::{DType, Device};
/// use candle_nn::{VarBuilder, VarMap};
/// use xnet_model::checkpoint;
/// use xnet_model::models::{ModelConfig, XNetConfig};
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let dir = std::env::temp_dir().join(format!("xnet-doc-write-config-{}", std::process::id()));
/// # let varmap = VarMap::new();
/// # let cfg = ModelConfig::XNet(XNetConfig { base_width: 2, ..Default::default() });
/// # cfg.build(VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu))?;
/// # checkpoint::save(&dir, &varmap, &cfg, serde_json::json!({ "epoch": 7 }))?;
/// // `dir`: a saved checkpoint. Record a fitted softmax temperature beside its weights.
/// let mut stored = checkpoint::read_config(&dir)?;
/// stored.metadata["temperature"] = serde_json::json!(1.5);
/// checkpoint::write_config(&dir, &stored)?;
///
/// // The weights still pair with the config (its weights digest is kept), and the
/// // metadata holds the old key and the new one.
/// let loaded = checkpoint::load(&dir, &Device::Cpu)?;
/// assert_eq!(loaded.metadata["temperature"], 1.5);
/// assert_eq!(loaded.metadata["epoch"], 7);
/// # std::fs::remove_dir_all(&dir)?;
/// # Ok(())
/// # }
/// ```
pub fn write_config(path: &Path, config: &CheckpointConfig) -> Result<()> {
    let (_, cfg_path) = resolve(path);
    write_json_atomic(&cfg_path, config)
}

/// The name and shape of every variable `build` asks for, found without allocating them:
/// the builder gets zero-strided views of one scalar.
///
/// # Errors
/// Whatever `build` returns.
///
/// # Examples
/// ```
/// use xnet_model::checkpoint::expected_shapes;
/// # fn main() -> xnet_model::Result<()> {
/// // A 3 → 2 linear layer: a 2×3 weight and 2 biases, named as the builder prefixes them.
/// let shapes = expected_shapes(|vb| {
///     candle_nn::linear(3, 2, vb.pp("fc"))?;
///     Ok(())
/// })?;
/// assert_eq!(shapes.len(), 2);
/// assert_eq!(shapes["fc.weight"], [2, 3]);
/// assert_eq!(shapes["fc.bias"], [2]);
/// # Ok(())
/// # }
/// ```
pub fn expected_shapes(
    build: impl FnOnce(VarBuilder) -> Result<()>,
) -> Result<BTreeMap<String, Vec<usize>>> {
    let shapes = Arc::new(Mutex::new(BTreeMap::new()));
    let recorder = ShapeRecorder {
        shapes: Arc::clone(&shapes),
    };
    build(VarBuilder::from_backend(
        Box::new(recorder),
        DType::F32,
        Device::Cpu,
    ))?;
    let shapes = shapes
        .lock()
        .map_err(|_| ModelError::InvalidConfig("the shape recorder's lock is poisoned".into()))?
        .clone();
    Ok(shapes)
}

/// A variable-builder backend that records what is asked for and hands back a broadcast
/// scalar (no storage of the requested size).
struct ShapeRecorder {
    shapes: Arc<Mutex<BTreeMap<String, Vec<usize>>>>,
}

impl SimpleBackend for ShapeRecorder {
    fn get(
        &self,
        shape: Shape,
        name: &str,
        _init: Init,
        dtype: DType,
        dev: &Device,
    ) -> candle_core::Result<Tensor> {
        self.shapes
            .lock()
            .map_err(|_| candle_core::Error::Msg("shape recorder lock poisoned".into()))?
            .insert(name.to_string(), shape.dims().to_vec());
        Tensor::zeros((), dtype, dev)?.broadcast_as(shape)
    }

    fn get_unchecked(
        &self,
        name: &str,
        _dtype: DType,
        _dev: &Device,
    ) -> candle_core::Result<Tensor> {
        candle_core::bail!("{name}: a tensor asked for without a shape cannot be checked")
    }

    fn contains_tensor(&self, _name: &str) -> bool {
        false
    }
}
