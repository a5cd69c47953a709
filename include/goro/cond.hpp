// goro/cond.hpp: a condition variable for goro::mutex (Go's sync.Cond).
//
//   goro::mutex mu;
//   goro::cond c(mu);
//   mu.lock(); while (!ready) c.wait(); ... mu.unlock();   // or c.wait(pred)
//   mu.lock(); ready = true; mu.unlock(); c.signal();      // or broadcast()
//
// wait() must be called with the mutex held: it unlocks it, waits, and locks
// it again before returning. signal() wakes one waiter, broadcast() all of
// them; neither needs the mutex held (Go allows both). Usable from goroutines
// and plain threads in any mix.
//
// No lost wake-up (Go's notifyList tickets): wait() takes a ticket while it
// still holds the mutex, so a signal() or broadcast() that happens after the
// waiter's unlock — even before the waiter has gone to sleep — wakes it. A
// signal with nobody waiting is not remembered: a later wait() still waits.
// signal() wakes the waiter with the oldest ticket (FIFO).
//
// As with any condition variable, re-check the condition after wait()
// returns (the wait(pred) overload does): another party may have run
// between the wake-up and the relock.
//
// Errors: wait() without the mutex held unlocks a mutex it does not hold;
// if nobody holds it that ends the process with Go's fatal error "sync:
// unlock of unlocked mutex".
//
// Memory ordering: a signal() or broadcast() happens before the return of
// every wait() it wakes; the relock adds the mutex's own edge (the n-th
// unlock happens before the (n+1)-th lock).
//
// Not copyable or movable: waiters refer to it by address.
#pragma once

#include <atomic>
#include <cstdint>

#include "goro/mutex.hpp"

namespace goro {

class cond {
 public:
  explicit cond(mutex& m) noexcept;
  cond(const cond&) = delete;
  cond& operator=(const cond&) = delete;

  /// Unlocks the mutex, waits for signal() or broadcast(), relocks.
  void wait();
  /// while (!pred()) wait();
  template <class Pred>
  void wait(Pred pred) {
    while (!pred()) wait();
  }

  /// Wakes the longest-waiting waiter, if any.
  void signal() noexcept;
  /// Wakes every waiter.
  void broadcast() noexcept;

  /// The mutex given to the constructor (Go's c.L).
  mutex& locker() const noexcept { return *l_; }

 private:
  mutex* l_;
  // Go's notifyList: tickets handed out (wait_) and the next ticket to be
  // notified (notify_); the waiter queue lives in list_ (see cond.cpp).
  std::atomic<std::uint32_t> wait_{0};
  std::atomic<std::uint32_t> notify_{0};
  alignas(8) unsigned char list_[24];
};

}  // namespace goro
