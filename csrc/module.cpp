// madnis_py._ext: the compiled core. Registration is split by area.
#include <pybind11/pybind11.h>

namespace madnis {
void register_rqs(pybind11::module_& m);
}

PYBIND11_MODULE(_ext, m) {
    m.doc() = "madnis_py compiled kernels (private; use madnis_py.flows)";
    madnis::register_rqs(m);
}
