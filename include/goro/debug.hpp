// goro/debug.hpp: looking inside a running program.
//
// goro::dump(os) writes every goroutine, Go style: id, name, state and wait
// reason ("chan receive", "chan send", "select", "sleep", "mutex",
// "wait group", "blocking call", "running", ...), how long it has waited
// (to about 10 ms), its stack (symbolized: function, and file:line when the
// program has debug information), and where it was spawned. Goroutines with
// the same state, reason, spawn site and stack are folded into one entry
// with their count and ids. Stacks of goroutines running on other threads
// are not available (goro cannot interrupt them); the caller's own is.
//
// The same dump ends every panic and fatal error (goro/panic.hpp), and a
// SIGQUIT (Ctrl-\) prints it and exits with status 2, as in Go.
//
// The dump does not stop other goroutines: it is a snapshot taken while they
// run, exact only for goroutines that stay parked meanwhile.
//
// Errors: none reported; a stack that cannot be walked or symbolized is
// shown as such. Memory ordering: none (a diagnostic read of runtime state).
#pragma once

#include <cstdint>
#include <iosfwd>

namespace goro {

/// Writes the goroutine dump to os. Outside run() it says no runtime runs.
void dump(std::ostream& os);

/// How many times sysmon has handed the runnable goroutines of a P stuck on
/// one goroutine for more than 10 ms to another thread (this run).
std::int64_t sysmon_retakes() noexcept;

}  // namespace goro
