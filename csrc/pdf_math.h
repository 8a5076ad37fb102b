// LHAPDF's log-bicubic interpolation of one PDF member's grid at one in-grid point: the
// numpy implementation in madnis_py/physics/pdf/interpolation.py, operation for operation
// (cubic Hermite in log x with LHAPDF's knot slopes, then in log Q2 with finite-difference
// slopes, bilinear on two-knot subgrids). Shared by the CPU loop (pdf_cpu.cpp) and the
// CUDA kernel (pdf_cuda.cu), so the CPU tests check the code the GPU threads run.
#pragma once

#include <cstdint>

#include "device.h"

namespace madnis {
namespace pdf {

struct Grid {
    const double* values;  // (nx, nq, nf)
    const double* dlogx;   // (nx, nq, nf): d(xf)/d(log x) at the knots
    const double* xs;
    const double* q2s;
    const double* logxs;
    const double* logq2s;
    const int64_t* q_lower;  // (nq - 1): the Q2 interval starts a (sub)grid
    const int64_t* q_upper;  // (nq - 1): it ends one
    int64_t nx, nq, nf;

    MADNIS_HD double v(int64_t i, int64_t j, int64_t c) const {
        return values[(i * nq + j) * nf + c];
    }
    MADNIS_HD double d(int64_t i, int64_t j, int64_t c) const {
        return dlogx[(i * nq + j) * nf + c];
    }
};

// Largest i with knots[i] <= v, capped at n - 2 (LHAPDF's indexbelow, numpy's
// searchsorted(side="right") - 1): the first knot above v by bisection, as
// std::upper_bound finds it.
MADNIS_HD int64_t index_below(const double* knots, int64_t n, double v) {
    int64_t lo = 0, count = n;
    while (count > 0) {
        const int64_t half = count / 2;
        if (!(v < knots[lo + half])) {
            lo += half + 1;
            count -= half + 1;
        } else {
            count = half;
        }
    }
    int64_t i = lo;
    if (i == n) i -= 1;
    i -= 1;
    if (i < 0) i = 0;
    return i > n - 2 ? n - 2 : i;
}

MADNIS_HD double hermite(double t, double vl, double vdl, double vh, double vdh) {
    const double t2 = t * t;
    const double t3 = t2 * t;
    return (2 * t3 - 3 * t2 + 1) * vl + (t3 - 2 * t2 + t) * vdl + (-2 * t3 + 3 * t2) * vh +
           (t3 - t2) * vdh;
}

// One point's knots and interpolation variables, shared by its columns.
struct Point {
    int64_t ix, iq, iqm, iqp;
    bool lower, upper;
    double tx, dlx, tq, dq1;
};

MADNIS_HD Point locate(const Grid& g, double x, double q2, double logx, double logq2) {
    Point p{};
    p.ix = index_below(g.xs, g.nx, x);
    p.iq = index_below(g.q2s, g.nq, q2);
    p.lower = g.q_lower[p.iq] != 0;
    p.upper = g.q_upper[p.iq] != 0;
    p.dlx = g.logxs[p.ix + 1] - g.logxs[p.ix];
    p.tx = (logx - g.logxs[p.ix]) / p.dlx;
    p.dq1 = g.logq2s[p.iq + 1] - g.logq2s[p.iq];
    p.tq = (logq2 - g.logq2s[p.iq]) / p.dq1;
    p.iqm = p.iq - 1 < 0 ? 0 : p.iq - 1;
    p.iqp = p.iq + 2 > g.nq - 1 ? g.nq - 1 : p.iq + 2;
    return p;
}

MADNIS_HD double along_x(const Grid& g, const Point& p, int64_t j, int64_t c) {
    return hermite(p.tx, g.v(p.ix, j, c), g.d(p.ix, j, c) * p.dlx, g.v(p.ix + 1, j, c),
                   g.d(p.ix + 1, j, c) * p.dlx);
}

MADNIS_HD double interpolate(const Grid& g, const Point& p, int64_t c) {
    const int64_t i = p.ix, j = p.iq;
    if (p.lower && p.upper) {  // a two-knot subgrid: bilinear in (log x, log Q2)
        const double fl = g.v(i, j, c) + p.tx * (g.v(i + 1, j, c) - g.v(i, j, c));
        const double fh = g.v(i, j + 1, c) + p.tx * (g.v(i + 1, j + 1, c) - g.v(i, j + 1, c));
        return fl + p.tq * (fh - fl);
    }
    const double vl = along_x(g, p, j, c);
    const double vh = along_x(g, p, j + 1, c);
    const double slope = vh - vl;
    double vdl = slope, vdh = slope;
    if (!p.lower) {
        const double vll = along_x(g, p, p.iqm, c);
        const double r0 = p.dq1 / (g.logq2s[j] - g.logq2s[p.iqm]);
        vdl = 0.5 * (slope + (vl - vll) * r0);
    }
    if (!p.upper) {
        const double vhh = along_x(g, p, p.iqp, c);
        const double r2 = p.dq1 / (g.logq2s[p.iqp] - g.logq2s[j + 1]);
        vdh = 0.5 * (slope + (vhh - vh) * r2);
    }
    return hermite(p.tq, vl, vdl, vh, vdh);
}

}  // namespace pdf

#ifdef MADNIS_WITH_CUDA
// The interpolation of the columns cols (k of them; per_point: column cols[e] of point e,
// k = 1) at n points on a CUDA device: every pointer a device pointer, out (n, k), launched
// on `stream` (a cudaStream_t). 0 or a cudaError_t.
int pdf_logbicubic_cuda(const pdf::Grid& g, const int64_t* cols, int64_t k, bool per_point,
                        const double* x, const double* q2, const double* logx,
                        const double* logq2, double* out, int64_t n, void* stream);
#endif

}  // namespace madnis
