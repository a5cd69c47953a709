// Channels (goro/chan.hpp, Go's chan T): blocking and buffering, FIFO order,
// close, nil channels, non-blocking and timed operations, directional views,
// element types (move-only, no default constructor, 4 KiB, over-aligned,
// zero-size), value lifetimes, memory ordering, and plain threads mixed with
// goroutines. select has its own file, select_test.cpp.
//
// Ported Go tests name their source: go/src/runtime/chan_test.go and the
// programs of go/test/chan/. Two white-box helpers keep the tests free of
// sleeps: queued() counts the operations waiting in a channel's queues
// (chan/chan_core.hpp), so a test knows an operation is blocked rather than
// hoping it is; and the blocks-forever test reads a goroutine's status
// (runtime/sched.hpp) to see it parked.
#include <gtest/gtest.h>

#include <algorithm>
#include <any>
#include <array>
#include <atomic>
#include <chrono>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "chan/chan_core.hpp"
#include "goro/goro.hpp"
#include "platform/race.hpp"
#include "runtime/sched.hpp"
#include "test_util.hpp"

namespace {

using namespace std::chrono_literals;
using goro::chan_status;
using goro::make_chan;
using goro_test::eventually;
using goro_test::run_in;
using goro_test::scaled;

class chan_procs : public goro_test::procs_test {};
GORO_INSTANTIATE_PROCS(chan_procs);

// Go's TestChan runs capacities 0..199; a sample covers the same shapes
// (unbuffered, tiny, wrapping, large) at a fraction of the time.
constexpr std::array<std::size_t, 8> capacities{0, 1, 2, 3, 5, 10, 50, 100};

// ------------------------------------------------------------- helpers ---

/// Operations waiting in the send (senders = true) or receive queue of the
/// channel behind h. White-box: read under the channel's lock.
template <class H>
std::size_t queued(const H& h, bool senders) GORO_NO_TSA {
  // The runtime is uninstrumented under TSan: its lock orders nothing that
  // TSan sees, so the peek at waiter records must not be checked either.
  const goro::detail::race_ignore unchecked;
  goro::detail::chan_core* c = h.core();
  c->lock.lock();
  std::size_t n = 0;
  for (const goro::detail::chan_waiter* w = senders ? c->sendq.first : c->recvq.first; w != nullptr;
       w = w->next)
    ++n;
  c->lock.unlock();
  return n;
}

/// Waits (bounded) until exactly n receivers are blocked on h.
template <class H>
[[nodiscard]] bool await_receivers(const H& h, std::size_t n) {
  return eventually([&] { return queued(h, false) == n; });
}

/// Waits (bounded) until exactly n senders are blocked on h.
template <class H>
[[nodiscard]] bool await_senders(const H& h, std::size_t n) {
  return eventually([&] { return queued(h, true) == n; });
}

/// A value that counts its live instances and notices double destruction.
/// No default constructor.
struct tracked {
  static inline std::atomic<long> live{0};
  static inline std::atomic<long> bad{0};  // destroyed twice, or moved from when dead
  static constexpr std::uint32_t alive = 0xA11CE5u;
  static constexpr std::uint32_t dead = 0xDEADu;
  static constexpr int moved_from = -1;

  int value;
  std::atomic<std::uint32_t> magic{alive};  // atomic: the store in the destructor stays

  explicit tracked(int v) noexcept : value(v) { live.fetch_add(1); }
  tracked(const tracked& o) noexcept : value(o.value) {
    check(o);
    live.fetch_add(1);
  }
  tracked(tracked&& o) noexcept : value(std::exchange(o.value, moved_from)) {
    check(o);
    live.fetch_add(1);
  }
  tracked& operator=(tracked&& o) noexcept {
    check(o);
    value = std::exchange(o.value, moved_from);
    return *this;
  }
  tracked& operator=(const tracked&) = delete;
  ~tracked() {
    if (magic.exchange(dead, std::memory_order_relaxed) != alive) bad.fetch_add(1);
    live.fetch_sub(1);
  }
  static void check(const tracked& o) noexcept {
    if (o.magic.load(std::memory_order_relaxed) != alive) bad.fetch_add(1);
  }
};
static_assert(!std::is_default_constructible_v<tracked>);

/// 4 KiB, filled with a pattern derived from a seed.
struct big {
  std::array<std::uint64_t, 512> words;
  explicit big(std::uint64_t seed) noexcept {
    words[0] = seed;
    for (std::size_t k = 1; k < words.size(); ++k) words[k] = seed * 0x9E3779B97F4A7C15ull + k;
  }
  std::uint64_t seed() const noexcept { return words[0]; }
  bool intact(std::uint64_t s) const noexcept {
    if (words[0] != s) return false;
    for (std::size_t k = 1; k < words.size(); ++k)
      if (words[k] != s * 0x9E3779B97F4A7C15ull + k) return false;
    return true;
  }
};
static_assert(sizeof(big) == 4096);

/// Over-aligned: every construction checks its own address, so a channel
/// slot that is not 64-byte aligned is counted.
struct alignas(64) aligned_value {
  static inline std::atomic<int> misaligned{0};
  int v;
  explicit aligned_value(int x) noexcept : v(x) { check(); }
  aligned_value(const aligned_value& o) noexcept : v(o.v) { check(); }
  aligned_value(aligned_value&& o) noexcept : v(o.v) { check(); }
  aligned_value& operator=(const aligned_value&) = default;
  void check() const noexcept {
    if (reinterpret_cast<std::uintptr_t>(this) % 64 != 0) misaligned.fetch_add(1);
  }
};

std::vector<int> first_primes(int count) {
  std::vector<int> primes;
  for (int n = 2; static_cast<int>(primes.size()) < count; ++n) {
    bool prime = true;
    for (int p : primes) {
      if (p * p > n) break;
      if (n % p == 0) {
        prime = false;
        break;
      }
    }
    if (prime) primes.push_back(n);
  }
  return primes;
}

/// Waits (bounded) until finished == n. If that never happens, detaches the
/// threads, which stay blocked, so that the test fails instead of hanging.
bool await_finished(const std::atomic<int>& finished, int n, std::vector<std::thread>& threads) {
  if (eventually([&] { return finished.load() == n; })) return true;
  for (auto& t : threads) t.detach();
  return false;
}

/// A small deterministic generator for varied timeouts.
std::uint32_t next_rand(std::uint32_t& s) {
  s = s * 1664525u + 1013904223u;
  return s >> 8;
}

// ----------------------------------------------------- Go: TestChan ---

// Go: TestChan (runtime/chan_test.go): a receive from an empty channel blocks,
// and a non-blocking one reports not ready.
TEST_P(chan_procs, go_test_chan_receive_from_empty_blocks) {
  run_in(procs(), [] {
    for (const std::size_t cap : capacities) {
      auto c = make_chan<int>(cap);
      std::atomic<int> received{0};
      goro::wait_group wg;
      wg.add(2);
      goro::go([&] {
        (void)c.recv();
        received.fetch_add(1);
        wg.done();
      });
      goro::go([&] {
        int v = 0;
        (void)c.recv(v);
        received.fetch_add(1);
        wg.done();
      });
      EXPECT_TRUE(await_receivers(c, 2)) << "cap " << cap;
      EXPECT_EQ(received.load(), 0) << "cap " << cap << ": receive from empty chan";
      EXPECT_EQ(c.try_recv(), std::nullopt) << "cap " << cap;
      int out = 7;
      EXPECT_EQ(c.try_recv(out), chan_status::not_ready) << "cap " << cap;
      EXPECT_EQ(out, 7);
      c.send(0);
      c.send(0);
      wg.wait();
      EXPECT_EQ(received.load(), 2);
    }
  });
}

// Go: TestChan: a send to a full channel blocks, and a non-blocking one
// reports not ready; a receive releases it (the blocked value goes to the
// buffer's tail).
TEST_P(chan_procs, go_test_chan_send_to_full_blocks) {
  run_in(procs(), [] {
    for (const std::size_t cap : capacities) {
      auto c = make_chan<int>(cap);
      for (std::size_t i = 0; i < cap; ++i) c.send(static_cast<int>(i));
      std::atomic<bool> sent{false};
      goro::wait_group wg;
      wg.add(1);
      goro::go([&] {
        c.send(-1);
        sent.store(true);
        wg.done();
      });
      EXPECT_TRUE(await_senders(c, 1)) << "cap " << cap;
      EXPECT_FALSE(sent.load()) << "cap " << cap << ": send to full chan";
      EXPECT_EQ(c.try_send(-2), chan_status::not_ready) << "cap " << cap;
      EXPECT_EQ(c.len(), cap);
      EXPECT_EQ(c.recv(), cap == 0 ? -1 : 0) << "cap " << cap;
      wg.wait();
      EXPECT_TRUE(sent.load());
      for (std::size_t i = 1; i < cap; ++i) EXPECT_EQ(c.recv(), static_cast<int>(i));
      if (cap > 0) {
        EXPECT_EQ(c.recv(), -1) << "cap " << cap;
      }
      EXPECT_EQ(c.len(), 0u);
    }
  });
}

// Go: TestChan: a closed channel first yields what is buffered, in order,
// then reports closed (Go's zero value and ok == false) at once, every time.
TEST_P(chan_procs, go_test_chan_closed_channel_drains_then_reports_closed) {
  run_in(procs(), [] {
    for (const std::size_t cap : capacities) {
      auto c = make_chan<int>(cap);
      for (std::size_t i = 0; i < cap; ++i) c.send(static_cast<int>(i));
      c.close();
      EXPECT_EQ(c.len(), cap);
      for (std::size_t i = 0; i < cap; ++i) EXPECT_EQ(c.recv(), static_cast<int>(i));
      for (int again = 0; again < 3; ++again) {
        EXPECT_EQ(c.recv(), std::nullopt) << "cap " << cap;
        int out = 42;
        EXPECT_FALSE(c.recv(out));
        EXPECT_EQ(out, 42) << "a receive that reports closed leaves its target alone";
        EXPECT_EQ(c.try_recv(out), chan_status::closed);
        EXPECT_EQ(c.recv_for(out, 1h), chan_status::closed);
        EXPECT_EQ(c.try_recv(), std::nullopt);
      }
    }
  });
}

// Go: TestChan: close releases a blocked receiver, which sees "closed".
TEST_P(chan_procs, go_test_chan_close_unblocks_receive) {
  run_in(procs(), [] {
    for (const std::size_t cap : capacities) {
      auto c = make_chan<int>(cap);
      std::atomic<int> outcome{-1};
      goro::wait_group wg;
      wg.add(1);
      goro::go([&] {
        int v = 5;
        const bool ok = c.recv(v);
        outcome.store(!ok && v == 5 ? 1 : 0);
        wg.done();
      });
      EXPECT_TRUE(await_receivers(c, 1));
      c.close();
      wg.wait();
      EXPECT_EQ(outcome.load(), 1) << "cap " << cap;
    }
  });
}

// Go: TestChan: 100 values from one sender arrive uncorrupted and in order
// (with both receive forms); 4 senders and 4 receivers of 1000 values each
// deliver every value exactly once.
TEST_P(chan_procs, go_test_chan_fifo_and_many_senders_receivers) {
  run_in(procs(), [] {
    for (const std::size_t cap : capacities) {
      auto c = make_chan<int>(cap);
      const int n = 100;
      goro::wait_group wg;
      wg.add(1);
      goro::go([&] {
        for (int i = 0; i < n; ++i) c.send(int{i});
        for (int i = 0; i < n; ++i) c.send(int{i});
        wg.done();
      });
      for (int i = 0; i < n; ++i) EXPECT_EQ(c.recv(), i) << "cap " << cap;
      for (int i = 0; i < n; ++i) {
        int v = -1;
        EXPECT_TRUE(c.recv(v));
        EXPECT_EQ(v, i) << "cap " << cap;
      }
      wg.wait();

      const int p = 4;
      const int l = scaled(1000, 200);
      std::vector<std::vector<int>> counts(p, std::vector<int>(static_cast<std::size_t>(l), 0));
      wg.add(2 * p);
      for (int s = 0; s < p; ++s) {
        goro::go([&] {
          for (int i = 0; i < l; ++i) c.send(int{i});
          wg.done();
        });
      }
      for (int r = 0; r < p; ++r) {
        goro::go([&, r] {
          for (int i = 0; i < l; ++i)
            ++counts[static_cast<std::size_t>(r)][static_cast<std::size_t>(*c.recv())];
          wg.done();
        });
      }
      wg.wait();
      int wrong = 0;
      for (std::size_t v = 0; v < static_cast<std::size_t>(l); ++v) {
        int total = 0;
        for (const auto& per : counts) total += per[v];
        if (total != p) ++wrong;
      }
      EXPECT_EQ(wrong, 0) << "cap " << cap << ": values not received exactly " << p << " times";
    }
  });
}

// Go: TestChan: len and cap.
TEST_P(chan_procs, go_test_chan_len_cap) {
  run_in(procs(), [] {
    for (const std::size_t cap : capacities) {
      auto c = make_chan<int>(cap);
      EXPECT_EQ(c.len(), 0u);
      EXPECT_EQ(c.cap(), cap);
      for (std::size_t i = 0; i < cap; ++i) c.send(static_cast<int>(i));
      EXPECT_EQ(c.len(), cap);
      EXPECT_EQ(c.cap(), cap);
      if (cap > 0) {
        (void)c.recv();
        EXPECT_EQ(c.len(), cap - 1);
      }
    }
  });
}

// ------------------------------------------------------- more Go tests ---

// Go: TestMultiConsumer (runtime/chan_test.go): 23 workers range over a work
// channel and forward to a result channel; the feeder closes work, waits for
// the workers, closes results; every value arrives exactly once.
TEST_P(chan_procs, go_test_multi_consumer) {
  run_in(procs(), [] {
    const int nwork = 23;
    const int niter = scaled(30000, 3000);
    const std::array<int, 10> pn{2, 3, 7, 11, 13, 17, 19, 23, 27, 31};
    auto q = make_chan<int>(nwork * 3);
    auto r = make_chan<int>(nwork * 3);
    goro::wait_group workers, feeder;
    workers.add(nwork);
    feeder.add(1);
    for (int w = 0; w < nwork; ++w) {
      goro::go([&, w] {
        for (int v : q) {
          if (pn[static_cast<std::size_t>(w) % pn.size()] == v)
            goro::yield();  // mess with the order
          r.send(int{v});
        }
        workers.done();
      });
    }
    long long expect = 0;  // the feeder's; read after r is closed, which orders it
    goro::go([&] {
      for (int i = 0; i < niter; ++i) {
        const int v = pn[static_cast<std::size_t>(i) % pn.size()];
        expect += v;
        q.send(int{v});
      }
      q.close();
      workers.wait();
      r.close();
      feeder.done();
    });
    int n = 0;
    long long sum = 0;
    for (int v : r) {
      ++n;
      sum += v;
    }
    feeder.wait();
    EXPECT_EQ(n, niter);
    EXPECT_EQ(sum, expect);
  });
}

// Go: test/chan/fifo.go: a buffered channel is a FIFO; and a daisy chain of
// goroutines, each released by the one before, receives an unbuffered
// channel's values in sequence.
TEST_P(chan_procs, go_fifo_async_and_sync) {
  run_in(procs(), [] {
    auto async = make_chan<int>(10);
    for (int i = 0; i < 10; ++i) async.send(int{i});
    for (int i = 0; i < 10; ++i) EXPECT_EQ(async.recv(), i);

    const int n = scaled(1000, 150);
    auto ch = make_chan<int>();
    auto in = make_chan<int>();
    const goro::chan<int> start = in;
    std::atomic<int> errors{0};
    for (int i = 0; i < n; ++i) {
      auto out = make_chan<int>();
      goro::go([ch, in, out, i, &errors] {
        (void)in.recv();
        if (ch.recv() != i) errors.fetch_add(1);
        out.send(1);
      });
      in = out;
    }
    start.send(0);
    for (int i = 0; i < n; ++i) ch.send(int{i});
    EXPECT_EQ(in.recv(), 1);
    EXPECT_EQ(errors.load(), 0);
  });
}

// Go: test/chan/sieve1.go (the first 100 primes rather than 25): a prime
// sieve of goroutines, one filter per prime. The generator stops at the 100th
// prime and closes its channel, so the whole chain winds down.
TEST_P(chan_procs, go_sieve_first_100_primes) {
  run_in(procs(), [] {
    const std::vector<int> expected = first_primes(100);
    auto primes = make_chan<int>();
    goro::wait_group sieve_done;
    sieve_done.add(1);
    goro::go([primes, &sieve_done, last = expected.back()] {
      auto ch = make_chan<int>();
      goro::go([out = goro::send_chan<int>(ch), last] {
        for (int i = 2; i <= last; ++i) out.send(int{i});
        out.close();
      });
      goro::chan<int> cur = ch;
      for (;;) {
        const std::optional<int> prime = cur.recv();
        if (!prime) break;
        primes.send(int{*prime});
        auto next = make_chan<int>();
        goro::go([in = goro::recv_chan<int>(cur), out = goro::send_chan<int>(next), p = *prime] {
          for (int v : in)
            if (v % p != 0) out.send(int{v});
          out.close();
        });
        cur = next;
      }
      primes.close();
      sieve_done.done();
    });
    std::vector<int> got;
    for (int p : primes) got.push_back(p);
    sieve_done.wait();
    EXPECT_EQ(got, expected);
  });
}

// Go: test/chan/goroutines.go: a chain of goroutines, each passing one value
// from its right channel to its left one (adding 1 here, so that every link
// must take part), torn down cleanly. 2000 links rather than Go's 10000: every
// link is a live goroutine with its own stack, and mapping 10000 stacks costs
// about half a second here, four times over.
TEST_P(chan_procs, go_goroutines_chain) {
  run_in(procs(), [] {
    const int n = scaled(2000, 400);
    auto leftmost = make_chan<int>();
    goro::chan<int> left = leftmost;
    for (int i = 0; i < n; ++i) {
      auto right = make_chan<int>();
      goro::go([left, right] { left.send(*right.recv() + 1); });
      left = right;
    }
    goro::go([left] { left.send(0); });
    EXPECT_EQ(leftmost.recv(), n);
  });
}

// Go: test/chan/nonblock.go, with try_send / try_recv on several element
// types: a non-blocking operation fails while nobody is there, and retried it
// succeeds once the partner (or buffer room) is.
template <class T>
void nonblock_exchange(std::size_t buffer, const T& from_main, const T& from_peer) {
  auto c = make_chan<T>(buffer);
  auto sync = make_chan<bool>();
  T out{};
  EXPECT_EQ(c.try_recv(out), chan_status::not_ready) << "blocked sender, buffer " << buffer;

  goro::go([c, sync, from_main] {
    EXPECT_EQ(c.recv(), from_main);
    sync.send(true);
  });
  while (c.try_send(T(from_main)) != chan_status::ok) goro::yield();
  (void)sync.recv();

  goro::go([c, sync, from_peer] {
    c.send(T(from_peer));
    sync.send(true);
  });
  if (buffer > 0) (void)sync.recv();
  while (c.try_recv(out) != chan_status::ok) goro::yield();
  EXPECT_EQ(out, from_peer);
  if (buffer == 0) (void)sync.recv();
}

TEST_P(chan_procs, go_nonblock_try_operations) {
  run_in(procs(), [] {
    for (std::size_t buffer = 0; buffer < 2; ++buffer) {
      nonblock_exchange<std::int32_t>(buffer, 123, 234);
      nonblock_exchange<std::int64_t>(buffer, 123456, 234567);
      nonblock_exchange<bool>(buffer, true, true);
      nonblock_exchange<std::string>(buffer, "hello", "hello again");
    }
  });
}

// Go: test/chan/zerosize.go: channels of empty types work.
struct empty {};
TEST(chan, go_zerosize) {
  run_in(2, [] {
    for (std::size_t cap : {0u, 1u}) {
      auto a = make_chan<empty>(cap);
      auto b = make_chan<std::array<int, 0>>(cap);
      goro::wait_group wg;
      wg.add(1);
      goro::go([&] {
        a.send(empty{});
        b.send(std::array<int, 0>{});
        wg.done();
      });
      EXPECT_TRUE(a.recv().has_value());
      EXPECT_TRUE(b.recv().has_value());
      wg.wait();
    }
  });
}

// Go: test/chan/perm.go: directional channels. In Go a compile error; here the
// views simply lack the operations, which requires-expressions check.
template <class C>
concept can_send = requires(const C& c, int v) {
  c.send(std::move(v));
};
template <class C>
concept can_try_send = requires(const C& c) {
  c.try_send(1);
};
template <class C>
concept can_close = requires(const C& c) {
  c.close();
};
template <class C>
concept can_recv = requires(const C& c) {
  c.recv();
};
template <class C>
concept can_recv_ok = requires(const C& c, int& v) {
  c.recv(v);
};
template <class C>
concept can_try_recv = requires(const C& c) {
  c.try_recv();
};
template <class C>
concept can_range = requires(const C& c) {
  c.begin();
};
template <class C>
concept can_select_recv = requires(const C& c) {
  goro::on_recv(c);
};
template <class C>
concept can_select_send = requires(const C& c) {
  goro::on_send(c, 0);
};

using bidi = goro::chan<int>;
using send_only = goro::send_chan<int>;
using recv_only = goro::recv_chan<int>;
static_assert(can_send<bidi> && can_try_send<bidi> && can_close<bidi> && can_recv<bidi> &&
              can_recv_ok<bidi> && can_try_recv<bidi> && can_range<bidi> && can_select_recv<bidi> &&
              can_select_send<bidi>);
static_assert(can_send<send_only> && can_try_send<send_only> && can_close<send_only> &&
              can_select_send<send_only>);
static_assert(!can_recv<send_only> && !can_recv_ok<send_only> && !can_try_recv<send_only> &&
              !can_range<send_only> && !can_select_recv<send_only>);
static_assert(can_recv<recv_only> && can_recv_ok<recv_only> && can_try_recv<recv_only> &&
              can_range<recv_only> && can_select_recv<recv_only>);
static_assert(!can_send<recv_only> && !can_try_send<recv_only> && !can_close<recv_only> &&
              !can_select_send<recv_only>);
// cr = c and cs = c are fine; c = cr, c = cs, cr = cs and cs = cr are not.
static_assert(std::is_convertible_v<bidi, send_only> && std::is_convertible_v<bidi, recv_only>);
static_assert(!std::is_constructible_v<bidi, send_only> &&
              !std::is_constructible_v<bidi, recv_only>);
static_assert(!std::is_constructible_v<send_only, recv_only> &&
              !std::is_constructible_v<recv_only, send_only>);
static_assert(!std::is_assignable_v<bidi&, recv_only> &&
              !std::is_assignable_v<send_only&, recv_only>);

TEST(chan, go_perm_views_share_the_channel) {
  run_in(1, [] {
    auto c = make_chan<int>(2);
    const send_only s = c;
    const recv_only r = c;
    EXPECT_TRUE(s == c);
    EXPECT_TRUE(r == c);
    EXPECT_EQ(s.cap(), 2u);
    s.send(1);
    c.send(2);
    EXPECT_EQ(r.len(), 2u);
    EXPECT_EQ(r.recv(), 1);
    EXPECT_EQ(c.recv(), 2);
    s.close();
    EXPECT_EQ(r.recv(), std::nullopt);
    EXPECT_TRUE(send_only{}.is_nil());
    EXPECT_TRUE(recv_only(goro::chan<int>{}).is_nil());
  });
}

// ----------------------------------------------------- element types ---

// A move-only T (unique_ptr) through unbuffered and buffered channels,
// including senders blocked on a full buffer and range-for moving out.
TEST_P(chan_procs, move_only_values) {
  run_in(procs(), [] {
    for (std::size_t cap : {0u, 1u, 4u}) {
      auto c = make_chan<std::unique_ptr<int>>(cap);
      const int n = 50;
      goro::wait_group wg;
      wg.add(1);
      goro::go([c, &wg] {
        for (int i = 0; i < n; ++i) c.send(std::make_unique<int>(i));
        c.close();
        wg.done();
      });
      int expect = 0;
      for (std::unique_ptr<int>& p : c) {
        std::unique_ptr<int> mine = std::move(p);
        ASSERT_NE(mine, nullptr);
        EXPECT_EQ(*mine, expect++);
      }
      EXPECT_EQ(expect, n);
      wg.wait();

      // recv(T&), and a try_send that finds no room keeps the value.
      auto d = make_chan<std::unique_ptr<int>>(cap);
      auto keep = std::make_unique<int>(9);
      if (cap == 0) {
        EXPECT_EQ(d.try_send(std::move(keep)), chan_status::not_ready);
        ASSERT_NE(keep, nullptr);
        goro::go([d] { d.send(std::make_unique<int>(10)); });
      } else {
        d.send(std::make_unique<int>(10));
      }
      std::unique_ptr<int> out;
      EXPECT_TRUE(d.recv(out));
      ASSERT_NE(out, nullptr);
      EXPECT_EQ(*out, 10);
      EXPECT_EQ(*keep, 9);
    }
  });
}

// T without a default constructor, and one that cannot even be assigned.
TEST_P(chan_procs, values_without_default_constructor) {
  struct const_member {
    const int v;
  };
  static_assert(!std::is_default_constructible_v<const_member>);
  static_assert(!std::is_move_assignable_v<const_member>);
  run_in(procs(), [] {
    for (std::size_t cap : {0u, 3u}) {
      auto c = make_chan<tracked>(cap);
      auto k = make_chan<const_member>(cap);
      goro::wait_group wg;
      wg.add(1);
      goro::go([&] {
        for (int i = 0; i < 10; ++i) {
          c.send(tracked(i));
          k.send(const_member{i});
        }
        wg.done();
      });
      tracked t(-5);
      for (int i = 0; i < 10; ++i) {
        ASSERT_TRUE(c.recv(t));
        EXPECT_EQ(t.value, i);
        EXPECT_EQ(k.recv()->v, i);
      }
      wg.wait();
    }
  });
}

// 4 KiB values on unbuffered and buffered channels, with senders blocked on a
// full buffer: each arrives intact and in its sender's order.
TEST_P(chan_procs, large_values) {
  run_in(procs(), [] {
    for (std::size_t cap : {0u, 1u, 3u, 16u}) {
      auto c = make_chan<big>(cap);
      const int senders = 3;
      const int per = scaled(100, 30);
      goro::wait_group wg;
      wg.add(senders);
      for (int s = 0; s < senders; ++s) {
        goro::go([c, s, &wg] {
          for (int i = 0; i < per; ++i) c.send(big(static_cast<std::uint64_t>(s * per + i + 1)));
          wg.done();
        });
      }
      std::array<int, senders> last{-1, -1, -1};
      int corrupted = 0, out_of_order = 0;
      for (int i = 0; i < senders * per; ++i) {
        const std::optional<big> b = c.recv();
        ASSERT_TRUE(b.has_value());
        const std::uint64_t seed = b->seed();
        if (seed == 0 || seed > static_cast<std::uint64_t>(senders * per) || !b->intact(seed)) {
          ++corrupted;
          continue;
        }
        const int id = static_cast<int>(seed - 1);
        int& prev = last[static_cast<std::size_t>(id / per)];
        if (id % per <= prev) ++out_of_order;
        prev = id % per;
      }
      wg.wait();
      EXPECT_EQ(corrupted, 0) << "cap " << cap;
      EXPECT_EQ(out_of_order, 0) << "cap " << cap;
    }
  });
}

// Small trivially copyable values (up to 16 bytes) are copied inline, with
// two overlapping stores when the size is not a power of two
// (chan_core.hpp, copy_small): every size from 1 to 16 bytes arrives intact
// through each exchange (into the buffer, from a waiting sender, to a
// waiting receiver), and no copy spills into the neighbouring slot.
template <std::size_t N>
void send_and_check_bytes_of_size(int per) {
  using value = std::array<unsigned char, N>;
  static_assert(goro::detail::chan_ops_for<value>::small_trivial);
  auto pattern = [](int i) {
    value v;
    for (std::size_t j = 0; j < N; ++j)
      v[j] = static_cast<unsigned char>(i * 31 + static_cast<int>(j) * 7 + 1);
    return v;
  };
  for (std::size_t cap : {0u, 1u, 3u}) {
    auto c = make_chan<value>(cap);
    goro::go([c, per, pattern] {
      for (int i = 0; i < per; ++i) c.send(pattern(i));
      c.close();
    });
    int i = 0, corrupted = 0;
    for (const value& v : c) {
      if (v != pattern(i)) ++corrupted;
      ++i;
    }
    EXPECT_EQ(i, per) << N << " bytes, cap " << cap;
    EXPECT_EQ(corrupted, 0) << N << " bytes, cap " << cap;
  }
}

template <std::size_t... N>
void send_and_check_bytes_of_sizes(int per, std::index_sequence<N...>) {
  (send_and_check_bytes_of_size<N + 1>(per), ...);
}

TEST_P(chan_procs, small_trivial_values_of_every_size_arrive_intact) {
  run_in(procs(),
         [] { send_and_check_bytes_of_sizes(scaled(2000, 300), std::make_index_sequence<16>{}); });
}

// An over-aligned T lives in properly aligned buffer slots.
TEST_P(chan_procs, over_aligned_values) {
  run_in(procs(), [] {
    aligned_value::misaligned.store(0);
    for (std::size_t cap : {1u, 3u, 7u}) {
      auto c = make_chan<aligned_value>(cap);
      for (int round = 0; round < 3; ++round) {
        for (std::size_t i = 0; i < cap; ++i) c.send(aligned_value(static_cast<int>(i)));
        for (std::size_t i = 0; i < cap; ++i) EXPECT_EQ(c.recv()->v, static_cast<int>(i));
      }
    }
    EXPECT_EQ(aligned_value::misaligned.load(), 0);
  });
}

// ------------------------------------------------------ value lifetimes ---

// Every value sent is destroyed exactly once: values still buffered when the
// last handle goes away (with the ring wrapped), values whose send threw or
// timed out or found no room (they stay with the caller, untouched), and many
// values through goroutines with senders cut off by close.
TEST_P(chan_procs, every_value_is_destroyed_exactly_once) {
  run_in(procs(), [] {
    const long live0 = tracked::live.load();
    const long bad0 = tracked::bad.load();
    {
      auto c = make_chan<tracked>(4);
      for (int i = 0; i < 4; ++i) c.send(tracked(i));
      for (int i = 0; i < 3; ++i) EXPECT_EQ(c.recv()->value, i);
      c.send(tracked(4));  // wraps around the ring: slots 3 and 0 hold values
      EXPECT_EQ(tracked::live.load() - live0, 2);
      goro::chan<tracked> other = c;
      c = goro::chan<tracked>{};
      EXPECT_EQ(tracked::live.load() - live0, 2) << "a handle remains";
      other = goro::chan<tracked>{};
      EXPECT_EQ(tracked::live.load() - live0, 0) << "buffered values die with the channel";
    }
    {
      auto c = make_chan<tracked>(1);
      c.send(tracked(1));
      tracked t(7);
      EXPECT_EQ(c.try_send(std::move(t)), chan_status::not_ready);
      EXPECT_EQ(t.value, 7);
      EXPECT_EQ(c.send_for(std::move(t), 1ms), chan_status::timeout);
      EXPECT_EQ(t.value, 7);
      c.close();
      EXPECT_THROW(c.send(std::move(t)), goro::panic_error);
      EXPECT_EQ(t.value, 7);
      EXPECT_THROW((void)c.try_send(std::move(t)), goro::panic_error);
      EXPECT_EQ(t.value, 7);
      EXPECT_EQ(c.recv()->value, 1);
      EXPECT_EQ(tracked::live.load() - live0, 1);  // t
    }
    for (std::size_t cap : {0u, 5u}) {
      auto c = make_chan<tracked>(cap);
      const int senders = 4;
      const int per = scaled(400, 100);
      const int take = senders * per / 2;
      std::atomic<int> sent{0}, cut_off{0}, disturbed{0};
      goro::wait_group wg;
      wg.add(senders);
      for (int s = 0; s < senders; ++s) {
        goro::go([&, s] {
          for (int i = 0; i < per; ++i) {
            tracked t(s * per + i);
            try {
              c.send(std::move(t));
              sent.fetch_add(1);
            } catch (const goro::panic_error&) {
              if (t.value != s * per + i) disturbed.fetch_add(1);
              cut_off.fetch_add(1);
              break;
            }
          }
          wg.done();
        });
      }
      std::vector<int> seen(static_cast<std::size_t>(senders * per), 0);
      for (int i = 0; i < take; ++i) ++seen[static_cast<std::size_t>(c.recv()->value)];
      c.close();
      for (tracked& t : c) ++seen[static_cast<std::size_t>(t.value)];  // what was buffered
      wg.wait();
      int received = 0, twice = 0;
      for (int n : seen) {
        received += n;
        if (n > 1) ++twice;
      }
      EXPECT_EQ(received, sent.load()) << "cap " << cap;
      EXPECT_EQ(twice, 0);
      EXPECT_EQ(disturbed.load(), 0) << "a send that threw moved from its value";
      EXPECT_GT(cut_off.load(), 0);
    }
    EXPECT_EQ(tracked::live.load(), live0);
    EXPECT_EQ(tracked::bad.load(), bad0) << "a value was destroyed twice or used after";
  });
}

// --------------------------------------------------------- misuse panics ---

template <class F>
void expect_panic(F&& f, const char* message) {
  try {
    f();
    ADD_FAILURE() << "no panic; want \"" << message << '"';
  } catch (const goro::panic_error& e) {
    EXPECT_STREQ(e.what(), message);
  }
}

// Send on a closed channel, close of a closed channel and close of a nil
// channel throw goro::panic_error with Go's messages; the value is untouched.
TEST_P(chan_procs, misuse_panics_with_go_messages) {
  run_in(procs(), [] {
    for (std::size_t cap : {0u, 1u}) {
      auto c = make_chan<std::string>(cap);
      c.close();
      std::string s = "keep me";
      expect_panic([&] { c.send(std::move(s)); }, "send on closed channel");
      expect_panic([&] { (void)c.try_send(std::move(s)); }, "send on closed channel");
      expect_panic([&] { (void)c.send_for(std::move(s), 1h); }, "send on closed channel");
      expect_panic([&] { (void)c.send_until(std::move(s), std::chrono::steady_clock::now() + 1h); },
                   "send on closed channel");
      expect_panic([&] { c.send(s); }, "send on closed channel");
      EXPECT_EQ(s, "keep me");
      expect_panic([&] { c.close(); }, "close of closed channel");
      const goro::send_chan<std::string> view = c;
      expect_panic([&] { view.close(); }, "close of closed channel");
      EXPECT_THROW(view.send("x"), std::logic_error);  // panic_error is a logic_error
    }
    auto u = make_chan<std::unique_ptr<int>>(1);
    u.close();
    auto p = std::make_unique<int>(3);
    expect_panic([&] { u.send(std::move(p)); }, "send on closed channel");
    ASSERT_NE(p, nullptr);
    EXPECT_EQ(*p, 3);

    goro::chan<int> nil;
    expect_panic([&] { nil.close(); }, "close of nil channel");
    expect_panic([&] { goro::send_chan<int>{}.close(); }, "close of nil channel");

    std::thread t([&] {  // the same from a plain thread
      std::string v = "thread";
      auto d = make_chan<std::string>();
      d.close();
      expect_panic([&] { d.send(std::move(v)); }, "send on closed channel");
      EXPECT_EQ(v, "thread");
      expect_panic([&] { d.close(); }, "close of closed channel");
    });
    t.join();
  });
}

// ------------------------------------------------------------- close ---

// close wakes every blocked receiver, goroutine or thread, plain, ok-form or
// timed; each sees "closed".
TEST_P(chan_procs, close_wakes_every_blocked_receiver) {
  run_in(procs(), [] {
    for (std::size_t cap : {0u, 3u}) {
      auto c = make_chan<int>(cap);
      const int gs = scaled(60, 20);
      const int ts = 3;
      std::atomic<int> saw_closed{0}, finished{0};
      goro::wait_group done;
      done.add(gs + ts);
      for (int i = 0; i < gs; ++i) {
        goro::go([&, i] {
          int v = 0;
          bool closed = false;
          switch (i % 3) {
            case 0:
              closed = !c.recv().has_value();
              break;
            case 1:
              closed = !c.recv(v);
              break;
            default:
              closed = c.recv_for(v, 1h) == chan_status::closed;
              break;
          }
          if (closed) saw_closed.fetch_add(1);
          finished.fetch_add(1);
          done.done();
        });
      }
      std::vector<std::thread> threads;
      for (int i = 0; i < ts; ++i) {
        threads.emplace_back([&] {
          if (!c.recv().has_value()) saw_closed.fetch_add(1);
          finished.fetch_add(1);
          done.done();
        });
      }
      EXPECT_TRUE(await_receivers(c, static_cast<std::size_t>(gs + ts)));
      c.close();
      ASSERT_TRUE(await_finished(finished, gs + ts, threads))
          << "cap " << cap << ": close left " << gs + ts - finished.load() << " receivers blocked";
      done.wait();
      for (auto& t : threads) t.join();
      EXPECT_EQ(saw_closed.load(), gs + ts) << "cap " << cap;
      EXPECT_EQ(queued(c, false), 0u);
    }
  });
}

// close wakes every blocked sender, goroutine or thread, plain or timed; each
// throws "send on closed channel" with its value untouched. What was buffered
// is still received, then "closed".
TEST_P(chan_procs, close_wakes_every_blocked_sender) {
  run_in(procs(), [] {
    const long live0 = tracked::live.load();
    for (std::size_t cap : {0u, 2u}) {
      auto c = make_chan<tracked>(cap);
      for (std::size_t i = 0; i < cap; ++i) c.send(tracked(1000 + static_cast<int>(i)));
      const int gs = scaled(60, 20);
      const int ts = 3;
      std::atomic<int> panicked{0}, disturbed{0}, finished{0};
      goro::wait_group done;
      done.add(gs + ts);
      auto blocked_send = [&](int i, bool timed) {
        {
          // Gone before done.done(): the count of live values is checked
          // after done.wait().
          tracked t(i);
          try {
            if (timed) {
              (void)c.send_for(std::move(t), 1h);
            } else {
              c.send(std::move(t));
            }
          } catch (const goro::panic_error& e) {
            if (std::string(e.what()) == "send on closed channel") panicked.fetch_add(1);
          }
          if (t.value != i) disturbed.fetch_add(1);
        }
        finished.fetch_add(1);
        done.done();
      };
      for (int i = 0; i < gs; ++i) goro::go([&, i] { blocked_send(i, i % 2 == 1); });
      std::vector<std::thread> threads;
      for (int i = 0; i < ts; ++i) threads.emplace_back([&, i] { blocked_send(gs + i, false); });
      EXPECT_TRUE(await_senders(c, static_cast<std::size_t>(gs + ts)));
      c.close();
      ASSERT_TRUE(await_finished(finished, gs + ts, threads))
          << "cap " << cap << ": close left " << gs + ts - finished.load() << " senders blocked";
      done.wait();
      for (auto& t : threads) t.join();
      EXPECT_EQ(panicked.load(), gs + ts) << "cap " << cap;
      EXPECT_EQ(disturbed.load(), 0);
      for (std::size_t i = 0; i < cap; ++i) EXPECT_EQ(c.recv()->value, 1000 + static_cast<int>(i));
      EXPECT_EQ(c.recv(), std::nullopt);
    }
    EXPECT_EQ(tracked::live.load(), live0);
  });
}

// ---------------------------------------------------------- nil channels ---

// A nil channel: try_ operations report not_ready, timed ones time out, len
// and cap are 0; from goroutines and threads.
TEST_P(chan_procs, nil_channel_operations_that_return) {
  run_in(procs(), [] {
    auto check = [] {
      goro::chan<std::unique_ptr<int>> nil;
      EXPECT_TRUE(nil.is_nil());
      EXPECT_FALSE(nil);
      EXPECT_EQ(nil.len(), 0u);
      EXPECT_EQ(nil.cap(), 0u);
      auto p = std::make_unique<int>(1);
      EXPECT_EQ(nil.try_send(std::move(p)), chan_status::not_ready);
      EXPECT_EQ(nil.send_for(std::move(p), 1ms), chan_status::timeout);
      EXPECT_EQ(nil.send_until(std::move(p), std::chrono::steady_clock::now() + 1ms),
                chan_status::timeout);
      ASSERT_NE(p, nullptr);
      std::unique_ptr<int> out;
      EXPECT_EQ(nil.try_recv(out), chan_status::not_ready);
      EXPECT_EQ(nil.try_recv(), std::nullopt);
      EXPECT_EQ(nil.recv_for(out, 1ms), chan_status::timeout);
      EXPECT_EQ(nil.recv_until(out, std::chrono::system_clock::now() + 1ms), chan_status::timeout);
      EXPECT_EQ(nil.recv_for(1ms), std::nullopt);
      EXPECT_EQ(out, nullptr);
      EXPECT_TRUE(nil == goro::chan<std::unique_ptr<int>>{});
      EXPECT_FALSE(nil == make_chan<std::unique_ptr<int>>());
    };
    check();
    std::thread t(check);
    t.join();
  });
}

/// True once every goroutine in gs has registered and is parked.
template <std::size_t N>
bool all_parked(const std::array<std::atomic<goro::detail::G*>, N>& gs) {
  const goro::detail::race_ignore unchecked;  // G records are the runtime's
  for (const auto& g : gs) {
    goro::detail::G* p = g.load();
    if (p == nullptr || p->status.load(std::memory_order_acquire) != goro::detail::gstatus::waiting)
      return false;
  }
  return true;
}

// Go: test/chan/select3.go (the plain-operation half): a send or receive on a
// nil channel blocks forever: the goroutines park, and nothing wakes them.
// They are abandoned when run() returns, so this test calls goro::run itself
// (run_in would report them as leaked); what they use outlives the runtime.
TEST(chan_blocks_forever, operations_on_a_nil_channel) {
  goro::chan<int> nil;
  std::atomic<int> returned{0};
  std::array<std::atomic<goro::detail::G*>, 4> gs{};
  goro::run(goro::run_options{.maxprocs = 2}, [&] {
    goro::go([&] {
      gs[0].store(goro::detail::current_g());
      nil.send(7);
      returned.fetch_add(1);
    });
    goro::go([&] {
      gs[1].store(goro::detail::current_g());
      (void)nil.recv();
      returned.fetch_add(1);
    });
    goro::go([&] {
      gs[2].store(goro::detail::current_g());
      int v = 0;
      (void)nil.recv(v);
      returned.fetch_add(1);
    });
    goro::go([&] {
      gs[3].store(goro::detail::current_g());
      for (int v : nil) (void)v;
      returned.fetch_add(1);
    });
    EXPECT_TRUE(eventually([] { return goro::num_goroutines() == 5; }));
    EXPECT_TRUE(eventually([&] { return all_parked(gs); })) << "blocked on nil, but not parked";
    goro::sleep_for(5ms);  // only gives a wrong wake-up the chance to show
    EXPECT_EQ(returned.load(), 0);
    EXPECT_TRUE(all_parked(gs));
  });
  EXPECT_EQ(returned.load(), 0);
}

// -------------------------------------------------------------- timeouts ---

// recv_for / recv_until / send_for / send_until time out when nobody comes,
// after at least the timeout, from goroutines and threads; a zero or negative
// timeout is a poll.
TEST_P(chan_procs, timed_operations_time_out) {
  run_in(procs(), [] {
    auto check = [] {
      using clock = std::chrono::steady_clock;
      auto c = make_chan<int>();
      auto t0 = clock::now();
      EXPECT_EQ(c.recv_for(2ms), std::nullopt);
      EXPECT_GE(clock::now() - t0, 2ms);
      int v = 5;
      t0 = clock::now();
      EXPECT_EQ(c.recv_for(v, 2ms), chan_status::timeout);
      EXPECT_GE(clock::now() - t0, 2ms);
      EXPECT_EQ(v, 5);
      EXPECT_EQ(c.recv_until(v, clock::now() + 1ms), chan_status::timeout);
      EXPECT_EQ(c.recv_until(v, std::chrono::system_clock::now() + 1ms), chan_status::timeout);
      EXPECT_EQ(c.recv_for(v, 0ms), chan_status::timeout);
      EXPECT_EQ(c.recv_for(v, -5ms), chan_status::timeout);
      t0 = clock::now();
      EXPECT_EQ(c.send_for(1, 2ms), chan_status::timeout);
      EXPECT_GE(clock::now() - t0, 2ms);
      EXPECT_EQ(c.send_until(1, clock::now() + 1ms), chan_status::timeout);
      EXPECT_EQ(c.send_for(1, 0ns), chan_status::timeout);
      auto full = make_chan<int>(1);
      full.send(1);
      EXPECT_EQ(full.send_for(2, 1ms), chan_status::timeout);
      EXPECT_EQ(full.send_for(2, 0ms), chan_status::timeout);
      EXPECT_EQ(queued(c, false) + queued(c, true) + queued(full, true), 0u);
    };
    check();
    std::thread t(check);
    t.join();
  });
}

// A timed-out send leaves its value with the caller and no waiter in the
// channel: a later receive never gets that value.
TEST_P(chan_procs, timed_out_send_keeps_its_value_and_leaves_no_waiter) {
  run_in(procs(), [] {
    auto b = make_chan<std::unique_ptr<int>>(1);
    b.send(std::make_unique<int>(1));
    auto p = std::make_unique<int>(2);
    EXPECT_EQ(b.send_for(std::move(p), 1ms), chan_status::timeout);
    ASSERT_NE(p, nullptr);
    EXPECT_EQ(*p, 2);
    EXPECT_EQ(queued(b, true), 0u);
    EXPECT_EQ(*b.recv().value(), 1);
    EXPECT_EQ(b.try_recv(), std::nullopt) << "the timed-out value arrived after all";

    auto u = make_chan<std::string>();
    std::string stale = "stale";
    EXPECT_EQ(u.send_for(std::move(stale), 1ms), chan_status::timeout);
    EXPECT_EQ(stale, "stale");
    EXPECT_EQ(queued(u, true), 0u);
    std::string out;
    EXPECT_EQ(u.try_recv(out), chan_status::not_ready);
    EXPECT_EQ(u.recv_for(out, 1ms), chan_status::timeout);
    goro::wait_group wg;
    wg.add(1);
    goro::go([&] {
      u.send("fresh");
      wg.done();
    });
    EXPECT_EQ(u.recv(), "fresh");
    wg.wait();

    // And a timed-out receive leaves no waiter to swallow a later value.
    auto r = make_chan<int>();
    int v = 0;
    EXPECT_EQ(r.recv_for(v, 1ms), chan_status::timeout);
    EXPECT_EQ(queued(r, false), 0u);
    EXPECT_EQ(r.try_send(3), chan_status::not_ready);
  });
}

// Timed operations complete when the partner is there or comes in time, and
// a timed receive is woken by close.
TEST_P(chan_procs, timed_operations_succeed_when_a_partner_comes) {
  run_in(procs(), [] {
    auto c = make_chan<int>();
    goro::wait_group wg;
    int v = 0;

    wg.add(1);
    goro::go([&] {
      EXPECT_EQ(c.send_for(1, 1h), chan_status::ok);
      wg.done();
    });
    EXPECT_TRUE(await_senders(c, 1));
    EXPECT_EQ(c.recv_for(v, 1h), chan_status::ok);  // a sender is waiting
    EXPECT_EQ(v, 1);
    wg.wait();

    wg.add(1);
    goro::go([&] {
      EXPECT_EQ(c.recv_for(1h), 2);
      wg.done();
    });
    EXPECT_TRUE(await_receivers(c, 1));
    EXPECT_EQ(c.send_until(2, std::chrono::steady_clock::now() + 1h), chan_status::ok);
    wg.wait();

    wg.add(1);
    goro::go([&] {
      int w = 0;
      EXPECT_EQ(c.recv_until(w, std::chrono::system_clock::now() + 1h), chan_status::closed);
      wg.done();
    });
    EXPECT_TRUE(await_receivers(c, 1));
    c.close();
    wg.wait();
  });
}

// Timed operations race with their partners and their own deadlines (tiny
// timeouts, often zero): every value is delivered exactly once however the
// races go, and a value whose send timed out is never received.
TEST_P(chan_procs, timed_operations_race_with_partners) {
  run_in(procs(), [] {
    for (std::size_t cap : {0u, 1u}) {
      auto c = make_chan<int>(cap);
      const int producers = 3;
      const int consumers = 3;  // two goroutines and a thread
      const int per = scaled(400, 80);
      std::vector<std::atomic<int>> got(static_cast<std::size_t>(producers * per));
      goro::wait_group prod, cons;
      prod.add(producers);
      cons.add(consumers);
      for (int p = 0; p < producers; ++p) {
        goro::go([&, p] {
          std::uint32_t seed = static_cast<std::uint32_t>(p) * 7919u + 1u;
          for (int i = 0; i < per; ++i) {
            const int v = p * per + i;
            while (c.send_for(int{v}, std::chrono::microseconds(next_rand(seed) % 30)) !=
                   chan_status::ok) {
            }
          }
          prod.done();
        });
      }
      auto consume = [&](std::uint32_t seed) {
        for (;;) {
          int v = -1;
          const chan_status st = c.recv_for(v, std::chrono::microseconds(next_rand(seed) % 30));
          if (st == chan_status::closed) break;
          if (st == chan_status::ok) got[static_cast<std::size_t>(v)].fetch_add(1);
        }
        cons.done();
      };
      goro::go([&] { consume(11); });
      goro::go([&] { consume(23); });
      std::thread t([&] { consume(37); });
      prod.wait();
      c.close();
      cons.wait();
      t.join();
      int wrong = 0;
      for (const auto& g : got)
        if (g.load() != 1) ++wrong;
      EXPECT_EQ(wrong, 0) << "cap " << cap << ": values not received exactly once";
    }
  });
}

// Deadlines that pass while the operation parks (timeouts of a few
// microseconds): the deadline timer may fire, on another thread, before the
// park has finished committing; the operation must still simply time out.
TEST_P(chan_procs, timed_operations_whose_deadline_passes_while_parking) {
  run_in(procs(), [] {
    auto empty = make_chan<int>();
    auto full = make_chan<int>(1);
    full.send(0);
    const int gs = 8;
    const int iters = scaled(2000, 300);
    std::atomic<int> wrong{0};
    goro::wait_group wg;
    wg.add(gs);
    for (int g = 0; g < gs; ++g) {
      goro::go([&, g] {
        std::uint32_t seed = static_cast<std::uint32_t>(g) * 104729u + 7u;
        for (int i = 0; i < iters; ++i) {
          const auto d = std::chrono::nanoseconds(next_rand(seed) % 3000);
          int v = 0;
          const chan_status st = g % 2 == 0 ? empty.recv_for(v, d) : full.send_for(1, d);
          if (st != chan_status::timeout) wrong.fetch_add(1);
        }
        wg.done();
      });
    }
    wg.wait();
    EXPECT_EQ(wrong.load(), 0);
    EXPECT_EQ(queued(empty, false) + queued(full, true), 0u);
  });
}

// ------------------------------------------------------- receive forms ---

// recv(T&) returns the ok flag; try_recv(T&) tells not_ready from closed.
TEST_P(chan_procs, receive_forms_report_ok_not_ready_and_closed) {
  run_in(procs(), [] {
    auto c = make_chan<int>(2);
    int v = -1;
    EXPECT_EQ(c.try_recv(v), chan_status::not_ready);
    EXPECT_EQ(v, -1);
    c.send(5);
    EXPECT_EQ(c.try_recv(v), chan_status::ok);
    EXPECT_EQ(v, 5);
    c.send(6);
    c.close();
    EXPECT_TRUE(c.recv(v));
    EXPECT_EQ(v, 6);
    EXPECT_FALSE(c.recv(v));
    EXPECT_EQ(v, 6);
    EXPECT_EQ(c.try_recv(v), chan_status::closed);

    // Unbuffered: try_recv succeeds only with a sender blocked, and try_send
    // only with a receiver blocked.
    auto u = make_chan<int>();
    EXPECT_EQ(u.try_recv(v), chan_status::not_ready);
    EXPECT_EQ(u.try_send(1), chan_status::not_ready);
    goro::wait_group wg;
    wg.add(1);
    goro::go([&] {
      u.send(9);
      EXPECT_EQ(u.recv(), 10);
      wg.done();
    });
    EXPECT_TRUE(await_senders(u, 1));
    EXPECT_EQ(u.try_recv(v), chan_status::ok);
    EXPECT_EQ(v, 9);
    EXPECT_TRUE(await_receivers(u, 1));
    EXPECT_EQ(u.try_send(10), chan_status::ok);
    wg.wait();
    u.close();
    EXPECT_EQ(u.try_recv(v), chan_status::closed);
    EXPECT_EQ(u.try_recv(), std::nullopt);
  });
}

// range-for drains the buffer after close, then ends; over an empty closed
// channel the body never runs; over a view fed by a goroutine it sees all.
TEST_P(chan_procs, range_for_drains_the_buffer_then_ends) {
  run_in(procs(), [] {
    auto c = make_chan<int>(5);
    for (int i = 0; i < 5; ++i) c.send(int{i});
    c.close();
    std::vector<int> got;
    for (int v : c) got.push_back(v);
    EXPECT_EQ(got, (std::vector<int>{0, 1, 2, 3, 4}));
    for (int v : c) ADD_FAILURE() << "got " << v << " from a drained, closed channel";

    auto d = make_chan<int>();
    goro::wait_group wg;
    wg.add(1);
    goro::go([s = goro::send_chan<int>(d), &wg] {
      for (int i = 0; i < 100; ++i) s.send(int{i});
      s.close();
      wg.done();
    });
    const goro::recv_chan<int> r = d;
    int expect = 0;
    for (int v : r) EXPECT_EQ(v, expect++);
    EXPECT_EQ(expect, 100);
    wg.wait();
  });
}

// ------------------------------------------------------------- handles ---

// Copies of a handle share one channel and compare equal; moves leave nil.
TEST_P(chan_procs, handles_share_a_channel_and_compare_by_identity) {
  run_in(procs(), [] {
    auto a = make_chan<int>(3);
    goro::chan<int> b = a;
    EXPECT_TRUE(a == b);
    EXPECT_TRUE(a);
    a.send(1);
    EXPECT_EQ(b.len(), 1u);
    EXPECT_EQ(b.recv(), 1);
    auto other = make_chan<int>(3);
    EXPECT_FALSE(a == other);
    EXPECT_TRUE(a != other);
    goro::chan<int> m = std::move(b);
    EXPECT_TRUE(b.is_nil());  // NOLINT(bugprone-use-after-move): moved-from is nil
    EXPECT_TRUE(m == a);
    m = other;
    EXPECT_TRUE(m == other);
    m.swap(b);
    EXPECT_TRUE(m.is_nil());
    EXPECT_TRUE(b == other);
    a.close();
    goro::chan<int> c = a;
    EXPECT_EQ(c.recv(), std::nullopt) << "closed through another handle";
  });
}

TEST(chan, make_chan_rejects_an_impossible_capacity) {
  EXPECT_THROW(make_chan<big>(std::numeric_limits<std::size_t>::max()), std::length_error);
  EXPECT_THROW(make_chan<int>(std::numeric_limits<std::size_t>::max() / 2), std::length_error);
}

// ------------------------------------------------------------ ordering ---

// Blocked receivers are served in the order they blocked, and blocked senders
// deliver in the order they blocked, behind what is buffered (Go's waitq is a
// FIFO).
TEST_P(chan_procs, blocked_operations_are_served_in_fifo_order) {
  run_in(procs(), [] {
    for (std::size_t cap : {0u, 2u}) {
      auto c = make_chan<int>(cap);
      const int k = 8;
      std::vector<int> got(k, -1);
      goro::wait_group wg;
      wg.add(k);
      for (int i = 0; i < k; ++i) {
        goro::go([&, i] {
          got[static_cast<std::size_t>(i)] = c.recv().value_or(-2);
          wg.done();
        });
        ASSERT_TRUE(await_receivers(c, static_cast<std::size_t>(i + 1)));
      }
      for (int i = 0; i < k; ++i) c.send(int{i});
      wg.wait();
      for (int i = 0; i < k; ++i)
        EXPECT_EQ(got[static_cast<std::size_t>(i)], i) << "cap " << cap << ": receiver " << i;

      for (std::size_t i = 0; i < cap; ++i) c.send(static_cast<int>(i));
      wg.add(k);
      for (int i = 0; i < k; ++i) {
        goro::go([&, i] {
          c.send(static_cast<int>(cap) + i);
          wg.done();
        });
        ASSERT_TRUE(await_senders(c, static_cast<std::size_t>(i + 1)));
      }
      for (int i = 0; i < static_cast<int>(cap) + k; ++i) EXPECT_EQ(c.recv(), i) << "cap " << cap;
      wg.wait();
    }
  });
}

// Go's memory model for channels (chan.hpp): a send happens before the
// receive completes; an unbuffered receive happens before its send completes;
// the k-th receive on a channel of capacity C happens before the (k+C)-th send
// completes. Plain data is carried across each edge; TSan reports a missing one.
TEST_P(chan_procs, memory_ordering_edges) {
  run_in(procs(), [] {
    const int n = scaled(300, 100);
    for (std::size_t cap : {0u, 1u, 4u}) {
      std::vector<int> by_sender(static_cast<std::size_t>(n), 0);    // written before send i
      std::vector<int> by_receiver(static_cast<std::size_t>(n), 0);  // written before receive k
      auto c = make_chan<int>(cap);
      const int lag = static_cast<int>(cap);
      std::atomic<int> wrong{0};
      goro::wait_group wg;
      wg.add(1);
      goro::go([&] {
        for (int i = 0; i < n; ++i) {
          by_sender[static_cast<std::size_t>(i)] = i * 3;
          c.send(int{i});
          if (i >= lag && by_receiver[static_cast<std::size_t>(i - lag)] != i - lag + 7)
            wrong.fetch_add(1);
        }
        wg.done();
      });
      for (int k = 0; k < n; ++k) {
        by_receiver[static_cast<std::size_t>(k)] = k + 7;
        const int v = c.recv().value_or(0);
        if (by_sender[static_cast<std::size_t>(v)] != v * 3) wrong.fetch_add(1);
      }
      wg.wait();
      EXPECT_EQ(wrong.load(), 0) << "cap " << cap;
    }
  });
}

// --------------------------------------------------- threads and goroutines ---

// Plain threads and goroutines on one channel: threads blocked in recv and
// send are woken by goroutines, goroutines blocked are woken by threads, and
// a mixed crowd of both exchanges values exactly once.
TEST_P(chan_procs, threads_and_goroutines_mixed) {
  run_in(procs(), [] {
    const int ts = 3;
    {  // (1) threads block in recv, goroutines send
      auto c = make_chan<int>();
      goro::wait_group threads_done;
      threads_done.add(ts);
      std::atomic<int> sum{0};
      std::vector<std::thread> threads;
      for (int i = 0; i < ts; ++i) {
        threads.emplace_back([&] {
          sum.fetch_add(c.recv().value_or(100));
          threads_done.done();
        });
      }
      EXPECT_TRUE(await_receivers(c, ts));
      for (int i = 1; i <= ts; ++i) goro::go([c, i] { c.send(int{i}); });
      threads_done.wait();
      for (auto& t : threads) t.join();
      EXPECT_EQ(sum.load(), ts * (ts + 1) / 2);
    }
    {  // (2) threads block in send, goroutines receive
      auto c = make_chan<int>(1);
      c.send(0);
      goro::wait_group threads_done, received;
      threads_done.add(ts);
      received.add(ts + 1);
      std::atomic<int> sum{0};
      std::vector<std::thread> threads;
      for (int i = 1; i <= ts; ++i) {
        threads.emplace_back([&, i] {
          c.send(int{i});
          threads_done.done();
        });
      }
      EXPECT_TRUE(await_senders(c, ts));
      for (int i = 0; i <= ts; ++i) {
        goro::go([&] {
          sum.fetch_add(c.recv().value_or(100));
          received.done();
        });
      }
      threads_done.wait();
      received.wait();
      for (auto& t : threads) t.join();
      EXPECT_EQ(sum.load(), ts * (ts + 1) / 2);
    }
    {  // (3) goroutines block in recv and send, threads wake them
      auto r = make_chan<int>();
      auto s = make_chan<int>();
      goro::wait_group done;
      done.add(2 * ts);
      std::atomic<int> sum{0};
      for (int i = 0; i < ts; ++i) {
        goro::go([&] {
          sum.fetch_add(r.recv().value_or(100));
          done.done();
        });
        goro::go([&, i] {
          s.send(10 * (i + 1));
          done.done();
        });
      }
      EXPECT_TRUE(await_receivers(r, ts));
      EXPECT_TRUE(await_senders(s, ts));
      std::thread t([&] {
        for (int i = 1; i <= ts; ++i) r.send(int{i});
        for (int i = 0; i < ts; ++i) sum.fetch_add(s.recv().value_or(100));
      });
      done.wait();
      t.join();
      EXPECT_EQ(sum.load(), ts * (ts + 1) / 2 + 10 * ts * (ts + 1) / 2);
    }
    // (4) a crowd: threads and goroutines producing and consuming.
    for (std::size_t cap : {0u, 4u}) {
      auto c = make_chan<int>(cap);
      const int producers = 4;  // 2 threads, 2 goroutines
      const int per = scaled(2000, 300);
      std::vector<std::atomic<int>> got(static_cast<std::size_t>(producers * per));
      goro::wait_group produced, consumed;
      produced.add(producers);
      consumed.add(4);
      auto produce = [&](int p) {
        for (int i = 0; i < per; ++i) c.send(p * per + i);
        produced.done();
      };
      auto consume = [&] {
        for (int v : c) got[static_cast<std::size_t>(v)].fetch_add(1);
        consumed.done();
      };
      std::vector<std::thread> threads;
      threads.emplace_back(produce, 0);
      threads.emplace_back(produce, 1);
      threads.emplace_back(consume);
      threads.emplace_back(consume);
      goro::go([&] { produce(2); });
      goro::go([&] { produce(3); });
      goro::go{consume};
      goro::go{consume};
      produced.wait();
      c.close();
      consumed.wait();
      for (auto& t : threads) t.join();
      int wrong = 0;
      for (const auto& g : got)
        if (g.load() != 1) ++wrong;
      EXPECT_EQ(wrong, 0) << "cap " << cap;
    }
  });
}

// With no runtime at all: plain threads, blocking, timed and closing.
TEST(chan, works_between_plain_threads_without_a_runtime) {
  auto c = make_chan<int>();
  auto results = make_chan<long long>(2);
  std::vector<std::thread> threads;
  for (int r = 0; r < 2; ++r) {
    threads.emplace_back([&] {
      long long sum = 0;
      for (int v : c) sum += v;
      results.send(sum);
    });
  }
  for (int i = 1; i <= 1000; ++i) c.send(int{i});
  c.close();
  EXPECT_EQ(results.recv().value_or(0) + results.recv().value_or(0), 1000LL * 1001 / 2);
  for (auto& t : threads) t.join();
  EXPECT_EQ(results.recv_for(1ms), std::nullopt);
  EXPECT_EQ(results.try_send(1), chan_status::ok);
  EXPECT_EQ(goro::num_goroutines(), 0);
}

}  // namespace
