//! Concatenation of two `[n, c, h, w]` maps along the channels (the skip connections of
//! XNet and U-Net) as a parallel copy. candle's `Tensor::cat` copies row by row on the
//! calling thread while the other cores wait: 2 % of an XNet forward, more of a train step.
//! The backward is two channel views of the gradient, as candle's.

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp2, DType, Device, Layout, Shape, Tensor};
use rayon::prelude::*;

type CResult<T> = candle_core::Result<T>;

/// `[n, c1 + c2, h, w]` from `a = [n, c1, h, w]` and `b = [n, c2, h, w]`, one image block of
/// `c1·h·w` then `c2·h·w` elements per image, images and halves copied in parallel.
fn cat2<T: Copy + Send + Sync>(a: &[T], b: &[T], n: usize, a_len: usize, b_len: usize) -> Vec<T> {
    let per_image = a_len + b_len;
    let mut out: Vec<T> = Vec::with_capacity(n * per_image);
    if per_image > 0 {
        // Chunks of at most 64 K elements so that both threads share even one image.
        const CHUNK: usize = 65_536;
        out.spare_capacity_mut()[..n * per_image]
            .par_chunks_mut(per_image)
            .enumerate()
            .for_each(|(i, dst)| {
                let (da, db) = dst.split_at_mut(a_len);
                let sa = &a[i * a_len..(i + 1) * a_len];
                let sb = &b[i * b_len..(i + 1) * b_len];
                da.par_chunks_mut(CHUNK)
                    .zip(sa.par_chunks(CHUNK))
                    .chain(db.par_chunks_mut(CHUNK).zip(sb.par_chunks(CHUNK)))
                    .for_each(|(d, s)| {
                        for (d, &s) in d.iter_mut().zip(s) {
                            *d = std::mem::MaybeUninit::new(s);
                        }
                    });
            });
    }
    // SAFETY: every image block was written in full: `a_len` elements from `a`, then
    // `b_len` from `b`.
    unsafe { out.set_len(n * per_image) };
    out
}

struct ConcatChannels;

impl CustomOp2 for ConcatChannels {
    fn name(&self) -> &'static str {
        "xnet-concat-channels"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> CResult<(CpuStorage, Shape)> {
        let (n, c1, h, w) = l1.shape().dims4()?;
        let (n2, c2, h2, w2) = l2.shape().dims4()?;
        if (n, h, w) != (n2, h2, w2) {
            candle_core::bail!(
                "channel concat: shapes {:?} and {:?} differ outside the channels",
                l1.shape(),
                l2.shape()
            );
        }
        let range = |l: &Layout| match l.contiguous_offsets() {
            Some((s, e)) => Ok(s..e),
            None => Err(candle_core::Error::Msg(
                "channel concat: the inputs must be contiguous".into(),
            )),
        };
        let (r1, r2) = (range(l1)?, range(l2)?);
        let (len1, len2) = (c1 * h * w, c2 * h * w);
        let shape = Shape::from((n, c1 + c2, h, w));
        match (s1, s2) {
            (CpuStorage::F32(a), CpuStorage::F32(b)) => {
                Ok((CpuStorage::F32(cat2(&a[r1], &b[r2], n, len1, len2)), shape))
            }
            (CpuStorage::F64(a), CpuStorage::F64(b)) => {
                Ok((CpuStorage::F64(cat2(&a[r1], &b[r2], n, len1, len2)), shape))
            }
            _ => candle_core::bail!(
                "channel concat: f32 or f64 of one dtype expected, got {:?} and {:?}",
                s1.dtype(),
                s2.dtype()
            ),
        }
    }

    fn bwd(
        &self,
        a: &Tensor,
        b: &Tensor,
        _res: &Tensor,
        grad_res: &Tensor,
    ) -> CResult<(Option<Tensor>, Option<Tensor>)> {
        let c1 = a.dim(1)?;
        let c2 = b.dim(1)?;
        Ok((
            Some(grad_res.narrow(1, 0, c1)?),
            Some(grad_res.narrow(1, c1, c2)?),
        ))
    }
}

/// `cat([a, b], 1)` of two `[n, c, h, w]` maps: a parallel copy on CPU f32/f64 tensors when
/// [`super::fast_kernels_enabled`], candle's `Tensor::cat` otherwise (other devices and
/// dtypes, other ranks). Gradients flow to both inputs.
///
/// # Examples
/// ```
/// use candle_core::{Device, Tensor};
/// let a = Tensor::zeros((1, 2, 3, 3), candle_core::DType::F32, &Device::Cpu)?;
/// let b = Tensor::ones((1, 1, 3, 3), candle_core::DType::F32, &Device::Cpu)?;
/// let y = xnet_model::kernels::concat_channels(&a, &b)?;
/// assert_eq!(y.dims(), &[1, 3, 3, 3]);
/// assert_eq!(y.sum_all()?.to_scalar::<f32>()?, 9.0);
/// # Ok::<(), candle_core::Error>(())
/// ```
pub fn concat_channels(a: &Tensor, b: &Tensor) -> CResult<Tensor> {
    let fast = super::fast_kernels_enabled()
        && matches!(a.device(), Device::Cpu)
        && matches!(b.device(), Device::Cpu)
        && matches!(a.dtype(), DType::F32 | DType::F64)
        && a.dtype() == b.dtype()
        && a.rank() == 4
        && b.rank() == 4;
    if fast {
        a.contiguous()?.apply_op2(&b.contiguous()?, ConcatChannels)
    } else {
        Tensor::cat(&[a, b], 1)
    }
}
