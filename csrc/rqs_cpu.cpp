// CPU loops of the RQS kernels: one event per iteration, threads over the batch.
//
// The per-chunk loops are compiled twice on x86-64 GCC (AVX2+FMA and baseline) with
// target_clones, and the loader picks one at run time: the softmax exps vectorise over
// bins, so the wider registers pay off while the module stays portable.
#include <atomic>
#include <cmath>

#include "parallel.h"
#include "rqs.h"

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define MADNIS_CLONES __attribute__((target_clones("arch=x86-64-v3", "default")))
#else
#define MADNIS_CLONES
#endif

namespace madnis {

namespace {
constexpr int64_t kGrain = 4096;

// Records the smallest failing index seen by any thread.
struct FirstBad {
    std::atomic<int64_t> index{-1};
    void record(int64_t i) {
        int64_t cur = index.load();
        while ((cur < 0 || i < cur) && !index.compare_exchange_weak(cur, i)) {
        }
    }
};

template <typename T>
inline bool in_unit(T v) {
    return v >= T(0) && v <= T(1);  // false for NaN
}

// Returns the first index in [begin, end) outside [0, 1], or -1.
template <typename T>
MADNIS_HD int64_t forward_range(const T* x, const T* params, T* y, T* logdet, int64_t begin,
                             int64_t end, const SplineConfig<T>& cfg, bool inverse) {
    const int64_t stride = 3 * int64_t(cfg.bins) + 1;
    int64_t bad = -1;
    for (int64_t i = begin; i < end; ++i) {
        if (!in_unit(x[i])) {
            if (bad < 0) bad = i;
            y[i] = T(NAN);
            logdet[i] = T(NAN);
            continue;
        }
        y[i] = spline_apply(x[i], params + i * stride, cfg, inverse, logdet[i]);
    }
    return bad;
}

template <typename T>
MADNIS_HD int64_t backward_range(const T* x, const T* params, const T* grad_y,
                              const T* grad_logdet, T* grad_x, T* grad_params, int64_t begin,
                              int64_t end, const SplineConfig<T>& cfg, bool inverse) {
    const int64_t stride = 3 * int64_t(cfg.bins) + 1;
    int64_t bad = -1;
    for (int64_t i = begin; i < end; ++i) {
        if (!in_unit(x[i])) {
            if (bad < 0) bad = i;
            continue;
        }
        grad_x[i] = spline_backward(x[i], params + i * stride, cfg, inverse, grad_y[i],
                                    grad_logdet[i], grad_params + i * stride);
    }
    return bad;
}

// target_clones needs plain (non-template) functions.
MADNIS_CLONES int64_t forward_chunk(const double* x, const double* p, double* y, double* ld,
                                    int64_t b, int64_t e, const SplineConfig<double>& c,
                                    bool inv) {
    return forward_range(x, p, y, ld, b, e, c, inv);
}
MADNIS_CLONES int64_t forward_chunk(const float* x, const float* p, float* y, float* ld,
                                    int64_t b, int64_t e, const SplineConfig<float>& c,
                                    bool inv) {
    return forward_range(x, p, y, ld, b, e, c, inv);
}
MADNIS_CLONES int64_t backward_chunk(const double* x, const double* p, const double* gy,
                                     const double* gl, double* gx, double* gp, int64_t b,
                                     int64_t e, const SplineConfig<double>& c, bool inv) {
    return backward_range(x, p, gy, gl, gx, gp, b, e, c, inv);
}
MADNIS_CLONES int64_t backward_chunk(const float* x, const float* p, const float* gy,
                                     const float* gl, float* gx, float* gp, int64_t b,
                                     int64_t e, const SplineConfig<float>& c, bool inv) {
    return backward_range(x, p, gy, gl, gx, gp, b, e, c, inv);
}
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
                        const SplineConfig<T>& cfg, bool inverse, int nthreads) {
    FirstBad bad;
    parallel_for(n, nthreads, kGrain, [&](int64_t begin, int64_t end) {
        const int64_t b = forward_chunk(x, params, y, logdet, begin, end, cfg, inverse);
        if (b >= 0) bad.record(b);
    });
    return bad.index.load();
}

template <typename T>
int64_t rqs_backward_cpu(const T* x, const T* params, const T* grad_y, const T* grad_logdet,
                         T* grad_x, T* grad_params, int64_t n, const SplineConfig<T>& cfg,
                         bool inverse, int nthreads) {
    FirstBad bad;
    parallel_for(n, nthreads, kGrain, [&](int64_t begin, int64_t end) {
        const int64_t b = backward_chunk(x, params, grad_y, grad_logdet, grad_x, grad_params,
                                         begin, end, cfg, inverse);
        if (b >= 0) bad.record(b);
    });
    return bad.index.load();
}

#define MADNIS_INSTANTIATE(T)                                                              \
    template SplineConfig<T> make_config<T>(int, double, double, double);                  \
    template int64_t rqs_forward_cpu<T>(const T*, const T*, T*, T*, int64_t,               \
                                        const SplineConfig<T>&, bool, int);                \
    template int64_t rqs_backward_cpu<T>(const T*, const T*, const T*, const T*, T*, T*,   \
                                         int64_t, const SplineConfig<T>&, bool, int);
MADNIS_INSTANTIATE(float)
MADNIS_INSTANTIATE(double)
#undef MADNIS_INSTANTIATE

}  // namespace madnis
