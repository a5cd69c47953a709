// goro/rw_mutex.hpp: a reader/writer mutual-exclusion lock (Go's
// sync.RWMutex).
//
// Any number of readers or one writer. Meets the C++ SharedLockable and
// Lockable requirements: std::shared_lock, std::unique_lock, std::lock_guard
// and std::scoped_lock work. Usable from goroutines and plain threads in any
// mix (a goroutine parks, a thread sleeps on a futex).
//
// Writer preference, as in Go: once a writer is waiting in lock(), new
// lock_shared() calls block until that writer has had the lock, so a steady
// stream of readers cannot starve writers. Consequently a reader must not
// take a second read lock while holding one (Go forbids recursive read
// locking for the same reason: a writer queued between the two deadlocks
// both).
//
// Not tied to a goroutine: one goroutine may lock it and another unlock it.
//
// Errors are fatal, as in Go (unlocks are noexcept so lock guards can call
// them): "fatal error: sync: RUnlock of unlocked RWMutex", "fatal error:
// sync: Unlock of unlocked RWMutex".
//
// Readers scale: a goroutine's read lock normally takes a slot in a table
// row of its own P instead of updating a counter shared by every core, so
// readers on different Ps do not contend; lock() collects the slots
// (rw_mutex.cpp has the protocol). Waits spin briefly before they sleep.
//
// Memory ordering (Go's): the n-th unlock() happens before the (n+1)-th
// lock() returns; for any lock_shared(), there is an n such that the n-th
// unlock() happens before that lock_shared() returns and the matching
// unlock_shared() happens before the (n+1)-th lock() returns.
#pragma once

#include <atomic>
#include <cstdint>

#include "goro/mutex.hpp"

namespace goro {

class rw_mutex {
 public:
  constexpr rw_mutex() noexcept = default;
  rw_mutex(const rw_mutex&) = delete;
  rw_mutex& operator=(const rw_mutex&) = delete;

  /// Write lock: waits for the current readers to leave; new readers wait.
  void lock();
  /// Takes the write lock if nobody holds the lock in either mode. Never waits.
  bool try_lock() noexcept;
  void unlock() noexcept;

  /// Read lock: waits while a writer holds the lock or is waiting for it.
  void lock_shared();
  /// Takes a read lock unless a writer holds or waits for the lock.
  bool try_lock_shared() noexcept;
  void unlock_shared() noexcept;

  // Go's names, for readers of ported code.
  void rlock() { lock_shared(); }
  void runlock() noexcept { unlock_shared(); }

 private:
  static constexpr std::int32_t max_readers = 1 << 30;

  void lock_shared_central(const void** hint);
  void unlock_shared_central() noexcept;
  void unlock_shared_slow(std::int32_t r) noexcept;  // a writer is pending: maybe wake it
  std::int32_t count_in_slot_readers() noexcept;     // lock(): see rw_mutex.cpp
  void release_queued_readers() noexcept;            // unlock()'s second half

  mutex w_;                                   // held by the writer and by waiting writers
  std::atomic<std::uint32_t> writer_sem_{0};  // the writer waits here for departing readers
  std::atomic<std::uint32_t> reader_sem_{0};  // readers wait here for the writer
  // Readers counted centrally (the others hold per-P slots, rw_mutex.cpp);
  // minus max_readers while a writer is in.
  std::atomic<std::int32_t> reader_count_{0};
  std::atomic<std::int32_t> reader_wait_{0};  // readers the writer still waits for
};

}  // namespace goro
