//! Hot loops compiled twice: for the baseline and for AVX2 + FMA, chosen at run time.
//!
//! The project builds for the baseline `x86-64` target (SSE2), so that its binaries run on
//! any x86-64 CPU; the GEMMs choose AVX2 at run time themselves, but the Winograd
//! transforms and the other element-wise passes of the kernels were compiled for 4-wide
//! SSE. `avx2_dispatch!` gives them the same run-time choice. The
//! results do not change: Rust never contracts `a * b + c` into a fused multiply-add, so
//! enabling FMA only widens the vectors, and every lane computes what the SSE code computes.
//!
//! A closure passed to a `#[target_feature]` function is not enough: LLVM does not inline
//! large closures into it, and their code stays baseline. The macro writes a
//! `#[target_feature]` function that calls the `#[inline(always)]` implementation by name.

/// Defines `fn $name<T: Bound>(args) -> Ret` (the return type optional) that runs `$imp(args)` compiled for AVX2 + FMA when
/// [`avx2_enabled`], and for the baseline otherwise. `$imp` and everything it calls on the
/// hot path must be `#[inline(always)]`, so that their code is generated inside each copy.
macro_rules! avx2_dispatch {
    ($(#[$meta:meta])* $vis:vis fn $name:ident<$t:ident: $bound:path>($($arg:ident: $ty:ty),* $(,)?) $(-> $ret:ty)? => $imp:ident) => {
        $(#[$meta])*
        #[allow(clippy::too_many_arguments)]
        $vis fn $name<$t: $bound>($($arg: $ty),*) $(-> $ret)? {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx2,fma")]
                #[allow(clippy::too_many_arguments)]
                unsafe fn avx2<$t: $bound>($($arg: $ty),*) $(-> $ret)? {
                    $imp($($arg),*)
                }
                if $crate::kernels::simd::avx2_enabled() {
                    // SAFETY: the CPU supports AVX2 and FMA (checked just above).
                    return unsafe { avx2($($arg),*) };
                }
            }
            $imp($($arg),*)
        }
    };
}
pub(crate) use avx2_dispatch;

/// Whether the AVX2 copies run: the CPU has AVX2 and FMA, and `XNET_NO_AVX2` is not set
/// (to a non-empty value other than `0`; read once), which forces the baseline code to
/// test or time it.
pub(crate) fn avx2_enabled() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        use std::sync::OnceLock;
        static ENABLED: OnceLock<bool> = OnceLock::new();
        *ENABLED.get_or_init(|| {
            let off = matches!(std::env::var("XNET_NO_AVX2"), Ok(v) if !v.is_empty() && v != "0");
            !off && is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma")
        })
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

#[cfg(test)]
mod tests {
    /// The Winograd transforms' kind of arithmetic, in place.
    #[inline(always)]
    fn mix<T: Copy + std::ops::Mul<Output = T> + std::ops::Sub<Output = T> + From<f32>>(
        a: &[T],
        b: &[T],
        out: &mut [T],
    ) {
        for ((o, &x), &y) in out.iter_mut().zip(a).zip(b) {
            *o = T::from(4.0) * x - T::from(5.0) * y - x * y * T::from(1.0 / 6.0);
        }
    }

    trait Num: Copy + std::ops::Mul<Output = Self> + std::ops::Sub<Output = Self> + From<f32> {}
    impl Num for f32 {}

    super::avx2_dispatch!(fn mix_dispatched<T: Num>(a: &[T], b: &[T], out: &mut [T]) => mix);

    /// The dispatched copy (AVX2 on this machine when it has it) and the baseline compute
    /// the same values bit for bit.
    #[test]
    fn dispatched_copy_matches_the_baseline() {
        let a: Vec<f32> = (0..1003).map(|i| (i as f32).sin() * 1e3).collect();
        let b: Vec<f32> = (0..1003).map(|i| (i as f32).cos() * 1e-3).collect();
        let mut base = vec![0.0; a.len()];
        let mut fast = vec![0.0; a.len()];
        mix(&a, &b, &mut base);
        mix_dispatched(&a, &b, &mut fast);
        assert_eq!(base, fast);
    }
}
