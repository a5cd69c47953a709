// goro::pool's type-erased core: per-P caches, a shared overflow list and a
// victim generation.
//
// Invariants:
//  - shard[i] (the cache of P i) is read and written only by the goroutine
//    currently running on P i, between two of its switches: goroutines are
//    not preempted and get()/put() never switch, so no other party touches it
//    meanwhile, and the runtime's own hand-over of a P between threads orders
//    one owner's accesses before the next's. (The destructor is the exception:
//    by contract nobody uses the pool then.) shards[i] is published with a
//    release store by its first owner and read with acquire by the destructor.
//  - overflow, victim and last_rotate_ns change only under lock.
//  - gen counts rotations. A shard stamped with an older gen holds objects
//    from before a rotation: one behind, they go to the victim list; two or
//    more behind, they are freed. Each shard checks its stamp on every
//    operation (a relaxed load of gen: a shard that sees a rotation late only
//    keeps its objects a little longer).
//
// Fast path (a goroutine on a P, cache stamped current, not empty / not
// full): one thread-local read, an index and a slot, no atomic RMW, no lock.
// Slow path: under lock, with a clock check for automatic rotation; moves
// half a cache at a time, so the lock is taken at most once per
// cache_size / 2 operations of a P in steady state.
//
// Objects are destroyed (user destructors run) only outside the lock and
// after the shard is no longer touched: a destructor may block and resume on
// another P.
//
// TSan (this file is not instrumented, race.hpp): put(x) releases x's
// address and get() acquires it, so the user's writes to an object before
// put happen before the next user's accesses after get (Go's poolRaceAddr).
#include "goro/pool.hpp"

#include <atomic>
#include <cstddef>
#include <vector>

#include "platform/clock.hpp"
#include "platform/lock.hpp"
#include "platform/race.hpp"
#include "runtime/sched.hpp"

namespace goro::detail {

namespace {
constexpr int cache_size = 32;
constexpr std::uint32_t clock_check_every = 1024;  // fast-path ops between clock reads
constexpr int max_ps = 256;                        // sched.allp's size
}  // namespace

struct alignas(64) pool_shard {
  void* items[cache_size];
  int n = 0;
  std::uint64_t gen = 0;
  std::uint32_t ops = 0;
};

struct pool_core::impl {
  void (*destroy)(void*);
  std::int64_t max_idle_ns;
  std::atomic<std::uint64_t> gen{0};
  std::atomic<std::int64_t> last_rotate_ns{0};  // written under lock, read anywhere
  std::atomic<std::uint64_t> locked_ops{0};     // written under lock, read anywhere
  std::atomic<pool_shard*> shards[max_ps] = {};
  lock_t lock;
  std::vector<void*> overflow GORO_GUARDED_BY(lock);
  std::vector<void*> victim GORO_GUARDED_BY(lock);

  // Rotation: victim is freed (handed to the caller in dead), overflow
  // becomes victim, gen advances.
  void rotate_locked(std::vector<void*>& dead, std::int64_t now) GORO_REQUIRES(lock) {
    if (dead.empty())
      dead.swap(victim);
    else
      dead.insert(dead.end(), victim.begin(), victim.end());
    victim.clear();
    victim.swap(overflow);
    gen.fetch_add(1, std::memory_order_relaxed);  // a hint for the shards (see the header)
    last_rotate_ns.store(now, std::memory_order_relaxed);
  }

  void maybe_rotate_locked(std::vector<void*>& dead) GORO_REQUIRES(lock) {
    locked_ops.store(locked_ops.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
    if (max_idle_ns <= 0) return;
    const std::int64_t now = nanotime();
    if (now - last_rotate_ns.load(std::memory_order_relaxed) >= max_idle_ns)
      rotate_locked(dead, now);
  }

  void destroy_all(std::vector<void*>& dead) const noexcept {
    for (void* x : dead) destroy(x);
    dead.clear();
  }

  // The calling goroutine's shard, or nullptr on a plain thread. Creates it.
  pool_shard* my_shard() noexcept {
    M* m = current_m();
    if (m == nullptr || m->curg == nullptr || m->p == nullptr) return nullptr;
    std::atomic<pool_shard*>& slot = shards[m->p->id];
    // Relaxed: only this P's owners write the slot (see the invariants).
    pool_shard* s = slot.load(std::memory_order_relaxed);
    if (s == nullptr) {
      race_ignore no_race;  // runtime allocation on a goroutine (race.hpp)
      s = new pool_shard();
      s->gen = gen.load(std::memory_order_relaxed);
      // Release pairs with the destructor's acquire load.
      slot.store(s, std::memory_order_release);
    }
    return s;
  }

  // A stale shard's objects: one rotation behind, to the victim list; more,
  // to dead. Restamps the shard.
  void settle_stale(pool_shard* s, std::vector<void*>& dead) GORO_REQUIRES(lock) {
    const std::uint64_t g = gen.load(std::memory_order_relaxed);
    if (s->gen == g) return;
    std::vector<void*>& to = g - s->gen == 1 ? victim : dead;
    to.insert(to.end(), s->items, s->items + s->n);
    s->n = 0;
    s->gen = g;
  }
};

pool_core::pool_core(void (*destroy)(void*), std::int64_t max_idle_ns) : impl_(new impl()) {
  impl_->destroy = destroy;
  impl_->max_idle_ns = max_idle_ns;
  impl_->last_rotate_ns.store(nanotime(), std::memory_order_relaxed);
}

pool_core::~pool_core() {
  std::vector<void*> dead;
  for (auto& slot : impl_->shards) {
    // Acquire pairs with the release store in my_shard().
    if (pool_shard* s = slot.load(std::memory_order_acquire)) {
      dead.insert(dead.end(), s->items, s->items + s->n);
      delete s;
    }
  }
  {
    lock_guard lk(impl_->lock);
    dead.insert(dead.end(), impl_->overflow.begin(), impl_->overflow.end());
    dead.insert(dead.end(), impl_->victim.begin(), impl_->victim.end());
  }
  impl_->destroy_all(dead);
  delete impl_;
}

void* pool_core::get() noexcept {
  impl& I = *impl_;
  pool_shard* s = I.my_shard();
  if (s != nullptr && s->n > 0 && s->gen == I.gen.load(std::memory_order_relaxed) &&
      (++s->ops % clock_check_every) != 0) {
    void* x = s->items[--s->n];
    race_acquire(x);  // pairs with race_release in put()
    return x;
  }
  // Slow path: refill the cache from the overflow (half a cache), or take
  // one object from the victim.
  std::vector<void*> dead;
  void* x = nullptr;
  {
    race_ignore no_race;  // vector growth allocates (race.hpp)
    lock_guard lk(I.lock);
    I.maybe_rotate_locked(dead);
    if (s != nullptr) I.settle_stale(s, dead);
    if (s != nullptr && s->n > 0) {
      x = s->items[--s->n];
    } else if (!I.overflow.empty()) {
      x = I.overflow.back();
      I.overflow.pop_back();
      if (s != nullptr) {
        while (s->n < cache_size / 2 && !I.overflow.empty()) {
          s->items[s->n++] = I.overflow.back();
          I.overflow.pop_back();
        }
      }
    } else if (!I.victim.empty()) {
      x = I.victim.back();
      I.victim.pop_back();
    }
  }
  if (x != nullptr) race_acquire(x);  // pairs with race_release in put()
  I.destroy_all(dead);                // after the last use of s
  return x;
}

void pool_core::put(void* x) noexcept {
  race_release(x);  // pairs with race_acquire in get()
  impl& I = *impl_;
  pool_shard* s = I.my_shard();
  if (s != nullptr && s->n < cache_size && s->gen == I.gen.load(std::memory_order_relaxed) &&
      (++s->ops % clock_check_every) != 0) {
    s->items[s->n++] = x;
    return;
  }
  // Slow path: spill half of a full cache (and x) to the overflow.
  std::vector<void*> dead;
  {
    race_ignore no_race;  // vector growth allocates (race.hpp)
    lock_guard lk(I.lock);
    I.maybe_rotate_locked(dead);
    if (s == nullptr) {
      I.overflow.push_back(x);
    } else {
      I.settle_stale(s, dead);
      if (s->n == cache_size) {
        const int keep = cache_size / 2;
        I.overflow.insert(I.overflow.end(), s->items + keep, s->items + s->n);
        s->n = keep;
      }
      s->items[s->n++] = x;
    }
  }
  I.destroy_all(dead);  // after the last use of s
}

std::uint64_t pool_core::locked_ops() const noexcept {
  return impl_->locked_ops.load(std::memory_order_relaxed);
}

void pool_core::trim() noexcept {
  std::vector<void*> dead;
  {
    race_ignore no_race;  // vector growth allocates (race.hpp)
    lock_guard lk(impl_->lock);
    impl_->rotate_locked(dead, nanotime());
  }
  impl_->destroy_all(dead);
}

}  // namespace goro::detail
