//! Custom candle operations that candle lacks (max-pool indices and unpooling, bilinear
//! up-sampling with a backward pass).
