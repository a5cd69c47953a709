// goro::timer, ticker, after, after_func (Go 1.23's time package semantics)
// and wall-clock schedules. Behaviours follow Go's time/sleep_test.go and
// tick_test.go: TestTimerStopStress, TestReset, TestAfterStop,
// TestTimerModifiedEarlier, TestChanTimerStopNoStale (1.23),
// TestTickerResetLtZeroDuration, TestNewTickerLtZeroDuration.
//
// Absence checks ("no value arrives") wait past the deadline: a sleep here
// is the observation window, never the synchronization a result relies on.
#include <gtest/gtest.h>

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <ctime>
#include <map>
#include <memory>
#include <random>
#include <thread>
#include <vector>

#include "goro/goro.hpp"
#include "runtime/sched.hpp"
#include "runtime/timer.hpp"
#include "test_util.hpp"

namespace {

using namespace std::chrono_literals;
using goro_test::eventually;
using goro_test::run_in;
using goro_test::scaled;
using steady = std::chrono::steady_clock;

class timer_procs : public goro_test::procs_test {};
GORO_INSTANTIATE_PROCS(timer_procs);

TEST_P(timer_procs, a_timer_delivers_once_never_early) {
  run_in(procs(), [] {
    const auto t0 = steady::now();
    goro::timer t(3ms);
    std::optional<goro::time_point> v = t.c().recv();
    ASSERT_TRUE(v.has_value());
    EXPECT_GE(*v, t0 + 3ms);
    EXPECT_GE(steady::now(), t0 + 3ms);
    EXPECT_FALSE(t.stop());                         // fired and received
    EXPECT_FALSE(t.c().recv_for(5ms).has_value());  // only one value
    EXPECT_GE(*goro::after(1ms).recv(), t0 + 1ms);
  });
}

TEST_P(timer_procs, stop_before_firing_keeps_the_value_from_ever_arriving) {
  run_in(procs(), [] {
    goro::timer t(2ms);
    EXPECT_TRUE(t.stop());
    EXPECT_FALSE(t.stop());
    EXPECT_FALSE(t.c().recv_for(10ms).has_value());
  });
}

// Go 1.23: a value that fired but was not received is discarded by stop
// and reset, which then report true.
TEST_P(timer_procs, stop_and_reset_discard_a_fired_unread_value) {
  run_in(procs(), [] {
    goro::timer t(0ms);
    ASSERT_TRUE(eventually([&] { return t.c().len() == 1; }));
    EXPECT_TRUE(t.stop());
    EXPECT_EQ(t.c().len(), 0u);
    EXPECT_FALSE(t.c().try_recv().has_value());

    goro::timer u(0ms);
    ASSERT_TRUE(eventually([&] { return u.c().len() == 1; }));
    const auto before_reset = steady::now();
    EXPECT_TRUE(u.reset(2ms));
    std::optional<goro::time_point> v = u.c().recv();  // the new firing, not the stale one
    ASSERT_TRUE(v.has_value());
    EXPECT_GE(*v, before_reset + 2ms);
    EXPECT_FALSE(u.reset(1h));  // fired and received: was not pending
    EXPECT_TRUE(u.reset(1h));   // pending
    EXPECT_TRUE(u.stop());
  });
}

TEST_P(timer_procs, a_goroutine_blocked_on_a_stopped_timer_stays_blocked) {
  run_in(procs(), [] {
    goro::timer t(20ms);
    goro::chan<int> started = goro::make_chan<int>();
    goro::chan<bool> got = goro::make_chan<bool>(1);
    goro::go([&] {
      started.send(1);
      got.send(t.c().recv_for(60ms).has_value());
    });
    (void)started.recv();
    EXPECT_TRUE(t.stop());
    EXPECT_EQ(got.recv(), false);
  });
}

TEST_P(timer_procs, two_selecting_goroutines_share_one_value) {
  run_in(procs(), [] {
    for (int round = 0; round < 20; ++round) {
      goro::timer t(1ms);
      goro::chan<int> quit = goro::make_chan<int>();
      std::atomic<int> got{0};
      goro::wait_group wg;
      for (int i = 0; i < 2; ++i) {
        wg.add(1);
        goro::go([&] {
          goro::select(goro::on_recv(t.c(), [&](auto v) { got.fetch_add(v ? 1 : 100); }),
                       goro::on_recv(quit));
          wg.done();
        });
      }
      ASSERT_TRUE(eventually([&] { return got.load() == 1; }));
      quit.close();
      wg.wait();
      EXPECT_EQ(got.load(), 1);
    }
  });
}

// stop racing the fire while a receiver waits: exactly one of "the receiver
// got the value" and "stop returned true" (TestTimerStopStress, 1.23).
TEST_P(timer_procs, stop_racing_the_fire_either_stops_it_or_lets_it_deliver) {
  run_in(procs(), [] {
    const int rounds = scaled(400, 80);
    int stopped = 0;
    int delivered = 0;
    for (int r = 0; r < rounds; ++r) {
      goro::timer t(std::chrono::microseconds(r % 40));
      goro::chan<int> quit = goro::make_chan<int>();
      goro::chan<bool> got = goro::make_chan<bool>(1);
      goro::go([&t, quit, got] {
        bool g = false;
        goro::select(goro::on_recv(t.c(), [&](auto v) { g = v.has_value(); }), goro::on_recv(quit));
        got.send(bool{g});
      });
      for (int spin = 0; spin < (r * 37) % 2000; ++spin) goro::detail::steady_now_ns();
      const bool was_pending = t.stop();
      quit.close();
      const bool g = *got.recv();
      ASSERT_NE(was_pending, g) << "round " << r << ": stop " << was_pending << ", received " << g;
      stopped += was_pending ? 1 : 0;
      delivered += g ? 1 : 0;
    }
    EXPECT_EQ(stopped + delivered, rounds);
  });
}

// Random stop/reset sequences over many timers, against a model of each
// timer's state. Pending timers are far in the future; firing is forced
// with reset(0) and awaited, so the model never races the clock.
TEST_P(timer_procs, random_stop_and_reset_sequences_match_the_model) {
  run_in(procs(), [] {
    enum class state { pending, fired_unread, idle };
    const int ntimers = 64;
    const int steps = scaled(3000, 400);
    std::mt19937 rng(12345);
    std::vector<goro::timer> ts;
    std::vector<state> model;
    for (int i = 0; i < ntimers; ++i) {
      ts.emplace_back(1h);
      model.push_back(state::pending);
    }
    for (int s = 0; s < steps; ++s) {
      const auto i = static_cast<std::size_t>(rng() % ntimers);
      goro::timer& t = ts[i];
      const bool was_active = model[i] != state::idle;
      switch (rng() % 4) {
        case 0:
          ASSERT_EQ(t.stop(), was_active) << "step " << s;
          model[i] = state::idle;
          break;
        case 1:
          ASSERT_EQ(t.reset(1h), was_active) << "step " << s;
          model[i] = state::pending;
          break;
        case 2:
          ASSERT_EQ(t.reset(0ms), was_active) << "step " << s;
          ASSERT_TRUE(eventually([&] { return t.c().len() == 1; }));
          model[i] = state::fired_unread;
          break;
        case 3:
          if (model[i] == state::fired_unread) {
            ASSERT_TRUE(t.c().try_recv().has_value()) << "step " << s;
            model[i] = state::idle;
          } else {
            ASSERT_FALSE(t.c().try_recv().has_value()) << "step " << s;
          }
          break;
      }
    }
    for (auto& t : ts) t.stop();
  });
}

TEST_P(timer_procs, a_timer_moved_earlier_repeatedly_fires_at_the_last_deadline) {
  run_in(procs(), [] {
    goro::timer t(1h);
    for (std::chrono::seconds d : {600s, 60s, 10s, 1s}) EXPECT_TRUE(t.reset(d));
    const auto t0 = steady::now();
    EXPECT_TRUE(t.reset(3ms));
    std::optional<goro::time_point> v = t.c().recv();
    ASSERT_TRUE(v.has_value());
    EXPECT_GE(*v, t0 + 3ms);
    EXPECT_LT(*v, t0 + 1s);
  });
}

TEST_P(timer_procs, fresh_timeouts_in_a_select_loop_do_not_accumulate) {
  run_in(procs(), [] {
    const std::int64_t base = goro::detail::timer_obj_count();
    goro::chan<int> ready = goro::make_chan<int>(1);
    const int n = scaled(100000, 5000);
    int got = 0;
    for (int i = 0; i < n; ++i) {
      ready.send(int{i});
      goro::select(goro::on_recv(ready, [&](auto) { ++got; }),
                   goro::on_recv(goro::after(1h), [](auto) { ADD_FAILURE(); }));
      // The after() channel died with the select: its timer is gone already.
      ASSERT_EQ(goro::detail::timer_obj_count(), base) << "iteration " << i;
    }
    EXPECT_EQ(got, n);
  });
}

TEST_P(timer_procs, after_func_runs_in_a_goroutine_unless_stopped_and_reset_reruns) {
  run_in(procs(), [] {
    goro::chan<std::uint64_t> ran = goro::make_chan<std::uint64_t>(4);
    const std::uint64_t me = goro::goroutine_id();
    goro::timer t = goro::after_func(1ms, [ran] { ran.send(goro::goroutine_id()); });
    EXPECT_TRUE(t.c().is_nil());
    const std::uint64_t id = *ran.recv();
    EXPECT_NE(id, me);
    EXPECT_FALSE(t.stop());
    EXPECT_FALSE(t.reset(1ms));  // not pending: f runs again
    (void)ran.recv();
    goro::timer s = goro::after_func(3ms, [ran] { ran.send(0); });
    EXPECT_TRUE(s.stop());
    EXPECT_FALSE(ran.recv_for(15ms).has_value());
    // Dropping the handle does not stop it (Go's AfterFunc).
    {
      (void)goro::after_func(1ms, [ran] { ran.send(7); });
    }
    EXPECT_EQ(ran.recv(), 7u);
    ASSERT_TRUE(eventually([] { return goro::num_goroutines() == 1; }));
  });
}

TEST_P(timer_procs, a_ticker_ticks_phase_locked_drops_for_slow_receivers_and_stops) {
  run_in(procs(), [] {
    const auto t0 = steady::now();
    goro::ticker tick(2ms);
    goro::time_point prev = t0;
    for (int i = 1; i <= 5; ++i) {
      std::optional<goro::time_point> v = tick.c().recv();
      ASSERT_TRUE(v.has_value());
      EXPECT_GE(*v, t0 + i * 2ms);  // never early against its phase
      EXPECT_GT(*v, prev);
      prev = *v;
    }
    goro::sleep_for(20ms);          // a slow receiver: ticks are dropped,
    EXPECT_LE(tick.c().len(), 1u);  // at most one is kept
    tick.reset(1h);
    EXPECT_EQ(tick.c().len(), 0u);  // reset discards the unread tick
    const auto r0 = steady::now();
    tick.reset(3ms);
    EXPECT_GE(*tick.c().recv(), r0 + 3ms);
    tick.stop();
    EXPECT_EQ(tick.c().len(), 0u);
    EXPECT_FALSE(tick.c().recv_for(10ms).has_value());
  });
}

// A ticker destroyed while its fire is running: the fire re-arms the ticker
// as its last step, so stopping it can find it back in a heap before the
// firing thread is done with it. Freed only after (ASan checks the rest).
TEST_P(timer_procs, tickers_torn_down_while_firing_are_freed_only_after_the_fire) {
  run_in(procs(), [] {
    const std::int64_t base = goro::detail::timer_obj_count();
    for (int i = 0; i < scaled(3000, 600); ++i) {
      goro::ticker t(std::chrono::microseconds(5 + i % 20));
      (void)t.c().recv();
      if (i % 3 == 0) goro::yield();
    }  // each one stopped and freed here, often mid-fire
    EXPECT_EQ(goro::detail::timer_obj_count(), base);
  });
}

TEST(timer, non_positive_intervals_and_empty_handles_panic_with_go_words) {
  run_in(1, [] {
    try {
      goro::ticker t(0ms);
      ADD_FAILURE() << "no panic";
    } catch (const goro::panic_error& e) {
      EXPECT_STREQ(e.what(), "non-positive interval for NewTicker");
    }
    goro::ticker t(1h);
    try {
      t.reset(-1ms);
      ADD_FAILURE() << "no panic";
    } catch (const goro::panic_error& e) {
      EXPECT_STREQ(e.what(), "non-positive interval for Ticker.Reset");
    }
    goro::timer empty;
    EXPECT_THROW(empty.stop(), goro::panic_error);
  });
}

TEST(timer, timers_need_a_running_runtime) {
  EXPECT_THROW(goro::timer(1ms), std::logic_error);
  EXPECT_THROW((void)goro::with_timeout(goro::background(), 1ms), std::logic_error);
}

TEST(timer, plain_threads_use_timers_inside_a_runtime) {
  run_in(2, [] {
    std::atomic<bool> ok{false};
    std::thread th([&] {
      const auto t0 = steady::now();
      goro::timer t(2ms);
      auto v = t.c().recv();
      ok = v.has_value() && *v >= t0 + 2ms && !t.stop();
    });
    th.join();
    EXPECT_TRUE(ok.load());
  });
}

TEST(timer, a_million_pending_timers_stay_cheap) {
  run_in(2, [] {
    const std::int64_t base = goro::detail::timer_obj_count();
    const int n = scaled(1000000, 20000);
    {
      std::vector<goro::timer> ts;
      ts.reserve(static_cast<std::size_t>(n));
      for (int i = 0; i < n; ++i) ts.emplace_back(std::chrono::seconds(3600 + i % 1000));
      EXPECT_EQ(goro::detail::timer_obj_count(), base + n);
      int stopped = 0;
      for (int i = 0; i < n; i += 2) stopped += ts[static_cast<std::size_t>(i)].stop() ? 1 : 0;
      EXPECT_EQ(stopped, (n + 1) / 2);
    }  // the rest go with their handles
    EXPECT_EQ(goro::detail::timer_obj_count(), base);
  });
}

// --- the per-P heap ----------------------------------------------------------

// The heap against a model (a multimap of deadline -> entry) under random
// pushes, stops (of the top, of inner entries, enough to force rebuilds),
// re-pushes of stopped timers whose old entries are still in the heap as
// zombies, sleeper entries and pops: every pop must be a live entry with the
// least deadline, a stopped timer must never come out, and earliest() and
// size() must always match.
TEST(timer_heap, matches_a_sorted_model_through_stops_zombies_and_rebuilds) {
  using goro::detail::timer;
  using goro::detail::timer_heap;
  constexpr int ntimers = 3000;
  constexpr int nsleepers = 200;
  std::vector<timer> timers(ntimers);
  struct alignas(8) fake_g {
    char bytes[8];
  };
  std::vector<fake_g> sleepers(nsleepers);
  // Model: deadline -> identity (a timer* or a sleeper's address).
  std::multimap<std::int64_t, const void*> model;
  std::vector<bool> in_heap(ntimers, false), sleeping(nsleepers, false);
  std::mt19937_64 rng(20261125);
  timer_heap h;
  goro::detail::lock_guard lk(h.lock);

  auto erase_from_model = [&](std::int64_t when, const void* who) {
    auto [lo, hi] = model.equal_range(when);
    for (auto it = lo; it != hi; ++it) {
      if (it->second == who) {
        model.erase(it);
        return true;
      }
    }
    return false;
  };
  // The analysis does not see that the lambdas run with h.lock held.
  auto check_top = [&]() GORO_NO_TSA {
    ASSERT_EQ(h.size(), model.size());
    ASSERT_EQ(h.earliest(), model.empty() ? 0 : model.begin()->first);
  };
  auto pop_one = [&](timer_heap::popped due) GORO_NO_TSA {
    ASSERT_TRUE(due);
    ASSERT_FALSE(model.empty());
    ASSERT_EQ(due.when, model.begin()->first);
    const void* who = due.t != nullptr ? static_cast<const void*>(due.t) : due.sleeper;
    ASSERT_TRUE(erase_from_model(due.when, who)) << "popped an entry that is not live";
    if (due.t != nullptr) {
      const auto i = static_cast<std::size_t>(due.t - timers.data());
      ASSERT_TRUE(in_heap[i]);
      ASSERT_EQ(due.t->heap.load(), nullptr);
      in_heap[i] = false;
      due.t->busy.store(0);  // as run_timers does once fire() returned
    } else {
      const auto i = static_cast<std::size_t>(static_cast<fake_g*>(due.sleeper) - sleepers.data());
      ASSERT_TRUE(sleeping[i]);
      sleeping[i] = false;
    }
  };

  std::int64_t now = 1000;
  int rebuilt_sized_stops = 0;
  for (int step = 0; step < 200000; ++step) {
    const auto op = rng() % 100;
    if (op < 40) {  // push a timer (maybe one whose stopped entry is still a zombie)
      const auto i = rng() % ntimers;
      if (in_heap[i]) continue;
      timers[i].when = now + static_cast<std::int64_t>(rng() % 5000);
      h.push(&timers[i]);
      in_heap[i] = true;
      model.emplace(timers[i].when, &timers[i]);
    } else if (op < 45) {  // a sleeper
      const auto i = rng() % nsleepers;
      if (sleeping[i]) continue;
      const std::int64_t when = now + static_cast<std::int64_t>(rng() % 5000);
      h.push_sleeper(&sleepers[i], when);
      sleeping[i] = true;
      model.emplace(when, &sleepers[i]);
    } else if (op < 75) {  // stop: the top one sometimes, else any
      std::size_t i = rng() % ntimers;
      if (op < 50 && !model.empty()) {
        const auto* top = static_cast<const timer*>(model.begin()->second);
        if (top >= timers.data() && top < timers.data() + ntimers)
          i = static_cast<std::size_t>(top - timers.data());
      }
      const bool removed = h.remove(&timers[i]);
      ASSERT_EQ(removed, static_cast<bool>(in_heap[i]));
      if (removed) {
        ASSERT_TRUE(erase_from_model(timers[i].when, &timers[i]));
        in_heap[i] = false;
        ++rebuilt_sized_stops;
      }
    } else {  // time passes; fire what is due
      now += static_cast<std::int64_t>(rng() % 60);
      for (;;) {
        const timer_heap::popped due = h.pop_expired(now);
        if (!due) {
          ASSERT_TRUE(model.empty() || model.begin()->first > now);
          break;
        }
        pop_one(due);
      }
    }
    check_top();
  }
  // Stop most of what is left in one go (well past a quarter: rebuilds),
  // then drain in order.
  for (int i = 0; i < ntimers; ++i) {
    if (in_heap[static_cast<std::size_t>(i)] && i % 5 != 0) {
      ASSERT_TRUE(h.remove(&timers[static_cast<std::size_t>(i)]));
      ASSERT_TRUE(erase_from_model(timers[static_cast<std::size_t>(i)].when,
                                   &timers[static_cast<std::size_t>(i)]));
      in_heap[static_cast<std::size_t>(i)] = false;
      check_top();
    }
  }
  while (!model.empty()) pop_one(h.pop());
  EXPECT_FALSE(h.pop());
  EXPECT_EQ(h.earliest(), 0);
  EXPECT_GT(rebuilt_sized_stops, 10000);
}

// Sleeping goroutines and timers are entries of their own P's heap;
// shrinking maxprocs moves them to P 0, where the timers can still be
// stopped and the sleepers still wake.
TEST(timer_heap, sleepers_and_timers_on_retired_ps_move_to_p0) {
  run_in(4, [] {
    using namespace goro::detail;
    constexpr int spinners = 3;  // with main, one per P: all run at once
    constexpr int sleepers_each = 50;
    std::atomic<bool> go{false};
    std::atomic<int> spinning{0};
    goro::wait_group wg;
    wg.add(spinners * sleepers_each);
    std::array<std::unique_ptr<goro::timer>, spinners> timers;
    goro::wait_group started;
    started.add(spinners);
    for (int s = 0; s < spinners; ++s) {
      goro::go([&, s] {
        spinning.fetch_add(1);
        while (!go.load()) {
        }
        timers[static_cast<std::size_t>(s)] = std::make_unique<goro::timer>(1h);
        for (int i = 0; i < sleepers_each; ++i) {
          goro::go([&] {
            goro::sleep_for(1s);
            wg.done();
          });
        }
        started.done();
      });
    }
    ASSERT_TRUE(eventually([&] { return spinning.load() == spinners; }));
    go.store(true);
    started.wait();
    auto entries_on = [](bool p0) {
      std::size_t n = 0;
      for (int i = p0 ? 0 : 1; i < (p0 ? 1 : sched.nallp.load()); ++i) {
        lock_guard lk(sched.allp[i]->timers.lock);
        n += sched.allp[i]->timers.size();
      }
      return n;
    };
    // Three spinners held three Ps at once: at least two were not P 0.
    EXPECT_GE(entries_on(false), 2u);
    EXPECT_EQ(goro::set_maxprocs(1), 4);
    // Retired Ps hand their heaps over when their Ms next look for work.
    ASSERT_TRUE(eventually([&] { return entries_on(false) == 0; }));
    EXPECT_GE(entries_on(true), static_cast<std::size_t>(spinners));
    for (auto& t : timers) EXPECT_TRUE(t->stop());  // still pending, in P 0's heap
    wg.wait();
  });
}

// --- schedules --------------------------------------------------------------

using wall = goro::wall_clock;

wall::time_point utc(int y, unsigned mo, unsigned d, int h, int mi, int s = 0) {
  const std::chrono::sys_days day = std::chrono::year{y} / mo / d;
  return wall::time_point(day) + std::chrono::hours(h) + std::chrono::minutes(mi) +
         std::chrono::seconds(s);
}

class tz_guard {
 public:
  explicit tz_guard(const char* tz) {
    if (const char* old = std::getenv("TZ")) old_ = old, had_ = true;
    setenv("TZ", tz, 1);
    tzset();
  }
  ~tz_guard() {
    if (had_) {
      setenv("TZ", old_.c_str(), 1);
    } else {
      unsetenv("TZ");
    }
    tzset();
  }

 private:
  std::string old_;
  bool had_ = false;
};

TEST(schedule, every_is_aligned_to_the_epoch) {
  const auto hourly = goro::schedule_spec::every(1h);
  EXPECT_EQ(hourly.next_after(utc(2026, 11, 24, 13, 30)), utc(2026, 11, 24, 14, 0));
  EXPECT_EQ(hourly.next_after(utc(2026, 11, 24, 14, 0)),
            utc(2026, 11, 24, 15, 0));  // strictly after
  const auto six_am = goro::schedule_spec::every(24h, 6h);
  EXPECT_EQ(six_am.next_after(utc(2026, 11, 24, 7, 0)), utc(2026, 11, 25, 6, 0));
  EXPECT_EQ(six_am.next_after(utc(2026, 11, 24, 5, 59)), utc(2026, 11, 24, 6, 0));
  EXPECT_EQ(hourly.next_after(wall::time_point(-90min)), wall::time_point(-1h));  // before 1970
  EXPECT_THROW(goro::schedule_spec::every(0s), std::invalid_argument);
}

TEST(schedule, starting_counts_from_its_start) {
  const auto start = utc(2026, 12, 1, 9, 0);  // "every 10 minutes starting next week"
  const auto s = goro::schedule_spec::starting(start, 10min);
  EXPECT_EQ(s.next_after(utc(2026, 11, 24, 0, 0)), start);
  EXPECT_EQ(s.next_after(start), start + 10min);
  EXPECT_EQ(s.next_after(start + 25min), start + 30min);
}

TEST(schedule, daily_and_weekly_follow_local_time_across_dst) {
  {
    tz_guard tz("UTC0");
    const auto tue = goro::schedule_spec::weekly(std::chrono::Tuesday, 14, 0);
    // 2026-11-24 is a Tuesday.
    EXPECT_EQ(tue.next_after(utc(2026, 11, 24, 13, 0)), utc(2026, 11, 24, 14, 0));
    EXPECT_EQ(tue.next_after(utc(2026, 11, 24, 14, 0)), utc(2026, 12, 1, 14, 0));
    EXPECT_EQ(tue.next_after(utc(2026, 11, 26, 8, 0)), utc(2026, 12, 1, 14, 0));
    const auto daily = goro::schedule_spec::daily(23, 30);
    EXPECT_EQ(daily.next_after(utc(2026, 12, 31, 23, 45)), utc(2027, 1, 1, 23, 30));
  }
  {
    // US Eastern rules as a POSIX TZ string (no tz database needed): DST
    // ends on 2026-11-01 at 02:00 local. 09:00 local is 13:00 UTC before
    // and 14:00 UTC after.
    tz_guard tz("EST5EDT,M3.2.0,M11.1.0");
    const auto nine = goro::schedule_spec::daily(9, 0);
    EXPECT_EQ(nine.next_after(utc(2026, 10, 31, 14, 0)), utc(2026, 11, 1, 14, 0));
    EXPECT_EQ(nine.next_after(utc(2026, 10, 30, 12, 0)), utc(2026, 10, 30, 13, 0));
  }
  EXPECT_THROW(goro::schedule_spec::daily(24, 0), std::invalid_argument);
  EXPECT_THROW(goro::schedule_spec::weekly(std::chrono::weekday(9), 1, 0), std::invalid_argument);
}

TEST(schedule, ticks_arrive_at_their_wall_times_never_early_and_stop) {
  run_in(2, [] {
    goro::schedule s(goro::schedule_spec::every(20ms));
    wall::time_point prev{};
    for (int i = 0; i < 3; ++i) {
      std::optional<wall::time_point> t = s.c().recv();
      ASSERT_TRUE(t.has_value());
      EXPECT_EQ(t->time_since_epoch() % 20ms, wall::duration::zero());
      EXPECT_GE(wall::now(), *t);  // delivered at or after its time
      EXPECT_GT(*t, prev);
      prev = *t;
    }
    s.stop();
    EXPECT_FALSE(s.c().recv_for(50ms).has_value());
  });
}

TEST(schedule, missed_ticks_are_coalesced_into_one) {
  // The first next_after() call takes 30 ms before returning a tick 1 ms
  // ahead of when it started: by the time the schedule waits for that tick,
  // it and the next ~29 are in the past, as if the machine had slept.
  run_in(2, [] {
    const auto every_ms = goro::schedule_spec::every(1ms);
    auto calls = std::make_shared<std::atomic<int>>(0);
    auto first_tick = std::make_shared<std::atomic<wall::rep>>(0);
    goro::schedule s(goro::schedule_spec([=](wall::time_point t) {
      const wall::time_point r = every_ms.next_after(t);
      if (calls->fetch_add(1) == 0) {
        first_tick->store(r.time_since_epoch().count());
        while (wall::now() < t + 30ms) {
        }
      }
      return r;
    }));
    std::optional<wall::time_point> t = s.c().recv();
    ASSERT_TRUE(t.has_value());
    const wall::time_point first(wall::duration(first_tick->load()));
    // One tick, carrying the latest missed time, not the first missed one.
    EXPECT_GT(*t, first + 20ms);
    std::optional<wall::time_point> u = s.c().recv();
    ASSERT_TRUE(u.has_value());
    EXPECT_GT(*u, *t);  // then on from now, no burst of old ticks
    EXPECT_LE(*u - *t, 1s);
  });
}

TEST(schedule, wait_until_a_wall_time_or_cancellation) {
  run_in(2, [] {
    const auto target = wall::now() + 5ms;
    EXPECT_FALSE(goro::wait_until(goro::background(), target));
    EXPECT_GE(wall::now(), target);
    auto [ctx, cancel] = goro::with_timeout(goro::background(), 2ms);
    EXPECT_EQ(goro::wait_until(ctx, wall::now() + 1h), goro::errc::deadline_exceeded);
  });
}

}  // namespace
