// goro-ring-mpmc: the experiment behind PERFORMANCE.md's "lock-free ring for
// mpmc" (fourth session). mpmc's shape (4 producers, 4 consumers, capacity
// 128, n values in all) over a bounded lock-free ring instead of a goro
// channel, to measure what a lock-free core for buffered channels could
// gain before writing one.
//
//   goro-ring-mpmc yield [n]   wait by goro::yield() when full or empty
//   goro-ring-mpmc spin [n]    spin 100 pauses (about 2 us here), then yield
//
// Prints `ring_mpmc_<mode> <ns> ns/op`. Not a channel: no parking, no close,
// no select; a waiting goroutine keeps its P.
//
// The ring is Dmitry Vyukov's bounded MPMC queue. Invariants: slot i's stamp
// is i + k*cap when the slot is free for the k-th lap's producer, and that
// value + 1 once the value is in it. A producer claims position t by CAS on
// tail when slot t % cap has stamp t, writes the value, then publishes it
// with a release store of stamp t + 1, which pairs with the consumer's
// acquire load of that stamp. A consumer claims position h by CAS on head
// when the stamp is h + 1, reads the value, then frees the slot for the next
// lap with a release store of h + cap, which pairs with the producer's
// acquire load. head and tail live on separate cache lines.
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>

#include "goro/goro.hpp"

namespace {

class ring {
 public:
  explicit ring(std::size_t cap) : cap_(cap), slots_(new slot[cap]) {
    for (std::size_t i = 0; i < cap; ++i) slots_[i].stamp.store(i, std::memory_order_relaxed);
  }

  bool try_push(long v) noexcept {
    std::uint64_t t = tail_.load(std::memory_order_relaxed);
    for (;;) {
      slot& s = slots_[t % cap_];
      const std::uint64_t stamp = s.stamp.load(std::memory_order_acquire);
      if (stamp == t) {
        if (tail_.compare_exchange_weak(t, t + 1, std::memory_order_relaxed)) {
          s.value = v;
          s.stamp.store(t + 1, std::memory_order_release);
          return true;
        }
      } else if (stamp < t) {
        return false;  // full: the slot still holds last lap's value
      } else {
        t = tail_.load(std::memory_order_relaxed);
      }
    }
  }

  bool try_pop(long& v) noexcept {
    std::uint64_t h = head_.load(std::memory_order_relaxed);
    for (;;) {
      slot& s = slots_[h % cap_];
      const std::uint64_t stamp = s.stamp.load(std::memory_order_acquire);
      if (stamp == h + 1) {
        if (head_.compare_exchange_weak(h, h + 1, std::memory_order_relaxed)) {
          v = s.value;
          s.stamp.store(h + cap_, std::memory_order_release);
          return true;
        }
      } else if (stamp < h + 1) {
        return false;  // empty: this lap's value has not arrived
      } else {
        h = head_.load(std::memory_order_relaxed);
      }
    }
  }

 private:
  struct slot {
    std::atomic<std::uint64_t> stamp;
    long value;
  };
  const std::size_t cap_;
  std::unique_ptr<slot[]> slots_;
  alignas(64) std::atomic<std::uint64_t> tail_{0};
  alignas(64) std::atomic<std::uint64_t> head_{0};
};

// Retries op until it succeeds, spinning `spins` pauses between yields.
template <class Op>
void wait_for(Op op, int spins) {
  for (int i = 0; !op(); ++i) {
    if (i < spins) {
#if defined(__x86_64__)
      __builtin_ia32_pause();
#endif
    } else {
      goro::yield();
      i = 0;
    }
  }
}

int run_mode(const char* mode, int spins, long n) {
  int rc = 0;
  goro::run([&] {
    ring r(128);
    goro::wait_group wg;
    std::atomic<std::int64_t> total{0};
    const long per = n / 4;
    const auto start = std::chrono::steady_clock::now();
    wg.add(8);
    for (int p = 0; p < 4; ++p) {
      goro::go([&r, &wg, per, spins] {
        for (long i = 0; i < per; ++i) wait_for([&] { return r.try_push(i); }, spins);
        wg.done();
      });
    }
    for (int c = 0; c < 4; ++c) {
      goro::go([&r, &wg, &total, per, spins] {
        std::int64_t sum = 0;
        long v = 0;
        for (long i = 0; i < per; ++i) {
          wait_for([&] { return r.try_pop(v); }, spins);
          sum += v;
        }
        total.fetch_add(sum, std::memory_order_relaxed);
        wg.done();
      });
    }
    wg.wait();
    const double ns =
        std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - start).count() /
        static_cast<double>(per * 4);
    if (total.load() != 4 * (static_cast<std::int64_t>(per) * (per - 1) / 2)) {
      std::fprintf(stderr, "ring_mpmc: bad sum\n");
      rc = 1;
      return;
    }
    std::printf("ring_mpmc_%s %.1f ns/op\n", mode, ns);
  });
  return rc;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2 || argc > 3 ||
      (std::strcmp(argv[1], "yield") != 0 && std::strcmp(argv[1], "spin") != 0)) {
    std::fprintf(stderr, "usage: %s yield|spin [n]   (n defaults to 1000000)\n",
                 argc > 0 ? argv[0] : "goro-ring-mpmc");
    return 2;
  }
  const long n = argc == 3 ? std::atol(argv[2]) : 1000000;
  if (n < 4) {
    std::fprintf(stderr, "goro-ring-mpmc: n must be at least 4\n");
    return 2;
  }
  const bool spin = std::strcmp(argv[1], "spin") == 0;
  return run_mode(argv[1], spin ? 100 : 0, n);
}
