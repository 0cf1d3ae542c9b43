// CUDA kernels of xnet-model's custom operations (crate::ops). Compiled at run time with
// NVRTC (no headers, no nvcc at build time) by crate::ops::cuda, with `--fmad=false` so that
// every f64 expression rounds exactly as the CPU code in ops/pool.rs and ops/bilinear.rs
// does: the CUDA outputs equal the CPU outputs bit for bit (except max-unpool when two values
// share an index, where the order of the atomic additions may differ).
//
// Conventions: tensors are contiguous `[N, C, H, W]`, seen as `planes = N * C` planes of
// `H * W`; sizes are 64-bit; every kernel is a grid-stride loop over its outputs. Each kernel
// exists for float (`_f32`) and double (`_f64`).

typedef unsigned int u32;
typedef unsigned long long u64;

#define GRID_STRIDE(t, total) \
    for (u64 t = (u64)blockIdx.x * blockDim.x + threadIdx.x; t < (total); \
         t += (u64)blockDim.x * gridDim.x)

// Records an out-of-range index: flag[0] = 1, flag[1] = the index (any offending one).
__device__ __forceinline__ void report_bad_index(u32 *flag, u32 index) {
    flag[1] = index;
    flag[0] = 1;
}

// atomicAdd on double is native from sm_60; NVRTC's default target is older.
__device__ __forceinline__ float atomic_add(float *address, float val) {
    return atomicAdd(address, val);
}
__device__ __forceinline__ double atomic_add(double *address, double val) {
#if __CUDA_ARCH__ >= 600
    return atomicAdd(address, val);
#else
    unsigned long long *p = (unsigned long long *)address;
    unsigned long long old = *p, assumed;
    do {
        assumed = old;
        old = atomicCAS(p, assumed,
                        __double_as_longlong(val + __longlong_as_double(assumed)));
    } while (assumed != old);
    return __longlong_as_double(old);
#endif
}

// Arg-max of non-overlapping k x k windows (stride k, floor mode). Ties keep the first
// maximum in row-major window order; a NaN wins over numbers (PyTorch's rule).
// out: `[planes, h / k, w / k]`, each entry the flat `y * w + x` inside its own plane.
template <typename T>
__device__ void pool_indices(const T *x, u32 *out, u64 planes, u64 h, u64 w, u64 k) {
    const u64 oh = h / k, ow = w / k;
    GRID_STRIDE(t, planes * oh * ow) {
        const u64 j = t % ow, i = (t / ow) % oh, p = t / (ow * oh);
        const T *plane = x + p * h * w;
        u64 best = (i * k) * w + j * k;
        T best_v = plane[best];
        for (u64 dy = 0; dy < k; ++dy) {
            const u64 row = (i * k + dy) * w + j * k;
            for (u64 dx = 0; dx < k; ++dx) {
                const T v = plane[row + dx];
                if (v > best_v || (v != v && best_v == best_v)) {
                    best = row + dx;
                    best_v = v;
                }
            }
        }
        out[t] = (u32)best;
    }
}

// out[p, i] = x[p, idx[p, i]] for `planes` planes of `in_plane` inputs and `out_plane`
// indices. An index outside the plane gives 0 and is reported in `flag`.
template <typename T>
__device__ void pool_gather(const T *x, const u32 *idx, T *out, u64 planes, u64 in_plane,
                            u64 out_plane, u32 *flag) {
    GRID_STRIDE(t, planes * out_plane) {
        const u64 p = t / out_plane;
        const u32 i = idx[t];
        if ((u64)i < in_plane) {
            out[t] = x[p * in_plane + i];
        } else {
            out[t] = (T)0;
            report_bad_index(flag, i);
        }
    }
}

// out[p, idx[p, i]] += v[p, i] into `out`, which the caller zeroes (`planes` planes of
// `out_plane`). An index outside the plane is skipped and reported in `flag`.
template <typename T>
__device__ void unpool(const T *v, const u32 *idx, T *out, u64 planes, u64 in_plane,
                       u64 out_plane, u32 *flag) {
    GRID_STRIDE(t, planes * in_plane) {
        const u64 p = t / in_plane;
        const u32 i = idx[t];
        if ((u64)i < out_plane) {
            atomic_add(out + p * out_plane + i, v[t]);
        } else {
            report_bad_index(flag, i);
        }
    }
}

// Bilinear resize of `[planes, h, w]` to `[planes, oh, ow]`. `ty` holds the row taps as
// four runs of `oh` doubles (i0, i1, w0, w1), `tx` the column taps likewise with `ow`; both
// come from the CPU's `taps()`, so the arithmetic below is the CPU's, in the same order.
template <typename T>
__device__ void resize_fwd(const T *x, T *out, const double *ty, const double *tx, u64 planes,
                           u64 h, u64 w, u64 oh, u64 ow) {
    GRID_STRIDE(t, planes * oh * ow) {
        const u64 xo = t % ow, yo = (t / ow) % oh, p = t / (ow * oh);
        const u64 yi0 = (u64)ty[yo], yi1 = (u64)ty[oh + yo];
        const double ty0 = ty[2 * oh + yo], ty1 = ty[3 * oh + yo];
        const u64 xi0 = (u64)tx[xo], xi1 = (u64)tx[ow + xo];
        const double tx0 = tx[2 * ow + xo], tx1 = tx[3 * ow + xo];
        const T *r0 = x + p * h * w + yi0 * w;
        const T *r1 = x + p * h * w + yi1 * w;
        const double v = ty0 * (tx0 * (double)r0[xi0] + tx1 * (double)r0[xi1]) +
                         ty1 * (tx0 * (double)r1[xi0] + tx1 * (double)r1[xi1]);
        out[t] = (T)v;
    }
}

// Adjoint of resize_fwd, written as a gather (one thread per input pixel, no atomics).
// `ry` holds, for each input row, the half-open range [lo, hi) of output rows whose taps
// touch it (two runs of `h` doubles); `rx` likewise for columns. Contributions are summed in
// the CPU's order: output rows, then columns, then the four taps (i0/i1 of the row, i0/i1 of
// the column).
template <typename T>
__device__ void resize_bwd(const T *g, T *out, const double *ty, const double *tx,
                           const double *ry, const double *rx, u64 planes, u64 h, u64 w, u64 oh,
                           u64 ow) {
    GRID_STRIDE(t, planes * h * w) {
        const u64 xi = t % w, yi = (t / w) % h, p = t / (w * h);
        const T *gp = g + p * oh * ow;
        const u64 ylo = (u64)ry[yi], yhi = (u64)ry[h + yi];
        const u64 xlo = (u64)rx[xi], xhi = (u64)rx[w + xi];
        double acc = 0.0;
        for (u64 yo = ylo; yo < yhi; ++yo) {
            const bool y0 = (u64)ty[yo] == yi, y1 = (u64)ty[oh + yo] == yi;
            if (!y0 && !y1) continue;
            const double ty0 = ty[2 * oh + yo], ty1 = ty[3 * oh + yo];
            for (u64 xo = xlo; xo < xhi; ++xo) {
                const bool x0 = (u64)tx[xo] == xi, x1 = (u64)tx[ow + xo] == xi;
                if (!x0 && !x1) continue;
                const double tx0 = tx[2 * ow + xo], tx1 = tx[3 * ow + xo];
                const double gv = (double)gp[yo * ow + xo];
                if (y0 && x0) acc += ty0 * tx0 * gv;
                if (y0 && x1) acc += ty0 * tx1 * gv;
                if (y1 && x0) acc += ty1 * tx0 * gv;
                if (y1 && x1) acc += ty1 * tx1 * gv;
            }
        }
        out[t] = (T)acc;
    }
}

#define INSTANTIATE(T, SUFFIX)                                                                \
    extern "C" __global__ void xnet_pool_indices_##SUFFIX(const T *x, u32 *out, u64 planes,   \
                                                          u64 h, u64 w, u64 k) {             \
        pool_indices<T>(x, out, planes, h, w, k);                                             \
    }                                                                                         \
    extern "C" __global__ void xnet_pool_gather_##SUFFIX(const T *x, const u32 *idx, T *out,  \
                                                         u64 planes, u64 in_plane,            \
                                                         u64 out_plane, u32 *flag) {          \
        pool_gather<T>(x, idx, out, planes, in_plane, out_plane, flag);                       \
    }                                                                                         \
    extern "C" __global__ void xnet_unpool_##SUFFIX(const T *v, const u32 *idx, T *out,       \
                                                    u64 planes, u64 in_plane, u64 out_plane,  \
                                                    u32 *flag) {                              \
        unpool<T>(v, idx, out, planes, in_plane, out_plane, flag);                            \
    }                                                                                         \
    extern "C" __global__ void xnet_resize_fwd_##SUFFIX(const T *x, T *out, const double *ty, \
                                                        const double *tx, u64 planes, u64 h,  \
                                                        u64 w, u64 oh, u64 ow) {              \
        resize_fwd<T>(x, out, ty, tx, planes, h, w, oh, ow);                                  \
    }                                                                                         \
    extern "C" __global__ void xnet_resize_bwd_##SUFFIX(                                      \
        const T *g, T *out, const double *ty, const double *tx, const double *ry,             \
        const double *rx, u64 planes, u64 h, u64 w, u64 oh, u64 ow) {                         \
        resize_bwd<T>(g, out, ty, tx, ry, rx, planes, h, w, oh, ow);                          \
    }

INSTANTIATE(float, f32)
INSTANTIATE(double, f64)
