// The runtime's clock: CLOCK_MONOTONIC in nanoseconds, the same clock as
// std::chrono::steady_clock on Linux, so user deadlines and timer heaps agree.
#pragma once

#include <cstdint>
#include <ctime>

namespace goro::detail {

inline std::int64_t nanotime() noexcept {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

}  // namespace goro::detail
