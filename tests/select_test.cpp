// select (goro/select.hpp, Go's select statement and reflect.Select): random
// choice among ready cases, default, nil and closed channels, blocking until a
// case is ready, exactly one case per select however wakers race, callbacks,
// send cases that move only when chosen, the dynamic form, value lifetimes,
// memory ordering, and plain threads mixed with goroutines.
//
// Ported Go tests name their source: go/src/runtime/chan_test.go and the
// programs of go/test/chan/. The statistical tests compute their own chance
// of failing for a correct implementation and assert that it is below 1e-9.
// White-box helpers as in chan_test.cpp: queued() counts the operations
// waiting in a channel's queues, so a test knows a select is blocked; the
// blocks-forever test reads a goroutine's status to see it parked.
#include <gtest/gtest.h>

#include <algorithm>
#include <any>
#include <array>
#include <atomic>
#include <bit>
#include <chrono>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
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
using goro::on_default;
using goro::on_recv;
using goro::on_send;
using goro::select_case;
using goro_test::eventually;
using goro_test::run_in;
using goro_test::scaled;

class select_procs : public goro_test::procs_test {};
GORO_INSTANTIATE_PROCS(select_procs);

// ------------------------------------------------------------- helpers ---

/// Operations waiting in the send (senders = true) or receive queue of the
/// channel behind h, selects included. White-box: read under the lock.
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

template <class H>
[[nodiscard]] bool await_receivers(const H& h, std::size_t n) {
  return eventually([&] { return queued(h, false) == n; });
}

template <class H>
[[nodiscard]] bool await_senders(const H& h, std::size_t n) {
  return eventually([&] { return queued(h, true) == n; });
}

/// P(X < lo) + P(X > hi) for X ~ Binomial(n, p): the chance that a choice
/// with probability p, made n times, is made fewer than lo or more than hi
/// times. Summed term by term in long double.
double binomial_outside(int n, long double p, int lo, int hi) {
  long double total = 0;
  for (int k = 0; k <= n; ++k) {
    if (k >= lo && k <= hi) continue;
    total += std::exp(std::lgamma(n + 1.0L) - std::lgamma(k + 1.0L) - std::lgamma(n - k + 1.0L) +
                      k * std::log(p) + (n - k) * std::log1p(-p));
  }
  return static_cast<double>(total);
}

/// The same for a fair coin: one side fewer than lo or more than hi times.
double fair_coin_outside(int n, int lo, int hi) { return binomial_outside(n, 0.5L, lo, hi); }

/// Counts live instances; notices double destruction. No default constructor.
struct tracked {
  static inline std::atomic<long> live{0};
  static inline std::atomic<long> bad{0};
  static constexpr std::uint32_t alive = 0xA11CE5u;
  static constexpr std::uint32_t dead = 0xDEADu;

  int value;
  std::atomic<std::uint32_t> magic{alive};

  explicit tracked(int v) noexcept : value(v) { live.fetch_add(1); }
  tracked(const tracked& o) noexcept : value(o.value) {
    check(o);
    live.fetch_add(1);
  }
  tracked(tracked&& o) noexcept : value(std::exchange(o.value, -1)) {
    check(o);
    live.fetch_add(1);
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

/// A callback for cases that must never run.
struct never_chosen {
  const char* what;
  void operator()() const { ADD_FAILURE() << what << " was chosen"; }
};

// --------------------------------------------------- fairness (statistics) ---

// Go: TestSelectFairness (runtime/chan_test.go). Two receive cases always
// ready, listed after two that never are: each ready case must be chosen in
// 40%..60% of 2000 selects. The same for send cases and for the dynamic
// select. For a fair select the chance of one check failing is computed
// below: about 2e-19, far under the suite's 1e-9.
TEST_P(select_procs, go_test_select_fairness) {
  run_in(procs(), [] {
    constexpr int trials = 2000;
    constexpr int lo = trials * 2 / 5;
    constexpr int hi = trials * 3 / 5;
    const double p_fail = fair_coin_outside(trials, lo, hi);
    ASSERT_LT(p_fail, 1e-9) << "the test's own bound";

    auto never1 = make_chan<int>();
    auto never2 = make_chan<int>();
    auto c1 = make_chan<int>(trials);
    auto c2 = make_chan<int>(trials);
    for (int i = 0; i < trials; ++i) {
      c1.send(1);
      c2.send(2);
    }
    int n1 = 0, n2 = 0;
    for (int t = 0; t < trials; ++t) {
      goro::select(on_recv(never1), on_recv(never2), on_recv(c1, [&] { ++n1; }),
                   on_recv(c2, [&] { ++n2; }));
    }
    EXPECT_EQ(n1 + n2, trials);
    EXPECT_GE(n1, lo) << "unfair receive select: " << n1 << " / " << n2;
    EXPECT_LE(n1, hi) << "unfair receive select: " << n1 << " / " << n2;

    auto s1 = make_chan<int>(trials);
    auto s2 = make_chan<int>(trials);
    for (int t = 0; t < trials; ++t)
      goro::select(on_send(never1, 0), on_recv(never2), on_send(s1, 1), on_send(s2, 2));
    const int m1 = static_cast<int>(s1.len());
    EXPECT_EQ(m1 + static_cast<int>(s2.len()), trials);
    EXPECT_GE(m1, lo) << "unfair send select";
    EXPECT_LE(m1, hi) << "unfair send select";

    auto d1 = make_chan<int>(1);
    auto d2 = make_chan<int>(1);
    d1.send(1);
    d2.send(2);
    int k1 = 0;
    for (int t = 0; t < trials; ++t) {
      std::vector<select_case> cases;
      cases.push_back(select_case::recv(never1));
      cases.push_back(select_case::recv(d1));
      cases.push_back(select_case::recv(d2));
      const std::size_t i = goro::select(cases);
      if (i == 1) {
        ++k1;
        d1.send(1);
      } else {
        d2.send(2);
      }
    }
    EXPECT_GE(k1, lo) << "unfair dynamic select";
    EXPECT_LE(k1, hi) << "unfair dynamic select";
  });
}

// Uniform choice whichever cases are ready: for selects of 2 to 5 receive
// cases and every set of at least two ready ones (the others on channels
// with nothing to receive), each ready case must be chosen in 2/3..4/3 of
// its expected share of 2000 selects. Small selects take their poll order
// from a table of all orders, larger ones from a Fisher-Yates shuffle (5
// cases); a table missing or repeating an order fails here. Fair failure
// chance, summed over every check: computed below.
TEST_P(select_procs, every_ready_case_is_equally_likely_whichever_cases_are_ready) {
  run_in(procs(), [] {
    constexpr int trials = 2000;
    constexpr int max_cases = 5;
    const auto band = [](int ready) {
      const int share = trials / ready;
      return std::pair{share * 2 / 3, share * 4 / 3};
    };
    double p_fail = 0;
    for (int n = 2; n <= max_cases; ++n) {
      for (unsigned mask = 0; mask < (1u << n); ++mask) {
        const int ready = std::popcount(mask);
        if (ready < 2) continue;
        const auto [lo, hi] = band(ready);
        p_fail += ready * binomial_outside(trials, 1.0L / ready, lo, hi);
      }
    }
    ASSERT_LT(p_fail, 1e-9) << "the test's own bound";

    for (int n = 2; n <= max_cases; ++n) {
      for (unsigned mask = 0; mask < (1u << n); ++mask) {
        const int ready = std::popcount(mask);
        if (ready < 2) continue;
        std::vector<goro::chan<int>> chans;
        std::vector<select_case> cases;
        for (int i = 0; i < n; ++i) {
          const bool is_ready = ((mask >> i) & 1u) != 0;
          chans.push_back(is_ready ? make_chan<int>(1) : make_chan<int>());
          if (is_ready) chans.back().send(i);
          cases.push_back(select_case::recv(chans.back()));
        }
        std::array<int, max_cases> chosen{};
        for (int t = 0; t < trials; ++t) {
          const std::size_t i = goro::select(cases);
          ++chosen[i];
          chans[i].send(static_cast<int>(i));  // ready again
        }
        const auto [lo, hi] = band(ready);
        for (int i = 0; i < n; ++i) {
          if (((mask >> i) & 1u) == 0) {
            EXPECT_EQ(chosen[i], 0) << n << " cases, mask " << mask << ": case " << i;
          } else {
            EXPECT_GE(chosen[i], lo) << n << " cases, mask " << mask << ": case " << i;
            EXPECT_LE(chosen[i], hi) << n << " cases, mask " << mask << ": case " << i;
          }
        }
      }
    }
  });
}

// Go: TestPseudoRandomSend: 100 selects of two sends on one channel (a
// receiver waiting, or the select queued and taken later) deliver more than
// 10 of each value. Fair failure chance: computed below, about 3e-17.
TEST_P(select_procs, go_test_pseudo_random_send) {
  run_in(procs(), [] {
    const int n = 100;
    ASSERT_LT(fair_coin_outside(n, n / 10 + 1, n - n / 10 - 1), 1e-9);
    for (std::size_t cap : {std::size_t{0}, std::size_t{n}}) {
      auto c = make_chan<int>(cap);
      std::vector<int> got(n, -1);
      goro::wait_group wg;
      wg.add(1);
      goro::go([&] {
        for (int i = 0; i < n; ++i) {
          goro::yield();
          got[static_cast<std::size_t>(i)] = c.recv().value_or(-1);
        }
        wg.done();
      });
      for (int i = 0; i < n; ++i) goro::select(on_send(c, 1), on_send(c, 0));
      wg.wait();
      int zeros = 0, ones = 0;
      for (int v : got) (v == 0 ? zeros : ones) += 1;
      EXPECT_GT(zeros, n / 10) << "want pseudorandom, cap " << cap;
      EXPECT_GT(ones, n / 10) << "want pseudorandom, cap " << cap;
    }
  });
}

// -------------------------------------------------- ported Go behaviours ---

// Go: TestSelfSelect: two goroutines select a send and a receive on the same
// channel; on an unbuffered one a select must never match itself.
TEST_P(select_procs, go_test_self_select) {
  run_in(procs(), [] {
    for (std::size_t cap : {0u, 10u}) {
      const int iters = scaled(1000, 200);
      auto c = make_chan<int>(cap);
      std::atomic<int> self{0};
      goro::wait_group wg;
      wg.add(2);
      for (int p = 0; p < 2; ++p) {
        goro::go([&, p] {
          auto check = [&](std::optional<int> v) {
            if (cap == 0 && v == p) self.fetch_add(1);
          };
          for (int i = 0; i < iters; ++i) {
            if (p == 0 || i % 2 == 0) {
              goro::select(on_send(c, int{p}), on_recv(c, check));
            } else {
              goro::select(on_recv(c, check), on_send(c, int{p}));
            }
          }
          wg.done();
        });
      }
      wg.wait();
      EXPECT_EQ(self.load(), 0) << "self receive, cap " << cap;
    }
  });
}

// Go: TestSelectStress: plain senders and receivers on four channels (two
// unbuffered, two buffered) race with one select that sends on all four and
// one that receives from all four, each dropping a channel (to nil) once it
// has done its share; nothing deadlocks and all counts match.
TEST_P(select_procs, go_test_select_stress) {
  run_in(procs(), [] {
    const int n = scaled(3000, 300);
    const std::array<goro::chan<int>, 4> c{make_chan<int>(), make_chan<int>(), make_chan<int>(2),
                                           make_chan<int>(3)};
    goro::wait_group wg;
    wg.add(10);
    for (std::size_t k = 0; k < 4; ++k) {
      goro::go([&, k] {
        for (int i = 0; i < n; ++i) c[k].send(0);
        wg.done();
      });
      goro::go([&, k] {
        for (int i = 0; i < n; ++i) (void)c[k].recv();
        wg.done();
      });
    }
    goro::go([&] {
      std::array<goro::chan<int>, 4> live = c;
      std::array<int, 4> count{};
      auto sent = [&](std::size_t k) {
        return [&, k] {
          if (++count[k] == n) live[k] = goro::chan<int>{};
        };
      };
      for (int i = 0; i < 4 * n; ++i) {
        goro::select(on_send(live[3], 0, sent(3)), on_send(live[2], 0, sent(2)),
                     on_send(live[0], 0, sent(0)), on_send(live[1], 0, sent(1)));
      }
      wg.done();
    });
    goro::go([&] {
      std::array<goro::chan<int>, 4> live = c;
      std::array<int, 4> count{};
      auto got = [&](std::size_t k) {
        return [&, k] {
          if (++count[k] == n) live[k] = goro::chan<int>{};
        };
      };
      for (int i = 0; i < 4 * n; ++i) {
        goro::select(on_recv(live[0], got(0)), on_recv(live[1], got(1)), on_recv(live[2], got(2)),
                     on_recv(live[3], got(3)));
      }
      wg.done();
    });
    wg.wait();
  });
}

// Go: TestSelectDuplicateChannel: a select queued twice on one channel (and
// once on another) is woken through the other; it must take both of its
// waiters off the first, so that a later receiver there is woken correctly.
TEST_P(select_procs, go_test_select_duplicate_channel) {
  run_in(procs(), [] {
    auto c = make_chan<int>();
    auto d = make_chan<int>();
    auto e = make_chan<int>();
    goro::wait_group wg;
    wg.add(2);
    goro::go([&] {  // A
      std::optional<int> got;
      auto keep = [&](std::optional<int> v) { got = v; };
      goro::select(on_recv(c, keep), on_recv(c, keep), on_recv(d, keep));
      e.send(got.value_or(-1));
      wg.done();
    });
    EXPECT_TRUE(await_receivers(c, 2));
    EXPECT_TRUE(await_receivers(d, 1));
    std::atomic<int> b_got{0};
    goro::go([&] {  // B
      b_got.store(c.recv().value_or(-1));
      wg.done();
    });
    EXPECT_TRUE(await_receivers(c, 3));
    d.send(7);  // wakes A, which dequeues itself from c twice
    EXPECT_EQ(e.recv(), 7);
    EXPECT_EQ(queued(c, false), 1u) << "only B waits on c now";
    c.send(8);  // must wake B
    wg.wait();
    EXPECT_EQ(b_got.load(), 8);
  });
}

// Go: test/chan/select6.go (issue 2075): a select that lost on a channel where
// it was queued last, behind another waiter, must leave that channel's queue
// intact for the waiters that come after.
TEST_P(select_procs, go_select6_losing_case_leaves_the_queue_intact) {
  run_in(procs(), [] {
    auto c1 = make_chan<bool>();
    auto c2 = make_chan<bool>();
    auto c3 = make_chan<bool>();
    goro::wait_group wg;
    wg.add(3);
    goro::go([&] {
      (void)c1.recv();
      wg.done();
    });
    EXPECT_TRUE(await_receivers(c1, 1));
    goro::go([&] {
      goro::select(on_recv(c1, never_chosen{"c1"}), on_recv(c2, [&] { c3.send(true); }));
      (void)c1.recv();
      wg.done();
    });
    EXPECT_TRUE(await_receivers(c1, 2));
    goro::go([&] {
      c2.send(true);
      wg.done();
    });
    (void)c3.recv();
    c1.send(true);
    c1.send(true);
    wg.wait();
  });
}

// Go: test/chan/select7.go: every pairing of a plain, a one-case and a
// two-case receive with a plain, a one-case and a two-case send completes,
// the received value being discarded.
TEST_P(select_procs, go_select7_discarded_values) {
  using op = void (*)(const goro::chan<int>&);
  const std::array<op, 3> receivers{
      [](const goro::chan<int>& c) { (void)c.recv(); },
      [](const goro::chan<int>& c) { goro::select(on_recv(c)); },
      [](const goro::chan<int>& c) {
        auto other = make_chan<int>();
        goro::select(on_recv(c), on_recv(other));
      },
  };
  const std::array<op, 3> senders{
      [](const goro::chan<int>& c) { c.send(1); },
      [](const goro::chan<int>& c) { goro::select(on_send(c, 1)); },
      [](const goro::chan<int>& c) {
        auto other = make_chan<int>();
        goro::select(on_send(c, 1), on_send(other, 1));
      },
  };
  run_in(procs(), [&] {
    for (op receive : receivers) {
      for (op send_op : senders) {
        auto c = make_chan<int>();
        goro::wait_group wg;
        wg.add(1);
        goro::go([&] {
          receive(c);
          wg.done();
        });
        goro::yield();
        send_op(c);
        wg.wait();
      }
    }
  });
}

// A receive case whose callback takes no value drops the value (trivially
// destructible types are dropped inside the channel, others outside it):
// exactly one value goes, the head, whether it was buffered or handed over
// to a parked select; nothing leaks or is destroyed twice.
TEST_P(select_procs, a_receive_case_without_a_value_takes_exactly_the_head) {
  run_in(procs(), [] {
    auto c = make_chan<int>(3);
    c.send(1);
    c.send(2);
    c.send(3);
    int ran = 0;
    goro::select(on_recv(c, [&] { ++ran; }));
    goro::select(on_recv(c));
    EXPECT_EQ(ran, 1);
    EXPECT_EQ(c.recv(), 3);
    EXPECT_EQ(c.len(), 0u);
    // Parked first: the sender hands its value to the waiting select.
    goro::wait_group wg;
    wg.add(1);
    goro::go([&] {
      goro::select(on_recv(c, [&] { ++ran; }));
      wg.done();
    });
    goro::yield();
    c.send(4);
    c.send(5);
    wg.wait();
    EXPECT_EQ(ran, 2);
    EXPECT_EQ(c.recv(), 5);

    const long live0 = tracked::live.load();
    const long bad0 = tracked::bad.load();
    {
      auto t = make_chan<tracked>(2);
      t.send(tracked(1));
      t.send(tracked(2));
      goro::select(on_recv(t, [] {}));
      EXPECT_EQ(t.recv()->value, 2);
    }
    EXPECT_EQ(tracked::live.load(), live0);
    EXPECT_EQ(tracked::bad.load(), bad0);
  });
}

// Go: TestNonblockRecvRace: a select with default receiving from a channel
// that holds a value, racing with its close: the receive is ready either way,
// so default must never run.
TEST_P(select_procs, go_test_nonblock_recv_race) {
  run_in(procs(), [] {
    const int n = scaled(2000, 300);
    std::atomic<int> defaults{0};
    goro::wait_group wg;
    wg.add(n);
    for (int i = 0; i < n; ++i) {
      auto c = make_chan<int>(1);
      c.send(1);
      goro::go([c, &defaults, &wg] {
        goro::select(on_recv(c), on_default([&] { defaults.fetch_add(1); }));
        wg.done();
      });
      c.close();
      (void)c.recv();
    }
    wg.wait();
    EXPECT_EQ(defaults.load(), 0) << "default taken while a receive was ready";
  });
}

// Go: TestNonblockSelectRace and TestNonblockSelectRace2: select acts on the
// channels' state at one instant. From the moment the selecting goroutine
// starts, one of c1 and c2 is always ready (c2 by a send, or by close in the
// second form) while c1 may be drained; default must never run.
TEST_P(select_procs, go_test_nonblock_select_race) {
  run_in(procs(), [] {
    const int n = scaled(2000, 300);
    for (const bool close_c2 : {false, true}) {
      std::atomic<int> defaults{0};
      goro::wait_group wg;
      wg.add(n);
      for (int i = 0; i < n; ++i) {
        auto c1 = make_chan<int>(1);
        auto c2 = make_chan<int>(close_c2 ? 0 : 1);
        c1.send(1);
        goro::go([c1, c2, &defaults, &wg] {
          goro::select(on_recv(c1), on_recv(c2), on_default([&] { defaults.fetch_add(1); }));
          wg.done();
        });
        if (close_c2) {
          c2.close();
        } else {
          c2.send(1);
        }
        goro::select(on_recv(c1), on_default());
      }
      wg.wait();
      EXPECT_EQ(defaults.load(), 0) << (close_c2 ? "close" : "send") << ": no chan was ready";
    }
  });
}

// Go: TestChanSendInterface: select sends of type-erased values (Go's
// interface values; std::any and shared_ptr to a base here) on a full
// channel take the default.
TEST_P(select_procs, go_test_chan_send_interface) {
  struct base {
    virtual ~base() = default;
    virtual int id() const { return 1; }
  };
  struct derived : base {
    int id() const override { return 2; }
  };
  run_in(procs(), [] {
    struct mt {};
    mt m;
    auto c = make_chan<std::any>(1);
    c.send(std::any(&m));
    EXPECT_EQ(goro::select(on_send(c, std::any(&m)), on_default()), 1u);
    EXPECT_EQ(goro::select(on_send(c, std::any(&m)), on_send(c, std::any(mt{})), on_default()), 2u);
    EXPECT_EQ(std::any_cast<mt*>(c.recv().value()), &m);

    auto p = make_chan<std::shared_ptr<base>>(1);
    std::shared_ptr<base> b = std::make_shared<derived>();
    EXPECT_EQ(goro::select(on_send(p, b), on_default()), 0u);
    EXPECT_EQ(b, nullptr) << "an lvalue send case that ran moves from its value";
    EXPECT_EQ(goro::select(on_send(p, std::make_shared<base>()), on_default()), 1u);
    EXPECT_EQ(p.recv().value()->id(), 2);
  });
}

// Go: test/chan/select3.go, the half that returns: nil cases are never chosen,
// a default does not block, ready and closed cases are chosen over default,
// receives from a closed channel never block, sends on it panic.
TEST_P(select_procs, go_select3_nonblocking_semantics) {
  run_in(procs(), [] {
    goro::chan<int> nil;
    auto closed = make_chan<int>();
    closed.close();

    EXPECT_EQ(goro::select(on_send(nil, 7, never_chosen{"nil send"}), on_default()), 1u);
    EXPECT_EQ(goro::select(on_recv(nil, never_chosen{"nil recv"}), on_default()), 1u);
    EXPECT_EQ(goro::select(on_default()), 0u);

    auto async = make_chan<int>(1);
    EXPECT_EQ(goro::select(on_send(async, 7), on_default(never_chosen{"default"})), 0u);
    EXPECT_EQ(goro::select(on_recv(async), on_default(never_chosen{"default"})), 0u);

    for (int i = 0; i < 10; ++i) {
      bool called = false;
      EXPECT_EQ(goro::select(on_recv(closed,
                                     [&](std::optional<int> v) {
                                       called = true;
                                       EXPECT_EQ(v, std::nullopt);
                                     }),
                             on_default(never_chosen{"default"})),
                0u);
      EXPECT_TRUE(called);
      EXPECT_EQ(goro::select(on_recv(closed)), 0u);
    }
    EXPECT_THROW(goro::select(on_send(closed, 7)), goro::panic_error);
    EXPECT_THROW(goro::select(on_send(closed, 7), on_default()), goro::panic_error)
        << "a send on a closed channel is ready: it panics rather than take default";
  });
}

// Go: test/chan/doubleselect.go: one goroutine sends a counter through a
// select of four unbuffered channels, four goroutines forward to one channel;
// no value may come out twice (two cases of one select both running).
TEST_P(select_procs, go_doubleselect) {
  run_in(procs(), [] {
    const int n = scaled(10000, 1000);
    const std::array<goro::chan<int>, 4> c{make_chan<int>(), make_chan<int>(), make_chan<int>(),
                                           make_chan<int>()};
    auto cmux = make_chan<int>();
    goro::wait_group muxes, closer;
    muxes.add(4);
    closer.add(1);
    goro::go([&] {
      for (int i = 0; i < n; ++i)
        goro::select(on_send(c[0], int{i}), on_send(c[1], int{i}), on_send(c[2], int{i}),
                     on_send(c[3], int{i}));
      for (const auto& ch : c) ch.close();
    });
    for (const auto& ch : c) {
      goro::go([in = goro::recv_chan<int>(ch), out = goro::send_chan<int>(cmux), &muxes] {
        for (int v : in) out.send(int{v});
        muxes.done();
      });
    }
    goro::go([&] {
      muxes.wait();
      cmux.close();
      closer.done();
    });
    std::vector<char> seen(static_cast<std::size_t>(n), 0);
    int count = 0, dups = 0;
    for (int v : cmux) {
      if (seen[static_cast<std::size_t>(v)]++ != 0) ++dups;
      ++count;
    }
    closer.wait();
    EXPECT_EQ(dups, 0);
    EXPECT_EQ(count, n);
  });
}

// Go: test/chan/select.go: a select with default sends once on each of two
// buffered channels (dropping each to nil once used), then takes default;
// every case's value expression is evaluated each time the select runs.
TEST_P(select_procs, go_select_random_choice_with_default) {
  run_in(procs(), [] {
    unsigned counter = 0, shift = 0;
    auto get_value = [&] {
      ++counter;
      return 1u << shift;
    };
    auto send = [&](goro::chan<unsigned> a, goro::chan<unsigned> b) {
      int i = 0;
      for (;;) {
        bool done = false;
        goro::select(on_send(a, get_value(),
                             [&] {
                               ++i;
                               a = goro::chan<unsigned>{};
                             }),
                     on_send(b, get_value(),
                             [&] {
                               ++i;
                               b = goro::chan<unsigned>{};
                             }),
                     on_default([&] { done = true; }));
        if (done) break;
        ++shift;
      }
      return i;
    };
    auto a = make_chan<unsigned>(1);
    auto b = make_chan<unsigned>(1);
    EXPECT_EQ(send(a, b), 2);
    EXPECT_EQ(a.recv().value_or(0) | b.recv().value_or(0), 3u);
    EXPECT_EQ(send(a, goro::chan<unsigned>{}), 1);
    EXPECT_EQ(counter, 10u);
  });
}

// Go: test/chan/sendstmt.go: a send case on a channel that was itself just
// received from a channel of channels; and a send of an expression.
TEST_P(select_procs, go_sendstmt) {
  run_in(procs(), [] {
    auto cc = make_chan<goro::chan<int>>(1);
    auto c = make_chan<int>(1);
    cc.send(goro::chan<int>(c));
    EXPECT_EQ(goro::select(on_send(cc.recv().value(), 2), on_default(never_chosen{"default"})), 0u);
    EXPECT_EQ(c.recv(), 2);
    auto b = make_chan<bool>(1);
    b.send(false || true);
    EXPECT_EQ(b.recv(), true);
  });
}

// Go: test/chan/nonblock.go: non-blocking selects (with default) on several
// element types fail while nobody is there, and retried succeed once the
// partner (or buffer room) is.
template <class T>
void nonblock_select_exchange(std::size_t buffer, const T& from_main, const T& from_peer) {
  auto c = make_chan<T>(buffer);
  auto sync = make_chan<bool>();
  goro::select(on_recv(c, never_chosen{"blocked sender"}), on_default());

  goro::go([c, sync, from_main] {
    EXPECT_EQ(c.recv(), from_main);
    sync.send(true);
  });
  bool sent = false;
  while (!sent)
    goro::select(on_send(c, T(from_main), [&] { sent = true; }), on_default([] { goro::yield(); }));
  (void)sync.recv();

  goro::go([c, sync, from_peer] {
    c.send(T(from_peer));
    sync.send(true);
  });
  if (buffer > 0) (void)sync.recv();
  std::optional<T> got;
  while (!got) {
    goro::select(on_recv(c, [&](std::optional<T> v) { got = std::move(v); }),
                 on_default([] { goro::yield(); }));
  }
  EXPECT_EQ(*got, from_peer);
  if (buffer == 0) (void)sync.recv();
}

TEST_P(select_procs, go_nonblock_selects_with_default) {
  run_in(procs(), [] {
    for (std::size_t buffer = 0; buffer < 2; ++buffer) {
      nonblock_select_exchange<std::int32_t>(buffer, 123, 234);
      nonblock_select_exchange<std::int64_t>(buffer, 123456, 234567);
      nonblock_select_exchange<bool>(buffer, true, true);
      nonblock_select_exchange<std::string>(buffer, "hello", "hello again");
    }
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

// Go: test/chan/select3.go, the blocking half: a select with no cases
// (variadic or dynamic), with only nil channels, with a channel nobody is
// ready on, or with a send and a receive on one unbuffered channel (it must
// not match itself) blocks forever: the goroutines park and nothing wakes
// them. They are abandoned when run() returns, so this test calls goro::run
// itself (run_in would report them as leaked); what they use outlives it.
TEST(select_blocks_forever, empty_nil_only_unready_and_self_selects) {
  goro::chan<int> nil;
  auto unready = make_chan<int>();
  auto self = make_chan<int>();
  std::vector<select_case> no_cases;
  std::atomic<int> returned{0};
  std::array<std::atomic<goro::detail::G*>, 7> gs{};
  goro::run(goro::run_options{.maxprocs = 2}, [&] {
    auto start = [&](std::size_t i, auto op) {
      goro::go([&, i, op] {
        gs[i].store(goro::detail::current_g());
        op();
        returned.fetch_add(1);
      });
    };
    start(0, [] { goro::select(); });
    start(1, [&] { goro::select(std::span<select_case>(no_cases)); });
    start(2, [&] { goro::select(on_recv(nil, never_chosen{"nil recv"})); });
    start(3, [&] { goro::select(on_send(nil, 7, never_chosen{"nil send"})); });
    start(4, [&] { goro::select(on_recv(nil), on_send(nil, 7)); });
    start(5, [&] { goro::select(on_recv(unready)); });
    start(6, [&] { goro::select(on_send(self, 1), on_recv(self)); });
    EXPECT_TRUE(eventually([] { return goro::num_goroutines() == 8; }));
    EXPECT_TRUE(eventually([&] { return all_parked(gs); })) << "blocked, but not parked";
    goro::sleep_for(5ms);  // only gives a wrong wake-up the chance to show
    EXPECT_EQ(returned.load(), 0);
    EXPECT_TRUE(all_parked(gs));
  });
  EXPECT_EQ(returned.load(), 0);
}

// ------------------------------------------------------ goro's contract ---

// select returns the chosen case's position among its arguments (default
// included) and runs that case's callback only; cases without a callback
// just do the operation.
TEST_P(select_procs, returns_the_position_and_runs_only_the_chosen_callback) {
  run_in(procs(), [] {
    auto ready = make_chan<int>(1);
    auto empty = make_chan<int>(1);
    ready.send(10);
    std::vector<int> ran;
    EXPECT_EQ(
        goro::select(on_recv(empty, [&](std::optional<int>) { ran.push_back(0); }),
                     on_recv(ready, [&](std::optional<int> v) { ran.push_back(v.value_or(0)); }),
                     on_default([&] { ran.push_back(-1); })),
        1u);
    EXPECT_EQ(ran, std::vector<int>{10});
    EXPECT_EQ(goro::select(on_default([&] { ran.push_back(-1); }), on_recv(empty)), 0u);
    EXPECT_EQ(ran, (std::vector<int>{10, -1}));

    EXPECT_EQ(goro::select(on_recv(ready), on_send(empty, 5)), 1u);
    EXPECT_EQ(empty.recv(), 5);
    ready.send(3);
    EXPECT_EQ(goro::select(on_recv(ready)), 0u);  // the value is discarded
    EXPECT_EQ(ready.len(), 0u);
    EXPECT_EQ(goro::select(on_send(ready, 4, [&] { ran.push_back(4); }), on_recv(empty)), 0u);
    EXPECT_EQ(ran, (std::vector<int>{10, -1, 4}));
    EXPECT_EQ(ready.recv(), 4);
  });
}

// Callbacks run after every channel lock is released (they may use the same
// channels); an exception from a callback propagates and leaves the channels
// consistent.
TEST_P(select_procs, callbacks_run_unlocked_and_may_throw) {
  run_in(procs(), [] {
    auto c = make_chan<int>(1);
    c.send(1);
    goro::select(on_recv(c, [&](std::optional<int> v) { c.send(v.value_or(0) + 1); }));
    EXPECT_EQ(c.recv(), 2);
    goro::select(on_send(c, 5, [&] { EXPECT_EQ(c.recv(), 5); }));
    EXPECT_EQ(c.len(), 0u);

    c.send(3);
    EXPECT_THROW(
        goro::select(on_recv(c, [](std::optional<int>) { throw std::runtime_error("cb"); })),
        std::runtime_error);
    EXPECT_EQ(c.len(), 0u) << "the case ran before its callback threw";
    c.send(4);
    EXPECT_EQ(c.recv(), 4);

    std::vector<select_case> cases;
    cases.push_back(select_case::send(c, 6, [] { throw std::runtime_error("cb"); }));
    EXPECT_THROW(goro::select(cases), std::runtime_error);
    EXPECT_EQ(c.recv(), 6);
  });
}

// A receive case chosen because its channel is closed reports std::nullopt:
// already closed, closed while the select is blocked (goroutine or thread),
// and after the buffer is drained.
TEST_P(select_procs, recv_case_chosen_by_close_reports_nullopt) {
  run_in(procs(), [] {
    auto never = make_chan<int>();
    auto closed = make_chan<int>(2);
    closed.send(1);
    closed.close();
    std::vector<std::optional<int>> got;
    auto keep = [&](std::optional<int> v) { got.push_back(v); };
    for (int i = 0; i < 3; ++i) EXPECT_EQ(goro::select(on_recv(never), on_recv(closed, keep)), 1u);
    EXPECT_EQ(got, (std::vector<std::optional<int>>{1, std::nullopt, std::nullopt}));

    for (const bool on_thread : {false, true}) {
      auto a = make_chan<int>();
      auto b = make_chan<int>(3);
      std::atomic<std::size_t> index{99};
      std::optional<int> value = 5;
      goro::wait_group wg;
      wg.add(1);
      auto blocked = [&] {
        index.store(goro::select(on_recv(a, [&](std::optional<int> v) { value = v; }),
                                 on_recv(b, [&](std::optional<int> v) { value = v; })));
        wg.done();
      };
      std::thread t;
      if (on_thread) {
        t = std::thread(blocked);
      } else {
        goro::go{blocked};
      }
      EXPECT_TRUE(await_receivers(a, 1));
      EXPECT_TRUE(await_receivers(b, 1));
      b.close();
      wg.wait();
      if (t.joinable()) t.join();
      EXPECT_EQ(index.load(), 1u);
      EXPECT_EQ(value, std::nullopt);
      EXPECT_EQ(queued(a, false), 0u) << "the losing case's waiter is gone";
    }
  });
}

// A send case given an lvalue moves from it only if that case runs: not when
// another case or default is chosen, not when the select is woken through
// another case, not when it panics. A const lvalue is copied. (Strings longer
// than the small-string buffer, so that a move visibly empties them.)
TEST_P(select_procs, lvalue_send_case_is_moved_only_when_chosen) {
  run_in(procs(), [] {
    const std::string one(40, '1'), two(40, '2');
    auto full = make_chan<std::string>(1);
    full.send("0");
    auto room = make_chan<std::string>(1);
    std::string a = one;
    std::string b = two;
    EXPECT_EQ(goro::select(on_send(full, a), on_send(room, b)), 1u);
    EXPECT_EQ(a, one);
    EXPECT_TRUE(b.empty()) << "the chosen case moves";
    EXPECT_EQ(room.recv(), two);
    EXPECT_EQ(goro::select(on_send(full, a), on_default()), 1u);
    EXPECT_EQ(a, one);

    // Blocked, then woken through another case.
    auto unbuffered = make_chan<std::string>();
    auto wake = make_chan<int>();
    goro::wait_group wg;
    wg.add(1);
    goro::go([&] {
      EXPECT_EQ(goro::select(on_send(unbuffered, a), on_recv(wake)), 1u);
      wg.done();
    });
    EXPECT_TRUE(await_senders(unbuffered, 1));
    wake.send(1);
    wg.wait();
    EXPECT_EQ(a, one);
    EXPECT_EQ(queued(unbuffered, true), 0u);

    // Blocked, then chosen: moved.
    wg.add(1);
    goro::go([&] {
      EXPECT_EQ(goro::select(on_send(unbuffered, a), on_recv(wake)), 0u);
      wg.done();
    });
    EXPECT_TRUE(await_senders(unbuffered, 1));
    EXPECT_EQ(unbuffered.recv(), one);
    wg.wait();
    EXPECT_TRUE(a.empty());

    // A panicking send case.
    auto closed = make_chan<std::string>();
    closed.close();
    std::string c = one;
    EXPECT_THROW(goro::select(on_send(closed, c)), goro::panic_error);
    EXPECT_EQ(c, one);

    // Const lvalues are copied.
    const std::string text = one;
    EXPECT_EQ(goro::select(on_send(room, text)), 0u);
    EXPECT_EQ(text, one);
    EXPECT_EQ(room.recv(), one);
  });
}

template <class T>
concept lvalue_send_case_compiles = requires(const goro::chan<T>& c, T& v) {
  goro::on_send(c, v);
};
static_assert(lvalue_send_case_compiles<std::unique_ptr<int>>);

// The same for a move-only T, where borrowing is the only way to offer a value
// without losing it when another case wins.
TEST_P(select_procs, lvalue_send_case_of_a_move_only_type) {
  run_in(procs(), [] {
    using ptr = std::unique_ptr<int>;
    auto full = make_chan<ptr>(1);
    full.send(std::make_unique<int>(0));
    auto room = make_chan<ptr>(1);
    ptr a = std::make_unique<int>(1);
    ptr b = std::make_unique<int>(2);
    EXPECT_EQ(goro::select(on_send(full, a), on_send(room, b)), 1u);
    ASSERT_NE(a, nullptr);
    EXPECT_EQ(*a, 1);
    EXPECT_EQ(b, nullptr);
    EXPECT_EQ(*room.recv().value(), 2);

    auto unbuffered = make_chan<ptr>();
    auto wake = make_chan<int>();
    goro::wait_group wg;
    wg.add(1);
    goro::go([&] {
      EXPECT_EQ(goro::select(on_send(unbuffered, a), on_recv(wake)), 1u);
      wg.done();
    });
    EXPECT_TRUE(await_senders(unbuffered, 1));
    wake.send(1);
    wg.wait();
    ASSERT_NE(a, nullptr);
    EXPECT_EQ(*a, 1);

    auto closed = make_chan<ptr>();
    closed.close();
    EXPECT_THROW(goro::select(on_send(closed, a)), goro::panic_error);
    ASSERT_NE(a, nullptr);
    EXPECT_EQ(*a, 1);
  });
}

// A send case whose channel is closed panics with Go's message when chosen,
// also when the close comes while the select is blocked; the value stays.
TEST_P(select_procs, send_case_on_a_closed_channel_panics) {
  run_in(procs(), [] {
    auto closed = make_chan<std::string>(1);
    closed.close();
    std::string s = "mine";
    try {
      goro::select(on_send(closed, s));
      ADD_FAILURE() << "no panic";
    } catch (const goro::panic_error& e) {
      EXPECT_STREQ(e.what(), "send on closed channel");
    }
    EXPECT_EQ(s, "mine");

    auto c = make_chan<std::string>();
    auto other = make_chan<int>();
    std::atomic<int> panicked{0};
    goro::wait_group wg;
    wg.add(1);
    goro::go([&] {
      std::string v = "blocked";
      try {
        goro::select(on_send(c, v), on_recv(other));
        ADD_FAILURE() << "no panic";
      } catch (const goro::panic_error& e) {
        if (std::string(e.what()) == "send on closed channel" && v == "blocked")
          panicked.fetch_add(1);
      }
      wg.done();
    });
    EXPECT_TRUE(await_senders(c, 1));
    EXPECT_TRUE(await_receivers(other, 1));
    c.close();
    wg.wait();
    EXPECT_EQ(panicked.load(), 1);
    EXPECT_EQ(queued(other, false), 0u);
  });
}

// Cases on nil channels are never chosen: not over a default, not over a
// ready case, and a blocked select is woken only by its real channel.
TEST_P(select_procs, nil_cases_are_never_chosen) {
  run_in(procs(), [] {
    goro::chan<int> nil;
    const goro::recv_chan<int> rnil;
    const goro::send_chan<int> snil;
    EXPECT_EQ(goro::select(on_recv(nil, never_chosen{"nil"}), on_send(nil, 1, never_chosen{"nil"}),
                           on_recv(rnil), on_send(snil, 1), on_default()),
              4u);
    auto ready = make_chan<int>(1);
    for (int i = 0; i < 50; ++i) {
      ready.send(int{i});
      EXPECT_EQ(goro::select(on_recv(nil, never_chosen{"nil"}),
                             on_send(nil, 1, never_chosen{"nil"}), on_recv(ready)),
                2u);
    }
    auto c = make_chan<int>();
    std::atomic<std::size_t> index{99};
    goro::wait_group wg;
    wg.add(1);
    goro::go([&] {
      index.store(goro::select(on_recv(nil), on_send(nil, 2), on_recv(c)));
      wg.done();
    });
    EXPECT_TRUE(await_receivers(c, 1));
    c.send(5);
    wg.wait();
    EXPECT_EQ(index.load(), 2u);
  });
}

// The same channel in several cases: exactly one case runs.
TEST_P(select_procs, duplicate_cases_run_exactly_once) {
  run_in(procs(), [] {
    auto c = make_chan<int>(1);
    for (int i = 0; i < 50; ++i) {
      c.send(int{i});
      int runs = 0;
      goro::select(on_recv(c, [&] { ++runs; }), on_recv(c, [&] { ++runs; }),
                   on_send(c, -1, [&] { ++runs; }));
      EXPECT_EQ(runs, 1);
      if (c.len() == 1) (void)c.recv();  // the send case ran after all
    }
    // Blocked on two cases of one unbuffered channel, woken once.
    auto u = make_chan<int>();
    std::atomic<int> runs{0};
    goro::wait_group wg;
    wg.add(1);
    goro::go([&] {
      goro::select(on_recv(u, [&] { runs.fetch_add(1); }), on_recv(u, [&] { runs.fetch_add(1); }));
      wg.done();
    });
    EXPECT_TRUE(await_receivers(u, 2));
    u.send(1);
    wg.wait();
    EXPECT_EQ(runs.load(), 1);
    EXPECT_EQ(queued(u, false), 0u);
    EXPECT_EQ(u.try_send(2), chan_status::not_ready) << "a stale waiter took a value";
  });
}

// Once a blocked select has won through one case, its waiters on the other
// channels are gone: later operations there do not find them.
TEST_P(select_procs, losing_cases_leave_no_waiters) {
  run_in(procs(), [] {
    auto a = make_chan<int>();
    auto b = make_chan<int>();
    auto d = make_chan<int>(1);
    std::atomic<std::size_t> index{99};
    goro::wait_group wg;
    wg.add(1);
    goro::go([&] {
      index.store(goro::select(on_recv(a), on_send(b, 1), on_recv(d)));
      wg.done();
    });
    EXPECT_TRUE(await_receivers(a, 1));
    EXPECT_TRUE(await_senders(b, 1));
    EXPECT_TRUE(await_receivers(d, 1));
    d.send(5);
    wg.wait();
    EXPECT_EQ(index.load(), 2u);
    EXPECT_EQ(queued(a, false), 0u);
    EXPECT_EQ(queued(b, true), 0u);
    EXPECT_EQ(a.send_for(1, 1ms), chan_status::timeout);
    int v = 0;
    EXPECT_EQ(b.try_recv(v), chan_status::not_ready);
    EXPECT_EQ(d.len(), 0u);
  });
}

// Two wakers race for one blocked select (a send on each of its channels, or
// a send and a close): exactly one completes a case; the other finds the
// select gone and stays blocked (or, for close, does nothing to it).
TEST_P(select_procs, racing_wakers_complete_exactly_one_case) {
  run_in(procs(), [] {
    const int rounds = scaled(1000, 150);
    int double_completions = 0, wrong_value = 0;
    for (int r = 0; r < rounds; ++r) {
      const bool with_close = r % 2 == 1;
      auto a = make_chan<int>();
      auto b = make_chan<int>();
      std::atomic<int> delivered{0};
      std::optional<int> got = -1;
      std::size_t index = 99;
      goro::wait_group selected, wakers;
      selected.add(1);
      wakers.add(2);
      goro::go([&] {
        index = goro::select(on_recv(a, [&](std::optional<int> v) { got = v; }),
                             on_recv(b, [&](std::optional<int> v) { got = v; }));
        selected.done();
      });
      EXPECT_TRUE(await_receivers(a, 1));
      EXPECT_TRUE(await_receivers(b, 1));
      goro::go([&, a] {
        a.send(1);
        delivered.fetch_add(1);
        wakers.done();
      });
      goro::go([&, b, with_close] {
        if (with_close) {
          b.close();
        } else {
          b.send(2);
          delivered.fetch_add(1);
        }
        wakers.done();
      });
      selected.wait();
      const bool a_won = index == 0;
      if (a_won ? got != 1 : got != (with_close ? std::nullopt : std::optional<int>(2)))
        ++wrong_value;
      // Wait for the loser to block (or, wrongly, to complete too).
      if (!with_close || !a_won) {
        goro::chan<int>& loser = a_won ? b : a;
        const bool settled = eventually(
            [&] { return queued(loser, true) == 1 || delivered.load() == (with_close ? 1 : 2); });
        EXPECT_TRUE(settled);
        if (queued(loser, true) == 1) {
          (void)loser.recv();
        } else {
          ++double_completions;
        }
      }
      wakers.wait();
      if (double_completions + wrong_value > 0) break;
    }
    EXPECT_EQ(double_completions, 0) << "two wakers both completed one select";
    EXPECT_EQ(wrong_value, 0);
  });
}

// ------------------------------------------------------- dynamic select ---

// goro::select(std::span<select_case>): the chosen index, callbacks, views
// and nil channels, more than eight cases (the heap path), cases that own
// their channel and their send value, and the errors: more than one default,
// or a moved-from case, throw std::invalid_argument before anything happens.
TEST_P(select_procs, dynamic_select) {
  run_in(procs(), [] {
    auto a = make_chan<int>(1);
    auto none = make_chan<int>();
    a.send(4);
    int got = 0;
    {
      std::vector<select_case> cases;
      cases.push_back(select_case::recv(none, [](std::optional<int>) { ADD_FAILURE(); }));
      cases.push_back(select_case::recv(a, [&](std::optional<int> v) { got = v.value_or(0); }));
      cases.push_back(select_case::default_(never_chosen{"default"}));
      EXPECT_TRUE(cases[2].is_default());
      EXPECT_FALSE(cases[1].is_default());
      EXPECT_EQ(goro::select(cases), 1u);
      EXPECT_EQ(got, 4);
    }
    {  // views, nil channels, a copied send value, default last
      std::vector<select_case> cases;
      cases.push_back(select_case::recv(goro::recv_chan<int>{}));
      cases.push_back(select_case::send(goro::send_chan<int>{}, 1));
      cases.push_back(select_case::default_());
      EXPECT_EQ(goro::select(cases), 2u);

      auto s = make_chan<std::string>(1);
      const std::string text = "copy me";
      std::string movable = "mine";
      cases.clear();
      cases.push_back(select_case::send(goro::send_chan<std::string>(s), text));
      cases.push_back(select_case::send(s, movable));
      cases.push_back(select_case::recv(goro::recv_chan<int>(none)));
      const std::size_t i = goro::select(cases);
      EXPECT_LT(i, 2u);
      EXPECT_EQ(s.recv(), i == 0 ? "copy me" : "mine");
      EXPECT_EQ(text, "copy me");
      EXPECT_EQ(movable, "mine") << "a dynamic send case owns a copy";
    }
    {  // twelve cases: blocked, then woken on case 9
      std::vector<goro::chan<int>> chans;
      std::vector<select_case> cases;
      int from = -1;
      for (int k = 0; k < 12; ++k) {
        chans.push_back(make_chan<int>());
        cases.push_back(select_case::recv(chans.back(), [&, k](std::optional<int> v) {
          from = k;
          got = v.value_or(0);
        }));
      }
      goro::wait_group wg;
      wg.add(1);
      goro::go([&] {
        EXPECT_TRUE(await_receivers(chans[9], 1));
        chans[9].send(90);
        wg.done();
      });
      EXPECT_EQ(goro::select(cases), 9u);
      wg.wait();
      EXPECT_EQ(from, 9);
      EXPECT_EQ(got, 90);
      std::size_t left = 0;
      for (const auto& ch : chans) left += queued(ch, false);
      EXPECT_EQ(left, 0u);
      chans[11].close();  // and ready at once, among twelve
      EXPECT_EQ(goro::select(cases), 11u);
    }
    {  // a case keeps its channel alive
      std::vector<select_case> cases;
      {
        auto tmp = make_chan<int>(1);
        tmp.send(8);
        cases.push_back(select_case::recv(tmp, [&](std::optional<int> v) { got = v.value_or(0); }));
      }
      EXPECT_EQ(goro::select(cases), 0u);
      EXPECT_EQ(got, 8);
    }
    {  // errors
      a.send(5);
      std::vector<select_case> cases;
      cases.push_back(select_case::recv(a));
      cases.push_back(select_case::default_());
      cases.push_back(select_case::default_());
      EXPECT_THROW(goro::select(cases), std::invalid_argument);
      EXPECT_EQ(a.len(), 1u) << "nothing happens when the case list is rejected";
      cases.pop_back();
      select_case moved = std::move(cases[0]);
      EXPECT_THROW(goro::select(cases), std::invalid_argument);
      EXPECT_EQ(a.len(), 1u);
      cases[0] = std::move(moved);
      EXPECT_EQ(goro::select(cases), 0u);
      EXPECT_EQ(a.len(), 0u);
    }
  });
}

// A case list may be run again and again, as Go programs reuse their
// []reflect.SelectCase: each run reports its own outcome, so a receive case
// chosen by close after it had received reports std::nullopt, not the old
// value. The same for a variadic case object passed again as an lvalue.
TEST_P(select_procs, case_lists_can_be_reused) {
  run_in(procs(), [] {
    auto c = make_chan<int>(1);
    std::vector<std::optional<int>> got;
    std::vector<select_case> cases;
    cases.push_back(select_case::recv(c, [&](std::optional<int> v) { got.push_back(v); }));
    for (int i = 0; i < 3; ++i) {
      c.send(int{i});
      EXPECT_EQ(goro::select(cases), 0u);
    }
    c.close();
    EXPECT_EQ(goro::select(cases), 0u);
    EXPECT_EQ(got, (std::vector<std::optional<int>>{0, 1, 2, std::nullopt}));

    auto d = make_chan<std::string>(1);
    std::vector<std::optional<std::string>> texts;
    auto rc = on_recv(d, [&](std::optional<std::string> v) { texts.push_back(std::move(v)); });
    d.send("one");
    goro::select(rc);
    d.close();
    goro::select(rc);
    EXPECT_EQ(texts, (std::vector<std::optional<std::string>>{"one", std::nullopt}));
  });
}

// ------------------------------------------------------ value lifetimes ---

// Every value a select handles is destroyed exactly once: owned send values of
// cases chosen (moved into the channel) or not (destroyed with the case), of
// cases that panic, received values, dynamic cases, and a stress of selects
// sending and receiving tracked values, ended by close.
TEST_P(select_procs, values_are_destroyed_exactly_once) {
  run_in(procs(), [] {
    const long live0 = tracked::live.load();
    const long bad0 = tracked::bad.load();
    {
      auto full = make_chan<tracked>(1);
      auto room = make_chan<tracked>(1);
      full.send(tracked(0));
      EXPECT_EQ(goro::select(on_send(full, tracked(1)), on_send(room, tracked(2))), 1u);
      tracked mine(3);
      EXPECT_EQ(goro::select(on_send(full, mine), on_default()), 1u);
      EXPECT_EQ(mine.value, 3);
      goro::select(on_recv(room, [](std::optional<tracked> v) { EXPECT_EQ(v->value, 2); }));
      room.close();
      EXPECT_THROW(goro::select(on_send(room, tracked(4))), goro::panic_error);
      EXPECT_THROW(goro::select(on_send(room, mine)), goro::panic_error);
      EXPECT_EQ(mine.value, 3);
      std::vector<select_case> cases;
      cases.push_back(select_case::send(full, tracked(5)));
      cases.push_back(select_case::default_());
      EXPECT_EQ(goro::select(cases), 1u);
      EXPECT_EQ(tracked::live.load() - live0, 1 + 1 + 1) << "mine, full's value, the case's value";
    }
    EXPECT_EQ(tracked::live.load(), live0);

    for (std::size_t cap : {0u, 2u}) {
      const std::array<goro::chan<tracked>, 2> c{make_chan<tracked>(cap), make_chan<tracked>(cap)};
      const int senders = 3;
      const int per = scaled(300, 80);
      std::atomic<int> sent{0}, taken{0};
      std::vector<std::atomic<int>> seen(static_cast<std::size_t>(senders * per));
      goro::wait_group senders_done, receivers_done, half_taken;
      senders_done.add(senders);
      receivers_done.add(2);
      half_taken.add(1);
      for (int s = 0; s < senders; ++s) {
        goro::go([&, s] {
          for (int i = 0; i < per; ++i) {
            tracked t(s * per + i);
            try {
              goro::select(on_send(c[0], t), on_send(c[1], t));
              sent.fetch_add(1);
            } catch (const goro::panic_error&) {
              break;  // closed under us
            }
          }
          senders_done.done();
        });
      }
      for (int r = 0; r < 2; ++r) {
        goro::go([&] {
          std::array<bool, 2> open{true, true};
          auto take = [&](std::size_t k) {
            return [&, k](std::optional<tracked> v) {
              if (!v) {
                open[k] = false;
                return;
              }
              seen[static_cast<std::size_t>(v->value)].fetch_add(1);
              if (taken.fetch_add(1) + 1 == senders * per / 2) half_taken.done();
            };
          };
          while (open[0] || open[1]) {
            goro::select(on_recv(open[0] ? c[0] : goro::chan<tracked>{}, take(0)),
                         on_recv(open[1] ? c[1] : goro::chan<tracked>{}, take(1)));
          }
          receivers_done.done();
        });
      }
      half_taken.wait();
      c[0].close();
      c[1].close();
      senders_done.wait();
      receivers_done.wait();
      int received = 0, twice = 0;
      for (const auto& n : seen) {
        received += n.load();
        if (n.load() > 1) ++twice;
      }
      EXPECT_EQ(received, sent.load()) << "cap " << cap;
      EXPECT_EQ(twice, 0);
    }
    EXPECT_EQ(tracked::live.load(), live0);
    EXPECT_EQ(tracked::bad.load(), bad0) << "a value was destroyed twice or used after";
  });
}

// Go's memory model through select: the chosen case gives the plain
// operation's edges (a send before its receive; an unbuffered receive before
// its send completes). TSan reports a missing one.
TEST_P(select_procs, memory_ordering_through_select) {
  run_in(procs(), [] {
    const int n = scaled(300, 100);
    std::vector<int> by_sender(static_cast<std::size_t>(n), 0);
    std::vector<int> by_receiver(static_cast<std::size_t>(n), 0);
    auto a = make_chan<int>();
    auto b = make_chan<int>();
    std::atomic<int> wrong{0};
    goro::wait_group wg;
    wg.add(1);
    goro::go([&] {
      for (int i = 0; i < n; ++i) {
        by_sender[static_cast<std::size_t>(i)] = i * 3;
        goro::select(on_send(a, int{i}), on_send(b, int{i}));
        if (by_receiver[static_cast<std::size_t>(i)] != i + 7) wrong.fetch_add(1);
      }
      wg.done();
    });
    for (int k = 0; k < n; ++k) {
      by_receiver[static_cast<std::size_t>(k)] = k + 7;
      int v = 0;
      auto take = [&](std::optional<int> x) { v = x.value_or(0); };
      goro::select(on_recv(a, take), on_recv(b, take));
      if (by_sender[static_cast<std::size_t>(v)] != v * 3) wrong.fetch_add(1);
    }
    wg.wait();
    EXPECT_EQ(wrong.load(), 0);
  });
}

// --------------------------------------------------- threads and goroutines ---

// Plain threads and goroutines in select together: a thread blocked in a
// select is woken by a goroutine's send, receive or close, and a goroutine
// blocked in a select by a thread's; a crowd of both selects over two
// channels and every value arrives once.
TEST_P(select_procs, threads_and_goroutines_mixed) {
  run_in(procs(), [] {
    {  // (1) a thread's select, woken by a goroutine's send, receive, close
      for (int how = 0; how < 3; ++how) {
        auto a = make_chan<int>();
        auto b = make_chan<int>();
        std::atomic<std::size_t> index{99};
        std::atomic<int> value{-1};
        goro::wait_group done;
        done.add(1);
        std::thread t([&] {
          index.store(
              goro::select(on_recv(a, [&](std::optional<int> v) { value.store(v.value_or(-2)); }),
                           on_send(b, 20)));
          done.done();
        });
        EXPECT_TRUE(await_receivers(a, 1));
        EXPECT_TRUE(await_senders(b, 1));
        if (how == 0) {
          a.send(10);
        } else if (how == 1) {
          EXPECT_EQ(b.recv(), 20);
        } else {
          a.close();
        }
        done.wait();
        t.join();
        EXPECT_EQ(index.load(), how == 1 ? 1u : 0u) << "how " << how;
        if (how != 1) {
          EXPECT_EQ(value.load(), how == 0 ? 10 : -2);
        }
      }
    }
    {  // (2) a goroutine's select, woken by a thread's plain send and select send
      auto a = make_chan<int>();
      auto b = make_chan<int>();
      std::atomic<int> sum{0};
      goro::wait_group done;
      done.add(2);
      for (int i = 0; i < 2; ++i) {
        goro::go([&] {
          auto add = [&](std::optional<int> v) { sum.fetch_add(v.value_or(100)); };
          goro::select(on_recv(a, add), on_recv(b, add));
          done.done();
        });
      }
      EXPECT_TRUE(await_receivers(a, 2));
      EXPECT_TRUE(await_receivers(b, 2));
      std::thread t([&] {
        a.send(1);
        goro::select(on_send(a, 2), on_send(b, 2));
      });
      done.wait();
      t.join();
      EXPECT_EQ(sum.load(), 3);
    }
    // (3) a crowd: threads and goroutines selecting sends and receives.
    for (std::size_t cap : {0u, 3u}) {
      const std::array<goro::chan<int>, 2> c{make_chan<int>(cap), make_chan<int>(cap)};
      const int producers = 4;  // 2 threads, 2 goroutines
      const int per = scaled(1000, 200);
      std::vector<std::atomic<int>> got(static_cast<std::size_t>(producers * per));
      std::atomic<int> closed_seen{0};
      goro::wait_group produced, consumed;
      produced.add(producers);
      consumed.add(4);
      auto produce = [&](int p) {
        for (int i = 0; i < per; ++i)
          goro::select(on_send(c[0], p * per + i), on_send(c[1], p * per + i));
        produced.done();
      };
      auto consume = [&] {
        bool more = true;
        while (more) {
          auto take = [&](std::optional<int> v) {
            if (v) {
              got[static_cast<std::size_t>(*v)].fetch_add(1);
            } else {
              more = false;  // closed: both are closed together, drain the other plainly
            }
          };
          goro::select(on_recv(c[0], take), on_recv(c[1], take));
        }
        for (const auto& ch : c)
          for (int v : ch) got[static_cast<std::size_t>(v)].fetch_add(1);
        closed_seen.fetch_add(1);
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
      c[0].close();
      c[1].close();
      consumed.wait();
      for (auto& t : threads) t.join();
      int wrong = 0;
      for (const auto& g : got)
        if (g.load() != 1) ++wrong;
      EXPECT_EQ(wrong, 0) << "cap " << cap;
      EXPECT_EQ(closed_seen.load(), 4);
    }
  });
}

// With no runtime at all: plain threads selecting against each other.
TEST(select, works_between_plain_threads_without_a_runtime) {
  auto a = make_chan<int>();
  auto b = make_chan<int>();
  const int n = 500;
  std::thread sender([&] {
    for (int i = 0; i < n; ++i) goro::select(on_send(a, int{i}), on_send(b, int{i}));
    a.close();
  });
  std::vector<char> seen(n, 0);
  int count = 0;
  bool open = true;
  while (open) {
    goro::select(on_recv(a,
                         [&](std::optional<int> v) {
                           if (!v) {
                             open = false;
                             return;
                           }
                           ++seen[static_cast<std::size_t>(*v)];
                           ++count;
                         }),
                 on_recv(b, [&](std::optional<int> v) {
                   ++seen[static_cast<std::size_t>(v.value_or(0))];
                   ++count;
                 }));
  }
  sender.join();
  EXPECT_EQ(count, n);
  EXPECT_EQ(std::count(seen.begin(), seen.end(), 1), n);
  EXPECT_EQ(goro::select(on_recv(b), on_default()), 1u);
  EXPECT_EQ(goro::num_goroutines(), 0);
}

}  // namespace
