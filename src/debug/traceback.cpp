// Stack walking for goroutine dumps.
//
// goro walks frame pointers, as Go's own unwinder does since Go 1.21 for
// tracing: libgoro and the code that uses it are built with
// -fno-omit-frame-pointer (CMakeLists.txt makes it a usage requirement), so
// every frame starts with [saved rbp][return address]. A parked goroutine's
// chain starts in the frame goro_switch left on its stack
// (switch_x86_64.S: [mxcsr|fpucw] r15 r14 r13 r12 rbx rbp ret, low to high;
// switch_aarch64.S: x29 and x30 at sp+80 and sp+88). The walk is cheap
// enough for 100,000 goroutines (a few loads per frame) and safe on a stack
// that changes under it: every address it reads is checked to lie inside
// the goroutine's stack, whose memory stays mapped until the runtime shuts
// down (freed stacks go back to a pool), and frames must move strictly
// upwards. A goroutine resumed while it is being walked yields a torn (but
// harmless) trace; dumps do not stop the world.
//
// Code built without frame pointers (some libraries) ends the chain early:
// its rbp is not a frame address inside the stack.
#include <atomic>

#include "debug/dump.hpp"
#include "runtime/sched.hpp"

namespace goro::detail {
namespace {

std::size_t walk(std::uintptr_t fp, std::uintptr_t lo, std::uintptr_t hi, std::uintptr_t* pcs,
                 std::size_t n, std::size_t max) noexcept {
  while (n < max && fp >= lo && fp + 16 <= hi && fp % sizeof(void*) == 0) {
    const auto* frame = reinterpret_cast<const std::uintptr_t*>(fp);
    const std::uintptr_t ret = __atomic_load_n(&frame[1], __ATOMIC_RELAXED);
    if (ret == 0) break;
    pcs[n++] = ret;
    const std::uintptr_t next = __atomic_load_n(&frame[0], __ATOMIC_RELAXED);
    if (next <= fp) break;
    fp = next;
  }
  return n;
}

}  // namespace

std::size_t goroutine_stack(G* g, std::uintptr_t* pcs, std::size_t max,
                            std::uintptr_t own_fp) noexcept {
  const auto lo = reinterpret_cast<std::uintptr_t>(g->stack_lo);
  const auto hi = reinterpret_cast<std::uintptr_t>(g->stack_hi);
  if (lo == 0 || max == 0) return 0;
  // The dumping goroutine itself, stopped in append_dump: from that frame.
  if (own_fp != 0) return walk(own_fp, lo, hi, pcs, 0, max);
  const auto sp = reinterpret_cast<std::uintptr_t>(__atomic_load_n(&g->sp, __ATOMIC_RELAXED));
#if defined(__x86_64__)
  constexpr std::size_t fp_slot = 6, ret_slot = 7, frame_words = 8;
#elif defined(__aarch64__)
  constexpr std::size_t fp_slot = 10, ret_slot = 11, frame_words = 22;
#endif
  if (sp < lo || sp + frame_words * sizeof(void*) > hi || sp % sizeof(void*) != 0) return 0;
  const auto* frame = reinterpret_cast<const std::uintptr_t*>(sp);
  const std::uintptr_t ret = __atomic_load_n(&frame[ret_slot], __ATOMIC_RELAXED);
  if (ret == 0) return 0;
  pcs[0] = ret;
  return walk(__atomic_load_n(&frame[fp_slot], __ATOMIC_RELAXED), lo, hi, pcs, 1, max);
}

}  // namespace goro::detail
