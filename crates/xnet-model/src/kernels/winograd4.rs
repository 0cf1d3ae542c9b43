//! Winograd F(4×4, 3×3) for stride-1, pad-1, 3×3 convolutions: the forward (and thereby
//! the input gradient, the same convolution with the weight flipped and transposed), and
//! by transposition of the same matrices the weight gradient ([`grad_weight3x3`]).
//!
//! Each 4×4 output tile comes from a 6×6 input tile: `Y = Aᵀ [(G g Gᵀ) ⊙ (Bᵀ d B)] A` with
//! the Lavin & Gray matrices for the points 0, ±1, ±2, ∞. Summed over input channels the
//! element-wise products are 36 GEMMs of `[tiles × c_in] · [c_in × c_out]`: 36 multiplies
//! per 16 outputs instead of 144, 4× fewer than the direct convolution (F(2×2, 3×3) in
//! [`super::winograd`] saves 2.25×). The price is rounding: the transforms scale by up to
//! 8 (output) and 5 (input) and the weight transform by 1/6 and 1/24, so the error is
//! 10–20× F(2×2, 3×3)'s. Measured in f32 against the direct convolution in f64 on every
//! XNet layer shape (He-initialised weights, `max(N(0, 1), 0)` inputs, up to 512 channels
//! in): at most 2e-5 of the largest output (8e-5 absolute), against 9e-7 for F(2×2, 3×3);
//! whole-XNet logits stay within 1e-4 of the stock candle path. No layer needed excluding.
//!
//! Structure and speed tricks as in [`super::winograd`], plus two of its own:
//! - the padded input is written once, each row *phase-major* ([`pad_phased`]), so that
//!   the six stride-4 columns of the input transform are contiguous runs;
//! - the transforms are separable and vectorised along rows (input: Bᵀ over six padded
//!   rows, then B per tile into six contiguous runs; output: Aᵀ over the ξ rows along the
//!   tiles, then A per tile into an output row), each loop a function of separate slices
//!   ([`bt6`], [`at6`], [`g6`]) so that it vectorises without run-time alias checks;
//! - tiles go in blocks of 128 consecutive tiles of one image (a multiple of the GEMM
//!   micro-kernel's 16 rows, spanning parts of tile rows), so that the GEMMs repack the
//!   transformed weight rarely and the transformed block stays in the last-level cache;
//! - bias and ReLU are fused into the output transform; partial tiles at the right and
//!   bottom edges read zero padding and are cropped; scratch written before it is read is
//!   never cleared; the tasks are blocks (threaded GEMMs when there are fewer blocks than
//!   threads); `Elem` keeps it generic over f32 and f64.
//!
//! [`preferred`] decides per layer between this, F(2×2, 3×3) and the direct path.

use std::any::TypeId;
use std::mem::MaybeUninit;

use gemm::Parallelism;
use rayon::prelude::*;

use super::gemm_conv::{ConvPath, Elem, Epilogue, Geom, SendPtr};
use super::scratch::Scratch;
use super::winograd::WeightGradLayout;

/// Side of the output tile.
const M: usize = 4;
/// Side of the input tile (`M + 3 − 1`).
const A: usize = 6;
/// Element-wise products per tile (`A²`): the number of GEMMs.
const XI: usize = A * A;

/// `N` disjoint runs of `len` elements starting at increasing offsets of `v`.
#[inline(always)]
fn runs<T, const N: usize>(v: &mut [T], starts: [usize; N], len: usize) -> [&mut [T]; N] {
    for i in 1..N {
        assert!(starts[i - 1] + len <= starts[i]);
    }
    assert!(N == 0 || starts[N - 1] + len <= v.len());
    let p = v.as_mut_ptr();
    // SAFETY: the runs are inside `v` and pairwise disjoint (checked above), and borrow
    // `v` mutably for their lifetime.
    std::array::from_fn(|i| unsafe { std::slice::from_raw_parts_mut(p.add(starts[i]), len) })
}

/// `Bᵀ` applied element-wise along six equal-length rows `d0..d5` into `o0..o5`:
/// `o0 = 4d0 − 5d2 + d4`, `o1 = d3 + d4 − 4(d1 + d2)`, `o2 = d4 − d3 + 4(d1 − d2)`,
/// `o3 = d4 − d2 + 2(d3 − d1)`, `o4 = d4 − d2 − 2(d3 − d1)`, `o5 = 4d1 − 5d3 + d5`.
/// A function of separate slices so that the compiler knows they do not alias and
/// vectorises the loop without run-time overlap checks.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn bt6<T: Elem>(
    d0: &[T],
    d1: &[T],
    d2: &[T],
    d3: &[T],
    d4: &[T],
    d5: &[T],
    o0: &mut [T],
    o1: &mut [T],
    o2: &mut [T],
    o3: &mut [T],
    o4: &mut [T],
    o5: &mut [T],
) {
    let n = o0.len();
    let (d0, d1, d2, d3, d4, d5) = (&d0[..n], &d1[..n], &d2[..n], &d3[..n], &d4[..n], &d5[..n]);
    let (o1, o2, o3, o4, o5) = (
        &mut o1[..n],
        &mut o2[..n],
        &mut o3[..n],
        &mut o4[..n],
        &mut o5[..n],
    );
    #[cfg(target_arch = "x86_64")]
    if n >= 8 && TypeId::of::<T>() == TypeId::of::<f32>() && super::simd::avx2_enabled() {
        let f = |d: &[T]| {
            // SAFETY: T is f32 (same type id): the cast only renames the element type.
            unsafe { std::slice::from_raw_parts(d.as_ptr().cast::<f32>(), n) }
        };
        let g = |o: &mut [T]| {
            // SAFETY: as above, for the n output elements.
            unsafe { std::slice::from_raw_parts_mut(o.as_mut_ptr().cast::<f32>(), n) }
        };
        // SAFETY: the CPU has AVX2 (checked); every slice holds n ≥ 8 elements.
        unsafe {
            bt6_f32_avx2(
                [f(d0), f(d1), f(d2), f(d3), f(d4), f(d5)],
                [g(o0), g(o1), g(o2), g(o3), g(o4), g(o5)],
            )
        };
        return;
    }
    bt6_portable([d0, d1, d2, d3, d4, d5], [o0, o1, o2, o3, o4, o5]);
}

/// [`bt6`] as a plain loop (vectorised by the compiler, with a scalar remainder).
#[inline(always)]
fn bt6_portable<T: Elem>(d: [&[T]; 6], o: [&mut [T]; 6]) {
    let n = o[0].len();
    let [d0, d1, d2, d3, d4, d5] = d.map(|d| &d[..n]);
    let [o0, o1, o2, o3, o4, o5] = o;
    let (o0, o1, o2, o3, o4, o5) = (
        &mut o0[..n],
        &mut o1[..n],
        &mut o2[..n],
        &mut o3[..n],
        &mut o4[..n],
        &mut o5[..n],
    );
    let (two, four, five) = (T::from_f64(2.0), T::from_f64(4.0), T::from_f64(5.0));
    for x in 0..n {
        let (p, q) = (d4[x] - d2[x], d3[x] - d1[x]);
        let (s, t) = (d1[x] + d2[x], d1[x] - d2[x]);
        o0[x] = four * d0[x] - five * d2[x] + d4[x];
        o1[x] = d4[x] + d3[x] - four * s;
        o2[x] = d4[x] - d3[x] + four * t;
        o3[x] = p + two * q;
        o4[x] = p - two * q;
        o5[x] = four * d1[x] - five * d3[x] + d5[x];
    }
}

/// [`bt6`] on f32 rows of `n ≥ 8` elements with AVX2: blocks of eight, the last one moved
/// back to end at `n` (it recomputes a few outputs: each depends only on the inputs at its
/// own index, and no input is an output). The runs are short (a tile row: 7–51 tiles), and
/// the compiler's vector loop left a scalar remainder that took a sixth of the input
/// transform's time. Separate multiplies and adds in the portable code's order, so the
/// results are the same bit for bit.
///
/// # Safety
/// AVX2; all twelve slices hold at least `o[0].len() ≥ 8` elements.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn bt6_f32_avx2(d: [&[f32]; 6], o: [&mut [f32]; 6]) {
    use std::arch::x86_64::*;
    let n = o[0].len();
    let (two, four, five) = (
        _mm256_set1_ps(2.0),
        _mm256_set1_ps(4.0),
        _mm256_set1_ps(5.0),
    );
    let [o0, o1, o2, o3, o4, o5] = o;
    let mut x = 0;
    loop {
        let at = x.min(n - 8);
        // SAFETY: at + 8 ≤ n ≤ every slice's length (the caller's contract).
        unsafe {
            let ld = |s: &[f32]| _mm256_loadu_ps(s.as_ptr().add(at));
            let (a0, a1, a2, a3, a4, a5) =
                (ld(d[0]), ld(d[1]), ld(d[2]), ld(d[3]), ld(d[4]), ld(d[5]));
            let (p, q) = (_mm256_sub_ps(a4, a2), _mm256_sub_ps(a3, a1));
            let (s, t) = (_mm256_add_ps(a1, a2), _mm256_sub_ps(a1, a2));
            let st = |o: &mut [f32], v| _mm256_storeu_ps(o.as_mut_ptr().add(at), v);
            st(
                o0,
                _mm256_add_ps(
                    _mm256_sub_ps(_mm256_mul_ps(four, a0), _mm256_mul_ps(five, a2)),
                    a4,
                ),
            );
            st(
                o1,
                _mm256_sub_ps(_mm256_add_ps(a4, a3), _mm256_mul_ps(four, s)),
            );
            st(
                o2,
                _mm256_add_ps(_mm256_sub_ps(a4, a3), _mm256_mul_ps(four, t)),
            );
            st(o3, _mm256_add_ps(p, _mm256_mul_ps(two, q)));
            st(o4, _mm256_sub_ps(p, _mm256_mul_ps(two, q)));
            st(
                o5,
                _mm256_add_ps(
                    _mm256_sub_ps(_mm256_mul_ps(four, a1), _mm256_mul_ps(five, a3)),
                    a5,
                ),
            );
        }
        x += 8;
        if x >= n {
            break;
        }
    }
}

/// `Aᵀ` applied element-wise along six equal-length rows `m0..m5` into `s0..s3`:
/// `s0 = m0 + m1 + m2 + m3 + m4`, `s1 = m1 − m2 + 2(m3 − m4)`, `s2 = m1 + m2 + 4(m3 + m4)`,
/// `s3 = m1 − m2 + 8(m3 − m4) + m5` (separate slices for the reason given at [`bt6`]).
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

/// Copies `planes` planes of `h × w` into zero-bordered planes of `hp = 4·th + 2` rows
/// (one zero row before, the rest after), each row stored *phase-major*: padded column
/// `xx` (one zero column before the image) at `(xx mod 4)·(tw + 1) + xx / 4`. The column
/// half of the input transform then reads six contiguous runs (phases 0–3 at `tx`, phases
/// 0–1 at `tx + 1`) instead of stride-4 gathers, so it vectorises. Every element is
/// written once (zeros included), so nothing is cleared first.
fn pad_phased<T: Elem>(x: &[T], planes: usize, h: usize, w: usize, th: usize, tw: usize) -> Vec<T> {
    let (hp, rl) = (M * th + 2, M * (tw + 1));
    // Padded column 4·j + k holds image column 4·j + k − 1.
    super::winograd::padded_planes(x, (planes, h, w), (hp * rl, rl), |d, srow| {
        deinterleave4(srow, 1, d, tw + 1)
    })
}

super::simd::avx2_dispatch!(
/// Splits a row into its four column phases: phase `k` (the `k`-th run of `plen` elements
/// of `d`) gets `src[4·j + k − shift]` at `j` where that index is inside `src`, zero
/// elsewhere. The zero runs at both ends are filled apart, so the gather in between has
/// no branch.
fn deinterleave4<T: Elem>(
    src: &[T],
    shift: usize,
    d: &mut [std::mem::MaybeUninit<T>],
    plen: usize,
) => deinterleave4_impl);

#[inline(always)]
fn deinterleave4_impl<T: Elem>(
    src: &[T],
    shift: usize,
    d: &mut [std::mem::MaybeUninit<T>],
    plen: usize,
) {
    if plen == 0 {
        return;
    }
    let zero = std::mem::MaybeUninit::new(T::ZERO);
    let w = src.len();
    // Blocks of eight j inside the span where all four phases read inside `src`
    // (shift ≤ 4·j and 4·j + 3 < w + shift) go to the vector copy; the rest is gathered
    // one element at a time.
    let (v0, v1) = {
        let lo = shift.div_ceil(M).min(plen);
        let hi = (w + shift)
            .saturating_sub(M - 1)
            .div_ceil(M)
            .min(plen)
            .max(lo);
        (lo, lo + (hi - lo) / 8 * 8)
    };
    let vector =
        v1 > v0 && d.len() >= M * plen && deinterleave4_blocks(src, shift, d, plen, v0..v1);
    let (v0, v1) = if vector { (v0, v1) } else { (0, 0) };
    for (k, ph) in d.chunks_exact_mut(plen).enumerate() {
        // j is valid iff shift ≤ 4·j + k < w + shift.
        let hi = (w + shift).saturating_sub(k).div_ceil(M).min(plen);
        let lo = shift.saturating_sub(k).div_ceil(M).min(hi);
        ph[..lo].fill(zero);
        let gather = |ph: &mut [std::mem::MaybeUninit<T>], js: std::ops::Range<usize>| {
            if js.start < js.end {
                let from = M * js.start + k - shift;
                for (o, &v) in ph[js].iter_mut().zip(src[from..].iter().step_by(M)) {
                    *o = std::mem::MaybeUninit::new(v);
                }
            }
        };
        if v1 > v0 {
            // lo ≤ v0 and v1 ≤ hi for every phase, by the choice of v0 and v1.
            gather(ph, lo..v0);
            gather(ph, v1..hi);
        } else {
            gather(ph, lo..hi);
        }
        ph[hi..].fill(zero);
    }
}

/// The four phases of `j` in `js` (a multiple of eight long, every read inside `src`)
/// with AVX2 shuffles when `T` is f32 and the CPU has AVX2; returns whether it did.
#[inline(always)]
fn deinterleave4_blocks<T: Elem>(
    src: &[T],
    shift: usize,
    d: &mut [std::mem::MaybeUninit<T>],
    plen: usize,
    js: std::ops::Range<usize>,
) -> bool {
    #[cfg(target_arch = "x86_64")]
    if std::any::TypeId::of::<T>() == std::any::TypeId::of::<f32>()
        && super::simd::avx2_enabled()
        && js.start * M >= shift
        && M * js.end - shift <= src.len()
        && js.end <= plen
    {
        // SAFETY: T is f32 (same type id), so the casts only rename the element type; the
        // CPU has AVX2 (checked); the reads 4·j − shift .. 4·j_end − shift are inside
        // `src` and the writes k·plen + j stay below 4·plen ≤ d.len() (checked here and
        // by the caller).
        unsafe {
            let src = std::slice::from_raw_parts(src.as_ptr().cast::<f32>(), src.len());
            let dst = d.as_mut_ptr().cast::<f32>();
            deinterleave4_f32_avx2(src, shift, dst, plen, js);
        }
        return true;
    }
    let _ = (src, shift, d, plen, js);
    false
}

/// [`deinterleave4_blocks`] for f32: 32 consecutive elements (eight `j`, four phases
/// each) as four rows, a 4×4 transpose in each 128-bit lane (phase k of j = 0, 2, 4, 6 in
/// the low lane, 1, 3, 5, 7 in the high), then one permutation to put `j` in order.
///
/// # Safety
/// AVX2; `src[4·j − shift]` readable for every `j` in `js` (all four phases), and
/// `dst[k·plen + j]` writable for `k < 4`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn deinterleave4_f32_avx2(
    src: &[f32],
    shift: usize,
    dst: *mut f32,
    plen: usize,
    js: std::ops::Range<usize>,
) {
    use std::arch::x86_64::*;
    let order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    for j in js.step_by(8) {
        // SAFETY: the caller's contract covers these 32 reads and 4 × 8 writes.
        unsafe {
            let p = src.as_ptr().add(M * j - shift);
            let (r0, r1, r2, r3) = (
                _mm256_loadu_ps(p),
                _mm256_loadu_ps(p.add(8)),
                _mm256_loadu_ps(p.add(16)),
                _mm256_loadu_ps(p.add(24)),
            );
            let (lo01, hi01) = (_mm256_unpacklo_ps(r0, r1), _mm256_unpackhi_ps(r0, r1));
            let (lo23, hi23) = (_mm256_unpacklo_ps(r2, r3), _mm256_unpackhi_ps(r2, r3));
            let phases = [
                _mm256_shuffle_ps::<0x44>(lo01, lo23),
                _mm256_shuffle_ps::<0xEE>(lo01, lo23),
                _mm256_shuffle_ps::<0x44>(hi01, hi23),
                _mm256_shuffle_ps::<0xEE>(hi01, hi23),
            ];
            for (k, v) in phases.into_iter().enumerate() {
                _mm256_storeu_ps(dst.add(k * plen + j), _mm256_permutevar8x32_ps(v, order));
            }
        }
    }
}

/// Tiles `f0..f1` (row-major over the `th × tw` tiles) of one image, and the padded
/// planes ([`pad_phased`]) they are read from.
#[derive(Clone, Copy)]
struct TileSpan {
    tw: usize,
    plane: usize,
    f0: usize,
    f1: usize,
}

impl TileSpan {
    /// Task `task` of a split of every image's `tiles` tiles into `blocks` blocks of
    /// `tb_max` tiles: its image and its span.
    fn of_task(
        task: usize,
        (blocks, tb_max, tiles): (usize, usize, usize),
        tw: usize,
        plane: usize,
    ) -> (usize, Self) {
        let (b, blk) = (task / blocks, task % blocks);
        let f0 = blk * tb_max;
        let f1 = (f0 + tb_max).min(tiles);
        (b, Self { tw, plane, f0, f1 })
    }

    /// Number of tiles.
    fn count(self) -> usize {
        self.f1 - self.f0
    }

    /// The tile rows the span touches, each with its tile-column range and the offset of
    /// its first tile within the span.
    fn rows(self) -> impl Iterator<Item = (usize, std::ops::Range<usize>, usize)> {
        let tw = self.tw;
        (self.f0 / tw..self.f1.div_ceil(tw)).map(move |ty| {
            let a = self.f0.max(ty * tw) - ty * tw;
            let b = self.f1.min((ty + 1) * tw) - ty * tw;
            (ty, a..b, ty * tw + a - self.f0)
        })
    }
}

super::simd::avx2_dispatch!(
/// `V = Bᵀ d B` of the 6×6 input tiles of `span` of image `b`, written to `v` in the
/// layout `[36][c_in][tiles]` (the GEMM operand, unit stride on tiles). With
/// `Bᵀ = [[4, 0, −5, 0, 1, 0], [0, −4, −4, 1, 1, 0], [0, 4, −4, −1, 1, 0],
/// [0, −2, −1, 2, 1, 0], [0, 2, −1, −2, 1, 0], [0, 4, 0, −5, 0, 1]]`: first over the six
/// input rows of a tile row (along the phase-major row, vectorised), then over each
/// tile's six columns (contiguous phase runs, vectorised), written as six contiguous runs
/// per row of the 6×6 transform.
fn transform_input<T: Elem>(xp: &[T], b: usize, ci: usize, span: TileSpan, v: &mut [T]) => transform_input_impl);

#[inline(always)]
fn transform_input_impl<T: Elem>(xp: &[T], b: usize, ci: usize, span: TileSpan, v: &mut [T]) {
    let TileSpan { tw, plane, .. } = span;
    let tb = span.count();
    let p1 = tw + 1;
    let rl = M * p1;
    let mut m = vec![T::ZERO; A * rl];
    for c in 0..ci {
        let base = (b * ci + c) * plane;
        for (ty, txs, t0) in span.rows() {
            let r0 = base + M * ty * rl;
            let row = |r: usize| &xp[r0 + r * rl..r0 + (r + 1) * rl];
            let (d0, d1, d2, d3, d4, d5) = (row(0), row(1), row(2), row(3), row(4), row(5));
            {
                let [m0, m1, m2, m3, m4, m5] =
                    runs(&mut m, [0, rl, 2 * rl, 3 * rl, 4 * rl, 5 * rl], rl);
                // Each phase from the span's first tile to one past its last.
                for k in 0..M {
                    let r = k * p1 + txs.start..k * p1 + txs.end + 1;
                    bt6(
                        &d0[r.clone()],
                        &d1[r.clone()],
                        &d2[r.clone()],
                        &d3[r.clone()],
                        &d4[r.clone()],
                        &d5[r.clone()],
                        &mut m0[r.clone()],
                        &mut m1[r.clone()],
                        &mut m2[r.clone()],
                        &mut m3[r.clone()],
                        &mut m4[r.clone()],
                        &mut m5[r],
                    );
                }
            }
            let len = txs.len();
            for r in 0..A {
                // (· B) of tile tx reads padded columns 4tx .. 4tx+5: phases 0–3 at tx and
                // phases 0–1 at tx+1. The six results go to rows ξ = 6r .. 6r+5 of V.
                let at = |cc: usize| ((A * r + cc) * ci + c) * tb + t0;
                let [v0, v1, v2, v3, v4, v5] =
                    runs(v, [at(0), at(1), at(2), at(3), at(4), at(5)], len);
                let mr = &m[r * rl..(r + 1) * rl];
                let ph = |k: usize, d: usize| &mr[k * p1 + txs.start + d..k * p1 + txs.end + d];
                bt6(
                    ph(0, 0),
                    ph(1, 0),
                    ph(2, 0),
                    ph(3, 0),
                    ph(0, 1),
                    ph(1, 1),
                    v0,
                    v1,
                    v2,
                    v3,
                    v4,
                    v5,
                );
            }
        }
    }
}

/// `G` applied element-wise to three equal-length rows `a, b, d` (a kernel column or a
/// row of `G k`) into `o0..o5`: `a/4`, `−(a + b + d)/6`, `−(a − b + d)/6`,
/// `a/24 + b/12 + d/6`, `a/24 − b/12 + d/6`, `d` (separate slices for the reason given at
/// [`bt6`]).
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

impl<T: Elem> super::winograd::KernelRows<T, A> for G6 {
    #[inline(always)]
    fn apply(a: &[T], b: &[T], d: &[T], o: [&mut [MaybeUninit<T>]; A]) {
        g6(a, b, d, o)
    }
}

/// Tiles per block and blocks per image for `n` images of `tiles` tiles, starting from
/// `blocks` blocks per image: the block count is raised (by at most `threads − 1`, never
/// beyond one tile per block) until the `n · blocks` tasks divide evenly among the threads,
/// and the tiles are spread evenly over the blocks. Five blocks of a 100² layer on two
/// threads kept one thread idle for a fifth of the layer.
fn balanced_blocks(n: usize, tiles: usize, blocks: usize, threads: usize) -> (usize, usize) {
    let threads = threads.max(1);
    let max_blocks = tiles.max(1);
    let blocks = blocks.clamp(1, max_blocks);
    let chosen = (blocks..(blocks + threads).min(max_blocks + 1))
        .find(|&b| (n * b).checked_rem(threads) == Some(0))
        .unwrap_or(blocks);
    let tb = tiles.div_ceil(chosen).max(1);
    (tb, tiles.div_ceil(tb))
}

/// `act(conv3x3(x, weight) + bias)` over an unpadded `[n, c_in, h, w]` input by
/// F(4×4, 3×3); the weight is read as in [`super::gemm_conv::conv_forward`] (base and
/// strides), tap = `3·row + col`.
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
    let u = super::winograd::transform_weight(
        super::winograd::TileSize::Four,
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
    let nominal = super::gemm_conv::NOMINAL_THREADS;
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
            super::winograd::component_gemms(XI, tb, ci, co, v, &u, mm, gemm_threads);
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

super::simd::avx2_dispatch!(fn output_transform<T: Elem>(
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

/// Tiles per image up to which [`grad_weight3x3_with`] splits its work by Winograd
/// component instead of by tiles: at 25² (49 tiles) the tile split gave each thread a
/// whole `36·c_in·c_out` accumulator (38 MB at 512→512) for a contraction over 25 tiles,
/// then summed them.
const FEW_TILES_PER_IMAGE: usize = 64;

/// What both work splits of [`grad_weight3x3_with`] read: the phase-split input and output
/// gradient ([`pad_phased`], [`phase_grad`]) and their geometry, and the accumulator's layout.
struct GradWeightInputs<'a, T> {
    xp: &'a [T],
    gp: &'a [T],
    ci: usize,
    co: usize,
    tw: usize,
    /// Tiles per image.
    tiles: usize,
    plane: usize,
    gplane: usize,
    layout: WeightGradLayout,
}

impl<T: Elem> GradWeightInputs<'_, T> {
    /// Scratch for the transposed gradient of `tb` tiles, where the layout needs one.
    fn spare(&self, tb: usize) -> Option<Scratch<T>> {
        (self.layout == WeightGradLayout::GradTransposed).then(|| Scratch::take(XI * self.co * tb))
    }

    /// `V` of `span` of image `b` into `v` (`[36][c_in][tb]`) and `dM` into `dm`, in the
    /// accumulator's layout: `[36][c_out][tb]`, or transposed through `spare` (which then
    /// holds the untransposed one) for [`WeightGradLayout::GradTransposed`].
    fn transform_block(
        &self,
        b: usize,
        span: TileSpan,
        v: &mut [T],
        dm: &mut Scratch<T>,
        spare: &mut Option<Scratch<T>>,
    ) {
        transform_input(self.xp, b, self.ci, span, v);
        transform_grad(self.gp, b, self.co, span, self.gplane, dm);
        if let Some(spare) = spare {
            super::winograd::transpose_components(XI, self.co, span.count(), dm, spare, false);
            std::mem::swap(dm, spare);
        }
    }

    /// The accumulator `dU` (`[36][c_out][c_in]`, or `[36][c_in][c_out]` for
    /// [`WeightGradLayout::GradTransposed`]) of `n` images split by tiles: blocks of
    /// consecutive tiles of one image, each of the
    /// [`NOMINAL_THREADS`](super::gemm_conv::NOMINAL_THREADS) parts summing its blocks into
    /// its own whole accumulator, the accumulators added at the end; `threads` only decides
    /// how many threads each part's GEMMs use.
    ///
    /// The transformed input and gradient of a block (36·(c_in + c_out)·tb elements) stay
    /// near 8 MB, at least one block per part, and the block count a multiple of the
    /// parts. Where that leaves fewer than four blocks per part, one block per part
    /// instead (measured when the parts were the two threads): each block adds its GEMMs
    /// into the part's whole 36·c_in·c_out accumulator (9.4 MB at 512→128), so a few short
    /// blocks re-read it for little work, and 625 tiles in 5 or 3 blocks kept one of two
    /// threads idle for a fifth or a third of the layer.
    /// XNet 1×200² backward, in-process alternating steps: 2–4 % faster (0.615 against
    /// 0.629 s, 0.656 against 0.681 s); 8×128² (blocks unchanged): 1.707 against 1.704 s,
    /// 1.544 against 1.561 s.
    fn by_tiles(&self, n: usize, threads: usize) -> Scratch<T> {
        let (ci, co, tiles) = (self.ci, self.co, self.tiles);
        // The blocks set the sums' rounding, so they follow the nominal thread count, not
        // the actual one.
        let parts = super::gemm_conv::NOMINAL_THREADS;
        let target = (65_536 / ci.max(co).max(1)).clamp(32, 1024);
        let blocks = tiles.div_ceil(target).max(1);
        let blocks = if n * blocks < 4 * parts {
            parts.div_ceil(n)
        } else {
            blocks
        };
        let (tb_max, blocks) = balanced_blocks(n, tiles, blocks, parts);
        super::gemm_conv::sum_over_parts(
            n * blocks,
            threads,
            XI * co * ci,
            |tasks, du: &mut [T], parallelism| {
                // Every element a task reads is written first (see `transform_*`).
                let mut v = Scratch::<T>::take(XI * ci * tb_max);
                let mut dm = Scratch::<T>::take(XI * co * tb_max);
                let mut spare = self.spare(tb_max);
                for (i, task) in tasks.enumerate() {
                    let (b, span) =
                        TileSpan::of_task(task, (blocks, tb_max, tiles), self.tw, self.plane);
                    self.transform_block(b, span, &mut v, &mut dm, &mut spare);
                    super::winograd::accumulate_component_gemms(
                        XI,
                        span.count(),
                        ci,
                        co,
                        &dm,
                        &v,
                        self.layout,
                        du,
                        i > 0,
                        parallelism,
                    );
                }
            },
        )
    }

    /// The same accumulator for images of few tiles, split by component: every image's
    /// transformed input and gradient first (images in parallel), then the 36 components'
    /// GEMMs in parallel, each summing over the images into its own slice of `dU` (written
    /// once, no partial sums).
    fn by_components(&self, n: usize) -> Scratch<T> {
        let (ci, co, tiles) = (self.ci, self.co, self.tiles);
        let mut du = Scratch::<T>::take(XI * co * ci);
        if n == 0 || co * ci == 0 {
            du.fill(T::ZERO);
            return du;
        }
        let span = TileSpan {
            tw: self.tw,
            plane: self.plane,
            f0: 0,
            f1: tiles,
        };
        let transformed: Vec<(Scratch<T>, Scratch<T>)> = (0..n)
            .into_par_iter()
            .map(|b| {
                let mut v = Scratch::<T>::take(XI * ci * tiles);
                let mut dm = Scratch::<T>::take(XI * co * tiles);
                self.transform_block(b, span, &mut v, &mut dm, &mut self.spare(tiles));
                (v, dm)
            })
            .collect();
        // Each component's slice is written by its first image's GEMM (not accumulating).
        du.par_chunks_mut(co * ci)
            .enumerate()
            .for_each(|(xi, du_xi)| {
                for (b, (v, dm)) in transformed.iter().enumerate() {
                    super::winograd::accumulate_component_gemms(
                        1,
                        tiles,
                        ci,
                        co,
                        &dm[xi * co * tiles..(xi + 1) * co * tiles],
                        &v[xi * ci * tiles..(xi + 1) * ci * tiles],
                        self.layout,
                        du_xi,
                        b > 0,
                        Parallelism::None,
                    );
                }
            });
        du
    }
}

super::simd::avx2_dispatch!(
/// `dW[o] = Gᵀ dU[·][o] G` of output channel `o` from the accumulator `du`
/// (`[36][c_out][c_in]`) into `dwo` (`[c_in][9]`), vectorised along `c_in`: Gᵀ over the six
/// rows of each of the six columns into `q` (`[3][6][c_in]`), then over each row's six
/// columns into `k` (`[9][c_in]`), then the nine taps interleaved.
fn weight_grad_rows<T: Elem>(
    du: &[T],
    co: usize,
    o: usize,
    q: &mut [T],
    k: &mut [T],
    dwo: &mut [MaybeUninit<T>],
) => weight_grad_rows_impl);

#[inline(always)]
fn weight_grad_rows_impl<T: Elem>(
    du: &[T],
    co: usize,
    o: usize,
    q: &mut [T],
    k: &mut [T],
    dwo: &mut [MaybeUninit<T>],
) {
    let ci = k.len() / 9;
    let d = |xi: usize| &du[(xi * co + o) * ci..(xi * co + o + 1) * ci];
    // q layout [3 rows a][6 columns c][c_in].
    for c in 0..A {
        let at = |a: usize| (a * A + c) * ci;
        let [z0, z1, z2] = runs(q, [at(0), at(1), at(2)], ci);
        gt6(
            d(c),
            d(A + c),
            d(2 * A + c),
            d(3 * A + c),
            d(4 * A + c),
            d(5 * A + c),
            z0,
            z1,
            z2,
        );
    }
    for a in 0..3 {
        let [k0, k1, k2] = runs(k, [(3 * a) * ci, (3 * a + 1) * ci, (3 * a + 2) * ci], ci);
        let qc = |c: usize| &q[(a * A + c) * ci..(a * A + c + 1) * ci];
        gt6(qc(0), qc(1), qc(2), qc(3), qc(4), qc(5), k0, k1, k2);
    }
    for (i, taps) in dwo.chunks_exact_mut(9).enumerate() {
        for (tap, t) in taps.iter_mut().enumerate() {
            t.write(k[tap * ci + i]);
        }
    }
}

/// `A` (the transpose of the output transform `Aᵀ`) applied element-wise along four
/// equal-length rows `w0..w3` (a 4×4 gradient tile's rows or columns) into `o0..o5`:
/// `w0`, `w0 + w1 + w2 + w3`, `w0 − w1 + w2 − w3`, `w0 + 2w1 + 4w2 + 8w3`,
/// `w0 − 2w1 + 4w2 − 8w3`, `w3` (separate slices for the reason given at [`bt6`]).
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn a4<T: Elem>(
    w0: &[T],
    w1: &[T],
    w2: &[T],
    w3: &[T],
    o0: &mut [T],
    o1: &mut [T],
    o2: &mut [T],
    o3: &mut [T],
    o4: &mut [T],
    o5: &mut [T],
) {
    let n = o0.len();
    let (w0, w1, w2, w3) = (&w0[..n], &w1[..n], &w2[..n], &w3[..n]);
    let (o1, o2, o3, o4, o5) = (
        &mut o1[..n],
        &mut o2[..n],
        &mut o3[..n],
        &mut o4[..n],
        &mut o5[..n],
    );
    let (two, four) = (T::from_f64(2.0), T::from_f64(4.0));
    for i in 0..n {
        let (even, odd) = (w0[i] + w2[i], w1[i] + w3[i]);
        let (e4, o4x) = (w0[i] + four * w2[i], two * (w1[i] + four * w3[i]));
        o0[i] = w0[i];
        o1[i] = even + odd;
        o2[i] = even - odd;
        o3[i] = e4 + o4x;
        o4[i] = e4 - o4x;
        o5[i] = w3[i];
    }
}

/// `Gᵀ` applied element-wise along six equal-length rows `m0..m5` into `z0..z2`:
/// `m0/4 − (m1 + m2)/6 + (m3 + m4)/24`, `(m2 − m1)/6 + (m3 − m4)/12`,
/// `(m3 + m4 − m1 − m2)/6 + m5` (separate slices for the reason given at [`bt6`]).
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn gt6<T: Elem>(
    m0: &[T],
    m1: &[T],
    m2: &[T],
    m3: &[T],
    m4: &[T],
    m5: &[T],
    z0: &mut [T],
    z1: &mut [T],
    z2: &mut [T],
) {
    let n = z0.len();
    let (m0, m1, m2, m3, m4, m5) = (&m0[..n], &m1[..n], &m2[..n], &m3[..n], &m4[..n], &m5[..n]);
    let (z1, z2) = (&mut z1[..n], &mut z2[..n]);
    let quarter = T::from_f64(0.25);
    let sixth = T::from_f64(1.0 / 6.0);
    let twelfth = T::from_f64(1.0 / 12.0);
    let twenty_fourth = T::from_f64(1.0 / 24.0);
    for i in 0..n {
        let (s12, d21) = (m1[i] + m2[i], m2[i] - m1[i]);
        let (s34, d34) = (m3[i] + m4[i], m3[i] - m4[i]);
        z0[i] = quarter * m0[i] - sixth * s12 + twenty_fourth * s34;
        z1[i] = sixth * d21 + twelfth * d34;
        z2[i] = sixth * (s34 - s12) + m5[i];
    }
}

/// `planes` gradient planes of `h × w` as `4·th` rows (after one leading zero row, as
/// [`super::winograd::padded_planes`] writes them) of `4·tw` columns stored phase-major:
/// column `x` at `(x mod 4)·tw + x / 4`, zero beyond the image. The column half of the
/// gradient transform then reads four contiguous runs per tile row.
fn phase_grad<T: Elem>(
    grad_out: &[T],
    planes: usize,
    h: usize,
    w: usize,
    th: usize,
    tw: usize,
) -> Vec<T> {
    let rl = M * tw;
    super::winograd::padded_planes(
        grad_out,
        (planes, h, w),
        ((M * th + 1) * rl, rl),
        |d, srow| deinterleave4(srow, 0, d, tw),
    )
}

super::simd::avx2_dispatch!(
/// `A dY Aᵀ` of the 4×4 gradient tiles of `span` of image `b` (from [`phase_grad`] planes
/// of `gplane` elements), written to `dm` in the layout `[36][c_out][tiles]`: first along
/// the tile row's four gradient rows (vectorised along the phase-major row), then along
/// each tile's four columns (four contiguous phase runs), six runs per transformed row.
fn transform_grad<T: Elem>(
    gp: &[T],
    b: usize,
    co: usize,
    span: TileSpan,
    gplane: usize,
    dm: &mut [T],
) => transform_grad_impl);

#[inline(always)]
fn transform_grad_impl<T: Elem>(
    gp: &[T],
    b: usize,
    co: usize,
    span: TileSpan,
    gplane: usize,
    dm: &mut [T],
) {
    let tw = span.tw;
    let tb = span.count();
    let rl = M * tw;
    let mut m = vec![T::ZERO; A * rl];
    for o in 0..co {
        let base = (b * co + o) * gplane;
        for (ty, txs, t0) in span.rows() {
            // Gradient row 4·ty + r is padded row 4·ty + r + 1.
            let r0 = base + (M * ty + 1) * rl;
            let row = |r: usize| &gp[r0 + r * rl..r0 + (r + 1) * rl];
            {
                let [m0, m1, m2, m3, m4, m5] =
                    runs(&mut m, [0, rl, 2 * rl, 3 * rl, 4 * rl, 5 * rl], rl);
                for k in 0..M {
                    let r = k * tw + txs.start..k * tw + txs.end;
                    a4(
                        &row(0)[r.clone()],
                        &row(1)[r.clone()],
                        &row(2)[r.clone()],
                        &row(3)[r.clone()],
                        &mut m0[r.clone()],
                        &mut m1[r.clone()],
                        &mut m2[r.clone()],
                        &mut m3[r.clone()],
                        &mut m4[r.clone()],
                        &mut m5[r],
                    );
                }
            }
            let len = txs.len();
            for r in 0..A {
                let at = |c: usize| ((A * r + c) * co + o) * tb + t0;
                let [d0, d1, d2, d3, d4, d5] =
                    runs(dm, [at(0), at(1), at(2), at(3), at(4), at(5)], len);
                let mr = &m[r * rl..(r + 1) * rl];
                let ph = |k: usize| &mr[k * tw + txs.start..k * tw + txs.end];
                a4(ph(0), ph(1), ph(2), ph(3), d0, d1, d2, d3, d4, d5);
            }
        }
    }
}

/// Gradient wrt the weight of the stride-1, pad-1 3×3 convolution of an unpadded
/// `[n, c_in, h, w]` input, given the output gradient `[n, c_out, h, w]`; layout
/// `[c_out, c_in, 3, 3]`.
///
/// Each 4×4 gradient tile and its 6×6 input tile contribute a 3×3 correlation, which is
/// Winograd F(3×3, 4×4); by the transposition principle it reuses this module's matrices:
/// `dW = Gᵀ [Σ_tiles (A dY Aᵀ) ⊙ (Bᵀ d B)] G`, where `Bᵀ d B` is exactly the forward's
/// input transform. The sum over tiles is 36 GEMMs `[c_out × tiles] · [tiles × c_in]` per
/// block of tiles, accumulated per part: 36 multiplies per 16 pixels and tap set instead
/// of 144 (F(2×2, 3×3)'s weight gradient, [`super::winograd::grad_weight3x3`], does 64).
pub(crate) fn grad_weight3x3<T: Elem>(x: &[T], grad_out: &[T], g: &Geom, threads: usize) -> Vec<T> {
    let layout = WeightGradLayout::preferred(g.c_in, g.c_out);
    grad_weight3x3_with(x, grad_out, g, threads, layout)
}

/// [`grad_weight3x3`] with the weight-gradient GEMMs' layout chosen by the caller (the
/// tests run both).
fn grad_weight3x3_with<T: Elem>(
    x: &[T],
    grad_out: &[T],
    g: &Geom,
    threads: usize,
    layout: WeightGradLayout,
) -> Vec<T> {
    let (n, ci, co, h, w) = (g.n, g.c_in, g.c_out, g.h, g.w);
    let (th, tw) = (h.div_ceil(M), w.div_ceil(M));
    let inputs = GradWeightInputs {
        xp: &pad_phased(x, n * ci, h, w, th, tw),
        gp: &phase_grad(grad_out, n * co, h, w, th, tw),
        ci,
        co,
        tw,
        tiles: th * tw,
        plane: (M * th + 2) * M * (tw + 1),
        gplane: (M * th + 1) * M * tw,
        layout,
    };
    let du = if inputs.tiles <= FEW_TILES_PER_IMAGE {
        inputs.by_components(n)
    } else {
        inputs.by_tiles(n, threads)
    };
    // [ξ][c_in][c_out] → [ξ][c_out][c_in] (36·c_in·c_out elements once per layer).
    let du = match layout {
        WeightGradLayout::Direct => du,
        WeightGradLayout::GradTransposed => {
            let mut t = Scratch::<T>::take(XI * co * ci);
            super::winograd::transpose_components(XI, ci, co, &du, &mut t, true);
            t
        }
    };
    // dW = Gᵀ dU G per output channel, vectorised along c_in: Gᵀ over the six rows of each
    // of the six columns, then over each row's six columns, then the nine taps interleaved.
    // Every element is written below (nine taps of every input channel of every output
    // channel), so it is not cleared first.
    let mut dw: Vec<T> = Vec::with_capacity(co * ci * 9);
    dw.spare_capacity_mut()[..co * ci * 9]
        .par_chunks_mut(ci * 9)
        .enumerate()
        .for_each_init(
            || (vec![T::ZERO; 3 * A * ci], vec![T::ZERO; 9 * ci]),
            |(q, k), (o, dwo)| weight_grad_rows(&du, co, o, q, k, dwo),
        );
    // SAFETY: the tasks above wrote all co·ci·9 elements.
    unsafe { dw.set_len(co * ci * 9) };
    dw
}

/// The fastest forward path for `g` when none is forced, from per-layer timings of XNet's
/// 3×3 layers (forward and input-gradient shapes, 1×200² and 8×128², 2 threads, minimum
/// of 3–5 on a shared 2-core machine, freed memory kept as the programs keep it;
/// `examples/conv_paths.rs`):
///
/// - below 64 channels in or out ([`super::winograd::applies`]): direct;
/// - few 4×4 tiles (n·⌈h/4⌉·⌈w/4⌉ < 128; the 25² layers of a 200² input have 49):
///   F(2×2, 3×3), a tie with F(4×4, 3×3) there (512→512 at 25²: 16.9 against 17.2 ms),
///   whose transformed weight (36·c_in·c_out, 38 MB at 512→512) is re-read and repacked
///   by each of its 36 GEMMs for few products;
/// - images of at most 16 tiles (16² and smaller): F(2×2, 3×3). F(4×4, 3×3) blocks cannot
///   span images, so its GEMMs there have 16 rows (`gemm`'s narrowest micro-kernel).
///   Measured 2026-11-29 after the F(2,3) weight transform was vectorised, 8×·@16²:
///   256→512 15.3/17.3 against 19.8/21.8 ms, 512→256 15.6/17.4 against 18.9/19.8,
///   512→512 30.7/32.1 against 35.2/37.5; at 20² (25 tiles an image) F(4,3) was again
///   faster (8×512→512: 39.3 against 49.0 ms), as at 24², 25², 28² and 32²;
/// - otherwise F(4×4, 3×3): 15–30 % faster than F(2×2, 3×3), e.g. 512→128 at 100²: 47
///   against 56 ms, 8×512→256 at 32²: 36.5 against 54.9 ms.
pub(crate) fn preferred(g: &Geom) -> ConvPath {
    if !super::winograd::applies(g) {
        return ConvPath::Direct;
    }
    // Saturating: the public path queries take any sizes.
    let per_image = g.h.div_ceil(M).saturating_mul(g.w.div_ceil(M));
    if g.n.saturating_mul(per_image) >= 128 && per_image > 16 {
        ConvPath::Winograd4
    } else {
        ConvPath::Winograd2
    }
}

/// The fastest weight-gradient path for `g` when none is forced: F(3×3, 4×4)
/// ([`grad_weight3x3`]) wherever Winograd applies ([`super::winograd::applies`]), the
/// direct path otherwise. Measured per XNet layer (`examples/conv_paths.rs --weight-grad`,
/// 2 threads, minimum of 5, freed memory kept): 15–40 % faster than F(2×2, 3×3) from 50²
/// (1 image) or 32² (8 images) up, e.g. 256→64 at 200²: 44 against 63 ms, 8×512→128 at
/// 64²: 101 against 157 ms; tied on 8×16² and faster on 1×25², where the 512→512 weight
/// grows the per-thread accumulator but few tiles keep the GEMMs short either way.
pub(crate) fn preferred_grad_weight(g: &Geom) -> ConvPath {
    if super::winograd::applies(g) {
        ConvPath::Winograd4
    } else {
        ConvPath::Direct
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::gemm_conv::{conv_forward, pad_planes};
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
}
