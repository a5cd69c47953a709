// Fatal errors and the stack-overflow detector.
//
// Goroutine stacks with guard pages fault on overflow; the SIGSEGV handler,
// running on a per-thread alternate signal stack (the faulting stack is
// unusable), recognises a fault in the current goroutine's guard region and
// reports it naming the goroutine, Go style, then exits with status 2. Other
// faults go to whatever handler was installed before goro's (or the default).
#pragma once

namespace goro::detail {

/// Installs the SIGSEGV/SIGBUS handler (once per process).
void install_fault_handler() noexcept;
/// Gives the calling thread an alternate signal stack; returns it for removal.
void* install_alt_stack() noexcept;
void remove_alt_stack(void* alt) noexcept;

/// Prints "fatal error: <msg>" and the current goroutine, then exits with 2.
[[noreturn]] void fatal_error(const char* msg) noexcept;

}  // namespace goro::detail
