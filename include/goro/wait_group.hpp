// goro/wait_group.hpp: waiting for a collection of goroutines to finish
// (Go's sync.WaitGroup).
//
// add(n) before starting work, done() when a piece finishes, wait() blocks
// until the counter is zero. Usable from goroutines and plain threads alike,
// in any mix: a thread blocked in wait() sleeps on a futex, a goroutine parks.
//
// Errors (goro::panic_error with Go's words):
//   "sync: negative WaitGroup counter"              the counter went below 0;
//   "sync: WaitGroup misuse: Add called concurrently with Wait";
//   "sync: WaitGroup is reused before previous Wait has returned".
//
// Memory ordering: every done() (and add() with a negative delta) happens
// before the return of any wait() that it unblocks (wait(ctx) included, when
// it returns {}); a wait(ctx) that gives up orders nothing.
//
// Not copyable or movable: goroutines refer to it by address.
#pragma once

#include <atomic>
#include <cstdint>
#include <system_error>

namespace goro {

class context;  // goro/context.hpp

// A cache line to itself: every done() of every goroutine writes the
// counter, so a neighbour that its owner writes (the frame of the goroutine
// spawning the workers, say) would be pulled back and forth with it.
class alignas(64) wait_group {
 public:
  wait_group() = default;
  wait_group(const wait_group&) = delete;
  wait_group& operator=(const wait_group&) = delete;

  /// Adds delta (which may be negative) to the counter; wakes every waiter
  /// when it reaches zero.
  void add(int delta);
  /// add(-1).
  void done() { add(-1); }
  /// Blocks until the counter is zero.
  void wait();
  /// Blocks until the counter is zero ({}) or ctx is done (ctx's error; the
  /// wait group as if this call had never waited).
  [[nodiscard]] std::error_code wait(const context& ctx);

 private:
  // High 32 bits: the counter. Low 32 bits: the number of waiters.
  std::atomic<std::uint64_t> state_{0};
  // Semaphore the waiters park on (see src/runtime/sema.hpp).
  std::atomic<std::uint32_t> sema_{0};
};

}  // namespace goro
