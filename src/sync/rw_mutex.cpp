// goro::rw_mutex, Go's sync.RWMutex algorithm over the address-keyed
// semaphores (sema.hpp).
//
// State:
//   reader_count_  number of readers holding or waiting for a read lock;
//                  a writer subtracts max_readers, so a negative value means
//                  "a writer holds or waits for the lock" and arriving readers
//                  queue on reader_sem_.
//   reader_wait_   the readers that were inside when the writer announced
//                  itself and have not left yet; the last of them to leave
//                  releases writer_sem_.
//   w_             serializes writers (a second writer waits on it, not on
//                  the readers).
//
// Protocol:
//   lock_shared:   reader_count_ += 1; negative -> sleep on reader_sem_ (the
//                  writer's unlock releases it once per reader that counted
//                  itself in while the writer was there).
//   unlock_shared: reader_count_ -= 1; negative -> a writer is pending: the
//                  reader decrements reader_wait_ and the one reaching 0
//                  releases writer_sem_.
//   lock:          w_.lock(); r = (reader_count_ -= max_readers) + max_readers
//                  is the number of readers inside; reader_wait_ += r; if
//                  that leaves readers to wait for, sleep on writer_sem_.
//   unlock:        r = (reader_count_ += max_readers) is the number of
//                  readers that queued meanwhile: release reader_sem_ r
//                  times; w_.unlock().
// The reader_count_ and reader_wait_ updates are sequentially consistent
// read-modify-writes: the writer's subtraction and a reader's increment are
// totally ordered, so each reader either entered before the writer (and is
// counted in r) or after (and sees the negative count).
//
// Fast paths: lock_shared / unlock_shared are one fetch_add each, inlined
// from rw_mutex.hpp except under TSan, where the *_outline versions here run
// instead so that the edges below are made.
//
// TSan (this file is not instrumented, race.hpp): Go's edges. A reader's
// lock_shared acquires reader_sem_ (released by every writer unlock); its
// unlock_shared releases writer_sem_ (acquired by the next writer); the
// writer's unlock releases reader_sem_. Readers do not synchronize with each
// other.
#include "goro/rw_mutex.hpp"

#include "platform/race.hpp"
#include "runtime/fault.hpp"
#include "runtime/park.hpp"
#include "runtime/sema.hpp"

namespace goro {

void rw_mutex::lock_shared_wait() {
  // A writer is pending: wait for its unlock (which releases reader_sem_
  // once for us: it counts us in its reader_count_ addition).
  detail::sem_acquire(&reader_sem_, false, detail::wait_reason::rw_mutex_read);
}

void rw_mutex::lock_shared_outline() {
  // seq_cst: ordered against the writer's subtraction in lock().
  if (reader_count_.fetch_add(1, std::memory_order_seq_cst) + 1 < 0) lock_shared_wait();
  detail::race_acquire(&reader_sem_);
}

bool rw_mutex::try_lock_shared() noexcept {
  std::int32_t c = reader_count_.load(std::memory_order_relaxed);
  for (;;) {
    if (c < 0) return false;
    // Acquire pairs with the writer's release in unlock() (its fetch_add).
    if (reader_count_.compare_exchange_weak(c, c + 1, std::memory_order_seq_cst,
                                            std::memory_order_relaxed)) {
      detail::race_acquire(&reader_sem_);
      return true;
    }
  }
}

void rw_mutex::unlock_shared_outline() noexcept {
  detail::race_release(&writer_sem_);
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

void rw_mutex::lock() {
  w_.lock();
  // Announce the writer; r is the number of readers inside right now.
  // seq_cst: totally ordered with every reader's fetch_add / fetch_sub.
  const std::int32_t r = reader_count_.fetch_sub(max_readers, std::memory_order_seq_cst);
  // acq_rel: pairs with the departing readers' fetch_sub in unlock_shared.
  // (They may have decremented reader_wait_ below zero before we add r.)
  if (r != 0 && reader_wait_.fetch_add(r, std::memory_order_acq_rel) + r != 0)
    detail::sem_acquire(&writer_sem_, false, detail::wait_reason::rw_mutex_write);
  detail::race_acquire(&reader_sem_);
  detail::race_acquire(&writer_sem_);
}

bool rw_mutex::try_lock() noexcept {
  if (!w_.try_lock()) return false;
  std::int32_t zero = 0;
  // Acquire pairs with the readers' release (unlock_shared's fetch_sub).
  if (!reader_count_.compare_exchange_strong(zero, -max_readers, std::memory_order_seq_cst,
                                             std::memory_order_relaxed)) {
    w_.unlock();
    return false;
  }
  detail::race_acquire(&reader_sem_);
  detail::race_acquire(&writer_sem_);
  return true;
}

void rw_mutex::unlock() noexcept {
  detail::race_release(&reader_sem_);
  // Readers may enter again. seq_cst, and release for the readers that see a
  // non-negative count from now on (their fetch_add).
  const std::int32_t r =
      reader_count_.fetch_add(max_readers, std::memory_order_seq_cst) + max_readers;
  if (r >= max_readers) detail::fatal_error("sync: Unlock of unlocked RWMutex");
  // Wake the readers that queued while we held the lock.
  for (std::int32_t i = 0; i < r; ++i) detail::sem_release(&reader_sem_, false);
  w_.unlock();
}

}  // namespace goro
