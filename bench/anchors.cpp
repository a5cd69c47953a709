// goro-anchors: the anchor workloads of shared/anchors/go/main.go, in goro.
//
//   goro-anchors <workload> [n]        (n defaults to 1000000)
//
// Same command line and the same one-line output as the Go program
// ("name value unit"), so scripts/compare-go.sh can run both interleaved and
// print goro/Go ratios. Each workload checks its result the way the Go
// program panics on a wrong one, and exits 1 with a message if it is wrong.
//
// Exit codes: 0 ok, 1 wrong result, 2 usage, 3 workload not implemented yet.
//
// Adding a workload: write `int name(long n)` (runs as goro's main goroutine,
// returns the exit code) and put it in the kWorkloads table below.
#include <goro/goro.hpp>

#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cinttypes>
#include <climits>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string_view>
#include <vector>

namespace {

using clock_type = std::chrono::steady_clock;
using namespace std::chrono_literals;

// ---------------------------------------------------------------------------
// Reporting, formatted exactly like Go's report().

// Go: fmt.Printf("%s %.1f ms\n", name, float64(el.Microseconds())/1000)
void report_ms(const char* name, clock_type::time_point start) {
  const auto el = clock_type::now() - start;
  // Go's Duration.Microseconds() truncates toward zero, as duration_cast does.
  const auto us = std::chrono::duration_cast<std::chrono::microseconds>(el).count();
  std::printf("%s %.1f ms\n", name, static_cast<double>(us) / 1000);
  std::fflush(stdout);
}

// Go: fmt.Printf("%s %.1f ns/op\n", name, float64(el.Nanoseconds())/float64(ops))
void report_ns(const char* name, clock_type::time_point start, long ops) {
  const auto el = clock_type::now() - start;
  const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(el).count();
  std::printf("%s %.1f ns/op\n", name, static_cast<double>(ns) / static_cast<double>(ops));
  std::fflush(stdout);
}

int fail(const char* workload, const char* what) {
  std::fprintf(stderr, "%s: %s\n", workload, what);
  return 1;
}

// Resident set size in bytes, from /proc/self/statm (second field, in pages).
// Returns -1 if it cannot be read.
long long resident_bytes() {
  std::FILE* f = std::fopen("/proc/self/statm", "r");
  if (f == nullptr) return -1;
  long long size_pages = 0, resident_pages = 0;
  const int got = std::fscanf(f, "%lld %lld", &size_pages, &resident_pages);
  std::fclose(f);
  if (got != 2) return -1;
  return resident_pages * static_cast<long long>(sysconf(_SC_PAGESIZE));
}

// ---------------------------------------------------------------------------
// Workloads. Each runs as the main goroutine and returns the exit code.

// spawn n goroutines that each signal a wait group; wait.
int spawn(long n) {
  const std::int64_t baseline = goro::num_goroutines();
  goro::wait_group wg;
  const auto start = clock_type::now();
  wg.add(static_cast<int>(n));
  for (long i = 0; i < n; ++i) {
    goro::go([&wg] { wg.done(); });
  }
  wg.wait();
  report_ns("spawn", start, n);

  // Check (outside the timed part) that every goroutine ran to its end: the
  // wait group already guarantees each called done() once (a second call
  // would panic with a negative counter, a missing one would never return);
  // the goroutine count must also come back to where it was.
  const auto deadline = clock_type::now() + 10s;
  std::int64_t alive = goro::num_goroutines();
  while (alive != baseline && clock_type::now() < deadline) {
    goro::yield();
    alive = goro::num_goroutines();
  }
  if (alive != baseline) {
    char msg[160];
    std::snprintf(msg, sizeof msg,
                  "bad goroutine count: %" PRId64 " alive 10 s after wait, expected %" PRId64,
                  alive, baseline);
    return fail("spawn", msg);
  }
  return 0;
}

// 8 goroutines, each n/8 lock/increment/unlock on a shared counter.
int mutex(long n) {
  goro::mutex mu;
  goro::wait_group wg;
  long counter = 0;
  const long per = n / 8;
  const auto start = clock_type::now();
  wg.add(8);
  for (int g = 0; g < 8; ++g) {
    goro::go([&mu, &wg, &counter, per] {
      for (long i = 0; i < per; ++i) {
        mu.lock();
        ++counter;
        mu.unlock();
      }
      wg.done();
    });
  }
  wg.wait();
  if (counter != per * 8) {
    char msg[128];
    std::snprintf(msg, sizeof msg, "bad count: %ld, expected %ld", counter, per * 8);
    return fail("mutex", msg);
  }
  report_ns("mutex", start, n);
  return 0;
}

// n goroutines each sleep (i mod 1000) x 100 us, then signal a wait group.
int timers(long n) {
  goro::wait_group wg;
  // A sample of the goroutines (every 1009th, so all sleep lengths get
  // sampled) checks that its sleep did not end early; only failures touch the
  // shared counter, and the sample is too sparse to cost measurable time.
  std::atomic<long> early{0};
  const auto start = clock_type::now();
  wg.add(static_cast<int>(n));
  for (long i = 0; i < n; ++i) {
    const auto d = std::chrono::microseconds(100) * (i % 1000);
    if (i % 1009 == 0) {
      goro::go([&wg, &early, d] {
        const auto t0 = clock_type::now();
        goro::sleep_for(d);
        if (clock_type::now() - t0 < d) early.fetch_add(1, std::memory_order_relaxed);
        wg.done();
      });
    } else {
      goro::go([&wg, d] {
        goro::sleep_for(d);
        wg.done();
      });
    }
  }
  wg.wait();
  const auto elapsed = clock_type::now() - start;
  if (early.load() != 0) {
    char msg[128];
    std::snprintf(msg, sizeof msg, "%ld sampled sleeps returned early", early.load());
    return fail("timers", msg);
  }
  // The longest sleep (999 x 100 us when n >= 1000) bounds the whole run.
  const long longest = (n >= 1000 ? 999 : n - 1);
  if (elapsed < std::chrono::microseconds(100) * longest) {
    return fail("timers", "finished before the longest sleep could have ended");
  }
  report_ms("timers", start);
  return 0;
}

struct token {};  // Go's struct{}

// n goroutines parked on a channel receive; resident memory growth per
// goroutine (Go's figure is runtime.MemStats.Sys growth).
int idle_mem(long n) {
  goro::wait_group ready;
  goro::chan<token> block = goro::make_chan<token>();
  const std::int64_t baseline = goro::num_goroutines();
  const long long before = resident_bytes();
  if (before < 0) return fail("idle_mem", "cannot read /proc/self/statm");
  ready.add(static_cast<int>(n));
  for (long i = 0; i < n; ++i) {
    goro::go([&ready, block] {
      ready.done();
      (void)block.recv();
    });
  }
  ready.wait();
  const long long after = resident_bytes();
  if (after < 0) return fail("idle_mem", "cannot read /proc/self/statm");
  const std::int64_t alive = goro::num_goroutines();
  if (alive < baseline + n) {
    char msg[160];
    std::snprintf(msg, sizeof msg,
                  "bad goroutine count: %" PRId64 " alive, expected at least %" PRId64, alive,
                  baseline + static_cast<std::int64_t>(n));
    block.close();
    return fail("idle_mem", msg);
  }
  // Go: fmt.Printf("idle_mem %.0f bytes/goroutine\n", float64(ms.Sys-before)/float64(n))
  std::printf("idle_mem %.0f bytes/goroutine\n",
              static_cast<double>(after - before) / static_cast<double>(n));
  std::fflush(stdout);
  block.close();
  return 0;
}

// A tree of 1,111,111 goroutines (the size is fixed, as in Go: n is not
// used), ten children each; leaves send their number up unbuffered channels.
void skynet_node(goro::send_chan<std::int64_t> out, std::int64_t num, std::int64_t size,
                 std::int64_t div) {
  if (size == 1) {
    out.send(num);
    return;
  }
  goro::chan<std::int64_t> rc = goro::make_chan<std::int64_t>();
  for (std::int64_t i = 0; i < div; ++i) {
    const std::int64_t sub = num + i * (size / div);
    goro::go([rc, sub, size, div] { skynet_node(rc, sub, size / div, div); });
  }
  std::int64_t sum = 0;
  for (std::int64_t i = 0; i < div; ++i) sum += *rc.recv();
  out.send(sum);
}

int skynet(long) {
  const auto start = clock_type::now();
  goro::chan<std::int64_t> c = goro::make_chan<std::int64_t>();
  goro::go([c] { skynet_node(c, 0, 1000000, 10); });
  const std::int64_t r = *c.recv();
  if (r != 499999500000) return fail("skynet", "bad sum");
  report_ms("skynet", start);
  return 0;
}

// Two goroutines exchange a value over two unbuffered channels n times.
int pingpong(long n) {
  goro::chan<long> a = goro::make_chan<long>();
  goro::chan<long> b = goro::make_chan<long>();
  goro::go([a, b] {
    for (long v : a) b.send(v);
    b.close();
  });
  const auto start = clock_type::now();
  for (long i = 0; i < n; ++i) {
    a.send(i);
    if (*b.recv() != i) return fail("pingpong", "bad value");
  }
  report_ns("pingpong", start, n);
  a.close();
  return 0;
}

// One producer, one consumer, capacity 1024; close and drain by range.
int spsc_buffered(long n) {
  goro::chan<long> ch = goro::make_chan<long>(1024);
  const auto start = clock_type::now();
  goro::go([ch, n] {
    for (long i = 0; i < n; ++i) ch.send(i);
    ch.close();
  });
  long expect = 0;
  for (long v : ch) {
    if (v != expect) return fail("spsc_buffered", "out of order");
    ++expect;
  }
  report_ns("spsc_buffered", start, n);
  if (expect != n) return fail("spsc_buffered", "lost values");
  return 0;
}

// 4 producers and 4 consumers on one channel of capacity 128.
int mpmc(long n) {
  goro::chan<long> ch = goro::make_chan<long>(128);
  goro::wait_group wg;
  goro::mutex mu;
  std::int64_t total = 0;
  const long per = n / 4;
  const auto start = clock_type::now();
  for (int p = 0; p < 4; ++p) {
    goro::go([ch, per] {
      for (long i = 0; i < per; ++i) ch.send(i);
    });
  }
  wg.add(4);
  for (int c = 0; c < 4; ++c) {
    goro::go([ch, per, &wg, &mu, &total] {
      std::int64_t s = 0;
      for (long i = 0; i < per; ++i) s += *ch.recv();
      mu.lock();
      total += s;
      mu.unlock();
      wg.done();
    });
  }
  wg.wait();
  report_ns("mpmc", start, per * 4);
  if (total != 4 * (static_cast<std::int64_t>(per) * (per - 1) / 2)) return fail("mpmc", "bad sum");
  return 0;
}

// One consumer selects over two buffered channels fed by two producers.
int select2(long n) {
  goro::chan<long> c1 = goro::make_chan<long>(16);
  goro::chan<long> c2 = goro::make_chan<long>(16);
  const long half = n / 2;
  goro::go([c1, half] {
    for (long i = 0; i < half; ++i) c1.send(i);
  });
  goro::go([c2, half] {
    for (long i = 0; i < half; ++i) c2.send(i);
  });
  long got1 = 0, got2 = 0;
  const auto start = clock_type::now();
  for (long i = 0; i < 2 * half; ++i) {
    goro::select(goro::on_recv(c1, [&] { ++got1; }), goro::on_recv(c2, [&] { ++got2; }));
  }
  report_ns("select2", start, 2 * half);
  if (got1 != half || got2 != half) return fail("select2", "bad counts");
  return 0;
}

// ---------------------------------------------------------------------------
// Beyond the shared anchors: twins in bench/go/ (same names and output).

// A tree of n cancellable contexts (fan-out 10 under the root, breadth
// first), cancelled from the root; every node must then be done.
int ctx_tree(long n) {
  const auto start = clock_type::now();
  auto [root, cancel] = goro::with_cancel(goro::background());
  std::vector<goro::context> nodes;
  std::vector<goro::cancel_func> cancels;  // kept: dropping one cancels its node
  nodes.reserve(static_cast<std::size_t>(n));
  cancels.reserve(static_cast<std::size_t>(n));
  nodes.push_back(root);
  for (long i = 1; i < n; ++i) {
    auto [c, cf] = goro::with_cancel(nodes[static_cast<std::size_t>((i - 1) / 10)]);
    nodes.push_back(std::move(c));
    cancels.push_back(std::move(cf));
  }
  cancel();
  for (const goro::context& c : nodes) {
    (void)c.done().recv();
    if (c.err() != goro::errc::canceled) return fail("ctx_tree", "a node was not cancelled");
  }
  report_ms("ctx_tree", start);
  return 0;
}

// n iterations of a select between a ready channel and a fresh after(1h):
// the per-iteration timeout loop of Go programs.
int fresh_timeout(long n) {
  goro::chan<long> ready = goro::make_chan<long>(1);
  long got = 0;
  bool fired = false;
  const auto start = clock_type::now();
  for (long i = 0; i < n; ++i) {
    ready.send(long{i});
    goro::select(goro::on_recv(ready, [&] { ++got; }),
                 goro::on_recv(goro::after(1h), [&] { fired = true; }));
  }
  report_ns("fresh_timeout", start, n);
  if (fired) return fail("fresh_timeout", "the timeout fired");
  if (got != n) return fail("fresh_timeout", "lost a value");
  return 0;
}

// ---------------------------------------------------------------------------
// The table: name -> workload (null: needs goro channels, not there yet).

struct workload {
  const char* name;
  int (*fn)(long n);
};

constexpr workload kWorkloads[] = {
    {"skynet", &skynet},
    {"pingpong", &pingpong},
    {"spsc_buffered", &spsc_buffered},
    {"mpmc", &mpmc},
    {"select2", &select2},
    {"spawn", &spawn},
    {"mutex", &mutex},
    {"timers", &timers},
    {"idle_mem", &idle_mem},
    {"ctx_tree", &ctx_tree},
    {"fresh_timeout", &fresh_timeout},
};

int usage(const char* argv0) {
  std::fprintf(stderr, "usage: %s <workload> [n]   (n defaults to 1000000)\nworkloads:", argv0);
  for (const workload& w : kWorkloads) {
    std::fprintf(stderr, " %s%s", w.name, w.fn != nullptr ? "" : "(not yet)");
  }
  std::fprintf(stderr, "\n");
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  const char* argv0 = argc > 0 ? argv[0] : "goro-anchors";
  if (argc < 2 || argc > 3) return usage(argv0);

  const workload* w = nullptr;
  for (const workload& cand : kWorkloads) {
    if (std::string_view(argv[1]) == cand.name) w = &cand;
  }
  if (w == nullptr) {
    std::fprintf(stderr, "%s: unknown workload '%s'\n", argv0, argv[1]);
    return usage(argv0);
  }

  long n = 1000000;
  if (argc == 3) {
    char* end = nullptr;
    errno = 0;
    const long v = std::strtol(argv[2], &end, 10);
    // wait_group::add takes an int, so n must fit one.
    if (errno != 0 || end == argv[2] || *end != '\0' || v < 1 || v > INT_MAX) {
      std::fprintf(stderr, "%s: n must be an integer in [1, %d], got '%s'\n", argv0, INT_MAX,
                   argv[2]);
      return usage(argv0);
    }
    n = v;
  }

  if (w->fn == nullptr) {
    std::fprintf(stderr, "%s: needs goro channels (not implemented yet)\n", w->name);
    return 3;
  }

  auto* fn = w->fn;
  return goro::run([fn, n]() -> int { return fn(n); });
}
