// Goroutine dumps (Go's traceback of all goroutines), for goro::dump, SIGQUIT
// and every fatal report. See dump.cpp.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace goro::detail {

struct G;

/// Appends the dump of every goroutine to out, folding goroutines with the
/// same state, wait reason, spawn site and stack into one entry.
void append_dump(std::string& out);

/// Walks the frame-pointer chain of g's stack and stores up to max return
/// addresses; returns the count. g is parked or runnable (the walk starts at
/// its saved context), or, with own_fp != 0, the goroutine that is dumping,
/// stopped with its frame pointer at own_fp.
std::size_t goroutine_stack(G* g, std::uintptr_t* pcs, std::size_t max,
                            std::uintptr_t own_fp) noexcept;

/// "function (file:line)" for the call that returned to pc, cached per pc.
/// Not thread-safe: callers hold dump_lock (dump.cpp).
const std::string& symbolize(std::uintptr_t pc);

}  // namespace goro::detail
