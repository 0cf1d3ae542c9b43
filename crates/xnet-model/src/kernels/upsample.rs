//! Nearest-neighbour ×2 up-sampling as a plain copy (candle runs it as a grouped
//! convolution), with its backward: the sum over each 2×2 block.

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp1, DType, Device, Layout, Shape, Tensor};

type CResult<T> = candle_core::Result<T>;

fn up2<T: Copy + Send + Sync>(src: &[T], planes: usize, h: usize, w: usize) -> Vec<T> {
    crate::memory::written_par(planes, 4 * h * w, 1, |p, dst| {
        let s = &src[p * h * w..(p + 1) * h * w];
        for y in 0..h {
            let row = &s[y * w..(y + 1) * w];
            let d = &mut dst[2 * y * 2 * w..(2 * y + 1) * 2 * w];
            for (pair, &v) in d.chunks_exact_mut(2).zip(row) {
                pair[0].write(v);
                pair[1].write(v);
            }
            let (top, bottom) = dst[2 * y * 2 * w..(2 * y + 2) * 2 * w].split_at_mut(2 * w);
            bottom.copy_from_slice(top);
        }
    })
}

fn down_sum2<T>(src: &[T], planes: usize, h: usize, w: usize) -> Vec<T>
where
    T: Copy + Send + Sync + std::ops::Add<Output = T>,
{
    // `h`, `w` are the sizes of the (small) result.
    crate::memory::written_par(planes, h * w, 1, |p, dst| {
        let s = &src[p * 4 * h * w..(p + 1) * 4 * h * w];
        for y in 0..h {
            let r0 = &s[2 * y * 2 * w..(2 * y + 1) * 2 * w];
            let r1 = &s[(2 * y + 1) * 2 * w..(2 * y + 2) * 2 * w];
            for (x, d) in dst[y * w..(y + 1) * w].iter_mut().enumerate() {
                d.write(r0[2 * x] + r0[2 * x + 1] + r1[2 * x] + r1[2 * x + 1]);
            }
        }
    })
}

fn dims(layout: &Layout) -> CResult<(usize, usize, usize, usize, usize, usize)> {
    let (n, c, h, w) = layout.shape().dims4()?;
    match layout.contiguous_offsets() {
        Some((s, e)) => Ok((n, c, h, w, s, e)),
        None => candle_core::bail!("nearest up-sampling: the input must be contiguous"),
    }
}

/// Nearest-neighbour ×2 up-sampling of an `[n, c, h, w]` tensor (applied by
/// [`upsample_nearest2x`]).
#[derive(Debug, Clone, Copy)]
struct Upsample2x;

impl CustomOp1 for Upsample2x {
    fn name(&self) -> &'static str {
        "xnet-upsample-nearest2x"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> CResult<(CpuStorage, Shape)> {
        let (n, c, h, w, s, e) = dims(layout)?;
        let shape = Shape::from((n, c, 2 * h, 2 * w));
        match storage {
            CpuStorage::F32(v) => Ok((CpuStorage::F32(up2(&v[s..e], n * c, h, w)), shape)),
            CpuStorage::F64(v) => Ok((CpuStorage::F64(up2(&v[s..e], n * c, h, w)), shape)),
            other => candle_core::bail!(
                "nearest up-sampling: f32 or f64 expected, got {:?}",
                other.dtype()
            ),
        }
    }

    fn bwd(&self, _arg: &Tensor, _res: &Tensor, grad_res: &Tensor) -> CResult<Option<Tensor>> {
        Ok(Some(grad_res.contiguous()?.apply_op1_no_bwd(&DownSum2x)?))
    }
}

/// The backward of [`Upsample2x`]: each output pixel is the sum of its 2×2 block.
#[derive(Debug, Clone, Copy)]
struct DownSum2x;

impl CustomOp1 for DownSum2x {
    fn name(&self) -> &'static str {
        "xnet-upsample-nearest2x-grad"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> CResult<(CpuStorage, Shape)> {
        let (n, c, h2, w2, s, e) = dims(layout)?;
        if h2 % 2 != 0 || w2 % 2 != 0 {
            candle_core::bail!("nearest up-sampling backward: odd gradient size {h2}x{w2}");
        }
        let (h, w) = (h2 / 2, w2 / 2);
        let shape = Shape::from((n, c, h, w));
        match storage {
            CpuStorage::F32(v) => Ok((CpuStorage::F32(down_sum2(&v[s..e], n * c, h, w)), shape)),
            CpuStorage::F64(v) => Ok((CpuStorage::F64(down_sum2(&v[s..e], n * c, h, w)), shape)),
            other => candle_core::bail!(
                "nearest up-sampling backward: f32 or f64 expected, got {:?}",
                other.dtype()
            ),
        }
    }
}

/// Nearest-neighbour ×2 up-sampling of `[n, c, h, w]` into `[n, c, 2h, 2w]` as a plain
/// copy, with gradient.
///
/// # Examples
/// ```
/// use candle_core::{Device, Tensor};
/// let x = Tensor::new(&[[[[1f32, 2.], [3., 4.]]]], &Device::Cpu)?;
/// let y = xnet_model::kernels::upsample_nearest2x_fast(&x)?;
/// assert_eq!(y.flatten_all()?.to_vec1::<f32>()?[..4], [1., 1., 2., 2.]);
/// # Ok::<(), candle_core::Error>(())
/// ```
pub fn upsample_nearest2x_fast(x: &Tensor) -> CResult<Tensor> {
    x.contiguous()?.apply_op1(Upsample2x)
}

/// Nearest-neighbour ×2 up-sampling: the fast copy on CPU f32/f64 tensors when
/// [`super::fast_kernels_enabled`], otherwise candle's `upsample_nearest2d`.
///
/// # Errors
/// An input that is not `[n, c, h, w]`; candle's errors on the other path.
///
/// # Examples
/// ```
/// use candle_core::{DType, Device, Tensor};
/// use xnet_model::kernels::upsample_nearest2x;
/// let x = Tensor::new(&[[[[1f32, 2.], [3., 4.]]]], &Device::Cpu)?;
/// let y = upsample_nearest2x(&x)?;
/// assert_eq!(
///     y.squeeze(0)?.squeeze(0)?.to_vec2::<f32>()?,
///     [[1., 1., 2., 2.], [1., 1., 2., 2.], [3., 3., 4., 4.], [3., 3., 4., 4.]]
/// );
/// // The same as candle's own up-sampling, which other dtypes take.
/// assert_eq!(y.flatten_all()?.to_vec1::<f32>()?,
///     x.upsample_nearest2d(4, 4)?.flatten_all()?.to_vec1::<f32>()?);
/// let half = upsample_nearest2x(&x.to_dtype(DType::F16)?)?.to_dtype(DType::F32)?;
/// assert_eq!(half.flatten_all()?.to_vec1::<f32>()?, y.flatten_all()?.to_vec1::<f32>()?);
/// assert!(upsample_nearest2x(&x.squeeze(0)?).is_err()); // not [n, c, h, w]
/// # Ok::<(), candle_core::Error>(())
/// ```
pub fn upsample_nearest2x(x: &Tensor) -> CResult<Tensor> {
    if super::fast_kernels_enabled()
        && matches!(x.device(), Device::Cpu)
        && matches!(x.dtype(), DType::F32 | DType::F64)
        && x.rank() == 4
    {
        upsample_nearest2x_fast(x)
    } else {
        let (_, _, h, w) = x.dims4()?;
        x.upsample_nearest2d(2 * h, 2 * w)
    }
}
