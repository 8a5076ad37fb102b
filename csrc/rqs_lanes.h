// The RQS spline for L events at once on the CPU ("lanes"), so that the compiler
// vectorises across events.
//
// Per event the spline is a long dependency chain (softmax, knot cumsum, bin search,
// rational map), which leaves a CPU core mostly idle. Here every step runs for L
// events side by side in fixed-length loops over the lane index, which GCC turns into
// SIMD instructions. The maths is not repeated: each lane calls the same inline,
// branch-free functions of rqs_math.h (bin_apply, bin_backward, softmax_coefficients,
// softplus, vexp, ...); only the orchestration (transposing parameters, the
// normalisation loops, the per-lane gathers of the bin's knots) is organised by lane. CUDA keeps the per-event
// form, which is what a GPU thread wants.
#pragma once

#include "rqs_math.h"

namespace madnis {
namespace lanes {

constexpr int L = 8;
#define MADNIS_LANES for (int l = 0; l < L; ++l)

// Per-block scratch: raw parameters transposed to [row][lane], softmax probabilities
// and knots of widths and heights.
template <typename T>
struct Block {
    T raw[3 * kMaxBins + 1][L];
    T pw[kMaxBins][L], ph[kMaxBins][L];
    T xkn[kMaxBins + 1][L], ykn[kMaxBins + 1][L];
    int k[L];
    T v[L], xk[L], wk[L], yk[L], hk[L], a0[L], a1[L], d0[L], d1[L], s[L];
};

template <typename T>
MADNIS_HD void normalise(const T (*raw)[L], int K, T min_b, T (*prob)[L], T (*knots)[L]) {
    T m[L], sum[L], c[L];
    MADNIS_LANES m[l] = raw[0][l];
    for (int j = 1; j < K; ++j) MADNIS_LANES m[l] = vmax(raw[j][l], m[l]);
    MADNIS_LANES sum[l] = T(0);
    for (int j = 0; j < K; ++j) MADNIS_LANES {
            prob[j][l] = vexp(raw[j][l] - m[l]);
            sum[l] += prob[j][l];
        }
    MADNIS_LANES {
        sum[l] = T(1) / sum[l];
        c[l] = T(0);
        knots[0][l] = T(0);
    }
    const T scale = T(1) - min_b * T(K);
    for (int j = 0; j < K - 1; ++j) MADNIS_LANES {
            prob[j][l] *= sum[l];
            c[l] += min_b + scale * prob[j][l];
            knots[j + 1][l] = c[l];
        }
    MADNIS_LANES {
        prob[K - 1][l] *= sum[l];
        knots[K][l] = T(1);
    }
}

// Normalise the raw parameters already in b.raw ([row][lane]) and locate every lane's
// bin for the L inputs x. The fused coupling kernels (coupling_cpu.cpp) fill b.raw
// straight from the subnet's output, which is already laid out by lane.
template <typename T>
MADNIS_HD void locate_loaded(Block<T>& b, const T* x, const SplineConfig<T>& cfg,
                             bool inverse) {
    const int K = cfg.bins;
    MADNIS_LANES b.v[l] = clamp_unit(x[l]);
    normalise(b.raw, K, cfg.min_width, b.pw, b.xkn);
    normalise(b.raw + K, K, cfg.min_height, b.ph, b.ykn);
    const T(*search)[L] = inverse ? b.ykn : b.xkn;
    MADNIS_LANES b.k[l] = 0;
    for (int j = 1; j < K; ++j) MADNIS_LANES b.k[l] += search[j][l] <= b.v[l] ? 1 : 0;
    for (int l = 0; l < L; ++l) {  // gathers: a different row per lane
        const int k = b.k[l];
        b.xk[l] = b.xkn[k][l];
        b.wk[l] = b.xkn[k + 1][l] - b.xkn[k][l];
        b.yk[l] = b.ykn[k][l];
        b.hk[l] = b.ykn[k + 1][l] - b.ykn[k][l];
        b.a0[l] = b.raw[2 * K + k][l] + cfg.derivative_shift;
        b.a1[l] = b.raw[2 * K + k + 1][l] + cfg.derivative_shift;
    }
    MADNIS_LANES {
        b.d0[l] = cfg.min_derivative + softplus(b.a0[l]);
        b.d1[l] = cfg.min_derivative + softplus(b.a1[l]);
        b.s[l] = b.hk[l] / b.wk[l];
    }
}

// The spline of L lanes whose raw parameters are already in b.raw.
template <typename T>
MADNIS_HD void forward_loaded(Block<T>& b, const T* x, T* y, T* logdet,
                              const SplineConfig<T>& cfg, bool inverse) {
    locate_loaded(b, x, cfg, inverse);
    T out[L], ld[L];
    // the direction is hoisted out of the lane loops so they stay branch-free
    if (!inverse) {
        MADNIS_LANES out[l] = bin_apply<false>(b.v[l], b.xk[l], b.wk[l], b.yk[l], b.hk[l],
                                               b.s[l], b.d0[l], b.d1[l], ld[l]);
    } else {
        MADNIS_LANES out[l] = bin_apply<true>(b.v[l], b.xk[l], b.wk[l], b.yk[l], b.hk[l],
                                              b.s[l], b.d0[l], b.d1[l], ld[l]);
    }
    MADNIS_LANES {
        y[l] = out[l];
        logdet[l] = ld[l];
    }
}

template <typename T>
MADNIS_HD void forward_block(const T* x, const T* params, T* y, T* logdet,
                             const SplineConfig<T>& cfg, bool inverse) {
    Block<T> b;
    const int stride = 3 * cfg.bins + 1;
    for (int l = 0; l < L; ++l)
        for (int j = 0; j < stride; ++j) b.raw[j][l] = params[l * stride + j];
    forward_loaded(b, x, y, logdet, cfg, inverse);
}

// Softmax backward per lane (see softmax_coefficients in rqs_math.h).
template <typename T>
MADNIS_HD void bins_backward(const T (*prob)[L], int K, T min_b, const int* k, const T* g_knot,
                             const T* g_size, T (*g_raw)[L]) {
    T below[L], above[L];
    MADNIS_LANES below[l] = above[l] = T(0);
    for (int j = 0; j < K; ++j) MADNIS_LANES {
            below[l] += j < k[l] ? prob[j][l] : T(0);
            above[l] += j > k[l] ? prob[j][l] : T(0);
        }
    T pk[L];
    for (int l = 0; l < L; ++l) pk[l] = prob[k[l]][l];
    const T scale = T(1) - min_b * T(K);
    T cb[L], cm[L], ca[L];
    MADNIS_LANES {
        const SoftmaxCoefficients<T> c =
            softmax_coefficients(below[l], above[l], pk[l], g_knot[l], g_size[l]);
        cb[l] = c.below;
        cm[l] = c.bin;
        ca[l] = c.above;
    }
    for (int j = 0; j < K; ++j) MADNIS_LANES {
            T c = j == k[l] ? cm[l] : ca[l];  // two plain selects: a nested ?: branches
            c = j < k[l] ? cb[l] : c;
            g_raw[j][l] = scale * prob[j][l] * c;
        }
}

// Backward of forward_loaded: on return b.raw holds the gradients of the raw
// parameters ([row][lane]) and grad_x those of the inputs.
template <typename T>
MADNIS_HD void backward_loaded(Block<T>& b, const T* x, const T* grad_y, const T* grad_logdet,
                               T* grad_x, const SplineConfig<T>& cfg, bool inverse) {
    const int K = cfg.bins;
    locate_loaded(b, x, cfg, inverse);
    T g_in[L], g_xk[L], g_wk[L], g_yk[L], g_hk[L], g_d0[L], g_d1[L];
    // the direction is hoisted out of the lane loops so they stay branch-free
    if (!inverse) {
        MADNIS_LANES bin_backward<false>(b.v[l], b.xk[l], b.wk[l], b.yk[l], b.hk[l], b.s[l],
                                         b.d0[l], b.d1[l], grad_y[l], grad_logdet[l], g_in[l],
                                         g_xk[l], g_wk[l], g_yk[l], g_hk[l], g_d0[l], g_d1[l]);
    } else {
        MADNIS_LANES bin_backward<true>(b.v[l], b.xk[l], b.wk[l], b.yk[l], b.hk[l], b.s[l],
                                        b.d0[l], b.d1[l], grad_y[l], grad_logdet[l], g_in[l],
                                        g_xk[l], g_wk[l], g_yk[l], g_hk[l], g_d0[l], g_d1[l]);
    }
    MADNIS_LANES {
        g_d0[l] *= sigmoid(b.a0[l]);
        g_d1[l] *= sigmoid(b.a1[l]);
    }
    T(*g)[L] = b.raw;  // the raw parameters are no longer needed: reuse as gradient rows
    bins_backward(b.pw, K, cfg.min_width, b.k, g_xk, g_wk, g);
    bins_backward(b.ph, K, cfg.min_height, b.k, g_yk, g_hk, g + K);
    for (int j = 0; j <= K; ++j) MADNIS_LANES {
            const T upper = j == b.k[l] + 1 ? g_d1[l] : T(0);
            g[2 * K + j][l] = j == b.k[l] ? g_d0[l] : upper;
        }
    MADNIS_LANES grad_x[l] = g_in[l];
}

template <typename T>
MADNIS_HD void backward_block(const T* x, const T* params, const T* grad_y,
                              const T* grad_logdet, T* grad_x, T* grad_params,
                              const SplineConfig<T>& cfg, bool inverse) {
    const int stride = 3 * cfg.bins + 1;
    Block<T> b;
    for (int l = 0; l < L; ++l)
        for (int j = 0; j < stride; ++j) b.raw[j][l] = params[l * stride + j];
    backward_loaded(b, x, grad_y, grad_logdet, grad_x, cfg, inverse);
    for (int l = 0; l < L; ++l)
        for (int j = 0; j < stride; ++j) grad_params[l * stride + j] = b.raw[j][l];
}

#undef MADNIS_LANES

}  // namespace lanes
}  // namespace madnis
