//! Inference: output size, probabilities, tiling versus whole-image, batching.

use candle_core::{DType, Device, Module, Tensor};
use candle_nn::{Conv2d, Conv2dConfig, VarBuilder, VarMap};
use xnet_model::infer::{
    argmax_classes, predict_proba, predict_proba_batch, FlipAverage, InferenceOptions, SmallInput,
};
use xnet_model::models::{ModelConfig, XNetConfig};
use xnet_model::{Result, Segmenter};

/// Translation-equivariant toy: two 3×3 "same" convolutions with a ReLU between (receptive
/// field radius 2).
struct Toy {
    a: Conv2d,
    b: Conv2d,
    multiple: usize,
}

impl Toy {
    fn new(multiple: usize) -> Self {
        let dev = Device::Cpu;
        let cfg = Conv2dConfig {
            padding: 1,
            ..Default::default()
        };
        let wa = Tensor::randn(0f32, 1.0, (4, 1, 3, 3), &dev).unwrap();
        let ba = Tensor::randn(0f32, 0.1, 4, &dev).unwrap();
        let wb = Tensor::randn(0f32, 1.0, (3, 4, 3, 3), &dev).unwrap();
        Self {
            a: Conv2d::new(wa, Some(ba), cfg),
            b: Conv2d::new(wb, None, cfg),
            multiple,
        }
    }
}

impl Module for Toy {
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        self.b.forward(&self.a.forward(x)?.relu()?)
    }
}

impl Segmenter for Toy {
    fn num_classes(&self) -> usize {
        3
    }
    fn size_multiple(&self) -> usize {
        self.multiple
    }
    fn config(&self) -> ModelConfig {
        ModelConfig::default()
    }
    fn fold_batch_norm(&mut self) -> Result<usize> {
        Ok(0)
    }
}

fn image(h: usize, w: usize) -> Vec<f32> {
    (0..h * w)
        .map(|i| (((i * 7919) % 97) as f32 / 97.0 - 0.5) * 2.0)
        .collect()
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

#[test]
fn tiled_equals_whole_image_for_a_local_model() {
    let toy = Toy::new(4);
    let (h, w) = (70, 93);
    let img = image(h, w);
    let whole = predict_proba(
        &toy,
        &img,
        h,
        w,
        &InferenceOptions {
            tile_size: 128,
            ..Default::default()
        },
    )
    .unwrap();
    // Overlap 8 discards 2 px at shared tile edges: enough for radius 2, so the match is exact
    // wherever the whole-image pass saw no padding (both sizes are not multiples of 4, so the
    // whole-image pass pads the last row/column strip: compare 2 px away from it).
    for batch_size in [1, 3] {
        let opts = InferenceOptions {
            tile_size: 32,
            overlap: 8,
            batch_size,
            ..Default::default()
        };
        let tiled = predict_proba(&toy, &img, h, w, &opts).unwrap();
        assert_eq!(tiled.len(), 3 * h * w);
        let mut worst = 0f32;
        for k in 0..3 {
            for y in 0..h - 2 {
                for x in 0..w - 2 {
                    let i = k * h * w + y * w + x;
                    worst = worst.max((tiled[i] - whole[i]).abs());
                }
            }
        }
        assert!(worst < 1e-5, "batch {batch_size}: max difference {worst}");
    }
}

/// A large radiograph with the default options (512-pixel tiles, overlap 64; 3 × 3 tiles
/// here, kept smaller than 2000×2000 so that the test stays fast): tiles of bounded size, yet
/// the same result as one whole-image pass of this local model.
#[test]
fn large_radiograph_tiles_match_whole_image() {
    let toy = Toy::new(8);
    let (h, w) = (1104, 1032); // multiples of 8: the whole-image pass needs no padding
    let img = image(h, w);
    let tiled = predict_proba(&toy, &img, h, w, &InferenceOptions::default()).unwrap();
    let whole = predict_proba(
        &toy,
        &img,
        h,
        w,
        &InferenceOptions {
            tile_size: 1104,
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(tiled.len(), 3 * h * w);
    assert!(max_abs_diff(&tiled, &whole) < 1e-5);
}

#[test]
fn probabilities_sum_to_one_at_the_input_size() {
    let toy = Toy::new(8);
    for (h, w, opts) in [
        (5, 3, InferenceOptions::default()),
        (37, 41, InferenceOptions::default()),
        (
            37,
            41,
            InferenceOptions {
                small_input: SmallInput::Resize {
                    height: 16,
                    width: 24,
                },
                ..Default::default()
            },
        ),
        (
            100,
            20,
            InferenceOptions {
                tile_size: 32,
                overlap: 12,
                ..Default::default()
            },
        ),
        (
            90,
            75,
            InferenceOptions {
                tile_size: 24,
                overlap: 23,
                batch_size: 7,
                ..Default::default()
            },
        ),
    ] {
        let p = predict_proba(&toy, &image(h, w), h, w, &opts).unwrap();
        assert_eq!(p.len(), 3 * h * w, "{h}×{w}");
        for i in 0..h * w {
            let s: f32 = (0..3).map(|k| p[k * h * w + i]).sum();
            assert!((s - 1.0).abs() < 1e-5, "{h}×{w} pixel {i}: sum {s}");
            assert!((0..3).all(|k| (0.0..=1.0).contains(&p[k * h * w + i])));
        }
        assert_eq!(argmax_classes(&p, 3, h, w).unwrap().len(), h * w);
    }
}

#[test]
fn batch_equals_one_by_one() {
    let toy = Toy::new(4);
    for (h, w, tile) in [(20, 28, 64), (50, 45, 16)] {
        let n = 3;
        let imgs: Vec<f32> = (0..n)
            .flat_map(|k| image(h, w).into_iter().map(move |v| v * (k as f32 + 1.0)))
            .collect();
        let opts = InferenceOptions {
            tile_size: tile,
            overlap: 4,
            batch_size: 2,
            ..Default::default()
        };
        let batched = predict_proba_batch(&toy, &imgs, n, h, w, &opts).unwrap();
        for k in 0..n {
            let single =
                predict_proba(&toy, &imgs[k * h * w..(k + 1) * h * w], h, w, &opts).unwrap();
            assert!(max_abs_diff(&single, &batched[k * 3 * h * w..(k + 1) * 3 * h * w]) < 1e-6);
        }
    }
}

#[test]
fn xnet_runs_tiled_on_a_larger_image() {
    let varmap = VarMap::new();
    let cfg = ModelConfig::XNet(XNetConfig {
        base_width: 2,
        ..Default::default()
    });
    let model = cfg
        .build(VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu))
        .unwrap();
    let (h, w) = (150, 131);
    let opts = InferenceOptions {
        tile_size: 64,
        overlap: 16,
        batch_size: 4,
        ..Default::default()
    };
    let p = predict_proba(model.as_ref(), &image(h, w), h, w, &opts).unwrap();
    assert_eq!(p.len(), 3 * h * w);
    assert!(p.iter().all(|v| v.is_finite()));
}

#[test]
fn bad_inputs_and_options_are_errors() {
    let toy = Toy::new(8);
    let opts = InferenceOptions::default();
    assert!(predict_proba(&toy, &[0.0; 10], 3, 4, &opts).is_err());
    assert!(predict_proba(&toy, &[], 0, 4, &opts).is_err());
    let mut img = vec![0.0f32; 12];
    img[5] = f32::NAN;
    let e = predict_proba(&toy, &img, 3, 4, &opts)
        .unwrap_err()
        .to_string();
    assert!(e.contains("x=1, y=1"), "{e}");
    for bad in [
        InferenceOptions {
            tile_size: 30,
            ..Default::default()
        },
        InferenceOptions {
            tile_size: 32,
            overlap: 32,
            ..Default::default()
        },
        InferenceOptions {
            batch_size: 0,
            ..Default::default()
        },
        InferenceOptions {
            small_input: SmallInput::Resize {
                height: 12,
                width: 16,
            },
            ..Default::default()
        },
    ] {
        assert!(
            predict_proba(&toy, &[0.0; 12], 3, 4, &bad).is_err(),
            "{bad:?}"
        );
    }
    assert!(argmax_classes(&[0.5; 5], 2, 1, 2).is_err());
}

/// Dimensions whose product overflows `usize`, and a `batch_size` far beyond the number of
/// images, come from a caller's arguments: an error (or one chunk), never an overflow panic.
#[test]
fn sizes_that_overflow_are_errors_not_panics() {
    let toy = Toy::new(8);
    let opts = InferenceOptions::default();
    for (n, h, w) in [
        (1, usize::MAX, 2),
        (2, 1 << 33, 1 << 31),
        (usize::MAX, 2, 2),
    ] {
        let e = predict_proba_batch(&toy, &[0.0; 4], n, h, w, &opts)
            .unwrap_err()
            .to_string();
        assert!(e.contains("overflows usize"), "{n} × {h} × {w}: {e}");
    }
    for (c, h, w) in [(1, usize::MAX, 2), (3, 1 << 32, 1 << 32)] {
        assert!(
            argmax_classes(&[0.5; 4], c, h, w).is_err(),
            "{c} × {h} × {w}"
        );
    }
    let huge_batch = InferenceOptions {
        batch_size: usize::MAX,
        ..Default::default()
    };
    let p = predict_proba_batch(&toy, &image(6, 10).repeat(3), 3, 6, 10, &huge_batch).unwrap();
    assert_eq!(p.len(), 3 * 3 * 6 * 10);
}

/// A wrong `images` length says how many values the images need, in words that agree with
/// their number ("1 images of 2×2 need …" before).
#[test]
fn wrong_lengths_count_images_in_singular_and_plural() {
    let toy = Toy::new(8);
    let opts = InferenceOptions::default();
    for (n, want) in [
        (1, "1 image of 2×2 needs 4 values, got 3"),
        (2, "2 images of 2×2 need 8 values, got 3"),
    ] {
        let e = predict_proba_batch(&toy, &[0.0; 3], n, 2, 2, &opts)
            .unwrap_err()
            .to_string();
        assert!(e.contains(want), "{e}");
    }
}

/// A `SmallInput::Resize` target far beyond any network input (2^31 × 2^31) is refused by
/// `InferenceOptions::validate`, naming the limit, instead of overflowing an allocation.
#[test]
fn huge_resize_targets_are_errors_not_panics() {
    let toy = Toy::new(8);
    let limit = xnet_model::infer::MAX_INPUT_SIDE;
    for (height, width) in [(1 << 31, 1 << 31), (limit + 8, 16), (16, limit + 8)] {
        let opts = InferenceOptions {
            small_input: SmallInput::Resize { height, width },
            ..Default::default()
        };
        let e = opts.validate(8).unwrap_err().to_string();
        assert!(
            e.contains(&format!("{limit}×{limit}")),
            "{height}×{width}: {e}"
        );
        let e = predict_proba(&toy, &[0.0; 12], 3, 4, &opts)
            .unwrap_err()
            .to_string();
        assert!(e.contains(&format!("{height}×{width}")), "{e}");
    }
    // The limit itself is accepted.
    let at_limit = InferenceOptions {
        small_input: SmallInput::Resize {
            height: limit,
            width: limit,
        },
        ..Default::default()
    };
    at_limit.validate(8).unwrap();
}

/// `planes` (`… × h × w`) mirrored left–right and/or top–bottom, pixel by pixel.
fn mirrored(planes: &[f32], h: usize, w: usize, left_right: bool, top_bottom: bool) -> Vec<f32> {
    let mut out = vec![0f32; planes.len()];
    for p in 0..planes.len() / (h * w) {
        for y in 0..h {
            for x in 0..w {
                let (sy, sx) = (
                    if top_bottom { h - 1 - y } else { y },
                    if left_right { w - 1 - x } else { x },
                );
                out[p * h * w + y * w + x] = planes[p * h * w + sy * w + sx];
            }
        }
    }
    out
}

#[test]
fn flip_averaging_is_the_mean_of_the_mirrored_passes() {
    let toy = Toy::new(4);
    let (n, h, w) = (2, 12, 20);
    let images: Vec<f32> = (0..n)
        .flat_map(|i| image(h, w + i)[..h * w].to_vec())
        .collect();
    let plain = InferenceOptions::default();
    let as_is = predict_proba_batch(&toy, &images, n, h, w, &plain).unwrap();
    for (mode, copies) in [
        (FlipAverage::Horizontal, vec![(true, false)]),
        (
            FlipAverage::HorizontalVertical,
            vec![(true, false), (false, true), (true, true)],
        ),
    ] {
        // By hand: each mirrored input's probabilities mirrored back, then the mean.
        let mut want = as_is.clone();
        for &(lr, tb) in &copies {
            let input = mirrored(&images, h, w, lr, tb);
            let probs = predict_proba_batch(&toy, &input, n, h, w, &plain).unwrap();
            for (s, p) in want.iter_mut().zip(mirrored(&probs, h, w, lr, tb)) {
                *s += p;
            }
        }
        let k = (copies.len() + 1) as f32;
        want.iter_mut().for_each(|v| *v /= k);
        let opts = InferenceOptions {
            flip_average: mode,
            ..InferenceOptions::default()
        };
        let got = predict_proba_batch(&toy, &images, n, h, w, &opts).unwrap();
        assert!(max_abs_diff(&got, &want) < 1e-6, "{mode:?}");
        // The toy is not itself symmetric: the average differs from one pass.
        assert!(max_abs_diff(&got, &as_is) > 1e-3, "{mode:?}");
        // Probabilities still sum to 1 per pixel.
        for i in 0..n {
            for px in 0..h * w {
                let s: f32 = (0..3).map(|c| got[(i * 3 + c) * h * w + px]).sum();
                assert!((s - 1.0).abs() < 1e-5, "{mode:?}: pixel sum {s}");
            }
        }
        // Equivariance: the prediction of a mirrored image is the mirrored prediction.
        for &(lr, tb) in &copies {
            let of_mirror =
                predict_proba_batch(&toy, &mirrored(&images, h, w, lr, tb), n, h, w, &opts)
                    .unwrap();
            let diff = max_abs_diff(&of_mirror, &mirrored(&got, h, w, lr, tb));
            assert!(diff < 1e-6, "{mode:?} flip ({lr}, {tb}): {diff}");
        }
    }
}

#[test]
fn flip_averaging_applies_to_tiled_inputs_too() {
    let toy = Toy::new(4);
    // Multiples of 4, so that the whole-image pass pads no strip that mirroring would move.
    let (h, w) = (72, 92);
    let img = image(h, w);
    let tiles = InferenceOptions {
        tile_size: 32,
        overlap: 8,
        flip_average: FlipAverage::Horizontal,
        ..InferenceOptions::default()
    };
    let whole = InferenceOptions {
        tile_size: 128,
        flip_average: FlipAverage::Horizontal,
        ..InferenceOptions::default()
    };
    // The toy's receptive field radius (2) is within overlap/4, so tiles give the whole-image
    // result, with flips as without.
    let tiled = predict_proba(&toy, &img, h, w, &tiles).unwrap();
    let one = predict_proba(&toy, &img, h, w, &whole).unwrap();
    assert!(max_abs_diff(&tiled, &one) < 1e-5);
}

/// A 256-class map's class 255 is the ignore label (`IGNORE_LABEL`): its pixels would read
/// as unlabelled downstream (metrics, post-processing). `argmax_classes` took up to 256
/// classes, though no network of this crate has more than 255 and xray-postproc's `ProbMap`
/// refuses a 256th; it now refuses 256 as well, saying why.
#[test]
fn argmax_refuses_a_class_that_would_read_as_the_ignore_label() {
    // One pixel, 256 classes, the last one most likely: its label would be 255.
    let mut p = vec![0.0f32; 256];
    p[255] = 1.0;
    let got = argmax_classes(&p, 256, 1, 1);
    let e = match got {
        Ok(labels) => panic!("256 classes gave labels {labels:?}"),
        Err(e) => e.to_string(),
    };
    assert!(e.contains("1..=255") && e.contains("ignore"), "{e}");
    assert_eq!(argmax_classes(&p[1..], 255, 1, 1).unwrap(), vec![254]);
}
