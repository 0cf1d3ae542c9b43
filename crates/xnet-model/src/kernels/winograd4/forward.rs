//! The forward of F(4×4, 3×3): the weight transform's `G` ([`G6`]), the 36 GEMMs over
//! blocks of tiles, and the output transform `Y = Aᵀ M A` with bias and activation fused
//! ([`conv3x3`]).

use std::mem::MaybeUninit;

use gemm::Parallelism;
use rayon::prelude::*;

use crate::kernels::gemm_conv::{Elem, Epilogue, Geom, SendPtr};
use crate::kernels::scratch::Scratch;

use super::input::{pad_phased, transform_input};
use super::{balanced_blocks, runs, TileSpan, A, M, XI};

/// `Aᵀ` applied element-wise along six equal-length rows `m0..m5` into `s0..s3`:
/// `s0 = m0 + m1 + m2 + m3 + m4`, `s1 = m1 − m2 + 2(m3 − m4)`, `s2 = m1 + m2 + 4(m3 + m4)`,
/// `s3 = m1 − m2 + 8(m3 − m4) + m5`
/// (separate slices for the reason given at [`bt6`](super::input::bt6)).
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn at6<T: Elem>(
    m0: &[T],
    m1: &[T],
    m2: &[T],
    m3: &[T],
    m4: &[T],
    m5: &[T],
    s0: &mut [T],
    s1: &mut [T],
    s2: &mut [T],
    s3: &mut [T],
) {
    let n = s0.len();
    let (m0, m1, m2, m3, m4, m5) = (&m0[..n], &m1[..n], &m2[..n], &m3[..n], &m4[..n], &m5[..n]);
    let (s1, s2, s3) = (&mut s1[..n], &mut s2[..n], &mut s3[..n]);
    let (two, four, eight) = (T::from_f64(2.0), T::from_f64(4.0), T::from_f64(8.0));
    for i in 0..n {
        let (p, q) = (m1[i] + m2[i], m1[i] - m2[i]);
        let (r, t) = (m3[i] + m4[i], m3[i] - m4[i]);
        s0[i] = m0[i] + p + r;
        s1[i] = q + two * t;
        s2[i] = p + four * r;
        s3[i] = q + eight * t + m5[i];
    }
}

/// `A` over each tile's six columns `q0..q5` (one element per tile), plus the bias and
/// the activation, interleaved into `row` (four output pixels per tile, every element
/// written).
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn a6_row<T: Elem>(
    q0: &[T],
    q1: &[T],
    q2: &[T],
    q3: &[T],
    q4: &[T],
    q5: &[T],
    bias: T,
    epilogue: Epilogue,
    row: &mut [std::mem::MaybeUninit<T>],
) {
    let n = row.len() / M;
    let (q0, q1, q2, q3, q4, q5) = (&q0[..n], &q1[..n], &q2[..n], &q3[..n], &q4[..n], &q5[..n]);
    let (two, four, eight) = (T::from_f64(2.0), T::from_f64(4.0), T::from_f64(8.0));
    let relu = |v: T| if v > T::ZERO { v } else { T::ZERO };
    for (i, y4) in row.chunks_exact_mut(M).enumerate() {
        let (p, d) = (q1[i] + q2[i], q1[i] - q2[i]);
        let (r, t) = (q3[i] + q4[i], q3[i] - q4[i]);
        let y = [
            q0[i] + p + r + bias,
            d + two * t + bias,
            p + four * r + bias,
            d + eight * t + q5[i] + bias,
        ];
        let y = match epilogue {
            Epilogue::Bias => y,
            Epilogue::BiasRelu => y.map(relu),
        };
        for (d, v) in y4.iter_mut().zip(y) {
            d.write(v);
        }
    }
}

/// [`a6_row`] over the tiles `r` of one output row, whose six column runs of `tw` tiles
/// lie one after the other in `sr`. A function, not a closure: a closure is compiled out
/// of line without the caller's AVX2.
#[inline(always)]
fn a6_tiles<T: Elem>(
    sr: &[T],
    tw: usize,
    r: std::ops::Range<usize>,
    (bias, epilogue): (T, Epilogue),
    dst: &mut [std::mem::MaybeUninit<T>],
) {
    let q = |j: usize| &sr[j * tw + r.start..j * tw + r.end];
    a6_row(q(0), q(1), q(2), q(3), q(4), q(5), bias, epilogue, dst);
}

/// `G` applied element-wise to three equal-length rows `a, b, d` (a kernel column or a
/// row of `G k`) into `o0..o5`: `a/4`, `−(a + b + d)/6`, `−(a − b + d)/6`,
/// `a/24 + b/12 + d/6`, `a/24 − b/12 + d/6`, `d` (separate slices for the reason given at
/// [`bt6`](super::input::bt6)).
#[inline(always)]
fn g6<T: Elem>(a: &[T], b: &[T], d: &[T], o: [&mut [MaybeUninit<T>]; 6]) {
    let [o0, o1, o2, o3, o4, o5] = o;
    let n = o0.len();
    let (a, b, d) = (&a[..n], &b[..n], &d[..n]);
    let (o1, o2, o3, o4, o5) = (
        &mut o1[..n],
        &mut o2[..n],
        &mut o3[..n],
        &mut o4[..n],
        &mut o5[..n],
    );
    let quarter = T::from_f64(0.25);
    let sixth = T::from_f64(1.0 / 6.0);
    let twelfth = T::from_f64(1.0 / 12.0);
    let twenty_fourth = T::from_f64(1.0 / 24.0);
    for i in 0..n {
        let (ad, b) = (a[i] + d[i], b[i]);
        let (e, f) = (twenty_fourth * a[i] + sixth * d[i], twelfth * b);
        o0[i].write(quarter * a[i]);
        o1[i].write(T::ZERO - sixth * (ad + b));
        o2[i].write(T::ZERO - sixth * (ad - b));
        o3[i].write(e + f);
        o4[i].write(e - f);
        o5[i].write(d[i]);
    }
}

/// F(4×4, 3×3)'s `G` ([`g6`]).
pub(crate) struct G6;

impl<T: Elem> crate::kernels::winograd::KernelRows<T, A> for G6 {
    #[inline(always)]
    fn apply(a: &[T], b: &[T], d: &[T], o: [&mut [MaybeUninit<T>]; A]) {
        g6(a, b, d, o)
    }
}

/// `act(conv3x3(x, weight) + bias)` over an unpadded `[n, c_in, h, w]` input by
/// F(4×4, 3×3); the weight is read as in [`crate::kernels::gemm_conv::conv_forward`]
/// (base and strides), tap = `3·row + col`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn conv3x3<T: Elem>(
    x: &[T],
    g: &Geom,
    weight: &[T],
    w_base: usize,
    w_strides: (isize, isize, isize),
    bias: Option<&[T]>,
    epilogue: Epilogue,
    threads: usize,
) -> Vec<T> {
    let (n, ci, co, h, w) = (g.n, g.c_in, g.c_out, g.h, g.w);
    let (th, tw) = (h.div_ceil(M), w.div_ceil(M));
    let plane = (M * th + 2) * M * (tw + 1);
    let xp = pad_phased(x, n * ci, h, w, th, tw);
    let u = crate::kernels::winograd::transform_weight(
        crate::kernels::winograd::TileSize::Four,
        (ci, co),
        weight,
        w_base,
        w_strides,
    );

    // Written once below (every row y < h of every channel), never cleared.
    let mut out: Vec<T> = Vec::with_capacity(n * co * h * w);
    let outp = SendPtr(out.as_mut_ptr());
    // Blocks of `tb` consecutive tiles of one image, a multiple of 16 (the GEMM
    // micro-kernel's rows), large enough that repacking U per GEMM is cheap next to the
    // products, and at least two blocks per thread where there are enough tiles. The blocks
    // set the transforms' rounding, so they are made for the nominal thread count.
    let nominal = crate::kernels::gemm_conv::NOMINAL_THREADS;
    let tiles = th * tw;
    let target = 128;
    let per_task = (n * tiles).div_ceil(2 * nominal).div_ceil(16) * 16;
    let tb_max = target.min(per_task).max(16).min(tiles);
    let (tb_max, blocks) = balanced_blocks(n, tiles, tiles.div_ceil(tb_max), nominal);
    let gemm_threads = if n * blocks < threads {
        Parallelism::Rayon(threads)
    } else {
        Parallelism::None
    };
    // Per-job scratch (transformed input, GEMM results) from the pool, reused across the
    // tasks of a job: every element is overwritten before it is read.
    let scratch = || {
        (
            Scratch::<T>::take(XI * ci * tb_max),
            Scratch::<T>::take(XI * co * tb_max),
        )
    };
    (0..n * blocks)
        .into_par_iter()
        .for_each_init(scratch, |(v, mm), task| {
            let (b, span) = TileSpan::of_task(task, (blocks, tb_max, tiles), tw, plane);
            let tb = span.count();
            transform_input(&xp, b, ci, span, v);
            // M_ξ [tiles × c_out] = V_ξ [tiles × c_in] · U_ξ [c_in × c_out], layout [36][c_out][tiles].
            crate::kernels::winograd::component_gemms(XI, tb, ci, co, v, &u, mm, gemm_threads);
            // Y = Aᵀ M A with Aᵀ = [[1, 1, 1, 1, 1, 0], [0, 1, −1, 2, −2, 0],
            // [0, 1, 1, 4, 4, 0], [0, 1, −1, 8, −8, 1]], then bias and activation, one
            // tile row of the span at a time: Aᵀ over the ξ rows (vectorised along the
            // tiles) into four rows of six runs, then A over each tile's columns into an
            // output row, cropped to the image and to the span's columns.
            output_transform(mm, span, co, tb, h, w, b, bias, epilogue, outp);
        });
    // SAFETY: the blocks cover every tile of every image, and each writes the output
    // pixels of its tiles inside the image, in every channel: all n·co·h·w elements.
    unsafe { out.set_len(n * co * h * w) };
    out
}

crate::kernels::simd::avx2_dispatch!(fn output_transform<T: Elem>(
    mm: &[T],
    span: TileSpan,
    co: usize,
    tb: usize,
    h: usize,
    w: usize,
    b: usize,
    bias: Option<&[T]>,
    epilogue: Epilogue,
    outp: SendPtr<T>,
) => output_transform_impl);

/// `Y = Aᵀ M A` of the GEMM results `mm` (`[36][c_out][tiles]`) of `span` of image `b`,
/// plus bias and activation, written into the output rows of its tiles through `outp`
/// (`[n, c_out, h, w]`): Aᵀ over the ξ rows of a tile row (vectorised along the tiles)
/// into four rows of six runs, then A over each tile's columns into an output row,
/// cropped to the image and to the span's columns.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn output_transform_impl<T: Elem>(
    mm: &[T],
    span: TileSpan,
    co: usize,
    tb: usize,
    h: usize,
    w: usize,
    b: usize,
    bias: Option<&[T]>,
    epilogue: Epilogue,
    outp: SendPtr<T>,
) {
    let tw = span.tw;
    let mut s = vec![T::ZERO; M * A * tw];
    // The last tile of a row may stick out of the image: its four pixels go through here.
    let mut edge = [std::mem::MaybeUninit::new(T::ZERO); M];
    for o in 0..co {
        let bias_o = bias.map_or(T::ZERO, |bb| bb[o]);
        for (ty, txs, t0) in span.rows() {
            let len = txs.len();
            let m = |xi: usize| &mm[(xi * co + o) * tb + t0..(xi * co + o) * tb + t0 + len];
            for j in 0..A {
                let (m0, m1, m2, m3, m4, m5) = (
                    m(j),
                    m(A + j),
                    m(2 * A + j),
                    m(3 * A + j),
                    m(4 * A + j),
                    m(5 * A + j),
                );
                let at = |k: usize| (k * A + j) * tw;
                let [s0, s1, s2, s3] = runs(&mut s, [at(0), at(1), at(2), at(3)], len);
                at6(m0, m1, m2, m3, m4, m5, s0, s1, s2, s3);
            }
            let x0 = M * txs.start;
            // Tiles wholly inside the image are written in place; a last partial one
            // through `edge`, cropped.
            let whole = ((w - x0) / M).min(len);
            for dy in 0..M {
                let y = M * ty + dy;
                if y >= h {
                    break;
                }
                let sr = &s[dy * A * tw..(dy + 1) * A * tw];
                let out_row = ((b * co + o) * h + y) * w + x0;
                // SAFETY: task (b, blk) alone writes columns x0..x0 + 4·whole ≤ w of this
                // output row of image b, channel o; inside the allocation.
                let dst = unsafe {
                    std::slice::from_raw_parts_mut(
                        outp.get().add(out_row).cast::<std::mem::MaybeUninit<T>>(),
                        M * whole,
                    )
                };
                a6_tiles(sr, tw, 0..whole, (bias_o, epilogue), dst);
                if whole < len {
                    a6_tiles(sr, tw, whole..whole + 1, (bias_o, epilogue), &mut edge);
                    let keep = w - (x0 + M * whole);
                    // SAFETY: the partial tile's pixels x0 + 4·whole .. w of the same row,
                    // written by this task alone; `keep < 4` elements of `edge`.
                    unsafe {
                        std::ptr::copy_nonoverlapping(
                            edge.as_ptr().cast::<T>(),
                            outp.get().add(out_row + M * whole),
                            keep,
                        )
                    };
                }
            }
        }
    }
}
