// Goroutine stacks.
//
// A stack is address space reserved with mmap(MAP_NORESERVE) and committed by
// the kernel page by page as the goroutine touches it, so a parked goroutine
// with shallow frames costs one page of memory whatever its stack size.
//
// Overflow is always detected, by one of three layouts:
//  - marker slabs (Linux 6.13+, the default where the kernel has it): many
//    stacks per mapping, each below guard_bytes of guard markers
//    (MADV_GUARD_INSTALL), which fault like PROT_NONE pages but live in the
//    page tables and cost no memory mapping. Every stack is guarded, however
//    many there are, and a new stack costs a marker install instead of an
//    mmap and an mprotect (a batch of new stacks shares one process_madvise
//    where the kernel takes PIDFD_SELF, Linux 6.15+).
//  - guarded: without markers, the stack has its own mapping with PROT_NONE
//    guard pages below it; running into them raises SIGSEGV, which the
//    runtime reports naming the goroutine. Each guarded stack costs two
//    kernel memory mappings, and Linux allows only vm.max_map_count (65530
//    by default) per process, so guarded stacks are handed out only while a
//    budget of half the headroom lasts.
//  - canary: beyond the budget (or with GORO_GUARD_PAGES=0), stacks are
//    carved out of large slabs (one mapping for many stacks). The
//    canary_bytes just below each stack hold a known pattern; the runtime
//    checks it, and that the saved stack pointer is inside the stack, every
//    time the goroutine switches out, and ends the process naming the
//    goroutine if either is wrong. The canary of stack i+1 sits in the top
//    page of stack i, so it costs no extra page.
//
// Freed stacks go back to a pool (per size class) and are reused; their pages
// stay committed.
#pragma once

#include <cstddef>
#include <cstdint>

namespace goro::detail {

struct stack {
  char* lo = nullptr;    // lowest usable byte
  char* hi = nullptr;    // one past the highest usable byte: where frames start
  std::size_t size = 0;  // the size class (bytes of address space per stack)
  bool guarded = false;

  explicit operator bool() const noexcept { return lo != nullptr; }
};

inline constexpr std::size_t canary_bytes = 256;
inline constexpr std::size_t guard_bytes = 64 * 1024;

std::size_t page_size() noexcept;
/// Rounds a requested stack size up to its size class (a power of two, at
/// least 16 KiB).
std::size_t stack_size_class(std::size_t requested) noexcept;
/// The default stack size class (default_stack_size or GORO_STACK_SIZE).
std::size_t default_stack_class() noexcept;

/// A stack of exactly `size_class` bytes from the pool or fresh from the OS;
/// an empty stack if the OS refuses.
stack stack_alloc(std::size_t size_class) noexcept;
/// Returns a stack to the pool.
void stack_free(const stack& s) noexcept;
/// Batch forms for the per-P caches (one pool lock per batch): fills
/// out[0..n) with up to `max` pooled stacks of `size_class`, or with fresh
/// ones when none is pooled (up to `max` from marker slabs, whose guards go
/// in with one system call; else one), and returns n (0 if the OS refuses).
std::size_t stack_alloc_batch(std::size_t size_class, stack* out, std::size_t max) noexcept;
/// Returns s[0..n) to the pool.
void stack_free_batch(const stack* s, std::size_t n) noexcept;
/// Unmaps every pooled stack (called when the runtime shuts down).
void stack_pool_release() noexcept;

/// True if the canary below a canary-mode stack is intact.
bool stack_canary_intact(const stack& s) noexcept;

/// True when stacks come from marker slabs: every stack guarded, whatever
/// the number of goroutines (false with GORO_GUARD_PAGES=0 or before Linux
/// 6.13).
bool guard_markers_supported() noexcept;

/// Number of stacks currently allocated with guard pages, and the budget.
std::size_t guarded_stack_count() noexcept;
std::size_t guarded_stack_budget() noexcept;

}  // namespace goro::detail
