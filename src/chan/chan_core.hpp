// The channel core (Go's hchan, runtime/chan.go), shared by chan.cpp and
// select.cpp.
//
// Invariants, all under chan_core::lock:
//  - count values sit in the ring buf[recvx .. recvx+count) (mod cap).
//  - recvq is non-empty only when no value can be received right now
//    (count == 0 and no sender waits), and sendq only when none can be sent
//    (count == cap and no receiver waits). A select's waiter may linger in a
//    queue after its select was decided elsewhere; whoever pops it must first
//    win its wait_state (claim), else it drops the waiter and looks further.
//  - closed never goes back to false; once closed, both queues are empty.
//
// Waking (park.hpp's protocol): a waker pops a waiter under the lock, claims
// its wait_state if it needs claiming, completes the exchange through the
// waiter's pointers (moves the value into the receiver's destination or out
// of the sender's object), records the outcome, releases the lock and wakes
// the waiter's parker. After the wake it never touches the waiter again.
//
// Lock order: channel locks rank with the wait-queue locks of lock.hpp (rank
// 1). A select takes several, always in increasing address order, so two
// selects never deadlock; nothing else takes two channel locks.
#pragma once

#include <cstring>

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "goro/chan.hpp"
#include "platform/lock.hpp"
#include "runtime/park.hpp"
#include "runtime/timer.hpp"

namespace goro::detail {

struct chan_waiter;

/// What a blocked operation waits on: one parker and, when several wakers
/// may compete for it (a select's cases, a deadline timer), the claim flag
/// that exactly one of them wins.
struct wait_state {
  parker park;
  bool needs_claim = false;
  // 0 until a waker claims the wait. Claimed by compare-exchange (acq_rel):
  // the winner alone may complete the operation and wake the parker.
  std::atomic<std::uint32_t> claimed{0};
  // The waiter whose case won (written by the claimer before wake), or
  // nullptr when a deadline timer won.
  chan_waiter* winner = nullptr;
  // The deadline's timer, constructed by park_on only for a timed wait:
  // the untimed ones (every message of a ping-pong) skip its initialization.
  union {
    timer deadline_timer;
  };

  wait_state() noexcept {}
  ~wait_state() {}
  wait_state(const wait_state&) = delete;
  wait_state& operator=(const wait_state&) = delete;

  bool claim() noexcept {
    if (!needs_claim) return true;
    std::uint32_t expected = 0;
    return claimed.compare_exchange_strong(expected, 1, std::memory_order_acq_rel,
                                           std::memory_order_relaxed);
  }
};

/// One operation waiting on one channel (Go's sudog); lives on the waiting
/// party's stack.
struct chan_waiter {
  wait_state* ws = nullptr;
  chan_waiter* next = nullptr;
  chan_waiter* prev = nullptr;
  bool queued = false;
  // Send: the value to move from. Receive: the destination, filled by take.
  void* elem = nullptr;
  chan_take_fn take = nullptr;
  // Written by the waker before it wakes: true if the value was exchanged,
  // false if the channel was closed under the waiter.
  bool success = false;
  std::uint32_t case_index = 0;  // select: which case this waiter is
};

struct waitq {
  chan_waiter* first = nullptr;
  chan_waiter* last = nullptr;

  bool empty() const noexcept { return first == nullptr; }
  void push(chan_waiter* w) noexcept {
    w->next = nullptr;
    w->prev = last;
    if (last != nullptr) {
      last->next = w;
    } else {
      first = w;
    }
    last = w;
    w->queued = true;
  }
  void remove(chan_waiter* w) noexcept {
    if (!w->queued) return;
    if (w->prev != nullptr) {
      w->prev->next = w->next;
    } else {
      first = w->next;
    }
    if (w->next != nullptr) {
      w->next->prev = w->prev;
    } else {
      last = w->prev;
    }
    w->next = w->prev = nullptr;
    w->queued = false;
  }
  /// Pops the first waiter whose wait this caller wins (Go's dequeue);
  /// waiters of selects decided elsewhere are dropped on the way.
  chan_waiter* pop_claimed() noexcept {
    while (chan_waiter* w = first) {
      remove(w);
      if (w->ws->claim()) {
        w->ws->winner = w;
        return w;
      }
    }
    return nullptr;
  }
};

// Two cache lines. The first holds everything an operation writes, so a
// channel that cores take turns on moves one line per operation besides its
// buffer slot (with the lock, the counters and the queues spread over two
// lines, as they were, mpmc's cores fought over both). The second is set at
// make and only read after, so every core keeps a shared copy; refs is
// written only when handles are made or dropped.
struct alignas(64) chan_core {
  // Line 0: the state under lock.
  spinlock lock;
  std::atomic<bool> closed{false};
  // Written under lock; read without it by len() and by the try_ fast paths,
  // which need only a value that was true at some instant.
  std::atomic<std::size_t> count{0};
  std::size_t sendx GORO_GUARDED_BY(lock) = 0;
  std::size_t recvx GORO_GUARDED_BY(lock) = 0;
  waitq recvq GORO_GUARDED_BY(lock);
  waitq sendq GORO_GUARDED_BY(lock);

  // Line 1: the channel's shape.
  alignas(64) const chan_elem_ops* ops = nullptr;
  unsigned char* buf = nullptr;  // cap slots of ops->size bytes, after this struct
  std::size_t cap = 0;
  std::size_t stride = 0;
  std::atomic<std::int32_t> refs{1};
  // Runs when the last handle goes, before the buffer is destroyed: a timer
  // channel stops its timer there (src/time/). Set once, before the channel
  // is shared.
  void (*on_last_release)(void* arg) noexcept = nullptr;
  void* on_last_release_arg = nullptr;
  void* alloc_base = nullptr;  // what chan.cpp's chan_alloc got: this, or a little before

  void* slot(std::size_t i) const noexcept { return buf + i * stride; }
};
static_assert(offsetof(chan_core, ops) == 64, "a channel's mutable state fills its first line");

// ---------------------------------------------------------------------------
// TSan edges (race.hpp) of the exchange steps, after Go's racenotify and
// racesync. A buffered channel passes every value through a slot: whoever
// puts a value in or takes it out acquires the slot's clock and releases its
// own into it, which yields "send before receive" and "k-th receive before
// the (k+C)-th send" (Go's model of a buffered channel as a semaphore). An
// unbuffered exchange synchronizes both parties both ways. All of it runs
// under the channel lock; the _as forms act for a parked waiter.

inline const void* race_slot_addr(const chan_core* c, std::size_t i) noexcept {
  return c->cap != 0 ? c->slot(i) : static_cast<const void*>(&c->recvx);
}
inline void race_through_slot(const chan_core* c, std::size_t i) noexcept {
  race_acquire(race_slot_addr(c, i));
  race_release(race_slot_addr(c, i));
}
// For a parked goroutine, act in its TSan context. A sleeping plain thread's
// context cannot be borrowed from another thread, so it takes part through
// its wait_state instead: it releases its clock there before it sleeps and
// acquires from there when it wakes (park_on), and the waker relays. That
// also orders the waker after the thread's past: an over-approximation that
// can only hide a race.
inline void race_acquire_for(const chan_waiter* w, const void* addr) noexcept {
  if (w->ws->park.is_goroutine()) {
    race_acquire_as(w->ws->park.race_ctx(), addr);
  } else {
    race_acquire(addr);
    race_release(w->ws);
  }
}
inline void race_release_for(const chan_waiter* w, const void* addr) noexcept {
  if (w->ws->park.is_goroutine()) {
    race_release_as(w->ws->park.race_ctx(), addr);
  } else {
    race_acquire(w->ws);
    race_release(addr);
  }
}
inline void race_through_slot_as(const chan_core* c, std::size_t i, const chan_waiter* w) noexcept {
  race_acquire_for(w, race_slot_addr(c, i));
  race_release_for(w, race_slot_addr(c, i));
}
inline void race_sync_unbuffered(const chan_core* c, const chan_waiter* w) noexcept {
  const void* a = race_slot_addr(c, 0);
  race_release(a);
  race_acquire_for(w, a);
  race_release_for(w, a);
  race_acquire(a);
}
inline const void* race_close_addr(const chan_core* c) noexcept { return &c->closed; }

/// Exchange steps (lock held; each leaves the channel consistent).
/// A receiver takes `sender`'s value (sender popped from sendq); for a
/// buffered channel the head of the buffer goes to the receiver and the
/// sender's value takes its place at the tail.
void chan_recv_from_sender(chan_core* c, chan_waiter* sender, void* dst, chan_take_fn take)
    GORO_REQUIRES(c->lock);
/// The sender (the caller, value at src) completes receiver r, popped from
/// recvq (the buffer is empty, if there is one).
void chan_send_to_receiver(chan_core* c, chan_waiter* r, void* src) GORO_REQUIRES(c->lock);

// Copies n bytes, sizeof(Word) <= n <= 2 * sizeof(Word), as two words that
// overlap unless n is twice the word: both loads before both stores.
template <class Word>
[[gnu::always_inline]] inline void copy_two_words(unsigned char* d, const unsigned char* s,
                                                  std::size_t n) noexcept {
  Word lo, hi;
  std::memcpy(&lo, s, sizeof(Word));
  std::memcpy(&hi, s + n - sizeof(Word), sizeof(Word));
  std::memcpy(d, &lo, sizeof(Word));
  std::memcpy(d + n - sizeof(Word), &hi, sizeof(Word));
}

// Copies n <= 16 bytes inline: no call, whatever n is, so the send fast
// path (chan.cpp) needs no frame.
[[gnu::always_inline]] inline void copy_small(void* dst, const void* src, std::size_t n) noexcept {
  auto* d = static_cast<unsigned char*>(dst);
  const auto* s = static_cast<const unsigned char*>(src);
  if (n >= 8) {
    copy_two_words<std::uint64_t>(d, s, n);
  } else if (n >= 4) {
    copy_two_words<std::uint32_t>(d, s, n);
  } else if (n >= 2) {
    copy_two_words<std::uint16_t>(d, s, n);
  } else if (n == 1) {
    *d = *s;
  }
}

// The channel's own moves of the values it carries, unchecked by TSan (as
// Go's runtime copies them uninstrumented): a value may be moved by a third
// party for a parked sender or receiver. The edges around each exchange are
// made explicitly (above) and order the user's own accesses.
inline void move_value(const chan_core* c, void* dst, void* src) noexcept {
  race_ignore unchecked;
  const chan_elem_ops* ops = c->ops;
  if (ops->small_trivial) {
    copy_small(dst, src, ops->size);
    return;
  }
  ops->move_construct(dst, src);
}
inline void take_value(chan_take_fn take, void* dst, void* src) noexcept {
  if (take == nullptr) return;  // a receive that drops the value
  race_ignore unchecked;
  take(dst, src);
}
inline void destroy_value(const chan_core* c, void* p) noexcept {
  if (c->ops->small_trivial) return;
  race_ignore unchecked;
  c->ops->destroy(p);
}

/// Takes the buffer's head value into dst (count > 0). Inline, as the
/// next one: every buffered send and receive, and select's, runs one.
inline void chan_recv_from_buffer(chan_core* c, void* dst, chan_take_fn take)
    GORO_REQUIRES(c->lock) {
  race_through_slot(c, c->recvx);
  void* head = c->slot(c->recvx);
  take_value(take, dst, head);
  destroy_value(c, head);
  if (++c->recvx == c->cap) c->recvx = 0;
  c->count.store(c->count.load(std::memory_order_relaxed) - 1, std::memory_order_relaxed);
}
/// Appends a value to the buffer (count, the buffered count, < cap): put
/// stores it into the slot it is given.
template <class Put>
[[gnu::always_inline]] inline void chan_append(chan_core* c, std::size_t count, Put put)
    GORO_REQUIRES(c->lock) {
  race_through_slot(c, c->sendx);
  put(c->slot(c->sendx));
  if (++c->sendx == c->cap) c->sendx = 0;
  c->count.store(count + 1, std::memory_order_relaxed);
}
/// Appends the value at src to the buffer (count < cap).
inline void chan_send_to_buffer(chan_core* c, void* src) GORO_REQUIRES(c->lock) {
  chan_append(c, c->count.load(std::memory_order_relaxed),
              [c, src](void* slot) { move_value(c, slot, src); });
}

[[noreturn]] void throw_send_on_closed();

/// Destroys every buffered value; returns how many there were. A timer's
/// stop and reset use it so that no value from before can be received.
std::size_t chan_drain(chan_core* c) noexcept;

/// Blocks the caller, whose waiters are queued on ws, until a waker claims
/// ws and wakes it, or until the deadline (no_deadline: none) claims it.
/// release(arg) releases the channel locks the caller holds; for a goroutine
/// it runs after its context is saved. On return ws.winner is the waiter
/// that won, or nullptr if the deadline did: then waiters may still sit in
/// channel queues and the caller must take them out under the locks.
void park_on(wait_state& ws, void (*release)(void*), void* arg, std::int64_t deadline,
             wait_reason reason);

/// Blocks forever, or until the deadline: an operation on a nil channel.
void block_nil(std::int64_t deadline, wait_reason reason);

}  // namespace goro::detail
