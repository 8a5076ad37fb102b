/* The per-event maths of the neutral-current amplitude (neutral_current.h), shared by the
 * C library (neutral_current.c) and its CUDA kernel (neutral_current_cuda.cu): one source,
 * so that the CPU tests of the built-ins validate what the GPU threads compute.
 *
 * Plain C99 that nvcc also compiles as C++; NC_HD marks the functions
 * __host__ __device__ under nvcc and static inline elsewhere.
 */
#ifndef MADNIS_NEUTRAL_CURRENT_MATH_H
#define MADNIS_NEUTRAL_CURRENT_MATH_H

#include "neutral_current.h"

#ifdef __CUDACC__
#define NC_HD static __host__ __device__ __forceinline__
#else
#define NC_HD static inline
#endif

NC_HD double nc_dot(const double* a, const double* b) {
    return a[0] * b[0] - a[1] * b[1] - a[2] * b[2] - a[3] * b[3];
}

/* 1/(s - M^2 + i M W) */
NC_HD void nc_breit_wigner(double s, double m, double w, double* re, double* im) {
    const double m2 = m * m, mw = m * w;
    const double d = (s - m2) * (s - m2) + mw * mw;
    *re = (s - m2) / d;
    *im = -mw / d;
}

/* nc_chiral_sum of neutral_current.h with the process's two numbers passed by value
 * (nbosons: diagrams; colours: colour sum of the initial line). */
NC_HD double nc_chiral_sum_math(int nbosons, double colours, const nc_params* par,
                                const nc_subprocess* sp, const double* p, int nhel,
                                int only) {
    const double* pa = p + 4 * sp->f_in;
    const double* pb = p + 4 * sp->fbar_in;
    double pab[4];
    for (int mu = 0; mu < 4; ++mu) pab[mu] = pa[mu] + pb[mu];
    const double s = nc_dot(pab, pab);
    const double t = -2.0 * nc_dot(pa, p + 4 * sp->f_out);
    const double u = -2.0 * nc_dot(pa, p + 4 * sp->fbar_out);

    /* propagators by diagram: photon 1/s, then the Z and the Z' */
    const int nb = nbosons;
    double prop_re[NC_MAX_BOSONS] = {1.0 / s, 0.0, 0.0};
    double prop_im[NC_MAX_BOSONS] = {0.0, 0.0, 0.0};
    nc_breit_wigner(s, par->MZ, par->WZ, &prop_re[1], &prop_im[1]);
    if (nb > 2) nc_breit_wigner(s, par->MZP, par->WZP, &prop_re[2], &prop_im[2]);

    const int fi = sp->flav_in, fo = sp->flav_out;
    const double gi[2] = {par->gL[fi], par->gR[fi]}, go[2] = {par->gL[fo], par->gR[fo]};

    int i_lo = 0, i_hi = 1, j_lo = 0, j_hi = 1;
    if (nhel >= 1 && nhel <= 1 << NC_N_EXTERNAL) {
        int h[NC_N_EXTERNAL];
        for (int k = 0; k < NC_N_EXTERNAL; ++k)
            h[k] = ((nhel - 1) >> (NC_N_EXTERNAL - 1 - k)) & 1 ? 1 : -1;
        if (h[sp->fbar_in] != -h[sp->f_in] || h[sp->fbar_out] != -h[sp->f_out]) return 0.0;
        i_lo = i_hi = h[sp->f_in] < 0 ? 0 : 1;
        j_lo = j_hi = h[sp->f_out] < 0 ? 0 : 1;
    }
    double sum = 0.0;
    for (int i = i_lo; i <= i_hi; ++i)
        for (int j = j_lo; j <= j_hi; ++j) {
            double c[NC_MAX_BOSONS] = {par->Q[fi] * par->Q[fo], gi[i] * go[j], 0.0};
            if (nb > 2) c[2] = par->kappa[fi] * par->kappa[fo] * gi[i] * go[j];
            double re = 0.0, im = 0.0;
            for (int d = 0; d < nb; ++d) {
                if (only >= 0 && d != only) continue;
                re += c[d] * prop_re[d];
                im += c[d] * prop_im[d];
            }
            const double k = i == j ? u : t;
            sum += 4.0 * (re * re + im * im) * k * k;
        }
    return colours * sum;
}

#endif
