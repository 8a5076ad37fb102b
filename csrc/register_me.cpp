// Python bindings of the batched external matrix-element calls. The function pointers
// arrive as integers resolved by cffi in madnis_py.physics.matrix_element.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <stdexcept>
#include <string>

#include "matrix_element.h"
#include "pybuffer.h"

namespace py = pybind11;

namespace madnis {

namespace {
struct Call {
    const int* pdgs;
    int npdg;
    const double* momenta;
    const double* alphas;
    const double* scale2;
    bool per_event;
    int64_t n;
};

Call prepare(const py::array& pdgs, const py::array& momenta, const py::array& alphas,
             const py::array& scale2) {
    Call c{};
    c.npdg = int(pdgs.size());
    c.pdgs = buffer<int32_t>(pdgs, "pdgs", c.npdg, false);
    if (momenta.ndim() != 3 || momenta.shape(1) != c.npdg || momenta.shape(2) != 4)
        throw std::invalid_argument("momenta: expected shape (n, " + std::to_string(c.npdg) +
                                    ", 4) for " + std::to_string(c.npdg) + " PDG ids");
    c.n = momenta.shape(0);
    c.momenta = buffer<double>(momenta, "momenta", c.n * 4 * c.npdg, false);
    c.per_event = alphas.size() != 1 || c.n == 1;
    const int64_t m = c.per_event ? c.n : 1;
    c.alphas = buffer<double>(alphas, "alphas", m, false);
    c.scale2 = buffer<double>(scale2, "scale2", m, false);
    return c;
}

// The row length of a (n, width) per-diagram output.
int row_width(const py::array& a, const char* name, int64_t n) {
    if (a.ndim() != 2 || a.shape(0) != n || a.shape(1) < 1 || a.shape(1) > (1 << 20))
        throw std::invalid_argument(std::string(name) + ": expected shape (n, width) with n = " +
                                    std::to_string(n) + " and 1 <= width <= 2^20");
    return int(a.shape(1));
}
}  // namespace

void register_me(py::module_& m) {
    m.attr("ME_MAX_AMP2") = kMaxAmp2;
    m.def(
        "me_smatrixhel",
        [](std::uintptr_t fptr, const py::array& pdgs, int procid, const py::array& momenta,
           const py::array& alphas, const py::array& scale2, int nhel, const py::array& out) {
            const Call c = prepare(pdgs, momenta, alphas, scale2);
            double* po = buffer<double>(out, "out", c.n, true);
            const auto f = reinterpret_cast<SMatrixHel>(fptr);
            py::gil_scoped_release release;
            return me_smatrixhel_batch(f, c.pdgs, c.npdg, procid, c.momenta, c.alphas,
                                       c.scale2, c.per_event, nhel, po, c.n);
        },
        py::arg("function"), py::arg("pdgs"), py::arg("procid"), py::arg("momenta"),
        py::arg("alphas"), py::arg("scale2"), py::arg("nhel"), py::arg("out"),
        "Call smatrixhel_ (MadGraph standalone ABI) for every event: out (n,) = |M|^2. "
        "alphas/scale2 have n entries or one. Returns -1, or the first event the library "
        "did not answer (no subprocess matches the PDG list).");
    m.def(
        "me_amp2",
        [](std::uintptr_t fptr, const py::array& pdgs, int procid, const py::array& momenta,
           const py::array& alphas, const py::array& scale2, const py::array& out) {
            const Call c = prepare(pdgs, momenta, alphas, scale2);
            const int width = row_width(out, "out", c.n);
            double* po = buffer<double>(out, "out", c.n * width, true);
            const auto f = reinterpret_cast<Amp2>(fptr);
            py::gil_scoped_release release;
            return me_amp2_batch(f, c.pdgs, c.npdg, procid, c.momenta, c.alphas, c.scale2,
                                 c.per_event, po, width, c.n);
        },
        py::arg("function"), py::arg("pdgs"), py::arg("procid"), py::arg("momenta"),
        py::arg("alphas"), py::arg("scale2"), py::arg("out"),
        "Call madnis_amp2_ for every event: out (n, width), width at least the library's "
        "row length (ME_MAX_AMP2 without madnis_max_amp2_). Returns the number of "
        "diagrams, -1 if no subprocess matches, -2 if the count changes between events, "
        "-3 if it exceeds width.");
    m.def(
        "me_smatrix_amp2",
        [](std::uintptr_t fptr, const py::array& pdgs, int procid, const py::array& momenta,
           const py::array& alphas, const py::array& scale2, const py::array& ans,
           const py::array& amp2) {
            const Call c = prepare(pdgs, momenta, alphas, scale2);
            double* pa = buffer<double>(ans, "ans", c.n, true);
            const int width = row_width(amp2, "amp2", c.n);
            double* po = buffer<double>(amp2, "amp2", c.n * width, true);
            const auto f = reinterpret_cast<SMatrixAmp2>(fptr);
            py::gil_scoped_release release;
            return me_smatrix_amp2_batch(f, c.pdgs, c.npdg, procid, c.momenta, c.alphas,
                                         c.scale2, c.per_event, pa, po, width, c.n);
        },
        py::arg("function"), py::arg("pdgs"), py::arg("procid"), py::arg("momenta"),
        py::arg("alphas"), py::arg("scale2"), py::arg("ans"), py::arg("amp2"),
        "Call madnis_smatrix_amp2_ for every event: ans (n,) = |M|^2 and amp2 (n, width) "
        "from one evaluation. Returns as me_amp2.");
}

}  // namespace madnis
