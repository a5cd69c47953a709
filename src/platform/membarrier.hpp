// The kernel's expedited private membarrier (Linux 4.14+): a full memory
// barrier on every CPU currently running a thread of this process, forced
// by one system call. It lets the common side of a Dekker handshake go
// without a fence while the rare side pays for both: the runnext take
// (sched.cpp).
#pragma once

#include <linux/membarrier.h>
#include <sys/syscall.h>
#include <unistd.h>

namespace goro::detail {

/// Registers the process for MEMBARRIER_CMD_PRIVATE_EXPEDITED; false if the
/// kernel (or a seccomp filter) refuses. Registration is per address space:
/// a forked child must register again.
inline bool membarrier_register() noexcept {
  const long cmds = syscall(SYS_membarrier, MEMBARRIER_CMD_QUERY, 0, 0);
  if (cmds < 0 || (cmds & MEMBARRIER_CMD_PRIVATE_EXPEDITED) == 0) return false;
  return syscall(SYS_membarrier, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED, 0, 0) == 0;
}

/// Returns once every CPU running one of our threads has executed a full
/// barrier. False only if the process is not registered.
inline bool membarrier_all_cpus() noexcept {
  return syscall(SYS_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0, 0) == 0;
}

}  // namespace goro::detail
