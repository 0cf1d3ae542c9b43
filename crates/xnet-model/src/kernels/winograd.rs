//! Winograd F(2×2, 3×3) for stride-1, pad-1, 3×3 convolutions with many channels.
//!
//! Each 2×2 output tile comes from a 4×4 input tile: `Y = Aᵀ [(G g Gᵀ) ⊙ (Bᵀ d B)] A`.
//! Summed over input channels, the element-wise products become 16 GEMMs of
//! `[tiles × c_in] · [c_in × c_out]`, with 16 multiplies per 4 outputs instead of 36: 2.25×
//! fewer FLOPs than the direct convolution. The transforms only add and halve (exact in
//! binary floating point up to rounding of the sums), so the result stays within float
//! rounding of the direct one (the tests check 1e-4).
//!
//! Tiles are processed in blocks (one block of tile rows of one image per task) so that the
//! transformed input and the GEMM results of a block stay in cache.
//!
//! Two variants share this design. F(2×2, 3×3), here, runs the forward of layers with few
//! tiles; its weight gradient ([`grad_weight3x3`]) runs only when `XNET_CONV_PATH=f23`
//! forces it (the default is F(4×4, 3×3)'s). F(4×4, 3×3), in
//! [`super::winograd4`], takes 6×6 input tiles to 4×4 outputs with 36 GEMMs: 36 multiplies
//! per 16 outputs, 4× fewer than direct, at about 10–20× F(2×2, 3×3)'s rounding error (still
//! within 2e-5 of the largest output on XNet's layers in f32). It runs the forward and input
//! gradient of layers with many tiles; [`super::winograd4::preferred`] chooses per layer
//! from measured timings, and `XNET_CONV_PATH=direct|f23|f43` forces one.

use std::mem::MaybeUninit;

use gemm::Parallelism;
use rayon::prelude::*;

use super::gemm_conv::{sum_over_parts, Elem, Epilogue, Geom, SendPtr};
use super::scratch::Scratch;

/// `planes` padded planes of `plane` elements made from the `h × w` image planes of `x`: a
/// zero row of `row_len`, then image row `y` written by `fill_row(padded row y + 1, image
/// row y)` (which must write all `row_len` elements), then zeros to the end of the plane.
/// Every element is written once, so nothing is cleared first.
pub(crate) fn padded_planes<T: Elem>(
    x: &[T],
    (planes, h, w): (usize, usize, usize),
    (plane, row_len): (usize, usize),
    fill_row: impl Fn(&mut [MaybeUninit<T>], &[T]) + Sync,
) -> Vec<T> {
    if h * w == 0 {
        return vec![T::ZERO; planes * plane];
    }
    assert!(
        (h + 1) * row_len <= plane,
        "padded plane too small for its rows"
    );
    let mut xp: Vec<T> = Vec::with_capacity(planes * plane);
    xp.spare_capacity_mut()[..planes * plane]
        .par_chunks_mut(plane)
        .zip(x.par_chunks(h * w))
        .for_each(|(dst, src)| {
            let zero = MaybeUninit::new(T::ZERO);
            dst[..row_len].fill(zero);
            for y in 0..h {
                fill_row(
                    &mut dst[(y + 1) * row_len..(y + 2) * row_len],
                    &src[y * w..(y + 1) * w],
                );
            }
            dst[(h + 1) * row_len..].fill(zero);
        });
    // SAFETY: the loop above initialised all `planes` planes of `plane` elements (the
    // `fill_row` contract covers the image rows).
    unsafe { xp.set_len(planes * plane) };
    xp
}

/// Copies `planes` planes of `h × w` into zero-bordered planes of `hp × wp` (one zero row and
/// column before, the rest after), as the 4×4 tiles need.
fn pad_for_tiles<T: Elem>(
    x: &[T],
    planes: usize,
    h: usize,
    w: usize,
    hp: usize,
    wp: usize,
) -> Vec<T> {
    padded_planes(x, (planes, h, w), (hp * wp, wp), |d, srow| {
        let zero = MaybeUninit::new(T::ZERO);
        d[0] = zero;
        for (o, &v) in d[1..=w].iter_mut().zip(srow) {
            *o = MaybeUninit::new(v);
        }
        d[w + 1..].fill(zero);
    })
}

/// The nine taps of output channel `o` of a `[c_out, c_in, 3, 3]` weight (read from `w_base`
/// with strides `(w_co, w_ci, w_tap)`, tap = `3·row + col`) as nine contiguous rows of
/// `c_in` in `k`, so that the weight transforms run along `c_in`.
pub(crate) fn gather_taps<T: Elem>(
    weight: &[T],
    w_base: usize,
    (w_co, w_ci, w_tap): (isize, isize, isize),
    o: usize,
    k: &mut [T],
) {
    let ci = k.len() / 9;
    // Input channel outer, taps inner: the nine taps of one (o, i) pair are adjacent in the
    // weight (|w_tap| = 1), so each weight cache line is read once, also when `w_ci` is a
    // large stride (the input gradient's transposed weight), and the nine rows of `k` are
    // written as nine sequential streams.
    let start = w_base as isize + o as isize * w_co;
    for i in 0..ci {
        let at = start + i as isize * w_ci;
        for tap in 0..9 {
            k[tap * ci + i] = weight[(at + tap as isize * w_tap) as usize];
        }
    }
}

/// The tile rows `tr0..tr1` of one image, `tw` tiles wide, over padded planes of width `wp`
/// and `plane` elements.
struct TileRows {
    tw: usize,
    wp: usize,
    plane: usize,
    tr0: usize,
    tr1: usize,
}

impl TileRows {
    /// Task `task` of a split of every image's `th` tile rows into `blocks` blocks of
    /// `trows` rows: its image and its tile rows.
    fn of_task(
        task: usize,
        (blocks, trows, th): (usize, usize, usize),
        tw: usize,
        wp: usize,
        plane: usize,
    ) -> (usize, Self) {
        let (b, blk) = (task / blocks, task % blocks);
        let tr0 = blk * trows;
        let tr1 = (tr0 + trows).min(th);
        (
            b,
            Self {
                tw,
                wp,
                plane,
                tr0,
                tr1,
            },
        )
    }

    /// Number of tiles.
    fn count(&self) -> usize {
        (self.tr1 - self.tr0) * self.tw
    }
}

super::simd::avx2_dispatch!(
/// `V = Bᵀ d B` of every 4×4 input tile of `rows` of image `b`, for the input channels
/// `chans`, written through `v` into the block's `[16][c_in][tiles]` (the GEMM operand,
/// unit stride on tiles) of `v_len` elements. Separable and vectorised along the row: Bᵀ
/// over the four input rows of a tile row (whole padded rows at once), then B over each
/// tile's four columns, written as four contiguous runs of `tw` tiles per row of the 4×4
/// transform. Calls with disjoint `chans` write disjoint elements, so they may run in
/// parallel on the same `v`.
fn transform_input<T: Elem>(
    xp: &[T],
    b: usize,
    ci: usize,
    chans: std::ops::Range<usize>,
    rows: &TileRows,
    v: SendPtr<T>,
    v_len: usize,
) => transform_input_impl);

#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn transform_input_impl<T: Elem>(
    xp: &[T],
    b: usize,
    ci: usize,
    chans: std::ops::Range<usize>,
    rows: &TileRows,
    v: SendPtr<T>,
    v_len: usize,
) {
    let TileRows {
        tw,
        wp,
        plane,
        tr0,
        tr1,
    } = *rows;
    let tb = rows.count();
    assert!(
        chans.end <= ci && 16 * ci * tb <= v_len,
        "transformed-input block too small"
    );
    let mut m = vec![T::ZERO; 4 * wp];
    for c in chans {
        let base = (b * ci + c) * plane;
        for ty in tr0..tr1 {
            let r0 = base + 2 * ty * wp;
            let row = |r: usize| &xp[r0 + r * wp..r0 + (r + 1) * wp];
            let (d0, d1, d2, d3) = (row(0), row(1), row(2), row(3));
            // Bᵀ d: rows d0−d2, d1+d2, d2−d1, d1−d3.
            let (m0, rest) = m.split_at_mut(wp);
            let (m1, rest) = rest.split_at_mut(wp);
            let (m2, m3) = rest.split_at_mut(wp);
            for x in 0..wp {
                m0[x] = d0[x] - d2[x];
                m1[x] = d1[x] + d2[x];
                m2[x] = d2[x] - d1[x];
                m3[x] = d1[x] - d3[x];
            }
            let t0 = (ty - tr0) * tw;
            for (r, mr) in [&*m0, &*m1, &*m2, &*m3].into_iter().enumerate() {
                // (· B) of tile tx reads columns 2tx .. 2tx+3 of this transformed row; the
                // four results go to rows ξ = 4r .. 4r+3 of V.
                let run = |cc: usize| {
                    let at = ((4 * r + cc) * ci + c) * tb + t0;
                    // SAFETY: `at + tw ≤ 16·ci·tb ≤ v_len` (asserted above); the run
                    // belongs to channel c alone (callers split by channel), and the four
                    // runs are disjoint (different ξ).
                    unsafe { std::slice::from_raw_parts_mut(v.get().add(at), tw) }
                };
                let (v0, v1, v2, v3) = (run(0), run(1), run(2), run(3));
                let mr = &mr[..2 * tw + 2];
                for tx in 0..tw {
                    let (a0, a1, a2, a3) =
                        (mr[2 * tx], mr[2 * tx + 1], mr[2 * tx + 2], mr[2 * tx + 3]);
                    v0[tx] = a0 - a2;
                    v1[tx] = a1 + a2;
                    v2[tx] = a2 - a1;
                    v3[tx] = a1 - a3;
                }
            }
        }
    }
}

super::simd::avx2_dispatch!(
/// `Y = Aᵀ M A` of the GEMM results `mm` (`[16][c_out][tiles]`) of the tile rows `rows` of
/// image `b` (`hwb` = (h, w, b)), for the output channels `chans`, with Aᵀ = [[1, 1, 1, 0], [0, 1, −1, −1]],
/// plus bias and activation, written through `outp` (`[n, c_out, h, w]`): Aᵀ over the ξ
/// rows (vectorised along the tiles), then A over each tile's columns into a two-row
/// buffer, cropped into the output. Calls with disjoint `chans` write disjoint rows.
fn output_transform<T: Elem>(
    mm: &[T],
    co: usize,
    chans: std::ops::Range<usize>,
    rows: &TileRows,
    hwb: (usize, usize, usize),
    bias: Option<&[T]>,
    epilogue: Epilogue,
    outp: SendPtr<T>,
) => output_transform_impl);

#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn output_transform_impl<T: Elem>(
    mm: &[T],
    co: usize,
    chans: std::ops::Range<usize>,
    rows: &TileRows,
    (h, w, b): (usize, usize, usize),
    bias: Option<&[T]>,
    epilogue: Epilogue,
    outp: SendPtr<T>,
) {
    let (tw, tr0, tr1, tb) = (rows.tw, rows.tr0, rows.tr1, rows.count());
    let mut s = vec![T::ZERO; 8 * tw];
    let mut out_row = vec![T::ZERO; 2 * tw];
    for o in chans {
        let bias_o = bias.map_or(T::ZERO, |bb| bb[o]);
        for ty in tr0..tr1 {
            let t0 = (ty - tr0) * tw;
            let m = |xi: usize| &mm[(xi * co + o) * tb + t0..(xi * co + o) * tb + t0 + tw];
            let (s0, s1) = s.split_at_mut(4 * tw);
            for j in 0..4 {
                let (m0, m1, m2, m3) = (m(j), m(4 + j), m(8 + j), m(12 + j));
                let (a, b) = (&mut s0[j * tw..(j + 1) * tw], &mut s1[j * tw..(j + 1) * tw]);
                for tx in 0..tw {
                    a[tx] = m0[tx] + m1[tx] + m2[tx];
                    b[tx] = m1[tx] - m2[tx] - m3[tx];
                }
            }
            for (dy, sr) in [&*s0, &*s1].into_iter().enumerate() {
                let y = 2 * ty + dy;
                if y >= h {
                    continue;
                }
                let (q0, q1, q2, q3) = (
                    &sr[..tw],
                    &sr[tw..2 * tw],
                    &sr[2 * tw..3 * tw],
                    &sr[3 * tw..],
                );
                let row = &mut out_row[..2 * tw];
                for tx in 0..tw {
                    let mut e = q0[tx] + q1[tx] + q2[tx] + bias_o;
                    let mut od = q1[tx] - q2[tx] - q3[tx] + bias_o;
                    if epilogue == Epilogue::BiasRelu {
                        e = if e > T::ZERO { e } else { T::ZERO };
                        od = if od > T::ZERO { od } else { T::ZERO };
                    }
                    row[2 * tx] = e;
                    row[2 * tx + 1] = od;
                }
                // SAFETY: the caller's task alone writes output rows 2·tr0..2·tr1 of image
                // b in channels `chans`; the row holds `w ≤ 2·tw` elements inside the
                // allocation.
                unsafe {
                    std::ptr::copy_nonoverlapping(
                        row.as_ptr(),
                        outp.get().add(((b * co + o) * h + y) * w),
                        w,
                    )
                };
            }
        }
    }
}

/// `G` = [[1, 0, 0], [½, ½, ½], [½, −½, ½], [0, 0, 1]] applied element-wise to three
/// equal-length rows `a, b, d` into `o0..o3`.
#[inline(always)]
fn g4<T: Elem>(a: &[T], b: &[T], d: &[T], o: [&mut [MaybeUninit<T>]; 4]) {
    let [o0, o1, o2, o3] = o;
    let n = o0.len();
    let (a, b, d) = (&a[..n], &b[..n], &d[..n]);
    let (o1, o2, o3) = (&mut o1[..n], &mut o2[..n], &mut o3[..n]);
    for i in 0..n {
        o0[i].write(a[i]);
        o1[i].write(T::HALF * (a[i] + b[i] + d[i]));
        o2[i].write(T::HALF * (a[i] - b[i] + d[i]));
        o3[i].write(d[i]);
    }
}

/// The output-tile side of a Winograd variant: F(2×2, 3×3) or F(4×4, 3×3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TileSize {
    /// F(2×2, 3×3): 4×4 input tiles, 16 components.
    Two,
    /// F(4×4, 3×3): 6×6 input tiles, 36 components.
    Four,
}

impl TileSize {
    /// Side of the input tile (`G`'s rows): 4 or 6.
    fn input_side(self) -> usize {
        match self {
            TileSize::Two => 4,
            TileSize::Four => 6,
        }
    }
}

/// `U = G k Gᵀ` of every `(c_out, c_in)` kernel of the weight read from `w_base` with strides
/// `(w_co, w_ci, w_tap)` (tap = `3·row + col`), for the variant `tile`, in the layout
/// `[a²][c_out][c_in]` (`a` the input-tile side; the GEMMs' right operand, unit stride on
/// `c_in`): one output channel per task ([`weight_rows`]), every row written once.
pub(crate) fn transform_weight<T: Elem>(
    tile: TileSize,
    (ci, co): (usize, usize),
    weight: &[T],
    w_base: usize,
    w_strides: (isize, isize, isize),
) -> Vec<T> {
    let a = tile.input_side();
    let len = a * a * co * ci;
    let mut u: Vec<T> = Vec::with_capacity(len);
    let up = SendPtr(u.as_mut_ptr());
    (0..co).into_par_iter().for_each_init(
        || (vec![T::ZERO; 9 * ci], vec![T::ZERO; 3 * a * ci]),
        |(k, gk), o| weight_rows(weight, w_base, w_strides, (o, co), k, gk, up, tile),
    );
    // SAFETY: the tasks above wrote all a²·co rows of ci elements.
    unsafe { u.set_len(len) };
    u
}

super::simd::avx2_dispatch!(
/// Rows `u[ξ][o][·]` of output channel `o` (`oc` = (o, c_out)) of `U = G k Gᵀ` of the
/// variant `tile` (`[16 or 36][c_out][c_in]`, through `up`), by [`weight_rows_with`];
/// `gk` is scratch of `12·c_in` or `18·c_in`.
fn weight_rows<T: Elem>(
    weight: &[T],
    w_base: usize,
    w_strides: (isize, isize, isize),
    oc: (usize, usize),
    k: &mut [T],
    gk: &mut [T],
    up: SendPtr<T>,
    tile: TileSize,
) => weight_rows_impl);

#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn weight_rows_impl<T: Elem>(
    weight: &[T],
    w_base: usize,
    w_strides: (isize, isize, isize),
    oc: (usize, usize),
    k: &mut [T],
    gk: &mut [T],
    up: SendPtr<T>,
    tile: TileSize,
) {
    match tile {
        TileSize::Two => weight_rows_with::<T, 4, G4>(weight, w_base, w_strides, oc, k, gk, up),
        TileSize::Four => {
            weight_rows_with::<T, 6, super::winograd4::G6>(weight, w_base, w_strides, oc, k, gk, up)
        }
    }
}

/// `G` (`A × 3`) of a Winograd variant applied element-wise to three equal-length rows
/// into `A` rows. A trait rather than a function argument, so that the call is inlined into
/// the AVX2 copies (a passed function stays an out-of-line, baseline `Fn::call`).
pub(crate) trait KernelRows<T: Elem, const A: usize> {
    /// `o[i] = Σ_j G[i][j] · [a, b, d][j]`, element-wise.
    fn apply(a: &[T], b: &[T], d: &[T], o: [&mut [MaybeUninit<T>]; A]);
}

/// F(2×2, 3×3)'s `G` ([`g4`]).
struct G4;

impl<T: Elem> KernelRows<T, 4> for G4 {
    #[inline(always)]
    fn apply(a: &[T], b: &[T], d: &[T], o: [&mut [MaybeUninit<T>]; 4]) {
        g4(a, b, d, o)
    }
}

/// Rows `u[ξ][o][·]` of output channel `o` of `U = G k Gᵀ` for `A × A` input tiles
/// (`[A²][c_out][c_in]`, through `up`), `G` as given by `G`. The nine taps of all its input channels are gathered into contiguous rows of `k`
/// first, so that both halves run along `c_in` (vectorised): `G k` into `gk`
/// (`[a rows][3 kernel columns][c_in]`, at least `3·a·c_in`), then `(G k) Gᵀ` row by row,
/// written into `u` in place. Callers run one output channel per task.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn weight_rows_with<T: Elem, const A: usize, G: KernelRows<T, A>>(
    weight: &[T],
    w_base: usize,
    w_strides: (isize, isize, isize),
    (o, co): (usize, usize),
    k: &mut [T],
    gk: &mut [T],
    up: SendPtr<T>,
) {
    let ci = k.len() / 9;
    assert!(
        o < co && gk.len() >= 3 * A * ci,
        "weight transform scratch too small"
    );
    gather_taps(weight, w_base, w_strides, o, k);
    let tap = |r: usize, c: usize| &k[(3 * r + c) * ci..(3 * r + c + 1) * ci];
    {
        // SAFETY: a view of initialised `T`s as `MaybeUninit<T>`, only written with `T`s.
        let gk = unsafe {
            std::slice::from_raw_parts_mut(gk.as_mut_ptr().cast::<MaybeUninit<T>>(), gk.len())
        };
        for c in 0..3 {
            // Rows 3r + c, r < A, of `gk`: column c of `G k`.
            let mut rows = gk.chunks_exact_mut(ci.max(1)).skip(c).step_by(3);
            let outs = std::array::from_fn(|_| rows.next().unwrap_or_default());
            G::apply(tap(0, c), tap(1, c), tap(2, c), outs);
        }
    }
    for r in 0..A {
        // Row r of (G k) Gᵀ: G applied along the row's three columns, into u[A·r + c][o][·].
        let outs = std::array::from_fn(|c| {
            // SAFETY: output channel `o` alone writes row u[A·r + c][o][·] (one task per
            // channel), inside the allocation of A²·co·ci elements (o < co).
            unsafe {
                std::slice::from_raw_parts_mut(
                    up.get()
                        .add(((A * r + c) * co + o) * ci)
                        .cast::<MaybeUninit<T>>(),
                    ci,
                )
            }
        });
        let t = |c: usize| &gk[(3 * r + c) * ci..(3 * r + c + 1) * ci];
        G::apply(t(0), t(1), t(2), outs);
    }
}

/// The parts of `0..len` for `threads` parallel calls when `split` (one part otherwise).
fn split_range(len: usize, threads: usize, split: bool) -> Vec<std::ops::Range<usize>> {
    let parts = if split {
        threads.clamp(1, len.max(1))
    } else {
        1
    };
    let step = len.div_ceil(parts).max(1);
    (0..len)
        .step_by(step)
        .map(|a| a..(a + step).min(len))
        .collect()
}

/// `M_ξ = V_ξ · U_ξ` for the `components` Winograd components of a block of `tb` tiles
/// (16 for F(2×2, 3×3), 36 for F(4×4, 3×3)): `v` is `[ξ][c_in][tb]`, `u` is
/// `[ξ][c_out][c_in]`, and `mm` receives `[ξ][c_out][tb]` (unit stride on tiles).
#[allow(clippy::too_many_arguments)]
pub(crate) fn component_gemms<T: Elem>(
    components: usize,
    tb: usize,
    ci: usize,
    co: usize,
    v: &[T],
    u: &[T],
    mm: &mut [T],
    parallelism: Parallelism,
) {
    assert!(
        v.len() >= components * ci * tb
            && u.len() >= components * co * ci
            && mm.len() >= components * co * tb,
        "winograd GEMM operands smaller than their extents"
    );
    for xi in 0..components {
        // SAFETY: the three operands hold at least the extents asserted above.
        unsafe {
            gemm::gemm(
                tb,
                co,
                ci,
                mm.as_mut_ptr().add(xi * co * tb),
                tb as isize,
                1,
                false,
                v.as_ptr().add(xi * ci * tb),
                tb as isize,
                1,
                u.as_ptr().add(xi * co * ci),
                ci as isize,
                1,
                T::ZERO,
                T::ONE,
                false,
                false,
                false,
                parallelism,
            );
        }
    }
}

/// How the weight-gradient GEMMs lay out their operands and result.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum WeightGradLayout {
    /// `dm` `[ξ][c_out][tiles]` as the gradient transform writes it, `du` `[ξ][c_out][c_in]`.
    Direct,
    /// `dm` transposed first to `[ξ][tiles][c_out]` ([`transpose_components`]) and `du`
    /// `[ξ][c_in][c_out]`: `gemm`'s left operand then has contiguous rows, which its
    /// kernels need when the left side is narrow. One Zen 4 core, 36 products, the
    /// transposition counted: c_out 64 / c_in 256 / 256 tiles 57 → 81 GFLOP/s, 64 / 128 / 512
    /// 40 → 80, 128 / 512 / 128 68 → 80, 128 / 256 / 256 72 → 81; from c_out ≥ c_in, or
    /// 256 / 512, no faster.
    GradTransposed,
}

impl WeightGradLayout {
    /// The faster layout for a `c_in → c_out` weight gradient (see
    /// [`WeightGradLayout::GradTransposed`]).
    pub(crate) fn preferred(ci: usize, co: usize) -> Self {
        if co < ci && co <= 128 {
            WeightGradLayout::GradTransposed
        } else {
            WeightGradLayout::Direct
        }
    }
}

/// `[ξ][rows][cols]` → `[ξ][cols][rows]` for the first `components` planes of `src`, the
/// planes split between rayon's threads when `parallel` (for a whole layer's accumulator,
/// which would otherwise keep the other cores idle; not inside a task that is already one
/// of many).
pub(crate) fn transpose_components<T: Elem>(
    components: usize,
    rows: usize,
    cols: usize,
    src: &[T],
    dst: &mut [T],
    parallel: bool,
) {
    let plane = rows * cols;
    if plane == 0 {
        return;
    }
    let one = |(s, d): (&[T], &mut [T])| super::transpose::transpose(s, rows, cols, d);
    if parallel {
        src.par_chunks_exact(plane)
            .zip(dst.par_chunks_exact_mut(plane))
            .take(components)
            .for_each(one);
    } else {
        src.chunks_exact(plane)
            .zip(dst.chunks_exact_mut(plane))
            .take(components)
            .for_each(one);
    }
}

/// `dU_ξ (+)= dM_ξ · V_ξᵀ` for the `components` Winograd components of a block of `tb`
/// tiles, the weight gradients' sum over tiles: `v` is `[ξ][c_in][tb]`; `dm` and `du` are
/// laid out as `layout` says; `du` is overwritten unless `accumulate`. Each GEMM splits its
/// output as `parallelism` says.
#[allow(clippy::too_many_arguments)]
pub(crate) fn accumulate_component_gemms<T: Elem>(
    components: usize,
    tb: usize,
    ci: usize,
    co: usize,
    dm: &[T],
    v: &[T],
    layout: WeightGradLayout,
    du: &mut [T],
    accumulate: bool,
    parallelism: Parallelism,
) {
    assert!(
        dm.len() >= components * co * tb
            && v.len() >= components * ci * tb
            && du.len() >= components * co * ci,
        "winograd weight-gradient GEMM operands smaller than their extents"
    );
    // Strides of dU [c_out × c_in] and dM [c_out × tb] as (column, row) strides.
    let ((du_cs, du_rs), (dm_cs, dm_rs)) = match layout {
        WeightGradLayout::Direct => ((1, ci), (1, tb)),
        WeightGradLayout::GradTransposed => ((co, 1), (co, 1)),
    };
    for xi in 0..components {
        // SAFETY: the three operands hold at least the extents asserted above, and the
        // strides address exactly those extents in either layout.
        unsafe {
            gemm::gemm(
                co,
                ci,
                tb,
                du[xi * co * ci..].as_mut_ptr(),
                du_cs as isize,
                du_rs as isize,
                accumulate,
                dm[xi * co * tb..].as_ptr(),
                dm_cs as isize,
                dm_rs as isize,
                v[xi * ci * tb..].as_ptr(),
                tb as isize,
                1,
                T::ONE,
                T::ONE,
                false,
                false,
                false,
                parallelism,
            );
        }
    }
}

/// Whether the Winograd path applies and pays: 3×3, no dilation, and enough channels that
/// the transforms are cheap next to the GEMMs. Measured per XNet layer on the 2-core Zen 3
/// (CPU time, 1×200² and 8×128², after the transforms were vectorised): from 64 channels in
/// and out it beats the direct path on every layer but one (256→128 at 64², −15 %), by
/// 10–30 % on most and ~30 % on the largest direct layer (256→64 at 200²).
pub(crate) fn applies(g: &Geom) -> bool {
    g.k == 3 && g.dil == 1 && g.c_in >= 64 && g.c_out >= 64
}

/// `act(conv3x3(x, weight) + bias)` over an unpadded `[n, c_in, h, w]` input; the weight is
/// read as in [`super::gemm_conv::conv_forward`] (base and strides), tap = `3·row + col`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn conv3x3<T: Elem>(
    x: &[T],
    g: &Geom,
    weight: &[T],
    w_base: usize,
    (w_co, w_ci, w_tap): (isize, isize, isize),
    bias: Option<&[T]>,
    epilogue: Epilogue,
    threads: usize,
) -> Vec<T> {
    let (n, ci, co, h, w) = (g.n, g.c_in, g.c_out, g.h, g.w);
    let (th, tw) = (h.div_ceil(2), w.div_ceil(2));
    // Zero border of 1 on top/left and enough on bottom/right for whole 4×4 tiles.
    let (hp, wp) = (2 * th + 2, 2 * tw + 2);
    let plane = hp * wp;
    let xp = pad_for_tiles(x, n * ci, h, w, hp, wp);

    // U = G g Gᵀ, layout [16][c_out][c_in] (the GEMM's right operand, unit stride on c_in).
    let u = transform_weight(TileSize::Two, (ci, co), weight, w_base, (w_co, w_ci, w_tap));

    // Written once below (every row y < h of every channel), never cleared.
    let mut out: Vec<T> = Vec::with_capacity(n * co * h * w);
    let outp = SendPtr(out.as_mut_ptr());
    let target_tiles = (32_768 / ci.max(1)).clamp(64, 1024);
    let mut trows = target_tiles.div_ceil(tw).clamp(1, th);
    // Few tiles (the 25² layers of a 200² XNet have 169): splitting them into blocks would
    // give GEMMs of a few dozen rows, each repacking the whole transformed weight. Keep one
    // block per image instead and let the GEMMs use the threads. The blocks may set the
    // rounding, so they are made for the nominal thread count.
    let nominal = super::gemm_conv::NOMINAL_THREADS;
    let few_tiles = n * th * tw < 2 * nominal * 128;
    if few_tiles {
        trows = th;
    }
    while !few_tiles && trows > 1 && n * th.div_ceil(trows) < 2 * nominal {
        trows = trows.div_ceil(2);
    }
    let blocks = th.div_ceil(trows);
    let gemm_threads = if n * blocks < threads {
        Parallelism::Rayon(threads)
    } else {
        Parallelism::None
    };
    // Per-job scratch (transformed input, GEMM results), reused across the tasks of a job:
    // every element is overwritten before it is read, so it is never cleared.
    let scratch = || {
        (
            Scratch::<T>::take(16 * ci * trows * tw),
            Scratch::<T>::take(16 * co * trows * tw),
        )
    };
    (0..n * blocks)
        .into_par_iter()
        .for_each_init(scratch, |(v, mm), task| {
            let (b, tiles) = TileRows::of_task(task, (blocks, trows, th), tw, wp, plane);
            let tb = tiles.count();
            // V = Bᵀ d B, layout [16][c_in][tiles] (the GEMM's left operand, unit stride on tiles).
            // With fewer tasks than threads, the transforms split their channels between
            // the threads too (the GEMMs already do, inside `gemm`).
            let split = matches!(gemm_threads, Parallelism::Rayon(_));
            let (vp, v_len) = (SendPtr(v.as_mut_ptr()), v.len());
            split_range(ci, threads, split)
                .into_par_iter()
                .for_each(|cs| transform_input(&xp, b, ci, cs, &tiles, vp, v_len));
            // M_ξ [tiles × c_out] = V_ξ [tiles × c_in] · U_ξ [c_in × c_out], layout [16][c_out][tiles].
            component_gemms(16, tb, ci, co, v, &u, mm, gemm_threads);
            let mm: &[T] = mm;
            split_range(co, threads, split)
                .into_par_iter()
                .for_each(|os| {
                    output_transform(mm, co, os, &tiles, (h, w, b), bias, epilogue, outp)
                });
        });
    // SAFETY: the blocks cover every tile row of every image, and each writes rows
    // 2·tr0..min(2·tr1, h) of every channel: all n·co·h·w elements.
    unsafe { out.set_len(n * co * h * w) };
    out
}

/// Weight gradient of a stride-1, pad-1 3×3 convolution by Winograd F(2×2, 3×3):
/// `dW = Gᵀ [Σ_tiles (A dY Aᵀ) ⊙ (Bᵀ d B)] G`, the transpose of [`conv3x3`]'s algebra. The
/// 16 products summed over tiles are GEMMs `dU_ξ [c_out × c_in] += dM_ξ [c_out × tiles] ·
/// V_ξᵀ [tiles × c_in]`, accumulated per part over its share of tile blocks and then
/// added. `x` is the unpadded `[n, c_in, h, w]` input, `grad_out` the `[n, c_out, h, w]`
/// gradient; the result is `[c_out, c_in, 3, 3]`.
pub(crate) fn grad_weight3x3<T: Elem>(x: &[T], grad_out: &[T], g: &Geom, threads: usize) -> Vec<T> {
    let (n, ci, co, h, w) = (g.n, g.c_in, g.c_out, g.h, g.w);
    let (th, tw) = (h.div_ceil(2), w.div_ceil(2));
    let (hp, wp) = (2 * th + 2, 2 * tw + 2);
    let plane = hp * wp;
    let xp = pad_for_tiles(x, n * ci, h, w, hp, wp);
    let target_tiles = (65_536 / ci.max(co).max(1)).clamp(64, 1024);
    let trows = target_tiles.div_ceil(tw).clamp(1, th);
    let blocks = th.div_ceil(trows);
    let du = sum_over_parts(
        n * blocks,
        threads,
        16 * co * ci,
        |tasks, du: &mut [T], parallelism| {
            // `v` is written before it is read; `dm` is written below for every tile.
            let mut v = Scratch::<T>::take(16 * ci * trows * tw);
            let mut dm = Scratch::<T>::take(16 * co * trows * tw);
            let mut first = true;
            for task in tasks {
                let (b, tiles) = TileRows::of_task(task, (blocks, trows, th), tw, wp, plane);
                let (tr0, tr1, tb) = (tiles.tr0, tiles.tr1, tiles.count());
                // V = Bᵀ d B exactly as in the forward, layout [16][c_in][tiles].
                transform_input(&xp, b, ci, 0..ci, &tiles, SendPtr(v.as_mut_ptr()), v.len());
                // dM = A dY Aᵀ with A = [[1, 0], [1, 1], [1, −1], [0, −1]], layout
                // [16][c_out][tiles]; output pixels beyond the image have dY = 0.
                for o in 0..co {
                    let go = &grad_out[(b * co + o) * h * w..(b * co + o + 1) * h * w];
                    for ty in tr0..tr1 {
                        let t0 = (ty - tr0) * tw;
                        let dy = |y: usize, x: usize| {
                            if y < h && x < w {
                                go[y * w + x]
                            } else {
                                T::ZERO
                            }
                        };
                        for tx in 0..tw {
                            let (y0, x0) = (2 * ty, 2 * tx);
                            let d = [
                                [dy(y0, x0), dy(y0, x0 + 1)],
                                [dy(y0 + 1, x0), dy(y0 + 1, x0 + 1)],
                            ];
                            // P = A dY (4 × 2), then dM = P Aᵀ (4 × 4).
                            let pr = [
                                d[0],
                                [d[0][0] + d[1][0], d[0][1] + d[1][1]],
                                [d[0][0] - d[1][0], d[0][1] - d[1][1]],
                                [T::ZERO - d[1][0], T::ZERO - d[1][1]],
                            ];
                            for (r, p) in pr.iter().enumerate() {
                                let vals = [p[0], p[0] + p[1], p[0] - p[1], T::ZERO - p[1]];
                                for (c, &val) in vals.iter().enumerate() {
                                    dm[((4 * r + c) * co + o) * tb + t0 + tx] = val;
                                }
                            }
                        }
                    }
                }
                accumulate_component_gemms(
                    16,
                    tb,
                    ci,
                    co,
                    &dm,
                    &v,
                    WeightGradLayout::Direct,
                    du,
                    !first,
                    parallelism,
                );
                first = false;
            }
        },
    );
    // dW = Gᵀ dU G with G = [[1, 0, 0], [½, ½, ½], [½, −½, ½], [0, 0, 1]].
    let mut dw = vec![T::ZERO; co * ci * 9];
    dw.par_chunks_mut(ci * 9).enumerate().for_each(|(o, dwo)| {
        for (i, k) in dwo.chunks_exact_mut(9).enumerate() {
            let d = |r: usize, c: usize| du[((4 * r + c) * co + o) * ci + i];
            let mut q = [[T::ZERO; 4]; 3];
            #[allow(clippy::needless_range_loop)]
            for c in 0..4 {
                let (d0, d1, d2, d3) = (d(0, c), d(1, c), d(2, c), d(3, c));
                q[0][c] = d0 + T::HALF * (d1 + d2);
                q[1][c] = T::HALF * (d1 - d2);
                q[2][c] = T::HALF * (d1 + d2) + d3;
            }
            for (a, qa) in q.iter().enumerate() {
                k[3 * a] = qa[0] + T::HALF * (qa[1] + qa[2]);
                k[3 * a + 1] = T::HALF * (qa[1] - qa[2]);
                k[3 * a + 2] = T::HALF * (qa[1] + qa[2]) + qa[3];
            }
        }
    });
    dw
}

#[cfg(test)]
mod tests {
    use super::split_range;
    use crate::kernels::gemm_conv::Geom;

    /// The F(2×2, 3×3) weight gradient, which runs only where forced (`XNET_CONV_PATH=f23`),
    /// gives the same bits on any thread count, like the paths `tests/thread_count.rs`
    /// covers: several tile blocks per image, summed in the nominal parts.
    #[test]
    fn f23_weight_gradient_is_the_same_on_any_thread_count() {
        let g = Geom {
            n: 2,
            c_in: 64,
            c_out: 64,
            h: 40,
            w: 40,
            k: 3,
            dil: 1,
        };
        let wave = |len: usize, step: f32| -> Vec<f32> {
            (0..len).map(|i| (i as f32 * step).sin()).collect()
        };
        let x = wave(g.n * g.c_in * g.h * g.w, 1.3e-3);
        let dy = wave(g.n * g.c_out * g.h * g.w, 2.1e-3);
        let on = |threads: usize| -> Vec<u32> {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .expect("a thread pool");
            pool.install(|| super::grad_weight3x3(&x, &dy, &g, threads))
                .iter()
                .map(|v| v.to_bits())
                .collect()
        };
        let nominal = on(2);
        for threads in [1, 3, 5] {
            assert!(on(threads) == nominal, "differs on a pool of {threads}");
        }
    }

    /// The parts cover `0..len` in order without overlap, one part unless split, and never
    /// more parts than threads or elements.
    #[test]
    fn split_range_covers_in_order() {
        for len in [0, 1, 2, 3, 7, 512] {
            for threads in [1, 2, 3, 16] {
                for split in [false, true] {
                    let parts = split_range(len, threads, split);
                    let flat: Vec<usize> = parts.iter().cloned().flatten().collect();
                    assert_eq!(flat, (0..len).collect::<Vec<_>>());
                    assert!(parts.iter().all(|r| !r.is_empty()));
                    assert!(parts.len() <= if split { threads.min(len) } else { 1 });
                }
            }
        }
    }
}
