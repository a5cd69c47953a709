// Per-P timer heaps (Go 1.14+): a 4-ary min-heap of deadlines per P, so timer
// operations of goroutines on different Ps never contend.
//
// Concurrency: a heap is guarded by its own lock; any M may run the expired
// timers of any P (an idle M sleeping until the earliest deadline does).
// when0 mirrors the earliest deadline (0 when empty) so other Ms can look
// without the lock: written under the lock (relaxed is enough; a stale read
// only makes a sleeper wake early or a checker take the lock for nothing).
//
// Stopping a timer (timer_stop) races with the M that pops it to fire it, or
// that moves it to another P's heap. A timer is therefore always in one of:
// in a heap (heap != nullptr, written under that heap's lock), busy (popped,
// its fire() running or it is on its way to another heap), or idle. The
// popping M marks it busy before it clears heap and idle after fire()
// returns or the new heap holds it; timer_stop removes a timer from its heap
// or waits out the busy state, so when it returns the timer's memory may be
// reused.
#pragma once

#include <atomic>
#include <cstdint>
#include <vector>

#include "platform/lock.hpp"

namespace goro::detail {

struct timer {
  std::int64_t when = 0;
  // Runs with no lock held, on a scheduler context, after the timer has been
  // removed from its heap.
  void (*fire)(timer*) noexcept = nullptr;
  void* arg = nullptr;           // for fire
  std::int32_t heap_index = -1;  // -1: not in a heap
  // The heap holding it. Stored under that heap's lock (release), read by
  // timer_stop (acquire) to find which lock to take.
  std::atomic<class timer_heap*> heap{nullptr};
  // 1 while popped and not yet done with (see above). Stored 1 (relaxed)
  // before heap is cleared (release); stored 0 (release) when done, paired
  // with the acquire load in timer_stop.
  std::atomic<std::uint32_t> busy{0};
  // Set by owners whose fire() may free the timer (a context deadline):
  // fire() then stores busy = 0 itself (release) before it lets go, and the
  // M that ran it does not touch t afterwards.
  bool fire_clears_busy = false;
};

class timer_heap {
 public:
  lock_t lock;

  void push(timer* t) GORO_REQUIRES(lock);
  /// Removes and returns the earliest timer if its deadline is <= now.
  timer* pop_expired(std::int64_t now) GORO_REQUIRES(lock);
  /// Removes and returns the earliest timer, or nullptr.
  timer* pop() GORO_REQUIRES(lock);
  bool remove(timer* t) GORO_REQUIRES(lock);
  std::size_t size() const GORO_REQUIRES(lock) { return heap_.size(); }

  std::int64_t earliest() const noexcept { return when0_.load(std::memory_order_relaxed); }

 private:
  void sift_up(std::size_t i) GORO_REQUIRES(lock);
  void sift_down(std::size_t i) GORO_REQUIRES(lock);
  void publish() GORO_REQUIRES(lock) {
    when0_.store(heap_.empty() ? 0 : heap_[0]->when, std::memory_order_relaxed);
  }
  void place(std::size_t i, timer* t) GORO_REQUIRES(lock) {
    heap_[i] = t;
    t->heap_index = static_cast<std::int32_t>(i);
  }

  std::vector<timer*> heap_ GORO_GUARDED_BY(lock);
  std::atomic<std::int64_t> when0_{0};
};

/// Removes t from whatever heap holds it. True if it was removed before it
/// fired; false if it had fired (or was never started), in which case this
/// waits until its fire() has returned. Either way t may be reused after.
bool timer_stop(timer* t) noexcept;

}  // namespace goro::detail
