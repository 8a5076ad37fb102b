/* Neutral-current f f~ -> photon, Z (, Z') -> f' f'~: see neutral_current.h; the
 * per-event maths is neutral_current_math.h, shared with the CUDA kernel. */
#include "neutral_current.h"
#include "neutral_current_math.h"

#include <math.h>

void nc_params_from_sm(nc_params* par, const madnis_sm_params* sm) {
    /* charge and weak isospin by coupling index: e-, d, u, s, c */
    static const double Q[NC_N_FLAVOURS] = {-1.0, -1.0 / 3.0, 2.0 / 3.0, -1.0 / 3.0,
                                            2.0 / 3.0};
    static const double T3[NC_N_FLAVOURS] = {-0.5, -0.5, 0.5, -0.5, 0.5};
    const double gz = sm->ee / (sm->sw * sm->cw);
    *par = (nc_params){0};
    par->ok = 1;
    par->MZ = sm->MZ;
    par->WZ = sm->WZ;
    for (int f = 0; f < NC_N_FLAVOURS; ++f) {
        par->Q[f] = sm->ee * Q[f];
        par->gL[f] = gz * (T3[f] - Q[f] * sm->sw2);
        par->gR[f] = -gz * Q[f] * sm->sw2;
        par->kappa[f] = 1.0;
    }
}

const nc_subprocess* nc_find_subprocess(const nc_process* proc, const int* pdgs,
                                        const int* procid, const int* npdg) {
    if (pdgs == NULL || npdg == NULL || *npdg != NC_N_EXTERNAL) return NULL;
    if (procid != NULL && *procid > 0 && *procid != 1) return NULL;
    for (int k = 0; k < proc->nsubprocesses; ++k) {
        const int* q = proc->subprocesses[k].pdgs;
        if (pdgs[0] == q[0] && pdgs[1] == q[1] && pdgs[2] == q[2] && pdgs[3] == q[3])
            return &proc->subprocesses[k];
    }
    return NULL;
}

double nc_chiral_sum(const nc_process* proc, const nc_params* par, const nc_subprocess* sp,
                     const double* p, int nhel, int only) {
    return nc_chiral_sum_math(proc->nbosons, proc->colours, par, sp, p, nhel, only);
}

void nc_smatrixhel(const nc_process* proc, const nc_params* par, const int* pdgs,
                   const int* procid, const int* npdg, const double* p, const int* nhel,
                   double* ans) {
    const nc_subprocess* sp = nc_find_subprocess(proc, pdgs, procid, npdg);
    if (sp == NULL || ans == NULL) return;
    if (!par->ok) {
        *ans = NAN;
        return;
    }
    *ans = nc_chiral_sum(proc, par, sp, p, nhel != NULL ? *nhel : -1, -1) / proc->iden;
}

void nc_amp2(const nc_process* proc, const nc_params* par, const int* pdgs,
             const int* procid, const int* npdg, const double* p, double* amp2, int* namp2) {
    const nc_subprocess* sp = nc_find_subprocess(proc, pdgs, procid, npdg);
    if (namp2 == NULL) return;
    if (sp == NULL) {
        *namp2 = 0;
        return;
    }
    for (int d = 0; d < proc->nbosons; ++d)
        amp2[d] = par->ok ? nc_chiral_sum(proc, par, sp, p, -1, d) / proc->iden : NAN;
    *namp2 = proc->nbosons;
}
