/* Dirac algebra for tree-level helicity amplitudes of the built-in processes.
 *
 * Weyl (chiral) basis, metric (+,-,-,-), Peskin & Schroeder conventions:
 *   gamma^mu = [[0, sigma^mu], [sigmabar^mu, 0]], sigma^mu = (1, sigma^i),
 *   sigmabar^mu = (1, -sigma^i), gamma5 = diag(-1, -1, 1, 1), so P_L = (1 - gamma5)/2
 *   keeps the upper two components of a spinor.
 * External fermions are helicity eigenstates, external gluons and photons real linear
 * polarisations transverse in the frame of the momenta given; |M|^2 summed over these
 * bases is basis independent, so it agrees with MadGraph's HELAS spinors and vectors.
 *
 * Every process directory carries an identical copy of this header (a process is
 * compiled from its own directory and processes/common only).
 */
#ifndef MADNIS_DIRAC_H
#define MADNIS_DIRAC_H

#include <complex.h>
#include <math.h>

typedef double complex cplx;

#define MADNIS_PI 3.14159265358979323846

/* Minkowski product of real four-vectors. */
static inline double mdot(const double a[4], const double b[4])
{
    return a[0] * b[0] - a[1] * b[1] - a[2] * b[2] - a[3] * b[3];
}

/* Minkowski product of complex four-vectors, no conjugation. */
static inline cplx cdot(const cplx a[4], const cplx b[4])
{
    return a[0] * b[0] - a[1] * b[1] - a[2] * b[2] - a[3] * b[3];
}

/* Two-component helicity eigenstate chi_lam(p): (p.sigma / |p|) chi = lam chi. The
 * formula whose denominator is larger is used, so there is no cancellation near -z. */
static inline void helicity_chi(const double p[4], int lam, cplx chi[2])
{
    double px = p[1], py = p[2], pz = p[3];
    double pp = sqrt(px * px + py * py + pz * pz);
    if (pp == 0.0) { /* at rest: any basis of sigma_z eigenstates */
        chi[0] = lam > 0 ? 1.0 : 0.0;
        chi[1] = lam > 0 ? 0.0 : 1.0;
        return;
    }
    if (pz >= 0.0) {
        double n = 1.0 / sqrt(2.0 * pp * (pp + pz));
        if (lam > 0) { chi[0] = (pp + pz) * n; chi[1] = (px + I * py) * n; }
        else         { chi[0] = (-px + I * py) * n; chi[1] = (pp + pz) * n; }
    } else {
        double n = 1.0 / sqrt(2.0 * pp * (pp - pz));
        if (lam > 0) { chi[0] = (px - I * py) * n; chi[1] = (pp - pz) * n; }
        else         { chi[0] = (pp - pz) * n; chi[1] = -(px + I * py) * n; }
    }
}

/* sqrt(E - |p|) and sqrt(E + |p|) without cancellation (E - |p| = m^2 / (E + |p|)). */
static inline void light_cone_roots(const double p[4], double m, double* minus, double* plus)
{
    double pp = sqrt(p[1] * p[1] + p[2] * p[2] + p[3] * p[3]);
    double ep = p[0] + pp;
    *plus = sqrt(ep);
    *minus = m == 0.0 ? 0.0 : fabs(m) / sqrt(ep);
}

/* u(p, lam) = (sqrt(p.sigma) chi, sqrt(p.sigmabar) chi), chi = chi_lam. */
static inline void spinor_u(const double p[4], double m, int lam, cplx u[4])
{
    cplx chi[2];
    double rm, rp;
    helicity_chi(p, lam, chi);
    light_cone_roots(p, m, &rm, &rp);
    double a = lam > 0 ? rm : rp, b = lam > 0 ? rp : rm;
    u[0] = a * chi[0]; u[1] = a * chi[1];
    u[2] = b * chi[0]; u[3] = b * chi[1];
}

/* v(p, lam) = (sqrt(p.sigma) eta, -sqrt(p.sigmabar) eta), eta = chi_{-lam}. */
static inline void spinor_v(const double p[4], double m, int lam, cplx v[4])
{
    cplx eta[2];
    double rm, rp;
    helicity_chi(p, -lam, eta);
    light_cone_roots(p, m, &rm, &rp);
    double a = lam > 0 ? rp : rm, b = lam > 0 ? rm : rp;
    v[0] = a * eta[0]; v[1] = a * eta[1];
    v[2] = -b * eta[0]; v[3] = -b * eta[1];
}

/* Dirac adjoint psibar = psi^dagger gamma^0 (a row spinor). */
static inline void dirac_bar(const cplx psi[4], cplx bar[4])
{
    bar[0] = conj(psi[2]); bar[1] = conj(psi[3]);
    bar[2] = conj(psi[0]); bar[3] = conj(psi[1]);
}

/* out = aslash psi (out may not alias psi), a with an upper index. */
static inline void slash_col(const cplx a[4], const cplx psi[4], cplx out[4])
{
    /* a.sigma = [[a0 - a3, -(a1 - i a2)], [-(a1 + i a2), a0 + a3]]; a.sigmabar likewise
     * with the spatial part's sign flipped. */
    cplx am = a[1] - I * a[2], ap = a[1] + I * a[2];
    out[0] = (a[0] - a[3]) * psi[2] - am * psi[3];
    out[1] = -ap * psi[2] + (a[0] + a[3]) * psi[3];
    out[2] = (a[0] + a[3]) * psi[0] + am * psi[1];
    out[3] = ap * psi[0] + (a[0] - a[3]) * psi[1];
}

/* out = chi aslash for a row spinor chi (out may not alias chi). */
static inline void slash_row(const cplx chi[4], const cplx a[4], cplx out[4])
{
    cplx am = a[1] - I * a[2], ap = a[1] + I * a[2];
    out[0] = chi[2] * (a[0] + a[3]) + chi[3] * ap;
    out[1] = chi[2] * am + chi[3] * (a[0] - a[3]);
    out[2] = chi[0] * (a[0] - a[3]) - chi[1] * ap;
    out[3] = -chi[0] * am + chi[1] * (a[0] + a[3]);
}

/* Real four-vector as a complex one. */
static inline void to_complex(const double p[4], cplx out[4])
{
    for (int mu = 0; mu < 4; ++mu) out[mu] = p[mu];
}

/* out = (pslash + m) psi / den: a fermion propagator's numerator over its denominator. */
static inline void propagate_col(const double p[4], double m, cplx den, const cplx psi[4],
                                 cplx out[4])
{
    cplx pc[4], t[4];
    to_complex(p, pc);
    slash_col(pc, psi, t);
    for (int i = 0; i < 4; ++i) out[i] = (t[i] + m * psi[i]) / den;
}

/* out = chi (pslash + m) / den. */
static inline void propagate_row(const cplx chi[4], const double p[4], double m, cplx den,
                                 cplx out[4])
{
    cplx pc[4], t[4];
    to_complex(p, pc);
    slash_row(chi, pc, t);
    for (int i = 0; i < 4; ++i) out[i] = (t[i] + m * chi[i]) / den;
}

/* Vector current J^mu = chibar gamma^mu (gl P_L + gr P_R) psi for a row spinor chibar. */
static inline void current(const cplx chibar[4], const cplx psi[4], cplx gl, cplx gr,
                           cplx j[4])
{
    /* chibar gamma^mu psi' = chibar_L sigma^mu psi'_R + chibar_R sigmabar^mu psi'_L with
     * chibar_L the upper pair of the row, psi' = (gl psi_L, gr psi_R). */
    cplx l0 = gl * psi[0], l1 = gl * psi[1], r0 = gr * psi[2], r1 = gr * psi[3];
    cplx x0 = chibar[0], x1 = chibar[1], y0 = chibar[2], y1 = chibar[3];
    j[0] = x0 * r0 + x1 * r1 + y0 * l0 + y1 * l1;
    j[1] = x0 * r1 + x1 * r0 - (y0 * l1 + y1 * l0);
    j[2] = -I * x0 * r1 + I * x1 * r0 - (-I * y0 * l1 + I * y1 * l0);
    j[3] = x0 * r0 - x1 * r1 - (y0 * l0 - y1 * l1);
}

/* Row spinor times column spinor. */
static inline cplx bracket(const cplx row[4], const cplx col[4])
{
    return row[0] * col[0] + row[1] * col[1] + row[2] * col[2] + row[3] * col[3];
}

/* Two real linear polarisation vectors of a massless vector boson of momentum k,
 * transverse to k in the frame of k: eps[0] in the plane of k and z, eps[1] = z x k. */
static inline void polarisations(const double k[4], cplx eps[2][4])
{
    double kx = k[1], ky = k[2], kz = k[3];
    double pt = sqrt(kx * kx + ky * ky), kk = sqrt(pt * pt + kz * kz);
    double ct, st, cp, sp;
    if (pt == 0.0) { ct = kz < 0.0 ? -1.0 : 1.0; st = 0.0; cp = 1.0; sp = 0.0; }
    else { ct = kz / kk; st = pt / kk; cp = kx / pt; sp = ky / pt; }
    eps[0][0] = 0.0; eps[0][1] = ct * cp; eps[0][2] = ct * sp; eps[0][3] = -st;
    eps[1][0] = 0.0; eps[1][1] = -sp;     eps[1][2] = cp;      eps[1][3] = 0.0;
}

/* Massive vector propagator contracted into a current:
 * (-g^{mu nu} + q^mu q^nu / M^2) J_nu, up to the factor -i / (q^2 - M^2 + i M W) left to
 * the caller; returns -J^mu + q^mu (q.J) / M^2 (unitary gauge, real M^2 as MadGraph). */
static inline void unitary_numerator(const double q[4], double m, const cplx j[4], cplx out[4])
{
    cplx qc[4];
    to_complex(q, qc);
    cplx qj = cdot(qc, j) / (m * m);
    for (int mu = 0; mu < 4; ++mu) out[mu] = -j[mu] + q[mu] * qj;
}

#endif
