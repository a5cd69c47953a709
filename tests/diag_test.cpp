// Diagnostics: goroutine dumps, goro::blocking, sysmon and the GORO_DEBUG
// modes. The fatal paths (deadlock, SIGQUIT, panics) are in death_test.cpp.
#include <gtest/gtest.h>

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>

#include "goro/goro.hpp"
#include "runtime/sched.hpp"
#include "test_util.hpp"

namespace {

using namespace std::chrono_literals;
using goro_test::run_in;
using goro_test::scaled;

std::string dump_text() {
  std::ostringstream os;
  goro::dump(os);
  return os.str();
}

std::size_t count(const std::string& s, const std::string& part) {
  std::size_t n = 0;
  for (std::size_t at = s.find(part); at != std::string::npos; at = s.find(part, at + 1)) ++n;
  return n;
}

// Distinct frames the dumps must show by name.
[[gnu::noinline]] void diag_blocked_in_receive(goro::chan<int> c) {
  (void)c.recv();
  asm volatile("");  // not a tail call: keep this frame on the stack
}

[[gnu::noinline]] void diag_blocked_in_wait(goro::wait_group& wg) {
  wg.wait();
  asm volatile("");
}

// ------------------------------------------------------------------- dump ---

TEST(dump, shows_state_reason_name_site_and_stack) {
  run_in(2, [] {
    auto c = goro::make_chan<int>();
    goro::wait_group gate, done;
    gate.add(1);
    done.add(2);
    goro::go(goro::spawn_options{.name = "receiver"}, [c, &done] {
      diag_blocked_in_receive(c);
      done.done();
    });
    goro::go([&gate, &done] {
      diag_blocked_in_wait(gate);
      done.done();
    });
    EXPECT_TRUE(goro_test::eventually([] {
      const std::string d = dump_text();
      return d.find("[chan receive") != std::string::npos &&
             d.find("[wait group") != std::string::npos;
    }));
    const std::string d = dump_text();
    EXPECT_NE(d.find("\"receiver\" [chan receive, "), std::string::npos) << d;
    EXPECT_NE(d.find("diag_blocked_in_receive"), std::string::npos) << d;
    EXPECT_NE(d.find("diag_blocked_in_wait"), std::string::npos) << d;
    EXPECT_NE(d.find("created at "), std::string::npos) << d;
    EXPECT_NE(d.find("diag_test.cpp"), std::string::npos) << d;
    // The dumping goroutine itself: running, with its own stack.
    EXPECT_NE(d.find("goroutine 1 \"main\" [running]:\ngoro::dump"), std::string::npos) << d;
    c.send(1);
    gate.done();
    done.wait();
  });
}

// G records are reused, and a record keeps its name buffer: an unnamed
// goroutine in a record whose last goroutine had a name shows no name. On
// one P the next spawn takes the record the last exit freed.
TEST(dump, a_reused_record_forgets_the_name) {
  run_in(1, [] {
    goro::wait_group done;
    done.add(1);
    goro::go(goro::spawn_options{.name = "forgotten"}, [&done] { done.done(); });
    done.wait();
    goro::yield();  // let it exit, freeing its record
    auto c = goro::make_chan<int>();
    done.add(1);
    goro::go([c, &done] {
      diag_blocked_in_receive(c);
      done.done();
    });
    EXPECT_TRUE(goro_test::eventually(
        [] { return dump_text().find("[chan receive") != std::string::npos; }));
    const std::string d = dump_text();
    EXPECT_EQ(d.find("forgotten"), std::string::npos) << d;
    c.send(1);
    done.wait();
  });
}

TEST(dump, folds_goroutines_blocked_at_one_site) {
  const int n = scaled(100000, 2000);
  run_in(4, [&] {
    auto c = goro::make_chan<int>();
    goro::wait_group done;
    done.add(n);
    for (int i = 0; i < n; ++i) {
      goro::go([c, &done] {
        diag_blocked_in_receive(c);
        done.done();
      });
    }
    EXPECT_TRUE(goro_test::eventually(
        [&] {
          const std::string d = dump_text();
          return d.find(std::to_string(n) + " goroutines [chan receive") != std::string::npos;
        },
        60s));
    const auto t0 = std::chrono::steady_clock::now();
    const std::string d = dump_text();
    const auto took = std::chrono::steady_clock::now() - t0;
    // One entry for all of them, whose id list is cut short.
    EXPECT_EQ(count(d, "goroutines [chan receive"), 1u) << d.substr(0, 4000);
    EXPECT_EQ(count(d, "diag_blocked_in_receive"), 1u) << d.substr(0, 4000);
    EXPECT_LT(d.size(), 20000u);
    // Not a benchmark: a bound no machine should miss.
    EXPECT_LT(took, 30s);
    std::printf(
        "dump of %d goroutines: %lld ms, %zu bytes\n", n,
        static_cast<long long>(std::chrono::duration_cast<std::chrono::milliseconds>(took).count()),
        d.size());
    c.close();
    done.wait();
  });
}

TEST(dump, outside_the_runtime_says_so) {
  EXPECT_NE(dump_text().find("no goro runtime"), std::string::npos);
}

// --------------------------------------------------------------- blocking ---

// One P: the goroutine that unblocks the blocking call can run only if
// blocking() handed the P to another thread.
TEST(blocking, hands_the_p_to_other_goroutines) {
  run_in(1, [] {
    std::atomic<int> value{0};
    goro::wait_group done;
    done.add(1);
    int got = 0;
    goro::go([&] {
      // Waits for the other goroutine without parking: the thread is
      // blocked (bounded, so that a broken handoff fails instead of hanging).
      got = goro::blocking([&] {
        const auto deadline = std::chrono::steady_clock::now() + 60s;
        while (value.load() == 0 && std::chrono::steady_clock::now() < deadline)
          std::this_thread::sleep_for(1ms);
        return value.load();
      });
      done.done();
    });
    goro::go([&] {
      // Seen in the dump meanwhile.
      EXPECT_TRUE(goro_test::eventually(
          [] { return dump_text().find("[blocking call") != std::string::npos; }));
      value.store(42);
    });
    done.wait();
    EXPECT_EQ(got, 42);
  });
}

TEST(blocking, returns_the_result_or_rethrows) {
  run_in(2, [] {
    EXPECT_EQ(goro::blocking([] { return std::string("result"); }), "result");
    int x = 0;
    int& ref = goro::blocking([&]() -> int& { return x; });
    EXPECT_EQ(&ref, &x);
    EXPECT_THROW(goro::blocking([]() -> int { throw std::runtime_error("failed"); }),
                 std::runtime_error);
    goro::blocking([] {});
  });
  // On a plain thread it is a plain call.
  EXPECT_EQ(goro::blocking([] { return 5; }), 5);
}

class procs_blocking : public goro_test::procs_test {};
GORO_INSTANTIATE_PROCS(procs_blocking);

TEST_P(procs_blocking, many_goroutines_in_blocking_calls_at_once) {
  run_in(procs(), [] {
    const int n = scaled(64, 16);
    goro::wait_group done;
    done.add(n);
    std::atomic<int> sum{0};
    for (int i = 0; i < n; ++i) {
      goro::go([&, i] {
        for (int k = 0; k < 10; ++k) {
          sum.fetch_add(goro::blocking([i] {
            std::this_thread::yield();
            return i;
          }));
          goro::yield();
        }
        done.done();
      });
    }
    done.wait();
    EXPECT_EQ(sum.load(), 10 * n * (n - 1) / 2);
  });
}

// ----------------------------------------------------------------- sysmon ---

// A goroutine computes without yielding on a 1-P runtime until a flag is set
// (or 10 s pass). The goroutines queued behind it (here: main) get another
// thread from sysmon, start a ping-pong pair, and the pair's 1000 round trips
// set the flag; without sysmon nothing else runs until the 10 s are up.
TEST(sysmon, keeps_other_goroutines_running_beside_a_spinning_one) {
  run_in(1, [] {
    const std::int64_t retakes0 = goro::sysmon_retakes();
    std::atomic<bool> stop{false};
    std::atomic<bool> stopped_by_flag{false};
    auto started = goro::make_chan<int>(1);
    goro::wait_group done;
    done.add(3);
    goro::go(goro::spawn_options{.name = "spinner"}, [&] {
      started.send(1);  // readies main into this P's runnext, behind us
      const auto t0 = std::chrono::steady_clock::now();
      while (!stop.load(std::memory_order_relaxed)) {
        if (std::chrono::steady_clock::now() - t0 > 10s) break;  // only if broken
      }
      stopped_by_flag.store(stop.load());
      done.done();
    });
    (void)started.recv();  // runs only once sysmon has lent a P
    // The dump names the spinning goroutine and how long it has run.
    EXPECT_TRUE(goro_test::eventually([] {
      return dump_text().find("\"spinner\" [running, not yielding, ") != std::string::npos;
    }));
    auto ping = goro::make_chan<int>();
    auto pong = goro::make_chan<int>();
    goro::go([&] {
      for (int i = 0; i < 1000; ++i) {
        ping.send(int{i});
        (void)pong.recv();
      }
      stop.store(true);
      done.done();
    });
    goro::go([&] {
      for (int i = 0; i < 1000; ++i) pong.send(ping.recv().value());
      done.done();
    });
    done.wait();
    EXPECT_TRUE(stopped_by_flag.load())
        << "the ping-pong pair did not finish while the spin lasted";
    EXPECT_GE(goro::sysmon_retakes(), retakes0 + 1);
  });
}

// A goroutine computes without yielding; a timer it started sits in its
// P's heap, which only that P's scheduler runs while other Ms have work of
// their own (here: goroutines that yield in a loop keep every other P, lent
// ones included, busy). sysmon fires the stuck P's due timers; without that
// the timer would fire only when the spin ends (after 10 s).
TEST(sysmon, fires_the_due_timers_of_a_p_stuck_on_one_goroutine) {
  run_in(2, [] {
    std::atomic<bool> stop{false};
    goro::wait_group done;
    constexpr int yielders = 8;
    done.add(yielders + 1);
    for (int i = 0; i < yielders; ++i) {
      goro::go([&] {
        while (!stop.load(std::memory_order_relaxed)) goro::yield();
        done.done();
      });
    }
    std::atomic<bool> fired_during_spin{false};
    goro::go(goro::spawn_options{.name = "spinner"}, [&] {
      goro::timer t(5ms);  // in this goroutine's P's heap
      const auto t0 = std::chrono::steady_clock::now();
      while (std::chrono::steady_clock::now() - t0 < 10s) {
        if (t.c().try_recv()) {
          fired_during_spin.store(true);
          break;
        }
      }
      stop.store(true);
      done.done();
    });
    done.wait();
    EXPECT_TRUE(fired_during_spin.load()) << "the timer waited for the spin to end";
  });
}

// An idle runtime: sysmon notices that every P is idle and sleeps without a
// timeout (otherwise it would tick every 10 ms at least, and far more often
// before its back-off).
TEST(sysmon, sleeps_while_every_p_is_idle) {
  run_in(2, [] {
    auto c = goro::make_chan<int>();
    bool went_idle = false;
    std::int64_t ticks = -1;
    std::thread t([&] {
      // main is parked in recv: every P goes idle, and sysmon with them.
      const auto deadline = std::chrono::steady_clock::now() + 30s;
      while (!goro::detail::sched.sysmon_idle.load() && std::chrono::steady_clock::now() < deadline)
        std::this_thread::sleep_for(1ms);
      went_idle = goro::detail::sched.sysmon_idle.load();
      const std::int64_t ticks0 = goro::detail::sched.sysmon_ticks.load();
      std::this_thread::sleep_for(300ms);  // idle time to observe, not synchronization
      ticks = goro::detail::sched.sysmon_ticks.load() - ticks0;
      c.send(1);
    });
    (void)c.recv();
    t.join();
    EXPECT_TRUE(went_idle) << "sysmon never slept without a timeout";
    EXPECT_LE(ticks, 2) << "sysmon woke " << ticks << " times in a 300 ms idle wait";
  });
}

TEST(sysmon, lent_ps_do_not_change_maxprocs) {
  run_in(1, [] {
    std::atomic<bool> stop{false};
    goro::wait_group done;
    done.add(1);
    auto started = goro::make_chan<int>(1);
    goro::go([&] {
      started.send(1);
      const auto t0 = std::chrono::steady_clock::now();
      while (!stop.load(std::memory_order_relaxed) && std::chrono::steady_clock::now() - t0 < 20s) {
      }
      done.done();
    });
    (void)started.recv();  // via a lent P
    EXPECT_EQ(goro::maxprocs(), 1);
    stop.store(true);
    done.wait();
    EXPECT_EQ(goro::maxprocs(), 1);
  });
}

// A goroutine that keeps computing on a P being retired (here the lent P,
// which sysmon gives back as soon as no P looks stuck) strands what waits
// in that P's runnext: the P is out of nprocs, and only sysmon can wake a
// thief for it. main gets onto the lent P behind a spinner, stops the
// spinner and waits, computing, until the lent P is given back and the
// other thread is idle; then it wakes a parked receiver into its own
// runnext (which wakes nobody) and computes until the receiver has run.
TEST(sysmon, rescues_work_stranded_on_a_p_being_retired) {
  if (std::getenv("GORO_DEBUG") != nullptr)
    GTEST_SKIP() << "GORO_DEBUG modes route wake-ups around runnext";
  using goro::detail::sched;
  run_in(1, [] {
    std::atomic<bool> stop{false};
    std::atomic<bool> received{false};
    goro::wait_group done;
    done.add(2);
    auto c = goro::make_chan<int>();
    auto started = goro::make_chan<int>(1);
    goro::go([&] {  // runs first (runnext) and parks
      (void)c.recv();
      received.store(true);
      done.done();
    });
    goro::go([&] {
      started.send(1);  // readies main behind us: it runs once sysmon lends a P
      const auto t0 = std::chrono::steady_clock::now();
      while (!stop.load(std::memory_order_relaxed) && std::chrono::steady_clock::now() - t0 < 20s) {
      }
      done.done();
    });
    (void)started.recv();  // on the lent P now
    stop.store(true);
    auto waited = [t0 = std::chrono::steady_clock::now()] {
      return std::chrono::steady_clock::now() - t0 > 20s;
    };
    while (
        !(sched.nprocs.load() == 1 && sched.npidle.load() == 1 && sched.nmspinning.load() == 0) &&
        !waited()) {
    }
    ASSERT_FALSE(waited()) << "the lent P was not given back, or the other thread stayed busy";
    c.send(1);  // the receiver goes to our runnext; nobody is woken for it
    while (!received.load() && !waited()) {
    }
    EXPECT_TRUE(received.load()) << "the receiver never ran beside the computing main goroutine";
    done.wait();
  });
}

// -------------------------------------------------------------- debug modes ---

class scoped_env {
 public:
  scoped_env(const char* name, const char* value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old, had_ = true;
    ::setenv(name, value, 1);
  }
  ~scoped_env() {
    if (had_)
      ::setenv(name_, old_.c_str(), 1);
    else
      ::unsetenv(name_);
  }

 private:
  const char* name_;
  std::string old_;
  bool had_ = false;
};

TEST(debug_mode, migrate_moves_a_goroutine_at_every_reschedule) {
  scoped_env env("GORO_DEBUG", "migrate");
  run_in(2, [] {
    int moves = 0;
    const int yields = 50;
    goro::wait_group done;
    done.add(1);
    goro::go([&] {
      // Not std::this_thread::get_id(): pthread_self is declared const, so
      // the compiler may reuse its value across the yield.
      pid_t tid = ::gettid();
      for (int i = 0; i < yields; ++i) {
        goro::yield();
        if (::gettid() != tid) ++moves;
        tid = ::gettid();
      }
      done.done();
    });
    done.wait();
    EXPECT_EQ(moves, yields);
  });
}

TEST(debug_mode, shuffle_keeps_channels_correct) {
  scoped_env env("GORO_DEBUG", "shuffle,migrate");
  run_in(2, [] {
    auto c = goro::make_chan<int>(4);
    goro::wait_group done;
    done.add(4);
    std::atomic<long> sum{0};
    for (int w = 0; w < 2; ++w) {
      goro::go([&] {
        for (int i = 0; i < 500; ++i) c.send(int{i});
        done.done();
      });
      goro::go([&] {
        for (int i = 0; i < 500; ++i) sum.fetch_add(c.recv().value());
        done.done();
      });
    }
    done.wait();
    EXPECT_EQ(sum.load(), 2L * 499 * 500 / 2);
  });
}

// ------------------------------------------------------------- leak check ---

TEST(leak_check, reports_leaked_goroutines_from_the_dump) {
  std::string report;
  goro::run(goro::run_options{.maxprocs = 2}, [&] {
    auto c = goro::make_chan<int>();
    goro::go(goro::spawn_options{.name = "leaker"}, [c] { diag_blocked_in_receive(c); });
    report = goro_test::leaked_goroutines(200ms);
    c.close();  // the leaker returns; nothing is left behind
    EXPECT_EQ(goro_test::leaked_goroutines(), "");
  });
  EXPECT_NE(report.find("\"leaker\" [chan receive"), std::string::npos) << report;
  EXPECT_NE(report.find("diag_blocked_in_receive"), std::string::npos) << report;
  std::string none = "unset";
  goro::run([&] { none = goro_test::leaked_goroutines(200ms); });
  EXPECT_EQ(none, "");
}

}  // namespace
