// goro::pool: per-P caching without locks, the victim generation (objects
// survive one rotation, are freed after two), plain-thread use, and no
// object handed out twice or leaked under contention. Ported Go tests name
// their source: go/src/sync/pool_test.go.
#include <gtest/gtest.h>

#include <atomic>
#include <memory>
#include <thread>
#include <vector>

#include "goro/goro.hpp"
#include "test_util.hpp"

namespace {

using namespace std::chrono_literals;
using goro_test::run_in;
using goro_test::scaled;

class pool_procs : public goro_test::procs_test {};
GORO_INSTANTIATE_PROCS(pool_procs);

std::atomic<int> live{0};

struct obj {
  explicit obj(int v = 0) : value(v) { live.fetch_add(1); }
  ~obj() { live.fetch_sub(1); }
  obj(const obj&) = delete;
  obj& operator=(const obj&) = delete;
  int value;
  std::atomic<bool> in_use{false};
};

// No automatic rotation: the tests rotate with trim().
constexpr auto no_auto = std::chrono::nanoseconds(0);

// Go: TestPool (without GC): Get returns what Put stored, then nil.
TEST_P(pool_procs, get_returns_what_put_stored) {
  run_in(procs(), [] {
    {
      goro::pool<obj> p({}, no_auto);
      EXPECT_EQ(p.get(), nullptr) << "expected empty";
      p.put(std::make_unique<obj>(1));
      p.put(std::make_unique<obj>(2));
      auto a = p.get();
      auto b = p.get();
      ASSERT_NE(a, nullptr);
      ASSERT_NE(b, nullptr);
      EXPECT_EQ(a->value + b->value, 3);
      EXPECT_EQ(p.get(), nullptr);
      p.put(nullptr);  // ignored
      EXPECT_EQ(p.get(), nullptr);
      p.put(std::move(a));
    }
    EXPECT_EQ(live.load(), 0) << "the destructor frees cached objects";
  });
}

// Go: TestPoolNew.
TEST_P(pool_procs, new_fn_makes_objects_when_empty) {
  run_in(procs(), [] {
    int made = 0;
    goro::pool<obj> p([&] { return std::make_unique<obj>(++made); }, no_auto);
    EXPECT_EQ(p.get()->value, 1);
    EXPECT_EQ(p.get()->value, 2);
    p.put(std::make_unique<obj>(42));
    EXPECT_EQ(p.get()->value, 42);
    EXPECT_EQ(p.get()->value, 3);
  });
}

// Go clears pools at GC through a victim cache: an object survives one
// collection and is dropped by the second. Here a rotation (trim) plays
// the GC, for objects in the per-P cache and in the shared overflow.
TEST_P(pool_procs, victim_generation_survives_one_trim_not_two) {
  run_in(procs(), [] {
    goro::pool<obj> p({}, no_auto);
    // Enough to overflow the per-P cache into the shared list.
    const int n = 100;
    for (int i = 0; i < n; ++i) p.put(std::make_unique<obj>(i));
    EXPECT_EQ(live.load(), n);
    p.trim();
    std::vector<std::unique_ptr<obj>> back;
    while (auto o = p.get()) back.push_back(std::move(o));
    EXPECT_EQ(static_cast<int>(back.size()), n) << "one trim must keep everything (victim)";
    for (auto& o : back) p.put(std::move(o));
    p.trim();
    p.trim();
    EXPECT_EQ(p.get(), nullptr) << "two trims must drop everything";
    EXPECT_EQ(live.load(), 0) << "dropped objects are destroyed";
  });
}

// The same from a plain thread (no P: the shared lists only).
TEST(pool, victim_generation_from_a_plain_thread) {
  goro::pool<obj> p({}, no_auto);
  p.put(std::make_unique<obj>(7));
  p.trim();
  auto o = p.get();
  ASSERT_NE(o, nullptr);
  EXPECT_EQ(o->value, 7);
  p.put(std::move(o));
  p.trim();
  p.trim();
  EXPECT_EQ(p.get(), nullptr);
  EXPECT_EQ(live.load(), 0);
}

// Per-P locality: a goroutine's put/get pairs are served by its P's cache
// without the shared lock (the lock is taken only for the periodic clock
// check), and it gets back its own object even while other Ps do the same.
TEST_P(pool_procs, put_get_pairs_stay_on_the_p_without_locking) {
  run_in(procs(), [] {
    goro::pool<obj> p({}, no_auto);
    const int g = goro::maxprocs();
    const int iters = scaled(20000, 2000);
    std::atomic<int> foreign{0};
    goro::wait_group wg;
    wg.add(g);
    for (int k = 0; k < g; ++k) {
      goro::go([&, k] {
        auto mine = std::make_unique<obj>(k);
        obj* addr = mine.get();
        for (int i = 0; i < iters; ++i) {
          p.put(std::move(mine));
          mine = p.get();
          if (mine.get() != addr) foreign.fetch_add(1);
          if (mine == nullptr) mine = std::make_unique<obj>(k);
          addr = mine.get();
          if (i % 256 == 0) goro::yield();
        }
        wg.done();
      });
    }
    wg.wait();
    EXPECT_EQ(foreign.load(), 0) << "a put/get pair on one P got another goroutine's object";
    // 2 ops per iteration; the clock check takes the lock once per 1024 ops
    // of a P, and a goroutine's first op creates its cache.
    EXPECT_LE(p.locked_ops(), static_cast<std::uint64_t>(g) * (2 * iters / 1024 + 4))
        << "the per-P fast path took the lock";
  });
}

// Goroutines and threads hammer one pool: an object is never handed to two
// users at once, and nothing leaks.
TEST_P(pool_procs, no_double_handout_and_no_leak_under_contention) {
  run_in(procs(), [] {
    std::atomic<int> bad{0};
    {
      goro::pool<obj> p([] { return std::make_unique<obj>(); }, 1ms);  // rotate often too
      const int iters = scaled(5000, 500);
      auto user = [&] {
        std::vector<std::unique_ptr<obj>> held;
        for (int i = 0; i < iters; ++i) {
          auto o = p.get();
          if (o->in_use.exchange(true)) bad.fetch_add(1);
          held.push_back(std::move(o));
          if (held.size() == 40 || i % 7 == 0) {  // sometimes more than a cache's worth
            for (auto& h : held) {
              h->in_use.store(false);
              p.put(std::move(h));
            }
            held.clear();
          }
          if (i % 100 == 0) goro::yield();
        }
        for (auto& h : held) h->in_use.store(false);
      };
      goro::wait_group wg;
      wg.add(6);
      for (int k = 0; k < 6; ++k)
        goro::go([&] {
          user();
          wg.done();
        });
      std::thread t(user);
      wg.wait();
      t.join();
    }
    EXPECT_EQ(bad.load(), 0);
    EXPECT_EQ(live.load(), 0);
  });
}

}  // namespace
