// The happens-before edges goro promises, as ThreadSanitizer sees them
// (src/platform/race.hpp). Each edge has a pair of tests: the no-race test
// relies on exactly that edge to order a write and a read and must stay
// silent; its race twin moves one access across the operation, so that no
// edge orders them, and TSan must report it. A pair that passes shows both
// that the edge exists and that goro adds no edge Go's memory model lacks.
//
// Both goroutines of a pair stay alive until both accesses are done (a
// goroutine that exits and one that later reuses its stack are ordered, see
// race.hpp). Most pairs run on one P, where every goroutine shares one
// thread: TSan must still see them as unordered, as Go's race detector does.
//
// Each test runs in a child process with halt_on_error: a report ends the
// child with exit code 66. Outside TSan builds the tests are skipped.
#include <gtest/gtest.h>

#include <cstdlib>
#include <optional>
#include <string>
#include <thread>

#include "goro/goro.hpp"
#include "test_util.hpp"

namespace {

constexpr int tsan_report_exit = 66;

void prepare_child_env() {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  std::string opts = "halt_on_error=1:exitcode=66:report_signal_unsafe=0";
  if (const char* old = std::getenv("TSAN_OPTIONS")) opts = std::string(old) + ":" + opts;
  setenv("TSAN_OPTIONS", opts.c_str(), 1);
}

// Runs body as the main goroutine of a runtime with `procs` Ps, then exits.
template <class F>
[[noreturn]] void run_and_exit(int procs, F body) {
  goro::run(goro::run_options{.maxprocs = procs}, body);
  std::exit(0);
}

#define GORO_SKIP_UNLESS_TSAN() \
  if (!goro_test_tsan) GTEST_SKIP() << "needs a ThreadSanitizer build"

#define EXPECT_NO_RACE(procs, body)                                           \
  do {                                                                        \
    prepare_child_env();                                                      \
    EXPECT_EXIT(run_and_exit(procs, body), ::testing::ExitedWithCode(0), ""); \
  } while (0)

#define EXPECT_RACE(procs, body)                                                        \
  do {                                                                                  \
    prepare_child_env();                                                                \
    EXPECT_EXIT(run_and_exit(procs, body), ::testing::ExitedWithCode(tsan_report_exit), \
                "WARNING: ThreadSanitizer: data race");                                 \
  } while (0)

// Keeps a goroutine alive until main is done with its accesses, without an
// edge TSan would see (a relaxed atomic orders nothing).
struct hold {
  std::atomic<bool> released{false};
  void wait() const {
    while (!released.load(std::memory_order_relaxed)) goro::yield();
  }
  void release() { released.store(true, std::memory_order_relaxed); }
};

// ---------------------------------------------------------------- spawn ---

// go f: everything before the go statement happens before f starts.
void spawn_norace() {
  int x = 0;
  hold h;
  x = 1;
  goro::go([&] {
    (void)*static_cast<volatile int*>(&x);
    h.release();
  });
  h.wait();
}
void spawn_race() {
  int x = 0;
  hold h;
  goro::go([&] {
    (void)*static_cast<volatile int*>(&x);
    h.release();
  });
  x = 1;  // after the go statement: unordered with the goroutine's read
  h.wait();
}
TEST(race, spawn_orders_what_came_before) {
  GORO_SKIP_UNLESS_TSAN();
  EXPECT_NO_RACE(1, spawn_norace);
}
TEST(race, spawn_does_not_order_what_comes_after) {
  GORO_SKIP_UNLESS_TSAN();
  EXPECT_RACE(1, spawn_race);
}

// --------------------------------------------------------------- channels ---

// A send happens before the matching receive completes (buffered).
template <bool write_after_send>
void send_recv_body() {
  int x = 0;
  hold h;
  auto c = goro::make_chan<int>(1);
  goro::go([&] {
    if (!write_after_send) x = 1;
    c.send(0);
    if (write_after_send) x = 1;
    h.wait();
  });
  (void)c.recv();
  (void)*static_cast<volatile int*>(&x);
  h.release();
}
TEST(race, send_happens_before_receive) {
  GORO_SKIP_UNLESS_TSAN();
  EXPECT_NO_RACE(1, send_recv_body<false>);
  EXPECT_NO_RACE(2, send_recv_body<false>);
}
TEST(race, write_after_send_races_with_receiver) {
  GORO_SKIP_UNLESS_TSAN();
  EXPECT_RACE(1, send_recv_body<true>);
}

// The same through the buffer: the value is buffered before the receive.
template <bool write_after_send>
void buffered_send_recv_body() {
  int x = 0;
  hold h;
  hold sent;
  auto c = goro::make_chan<int>(1);
  goro::go([&] {
    if (!write_after_send) x = 1;
    c.send(0);  // into the buffer: nobody receives yet
    if (write_after_send) x = 1;
    sent.release();
    h.wait();
  });
  sent.wait();
  (void)c.recv();
  (void)*static_cast<volatile int*>(&x);
  h.release();
}
TEST(race, buffered_send_happens_before_receive) {
  GORO_SKIP_UNLESS_TSAN();
  EXPECT_NO_RACE(1, buffered_send_recv_body<false>);
  EXPECT_NO_RACE(2, buffered_send_recv_body<false>);
}
TEST(race, write_after_buffered_send_races_with_receiver) {
  GORO_SKIP_UNLESS_TSAN();
  EXPECT_RACE(1, buffered_send_recv_body<true>);
}

// On an unbuffered channel the receive happens before the send completes; a
// buffered send completes without a receiver, so there is no such edge.
template <std::size_t cap>
void recv_before_send_completes_body() {
  int x = 0;
  hold h;
  hold written;
  auto c = goro::make_chan<int>(cap);
  goro::go([&] {
    x = 1;
    written.release();
    (void)c.recv();
    h.wait();
  });
  c.send(0);
  written.wait();  // the write is done (this orders nothing)
  (void)*static_cast<volatile int*>(&x);
  h.release();
}
TEST(race, unbuffered_receive_happens_before_send_completes) {
  GORO_SKIP_UNLESS_TSAN();
  EXPECT_NO_RACE(1, recv_before_send_completes_body<0>);
  EXPECT_NO_RACE(2, recv_before_send_completes_body<0>);
}
TEST(race, buffered_send_completes_without_receive_edge) {
  GORO_SKIP_UNLESS_TSAN();
  EXPECT_RACE(1, recv_before_send_completes_body<1>);
}

// The k-th receive happens before the (k+C)-th send completes: with C = 1 the
// second send waits for the first receive; with C = 2 it does not.
template <std::size_t cap>
void kth_receive_body() {
  int x = 0;
  hold h;
  auto c = goro::make_chan<int>(cap);
  hold written;
  goro::go([&] {
    x = 1;
    written.release();
    (void)c.recv();  // the first receive
    h.wait();
  });
  c.send(0);
  c.send(1);       // the second send
  written.wait();  // the write is done (this orders nothing)
  (void)*static_cast<volatile int*>(&x);
  h.release();
}
TEST(race, kth_receive_happens_before_k_plus_cap_send) {
  GORO_SKIP_UNLESS_TSAN();
  EXPECT_NO_RACE(1, kth_receive_body<1>);
  EXPECT_NO_RACE(2, kth_receive_body<1>);
}
TEST(race, send_within_capacity_has_no_receive_edge) {
  GORO_SKIP_UNLESS_TSAN();
  EXPECT_RACE(1, kth_receive_body<2>);
}

// close happens before a receive that returns because the channel is closed.
template <bool write_after_close>
void close_body() {
  int x = 0;
  hold h;
  auto c = goro::make_chan<int>();
  goro::go([&] {
    if (!write_after_close) x = 1;
    c.close();
    if (write_after_close) x = 1;
    h.wait();
  });
  if (c.recv().has_value()) std::abort();
  (void)*static_cast<volatile int*>(&x);
  h.release();
}
TEST(race, close_happens_before_closed_receive) {
  GORO_SKIP_UNLESS_TSAN();
  EXPECT_NO_RACE(1, close_body<false>);
  EXPECT_NO_RACE(2, close_body<false>);
}
TEST(race, write_after_close_races_with_receiver) {
  GORO_SKIP_UNLESS_TSAN();
  EXPECT_RACE(1, close_body<true>);
}

// select: the chosen case gives the edge of its operation.
template <bool write_after_send>
void select_body() {
  int x = 0;
  hold h;
  auto c = goro::make_chan<int>();
  auto never = goro::make_chan<int>();
  goro::go([&] {
    if (!write_after_send) x = 1;
    c.send(0);
    if (write_after_send) x = 1;
    h.wait();
  });
  goro::select(goro::on_recv(c), goro::on_recv(never));
  (void)*static_cast<volatile int*>(&x);
  h.release();
}
TEST(race, select_receive_case_has_the_receive_edge) {
  GORO_SKIP_UNLESS_TSAN();
  EXPECT_NO_RACE(1, select_body<false>);
  EXPECT_NO_RACE(2, select_body<false>);
}
TEST(race, select_receive_case_has_no_other_edge) {
  GORO_SKIP_UNLESS_TSAN();
  EXPECT_RACE(1, select_body<true>);
}

// A plain thread and a goroutine on one channel.
template <bool write_after_send>
void thread_body() {
  int x = 0;
  auto c = goro::make_chan<int>();
  auto done = goro::make_chan<int>(1);
  std::thread t([&] {
    if (!write_after_send) x = 1;
    c.send(0);
    if (write_after_send) x = 1;
    (void)done.recv();
  });
  (void)c.recv();
  (void)*static_cast<volatile int*>(&x);
  done.send(0);
  t.join();
}
TEST(race, thread_send_happens_before_goroutine_receive) {
  GORO_SKIP_UNLESS_TSAN();
  EXPECT_NO_RACE(1, thread_body<false>);
}
TEST(race, thread_write_after_send_races) {
  GORO_SKIP_UNLESS_TSAN();
  EXPECT_RACE(1, thread_body<true>);
}

// --------------------------------------------------------------- sync ---

// wait_group: done happens before the wait it releases.
template <bool write_after_done>
void wait_group_body() {
  int x = 0;
  hold h;
  goro::wait_group wg;
  wg.add(1);
  goro::go([&] {
    if (!write_after_done) x = 1;
    wg.done();
    if (write_after_done) x = 1;
    h.wait();
  });
  wg.wait();
  (void)*static_cast<volatile int*>(&x);
  h.release();
}
TEST(race, wait_group_done_happens_before_wait) {
  GORO_SKIP_UNLESS_TSAN();
  EXPECT_NO_RACE(1, wait_group_body<false>);
  EXPECT_NO_RACE(2, wait_group_body<false>);
}
TEST(race, write_after_done_races_with_waiter) {
  GORO_SKIP_UNLESS_TSAN();
  EXPECT_RACE(1, wait_group_body<true>);
}

// mutex: unlock happens before the next lock, on the slow path too (the
// goroutine holds the lock while main blocks in lock()).
template <bool write_after_unlock>
void mutex_body() {
  int x = 0;
  hold h;
  goro::mutex mu;
  std::atomic<bool> locked{false};
  goro::go([&] {
    mu.lock();
    locked.store(true, std::memory_order_relaxed);
    goro::yield();  // main blocks in lock() meanwhile
    if (!write_after_unlock) x = 1;
    mu.unlock();
    if (write_after_unlock) x = 1;
    h.wait();
  });
  while (!locked.load(std::memory_order_relaxed)) goro::yield();
  mu.lock();
  (void)*static_cast<volatile int*>(&x);
  mu.unlock();
  h.release();
}
TEST(race, mutex_unlock_happens_before_lock) {
  GORO_SKIP_UNLESS_TSAN();
  EXPECT_NO_RACE(1, mutex_body<false>);
  EXPECT_NO_RACE(2, mutex_body<false>);
}
TEST(race, write_after_unlock_races_with_next_owner) {
  GORO_SKIP_UNLESS_TSAN();
  EXPECT_RACE(1, mutex_body<true>);
}

// ------------------------------------------------------------------- yield ---

// yield and sleep order nothing, even on one P.
void yield_race() {
  int x = 0;
  hold h;
  goro::go([&] {
    x = 1;
    h.release();
  });
  goro::yield();  // on one P the goroutine runs here, but that is no edge
  h.wait();
  (void)*static_cast<volatile int*>(&x);
}
TEST(race, yield_is_no_synchronization) {
  GORO_SKIP_UNLESS_TSAN();
  EXPECT_RACE(1, yield_race);
}

// ------------------------------------------------------------ after_func ---

// time.AfterFunc / context.AfterFunc: the call happens before f starts (the
// goroutine is spawned by the timer or the canceller, not by the caller).
void timer_after_func_norace() {
  int x = 0;
  hold h;
  x = 1;
  goro::timer t = goro::after_func(std::chrono::microseconds(100), [&] {
    (void)*static_cast<volatile int*>(&x);
    h.release();
  });
  h.wait();
}
void timer_after_func_race() {
  int x = 0;
  hold h;
  goro::timer t = goro::after_func(std::chrono::microseconds(100), [&] {
    (void)*static_cast<volatile int*>(&x);
    h.release();
  });
  x = 1;  // after the call: unordered with f
  h.wait();
}
TEST(race, timer_after_func_call_happens_before_f) {
  GORO_SKIP_UNLESS_TSAN();
  EXPECT_NO_RACE(2, timer_after_func_norace);
}
TEST(race, write_after_timer_after_func_races_with_f) {
  GORO_SKIP_UNLESS_TSAN();
  EXPECT_RACE(2, timer_after_func_race);
}

// context.AfterFunc registered by one goroutine, cancelled by another.
void context_after_func_norace() {
  int x = 0;
  hold h;
  auto [ctx, cancel] = goro::with_cancel(goro::background());
  hold registered;
  goro::go([&, c = cancel] {
    registered.wait();
    c();
  });
  x = 1;
  goro::after_func_stop stop = goro::after_func(ctx, [&] {
    (void)*static_cast<volatile int*>(&x);
    h.release();
  });
  registered.release();
  h.wait();
}
void context_after_func_race() {
  int x = 0;
  hold h;
  auto [ctx, cancel] = goro::with_cancel(goro::background());
  hold registered;
  goro::go([&, c = cancel] {
    registered.wait();
    c();
  });
  goro::after_func_stop stop = goro::after_func(ctx, [&] {
    (void)*static_cast<volatile int*>(&x);
    h.release();
  });
  x = 1;  // after the registration: unordered with f
  registered.release();
  h.wait();
}
TEST(race, context_after_func_registration_happens_before_f) {
  GORO_SKIP_UNLESS_TSAN();
  EXPECT_NO_RACE(1, context_after_func_norace);
}
TEST(race, write_after_context_after_func_races_with_f) {
  GORO_SKIP_UNLESS_TSAN();
  EXPECT_RACE(1, context_after_func_race);
}

// Cancel happens before a receive from done() that it unblocks.
void cancel_norace() {
  int x = 0;
  hold h;
  auto [ctx, cancel] = goro::with_cancel(goro::background());
  goro::go([&, ctx = ctx] {
    (void)ctx.done().recv();
    (void)*static_cast<volatile int*>(&x);
    h.release();
  });
  x = 1;
  cancel();
  h.wait();
}
void cancel_race() {
  int x = 0;
  hold h;
  auto [ctx, cancel] = goro::with_cancel(goro::background());
  goro::go([&, ctx = ctx] {
    (void)ctx.done().recv();
    (void)*static_cast<volatile int*>(&x);
    h.release();
  });
  cancel();
  x = 1;  // after the cancel: unordered with the woken reader
  h.wait();
}
TEST(race, cancel_happens_before_done_receive) {
  GORO_SKIP_UNLESS_TSAN();
  EXPECT_NO_RACE(1, cancel_norace);
}
TEST(race, write_after_cancel_races_with_done_receiver) {
  GORO_SKIP_UNLESS_TSAN();
  EXPECT_RACE(1, cancel_race);
}

}  // namespace
