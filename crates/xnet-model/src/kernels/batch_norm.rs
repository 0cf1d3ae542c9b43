//! Training-mode batch norm fused with ReLU: one statistics pass and one output pass
//! forward, one reduction pass and one output pass backward (candle's `BatchNorm` plus
//! `relu` make about a dozen full-size passes with a transpose copy each way).

use std::mem::MaybeUninit;
use std::sync::{Arc, Mutex};

use super::gemm_conv::SendPtr;
use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp3, DType, Device, Layout, Shape, Storage, Tensor, Var};
use rayon::prelude::*;

type CResult<T> = candle_core::Result<T>;

/// Per-channel batch statistics of one forward: mean and biased variance (f64).
#[derive(Debug, Clone, Default)]
struct Stats {
    mean: Vec<f64>,
    var: Vec<f64>,
}

/// `relu?(gamma · (x − mean) / sqrt(var + eps) + beta)` with batch statistics over
/// `[n, ·, h, w]` per channel. The statistics of the last forward are kept for the backward
/// and for the running-statistics update.
#[derive(Debug, Clone)]
struct BnReluTrain {
    eps: f64,
    relu: bool,
    stats: Arc<Mutex<Stats>>,
}

fn slice<'a, T>(v: &'a [T], l: &Layout, what: &str) -> CResult<&'a [T]> {
    match l.contiguous_offsets() {
        Some((s, e)) => Ok(&v[s..e]),
        None => candle_core::bail!("fused batch norm: {what} must be contiguous"),
    }
}

trait Float: Copy + Send + Sync + Into<f64> + 'static {
    fn from_f64(v: f64) -> Self;
    fn wrap(v: Vec<Self>) -> CpuStorage;
    fn view(s: &CpuStorage) -> Option<&[Self]>;
}
impl Float for f32 {
    fn from_f64(v: f64) -> Self {
        v as f32
    }
    fn wrap(v: Vec<Self>) -> CpuStorage {
        CpuStorage::F32(v)
    }
    fn view(s: &CpuStorage) -> Option<&[Self]> {
        match s {
            CpuStorage::F32(v) => Some(v),
            _ => None,
        }
    }
}
impl Float for f64 {
    fn from_f64(v: f64) -> Self {
        v
    }
    fn wrap(v: Vec<Self>) -> CpuStorage {
        CpuStorage::F64(v)
    }
    fn view(s: &CpuStorage) -> Option<&[Self]> {
        match s {
            CpuStorage::F64(v) => Some(v),
            _ => None,
        }
    }
}

/// Lanes of the reductions below: eight independent f64 partial sums, so that the loop
/// vectorises and is not bound by the latency of one serial chain of additions.
const LANES: usize = 8;

/// `Σ f(x_i)` in f64 over [`LANES`] interleaved partial sums, added at the end.
#[inline(always)]
fn lane_sum<T: Float>(x: &[T], f: impl Fn(f64) -> f64) -> f64 {
    let mut acc = [0.0f64; LANES];
    let chunks = x.chunks_exact(LANES);
    let tail = chunks.remainder();
    for c in chunks {
        for (a, &v) in acc.iter_mut().zip(c) {
            *a += f(v.into());
        }
    }
    let mut s: f64 = acc.iter().sum();
    for &v in tail {
        s += f(v.into());
    }
    s
}

/// `(Σ f(x_i, y_i, g_i).0, Σ f(x_i, y_i, g_i).1)` in f64 over [`LANES`] partial sums.
#[inline(always)]
fn lane_sum2<T: Float>(
    x: &[T],
    y: &[T],
    g: &[T],
    f: impl Fn(f64, T, T) -> (f64, f64),
) -> (f64, f64) {
    let (mut a, mut b) = ([0.0f64; LANES], [0.0f64; LANES]);
    let n = x.len().min(y.len()).min(g.len());
    let whole = n / LANES * LANES;
    for i in (0..whole).step_by(LANES) {
        for l in 0..LANES {
            let (p, q) = f(x[i + l].into(), y[i + l], g[i + l]);
            a[l] += p;
            b[l] += q;
        }
    }
    let (mut sa, mut sb): (f64, f64) = (a.iter().sum(), b.iter().sum());
    for i in whole..n {
        let (p, q) = f(x[i].into(), y[i], g[i]);
        sa += p;
        sb += q;
    }
    (sa, sb)
}

impl BnReluTrain {
    fn run<T: Float>(
        &self,
        x: &[T],
        gamma: &[T],
        beta: &[T],
        (n, c, hw): (usize, usize, usize),
    ) -> Vec<T> {
        // Written in full below (every channel writes its planes of every image), so it is
        // not cleared first.
        let mut y: Vec<T> = Vec::with_capacity(x.len());
        let yp = SendPtr(y.as_mut_ptr().cast::<MaybeUninit<T>>());
        let count = (n * hw) as f64;
        let stats: Vec<(f64, f64)> = (0..c)
            .into_par_iter()
            .map(|ch| {
                let planes = (0..n).map(|b| &x[(b * c + ch) * hw..(b * c + ch + 1) * hw]);
                // Two passes (mean, then squared deviations): exact enough in f64 and the
                // channel's planes are still in cache for the second.
                let s: f64 = planes.clone().map(|p| lane_sum(p, |v| v)).sum();
                let mean = s / count;
                let q: f64 = planes
                    .map(|p| lane_sum(p, |v| (v - mean) * (v - mean)))
                    .sum();
                let var = q / count;
                let scale = gamma[ch].into() / (var + self.eps).sqrt();
                let shift = beta[ch].into() - mean * scale;
                for b in 0..n {
                    let off = (b * c + ch) * hw;
                    // SAFETY: channel `ch` alone writes these `hw` elements.
                    let dst = unsafe { std::slice::from_raw_parts_mut(yp.get().add(off), hw) };
                    for (d, &v) in dst.iter_mut().zip(&x[off..off + hw]) {
                        let o = v.into() * scale + shift;
                        d.write(T::from_f64(if !self.relu || o > 0.0 { o } else { 0.0 }));
                    }
                }
                (mean, var)
            })
            .collect();
        // SAFETY: the `c` channel tasks above wrote all `n · c · hw = x.len()` elements.
        unsafe { y.set_len(x.len()) };
        if let Ok(mut st) = self.stats.lock() {
            st.mean = stats.iter().map(|s| s.0).collect();
            st.var = stats.iter().map(|s| s.1).collect();
        }
        y
    }

    /// `(dx, dgamma, dbeta)` from `x`, `y` (for the ReLU mask) and the output gradient.
    fn grad<T: Float>(
        &self,
        x: &[T],
        y: &[T],
        g: &[T],
        gamma: &[T],
        (n, c, hw): (usize, usize, usize),
    ) -> CResult<(Vec<T>, Vec<T>, Vec<T>)> {
        let st = match self.stats.lock() {
            Ok(st) => st.clone(),
            Err(_) => candle_core::bail!("fused batch norm: statistics lock poisoned"),
        };
        if st.mean.len() != c {
            candle_core::bail!("fused batch norm: backward without a forward");
        }
        let count = (n * hw) as f64;
        // Written in full below, so it is not cleared first.
        let mut dx: Vec<T> = Vec::with_capacity(x.len());
        let dxp = SendPtr(dx.as_mut_ptr().cast::<MaybeUninit<T>>());
        let relu = self.relu;
        let sums: Vec<(f64, f64)> = (0..c)
            .into_par_iter()
            .map(|ch| {
                let (mean, inv_std) = (st.mean[ch], 1.0 / (st.var[ch] + self.eps).sqrt());
                let gate = |yv: T, gv: T| -> f64 {
                    if !relu || yv.into() > 0.0 {
                        gv.into()
                    } else {
                        0.0
                    }
                };
                // dbeta = Σ g', dgamma = Σ g'·x̂.
                let (mut sg, mut sgx) = (0.0f64, 0.0f64);
                for b in 0..n {
                    let r = (b * c + ch) * hw..(b * c + ch + 1) * hw;
                    let (a, d) = lane_sum2(&x[r.clone()], &y[r.clone()], &g[r], |xv, yv, gv| {
                        let gp = gate(yv, gv);
                        (gp, gp * (xv - mean))
                    });
                    sg += a;
                    sgx += d * inv_std;
                }
                let k = gamma[ch].into() * inv_std;
                let (mg, mgx) = (sg / count, sgx / count);
                for b in 0..n {
                    let off = (b * c + ch) * hw;
                    // SAFETY: channel `ch` alone writes these `hw` elements.
                    let dst = unsafe { std::slice::from_raw_parts_mut(dxp.get().add(off), hw) };
                    for (j, d) in dst.iter_mut().enumerate() {
                        let i = off + j;
                        let xh = (x[i].into() - mean) * inv_std;
                        d.write(T::from_f64(k * (gate(y[i], g[i]) - mg - xh * mgx)));
                    }
                }
                (sgx, sg)
            })
            .collect();
        // SAFETY: the `c` channel tasks above wrote all `n · c · hw = x.len()` elements.
        unsafe { dx.set_len(x.len()) };
        let dgamma = sums.iter().map(|s| T::from_f64(s.0)).collect();
        let dbeta = sums.iter().map(|s| T::from_f64(s.1)).collect();
        Ok((dx, dgamma, dbeta))
    }
}

fn nchw(l: &Layout) -> CResult<(usize, usize, usize)> {
    let (n, c, h, w) = l.shape().dims4()?;
    Ok((n, c, h * w))
}

impl CustomOp3 for BnReluTrain {
    fn name(&self) -> &'static str {
        "xnet-batch-norm-relu-train"
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
        let dims = nchw(l1)?;
        if l2.shape().elem_count() != dims.1 || l3.shape().elem_count() != dims.1 {
            candle_core::bail!(
                "fused batch norm: gamma and beta need {} values (one per channel), got {:?} and {:?}",
                dims.1,
                l2.shape(),
                l3.shape()
            );
        }
        fn go<T: Float>(
            op: &BnReluTrain,
            s: [&CpuStorage; 3],
            l: [&Layout; 3],
            dims: (usize, usize, usize),
        ) -> Option<CResult<CpuStorage>> {
            let x = T::view(s[0])?;
            let g = T::view(s[1])?;
            let b = T::view(s[2])?;
            Some((|| {
                Ok(T::wrap(op.run(
                    slice(x, l[0], "input")?,
                    slice(g, l[1], "gamma")?,
                    slice(b, l[2], "beta")?,
                    dims,
                )))
            })())
        }
        let out = go::<f32>(self, [s1, s2, s3], [l1, l2, l3], dims)
            .or_else(|| go::<f64>(self, [s1, s2, s3], [l1, l2, l3], dims));
        match out {
            Some(r) => Ok((r?, l1.shape().clone())),
            None => candle_core::bail!(
                "fused batch norm: input, gamma and beta must all be f32 or all f64, got {:?}, {:?}, {:?}",
                s1.dtype(),
                s2.dtype(),
                s3.dtype()
            ),
        }
    }

    fn bwd(
        &self,
        x: &Tensor,
        gamma: &Tensor,
        _beta: &Tensor,
        res: &Tensor,
        grad_res: &Tensor,
    ) -> CResult<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let grad_res = grad_res.contiguous()?;
        let (n, c, h, w) = x.dims4()?;
        let dims = (n, c, h * w);
        fn go<T: Float + candle_core::WithDType>(
            op: &BnReluTrain,
            t: [&Tensor; 4],
            dims: (usize, usize, usize),
        ) -> CResult<(Tensor, Tensor, Tensor)> {
            let guards: Vec<_> = t.iter().map(|t| t.storage_and_layout()).collect();
            let mut views = Vec::with_capacity(4);
            for (s, l) in &guards {
                let v = match &**s {
                    Storage::Cpu(cs) => match T::view(cs) {
                        Some(v) => slice(v, l, "operand")?,
                        None => candle_core::bail!("fused batch norm backward: mixed dtypes"),
                    },
                    _ => candle_core::bail!("fused batch norm backward: CPU tensors only"),
                };
                views.push(v);
            }
            let (dx, dg, db) = op.grad(views[0], views[1], views[2], views[3], dims)?;
            let dev = Device::Cpu;
            let (n, c, hw) = dims;
            Ok((
                Tensor::from_vec(dx, (n, c, hw), &dev)?,
                Tensor::from_vec(dg, c, &dev)?,
                Tensor::from_vec(db, c, &dev)?,
            ))
        }
        let gamma_c = gamma.contiguous()?;
        let t = [x, res, &grad_res, &gamma_c];
        let (dx, dg, db) = match x.dtype() {
            DType::F32 => go::<f32>(self, t, dims)?,
            DType::F64 => go::<f64>(self, t, dims)?,
            d => candle_core::bail!("fused batch norm backward: f32 or f64 expected, got {d:?}"),
        };
        Ok((Some(dx.reshape((n, c, h, w))?), Some(dg), Some(db)))
    }
}

/// Training-mode batch norm (batch statistics) of an `[n, c, h, w]` tensor followed by
/// an optional ReLU, fused into one op with an exact backward, and the running-statistics
/// update that `candle_nn::BatchNorm::forward_t(x, true)` performs:
/// `running = (1 − momentum) · running + momentum · batch` (the variance unbiased).
///
/// The momentum is the batch norm's own. The result equals `bn.forward_t(x, true)?.relu()`
/// within float rounding. `bn` must have
/// an affine part (`weight_and_bias`) and `x` must be a CPU f32/f64 tensor.
///
/// # Examples
/// ```
/// use candle_core::{DType, Device, Tensor};
/// let dev = Device::Cpu;
/// let bn = candle_nn::BatchNorm::new(
///     2,
///     Tensor::zeros(2, DType::F32, &dev)?,
///     Tensor::ones(2, DType::F32, &dev)?,
///     Tensor::ones(2, DType::F32, &dev)?,
///     Tensor::zeros(2, DType::F32, &dev)?,
///     1e-3,
/// )?;
/// let x = Tensor::arange(0f32, 8., &dev)?.reshape((1, 2, 2, 2))?;
/// let y = xnet_model::kernels::batch_norm_relu_train(&x, &bn, true)?;
/// assert_eq!(y.dims(), &[1, 2, 2, 2]);
/// # Ok::<(), candle_core::Error>(())
/// ```
pub fn batch_norm_relu_train(x: &Tensor, bn: &candle_nn::BatchNorm, relu: bool) -> CResult<Tensor> {
    let momentum = bn.momentum();
    let Some((gamma, beta)) = bn.weight_and_bias() else {
        candle_core::bail!("fused batch norm: the batch norm has no affine weight and bias");
    };
    if !bn.running_mean().is_variable() || !bn.running_var().is_variable() {
        candle_core::bail!("fused batch norm: the running statistics are not variables");
    }
    let stats = Arc::new(Mutex::new(Stats::default()));
    let op = BnReluTrain {
        eps: bn.eps(),
        relu,
        stats: stats.clone(),
    };
    let y = x
        .contiguous()?
        .apply_op3(&gamma.contiguous()?, &beta.contiguous()?, op)?;
    let (mean, var) = match stats.lock() {
        Ok(st) => (st.mean.clone(), st.var.clone()),
        Err(_) => candle_core::bail!("fused batch norm: statistics lock poisoned"),
    };
    let (n, c, h, w) = x.dims4()?;
    let count = (n * h * w) as f64;
    let unbias = if count > 1.0 {
        count / (count - 1.0)
    } else {
        1.0
    };
    let dev = bn.running_mean().device();
    let rdt = bn.running_mean().dtype();
    let mean = Tensor::from_vec(mean, c, dev)?.to_dtype(rdt)?;
    let var = (Tensor::from_vec(var, c, dev)?.to_dtype(rdt)? * unbias)?;
    // `Var::from_tensor` of a variable shares its storage: this updates the BatchNorm.
    let rm = Var::from_tensor(bn.running_mean())?;
    let rv = Var::from_tensor(bn.running_var())?;
    rm.set(&((rm.as_tensor() * (1.0 - momentum))? + (mean * momentum)?)?)?;
    rv.set(&((rv.as_tensor() * (1.0 - momentum))? + (var * momentum)?)?)?;
    Ok(y)
}

/// Whether [`batch_norm_relu_train`] can run on `x`: a CPU f32/f64 `[n, c, h, w]` tensor.
pub fn fused_batch_norm_supported(x: &Tensor) -> bool {
    matches!(x.device(), Device::Cpu)
        && matches!(x.dtype(), DType::F32 | DType::F64)
        && x.rank() == 4
}
