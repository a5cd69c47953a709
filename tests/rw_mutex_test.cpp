// goro::rw_mutex (Go's sync.RWMutex): shared readers, exclusive writers,
// writer preference, the standard lock adapters, goroutines and threads
// mixed. Ported Go tests name their source: go/src/sync/rwmutex_test.go.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <new>
#include <shared_mutex>
#include <string>
#include <thread>
#include <vector>

#include "goro/goro.hpp"
#include "test_util.hpp"

namespace {

using namespace std::chrono_literals;
using goro_test::eventually;
using goro_test::run_in;
using goro_test::scaled;

class rw_mutex_procs : public goro_test::procs_test {};
GORO_INSTANTIATE_PROCS(rw_mutex_procs);

// True while a writer holds or waits for the lock: a read try-lock fails.
bool writer_present(goro::rw_mutex& rw) {
  if (rw.try_lock_shared()) {
    rw.unlock_shared();
    return false;
  }
  return true;
}

TEST_P(rw_mutex_procs, readers_share_writers_exclude) {
  run_in(procs(), [] {
    goro::rw_mutex rw;
    std::shared_lock r1(rw);
    EXPECT_TRUE(rw.try_lock_shared()) << "a second reader must get in";
    rw.unlock_shared();
    EXPECT_FALSE(rw.try_lock()) << "a writer must not get in past a reader";
    bool other_thread_read = false;
    std::thread t([&] {
      other_thread_read = rw.try_lock_shared();
      if (other_thread_read) rw.unlock_shared();
    });
    t.join();
    EXPECT_TRUE(other_thread_read);
    r1.unlock();

    std::unique_lock w(rw);
    EXPECT_FALSE(rw.try_lock_shared());
    EXPECT_FALSE(rw.try_lock());
    w.unlock();
    EXPECT_TRUE(rw.try_lock());
    rw.unlock();
  });
}

// Go: "If a goroutine holds a RWMutex for reading and another goroutine
// might call Lock, no goroutine should expect to be able to acquire a read
// lock until the initial read lock is released." A reader arriving while a
// writer waits gets in only after the writer.
TEST_P(rw_mutex_procs, waiting_writer_blocks_new_readers) {
  run_in(procs(), [] {
    goro::rw_mutex rw;
    goro::mutex log_mu;
    std::string log;  // guarded by log_mu
    auto note = [&](char c) {
      std::lock_guard lk(log_mu);
      log += c;
    };
    std::atomic<bool> reader_in{false};

    rw.lock_shared();  // the initial reader
    goro::wait_group wg;
    wg.add(2);
    goro::go([&] {
      rw.lock();
      note('W');
      rw.unlock();
      wg.done();
    });
    ASSERT_TRUE(eventually([&] { return writer_present(rw); })) << "the writer never queued";
    // A new reader, on a plain thread for the odd P counts and a goroutine
    // otherwise: either way it must wait behind the writer.
    auto reader = [&] {
      rw.lock_shared();
      reader_in.store(true);
      note('R');
      rw.unlock_shared();
      wg.done();
    };
    std::thread t;
    if (goro::maxprocs() % 2 == 1)
      t = std::thread(reader);
    else
      goro::go([&] { reader(); });
    // A correct rw_mutex keeps the reader out for as long as we hold our read
    // lock; give a broken one a moment to let it in.
    EXPECT_FALSE(eventually([&] { return reader_in.load(); }, 50ms))
        << "a new reader got in while a writer was waiting";
    rw.unlock_shared();
    wg.wait();
    if (t.joinable()) t.join();
    std::lock_guard lk(log_mu);
    EXPECT_EQ(log, "WR");
  });
}

// Go: TestRWMutex / HammerRWMutex: readers add 1 to an activity count,
// writers 10000; a reader must see no writer, a writer nobody else.
TEST_P(rw_mutex_procs, go_hammer_rw_mutex_goroutines_and_threads) {
  run_in(procs(), [] {
    goro::rw_mutex rw;
    std::atomic<int> activity{0};
    std::atomic<int> bad{0};
    std::int64_t shared_a = 0, shared_b = 0;  // written by writers only, always equal
    const int iters = scaled(2000, 300);
    auto reader = [&] {
      for (int i = 0; i < iters; ++i) {
        rw.lock_shared();
        const int n = activity.fetch_add(1) + 1;
        if (n < 1 || n >= 10000) bad.fetch_add(1);
        if (shared_a != shared_b) bad.fetch_add(1);
        if (i % 64 == 0) goro::yield();
        activity.fetch_sub(1);
        rw.unlock_shared();
      }
    };
    auto writer = [&] {
      for (int i = 0; i < iters / 4; ++i) {
        std::unique_lock lk(rw);
        const int n = activity.fetch_add(10000) + 10000;
        if (n != 10000) bad.fetch_add(1);
        ++shared_a;
        if (i % 16 == 0) goro::yield();
        ++shared_b;
        activity.fetch_sub(10000);
      }
    };
    goro::wait_group wg;
    const int readers = 6, writers = 2;
    wg.add(readers + writers);
    for (int i = 0; i < readers; ++i)
      goro::go([&] {
        reader();
        wg.done();
      });
    for (int i = 0; i < writers; ++i)
      goro::go([&] {
        writer();
        wg.done();
      });
    std::thread tr(reader), tw(writer);
    wg.wait();
    tr.join();
    tw.join();
    EXPECT_EQ(bad.load(), 0);
    EXPECT_EQ(shared_a, std::int64_t{writers + 1} * (iters / 4));
    EXPECT_EQ(shared_a, shared_b);
  });
}

// A stream of overlapping readers (each re-locks while others still hold the
// lock, so there is never a moment without a reader) does not starve a
// writer: the writer's arrival stops new readers.
TEST_P(rw_mutex_procs, writer_not_starved_by_reader_stream) {
  run_in(procs(), [] {
    goro::rw_mutex rw;
    std::atomic<bool> writer_done{false};
    goro::wait_group wg;
    const int readers = 4;
    wg.add(readers + 1);
    rw.lock_shared();  // keeps a reader inside until the stream has started
    for (int i = 0; i < readers; ++i) {
      goro::go([&] {
        while (!writer_done.load()) {
          rw.lock_shared();
          goro::yield();
          rw.unlock_shared();
        }
        wg.done();
      });
    }
    goro::go([&] {
      rw.lock();
      writer_done.store(true);
      rw.unlock();
      wg.done();
    });
    rw.unlock_shared();
    wg.wait();
    EXPECT_TRUE(writer_done.load());
  });
}

// Readers on every P (more than a P's row of slots, so some count
// centrally) keep a writer out: try_lock fails, lock waits for the last of
// them, whichever P they leave from (they park holding the lock, so they
// may come back elsewhere).
TEST_P(rw_mutex_procs, readers_on_every_p_keep_a_writer_out) {
  run_in(procs(), [] {
    goro::rw_mutex rw;
    std::atomic<int> inside{0};
    auto release = goro::make_chan<int>();
    goro::wait_group in, done;
    const int readers = 12;
    in.add(readers);
    done.add(readers + 1);
    for (int i = 0; i < readers; ++i) {
      goro::go([&] {
        rw.lock_shared();
        inside.fetch_add(1);
        in.done();
        (void)release.recv();
        inside.fetch_sub(1);
        rw.unlock_shared();
        done.done();
      });
    }
    in.wait();
    EXPECT_FALSE(rw.try_lock()) << "try_lock got in past " << inside.load() << " readers";
    std::atomic<bool> writer_in{false};
    std::atomic<int> inside_for_writer{-1};
    goro::go([&] {
      rw.lock();
      inside_for_writer.store(inside.load());
      writer_in.store(true);
      rw.unlock();
      done.done();
    });
    EXPECT_FALSE(eventually([&] { return writer_in.load(); }, 50ms))
        << "a writer got in while readers held the lock";
    release.close();
    done.wait();
    EXPECT_EQ(inside_for_writer.load(), 0) << "the writer overlapped readers";
    EXPECT_TRUE(rw.try_lock()) << "a read lock outlived its unlock";
    rw.unlock();
  });
}

// Go allows a read lock to be released by another goroutine; here the
// releasing goroutine is often on another P than the one that locked.
TEST_P(rw_mutex_procs, read_locks_released_by_another_goroutine_end) {
  run_in(procs(), [] {
    goro::rw_mutex rw;
    auto handoff = goro::make_chan<int>();
    goro::wait_group wg;
    wg.add(2);
    const int rounds = 200;
    goro::go([&] {
      for (int i = 0; i < rounds; ++i) {
        rw.lock_shared();
        handoff.send(i);
      }
      wg.done();
    });
    goro::go([&] {
      for (int i = 0; i < rounds; ++i) {
        (void)handoff.recv();
        rw.unlock_shared();
      }
      wg.done();
    });
    wg.wait();
    EXPECT_TRUE(rw.try_lock()) << "a read lock outlived its unlock";
    rw.unlock();
  });
}

// A goroutine abandoned when run() returns takes its read lock with it: a
// new rw_mutex built later where that one was starts unlocked.
TEST(rw_mutex, read_locks_of_abandoned_goroutines_end_with_the_run) {
  alignas(goro::rw_mutex) static unsigned char storage[sizeof(goro::rw_mutex)];
  goro::run(goro::run_options{.maxprocs = 2}, [] {
    auto* rw = new (storage) goro::rw_mutex;
    goro::wait_group locked;
    locked.add(1);
    goro::go([rw, &locked] {
      rw->lock_shared();
      locked.done();
      // Still asleep, holding the read lock, when main returns. (Nothing on
      // the heap: an abandoned goroutine's captures are never freed.)
      goro::sleep_for(std::chrono::hours(1));
    });
    locked.wait();
  });
  goro::run(goro::run_options{.maxprocs = 2}, [] {
    auto* rw = new (storage) goro::rw_mutex;
    if (rw->try_lock()) {
      rw->unlock();
    } else {
      ADD_FAILURE() << "a new rw_mutex found the abandoned goroutine's read lock";
    }
  });
}

}  // namespace
