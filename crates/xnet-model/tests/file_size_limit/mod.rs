//! Real write failures for tests: the process's file-size limit (`RLIMIT_FSIZE`) makes a
//! write past it fail with `EFBIG` after a short write, as a full disk fails one with
//! `ENOSPC`. The limit holds for the whole process: a test crate that uses it must hold a
//! single test. Shared by `train_io_errors` here and the workspace's
//! `tests/outputs_disk_full.rs` (through `#[path]`).
#![cfg(target_os = "linux")]

/// Sets the soft limit on the size of the files this process writes (`None`: the hard limit),
/// and makes a write past it fail instead of killing the process (`SIGXFSZ` ignored).
pub fn limit_file_size(bytes: Option<u64>) {
    // SAFETY: plain libc calls with valid pointers; the signal disposition is process-wide,
    // which this single-test crate owns.
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        assert_eq!(libc::getrlimit(libc::RLIMIT_FSIZE, &mut limit), 0);
        limit.rlim_cur = bytes.map_or(limit.rlim_max, |b| b.min(limit.rlim_max));
        assert_eq!(libc::setrlimit(libc::RLIMIT_FSIZE, &limit), 0);
    }
}
