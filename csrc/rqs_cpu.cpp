// CPU loops of the RQS kernels: one event per iteration, threads over the batch.
#include <atomic>
#include <cmath>

#include "parallel.h"
#include "rqs.h"

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
bool in_unit(T v) {
    return v >= T(0) && v <= T(1);  // false for NaN
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
    const int64_t stride = 3 * int64_t(cfg.bins) + 1;
    FirstBad bad;
    parallel_for(n, nthreads, kGrain, [&](int64_t begin, int64_t end) {
        for (int64_t i = begin; i < end; ++i) {
            if (!in_unit(x[i])) {
                bad.record(i);
                y[i] = T(NAN);
                logdet[i] = T(NAN);
                continue;
            }
            y[i] = spline_apply(x[i], params + i * stride, cfg, inverse, logdet[i]);
        }
    });
    return bad.index.load();
}

template <typename T>
int64_t rqs_backward_cpu(const T* x, const T* params, const T* grad_y, const T* grad_logdet,
                         T* grad_x, T* grad_params, int64_t n, const SplineConfig<T>& cfg,
                         bool inverse, int nthreads) {
    const int64_t stride = 3 * int64_t(cfg.bins) + 1;
    FirstBad bad;
    parallel_for(n, nthreads, kGrain, [&](int64_t begin, int64_t end) {
        for (int64_t i = begin; i < end; ++i) {
            if (!in_unit(x[i])) {
                bad.record(i);
                continue;
            }
            grad_x[i] = spline_backward(x[i], params + i * stride, cfg, inverse, grad_y[i],
                                        grad_logdet[i], grad_params + i * stride);
        }
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
