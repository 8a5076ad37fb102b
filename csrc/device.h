// Qualifiers for functions shared by the CPU loops and the CUDA kernels.
#pragma once

#ifdef __CUDACC__
#define MADNIS_HD __host__ __device__ __forceinline__
#elif defined(__GNUC__)
// always_inline: the CPU loops are compiled per ISA (target_clones), and only code
// inlined into them gets the wider vectors.
#define MADNIS_HD inline __attribute__((always_inline))
#else
#define MADNIS_HD inline
#endif
