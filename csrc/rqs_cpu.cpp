// CPU loops of the RQS kernels: blocks of lanes::L events (rqs_lanes.h), threads over
// the batch. A partial last block is padded rather than run per event, so every event
// takes the same code path and results do not depend on where the thread chunks end.
//
// The per-chunk loops are compiled twice on x86-64 GCC (AVX2+FMA and baseline) with
// target_clones, and the loader picks one at run time: the lane loops vectorise across
// events, so the wider registers pay off while the module stays portable.
// Finite-math for this translation unit only: without it GCC keeps the selects of the
// spline (clamps, edge cases) as branches and the lane loops do not vectorise. Nothing
// here relies on NaN or infinity: inputs are range-checked on their bit patterns
// (in_unit) and outputs of bad inputs are overwritten afterwards.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("finite-math-only", "no-signed-zeros")
#endif

#include <atomic>
#include <cmath>
#include <cstring>

#include "parallel.h"
#include "range_check.h"
#include "rqs.h"
#include "rqs_lanes.h"

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define MADNIS_CLONES __attribute__((target_clones("arch=x86-64-v3", "default")))
#else
#define MADNIS_CLONES
#endif

namespace madnis {

namespace {
constexpr int64_t kGrain = 4096;

// Returns the first index in [begin, end) outside [0, 1] (or NaN), or -1.
template <typename T>
MADNIS_HD int64_t first_bad(const T* x, int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i)
        if (!in_unit(x[i])) return i;
    return -1;
}

// A block of lanes::L events, the last one padded with harmless values (x = 1/2, zero
// parameters = identity) so every block runs the vector code.
template <typename T>
struct PaddedTail {
    T x[lanes::L], y[lanes::L], a[lanes::L], b[lanes::L], gx[lanes::L];
    T params[lanes::L * (3 * kMaxBins + 1)], gp[lanes::L * (3 * kMaxBins + 1)];
    PaddedTail(const T* xs, const T* ps, int64_t count, int64_t stride) {
        for (int l = 0; l < lanes::L; ++l) {
            x[l] = l < count ? xs[l] : T(0.5);
            for (int64_t j = 0; j < stride; ++j)
                params[l * stride + j] = l < count ? ps[l * stride + j] : T(0);
        }
    }
};

template <typename T>
MADNIS_HD int64_t forward_range(const T* x, const T* params, T* y, T* logdet, int64_t begin,
                                int64_t end, const SplineConfig<T>& cfg, bool inverse,
                                bool vectorized) {
    const int64_t stride = 3 * int64_t(cfg.bins) + 1;
    int64_t i = begin;
    if (vectorized) {
        for (; i + lanes::L <= end; i += lanes::L)
            lanes::forward_block(x + i, params + i * stride, y + i, logdet + i, cfg, inverse);
        if (i < end) {
            PaddedTail<T> t(x + i, params + i * stride, end - i, stride);
            lanes::forward_block(t.x, t.params, t.y, t.a, cfg, inverse);
            for (int64_t l = 0; l < end - i; ++l) {
                y[i + l] = t.y[l];
                logdet[i + l] = t.a[l];
            }
        }
    } else {
        for (; i < end; ++i)
            y[i] = spline_apply(clamp_unit(x[i]), params + i * stride, cfg, inverse, logdet[i]);
    }
    const int64_t bad = first_bad(x, begin, end);
    if (bad >= 0)
        for (int64_t j = bad; j < end; ++j)
            if (!in_unit(x[j])) y[j] = logdet[j] = T(NAN);
    return bad;
}

template <typename T>
MADNIS_HD int64_t backward_range(const T* x, const T* params, const T* grad_y,
                                 const T* grad_logdet, T* grad_x, T* grad_params, int64_t begin,
                                 int64_t end, const SplineConfig<T>& cfg, bool inverse,
                                 bool vectorized) {
    const int64_t stride = 3 * int64_t(cfg.bins) + 1;
    int64_t i = begin;
    if (vectorized) {
        for (; i + lanes::L <= end; i += lanes::L)
            lanes::backward_block(x + i, params + i * stride, grad_y + i, grad_logdet + i,
                                  grad_x + i, grad_params + i * stride, cfg, inverse);
        if (i < end) {
            PaddedTail<T> t(x + i, params + i * stride, end - i, stride);
            for (int l = 0; l < lanes::L; ++l) {
                t.a[l] = l < end - i ? grad_y[i + l] : T(0);
                t.b[l] = l < end - i ? grad_logdet[i + l] : T(0);
            }
            lanes::backward_block(t.x, t.params, t.a, t.b, t.gx, t.gp, cfg, inverse);
            for (int64_t l = 0; l < end - i; ++l) {
                grad_x[i + l] = t.gx[l];
                for (int64_t j = 0; j < stride; ++j)
                    grad_params[(i + l) * stride + j] = t.gp[l * stride + j];
            }
        }
    } else {
        for (; i < end; ++i)
            grad_x[i] = spline_backward(clamp_unit(x[i]), params + i * stride, cfg, inverse,
                                        grad_y[i], grad_logdet[i], grad_params + i * stride);
    }
    return first_bad(x, begin, end);
}

// target_clones needs plain (non-template) functions.
#define MADNIS_CHUNKS(T)                                                                     \
    MADNIS_CLONES int64_t forward_chunk(const T* x, const T* p, T* y, T* ld, int64_t b,      \
                                        int64_t e, const SplineConfig<T>& c, bool inv,       \
                                        bool vec) {                                          \
        return forward_range(x, p, y, ld, b, e, c, inv, vec);                                \
    }                                                                                        \
    MADNIS_CLONES int64_t backward_chunk(const T* x, const T* p, const T* gy, const T* gl,   \
                                         T* gx, T* gp, int64_t b, int64_t e,                 \
                                         const SplineConfig<T>& c, bool inv, bool vec) {     \
        return backward_range(x, p, gy, gl, gx, gp, b, e, c, inv, vec);                      \
    }
MADNIS_CHUNKS(double)
MADNIS_CHUNKS(float)
#undef MADNIS_CHUNKS
}  // namespace

template <typename T>
SplineConfig<T> make_config(int bins, double min_width, double min_height,
                            double min_derivative) {
    SplineConfig<T> cfg;
    cfg.bins = bins;
    cfg.min_width = T(min_width);
    cfg.min_height = T(min_height);
    cfg.min_derivative = T(min_derivative);
    cfg.derivative_shift = T(std::log(std::expm1(1.0 - min_derivative)));
    return cfg;
}

template <typename T>
int64_t rqs_forward_cpu(const T* x, const T* params, T* y, T* logdet, int64_t n,
                        const SplineConfig<T>& cfg, bool inverse, int nthreads,
                        bool vectorized) {
    FirstBad bad;
    parallel_for(n, nthreads, kGrain, [&](int64_t begin, int64_t end) {
        const int64_t b =
            forward_chunk(x, params, y, logdet, begin, end, cfg, inverse, vectorized);
        if (b >= 0) bad.record(b);
    });
    return bad.index.load();
}

template <typename T>
int64_t rqs_backward_cpu(const T* x, const T* params, const T* grad_y, const T* grad_logdet,
                         T* grad_x, T* grad_params, int64_t n, const SplineConfig<T>& cfg,
                         bool inverse, int nthreads, bool vectorized) {
    FirstBad bad;
    parallel_for(n, nthreads, kGrain, [&](int64_t begin, int64_t end) {
        const int64_t b = backward_chunk(x, params, grad_y, grad_logdet, grad_x, grad_params,
                                         begin, end, cfg, inverse, vectorized);
        if (b >= 0) bad.record(b);
    });
    return bad.index.load();
}

#define MADNIS_INSTANTIATE(T)                                                              \
    template SplineConfig<T> make_config<T>(int, double, double, double);                  \
    template int64_t rqs_forward_cpu<T>(const T*, const T*, T*, T*, int64_t,               \
                                        const SplineConfig<T>&, bool, int, bool);          \
    template int64_t rqs_backward_cpu<T>(const T*, const T*, const T*, const T*, T*, T*,   \
                                         int64_t, const SplineConfig<T>&, bool, int, bool);
MADNIS_INSTANTIATE(float)
MADNIS_INSTANTIATE(double)
#undef MADNIS_INSTANTIATE

}  // namespace madnis
