// CUDA kernel of the PDF grid interpolation: one thread per point and column, the maths
// from pdf_math.h, launched on the caller's stream.
#include <cuda_runtime.h>

#include "cuda_device_guard.cuh"
#include "pdf_math.h"

namespace madnis {

namespace {
constexpr int kThreads = 128;

__global__ void logbicubic_kernel(pdf::Grid g, const int64_t* __restrict__ cols, int64_t k,
                                  bool per_point, const double* __restrict__ x,
                                  const double* __restrict__ q2,
                                  const double* __restrict__ logx,
                                  const double* __restrict__ logq2, double* __restrict__ out,
                                  int64_t n) {
    const int64_t t = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
    if (t >= n * k) return;
    const int64_t e = t / k;
    const int64_t c = per_point ? cols[e] : cols[t % k];
    const pdf::Point p = pdf::locate(g, x[e], q2[e], logx[e], logq2[e]);
    out[t] = pdf::interpolate(g, p, c);
}
}  // namespace

int pdf_logbicubic_cuda(const pdf::Grid& g, const int64_t* cols, int64_t k, bool per_point,
                        const double* x, const double* q2, const double* logx,
                        const double* logq2, double* out, int64_t n, void* stream) {
    if (n == 0 || k == 0) return 0;
    const DeviceOf on(x);
    if (on.status() != cudaSuccess) return int(on.status());
    const int64_t threads = n * k;
    logbicubic_kernel<<<unsigned((threads + kThreads - 1) / kThreads), kThreads, 0,
                        static_cast<cudaStream_t>(stream)>>>(g, cols, k, per_point, x, q2,
                                                             logx, logq2, out, n);
    return int(cudaGetLastError());
}

}  // namespace madnis
