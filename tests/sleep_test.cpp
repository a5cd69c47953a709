// goro::sleep_for / sleep_until (Go's time.Sleep): never early, immediate for
// zero and negative durations, timers fire in deadline order, usable from
// plain threads, and an idle runtime sleeps instead of spinning.
#include <gtest/gtest.h>
#include <sys/resource.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <numeric>
#include <thread>
#include <vector>

#include "goro/goro.hpp"
#include "test_util.hpp"

namespace {

using namespace std::chrono_literals;
using goro_test::run_in;
using goro_test::scaled;
using steady = std::chrono::steady_clock;

class sleep_procs : public goro_test::procs_test {};
GORO_INSTANTIATE_PROCS(sleep_procs);

TEST_P(sleep_procs, sleep_for_never_returns_early) {
  run_in(procs(), [] {
    constexpr std::array<std::chrono::nanoseconds, 6> durations{1us, 50us, 500us, 1ms, 3ms, 10ms};
    const int n = 48;
    std::vector<std::chrono::nanoseconds> slept(static_cast<std::size_t>(n));
    goro::wait_group wg;
    wg.add(n);
    for (int i = 0; i < n; ++i) {
      goro::go([&, i] {
        const auto d = durations[static_cast<std::size_t>(i) % durations.size()];
        const auto t0 = steady::now();
        goro::sleep_for(d);
        slept[static_cast<std::size_t>(i)] = steady::now() - t0;
        wg.done();
      });
    }
    // The main goroutine sleeps too, one duration after another, and with
    // other duration types.
    for (const auto d : durations) {
      const auto t0 = steady::now();
      goro::sleep_for(d);
      EXPECT_GE(steady::now() - t0, d);
    }
    auto t0 = steady::now();
    goro::sleep_for(std::chrono::duration<double, std::milli>(2.5));
    EXPECT_GE(steady::now() - t0, 2500us);
    t0 = steady::now();
    goro::sleep_for(std::chrono::duration<long, std::ratio<1, 3>>(0));  // zero thirds
    goro::sleep_for(std::chrono::duration<long, std::ratio<1, 1000>>(1));
    EXPECT_GE(steady::now() - t0, 1ms);

    wg.wait();
    for (int i = 0; i < n; ++i) {
      const auto want = durations[static_cast<std::size_t>(i) % durations.size()];
      EXPECT_GE(slept[static_cast<std::size_t>(i)], want) << "goroutine " << i << " woke early";
    }
  });
}

TEST_P(sleep_procs, sleep_until_steady_and_system_clock) {
  run_in(procs(), [] {
    const auto target = steady::now() + 5ms;
    goro::sleep_until(target);
    EXPECT_GE(steady::now(), target);

    // A coarser duration type on the steady clock.
    const auto coarse =
        std::chrono::time_point_cast<std::chrono::milliseconds>(steady::now() + 3ms);
    goro::sleep_until(coarse);
    EXPECT_GE(steady::now(), coarse);

    // system_clock: converted to a steady duration when called, so only the
    // steady time is exact; the system clock may be slewed meanwhile (1 ms
    // of slack is thousands of times what NTP slewing can do in 20 ms).
    const auto t0 = steady::now();
    const auto sys_target = std::chrono::system_clock::now() + 20ms;
    goro::sleep_until(sys_target);
    EXPECT_GE(steady::now() - t0, 19ms);
    EXPECT_GE(std::chrono::system_clock::now() + 1ms, sys_target);
  });
}

// Go: time.Sleep(d) with d <= 0 returns immediately.
void sleep_zero_and_negative() {
  const auto t0 = steady::now();
  goro::sleep_for(0ns);
  goro::sleep_for(-1ns);
  goro::sleep_for(-5s);
  goro::sleep_for(std::chrono::hours(-100000));
  goro::sleep_for(std::chrono::nanoseconds::min());
  goro::sleep_until(steady::now());
  goro::sleep_until(steady::now() - 1h);
  goro::sleep_until(steady::time_point{});
  goro::sleep_until(steady::time_point::min());
  goro::sleep_until(std::chrono::system_clock::now() - 1h);
  goro::sleep_until(std::chrono::system_clock::time_point{});
  // "Immediately": no sleep happened (each of these would block for at least
  // an hour if misread).
  EXPECT_LT(steady::now() - t0, 1s);
}

TEST_P(sleep_procs, zero_and_negative_durations_return_immediately) {
  run_in(procs(), [] {
    sleep_zero_and_negative();
    goro::wait_group wg;
    wg.add(4);
    for (int i = 0; i < 4; ++i) {
      goro::go([&] {
        sleep_zero_and_negative();
        wg.done();
      });
    }
    wg.wait();
  });
  sleep_zero_and_negative();  // on a plain thread, outside the runtime
}

// Timers fire in deadline order. Deadlines are 20 ms apart, far more than the
// time a woken goroutine needs to run, so each fires alone; the goroutines are
// spawned in a scrambled order so that spawn order is not deadline order.
//
// If the process is stalled (descheduled by the OS on a loaded machine) for a
// whole spacing, two timers are due at once and either may run first, as in
// Go. Such a stall shows as a goroutine waking a spacing or more after its
// deadline; the measurement is then repeated. A runtime that misorders timers
// misorders them every time.
TEST(sleep, goroutines_wake_in_deadline_order_on_one_p) {
  constexpr int n = 10;
  constexpr auto spacing = 20ms;
  constexpr int attempts = 3;
  std::vector<int> order;
  bool in_order = false;
  for (int attempt = 0; attempt < attempts && !in_order; ++attempt) {
    order.clear();
    bool stalled = false;
    goro::run(goro::run_options{.maxprocs = 1}, [&] {
      goro::mutex order_mu;
      const auto base = steady::now() + 30ms;
      goro::wait_group wg;
      wg.add(n);
      for (int k = 0; k < n; ++k) {
        const int i = (k * 7) % n;  // 0 7 4 1 8 5 2 9 6 3
        goro::go([&, i] {
          const auto deadline = base + i * spacing;
          goro::sleep_until(deadline);
          const auto woke = steady::now();
          EXPECT_GE(woke, deadline);
          // One P runs them one at a time, but only a lock orders them for
          // the race detector (Go's memory model has no "same thread" edge).
          std::lock_guard lk(order_mu);
          if (woke - deadline >= spacing) stalled = true;
          order.push_back(i);
          wg.done();
        });
      }
      wg.wait();
      EXPECT_EQ(goro_test::leaked_goroutines(), "");
    });
    in_order = std::is_sorted(order.begin(), order.end());
    if (!in_order && !stalled) break;  // out of order with no excuse
  }
  std::vector<int> want(n);
  std::iota(want.begin(), want.end(), 0);
  EXPECT_EQ(order, want);
}

// Many timers at once, on several Ps: every sleeper wakes, none early.
TEST_P(sleep_procs, many_sleepers_all_wake) {
  run_in(procs(), [] {
    const int n = scaled(2000, 500);
    std::atomic<int> early{0};
    std::atomic<int> woke{0};
    goro::wait_group wg;
    wg.add(n);
    for (int i = 0; i < n; ++i) {
      goro::go([&, i] {
        const auto d = std::chrono::microseconds((i * 7919) % 20'000);  // 0 .. 20 ms
        const auto t0 = steady::now();
        goro::sleep_for(d);
        if (steady::now() - t0 < d) early.fetch_add(1);
        woke.fetch_add(1);
        wg.done();
      });
    }
    wg.wait();
    EXPECT_EQ(woke.load(), n);
    EXPECT_EQ(early.load(), 0);
  });
}

TEST(sleep, works_on_plain_threads) {
  // Outside any runtime.
  auto t0 = steady::now();
  goro::sleep_for(5ms);
  EXPECT_GE(steady::now() - t0, 5ms);
  const auto target = steady::now() + 3ms;
  goro::sleep_until(target);
  EXPECT_GE(steady::now(), target);

  // On a thread of its own while a runtime runs, next to sleeping goroutines.
  goro::run(goro::run_options{.maxprocs = 2}, [] {
    goro::wait_group wg;
    wg.add(2);
    std::thread t([&] {
      EXPECT_FALSE(goro::in_goroutine());
      const auto start = steady::now();
      goro::sleep_for(5ms);
      EXPECT_GE(steady::now() - start, 5ms);
      const auto sys_target = std::chrono::system_clock::now() + 5ms;
      goro::sleep_until(sys_target);
      EXPECT_GE(std::chrono::system_clock::now() + 1ms, sys_target);
      wg.done();
    });
    goro::go([&] {
      const auto start = steady::now();
      goro::sleep_for(5ms);
      EXPECT_GE(steady::now() - start, 5ms);
      wg.done();
    });
    wg.wait();
    t.join();
    EXPECT_EQ(goro_test::leaked_goroutines(), "");
  });
}

double process_cpu_seconds() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
         static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

// An idle runtime burns no CPU (DESIGN.md idea 1): its threads sleep on a
// futex until the earliest timer. Not a speed test: a spinning idle loop uses
// ~300 ms per thread here; parked threads use next to nothing.
TEST(sleep, idle_runtime_does_not_spin_while_a_goroutine_sleeps) {
  goro::run(goro::run_options{.maxprocs = 4}, [] {
    const double cpu0 = process_cpu_seconds();
    const auto t0 = steady::now();
    goro::sleep_for(300ms);
    const double used = process_cpu_seconds() - cpu0;
    EXPECT_GE(steady::now() - t0, 300ms);
    EXPECT_LT(used, 0.100) << "process used " << used * 1000 << " ms of CPU in a 300 ms idle sleep";
  });
}

// The same with no timer at all: the only goroutine waits for a plain thread.
TEST(sleep, idle_runtime_does_not_spin_while_waiting_for_a_thread) {
  goro::run(goro::run_options{.maxprocs = 4}, [] {
    goro::wait_group wg;
    wg.add(1);
    const double cpu0 = process_cpu_seconds();
    std::thread t([&wg] {
      std::this_thread::sleep_for(300ms);  // the thread's work, not synchronization
      wg.done();
    });
    wg.wait();
    const double used = process_cpu_seconds() - cpu0;
    t.join();
    EXPECT_LT(used, 0.100) << "process used " << used * 1000 << " ms of CPU while idle for 300 ms";
  });
}

}  // namespace
