//! The augmentation pipeline's JSON configuration on arbitrary bytes: parsed
//! (`PipelineConfig::from_json`), checked against a 3-class model (`check_mask_labels`, whose
//! verdict does not gate the run), built (`Pipeline::from_config`) and, when accepted,
//! applied to a small image and mask with a seeded generator. Never panics; an `Ok` result
//! has the input's size, finite pixels, and mask labels from the input's set, the ignore
//! label, or a constant border's `mask_value` named in the config.
#![no_main]
use libfuzzer_sys::fuzz_target;
use xray_data::augment::PipelineConfig;

mod augment_check;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(cfg) = PipelineConfig::from_json(text) else {
        return;
    };
    augment_check::check_config(&cfg, data.len() as u64);
});
