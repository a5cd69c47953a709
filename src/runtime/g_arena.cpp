// Segments of huge-page-advised address space for G records; see g_arena.hpp.
#include "runtime/g_arena.hpp"

#include <sys/mman.h>

#include "platform/sanitizer.hpp"
#if GORO_ASAN
#include <sanitizer/lsan_interface.h>
#endif

#include <cstdint>
#include <new>
#include <vector>

namespace goro::detail {

namespace {

// 1 GiB of address space per segment (about 5.5 million records); reserved,
// not committed, so an unused tail costs nothing. Where the kernel refuses a
// reservation that large (strict overcommit accounting counts it whole),
// segments shrink, down to what the request needs.
constexpr std::size_t segment_bytes = std::size_t{1} << 30;
constexpr std::size_t huge_page = std::size_t{2} << 20;

struct segment {
  void* map = nullptr;  // what mmap returned (unmapped at release)
  std::size_t map_len = 0;
  char* start = nullptr;  // huge-page aligned
  char* next = nullptr;   // first free byte
  char* end = nullptr;
};

// Guarded by sched.gchunk_lock (callers hold it); see g_arena.hpp.
std::vector<segment> segments;

segment map_segment(std::size_t at_least) {
  const std::size_t floor = (at_least + huge_page - 1) & ~(huge_page - 1);
  for (std::size_t want = segment_bytes;; want /= 2) {
    if (want < floor) want = floor;
    // One huge page more than needed, so the usable part can start on a
    // huge-page boundary (the kernel backs only aligned 2 MiB ranges).
    const std::size_t len = want + huge_page;
    void* p = mmap(nullptr, len, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) {
      if (want == floor) throw std::bad_alloc();
      continue;
    }
    const auto base = reinterpret_cast<std::uintptr_t>(p);
    char* start = reinterpret_cast<char*>((base + huge_page - 1) & ~(huge_page - 1));
    // Advice only: where the kernel has no THP (or it is off) records simply
    // live on 4 KiB pages.
    (void)madvise(start, want, MADV_HUGEPAGE);
#if GORO_ASAN
    // Records point at heap blocks (closures, names): let the leak checker
    // see them, as it did when records lived on the heap.
    __lsan_register_root_region(start, want);
#endif
    return segment{p, len, start, start, start + want};
  }
}

}  // namespace

void* g_arena_alloc(std::size_t bytes) {
  bytes = (bytes + 63) & ~std::size_t{63};
  if (bytes > segment_bytes) throw std::bad_alloc();
  if (segments.empty() ||
      static_cast<std::size_t>(segments.back().end - segments.back().next) < bytes) {
    segments.reserve(segments.size() + 1);  // may throw before anything is mapped
    segments.push_back(map_segment(bytes));
  }
  segment& s = segments.back();
  void* out = s.next;
  s.next += bytes;
  return out;
}

void g_arena_release() noexcept {
  for (const segment& s : segments) {
#if GORO_ASAN
    __lsan_unregister_root_region(s.start, static_cast<std::size_t>(s.end - s.start));
#endif
    munmap(s.map, s.map_len);
  }
  segments.clear();
}

}  // namespace goro::detail
