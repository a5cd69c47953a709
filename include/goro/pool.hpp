// goro/pool.hpp: a cache of reusable objects (Go's sync.Pool), per P, that
// gives its objects back when they stop being used.
//
//   goro::pool<buffer> buffers([] { return std::make_unique<buffer>(); });
//   std::unique_ptr<buffer> b = buffers.get();   // cached, or made by the factory
//   ... use *b ...
//   buffers.put(std::move(b));                  // reset it first: the next get sees it as is
//
// For amortizing allocation of short-lived, interchangeable objects
// (buffers, scratch space). Not for connections or anything else whose
// identity or lifetime matters: the pool may destroy any cached object at
// any time, and get() may return any cached object (or a new one).
//
// Structure: each P has a small private cache (up to 32 objects) that only
// the goroutine running on that P touches, so get() and put() on a goroutine
// take no lock and do no atomic read-modify-write when the cache can serve
// them (goroutines are not preempted, so nobody else runs on the P
// meanwhile). A full cache moves half of its objects to a shared overflow
// list (under a lock), and an empty one refills from it; plain threads use
// the overflow list directly.
//
// Release policy (goro has no garbage collector, so it cannot clear pools at
// GC as Go does): a *rotation* frees the victim generation and makes the
// current overflow list the new victim (get() still takes objects from the
// victim, so a pool in steady use loses nothing); objects in a per-P cache
// at a rotation join the victim when their P next uses the pool, and are
// freed if two rotations have passed. Rotations happen
//   - automatically, when `max_idle` (default 1 s; 0 disables) has passed
//     since the last one; the clock is read on the slow path and every 1024th
//     fast-path operation of a P, so the fast path stays clock-free; and
//   - explicitly with trim() (one rotation; call it twice to release
//     everything but the per-P caches of Ps that have not touched the pool
//     since, at most 32 objects each, which are freed on their next use or by
//     the destructor).
// So objects put during a burst are freed within about two max_idle periods
// once the pool is used less, instead of being kept forever.
//
// Usable from goroutines and plain threads. The destructor frees every
// cached object and must not run concurrently with get() or put().
//
// Errors: an exception from the factory propagates out of get(), and the
// pool is unchanged; nothing else throws.
//
// Memory ordering (Go's): a put(x) happens before the get() that returns x.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <utility>

namespace goro {

namespace detail {
/// The type-erased pool (src/sync/pool.cpp).
class pool_core {
 public:
  pool_core(void (*destroy)(void*), std::int64_t max_idle_ns);
  ~pool_core();
  pool_core(const pool_core&) = delete;
  pool_core& operator=(const pool_core&) = delete;

  void* get() noexcept;  // nullptr when nothing is cached
  void put(void* x) noexcept;
  void trim() noexcept;
  std::uint64_t locked_ops() const noexcept;

  struct impl;

 private:
  impl* impl_;
};
}  // namespace detail

template <class T>
class pool {
 public:
  /// new_fn makes an object when the pool is empty (Go's New); without one,
  /// get() returns nullptr then.
  explicit pool(std::function<std::unique_ptr<T>()> new_fn = {},
                std::chrono::nanoseconds max_idle = std::chrono::seconds(1))
      : new_(std::move(new_fn)),
        core_([](void* p) { delete static_cast<T*>(p); }, max_idle.count()) {}
  pool(const pool&) = delete;
  pool& operator=(const pool&) = delete;

  /// A cached object, or new_fn()'s, or nullptr.
  std::unique_ptr<T> get() {
    if (void* p = core_.get()) return std::unique_ptr<T>(static_cast<T*>(p));
    return new_ ? new_() : nullptr;
  }

  /// Caches x for a later get() (nullptr is ignored).
  void put(std::unique_ptr<T> x) noexcept {
    if (x) core_.put(x.release());
  }

  /// One rotation now (see the release policy above).
  void trim() noexcept { core_.trim(); }

  /// How many get()/put() calls so far took the shared lock (the slow path);
  /// for diagnostics and tests.
  std::uint64_t locked_ops() const noexcept { return core_.locked_ops(); }

 private:
  std::function<std::unique_ptr<T>()> new_;
  detail::pool_core core_;
};

}  // namespace goro
