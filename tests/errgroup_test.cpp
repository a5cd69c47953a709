// goro::errgroup (x/sync's errgroup.Group): wait returns the first error,
// the group's context is cancelled at the first error, set_limit bounds
// the active goroutines and go() waits at the limit, try_go, and an
// exception in a task is captured with its goroutine and spawn site.
// Ported tests name their source: x/sync/errgroup/errgroup_test.go.
#include <gtest/gtest.h>

#include <atomic>
#include <stdexcept>
#include <string>
#include <thread>

#include "goro/goro.hpp"
#include "test_util.hpp"

namespace {

using goro_test::eventually;
using goro_test::run_in;

class errgroup_procs : public goro_test::procs_test {};
GORO_INSTANTIATE_PROCS(errgroup_procs);

const std::error_code err1 = std::make_error_code(std::errc::io_error);
const std::error_code err2 = std::make_error_code(std::errc::broken_pipe);

// x/sync: TestZeroGroup: wait returns the first error (here the only one
// that happens first: the second task waits for the first to fail).
TEST_P(errgroup_procs, wait_returns_the_first_error) {
  run_in(procs(), [] {
    goro::errgroup g;
    EXPECT_FALSE(g.wait());
    goro::chan<int> first_failed = goro::make_chan<int>(1);
    g.go([]() -> std::error_code { return {}; });
    g.go([&]() -> std::error_code {
      first_failed.send(1);
      return err1;
    });
    g.go([&]() -> std::error_code {
      first_failed.recv();
      return err2;
    });
    g.go([] {});  // void tasks succeed
    EXPECT_EQ(g.wait(), err1);
  });
}

// x/sync: TestWithContext: the first error cancels the group's context; the
// other tasks see it; wait returns the error.
TEST_P(errgroup_procs, first_error_cancels_the_context) {
  run_in(procs(), [] {
    goro::errgroup g(goro::background());
    goro::context ctx = g.context();
    std::atomic<int> saw_cancel{0};
    for (int i = 0; i < 4; ++i) {
      g.go([ctx, &saw_cancel]() -> std::error_code {
        goro::select(goro::on_recv(ctx.done()));  // until cancelled
        if (ctx.err() == goro::errc::canceled) saw_cancel.fetch_add(1);
        return {};
      });
    }
    g.go([]() -> std::error_code { return err1; });
    EXPECT_EQ(g.wait(), err1);
    EXPECT_EQ(saw_cancel.load(), 4);
    EXPECT_EQ(goro::cause(ctx), err1);
  });
}

TEST_P(errgroup_procs, wait_cancels_the_context_even_without_errors) {
  run_in(procs(), [] {
    goro::errgroup g(goro::background());
    g.go([] {});
    EXPECT_FALSE(g.wait());
    EXPECT_EQ(g.context().err(), goro::errc::canceled);
  });
}

// x/sync: TestGoLimit / TestTryGo: at most `limit` tasks run; go() blocks
// and try_go() fails at the limit; changing the limit while tasks run panics.
TEST_P(errgroup_procs, limit_bounds_active_tasks) {
  run_in(procs(), [] {
    goro::errgroup g;
    const int limit = 2;
    g.set_limit(limit);
    goro::chan<int> release = goro::make_chan<int>();
    std::atomic<int> active{0}, max_active{0}, started{0};
    auto task = [&] {
      const int a = active.fetch_add(1) + 1;
      int m = max_active.load();
      while (a > m && !max_active.compare_exchange_weak(m, a)) {
      }
      started.fetch_add(1);
      release.recv();
      active.fetch_sub(1);
    };
    g.go(task);
    g.go(task);
    ASSERT_TRUE(eventually([&] { return started.load() == 2; }));
    EXPECT_FALSE(g.try_go(task)) << "try_go must fail at the limit";
    try {
      g.set_limit(5);
      ADD_FAILURE() << "no panic";
    } catch (const goro::panic_error& e) {
      EXPECT_STREQ(e.what(),
                   "errgroup: modify limit while 2 goroutines in the group are still active");
    }
    // A third go() from a helper blocks until a task finishes.
    std::atomic<bool> third_spawned{false};
    std::thread helper([&] {
      g.go(task);
      third_spawned.store(true);
    });
    EXPECT_FALSE(eventually([&] { return third_spawned.load(); }, std::chrono::milliseconds(30)))
        << "go() did not wait at the limit";
    release.send(1);
    ASSERT_TRUE(eventually([&] { return third_spawned.load(); }));
    helper.join();
    release.send(1);
    release.send(1);
    EXPECT_FALSE(g.wait());
    EXPECT_EQ(max_active.load(), limit);
    EXPECT_EQ(started.load(), 3);
    EXPECT_TRUE(g.try_go([] {}));
    EXPECT_FALSE(g.wait());
  });
}

// An exception in a task is captured, cancels the context, and is rethrown
// by wait() as task_exception naming the goroutine and the go() site; the
// process goes on.
TEST_P(errgroup_procs, exception_is_captured_with_goroutine_and_site) {
  run_in(procs(), [] {
    goro::errgroup g(goro::background());
    std::atomic<std::uint64_t> task_id{0};
    const int line = __LINE__ + 1;
    g.go([&]() -> std::error_code {
      task_id = goro::goroutine_id();
      throw std::runtime_error("boom");
    });
    g.go([ctx = g.context()] { goro::select(goro::on_recv(ctx.done())); });
    try {
      (void)g.wait();
      FAIL() << "wait did not rethrow";
    } catch (const goro::task_exception& e) {
      EXPECT_EQ(e.goroutine(), task_id.load());
      EXPECT_NE(e.goroutine(), 0u);
      EXPECT_EQ(static_cast<int>(e.spawn_site().line()), line);
      EXPECT_NE(std::string(e.what()).find("boom"), std::string::npos) << e.what();
      try {
        std::rethrow_exception(e.original());
      } catch (const std::runtime_error& inner) {
        EXPECT_STREQ(inner.what(), "boom");
      }
    }
    EXPECT_EQ(g.context().err(), goro::errc::canceled);
  });
}

}  // namespace
