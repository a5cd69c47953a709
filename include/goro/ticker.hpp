// goro/ticker.hpp: periodic ticks on a channel (Go's time.Ticker).
//
//   goro::ticker tick(1s);
//   for (;;) {
//     goro::select(goro::on_recv(tick.c(), [](auto) { flush(); }),
//                  goro::on_done(ctx, [&] { ... }));
//   }
//
// Ticks come every period on the monotonic clock, phase-locked to the start
// (a late tick does not shift the ones after it). A slow receiver loses
// ticks: the channel holds at most one undelivered tick, and ticks that find
// it full are dropped, as in Go. Once stop() or reset() returns, no tick
// from before can be received (Go 1.23). A ticker that nothing refers to any
// more (no handle, no copy of its channel) stops by itself.
//
// Errors (goro::panic_error, Go's words): "non-positive interval for
// NewTicker", "non-positive interval for Ticker.Reset".
//
// Memory ordering: none beyond the channel's.
#pragma once

#include <chrono>
#include <utility>

#include "goro/timer.hpp"

namespace goro {

class ticker : private detail::timer_handle {
 public:
  ticker() noexcept = default;
  template <class Rep, class Period>
  explicit ticker(std::chrono::duration<Rep, Period> period)
      : timer_handle(
            detail::timer_new_chan(detail::deadline_after(period), checked_period(period))) {}

  /// The channel ticks arrive on (Go's t.C).
  const recv_chan<time_point>& c() const noexcept { return c_; }

  /// Stops the ticks. The channel is not closed (as in Go): a receiver
  /// waiting on it keeps waiting.
  void stop() {
    if (obj_ != nullptr) (void)detail::timer_obj_stop(obj_);
  }

  /// Stops and restarts with a new period; the next tick comes one period
  /// from now.
  template <class Rep, class Period>
  void reset(std::chrono::duration<Rep, Period> period) {
    const std::int64_t p = detail::to_ns(period);
    if (p <= 0) throw panic_error("non-positive interval for Ticker.Reset");
    if (obj_ == nullptr) throw panic_error("time: Reset called on uninitialized Ticker");
    (void)detail::timer_obj_reset(obj_, detail::deadline_after(period), p);
  }

 private:
  template <class Rep, class Period>
  static std::int64_t checked_period(std::chrono::duration<Rep, Period> period) {
    const std::int64_t p = detail::to_ns(period);
    if (p <= 0) throw panic_error("non-positive interval for NewTicker");
    return p;
  }
};

}  // namespace goro
