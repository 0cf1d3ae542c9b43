//! Checkpoints: safetensors weights plus the config as JSON, written atomically.
//!
//! A checkpoint is a directory holding [`WEIGHTS_FILE`] (every variable of the model's
//! [`VarMap`], batch-norm running statistics included) and [`CONFIG_FILE`] (a
//! [`CheckpointConfig`]: the [`ModelConfig`] plus free-form metadata). Each file is written to
//! a temporary name in the same directory and renamed into place, so a crash mid-write never
//! leaves a truncated file under the final name.
//!
//! Loading builds the network from the stored configuration and then fills its variables
//! strictly: a tensor whose shape differs from what the configuration builds, a missing
//! tensor or an unexpected one is an error naming it.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use serde::{Deserialize, Serialize};

use crate::{ModelConfig, ModelError, Result, Segmenter};

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
}

/// A network loaded from a checkpoint.
pub struct LoadedModel {
    /// The network, ready for [`crate::infer::predict_proba`].
    pub model: Box<dyn Segmenter>,
    /// The configuration it was built from.
    pub config: ModelConfig,
    /// Its variables (keep it to fine-tune or save again).
    pub varmap: VarMap,
    /// The metadata stored beside it.
    pub metadata: serde_json::Value,
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
pub fn save(
    dir: &Path,
    varmap: &VarMap,
    config: &ModelConfig,
    metadata: serde_json::Value,
) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|source| ModelError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    let tensors = varmap_tensors(varmap)?;
    write_safetensors_atomic(&dir.join(WEIGHTS_FILE), &tensors)?;
    let cfg = CheckpointConfig {
        format_version: FORMAT_VERSION,
        model: config.clone(),
        metadata,
    };
    write_json_atomic(&dir.join(CONFIG_FILE), &cfg)
}

/// Resolves a checkpoint path: a directory, or its weights file (the config is its
/// sibling). Returns `(weights file, config file)`.
pub fn resolve(path: &Path) -> (PathBuf, PathBuf) {
    if path.is_dir() {
        (path.join(WEIGHTS_FILE), path.join(CONFIG_FILE))
    } else {
        let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        (path.to_path_buf(), dir.join(CONFIG_FILE))
    }
}

/// Reads `config.json` of a checkpoint (directory or weights file).
pub fn read_config(path: &Path) -> Result<CheckpointConfig> {
    let (_, cfg_path) = resolve(path);
    let text = std::fs::read_to_string(&cfg_path).map_err(|source| ModelError::Io {
        path: cfg_path.clone(),
        source,
    })?;
    let cfg: CheckpointConfig = serde_json::from_str(&text).map_err(|source| ModelError::Json {
        path: cfg_path.clone(),
        source,
    })?;
    if cfg.format_version > FORMAT_VERSION {
        return Err(ModelError::InvalidConfig(format!(
            "{}: checkpoint format version {} is newer than this crate's {FORMAT_VERSION}",
            cfg_path.display(),
            cfg.format_version
        )));
    }
    Ok(cfg)
}

/// Rewrites `config.json` of a checkpoint (directory or weights file) atomically, e.g. with
/// metadata added to what [`read_config`] returned; the weights are not touched.
///
/// # Errors
/// The file cannot be written.
pub fn write_config(path: &Path, config: &CheckpointConfig) -> Result<()> {
    let (_, cfg_path) = resolve(path);
    write_json_atomic(&cfg_path, config)
}

/// Loads a checkpoint (directory or weights file) onto `device`, building the network with
/// [`ModelConfig::build`].
pub fn load(path: &Path, device: &Device) -> Result<LoadedModel> {
    load_with(path, device, |cfg, vb| cfg.build(vb))
}

/// Loads a checkpoint with a caller-supplied builder (for networks defined outside this
/// crate, or a modified variant of a stored configuration).
pub fn load_with(
    path: &Path,
    device: &Device,
    build: impl FnOnce(&ModelConfig, VarBuilder) -> Result<Box<dyn Segmenter>>,
) -> Result<LoadedModel> {
    let cfg = read_config(path)?;
    let (weights, _) = resolve(path);
    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, device);
    let model = build(&cfg.model, vb)?;
    load_weights_into(&varmap, &weights, device)?;
    Ok(LoadedModel {
        model,
        config: cfg.model,
        varmap,
        metadata: cfg.metadata,
    })
}

/// Fills every variable of `varmap` from a safetensors file, strictly: every variable must
/// be present with the same shape, and the file must hold nothing else.
pub fn load_weights_into(varmap: &VarMap, weights: &Path, device: &Device) -> Result<()> {
    let stored = candle_core::safetensors::load(weights, device).map_err(|e| match e {
        candle_core::Error::Io(source) => ModelError::Io {
            path: weights.to_path_buf(),
            source,
        },
        other => ModelError::Safetensors {
            path: weights.to_path_buf(),
            message: other.to_string(),
        },
    })?;
    let data = varmap
        .data()
        .lock()
        .map_err(|_| ModelError::InvalidConfig("the VarMap's lock is poisoned".into()))?;
    let mut missing: Vec<String> = data
        .keys()
        .filter(|k| !stored.contains_key(*k))
        .cloned()
        .collect();
    let mut unexpected: Vec<String> = stored
        .keys()
        .filter(|k| !data.contains_key(*k))
        .cloned()
        .collect();
    if !missing.is_empty() || !unexpected.is_empty() {
        missing.sort();
        unexpected.sort();
        return Err(ModelError::WeightNames {
            path: weights.to_path_buf(),
            missing,
            unexpected,
        });
    }
    let mut names: Vec<&String> = data.keys().collect();
    names.sort();
    for name in &names {
        let (var, t) = (&data[*name], &stored[*name]);
        if var.dims() != t.dims() {
            return Err(ModelError::WeightShape {
                path: weights.to_path_buf(),
                tensor: (*name).clone(),
                expected: var.dims().to_vec(),
                found: t.dims().to_vec(),
            });
        }
    }
    for name in names {
        let var = &data[name];
        var.set(&stored[name].to_dtype(var.dtype())?)?;
    }
    Ok(())
}

/// A snapshot of every variable of a VarMap.
pub(crate) fn varmap_tensors(varmap: &VarMap) -> Result<HashMap<String, Tensor>> {
    let data = varmap
        .data()
        .lock()
        .map_err(|_| ModelError::InvalidConfig("the VarMap's lock is poisoned".into()))?;
    Ok(data
        .iter()
        .map(|(k, v)| (k.clone(), v.as_tensor().detach()))
        .collect())
}

/// A temporary sibling of `path` (same directory, so that the rename is atomic).
fn temp_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.tmp-{}", std::process::id()))
}

fn rename_into_place(tmp: &Path, path: &Path) -> Result<()> {
    std::fs::rename(tmp, path).map_err(|source| {
        let _ = std::fs::remove_file(tmp);
        ModelError::Io {
            path: path.to_path_buf(),
            source,
        }
    })
}

/// Writes named tensors as safetensors: temporary file, then rename.
pub(crate) fn write_safetensors_atomic(
    path: &Path,
    tensors: &HashMap<String, Tensor>,
) -> Result<()> {
    let tmp = temp_path(path);
    // Sorted for a deterministic file.
    let mut sorted: Vec<(&String, &Tensor)> = tensors.iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(b.0));
    let bytes =
        safetensors::tensor::serialize(sorted, None).map_err(|e| ModelError::Safetensors {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
    std::fs::write(&tmp, bytes).map_err(|source| ModelError::Io {
        path: tmp.clone(),
        source,
    })?;
    rename_into_place(&tmp, path)
}

/// Writes a value as pretty JSON: temporary file, then rename.
pub(crate) fn write_json_atomic<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    let tmp = temp_path(path);
    let text = serde_json::to_string_pretty(value).map_err(|source| ModelError::Json {
        path: path.to_path_buf(),
        source,
    })?;
    std::fs::write(&tmp, text).map_err(|source| ModelError::Io {
        path: tmp.clone(),
        source,
    })?;
    rename_into_place(&tmp, path)
}
