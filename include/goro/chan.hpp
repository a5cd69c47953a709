// goro/chan.hpp: channels (Go's chan T), the way goroutines and threads hand
// values to each other.
//
//   goro::chan<int> c = goro::make_chan<int>();      // unbuffered
//   goro::chan<job> q = goro::make_chan<job>(128);   // buffered, capacity 128
//   goro::chan<int> nil;                             // a nil channel
//
// A chan<T> is a handle: copies share one channel, as Go's channels are
// references, and the channel lives until its last handle goes away (values
// still buffered then are destroyed). send_chan<T> and recv_chan<T> are the
// directional views (Go's chan<- T and <-chan T): a chan<T> converts to either
// implicitly, so a function states what it does with a channel by the view it
// takes.
//
// Go's rules, exactly:
//  - Values are received in the order they were sent (FIFO).
//  - An unbuffered channel hands a value directly from a sender to a receiver;
//    a buffered one lets cap() sends complete without a receiver.
//  - A receive on a closed channel first drains the buffer, then returns at
//    once with "closed" (recv() -> std::nullopt).
//  - send on a closed channel throws goro::panic_error("send on closed
//    channel"); close of a closed channel "close of closed channel"; close of
//    a nil channel "close of nil channel". A value whose send throws is left
//    with the caller, untouched.
//  - close wakes every blocked receiver (they see "closed") and every blocked
//    sender (they throw).
//  - A send or receive on a nil channel blocks forever (a timed one until its
//    timeout; try_ ones report not_ready).
//
// Every operation works from goroutines and plain threads alike: a goroutine
// parks (its thread runs other goroutines), a thread blocks on a futex. Values
// are moved, never copied by the channel: T must be nothrow move
// constructible and nothrow destructible (wrap other types in a unique_ptr);
// T needs no default constructor. A send moves from the caller's value only
// when it succeeds; a failed try_send or a timed-out send_for leaves it as it
// was.
//
// Memory ordering (Go's memory model): a send happens before the matching
// receive completes; close happens before a receive that returns because the
// channel is closed; on an unbuffered channel a receive happens before the
// matching send completes; the k-th receive on a channel of capacity C
// happens before the (k+C)-th send completes. len() and cap() order nothing.
// The context-taking send and recv give the edges of the operation when it
// completes; one that gives up because the context is done orders nothing
// beyond the context's own edge (cancel before the done() receive).
//
// Timed variants (send_for, recv_for, ..._until) measure on the monotonic
// clock; a deadline on another clock is converted to a duration when called.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <iterator>
#include <new>
#include <optional>
#include <system_error>
#include <type_traits>
#include <utility>

#include "goro/panic.hpp"

namespace goro {

class context;  // goro/context.hpp

/// Outcome of a channel operation that may not complete.
enum class chan_status : std::uint8_t {
  ok,         // the value was sent / received
  closed,     // receive: the channel is closed and drained
  not_ready,  // try_send / try_recv: the operation would have blocked
  timeout,    // send_for / recv_for: the deadline passed first
};

namespace detail {

struct chan_core;

/// How the type-erased channel core moves and destroys values of one T.
struct chan_elem_ops {
  void (*move_construct)(void* dst, void* src) noexcept;
  void (*destroy)(void* p) noexcept;
  std::size_t size;
  std::size_t align;
  // Trivially copyable and destructible, at most 16 bytes: the channel
  // moves such a value with a copy of its bytes and never destroys it, and
  // so calls through neither pointer.
  bool small_trivial;
};

/// Moves the value at src into the receiver's destination dst (whatever the
/// receiver made it: an optional, a T&, a select case). Runs on the thread
/// that completes the exchange; it must not throw.
using chan_take_fn = void (*)(void* dst, void* src) noexcept;

inline constexpr std::int64_t no_deadline = INT64_MAX;

chan_core* chan_make(const chan_elem_ops* ops, std::size_t cap);
void chan_retain(chan_core* c) noexcept;
void chan_release(chan_core* c) noexcept;
// deadline: steady_clock nanoseconds, no_deadline for none; block == false
// makes a try_ operation.
chan_status chan_send(chan_core* c, void* src, bool block, std::int64_t deadline);
chan_status chan_recv(chan_core* c, void* dst, chan_take_fn take, bool block,
                      std::int64_t deadline);
void chan_close(chan_core* c);
std::size_t chan_len(const chan_core* c) noexcept;
std::size_t chan_cap(const chan_core* c) noexcept;
std::int64_t steady_now_ns() noexcept;
// As Go's select over the operation and ctx.Done() (src/context/waits.cpp).
// send: {} once sent, else ctx's error. recv: ok or closed with {}; ctx's
// error (status not_ready) if ctx was done first.
std::error_code chan_send_ctx(chan_core* c, void* src, const context& ctx);
chan_status chan_recv_ctx(chan_core* c, void* dst, chan_take_fn take, const context& ctx,
                          std::error_code& ec);

template <class T>
struct chan_ops_for {
  static void move_construct(void* dst, void* src) noexcept {
    ::new (dst) T(std::move(*static_cast<T*>(src)));
  }
  static void destroy(void* p) noexcept { static_cast<T*>(p)->~T(); }
  static constexpr bool small_trivial =
      std::is_trivially_copyable_v<T> && std::is_trivially_destructible_v<T> && sizeof(T) <= 16;
  static constexpr chan_elem_ops ops{&move_construct, &destroy, sizeof(T), alignof(T),
                                     small_trivial};
  // dst is a std::optional<T>.
  static void take_optional(void* dst, void* src) noexcept {
    static_cast<std::optional<T>*>(dst)->emplace(std::move(*static_cast<T*>(src)));
  }
};

template <class Rep, class Period>
std::int64_t deadline_after(std::chrono::duration<Rep, Period> d) noexcept {
  const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(d).count();
  const std::int64_t now = steady_now_ns();
  if (ns <= 0) return now;
  return ns >= no_deadline - now ? no_deadline - 1 : now + static_cast<std::int64_t>(ns);
}

template <class Clock, class Duration>
std::int64_t deadline_at(std::chrono::time_point<Clock, Duration> t) noexcept {
  if constexpr (std::is_same_v<Clock, std::chrono::steady_clock>) {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
  } else {
    return deadline_after(t - Clock::now());
  }
}

/// The shared handle: reference counting and the operations of both views.
template <class T>
class chan_handle {
  static_assert(std::is_object_v<T> && !std::is_array_v<T> && !std::is_const_v<T>,
                "goro::chan<T>: T must be a non-const object type");
  static_assert(std::is_nothrow_move_constructible_v<T>,
                "goro::chan<T>: T must be nothrow move constructible (wrap it in a unique_ptr)");
  static_assert(std::is_nothrow_destructible_v<T>, "goro::chan<T>: T must be nothrow destructible");

 public:
  chan_handle() noexcept = default;
  chan_handle(const chan_handle& o) noexcept : core_(o.core_) {
    if (core_ != nullptr) chan_retain(core_);
  }
  chan_handle(chan_handle&& o) noexcept : core_(std::exchange(o.core_, nullptr)) {}
  chan_handle& operator=(const chan_handle& o) noexcept {
    chan_handle(o).swap(*this);
    return *this;
  }
  chan_handle& operator=(chan_handle&& o) noexcept {
    chan_handle(std::move(o)).swap(*this);
    return *this;
  }
  ~chan_handle() {
    if (core_ != nullptr) chan_release(core_);
  }
  void swap(chan_handle& o) noexcept { std::swap(core_, o.core_); }

  std::size_t len() const noexcept { return core_ != nullptr ? chan_len(core_) : 0; }
  std::size_t cap() const noexcept { return core_ != nullptr ? chan_cap(core_) : 0; }
  bool is_nil() const noexcept { return core_ == nullptr; }
  explicit operator bool() const noexcept { return core_ != nullptr; }

  /// Identity, as Go compares channels.
  friend bool operator==(const chan_handle& a, const chan_handle& b) noexcept {
    return a.core_ == b.core_;
  }

  chan_core* core() const noexcept { return core_; }

 protected:
  explicit chan_handle(chan_core* adopted) noexcept : core_(adopted) {}

  // --- sending ---
  void send_impl(T& v) const { (void)chan_send(core_, std::addressof(v), true, no_deadline); }
  chan_status send_impl(T& v, bool block, std::int64_t deadline) const {
    return chan_send(core_, std::addressof(v), block, deadline);
  }
  // --- receiving ---
  std::optional<T> recv_impl(bool block, std::int64_t deadline, chan_status* st) const {
    std::optional<T> out;
    const chan_status s = chan_recv(core_, &out, &chan_ops_for<T>::take_optional, block, deadline);
    if (st != nullptr) *st = s;
    return out;
  }
  chan_status recv_into(T& out, bool block, std::int64_t deadline) const {
    static_assert(std::is_nothrow_move_assignable_v<T>,
                  "goro::chan<T>::recv(T&) needs a nothrow move-assignable T; use recv()");
    auto take = [](void* dst, void* src) noexcept {
      *static_cast<T*>(dst) = std::move(*static_cast<T*>(src));
    };
    return chan_recv(core_, std::addressof(out), take, block, deadline);
  }

  chan_core* core_ = nullptr;
};

}  // namespace detail

template <class T>
class chan;
template <class T>
class send_chan;
template <class T>
class recv_chan;

/// Makes a channel of T with room for `capacity` buffered values (0:
/// unbuffered). Throws std::length_error if the buffer cannot be sized.
template <class T>
chan<T> make_chan(std::size_t capacity = 0);

/// The receiving operations, shared by chan<T> and recv_chan<T>.
template <class T, class Self>
class recv_ops {
 public:
  /// Blocks until a value arrives (returned) or the channel is closed and
  /// drained (std::nullopt).
  std::optional<T> recv() const { return self().recv_impl(true, detail::no_deadline, nullptr); }
  /// Go's `v, ok := <-c`: receives into out; false (out untouched) once the
  /// channel is closed and drained.
  bool recv(T& out) const {
    return self().recv_into(out, true, detail::no_deadline) == chan_status::ok;
  }
  /// Receives only if that needs no waiting; std::nullopt otherwise (use
  /// try_recv(T&) to tell "nothing yet" from "closed").
  std::optional<T> try_recv() const { return self().recv_impl(false, 0, nullptr); }
  /// ok, closed or not_ready.
  chan_status try_recv(T& out) const { return self().recv_into(out, false, 0); }
  /// Waits at most d: std::nullopt if closed or timed out.
  template <class Rep, class Period>
  std::optional<T> recv_for(std::chrono::duration<Rep, Period> d) const {
    return self().recv_impl(true, detail::deadline_after(d), nullptr);
  }
  /// ok, closed or timeout.
  template <class Rep, class Period>
  chan_status recv_for(T& out, std::chrono::duration<Rep, Period> d) const {
    return self().recv_into(out, true, detail::deadline_after(d));
  }
  template <class Clock, class Duration>
  chan_status recv_until(T& out, std::chrono::time_point<Clock, Duration> t) const {
    return self().recv_into(out, true, detail::deadline_at(t));
  }
  /// Receives, unless ctx is done first (Go's select over `<-c` and
  /// `<-ctx.Done()`; if both are ready either may be chosen). Returns {}
  /// when a value arrived (ok true, out set) or the channel is closed and
  /// drained (ok false); otherwise ctx's error, out untouched.
  [[nodiscard]] std::error_code recv(const context& ctx, T& out, bool& ok) const {
    static_assert(std::is_nothrow_move_assignable_v<T>,
                  "goro::chan<T>::recv(ctx, T&, bool&) needs a nothrow move-assignable T");
    auto take = [](void* dst, void* src) noexcept {
      *static_cast<T*>(dst) = std::move(*static_cast<T*>(src));
    };
    std::error_code ec;
    ok =
        detail::chan_recv_ctx(self().core(), std::addressof(out), take, ctx, ec) == chan_status::ok;
    return ec;
  }
  /// The value, or std::nullopt with ec empty (closed and drained) or set to
  /// ctx's error (ctx done first).
  std::optional<T> recv(const context& ctx, std::error_code& ec) const {
    std::optional<T> out;
    ec.clear();
    (void)detail::chan_recv_ctx(self().core(), &out, &detail::chan_ops_for<T>::take_optional, ctx,
                                ec);
    return out;
  }

  /// Input iterator over received values; equal to end() once the channel is
  /// closed and drained (Go's `for v := range c`).
  class iterator {
   public:
    using iterator_category = std::input_iterator_tag;
    using value_type = T;
    using difference_type = std::ptrdiff_t;
    using pointer = T*;
    using reference = T&;

    iterator() = default;
    reference operator*() const { return *value_; }
    pointer operator->() const { return std::addressof(*value_); }
    iterator& operator++() {
      value_ = owner_->recv();
      return *this;
    }
    void operator++(int) { ++*this; }
    friend bool operator==(const iterator& it, std::default_sentinel_t) {
      return !it.value_.has_value();
    }

   private:
    friend class recv_ops;
    explicit iterator(const Self* owner) : owner_(owner), value_(owner->recv()) {}
    const Self* owner_ = nullptr;
    mutable std::optional<T> value_;  // the current element: *it may move from it
  };
  /// Receives the first value (blocking): range-for over a channel.
  iterator begin() const { return iterator(&self()); }
  std::default_sentinel_t end() const noexcept { return {}; }

 private:
  const Self& self() const { return static_cast<const Self&>(*this); }
};

/// The sending operations, shared by chan<T> and send_chan<T>.
template <class T, class Self>
class send_ops {
 public:
  /// Blocks until the value is received or buffered. Throws
  /// panic_error("send on closed channel") (v untouched) if the channel is or
  /// becomes closed first.
  void send(T&& v) const { self().send_impl(v); }
  void send(const T& v) const requires std::is_copy_constructible_v<T> {
    T copy(v);
    self().send_impl(copy);
  }
  /// Sends only if that needs no waiting: ok or not_ready. Moves from v only
  /// on ok.
  chan_status try_send(T&& v) const { return self().send_impl(v, false, 0); }
  chan_status try_send(const T& v) const requires std::is_copy_constructible_v<T> {
    T copy(v);
    return self().send_impl(copy, false, 0);
  }
  /// Waits at most d: ok or timeout. Moves from v only on ok.
  template <class Rep, class Period>
  chan_status send_for(T&& v, std::chrono::duration<Rep, Period> d) const {
    return self().send_impl(v, true, detail::deadline_after(d));
  }
  template <class Rep, class Period>
  chan_status send_for(const T& v, std::chrono::duration<Rep, Period> d)
      const requires std::is_copy_constructible_v<T> {
    T copy(v);
    return self().send_impl(copy, true, detail::deadline_after(d));
  }
  template <class Clock, class Duration>
  chan_status send_until(T&& v, std::chrono::time_point<Clock, Duration> t) const {
    return self().send_impl(v, true, detail::deadline_at(t));
  }
  /// Sends, unless ctx is done first (Go's select over `c <- v` and
  /// `<-ctx.Done()`; if both are ready either may be chosen). Returns {} once
  /// sent, else ctx's error with v untouched. Throws like send() on a closed
  /// channel.
  [[nodiscard]] std::error_code send(const context& ctx, T&& v) const {
    return detail::chan_send_ctx(self().core(), std::addressof(v), ctx);
  }
  [[nodiscard]] std::error_code send(const context& ctx,
                                     const T& v) const requires std::is_copy_constructible_v<T> {
    T copy(v);
    return detail::chan_send_ctx(self().core(), std::addressof(copy), ctx);
  }

  /// Closes the channel: no more sends; receivers drain what is buffered,
  /// then see "closed". Throws panic_error("close of closed channel") or
  /// ("close of nil channel").
  void close() const { detail::chan_close(self().core()); }

 private:
  const Self& self() const { return static_cast<const Self&>(*this); }
};

/// A bidirectional channel handle (Go's chan T).
template <class T>
class chan : public detail::chan_handle<T>,
             public send_ops<T, chan<T>>,
             public recv_ops<T, chan<T>> {
 public:
  using value_type = T;
  /// A nil channel.
  chan() noexcept = default;

 private:
  friend chan make_chan<T>(std::size_t);
  friend class send_ops<T, chan>;
  friend class recv_ops<T, chan>;
  explicit chan(detail::chan_core* c) noexcept : detail::chan_handle<T>(c) {}
};

/// A send-only view (Go's chan<- T).
template <class T>
class send_chan : public detail::chan_handle<T>, public send_ops<T, send_chan<T>> {
 public:
  using value_type = T;
  send_chan() noexcept = default;
  send_chan(const chan<T>& c) noexcept : detail::chan_handle<T>(c) {}  // NOLINT: implicit by design
  send_chan(chan<T>&& c) noexcept : detail::chan_handle<T>(std::move(c)) {}  // NOLINT

 private:
  friend class send_ops<T, send_chan>;
};

/// A receive-only view (Go's <-chan T).
template <class T>
class recv_chan : public detail::chan_handle<T>, public recv_ops<T, recv_chan<T>> {
 public:
  using value_type = T;
  recv_chan() noexcept = default;
  recv_chan(const chan<T>& c) noexcept : detail::chan_handle<T>(c) {}  // NOLINT: implicit by design
  recv_chan(chan<T>&& c) noexcept : detail::chan_handle<T>(std::move(c)) {}  // NOLINT

  /// Internal: adopts one reference to c (runtime-made channels: timers,
  /// contexts).
  static recv_chan adopt(detail::chan_core* c) noexcept { return recv_chan(c); }

 private:
  explicit recv_chan(detail::chan_core* c) noexcept : detail::chan_handle<T>(c) {}
  friend class recv_ops<T, recv_chan>;
};

template <class T>
chan<T> make_chan(std::size_t capacity) {
  return chan<T>(detail::chan_make(&detail::chan_ops_for<T>::ops, capacity));
}

}  // namespace goro
