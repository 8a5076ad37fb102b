// CPU loops of the fused coupling block (coupling.h).
//
// Events go through in chunks of kChunk that stay in cache from the gather of the
// subnet input to the spline's output. Inside a chunk every array is laid out
// [feature][event], so each dense layer is a small matrix product vectorised across
// events (a register tile of kRows output features x one vector of events, the weights
// broadcast), and the subnet's output rows are the [row][lane] blocks that the
// lane-blocked spline (rqs_lanes.h) reads, with no transposition in between.
// The backward pass recomputes the chunk's subnet activations instead of storing them
// for the whole batch: that keeps the memory traffic per chunk in cache.
//
// Compiled twice on x86-64 GCC (AVX2+FMA and baseline) with target_clones, like
// rqs_cpu.cpp; finite-math for the same reason (the spline's selects), and FMA
// contraction for the products.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("finite-math-only", "no-signed-zeros", "fp-contract=fast")
#endif

// The 32-byte vector helpers are always inlined, so no vector value crosses a call
// boundary and the ABI note GCC attaches to them does not apply.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wpsabi"
#endif

#include <algorithm>
#include <cstring>
#include <mutex>
#include <utility>
#include <vector>

#include "coupling.h"
#include "parallel.h"
#include "range_check.h"
#include "rqs_lanes.h"

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define MADNIS_CLONES __attribute__((target_clones("arch=x86-64-v3", "default")))
#else
#define MADNIS_CLONES
#endif

namespace madnis {

namespace {

constexpr int64_t kChunk = 64;  // events per chunk: a multiple of every vector width
constexpr int kRows = 6;        // output features per register tile
constexpr int64_t kGrain = 4096;

// One SIMD register of events (AVX2 in the x86-64-v3 clone); a tile is kVecs of them
// wide. The unaligned type loads and stores at any element boundary.
template <typename T>
struct Vec {
    typedef T type __attribute__((vector_size(32)));
    typedef T unaligned __attribute__((vector_size(32), aligned(sizeof(T)), may_alias));
    static constexpr int width = int(32 / sizeof(T));
};
constexpr int kVecs = 2;

template <typename T>
MADNIS_HD typename Vec<T>::type vload(const T* p) {
    return *reinterpret_cast<const typename Vec<T>::unaligned*>(p);
}
template <typename T>
MADNIS_HD void vstore(T* p, typename Vec<T>::type v) {
    *reinterpret_cast<typename Vec<T>::unaligned*>(p) = v;
}

// R rows of C, kVecs vectors wide: C = init + A B over k < K, where init is C itself
// (ACC), else the bias (or zero); ReLU on the result if RELU. A is (R, K) at row stride
// lda, B (K, width) at row stride ldb.
template <typename T, int R, bool ACC, bool RELU>
MADNIS_HD void tile(int64_t K, const T* A, int64_t lda, const T* B, int64_t ldb, T* C,
                    int64_t ldc, const T* bias) {
    using V = typename Vec<T>::type;
    constexpr int W = Vec<T>::width;
    V acc[R][kVecs] = {};
    for (int r = 0; r < R; ++r)
        for (int p = 0; p < kVecs; ++p) {
            if (ACC) acc[r][p] = vload(C + r * ldc + p * W);
            else acc[r][p] += bias ? bias[r] : T(0);
        }
    for (int64_t k = 0; k < K; ++k) {
        V b[kVecs];
        for (int p = 0; p < kVecs; ++p) b[p] = vload(B + k * ldb + p * W);
        for (int r = 0; r < R; ++r) {
            const T a = A[r * lda + k];
            for (int p = 0; p < kVecs; ++p) acc[r][p] += a * b[p];
        }
    }
    for (int r = 0; r < R; ++r)
        for (int p = 0; p < kVecs; ++p) {
            V v = acc[r][p];
            if (RELU) v = v > V{} ? v : V{};
            vstore(C + r * ldc + p * W, v);
        }
}

// sum_e a[e] b[e] (or sum_e a[e] without b) over `width` events, a multiple of a tile:
// vector partial sums, since without reassociation GCC keeps a scalar chain.
template <typename T>
MADNIS_HD T dot(const T* a, const T* b, int64_t width) {
    using V = typename Vec<T>::type;
    constexpr int W = Vec<T>::width;
    V acc[kVecs] = {};
    for (int64_t e = 0; e < width; e += W * kVecs)
        for (int p = 0; p < kVecs; ++p)
            acc[p] += b ? vload(a + e + p * W) * vload(b + e + p * W) : vload(a + e + p * W);
    for (int p = 1; p < kVecs; ++p) acc[0] += acc[p];
    T total = T(0);
    for (int v = 0; v < W; ++v) total += acc[0][v];
    return total;
}

// The columns past the last full vector, one at a time.
template <typename T, bool ACC, bool RELU>
MADNIS_HD void edge(int64_t M, int64_t width, int64_t K, const T* A, int64_t lda, const T* B,
                    int64_t ldb, T* C, int64_t ldc, const T* bias) {
    for (int64_t m = 0; m < M; ++m)
        for (int64_t n = 0; n < width; ++n) {
            T s = ACC ? C[m * ldc + n] : (bias ? bias[m] : T(0));
            for (int64_t k = 0; k < K; ++k) s += A[m * lda + k] * B[k * ldb + n];
            C[m * ldc + n] = RELU ? vmax(s, T(0)) : s;
        }
}

// C (M, N) = init + A (M, K) B (K, N), row-major with leading dimensions lda, ldb, ldc.
template <typename T, bool ACC, bool RELU>
MADNIS_HD void gemm(int64_t M, int64_t N, int64_t K, const T* A, int64_t lda, const T* B,
                    int64_t ldb, T* C, int64_t ldc, const T* bias) {
    constexpr int W = Vec<T>::width * kVecs;
    const int64_t Nv = N - N % W;
    int64_t m = 0;
    for (; m + kRows <= M; m += kRows)
        for (int64_t n = 0; n < Nv; n += W)
            tile<T, kRows, ACC, RELU>(K, A + m * lda, lda, B + n, ldb, C + m * ldc + n, ldc,
                                      bias ? bias + m : nullptr);
    for (; m < M; ++m)
        for (int64_t n = 0; n < Nv; n += W)
            tile<T, 1, ACC, RELU>(K, A + m * lda, lda, B + n, ldb, C + m * ldc + n, ldc,
                                  bias ? bias + m : nullptr);
    if (Nv < N) edge<T, ACC, RELU>(M, N - Nv, K, A, lda, B + Nv, ldb, C + Nv, ldc, bias);
}

// Per-thread scratch of one chunk, every array [feature][event] with kChunk events.
template <typename T>
struct Workspace {
    std::vector<std::vector<T>> act;  // act[l]: input of layer l; act.back(): raw params
    std::vector<T> grad_a, grad_b;    // gradients of one layer's output and input
    std::vector<T> act_t;             // one layer's input transposed, [event][feature]
    Workspace(const CouplingShape& s, bool backward) {
        for (int64_t size : s.sizes) act.emplace_back(size * kChunk);
        if (backward) {
            const int64_t widest = *std::max_element(s.sizes.begin(), s.sizes.end());
            grad_a.resize(widest * kChunk);
            grad_b.resize(widest * kChunk);
            act_t.resize(widest * kChunk);
        }
    }
};

// Subnet input of `count` events from e0; the rest of the chunk is padded with
// harmless values (x = 1/2, condition 0).
template <typename T>
MADNIS_HD void gather_input(const T* x, const T* condition, int64_t e0, int64_t count,
                            const CouplingShape& s, T* in) {
    const int64_t nc = int64_t(s.cond_index.size());
    for (int64_t j = 0; j < nc; ++j) {
        T* row = in + j * kChunk;
        const T* col = x + e0 * s.dims + s.cond_index[j];
        for (int64_t e = 0; e < count; ++e) row[e] = col[e * s.dims];
        for (int64_t e = count; e < kChunk; ++e) row[e] = T(0.5);
    }
    for (int64_t j = 0; j < s.condition_dims; ++j) {
        T* row = in + (nc + j) * kChunk;
        const T* col = condition + e0 * s.condition_dims + j;
        for (int64_t e = 0; e < count; ++e) row[e] = col[e * s.condition_dims];
        for (int64_t e = count; e < kChunk; ++e) row[e] = T(0);
    }
}

template <typename T>
MADNIS_HD void subnet_forward(const SubnetWeights<T>& w, const CouplingShape& s,
                              Workspace<T>& ws, int64_t width) {
    const size_t layers = s.sizes.size() - 1;
    for (size_t l = 0; l < layers; ++l) {
        const int64_t fin = s.sizes[l], fout = s.sizes[l + 1];
        if (l + 1 < layers)
            gemm<T, false, true>(fout, width, fin, w.weight[l], fin, ws.act[l].data(), kChunk,
                                 ws.act[l + 1].data(), kChunk, w.bias[l]);
        else
            gemm<T, false, false>(fout, width, fin, w.weight[l], fin, ws.act[l].data(), kChunk,
                                  ws.act[l + 1].data(), kChunk, w.bias[l]);
    }
}

// Smallest flat index (row * dims + column) of a transformed input outside [0, 1].
template <typename T>
MADNIS_HD int64_t first_bad(const T* x, int64_t e0, int64_t count, const CouplingShape& s) {
    for (int64_t e = e0; e < e0 + count; ++e) {
        int64_t first = -1;
        for (int64_t col : s.trans_index)
            if (!in_unit(x[e * s.dims + col]) && (first < 0 || e * s.dims + col < first))
                first = e * s.dims + col;
        if (first >= 0) return first;
    }
    return -1;
}

// Load the raw parameter rows of lanes q..q+L of transformed column t into b.raw.
template <typename T>
MADNIS_HD void load_raw(lanes::Block<T>& b, const T* raw_rows, int64_t t, int64_t q,
                        int64_t stride) {
    const T* rows = raw_rows + t * stride * kChunk + q;
    for (int64_t j = 0; j < stride; ++j)
        for (int l = 0; l < lanes::L; ++l) b.raw[j][l] = rows[j * kChunk + l];
}

template <typename T>
MADNIS_HD int64_t forward_range(const T* x, const T* condition, const SubnetWeights<T>& w,
                                T* y, T* logdet, int64_t begin, int64_t end,
                                const CouplingShape& s, const SplineConfig<T>& cfg,
                                bool inverse) {
    constexpr int L = lanes::L;
    constexpr int W = Vec<T>::width * kVecs;
    const int64_t stride = 3 * int64_t(cfg.bins) + 1;
    const int64_t nt = int64_t(s.trans_index.size());
    Workspace<T> ws(s, false);
    const T* raw = ws.act.back().data();
    T ld[kChunk];
    int64_t bad = -1;
    for (int64_t e0 = begin; e0 < end; e0 += kChunk) {
        const int64_t count = std::min(kChunk, end - e0);
        gather_input(x, condition, e0, count, s, ws.act[0].data());
        subnet_forward(w, s, ws, (count + W - 1) / W * W);
        std::memcpy(y + e0 * s.dims, x + e0 * s.dims, sizeof(T) * count * s.dims);
        for (int64_t e = 0; e < count; ++e) ld[e] = T(0);
        for (int64_t t = 0; t < nt; ++t) {
            const int64_t col = s.trans_index[t];
            for (int64_t q = 0; q < count; q += L) {
                const int64_t m = std::min<int64_t>(L, count - q);
                lanes::Block<T> b;
                load_raw(b, raw, t, q, stride);
                T xs[L], ys[L], ls[L];
                for (int l = 0; l < L; ++l) xs[l] = l < m ? x[(e0 + q + l) * s.dims + col] : T(0.5);
                lanes::forward_loaded(b, xs, ys, ls, cfg, inverse);
                for (int64_t l = 0; l < m; ++l) {
                    y[(e0 + q + l) * s.dims + col] = ys[l];
                    ld[q + l] += ls[l];
                }
            }
        }
        for (int64_t e = 0; e < count; ++e) logdet[e0 + e] = ld[e];
        if (bad < 0) bad = first_bad(x, e0, count, s);
    }
    return bad;
}

// Gradients of every weight and bias, packed layer by layer: (weight, bias) of layer 0,
// then of layer 1, ...
std::vector<int64_t> param_offsets(const CouplingShape& s) {
    std::vector<int64_t> off{0};
    for (size_t l = 0; l + 1 < s.sizes.size(); ++l) {
        off.push_back(off.back() + s.sizes[l + 1] * s.sizes[l]);
        off.push_back(off.back() + s.sizes[l + 1]);
    }
    return off;
}

template <typename T>
MADNIS_HD int64_t backward_range(const T* x, const T* condition, const SubnetWeights<T>& w,
                                 const std::vector<const T*>& weight_t, const T* grad_y,
                                 const T* grad_logdet, T* grad_x, T* grad_condition,
                                 T* grad_params, int64_t begin, int64_t end,
                                 const CouplingShape& s, const SplineConfig<T>& cfg,
                                 bool inverse) {
    constexpr int L = lanes::L;
    constexpr int W = Vec<T>::width * kVecs;
    const int64_t stride = 3 * int64_t(cfg.bins) + 1;
    const int64_t nt = int64_t(s.trans_index.size());
    const int64_t nc = int64_t(s.cond_index.size());
    const size_t layers = s.sizes.size() - 1;
    const std::vector<int64_t> off = param_offsets(s);
    Workspace<T> ws(s, true);
    int64_t bad = -1;
    for (int64_t e0 = begin; e0 < end; e0 += kChunk) {
        const int64_t count = std::min(kChunk, end - e0);
        const int64_t width = (count + W - 1) / W * W;
        gather_input(x, condition, e0, count, s, ws.act[0].data());
        subnet_forward(w, s, ws, width);

        // spline backward: gradient of the raw parameters into grad_a, [row][event]
        T* g_out = ws.grad_a.data();
        T* g_in = ws.grad_b.data();
        const T* raw = ws.act.back().data();
        const int64_t lanes_end = (count + L - 1) / L * L;
        if (lanes_end < width)
            for (int64_t j = 0; j < s.sizes.back(); ++j)
                for (int64_t e = lanes_end; e < width; ++e) g_out[j * kChunk + e] = T(0);
        for (int64_t t = 0; t < nt; ++t) {
            const int64_t col = s.trans_index[t];
            for (int64_t q = 0; q < count; q += L) {
                const int64_t m = std::min<int64_t>(L, count - q);
                lanes::Block<T> b;
                load_raw(b, raw, t, q, stride);
                T xs[L], gy[L], gl[L], gx[L];
                for (int l = 0; l < L; ++l) {  // padded lanes get zero upstream gradients
                    const int64_t row = (e0 + q + l) * s.dims + col;
                    xs[l] = l < m ? x[row] : T(0.5);
                    gy[l] = l < m ? grad_y[row] : T(0);
                    gl[l] = l < m ? grad_logdet[e0 + q + l] : T(0);
                }
                lanes::backward_loaded(b, xs, gy, gl, gx, cfg, inverse);
                T* rows = g_out + t * stride * kChunk + q;
                for (int64_t j = 0; j < stride; ++j)
                    for (int l = 0; l < L; ++l) rows[j * kChunk + l] = b.raw[j][l];
                for (int64_t l = 0; l < m; ++l) grad_x[(e0 + q + l) * s.dims + col] = gx[l];
            }
        }

        // subnet backward, last layer first
        for (size_t l = layers; l-- > 0;) {
            const int64_t fin = s.sizes[l], fout = s.sizes[l + 1];
            const T* in = ws.act[l].data();
            T* gw = grad_params + off[2 * l];
            T* gb = grad_params + off[2 * l + 1];
            // weight gradient g_out in^T: a product over events for whole tiles of input
            // features (input transposed), dot products along the events for the rest
            const int64_t tiled = fin - fin % (Vec<T>::width * kVecs);
            if (tiled > 0) {
                T* at = ws.act_t.data();
                for (int64_t i = 0; i < tiled; ++i)
                    for (int64_t e = 0; e < width; ++e) at[e * tiled + i] = in[i * kChunk + e];
                gemm<T, true, false>(fout, tiled, width, g_out, kChunk, at, tiled, gw, fin,
                                     nullptr);
            }
            for (int64_t o = 0; o < fout; ++o) {
                const T* g = g_out + o * kChunk;
                for (int64_t i = tiled; i < fin; ++i)
                    gw[o * fin + i] += dot(g, in + i * kChunk, width);
                gb[o] += dot<T>(g, nullptr, width);
            }
            gemm<T, false, false>(fin, width, fout, weight_t[l], fout, g_out, kChunk, g_in,
                                  kChunk, nullptr);
            if (l > 0)  // ReLU: the gradient passes where the activation is positive
                for (int64_t i = 0; i < fin; ++i)
                    for (int64_t e = 0; e < width; ++e)
                        g_in[i * kChunk + e] = in[i * kChunk + e] > T(0) ? g_in[i * kChunk + e]
                                                                         : T(0);
            std::swap(g_out, g_in);
        }

        // g_out is now the gradient of the subnet input
        for (int64_t e = 0; e < count; ++e) {
            const int64_t row = (e0 + e) * s.dims;
            for (int64_t j = 0; j < nc; ++j) {
                const int64_t col = s.cond_index[j];
                grad_x[row + col] = grad_y[row + col] + g_out[j * kChunk + e];
            }
            if (grad_condition)
                for (int64_t j = 0; j < s.condition_dims; ++j)
                    grad_condition[(e0 + e) * s.condition_dims + j] =
                        g_out[(nc + j) * kChunk + e];
        }
        if (bad < 0) bad = first_bad(x, e0, count, s);
    }
    return bad;
}

// target_clones needs plain (non-template) functions.
#define MADNIS_CHUNKS(T)                                                                     \
    MADNIS_CLONES int64_t forward_chunk(const T* x, const T* c, const SubnetWeights<T>& w,    \
                                        T* y, T* ld, int64_t b, int64_t e,                   \
                                        const CouplingShape& s, const SplineConfig<T>& cfg,  \
                                        bool inv) {                                          \
        return forward_range(x, c, w, y, ld, b, e, s, cfg, inv);                             \
    }                                                                                        \
    MADNIS_CLONES int64_t backward_chunk(                                                    \
        const T* x, const T* c, const SubnetWeights<T>& w, const std::vector<const T*>& wt,  \
        const T* gy, const T* gl, T* gx, T* gc, T* gp, int64_t b, int64_t e,                 \
        const CouplingShape& s, const SplineConfig<T>& cfg, bool inv) {                      \
        return backward_range(x, c, w, wt, gy, gl, gx, gc, gp, b, e, s, cfg, inv);           \
    }
MADNIS_CHUNKS(double)
MADNIS_CHUNKS(float)
#undef MADNIS_CHUNKS

}  // namespace

template <typename T>
int64_t coupling_forward_cpu(const T* x, const T* condition, const SubnetWeights<T>& w, T* y,
                             T* logdet, int64_t n, const CouplingShape& shape,
                             const SplineConfig<T>& cfg, bool inverse, int nthreads) {
    FirstBad bad;
    parallel_for(n, nthreads, kGrain, [&](int64_t begin, int64_t end) {
        const int64_t b =
            forward_chunk(x, condition, w, y, logdet, begin, end, shape, cfg, inverse);
        if (b >= 0) bad.record(b);
    });
    return bad.index.load();
}

template <typename T>
int64_t coupling_backward_cpu(const T* x, const T* condition, const SubnetWeights<T>& w,
                              const T* grad_y, const T* grad_logdet, T* grad_x,
                              T* grad_condition, const std::vector<T*>& grad_weight,
                              const std::vector<T*>& grad_bias, int64_t n,
                              const CouplingShape& shape, const SplineConfig<T>& cfg,
                              bool inverse, int nthreads) {
    const size_t layers = shape.sizes.size() - 1;
    // transposed weights for the input gradients: (sizes[l], sizes[l+1]) row-major
    std::vector<std::vector<T>> transposed(layers);
    std::vector<const T*> weight_t(layers);
    for (size_t l = 0; l < layers; ++l) {
        const int64_t fin = shape.sizes[l], fout = shape.sizes[l + 1];
        transposed[l].resize(fin * fout);
        for (int64_t o = 0; o < fout; ++o)
            for (int64_t i = 0; i < fin; ++i)
                transposed[l][i * fout + o] = w.weight[l][o * fin + i];
        weight_t[l] = transposed[l].data();
    }
    const std::vector<int64_t> off = param_offsets(shape);
    // per-thread parameter gradients, summed in the order of the batch afterwards so
    // that the result does not depend on thread timing
    std::mutex lock;
    std::vector<std::pair<int64_t, std::vector<T>>> partial;
    FirstBad bad;
    parallel_for(n, nthreads, kGrain, [&](int64_t begin, int64_t end) {
        std::vector<T> grads(off.back(), T(0));
        const int64_t b = backward_chunk(x, condition, w, weight_t, grad_y, grad_logdet, grad_x,
                                         grad_condition, grads.data(), begin, end, shape, cfg,
                                         inverse);
        if (b >= 0) bad.record(b);
        std::lock_guard<std::mutex> guard(lock);
        partial.emplace_back(begin, std::move(grads));
    });
    std::sort(partial.begin(), partial.end(),
              [](const auto& a, const auto& b) { return a.first < b.first; });
    for (size_t l = 0; l < layers; ++l) {
        const int64_t nw = off[2 * l + 1] - off[2 * l], nb = off[2 * l + 2] - off[2 * l + 1];
        for (int64_t i = 0; i < nw; ++i) grad_weight[l][i] = T(0);
        for (int64_t i = 0; i < nb; ++i) grad_bias[l][i] = T(0);
        for (const auto& p : partial) {
            for (int64_t i = 0; i < nw; ++i) grad_weight[l][i] += p.second[off[2 * l] + i];
            for (int64_t i = 0; i < nb; ++i) grad_bias[l][i] += p.second[off[2 * l + 1] + i];
        }
    }
    return bad.index.load();
}

#define MADNIS_INSTANTIATE(T)                                                                \
    template int64_t coupling_forward_cpu<T>(const T*, const T*, const SubnetWeights<T>&, T*, \
                                             T*, int64_t, const CouplingShape&,              \
                                             const SplineConfig<T>&, bool, int);             \
    template int64_t coupling_backward_cpu<T>(                                               \
        const T*, const T*, const SubnetWeights<T>&, const T*, const T*, T*, T*,             \
        const std::vector<T*>&, const std::vector<T*>&, int64_t, const CouplingShape&,       \
        const SplineConfig<T>&, bool, int);
MADNIS_INSTANTIATE(float)
MADNIS_INSTANTIATE(double)
#undef MADNIS_INSTANTIATE

}  // namespace madnis
