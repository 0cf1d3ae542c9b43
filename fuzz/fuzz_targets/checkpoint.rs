//! Checkpoint loading on damaged files: a small XNet checkpoint (base width 2, every
//! variable 0.5, so that its bytes and digest are the same in every process and in the
//! seeds that `xnet-model`'s `checkpoint_fuzz_seeds` test writes) has its `config.json`,
//! its `model.safetensors` or both replaced by the fuzzer's bytes, in a per-process
//! temporary folder, and is loaded with `checkpoint::load`.
//!
//! The first byte picks the case (mod 3): 0, the rest is `config.json` beside the fixed
//! weights; 1, the rest is `model.safetensors` beside the fixed config without its weights
//! digest (so that changed weights are not refused for the digest alone); 2, the rest up to
//! the first NUL byte is `config.json`, the bytes after it `model.safetensors`.
//!
//! Never panics; a loaded model runs `infer::predict_proba` on a 16 × 16 input and gives
//! `classes × 16 × 16` finite probabilities, or an error. The same bytes given to
//! `checkpoint::load_from_bytes` are refused or loaded alike, and load to a network that
//! predicts the same probabilities.
#![no_main]
use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use libfuzzer_sys::fuzz_target;
use std::path::PathBuf;
use std::sync::OnceLock;
use xnet_model::checkpoint::{self, CONFIG_FILE, WEIGHTS_FILE};
use xnet_model::infer::{predict_proba, InferenceOptions};
use xnet_model::models::XNetConfig;
use xnet_model::ModelConfig;

struct Fixed {
    case: PathBuf,
    weights: Vec<u8>,
    config_without_digest: Vec<u8>,
}

fn fixed() -> &'static Fixed {
    static FIXED: OnceLock<Fixed> = OnceLock::new();
    FIXED.get_or_init(|| {
        let root =
            std::env::temp_dir().join(format!("xray-fuzz-checkpoint-{}", std::process::id()));
        let dir = root.join("fixed");
        let dev = Device::Cpu;
        let varmap = VarMap::new();
        let cfg = ModelConfig::XNet(XNetConfig {
            base_width: 2,
            ..Default::default()
        });
        cfg.build(VarBuilder::from_varmap(&varmap, DType::F32, &dev))
            .expect("build");
        for var in varmap.all_vars() {
            var.set(&Tensor::full(0.5f32, var.shape(), &dev).expect("full"))
                .expect("set");
        }
        checkpoint::save(&dir, &varmap, &cfg, serde_json::Value::Null).expect("save");
        let weights = std::fs::read(dir.join(WEIGHTS_FILE)).expect("weights");
        let mut stored = checkpoint::read_config(&dir.join(CONFIG_FILE)).expect("config");
        stored.weights_digest = None;
        let config_without_digest = serde_json::to_vec(&stored).expect("json");
        let case = root.join("case");
        std::fs::create_dir_all(&case).expect("case dir");
        Fixed {
            case,
            weights,
            config_without_digest,
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let f = fixed();
    let (config, weights): (&[u8], &[u8]) = match mode % 3 {
        0 => (rest, &f.weights),
        1 => (&f.config_without_digest, rest),
        _ => match rest.iter().position(|&b| b == 0) {
            Some(k) => (&rest[..k], &rest[k + 1..]),
            None => (rest, &[]),
        },
    };
    std::fs::write(f.case.join(CONFIG_FILE), config).expect("write config");
    std::fs::write(f.case.join(WEIGHTS_FILE), weights).expect("write weights");
    let from_disk = checkpoint::load(&f.case, &Device::Cpu);
    // The same bytes from memory: refused or loaded alike (the file's loader alone bounds a
    // file's size before reading it, so only its refusal may stand alone).
    let from_memory = checkpoint::load_from_bytes(config, weights, &Device::Cpu);
    let loaded = match (from_disk, from_memory) {
        (Ok(disk), Ok(memory)) => Some((disk, memory)),
        (Err(_), Err(e)) => {
            assert!(e.to_string().contains(checkpoint::IN_MEMORY), "{e}");
            None
        }
        (Err(e), Ok(_)) => {
            assert!(
                e.to_string().contains("larger than its tensors can be"),
                "{e}"
            );
            None
        }
        (Ok(_), Err(e)) => panic!("loaded from disk, refused from memory: {e}"),
    };
    let Some((loaded, from_memory)) = loaded else {
        return;
    };
    let (h, w) = (16, 16);
    let image: Vec<f32> = (0..h * w).map(|i| (i % 13) as f32 / 13.0).collect();
    let opts = InferenceOptions::default();
    let Ok(probs) = predict_proba(loaded.model.as_ref(), &image, h, w, &opts) else {
        return;
    };
    let memory_probs = predict_proba(from_memory.model.as_ref(), &image, h, w, &opts);
    assert_eq!(
        memory_probs.ok().as_ref(),
        Some(&probs),
        "the checkpoint from memory predicts otherwise"
    );
    assert_eq!(probs.len(), loaded.model.num_classes() * h * w);
    for &p in &probs {
        assert!(
            p.is_finite() && (0.0..=1.0 + 1e-5).contains(&p),
            "probability {p}"
        );
    }
});
