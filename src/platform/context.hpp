// Machine contexts: a saved stack pointer is all a suspended context needs,
// because goro_switch (switch_*.S) keeps the callee-saved registers and the
// FP control words on the suspended stack itself.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

extern "C" {
void* goro_switch(void** save_sp, void* load_sp, void* arg);
// goro_switch for a caller that states the FP control words in force
// (fp_words, see current_fp_words) instead of having them read: see
// switch_x86_64.S. forced_fp_load as fp_words makes the target's words load.
void* goro_switch_known_fp(void** save_sp, void* load_sp, void* arg, std::uint64_t fp_words);
void goro_trampoline();
}

namespace goro::detail {

using context_entry = void (*)(void* arg, void* data);

/// The FP control words in force, packed as goro_switch_known_fp takes them:
/// MXCSR in bits 0-31, the x87 control word in bits 32-47 (x86-64); 0
/// elsewhere (the AArch64 switch reads FPCR itself).
inline std::uint64_t current_fp_words() noexcept {
#if defined(__x86_64__)
  std::uint32_t mxcsr = 0;
  std::uint16_t fpucw = 0;
  asm volatile("stmxcsr %0\n\tfnstcw %1" : "=m"(mxcsr), "=m"(fpucw));
  return mxcsr | (std::uint64_t{fpucw} << 32);
#else
  return 0;
#endif
}

/// No real pair of control words: makes goro_switch_known_fp load the
/// target's words whatever is in force.
inline constexpr std::uint64_t forced_fp_load = ~std::uint64_t{0};

/// Builds the initial frame of a new context at the top of [lo, hi): the first
/// goro_switch into the returned stack pointer calls entry(arg, data) on that
/// stack, where arg is goro_switch's third argument.
inline void* make_context(char* hi, context_entry entry, void* data) {
  auto top = reinterpret_cast<std::uintptr_t>(hi) & ~std::uintptr_t{15};
#if defined(__x86_64__)
  // Frame popped by goro_switch, low to high: [mxcsr|fpucw] r15 r14 r13 r12
  // rbx rbp ret. After `ret` the stack pointer is 16-byte aligned, as the
  // trampoline's call needs.
  auto* frame = reinterpret_cast<std::uint64_t*>(top - 64);
  const std::uint32_t mxcsr = 0x1F80;  // all exceptions masked, round to nearest
  const std::uint16_t fpucw = 0x037F;  // x87 default: extended precision, masked
  std::memset(frame, 0, 64);
  std::memcpy(reinterpret_cast<char*>(frame), &mxcsr, 4);
  std::memcpy(reinterpret_cast<char*>(frame) + 4, &fpucw, 2);
  frame[3] = reinterpret_cast<std::uint64_t>(data);   // r13
  frame[4] = reinterpret_cast<std::uint64_t>(entry);  // r12
  frame[7] = reinterpret_cast<std::uint64_t>(&goro_trampoline);
  return frame;
#elif defined(__aarch64__)
  auto* frame = reinterpret_cast<std::uint64_t*>(top - 176);
  std::memset(frame, 0, 176);
  frame[0] = reinterpret_cast<std::uint64_t>(entry);              // x19
  frame[1] = reinterpret_cast<std::uint64_t>(data);               // x20
  frame[11] = reinterpret_cast<std::uint64_t>(&goro_trampoline);  // x30
  return frame;
#else
#error "goro: unsupported architecture (x86-64 and AArch64 are supported)"
#endif
}

}  // namespace goro::detail
