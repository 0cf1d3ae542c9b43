//! Process-wide runtime choices for programs that run these networks: the CPU thread pools
//! and the device.
//!
//! Two thread pools share the cores during a train step: rayon's, which runs this crate's
//! kernels and the GEMMs, and candle 0.11's own "barrier pool", which runs candle's
//! element-wise operations (the gradient accumulation of its backward pass, the loss). A
//! barrier-pool worker spins 25 000 times after each job before it sleeps, so right after
//! every candle operation it holds a core that the rayon workers of the next kernel need;
//! and with no more cores than rayon threads, the pool's workers only ever take cores from
//! rayon's. [`tune_candle_threads`] lets the workers sleep at once and, on machines with at
//! most two cores, runs candle's element-wise operations on the calling thread. Measured on
//! the 2-core build machine (docs/performance.md): the XNet 1×200² train step was faster in
//! 9 of 11 alternating pairs with the first setting, and in 4 of 4 more with both; the
//! forward pass was unchanged. It is a choice for the whole process, so the project's
//! example programs call it at start and other programs may.
//!
//! [`device_by_name`] turns a command-line device name into a candle [`Device`], and
//! [`exit_quietly_on_closed_pipe`] lets a command-line program stop like a C tool when the
//! reader of its output goes away.

use candle_core::Device;

use crate::{ModelError, Result};

/// The environment variable candle reads, once, when its barrier pool starts.
const SPIN_LIMIT_VAR: &str = "CANDLE_BARRIER_POOL_SPIN_LIMIT";
/// The environment variable that sizes candle's barrier pool (workers + calling thread).
const THREADS_VAR: &str = "CANDLE_NUM_THREADS";

/// What [`tune_candle_threads`] left in force.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CandleThreads {
    /// candle's pool workers sleep as soon as they run out of work
    /// (`CANDLE_BARRIER_POOL_SPIN_LIMIT=0`).
    pub workers_park_at_once: bool,
    /// candle's element-wise operations run on the calling thread only
    /// (`CANDLE_NUM_THREADS=1`).
    pub single_threaded: bool,
}

/// Sets `CANDLE_BARRIER_POOL_SPIN_LIMIT=0` and, where the machine has at most two cores,
/// `CANDLE_NUM_THREADS=1`, leaving either alone when the environment already sets it;
/// returns the settings in force.
///
/// Call it once, first thing in `main`, before any thread starts and before the first
/// candle operation on the CPU (candle reads both when its pool starts).
///
/// # Examples
/// ```
/// let tuned = xnet_model::runtime::tune_candle_threads();
/// assert_eq!(
///     tuned.workers_park_at_once,
///     std::env::var("CANDLE_BARRIER_POOL_SPIN_LIMIT").as_deref() == Ok("0")
/// );
/// ```
pub fn tune_candle_threads() -> CandleThreads {
    let workers_park_at_once = match std::env::var(SPIN_LIMIT_VAR) {
        Ok(v) => v.trim() == "0",
        Err(_) => {
            std::env::set_var(SPIN_LIMIT_VAR, "0");
            true
        }
    };
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let single_threaded = match std::env::var(THREADS_VAR) {
        Ok(v) => v.trim() == "1",
        Err(_) if cores <= 2 => {
            std::env::set_var(THREADS_VAR, "1");
            true
        }
        Err(_) => false,
    };
    CandleThreads {
        workers_park_at_once,
        single_threaded,
    }
}

/// Makes a write to a closed pipe end the process quietly (the default action of `SIGPIPE`),
/// as for C programs: `evaluate … | head -n 1` stops after its first line instead of
/// panicking in `println!` with "failed printing to stdout: Broken pipe". Rust programs start
/// with `SIGPIPE` ignored, which turns the signal into that error. A no-op off Unix. Returns
/// whether the default action is now in force.
///
/// Call it first thing in `main` of a program whose output may be piped; not in a library
/// or a program that writes to sockets, where a closed peer should be an error to handle.
///
/// # Examples
/// ```no_run
/// // First thing in `main`:
/// xnet_model::runtime::exit_quietly_on_closed_pipe();
/// for i in 0.. {
///     println!("{i}"); // `prog | head -n 3` prints 0, 1, 2 and the program stops
/// }
/// ```
pub fn exit_quietly_on_closed_pipe() -> bool {
    #[cfg(unix)]
    {
        // SAFETY: restoring a signal's default disposition is valid at any time; no handler
        // code runs.
        unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) != libc::SIG_ERR }
    }
    #[cfg(not(unix))]
    {
        false
    }
}

/// The device a command-line name stands for: `cpu`, `cuda` (the first GPU; `gpu` is taken
/// as the same) or `cuda:N`. Case and surrounding blanks do not matter.
///
/// # Errors
/// [`ModelError::InvalidConfig`] for any other name, and for a CUDA device that cannot be
/// opened: no GPU, or a build without this crate's `cuda` feature (the message says which).
///
/// # Examples
/// ```
/// use xnet_model::runtime::device_by_name;
/// assert!(device_by_name("cpu")?.is_cpu());
/// assert!(device_by_name("tpu").is_err());
/// # Ok::<(), xnet_model::ModelError>(())
/// ```
pub fn device_by_name(name: &str) -> Result<Device> {
    let ordinal = match name.trim().to_ascii_lowercase().as_str() {
        "cpu" => return Ok(Device::Cpu),
        "cuda" | "gpu" => 0,
        other => match other.strip_prefix("cuda:").map(str::parse::<usize>) {
            Some(Ok(n)) => n,
            _ => {
                return Err(ModelError::InvalidConfig(format!(
                    "device must be cpu, cuda or cuda:N, got {name:?}"
                )))
            }
        },
    };
    Device::new_cuda(ordinal).map_err(|e| {
        let hint = if cfg!(feature = "cuda") {
            "no usable GPU with that index"
        } else {
            "this build has no CUDA support: rebuild with --features cuda (root package) or \
             xnet-model/cuda, with nvcc on the PATH"
        };
        ModelError::InvalidConfig(format!("device {name:?}: {hint} ({e})"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_names() {
        assert!(device_by_name("cpu").unwrap().is_cpu());
        assert!(device_by_name(" CPU ").unwrap().is_cpu());
        for bad in ["", "tpu", "cuda:", "cuda:x", "cuda:-1", "cpu:0"] {
            let e = device_by_name(bad).unwrap_err().to_string();
            assert!(e.contains("cpu, cuda or cuda:N"), "{bad:?}: {e}");
        }
    }

    #[cfg(not(feature = "cuda"))]
    #[test]
    fn cuda_without_the_feature_says_how_to_build_it() {
        for name in ["cuda", "gpu", "cuda:1"] {
            let e = device_by_name(name).unwrap_err().to_string();
            assert!(e.contains("--features cuda"), "{name}: {e}");
        }
    }
}
