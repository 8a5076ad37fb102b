/* u d~ -> e+ ve g at tree level through an s-channel W+, massless fermions.
 *
 * Exports the ABI of MadGraph 5's standalone Fortran output (see madnis_process.h);
 * subprocesses [2, -1, -11, 12, 21] and [-1, 2, -11, 12, 21]. Feynman rules: W f f'
 * vertex -i gw / sqrt(2) gamma^mu P_L with gw = e / sw (G_mu scheme) and the CKM matrix
 * the identity (MadGraph's default sm model); W propagator
 * -i (g - q q / MW^2) / (q^2 - MW^2 + i MW WW), fixed width, MW derived from the card.
 * Only left-handed fermions (right-handed antifermions) couple, so one helicity
 * configuration per gluon polarisation contributes.
 * Diagrams (madnis_amp2_ order): 1 gluon from the u quark, 2 gluon from the d~.
 */
#include "dirac.h"
#include "madnis_process.h"

#define N_DIAGRAMS 2

enum { SUB_NONE = -1, SUB_UDX = 0, SUB_DXU = 1 };

static struct {
    int ready;
    double mw, ww, gw;
} params;

void initialise_(const char* path, size_t len)
{
    madnis_sm_params sm;
    params.ready = 0;
    if (madnis_initialise_sm(path, len, "udx_enug", &sm, NULL) != 0) return;
    params.mw = sm.MW;
    params.ww = sm.WW;
    params.gw = sm.gw;
    params.ready = 1;
}

/* procid as MadGraph: the processes of one `generate` line are number 1, <= 0 any. */
static int find_subprocess(const int* pdgs, const int* procid, const int* npdg)
{
    if (*npdg != 5 || (*procid > 0 && *procid != 1)) return SUB_NONE;
    if (pdgs[2] != -11 || pdgs[3] != 12 || pdgs[4] != 21) return SUB_NONE;
    if (pdgs[0] == 2 && pdgs[1] == -1) return SUB_UDX;
    if (pdgs[0] == -1 && pdgs[1] == 2) return SUB_DXU;
    return SUB_NONE;
}

/* Averaged |M|^2 and the two |M_i|^2: u(pu) d~(pd) -> e+(p2) ve(p3) g(k). */
static void evaluate(int sub, const double* p, double alphas, double* ans,
                     double amp2[N_DIAGRAMS])
{
    const double* pu = sub == SUB_UDX ? p : p + 4;
    const double* pd = sub == SUB_UDX ? p + 4 : p;
    const double *pep = p + 8, *pnu = p + 12, *k = p + 16;
    double qw[4], qu[4], qd[4];
    for (int mu = 0; mu < 4; ++mu) {
        qw[mu] = pep[mu] + pnu[mu];
        qu[mu] = pu[mu] - k[mu];
        qd[mu] = k[mu] - pd[mu];
    }
    cplx du = -2.0 * mdot(pu, k), dd = -2.0 * mdot(pd, k);
    cplx dw = 2.0 * mdot(pep, pnu) - params.mw * params.mw + I * params.mw * params.ww;
    cplx unu[4], ubnu[4], vep[4], lep[4], uu[4], vd[4], vbd[4];
    spinor_u(pnu, 0.0, -1, unu);
    dirac_bar(unu, ubnu);
    spinor_v(pep, 0.0, 1, vep);
    current(ubnu, vep, 1.0, 0.0, lep);
    spinor_u(pu, 0.0, -1, uu);
    spinor_v(pd, 0.0, 1, vd);
    dirac_bar(vd, vbd);
    cplx eps[2][4];
    polarisations(k, eps);
    double sum = 0.0, d[N_DIAGRAMS] = {0.0, 0.0};
    for (int pol = 0; pol < 2; ++pol) {
        cplx t[4], col[4], row[4], ju[4], jd[4], nu_[4], nd_[4];
        /* gluon from u: vbar_d W-vertex (pu - k) epsslash u_u / ((pu - k)^2) */
        slash_col(eps[pol], uu, t);
        propagate_col(qu, 0.0, du, t, col);
        current(vbd, col, 1.0, 0.0, ju);
        /* gluon from d~: vbar_d epsslash (k - pd) / ((pd - k)^2) W-vertex u_u */
        slash_row(vbd, eps[pol], t);
        propagate_row(t, qd, 0.0, dd, row);
        current(row, uu, 1.0, 0.0, jd);
        unitary_numerator(qw, params.mw, ju, nu_);
        unitary_numerator(qw, params.mw, jd, nd_);
        cplx a[N_DIAGRAMS] = {-cdot(lep, nu_) / dw, -cdot(lep, nd_) / dw};
        cplx total = a[0] + a[1];
        sum += creal(total * conj(total));
        for (int i = 0; i < N_DIAGRAMS; ++i) d[i] += creal(a[i] * conj(a[i]));
    }
    /* (gw^2 / 2)^2 g_s^2, colour Tr(T^a T^a) = 4 over 4 spins x 9 colours */
    double gw2 = params.gw * params.gw;
    double norm = gw2 * gw2 / 4.0 * 4.0 * MADNIS_PI * alphas * 4.0 / 36.0;
    *ans = norm * sum;
    for (int i = 0; i < N_DIAGRAMS; ++i) amp2[i] = norm * d[i];
}

void smatrixhel_(const int* pdgs, const int* procid, const int* npdg, const double* p,
                 const double* alphas, const double* scale2, const int* nhel, double* ans)
{
    (void)scale2; /* no running parameters besides alpha_s */
    (void)nhel;   /* always the helicity sum */
    int sub = find_subprocess(pdgs, procid, npdg);
    if (sub == SUB_NONE) return;
    if (!params.ready) {
        *ans = NAN;
        return;
    }
    double amp2[N_DIAGRAMS];
    evaluate(sub, p, *alphas, ans, amp2);
}

void madnis_amp2_(const int* pdgs, const int* procid, const int* npdg, const double* p,
                  const double* alphas, const double* scale2, double* amp2, int* namp2)
{
    (void)scale2;
    int sub = find_subprocess(pdgs, procid, npdg);
    *namp2 = 0;
    if (sub == SUB_NONE) return;
    double ans, local[N_DIAGRAMS];
    evaluate(sub, p, *alphas, &ans, local);
    for (int i = 0; i < N_DIAGRAMS; ++i) amp2[i] = params.ready ? local[i] : NAN;
    *namp2 = N_DIAGRAMS;
}
