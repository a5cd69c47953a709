// goro::mutex (Go's sync.Mutex): mutual exclusion under contention from
// goroutines and plain threads, the standard lock adapters, try_lock, and
// Go's fairness guarantee (starvation mode). Ported Go tests name their
// source: go/src/sync/mutex_test.go.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <mutex>
#include <thread>
#include <vector>

#include "goro/goro.hpp"
#include "test_util.hpp"

namespace {

using namespace std::chrono_literals;
using goro_test::eventually;
using goro_test::run_in;
using goro_test::scaled;

class mutex_procs : public goro_test::procs_test {};
GORO_INSTANTIATE_PROCS(mutex_procs);

// k goroutines x m increments of a plain counter. Some critical sections
// yield while holding the lock, so that even one P sees contention; an atomic
// occupancy count catches two owners at once.
TEST_P(mutex_procs, counter_under_contention) {
  run_in(procs(), [] {
    const int k = 8;
    const int m = scaled(20'000, 2'000);
    goro::mutex mu;
    std::int64_t counter = 0;  // guarded by mu
    std::atomic<int> inside{0};
    std::atomic<int> overlaps{0};
    goro::wait_group wg;
    wg.add(k);
    for (int g = 0; g < k; ++g) {
      goro::go([&] {
        for (int i = 0; i < m; ++i) {
          mu.lock();
          if (inside.fetch_add(1, std::memory_order_relaxed) != 0) overlaps.fetch_add(1);
          ++counter;
          if (i % 128 == 0) goro::yield();  // hold the lock across a reschedule
          inside.fetch_sub(1, std::memory_order_relaxed);
          mu.unlock();
          if (i % 32 == 0) goro::yield();
        }
        wg.done();
      });
    }
    wg.wait();
    EXPECT_EQ(counter, std::int64_t{k} * m);
    EXPECT_EQ(overlaps.load(), 0) << "two owners inside the critical section at once";
  });
}

// Go: TestMutex (with HammerMutex): lock/unlock and try_lock from 10
// goroutines.
TEST_P(mutex_procs, go_test_mutex_hammer) {
  run_in(procs(), [] {
    goro::mutex m;
    m.lock();
    EXPECT_FALSE(m.try_lock()) << "TryLock succeeded with mutex locked";
    m.unlock();
    EXPECT_TRUE(m.try_lock()) << "TryLock failed with mutex unlocked";
    m.unlock();

    const int loops = scaled(1000, 300);
    std::atomic<int> finished{0};
    goro::wait_group wg;
    wg.add(10);
    for (int g = 0; g < 10; ++g) {
      goro::go([&] {
        for (int i = 0; i < loops; ++i) {
          if (i % 3 == 0) {
            if (m.try_lock()) m.unlock();
            continue;
          }
          m.lock();
          m.unlock();
        }
        finished.fetch_add(1);
        wg.done();
      });
    }
    wg.wait();
    EXPECT_EQ(finished.load(), 10);
    EXPECT_TRUE(m.try_lock()) << "left locked";
    m.unlock();
  });
}

TEST_P(mutex_procs, try_lock_fails_while_held_and_succeeds_when_free) {
  run_in(procs(), [] {
    goro::mutex mu;
    EXPECT_TRUE(mu.try_lock());
    EXPECT_FALSE(mu.try_lock());  // not recursive

    // Held by the main goroutine: another goroutine and a thread fail too.
    goro::wait_group wg;
    wg.add(1);
    bool other_goroutine = true;
    goro::go([&] {
      other_goroutine = mu.try_lock();
      wg.done();
    });
    wg.wait();
    bool other_thread = true;
    std::thread t([&] { other_thread = mu.try_lock(); });
    t.join();
    EXPECT_FALSE(other_goroutine);
    EXPECT_FALSE(other_thread);

    // Not tied to its owner: another goroutine unlocks it.
    wg.add(1);
    goro::go([&] {
      mu.unlock();
      wg.done();
    });
    wg.wait();
    EXPECT_TRUE(mu.try_lock());
    mu.unlock();

    // A thread takes it and a goroutine sees it held, and free again after.
    std::thread t2([&] { other_thread = mu.try_lock(); });
    t2.join();
    EXPECT_TRUE(other_thread);
    EXPECT_FALSE(mu.try_lock());
    mu.unlock();
    EXPECT_TRUE(mu.try_lock());
    mu.unlock();
  });
  // Without a runtime.
  goro::mutex mu;
  EXPECT_TRUE(mu.try_lock());
  EXPECT_FALSE(mu.try_lock());
  mu.unlock();
  EXPECT_TRUE(mu.try_lock());
  mu.unlock();
}

// goro::mutex is Lockable: the standard adapters work with it.
TEST_P(mutex_procs, std_lock_adapters) {
  run_in(procs(), [] {
    goro::mutex a, b;
    {
      std::lock_guard<goro::mutex> g(a);
      EXPECT_FALSE(a.try_lock());
    }
    EXPECT_TRUE(a.try_lock());
    a.unlock();
    {
      std::unique_lock<goro::mutex> l(a, std::defer_lock);
      EXPECT_FALSE(l.owns_lock());
      l.lock();
      EXPECT_TRUE(l.owns_lock());
      std::unique_lock<goro::mutex> other(a, std::try_to_lock);
      EXPECT_FALSE(other.owns_lock());
      l.unlock();
      EXPECT_TRUE(l.try_lock());
    }
    {
      std::scoped_lock both(a, b);
      EXPECT_FALSE(a.try_lock());
      EXPECT_FALSE(b.try_lock());
    }
    EXPECT_TRUE(a.try_lock());
    EXPECT_TRUE(b.try_lock());
    a.unlock();
    b.unlock();

    // std::scoped_lock over two mutexes taken in opposite orders by two
    // goroutines: std::lock's deadlock avoidance relies on try_lock.
    const int n = scaled(2000, 300);
    int both_count = 0;  // guarded by a and b
    goro::wait_group wg;
    wg.add(2);
    goro::go([&] {
      for (int i = 0; i < n; ++i) {
        std::scoped_lock l(a, b);
        ++both_count;
        if (i % 16 == 0) goro::yield();
      }
      wg.done();
    });
    goro::go([&] {
      for (int i = 0; i < n; ++i) {
        std::scoped_lock l(b, a);
        ++both_count;
        if (i % 16 == 0) goro::yield();
      }
      wg.done();
    });
    wg.wait();
    EXPECT_EQ(both_count, 2 * n);
  });
}

TEST_P(mutex_procs, threads_and_goroutines_share_one_mutex) {
  run_in(procs(), [] {
    const int threads = 2;
    const int goroutines = 4;
    const int per = scaled(20'000, 2'000);
    goro::mutex mu;
    std::int64_t counter = 0;  // guarded by mu
    goro::wait_group wg;
    wg.add(threads + goroutines);
    std::vector<std::thread> ts;
    for (int t = 0; t < threads; ++t) {
      ts.emplace_back([&] {
        for (int i = 0; i < per; ++i) {
          std::lock_guard<goro::mutex> g(mu);
          ++counter;
        }
        wg.done();
      });
    }
    for (int g = 0; g < goroutines; ++g) {
      goro::go([&] {
        for (int i = 0; i < per; ++i) {
          std::lock_guard<goro::mutex> l(mu);
          ++counter;
          if (i % 256 == 0) goro::yield();  // a thread must wait for a parked owner
        }
        wg.done();
      });
    }
    wg.wait();
    for (auto& t : ts) t.join();
    EXPECT_EQ(counter, std::int64_t{threads + goroutines} * per);
  });
}

// A goroutine that blocks while holding the lock (on a wait_group, yield and
// sleep) parks: other goroutines run meanwhile, a contender waits, and sees
// everything the owner wrote before unlocking.
TEST_P(mutex_procs, lock_held_across_blocking_calls) {
  run_in(procs(), [] {
    goro::mutex mu;
    int shared = 0;  // guarded by mu
    goro::wait_group holder_has_lock, bystander_ran, all;
    holder_has_lock.add(1);
    bystander_ran.add(1);
    all.add(3);
    bool bystander_try = true;
    goro::go([&] {  // holder
      mu.lock();
      holder_has_lock.done();
      bystander_ran.wait();  // parked with the lock held
      goro::yield();
      goro::sleep_for(2ms);
      shared = 1;
      mu.unlock();
      all.done();
    });
    goro::go([&] {  // contender
      holder_has_lock.wait();
      mu.lock();  // waits for the holder
      EXPECT_EQ(shared, 1);
      shared = 2;
      mu.unlock();
      all.done();
    });
    goro::go([&] {  // bystander: runs even on one P while the holder is blocked
      holder_has_lock.wait();
      bystander_try = mu.try_lock();
      bystander_ran.done();
      all.done();
    });
    all.wait();
    EXPECT_FALSE(bystander_try);
    std::lock_guard<goro::mutex> g(mu);
    EXPECT_EQ(shared, 2);
  });
}

// Go: TestMutexFairness. One goroutine holds the lock nearly all the time
// (sleeping 100us inside it); another must still get it 10 times within 10
// seconds: after 1 ms of waiting the mutex turns to starvation mode and hands
// itself to the waiter.
TEST_P(mutex_procs, go_test_mutex_fairness) {
  run_in(procs(), [] {
    goro::mutex mu;
    std::atomic<bool> stop{false};
    std::atomic<bool> done{false};
    std::atomic<int> acquired{0};
    goro::wait_group wg;
    wg.add(2);
    goro::go([&] {
      while (!stop.load()) {
        mu.lock();
        goro::sleep_for(100us);
        mu.unlock();
      }
      wg.done();
    });
    goro::go([&] {
      for (int i = 0; i < 10; ++i) {
        goro::sleep_for(100us);
        mu.lock();
        acquired.fetch_add(1);
        mu.unlock();
      }
      done.store(true);
      wg.done();
    });
    const bool in_time = eventually([&] { return done.load(); }, 10s);
    const int acquired_in_time = acquired.load();
    stop.store(true);
    wg.wait();
    EXPECT_TRUE(in_time) << "can't acquire Mutex in 10 seconds (" << acquired_in_time << "/10)";
  });
}

// Several goroutines hammer the lock with tiny critical sections (yielding
// inside now and then, so that one P is contended too) while one more must
// take it 100 times: starvation mode guarantees it does. Without starvation
// mode a waiter (a hammer warming up, or the acquirer) starves forever here on
// one P.
TEST_P(mutex_procs, starving_waiter_makes_progress) {
  run_in(procs(), [] {
    const int hammers = 4;
    goro::mutex mu;
    std::int64_t hammered = 0;  // guarded by mu
    std::atomic<bool> stop{false};
    std::atomic<bool> done{false};
    std::atomic<int> acquired{0};
    goro::wait_group wg, warmed_up;
    wg.add(hammers + 1);
    warmed_up.add(hammers);
    for (int h = 0; h < hammers; ++h) {
      goro::go([&] {
        std::uint64_t i = 0;
        while (!stop.load(std::memory_order_relaxed)) {
          mu.lock();
          ++hammered;
          if (++i % 8 == 0) goro::yield();
          mu.unlock();
          if (i == 64) warmed_up.done();
        }
        if (i < 64) warmed_up.done();  // stopped early: itself starved
        wg.done();
      });
    }
    goro::go([&] {
      warmed_up.wait();  // contend with hammers in full swing
      for (int i = 0; i < 100; ++i) {
        mu.lock();
        acquired.fetch_add(1);
        mu.unlock();
      }
      done.store(true);
      wg.done();
    });
    const bool in_time = eventually([&] { return done.load(); }, 20s);
    const int acquired_in_time = acquired.load();
    stop.store(true);
    wg.wait();
    EXPECT_TRUE(in_time) << "a waiter starved: " << acquired_in_time
                         << "/100 acquisitions in 20 s (0: a hammer starved during warm-up)";
    EXPECT_EQ(acquired.load(), 100);
    std::lock_guard<goro::mutex> g(mu);
    EXPECT_GT(hammered, 0);
  });
}

}  // namespace
