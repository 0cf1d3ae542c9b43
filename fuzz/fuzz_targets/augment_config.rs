//! The augmentation pipeline's JSON configuration on arbitrary bytes: parsed
//! (`PipelineConfig::from_json`), checked against a 3-class model (`check_mask_labels`, whose
//! verdict does not gate the run), built (`Pipeline::from_config`) and, when accepted,
//! applied to a small image and mask with a seeded generator. Never panics; an `Ok` result
//! has the input's size, finite pixels, and mask labels from the input's set, the ignore
//! label, or a constant border's `mask_value` named in the config.
#![no_main]
use libfuzzer_sys::fuzz_target;
use rand::SeedableRng;
use xray_data::augment::{Border, Pipeline, PipelineConfig, TransformSpec};
use xray_data::{Mask, Radiograph, IGNORE_LABEL};

fn border_labels(spec: &TransformSpec, out: &mut Vec<u8>) {
    let border = match spec {
        TransformSpec::Affine(t) => t.border,
        TransformSpec::Elastic(t) => t.border,
        TransformSpec::OneOf { choices } => {
            choices.iter().for_each(|c| border_labels(c, out));
            return;
        }
        _ => return,
    };
    if let Border::Constant { mask_value, .. } = border {
        out.push(mask_value);
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(cfg) = PipelineConfig::from_json(text) else {
        return;
    };
    let _ = cfg.check_mask_labels(3);
    let Ok(pipeline) = Pipeline::from_config(&cfg) else {
        return;
    };
    let mut allowed = vec![0u8, 1, 2, IGNORE_LABEL];
    cfg.steps
        .iter()
        .for_each(|s| border_labels(&s.transform, &mut allowed));
    let (w, h) = (24u32, 20u32);
    for seed in [0u64, data.len() as u64] {
        let mut image = Radiograph::from_fn(w, h, |x, y| {
            image::Luma([(x * 97 + y * 31) as f32 % 1000.0 + 20.0])
        });
        let mut mask = Mask::from_fn(w, h, |x, y| image::Luma([((x / 5 + y / 7) % 3) as u8]));
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        if pipeline.apply(&mut image, &mut mask, &mut rng).is_err() {
            continue;
        }
        assert_eq!(image.dimensions(), (w, h));
        assert_eq!(mask.dimensions(), (w, h));
        for &v in image.as_raw() {
            assert!(v.is_finite(), "non-finite pixel {v}");
        }
        for &l in mask.as_raw() {
            assert!(allowed.contains(&l), "mask label {l} not in {allowed:?}");
        }
    }
});
