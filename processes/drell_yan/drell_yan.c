/* Built-in process drell_yan: q q~ -> photon or Z -> e+ e- at tree level, q = u c d s.
 *
 * What `generate p p > e+ e-` gives in MadGraph 5 with the default `sm` model (massless
 * d u s c and e, diagonal CKM), evaluated exactly as MadGraph does: the G_mu scheme of
 * processes/common/sm.c, a fixed-width Breit-Wigner 1/(s - MZ^2 + i MZ WZ) for the Z at
 * every s, a photon propagator 1/s, and the unitary-gauge k^mu k^nu / MZ^2 term, which
 * vanishes between massless fermion currents.
 *
 * Subprocesses (PDG lists, incoming first; final state e+ then e- as MadGraph orders it):
 *   [q, q~, -11, 11] for q = 2, 4, 1, 3, then the mirrored [q~, q, -11, 11] in the same
 *   flavour order. (A MadGraph standalone library lists only the q q~ orientation and
 *   leaves the mirror to the caller; here both are built in.)
 * Diagrams: 1 = photon, 2 = Z (MadGraph's order); madnis_amp2_ returns one entry each.
 *
 * Amplitude. With f the incoming quark, f' the outgoing electron, the vector couplings
 * -i gamma^mu (e Q_f) for the photon and -i gamma^mu (g^f_L P_L + g^f_R P_R) for the Z,
 *   g^f_L = e/(sw cw) (T3_f - Q_f sw2),   g^f_R = -e/(sw cw) Q_f sw2,
 * the helicity amplitude of chiralities i (quark line) and j (lepton line) is
 *   A_ij = e^2 Q_f Q_f' / s + g^f_i g^f'_j / (s - MZ^2 + i MZ WZ),
 * and, all fermions massless, with t' = (p_f - p_f')^2 and u' = (p_f - p_fbar')^2,
 *   |M_ij|^2 = 4 |A_ij|^2 u'^2 (i = j),   4 |A_ij|^2 t'^2 (i != j)
 * (e.g. |M_LL|^2 = |A_LL|^2 s^2 (1 + cos theta)^2, theta between quark and e-). Only the
 * helicities with opposite helicity partners on each line contribute. Then
 *   |M|^2 = N_c / (4 N_c^2) sum_ij |M_ij|^2    (spins averaged, colours summed/averaged).
 * madnis_amp2_ gives the same expression with only one diagram's term in A_ij.
 *
 * nhel = -1 sums the helicities; nhel in 1..16 is MadGraph's helicity index (particle 4
 * fastest, -1 before +1, physical helicities) and returns that helicity's |M|^2 divided
 * by MadGraph's IDEN = 36, as M0_SMATRIXHEL does; other values sum as -1.
 * alphas and scale2 are accepted and unused (no QCD vertex).
 */
#include "madnis_process.h"

#include <math.h>
#include <stdio.h>

#define N_EXTERNAL 4
#define N_DIAGRAMS 2
#define N_SUBPROCESSES 8
#define N_COLOURS 3.0
#define IDEN 36.0 /* 2 x 2 spins times 3 x 3 colours of the incoming partons */

typedef struct {
    int ok; /* initialise_ read a valid card */
    madnis_sm_params sm;
    double Q[5], gL[5], gR[5]; /* photon and Z couplings by |PDG| 1..4, and [0] = e- */
} dy_params;

static dy_params P; /* filled by initialise_, read-only afterwards */
static int param_log = 1;

typedef struct {
    int pdgs[N_EXTERNAL];
    int f_in, fbar_in, fbar_out, f_out; /* momentum indices */
    int quark;                          /* |PDG| of the quark */
} dy_subprocess;

static const dy_subprocess SUBPROCESSES[N_SUBPROCESSES] = {
    {{2, -2, -11, 11}, 0, 1, 2, 3, 2},  {{4, -4, -11, 11}, 0, 1, 2, 3, 4},
    {{1, -1, -11, 11}, 0, 1, 2, 3, 1},  {{3, -3, -11, 11}, 0, 1, 2, 3, 3},
    {{-2, 2, -11, 11}, 1, 0, 2, 3, 2},  {{-4, 4, -11, 11}, 1, 0, 2, 3, 4},
    {{-1, 1, -11, 11}, 1, 0, 2, 3, 1},  {{-3, 3, -11, 11}, 1, 0, 2, 3, 3},
};

static void set_couplings(dy_params* par) {
    static const double Q[5] = {-1.0, -1.0 / 3.0, 2.0 / 3.0, -1.0 / 3.0, 2.0 / 3.0};
    static const double T3[5] = {-0.5, -0.5, 0.5, -0.5, 0.5};
    const madnis_sm_params* sm = &par->sm;
    const double gz = sm->ee / (sm->sw * sm->cw);
    for (int f = 0; f < 5; ++f) {
        par->Q[f] = sm->ee * Q[f];
        par->gL[f] = gz * (T3[f] - Q[f] * sm->sw2);
        par->gR[f] = -gz * Q[f] * sm->sw2;
    }
}

void setparamlog_(const int* flag) {
    /* MadGraph writes param.log when the flag is set; the built-ins never write files. */
    param_log = flag != NULL ? *flag : 0;
}

void initialise_(const char* path, size_t len) {
    char file[1024], err[1024];
    dy_params par = {0};
    madnis_fortran_string(path, len, file, sizeof file);
    madnis_slha* card = madnis_slha_read(file, err, sizeof err);
    if (card == NULL || madnis_sm_from_slha(card, &par.sm, err, sizeof err) != 0) {
        fprintf(stderr, "drell_yan: %s\n", err);
        madnis_slha_free(card);
        P.ok = 0; /* smatrixhel_ returns NaN until a valid card is read */
        return;
    }
    madnis_slha_free(card);
    set_couplings(&par);
    par.ok = 1;
    P = par;
}

int madnis_abi_version_(void) { return MADNIS_PROCESS_ABI_VERSION; }

static const dy_subprocess* find_subprocess(const int* pdgs, const int* procid,
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
 * (0-based) alone, or all diagrams when only < 0; colour-summed, not averaged. */
static double chiral_sum(const dy_subprocess* sp, const double* p, int nhel, int only) {
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

    const int q = sp->quark;
    const double gq[2] = {P.gL[q], P.gR[q]}, gl[2] = {P.gL[0], P.gR[0]};

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
            const double c[N_DIAGRAMS] = {P.Q[q] * P.Q[0], gq[i] * gl[j]};
            double re = 0.0, im = 0.0;
            for (int d = 0; d < N_DIAGRAMS; ++d) {
                if (only >= 0 && d != only) continue;
                re += c[d] * prop_re[d];
                im += c[d] * prop_im[d];
            }
            const double k = i == j ? u : t;
            sum += 4.0 * (re * re + im * im) * k * k;
        }
    return N_COLOURS * sum;
}

void smatrixhel_(const int* pdgs, const int* procid, const int* npdg, const double* p,
                 const double* alphas, const double* scale2, const int* nhel, double* ans) {
    (void)alphas;
    (void)scale2;
    const dy_subprocess* sp = find_subprocess(pdgs, procid, npdg);
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
    const dy_subprocess* sp = find_subprocess(pdgs, procid, npdg);
    if (namp2 == NULL) return;
    if (sp == NULL) {
        *namp2 = 0;
        return;
    }
    for (int d = 0; d < N_DIAGRAMS; ++d)
        amp2[d] = P.ok ? chiral_sum(sp, p, -1, d) / IDEN : NAN;
    *namp2 = N_DIAGRAMS;
}
