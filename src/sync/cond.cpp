// goro::cond: Go's sync.Cond over the notifyList of runtime/sema.go.
//
// Tickets: wait() takes ticket t = wait_++ while the caller still holds the
// user's mutex, then unlocks it and calls list_wait(t). notify_ is the next
// ticket to be notified; ticket t has been notified iff t < notify_ (in
// wrap-around arithmetic). Both counters change only by these rules:
//   - wait_ is incremented by wait() (any time, no list lock);
//   - notify_ is written only under the list lock: signal() advances it by
//     one (if notify_ != wait_), broadcast() sets it to wait_.
// A waiter queues only under the list lock and only if its ticket is not yet
// notified; a notifier marks tickets notified and removes the matching
// waiters under the same lock. So a waiter between its unlock and its sleep
// either sees its ticket notified (and returns at once) or is on the list
// when the notifier looks: no wake-up is lost. A signal() that finds the
// waiter with ticket notify_ not queued yet still consumes that ticket; the
// waiter will see it when it gets the lock.
//
// Fast paths: signal() and broadcast() return without the lock when
// wait_ == notify_ (nobody holds an unnotified ticket).
//
// TSan (this file is not instrumented, race.hpp): a notifier releases
// &notify_ before waking, a woken waiter acquires it; the user's mutex, which
// this file unlocks and locks without its inline fast path's instrumented
// atomics, gets race_release / race_acquire on its address (its state word).
#include "goro/cond.hpp"

#include <new>

#include "platform/lock.hpp"
#include "platform/race.hpp"
#include "runtime/park.hpp"

namespace goro {
namespace {

struct cond_waiter {
  detail::parker park;
  std::uint32_t ticket = 0;
  cond_waiter* next = nullptr;
};

struct notify_list {
  detail::lock_t lock;
  cond_waiter* head GORO_GUARDED_BY(lock) = nullptr;
  cond_waiter* tail GORO_GUARDED_BY(lock) = nullptr;
};

// True if ticket a comes before b, with wrap-around (Go's less()).
bool less(std::uint32_t a, std::uint32_t b) noexcept {
  return static_cast<std::int32_t>(a - b) < 0;
}

}  // namespace

static_assert(sizeof(notify_list) <= 24 && alignof(notify_list) <= 8,
              "cond::list_ too small for notify_list");

#define GORO_COND_LIST reinterpret_cast<notify_list*>(list_)

cond::cond(mutex& m) noexcept : l_(&m) { new (list_) notify_list(); }

void cond::wait() {
  // Take a ticket while the mutex is held. seq_cst pairs with the notifiers'
  // lock-free fast-path loads: a notifier that runs after our unlock (and
  // locked the mutex after us, or was otherwise ordered after it) sees the
  // ticket. A notifier that misses it started before the ticket existed and
  // need not wake us.
  const std::uint32_t t = wait_.fetch_add(1, std::memory_order_seq_cst);
  detail::race_release(l_);
  l_->unlock();
  notify_list* nl = GORO_COND_LIST;
  nl->lock.lock();
  // Acquire is the list lock's; notify_ is written only under it.
  if (less(t, notify_.load(std::memory_order_relaxed))) {
    nl->lock.unlock();
  } else {
    cond_waiter w;
    w.ticket = t;
    if (nl->tail != nullptr)
      nl->tail->next = &w;
    else
      nl->head = &w;
    nl->tail = &w;
    w.park.park_unlock(nl->lock, detail::wait_reason::cond);
  }
  detail::race_acquire(&notify_);
  l_->lock();
  detail::race_acquire(l_);
}

void cond::signal() noexcept {
  // Fast path: no unnotified ticket. seq_cst pairs with wait()'s fetch_add.
  if (wait_.load(std::memory_order_seq_cst) == notify_.load(std::memory_order_seq_cst)) return;
  notify_list* nl = GORO_COND_LIST;
  cond_waiter* found = nullptr;
  {
    detail::lock_guard lk(nl->lock);
    const std::uint32_t t = notify_.load(std::memory_order_relaxed);
    if (t == wait_.load(std::memory_order_seq_cst)) return;
    // Ticket t is notified from now on, whether or not its waiter has queued.
    notify_.store(t + 1, std::memory_order_seq_cst);
    for (cond_waiter *p = nullptr, *w = nl->head; w != nullptr; p = w, w = w->next) {
      if (w->ticket != t) continue;
      cond_waiter* next = w->next;
      if (p != nullptr)
        p->next = next;
      else
        nl->head = next;
      if (nl->tail == w) nl->tail = p;
      found = w;
      break;
    }
  }
  if (found == nullptr) return;  // not queued yet: it will see its ticket notified
  detail::race_release(&notify_);
  found->park.wake();  // found may be gone after this
}

void cond::broadcast() noexcept {
  // Fast path: no unnotified ticket. seq_cst pairs with wait()'s fetch_add.
  if (wait_.load(std::memory_order_seq_cst) == notify_.load(std::memory_order_seq_cst)) return;
  notify_list* nl = GORO_COND_LIST;
  cond_waiter* all = nullptr;
  {
    detail::lock_guard lk(nl->lock);
    all = nl->head;
    nl->head = nl->tail = nullptr;
    notify_.store(wait_.load(std::memory_order_seq_cst), std::memory_order_seq_cst);
  }
  detail::race_release(&notify_);
  while (all != nullptr) {
    cond_waiter* next = all->next;  // read before wake(): all may be gone after it
    all->park.wake();
    all = next;
  }
}

#undef GORO_COND_LIST

}  // namespace goro
