/* Built-in process drell_yan: q q~ -> photon or Z -> e+ e- at tree level, q = u c d s.
 *
 * What `generate p p > e+ e-` gives in MadGraph 5 with the default `sm` model (massless
 * d u s c and e, diagonal CKM), evaluated exactly as MadGraph does; the amplitude,
 * helicity conventions and propagators are those of common/neutral_current.h, with f the
 * incoming quark and f' the outgoing electron:
 *   A_ij = e^2 Q_q Q_e / s + g^q_i g^e_j / (s - MZ^2 + i MZ WZ),
 *   |M|^2 = N_c / (4 N_c^2) sum_ij |M_ij|^2    (spins averaged, colours summed/averaged).
 *
 * Subprocesses (PDG lists, incoming first; final state e+ then e- as MadGraph orders it):
 *   [q, q~, -11, 11] for q = 2, 4, 1, 3, then the mirrored [q~, q, -11, 11] in the same
 *   flavour order. (A MadGraph standalone library lists only the q q~ orientation and
 *   leaves the mirror to the caller; here both are built in.)
 * Diagrams: 1 = photon, 2 = Z (MadGraph's order); madnis_amp2_ returns one entry each.
 * nhel in 1..16 returns one helicity's |M|^2 divided by MadGraph's IDEN = 36.
 * alphas and scale2 are accepted and unused (no QCD vertex).
 */
#include "madnis_process.h"
#include "neutral_current.h"

/* coupling indices: the quark's |PDG|, and 0 for the electron */
static const nc_subprocess SUBPROCESSES[] = {
    {{2, -2, -11, 11}, 0, 1, 2, 3, 2, 0},  {{4, -4, -11, 11}, 0, 1, 2, 3, 4, 0},
    {{1, -1, -11, 11}, 0, 1, 2, 3, 1, 0},  {{3, -3, -11, 11}, 0, 1, 2, 3, 3, 0},
    {{-2, 2, -11, 11}, 1, 0, 2, 3, 2, 0},  {{-4, 4, -11, 11}, 1, 0, 2, 3, 4, 0},
    {{-1, 1, -11, 11}, 1, 0, 2, 3, 1, 0},  {{-3, 3, -11, 11}, 1, 0, 2, 3, 3, 0},
};

static const nc_process PROCESS = {
    SUBPROCESSES, sizeof SUBPROCESSES / sizeof SUBPROCESSES[0],
    2,    /* photon, Z */
    3.0,  /* N_c */
    36.0, /* IDEN: 2 x 2 spins times 3 x 3 colours of the incoming partons */
};

static nc_params P; /* filled by initialise_, read-only afterwards; NaN until then */

void initialise_(const char* path, size_t len) {
    madnis_sm_params sm;
    P.ok = 0; /* smatrixhel_ returns NaN until a valid card is read */
    if (madnis_initialise_sm(path, len, "drell_yan", &sm, NULL) != 0) return;
    nc_params_from_sm(&P, &sm);
}

MADNIS_NC_ENTRY_POINTS(PROCESS, P)

#ifdef MADNIS_WITH_CUDA
MADNIS_NC_DEVICE_ENTRY_POINTS(PROCESS, P)
#endif
