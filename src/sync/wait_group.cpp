// goro::wait_group, Go's sync.WaitGroup algorithm.
//
// state_ packs the counter (high 32 bits) and the number of waiters (low 32
// bits) in one word, so that "counter reached zero" and "someone is waiting"
// are observed together. Waiters sleep on the runtime semaphore at &sema_.
//
// Protocol:
//  - add() adds delta<<32. If the counter becomes zero while waiters > 0, the
//    adder is the only one who can touch state_ now (any concurrent add or
//    wait from that point on is misuse, and is detected where possible): it
//    resets state_ to 0 and releases the semaphore once per waiter.
//  - wait() returns at once if the counter is zero; otherwise it increments
//    the waiter count with a CAS (so it cannot miss the transition to zero)
//    and sleeps on the semaphore.
#include "goro/wait_group.hpp"

#include "context/context_impl.hpp"
#include "goro/panic.hpp"
#include "platform/race.hpp"
#include "runtime/park.hpp"
#include "runtime/sema.hpp"

namespace goro {

void wait_group::add(int delta) {
  // TSan (this file is not instrumented, race.hpp): done() happens before
  // the wait() it releases.
  if (delta < 0) detail::race_release(&state_);
  // acq_rel: a done() releases the work it finished; the add that observes
  // zero acquires all of them before waking the waiters.
  const std::uint64_t s =
      state_.fetch_add(static_cast<std::uint64_t>(static_cast<std::int64_t>(delta)) << 32,
                       std::memory_order_acq_rel) +
      (static_cast<std::uint64_t>(static_cast<std::int64_t>(delta)) << 32);
  const auto v = static_cast<std::int32_t>(s >> 32);
  const auto w = static_cast<std::uint32_t>(s);
  if (v < 0) throw panic_error("sync: negative WaitGroup counter");
  if (w != 0 && delta > 0 && v == delta)
    throw panic_error("sync: WaitGroup misuse: Add called concurrently with Wait");
  if (v > 0 || w == 0) return;
  // Counter is zero and there are waiters. Nobody else may change state_ now.
  if (state_.load(std::memory_order_relaxed) != s)
    throw panic_error("sync: WaitGroup misuse: Add called concurrently with Wait");
  state_.store(0, std::memory_order_relaxed);
  for (std::uint32_t i = 0; i < w; ++i) detail::sem_release(&sema_, false);
}

void wait_group::wait() {
  // Acquire pairs with the acq_rel fetch_add in add(): a wait that sees zero
  // sees everything the done() calls released.
  std::uint64_t s = state_.load(std::memory_order_acquire);
  for (;;) {
    if (static_cast<std::int32_t>(s >> 32) == 0) {
      detail::race_acquire(&state_);
      return;
    }
    if (state_.compare_exchange_weak(s, s + 1, std::memory_order_acquire,
                                     std::memory_order_acquire)) {
      detail::sem_acquire(&sema_, false, detail::wait_reason::wait_group);
      if (state_.load(std::memory_order_acquire) != 0)
        throw panic_error("sync: WaitGroup is reused before previous Wait has returned");
      detail::race_acquire(&state_);
      return;
    }
  }
}

std::error_code wait_group::wait(const context& ctx) {
  std::uint64_t s = state_.load(std::memory_order_acquire);  // as in wait()
  for (;;) {
    if (static_cast<std::int32_t>(s >> 32) == 0) {
      detail::race_acquire(&state_);
      return {};
    }
    if (state_.compare_exchange_weak(s, s + 1, std::memory_order_acquire,
                                     std::memory_order_acquire))
      break;
  }
  std::error_code ec;
  if (!detail::ctx_sem_acquire(&sema_, false, detail::wait_reason::wait_group, ctx, ec)) {
    // Leave the waiter count, unless the counter reached zero meanwhile: then
    // the add() that zeroed it owns state_ and releases one unit per counted
    // waiter, ours included, which we must take (the wait has succeeded).
    s = state_.load(std::memory_order_acquire);
    for (;;) {
      if (static_cast<std::int32_t>(s >> 32) == 0 || static_cast<std::uint32_t>(s) == 0) break;
      if (state_.compare_exchange_weak(s, s - 1, std::memory_order_acquire,
                                       std::memory_order_acquire))
        return ec;
    }
    detail::sem_acquire(&sema_, false, detail::wait_reason::wait_group);
  }
  if (state_.load(std::memory_order_acquire) != 0)
    throw panic_error("sync: WaitGroup is reused before previous Wait has returned");
  detail::race_acquire(&state_);
  return {};
}

}  // namespace goro
