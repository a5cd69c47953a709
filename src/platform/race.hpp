// Happens-before annotations for ThreadSanitizer (Go's race.Acquire /
// race.Release, and raceacquireg / racereleaseg for another goroutine).
//
// Under TSan goro's runtime (this library) is compiled *uninstrumented*, as
// Go's runtime is not race-instrumented: its internal locks, atomics and run
// queues create no happens-before edges, and goroutine switches are
// announced to TSan without synchronization (no_sync fibers). So TSan sees
// exactly the edges goro promises, and each is made here, explicitly:
//   - spawn: everything before go(f) happens before f starts;
//   - run(): the main function's return happens before run() returns;
//   - channels: Go's edges (send before receive, close before a "closed"
//     receive, unbuffered receive before the send completes, the k-th receive
//     before the (k+C)-th send completes), see chan.cpp;
//   - mutex and wait_group: unlock before the next lock, done before the
//     wait it releases.
// A race between two goroutines that merely run one after the other on one
// thread is therefore reported, as Go's detector reports it.
//
// Two over-approximations, both of which can only hide a race, never invent
// one: a new goroutine is ordered after the exited goroutine whose stack it
// reuses (the stack memory would otherwise look raced), and a plain thread's
// clock is updated on its behalf while it sleeps in a channel operation.
//
// The runtime's own memory accesses are invisible to TSan, but its calls
// into the C library (malloc, free, memcpy) are still intercepted and would
// be checked as accesses of whichever goroutine happens to run them: a
// runtime structure allocated by one goroutine and freed by another would
// look raced. So every scheduler context runs inside a race_ignore scope, as
// do the runtime paths that allocate on a goroutine (spawn, waking a thread,
// growing a timer heap). A scope never spans a park: a goroutine abandoned
// at exit must not hold one.
//
// In every other build these compile to nothing.
#pragma once

#include "platform/sanitizer.hpp"

namespace goro::detail {

#if GORO_TSAN

extern "C" {
void __tsan_acquire(void* addr);
void __tsan_release(void* addr);
void __tsan_ignore_thread_begin(void);
void __tsan_ignore_thread_end(void);
}

/// Memory accesses (including intercepted C library calls) of the running
/// goroutine or thread are not checked while one exists. Nests.
class race_ignore {
 public:
  race_ignore() noexcept { __tsan_ignore_thread_begin(); }
  ~race_ignore() { __tsan_ignore_thread_end(); }
  race_ignore(const race_ignore&) = delete;
  race_ignore& operator=(const race_ignore&) = delete;
};

inline void race_acquire(const void* addr) noexcept { __tsan_acquire(const_cast<void*>(addr)); }
inline void race_release(const void* addr) noexcept { __tsan_release(const_cast<void*>(addr)); }

/// The TSan context of the running goroutine or thread.
inline void* race_context() noexcept { return __tsan_get_current_fiber(); }

/// Acquire / release on behalf of the party whose context is ctx, which must
/// not be running (a parked goroutine, a sleeping thread).
inline void race_acquire_as(void* ctx, const void* addr) noexcept {
  void* self = __tsan_get_current_fiber();
  __tsan_switch_to_fiber(ctx, 1 /* __tsan_switch_to_fiber_no_sync */);
  __tsan_acquire(const_cast<void*>(addr));
  __tsan_switch_to_fiber(self, 1);
}
inline void race_release_as(void* ctx, const void* addr) noexcept {
  void* self = __tsan_get_current_fiber();
  __tsan_switch_to_fiber(ctx, 1);
  __tsan_release(const_cast<void*>(addr));
  __tsan_switch_to_fiber(self, 1);
}

#else

class race_ignore {
 public:
  // User-provided, so that a scope variable is not "unused".
  race_ignore() noexcept {}  // NOLINT(modernize-use-equals-default)
  ~race_ignore() {}          // NOLINT(modernize-use-equals-default)
  race_ignore(const race_ignore&) = delete;
  race_ignore& operator=(const race_ignore&) = delete;
};
inline void race_acquire(const void*) noexcept {}
inline void race_release(const void*) noexcept {}
inline void* race_context() noexcept { return nullptr; }
inline void race_acquire_as(void*, const void*) noexcept {}
inline void race_release_as(void*, const void*) noexcept {}

#endif

}  // namespace goro::detail
