//! Scratch buffers reused across kernel calls.
//!
//! The Winograd kernels need, per task, the transformed input and the GEMM results of a
//! block of tiles (up to 9 MB each at 512 channels), and the weight gradient a per-thread
//! accumulator (38 MB at 512→512). Allocated with `vec![0; n]` per call they were cleared
//! every time (a `memset` of every buffer: about 5 % of an XNet train step) although every
//! element is written before it is read. Taken from this pool they are cleared only when
//! they grow. The pool is process-wide (a buffer taken on a worker thread is often dropped
//! on the calling thread) and keeps a few buffers per element type.

use std::ops::{Deref, DerefMut};
use std::sync::Mutex;

/// Free buffers kept per element type; more are allocated and dropped as needed.
const KEPT: usize = 8;

/// Element types with a pool of free buffers.
pub(crate) trait Pooled: Copy + Default + Send + 'static {
    /// The pool of free buffers of `Self`.
    fn pool() -> &'static Mutex<Vec<Vec<Self>>>;
}

static POOL_F32: Mutex<Vec<Vec<f32>>> = Mutex::new(Vec::new());
static POOL_F64: Mutex<Vec<Vec<f64>>> = Mutex::new(Vec::new());

impl Pooled for f32 {
    fn pool() -> &'static Mutex<Vec<Vec<Self>>> {
        &POOL_F32
    }
}

impl Pooled for f64 {
    fn pool() -> &'static Mutex<Vec<Vec<Self>>> {
        &POOL_F64
    }
}

/// A buffer of `len` elements from the pool, returned to it on drop. Its contents are
/// unspecified (zeros or data of an earlier call): callers write every element they read.
pub(crate) struct Scratch<T: Pooled> {
    buf: Vec<T>,
    len: usize,
}

impl<T: Pooled> Scratch<T> {
    /// A buffer of at least `len` elements: the smallest pooled one that is large enough,
    /// else the largest grown (new elements zero), else a new one.
    pub(crate) fn take(len: usize) -> Self {
        // A poisoned lock only means another thread panicked while holding it; the list
        // of buffers is still valid.
        let mut buf = {
            let mut p = T::pool().lock().unwrap_or_else(|e| e.into_inner());
            let fit = (0..p.len())
                .filter(|&i| p[i].len() >= len)
                .min_by_key(|&i| p[i].len());
            let pick = fit.or_else(|| (0..p.len()).max_by_key(|&i| p[i].len()));
            pick.map(|i| p.swap_remove(i)).unwrap_or_default()
        };
        if buf.len() < len {
            buf.resize(len, T::default());
        }
        Self { buf, len }
    }
}

impl<T: Pooled> Deref for Scratch<T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        &self.buf[..self.len]
    }
}

impl<T: Pooled> DerefMut for Scratch<T> {
    fn deref_mut(&mut self) -> &mut [T] {
        &mut self.buf[..self.len]
    }
}

impl<T: Pooled> Drop for Scratch<T> {
    fn drop(&mut self) {
        let buf = std::mem::take(&mut self.buf);
        let mut p = T::pool().lock().unwrap_or_else(|e| e.into_inner());
        if p.len() < KEPT {
            p.push(buf);
        } else if let Some(smallest) = (0..p.len()).min_by_key(|&i| p[i].len()) {
            if p[smallest].len() < buf.len() {
                p[smallest] = buf;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Scratch;

    /// Lengths as requested, distinct buffers while held, contents writable; the pool is
    /// shared with concurrently running tests, so which buffer comes back is not checked.
    #[test]
    fn buffers_have_the_requested_length_and_are_distinct() {
        let mut held: Vec<Scratch<f32>> = Vec::new();
        for (i, len) in [1000, 500, 4000, 0, 1, 70_000].into_iter().enumerate() {
            let mut s = Scratch::<f32>::take(len);
            assert_eq!(s.len(), len);
            s.fill(i as f32);
            held.push(s);
        }
        for (i, s) in held.iter().enumerate() {
            assert!(
                s.iter().all(|&v| v == i as f32),
                "buffer {i} was overwritten"
            );
        }
        drop(held);
        let many: Vec<_> = (0..12).map(|i| Scratch::<f64>::take(10 + i)).collect();
        assert!(many.iter().enumerate().all(|(i, s)| s.len() == 10 + i));
    }
}
