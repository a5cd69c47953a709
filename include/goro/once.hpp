// goro/once.hpp: run an action exactly once (Go's sync.Once), and a variant
// that retries until the action succeeds.
//
// goro::once: call(f) runs f on the first call only. Exactly Go's semantics:
//   - f counts as run even if it throws: the exception propagates to the
//     caller whose f threw, and every later call returns without running f
//     (Go: "if f panics, Do considers it to have returned");
//   - every call returns only after f has finished: concurrent callers wait
//     (goroutines park, threads sleep) for the one running f;
//   - after completion call() is one acquire load (no lock, no allocation).
// Calling call() on the same once from inside f deadlocks, as in Go.
//
// goro::once_retry: the same, except that f counts as done only when it
// returns normally. If f throws, the exception propagates to that caller and
// the next call (or a caller already waiting) runs f again. This is what the
// seeds' re-entrant Once was for: a lazily opened resource whose first
// opening may fail transiently. (Named for what it adds to once: the retry.)
//
// Memory ordering (Go's): the completion of the f that made the object done
// happens before any call() returns. For once, "done" is the first f's return
// or throw; for once_retry, the first successful return. Each f that throws
// in a once_retry happens before the next f starts.
//
// Usable from goroutines and plain threads alike. Not copyable or movable.
#pragma once

#include <atomic>
#include <cstdint>
#include <type_traits>
#include <utility>

#include "goro/mutex.hpp"

namespace goro {

namespace detail {
/// A type-erased reference to a callable, valid for one call.
struct once_fn {
  void (*invoke)(void* f);
  void* f;
};
template <class F>
once_fn make_once_fn(F& f) noexcept {
  return once_fn{[](void* p) { (*static_cast<F*>(p))(); }, static_cast<void*>(&f)};
}
}  // namespace detail

class once {
 public:
  constexpr once() noexcept = default;
  once(const once&) = delete;
  once& operator=(const once&) = delete;

  /// Runs f() if no call has run it yet; otherwise waits until it has
  /// finished and returns.
  template <class F>
  void call(F&& f) {
    // Acquire pairs with the release store of done_ in call_slow(): f's
    // effects are visible once we see done.
    if (done_.load(std::memory_order_acquire) != 0) return;
    call_slow(detail::make_once_fn(f));
  }

  /// True once f has run (or thrown).
  bool done() const noexcept { return done_.load(std::memory_order_acquire) != 0; }

 private:
  void call_slow(detail::once_fn f);

  std::atomic<std::uint32_t> done_{0};
  mutex m_;
};

class once_retry {
 public:
  constexpr once_retry() noexcept = default;
  once_retry(const once_retry&) = delete;
  once_retry& operator=(const once_retry&) = delete;

  /// Runs f() unless an earlier f returned normally; waits for a concurrent
  /// f to finish first. An exception from f propagates to this caller only
  /// and leaves the object not done.
  template <class F>
  void call(F&& f) {
    // Acquire pairs with the release store of done_ in call_slow().
    if (done_.load(std::memory_order_acquire) != 0) return;
    call_slow(detail::make_once_fn(f));
  }

  /// True once an f has returned normally.
  bool done() const noexcept { return done_.load(std::memory_order_acquire) != 0; }

 private:
  void call_slow(detail::once_fn f);

  std::atomic<std::uint32_t> done_{0};
  mutex m_;
};

}  // namespace goro
