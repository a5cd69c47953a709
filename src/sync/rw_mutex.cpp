// goro::rw_mutex: Go's sync.RWMutex algorithm over the address-keyed
// semaphores (sema.hpp), with per-P reader slots in front of it so that
// readers on different cores do not fight over one counter.
//
// Central state (Go's):
//   reader_count_  readers counted centrally, holding or waiting for a read
//                  lock; a writer subtracts max_readers, so a negative value
//                  means "a writer holds or waits for the lock" and arriving
//                  readers queue on reader_sem_.
//   reader_wait_   the readers that were inside when the writer announced
//                  itself and have not left yet; the last of them to leave
//                  releases writer_sem_.
//   w_             serializes writers (a second writer waits on it, not on
//                  the readers).
//
// Reader slots: a process-wide table with one cache-line row of slots per P
// id. A slot holds the address of the rw_mutex its reader has read-locked,
// or nullptr. Every change to a slot is a CAS, so exactly one party empties
// a filled slot: its reader's unlock_shared, another goroutine unlocking on
// that reader's behalf (slots of one mutex are interchangeable), or a writer
// collecting it. rows_used only grows; rows at or above it are all empty.
//
// Protocol (every operation on reader_count_, the slots and rows_used is
// sequentially consistent where it takes part in a Dekker pair):
//   lock_shared (goroutine with a P, no writer in sight): CAS a free slot of
//     its P's row from nullptr to this, then load reader_count_. Not
//     negative: the lock is held. Negative (a writer came): CAS the slot back
//     to nullptr; if that fails, the writer collected the slot and counted us
//     centrally, so leave as a central reader (unlock_shared_central). Then
//     queue as a central reader.
//   lock_shared otherwise (a thread, a full row, a writer present):
//     reader_count_ += 1; negative -> sleep on reader_sem_ (the writer's
//     unlock releases it once per reader that counted itself in meanwhile).
//     The caller's read hint (sched.hpp) remembers the mutex.
//   unlock_shared: the hint names this mutex: central. Otherwise empty a
//     slot holding this: in our row, else in any row (we may have migrated,
//     or be unlocking for another goroutine); none anywhere: central.
//   unlock_shared_central: reader_count_ -= 1; negative -> a writer is
//     pending: the reader decrements reader_wait_ and the one reaching 0
//     releases writer_sem_. Go's misuse check lives here.
//   lock: w_.lock(); r = (reader_count_ -= max_readers) + max_readers
//     central readers are inside; then collect every slot holding this
//     (count_in_slot_readers: reader_count_ += 1 first, then CAS the slot to
//     nullptr, undoing the += 1 if the reader left first), adding one to r
//     per collected slot; reader_wait_ += r; if that leaves readers to wait
//     for, sleep on writer_sem_.
//   unlock: r = (reader_count_ += max_readers) is the number of readers
//     that queued meanwhile: release reader_sem_ r times; w_.unlock().
//
// Why no reader is missed: a slot reader's [slot CAS; load reader_count_]
// and the writer's [reader_count_ -= max_readers; load rows_used; load each
// slot] are Dekker pairs in the single seq_cst order: either the writer
// sees the slot (and collects it, or finds it already given back), or the
// reader sees the negative count (and backs out). rows_used is raised, with
// a seq_cst RMW, before a row's first slot is taken, and read seq_cst by the
// reader first, so a writer that reads an old rows_used has subtracted
// before that reader looks at the count.
//
// Counting a collected reader centrally *before* emptying its slot keeps
// the central count from dipping when that reader leaves through it at
// once, which would trip the "RUnlock of unlocked" check.
//
// The read hint: a reader that counted itself centrally must leave
// centrally when no slot of this mutex exists, and it would otherwise have
// to search every row first to know. The hint (one pointer per goroutine or
// thread) says "my last central read lock was this mutex, still held"; a
// slot read lock clears it if it names this mutex, so it is right in every
// correct program. Unlocking for another goroutine just takes the search.
//
// Waiting: both waits (a writer for the readers inside, a reader for a
// writer) watch their semaphore for about a microsecond and a half before
// they sleep on it (spin_then_acquire): parked waiters are woken onto the
// waker's P, and the churn of parks and steals that follows each write was
// most of rw_read_heavy's time on two Ps.
//
// Memory ordering: a slot reader's critical section ends with the release
// CAS emptying its slot (or, collected, with its central fetch_sub); the
// writer's load or failed CAS of that slot reads that value or a later CAS
// in its release sequence. A reader starts after the seq_cst load of
// reader_count_ that reads the last writer's unlock (a release RMW).
//
// TSan (this file is not instrumented, race.hpp): Go's edges. A reader's
// lock_shared acquires reader_sem_ (released by every writer unlock); its
// unlock_shared releases writer_sem_ (acquired by the next writer); the
// writer's unlock releases reader_sem_. Readers do not synchronize with each
// other.
#include "goro/rw_mutex.hpp"

#include <type_traits>

#include "platform/race.hpp"
#include "runtime/fault.hpp"
#include "runtime/park.hpp"
#include "runtime/sched.hpp"
#include "runtime/sema.hpp"

namespace goro {
namespace {

// One row per P id; eight slots fill a line.
constexpr int max_rows = 256;
// Every P id (an index into sched.allp) has a row, so P ids need no check.
static_assert(max_rows >= static_cast<int>(std::extent_v<decltype(detail::sched_t::allp)>),
              "every P id needs a row");
constexpr int slots_per_row = 8;

struct alignas(64) reader_row {
  std::atomic<const void*> slot[slots_per_row];
};

reader_row rows[max_rows];
// Rows below this may hold slots. Raised (seq_cst RMW) before a row's first
// slot is taken; read seq_cst by writers after their subtraction.
std::atomic<int> rows_used{0};

void note_row(int p) noexcept {
  int used = rows_used.load(std::memory_order_seq_cst);
  while (used <= p && !rows_used.compare_exchange_weak(used, p + 1, std::memory_order_seq_cst,
                                                       std::memory_order_seq_cst)) {
  }
}

// Calls f on every slot of every row that may be filled.
template <class F>
void for_each_used_slot(std::memory_order order, F f) {
  const int used = rows_used.load(order);
  for (int i = 0; i < used; ++i) {
    for (auto& slot : rows[i].slot) f(slot);
  }
}

// Empties one slot of row that holds self. Release: the reader's critical
// section happens before whoever next reads the slot (a collecting writer).
bool release_slot(reader_row& row, const void* self) noexcept {
  for (auto& slot : row.slot) {
    const void* mine = self;
    if (slot.load(std::memory_order_relaxed) == self &&
        slot.compare_exchange_strong(mine, nullptr, std::memory_order_seq_cst,
                                     std::memory_order_relaxed))
      return true;
  }
  return false;
}

// The waits of a read-mostly lock are short: a writer waits for readers
// that are inside their sections on other Ps, readers wait out a writer's
// section. Sleeping on the semaphore costs a park and a wake-up, and the
// woken goroutine moves to the waker's P, which spreads the goroutines
// that take the lock over the Ps and makes every later wait likelier.
// So first watch the semaphore for about a microsecond and a half (64
// pauses of about 23 ns on these machines), as goro::mutex and Go's Mutex
// spin before they sleep; only with another P to run whoever we wait for.
// The units taken are the same either way: the semantics are Go's.
void spin_then_acquire(std::atomic<std::uint32_t>* sem, detail::wait_reason reason) {
  if (detail::sched.nprocs.load(std::memory_order_relaxed) > 1) {
    for (int i = 0; i < 64 && sem->load(std::memory_order_relaxed) == 0; ++i) detail::cpu_relax();
  }
  detail::sem_acquire(sem, false, reason);  // takes a unit seen above at once
}

}  // namespace

namespace detail {

void reset_reader_slots() noexcept {
  for_each_used_slot(std::memory_order_acquire,
                     [](auto& slot) { slot.store(nullptr, std::memory_order_relaxed); });
}

}  // namespace detail

void rw_mutex::lock_shared() {
  const detail::reader_context ctx = detail::current_reader_context();
  // The relaxed load only steers: with a writer in sight, skip the slot.
  if (ctx.p >= 0 && reader_count_.load(std::memory_order_relaxed) >= 0) {
    if (rows_used.load(std::memory_order_seq_cst) <= ctx.p) note_row(ctx.p);
    for (auto& slot : rows[ctx.p].slot) {
      const void* expected = nullptr;
      if (slot.load(std::memory_order_relaxed) != nullptr ||
          !slot.compare_exchange_strong(expected, this, std::memory_order_seq_cst,
                                        std::memory_order_relaxed))
        continue;
      // seq_cst: the Dekker pair with lock()'s subtraction and slot loads;
      // acquire: reads the last writer's unlock (its release fetch_add).
      if (reader_count_.load(std::memory_order_seq_cst) >= 0) {
        if (*ctx.hint == this) *ctx.hint = nullptr;
        detail::race_acquire(&reader_sem_);
        return;
      }
      // A writer announced itself: give the slot back, unless the writer
      // already collected it and counted us in; then leave as counted.
      const void* mine = this;
      if (!slot.compare_exchange_strong(mine, nullptr, std::memory_order_seq_cst,
                                        std::memory_order_relaxed))
        unlock_shared_central();
      break;
    }
  }
  lock_shared_central(ctx.hint);
}

void rw_mutex::lock_shared_central(const void** hint) {
  // seq_cst: ordered against the writer's subtraction in lock(); acquire
  // pairs with the release of the last writer's unlock() (its fetch_add).
  if (reader_count_.fetch_add(1, std::memory_order_seq_cst) + 1 < 0) {
    // A writer is pending: wait for its unlock (which releases reader_sem_
    // once for us: it counts us in its reader_count_ addition).
    spin_then_acquire(&reader_sem_, detail::wait_reason::rw_mutex_read);
  }
  *hint = this;
  detail::race_acquire(&reader_sem_);
}

bool rw_mutex::try_lock_shared() noexcept {
  std::int32_t c = reader_count_.load(std::memory_order_relaxed);
  for (;;) {
    if (c < 0) return false;
    // Acquire pairs with the writer's release in unlock() (its fetch_add).
    if (reader_count_.compare_exchange_weak(c, c + 1, std::memory_order_seq_cst,
                                            std::memory_order_relaxed)) {
      *detail::current_reader_context().hint = this;
      detail::race_acquire(&reader_sem_);
      return true;
    }
  }
}

void rw_mutex::unlock_shared() noexcept {
  detail::race_release(&writer_sem_);
  const detail::reader_context ctx = detail::current_reader_context();
  if (*ctx.hint == this) {
    *ctx.hint = nullptr;
    unlock_shared_central();
    return;
  }
  if (ctx.p >= 0 && release_slot(rows[ctx.p], this)) return;
  const int used = rows_used.load(std::memory_order_acquire);
  for (int i = 0; i < used; ++i) {
    if (i != ctx.p && release_slot(rows[i], this)) return;
  }
  unlock_shared_central();
}

void rw_mutex::unlock_shared_central() noexcept {
  // seq_cst (release part): the reader's critical section happens before a
  // writer that observes the decrement (lock()'s subtraction or the
  // reader_wait_ chain below).
  const std::int32_t r = reader_count_.fetch_sub(1, std::memory_order_seq_cst) - 1;
  if (r < 0) unlock_shared_slow(r);
}

void rw_mutex::unlock_shared_slow(std::int32_t r) noexcept {
  if (r + 1 == 0 || r + 1 == -max_readers) detail::fatal_error("sync: RUnlock of unlocked RWMutex");
  // A writer is pending; the last departing reader wakes it. acq_rel: chains
  // the departing readers' releases to the one that releases writer_sem_.
  if (reader_wait_.fetch_sub(1, std::memory_order_acq_rel) - 1 == 0)
    detail::sem_release(&writer_sem_, false);
}

std::int32_t rw_mutex::count_in_slot_readers() noexcept {
  std::int32_t collected = 0;
  // seq_cst loads: the writer's half of the Dekker pairs (see the top).
  for_each_used_slot(std::memory_order_seq_cst, [&](auto& slot) {
    if (slot.load(std::memory_order_seq_cst) != this) return;
    // Count the reader centrally first: once its slot is empty it leaves
    // through reader_count_, possibly at once.
    reader_count_.fetch_add(1, std::memory_order_seq_cst);
    const void* mine = this;
    // Acquire (also on failure): a reader that left first released its
    // critical section with the CAS that emptied the slot.
    if (slot.compare_exchange_strong(mine, nullptr, std::memory_order_acq_rel,
                                     std::memory_order_acquire))
      ++collected;
    else
      reader_count_.fetch_sub(1, std::memory_order_relaxed);
  });
  return collected;
}

void rw_mutex::lock() {
  w_.lock();
  // Announce the writer; r is the number of central readers inside right
  // now. seq_cst: totally ordered with every reader's fetch_add / fetch_sub
  // and slot CAS.
  std::int32_t r = reader_count_.fetch_sub(max_readers, std::memory_order_seq_cst);
  r += count_in_slot_readers();
  // acq_rel: pairs with the departing readers' fetch_sub in unlock_shared.
  // (They may have decremented reader_wait_ below zero before we add r.)
  if (r != 0 && reader_wait_.fetch_add(r, std::memory_order_acq_rel) + r != 0)
    spin_then_acquire(&writer_sem_, detail::wait_reason::rw_mutex_write);
  detail::race_acquire(&reader_sem_);
  detail::race_acquire(&writer_sem_);
}

bool rw_mutex::try_lock() noexcept {
  if (!w_.try_lock()) return false;
  std::int32_t zero = 0;
  // Acquire pairs with the central readers' release (unlock_shared's fetch_sub).
  if (!reader_count_.compare_exchange_strong(zero, -max_readers, std::memory_order_seq_cst,
                                             std::memory_order_relaxed)) {
    w_.unlock();
    return false;
  }
  // Slot readers inside? (seq_cst loads, as in count_in_slot_readers; an
  // empty slot read here was emptied by a release CAS.)
  bool readers_inside = false;
  for_each_used_slot(std::memory_order_seq_cst, [&](auto& slot) {
    readers_inside |= slot.load(std::memory_order_seq_cst) == this;
  });
  if (readers_inside) {
    // Back out as unlock() would: readers may have queued meanwhile.
    release_queued_readers();
    return false;
  }
  detail::race_acquire(&reader_sem_);
  detail::race_acquire(&writer_sem_);
  return true;
}

void rw_mutex::unlock() noexcept {
  detail::race_release(&reader_sem_);
  release_queued_readers();
}

void rw_mutex::release_queued_readers() noexcept {
  // Readers may enter again. seq_cst, and release for the readers that see a
  // non-negative count from now on (their fetch_add or load).
  const std::int32_t r =
      reader_count_.fetch_add(max_readers, std::memory_order_seq_cst) + max_readers;
  if (r >= max_readers) detail::fatal_error("sync: Unlock of unlocked RWMutex");
  // Wake the readers that queued while we held the lock.
  for (std::int32_t i = 0; i < r; ++i) detail::sem_release(&reader_sem_, false);
  w_.unlock();
}

}  // namespace goro
