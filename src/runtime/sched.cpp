// The scheduler: Go's G/P/M model (runtime/proc.go) in C++.
//
// Every M (OS thread) runs m_loop on its own stack, the "g0" context, and
// switches from there into one goroutine at a time. A goroutine that blocks,
// yields or exits switches back to g0 with a request in M::action; g0 carries
// it out *after* the switch, when the goroutine's context is safely saved
// (that is what makes gopark's unlock-after-save possible).
//
// Finding work (find_runnable), in order: due timers of our P; every 61st
// schedule the global queue first (so it cannot starve); our P's runnext and
// run queue; the global queue; stealing half of another P's queue (and due
// timers of other Ps). An M that finds nothing releases its P and sleeps on
// its futex word.
//
// Spinning-thread protocol (Go's "Worker thread parking/unparking"): an M
// looking for work without having found any is "spinning"; nmspinning counts
// them. Whoever makes a goroutine runnable calls wakep(), which starts or
// wakes an M only if there is an idle P and no M is spinning already: a
// spinner will find the new work. A spinner that finds work stops spinning
// and, if it was the last, calls wakep() so that the remaining work still has
// a spinner. A spinner that gives up must first drop nmspinning and *then*
// look at every queue once more (seq_cst on both sides), or work submitted in
// between would be seen by nobody. This loses no wake-up, keeps at most
// about half the busy Ps' worth of threads spinning, and parks every thread
// when there is nothing to do: an idle runtime burns no CPU.
//
// Timers: one parked M at most (timer_m) sleeps with a timeout, until the
// earliest deadline over all Ps; the others sleep without one. Adding a timer
// earlier than timer_m_until wakes timer_m (or, if there is none, calls
// wakep() so that some M will re-evaluate).
//
// Around the scheduler: sysmon.cpp (the monitor thread: stuck Ps, the coarse
// clock, SIGQUIT), checkdead.cpp (deadlock detection, called from stopm),
// blocking.cpp (goro::blocking: the `requeue` action below). GORO_DEBUG modes
// (debug_flags) turn off the direct handoff and route wake-ups through
// debug_ready; migrate also moves a goroutine off the M it last ran on in
// execute().
#include "runtime/sched.hpp"

#include <cxxabi.h>
#include <pthread.h>
#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <memory>
#include <new>
#include <stdexcept>
#include <system_error>
#include <typeinfo>

#include "goro/runtime.hpp"
#include "goro/sleep.hpp"
#include "platform/clock.hpp"
#include "platform/context.hpp"
#include "platform/membarrier.hpp"
#include "platform/race.hpp"
#include "platform/sanitizer.hpp"
#include "runtime/fault.hpp"
#include "runtime/sema.hpp"

#if GORO_ASAN
#include <sanitizer/asan_interface.h>
#endif

namespace goro::detail {

sched_t sched;

namespace {

thread_local M* tls_m = nullptr;

// The P count a run() without run_options::maxprocs uses, if set_maxprocs was
// called outside run(); 0 otherwise.
std::atomic<int> default_procs_override{0};

#if defined(__clang__)
#define GORO_NOIPA __attribute__((noinline))
#else
#define GORO_NOIPA __attribute__((noinline, noipa))
#endif

eh_state* eh_globals() noexcept { return reinterpret_cast<eh_state*>(abi::__cxa_get_globals()); }

std::uint32_t fastrand(M* m) noexcept {
  // A 64-bit LCG (Knuth's MMIX constants), high half: a multiply and an add
  // on every select, where xorshift64* took twice the instructions. Its
  // high bits are uniform enough for what it picks (select's case order,
  // steal victims); the low bits are weak and never used.
  const std::uint64_t x = m->rand_state * 6364136223846793005ull + 1442695040888963407ull;
  m->rand_state = x;
  return static_cast<std::uint32_t>(x >> 32);
}

// ---------------------------------------------------------------------------
// Local run queues (Go's runqput / runqget / runqgrab / runqsteal).
//
// head is advanced by CAS by the owner and by thieves; tail is written only
// by the owner. Slots are relaxed atomics: a thief may read a slot the owner
// is about to overwrite, but then its CAS on head fails and it retries.

}  // namespace

bool runq_empty(P* p) noexcept {
  // A goroutine moving from runnext to the queue must not be missed: read
  // head, tail, runnext, and head again until stable (as Go does).
  for (;;) {
    std::uint32_t head = p->runq_head.load(std::memory_order_acquire);
    std::uint32_t tail = p->runq_tail.load(std::memory_order_acquire);
    G* next = p->runnext.load(std::memory_order_acquire);
    if (tail == p->runq_tail.load(std::memory_order_acquire))
      return head == tail && next == nullptr;
  }
}

namespace {

// Appends n goroutines to the global queue, each to its class's ring (see
// sched_t). Never allocates: the rings have room for every G record
// (grow_g_arrays).
void globrunq_put(G* const* gs, std::uint32_t n) GORO_REQUIRES(sched.lock) {
  for (std::uint32_t i = 0; i < n; ++i) {
    // Runnable and off every CPU: started is stable here.
    (gs[i]->started ? sched.runq_resumed : sched.runq_fresh).push(gs[i]);
  }
  // Release: readers of runq_size outside the lock only use it as a hint
  // and take the lock before touching the rings.
  sched.runq_size.store(
      sched.runq_size.load(std::memory_order_relaxed) + static_cast<std::int32_t>(n),
      std::memory_order_release);
}

void globrunq_put1(G* g) GORO_REQUIRES(sched.lock) { globrunq_put(&g, 1); }

// Flow control for spawning, in two steps, checked when a P spills its queue
// to the global one: with more than spawn_backlog_soft never-started
// goroutines waiting there, the goroutine spawning next on that P yields
// once (its P starts some of them); with more than spawn_backlog_hard, it
// parks until they are down to half that (globrunq_get wakes it). A spawner
// that outruns the goroutines it starts would otherwise build a backlog
// bounded only by memory, a spawn record each, all of it resident long
// after the backlog is gone. Go bounds it by preempting the spawner. The
// soft step costs a switch; parking at every spill would serialize trees of
// spawners (skynet ran 1.22x slower parking at 8192), so only a backlog
// that yielding has not held parks.
constexpr std::uint32_t spawn_backlog_soft = 1024;
constexpr std::uint32_t spawn_backlog_hard = 64 * 1024;
constexpr std::uint32_t spawn_backlog_resume = spawn_backlog_hard / 2;
constexpr std::uint8_t spawn_go_on = 0, spawn_yield = 1, spawn_park = 2;

// Moves half of p's queue plus g to the global queue. False if a thief got in
// first (the queue is no longer full: retry the fast path).
bool runqput_slow(P* p, G* g, std::uint32_t head, std::uint32_t tail) noexcept {
  constexpr std::uint32_t n = runq_capacity / 2;
  if (tail - head != runq_capacity) return false;
  G* batch[n + 1];
  for (std::uint32_t i = 0; i < n; ++i)
    batch[i] = p->runq[(head + i) % runq_capacity].load(std::memory_order_relaxed);
  // Release pairs with thieves' acquire of head: we are done reading slots.
  if (!p->runq_head.compare_exchange_strong(head, head + n, std::memory_order_release,
                                            std::memory_order_relaxed))
    return false;
  batch[n] = g;
  lock_guard lk(sched.lock);
  globrunq_put(batch, n + 1);
  const std::uint32_t fresh = sched.runq_fresh.size;
  p->spawn_backlog = fresh > spawn_backlog_hard   ? spawn_park
                     : fresh > spawn_backlog_soft ? spawn_yield
                                                  : spawn_go_on;
  return true;
}

// ---------------------------------------------------------------------------
// Taking from runnext: plain operations for the owner, membarrier for thieves
// (a biased lock whose bias a thief revokes, as in userspace RCU's
// asymmetric fences).
//
// Only a P's owner fills runnext; the owner and thieves empty it. A
// compare-and-swap per take would cost the owner a locked instruction at
// every direct handoff (about 7% of a ping-pong), while thieves take runnext
// rarely: only from a victim whose queue is empty, and after a 7 us wait. So
// the owner takes with plain loads and stores, and a thief pays instead:
//
//   owner: store(in_take, 1); if load(revoke) == 0:
//            g = load(runnext); store(runnext, null)   (the fast take)
//          store(in_take, 0); else take by compare-and-swap
//   thief: fetch_add(revoke); membarrier(); wait until load(in_take) == 0;
//          compare-and-swap runnext; fetch_sub(revoke)
//
// membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED) returns only after every CPU
// running one of our threads has executed a full barrier (a thread that is
// switched out has passed one). If the owner's load of revoke comes after
// that barrier, it sees the thief and takes by compare-and-swap, which
// excludes the thief's. If it came before, so did its store of in_take
// (program order), which the barrier made visible: the thief waits until
// the fast take is over, and its stores (runnext, then in_take, release)
// are visible in that order. Either way the two never both take one
// goroutine, and no per-goroutine state is needed (the thief reads runnext
// only after the wait, so it cannot act on a stale one). Without membarrier
// (kernels before 4.14, a seccomp filter) both sides take by
// compare-and-swap.

// The owner of p takes whatever is in p's runnext slot (nullptr if none).
[[gnu::always_inline]] inline G* runnext_take(P* p) noexcept {
  if (sched.membarrier) {
    p->runnext_in_take.store(1, std::memory_order_relaxed);
    // The compiler must keep the load after the store; the CPU may not, and
    // the thief's membarrier covers that.
    std::atomic_signal_fence(std::memory_order_seq_cst);
    if (p->runnext_revoke.load(std::memory_order_relaxed) == 0) {
      // Pairs with the release store that published g in runqput. That put
      // ran on this P (ours, or an earlier owner's, ordered by the P's
      // handover), so the acquire only keeps the pairing explicit; on x86
      // it costs nothing.
      G* g = p->runnext.load(std::memory_order_acquire);
      if (g != nullptr) p->runnext.store(nullptr, std::memory_order_relaxed);
      // Release pairs with the thief's acquire load of in_take: it sees the
      // slot emptied.
      p->runnext_in_take.store(0, std::memory_order_release);
      return g;
    }
    p->runnext_in_take.store(0, std::memory_order_release);
  }
  G* g = p->runnext.load(std::memory_order_acquire);
  // Acquire pairs with the publication of g in runqput.
  while (g != nullptr && !p->runnext.compare_exchange_weak(g, nullptr, std::memory_order_acquire,
                                                           std::memory_order_acquire)) {
  }
  return g;
}

// A thief takes g, seen in victim's runnext, if it is still there. True if
// g is now the thief's to run.
bool runnext_steal(P* victim, G* g) noexcept {
  if (!sched.membarrier) {
    return victim->runnext.compare_exchange_strong(g, nullptr, std::memory_order_acquire,
                                                   std::memory_order_relaxed);
  }
  // seq_cst: visible before the membarrier's barriers run.
  victim->runnext_revoke.fetch_add(1, std::memory_order_seq_cst);
  if (!membarrier_all_cpus())
    fatal_error("runtime: membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED) failed after registration");
  // Acquire pairs with the owner's release store of in_take = 0. A fast take
  // lasts a few instructions, unless the OS preempted the owner inside it.
  for (int spins = 0; victim->runnext_in_take.load(std::memory_order_acquire) != 0; ++spins) {
    if (spins < 64) {
      cpu_relax();
    } else {
      sched_yield();
    }
  }
  // Acquire (CAS) pairs with the publication of g in runqput.
  const bool ours = victim->runnext.compare_exchange_strong(g, nullptr, std::memory_order_acquire,
                                                            std::memory_order_relaxed);
  victim->runnext_revoke.fetch_sub(1, std::memory_order_release);
  return ours;
}

bool runqput_queue(P* p, G* g, bool next) noexcept;

// Returns false only when g went into an empty runnext slot: then nothing
// new is waiting in the stealable queue.
inline bool runqput(P* p, G* g, bool next) noexcept {
  // Only the owner fills runnext; thieves only empty it. So if it is empty
  // now it stays empty until our store: publish g with a plain release
  // store (pairs with the acquire in runnext_take and runnext_steal), no
  // read-modify-write on this hot path (inline: every wake-up takes it).
  if (next && p->runnext.load(std::memory_order_relaxed) == nullptr) {
    p->runnext.store(g, std::memory_order_release);
    return false;
  }
  return runqput_queue(p, g, next);
}

// The rest of runqput: runnext is taken (next) or not wanted.
bool runqput_queue(P* p, G* g, bool next) noexcept {
  if (next) {
    // acq_rel: publishes g (release) and takes ownership of the previous
    // runnext (acquire), which a thief may be taking at this very moment.
    G* old = p->runnext.exchange(g, std::memory_order_acq_rel);
    if (old == nullptr) return false;
    g = old;  // kick the previous runnext to the queue
  }
  for (;;) {
    // Acquire pairs with consumers' CAS on head: their slot reads are done.
    std::uint32_t head = p->runq_head.load(std::memory_order_acquire);
    std::uint32_t tail = p->runq_tail.load(std::memory_order_relaxed);
    if (tail - head < runq_capacity) {
      p->runq[tail % runq_capacity].store(g, std::memory_order_relaxed);
      // Release pairs with the acquire load of tail in runqget/runqgrab.
      p->runq_tail.store(tail + 1, std::memory_order_release);
      return true;
    }
    if (runqput_slow(p, g, head, tail)) return true;
  }
}

G* runqget(P* p) noexcept {
  if (p->runnext.load(std::memory_order_relaxed) != nullptr) {
    if (G* next = runnext_take(p)) return next;
  }
  for (;;) {
    std::uint32_t head = p->runq_head.load(std::memory_order_acquire);
    std::uint32_t tail = p->runq_tail.load(std::memory_order_acquire);
    if (tail == head) return nullptr;
    G* g = p->runq[head % runq_capacity].load(std::memory_order_relaxed);
    // Release: our slot read is done before the owner may reuse the slot.
    if (p->runq_head.compare_exchange_weak(head, head + 1, std::memory_order_release,
                                           std::memory_order_relaxed))
      return g;
  }
}

// Copies up to half of victim's queue into dst's ring starting at dst_tail.
std::uint32_t runqgrab(P* victim, P* dst, std::uint32_t dst_tail, bool steal_next) noexcept {
  for (;;) {
    std::uint32_t head = victim->runq_head.load(std::memory_order_acquire);
    std::uint32_t tail = victim->runq_tail.load(std::memory_order_acquire);
    std::uint32_t n = tail - head;
    n -= n / 2;
    if (n == 0) {
      if (!steal_next) return 0;
      G* next = victim->runnext.load(std::memory_order_acquire);
      if (next == nullptr) return 0;
      // The victim is probably about to run it (a goroutine just readied it
      // and is about to block): give it a moment, as Go does (usleep(3)), so
      // a ping-pong pair is not split across threads. Wait without reading
      // runnext meanwhile: every read pulls the victim's cache line over
      // here, and its next write of runnext (each spawn, each wake-up) must
      // take the line back.
      const std::uint32_t tick = __atomic_load_n(&victim->schedtick, __ATOMIC_RELAXED);
      for (int i = 0; i < 300; ++i) cpu_relax();
      // A victim that scheduled meanwhile is not stuck behind a long-running
      // goroutine: whatever is in its runnext now runs soon there.
      if (__atomic_load_n(&victim->schedtick, __ATOMIC_RELAXED) != tick) return 0;
      if (victim->runnext.load(std::memory_order_relaxed) != next || !runnext_steal(victim, next))
        continue;
      dst->runq[dst_tail % runq_capacity].store(next, std::memory_order_relaxed);
      return 1;
    }
    if (n > runq_capacity / 2) continue;  // read an inconsistent head/tail pair
    for (std::uint32_t i = 0; i < n; ++i) {
      G* g = victim->runq[(head + i) % runq_capacity].load(std::memory_order_relaxed);
      dst->runq[(dst_tail + i) % runq_capacity].store(g, std::memory_order_relaxed);
    }
    // acq_rel: release our slot reads to the victim, acquire its latest head.
    if (victim->runq_head.compare_exchange_strong(head, head + n, std::memory_order_acq_rel,
                                                  std::memory_order_relaxed))
      return n;
  }
}

G* runqsteal(P* p, P* victim, bool steal_next) noexcept {
  std::uint32_t tail = p->runq_tail.load(std::memory_order_relaxed);
  std::uint32_t n = runqgrab(victim, p, tail, steal_next);
  if (n == 0) return nullptr;
  --n;
  G* g = p->runq[(tail + n) % runq_capacity].load(std::memory_order_relaxed);
  if (n == 0) return g;
  // Release pairs with consumers' acquire of tail.
  p->runq_tail.store(tail + n, std::memory_order_release);
  return g;
}

// Global queue: takes up to a fair share for p, returns one and puts the rest
// on p's local queue.
G* globrunq_get(P* p, std::int32_t max) GORO_REQUIRES(sched.lock) {
  std::int32_t size = sched.runq_size.load(std::memory_order_relaxed);
  if (size == 0) return nullptr;
  std::int32_t n = size / std::max(1, sched.nprocs.load(std::memory_order_relaxed)) + 1;
  n = std::min(n, size);
  if (max > 0) n = std::min(n, max);
  n = std::min<std::int32_t>(n, runq_capacity / 2);
  sched.runq_size.store(size - n, std::memory_order_relaxed);
  const bool fresh_first = (++sched.runq_fresh_turn & 3) == 0;
  g_ring& a = fresh_first ? sched.runq_fresh : sched.runq_resumed;
  g_ring& b = fresh_first ? sched.runq_resumed : sched.runq_fresh;
  auto take = [&a, &b] { return a.size != 0 ? a.pop() : b.pop(); };
  G* g = take();
  for (std::int32_t i = 1; i < n; ++i) runqput(p, take(), false);
  a.compact();
  b.compact();
  if (sched.spawn_waiters != nullptr && sched.runq_fresh.size <= spawn_backlog_resume) {
    // The backlog has drained: the parked spawners go to the global queue,
    // where this M, about to look again after running g, finds them.
    while (G* w = sched.spawn_waiters) {
      sched.spawn_waiters = w->free_next;
      w->free_next = nullptr;
      w->status.store(gstatus::runnable, std::memory_order_relaxed);
      globrunq_put1(w);
    }
  }
  return g;
}

// ---------------------------------------------------------------------------
// Idle Ps and Ms.

void pidle_put(P* p) GORO_REQUIRES(sched.lock) {
  p->status = pstatus::idle;
  p->m = nullptr;
  p->idle_next = sched.pidle;
  sched.pidle = p;
  sched.npidle.fetch_add(1, std::memory_order_seq_cst);
}

P* pidle_get() GORO_REQUIRES(sched.lock) {
  P* p = sched.pidle;
  if (p == nullptr) return nullptr;
  sched.pidle = p->idle_next;
  p->idle_next = nullptr;
  p->status = pstatus::running;
  sched.npidle.fetch_sub(1, std::memory_order_seq_cst);
  return p;
}

void acquirep(M* m, P* p) noexcept {
  m->p = p;
  p->m = m;
  sysmon_wake_if_idle();
}

// Takes m off the idle M list.
void midle_remove(M* m) GORO_REQUIRES(sched.lock) {
  for (M** link = &sched.midle; *link != nullptr; link = &(*link)->idle_next) {
    if (*link == m) {
      *link = m->idle_next;
      break;
    }
  }
  m->idle_next = nullptr;
  m->on_idle_list = false;
  --sched.nmidle;
  ++sched.midle_gen;
}

// Takes m off the idle list and hands it p (or nothing: a poke). The caller
// must call m->park_word wake-up after dropping the lock (notify_wake).
void notify_locked(M* m, P* p, bool spinning) GORO_REQUIRES(sched.lock) {
  midle_remove(m);
  m->next_p = p;
  m->next_spinning = spinning;
  if (sched.timer_m == m) {
    sched.timer_m = nullptr;
    sched.timer_m_until.store(INT64_MAX, std::memory_order_seq_cst);
  }
  // Release pairs with the acquire load in stopm: next_p is visible.
  m->park_word.store(1, std::memory_order_release);
}

void notify_wake(M* m) noexcept { futex_wake(&m->park_word, 1); }

void m_main(M* m);

M* new_m_struct() {
  M* m = new M;
  lock_guard lk(sched.lock);
  m->id = static_cast<int>(sched.allm.size());
  m->rand_state = 0x9E3779B97F4A7C15ull * static_cast<std::uint64_t>(m->id + 1) | 1;
  sched.allm.push_back(m);
  return m;
}

[[noreturn]] void fatal_plain(const char* msg) noexcept {
  std::fprintf(stderr, "fatal error: %s\n", msg);
  std::fflush(stderr);
  _exit(2);
}

// Starts an M to run p (spinning if asked).
}  // namespace

//
// A new M is made and its thread started under sched.lock, and not at all
// once the runtime is stopping: run() copies sched.allm under the lock after
// `stopping` is set and joins every thread in the copy, so an M started
// later (a blocking() handoff, GORO_DEBUG=migrate, a last wakep) would be
// deleted with a joinable thread (std::terminate) or never joined.
void startm(P* p, bool spinning) noexcept {
  M* m = nullptr;
  {
    lock_guard lk(sched.lock);
    m = sched.midle;
    if (m != nullptr) {
      notify_locked(m, p, spinning);
    } else if (sched.stopping.load(std::memory_order_relaxed)) {
      // Shutting down: nobody needs the P any more.
      if (spinning) sched.nmspinning.fetch_sub(1, std::memory_order_seq_cst);
      return;
    } else {
      try {
        M* nm = new M;
        nm->id = static_cast<int>(sched.allm.size());
        nm->rand_state = 0x9E3779B97F4A7C15ull * static_cast<std::uint64_t>(nm->id + 1) | 1;
        sched.allm.push_back(nm);
        nm->next_p = p;
        nm->next_spinning = spinning;
        // m_main takes sched.lock first thing, so it waits for us.
        nm->thread = std::thread(m_main, nm);
      } catch (...) {
        fatal_plain("runtime: failed to create new OS thread");
      }
      return;
    }
  }
  notify_wake(m);
}

namespace {

// Makes sure some M will look for the work just made runnable: wakes one if
// there is an idle P and nobody is spinning.
}  // namespace

void wakep() noexcept {
  if (sched.npidle.load(std::memory_order_seq_cst) == 0) return;
  if (sched.nmspinning.load(std::memory_order_seq_cst) != 0) return;
  std::int32_t zero = 0;
  if (!sched.nmspinning.compare_exchange_strong(zero, 1, std::memory_order_seq_cst)) return;
  P* p;
  {
    lock_guard lk(sched.lock);
    p = pidle_get();
  }
  if (p == nullptr) {
    sched.nmspinning.fetch_sub(1, std::memory_order_seq_cst);
    return;
  }
  startm(p, true);
}

namespace {

void reset_spinning(M* m) noexcept {
  m->spinning = false;
  // The last spinner to find work wakes another, so leftover work is seen.
  if (sched.nmspinning.fetch_sub(1, std::memory_order_seq_cst) == 1) wakep();
}

// ---------------------------------------------------------------------------
// Timers.

}  // namespace

std::int64_t earliest_timer() noexcept {
  std::int64_t best = 0;
  const int n = sched.nallp.load(std::memory_order_acquire);
  for (int i = 0; i < n; ++i) {
    std::int64_t w = sched.allp[i]->timers.earliest();
    if (w != 0 && (best == 0 || w < best)) best = w;
  }
  return best;
}

namespace {

void rearm_periodic(timer* t) noexcept;
struct sleep_rec;
void wake_sleeper(sleep_rec* r) noexcept;

// Runs the due timers of pp. Returns true if any fired. One timer at a time:
// a fire() may stop other timers (a context deadline stops its
// descendants'), and timer_stop waits for a popped timer to finish firing,
// so this M must never hold a popped timer that it has not fired yet.
bool run_timers(P* pp, std::int64_t now) noexcept {
  const std::int64_t first = pp->timers.earliest();
  if (first == 0 || first > now) return false;
  bool fired = false;
  for (;;) {
    pp->timers.lock.lock();
    const timer_heap::popped due = pp->timers.pop_expired(now);
    pp->timers.lock.unlock();
    if (!due) return fired;
    // The next entry is often due too (deadlines bunch up): start fetching
    // it (for a sleeper, its stack page) while this one fires.
    if (due.next != nullptr) __builtin_prefetch(due.next, 1, 3);
    fired = true;
    if (due.sleeper != nullptr) {
      wake_sleeper(static_cast<sleep_rec*>(due.sleeper));
      continue;
    }
    timer* t = due.t;
    const bool self_clearing = t->fire_clears_busy;  // read before t may go
    t->fire(t);
    if (self_clearing) {
      // fire() ended the busy state itself; t may be gone.
    } else if (t->period > 0) {
      rearm_periodic(t);
    } else {
      // Release pairs with timer_stop's acquire: fire() is over.
      t->busy.store(0, std::memory_order_release);
    }
  }
}

}  // namespace

bool run_due_timers(P* p, std::int64_t now) noexcept { return run_timers(p, now); }

namespace {

bool run_all_timers(std::int64_t now) noexcept {
  bool fired = false;
  const int n = sched.nallp.load(std::memory_order_acquire);
  for (int i = 0; i < n; ++i) fired |= run_timers(sched.allp[i], now);
  return fired;
}

// A timer due at `when` was just added: make sure some M will wake for it.
void timer_added(std::int64_t when) noexcept {
  // seq_cst fence: our heap insert (when0 store) must be ordered before the
  // loads below, against an M that drops nmspinning and then rescans timers.
  std::atomic_thread_fence(std::memory_order_seq_cst);
  const std::int64_t until = sched.timer_m_until.load(std::memory_order_seq_cst);
  if (when >= until) return;
  if (until == INT64_MAX) {
    wakep();
    return;
  }
  M* woken = nullptr;
  {
    lock_guard lk(sched.lock);
    if (sched.timer_m != nullptr && when < sched.timer_m_until.load(std::memory_order_relaxed)) {
      woken = sched.timer_m;
      notify_locked(woken, nullptr, false);
    }
  }
  if (woken != nullptr) notify_wake(woken);
}

// ---------------------------------------------------------------------------
// Switching.

void g_entry(void* arg, void* data);

// On g0: run g until a goroutine switches back to us, and return that one:
// g itself, or, if g parked by handing the thread straight to another
// goroutine (gopark), the last goroutine of that chain.
G* run_g(M* m, G* g) noexcept {
  m->curg = g;
  g->m.store(m, std::memory_order_relaxed);
  eh_state* eh = m->eh;
  m->g0_eh = *eh;
  *eh = g->eh;
#if GORO_ASAN
  __sanitizer_start_switch_fiber(&m->g0_asan_fake, g->stack_lo,
                                 static_cast<std::size_t>(g->stack_hi - g->stack_lo));
#endif
#if GORO_TSAN
  __tsan_switch_to_fiber(g->tsan_fiber, 1 /* no_sync: see race.hpp */);
#endif
  goro_switch_known_fp(&m->g0_sp, g->sp, nullptr, m->g0_fp_words);
#if GORO_ASAN
  __sanitizer_finish_switch_fiber(m->g0_asan_fake, nullptr, nullptr);
#endif
  // The goroutine restored our exception state before switching back.
  G* back = m->curg;
  m->curg = nullptr;
  return back;
}

void finish_handoff(M* m) noexcept;
void resumed(G* g) noexcept;

// On a goroutine: switch to the scheduler context of the M running it. Returns
// when the goroutine is resumed, possibly by another M.
void switch_to_g0(G* g, M* m, bool exiting) noexcept {
  eh_state* eh = m->eh;
  g->eh = *eh;
  *eh = m->g0_eh;
#if GORO_ASAN
  __sanitizer_start_switch_fiber(exiting ? nullptr : &g->asan_fake_stack, m->g0_stack_bottom,
                                 m->g0_stack_size);
#endif
#if GORO_TSAN
  __tsan_switch_to_fiber(m->g0_tsan_fiber, 1 /* no_sync: see race.hpp */);
#endif
  if (exiting) {
    // g's control words are not needed again: skip reading them, and make
    // g0's load whatever g left in force.
    goro_switch_known_fp(&g->sp, m->g0_sp, nullptr, forced_fp_load);
  } else {
    goro_switch(&g->sp, m->g0_sp, nullptr);
  }
  resumed(g);
}

// On a goroutine, right after its context was loaded again: by g0, or by
// another goroutine that parked and handed this thread to it directly.
void resumed(G* g) noexcept {
  M* now_on = current_m();
#if GORO_ASAN
  if (now_on->handoff_from != nullptr) {
    __sanitizer_finish_switch_fiber(g->asan_fake_stack, nullptr, nullptr);
  } else {
    __sanitizer_finish_switch_fiber(g->asan_fake_stack, &now_on->g0_stack_bottom,
                                    &now_on->g0_stack_size);
  }
#else
  (void)g;
#endif
  if (now_on->handoff_from != nullptr) finish_handoff(now_on);
}

[[noreturn]] void goexit(G* g) noexcept {
  // The next goroutine on this stack is ordered after us (race.hpp); so is
  // run()'s return after the main goroutine's.
  race_release(g->stack_lo);
  if (g->is_main) race_release(&sched.running);
  M* m = current_m();
  m->action = after_switch::exit;
  switch_to_g0(g, m, true);
  __builtin_unreachable();
}

void g_entry(void*, void* data) {
  G* g = static_cast<G*>(data);
#if GORO_ASAN
  {
    M* m = current_m();
    __sanitizer_finish_switch_fiber(nullptr, &m->g0_stack_bottom, &m->g0_stack_size);
  }
#endif
  race_acquire(g);            // spawn happens before the goroutine starts
  race_acquire(g->stack_lo);  // after the last goroutine that used this stack
  try {
    g->ops->run(g->closure);
  } catch (...) {
    fatal_escaped_exception(g);
  }
  g->ops->destroy(g->closure);
  goexit(g);
}

// ---------------------------------------------------------------------------
// G records and stacks.
//
// A goroutine has two records in its life. Spawning fills a spawn record:
// a G from a dense arena (chunks of g_chunk_size, recycled through the
// gfree arrays) holding the closure and the identity, and nothing else; a
// spawner that outruns its consumers queues spawn records by the hundred
// thousand (skynet, timers), and at 192 bytes each they cost little. At its
// first run (start_g) the goroutine moves into a goroutine record at the top
// of a stack of its own: the closure is relocated into it, the identity
// copied, and the spawn record is free again. The goroutine record stays
// with its stack for good: both are freed together (to the sgfree arrays,
// never to the OS before shutdown) and reused together. So a started
// goroutine with shallow frames costs exactly one page, and waking it
// touches one page. stack_lo == nullptr marks a spawn record.
//
// Neither kind is freed before shutdown: diagnostics may read any record
// racily. Registries: the arena chunks (sched.gchunks) and the list of
// goroutine records (sched.allg).

void free_closure(G* g) noexcept {
  if (g->heap_closure)
    ::operator delete (g->closure, std::align_val_t{std::size_t{1} << g->heap_align_shift});
  g->closure = nullptr;
  g->heap_closure = false;
  g->ops = nullptr;
}

// A fresh stack for a new goroutine record: from the per-P cache (Go's
// stackcache) for the default class, which takes a batch from the pool at a
// time (one pool lock per batch, and marker slabs install a batch's guards
// with one system call); from the pool directly otherwise.
stack acquire_stack(P* p, std::size_t size_class) noexcept {
  if (p == nullptr || size_class != default_stack_class()) return stack_alloc(size_class);
  if (p->nstack_cache == 0) {
    p->nstack_cache = static_cast<int>(
        stack_alloc_batch(size_class, p->stack_cache, P::stack_cache_capacity / 2));
    if (p->nstack_cache == 0) return {};
  }
  return p->stack_cache[--p->nstack_cache];
}

// Makes room in the global run queue and both free arrays for every record
// (spawn and goroutine records together) once `want` exist, and counts them.
// Allocates outside the locks, then swaps the arrays in. Throws
// std::bad_alloc (nothing changed then). Caller holds gchunk_lock.
void grow_g_arrays(std::size_t want) GORO_REQUIRES(sched.gchunk_lock) {
  const std::size_t cap = sched.garray_cap;
  if (cap < want) {
    std::size_t ncap = std::max<std::size_t>(cap * 2, 1024);
    while (ncap < want) ncap *= 2;
    if (ncap > (std::size_t{1} << 31)) throw std::bad_alloc();
    // Large arrays come straight from mmap: pages nobody writes cost nothing.
    std::unique_ptr<G*[]> resumed(new G*[ncap]);
    std::unique_ptr<G*[]> fresh(new G*[ncap]);
    std::unique_ptr<G*[]> free_spawn(new G*[ncap]);
    std::unique_ptr<G*[]> free_started(new G*[ncap]);
    G** old_resumed;
    G** old_fresh;
    G** old_free_spawn;
    G** old_free_started;
    {
      lock_guard lk(sched.lock);
      auto move_to = [ncap](g_ring& r, G** slots) {
        for (std::uint32_t i = 0; i < r.size; ++i) slots[i] = r.slots[(r.first + i) & r.mask];
        G** old = r.slots;
        r.slots = slots;
        r.mask = static_cast<std::uint32_t>(ncap - 1);
        r.first = 0;
        return old;
      };
      old_resumed = move_to(sched.runq_resumed, resumed.release());
      old_fresh = move_to(sched.runq_fresh, fresh.release());
    }
    {
      lock_guard lk(sched.gfree_lock);
      std::copy(sched.gfree, sched.gfree + sched.ngfree, free_spawn.get());
      old_free_spawn = sched.gfree;
      sched.gfree = free_spawn.release();
      std::copy(sched.sgfree, sched.sgfree + sched.nsgfree, free_started.get());
      old_free_started = sched.sgfree;
      sched.sgfree = free_started.release();
    }
    delete[] old_resumed;
    delete[] old_fresh;
    delete[] old_free_spawn;
    delete[] old_free_started;
    sched.garray_cap = ncap;
  }
  sched.gcount = want;
}

// The free arrays of one kind of record (a template argument, so each
// kind's code is as if written for it): spawn records (P::gfree,
// sched.gfree) or goroutine records of the default stack class (P::sgfree,
// sched.sgfree). Each global array has room for every record of its kind.
struct global_free {
  G** arr;
  std::size_t& n;
};
template <bool spawn_records>
global_free global_free_of() GORO_REQUIRES(sched.gfree_lock) {
  if constexpr (spawn_records) return {sched.gfree, sched.ngfree};
  return {sched.sgfree, sched.nsgfree};
}

// Frees a record of the kind given to p's array (its older half moving to
// the global array when full), or off a P to the global array.
template <bool spawn_records>
void put_free(P* p, G* g) noexcept {
  g->status.store(gstatus::idle, std::memory_order_relaxed);
  if (p == nullptr) {
    lock_guard lk(sched.gfree_lock);
    global_free global = global_free_of<spawn_records>();
    global.arr[global.n++] = g;
    return;
  }
  G** local = spawn_records ? p->gfree : p->sgfree;  // folded at compile time
  int& nlocal = spawn_records ? p->ngfree : p->nsgfree;
  local[nlocal++] = g;
  if (nlocal < P::gfree_capacity) return;
  constexpr int half = P::gfree_capacity / 2;
  {
    lock_guard lk(sched.gfree_lock);
    global_free global = global_free_of<spawn_records>();
    std::copy(local, local + half, global.arr + global.n);
    global.n += half;
  }
  std::copy(local + half, local + P::gfree_capacity, local);
  nlocal -= half;
}

// Frees a spawn record.
void spawn_rec_put(P* p, G* rec) noexcept { put_free<true>(p, rec); }

// Frees a goroutine record (with its stack); one of a non-default stack
// class goes to its class's global list.
void started_g_put(P* p, G* g) noexcept {
  if (g->stack_class() == default_stack_class()) {
    put_free<false>(p, g);
    return;
  }
  g->status.store(gstatus::idle, std::memory_order_relaxed);
  lock_guard lk(sched.gfree_lock);
  g->free_next = sched.gfree_other[g->stack_shift];
  sched.gfree_other[g->stack_shift] = g;
}

// Starts moving the first `lines` cache lines of a record into this core's
// cache, for writing. A prefetch never faults, so a stale pointer costs
// nothing but the fetch.
template <int lines>
inline void prefetch_record(const G* g) noexcept {
  const char* rec = reinterpret_cast<const char*>(g);
  for (int i = 0; i < lines; ++i) __builtin_prefetch(rec + 64 * i, 1, 3);
}
// A spawn or goroutine record's first three lines (scheduling state,
// identity, inline closure).
inline void prefetch_g_record(const G* g) noexcept { prefetch_record<3>(g); }

// Takes a record of the kind given from p's array, refilling it with half
// a cache from the global array when empty (off a P: from the global array);
// nullptr if there is none.
template <bool spawn_records>
G* take_free(P* p) noexcept {
  if (p == nullptr) {
    lock_guard lk(sched.gfree_lock);
    global_free global = global_free_of<spawn_records>();
    return global.n > 0 ? global.arr[--global.n] : nullptr;
  }
  G** local = spawn_records ? p->gfree : p->sgfree;  // folded at compile time
  int& nlocal = spawn_records ? p->ngfree : p->nsgfree;
  if (nlocal == 0) {
    lock_guard lk(sched.gfree_lock);
    global_free global = global_free_of<spawn_records>();
    const std::size_t n = std::min<std::size_t>(global.n, P::gfree_capacity / 2);
    global.n -= n;
    std::copy(global.arr + global.n, global.arr + global.n + n, local);
    nlocal = static_cast<int>(n);
  }
  if (nlocal == 0) return nullptr;
  G* g = local[--nlocal];
  // The next one, probably last written by another core: start moving it.
  if (nlocal > 0) prefetch_g_record(local[nlocal - 1]);
  return g;
}

// A free spawn record: from p's cache, the global array, or a new chunk (the
// one step that may throw std::bad_alloc).
G* spawn_rec_get(P* p) {
  if (G* rec = take_free<true>(p)) return rec;
  {
    lock_guard lk(sched.allgs_lock);
    if (!sched.gchunks.empty() && sched.gchunk_used < g_chunk_size)
      return &sched.gchunks.back()[sched.gchunk_used++];
  }
  lock_guard grow(sched.gchunk_lock);
  {
    // Another thread may have added a chunk meanwhile.
    lock_guard lk(sched.allgs_lock);
    if (!sched.gchunks.empty() && sched.gchunk_used < g_chunk_size)
      return &sched.gchunks.back()[sched.gchunk_used++];
  }
  auto chunk = std::make_unique<G[]>(g_chunk_size);
  grow_g_arrays(sched.gcount + g_chunk_size);
  lock_guard lk(sched.allgs_lock);
  sched.gchunks.push_back(chunk.get());  // may throw: the arrays just stay larger
  sched.gchunk_used = 1;
  return chunk.release();
}

// Where a new goroutine record goes in its stack: at the top, shifted down
// by a multiple of 64 bytes that varies from stack to stack. Stacks sit a
// power of two apart, so unshifted every record (and every goroutine's first
// frames) would fall in the same cache sets, which hold 8 lines each.
char* record_place(const stack& s) noexcept {
  constexpr std::size_t colors = 16;
  const auto index = reinterpret_cast<std::uintptr_t>(s.hi) / s.size;
  return s.hi - sizeof(G) - 64 * (index % colors);
}

// A new goroutine record, built in a fresh stack of size_class and linked
// into the registry; nullptr if the OS refuses the memory.
G* new_started_g(P* p, std::size_t size_class) noexcept {
  const stack s = acquire_stack(p, size_class);
  if (!s) return nullptr;
  {
    lock_guard grow(sched.gchunk_lock);
    try {
      grow_g_arrays(sched.gcount + 1);
    } catch (...) {
      stack_free(s);
      return nullptr;
    }
  }
  static_assert(sizeof(G) % 64 == 0 && alignof(G) == 64);
  char* at = record_place(s);
#if GORO_ASAN
  __asan_unpoison_memory_region(at, sizeof(G));
#endif
  G* g = ::new (at) G;
  g->stack_lo = s.lo;
  g->stack_hi = at;
  g->stack_guarded = s.guarded;
  g->stack_shift = static_cast<std::uint8_t>(std::countr_zero(size_class));
  lock_guard lk(sched.allgs_lock);
  g->allg_next = sched.allg.load(std::memory_order_relaxed);
  // Release pairs with the acquire load of walkers (dumps, teardown).
  sched.allg.store(g, std::memory_order_release);
  return g;
}

// A free goroutine record with a stack of size_class, or a new one; fatal
// if the OS refuses the memory.
G* started_g_get(P* p, std::size_t size_class) noexcept {
  G* g = nullptr;
  if (size_class != default_stack_class()) {
    const auto shift = static_cast<std::size_t>(std::countr_zero(size_class));
    lock_guard lk(sched.gfree_lock);
    if ((g = sched.gfree_other[shift]) != nullptr) {
      sched.gfree_other[shift] = g->free_next;
      g->free_next = nullptr;
    }
  } else {
    g = take_free<false>(p);
  }
  if (g == nullptr) g = new_started_g(p, size_class);
  if (g == nullptr) fatal_plain("runtime: out of memory: cannot allocate a goroutine stack");
  return g;
}

std::uint64_t new_goid(P* p) noexcept {
  if (p == nullptr) return sched.next_goid.fetch_add(1, std::memory_order_relaxed);
  if (p->goid_next == p->goid_end) {
    constexpr std::uint64_t batch = 16;
    p->goid_next = sched.next_goid.fetch_add(batch, std::memory_order_relaxed);
    p->goid_end = p->goid_next + batch;
  }
  return p->goid_next++;
}

// On g0, before a goroutine's first run: moves it from its spawn record
// into a goroutine record (see above), gives it its first frame, and frees
// the spawn record. Returns the goroutine record.
G* start_g(P* p, G* rec) noexcept {
  G* g = started_g_get(p, rec->stack_class());
  race_acquire(rec);  // the spawn (spawn_commit) ...
  // The spawn record drops out of dumps before the goroutine record shows.
  rec->status.store(gstatus::idle, std::memory_order_relaxed);
  g->id = rec->id;
  g->site = rec->site;
  g->is_main = rec->is_main;
  std::swap(g->name_buf, rec->name_buf);  // each record keeps a buffer it has
  g->ops = rec->ops;
  g->heap_closure = rec->heap_closure;
  g->heap_align_shift = rec->heap_align_shift;
  if (rec->heap_closure) {
    g->closure = rec->closure;
  } else {
    g->closure = g->inline_closure;
    rec->ops->relocate(rec->closure, g->inline_closure);
  }
  g->reason = wait_reason::none;
  rec->ops = nullptr;
  rec->closure = nullptr;
  rec->heap_closure = false;
  rec->is_main = false;
  spawn_rec_put(p, rec);
#if GORO_ASAN
  __asan_unpoison_memory_region(g->stack_lo, static_cast<std::size_t>(g->stack_hi - g->stack_lo));
#endif
#if GORO_TSAN
  g->tsan_fiber = __tsan_create_fiber(0);
#endif
  race_release(g);  // ... happens before the goroutine starts (g_entry)
  g->sp = make_context(g->stack_hi, &g_entry, g);
  g->central_read_hint = nullptr;  // not the previous goroutine's (rw_mutex.cpp)
  g->started = true;
  return g;
}

// On g0, after g exited.
void destroy_g(M* m, G* g) noexcept {
#if GORO_TSAN
  __tsan_destroy_fiber(g->tsan_fiber);
  g->tsan_fiber = nullptr;
#endif
  g->status.store(gstatus::dead, std::memory_order_relaxed);
  g->m.store(nullptr, std::memory_order_relaxed);
  free_closure(g);
  g->started = false;
  g->sp = nullptr;
  g->eh = {};
#if GORO_ASAN
  g->asan_fake_stack = nullptr;
#endif
  P* p = m->p;
  // Relaxed load + store: only the owner writes its counters.
  p->exited.store(p->exited.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  const bool was_main = g->is_main;
  g->is_main = false;
  started_g_put(p, g);
  if (was_main) {
    // Go's main returned: stop every M.
    sched.stopping.store(true, std::memory_order_seq_cst);
    std::vector<M*> woken;
    {
      lock_guard lk(sched.lock);
      while (M* idle = sched.midle) {
        notify_locked(idle, nullptr, false);
        woken.push_back(idle);
      }
    }
    for (M* w : woken) notify_wake(w);
  }
}

void check_stack(G* g) noexcept {
  if (static_cast<char*>(g->sp) < g->stack_lo ||
      (!g->stack_guarded && !stack_canary_intact(g->stack_mem())))
    fatal_goroutine_stack_overflow(g);
}

// ---------------------------------------------------------------------------
// The scheduler loop.

void retire_p(M* m) noexcept;

// Looks for stealable work on other Ps; also runs their due timers.
G* steal_work(M* m, P* p) noexcept {
  const int n = sched.nallp.load(std::memory_order_acquire);
  constexpr int tries = 4;
  for (int attempt = 0; attempt < tries; ++attempt) {
    const bool last = attempt == tries - 1;
    const std::uint32_t start = fastrand(m);
    for (int k = 0; k < n; ++k) {
      if (sched.stopping.load(std::memory_order_relaxed)) return nullptr;
      P* victim =
          sched.allp[(start + static_cast<std::uint32_t>(k)) % static_cast<std::uint32_t>(n)];
      if (victim == p) continue;
      if (last && run_timers(victim, nanotime())) {
        if (G* g = runqget(p)) return g;
      }
      if (G* g = runqsteal(p, victim, last)) return g;
    }
  }
  return nullptr;
}

// Sleeps until handed a P, poked, or (if until != 0) the deadline passes.
void stopm(M* m, std::int64_t until) noexcept {
  bool timed = false;
  std::uint64_t dead_gen = 0;
  {
    lock_guard lk(sched.lock);
    if (sched.stopping.load(std::memory_order_relaxed)) return;
    m->park_word.store(0, std::memory_order_relaxed);
    m->next_p = nullptr;
    m->idle_next = sched.midle;
    sched.midle = m;
    m->on_idle_list = true;
    ++sched.nmidle;
    // Every M idle and no timer anywhere to wake one: maybe a deadlock.
    if (until == 0 && sched.nmidle == static_cast<std::int32_t>(sched.allm.size()))
      dead_gen = sched.midle_gen + 1;  // + 1: 0 means "no check"
    if (until != 0 && until < sched.timer_m_until.load(std::memory_order_relaxed)) {
      // We wake earlier than the current timer M, if any: take its place (it
      // keeps its own, later timeout, and is just no longer the one pokes go to).
      sched.timer_m = m;
      sched.timer_m_until.store(until, std::memory_order_seq_cst);
      timed = true;
    }
  }
  if (dead_gen != 0) checkdead(dead_gen - 1);
  for (;;) {
    std::int64_t timeout = -1;
    if (timed) {
      const std::int64_t now = nanotime();
      if (now >= until) break;
      timeout = until - now;
    }
    futex_wait(&m->park_word, 0, timeout);
    // Acquire pairs with the release store in notify_locked.
    if (m->park_word.load(std::memory_order_acquire) == 1) break;
  }
  P* p;
  bool spinning;
  {
    lock_guard lk(sched.lock);
    if (m->on_idle_list) midle_remove(m);  // timed out: nobody took us off
    if (sched.timer_m == m) {
      sched.timer_m = nullptr;
      sched.timer_m_until.store(INT64_MAX, std::memory_order_seq_cst);
    }
    p = m->next_p;
    spinning = m->next_spinning;
    m->next_p = nullptr;
    m->next_spinning = false;
  }
  if (p != nullptr) {
    acquirep(m, p);
    m->spinning = spinning;
  }
}

// The watch: a spinning M that found nothing holds on to its P (and its
// place in nmspinning) for idle_spin_ns before it gives the P up and sleeps.
// Meanwhile a goroutine made runnable (a woken one displacing runnext, a
// spawn) costs its waker no futex wake-up, as wakep sees a spinner, and this
// M no futex sleep. It takes work from the global queue and due timers at
// once, but leaves goroutines queued on another P to their owner until the
// watch ends (then find_runnable's re-check steals them): like the patience
// before stealing runnext, this keeps goroutines that pass messages on the
// P they share, where each would otherwise be woken on another thread.
// select2 made 1,400-2,500 futex calls per million operations without the
// watch, 70-80 with it; with the watch ending on other Ps' queued work it
// ran 0.89x (9 rounds), with the watch as it is 0.85x of that (7 rounds).
// mutex: 1.03-1.08x with the first form; 1.006x against that first form and
// 1.042x against no watch at all with this one (7 rounds each; mutex's
// rounds scatter by 0.7-1.3 on these machines). The price: at most idle_spin_ns of
// CPU per idle spell of an M, and work queued on a busy P meanwhile waits
// as long before it is stolen. An idle runtime still sleeps.
constexpr std::int64_t idle_spin_ns = 10'000;

// Watches for idle_spin_ns, taking nothing: true as soon as the global
// queue has work, a timer falls due or the runtime stops (the caller looks
// again), false when the time runs out. Relaxed loads: a stale value costs
// at most one more lap, and find_runnable's own checks are the ordered ones.
bool idle_spin() noexcept {
  const std::int64_t until = nanotime() + idle_spin_ns;
  const std::int64_t timer_at = earliest_timer();
  for (;;) {
    for (int i = 0; i < 32; ++i) cpu_relax();
    if (sched.stopping.load(std::memory_order_relaxed)) return true;
    if (sched.runq_size.load(std::memory_order_relaxed) > 0) return true;
    const std::int64_t now = nanotime();
    if (timer_at != 0 && now >= timer_at) return true;
    if (now >= until) return false;
  }
}

// Blocks until there is a goroutine to run; nullptr once the runtime stops.
G* find_runnable(M* m) noexcept {
  bool watched = false;  // idle_spin runs once per call
  for (;;) {
    if (sched.stopping.load(std::memory_order_acquire)) return nullptr;
    P* p = m->p;
    if (p == nullptr) {
      // Woken without a P (a timer deadline or a poke): take an idle one if
      // there is one, else sleep until someone hands us one.
      {
        lock_guard lk(sched.lock);
        p = pidle_get();
      }
      if (p == nullptr) {
        stopm(m, 0);
        continue;
      }
      acquirep(m, p);
    }
    if (p->id >= sched.nprocs.load(std::memory_order_acquire)) {
      retire_p(m);
      continue;
    }
    if (p->timers.earliest() != 0) run_timers(p, nanotime());

    const bool global_first = p->schedtick % 61 == 0 ||
                              ((sched.debug_flags & debug_shuffle) != 0 && (fastrand(m) & 1) != 0);
    if (global_first && sched.runq_size.load(std::memory_order_acquire) > 0) {
      lock_guard lk(sched.lock);
      if (G* g = globrunq_get(p, 1)) return g;
    }
    if (G* g = runqget(p)) return g;
    if (sched.runq_size.load(std::memory_order_acquire) > 0) {
      lock_guard lk(sched.lock);
      if (G* g = globrunq_get(p, 0)) return g;
    }
    const std::int32_t busy =
        sched.nprocs.load(std::memory_order_relaxed) - sched.npidle.load(std::memory_order_relaxed);
    if (m->spinning || 2 * sched.nmspinning.load(std::memory_order_relaxed) < busy) {
      if (!m->spinning) {
        m->spinning = true;
        sched.nmspinning.fetch_add(1, std::memory_order_seq_cst);
      }
      if (G* g = steal_work(m, p)) return g;
    }
    if (run_all_timers(nanotime())) continue;
    if (m->spinning && !watched) {
      watched = true;
      if (idle_spin()) continue;
    }

    // Nothing to do: give up the P.
    {
      lock_guard lk(sched.lock);
      if (sched.stopping.load(std::memory_order_relaxed)) return nullptr;
      if (sched.runq_size.load(std::memory_order_relaxed) > 0) {
        if (G* g = globrunq_get(p, 0)) return g;
      }
      if (!runq_empty(p)) continue;
      m->p = nullptr;
      pidle_put(p);
    }
    const bool was_spinning = m->spinning;
    if (m->spinning) {
      m->spinning = false;
      // seq_cst: drop nmspinning, *then* look at every queue again.
      sched.nmspinning.fetch_sub(1, std::memory_order_seq_cst);
    }
    // Re-check everything now that we hold no P and are not spinning.
    P* again = nullptr;
    {
      lock_guard lk(sched.lock);
      if (sched.runq_size.load(std::memory_order_relaxed) > 0) again = pidle_get();
    }
    if (again == nullptr) {
      const int n = sched.nallp.load(std::memory_order_acquire);
      for (int i = 0; i < n && again == nullptr; ++i) {
        P* other = sched.allp[i];
        if (other->id < sched.nprocs.load(std::memory_order_relaxed) && !runq_empty(other)) {
          lock_guard lk(sched.lock);
          again = pidle_get();
          break;
        }
      }
    }
    if (again != nullptr) {
      acquirep(m, again);
      if (was_spinning) {
        m->spinning = true;
        sched.nmspinning.fetch_add(1, std::memory_order_seq_cst);
      }
      continue;
    }
    const std::int64_t until = earliest_timer();
    if (until != 0 && until <= nanotime()) {
      // A timer is already due: take a P back and run it.
      continue;
    }
    stopm(m, until);
  }
}

void execute(M* m, G* g) noexcept {
  P* p = m->p;
  ++p->schedtick;
  if ((sched.debug_flags & debug_migrate) != 0 && g->started &&
      g->m.load(std::memory_order_relaxed) == m) [[unlikely]] {
    // GORO_DEBUG=migrate: g last ran on this thread. Hand the P, with g
    // next in line, to another M and look for work without a P.
    runqput(p, g, true);
    {
      lock_guard lk(sched.lock);
      m->p = nullptr;
      p->m = nullptr;
    }
    startm(p, false);
    return;
  }
  for (;;) {
    if (!g->started) g = start_g(p, g);
    g->status.store(gstatus::running, std::memory_order_relaxed);
    g = run_g(m, g);
    check_stack(g);
    const after_switch action = m->action;
    m->action = after_switch::none;
    switch (action) {
      case after_switch::park: {
        bool (*commit)(void*) = m->commit;
        void* arg = m->commit_arg;
        m->commit = nullptr;
        m->commit_arg = nullptr;
        // Waiting before the commit releases the queue lock: once another M
        // can find g it may make it runnable at any moment.
        g->status.store(gstatus::waiting, std::memory_order_release);
        if (commit != nullptr && !commit(arg)) continue;  // resume g at once
        return;
      }
      case after_switch::yield:
        g->status.store(gstatus::runnable, std::memory_order_relaxed);
        runqput(m->p, g, false);
        return;
      case after_switch::exit:
        destroy_g(m, g);
        return;
      case after_switch::requeue: {
        // Back from goro::blocking() without a P (blocking.cpp): queue g
        // globally; this M looks for a P in find_runnable.
        g->status.store(gstatus::runnable, std::memory_order_relaxed);
        {
          lock_guard lk(sched.lock);
          globrunq_put1(g);
        }
        wakep();
        return;
      }
      case after_switch::none:
        fatal_plain("runtime: goroutine switched to the scheduler without a reason");
    }
  }
}

// The goroutine that will probably run after the one about to: its record
// was usually last written on another core (the spawner's or a thief's), so
// start moving the lines execute() reads and run_g() writes (the first
// three: scheduling state, identity, inline closure) while the current one
// runs. Owner-side relaxed peeks: a stale answer (a thief took it) is still
// a G record, never freed before shutdown, and a prefetch never faults.
void prefetch_next_g(const P* p) noexcept {
  const G* next = p->runnext.load(std::memory_order_relaxed);
  if (next == nullptr) {
    const std::uint32_t head = p->runq_head.load(std::memory_order_relaxed);
    if (head == p->runq_tail.load(std::memory_order_relaxed)) return;
    next = p->runq[head % runq_capacity].load(std::memory_order_relaxed);
  }
  prefetch_g_record(next);
}

void schedule_loop(M* m) noexcept {
  for (;;) {
    G* g = find_runnable(m);
    if (g == nullptr) break;
    if (m->spinning) reset_spinning(m);
    prefetch_next_g(m->p);
    execute(m, g);
  }
  if (m->spinning) {
    m->spinning = false;
    sched.nmspinning.fetch_sub(1, std::memory_order_seq_cst);
  }
  if (P* p = m->p) {
    lock_guard lk(sched.lock);
    m->p = nullptr;
    p->m = nullptr;
  }
}

// Moves every timer of p (a P taken away by set_maxprocs) to P 0, which
// always stays. Returns the earliest deadline moved, 0 if none. Takes one
// heap lock at a time, so no order between P timer locks is needed.
std::int64_t move_timers_to_p0(P* p) noexcept {
  P* dst = sched.allp[0];
  std::int64_t earliest = 0;
  for (;;) {
    p->timers.lock.lock();
    const timer_heap::popped due = p->timers.pop();
    p->timers.lock.unlock();
    if (!due) return earliest;
    dst->timers.lock.lock();
    try {
      dst->timers.push(due);
    } catch (...) {
      // Out of memory growing P 0's heap: leave the entry where it was (the
      // source heap just shrank, so this push cannot allocate); an idle M
      // still runs it, as every M scans every P's timers.
      dst->timers.lock.unlock();
      p->timers.lock.lock();
      p->timers.push(due);
      // Under the heap lock, as in rearm_periodic: once the lock is
      // released another M may pop t and mark it busy again.
      if (due.t != nullptr) due.t->busy.store(0, std::memory_order_release);  // in a heap again
      p->timers.lock.unlock();
      return earliest;
    }
    if (due.t != nullptr)
      due.t->busy.store(0, std::memory_order_release);  // in P 0's heap (lock held)
    dst->timers.lock.unlock();
    if (earliest == 0 || due.when < earliest) earliest = due.when;
  }
}

// The P held by m has been taken away by set_maxprocs: hand its goroutines
// and timers to the remaining Ps and give it up.
void retire_p(M* m) noexcept {
  P* p = m->p;
  // Goroutines (the queue and runnext): to the global queue.
  G* gs[runq_capacity + 1];
  std::uint32_t n = 0;
  while (G* g = runqget(p)) gs[n++] = g;
  const std::int64_t earliest = move_timers_to_p0(p);
  {
    lock_guard lk(sched.lock);
    if (n > 0) globrunq_put(gs, n);
    p->status = pstatus::retired;
    p->m = nullptr;
    m->p = nullptr;
  }
  if (m->spinning) {
    m->spinning = false;
    sched.nmspinning.fetch_sub(1, std::memory_order_seq_cst);
  }
  if (n > 0) wakep();
  if (earliest != 0) timer_added(earliest);
}

struct alt_stack_guard {
  void* mem = nullptr;
  stack_t old{};
};

void m_init_thread(M* m) {
  tls_m = m;
  m->eh = eh_globals();
  m->g0_fp_words = current_fp_words();
#if GORO_TSAN
  m->g0_tsan_fiber = __tsan_get_current_fiber();
#endif
#if GORO_ASAN
  pthread_attr_t attr;
  if (pthread_getattr_np(pthread_self(), &attr) == 0) {
    void* addr = nullptr;
    std::size_t size = 0;
    pthread_attr_getstack(&attr, &addr, &size);
    m->g0_stack_bottom = addr;
    m->g0_stack_size = size;
    pthread_attr_destroy(&attr);
  }
#endif
  m->altstack = install_alt_stack();
}

void m_main(M* m) {
  race_ignore no_race_checks;  // runtime code (race.hpp)
  m_init_thread(m);
  P* p;
  {
    lock_guard lk(sched.lock);
    p = m->next_p;
    m->next_p = nullptr;
  }
  if (p != nullptr) {
    acquirep(m, p);
    m->spinning = m->next_spinning;
  }
  schedule_loop(m);
  remove_alt_stack(m->altstack);
  tls_m = nullptr;
}

// GORO_DEBUG: a comma-separated list of "migrate" and "shuffle".
std::uint32_t parse_debug_flags() noexcept {
  const char* v = std::getenv("GORO_DEBUG");
  if (v == nullptr) return 0;
  std::uint32_t flags = 0;
  if (std::strstr(v, "migrate") != nullptr) flags |= debug_migrate;
  if (std::strstr(v, "shuffle") != nullptr) flags |= debug_shuffle;
  return flags;
}

int resolve_procs(const run_options& opts) {
  int n = opts.maxprocs;
  if (n <= 0) n = default_procs_override.load(std::memory_order_relaxed);
  if (n <= 0) {
    if (const char* v = std::getenv("GORO_MAXPROCS")) {
      char* end = nullptr;
      long x = std::strtol(v, &end, 10);
      if (end != v && x > 0) n = static_cast<int>(std::min<long>(x, max_maxprocs));
    }
  }
  if (n <= 0) n = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  return std::min(n, max_maxprocs);
}

P* new_p(int id) {
  P* p = new P;
  p->id = id;
  return p;
}

void teardown() noexcept {
  // Every M has left its loop. Goroutines still alive are abandoned.
  sem_forget_goroutines();
  reset_reader_slots();
  std::vector<G*> chunks;
  G* started;
  {
    lock_guard lk(sched.allgs_lock);
    chunks.swap(sched.gchunks);
    sched.gchunk_used = 0;
    started = sched.allg.exchange(nullptr, std::memory_order_acquire);
  }
  for (G* chunk : chunks) {
    for (std::size_t i = 0; i < g_chunk_size; ++i) {
      G* rec = &chunk[i];
      const gstatus st = rec->status.load(std::memory_order_relaxed);
      if (st == gstatus::runnable && rec->ops != nullptr) {
        rec->ops->destroy(rec->closure);  // never started: safe to destroy
        free_closure(rec);
      }
    }
    delete[] chunk;
  }
  while (G* g = started) {
    started = g->allg_next;
#if GORO_TSAN
    if (g->tsan_fiber != nullptr) {
      // An abandoned goroutine ran for the last time before run() returns.
      race_release_as(g->tsan_fiber, &sched.running);
      __tsan_destroy_fiber(g->tsan_fiber);
    }
#endif
    g->~G();  // its memory goes with the stack pool below
  }
  const int np = sched.nallp.load(std::memory_order_relaxed);
  for (int i = 0; i < np; ++i) {
    delete sched.allp[i];
    sched.allp[i] = nullptr;
  }
  std::vector<M*> ms;
  {
    lock_guard lk(sched.lock);
    ms.swap(sched.allm);
    for (g_ring* r : {&sched.runq_resumed, &sched.runq_fresh}) {
      delete[] r->slots;
      *r = g_ring{};
    }
    sched.runq_fresh_turn = 0;
    sched.spawn_waiters = nullptr;
    sched.pidle = nullptr;
    sched.midle = nullptr;
    sched.timer_m = nullptr;
    sched.nmidle = 0;
  }
  {
    lock_guard lk(sched.gfree_lock);
    delete[] sched.gfree;
    sched.gfree = nullptr;
    sched.ngfree = 0;
    delete[] sched.sgfree;
    sched.sgfree = nullptr;
    sched.nsgfree = 0;
    std::fill(std::begin(sched.gfree_other), std::end(sched.gfree_other), nullptr);
  }
  {
    lock_guard lk(sched.gchunk_lock);
    sched.gcount = 0;
    sched.garray_cap = 0;
  }
  for (M* m : ms) delete m;
  stack_pool_release();
  sched.runq_size.store(0);
  sched.npidle.store(0);
  sched.nmspinning.store(0);
  sched.timer_m_until.store(INT64_MAX);
  sched.nprocs.store(0);
  sched.nallp.store(0);
  sched.stopping.store(false);
  sched.next_goid.store(1);
  sched.extern_created.store(0);
  sched.nlent.store(0);
  sched.nblocking.store(0);
  sched.sysmon_retakes.store(0);
  sched.debug_flags = 0;
}

struct main_closure {
  void (*fn)(void*);
  void* arg;
  static void run(void* p) {
    auto* c = static_cast<main_closure*>(p);
    c->fn(c->arg);
  }
  static void destroy(void*) noexcept {}
  static void relocate(void* from, void* to) noexcept {
    ::new (to) main_closure(*static_cast<main_closure*>(from));
  }
  static constexpr closure_ops ops{&main_closure::run, &main_closure::destroy,
                                   &main_closure::relocate};
};

bool commit_unlock(void* arg) GORO_NO_TSA {
  static_cast<lock_t*>(arg)->unlock();
  return true;
}

}  // namespace

// ---------------------------------------------------------------------------
// Internal API.

GORO_NOIPA M* current_m() noexcept { return tls_m; }

GORO_NOIPA G* current_g() noexcept {
  M* m = tls_m;
  return m != nullptr ? m->curg : nullptr;
}

GORO_NOIPA reader_context current_reader_context() noexcept {
  static thread_local const void* thread_hint = nullptr;
  M* m = tls_m;
  if (m == nullptr || m->curg == nullptr) return {-1, &thread_hint};
  return {m->p != nullptr ? m->p->id : -1, &m->curg->central_read_hint};
}

const char* wait_reason_string(wait_reason r) noexcept {
  switch (r) {
    case wait_reason::none:
      return "running";
    case wait_reason::chan_receive:
      return "chan receive";
    case wait_reason::chan_send:
      return "chan send";
    case wait_reason::chan_receive_nil:
      return "chan receive (nil chan)";
    case wait_reason::chan_send_nil:
      return "chan send (nil chan)";
    case wait_reason::select:
      return "select";
    case wait_reason::select_no_cases:
      return "select (no cases)";
    case wait_reason::sleep:
      return "sleep";
    case wait_reason::mutex:
      return "mutex";
    case wait_reason::wait_group:
      return "wait group";
    case wait_reason::semaphore:
      return "semaphore";
    case wait_reason::rw_mutex_read:
      return "rw_mutex read lock";
    case wait_reason::rw_mutex_write:
      return "rw_mutex write lock";
    case wait_reason::cond:
      return "cond wait";
    case wait_reason::blocking_call:
      return "blocking call";
    case wait_reason::spawn_backlog:
      return "spawn backlog";
  }
  return "unknown";
}

namespace {

// The goroutine in our P's runnext slot, taken for a direct switch, if the
// scheduler would pick it next anyway: not on a schedule that must look at
// the global queue first, no timer due, the P not being retired, the runtime
// not stopping, and the goroutine already started (a new one needs g0 to
// give it a stack).
G* take_handoff(M* m) noexcept {
  P* p = m->p;
  if (p == nullptr || (p->schedtick + 1) % 61 == 0) return nullptr;
  G* next = p->runnext.load(std::memory_order_acquire);
  if (next == nullptr || !next->started) return nullptr;
  if (p->id >= sched.nprocs.load(std::memory_order_relaxed) ||
      sched.stopping.load(std::memory_order_relaxed) || sched.debug_flags != 0)
    return nullptr;
  const std::int64_t due = p->timers.earliest();
  if (due != 0 && due <= nanotime()) return nullptr;
  // Only we fill runnext: it holds next, or a thief has emptied it.
  return runnext_take(p);
}

// goready under GORO_DEBUG (debug_flags != 0): migrate sends every woken
// goroutine through the global queue (and execute() moves it off the thread
// it last ran on); shuffle puts it in runnext, at the tail of the local
// queue or in the global queue at random.
void debug_ready(M* m, G* g) noexcept {
  P* p = m != nullptr ? m->p : nullptr;
  const std::uint32_t r = cheap_rand();
  if (p != nullptr && (sched.debug_flags & debug_migrate) == 0 && (r & 3) != 0) {
    runqput(p, g, (r & 4) != 0);
  } else {
    lock_guard lk(sched.lock);
    globrunq_put1(g);
  }
  wakep();
}

// Parks g by switching straight to next, skipping the scheduler loop: what
// execute() would do after g switched to g0 (finish the park, then run
// next) happens on next's side, in finish_handoff.
void park_handoff(G* g, M* m, G* next, bool (*commit)(void*), void* arg) noexcept {
  ++m->p->schedtick;
  m->handoff_from = g;
  m->commit = commit;
  m->commit_arg = arg;
  m->curg = next;
  next->m.store(m, std::memory_order_relaxed);
  next->status.store(gstatus::running, std::memory_order_relaxed);
  eh_state* eh = m->eh;
  g->eh = *eh;
  *eh = next->eh;
#if GORO_ASAN
  __sanitizer_start_switch_fiber(&g->asan_fake_stack, next->stack_lo,
                                 static_cast<std::size_t>(next->stack_hi - next->stack_lo));
#endif
#if GORO_TSAN
  __tsan_switch_to_fiber(next->tsan_fiber, 1 /* no_sync: see race.hpp */);
#endif
  goro_switch(&g->sp, next->sp, nullptr);
  resumed(g);
}

// On the goroutine that was handed the thread: the parked one's context is
// saved now, so its park can be committed (execute() does the same on g0).
void finish_handoff(M* m) noexcept {
  G* prev = m->handoff_from;
  bool (*commit)(void*) = m->commit;
  void* arg = m->commit_arg;
  m->handoff_from = nullptr;
  m->commit = nullptr;
  m->commit_arg = nullptr;
  check_stack(prev);
  // Waiting before the commit releases the queue lock: once another M can
  // find prev it may make it runnable at any moment.
  prev->status.store(gstatus::waiting, std::memory_order_release);
  if (commit != nullptr && !commit(arg)) {
    // The park was called off: prev runs next, as execute() would resume it.
    prev->status.store(gstatus::runnable, std::memory_order_relaxed);
    if (runqput(m->p, prev, true)) wakep();
  }
}

}  // namespace

void gopark(bool (*commit)(void*), void* arg, wait_reason reason) {
  M* m = current_m();
  G* g = m->curg;
  g->reason = reason;
  // The coarse clock, not a clock read: dumps show waits to ~10 ms. Relaxed
  // on both sides: a timestamp for dumps, ordering nothing.
  g->wait_since.store(sched.coarse_now.load(std::memory_order_relaxed), std::memory_order_relaxed);
  if (G* next = take_handoff(m)) {
    park_handoff(g, m, next, commit, arg);
  } else {
    m->action = after_switch::park;
    m->commit = commit;
    m->commit_arg = arg;
    switch_to_g0(g, m, false);
  }
  g->reason = wait_reason::none;
}

namespace {

// The heap a timer started now goes to: the current M's P's, or off a P (a
// plain thread, or an M between Ps) P 0's, which is never retired; any M
// runs any P's due timers. nullptr outside a running runtime.
timer_heap* timer_home() noexcept {
  M* m = current_m();
  P* p = m != nullptr ? m->p : nullptr;
  if (p == nullptr) {
    if (!sched.running.load(std::memory_order_acquire) ||
        sched.stopping.load(std::memory_order_relaxed))
      return nullptr;
    p = sched.allp[0];
  }
  return &p->timers;
}

void rearm_periodic(timer* t) noexcept {
  const std::int64_t now = nanotime();
  std::int64_t next = t->when + t->period;
  if (next <= now) next += ((now - next) / t->period + 1) * t->period;
  t->when = next;
  timer_heap* h = timer_home();
  if (h == nullptr) {
    t->busy.store(0, std::memory_order_release);  // shutting down: no more ticks
    return;
  }
  h->lock.lock();
  try {
    race_ignore no_race_checks;  // the heap may reallocate (race.hpp)
    h->push(t);
  } catch (const std::bad_alloc&) {
    fatal_error("runtime: out of memory growing a timer heap");
  }
  // Under the heap lock: no M can pop t (and set busy) before this store.
  // Release pairs with timer_stop's acquire.
  t->busy.store(0, std::memory_order_release);
  h->lock.unlock();
  timer_added(next);
}

}  // namespace

void timer_start(timer* t) {
  timer_heap* home = timer_home();
  if (home == nullptr)
    throw std::logic_error("goro: timers need a running runtime (inside goro::run)");
  timer_heap& h = *home;
  const std::int64_t when = t->when;
  h.lock.lock();
  try {
    race_ignore no_race_checks;  // the heap may reallocate (race.hpp)
    h.push(t);
  } catch (const std::bad_alloc&) {
    fatal_error("runtime: out of memory growing a timer heap");
  }
  h.lock.unlock();  // from here on t may fire, and be gone
  timer_added(when);
}

bool parker::thread_wait_until(std::int64_t deadline_ns) noexcept {
  // Acquire pairs with the release store in wake().
  while (word_.load(std::memory_order_acquire) == 0) {
    const std::int64_t left = deadline_ns - nanotime();
    if (left <= 0) return false;
    futex_wait(&word_, 0, left);
  }
  return true;
}

std::uint32_t cheap_rand() noexcept {
  // tls_m read here, not through current_m(): nothing in between can switch.
  if (M* m = tls_m) return fastrand(m);
  thread_local std::uint64_t state = 0x9E3779B97F4A7C15ull ^
                                     reinterpret_cast<std::uintptr_t>(&state) ^
                                     static_cast<std::uint64_t>(nanotime());
  std::uint64_t x = state | 1;
  x ^= x >> 12;
  x ^= x << 25;
  x ^= x >> 27;
  state = x;
  return static_cast<std::uint32_t>((x * 0x2545F4914F6CDD1Dull) >> 32);
}

void switch_to_g0_for_requeue(G* g, M* m) noexcept {
  m->action = after_switch::requeue;
  switch_to_g0(g, m, false);
}

void gopark_unlock(lock_t& l, wait_reason reason) GORO_NO_TSA {
  gopark(&commit_unlock, &l, reason);
}

void goready(G* g) noexcept {
  race_ignore no_race_checks;  // runtime code (race.hpp)
  g->status.store(gstatus::runnable, std::memory_order_relaxed);
  M* m = current_m();
  if (sched.debug_flags != 0) [[unlikely]] {
    debug_ready(m, g);
    return;
  }
  if (m != nullptr && m->p != nullptr) {
    // A goroutine woken into an empty runnext slot runs on this P as soon as
    // the waker blocks or yields, which in message passing is next: waking
    // another thread for it would only make that thread spin, find nothing
    // and sleep again, a futex round trip per message (tokio's LIFO slot
    // does the same). Work that lands in the stealable queue still wakes a
    // thread.
    if (!runqput(m->p, g, true)) return;
  } else {
    lock_guard lk(sched.lock);
    globrunq_put1(g);
  }
  wakep();
}

spawn_slot spawn_begin(const spawn_options& opts, std::size_t size, std::size_t align,
                       bool relocatable, const goro::source_location& site) {
  race_ignore no_race_checks;  // runtime code (race.hpp)
  if (!sched.running.load(std::memory_order_acquire) ||
      sched.stopping.load(std::memory_order_relaxed))
    throw std::logic_error("goro::go: the runtime is not running (spawn inside goro::run)");
  M* m = current_m();
  P* p = m != nullptr ? m->p : nullptr;
  const std::size_t stack_class =
      opts.stack_size == 0 ? default_stack_class() : stack_size_class(opts.stack_size);
  G* g = spawn_rec_get(p);
  g->id = new_goid(p);
  g->stack_shift = static_cast<std::uint8_t>(std::countr_zero(stack_class));
  g->site = site;
  const std::size_t n = std::min(opts.name.size(), G::name_capacity - 1);
  if (n != 0) {
    if (g->name_buf == nullptr) {
      g->name_buf = new (std::nothrow) char[G::name_capacity];
      if (g->name_buf == nullptr) {
        spawn_rec_put(p, g);
        throw std::bad_alloc();
      }
    }
    std::memcpy(g->name_buf, opts.name.data(), n);
    g->name_buf[n] = '\0';
  } else if (g->name_buf != nullptr) {
    g->name_buf[0] = '\0';  // the record's previous goroutine had a name
  }
  g->reason = wait_reason::none;
  // A closure stays inline only if start_g can relocate it without a chance
  // of failure. Under TSan closures always go to the heap: the allocator
  // tells TSan the memory is new, where a reused inline buffer would look
  // raced.
  if (size <= inline_closure_bytes && align <= alignof(std::max_align_t) && relocatable &&
      !GORO_TSAN) {
    g->closure = g->inline_closure;
    g->heap_closure = false;
  } else {
    const std::size_t a = std::max<std::size_t>(align, alignof(std::max_align_t));
    try {
      g->closure = ::operator new (size, std::align_val_t{a});
    } catch (...) {
      spawn_rec_put(p, g);
      throw;
    }
    g->heap_closure = true;
    g->heap_align_shift = static_cast<std::uint8_t>(std::countr_zero(a));
  }
  return {g, g->closure};
}

namespace {

// spawn_commit's work; what the spawner must do then about the backlog of
// never-started goroutines (spawn_backlog_soft).
std::uint8_t spawn_enqueue(G* g, const closure_ops* ops) noexcept {
  race_ignore no_race_checks;  // runtime code (race.hpp)
  race_release(g);             // pairs with race_acquire in start_g
  g->ops = ops;
  g->started = false;
  g->sp = nullptr;
  g->status.store(gstatus::runnable, std::memory_order_relaxed);
  M* m = current_m();
  P* p = m != nullptr ? m->p : nullptr;
  if (p != nullptr) {
    p->created.store(p->created.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
    // The new goroutine takes the runnext slot only while it is free, and
    // otherwise joins the queue's tail; it does not kick the occupant out
    // as goready does. Kicking takes an atomic exchange (a thief may be
    // emptying the slot), and on x86 a locked instruction first waits for
    // every store of the spawn (the G record, often cache-cold) to land: a
    // spawn loop would pay that once per goroutine. Without it a spawn is
    // plain stores. Children then start in spawn order.
    runqput(p, g, p->runnext.load(std::memory_order_relaxed) == nullptr);
    if (const std::uint8_t step = p->spawn_backlog) [[unlikely]] {
      p->spawn_backlog = spawn_go_on;
      wakep();
      // Only a goroutine waits: not g0 (a timer's function starting its
      // goroutine), nor a goroutine inside blocking() (it holds no P).
      return m->curg != nullptr ? step : spawn_go_on;
    }
  } else {
    sched.extern_created.fetch_add(1, std::memory_order_relaxed);
    lock_guard lk(sched.lock);
    globrunq_put1(g);
  }
  wakep();
  return spawn_go_on;
}

// gopark's commit for a spawner over the backlog limit: joins
// sched.spawn_waiters unless the backlog has already drained.
bool spawn_wait_commit(void* arg) GORO_NO_TSA {
  G* g = static_cast<G*>(arg);
  lock_guard lk(sched.lock);
  if (sched.runq_fresh.size <= spawn_backlog_resume) return false;
  g->free_next = sched.spawn_waiters;
  sched.spawn_waiters = g;
  return true;
}

}  // namespace

void spawn_commit(const spawn_slot& slot, const closure_ops* ops) noexcept {
  const std::uint8_t step = spawn_enqueue(static_cast<G*>(slot.g), ops);
  // Outside spawn_enqueue's race_ignore, which is per thread: the spawner
  // may resume on another one.
  if (step == spawn_yield) [[unlikely]] {
    goro::yield();
  } else if (step == spawn_park) [[unlikely]] {
    gopark(&spawn_wait_commit, current_g(), wait_reason::spawn_backlog);
  }
}

void spawn_abort(const spawn_slot& slot) noexcept {
  race_ignore no_race_checks;  // runtime code (race.hpp)
  G* g = static_cast<G*>(slot.g);
  free_closure(g);
  M* m = current_m();
  P* p = m != nullptr ? m->p : nullptr;
  spawn_rec_put(p, g);
}

int run_main(const run_options& opts, void (*fn)(void*), void* arg) {
  race_ignore no_race_checks;  // runtime code (race.hpp)
  if (current_m() != nullptr) throw std::logic_error("goro::run: called from inside the runtime");
  bool expected = false;
  if (!sched.running.compare_exchange_strong(expected, true, std::memory_order_acq_rel))
    throw std::logic_error("goro::run: the runtime is already running");
  const int n = resolve_procs(opts);
  install_fault_handler();
  sched.debug_flags = parse_debug_flags();
  sched.membarrier = membarrier_register();
  sched.coarse_now.store(nanotime(), std::memory_order_relaxed);
  M* m0 = nullptr;
  try {
    for (int i = 0; i < n; ++i) sched.allp[i] = new_p(i);
    sched.nallp.store(n, std::memory_order_release);
    sched.nprocs.store(n, std::memory_order_release);
    m0 = new_m_struct();
  } catch (...) {
    for (int i = 0; i < n; ++i) {
      delete sched.allp[i];
      sched.allp[i] = nullptr;
    }
    sched.nallp.store(0);
    sched.nprocs.store(0);
    sched.running.store(false);
    throw;
  }
  {
    lock_guard lk(sched.lock);
    for (int i = n - 1; i >= 1; --i) pidle_put(sched.allp[i]);
    sched.allp[0]->status = pstatus::running;
  }
  m_init_thread(m0);
  acquirep(m0, sched.allp[0]);
  try {
    sysmon_start();
  } catch (...) {
    fatal_plain("runtime: failed to create the sysmon thread");
  }

  main_closure mc{fn, arg};
  spawn_slot slot =
      spawn_begin(spawn_options{.stack_size = 0, .name = "main"}, sizeof(main_closure),
                  alignof(main_closure), true, goro::source_location::current());
  ::new (slot.storage) main_closure(mc);
  static_cast<G*>(slot.g)->is_main = true;
  spawn_commit(slot, &main_closure::ops);

  schedule_loop(m0);
  sysmon_stop();

  // Main returned. Wait for every other M to leave its loop.
  std::vector<M*> ms;
  {
    lock_guard lk(sched.lock);
    ms = sched.allm;
  }
  for (M* m : ms) {
    if (m != m0 && m->thread.joinable()) m->thread.join();
  }
  remove_alt_stack(m0->altstack);
  tls_m = nullptr;
  teardown();
  // The main goroutine's return (goexit) and the last steps of the abandoned
  // ones (teardown) happen before run() returns.
  race_acquire(&sched.running);
  sched.running.store(false, std::memory_order_release);
  return 0;
}

std::int64_t steady_now_ns() noexcept { return nanotime(); }

namespace {

// What a sleeper's heap entry names (timer.hpp): a record in park_until's
// frame, on the sleeper's own stack, not the G record. Popping an entry
// prefetches the next one's payload, and the stack page is the one a wake
// must touch first: resuming reads the saved registers there, and after a
// long sleep its TLB entry is long gone. Naming the frame moves that page
// walk one pop ahead; the G record is then only written (goready's status
// store, which does not wait for the line).
struct sleep_rec {
  G* g;
};

// A sleeper's deadline came (run_timers).
void wake_sleeper(sleep_rec* r) noexcept {
  G* g = r->g;
  // The frames it switched out from lie just below the record (gopark's,
  // the saved registers) and the ones it returns through just above.
  const char* at = reinterpret_cast<const char*>(r);
  for (const char* line = at - 512; line < at + 512; line += 64) __builtin_prefetch(line, 1, 3);
  goready(g);
}

struct sleep_commit_arg {
  lock_t* lock;
  std::int64_t when;
};

bool sleep_commit(void* a) GORO_NO_TSA {
  auto* arg = static_cast<sleep_commit_arg*>(a);
  const std::int64_t when = arg->when;
  arg->lock->unlock();
  timer_added(when);
  return true;
}
}  // namespace

namespace {

void thread_sleep_until(std::int64_t deadline) noexcept {
  timespec ts{static_cast<time_t>(deadline / 1000000000), static_cast<long>(deadline % 1000000000)};
  while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, nullptr) == EINTR) {
  }
}

// Parks g, the running goroutine, until deadline. A record in this frame is
// the heap entry's payload (sleep_rec): a sleep needs no timer, and nothing
// stops one.
void park_until(G* g, std::int64_t deadline) GORO_NO_TSA {
  P* p = current_m()->p;
  sleep_rec rec{g};  // lives until the wake: this frame outlasts the sleep
  p->timers.lock.lock();
  try {
    race_ignore no_race_checks;  // the heap may reallocate (race.hpp)
    p->timers.push_sleeper(&rec, deadline);
  } catch (...) {
    p->timers.lock.unlock();
    throw;
  }
  sleep_commit_arg arg{&p->timers.lock, deadline};
  gopark(&sleep_commit, &arg, wait_reason::sleep);
}

}  // namespace

void sleep_until_ns(std::int64_t deadline) {
  G* g = current_g();
  if (g == nullptr) return thread_sleep_until(deadline);
  if (deadline <= nanotime()) return;
  park_until(g, deadline);
}

void sleep_for_ns(std::int64_t ns) {
  // One clock read: the deadline is ns > 0 away, so park without checking
  // it again (a sleep always parks, as Go's time.Sleep does).
  const std::int64_t deadline = sleep_deadline_after(ns);
  G* g = current_g();
  if (g == nullptr) return thread_sleep_until(deadline);
  park_until(g, deadline);
}

int resize_procs(int n) {
  race_ignore no_race_checks;  // runtime code (race.hpp)
  std::vector<P*> retired_idle;
  int prev;
  {
    lock_guard lk(sched.lock);
    prev = sched.nprocs.load(std::memory_order_relaxed);
    if (n == prev) return prev;
    const int have = sched.nallp.load(std::memory_order_relaxed);
    for (int i = have; i < n; ++i) sched.allp[i] = new_p(i);
    if (n > have) sched.nallp.store(n, std::memory_order_release);
    sched.nprocs.store(n, std::memory_order_seq_cst);
    if (n > prev) {
      for (int i = prev; i < n; ++i) {
        P* p = sched.allp[i];
        if (p->status == pstatus::retired || i >= have) pidle_put(p);
      }
    } else {
      // Idle Ps above n leave the idle list now; running ones retire when
      // their M next looks for work (find_runnable).
      for (P** link = &sched.pidle; *link != nullptr;) {
        P* p = *link;
        if (p->id >= n) {
          *link = p->idle_next;
          p->idle_next = nullptr;
          p->status = pstatus::retired;
          sched.npidle.fetch_sub(1, std::memory_order_seq_cst);
          retired_idle.push_back(p);
        } else {
          link = &p->idle_next;
        }
      }
    }
  }
  // Move the timers of Ps retired while idle (their queues are empty).
  for (P* p : retired_idle) {
    if (const std::int64_t earliest = move_timers_to_p0(p); earliest != 0) timer_added(earliest);
  }
  if (n > prev) {
    for (int i = prev; i < n; ++i) wakep();
  }
  return prev;
}

}  // namespace goro::detail

// ---------------------------------------------------------------------------
// Public API.

namespace goro {

using namespace detail;

void yield() {
  G* g = current_g();
  if (g == nullptr) {
    std::this_thread::yield();
    return;
  }
  M* m = current_m();
  m->action = after_switch::yield;
  switch_to_g0(g, m, false);
}

std::uint64_t goroutine_id() noexcept {
  G* g = current_g();
  return g != nullptr ? g->id : 0;
}

goro::source_location spawn_site() noexcept {
  G* g = current_g();
  return g != nullptr ? g->site : goro::source_location{};
}

bool in_goroutine() noexcept { return current_g() != nullptr; }

int maxprocs() noexcept {
  if (sched.running.load(std::memory_order_acquire))
    return sched.nprocs.load(std::memory_order_acquire) -
           sched.nlent.load(std::memory_order_acquire);
  return resolve_procs(run_options{});
}

int set_maxprocs(int n) {
  race_ignore no_race_checks;  // runtime code (race.hpp)
  if (n < 1 || n > max_maxprocs)
    throw std::invalid_argument("goro::set_maxprocs: n must be between 1 and 256");
  if (!sched.running.load(std::memory_order_acquire)) {
    const int prev = resolve_procs(run_options{});
    default_procs_override.store(n, std::memory_order_relaxed);
    return prev;
  }
  // Ps that sysmon lent beside stuck ones (sysmon.cpp) stay on top.
  lock_guard resizing(sched.resize_lock);
  const int lent = sched.nlent.load(std::memory_order_acquire);
  return resize_procs(std::min(n + lent, max_maxprocs)) - lent;
}

std::int64_t num_goroutines() noexcept {
  if (!sched.running.load(std::memory_order_acquire)) return 0;
  // Goroutines spawned from plain threads count here; every exit counts on
  // the P it happened on, so only the sum over everything is meaningful.
  std::int64_t total = sched.extern_created.load(std::memory_order_relaxed);
  const int n = sched.nallp.load(std::memory_order_acquire);
  for (int i = 0; i < n; ++i) {
    total += sched.allp[i]->created.load(std::memory_order_relaxed) -
             sched.allp[i]->exited.load(std::memory_order_relaxed);
  }
  return total;
}

}  // namespace goro
