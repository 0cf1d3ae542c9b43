//! Reading a safetensors weights file with every check (header size and layout, names and
//! shapes against what the configuration builds, data length, finite values) before filling
//! a [`VarMap`]'s variables; and a [`VarMap`]'s tensors by name for saving.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarMap;
use serde::Deserialize;

use super::{check_digest, require_regular_file};
use crate::{ModelError, Result};

/// Largest safetensors header accepted (the `safetensors` crate's own limit).
const MAX_HEADER_BYTES: u64 = 100_000_000;

/// One tensor's entry in a safetensors header.
#[derive(Deserialize)]
struct HeaderEntry {
    dtype: String,
    shape: Vec<usize>,
    /// Start and end of the tensor's bytes in the data section.
    data_offsets: [u64; 2],
}

fn st_error(path: &Path, message: impl Into<String>) -> ModelError {
    ModelError::Safetensors {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

/// Reads a safetensors file whose tensors must be exactly `expected` (names and shapes):
/// the header is read and compared first, the data only when it fits (and the data section
/// is as long as the header says: [`check_data_length`]); then the whole file
/// must have the digest its config recorded (`saved_with`: the digest and the config's path,
/// when there is one), and every value is checked ([`check_values`]). Returns the tensors in
/// `f32` on the CPU.
pub(super) fn read_weights_checked(
    path: &Path,
    expected: &BTreeMap<String, Vec<usize>>,
    saved_with: Option<(&str, &Path)>,
) -> Result<HashMap<String, Tensor>> {
    use std::io::{Read, Seek};
    let io = |source| ModelError::Io {
        path: path.to_path_buf(),
        source,
    };
    require_regular_file(path)?;
    let mut file = std::fs::File::open(path).map_err(io)?;
    let len = file.metadata().map_err(io)?.len();
    let mut n = [0u8; 8];
    if len < 8 {
        return Err(st_error(
            path,
            format!("the file is {len} bytes, too short for a safetensors header"),
        ));
    }
    file.read_exact(&mut n).map_err(io)?;
    let n = u64::from_le_bytes(n);
    if n > MAX_HEADER_BYTES || n > len - 8 {
        return Err(st_error(
            path,
            format!("header length {n} does not fit the file ({len} bytes) or exceeds {MAX_HEADER_BYTES}"),
        ));
    }
    let mut header = vec![0u8; n as usize];
    file.read_exact(&mut header).map_err(io)?;
    let found = parse_header(path, &header)?;
    check_names_and_shapes(path, expected, found.iter().map(|(k, e)| (k, &e.shape)))?;
    check_data_length(path, &found, len - 8 - n)?;
    // The data cannot be larger than the expected tensors in the widest dtype (f64): a file
    // that is must not be read into memory whole.
    let most = expected
        .values()
        .try_fold(8 + n, |acc, dims| {
            dims.iter()
                .try_fold(8u64, |b, &d| b.checked_mul(d as u64))
                .and_then(|bytes| acc.checked_add(bytes))
        })
        .unwrap_or(u64::MAX);
    if len > most {
        return Err(st_error(
            path,
            format!("the file ({len} bytes) is larger than its tensors can be ({most} bytes)"),
        ));
    }
    let mut bytes = Vec::with_capacity(len as usize);
    file.rewind().map_err(io)?;
    file.read_to_end(&mut bytes).map_err(io)?;
    checked_tensors(path, &bytes, &found, saved_with)
}

/// [`read_weights_checked`] for a safetensors file already in memory (`bytes`; `label`
/// names it in errors): the same checks, less the size bound that keeps an oversized file
/// from being read.
pub(super) fn weights_from_bytes(
    label: &Path,
    bytes: &[u8],
    expected: &BTreeMap<String, Vec<usize>>,
    saved_with: Option<(&str, &Path)>,
) -> Result<HashMap<String, Tensor>> {
    let len = bytes.len() as u64;
    let Some((n, rest)) = bytes.split_first_chunk::<8>() else {
        return Err(st_error(
            label,
            format!("the file is {len} bytes, too short for a safetensors header"),
        ));
    };
    let n = u64::from_le_bytes(*n);
    if n > MAX_HEADER_BYTES || n > len - 8 {
        return Err(st_error(
            label,
            format!("header length {n} does not fit the file ({len} bytes) or exceeds {MAX_HEADER_BYTES}"),
        ));
    }
    let found = parse_header(label, &rest[..n as usize])?;
    check_names_and_shapes(label, expected, found.iter().map(|(k, e)| (k, &e.shape)))?;
    check_data_length(label, &found, len - 8 - n)?;
    checked_tensors(label, bytes, &found, saved_with)
}

/// The tensor entries of a safetensors header (the JSON after its length).
fn parse_header(path: &Path, header: &[u8]) -> Result<BTreeMap<String, HeaderEntry>> {
    let entries: BTreeMap<String, serde_json::Value> = serde_json::from_slice(header)
        .map_err(|e| st_error(path, format!("the header is not a JSON object: {e}")))?;
    let mut found: BTreeMap<String, HeaderEntry> = BTreeMap::new();
    for (name, value) in entries {
        if name == "__metadata__" {
            continue;
        }
        let entry: HeaderEntry = serde_json::from_value(value).map_err(|e| {
            st_error(
                path,
                format!("header entry of tensor `{name}` is malformed: {e}"),
            )
        })?;
        found.insert(name, entry);
    }
    Ok(found)
}

/// The tensors of a whole safetensors file whose header passed the checks (`found`): the
/// digest its config recorded (`saved_with`), then every value ([`check_values`]); in `f32`
/// on the CPU.
fn checked_tensors(
    path: &Path,
    bytes: &[u8],
    found: &BTreeMap<String, HeaderEntry>,
    saved_with: Option<(&str, &Path)>,
) -> Result<HashMap<String, Tensor>> {
    // After the names and shapes: a file that does not fit the network at all is reported
    // as such; one that fits but is from another save, here.
    if let Some((want, config_path)) = saved_with {
        check_digest(want, bytes, path, config_path)?;
    }
    let st =
        safetensors::SafeTensors::deserialize(bytes).map_err(|e| st_error(path, e.to_string()))?;
    let mut out = HashMap::with_capacity(found.len());
    for (name, view) in st.tensors() {
        let dtype = found.get(&name).map_or("?", |e| e.dtype.as_str());
        let t = candle_core::safetensors::Load::load(&view, &Device::Cpu).map_err(|e| {
            st_error(
                path,
                format!("tensor `{name}` ({dtype}) cannot be read: {e}"),
            )
        })?;
        let t = t.to_dtype(DType::F32)?;
        check_values(path, &name, &t.flatten_all()?.to_vec1::<f32>()?)?;
        out.insert(name, t);
    }
    Ok(out)
}

/// The data section (what follows the header: `held` bytes) must be as long as the header's
/// tensors say (the largest end of their `data_offsets`): a shorter one is a truncated file
/// (an interrupted copy or download), reported as such before the digest is compared, which
/// would only say that the bytes are not the ones saved; a longer one holds trailing bytes.
fn check_data_length(path: &Path, found: &BTreeMap<String, HeaderEntry>, held: u64) -> Result<()> {
    let described = found.values().map(|e| e.data_offsets[1]).max().unwrap_or(0);
    if held < described {
        return Err(st_error(
            path,
            format!(
                "truncated: the header describes {described} bytes of tensor data, the file \
                 holds {held}"
            ),
        ));
    }
    if held > described {
        return Err(st_error(
            path,
            format!(
                "{} trailing bytes: the header describes {described} bytes of tensor data, \
                 the file holds {held}",
                held - described
            ),
        ));
    }
    Ok(())
}

/// A network cannot run with NaN or infinite weights, nor with a negative batch-norm
/// running variance (its square root is taken).
fn check_values(path: &Path, name: &str, values: &[f32]) -> Result<()> {
    let bad = |message: String| ModelError::WeightValue {
        path: path.to_path_buf(),
        tensor: name.to_string(),
        message,
    };
    if let Some((i, v)) = values.iter().enumerate().find(|(_, v)| !v.is_finite()) {
        return Err(bad(format!(
            "value {v} at index {i} is not finite (as f32); the weights are corrupt"
        )));
    }
    if name.ends_with("running_var") {
        if let Some((i, v)) = values.iter().enumerate().find(|(_, &v)| v < 0.0) {
            return Err(bad(format!(
                "batch-norm running variance {v} at channel {i} is negative; the weights are corrupt"
            )));
        }
    }
    Ok(())
}

/// Compares stored names and shapes with the expected ones: every expected tensor present,
/// nothing else, the same shapes.
pub(super) fn check_names_and_shapes<'a>(
    path: &Path,
    expected: &BTreeMap<String, Vec<usize>>,
    found: impl Iterator<Item = (&'a String, &'a Vec<usize>)>,
) -> Result<()> {
    let found: BTreeMap<&String, &Vec<usize>> = found.collect();
    let missing: Vec<String> = expected
        .keys()
        .filter(|k| !found.contains_key(k))
        .cloned()
        .collect();
    let unexpected: Vec<String> = found
        .keys()
        .filter(|k| !expected.contains_key(**k))
        .map(|k| (*k).clone())
        .collect();
    if !missing.is_empty() || !unexpected.is_empty() {
        return Err(ModelError::WeightNames {
            path: path.to_path_buf(),
            missing,
            unexpected,
        });
    }
    for (name, dims) in expected {
        if let Some(&stored) = found.get(name) {
            if stored != dims {
                return Err(ModelError::WeightShape {
                    path: path.to_path_buf(),
                    tensor: name.clone(),
                    expected: dims.clone(),
                    found: stored.clone(),
                });
            }
        }
    }
    Ok(())
}

/// Sets every variable of `varmap` from checked tensors (names and shapes compared again:
/// a builder could have asked for other variables the second time).
pub(super) fn set_weights(
    varmap: &VarMap,
    stored: HashMap<String, Tensor>,
    path: &Path,
    device: &Device,
) -> Result<()> {
    let data = varmap
        .data()
        .lock()
        .map_err(|_| ModelError::InvalidConfig("the VarMap's lock is poisoned".into()))?;
    let expected: BTreeMap<String, Vec<usize>> = data
        .iter()
        .map(|(k, v)| (k.clone(), v.dims().to_vec()))
        .collect();
    let shapes: Vec<(String, Vec<usize>)> = stored
        .iter()
        .map(|(k, t)| (k.clone(), t.dims().to_vec()))
        .collect();
    check_names_and_shapes(path, &expected, shapes.iter().map(|(k, d)| (k, d)))?;
    for (name, t) in stored {
        if let Some(var) = data.get(&name) {
            var.set(&t.to_device(device)?.to_dtype(var.dtype())?)?;
        }
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
