//! Fast CPU (and CUDA) kernels that replace stock candle operations on hot paths.
