//! What the `augment_config` and `augment_config_toml` targets check once their text has
//! parsed into a `PipelineConfig` (a module of both, not a target of its own).
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

/// `check_mask_labels(3)` (its verdict does not gate the run), `Pipeline::from_config` and,
/// when accepted, two applications (seeds 0 and `seed`) to a 24×20 image and 3-class mask:
/// an `Ok` result keeps their size, finite pixels, and mask labels from the input's set,
/// the ignore label, or a constant border's `mask_value` named in the config.
pub fn check_config(cfg: &PipelineConfig, seed: u64) {
    let _ = cfg.check_mask_labels(3);
    let Ok(pipeline) = Pipeline::from_config(cfg) else {
        return;
    };
    let mut allowed = vec![0u8, 1, 2, IGNORE_LABEL];
    cfg.steps
        .iter()
        .for_each(|s| border_labels(&s.transform, &mut allowed));
    let (w, h) = (24u32, 20u32);
    for seed in [0u64, seed] {
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
}
