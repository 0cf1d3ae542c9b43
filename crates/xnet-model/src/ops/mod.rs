//! Custom candle operations that candle lacks (max-pool indices and unpooling, bilinear
//! up-sampling with a backward pass).
//!
//! Every operation has two implementations:
//! - a [`candle_core::CustomOp1`]/[`candle_core::CustomOp2`] with a hand-written CPU
//!   forward, a CUDA forward (feature `cuda`: CUDA C kernels compiled at run time with
//!   NVRTC, see `ops::cuda`) and an exact backward built from the same custom operations,
//!   used for CPU tensors and for f32/f64 CUDA tensors;
//! - a composition of stock candle primitives (`gather`, `index_add`, `argmax`, `matmul`)
//!   that runs on any device and is differentiated by candle's autograd. It is the path
//!   taken for other devices and dtypes (and, for [`max_pool2d`], candle's own pooling),
//!   and the twin the custom operations are tested against.
//!
//! The CUDA forwards compute what the CPU forwards compute, in the same floating-point
//! order; `tests/cuda_ops.rs` compares the two when a GPU is present.

pub mod bilinear;
#[cfg(feature = "cuda")]
pub mod cuda;
pub mod pool;

pub use bilinear::{resize_bilinear, resize_bilinear_generic};
pub use pool::{
    max_pool2d, max_pool2d_indices, max_pool2d_with_indices, max_pool2d_with_indices_generic,
    max_unpool2d, max_unpool2d_generic, pool_gather,
};

use candle_core::{Layout, Result};

/// The contiguous slice of a storage buffer described by `layout`.
pub(crate) fn contiguous<'a, T>(data: &'a [T], layout: &Layout, op: &str) -> Result<&'a [T]> {
    match layout.contiguous_offsets() {
        Some((start, end)) => Ok(&data[start..end]),
        None => candle_core::bail!("{op}: the input must be contiguous"),
    }
}
