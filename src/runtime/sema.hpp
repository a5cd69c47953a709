// Runtime semaphores keyed by address (Go's runtime/sema.go): the sleeping
// half of goro::mutex and goro::wait_group. Keeping the queues in a global
// table lets those types stay a few words large.
//
// Protocol: *addr counts available units. sem_acquire takes one, parking FIFO
// (or LIFO) in the bucket for addr until sem_release adds one. Each bucket
// counts its waiters (nwait) so a release with nobody waiting touches no lock:
// the releaser increments *addr and then loads nwait; a waiter increments
// nwait and then re-checks *addr; both are sequentially consistent, so at
// least one of them sees the other (Dekker).
#pragma once

#include <atomic>
#include <cstdint>

#include "runtime/park.hpp"

namespace goro::detail {

/// Waits until *addr > 0 and decrements it. lifo queues the caller at the
/// front (a waiter that already waited once, as Go's mutex does).
void sem_acquire(std::atomic<std::uint32_t>* addr, bool lifo, wait_reason reason);

/// Lets a waiter of sem_acquire_cancellable be cancelled from another
/// goroutine or thread (a context hook). Owned by the waiting caller.
struct sem_cancel_token {
  explicit sem_cancel_token(std::atomic<std::uint32_t>* a) noexcept : addr(a) {}
  std::atomic<std::uint32_t>* const addr;
  void* waiter = nullptr;  // the queued waiter record, under the bucket lock
  bool requested = false;  // under the bucket lock
};

/// sem_acquire that gives up once sem_cancel(tok) is called: true if a unit
/// was taken, false if cancelled first (nothing taken, the queue as if the
/// caller had never come). tok must outlive the call and every sem_cancel.
bool sem_acquire_cancellable(std::atomic<std::uint32_t>* addr, bool lifo, wait_reason reason,
                             sem_cancel_token& tok);

/// Cancels the wait of tok's owner (before, during or after it queues).
/// Takes the bucket lock: callable under a context's lock, never under a
/// bucket lock.
void sem_cancel(sem_cancel_token& tok) noexcept;

/// Increments *addr and wakes one waiter. With handoff, the unit goes straight
/// to the woken waiter and the caller yields to it (mutex starvation mode).
void sem_release(std::atomic<std::uint32_t>* addr, bool handoff) noexcept;

/// Drops every goroutine waiter from the table. Called when a runtime shuts
/// down: its abandoned goroutines' waiter records live on stacks that are
/// about to be unmapped, and must not be found by a later run(). Waiting
/// plain threads stay queued.
void sem_forget_goroutines() noexcept;

}  // namespace goro::detail
