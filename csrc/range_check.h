// Range checks of spline inputs shared by the CPU loops (rqs_cpu.cpp, coupling_cpu.cpp).
#pragma once

#include <atomic>
#include <cstdint>
#include <cstring>

namespace madnis {

// 0 <= v <= 1 decided on the bit pattern, so finite-math cannot optimise the NaN case
// away: a non-negative float in [0, 1] has bits <= bits(1.0); -0.0 is allowed.
inline bool in_unit(double v) {
    uint64_t b;
    std::memcpy(&b, &v, sizeof b);
    return b <= 0x3FF0000000000000ULL || b == 0x8000000000000000ULL;
}
inline bool in_unit(float v) {
    uint32_t b;
    std::memcpy(&b, &v, sizeof b);
    return b <= 0x3F800000U || b == 0x80000000U;
}

// Records the smallest failing index seen by any thread.
struct FirstBad {
    std::atomic<int64_t> index{-1};
    void record(int64_t i) {
        int64_t cur = index.load();
        while ((cur < 0 || i < cur) && !index.compare_exchange_weak(cur, i)) {
        }
    }
};

}  // namespace madnis
