//! Max-pooling that also returns the arg-max indices, and its adjoint, max-unpooling
//! (SegNet's pooling-index up-sampling).
//!
//! Indices follow PyTorch's `max_pool2d(..., return_indices=True)`: for every output cell,
//! the flat position `y * W + x` of the maximum inside its own `H × W` input plane; among equal
//! values the first in row-major window order wins. Pooling uses floor mode (trailing rows and
//! columns that do not fill a window are dropped).

use std::mem::MaybeUninit;

use rayon::prelude::*;

use super::contiguous;
use candle_core::{
    backend::BackendStorage, CpuStorage, CustomOp1, CustomOp2, DType, Layout, Shape, Tensor,
};

type CResult<T> = candle_core::Result<T>;

fn check_kernel(kernel: usize, h: usize, w: usize) -> CResult<()> {
    if kernel == 0 {
        candle_core::bail!("max-pool: kernel size must be at least 1");
    }
    if h < kernel || w < kernel {
        candle_core::bail!(
            "max-pool: input plane {h}×{w} is smaller than the {kernel}×{kernel} window"
        );
    }
    Ok(())
}

/// Arg-max indices of non-overlapping `kernel × kernel` max-pooling (stride = kernel).
struct MaxPoolIndices {
    kernel: usize,
}

/// The element types of the CPU pooling (f32, f64).
trait PoolValue: PartialOrd + Copy + Sync {}
impl<T: PartialOrd + Copy + Sync> PoolValue for T {}

/// Whether `v` replaces the running maximum `best`: larger, or a NaN over a number (as in
/// PyTorch); ties keep the earlier element.
#[allow(clippy::eq_op)] // `v != v` is the NaN test for a generic float
#[inline(always)]
fn beats<T: PoolValue>(v: T, best: T) -> bool {
    v > best || (v != v && best == best)
}

fn pool_indices<T: PoolValue>(
    x: &[T],
    (n, c, h, w): (usize, usize, usize, usize),
    k: usize,
) -> Vec<u32> {
    let (oh, ow) = (h / k, w / k);
    map_planes(&x[..n * c * h * w], h * w, oh * ow, |_, plane, out| {
        for i in 0..oh {
            let out_row = &mut out[i * ow..(i + 1) * ow];
            if k == 2 {
                let (r0, r1) = (2 * i * w, (2 * i + 1) * w);
                pool2_row(&plane[r0..r0 + w], &plane[r1..r1 + w], r0 as u32, out_row);
            } else {
                pool_row(plane, w, k, i, out_row);
            }
        }
    })
}

/// Output row `i` of `k × k` pooling of one `· × w` plane, window by window.
fn pool_row<T: PoolValue>(plane: &[T], w: usize, k: usize, i: usize, out: &mut [MaybeUninit<u32>]) {
    for (j, o) in out.iter_mut().enumerate() {
        let mut best = (i * k) * w + j * k;
        let mut best_v = plane[best];
        for dy in 0..k {
            let row = (i * k + dy) * w + j * k;
            for dx in 0..k {
                let v = plane[row + dx];
                if beats(v, best_v) {
                    best = row + dx;
                    best_v = v;
                }
            }
        }
        *o = MaybeUninit::new(best as u32);
    }
}

crate::kernels::simd::avx2_dispatch!(
/// A 2×2 output row from its two input rows `r0`, `r1` (`r0` starting at flat index `base`
/// of the plane, `r1` one row of `r0.len()` later): the four window elements compared in
/// row-major order with selects instead of branches, so that the loop vectorises.
fn pool2_row<T: PoolValue>(r0: &[T], r1: &[T], base: u32, out: &mut [MaybeUninit<u32>]) => pool2_row_impl);

#[inline(always)]
fn pool2_row_impl<T: PoolValue>(r0: &[T], r1: &[T], base: u32, out: &mut [MaybeUninit<u32>]) {
    let w = r0.len() as u32;
    for (j, (o, (a, b))) in out
        .iter_mut()
        .zip(r0.chunks_exact(2).zip(r1.chunks_exact(2)))
        .enumerate()
    {
        let i0 = base + 2 * j as u32;
        let (mut bi, mut bv) = (i0, a[0]);
        for (v, idx) in [(a[1], i0 + 1), (b[0], i0 + w), (b[1], i0 + w + 1)] {
            let take = beats(v, bv);
            bi = if take { idx } else { bi };
            bv = if take { v } else { bv };
        }
        *o = MaybeUninit::new(bi);
    }
}

/// `f(plane index, input plane, output plane)` over every plane, planes in parallel
/// (rayon): the output has `out_plane` elements per `in_plane` elements of `x`, and `f`
/// must write all of them.
/// The pooling ops are memory-bound passes that ran serially, with the other core idle.
fn map_planes<T: Sync, U: Send>(
    x: &[T],
    in_plane: usize,
    out_plane: usize,
    f: impl Fn(usize, &[T], &mut [MaybeUninit<U>]) + Sync,
) -> Vec<U> {
    let planes = x.len().checked_div(in_plane).unwrap_or(0);
    crate::memory::written_par(planes, out_plane, min_planes_per_task(in_plane), |i, o| {
        f(i, &x[i * in_plane..(i + 1) * in_plane], o)
    })
}

/// Planes per rayon task so that a task reads at least about 64 K elements.
fn min_planes_per_task(plane: usize) -> usize {
    (65_536 / plane.max(1)).max(1)
}

impl CustomOp1 for MaxPoolIndices {
    fn name(&self) -> &'static str {
        "max-pool2d-indices"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> CResult<(CpuStorage, Shape)> {
        let dims = l.shape().dims4()?;
        let (n, c, h, w) = dims;
        check_kernel(self.kernel, h, w)?;
        let k = self.kernel;
        let idx = match s {
            CpuStorage::F32(v) => pool_indices(contiguous(v, l, self.name())?, dims, k),
            CpuStorage::F64(v) => pool_indices(contiguous(v, l, self.name())?, dims, k),
            other => candle_core::bail!("{}: unsupported dtype {:?}", self.name(), other.dtype()),
        };
        Ok((CpuStorage::U32(idx), Shape::from((n, c, h / k, w / k))))
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        s: &candle_core::CudaStorage,
        l: &Layout,
    ) -> CResult<(candle_core::CudaStorage, Shape)> {
        let dims = l.shape().dims4()?;
        let (n, c, h, w) = dims;
        check_kernel(self.kernel, h, w)?;
        let k = self.kernel;
        let out = super::cuda::pool_indices(s, l, dims, k, self.name())?;
        Ok((out, Shape::from((n, c, h / k, w / k))))
    }
}

/// `out[n, c, i] = x[n, c, idx[n, c, i]]` over flattened planes; adjoint of [`Unpool`].
///
/// `check`: whether the CUDA forward verifies the indices (a device-to-host read that waits
/// for the kernel); off for indices this module made. The CPU forward always checks.
struct PoolGather {
    #[cfg_attr(not(feature = "cuda"), allow(dead_code))]
    check: bool,
}

/// `out[n, c, idx[n, c, i]] += v[n, c, i]` into zero planes of size `h × w`; adjoint of
/// [`PoolGather`].
struct Unpool {
    h: usize,
    w: usize,
    #[cfg_attr(not(feature = "cuda"), allow(dead_code))]
    check: bool,
}

fn check_indices(idx: &[u32], plane: usize, op: &str) -> CResult<()> {
    if let Some(bad) = idx.par_iter().find_any(|&&i| i as usize >= plane) {
        candle_core::bail!("{op}: index {bad} is outside the {plane}-element plane");
    }
    Ok(())
}

fn gather_planes<T: Copy + Send + Sync>(
    x: &[T],
    idx: &[u32],
    in_plane: usize,
    out_plane: usize,
) -> Vec<T> {
    // One output plane per index plane; the callers check that `x` has as many planes.
    map_planes(idx, out_plane, out_plane, |p, ip, o| {
        let xp = &x[p * in_plane..(p + 1) * in_plane];
        for (d, &i) in o.iter_mut().zip(ip) {
            *d = MaybeUninit::new(xp[i as usize]);
        }
    })
}

fn scatter_planes<T: Copy + Default + std::ops::AddAssign + Send + Sync>(
    v: &[T],
    idx: &[u32],
    in_plane: usize,
    out_plane: usize,
) -> Vec<T> {
    let planes = v.len() / in_plane.max(1);
    let mut out = crate::memory::filled_par(planes * out_plane, T::default());
    if in_plane > 0 && out_plane > 0 {
        out.par_chunks_mut(out_plane)
            .zip(
                v.par_chunks_exact(in_plane)
                    .zip(idx.par_chunks_exact(in_plane)),
            )
            .with_min_len(min_planes_per_task(out_plane))
            .for_each(|(op, (vp, ip))| {
                for (&val, &i) in vp.iter().zip(ip) {
                    op[i as usize] += val;
                }
            });
    }
    out
}

impl CustomOp2 for PoolGather {
    fn name(&self) -> &'static str {
        "pool-gather"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> CResult<(CpuStorage, Shape)> {
        let (n, c, h, w, oh, ow) = self.dims(l1, l2)?;
        let idx = match s2 {
            CpuStorage::U32(i) => contiguous(i, l2, self.name())?,
            other => candle_core::bail!(
                "{}: indices must be u32, found {:?}",
                self.name(),
                other.dtype()
            ),
        };
        check_indices(idx, h * w, self.name())?;
        let out = match s1 {
            CpuStorage::F32(v) => CpuStorage::F32(gather_planes(
                contiguous(v, l1, self.name())?,
                idx,
                h * w,
                oh * ow,
            )),
            CpuStorage::F64(v) => CpuStorage::F64(gather_planes(
                contiguous(v, l1, self.name())?,
                idx,
                h * w,
                oh * ow,
            )),
            other => candle_core::bail!("{}: unsupported dtype {:?}", self.name(), other.dtype()),
        };
        Ok((out, Shape::from((n, c, oh, ow))))
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        s1: &candle_core::CudaStorage,
        l1: &Layout,
        s2: &candle_core::CudaStorage,
        l2: &Layout,
    ) -> CResult<(candle_core::CudaStorage, Shape)> {
        let (n, c, h, w, oh, ow) = self.dims(l1, l2)?;
        let out = super::cuda::index_op(
            super::cuda::IndexOp::Gather,
            (s1, l1),
            (s2, l2),
            n * c,
            h * w,
            oh * ow,
            self.check,
            self.name(),
        )?;
        Ok((out, Shape::from((n, c, oh, ow))))
    }

    fn bwd(
        &self,
        arg1: &Tensor,
        arg2: &Tensor,
        _res: &Tensor,
        grad_res: &Tensor,
    ) -> CResult<(Option<Tensor>, Option<Tensor>)> {
        let (_, _, h, w) = arg1.dims4()?;
        // The forward has validated (or made) the indices.
        Ok((Some(unpool_impl(grad_res, arg2, (h, w), false)?), None))
    }
}

impl PoolGather {
    /// `(n, c, h, w, oh, ow)` of input `[n, c, h, w]` and indices `[n, c, oh, ow]`.
    fn dims(
        &self,
        l1: &Layout,
        l2: &Layout,
    ) -> CResult<(usize, usize, usize, usize, usize, usize)> {
        let (n, c, h, w) = l1.shape().dims4()?;
        let (n2, c2, oh, ow) = l2.shape().dims4()?;
        if (n, c) != (n2, c2) {
            candle_core::bail!(
                "{}: input {:?} and indices {:?} disagree",
                self.name(),
                l1.shape(),
                l2.shape()
            );
        }
        Ok((n, c, h, w, oh, ow))
    }
}

impl CustomOp2 for Unpool {
    fn name(&self) -> &'static str {
        "max-unpool2d"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> CResult<(CpuStorage, Shape)> {
        let (n, c, ih, iw) = self.dims(l1, l2)?;
        let idx = match s2 {
            CpuStorage::U32(i) => contiguous(i, l2, self.name())?,
            other => candle_core::bail!(
                "{}: indices must be u32, found {:?}",
                self.name(),
                other.dtype()
            ),
        };
        let plane = self.h * self.w;
        check_indices(idx, plane, self.name())?;
        let out = match s1 {
            CpuStorage::F32(v) => CpuStorage::F32(scatter_planes(
                contiguous(v, l1, self.name())?,
                idx,
                ih * iw,
                plane,
            )),
            CpuStorage::F64(v) => CpuStorage::F64(scatter_planes(
                contiguous(v, l1, self.name())?,
                idx,
                ih * iw,
                plane,
            )),
            other => candle_core::bail!("{}: unsupported dtype {:?}", self.name(), other.dtype()),
        };
        Ok((out, Shape::from((n, c, self.h, self.w))))
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        s1: &candle_core::CudaStorage,
        l1: &Layout,
        s2: &candle_core::CudaStorage,
        l2: &Layout,
    ) -> CResult<(candle_core::CudaStorage, Shape)> {
        let (n, c, ih, iw) = self.dims(l1, l2)?;
        let out = super::cuda::index_op(
            super::cuda::IndexOp::Unpool,
            (s1, l1),
            (s2, l2),
            n * c,
            ih * iw,
            self.h * self.w,
            self.check,
            self.name(),
        )?;
        Ok((out, Shape::from((n, c, self.h, self.w))))
    }

    fn bwd(
        &self,
        _arg1: &Tensor,
        arg2: &Tensor,
        _res: &Tensor,
        grad_res: &Tensor,
    ) -> CResult<(Option<Tensor>, Option<Tensor>)> {
        // The forward has validated the indices.
        Ok((Some(gather_impl(grad_res, arg2, false)?), None))
    }
}

impl Unpool {
    /// `(n, c, ih, iw)` of values and indices, which must have the same shape.
    fn dims(&self, l1: &Layout, l2: &Layout) -> CResult<(usize, usize, usize, usize)> {
        if l1.shape() != l2.shape() {
            candle_core::bail!(
                "{}: values {:?} and indices {:?} disagree",
                self.name(),
                l1.shape(),
                l2.shape()
            );
        }
        l1.shape().dims4()
    }
}

/// Whether `x` goes through this module's custom operations: CPU tensors always (the CPU
/// forwards report unsupported dtypes), and with the `cuda` feature, non-empty f32/f64 CUDA
/// tensors. Anything else takes the stock-candle composition.
fn custom_op_device(x: &Tensor) -> bool {
    x.device().is_cpu()
        || (cfg!(feature = "cuda")
            && x.device().is_cuda()
            && matches!(x.dtype(), DType::F32 | DType::F64)
            && x.elem_count() > 0)
}

/// Arg-max indices (`u32`, shape `[N, C, H/k, W/k]`) of `k × k` max-pooling with stride `k`
/// of a `[N, C, H, W]` tensor. Not differentiable (the indices are integers).
///
/// # Examples
/// ```
/// use candle_core::{Device, Tensor};
/// // 3 × 4 with k = 2: floor mode drops the last row. The left window ties (all 1): its
/// // first maximum wins, as in PyTorch. Indices are flat in the whole H × W plane.
/// let x = Tensor::new(&[[[[1f32, 1., 0., 2.], [1., 1., 7., 0.], [9., 9., 9., 9.]]]], &Device::Cpu)?;
/// let i = xnet_model::ops::max_pool2d_indices(&x, 2)?;
/// assert_eq!(i.dims(), [1, 1, 1, 2]);
/// assert_eq!(i.flatten_all()?.to_vec1::<u32>()?, vec![0, 6]);
/// # Ok::<(), candle_core::Error>(())
/// ```
pub fn max_pool2d_indices(x: &Tensor, kernel: usize) -> CResult<Tensor> {
    if custom_op_device(x) {
        x.contiguous()?.apply_op1_no_bwd(&MaxPoolIndices { kernel })
    } else {
        indices_generic(x, kernel)
    }
}

/// Picks `x[n, c, idx]` from each flattened `H × W` plane of `x` (`[N, C, H, W]`) at the
/// indices `idx` (`u32`, `[N, C, h, w]`), giving `[N, C, h, w]`. Differentiable in `x`; its
/// gradient is [`max_unpool2d`] of the incoming gradient.
///
/// # Examples
/// ```
/// use candle_core::{Device, Tensor, Var};
/// let x = Var::new(&[[[[1f32, 5., 2., 0.], [3., 4., 8., 1.]]]], &Device::Cpu)?;
/// let idx = Tensor::new(&[[[[1u32, 6]]]], &Device::Cpu)?; // plane positions of 5 and 8
/// let y = xnet_model::ops::pool_gather(&x, &idx)?;
/// assert_eq!(y.flatten_all()?.to_vec1::<f32>()?, vec![5., 8.]);
/// // The gradient of a sum reaches the picked positions only.
/// let g = y.sum_all()?.backward()?;
/// let gx = g.get(&x).map(|t| t.flatten_all()?.to_vec1::<f32>()).transpose()?;
/// assert_eq!(gx, Some(vec![0., 1., 0., 0., 0., 0., 1., 0.]));
/// # Ok::<(), candle_core::Error>(())
/// ```
pub fn pool_gather(x: &Tensor, idx: &Tensor) -> CResult<Tensor> {
    gather_impl(x, idx, true)
}

/// [`pool_gather`]; `check: false` skips the CUDA index check for indices made here.
fn gather_impl(x: &Tensor, idx: &Tensor, check: bool) -> CResult<Tensor> {
    if custom_op_device(x) {
        x.contiguous()?
            .apply_op2(&idx.contiguous()?, PoolGather { check })
    } else {
        let (n, c, oh, ow) = idx.dims4()?;
        x.flatten_from(2)?
            .gather(&idx.flatten_from(2)?.contiguous()?, 2)?
            .reshape((n, c, oh, ow))
    }
}

/// Max-pooling (`kernel × kernel`, stride `kernel`, floor mode) that also returns the arg-max
/// indices, as PyTorch's `max_pool2d(x, k, return_indices=True)`.
///
/// Returns `(values, indices)`; values are differentiable, and the gradient flows only to the
/// selected maxima (one per window, also when values tie).
///
/// # Examples
/// ```
/// use candle_core::{Device, Tensor};
/// let x = Tensor::new(&[[[[1f32, 5., 2., 0.], [3., 4., 8., 1.]]]], &Device::Cpu)?;
/// let (v, i) = xnet_model::ops::max_pool2d_with_indices(&x, 2)?;
/// assert_eq!(v.flatten_all()?.to_vec1::<f32>()?, vec![5., 8.]);
/// assert_eq!(i.flatten_all()?.to_vec1::<u32>()?, vec![1, 6]);
/// # Ok::<(), candle_core::Error>(())
/// ```
pub fn max_pool2d_with_indices(x: &Tensor, kernel: usize) -> CResult<(Tensor, Tensor)> {
    let idx = max_pool2d_indices(x, kernel)?;
    let values = gather_impl(x, &idx, false)?;
    Ok((values, idx))
}

/// Max-pooling (`kernel × kernel`, stride `kernel`, floor mode) whose backward sends each
/// window's gradient to its first maximum only, as PyTorch does. Candle's own
/// `Tensor::max_pool2d` gives the gradient to every maximum of a window when values tie,
/// so a window of equal values would get `k²` times the gradient. The forward values are
/// the same. XNet, U-Net and DeepLab-lite pool with this on the CPU and, with the `cuda`
/// feature, on CUDA (f32/f64, through the kernels of `ops::cuda`); on other devices and
/// dtypes it is candle's pooling (the composition of primitives would be slower than the
/// difference is worth there).
///
/// # Examples
/// ```
/// use candle_core::{Device, Tensor, Var};
/// let x = Var::from_tensor(&Tensor::ones((1, 1, 2, 2), candle_core::DType::F32, &Device::Cpu)?)?;
/// let y = xnet_model::ops::max_pool2d(&x, 2)?;
/// let g = y.sum_all()?.backward()?;
/// let gx = g.get(&x).unwrap().flatten_all()?.to_vec1::<f32>()?;
/// assert_eq!(gx, vec![1., 0., 0., 0.]);
/// # Ok::<(), candle_core::Error>(())
/// ```
pub fn max_pool2d(x: &Tensor, kernel: usize) -> CResult<Tensor> {
    if custom_op_device(x) {
        Ok(max_pool2d_with_indices(x, kernel)?.0)
    } else {
        x.max_pool2d(kernel)
    }
}

/// Max-unpooling: places each value of `values` (`[N, C, h, w]`) at its index (from
/// [`max_pool2d_with_indices`]) inside zero planes of `size = (H, W)`, as PyTorch's
/// `max_unpool2d`. Values that share an index are summed. Differentiable in `values`.
///
/// # Errors
/// Values and indices of different shapes, an index outside the `H × W` plane, and a
/// `size` whose element count `N · C · H · W` overflows a `usize`.
///
/// # Examples
/// ```
/// use candle_core::{Device, Tensor};
/// let x = Tensor::new(&[[[[1f32, 5., 2., 0.], [3., 4., 8., 1.]]]], &Device::Cpu)?;
/// let (v, i) = xnet_model::ops::max_pool2d_with_indices(&x, 2)?;
/// let u = xnet_model::ops::max_unpool2d(&v, &i, (2, 4))?;
/// assert_eq!(u.flatten_all()?.to_vec1::<f32>()?, vec![0., 5., 0., 0., 0., 0., 8., 0.]);
/// # Ok::<(), candle_core::Error>(())
/// ```
pub fn max_unpool2d(values: &Tensor, indices: &Tensor, size: (usize, usize)) -> CResult<Tensor> {
    unpool_impl(values, indices, size, true)
}

/// [`max_unpool2d`]; `check: false` skips the CUDA index check for validated indices.
fn unpool_impl(
    values: &Tensor,
    indices: &Tensor,
    size: (usize, usize),
    check: bool,
) -> CResult<Tensor> {
    unpool_len(values, size)?;
    let (h, w) = size;
    if custom_op_device(values) {
        values
            .contiguous()?
            .apply_op2(&indices.contiguous()?, Unpool { h, w, check })
    } else {
        max_unpool2d_generic(values, indices, size)
    }
}

/// `N · C · H · W`, the elements of the unpooling of `values` (`[N, C, h, w]`) to
/// `size = (H, W)`; an error naming the sizes where the product overflows a `usize`.
fn unpool_len(values: &Tensor, (h, w): (usize, usize)) -> CResult<usize> {
    let (n, c, _, _) = values.dims4()?;
    match n
        .checked_mul(c)
        .and_then(|p| p.checked_mul(h))
        .and_then(|p| p.checked_mul(w))
    {
        Some(len) => Ok(len),
        None => candle_core::bail!(
            "max-unpool2d: an output of {n} × {c} planes of {h} × {w} has more elements than a \
             usize counts"
        ),
    }
}

fn indices_generic(x: &Tensor, k: usize) -> CResult<Tensor> {
    let (n, c, h, w) = x.dims4()?;
    check_kernel(k, h, w)?;
    let (oh, ow) = (h / k, w / k);
    let x = x.narrow(2, 0, oh * k)?.narrow(3, 0, ow * k)?;
    let win = x
        .reshape((n, c, oh, k, ow, k))?
        .permute((0, 1, 2, 4, 3, 5))?
        .reshape((n, c, oh, ow, k * k))?
        .contiguous()?;
    // Window position p = dy * k + dx; flat index = (i k + dy) W + j k + dx.
    let p = win.argmax(4)?.to_dtype(DType::F64)?;
    let dy = (&p / k as f64)?.floor()?;
    let dx = (&p - (&dy * k as f64)?)?;
    let dev = x.device();
    let rows = (Tensor::arange(0u32, oh as u32, dev)?.to_dtype(DType::F64)? * (k * w) as f64)?
        .reshape((1, 1, oh, 1))?;
    let cols = (Tensor::arange(0u32, ow as u32, dev)?.to_dtype(DType::F64)? * k as f64)?
        .reshape((1, 1, 1, ow))?;
    let flat = ((dy * w as f64)? + dx)?
        .broadcast_add(&rows)?
        .broadcast_add(&cols)?;
    flat.to_dtype(DType::U32)
}

/// [`max_pool2d_with_indices`] written with stock candle primitives (`argmax`, `gather`):
/// runs on any device and is differentiated by candle's autograd.
///
/// # Examples
/// ```
/// use candle_core::{Device, Tensor};
/// use xnet_model::ops::{max_pool2d_with_indices, max_pool2d_with_indices_generic};
/// let x = Tensor::new(&[[[[1f32, 5., 2., 0.], [3., 4., 8., 1.]]]], &Device::Cpu)?;
/// let (v, i) = max_pool2d_with_indices_generic(&x, 2)?;
/// assert_eq!(v.flatten_all()?.to_vec1::<f32>()?, vec![5., 8.]);
/// assert_eq!(i.flatten_all()?.to_vec1::<u32>()?, vec![1, 6]);
/// let (_, fast) = max_pool2d_with_indices(&x, 2)?; // the custom CPU operation agrees
/// assert_eq!(fast.flatten_all()?.to_vec1::<u32>()?, vec![1, 6]);
/// # Ok::<(), candle_core::Error>(())
/// ```
pub fn max_pool2d_with_indices_generic(x: &Tensor, kernel: usize) -> CResult<(Tensor, Tensor)> {
    let idx = indices_generic(x, kernel)?;
    let (n, c, oh, ow) = idx.dims4()?;
    let v = x
        .flatten_from(2)?
        .contiguous()?
        .gather(&idx.flatten_from(2)?.contiguous()?, 2)?
        .reshape((n, c, oh, ow))?;
    Ok((v, idx))
}

/// [`max_unpool2d`] written with stock candle primitives (`index_add`): runs on any device
/// and is differentiated by candle's autograd.
///
/// # Errors
/// As [`max_unpool2d`], and an output of more than 2³² elements (its flat positions are
/// `u32`, which would wrap).
///
/// # Examples
/// ```
/// use candle_core::{Device, Tensor};
/// use xnet_model::ops::max_unpool2d_generic;
/// let v = Tensor::new(&[[[[5f32, 8.]]]], &Device::Cpu)?;
/// let i = Tensor::new(&[[[[1u32, 6]]]], &Device::Cpu)?;
/// let u = max_unpool2d_generic(&v, &i, (2, 4))?;
/// assert_eq!(u.flatten_all()?.to_vec1::<f32>()?, vec![0., 5., 0., 0., 0., 0., 8., 0.]);
/// let three = Tensor::new(&[[[[1u32, 6, 7]]]], &Device::Cpu)?; // 3 indices for 2 values
/// let e = max_unpool2d_generic(&v, &three, (2, 4)).unwrap_err().to_string();
/// assert!(e.contains("disagree"), "{e}");
/// # Ok::<(), candle_core::Error>(())
/// ```
pub fn max_unpool2d_generic(
    values: &Tensor,
    indices: &Tensor,
    size: (usize, usize),
) -> CResult<Tensor> {
    let (n, c, _, _) = values.dims4()?;
    if values.shape() != indices.shape() {
        candle_core::bail!(
            "max-unpool2d: values {:?} and indices {:?} disagree",
            values.shape(),
            indices.shape()
        );
    }
    let len = unpool_len(values, size)?;
    if len > 1 << 32 {
        candle_core::bail!(
            "max-unpool2d: an output of {len} elements is beyond the u32 positions of the \
             generic path"
        );
    }
    let (h, w) = size;
    let (_, _, ih, iw) = values.dims4()?;
    // Global flat positions `plane · H·W + idx`, then one `index_add` along a flat axis.
    // (`index_add` rather than `scatter_add`: candle 0.11's scatter_add backward fails when
    // the source is smaller than the destination.)
    let offsets: Vec<u32> = (0..n * c).map(|p| (p * h * w) as u32).collect();
    let offsets = Tensor::from_vec(offsets, (n * c, 1), values.device())?;
    let global = indices
        .reshape((n * c, ih * iw))?
        .broadcast_add(&offsets)?
        .flatten_all()?;
    Tensor::zeros(n * c * h * w, values.dtype(), values.device())?
        .index_add(&global, &values.flatten_all()?, 0)?
        .reshape((n, c, h, w))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The 2×2 row kernel (AVX2 where the CPU has it) picks the same index as the window
    /// loop, on rows full of ties, NaNs (one per window, two per window, a whole window)
    /// and infinities, at even and odd widths, in f32 and f64.
    #[test]
    fn pool2_row_matches_the_window_loop() {
        fn check<T: PoolValue + std::fmt::Debug>(vals: &[T]) {
            for w in [2usize, 3, 8, 17, 33, 64] {
                let h = 2;
                let plane: Vec<T> = (0..h * w)
                    .map(|i| vals[(i * 7 + i / 3) % vals.len()])
                    .collect();
                let ow = w / 2;
                let init = || vec![MaybeUninit::new(u32::MAX); ow];
                let (mut fast, mut slow) = (init(), init());
                pool2_row(&plane[..w], &plane[w..2 * w], 0, &mut fast);
                pool_row(&plane, w, 2, 0, &mut slow);
                // SAFETY: both kernels write every output element.
                let read = |v: Vec<MaybeUninit<u32>>| -> Vec<u32> {
                    v.into_iter().map(|e| unsafe { e.assume_init() }).collect()
                };
                assert_eq!(read(fast), read(slow), "width {w}");
            }
        }
        let f = [
            1.0f32,
            1.0,
            f32::NAN,
            0.0,
            -1.0,
            f32::INFINITY,
            f32::NAN,
            2.0,
            2.0,
            -0.0,
        ];
        check(&f);
        check(&f.map(f64::from));
        check(&[3.0f32; 5]);
        check(&[f32::NAN; 3]);
    }
}
