// Address-keyed semaphores; see sema.hpp for the protocol.
//
// Each bucket holds, under its lock, a list of "heads", one per address with
// waiters; a head owns the FIFO of waiters for its address (head -> next ->
// ... -> tail). Waiter records live on the waiters' own stacks: nothing is
// allocated.
#include "runtime/sema.hpp"

#include <cstddef>

#include "goro/goroutine.hpp"

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
  return head;
}

}  // namespace

void sem_acquire(std::atomic<std::uint32_t>* addr, bool lifo, wait_reason reason) {
  if (try_take(addr)) return;
  bucket& b = bucket_for(addr);
  for (;;) {
    sema_waiter w;
    w.addr = addr;
    b.lock.lock();
    // seq_cst: Dekker with sem_release (its fetch_add on *addr, then nwait).
    b.nwait.fetch_add(1, std::memory_order_seq_cst);
    if (try_take(addr)) {
      b.nwait.fetch_sub(1, std::memory_order_relaxed);
      b.lock.unlock();
      return;
    }
    enqueue(b, &w, lifo);
    w.park.park_unlock(b.lock, reason);
    // The releaser removed us from the queue and decremented nwait.
    if (w.ticket || try_take(addr)) return;
  }
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
  w->ticket = handed;
  const bool waiter_is_goroutine = w->park.is_goroutine();
  w->park.wake();  // w may be gone after this
  // Direct handoff: let the waiter (now in our P's runnext) run right away.
  if (handed && waiter_is_goroutine && current_g() != nullptr) goro::yield();
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
        if (!w->park.is_goroutine()) {
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
