// Batched calls of an external matrix element through a resolved function pointer, with
// the ABI of MadGraph 5's standalone Fortran output (processes/common/madnis_process.h):
// every argument by reference, momenta p[npdg][4] row-major.
//
// The loop runs on one thread on purpose: MadGraph's Fortran keeps its state in COMMON
// blocks, so parallelism is across processes (Dask workers), never threads.
#pragma once

#include <cstdint>

namespace madnis {

using SMatrixHel = void (*)(const int* pdgs, const int* procid, const int* npdg,
                            const double* p, const double* alphas, const double* scale2,
                            const int* nhel, double* ans);
using Amp2 = void (*)(const int* pdgs, const int* procid, const int* npdg, const double* p,
                      const double* alphas, const double* scale2, double* amp2, int* namp2);

using SMatrixAmp2 = void (*)(const int* pdgs, const int* procid, const int* npdg,
                             const double* p, const double* alphas, const double* scale2,
                             double* ans, double* amp2, int* namp2);

// The row length of per-diagram |M_i|^2 a library without madnis_max_amp2_ may write
// (MADNIS_MAX_AMP2 of processes/common/madnis_process.h); a library that exports it says
// its own (the most diagrams of any of its subprocesses).
constexpr int kMaxAmp2 = 64;

// |M|^2 of n events; alphas and scale2 have n entries (or one, broadcast when
// per_event is false). Returns -1, or the index of the first event the library left
// untouched (no subprocess matches the PDG list).
int64_t me_smatrixhel_batch(SMatrixHel f, const int* pdgs, int npdg, int procid,
                            const double* momenta, const double* alphas,
                            const double* scale2, bool per_event, int nhel, double* out,
                            int64_t n);

// Per-diagram |M_i|^2 into out (n, width), width at least the library's row length;
// returns the number of diagrams, or -1 when the library wrote none (no subprocess
// matches), -2 when the count changed between events, -3 when it exceeds width (a
// library that wrote past the row it was given).
int me_amp2_batch(Amp2 f, const int* pdgs, int npdg, int procid, const double* momenta,
                  const double* alphas, const double* scale2, bool per_event, double* out,
                  int width, int64_t n);

// |M|^2 into ans (n,) and the per-diagram |M_i|^2 into amp2 (n, width) from one call
// per event (madnis_smatrix_amp2_, the helicity sum done once); returns as me_amp2_batch.
int me_smatrix_amp2_batch(SMatrixAmp2 f, const int* pdgs, int npdg, int procid,
                          const double* momenta, const double* alphas, const double* scale2,
                          bool per_event, double* ans, double* amp2, int width, int64_t n);

}  // namespace madnis
