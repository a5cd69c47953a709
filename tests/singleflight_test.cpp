// goro::singleflight (golang.org/x/sync/singleflight): one flight per key
// shared by every concurrent caller, the value or the exception delivered to
// all of them with the shared flag, and forget(). Ported tests name their
// source: x/sync/singleflight/singleflight_test.go.
#include <gtest/gtest.h>

#include <atomic>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "goro/goro.hpp"
#include "test_util.hpp"

namespace {

using goro_test::eventually;
using goro_test::run_in;

class singleflight_procs : public goro_test::procs_test {};
GORO_INSTANTIATE_PROCS(singleflight_procs);

// x/sync: TestDo.
TEST(singleflight, do_returns_the_value_unshared) {
  goro::singleflight<std::string, std::string> g;
  auto r = g.do_("key", [] { return std::string("bar"); });
  EXPECT_EQ(r.value, "bar");
  EXPECT_FALSE(r.shared);
  EXPECT_EQ(g.callers("key"), 0u);
}

// x/sync: TestDoErr (an error is an exception here).
TEST(singleflight, do_rethrows) {
  goro::singleflight<int, int> g;
  EXPECT_THROW(g.do_(1, []() -> int { throw std::runtime_error("some error"); }),
               std::runtime_error);
  EXPECT_EQ(g.do_(1, [] { return 5; }).value, 5) << "a finished flight is not cached";
}

// x/sync: TestDoDupSuppress: n callers (goroutines and threads) while f is
// in flight; f runs once, everyone gets its value with shared = true. f
// waits until every caller has joined (callers()), so the sharing is not
// left to timing.
TEST_P(singleflight_procs, concurrent_callers_share_one_flight) {
  run_in(procs(), [] {
    goro::singleflight<std::string, int> g;
    const int goroutines = 8, threads = 2, n = goroutines + threads;
    std::atomic<int> calls{0};
    std::atomic<int> got{0};
    std::atomic<int> shared{0};
    auto f = [&] {
      calls.fetch_add(1);
      EXPECT_TRUE(eventually([&] { return g.callers("key") == static_cast<std::size_t>(n); }));
      return 42;
    };
    auto caller = [&] {
      auto r = g.do_("key", f);
      if (r.value == 42) got.fetch_add(1);
      if (r.shared) shared.fetch_add(1);
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
    wg.wait();
    for (auto& t : ts) t.join();
    EXPECT_EQ(calls.load(), 1) << "f ran more than once";
    EXPECT_EQ(got.load(), n);
    EXPECT_EQ(shared.load(), n);
  });
}

// x/sync: TestPanicDo: f throws; every caller of the flight gets the
// exception.
TEST_P(singleflight_procs, exception_reaches_every_caller) {
  run_in(procs(), [] {
    goro::singleflight<int, int> g;
    const int n = 6;
    std::atomic<int> calls{0};
    std::atomic<int> caught{0};
    goro::wait_group wg;
    wg.add(n);
    for (int i = 0; i < n; ++i) {
      goro::go([&] {
        try {
          g.do_(7, [&]() -> int {
            calls.fetch_add(1);
            EXPECT_TRUE(eventually([&] { return g.callers(7) == static_cast<std::size_t>(n); }));
            throw std::runtime_error("invalid memory address");
          });
        } catch (const std::runtime_error& e) {
          if (std::string(e.what()) == "invalid memory address") caught.fetch_add(1);
        }
        wg.done();
      });
    }
    wg.wait();
    EXPECT_EQ(calls.load(), 1);
    EXPECT_EQ(caught.load(), n);
  });
}

// x/sync: TestForget: after forget, a new call runs f even while the old
// flight is in progress; the old flight's callers still get its value.
TEST_P(singleflight_procs, forget_starts_a_new_flight) {
  run_in(procs(), [] {
    goro::singleflight<std::string, int> g;
    goro::chan<int> release = goro::make_chan<int>();
    goro::wait_group wg;
    wg.add(1);
    int first = 0;
    goro::go([&] {
      first = g.do_("key", [&] { return release.recv().value(); }).value;
      wg.done();
    });
    ASSERT_TRUE(eventually([&] { return g.callers("key") == 1; }));
    g.forget("key");
    EXPECT_EQ(g.callers("key"), 0u);
    auto r = g.do_("key", [] { return 2; });
    EXPECT_EQ(r.value, 2);
    EXPECT_FALSE(r.shared);
    release.send(1);
    wg.wait();
    EXPECT_EQ(first, 1);
  });
}

}  // namespace
