// goro::once (Go's sync.Once) and goro::once_retry: f runs once under
// contention from goroutines and threads, every caller returns after f has
// finished, a throwing f counts as done (once) or not (once_retry). Ported
// Go tests name their source: go/src/sync/once_test.go.
#include <gtest/gtest.h>

#include <atomic>
#include <stdexcept>
#include <thread>
#include <vector>

#include "goro/goro.hpp"
#include "test_util.hpp"

namespace {

using goro_test::eventually;
using goro_test::run_in;

class once_procs : public goro_test::procs_test {};
GORO_INSTANTIATE_PROCS(once_procs);

// Go: TestOnce, plus threads, plus an f that blocks while the others arrive:
// every caller must return after f has finished.
template <class Once>
void contention_case() {
  Once o;
  std::atomic<int> runs{0};
  std::atomic<bool> finished{false};
  std::atomic<int> arrived{0};
  std::atomic<int> early{0};
  goro::chan<int> release = goro::make_chan<int>();  // unbuffered: f blocks until main sends
  const int goroutines = 8, threads = 2;
  auto f = [&] {
    runs.fetch_add(1);
    release.recv();
    finished.store(true);
  };
  auto caller = [&] {
    arrived.fetch_add(1);
    o.call(f);
    if (!finished.load()) early.fetch_add(1);
  };
  goro::wait_group wg;
  wg.add(goroutines);
  for (int i = 0; i < goroutines; ++i)
    goro::go([&] {
      caller();
      wg.done();
    });
  std::vector<std::thread> ts;
  for (int i = 0; i < threads; ++i) ts.emplace_back(caller);
  // Let every caller reach call() while f is blocked.
  ASSERT_TRUE(
      eventually([&] { return arrived.load() == goroutines + threads && runs.load() == 1; }));
  for (int i = 0; i < 100; ++i) goro::yield();
  release.send(1);
  wg.wait();
  for (auto& t : ts) t.join();
  EXPECT_EQ(runs.load(), 1);
  EXPECT_EQ(early.load(), 0) << "a caller returned before f had finished";
  EXPECT_TRUE(o.done());
  o.call([&] { runs.fetch_add(1); });
  EXPECT_EQ(runs.load(), 1);
}

TEST_P(once_procs, f_runs_once_and_everyone_waits_for_it) {
  run_in(procs(), [] { contention_case<goro::once>(); });
}

TEST_P(once_procs, once_retry_runs_once_on_success_and_everyone_waits_for_it) {
  run_in(procs(), [] { contention_case<goro::once_retry>(); });
}

// Go: TestOncePanic: "Once.Do must not run f again after a panic".
TEST_P(once_procs, throwing_f_counts_as_done) {
  run_in(procs(), [] {
    goro::once o;
    int runs = 0;
    EXPECT_THROW(o.call([&] {
      ++runs;
      throw std::runtime_error("first");
    }),
                 std::runtime_error);
    EXPECT_TRUE(o.done());
    o.call([&] { ++runs; });  // must not run
    std::thread t([&] { o.call([&] { ++runs; }); });
    t.join();
    EXPECT_EQ(runs, 1);
  });
}

// A caller waiting while f throws is not given the exception and does not
// run f: it returns once the throwing f has finished.
TEST_P(once_procs, waiter_of_a_throwing_f_returns_without_running_it) {
  run_in(procs(), [] {
    goro::once o;
    std::atomic<int> runs{0};
    goro::chan<int> release = goro::make_chan<int>();
    goro::wait_group wg;
    wg.add(2);
    bool first_threw = false;
    goro::go([&] {
      try {
        o.call([&] {
          runs.fetch_add(1);
          release.recv();
          throw std::runtime_error("boom");
        });
      } catch (const std::runtime_error&) {
        first_threw = true;
      }
      wg.done();
    });
    ASSERT_TRUE(eventually([&] { return runs.load() == 1; }));
    bool second_threw = false;
    goro::go([&] {
      try {
        o.call([&] { runs.fetch_add(1); });
      } catch (...) {
        second_threw = true;
      }
      wg.done();
    });
    release.send(1);
    wg.wait();
    EXPECT_TRUE(first_threw);
    EXPECT_FALSE(second_threw);
    EXPECT_EQ(runs.load(), 1);
  });
}

TEST_P(once_procs, once_retry_runs_again_after_a_throw) {
  run_in(procs(), [] {
    goro::once_retry o;
    int runs = 0;
    auto f = [&] {
      if (++runs < 3) throw std::runtime_error("transient");
    };
    EXPECT_THROW(o.call(f), std::runtime_error);
    EXPECT_FALSE(o.done());
    std::thread t([&] { EXPECT_THROW(o.call(f), std::runtime_error); });
    t.join();
    EXPECT_FALSE(o.done());
    o.call(f);  // third run succeeds
    EXPECT_TRUE(o.done());
    o.call(f);
    EXPECT_EQ(runs, 3);
  });
}

// A caller that waits while f throws runs f itself afterwards.
TEST_P(once_procs, once_retry_waiter_retries_after_a_throw) {
  run_in(procs(), [] {
    goro::once_retry o;
    std::atomic<int> runs{0};
    goro::chan<int> release = goro::make_chan<int>();
    goro::wait_group wg;
    wg.add(2);
    goro::go([&] {
      EXPECT_THROW(o.call([&] {
        runs.fetch_add(1);
        release.recv();
        throw std::runtime_error("boom");
      }),
                   std::runtime_error);
      wg.done();
    });
    ASSERT_TRUE(eventually([&] { return runs.load() == 1; }));
    bool second_ran = false;
    goro::go([&] {
      o.call([&] {
        runs.fetch_add(1);
        second_ran = true;
      });
      wg.done();
    });
    release.send(1);
    wg.wait();
    EXPECT_TRUE(second_ran);
    EXPECT_EQ(runs.load(), 2);
    EXPECT_TRUE(o.done());
  });
}

}  // namespace
