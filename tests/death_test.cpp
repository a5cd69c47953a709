// Failures that end the process, as they end a Go program: stack overflow,
// an exception escaping a goroutine (an unrecovered panic), and misuse that Go
// reports as a fatal error. Each case runs in a child process (gtest death
// tests, "threadsafe" style: the child re-executes this binary, so it starts
// with no runtime and no goro threads) and must exit with code 2, Go's exit
// code for panics and fatal errors, naming what went wrong on stderr.
#include <gtest/gtest.h>

#include <chrono>
#include <climits>
#include <cstdlib>
#include <stdexcept>
#include <thread>

#include "goro/goro.hpp"
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

// ------------------------------------------------------------------ panics ---

void escaping_exception_program() {
  goro::run(goro::run_options{.maxprocs = 2}, [] {
    goro::go([] {
      goro::yield();
      throw std::runtime_error("the widget broke");
    });
    goro::sleep_for(child_patience);
  });
  std::exit(0);
}

TEST(panic_DeathTest, exception_escaping_a_goroutine_ends_the_process) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(escaping_exception_program(), ::testing::ExitedWithCode(2),
              contains_all({"panic: ", "the widget broke"}));
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
              contains_all({"panic: ", "sync: negative WaitGroup counter"}));
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

TEST(mutex_DeathTest, unlock_of_unlocked_mutex_is_fatal) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(unlock_unlocked_in_goroutine_program(), ::testing::ExitedWithCode(2),
              contains_all({"fatal error: sync: unlock of unlocked mutex"}));
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
