//! Augmentation properties: identities are exact, 90° rotation is the pixel rotation,
//! masks stay in the label set, image-only transforms leave masks byte-identical, seeds
//! reproduce.

use image::Luma;
use rand::rngs::StdRng;
use rand::SeedableRng;
use xray_data::augment::*;
use xray_data::{Mask, Radiograph};

fn sample(w: u32, h: u32) -> (Radiograph, Mask) {
    let img = Radiograph::from_fn(w, h, |x, y| {
        Luma([1000.0 + (x * 37 + y * 101 % 89) as f32 + ((x * y) % 7) as f32 * 13.5])
    });
    let mask = Mask::from_fn(w, h, |x, y| {
        let v = (x / 5 + y / 3) % 4;
        Luma([[0u8, 1, 2, 255][v as usize]])
    });
    (img, mask)
}

fn labels_ok(m: &Mask) -> bool {
    m.pixels().all(|p| matches!(p.0[0], 0 | 1 | 2 | 255))
}

#[test]
fn identity_parameters_are_exact() {
    let (img, mask) = sample(23, 17);
    let mut rng = StdRng::seed_from_u64(0);
    let joint: Vec<Box<dyn Transform>> = vec![
        Box::new(Affine {
            rotate_deg: [0.0, 0.0],
            shear_deg: [0.0, 0.0],
            translate_frac: [0.0, 0.0],
            ..Affine::default()
        }),
        Box::new(Affine {
            rotate_deg: [0.0, 0.0],
            shear_deg: [0.0, 0.0],
            translate_frac: [0.0, 0.0],
            interpolation: Interpolation::Bicubic,
            ..Affine::default()
        }),
        Box::new(RandomCrop {
            keep: [1.0, 1.0],
            ..RandomCrop::default()
        }),
        Box::new(Elastic {
            alpha: [0.0, 0.0],
            ..Elastic::default()
        }),
    ];
    for t in &joint {
        let (mut i2, mut m2) = (img.clone(), mask.clone());
        t.apply(&mut i2, &mut m2, &mut rng).unwrap();
        assert_eq!(i2.as_raw(), img.as_raw(), "{t:?}");
        assert_eq!(m2.as_raw(), mask.as_raw(), "{t:?}");
    }
    let image_only: Vec<Box<dyn ImageTransform>> = vec![
        Box::new(GaussianBlur { sigma: [0.0, 0.0] }),
        Box::new(GaussianNoise { std: [0.0, 0.0] }),
        Box::new(Gamma { gamma: [1.0, 1.0] }),
        Box::new(BrightnessContrast {
            brightness: [0.0, 0.0],
            contrast: [1.0, 1.0],
        }),
    ];
    for t in &image_only {
        let mut i2 = img.clone();
        t.apply_image(&mut i2, &mut rng).unwrap();
        assert_eq!(i2.as_raw(), img.as_raw(), "{t:?}");
    }
}

#[test]
fn elastic_alpha_zero_is_identity_with_any_sigma_and_border() {
    let (img, mask) = sample(31, 29);
    for sigma in [0.25, 4.0, 16.0] {
        for border in [
            Border::Reflect,
            Border::Constant {
                value: 0.0,
                mask_value: 255,
            },
        ] {
            let e = Elastic {
                alpha: [0.0, 0.0],
                sigma,
                border,
                ..Elastic::default()
            };
            let (mut i2, mut m2) = (img.clone(), mask.clone());
            e.apply(&mut i2, &mut m2, &mut StdRng::seed_from_u64(5))
                .unwrap();
            assert_eq!(i2.as_raw(), img.as_raw());
            assert_eq!(m2.as_raw(), mask.as_raw());
        }
    }
}

/// Counter-clockwise as displayed (y down): out(x, y) = in(w − 1 − y, x).
fn rot90_ccw<P: image::Pixel>(
    src: &image::ImageBuffer<P, Vec<P::Subpixel>>,
) -> image::ImageBuffer<P, Vec<P::Subpixel>> {
    let (w, h) = src.dimensions();
    assert_eq!(w, h);
    image::ImageBuffer::from_fn(w, h, |x, y| *src.get_pixel(w - 1 - y, x))
}

#[test]
fn rotation_by_90_degrees_is_the_exact_pixel_rotation() {
    for n in [16u32, 17] {
        let (img, mask) = sample(n, n);
        for interp in [
            Interpolation::Bilinear,
            Interpolation::Bicubic,
            Interpolation::Nearest,
        ] {
            let a = Affine {
                interpolation: interp,
                ..Affine::default()
            };
            let (mut i2, mut m2) = (img.clone(), mask.clone());
            a.apply_fixed(&mut i2, &mut m2, 90.0, 0.0, 1.0, [0.0, 0.0])
                .unwrap();
            assert_eq!(i2.as_raw(), rot90_ccw(&img).as_raw(), "{interp:?} n={n}");
            assert_eq!(m2.as_raw(), rot90_ccw(&mask).as_raw(), "{interp:?} n={n}");
            // Four quarter turns bring it back.
            for _ in 0..3 {
                a.apply_fixed(&mut i2, &mut m2, 90.0, 0.0, 1.0, [0.0, 0.0])
                    .unwrap();
            }
            assert_eq!(i2.as_raw(), img.as_raw());
            assert_eq!(m2.as_raw(), mask.as_raw());
        }
    }
}

#[test]
fn integer_translation_shifts_pixels() {
    let (img, mask) = sample(20, 20);
    let a = Affine {
        border: Border::Constant {
            value: -1.0,
            mask_value: 255,
        },
        ..Affine::default()
    };
    let (mut i2, mut m2) = (img.clone(), mask.clone());
    a.apply_fixed(&mut i2, &mut m2, 0.0, 0.0, 1.0, [3.0, -2.0])
        .unwrap();
    for y in 0..20u32 {
        for x in 0..20u32 {
            let (sx, sy) = (x as i32 - 3, y as i32 + 2);
            if (0..20).contains(&sx) && (0..20).contains(&sy) {
                assert_eq!(i2.get_pixel(x, y), img.get_pixel(sx as u32, sy as u32));
                assert_eq!(m2.get_pixel(x, y), mask.get_pixel(sx as u32, sy as u32));
            } else {
                assert_eq!(i2.get_pixel(x, y).0[0], -1.0);
                assert_eq!(m2.get_pixel(x, y).0[0], 255);
            }
        }
    }
}

/// Non-finite fixed parameters are refused and leave the sample as it was; they used to
/// move every pixel outside the source and blank it (image 0, mask 255) with `Ok`.
#[test]
fn fixed_affine_and_crop_refuse_non_finite_parameters() {
    let (img, mask) = sample(12, 10);
    let a = Affine::default();
    let nan = f32::NAN;
    let inf = f32::INFINITY;
    let affine_cases: [(f32, f32, f32, [f32; 2]); 6] = [
        (nan, 0.0, 1.0, [0.0, 0.0]),
        (inf, 0.0, 1.0, [0.0, 0.0]),
        (0.0, nan, 1.0, [0.0, 0.0]),
        (0.0, 0.0, nan, [0.0, 0.0]),
        (0.0, 0.0, 1.0, [inf, 0.0]),
        (0.0, 0.0, 1.0, [0.0, -inf]),
    ];
    for (rot, shear, scale, t) in affine_cases {
        let (mut i2, mut m2) = (img.clone(), mask.clone());
        let err = a
            .apply_fixed(&mut i2, &mut m2, rot, shear, scale, t)
            .unwrap_err();
        assert!(err.to_string().contains("must be finite"), "{err}");
        assert_eq!((&i2, &m2), (&img, &mask));
    }
    // A constant border with a NaN value is refused here too, not only by `validate`.
    let bad_border = Affine {
        border: Border::Constant {
            value: nan,
            mask_value: 255,
        },
        ..Affine::default()
    };
    let (mut i2, mut m2) = (img.clone(), mask.clone());
    assert!(bad_border
        .apply_fixed(&mut i2, &mut m2, 10.0, 0.0, 1.0, [0.0, 0.0])
        .is_err());
    assert_eq!((&i2, &m2), (&img, &mask));

    let crop = RandomCrop::default();
    let crop_cases: [([f32; 2], [f32; 2]); 6] = [
        ([nan, 0.0], [6.0, 5.0]),
        ([0.0, inf], [6.0, 5.0]),
        ([0.0, 0.0], [nan, 5.0]),
        ([0.0, 0.0], [6.0, inf]),
        ([0.0, 0.0], [0.0, 5.0]),
        ([0.0, 0.0], [6.0, -5.0]),
    ];
    for (origin, size) in crop_cases {
        let (mut i2, mut m2) = (img.clone(), mask.clone());
        assert!(
            crop.apply_window(&mut i2, &mut m2, origin, size).is_err(),
            "{origin:?} {size:?}"
        );
        assert_eq!((&i2, &m2), (&img, &mask));
    }
    // Finite windows still work.
    let (mut i2, mut m2) = (img.clone(), mask.clone());
    crop.apply_window(&mut i2, &mut m2, [2.0, 1.0], [6.0, 5.0])
        .unwrap();
    assert_ne!(i2, img);
}

#[test]
fn flips_are_involutions_and_mirror() {
    let (img, mask) = sample(9, 6);
    let mut rng = StdRng::seed_from_u64(1);
    let (mut i2, mut m2) = (img.clone(), mask.clone());
    HorizontalFlip.apply(&mut i2, &mut m2, &mut rng).unwrap();
    assert_eq!(i2.get_pixel(0, 2), img.get_pixel(8, 2));
    assert_eq!(m2.get_pixel(1, 5), mask.get_pixel(7, 5));
    HorizontalFlip.apply(&mut i2, &mut m2, &mut rng).unwrap();
    assert_eq!(i2.as_raw(), img.as_raw());
    VerticalFlip.apply(&mut i2, &mut m2, &mut rng).unwrap();
    assert_eq!(i2.get_pixel(3, 0), img.get_pixel(3, 5));
    assert_eq!(m2.get_pixel(4, 1), mask.get_pixel(4, 4));
    VerticalFlip.apply(&mut i2, &mut m2, &mut rng).unwrap();
    assert_eq!(m2.as_raw(), mask.as_raw());
}

#[test]
fn masks_stay_in_label_set_and_image_only_leaves_mask_identical() {
    let (img, mask) = sample(40, 33);
    let joint: Vec<Box<dyn Transform>> = vec![
        Box::new(Affine {
            rotate_deg: [-40.0, 40.0],
            shear_deg: [-10.0, 10.0],
            scale: [0.7, 1.4],
            ..Affine::default()
        }),
        Box::new(Affine {
            interpolation: Interpolation::Bicubic,
            border: Border::Constant {
                value: 0.0,
                mask_value: 255,
            },
            ..Affine::default()
        }),
        Box::new(RandomCrop::default()),
        Box::new(Elastic::default()),
        Box::new(Elastic::xnet_strong()),
        Box::new(Elastic {
            noise: NoiseDistribution::Gaussian,
            exact: true,
            ..Elastic::default()
        }),
        Box::new(CollimatorSim::default()),
        Box::new(HorizontalFlip),
        Box::new(VerticalFlip),
    ];
    let image_only: Vec<Box<dyn ImageTransform>> = vec![
        Box::new(GaussianBlur { sigma: [0.5, 2.0] }),
        Box::new(GaussianNoise { std: [0.01, 0.05] }),
        Box::new(PoissonNoise::default()),
        Box::new(Gamma::default()),
        Box::new(BrightnessContrast::default()),
        Box::new(Elastic::xnet_mild()),
    ];
    for seed in 0..4 {
        let mut rng = StdRng::seed_from_u64(seed);
        for t in &joint {
            let (mut i2, mut m2) = (img.clone(), mask.clone());
            t.apply(&mut i2, &mut m2, &mut rng).unwrap();
            assert!(labels_ok(&m2), "{t:?}");
            assert!(i2.as_raw().iter().all(|v| v.is_finite()), "{t:?}");
        }
        for t in &image_only {
            let mut i2 = img.clone();
            t.apply_image(&mut i2, &mut rng).unwrap();
            assert_ne!(i2.as_raw(), img.as_raw(), "{t:?} changed nothing");
        }
    }
    // Through the pipeline, image-only steps must not touch the mask at all.
    let cfg = PipelineConfig::from_json(
        r#"{"steps": [
            {"type": "gaussian_blur", "sigma": [0.5, 1.0]},
            {"type": "gaussian_noise"},
            {"type": "poisson_noise"},
            {"type": "gamma"},
            {"type": "brightness_contrast"},
            {"type": "elastic", "image_only": true, "alpha": [1.0, 2.0], "sigma": 0.25}
        ]}"#,
    )
    .unwrap();
    let p = Pipeline::from_config(&cfg).unwrap();
    let (mut i2, mut m2) = (img.clone(), mask.clone());
    p.apply(&mut i2, &mut m2, &mut StdRng::seed_from_u64(9))
        .unwrap();
    assert_eq!(m2.as_raw(), mask.as_raw());
    assert_ne!(i2.as_raw(), img.as_raw());
}

/// A NaN or infinite input pixel is refused up front, naming it, and the sample is left as
/// it was. Before, the pipeline returned `Ok` with a NaN image (the brightness/contrast
/// mean) or the NaN silently turned into 0 (Poisson noise).
#[test]
fn pipeline_refuses_non_finite_input_pixels() {
    let (img, mask) = sample(7, 5);
    let steps = [
        r#"{"steps": [{"type": "brightness_contrast"}]}"#,
        r#"{"steps": [{"type": "poisson_noise"}]}"#,
        r#"{"steps": [{"type": "horizontal_flip"}]}"#,
        r#"{"steps": [{"type": "gaussian_blur", "p": 0}]}"#,
    ];
    for json in steps {
        let p = Pipeline::from_config(&PipelineConfig::from_json(json).unwrap()).unwrap();
        for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
            let mut i2 = img.clone();
            i2.put_pixel(2, 3, Luma([bad]));
            let (before, mut m2) = (i2.clone(), mask.clone());
            let err = p
                .apply(&mut i2, &mut m2, &mut StdRng::seed_from_u64(1))
                .unwrap_err();
            assert!(
                matches!(err, xray_data::DataError::NonFinite { x: 2, y: 3, .. }),
                "{json} {bad}: {err}"
            );
            assert!(err.to_string().contains("<memory>"), "{err}");
            assert_eq!(i2.as_raw().len(), before.as_raw().len());
            assert!(i2
                .as_raw()
                .iter()
                .zip(before.as_raw())
                .all(|(a, b)| a.to_bits() == b.to_bits()));
            assert_eq!(m2, mask);
            // The batch path names the item.
            let mut batch = vec![(img.clone(), mask.clone()), (before.clone(), mask.clone())];
            let err = p.apply_batch(&mut batch, 3).unwrap_err();
            assert!(err.to_string().contains("<batch item 1>"), "{err}");
        }
    }
    // The image-only transforms that read the value range refuse it on their own too.
    let mut nan = img.clone();
    nan.put_pixel(0, 0, Luma([f32::NAN]));
    let image_only: Vec<Box<dyn ImageTransform>> = vec![
        Box::new(GaussianNoise::default()),
        Box::new(PoissonNoise::default()),
        Box::new(Gamma::default()),
        Box::new(BrightnessContrast::default()),
    ];
    for t in &image_only {
        let mut i2 = nan.clone();
        let err = t
            .apply_image(&mut i2, &mut StdRng::seed_from_u64(0))
            .unwrap_err();
        assert!(
            matches!(err, xray_data::DataError::NonFinite { .. }),
            "{t:?}"
        );
        assert!(i2.as_raw()[0].is_nan() && i2.as_raw()[1..] == nan.as_raw()[1..]);
    }
}

/// Ranges at the ends of `f32`: an image spanning ±3e38 (its `hi − lo` overflows) became all
/// non-finite under Gaussian noise, gamma and brightness/contrast, and one whose maximum is
/// 1e-40 gave NaN pixels under Poisson noise.
#[test]
fn intensity_transforms_at_the_ends_of_f32() {
    let wide = Radiograph::from_raw(4, 1, vec![-3e38, -1.0, 2.0, 3e38]).unwrap();
    let mut rng = StdRng::seed_from_u64(4);
    // Gamma maps it in f64: finite, within the range, the extremes kept, order kept.
    let mut g = wide.clone();
    Gamma { gamma: [2.0, 2.0] }
        .apply_image(&mut g, &mut rng)
        .unwrap();
    let v = g.as_raw();
    assert_eq!((v[0], v[3]), (-3e38, 3e38));
    assert!(v.iter().all(|x| x.is_finite()) && v[0] < v[1] && v[1] <= v[2] && v[2] < v[3]);
    // t = 0.5 gives lo + span / 4.
    assert!((v[1] / -1.5e38 - 1.0).abs() < 1e-6, "{v:?}");
    // Noise and brightness, whose amplitudes are fractions of the span, refuse it and
    // leave the image unchanged.
    let refusing: Vec<Box<dyn ImageTransform>> = vec![
        Box::new(GaussianNoise { std: [0.02, 0.02] }),
        Box::new(BrightnessContrast {
            brightness: [0.1, 0.1],
            contrast: [1.0, 1.0],
        }),
        Box::new(BrightnessContrast {
            brightness: [0.0, 0.0],
            contrast: [0.8, 0.8],
        }),
    ];
    for t in &refusing {
        let mut i2 = wide.clone();
        let err = t.apply_image(&mut i2, &mut rng).unwrap_err();
        assert!(err.to_string().contains("too wide"), "{t:?}: {err}");
        assert_eq!(i2, wide);
    }
    // A finite span whose fraction overflows (std 10 × 3e38) is refused as well.
    let half = Radiograph::from_raw(2, 1, vec![0.0, 3e38]).unwrap();
    let mut i2 = half.clone();
    let noisy = GaussianNoise { std: [10.0, 10.0] };
    assert!(noisy.apply_image(&mut i2, &mut rng).is_err());
    assert_eq!(i2, half);
    // Zero strength is still the identity.
    let mut i2 = wide.clone();
    GaussianNoise { std: [0.0, 0.0] }
        .apply_image(&mut i2, &mut rng)
        .unwrap();
    assert_eq!(i2, wide);

    // Poisson noise with a tiny maximum: `photons / hi` overflows f32, so the scale is
    // taken in f64; the result is finite and keeps the image's scale.
    let tiny = Radiograph::from_raw(3, 1, vec![0.0, 5e-41, 1e-40]).unwrap();
    let mut i2 = tiny.clone();
    PoissonNoise {
        photons: [1e6, 1e6],
    }
    .apply_image(&mut i2, &mut rng)
    .unwrap();
    let v = i2.as_raw();
    assert!(v.iter().all(|x| x.is_finite()), "{v:?}");
    assert_eq!(v[0], 0.0);
    assert!((v[2] / 1e-40 - 1.0).abs() < 0.05, "{v:?}");

    // A pixel beyond ±1e30, which a step could push past f32::MAX, is refused by the
    // pipeline before any step (not an `Ok` with infinite pixels); below it, no built-in
    // step can overflow (contrast 100 on ±1e30 stays finite).
    let mut p = Pipeline::new();
    p.push(Box::new(HorizontalFlip), 1.0).unwrap();
    p.push_image(
        Box::new(BrightnessContrast {
            brightness: [0.0, 0.0],
            contrast: [100.0, 100.0],
        }),
        1.0,
    )
    .unwrap();
    let (mut i2, mut m2) = (half.clone(), Mask::new(2, 1));
    let err = p
        .apply(&mut i2, &mut m2, &mut StdRng::seed_from_u64(0))
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("pixel (x=1, y=0) is 3e38, beyond the ±1e30"),
        "{err}"
    );
    assert_eq!(i2, half);
    // Intensity steps compound: five contrast factors of 100 take ±1e30 to ±1e40, past the
    // f32 range; the result is checked again after them.
    let mut strong = Pipeline::new();
    for _ in 0..5 {
        strong
            .push_image(
                Box::new(BrightnessContrast {
                    brightness: [0.0, 0.0],
                    contrast: [100.0, 100.0],
                }),
                1.0,
            )
            .unwrap();
    }
    let big = Radiograph::from_raw(2, 1, vec![-1e30, 1e30]).unwrap();
    let (mut i2, mut m2) = (big.clone(), Mask::new(2, 1));
    let err = strong
        .apply(&mut i2, &mut m2, &mut StdRng::seed_from_u64(0))
        .unwrap_err()
        .to_string();
    assert!(err.contains("carried a pixel past the f32 range"), "{err}");
    let edge = Radiograph::from_raw(2, 1, vec![-MAX_PIXEL_MAGNITUDE, MAX_PIXEL_MAGNITUDE]).unwrap();
    let (mut i2, mut m2) = (edge.clone(), Mask::new(2, 1));
    p.apply(&mut i2, &mut m2, &mut StdRng::seed_from_u64(0))
        .unwrap();
    assert!(i2.iter().all(|v| v.is_finite()), "{:?}", i2.as_raw());
}

#[test]
fn collimator_sim_labels_border_255_and_darkens_it() {
    let (img, _) = sample(64, 64);
    let mask = Mask::from_pixel(64, 64, Luma([1]));
    let (mut i2, mut m2) = (img.clone(), mask.clone());
    CollimatorSim::default()
        .apply(&mut i2, &mut m2, &mut StdRng::seed_from_u64(2))
        .unwrap();
    let outside: Vec<usize> = (0..64 * 64).filter(|&i| m2.as_raw()[i] == 255).collect();
    assert!(!outside.is_empty());
    assert!(m2.as_raw().iter().all(|&v| v == 1 || v == 255));
    let (lo, _) = (1000.0f32, 0.0);
    let mean_out = outside.iter().map(|&i| i2.as_raw()[i] - lo).sum::<f32>() / outside.len() as f32;
    let mean_orig =
        outside.iter().map(|&i| img.as_raw()[i] - lo).sum::<f32>() / outside.len() as f32;
    assert!(mean_out < 0.5 * mean_orig, "{mean_out} vs {mean_orig}");
}

#[test]
fn same_seed_same_output_and_batch_is_thread_independent() {
    let (img, mask) = sample(48, 40);
    let p = Pipeline::from_config(&PipelineConfig::xnet_strong()).unwrap();
    let run = |seed| {
        let (mut i2, mut m2) = (img.clone(), mask.clone());
        p.apply(&mut i2, &mut m2, &mut StdRng::seed_from_u64(seed))
            .unwrap();
        (i2, m2)
    };
    let (a, am) = run(42);
    let (b, bm) = run(42);
    let (c, _) = run(43);
    assert_eq!(a.as_raw(), b.as_raw());
    assert_eq!(am.as_raw(), bm.as_raw());
    assert_ne!(a.as_raw(), c.as_raw());
    assert!(labels_ok(&am));

    let mut batch1: Vec<_> = (0..6).map(|_| (img.clone(), mask.clone())).collect();
    let mut batch2 = batch1.clone();
    p.apply_batch(&mut batch1, 7).unwrap();
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap();
    pool.install(|| p.apply_batch(&mut batch2, 7)).unwrap();
    for ((i1, m1), (i2, m2)) in batch1.iter().zip(&batch2) {
        assert_eq!(i1.as_raw(), i2.as_raw());
        assert_eq!(m1.as_raw(), m2.as_raw());
    }
    assert_ne!(batch1[0].0.as_raw(), batch1[1].0.as_raw());
}

#[test]
fn config_round_trips_json_and_toml_and_rejects_bad_input() {
    let cfg = PipelineConfig::xnet_strong();
    let json = serde_json::to_string(&cfg).unwrap();
    assert_eq!(PipelineConfig::from_json(&json).unwrap(), cfg);
    let toml_text = r#"
        [[steps]]
        type = "horizontal_flip"
        p = 0.5

        [[steps]]
        type = "affine"
        rotate_deg = [-15.0, 15.0]
        border = { mode = "constant", value = 0.0 }

        [[steps]]
        type = "elastic"
        alpha = [50.0, 60.0]
        sigma = 16.0
        p = 0.5
    "#;
    let t = PipelineConfig::from_toml(toml_text).unwrap();
    assert_eq!(t.steps.len(), 3);
    assert_eq!(t.steps[0].p, 0.5);
    assert_eq!(t.steps[1].p, 1.0);
    match &t.steps[1].transform {
        TransformSpec::Affine(a) => {
            assert_eq!(
                a.border,
                Border::Constant {
                    value: 0.0,
                    mask_value: 255
                }
            );
            assert_eq!(a.shear_deg, [-2.0, 2.0]);
        }
        other => panic!("{other:?}"),
    }
    Pipeline::from_config(&t).unwrap();

    assert!(PipelineConfig::from_json(r#"{"steps": [{"type": "warp_drive"}]}"#).is_err());
    let bad_p = PipelineConfig::from_json(r#"{"steps": [{"type": "gamma", "p": 1.5}]}"#).unwrap();
    let err = Pipeline::from_config(&bad_p).unwrap_err().to_string();
    assert!(err.contains("step 0"), "{err}");
    let bad_range =
        PipelineConfig::from_json(r#"{"steps": [{"type": "random_crop", "keep": [0.9, 0.6]}]}"#)
            .unwrap();
    assert!(Pipeline::from_config(&bad_range).is_err());
    let bad_sigma =
        PipelineConfig::from_json(r#"{"steps": [{"type": "elastic", "sigma": -1}]}"#).unwrap();
    assert!(Pipeline::from_config(&bad_sigma).is_err());
}

/// A misspelt setting used to be dropped and the default used in its place
/// (`rotation_deg` trained with ±15°, `prob` on a flip left it at p = 1).
#[test]
fn unknown_settings_are_errors_that_name_the_key() {
    let cases = [
        (
            r#"{"steps": [{"type": "affine", "rotation_deg": [1000, 2000]}]}"#,
            "rotation_deg",
        ),
        (
            r#"{"steps": [{"type": "horizontal_flip", "prob": 0.0}]}"#,
            "prob",
        ),
        (
            r#"{"steps": [{"type": "vertical_flip", "p": 0.5, "axis": 1}]}"#,
            "axis",
        ),
        (r#"{"steps": [{"type": "elastic", "alpah": 34}]}"#, "alpah"),
        (
            r#"{"steps": [{"type": "gamma", "gama": [0.5, 2]}]}"#,
            "gama",
        ),
        (
            r#"{"steps": [{"type": "collimator", "insets": 0.2}]}"#,
            "insets",
        ),
        (
            r#"{"steps": [{"type": "one_of", "choices": [], "weights": [1]}]}"#,
            "weights",
        ),
        (
            r#"{"steps": [{"type": "one_of", "choices": [{"type": "gaussian_blur", "sigmaa": 1}]}]}"#,
            "sigmaa",
        ),
        (r#"{"steps": [], "extra": 1}"#, "extra"),
    ];
    for (json, key) in cases {
        let err = PipelineConfig::from_json(json).unwrap_err().to_string();
        assert!(err.contains(&format!("`{key}`")), "{json}: {err}");
    }
    let toml_err =
        PipelineConfig::from_toml("[[steps]]\ntype = \"random_crop\"\nkeeep = [0.6, 0.9]\n")
            .unwrap_err()
            .to_string();
    assert!(toml_err.contains("keeep"), "{toml_err}");
    // Flips with `p` only, or nothing, still parse.
    let ok = PipelineConfig::from_json(
        r#"{"steps": [{"type": "horizontal_flip", "p": 0.5}, {"type": "vertical_flip"}]}"#,
    )
    .unwrap();
    assert_eq!(ok.steps.len(), 2);
    assert_eq!(ok.steps[0].p, 0.5);
}

#[test]
fn size_mismatch_is_an_error_not_a_panic() {
    let (img, _) = sample(10, 10);
    let mask = Mask::new(9, 10);
    let p = Pipeline::from_config(&PipelineConfig::xnet()).unwrap();
    let (mut i2, mut m2) = (img, mask);
    assert!(p
        .apply(&mut i2, &mut m2, &mut StdRng::seed_from_u64(0))
        .is_err());
}

#[test]
fn balanced_indices_equalise_categories() {
    let cats = ["hand", "hand", "hand", "knee", "femur", "hand", "knee"];
    let idx = balanced_indices(&cats);
    assert_eq!(idx.len(), 3 * 4);
    let count = |c: &str| idx.iter().filter(|&&i| cats[i] == c).count();
    assert_eq!((count("hand"), count("knee"), count("femur")), (4, 4, 4));
    let (img, mask) = sample(12, 12);
    let samples: Vec<_> = (0..cats.len())
        .map(|_| (img.clone(), mask.clone()))
        .collect();
    let p = Pipeline::from_config(&PipelineConfig::xnet()).unwrap();
    let (out, src) = p.augment_balanced(&samples, &cats, 3).unwrap();
    assert_eq!(out.len(), 12);
    assert_eq!(src, idx);
    // The femur image appears four times, each copy augmented differently.
    let femurs: Vec<_> = out
        .iter()
        .zip(&src)
        .filter(|(_, &s)| cats[s] == "femur")
        .collect();
    assert_ne!(femurs[0].0 .0.as_raw(), femurs[1].0 .0.as_raw());
}

/// Renders docs/images/augment-grid.png: one phantom, then eleven draws of
/// `PipelineConfig::xnet_strong()`. Run with
/// `XRAY_AUGMENT_GRID=$PWD/docs/images/augment-grid.png cargo test -p xray-data --test augment_transforms -- --ignored`.
#[test]
#[ignore = "writes a picture; run by hand to refresh docs/images"]
fn render_augmentation_grid() {
    use xray_data::synth::{
        generate, preview, preview_grid, save_preview, BodyPart, PhantomConfig,
    };
    let Ok(path) = std::env::var("XRAY_AUGMENT_GRID") else {
        eprintln!("XRAY_AUGMENT_GRID not set; nothing written");
        return;
    };
    let cfg = PhantomConfig {
        collimation_probability: 0.0,
        marker_probability: 0.0,
        ..PhantomConfig::with_size(192)
    };
    let p = generate(&cfg, BodyPart::Hand, &mut StdRng::seed_from_u64(3)).unwrap();
    let pipe = Pipeline::from_config(&PipelineConfig::xnet_strong()).unwrap();
    let mut tiles = vec![preview(&p.image, &p.mask)];
    for seed in 0..11 {
        let (mut i, mut m) = (p.image.clone(), p.mask.clone());
        pipe.apply(&mut i, &mut m, &mut StdRng::seed_from_u64(seed))
            .unwrap();
        tiles.push(preview(&i, &m));
    }
    save_preview(std::path::Path::new(&path), &preview_grid(&tiles, 4)).unwrap();
}

#[test]
fn a_config_file_that_does_not_parse_is_named_once() {
    let dir = std::env::temp_dir().join(format!("xray-aug-parse-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for (name, text, says) in [
        (
            "bad.json",
            r#"{"steps": 3}"#,
            "augmentation config (JSON): invalid type",
        ),
        (
            "bad.toml",
            "steps = 3\n",
            "augmentation config (TOML): TOML parse error",
        ),
    ] {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        let e = PipelineConfig::from_file(&path).unwrap_err().to_string();
        assert!(
            e.starts_with(&format!("invalid parameter: {}: {says}", path.display())),
            "{e}"
        );
        assert_eq!(e.matches("invalid parameter").count(), 1, "{e}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A field applied by hand takes only a finite penumbra of at least 0, a leakage in [0, 1]
/// and a finite geometry, and a refused call leaves image and mask as they were: a NaN
/// leakage made every pixel NaN, an infinite penumbra dimmed the field's inside too.
#[test]
fn a_field_applied_by_hand_refuses_bad_parameters_and_changes_nothing() {
    use xray_data::synth::FieldPolygon;
    let field = FieldPolygon {
        vertices: vec![[0.0, 0.0], [8.0, 0.0], [8.0, 16.0], [0.0, 16.0]],
        cut: [false, true, false, false],
        angle_deg: 0.0,
        center: [8.0, 8.0],
        u_bounds: [-16.0, 0.0],
        v_bounds: [-16.0, 16.0],
    };
    let sim = CollimatorSim::default();
    let (image, mask) = sample(16, 16);
    let refused = |penumbra: f32, leakage: f32, field: &FieldPolygon, what: &str| {
        let (mut im, mut m) = (image.clone(), mask.clone());
        let err = sim
            .apply_field(&mut im, &mut m, field, penumbra, leakage)
            .expect_err(what)
            .to_string();
        assert!(err.contains("collimator"), "{what}: {err}");
        assert_eq!(im, image, "{what}: the image changed");
        assert_eq!(m, mask, "{what}: the mask changed");
    };
    refused(2.0, f32::NAN, &field, "NaN leakage");
    refused(2.0, 1.5, &field, "leakage above 1");
    refused(2.0, -0.1, &field, "negative leakage");
    refused(f32::INFINITY, 0.1, &field, "infinite penumbra");
    refused(f32::NAN, 0.1, &field, "NaN penumbra");
    refused(-1.0, 0.1, &field, "negative penumbra");
    let mut nan_angle = field.clone();
    nan_angle.angle_deg = f32::NAN;
    refused(2.0, 0.1, &nan_angle, "NaN angle");
    let mut infinite_bound = field.clone();
    infinite_bound.u_bounds[1] = f32::INFINITY;
    refused(2.0, 0.1, &infinite_bound, "infinite bound");
    // The limits themselves are accepted: a hard edge, no leakage, full leakage.
    for (penumbra, leakage) in [(0.0, 0.0), (2.0, 1.0)] {
        let (mut im, mut m) = (image.clone(), mask.clone());
        sim.apply_field(&mut im, &mut m, &field, penumbra, leakage)
            .expect("limits accepted");
        assert!(im.iter().all(|v| v.is_finite()));
        assert_eq!(m.get_pixel(15, 8)[0], xray_data::IGNORE_LABEL);
    }
}
