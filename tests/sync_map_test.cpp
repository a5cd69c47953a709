// goro::sync_map (Go's sync.Map) and goro::sharded_map: every operation
// against a reference map, the dirty map's promotion after enough misses,
// and concurrent use from goroutines and threads. Ported Go tests name
// their source: go/src/sync/map_test.go, map_reference_test.go.
#include <gtest/gtest.h>

#include <atomic>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "goro/goro.hpp"
#include "test_util.hpp"

namespace goro::detail {
// Test access to sync_map's private state (befriended by sync_map).
struct sync_map_inspect {
  template <class M>
  static bool amended(M& m) {
    std::lock_guard lk(m.mu_);
    return m.read_.peek()->amended;
  }
  template <class M>
  static std::size_t read_size(M& m) {
    std::lock_guard lk(m.mu_);
    return m.read_.peek()->m->size();
  }
};
}  // namespace goro::detail

namespace {

using goro::detail::sync_map_inspect;
using goro_test::run_in;
using goro_test::scaled;

class sync_map_procs : public goro_test::procs_test {};
GORO_INSTANTIATE_PROCS(sync_map_procs);

// Go: TestMapMatchesRWMutex / applyCalls, with a fixed script: each
// operation's result against Go's documented behaviour.
TEST(sync_map, operations_match_go) {
  goro::sync_map<std::string, int> m;
  EXPECT_FALSE(m.load("a"));
  m.store("a", 1);
  EXPECT_EQ(m.load("a"), 1);
  EXPECT_EQ(m.load_or_store("a", 2), std::make_pair(1, true));
  EXPECT_EQ(m.load_or_store("b", 2), std::make_pair(2, false));
  EXPECT_EQ(m.load("b"), 2);
  EXPECT_EQ(m.swap("a", 10), 1);
  EXPECT_EQ(m.swap("c", 3), std::nullopt);
  EXPECT_TRUE(m.compare_and_swap("a", 10, 11));
  EXPECT_FALSE(m.compare_and_swap("a", 10, 12));
  EXPECT_FALSE(m.compare_and_swap("zz", 0, 1));
  EXPECT_EQ(m.load("a"), 11);
  EXPECT_FALSE(m.compare_and_delete("a", 10));
  EXPECT_TRUE(m.compare_and_delete("a", 11));
  EXPECT_FALSE(m.load("a"));
  EXPECT_EQ(m.load_and_delete("b"), 2);
  EXPECT_EQ(m.load_and_delete("b"), std::nullopt);
  m.erase("c");
  m.erase("never");
  EXPECT_FALSE(m.load("c"));

  std::map<std::string, int> want;
  for (int i = 0; i < 50; ++i) {
    m.store(std::to_string(i), i);
    want[std::to_string(i)] = i;
  }
  m.erase("7");
  want.erase("7");
  std::map<std::string, int> got;
  m.range([&](const std::string& k, int v) {
    EXPECT_TRUE(got.emplace(k, v).second) << "range visited " << k << " twice";
    return true;
  });
  EXPECT_EQ(got, want);
  int visited = 0;
  m.range([&](const std::string&, int) { return ++visited < 5; });
  EXPECT_EQ(visited, 5) << "range must stop when f returns false";
}

// Keys stored once live in the dirty map (loads of them take the mutex and
// count misses); once the misses reach the dirty map's size it becomes the
// read map and loads are lock-free again. Deleted keys are expunged when the
// next dirty map is built and can be stored again.
TEST(sync_map, dirty_map_is_promoted_after_enough_misses) {
  goro::sync_map<int, int> m;
  const int n = 16;
  for (int i = 0; i < n; ++i) m.store(i, i * i);
  EXPECT_TRUE(sync_map_inspect::amended(m));
  EXPECT_EQ(sync_map_inspect::read_size(m), 0u);
  for (int i = 0; i < n - 1; ++i) EXPECT_EQ(m.load(i), i * i);
  EXPECT_TRUE(sync_map_inspect::amended(m)) << "promoted before misses reached len(dirty)";
  EXPECT_EQ(m.load(n - 1), (n - 1) * (n - 1));
  EXPECT_FALSE(sync_map_inspect::amended(m)) << "not promoted after len(dirty) misses";
  EXPECT_EQ(sync_map_inspect::read_size(m), static_cast<std::size_t>(n));

  // Delete one (lock-free: it is in the read map), add a new key: the new
  // dirty map leaves the deleted key out (expunged); storing it again
  // brings it back.
  m.erase(3);
  m.store(100, 1);
  EXPECT_TRUE(sync_map_inspect::amended(m));
  EXPECT_FALSE(m.load(3));
  m.store(3, 9);
  EXPECT_EQ(m.load(3), 9);
  EXPECT_EQ(m.load(100), 1);
  int count = 0;
  m.range([&](int, int) { return ++count, true; });
  EXPECT_EQ(count, n + 1);
  EXPECT_FALSE(sync_map_inspect::amended(m)) << "range promotes the dirty map";
}

// Go: TestConcurrentRange and the map benchmarks' mixes: goroutines and a
// thread each own a range of keys and store/overwrite/delete them while
// everyone loads everything; each owner's final state is exact.
TEST_P(sync_map_procs, concurrent_owners_and_readers) {
  run_in(procs(), [] {
    goro::sync_map<int, int> m;
    const int owners = 4, per = 64, rounds = scaled(200, 30);
    std::atomic<int> bad{0};
    auto owner = [&](int o) {
      for (int r = 0; r < rounds; ++r) {
        for (int k = o * per; k < (o + 1) * per; ++k) {
          if (r % 3 == 2 && k % 2 == 0) {
            m.erase(k);
          } else {
            m.store(k, r);
          }
          auto v = m.load(k);
          if (r % 3 == 2 && k % 2 == 0 ? v.has_value() : v != r) bad.fetch_add(1);
          (void)m.load((k * 7919) % (owners * per));  // someone else's key
        }
        if (r % 8 == 0) goro::yield();
      }
    };
    goro::wait_group wg;
    wg.add(owners - 1);
    for (int o = 0; o < owners - 1; ++o)
      goro::go([&, o] {
        owner(o);
        wg.done();
      });
    std::thread t(owner, owners - 1);
    wg.wait();
    t.join();
    EXPECT_EQ(bad.load(), 0);
    const int last = rounds - 1;
    for (int k = 0; k < owners * per; ++k) {
      if (last % 3 == 2 && k % 2 == 0)
        EXPECT_FALSE(m.load(k));
      else
        EXPECT_EQ(m.load(k), last);
    }
  });
}

TEST(sharded_map, operations) {
  goro::sharded_map<int, std::string> m(5);
  EXPECT_EQ(m.shard_count(), 8u);
  EXPECT_FALSE(m.load(1));
  m.store(1, "one");
  EXPECT_EQ(m.load(1), "one");
  EXPECT_EQ(m.load_or_store(1, "uno"), std::make_pair(std::string("one"), true));
  EXPECT_EQ(m.load_or_store(2, "two"), std::make_pair(std::string("two"), false));
  EXPECT_EQ(m.size(), 2u);
  EXPECT_EQ(m.load_and_erase(2), "two");
  EXPECT_FALSE(m.erase(2));
  EXPECT_TRUE(m.erase(1));
  m.update(3, [](std::optional<std::string>& s) { s = "three"; });
  EXPECT_EQ(m.load(3), "three");
  m.update(3, [](std::optional<std::string>& s) { s.reset(); });
  EXPECT_FALSE(m.load(3));
  EXPECT_EQ(m.size(), 0u);
}

// Write-heavy: goroutines and a thread increment shared counters with
// update(); no increment is lost.
TEST_P(sync_map_procs, sharded_map_counters_under_contention) {
  run_in(procs(), [] {
    goro::sharded_map<int, long> m;
    const int workers = 5, iters = scaled(5000, 500), keys = 37;
    auto work = [&] {
      for (int i = 0; i < iters; ++i) {
        m.update(i % keys, [](std::optional<long>& v) { v = v.value_or(0) + 1; });
        if (i % 128 == 0) goro::yield();
      }
    };
    goro::wait_group wg;
    wg.add(workers - 1);
    for (int w = 0; w < workers - 1; ++w)
      goro::go([&] {
        work();
        wg.done();
      });
    std::thread t(work);
    wg.wait();
    t.join();
    long total = 0;
    m.range([&](int, long v) { return total += v, true; });
    EXPECT_EQ(total, static_cast<long>(workers) * iters);
  });
}

}  // namespace
