// goro::pipeline: stages over channels with bounded parallelism, fan-out and
// fan-in, ordered mapping, errors on their own path cancelling the whole
// pipeline, and no goroutine left behind on success, error or cancellation.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <numeric>
#include <stdexcept>
#include <string>
#include <vector>

#include "goro/goro.hpp"
#include "test_util.hpp"

namespace {

using namespace std::chrono_literals;
using goro_test::run_in;
using goro_test::scaled;

class pipeline_procs : public goro_test::procs_test {};
GORO_INSTANTIATE_PROCS(pipeline_procs);

// A source of 1..n.
auto counting(goro::pipeline& p, long n, std::size_t buffer = 0) {
  return p.source<long>(
      "count",
      [n](auto emit) {
        for (long i = 1; i <= n; ++i)
          if (!emit(long{i})) return;
      },
      buffer);
}

TEST_P(pipeline_procs, stages_process_every_value_and_close_down_the_line) {
  run_in(procs(), [] {
    const long n = scaled(20000L, 2000L);
    goro::pipeline p;
    auto squares = p.map("square", counting(p, n), 4, [](long v) { return v * v; });
    auto evens = p.map("evens", squares, 2, [](long v) -> std::optional<long> {
      if (v % 2 != 0) return std::nullopt;  // dropped
      return v;
    });
    long sum = 0, count = 0;
    p.sink("sum", evens, [&](long v) { sum += v, ++count; });
    EXPECT_FALSE(p.wait());
    long want = 0;
    for (long i = 2; i <= n; i += 2) want += i * i;
    EXPECT_EQ(sum, want);
    EXPECT_EQ(count, n / 2);
    EXPECT_EQ(p.running(), 0);
  });
}

TEST_P(pipeline_procs, map_never_runs_more_than_its_parallelism_and_starts_few_for_small_input) {
  run_in(procs(), [] {
    for (int par : {1, 3, 8}) {
      goro::pipeline p;
      std::atomic<int> now{0}, peak{0};
      auto out = p.map("work", counting(p, 200), par, [&](long v) {
        const int k = now.fetch_add(1) + 1;
        int old = peak.load();
        while (k > old && !peak.compare_exchange_weak(old, k)) {
        }
        goro::yield();  // let others start while this one is "working"
        goro::sleep_for(50us);
        now.fetch_sub(1);
        return v;
      });
      long n = 0;
      p.sink("drain", out, [&](long) { ++n; });
      EXPECT_FALSE(p.wait());
      EXPECT_EQ(n, 200);
      EXPECT_LE(peak.load(), par);
      EXPECT_GE(peak.load(), 1);
    }
    // Two values, parallelism 64: at most two workers ever exist.
    goro::pipeline p;
    std::atomic<std::int64_t> most{0};
    auto out = p.map("work", counting(p, 2), 64, [&](long v) {
      const std::int64_t r = p.running();
      std::int64_t old = most.load();
      while (r > old && !most.compare_exchange_weak(old, r)) {
      }
      return v;
    });
    p.sink("drain", out, [](long) {});
    EXPECT_FALSE(p.wait());
    // source + dispatcher + sink + at most 2 workers.
    EXPECT_LE(most.load(), 5);
  });
}

TEST_P(pipeline_procs, map_ordered_keeps_input_order) {
  run_in(procs(), [] {
    goro::pipeline p;
    const long n = scaled(3000L, 500L);
    auto out = p.map_ordered("slow-odd", counting(p, n), 6, [](long v) -> std::optional<long> {
      if (v % 5 == 0) return std::nullopt;
      if (v % 2 != 0) goro::yield();  // finish out of order
      return v * 10;
    });
    std::vector<long> got;
    p.sink("collect", out, [&](long v) { got.push_back(v); });
    EXPECT_FALSE(p.wait());
    std::vector<long> want;
    for (long i = 1; i <= n; ++i)
      if (i % 5 != 0) want.push_back(i * 10);
    EXPECT_EQ(got, want);
  });
}

TEST_P(pipeline_procs, fan_out_and_merge_deliver_every_value_once) {
  run_in(procs(), [] {
    goro::pipeline p;
    const long n = scaled(10000L, 1000L);
    std::vector<goro::recv_chan<long>> branches;
    int b = 0;
    for (auto& part : p.fan_out("split", counting(p, n), 3)) {
      branches.push_back(p.map("branch", part, 1, [b](long v) { return v * 4 + b; }));
      ++b;
    }
    auto all = p.merge("join", branches, 8);
    std::vector<int> seen(static_cast<std::size_t>(n + 1), 0);
    p.sink("check", all, [&](long v) { ++seen[static_cast<std::size_t>(v / 4)]; });
    EXPECT_FALSE(p.wait());
    EXPECT_EQ(std::count(seen.begin() + 1, seen.end(), 1), n);
    EXPECT_EQ(p.merge<long>("empty", {}).recv(), std::nullopt);  // merging nothing: closed at once
  });
}

// An error injected at each stage in turn: wait() rethrows it with the
// stage's name, the source (an endless one) stops, and nothing leaks.
TEST_P(pipeline_procs, the_first_error_at_any_stage_cancels_everything_and_leaks_nothing) {
  run_in(procs(), [] {
    for (const char* bad : {"source", "map", "ordered", "branch", "sink"}) {
      const std::string where = bad;
      std::atomic<long> produced{0};
      goro::pipeline p;
      auto src = p.source<long>("source", [&](auto emit) {
        for (long i = 1;; ++i) {  // endless: only cancellation stops it
          if (where == "source" && i == 500) throw std::runtime_error("bad input at 500");
          produced.fetch_add(1);
          if (!emit(long{i})) return;
        }
      });
      auto mapped = p.map("map", src, 3, [&](long v) {
        if (where == "map" && v == 700) throw std::runtime_error("map failed");
        return v;
      });
      auto ordered = p.map_ordered("ordered", mapped, 2, [&](long v) {
        if (where == "ordered" && v > 300) throw std::invalid_argument("ordered failed");
        return v;
      });
      auto parts = p.fan_out("split", ordered, 2);
      std::vector<goro::recv_chan<long>> branches;
      for (auto& part : parts)
        branches.push_back(p.map("branch", part, 1, [&](long v) {
          if (where == "branch" && v > 900) throw std::runtime_error("branch failed");
          return v;
        }));
      p.sink("sink", p.merge("join", branches), [&](long v) {
        if (where == "sink" && v > 1000) throw std::runtime_error("sink failed");
      });
      try {
        (void)p.wait();
        ADD_FAILURE() << where << ": no error";
      } catch (const goro::pipeline_error& e) {
        EXPECT_EQ(e.stage(), where);
        EXPECT_NE(std::string(e.what()).find(where), std::string::npos) << e.what();
        EXPECT_NE(e.nested_ptr(), nullptr);
      }
      EXPECT_EQ(p.running(), 0) << where;
      EXPECT_TRUE(p.ctx().err()) << where;  // the error cancelled the pipeline
      EXPECT_LT(produced.load(), 1000000) << where;
    }
  });
}

TEST_P(pipeline_procs, cancellation_from_outside_stops_every_stage) {
  run_in(procs(), [] {
    auto [parent, cancel] = goro::with_cancel(goro::background());
    goro::pipeline p(parent);
    auto src = p.source<long>("endless", [](auto emit) {
      for (long i = 0;; ++i)
        if (!emit(long{i})) return;
    });
    std::atomic<long> seen{0};
    p.sink("sink", p.map("id", src, 4, [](long v) { return v; }), [&, cancel = cancel](long) {
      if (seen.fetch_add(1) == 100) cancel();
    });
    EXPECT_EQ(p.wait(), goro::errc::canceled);
    EXPECT_EQ(p.running(), 0);
  });
}

TEST_P(pipeline_procs, destroying_a_running_pipeline_cancels_and_waits) {
  run_in(procs(), [] {
    {
      goro::pipeline p;
      auto src = p.source<long>("endless", [](auto emit) {
        for (long i = 0;; ++i)
          if (!emit(long{i})) return;
      });
      p.sink("slow", p.map("id", src, 2, [](long v) { return v; }), [](long) { goro::yield(); });
      goro::sleep_for(1ms);
    }  // no wait(): the destructor stops and joins every stage
    // run_in's leak check: only the main goroutine is left.
  });
}

TEST(pipeline, parallelism_must_be_positive) {
  run_in(1, [] {
    goro::pipeline p;
    auto src = counting(p, 3);
    EXPECT_THROW(p.map("x", src, 0, [](long v) { return v; }), std::invalid_argument);
    p.sink("drain", src, [](long) {});
    EXPECT_FALSE(p.wait());
  });
}

}  // namespace
