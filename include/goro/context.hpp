// goro/context.hpp: cancellation, deadlines and request-scoped values (Go's
// context package).
//
//   auto [ctx, cancel] = goro::with_timeout(parent, 2s);
//   goro::go([ctx] {
//     for (;;) {
//       job j;
//       bool more = false;
//       if (std::error_code ec = jobs.recv(ctx, j, more)) return;  // canceled or timed out
//       if (!more) return;                                          // jobs closed
//       ...
//     }
//   });
//   ...
//   cancel();   // or let `cancel` go out of scope
//
// A context is a cheap handle (one pointer, reference counted); copies share
// one node of the context tree. The default-constructed context is
// background(). Contexts are immutable: with_* derive children.
//
// Go's semantics:
//  - Cancelling a context cancels all of its descendants, at once and
//    before cancel returns; a child's err() is its parent's reason.
//  - err() is empty until the context is done, then errc::canceled or
//    errc::deadline_exceeded, forever. done() is a receive-only channel that
//    is closed when the context is done (nil for a context that can never
//    be: background(), todo(), without_cancel(); a receive from it blocks
//    forever, a select never chooses it).
//  - cancel is idempotent, never blocks on other goroutines, and is safe from
//    any goroutine or plain thread. A cancelled child is removed from its
//    parent, so long-lived parents do not accumulate dead children.
//  - cause(ctx) is the error passed to a cancel_cause_func, else err().
//  - value(key) looks a key up through the ancestors; keys are typed
//    context_key<T> objects compared by identity (their address), so two
//    libraries cannot collide; values are immutable once stored.
//
// One difference from Go, for C++: the cancel_func of with_cancel,
// with_deadline and with_timeout also cancels when its last copy is
// destroyed, so the `defer cancel()` that go vet insists on is what scope
// exit does anyway, and a forgotten cancel leaks nothing. Keep a copy alive
// for as long as the context should stay un-cancelled.
//
// Errors: with_deadline and with_timeout need a running runtime (goro::run),
// whose timers measure the deadline; outside one they throw
// std::logic_error. Allocation failures throw std::bad_alloc. Cancelling
// never throws. A context's own errors (errc::canceled,
// errc::deadline_exceeded) are values: err(), cause(), and the
// std::error_code results of the context-taking waits.
//
// Memory ordering: a cancel (by a cancel_func, a deadline or a parent)
// happens before every receive from done() that returns because of it, and
// before err() and cause() report it. after_func(ctx, f) and the cancel that
// triggers f both happen before f starts. Everything done before with_value
// happens before the value is read through any context derived from it.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <system_error>
#include <type_traits>
#include <utility>
#include <variant>

#include "goro/chan.hpp"
#include "goro/error.hpp"
#include "goro/select.hpp"

namespace goro {

namespace detail {
struct ctx_node;
void ctx_retain(ctx_node* n) noexcept;
void ctx_release(ctx_node* n) noexcept;
ctx_node* ctx_background() noexcept;
ctx_node* ctx_todo() noexcept;
chan_core* ctx_done_core(ctx_node* n);
std::error_code ctx_err(const ctx_node* n) noexcept;
std::error_code ctx_cause(const ctx_node* n) noexcept;
std::int64_t ctx_deadline(const ctx_node* n) noexcept;  // no_deadline if none
const void* ctx_value(const ctx_node* n, const void* key) noexcept;
ctx_node* ctx_with_cancel(ctx_node* parent);
ctx_node* ctx_with_deadline(ctx_node* parent, std::int64_t deadline_ns);
ctx_node* ctx_with_value(ctx_node* parent, const void* key, std::shared_ptr<const void> value);
ctx_node* ctx_without_cancel(ctx_node* parent);
void ctx_cancel(ctx_node* n, std::error_code cause) noexcept;
void ctx_cancel_ref(ctx_node* n) noexcept;    // one more cancel_func copy
void ctx_cancel_unref(ctx_node* n) noexcept;  // one fewer: the last cancels
struct ctx_after_func_rec;
ctx_after_func_rec* ctx_after_func(ctx_node* n, std::function<void()> f);
bool ctx_after_func_stop(ctx_after_func_rec* r) noexcept;
void ctx_after_func_release(ctx_after_func_rec* r) noexcept;
}  // namespace detail

/// A typed key for context values (Go's unexported key types). Define one
/// per value, with static storage duration: its address is its identity.
///   inline const goro::context_key<std::string> request_id{"request_id"};
template <class T>
class context_key {
 public:
  constexpr explicit context_key(const char* name = "") noexcept : name_(name) {}
  context_key(const context_key&) = delete;
  context_key& operator=(const context_key&) = delete;
  constexpr const char* name() const noexcept { return name_; }

 private:
  const char* name_;
};

class context {
 public:
  /// background().
  context() noexcept : node_(detail::ctx_background()) {}
  context(const context& o) noexcept : node_(o.node_) { detail::ctx_retain(node_); }
  context(context&& o) noexcept : node_(std::exchange(o.node_, detail::ctx_background())) {}
  context& operator=(const context& o) noexcept {
    context(o).swap(*this);
    return *this;
  }
  context& operator=(context&& o) noexcept {
    context(std::move(o)).swap(*this);
    return *this;
  }
  ~context() { detail::ctx_release(node_); }
  void swap(context& o) noexcept { std::swap(node_, o.node_); }

  /// Closed when the context is done; a nil channel if it never can be.
  recv_chan<std::monostate> done() const;
  /// Empty while not done; then errc::canceled or errc::deadline_exceeded.
  std::error_code err() const noexcept { return detail::ctx_err(node_); }
  /// The earliest deadline of this context and its ancestors, if any.
  std::optional<std::chrono::steady_clock::time_point> deadline() const noexcept {
    const std::int64_t d = detail::ctx_deadline(node_);
    if (d == detail::no_deadline) return std::nullopt;
    return std::chrono::steady_clock::time_point(std::chrono::nanoseconds(d));
  }
  /// The value stored under key by this context or its nearest ancestor that
  /// has one; nullptr if none. Valid as long as any context derived from the
  /// one that stored it is alive.
  template <class T>
  const T* value(const context_key<T>& key) const noexcept {
    return static_cast<const T*>(detail::ctx_value(node_, &key));
  }

  /// Identity, as Go compares contexts.
  friend bool operator==(const context& a, const context& b) noexcept { return a.node_ == b.node_; }

  detail::ctx_node* node() const noexcept { return node_; }
  /// Adopts a node reference (internal).
  static context adopt(detail::ctx_node* n) noexcept { return context(n); }

 private:
  explicit context(detail::ctx_node* n) noexcept : node_(n) {}
  detail::ctx_node* node_;
};

/// Go's context.Background(): never cancelled, no deadline, no values.
inline context background() noexcept { return context(); }
/// Go's context.TODO(): like background(), marks a context still to be plumbed.
inline context todo() noexcept { return context::adopt(detail::ctx_todo()); }

/// Cancels its context (errc::canceled). Copies share the context; the last
/// copy to be destroyed cancels too (see the top of this file). A
/// default-constructed cancel_func does nothing.
class cancel_func {
 public:
  cancel_func() noexcept = default;
  cancel_func(const cancel_func& o) noexcept : node_(o.node_) {
    if (node_ != nullptr) detail::ctx_cancel_ref(node_);
  }
  cancel_func(cancel_func&& o) noexcept : node_(std::exchange(o.node_, nullptr)) {}
  cancel_func& operator=(cancel_func o) noexcept {
    std::swap(node_, o.node_);
    return *this;
  }
  ~cancel_func() {
    if (node_ != nullptr) detail::ctx_cancel_unref(node_);
  }
  void operator()() const noexcept {
    if (node_ != nullptr) detail::ctx_cancel(node_, {});
  }

 protected:
  friend std::pair<context, cancel_func> with_cancel(const context&);
  friend std::pair<context, cancel_func> with_deadline(const context&, std::int64_t);
  // Adopts a cancel reference and a node reference.
  explicit cancel_func(detail::ctx_node* n) noexcept : node_(n) {}
  detail::ctx_node* node_ = nullptr;
};

/// Cancels its context with a cause (Go's CancelCauseFunc): err() becomes
/// errc::canceled and cause(ctx) the given error (errc::canceled if empty).
class cancel_cause_func : private cancel_func {
 public:
  cancel_cause_func() noexcept = default;
  void operator()(std::error_code cause) const noexcept {
    if (node_ != nullptr) detail::ctx_cancel(node_, cause);
  }

 private:
  friend std::pair<context, cancel_cause_func> with_cancel_cause(const context&);
  explicit cancel_cause_func(detail::ctx_node* n) noexcept : cancel_func(n) {}
};

/// A child that is done when cancel is called or the parent is done.
[[nodiscard]] inline std::pair<context, cancel_func> with_cancel(const context& parent) {
  detail::ctx_node* n = detail::ctx_with_cancel(parent.node());
  return {context::adopt(n), cancel_func(n)};
}

/// with_cancel whose cancel records a cause (see cause()).
[[nodiscard]] inline std::pair<context, cancel_cause_func> with_cancel_cause(
    const context& parent) {
  detail::ctx_node* n = detail::ctx_with_cancel(parent.node());
  return {context::adopt(n), cancel_cause_func(n)};
}

[[nodiscard]] inline std::pair<context, cancel_func> with_deadline(const context& parent,
                                                                   std::int64_t deadline_ns) {
  detail::ctx_node* n = detail::ctx_with_deadline(parent.node(), deadline_ns);
  return {context::adopt(n), cancel_func(n)};
}

/// A child that is also done (errc::deadline_exceeded) once the monotonic
/// clock reaches d; the parent's earlier deadline, if any, still applies.
/// Needs a running runtime (goro::run), whose timers measure the deadline.
template <class Clock, class Duration>
[[nodiscard]] std::pair<context, cancel_func> with_deadline(
    const context& parent, std::chrono::time_point<Clock, Duration> d) {
  return with_deadline(parent, detail::deadline_at(d));
}

/// with_deadline(parent, now + timeout).
template <class Rep, class Period>
[[nodiscard]] std::pair<context, cancel_func> with_timeout(
    const context& parent, std::chrono::duration<Rep, Period> timeout) {
  return with_deadline(parent, detail::deadline_after(timeout));
}

/// A child carrying key -> T(value) (Go's WithValue).
template <class T, class U>
requires std::is_constructible_v<T, U&&>
[[nodiscard]] context with_value(const context& parent, const context_key<T>& key, U&& value) {
  std::shared_ptr<const void> v = std::make_shared<const T>(std::forward<U>(value));
  return context::adopt(detail::ctx_with_value(parent.node(), &key, std::move(v)));
}

/// A child with the parent's values but none of its cancellation or
/// deadline (Go's WithoutCancel).
[[nodiscard]] inline context without_cancel(const context& parent) {
  return context::adopt(detail::ctx_without_cancel(parent.node()));
}

/// Why ctx was cancelled (Go's context.Cause): the cause given to its
/// cancel_cause_func, else err(); empty while ctx is not done.
inline std::error_code cause(const context& ctx) noexcept { return detail::ctx_cause(ctx.node()); }

/// Stops an after_func registration (Go's stop func).
class after_func_stop {
 public:
  after_func_stop() noexcept = default;
  after_func_stop(const after_func_stop&) = delete;
  after_func_stop& operator=(const after_func_stop&) = delete;
  after_func_stop(after_func_stop&& o) noexcept : rec_(std::exchange(o.rec_, nullptr)) {}
  after_func_stop& operator=(after_func_stop&& o) noexcept {
    std::swap(rec_, o.rec_);
    return *this;
  }
  /// Dropping the handle does not stop the registration.
  ~after_func_stop() {
    if (rec_ != nullptr) detail::ctx_after_func_release(rec_);
  }
  /// Unregisters f: true if that kept f from being started, false if the
  /// context was already done (f has run or is about to) or stop was called.
  bool operator()() const noexcept { return rec_ != nullptr && detail::ctx_after_func_stop(rec_); }

 private:
  template <class F>
  friend after_func_stop after_func(const context&, F&&);
  explicit after_func_stop(detail::ctx_after_func_rec* r) noexcept : rec_(r) {}
  detail::ctx_after_func_rec* rec_ = nullptr;
};

/// Runs f in its own goroutine once ctx is done (at once if it is already),
/// unless stopped first (Go's context.AfterFunc). f runs at most once.
template <class F>
after_func_stop after_func(const context& ctx, F&& f) {
  return after_func_stop(
      detail::ctx_after_func(ctx.node(), std::function<void()>(std::forward<F>(f))));
}

/// A select case that is chosen once ctx is done (a receive from
/// ctx.done()); f takes no arguments. Never chosen for a context that cannot
/// be cancelled.
template <class F = detail::no_callback>
recv_case<std::monostate, std::decay_t<F>> on_done(const context& ctx, F&& f = {}) {
  auto cb = std::forward<F>(f);
  return recv_case<std::monostate, std::decay_t<F>>(detail::ctx_done_core(ctx.node()),
                                                    std::move(cb));
}

}  // namespace goro

namespace goro {
inline recv_chan<std::monostate> context::done() const {
  detail::chan_core* c = detail::ctx_done_core(node_);
  if (c == nullptr) return {};
  detail::chan_retain(c);
  return recv_chan<std::monostate>::adopt(c);
}
}  // namespace goro
