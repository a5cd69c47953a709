// Per-P timer heaps (Go 1.14+): a 4-ary min-heap of deadlines per P, so timer
// operations of goroutines on different Ps never contend.
//
// Concurrency: a heap is guarded by its own lock; any M may run the expired
// timers of any P (an idle M sleeping until the earliest deadline does).
// when0 mirrors the earliest live deadline (0 when empty) so other Ms can
// look without the lock: written under the lock (relaxed is enough; a stale
// read only makes a sleeper wake early or a checker take the lock for
// nothing).
//
// Stopping a timer (timer_stop) races with the M that pops it to fire it, or
// that moves it to another P's heap. A timer is therefore always in one of:
// in a heap (heap != nullptr, written under that heap's lock; busy is 0),
// busy (popped, its fire() running or it is on its way to another heap,
// periodic timers included), or idle. The
// popping M marks it busy before it clears heap and idle after fire()
// returns or the new heap holds it; timer_stop takes a timer out of its heap
// or waits out the busy state, so when it returns the timer's memory may be
// reused.
//
// Sifting never touches a timer. Timers live all over memory (in sleeping
// goroutines' frames, channel timers, contexts), usually a page apart or
// more, and a sift moves up to log4(n) entries: when each moved timer kept
// its own heap position, those writes cost a cache and TLB miss per level,
// and the heap lock's release waited for all of them (a fifth of the timers
// workload's time). So removal is lazy, as in Go 1.23: a stopped timer's
// entry stays in the heap as a zombie, marked in a per-heap bitmap by the
// entry's slot number (never through the timer, whose memory is its owner's
// again the moment timer_stop returns), and is dropped when it reaches the
// top or when zombies pass a quarter of the heap (a linear rebuild). The top
// entry is never a zombie between operations, so when0 is a live deadline.
//
// A sleeping goroutine needs no timer struct: its entry names an opaque
// record the sleeper keeps in its frame (sched.cpp's sleep_rec), so the
// payload a pop hands back for prefetching is the sleeper's stack page,
// the first thing its wake touches. Nothing stops a sleep, so a sleeper's
// entry has no slot and never turns zombie. The sleeper parks before the
// heap lock is released (runtime/park.hpp), so whoever pops the entry may
// wake it at once.
#pragma once

#include <atomic>
#include <cstdint>
#include <vector>

#include "platform/lock.hpp"

namespace goro::detail {

struct timer {
  std::int64_t when = 0;
  // Runs with no lock held, on a scheduler context, after the timer has been
  // removed from its heap.
  void (*fire)(timer*) noexcept = nullptr;
  void* arg = nullptr;  // for fire
  // The slot of its entry in the holding heap, set at push under that heap's
  // lock; meaningful only while heap is set.
  std::uint32_t heap_slot = 0;
  // The heap holding it. Stored under that heap's lock (release), read by
  // timer_stop (acquire) to find which lock to take.
  std::atomic<class timer_heap*> heap{nullptr};
  // 1 while popped and not yet done with (see above). Stored 1 (relaxed)
  // before heap is cleared (release); stored 0 (release) when done, paired
  // with the acquire load in timer_stop.
  std::atomic<std::uint32_t> busy{0};
  // > 0: a periodic timer (a ticker). The M that fired it puts it back in a
  // heap at the next multiple of period after now (ticks missed meanwhile
  // are dropped), and clears busy under that heap's lock, so two fires of
  // one timer never overlap. Written only while the timer is stopped.
  std::int64_t period = 0;
  // Set by owners whose fire() may free the timer (a context deadline):
  // fire() then stores busy = 0 itself (release) before it lets go, and the
  // M that ran it does not touch t afterwards.
  bool fire_clears_busy = false;
};

class timer_heap {
 public:
  lock_t lock;

  /// What pop hands back: a timer (now busy and out of the heap), or a
  /// sleeping goroutine's record, or neither (nothing due / empty).
  struct popped {
    timer* t = nullptr;
    void* sleeper = nullptr;
    std::int64_t when = 0;
    // The new top entry's timer or sleeper, to prefetch once the lock is
    // released (it is often due soon after); nullptr if none.
    const void* next = nullptr;
    explicit operator bool() const noexcept { return t != nullptr || sleeper != nullptr; }
  };

  void push(timer* t) GORO_REQUIRES(lock);
  /// Puts back what a pop handed out (a timer or a sleeper), at its
  /// deadline; a timer stays busy (its mover clears that).
  void push(const popped& due) GORO_REQUIRES(lock) {
    if (due.sleeper != nullptr) {
      push_sleeper(due.sleeper, due.when);
    } else {
      push(due.t);
    }
  }
  /// Adds a sleeper's record to hand back at `when` (see above).
  void push_sleeper(void* rec, std::int64_t when) GORO_REQUIRES(lock);
  /// Removes and returns the earliest entry if its deadline is <= now.
  popped pop_expired(std::int64_t now) GORO_REQUIRES(lock);
  /// Removes and returns the earliest entry, if any.
  popped pop() GORO_REQUIRES(lock);
  /// Takes t out of this heap (a zombie entry stays behind); false if this
  /// heap does not hold it.
  bool remove(timer* t) GORO_REQUIRES(lock);
  /// Live entries held.
  std::size_t size() const GORO_REQUIRES(lock) { return heap_.size() - zombies_; }

  std::int64_t earliest() const noexcept { return when0_.load(std::memory_order_relaxed); }

 private:
  // The deadline inline, so sifting compares without touching timers (as Go
  // 1.23's timerWhen). `who` is a timer*, or a sleeper's record with
  // sleeper_tag set; `slot` numbers a timer's entry for the zombie bitmap
  // for as long as the entry is in the heap (no_slot for a sleeper).
  struct entry {
    std::int64_t when;
    std::uintptr_t who;  // a zombie's timer may be gone: never followed then
    std::uint32_t slot;
  };
  static constexpr std::uintptr_t sleeper_tag = 1;  // records and timers are aligned
  static constexpr std::uint32_t no_slot = UINT32_MAX;

  // Places e at i or below, moving smaller children up (i's old entry is
  // overwritten).
  void sift_down(std::size_t i, entry e) GORO_REQUIRES(lock);
  void publish() GORO_REQUIRES(lock) {
    when0_.store(heap_.empty() ? 0 : heap_[0].when, std::memory_order_relaxed);
  }
  bool is_zombie(const entry& e) const GORO_REQUIRES(lock) {
    return e.slot != no_slot && ((zombie_bits_[e.slot / 64] >> (e.slot % 64)) & 1) != 0;
  }
  void set_zombie(std::uint32_t slot) GORO_REQUIRES(lock) {
    zombie_bits_[slot / 64] |= std::uint64_t{1} << (slot % 64);
  }
  void clear_zombie(std::uint32_t slot) GORO_REQUIRES(lock) {
    zombie_bits_[slot / 64] &= ~(std::uint64_t{1} << (slot % 64));
  }
  void add(std::int64_t when, std::uintptr_t who, std::uint32_t slot) GORO_REQUIRES(lock);
  // Removes the top entry and recycles its slot.
  void drop_top() GORO_REQUIRES(lock);
  // Drops zombies from the top until a live entry (or nothing) is there.
  void clean_top() GORO_REQUIRES(lock);
  // Drops every zombie and rebuilds the heap.
  void compact() GORO_REQUIRES(lock);

  std::vector<entry> heap_ GORO_GUARDED_BY(lock);
  std::vector<std::uint64_t> zombie_bits_ GORO_GUARDED_BY(lock);  // a bit per slot
  std::vector<std::uint32_t> free_slots_ GORO_GUARDED_BY(lock);
  std::uint32_t nslots_ GORO_GUARDED_BY(lock) = 0;  // slots ever handed out
  std::size_t zombies_ GORO_GUARDED_BY(lock) = 0;
  std::atomic<std::int64_t> when0_{0};
};

/// Removes t from whatever heap holds it. True if it was removed before it
/// fired; false if it had fired (or was never started), in which case this
/// waits until its fire() has returned (and a periodic t's M has done with
/// it). Either way t may be reused or freed after. Never call it from t's
/// own fire().
bool timer_stop(timer* t) noexcept;

}  // namespace goro::detail
