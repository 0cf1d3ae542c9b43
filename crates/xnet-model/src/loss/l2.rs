//! L2 regularisation of convolution kernels: the penalty term ([`l2_penalty`]) and its
//! gradient added in place ([`add_l2_gradient`]).

use candle_core::{DType, Tensor, Var};

use crate::Result;

/// L2 penalty `λ · Σ w²` over the convolution kernels among `vars` (the rank-4 tensors:
/// conv and transposed-conv weights; biases and batch-norm parameters are rank 1 and are not
/// penalised), as Keras' `kernel_regularizer=l2(λ)` of the reference implementation.
///
/// Its gradient is `2λw`; PyTorch's `weight_decay=λ'` corresponds to `λ = λ'/2`.
///
/// # Examples
/// ```
/// use candle_core::{Device, Var};
/// use xnet_model::loss::l2_penalty;
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let kernel = Var::from_vec(vec![1.0f32, -2.0, 3.0, 0.5], (1, 1, 2, 2), &Device::Cpu)?;
/// let bias = Var::from_vec(vec![100.0f32], 1, &Device::Cpu)?; // rank 1: not penalised
/// let vars = [kernel, bias];
/// let penalty = l2_penalty(&vars, 1e-2)?.ok_or("a kernel is among the vars")?;
/// // λ · Σ w² = 0.01 · (1 + 4 + 9 + 0.25)
/// assert!((penalty.to_scalar::<f32>()? - 0.1425).abs() < 1e-6);
/// assert!(l2_penalty(&vars, 0.0)?.is_none()); // λ = 0: no term at all
/// # Ok(())
/// # }
/// ```
pub fn l2_penalty(vars: &[Var], lambda: f64) -> Result<Option<Tensor>> {
    if lambda == 0.0 {
        return Ok(None);
    }
    let mut total: Option<Tensor> = None;
    for v in vars
        .iter()
        .filter(|v| v.rank() == 4 && v.dtype().is_float())
    {
        let s = v.as_tensor().sqr()?.sum_all()?.to_dtype(DType::F32)?;
        total = Some(match total {
            Some(t) => (t + s)?,
            None => s,
        });
    }
    match total {
        Some(t) => Ok(Some((t * lambda)?)),
        None => Ok(None),
    }
}

/// Adds the gradient of [`l2_penalty`], `2λw`, to each convolution kernel's gradient in
/// `grads` (and inserts it for a kernel the data term did not reach): the gradient that
/// back-propagating `data + l2_penalty(vars, λ)` gives, without the graph's square, sum,
/// scale and accumulation passes over every kernel. On contiguous CPU tensors the gradient is
/// updated in place (one pass, no allocation).
///
/// # Examples
/// ```
/// use candle_core::{Device, Var};
/// use xnet_model::loss::{add_l2_gradient, l2_penalty};
/// # fn main() -> xnet_model::Result<()> {
/// let kernel = Var::from_vec(vec![1.0f32, -2.0, 3.0, 0.5], (1, 1, 2, 2), &Device::Cpu)?;
/// let data = kernel.as_tensor().sum_all()?; // d data / dw = 1
/// let mut grads = data.backward()?;
/// add_l2_gradient(&mut grads, &[kernel.clone()], 5e-4)?;
/// let g = grads.get(kernel.as_tensor()).unwrap().flatten_all()?.to_vec1::<f32>()?;
/// assert!((g[1] - (1.0 + 2.0 * 5e-4 * -2.0)).abs() < 1e-7);
/// # Ok(())
/// # }
/// ```
pub fn add_l2_gradient(
    grads: &mut candle_core::backprop::GradStore,
    vars: &[Var],
    lambda: f64,
) -> Result<()> {
    if lambda == 0.0 {
        return Ok(());
    }
    let scale = 2.0 * lambda;
    for v in vars
        .iter()
        .filter(|v| v.rank() == 4 && v.dtype().is_float())
    {
        let w = v.as_tensor();
        match grads.get(w) {
            Some(g)
                if g.device().is_cpu()
                    && g.is_contiguous()
                    && w.is_contiguous()
                    && g.shape() == w.shape()
                    && g.dtype() == w.dtype() =>
            {
                g.inplace_op2(&w.detach(), &AddScaled(scale))?;
            }
            Some(g) => {
                let sum = (g + (w.detach() * scale)?)?;
                grads.insert(w, sum);
            }
            None => {
                let own = (w.detach() * scale)?;
                grads.insert(w, own);
            }
        }
    }
    Ok(())
}

/// `dst += c · src`, in place, for contiguous f32/f64 CPU tensors of one shape.
struct AddScaled(f64);

impl candle_core::InplaceOp2 for AddScaled {
    fn name(&self) -> &'static str {
        "xnet-add-scaled"
    }

    fn cpu_fwd(
        &self,
        dst: &mut candle_core::CpuStorage,
        dst_l: &candle_core::Layout,
        src: &candle_core::CpuStorage,
        src_l: &candle_core::Layout,
    ) -> candle_core::Result<()> {
        use candle_core::CpuStorage;
        use rayon::prelude::*;
        let (Some((d0, d1)), Some((s0, s1))) =
            (dst_l.contiguous_offsets(), src_l.contiguous_offsets())
        else {
            candle_core::bail!("add-scaled: operands must be contiguous");
        };
        if d1 - d0 != s1 - s0 {
            candle_core::bail!("add-scaled: {} against {} elements", d1 - d0, s1 - s0);
        }
        const CHUNK: usize = 1 << 15;
        match (dst, src) {
            (CpuStorage::F32(d), CpuStorage::F32(s)) => {
                let c = self.0 as f32;
                d[d0..d1]
                    .par_chunks_mut(CHUNK)
                    .zip(s[s0..s1].par_chunks(CHUNK))
                    .for_each(|(d, s)| d.iter_mut().zip(s).for_each(|(d, &s)| *d += s * c));
            }
            (CpuStorage::F64(d), CpuStorage::F64(s)) => {
                let c = self.0;
                d[d0..d1]
                    .par_chunks_mut(CHUNK)
                    .zip(s[s0..s1].par_chunks(CHUNK))
                    .for_each(|(d, s)| d.iter_mut().zip(s).for_each(|(d, &s)| *d += s * c));
            }
            _ => candle_core::bail!("add-scaled: f32 or f64 operands of one dtype"),
        }
        Ok(())
    }
}
