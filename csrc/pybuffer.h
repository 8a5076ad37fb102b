// Checked access to buffers passed from Python: numpy arrays, and device pointers with
// CUDA error checks (shared by the register_*.cpp files).
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <stdexcept>
#include <string>

namespace madnis {

// A C-contiguous array of dtype T with the expected number of elements; `name` is the
// argument's name in the error message.
template <typename T>
const char* dtype_name() {
    if (sizeof(T) == 8 && T(0.5) != 0) return "float64";
    if (sizeof(T) == 4 && T(0.5) != 0) return "float32";
    return sizeof(T) == 4 ? "int32" : "int64";
}

template <typename T>
T* buffer(const pybind11::array& a, const char* name, int64_t size, bool writable) {
    if (!pybind11::isinstance<pybind11::array_t<T>>(a) || a.itemsize() != sizeof(T))
        throw pybind11::type_error(std::string(name) + ": expected dtype " + dtype_name<T>() +
                                   ", got " + std::string(pybind11::str(a.dtype())));
    if (!(a.flags() & pybind11::array::c_style))
        throw std::invalid_argument(std::string(name) + ": array must be C-contiguous");
    if (a.size() != size)
        throw std::invalid_argument(std::string(name) + ": expected " + std::to_string(size) +
                                    " elements, got " + std::to_string(a.size()));
    if (writable && !a.writeable())
        throw std::invalid_argument(std::string(name) + ": array is read-only");
    return static_cast<T*>(const_cast<void*>(a.data()));
}

#ifdef MADNIS_WITH_CUDA
// A CUDA call's error code as an exception naming the call.
inline void check_cuda(int err, const char* what) {
    if (err != 0)
        throw std::runtime_error(std::string(what) + ": CUDA error " + std::to_string(err));
}

// A device pointer passed from Python as an integer.
template <typename T>
T* dptr(std::uintptr_t p) {
    return reinterpret_cast<T*>(p);
}
#endif

}  // namespace madnis
