// goro::cond (Go's sync.Cond): signal wakes one waiter, broadcast wakes all,
// a signal with nobody waiting is not remembered, and no wake-up is lost
// between a waiter's unlock and its sleep. Goroutines and threads mixed.
// Ported Go tests name their source: go/src/sync/cond_test.go.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
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

class cond_procs : public goro_test::procs_test {};
GORO_INSTANTIATE_PROCS(cond_procs);

// Starts n waiters (every third on a plain thread), each of which, under mu,
// counts itself in `waiting` and waits once; returns when all n are inside
// wait() (they hold a ticket once they have counted themselves and released
// mu, which main observes by taking mu).
struct waiters {
  goro::mutex& mu;
  goro::cond& c;
  int waiting = 0;  // guarded by mu
  std::atomic<int> woken{0};
  goro::wait_group wg;
  std::vector<std::thread> threads;

  waiters(goro::mutex& m, goro::cond& cv) : mu(m), c(cv) {}

  void start(int n) {
    auto body = [this] {
      std::unique_lock lk(mu);
      ++waiting;
      c.wait();
      woken.fetch_add(1);
    };
    wg.add(n);
    for (int i = 0; i < n; ++i) {
      if (i % 3 == 2)
        threads.emplace_back([this, body] {
          body();
          wg.done();
        });
      else
        goro::go([this, body] {
          body();
          wg.done();
        });
    }
    ASSERT_TRUE(eventually([&] {
      std::lock_guard lk(mu);
      return waiting == n;
    }));
  }
  void join() {
    wg.wait();
    for (auto& t : threads) t.join();
  }
};

// Go: TestCondSignal.
TEST_P(cond_procs, signal_wakes_exactly_one) {
  run_in(procs(), [] {
    goro::mutex mu;
    goro::cond c(mu);
    waiters w(mu, c);
    w.start(3);
    for (int k = 1; k <= 3; ++k) {
      c.signal();
      ASSERT_TRUE(eventually([&] { return w.woken.load() >= k; }));
      EXPECT_FALSE(eventually([&] { return w.woken.load() > k; }, 20ms))
          << "one signal woke more than one waiter";
    }
    w.join();
    EXPECT_EQ(w.woken.load(), 3);
  });
}

// Go: TestCondBroadcast (one round).
TEST_P(cond_procs, broadcast_wakes_all) {
  run_in(procs(), [] {
    goro::mutex mu;
    goro::cond c(mu);
    waiters w(mu, c);
    w.start(10);
    c.broadcast();
    w.join();
    EXPECT_EQ(w.woken.load(), 10);
  });
}

// A signal (or broadcast) with nobody waiting is lost: the next waiter still
// waits for the next signal.
TEST_P(cond_procs, signal_before_wait_is_not_remembered) {
  run_in(procs(), [] {
    goro::mutex mu;
    goro::cond c(mu);
    c.broadcast();
    c.signal();
    c.signal();
    waiters w(mu, c);
    w.start(1);
    EXPECT_FALSE(eventually([&] { return w.woken.load() > 0; }, 50ms))
        << "a signal sent before the wait was remembered";
    c.signal();
    w.join();
    EXPECT_EQ(w.woken.load(), 1);
  });
}

// No lost wake-up: a ping-pong of turns in which each side signals right
// after the other has unlocked in wait(), for many rounds. A lost wake-up
// hangs the test. Go: TestRace-like handoff, with a goroutine and a thread.
TEST_P(cond_procs, ping_pong_loses_no_wakeup) {
  run_in(procs(), [] {
    goro::mutex mu;
    goro::cond c(mu);
    int turn = 0;  // guarded by mu
    const int rounds = scaled(5000, 500);
    auto player = [&](int me) {
      for (int i = 0; i < rounds; ++i) {
        std::unique_lock lk(mu);
        c.wait([&] { return turn % 2 == me; });
        ++turn;
        lk.unlock();
        c.signal();
      }
    };
    goro::wait_group wg;
    wg.add(1);
    goro::go([&] {
      player(0);
      wg.done();
    });
    std::thread t([&] { player(1); });
    wg.wait();
    t.join();
    EXPECT_EQ(turn, 2 * rounds);
  });
}

// Go: TestCondSignalGenerations: waiters are woken in the order they
// started waiting.
TEST_P(cond_procs, signal_wakes_in_fifo_order) {
  run_in(procs(), [] {
    goro::mutex mu;
    goro::cond c(mu);
    const int n = 6;
    int waiting = 0;         // guarded by mu
    std::vector<int> order;  // guarded by mu
    goro::wait_group wg;
    wg.add(n);
    for (int i = 0; i < n; ++i) {
      goro::go([&, i] {
        std::unique_lock lk(mu);
        ++waiting;
        c.wait();
        order.push_back(i);
        wg.done();
      });
      ASSERT_TRUE(eventually([&] {
        std::lock_guard lk(mu);
        return waiting == i + 1;
      }));
    }
    for (int i = 0; i < n; ++i) {
      c.signal();
      ASSERT_TRUE(eventually([&] {
        std::lock_guard lk(mu);
        return static_cast<int>(order.size()) == i + 1;
      }));
    }
    wg.wait();
    for (int i = 0; i < n; ++i) EXPECT_EQ(order[i], i);
  });
}

}  // namespace
