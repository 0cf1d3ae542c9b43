//! Bilinear resizing with PyTorch's `align_corners=False` semantics, and its exact backward.
//!
//! For an output coordinate `d` of an axis resized from `n_in` to `n_out` samples the source
//! coordinate is `s = max(0, (d + 0.5) · n_in / n_out − 0.5)`; it blends samples
//! `i0 = ⌊s⌋` and `i1 = min(i0 + 1, n_in − 1)` with weights `1 − (s − i0)` and `s − i0`
//! (`F.interpolate(x, size=(h, w), mode="bilinear", align_corners=False)`).

use super::contiguous;
use candle_core::{backend::BackendStorage, CpuStorage, CustomOp1, DType, Layout, Shape, Tensor};

type CResult<T> = candle_core::Result<T>;

/// Per-output-sample source indices and weights of one axis.
#[derive(Debug, Clone, Copy)]
struct Tap {
    i0: usize,
    i1: usize,
    w0: f64,
    w1: f64,
}

fn taps(n_in: usize, n_out: usize) -> Vec<Tap> {
    let scale = n_in as f64 / n_out as f64;
    (0..n_out)
        .map(|d| {
            let s = ((d as f64 + 0.5) * scale - 0.5).max(0.0);
            let i0 = (s.floor() as usize).min(n_in - 1);
            let i1 = (i0 + 1).min(n_in - 1);
            let w1 = s - i0 as f64;
            Tap {
                i0,
                i1,
                w0: 1.0 - w1,
                w1,
            }
        })
        .collect()
}

/// The taps of one axis as the CUDA kernels read them: four runs of `n_out` values
/// (`i0`, `i1`, `w0`, `w1`; indices stored exactly as f64).
#[cfg(feature = "cuda")]
fn tap_table(n_in: usize, n_out: usize) -> Vec<f64> {
    let t = taps(n_in, n_out);
    let mut table = Vec::with_capacity(4 * n_out);
    table.extend(t.iter().map(|t| t.i0 as f64));
    table.extend(t.iter().map(|t| t.i1 as f64));
    table.extend(t.iter().map(|t| t.w0));
    table.extend(t.iter().map(|t| t.w1));
    table
}

/// For each input sample of one axis, the half-open range `[lo, hi)` of output samples whose
/// taps reach it (two runs of `n_in` values; `lo = hi = 0` when none does). Both tap indices
/// are non-decreasing in the output sample, so the outputs touching an input are contiguous.
#[cfg(feature = "cuda")]
fn range_table(n_in: usize, n_out: usize) -> Vec<f64> {
    let mut lo = vec![usize::MAX; n_in];
    let mut hi = vec![0usize; n_in];
    for (d, t) in taps(n_in, n_out).iter().enumerate() {
        for i in [t.i0, t.i1] {
            lo[i] = lo[i].min(d);
            hi[i] = hi[i].max(d + 1);
        }
    }
    let lo = lo
        .into_iter()
        .map(|l| if l == usize::MAX { 0.0 } else { l as f64 });
    lo.chain(hi.into_iter().map(|h| h as f64)).collect()
}

trait Float: Copy + Default + std::ops::AddAssign + 'static {
    fn from_f64(v: f64) -> Self;
    fn to_f64(self) -> f64;
}
impl Float for f32 {
    fn from_f64(v: f64) -> Self {
        v as f32
    }
    fn to_f64(self) -> f64 {
        self as f64
    }
}
impl Float for f64 {
    fn from_f64(v: f64) -> Self {
        v
    }
    fn to_f64(self) -> f64 {
        self
    }
}

fn forward<T: Float>(x: &[T], (h, w): (usize, usize), (oh, ow): (usize, usize)) -> Vec<T> {
    let (ty, tx) = (taps(h, oh), taps(w, ow));
    let mut out = Vec::with_capacity(x.len() / (h * w) * oh * ow);
    for plane in x.chunks_exact(h * w) {
        for t in &ty {
            let (r0, r1) = (
                &plane[t.i0 * w..(t.i0 + 1) * w],
                &plane[t.i1 * w..(t.i1 + 1) * w],
            );
            for s in &tx {
                let v = t.w0 * (s.w0 * r0[s.i0].to_f64() + s.w1 * r0[s.i1].to_f64())
                    + t.w1 * (s.w0 * r1[s.i0].to_f64() + s.w1 * r1[s.i1].to_f64());
                out.push(T::from_f64(v));
            }
        }
    }
    out
}

/// Adjoint of [`forward`]: spreads each output gradient back onto its four sources.
fn backward<T: Float>(g: &[T], (h, w): (usize, usize), (oh, ow): (usize, usize)) -> Vec<T> {
    let (ty, tx) = (taps(h, oh), taps(w, ow));
    let planes = g.len() / (oh * ow);
    let mut out = vec![0f64; planes * h * w];
    for (gp, op) in g.chunks_exact(oh * ow).zip(out.chunks_exact_mut(h * w)) {
        for (y, t) in ty.iter().enumerate() {
            for (x, s) in tx.iter().enumerate() {
                let gv = gp[y * ow + x].to_f64();
                op[t.i0 * w + s.i0] += t.w0 * s.w0 * gv;
                op[t.i0 * w + s.i1] += t.w0 * s.w1 * gv;
                op[t.i1 * w + s.i0] += t.w1 * s.w0 * gv;
                op[t.i1 * w + s.i1] += t.w1 * s.w1 * gv;
            }
        }
    }
    out.into_iter().map(T::from_f64).collect()
}

/// Resize of `[N, C, H, W]` to `[N, C, out_h, out_w]`.
struct Resize {
    out_h: usize,
    out_w: usize,
}

/// The adjoint of [`Resize`]: maps a gradient of `[N, C, out_h, out_w]` back to
/// `[N, C, in_h, in_w]`.
struct ResizeBackward {
    in_h: usize,
    in_w: usize,
}

impl CustomOp1 for Resize {
    fn name(&self) -> &'static str {
        "resize-bilinear"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> CResult<(CpuStorage, Shape)> {
        let (n, c, h, w) = l.shape().dims4()?;
        let o = (self.out_h, self.out_w);
        let out = match s {
            CpuStorage::F32(v) => {
                CpuStorage::F32(forward(contiguous(v, l, self.name())?, (h, w), o))
            }
            CpuStorage::F64(v) => {
                CpuStorage::F64(forward(contiguous(v, l, self.name())?, (h, w), o))
            }
            other => candle_core::bail!("{}: unsupported dtype {:?}", self.name(), other.dtype()),
        };
        Ok((out, Shape::from((n, c, self.out_h, self.out_w))))
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        s: &candle_core::CudaStorage,
        l: &Layout,
    ) -> CResult<(candle_core::CudaStorage, Shape)> {
        let (n, c, h, w) = l.shape().dims4()?;
        let o = (self.out_h, self.out_w);
        let (ty, tx) = (tap_table(h, o.0), tap_table(w, o.1));
        let out = super::cuda::resize(s, l, n * c, (h, w), o, (&ty, &tx), None, self.name())?;
        Ok((out, Shape::from((n, c, self.out_h, self.out_w))))
    }

    fn bwd(&self, arg: &Tensor, _res: &Tensor, grad_res: &Tensor) -> CResult<Option<Tensor>> {
        let (_, _, in_h, in_w) = arg.dims4()?;
        Ok(Some(
            grad_res
                .contiguous()?
                .apply_op1(ResizeBackward { in_h, in_w })?,
        ))
    }
}

impl CustomOp1 for ResizeBackward {
    fn name(&self) -> &'static str {
        "resize-bilinear-backward"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> CResult<(CpuStorage, Shape)> {
        let (n, c, oh, ow) = l.shape().dims4()?;
        let i = (self.in_h, self.in_w);
        let out = match s {
            CpuStorage::F32(v) => {
                CpuStorage::F32(backward(contiguous(v, l, self.name())?, i, (oh, ow)))
            }
            CpuStorage::F64(v) => {
                CpuStorage::F64(backward(contiguous(v, l, self.name())?, i, (oh, ow)))
            }
            other => candle_core::bail!("{}: unsupported dtype {:?}", self.name(), other.dtype()),
        };
        Ok((out, Shape::from((n, c, self.in_h, self.in_w))))
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        s: &candle_core::CudaStorage,
        l: &Layout,
    ) -> CResult<(candle_core::CudaStorage, Shape)> {
        let (n, c, oh, ow) = l.shape().dims4()?;
        let (h, w) = (self.in_h, self.in_w);
        let (ty, tx) = (tap_table(h, oh), tap_table(w, ow));
        let (ry, rx) = (range_table(h, oh), range_table(w, ow));
        let out = super::cuda::resize(
            s,
            l,
            n * c,
            (h, w),
            (oh, ow),
            (&ty, &tx),
            Some((&ry, &rx)),
            self.name(),
        )?;
        Ok((out, Shape::from((n, c, h, w))))
    }

    // The adjoint of the adjoint is the forward resize, so second derivatives work too.
    fn bwd(&self, arg: &Tensor, _res: &Tensor, grad_res: &Tensor) -> CResult<Option<Tensor>> {
        let (_, _, oh, ow) = arg.dims4()?;
        Ok(Some(grad_res.contiguous()?.apply_op1(Resize {
            out_h: oh,
            out_w: ow,
        })?))
    }
}

fn check_sizes(x: &Tensor, out_h: usize, out_w: usize) -> CResult<()> {
    let (_, _, h, w) = x.dims4()?;
    if h == 0 || w == 0 || out_h == 0 || out_w == 0 {
        candle_core::bail!("resize-bilinear: cannot resize {h}×{w} to {out_h}×{out_w}");
    }
    Ok(())
}

/// Bilinear resize of a `[N, C, H, W]` tensor to `[N, C, out_h, out_w]`, matching PyTorch's
/// `F.interpolate(x, size=(out_h, out_w), mode="bilinear", align_corners=False)`.
///
/// Differentiable (candle's own `upsample_bilinear2d` has no backward). CPU tensors of f32/f64
/// (and, with the `cuda` feature, CUDA tensors of f32/f64) use a custom operation with an
/// exact backward; other devices and dtypes use [`resize_bilinear_generic`].
///
/// # Shapes
/// `out_h`, then `out_w` ([tensor order](crate#sizes)): `[N, C, H, W]` becomes `[N, C, out_h,
/// out_w]`.
///
/// # Examples
/// ```
/// use candle_core::{Device, Tensor};
/// let x = Tensor::new(&[[[[0f32, 4.]]]], &Device::Cpu)?;
/// let y = xnet_model::ops::resize_bilinear(&x, 1, 4)?;
/// assert_eq!(y.flatten_all()?.to_vec1::<f32>()?, vec![0., 1., 3., 4.]);
/// # Ok::<(), candle_core::Error>(())
/// ```
pub fn resize_bilinear(x: &Tensor, out_h: usize, out_w: usize) -> CResult<Tensor> {
    check_sizes(x, out_h, out_w)?;
    let custom_device = x.device().is_cpu()
        || (cfg!(feature = "cuda") && x.device().is_cuda() && x.elem_count() > 0);
    if custom_device && matches!(x.dtype(), DType::F32 | DType::F64) {
        x.contiguous()?.apply_op1(Resize { out_h, out_w })
    } else {
        resize_bilinear_generic(x, out_h, out_w)
    }
}

/// The interpolation matrix `[n_out, n_in]` of one axis.
fn axis_matrix(
    n_in: usize,
    n_out: usize,
    dtype: DType,
    dev: &candle_core::Device,
) -> CResult<Tensor> {
    let mut m = vec![0f64; n_out * n_in];
    for (d, t) in taps(n_in, n_out).iter().enumerate() {
        m[d * n_in + t.i0] += t.w0;
        m[d * n_in + t.i1] += t.w1;
    }
    Tensor::from_vec(m, (n_out, n_in), dev)?.to_dtype(dtype)
}

/// [`resize_bilinear`] as two matrix products (`A_h · X · A_wᵀ`) of stock candle operations:
/// runs on any device and is differentiated by candle's autograd.
///
/// # Shapes
/// `out_h`, then `out_w` ([tensor order](crate#sizes)): `[N, C, H, W]` becomes `[N, C, out_h,
/// out_w]`.
///
/// # Examples
/// ```
/// use candle_core::{Device, Tensor, Var};
/// use xnet_model::ops::resize_bilinear_generic;
/// // 1 × 2 → 1 × 4, align_corners=False: outputs sit at x = -0.25, 0.25, 0.75, 1.25
/// // (clamped to the edges), i.e. 0, ¼·4, ¾·4, 4.
/// let x = Var::new(&[[[[0f32, 4.]]]], &Device::Cpu)?;
/// let y = resize_bilinear_generic(&x, 1, 4)?;
/// assert_eq!(y.flatten_all()?.to_vec1::<f32>()?, vec![0., 1., 3., 4.]);
/// // Autograd: each input gets the sum of its interpolation weights, 1 + ¾ + ¼ = 2.
/// let g = y.sum_all()?.backward()?;
/// let gx = g.get(&x).map(|t| t.flatten_all()?.to_vec1::<f32>()).transpose()?;
/// assert_eq!(gx, Some(vec![2., 2.]));
/// assert!(resize_bilinear_generic(&x, 0, 4).is_err());
/// # Ok::<(), candle_core::Error>(())
/// ```
pub fn resize_bilinear_generic(x: &Tensor, out_h: usize, out_w: usize) -> CResult<Tensor> {
    check_sizes(x, out_h, out_w)?;
    let (n, c, h, w) = x.dims4()?;
    let a_h = axis_matrix(h, out_h, x.dtype(), x.device())?;
    let a_w_t = axis_matrix(w, out_w, x.dtype(), x.device())?
        .t()?
        .contiguous()?;
    let rows = x.contiguous()?.reshape((n * c * h, w))?.matmul(&a_w_t)?;
    let rows = rows.reshape((n * c, h, out_w))?;
    a_h.unsqueeze(0)?
        .broadcast_as((n * c, out_h, h))?
        .contiguous()?
        .matmul(&rows)?
        .reshape((n, c, out_h, out_w))
}
