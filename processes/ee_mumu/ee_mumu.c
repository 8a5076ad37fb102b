/* Built-in process ee_mumu: e+ e- -> photon or Z -> mu+ mu- at tree level.
 *
 * What `generate e+ e- > mu+ mu-` gives in MadGraph 5 with the default `sm` model
 * (massless e and mu), evaluated exactly as MadGraph does: the G_mu scheme of
 * processes/common/sm.c, a fixed-width Breit-Wigner 1/(s - MZ^2 + i MZ WZ) for the Z at
 * every s, a photon propagator 1/s, and the unitary-gauge k^mu k^nu / MZ^2 term, which
 * vanishes between massless fermion currents.
 *
 * Subprocesses (PDG lists, incoming first): [-11, 11, -13, 13], MadGraph's only one, and
 * the mirrored [11, -11, -13, 13] for an e- beam along +z (not in a MadGraph library;
 * process.toml lists only the first, so that nothing is counted twice).
 * Diagrams: 1 = photon, 2 = Z (MadGraph's order); madnis_amp2_ returns one entry each.
 *
 * Amplitude. With f the incoming e-, f' the outgoing mu-, the vector couplings
 * -i gamma^mu (e Q) for the photon and -i gamma^mu (g_L P_L + g_R P_R) for the Z,
 *   g_L = e/(sw cw) (T3 - Q sw2) = e/(sw cw) (-1/2 + sw2),   g_R = -e/(sw cw) Q sw2,
 * the helicity amplitude of chiralities i (electron line) and j (muon line) is
 *   A_ij = e^2 / s + g_i g_j / (s - MZ^2 + i MZ WZ),
 * and, all leptons massless, with t' = (p_e- - p_mu-)^2 and u' = (p_e- - p_mu+)^2,
 *   |M_ij|^2 = 4 |A_ij|^2 u'^2 (i = j),   4 |A_ij|^2 t'^2 (i != j)
 * (|M_LL|^2 = |A_LL|^2 s^2 (1 + cos theta)^2 with theta between e- and mu-). Only the
 * helicities with opposite helicity partners on each line contribute, and
 *   |M|^2 = 1/4 sum_ij |M_ij|^2    (initial spins averaged).
 * madnis_amp2_ gives the same expression with only one diagram's term in A_ij.
 *
 * nhel = -1 sums the helicities; nhel in 1..16 is MadGraph's helicity index (particle 4
 * fastest, -1 before +1, physical helicities) and returns that helicity's |M|^2 divided
 * by MadGraph's IDEN = 4, as M0_SMATRIXHEL does; other values sum as -1.
 * alphas and scale2 are accepted and unused.
 */
#include "madnis_process.h"

#include <math.h>
#include <stdio.h>

#define N_EXTERNAL 4
#define N_DIAGRAMS 2
#define N_SUBPROCESSES 2
#define IDEN 4.0 /* 2 x 2 spins of the incoming leptons */

typedef struct {
    int ok; /* initialise_ read a valid card */
    madnis_sm_params sm;
    double Q, gL, gR; /* photon and Z couplings of a charged lepton */
} ee_params;

static ee_params P; /* filled by initialise_, read-only afterwards */
static int param_log = 1;

typedef struct {
    int pdgs[N_EXTERNAL];
    int f_in, fbar_in, fbar_out, f_out; /* momentum indices */
} ee_subprocess;

static const ee_subprocess SUBPROCESSES[N_SUBPROCESSES] = {
    {{-11, 11, -13, 13}, 1, 0, 2, 3},
    {{11, -11, -13, 13}, 0, 1, 2, 3},
};

void setparamlog_(const int* flag) {
    /* MadGraph writes param.log when the flag is set; the built-ins never write files. */
    param_log = flag != NULL ? *flag : 0;
}

void initialise_(const char* path, size_t len) {
    char file[1024], err[1024];
    ee_params par = {0};
    madnis_fortran_string(path, len, file, sizeof file);
    madnis_slha* card = madnis_slha_read(file, err, sizeof err);
    if (card == NULL || madnis_sm_from_slha(card, &par.sm, err, sizeof err) != 0) {
        fprintf(stderr, "ee_mumu: %s\n", err);
        madnis_slha_free(card);
        P.ok = 0; /* smatrixhel_ returns NaN until a valid card is read */
        return;
    }
    madnis_slha_free(card);
    const double gz = par.sm.ee / (par.sm.sw * par.sm.cw);
    par.Q = -par.sm.ee;
    par.gL = gz * (-0.5 + par.sm.sw2);
    par.gR = gz * par.sm.sw2;
    par.ok = 1;
    P = par;
}

int madnis_abi_version_(void) { return MADNIS_PROCESS_ABI_VERSION; }

static const ee_subprocess* find_subprocess(const int* pdgs, const int* procid,
                                            const int* npdg) {
    if (pdgs == NULL || npdg == NULL || *npdg != N_EXTERNAL) return NULL;
    if (procid != NULL && *procid > 0 && *procid != 1) return NULL;
    for (int k = 0; k < N_SUBPROCESSES; ++k) {
        const int* q = SUBPROCESSES[k].pdgs;
        if (pdgs[0] == q[0] && pdgs[1] == q[1] && pdgs[2] == q[2] && pdgs[3] == q[3])
            return &SUBPROCESSES[k];
    }
    return NULL;
}

static double dot(const double* a, const double* b) {
    return a[0] * b[0] - a[1] * b[1] - a[2] * b[2] - a[3] * b[3];
}

/* Sums |M_ij|^2 over the chiralities (or one helicity index), with diagram `only`
 * (0-based) alone, or all diagrams when only < 0; not averaged. */
static double chiral_sum(const ee_subprocess* sp, const double* p, int nhel, int only) {
    const double* pa = p + 4 * sp->f_in;
    const double* pb = p + 4 * sp->fbar_in;
    double pab[4];
    for (int mu = 0; mu < 4; ++mu) pab[mu] = pa[mu] + pb[mu];
    const double s = dot(pab, pab);
    const double t = -2.0 * dot(pa, p + 4 * sp->f_out);
    const double u = -2.0 * dot(pa, p + 4 * sp->fbar_out);

    /* propagators: photon 1/s, Z 1/(s - MZ^2 + i MZ WZ) */
    const double mz2 = P.sm.MZ * P.sm.MZ, mzw = P.sm.MZ * P.sm.WZ;
    const double dz = (s - mz2) * (s - mz2) + mzw * mzw;
    const double prop_re[N_DIAGRAMS] = {1.0 / s, (s - mz2) / dz};
    const double prop_im[N_DIAGRAMS] = {0.0, -mzw / dz};
    const double g[2] = {P.gL, P.gR};

    int i_lo = 0, i_hi = 1, j_lo = 0, j_hi = 1;
    if (nhel >= 1 && nhel <= 16) {
        int h[N_EXTERNAL];
        for (int k = 0; k < N_EXTERNAL; ++k)
            h[k] = ((nhel - 1) >> (N_EXTERNAL - 1 - k)) & 1 ? 1 : -1;
        if (h[sp->fbar_in] != -h[sp->f_in] || h[sp->fbar_out] != -h[sp->f_out]) return 0.0;
        i_lo = i_hi = h[sp->f_in] < 0 ? 0 : 1;
        j_lo = j_hi = h[sp->f_out] < 0 ? 0 : 1;
    }
    double sum = 0.0;
    for (int i = i_lo; i <= i_hi; ++i)
        for (int j = j_lo; j <= j_hi; ++j) {
            const double c[N_DIAGRAMS] = {P.Q * P.Q, g[i] * g[j]};
            double re = 0.0, im = 0.0;
            for (int d = 0; d < N_DIAGRAMS; ++d) {
                if (only >= 0 && d != only) continue;
                re += c[d] * prop_re[d];
                im += c[d] * prop_im[d];
            }
            const double k = i == j ? u : t;
            sum += 4.0 * (re * re + im * im) * k * k;
        }
    return sum;
}

void smatrixhel_(const int* pdgs, const int* procid, const int* npdg, const double* p,
                 const double* alphas, const double* scale2, const int* nhel, double* ans) {
    (void)alphas;
    (void)scale2;
    const ee_subprocess* sp = find_subprocess(pdgs, procid, npdg);
    if (sp == NULL || ans == NULL) return;
    if (!P.ok) {
        *ans = NAN;
        return;
    }
    *ans = chiral_sum(sp, p, nhel != NULL ? *nhel : -1, -1) / IDEN;
}

void madnis_amp2_(const int* pdgs, const int* procid, const int* npdg, const double* p,
                  const double* alphas, const double* scale2, double* amp2, int* namp2) {
    (void)alphas;
    (void)scale2;
    const ee_subprocess* sp = find_subprocess(pdgs, procid, npdg);
    if (namp2 == NULL) return;
    if (sp == NULL) {
        *namp2 = 0;
        return;
    }
    for (int d = 0; d < N_DIAGRAMS; ++d)
        amp2[d] = P.ok ? chiral_sum(sp, p, -1, d) / IDEN : NAN;
    *namp2 = N_DIAGRAMS;
}
