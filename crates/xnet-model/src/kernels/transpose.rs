//! Out-of-place matrix transposition, for GEMM operands whose contraction dimension is
//! contiguous in both factors.
//!
//! The `gemm` crate wants a left operand whose rows are contiguous when that operand is
//! narrow. The Winograd weight gradient multiplies two transforms that both keep the tiles
//! (the contraction dimension) contiguous; with 64 or 128 output channels against more
//! input channels, `gemm` ran it at 40–72 GFLOP/s on one Zen 4 core against about 80 with
//! the gradient transposed first (the transposition counted: 0.2–0.7 ns per element with
//! the AVX2 8×8 blocks below). See `winograd::WeightGradLayout`.

use std::any::TypeId;

use super::gemm_conv::Elem;

/// Writes the transpose of the row-major `rows × cols` matrix `src` to `dst`
/// (row-major `cols × rows`): `dst[c·rows + r] = src[r·cols + c]`.
///
/// # Panics
/// If either slice is shorter than `rows·cols` (a caller's bug, never user input).
pub(crate) fn transpose<T: Elem>(src: &[T], rows: usize, cols: usize, dst: &mut [T]) {
    let len = rows * cols;
    assert!(
        src.len() >= len && dst.len() >= len,
        "transpose operands smaller than {rows}×{cols}"
    );
    #[cfg(target_arch = "x86_64")]
    if TypeId::of::<T>() == TypeId::of::<f32>() && super::simd::avx2_enabled() {
        // SAFETY: T is f32 (same type id), so the casts only rename the element type;
        // the CPU supports AVX2 (checked); both slices hold `len` elements (asserted).
        unsafe {
            let src = std::slice::from_raw_parts(src.as_ptr().cast::<f32>(), len);
            let dst = std::slice::from_raw_parts_mut(dst.as_mut_ptr().cast::<f32>(), len);
            transpose_f32_avx2(src, rows, cols, dst);
        }
        return;
    }
    transpose_blocked(src, rows, cols, dst);
}

/// Columns of one pass over the rows: 64 destination rows of a few KB stay in L1 while
/// the source is read in row order.
const COLUMN_PANEL: usize = 64;

/// The scalar transpose, by panels of columns.
fn transpose_blocked<T: Elem>(src: &[T], rows: usize, cols: usize, dst: &mut [T]) {
    for cp in (0..cols).step_by(COLUMN_PANEL) {
        let ce = (cp + COLUMN_PANEL).min(cols);
        for r in 0..rows {
            for c in cp..ce {
                dst[c * rows + r] = src[r * cols + c];
            }
        }
    }
}

/// AVX2 transpose: 8×8 blocks in registers over the largest multiple-of-8 corner, the
/// scalar loop for the right and bottom edges.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn transpose_f32_avx2(src: &[f32], rows: usize, cols: usize, dst: &mut [f32]) {
    let (r8, c8) = (rows / 8 * 8, cols / 8 * 8);
    for cp in (0..c8).step_by(COLUMN_PANEL) {
        for r in (0..r8).step_by(8) {
            for c in (cp..(cp + COLUMN_PANEL).min(c8)).step_by(8) {
                // SAFETY: rows r..r+8 and columns c..c+8 are inside both matrices
                // (r + 8 ≤ rows, c + 8 ≤ cols), so every load and store is in bounds.
                unsafe {
                    transpose8x8(
                        src.as_ptr().add(r * cols + c),
                        cols,
                        dst.as_mut_ptr().add(c * rows + r),
                        rows,
                    )
                };
            }
        }
    }
    if r8 < rows || c8 < cols {
        // The right edge (columns c8..) of every row, then the bottom rows r8..
        for r in 0..rows {
            let start = if r < r8 { c8 } else { 0 };
            for c in start..cols {
                dst[c * rows + r] = src[r * cols + c];
            }
        }
    }
}

/// Transposes the 8×8 block at `src` (row stride `ss`) into `dst` (row stride `ds`).
///
/// # Safety
/// AVX2 must be available, and 8 rows of 8 elements must be readable at `src` and
/// writable at `dst` with the given strides.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn transpose8x8(src: *const f32, ss: usize, dst: *mut f32, ds: usize) {
    use std::arch::x86_64::*;
    // SAFETY: the caller guarantees the eight rows are in bounds.
    unsafe {
        let r = |i: usize| _mm256_loadu_ps(src.add(i * ss));
        let (r0, r1, r2, r3) = (r(0), r(1), r(2), r(3));
        let (r4, r5, r6, r7) = (r(4), r(5), r(6), r(7));
        // Pairs of rows interleaved, then pairs of pairs, then the 128-bit halves.
        let t0 = _mm256_unpacklo_ps(r0, r1);
        let t1 = _mm256_unpackhi_ps(r0, r1);
        let t2 = _mm256_unpacklo_ps(r2, r3);
        let t3 = _mm256_unpackhi_ps(r2, r3);
        let t4 = _mm256_unpacklo_ps(r4, r5);
        let t5 = _mm256_unpackhi_ps(r4, r5);
        let t6 = _mm256_unpacklo_ps(r6, r7);
        let t7 = _mm256_unpackhi_ps(r6, r7);
        let s0 = _mm256_shuffle_ps::<0x44>(t0, t2);
        let s1 = _mm256_shuffle_ps::<0xEE>(t0, t2);
        let s2 = _mm256_shuffle_ps::<0x44>(t1, t3);
        let s3 = _mm256_shuffle_ps::<0xEE>(t1, t3);
        let s4 = _mm256_shuffle_ps::<0x44>(t4, t6);
        let s5 = _mm256_shuffle_ps::<0xEE>(t4, t6);
        let s6 = _mm256_shuffle_ps::<0x44>(t5, t7);
        let s7 = _mm256_shuffle_ps::<0xEE>(t5, t7);
        let w = |i: usize, v: __m256| _mm256_storeu_ps(dst.add(i * ds), v);
        w(0, _mm256_permute2f128_ps::<0x20>(s0, s4));
        w(1, _mm256_permute2f128_ps::<0x20>(s1, s5));
        w(2, _mm256_permute2f128_ps::<0x20>(s2, s6));
        w(3, _mm256_permute2f128_ps::<0x20>(s3, s7));
        w(4, _mm256_permute2f128_ps::<0x31>(s0, s4));
        w(5, _mm256_permute2f128_ps::<0x31>(s1, s5));
        w(6, _mm256_permute2f128_ps::<0x31>(s2, s6));
        w(7, _mm256_permute2f128_ps::<0x31>(s3, s7));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive<T: Copy>(src: &[T], rows: usize, cols: usize) -> Vec<T> {
        (0..cols)
            .flat_map(|c| (0..rows).map(move |r| (r, c)))
            .map(|(r, c)| src[r * cols + c])
            .collect()
    }

    /// Every shape class: multiples of 8, ragged right and bottom edges, fewer than 8
    /// rows or columns, more than one column panel; f32 (the AVX2 blocks where the CPU
    /// has them) and f64 (the scalar loop).
    #[test]
    fn matches_the_definition() {
        for &(rows, cols) in &[
            (8, 8),
            (16, 72),
            (64, 1024),
            (13, 29),
            (3, 130),
            (130, 3),
            (1, 1),
            (7, 9),
            (72, 200),
        ] {
            let src: Vec<f32> = (0..rows * cols).map(|i| i as f32 * 0.5 - 3.0).collect();
            let mut dst = vec![f32::NAN; rows * cols];
            transpose(&src, rows, cols, &mut dst);
            assert_eq!(dst, naive(&src, rows, cols), "f32 {rows}×{cols}");

            let src: Vec<f64> = src.iter().map(|&v| f64::from(v) + 0.25).collect();
            let mut dst = vec![f64::NAN; rows * cols];
            transpose(&src, rows, cols, &mut dst);
            assert_eq!(dst, naive(&src, rows, cols), "f64 {rows}×{cols}");
        }
    }

    /// The scalar path alone, also for f32 (what a CPU without AVX2 runs).
    #[test]
    fn scalar_path_matches_the_definition() {
        for &(rows, cols) in &[(13, 29), (64, 70), (9, 8)] {
            let src: Vec<f32> = (0..rows * cols).map(|i| i as f32).collect();
            let mut dst = vec![f32::NAN; rows * cols];
            transpose_blocked(&src, rows, cols, &mut dst);
            assert_eq!(dst, naive(&src, rows, cols), "{rows}×{cols}");
        }
    }
}
