/* Standard Model parameters derived from a param_card exactly as MadGraph's default `sm`
 * UFO model does (models/sm/parameters.py, the G_mu scheme with inputs 1/alpha(MZ), G_F,
 * MZ):
 *
 *   aEW  = 1 / aEWM1
 *   MW   = sqrt(MZ^2/2 + sqrt(MZ^4/4 - aEW pi MZ^2 / (Gf sqrt(2))))
 *   sw2  = 1 - MW^2/MZ^2,  cw = sqrt(1 - sw2),  sw = sqrt(sw2)
 *   ee   = 2 sqrt(aEW) sqrt(pi),  gw = ee / sw,  g1 = ee / cw,  vev = 2 MW sw / ee
 *
 * Every input the model reads must be on the card: a missing entry is an error naming
 * its block and index (MadGraph would warn and fall back to the model's defaults, which
 * hides typos in user cards).
 */
#include "madnis_process.h"

#include <math.h>
#include <stdio.h>

typedef struct {
    const char* block; /* "DECAY" means a DECAY line */
    int index;
    const char* name;
    size_t offset;
} sm_input;

#define SM_FIELD(f) offsetof(madnis_sm_params, f)

static const sm_input sm_inputs[] = {
    {"SMINPUTS", 1, "aEWM1", SM_FIELD(aEWM1)}, {"SMINPUTS", 2, "Gf", SM_FIELD(Gf)},
    {"SMINPUTS", 3, "aS", SM_FIELD(aS)},       {"MASS", 23, "MZ", SM_FIELD(MZ)},
    {"MASS", 6, "MT", SM_FIELD(MT)},           {"MASS", 5, "MB", SM_FIELD(MB)},
    {"MASS", 25, "MH", SM_FIELD(MH)},          {"MASS", 15, "MTA", SM_FIELD(MTA)},
    {"DECAY", 23, "WZ", SM_FIELD(WZ)},         {"DECAY", 24, "WW", SM_FIELD(WW)},
    {"DECAY", 6, "WT", SM_FIELD(WT)},          {"DECAY", 25, "WH", SM_FIELD(WH)},
    {"YUKAWA", 5, "ymb", SM_FIELD(ymb)},       {"YUKAWA", 6, "ymt", SM_FIELD(ymt)},
    {"YUKAWA", 15, "ymtau", SM_FIELD(ymtau)},
};

int madnis_sm_from_slha(const madnis_slha* card, madnis_sm_params* sm, char* err,
                        size_t errlen) {
    if (err != NULL && errlen > 0) err[0] = '\0';
    if (card == NULL || sm == NULL) {
        if (err != NULL && errlen > 0) snprintf(err, errlen, "SM parameters: no param_card");
        return 1;
    }
    for (size_t i = 0; i < sizeof sm_inputs / sizeof sm_inputs[0]; ++i) {
        const sm_input* in = &sm_inputs[i];
        double* dst = (double*)((char*)sm + in->offset);
        int found = in->block[0] == 'D' ? madnis_slha_width(card, in->index, dst)
                                        : madnis_slha_get(card, in->block, in->index, dst);
        if (!found) {
            if (err != NULL && errlen > 0) {
                if (in->block[0] == 'D')
                    snprintf(err, errlen, "param_card: missing DECAY %d (the width %s)",
                             in->index, in->name);
                else
                    snprintf(err, errlen, "param_card: missing entry %d of BLOCK %s (%s)",
                             in->index, in->block, in->name);
            }
            return 1;
        }
    }
    if (!(sm->aEWM1 > 0 && sm->Gf > 0 && sm->MZ > 0)) {
        if (err != NULL && errlen > 0)
            snprintf(err, errlen,
                     "param_card: SMINPUTS 1 (aEWM1), SMINPUTS 2 (Gf) and MASS 23 (MZ) must "
                     "be > 0, got %g, %g, %g", sm->aEWM1, sm->Gf, sm->MZ);
        return 1;
    }

    const double pi = 3.14159265358979323846;
    sm->aEW = 1.0 / sm->aEWM1;
    const double MZ2 = sm->MZ * sm->MZ;
    const double disc = MZ2 * MZ2 / 4.0 - sm->aEW * pi * MZ2 / (sm->Gf * sqrt(2.0));
    if (!(disc >= 0)) {
        if (err != NULL && errlen > 0)
            snprintf(err, errlen,
                     "param_card: no real W mass for aEWM1 = %g, Gf = %g, MZ = %g (the G_mu "
                     "scheme needs MZ^2/4 >= pi aEW / (sqrt(2) Gf))", sm->aEWM1, sm->Gf,
                     sm->MZ);
        return 1;
    }
    sm->MW = sqrt(MZ2 / 2.0 + sqrt(disc));
    sm->sw2 = 1.0 - sm->MW * sm->MW / MZ2;
    sm->cw = sqrt(1.0 - sm->sw2);
    sm->sw = sqrt(sm->sw2);
    sm->ee = 2.0 * sqrt(sm->aEW) * sqrt(pi);
    sm->gw = sm->ee / sm->sw;
    sm->g1 = sm->ee / sm->cw;
    sm->vev = 2.0 * sm->MW * sm->sw / sm->ee;
    return 0;
}
