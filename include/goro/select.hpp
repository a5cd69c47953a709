// goro/select.hpp: waiting on several channel operations at once (Go's
// select statement, and reflect.Select for a case list built at run time).
//
//   std::size_t i = goro::select(
//       goro::on_recv(jobs, [&](std::optional<job> j) { ... }),   // case j, ok := <-jobs
//       goro::on_send(results, r, [&] { ... }),                  // case results <- r
//       goro::on_default([&] { ... }));                           // default
//
// select returns the position of the case that ran and calls that case's
// callback (after every channel lock is released, on the calling goroutine;
// an exception from a callback propagates out of select). Go's semantics,
// exactly:
//  - If several cases are ready, one is chosen uniformly at random.
//  - The default case runs only if no case is ready at the instant select
//    looks (select is atomic: it never takes default while a case was ready
//    the whole time). At most one default.
//  - Cases on nil channels are never chosen. A select with no cases, or only
//    nil ones and no default, blocks forever.
//  - The same channel may appear in several cases; exactly one case runs.
//  - A blocked select parks until some case is ready; it never polls.
//  - A send case on a closed channel throws panic_error("send on closed
//    channel") if select chooses it (it is ready: it would not block).
//
// Receive callbacks take std::optional<T> (std::nullopt: the channel is
// closed), or nothing. Send cases take their value by reference if given an
// lvalue T (moved from only if that case runs; otherwise left untouched) and
// by value otherwise. on_recv(c) and on_send(c, v) without a callback just
// do the operation.
//
// Memory ordering: the chosen case gives exactly the edges of the plain
// operation (see chan.hpp); cases not chosen give none.
//
// Works from goroutines and plain threads. A select locks the channels of its
// cases in address order, so concurrent selects over the same channels never
// deadlock. The variadic form allocates nothing.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <type_traits>
#include <utility>

#include "goro/chan.hpp"

namespace goro {

namespace detail {

struct select_case_rec {
  chan_core* c = nullptr;  // nullptr: a nil channel, or the default case
  void* elem = nullptr;    // send: the value; receive: the destination
  chan_take_fn take = nullptr;
  bool send = false;
};

/// Per-case room select needs while it waits (its waiter record and two
/// order entries), supplied by the caller so the variadic form needs no heap.
struct alignas(void*) select_slot {
  unsigned char waiter[64];
  std::uint32_t poll_order;
  std::uint32_t lock_order;
};

inline constexpr std::ptrdiff_t select_chose_default = -1;
inline constexpr std::ptrdiff_t select_timed_out = -2;

struct select_result {
  std::ptrdiff_t index;  // a case, select_chose_default or select_timed_out
  bool recv_ok;          // receive cases: a value arrived (false: closed)
};

/// Go's selectgo over cases[0..n). deadline: steady-clock ns or no_deadline.
select_result select_impl(const select_case_rec* cases, select_slot* slots, std::size_t n,
                          bool has_default, std::int64_t deadline);

struct no_callback {
  void operator()() const noexcept {}
};

}  // namespace detail

/// A receive case; made by on_recv.
template <class T, class F>
class recv_case {
 public:
  static constexpr bool is_default = false;
  recv_case(detail::chan_core* c, F f) : c_(c), f_(std::move(f)) {}

  // A callback that takes nothing never sees the value: the channel drops
  // it in place (for values whose destruction is nothing at all; others
  // are destroyed here, outside the channel's lock).
  static constexpr bool drops_value =
      !std::is_invocable_v<F&, std::optional<T>> && std::is_trivially_destructible_v<T>;

  detail::select_case_rec rec() noexcept {
    if constexpr (drops_value) {
      return {c_, nullptr, nullptr, false};
    } else {
      value_.reset();  // a case may be reused: nothing from an earlier select
      return {c_, &value_, &detail::chan_ops_for<T>::take_optional, false};
    }
  }
  void complete() {
    if constexpr (std::is_invocable_v<F&, std::optional<T>>) {
      std::optional<T> v = std::move(value_);
      value_.reset();
      f_(std::move(v));
    } else {
      static_assert(std::is_invocable_v<F&>,
                    "goro::on_recv: the callback must take std::optional<T>, or nothing");
      f_();
    }
  }

 private:
  detail::chan_core* c_;
  F f_;
  std::optional<T> value_;
};

/// A send case; made by on_send. V is T (the case owns the value) or T&.
template <class T, class V, class F>
class send_case {
 public:
  static constexpr bool is_default = false;
  template <class U>
  send_case(detail::chan_core* c, U&& v, F f) : c_(c), value_(std::forward<U>(v)), f_(std::move(f)) {}

  detail::select_case_rec rec() noexcept {
    return {c_, const_cast<void*>(static_cast<const void*>(std::addressof(value_))), nullptr, true};
  }
  void complete() {
    static_assert(std::is_invocable_v<F&>, "goro::on_send: the callback takes no arguments");
    f_();
  }

 private:
  detail::chan_core* c_;
  V value_;
  F f_;
};

/// The default case; made by on_default.
template <class F>
class default_case {
 public:
  static constexpr bool is_default = true;
  explicit default_case(F f) : f_(std::move(f)) {}
  detail::select_case_rec rec() noexcept { return {}; }
  void complete() {
    static_assert(std::is_invocable_v<F&>, "goro::on_default: the callback takes no arguments");
    f_();
  }

 private:
  F f_;
};

template <class T, class F = detail::no_callback>
recv_case<T, F> on_recv(const chan<T>& c, F f = {}) {
  return {c.core(), std::move(f)};
}
template <class T, class F = detail::no_callback>
recv_case<T, F> on_recv(const recv_chan<T>& c, F f = {}) {
  return {c.core(), std::move(f)};
}

namespace detail {
// T& for a non-const lvalue T (borrowed), T otherwise (owned).
template <class T, class U>
using send_value_t =
    std::conditional_t<std::is_same_v<U, T&>, T&, T>;
}  // namespace detail

namespace detail {
// An lvalue T is borrowed (so a move-only T works); anything else must make a T.
template <class T, class U>
concept send_case_value = std::is_same_v<U, T&> || std::is_constructible_v<T, U&&>;
}  // namespace detail

template <class T, class U, class F = detail::no_callback>
  requires detail::send_case_value<T, U>
send_case<T, detail::send_value_t<T, U>, F> on_send(const chan<T>& c, U&& v, F f = {}) {
  return {c.core(), std::forward<U>(v), std::move(f)};
}
template <class T, class U, class F = detail::no_callback>
  requires detail::send_case_value<T, U>
send_case<T, detail::send_value_t<T, U>, F> on_send(const send_chan<T>& c, U&& v, F f = {}) {
  return {c.core(), std::forward<U>(v), std::move(f)};
}

template <class F = detail::no_callback>
default_case<F> on_default(F f = {}) {
  return default_case<F>(std::move(f));
}

namespace detail {
template <class C>
struct is_select_case : std::false_type {};
template <class T, class F>
struct is_select_case<recv_case<T, F>> : std::true_type {};
template <class T, class V, class F>
struct is_select_case<send_case<T, V, F>> : std::true_type {};
template <class F>
struct is_select_case<default_case<F>> : std::true_type {};
}  // namespace detail

/// Runs exactly one of the cases (see the top of this file); returns its
/// position among the arguments.
template <class... Cases>
  requires(detail::is_select_case<std::remove_cvref_t<Cases>>::value && ...)
std::size_t select(Cases&&... cases) {
  constexpr std::size_t n = sizeof...(Cases);
  constexpr std::size_t ndefault = (std::size_t{0} + ... + (std::remove_cvref_t<Cases>::is_default ? 1 : 0));
  static_assert(ndefault <= 1, "goro::select: at most one default case");
  constexpr std::size_t slots_n = n == 0 ? 1 : n;
  detail::select_case_rec recs[slots_n];
  detail::select_slot slots[slots_n];
  std::size_t default_pos = n;
  {
    std::size_t i = 0;
    ((recs[i] = cases.rec(),
      default_pos = std::remove_cvref_t<Cases>::is_default ? i : default_pos, ++i),
     ...);
  }
  const detail::select_result r =
      detail::select_impl(recs, slots, n, ndefault != 0, detail::no_deadline);
  const std::size_t chosen =
      r.index == detail::select_chose_default ? default_pos : static_cast<std::size_t>(r.index);
  {
    std::size_t i = 0;
    ((i++ == chosen ? cases.complete() : void()), ...);
  }
  return chosen;
}

/// One case of a select whose case list is built at run time (Go's
/// reflect.SelectCase). Owns a handle to its channel.
class select_case {
 public:
  template <class T, class F = detail::no_callback>
  static select_case recv(const chan<T>& c, F f = {}) {
    return select_case(std::make_unique<holder<recv_case<T, F>, recv_chan<T>>>(
        recv_chan<T>(c), recv_case<T, F>(c.core(), std::move(f))));
  }
  template <class T, class F = detail::no_callback>
  static select_case recv(const recv_chan<T>& c, F f = {}) {
    return select_case(std::make_unique<holder<recv_case<T, F>, recv_chan<T>>>(
        c, recv_case<T, F>(c.core(), std::move(f))));
  }
  /// The case owns a copy of (or the moved) value.
  template <class T, class U, class F = detail::no_callback>
    requires std::is_constructible_v<T, U&&>
  static select_case send(const send_chan<T>& c, U&& v, F f = {}) {
    return select_case(std::make_unique<holder<send_case<T, T, F>, send_chan<T>>>(
        c, send_case<T, T, F>(c.core(), std::forward<U>(v), std::move(f))));
  }
  template <class T, class U, class F = detail::no_callback>
    requires std::is_constructible_v<T, U&&>
  static select_case send(const chan<T>& c, U&& v, F f = {}) {
    return send(send_chan<T>(c), std::forward<U>(v), std::move(f));
  }
  template <class F = detail::no_callback>
  static select_case default_(F f = {}) {
    return select_case(std::make_unique<holder<default_case<F>, int>>(0, default_case<F>(std::move(f))));
  }

  bool is_default() const noexcept { return impl_->is_default(); }

 private:
  friend std::size_t select(std::span<select_case> cases);

  struct holder_base {
    virtual ~holder_base() = default;
    virtual detail::select_case_rec rec() noexcept = 0;
    virtual void complete() = 0;
    virtual bool is_default() const noexcept = 0;
  };
  template <class Case, class Handle>
  struct holder final : holder_base {
    holder(Handle h, Case c) : handle(std::move(h)), the_case(std::move(c)) {}
    detail::select_case_rec rec() noexcept override { return the_case.rec(); }
    void complete() override { the_case.complete(); }
    bool is_default() const noexcept override { return Case::is_default; }
    Handle handle;  // keeps the channel alive as long as the case
    Case the_case;
  };
  explicit select_case(std::unique_ptr<holder_base> impl) : impl_(std::move(impl)) {}
  std::unique_ptr<holder_base> impl_;
};

/// Runs exactly one of the cases, as the variadic select does; returns its
/// index. Throws std::invalid_argument if more than one case is a default.
std::size_t select(std::span<select_case> cases);

}  // namespace goro
