// madnis_py._ext: the compiled core. Registration is split by area.
#include <pybind11/pybind11.h>

namespace madnis {
void register_rqs(pybind11::module_& m);
void register_coupling(pybind11::module_& m);
void register_phasespace(pybind11::module_& m);
void register_me(pybind11::module_& m);
void register_pdf(pybind11::module_& m);
void register_lhe(pybind11::module_& m);
}

PYBIND11_MODULE(_ext, m) {
    m.doc() = "madnis_py compiled kernels (private; use madnis_py.flows and madnis_py.phasespace)";
    madnis::register_rqs(m);
    madnis::register_coupling(m);
    madnis::register_phasespace(m);
    madnis::register_me(m);
    madnis::register_pdf(m);
    madnis::register_lhe(m);
}
