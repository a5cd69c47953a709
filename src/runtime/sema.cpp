// Address-keyed semaphores; see sema.hpp for the protocol.
//
// Each bucket holds, under its lock, a list of "heads", one per address with
// waiters; a head owns the FIFO of waiters for its address (head -> next ->
// ... -> tail). Waiter records live on the waiters' own stacks: nothing is
// allocated.
#include "runtime/sema.hpp"

#include <cstddef>
#include <new>

#include "goro/goroutine.hpp"
#include "platform/race.hpp"
#include "runtime/fault.hpp"

namespace goro::detail {
namespace {

struct sema_waiter {
  parker park;
  std::atomic<std::uint32_t>* addr = nullptr;
  sema_waiter* next = nullptr;       // same address, toward the tail
  sema_waiter* prev = nullptr;       // same address, toward the head
  sema_waiter* next_addr = nullptr;  // heads only: the next address's head
  sema_waiter* tail = nullptr;       // heads only
  bool ticket = false;               // set by a handoff release before wake()
  bool queued = false;               // under the bucket lock
  bool cancelled = false;            // set by sem_cancel before wake()
  // A stand-in for a cancelled waiter (heap-allocated; see sema.hpp).
  void (*stand_in)(void* arg, bool handed) noexcept = nullptr;
  void* stand_in_arg = nullptr;
};

struct alignas(64) bucket {
  lock_t lock;
  // Waiters in this bucket. Incremented under the lock before re-checking
  // *addr; read without the lock by sem_release (see the Dekker note).
  std::atomic<std::uint32_t> nwait{0};
  sema_waiter* heads GORO_GUARDED_BY(lock) = nullptr;
};

constexpr std::size_t bucket_count = 251;
bucket table[bucket_count];

bucket& bucket_for(const void* addr) {
  return table[(reinterpret_cast<std::uintptr_t>(addr) >> 3) % bucket_count];
}

bool try_take(std::atomic<std::uint32_t>* addr) noexcept {
  std::uint32_t v = addr->load(std::memory_order_relaxed);
  while (v > 0) {
    // Acquire pairs with the release in sem_release's fetch_add.
    if (addr->compare_exchange_weak(v, v - 1, std::memory_order_acquire, std::memory_order_relaxed))
      return true;
  }
  return false;
}

void enqueue(bucket& b, sema_waiter* w, bool lifo) GORO_REQUIRES(b.lock) {
  w->queued = true;
  sema_waiter** link = &b.heads;
  while (*link != nullptr && (*link)->addr != w->addr) link = &(*link)->next_addr;
  sema_waiter* head = *link;
  if (head == nullptr) {
    w->next_addr = b.heads;
    w->tail = w;
    b.heads = w;
    return;
  }
  if (lifo) {
    // w replaces head as the head of this address.
    w->next = head;
    head->prev = w;
    w->tail = head->tail;
    w->next_addr = head->next_addr;
    *link = w;
    return;
  }
  head->tail->next = w;
  w->prev = head->tail;
  head->tail = w;
}

sema_waiter* dequeue(bucket& b, const std::atomic<std::uint32_t>* addr) GORO_REQUIRES(b.lock) {
  sema_waiter** link = &b.heads;
  while (*link != nullptr && (*link)->addr != addr) link = &(*link)->next_addr;
  sema_waiter* head = *link;
  if (head == nullptr) return nullptr;
  if (sema_waiter* s = head->next) {
    s->prev = nullptr;
    s->tail = head->tail;
    s->next_addr = head->next_addr;
    *link = s;
  } else {
    *link = head->next_addr;
  }
  head->next = head->next_addr = head->tail = nullptr;
  head->queued = false;
  return head;
}

// Takes w (queued) out of its address's queue, wherever it is.
void unlink_waiter(bucket& b, sema_waiter* w) GORO_REQUIRES(b.lock) {
  if (w->prev == nullptr) {
    // w heads its address: the same as dequeueing the head.
    sema_waiter* head = dequeue(b, w->addr);
    if (head != w) fatal_error("runtime: semaphore queue corrupted");
    return;
  }
  sema_waiter** link = &b.heads;
  while (*link != nullptr && (*link)->addr != w->addr) link = &(*link)->next_addr;
  sema_waiter* head = *link;
  w->prev->next = w->next;
  if (w->next != nullptr) {
    w->next->prev = w->prev;
  } else {
    head->tail = w->prev;
  }
  w->next = w->prev = nullptr;
  w->queued = false;
}

sema_waiter* new_stand_in(const sem_cancel_token& tok) noexcept {
  race_ignore no_race_checks;  // runtime allocation, freed by another goroutine (race.hpp)
  auto* s = new (std::nothrow) sema_waiter;
  if (s == nullptr) fatal_error("runtime: out of memory for a semaphore stand-in");
  s->addr = tok.addr;
  s->stand_in = tok.stand_in;
  s->stand_in_arg = tok.stand_in_arg;
  return s;
}

// Stand-ins run as a trampoline: a stand-in's action may unlock, which may
// dequeue the next stand-in, and so on through every pending stand-in; run
// recursively that would be one stack level per stand-in. Nested ones are
// put on this thread's list and run by the outermost level. A cascade never
// switches goroutines (sem_release skips its handoff yield inside one), so
// it stays on one thread from start to end.
thread_local bool in_stand_in = false;
thread_local sema_waiter* stand_ins_pending = nullptr;  // linked by next

// A releaser dequeued stand-in s (handed: it handed s a unit directly). Takes
// a unit for it, else puts it back in the queue, as a woken waiter that lost
// the unit to a faster taker would go back to sleep; then runs it.
void run_stand_in(bucket& b, sema_waiter* s, bool handed) noexcept {
  std::atomic<std::uint32_t>* addr = s->addr;
  if (!handed && !try_take(addr)) {
    b.lock.lock();
    // seq_cst: Dekker with sem_release, as in sem_acquire.
    b.nwait.fetch_add(1, std::memory_order_seq_cst);
    if (!try_take(addr)) {
      enqueue(b, s, true);
      b.lock.unlock();
      return;
    }
    b.nwait.fetch_sub(1, std::memory_order_relaxed);
    b.lock.unlock();
  }
  s->ticket = handed;
  s->next = stand_ins_pending;
  stand_ins_pending = s;
  if (in_stand_in) return;  // the outermost level runs it
  in_stand_in = true;
  while (sema_waiter* t = stand_ins_pending) {
    stand_ins_pending = t->next;
    void (*fn)(void*, bool) noexcept = t->stand_in;
    void* arg = t->stand_in_arg;
    const bool was_handed = t->ticket;
    {
      race_ignore no_race_checks;  // allocated by the cancelling goroutine (race.hpp)
      delete t;
    }
    fn(arg, was_handed);
  }
  in_stand_in = false;
}

// The waiting loop of sem_acquire (tok == nullptr) and of
// sem_acquire_cancellable. True once a unit is taken; false if tok was
// cancelled first.
bool acquire_slow(std::atomic<std::uint32_t>* addr, bool lifo, wait_reason reason,
                  sem_cancel_token* tok) {
  bucket& b = bucket_for(addr);
  for (;;) {
    sema_waiter w;
    w.addr = addr;
    b.lock.lock();
    const bool cancelled = tok != nullptr && tok->requested;
    if (cancelled && tok->stand_in == nullptr) {
      b.lock.unlock();
      return false;
    }
    // seq_cst: Dekker with sem_release (its fetch_add on *addr, then nwait).
    b.nwait.fetch_add(1, std::memory_order_seq_cst);
    if (try_take(addr)) {  // a free unit is taken even when cancelled
      b.nwait.fetch_sub(1, std::memory_order_relaxed);
      b.lock.unlock();
      return true;
    }
    if (cancelled) {
      enqueue(b, new_stand_in(*tok), lifo);  // a stand-in in our place (sema.hpp)
      b.lock.unlock();
      return false;
    }
    enqueue(b, &w, lifo);
    if (tok != nullptr) tok->waiter = &w;
    w.park.park_unlock(b.lock, reason);
    // Dequeued, and nwait decremented, by exactly one of a releaser and
    // sem_cancel, which then woke us.
    if (tok != nullptr) {
      // sem_cancel cleared tok->waiter, or it is stale: clear it before w goes.
      {
        lock_guard lk(b.lock);
        tok->waiter = nullptr;
      }
      if (w.cancelled) return false;
    }
    if (w.ticket || try_take(addr)) return true;
    // A release woke us but another taker was faster (Go's barging): wait
    // again (a cancellable wait checks tok under the lock first).
  }
}

}  // namespace

void sem_acquire(std::atomic<std::uint32_t>* addr, bool lifo, wait_reason reason) {
  if (try_take(addr)) return;
  (void)acquire_slow(addr, lifo, reason, nullptr);
}

bool sem_acquire_cancellable(std::atomic<std::uint32_t>* addr, bool lifo, wait_reason reason,
                             sem_cancel_token& tok) {
  if (try_take(addr)) return true;
  return acquire_slow(addr, lifo, reason, &tok);
}

void sem_cancel(sem_cancel_token& tok) noexcept {
  bucket& b = bucket_for(tok.addr);
  sema_waiter* woken = nullptr;
  {
    lock_guard lk(b.lock);
    tok.requested = true;
    auto* w = static_cast<sema_waiter*>(tok.waiter);
    if (w != nullptr && w->queued) {
      unlink_waiter(b, w);
      if (tok.stand_in != nullptr) {
        enqueue(b, new_stand_in(tok), true);  // nwait unchanged: one for one
      } else {
        b.nwait.fetch_sub(1, std::memory_order_relaxed);
      }
      w->cancelled = true;
      tok.waiter = nullptr;
      woken = w;
    }
  }
  if (woken != nullptr) woken->park.wake();  // woken may be gone after this
}

void sem_release(std::atomic<std::uint32_t>* addr, bool handoff) noexcept {
  // seq_cst: Dekker with sem_acquire; also the release edge for try_take.
  addr->fetch_add(1, std::memory_order_seq_cst);
  bucket& b = bucket_for(addr);
  if (b.nwait.load(std::memory_order_seq_cst) == 0) return;
  b.lock.lock();
  if (b.nwait.load(std::memory_order_relaxed) == 0) {
    b.lock.unlock();
    return;
  }
  sema_waiter* w = dequeue(b, addr);
  if (w != nullptr) b.nwait.fetch_sub(1, std::memory_order_relaxed);
  b.lock.unlock();
  if (w == nullptr) return;
  // w is off every queue: only we can touch it until wake().
  const bool handed = handoff && try_take(addr);
  if (w->stand_in != nullptr) {
    run_stand_in(b, w, handed);
    return;
  }
  w->ticket = handed;
  const bool waiter_is_goroutine = w->park.is_goroutine();
  w->park.wake();  // w may be gone after this
  // Direct handoff: let the waiter (now in our P's runnext) run right away.
  if (handed && waiter_is_goroutine && current_g() != nullptr && !in_stand_in) goro::yield();
}

void sem_forget_goroutines() noexcept {
  for (bucket& b : table) {
    lock_guard lk(b.lock);
    // Rebuild each address queue from its thread waiters only.
    sema_waiter** link = &b.heads;
    while (sema_waiter* head = *link) {
      sema_waiter* first = nullptr;
      sema_waiter* last = nullptr;
      for (sema_waiter* w = head; w != nullptr;) {
        sema_waiter* next = w->next;
        if (!w->park.is_goroutine() || w->stand_in != nullptr) {
          w->prev = last;
          w->next = nullptr;
          if (last != nullptr)
            last->next = w;
          else
            first = w;
          last = w;
        } else {
          b.nwait.fetch_sub(1, std::memory_order_relaxed);
        }
        w = next;
      }
      if (first == nullptr) {
        *link = head->next_addr;
        continue;
      }
      first->next_addr = head->next_addr;
      first->tail = last;
      *link = first;
      link = &first->next_addr;
    }
  }
}

}  // namespace goro::detail
