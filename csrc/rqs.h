// Batched RQS kernels over contiguous buffers (no torch, no Python).
//
// x: (n,) inputs in [0, 1]; params: (n, 3K+1) raw network outputs in the layout of
// rqs_math.h; outputs y, logdet: (n,). The backward writes grad_x (n,) and
// grad_params (n, 3K+1) from the upstream gradients grad_y and grad_logdet.
#pragma once

#include <cstdint>

#include "rqs_math.h"

namespace madnis {

template <typename T>
SplineConfig<T> make_config(int bins, double min_width, double min_height,
                            double min_derivative);

// Throws std::invalid_argument naming the first bad spline setting (register_rqs.cpp;
// the bindings of the spline and of the fused coupling block both check with it).
void check_spline_settings(int bins, double min_width, double min_height,
                           double min_derivative);

// CPU. Returns -1 on success, else the index of the first input outside [0, 1] (or NaN).
// `vectorized` selects the lane-blocked loops (rqs_lanes.h); false runs the per-event
// code that the CUDA kernels use, so tests can check that code on the CPU too.
template <typename T>
int64_t rqs_forward_cpu(const T* x, const T* params, T* y, T* logdet, int64_t n,
                        const SplineConfig<T>& cfg, bool inverse, int nthreads,
                        bool vectorized = true);

template <typename T>
int64_t rqs_backward_cpu(const T* x, const T* params, const T* grad_y, const T* grad_logdet,
                         T* grad_x, T* grad_params, int64_t n, const SplineConfig<T>& cfg,
                         bool inverse, int nthreads, bool vectorized = true);

#ifdef MADNIS_WITH_CUDA
// CUDA: pointers are device pointers, `stream` a cudaStream_t. Returns a CUDA error
// code (0 on success). Inputs are clamped to [0, 1]; range checks happen in Python.
template <typename T>
int rqs_forward_cuda(const T* x, const T* params, T* y, T* logdet, int64_t n,
                     const SplineConfig<T>& cfg, bool inverse, void* stream);

template <typename T>
int rqs_backward_cuda(const T* x, const T* params, const T* grad_y, const T* grad_logdet,
                      T* grad_x, T* grad_params, int64_t n, const SplineConfig<T>& cfg,
                      bool inverse, void* stream);

int cuda_device_count();
#endif

}  // namespace madnis
