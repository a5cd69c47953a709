// The runtime's internal lock (Go's runtime.mutex): a futex-based mutex that
// spins briefly before sleeping. It blocks the OS thread, never a goroutine,
// so it is held only for short, non-blocking sections: a goroutine never
// switches away while holding one, except through park_unlock(), which
// releases it on the scheduler's stack after the goroutine's context is saved.
//
// State word: 0 free, 1 locked, 2 locked and a thread may be asleep on it.
//
// Lock order (outer first), checked by review; nothing takes two locks of the
// same rank except where noted:
//   0. sched.gchunk_lock (allocating G records and growing the global run
//      queue and free array to match; taken with no other lock held)
//   1. sema bucket / wait-queue locks of primitives, channel locks (a select
//      holds several: always in increasing address order)
//   2. P timer-heap locks
//   3. sched.lock (global run queue, idle P and M lists)
//   4. stack pool, gfree and allgs locks (leaf)
#pragma once

#include <sched.h>

#include <atomic>
#include <cstdint>

#include "platform/futex.hpp"
#include "platform/thread_safety.hpp"

namespace goro::detail {

inline void cpu_relax() noexcept {
#if defined(__x86_64__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield" ::: "memory");
#endif
}

class GORO_CAPABILITY("mutex") lock_t {
 public:
  void lock() GORO_ACQUIRE() {
    std::uint32_t c = 0;
    // Acquire pairs with the release store in unlock().
    if (word_.compare_exchange_strong(c, 1, std::memory_order_acquire, std::memory_order_relaxed))
      return;
    lock_slow();
  }
  bool try_lock() GORO_TRY_ACQUIRE(true) {
    std::uint32_t c = 0;
    return word_.compare_exchange_strong(c, 1, std::memory_order_acquire,
                                         std::memory_order_relaxed);
  }
  void unlock() GORO_RELEASE() {
    // Release pairs with the acquiring CAS/exchange in lock()/lock_slow().
    if (word_.exchange(0, std::memory_order_release) == 2) futex_wake(&word_, 1);
  }

 private:
  void lock_slow() {
    for (int i = 0; i < 64; ++i) {
      std::uint32_t c = word_.load(std::memory_order_relaxed);
      if (c == 0 &&
          word_.compare_exchange_weak(c, 1, std::memory_order_acquire, std::memory_order_relaxed))
        return;
      cpu_relax();
    }
    // Mark contended; whoever unlocks sees 2 and wakes one sleeper.
    while (word_.exchange(2, std::memory_order_acquire) != 0) futex_wait(&word_, 2);
  }

  std::atomic<std::uint32_t> word_{0};
};

/// A lock for sections of a few dozen instructions on the hottest paths (a
/// channel's state): unlock is a plain release store, not a read-modify-write,
/// because nobody ever sleeps on it. A waiter spins, then yields its thread
/// to the OS, so a holder that was preempted gets the CPU back. Same rules as
/// lock_t: never held across a blocking call, released by park commits.
class GORO_CAPABILITY("mutex") spinlock {
 public:
  void lock() GORO_ACQUIRE() {
    std::uint32_t c = 0;
    // Acquire pairs with the release store in unlock().
    if (word_.compare_exchange_strong(c, 1, std::memory_order_acquire, std::memory_order_relaxed))
      return;
    lock_slow();
  }
  bool try_lock() GORO_TRY_ACQUIRE(true) {
    std::uint32_t c = 0;
    return word_.compare_exchange_strong(c, 1, std::memory_order_acquire,
                                         std::memory_order_relaxed);
  }
  void unlock() GORO_RELEASE() {
    // Release pairs with the acquiring CAS in lock()/lock_slow().
    word_.store(0, std::memory_order_release);
  }

 private:
  void lock_slow();

  std::atomic<std::uint32_t> word_{0};
};

inline void spinlock::lock_slow() {
  // Exponential backoff from a first wait of 16 pauses (a pause takes ~23
  // ns on the AMD EPYC this was measured on; Go's runtime lock spins 30
  // pauses between looks). Every look pulls the lock's line out of the
  // holder's cache, and the holder's next write to it (the unlock, or the
  // state beside it) waits for the line to come back: looking often slows
  // the holder down and hands the lock from core to core at every
  // operation. Looking seldom lets the holder's core run a stretch of
  // operations on a line it keeps: 4 producers and 4 consumers on one
  // channel from two cores took 0.56x the time with this first wait that
  // they took with one pause. A waiter loses little, since a contended lock
  // is mostly taken again right after each release anyway.
  unsigned backoff = 16;
  for (unsigned rounds = 0;; ++rounds) {
    std::uint32_t c = word_.load(std::memory_order_relaxed);
    if (c == 0 &&
        word_.compare_exchange_weak(c, 1, std::memory_order_acquire, std::memory_order_relaxed))
      return;
    if (rounds < 16) {
      for (unsigned i = 0; i < backoff; ++i) cpu_relax();
      if (backoff < 64) backoff <<= 1;
    } else {
      sched_yield();  // the holder may have been preempted: let it run
    }
  }
}

/// Scoped holder for lock_t.
template <class Lock>
class GORO_TSA(scoped_lockable) basic_lock_guard {
 public:
  explicit basic_lock_guard(Lock& l) GORO_ACQUIRE(l) : l_(l) { l_.lock(); }
  ~basic_lock_guard() GORO_RELEASE() { l_.unlock(); }
  basic_lock_guard(const basic_lock_guard&) = delete;
  basic_lock_guard& operator=(const basic_lock_guard&) = delete;

 private:
  Lock& l_;
};
using lock_guard = basic_lock_guard<lock_t>;
using spin_guard = basic_lock_guard<spinlock>;

}  // namespace goro::detail
