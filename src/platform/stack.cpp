// Stack memory: see stack.hpp for the layouts and why there are three.
//
// Concurrency: the pool and the slab cursors are guarded by pool().lock (a
// leaf lock). guarded_count is an atomic budget counter: reserve with
// fetch_add, give back with fetch_sub when the reservation fails or a stack
// is unmapped. The guard-marker probe runs once (a function-local static).
#include "platform/stack.hpp"

#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "goro/goroutine.hpp"
#include "platform/lock.hpp"

namespace goro::detail {
namespace {

constexpr std::size_t min_stack_class = 16 * 1024;
constexpr std::size_t slab_bytes_target = 4 * 1024 * 1024;
// Marker slabs hold 64 default stacks (with their guards) per mapping.
constexpr std::size_t marker_slab_bytes_target = 8 * 1024 * 1024;

struct pool_class {
  std::size_t size;
  std::vector<stack> free;
};

struct slab {
  char* base;
  std::size_t bytes;
};

struct stack_pool {
  lock_t lock;
  std::vector<pool_class> classes GORO_GUARDED_BY(lock);
  std::vector<slab> slabs GORO_GUARDED_BY(lock);
  std::vector<stack> guarded_live GORO_GUARDED_BY(lock);  // every guarded stack, for release
  // The unused part of the current slab of each size class.
  struct cursor {
    std::size_t size;
    char* next;
    char* end;
  };
  std::vector<cursor> cursors GORO_GUARDED_BY(lock);
};

stack_pool& pool() {
  static stack_pool* p = new stack_pool;  // never destroyed: used until exit
  return *p;
}

// Pairs: fetch_add reserves budget before mmap, fetch_sub returns it.
std::atomic<std::size_t> guarded_count{0};

std::uint64_t canary_word(const char* at) noexcept {
  return 0x9E3779B97F4A7C15ull ^ reinterpret_cast<std::uintptr_t>(at);
}

void write_canary(char* zone) noexcept {
  for (std::size_t off = 0; off < canary_bytes; off += 8) {
    std::uint64_t w = canary_word(zone + off);
    std::memcpy(zone + off, &w, 8);
  }
}

#ifndef MADV_GUARD_INSTALL
#define MADV_GUARD_INSTALL 102  // Linux 6.13
#endif

bool env_guard_pages_enabled() {
  const char* v = std::getenv("GORO_GUARD_PAGES");
  return !(v && v[0] == '0' && v[1] == '\0');
}

std::size_t compute_budget() {
  if (!env_guard_pages_enabled()) return 0;
  long max_maps = 65530;
  if (FILE* f = std::fopen("/proc/sys/vm/max_map_count", "r")) {
    if (std::fscanf(f, "%ld", &max_maps) != 1) max_maps = 65530;
    std::fclose(f);
  }
  // Leave room for the program's own mappings (libraries, heap arenas,
  // thread stacks, slabs): half the headroom above 8192 goes to guarded stacks.
  const long headroom = max_maps - 8192;
  return headroom > 0 ? static_cast<std::size_t>(headroom / 4) : 0;
}

stack alloc_guarded(std::size_t size) noexcept {
  const std::size_t total = size + guard_bytes;
  void* base = mmap(nullptr, total, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (base == MAP_FAILED) return {};
  char* b = static_cast<char*>(base);
  if (mprotect(b + guard_bytes, size, PROT_READ | PROT_WRITE) != 0) {
    munmap(base, total);
    return {};
  }
  stack s;
  s.lo = b + guard_bytes;
  s.hi = b + total;
  s.size = size;
  s.guarded = true;
  return s;
}

// Carves the next slot of `slot` bytes for size class `size` from the class's
// current slab, mapping a new slab of slab_bytes / slot slots first when it
// is used up. A new slab starts with `pad` bytes whose first page is made
// PROT_NONE (canary slabs; 0 for marker slabs). nullptr if the OS refuses.
char* carve_slot(stack_pool& p, std::size_t size, std::size_t slot, std::size_t slab_bytes,
                 std::size_t pad) noexcept GORO_REQUIRES(p.lock) {
  stack_pool::cursor* cur = nullptr;
  for (auto& c : p.cursors)
    if (c.size == size) cur = &c;
  if (cur == nullptr || cur->next + slot > cur->end) {
    const std::size_t count = std::max<std::size_t>(1, slab_bytes / slot);
    const std::size_t bytes = pad + count * slot;
    void* base = mmap(nullptr, bytes, PROT_READ | PROT_WRITE,
                      MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (base == MAP_FAILED) return nullptr;
    char* b = static_cast<char*>(base);
    if (pad != 0) mprotect(b, page_size(), PROT_NONE);
    try {
      p.slabs.push_back({b, bytes});
      if (cur == nullptr) {
        p.cursors.push_back({size, nullptr, nullptr});
        cur = &p.cursors.back();
      }
    } catch (...) {
      munmap(base, bytes);
      return nullptr;
    }
    cur->next = b + pad;
    cur->end = b + bytes;
  }
  char* c = cur->next;
  cur->next += slot;
  return c;
}

// Marker layout: slabs of slots [guard_bytes of guard markers][stack].
// Carves up to max slots (under the pool lock); their markers go in later,
// outside it (install_guards).
std::size_t carve_marker_stacks(stack_pool& p, std::size_t size, stack* out,
                                std::size_t max) noexcept GORO_REQUIRES(p.lock) {
  std::size_t n = 0;
  for (; n < max; ++n) {
    char* c = carve_slot(p, size, guard_bytes + size, marker_slab_bytes_target, 0);
    if (c == nullptr) break;
    out[n].lo = c + guard_bytes;
    out[n].hi = out[n].lo + size;
    out[n].size = size;
    out[n].guarded = false;
  }
  return n;
}

// process_madvise's name for the calling process (PIDFD_SELF_THREAD_GROUP,
// Linux 6.15): no descriptor to open, none that a fork could leave pointing
// at the parent.
constexpr int pidfd_self_process = -10001;
constexpr std::size_t max_guard_batch = 64;

// Puts guard markers below each of the n freshly carved stacks s[0..n), which
// nobody else can see yet. One process_madvise covers the whole batch where
// the kernel allows it (a marker install costs about 0.5 us, and a syscall
// per stack adds to it); the rest, or all of them on older kernels, take one
// madvise each. A stack whose markers the kernel refuses (out of memory for
// page tables) falls back to a canary, written at the top of its would-be
// guard.
void install_guards(stack* s, std::size_t n) noexcept {
  static std::atomic<bool> batch_refused{false};
  std::size_t done = 0;
  if (n > 1 && !batch_refused.load(std::memory_order_relaxed)) {
    iovec iov[max_guard_batch];
    const std::size_t k = std::min(n, max_guard_batch);
    for (std::size_t i = 0; i < k; ++i) {
      iov[i].iov_base = s[i].lo - guard_bytes;
      iov[i].iov_len = guard_bytes;
    }
    const long r = syscall(SYS_process_madvise, pidfd_self_process, iov, k, MADV_GUARD_INSTALL, 0);
    if (r < 0) {
      // EBADF, EINVAL, ENOSYS, EPERM: this kernel cannot, and will not later.
      // ENOMEM may pass: the one-by-one path below sorts those stacks out.
      if (errno != ENOMEM && errno != EAGAIN && errno != EINTR)
        batch_refused.store(true, std::memory_order_relaxed);
    } else {
      // Ranges are advised in order; a short count stops inside range `done`.
      done = static_cast<std::size_t>(r) / guard_bytes;
      for (std::size_t i = 0; i < done; ++i) s[i].guarded = true;
    }
  }
  for (std::size_t i = done; i < n; ++i) {
    s[i].guarded = madvise(s[i].lo - guard_bytes, guard_bytes, MADV_GUARD_INSTALL) == 0;
    if (!s[i].guarded) write_canary(s[i].lo - canary_bytes);
  }
}

// Canary layout: a new slab is [guard page][page whose last canary_bytes
// guard stack 0][stacks...].
stack alloc_from_slab(stack_pool& p, std::size_t size) noexcept GORO_REQUIRES(p.lock) {
  char* c = carve_slot(p, size, size, slab_bytes_target, 2 * page_size());
  if (c == nullptr) return {};
  // Slot [c, c+size): usable [c, c+size-canary), canary of the next slot at
  // its top, canary of this slot in the previous slot's top (or the pad page).
  stack s;
  s.lo = c;
  s.hi = c + size - canary_bytes;
  s.size = size;
  s.guarded = false;
  write_canary(s.lo - canary_bytes);
  return s;
}

}  // namespace

std::size_t page_size() noexcept {
  static const std::size_t pg = static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
  return pg;
}

std::size_t stack_size_class(std::size_t requested) noexcept {
  std::size_t c = min_stack_class;
  while (c < requested && c < (std::size_t{1} << 40)) c <<= 1;
  return c;
}

std::size_t default_stack_class() noexcept {
  static const std::size_t d = [] {
    std::size_t want = goro::default_stack_size;
    if (const char* v = std::getenv("GORO_STACK_SIZE")) {
      char* end = nullptr;
      unsigned long long n = std::strtoull(v, &end, 10);
      if (end != v && n > 0) want = static_cast<std::size_t>(n);
    }
    return stack_size_class(want);
  }();
  return d;
}

// Whether the kernel installs guard markers (MADV_GUARD_INSTALL): PTE-level
// guard pages inside an ordinary mapping, which cost no memory mapping of
// their own. Probed once on a scratch mapping.
bool guard_markers_supported() noexcept {
  static const bool ok = [] {
    if (!env_guard_pages_enabled()) return false;
    const std::size_t pg = page_size();
    void* m = mmap(nullptr, 2 * pg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED) return false;
    const bool yes = madvise(m, pg, MADV_GUARD_INSTALL) == 0;
    munmap(m, 2 * pg);
    return yes;
  }();
  return ok;
}

std::size_t guarded_stack_budget() noexcept {
  static const std::size_t b = compute_budget();
  return b;
}

std::size_t guarded_stack_count() noexcept { return guarded_count.load(std::memory_order_relaxed); }

namespace {

// One stack fresh from the OS without guard markers: its own guarded mapping
// while the budget lasts, else a canary slab's.
stack alloc_fresh_unmarked(stack_pool& p, std::size_t size) noexcept {
  // Relaxed is enough: the counter only bounds how many mappings we make.
  if (guarded_count.fetch_add(1, std::memory_order_relaxed) < guarded_stack_budget()) {
    stack s = alloc_guarded(size);
    if (s) {
      lock_guard g(p.lock);
      try {
        p.guarded_live.push_back(s);
      } catch (...) {
      }
      return s;
    }
  }
  guarded_count.fetch_sub(1, std::memory_order_relaxed);
  lock_guard g(p.lock);
  return alloc_from_slab(p, size);
}

// Fresh stacks from the OS, in whichever layout the machine allows: up to
// max of them from marker slabs, else one. Returns how many (0: refused).
std::size_t alloc_fresh(stack_pool& p, std::size_t size, stack* out, std::size_t max) noexcept {
  if (guard_markers_supported()) {
    std::size_t n;
    {
      lock_guard g(p.lock);
      n = carve_marker_stacks(p, size, out, std::min(max, max_guard_batch));
    }
    install_guards(out, n);
    return n;
  }
  out[0] = alloc_fresh_unmarked(p, size);
  return out[0] ? 1 : 0;
}

}  // namespace

std::size_t stack_alloc_batch(std::size_t size, stack* out, std::size_t max) noexcept {
  if (max == 0) return 0;
  stack_pool& p = pool();
  {
    lock_guard g(p.lock);
    for (auto& c : p.classes) {
      if (c.size == size && !c.free.empty()) {
        const std::size_t n = std::min(max, c.free.size());
        std::copy(c.free.end() - static_cast<std::ptrdiff_t>(n), c.free.end(), out);
        c.free.resize(c.free.size() - n);
        return n;
      }
    }
  }
  return alloc_fresh(p, size, out, max);
}

stack stack_alloc(std::size_t size) noexcept {
  stack s;
  stack_alloc_batch(size, &s, 1);
  return s;
}

void stack_free_batch(const stack* s, std::size_t n) noexcept {
  if (n == 0) return;
  stack_pool& p = pool();
  lock_guard g(p.lock);
  try {
    for (std::size_t i = 0; i < n; ++i) {
      pool_class* cls = nullptr;
      for (auto& c : p.classes)
        if (c.size == s[i].size) cls = &c;
      if (cls == nullptr) {
        p.classes.push_back({s[i].size, {}});
        cls = &p.classes.back();
      }
      cls->free.push_back(s[i]);
    }
  } catch (...) {
    // Out of memory for the free list: the rest of the batch leaks its
    // address space, no more. Nothing refers to those stacks any longer.
  }
}

void stack_free(const stack& s) noexcept { stack_free_batch(&s, 1); }

void stack_pool_release() noexcept {
  stack_pool& p = pool();
  lock_guard g(p.lock);
  for (const stack& s : p.guarded_live) munmap(s.lo - guard_bytes, s.size + guard_bytes);
  guarded_count.fetch_sub(p.guarded_live.size(), std::memory_order_relaxed);
  for (const slab& sl : p.slabs) munmap(sl.base, sl.bytes);
  p.guarded_live.clear();
  p.slabs.clear();
  p.classes.clear();
  p.cursors.clear();
}

bool stack_canary_intact(const stack& s) noexcept {
  const char* zone = s.lo - canary_bytes;
  std::uint64_t lowest, highest;
  std::memcpy(&lowest, zone, 8);
  std::memcpy(&highest, zone + canary_bytes - 8, 8);
  return lowest == canary_word(zone) && highest == canary_word(zone + canary_bytes - 8);
}

}  // namespace goro::detail
