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
 * Everything else as drell_yan.c and common/neutral_current.h: the G_mu scheme, fixed-width
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
 *   |M|^2 = N_c / (4 N_c^2) sum_ij |M_ij|^2.
 * nhel in 1..16 returns one helicity's |M|^2 divided by IDEN = 36, as MadGraph does.
 * alphas and scale2 are accepted and unused (no QCD vertex).
 */
#include "madnis_process.h"
#include "neutral_current.h"

#include <stdio.h>

/* coupling indices: the quark's |PDG|, and 0 for the electron */
static const nc_subprocess SUBPROCESSES[] = {
    {{2, -2, -11, 11}, 0, 1, 2, 3, 2, 0},  {{4, -4, -11, 11}, 0, 1, 2, 3, 4, 0},
    {{1, -1, -11, 11}, 0, 1, 2, 3, 1, 0},  {{3, -3, -11, 11}, 0, 1, 2, 3, 3, 0},
    {{-2, 2, -11, 11}, 1, 0, 2, 3, 2, 0},  {{-4, 4, -11, 11}, 1, 0, 2, 3, 4, 0},
    {{-1, 1, -11, 11}, 1, 0, 2, 3, 1, 0},  {{-3, 3, -11, 11}, 1, 0, 2, 3, 3, 0},
};

static const nc_process PROCESS = {
    SUBPROCESSES, sizeof SUBPROCESSES / sizeof SUBPROCESSES[0],
    3,    /* photon, Z, Z' */
    3.0,  /* N_c */
    36.0, /* IDEN: 2 x 2 spins times 3 x 3 colours of the incoming partons */
};

static nc_params P; /* filled by initialise_, read-only afterwards; NaN until then */

/* The Z' mass, width and couplings (kappa_l for the electron, kappa_q for the quarks). */
static int read_zprime(const madnis_slha* card, nc_params* par, char* err, size_t errlen) {
    double kappa_q, kappa_l;
    if (!madnis_slha_get(card, "MASS", 32, &par->MZP)) {
        snprintf(err, errlen, "param_card: missing entry 32 of BLOCK MASS (the Z' mass MZP)");
        return 1;
    }
    if (!madnis_slha_width(card, 32, &par->WZP)) {
        snprintf(err, errlen, "param_card: missing DECAY 32 (the Z' width WZP)");
        return 1;
    }
    if (!madnis_slha_get(card, "ZPRIME", 1, &kappa_q)) {
        snprintf(err, errlen, "param_card: missing entry 1 of BLOCK ZPRIME (kappa_q, the "
                 "Z' quark couplings in units of the Z ones)");
        return 1;
    }
    if (!madnis_slha_get(card, "ZPRIME", 2, &kappa_l)) {
        snprintf(err, errlen, "param_card: missing entry 2 of BLOCK ZPRIME (kappa_l, the "
                 "Z' lepton couplings in units of the Z ones)");
        return 1;
    }
    if (!(par->MZP > 0 && par->WZP >= 0)) {
        snprintf(err, errlen, "param_card: the Z' needs MASS 32 > 0 and DECAY 32 >= 0, got "
                 "%g and %g", par->MZP, par->WZP);
        return 1;
    }
    par->kappa[0] = kappa_l;
    for (int q = 1; q < NC_N_FLAVOURS; ++q) par->kappa[q] = kappa_q;
    return 0;
}

void initialise_(const char* path, size_t len) {
    madnis_sm_params sm;
    madnis_slha* card;
    nc_params par;
    char err[1024];
    P.ok = 0; /* smatrixhel_ returns NaN until a valid card is read */
    if (madnis_initialise_sm(path, len, "zprime", &sm, &card) != 0) return;
    nc_params_from_sm(&par, &sm);
    const int status = read_zprime(card, &par, err, sizeof err);
    madnis_slha_free(card);
    if (status != 0) {
        madnis_process_error("zprime", err);
        return;
    }
    P = par;
}

MADNIS_NC_ENTRY_POINTS(PROCESS, P)
