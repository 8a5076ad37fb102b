/* Built-in process zprime: q q~ -> photon, Z or Z' -> e+ e- at tree level, q = u c d s.
 *
 * The multi-channel showcase of MadNIS (Heimel et al., arXiv:2212.06172): Drell-Yan with
 * an extra narrow neutral resonance, so that the photon, Z and Z' peaks each want their
 * own channel. The Z' is sequential-SM-like: it couples to every fermion as the Z does,
 * scaled by kappa_q (quarks) and kappa_l (leptons),
 *   g^f_{Z',L/R} = kappa_f g^f_{Z,L/R},  g^f_L = e/(sw cw) (T3_f - Q_f sw2),
 *   g^f_R = -e/(sw cw) Q_f sw2,
 * and is read from processes/zprime/param_card.dat, the SM card plus
 *   BLOCK MASS   32  M_Z'   (default 400 GeV)
 *   DECAY        32  W_Z'   (default 0.5 GeV)
 *   BLOCK ZPRIME  1  kappa_q (default 1),  2  kappa_l (default 1)
 * The defaults are the values of the MadNIS Drell-Yan Z' experiment (madgraph-ml/madnis-tf,
 * experiments/lhc/drell-yan/fudge_integrand.py: MZP = 400 GeV, WZP = 0.5 GeV, Z'
 * couplings equal to the Z ones). The width is an input, not derived: with kappa = 1 the
 * tree-level partial widths into SM fermions (t t~ included) add up to 9.7 GeV at
 * 400 GeV; the narrow 0.5 GeV peak is deliberate, a sharp structure far from the Z that
 * a single-channel sampler misses.
 * With kappa_q kappa_l = 0 the process is exactly drell_yan.
 *
 * Everything else as drell_yan.c: the G_mu scheme of processes/common/sm.c, fixed-width
 * Breit-Wigners 1/(s - M^2 + i M W) for Z and Z' at every s, photon 1/s, massless d u s c
 * and e, unitary-gauge k^mu k^nu terms vanishing between massless currents.
 *
 * Subprocesses (PDG lists, incoming first; final state e+ then e-): [q, q~, -11, 11] for
 * q = 2, 4, 1, 3, then the mirrored [q~, q, -11, 11] in the same flavour order.
 * Diagrams: 1 = photon, 2 = Z, 3 = Z'; madnis_amp2_ returns one entry each.
 *
 * Amplitude, chiralities i (quark line) and j (lepton line):
 *   A_ij = e^2 Q_q Q_e / s + g^q_i g^e_j [1/(s - MZ^2 + i MZ WZ)
 *                                          + kappa_q kappa_l / (s - MZ'^2 + i MZ' WZ')],
 *   |M_ij|^2 = 4 |A_ij|^2 u'^2 (i = j),   4 |A_ij|^2 t'^2 (i != j),
 * with t' = (p_q - p_e-)^2, u' = (p_q - p_e+)^2, and
 *   |M|^2 = N_c / (4 N_c^2) sum_ij |M_ij|^2.
 * madnis_amp2_ gives the same expression with only one diagram's term in A_ij.
 *
 * nhel = -1 sums the helicities; nhel in 1..16 is MadGraph's helicity index (particle 4
 * fastest, -1 before +1, physical helicities) and returns that helicity's |M|^2 divided
 * by IDEN = 36, as MadGraph's M0_SMATRIXHEL does; other values sum as -1.
 * alphas and scale2 are accepted and unused (no QCD vertex).
 */
#include "madnis_process.h"

#include <math.h>
#include <stdio.h>

#define N_EXTERNAL 4
#define N_DIAGRAMS 3
#define N_SUBPROCESSES 8
#define N_COLOURS 3.0
#define IDEN 36.0 /* 2 x 2 spins times 3 x 3 colours of the incoming partons */

typedef struct {
    int ok; /* initialise_ read a valid card */
    madnis_sm_params sm;
    double Q[5], gL[5], gR[5]; /* photon and Z couplings by |PDG| 1..4, and [0] = e- */
    double MZP, WZP, kappa_q, kappa_l;
} zp_params;

static zp_params P; /* filled by initialise_, read-only afterwards */
static int param_log = 1;

typedef struct {
    int pdgs[N_EXTERNAL];
    int f_in, fbar_in, fbar_out, f_out; /* momentum indices */
    int quark;                          /* |PDG| of the quark */
} zp_subprocess;

static const zp_subprocess SUBPROCESSES[N_SUBPROCESSES] = {
    {{2, -2, -11, 11}, 0, 1, 2, 3, 2},  {{4, -4, -11, 11}, 0, 1, 2, 3, 4},
    {{1, -1, -11, 11}, 0, 1, 2, 3, 1},  {{3, -3, -11, 11}, 0, 1, 2, 3, 3},
    {{-2, 2, -11, 11}, 1, 0, 2, 3, 2},  {{-4, 4, -11, 11}, 1, 0, 2, 3, 4},
    {{-1, 1, -11, 11}, 1, 0, 2, 3, 1},  {{-3, 3, -11, 11}, 1, 0, 2, 3, 3},
};

static void set_couplings(zp_params* par) {
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

static int read_zprime(const madnis_slha* card, zp_params* par, char* err, size_t errlen) {
    if (!madnis_slha_get(card, "MASS", 32, &par->MZP)) {
        snprintf(err, errlen, "param_card: missing entry 32 of BLOCK MASS (the Z' mass MZP)");
        return 1;
    }
    if (!madnis_slha_width(card, 32, &par->WZP)) {
        snprintf(err, errlen, "param_card: missing DECAY 32 (the Z' width WZP)");
        return 1;
    }
    if (!madnis_slha_get(card, "ZPRIME", 1, &par->kappa_q)) {
        snprintf(err, errlen, "param_card: missing entry 1 of BLOCK ZPRIME (kappa_q, the "
                 "Z' quark couplings in units of the Z ones)");
        return 1;
    }
    if (!madnis_slha_get(card, "ZPRIME", 2, &par->kappa_l)) {
        snprintf(err, errlen, "param_card: missing entry 2 of BLOCK ZPRIME (kappa_l, the "
                 "Z' lepton couplings in units of the Z ones)");
        return 1;
    }
    if (!(par->MZP > 0 && par->WZP >= 0)) {
        snprintf(err, errlen, "param_card: the Z' needs MASS 32 > 0 and DECAY 32 >= 0, got "
                 "%g and %g", par->MZP, par->WZP);
        return 1;
    }
    return 0;
}

void setparamlog_(const int* flag) {
    /* MadGraph writes param.log when the flag is set; the built-ins never write files. */
    param_log = flag != NULL ? *flag : 0;
}

void initialise_(const char* path, size_t len) {
    char file[1024], err[1024];
    zp_params par = {0};
    madnis_fortran_string(path, len, file, sizeof file);
    madnis_slha* card = madnis_slha_read(file, err, sizeof err);
    if (card == NULL || madnis_sm_from_slha(card, &par.sm, err, sizeof err) != 0 ||
        read_zprime(card, &par, err, sizeof err) != 0) {
        fprintf(stderr, "zprime: %s\n", err);
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

static const zp_subprocess* find_subprocess(const int* pdgs, const int* procid,
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
static double chiral_sum(const zp_subprocess* sp, const double* p, int nhel, int only) {
    const double* pa = p + 4 * sp->f_in;
    const double* pb = p + 4 * sp->fbar_in;
    double pab[4];
    for (int mu = 0; mu < 4; ++mu) pab[mu] = pa[mu] + pb[mu];
    const double s = dot(pab, pab);
    const double t = -2.0 * dot(pa, p + 4 * sp->f_out);
    const double u = -2.0 * dot(pa, p + 4 * sp->fbar_out);

    /* propagators: photon 1/s, Z 1/(s - MZ^2 + i MZ WZ), Z' likewise */
    const double mz2 = P.sm.MZ * P.sm.MZ, mzw = P.sm.MZ * P.sm.WZ;
    const double dz = (s - mz2) * (s - mz2) + mzw * mzw;
    const double mp2 = P.MZP * P.MZP, mpw = P.MZP * P.WZP;
    const double dp = (s - mp2) * (s - mp2) + mpw * mpw;
    const double prop_re[N_DIAGRAMS] = {1.0 / s, (s - mz2) / dz, (s - mp2) / dp};
    const double prop_im[N_DIAGRAMS] = {0.0, -mzw / dz, -mpw / dp};

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
            const double c[N_DIAGRAMS] = {P.Q[q] * P.Q[0], gq[i] * gl[j],
                                          P.kappa_q * P.kappa_l * gq[i] * gl[j]};
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
    const zp_subprocess* sp = find_subprocess(pdgs, procid, npdg);
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
    const zp_subprocess* sp = find_subprocess(pdgs, procid, npdg);
    if (namp2 == NULL) return;
    if (sp == NULL) {
        *namp2 = 0;
        return;
    }
    for (int d = 0; d < N_DIAGRAMS; ++d)
        amp2[d] = P.ok ? chiral_sum(sp, p, -1, d) / IDEN : NAN;
    *namp2 = N_DIAGRAMS;
}
