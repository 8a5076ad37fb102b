/* Neutral-current f f~ -> photon, Z (, Z') -> f' f'~ at tree level with massless fermions:
 * the amplitude shared by the built-ins ee_mumu, drell_yan and zprime (neutral_current.c).
 * It defines no entry point of the process ABI; each process keeps its own, calling these.
 *
 * Evaluated as MadGraph does with the default `sm` model: the G_mu scheme of sm.c, a
 * photon propagator 1/s, fixed-width Breit-Wigners 1/(s - M^2 + i M W) for the Z (and Z')
 * at every s, and unitary-gauge k^mu k^nu / M^2 terms, which vanish between massless
 * fermion currents.
 *
 * Amplitude. With f the incoming fermion, f' the outgoing one, the vector couplings
 * -i gamma^mu (e Q_f) for the photon and -i gamma^mu (g^f_L P_L + g^f_R P_R) for the Z,
 *   g^f_L = e/(sw cw) (T3_f - Q_f sw2),   g^f_R = -e/(sw cw) Q_f sw2,
 * and a Z' coupling as the Z scaled by kappa_f, the helicity amplitude of chiralities i
 * (f line) and j (f' line) is
 *   A_ij = e^2 Q_f Q_f' / s + g^f_i g^f'_j [1/(s - MZ^2 + i MZ WZ)
 *                                            + kappa_f kappa_f' / (s - MZ'^2 + i MZ' WZ')],
 * and, with t' = (p_f - p_f')^2 and u' = (p_f - p_fbar')^2,
 *   |M_ij|^2 = 4 |A_ij|^2 u'^2 (i = j),   4 |A_ij|^2 t'^2 (i != j)
 * (e.g. |M_LL|^2 = |A_LL|^2 s^2 (1 + cos theta)^2, theta between f and f'). Only the
 * helicities with opposite helicity partners on each line contribute, and
 *   |M|^2 = colours / IDEN sum_ij |M_ij|^2
 * (colours = N_c for a quark line in the initial state, IDEN = initial spins x colours).
 * Diagrams, in MadGraph's order: 1 = photon, 2 = Z, 3 = Z'; the per-diagram |M_d|^2 is the
 * same expression with only diagram d's term in A_ij.
 *
 * nhel = -1 sums the helicities; nhel in 1..16 is MadGraph's helicity index (particle 4
 * fastest, -1 before +1, physical helicities) and gives that helicity's |M|^2 divided by
 * IDEN, as MadGraph's M0_SMATRIXHEL does; other values sum as -1.
 */
#ifndef MADNIS_NEUTRAL_CURRENT_H
#define MADNIS_NEUTRAL_CURRENT_H

#include "madnis_process.h"

#define NC_N_EXTERNAL 4
#define NC_N_FLAVOURS 5 /* coupling index: 0 = charged lepton, 1..4 = d u s c (|PDG|) */
#define NC_MAX_BOSONS 3

typedef struct {
    int ok; /* a valid card was read; otherwise |M|^2 is NaN */
    double MZ, WZ, MZP, WZP;
    double Q[NC_N_FLAVOURS], gL[NC_N_FLAVOURS], gR[NC_N_FLAVOURS]; /* e Q_f and Z g^f_L/R */
    double kappa[NC_N_FLAVOURS]; /* Z' couplings in units of the Z ones */
} nc_params;

typedef struct {
    int pdgs[NC_N_EXTERNAL];            /* incoming first */
    int f_in, fbar_in, fbar_out, f_out; /* momentum indices */
    int flav_in, flav_out;              /* coupling indices of the f and f' lines */
} nc_subprocess;

typedef struct {
    const nc_subprocess* subprocesses;
    int nsubprocesses;
    int nbosons;    /* diagrams: 2 = photon and Z, 3 = photon, Z and Z' */
    double colours; /* colour sum of the initial line: N_c for quarks, 1 for leptons */
    double iden;    /* MadGraph's IDEN: spins times colours of the incoming particles */
} nc_process;

/* Photon and Z couplings and the Z mass and width from the SM parameters, ok = 1 (a Z'
 * process sets MZP, WZP and kappa afterwards; kappa defaults to 1). */
void nc_params_from_sm(nc_params* par, const madnis_sm_params* sm);

/* The subprocess whose PDG list equals pdgs (procid <= 0 or 1: MadGraph numbers the
 * processes of one `generate` line 1), or NULL. */
const nc_subprocess* nc_find_subprocess(const nc_process* proc, const int* pdgs,
                                        const int* procid, const int* npdg);

/* Sums |M_ij|^2 over the chiralities (or one helicity index nhel), with diagram `only`
 * (0-based) alone, or all diagrams when only < 0; colour-summed, not averaged. */
double nc_chiral_sum(const nc_process* proc, const nc_params* par, const nc_subprocess* sp,
                     const double* p, int nhel, int only);

/* smatrixhel_ and madnis_amp2_ of the process (madnis_process.h), alphas and scale2
 * left out: no QCD vertex. */
void nc_smatrixhel(const nc_process* proc, const nc_params* par, const int* pdgs,
                   const int* procid, const int* npdg, const double* p, const int* nhel,
                   double* ans);
void nc_amp2(const nc_process* proc, const nc_params* par, const int* pdgs,
             const int* procid, const int* npdg, const double* p, double* amp2, int* namp2);


/* The ABI's two evaluation entry points of a neutral-current process with the static
 * nc_process `proc` and its nc_params `par` (alpha_s and scale2 do not enter). */
#define MADNIS_NC_ENTRY_POINTS(proc, par)                                                    \
    void smatrixhel_(const int* pdgs, const int* procid, const int* npdg, const double* p,   \
                     const double* alphas, const double* scale2, const int* nhel,            \
                     double* ans) {                                                          \
        (void)alphas;                                                                        \
        (void)scale2;                                                                        \
        nc_smatrixhel(&(proc), &(par), pdgs, procid, npdg, p, nhel, ans);                    \
    }                                                                                        \
    void madnis_amp2_(const int* pdgs, const int* procid, const int* npdg, const double* p,  \
                      const double* alphas, const double* scale2, double* amp2,              \
                      int* namp2) {                                                          \
        (void)alphas;                                                                        \
        (void)scale2;                                                                        \
        nc_amp2(&(proc), &(par), pdgs, procid, npdg, p, amp2, namp2);                        \
    }

/* ---- Device ABI (madnis_process.h, "Device extension"), built with CUDA only ---------- */
#ifdef MADNIS_WITH_CUDA
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif
/* Launches the kernel of subprocess sp on `stream` (a cudaStream_t, NULL: the default
 * stream) for n events whose momenta p (n, 4, 4) are device pointers: ans (n,) gets
 * |M|^2 and, when amp2 is not NULL, amp2 (n, nbosons) the per-diagram |M_d|^2. Returns
 * 0 or the cudaError_t of the launch. Asynchronous: nothing waits for the kernel. */
int nc_smatrix_cuda(const nc_process* proc, const nc_params* par, const nc_subprocess* sp,
                    const double* p, double* ans, double* amp2, int64_t n, void* stream);
#ifdef __cplusplus
}
#endif

/* The device entry points of a neutral-current process (madnis_process.h). */
#define MADNIS_NC_DEVICE_ENTRY_POINTS(proc, par)                                             \
    int madnis_device_abi_version_(void) { return MADNIS_DEVICE_ABI_VERSION; }               \
    int madnis_smatrix_device_(const int* pdgs, const int* procid, const int* npdg,          \
                               const double* p, const double* alphas, const double* scale2,  \
                               const int64_t* n, double* ans, double* amp2, int* namp2,      \
                               void* stream) {                                               \
        (void)alphas;                                                                        \
        (void)scale2;                                                                        \
        const nc_subprocess* sp = nc_find_subprocess(&(proc), pdgs, procid, npdg);           \
        if (sp == NULL) return MADNIS_DEVICE_NO_SUBPROCESS;                                  \
        if (!(par).ok) return MADNIS_DEVICE_NOT_INITIALISED;                                 \
        const int capacity = namp2 != NULL ? *namp2 : 0;                                     \
        if (namp2 != NULL) *namp2 = (proc).nbosons;                                          \
        if (amp2 != NULL && capacity != (proc).nbosons) return MADNIS_DEVICE_AMP2_SIZE;      \
        if (*n <= 0) return 0;                                                               \
        return nc_smatrix_cuda(&(proc), &(par), sp, p, ans, amp2, *n, stream);               \
    }
#endif

#endif
