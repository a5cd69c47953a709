// goro/goroutine.hpp: spawning goroutines and asking about the current one.
//
// goro::go(f, args...) starts f(args...) in a new goroutine, as Go's `go`
// statement does. f and args are decay-copied into the goroutine (like
// std::thread); a closure of up to 64 bytes (no stricter alignment than
// std::max_align_t, and a move constructor that cannot throw: the runtime
// moves it once, when the goroutine first runs) is stored inside the
// goroutine's record, so spawning allocates nothing; any other takes one heap
// allocation and is never moved. Goroutines are stackful and run M:N on
// the runtime's threads; they move between threads whenever they block, so
// never hold a reference to a thread_local across a blocking call.
//
// The spawn site (goro::source_location, which is std::source_location where
// available, of the goro::go expression) is kept
// for diagnostics. One C++ wrinkle: `goro::go(f);` with a single plain name is
// parsed as a declaration; write `goro::go{f};` or pass a lambda.
//
// Flow control: when more than about a thousand goroutines wait to run for
// the first time, a goroutine calling goro::go yields now and then, and when
// more than 65,536 wait it parks until half of them have started (a spawn
// loop cannot build a backlog bounded only by memory; Go gets the same from
// preempting the spawner). So goro::go, like any Go call, may let other
// goroutines run, and the caller may resume on another thread; spawning
// from a plain thread never waits.
//
// Errors: an exception escaping f ends the process like an unrecovered Go
// panic. Spawning outside goro::run() throws std::logic_error.
//
// Memory ordering: everything the spawner did before goro::go happens before
// f starts.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <new>
#include <version>
#if defined(__cpp_lib_source_location)
#include <source_location>
#endif
#include <string_view>
#include <tuple>
#include <type_traits>
#include <utility>

namespace goro {

#if defined(__cpp_lib_source_location)
/// Where a goroutine was spawned: std::source_location where the standard
/// library has it.
using source_location = std::source_location;
#else
/// Where a goroutine was spawned. Stands in for std::source_location on
/// compilers whose standard library cannot provide it (Clang 14 with
/// libstdc++ 12), with the same interface, built on the __builtin_FILE family.
class source_location {
 public:
  static constexpr source_location current(const char* file = __builtin_FILE(),
                                           const char* function = __builtin_FUNCTION(),
                                           unsigned line = __builtin_LINE()) noexcept {
    source_location s;
    s.file_ = file;
    s.function_ = function;
    s.line_ = line;
    return s;
  }
  constexpr source_location() noexcept = default;
  constexpr unsigned line() const noexcept { return line_; }
  constexpr unsigned column() const noexcept { return 0; }
  constexpr const char* file_name() const noexcept { return file_; }
  constexpr const char* function_name() const noexcept { return function_; }

 private:
  const char* file_ = "";
  const char* function_ = "";
  unsigned line_ = 0;
};
#endif

/// Stack size of a goroutine unless spawn_options says otherwise: 64 KiB of
/// address space, committed page by page as the goroutine touches it.
inline constexpr std::size_t default_stack_size = 64 * 1024;

struct spawn_options {
  /// Stack size in bytes, rounded up to whole pages; 0 means
  /// default_stack_size (or the environment variable GORO_STACK_SIZE).
  std::size_t stack_size = 0;
  /// A name shown in goroutine dumps; copied, at most 47 bytes kept.
  std::string_view name{};
};

namespace detail {

struct closure_ops {
  void (*run)(void* closure);               // invokes the callable
  void (*destroy)(void* closure) noexcept;  // destroys it
  // Move-constructs it at `to` and destroys it at `from`; nullptr if its
  // move may throw (the runtime then keeps it on the heap, never moving it).
  void (*relocate)(void* from, void* to) noexcept;
};

struct spawn_slot {
  void* g;        // the goroutine record, opaque
  void* storage;  // where the closure is constructed
};

/// Reserves a goroutine record with room for a closure of size/align;
/// relocatable: the closure's ops have a relocate function.
spawn_slot spawn_begin(const spawn_options& opts, std::size_t size, std::size_t align,
                       bool relocatable, const source_location& site);
/// Makes the goroutine runnable; its closure lives at slot.storage.
void spawn_commit(const spawn_slot& slot, const closure_ops* ops) noexcept;
/// Returns the record after constructing the closure threw.
void spawn_abort(const spawn_slot& slot) noexcept;

template <class Fn, class... Args>
struct closure {
  Fn fn;
  [[no_unique_address]] std::tuple<Args...> args;  // no byte of its own when empty

  static void run(void* p) {
    auto* c = static_cast<closure*>(p);
    std::apply([c](Args&... a) { std::invoke(std::move(c->fn), std::move(a)...); }, c->args);
  }
  static void destroy(void* p) noexcept { static_cast<closure*>(p)->~closure(); }
  static constexpr bool relocatable = std::is_nothrow_move_constructible_v<closure>;
  static void relocate(void* from, void* to) noexcept {
    if constexpr (relocatable) {
      auto* c = static_cast<closure*>(from);
      ::new (to) closure(std::move(*c));
      c->~closure();
    }
  }
  static constexpr closure_ops ops{&closure::run, &closure::destroy,
                                   relocatable ? &closure::relocate : nullptr};
};

template <class F, class... Args>
void spawn(const spawn_options& opts, const source_location& site, F&& f, Args&&... args) {
  using C = closure<std::decay_t<F>, std::decay_t<Args>...>;
  static_assert(std::is_invocable_v<std::decay_t<F>, std::decay_t<Args>...>,
                "goro::go: f(args...) is not callable with decay-copied arguments");
  spawn_slot slot = spawn_begin(opts, sizeof(C), alignof(C), C::relocatable, site);
  try {
    ::new (slot.storage) C{std::forward<F>(f), {std::forward<Args>(args)...}};
  } catch (...) {
    spawn_abort(slot);
    throw;
  }
  spawn_commit(slot, &C::ops);
}

template <class T>
inline constexpr bool is_spawn_options_v = std::is_same_v<std::remove_cvref_t<T>, spawn_options>;

}  // namespace detail

/// goro::go(f, args...) and goro::go(options, f, args...): start a goroutine.
/// A class only so that the spawn site can follow a parameter pack; use it as
/// a function.
template <class F, class... Args>
struct go {
  explicit go(F&& f, Args&&... args, const source_location& site = source_location::current()) {
    detail::spawn(spawn_options{}, site, std::forward<F>(f), std::forward<Args>(args)...);
  }
  go(const spawn_options& opts, F&& f, Args&&... args,
     const source_location& site = source_location::current()) {
    detail::spawn(opts, site, std::forward<F>(f), std::forward<Args>(args)...);
  }
};

template <class F, class... Args>
requires(!detail::is_spawn_options_v<F>) go(F&&, Args&&...)
->go<F, Args...>;

template <class F, class... Args>
go(const spawn_options&, F&&, Args&&...) -> go<F, Args...>;

/// Lets other goroutines run; the caller stays runnable (Go's
/// runtime.Gosched). On a plain thread it calls std::this_thread::yield().
void yield();

/// The current goroutine's id (1 is the main goroutine, ids are never reused
/// within a run), or 0 on a thread that is not running a goroutine.
std::uint64_t goroutine_id() noexcept;

/// Where the current goroutine was spawned; a default-constructed
/// source_location on a plain thread.
source_location spawn_site() noexcept;

/// True when called from a goroutine, false on a plain thread.
bool in_goroutine() noexcept;

}  // namespace goro
