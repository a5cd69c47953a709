// goro::blocking: Go's entersyscallblock / handoffp / exitsyscall.
//
// Protocol:
//  1. blocking_enter (on the goroutine, holding its P): record the wait
//     reason and start, count the call (sched.nblocking: checkdead sees a
//     possible waker), and detach the P from this M (m->p, p->m = null), so
//     nothing on this thread touches the P again until step 3.
//  2. handoffp: give the P to another M if there is anything for it to do
//     (its queue, the global queue, its timers, or no M spinning to pick up
//     future work), else put it on the idle list. The P is running or idle,
//     never owned by two Ms.
//  3. blocking_exit (f returned or threw): take an idle P if there is one
//     and go on on this thread. Otherwise switch to g0 with the `requeue`
//     action: g0 puts the goroutine on the global queue (execute()), and this
//     M, now without a P, looks for one in find_runnable or sleeps.
// The goroutine's status stays `running` throughout (it is on its thread);
// reason blocking_call tells dumps it is blocked.
#include "goro/blocking.hpp"

#include <atomic>

#include "platform/race.hpp"
#include "runtime/sched.hpp"

namespace goro::detail {

void switch_to_g0_for_requeue(G* g, M* m) noexcept;

namespace {

void handoffp(P* p) noexcept {
  const bool work = !runq_empty(p) || sched.runq_size.load(std::memory_order_acquire) > 0 ||
                    p->timers.earliest() != 0 ||
                    p->id >= sched.nprocs.load(std::memory_order_acquire);
  if (work) {
    startm(p, false);
    return;
  }
  // No local work: if nobody spins and no P is idle, spin up an M so work
  // made runnable meanwhile is found (Go's handoffp does the same).
  std::int32_t zero = 0;
  if (sched.npidle.load(std::memory_order_seq_cst) == 0 &&
      sched.nmspinning.compare_exchange_strong(zero, 1, std::memory_order_seq_cst)) {
    startm(p, true);
    return;
  }
  bool recheck;
  {
    lock_guard lk(sched.lock);
    p->status = pstatus::idle;
    p->m = nullptr;
    p->idle_next = sched.pidle;
    sched.pidle = p;
    sched.npidle.fetch_add(1, std::memory_order_seq_cst);
    recheck = sched.runq_size.load(std::memory_order_relaxed) > 0;
  }
  // Work queued globally while we decided (seq_cst against goready's wakep).
  if (recheck) wakep();
}

}  // namespace

bool blocking_enter() noexcept {
  race_ignore no_race_checks;  // runtime code (race.hpp)
  G* g = current_g();
  if (g == nullptr) return false;
  M* m = current_m();
  // Relaxed: timestamps and the reason are hints for dumps, which read them
  // with relaxed loads; they order nothing.
  g->wait_since.store(sched.coarse_now.load(std::memory_order_relaxed), std::memory_order_relaxed);
  std::atomic_ref<wait_reason>(g->reason).store(wait_reason::blocking_call,
                                                std::memory_order_relaxed);
  // seq_cst, read by checkdead under sched.lock (a belt to the braces of
  // this M never being idle while f runs).
  sched.nblocking.fetch_add(1, std::memory_order_seq_cst);
  P* p = m->p;
  if (m->spinning) {
    m->spinning = false;
    sched.nmspinning.fetch_sub(1, std::memory_order_seq_cst);
  }
  {
    lock_guard lk(sched.lock);
    m->p = nullptr;
    p->m = nullptr;
  }
  handoffp(p);
  return true;
}

void blocking_exit() noexcept {
  race_ignore no_race_checks;  // runtime code (race.hpp)
  G* g = current_g();
  M* m = current_m();
  std::atomic_ref<wait_reason>(g->reason).store(wait_reason::none, std::memory_order_relaxed);
  P* p;
  {
    lock_guard lk(sched.lock);
    p = sched.pidle;
    if (p != nullptr) {
      sched.pidle = p->idle_next;
      p->idle_next = nullptr;
      p->status = pstatus::running;
      sched.npidle.fetch_sub(1, std::memory_order_seq_cst);
      m->p = p;
      p->m = m;
    }
  }
  sched.nblocking.fetch_sub(1, std::memory_order_seq_cst);
  if (p != nullptr) {
    sysmon_wake_if_idle();
    return;
  }
  switch_to_g0_for_requeue(g, m);
}

}  // namespace goro::detail
