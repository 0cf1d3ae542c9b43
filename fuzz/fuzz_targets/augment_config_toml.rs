//! The augmentation pipeline's TOML configuration (`--augment-config aug.toml`) on arbitrary
//! bytes: parsed (`PipelineConfig::from_toml`), then checked, built and applied as in
//! `augment_config` (the module `augment_check`): never panics; an `Ok` result has the
//! input's size, finite pixels, and mask labels from the input's set, the ignore label, or a
//! constant border's `mask_value` named in the config.
#![no_main]
use libfuzzer_sys::fuzz_target;
use xray_data::augment::PipelineConfig;

mod augment_check;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(cfg) = PipelineConfig::from_toml(text) else {
        return;
    };
    augment_check::check_config(&cfg, data.len() as u64);
});
