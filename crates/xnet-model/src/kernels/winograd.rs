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

use gemm::Parallelism;
use rayon::prelude::*;

use super::gemm_conv::{Elem, Epilogue, Geom};

#[derive(Clone, Copy)]
struct SendPtr<T>(*mut T);
unsafe impl<T> Send for SendPtr<T> {}
unsafe impl<T> Sync for SendPtr<T> {}
impl<T> SendPtr<T> {
    fn get(self) -> *mut T {
        self.0
    }
}

/// Whether the Winograd path applies and pays: 3×3, no dilation, and enough channels that
/// the (scalar) transforms are cheap next to the GEMMs. Measured per XNet layer on the
/// 2-core Zen 3 (CPU time, loaded machine): it saves 17–26 % for 512→512, 512→256 and
/// 256→128, breaks even at 512→128, and loses up to 30 % with fewer output channels
/// (256→64) or more outputs than inputs (256→512, 128→256).
pub(crate) fn applies(g: &Geom) -> bool {
    g.k == 3 && g.dil == 1 && g.c_in >= 256 && g.c_out >= 128 && g.c_out <= g.c_in
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
    let mut xp = vec![T::ZERO; n * ci * plane];
    xp.par_chunks_mut(plane)
        .zip(x.par_chunks(h * w))
        .for_each(|(dst, src)| {
            for y in 0..h {
                let d = (y + 1) * wp + 1;
                dst[d..d + w].copy_from_slice(&src[y * w..(y + 1) * w]);
            }
        });

    // U = G g Gᵀ, layout [16][c_out][c_in] (the GEMM's right operand, unit stride on c_in).
    let mut u = vec![T::ZERO; 16 * co * ci];
    let up = SendPtr(u.as_mut_ptr());
    (0..co).into_par_iter().for_each(|o| {
        for i in 0..ci {
            let mut k = [[T::ZERO; 3]; 3];
            for (r, row) in k.iter_mut().enumerate() {
                for (c, v) in row.iter_mut().enumerate() {
                    let idx = w_base as isize
                        + o as isize * w_co
                        + i as isize * w_ci
                        + (3 * r + c) as isize * w_tap;
                    *v = weight[idx as usize];
                }
            }
            // G k: rows g0, (g0+g1+g2)/2, (g0−g1+g2)/2, g2.
            let mut gk = [[T::ZERO; 3]; 4];
            for c in 0..3 {
                let (a, b, d) = (k[0][c], k[1][c], k[2][c]);
                gk[0][c] = a;
                gk[1][c] = T::HALF * (a + b + d);
                gk[2][c] = T::HALF * (a - b + d);
                gk[3][c] = d;
            }
            for (r, row) in gk.iter().enumerate() {
                let (a, b, d) = (row[0], row[1], row[2]);
                let vals = [a, T::HALF * (a + b + d), T::HALF * (a - b + d), d];
                for (c, &v) in vals.iter().enumerate() {
                    // SAFETY: output channel `o` alone writes u[ξ][o][·].
                    unsafe { *up.get().add(((4 * r + c) * co + o) * ci + i) = v };
                }
            }
        }
    });

    let mut out = vec![T::ZERO; n * co * h * w];
    let outp = SendPtr(out.as_mut_ptr());
    let target_tiles = (32_768 / ci.max(1)).clamp(64, 1024);
    let mut trows = target_tiles.div_ceil(tw).clamp(1, th);
    while trows > 1 && n * th.div_ceil(trows) < 2 * threads {
        trows = trows.div_ceil(2);
    }
    let blocks = th.div_ceil(trows);
    // Per-job scratch (transformed input, GEMM results), reused across the tasks of a job:
    // every element is overwritten before it is read, so it is never cleared.
    let scratch = || {
        (
            vec![T::ZERO; 16 * ci * trows * tw],
            vec![T::ZERO; 16 * co * trows * tw],
        )
    };
    (0..n * blocks)
        .into_par_iter()
        .for_each_init(scratch, |(v, mm), task| {
            let (b, blk) = (task / blocks, task % blocks);
            let tr0 = blk * trows;
            let tr1 = (tr0 + trows).min(th);
            let tb = (tr1 - tr0) * tw;
            // V = Bᵀ d B, layout [16][c_in][tiles] (the GEMM's left operand, unit stride on tiles).
            // Separable and vectorised along the row: Bᵀ over the four input rows of a tile row
            // (whole padded rows at once), then B over each tile's four columns, written as
            // four contiguous runs of `tw` tiles per row of the 4×4 transform.
            let mut m = vec![T::ZERO; 4 * wp];
            for c in 0..ci {
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
                        // (· B) of tile tx reads columns 2tx .. 2tx+3 of this transformed row.
                        let out = |cc: usize| ((4 * r + cc) * ci + c) * tb + t0;
                        let (o0, o1, o2, o3) = (out(0), out(1), out(2), out(3));
                        for tx in 0..tw {
                            let (a0, a1, a2, a3) =
                                (mr[2 * tx], mr[2 * tx + 1], mr[2 * tx + 2], mr[2 * tx + 3]);
                            v[o0 + tx] = a0 - a2;
                            v[o1 + tx] = a1 + a2;
                            v[o2 + tx] = a2 - a1;
                            v[o3 + tx] = a1 - a3;
                        }
                    }
                }
            }
            // M_ξ [tiles × c_out] = V_ξ [tiles × c_in] · U_ξ [c_in × c_out], layout [16][c_out][tiles].
            for xi in 0..16 {
                // SAFETY: all three operands are local or `u`, with the extents given.
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
                        Parallelism::None,
                    );
                }
            }
            // Y = Aᵀ M A with Aᵀ = [[1, 1, 1, 0], [0, 1, −1, −1]], then bias and activation.
            for o in 0..co {
                let bias_o = bias.map_or(T::ZERO, |bb| bb[o]);
                let at = |xi: usize, t: usize| mm[(xi * co + o) * tb + t];
                for ty in tr0..tr1 {
                    for tx in 0..tw {
                        let t = (ty - tr0) * tw + tx;
                        let mut s = [[T::ZERO; 4]; 2];
                        #[allow(clippy::needless_range_loop)]
                        for j in 0..4 {
                            let (m0, m1, m2, m3) =
                                (at(j, t), at(4 + j, t), at(8 + j, t), at(12 + j, t));
                            s[0][j] = m0 + m1 + m2;
                            s[1][j] = m1 - m2 - m3;
                        }
                        for (dy, sr) in s.iter().enumerate() {
                            let y = 2 * ty + dy;
                            if y >= h {
                                continue;
                            }
                            let vals = [sr[0] + sr[1] + sr[2], sr[1] - sr[2] - sr[3]];
                            for (dx, &val) in vals.iter().enumerate() {
                                let xx = 2 * tx + dx;
                                if xx >= w {
                                    continue;
                                }
                                let mut r = val + bias_o;
                                if epilogue == Epilogue::BiasRelu {
                                    r = if r > T::ZERO { r } else { T::ZERO };
                                }
                                // SAFETY: task (b, blk) alone writes output rows 2·tr0..2·tr1 of image b.
                                unsafe { *outp.get().add(((b * co + o) * h + y) * w + xx) = r };
                            }
                        }
                    }
                }
            }
        });
    out
}
