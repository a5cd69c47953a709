// goro::context (Go's context package): cancellation trees, deadlines,
// causes, values, after_func, and cancellation reaching every blocking call
// (channel send/receive, select, sleep, wait_group, mutex) while leaving the
// channel or mutex as if the waiter had never come. Behaviours follow Go's
// context_test.go (TestWithCancel, TestParentFinishesChild,
// TestChildFinishesFirst, TestDeadline, TestValues, TestWithoutCancel,
// TestAfterFuncCalledAfterCancel, TestCause, TestCancelRemoves).
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "context/context_impl.hpp"
#include "goro/goro.hpp"
#include "test_util.hpp"

namespace {

using namespace std::chrono_literals;
using goro_test::run_in;
using goro_test::scaled;
using steady = std::chrono::steady_clock;

class context_procs : public goro_test::procs_test {};
GORO_INSTANTIATE_PROCS(context_procs);

bool is_done(const goro::context& ctx) {
  std::monostate m;
  return ctx.done().try_recv(m) == goro::chan_status::closed;
}

const goro::context_key<int> middle_key{"middle"};

TEST(context, background_and_todo_are_never_done) {
  for (const goro::context& ctx : {goro::background(), goro::todo(), goro::context()}) {
    EXPECT_TRUE(ctx.done().is_nil());
    EXPECT_FALSE(ctx.err());
    EXPECT_FALSE(ctx.deadline().has_value());
    EXPECT_FALSE(goro::cause(ctx));
  }
  EXPECT_FALSE(goro::background() == goro::todo());
}

TEST(context, error_codes_carry_go_messages) {
  const std::error_code c = goro::errc::canceled;
  const std::error_code d = goro::errc::deadline_exceeded;
  EXPECT_EQ(c.message(), "context canceled");
  EXPECT_EQ(d.message(), "context deadline exceeded");
  EXPECT_STREQ(c.category().name(), "goro");
  EXPECT_NE(c, d);
}

TEST_P(context_procs, cancel_closes_done_sets_err_and_is_idempotent) {
  run_in(procs(), [] {
    auto [ctx, cancel] = goro::with_cancel(goro::background());
    EXPECT_FALSE(ctx.done().is_nil());
    EXPECT_FALSE(is_done(ctx));
    EXPECT_FALSE(ctx.err());
    goro::wait_group wg;
    std::atomic<int> woken{0};
    for (int i = 0; i < 8; ++i) {
      wg.add(1);
      goro::go([&, ctx = ctx] {
        EXPECT_FALSE(ctx.done().recv().has_value());  // closed: no value
        EXPECT_EQ(ctx.err(), goro::errc::canceled);
        woken.fetch_add(1);
        wg.done();
      });
    }
    cancel();
    cancel();  // idempotent
    wg.wait();
    EXPECT_EQ(woken.load(), 8);
    EXPECT_TRUE(is_done(ctx));
    EXPECT_EQ(ctx.err(), goro::errc::canceled);
    EXPECT_EQ(goro::cause(ctx), goro::errc::canceled);
  });
}

TEST_P(context_procs, parent_cancel_reaches_every_descendant_with_its_reason) {
  run_in(procs(), [] {
    auto [root, cancel_root] = goro::with_cancel_cause(goro::background());
    auto [a, cancel_a] = goro::with_cancel(root);
    goro::context v = goro::with_value(a, middle_key, 1);  // a value node in between
    auto [b, cancel_b] = goro::with_timeout(v, 1h);
    auto [c, cancel_c] = goro::with_cancel(b);
    EXPECT_FALSE(c.err());
    cancel_root(std::make_error_code(std::errc::io_error));
    for (const goro::context* x : {&root, &a, &v, &b, &c}) {
      EXPECT_TRUE(is_done(*x));
      EXPECT_EQ(x->err(), goro::errc::canceled);  // not deadline_exceeded: the parent's reason
      EXPECT_EQ(goro::cause(*x), std::make_error_code(std::errc::io_error));
    }
  });
}

TEST_P(context_procs, child_cancel_leaves_parent_and_siblings_and_leaves_the_parent_list) {
  run_in(procs(), [] {
    auto [parent, cancel_parent] = goro::with_cancel(goro::background());
    auto [x, cancel_x] = goro::with_cancel(parent);
    auto [y, cancel_y] = goro::with_cancel(parent);
    EXPECT_EQ(goro::detail::ctx_hook_count(parent.node()), 2u);
    cancel_x();
    EXPECT_TRUE(is_done(x));
    EXPECT_FALSE(parent.err());
    EXPECT_FALSE(y.err());
    EXPECT_EQ(goro::detail::ctx_hook_count(parent.node()), 1u);  // TestCancelRemoves
    // A long-lived parent does not accumulate cancelled children.
    for (int i = 0; i < scaled(100000, 5000); ++i) {
      auto [child, cancel_child] = goro::with_timeout(parent, 1h);
      cancel_child();
    }
    EXPECT_EQ(goro::detail::ctx_hook_count(parent.node()), 1u);
    // Dropping the last copy of a cancel_func cancels (and removes) too.
    goro::context kept;
    {
      auto [child, cancel_child] = goro::with_cancel(parent);
      kept = child;
      EXPECT_EQ(goro::detail::ctx_hook_count(parent.node()), 2u);
    }
    EXPECT_EQ(kept.err(), goro::errc::canceled);
    EXPECT_EQ(goro::detail::ctx_hook_count(parent.node()), 1u);
    cancel_parent();
    EXPECT_EQ(y.err(), goro::errc::canceled);
    EXPECT_EQ(goro::detail::ctx_hook_count(parent.node()), 0u);
  });
}

TEST_P(context_procs, child_of_a_done_parent_is_born_done) {
  run_in(procs(), [] {
    auto [parent, cancel] = goro::with_cancel_cause(goro::background());
    cancel(goro::errc::deadline_exceeded);
    auto [child, cancel_child] = goro::with_cancel(parent);
    EXPECT_TRUE(is_done(child));
    EXPECT_EQ(child.err(), goro::errc::canceled);
    EXPECT_EQ(goro::cause(child), goro::errc::deadline_exceeded);
    auto [timed, cancel_timed] = goro::with_timeout(parent, 1h);
    EXPECT_TRUE(is_done(timed));
  });
}

TEST_P(context_procs, deadline_fires_never_early_and_within_bounded_lateness) {
  run_in(procs(), [] {
    const int n = 20;
    goro::wait_group wg;
    std::atomic<int> early{0};
    std::atomic<std::int64_t> worst_late_us{0};
    for (int i = 0; i < n; ++i) {
      wg.add(1);
      goro::go([&, i] {
        const auto d = std::chrono::milliseconds(1 + i % 7);
        const auto t0 = steady::now();
        auto [ctx, cancel] = goro::with_timeout(goro::background(), d);
        ASSERT_TRUE(ctx.deadline().has_value());
        const auto deadline = *ctx.deadline();
        EXPECT_GE(deadline, t0 + d);
        (void)ctx.done().recv();
        const auto t1 = steady::now();
        if (t1 < deadline) early.fetch_add(1);
        const auto late =
            std::chrono::duration_cast<std::chrono::microseconds>(t1 - deadline).count();
        std::int64_t prev = worst_late_us.load();
        while (late > prev && !worst_late_us.compare_exchange_weak(prev, late)) {
        }
        EXPECT_EQ(ctx.err(), goro::errc::deadline_exceeded);
        EXPECT_EQ(goro::cause(ctx), goro::errc::deadline_exceeded);
        wg.done();
      });
    }
    wg.wait();
    EXPECT_EQ(early.load(), 0);
    // Generous: a loaded 2-core CI machine, sanitizers. Lateness beyond this
    // means the deadline was lost, not that the machine is slow.
    EXPECT_LT(worst_late_us.load(), 2000000);
  });
}

TEST_P(context_procs, child_deadline_is_the_earlier_of_its_own_and_the_parents) {
  run_in(procs(), [] {
    auto [parent, cancel_parent] = goro::with_timeout(goro::background(), 1h);
    auto [later, cancel_later] = goro::with_timeout(parent, 2h);
    EXPECT_EQ(later.deadline(), parent.deadline());
    auto [sooner, cancel_sooner] = goro::with_timeout(parent, 1ms);
    EXPECT_LT(*sooner.deadline(), *parent.deadline());
    (void)sooner.done().recv();
    EXPECT_EQ(sooner.err(), goro::errc::deadline_exceeded);
    EXPECT_FALSE(parent.err());
    auto [past, cancel_past] = goro::with_deadline(goro::background(), steady::now() - 1s);
    EXPECT_EQ(past.err(), goro::errc::deadline_exceeded);
  });
}

const goro::context_key<std::string> user_key{"user"};
const goro::context_key<std::string> other_key{"other"};
const goro::context_key<int> int_key{"n"};

TEST_P(context_procs, values_are_found_through_ancestors_by_key_identity) {
  run_in(procs(), [] {
    goro::context c1 = goro::with_value(goro::background(), user_key, "alice");
    auto [c2, cancel] = goro::with_cancel(c1);
    goro::context c3 = goro::with_value(c2, int_key, 42);
    goro::context c4 = goro::with_value(c3, user_key, std::string("bob"));  // shadows
    ASSERT_NE(c3.value(user_key), nullptr);
    EXPECT_EQ(*c3.value(user_key), "alice");
    EXPECT_EQ(*c4.value(user_key), "bob");
    EXPECT_EQ(*c4.value(int_key), 42);
    EXPECT_EQ(c4.value(other_key), nullptr);  // same type, other key
    EXPECT_EQ(c1.value(int_key), nullptr);
    EXPECT_EQ(goro::background().value(user_key), nullptr);
    cancel();
    EXPECT_EQ(c4.err(), goro::errc::canceled);  // a value node shares its canceller's state
    EXPECT_EQ(*c4.value(user_key), "bob");
  });
}

TEST_P(context_procs, without_cancel_keeps_values_but_not_cancellation) {
  run_in(procs(), [] {
    auto [parent, cancel] =
        goro::with_timeout(goro::with_value(goro::background(), int_key, 7), 1h);
    goro::context detached = goro::without_cancel(parent);
    cancel();
    EXPECT_TRUE(is_done(parent));
    EXPECT_FALSE(detached.err());
    EXPECT_TRUE(detached.done().is_nil());
    EXPECT_FALSE(detached.deadline().has_value());
    EXPECT_EQ(*detached.value(int_key), 7);
    auto [child, cancel_child] = goro::with_cancel(detached);
    EXPECT_FALSE(child.err());
  });
}

TEST_P(context_procs, after_func_runs_once_after_cancel_unless_stopped) {
  run_in(procs(), [] {
    {
      auto [ctx, cancel] = goro::with_cancel(goro::background());
      goro::chan<int> ran = goro::make_chan<int>(4);
      goro::after_func_stop stop = goro::after_func(ctx, [ran] { ran.send(1); });
      EXPECT_EQ(ran.len(), 0u);
      cancel();
      cancel();
      EXPECT_EQ(ran.recv(), 1);
      EXPECT_FALSE(stop());                                        // already started
      auto later = goro::after_func(ctx, [ran] { ran.send(2); });  // ctx already done: runs at once
      EXPECT_EQ(ran.recv(), 2);
      EXPECT_EQ(ran.len(), 0u);
    }
    {
      auto [ctx, cancel] = goro::with_cancel(goro::background());
      std::atomic<bool> ran{false};
      auto stop = goro::after_func(ctx, [&] { ran = true; });
      EXPECT_TRUE(stop());
      EXPECT_FALSE(stop());
      cancel();
      goro::chan<int> fence = goro::make_chan<int>(1);
      auto fenced = goro::after_func(
          ctx, [fence] { fence.send(0); });  // runs after any earlier one would have started
      (void)fence.recv();
      EXPECT_FALSE(ran.load());
      EXPECT_EQ(goro::detail::ctx_hook_count(ctx.node()), 0u);
    }
    {
      auto stop =
          goro::after_func(goro::background(), [] { ADD_FAILURE() << "background is never done"; });
      EXPECT_FALSE(stop());
    }
  });
}

// A tree of 100,000 contexts, cancelled from the root: one wide level under
// a deep spine, so both fan-out and depth are exercised (a recursive cancel
// or destructor would overflow a goroutine stack on the spine).
TEST_P(context_procs, a_hundred_thousand_node_tree_cancels_from_the_root) {
  run_in(procs(), [] {
    const int depth = scaled(50000, 5000);
    const int width = scaled(50000, 5000);
    auto [root, cancel_root] = goro::with_cancel(goro::background());
    std::vector<goro::cancel_func> cancels;
    cancels.reserve(static_cast<std::size_t>(depth + width));
    goro::context spine = root;
    for (int i = 0; i < depth; ++i) {
      auto [c, cancel] = goro::with_cancel(spine);
      spine = c;
      cancels.push_back(std::move(cancel));
    }
    std::vector<goro::context> leaves;
    leaves.reserve(static_cast<std::size_t>(width));
    for (int i = 0; i < width; ++i) {
      auto [c, cancel] = i % 2 == 0 ? goro::with_cancel(spine) : goro::with_timeout(spine, 1h);
      leaves.push_back(c);
      cancels.push_back(std::move(cancel));
    }
    // Waiters on a few leaves, goroutines and a plain thread.
    goro::wait_group wg;
    for (int i = 0; i < 8; ++i) {
      wg.add(1);
      goro::go([&wg, leaf = leaves[static_cast<std::size_t>(i * 997 % width)]] {
        (void)leaf.done().recv();
        wg.done();
      });
    }
    wg.add(1);
    std::thread t([&wg, leaf = leaves.back()] {
      (void)leaf.done().recv();
      wg.done();
    });
    cancel_root();
    wg.wait();
    t.join();
    EXPECT_EQ(spine.err(), goro::errc::canceled);
    int undone = 0;
    for (const auto& l : leaves) undone += l.err() ? 0 : 1;
    EXPECT_EQ(undone, 0);
    cancels.clear();  // the deep chain is destroyed iteratively
    leaves.clear();
    spine = goro::background();
  });
}

TEST(context, cancel_from_a_plain_thread_wakes_goroutines_and_threads) {
  run_in(2, [] {
    auto [ctx, cancel] = goro::with_cancel(goro::background());
    goro::wait_group wg;
    wg.add(2);
    goro::go([&, ctx = ctx] {
      EXPECT_EQ(goro::sleep_for(ctx, 1h), goro::errc::canceled);
      wg.done();
    });
    std::thread waiter([&, ctx = ctx] {
      EXPECT_EQ(goro::sleep_for(ctx, 1h), goro::errc::canceled);
      wg.done();
    });
    std::thread canceller([c = cancel] { c(); });
    wg.wait();
    canceller.join();
    waiter.join();
  });
}

// --- cancellation reaches every blocking call -----------------------------

TEST_P(context_procs, channel_send_and_receive_return_the_context_error) {
  run_in(procs(), [] {
    for (std::size_t cap : {0u, 1u}) {
      goro::chan<int> c = goro::make_chan<int>(cap);
      if (cap == 1) c.send(0);  // full
      auto [ctx, cancel] = goro::with_timeout(goro::background(), 2ms);
      int v = 5;
      EXPECT_EQ(c.send(ctx, std::move(v)), goro::errc::deadline_exceeded);
      EXPECT_EQ(v, 5);  // untouched
      EXPECT_EQ(c.len(), cap);
      if (cap == 1) {
        EXPECT_EQ(c.recv(), 0);
      }
      auto [ctx2, cancel2] = goro::with_cancel(goro::background());
      goro::go([cancel2 = cancel2] { cancel2(); });
      int out = -1;
      bool ok = true;
      EXPECT_EQ(c.recv(ctx2, out, ok), goro::errc::canceled);
      EXPECT_EQ(out, -1);
      std::error_code ec;
      EXPECT_FALSE(c.recv(ctx2, ec).has_value());
      EXPECT_EQ(ec, goro::errc::canceled);
      // The channel is as if the waiters had never come: a normal exchange works.
      goro::go([c] { c.send(9); });
      EXPECT_EQ(c.recv(), 9);
      EXPECT_EQ(c.len(), 0u);
    }
    // Ready operations complete; a never-cancelled context changes nothing.
    goro::chan<int> b = goro::make_chan<int>(1);
    EXPECT_FALSE(b.send(goro::background(), 3));
    int out = 0;
    bool ok = false;
    EXPECT_FALSE(b.recv(goro::background(), out, ok));
    EXPECT_TRUE(ok);
    EXPECT_EQ(out, 3);
    b.close();
    EXPECT_FALSE(b.recv(goro::background(), out, ok));
    EXPECT_FALSE(ok);  // closed and drained
    goro::chan<int> nil;
    auto [ctx, cancel] = goro::with_timeout(goro::background(), 1ms);
    EXPECT_EQ(nil.send(ctx, 1),
              goro::errc::deadline_exceeded);  // a nil channel blocks until ctx is done
  });
}

TEST_P(context_procs, select_takes_the_done_case_and_sleep_ends_early) {
  run_in(procs(), [] {
    goro::chan<int> never = goro::make_chan<int>();
    auto [ctx, cancel] = goro::with_timeout(goro::background(), 3ms);
    bool done_ran = false;
    const std::size_t k =
        goro::select(goro::on_recv(never), goro::on_done(ctx, [&] { done_ran = true; }));
    EXPECT_EQ(k, 1u);
    EXPECT_TRUE(done_ran);
    EXPECT_EQ(goro::sleep_for(ctx, 1h), goro::errc::deadline_exceeded);  // already done: at once
    const auto t0 = steady::now();
    EXPECT_FALSE(goro::sleep_for(goro::background(), 2ms));
    EXPECT_GE(steady::now() - t0, 2ms);
    auto [live, cancel_live] = goro::with_cancel(goro::background());
    const auto t1 = steady::now();
    EXPECT_FALSE(goro::sleep_for(live, 2ms));  // full sleep: {}
    EXPECT_GE(steady::now() - t1, 2ms);
    EXPECT_FALSE(goro::sleep_until(live, steady::now() - 1s));
  });
}

TEST_P(context_procs, wait_group_wait_returns_the_context_error_and_the_group_still_works) {
  run_in(procs(), [] {
    goro::wait_group wg;
    wg.add(1);
    auto [ctx, cancel] = goro::with_cancel(goro::background());
    goro::wait_group waiters;
    std::atomic<int> cancelled{0};
    for (int i = 0; i < 4; ++i) {
      waiters.add(1);
      goro::go([&, ctx = ctx] {
        if (wg.wait(ctx) == goro::errc::canceled) cancelled.fetch_add(1);
        waiters.done();
      });
    }
    std::thread t([&, ctx = ctx] {
      if (wg.wait(ctx) == goro::errc::canceled) cancelled.fetch_add(1);
    });
    cancel();
    waiters.wait();
    t.join();
    EXPECT_EQ(cancelled.load(), 5);
    // The cancelled waiters left the count: done() and a plain wait work, and
    // the group can be reused.
    goro::go([&] { wg.done(); });
    wg.wait();
    wg.add(1);
    wg.done();
    wg.wait();
    EXPECT_FALSE(wg.wait(ctx));  // counter zero: {} even with a done context
    // No stale wake-up was left behind for the next waiter: it waits (and
    // times out) instead of being released early, which would panic
    // "sync: WaitGroup is reused before previous Wait has returned".
    wg.add(1);
    auto [soon, cancel_soon] = goro::with_timeout(goro::background(), 2ms);
    EXPECT_EQ(wg.wait(soon), goro::errc::deadline_exceeded);
    wg.done();
  });
}

std::int32_t mutex_waiters(const goro::mutex& mu) {
  return goro::detail::mutex_inspector::state(mu) >> 3;
}

TEST_P(context_procs, cancelled_mutex_waiters_leave_the_waiter_count) {
  run_in(procs(), [] {
    goro::mutex mu;
    mu.lock();
    auto [ctx, cancel] = goro::with_cancel(goro::background());
    const int n = 6;
    goro::wait_group wg;
    std::atomic<int> gave_up{0};
    for (int i = 0; i < n; ++i) {
      wg.add(1);
      goro::go([&, ctx = ctx] {
        if (mu.lock(ctx) == goro::errc::canceled) gave_up.fetch_add(1);
        wg.done();
      });
    }
    ASSERT_TRUE(goro_test::eventually([&] { return mutex_waiters(mu) == n; }));
    cancel();
    wg.wait();
    EXPECT_EQ(gave_up.load(), n);
    // Their stand-ins keep their places (Go's count stays consistent) ...
    EXPECT_EQ(goro::detail::mutex_inspector::state(mu), 1 | n << 3);
    // ... and pass every wake-up on: one unlock runs through all of them.
    mu.unlock();
    EXPECT_EQ(goro::detail::mutex_inspector::state(mu), 0);
    EXPECT_EQ(goro::detail::mutex_inspector::sema(mu), 0u);
    EXPECT_TRUE(mu.try_lock());
    mu.unlock();
  });
}

// Many cancelled waiters leave many stand-ins: passing a wake-up through
// all of them must not recurse once per stand-in (a goroutine stack is
// 64 KiB), and a real waiter behind them must still get the mutex.
TEST(context, a_long_chain_of_stand_ins_hands_the_mutex_to_the_real_waiter) {
  run_in(2, [] {
    goro::mutex mu;
    mu.lock();
    auto [ctx, cancel] = goro::with_cancel(goro::background());
    const int n = scaled(3000, 300);
    goro::wait_group wg;
    for (int i = 0; i < n; ++i) {
      wg.add(1);
      goro::go([&, ctx = ctx] {
        EXPECT_EQ(mu.lock(ctx), goro::errc::canceled);
        wg.done();
      });
    }
    ASSERT_TRUE(goro_test::eventually([&] { return mutex_waiters(mu) == n; }));
    cancel();
    wg.wait();
    std::atomic<bool> got{false};
    wg.add(1);
    goro::go([&] {
      mu.lock();  // a real waiter, queued behind every stand-in
      got = true;
      mu.unlock();
      wg.done();
    });
    ASSERT_TRUE(goro_test::eventually([&] { return mutex_waiters(mu) == n + 1; }));
    mu.unlock();
    wg.wait();
    EXPECT_TRUE(got.load());
    EXPECT_EQ(goro::detail::mutex_inspector::state(mu) & ~2, 0);
  });
}

// One P makes the order deterministic: the waiter cannot run until the main
// goroutine blocks. The waiter waits > 1 ms, is woken, loses to the main
// goroutine barging in, switches the mutex to starvation mode and queues
// again; cancelled there, its stand-in keeps its place, receives the
// starvation handoff at the next unlock, and ends starvation mode.
TEST(context, a_cancelled_waiters_stand_in_takes_the_handoff_and_ends_starvation_mode) {
  run_in(1, [] {
    goro::mutex mu;
    mu.lock();
    auto [ctx, cancel] = goro::with_cancel(goro::background());
    goro::wait_group wg;
    wg.add(1);
    std::error_code result;
    goro::go([&, ctx = ctx] {
      result = mu.lock(ctx);
      wg.done();
    });
    ASSERT_TRUE(goro_test::eventually([&] { return mutex_waiters(mu) == 1; }));
    goro::sleep_for(2ms);  // the waiter's wait passes the 1 ms threshold
    mu.unlock();           // wakes it (it runs only when we block)
    mu.lock();             // barge in first
    constexpr std::int32_t starving = 4;
    ASSERT_TRUE(goro_test::eventually([&] {
      const std::int32_t st = goro::detail::mutex_inspector::state(mu);
      return (st & starving) != 0 && (st >> 3) == 1;
    }));
    cancel();
    wg.wait();
    EXPECT_EQ(result, goro::errc::canceled);
    EXPECT_EQ(goro::detail::mutex_inspector::state(mu), 1 | starving | 1 << 3);  // the stand-in
    mu.unlock();  // hands off to the stand-in, which unlocks in normal mode
    EXPECT_EQ(goro::detail::mutex_inspector::state(mu), 0);
    EXPECT_EQ(goro::detail::mutex_inspector::sema(mu), 0u);
    EXPECT_TRUE(mu.try_lock());
    mu.unlock();
  });
}

TEST_P(context_procs, mutex_lock_returns_the_context_error_and_leaves_the_mutex_usable) {
  run_in(procs(), [] {
    goro::mutex mu;
    mu.lock();
    auto [ctx, cancel] = goro::with_timeout(goro::background(), 2ms);
    EXPECT_EQ(mu.lock(ctx), goro::errc::deadline_exceeded);
    EXPECT_FALSE(mu.try_lock());  // still held by us
    mu.unlock();
    EXPECT_FALSE(mu.lock(ctx));  // free: taken even though ctx is done
    mu.unlock();
    EXPECT_TRUE(mu.try_lock());
    mu.unlock();
  });
}

// Cancellation racing with the operation completing: the value is either
// delivered (the sender saw {} and the receiver got it) or still where it
// was, never lost or duplicated.
TEST_P(context_procs, cancellation_racing_a_send_never_loses_a_value) {
  run_in(procs(), [] {
    for (std::size_t cap : {0u, 4u}) {
      goro::chan<int> c = goro::make_chan<int>(cap);
      const int rounds = scaled(2000, 200);
      std::atomic<long> sent_sum{0};
      std::atomic<long> recv_sum{0};
      goro::wait_group wg;
      wg.add(2);
      auto [stop_recv, cancel_recv] = goro::with_cancel(goro::background());
      goro::go([&, stop_recv = stop_recv] {
        for (;;) {
          int v = 0;
          bool ok = false;
          if (c.recv(stop_recv, v, ok)) break;
          if (!ok) break;
          recv_sum.fetch_add(v);
        }
        wg.done();
      });
      goro::go([&] {
        for (int i = 1; i <= rounds; ++i) {
          auto [ctx, cancel] = goro::with_cancel(goro::background());
          if (i % 3 == 0) {
            goro::go([cancel = cancel] { cancel(); });  // races the send
          } else if (i % 3 == 1) {
            cancel();
          }
          if (!c.send(ctx, int{i})) sent_sum.fetch_add(i);
        }
        c.close();
        wg.done();
      });
      wg.wait();
      cancel_recv();
      long left = 0;
      while (auto v = c.try_recv()) left += *v;
      EXPECT_EQ(sent_sum.load(), recv_sum.load() + left) << "cap " << cap;
      EXPECT_GT(sent_sum.load(), 0);
    }
  });
}

TEST_P(context_procs, cancellation_racing_mutex_handoff_keeps_mutual_exclusion) {
  run_in(procs(), [] {
    goro::mutex mu;
    int counter = 0;  // guarded by mu
    std::atomic<int> locked{0};
    std::atomic<int> gave_up{0};
    const int workers = 8;
    const int iters = scaled(400, 60);
    goro::wait_group wg;
    for (int w = 0; w < workers; ++w) {
      wg.add(1);
      goro::go([&, w] {
        for (int i = 0; i < iters; ++i) {
          auto [ctx, cancel] = goro::with_cancel(goro::background());
          if ((i + w) % 2 == 0) goro::go([cancel = cancel] { cancel(); });
          if (mu.lock(ctx)) {
            gave_up.fetch_add(1);
            continue;
          }
          ++counter;
          locked.fetch_add(1);
          if (i % 16 == 0)
            goro::sleep_for(1100us);  // long holds push the mutex into starvation mode
          mu.unlock();
        }
        wg.done();
      });
    }
    wg.wait();
    EXPECT_EQ(locked.load() + gave_up.load(), workers * iters);
    {
      std::lock_guard lk(mu);
      EXPECT_EQ(counter, locked.load());
    }
    EXPECT_TRUE(mu.try_lock());  // nothing left behind: free, normal mode
    mu.unlock();
    // Quiescent: no waiter counted, not starving, no unit left over (a woken
    // flag may linger until the next waiter, as in Go).
    EXPECT_EQ(goro::detail::mutex_inspector::state(mu) & ~2, 0);
    EXPECT_EQ(goro::detail::mutex_inspector::sema(mu), 0u);
  });
}

}  // namespace
