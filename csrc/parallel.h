// Static partition of a batch over std::threads. The work per event is uniform, so a
// fixed split is as good as a scheduler; batches below the grain stay on the caller's
// thread because spawning threads costs tens of microseconds.
#pragma once

#include <algorithm>
#include <cstdint>
#include <exception>
#include <thread>
#include <vector>

namespace madnis {

template <typename F>
void parallel_for(int64_t n, int nthreads, int64_t grain, F&& body) {
    const int64_t max_chunks = grain > 0 ? std::max<int64_t>(1, n / grain) : 1;
    const int64_t chunks = std::max<int64_t>(1, std::min<int64_t>(nthreads, max_chunks));
    if (chunks == 1) {
        body(int64_t(0), n);
        return;
    }
    std::vector<std::thread> pool;
    std::vector<std::exception_ptr> errors(chunks);
    pool.reserve(chunks - 1);
    const int64_t step = (n + chunks - 1) / chunks;
    auto run = [&](int64_t c) {
        try {
            body(c * step, std::min(n, (c + 1) * step));
        } catch (...) {
            errors[c] = std::current_exception();
        }
    };
    for (int64_t c = 1; c < chunks; ++c) pool.emplace_back(run, c);
    run(0);
    for (auto& t : pool) t.join();
    for (auto& e : errors)
        if (e) std::rethrow_exception(e);
}

}  // namespace madnis
