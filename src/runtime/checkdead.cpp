// Deadlock detection (Go's checkdead in proc.go).
//
// When is a deadlock certain? When no goroutine is running or runnable and
// nothing outside the goroutines can make one runnable. The wakers outside
// goroutines are: a timer (sleep, timed channel operations), a goroutine
// inside goro::blocking() (its M is busy, not idle), and a plain OS thread
// that calls a goro primitive (it can send on a channel, unlock a mutex,
// spawn). goro has no netpoller yet; when it has, registered I/O joins the
// list.
//
// Plain threads: a thread that has not touched goro yet may do so at any
// moment, so "threads that used goro" is not a sound test. The rule is the
// process-wide one: the check runs only while the process has no threads
// but goro's own (its Ms and sysmon). Any other thread in the process —
// a std::thread, a thread pool of some library, the thread that called
// run() from another runtime — turns the check off for as long as it
// exists. (Go does the same in effect: a cgo program has extra Ms and its
// checkdead never fires.) ThreadSanitizer's own background thread is
// expected in TSan builds.
//
// Protocol:
//  1. stopm, under sched.lock, after putting its M on the idle list, sees
//     that every M is idle and it sleeps without a timer deadline; it
//     records sched.midle_gen (bumped whenever an M leaves the idle list)
//     and calls checkdead after releasing the lock.
//  2. checkdead counts the process's threads (/proc/self/stat): more than
//     the Ms plus sysmon means a plain thread exists: no report.
//  3. Under sched.lock again: midle_gen unchanged means no M ran a goroutine
//     since step 1, so no goroutine made a thread, a timer or runnable work
//     in between; every M still idle, every run queue empty and no timer in
//     any heap then mean nothing can wake anything: report.
// The cost falls only on the last M going idle without a timer pending,
// which a live program rarely does; no thread polls.
#include <fcntl.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <string>

#include "debug/dump.hpp"
#include "platform/sanitizer.hpp"
#include "runtime/fault.hpp"
#include "runtime/sched.hpp"

namespace goro::detail {
namespace {

// The number of threads in this process, from /proc/self/stat (field 20);
// -1 if it cannot be read.
long process_threads() noexcept {
  int fd = ::open("/proc/self/stat", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  char buf[1024];
  const ssize_t n = ::read(fd, buf, sizeof(buf) - 1);
  ::close(fd);
  if (n <= 0) return -1;
  buf[n] = '\0';
  // The command name (field 2) may hold spaces and parentheses: fields
  // after it start after the last ')'.
  const char* p = std::strrchr(buf, ')');
  if (p == nullptr) return -1;
  // Field 3 starts at p + 2; skip to field 20.
  int field = 2;
  for (++p; *p != '\0' && field < 20; ++p) {
    if (*p == ' ') ++field;
  }
  return std::strtol(p, nullptr, 10);
}

}  // namespace

void checkdead(std::uint64_t gen) noexcept {
  if (sched.stopping.load(std::memory_order_acquire)) return;
  std::size_t ms;
  {
    lock_guard lk(sched.lock);
    ms = sched.allm.size();
  }
  // Our threads: every M (M0 is the thread that called run()) and sysmon,
  // plus, under ThreadSanitizer, the background thread its runtime starts
  // with the process's second thread (sysmon's creation at the latest).
  if (process_threads() != static_cast<long>(ms) + 1 + (GORO_TSAN ? 1 : 0)) return;
  {
    lock_guard lk(sched.lock);
    if (sched.midle_gen != gen || sched.nmidle != static_cast<std::int32_t>(sched.allm.size()))
      return;
    if (sched.stopping.load(std::memory_order_relaxed)) return;
    if (sched.runq_size.load(std::memory_order_relaxed) != 0) return;
    const int n = sched.nallp.load(std::memory_order_acquire);
    for (int i = 0; i < n; ++i) {
      if (!runq_empty(sched.allp[i])) return;
    }
    if (earliest_timer() != 0) return;
    if (sched.nblocking.load(std::memory_order_acquire) != 0) return;
  }
  fatal_report("fatal error: all goroutines are asleep - deadlock!\n\n", nullptr);
}

}  // namespace goro::detail
