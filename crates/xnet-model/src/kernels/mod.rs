//! Fast CPU kernels that replace stock candle operations on hot paths.
//!
//! candle 0.11's CPU `conv2d` spends most of its time in a scalar im2col gather, its
//! `conv_transpose2d` (the input gradient) is a direct loop without GEMM, and nearest
//! up-sampling runs as a grouped convolution. The kernels here replace them:
//!
//! - [`conv2d_fast`]: stride-1 "same" convolution (odd square kernels, any dilation) as
//!   one GEMM per kernel tap over a strided view of a zero-padded input, so no im2col
//!   matrix is built; bias and ReLU are fused into the pass that crops the GEMM result.
//!   3×3 convolutions with ≥ 64 channels in and out use Winograd instead: F(4×4, 3×3)
//!   (4× fewer multiplications) where there are many 4×4 output tiles, F(2×2, 3×3) (2.25×)
//!   otherwise ([`conv2d_fast_path`] says which; `XNET_CONV_DIRECT=1` turns Winograd off,
//!   `XNET_CONV_PATH=direct|f23|f43` forces one path).
//!   Its backward is exact: the input gradient is the same kernel with the weight flipped
//!   and transposed (by strides, not copies), the weight gradient one GEMM per tap or, for
//!   the Winograd layers, the transpose of the Winograd algebra.
//! - [`fold_batch_norm`]: inference-mode batch norm folded into the convolution's weight
//!   and bias, so conv + BN + ReLU is a single pass.
//! - [`batch_norm_relu_train`]: training-mode batch norm + ReLU in one op (statistics
//!   pass, output pass; backward one reduction and one output pass), with the same
//!   running-statistics update as `candle_nn::BatchNorm`.
//! - [`upsample_nearest2x_fast`]: nearest ×2 up-sampling as a copy, backward a 2×2 sum.
//! - [`concat_channels`]: the skip connections' channel concatenation as a parallel copy.
//! - [`backward`]: `loss.backward()` with the fast convolutions' parameter gradients
//!   delivered directly, without candle's serial `zeros_like + add` per parameter.
//!
//! Every fast op has a stock-candle twin ([`conv2d_reference`], candle's
//! `upsample_nearest2d`) that the tests compare it with, and the dispatching functions
//! ([`conv2d`], [`upsample_nearest2x`]) fall back to it off the CPU, for other dtypes, and
//! whenever the environment variable `XNET_REFERENCE_KERNELS=1` is set
//! ([`fast_kernels_enabled`]) or a thread runs inside
//! [`with_kernels`]`(`[`KernelChoice::Reference`]`, ..)`.
//!
//! CUDA: these kernels are CPU-only on purpose. Every caller in the networks checks
//! [`fast_conv_supported`], [`fused_batch_norm_supported`] or the device first, so CUDA
//! tensors take candle's own `conv2d` (cuBLAS, or cuDNN with the `cudnn` feature),
//! `BatchNorm` and `upsample_nearest2d`, which are already fast there. Calling a `*_fast`
//! function directly with a CUDA tensor returns candle's "no cuda implementation" error.
//!
//! Threads: the kernels run on rayon's current pool (the global one sized by
//! `RAYON_NUM_THREADS`, like candle's), and give the same bits on any number of threads:
//! every choice that sets the rounding (the weight gradients' partial sums, the Winograd
//! tile blocks) is made for a fixed nominal count of two, and the actual threads only share
//! out the work (`tests/thread_count.rs`).

mod batch_norm;
mod concat;
mod conv;
mod gemm_conv;
mod grad_sink;
mod scratch;
pub(crate) mod simd;
mod transpose;
mod upsample;
mod winograd;
mod winograd4;

pub use batch_norm::{batch_norm_relu_train, fused_batch_norm_supported};
pub use concat::concat_channels;
pub(crate) use conv::effective_dilation;
pub use conv::{
    conv2d, conv2d_fast, conv2d_fast_path, conv2d_fast_weight_grad, conv2d_fast_weight_grad_path,
    conv2d_reference, fast_conv_supported, fast_kernels_enabled, fold_batch_norm, with_kernels,
    FastConv2d, KernelChoice,
};
pub use grad_sink::backward;
pub use upsample::{upsample_nearest2x, upsample_nearest2x_fast};
