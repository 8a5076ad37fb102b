/* Built-in process ee_mumu: e+ e- -> photon or Z -> mu+ mu- at tree level.
 *
 * What `generate e+ e- > mu+ mu-` gives in MadGraph 5 with the default `sm` model
 * (massless e and mu), evaluated exactly as MadGraph does; the amplitude, helicity
 * conventions and propagators are those of common/neutral_current.h, with f the incoming
 * e- and f' the outgoing mu-: Q = -1, g_L = e/(sw cw) (-1/2 + sw2), g_R = e/(sw cw) sw2,
 *   A_ij = e^2 / s + g_i g_j / (s - MZ^2 + i MZ WZ),   |M|^2 = 1/4 sum_ij |M_ij|^2
 * (initial spins averaged; |M_LL|^2 = |A_LL|^2 s^2 (1 + cos theta)^2, theta between e- and
 * mu-).
 *
 * Subprocesses (PDG lists, incoming first): [-11, 11, -13, 13], MadGraph's only one, and
 * the mirrored [11, -11, -13, 13] for an e- beam along +z (not in a MadGraph library;
 * process.toml lists only the first, so that nothing is counted twice).
 * Diagrams: 1 = photon, 2 = Z (MadGraph's order); madnis_amp2_ returns one entry each.
 * nhel in 1..16 returns one helicity's |M|^2 divided by MadGraph's IDEN = 4.
 * alphas and scale2 are accepted and unused.
 * Built with CUDA (setup.py, when nvcc is found) it also exports the device entry points
 * (madnis_process.h, "Device extension"): the same |M|^2 (common/neutral_current_math.h)
 * from a kernel on device pointers.
 */
#include "madnis_process.h"
#include "neutral_current.h"

#define LEPTON 0 /* coupling index of e- and mu- */

static const nc_subprocess SUBPROCESSES[] = {
    {{-11, 11, -13, 13}, 1, 0, 2, 3, LEPTON, LEPTON},
    {{11, -11, -13, 13}, 0, 1, 2, 3, LEPTON, LEPTON},
};

static const nc_process PROCESS = {
    SUBPROCESSES, sizeof SUBPROCESSES / sizeof SUBPROCESSES[0],
    2,   /* photon, Z */
    1.0, /* no colour */
    4.0, /* IDEN: 2 x 2 spins of the incoming leptons */
};

static nc_params P; /* filled by initialise_, read-only afterwards; NaN until then */

void initialise_(const char* path, size_t len) {
    madnis_sm_params sm;
    P.ok = 0; /* smatrixhel_ returns NaN until a valid card is read */
    if (madnis_initialise_sm(path, len, "ee_mumu", &sm, NULL) != 0) return;
    nc_params_from_sm(&P, &sm);
}

MADNIS_NC_ENTRY_POINTS(PROCESS, P)

#ifdef MADNIS_WITH_CUDA
MADNIS_NC_DEVICE_ENTRY_POINTS(PROCESS, P)
#endif
