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
//! - the padded input is written once, each row *phase-major*
//!   ([`pad_phased`](input::pad_phased)), so that the six stride-4 columns of the input
//!   transform are contiguous runs;
//! - the transforms are separable and vectorised along rows (input: Bᵀ over six padded
//!   rows, then B per tile into six contiguous runs; output: Aᵀ over the ξ rows along the
//!   tiles, then A per tile into an output row), each loop a function of separate slices
//!   ([`bt6`](input::bt6); `at6` and `g6` in [`forward`]) so that it vectorises without
//!   run-time alias checks;
//! - tiles go in blocks of 128 consecutive tiles of one image (a multiple of the GEMM
//!   micro-kernel's 16 rows, spanning parts of tile rows), so that the GEMMs repack the
//!   transformed weight rarely and the transformed block stays in the last-level cache;
//! - bias and ReLU are fused into the output transform; partial tiles at the right and
//!   bottom edges read zero padding and are cropped; scratch written before it is read is
//!   never cleared; the tasks are blocks (threaded GEMMs when there are fewer blocks than
//!   threads); `Elem` keeps it generic over f32 and f64.
//!
//! [`preferred`] decides per layer between this, F(2×2, 3×3) and the direct path.
//!
//! Files: [`input`] (the padded input and its transform, shared), [`forward`] and
//! [`grad_weight`]; this one holds the tile geometry and the choice of path.

use super::gemm_conv::{ConvPath, Geom};

mod forward;
mod grad_weight;
mod input;
#[cfg(test)]
mod tests;

pub(crate) use forward::{conv3x3, G6};
pub(crate) use grad_weight::grad_weight3x3;

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

/// Tiles `f0..f1` (row-major over the `th × tw` tiles) of one image, and the padded
/// planes ([`pad_phased`](input::pad_phased)) they are read from.
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
