//! Tests of F(4×4, 3×3) against the direct convolution.

use super::grad_weight::grad_weight3x3_with;
use super::input::{bt6, bt6_portable, deinterleave4};
use super::*;
use crate::kernels::gemm_conv::{conv_forward, pad_planes, Elem, Epilogue};
use crate::kernels::winograd::WeightGradLayout;
use rand::{rngs::StdRng, RngExt, SeedableRng};

fn geom(n: usize, c_in: usize, c_out: usize, h: usize, w: usize) -> Geom {
    Geom {
        n,
        c_in,
        c_out,
        h,
        w,
        k: 3,
        dil: 1,
    }
}

/// The phase split against its definition (`src[4·j + k − shift]`, zero outside),
/// in f32 (the AVX2 blocks where the CPU has them) and f64 (the gather), over widths
/// that leave ragged blocks, both shifts and phases longer than the row needs.
#[test]
fn deinterleave4_matches_its_definition() {
    fn check<T: Elem + std::fmt::Debug>(w: usize, shift: usize, plen: usize) {
        let src: Vec<T> = (0..w).map(|i| T::from_f64(i as f64 + 1.0)).collect();
        let mut d = vec![std::mem::MaybeUninit::new(T::from_f64(-7.0)); M * plen];
        deinterleave4(&src, shift, &mut d, plen);
        for k in 0..M {
            for j in 0..plen {
                let want = (M * j + k)
                    .checked_sub(shift)
                    .and_then(|i| src.get(i).copied())
                    .unwrap_or(T::ZERO);
                // SAFETY: every element was initialised above (and overwritten).
                let got = unsafe { d[k * plen + j].assume_init() };
                assert_eq!(got, want, "w {w}, shift {shift}, plen {plen}, k {k}, j {j}");
            }
        }
    }
    for w in [0usize, 1, 5, 31, 32, 33, 64, 100, 131, 200] {
        for shift in [0usize, 1] {
            let plen = (w + shift).div_ceil(M);
            for extra in [0, 1, 9] {
                check::<f32>(w, shift, plen + extra);
                check::<f64>(w, shift, plen + extra);
            }
        }
    }
}

/// The AVX2 copy of `bt6` (f32, where the CPU has AVX2) gives the portable loop's
/// values bit for bit, at lengths that are and are not multiples of its block.
#[test]
fn bt6_paths_agree() {
    let mut rng = StdRng::seed_from_u64(3);
    for n in [1usize, 7, 8, 9, 15, 16, 17, 51] {
        let d: Vec<Vec<f32>> = (0..6)
            .map(|_| random(&mut rng, n).into_iter().map(|v| v as f32).collect())
            .collect();
        let mut fast = vec![vec![0f32; n]; 6];
        let mut slow = vec![vec![0f32; n]; 6];
        fn outs(o: &mut [Vec<f32>]) -> [&mut [f32]; 6] {
            let mut it = o.iter_mut();
            std::array::from_fn(|_| it.next().map(|v| v.as_mut_slice()).unwrap_or_default())
        }
        let [f0, f1, f2, f3, f4, f5] = outs(&mut fast);
        bt6(
            &d[0], &d[1], &d[2], &d[3], &d[4], &d[5], f0, f1, f2, f3, f4, f5,
        );
        let ins: [&[f32]; 6] = std::array::from_fn(|i| d[i].as_slice());
        bt6_portable(ins, outs(&mut slow));
        assert_eq!(fast, slow, "n = {n}");
    }
}

/// The direct shifted-GEMM convolution, the reference.
fn direct<T: Elem>(
    x: &[T],
    g: &Geom,
    w: &[T],
    w_base: usize,
    strides: (isize, isize, isize),
    bias: Option<&[T]>,
    epi: Epilogue,
) -> Vec<T> {
    conv_forward(
        &pad_planes(x, g, g.c_in),
        g,
        w,
        w_base,
        strides,
        bias,
        epi,
        2,
    )
}

fn random(rng: &mut StdRng, len: usize) -> Vec<f64> {
    (0..len).map(|_| rng.random_range(-1.0..1.0)).collect()
}

fn max_abs(a: &[f64]) -> f64 {
    a.iter().fold(0.0, |m, v| m.max(v.abs()))
}

/// Largest absolute difference of a result (f32 or f64) from its f64 reference.
fn max_err<T: Copy + Into<f64>>(got: &[T], want: &[f64]) -> f64 {
    got.iter()
        .zip(want)
        .fold(0.0, |m, (&a, b)| m.max((a.into() - b).abs()))
}

/// `(n, c_in, c_out, h, w)`: tiny images (1×1, 2×3, 5×7), sides that are not multiples
/// of 4, single rows and columns, batches, and enough tiles for several blocks.
const CASES: &[(usize, usize, usize, usize, usize)] = &[
    (1, 1, 1, 1, 1),
    (2, 3, 2, 2, 3),
    (1, 4, 5, 5, 7),
    (3, 8, 16, 9, 6),
    (1, 5, 3, 12, 1),
    (1, 2, 4, 1, 13),
    (2, 64, 64, 13, 11),
    (1, 17, 9, 4, 8),
    (2, 8, 6, 52, 44),
];

/// f64: F(4×4, 3×3) equals the direct convolution up to f64 rounding, with and without
/// bias and ReLU, for 1 and 2 threads (one block per image or several).
#[test]
fn matches_direct_in_f64() {
    let mut rng = StdRng::seed_from_u64(11);
    for &(n, ci, co, h, w) in CASES {
        let g = geom(n, ci, co, h, w);
        let x = random(&mut rng, n * ci * h * w);
        let wt = random(&mut rng, co * ci * 9);
        let b = random(&mut rng, co);
        let strides = (9 * ci as isize, 9, 1);
        for bias in [None, Some(&b[..])] {
            for epi in [Epilogue::Bias, Epilogue::BiasRelu] {
                let want = direct(&x, &g, &wt, 0, strides, bias, epi);
                for threads in [1, 2] {
                    let got = conv3x3(&x, &g, &wt, 0, strides, bias, epi, threads);
                    assert_eq!(got.len(), want.len());
                    let err = max_err(&got, &want);
                    assert!(
                        err <= 1e-12 * max_abs(&want).max(1.0),
                        "{:?} {epi:?} bias {}: {err}",
                        (n, ci, co, h, w),
                        bias.is_some()
                    );
                }
            }
        }
    }
}

/// Blocks: a multiple of the threads where a few more blocks allow it, tiles spread
/// evenly, every tile covered.
#[test]
fn blocks_are_balanced_between_threads() {
    // 100² (25 × 25 tiles), one image, 2 threads: 5 blocks of 128 become 6 of 105.
    assert_eq!(balanced_blocks(1, 625, 5, 2), (105, 6));
    assert_eq!(balanced_blocks(8, 1024, 8, 2), (128, 8));
    assert_eq!(balanced_blocks(1, 1, 1, 2), (1, 1));
    assert_eq!(balanced_blocks(3, 7, 1, 2), (4, 2));
    for (n, tiles, blocks, threads) in [(1, 625, 5, 3), (2, 49, 4, 2), (1, 2500, 20, 2)] {
        let (tb, b) = balanced_blocks(n, tiles, blocks, threads);
        assert!(
            tb * b >= tiles && tb * (b - 1) < tiles,
            "{tb} × {b} vs {tiles}"
        );
    }
}

/// The weight gradient by one GEMM per tap, the reference.
fn direct_grad_weight<T: Elem>(x: &[T], go: &[T], g: &Geom) -> Vec<T> {
    crate::kernels::gemm_conv::conv_grad_weight(&pad_planes(x, g, g.c_in), go, g, 2)
}

/// f64: the F(3×3, 4×4) weight gradient equals one GEMM per tap up to f64 rounding, for
/// 1, 2 and 3 threads (one block, several blocks, more threads than blocks).
#[test]
fn grad_weight_matches_direct_in_f64() {
    let mut rng = StdRng::seed_from_u64(14);
    for &(n, ci, co, h, w) in CASES {
        let g = geom(n, ci, co, h, w);
        let x = random(&mut rng, n * ci * h * w);
        let go = random(&mut rng, n * co * h * w);
        let want = direct_grad_weight(&x, &go, &g);
        for threads in [1, 2, 3] {
            for layout in [WeightGradLayout::Direct, WeightGradLayout::GradTransposed] {
                let got = grad_weight3x3_with(&x, &go, &g, threads, layout);
                assert_eq!(got.len(), want.len());
                let err = max_err(&got, &want);
                assert!(
                    err <= 1e-12 * max_abs(&want).max(1.0),
                    "{:?} threads {threads} {layout:?}: {err}",
                    (n, ci, co, h, w)
                );
            }
        }
    }
}

/// f32 against the f64 reference on a layer with many tiles and channels (post-ReLU-like
/// inputs, a gradient of mixed sign): within 1e-4 of the largest weight gradient.
#[test]
fn grad_weight_f32_error_is_small() {
    let mut rng = StdRng::seed_from_u64(15);
    let (n, ci, co, h, w) = (2, 64, 32, 37, 42);
    let g = geom(n, ci, co, h, w);
    let x: Vec<f64> = random(&mut rng, n * ci * h * w)
        .into_iter()
        .map(|v| v.max(0.0) * 2.0)
        .collect();
    let go = random(&mut rng, n * co * h * w);
    let want = direct_grad_weight(&x, &go, &g);
    let x32: Vec<f32> = x.iter().map(|&v| v as f32).collect();
    let go32: Vec<f32> = go.iter().map(|&v| v as f32).collect();
    for layout in [WeightGradLayout::Direct, WeightGradLayout::GradTransposed] {
        let got = grad_weight3x3_with(&x32, &go32, &g, 2, layout);
        let err = max_err(&got, &want);
        assert!(
            err <= 1e-4 * max_abs(&want),
            "{layout:?}: {err} vs {}",
            max_abs(&want)
        );
    }
}

/// The weight read through the input gradient's strides (flipped taps, swapped
/// channels), as `conv_grad_input` passes them.
#[test]
fn flipped_transposed_weight_matches_direct() {
    let mut rng = StdRng::seed_from_u64(12);
    for &(n, ci, co, h, w) in &[(2, 3, 5, 6, 7), (1, 9, 4, 11, 5)] {
        // The forward conv is co' = ci → ci' = co; its gradient maps co' channels to ci.
        let g = geom(n, ci, co, h, w);
        let wt = random(&mut rng, ci * co * 9);
        let x = random(&mut rng, n * ci * h * w);
        let strides = (9, (co * 9) as isize, -1);
        let want = direct(&x, &g, &wt, 8, strides, None, Epilogue::Bias);
        let got = conv3x3(&x, &g, &wt, 8, strides, None, Epilogue::Bias, 2);
        let err = max_err(&got, &want);
        assert!(err <= 1e-12 * max_abs(&want).max(1.0), "{err}");
    }
}

/// f32 against the f64 direct convolution on a deep layer (256 channels in, He-scaled
/// weights, non-negative post-ReLU-like inputs): within 1e-4 of the largest output.
#[test]
fn f32_error_is_small_on_a_deep_layer() {
    let mut rng = StdRng::seed_from_u64(13);
    let (n, ci, co, h, w) = (1, 256, 8, 9, 10);
    let g = geom(n, ci, co, h, w);
    let he = (2.0 / (9.0 * ci as f64)).sqrt() * 3f64.sqrt();
    let x: Vec<f64> = random(&mut rng, n * ci * h * w)
        .into_iter()
        .map(|v| v.max(0.0) * 2.0)
        .collect();
    let wt: Vec<f64> = random(&mut rng, co * ci * 9)
        .into_iter()
        .map(|v| v * he)
        .collect();
    let strides = (9 * ci as isize, 9, 1);
    let want = direct(&x, &g, &wt, 0, strides, None, Epilogue::Bias);
    let x32: Vec<f32> = x.iter().map(|&v| v as f32).collect();
    let w32: Vec<f32> = wt.iter().map(|&v| v as f32).collect();
    let got = conv3x3(&x32, &g, &w32, 0, strides, None, Epilogue::Bias, 2);
    let err = max_err(&got, &want);
    assert!(err <= 1e-4 * max_abs(&want), "{err} vs {}", max_abs(&want));
}
