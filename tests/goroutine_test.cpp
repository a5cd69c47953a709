// Tests of the runtime core: goro::run, goro::go and its argument passing,
// what a goroutine knows about itself (id, spawn site), stacks, yield,
// num_goroutines, maxprocs, and scale (a million live goroutines).
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cfenv>
#if defined(__x86_64__)
#include <xmmintrin.h>
#endif
#include <climits>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <type_traits>
#include <unordered_set>
#include <vector>

#include "goro/goro.hpp"
#include "runtime/park.hpp"
#include "runtime/sched.hpp"
#include "test_util.hpp"

namespace {

using namespace std::chrono_literals;
using goro_test::eventually;
using goro_test::run_in;
using goro_test::scaled;

class goroutine_procs : public goro_test::procs_test {};
GORO_INSTANTIATE_PROCS(goroutine_procs);

// ------------------------------------------------------------------- run ---

TEST(run, returns_the_main_functions_result) {
  EXPECT_EQ(goro::run([] { return 42; }), 42);
  EXPECT_EQ(goro::run([] {}), 0);
  EXPECT_EQ(goro::run([] { return 7L; }), 7);  // anything convertible to int
  EXPECT_EQ(goro::run(goro::run_options{.maxprocs = 3}, [] { return goro::maxprocs(); }), 3);

  // An lvalue callable, called exactly once.
  int calls = 0;
  auto f = [&calls] { return ++calls; };
  EXPECT_EQ(goro::run(f), 1);
  EXPECT_EQ(calls, 1);
}

TEST(run, main_function_runs_as_goroutine_one) {
  EXPECT_FALSE(goro::in_goroutine());
  EXPECT_EQ(goro::goroutine_id(), 0u);
  EXPECT_EQ(goro::num_goroutines(), 0);
  goro::run([] {
    EXPECT_TRUE(goro::in_goroutine());
    EXPECT_EQ(goro::goroutine_id(), 1u);
    EXPECT_EQ(goro::num_goroutines(), 1);
  });
  EXPECT_FALSE(goro::in_goroutine());
  EXPECT_EQ(goro::goroutine_id(), 0u);
  EXPECT_EQ(goro::num_goroutines(), 0);
}

TEST(run, nested_run_throws_logic_error) {
  goro::run(goro::run_options{.maxprocs = 2}, [] {
    // From the main goroutine...
    EXPECT_THROW(goro::run([] {}), std::logic_error);
    // ...from another goroutine...
    goro::wait_group wg;
    wg.add(1);
    goro::go([&wg] {
      EXPECT_THROW(goro::run([] {}), std::logic_error);
      wg.done();
    });
    wg.wait();
    // ...and from a plain thread while this runtime is running.
    std::thread t([] { EXPECT_THROW(goro::run([] {}), std::logic_error); });
    t.join();
    EXPECT_TRUE(eventually([] { return goro::num_goroutines() == 1; }));
  });
  // The failed attempts left nothing behind: a new runtime starts.
  EXPECT_EQ(goro::run([] { return 5; }), 5);
}

TEST(run, runs_repeatedly_with_different_proc_counts) {
  constexpr std::array<int, 6> counts{1, 2, 3, 8, 5, 1};
  for (int round = 0; round < 12; ++round) {
    const int procs = counts[static_cast<std::size_t>(round) % counts.size()];
    const int result = goro::run(goro::run_options{.maxprocs = procs}, [&] {
      EXPECT_EQ(goro::maxprocs(), procs);
      std::atomic<int> sum{0};
      goro::wait_group wg;
      wg.add(100);
      for (int i = 1; i <= 100; ++i) {
        goro::go([&, i] {
          goro::yield();
          sum.fetch_add(i, std::memory_order_relaxed);
          wg.done();
        });
      }
      wg.wait();
      return sum.load() + round;
    });
    EXPECT_EQ(result, 5050 + round) << "round " << round << " with " << procs << " Ps";
    EXPECT_EQ(goro::num_goroutines(), 0);
  }
  // run() from a thread other than the process's main thread.
  std::thread t([] {
    EXPECT_EQ(
        goro::run(goro::run_options{.maxprocs = 2}, [] { return goro::in_goroutine() ? 11 : 12; }),
        11);
  });
  t.join();
}

struct sets_flag_on_destroy {
  std::atomic<bool>* flag;
  ~sets_flag_on_destroy() { flag->store(true); }
};

// Go: when main returns the program exits, whatever other goroutines do.
TEST(run, returns_while_other_goroutines_are_blocked_or_running) {
  std::atomic<bool> destroyed{false};
  goro::wait_group never;  // outlives the runtime; never released
  never.add(1);
  const int result = goro::run(goro::run_options{.maxprocs = 2}, [&] {
    goro::wait_group started;
    started.add(3);
    goro::go([&] {
      sets_flag_on_destroy guard{&destroyed};
      started.done();
      never.wait();
    });
    goro::go([&] {
      sets_flag_on_destroy guard{&destroyed};
      started.done();
      goro::sleep_for(1h);
    });
    goro::go([&] {
      started.done();
      for (;;) goro::yield();  // busy, but cooperative
    });
    started.wait();
    EXPECT_EQ(goro::num_goroutines(), 4);
    return 7;
  });
  EXPECT_EQ(result, 7);
  EXPECT_FALSE(destroyed.load()) << "abandoned goroutines must never be resumed or unwound";
  EXPECT_EQ(goro::num_goroutines(), 0);
  EXPECT_EQ(goro::run([] { return 3; }), 3);  // the next runtime is unaffected
}

// Goroutines abandoned by one runtime while parked on a wait_group and a
// mutex must leave no trace in the next one, even where the next runtime's
// wait_group and mutex live at the very same addresses (the semaphores that
// goroutines park on are keyed by address, as in Go's runtime/sema.go).
TEST(run, abandoned_waiters_do_not_disturb_the_next_runtime) {
  alignas(goro::wait_group) unsigned char wg_storage[sizeof(goro::wait_group)];
  alignas(goro::mutex) unsigned char mu_storage[sizeof(goro::mutex)];
  for (int round = 0; round < 3; ++round) {
    auto* wg = std::construct_at(reinterpret_cast<goro::wait_group*>(wg_storage));
    auto* mu = std::construct_at(reinterpret_cast<goro::mutex*>(mu_storage));
    // One P: each goroutine runs until it parks before main resumes.
    goro::run(goro::run_options{.maxprocs = 1}, [&] {
      goro::wait_group started;
      started.add(2);
      wg->add(1);
      mu->lock();
      goro::go([&] {
        started.done();
        wg->wait();  // parks for good
      });
      goro::go([&] {
        started.done();
        mu->lock();  // parks for good
      });
      started.wait();
      EXPECT_EQ(goro::num_goroutines(), 3);
    });
    std::destroy_at(mu);
    std::destroy_at(wg);

    // Fresh objects at the same addresses, in a fresh runtime.
    wg = std::construct_at(reinterpret_cast<goro::wait_group*>(wg_storage));
    mu = std::construct_at(reinterpret_cast<goro::mutex*>(mu_storage));
    int counter = 0;  // guarded by *mu
    goro::run(goro::run_options{.maxprocs = 2}, [&] {
      const int n = 20;
      wg->add(n);
      for (int i = 0; i < n; ++i) {
        goro::go([&] {
          for (int k = 0; k < 100; ++k) {
            std::lock_guard<goro::mutex> l(*mu);
            ++counter;
            if (k % 10 == 0) goro::yield();
          }
          wg->done();
        });
      }
      wg->wait();
      EXPECT_EQ(goro_test::leaked_goroutines(), "");
    });
    EXPECT_EQ(counter, 20 * 100) << "round " << round;
    std::destroy_at(mu);
    std::destroy_at(wg);
  }
}

// ----------------------------------------------------------------- spawn ---

TEST(spawn, outside_run_throws_logic_error) {
  EXPECT_THROW(goro::go([] {}), std::logic_error);
  // The spawn fails before the arguments are taken.
  auto p = std::make_unique<int>(5);
  EXPECT_THROW(goro::go([](std::unique_ptr<int>) {}, std::move(p)), std::logic_error);
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(*p, 5);
  std::thread t([] { EXPECT_THROW(goro::go([] {}), std::logic_error); });
  t.join();
  // And after a runtime has come and gone.
  goro::run([] {});
  EXPECT_THROW(goro::go([] {}), std::logic_error);
}

void add_then_done(std::atomic<int>* sum, int a, int b, goro::wait_group* wg) {
  sum->fetch_add(a + b);
  wg->done();
}

struct accumulator {
  std::atomic<int> total{0};
  void add(int v, goro::wait_group* wg) {
    total.fetch_add(v);
    wg->done();
  }
};

TEST_P(goroutine_procs, arguments_are_decay_copied) {
  run_in(procs(), [] {
    goro::wait_group wg;
    std::string s = "original";
    std::string got_s;
    auto owned = std::make_unique<int>(42);
    int got_owned = 0;
    int by_ref = 0;
    const char* got_literal = nullptr;
    std::atomic<int> sum{0};
    accumulator acc;

    wg.add(7);
    goro::go(
        [&](std::string v) {
          got_s = std::move(v);
          wg.done();
        },
        s);
    s = "changed";  // the goroutine holds its own copy
    goro::go(
        [&](std::unique_ptr<int> p) {
          got_owned = *p;
          wg.done();
        },
        std::move(owned));
    goro::go(
        [&](int& r) {
          r = 7;
          wg.done();
        },
        std::ref(by_ref));
    goro::go(
        [&](const char* lit) {
          got_literal = lit;
          wg.done();
        },
        "literal");  // decays
    goro::go(&add_then_done, &sum, 2, 3, &wg);
    goro::go(&accumulator::add, &acc, 5, &wg);
    auto named = [&wg, &sum] {
      sum.fetch_add(100);
      wg.done();
    };
    goro::go{named};  // `goro::go(named);` would declare a variable
    wg.wait();

    EXPECT_EQ(got_s, "original");
    EXPECT_EQ(s, "changed");
    EXPECT_EQ(owned, nullptr);
    EXPECT_EQ(got_owned, 42);
    EXPECT_EQ(by_ref, 7);
    EXPECT_STREQ(got_literal, "literal");
    EXPECT_EQ(sum.load(), 105);
    EXPECT_EQ(acc.total.load(), 5);

    // The copy was of the lvalue: `named` is still callable here.
    wg.add(1);
    named();
    wg.wait();
    EXPECT_EQ(sum.load(), 205);
  });
}

// Counts live instances, to check that closures are destroyed.
struct tracked {
  static inline std::atomic<int> live{0};
  tracked() { live.fetch_add(1); }
  tracked(const tracked&) { live.fetch_add(1); }
  tracked(tracked&&) noexcept { live.fetch_add(1); }
  tracked& operator=(const tracked&) = default;
  ~tracked() { live.fetch_sub(1); }
};

struct alignas(64) aligned64 {
  std::uint64_t v[8];
};
struct alignas(256) aligned256 {
  std::uint64_t v[4];
};

TEST_P(goroutine_procs, small_large_and_overaligned_closures) {
  run_in(procs(), [] {
    goro::wait_group wg;
    std::array<std::uint64_t, 4> small{1, 2, 3, 4};        // closure of 48 bytes: inline
    std::array<std::uint64_t, 6> exact{1, 2, 3, 4, 5, 6};  // closure of 64 bytes: inline
    std::array<std::uint64_t, 64> big{};                   // closure of 528 bytes: heap
    for (std::size_t i = 0; i < big.size(); ++i) big[i] = i;
    aligned64 a64{};
    aligned256 a256{};
    a64.v[7] = 77;
    a256.v[3] = 33;
    std::uint64_t got_small = 0, got_exact = 0, got_big = 0, got_a64 = 0, got_a256 = 0;
    std::uintptr_t addr_a64 = 1, addr_a256 = 1;

    wg.add(5);
    auto sum_small = [small, &got_small, &wg] {
      for (auto v : small) got_small += v;
      wg.done();
    };
    static_assert(sizeof(sum_small) <= 64);
    goro::go(std::move(sum_small));
    auto sum_exact = [exact, &got_exact, &wg] {
      for (auto v : exact) got_exact += v;
      wg.done();
    };
    static_assert(sizeof(sum_exact) == 64);
    goro::go(std::move(sum_exact));
    auto sum_big = [big, &got_big, &wg] {
      for (auto v : big) got_big += v;
      wg.done();
    };
    static_assert(sizeof(sum_big) > 64);
    goro::go(std::move(sum_big));
    goro::go([a64, &got_a64, &addr_a64, &wg] {
      got_a64 = a64.v[7];
      addr_a64 = reinterpret_cast<std::uintptr_t>(&a64);
      wg.done();
    });
    goro::go([a256, &got_a256, &addr_a256, &wg] {
      got_a256 = a256.v[3];
      addr_a256 = reinterpret_cast<std::uintptr_t>(&a256);
      wg.done();
    });
    wg.wait();
    EXPECT_EQ(got_small, 10u);
    EXPECT_EQ(got_exact, 21u);
    EXPECT_EQ(got_big, 64u * 63u / 2u);
    EXPECT_EQ(got_a64, 77u);
    EXPECT_EQ(got_a256, 33u);
    EXPECT_EQ(addr_a64 % 64, 0u) << "closure member misaligned";
    EXPECT_EQ(addr_a256 % 256, 0u) << "closure member misaligned";

    // Every closure (inline or on the heap) and every argument is destroyed
    // once its goroutine is done.
    const int n = 100;
    wg.add(3 * n);
    for (int i = 0; i < n; ++i) {
      goro::go([t = tracked{}, &wg] {
        (void)t;
        wg.done();
      });
      goro::go([t = tracked{}, pad = big, &wg] {
        (void)t;
        (void)pad;
        wg.done();
      });
      goro::go([](const tracked&, goro::wait_group* w) { w->done(); }, tracked{}, &wg);
    }
    wg.wait();
    EXPECT_TRUE(eventually([] { return tracked::live.load() == 0; }))
        << tracked::live.load() << " closures or arguments never destroyed";
  });
}

struct throws_on_copy {
  throws_on_copy() = default;
  throws_on_copy(const throws_on_copy&) { throw std::runtime_error("copy failed"); }
};

TEST_P(goroutine_procs, closure_construction_that_throws_spawns_nothing) {
  run_in(procs(), [] {
    throws_on_copy t;
    std::array<char, 200> pad{};
    bool ran = false;
    EXPECT_THROW(goro::go([&ran](const throws_on_copy&) { ran = true; }, t), std::runtime_error);
    EXPECT_THROW(goro::go([&ran, pad](const throws_on_copy&) { ran = pad[0] == 0; }, t),
                 std::runtime_error);
    EXPECT_EQ(goro::num_goroutines(), 1);
    // The runtime is fine afterwards.
    goro::wait_group wg;
    wg.add(1);
    goro::go([&] { wg.done(); });
    wg.wait();
    EXPECT_FALSE(ran);
  });
}

TEST_P(goroutine_procs, goroutines_spawning_goroutines) {
  run_in(procs(), [] {
    // A binary tree of goroutines: every inner node spawns two children and
    // finishes without waiting for them.
    const int depth = scaled(15, 9);
    std::atomic<int> leaves{0};
    std::atomic<int> nodes{0};
    goro::wait_group wg;
    struct tree {
      static void grow(int d, std::atomic<int>& leaves, std::atomic<int>& nodes,
                       goro::wait_group& wg) {
        nodes.fetch_add(1, std::memory_order_relaxed);
        if (d == 0) {
          leaves.fetch_add(1, std::memory_order_relaxed);
        } else {
          wg.add(2);
          goro::go(&tree::grow, d - 1, std::ref(leaves), std::ref(nodes), std::ref(wg));
          goro::go([d, &leaves, &nodes, &wg] { grow(d - 1, leaves, nodes, wg); });
        }
        wg.done();
      }
    };
    wg.add(1);
    goro::go(&tree::grow, depth, std::ref(leaves), std::ref(nodes), std::ref(wg));
    wg.wait();
    EXPECT_EQ(leaves.load(), 1 << depth);
    EXPECT_EQ(nodes.load(), (2 << depth) - 1);
  });
}

// -------------------------------------------------------------- identity ---

TEST_P(goroutine_procs, ids_are_unique_and_nonzero) {
  run_in(procs(), [] {
    EXPECT_EQ(goro::goroutine_id(), 1u);
    const int n = scaled(1000, 200);
    std::vector<std::uint64_t> ids(static_cast<std::size_t>(n));
    std::vector<char> inside(static_cast<std::size_t>(n), 0);
    goro::wait_group wg;
    wg.add(n);
    for (int i = 0; i < n; ++i) {
      goro::go([&, i] {
        const auto before = goro::goroutine_id();
        goro::yield();  // the id survives a reschedule (maybe onto another thread)
        ids[static_cast<std::size_t>(i)] = before == goro::goroutine_id() ? before : 0;
        inside[static_cast<std::size_t>(i)] = goro::in_goroutine() ? 1 : 0;
        wg.done();
      });
    }
    wg.wait();
    // Ids are never reused within a run: goroutines that exist one after the
    // other get distinct ids too.
    for (int i = 0; i < 50; ++i) {
      wg.add(1);
      goro::go([&] {
        ids.push_back(goro::goroutine_id());
        inside.push_back(goro::in_goroutine() ? 1 : 0);
        wg.done();
      });
      wg.wait();
    }
    std::unordered_set<std::uint64_t> seen;
    for (std::size_t i = 0; i < ids.size(); ++i) {
      EXPECT_NE(ids[i], 0u) << "goroutine " << i << " had id 0 or its id changed";
      EXPECT_NE(ids[i], 1u) << "only the main goroutine is 1";
      EXPECT_TRUE(seen.insert(ids[i]).second) << "duplicate id " << ids[i];
      EXPECT_EQ(inside[i], 1);
    }

    // A plain thread is not a goroutine, even while a runtime is running.
    std::uint64_t thread_id = 99;
    bool thread_inside = true;
    std::uint_least32_t thread_site_line = 99;
    std::thread t([&] {
      thread_id = goro::goroutine_id();
      thread_inside = goro::in_goroutine();
      thread_site_line = goro::spawn_site().line();
    });
    t.join();
    EXPECT_EQ(thread_id, 0u);
    EXPECT_FALSE(thread_inside);
    EXPECT_EQ(thread_site_line, 0u);
  });
  EXPECT_EQ(goro::goroutine_id(), 0u);
  EXPECT_FALSE(goro::in_goroutine());
}

bool ends_with(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

TEST(goroutine_identity, spawn_site_is_the_go_expression) {
  goro::run(goro::run_options{.maxprocs = 2}, [] {
    goro::wait_group wg;
    goro::source_location plain, with_options, with_args;
    wg.add(3);

    // A multi-line goro::go expression is reported at one of its lines: GCC
    // picks the last, Clang the first. Each site must fall within its own.
    const std::uint_least32_t plain_first = __LINE__ + 1;
    goro::go([&] {
      plain = goro::spawn_site();
      wg.done();
    });
    const std::uint_least32_t plain_last = __LINE__ - 1;
    const std::uint_least32_t options_first = __LINE__ + 1;
    goro::go(goro::spawn_options{.name = "sited"}, [&] {
      with_options = goro::spawn_site();
      wg.done();
    });
    const std::uint_least32_t options_last = __LINE__ - 1;
    const std::uint_least32_t args_first = __LINE__ + 1;
    goro::go(
        [&](int) {
          with_args = goro::spawn_site();
          wg.done();
        },
        1);
    const std::uint_least32_t args_last = __LINE__ - 1;
    wg.wait();

    EXPECT_GE(plain.line(), plain_first);
    EXPECT_LE(plain.line(), plain_last);
    EXPECT_GE(with_options.line(), options_first);
    EXPECT_LE(with_options.line(), options_last);
    EXPECT_GE(with_args.line(), args_first);
    EXPECT_LE(with_args.line(), args_last);
    for (const auto& site : {plain, with_options, with_args}) {
      EXPECT_TRUE(ends_with(site.file_name(), "goroutine_test.cpp")) << site.file_name();
    }
    EXPECT_EQ(goro_test::leaked_goroutines(), "");
  });
  EXPECT_EQ(goro::spawn_site().line(), 0u);  // not a goroutine
}

TEST(goroutine_identity, names_are_copied_and_may_be_long) {
  goro::run(goro::run_options{.maxprocs = 2}, [] {
    goro::wait_group wg;
    std::atomic<int> ran{0};  // the first two goroutines may run in parallel
    wg.add(2);
    {
      std::string name = goro_test::numbered("worker-", 17);
      goro::go(goro::spawn_options{.name = name}, [&] {
        ++ran;
        wg.done();
      });
      name.assign(name.size(), 'X');  // the runtime kept its own copy
    }
    const std::string long_name(300, 'n');  // more than the 47 bytes kept
    goro::go(goro::spawn_options{.name = long_name}, [&] {
      ++ran;
      wg.done();
    });
    wg.wait();
    wg.add(1);
    goro::go(goro::spawn_options{.name = ""}, [&] {
      ++ran;
      wg.done();
    });
    wg.wait();
    EXPECT_EQ(ran, 3);
    EXPECT_EQ(goro_test::leaked_goroutines(), "");
  });
}

// ---------------------------------------------------------------- stacks ---

// Uses N bytes of stack in one frame, touching every cache line from the top
// down, and returns a checksum the compiler cannot fold away.
template <std::size_t N>
[[gnu::noinline]] std::uint64_t use_stack() {
  volatile unsigned char buf[N];
  for (std::size_t i = N; i >= 64; i -= 64) buf[i - 64] = static_cast<unsigned char>(i / 64);
  std::uint64_t sum = 0;
  for (std::size_t i = N; i >= 64; i -= 64) sum += buf[i - 64];
  return sum;
}

constexpr std::uint64_t use_stack_checksum(std::size_t n) {
  std::uint64_t sum = 0;
  for (std::size_t i = n; i >= 64; i -= 64) sum += static_cast<unsigned char>(i / 64);
  return sum;
}

TEST_P(goroutine_procs, stack_sizes) {
  run_in(procs(), [] {
    goro::wait_group wg;
    std::uint64_t dflt = 0, big = 0, odd = 0;
    wg.add(3);
    // The default (64 KiB) holds a 32 KiB frame.
    goro::go([&] {
      dflt = use_stack<32 * 1024>();
      wg.done();
    });
    // 200 KiB of frame needs a bigger stack.
    goro::go(goro::spawn_options{.stack_size = 1024 * 1024, .name = "deep"}, [&] {
      goro::yield();  // and it survives rescheduling
      big = use_stack<200 * 1024>();
      goro::yield();
      wg.done();
    });
    // A size that is not a whole number of pages is rounded up.
    goro::go(goro::spawn_options{.stack_size = 300'001}, [&] {
      odd = use_stack<128 * 1024>();
      wg.done();
    });
    wg.wait();
    EXPECT_EQ(dflt, use_stack_checksum(32 * 1024));
    EXPECT_EQ(big, use_stack_checksum(200 * 1024));
    EXPECT_EQ(odd, use_stack_checksum(128 * 1024));

    // Stacks of every size are reused safely by later goroutines.
    const int n = scaled(200, 50);
    std::atomic<int> ok{0};
    wg.add(n);
    for (int i = 0; i < n; ++i) {
      const std::size_t size = (i % 3 == 0) ? 1024 * 1024 : 0;
      goro::go(goro::spawn_options{.stack_size = size}, [&, size] {
        const bool good = size ? use_stack<200 * 1024>() == use_stack_checksum(200 * 1024)
                               : use_stack<16 * 1024>() == use_stack_checksum(16 * 1024);
        goro::yield();
        if (good) ok.fetch_add(1);
        wg.done();
      });
    }
    wg.wait();
    EXPECT_EQ(ok.load(), n);
  });
}

// ----------------------------------------------------------------- yield ---

// With one P and only two runnable goroutines, yield must hand the P to the
// other one every time (Go: runtime.Gosched puts the caller behind the
// goroutines that are ready to run).
TEST(yield, alternates_two_goroutines_on_one_p) {
  goro::run(goro::run_options{.maxprocs = 1}, [] {
    constexpr int rounds = 200;
    std::vector<int> order;
    order.reserve(2 * rounds);
    goro::mutex order_mu;  // yield orders nothing for the race detector
    goro::wait_group wg;
    wg.add(2);
    for (int who = 0; who < 2; ++who) {
      goro::go([&, who] {
        for (int i = 0; i < rounds; ++i) {
          order_mu.lock();
          order.push_back(who);
          order_mu.unlock();
          goro::yield();
        }
        wg.done();
      });
    }
    wg.wait();
    ASSERT_EQ(order.size(), std::size_t{2 * rounds});
    std::size_t repeats = 0;
    for (std::size_t i = 1; i < order.size(); ++i) repeats += order[i] == order[i - 1];
    EXPECT_EQ(repeats, 0u) << "yield did not let the other goroutine run";
    EXPECT_EQ(goro_test::leaked_goroutines(), "");
  });
}

TEST(yield, spinning_on_a_flag_with_yield_makes_progress_on_one_p) {
  goro::run(goro::run_options{.maxprocs = 1}, [] {
    // Atomic although one P runs both: yield orders nothing (Go's model).
    std::atomic<bool> flag{false};
    goro::wait_group wg;
    wg.add(2);
    goro::go([&] {
      while (!flag) goro::yield();  // never returns unless yield runs the setter
      wg.done();
    });
    goro::go([&] {
      flag = true;
      wg.done();
    });
    wg.wait();
    EXPECT_TRUE(flag);
    EXPECT_EQ(goro_test::leaked_goroutines(), "");
  });
}

// The FP control words (x87 control word and MXCSR: rounding mode, masked
// exceptions) belong to the goroutine, as the callee-saved registers do: two
// goroutines sharing one thread each keep their own rounding mode.
TEST(context_switch, floating_point_control_words_are_per_goroutine) {
  goro::run(goro::run_options{.maxprocs = 1}, [] {
    std::atomic<int> seen_by_second{-1};
    std::atomic<int> first_after_switch{-1};
    goro::wait_group wg;
    wg.add(2);
    goro::go([&] {
      std::fesetround(FE_UPWARD);
      goro::yield();  // the second goroutine runs here, on the same thread
      first_after_switch = std::fegetround();
      std::fesetround(FE_TONEAREST);
      wg.done();
    });
    goro::go([&] {
      seen_by_second = std::fegetround();
      std::fesetround(FE_DOWNWARD);
      goro::yield();
      std::fesetround(FE_TONEAREST);
      wg.done();
    });
    wg.wait();
    EXPECT_EQ(seen_by_second.load(), FE_TONEAREST)
        << "a goroutine inherited another's rounding mode";
    EXPECT_EQ(first_after_switch.load(), FE_UPWARD) << "a goroutine lost its rounding mode";
    EXPECT_EQ(std::fegetround(), FE_TONEAREST);
    EXPECT_EQ(goro_test::leaked_goroutines(), "");
  });
}

// A goroutine that exits with its own rounding mode still in force must not
// hand it to the scheduler or to the next goroutine on the thread (the exit
// switch does not read the dying goroutine's control words, so it must load
// the scheduler's unconditionally).
TEST(context_switch, an_exiting_goroutine_leaves_no_control_words_behind) {
  goro::run(goro::run_options{.maxprocs = 1}, [] {
    for (const int mode : {FE_UPWARD, FE_DOWNWARD, FE_TOWARDZERO}) {
      goro::wait_group wg;
      wg.add(1);
      goro::go([&] {
        std::fesetround(mode);  // and exit without restoring it
        wg.done();
      });
      wg.wait();  // we resume on the same thread, after the exit switch
      int next_saw = -1;
      unsigned next_mxcsr_rounding = 1;
      wg.add(1);
      goro::go([&] {
        next_saw = std::fegetround();
#if defined(__x86_64__)
        next_mxcsr_rounding = _mm_getcsr() & 0x6000u;  // MXCSR's rounding field
#else
        next_mxcsr_rounding = 0;
#endif
        wg.done();
      });
      wg.wait();
      EXPECT_EQ(next_saw, FE_TONEAREST) << "mode " << mode << " outlived its goroutine";
      EXPECT_EQ(next_mxcsr_rounding, 0u) << "mode " << mode << " outlived its goroutine in MXCSR";
      EXPECT_EQ(std::fegetround(), FE_TONEAREST) << "the main goroutine's mode changed";
    }
    EXPECT_EQ(goro_test::leaked_goroutines(), "");
  });
}

// gopark's contract: a commit that returns false calls the park off and the
// goroutine goes on at once. Both ways a goroutine parks are covered: through
// the scheduler (nothing else to run) and by handing its thread straight to
// the goroutine in runnext (the one it just spawned).
TEST(park, a_commit_that_declines_resumes_the_goroutine) {
  if (std::getenv("GORO_DEBUG") != nullptr)
    GTEST_SKIP() << "checks the direct handoff to runnext, which GORO_DEBUG modes turn off";
  goro::run(goro::run_options{.maxprocs = 1}, [] {
    std::atomic<int> commits{0};
    auto decline = [](void* arg) {
      static_cast<std::atomic<int>*>(arg)->fetch_add(1);
      return false;
    };
    // Nothing runnable: parks through the scheduler.
    goro::detail::gopark(decline, &commits, goro::detail::wait_reason::semaphore);
    EXPECT_EQ(commits.load(), 1);
    // A started goroutine in runnext (just woken by us): the park hands the
    // thread to it; it runs on until it exits, and only then do we, put back
    // by the declined commit.
    std::atomic<bool> other_ran{false};
    goro::wait_group wg;
    wg.add(1);
    auto c = goro::make_chan<int>();
    goro::go([&] {
      (void)c.recv();
      other_ran = true;
      wg.done();
    });
    goro::yield();  // it runs and parks in recv
    c.send(1);      // now it sits in our runnext, started
    goro::detail::gopark(decline, &commits, goro::detail::wait_reason::semaphore);
    EXPECT_EQ(commits.load(), 2);
    EXPECT_TRUE(other_ran.load()) << "the park did not hand the thread to runnext";
    wg.wait();
  });
}

// --------------------------------------------------------- global queue ---

// A goroutine that has run and was woken waits in the global queue's
// `resumed` ring, ahead of never-started goroutines queued before it (a
// single FIFO would put it behind every one of them). One P: W1 and W2 park
// on channels; main spawns a backlog (most of it spills to the global
// queue), wakes W1 and then W2 (W2 takes runnext, W1 goes to the local
// queue), and spawns enough more for W1 to spill to the global queue too.
// A goroutine starts in its spawn record and moves to a record in its own
// stack at its first run: an inline closure is relocated there with its
// move constructor (never copied bytewise), and a closure whose move may
// throw stays where it was built, on the heap, never moved.
struct self_pointing {
  const self_pointing* self = this;
  std::string text = "a string long enough to live on the heap, not inline";
  self_pointing() = default;
  self_pointing(const self_pointing& o) : text(o.text) {}
  self_pointing(self_pointing&& o) noexcept : text(std::move(o.text)) {}
  self_pointing& operator=(const self_pointing&) = delete;
};

struct counts_moves {
  static inline std::atomic<int> moves{0};
  counts_moves() = default;
  counts_moves(const counts_moves&) = default;
  counts_moves(counts_moves&&) noexcept(false) { moves.fetch_add(1); }
  counts_moves& operator=(const counts_moves&) = delete;
};

TEST_P(goroutine_procs, closures_move_into_the_started_goroutine_by_their_move_constructor) {
  run_in(procs(), [] {
    const int n = scaled(2000, 200);
    std::atomic<int> intact{0};
    goro::wait_group wg;
    wg.add(n);
    for (int i = 0; i < n; ++i) {
      auto f = [s = self_pointing{}, i, &intact, &wg] {
        if (s.self == &s && s.text.size() > 40 && s.text[0] == 'a' && i >= 0) intact.fetch_add(1);
        wg.done();
      };
      // Inline: 64 bytes at most, and nothrow movable.
      static_assert(sizeof(goro::detail::closure<decltype(f)>) <= 64);
      static_assert(std::is_nothrow_move_constructible_v<decltype(f)>);
      goro::go(std::move(f));
    }
    wg.wait();
    EXPECT_EQ(intact.load(), n) << "a relocated closure lost its state";

    counts_moves::moves.store(0);
    wg.add(1);
    auto g = [c = counts_moves{}, &wg] {
      (void)c;
      wg.done();
    };
    static_assert(sizeof(goro::detail::closure<decltype(g)>) <= 64);
    static_assert(!std::is_nothrow_move_constructible_v<decltype(g)>);
    goro::go(std::move(g));  // one move: into the closure's storage
    wg.wait();
    EXPECT_EQ(counts_moves::moves.load(), 1) << "a closure whose move may throw was moved again";
  });
}

// Flow control: a goroutine that spawns faster than its goroutines can start
// yields once more than 1024 never-started ones wait in the global queue, and
// parks once more than 65536 do, so the backlog (a spawn record each) stays
// bounded. One P: yielding alone halves the backlog's growth (about n / 2
// records for n spawns); without either step every spawn of the loop would
// be waiting when it ends.
TEST(spawn, a_spawn_loop_cannot_outrun_its_goroutines_without_bound) {
  if (std::getenv("GORO_DEBUG") != nullptr)
    GTEST_SKIP() << "GORO_DEBUG modes route wake-ups around the queues";
  goro::run(goro::run_options{.maxprocs = 1}, [] {
    const int n = scaled(300'000, 100'000);
    std::atomic<int> ran{0};
    std::size_t records = 0;
    goro::wait_group wg;
    wg.add(n);
    for (int i = 0; i < n; ++i) {
      goro::go([&] {
        ran.fetch_add(1, std::memory_order_relaxed);
        wg.done();
      });
    }
    {
      goro::detail::lock_guard lk(goro::detail::sched.allgs_lock);
      records = goro::detail::sched.gchunks.size() * goro::detail::g_chunk_size;
    }
    EXPECT_GT(ran.load(), 0) << "the spawner never let a goroutine start";
    EXPECT_LT(records, 65536u + 16384u)
        << "spawn records for " << n << " goroutines: the backlog grew";
    wg.wait();
  });
}

TEST(global_queue, a_woken_goroutine_does_not_wait_behind_fresh_ones) {
  if (std::getenv("GORO_DEBUG") != nullptr)
    GTEST_SKIP() << "GORO_DEBUG modes route wake-ups around the queues";
  goro::run(goro::run_options{.maxprocs = 1}, [] {
    const int backlog = scaled(2000, 1000);
    constexpr int spill = 300;  // > 256: two local-queue overflows after W1 joins it
    auto c1 = goro::make_chan<int>();
    auto c2 = goro::make_chan<int>();
    std::atomic<int> order{0};
    std::atomic<int> w1_position{-1};
    goro::wait_group parked, done;
    parked.add(2);
    done.add(2 + backlog + spill);
    goro::go([&] {
      parked.done();
      (void)c1.recv();
      w1_position.store(order.fetch_add(1));
      done.done();
    });
    goro::go([&] {
      parked.done();
      (void)c2.recv();
      order.fetch_add(1);
      done.done();
    });
    parked.wait();  // one P: both ran up to their receives before main resumed
    auto fresh = [&] {
      order.fetch_add(1);
      done.done();
    };
    for (int i = 0; i < backlog; ++i) goro::go{fresh};
    // Some may have run already (a spawner that outruns its goroutines waits
    // for some to start): W1's position counts from here.
    const int ran_before_wake = order.load();
    c1.send(1);  // W1 into runnext
    c2.send(2);  // W2 into runnext, W1 to the local queue's tail
    for (int i = 0; i < spill; ++i) goro::go{fresh};
    done.wait();
    const int total = 2 + backlog + spill;
    EXPECT_GE(w1_position.load(), ran_before_wake);
    EXPECT_LT(w1_position.load() - ran_before_wake, (total - ran_before_wake) / 2)
        << "the woken goroutine ran after most of the never-started ones";
  });
}

// The valve: never-started goroutines get every fourth take from the global
// queue, so a stream of resumed goroutines cannot starve them. One P full
// of goroutines that yield in a loop (each yield past a full local queue
// spills the oldest half to the `resumed` ring, which so never empties); a
// plain thread queues one fresh goroutine that ends the loops.
TEST(global_queue, fresh_goroutines_start_while_resumed_ones_keep_coming) {
  if (std::getenv("GORO_DEBUG") != nullptr)
    GTEST_SKIP() << "GORO_DEBUG modes route wake-ups around the queues";
  goro::run(goro::run_options{.maxprocs = 1}, [] {
    constexpr int yielders = 600;
    std::atomic<bool> stop{false};
    std::atomic<bool> gave_up{false};
    std::atomic<int> running{0};
    goro::wait_group done;
    done.add(yielders + 1);
    const auto give_up = std::chrono::steady_clock::now() + 20s;
    for (int i = 0; i < yielders; ++i) {
      goro::go([&] {
        running.fetch_add(1);
        while (!stop.load(std::memory_order_relaxed)) {
          if (std::chrono::steady_clock::now() > give_up) {
            gave_up.store(true);
            break;
          }
          goro::yield();
        }
        done.done();
      });
    }
    std::thread spawner([&] {
      while (running.load() < yielders) std::this_thread::yield();
      goro::go([&] {  // off any P: straight to the global queue's fresh ring
        stop.store(true);
        done.done();
      });
    });
    done.wait();
    spawner.join();
    EXPECT_FALSE(gave_up.load()) << "the fresh goroutine never got the P";
  });
}

// ------------------------------------------------------------- runnext ---

// Keeps the CPU busy without blocking, for about `iterations` short steps.
void compute(int iterations) {
  for (int i = 0; i < iterations; ++i) asm volatile("" ::: "memory");
}

// A goroutine woken into our P's runnext slot while we compute without
// blocking can only run if another P takes it from the slot: the thief's
// side of sched.cpp's membarrier handshake (here sysmon wakes the other
// thread once our P has looked stuck for 10 ms). Each message must be
// received once, by a goroutine that runs once.
TEST(runnext, a_goroutine_woken_behind_a_busy_waker_is_stolen) {
  if (std::getenv("GORO_DEBUG") != nullptr)
    GTEST_SKIP() << "GORO_DEBUG modes route wake-ups around runnext";
  goro::run(goro::run_options{.maxprocs = 2}, [] {
    constexpr int rounds = 12;
    auto c = goro::make_chan<int>();
    std::atomic<int> seen{-1};
    std::atomic<int> received{0};
    goro::wait_group done;
    done.add(1);
    goro::go([&] {
      for (int v : c) {
        received.fetch_add(1, std::memory_order_relaxed);
        seen.store(v, std::memory_order_release);
      }
      done.done();
    });
    for (int r = 0; r < rounds; ++r) {
      c.send(r);  // from round 1 on the receiver waits: it goes to our runnext
      const auto give_up = std::chrono::steady_clock::now() + 60s;
      while (seen.load(std::memory_order_acquire) != r) {
        ASSERT_LT(std::chrono::steady_clock::now(), give_up)
            << "round " << r << ": nobody took the woken goroutine from runnext";
        compute(100);
      }
    }
    c.close();
    done.wait();
    EXPECT_EQ(received.load(), rounds);
  });
}

// The owner taking runnext (its park hands the thread to the goroutine it
// just woke) races with a thief taking it. A ping-pong pair computes for a
// random while (up to some 30 us, around the thieves' 7 us of patience)
// between waking the other side and blocking. Before each compute the
// waker spawns a goroutine that does nothing: it goes to the stealable
// queue (runnext is taken), which wakes the other P's thread; that thread
// steals it, runs it, and then, with nothing else to do, tries the pair's
// runnext while the owner may be taking it. Whoever loses must let go: a
// goroutine run twice would corrupt its stack or count a message twice.
TEST(runnext, owner_and_thief_race_for_a_woken_goroutine) {
  if (std::getenv("GORO_DEBUG") != nullptr)
    GTEST_SKIP() << "GORO_DEBUG modes route wake-ups around runnext";
  goro::run(goro::run_options{.maxprocs = 2}, [] {
    constexpr int rounds = 4000;
    auto ping = goro::make_chan<int>();
    auto pong = goro::make_chan<int>();
    std::atomic<long> echoed{0};
    goro::wait_group done;
    done.add(1);
    goro::go([&] {
      std::uint32_t x = 12345;
      for (int v : ping) {
        echoed.fetch_add(1, std::memory_order_relaxed);
        pong.send(v);
        goro::go([] {});
        x = x * 1664525u + 1013904223u;
        compute(static_cast<int>(x >> 15));
      }
      done.done();
    });
    std::uint32_t x = 678;
    long sum = 0;
    for (int r = 0; r < rounds; ++r) {
      ping.send(r);
      goro::go([] {});
      x = x * 1664525u + 1013904223u;
      compute(static_cast<int>(x >> 15));
      sum += *pong.recv();
    }
    ping.close();
    done.wait();
    EXPECT_EQ(echoed.load(), rounds);
    EXPECT_EQ(sum, long{rounds} * (rounds - 1) / 2);
  });
}

TEST(yield, works_on_plain_threads) {
  goro::yield();  // outside any runtime
  goro::run([] {
    std::thread t([] {
      for (int i = 0; i < 10; ++i) goro::yield();
    });
    t.join();
  });
  SUCCEED();
}

// -------------------------------------------------------- num_goroutines ---

// Go: runtime.NumGoroutine counts goroutines from creation to exit.
TEST(num_goroutines, counts_started_and_waiting_goroutines) {
  EXPECT_EQ(goro::num_goroutines(), 0);
  goro::run(goro::run_options{.maxprocs = 1}, [] {
    EXPECT_EQ(goro::num_goroutines(), 1);
    constexpr int n = 50;
    goro::wait_group started, gate, finished;
    started.add(n);
    gate.add(1);
    finished.add(n);
    for (int i = 0; i < n; ++i) {
      goro::go([&] {
        started.done();
        gate.wait();
        finished.done();
      });
    }
    // One P, and the main goroutine has not blocked yet: none has run.
    EXPECT_EQ(goro::num_goroutines(), n + 1);
    started.wait();  // now all have run and are blocked
    EXPECT_EQ(goro::num_goroutines(), n + 1);
    gate.done();
    finished.wait();
    EXPECT_TRUE(eventually([] { return goro::num_goroutines() == 1; })) << goro::num_goroutines();
    EXPECT_EQ(goro_test::leaked_goroutines(), "");
  });
  EXPECT_EQ(goro::num_goroutines(), 0);
}

// ----------------------------------------------------------------- scale ---

TEST_P(goroutine_procs, many_goroutines_all_run) {
  run_in(procs(), [] {
    const int total = scaled(100'000, 10'000);
    const int batch = scaled(total, 1'000);  // TSan: bounded live fibers
    std::vector<std::uint8_t> hits(static_cast<std::size_t>(total), 0);
    for (int start = 0; start < total; start += batch) {
      goro::wait_group wg;
      wg.add(batch);
      for (int i = start; i < start + batch; ++i) {
        goro::go([&hits, &wg, i] {
          ++hits[static_cast<std::size_t>(i)];
          wg.done();
        });
      }
      wg.wait();
    }
    EXPECT_EQ(std::count(hits.begin(), hits.end(), std::uint8_t{1}), total);
  });
}

// A million goroutines alive at once, with default settings: far beyond the
// kernel's 65530 memory mappings, so the stacks share mappings (marker slabs
// with guard markers, or canary-checked slabs on kernels without them;
// DESIGN.md idea 4).
TEST(scale, one_million_live_goroutines) {
  const int n = scaled(1'000'000, 2'000);
  goro::run([&] {
    goro::wait_group arrived, gate, finished;
    arrived.add(n);
    gate.add(1);
    finished.add(n);
    for (int i = 0; i < n; ++i) {
      goro::go([&] {
        arrived.done();
        gate.wait();
        finished.done();
      });
    }
    arrived.wait();  // every one of them is alive and parked
    EXPECT_EQ(goro::num_goroutines(), n + 1);
    gate.done();
    finished.wait();
    EXPECT_TRUE(eventually([] { return goro::num_goroutines() == 1; })) << goro::num_goroutines();
    EXPECT_EQ(goro_test::leaked_goroutines(), "");
  });
}

// -------------------------------------------------------------- maxprocs ---

TEST(maxprocs, set_before_run_is_the_default_of_the_next_run) {
  const int before = goro::maxprocs();
  EXPECT_GE(before, 1);
  EXPECT_LE(before, goro::max_maxprocs);
  EXPECT_EQ(goro::set_maxprocs(3), before);
  EXPECT_EQ(goro::maxprocs(), 3);
  goro::run([] { EXPECT_EQ(goro::maxprocs(), 3); });
  EXPECT_EQ(goro::run(goro::run_options{.maxprocs = 2}, [] { return goro::maxprocs(); }), 2);
  EXPECT_EQ(goro::maxprocs(), 3);
  EXPECT_EQ(goro::set_maxprocs(before), 3);
}

TEST(maxprocs, invalid_values_throw_invalid_argument) {
  const int before = goro::maxprocs();
  for (int bad : {0, -1, INT_MIN, goro::max_maxprocs + 1, INT_MAX}) {
    EXPECT_THROW(goro::set_maxprocs(bad), std::invalid_argument) << bad;
  }
  EXPECT_EQ(goro::maxprocs(), before);
  goro::run(goro::run_options{.maxprocs = 2}, [] {
    for (int bad : {0, -7, goro::max_maxprocs + 1}) {
      EXPECT_THROW(goro::set_maxprocs(bad), std::invalid_argument) << bad;
    }
    EXPECT_EQ(goro::maxprocs(), 2);
  });
}

TEST(maxprocs, grow_and_shrink_while_goroutines_run) {
  goro::run(goro::run_options{.maxprocs = 2}, [] {
    const int workers = 16;
    const int steps = scaled(2000, 300);
    std::atomic<std::int64_t> progress{0};
    goro::wait_group wg;
    wg.add(workers);
    for (int w = 0; w < workers; ++w) {
      goro::go([&] {
        for (int s = 0; s < steps; ++s) {
          progress.fetch_add(1, std::memory_order_relaxed);
          goro::yield();
        }
        wg.done();
      });
    }
    int current = 2;
    for (int n : {1, 4, 8, 3, 1, 6, goro::max_maxprocs, 2}) {
      EXPECT_EQ(goro::set_maxprocs(n), current);
      EXPECT_EQ(goro::maxprocs(), n);
      current = n;
      goro::sleep_for(1ms);  // let the workers run a little under n Ps
    }
    wg.wait();
    EXPECT_EQ(progress.load(), std::int64_t{workers} * steps);

    // Shrinking moves goroutines queued on the removed Ps to the others; a
    // change from another goroutine takes effect too.
    goro::set_maxprocs(8);
    const int queued = scaled(2000, 500);
    std::atomic<int> ran{0};
    wg.add(queued + 1);
    for (int i = 0; i < queued; ++i) {
      goro::go([&] {
        ran.fetch_add(1, std::memory_order_relaxed);
        wg.done();
      });
    }
    goro::go([&] {
      EXPECT_EQ(goro::set_maxprocs(1), 8);
      wg.done();
    });
    wg.wait();
    EXPECT_EQ(ran.load(), queued);
    EXPECT_EQ(goro::maxprocs(), 1);
    EXPECT_TRUE(eventually([] { return goro::num_goroutines() == 1; }));
  });
}

}  // namespace
