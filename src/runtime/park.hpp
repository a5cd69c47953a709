// The waiter core (Go's gopark/goready + sudog): how every goro primitive
// blocks and wakes, for goroutines and plain threads alike.
//
// Protocol, for a primitive with a wait queue guarded by lock L:
//   1. The waiter takes L, finds it must wait, puts a parker (usually inside
//      its own waiter record, on its stack) on the queue.
//   2. parker::park_unlock(L): a goroutine switches to its scheduler context
//      and *then* L is released, so its context is saved before anyone can
//      find it on the queue and wake it (no lost wake-up, no resume of a
//      half-saved context). A plain thread releases L and sleeps on the
//      parker's futex word.
//   3. A waker takes L, removes the parker from the queue, fills in any result
//      fields of the waiter record, releases L (or not: wake() takes no lock),
//      and calls parker::wake(). After wake() the waker must not touch the
//      waiter record: the waiter may already have returned and popped it.
//
// Memory ordering: everything the waker wrote before wake() is visible to the
// waiter when park_unlock() returns (release in wake(), acquire in park).
#pragma once

#include <atomic>
#include <cstdint>

#include "platform/futex.hpp"
#include "platform/lock.hpp"
#include "platform/race.hpp"

namespace goro::detail {

struct G;

/// Why a goroutine is parked; shown in goroutine dumps.
enum class wait_reason : std::uint8_t {
  none,
  chan_receive,
  chan_send,
  chan_receive_nil,
  chan_send_nil,
  select,
  select_no_cases,
  sleep,
  mutex,
  wait_group,
  semaphore,
  rw_mutex_read,
  rw_mutex_write,
  cond,
  blocking_call,
  spawn_backlog,  // goro::go waiting for never-started goroutines to start
};

const char* wait_reason_string(wait_reason r) noexcept;

/// The running goroutine, or nullptr on a plain thread (or the scheduler).
/// Never inlined or cached: a goroutine may resume on another thread.
G* current_g() noexcept;

/// Parks the current goroutine. Once its context is saved, commit(arg) runs on
/// the scheduler's stack; if it returns false the goroutine resumes at once.
/// Must be called on a goroutine.
void gopark(bool (*commit)(void* arg), void* arg, wait_reason reason);

/// Parks the current goroutine and releases l once its context is saved.
void gopark_unlock(lock_t& l, wait_reason reason) GORO_RELEASE(l);

/// A fast pseudo-random number (the M's generator, or a per-thread one on a
/// plain thread); for select's poll order and similar, never for secrets.
std::uint32_t cheap_rand() noexcept;

/// Makes a parked goroutine runnable (from a goroutine, the scheduler or a
/// plain thread). It runs next on the caller's P when there is one.
void goready(G* g) noexcept;

/// One waiting party: a goroutine, or a plain thread.
class parker {
 public:
  parker() noexcept : g_(current_g()), race_ctx_(race_context()) {}

  /// The waiting party's TSan context, for edges made on its behalf while it
  /// sleeps (race.hpp); nullptr outside TSan builds.
  void* race_ctx() const noexcept { return race_ctx_; }

  bool is_goroutine() const noexcept { return g_ != nullptr; }
  G* goroutine() const noexcept { return g_; }

  /// Step 2 of the protocol: releases l and blocks until wake().
  void park_unlock(lock_t& l, wait_reason reason) GORO_RELEASE(l) {
    if (g_ != nullptr) {
      gopark_unlock(l, reason);
      return;
    }
    l.unlock();
    thread_wait();
  }

  /// Step 2 for a waiter that holds several locks (a select): commit(arg)
  /// releases them, after the goroutine's context is saved. A plain thread
  /// runs commit and then blocks until wake().
  void park_commit(bool (*commit)(void*), void* arg, wait_reason reason) {
    if (g_ != nullptr) {
      gopark(commit, arg, reason);
      return;
    }
    commit(arg);
    thread_wait();
  }

  /// Plain threads only, after the locks are released: blocks until wake()
  /// (true) or until the steady-clock deadline passes (false).
  bool thread_wait_until(std::int64_t deadline_ns) noexcept;

  /// Plain threads only: blocks until wake().
  void thread_wait() noexcept {
    // Acquire pairs with the release store in wake().
    while (word_.load(std::memory_order_acquire) == 0) futex_wait(&word_, 0);
  }

  /// Step 3: makes the waiter runnable.
  void wake() noexcept {
    if (G* g = g_) {
      goready(g);
      return;
    }
    // Release pairs with the acquire load in park_unlock(). The waiter may
    // return and destroy *this as soon as the store lands; futex_wake on a
    // stale address is harmless (at worst a spurious wake-up elsewhere, which
    // every futex user tolerates).
    word_.store(1, std::memory_order_release);
    futex_wake(&word_, 1);
  }

 private:
  G* g_;
  void* race_ctx_;
  std::atomic<std::uint32_t> word_{0};
};

}  // namespace goro::detail
