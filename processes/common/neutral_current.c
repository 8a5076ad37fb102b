/* Neutral-current f f~ -> photon, Z (, Z') -> f' f'~: see neutral_current.h. */
#include "neutral_current.h"

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

static double dot(const double* a, const double* b) {
    return a[0] * b[0] - a[1] * b[1] - a[2] * b[2] - a[3] * b[3];
}

/* 1/(s - M^2 + i M W) */
static void breit_wigner(double s, double m, double w, double* re, double* im) {
    const double m2 = m * m, mw = m * w;
    const double d = (s - m2) * (s - m2) + mw * mw;
    *re = (s - m2) / d;
    *im = -mw / d;
}

double nc_chiral_sum(const nc_process* proc, const nc_params* par, const nc_subprocess* sp,
                     const double* p, int nhel, int only) {
    const double* pa = p + 4 * sp->f_in;
    const double* pb = p + 4 * sp->fbar_in;
    double pab[4];
    for (int mu = 0; mu < 4; ++mu) pab[mu] = pa[mu] + pb[mu];
    const double s = dot(pab, pab);
    const double t = -2.0 * dot(pa, p + 4 * sp->f_out);
    const double u = -2.0 * dot(pa, p + 4 * sp->fbar_out);

    /* propagators by diagram: photon 1/s, then the Z and the Z' */
    const int nb = proc->nbosons;
    double prop_re[NC_MAX_BOSONS] = {1.0 / s}, prop_im[NC_MAX_BOSONS] = {0.0};
    breit_wigner(s, par->MZ, par->WZ, &prop_re[1], &prop_im[1]);
    if (nb > 2) breit_wigner(s, par->MZP, par->WZP, &prop_re[2], &prop_im[2]);

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
            double c[NC_MAX_BOSONS] = {par->Q[fi] * par->Q[fo], gi[i] * go[j]};
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
    return proc->colours * sum;
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
