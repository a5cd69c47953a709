// Memory for G records.
//
// G records are carved, a chunk at a time, from segments of address space
// reserved with mmap(MAP_NORESERVE) and advised for transparent huge pages
// (MADV_HUGEPAGE; the kernel's setting decides whether it applies). The
// records are dense and touched in bursts (a spawner filling a backlog,
// timers waking sleepers in deadline order, which is not spawn order): with
// 2 MiB pages a burst of new records takes one page fault per ~10,900
// records instead of one per 21, and wakes miss the TLB far less (timers
// ran 0.88x, skynet 0.94x, spawn 0.93x of their time on 4 KiB pages). The
// cost is RSS granularity: a process that spawns one goroutine holds a
// 2 MiB page of records where the kernel grants one. Where a 1 GiB
// reservation is refused (strict overcommit accounting), segments shrink.
//
// Concurrency: g_arena_alloc is called with sched.gchunk_lock held (it is
// the one place that grows the record supply); g_arena_release only at
// teardown, when no thread runs goroutines and no record is referenced.
// Records are never returned individually: they are type-stable for the
// life of the runtime (dumps read them racily), as before.
#pragma once

#include <cstddef>

namespace goro::detail {

/// Uninitialised, 64-byte-aligned memory for `bytes` of G records, from the
/// current segment or a new one. Throws std::bad_alloc if the OS refuses.
void* g_arena_alloc(std::size_t bytes);

/// Unmaps every segment (teardown, after every record was destroyed).
void g_arena_release() noexcept;

}  // namespace goro::detail
