// goro::once and goro::once_retry: Go's sync.Once (doSlow) over goro::mutex.
//
// Invariant: done_ becomes 1 only while m_ is held, after f has finished
// (once: returned or thrown; once_retry: returned). A caller that sees
// done_ == 0 takes m_ and re-checks, so exactly one caller runs f at a time,
// and every caller that took the slow path returns after the f that set
// done_ (it waited for m_). The fast path (once.hpp) is one acquire load.
//
// TSan (this file is not instrumented, race.hpp): the store of done_ here is
// invisible to TSan, so it is preceded by race_release(&done_), which the
// instrumented acquire load in the header's fast path (and race_acquire
// here) pairs with. m_'s own edges are made in its out-of-line slow path and
// by instrumented callers of its inline fast path, so this file adds one
// more (race_release / race_acquire on m_): a throwing f of a once_retry
// happens before the next attempt.
#include "goro/once.hpp"

#include "platform/race.hpp"

namespace goro {
namespace {

// Holds m (a goro::mutex) and makes its happens-before edge for TSan.
class race_lock {
 public:
  explicit race_lock(mutex& m) : m_(m) {
    m_.lock();
    detail::race_acquire(&m_);
  }
  ~race_lock() {
    detail::race_release(&m_);
    m_.unlock();
  }
  race_lock(const race_lock&) = delete;
  race_lock& operator=(const race_lock&) = delete;

 private:
  mutex& m_;
};

}  // namespace

void once::call_slow(detail::once_fn f) {
  race_lock lk(m_);
  if (done_.load(std::memory_order_relaxed) != 0) {  // m_ orders us after the store
    detail::race_acquire(&done_);
    return;
  }
  // Go's `defer o.done.Store(1)`: done even when f throws.
  struct mark_done {
    std::atomic<std::uint32_t>& done;
    ~mark_done() {
      detail::race_release(&done);
      // Release pairs with the acquire load in call() and done().
      done.store(1, std::memory_order_release);
    }
  } mark{done_};
  f.invoke(f.f);
}

void once_retry::call_slow(detail::once_fn f) {
  race_lock lk(m_);
  if (done_.load(std::memory_order_relaxed) != 0) {  // m_ orders us after the store
    detail::race_acquire(&done_);
    return;
  }
  f.invoke(f.f);  // a throw leaves done_ at 0: the next caller tries again
  detail::race_release(&done_);
  // Release pairs with the acquire load in call() and done().
  done_.store(1, std::memory_order_release);
}

}  // namespace goro
