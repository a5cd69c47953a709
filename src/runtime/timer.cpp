// 4-ary min-heap on timer::when with lazy removal; see timer.hpp. A 4-ary
// heap is shallower than a binary one and its four children share a cache
// line or two, which is why Go moved to it.
#include "runtime/timer.hpp"

#include <algorithm>

namespace goro::detail {

namespace {
// Below this many entries a rebuild is not worth its pass: zombies wait to
// reach the top.
constexpr std::size_t min_compact_entries = 64;
}  // namespace

void timer_heap::add(std::int64_t when, std::uintptr_t who, std::uint32_t slot) {
  // Sifts up with the new entry kept in registers: built in memory and read
  // back, it stalled on store forwarding (fresh_timeout ran 1.1x slower).
  std::size_t i = heap_.size();
  heap_.emplace_back();
  while (i > 0) {
    const std::size_t parent = (i - 1) / 4;
    if (heap_[parent].when <= when) break;
    heap_[i] = heap_[parent];
    i = parent;
  }
  entry& e = heap_[i];
  e.when = when;
  e.who = who;
  e.slot = slot;
  publish();
}

void timer_heap::push(timer* t) {
  // Everything that may throw comes first, so a failed push changes nothing;
  // free_slots_ always has room for every slot, so recycling never throws.
  if (heap_.size() == heap_.capacity())
    heap_.reserve(std::max<std::size_t>(2 * heap_.capacity(), 64));
  std::uint32_t slot;
  if (!free_slots_.empty()) {
    slot = free_slots_.back();
    free_slots_.pop_back();
  } else {
    if (free_slots_.capacity() <= nslots_)
      free_slots_.reserve(std::max<std::size_t>(2 * free_slots_.capacity(), 64));
    if (nslots_ / 64 >= zombie_bits_.size()) zombie_bits_.push_back(0);
    slot = nslots_++;
  }
  t->heap_slot = slot;
  t->heap.store(this, std::memory_order_release);
  add(t->when, reinterpret_cast<std::uintptr_t>(t), slot);
}

void timer_heap::push_sleeper(void* rec, std::int64_t when) {
  add(when, reinterpret_cast<std::uintptr_t>(rec) | sleeper_tag, no_slot);
}

void timer_heap::drop_top() {
  if (heap_[0].slot != no_slot) free_slots_.push_back(heap_[0].slot);
  const entry last = heap_.back();
  heap_.pop_back();
  if (!heap_.empty()) sift_down(0, last);
}

void timer_heap::clean_top() {
  while (!heap_.empty() && is_zombie(heap_[0])) {
    clear_zombie(heap_[0].slot);
    --zombies_;
    drop_top();
  }
}

void timer_heap::compact() {
  std::size_t kept = 0;
  for (const entry& e : heap_) {
    if (is_zombie(e)) {
      clear_zombie(e.slot);
      free_slots_.push_back(e.slot);
    } else {
      heap_[kept++] = e;
    }
  }
  heap_.resize(kept);
  zombies_ = 0;
  // Floyd's heap construction: sift down every parent, last first.
  for (std::size_t i = kept / 4 + 1; i-- > 0;)
    if (i < kept) sift_down(i, heap_[i]);
}

timer_heap::popped timer_heap::pop() {
  if (heap_.empty()) return {};  // the top is live (clean_top after every change)
  const entry top = heap_[0];
  drop_top();
  clean_top();
  popped out;
  out.when = top.when;
  if ((top.who & sleeper_tag) != 0) {
    out.sleeper = reinterpret_cast<void*>(top.who & ~sleeper_tag);
  } else {
    out.t = reinterpret_cast<timer*>(top.who);
    // Busy before the heap pointer goes: timer_stop, seeing no heap, must
    // see the busy flag (release pairs with its acquire load of heap).
    out.t->busy.store(1, std::memory_order_relaxed);
    out.t->heap.store(nullptr, std::memory_order_release);
  }
  publish();
  if (!heap_.empty()) out.next = reinterpret_cast<const void*>(heap_[0].who & ~sleeper_tag);
  return out;
}

timer_heap::popped timer_heap::pop_expired(std::int64_t now) {
  if (heap_.empty() || heap_[0].when > now) return {};
  return pop();
}

bool timer_heap::remove(timer* t) {
  if (t->heap.load(std::memory_order_relaxed) != this) return false;
  const std::uint32_t slot = t->heap_slot;
  t->heap.store(nullptr, std::memory_order_release);
  if (heap_.back().slot == slot) {
    // Still the last leaf (a timeout stopped right after it started, as
    // in a for-select loop): gone at once, no zombie.
    free_slots_.push_back(slot);
    heap_.pop_back();
    publish();
    return true;
  }
  set_zombie(slot);
  ++zombies_;
  if (heap_[0].slot == slot) {
    clean_top();
  } else if (heap_.size() >= min_compact_entries && zombies_ > heap_.size() / 4) {
    compact();
  }
  publish();
  return true;
}

void timer_heap::sift_down(std::size_t i, const entry e) {
  const std::size_t n = heap_.size();
  for (;;) {
    const std::size_t first = 4 * i + 1;
    if (first >= n) break;
    std::size_t best = first;
    const std::size_t last = first + 4 < n ? first + 4 : n;
    for (std::size_t c = first + 1; c < last; ++c)
      if (heap_[c].when < heap_[best].when) best = c;
    if (heap_[best].when >= e.when) break;
    heap_[i] = heap_[best];
    i = best;
  }
  heap_[i] = e;
}

bool timer_stop(timer* t) noexcept {
  for (;;) {
    // Acquire pairs with the release stores of heap in push and pop.
    if (timer_heap* h = t->heap.load(std::memory_order_acquire)) {
      bool removed;
      {
        lock_guard lk(h->lock);
        if (t->heap.load(std::memory_order_relaxed) != h) continue;  // popped or moved meanwhile
        removed = h->remove(t);
      }
      return removed;
    }
    // Acquire pairs with the release store of 0 by whoever popped it. A
    // periodic timer's M put it back in a heap (heap stored, release) before
    // clearing busy: look again rather than report it stopped.
    if (t->busy.load(std::memory_order_acquire) == 0) {
      if (t->heap.load(std::memory_order_acquire) == nullptr) return false;
      continue;
    }
    cpu_relax();
  }
}

}  // namespace goro::detail
