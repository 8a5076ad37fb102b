/* e+ e- -> q q~ g at tree level through a photon and a Z, q = d u s c massless.
 *
 * Exports the ABI of MadGraph 5's standalone Fortran output (see madnis_process.h); one
 * subprocess per flavour, pdgs [-11, 11, q, -q, 21]. Feynman rules: f f V vertex
 * -i e gamma^mu (gL P_L + gR P_R) with gL = gR = Q for the photon and
 * gL = (T3 - Q sw2) / (sw cw), gR = -Q sw2 / (sw cw) for the Z (G_mu scheme parameters
 * from the card); Z propagator -i (g - q q / MZ^2) / (s - MZ^2 + i MZ WZ), fixed width.
 * Diagrams (madnis_amp2_ order): 1 photon, gluon from q; 2 photon, gluon from q~;
 * 3 Z, gluon from q; 4 Z, gluon from q~.
 */
#include "dirac.h"
#include "madnis_process.h"

#define N_DIAGRAMS 4

static struct {
    int ready;
    double mz, wz, ee;
    double zl_e, zr_e; /* Z couplings of the electron */
    double zl_q[5], zr_q[5], charge[5]; /* by quark flavour 1..4 */
} params;

void initialise_(const char* path, size_t len)
{
    madnis_sm_params sm;
    params.ready = 0;
    if (madnis_initialise_sm(path, len, "ee_qqg", &sm, NULL) != 0) return;
    double gz = 1.0 / (sm.sw * sm.cw);
    params.mz = sm.MZ;
    params.wz = sm.WZ;
    params.ee = sm.ee;
    params.zl_e = (-0.5 + sm.sw2) * gz;
    params.zr_e = sm.sw2 * gz;
    for (int q = 1; q <= 4; ++q) {
        double t3 = q % 2 == 0 ? 0.5 : -0.5, charge = q % 2 == 0 ? 2.0 / 3.0 : -1.0 / 3.0;
        params.charge[q] = charge;
        params.zl_q[q] = (t3 - charge * sm.sw2) * gz;
        params.zr_q[q] = -charge * sm.sw2 * gz;
    }
    params.ready = 1;
}

/* The quark flavour 1..4 of a matching subprocess, 0 if none (procid as MadGraph: the
 * processes of one `generate` line are number 1, procid <= 0 accepts any). */
static int find_subprocess(const int* pdgs, const int* procid, const int* npdg)
{
    if (*npdg != 5 || (*procid > 0 && *procid != 1)) return 0;
    if (pdgs[0] != -11 || pdgs[1] != 11 || pdgs[4] != 21) return 0;
    int q = pdgs[2];
    if (q < 1 || q > 4 || pdgs[3] != -q) return 0;
    return q;
}

/* Averaged |M|^2 and the four |M_i|^2: e+(p0) e-(p1) -> q(p2) q~(p3) g(p4). */
static void evaluate(int q, const double* p, double alphas, double* ans, double amp2[N_DIAGRAMS])
{
    const double *pep = p, *pem = p + 4, *p3 = p + 8, *p4 = p + 12, *k = p + 16;
    double s = 2.0 * mdot(pep, pem), q35[4], q45[4], qz[4];
    for (int mu = 0; mu < 4; ++mu) {
        q35[mu] = p3[mu] + k[mu];
        q45[mu] = p4[mu] + k[mu];
        qz[mu] = pep[mu] + pem[mu];
    }
    cplx d35 = 2.0 * mdot(p3, k), d45 = 2.0 * mdot(p4, k);
    cplx dz = s - params.mz * params.mz + I * params.mz * params.wz;
    double qe = -1.0, qq = params.charge[q];
    cplx eps[2][4];
    polarisations(k, eps);
    double sum = 0.0, d[N_DIAGRAMS] = {0.0, 0.0, 0.0, 0.0};
    /* massless lines: only opposite helicities of the two fermions of a line couple */
    for (int he = -1; he <= 1; he += 2) {
        cplx um[4], vp[4], vbp[4], la[4], lz[4];
        spinor_u(pem, 0.0, he, um);
        spinor_v(pep, 0.0, -he, vp);
        dirac_bar(vp, vbp);
        current(vbp, um, qe, qe, la);
        current(vbp, um, params.zl_e, params.zr_e, lz);
        for (int hq = -1; hq <= 1; hq += 2) {
            cplx u3[4], ub3[4], v4[4];
            spinor_u(p3, 0.0, hq, u3);
            dirac_bar(u3, ub3);
            spinor_v(p4, 0.0, -hq, v4);
            for (int pol = 0; pol < 2; ++pol) {
                cplx row[4], col[4], t[4];
                /* gluon from q: ubar3 epsslash (p3 + k) / s35, then the V vertex */
                slash_row(ub3, eps[pol], t);
                propagate_row(t, q35, 0.0, d35, row);
                /* gluon from q~: the V vertex, then -(p4 + k) epsslash v4 / s45 */
                slash_col(eps[pol], v4, t);
                propagate_col(q45, 0.0, -d45, t, col);
                cplx qa_q[4], qa_qb[4], qz_q[4], qz_qb[4], nz_q[4], nz_qb[4];
                current(row, v4, qq, qq, qa_q);
                current(ub3, col, qq, qq, qa_qb);
                current(row, v4, params.zl_q[q], params.zr_q[q], qz_q);
                current(ub3, col, params.zl_q[q], params.zr_q[q], qz_qb);
                unitary_numerator(qz, params.mz, qz_q, nz_q);
                unitary_numerator(qz, params.mz, qz_qb, nz_qb);
                cplx a[N_DIAGRAMS] = {cdot(la, qa_q) / s, cdot(la, qa_qb) / s,
                                      -cdot(lz, nz_q) / dz, -cdot(lz, nz_qb) / dz};
                cplx total = a[0] + a[1] + a[2] + a[3];
                sum += creal(total * conj(total));
                for (int i = 0; i < N_DIAGRAMS; ++i) d[i] += creal(a[i] * conj(a[i]));
            }
        }
    }
    /* e^4 g_s^2, colour Tr(T^a T^a) = 4, average over the 4 lepton spin states */
    double e2 = params.ee * params.ee, norm = e2 * e2 * 4.0 * MADNIS_PI * alphas;
    *ans = norm * sum;
    for (int i = 0; i < N_DIAGRAMS; ++i) amp2[i] = norm * d[i];
}

void smatrixhel_(const int* pdgs, const int* procid, const int* npdg, const double* p,
                 const double* alphas, const double* scale2, const int* nhel, double* ans)
{
    (void)scale2; /* no running parameters besides alpha_s */
    (void)nhel;   /* always the helicity sum */
    int q = find_subprocess(pdgs, procid, npdg);
    if (q == 0) return;
    if (!params.ready) {
        *ans = NAN;
        return;
    }
    double amp2[N_DIAGRAMS];
    evaluate(q, p, *alphas, ans, amp2);
}

void madnis_amp2_(const int* pdgs, const int* procid, const int* npdg, const double* p,
                  const double* alphas, const double* scale2, double* amp2, int* namp2)
{
    (void)scale2;
    int q = find_subprocess(pdgs, procid, npdg);
    *namp2 = 0;
    if (q == 0) return;
    double ans, local[N_DIAGRAMS];
    evaluate(q, p, *alphas, &ans, local);
    for (int i = 0; i < N_DIAGRAMS; ++i) amp2[i] = params.ready ? local[i] : NAN;
    *namp2 = N_DIAGRAMS;
}
