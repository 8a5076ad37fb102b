// Phase-space mappings of one event: unit hypercube <-> momenta, with the weight
// (the inverse density in the flat measure dPhi_n, times dx1 dx2 for hadron beams).
//
// The algorithm, the order of the random numbers and every convention are stated in
// docs/phasespace.md; the numpy reference (madnis_py/phasespace/reference.py) follows the
// same page and the tests compare the two to 1e-12. The CPU loops (phasespace_cpu.cpp)
// and the CUDA kernels (phasespace_cuda.cu) both call these inline functions.
//
// A channel is a binary tree in pre-order (root first), produced from a topology by
// madnis_py.phasespace.topology.compile_topology: s-nodes decay isotropically in their
// rest frame, t-nodes split with the momentum transfer sampled along a t-channel chain.
#pragma once

#include <cmath>
#include <cstdint>

#include "device.h"

namespace madnis {
namespace ps {

constexpr int kMaxFinal = 16;
constexpr int kMaxNodes = 2 * kMaxFinal - 1;
constexpr int kIntCols = 5;    // kind, child1, child2, leg, sampler
constexpr int kFloatCols = 6;  // mass, min_mass, a, b, t_nu, t_m2
constexpr double kPi = 3.14159265358979323846;

enum NodeKind : int32_t { kLeaf = 0, kSNode = 1, kTNode = 2 };
enum SamplerKind : int32_t {
    kNoSampler = 0,
    kBreitWigner = 1,
    kPowerLaw = 2,
    kBreitWignerTail = 3
};

// Where the Breit-Wigner-with-tail sampler leaves the Breit-Wigner: M + kTailCutoff Gamma
// (MadGraph's default bwcutoff, its on-shell window).
constexpr double kTailCutoff = 15;

// A compiled channel. The tables live in host memory for the CPU loops and in device
// memory for the CUDA kernels.
struct Program {
    const int32_t* itab;
    const double* ftab;
    int n_nodes;
    int n_final;
    bool hadronic;
    double sqrt_s;

    MADNIS_HD int kind(int k) const { return itab[k * kIntCols + 0]; }
    MADNIS_HD int child1(int k) const { return itab[k * kIntCols + 1]; }
    MADNIS_HD int child2(int k) const { return itab[k * kIntCols + 2]; }
    MADNIS_HD int leg(int k) const { return itab[k * kIntCols + 3]; }
    MADNIS_HD int sampler(int k) const { return itab[k * kIntCols + 4]; }
    MADNIS_HD double mass(int k) const { return ftab[k * kFloatCols + 0]; }
    MADNIS_HD double min_mass(int k) const { return ftab[k * kFloatCols + 1]; }
    MADNIS_HD double a(int k) const { return ftab[k * kFloatCols + 2]; }
    MADNIS_HD double b(int k) const { return ftab[k * kFloatCols + 3]; }
    MADNIS_HD double t_nu(int k) const { return ftab[k * kFloatCols + 4]; }
    MADNIS_HD double t_m2(int k) const { return ftab[k * kFloatCols + 5]; }
    MADNIS_HD int dims() const { return 3 * n_final - 4 + (hadronic ? 2 : 0); }
};

// RAMBO over fixed masses (massless when all are zero).
struct RamboConfig {
    const double* masses;
    int n_final;
    bool hadronic;
    double sqrt_s;
    double min_shat;

    MADNIS_HD int dims() const { return 4 * n_final + (hadronic ? 2 : 0); }
};

struct Vec4 {
    double e, x, y, z;
};

MADNIS_HD Vec4 operator-(const Vec4& p, const Vec4& q) {
    return {p.e - q.e, p.x - q.x, p.y - q.y, p.z - q.z};
}
MADNIS_HD Vec4 operator+(const Vec4& p, const Vec4& q) {
    return {p.e + q.e, p.x + q.x, p.y + q.y, p.z + q.z};
}
MADNIS_HD double minkowski2(const Vec4& p) {
    return p.e * p.e - p.x * p.x - p.y * p.y - p.z * p.z;
}
MADNIS_HD double kallen(double a, double b, double c) {
    const double d = a - b - c;
    return d * d - 4 * b * c;
}
MADNIS_HD bool in_unit(double r) { return r >= 0 && r <= 1; }  // false for NaN
MADNIS_HD bool finite(double x) { return x - x == 0; }        // false for NaN and inf

// Rest-frame vector k (mass squared mk2) of a momentum Q (mass M) seen in the frame where
// Q moves; with sign = -1 the inverse boost (into Q's rest frame). Written so that large
// boosts lose nothing: a vector moving against the boost would get its energy and
// longitudinal momentum as differences of nearly equal numbers; there they come from
// k0 + k_par = (mk2 + k_perp^2) / (k0 - k_par) and Q0 - |Q| = M^2 / (Q0 + |Q|) instead.
MADNIS_HD Vec4 boost(const Vec4& Q, double M, const Vec4& k, double mk2, double sign = 1) {
    const double qa = sqrt(Q.x * Q.x + Q.y * Q.y + Q.z * Q.z);
    if (qa == 0) return k;
    const double ux = sign * Q.x / qa, uy = sign * Q.y / qa, uz = sign * Q.z / qa;
    const double kpar = k.x * ux + k.y * uy + k.z * uz;
    const double tx = k.x - kpar * ux, ty = k.y - kpar * uy, tz = k.z - kpar * uz;
    double e, ppar;
    if (kpar >= 0) {
        e = (Q.e * k.e + qa * kpar) / M;
        ppar = (Q.e * kpar + qa * k.e) / M;
    } else {
        const double a = (mk2 + tx * tx + ty * ty + tz * tz) / (k.e - kpar);
        const double b = M * M / (Q.e + qa);
        e = (Q.e * a - b * kpar) / M;
        ppar = (qa * a + b * kpar) / M;
    }
    return {e, tx + ppar * ux, ty + ppar * uy, tz + ppar * uz};
}

// p.q for momenta with invariant masses squared sp, sq, written so that nearly collinear
// pairs lose nothing to cancellation: E_p E_q - |p||q| from the masses, and
// |p||q| (1 - cos) = |p||q| |p^ - q^|^2 / 2.
MADNIS_HD double dot_stable(const Vec4& p, double sp, const Vec4& q, double sq) {
    const double ap = sqrt(p.x * p.x + p.y * p.y + p.z * p.z);
    const double aq = sqrt(q.x * q.x + q.y * q.y + q.z * q.z);
    if (ap == 0 || aq == 0) return p.e * q.e - p.x * q.x - p.y * q.y - p.z * q.z;
    const double ee = (sp * sq + sp * aq * aq + sq * ap * ap) / (p.e * q.e + ap * aq);
    const double dx = p.x / ap - q.x / aq, dy = p.y / ap - q.y / aq, dz = p.z / ap - q.z / aq;
    return ee + 0.5 * ap * aq * (dx * dx + dy * dy + dz * dz);
}


// ---- invariant samplers: x in [lo, hi] from r in [0, 1], jac = dx/dr -------------------

MADNIS_HD double power_forward(double nu, double c, double lo, double hi, double r,
                               double& jac) {
    if (nu == 0) {
        jac = hi - lo;
        return lo + r * (hi - lo);
    }
    const double vlo = lo + c, vhi = hi + c;
    double v;
    if (nu == 1) {
        const double l = log(vhi / vlo);
        v = vlo * exp(r * l);
        jac = v * l;
    } else {
        // v^nu = v / v^e saves a pow.
        const double e = 1 - nu;
        const double plo = pow(vlo, e), phi = pow(vhi, e), q = plo + r * (phi - plo);
        v = pow(q, 1 / e);
        jac = (phi - plo) / e * (v / q);
    }
    return v - c;
}

MADNIS_HD double power_inverse(double nu, double c, double lo, double hi, double x,
                               double& jac) {
    if (nu == 0) {
        jac = hi - lo;
        return (x - lo) / (hi - lo);
    }
    const double vlo = lo + c, vhi = hi + c, v = x + c;
    if (nu == 1) {
        const double l = log(vhi / vlo);
        jac = v * l;
        return log(v / vlo) / l;
    }
    const double e = 1 - nu;
    const double plo = pow(vlo, e), phi = pow(vhi, e), q = pow(v, e);
    jac = (phi - plo) / e * (v / q);
    return (q - plo) / (phi - plo);
}

MADNIS_HD double breit_wigner_forward(double m, double g, double lo, double hi, double r,
                                      double& jac) {
    const double m2 = m * m, mg = m * g;
    const double ylo = atan((lo - m2) / mg), yhi = atan((hi - m2) / mg);
    const double x = m2 + mg * tan(ylo + r * (yhi - ylo));
    const double d = x - m2;
    jac = (yhi - ylo) * (d * d + mg * mg) / mg;
    return x;
}

MADNIS_HD double breit_wigner_inverse(double m, double g, double lo, double hi, double x,
                                      double& jac) {
    const double m2 = m * m, mg = m * g;
    const double ylo = atan((lo - m2) / mg), yhi = atan((hi - m2) / mg);
    const double d = x - m2;
    jac = (yhi - ylo) * (d * d + mg * mg) / mg;
    return (atan(d / mg) - ylo) / (yhi - ylo);
}

// Breit-Wigner with a 1/x tail: the Breit-Wigner on [lo, xb] and 1/x on [xb, hi], with
// xb = (M + kTailCutoff G)^2 and the share p of the Breit-Wigner piece chosen so that the
// density is continuous at xb. A pure Breit-Wigner leaves the off-shell region far above
// the pole a share ~ M G / (pi x) of the unit interval (2e-4 for a Z at 500 GeV), where a
// propagator of a diagram (an s-channel Z* far off shell, next to a photon) still carries
// a sizeable part of the integrand; the 1/x tail gives it a share that grid adaptation
// can work with (about 7 % for a Z up to 1 TeV). hi <= xb: the plain Breit-Wigner (p = 1);
// lo >= xb: 1/x on [lo, hi] (p = 0).
struct TailSplit {
    double xb, p;
};

MADNIS_HD TailSplit tail_split(double m, double g, double lo, double hi) {
    const double c = m + kTailCutoff * g, xb = c * c;
    if (hi <= xb) return {xb, 1.0};
    if (lo >= xb) return {lo, 0.0};
    const double m2 = m * m, mg = m * g, d = xb - m2;
    const double g_bw = mg / ((d * d + mg * mg) * (atan(d / mg) - atan((lo - m2) / mg)));
    const double g_tail = 1 / (xb * log(hi / xb));
    return {xb, g_tail / (g_bw + g_tail)};
}

MADNIS_HD double breit_wigner_tail_forward(double m, double g, double lo, double hi, double r,
                                           double& jac) {
    const TailSplit t = tail_split(m, g, lo, hi);
    if (t.p == 1) return breit_wigner_forward(m, g, lo, hi, r, jac);
    if (t.p == 0) return power_forward(1, 0, lo, hi, r, jac);
    double x;
    if (r < t.p) {
        x = breit_wigner_forward(m, g, lo, t.xb, r / t.p, jac);
        jac /= t.p;
    } else {
        x = power_forward(1, 0, t.xb, hi, (r - t.p) / (1 - t.p), jac);
        jac /= 1 - t.p;
    }
    return x;
}

MADNIS_HD double breit_wigner_tail_inverse(double m, double g, double lo, double hi, double x,
                                           double& jac) {
    const TailSplit t = tail_split(m, g, lo, hi);
    if (t.p == 1) return breit_wigner_inverse(m, g, lo, hi, x, jac);
    if (t.p == 0) return power_inverse(1, 0, lo, hi, x, jac);
    double r;
    if (x < t.xb) {
        r = t.p * breit_wigner_inverse(m, g, lo, t.xb, x, jac);
        jac /= t.p;
    } else {
        r = t.p + (1 - t.p) * power_inverse(1, 0, t.xb, hi, x, jac);
        jac /= 1 - t.p;
    }
    return r;
}

// The samplers' x stays in [lo, hi]: a Breit-Wigner on a range far below its pole (a W
// below a massless propagator of a few MeV) loses the range to cancellation, and an x
// above hi made a daughter heavier than its parent (negative energies downstream).
MADNIS_HD double invariant_forward(int sampler, double a, double b, double lo, double hi,
                                   double r, double& jac) {
    double x;
    if (sampler == kBreitWigner) {
        x = breit_wigner_forward(a, b, lo, hi, r, jac);
    } else if (sampler == kBreitWignerTail) {
        x = breit_wigner_tail_forward(a, b, lo, hi, r, jac);
    } else {
        x = power_forward(a, b, lo, hi, r, jac);
    }
    return fmin(fmax(x, lo), hi);
}

MADNIS_HD double invariant_inverse(int sampler, double a, double b, double lo, double hi,
                                   double x, double& jac) {
    if (sampler == kBreitWigner) return breit_wigner_inverse(a, b, lo, hi, x, jac);
    if (sampler == kBreitWignerTail) return breit_wigner_tail_inverse(a, b, lo, hi, x, jac);
    return power_inverse(a, b, lo, hi, x, jac);
}

// ---- pieces shared by the forward and inverse channel maps -----------------------------

// Two-body kinematics of a splitting M -> m1 m2 in the rest frame of M.
struct TwoBody {
    double lam, p, e1, e2;
};

MADNIS_HD TwoBody two_body(double M, double m1, double m2) {
    const double M2 = M * M, s1 = m1 * m1, s2 = m2 * m2;
    TwoBody t;
    t.lam = fmax(kallen(M2, s1, s2), 0.0);
    t.p = sqrt(t.lam) / (2 * M);
    t.e1 = (M2 + s1 - s2) / (2 * M);
    t.e2 = (M2 + s2 - s1) / (2 * M);
    return t;
}

// The t-node frame. The node's momentum Q = qa + pb, with pb the massless incoming parton
// 1 and qa the space-like line from parton 0 (qa^2 = ma2: 0 at the root, the parent's t
// below). In the rest frame of Q, pb* = (Pa, -Pa n), qa* = (Ea, Pa n) with
// Pa = (M^2 - ma2) / 2M, Ea = (M^2 + ma2) / 2M. The range of u = -t is written without
// cancellation: t_max = (ma2/M - m1^2/(E1 + p)) m2^2/(E2 + p), t_max - t_min = 4 Pa p,
// so a massless second daughter gives t_max = 0 exactly, as a power law near 0 needs.
// e1, e2 completing the unit vector n to a right-handed frame (e1 x e2 = n): e2 in the
// transverse plane, e1 towards -z; exactly x, y for n = z.
MADNIS_HD void transverse_axes(const double* n, double* e1, double* e2) {
    const double rho = sqrt(n[0] * n[0] + n[1] * n[1]);
    const double cf = rho == 0 ? 1.0 : n[0] / rho, sf = rho == 0 ? 0.0 : n[1] / rho;
    e1[0] = n[2] * cf;
    e1[1] = n[2] * sf;
    e1[2] = -rho;
    e2[0] = -sf;
    e2[1] = cf;
    e2[2] = 0;
}

struct TFrame {
    double pa, ulo, uhi, c;
    double n[3], e1[3], e2[3];
};

MADNIS_HD TFrame t_frame(const Vec4& Q, double M, double ma2, const Vec4& pb,
                         const TwoBody& tb, double m1, double m2, double t_m2) {
    TFrame f;
    f.pa = (M * M - ma2) / (2 * M);
    const double tmax = (ma2 / M - m1 * m1 / (tb.e1 + tb.p)) * (m2 * m2 / (tb.e2 + tb.p));
    f.ulo = -tmax;
    f.uhi = f.ulo + 4 * f.pa * tb.p;
    f.c = t_m2 - fmin(f.ulo, 0.0);
    const Vec4 b = boost(Q, M, pb, 0.0, -1);
    const double babs = sqrt(b.x * b.x + b.y * b.y + b.z * b.z);
    f.n[0] = -b.x / babs;
    f.n[1] = -b.y / babs;
    f.n[2] = -b.z / babs;
    transverse_axes(f.n, f.e1, f.e2);
    return f;
}

// The helicity frame of an s-node's decay: n along the node's momentum Qv (the z axis
// where Qv = 0, e.g. at the root), e1, e2 from n (transverse_axes) as for a t-node. At Qv = 0 the axes are
// exactly x, y, z, so the root's decay is the z-axis one bit for bit.
struct SFrame {
    double n[3], e1[3], e2[3];
};

MADNIS_HD SFrame s_frame(const Vec4& Q) {
    SFrame f;
    const double qa = sqrt(Q.x * Q.x + Q.y * Q.y + Q.z * Q.z);
    f.n[0] = qa == 0 ? 0.0 : Q.x / qa;
    f.n[1] = qa == 0 ? 0.0 : Q.y / qa;
    f.n[2] = qa == 0 ? 1.0 : Q.z / qa;
    transverse_axes(f.n, f.e1, f.e2);
    return f;
}

MADNIS_HD Vec4 beam(double e, double sign) { return {e, 0, 0, sign * e}; }

MADNIS_HD void write_vec(double* out, const Vec4& p) {
    out[0] = p.e;
    out[1] = p.x;
    out[2] = p.y;
    out[3] = p.z;
}

MADNIS_HD Vec4 read_vec(const double* in) { return {in[0], in[1], in[2], in[3]}; }

// Partonic energy and rapidity from two random numbers (hadron beams); returns the
// weight factor dx1 dx2 / (dr0 dr1), and x1, x2, shat, y.
MADNIS_HD double luminosity_forward(int sampler, double a, double b, double min_mass,
                                    double S, const double* r, double& shat, double& y,
                                    double* x12) {
    double jac;
    shat = invariant_forward(sampler, a, b, min_mass * min_mass, S, r[0], jac);
    const double tau = shat / S;
    const double ylo = 0.5 * log(tau), yhi = -ylo;
    y = ylo + r[1] * (yhi - ylo);
    const double st = sqrt(tau);
    x12[0] = st * exp(y);
    x12[1] = st * exp(-y);
    return jac / S * (yhi - ylo);
}

MADNIS_HD double luminosity_inverse(int sampler, double a, double b, double min_mass,
                                    double S, double x1, double x2, double& shat, double& y,
                                    double* r) {
    double jac;
    shat = x1 * x2 * S;
    y = 0.5 * log(x1 / x2);
    r[0] = invariant_inverse(sampler, a, b, min_mass * min_mass, S, shat, jac);
    const double ylo = 0.5 * log(shat / S), yhi = -ylo;
    r[1] = (y - ylo) / (yhi - ylo);
    return jac / S * (yhi - ylo);
}

MADNIS_HD void fill_beams(double* mom, double sqrt_s, const double* x12) {
    write_vec(mom, beam(0.5 * sqrt_s * x12[0], 1));
    write_vec(mom + 4, beam(0.5 * sqrt_s * x12[1], -1));
}

MADNIS_HD bool finite_positive(double w) { return w > 0 && w <= 1.7976931348623157e308; }

// End of a forward map: a point outside gets zero momenta, x12 and weight; a point
// inside gets its beams (the final state is written by the caller).
MADNIS_HD bool finish_forward(bool ok, double w, int nmom, double sqrt_s, double* mom,
                              double& weight, double* x12) {
    ok = ok && finite_positive(w);
    if (!ok) {
        for (int i = 0; i < nmom; ++i) mom[i] = 0;
        x12[0] = x12[1] = 0;
        w = 0;
    } else {
        fill_beams(mom, sqrt_s, x12);
    }
    weight = w;
    return ok;
}

// ---- channel map ------------------------------------------------------------------------

// r (dims) -> momenta ((n_final + 2) * 4), weight, x12 (2). Returns false (and writes a
// zero weight and zero momenta) for points outside the physical region.
MADNIS_HD bool channel_forward(const Program& p, const double* r, double* mom, double& weight,
                               double* x12) {
    const int dims = p.dims(), nmom = 4 * (p.n_final + 2);
    bool ok = true;
    for (int i = 0; i < dims; ++i) ok = ok && in_unit(r[i]);
    double w = 1, S = p.sqrt_s * p.sqrt_s, shat = S, y = 0;
    x12[0] = x12[1] = 1;
    int ir = 0;
    if (ok && p.hadronic) {
        w = luminosity_forward(p.sampler(0), p.a(0), p.b(0), p.min_mass(0), S, r, shat, y, x12);
        ir = 2;
    }
    double m[kMaxNodes], ma2[kMaxNodes];
    Vec4 Q[kMaxNodes];
    for (int k = 0; k < p.n_nodes; ++k) m[k] = p.kind(k) == kLeaf ? p.mass(k) : p.min_mass(k);
    m[0] = sqrt(shat);
    // Invariant masses, parents before children.
    for (int k = 0; ok && k < p.n_nodes; ++k) {
        if (p.kind(k) == kLeaf) continue;
        const int c1 = p.child1(k), c2 = p.child2(k);
        for (int j = 0; j < 2 && ok; ++j) {
            const int c = j == 0 ? c1 : c2;
            if (p.kind(c) == kLeaf) continue;
            const double up = m[k] - (j == 0 ? p.min_mass(c2) : m[c1]);
            if (!(up >= p.min_mass(c))) {
                ok = false;
                break;
            }
            double jac;
            const double s = invariant_forward(p.sampler(c), p.a(c), p.b(c),
                                               p.min_mass(c) * p.min_mass(c), up * up, r[ir++],
                                               jac);
            m[c] = sqrt(fmax(s, 0.0));
            w *= jac / (2 * kPi);
        }
    }
    // Splittings.
    const double rs = sqrt(shat);
    const Vec4 pb = beam(0.5 * rs, -1);
    Q[0] = {rs, 0, 0, 0};
    ma2[0] = 0;
    for (int k = 0; ok && k < p.n_nodes; ++k) {
        if (p.kind(k) == kLeaf) continue;
        const int c1 = p.child1(k), c2 = p.child2(k);
        const double M = m[k];
        if (!(m[c1] + m[c2] <= M)) {  // daughters above their parent: outside, never
            ok = false;               // negative energies (two_body cannot see it when
            continue;                 // a daughter is massless)
        }
        const TwoBody tb = two_body(M, m[c1], m[c2]);
        const double ra = r[ir++];
        double kv[3], cs, sn, cphi, sphi;
        sincos(2 * kPi * r[ir++], &sphi, &cphi);
        if (p.kind(k) == kSNode) {
            cs = 2 * ra - 1;
            sn = 2 * sqrt(ra * (1 - ra));
            const SFrame f = s_frame(Q[k]);
            const double a1 = tb.p * sn * cphi, a2 = tb.p * sn * sphi, a3 = tb.p * cs;
            for (int i = 0; i < 3; ++i) kv[i] = a1 * f.e1[i] + a2 * f.e2[i] + a3 * f.n[i];
            w *= sqrt(tb.lam) / (8 * kPi * M * M);
        } else {
            const TFrame f = t_frame(Q[k], M, ma2[k], pb, tb, m[c1], m[c2], p.t_m2(k));
            double jac;
            const double u = power_forward(p.t_nu(k), f.c, f.ulo, f.uhi, ra, jac);
            ma2[c2] = -u;
            const double d = f.uhi - f.ulo, du = fmax(u - f.ulo, 0.0), dv = fmax(f.uhi - u, 0.0);
            cs = 1 - 2 * du / d;
            sn = 2 * sqrt(du * dv) / d;
            const double a1 = tb.p * sn * cphi, a2 = tb.p * sn * sphi, a3 = tb.p * cs;
            for (int i = 0; i < 3; ++i) kv[i] = a1 * f.e1[i] + a2 * f.e2[i] + a3 * f.n[i];
            w *= jac / (16 * kPi * M * f.pa);
        }
        Q[c1] = boost(Q[k], M, {tb.e1, kv[0], kv[1], kv[2]}, m[c1] * m[c1]);
        Q[c2] = boost(Q[k], M, {tb.e2, -kv[0], -kv[1], -kv[2]}, m[c2] * m[c2]);
    }
    if (!finish_forward(ok, w, nmom, p.sqrt_s, mom, weight, x12)) return false;
    const Vec4 lab = {rs * cosh(y), 0, 0, rs * sinh(y)};
    for (int k = 0; k < p.n_nodes; ++k)
        if (p.kind(k) == kLeaf)
            write_vec(mom + 4 * p.leg(k),
                      p.hadronic ? boost(lab, rs, Q[k], m[k] * m[k]) : Q[k]);
    return true;
}

// momenta -> r (dims), weight. Returns false (zero r and weight) outside.
MADNIS_HD bool channel_inverse(const Program& p, const double* mom, double* r, double& weight) {
    const int dims = p.dims();
    double w = 1, S = p.sqrt_s * p.sqrt_s, shat = S, y = 0;
    bool ok = true;
    for (int i = 0; i < 4 * (p.n_final + 2); ++i) ok = ok && finite(mom[i]);
    int ir = 0;
    if (ok && p.hadronic) {
        const double x1 = 2 * mom[0] / p.sqrt_s, x2 = 2 * mom[4] / p.sqrt_s;
        ok = x1 > 0 && x1 <= 1 && x2 > 0 && x2 <= 1;
        if (ok)
            w = luminosity_inverse(p.sampler(0), p.a(0), p.b(0), p.min_mass(0), S, x1, x2,
                                   shat, y, r);
        ir = 2;
    }
    double m[kMaxNodes], s2[kMaxNodes], ma2[kMaxNodes];
    Vec4 Q[kMaxNodes];
    const double rs = sqrt(shat);
    const Vec4 lab = {rs * cosh(y), 0, 0, rs * sinh(y)};
    // Children follow their parent in pre-order: sum the leaves bottom-up, with the
    // invariant masses built from the children's without cancellation, from the given
    // (lab) momenta, before a boost could add its rounding.
    Vec4 L[kMaxNodes];
    for (int k = p.n_nodes - 1; ok && k >= 0; --k) {
        if (p.kind(k) == kLeaf) {
            L[k] = read_vec(mom + 4 * p.leg(k));
            m[k] = p.mass(k);
            Q[k] = p.hadronic ? boost(lab, rs, L[k], m[k] * m[k], -1) : L[k];
            s2[k] = m[k] * m[k];
        } else {
            const int c1 = p.child1(k), c2 = p.child2(k);
            L[k] = L[c1] + L[c2];
            Q[k] = Q[c1] + Q[c2];
            s2[k] = s2[c1] + s2[c2] + 2 * dot_stable(L[c1], s2[c1], L[c2], s2[c2]);
            m[k] = sqrt(fmax(s2[k], 0.0));
        }
    }
    const Vec4 pb = beam(0.5 * rs, -1);
    m[0] = rs;
    Q[0] = {rs, 0, 0, 0};
    ma2[0] = 0;
    for (int k = 0; ok && k < p.n_nodes; ++k) {
        if (p.kind(k) == kLeaf) continue;
        const int c1 = p.child1(k), c2 = p.child2(k);
        for (int j = 0; j < 2 && ok; ++j) {
            const int c = j == 0 ? c1 : c2;
            if (p.kind(c) == kLeaf) continue;
            const double up = m[k] - (j == 0 ? p.min_mass(c2) : m[c1]);
            double jac;
            r[ir++] = invariant_inverse(p.sampler(c), p.a(c), p.b(c),
                                        p.min_mass(c) * p.min_mass(c), up * up,
                                        fmax(s2[c], 0.0), jac);
            w *= jac / (2 * kPi);
        }
    }
    for (int k = 0; ok && k < p.n_nodes; ++k) {
        if (p.kind(k) == kLeaf) continue;
        const int c1 = p.child1(k), c2 = p.child2(k);
        const double M = m[k];
        const TwoBody tb = two_body(M, m[c1], m[c2]);
        const Vec4 k1 = boost(Q[k], M, Q[c1], s2[c1], -1);
        const double kabs = sqrt(k1.x * k1.x + k1.y * k1.y + k1.z * k1.z);
        double phi;
        if (p.kind(k) == kSNode) {
            const SFrame f = s_frame(Q[k]);
            r[ir++] = 0.5 * (1 + (k1.x * f.n[0] + k1.y * f.n[1] + k1.z * f.n[2]) / kabs);
            phi = atan2(k1.x * f.e2[0] + k1.y * f.e2[1] + k1.z * f.e2[2],
                        k1.x * f.e1[0] + k1.y * f.e1[1] + k1.z * f.e1[2]);
            w *= sqrt(tb.lam) / (8 * kPi * M * M);
        } else {
            const TFrame f = t_frame(Q[k], M, ma2[k], pb, tb, m[c1], m[c2], p.t_m2(k));
            // u from 1 -+ cos = kt^2 / (|k| (|k| +- kn)), accurate near both poles.
            const double kn = k1.x * f.n[0] + k1.y * f.n[1] + k1.z * f.n[2];
            const double cx = k1.y * f.n[2] - k1.z * f.n[1], cy = k1.z * f.n[0] - k1.x * f.n[2],
                         cz = k1.x * f.n[1] - k1.y * f.n[0];
            const double kt2 = cx * cx + cy * cy + cz * cz, half = 0.5 * (f.uhi - f.ulo);
            const double u = kn >= 0 ? f.ulo + half * kt2 / (kabs * (kabs + kn))
                                     : f.uhi - half * kt2 / (kabs * (kabs - kn));
            ma2[c2] = -u;
            double jac;
            r[ir++] = power_inverse(p.t_nu(k), f.c, f.ulo, f.uhi, u, jac);
            phi = atan2(k1.x * f.e2[0] + k1.y * f.e2[1] + k1.z * f.e2[2],
                        k1.x * f.e1[0] + k1.y * f.e1[1] + k1.z * f.e1[2]);
            w *= jac / (16 * kPi * M * f.pa);
        }
        if (phi < 0) phi += 2 * kPi;
        r[ir++] = phi / (2 * kPi);
    }
    for (int i = 0; ok && i < dims; ++i) {
        ok = r[i] >= -1e-12 && r[i] <= 1 + 1e-12;
        r[i] = fmin(fmax(r[i], 0.0), 1.0);
    }
    ok = ok && finite_positive(w);
    if (!ok) {
        for (int i = 0; i < dims; ++i) r[i] = 0;
        weight = 0;
        return false;
    }
    weight = w;
    return true;
}

// ---- RAMBO (Kleiss, Stirling, Ellis, Comput. Phys. Commun. 40 (1986) 359) -------------

MADNIS_HD double rambo_massless_weight(int n, double shat) {
    // (2 pi)^(4 - 3n) (pi/2)^(n-1) shat^(n-2) / ((n-1)! (n-2)!)
    double w = pow(2 * kPi, 4 - 3 * n) * pow(kPi / 2, n - 1) * pow(shat, n - 2);
    for (int i = 2; i <= n - 1; ++i) w /= i;
    for (int i = 2; i <= n - 2; ++i) w /= i;
    return w;
}

MADNIS_HD bool rambo_forward(const RamboConfig& cfg, const double* r, double* mom,
                             double& weight, double* x12) {
    const int n = cfg.n_final, dims = cfg.dims(), nmom = 4 * (n + 2);
    bool ok = true;
    for (int i = 0; i < dims; ++i) ok = ok && in_unit(r[i]);
    double S = cfg.sqrt_s * cfg.sqrt_s, shat = S, y = 0, w = 1, msum = 0;
    for (int i = 0; i < n; ++i) msum += cfg.masses[i];
    x12[0] = x12[1] = 1;
    if (ok && cfg.hadronic) {
        const double lo = fmax(msum, sqrt(fmax(cfg.min_shat, 0.0)));
        w = luminosity_forward(kPowerLaw, 1.0, 0.0, lo, S, r, shat, y, x12);
        r += 2;
    }
    const double rs = sqrt(shat);
    Vec4 q[kMaxFinal];
    Vec4 sum = {0, 0, 0, 0};
    for (int i = 0; ok && i < n; ++i) {
        const double c = 2 * r[4 * i] - 1;
        double sphi, cphi;
        sincos(2 * kPi * r[4 * i + 1], &sphi, &cphi);
        const double q0 = -log(r[4 * i + 2] * r[4 * i + 3]);
        const double s = sqrt(1 - c * c);
        q[i] = {q0, q0 * s * cphi, q0 * s * sphi, q0 * c};
        sum = sum + q[i];
    }
    const double M = sqrt(minkowski2(sum));
    const double bx = -sum.x / M, by = -sum.y / M, bz = -sum.z / M;
    const double x = rs / M, g = sum.e / M, a = 1 / (1 + g);
    Vec4 p[kMaxFinal];
    for (int i = 0; ok && i < n; ++i) {
        const double bq = bx * q[i].x + by * q[i].y + bz * q[i].z;
        p[i] = {x * (g * q[i].e + bq), x * (q[i].x + bx * q[i].e + a * bq * bx),
                x * (q[i].y + by * q[i].e + a * bq * by), x * (q[i].z + bz * q[i].e + a * bq * bz)};
    }
    w *= rambo_massless_weight(n, shat);
    if (ok && msum > 0) {
        if (!(msum < rs)) ok = false;
        // Rescale the three-momenta so the massive energies add up to sqrt(shat).
        double xi = sqrt(1 - (msum / rs) * (msum / rs));
        for (int it = 0; ok && it < 50; ++it) {
            double f = -rs, df = 0;
            for (int i = 0; i < n; ++i) {
                const double m = cfg.masses[i], e = p[i].e;
                const double ei = sqrt(m * m + xi * xi * e * e);
                f += ei;
                df += xi * e * e / ei;
            }
            const double step = f / df;
            xi -= step;
            if (fabs(step) <= 1e-15 * xi) break;
        }
        double sk = 0, prod = 1, sk2e = 0;
        for (int i = 0; ok && i < n; ++i) {
            const double m = cfg.masses[i], kabs = xi * p[i].e;
            const double e = sqrt(m * m + kabs * kabs);
            sk += kabs;
            prod *= kabs / e;
            sk2e += kabs * kabs / e;
            p[i] = {e, xi * p[i].x, xi * p[i].y, xi * p[i].z};
        }
        w *= pow(sk / rs, 2 * n - 3) * prod * rs / sk2e;
    }
    if (!finish_forward(ok, w, nmom, cfg.sqrt_s, mom, weight, x12)) return false;
    const Vec4 lab = {rs * cosh(y), 0, 0, rs * sinh(y)};
    for (int i = 0; i < n; ++i)
        write_vec(mom + 4 * (i + 2),
                  cfg.hadronic ? boost(lab, rs, p[i], cfg.masses[i] * cfg.masses[i]) : p[i]);
    return true;
}

}  // namespace ps
}  // namespace madnis
