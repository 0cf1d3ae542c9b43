//! CUDA forwards of the custom operations in [`crate::ops`] (feature `cuda`).
//!
//! The kernels are CUDA C in [`KERNEL_SOURCE`] (`src/ops/cuda_kernels.cu`), compiled once per
//! process at run time with NVRTC (no `nvcc` is needed to build this crate's own kernels) and
//! loaded into each CUDA device on first use through candle's
//! `CudaDevice::get_or_load_custom_func`. They compute exactly what the CPU forwards compute,
//! in the same floating-point order (NVRTC runs with `--fmad=false`), so CPU and CUDA outputs
//! agree bit for bit; the one exception is max-unpooling where two values share an index, whose
//! sum is formed with atomic additions in an unspecified order.
//!
//! Dtypes: f32 and f64, as on the CPU; any other dtype is an error naming the operation.
//!
//! # Examples
//! ```
//! // NVRTC needs no GPU: this compiles every kernel to PTX.
//! let ptx = xnet_model::ops::cuda::compile_kernels()?;
//! for name in xnet_model::ops::cuda::KERNEL_NAMES {
//!     assert!(ptx.contains(name));
//! }
//! # Ok::<(), candle_core::Error>(())
//! ```

use candle_core::backend::BackendStorage;
use candle_core::cuda_backend::cudarc::driver::{
    CudaSlice, CudaView, DeviceRepr, LaunchConfig, PushKernelArg, ValidAsZeroBits,
};
use candle_core::cuda_backend::cudarc::nvrtc;
use candle_core::cuda_backend::{CudaDType, WrapErr};
use candle_core::{CudaDevice, CudaStorage, DType, Layout, Result};
use std::sync::OnceLock;

/// The CUDA C source of every kernel of [`crate::ops`].
pub const KERNEL_SOURCE: &str = include_str!("cuda_kernels.cu");

/// The entry points that [`KERNEL_SOURCE`] defines (each operation in f32 and f64).
pub const KERNEL_NAMES: &[&str] = &[
    "xnet_pool_indices_f32",
    "xnet_pool_indices_f64",
    "xnet_pool_gather_f32",
    "xnet_pool_gather_f64",
    "xnet_unpool_f32",
    "xnet_unpool_f64",
    "xnet_resize_fwd_f32",
    "xnet_resize_fwd_f64",
    "xnet_resize_bwd_f32",
    "xnet_resize_bwd_f64",
];

/// The name under which the compiled module is cached in each candle `CudaDevice`.
const MODULE_NAME: &str = "xnet_model_ops";

const THREADS_PER_BLOCK: u32 = 256;

/// Compiles [`KERNEL_SOURCE`] with NVRTC and returns the PTX text.
///
/// Needs the NVRTC library but no GPU. The options are those the operations use:
/// `--fmad=false`, so that products and sums round as in the CPU code.
///
/// # Errors
/// The NVRTC error and its compilation log when the source does not compile.
pub fn compile_kernels() -> Result<String> {
    let opts = nvrtc::CompileOptions {
        fmad: Some(false),
        name: Some("cuda_kernels.cu".to_string()),
        ..Default::default()
    };
    match nvrtc::compile_ptx_with_opts(KERNEL_SOURCE, opts) {
        Ok(ptx) => Ok(ptx.to_src()),
        Err(nvrtc::CompileError::CompileError { nvrtc, log, .. }) => candle_core::bail!(
            "xnet-model CUDA kernels: NVRTC failed ({nvrtc:?}):\n{}",
            log.to_string_lossy()
        ),
        Err(e) => candle_core::bail!("xnet-model CUDA kernels: NVRTC failed: {e:?}"),
    }
}

/// The PTX of [`KERNEL_SOURCE`], compiled on first use and kept for the process.
fn ptx() -> Result<&'static str> {
    static PTX: OnceLock<std::result::Result<String, String>> = OnceLock::new();
    match PTX.get_or_init(|| compile_kernels().map_err(|e| e.to_string())) {
        Ok(ptx) => Ok(ptx.as_str()),
        Err(e) => candle_core::bail!("{e}"),
    }
}

fn launch_config(total: usize) -> LaunchConfig {
    // Kernels are grid-stride loops, so capping the grid only makes threads loop more.
    let blocks = total.div_ceil(THREADS_PER_BLOCK as usize).clamp(1, 1 << 20);
    LaunchConfig {
        grid_dim: (blocks as u32, 1, 1),
        block_dim: (THREADS_PER_BLOCK, 1, 1),
        shared_mem_bytes: 0,
    }
}

/// The contiguous part of `storage` that `layout` describes, as `T`.
fn view<'a, T: CudaDType>(
    storage: &'a CudaStorage,
    layout: &Layout,
    op: &str,
) -> Result<CudaView<'a, T>> {
    let Some((start, end)) = layout.contiguous_offsets() else {
        candle_core::bail!("{op}: the input must be contiguous");
    };
    Ok(storage.as_cuda_slice::<T>()?.slice(start..end))
}

fn kernel_suffix(dtype: DType, op: &str) -> Result<&'static str> {
    match dtype {
        DType::F32 => Ok("f32"),
        DType::F64 => Ok("f64"),
        other => candle_core::bail!("{op}: unsupported dtype {other:?} on CUDA (f32 or f64)"),
    }
}

fn non_empty(total: usize, op: &str) -> Result<()> {
    if total == 0 {
        candle_core::bail!("{op}: empty tensors are not supported on CUDA");
    }
    Ok(())
}

/// A zero-filled 2-element flag buffer the gather/unpool kernels report a bad index in.
fn new_flag(dev: &CudaDevice) -> Result<CudaSlice<u32>> {
    dev.alloc_zeros::<u32>(2)
}

/// Reads the flag back (one small device-to-host copy, which waits for the kernel).
fn check_flag(dev: &CudaDevice, flag: &CudaSlice<u32>, plane: usize, op: &str) -> Result<()> {
    let f = dev.clone_dtoh(flag)?;
    if f[0] != 0 {
        candle_core::bail!("{op}: index {} is outside the {plane}-element plane", f[1]);
    }
    Ok(())
}

fn u64s<const N: usize>(v: [usize; N]) -> [u64; N] {
    v.map(|x| x as u64)
}

/// Arg-max indices of `k × k` max-pooling of a contiguous `[N, C, H, W]` tensor: `u32`
/// `[N, C, H/k, W/k]` storage (the shape is the caller's).
pub(crate) fn pool_indices(
    s: &CudaStorage,
    l: &Layout,
    (n, c, h, w): (usize, usize, usize, usize),
    k: usize,
    op: &str,
) -> Result<CudaStorage> {
    let suffix = kernel_suffix(s.dtype(), op)?;
    let total = n * c * (h / k) * (w / k);
    non_empty(total, op)?;
    let dev = s.device();
    let func =
        dev.get_or_load_custom_func(&format!("xnet_pool_indices_{suffix}"), MODULE_NAME, ptx()?)?;
    // SAFETY: every element is written by the kernel.
    let out = unsafe { dev.alloc::<u32>(total)? };
    let sizes = u64s([n * c, h, w, k]);
    macro_rules! run {
        ($t:ty) => {{
            let x = view::<$t>(s, l, op)?;
            let mut b = func.builder();
            b.arg(&x).arg(&out);
            for v in &sizes {
                b.arg(v);
            }
            // SAFETY: the argument list matches the kernel's signature; the sizes bound
            // every access.
            unsafe { b.launch(launch_config(total)) }.w()?;
        }};
    }
    match s.dtype() {
        DType::F32 => run!(f32),
        _ => run!(f64),
    }
    Ok(CudaStorage::wrap_cuda_slice(out, dev.clone()))
}

/// Which of the two index kernels [`index_op`] runs.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum IndexOp {
    /// `out[p, i] = x[p, idx[p, i]]`: `in_plane` inputs, `out_plane` indices per plane.
    Gather,
    /// `out[p, idx[p, i]] += v[p, i]`: `in_plane` values/indices, `out_plane` outputs.
    Unpool,
}

/// Runs the gather or unpool kernel on contiguous operands. With `check`, an index outside
/// its plane is an error (this reads a flag back, so it waits for the kernel); without it,
/// such an index is skipped (gather gives 0) — for indices made by [`pool_indices`].
#[allow(clippy::too_many_arguments)]
pub(crate) fn index_op(
    kind: IndexOp,
    values: (&CudaStorage, &Layout),
    indices: (&CudaStorage, &Layout),
    planes: usize,
    in_plane: usize,
    out_plane: usize,
    check: bool,
    op: &str,
) -> Result<CudaStorage> {
    let (s, l) = values;
    let suffix = kernel_suffix(s.dtype(), op)?;
    if indices.0.dtype() != DType::U32 {
        candle_core::bail!("{op}: indices must be u32, found {:?}", indices.0.dtype());
    }
    let (name, total, n_out) = match kind {
        IndexOp::Gather => ("xnet_pool_gather", planes * out_plane, planes * out_plane),
        IndexOp::Unpool => ("xnet_unpool", planes * in_plane, planes * out_plane),
    };
    non_empty(total, op)?;
    let dev = s.device();
    let func = dev.get_or_load_custom_func(&format!("{name}_{suffix}"), MODULE_NAME, ptx()?)?;
    let idx = view::<u32>(indices.0, indices.1, op)?;
    let flag = new_flag(dev)?;
    let sizes = u64s([planes, in_plane, out_plane]);
    macro_rules! run {
        ($t:ty) => {{
            let x = view::<$t>(s, l, op)?;
            let out = alloc_out::<$t>(dev, n_out, kind)?;
            let mut b = func.builder();
            b.arg(&x).arg(&idx).arg(&out);
            for v in &sizes {
                b.arg(v);
            }
            b.arg(&flag);
            // SAFETY: the argument list matches the kernel's signature; the kernel checks
            // every index against its plane and the sizes bound every other access.
            unsafe { b.launch(launch_config(total)) }.w()?;
            CudaStorage::wrap_cuda_slice(out, dev.clone())
        }};
    }
    let out = match s.dtype() {
        DType::F32 => run!(f32),
        _ => run!(f64),
    };
    if check {
        let plane = match kind {
            IndexOp::Gather => in_plane,
            IndexOp::Unpool => out_plane,
        };
        check_flag(dev, &flag, plane, op)?;
    }
    Ok(out)
}

fn alloc_out<T: DeviceRepr + ValidAsZeroBits>(
    dev: &CudaDevice,
    len: usize,
    kind: IndexOp,
) -> Result<CudaSlice<T>> {
    match kind {
        // SAFETY: the gather kernel writes every element.
        IndexOp::Gather => unsafe { dev.alloc::<T>(len) },
        // Unpooling accumulates into zeros.
        IndexOp::Unpool => dev.alloc_zeros::<T>(len),
    }
}

/// Bilinear resize (`backward == false`: `[planes, h, w]` → `[planes, oh, ow]`) or its
/// adjoint (`backward == true`: a gradient `[planes, oh, ow]` → `[planes, h, w]`).
///
/// `ty`/`tx` are the row/column tap tables (`i0, i1, w0, w1` runs of `oh`/`ow` doubles) and,
/// for the adjoint, `ry`/`rx` the per-input ranges of touching outputs (`lo, hi` runs of
/// `h`/`w` doubles); see `cuda_kernels.cu`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn resize(
    s: &CudaStorage,
    l: &Layout,
    planes: usize,
    (h, w): (usize, usize),
    (oh, ow): (usize, usize),
    tables: (&[f64], &[f64]),
    ranges: Option<(&[f64], &[f64])>,
    op: &str,
) -> Result<CudaStorage> {
    let suffix = kernel_suffix(s.dtype(), op)?;
    let total = if ranges.is_some() {
        planes * h * w
    } else {
        planes * oh * ow
    };
    non_empty(total, op)?;
    let dev = s.device();
    let name = if ranges.is_some() {
        "xnet_resize_bwd"
    } else {
        "xnet_resize_fwd"
    };
    let func = dev.get_or_load_custom_func(&format!("{name}_{suffix}"), MODULE_NAME, ptx()?)?;
    let ty = dev.clone_htod(tables.0)?;
    let tx = dev.clone_htod(tables.1)?;
    let ranges = match ranges {
        Some((ry, rx)) => Some((dev.clone_htod(ry)?, dev.clone_htod(rx)?)),
        None => None,
    };
    let sizes = u64s([planes, h, w, oh, ow]);
    macro_rules! run {
        ($t:ty) => {{
            let x = view::<$t>(s, l, op)?;
            // SAFETY: the kernel writes every element.
            let out = unsafe { dev.alloc::<$t>(total)? };
            let mut b = func.builder();
            b.arg(&x).arg(&out).arg(&ty).arg(&tx);
            if let Some((ry, rx)) = &ranges {
                b.arg(ry).arg(rx);
            }
            for v in &sizes {
                b.arg(v);
            }
            // SAFETY: the argument list matches the kernel's signature; the tables hold
            // in-range indices (built by the caller from the same sizes).
            unsafe { b.launch(launch_config(total)) }.w()?;
            CudaStorage::wrap_cuda_slice(out, dev.clone())
        }};
    }
    Ok(match s.dtype() {
        DType::F32 => run!(f32),
        _ => run!(f64),
    })
}
