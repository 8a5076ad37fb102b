// One RQS coupling block in one pass over the batch: subnet (dense layers with ReLU)
// and spline fused, forward and backward, on the CPU (no torch, no Python).
//
// The block maps x (n, dims): the conditioning columns `cond_index` pass through
// unchanged; together with an optional condition (n, condition_dims) they are the
// subnet's input, whose output (n, n_trans * (3K+1)) holds the raw spline parameters of
// the transformed columns `trans_index`, one run of 3K+1 per column in that order (the
// layout of rqs_math.h). logdet (n,) is the sum of the splines' log-Jacobians.
#pragma once

#include <cstdint>
#include <vector>

#include "rqs_math.h"

namespace madnis {

struct CouplingShape {
    int64_t dims = 0;                  // columns of x
    std::vector<int64_t> cond_index;   // conditioning columns of x
    std::vector<int64_t> trans_index;  // transformed columns of x
    int64_t condition_dims = 0;        // extra subnet inputs after x's conditioning columns
    // widths of the subnet's layers: sizes[0] = cond_index.size() + condition_dims,
    // sizes.back() = trans_index.size() * (3K+1); ReLU after every layer but the last
    std::vector<int64_t> sizes;
};

// Dense layers in torch's nn.Linear layout: weight[l] is (sizes[l+1], sizes[l])
// row-major, bias[l] is (sizes[l+1]).
template <typename T>
struct SubnetWeights {
    std::vector<const T*> weight;
    std::vector<const T*> bias;
};

// Writes y (n, dims) and logdet (n,). Returns -1, or the flat index (row * dims + column)
// of the first transformed input outside [0, 1] or NaN.
template <typename T>
int64_t coupling_forward_cpu(const T* x, const T* condition, const SubnetWeights<T>& w, T* y,
                             T* logdet, int64_t n, const CouplingShape& shape,
                             const SplineConfig<T>& cfg, bool inverse, int nthreads);

// Backward of coupling_forward_cpu from the upstream gradients grad_y (n, dims) and
// grad_logdet (n,): writes grad_x (n, dims), grad_condition (n, condition_dims; may be
// null) and the gradients of every weight and bias (same shapes as w; overwritten, not
// accumulated). The subnet's forward pass is recomputed chunk by chunk rather than
// stored. Returns as coupling_forward_cpu.
template <typename T>
int64_t coupling_backward_cpu(const T* x, const T* condition, const SubnetWeights<T>& w,
                              const T* grad_y, const T* grad_logdet, T* grad_x,
                              T* grad_condition, const std::vector<T*>& grad_weight,
                              const std::vector<T*>& grad_bias, int64_t n,
                              const CouplingShape& shape, const SplineConfig<T>& cfg,
                              bool inverse, int nthreads);

}  // namespace madnis
