// goro/timer.hpp: one-shot timers (Go's time.Timer, time.After and
// time.AfterFunc), with Go 1.23's semantics.
//
//   goro::timer t(500ms);
//   goro::select(goro::on_recv(t.c(), [](auto) { ... }),     // fired
//                goro::on_recv(jobs, [](auto j) { ... }));
//   if (t.stop()) { /* it had not fired: no value will ever arrive */ }
//
//   goro::select(goro::on_recv(results, ...),
//                goro::on_recv(goro::after(1s), [](auto) { /* timed out */ }));
//
// A timer measures on the monotonic clock (steady_clock) and delivers the
// time at which it fired. goro::timer is a handle: copies share one timer.
//
// Go 1.23 semantics, exactly:
//  - Once stop() or reset() has returned, no value prepared before the call
//    can be received from c(): a value that fired but was not yet received is
//    discarded.
//  - stop() returns true if the call kept a value from being delivered (the
//    timer was pending, or had fired into c() with nobody receiving it yet);
//    false if it had already been received, stopped, or (after_func) f has
//    been started. reset() returns the same about the state it replaced.
//  - A timer that nothing refers to any more (no timer handle, no copy of
//    its channel) is stopped and freed at once, even if it has not fired: a
//    fresh after() in every iteration of a select loop costs nothing once
//    the iteration is over. (Go 1.23 leaves this to its garbage collector.)
//  - after_func(d, f) runs f in its own goroutine when the timer fires; its
//    handle has no channel (c() is nil). It keeps running when its handle is
//    dropped, as in Go: stop() it to cancel f. reset() schedules f again.
//
// Timers need a running runtime (goro::run): outside one, starting a timer
// throws std::logic_error. Each P keeps a 4-ary heap of its timers, so a
// million pending timers stay cheap. Plain threads may use timers too.
//
// Memory ordering: the channel's (the fire's send happens before the receive
// that gets its value); for after_func, the call to after_func (or the
// reset) happens before f starts.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <utility>

#include "goro/chan.hpp"

namespace goro {

namespace detail {
struct timer_obj;
// Both return a started timer holding one handle reference for the caller;
// timer_new_chan's channel also holds one handle reference for the caller to
// adopt (recv_chan::adopt).
timer_obj* timer_new_chan(std::int64_t when_ns, std::int64_t period_ns);
timer_obj* timer_new_func(std::int64_t when_ns, std::function<void()> f);
chan_core* timer_chan_core(const timer_obj* t) noexcept;  // nullptr for func timers
void timer_obj_retain(timer_obj* t) noexcept;
void timer_obj_release(timer_obj* t) noexcept;
bool timer_obj_stop(timer_obj* t) noexcept;
bool timer_obj_reset(timer_obj* t, std::int64_t when_ns, std::int64_t period_ns);
/// Timer objects alive now (for leak tests).
std::int64_t timer_obj_count() noexcept;

template <class Rep, class Period>
std::int64_t to_ns(std::chrono::duration<Rep, Period> d) noexcept {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(d).count();
}
}  // namespace detail

/// The value a timer or ticker delivers: when it fired.
using time_point = std::chrono::steady_clock::time_point;

namespace detail {
/// What goro::timer and goro::ticker hold: a counted reference to the timer
/// object and, for a channel timer, a handle to its channel.
class timer_handle {
 public:
  timer_handle() noexcept = default;
  /// Adopts the object's first handle reference and, for a channel timer,
  /// the channel's first handle reference (timer_new_chan).
  explicit timer_handle(timer_obj* adopted) noexcept : obj_(adopted) {
    if (chan_core* c = timer_chan_core(obj_)) c_ = recv_chan<time_point>::adopt(c);
  }
  timer_handle(const timer_handle& o) noexcept : obj_(o.obj_), c_(o.c_) {
    if (obj_ != nullptr) timer_obj_retain(obj_);
  }
  timer_handle(timer_handle&& o) noexcept
      : obj_(std::exchange(o.obj_, nullptr)), c_(std::move(o.c_)) {}
  timer_handle& operator=(timer_handle o) noexcept {
    std::swap(obj_, o.obj_);
    c_.swap(o.c_);
    return *this;
  }
  ~timer_handle() {
    if (obj_ != nullptr) timer_obj_release(obj_);
  }

 protected:
  timer_obj* obj_ = nullptr;
  recv_chan<time_point> c_;
};
}  // namespace detail

class timer : private detail::timer_handle {
 public:
  /// An empty handle: no timer (stop() and reset() throw).
  timer() noexcept = default;
  /// Starts a timer that delivers one value to c() after d (Go's NewTimer).
  template <class Rep, class Period>
  explicit timer(std::chrono::duration<Rep, Period> d)
      : timer_handle(detail::timer_new_chan(detail::deadline_after(d), 0)) {}

  /// The channel the timer delivers to (Go's t.C); nil for after_func.
  const recv_chan<time_point>& c() const noexcept { return c_; }

  /// Stops the timer (see the top of this file for the result).
  bool stop() { return detail::timer_obj_stop(checked()); }

  /// Stops the timer and restarts it to fire after d.
  template <class Rep, class Period>
  bool reset(std::chrono::duration<Rep, Period> d) {
    return detail::timer_obj_reset(checked(), detail::deadline_after(d), 0);
  }

  explicit operator bool() const noexcept { return obj_ != nullptr; }

 private:
  template <class Rep, class Period, class F>
  friend timer after_func(std::chrono::duration<Rep, Period>, F&&);

  explicit timer(detail::timer_obj* adopted) noexcept : timer_handle(adopted) {}
  detail::timer_obj* checked() const {
    if (obj_ == nullptr) throw panic_error("time: Stop or Reset called on uninitialized Timer");
    return obj_;
  }
};

/// A channel that receives the time once d has passed (Go's time.After).
/// Dropping every copy of it stops the timer.
template <class Rep, class Period>
recv_chan<time_point> after(std::chrono::duration<Rep, Period> d) {
  detail::timer_obj* t = detail::timer_new_chan(detail::deadline_after(d), 0);
  recv_chan<time_point> ch = recv_chan<time_point>::adopt(detail::timer_chan_core(t));
  detail::timer_obj_release(t);  // the channel keeps the timer
  return ch;
}

/// Runs f in its own goroutine after d (Go's time.AfterFunc). The returned
/// handle's stop() keeps f from running if it has not started.
template <class Rep, class Period, class F>
timer after_func(std::chrono::duration<Rep, Period> d, F&& f) {
  return timer(
      detail::timer_new_func(detail::deadline_after(d), std::function<void()>(std::forward<F>(f))));
}

}  // namespace goro
