// The <event> blocks of an LHE file as text, on the CPU: the %-formats of
// madnis_py/events/lhe/records.py (_line_formats) written with std::to_chars, which
// prints as printf's "%.*e" does and, like Python's %-operator, rounds correctly: the text
// is the same byte for byte (and std::to_chars is about 5x faster than snprintf here).
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <charconv>
#include <cmath>
#include <cstdint>
#include <stdexcept>
#include <string>

#include "pybuffer.h"

namespace py = pybind11;

namespace madnis {

namespace {

// " %<width>d" of the value truncated to an integer (as Python's "%d" % 2.0).
inline void put_int(std::string& out, int width, double v) {
    char buf[32];
    const auto r = std::to_chars(buf, buf + sizeof buf, static_cast<long long>(v));
    const int len = static_cast<int>(r.ptr - buf);
    out += ' ';
    if (len < width) out.append(static_cast<size_t>(width - len), ' ');
    out.append(buf, static_cast<size_t>(len));
}

// " %.<prec>e" of the value, " %+.<prec>e" with plus.
inline void put_float(std::string& out, bool plus, int prec, double v) {
    char buf[48];
    char* p = buf;
    *p++ = ' ';
    if (plus && !std::signbit(v)) *p++ = '+';
    const auto r = std::to_chars(p, buf + sizeof buf, v, std::chars_format::scientific, prec);
    out.append(buf, static_cast<size_t>(r.ptr - buf));
}

}  // namespace

void register_lhe(py::module_& m) {
    m.def(
        "lhe_format_events",
        [](const py::array& table, const py::array& keep, int npart, int digits) {
            if (npart < 1) throw std::invalid_argument("npart must be >= 1");
            if (digits < 1 || digits > 17) throw std::invalid_argument("digits: 1 to 17");
            const int64_t width = 6 + 13 * int64_t(npart);
            if (table.ndim() != 2 || table.shape(1) != width)
                throw std::invalid_argument("table: expected (n, 6 + 13 * npart)");
            const int64_t n = table.shape(0);
            const double* t = buffer<double>(table, "table", n * width, false);
            const int64_t* present = buffer<int64_t>(keep, "keep", n * npart, false);
            const int p = digits - 1;
            std::string out;
            {
                py::gil_scoped_release release;
                out.reserve(static_cast<size_t>(n) * (60 + 200 * npart));
                for (int64_t e = 0; e < n; ++e) {
                    const double* row = t + e * width;
                    const int64_t* on = present + e * npart;
                    int64_t nup = 0;
                    for (int j = 0; j < npart; ++j) nup += on[j] != 0;
                    out += "<event>\n";
                    put_int(out, 0, double(nup));
                    put_int(out, 0, row[1]);
                    put_float(out, true, p, row[2]);
                    for (int c = 3; c < 6; ++c) put_float(out, false, p, row[c]);
                    out += '\n';
                    for (int j = 0; j < npart; ++j) {
                        if (!on[j]) continue;
                        const double* q = row + 6 + 13 * j;
                        put_int(out, 8, q[0]);
                        put_int(out, 2, q[1]);
                        for (int c = 2; c < 6; ++c) put_int(out, 4, q[c]);
                        for (int c = 6; c < 9; ++c) put_float(out, true, p, q[c]);
                        for (int c = 9; c < 11; ++c) put_float(out, false, p, q[c]);
                        put_float(out, false, 4, q[11]);
                        put_float(out, false, 4, q[12]);
                        out += '\n';
                    }
                    out += "</event>\n";
                }
            }
            return py::bytes(out);
        },
        py::arg("table"), py::arg("keep"), py::arg("npart"), py::arg("digits"),
        "The <event> blocks of n events (rows of NUP, IDPRUP, XWGTUP, SCALUP, AQEDUP, "
        "AQCDUP, then 13 fields per particle), particles where keep (int64) is not 0.");
}

}  // namespace madnis
