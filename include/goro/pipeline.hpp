// goro/pipeline.hpp: Go's pipeline pattern as a library piece: stages
// connected by channels, bounded parallelism, fan-out and fan-in, errors on
// their own path, cancellation of the whole pipeline on the first error, and
// every goroutine accounted for when it returns.
//
//   goro::pipeline p(ctx);
//   auto lines  = p.source<std::string>("read", [&](auto emit) {
//     for (std::string l; std::getline(in, l);) if (!emit(std::move(l))) return;
//   });
//   auto parsed = p.map("parse", lines, 4, [](std::string l) { return parse(l); });   // 4 at once
//   p.sink("count", parsed, [&](record r) { totals.add(r); });
//   if (std::error_code ec = p.wait()) ...   // cancelled from outside; a stage's exception is
//   rethrown
//
// Semantics:
//  - Each stage runs in goroutines the pipeline owns. A stage reads its
//    input channel until it is closed, then closes its output: closing flows
//    down the pipeline when the source ends.
//  - map runs f on up to `parallelism` values at once, starting one goroutine
//    per value in flight (Go's `sem := make(chan struct{}, n)` idiom): a small
//    input starts few goroutines, none wait idle. Results come in completion
//    order; map_ordered keeps input order. A stage function may return
//    std::optional<Out>: std::nullopt drops the value.
//  - Errors do not travel down the data channels. An exception from any stage
//    function (or fail()) is the pipeline's error: the first one is kept,
//    with its stage's name, and cancels the pipeline's context, so every
//    stage stops (every send and receive inside waits on that context).
//  - wait() returns when every goroutine of the pipeline has finished. It
//    rethrows the first stage failure as pipeline_error (the original
//    exception nested), returns the context's error if the pipeline was
//    cancelled from outside (its parent context, or cancel()), else {}.
//    The destructor cancels and waits, so no goroutine outlives a pipeline.
//
// Memory ordering: each stage hands values on through channels (a send
// happens before the receive); everything every stage did happens before
// wait() returns.
#pragma once

#include <cstddef>
#include <exception>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include "goro/chan.hpp"
#include "goro/context.hpp"
#include "goro/goroutine.hpp"
#include "goro/mutex.hpp"
#include "goro/select.hpp"
#include "goro/wait_group.hpp"

namespace goro {

/// A pipeline stage failed: what() names the stage and the original error,
/// which is nested (std::rethrow_if_nested).
class pipeline_error : public std::runtime_error, public std::nested_exception {
 public:
  pipeline_error(std::string stage, const std::string& what)
      : std::runtime_error("pipeline stage '" + stage + "': " + what), stage_(std::move(stage)) {}
  const std::string& stage() const noexcept { return stage_; }

 private:
  std::string stage_;
};

namespace detail {
template <class T>
struct is_optional : std::false_type {};
template <class T>
struct is_optional<std::optional<T>> : std::true_type {};

// The value type a stage function's result carries (unwrapping optional).
template <class R>
struct stage_value {
  using type = R;
};
template <class T>
struct stage_value<std::optional<T>> {
  using type = T;
};

template <class F, class In>
decltype(auto) call_stage(F& f, const context& ctx, In&& v) {
  if constexpr (std::is_invocable_v<F&, const context&, In&&>) {
    return f(ctx, std::forward<In>(v));
  } else {
    return f(std::forward<In>(v));
  }
}
template <class F, class In>
using stage_result_t =
    decltype(call_stage(std::declval<F&>(), std::declval<const context&>(), std::declval<In&&>()));
}  // namespace detail

class pipeline {
 public:
  explicit pipeline(const context& parent = background());
  pipeline(const pipeline&) = delete;
  pipeline& operator=(const pipeline&) = delete;
  /// Cancels the pipeline and waits for its goroutines.
  ~pipeline();

  /// The pipeline's context: done on the first failure, on cancel(), or when
  /// the parent is done.
  const context& ctx() const noexcept { return ctx_; }

  /// Stops every stage (wait() then returns errc::canceled).
  void cancel() noexcept { cancel_(); }

  /// Records err as the pipeline's failure if it is the first, and cancels.
  void fail(const std::string& stage, std::exception_ptr err) noexcept;

  /// Runs f(emit) in a goroutine, where emit(T) sends a value downstream and
  /// returns false once the pipeline is cancelled (f should return then).
  /// The output is closed when f returns.
  template <class T, class F>
  recv_chan<T> source(std::string name, F f, std::size_t buffer = 0) {
    chan<T> out = make_chan<T>(buffer);
    spawn(std::move(name), [this, out, f = std::move(f)]() mutable {
      close_at_exit<T> closer{out};
      auto emit = [this, &out](T v) -> bool { return !out.send(ctx_, std::move(v)); };
      f(emit);
    });
    return out;
  }

  /// Out = f(v) (or f(ctx, v)) for every value v of in, up to parallelism at
  /// once, in completion order. See the top of this file.
  template <class In, class F>
  auto map(std::string name, recv_chan<In> in, int parallelism, F f, std::size_t buffer = 0) {
    using result = detail::stage_result_t<F, In>;
    using Out = typename detail::stage_value<std::decay_t<result>>::type;
    static_assert(!std::is_void_v<Out>,
                  "goro::pipeline::map: the stage function must return a value");
    check_parallelism(parallelism);
    chan<Out> out = make_chan<Out>(buffer);
    auto shared_f = std::make_shared<F>(std::move(f));
    spawn(name, [this, name, in, out, parallelism, shared_f] {
      chan<std::monostate> slots = make_chan<std::monostate>(static_cast<std::size_t>(parallelism));
      auto workers = std::make_shared<wait_group>();
      struct finish {
        wait_group& workers;
        const chan<Out>& out;
        ~finish() {
          workers.wait();  // every value in flight is delivered (or dropped on cancel)
          out.close();
        }
      } at_end{*workers, out};
      for_each_value(in, [&](In v) {
        if (slots.send(ctx_, std::monostate{})) return false;  // a slot: blocks at parallelism
        workers->add(1);
        spawn(name, [this, v = std::move(v), out, slots, workers, shared_f]() mutable {
          struct release {
            const chan<std::monostate>& slots;
            wait_group& workers;
            ~release() {
              (void)slots.try_recv();
              workers.done();
            }
          } rel{slots, *workers};
          deliver(out, detail::call_stage(*shared_f, ctx_, std::move(v)));
        });
        return true;
      });
    });
    return recv_chan<Out>(out);
  }

  /// map that delivers results in input order (at most parallelism results
  /// wait for an earlier one).
  template <class In, class F>
  auto map_ordered(std::string name, recv_chan<In> in, int parallelism, F f,
                   std::size_t buffer = 0) {
    using result = detail::stage_result_t<F, In>;
    using Out = typename detail::stage_value<std::decay_t<result>>::type;
    using numbered_in = std::pair<std::uint64_t, In>;
    using tagged = std::pair<std::uint64_t, std::optional<Out>>;
    check_parallelism(parallelism);
    // Number the inputs, map them unordered with their numbers, then reorder.
    chan<numbered_in> numbered = make_chan<numbered_in>();
    spawn(name, [this, in, numbered] {
      close_at_exit<numbered_in> closer{numbered};
      std::uint64_t seq = 0;
      for_each_value(in,
                     [&](In v) { return !numbered.send(ctx_, numbered_in(seq++, std::move(v))); });
    });
    auto shared_f = std::make_shared<F>(std::move(f));
    recv_chan<tagged> done =
        map(name, recv_chan<numbered_in>(numbered), parallelism,
            [shared_f](const context& ctx, numbered_in p) -> tagged {
              auto r = detail::call_stage(*shared_f, ctx, std::move(p.second));
              if constexpr (detail::is_optional<std::decay_t<decltype(r)>>::value) {
                return tagged(p.first, std::move(r));
              } else {
                return tagged(p.first, std::optional<Out>(std::move(r)));
              }
            });
    chan<Out> out = make_chan<Out>(buffer);
    spawn(std::move(name), [this, done, out] {
      close_at_exit<Out> closer{out};
      std::map<std::uint64_t, std::optional<Out>> early;  // at most parallelism entries
      std::uint64_t next = 0;
      for_each_value(done, [&](tagged t) {
        early.emplace(t.first, std::move(t.second));
        for (auto it = early.find(next); it != early.end(); it = early.find(++next)) {
          std::optional<Out> v = std::move(it->second);
          early.erase(it);
          if (v && out.send(ctx_, std::move(*v))) return false;
        }
        return true;
      });
    });
    return recv_chan<Out>(out);
  }

  /// Fan-in: one channel with every value of ins (closed when all are).
  template <class T>
  recv_chan<T> merge(std::string name, std::vector<recv_chan<T>> ins, std::size_t buffer = 0) {
    chan<T> out = make_chan<T>(buffer);
    auto left = std::make_shared<std::atomic<std::size_t>>(ins.size());
    if (ins.empty()) out.close();
    for (recv_chan<T>& in : ins) {
      spawn(name, [this, in, out, left] {
        struct close_if_last {
          const chan<T>& c;
          std::atomic<std::size_t>& left;
          ~close_if_last() {
            // acq_rel: the last forwarder closes after every other forwarder's sends.
            if (left.fetch_sub(1, std::memory_order_acq_rel) == 1) c.close();
          }
        } closer{out, *left};
        forward(in, out);
      });
    }
    return recv_chan<T>(out);
  }

  /// Fan-out: n channels that share the values of in, each value going to
  /// whichever output's consumer takes it first.
  template <class T>
  std::vector<recv_chan<T>> fan_out(std::string name, recv_chan<T> in, int n,
                                    std::size_t buffer = 0) {
    check_parallelism(n);
    std::vector<recv_chan<T>> outs;
    for (int i = 0; i < n; ++i) {
      chan<T> out = make_chan<T>(buffer);
      outs.emplace_back(out);
      spawn(name, [this, in, out] {
        close_at_exit<T> closer{out};
        forward(in, out);
      });
    }
    return outs;
  }

  /// Runs f(v) (or f(ctx, v)) for every value of in, in one goroutine.
  template <class T, class F>
  void sink(std::string name, recv_chan<T> in, F f) {
    spawn(std::move(name), [this, in, f = std::move(f)]() mutable {
      for_each_value(in, [&](T v) {
        detail::call_stage(f, ctx_, std::move(v));
        return true;
      });
    });
  }

  /// Waits for every goroutine of the pipeline (see the top of this file).
  std::error_code wait();

  /// Goroutines of this pipeline still running (for tests and progress).
  std::int64_t running() const noexcept { return running_.load(std::memory_order_relaxed); }

 private:
  template <class F>
  void spawn(std::string name, F body) {
    wg_.add(1);
    running_.fetch_add(1, std::memory_order_relaxed);
    try {
      go([this, name = std::move(name), body = std::move(body)]() mutable {
        try {
          body();
        } catch (...) {
          fail(name, std::current_exception());
        }
        running_.fetch_sub(1, std::memory_order_relaxed);
        wg_.done();
      });
    } catch (...) {
      running_.fetch_sub(1, std::memory_order_relaxed);
      wg_.done();
      throw;
    }
  }

  // Closes a stage's output when the stage's goroutine ends, however it ends.
  template <class T>
  struct close_at_exit {
    const chan<T>& c;
    ~close_at_exit() { c.close(); }
  };

  // Receives from in until it is closed and drained or the pipeline is
  // cancelled, calling each(value); each returns false to stop early.
  template <class T, class Each>
  void for_each_value(const recv_chan<T>& in, Each&& each) {
    for (;;) {
      std::error_code ec;
      std::optional<T> v = in.recv(ctx_, ec);
      if (ec || !v || !each(std::move(*v))) return;
    }
  }

  // Copies in to out until in ends or the pipeline is cancelled.
  template <class T>
  void forward(const recv_chan<T>& in, const chan<T>& out) {
    for_each_value(in, [&](T v) { return !out.send(ctx_, std::move(v)); });
  }

  template <class Out, class R>
  void deliver(const chan<Out>& out, R&& r) {
    if constexpr (detail::is_optional<std::decay_t<R>>::value) {
      if (r) (void)out.send(ctx_, std::move(*r));
    } else {
      (void)out.send(ctx_, Out(std::forward<R>(r)));
    }
  }

  static void check_parallelism(int n) {
    if (n < 1) throw std::invalid_argument("goro::pipeline: parallelism must be at least 1");
  }

  context ctx_;
  cancel_func cancel_;
  wait_group wg_;
  std::atomic<std::int64_t> running_{0};
  mutex mu_;
  std::exception_ptr first_error_;  // guarded by mu_
  std::string failed_stage_;        // guarded by mu_
};

}  // namespace goro
