//! The input side of F(4×4, 3×3), shared by the forward and the weight gradient: the
//! zero-padded, phase-major copy of the input ([`pad_phased`]) and its transform
//! `V = Bᵀ d B` ([`transform_input`], along rows by [`bt6`]).

use std::any::TypeId;

use crate::kernels::gemm_conv::Elem;

use super::{runs, TileSpan, A, M};

/// `Bᵀ` applied element-wise along six equal-length rows `d0..d5` into `o0..o5`:
/// `o0 = 4d0 − 5d2 + d4`, `o1 = d3 + d4 − 4(d1 + d2)`, `o2 = d4 − d3 + 4(d1 − d2)`,
/// `o3 = d4 − d2 + 2(d3 − d1)`, `o4 = d4 − d2 − 2(d3 − d1)`, `o5 = 4d1 − 5d3 + d5`.
/// A function of separate slices so that the compiler knows they do not alias and
/// vectorises the loop without run-time overlap checks.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
pub(super) fn bt6<T: Elem>(
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
    if n >= 8 && TypeId::of::<T>() == TypeId::of::<f32>() && crate::kernels::simd::avx2_enabled() {
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
pub(super) fn bt6_portable<T: Elem>(d: [&[T]; 6], o: [&mut [T]; 6]) {
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

/// Copies `planes` planes of `h × w` into zero-bordered planes of `hp = 4·th + 2` rows
/// (one zero row before, the rest after), each row stored *phase-major*: padded column
/// `xx` (one zero column before the image) at `(xx mod 4)·(tw + 1) + xx / 4`. The column
/// half of the input transform then reads six contiguous runs (phases 0–3 at `tx`, phases
/// 0–1 at `tx + 1`) instead of stride-4 gathers, so it vectorises. Every element is
/// written once (zeros included), so nothing is cleared first.
pub(super) fn pad_phased<T: Elem>(
    x: &[T],
    planes: usize,
    h: usize,
    w: usize,
    th: usize,
    tw: usize,
) -> Vec<T> {
    let (hp, rl) = (M * th + 2, M * (tw + 1));
    // Padded column 4·j + k holds image column 4·j + k − 1.
    crate::kernels::winograd::padded_planes(x, (planes, h, w), (hp * rl, rl), |d, srow| {
        deinterleave4(srow, 1, d, tw + 1)
    })
}

crate::kernels::simd::avx2_dispatch!(
/// Splits a row into its four column phases: phase `k` (the `k`-th run of `plen` elements
/// of `d`) gets `src[4·j + k − shift]` at `j` where that index is inside `src`, zero
/// elsewhere. The zero runs at both ends are filled apart, so the gather in between has
/// no branch.
pub(super) fn deinterleave4<T: Elem>(
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
        && crate::kernels::simd::avx2_enabled()
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

crate::kernels::simd::avx2_dispatch!(
/// `V = Bᵀ d B` of the 6×6 input tiles of `span` of image `b`, written to `v` in the
/// layout `[36][c_in][tiles]` (the GEMM operand, unit stride on tiles). With
/// `Bᵀ = [[4, 0, −5, 0, 1, 0], [0, −4, −4, 1, 1, 0], [0, 4, −4, −1, 1, 0],
/// [0, −2, −1, 2, 1, 0], [0, 2, −1, −2, 1, 0], [0, 4, 0, −5, 0, 1]]`: first over the six
/// input rows of a tile row (along the phase-major row, vectorised), then over each
/// tile's six columns (contiguous phase runs, vectorised), written as six contiguous runs
/// per row of the 6×6 transform.
pub(super) fn transform_input<T: Elem>(xp: &[T], b: usize, ci: usize, span: TileSpan, v: &mut [T]) => transform_input_impl);

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
