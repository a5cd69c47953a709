// goro::mutex, Go's sync.Mutex algorithm (normal and starvation modes).
//
// State word (see mutex.hpp): locked | woken | starving | waiters << 3.
// Waiters sleep on the runtime semaphore at &sema_.
//
// Normal mode: an unlocker that sees waiters and no woken/starving flag wakes
// one (setting woken, so concurrent unlocks don't wake more). The woken
// waiter competes with new arrivals, which may spin briefly first (only on a
// multi-core machine, with other Ps busy and nothing queued on ours, as Go
// does: spinning is only worth it if the holder is running elsewhere).
// A waiter that loses keeps its place at the front of the queue (LIFO
// re-queue). A waiter that waited more than 1 ms sets starving.
//
// Starvation mode: unlock hands the mutex straight to the front waiter
// (sem_release with handoff), which finds the mutex still marked locked-for-it
// and takes ownership by adjusting the state; arrivals do not spin or grab the
// lock, they queue. The front waiter clears starving if it waited less than
// 1 ms or is the last waiter.
#include "goro/mutex.hpp"

#include "context/context_impl.hpp"
#include "platform/clock.hpp"
#include "platform/lock.hpp"
#include "platform/race.hpp"
#include "runtime/fault.hpp"
#include "runtime/park.hpp"
#include "runtime/sched.hpp"
#include "runtime/sema.hpp"

namespace goro {
namespace {

constexpr std::int64_t starvation_threshold_ns = 1000000;  // 1 ms, as Go

bool can_spin(int iter) noexcept {
  constexpr int active_spin = 4;
  if (iter >= active_spin) return false;
  static const bool multicore = std::thread::hardware_concurrency() > 1;
  if (!multicore) return false;
  detail::M* m = detail::current_m();
  if (m == nullptr || m->curg == nullptr) return true;  // a plain thread may spin
  // Spin only if some other P is running (it may be the holder) and our P
  // has nothing else to do.
  const auto& s = detail::sched;
  if (s.nprocs.load(std::memory_order_relaxed) <=
      s.npidle.load(std::memory_order_relaxed) + s.nmspinning.load(std::memory_order_relaxed) + 1)
    return false;
  detail::P* p = m->p;
  return p == nullptr || (p->runq_head.load(std::memory_order_relaxed) ==
                              p->runq_tail.load(std::memory_order_relaxed) &&
                          p->runnext.load(std::memory_order_relaxed) == nullptr);
}

void do_spin() noexcept {
  for (int i = 0; i < 30; ++i) detail::cpu_relax();
}

}  // namespace

bool mutex::try_lock() noexcept {
  std::int32_t old = state_.load(std::memory_order_relaxed);
  if ((old & (locked_bit | starving_bit)) != 0) return false;
  // Acquire pairs with the release in unlock().
  if (!state_.compare_exchange_strong(old, old | locked_bit, std::memory_order_acquire,
                                      std::memory_order_relaxed))
    return false;
  detail::race_acquire(&state_);  // TSan: this file is not instrumented (race.hpp)
  return true;
}

std::error_code mutex::lock_slow(const context* ctx) {
  std::int64_t wait_start = 0;
  bool starving = false;
  bool awoke = false;
  int iter = 0;
  std::int32_t old = state_.load(std::memory_order_relaxed);
  for (;;) {
    // Spin while locked in normal mode, if spinning makes sense.
    if ((old & (locked_bit | starving_bit)) == locked_bit && can_spin(iter)) {
      // Set woken so unlock does not wake another waiter while we spin.
      if (!awoke && (old & woken_bit) == 0 && (old >> waiter_shift) != 0 &&
          state_.compare_exchange_weak(old, old | woken_bit, std::memory_order_relaxed)) {
        awoke = true;
      }
      do_spin();
      ++iter;
      old = state_.load(std::memory_order_relaxed);
      continue;
    }
    std::int32_t next = old;
    // Don't grab a starving mutex: it belongs to the waiters.
    if ((old & starving_bit) == 0) next |= locked_bit;
    if ((old & (locked_bit | starving_bit)) != 0) next += 1 << waiter_shift;
    // Switch to starvation mode, unless the mutex is free by now (unlock
    // expects waiters in starvation mode).
    if (starving && (old & locked_bit) != 0) next |= starving_bit;
    if (awoke) {
      if ((next & woken_bit) == 0) detail::fatal_error("sync: inconsistent mutex state");
      next &= ~woken_bit;
    }
    // Acquire (on success) pairs with the release in unlock().
    if (state_.compare_exchange_weak(old, next, std::memory_order_acquire,
                                     std::memory_order_relaxed)) {
      if ((old & (locked_bit | starving_bit)) == 0) {  // locked it
        // TSan: pairs with the (instrumented) release in unlock().
        detail::race_acquire(&state_);
        return {};
      }
      const bool queue_lifo = wait_start != 0;
      if (wait_start == 0) wait_start = detail::nanotime();
      if (ctx == nullptr) {
        detail::sem_acquire(&sema_, queue_lifo, detail::wait_reason::mutex);
      } else {
        std::error_code ec;
        // Cancelled: a stand-in keeps our place in the queue (and in the
        // waiter count) and, when woken, passes the wake-up on.
        if (!detail::ctx_sem_acquire(&sema_, queue_lifo, detail::wait_reason::mutex, *ctx, ec,
                                     &stand_in_woken, this))
          return ec;
      }
      starving = starving || detail::nanotime() - wait_start > starvation_threshold_ns;
      old = state_.load(std::memory_order_acquire);
      if ((old & starving_bit) != 0) {
        // Handed off to us: leave starvation mode unless we starved too.
        take_handoff(old, !starving || (old >> waiter_shift) == 1);
        return {};
      }
      awoke = true;
      iter = 0;
    }
  }
}

// Starvation mode handed the mutex to the caller (the unlocker left it
// unlocked-but-owned, still counting the caller as a waiter): make it
// locked, count the caller out, and leave starvation mode if asked.
void mutex::take_handoff(std::int32_t old, bool leave_starvation) noexcept {
  if ((old & (locked_bit | woken_bit)) != 0 || (old >> waiter_shift) == 0)
    detail::fatal_error("sync: inconsistent mutex state");
  std::int32_t delta = locked_bit - (1 << waiter_shift);
  if (leave_starvation) delta -= starving_bit;
  // Acquire pairs with the release in unlock().
  state_.fetch_add(delta, std::memory_order_acquire);
  detail::race_acquire(&state_);
}

// The stand-in of a cancelled lock(ctx) waiter got the wake-up that waiter
// would have got (runtime/sema.hpp): do what lock_slow does on waking, but
// never wait. Go's count invariants hold because the waiter's place in the
// queue was never vacated: an unlocker that chose "some waiter" for a
// wake-up (normal mode: count - 1, woken bit) or a handoff (starvation mode)
// reaches the stand-in exactly as it would have reached the waiter.
void mutex::stand_in_woken(void* self, bool handed) noexcept {
  (void)handed;  // a handoff shows in the state as the starving bit
  auto* m = static_cast<mutex*>(self);
  std::int32_t old = m->state_.load(std::memory_order_acquire);
  if ((old & starving_bit) != 0) {
    // Starvation mode: the mutex was handed to us. Take it, leave
    // starvation mode (we did not starve), and unlock at once: the next
    // waiter gets it in the ordinary way.
    m->take_handoff(old, true);
    m->unlock();
    return;
  }
  // Normal mode: we hold the woken role (the unlocker set the woken bit for
  // whoever it woke). If the mutex is free, take it and unlock, which wakes
  // the next waiter if there is one; if it is held, give the role back, so
  // the holder's unlock wakes the next waiter.
  for (;;) {
    if ((old & locked_bit) == 0) {
      if (m->state_.compare_exchange_weak(old, (old | locked_bit) & ~woken_bit,
                                          std::memory_order_acquire, std::memory_order_acquire)) {
        detail::race_acquire(&m->state_);
        m->unlock();
        return;
      }
    } else if (m->state_.compare_exchange_weak(old, old & ~woken_bit, std::memory_order_relaxed,
                                               std::memory_order_acquire)) {
      return;
    }
  }
}

void mutex::unlock_slow(std::int32_t now) noexcept {
  if (((now + locked_bit) & locked_bit) == 0) detail::fatal_error("sync: unlock of unlocked mutex");
  if ((now & starving_bit) == 0) {
    std::int32_t old = now;
    for (;;) {
      // Nobody to wake, or someone is already awake / got the lock / the
      // mode changed: done.
      if ((old >> waiter_shift) == 0 || (old & (locked_bit | woken_bit | starving_bit)) != 0)
        return;
      const std::int32_t next = (old - (1 << waiter_shift)) | woken_bit;
      if (state_.compare_exchange_weak(old, next, std::memory_order_relaxed)) {
        detail::sem_release(&sema_, false);
        return;
      }
    }
  }
  // Starvation mode: hand ownership to the front waiter and let it run.
  detail::sem_release(&sema_, true);
}

}  // namespace goro
