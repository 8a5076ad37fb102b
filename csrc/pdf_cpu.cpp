// LHAPDF's log-bicubic interpolation of one PDF member's grid at in-grid points, on the
// CPU: the numpy implementation in madnis_py/physics/pdf/interpolation.py, operation for
// operation (cubic Hermite in log x with LHAPDF's knot slopes, then in log Q2 with
// finite-difference slopes, bilinear on two-knot subgrids), without its temporaries.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <stdexcept>
#include <vector>

#include "pybuffer.h"

namespace py = pybind11;

namespace madnis {

namespace {

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

    double v(int64_t i, int64_t j, int64_t c) const { return values[(i * nq + j) * nf + c]; }
    double d(int64_t i, int64_t j, int64_t c) const { return dlogx[(i * nq + j) * nf + c]; }
};

// Largest i with knots[i] <= v, capped at n - 2 (LHAPDF's indexbelow, numpy's
// searchsorted(side="right") - 1).
inline int64_t index_below(const double* knots, int64_t n, double v) {
    int64_t i = std::upper_bound(knots, knots + n, v) - knots;
    if (i == n) i -= 1;
    i -= 1;
    return std::min<int64_t>(std::max<int64_t>(i, 0), n - 2);
}

inline double hermite(double t, double vl, double vdl, double vh, double vdh) {
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

inline Point locate(const Grid& g, double x, double q2, double logx, double logq2) {
    Point p{};
    p.ix = index_below(g.xs, g.nx, x);
    p.iq = index_below(g.q2s, g.nq, q2);
    p.lower = g.q_lower[p.iq] != 0;
    p.upper = g.q_upper[p.iq] != 0;
    p.dlx = g.logxs[p.ix + 1] - g.logxs[p.ix];
    p.tx = (logx - g.logxs[p.ix]) / p.dlx;
    p.dq1 = g.logq2s[p.iq + 1] - g.logq2s[p.iq];
    p.tq = (logq2 - g.logq2s[p.iq]) / p.dq1;
    p.iqm = std::max<int64_t>(p.iq - 1, 0);
    p.iqp = std::min<int64_t>(p.iq + 2, g.nq - 1);
    return p;
}

inline double along_x(const Grid& g, const Point& p, int64_t j, int64_t c) {
    return hermite(p.tx, g.v(p.ix, j, c), g.d(p.ix, j, c) * p.dlx, g.v(p.ix + 1, j, c),
                   g.d(p.ix + 1, j, c) * p.dlx);
}

inline double interpolate(const Grid& g, const Point& p, int64_t c) {
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

}  // namespace

void register_pdf(py::module_& m) {
    m.def(
        "pdf_logbicubic",
        [](const py::array& values, const py::array& dlogx, const py::array& xs,
           const py::array& q2s, const py::array& logxs, const py::array& logq2s,
           const py::array& q_lower, const py::array& q_upper, const py::array& cols,
           bool per_point, const py::array& x, const py::array& q2, const py::array& logx,
           const py::array& logq2, const py::array& out) {
            if (values.ndim() != 3) throw std::invalid_argument("values: expected (nx, nq, nf)");
            Grid g{};
            g.nx = values.shape(0);
            g.nq = values.shape(1);
            g.nf = values.shape(2);
            if (g.nx < 2 || g.nq < 2) throw std::invalid_argument("values: fewer than 2 knots");
            const int64_t size = g.nx * g.nq * g.nf;
            g.values = buffer<double>(values, "values", size, false);
            g.dlogx = buffer<double>(dlogx, "dlogx", size, false);
            g.xs = buffer<double>(xs, "xs", g.nx, false);
            g.q2s = buffer<double>(q2s, "q2s", g.nq, false);
            g.q_lower = buffer<int64_t>(q_lower, "q_lower", g.nq - 1, false);
            g.q_upper = buffer<int64_t>(q_upper, "q_upper", g.nq - 1, false);
            g.logxs = buffer<double>(logxs, "logxs", g.nx, false);
            g.logq2s = buffer<double>(logq2s, "logq2s", g.nq, false);
            const int64_t n = x.size();
            const double* px = buffer<double>(x, "x", n, false);
            const double* pq = buffer<double>(q2, "q2", n, false);
            const double* plx = buffer<double>(logx, "logx", n, false);
            const double* plq = buffer<double>(logq2, "logq2", n, false);
            const int64_t k = per_point ? 1 : cols.size();
            const int64_t* pc = buffer<int64_t>(cols, "cols", per_point ? n : k, false);
            for (int64_t c = 0; c < cols.size(); ++c)
                if (pc[c] < 0 || pc[c] >= g.nf)
                    throw std::invalid_argument("cols: a column outside the grid's flavours");
            double* po = buffer<double>(out, "out", n * k, true);
            py::gil_scoped_release release;
            for (int64_t e = 0; e < n; ++e) {
                const Point p = locate(g, px[e], pq[e], plx[e], plq[e]);
                if (per_point) {
                    po[e] = interpolate(g, p, pc[e]);
                } else {
                    for (int64_t c = 0; c < k; ++c) po[e * k + c] = interpolate(g, p, pc[c]);
                }
            }
        },
        py::arg("values"), py::arg("dlogx"), py::arg("xs"), py::arg("q2s"), py::arg("logxs"),
        py::arg("logq2s"), py::arg("q_lower"), py::arg("q_upper"), py::arg("cols"),
        py::arg("per_point"), py::arg("x"), py::arg("q2"), py::arg("logx"), py::arg("logq2"),
        py::arg("out"),
        "LHAPDF's log-bicubic interpolation at in-grid points (x, q2, with their logs as "
        "numpy takes them): column cols[e] at point e (per_point, out (n,)) or the columns "
        "cols at every point (out (n, k)).");
}

}  // namespace madnis
