// Python bindings of the RQS kernels. CPU buffers arrive as numpy arrays (zero-copy
// views of torch tensors); CUDA buffers as raw device pointers plus the stream.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <stdexcept>
#include <string>

#include "pybuffer.h"
#include "rqs.h"

namespace py = pybind11;

namespace madnis {

void check_spline_settings(int bins, double min_width, double min_height,
                           double min_derivative) {
    if (bins < 1 || bins > kMaxBins)
        throw std::invalid_argument("bins must be in [1, " + std::to_string(kMaxBins) +
                                    "], got " + std::to_string(bins));
    if (!(min_width > 0 && min_width * bins < 1))
        throw std::invalid_argument("min_width must be in (0, 1/bins)");
    if (!(min_height > 0 && min_height * bins < 1))
        throw std::invalid_argument("min_height must be in (0, 1/bins)");
    if (!(min_derivative > 0 && min_derivative < 1))
        throw std::invalid_argument("min_derivative must be in (0, 1)");
}

namespace {

struct Options {
    int bins;
    bool inverse;
    double min_width, min_height, min_derivative;
    bool vectorized = true;
};

void check_options(const Options& o) {
    check_spline_settings(o.bins, o.min_width, o.min_height, o.min_derivative);
}

void raise_out_of_range(int64_t bad, const Options& o) {
    if (bad >= 0)
        throw std::domain_error(std::string(o.inverse ? "inverse" : "forward") +
                                " spline input at index " + std::to_string(bad) +
                                " is outside [0, 1] or NaN");
}

template <typename T>
void forward_cpu(const py::array& x, const py::array& params, const py::array& y,
                 const py::array& logdet, const Options& o, int threads) {
    const int64_t n = x.size();
    const T* px = buffer<T>(x, "x", n, false);
    const T* pp = buffer<T>(params, "params", n * (3 * int64_t(o.bins) + 1), false);
    T* py_ = buffer<T>(y, "y", n, true);
    T* pl = buffer<T>(logdet, "logdet", n, true);
    const auto cfg = make_config<T>(o.bins, o.min_width, o.min_height, o.min_derivative);
    int64_t bad;
    {
        py::gil_scoped_release release;
        bad = rqs_forward_cpu<T>(px, pp, py_, pl, n, cfg, o.inverse, threads, o.vectorized);
    }
    raise_out_of_range(bad, o);
}

template <typename T>
void backward_cpu(const py::array& x, const py::array& params, const py::array& grad_y,
                  const py::array& grad_logdet, const py::array& grad_x,
                  const py::array& grad_params, const Options& o, int threads) {
    const int64_t n = x.size();
    const int64_t np = n * (3 * int64_t(o.bins) + 1);
    const T* px = buffer<T>(x, "x", n, false);
    const T* pp = buffer<T>(params, "params", np, false);
    const T* gy = buffer<T>(grad_y, "grad_y", n, false);
    const T* gl = buffer<T>(grad_logdet, "grad_logdet", n, false);
    T* gx = buffer<T>(grad_x, "grad_x", n, true);
    T* gp = buffer<T>(grad_params, "grad_params", np, true);
    const auto cfg = make_config<T>(o.bins, o.min_width, o.min_height, o.min_derivative);
    int64_t bad;
    {
        py::gil_scoped_release release;
        bad = rqs_backward_cpu<T>(px, pp, gy, gl, gx, gp, n, cfg, o.inverse, threads,
                                  o.vectorized);
    }
    raise_out_of_range(bad, o);
}

bool is_double(const py::array& x) {
    if (x.dtype().kind() == 'f' && x.itemsize() == 8) return true;
    if (x.dtype().kind() == 'f' && x.itemsize() == 4) return false;
    throw py::type_error("x: expected dtype float32 or float64, got " +
                         std::string(py::str(x.dtype())));
}

#ifdef MADNIS_WITH_CUDA
bool is_double_name(const std::string& dtype) {
    if (dtype == "float64") return true;
    if (dtype == "float32") return false;
    throw py::type_error("dtype: expected 'float32' or 'float64', got '" + dtype + "'");
}

template <typename T>
void forward_cuda(std::uintptr_t x, std::uintptr_t params, std::uintptr_t y,
                  std::uintptr_t logdet, int64_t n, const Options& o, std::uintptr_t stream) {
    const auto cfg = make_config<T>(o.bins, o.min_width, o.min_height, o.min_derivative);
    check_cuda(rqs_forward_cuda<T>(dptr<T>(x), dptr<T>(params), dptr<T>(y), dptr<T>(logdet), n,
                                   cfg, o.inverse, reinterpret_cast<void*>(stream)),
               "rqs_forward_cuda");
}

template <typename T>
void backward_cuda(std::uintptr_t x, std::uintptr_t params, std::uintptr_t grad_y,
                   std::uintptr_t grad_logdet, std::uintptr_t grad_x, std::uintptr_t grad_params,
                   int64_t n, const Options& o, std::uintptr_t stream) {
    const auto cfg = make_config<T>(o.bins, o.min_width, o.min_height, o.min_derivative);
    check_cuda(rqs_backward_cuda<T>(dptr<T>(x), dptr<T>(params), dptr<T>(grad_y),
                                    dptr<T>(grad_logdet), dptr<T>(grad_x), dptr<T>(grad_params),
                                    n, cfg, o.inverse, reinterpret_cast<void*>(stream)),
               "rqs_backward_cuda");
}
#endif

}  // namespace

void register_rqs(py::module_& m) {
    m.attr("MAX_BINS") = kMaxBins;

    m.def(
        "rqs_forward",
        [](const py::array& x, const py::array& params, const py::array& y,
           const py::array& logdet, int bins, bool inverse, double min_width,
           double min_height, double min_derivative, int threads, bool vectorized) {
            const Options o{bins, inverse, min_width, min_height, min_derivative, vectorized};
            check_options(o);
            if (is_double(x))
                forward_cpu<double>(x, params, y, logdet, o, threads);
            else
                forward_cpu<float>(x, params, y, logdet, o, threads);
        },
        py::arg("x"), py::arg("params"), py::arg("y"), py::arg("logdet"), py::kw_only(),
        py::arg("bins"), py::arg("inverse"), py::arg("min_width"), py::arg("min_height"),
        py::arg("min_derivative"), py::arg("threads") = 1, py::arg("vectorized") = true,
        "RQS spline on the CPU: writes y (n,) and log|dy/dx| (n,) for x (n,) and raw "
        "params (n, 3*bins+1). Raises ValueError for inputs outside [0, 1].");

    m.def(
        "rqs_backward",
        [](const py::array& x, const py::array& params, const py::array& grad_y,
           const py::array& grad_logdet, const py::array& grad_x, const py::array& grad_params,
           int bins, bool inverse, double min_width, double min_height, double min_derivative,
           int threads, bool vectorized) {
            const Options o{bins, inverse, min_width, min_height, min_derivative, vectorized};
            check_options(o);
            if (is_double(x))
                backward_cpu<double>(x, params, grad_y, grad_logdet, grad_x, grad_params, o,
                                     threads);
            else
                backward_cpu<float>(x, params, grad_y, grad_logdet, grad_x, grad_params, o,
                                    threads);
        },
        py::arg("x"), py::arg("params"), py::arg("grad_y"), py::arg("grad_logdet"),
        py::arg("grad_x"), py::arg("grad_params"), py::kw_only(), py::arg("bins"),
        py::arg("inverse"), py::arg("min_width"), py::arg("min_height"),
        py::arg("min_derivative"), py::arg("threads") = 1, py::arg("vectorized") = true,
        "Backward of rqs_forward: writes grad_x (n,) and grad_params (n, 3*bins+1).");

#ifdef MADNIS_WITH_CUDA
    m.attr("WITH_CUDA") = true;
    m.def("cuda_device_count", &cuda_device_count);
    m.def(
        "rqs_forward_cuda",
        [](std::uintptr_t x, std::uintptr_t params, std::uintptr_t y, std::uintptr_t logdet,
           int64_t n, const std::string& dtype, int bins, bool inverse, double min_width,
           double min_height, double min_derivative, std::uintptr_t stream) {
            const Options o{bins, inverse, min_width, min_height, min_derivative};
            check_options(o);
            if (is_double_name(dtype))
                forward_cuda<double>(x, params, y, logdet, n, o, stream);
            else
                forward_cuda<float>(x, params, y, logdet, n, o, stream);
        },
        py::arg("x"), py::arg("params"), py::arg("y"), py::arg("logdet"), py::arg("n"),
        py::arg("dtype"), py::kw_only(), py::arg("bins"), py::arg("inverse"),
        py::arg("min_width"), py::arg("min_height"), py::arg("min_derivative"),
        py::arg("stream"),
        "RQS spline on a CUDA device: device pointers, the element count, and the stream.");
    m.def(
        "rqs_backward_cuda",
        [](std::uintptr_t x, std::uintptr_t params, std::uintptr_t grad_y,
           std::uintptr_t grad_logdet, std::uintptr_t grad_x, std::uintptr_t grad_params,
           int64_t n, const std::string& dtype, int bins, bool inverse, double min_width,
           double min_height, double min_derivative, std::uintptr_t stream) {
            const Options o{bins, inverse, min_width, min_height, min_derivative};
            check_options(o);
            if (is_double_name(dtype))
                backward_cuda<double>(x, params, grad_y, grad_logdet, grad_x, grad_params, n, o,
                                      stream);
            else
                backward_cuda<float>(x, params, grad_y, grad_logdet, grad_x, grad_params, n, o,
                                     stream);
        },
        py::arg("x"), py::arg("params"), py::arg("grad_y"), py::arg("grad_logdet"),
        py::arg("grad_x"), py::arg("grad_params"), py::arg("n"), py::arg("dtype"),
        py::kw_only(), py::arg("bins"), py::arg("inverse"), py::arg("min_width"),
        py::arg("min_height"), py::arg("min_derivative"), py::arg("stream"),
        "Backward of rqs_forward_cuda on the same stream.");
#else
    m.attr("WITH_CUDA") = false;
#endif
}

}  // namespace madnis
