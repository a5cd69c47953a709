// tests/test_util.hpp: what every goro test file shares.
//
//  - goro_test_sanitized: true in ASan and TSan builds. TSan tracks at most
//    ~8000 live fibers, and both sanitizers make goroutines several times
//    more expensive, so tests size themselves with scaled(): at most 2000
//    simultaneously live goroutines under a sanitizer.
//  - procs_test: a value-parameterized fixture over 1, 2, 4 and 8 Ps (marl's
//    WithBoundScheduler idea). Derive a fixture per file and instantiate it
//    with GORO_INSTANTIATE_PROCS(fixture).
//  - run_in(procs, f): runs f as the main goroutine of a runtime with that
//    many Ps and then checks that nothing leaked (goleak's idea): once f has
//    waited for its goroutines, num_goroutines() must come back to 1 (the
//    main goroutine), else the test fails listing the leaked goroutines
//    from goro::dump (state, wait reason, stack, spawn site).
//  - leaked_goroutines(timeout): that check, for tests that call goro::run
//    themselves: "" if only the calling goroutine is left within timeout,
//    else the dump.
//  - eventually(pred, timeout): a bounded wait for a condition that a correct
//    runtime makes true without further help from the test (a goroutine that
//    has signalled its last wait_group still has to return). Not a substitute
//    for synchronization: tests wait for each other with wait_group.
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <initializer_list>
#include <ostream>
#include <sstream>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "goro/goro.hpp"

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define GORO_TEST_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define GORO_TEST_SANITIZED 1
#endif
#endif
#ifndef GORO_TEST_SANITIZED
#define GORO_TEST_SANITIZED 0
#endif

#if defined(__SANITIZE_THREAD__)
#define GORO_TEST_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define GORO_TEST_TSAN 1
#endif
#endif
#ifndef GORO_TEST_TSAN
#define GORO_TEST_TSAN 0
#endif

/// True when the tests are built with AddressSanitizer or ThreadSanitizer.
inline constexpr bool goro_test_sanitized = GORO_TEST_SANITIZED != 0;
/// True under ThreadSanitizer only.
inline constexpr bool goro_test_tsan = GORO_TEST_TSAN != 0;

namespace goro_test {

/// n_release in a plain build, n_sanitized under ASan or TSan.
template <class T>
constexpr T scaled(T n_release, T n_sanitized) noexcept {
  return goro_test_sanitized ? n_sanitized : n_release;
}

/// Waits until pred() is true or timeout passes; returns pred()'s last value.
/// Works on a goroutine (it yields, then sleeps in short steps) and on a
/// plain thread.
template <class Pred>
bool eventually(Pred pred, std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (int spins = 0;; ++spins) {
    if (pred()) return true;
    if (std::chrono::steady_clock::now() >= deadline) return pred();
    if (spins < 100) {
      goro::yield();
    } else {
      goro::sleep_for(std::chrono::microseconds(200));
    }
  }
}

/// On a goroutine: waits up to timeout for every other goroutine to finish
/// (a goroutine that signalled its last wait_group may still be returning).
/// Returns "" if they did, else the goroutine dump showing who is left.
inline std::string leaked_goroutines(std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
  if (eventually([] { return goro::num_goroutines() == 1; }, timeout)) return {};
  std::ostringstream os;
  os << goro::num_goroutines() - 1 << " goroutine(s) besides the caller still exist:\n";
  goro::dump(os);
  return os.str();
}

/// Runs f() as the main goroutine of a runtime with `procs` Ps, then checks
/// that every goroutine f started has finished. f must wait (wait_group) for
/// the goroutines it starts before returning.
template <class F>
void run_in(int procs, F&& f) {
  goro::run(goro::run_options{.maxprocs = procs}, [&] {
    EXPECT_EQ(goro::maxprocs(), procs);
    f();
    if (::testing::Test::HasFatalFailure()) return;  // f bailed out early
    const std::string leaks = leaked_goroutines();
    EXPECT_EQ(leaks, "") << "goroutine leak after the test's goroutines were done";
  });
}

/// Fixture parameter: the number of Ps.
class procs_test : public ::testing::TestWithParam<int> {
 protected:
  int procs() const { return GetParam(); }
};

/// prefix followed by the decimal digits of n. (Also dodges GCC 12's bogus
/// -Wrestrict on `"literal" + std::string` at -O3, GCC PR 105651.)
inline std::string numbered(std::string_view prefix, long long n) {
  std::string s(prefix);
  s += std::to_string(n);
  return s;
}

inline std::string procs_name(const ::testing::TestParamInfo<int>& info) {
  return numbered("P", info.param);
}

/// Matches a string containing every one of the given substrings, in any
/// order (for death-test stderr, where the order of fields is not the point).
class contains_all_matcher : public ::testing::MatcherInterface<const std::string&> {
 public:
  explicit contains_all_matcher(std::vector<std::string> parts) : parts_(std::move(parts)) {}

  bool MatchAndExplain(const std::string& s,
                       ::testing::MatchResultListener* listener) const override {
    for (const auto& p : parts_) {
      if (s.find(p) == std::string::npos) {
        *listener << "lacks \"" << p << "\"";
        return false;
      }
    }
    return true;
  }
  void DescribeTo(std::ostream* os) const override {
    *os << "contains all of:";
    for (const auto& p : parts_) *os << " \"" << p << "\"";
  }

 private:
  std::vector<std::string> parts_;
};

inline ::testing::Matcher<const std::string&> contains_all(
    std::initializer_list<std::string> parts) {
  return ::testing::MakeMatcher(new contains_all_matcher(std::vector<std::string>(parts)));
}

}  // namespace goro_test

/// Instantiates a procs_test-derived fixture over 1, 2, 4 and 8 Ps.
#define GORO_INSTANTIATE_PROCS(fixture) \
  INSTANTIATE_TEST_SUITE_P(procs, fixture, ::testing::Values(1, 2, 4, 8), ::goro_test::procs_name)
