// CPU loops of the phase-space mappings: the per-event maths of phasespace_math.h over
// the batch, split across std::threads. Half of the time goes to glibc's scalar
// transcendentals (benchmarks/RESULTS.md); running events side by side with vector ones,
// as rqs_lanes.h does for the spline, is the next step if the map ever matters next to
// the matrix element.
#include <atomic>

#include "parallel.h"
#include "phasespace.h"

namespace madnis {

namespace {
constexpr int64_t kGrain = 1024;

template <typename F>
int64_t count_outside(int64_t n, int nthreads, F&& event) {
    std::atomic<int64_t> outside{0};
    parallel_for(n, nthreads, kGrain, [&](int64_t begin, int64_t end) {
        int64_t local = 0;
        for (int64_t i = begin; i < end; ++i) local += event(i) ? 0 : 1;
        outside += local;
    });
    return outside.load();
}
}  // namespace

int64_t ps_channel_forward_cpu(const ps::Program& p, const double* r, double* momenta,
                               double* weight, double* x12, int64_t n, int nthreads) {
    const int64_t d = p.dims(), nm = 4 * (p.n_final + 2);
    return count_outside(n, nthreads, [&](int64_t i) {
        return ps::channel_forward(p, r + i * d, momenta + i * nm, weight[i], x12 + 2 * i);
    });
}

int64_t ps_channel_inverse_cpu(const ps::Program& p, const double* momenta, double* r,
                               double* weight, int64_t n, int nthreads) {
    const int64_t d = p.dims(), nm = 4 * (p.n_final + 2);
    return count_outside(n, nthreads, [&](int64_t i) {
        return ps::channel_inverse(p, momenta + i * nm, r + i * d, weight[i]);
    });
}

int64_t ps_rambo_forward_cpu(const ps::RamboConfig& cfg, const double* r, double* momenta,
                             double* weight, double* x12, int64_t n, int nthreads) {
    const int64_t d = cfg.dims(), nm = 4 * (cfg.n_final + 2);
    return count_outside(n, nthreads, [&](int64_t i) {
        return ps::rambo_forward(cfg, r + i * d, momenta + i * nm, weight[i], x12 + 2 * i);
    });
}

}  // namespace madnis
