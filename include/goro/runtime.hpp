// goro/runtime.hpp: starting the runtime and sizing it.
//
// goro::run(f) is Go's program start: it creates the processors (Ps) and the
// threads that run goroutines, runs f as the main goroutine on them, and
// returns when f returns. Goroutines still alive at that point are abandoned,
// as Go abandons them when main returns: they are never resumed, their
// destructors never run, and their stacks are released.
//
// Only one runtime exists at a time; run() may be called again after it has
// returned (tests do this to try several P counts).
//
// Memory ordering: everything the caller of run() did before the call happens
// before f starts; everything f did happens before run() returns.
#pragma once

#include <cstdint>
#include <type_traits>
#include <utility>

namespace goro {

/// The largest P count the runtime supports.
inline constexpr int max_maxprocs = 256;

struct run_options {
  /// Number of Ps (Go's GOMAXPROCS). 0: the value of set_maxprocs() if one
  /// was set before run(), else the environment variable GORO_MAXPROCS, else
  /// the number of hardware threads.
  int maxprocs = 0;
};

namespace detail {
int run_main(const run_options& opts, void (*fn)(void*), void* arg);
}  // namespace detail

/// Runs f() as the main goroutine of a new runtime and returns when it
/// returns: f's result if it returns int, 0 if it returns void. Throws
/// std::logic_error if a runtime is already running. An exception escaping f
/// ends the process like any goroutine's (see goroutine.hpp).
template <class F>
int run(const run_options& opts, F&& f) {
  using result = std::invoke_result_t<F&>;
  static_assert(std::is_void_v<result> || std::is_convertible_v<result, int>,
                "goro::run: the main function must return void or int");
  struct frame {
    F& fn;
    int code = 0;
  } fr{f};
  detail::run_main(
      opts,
      [](void* p) {
        auto* fp = static_cast<frame*>(p);
        if constexpr (std::is_void_v<result>) {
          fp->fn();
        } else {
          fp->code = static_cast<int>(fp->fn());
        }
      },
      &fr);
  return fr.code;
}

template <class F>
int run(F&& f) {
  return run(run_options{}, std::forward<F>(f));
}

/// The current number of Ps (inside run()), or the number the next run()
/// would use by default (outside it).
int maxprocs() noexcept;

/// Sets the number of Ps and returns the previous value, like Go's
/// runtime.GOMAXPROCS(n). Inside run() the change takes effect at once:
/// goroutines queued on a P that is taken away move to the others. Outside
/// run() it sets the default of the next run(). Throws std::invalid_argument
/// unless 1 <= n <= max_maxprocs.
int set_maxprocs(int n);

/// The number of goroutines that exist now (started or waiting to start, not
/// yet finished), like Go's runtime.NumGoroutine(). 0 outside run().
std::int64_t num_goroutines() noexcept;

}  // namespace goro
