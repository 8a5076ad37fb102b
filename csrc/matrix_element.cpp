// Batched external matrix elements: the loop over events through the function pointer.
#include "matrix_element.h"

#include <cstring>
#include <limits>

namespace madnis {

namespace {
// A NaN with a payload no arithmetic produces: if it is still there after the call, the
// library did not write ans.
double sentinel() {
    const uint64_t bits = 0x7ff4dead0000beefULL;
    double d;
    std::memcpy(&d, &bits, sizeof d);
    return d;
}

bool is_sentinel(double d) {
    const double s = sentinel();
    return std::memcmp(&d, &s, sizeof d) == 0;
}
}  // namespace

int64_t me_smatrixhel_batch(SMatrixHel f, const int* pdgs, int npdg, int procid,
                            const double* momenta, const double* alphas,
                            const double* scale2, bool per_event, int nhel, double* out,
                            int64_t n) {
    const int64_t stride = 4 * int64_t(npdg);
    for (int64_t i = 0; i < n; ++i) {
        double ans = sentinel();
        const int64_t j = per_event ? i : 0;
        f(pdgs, &procid, &npdg, momenta + i * stride, alphas + j, scale2 + j, &nhel, &ans);
        if (is_sentinel(ans)) return i;
        out[i] = ans;
    }
    return -1;
}

namespace {
// The loop shared by madnis_amp2_ and madnis_smatrix_amp2_: call(i, row, &namp2) fills
// event i's row (width doubles) of per-diagram |M_i|^2; the count must be the same for
// every event and fit the row.
template <class Call>
int amp2_loop(Call call, double* out, int width, int64_t n) {
    int count = -1;
    for (int64_t i = 0; i < n; ++i) {
        int namp2 = 0;
        double* row = out + i * int64_t(width);
        for (int k = 0; k < width; ++k) row[k] = 0;
        call(i, row, &namp2);
        if (namp2 <= 0) return -1;
        if (namp2 > width) return -3;
        if (count >= 0 && namp2 != count) return -2;
        count = namp2;
    }
    return count < 0 ? 0 : count;
}
}  // namespace

int me_amp2_batch(Amp2 f, const int* pdgs, int npdg, int procid, const double* momenta,
                  const double* alphas, const double* scale2, bool per_event, double* out,
                  int width, int64_t n) {
    const int64_t stride = 4 * int64_t(npdg);
    return amp2_loop([&](int64_t i, double* row, int* namp2) {
        const int64_t j = per_event ? i : 0;
        f(pdgs, &procid, &npdg, momenta + i * stride, alphas + j, scale2 + j, row, namp2);
    }, out, width, n);
}

int me_smatrix_amp2_batch(SMatrixAmp2 f, const int* pdgs, int npdg, int procid,
                          const double* momenta, const double* alphas, const double* scale2,
                          bool per_event, double* ans, double* amp2, int width, int64_t n) {
    const int64_t stride = 4 * int64_t(npdg);
    return amp2_loop([&](int64_t i, double* row, int* namp2) {
        const int64_t j = per_event ? i : 0;
        f(pdgs, &procid, &npdg, momenta + i * stride, alphas + j, scale2 + j, ans + i, row,
          namp2);
    }, amp2, width, n);
}

}  // namespace madnis
