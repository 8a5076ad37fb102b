// CUDA kernels of the RQS spline: one thread per event, the maths from rqs_math.h.
// Launched on the caller's stream (torch's current stream), so no synchronisation here.
#include <cuda_runtime.h>

#include "cuda_device_guard.cuh"
#include "rqs.h"

namespace madnis {

namespace {
constexpr int kThreads = 128;

template <typename T>
__global__ void forward_kernel(const T* __restrict__ x, const T* __restrict__ params,
                               T* __restrict__ y, T* __restrict__ logdet, int64_t n,
                               SplineConfig<T> cfg, bool inverse) {
    const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
    if (i >= n) return;
    const int64_t stride = 3 * int64_t(cfg.bins) + 1;
    y[i] = spline_apply(clamp_unit(x[i]), params + i * stride, cfg, inverse, logdet[i]);
}

template <typename T>
__global__ void backward_kernel(const T* __restrict__ x, const T* __restrict__ params,
                                const T* __restrict__ grad_y,
                                const T* __restrict__ grad_logdet, T* __restrict__ grad_x,
                                T* __restrict__ grad_params, int64_t n, SplineConfig<T> cfg,
                                bool inverse) {
    const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
    if (i >= n) return;
    const int64_t stride = 3 * int64_t(cfg.bins) + 1;
    grad_x[i] = spline_backward(clamp_unit(x[i]), params + i * stride, cfg, inverse,
                                grad_y[i], grad_logdet[i], grad_params + i * stride);
}

unsigned blocks_for(int64_t n) { return unsigned((n + kThreads - 1) / kThreads); }
}  // namespace

template <typename T>
int rqs_forward_cuda(const T* x, const T* params, T* y, T* logdet, int64_t n,
                     const SplineConfig<T>& cfg, bool inverse, void* stream) {
    if (n == 0) return 0;
    const DeviceOf on(x);
    if (on.status() != cudaSuccess) return int(on.status());
    forward_kernel<T><<<blocks_for(n), kThreads, 0, static_cast<cudaStream_t>(stream)>>>(
        x, params, y, logdet, n, cfg, inverse);
    return int(cudaGetLastError());
}

template <typename T>
int rqs_backward_cuda(const T* x, const T* params, const T* grad_y, const T* grad_logdet,
                      T* grad_x, T* grad_params, int64_t n, const SplineConfig<T>& cfg,
                      bool inverse, void* stream) {
    if (n == 0) return 0;
    const DeviceOf on(x);
    if (on.status() != cudaSuccess) return int(on.status());
    backward_kernel<T><<<blocks_for(n), kThreads, 0, static_cast<cudaStream_t>(stream)>>>(
        x, params, grad_y, grad_logdet, grad_x, grad_params, n, cfg, inverse);
    return int(cudaGetLastError());
}

int cuda_device_count() {
    int count = 0;
    if (cudaGetDeviceCount(&count) != cudaSuccess) {
        cudaGetLastError();  // clear the sticky "no driver" error
        return 0;
    }
    return count;
}

#define MADNIS_INSTANTIATE(T)                                                               \
    template int rqs_forward_cuda<T>(const T*, const T*, T*, T*, int64_t,                   \
                                     const SplineConfig<T>&, bool, void*);                  \
    template int rqs_backward_cuda<T>(const T*, const T*, const T*, const T*, T*, T*,       \
                                      int64_t, const SplineConfig<T>&, bool, void*);
MADNIS_INSTANTIATE(float)
MADNIS_INSTANTIATE(double)
#undef MADNIS_INSTANTIATE

}  // namespace madnis
