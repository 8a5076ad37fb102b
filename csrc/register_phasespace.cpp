// Python bindings of the phase-space mappings. CPU buffers arrive as numpy arrays; CUDA
// buffers as device pointers plus the stream. Programs (the channel tables) are checked
// here, so a malformed table raises instead of reading out of bounds.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "phasespace.h"
#include "pybuffer.h"

namespace py = pybind11;

namespace madnis {

namespace {

std::string node_name(int k) { return "program node " + std::to_string(k); }

// Structure of a compiled channel: a binary tree in pre-order over 2 n - 1 nodes whose
// leaves cover the final-state legs exactly once.
void check_program(const int32_t* it, const double* ft, int n_nodes, int n_final) {
    if (n_final < 2 || n_final > ps::kMaxFinal)
        throw std::invalid_argument("n_final must be in [2, " + std::to_string(ps::kMaxFinal) +
                                    "], got " + std::to_string(n_final));
    if (n_nodes != 2 * n_final - 1)
        throw std::invalid_argument("a channel of " + std::to_string(n_final) +
                                    " final-state particles has " +
                                    std::to_string(2 * n_final - 1) + " nodes, got " +
                                    std::to_string(n_nodes));
    std::vector<int> seen(n_final + 2, 0), parents(n_nodes, 0);
    for (int k = 0; k < n_nodes; ++k) {
        const int32_t* row = it + k * ps::kIntCols;
        const int kind = row[0], c1 = row[1], c2 = row[2], leg = row[3], sampler = row[4];
        if (kind == ps::kLeaf) {
            if (leg < 2 || leg >= n_final + 2 || seen[leg]++)
                throw std::invalid_argument(node_name(k) + ": leaf leg " + std::to_string(leg) +
                                            " is out of range or repeated");
            continue;
        }
        if (kind != ps::kSNode && kind != ps::kTNode)
            throw std::invalid_argument(node_name(k) + ": unknown kind " + std::to_string(kind));
        if (c1 <= k || c2 <= k || c1 >= n_nodes || c2 >= n_nodes || c1 == c2)
            throw std::invalid_argument(node_name(k) + ": children must follow their parent "
                                        "(pre-order)");
        ++parents[c1];
        ++parents[c2];
        if (sampler < ps::kNoSampler || sampler > ps::kBreitWignerTail)
            throw std::invalid_argument(node_name(k) + ": unknown sampler " +
                                        std::to_string(sampler));
        if (kind == ps::kTNode && it[c1 * ps::kIntCols] == ps::kTNode)
            throw std::invalid_argument(node_name(k) + ": child1 of a t-node must be a block");
        for (int j = 0; j < ps::kFloatCols; ++j)
            if (!(ft[k * ps::kFloatCols + j] - ft[k * ps::kFloatCols + j] == 0))
                throw std::invalid_argument(node_name(k) + ": non-finite parameter");
        if ((sampler == ps::kBreitWigner || sampler == ps::kBreitWignerTail) &&
            !(ft[k * ps::kFloatCols + 2] > 0 && ft[k * ps::kFloatCols + 3] > 0))
            throw std::invalid_argument(node_name(k) + ": Breit-Wigner needs mass, width > 0");
    }
    if (it[0] == ps::kLeaf) throw std::invalid_argument("the root node cannot be a leaf");
    for (int k = 1; k < n_nodes; ++k)
        if (parents[k] != 1)
            throw std::invalid_argument(node_name(k) + ": has " + std::to_string(parents[k]) +
                                        " parents; the program is not a tree");
}

ps::Program host_program(const py::array& itab, const py::array& ftab, int n_final,
                         double sqrt_s, bool hadronic) {
    if (itab.ndim() != 2 || itab.shape(1) != ps::kIntCols)
        throw std::invalid_argument("int_table: expected shape (n_nodes, 5)");
    const int n_nodes = int(itab.shape(0));
    const int32_t* it = buffer<int32_t>(itab, "int_table", int64_t(n_nodes) * ps::kIntCols, false);
    const double* ft = buffer<double>(ftab, "float_table", int64_t(n_nodes) * ps::kFloatCols,
                                      false);
    check_program(it, ft, n_nodes, n_final);
    if (!(sqrt_s > 0)) throw std::invalid_argument("sqrt_s must be > 0");
    return {it, ft, n_nodes, n_final, hadronic, sqrt_s};
}

int64_t batch_of(const py::array& a, const char* name, int64_t row) {
    // the row's length from the trailing dimensions: defined for an empty batch too
    int64_t width = 1;
    for (py::ssize_t d = 1; d < a.ndim(); ++d) width *= a.shape(d);
    if (a.ndim() < 1 || (a.ndim() == 1 ? a.shape(0) : width) != row)
        throw std::invalid_argument(std::string(name) + ": expected shape (n, " +
                                    std::to_string(row) + ")");
    return a.ndim() == 1 ? 1 : a.shape(0);
}

void check_rambo(int n_final, double sqrt_s) {
    if (n_final < 2 || n_final > ps::kMaxFinal)
        throw std::invalid_argument("RAMBO: n_final must be in [2, " +
                                    std::to_string(ps::kMaxFinal) + "], got " +
                                    std::to_string(n_final));
    if (!(sqrt_s > 0)) throw std::invalid_argument("sqrt_s must be > 0");
}


}  // namespace

void register_phasespace(py::module_& m) {
    m.attr("PS_MAX_FINAL") = ps::kMaxFinal;

    m.def(
        "ps_channel_forward",
        [](const py::array& itab, const py::array& ftab, int n_final, const py::array& r,
           const py::array& momenta, const py::array& weight, const py::array& x12,
           double sqrt_s, bool hadronic, int threads) {
            const ps::Program p = host_program(itab, ftab, n_final, sqrt_s, hadronic);
            const int64_t n = batch_of(r, "r", p.dims());
            const double* pr = buffer<double>(r, "r", n * p.dims(), false);
            double* pm = buffer<double>(momenta, "momenta", n * 4 * (n_final + 2), true);
            double* pw = buffer<double>(weight, "weight", n, true);
            double* px = buffer<double>(x12, "x12", 2 * n, true);
            py::gil_scoped_release release;
            return ps_channel_forward_cpu(p, pr, pm, pw, px, n, threads);
        },
        py::arg("int_table"), py::arg("float_table"), py::arg("n_final"), py::arg("r"),
        py::arg("momenta"), py::arg("weight"), py::arg("x12"), py::kw_only(), py::arg("sqrt_s"),
        py::arg("hadronic"), py::arg("threads") = 1,
        "Channel map r (n, dims) -> momenta (n, n_final+2, 4), weight (n,), x12 (n, 2). "
        "Returns the number of points outside the physical region (weight 0).");

    m.def(
        "ps_channel_inverse",
        [](const py::array& itab, const py::array& ftab, int n_final, const py::array& momenta,
           const py::array& r, const py::array& weight, double sqrt_s, bool hadronic,
           int threads) {
            const ps::Program p = host_program(itab, ftab, n_final, sqrt_s, hadronic);
            const int64_t n = batch_of(momenta, "momenta", 4 * (n_final + 2));
            const double* pm = buffer<double>(momenta, "momenta", n * 4 * (n_final + 2), false);
            double* pr = buffer<double>(r, "r", n * p.dims(), true);
            double* pw = buffer<double>(weight, "weight", n, true);
            py::gil_scoped_release release;
            return ps_channel_inverse_cpu(p, pm, pr, pw, n, threads);
        },
        py::arg("int_table"), py::arg("float_table"), py::arg("n_final"), py::arg("momenta"),
        py::arg("r"), py::arg("weight"), py::kw_only(), py::arg("sqrt_s"), py::arg("hadronic"),
        py::arg("threads") = 1,
        "Inverse channel map momenta -> r, weight. Returns the number of points outside.");

    m.def(
        "ps_rambo_forward",
        [](const py::array& masses, const py::array& r, const py::array& momenta,
           const py::array& weight, const py::array& x12, double sqrt_s, bool hadronic,
           double min_shat, int threads) {
            const int n_final = int(masses.size());
            check_rambo(n_final, sqrt_s);
            const double* pmass = buffer<double>(masses, "masses", n_final, false);
            const ps::RamboConfig cfg{pmass, n_final, hadronic, sqrt_s, min_shat};
            const int64_t n = batch_of(r, "r", cfg.dims());
            const double* pr = buffer<double>(r, "r", n * cfg.dims(), false);
            double* pm = buffer<double>(momenta, "momenta", n * 4 * (n_final + 2), true);
            double* pw = buffer<double>(weight, "weight", n, true);
            double* px = buffer<double>(x12, "x12", 2 * n, true);
            py::gil_scoped_release release;
            return ps_rambo_forward_cpu(cfg, pr, pm, pw, px, n, threads);
        },
        py::arg("masses"), py::arg("r"), py::arg("momenta"), py::arg("weight"), py::arg("x12"),
        py::kw_only(), py::arg("sqrt_s"), py::arg("hadronic"), py::arg("min_shat") = 0.0,
        py::arg("threads") = 1,
        "RAMBO r (n, 4 n_final [+2]) -> momenta, weight, x12. Returns the number outside.");

    m.def(
        "ps_invariant",
        [](int sampler, double a, double b, const py::array& lo, const py::array& hi,
           const py::array& in, const py::array& out, const py::array& jac, bool inverse) {
            const int64_t n = in.size();
            const double* plo = buffer<double>(lo, "lo", n, false);
            const double* phi = buffer<double>(hi, "hi", n, false);
            const double* pin = buffer<double>(in, "in", n, false);
            double* pout = buffer<double>(out, "out", n, true);
            double* pj = buffer<double>(jac, "jac", n, true);
            if (sampler != ps::kBreitWigner && sampler != ps::kPowerLaw &&
                sampler != ps::kBreitWignerTail)
                throw std::invalid_argument("sampler must be 1 (Breit-Wigner), 2 (power law) or "
                                            "3 (Breit-Wigner with a 1/x tail)");
            if (sampler != ps::kPowerLaw && !(a > 0 && b > 0))
                throw std::invalid_argument("a Breit-Wigner needs mass a > 0 and width b > 0");
            for (int64_t i = 0; i < n; ++i)
                pout[i] = inverse ? ps::invariant_inverse(sampler, a, b, plo[i], phi[i], pin[i], pj[i])
                                  : ps::invariant_forward(sampler, a, b, plo[i], phi[i], pin[i], pj[i]);
        },
        py::arg("sampler"), py::arg("a"), py::arg("b"), py::arg("lo"), py::arg("hi"),
        py::arg("input"), py::arg("output"), py::arg("jac"), py::kw_only(), py::arg("inverse"),
        "Invariant sampler (Breit-Wigner a=M b=Gamma, power law a=nu b=offset, Breit-Wigner "
        "with a 1/x tail a=M b=Gamma): r -> x "
        "(or x -> r with inverse=True) on [lo, hi], with jac = dx/dr.");

#ifdef MADNIS_WITH_CUDA
    m.def(
        "ps_channel_forward_cuda",
        [](std::uintptr_t itab, std::uintptr_t ftab, int n_nodes, int n_final, std::uintptr_t r,
           std::uintptr_t momenta, std::uintptr_t weight, std::uintptr_t x12, int64_t n,
           double sqrt_s, bool hadronic, std::uintptr_t stream) {
            const ps::Program p{dptr<const int32_t>(itab), dptr<const double>(ftab), n_nodes,
                                n_final, hadronic, sqrt_s};
            check_cuda(ps_channel_forward_cuda(p, dptr<const double>(r), dptr<double>(momenta),
                                               dptr<double>(weight), dptr<double>(x12), n,
                                               reinterpret_cast<void*>(stream)),
                       "ps_channel_forward_cuda");
        },
        py::arg("int_table"), py::arg("float_table"), py::arg("n_nodes"), py::arg("n_final"),
        py::arg("r"), py::arg("momenta"), py::arg("weight"), py::arg("x12"), py::arg("n"),
        py::kw_only(), py::arg("sqrt_s"), py::arg("hadronic"), py::arg("stream"),
        "CUDA channel map (device pointers; the tables were checked by the CPU binding).");
    m.def(
        "ps_channel_inverse_cuda",
        [](std::uintptr_t itab, std::uintptr_t ftab, int n_nodes, int n_final,
           std::uintptr_t momenta, std::uintptr_t r, std::uintptr_t weight, int64_t n,
           double sqrt_s, bool hadronic, std::uintptr_t stream) {
            const ps::Program p{dptr<const int32_t>(itab), dptr<const double>(ftab), n_nodes,
                                n_final, hadronic, sqrt_s};
            check_cuda(ps_channel_inverse_cuda(p, dptr<const double>(momenta), dptr<double>(r),
                                               dptr<double>(weight), n,
                                               reinterpret_cast<void*>(stream)),
                       "ps_channel_inverse_cuda");
        },
        py::arg("int_table"), py::arg("float_table"), py::arg("n_nodes"), py::arg("n_final"),
        py::arg("momenta"), py::arg("r"), py::arg("weight"), py::arg("n"), py::kw_only(),
        py::arg("sqrt_s"), py::arg("hadronic"), py::arg("stream"), "CUDA inverse channel map.");
    m.def(
        "ps_rambo_forward_cuda",
        [](std::uintptr_t masses, int n_final, std::uintptr_t r, std::uintptr_t momenta,
           std::uintptr_t weight, std::uintptr_t x12, int64_t n, double sqrt_s, bool hadronic,
           double min_shat, std::uintptr_t stream) {
            check_rambo(n_final, sqrt_s);
            const ps::RamboConfig cfg{dptr<const double>(masses), n_final, hadronic, sqrt_s,
                                      min_shat};
            check_cuda(ps_rambo_forward_cuda(cfg, dptr<const double>(r), dptr<double>(momenta),
                                             dptr<double>(weight), dptr<double>(x12), n,
                                             reinterpret_cast<void*>(stream)),
                       "ps_rambo_forward_cuda");
        },
        py::arg("masses"), py::arg("n_final"), py::arg("r"), py::arg("momenta"),
        py::arg("weight"), py::arg("x12"), py::arg("n"), py::kw_only(), py::arg("sqrt_s"),
        py::arg("hadronic"), py::arg("min_shat"), py::arg("stream"), "CUDA RAMBO.");
#endif
}

}  // namespace madnis
