// goro/semaphore.hpp: a weighted semaphore (golang.org/x/sync/semaphore's
// Weighted).
//
//   goro::semaphore sem(8);                     // 8 units
//   if (auto ec = sem.acquire(ctx, 3)) return ec;   // canceled / deadline_exceeded
//   ... use 3 units ...
//   sem.release(3);
//
// acquire(ctx, n) waits until n units are free or ctx is done. Waiters are
// served strictly in arrival order (FIFO): while a large request waits, a
// smaller one that would fit does not overtake it, so large requests are not
// starved. If ctx is done while waiting, acquire returns ctx.err() and has
// acquired nothing (units granted at the last moment are given back). A
// request larger than the semaphore's size waits for ctx only, as in x/sync.
// try_acquire(n) takes n units only if they are free and nobody waits.
// release(n) returns units and wakes the waiters that now fit, in order;
// releasing more than is held is a panic with x/sync's words:
// "semaphore: released more than held".
//
// Usable from goroutines and plain threads (acquire waits in a select on
// the context's done channel and the waiter's own ready channel).
//
// Memory ordering: a release(n) happens before the acquire that the units
// it released make succeed (through the semaphore's mutex).
#pragma once

#include <cstddef>
#include <cstdint>
#include <list>
#include <mutex>
#include <system_error>
#include <variant>

#include "goro/chan.hpp"
#include "goro/context.hpp"
#include "goro/mutex.hpp"
#include "goro/panic.hpp"
#include "goro/select.hpp"

namespace goro {

class semaphore {
 public:
  explicit semaphore(std::int64_t size) : size_(size) {}
  semaphore(const semaphore&) = delete;
  semaphore& operator=(const semaphore&) = delete;

  /// Waits for n units or until ctx is done (then returns ctx.err() and
  /// holds nothing more).
  [[nodiscard]] std::error_code acquire(const context& ctx, std::int64_t n) {
    std::unique_lock lk(mu_);
    if (std::error_code ec = ctx.err()) return ec;  // Go: select { case <-done: ... default: }
    if (size_ - cur_ >= n && waiters_.empty()) {
      cur_ += n;
      return {};
    }
    if (n > size_) {  // can never be satisfied: wait for ctx only
      lk.unlock();
      recv_chan<std::monostate> done = ctx.done();
      select(on_recv(done));
      return ctx.err();
    }
    waiter w{n, make_chan<std::monostate>(), false, {}};
    w.pos = waiters_.insert(waiters_.end(), &w);
    lk.unlock();

    recv_chan<std::monostate> done = ctx.done();
    const std::size_t which = select(on_recv(w.ready), on_recv(done));
    lk.lock();
    if (which == 0 && !ctx.err()) return {};  // granted and removed by the granter
    // Cancelled (or granted and cancelled at once): acquire nothing.
    if (w.granted) {
      cur_ -= n;  // the units were granted as we gave up: put them back
      notify_waiters_locked();
    } else {
      const bool front = w.pos == waiters_.begin();
      waiters_.erase(w.pos);
      if (front && size_ > cur_) notify_waiters_locked();  // we may have held the others up
    }
    return ctx.err();
  }

  /// acquire with a context that is never done.
  void acquire(std::int64_t n) { (void)acquire(background(), n); }

  /// Takes n units if they are free and nobody is waiting.
  bool try_acquire(std::int64_t n) {
    std::lock_guard lk(mu_);
    if (size_ - cur_ < n || !waiters_.empty()) return false;
    cur_ += n;
    return true;
  }

  /// Returns n units and wakes the waiters that now fit, in arrival order.
  void release(std::int64_t n) {
    std::lock_guard lk(mu_);
    cur_ -= n;
    if (cur_ < 0) {
      cur_ += n;
      throw panic_error("semaphore: released more than held");
    }
    notify_waiters_locked();
  }

  /// How many acquire calls are queued right now; for diagnostics and tests
  /// (stale as soon as it returns).
  std::size_t waiting() {
    std::lock_guard lk(mu_);
    return waiters_.size();
  }

 private:
  // A waiting acquire, on its caller's stack; queued by address.
  struct waiter {
    std::int64_t n;
    chan<std::monostate> ready;        // closed when granted
    bool granted;                      // guarded by mu_
    std::list<waiter*>::iterator pos;  // in waiters_ while not granted
  };

  // Grants units to the waiters at the front, in order, while they fit.
  void notify_waiters_locked() {
    while (!waiters_.empty()) {
      waiter& w = *waiters_.front();
      if (size_ - cur_ < w.n) break;  // FIFO: the front waiter blocks the others
      cur_ += w.n;
      w.granted = true;
      w.ready.close();  // w's owner may return once it has the mutex again
      waiters_.pop_front();
    }
  }

  mutex mu_;
  const std::int64_t size_;
  std::int64_t cur_ = 0;        // guarded by mu_
  std::list<waiter*> waiters_;  // guarded by mu_; FIFO
};

}  // namespace goro
