// goro::wait_group (Go's sync.WaitGroup), from goroutines and plain threads.
// Ported Go tests name their source: go/src/sync/waitgroup_test.go.
#include <gtest/gtest.h>

#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "goro/goro.hpp"
#include "test_util.hpp"

namespace {

using namespace std::chrono_literals;
using goro_test::run_in;
using goro_test::scaled;

class wait_group_procs : public goro_test::procs_test {};
GORO_INSTANTIATE_PROCS(wait_group_procs);

TEST_P(wait_group_procs, wait_returns_after_every_done) {
  run_in(procs(), [] {
    const int n = scaled(1000, 200);
    std::vector<int> results(static_cast<std::size_t>(n), 0);  // plain ints: wait() orders them
    goro::wait_group wg;
    wg.add(n);
    for (int i = 0; i < n; ++i) {
      goro::go([&, i] {
        if (i % 3 == 0) goro::yield();
        results[static_cast<std::size_t>(i)] = i + 1;
        wg.done();
      });
    }
    wg.wait();
    for (int i = 0; i < n; ++i) EXPECT_EQ(results[static_cast<std::size_t>(i)], i + 1);
  });
}

TEST_P(wait_group_procs, wait_with_zero_counter_returns_at_once) {
  run_in(procs(), [] {
    goro::wait_group fresh;
    fresh.wait();
    fresh.wait();
    goro::wait_group used;
    used.add(2);
    used.add(-2);
    used.wait();
    used.add(0);
    used.wait();
    std::thread t([&] { fresh.wait(); });  // a plain thread too
    t.join();
  });
  goro::wait_group outside;  // and with no runtime at all
  outside.wait();
  SUCCEED();
}

// Go: TestWaitGroupMisuse.
TEST_P(wait_group_procs, negative_counter_panics) {
  run_in(procs(), [] {
    goro::wait_group wg;
    wg.add(1);
    wg.done();
    try {
      wg.done();
      ADD_FAILURE() << "no panic";
    } catch (const goro::panic_error& e) {
      EXPECT_STREQ(e.what(), "sync: negative WaitGroup counter");
    }

    goro::wait_group wg2;
    wg2.add(3);
    EXPECT_THROW(wg2.add(-4), goro::panic_error);

    // In another goroutine, and as the std::logic_error it derives from.
    goro::wait_group done;
    done.add(1);
    goro::go([&] {
      goro::wait_group w;
      EXPECT_THROW(w.add(-1), std::logic_error);
      done.done();
    });
    done.wait();
  });
  // On a plain thread.
  goro::wait_group wg;
  try {
    wg.done();
    ADD_FAILURE() << "no panic";
  } catch (const goro::panic_error& e) {
    EXPECT_STREQ(e.what(), "sync: negative WaitGroup counter");
  }
}

// Go: TestWaitGroup. wg1 is a barrier for the goroutines' start, wg2 for
// their release; neither may let anyone through too soon, and both are reused
// for eight rounds.
TEST_P(wait_group_procs, go_test_wait_group_reuse) {
  run_in(procs(), [] {
    goro::wait_group wg1, wg2;
    for (int round = 0; round != 8; ++round) {
      const int n = 16;
      std::atomic<int> exited{0};
      goro::wait_group all_exited;
      wg1.add(n);
      wg2.add(n);
      all_exited.add(n);
      for (int i = 0; i != n; ++i) {
        goro::go([&] {
          wg1.done();
          wg2.wait();
          exited.fetch_add(1);
          all_exited.done();
        });
      }
      wg1.wait();
      for (int i = 0; i != n; ++i) {
        goro::yield();  // give an early-released goroutine the chance to show
        EXPECT_EQ(exited.load(), 0) << "WaitGroup released group too soon (round " << round << ")";
        wg2.done();
      }
      all_exited.wait();  // blocks forever if the barrier failed to release someone
      EXPECT_EQ(exited.load(), n);
    }
  });
}

// Go: TestWaitGroupRace. Two goroutines signal; wait() must see both.
TEST_P(wait_group_procs, go_test_wait_group_race) {
  run_in(procs(), [] {
    const int rounds = scaled(1000, 200);
    int spurious = 0;
    for (int i = 0; i < rounds; ++i) {
      goro::wait_group wg;
      std::atomic<int> n{0};
      wg.add(1);
      goro::go([&] {
        n.fetch_add(1);
        wg.done();
      });
      wg.add(1);
      goro::go([&] {
        n.fetch_add(1);
        wg.done();
      });
      wg.wait();
      if (n.load() != 2) ++spurious;
    }
    EXPECT_EQ(spurious, 0) << "spurious wakeups from wait()";
  });
}

// Plain threads call done() while goroutines wait, and the other way round.
TEST_P(wait_group_procs, threads_and_goroutines_mixed) {
  run_in(procs(), [] {
    const int threads = 3;
    const int goroutines = scaled(50, 20);

    // (1) Goroutines wait, threads count down.
    {
      goro::wait_group gate, finished;
      std::atomic<int> released{0};
      gate.add(threads);
      finished.add(goroutines);
      for (int i = 0; i < goroutines; ++i) {
        goro::go([&] {
          gate.wait();
          released.fetch_add(1);
          finished.done();
        });
      }
      std::vector<std::thread> ts;
      for (int i = 0; i < threads; ++i) ts.emplace_back([&] { gate.done(); });
      finished.wait();
      for (auto& t : ts) t.join();
      EXPECT_EQ(released.load(), goroutines);
    }

    // (2) Threads wait, goroutines count down.
    {
      goro::wait_group gate, finished;
      std::atomic<int> released{0};
      gate.add(goroutines);
      finished.add(threads);
      std::vector<std::thread> ts;
      for (int i = 0; i < threads; ++i) {
        ts.emplace_back([&] {
          gate.wait();
          released.fetch_add(1);
          finished.done();
        });
      }
      for (int i = 0; i < goroutines; ++i) {
        goro::go([&] {
          goro::yield();
          gate.done();
        });
      }
      finished.wait();  // a goroutine waiting for threads
      for (auto& t : ts) t.join();
      EXPECT_EQ(released.load(), threads);
    }

    // (3) Threads and goroutines both wait on one group that both count down.
    {
      goro::wait_group gate, finished;
      std::atomic<int> released{0};
      gate.add(threads + goroutines);
      finished.add(2 * (threads + goroutines));
      std::vector<std::thread> ts;
      for (int i = 0; i < threads; ++i) {
        ts.emplace_back([&] {
          gate.done();
          gate.wait();
          released.fetch_add(1);
          finished.done();
        });
        ts.emplace_back([&] {
          gate.wait();
          released.fetch_add(1);
          finished.done();
        });
      }
      for (int i = 0; i < goroutines; ++i) {
        goro::go([&] {
          gate.done();
          gate.wait();
          released.fetch_add(1);
          finished.done();
        });
        goro::go([&] {
          gate.wait();
          released.fetch_add(1);
          finished.done();
        });
      }
      finished.wait();
      for (auto& t : ts) t.join();
      EXPECT_EQ(released.load(), 2 * (threads + goroutines));
    }
  });
}

// With no runtime at all, plain threads only.
TEST(wait_group, works_between_plain_threads_without_a_runtime) {
  goro::wait_group gate, finished;
  std::atomic<int> released{0};
  const int waiters = 4;
  gate.add(1);
  finished.add(waiters);
  std::vector<std::thread> ts;
  for (int i = 0; i < waiters; ++i) {
    ts.emplace_back([&] {
      gate.wait();
      released.fetch_add(1);
      finished.done();
    });
  }
  std::thread opener([&] { gate.done(); });
  finished.wait();
  opener.join();
  for (auto& t : ts) t.join();
  EXPECT_EQ(released.load(), waiters);
}

TEST_P(wait_group_procs, many_waiters_are_all_released) {
  run_in(procs(), [] {
    const int waiters = scaled(2000, 500);
    const int thread_waiters = 4;
    goro::wait_group gate, parked, finished;
    std::atomic<int> released{0};
    gate.add(1);
    parked.add(waiters);
    finished.add(waiters + thread_waiters);
    for (int i = 0; i < waiters; ++i) {
      goro::go([&] {
        parked.done();
        gate.wait();
        released.fetch_add(1);
        finished.done();
      });
    }
    std::vector<std::thread> ts;
    for (int i = 0; i < thread_waiters; ++i) {
      ts.emplace_back([&] {
        gate.wait();
        released.fetch_add(1);
        finished.done();
      });
    }
    parked.wait();  // every goroutine is at (or past) gate.wait()
    EXPECT_EQ(released.load(), 0);
    gate.done();
    finished.wait();
    for (auto& t : ts) t.join();
    EXPECT_EQ(released.load(), waiters + thread_waiters);
  });
}

// A wait_group reused many times in quick succession as a per-round barrier.
TEST_P(wait_group_procs, reuse_across_rounds) {
  run_in(procs(), [] {
    const int rounds = scaled(200, 50);
    const int per_round = 8;
    goro::wait_group wg;
    std::atomic<int> total{0};
    for (int r = 0; r < rounds; ++r) {
      wg.add(per_round);
      for (int i = 0; i < per_round; ++i) {
        goro::go([&] {
          total.fetch_add(1);
          wg.done();
        });
      }
      wg.wait();
      EXPECT_EQ(total.load(), (r + 1) * per_round);
    }
  });
}

}  // namespace
