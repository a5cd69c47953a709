// sysmon: the monitor thread (Go's sysmon in proc.go), and SIGQUIT.
//
// goro cannot preempt a goroutine, so a goroutine that computes for a long
// time without blocking (or blocks in a call not wrapped in goro::blocking)
// holds its P, and the goroutines queued on that P wait. sysmon watches:
//
//  - Every tick it reads each running P's schedtick. A P whose schedtick has
//    not moved for more than 10 ms has run one goroutine that long (P::
//    sysmon_tick / sysmon_when record what sysmon last saw; dumps show it).
//  - If such a stuck P has runnable goroutines (its queue, runnext, or the
//    global queue), sysmon gets another thread to run them: with an idle P,
//    wakep() (the woken M steals from the stuck P's queue); with none, it
//    lends a P: the P count grows by one (sched.nlent; maxprocs() does not
//    count it) and the new P's M steals. This is Go's handoff for a P in a
//    syscall, applied to a P that cannot be taken from its running goroutine
//    (nothing may touch a P under a running goroutine: only its owner
//    writes runnext and the queue tail). A lent P is given back (the P count
//    shrinks; the highest P retires as in set_maxprocs) when fewer Ps are
//    stuck than are lent.
//  - It fires a stuck P's due timers itself (they wait for that P's
//    scheduler; other Ms look at them only once they run out of work, which
//    under load may be never). What they wake goes to the global queue.
//  - It advances sched.coarse_now, the clock gopark stamps into G::wait_since.
//
// Sleeping: 20 us between ticks, doubling after 50 idle ticks up to 10 ms
// (Go's backoff). When every P is idle sysmon sleeps without a timeout
// (Go's sysmonwait): idle runtime, no CPU. Protocol (Dekker, all seq_cst):
//   sysmon: sysmon_idle = true; then re-read npidle; sleep only if all idle.
//   an M taking a P: pidle_get decrements npidle; then acquirep reads
//   sysmon_idle and, if set, clears it, refreshes coarse_now and wakes.
// So either sysmon sees a busy P or the M sees sysmon asleep. Wake-ups go
// through sysmon_seq (incremented before futex_wake; sysmon waits on the
// value it read before checking), so none is lost.
//
// SIGQUIT: the handler only sets sched.sigquit and wakes sysmon (both
// async-signal-safe); sysmon prints "SIGQUIT: quit" and the goroutine dump
// and exits with status 2, like Go.
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <string>

#include "debug/dump.hpp"
#include "goro/runtime.hpp"
#include "platform/clock.hpp"
#include "platform/futex.hpp"
#include "platform/race.hpp"
#include "runtime/fault.hpp"
#include "runtime/sched.hpp"

namespace goro::detail {
namespace {

constexpr std::int64_t stuck_ns = 10'000'000;  // 10 ms, Go's forcePreemptNS
constexpr std::int64_t min_delay_ns = 20'000;
constexpr std::int64_t max_delay_ns = 10'000'000;

struct sigaction previous_quit;
bool quit_installed = false;

void poke_sysmon() noexcept {
  // Release pairs with sysmon's acquire load of sysmon_seq before it waits.
  sched.sysmon_seq.fetch_add(1, std::memory_order_release);
  futex_wake(&sched.sysmon_seq, 1);
}

void on_sigquit(int) {
  // Both async-signal-safe: a lock-free atomic store and futex syscalls.
  sched.sigquit.store(1, std::memory_order_seq_cst);
  poke_sysmon();
}

[[noreturn]] void sigquit_dump() noexcept {
  std::string text = "SIGQUIT: quit\n\n";
  append_dump(text);
  write_all(2, text);
  exit_now(2);
}

bool has_work(P* p) noexcept {
  return !runq_empty(p) || sched.runq_size.load(std::memory_order_acquire) > 0;
}

// Every P is idle: the ones in use are on the idle list, and no P being
// retired (out of nprocs, off the idle list) still runs the goroutine it had
// when it was retired: that one may be stuck with work behind it, which
// only sysmon would notice.
bool every_p_idle() noexcept {
  // seq_cst pairs with pidle_get's decrement (see sysmon_main).
  const int in_use = sched.nprocs.load(std::memory_order_seq_cst);
  if (sched.npidle.load(std::memory_order_seq_cst) != in_use) return false;
  const int n = sched.nallp.load(std::memory_order_acquire);
  if (n == in_use) return true;
  lock_guard lk(sched.lock);
  for (int i = in_use; i < n; ++i)
    if (sched.allp[i]->status == pstatus::running) return false;
  return true;
}

// One pass over the Ps (Go's retake). Returns true if it acted.
bool retake(std::int64_t now) noexcept {
  int stuck_with_work = 0;
  int stuck = 0;
  bool acted = false;
  // Every P ever made, not just the first nprocs: a P being retired (by
  // set_maxprocs, or a lent P given back) stays with its M until the
  // goroutine on it switches out, and the goroutines in its queue and
  // runnext wait like any stuck P's. Only thieves can reach them, and
  // nothing else wakes a thief.
  const int in_use = sched.nprocs.load(std::memory_order_acquire);
  const int n = sched.nallp.load(std::memory_order_acquire);
  for (int i = 0; i < n; ++i) {
    P* p = sched.allp[i];
    bool busy;
    {
      lock_guard lk(sched.lock);
      busy = p->status == pstatus::running && p->m != nullptr && p->m->curg != nullptr;
    }
    // Racy by design (Go's retake reads schedtick the same way): the owner
    // writes it plainly; a stale value only delays a retake by one tick.
    const std::uint32_t tick = __atomic_load_n(&p->schedtick, __ATOMIC_RELAXED);
    if (!busy || tick != p->sysmon_tick.load(std::memory_order_relaxed)) {
      // Relaxed: sysmon's own notes, read by dumps as hints.
      p->sysmon_tick.store(tick, std::memory_order_relaxed);
      p->sysmon_when.store(now, std::memory_order_relaxed);
      continue;
    }
    if (now - p->sysmon_when.load(std::memory_order_relaxed) <= stuck_ns) continue;
    // Its timers wait for its scheduler, which the stuck goroutine keeps
    // out; other Ms run them only when they run out of work (Go's sysmon
    // preempts the goroutine instead). Fire the due ones from here: what
    // they wake goes to the global queue.
    if (const std::int64_t due = p->timers.earliest(); due != 0 && due <= now) {
      run_due_timers(p, now);
      acted = true;
    }
    if (i < in_use) ++stuck;  // what lent Ps are for; a retiring P needs none
    if (has_work(p)) ++stuck_with_work;
  }
  if (stuck_with_work > 0) {
    if (sched.npidle.load(std::memory_order_seq_cst) == 0) {
      lock_guard resizing(sched.resize_lock);  // against set_maxprocs
      const int lent = sched.nlent.load(std::memory_order_relaxed);
      const int procs = sched.nprocs.load(std::memory_order_relaxed);
      if (lent < procs - lent && procs < max_maxprocs) {
        // Release pairs with the acquire load in set_maxprocs and maxprocs().
        sched.nlent.store(lent + 1, std::memory_order_release);
        resize_procs(procs + 1);  // wakes an M for the new P
        // A statistic (goro::sysmon_retakes): orders nothing.
        sched.sysmon_retakes.fetch_add(1, std::memory_order_relaxed);
        acted = true;
      }
    } else if (sched.nmspinning.load(std::memory_order_seq_cst) == 0) {
      wakep();
      sched.sysmon_retakes.fetch_add(1, std::memory_order_relaxed);
      acted = true;
    }
  }
  lock_guard resizing(sched.resize_lock);  // against set_maxprocs
  const int lent = sched.nlent.load(std::memory_order_relaxed);
  if (lent > stuck) {
    // Give back what is no longer needed.
    const int back = lent - stuck;
    // Release pairs with the acquire load in set_maxprocs and maxprocs().
    sched.nlent.store(lent - back, std::memory_order_release);
    resize_procs(sched.nprocs.load(std::memory_order_relaxed) - back);
    acted = true;
  }
  return acted;
}

void sysmon_main() noexcept {
  std::int64_t delay = min_delay_ns;
  int idle = 0;
  for (;;) {
    // Acquire pairs with the release increment in poke_sysmon.
    std::uint32_t seq = sched.sysmon_seq.load(std::memory_order_acquire);
    if (sched.sysmon_stop.load(std::memory_order_acquire)) return;
    if (sched.sigquit.load(std::memory_order_seq_cst) != 0) sigquit_dump();
    if (every_p_idle()) {
      sched.sysmon_idle.store(true, std::memory_order_seq_cst);
      // seq_cst pairs with pidle_get's decrement and sysmon_wake_if_idle.
      if (every_p_idle()) {
        futex_wait(&sched.sysmon_seq, seq, -1);
        sched.sysmon_idle.store(false, std::memory_order_seq_cst);
        delay = min_delay_ns;
        idle = 0;
        continue;
      }
      sched.sysmon_idle.store(false, std::memory_order_seq_cst);
    }
    futex_wait(&sched.sysmon_seq, seq, delay);
    sched.sysmon_ticks.fetch_add(1, std::memory_order_relaxed);
    const std::int64_t now = nanotime();
    // Relaxed: a timestamp gopark copies into G::wait_since; orders nothing.
    sched.coarse_now.store(now, std::memory_order_relaxed);
    bool acted;
    {
      // Runtime code (race.hpp); not around sigquit_dump, which exits.
      race_ignore no_race_checks;
      acted = retake(now);
    }
    if (acted) {
      idle = 0;
      delay = min_delay_ns;
    } else if (++idle > 50) {
      delay = std::min(delay * 2, max_delay_ns);
    }
  }
}

}  // namespace

void sysmon_wake_if_idle() noexcept {
  // seq_cst pairs with sysmon's store of sysmon_idle and re-read of npidle.
  if (!sched.sysmon_idle.load(std::memory_order_seq_cst)) return;
  if (!sched.sysmon_idle.exchange(false, std::memory_order_seq_cst)) return;
  sched.coarse_now.store(nanotime(), std::memory_order_relaxed);
  poke_sysmon();
}

void sysmon_start() {
  sched.sysmon_stop.store(false, std::memory_order_relaxed);
  sched.sigquit.store(0, std::memory_order_relaxed);
  sched.sysmon = std::thread(sysmon_main);
  struct sigaction sa {};
  sa.sa_handler = &on_sigquit;
  sa.sa_flags = SA_RESTART;
  sigemptyset(&sa.sa_mask);
  quit_installed = sigaction(SIGQUIT, &sa, &previous_quit) == 0;
}

void sysmon_stop() noexcept {
  if (quit_installed) {
    sigaction(SIGQUIT, &previous_quit, nullptr);
    quit_installed = false;
  }
  sched.sysmon_stop.store(true, std::memory_order_release);
  poke_sysmon();
  if (sched.sysmon.joinable()) sched.sysmon.join();
  // A SIGQUIT that arrived while stopping is still reported.
  if (sched.sigquit.load(std::memory_order_seq_cst) != 0) sigquit_dump();
}

}  // namespace goro::detail
