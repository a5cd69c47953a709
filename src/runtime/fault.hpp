// Fatal errors and the stack-overflow detector.
//
// Goroutine stacks with guard pages fault on overflow; the SIGSEGV handler,
// running on a per-thread alternate signal stack (the faulting stack is
// unusable), recognises a fault in the current goroutine's guard region and
// reports it naming the goroutine, Go style, then exits with status 2. Other
// faults go to whatever handler was installed before goro's (or the default).
#pragma once

#include <string>

namespace goro::detail {

struct G;

/// Installs the SIGSEGV/SIGBUS handler (once per process).
void install_fault_handler() noexcept;
/// Gives the calling thread an alternate signal stack; returns it for removal.
void* install_alt_stack() noexcept;
void remove_alt_stack(void* alt) noexcept;

/// Prints "fatal error: <msg>" and the goroutine dump, then exits with 2.
[[noreturn]] void fatal_error(const char* msg) noexcept;

/// The end of every panic and fatal error but a stack overflow: header, then
/// the goroutine dump, handed to the panic handler (goro/panic.hpp) or
/// written to stderr; then _exit(2). If several threads get here at once,
/// the first reports and the others wait for the exit.
[[noreturn]] void fatal_report(const std::string& header, G* focus) noexcept;

/// Ends the process with `code` at once: exit_group(2) directly, so no
/// atexit handler and no sanitizer finalization runs (ThreadSanitizer would
/// turn the status into 66 over the runtime's open race_ignore scopes).
[[noreturn]] void exit_now(int code) noexcept;

/// write(2) until all of s is written or the fd fails.
void write_all(int fd, const std::string& s) noexcept;

}  // namespace goro::detail
