//! Process-wide thread settings for programs that run these networks on the CPU.
//!
//! Two thread pools share the cores during a train step: rayon's, which runs this crate's
//! kernels and the GEMMs, and candle 0.11's own "barrier pool", which runs candle's
//! element-wise operations (the gradient accumulation of its backward pass, the loss). A
//! barrier-pool worker spins 25 000 times after each job before it sleeps, so right after
//! every candle operation it holds a core that the rayon workers of the next kernel need.
//! On the 2-core build machine, letting it sleep at once made the XNet 1×200² train step
//! faster in every one of seven alternating pairs (see docs/performance.md); it is a
//! choice for the whole process, so the project's example programs call
//! [`park_idle_candle_workers`] at start and other programs may.

/// The environment variable candle reads, once, when its barrier pool starts.
const SPIN_LIMIT_VAR: &str = "CANDLE_BARRIER_POOL_SPIN_LIMIT";

/// Lets candle's barrier-pool workers sleep as soon as they run out of work, by setting
/// `CANDLE_BARRIER_POOL_SPIN_LIMIT=0` unless the environment already sets it. Returns
/// whether the setting is in force (set here or already 0).
///
/// Call it once, first thing in `main`, before any thread starts and before the first
/// candle operation on the CPU (candle reads the variable when its pool starts).
///
/// # Examples
/// ```
/// let parked = xnet_model::runtime::park_idle_candle_workers();
/// assert_eq!(
///     parked,
///     std::env::var("CANDLE_BARRIER_POOL_SPIN_LIMIT").as_deref() == Ok("0")
/// );
/// ```
pub fn park_idle_candle_workers() -> bool {
    match std::env::var(SPIN_LIMIT_VAR) {
        Ok(v) => v.trim() == "0",
        Err(_) => {
            std::env::set_var(SPIN_LIMIT_VAR, "0");
            true
        }
    }
}
