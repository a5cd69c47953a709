// 4-ary min-heap on timer::when; see timer.hpp. A 4-ary heap is shallower
// than a binary one and its four children share a cache line or two, which is
// why Go moved to it.
#include "runtime/timer.hpp"

namespace goro::detail {

void timer_heap::push(timer* t) {
  heap_.push_back({t->when, t});
  t->heap.store(this, std::memory_order_release);
  const std::size_t i = heap_.size() - 1;
  t->heap_index = static_cast<std::int32_t>(i);
  sift_up(i);
  publish();
}

timer* timer_heap::pop() {
  if (heap_.empty()) return nullptr;
  timer* t = heap_[0].t;
  const entry last = heap_.back();
  heap_.pop_back();
  if (!heap_.empty()) {
    place(0, last);
    sift_down(0);
  }
  t->heap_index = -1;
  // Busy before the heap pointer goes: timer_stop, seeing no heap, must see
  // the busy flag (release pairs with its acquire load of heap).
  t->busy.store(1, std::memory_order_relaxed);
  t->heap.store(nullptr, std::memory_order_release);
  publish();
  return t;
}

timer* timer_heap::pop_expired(std::int64_t now) {
  if (heap_.empty() || heap_[0].when > now) return nullptr;
  return pop();
}

bool timer_heap::remove(timer* t) {
  const std::int32_t idx = t->heap_index;
  if (idx < 0 || static_cast<std::size_t>(idx) >= heap_.size() || heap_[idx].t != t) return false;
  const auto i = static_cast<std::size_t>(idx);
  const entry last = heap_.back();
  heap_.pop_back();
  if (i < heap_.size()) {
    place(i, last);
    sift_up(i);
    sift_down(static_cast<std::size_t>(last.t->heap_index));
  }
  t->heap_index = -1;
  t->heap.store(nullptr, std::memory_order_release);
  publish();
  return true;
}

void timer_heap::sift_up(std::size_t i) {
  const entry e = heap_[i];
  while (i > 0) {
    const std::size_t parent = (i - 1) / 4;
    if (heap_[parent].when <= e.when) break;
    place(i, heap_[parent]);
    i = parent;
  }
  place(i, e);
}

void timer_heap::sift_down(std::size_t i) {
  const std::size_t n = heap_.size();
  const entry e = heap_[i];
  for (;;) {
    const std::size_t first = 4 * i + 1;
    if (first >= n) break;
    std::size_t best = first;
    const std::size_t last = first + 4 < n ? first + 4 : n;
    for (std::size_t c = first + 1; c < last; ++c)
      if (heap_[c].when < heap_[best].when) best = c;
    if (heap_[best].when >= e.when) break;
    place(i, heap_[best]);
    i = best;
  }
  place(i, e);
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
