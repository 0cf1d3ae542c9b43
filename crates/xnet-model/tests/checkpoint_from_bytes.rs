//! `checkpoint::load_from_bytes` against `checkpoint::load`: a checkpoint carried in memory
//! (compiled into a device's program with `include_bytes!`) loads to the same network as
//! its files on disk, and every damage that the files' loader refuses is refused in memory
//! too, naming `<in memory>/…` instead of the path.

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use xnet_model::checkpoint::{self, LoadedModel, CONFIG_FILE, IN_MEMORY, WEIGHTS_FILE};
use xnet_model::models::XNetConfig;
use xnet_model::ModelConfig;

fn temp_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("xnet-from-bytes-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The network's output on a fixed input.
fn output(loaded: &LoadedModel) -> Vec<f32> {
    let x = Tensor::arange(0f32, 256., &Device::Cpu)
        .unwrap()
        .affine(1.0 / 256.0, 0.0)
        .unwrap()
        .reshape((1, 1, 16, 16))
        .unwrap();
    loaded
        .model
        .forward_t(&x, false)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap()
}

/// A small saved XNet: its folder, config bytes and weights bytes.
fn small_checkpoint(tag: &str) -> (PathBuf, Vec<u8>, Vec<u8>) {
    let dir = temp_dir(tag);
    let varmap = VarMap::new();
    let cfg = ModelConfig::XNet(XNetConfig {
        base_width: 2,
        ..Default::default()
    });
    cfg.build(VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu))
        .unwrap();
    checkpoint::save(&dir, &varmap, &cfg, serde_json::json!({ "epoch": 1 })).unwrap();
    let config = std::fs::read(dir.join(CONFIG_FILE)).unwrap();
    let weights = std::fs::read(dir.join(WEIGHTS_FILE)).unwrap();
    (dir, config, weights)
}

#[test]
fn the_shipped_weights_load_from_memory_as_from_their_files() {
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/weights/xnet-small");
    let config = std::fs::read(shipped.join(CONFIG_FILE)).unwrap();
    let weights = std::fs::read(shipped.join(WEIGHTS_FILE)).unwrap();
    let from_memory = checkpoint::load_from_bytes(&config, &weights, &Device::Cpu).unwrap();
    let from_disk = checkpoint::load(&shipped, &Device::Cpu).unwrap();
    assert_eq!(from_memory.config, from_disk.config);
    assert_eq!(from_memory.metadata, from_disk.metadata);
    assert_eq!(output(&from_memory), output(&from_disk));
}

/// Writes `config` and `weights` as a checkpoint folder and loads it both ways: both must
/// fail, or both load the same network.
fn both_ways(dir: &Path, config: &[u8], weights: &[u8], case: &str) {
    std::fs::write(dir.join(CONFIG_FILE), config).unwrap();
    std::fs::write(dir.join(WEIGHTS_FILE), weights).unwrap();
    let from_disk = checkpoint::load(dir, &Device::Cpu);
    let from_memory = checkpoint::load_from_bytes(config, weights, &Device::Cpu);
    match (from_disk, from_memory) {
        (Ok(disk), Ok(memory)) => assert_eq!(output(&disk), output(&memory), "{case}"),
        (Err(disk), Err(memory)) => {
            let memory = memory.to_string();
            assert!(memory.contains(IN_MEMORY), "{case}: {memory}");
            assert!(
                !memory.contains(&*dir.to_string_lossy()),
                "{case}: {memory}"
            );
            // The same refusal, where the two loaders share the check (the file's loader
            // alone bounds a file's size before reading it whole).
            let disk = disk.to_string().replace(&*dir.to_string_lossy(), IN_MEMORY);
            if !disk.contains("larger than its tensors can be") {
                assert_eq!(disk, memory, "{case}");
            }
        }
        (disk, memory) => panic!(
            "{case}: from disk {:?}, from memory {:?}",
            disk.map(|_| ()),
            memory.map(|_| ())
        ),
    }
}

#[test]
fn damaged_pairs_are_refused_in_memory_as_on_disk() {
    let (dir, config, weights) = small_checkpoint("damaged");
    let mut undigested = checkpoint::read_config(&dir).unwrap();
    undigested.weights_digest = None;
    let undigested = serde_json::to_vec(&undigested).unwrap();
    both_ways(&dir, &config, &weights, "intact");
    let header_end = 8 + u64::from_le_bytes(weights[..8].try_into().unwrap()) as usize;
    // Cut short anywhere: in the length, in the header, in the data, by a byte.
    for cut in [
        0,
        3,
        8,
        20,
        header_end - 1,
        header_end + 5,
        weights.len() - 1,
    ] {
        let case = format!("weights cut to {cut} bytes");
        both_ways(&dir, &config, &weights[..cut], &case);
        both_ways(
            &dir,
            &undigested,
            &weights[..cut],
            &format!("{case}, no digest"),
        );
    }
    // A byte changed in the length, the header and the data: the digest refuses every one;
    // without it, a header that no longer parses or fits is refused, and a changed value
    // loads both ways alike (or is refused both ways when it is no longer finite).
    let step = (weights.len() / 23).max(1);
    for at in (0..weights.len()).step_by(step).chain([1, header_end + 3]) {
        let mut changed = weights.clone();
        changed[at] ^= 0x5a;
        let case = format!("byte {at} changed");
        both_ways(&dir, &config, &changed, &case);
        both_ways(&dir, &undigested, &changed, &format!("{case}, no digest"));
    }
    // Trailing bytes, and the weights of another save.
    let mut longer = weights.clone();
    longer.extend_from_slice(b"tail");
    both_ways(&dir, &undigested, &longer, "trailing bytes");
    let (other_dir, _, other_weights) = small_checkpoint("other");
    both_ways(&dir, &config, &other_weights, "weights of another save");
    // Configs that are no checkpoint's, or of a newer format.
    both_ways(
        &dir,
        b"{ \"format_version\": 1",
        &weights,
        "config cut short",
    );
    both_ways(&dir, b"[]", &weights, "config of another shape");
    let mut newer: serde_json::Value = serde_json::from_slice(&config).unwrap();
    newer["format_version"] = serde_json::json!(99);
    both_ways(
        &dir,
        &serde_json::to_vec(&newer).unwrap(),
        &weights,
        "newer format",
    );
    let mut wider: serde_json::Value = serde_json::from_slice(&undigested).unwrap();
    wider["model"]["base_width"] = serde_json::json!(4);
    both_ways(
        &dir,
        &serde_json::to_vec(&wider).unwrap(),
        &weights,
        "config of a wider net",
    );
    std::fs::remove_dir_all(&dir).unwrap();
    std::fs::remove_dir_all(&other_dir).unwrap();
}
