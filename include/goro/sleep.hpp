// goro/sleep.hpp: pausing the current goroutine (Go's time.Sleep).
//
// A sleeping goroutine parks on its P's timer heap; the thread runs other
// goroutines meanwhile, and an idle thread sleeps exactly until the earliest
// timer. Durations are measured on the monotonic clock (steady_clock); a
// sleep_until on another clock is converted to the remaining duration when it
// is called. A zero or negative duration returns at once, as in Go; a
// positive one always parks, however short (sleep_for).
// On a plain thread these block the thread (std::this_thread::sleep_for).
// The context-taking forms end early, with the context's error, once the
// context is done.
//
// Errors: none thrown; the context-taking forms report cancellation in
// their returned std::error_code.
//
// Memory ordering: none beyond program order.
#pragma once

#include <chrono>
#include <cstdint>
#include <system_error>
#include <type_traits>

namespace goro {

class context;  // goro/context.hpp

namespace detail {
/// Sleeps until steady_clock reads `deadline_ns` (nanoseconds since its epoch).
void sleep_until_ns(std::int64_t deadline_ns);
/// Sleeps for ns > 0 nanoseconds.
void sleep_for_ns(std::int64_t ns);
std::int64_t steady_now_ns() noexcept;
/// Sleeps until the deadline or until ctx is done: {} or ctx's error.
std::error_code sleep_until_ctx(std::int64_t deadline_ns, const context& ctx);
inline std::int64_t sleep_deadline_after(std::int64_t ns) noexcept {
  const std::int64_t now = steady_now_ns();
  const std::int64_t max = INT64_MAX;
  return ns > max - now ? max : now + ns;
}
}  // namespace detail

template <class Rep, class Period>
void sleep_for(std::chrono::duration<Rep, Period> d) {
  const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(d).count();
  if (ns <= 0) return;
  detail::sleep_for_ns(static_cast<std::int64_t>(ns));
}

/// Sleeps for d unless ctx is done first: {} after the full sleep, else
/// ctx's error (at once if ctx is already done). Go's
/// `select { case <-time.After(d): case <-ctx.Done(): return ctx.Err() }`,
/// without the timer channel.
template <class Rep, class Period>
std::error_code sleep_for(const context& ctx, std::chrono::duration<Rep, Period> d) {
  const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(d).count();
  return detail::sleep_until_ctx(
      detail::sleep_deadline_after(ns <= 0 ? 0 : static_cast<std::int64_t>(ns)), ctx);
}

/// sleep_for(ctx, t - now) on t's clock.
template <class Clock, class Duration>
std::error_code sleep_until(const context& ctx, std::chrono::time_point<Clock, Duration> t) {
  if constexpr (std::is_same_v<Clock, std::chrono::steady_clock>) {
    return detail::sleep_until_ctx(
        std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count(), ctx);
  } else {
    return sleep_for(ctx, t - Clock::now());
  }
}

template <class Clock, class Duration>
void sleep_until(std::chrono::time_point<Clock, Duration> t) {
  if constexpr (std::is_same_v<Clock, std::chrono::steady_clock>) {
    detail::sleep_until_ns(
        std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count());
  } else {
    sleep_for(t - Clock::now());
  }
}

}  // namespace goro
