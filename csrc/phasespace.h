// Batched phase-space mappings over contiguous buffers (no torch, no Python).
//
// r: (n, dims) points of the unit hypercube; momenta: (n, n_final + 2, 4); weight: (n,);
// x12: (n, 2) momentum fractions (ones for lepton beams). Outside points get weight 0.
#pragma once

#include <cstdint>

#include "phasespace_math.h"

namespace madnis {

// CPU. Return the number of points outside the physical region (weight 0).
int64_t ps_channel_forward_cpu(const ps::Program& p, const double* r, double* momenta,
                               double* weight, double* x12, int64_t n, int nthreads);
int64_t ps_channel_inverse_cpu(const ps::Program& p, const double* momenta, double* r,
                               double* weight, int64_t n, int nthreads);
int64_t ps_rambo_forward_cpu(const ps::RamboConfig& cfg, const double* r, double* momenta,
                             double* weight, double* x12, int64_t n, int nthreads);

#ifdef MADNIS_WITH_CUDA
// CUDA: every pointer (the program's tables and the masses included) is a device
// pointer; `stream` is a cudaStream_t. Return a CUDA error code (0 on success).
int ps_channel_forward_cuda(const ps::Program& p, const double* r, double* momenta,
                            double* weight, double* x12, int64_t n, void* stream);
int ps_channel_inverse_cuda(const ps::Program& p, const double* momenta, double* r,
                            double* weight, int64_t n, void* stream);
int ps_rambo_forward_cuda(const ps::RamboConfig& cfg, const double* r, double* momenta,
                          double* weight, double* x12, int64_t n, void* stream);
#endif

}  // namespace madnis
