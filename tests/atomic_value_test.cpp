// goro::atomic_value: load/store/swap/compare_and_swap with Go's
// atomic.Value semantics, readers that never wait for a writer, and no
// snapshot freed early or leaked under a storm of loads and stores.
// Ported Go tests name their source: go/src/sync/atomic/value_test.go.
#include <gtest/gtest.h>

#include <atomic>
#include <memory>
#include <thread>
#include <vector>

#include "goro/goro.hpp"
#include "test_util.hpp"

namespace {

using goro_test::run_in;
using goro_test::scaled;

class atomic_value_procs : public goro_test::procs_test {};
GORO_INSTANTIATE_PROCS(atomic_value_procs);

// Go: TestValue, TestValueSwap, TestValueCompareAndSwap (adapted: snapshot
// identity instead of interface equality).
TEST(atomic_value, load_store_swap_compare_and_swap) {
  goro::atomic_value<int> v;
  EXPECT_EQ(v.load(), nullptr) << "initial value is not nil";
  v.store(42);
  ASSERT_NE(v.load(), nullptr);
  EXPECT_EQ(*v.load(), 42);
  auto s42 = v.load();
  auto prev = v.swap(84);
  EXPECT_EQ(prev, s42);
  EXPECT_EQ(*v.load(), 84);

  auto s84 = v.load();
  EXPECT_FALSE(v.compare_and_swap(s42, std::make_shared<const int>(1)));
  EXPECT_EQ(*v.load(), 84);
  EXPECT_TRUE(v.compare_and_swap(s84, std::make_shared<const int>(2)));
  EXPECT_EQ(*v.load(), 2);
  EXPECT_EQ(*s84, 84) << "a reader's snapshot stays valid";

  goro::atomic_value<int> empty;
  EXPECT_TRUE(empty.compare_and_swap(nullptr, std::make_shared<const int>(5)));
  EXPECT_EQ(*empty.load(), 5);

  try {
    v.store(std::shared_ptr<const int>());
    FAIL() << "storing nil must panic";
  } catch (const goro::panic_error& e) {
    EXPECT_STREQ(e.what(), "sync/atomic: store of nil value into Value");
  }
  EXPECT_EQ(*v.load(), 2);
}

// A writer stuck in the middle of a store (here: in the destructor of the
// snapshot it replaced, which runs inside store) blocks no reader: loads on
// goroutines and a thread all complete and see the new snapshot.
struct blocking_dtor {
  explicit blocking_dtor(int v, goro::chan<int>* g = nullptr, goro::wait_group* d = nullptr)
      : version(v), gate(g), in_dtor(d) {}
  blocking_dtor(const blocking_dtor&) = delete;
  blocking_dtor& operator=(const blocking_dtor&) = delete;
  int version;
  goro::chan<int>* gate;  // recv from it in the destructor
  goro::wait_group* in_dtor;
  ~blocking_dtor() {
    if (gate == nullptr) return;
    in_dtor->done();
    gate->recv();
  }
};

TEST_P(atomic_value_procs, readers_never_wait_for_a_writer_mid_store) {
  run_in(procs(), [] {
    goro::chan<int> gate = goro::make_chan<int>();
    goro::wait_group in_dtor;
    in_dtor.add(1);
    goro::atomic_value<blocking_dtor> v(std::make_shared<const blocking_dtor>(1, &gate, &in_dtor));
    goro::wait_group writer;
    writer.add(1);
    goro::go([&] {
      v.store(std::make_shared<const blocking_dtor>(2));
      writer.done();
    });
    in_dtor.wait();  // the writer is inside store() now, and stays there
    std::atomic<int> wrong{0};
    auto reader = [&] {
      for (int i = 0; i < 1000; ++i)
        if (v.load()->version != 2) wrong.fetch_add(1);
    };
    goro::wait_group readers;
    readers.add(4);
    for (int i = 0; i < 4; ++i)
      goro::go([&] {
        reader();
        readers.done();
      });
    std::thread t(reader);
    readers.wait();
    t.join();
    EXPECT_EQ(wrong.load(), 0);
    gate.send(1);  // let the writer finish
    writer.wait();
  });
}

std::atomic<int> live{0};
struct checked {
  explicit checked(int v) : a(v), b(v) { live.fetch_add(1); }
  checked(const checked& o) : a(o.a), b(o.b) { live.fetch_add(1); }
  ~checked() {
    a = b = -1;  // a reader of a freed snapshot would likely see this
    live.fetch_sub(1);
  }
  int a, b;
};

// Go: TestValueConcurrent, extended: readers check each snapshot's
// integrity and that versions never go backwards; afterwards every snapshot
// has been freed exactly once.
TEST_P(atomic_value_procs, storm_of_loads_and_stores_frees_each_snapshot_once) {
  run_in(procs(), [] {
    std::atomic<int> bad{0};
    {
      goro::atomic_value<checked> v(checked(0));
      const int stores = scaled(20000, 2000);
      std::atomic<bool> stop{false};
      auto reader = [&] {
        int last = 0;
        while (!stop.load(std::memory_order_relaxed)) {
          auto s = v.load();
          if (s->a != s->b || s->a < last) bad.fetch_add(1);
          last = s->a;
          goro::yield();
        }
      };
      goro::wait_group wg;
      wg.add(4);
      for (int i = 0; i < 3; ++i)
        goro::go([&] {
          reader();
          wg.done();
        });
      std::thread t(reader);
      goro::go([&] {
        for (int i = 1; i <= stores; ++i) {
          if (i % 3 == 0) {
            auto cur = v.load();
            if (!v.compare_and_swap(cur, std::make_shared<const checked>(i))) bad.fetch_add(1);
          } else {
            v.store(checked(i));
          }
          if (i % 16 == 0) goro::yield();
        }
        stop.store(true);
        wg.done();
      });
      wg.wait();
      t.join();
    }
    EXPECT_EQ(bad.load(), 0);
    EXPECT_EQ(live.load(), 0) << "snapshots leaked or freed twice";
  });
}

}  // namespace
