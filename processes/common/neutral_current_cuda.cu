// The CUDA kernel of the neutral-current processes: one thread per event, running the
// same nc_chiral_sum_math as the C library (neutral_current_math.h). Launched through
// nc_smatrix_cuda by a process's madnis_smatrix_device_ (neutral_current.h).
#include <cuda_runtime.h>

#include <cmath>
#include <cstdint>

#include "neutral_current_math.h"

namespace {

// Subprocess, parameters and the process's numbers are passed by value: they live in the
// kernel's parameter space, nothing is copied to device memory by hand.
__global__ void nc_kernel(nc_subprocess sp, nc_params par, int nbosons, double colours,
                          double iden, const double* __restrict__ p, double* __restrict__ ans,
                          double* __restrict__ amp2, int64_t n) {
    const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
    if (i >= n) return;
    const double* pi = p + 4 * NC_N_EXTERNAL * i;
    ans[i] = nc_chiral_sum_math(nbosons, colours, &par, &sp, pi, -1, -1) / iden;
    if (amp2 != nullptr)
        for (int d = 0; d < nbosons; ++d)
            amp2[i * nbosons + d] = nc_chiral_sum_math(nbosons, colours, &par, &sp, pi, -1, d) / iden;
}

}  // namespace

extern "C" int nc_smatrix_cuda(const nc_process* proc, const nc_params* par,
                               const nc_subprocess* sp, const double* p, double* ans,
                               double* amp2, int64_t n, void* stream) {
    // This library's CUDA runtime is its own (static): launch on the device that holds
    // the momenta (the caller's stream belongs to it), not on this runtime's device 0.
    cudaPointerAttributes attr{};
    cudaError_t err = cudaPointerGetAttributes(&attr, p);
    if (err != cudaSuccess) return static_cast<int>(err);
    int previous = 0;
    cudaGetDevice(&previous);
    if (attr.device != previous && (err = cudaSetDevice(attr.device)) != cudaSuccess)
        return static_cast<int>(err);
    constexpr int threads = 256;
    const int64_t blocks = (n + threads - 1) / threads;
    nc_kernel<<<static_cast<unsigned>(blocks), threads, 0, static_cast<cudaStream_t>(stream)>>>(
        *sp, *par, proc->nbosons, proc->colours, proc->iden, p, ans, amp2, n);
    err = cudaGetLastError();
    if (attr.device != previous) cudaSetDevice(previous);
    return static_cast<int>(err);
}
