// Rational-quadratic spline (RQS) on the unit interval, one event at a time.
//
// Durkan, Bekasov, Murray, Papamakarios, "Neural Spline Flows", arXiv:1906.04032.
// This header is the single source of the spline maths: the CPU loops (rqs_cpu.cpp)
// and the CUDA kernels (rqs_cuda.cu) both call these inline functions, so the two
// back ends cannot drift apart.
//
// Parameter layout of one event (length 3K+1, raw network outputs):
//   [ widths w_0..w_{K-1} | heights h_0..h_{K-1} | derivatives d_0..d_K ]
// Normalisation (fused here, forward and backward):
//   width_k  = min_w + (1 - K min_w) softmax(w)_k, knots x_k = cumsum, x_0 = 0, x_K = 1
//   height_k = min_h + (1 - K min_h) softmax(h)_k, knots y_k likewise
//   delta_k  = min_d + softplus(d_k + shift), shift = log(exp(1 - min_d) - 1)
// The shift makes raw outputs of zero the identity map (uniform bins, unit slopes), so
// a coupling layer whose last linear layer starts at zero starts as the identity.
#pragma once

#include <cmath>

#include "device.h"

namespace madnis {

constexpr int kMaxBins = 64;

template <typename T>
struct SplineConfig {
    int bins;
    T min_width;
    T min_height;
    T min_derivative;
    T derivative_shift;
};

// min/max/abs that vectorise: GCC keeps `v < c ? c : v` as a branch (IEEE NaN rules
// forbid turning it into vector min/max), but fmin/fmax/fabs map to vector instructions.
// CUDA's fmin/fmax/fabs are overloaded for float and double.
template <typename T>
MADNIS_HD T vmin(T a, T b) {
#ifdef __CUDA_ARCH__
    return fmin(a, b);
#else
    if constexpr (sizeof(T) == sizeof(float)) return __builtin_fminf(a, b);
    else return __builtin_fmin(a, b);
#endif
}
template <typename T>
MADNIS_HD T vmax(T a, T b) {
#ifdef __CUDA_ARCH__
    return fmax(a, b);
#else
    if constexpr (sizeof(T) == sizeof(float)) return __builtin_fmaxf(a, b);
    else return __builtin_fmax(a, b);
#endif
}
template <typename T>
MADNIS_HD T vabs(T a) {
#ifdef __CUDA_ARCH__
    return fabs(a);
#else
    if constexpr (sizeof(T) == sizeof(float)) return __builtin_fabsf(a);
    else return __builtin_fabs(a);
#endif
}

// exp for the CPU softmax loops: branch-free, so GCC vectorises loops over bins that
// call it, and within one ulp of libm (Cody-Waite reduction, Taylor to r^13 for double,
// r^7 for float). Device code uses CUDA's exp.
MADNIS_HD double vexp(double v) {
#ifdef __CUDA_ARCH__
    return exp(v);
#else
    v = vmin(vmax(v, -708.0), 709.0);
    const double magic = 6755399441055744.0;  // 1.5 * 2^52: rounds to an integer
    const double t = v * 1.4426950408889634 + magic;
    const double k = t - magic;
    const double r = (v - k * 0.6931471803691238) - k * 1.9082149292705877e-10;
    double p = 1.0 / 6227020800.0;
    p = p * r + 1.0 / 479001600.0;
    p = p * r + 1.0 / 39916800.0;
    p = p * r + 1.0 / 3628800.0;
    p = p * r + 1.0 / 362880.0;
    p = p * r + 1.0 / 40320.0;
    p = p * r + 1.0 / 5040.0;
    p = p * r + 1.0 / 720.0;
    p = p * r + 1.0 / 120.0;
    p = p * r + 1.0 / 24.0;
    p = p * r + 1.0 / 6.0;
    p = p * r + 0.5;
    p = p * r + 1.0;
    p = p * r + 1.0;
    // k sits in the low mantissa bits of t: integer ops only (AVX2 has no vector
    // double -> int64 conversion, which would stop the vectoriser)
    long long tbits, mbits;
    __builtin_memcpy(&tbits, &t, sizeof t);
    __builtin_memcpy(&mbits, &magic, sizeof magic);
    const long long bits = (tbits - mbits + 1023) << 52;
    double scale;
    __builtin_memcpy(&scale, &bits, sizeof scale);
    return p * scale;
#endif
}

MADNIS_HD float vexp(float v) {
#ifdef __CUDA_ARCH__
    return expf(v);
#else
    v = vmin(vmax(v, -87.0f), 88.0f);
    const float magic = 12582912.0f;  // 1.5 * 2^23
    const float t = v * 1.44269504f + magic;
    const float k = t - magic;
    const float r = (v - k * 0.693145752f) - k * 1.42860677e-6f;
    float p = 1.0f / 5040.0f;
    p = p * r + 1.0f / 720.0f;
    p = p * r + 1.0f / 120.0f;
    p = p * r + 1.0f / 24.0f;
    p = p * r + 1.0f / 6.0f;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    const int bits = (static_cast<int>(k) + 127) << 23;
    float scale;
    __builtin_memcpy(&scale, &bits, sizeof scale);
    return p * scale;
#endif
}

// Clamp to [0, 1]. NaN becomes 0: callers flag bad inputs before and overwrite their
// outputs after, so inside the kernels every value is a valid point.
template <typename T>
MADNIS_HD T clamp_unit(T v) {
    return vmin(vmax(v, T(0)), T(1));
}

// Natural log of a positive normal number, branch-free like vexp: x = 2^e m with m in
// [sqrt(1/2), sqrt(2)), log m = 2 atanh(s), s = (m - 1)/(m + 1), |s| < 0.172, series to
// s^21 (double) or s^11 (float). Integer <-> float conversions use the magic-number
// trick so the vectoriser needs no int64 conversions. Device code uses CUDA's log.
MADNIS_HD double vlog(double x) {
#ifdef __CUDA_ARCH__
    return log(x);
#else
    // subtracting the bits of sqrt(1/2) puts the mantissa in [sqrt(1/2), sqrt(2)) and
    // the exponent in the high bits, with integer operations only
    long long bits;
    __builtin_memcpy(&bits, &x, sizeof x);
    const long long off = bits - 0x3FE6A09E667F3BCDLL;
    const long long mbits = (off & 0x000FFFFFFFFFFFFFLL) + 0x3FE6A09E667F3BCDLL;
    double m;
    __builtin_memcpy(&m, &mbits, sizeof m);
    const long long ebits = 0x4338000000000000LL + (off >> 52);
    double e;
    __builtin_memcpy(&e, &ebits, sizeof e);
    e -= 6755399441055744.0;
    const double s = (m - 1.0) / (m + 1.0);
    const double s2 = s * s;
    double p = 1.0 / 21.0;
    p = p * s2 + 1.0 / 19.0;
    p = p * s2 + 1.0 / 17.0;
    p = p * s2 + 1.0 / 15.0;
    p = p * s2 + 1.0 / 13.0;
    p = p * s2 + 1.0 / 11.0;
    p = p * s2 + 1.0 / 9.0;
    p = p * s2 + 1.0 / 7.0;
    p = p * s2 + 1.0 / 5.0;
    p = p * s2 + 1.0 / 3.0;
    p = p * s2 + 1.0;
    return e * 0.6931471803691238 + (2.0 * s * p + e * 1.9082149292705877e-10);
#endif
}

MADNIS_HD float vlog(float x) {
#ifdef __CUDA_ARCH__
    return logf(x);
#else
    int bits;
    __builtin_memcpy(&bits, &x, sizeof x);
    const int off = bits - 0x3F3504F3;  // bits of sqrt(1/2)
    const int mbits = (off & 0x007FFFFF) + 0x3F3504F3;
    float m;
    __builtin_memcpy(&m, &mbits, sizeof m);
    const int ebits = 0x4B400000 + (off >> 23);
    float e;
    __builtin_memcpy(&e, &ebits, sizeof e);
    e -= 12582912.0f;
    const float s = (m - 1.0f) / (m + 1.0f);
    const float s2 = s * s;
    float p = 1.0f / 11.0f;
    p = p * s2 + 1.0f / 9.0f;
    p = p * s2 + 1.0f / 7.0f;
    p = p * s2 + 1.0f / 5.0f;
    p = p * s2 + 1.0f / 3.0f;
    p = p * s2 + 1.0f;
    return e * 0.693145752f + (2.0f * s * p + e * 1.42860677e-6f);
#endif
}

// log(1 + u) for u >= 0, accurate for tiny u: w = 1 + u is rounded, and
// log(1 + u) = log w + log((1 + u)/w) = log w + (u - (w - 1))/w + O(eps^2). No select,
// so it vectorises; for w == 1 it returns u exactly.
template <typename T>
MADNIS_HD T vlog1p(T u) {
    const T w = T(1) + u;
    return vlog(w) + (u - (w - T(1))) / w;
}

// log(1 + e^v) = max(v, 0) + log1p(e^-|v|): no overflow, no branch.
template <typename T>
MADNIS_HD T softplus(T v) {
    const T t = vexp(-vabs(v));
    return vmax(v, T(0)) + vlog1p(t);
}

template <typename T>
MADNIS_HD T sigmoid(T v) {
    const T t = vexp(-vabs(v));
    return (v >= T(0) ? T(1) : t) / (T(1) + t);
}

// Softmax of `raw` (length K) into `prob`, and the knots (length K+1) of the bins
// whose sizes are min_b + (1 - K min_b) prob_k. The last knot is exactly one.
template <typename T>
MADNIS_HD void normalise_bins(const T* raw, int K, T min_b, T* prob, T* knots) {
    T m = raw[0];
    for (int j = 1; j < K; ++j) m = vmax(raw[j], m);
    // two loops: the first has no reduction, so it vectorises over bins
    for (int j = 0; j < K; ++j) prob[j] = vexp(raw[j] - m);
    T sum = T(0);
    for (int j = 0; j < K; ++j) sum += prob[j];
    const T inv = T(1) / sum;
    const T scale = T(1) - min_b * T(K);
    T c = T(0);
    knots[0] = T(0);
    for (int j = 0; j < K - 1; ++j) {
        prob[j] *= inv;
        c += min_b + scale * prob[j];
        knots[j + 1] = c;
    }
    prob[K - 1] *= inv;
    knots[K] = T(1);
}

// Index k of the bin with knots[k] <= v < knots[k+1]; v == 1 falls into the last bin.
template <typename T>
MADNIS_HD int find_bin(const T* knots, int K, T v) {
    int k = 0;
    for (int j = 1; j < K; ++j) k += knots[j] <= v ? 1 : 0;
    return k;
}

// Partial derivatives of y and log(dy/dx) inside one bin with respect to the bin's
// local coordinate xi and its parameters (s = h_k / w_k, h_k at fixed s, delta_k,
// delta_{k+1}); y also depends on y_k with unit slope.
template <typename T>
struct BinPartials {
    T y_xi, y_s, y_h, y_d0, y_d1;
    T l_xi, l_s, l_d0, l_d1;
};

// The rational-quadratic map inside bin k (eqs. 4 and 5 of arXiv:1906.04032):
//   y = y_k + h_k [s xi^2 + d0 xi(1-xi)] / [s + (d1 + d0 - 2s) xi(1-xi)]
template <typename T>
MADNIS_HD void bin_forward(T xi, T s, T hk, T d0, T d1, T yk, T& y, T& logdet,
                           BinPartials<T>* P) {
    const T omx = T(1) - xi;
    const T th = xi * omx;
    const T c = d1 + d0 - T(2) * s;
    const T D = s + c * th;
    const T A = s * xi * xi + d0 * th;
    const T B = d1 * xi * xi + T(2) * s * th + d0 * omx * omx;
    const T iD = T(1) / D;
    y = yk + hk * A * iD;
    // one log of s^2 B / D^2 (all factors stay within ~1e-12..1e12, no overflow)
    logdet = vlog(s * s * B * iD * iD);
    if (P) {
        const T iD2 = iD * iD;
        const T iB = T(1) / B;
        const T dth = T(1) - T(2) * xi;
        const T D_xi = c * dth;
        const T B_xi = T(2) * (d1 * xi + s * dth - d0 * omx);
        P->y_xi = hk * s * B * iD2;
        P->y_s = hk * (xi * xi * D - A * (T(1) - T(2) * th)) * iD2;
        P->y_h = A * iD;
        P->y_d0 = hk * th * (D - A) * iD2;
        P->y_d1 = -hk * A * th * iD2;
        P->l_xi = B_xi * iB - T(2) * D_xi * iD;
        P->l_s = T(2) / s + T(2) * th * iB - T(2) * (T(1) - T(2) * th) * iD;
        P->l_d0 = omx * omx * iB - T(2) * th * iD;
        P->l_d1 = xi * xi * iB - T(2) * th * iD;
    }
}

// Inverse of bin_forward: the root in [0, 1] of the quadratic a xi^2 + b xi + c = 0,
// written in the cancellation-free form xi = 2c / (-b - sqrt(b^2 - 4ac)).
template <typename T>
MADNIS_HD T bin_inverse(T y, T s, T hk, T d0, T d1, T yk) {
    const T dy = y - yk;
    const T c = d1 + d0 - T(2) * s;
    const T qa = hk * (s - d0) + dy * c;
    const T qb = hk * d0 - dy * c;
    const T qc = -s * dy;
    T disc = qb * qb - T(4) * qa * qc;
    disc = vmax(disc, T(0));
    return clamp_unit(T(2) * qc / (-qb - sqrt(disc)));
}

// The map of one bin with exact end points: forward (x -> y) or inverse (y -> x), with
// log|d out / d in|. The direction is a template parameter so that callers looping over
// lanes (rqs_lanes.h) get branch-free code; spline_apply picks it per event.
template <bool Inverse, typename T>
MADNIS_HD T bin_apply(T v, T xk, T wk, T yk, T hk, T s, T d0, T d1, T& logdet) {
    // The spline maps 0 -> 0 and 1 -> 1 exactly; y_k + h_k alone may round to 1 - ulp.
    // `|` rather than `||`: no branch for the vectoriser.
    const bool edge = (v == T(0)) | (v == T(1));
    T y, ld;
    if constexpr (!Inverse) {
        const T xi = clamp_unit((v - xk) / wk);
        bin_forward(xi, s, hk, d0, d1, yk, y, logdet, (BinPartials<T>*)nullptr);
        return edge ? v : clamp_unit(y);
    } else {
        // at the end points xi is exactly 0 or 1; the quadratic gives it only to an ulp,
        // which the log-det's steep xi-dependence there would amplify to ~1e-9
        const T root = bin_inverse(v, s, hk, d0, d1, yk);
        const T xi = edge ? v : root;
        bin_forward(xi, s, hk, d0, d1, yk, y, ld, (BinPartials<T>*)nullptr);
        logdet = -ld;
        return edge ? v : clamp_unit(xk + wk * xi);
    }
}

// Backward of bin_apply for upstream gradients g_out (of the output) and g_ld (of the
// log-det): writes the gradients with respect to the input (g_in) and the bin quantities
// x_k, w_k, y_k, h_k and the knot slopes delta_k, delta_{k+1}. Outputs are references,
// not a struct, so the lane loops store them into one array per quantity.
// The inverse direction uses the implicit-function theorem on the forward bin map, so
// both directions share bin_forward's partial derivatives.
template <bool Inverse, typename T>
MADNIS_HD void bin_backward(T v, T xk, T wk, T yk, T hk, T s, T d0, T d1, T g_out, T g_ld,
                            T& g_in, T& g_xk, T& g_wk, T& g_yk, T& g_hk, T& g_d0, T& g_d1) {
    const T iw = T(1) / wk;
    BinPartials<T> P;
    T y, ld, g_h, g_s;
    if constexpr (!Inverse) {
        const T xi = clamp_unit((v - xk) * iw);
        bin_forward(xi, s, hk, d0, d1, yk, y, ld, &P);
        const T g_xi = g_out * P.y_xi + g_ld * P.l_xi;
        g_in = g_xi * iw;
        g_xk = -g_xi * iw;
        g_wk = -g_xi * xi * iw;
        g_yk = g_out;
        g_h = g_out * P.y_h;
        g_s = g_out * P.y_s + g_ld * P.l_s;
        g_d0 = g_out * P.y_d0 + g_ld * P.l_d0;
        g_d1 = g_out * P.y_d1 + g_ld * P.l_d1;
    } else {
        const bool edge = (v == T(0)) | (v == T(1));
        const T root = bin_inverse(v, s, hk, d0, d1, yk);
        const T xi = edge ? v : root;
        bin_forward(xi, s, hk, d0, d1, yk, y, ld, &P);
        // outputs: x = x_k + w_k xi(v, theta), logdet = -l(xi, theta)
        const T g_xi = g_out * wk - g_ld * P.l_xi;
        const T r = g_xi / P.y_xi;  // d xi / d v = 1 / (dy/dxi)
        g_in = r;
        g_xk = g_out;
        g_wk = g_out * xi;
        g_yk = -r;
        g_h = -r * P.y_h;
        g_s = -g_ld * P.l_s - r * P.y_s;
        g_d0 = -g_ld * P.l_d0 - r * P.y_d0;
        g_d1 = -g_ld * P.l_d1 - r * P.y_d1;
    }
    // s = h_k / w_k
    g_wk -= g_s * s * iw;
    g_hk = g_h + g_s * iw;
}

// Softmax backward coefficients for one set of bins: the normalised sizes enter through
// the knot below bin k (all sizes j < k, gradient g_knot) and bin k's own size (gradient
// g_size); d loss / d raw_j = (1 - K min) p_j c_j with c_j = below (j < k), bin (j = k),
// above (j > k). `below`/`above` are the probability sums under and over bin k.
//
// The softmax backward p_j (g_j - sum_m p_m g_m) is evaluated as p_j sum_m p_m (g_j - g_m),
// using sum_m p_m = 1 analytically: g takes only the three values g_knot, g_size and 0,
// so no large terms have to cancel through a rounded sum of probabilities (which costs
// ~1e-9 absolute for sharp splines otherwise).
template <typename T>
struct SoftmaxCoefficients {
    T below, bin, above;
};

template <typename T>
MADNIS_HD SoftmaxCoefficients<T> softmax_coefficients(T below, T above, T pk, T g_knot,
                                                      T g_size) {
    const T diff = g_knot - g_size;
    return {pk * diff + above * g_knot,            // g_knot - S
            -below * diff + above * g_size,        // g_size - S
            -(below * g_knot + pk * g_size)};      // 0 - S
}

// Everything one event needs from its raw parameters for the bin containing `v`.
template <typename T>
struct SplineBin {
    int k;
    T xk, wk, yk, hk, d0, d1;
    T a0, a1;  // shifted raw derivative parameters; softplus'(a) = sigmoid(a) in backward
};

// Normalise an event's raw parameters and locate v: in the x knots for the forward
// direction, in the y knots for the inverse. prob_w/prob_h (length K) receive the
// softmax probabilities, which the backward pass needs.
template <typename T>
MADNIS_HD SplineBin<T> locate(const T* raw, const SplineConfig<T>& cfg, T v, bool inverse,
                              T* prob_w, T* prob_h) {
    const int K = cfg.bins;
    T xknots[kMaxBins + 1];
    T yknots[kMaxBins + 1];
    normalise_bins(raw, K, cfg.min_width, prob_w, xknots);
    normalise_bins(raw + K, K, cfg.min_height, prob_h, yknots);
    SplineBin<T> b;
    b.k = find_bin(inverse ? yknots : xknots, K, v);
    b.xk = xknots[b.k];
    b.wk = xknots[b.k + 1] - xknots[b.k];
    b.yk = yknots[b.k];
    b.hk = yknots[b.k + 1] - yknots[b.k];
    const T* rd = raw + 2 * K;
    b.a0 = rd[b.k] + cfg.derivative_shift;
    b.a1 = rd[b.k + 1] + cfg.derivative_shift;
    b.d0 = cfg.min_derivative + softplus(b.a0);
    b.d1 = cfg.min_derivative + softplus(b.a1);
    return b;
}


// Forward (x -> y) or inverse (y -> x) of one event. Returns the output and writes
// log|d out / d in|.
template <typename T>
MADNIS_HD T spline_apply(T v, const T* raw, const SplineConfig<T>& cfg, bool inverse,
                         T& logdet) {
    T pw[kMaxBins], ph[kMaxBins];
    const SplineBin<T> b = locate(raw, cfg, v, inverse, pw, ph);
    const T s = b.hk / b.wk;
    return inverse ? bin_apply<true>(v, b.xk, b.wk, b.yk, b.hk, s, b.d0, b.d1, logdet)
                   : bin_apply<false>(v, b.xk, b.wk, b.yk, b.hk, s, b.d0, b.d1, logdet);
}

// Softmax backward for one set of bins of one event (see softmax_coefficients).
// Writes d loss / d raw_j for j = 0..K-1.
template <typename T>
MADNIS_HD void bins_backward(const T* prob, int K, T min_b, int k, T g_knot, T g_size,
                             T* g_raw) {
    T below = T(0), above = T(0);
    for (int j = 0; j < k; ++j) below += prob[j];
    for (int j = k + 1; j < K; ++j) above += prob[j];
    const SoftmaxCoefficients<T> c = softmax_coefficients(below, above, prob[k], g_knot, g_size);
    const T scale = T(1) - min_b * T(K);
    for (int j = 0; j < K; ++j) {
        const T cj = j < k ? c.below : (j == k ? c.bin : c.above);
        g_raw[j] = scale * prob[j] * cj;
    }
}

// Backward pass of one event: given the upstream gradients of the output (g_out) and
// of the log-determinant (g_ld), write d loss / d raw parameters (length 3K+1) and
// return d loss / d input.
template <typename T>
MADNIS_HD T spline_backward(T v, const T* raw, const SplineConfig<T>& cfg, bool inverse,
                            T g_out, T g_ld, T* g_raw) {
    const int K = cfg.bins;
    T pw[kMaxBins], ph[kMaxBins];
    const SplineBin<T> b = locate(raw, cfg, v, inverse, pw, ph);
    const T s = b.hk / b.wk;
    T g_in, g_xk, g_wk, g_yk, g_hk, g_d0, g_d1;
    if (inverse)
        bin_backward<true>(v, b.xk, b.wk, b.yk, b.hk, s, b.d0, b.d1, g_out, g_ld, g_in, g_xk,
                           g_wk, g_yk, g_hk, g_d0, g_d1);
    else
        bin_backward<false>(v, b.xk, b.wk, b.yk, b.hk, s, b.d0, b.d1, g_out, g_ld, g_in, g_xk,
                            g_wk, g_yk, g_hk, g_d0, g_d1);
    bins_backward(pw, K, cfg.min_width, b.k, g_xk, g_wk, g_raw);
    bins_backward(ph, K, cfg.min_height, b.k, g_yk, g_hk, g_raw + K);
    T* gd = g_raw + 2 * K;
    for (int j = 0; j <= K; ++j) gd[j] = T(0);
    gd[b.k] = g_d0 * sigmoid(b.a0);
    gd[b.k + 1] = g_d1 * sigmoid(b.a1);
    return g_in;
}

}  // namespace madnis
