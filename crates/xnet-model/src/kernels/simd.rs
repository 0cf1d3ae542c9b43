//! Runs a hot loop through a copy of itself compiled for AVX2 + FMA when the CPU has them.
//!
//! The project builds for the baseline `x86-64` target (SSE2), so that its binaries run on
//! any x86-64 CPU; the GEMMs choose AVX2 at run time themselves, but the Winograd
//! transforms and the other element-wise passes of the kernels were compiled for 4-wide
//! SSE. [`with_avx2`] gives them the same run-time choice. The results do not change:
//! Rust never contracts `a * b + c` into a fused multiply-add, so enabling FMA only widens
//! the vectors, and every lane computes what the SSE code computes.

/// `f()`, compiled for AVX2 + FMA (8-wide f32) when the CPU supports both, for the baseline
/// otherwise. `f` and the functions it calls should be `#[inline(always)]`, so that their
/// code is generated inside the AVX2 copy.
#[inline(always)]
pub(crate) fn with_avx2<R>(f: impl FnOnce() -> R) -> R {
    #[cfg(target_arch = "x86_64")]
    {
        if avx2_enabled() {
            // SAFETY: the CPU supports AVX2 and FMA (checked by `avx2_enabled`).
            return unsafe { avx2_fma(f) };
        }
    }
    f()
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn avx2_fma<R>(f: impl FnOnce() -> R) -> R {
    f()
}

/// Whether [`with_avx2`] takes the AVX2 copy: the CPU has AVX2 and FMA, and
/// `XNET_NO_AVX2` is not set (to a non-empty value other than `0`; read once), which
/// forces the baseline code to test or time it.
#[cfg(target_arch = "x86_64")]
pub(crate) fn avx2_enabled() -> bool {
    use std::sync::OnceLock;
    static ENABLED: OnceLock<bool> = OnceLock::new();
    *ENABLED.get_or_init(|| {
        let off = matches!(std::env::var("XNET_NO_AVX2"), Ok(v) if !v.is_empty() && v != "0");
        !off && is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma")
    })
}

#[cfg(test)]
mod tests {
    use super::with_avx2;

    /// The AVX2 copy and the baseline compute the same values bit for bit, here on an
    /// element-wise loop with the Winograd transforms' kind of arithmetic.
    #[test]
    fn avx2_copy_matches_the_baseline() {
        #[inline(always)]
        fn mix(a: &[f32], b: &[f32], out: &mut [f32]) {
            for ((o, &x), &y) in out.iter_mut().zip(a).zip(b) {
                *o = 4.0 * x - 5.0 * y + x * y * (1.0 / 6.0);
            }
        }
        let a: Vec<f32> = (0..1003).map(|i| (i as f32).sin() * 1e3).collect();
        let b: Vec<f32> = (0..1003).map(|i| (i as f32).cos() * 1e-3).collect();
        let mut base = vec![0.0; a.len()];
        let mut fast = vec![0.0; a.len()];
        mix(&a, &b, &mut base);
        with_avx2(|| mix(&a, &b, &mut fast));
        assert_eq!(base, fast);
    }
}
