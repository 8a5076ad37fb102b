// LHAPDF's log-bicubic interpolation of one PDF member's grid at in-grid points, on the
// CPU (the maths in pdf_math.h, shared with the CUDA kernel), and its Python bindings.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cmath>
#include <cstdint>
#include <stdexcept>
#include <vector>

#include "pdf_math.h"
#include "pybuffer.h"

namespace py = pybind11;

namespace madnis {

void register_pdf(py::module_& m) {
    m.def(
        "pdf_logbicubic",
        [](const py::array& values, const py::array& dlogx, const py::array& xs,
           const py::array& q2s, const py::array& logxs, const py::array& logq2s,
           const py::array& q_lower, const py::array& q_upper, const py::array& cols,
           bool per_point, const py::array& x, const py::array& q2, const py::array& logx,
           const py::array& logq2, const py::array& out) {
            if (values.ndim() != 3) throw std::invalid_argument("values: expected (nx, nq, nf)");
            pdf::Grid g{};
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
                const pdf::Point p = pdf::locate(g, px[e], pq[e], plx[e], plq[e]);
                if (per_point) {
                    po[e] = pdf::interpolate(g, p, pc[e]);
                } else {
                    for (int64_t c = 0; c < k; ++c) po[e * k + c] = pdf::interpolate(g, p, pc[c]);
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
#ifdef MADNIS_WITH_CUDA
    m.def(
        "pdf_logbicubic_cuda",
        [](std::uintptr_t values, std::uintptr_t dlogx, std::uintptr_t xs, std::uintptr_t q2s,
           std::uintptr_t logxs, std::uintptr_t logq2s, std::uintptr_t q_lower,
           std::uintptr_t q_upper, int64_t nx, int64_t nq, int64_t nf, std::uintptr_t cols,
           int64_t k, bool per_point, std::uintptr_t x, std::uintptr_t q2, std::uintptr_t logx,
           std::uintptr_t logq2, std::uintptr_t out, int64_t n, std::uintptr_t stream) {
            if (nx < 2 || nq < 2 || nf < 1 || k < 0 || n < 0)
                throw std::invalid_argument("pdf_logbicubic_cuda: bad grid or point counts");
            pdf::Grid g{dptr<const double>(values), dptr<const double>(dlogx),
                        dptr<const double>(xs),     dptr<const double>(q2s),
                        dptr<const double>(logxs),  dptr<const double>(logq2s),
                        dptr<const int64_t>(q_lower), dptr<const int64_t>(q_upper),
                        nx, nq, nf};
            check_cuda(pdf_logbicubic_cuda(g, dptr<const int64_t>(cols), k, per_point,
                                           dptr<const double>(x), dptr<const double>(q2),
                                           dptr<const double>(logx), dptr<const double>(logq2),
                                           dptr<double>(out), n,
                                           reinterpret_cast<void*>(stream)),
                       "pdf_logbicubic_cuda");
        },
        py::arg("values"), py::arg("dlogx"), py::arg("xs"), py::arg("q2s"), py::arg("logxs"),
        py::arg("logq2s"), py::arg("q_lower"), py::arg("q_upper"), py::arg("nx"),
        py::arg("nq"), py::arg("nf"), py::arg("cols"), py::arg("k"), py::arg("per_point"),
        py::arg("x"), py::arg("q2"), py::arg("logx"), py::arg("logq2"), py::arg("out"),
        py::arg("n"), py::arg("stream"),
        "pdf_logbicubic on a CUDA device: device pointers (the grid as pdf_logbicubic takes "
        "it: values and dlogx (nx, nq, nf), int64 flags and cols), the counts, the stream "
        "(no synchronisation). The columns must be in [0, nf): the caller checks.");
#endif
}

}  // namespace madnis
