// Failures that end the process, as they end a Go program: stack overflow,
// an exception escaping a goroutine (an unrecovered panic), and misuse that Go
// reports as a fatal error. Each case runs in a child process (gtest death
// tests, "threadsafe" style: the child re-executes this binary, so it starts
// with no runtime and no goro threads) and must exit with code 2, Go's exit
// code for panics and fatal errors, naming what went wrong on stderr.
#include <gtest/gtest.h>

#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>

#include "goro/goro.hpp"
#include "platform/stack.hpp"
#include "test_util.hpp"

namespace {

using namespace std::chrono_literals;
using goro_test::contains_all;

// Long enough to never end on its own: the child must die first.
constexpr auto child_patience = 20s;

// ---------------------------------------------------------- stack overflow ---

// Unbounded recursion (the bound exists only to keep -Winfinite-recursion
// quiet). Not a tail call: the frame is used after the recursive call.
[[gnu::noinline]] int recurse(int depth) {
  volatile char frame[256];
  frame[0] = static_cast<char>(depth);
  frame[255] = static_cast<char>(depth >> 8);
  if (depth == INT_MAX) return 0;
  return recurse(depth + 1) + frame[0] + frame[255];
}

// The same, switching out at every level: the canary check runs on every
// switch, so it sees the overflow while it is still small.
[[gnu::noinline]] int recurse_yielding(int depth) {
  volatile char frame[64];
  for (int i = 0; i < 64; ++i) frame[i] = static_cast<char>(depth + i);
  goro::yield();
  if (depth == INT_MAX) return 0;
  return recurse_yielding(depth + 1) + frame[0] + frame[63];
}

void overflowing_program(bool yield_each_level) {
  goro::run(goro::run_options{.maxprocs = 2}, [yield_each_level] {
    goro::go(goro::spawn_options{.name = "overflower"}, [yield_each_level] {
      std::exit(yield_each_level ? recurse_yielding(0) : recurse(0));
    });
    goro::sleep_for(child_patience);
  });
  std::exit(0);
}

TEST(stack_DeathTest, overflow_is_fatal_and_names_the_goroutine) {
  if (goro_test_sanitized) GTEST_SKIP() << "sanitizers handle SIGSEGV and stacks themselves";
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(overflowing_program(false), ::testing::ExitedWithCode(2),
              contains_all({"stack overflow", "goroutine", "death_test.cpp"}));
}

TEST(stack_DeathTest, overflow_without_guard_pages_is_caught_by_the_canary) {
  if (goro_test_sanitized) GTEST_SKIP() << "sanitizers handle SIGSEGV and stacks themselves";
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(
      {
        ::setenv("GORO_GUARD_PAGES", "0", 1);  // in the child only
        overflowing_program(true);
      },
      ::testing::ExitedWithCode(2),
      contains_all({"stack overflow", "goroutine", "death_test.cpp"}));
}

// With guard markers every stack is guarded, not just the first ~14,000
// (the mapping budget): an overflow that never switches out, on a stack
// handed out far beyond the budget, still ends in the report. With canary
// slabs it would run on into the neighbouring stacks and die some other way.
TEST(stack_DeathTest, overflow_beyond_the_mapping_budget_hits_a_guard) {
  if (goro_test_sanitized) GTEST_SKIP() << "sanitizers handle SIGSEGV and stacks themselves";
  if (!goro::detail::guard_markers_supported())
    GTEST_SKIP() << "the kernel has no MADV_GUARD_INSTALL (Linux 6.13+)";
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(
      {
        const int parked = static_cast<int>(goro::detail::guarded_stack_budget()) + 20'000;
        goro::run(goro::run_options{.maxprocs = 2}, [parked] {
          goro::wait_group started;
          goro::chan<int> never = goro::make_chan<int>();
          started.add(parked);
          for (int i = 0; i < parked; ++i) {
            goro::go([&started, never] {
              started.done();
              never.recv();
            });
          }
          started.wait();  // every one holds a stack now
          goro::go(goro::spawn_options{.name = "overflower"}, [] { std::exit(recurse(0)); });
          goro::sleep_for(child_patience);
        });
        std::exit(0);
      },
      ::testing::ExitedWithCode(2),
      contains_all({"stack overflow", "overflower", "death_test.cpp"}));
}

// ------------------------------------------------------------------ panics ---

// The panic reports below must show main asleep, but on 2 Ps the panicking
// goroutine may start before main has parked: wait (yielding) until a dump
// says main sleeps.
void wait_until_main_sleeps() {
  for (;;) {
    std::ostringstream d;
    goro::dump(d);
    if (d.str().find("goroutine 1 \"main\" [sleep") != std::string::npos) return;
    goro::yield();
  }
}

void escaping_exception_program() {
  goro::run(goro::run_options{.maxprocs = 2}, [] {
    goro::go([] {
      wait_until_main_sleeps();
      throw std::runtime_error("the widget broke");
    });
    goro::sleep_for(child_patience);
  });
  std::exit(0);
}

TEST(panic_DeathTest, exception_escaping_a_goroutine_ends_the_process) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  // Go's report: the message, the exception's type, the goroutine and its
  // spawn site, then the dump of every goroutine (main is asleep).
  EXPECT_EXIT(escaping_exception_program(), ::testing::ExitedWithCode(2),
              contains_all({"panic: the widget broke\n", "exception of type std::runtime_error",
                            "escaped goroutine ", ", created at ", "death_test.cpp",
                            "[running]:", "goroutine 1 \"main\" [sleep, "}));
}

// set_panic_handler: the report goes where the handler puts it (a file here),
// and the process still exits with status 2.
std::string handler_file() { return "/tmp/goro_panic_report_" + std::to_string(::getppid()); }

void report_to_file(std::string_view report) {
  std::ofstream(handler_file()) << "handled:\n" << report;
}

void panic_with_handler_program() {
  goro::set_panic_handler(&report_to_file);
  goro::run([] {
    goro::go([] {
      wait_until_main_sleeps();
      throw std::logic_error("to the file");
    });
    goro::sleep_for(child_patience);
  });
  std::exit(0);
}

TEST(panic_DeathTest, panic_handler_receives_the_report) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  const std::string file = "/tmp/goro_panic_report_" + std::to_string(::getpid());
  std::remove(file.c_str());
  EXPECT_EXIT(panic_with_handler_program(), ::testing::ExitedWithCode(2), "");
  std::stringstream got;
  got << std::ifstream(file).rdbuf();
  std::remove(file.c_str());
  for (const char* part :
       {"handled:\npanic: to the file\n", "std::logic_error", "goroutine 1 \"main\" [sleep"})
    EXPECT_NE(got.str().find(part), std::string::npos) << "lacks " << part << " in:\n" << got.str();
}

void escaping_from_main_program() {
  goro::run([]() -> int { throw std::runtime_error("main gave up"); });
  std::exit(0);
}

TEST(panic_DeathTest, exception_escaping_the_main_goroutine_ends_the_process) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(escaping_from_main_program(), ::testing::ExitedWithCode(2),
              contains_all({"panic: ", "main gave up"}));
}

void escaping_panic_error_program() {
  goro::run(goro::run_options{.maxprocs = 2}, [] {
    goro::go([] {
      wait_until_main_sleeps();
      goro::wait_group wg;
      wg.done();  // throws goro::panic_error, which nobody catches
    });
    goro::sleep_for(child_patience);
  });
  std::exit(0);
}

TEST(panic_DeathTest, unrecovered_goro_panic_prints_gos_message) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(escaping_panic_error_program(), ::testing::ExitedWithCode(2),
              contains_all({"panic: sync: negative WaitGroup counter\n", "goro::panic_error",
                            "[running]:", "goroutine 1 \"main\" [sleep"}));
}

void escaping_non_std_exception_program() {
  goro::run(goro::run_options{.maxprocs = 2}, [] {
    goro::go([] { throw 42; });
    goro::sleep_for(child_patience);
  });
  std::exit(0);
}

TEST(panic_DeathTest, non_std_exception_escaping_a_goroutine_ends_the_process) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(escaping_non_std_exception_program(), ::testing::ExitedWithCode(2),
              contains_all({"panic: "}));
}

// ------------------------------------------------------------ fatal errors ---

// Go: sync/mutex_test.go TestMutexMisuse ("Mutex.Unlock", "Mutex.Unlock2").
void unlock_unlocked_in_goroutine_program() {
  goro::run([] {
    goro::mutex m;
    m.unlock();
  });
  std::exit(0);
}

void unlock_twice_in_goroutine_program() {
  goro::run(goro::run_options{.maxprocs = 2}, [] {
    goro::mutex m;
    goro::wait_group wg;
    wg.add(1);
    goro::go([&] {
      m.lock();
      m.unlock();
      m.unlock();
      wg.done();
    });
    wg.wait();
  });
  std::exit(0);
}

void unlock_unlocked_on_thread_program() {
  goro::mutex m;
  std::thread t([&m] { m.unlock(); });
  t.join();
  std::exit(0);
}

// -------------------------------------------------------------- deadlock ---
//
// checkdead runs only while the process has no threads but goro's own
// (plus ThreadSanitizer's background thread in TSan builds).

[[gnu::noinline]] void wait_forever_on(goro::chan<int> c) {
  (void)c.recv();
  std::exit(0);  // unreachable
}

void deadlock_on_channel_program() {
  goro::run(goro::run_options{.maxprocs = 2}, [] {
    auto c = goro::make_chan<int>();
    goro::go(goro::spawn_options{.name = "stuck"}, [c] { wait_forever_on(c); });
    wait_forever_on(c);
  });
  std::exit(0);
}

void deadlock_on_wait_group_program() {
  goro::run([] {
    goro::wait_group wg;
    wg.add(1);
    wg.wait();
  });
  std::exit(0);
}

void deadlock_on_mutex_program() {
  goro::run(goro::run_options{.maxprocs = 3}, [] {
    goro::mutex m;
    m.lock();
    m.lock();
  });
  std::exit(0);
}

void deadlock_after_sleep_program() {
  // Asleep, then deadlocked once the sleeper's timer has fired.
  goro::run(goro::run_options{.maxprocs = 2}, [] {
    auto c = goro::make_chan<int>();
    goro::go([] { goro::sleep_for(20ms); });
    (void)c.recv();
  });
  std::exit(0);
}

TEST(deadlock_DeathTest, every_goroutine_asleep_is_fatal) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  const char* fatal = "fatal error: all goroutines are asleep - deadlock!\n\n";
  EXPECT_EXIT(deadlock_on_channel_program(), ::testing::ExitedWithCode(2),
              contains_all({fatal, "goroutine 1 \"main\" [chan receive, ",
                            "\"stuck\" [chan receive, ", "wait_forever_on", "death_test.cpp"}));
  EXPECT_EXIT(deadlock_on_wait_group_program(), ::testing::ExitedWithCode(2),
              contains_all({fatal, "[wait group, "}));
  EXPECT_EXIT(deadlock_on_mutex_program(), ::testing::ExitedWithCode(2),
              contains_all({fatal, "goroutine 1 \"main\" [mutex, "}));
  EXPECT_EXIT(deadlock_after_sleep_program(), ::testing::ExitedWithCode(2),
              contains_all({fatal, "[chan receive, "}));
}

// Every goroutine blocked while something can still wake one: no report.
void asleep_with_a_timer_program() {
  goro::run(goro::run_options{.maxprocs = 2}, [] {
    auto c = goro::make_chan<int>();
    goro::go([c] {
      goro::sleep_for(100ms);  // everything else is blocked meanwhile
      c.send(1);
    });
    (void)c.recv();
    // A timed receive that times out is a timer too.
    auto never = goro::make_chan<int>();
    (void)never.recv_for(50ms);
  });
  std::exit(0);
}

void asleep_with_a_plain_thread_program() {
  goro::run(goro::run_options{.maxprocs = 2}, [] {
    auto c = goro::make_chan<int>();
    std::thread t([c] {
      std::this_thread::sleep_for(100ms);  // not synchronization: any delay passes
      c.send(7);
    });
    (void)c.recv();
    t.join();
  });
  std::exit(0);
}

void asleep_with_a_blocking_call_program() {
  goro::run(goro::run_options{.maxprocs = 1}, [] {
    auto c = goro::make_chan<int>();
    goro::go([c] {
      goro::blocking([] { std::this_thread::sleep_for(100ms); });
      c.send(7);
    });
    (void)c.recv();
  });
  std::exit(0);
}

TEST(deadlock_DeathTest, no_report_while_a_timer_thread_or_blocking_call_can_wake) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(asleep_with_a_timer_program(), ::testing::ExitedWithCode(0), "");
  EXPECT_EXIT(asleep_with_a_plain_thread_program(), ::testing::ExitedWithCode(0), "");
  EXPECT_EXIT(asleep_with_a_blocking_call_program(), ::testing::ExitedWithCode(0), "");
}

// --------------------------------------------------------------- SIGQUIT ---

void sigquit_program() {
  goro::run(goro::run_options{.maxprocs = 2}, [] {
    auto c = goro::make_chan<int>();
    for (int i = 0; i < 3; ++i) goro::go([c] { wait_forever_on(c); });
    // Signal once all three are parked (a dump shows them so).
    goro_test::eventually([] {
      std::ostringstream os;
      goro::dump(os);
      return os.str().find("3 goroutines [chan receive") != std::string::npos;
    });
    ::raise(SIGQUIT);
    goro::sleep_for(child_patience);
  });
  std::exit(0);
}

TEST(sigquit_DeathTest, sigquit_dumps_every_goroutine_and_exits) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(sigquit_program(), ::testing::ExitedWithCode(2),
              contains_all({"SIGQUIT: quit\n", "3 goroutines [chan receive",
                            "goroutine 1 \"main\" [", "wait_forever_on"}));
}

TEST(mutex_DeathTest, unlock_of_unlocked_mutex_is_fatal) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(unlock_unlocked_in_goroutine_program(), ::testing::ExitedWithCode(2),
              contains_all({"fatal error: sync: unlock of unlocked mutex",
                            "goroutine 1 \"main\" [running]:"}));
  EXPECT_EXIT(unlock_twice_in_goroutine_program(), ::testing::ExitedWithCode(2),
              contains_all({"fatal error: sync: unlock of unlocked mutex"}));
  EXPECT_EXIT(unlock_unlocked_on_thread_program(), ::testing::ExitedWithCode(2),
              contains_all({"fatal error: sync: unlock of unlocked mutex"}));
}

}  // namespace

namespace {

// ---------------------------------------------------------------- rw_mutex ---

void runlock_of_unlocked_program() {
  goro::run([] {
    goro::rw_mutex rw;
    rw.unlock_shared();
  });
  std::exit(0);
}

void unlock_of_unlocked_rw_program() {
  goro::rw_mutex rw;
  std::thread t([&rw] { rw.unlock(); });
  t.join();
  std::exit(0);
}

TEST(rw_mutex_DeathTest, unlocks_of_unlocked_rw_mutex_are_fatal_with_gos_words) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(runlock_of_unlocked_program(), ::testing::ExitedWithCode(2),
              contains_all({"fatal error: sync: RUnlock of unlocked RWMutex"}));
  EXPECT_EXIT(unlock_of_unlocked_rw_program(), ::testing::ExitedWithCode(2),
              contains_all({"fatal error: sync: Unlock of unlocked RWMutex"}));
}

}  // namespace
