// select (Go's selectgo, runtime/select.go).
//
// Protocol:
//  1. Shuffle the non-nil cases into a random poll order (2 to 4 cases, none
//     nil: one of all their orders, from a table); sort them by
//     channel address into the lock order; lock every distinct channel in
//     that order (address order: two selects can never deadlock).
//  2. Poll the cases in poll order; the first that can proceed does, and
//     select returns. A send case on a closed channel is "ready" and throws.
//     (Before taking every lock, a fast path tries the leading buffered
//     cases one lock at a time; see 1b in select_impl.)
//  3. Nothing ready: with a default, unlock and take it. Otherwise queue a
//     waiter on every case's channel, all sharing one wait_state that needs
//     claiming, and park; the locks are released once the context is saved.
//  4. Exactly one waker wins the claim (a peer's send or receive, a close, or
//     the deadline timer): it completes that case through the waiter's
//     pointers and wakes us; wakers that lose drop our other waiters as they
//     meet them.
//  5. Awake: lock everything again, take our remaining waiters out of their
//     queues, unlock, and report the winner.
//
// Memory ordering: as for the single operations (chan.cpp): all exchanges
// happen under the channel lock, or through the waiter record between a
// wake (release) and the return from park (acquire).
#include <algorithm>
#include <array>
#include <new>
#include <stdexcept>

#include "chan/chan_core.hpp"
#include "goro/select.hpp"
#include "platform/clock.hpp"

namespace goro::detail {

static_assert(sizeof(chan_waiter) <= sizeof(select_slot::waiter),
              "select_slot::waiter must hold a chan_waiter");
static_assert(alignof(chan_waiter) <= alignof(select_slot), "select_slot is under-aligned");

namespace {

struct lock_set {
  const select_case_rec* cases;
  const select_slot* slots;
  std::size_t n;  // number of non-nil cases, in slots[0..n).lock_order
};

void lock_all(const lock_set& s) GORO_NO_TSA {
  chan_core* prev = nullptr;
  for (std::size_t i = 0; i < s.n; ++i) {
    chan_core* c = s.cases[s.slots[i].lock_order].c;
    if (c != prev) c->lock.lock();  // duplicates are adjacent in lock order
    prev = c;
  }
}

void unlock_all(const lock_set& s) GORO_NO_TSA {
  // Any order is deadlock-free; reverse order is the conventional one.
  for (std::size_t i = s.n; i-- > 0;) {
    chan_core* c = s.cases[s.slots[i].lock_order].c;
    if (i == 0 || s.cases[s.slots[i - 1].lock_order].c != c) c->lock.unlock();
  }
}

void unlock_all_cb(void* arg) { unlock_all(*static_cast<const lock_set*>(arg)); }

struct poll_outcome {
  enum kind_t { not_ready, done, closed, send_on_closed } kind = not_ready;
  chan_waiter* wake = nullptr;  // the peer to wake once the locks are released
};

// One case of Go's pass 1, with cs.c locked: completes it if it can proceed.
[[gnu::always_inline]] inline poll_outcome poll_case(const select_case_rec& cs) GORO_NO_TSA {
  chan_core* c = cs.c;
  if (cs.send) {
    if (c->closed.load(std::memory_order_relaxed)) return {poll_outcome::send_on_closed};
    if (chan_waiter* r = c->recvq.pop_claimed()) {
      chan_send_to_receiver(c, r, cs.elem);
      return {poll_outcome::done, r};
    }
    if (c->count.load(std::memory_order_relaxed) < c->cap) {
      chan_send_to_buffer(c, cs.elem);
      return {poll_outcome::done};
    }
    return {};
  }
  if (chan_waiter* s = c->sendq.pop_claimed()) {
    chan_recv_from_sender(c, s, cs.elem, cs.take);
    return {poll_outcome::done, s};
  }
  if (c->count.load(std::memory_order_relaxed) > 0) {
    chan_recv_from_buffer(c, cs.elem, cs.take);
    return {poll_outcome::done};
  }
  if (c->closed.load(std::memory_order_relaxed)) {
    race_acquire(race_close_addr(c));
    return {poll_outcome::closed};
  }
  return {};
}

// After the locks are released: wake the peer, or throw.
select_result finish_poll(const poll_outcome& o, std::uint32_t k) {
  if (o.kind == poll_outcome::send_on_closed) throw_send_on_closed();
  if (o.wake != nullptr) o.wake->ws->park.wake();
  return {static_cast<std::ptrdiff_t>(k), o.kind == poll_outcome::done};
}

// Every order of k cases (k = 2, 3, 4), two bits per position (the first
// case to poll in the low bits), in lexicographic order: a small select takes
// its poll order from one draw instead of a Fisher-Yates pass, whose chain of
// dependent loads and stores (each step reads the entry the one before wrote)
// the fast path would wait for.
constexpr std::size_t max_table_cases = 4;

template <std::size_t K>
constexpr auto make_orders() {
  constexpr std::size_t count = K == 2 ? 2 : K == 3 ? 6 : 24;
  std::array<std::uint8_t, count> out{};
  std::array<std::uint8_t, K> p{};
  for (std::size_t i = 0; i < K; ++i) p[i] = static_cast<std::uint8_t>(i);
  std::size_t at = 0;
  do {
    unsigned packed = 0;
    for (std::size_t i = 0; i < K; ++i) packed |= unsigned{p[i]} << (2 * i);
    out[at++] = static_cast<std::uint8_t>(packed);
  } while (std::next_permutation(p.begin(), p.end()));
  return out;
}
constexpr auto orders2 = make_orders<2>();
constexpr auto orders3 = make_orders<3>();
constexpr auto orders4 = make_orders<4>();
static_assert(orders2[1] == 0b0001 && orders3[5] == 0b000110 && orders4[23] == 0b00011011,
              "the last order of each table is the reversed one");

// Draws one of the k! orders of cases 0..k-1 (2 <= k <= 4) uniformly (up to
// Lemire's bias of k!/2^32), writes it to slots[0..k).poll_order for the
// locked poll and returns it packed, for the fast path to read from a
// register rather than wait for those stores.
inline unsigned table_order(select_slot* slots, std::size_t k, std::uint32_t r) noexcept {
  const std::uint8_t* table = k == 2 ? orders2.data() : k == 3 ? orders3.data() : orders4.data();
  const std::size_t count = k == 2 ? orders2.size() : k == 3 ? orders3.size() : orders4.size();
  const unsigned packed = table[(std::uint64_t{r} * count) >> 32];
  for (std::size_t i = 0; i < k; ++i) slots[i].poll_order = (packed >> (2 * i)) & 3u;
  return packed;
}

chan_waiter* waiter_at(select_slot* slots, std::size_t i) {
  return std::launder(reinterpret_cast<chan_waiter*>(slots[i].waiter));
}

}  // namespace

select_result select_impl(const select_case_rec* cases, select_slot* slots, std::size_t n,
                          bool has_default, std::int64_t deadline) GORO_NO_TSA {
  // 1. Poll order. Two to four cases, none nil: one order from the table,
  // kept in a register for the fast path. Otherwise an inside-out
  // Fisher-Yates shuffle of the non-nil cases: one draw from the M's
  // generator seeds a 32-bit LCG for the rest, and each index is scaled from
  // the LCG's high bits by a multiply (Lemire's reduction): no division, no
  // call per case.
  std::uint32_t r = cheap_rand();
  std::size_t live = 0;
  bool none_nil = n >= 2 && n <= max_table_cases;
  for (std::size_t i = 0; i < n && none_nil; ++i) none_nil = cases[i].c != nullptr;
  unsigned packed_order = 0;
  if (none_nil) {
    packed_order = table_order(slots, n, r);
    live = n;
  } else {
    for (std::size_t i = 0; i < n; ++i) {
      if (cases[i].c == nullptr) continue;
      const auto j = static_cast<std::size_t>((std::uint64_t{r} * (live + 1)) >> 32);
      r = r * 1664525u + 1013904223u;
      slots[live].poll_order = slots[j].poll_order;
      slots[j].poll_order = static_cast<std::uint32_t>(i);
      ++live;
    }
  }
  if (live == 0) {
    if (has_default) return {select_chose_default, false};
    block_nil(deadline, wait_reason::select_no_cases);
    return {select_timed_out, false};
  }
  // 1b. Fast path: buffered channels tell without their lock whether a case
  // may be ready (count and closed), so try the cases in poll order one lock
  // at a time, as long as every case before is such a channel. The first
  // that completes is what the locked poll would pick; default and parking
  // are decided only by the locked poll below.
  for (std::size_t i = 0; i < live; ++i) {
    const std::uint32_t k = none_nil ? packed_order & 3u : slots[i].poll_order;
    packed_order >>= 2;
    const select_case_rec& cs = cases[k];
    chan_core* c = cs.c;
    if (c->cap == 0) break;  // readiness lives in the wait queues
    const std::size_t count = c->count.load(std::memory_order_relaxed);
    const bool closed = c->closed.load(std::memory_order_relaxed);
    if (cs.send ? !closed && count == c->cap : !closed && count == 0) continue;
    c->lock.lock();
    const poll_outcome o = poll_case(cs);
    c->lock.unlock();
    if (o.kind != poll_outcome::not_ready) return finish_poll(o, k);
  }

  // Lock order: by channel address (insertion sort; selects are small).
  // Only the locked poll needs it, so the fast path above skips it.
  for (std::size_t i = 0; i < live; ++i) {
    const std::uint32_t k = slots[i].poll_order;
    const auto key = reinterpret_cast<std::uintptr_t>(cases[k].c);
    std::size_t j = i;
    while (j > 0 && reinterpret_cast<std::uintptr_t>(cases[slots[j - 1].lock_order].c) > key) {
      slots[j].lock_order = slots[j - 1].lock_order;
      --j;
    }
    slots[j].lock_order = k;
  }
  const lock_set locks{cases, slots, live};
  lock_all(locks);

  // 2. Poll.
  for (std::size_t i = 0; i < live; ++i) {
    const std::uint32_t k = slots[i].poll_order;
    const poll_outcome o = poll_case(cases[k]);
    if (o.kind == poll_outcome::not_ready) continue;
    unlock_all(locks);
    return finish_poll(o, k);
  }

  // 3. Nothing ready.
  if (has_default) {
    unlock_all(locks);
    return {select_chose_default, false};
  }
  if (deadline != no_deadline && deadline <= nanotime()) {
    unlock_all(locks);
    return {select_timed_out, false};
  }
  wait_state ws;
  ws.needs_claim = true;
  for (std::size_t i = 0; i < live; ++i) {
    const std::uint32_t k = slots[i].lock_order;
    const select_case_rec& cs = cases[k];
    auto* w = ::new (static_cast<void*>(slots[k].waiter)) chan_waiter;
    w->ws = &ws;
    w->elem = cs.elem;
    w->take = cs.take;
    w->case_index = k;
    (cs.send ? cs.c->sendq : cs.c->recvq).push(w);
  }
  park_on(ws, &unlock_all_cb, const_cast<lock_set*>(&locks), deadline, wait_reason::select);

  // 5. Awake: drop the waiters that did not win.
  chan_waiter* winner = ws.winner;
  lock_all(locks);
  for (std::size_t i = 0; i < live; ++i) {
    const std::uint32_t k = slots[i].lock_order;
    chan_waiter* w = waiter_at(slots, k);
    if (w != winner) (cases[k].send ? cases[k].c->sendq : cases[k].c->recvq).remove(w);
  }
  unlock_all(locks);
  if (winner == nullptr) return {select_timed_out, false};
  const std::uint32_t k = winner->case_index;
  if (cases[k].send && !winner->success) throw_send_on_closed();
  return {static_cast<std::ptrdiff_t>(k), winner->success};
}

}  // namespace goro::detail

namespace goro {

std::size_t select(std::span<select_case> cases) {
  constexpr std::size_t small = 8;
  const std::size_t n = cases.size();
  detail::select_case_rec small_recs[small];
  detail::select_slot small_slots[small];
  std::unique_ptr<detail::select_case_rec[]> big_recs;
  std::unique_ptr<detail::select_slot[]> big_slots;
  detail::select_case_rec* recs = small_recs;
  detail::select_slot* slots = small_slots;
  if (n > small) {
    big_recs = std::make_unique<detail::select_case_rec[]>(n);
    big_slots = std::make_unique<detail::select_slot[]>(n);
    recs = big_recs.get();
    slots = big_slots.get();
  }
  std::size_t default_pos = n;
  for (std::size_t i = 0; i < n; ++i) {
    if (!cases[i].impl_)
      throw std::invalid_argument("goro::select: empty (moved-from) select_case");
    if (cases[i].impl_->is_default()) {
      if (default_pos != n) throw std::invalid_argument("goro::select: multiple default cases");
      default_pos = i;
    }
    recs[i] = cases[i].impl_->rec();
  }
  const detail::select_result r =
      detail::select_impl(recs, slots, n, default_pos != n, detail::no_deadline);
  const std::size_t chosen =
      r.index == detail::select_chose_default ? default_pos : static_cast<std::size_t>(r.index);
  cases[chosen].impl_->complete();
  return chosen;
}

}  // namespace goro
