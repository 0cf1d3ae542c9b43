//! Loading a checkpoint: from its folder or files ([`load`], [`load_with`]), from the bytes
//! of its two files ([`load_from_bytes`]), or a weights file into a caller's [`VarMap`]
//! ([`load_weights_into`]); every path through the same checks.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};

use super::weights_file::{read_weights_checked, set_weights, weights_from_bytes};
use super::{
    check_format_version, expected_shapes, read_config, resolve, CheckpointConfig, LoadedModel,
    CONFIG_FILE, WEIGHTS_FILE,
};
use crate::{ModelConfig, ModelError, Result, Segmenter};

/// Loads a checkpoint (directory or weights file) onto `device`, building the network with
/// [`ModelConfig::build`].
///
/// Nothing the size of the network is allocated before the checkpoint has been checked: the
/// configuration is validated ([`ModelConfig::validate`]: bounded channel counts, kernel
/// sizes, classes), the names and shapes of the tensors it needs are compared with the
/// safetensors header, and every stored value must be finite (batch-norm running variances
/// also non-negative).
///
/// # Errors
/// Unreadable files; an invalid configuration ([`ModelError::InvalidConfig`], naming the
/// file and field); tensors missing, unexpected or of other shapes than the configuration
/// builds ([`ModelError::WeightNames`], [`ModelError::WeightShape`]); a corrupt weights file
/// ([`ModelError::Safetensors`]); a non-finite value or a negative running variance
/// ([`ModelError::WeightValue`], naming the tensor).
///
/// # Examples
/// A save → load round trip gives the same network:
/// ```
/// use candle_core::{DType, Device, Tensor};
/// use candle_nn::{ModuleT, VarBuilder, VarMap};
/// use xnet_model::{checkpoint, ModelError};
/// use xnet_model::models::{ModelConfig, XNetConfig};
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let dir = std::env::temp_dir().join(format!("xnet-doc-load-{}", std::process::id()));
/// let dev = Device::Cpu;
/// let varmap = VarMap::new();
/// let cfg = ModelConfig::XNet(XNetConfig { base_width: 2, ..Default::default() });
/// let net = cfg.build(VarBuilder::from_varmap(&varmap, DType::F32, &dev))?;
/// checkpoint::save(&dir, &varmap, &cfg, serde_json::Value::Null)?;
///
/// let loaded = checkpoint::load(&dir, &dev)?;
/// assert_eq!(loaded.config, cfg);
/// let x = Tensor::rand(0f32, 1f32, (1, 1, 16, 16), &dev)?;
/// let before = net.forward_t(&x, false)?.flatten_all()?.to_vec1::<f32>()?;
/// let after = loaded.model.forward_t(&x, false)?.flatten_all()?.to_vec1::<f32>()?;
/// assert_eq!(before, after);
///
/// // A config.json edited to another width no longer fits the weights: refused, naming the
/// // first tensor whose shape differs, before anything the size of the network is read.
/// let mut stored = checkpoint::read_config(&dir)?;
/// stored.model = ModelConfig::XNet(XNetConfig { base_width: 4, ..Default::default() });
/// checkpoint::write_config(&dir, &stored)?;
/// match checkpoint::load(&dir, &dev) {
///     Err(ModelError::WeightShape { tensor, expected, found, .. }) => {
///         assert_eq!(tensor, "conv1.bn.bias");
///         assert_eq!((expected, found), (vec![4], vec![2]));
///     }
///     other => panic!("expected a shape mismatch, got {other:?}"),
/// }
/// # std::fs::remove_dir_all(&dir)?;
/// # Ok(())
/// # }
/// ```
pub fn load(path: &Path, device: &Device) -> Result<LoadedModel> {
    load_with(path, device, |cfg, vb| cfg.build(vb))
}

/// Loads a checkpoint with a caller-supplied builder (for networks defined outside this
/// crate, or a modified variant of a stored configuration).
///
/// `build` is called twice: once with a variable builder that only records the names and
/// shapes asked for (nothing is allocated; they are compared with the weights file's header),
/// then for the network itself. It must ask for the same variables both times.
///
/// # Errors
/// As [`load`].
///
/// # Examples
/// Weights trained with nearest up-sampling, run with bilinear up-sampling (neither has
/// variables, so the same weights fit):
/// ```
/// use candle_core::{DType, Device, Tensor};
/// use candle_nn::{ModuleT, VarBuilder, VarMap};
/// use xnet_model::checkpoint;
/// use xnet_model::models::{ModelConfig, Upsampling, XNetConfig};
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let dir = std::env::temp_dir().join(format!("xnet-doc-load-with-{}", std::process::id()));
/// # let varmap = VarMap::new();
/// # let cfg = ModelConfig::XNet(XNetConfig { base_width: 2, ..Default::default() });
/// # cfg.build(VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu))?;
/// # checkpoint::save(&dir, &varmap, &cfg, serde_json::Value::Null)?;
/// // `dir`: a checkpoint of an XNet with the default (nearest) up-sampling.
/// let bilinear = |stored: &ModelConfig, vb: VarBuilder| match stored {
///     ModelConfig::XNet(c) => {
///         let c = XNetConfig { upsampling: Upsampling::Bilinear, ..c.clone() };
///         ModelConfig::XNet(c).build(vb)
///     }
///     other => other.build(vb),
/// };
/// let loaded = checkpoint::load_with(&dir, &Device::Cpu, bilinear)?;
/// let ModelConfig::XNet(running) = loaded.model.config() else { unreachable!() };
/// assert_eq!(running.upsampling, Upsampling::Bilinear);
/// // `config` is what the checkpoint stores, not what the builder made of it.
/// let ModelConfig::XNet(stored) = &loaded.config else { unreachable!() };
/// assert_eq!(stored.upsampling, Upsampling::Nearest);
/// let x = Tensor::zeros((1, 1, 16, 16), DType::F32, &Device::Cpu)?;
/// assert_eq!(loaded.model.forward_t(&x, false)?.dims(), &[1, 3, 16, 16]);
///
/// // A builder whose network asks for other variables is refused.
/// let two_classes = |stored: &ModelConfig, vb: VarBuilder| match stored {
///     ModelConfig::XNet(c) => {
///         ModelConfig::XNet(XNetConfig { num_classes: 2, ..c.clone() }).build(vb)
///     }
///     other => other.build(vb),
/// };
/// assert!(checkpoint::load_with(&dir, &Device::Cpu, two_classes).is_err());
/// # std::fs::remove_dir_all(&dir)?;
/// # Ok(())
/// # }
/// ```
pub fn load_with(
    path: &Path,
    device: &Device,
    build: impl Fn(&ModelConfig, VarBuilder) -> Result<Box<dyn Segmenter>>,
) -> Result<LoadedModel> {
    let cfg = read_config(path)?;
    let (weights, cfg_path) = resolve(path);
    load_parsed(
        cfg,
        &cfg_path,
        &weights,
        device,
        build,
        |expected, saved_with| read_weights_checked(&weights, expected, saved_with),
    )
}

/// Variables' names and shapes ([`expected_shapes`]).
type Shapes = BTreeMap<String, Vec<usize>>;

/// [`load_with`] once the configuration is read (`cfg_path` and `weights` name the two
/// files in errors): validates it, reads the weights through `read` (the tensors of a
/// weights file whose names and shapes must be the given ones, checked against the digest
/// the config recorded, with the config's path for the error) against the shapes the
/// builder asks for, and builds the network with them.
fn load_parsed(
    cfg: CheckpointConfig,
    cfg_path: &Path,
    weights: &Path,
    device: &Device,
    build: impl Fn(&ModelConfig, VarBuilder) -> Result<Box<dyn Segmenter>>,
    read: impl FnOnce(&Shapes, Option<(&str, &Path)>) -> Result<HashMap<String, Tensor>>,
) -> Result<LoadedModel> {
    cfg.model.validate().map_err(|e| match e {
        ModelError::InvalidConfig(m) => {
            ModelError::InvalidConfig(format!("{}: {m}", cfg_path.display()))
        }
        other => other,
    })?;
    let expected = expected_shapes(|vb| build(&cfg.model, vb).map(|_| ()))?;
    let saved_with = cfg.weights_digest.as_deref().map(|d| (d, cfg_path));
    let stored = read(&expected, saved_with)?;
    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, device);
    let model = build(&cfg.model, vb)?;
    set_weights(&varmap, stored, weights, device)?;
    Ok(LoadedModel {
        model,
        config: cfg.model,
        varmap,
        metadata: cfg.metadata,
    })
}

/// The folder name that errors of [`load_from_bytes`] give its two files
/// (`<in memory>/config.json`, `<in memory>/model.safetensors`).
pub const IN_MEMORY: &str = "<in memory>";

/// Loads a checkpoint from memory: the bytes of its [`CONFIG_FILE`] and [`WEIGHTS_FILE`],
/// e.g. compiled into a device's program with `include_bytes!`, so that no file has to ship
/// beside it. Every check of [`load`] applies: the format version, the configuration, the
/// weights' names, shapes and values, and that the two are from one save (the digest the
/// config records); errors name the files as `<in memory>/config.json` and
/// `<in memory>/model.safetensors` ([`IN_MEMORY`]).
///
/// # Errors
/// As [`load`], less the file-system errors: a config that is not a checkpoint's JSON
/// ([`ModelError::Json`]), weights that do not fit it or are corrupt, or a pair from two
/// saves.
///
/// # Examples
/// ```
/// use candle_core::{DType, Device, Tensor};
/// use candle_nn::{ModuleT, VarBuilder, VarMap};
/// use xnet_model::checkpoint::{self, CONFIG_FILE, WEIGHTS_FILE};
/// use xnet_model::models::{ModelConfig, XNetConfig};
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let dir = std::env::temp_dir().join(format!("xnet-doc-from-bytes-{}", std::process::id()));
/// # let varmap = VarMap::new();
/// # let cfg = ModelConfig::XNet(XNetConfig { base_width: 2, ..Default::default() });
/// # cfg.build(VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu))?;
/// # checkpoint::save(&dir, &varmap, &cfg, serde_json::json!({ "epoch": 3 }))?;
/// // `dir`: a saved checkpoint. A program can carry its two files instead:
/// // `include_bytes!("model/config.json")`, `include_bytes!("model/model.safetensors")`.
/// let config = std::fs::read(dir.join(CONFIG_FILE))?;
/// let weights = std::fs::read(dir.join(WEIGHTS_FILE))?;
/// let loaded = checkpoint::load_from_bytes(&config, &weights, &Device::Cpu)?;
/// let from_disk = checkpoint::load(&dir, &Device::Cpu)?;
/// let x = Tensor::rand(0f32, 1., (1, 1, 16, 16), &Device::Cpu)?;
/// let out = |m: &dyn ModuleT| m.forward_t(&x, false)?.flatten_all()?.to_vec1::<f32>();
/// assert_eq!(out(&*loaded.model)?, out(&*from_disk.model)?);
/// assert_eq!(loaded.metadata["epoch"], 3);
/// // A weights file cut short is refused, naming it.
/// let e = checkpoint::load_from_bytes(&config, &weights[..weights.len() - 4], &Device::Cpu)
///     .unwrap_err();
/// assert!(e.to_string().contains("<in memory>/model.safetensors"), "{e}");
/// # std::fs::remove_dir_all(&dir)?;
/// # Ok(())
/// # }
/// ```
pub fn load_from_bytes(config_json: &[u8], weights: &[u8], device: &Device) -> Result<LoadedModel> {
    let cfg_path = Path::new(IN_MEMORY).join(CONFIG_FILE);
    let weights_path = Path::new(IN_MEMORY).join(WEIGHTS_FILE);
    let cfg: CheckpointConfig =
        serde_json::from_slice(config_json).map_err(|source| ModelError::Json {
            path: cfg_path.clone(),
            source,
        })?;
    check_format_version(&cfg, &cfg_path)?;
    load_parsed(
        cfg,
        &cfg_path,
        &weights_path,
        device,
        |c, vb| c.build(vb),
        |expected, saved_with| weights_from_bytes(&weights_path, weights, expected, saved_with),
    )
}

/// Fills every variable of `varmap` from a safetensors file, strictly: every variable must
/// be present with the same shape, and the file must hold nothing else. Names and shapes are
/// compared with the file's header before its data are read, and every value must be finite
/// (batch-norm running variances also non-negative). A checkpoint's own weights file
/// ([`WEIGHTS_FILE`] with a [`CONFIG_FILE`] beside it) must also be the one saved with that
/// config, by its [`CheckpointConfig::weights_digest`] when recorded.
///
/// # Errors
/// As [`load`], less the configuration.
///
/// # Examples
/// ```
/// use candle_core::{DType, Device, Tensor};
/// use candle_nn::{ModuleT, VarBuilder, VarMap};
/// use xnet_model::checkpoint::{self, WEIGHTS_FILE};
/// use xnet_model::models::{ModelConfig, XNetConfig};
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let (dev, dir) = (Device::Cpu, std::env::temp_dir().join(format!("xnet-doc-into-{}", std::process::id())));
/// let cfg = ModelConfig::XNet(XNetConfig { base_width: 2, ..Default::default() });
/// let (saved, fresh) = (VarMap::new(), VarMap::new());
/// let a = cfg.build(VarBuilder::from_varmap(&saved, DType::F32, &dev))?;
/// let b = cfg.build(VarBuilder::from_varmap(&fresh, DType::F32, &dev))?; // other random weights
/// checkpoint::save(&dir, &saved, &cfg, serde_json::Value::Null)?;
/// checkpoint::load_weights_into(&fresh, &dir.join(WEIGHTS_FILE), &dev)?;
/// let x = Tensor::rand(0f32, 1., (1, 1, 8, 8), &dev)?;
/// let out = |y: Tensor| y.flatten_all()?.to_vec1::<f32>();
/// assert_eq!(out(a.forward_t(&x, false)?)?, out(b.forward_t(&x, false)?)?);
/// // A wider network's variables do not fit the file: refused, naming a tensor.
/// let wide = VarMap::new();
/// ModelConfig::XNet(XNetConfig { base_width: 4, ..Default::default() })
///     .build(VarBuilder::from_varmap(&wide, DType::F32, &dev))?;
/// let e = checkpoint::load_weights_into(&wide, &dir.join(WEIGHTS_FILE), &dev).unwrap_err();
/// assert!(e.to_string().contains("conv1"), "{e}");
/// std::fs::remove_dir_all(&dir)?;
/// # Ok(())
/// # }
/// ```
pub fn load_weights_into(varmap: &VarMap, weights: &Path, device: &Device) -> Result<()> {
    let (_, config_path) = resolve(weights);
    let is_checkpoint = weights.file_name().is_some_and(|n| n == WEIGHTS_FILE);
    let digest = if is_checkpoint && config_path.is_file() {
        read_config(&config_path)?.weights_digest
    } else {
        None
    };
    let saved_with = digest.as_deref().map(|d| (d, config_path.as_path()));
    load_weights_into_checked(varmap, weights, saved_with, device)
}

fn load_weights_into_checked(
    varmap: &VarMap,
    weights: &Path,
    saved_with: Option<(&str, &Path)>,
    device: &Device,
) -> Result<()> {
    let expected: BTreeMap<String, Vec<usize>> = {
        let data = varmap
            .data()
            .lock()
            .map_err(|_| ModelError::InvalidConfig("the VarMap's lock is poisoned".into()))?;
        data.iter()
            .map(|(k, v)| (k.clone(), v.dims().to_vec()))
            .collect()
    };
    let stored = read_weights_checked(weights, &expected, saved_with)?;
    set_weights(varmap, stored, weights, device)
}
