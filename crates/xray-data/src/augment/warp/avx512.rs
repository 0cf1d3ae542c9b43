//! The bilinear kernel, 16 output pixels per step (used for affine maps, whose taps
//! follow a straight line through the source). Instead of two 64-bit loads per pixel
//! and row, a chunk loads windows of the few source rows it touches and picks its taps
//! from them with lane permutes:
//! - all 2 × 2 neighbourhoods inside, taps within 16 columns and 8 rows: the windows of
//!   two rows side by side form one 32-entry table, so one permute serves two rows (with
//!   prefetches of the rows below, which the next output rows will read);
//! - inside, taps within 31 columns and 8 rows: one 32-column window per row;
//! - reflect-101 border, every lane within one reflection: the reflected taps from one
//!   32-column window per row;
//!
//! any other chunk goes to the AVX2 kernel. The arithmetic is the scalar code's,
//! operation for operation (no FMA), so results are bit-identical.

use std::arch::x86_64::*;

use super::{avx2, Border, Src};

/// Most source rows one chunk may touch on the 32-column path.
const MAX_ROWS: i32 = 8;

/// Columns left of lane 0's tap the 32-column window starts (maps that are not
/// monotonic in x).
const SLACK: i32 = 2;

/// # Safety
/// The CPU must support AVX2 and AVX-512 F, BW, VL and VBMI, and `w * h` must fit in
/// an `i32` with room for `w`.
#[target_feature(enable = "avx2,avx512f,avx512bw,avx512vl,avx512vbmi")]
pub(super) unsafe fn bilinear(s: &Src, xs: &[f32], ys: &[f32], out: &mut [f32], mout: &mut [u8]) {
    let n = out.len().min(xs.len()).min(ys.len());
    if !mout.is_empty() && mout.len() >= n && !s.mask.is_empty() {
        run::<true>(s, &xs[..n], &ys[..n], &mut out[..n], &mut mout[..n]);
    } else {
        run::<false>(s, &xs[..n], &ys[..n], &mut out[..n], &mut []);
    }
}

/// [`bilinear`] over equally long slices (`mout` too when `MASK`).
///
/// # Safety
/// As for [`bilinear`].
#[inline]
#[target_feature(enable = "avx2,avx512f,avx512bw,avx512vl,avx512vbmi")]
unsafe fn run<const MASK: bool>(s: &Src, xs: &[f32], ys: &[f32], out: &mut [f32], mout: &mut [u8]) {
    let n = out.len();
    let (w, h) = (s.w as isize, s.h as isize);
    let len = w * h;
    let zero = _mm512_setzero_ps();
    let vwm1 = _mm512_set1_ps(s.w as f32 - 1.0);
    let vhm1 = _mm512_set1_ps(s.h as f32 - 1.0);
    let one = _mm512_set1_epi32(1);
    let fifteen = _mm512_set1_epi32(15);
    let thirty = _mm512_set1_epi32(30);
    let half = _mm512_set1_ps(0.5);
    let img = s.img.as_ptr();
    let msk = s.mask.as_ptr();
    let reflect = matches!(s.border, Border::Reflect);
    let mut i = 0;
    while i + 16 <= n {
        let sx = _mm512_loadu_ps(xs.as_ptr().add(i));
        let sy = _mm512_loadu_ps(ys.as_ptr().add(i));
        let o = out.as_mut_ptr().add(i);
        let mo = if MASK {
            mout.as_mut_ptr().add(i)
        } else {
            std::ptr::null_mut()
        };
        // Ordered comparisons: NaN lanes fail.
        let inside = _mm512_cmp_ps_mask::<_CMP_GE_OQ>(sx, zero)
            & _mm512_cmp_ps_mask::<_CMP_LT_OQ>(sx, vwm1)
            & _mm512_cmp_ps_mask::<_CMP_GE_OQ>(sy, zero)
            & _mm512_cmp_ps_mask::<_CMP_LT_OQ>(sy, vhm1);
        if inside == 0xFFFF {
            // Inside: truncation is floor, and the lower taps are one row further.
            let x0 = _mm512_cvttps_epi32(sx);
            let y0 = _mm512_cvttps_epi32(sy);
            // Upper rows lo ..= hi: those of the first and last lanes (an affine
            // map's extremes), else the real extremes.
            let ya = _mm512_cvtsi512_si32(y0);
            let yb = _mm_extract_epi32::<3>(_mm512_extracti32x4_epi32::<3>(y0));
            let (mut lo, mut hi) = (ya.min(yb), ya.max(yb));
            let mut rel = _mm512_sub_epi32(y0, _mm512_set1_epi32(lo));
            if _mm512_cmple_epu32_mask(rel, _mm512_set1_epi32(hi - lo)) != 0xFFFF {
                lo = _mm512_reduce_min_epi32(y0);
                hi = _mm512_reduce_max_epi32(y0);
                rel = _mm512_sub_epi32(y0, _mm512_set1_epi32(lo));
            }
            // Window origin: lane 0's column, else the leftmost one.
            let mut bx = _mm512_cvtsi512_si32(x0);
            let mut idx = _mm512_sub_epi32(x0, _mm512_set1_epi32(bx));
            if _mm512_cmple_epu32_mask(idx, fifteen) != 0xFFFF {
                bx = _mm512_reduce_min_epi32(x0);
                idx = _mm512_sub_epi32(x0, _mm512_set1_epi32(bx));
            }
            let fx = _mm512_sub_ps(sx, _mm512_cvtepi32_ps(x0));
            let fy = _mm512_sub_ps(sy, _mm512_cvtepi32_ps(y0));
            // Rows lo ..= hi + 1 in pairs (lo + 2p, lo + 2p + 1); the windows of the
            // last pair (16 pixels from column bx for the left taps, bx + 1 for the
            // right ones, 32 labels from bx) must end inside the plane (lo and bx are
            // not negative here). They may run into the neighbouring rows, whose pixels
            // no lane selects.
            let pairs = (hi - lo + 3) / 2;
            let first = lo as isize * w + bx as isize;
            let last = (lo + 2 * pairs - 1) as isize * w + bx as isize + 32;
            if _mm512_cmple_epu32_mask(idx, fifteen) == 0xFFFF && last <= len {
                // The rows the next output rows will read (two below the last one
                // here), fetched ahead: the windows move down through the source.
                let ahead = last + 2 * w - 32;
                if ahead + 32 <= len {
                    _mm_prefetch::<_MM_HINT_T0>(img.offset(ahead).cast());
                    _mm_prefetch::<_MM_HINT_T0>(img.offset(ahead + 16).cast());
                    if MASK {
                        _mm_prefetch::<_MM_HINT_T0>(msk.offset(ahead).cast());
                    }
                }
                let c = Chunk {
                    img: img.offset(first),
                    msk: if MASK { msk.offset(first) } else { msk },
                    w,
                    fx,
                    fy,
                    idx,
                    rel,
                    gx: _mm512_cmp_ps_mask::<_CMP_GE_OQ>(fx, half),
                    gy: _mm512_cmp_ps_mask::<_CMP_GE_OQ>(fy, half),
                };
                let done = match pairs {
                    1 => {
                        paired::<MASK, 1>(&c, o, mo);
                        true
                    }
                    2 => {
                        paired::<MASK, 2>(&c, o, mo);
                        true
                    }
                    3 => {
                        paired::<MASK, 3>(&c, o, mo);
                        true
                    }
                    4 => {
                        paired::<MASK, 4>(&c, o, mo);
                        true
                    }
                    _ => false,
                };
                if done {
                    i += 16;
                    continue;
                }
            }
            // One 32-column window per row.
            let bx = _mm512_cvtsi512_si32(x0).min(bx + SLACK) - SLACK;
            let idx = _mm512_sub_epi32(x0, _mm512_set1_epi32(bx));
            let first = lo as isize * w + bx as isize;
            let last = (hi as isize + 1) * w + bx as isize + 32;
            if _mm512_cmple_epu32_mask(idx, thirty) == 0xFFFF
                && hi + 2 - lo <= MAX_ROWS
                && first >= 0
                && last <= len
            {
                let gx = _mm512_cmp_ps_mask::<_CMP_GE_OQ>(fx, half);
                let gy = _mm512_cmp_ps_mask::<_CMP_GE_OQ>(fy, half);
                let yn = _mm512_mask_add_epi32(y0, gy, y0, one);
                let idx1 = _mm512_add_epi32(idx, one);
                let nidx = _mm256_castsi128_si256(_mm512_cvtepi32_epi8(_mm512_mask_add_epi32(
                    idx, gx, idx, one,
                )));
                let (mut a, mut b, mut c, mut d) = (zero, zero, zero, zero);
                let mut labels = _mm256_setzero_si256();
                let mut upper: __mmask16 = 0;
                let mut at = first;
                for r in lo..=hi + 1 {
                    let vr = _mm512_set1_epi32(r);
                    let p = img.offset(at);
                    let (w0, w1) = (_mm512_loadu_ps(p), _mm512_loadu_ps(p.add(16)));
                    let left = _mm512_permutex2var_ps(w0, idx, w1);
                    let right = _mm512_permutex2var_ps(w0, idx1, w1);
                    // Lanes whose upper row is r, and (from the previous row) those
                    // whose lower row is r.
                    let cur = _mm512_cmpeq_epi32_mask(y0, vr);
                    a = _mm512_mask_mov_ps(a, cur, left);
                    b = _mm512_mask_mov_ps(b, cur, right);
                    c = _mm512_mask_mov_ps(c, upper, left);
                    d = _mm512_mask_mov_ps(d, upper, right);
                    upper = cur;
                    if MASK {
                        let row = _mm256_loadu_si256(msk.offset(at).cast());
                        let near = _mm512_cmpeq_epi32_mask(yn, vr);
                        labels = _mm256_mask_permutexvar_epi8(labels, near as u32, nidx, row);
                    }
                    at += w;
                }
                finish::<MASK>(a, b, c, d, fx, fy, labels, o, mo);
                i += 16;
                continue;
            }
        }
        if reflect && reflected::<MASK>(s, sx, sy, o, mo) {
            i += 16;
            continue;
        }
        let m: &mut [u8] = if MASK { &mut mout[i..i + 16] } else { &mut [] };
        avx2::bilinear(s, &xs[i..i + 16], &ys[i..i + 16], &mut out[i..i + 16], m);
        i += 16;
    }
    if i < n {
        let m: &mut [u8] = if MASK { &mut mout[i..n] } else { &mut [] };
        avx2::bilinear(s, &xs[i..n], &ys[i..n], &mut out[i..n], m);
    }
}

/// One inside chunk for [`paired`]: its window origin (row `lo`, column `bx`), the
/// taps' columns `idx` (0 ..= 15) and upper rows `rel` from there, the fractions, and
/// where the nearest label lies (one column right: `gx`, one row down: `gy`).
struct Chunk {
    img: *const f32,
    msk: *const u8,
    w: isize,
    fx: __m512,
    fy: __m512,
    idx: __m512i,
    rel: __m512i,
    gx: __mmask16,
    gy: __mmask16,
}

/// The 16 pixels (and labels) of an inside chunk whose taps lie within 16 columns and
/// `2 P` rows: entry `k + 16` of a pair's table is column `k` of its second row, so one
/// permute serves two rows.
///
/// # Safety
/// As for [`bilinear`]; the windows of `P` row pairs from `c.img` (17 pixels, and 32
/// labels from `c.msk` when `MASK`) must be inside the planes, `out` (and `mout` when
/// `MASK`) valid for 16 writes.
#[inline]
#[target_feature(enable = "avx2,avx512f,avx512bw,avx512vl,avx512vbmi")]
unsafe fn paired<const MASK: bool, const P: i32>(c: &Chunk, out: *mut f32, mout: *mut u8) {
    let one = _mm512_set1_epi32(1);
    let sixteen = _mm512_set1_epi32(16);
    let w = c.w;
    let odd = _mm512_test_epi32_mask(c.rel, one);
    let iu = _mm512_mask_add_epi32(c.idx, odd, c.idx, sixteen);
    let il = _mm512_mask_add_epi32(c.idx, !odd, c.idx, sixteen);
    let pair = |at: isize| {
        let p = c.img.offset(at);
        let (l0, l1) = (_mm512_loadu_ps(p), _mm512_loadu_ps(p.offset(w)));
        let (r0, r1) = (_mm512_loadu_ps(p.add(1)), _mm512_loadu_ps(p.offset(w + 1)));
        (
            _mm512_permutex2var_ps(l0, iu, l1),
            _mm512_permutex2var_ps(r0, iu, r1),
            _mm512_permutex2var_ps(l0, il, l1),
            _mm512_permutex2var_ps(r0, il, r1),
        )
    };
    let (mut a, mut b, mut cc, mut d) = pair(0);
    if P > 1 {
        let pu = _mm512_srli_epi32::<1>(c.rel);
        let pl = _mm512_srli_epi32::<1>(_mm512_add_epi32(c.rel, one));
        for p in 1..P {
            let vp = _mm512_set1_epi32(p);
            let (ku, kl) = (
                _mm512_cmpeq_epi32_mask(pu, vp),
                _mm512_cmpeq_epi32_mask(pl, vp),
            );
            let (pa, pb, pc, pd) = pair(2 * p as isize * w);
            a = _mm512_mask_mov_ps(a, ku, pa);
            b = _mm512_mask_mov_ps(b, ku, pb);
            cc = _mm512_mask_mov_ps(cc, kl, pc);
            d = _mm512_mask_mov_ps(d, kl, pd);
        }
    }
    let mut labels = _mm256_setzero_si256();
    if MASK {
        // Nearest label: floor + (fraction >= 0.5), the scalar rule.
        let reln = _mm512_mask_add_epi32(c.rel, c.gy, c.rel, one);
        let xn = _mm512_mask_add_epi32(c.idx, c.gx, c.idx, one);
        let nodd = _mm512_test_epi32_mask(reln, one);
        let nidx = _mm256_castsi128_si256(_mm512_cvtepi32_epi8(_mm512_mask_add_epi32(
            xn,
            nodd,
            xn,
            _mm512_set1_epi32(32),
        )));
        let labels_of = |at: isize| {
            let p = c.msk.offset(at);
            let (m0, m1) = (
                _mm256_loadu_si256(p.cast()),
                _mm256_loadu_si256(p.offset(w).cast()),
            );
            _mm256_permutex2var_epi8(m0, nidx, m1)
        };
        labels = labels_of(0);
        if P > 1 {
            let pn = _mm512_srli_epi32::<1>(reln);
            for p in 1..P {
                let kn = _mm512_cmpeq_epi32_mask(pn, _mm512_set1_epi32(p));
                labels = _mm256_mask_mov_epi8(labels, kn as u32, labels_of(2 * p as isize * w));
            }
        }
    }
    finish::<MASK>(a, b, cc, d, c.fx, c.fy, labels, out, mout);
}

/// Interpolate from the taps (the scalar code's operations) and store the 16 pixels
/// (and labels when `MASK`).
///
/// # Safety
/// `out` (and `mout` when `MASK`) valid for 16 writes; AVX-512 as for [`bilinear`].
#[allow(clippy::too_many_arguments)]
#[inline]
#[target_feature(enable = "avx2,avx512f,avx512bw,avx512vl,avx512vbmi")]
unsafe fn finish<const MASK: bool>(
    a: __m512,
    b: __m512,
    c: __m512,
    d: __m512,
    fx: __m512,
    fy: __m512,
    labels: __m256i,
    out: *mut f32,
    mout: *mut u8,
) {
    let top = _mm512_add_ps(a, _mm512_mul_ps(fx, _mm512_sub_ps(b, a)));
    let bot = _mm512_add_ps(c, _mm512_mul_ps(fx, _mm512_sub_ps(d, c)));
    let v = _mm512_add_ps(top, _mm512_mul_ps(fy, _mm512_sub_ps(bot, top)));
    _mm512_storeu_ps(out, v);
    if MASK {
        _mm_storeu_si128(mout.cast(), _mm256_castsi256_si128(labels));
    }
}

/// `n1 - |n1 - |i||` with `n1 = n - 1`: reflect-101, exact within one reflection.
#[inline]
#[target_feature(enable = "avx2,avx512f,avx512bw,avx512vl,avx512vbmi")]
unsafe fn reflect(i: __m512i, n1: __m512i) -> __m512i {
    _mm512_sub_epi32(
        n1,
        _mm512_abs_epi32(_mm512_sub_epi32(n1, _mm512_abs_epi32(i))),
    )
}

/// A chunk of 16 that reaches beyond the image under the reflect-101 border, every lane
/// within one reflection (the AVX2 kernel's gather tier, same operations): reflected
/// taps picked from one 32-column window per source row. Writes the 16 pixels (and
/// labels when `MASK`) and returns true, or returns false without writing
/// when the taps spread too far.
///
/// # Safety
/// As for [`bilinear`]; `out` (and `mout` when `MASK`) must be valid for 16 writes.
#[inline]
#[target_feature(enable = "avx2,avx512f,avx512bw,avx512vl,avx512vbmi")]
unsafe fn reflected<const MASK: bool>(
    s: &Src,
    sx: __m512,
    sy: __m512,
    out: *mut f32,
    mout: *mut u8,
) -> bool {
    let (wf, hf) = (s.w as f32, s.h as f32);
    // Ordered comparisons: NaN lanes fail.
    let ok = _mm512_cmp_ps_mask::<_CMP_GE_OQ>(sx, _mm512_set1_ps(1.0 - wf))
        & _mm512_cmp_ps_mask::<_CMP_LT_OQ>(sx, _mm512_set1_ps(2.0 * wf - 2.0))
        & _mm512_cmp_ps_mask::<_CMP_GE_OQ>(sy, _mm512_set1_ps(1.0 - hf))
        & _mm512_cmp_ps_mask::<_CMP_LT_OQ>(sy, _mm512_set1_ps(2.0 * hf - 2.0));
    if ok != 0xFFFF {
        return false;
    }
    const FLOOR: i32 = _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC;
    let flx = _mm512_roundscale_ps::<FLOOR>(sx);
    let fly = _mm512_roundscale_ps::<FLOOR>(sy);
    let fx = _mm512_sub_ps(sx, flx);
    let fy = _mm512_sub_ps(sy, fly);
    let x0 = _mm512_cvtps_epi32(flx);
    let y0 = _mm512_cvtps_epi32(fly);
    let one = _mm512_set1_epi32(1);
    let wm1 = _mm512_set1_epi32(s.w as i32 - 1);
    let hm1 = _mm512_set1_epi32(s.h as i32 - 1);
    let xa = reflect(x0, wm1);
    let xb = reflect(_mm512_add_epi32(x0, one), wm1);
    let ra = reflect(y0, hm1);
    let rb = reflect(_mm512_add_epi32(y0, one), hm1);
    let bx = _mm512_reduce_min_epi32(_mm512_min_epi32(xa, xb));
    let ia = _mm512_sub_epi32(xa, _mm512_set1_epi32(bx));
    let ib = _mm512_sub_epi32(xb, _mm512_set1_epi32(bx));
    let lo = _mm512_reduce_min_epi32(_mm512_min_epi32(ra, rb));
    let hi = _mm512_reduce_max_epi32(_mm512_max_epi32(ra, rb));
    let w = s.w as isize;
    if _mm512_cmple_epu32_mask(_mm512_max_epu32(ia, ib), _mm512_set1_epi32(31)) != 0xFFFF
        || hi + 1 - lo > MAX_ROWS
        || hi as isize * w + bx as isize + 32 > (s.w * s.h) as isize
    {
        return false;
    }
    let half = _mm512_set1_ps(0.5);
    let gx = _mm512_cmp_ps_mask::<_CMP_GE_OQ>(fx, half);
    let gy = _mm512_cmp_ps_mask::<_CMP_GE_OQ>(fy, half);
    let rn = _mm512_mask_blend_epi32(gy, ra, rb);
    let nidx = _mm256_castsi128_si256(_mm512_cvtepi32_epi8(_mm512_mask_blend_epi32(gx, ia, ib)));
    let zero = _mm512_setzero_ps();
    let (mut a, mut b, mut c, mut d) = (zero, zero, zero, zero);
    let mut labels = _mm256_setzero_si256();
    let mut at = lo as isize * w + bx as isize;
    for r in lo..=hi {
        let vr = _mm512_set1_epi32(r);
        let p = s.img.as_ptr().offset(at);
        let (w0, w1) = (_mm512_loadu_ps(p), _mm512_loadu_ps(p.add(16)));
        let left = _mm512_permutex2var_ps(w0, ia, w1);
        let right = _mm512_permutex2var_ps(w0, ib, w1);
        let (ku, kl) = (
            _mm512_cmpeq_epi32_mask(ra, vr),
            _mm512_cmpeq_epi32_mask(rb, vr),
        );
        a = _mm512_mask_mov_ps(a, ku, left);
        b = _mm512_mask_mov_ps(b, ku, right);
        c = _mm512_mask_mov_ps(c, kl, left);
        d = _mm512_mask_mov_ps(d, kl, right);
        if MASK {
            let row = _mm256_loadu_si256(s.mask.as_ptr().offset(at).cast());
            let kn = _mm512_cmpeq_epi32_mask(rn, vr);
            labels = _mm256_mask_permutexvar_epi8(labels, kn as u32, nidx, row);
        }
        at += w;
    }
    finish::<MASK>(a, b, c, d, fx, fy, labels, out, mout);
    true
}
