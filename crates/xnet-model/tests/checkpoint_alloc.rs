//! Loading a checkpoint whose configuration is large but valid, with weights of another
//! size, fails on the header's shapes before the network is allocated.
//!
//! One test in its own binary: the global allocator below counts every allocation of the
//! process, so no other test may run beside it.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use candle_core::{DType, Device};
use candle_nn::{VarBuilder, VarMap};
use xnet_model::checkpoint::{self, CONFIG_FILE};
use xnet_model::models::{ModelConfig, XNetConfig};
use xnet_model::ModelError;

struct Counting;

static CURRENT: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards to the system allocator, only counting bytes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            let now = CURRENT.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(now, Ordering::Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        CURRENT.fetch_sub(layout.size(), Ordering::Relaxed);
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

#[test]
fn a_mismatched_large_configuration_fails_before_allocating_the_network() {
    let dir = std::env::temp_dir().join(format!("xnet-ckpt-alloc-{}", std::process::id()));
    std::fs::remove_dir_all(&dir).ok();
    let varmap = VarMap::new();
    let small = ModelConfig::XNet(XNetConfig {
        base_width: 2,
        ..Default::default()
    });
    small
        .build(VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu))
        .unwrap();
    checkpoint::save(&dir, &varmap, &small, serde_json::Value::Null).unwrap();
    // Base width 256: 188 M parameters, 750 MB of f32 (plus as much again while drawn).
    let large = serde_json::json!({
        "format_version": 1,
        "model": {"arch": "xnet", "base_width": 256},
        "metadata": null
    });
    std::fs::write(dir.join(CONFIG_FILE), large.to_string()).unwrap();
    let before = CURRENT.load(Ordering::Relaxed);
    PEAK.store(before, Ordering::Relaxed);
    let result = checkpoint::load(&dir, &Device::Cpu);
    let peak = PEAK.load(Ordering::Relaxed) - before;
    match result {
        Err(ModelError::WeightShape { tensor, .. }) => assert!(!tensor.is_empty()),
        other => panic!("expected WeightShape, got {:?}", other.map(|m| m.config)),
    }
    assert!(
        peak < 64 << 20,
        "loading allocated {} MB before refusing the weights",
        peak >> 20
    );
    std::fs::remove_dir_all(&dir).ok();
}
