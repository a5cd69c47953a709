// Channel operations (Go's runtime/chan.go): make, send, receive, close, and
// the parking of a blocked operation. See chan_core.hpp for the invariants
// and the waking protocol.
//
// Memory ordering: every exchange of a value happens under the channel's
// lock, or between a waker that fills the waiter's record under the lock and
// the waiter that reads it after park returns (release in parker::wake,
// acquire in park). So a send happens before the receive it feeds, a receive
// before the send that refills its buffer slot (the (k+C)-th), an unbuffered
// receive before its sender returns, and close before a receive that reports
// closed. The lock-free fast paths of try_send / try_recv only ever report
// not_ready, or closed after an acquire load of `closed` that pairs with the
// release store in chan_close.
#include <algorithm>
#include <cstring>
#include <new>
#include <stdexcept>

#include "chan/chan_core.hpp"
#include "goro/panic.hpp"
#include "goro/sleep.hpp"
#include "platform/clock.hpp"
#include "runtime/fault.hpp"
#include "runtime/sched.hpp"

namespace goro::detail {

namespace {

constexpr std::size_t round_up(std::size_t n, std::size_t a) { return (n + a - 1) / a * a; }

// The largest buffer goro will make, as Go caps hchan's buffer by maxAlloc.
constexpr std::size_t max_chan_buffer_bytes = std::size_t{1} << 40;

std::size_t header_bytes(const chan_elem_ops* ops) {
  return round_up(sizeof(chan_core), std::max(ops->align, alignof(chan_core)));
}
std::size_t chan_alignment(const chan_elem_ops* ops) {
  return std::max(ops->align, alignof(chan_core));
}

// A channel's memory: header and buffer, aligned for both. The usual case
// (64-byte alignment, the header's) is carved out of a plain allocation a
// little larger: glibc's aligned allocation took ~50 ns more per channel,
// which a select loop making a timeout per iteration pays every time.
constexpr std::size_t plain_new_alignment = __STDCPP_DEFAULT_NEW_ALIGNMENT__;

void* chan_alloc(std::size_t bytes, std::size_t align, void*& base) {
  if (align > alignof(chan_core)) {
    base = ::operator new (bytes, std::align_val_t{align});
    return base;
  }
  base = ::operator new(bytes + align - plain_new_alignment);
  const auto at = reinterpret_cast<std::uintptr_t>(base);
  return reinterpret_cast<void*>((at + align - 1) & ~(std::uintptr_t{align} - 1));
}

void chan_free(void* base, std::size_t align) noexcept {
  if (align > alignof(chan_core)) {
    ::operator delete (base, std::align_val_t{align});
  } else {
    ::operator delete(base);
  }
}

void unlock_one(void* arg) GORO_NO_TSA { static_cast<spinlock*>(arg)->unlock(); }

// gopark's commit for an untimed wait on one channel: release its lock. A
// goroutine's untimed send or receive parks with it directly, skipping
// park_on's general commit (deadline timer, lock-set release): two indirect
// calls and a frame fewer on the path every blocking message takes.
bool unlock_one_commit(void* arg) GORO_NO_TSA {
  static_cast<spinlock*>(arg)->unlock();
  return true;
}

// Parks the caller, queued on c under c's lock, until woken: goroutines
// without a deadline the short way, everything else through park_on.
[[gnu::always_inline]] inline void park_on_chan(chan_core* c, wait_state& ws, std::int64_t deadline,
                                                wait_reason reason) GORO_NO_TSA {
  if (deadline == no_deadline && ws.park.is_goroutine()) {
    gopark(&unlock_one_commit, &c->lock, reason);
    return;
  }
  park_on(ws, &unlock_one, &c->lock, deadline, reason);
}

struct park_args {
  wait_state* ws;
  void (*release)(void*);
  void* arg;
  std::int64_t deadline;
};

void deadline_fire(timer* t) noexcept {
  auto* ws = static_cast<wait_state*>(t->arg);
  if (ws->claim()) {
    ws->winner = nullptr;
    ws->park.wake();
  }
}

// On g0, after the waiting goroutine's context is saved. The deadline timer
// goes in first, while the channel locks still keep every waker out: a timer
// that fires at once finds a parked goroutine and a claimable wait, and it
// cannot complete before we release the locks.
// *p lives in park_on's frame on the parked goroutine's stack, and a timer
// that fires at once may wake the goroutine (it claims ws without any
// channel lock), which then returns from park_on and reuses that frame while
// it waits for the locks: read everything from *p before the timer starts.
bool park_commit(void* a) GORO_NO_TSA {
  auto* p = static_cast<park_args*>(a);
  void (*const release)(void*) = p->release;
  void* const arg = p->arg;
  if (p->deadline != no_deadline) {
    timer& t = *::new (static_cast<void*>(&p->ws->deadline_timer)) timer;
    t.when = p->deadline;
    t.fire = &deadline_fire;
    t.arg = p->ws;
    timer_start(&t);  // from here on *p may be gone
  }
  release(arg);  // the lock set (select) lives in the caller's frame, still waiting for it
  return true;
}

}  // namespace

void park_on(wait_state& ws, void (*release)(void*), void* arg, std::int64_t deadline,
             wait_reason reason) {
  if (ws.park.is_goroutine()) {
    park_args args{&ws, release, arg, deadline};
    ws.park.park_commit(&park_commit, &args, reason);
    // Woken by a waker or by the timer: either way the timer must be out of
    // its heap, and done firing, before ws goes away.
    if (deadline != no_deadline) timer_stop(&ws.deadline_timer);
    return;
  }
  // A plain thread: its TSan clock travels through ws (race_acquire_for).
  race_release(&ws);
  release(arg);
  if (deadline == no_deadline) {
    ws.park.thread_wait();
  } else if (!ws.park.thread_wait_until(deadline)) {
    if (ws.claim()) {
      ws.winner = nullptr;  // nobody else will wake us: timed out
      return;
    }
    ws.park.thread_wait();  // a waker claimed us first and is about to wake us
  }
  race_acquire(&ws);
}

void block_nil(std::int64_t deadline, wait_reason reason) {
  if (deadline != no_deadline) {
    sleep_until_ns(deadline);
    return;
  }
  if (current_g() != nullptr) {
    gopark(nullptr, nullptr, reason);
    fatal_error("runtime: a goroutine blocked on a nil channel was woken");
  }
  std::atomic<std::uint32_t> never{0};
  for (;;) futex_wait(&never, 0);
}

[[noreturn]] void throw_send_on_closed() { throw goro::panic_error("send on closed channel"); }

// ---------------------------------------------------------------------------
// Exchange steps.

// The exchange steps' bodies, inlined into chan_send and chan_recv (their
// hottest callers); select.cpp calls the out-of-line wrappers below.
[[gnu::always_inline]] inline void send_to_receiver(chan_core* c, chan_waiter* r, void* src)
    GORO_REQUIRES(c->lock) {
  if (c->cap == 0) {
    race_sync_unbuffered(c, r);
  } else {
    // As if through the slot at recvx (the buffer is empty: recvx == sendx).
    race_through_slot(c, c->recvx);
    race_through_slot_as(c, c->recvx, r);
#if GORO_TSAN
    // Keep the slot sequence Go's model counts with (racenotify).
    if (++c->recvx == c->cap) c->recvx = 0;
    c->sendx = c->recvx;
#endif
  }
  take_value(r->take, r->elem, src);
  r->success = true;
}

[[gnu::always_inline]] inline void recv_from_sender(chan_core* c, chan_waiter* sender, void* dst,
                                                    chan_take_fn take) GORO_REQUIRES(c->lock) {
  if (c->cap == 0) {
    race_sync_unbuffered(c, sender);
    take_value(take, dst, sender->elem);
  } else {
    race_through_slot(c, c->recvx);
    race_through_slot_as(c, c->recvx, sender);
    // The buffer is full (a sender waits): the receiver gets the head, the
    // sender's value goes to the tail, which is the slot just emptied.
    void* head = c->slot(c->recvx);
    take_value(take, dst, head);
    destroy_value(c, head);
    move_value(c, head, sender->elem);
    if (++c->recvx == c->cap) c->recvx = 0;
    c->sendx = c->recvx;
  }
  sender->success = true;
}

void chan_send_to_receiver(chan_core* c, chan_waiter* r, void* src) { send_to_receiver(c, r, src); }

void chan_recv_from_sender(chan_core* c, chan_waiter* sender, void* dst, chan_take_fn take) {
  recv_from_sender(c, sender, dst, take);
}

// ---------------------------------------------------------------------------
// Public core API.

chan_core* chan_make(const chan_elem_ops* ops, std::size_t cap) {
  const std::size_t stride = round_up(ops->size, ops->align);
  if (stride != 0 && cap > max_chan_buffer_bytes / stride)
    throw std::length_error("makechan: size out of range");
  const std::size_t header = header_bytes(ops);
  void* base = nullptr;
  void* mem = chan_alloc(header + cap * stride, chan_alignment(ops), base);
  auto* c = ::new (mem) chan_core;
  c->alloc_base = base;
  c->ops = ops;
  c->cap = cap;
  c->stride = stride;
  c->buf = static_cast<unsigned char*>(mem) + header;
  return c;
}

void chan_retain(chan_core* c) noexcept {
  // Relaxed: a new handle is made from an existing one, which keeps c alive.
  c->refs.fetch_add(1, std::memory_order_relaxed);
}

void chan_release(chan_core* c) noexcept GORO_NO_TSA {
  // acq_rel: every use through other handles happens before the destruction
  // (and, for TSan, the same edge made explicitly).
  race_release(c);
  if (c->refs.fetch_sub(1, std::memory_order_acq_rel) != 1) return;
  race_acquire(c);
  if (c->on_last_release != nullptr) c->on_last_release(c->on_last_release_arg);
  // No handle is left, so no operation is in progress and no waiter queued.
  std::size_t n = c->count.load(std::memory_order_relaxed);
  std::size_t i = c->recvx;
  for (; n > 0; --n) {
    destroy_value(c, c->slot(i));
    if (++i == c->cap) i = 0;
  }
  const std::size_t align = chan_alignment(c->ops);
  void* const base = c->alloc_base;
  c->~chan_core();
  chan_free(base, align);
}

std::size_t chan_drain(chan_core* c) noexcept GORO_NO_TSA {
  spin_guard lk(c->lock);
  std::size_t n = c->count.load(std::memory_order_relaxed);
  const std::size_t drained = n;
  for (; n > 0; --n) {
    destroy_value(c, c->slot(c->recvx));
    if (++c->recvx == c->cap) c->recvx = 0;
  }
  c->count.store(0, std::memory_order_relaxed);
  return drained;
}

std::size_t chan_len(const chan_core* c) noexcept {
  return c->count.load(std::memory_order_relaxed);
}
std::size_t chan_cap(const chan_core* c) noexcept { return c->cap; }

namespace {

// A send from the point where c's lock is held: the exchange, or parking.
// Out of line, and reached from chan_send by tail calls only, so the fast
// path keeps no frame (no callee-saved registers to spill and restore).
[[gnu::noinline]] chan_status chan_send_locked(chan_core* c, void* src, bool block,
                                               std::int64_t deadline) GORO_NO_TSA {
  if (c->closed.load(std::memory_order_relaxed)) {
    c->lock.unlock();
    throw_send_on_closed();
  }
  if (chan_waiter* r = c->recvq.pop_claimed()) {
    send_to_receiver(c, r, src);
    c->lock.unlock();
    r->ws->park.wake();
    return chan_status::ok;
  }
  if (c->count.load(std::memory_order_relaxed) < c->cap) {
    chan_send_to_buffer(c, src);
    c->lock.unlock();
    return chan_status::ok;
  }
  if (!block) {
    c->lock.unlock();
    return chan_status::not_ready;
  }
  const bool timed = deadline != no_deadline;
  if (timed && deadline <= nanotime()) {
    c->lock.unlock();
    return chan_status::timeout;
  }
  wait_state ws;
  ws.needs_claim = timed;
  chan_waiter w;
  w.ws = &ws;
  w.elem = src;
  c->sendq.push(&w);
  park_on_chan(c, ws, deadline, wait_reason::chan_send);
  if (timed && ws.winner == nullptr) {
    spin_guard lk(c->lock);
    c->sendq.remove(&w);
    return chan_status::timeout;
  }
  if (!w.success) throw_send_on_closed();
  return chan_status::ok;
}

// Everything the fast path leaves: nil channels, non-blocking sends, and a
// lock that is taken.
[[gnu::noinline]] chan_status chan_send_slow(chan_core* c, void* src, bool block,
                                             std::int64_t deadline) GORO_NO_TSA {
  if (c == nullptr) {
    if (!block) return chan_status::not_ready;
    block_nil(deadline, wait_reason::chan_send_nil);
    return chan_status::timeout;
  }
  // Fast path (Go's): a try_send on an open, full buffered channel fails
  // without the lock. Both loads saw their values at some instant, and at
  // that instant the send could not proceed.
  if (!block && c->cap > 0 && !c->closed.load(std::memory_order_relaxed) &&
      c->count.load(std::memory_order_relaxed) == c->cap)
    return chan_status::not_ready;

  c->lock.lock();
  return chan_send_locked(c, src, block, deadline);
}

}  // namespace

chan_status chan_send(chan_core* c, void* src, bool block, std::int64_t deadline) GORO_NO_TSA {
  // Fast path: a blocking send of a small trivial value into a buffered
  // channel with room and, so, no receiver waiting (count > 0 means an empty
  // recvq; count == 0 needs the look). It calls nothing; every other case
  // goes on by a tail call.
  if (c != nullptr && block && c->lock.try_lock()) [[likely]] {
    const chan_elem_ops* ops = c->ops;
    const std::size_t count = c->count.load(std::memory_order_relaxed);
    if (count < c->cap && ops->small_trivial && c->recvq.empty() &&
        !c->closed.load(std::memory_order_relaxed)) {
      // chan_send_to_buffer, with the value known to be small and trivial.
      chan_append(c, count, [src, size = ops->size](void* slot) {
        race_ignore unchecked;  // as in move_value
        copy_small(slot, src, size);
      });
      c->lock.unlock();
      return chan_status::ok;
    }
    return chan_send_locked(c, src, block, deadline);
  }
  return chan_send_slow(c, src, block, deadline);
}

chan_status chan_recv(chan_core* c, void* dst, chan_take_fn take, bool block,
                      std::int64_t deadline) GORO_NO_TSA {
  if (c == nullptr) {
    if (!block) return chan_status::not_ready;
    block_nil(deadline, wait_reason::chan_receive_nil);
    return chan_status::timeout;
  }
  // Fast path (Go's): a try_recv on an empty buffered channel. If it is
  // open, nothing can be received now. If it is closed and still empty
  // after we saw it closed, it will stay empty: report closed (acquire pairs
  // with the release store in chan_close).
  if (!block && c->cap > 0 && c->count.load(std::memory_order_acquire) == 0) {
    if (!c->closed.load(std::memory_order_acquire)) return chan_status::not_ready;
    if (c->count.load(std::memory_order_acquire) == 0) {
      race_acquire(race_close_addr(c));
      return chan_status::closed;
    }
  }

  c->lock.lock();
  if (c->closed.load(std::memory_order_relaxed) && c->count.load(std::memory_order_relaxed) == 0) {
    race_acquire(race_close_addr(c));
    c->lock.unlock();
    return chan_status::closed;
  }
  if (chan_waiter* s = c->sendq.pop_claimed()) {
    recv_from_sender(c, s, dst, take);
    c->lock.unlock();
    s->ws->park.wake();
    return chan_status::ok;
  }
  if (c->count.load(std::memory_order_relaxed) > 0) {
    chan_recv_from_buffer(c, dst, take);
    c->lock.unlock();
    return chan_status::ok;
  }
  if (!block) {
    c->lock.unlock();
    return chan_status::not_ready;
  }
  const bool timed = deadline != no_deadline;
  if (timed && deadline <= nanotime()) {
    c->lock.unlock();
    return chan_status::timeout;
  }
  wait_state ws;
  ws.needs_claim = timed;
  chan_waiter w;
  w.ws = &ws;
  w.elem = dst;
  w.take = take;
  c->recvq.push(&w);
  park_on_chan(c, ws, deadline, wait_reason::chan_receive);
  if (timed && ws.winner == nullptr) {
    spin_guard lk(c->lock);
    c->recvq.remove(&w);
    return chan_status::timeout;
  }
  return w.success ? chan_status::ok : chan_status::closed;
}

void chan_close(chan_core* c) GORO_NO_TSA {
  if (c == nullptr) throw goro::panic_error("close of nil channel");
  c->lock.lock();
  if (c->closed.load(std::memory_order_relaxed)) {
    c->lock.unlock();
    throw goro::panic_error("close of closed channel");
  }
  race_release(race_close_addr(c));
  // Release pairs with the acquire loads in chan_recv's fast path.
  c->closed.store(true, std::memory_order_release);
  // Every waiter goes, receivers seeing "closed" and senders throwing; wake
  // them only after the lock is released. The popped waiters' next links
  // are free to chain them.
  chan_waiter* wake_list = nullptr;
  chan_waiter** tail = &wake_list;
  for (waitq* q : {&c->recvq, &c->sendq}) {
    while (chan_waiter* w = q->pop_claimed()) {
      race_acquire_for(w, race_close_addr(c));
      w->success = false;
      *tail = w;  // FIFO: woken in the order they came
      tail = &w->next;
    }
  }
  c->lock.unlock();
  while (wake_list != nullptr) {
    chan_waiter* w = wake_list;
    wake_list = w->next;  // read before the wake: w may vanish right after
    w->ws->park.wake();
  }
}

}  // namespace goro::detail
