// goro/blocking.hpp: running a call that blocks its thread.
//
// goro::blocking(f) runs f() on the calling goroutine's thread, but first
// hands the goroutine's processor (P) to another thread, so the other
// goroutines keep running while f blocks (file I/O, a C library call, a
// std::mutex, sleep(3), ...). This is what Go does around every system call
// (entersyscall / exitsyscall). When f returns, the goroutine takes an idle
// P back if there is one and continues on the same thread; otherwise it
// queues and continues wherever a P frees up. Returns f's result, or
// rethrows what f throws.
//
// Dumps show the goroutine as "blocking call" meanwhile. A blocking call
// also counts as something that may wake other goroutines: no deadlock is
// reported while one runs. On a plain thread blocking(f) just calls f.
//
// f must not use goro primitives that park (channels, mutex, sleep_for):
// it runs without a P. Memory ordering: f runs in the calling goroutine's
// program order.
#pragma once

#include <functional>
#include <type_traits>
#include <utility>

namespace goro {

namespace detail {
bool blocking_enter() noexcept;
void blocking_exit() noexcept;
}  // namespace detail

template <class F>
decltype(auto) blocking(F&& f) {
  struct scope {
    bool entered;
    ~scope() {
      if (entered) detail::blocking_exit();
    }
  } s{detail::blocking_enter()};
  return std::invoke(std::forward<F>(f));
}

}  // namespace goro
