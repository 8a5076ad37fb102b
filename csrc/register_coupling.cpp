// Python bindings of the fused coupling block (coupling.h): numpy arrays in and out.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <stdexcept>
#include <string>
#include <vector>

#include "coupling.h"
#include "pybuffer.h"
#include "rqs.h"

namespace py = pybind11;

namespace madnis {

namespace {

struct SplineArgs {
    int bins;
    bool inverse;
    double min_width, min_height, min_derivative;
};

void check_spline(const SplineArgs& o) {
    check_spline_settings(o.bins, o.min_width, o.min_height, o.min_derivative);
}

// The block's shape from x, the index lists and the weights; every mismatch is an
// error naming the argument.
CouplingShape make_shape(const py::array& x, const std::vector<int64_t>& cond_index,
                         const std::vector<int64_t>& trans_index,
                         const std::vector<py::array>& weight,
                         const std::vector<py::array>& bias, int bins) {
    if (x.ndim() != 2) throw std::invalid_argument("x: expected shape (n, dims)");
    CouplingShape s;
    s.dims = x.shape(1);
    s.cond_index = cond_index;
    s.trans_index = trans_index;
    std::vector<int> seen(s.dims, 0);
    for (const auto* list : {&cond_index, &trans_index})
        for (int64_t c : *list) {
            if (c < 0 || c >= s.dims)
                throw std::invalid_argument("column index " + std::to_string(c) +
                                            " is outside [0, " + std::to_string(s.dims) + ")");
            ++seen[c];
        }
    for (int64_t c = 0; c < s.dims; ++c)
        if (seen[c] != 1)
            throw std::invalid_argument("cond_index and trans_index must partition the " +
                                        std::to_string(s.dims) + " columns of x");
    if (trans_index.empty()) throw std::invalid_argument("trans_index: empty");
    if (weight.empty() || weight.size() != bias.size())
        throw std::invalid_argument("weight, bias: expected one of each per layer, got " +
                                    std::to_string(weight.size()) + " and " +
                                    std::to_string(bias.size()));
    for (size_t l = 0; l < weight.size(); ++l) {
        const std::string name = "weight[" + std::to_string(l) + "]";
        if (weight[l].ndim() != 2) throw std::invalid_argument(name + ": expected 2 dimensions");
        if (l == 0) s.sizes.push_back(weight[l].shape(1));
        if (weight[l].shape(1) != s.sizes.back())
            throw std::invalid_argument(name + ": expected " + std::to_string(s.sizes.back()) +
                                        " input features, got " +
                                        std::to_string(weight[l].shape(1)));
        s.sizes.push_back(weight[l].shape(0));
    }
    s.condition_dims = s.sizes.front() - int64_t(cond_index.size());
    if (s.condition_dims < 0)
        throw std::invalid_argument("weight[0]: " + std::to_string(s.sizes.front()) +
                                    " input features, fewer than the " +
                                    std::to_string(cond_index.size()) + " conditioning columns");
    const int64_t out = int64_t(trans_index.size()) * (3 * int64_t(bins) + 1);
    if (s.sizes.back() != out)
        throw std::invalid_argument("weight[-1]: expected " + std::to_string(out) +
                                    " outputs (transformed columns x (3 bins + 1)), got " +
                                    std::to_string(s.sizes.back()));
    return s;
}

template <typename T>
SubnetWeights<T> weights(const std::vector<py::array>& weight, const std::vector<py::array>& bias,
                         const CouplingShape& s) {
    SubnetWeights<T> w;
    for (size_t l = 0; l < weight.size(); ++l) {
        const std::string i = std::to_string(l);
        w.weight.push_back(buffer<T>(weight[l], ("weight[" + i + "]").c_str(),
                                     s.sizes[l + 1] * s.sizes[l], false));
        w.bias.push_back(buffer<T>(bias[l], ("bias[" + i + "]").c_str(), s.sizes[l + 1], false));
    }
    return w;
}

template <typename T>
const T* condition_buffer(const py::object& condition, const CouplingShape& s, int64_t n) {
    if (condition.is_none()) {
        if (s.condition_dims != 0)
            throw std::invalid_argument("condition: required, shape (n, " +
                                        std::to_string(s.condition_dims) + ")");
        return nullptr;
    }
    return buffer<T>(condition.cast<py::array>(), "condition", n * s.condition_dims, false);
}

void raise_out_of_range(int64_t bad, const CouplingShape& s) {
    if (bad >= 0)
        throw std::domain_error("x: entry (" + std::to_string(bad / s.dims) + ", " +
                                std::to_string(bad % s.dims) +
                                ") of a transformed column is outside [0, 1] or NaN");
}

template <typename T>
void forward(const py::array& x, const py::object& condition,
             const std::vector<py::array>& weight, const std::vector<py::array>& bias,
             const CouplingShape& s, const py::array& y, const py::array& logdet,
             const SplineArgs& o, int threads) {
    const int64_t n = x.shape(0);
    const T* px = buffer<T>(x, "x", n * s.dims, false);
    const T* pc = condition_buffer<T>(condition, s, n);
    const SubnetWeights<T> w = weights<T>(weight, bias, s);
    T* py_ = buffer<T>(y, "y", n * s.dims, true);
    T* pl = buffer<T>(logdet, "logdet", n, true);
    const auto cfg = make_config<T>(o.bins, o.min_width, o.min_height, o.min_derivative);
    int64_t bad;
    {
        py::gil_scoped_release release;
        bad = coupling_forward_cpu<T>(px, pc, w, py_, pl, n, s, cfg, o.inverse, threads);
    }
    raise_out_of_range(bad, s);
}

template <typename T>
void backward(const py::array& x, const py::object& condition,
              const std::vector<py::array>& weight, const std::vector<py::array>& bias,
              const CouplingShape& s, const py::array& grad_y, const py::array& grad_logdet,
              const py::array& grad_x, const py::object& grad_condition,
              const std::vector<py::array>& grad_weight, const std::vector<py::array>& grad_bias,
              const SplineArgs& o, int threads) {
    const int64_t n = x.shape(0);
    const T* px = buffer<T>(x, "x", n * s.dims, false);
    const T* pc = condition_buffer<T>(condition, s, n);
    const SubnetWeights<T> w = weights<T>(weight, bias, s);
    const T* gy = buffer<T>(grad_y, "grad_y", n * s.dims, false);
    const T* gl = buffer<T>(grad_logdet, "grad_logdet", n, false);
    T* gx = buffer<T>(grad_x, "grad_x", n * s.dims, true);
    T* gc = grad_condition.is_none()
                ? nullptr
                : buffer<T>(grad_condition.cast<py::array>(), "grad_condition",
                            n * s.condition_dims, true);
    if (grad_weight.size() != weight.size() || grad_bias.size() != bias.size())
        throw std::invalid_argument("grad_weight, grad_bias: expected one of each per layer");
    std::vector<T*> gw, gb;
    for (size_t l = 0; l < weight.size(); ++l) {
        const std::string i = std::to_string(l);
        gw.push_back(buffer<T>(grad_weight[l], ("grad_weight[" + i + "]").c_str(),
                               s.sizes[l + 1] * s.sizes[l], true));
        gb.push_back(
            buffer<T>(grad_bias[l], ("grad_bias[" + i + "]").c_str(), s.sizes[l + 1], true));
    }
    const auto cfg = make_config<T>(o.bins, o.min_width, o.min_height, o.min_derivative);
    int64_t bad;
    {
        py::gil_scoped_release release;
        bad = coupling_backward_cpu<T>(px, pc, w, gy, gl, gx, gc, gw, gb, n, s, cfg, o.inverse,
                                       threads);
    }
    raise_out_of_range(bad, s);
}

bool is_double(const py::array& x) {
    if (x.dtype().kind() == 'f' && x.itemsize() == 8) return true;
    if (x.dtype().kind() == 'f' && x.itemsize() == 4) return false;
    throw py::type_error("x: expected dtype float32 or float64, got " +
                         std::string(py::str(x.dtype())));
}

}  // namespace

void register_coupling(py::module_& m) {
    m.def(
        "coupling_forward",
        [](const py::array& x, const py::object& condition, const std::vector<py::array>& weight,
           const std::vector<py::array>& bias, const std::vector<int64_t>& cond_index,
           const std::vector<int64_t>& trans_index, const py::array& y, const py::array& logdet,
           int bins, bool inverse, double min_width, double min_height, double min_derivative,
           int threads) {
            const SplineArgs o{bins, inverse, min_width, min_height, min_derivative};
            check_spline(o);
            const CouplingShape s = make_shape(x, cond_index, trans_index, weight, bias, bins);
            if (is_double(x))
                forward<double>(x, condition, weight, bias, s, y, logdet, o, threads);
            else
                forward<float>(x, condition, weight, bias, s, y, logdet, o, threads);
        },
        py::arg("x"), py::arg("condition"), py::arg("weight"), py::arg("bias"),
        py::arg("cond_index"), py::arg("trans_index"), py::arg("y"), py::arg("logdet"),
        py::kw_only(), py::arg("bins"), py::arg("inverse"), py::arg("min_width"),
        py::arg("min_height"), py::arg("min_derivative"), py::arg("threads") = 1,
        "One RQS coupling block (ReLU subnet + spline) on the CPU: writes y (n, dims) and "
        "logdet (n,). Raises ValueError for transformed inputs outside [0, 1].");

    m.def(
        "coupling_backward",
        [](const py::array& x, const py::object& condition, const std::vector<py::array>& weight,
           const std::vector<py::array>& bias, const std::vector<int64_t>& cond_index,
           const std::vector<int64_t>& trans_index, const py::array& grad_y,
           const py::array& grad_logdet, const py::array& grad_x,
           const py::object& grad_condition, const std::vector<py::array>& grad_weight,
           const std::vector<py::array>& grad_bias, int bins, bool inverse, double min_width,
           double min_height, double min_derivative, int threads) {
            const SplineArgs o{bins, inverse, min_width, min_height, min_derivative};
            check_spline(o);
            const CouplingShape s = make_shape(x, cond_index, trans_index, weight, bias, bins);
            if (is_double(x))
                backward<double>(x, condition, weight, bias, s, grad_y, grad_logdet, grad_x,
                                 grad_condition, grad_weight, grad_bias, o, threads);
            else
                backward<float>(x, condition, weight, bias, s, grad_y, grad_logdet, grad_x,
                                grad_condition, grad_weight, grad_bias, o, threads);
        },
        py::arg("x"), py::arg("condition"), py::arg("weight"), py::arg("bias"),
        py::arg("cond_index"), py::arg("trans_index"), py::arg("grad_y"),
        py::arg("grad_logdet"), py::arg("grad_x"), py::arg("grad_condition"),
        py::arg("grad_weight"), py::arg("grad_bias"), py::kw_only(), py::arg("bins"),
        py::arg("inverse"), py::arg("min_width"), py::arg("min_height"),
        py::arg("min_derivative"), py::arg("threads") = 1,
        "Backward of coupling_forward: writes grad_x, grad_condition (unless None) and the "
        "gradients of every weight and bias (overwritten).");
}

}  // namespace madnis
