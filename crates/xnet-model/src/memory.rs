//! Process-wide memory-allocator settings for programs that run these networks.
//!
//! A forward pass allocates and frees tens of large buffers (layer outputs, padded inputs,
//! concatenations): 33 MB each for one 64-channel 128² map of a batch of 8. glibc's `malloc`
//! serves blocks of more than a few MB with `mmap` and gives them back to the kernel on
//! `free`, so every layer of every step page-faults its output in again, zeroed by the
//! kernel: on the 2-core build machine that was about a quarter of the CPU time of an XNet
//! forward (see docs/performance.md). [`keep_freed_memory`] asks glibc to keep freed memory
//! for reuse instead. It is a choice for the whole process (a library should not make it
//! behind a program's back), so the project's example programs call it at start and other
//! programs may.

/// Asks the C allocator to keep freed memory for reuse instead of returning large blocks to
/// the operating system (glibc: `mallopt(M_MMAP_MAX, 0)` and `mallopt(M_TRIM_THRESHOLD, ∞)`).
/// Returns `true` when the settings were applied; on other C libraries it does nothing and
/// returns `false`.
///
/// The cost is that the process keeps its peak heap until it exits (resident memory does
/// not shrink after a large batch). Call it once, early, before threads allocate.
///
/// # Examples
/// ```
/// let applied = xnet_model::memory::keep_freed_memory();
/// assert_eq!(applied, cfg!(all(target_os = "linux", target_env = "gnu")));
/// ```
pub fn keep_freed_memory() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: mallopt only changes allocator parameters; both calls are valid at any time.
        unsafe {
            let no_mmap = libc::mallopt(libc::M_MMAP_MAX, 0) == 1;
            let no_trim = libc::mallopt(libc::M_TRIM_THRESHOLD, i32::MAX) == 1;
            no_mmap && no_trim
        }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        false
    }
}

/// `len` copies of `value`, written by all rayon threads: `vec![value; len]` fills (or,
/// once freed memory is kept, clears) the whole buffer on the calling thread while the
/// other cores wait, which for the 10–40 MB activations and gradients of the kernels was a
/// visible serial slice of a train step.
pub(crate) fn filled_par<T: Copy + Send + Sync>(len: usize, value: T) -> Vec<T> {
    use rayon::prelude::*;
    const CHUNK: usize = 32_768;
    if len < 4 * CHUNK {
        return vec![value; len];
    }
    let mut v: Vec<T> = Vec::with_capacity(len);
    v.spare_capacity_mut()[..len]
        .par_chunks_mut(CHUNK)
        .for_each(|c| c.fill(std::mem::MaybeUninit::new(value)));
    // SAFETY: the loop above initialised all `len` elements.
    unsafe { v.set_len(len) };
    v
}

/// `planes · plane_len` elements written plane by plane by `write(plane index, plane)`, the
/// planes in parallel (at least `min_planes` per rayon task). `write` must write every
/// element of its plane; nothing is filled beforehand, so outputs that are written in full
/// are not cleared first (a whole extra pass over them).
pub(crate) fn written_par<U: Send>(
    planes: usize,
    plane_len: usize,
    min_planes: usize,
    write: impl Fn(usize, &mut [std::mem::MaybeUninit<U>]) + Sync,
) -> Vec<U> {
    use rayon::prelude::*;
    let len = planes * plane_len;
    let mut v: Vec<U> = Vec::with_capacity(len);
    if len > 0 {
        v.spare_capacity_mut()[..len]
            .par_chunks_mut(plane_len)
            .enumerate()
            .with_min_len(min_planes.max(1))
            .for_each(|(i, plane)| write(i, plane));
    }
    // SAFETY: every one of the `planes` planes was written in full by `write` (its
    // contract).
    unsafe { v.set_len(len) };
    v
}

#[cfg(test)]
mod tests {
    use super::{filled_par, written_par};

    #[test]
    fn written_par_writes_every_plane_with_its_index() {
        for (planes, len) in [(0, 5), (3, 0), (1, 1), (37, 1000)] {
            let v = written_par(planes, len, 4, |i, p| {
                for (j, e) in p.iter_mut().enumerate() {
                    e.write(i * 10_000 + j);
                }
            });
            assert_eq!(v.len(), planes * len);
            assert!(v
                .iter()
                .enumerate()
                .all(|(k, &e)| e == (k / len.max(1)) * 10_000 + k % len.max(1)));
        }
    }

    #[test]
    fn filled_par_fills_every_element() {
        for len in [0, 1, 1000, 4 * 32_768, 4 * 32_768 + 17, 1_000_003] {
            let v = filled_par(len, 2.5f32);
            assert_eq!(v.len(), len);
            assert!(v.iter().all(|&x| x == 2.5));
        }
    }
}
