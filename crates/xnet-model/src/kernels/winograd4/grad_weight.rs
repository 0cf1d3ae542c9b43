//! The weight gradient of F(4×4, 3×3), by transposition of the forward's matrices
//! (F(3×3, 4×4), [`grad_weight3x3`]).

use std::mem::MaybeUninit;

use gemm::Parallelism;
use rayon::prelude::*;

use crate::kernels::gemm_conv::{Elem, Geom};
use crate::kernels::scratch::Scratch;
use crate::kernels::winograd::WeightGradLayout;

use super::input::{deinterleave4, pad_phased, transform_input};
use super::{balanced_blocks, runs, TileSpan, A, M, XI};

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
            crate::kernels::winograd::transpose_components(
                XI,
                self.co,
                span.count(),
                dm,
                spare,
                false,
            );
            std::mem::swap(dm, spare);
        }
    }

    /// The accumulator `dU` (`[36][c_out][c_in]`, or `[36][c_in][c_out]` for
    /// [`WeightGradLayout::GradTransposed`]) of `n` images split by tiles: blocks of
    /// consecutive tiles of one image, each of the
    /// [`NOMINAL_THREADS`](crate::kernels::gemm_conv::NOMINAL_THREADS) parts summing its
    /// blocks into its own whole accumulator, the accumulators added at the end; `threads` only decides
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
        let parts = crate::kernels::gemm_conv::NOMINAL_THREADS;
        let target = (65_536 / ci.max(co).max(1)).clamp(32, 1024);
        let blocks = tiles.div_ceil(target).max(1);
        let blocks = if n * blocks < 4 * parts {
            parts.div_ceil(n)
        } else {
            blocks
        };
        let (tb_max, blocks) = balanced_blocks(n, tiles, blocks, parts);
        crate::kernels::gemm_conv::sum_over_parts(
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
                    crate::kernels::winograd::accumulate_component_gemms(
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
                    crate::kernels::winograd::accumulate_component_gemms(
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

crate::kernels::simd::avx2_dispatch!(
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
/// `w0 − 2w1 + 4w2 − 8w3`, `w3`
/// (separate slices for the reason given at [`bt6`](super::input::bt6)).
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
/// `(m3 + m4 − m1 − m2)/6 + m5`
/// (separate slices for the reason given at [`bt6`](super::input::bt6)).
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
/// [`crate::kernels::winograd::padded_planes`] writes them) of `4·tw` columns stored
/// phase-major:
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
    crate::kernels::winograd::padded_planes(
        grad_out,
        (planes, h, w),
        ((M * th + 1) * rl, rl),
        |d, srow| deinterleave4(srow, 0, d, tw),
    )
}

crate::kernels::simd::avx2_dispatch!(
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
/// of 144 (F(2×2, 3×3)'s weight gradient,
/// [`crate::kernels::winograd::grad_weight3x3`], does 64).
pub(crate) fn grad_weight3x3<T: Elem>(x: &[T], grad_out: &[T], g: &Geom, threads: usize) -> Vec<T> {
    let layout = WeightGradLayout::preferred(g.c_in, g.c_out);
    grad_weight3x3_with(x, grad_out, g, threads, layout)
}

/// [`grad_weight3x3`] with the weight-gradient GEMMs' layout chosen by the caller (the
/// tests run both).
pub(super) fn grad_weight3x3_with<T: Elem>(
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
            crate::kernels::winograd::transpose_components(XI, ci, co, &du, &mut t, true);
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
