// CUDA kernels of the phase-space mappings: one thread per event, the maths from
// phasespace_math.h, launched on the caller's stream.
#include <cuda_runtime.h>

#include "cuda_device_guard.cuh"
#include "phasespace.h"

namespace madnis {

namespace {
constexpr int kThreads = 128;

unsigned blocks_for(int64_t n) { return unsigned((n + kThreads - 1) / kThreads); }

__global__ void channel_forward_kernel(ps::Program p, const double* __restrict__ r,
                                       double* __restrict__ momenta,
                                       double* __restrict__ weight, double* __restrict__ x12,
                                       int64_t n) {
    const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
    if (i >= n) return;
    ps::channel_forward(p, r + i * p.dims(), momenta + i * 4 * (p.n_final + 2), weight[i],
                        x12 + 2 * i);
}

__global__ void channel_inverse_kernel(ps::Program p, const double* __restrict__ momenta,
                                       double* __restrict__ r, double* __restrict__ weight,
                                       int64_t n) {
    const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
    if (i >= n) return;
    ps::channel_inverse(p, momenta + i * 4 * (p.n_final + 2), r + i * p.dims(), weight[i]);
}

__global__ void rambo_forward_kernel(ps::RamboConfig cfg, const double* __restrict__ r,
                                     double* __restrict__ momenta, double* __restrict__ weight,
                                     double* __restrict__ x12, int64_t n) {
    const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
    if (i >= n) return;
    ps::rambo_forward(cfg, r + i * cfg.dims(), momenta + i * 4 * (cfg.n_final + 2), weight[i],
                      x12 + 2 * i);
}
}  // namespace

int ps_channel_forward_cuda(const ps::Program& p, const double* r, double* momenta,
                            double* weight, double* x12, int64_t n, void* stream) {
    if (n == 0) return 0;
    const DeviceOf on(r);
    if (on.status() != cudaSuccess) return int(on.status());
    channel_forward_kernel<<<blocks_for(n), kThreads, 0, static_cast<cudaStream_t>(stream)>>>(
        p, r, momenta, weight, x12, n);
    return int(cudaGetLastError());
}

int ps_channel_inverse_cuda(const ps::Program& p, const double* momenta, double* r,
                            double* weight, int64_t n, void* stream) {
    if (n == 0) return 0;
    const DeviceOf on(momenta);
    if (on.status() != cudaSuccess) return int(on.status());
    channel_inverse_kernel<<<blocks_for(n), kThreads, 0, static_cast<cudaStream_t>(stream)>>>(
        p, momenta, r, weight, n);
    return int(cudaGetLastError());
}

int ps_rambo_forward_cuda(const ps::RamboConfig& cfg, const double* r, double* momenta,
                          double* weight, double* x12, int64_t n, void* stream) {
    if (n == 0) return 0;
    const DeviceOf on(r);
    if (on.status() != cudaSuccess) return int(on.status());
    rambo_forward_kernel<<<blocks_for(n), kThreads, 0, static_cast<cudaStream_t>(stream)>>>(
        cfg, r, momenta, weight, x12, n);
    return int(cudaGetLastError());
}

}  // namespace madnis
