/* Top-pair production at tree level in QCD: g g -> t t~ and q q~ -> t t~ (q = d u s c).
 *
 * Exports the ABI of MadGraph 5's standalone Fortran output (see madnis_process.h).
 * Diagrams, in MadGraph's order:
 *   g g -> t t~ : 1 s-channel gluon, 2 t-channel top (t radiates gluon 1), 3 u-channel top;
 *   q q~ -> t t~: 1 s-channel gluon.
 * The top is massive (MT from the card's MASS block); the top width does not enter: the
 * t- and u-channel propagators are 1 / ((p3 - k)^2 - MT^2), space-like or below the pole.
 *
 * Colour: with the basis c1 = (T^a T^b)_{i3 i4}, c2 = (T^b T^a)_{i3 i4} the g g amplitude is
 * M = g_s^2 (c1 A1 + c2 A2) and the colour matrix <ci|cj> = [[16/3, -2/3], [-2/3, 16/3]];
 * f^{abc} T^c = -i (c1 - c2) puts the s-channel diagram into both (Peskin & Schroeder's
 * Feynman rules; the colour-ordered A1 and A2 are separately gauge invariant).
 */
#include "dirac.h"
#include "madnis_process.h"

enum { SUB_NONE = -1, SUB_GG = 0, SUB_QQBAR = 1, SUB_QBARQ = 2 };

static struct {
    int ready;
    double mt;
} params;

void initialise_(const char* path, size_t len)
{
    madnis_sm_params sm;
    params.ready = 0;
    if (madnis_initialise_sm(path, len, "ttbar", &sm, NULL) != 0) return;
    params.mt = sm.MT;
    params.ready = 1;
}

/* MadGraph numbers the processes of one `generate` line 1; procid <= 0 accepts any. */
static int find_subprocess(const int* pdgs, const int* procid, const int* npdg)
{
    if (*npdg != 4 || (*procid > 0 && *procid != 1)) return SUB_NONE;
    if (pdgs[2] != 6 || pdgs[3] != -6) return SUB_NONE;
    if (pdgs[0] == 21 && pdgs[1] == 21) return SUB_GG;
    int q = pdgs[0] > 0 ? pdgs[0] : -pdgs[0];
    if (q < 1 || q > 4 || pdgs[1] != -pdgs[0]) return SUB_NONE;
    return pdgs[0] > 0 ? SUB_QQBAR : SUB_QBARQ;
}

/* g(k1) g(k2) -> t(p3) t~(p4): helicity-summed, colour-summed |A|^2 pieces (coupling
 * g_s^4 and the average left to the caller): total, and |diagram|^2 each with its own
 * colour factor. */
static void gg_sums(const double* p, double mt, double* total, double diag[3])
{
    const double *k1 = p, *k2 = p + 4, *p3 = p + 8, *p4 = p + 12;
    double q1[4], q2[4], k12[4];
    for (int mu = 0; mu < 4; ++mu) {
        q1[mu] = p3[mu] - k1[mu];
        q2[mu] = p3[mu] - k2[mu];
        k12[mu] = k1[mu] - k2[mu];
    }
    /* (p3 - k)^2 - mt^2 = -2 p3.k for massless k, without cancellation. */
    cplx den_t = -2.0 * mdot(p3, k1), den_u = -2.0 * mdot(p3, k2);
    double s = 2.0 * mdot(k1, k2);
    cplx e1[2][4], e2[2][4];
    polarisations(k1, e1);
    polarisations(k2, e2);
    double sum = 0.0, d[3] = {0.0, 0.0, 0.0};
    for (int h3 = -1; h3 <= 1; h3 += 2) {
        cplx u3[4], ub3[4];
        spinor_u(p3, mt, h3, u3);
        dirac_bar(u3, ub3);
        for (int h4 = -1; h4 <= 1; h4 += 2) {
            cplx v4[4];
            spinor_v(p4, mt, h4, v4);
            for (int a = 0; a < 2; ++a) {
                for (int b = 0; b < 2; ++b) {
                    const cplx *ea = e1[a], *eb = e2[b];
                    cplx w[4], w2[4], w3[4];
                    /* t channel: ubar3 eps1slash (p3 - k1 + m) eps2slash v4 */
                    slash_col(eb, v4, w);
                    propagate_col(q1, mt, den_t, w, w2);
                    slash_col(ea, w2, w3);
                    cplx xt = bracket(ub3, w3);
                    /* u channel: ubar3 eps2slash (p3 - k2 + m) eps1slash v4 */
                    slash_col(ea, v4, w);
                    propagate_col(q2, mt, den_u, w, w2);
                    slash_col(eb, w2, w3);
                    cplx xu = bracket(ub3, w3);
                    /* s channel: three-gluon vertex contracted with eps1, eps2 */
                    cplx k2e1 = k2[0] * ea[0] - k2[1] * ea[1] - k2[2] * ea[2] - k2[3] * ea[3];
                    cplx k1e2 = k1[0] * eb[0] - k1[1] * eb[1] - k1[2] * eb[2] - k1[3] * eb[3];
                    cplx e12 = cdot(ea, eb), vv[4];
                    for (int mu = 0; mu < 4; ++mu)
                        vv[mu] = (e12 * k12[mu] + 2.0 * k2e1 * eb[mu] - 2.0 * k1e2 * ea[mu]) / s;
                    slash_col(vv, v4, w);
                    cplx xs = bracket(ub3, w);
                    cplx a1 = xt + xs, a2 = xu - xs;
                    sum += 16.0 / 3.0 * (creal(a1 * conj(a1)) + creal(a2 * conj(a2)))
                           - 4.0 / 3.0 * creal(a1 * conj(a2));
                    d[0] += 12.0 * creal(xs * conj(xs));
                    d[1] += 16.0 / 3.0 * creal(xt * conj(xt));
                    d[2] += 16.0 / 3.0 * creal(xu * conj(xu));
                }
            }
        }
    }
    *total = sum;
    for (int i = 0; i < 3; ++i) diag[i] = d[i];
}

/* q(pq) q~(pqb) -> t(p3) t~(p4) through one s-channel gluon: helicity- and colour-summed
 * |A|^2 (colour factor Tr(T^a T^b) Tr(T^a T^b) = 2). */
static double qq_sum(const double* pq, const double* pqb, const double* p3, const double* p4,
                     double mt)
{
    double s = 2.0 * mdot(pq, pqb), sum = 0.0;
    for (int hq = -1; hq <= 1; hq += 2) {
        cplx uq[4], vqb[4], vbqb[4], jq[4];
        spinor_u(pq, 0.0, hq, uq);
        spinor_v(pqb, 0.0, -hq, vqb); /* massless: only opposite helicities couple */
        dirac_bar(vqb, vbqb);
        current(vbqb, uq, 1.0, 1.0, jq);
        for (int h3 = -1; h3 <= 1; h3 += 2) {
            cplx u3[4], ub3[4];
            spinor_u(p3, mt, h3, u3);
            dirac_bar(u3, ub3);
            for (int h4 = -1; h4 <= 1; h4 += 2) {
                cplx v4[4], jt[4];
                spinor_v(p4, mt, h4, v4);
                current(ub3, v4, 1.0, 1.0, jt);
                cplx x = cdot(jq, jt) / s;
                sum += 2.0 * creal(x * conj(x));
            }
        }
    }
    return sum;
}

/* Averaged |M|^2 and per-diagram |M_i|^2 of a matched subprocess; returns the number of
 * diagrams. */
static int evaluate(int sub, const double* p, double alphas, double* ans, double* amp2)
{
    double gs2 = 4.0 * MADNIS_PI * alphas, g4 = gs2 * gs2;
    if (sub == SUB_GG) {
        double total, diag[3];
        gg_sums(p, params.mt, &total, diag);
        /* 4 gluon polarisations x 64 colours */
        *ans = g4 * total / 256.0;
        for (int i = 0; i < 3; ++i) amp2[i] = g4 * diag[i] / 256.0;
        return 3;
    }
    const double* pq = sub == SUB_QQBAR ? p : p + 4;
    const double* pqb = sub == SUB_QQBAR ? p + 4 : p;
    /* 4 spins x 9 colours */
    *ans = g4 * qq_sum(pq, pqb, p + 8, p + 12, params.mt) / 36.0;
    amp2[0] = *ans;
    return 1;
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
    double amp2[3];
    evaluate(sub, p, *alphas, ans, amp2);
}

void madnis_amp2_(const int* pdgs, const int* procid, const int* npdg, const double* p,
                  const double* alphas, const double* scale2, double* amp2, int* namp2)
{
    (void)scale2;
    int sub = find_subprocess(pdgs, procid, npdg);
    *namp2 = 0;
    if (sub == SUB_NONE) return;
    double ans, local[3];
    int n = evaluate(sub, p, *alphas, &ans, local);
    for (int i = 0; i < n; ++i) amp2[i] = params.ready ? local[i] : NAN;
    *namp2 = n;
}
