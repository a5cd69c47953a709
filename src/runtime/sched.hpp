// Scheduler internals: G (goroutine), P (processor), M (OS thread) and the
// global scheduler state, as in Go's runtime (runtime2.go, proc.go).
//
// Invariants:
//  - A G is in exactly one of: a P's runnext slot, a P's run queue, the global
//    run queue, running on an M, parked (reachable only from some wait queue
//    or timer), or free (on a free list). status says which class.
//  - An M runs goroutines only while it holds a P, with one exception: a
//    goroutine inside goro::blocking() keeps running on its M after handing
//    the P off (blocking.cpp), and takes a P back before it does anything
//    else. There are at most maxprocs Ps in use, plus the ones sysmon lends
//    beside Ps stuck on one goroutine (sched.nlent, sysmon.cpp). An M without
//    work releases its P to the idle list and sleeps on its futex word.
//  - sched.nmidle counts the Ms on the idle list; when it equals the number
//    of Ms and no timer is pending, the M going idle runs checkdead.
//  - A goroutine's context is saved before any lock guarding a queue it waits
//    on is released (see park.hpp), so a G found on a queue can always be
//    resumed.
//  - Runtime code never keeps a pointer to the current M or P across a
//    switch: the goroutine may come back on another thread. current_m() and
//    current_g() re-read thread-local state each call (they are not inlined).
#pragma once

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <thread>
#include <vector>

#include "goro/goroutine.hpp"
#include "platform/lock.hpp"
#include "platform/sanitizer.hpp"
#include "platform/stack.hpp"
#include "runtime/park.hpp"
#include "runtime/timer.hpp"

namespace goro::detail {

struct M;
struct P;

/// The two words of the C++ runtime's per-thread exception state
/// (__cxa_eh_globals): the chain of caught exceptions and the count of
/// uncaught ones. Saved and restored per goroutine, so a goroutine may block
/// inside a catch block and resume on another thread.
struct eh_state {
  void* caught = nullptr;
  unsigned int uncaught = 0;
};

enum class gstatus : std::uint8_t { idle, runnable, running, waiting, dead };

inline constexpr std::size_t inline_closure_bytes = 64;
inline constexpr std::size_t g_chunk_size = 128;  // spawn records per arena chunk

// A G is one of two records (sched.cpp, "G records and stacks"): a spawn
// record, from a dense arena, holds a goroutine from its spawn to its first
// run (stack_lo == nullptr); a goroutine record, at the top of its own
// stack, holds it from then on. Both are reused, never freed before
// shutdown.
//
// Field order is by temperature: spawning a goroutine and starting it touch
// the first two cache lines and the inline closure (the record usually moves
// from the spawning P's core to another one, a miss per line). Three lines
// in a plain build (the sanitizer contexts exist only in their builds, and a
// sleep's timer lives in the sleeper's frame).
struct alignas(64) G {
  // Line 0: what the scheduler reads to run the goroutine.
  void* sp = nullptr;  // saved stack pointer while not running
  const closure_ops* ops = nullptr;
  void* closure = nullptr;  // inline_closure or a heap block
  std::atomic<gstatus> status{gstatus::idle};
  bool started = false;
  bool heap_closure = false;
  bool is_main = false;
  wait_reason reason = wait_reason::none;
  std::uint8_t stack_shift = 0;       // log2 of its stack's size class
  std::uint8_t heap_align_shift = 0;  // log2 of the heap closure's alignment
  bool stack_guarded = false;         // the stack has guard pages or markers below it
  // The usable stack: frames grow down from stack_hi, which is this record's
  // own address, to stack_lo.
  char* stack_lo = nullptr;
  char* stack_hi = nullptr;
  // Goroutine records only. The registry link (sched.allg): the record
  // created before this one; written once, before the record is published.
  G* allg_next = nullptr;
  // Next record on a free list of non-default stack classes (gfree_lock),
  // or, while its goroutine is parked on it, on sched.spawn_waiters.
  G* free_next = nullptr;

  // Line 1: identity, written at spawn; the rest at switches and waits.
  std::uint64_t id = 0;
  std::atomic<M*> m{nullptr};  // M running it, for diagnostics
  goro::source_location site{};
  // When the current wait began, on the coarse clock (sched.coarse_now): set
  // by gopark and blocking_enter without a clock read. Read by dumps.
  std::atomic<std::int64_t> wait_since{0};
  // rw_mutex's hint (rw_mutex.cpp): the last rw_mutex this goroutine
  // read-locked through the central count and has not read-unlocked since.
  const void* central_read_hint = nullptr;
  // The name given at spawn, in a buffer of name_capacity bytes that the
  // record keeps once a named goroutine needed one (as the record itself, it
  // is freed only at teardown, so dumps may read it racily); "" or nullptr:
  // no name.
  char* name_buf = nullptr;
  eh_state eh;

  alignas(std::max_align_t) unsigned char inline_closure[inline_closure_bytes];

#if GORO_ASAN
  void* asan_fake_stack = nullptr;
#endif
#if GORO_TSAN
  void* tsan_fiber = nullptr;
#endif

  static constexpr std::size_t name_capacity = 48;  // 47 characters and the NUL

  G() = default;
  G(const G&) = delete;
  G& operator=(const G&) = delete;
  ~G() { delete[] name_buf; }

  bool has_name() const noexcept { return name_buf != nullptr && name_buf[0] != '\0'; }
  /// The name given at spawn, or "".
  const char* display_name() const noexcept { return has_name() ? name_buf : ""; }
  std::size_t stack_class() const noexcept { return std::size_t{1} << stack_shift; }
  /// The stack this record sits in, as the stack pool knows it (for the
  /// canary check).
  stack stack_mem() const noexcept {
    stack s;
    s.lo = stack_lo;
    s.hi = stack_hi;
    s.size = stack_class();
    s.guarded = stack_guarded;
    return s;
  }
};

/// What a goroutine asks its scheduler context to do after switching to it.
enum class after_switch : std::uint8_t { none, park, yield, exit, requeue };

struct M {
  int id = 0;
  void* g0_sp = nullptr;  // the scheduler context (this thread's own stack)
  // The FP control words g0 runs with, read once when the thread starts: g0
  // runs only runtime code, which never changes them, so leaving g0 needs
  // no read (goro_switch_known_fp).
  std::uint64_t g0_fp_words = 0;
  eh_state g0_eh;
  eh_state* eh = nullptr;  // this thread's exception globals (fixed per thread)
  G* curg = nullptr;
  P* p = nullptr;
  bool spinning = false;

  // Futex note: 0 while asleep, set to 1 by whoever wakes the M (startm hands
  // it next_p first; a poke leaves next_p null).
  std::atomic<std::uint32_t> park_word{0};
  P* next_p = nullptr;  // guarded by sched.lock while the M is idle
  bool next_spinning = false;
  M* idle_next = nullptr;  // sched.midle list
  bool on_idle_list = false;

  // Set by the goroutine right before it switches to g0, or (handoff_from)
  // straight to the next goroutine, which then finishes the park (gopark).
  after_switch action = after_switch::none;
  bool (*commit)(void*) = nullptr;
  void* commit_arg = nullptr;
  G* handoff_from = nullptr;

  std::uint64_t rand_state = 0;
  std::thread thread;  // not joinable for M0 (the thread that called run)

  const void* g0_stack_bottom = nullptr;
  std::size_t g0_stack_size = 0;
  void* g0_asan_fake = nullptr;
  void* g0_tsan_fiber = nullptr;
  void* altstack = nullptr;
};

inline constexpr std::uint32_t runq_capacity = 256;

enum class pstatus : std::uint8_t { idle, running, retired };

struct alignas(64) P {
  int id = 0;
  pstatus status = pstatus::idle;  // guarded by sched.lock
  M* m = nullptr;
  P* idle_next = nullptr;

  // Local run queue (Go's runq): a ring written only by the owner at tail and
  // consumed by the owner and by thieves at head, with CAS on head.
  alignas(64) std::atomic<std::uint32_t> runq_head{0};
  alignas(64) std::atomic<std::uint32_t> runq_tail{0};
  std::atomic<G*> runq[runq_capacity];
  // The goroutine to run next, ahead of the queue: the one just readied by
  // the running goroutine, so a ping-pong pair stays on one thread. On a
  // line of its own with schedtick (both written by the owner at every
  // scheduling step): stores by sysmon, by thieves into the queue's head or
  // by timer users into the heap's lock would each cost the owner a miss.
  alignas(64) std::atomic<G*> runnext{nullptr};
  // The handshake that lets the owner take runnext without a locked
  // instruction (sched.cpp, runnext_take and runnext_steal): thieves count
  // themselves in runnext_revoke; the owner raises runnext_in_take around a
  // take. On runnext's line, which the owner writes at every take anyway.
  std::atomic<std::uint32_t> runnext_revoke{0};
  std::atomic<std::uint32_t> runnext_in_take{0};

  // Owner only; sysmon and dumps read it racily (a torn count only delays
  // a retake by one sysmon tick).
  std::uint32_t schedtick = 0;
  // sysmon's last look at schedtick and when it saw it change (sysmon.cpp):
  // a P whose schedtick has not moved for 10 ms has run one goroutine that
  // long. Written by sysmon only, read by dumps.
  alignas(64) std::atomic<std::uint32_t> sysmon_tick{0};
  std::atomic<std::int64_t> sysmon_when{0};

  alignas(64) timer_heap timers;

  // Owner-only caches. The free records are arrays, not lists through the
  // records: moving a batch to or from the global arrays copies pointers
  // and never touches the (cache-cold) records themselves. gfree: spawn
  // records; sgfree: goroutine records (each with its stack).
  static constexpr int gfree_capacity = 64;
  G* gfree[gfree_capacity] = {};
  int ngfree = 0;
  G* sgfree[gfree_capacity] = {};
  int nsgfree = 0;
  // Fresh stacks for new goroutine records (each is built at the top of one).
  static constexpr int stack_cache_capacity = 32;
  stack stack_cache[stack_cache_capacity];
  int nstack_cache = 0;
  // Set when this P last spilled goroutines to the global queue and found
  // a backlog of never-started ones there: what the next spawn on this P
  // does about it (sched.cpp, spawn_backlog_soft).
  std::uint8_t spawn_backlog = 0;
  std::uint64_t goid_next = 0, goid_end = 0;

  // Goroutine accounting: written only by the owner (relaxed load + store),
  // summed by anyone.
  std::atomic<std::int64_t> created{0};
  std::atomic<std::int64_t> exited{0};
};

// A FIFO ring of G pointers with a power-of-two capacity (the global queue's
// two halves; sched_t). Guarded by sched.lock.
struct g_ring {
  G** slots = nullptr;
  std::uint32_t mask = 0;   // capacity - 1
  std::uint32_t first = 0;  // index of the head (unmasked)
  std::uint32_t size = 0;

  void push(G* g) noexcept { slots[(first + size++) & mask] = g; }
  G* pop() noexcept {
    --size;
    return slots[first++ & mask];
  }
  // Moves the entries back to the start of the array once the head has
  // passed four times their number (and 4096) since it was last there, so
  // at most a quarter of a copy per pop: the pages of the array that were
  // ever written then track the ring's peak size, not how many goroutines
  // passed through it (the array has room for every G record there is).
  void compact() noexcept {
    const std::uint32_t at = first & mask;
    if (at < 4 * size + 4096 || at + size > mask + 1) return;
    std::copy(slots + at, slots + at + size, slots);  // disjoint: at >= 4 * size
    first = 0;
  }
};

struct sched_t {
  lock_t lock;
  // Global run queue: two rings of G pointers (capacity a power of two), so
  // a batch moves in and out without touching the records (a linked list
  // through G records costs one cache miss per goroutine, serially). Each
  // can hold every G record there is: they grow, with the global free
  // array, whenever a chunk of G records is allocated (grow_g_arrays), which
  // is the one place allowed to fail; putting into them never allocates.
  //
  // Goroutines that have run before (woken, yielded, spilled from a full
  // local queue) wait in `resumed`, never-started ones in `fresh`, each in
  // FIFO order, and takers serve `resumed` first except on every fourth
  // take (runq_fresh_turn), so neither class can starve the other. A
  // goroutine that has run holds a stack and often something its waker is
  // waiting on; a spawner that outruns its consumers queues fresh ones by
  // the hundred thousand, and in one FIFO every wake-up queued behind them
  // (sleepers in the timers workload woke 8-41 ms late on average).
  g_ring runq_resumed GORO_GUARDED_BY(lock);
  g_ring runq_fresh GORO_GUARDED_BY(lock);
  std::uint32_t runq_fresh_turn GORO_GUARDED_BY(lock) = 0;
  // Spawners parked until runq_fresh drains (sched.cpp, spawn_backlog_hard),
  // linked through G::free_next.
  G* spawn_waiters GORO_GUARDED_BY(lock) = nullptr;
  // Both rings' goroutines: written under lock, read anywhere as a hint.
  std::atomic<std::int32_t> runq_size{0};
  // Idle Ps and Ms.
  P* pidle GORO_GUARDED_BY(lock) = nullptr;
  std::atomic<std::int32_t> npidle{0};
  M* midle GORO_GUARDED_BY(lock) = nullptr;
  std::int32_t nmidle GORO_GUARDED_BY(lock) = 0;  // length of midle
  // Bumped whenever an M leaves midle: checkdead's proof that no goroutine
  // ran between its two looks (runtime/checkdead.cpp).
  std::uint64_t midle_gen GORO_GUARDED_BY(lock) = 0;
  std::atomic<std::int32_t> nmspinning{0};
  // The M sleeping until the earliest timer, if any, and that deadline.
  M* timer_m GORO_GUARDED_BY(lock) = nullptr;
  std::atomic<std::int64_t> timer_m_until{INT64_MAX};

  std::atomic<std::int32_t> nprocs{0};  // Ps in use (GOMAXPROCS)
  std::atomic<std::int32_t> nallp{0};   // Ps ever created in this run
  P* allp[256] = {};
  std::vector<M*> allm GORO_GUARDED_BY(lock);

  std::atomic<bool> running{false};
  std::atomic<bool> stopping{false};
  std::atomic<std::uint64_t> next_goid{1};
  std::atomic<std::int64_t> extern_created{0};  // goroutines spawned off any P

  // Diagnostics and sysmon (sysmon.cpp, checkdead.cpp).
  // A clock updated by sysmon at every tick (at most 10 ms apart while any P
  // runs) and by an M that takes a P while sysmon sleeps: what gopark stamps
  // into G::wait_since without reading the clock itself.
  std::atomic<std::int64_t> coarse_now{0};
  std::atomic<std::int32_t> nblocking{0};  // goroutines inside goro::blocking()
  std::atomic<std::int32_t> nlent{0};      // Ps sysmon added beside stuck ones
  // Serializes P-count changes (set_maxprocs, sysmon lending and returning
  // Ps) so that nlent and nprocs change together. Taken before sched.lock.
  lock_t resize_lock;
  std::atomic<std::int64_t> sysmon_retakes{0};
  std::atomic<std::int64_t> sysmon_ticks{0};  // sysmon wake-ups, for tests
  // sysmon sleeps on sysmon_seq; a waker increments it and futex-wakes.
  std::atomic<std::uint32_t> sysmon_seq{0};
  std::atomic<bool> sysmon_idle{false};  // asleep without timeout (all Ps idle)
  std::atomic<bool> sysmon_stop{false};
  std::atomic<std::uint32_t> sigquit{0};
  std::thread sysmon;
  // GORO_DEBUG flags, read once by run().
  std::uint32_t debug_flags = 0;
  // The kernel's expedited private membarrier is registered for this
  // process (run() registers it): owners take runnext without a
  // read-modify-write, and thieves pay for it with a membarrier.
  bool membarrier = false;

  // Global free records (sched.cpp, "G records and stacks"): spawn records
  // in gfree, goroutine records of the default stack class in sgfree, each
  // an array with room for every record; goroutine records of other stack
  // classes on per-class lists through G::free_next, indexed by stack_shift.
  lock_t gfree_lock;
  G** gfree GORO_GUARDED_BY(gfree_lock) = nullptr;
  std::size_t ngfree GORO_GUARDED_BY(gfree_lock) = 0;
  G** sgfree GORO_GUARDED_BY(gfree_lock) = nullptr;
  std::size_t nsgfree GORO_GUARDED_BY(gfree_lock) = 0;
  G* gfree_other[64] GORO_GUARDED_BY(gfree_lock) = {};

  // Serializes the creation of records (an arena chunk of spawn records, a
  // goroutine record) and the growth of the global run queue and free
  // arrays to match (taken before sched.lock and gfree_lock).
  lock_t gchunk_lock;
  // Records of both kinds created so far; the rings and the free arrays hold
  // at least this many (written under gchunk_lock and both array locks).
  std::size_t gcount GORO_GUARDED_BY(gchunk_lock) = 0;
  // Capacity of the rings and of the free arrays (all the same).
  std::size_t garray_cap GORO_GUARDED_BY(gchunk_lock) = 0;

  // The registries that diagnostics walk (records are never freed before
  // shutdown; free ones wait on the free lists). Spawn records: the arena
  // chunks, g_chunk_size each. Goroutine records: a list, newest first,
  // through G::allg_next; a record's link never changes once it is
  // published, so a walker needs only the head: pushed under allgs_lock
  // with a release store, read with an acquire load.
  lock_t allgs_lock;
  std::vector<G*> gchunks GORO_GUARDED_BY(allgs_lock);
  std::size_t gchunk_used GORO_GUARDED_BY(allgs_lock) = 0;
  std::atomic<G*> allg{nullptr};
};

extern sched_t sched;

inline constexpr std::uint32_t debug_migrate = 1;
inline constexpr std::uint32_t debug_shuffle = 2;

M* current_m() noexcept;

/// What rw_mutex's read paths need from the scheduler (rw_mutex.cpp): the
/// index of the caller's P (-1 on a thread, or a goroutine in blocking(),
/// without one) and the caller's read hint (G::central_read_hint, or a
/// thread-local one on a plain thread).
struct reader_context {
  int p;
  const void** hint;
};
reader_context current_reader_context() noexcept;
/// Empties every rw_mutex reader slot (rw_mutex.cpp). For teardown: the
/// read locks of abandoned goroutines end with them, and a later run may
/// build a new rw_mutex where one with slots was.
void reset_reader_slots() noexcept;

/// Puts t (when, fire and arg set) on the heap of the current M's P (P 0's
/// off a P) and makes sure an M wakes for it. Stop it with timer_stop
/// (timer.hpp). Throws std::logic_error outside a running runtime.
void timer_start(timer* t);

// Scheduler pieces used by sysmon, checkdead and blocking (sched.cpp).
bool runq_empty(P* p) noexcept;
void wakep() noexcept;
void startm(P* p, bool spinning) noexcept;
std::int64_t earliest_timer() noexcept;
/// Fires the timers of p due by now, from any thread (sysmon runs those of a
/// P stuck on one goroutine); true if any fired.
bool run_due_timers(P* p, std::int64_t now) noexcept;
/// Sets the number of Ps in use (set_maxprocs without the public checks);
/// returns the previous count.
int resize_procs(int n);

// sysmon (sysmon.cpp).
void sysmon_start();
void sysmon_stop() noexcept;
/// Called by an M that just took a P: wakes sysmon if it sleeps idle.
void sysmon_wake_if_idle() noexcept;

/// On g0 in stopm, when this M made every M idle: reports a deadlock if
/// nothing can wake any goroutine (checkdead.cpp).
void checkdead(std::uint64_t gen) noexcept;

[[noreturn]] void fatal_goroutine_stack_overflow(G* g) noexcept;
[[noreturn]] void fatal_escaped_exception(G* g) noexcept;

}  // namespace goro::detail
