//! The fast stride-1 "same" convolution as candle custom ops, with an exact backward.

use candle_core::backend::BackendStorage;
use candle_core::{
    CpuStorage, CustomOp1, CustomOp2, CustomOp3, DType, Device, Layout, Shape, Tensor,
};

use super::gemm_conv::{self, Elem, Epilogue, Geom};

type CResult<T> = candle_core::Result<T>;

fn contiguous_slice<'a, T>(data: &'a [T], layout: &Layout, what: &str) -> CResult<&'a [T]> {
    match layout.contiguous_offsets() {
        Some((start, end)) => Ok(&data[start..end]),
        None => candle_core::bail!("fast conv2d: {what} must be contiguous"),
    }
}

fn threads() -> usize {
    rayon::current_num_threads()
}

/// Checks the shapes of a `[n, c_in, h, w]` input and a `[c_out, c_in, k, k]` weight.
fn geometry(x: &Layout, w: &Layout, dilation: usize) -> CResult<Geom> {
    let (n, c_in, h, wd) = x.shape().dims4()?;
    let (c_out, c_in_w, kh, kw) = w.shape().dims4()?;
    if c_in != c_in_w {
        candle_core::bail!(
            "fast conv2d: input has {c_in} channels but the weight expects {c_in_w} \
             (weight shape {:?})",
            w.shape()
        );
    }
    if kh != kw || kh % 2 == 0 {
        candle_core::bail!("fast conv2d: only square odd kernels are supported, got {kh}x{kw}");
    }
    if dilation == 0 {
        candle_core::bail!("fast conv2d: dilation must be at least 1");
    }
    checked_geom(Geom {
        n,
        c_in,
        c_out,
        h,
        w: wd,
        k: kh,
        dil: dilation,
    })
}

/// The dilation a stride-1 "same" convolution over an `h × w` map runs with: `dilation`
/// itself, or the map's larger side (at least 2) where `dilation` is larger.
///
/// A tap off the kernel's centre is at least `dilation` pixels from the output pixel along
/// one axis; once `dilation` reaches the map's larger side, every such tap reads the zero
/// padding, so any dilation from there on gives the same output (and gradients), bit for
/// bit: only the padding, which grows with the dilation, changes. DeepLab's rates scale
/// with the input and would otherwise pad a 1024-pixel input's feature map by thousands of
/// pixels per side. The floor of 2 keeps a dilated convolution off the Winograd paths
/// (which need dilation 1 and round differently).
pub(crate) fn effective_dilation(dilation: usize, h: usize, w: usize) -> usize {
    if dilation <= 1 {
        dilation
    } else {
        dilation.min(h.max(w).max(2))
    }
}

/// `g` with its dilation clamped by [`effective_dilation`], after checking that the sizes
/// the kernels compute from it (padding, padded planes and buffers, kernel taps, output)
/// fit a `usize`: an error rather than an arithmetic overflow on absurd shapes.
fn checked_geom(g: Geom) -> CResult<Geom> {
    let g = Geom {
        dil: effective_dilation(g.dil, g.h, g.w),
        ..g
    };
    let fits = (|| {
        let pad = g.dil.checked_mul(g.k.checked_sub(1)?)? / 2;
        let hp = g.h.checked_add(pad.checked_mul(2)?)?;
        let wp = g.w.checked_add(pad.checked_mul(2)?)?;
        let planes = g.n.checked_mul(g.c_in.max(g.c_out))?;
        planes
            .checked_mul(hp.checked_mul(wp)?)?
            .checked_add(pad.checked_mul(2)?.checked_add(1)?)?;
        let taps = g.k.checked_mul(g.k)?;
        g.c_out.checked_mul(g.c_in)?.checked_mul(taps)?;
        g.n.checked_mul(g.c_out)?.checked_mul(g.h)?.checked_mul(g.w)
    })()
    .is_some();
    if !fits {
        candle_core::bail!(
            "fast conv2d: sizes overflow: {} image(s) of {} × {} with {} → {} channels, \
             a {} × {} kernel and dilation {}",
            g.n,
            g.h,
            g.w,
            g.c_in,
            g.c_out,
            g.k,
            g.k,
            g.dil
        );
    }
    Ok(g)
}

fn wrap<T: Elem>(v: Vec<T>) -> CpuStorage
where
    Vec<T>: IntoStorage,
{
    v.into_storage()
}

/// Turns a result vector back into candle storage.
trait IntoStorage {
    fn into_storage(self) -> CpuStorage;
}
impl IntoStorage for Vec<f32> {
    fn into_storage(self) -> CpuStorage {
        CpuStorage::F32(self)
    }
}
impl IntoStorage for Vec<f64> {
    fn into_storage(self) -> CpuStorage {
        CpuStorage::F64(self)
    }
}

/// Stride-1 "same" 2-D convolution with bias and an optional fused ReLU.
///
/// Applied with [`conv2d_fast`]; the op itself is public so that callers can build it once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FastConv2d {
    /// Spacing between kernel taps (1 = ordinary convolution).
    pub dilation: usize,
    /// Apply `max(·, 0)` to the result, fused into the GEMM epilogue.
    pub relu: bool,
}

impl FastConv2d {
    fn run<T: Elem>(&self, x: &[T], w: &[T], b: &[T], g: &Geom) -> CResult<(CpuStorage, Shape)>
    where
        Vec<T>: IntoStorage,
    {
        if b.len() != g.c_out {
            candle_core::bail!(
                "fast conv2d: bias has {} values, expected one per output channel ({})",
                b.len(),
                g.c_out
            );
        }
        let kk = (g.k * g.k) as isize;
        let strides = ((g.c_in as isize) * kk, kk, 1);
        let epi = if self.relu {
            Epilogue::BiasRelu
        } else {
            Epilogue::Bias
        };
        let out = gemm_conv::conv_same(x, g, w, 0, strides, Some(b), epi, threads());
        Ok((wrap(out), Shape::from((g.n, g.c_out, g.h, g.w))))
    }
}

impl CustomOp3 for FastConv2d {
    fn name(&self) -> &'static str {
        "xnet-fast-conv2d"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> CResult<(CpuStorage, Shape)> {
        let g = geometry(l1, l2, self.dilation)?;
        match (s1, s2, s3) {
            (CpuStorage::F32(x), CpuStorage::F32(w), CpuStorage::F32(b)) => self.run(
                contiguous_slice(x, l1, "input")?,
                contiguous_slice(w, l2, "weight")?,
                contiguous_slice(b, l3, "bias")?,
                &g,
            ),
            (CpuStorage::F64(x), CpuStorage::F64(w), CpuStorage::F64(b)) => self.run(
                contiguous_slice(x, l1, "input")?,
                contiguous_slice(w, l2, "weight")?,
                contiguous_slice(b, l3, "bias")?,
                &g,
            ),
            _ => candle_core::bail!(
                "fast conv2d: input, weight and bias must all be f32 or all f64, got {:?}, {:?}, {:?}",
                s1.dtype(),
                s2.dtype(),
                s3.dtype()
            ),
        }
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        b: &Tensor,
        res: &Tensor,
        grad_res: &Tensor,
    ) -> CResult<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let grad = if self.relu {
            // d relu: pass the gradient where the output is positive.
            (grad_res * res.gt(0.0)?.to_dtype(grad_res.dtype())?)?
        } else {
            grad_res.clone()
        };
        let grad = grad.contiguous()?;
        // Only the operands that carry gradients: the first layer's input (the image) and
        // the zero bias stood in for `None` do not, and their gradients would be a whole
        // convolution and a reduction computed for nothing.
        let dx = if x.track_op() {
            Some(grad.apply_op2_no_bwd(
                &w.contiguous()?,
                &ConvGradInput {
                    dilation: self.dilation,
                },
            )?)
        } else {
            None
        };
        let dw = if w.track_op() {
            Some(x.contiguous()?.apply_op2_no_bwd(
                &grad,
                &ConvGradWeight {
                    dilation: self.dilation,
                    k: w.dim(3)?,
                },
            )?)
        } else {
            None
        };
        // candle's `sum((0, 2, 3))` is a strided scalar reduction: 6 % of an XNet train step.
        let db = if !b.track_op() {
            None
        } else if grad.device().is_cpu() {
            Some(grad.apply_op1_no_bwd(&ChannelSum)?)
        } else {
            Some(grad.sum((0, 2, 3))?)
        };
        // Parameters go straight to `kernels::backward`'s sink when one is installed.
        let dw = super::grad_sink::offer(w, dw)?;
        let db = super::grad_sink::offer(b, db)?;
        Ok((dx, dw, db))
    }
}

/// `Σ_{n,h,w} x[n, c, h, w]` per channel of a contiguous `[n, c, h, w]` tensor (the bias
/// gradient of a convolution): channels in parallel, each plane summed in eight lanes.
#[derive(Debug, Clone, Copy)]
struct ChannelSum;

impl CustomOp1 for ChannelSum {
    fn name(&self) -> &'static str {
        "xnet-channel-sum"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> CResult<(CpuStorage, Shape)> {
        let (n, c, h, w) = l.shape().dims4()?;
        let out = match s {
            CpuStorage::F32(v) => wrap(channel_sum(
                contiguous_slice(v, l, "gradient")?,
                n,
                c,
                h * w,
            )),
            CpuStorage::F64(v) => wrap(channel_sum(
                contiguous_slice(v, l, "gradient")?,
                n,
                c,
                h * w,
            )),
            _ => candle_core::bail!("channel sum: unsupported dtype {:?}", s.dtype()),
        };
        Ok((out, Shape::from(c)))
    }
}

fn channel_sum<T: Elem>(x: &[T], n: usize, c: usize, plane: usize) -> Vec<T> {
    use rayon::prelude::*;
    (0..c)
        .into_par_iter()
        .map(|ch| {
            let mut lanes = [T::ZERO; 8];
            let mut rest = T::ZERO;
            for b in 0..n {
                let run = &x[(b * c + ch) * plane..][..plane];
                let chunks = run.chunks_exact(8);
                for &v in chunks.remainder() {
                    rest += v;
                }
                for chunk in chunks {
                    for (a, &v) in lanes.iter_mut().zip(chunk) {
                        *a += v;
                    }
                }
            }
            lanes.iter().fold(rest, |s, &a| s + a)
        })
        .collect()
}

/// Gradient of [`FastConv2d`] wrt its input: `(grad_out, weight) -> grad_in`.
#[derive(Debug, Clone, Copy)]
struct ConvGradInput {
    dilation: usize,
}

impl CustomOp2 for ConvGradInput {
    fn name(&self) -> &'static str {
        "xnet-fast-conv2d-grad-input"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> CResult<(CpuStorage, Shape)> {
        let (n, c_out, h, w) = l1.shape().dims4()?;
        let (c_out_w, c_in, k, _) = l2.shape().dims4()?;
        if c_out != c_out_w {
            candle_core::bail!(
                "fast conv2d backward: gradient has {c_out} channels, weight {c_out_w}"
            );
        }
        let g = checked_geom(Geom {
            n,
            c_in,
            c_out,
            h,
            w,
            k,
            dil: self.dilation,
        })?;
        let shape = Shape::from((n, c_in, h, w));
        match (s1, s2) {
            (CpuStorage::F32(go), CpuStorage::F32(wt)) => Ok((
                wrap(gemm_conv::conv_grad_input(
                    contiguous_slice(go, l1, "gradient")?,
                    &g,
                    contiguous_slice(wt, l2, "weight")?,
                    threads(),
                )),
                shape,
            )),
            (CpuStorage::F64(go), CpuStorage::F64(wt)) => Ok((
                wrap(gemm_conv::conv_grad_input(
                    contiguous_slice(go, l1, "gradient")?,
                    &g,
                    contiguous_slice(wt, l2, "weight")?,
                    threads(),
                )),
                shape,
            )),
            _ => candle_core::bail!("fast conv2d backward: unsupported dtypes"),
        }
    }
}

/// Gradient of [`FastConv2d`] wrt its weight: `(input, grad_out) -> grad_weight`.
#[derive(Debug, Clone, Copy)]
struct ConvGradWeight {
    dilation: usize,
    k: usize,
}

impl CustomOp2 for ConvGradWeight {
    fn name(&self) -> &'static str {
        "xnet-fast-conv2d-grad-weight"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> CResult<(CpuStorage, Shape)> {
        let (n, c_in, h, w) = l1.shape().dims4()?;
        let (n2, c_out, h2, w2) = l2.shape().dims4()?;
        if (n, h, w) != (n2, h2, w2) {
            candle_core::bail!("fast conv2d backward: input and gradient shapes disagree");
        }
        let g = checked_geom(Geom {
            n,
            c_in,
            c_out,
            h,
            w,
            k: self.k,
            dil: self.dilation,
        })?;
        let shape = Shape::from((c_out, c_in, self.k, self.k));
        match (s1, s2) {
            (CpuStorage::F32(x), CpuStorage::F32(go)) => {
                let x = contiguous_slice(x, l1, "input")?;
                let go = contiguous_slice(go, l2, "gradient")?;
                Ok((
                    wrap(gemm_conv::conv_grad_weight_same(x, go, &g, threads())),
                    shape,
                ))
            }
            (CpuStorage::F64(x), CpuStorage::F64(go)) => {
                let x = contiguous_slice(x, l1, "input")?;
                let go = contiguous_slice(go, l2, "gradient")?;
                Ok((
                    wrap(gemm_conv::conv_grad_weight_same(x, go, &g, threads())),
                    shape,
                ))
            }
            _ => candle_core::bail!("fast conv2d backward: unsupported dtypes"),
        }
    }
}

/// The kernel [`conv2d_fast`] runs on the CPU for an `[n, c_in, h, w]` input and a
/// `[c_out, c_in, k, k]` weight with this dilation: `"direct"` (one GEMM per tap),
/// `"winograd-f23"` or `"winograd-f43"` (Winograd F(2×2, 3×3) or F(4×4, 3×3)). The input
/// gradient runs the kernel of the transposed shape (`c_in` and `c_out` swapped).
///
/// The choice follows per-layer timings unless the environment forces one:
/// `XNET_CONV_DIRECT=1`, or `XNET_CONV_PATH=direct|f23|f43` (Winograd only for 3×3 kernels
/// without dilation; others stay direct).
///
/// # Shapes
/// `n`, `c_in`, `c_out`, `h`, then `w` ([tensor order](crate#sizes)): the input is `[n, c_in, h,
/// w]`.
///
/// # Examples
///
/// ```
/// use xnet_model::kernels::conv2d_fast_path;
///
/// // A 5×5 kernel has no Winograd variant here.
/// assert_eq!(conv2d_fast_path(1, 64, 64, 50, 50, 5, 1), "direct");
/// ```
pub fn conv2d_fast_path(
    n: usize,
    c_in: usize,
    c_out: usize,
    h: usize,
    w: usize,
    k: usize,
    dilation: usize,
) -> &'static str {
    path_of(gemm_conv::forward_path, (n, c_in, c_out, h, w, k, dilation))
}

/// Which kernels the dispatching functions ([`conv2d`], [`upsample_nearest2x`],
/// [`concat_channels`], the networks' convolution blocks) take, for [`with_kernels`].
///
/// [`upsample_nearest2x`]: super::upsample_nearest2x
/// [`concat_channels`]: super::concat_channels
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KernelChoice {
    /// The fast kernels wherever they apply (CPU, `f32`/`f64`), whatever the environment.
    Fast,
    /// Stock candle operations everywhere: the reference the fast kernels are tested
    /// against.
    Reference,
}

thread_local! {
    /// The choice of the innermost [`with_kernels`] running on this thread.
    static KERNEL_CHOICE: std::cell::Cell<Option<KernelChoice>> =
        const { std::cell::Cell::new(None) };
}

/// Runs `f` with the dispatching functions called on this thread taking `choice`, instead
/// of what `XNET_REFERENCE_KERNELS` says ([`fast_kernels_enabled`]); the previous choice is
/// back when `f` returns or unwinds. Unlike setting the variable, it changes nothing for
/// other threads, so tests comparing the two paths can run side by side: a network's
/// forward pass and `backward` dispatch on the calling thread (their kernels then share
/// out work on rayon's pool, which does not decide anything), but a closure that hands
/// whole forward passes to other threads takes the choice only where it is made.
///
/// # Examples
/// ```
/// use candle_core::{Device, Tensor};
/// use xnet_model::kernels::{conv2d, conv2d_reference, fast_kernels_enabled, with_kernels, KernelChoice};
/// let dev = Device::Cpu;
/// let x = Tensor::randn(0f32, 1.0, (1, 2, 8, 8), &dev)?;
/// let w = Tensor::randn(0f32, 1.0, (3, 2, 3, 3), &dev)?;
/// let stock = with_kernels(KernelChoice::Reference, || {
///     assert!(!fast_kernels_enabled());
///     conv2d(&x, &w, None, 1, false)
/// })?;
/// let same = conv2d_reference(&x, &w, None, 1, false)?;
/// let diff = (stock - same)?.abs()?.max_all()?.to_scalar::<f32>()?;
/// assert_eq!(diff, 0.0); // bit for bit the stock path
/// // Other threads keep their own choice.
/// with_kernels(KernelChoice::Fast, || {
///     assert!(fast_kernels_enabled());
///     let other = std::thread::spawn(|| with_kernels(KernelChoice::Reference, fast_kernels_enabled));
///     assert!(!other.join().unwrap());
///     assert!(fast_kernels_enabled());
/// });
/// # Ok::<(), candle_core::Error>(())
/// ```
pub fn with_kernels<T>(choice: KernelChoice, f: impl FnOnce() -> T) -> T {
    /// Puts the enclosing choice back, also when `f` panics.
    struct Restore(Option<KernelChoice>);
    impl Drop for Restore {
        fn drop(&mut self) {
            let _ = KERNEL_CHOICE.try_with(|c| c.set(self.0));
        }
    }
    let _restore = Restore(KERNEL_CHOICE.with(|c| c.replace(Some(choice))));
    f()
}

/// Whether the fast kernels are used where they apply. Inside [`with_kernels`], as it says;
/// otherwise they are, unless the environment variable `XNET_REFERENCE_KERNELS` is set to
/// anything but `0` or an empty string, which forces the stock candle path (the reference
/// the fast path is tested against) for the whole process: set it before the program
/// starts (`XNET_REFERENCE_KERNELS=1 cargo run ...`), as it is read on every call.
///
/// # Examples
/// ```
/// use xnet_model::kernels::{fast_kernels_enabled, with_kernels, KernelChoice};
/// // The default, unless the process was started with XNET_REFERENCE_KERNELS=1.
/// # if std::env::var_os("XNET_REFERENCE_KERNELS").is_none() {
/// assert!(fast_kernels_enabled());
/// # }
/// assert!(!with_kernels(KernelChoice::Reference, fast_kernels_enabled));
/// assert!(with_kernels(KernelChoice::Fast, fast_kernels_enabled));
/// ```
pub fn fast_kernels_enabled() -> bool {
    match KERNEL_CHOICE.try_with(std::cell::Cell::get).ok().flatten() {
        Some(choice) => choice == KernelChoice::Fast,
        None => {
            !matches!(std::env::var("XNET_REFERENCE_KERNELS"), Ok(v) if !v.is_empty() && v != "0")
        }
    }
}

/// Whether [`conv2d_fast`] can run on these operands: CPU tensors of f32 or f64 and a square
/// odd kernel.
///
/// # Examples
/// ```
/// use candle_core::{DType, Device, Tensor};
/// use xnet_model::kernels::fast_conv_supported;
/// let x = Tensor::zeros((1, 2, 8, 8), DType::F32, &Device::Cpu)?;
/// let w = Tensor::zeros((4, 2, 3, 3), DType::F32, &Device::Cpu)?;
/// assert!(fast_conv_supported(&x, &w));
/// assert!(fast_conv_supported(&x.to_dtype(DType::F64)?, &w.to_dtype(DType::F64)?));
/// // An even kernel, mixed dtypes, half precision: candle's convolution instead.
/// assert!(!fast_conv_supported(&x, &Tensor::zeros((4, 2, 2, 2), DType::F32, &Device::Cpu)?));
/// assert!(!fast_conv_supported(&x.to_dtype(DType::F64)?, &w));
/// assert!(!fast_conv_supported(&x.to_dtype(DType::F16)?, &w.to_dtype(DType::F16)?));
/// # Ok::<(), candle_core::Error>(())
/// ```
pub fn fast_conv_supported(x: &Tensor, weight: &Tensor) -> bool {
    matches!(x.device(), Device::Cpu)
        && matches!(x.dtype(), DType::F32 | DType::F64)
        && x.dtype() == weight.dtype()
        && x.rank() == 4
        && weight.rank() == 4
        && weight.dim(2).ok() == weight.dim(3).ok()
        && weight.dim(2).is_ok_and(|k| k % 2 == 1)
}

/// Stride-1 "same" convolution `act(conv(x, weight) + bias)` with the fast CPU kernel.
///
/// `x` is `[n, c_in, h, w]`, `weight` `[c_out, c_in, k, k]` with `k` odd, `bias` `[c_out]`;
/// the padding is `dilation·(k-1)/2` on every side so the output keeps the input's size.
/// With `relu`, `max(·, 0)` is fused into the same pass. Gradients flow to all three
/// operands.
///
/// A dilation larger than the input's larger side runs as that side (at least 2): every tap
/// but the centre one then reads the zero padding either way, so the output and gradients
/// are the same, bit for bit, without padding the input by the whole dilation.
///
/// # Errors
/// Shapes that do not fit (input channels other than the weight's, a kernel that is not
/// square and odd, a bias without one value per output channel), dilation 0, dtypes other
/// than all f32 or all f64, and sizes whose arithmetic would overflow a `usize`.
///
/// # Examples
/// ```
/// use candle_core::{Device, Tensor};
/// let dev = Device::Cpu;
/// let x = Tensor::ones((1, 2, 5, 5), candle_core::DType::F32, &dev)?;
/// let w = Tensor::ones((4, 2, 3, 3), candle_core::DType::F32, &dev)?;
/// let y = xnet_model::kernels::conv2d_fast(&x, &w, None, 1, false)?;
/// assert_eq!(y.dims(), &[1, 4, 5, 5]);
/// // The centre pixel sees all 2·3·3 ones.
/// assert_eq!(y.get(0)?.get(0)?.get(2)?.get(2)?.to_scalar::<f32>()?, 18.0);
/// # Ok::<(), candle_core::Error>(())
/// ```
pub fn conv2d_fast(
    x: &Tensor,
    weight: &Tensor,
    bias: Option<&Tensor>,
    dilation: usize,
    relu: bool,
) -> CResult<Tensor> {
    let zeros;
    let bias = match bias {
        Some(b) => b,
        None => {
            zeros = Tensor::zeros(weight.dim(0)?, weight.dtype(), weight.device())?;
            &zeros
        }
    };
    x.contiguous()?.apply_op3(
        &weight.contiguous()?,
        &bias.contiguous()?,
        FastConv2d { dilation, relu },
    )
}

/// The weight gradient [`conv2d_fast`]'s backward computes, on its own: for an
/// `[n, c_in, h, w]` input and the `[n, c_out, h, w]` gradient of the (pre-activation)
/// output, the `[c_out, c_in, k, k]` gradient of the weight of a `k × k` "same"
/// convolution with this dilation. Public so that it can be timed and tested apart from
/// the rest of a backward pass ([`conv2d_fast_weight_grad_path`] says which kernel runs).
///
/// # Examples
/// ```
/// use candle_core::{DType, Device, Tensor};
/// let dev = Device::Cpu;
/// let x = Tensor::ones((1, 1, 4, 4), DType::F32, &dev)?;
/// let dy = Tensor::ones((1, 1, 4, 4), DType::F32, &dev)?;
/// let dw = xnet_model::kernels::conv2d_fast_weight_grad(&x, &dy, 3, 1)?;
/// // The centre tap sees all 16 pixels, a corner tap the 3×3 that stay inside.
/// assert_eq!(dw.flatten_all()?.to_vec1::<f32>()?[4], 16.0);
/// assert_eq!(dw.flatten_all()?.to_vec1::<f32>()?[0], 9.0);
/// # Ok::<(), candle_core::Error>(())
/// ```
pub fn conv2d_fast_weight_grad(
    x: &Tensor,
    grad_output: &Tensor,
    k: usize,
    dilation: usize,
) -> CResult<Tensor> {
    if k % 2 != 1 || dilation == 0 {
        candle_core::bail!("fast conv2d weight gradient: k must be odd and dilation ≥ 1, got k = {k}, dilation = {dilation}");
    }
    x.contiguous()?
        .apply_op2_no_bwd(&grad_output.contiguous()?, &ConvGradWeight { dilation, k })
}

/// The kernel [`conv2d_fast_weight_grad`] (and so [`conv2d_fast`]'s backward) runs for the
/// weight gradient of this shape: `"direct"`, `"winograd-f23"` or `"winograd-f43"`, chosen
/// from per-layer timings unless the environment forces one, as for
/// [`conv2d_fast_path`].
///
/// # Shapes
/// `n`, `c_in`, `c_out`, `h`, then `w` ([tensor order](crate#sizes)): the input is `[n, c_in, h,
/// w]`.
///
/// # Examples
/// ```
/// use xnet_model::kernels::conv2d_fast_weight_grad_path;
///
/// assert_eq!(conv2d_fast_weight_grad_path(1, 64, 64, 50, 50, 5, 1), "direct");
/// ```
pub fn conv2d_fast_weight_grad_path(
    n: usize,
    c_in: usize,
    c_out: usize,
    h: usize,
    w: usize,
    k: usize,
    dilation: usize,
) -> &'static str {
    path_of(
        gemm_conv::grad_weight_path,
        (n, c_in, c_out, h, w, k, dilation),
    )
}

/// The name of the path `choose` picks for the geometry `(n, c_in, c_out, h, w, k,
/// dilation)`.
fn path_of(
    choose: fn(&Geom) -> gemm_conv::ConvPath,
    (n, c_in, c_out, h, w, k, dil): (usize, usize, usize, usize, usize, usize, usize),
) -> &'static str {
    match choose(&Geom {
        n,
        c_in,
        c_out,
        h,
        w,
        k,
        dil,
    }) {
        gemm_conv::ConvPath::Direct => "direct",
        gemm_conv::ConvPath::Winograd2 => "winograd-f23",
        gemm_conv::ConvPath::Winograd4 => "winograd-f43",
    }
}

/// The same computation as [`conv2d_fast`] with stock candle operations (`conv2d`,
/// broadcast add, `relu`): the reference the fast kernel is tested against. The padding is
/// `dilation·(k-1)/2` for a `k × k` weight, and a dilation larger than the input's larger
/// side runs as that side (the same output, as in [`conv2d_fast`]).
///
/// # Errors
/// candle's errors for shapes that do not fit, and an error for a weight whose kernel is
/// empty (`k = 0`) or even (no centred "same" padding), or whose padding would overflow a
/// `usize`.
///
/// # Examples
/// ```
/// use candle_core::{DType, Device, Tensor};
/// use xnet_model::kernels::{conv2d_fast, conv2d_reference};
/// let dev = Device::Cpu;
/// let x = Tensor::randn(0f32, 1.0, (2, 3, 10, 12), &dev)?;
/// let w = Tensor::randn(0f32, 1.0, (4, 3, 3, 3), &dev)?;
/// let b = Tensor::randn(0f32, 1.0, 4, &dev)?;
/// let max_diff = |a: &Tensor, b: &Tensor| -> candle_core::Result<f32> {
///     (a - b)?.abs()?.max_all()?.to_scalar::<f32>()
/// };
/// for dilation in [1, 2, 12, 50] {
///     let y = conv2d_reference(&x, &w, Some(&b), dilation, true)?;
///     assert_eq!(y.dims(), &[2, 4, 10, 12]); // "same" padding
///     // The fast kernel computes the same, up to the order of the float sums.
///     let fast = conv2d_fast(&x, &w, Some(&b), dilation, true)?;
///     assert!(max_diff(&y, &fast)? < 1e-4);
/// }
/// // A dilation beyond the larger side (12) runs as that side.
/// let far = conv2d_reference(&x, &w, None, 1000, false)?;
/// assert_eq!(max_diff(&far, &conv2d_reference(&x, &w, None, 12, false)?)?, 0.0);
///
/// let two_channels = Tensor::zeros((4, 2, 3, 3), DType::F32, &dev)?;
/// assert!(conv2d_reference(&x, &two_channels, None, 1, false).is_err());
/// let even = Tensor::zeros((4, 3, 2, 2), DType::F32, &dev)?;
/// assert!(conv2d_reference(&x, &even, None, 1, false).is_err());
/// # Ok::<(), candle_core::Error>(())
/// ```
pub fn conv2d_reference(
    x: &Tensor,
    weight: &Tensor,
    bias: Option<&Tensor>,
    dilation: usize,
    relu: bool,
) -> CResult<Tensor> {
    let (_, _, h, w) = x.dims4()?;
    let k = weight.dim(2)?;
    // An even kernel has no centre: `dilation·(k−1)/2` would pad one pixel short, and the
    // output would shrink instead of keeping the input's size (the fast kernel refuses it too).
    if k % 2 == 0 && k > 0 {
        candle_core::bail!(
            "conv2d: the weight {:?} has an even kernel, which has no centred \"same\" padding",
            weight.shape()
        );
    }
    let dilation = effective_dilation(dilation, h, w);
    let Some(pad) = k
        .checked_sub(1)
        .and_then(|k1| dilation.checked_mul(k1))
        .map(|p| p / 2)
    else {
        candle_core::bail!(
            "conv2d: the weight {:?} has an empty kernel or its padding at dilation \
             {dilation} overflows",
            weight.shape()
        );
    };
    let mut y = x.conv2d(weight, pad, 1, dilation, 1)?;
    if let Some(b) = bias {
        y = y.broadcast_add(&b.reshape((1, b.dim(0)?, 1, 1))?)?;
    }
    if relu {
        y = y.relu()?;
    }
    Ok(y)
}

/// `act(conv(x, weight) + bias)` through the fast kernel when it applies and
/// [`fast_kernels_enabled`], otherwise through [`conv2d_reference`].
///
/// # Errors
/// Those of the path taken: [`conv2d_fast`]'s or [`conv2d_reference`]'s.
///
/// # Examples
/// ```
/// use candle_core::{DType, Device, Tensor};
/// use xnet_model::kernels::{conv2d, conv2d_fast, conv2d_reference, with_kernels, KernelChoice};
/// let dev = Device::Cpu;
/// let x = Tensor::randn(0f32, 1.0, (1, 2, 8, 8), &dev)?;
/// let w = Tensor::randn(0f32, 1.0, (3, 2, 3, 3), &dev)?;
/// let max_diff = |a: &Tensor, b: &Tensor| -> candle_core::Result<f32> {
///     (a.to_dtype(DType::F32)? - b.to_dtype(DType::F32)?)?.abs()?.max_all()?.to_scalar::<f32>()
/// };
/// // f32 on the CPU: the fast kernel, bit for bit.
/// let y = with_kernels(KernelChoice::Fast, || conv2d(&x, &w, None, 1, true))?;
/// assert_eq!(max_diff(&y, &conv2d_fast(&x, &w, None, 1, true)?)?, 0.0);
/// assert!(y.min_all()?.to_scalar::<f32>()? >= 0.0); // the fused ReLU
/// // Half precision has no fast kernel: candle's convolution.
/// let (xh, wh) = (x.to_dtype(DType::F16)?, w.to_dtype(DType::F16)?);
/// let yh = conv2d(&xh, &wh, None, 1, true)?;
/// assert_eq!(max_diff(&yh, &conv2d_reference(&xh, &wh, None, 1, true)?)?, 0.0);
/// assert!(max_diff(&yh, &y)? < 0.05);
/// // So does everything with `XNET_REFERENCE_KERNELS=1`, or inside `with_kernels`.
/// let r = with_kernels(KernelChoice::Reference, || conv2d(&x, &w, None, 1, true))?;
/// assert_eq!(max_diff(&r, &conv2d_reference(&x, &w, None, 1, true)?)?, 0.0);
/// assert!(max_diff(&r, &y)? < 1e-5);
/// # Ok::<(), candle_core::Error>(())
/// ```
pub fn conv2d(
    x: &Tensor,
    weight: &Tensor,
    bias: Option<&Tensor>,
    dilation: usize,
    relu: bool,
) -> CResult<Tensor> {
    if fast_kernels_enabled() && fast_conv_supported(x, weight) {
        conv2d_fast(x, weight, bias, dilation, relu)
    } else {
        conv2d_reference(x, weight, bias, dilation, relu)
    }
}

/// Folds an inference-mode batch norm into the preceding convolution:
/// `bn(conv(x, w) + b) = conv(x, w·s) + (b - mean)·s + beta` with `s = gamma / sqrt(var + eps)`.
///
/// Returns the folded `(weight, bias)`; `bias` may be `None` (treated as zero).
///
/// # Examples
/// ```
/// use candle_core::{DType, Device, Tensor};
/// use xnet_model::kernels::{conv2d_reference, fold_batch_norm};
/// let dev = Device::Cpu;
/// let x = Tensor::randn(0f32, 1.0, (1, 2, 6, 6), &dev)?;
/// let w = Tensor::randn(0f32, 1.0, (3, 2, 3, 3), &dev)?;
/// let b = Tensor::new(&[0.1f32, -0.2, 0.3], &dev)?;
/// let gamma = Tensor::new(&[1.5f32, 0.5, 2.0], &dev)?;
/// let beta = Tensor::new(&[0.0f32, 1.0, -1.0], &dev)?;
/// let mean = Tensor::new(&[0.2f32, -0.1, 0.0], &dev)?;
/// let var = Tensor::new(&[1.0f32, 4.0, 0.25], &dev)?;
/// let eps = 1e-3;
///
/// // Batch norm (inference) after the convolution, channel by channel...
/// let per_channel = |t: &Tensor| t.reshape((1, 3, 1, 1));
/// let y = conv2d_reference(&x, &w, Some(&b), 1, false)?;
/// let bn = y
///     .broadcast_sub(&per_channel(&mean)?)?
///     .broadcast_div(&per_channel(&(&var + eps)?.sqrt()?)?)?
///     .broadcast_mul(&per_channel(&gamma)?)?
///     .broadcast_add(&per_channel(&beta)?)?;
/// // ... is one convolution with the folded weight and bias.
/// let (wf, bf) = fold_batch_norm(&w, Some(&b), &gamma, &beta, &mean, &var, eps)?;
/// assert_eq!((wf.dims(), bf.dims()), (w.dims(), &[3][..]));
/// let folded = conv2d_reference(&x, &wf, Some(&bf), 1, false)?;
/// assert!((folded - bn)?.abs()?.max_all()?.to_scalar::<f32>()? < 1e-4);
///
/// // Without a bias: b' = beta − mean · gamma / √(var + eps).
/// let (_, bf) = fold_batch_norm(&w, None, &gamma, &beta, &mean, &var, 0.0)?;
/// let expected = [0.0f32 - 0.2 * 1.5, 1.0 + 0.1 * 0.5 / 2.0, -1.0];
/// let bf = bf.to_vec1::<f32>()?;
/// assert!(bf.iter().zip(expected).all(|(a, e)| (a - e).abs() < 1e-6), "{bf:?}");
/// # Ok::<(), candle_core::Error>(())
/// ```
pub fn fold_batch_norm(
    weight: &Tensor,
    bias: Option<&Tensor>,
    gamma: &Tensor,
    beta: &Tensor,
    running_mean: &Tensor,
    running_var: &Tensor,
    eps: f64,
) -> CResult<(Tensor, Tensor)> {
    let c_out = weight.dim(0)?;
    let scale = (gamma / (running_var + eps)?.sqrt()?)?;
    let w = weight.broadcast_mul(&scale.reshape((c_out, 1, 1, 1))?)?;
    let b = match bias {
        Some(b) => (b - running_mean)?,
        None => running_mean.neg()?,
    };
    let b = ((b * &scale)? + beta)?;
    Ok((w, b))
}
