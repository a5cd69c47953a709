// goro/mutex.hpp: a mutual-exclusion lock for goroutines (Go's sync.Mutex).
//
// Meets the C++ Lockable requirements, so std::lock_guard, std::unique_lock
// and std::scoped_lock work. Usable from goroutines and plain threads in any
// mix: a goroutine that must wait parks (its thread runs other goroutines), a
// thread blocks on a futex.
//
// Fairness follows Go exactly. In normal mode waiters queue FIFO, but a woken
// waiter competes with newly arriving goroutines, which usually win because
// they are already running; this gives the best throughput. A waiter that has
// failed to get the lock for more than 1 ms switches the mutex to starvation
// mode: ownership is then handed directly from the unlocker to the waiter at
// the front of the queue, and new arrivals queue at the tail without spinning.
// The mutex returns to normal mode when a waiter gets it after waiting less
// than 1 ms or is the last one in the queue.
//
// A mutex is not tied to a goroutine: one goroutine may lock it and another
// unlock it.
//
// Errors: unlock() of an unlocked mutex is a fatal error, as in Go ("fatal
// error: sync: unlock of unlocked mutex", exit code 2): the program's locking is
// broken beyond recovery, and unlock() is noexcept so that lock guards can
// call it.
//
// Memory ordering: the n-th unlock() happens before the (n+1)-th lock() (or
// successful try_lock() or lock(ctx)) returns. A lock(ctx) that gives up
// orders nothing.
#pragma once

#include <atomic>
#include <cstdint>
#include <system_error>

namespace goro {

class context;  // goro/context.hpp
namespace detail {
struct mutex_inspector;  // tests: reads the state word
}  // namespace detail

class mutex {
 public:
  constexpr mutex() noexcept = default;
  mutex(const mutex&) = delete;
  mutex& operator=(const mutex&) = delete;

  void lock() {
    std::int32_t unlocked = 0;
    // Pairs with the release in unlock(): acquiring makes the previous
    // owner's writes visible.
    if (state_.compare_exchange_strong(unlocked, locked_bit, std::memory_order_acquire,
                                       std::memory_order_relaxed)) {
      return;
    }
    lock_slow();
  }

  /// Locks, unless ctx is done first: {} once locked, else ctx's error with
  /// the mutex as if this call had never waited (a lock that is free is
  /// taken even if ctx is done). Go has no such call; it is the
  /// `select { case <-lockCh: case <-ctx.Done(): }` idiom without a channel.
  [[nodiscard]] std::error_code lock(const context& ctx) {
    std::int32_t unlocked = 0;
    if (state_.compare_exchange_strong(unlocked, locked_bit, std::memory_order_acquire,
                                       std::memory_order_relaxed)) {
      return {};
    }
    return lock_slow(&ctx);
  }

  /// Takes the lock if it is free right now. Never waits. Like Go's TryLock it
  /// fails while the mutex is in starvation mode (the lock belongs to the
  /// waiters then).
  bool try_lock() noexcept;

  void unlock() noexcept {
    // Release: pairs with the acquiring CAS in lock()/lock_slow().
    const std::int32_t now = state_.fetch_sub(locked_bit, std::memory_order_release) - locked_bit;
    if (now != 0) unlock_slow(now);
  }

 private:
  friend struct detail::mutex_inspector;
  // state_ bits, as in Go's sync.Mutex:
  //   bit 0 locked, bit 1 woken (a waiter is awake and competing, so unlock
  //   need not wake another), bit 2 starving, bits 3.. number of waiters.
  static constexpr std::int32_t locked_bit = 1;
  static constexpr std::int32_t woken_bit = 2;
  static constexpr std::int32_t starving_bit = 4;
  static constexpr int waiter_shift = 3;

  void lock_slow() { (void)lock_slow(nullptr); }
  std::error_code lock_slow(const context* ctx);
  void unlock_slow(std::int32_t now) noexcept;
  void take_handoff(std::int32_t old, bool leave_starvation) noexcept;
  static void stand_in_woken(void* self, bool handed) noexcept;

  std::atomic<std::int32_t> state_{0};
  std::atomic<std::uint32_t> sema_{0};
};

}  // namespace goro
