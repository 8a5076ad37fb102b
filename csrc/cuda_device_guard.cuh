// The device a launch goes to. This extension's CUDA runtime is its own (linked
// statically) and launches on the thread's current device, which is not the device of the
// tensors (torch switches devices only inside its own operations, then restores device 0):
// a kernel on data of another GPU (and on that GPU's stream, which the caller passes) must
// first make that GPU current. DeviceOf does it for the lifetime of a launch and restores
// the caller's device.
#pragma once

#include <cuda_runtime.h>

namespace madnis {

class DeviceOf {
public:
    // The device that holds `ptr` (device memory); status() is the error, if any.
    explicit DeviceOf(const void* ptr) {
        cudaPointerAttributes attr{};
        status_ = cudaPointerGetAttributes(&attr, ptr);
        if (status_ != cudaSuccess) return;
        if (attr.type != cudaMemoryTypeDevice && attr.type != cudaMemoryTypeManaged) {
            status_ = cudaErrorInvalidDevicePointer;
            return;
        }
        status_ = cudaGetDevice(&previous_);
        if (status_ == cudaSuccess && attr.device != previous_) {
            status_ = cudaSetDevice(attr.device);
            switched_ = status_ == cudaSuccess;
        }
    }
    ~DeviceOf() {
        if (switched_) cudaSetDevice(previous_);
    }
    DeviceOf(const DeviceOf&) = delete;
    DeviceOf& operator=(const DeviceOf&) = delete;

    cudaError_t status() const { return status_; }

private:
    cudaError_t status_ = cudaSuccess;
    int previous_ = 0;
    bool switched_ = false;
};

}  // namespace madnis
