//! The phantom generator's JSON configuration on arbitrary bytes: parsed into a
//! `PhantomConfig` and validated (every accepted size is validated, however large); an
//! accepted config of at most 64 pixels a side (larger ones are skipped after validation, to
//! keep runs fast and memory bounded) generates one item. Never panics; an `Ok` phantom has
//! the configured size, finite pixels in `0..=65535` and labels 0, 1, 2 or 255.
#![no_main]
use libfuzzer_sys::fuzz_target;
use xray_data::synth::{generate_item, PhantomConfig};

fuzz_target!(|data: &[u8]| {
    let Ok(cfg) = serde_json::from_slice::<PhantomConfig>(data) else {
        return;
    };
    if cfg.validate().is_err() || cfg.width > 64 || cfg.height > 64 {
        return;
    }
    let seed = data.len() as u64;
    let Ok(p) = generate_item(&cfg, seed, 0) else {
        return;
    };
    assert_eq!(p.image.dimensions(), (cfg.width, cfg.height));
    assert_eq!(p.mask.dimensions(), (cfg.width, cfg.height));
    for &v in p.image.as_raw() {
        assert!(v.is_finite() && (0.0..=65535.0).contains(&v), "pixel {v}");
    }
    for &l in p.mask.as_raw() {
        assert!([0, 1, 2, 255].contains(&l), "label {l}");
    }
});
