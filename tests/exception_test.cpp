// C++ exceptions inside goroutines. A goroutine may block anywhere (inside a
// try block, inside a catch block, in a destructor running during unwinding)
// and resume on another thread; the C++ runtime keeps the chain of caught
// exceptions and the uncaught count per thread, so goro saves and restores
// them per goroutine (DESIGN.md idea 3). These tests check that a goroutine
// sees its own exception state and never another's.
#include <gtest/gtest.h>

#include <atomic>
#include <exception>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "goro/goro.hpp"
#include "test_util.hpp"

namespace {

using namespace std::chrono_literals;
using goro_test::run_in;
using goro_test::scaled;

class exception_procs : public goro_test::procs_test {};
GORO_INSTANTIATE_PROCS(exception_procs);

/// what() of the exception ep holds, "<none>" for a null ep.
std::string what_of(const std::exception_ptr& ep) {
  if (!ep) return "<none>";
  try {
    std::rethrow_exception(ep);
  } catch (const std::exception& e) {
    return e.what();
  } catch (...) {
    return "<not a std::exception>";
  }
}

/// Throws runtime_error(msg) from `depth` frames down, yielding in each frame
/// on the way down.
[[gnu::noinline]] void throw_from_depth(int depth, const std::string& msg, int& frames_unwound) {
  struct counts_unwinding {
    int& n;
    ~counts_unwinding() { ++n; }
  } guard{frames_unwound};
  goro::yield();
  if (depth == 0) throw std::runtime_error(msg);
  throw_from_depth(depth - 1, msg, frames_unwound);
}

TEST_P(exception_procs, thrown_and_caught_across_yields_and_sleeps) {
  run_in(procs(), [] {
    const int n = scaled(200, 50);
    std::atomic<int> good{0};
    goro::wait_group wg;
    wg.add(n);
    for (int i = 0; i < n; ++i) {
      goro::go([&, i] {
        const std::string mine = goro_test::numbered("goroutine ", i);
        bool ok = true;
        try {
          goro::yield();
          goro::sleep_for(std::chrono::microseconds(50 * (i % 5)));
          throw std::runtime_error(mine);
        } catch (const std::runtime_error& e) {
          ok = ok && e.what() == mine;
        }
        // Through several frames, each of which blocked.
        int unwound = 0;
        try {
          throw_from_depth(5, mine + "/deep", unwound);
          ok = false;
        } catch (const std::runtime_error& e) {
          ok = ok && e.what() == mine + "/deep" && unwound == 6;
        }
        ok = ok && !std::current_exception() && std::uncaught_exceptions() == 0;
        if (ok) good.fetch_add(1);
        wg.done();
      });
    }
    wg.wait();
    EXPECT_EQ(good.load(), n);
    EXPECT_FALSE(std::current_exception());
  });
}

TEST_P(exception_procs, exception_ptr_moves_between_goroutines) {
  run_in(procs(), [] {
    std::exception_ptr ep;
    std::string seen;
    goro::wait_group wg;
    wg.add(1);
    goro::go([&] {
      try {
        throw std::out_of_range("carried");
      } catch (...) {
        goro::yield();
        ep = std::current_exception();
      }
      wg.done();
    });
    wg.wait();
    wg.add(1);
    goro::go([&] {
      try {
        goro::yield();
        std::rethrow_exception(ep);
      } catch (const std::out_of_range& e) {
        seen = e.what();
      }
      wg.done();
    });
    wg.wait();
    EXPECT_EQ(seen, "carried");
  });
}

// Two goroutines, each blocked inside its own catch block while the other
// runs (on one P: on the same thread), in a fixed interleaving:
//   A catches "A", blocks;  B checks it has no exception, catches "B",
//   blocks;  A resumes, still sees "A", rethrows it and catches it again;
//   B resumes, still sees "B", rethrows it and catches it again.
TEST_P(exception_procs, blocking_inside_a_catch_block_keeps_the_current_exception) {
  run_in(procs(), [] {
    goro::wait_group a_in_catch, b_in_catch, a_finished, all;
    a_in_catch.add(1);
    b_in_catch.add(1);
    a_finished.add(1);
    all.add(2);

    goro::go([&] {  // A
      try {
        throw std::runtime_error("A");
      } catch (...) {
        a_in_catch.done();
        b_in_catch.wait();
        goro::yield();
        goro::sleep_for(1ms);
        EXPECT_EQ(what_of(std::current_exception()), "A");
        EXPECT_EQ(std::uncaught_exceptions(), 0);
        try {
          throw;
        } catch (const std::runtime_error& e) {
          EXPECT_STREQ(e.what(), "A");
          goro::yield();  // blocked two handlers deep
          EXPECT_EQ(what_of(std::current_exception()), "A");
        }
        EXPECT_EQ(what_of(std::current_exception()), "A");
        a_finished.done();
      }
      EXPECT_FALSE(std::current_exception());
      all.done();
    });

    goro::go([&] {  // B
      a_in_catch.wait();
      // A sits in a catch block, possibly parked on this very thread: none of
      // that is B's.
      EXPECT_FALSE(std::current_exception());
      EXPECT_EQ(std::uncaught_exceptions(), 0);
      try {
        throw std::logic_error("B");
      } catch (...) {
        b_in_catch.done();
        a_finished.wait();
        goro::sleep_for(1ms);
        EXPECT_EQ(what_of(std::current_exception()), "B");
        try {
          throw;
        } catch (const std::logic_error& e) {
          EXPECT_STREQ(e.what(), "B");
        }
      }
      EXPECT_FALSE(std::current_exception());
      all.done();
    });

    all.wait();
    EXPECT_FALSE(std::current_exception());  // the main goroutine never had one
  });
}

// The main goroutine blocks in a handler while others throw and catch.
TEST_P(exception_procs, main_goroutine_blocks_inside_a_catch_block) {
  run_in(procs(), [] {
    try {
      throw std::runtime_error("main's");
    } catch (...) {
      const int n = scaled(100, 50);
      goro::wait_group wg;
      wg.add(n);
      for (int i = 0; i < n; ++i) {
        goro::go([&wg] {
          EXPECT_FALSE(std::current_exception());
          try {
            throw std::logic_error("worker's");
          } catch (const std::logic_error&) {
            goro::yield();
          }
          wg.done();
        });
      }
      wg.wait();
      goro::sleep_for(1ms);
      EXPECT_EQ(what_of(std::current_exception()), "main's");
      try {
        throw;
      } catch (const std::runtime_error& e) {
        EXPECT_STREQ(e.what(), "main's");
      }
    }
    EXPECT_FALSE(std::current_exception());
  });
}

// A destructor that runs during unwinding, and blocks there.
struct blocking_probe {
  goro::wait_group* entered;
  goro::wait_group* proceed;
  int* before;
  int* after;
  ~blocking_probe() {
    *before = std::uncaught_exceptions();
    entered->done();
    proceed->wait();
    goro::yield();
    goro::sleep_for(1ms);
    *after = std::uncaught_exceptions();
  }
};

// A destructor that records std::uncaught_exceptions() without blocking.
struct counting_probe {
  int* seen;
  ~counting_probe() { *seen = std::uncaught_exceptions(); }
};

TEST_P(exception_procs, uncaught_exceptions_is_per_goroutine) {
  run_in(procs(), [] {
    goro::wait_group entered, proceed, all;
    entered.add(1);
    proceed.add(1);
    all.add(2);
    int a_before = -1, a_after = -1, b_idle = -1, b_unwinding = -1;
    std::string a_caught;

    goro::go([&] {  // A: blocks in a destructor in the middle of unwinding
      try {
        blocking_probe probe{&entered, &proceed, &a_before, &a_after};
        throw std::runtime_error("unwinding A");
      } catch (const std::runtime_error& e) {
        a_caught = e.what();
      }
      EXPECT_EQ(std::uncaught_exceptions(), 0);
      all.done();
    });

    goro::go([&] {  // B: runs while A is parked mid-unwind
      entered.wait();
      b_idle = std::uncaught_exceptions();
      try {
        counting_probe probe{&b_unwinding};
        throw std::logic_error("unwinding B");
      } catch (const std::logic_error&) {
      }
      proceed.done();
      all.done();
    });

    all.wait();
    EXPECT_EQ(a_before, 1);
    EXPECT_EQ(a_after, 1) << "A lost its uncaught exception while blocked";
    EXPECT_EQ(a_caught, "unwinding A");
    EXPECT_EQ(b_idle, 0) << "B saw A's uncaught exception";
    EXPECT_EQ(b_unwinding, 1) << "B's count included A's exception";
    EXPECT_EQ(std::uncaught_exceptions(), 0);
  });
}

// Everything at once, on 4 Ps: many goroutines, all blocked inside handlers at
// the same moment, resumed in arbitrary order on arbitrary threads.
TEST(exception, many_goroutines_block_inside_handlers_on_four_ps) {
  run_in(4, [] {
    const int n = scaled(2000, 500);
    std::atomic<int> good{0};
    std::atomic<int> migrated{0};
    goro::wait_group in_handler, release, done;
    in_handler.add(n);
    release.add(1);
    done.add(n);
    for (int i = 0; i < n; ++i) {
      goro::go([&, i] {
        const std::string mine = goro_test::numbered("g", i);
        bool ok = true;
        int unwinding_seen = -1;
        try {
          try {
            throw std::runtime_error(mine);
          } catch (...) {
            const auto thread_before = std::this_thread::get_id();
            in_handler.done();
            release.wait();  // every goroutine is inside a handler now
            goro::yield();
            goro::sleep_for(std::chrono::microseconds(100 * (i % 5)));
            if (std::this_thread::get_id() != thread_before) migrated.fetch_add(1);
            ok = ok && what_of(std::current_exception()) == mine;
            ok = ok && std::uncaught_exceptions() == 0;
            try {
              throw std::out_of_range(mine + "/inner");
            } catch (const std::out_of_range& e) {
              goro::yield();
              ok = ok && e.what() == mine + "/inner";
              ok = ok && what_of(std::current_exception()) == mine + "/inner";
            }
            ok = ok && what_of(std::current_exception()) == mine;  // back to the outer one
            counting_probe probe{&unwinding_seen};
            throw;  // to the enclosing handler, through probe's destructor
          }
        } catch (const std::runtime_error& e) {
          goro::yield();
          ok = ok && e.what() == mine;
        }
        ok = ok && unwinding_seen == 1;
        ok = ok && !std::current_exception() && std::uncaught_exceptions() == 0;
        if (ok) good.fetch_add(1);
        done.done();
      });
    }
    in_handler.wait();
    release.done();
    done.wait();
    EXPECT_EQ(good.load(), n);
    // Not guaranteed, so only reported: how many resumed on another thread.
    ::testing::Test::RecordProperty("migrated", migrated.load());
  });
}

}  // namespace
