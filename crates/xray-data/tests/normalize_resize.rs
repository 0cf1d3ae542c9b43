//! Normalisation and resizing against closed forms and PyTorch/NumPy golden values
//! (produced by `tests/golden/normalize_resize.py`).

use image::Luma;
use xray_data::normalize::{
    log_transform, min_max, normalize, percentiles, value_range, Method, NormalizeConfig,
};
use xray_data::resize::{resize, resize_mask, resize_probabilities, Filter};
use xray_data::{Mask, Radiograph};

// Golden values: PyTorch 2.x / NumPy, see tests/golden/normalize_resize.py.
const BILINEAR_7X5_TO_3X4: &[f32] = &[
    5.083333, 9.625, 5.458332, 4.833333, 2.5, 4.750001, 2.75, 5.0, 7.250001, 5.25, 7.5, 9.750001,
];
const BILINEAR_7X5_TO_11X9: &[f32] = &[
    0.0, 3.295455, 6.909091, 4.522727, 6.136363, 10.75, 8.363637, 5.977274, 3.590909, 7.204545,
    10.5, 0.6666667, 3.962121, 7.575758, 5.189394, 5.469697, 7.75, 7.69697, 6.64394, 4.257576,
    5.871212, 7.5, 1.777778, 5.073232, 8.686869, 6.300505, 4.358586, 2.749999, 6.585857, 7.755052,
    5.368687, 3.64899, 2.499999, 2.888889, 3.962121, 5.353535, 6.078283, 5.025253, 2.638889,
    7.252524, 8.866163, 6.479798, 4.093435, 2.388889, 4.0, 2.295455, 0.9090903, 5.522727, 6.136364,
    3.75, 8.363635, 9.977274, 7.590909, 5.204545, 3.5, 5.111112, 3.406566, 2.020202, 6.633839,
    7.247476, 4.861112, 5.585857, 6.643937, 8.146464, 6.315657, 4.611112, 6.222222, 4.517676,
    3.020201, 6.856061, 7.580808, 5.972222, 3.585859, 4.199493, 8.813131, 7.426768, 5.722222,
    7.333334, 5.628788, 3.575758, 3.522725, 4.803028, 7.083334, 4.696971, 5.310605, 9.924244,
    8.53788, 6.833334, 8.0, 6.295455, 3.909091, 1.522727, 3.136363, 7.75, 5.363636, 5.977271,
    10.59091, 9.204545, 7.5,
];
const AREA_8X6_TO_4X3: &[f32] = &[
    4.625, 5.375, 6.125, 6.875, 3.125, 6.625, 7.375, 5.375, 7.125, 5.125, 5.875, 6.625,
];
const NEAREST_7X5_TO_4X3: &[f32] = &[0.0, 1.0, 2.0, 0.0, 1.0, 2.0, 0.0, 1.0, 2.0, 0.0, 1.0, 2.0];
const NEAREST_7X5_TO_12X8: &[f32] = &[
    0.0, 0.0, 2.0, 1.0, 1.0, 0.0, 0.0, 2.0, 2.0, 1.0, 0.0, 0.0, 0.0, 0.0, 2.0, 1.0, 1.0, 0.0, 0.0,
    2.0, 2.0, 1.0, 0.0, 0.0, 2.0, 2.0, 1.0, 0.0, 0.0, 2.0, 2.0, 1.0, 1.0, 0.0, 2.0, 2.0, 1.0, 1.0,
    0.0, 2.0, 2.0, 1.0, 1.0, 0.0, 0.0, 2.0, 1.0, 1.0, 1.0, 1.0, 0.0, 2.0, 2.0, 1.0, 1.0, 0.0, 0.0,
    2.0, 1.0, 1.0, 0.0, 0.0, 2.0, 1.0, 1.0, 0.0, 0.0, 2.0, 2.0, 1.0, 0.0, 0.0, 2.0, 2.0, 1.0, 0.0,
    0.0, 2.0, 2.0, 1.0, 1.0, 0.0, 2.0, 2.0, 2.0, 2.0, 1.0, 0.0, 0.0, 2.0, 2.0, 1.0, 1.0, 0.0, 2.0,
    2.0,
];
const PERCENTILE_7X5_2_98: &[f32] = &[0.17, 11.08];
const PERCENTILE_7X5_10_50: &[f32] = &[1.6, 5.5];

/// The input of the golden script: `((7x + 13y) mod 11) + x / 4`.
fn img(w: u32, h: u32) -> Radiograph {
    Radiograph::from_fn(w, h, |x, y| {
        Luma([((x * 7 + y * 13) % 11) as f32 + 0.25 * x as f32])
    })
}

fn assert_close(got: &[f32], want: &[f32], tol: f32) {
    assert_eq!(got.len(), want.len());
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!((g - w).abs() <= tol, "index {i}: got {g}, want {w}");
    }
}

#[test]
fn bilinear_matches_pytorch() {
    let out = resize(&img(7, 5), 3, 4, Filter::Bilinear).unwrap();
    assert_eq!(out.dimensions(), (3, 4));
    assert_close(out.as_raw(), BILINEAR_7X5_TO_3X4, 1e-4);
    let out = resize(&img(7, 5), 11, 9, Filter::Bilinear).unwrap();
    assert_close(out.as_raw(), BILINEAR_7X5_TO_11X9, 1e-4);
}

#[test]
fn area_matches_pytorch_for_integer_factors() {
    let out = resize(&img(8, 6), 4, 3, Filter::Area).unwrap();
    assert_close(out.as_raw(), AREA_8X6_TO_4X3, 1e-5);
}

#[test]
fn area_fractional_overlap_closed_form() {
    // 3 → 2 pixels: each output covers 1.5 inputs.
    let src = Radiograph::from_raw(3, 1, vec![3.0, 6.0, 9.0]).unwrap();
    let out = resize(&src, 2, 1, Filter::Area).unwrap();
    assert_close(
        out.as_raw(),
        &[(3.0 + 0.5 * 6.0) / 1.5, (0.5 * 6.0 + 9.0) / 1.5],
        1e-6,
    );
    // The mean is preserved by area averaging for any factor.
    let src = img(37, 23);
    let mean =
        |r: &Radiograph| r.as_raw().iter().map(|&v| f64::from(v)).sum::<f64>() / r.len() as f64;
    for (w, h) in [(5, 3), (10, 7), (37, 1), (1, 1)] {
        let out = resize(&src, w, h, Filter::Area).unwrap();
        assert!((mean(&out) - mean(&src)).abs() < 1e-4, "{w}x{h}");
    }
    // A constant stays constant with either filter.
    let c = Radiograph::from_pixel(13, 9, Luma([7.5]));
    for f in [Filter::Area, Filter::Bilinear] {
        for (w, h) in [(4, 4), (20, 30)] {
            let out = resize(&c, w, h, f).unwrap();
            assert!(
                out.as_raw().iter().all(|&v| (v - 7.5).abs() < 1e-5),
                "{f:?} {w}x{h}"
            );
        }
    }
}

#[test]
fn values_near_f32_max_resize_to_finite_correct_means() {
    // Area weights such as 0.1 round up in f32, so summing ten tenths of f32::MAX in f32
    // overflowed to infinity although every mean is finite.
    let m = f32::MAX;
    for v in [m, -m, 3.4e38, -3.4e38] {
        let c = Radiograph::from_pixel(30, 20, Luma([v]));
        for (f, w, h) in [
            (Filter::Area, 3, 2),
            (Filter::Area, 1, 1),
            (Filter::Area, 7, 3),
            (Filter::Bilinear, 7, 3),
            (Filter::Bilinear, 61, 45),
        ] {
            let out = resize(&c, w, h, f).unwrap();
            assert!(
                out.as_raw()
                    .iter()
                    .all(|&o| o.is_finite() && (o - v).abs() <= 1e-6 * v.abs()),
                "{v:e} {f:?} {w}x{h}: {:?}",
                &out.as_raw()[..3]
            );
        }
    }
    // Mixed values near ±f32::MAX, against the block means in f64: 10 × 10 blocks, the first
    // all f32::MAX, the second all −f32::MAX.
    let src = Radiograph::from_fn(30, 20, |x, y| {
        let (bx, by) = (x / 10, y / 10);
        let v = match (bx, by) {
            (0, 0) => m,
            (1, 0) => -m,
            _ => m * (1.0 - 0.05 * ((x * 7 + y * 13) % 11) as f32),
        };
        Luma([if (bx + by) % 2 == 1 && (x + y) % 3 == 0 {
            -v
        } else {
            v
        }])
    });
    let out = resize(&src, 3, 2, Filter::Area).unwrap();
    for by in 0..2 {
        for bx in 0..3 {
            let mut sum = 0.0f64;
            for y in by * 10..by * 10 + 10 {
                for x in bx * 10..bx * 10 + 10 {
                    sum += f64::from(src.get_pixel(x, y).0[0]);
                }
            }
            let want = sum / 100.0;
            let got = out.get_pixel(bx, by).0[0];
            assert!(
                got.is_finite() && (f64::from(got) - want).abs() <= 1e-6 * f64::from(m),
                "block ({bx}, {by}): got {got:e}, want {want:e}"
            );
        }
    }
}

#[test]
fn mask_nearest_matches_pytorch_nearest_exact() {
    let m = Mask::from_fn(7, 5, |x, y| Luma([(((x + 7 * y) * 5) % 3) as u8]));
    let out = resize_mask(&m, 4, 3).unwrap();
    let got: Vec<f32> = out.as_raw().iter().map(|&v| f32::from(v)).collect();
    assert_close(&got, NEAREST_7X5_TO_4X3, 0.0);
    let out = resize_mask(&m, 12, 8).unwrap();
    let got: Vec<f32> = out.as_raw().iter().map(|&v| f32::from(v)).collect();
    assert_close(&got, NEAREST_7X5_TO_12X8, 0.0);
    // Only labels present in the input appear in the output.
    let m = Mask::from_fn(9, 9, |x, _| Luma([if x < 4 { 0 } else { 255 }]));
    let out = resize_mask(&m, 5, 2).unwrap();
    assert!(out.as_raw().iter().all(|&v| v == 0 || v == 255));
}

#[test]
fn zero_sizes_are_errors() {
    assert!(resize(&img(3, 3), 0, 2, Filter::Area).is_err());
    assert!(resize(&Radiograph::new(0, 0), 2, 2, Filter::Bilinear).is_err());
    assert!(resize_mask(&Mask::new(2, 2), 2, 0).is_err());
}

/// Outputs above the pixel limit are errors, not a 40 GB allocation that aborts.
#[test]
fn oversized_outputs_are_errors() {
    let small = img(2, 2);
    for f in [Filter::Area, Filter::Bilinear] {
        let err = resize(&small, 100_000, 100_000, f).unwrap_err();
        assert!(err.to_string().contains("exceed the limit"), "{err}");
        // The output is small but the intermediate plane (input height × output width) is
        // not.
        let tall = Radiograph::new(1, 20_000);
        let err = resize(&tall, 20_000, 1, f).unwrap_err();
        assert!(err.to_string().contains("intermediate"), "{err}");
    }
    let err = resize_mask(&Mask::new(2, 2), 100_000, 100_000).unwrap_err();
    assert!(err.to_string().contains("exceed the limit"), "{err}");
    assert!(resize_mask(&Mask::new(2, 2), u32::MAX, u32::MAX).is_err());
    // One pixel over the limit is refused (the limit itself would allocate 100 MB here).
    let limit = xray_data::io::DEFAULT_MAX_PIXELS as u32;
    assert!(resize_mask(&Mask::new(2, 1), limit + 1, 1).is_err());
    assert!(resize(&small, limit / 2 + 1, 2, Filter::Area).is_err());
    // An intermediate plane as large as the input is allowed whatever its size.
    let tall = Radiograph::new(1, 300);
    assert_eq!(
        resize(&tall, 1, 7, Filter::Area).unwrap().dimensions(),
        (1, 7)
    );
}

#[test]
fn min_max_and_constant_images() {
    let r = Radiograph::from_raw(4, 1, vec![-2.0, 0.0, 2.0, 6.0]).unwrap();
    assert_eq!(min_max(&r).as_raw(), &vec![0.0, 0.25, 0.5, 1.0]);
    let c = Radiograph::from_pixel(3, 3, Luma([42.0]));
    assert!(min_max(&c).as_raw().iter().all(|&v| v == 0.0));
    for cfg in min_max_and_percentile_with_and_without_log() {
        let out = normalize(&c, &cfg).unwrap();
        assert!(out.as_raw().iter().all(|&v| v == 0.0), "{cfg:?}");
    }
}

/// Min-max and the 1–99 percentile window, each with and without the log transform.
fn min_max_and_percentile_with_and_without_log() -> Vec<NormalizeConfig> {
    let percentile = Method::Percentile {
        low: 1.0,
        high: 99.0,
    };
    [Method::MinMax, percentile]
        .into_iter()
        .flat_map(|method| [false, true].map(|log| NormalizeConfig { method, log }))
        .collect()
}

#[test]
fn percentiles_match_numpy_and_window_clamps() {
    let src = img(7, 5);
    let (lo, hi) = percentiles(src.as_raw(), 2.0, 98.0);
    assert_close(&[lo, hi], PERCENTILE_7X5_2_98, 1e-5);
    let (lo, hi) = percentiles(src.as_raw(), 10.0, 50.0);
    assert_close(&[lo, hi], PERCENTILE_7X5_10_50, 1e-5);
    let cfg = NormalizeConfig {
        method: Method::Percentile {
            low: 10.0,
            high: 50.0,
        },
        log: false,
    };
    let out = normalize(&src, &cfg).unwrap();
    let (lo, hi) = (PERCENTILE_7X5_10_50[0], PERCENTILE_7X5_10_50[1]);
    for (o, s) in out.as_raw().iter().zip(src.as_raw()) {
        let want = ((s - lo) / (hi - lo)).clamp(0.0, 1.0);
        assert!((o - want).abs() < 1e-5);
    }
    for (low, high) in [(-1.0, 50.0), (50.0, 50.0), (10.0, 100.5), (f32::NAN, 50.0)] {
        let cfg = NormalizeConfig {
            method: Method::Percentile { low, high },
            log: false,
        };
        assert!(normalize(&src, &cfg).is_err(), "{low} {high}");
    }
}

#[test]
fn log_transform_closed_form() {
    let r = Radiograph::from_raw(3, 1, vec![10.0, 11.0, 10.0 + std::f32::consts::E - 1.0]).unwrap();
    let out = log_transform(&r);
    assert_close(out.as_raw(), &[0.0, std::f32::consts::LN_2, 1.0], 1e-6);
    let cfg = NormalizeConfig {
        method: Method::MinMax,
        log: true,
    };
    let n = normalize(&r, &cfg).unwrap();
    assert_close(n.as_raw(), &[0.0, std::f32::consts::LN_2, 1.0], 1e-6);
}

#[test]
fn subnormal_and_huge_ranges_normalise_without_nan_or_blanking() {
    // Values around 1e-40 (subnormal f32): the inverse of their range overflows f32, which
    // once gave NaN (0 · ∞) at the minimum.
    let tiny: Vec<f32> = (0..6).map(|k| 1e-40 + k as f32 * 2e-41).collect();
    let r = Radiograph::from_raw(6, 1, tiny.clone()).unwrap();
    let out = min_max(&r);
    let (lo, hi) = (f64::from(tiny[0]), f64::from(tiny[5]));
    for (o, v) in out.as_raw().iter().zip(&tiny) {
        let want = ((f64::from(*v) - lo) / (hi - lo)) as f32;
        assert!((o - want).abs() <= 1e-6, "{o} vs {want}");
    }
    assert_eq!((out.as_raw()[0], out.as_raw()[5]), (0.0, 1.0));
    // A range wider than f32::MAX: its width overflowed to infinity and blanked the image.
    let wide = Radiograph::from_raw(3, 1, vec![-3.0e38, 0.0, 3.0e38]).unwrap();
    assert_eq!(min_max(&wide).as_raw(), &vec![0.0, 0.5, 1.0]);
    for method in [
        Method::MinMax,
        Method::Percentile {
            low: 10.0,
            high: 90.0,
        },
    ] {
        for log in [false, true] {
            for img in [&r, &wide] {
                let out = normalize(img, &NormalizeConfig { method, log }).unwrap();
                assert!(
                    out.as_raw().iter().all(|v| (0.0..=1.0).contains(v)),
                    "{method:?} log={log}: {:?}",
                    out.as_raw()
                );
                assert!(
                    out.as_raw().iter().any(|&v| v > 0.0),
                    "{method:?} log={log}: blanked"
                );
            }
        }
    }
    // Percentiles between values more than f32::MAX apart stay finite.
    let (lo, hi) = percentiles(&[-3.0e38, 3.0e38], 25.0, 50.0);
    assert_eq!((lo, hi), (-1.5e38, 0.0));
    assert!(log_transform(&wide).as_raw().iter().all(|v| v.is_finite()));
}

#[test]
fn ordinary_images_normalise_exactly_as_in_f32() {
    // The f64 fallback must not move ordinary results: bit-identical to the f32 formula.
    for (w, h, scale, offset) in [(37, 23, 1.0, 0.0), (50, 40, 0.37, 12.5), (64, 3, 1e-3, 5.0)] {
        let img = Radiograph::from_fn(w, h, |x, y| {
            Luma([(((x * 7919 + y * 104_729) % 65_521) as f32) * scale + offset])
        });
        let (lo, hi) = value_range(&img).unwrap();
        let inv = 1.0 / (hi - lo);
        let want: Vec<f32> = img
            .as_raw()
            .iter()
            .map(|v| ((v - lo) * inv).clamp(0.0, 1.0))
            .collect();
        assert_eq!(min_max(&img).as_raw(), &want);
    }
    let constant = Radiograph::from_pixel(4, 4, Luma([3.5]));
    assert_eq!(value_range(&constant), Some((3.5, 3.5)));
    assert_eq!(value_range(&Radiograph::new(0, 0)), None);
}

/// The loaders refuse NaN and ±∞ pixels, and so does `normalize`, naming the first one at
/// its (x, y) in the image it was given, for every method. Before, min-max skipped them when
/// finding the range and passed NaN through: finite pixels all equal plus one NaN came out
/// as all zeros with no error.
#[test]
fn non_finite_pixels_are_refused_at_their_position() {
    for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
        for base in [|_: usize| 5.0f32, |i: usize| i as f32] {
            // 4 × 3; the first bad pixel is (x=1, y=2), a later one (x=3, y=2).
            let mut data: Vec<f32> = (0..12).map(base).collect();
            data[2 * 4 + 1] = bad;
            data[2 * 4 + 3] = bad;
            let img = Radiograph::from_raw(4, 3, data).unwrap();
            for cfg in min_max_and_percentile_with_and_without_log() {
                let e = normalize(&img, &cfg).unwrap_err();
                assert!(
                    matches!(e, xray_data::DataError::NonFinite { x: 1, y: 2, .. }),
                    "{bad} {cfg:?}: {e:?}"
                );
                assert!(e.to_string().contains("(x=1, y=2)"), "{e}");
            }
        }
    }
}

/// `value_range` runs sixteen lanes; it must give what a plain fold over the finite values
/// gives for every length (the lanes' remainder included), wherever NaN and ±∞ fall, and
/// `None` when nothing is finite.
#[test]
fn value_range_matches_a_plain_fold_over_the_finite_values() {
    let plain = |v: &[f32]| {
        let (lo, hi) = v
            .iter()
            .filter(|x| x.is_finite())
            .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &x| {
                (lo.min(x), hi.max(x))
            });
        (lo <= hi).then_some((lo, hi))
    };
    // A fixed pseudo-random sequence (an LCG), so the test needs no generator.
    let mut state = 12345u32;
    let mut next = move || {
        state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        state
    };
    for len in 1..70u32 {
        for round in 0..6 {
            let values: Vec<f32> = (0..len)
                .map(|_| match next() % 23 {
                    0 if round > 0 => f32::NAN,
                    1 if round > 1 => f32::INFINITY,
                    2 if round > 1 => f32::NEG_INFINITY,
                    3 => f32::MAX,
                    4 => -f32::MAX,
                    5 => f32::MIN_POSITIVE / 4.0, // subnormal
                    r => (next() % 20_000) as f32 / 7.0 - 1000.0 + r as f32,
                })
                .collect();
            let img = Radiograph::from_raw(len, 1, values.clone()).unwrap();
            assert_eq!(value_range(&img), plain(&values), "{values:?}");
        }
        for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
            let img = Radiograph::from_raw(len, 1, vec![bad; len as usize]).unwrap();
            assert_eq!(value_range(&img), None, "{len} × {bad}");
        }
        // One finite value among non-finite ones, in every position of a lane.
        let mut values = vec![f32::NAN; len as usize];
        values[(len as usize - 1) / 2] = -3.25;
        let img = Radiograph::from_raw(len, 1, values).unwrap();
        assert_eq!(value_range(&img), Some((-3.25, -3.25)));
    }
}

/// Probabilities at a network's input size brought back to the radiograph's: each class
/// plane resized bilinearly, then every pixel renormalised. A crate using the libraries
/// alone had to write this loop itself (it lived only in the root package's `prepare`).
#[test]
fn probabilities_are_resized_plane_by_plane_and_renormalised() {
    let (classes, fw, fh, tw, th) = (3usize, 5u32, 4u32, 13u32, 7u32);
    let plane = (fw * fh) as usize;
    // A softmax-like map: class k's weight varies over the image, each pixel sums to 1.
    let mut probs = vec![0f32; classes * plane];
    for i in 0..plane {
        let raw: Vec<f32> = (0..classes)
            .map(|k| 1.0 + ((i * (k + 2)) % 7) as f32)
            .collect();
        let sum: f32 = raw.iter().sum();
        for k in 0..classes {
            probs[k * plane + i] = raw[k] / sum;
        }
    }
    let out = resize_probabilities(&probs, classes, (fw, fh), (tw, th)).unwrap();
    let out_plane = (tw * th) as usize;
    assert_eq!(out.len(), classes * out_plane);
    // Each plane as `resize` gives it, divided by the pixel's sum over the planes.
    let planes: Vec<Vec<f32>> = (0..classes)
        .map(|k| {
            let p = Radiograph::from_raw(fw, fh, probs[k * plane..(k + 1) * plane].to_vec());
            resize(&p.unwrap(), tw, th, Filter::Bilinear)
                .unwrap()
                .into_raw()
        })
        .collect();
    for i in 0..out_plane {
        let sum: f32 = planes.iter().map(|p| p[i]).sum();
        for k in 0..classes {
            assert_eq!(
                out[k * out_plane + i],
                planes[k][i] / sum,
                "class {k}, pixel {i}"
            );
        }
        let total: f32 = (0..classes).map(|k| out[k * out_plane + i]).sum();
        assert!((total - 1.0).abs() < 1e-6, "pixel {i} sums to {total}");
    }
    // The same size gives the map back; bad shapes are errors naming the sizes.
    assert_eq!(
        resize_probabilities(&probs, classes, (fw, fh), (fw, fh)).unwrap(),
        probs
    );
    let e = resize_probabilities(&probs, 2, (fw, fh), (tw, th)).unwrap_err();
    assert!(e.to_string().contains("expected 2 classes x 5 x 4"), "{e}");
    assert!(resize_probabilities(&probs, 0, (fw, fh), (tw, th)).is_err());
    assert!(resize_probabilities(&probs, classes, (fw, fh), (0, th)).is_err());
    assert!(resize_probabilities(&[], 1, (0, 0), (2, 2)).is_err());
}
