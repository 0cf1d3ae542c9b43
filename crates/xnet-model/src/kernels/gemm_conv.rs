//! Raw slice kernels for stride-1 "same" convolutions, written as shifted GEMMs.
//!
//! The input is copied once into a zero-padded plane of width `wp = w + 2·pad`. An output
//! pixel `(y, x)` is then addressed as `q = y·wp + x`, and the input that tap `(ty, tx)`
//! multiplies sits at `q + dil·(ty·wp + tx)` of the padded plane: for each tap, the
//! convolution is one GEMM whose left operand is a *strided view* of the padded input.
//! No im2col matrix is ever built (the `gemm` crate packs the panels it needs into its
//! own cache-sized buffers). The two columns per row with `x ≥ w` are computed and
//! thrown away: 2·pad/wp of the work, about 1 % at 200 pixels.

use gemm::Parallelism;
use rayon::prelude::*;

/// Element types the kernels run on: `f32` for speed, `f64` for finite-difference tests.
pub(crate) trait Elem:
    Copy
    + Send
    + Sync
    + PartialOrd
    + std::ops::Add<Output = Self>
    + std::ops::Sub<Output = Self>
    + std::ops::Mul<Output = Self>
    + std::ops::AddAssign
    + super::scratch::Pooled
    + 'static
{
    const ZERO: Self;
    const ONE: Self;
    const HALF: Self;
    /// `v` rounded to the type (for the transforms' constants; folded at compile time).
    fn from_f64(v: f64) -> Self;
}

impl Elem for f32 {
    const ZERO: Self = 0.0;
    const ONE: Self = 1.0;
    const HALF: Self = 0.5;
    fn from_f64(v: f64) -> Self {
        v as f32
    }
}

impl Elem for f64 {
    const ZERO: Self = 0.0;
    const ONE: Self = 1.0;
    const HALF: Self = 0.5;
    fn from_f64(v: f64) -> Self {
        v
    }
}

/// The geometry of one stride-1 "same" convolution over an `[n, c_in, h, w]` input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Geom {
    pub n: usize,
    pub c_in: usize,
    pub c_out: usize,
    pub h: usize,
    pub w: usize,
    /// Odd kernel side.
    pub k: usize,
    pub dil: usize,
}

impl Geom {
    pub fn pad(&self) -> usize {
        self.dil * (self.k - 1) / 2
    }
    pub fn hp(&self) -> usize {
        self.h + 2 * self.pad()
    }
    pub fn wp(&self) -> usize {
        self.w + 2 * self.pad()
    }
    pub fn plane(&self) -> usize {
        self.hp() * self.wp()
    }
    /// Elements of the padded input buffer: the last tap of the last row of the last plane
    /// reads `2·pad` elements past the end of the last plane (only for discarded columns).
    pub fn padded_len(&self) -> usize {
        self.n * self.c_in * self.plane() + 2 * self.pad() + 1
    }
    fn tap_offset(&self, tap: usize) -> usize {
        let (ty, tx) = (tap / self.k, tap % self.k);
        self.dil * (ty * self.wp() + tx)
    }
}

/// A raw pointer that may cross threads, for the kernels' parallel tasks; every user writes
/// disjoint ranges through it (each use says which).
#[derive(Clone, Copy)]
pub(crate) struct SendPtr<T>(pub(crate) *mut T);
unsafe impl<T> Send for SendPtr<T> {}
unsafe impl<T> Sync for SendPtr<T> {}
impl<T> SendPtr<T> {
    pub(crate) fn get(self) -> *mut T {
        self.0
    }
}

/// Copies `[n, c, h, w]` into zero-padded planes `[n, c, hp, wp]` (plus the tail slack).
pub(crate) fn pad_planes<T: Elem>(x: &[T], g: &Geom, c: usize) -> Vec<T> {
    let (h, w, pad, wp, plane) = (g.h, g.w, g.pad(), g.wp(), g.plane());
    let mut out = crate::memory::filled_par(g.n * c * plane + 2 * pad + 1, T::ZERO);
    out[..g.n * c * plane]
        .par_chunks_mut(plane)
        .zip(x.par_chunks(h * w))
        .for_each(|(dst, src)| {
            for y in 0..h {
                let d = (y + pad) * wp + pad;
                dst[d..d + w].copy_from_slice(&src[y * w..(y + 1) * w]);
            }
        });
    out
}

/// The element-wise tail applied while the GEMM result is cropped into the output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Epilogue {
    /// `acc + bias[c]`.
    Bias,
    /// `max(acc + bias[c], 0)`.
    BiasRelu,
}

/// Rows of output computed by one task: enough pixels for the GEMM to stream well, a
/// scratch block small enough to stay in cache, and at least two tasks per thread.
fn rows_per_task(g: &Geom, threads: usize) -> usize {
    let target_pixels = (262_144 / g.c_out.max(1)).clamp(256, 4096);
    let mut rows = target_pixels.div_ceil(g.wp()).clamp(1, g.h);
    let min_tasks = 2 * threads;
    while rows > 1 && g.n * g.h.div_ceil(rows) < min_tasks {
        rows = rows.div_ceil(2);
    }
    rows
}

/// `act(conv(x, weight) + bias)` over an unpadded `[n, c_in, h, w]` input: Winograd
/// F(4×4, 3×3) or F(2×2, 3×3), or the shifted GEMMs of [`conv_forward`], as
/// [`forward_path`] picks. Weight addressing as in [`conv_forward`].
#[allow(clippy::too_many_arguments)]
pub(crate) fn conv_same<T: Elem>(
    x: &[T],
    g: &Geom,
    weight: &[T],
    w_base: usize,
    w_strides: (isize, isize, isize),
    bias: Option<&[T]>,
    epilogue: Epilogue,
    threads: usize,
) -> Vec<T> {
    if g.n * g.h * g.w * g.c_out == 0 {
        // An empty image or no output channel: an empty result (and no tile or row to split).
        return Vec::new();
    }
    if g.c_in == 0 {
        // No input channel: every output pixel is the activated bias.
        let mut out = Vec::with_capacity(g.n * g.c_out * g.h * g.w);
        for _ in 0..g.n {
            for o in 0..g.c_out {
                let b = bias.map_or(T::ZERO, |b| b[o]);
                // Same rule as the epilogue: max(b, 0), with NaN passed to 0.
                let v = match epilogue {
                    Epilogue::BiasRelu if b > T::ZERO => b,
                    Epilogue::BiasRelu => T::ZERO,
                    Epilogue::Bias => b,
                };
                out.extend(std::iter::repeat_n(v, g.h * g.w));
            }
        }
        return out;
    }
    match forward_path(g) {
        ConvPath::Winograd4 => {
            super::winograd4::conv3x3(x, g, weight, w_base, w_strides, bias, epilogue, threads)
        }
        ConvPath::Winograd2 => {
            super::winograd::conv3x3(x, g, weight, w_base, w_strides, bias, epilogue, threads)
        }
        ConvPath::Direct => {
            let xp = pad_planes(x, g, g.c_in);
            conv_forward(&xp, g, weight, w_base, w_strides, bias, epilogue, threads)
        }
    }
}

/// Weight gradient of a stride-1 "same" convolution over an unpadded input: Winograd where
/// it applies ([`super::winograd::applies`]), one GEMM per tap otherwise. Result layout
/// `[c_out, c_in, k, k]`.
pub(crate) fn conv_grad_weight_same<T: Elem>(
    x: &[T],
    grad_out: &[T],
    g: &Geom,
    threads: usize,
) -> Vec<T> {
    if g.n * g.h * g.w * g.c_in * g.c_out == 0 {
        // No pixel or no channel contributes: the gradient is zero.
        return vec![T::ZERO; g.c_out * g.c_in * g.k * g.k];
    }
    match grad_weight_path(g) {
        ConvPath::Winograd4 => super::winograd4::grad_weight3x3(x, grad_out, g, threads),
        ConvPath::Winograd2 => super::winograd::grad_weight3x3(x, grad_out, g, threads),
        ConvPath::Direct => {
            let xp = pad_planes(x, g, g.c_in);
            conv_grad_weight(&xp, grad_out, g, threads)
        }
    }
}

/// The weight-gradient path of `g`: the forced one where the geometry allows it, otherwise
/// the one measured fastest for its shape ([`super::winograd4::preferred_grad_weight`]).
pub(crate) fn grad_weight_path(g: &Geom) -> ConvPath {
    forced_or(g, super::winograd4::preferred_grad_weight)
}

/// The kernel a stride-1 "same" convolution runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ConvPath {
    /// One GEMM per tap over the padded input ([`conv_forward`]).
    Direct,
    /// Winograd F(2×2, 3×3) ([`super::winograd::conv3x3`]).
    Winograd2,
    /// Winograd F(4×4, 3×3) ([`super::winograd4::conv3x3`]).
    Winograd4,
}

/// The path forced by the environment, to measure or test one of them:
/// `XNET_CONV_DIRECT=1` (the direct path everywhere, forward and weight gradient) or
/// `XNET_CONV_PATH=direct|f23|f43`.
pub(crate) fn forced_path() -> Option<ConvPath> {
    if matches!(std::env::var("XNET_CONV_DIRECT"), Ok(v) if !v.is_empty() && v != "0") {
        return Some(ConvPath::Direct);
    }
    match std::env::var("XNET_CONV_PATH").ok()?.as_str() {
        "direct" => Some(ConvPath::Direct),
        "f23" => Some(ConvPath::Winograd2),
        "f43" => Some(ConvPath::Winograd4),
        _ => None,
    }
}

/// The forward (and input-gradient) path of `g`: the forced one where the geometry allows
/// it, otherwise the one measured fastest for its shape ([`super::winograd4::preferred`]).
pub(crate) fn forward_path(g: &Geom) -> ConvPath {
    forced_or(g, super::winograd4::preferred)
}

/// The path forced by the environment ([`forced_path`]) where `g` allows it (Winograd needs
/// 3×3 without dilation; otherwise direct), else `preferred(g)`.
fn forced_or(g: &Geom, preferred: fn(&Geom) -> ConvPath) -> ConvPath {
    let winograd_fits = g.k == 3 && g.dil == 1;
    match forced_path() {
        Some(p) if winograd_fits || p == ConvPath::Direct => p,
        Some(_) => ConvPath::Direct,
        None => preferred(g),
    }
}

/// Forward convolution: `out[n, c_out, h, w] = act(conv(x, weight) + bias)`.
///
/// `xp` is the padded input from [`pad_planes`]; `weight` is `[c_out, c_in, k, k]` read
/// from element `w_base` with strides `(w_co, w_ci, w_tap)`, so that a flipped and
/// transposed weight (the grad-input convolution) needs no copy. The caller guarantees
/// that every `w_base + co·w_co + ci·w_ci + tap·w_tap` is inside `weight`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn conv_forward<T: Elem>(
    xp: &[T],
    g: &Geom,
    weight: &[T],
    w_base: usize,
    w_strides: (isize, isize, isize),
    bias: Option<&[T]>,
    epilogue: Epilogue,
    threads: usize,
) -> Vec<T> {
    assert!(xp.len() >= g.padded_len());
    let (h, w, wp, plane, kk) = (g.h, g.w, g.wp(), g.plane(), g.k * g.k);
    let (c_in, c_out) = (g.c_in, g.c_out);
    // Written in full below (every row of every channel of every image), never cleared.
    let mut out: Vec<T> = Vec::with_capacity(g.n * c_out * h * w);
    let rows = rows_per_task(g, threads);
    let chunks_per_image = h.div_ceil(rows);
    let out_ptr = SendPtr(out.as_mut_ptr().cast::<std::mem::MaybeUninit<T>>());
    let (w_co, w_ci, w_tap) = w_strides;
    (0..g.n * chunks_per_image)
        .into_par_iter()
        .for_each(|task| {
            let (b, chunk) = (task / chunks_per_image, task % chunks_per_image);
            let y0 = chunk * rows;
            let y1 = (y0 + rows).min(h);
            let m = (y1 - y0) * wp;
            // Scratch result, column-major [m pixels, c_out]; the first tap's GEMM writes it
            // without reading.
            let mut acc = super::scratch::Scratch::<T>::take(m * c_out);
            let x_base = b * c_in * plane + y0 * wp;
            for tap in 0..kk {
                let off = g.tap_offset(tap);
                // SAFETY: lhs reads rows `x_base + off + [0, m)` of each of the c_in planes,
                // all inside `xp` (see `Geom::padded_len`); rhs reads the weight with the
                // caller's strides; dst is the local scratch.
                unsafe {
                    gemm::gemm(
                        m,
                        c_out,
                        c_in,
                        acc.as_mut_ptr(),
                        m as isize,
                        1,
                        tap > 0,
                        xp.as_ptr().add(x_base + off),
                        plane as isize,
                        1,
                        weight.as_ptr().add(w_base).offset(w_tap * tap as isize),
                        w_co,
                        w_ci,
                        T::ONE,
                        T::ONE,
                        false,
                        false,
                        false,
                        Parallelism::None,
                    );
                }
            }
            for co in 0..c_out {
                let bias_c = bias.map_or(T::ZERO, |bb| bb[co]);
                let src = &acc[co * m..(co + 1) * m];
                for (yy, y) in (y0..y1).enumerate() {
                    let row = &src[yy * wp..yy * wp + w];
                    // SAFETY: task (b, chunk) alone writes rows y0..y1 of image b.
                    let dst = unsafe {
                        std::slice::from_raw_parts_mut(
                            out_ptr.get().add(((b * c_out + co) * h + y) * w),
                            w,
                        )
                    };
                    match epilogue {
                        Epilogue::Bias => {
                            for (d, &s) in dst.iter_mut().zip(row) {
                                d.write(s + bias_c);
                            }
                        }
                        Epilogue::BiasRelu => {
                            for (d, &s) in dst.iter_mut().zip(row) {
                                let v = s + bias_c;
                                d.write(if v > T::ZERO { v } else { T::ZERO });
                            }
                        }
                    }
                }
            }
        });
    // SAFETY: the tasks cover every row chunk of every image and write every row of every
    // output channel: all n·c_out·h·w elements.
    unsafe { out.set_len(g.n * c_out * h * w) };
    out
}

/// Gradient wrt the input: the "same" convolution of `grad_out` with the weight flipped
/// in space and transposed in channels (no copy: only the strides change).
pub(crate) fn conv_grad_input<T: Elem>(
    grad_out: &[T],
    g: &Geom,
    weight: &[T],
    threads: usize,
) -> Vec<T> {
    let gt = Geom {
        c_in: g.c_out,
        c_out: g.c_in,
        ..*g
    };
    let kk = (g.k * g.k) as isize;
    // wt[ci][co][tap] = w[co][ci][kk-1-tap]: start at the last tap, step back per tap.
    let last = (kk - 1) as usize;
    let strides = (kk, (g.c_in as isize) * kk, -1);
    conv_same(
        grad_out,
        &gt,
        weight,
        last,
        strides,
        None,
        Epilogue::Bias,
        threads,
    )
}

/// Gradient wrt the weight, `[c_out, c_in, k, k]`: per tap, `grad_out · shifted(x)ᵀ`
/// summed over every pixel of every image. The pixel range is split evenly between
/// threads, each accumulating into its own buffer.
pub(crate) fn conv_grad_weight<T: Elem>(
    xp: &[T],
    grad_out: &[T],
    g: &Geom,
    threads: usize,
) -> Vec<T> {
    let (h, w, wp, plane, kk) = (g.h, g.w, g.wp(), g.plane(), g.k * g.k);
    let (c_in, c_out) = (g.c_in, g.c_out);
    let hw = h * wp;
    // grad_out in the padded-width layout, zero on the discarded columns so that they
    // contribute nothing.
    let mut gpad = crate::memory::filled_par(g.n * c_out * hw, T::ZERO);
    gpad.par_chunks_mut(hw)
        .zip(grad_out.par_chunks(h * w))
        .for_each(|(dst, src)| {
            for y in 0..h {
                dst[y * wp..y * wp + w].copy_from_slice(&src[y * w..(y + 1) * w]);
            }
        });
    // Work items: the rows of all images, in contiguous ranges (`sum_over_parts`). Accumulator
    // layout [tap][c_in][c_out]: unit stride along the GEMM's rows (c_out).
    let acc = sum_over_parts(
        g.n * h,
        threads,
        kk * c_in * c_out,
        |rows, acc: &mut [T], parallelism| {
            let (r0, r1) = (rows.start, rows.end);
            let mut r = r0;
            let mut first = true;
            while r < r1 {
                let b = r / h;
                let y0 = r % h;
                let y1 = (h).min(y0 + (r1 - r));
                let kdepth = (y1 - y0) * wp;
                for tap in 0..kk {
                    let off = g.tap_offset(tap);
                    // SAFETY: lhs = gpad rows of image b (c_out × kdepth, row stride hw);
                    // rhs = padded x of image b shifted by the tap (kdepth × c_in, column
                    // stride plane), inside `xp` per `Geom::padded_len`; dst = local.
                    unsafe {
                        gemm::gemm(
                            c_out,
                            c_in,
                            kdepth,
                            acc.as_mut_ptr().add(tap * c_in * c_out),
                            c_out as isize,
                            1,
                            !first,
                            gpad.as_ptr().add(b * c_out * hw + y0 * wp),
                            1,
                            hw as isize,
                            xp.as_ptr().add(b * c_in * plane + y0 * wp + off),
                            plane as isize,
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
                first = false;
                r += y1 - y0;
            }
        },
    );
    let mut dw = vec![T::ZERO; c_out * c_in * kk];
    for tap in 0..kk {
        for ci in 0..c_in {
            let src = &acc[(tap * c_in + ci) * c_out..(tap * c_in + ci + 1) * c_out];
            for (co, &v) in src.iter().enumerate() {
                dw[(co * c_in + ci) * kk + tap] = v;
            }
        }
    }
    dw
}

/// The thread count that every kernel choice which sets the rounding is made for,
/// whatever the actual count: the parts the weight gradients' sums over pixels are split
/// into ([`sum_over_parts`]) and the Winograd paths' tile blocks. The rounding, and with it
/// a training run's weights, is therefore the same on any number of threads. Two, the
/// cores of the machine the defaults were measured on, whose arithmetic is the one it had
/// when these choices followed the actual count. The actual threads only decide who
/// computes what: parts and blocks run in parallel, and spare threads split the GEMMs'
/// outputs, which changes no sum's order.
pub(crate) const NOMINAL_THREADS: usize = 2;

/// Splits work items `0..total` into [`NOMINAL_THREADS`] contiguous ranges, lets `part`
/// accumulate each range into a buffer of `len` elements, and returns the sum of the
/// buffers in range order: the reduction of both weight gradients (GEMM per tap and
/// Winograd). The parts run in parallel on `threads` threads; `part` gets the parallelism
/// its GEMMs may use (the threads beyond one per part), which changes no rounding.
///
/// The buffers come from the scratch pool ([`super::scratch::Scratch`]) with unspecified
/// contents: `part` must overwrite every element before it adds to it (the weight
/// gradients' first GEMMs write without reading).
pub(crate) fn sum_over_parts<T: Elem>(
    total: usize,
    threads: usize,
    len: usize,
    part: impl Fn(std::ops::Range<usize>, &mut [T], Parallelism) + Sync,
) -> super::scratch::Scratch<T> {
    use super::scratch::Scratch;
    let parts = NOMINAL_THREADS.min(total);
    let inner = match threads.div_ceil(parts.max(1)) {
        0 | 1 => Parallelism::None,
        spare => Parallelism::Rayon(spare),
    };
    let partials: Vec<Scratch<T>> = (0..parts)
        .into_par_iter()
        .map(|p| {
            let mut acc = Scratch::take(len);
            part(p * total / parts..(p + 1) * total / parts, &mut acc, inner);
            acc
        })
        .collect();
    let mut partials = partials.into_iter();
    let Some(mut sum) = partials.next() else {
        // No work item: the sum is zero.
        let mut zero = Scratch::take(len);
        zero.fill(T::ZERO);
        return zero;
    };
    let rest: Vec<Scratch<T>> = partials.collect();
    if !rest.is_empty() {
        // In parallel: 36·512·512 elements for a 512→512 Winograd weight gradient, which
        // summed serially kept the other cores idle for milliseconds.
        const CHUNK: usize = 16_384;
        sum.par_chunks_mut(CHUNK).enumerate().for_each(|(i, dst)| {
            for p in &rest {
                for (a, &b) in dst.iter_mut().zip(&p[i * CHUNK..]) {
                    *a += b;
                }
            }
        });
    }
    sum
}
