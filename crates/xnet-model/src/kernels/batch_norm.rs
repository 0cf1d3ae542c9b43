//! Training-mode batch norm fused with ReLU: one statistics pass and one output pass
//! forward, one reduction pass and one output pass backward (candle's `BatchNorm` plus
//! `relu` make about a dozen full-size passes with a transpose copy each way).

use std::any::TypeId;
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
    #[inline(always)]
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
    #[inline(always)]
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

super::simd::avx2_dispatch!(
/// `Σ x_i` of one plane (`mean` = `None`) or `Σ (x_i − mean)²`, in f64 over [`LANES`]
/// interleaved partial sums added at the end.
fn plane_moments<T: Float>(x: &[T], mean: Option<f64>) -> f64 => plane_moments_impl);

#[inline(always)]
fn plane_moments_impl<T: Float>(x: &[T], mean: Option<f64>) -> f64 {
    let mut acc = [0.0f64; LANES];
    let chunks = x.chunks_exact(LANES);
    let tail = chunks.remainder();
    match mean {
        None => {
            for c in chunks {
                for (a, &v) in acc.iter_mut().zip(c) {
                    *a += v.into();
                }
            }
        }
        Some(m) => {
            for c in chunks {
                for (a, &v) in acc.iter_mut().zip(c) {
                    let d = v.into() - m;
                    *a += d * d;
                }
            }
        }
    }
    let mut s: f64 = acc.iter().sum();
    for &v in tail {
        s += match mean {
            None => v.into(),
            Some(m) => (v.into() - m) * (v.into() - m),
        };
    }
    s
}

super::simd::avx2_dispatch!(
/// `relu?(x · scale + shift)` of one plane into `dst`, computed in f64.
fn plane_affine<T: Float>(x: &[T], scale: f64, shift: f64, relu: bool, dst: &mut [MaybeUninit<T>]) => plane_affine_impl);

#[inline(always)]
fn plane_affine_impl<T: Float>(
    x: &[T],
    scale: f64,
    shift: f64,
    relu: bool,
    dst: &mut [MaybeUninit<T>],
) {
    // The ReLU test is hoisted out of the loop so that each copy is a plain vector loop.
    if relu {
        for (d, &v) in dst.iter_mut().zip(x) {
            let o = v.into() * scale + shift;
            d.write(T::from_f64(if o > 0.0 { o } else { 0.0 }));
        }
    } else {
        for (d, &v) in dst.iter_mut().zip(x) {
            d.write(T::from_f64(v.into() * scale + shift));
        }
    }
}

/// The ReLU-gated output gradient `g'`: `g` where the output `y` is positive (or without
/// a ReLU), zero elsewhere.
#[inline(always)]
fn gate<T: Float>(relu: bool, y: T, g: T) -> f64 {
    // Both operands are computed first, so that the choice is a select, not a branch.
    let (open, g) = (!relu || y.into() > 0.0, g.into());
    if open {
        g
    } else {
        0.0
    }
}

/// `(Σ g', Σ g'·(x − mean))` of one plane in f64 over [`LANES`] partial sums, `g'` the
/// ReLU-gated output gradient ([`gate`]). f32 with AVX2 takes explicit vectors (the
/// compiler leaves the two interleaved accumulators scalar); every path adds the same
/// products in the same lane order, so all give the same sums bit for bit.
fn plane_grad_sums<T: Float>(x: &[T], y: &[T], g: &[T], mean: f64, relu: bool) -> (f64, f64) {
    let n = x.len().min(y.len()).min(g.len());
    #[cfg(target_arch = "x86_64")]
    if TypeId::of::<T>() == TypeId::of::<f32>() && super::simd::avx2_enabled() {
        let f32s = |v: &[T]| {
            // SAFETY: T is f32 (same type id), so the cast only renames the element type,
            // over the first `n ≤ v.len()` elements.
            unsafe { std::slice::from_raw_parts(v.as_ptr().cast::<f32>(), n) }
        };
        // SAFETY: the CPU supports AVX2 (checked just above).
        return unsafe { grad_sums_f32_avx2(f32s(x), f32s(y), f32s(g), mean, relu) };
    }
    if relu {
        grad_sums::<T, true>(&x[..n], &y[..n], &g[..n], mean)
    } else {
        grad_sums::<T, false>(&x[..n], &y[..n], &g[..n], mean)
    }
}

/// The portable [`plane_grad_sums`], one copy per value of `relu`.
fn grad_sums<T: Float, const RELU: bool>(x: &[T], y: &[T], g: &[T], mean: f64) -> (f64, f64) {
    let (mut a, mut b) = ([0.0f64; LANES], [0.0f64; LANES]);
    let ((xc, xt), (yc, yt), (gc, gt)) = (
        x.as_chunks::<LANES>(),
        y.as_chunks::<LANES>(),
        g.as_chunks::<LANES>(),
    );
    for ((xs, ys), gs) in xc.iter().zip(yc).zip(gc) {
        for l in 0..LANES {
            let gp = gate(RELU, ys[l], gs[l]);
            a[l] += gp;
            b[l] += gp * (xs[l].into() - mean);
        }
    }
    finish_lanes(a, b, xt.iter().zip(yt).zip(gt), |((&xv, &yv), &gv)| {
        let gp = gate(RELU, yv, gv);
        (gp, gp * (xv.into() - mean))
    })
}

/// The lane sums of `a` and `b`, each added from lane 0 up, plus the tail's terms in order.
#[inline(always)]
fn finish_lanes<I: Iterator>(
    a: [f64; LANES],
    b: [f64; LANES],
    tail: I,
    term: impl Fn(I::Item) -> (f64, f64),
) -> (f64, f64) {
    let (mut sa, mut sb): (f64, f64) = (a.iter().sum(), b.iter().sum());
    for t in tail {
        let (p, q) = term(t);
        sa += p;
        sb += q;
    }
    (sa, sb)
}

/// [`plane_grad_sums`] of f32 planes with AVX2: the gate is a mask on the f32 gradient
/// (exact, as the widening is), lanes 0–3 and 4–7 in two f64 vectors per sum, and a
/// separate multiply and add (never fused, as in the portable copy).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn grad_sums_f32_avx2(x: &[f32], y: &[f32], g: &[f32], mean: f64, relu: bool) -> (f64, f64) {
    use std::arch::x86_64::*;
    let n = x.len().min(y.len()).min(g.len());
    let ((xc, xt), (yc, yt), (gc, gt)) = (
        x[..n].as_chunks::<LANES>(),
        y[..n].as_chunks::<LANES>(),
        g[..n].as_chunks::<LANES>(),
    );
    let (mut a0, mut a1, mut b0, mut b1) = (
        _mm256_setzero_pd(),
        _mm256_setzero_pd(),
        _mm256_setzero_pd(),
        _mm256_setzero_pd(),
    );
    let m = _mm256_set1_pd(mean);
    let zero = _mm256_setzero_ps();
    for ((xs, ys), gs) in xc.iter().zip(yc).zip(gc) {
        // SAFETY: each chunk holds LANES = 8 f32, one unaligned 256-bit load.
        let (xv, yv, gv) = unsafe {
            (
                _mm256_loadu_ps(xs.as_ptr()),
                _mm256_loadu_ps(ys.as_ptr()),
                _mm256_loadu_ps(gs.as_ptr()),
            )
        };
        let gp = if relu {
            _mm256_and_ps(_mm256_cmp_ps::<_CMP_GT_OQ>(yv, zero), gv)
        } else {
            gv
        };
        let (g0, g1) = (
            _mm256_cvtps_pd(_mm256_castps256_ps128(gp)),
            _mm256_cvtps_pd(_mm256_extractf128_ps::<1>(gp)),
        );
        let (x0, x1) = (
            _mm256_sub_pd(_mm256_cvtps_pd(_mm256_castps256_ps128(xv)), m),
            _mm256_sub_pd(_mm256_cvtps_pd(_mm256_extractf128_ps::<1>(xv)), m),
        );
        a0 = _mm256_add_pd(a0, g0);
        a1 = _mm256_add_pd(a1, g1);
        b0 = _mm256_add_pd(b0, _mm256_mul_pd(g0, x0));
        b1 = _mm256_add_pd(b1, _mm256_mul_pd(g1, x1));
    }
    let (mut a, mut b) = ([0.0f64; LANES], [0.0f64; LANES]);
    // SAFETY: each array holds 8 f64, two unaligned 256-bit stores.
    unsafe {
        _mm256_storeu_pd(a.as_mut_ptr(), a0);
        _mm256_storeu_pd(a.as_mut_ptr().add(4), a1);
        _mm256_storeu_pd(b.as_mut_ptr(), b0);
        _mm256_storeu_pd(b.as_mut_ptr().add(4), b1);
    }
    finish_lanes(a, b, xt.iter().zip(yt).zip(gt), |((&xv, &yv), &gv)| {
        let gp = gate(relu, yv, gv);
        (gp, gp * (f64::from(xv) - mean))
    })
}

/// Per-channel coefficients of the input gradient
/// `dx = k · (g' − mean(g') − x̂ · mean(g'·x̂))`, `x̂ = (x − mean) · inv_std`.
#[derive(Clone, Copy)]
struct GradCoef {
    mean: f64,
    inv_std: f64,
    k: f64,
    mg: f64,
    mgx: f64,
}

super::simd::avx2_dispatch!(
/// The input gradient of one plane into `dst` ([`GradCoef`]), computed in f64.
fn plane_grad<T: Float>(x: &[T], y: &[T], g: &[T], c: GradCoef, relu: bool, dst: &mut [MaybeUninit<T>]) => plane_grad_impl);

#[inline(always)]
fn plane_grad_impl<T: Float>(
    x: &[T],
    y: &[T],
    g: &[T],
    c: GradCoef,
    relu: bool,
    dst: &mut [MaybeUninit<T>],
) {
    let GradCoef {
        mean,
        inv_std,
        k,
        mg,
        mgx,
    } = c;
    let one = |d: &mut MaybeUninit<T>, xv: T, gp: f64| {
        let xh = (xv.into() - mean) * inv_std;
        d.write(T::from_f64(k * (gp - mg - xh * mgx)));
    };
    // The ReLU test is hoisted out of the loop, as in `plane_affine`.
    let it = dst.iter_mut().zip(x).zip(y).zip(g);
    if relu {
        for (((d, &xv), &yv), &gv) in it {
            one(d, xv, gate(true, yv, gv));
        }
    } else {
        for (((d, &xv), _), &gv) in it {
            one(d, xv, gv.into());
        }
    }
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
                let s: f64 = planes.clone().map(|p| plane_moments(p, None)).sum();
                let mean = s / count;
                let q: f64 = planes.map(|p| plane_moments(p, Some(mean))).sum();
                let var = q / count;
                let scale = gamma[ch].into() / (var + self.eps).sqrt();
                let shift = beta[ch].into() - mean * scale;
                for b in 0..n {
                    let off = (b * c + ch) * hw;
                    // SAFETY: channel `ch` alone writes these `hw` elements.
                    let dst = unsafe { std::slice::from_raw_parts_mut(yp.get().add(off), hw) };
                    plane_affine(&x[off..off + hw], scale, shift, self.relu, dst);
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
                let plane = |b: usize| (b * c + ch) * hw..(b * c + ch + 1) * hw;
                // dbeta = Σ g', dgamma = Σ g'·x̂.
                let (mut sg, mut sgx) = (0.0f64, 0.0f64);
                for b in 0..n {
                    let r = plane(b);
                    let (a, d) = plane_grad_sums(&x[r.clone()], &y[r.clone()], &g[r], mean, relu);
                    sg += a;
                    sgx += d * inv_std;
                }
                let coef = GradCoef {
                    mean,
                    inv_std,
                    k: gamma[ch].into() * inv_std,
                    mg: sg / count,
                    mgx: sgx / count,
                };
                for b in 0..n {
                    let r = plane(b);
                    // SAFETY: channel `ch` alone writes these `hw` elements.
                    let dst = unsafe { std::slice::from_raw_parts_mut(dxp.get().add(r.start), hw) };
                    plane_grad(&x[r.clone()], &y[r.clone()], &g[r], coef, relu, dst);
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
///
/// # Examples
/// ```
/// use candle_core::{DType, Device, Tensor};
/// use xnet_model::kernels::fused_batch_norm_supported;
/// let x = Tensor::zeros((2, 3, 4, 4), DType::F32, &Device::Cpu)?;
/// assert!(fused_batch_norm_supported(&x));
/// assert!(fused_batch_norm_supported(&x.to_dtype(DType::F64)?));
/// // Half precision, or a tensor that is not `[n, c, h, w]`: candle's batch norm instead.
/// assert!(!fused_batch_norm_supported(&x.to_dtype(DType::F16)?));
/// assert!(!fused_batch_norm_supported(&x.flatten_from(2)?));
/// # Ok::<(), candle_core::Error>(())
/// ```
pub fn fused_batch_norm_supported(x: &Tensor) -> bool {
    matches!(x.device(), Device::Cpu)
        && matches!(x.dtype(), DType::F32 | DType::F64)
        && x.rank() == 4
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Ragged planes (not a multiple of the lanes) with negative outputs, for the gate.
    fn planes(n: usize) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
        let x = (0..n)
            .map(|i| (i as f32 * 0.37).sin() * 3.0 + 0.5)
            .collect();
        let y = (0..n).map(|i| (i as f32 * 0.91).cos()).collect();
        let g = (0..n).map(|i| (i as f32 * 1.3).sin() * 1e-2).collect();
        (x, y, g)
    }

    /// The AVX2 f32 sums (where the CPU has AVX2) and the portable copy are equal bit for
    /// bit, with and without the ReLU gate, and match a plain f64 sum closely.
    #[test]
    fn grad_sums_paths_agree() {
        for n in [0, 7, 8, 1003] {
            let (x, y, g) = planes(n);
            for relu in [false, true] {
                let fast = plane_grad_sums(&x, &y, &g, 0.4, relu);
                let portable = if relu {
                    grad_sums::<f32, true>(&x, &y, &g, 0.4)
                } else {
                    grad_sums::<f32, false>(&x, &y, &g, 0.4)
                };
                assert_eq!(fast, portable, "n = {n}, relu = {relu}");
                let (mut sa, mut sb) = (0.0f64, 0.0f64);
                for i in 0..n {
                    let gp = if relu && y[i] <= 0.0 {
                        0.0
                    } else {
                        g[i] as f64
                    };
                    sa += gp;
                    sb += gp * (x[i] as f64 - 0.4);
                }
                assert!((fast.0 - sa).abs() < 1e-12 && (fast.1 - sb).abs() < 1e-12);
            }
        }
    }

    /// The dispatched element-wise passes compute what their portable bodies compute.
    #[test]
    fn dispatched_passes_match_the_portable_bodies() {
        let (x, y, g) = planes(1003);
        let uninit = || vec![MaybeUninit::<f32>::uninit(); x.len()];
        let read = |v: Vec<MaybeUninit<f32>>| -> Vec<f32> {
            // SAFETY: every element was written by the pass under test.
            v.into_iter().map(|e| unsafe { e.assume_init() }).collect()
        };
        for relu in [false, true] {
            let (mut a, mut b) = (uninit(), uninit());
            plane_affine(&x, 1.7, -0.2, relu, &mut a);
            plane_affine_impl(&x, 1.7, -0.2, relu, &mut b);
            assert_eq!(read(a), read(b));
            let coef = GradCoef {
                mean: 0.4,
                inv_std: 0.8,
                k: 1.1,
                mg: 1e-3,
                mgx: -2e-3,
            };
            let (mut a, mut b) = (uninit(), uninit());
            plane_grad(&x, &y, &g, coef, relu, &mut a);
            plane_grad_impl(&x, &y, &g, coef, relu, &mut b);
            assert_eq!(read(a), read(b));
        }
        for mean in [None, Some(0.3)] {
            assert_eq!(plane_moments(&x, mean), plane_moments_impl(&x, mean));
        }
    }
}
