// goro::semaphore (x/sync's semaphore.Weighted): FIFO service so a large
// request is not starved, cancellation while waiting acquires nothing,
// try_acquire, and the release panic. Ported tests name their source:
// x/sync/semaphore/semaphore_test.go.
#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include "goro/goro.hpp"
#include "test_util.hpp"

namespace {

using goro_test::eventually;
using goro_test::run_in;
using goro_test::scaled;

class semaphore_procs : public goro_test::procs_test {};
GORO_INSTANTIATE_PROCS(semaphore_procs);

// True once someone is queued: try_acquire fails even for a free unit.
bool has_waiter(goro::semaphore& s) {
  if (s.try_acquire(1)) {
    s.release(1);
    return false;
  }
  return true;
}

// x/sync: TestLargeAcquireDoesntStarve, made deterministic: a request for
// everything queues; a small request behind it must wait even though units
// are free, and gets them only after the large one.
TEST_P(semaphore_procs, fifo_large_request_is_not_starved) {
  run_in(procs(), [] {
    goro::semaphore s(10);
    s.acquire(5);
    std::atomic<int> order{0};
    int large_at = 0, small_at = 0;
    goro::wait_group wg;
    wg.add(2);
    goro::go([&] {
      s.acquire(10);
      large_at = ++order;
      s.release(10);
      wg.done();
    });
    ASSERT_TRUE(eventually([&] { return has_waiter(s); }));
    std::thread small([&] {  // a thread, to mix the kinds of waiter
      s.acquire(1);
      small_at = ++order;
      s.release(1);
      wg.done();
    });
    EXPECT_FALSE(eventually([&] { return order.load() != 0; }, std::chrono::milliseconds(30)))
        << "a small request overtook the queued large one";
    s.release(5);
    wg.wait();
    small.join();
    EXPECT_EQ(large_at, 1);
    EXPECT_EQ(small_at, 2);
    EXPECT_TRUE(s.try_acquire(10)) << "units were lost";
    s.release(10);
  });
}

// x/sync: TestWeightedAcquireCanceled / TestAllocCancelDoesntStarve: a
// waiter whose context is cancelled returns the context's error, holds
// nothing, and the waiters behind it proceed.
TEST_P(semaphore_procs, cancel_while_waiting_acquires_nothing) {
  run_in(procs(), [] {
    goro::semaphore s(2);
    s.acquire(1);
    auto [ctx, cancel] = goro::with_cancel(goro::background());
    std::error_code big_ec;
    bool small_ok = false;
    goro::wait_group wg;
    wg.add(1);
    goro::go([&, ctx = ctx] {
      big_ec = s.acquire(ctx, 2);  // cannot fit while we hold 1
      wg.done();
    });
    ASSERT_TRUE(eventually([&] { return has_waiter(s); }));
    wg.add(1);
    goro::go([&] {
      small_ok = !s.acquire(goro::background(), 1);  // queued behind the big one
      wg.done();
    });
    ASSERT_TRUE(eventually([&] { return s.waiting() == 2; }));
    cancel();
    wg.wait();
    EXPECT_EQ(big_ec, goro::errc::canceled);
    EXPECT_TRUE(small_ok) << "the waiter behind a cancelled one was not served";
    s.release(1);
    s.release(1);
    EXPECT_TRUE(s.try_acquire(2)) << "a cancelled acquire kept units";
    s.release(2);
    // An already-cancelled context fails at once, even with units free.
    EXPECT_EQ(s.acquire(ctx, 1), goro::errc::canceled);
    EXPECT_TRUE(s.try_acquire(2));
    s.release(2);
  });
}

// x/sync: TestWeighted (hammer) with try_acquire and threads; the units in
// use never exceed the size.
TEST_P(semaphore_procs, hammer_never_exceeds_size) {
  run_in(procs(), [] {
    const std::int64_t size = 4;
    goro::semaphore s(size);
    std::atomic<std::int64_t> in_use{0};
    std::atomic<int> bad{0};
    const int iters = scaled(2000, 200);
    auto worker = [&](std::int64_t n) {
      for (int i = 0; i < iters; ++i) {
        if (i % 5 == 0) {
          if (!s.try_acquire(n)) continue;
        } else {
          s.acquire(n);
        }
        if (in_use.fetch_add(n) + n > size) bad.fetch_add(1);
        if (i % 16 == 0) goro::yield();
        in_use.fetch_sub(n);
        s.release(n);
      }
    };
    goro::wait_group wg;
    wg.add(6);
    for (int k = 0; k < 6; ++k)
      goro::go([&, k] {
        worker(1 + k % 3);
        wg.done();
      });
    std::thread t(worker, 2);
    wg.wait();
    t.join();
    EXPECT_EQ(bad.load(), 0);
    EXPECT_TRUE(s.try_acquire(size));
  });
}

TEST(semaphore, release_more_than_held_panics) {
  goro::semaphore s(3);
  s.acquire(1);
  try {
    s.release(2);
    FAIL() << "no panic";
  } catch (const goro::panic_error& e) {
    EXPECT_STREQ(e.what(), "semaphore: released more than held");
  }
  s.release(1);
  EXPECT_TRUE(s.try_acquire(3));
}

}  // namespace
