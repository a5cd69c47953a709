// goro-syncbench: the sync toolbox's workloads, beside their Go twins in
// bench/go/main.go (same names, same command line, same one-line output
// "name value unit"), so scripts/compare-go.sh runs both interleaved.
//
//   goro-syncbench <workload> [n]      (n defaults to 1000000)
//
// Workloads (8 goroutines share the work, as the anchors' mutex workload):
//   rw_read_heavy  n operations on one rw_mutex: 99% read lock / read /
//                  unlock, 1% write lock / increment / unlock; ns/op
//   pool_getput    n get/put pairs on one pool of 1 KiB buffers; ns/op
//   once_fast      100n calls of once.call on a once that is done; ns/op
//   sem_acqrel     n acquire(1)/release(1) pairs on a semaphore of size 4;
//                  ns/op
//   errgroup_spawn n tasks started with errgroup::go (one group), then
//                  wait(); ns/op
//
// Exit codes: 0 ok, 1 wrong result, 2 usage.
#include <goro/goro.hpp>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>

namespace {

using clock_type = std::chrono::steady_clock;
constexpr int workers = 8;

// Go: fmt.Printf("%s %.1f ns/op\n", name, float64(el.Nanoseconds())/float64(ops))
void report_ns(const char* name, clock_type::time_point start, long ops) {
  const auto ns =
      std::chrono::duration_cast<std::chrono::nanoseconds>(clock_type::now() - start).count();
  std::printf("%s %.2f ns/op\n", name, static_cast<double>(ns) / static_cast<double>(ops));
  std::fflush(stdout);
}

int fail(const char* workload, const char* what) {
  std::fprintf(stderr, "%s: %s\n", workload, what);
  return 1;
}

int rw_read_heavy(long n) {
  // Separate cache lines, as Go's escape analysis puts them in separate heap
  // objects: a reader's load of value must not contend with the lock word.
  alignas(64) goro::rw_mutex rw;
  alignas(64) long value = 0;  // guarded by rw
  std::atomic<long> seen{0};
  goro::wait_group wg;
  const long per = n / workers;
  const auto start = clock_type::now();
  wg.add(workers);
  for (int g = 0; g < workers; ++g) {
    goro::go([&, per] {
      long local = 0;
      for (long i = 0; i < per; ++i) {
        if (i % 100 == 0) {
          rw.lock();
          ++value;
          rw.unlock();
        } else {
          rw.lock_shared();
          local += value;
          rw.unlock_shared();
        }
      }
      seen.fetch_add(local, std::memory_order_relaxed);
      wg.done();
    });
  }
  wg.wait();
  report_ns("rw_read_heavy", start, per * workers);
  const long writes = workers * ((per + 99) / 100);
  if (value != writes) return fail("rw_read_heavy", "lost a write");
  return 0;
}

struct buffer {
  char bytes[1024];
};

int pool_getput(long n) {
  goro::pool<buffer> p([] { return std::make_unique<buffer>(); });
  std::atomic<long> sum{0};
  goro::wait_group wg;
  const long per = n / workers;
  const auto start = clock_type::now();
  wg.add(workers);
  for (int g = 0; g < workers; ++g) {
    goro::go([&, per] {
      long local = 0;
      for (long i = 0; i < per; ++i) {
        std::unique_ptr<buffer> b = p.get();
        b->bytes[0] = static_cast<char>(i);
        local += b->bytes[0];
        p.put(std::move(b));
      }
      sum.fetch_add(local, std::memory_order_relaxed);
      wg.done();
    });
  }
  wg.wait();
  report_ns("pool_getput", start, per * workers);
  return 0;
}

int once_fast(long n) {
  goro::once o;
  std::atomic<int> runs{0};
  o.call([&] { runs.fetch_add(1); });
  goro::wait_group wg;
  const long per = n * 100 / workers;
  const auto start = clock_type::now();
  wg.add(workers);
  for (int g = 0; g < workers; ++g) {
    goro::go([&, per] {
      for (long i = 0; i < per; ++i) o.call([&] { runs.fetch_add(1); });
      wg.done();
    });
  }
  wg.wait();
  report_ns("once_fast", start, per * workers);
  if (runs.load() != 1) return fail("once_fast", "f ran more than once");
  return 0;
}

int sem_acqrel(long n) {
  goro::semaphore sem(4);
  std::atomic<long> inside{0};
  std::atomic<bool> bad{false};
  goro::wait_group wg;
  const long per = n / workers;
  const auto start = clock_type::now();
  wg.add(workers);
  for (int g = 0; g < workers; ++g) {
    goro::go([&, per] {
      for (long i = 0; i < per; ++i) {
        sem.acquire(1);
        if (inside.fetch_add(1, std::memory_order_relaxed) >= 4) bad.store(true);
        inside.fetch_sub(1, std::memory_order_relaxed);
        sem.release(1);
      }
      wg.done();
    });
  }
  wg.wait();
  report_ns("sem_acqrel", start, per * workers);
  if (bad.load()) return fail("sem_acqrel", "more than 4 inside");
  return 0;
}

int errgroup_spawn(long n) {
  std::atomic<long> ran{0};
  const auto start = clock_type::now();
  goro::errgroup g;
  for (long i = 0; i < n; ++i) g.go([&] { ran.fetch_add(1, std::memory_order_relaxed); });
  const std::error_code ec = g.wait();
  report_ns("errgroup_spawn", start, n);
  if (ec || ran.load() != n) return fail("errgroup_spawn", "a task did not run");
  return 0;
}

struct workload {
  const char* name;
  int (*fn)(long n);
};

constexpr workload kWorkloads[] = {
    {"rw_read_heavy", &rw_read_heavy},   {"pool_getput", &pool_getput},
    {"once_fast", &once_fast},           {"sem_acqrel", &sem_acqrel},
    {"errgroup_spawn", &errgroup_spawn},
};

int usage(const char* argv0) {
  std::fprintf(stderr, "usage: %s <workload> [n]   (n defaults to 1000000)\nworkloads:", argv0);
  for (const workload& w : kWorkloads) std::fprintf(stderr, " %s", w.name);
  std::fprintf(stderr, "\n");
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  const char* argv0 = argc > 0 ? argv[0] : "goro-syncbench";
  if (argc < 2 || argc > 3) return usage(argv0);
  long n = 1000000;
  if (argc == 3) {
    char* end = nullptr;
    n = std::strtol(argv[2], &end, 10);
    if (end == argv[2] || *end != '\0' || n < workers) return usage(argv0);
  }
  for (const workload& w : kWorkloads) {
    if (std::strcmp(w.name, argv[1]) != 0) continue;
    int rc = 0;
    goro::run([&] { rc = w.fn(n); });
    return rc;
  }
  return usage(argv0);
}
