//! Custom candle operations that candle lacks (max-pool indices and unpooling, bilinear
//! up-sampling with a backward pass).
//!
//! Every operation has two implementations:
//! - a [`candle_core::CustomOp1`]/[`candle_core::CustomOp2`] with a hand-written CPU
//!   forward and an exact backward, used for CPU tensors;
//! - a composition of stock candle primitives (`gather`, `index_add`, `argmax`, `matmul`)
//!   that runs on any device (CUDA included) and is differentiated by candle's autograd.
//!   It is the path taken for non-CPU tensors, and the twin the CPU kernels are tested
//!   against.
//!
//! No hand-written CUDA kernels are supplied: the CUDA path is the primitive composition
//! (or, for [`max_pool2d`], candle's own pooling).

pub mod bilinear;
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
