// goro/errgroup.hpp: a group of goroutines working on subtasks of one task
// (golang.org/x/sync's errgroup.Group), with a limit and exception capture.
//
//   goro::errgroup g(ctx);                     // Go: g, ctx := errgroup.WithContext(ctx)
//   goro::context gctx = g.context();         // cancelled at the first error
//   for (auto& url : urls)
//     g.go([&, url]() -> std::error_code { return fetch(gctx, url); });
//   if (std::error_code ec = g.wait()) ...    // the first error
//
// go(f) runs f on a new goroutine; f returns std::error_code (empty: success)
// or void. wait() blocks until every f has returned and returns the first
// non-empty error. A group made from a context (Go's WithContext) derives
// context() from it and cancels that the first time an f fails (or throws),
// or when wait() returns. A default-constructed group has a background
// context() that is never cancelled.
//
// set_limit(n) bounds the number of active goroutines to n (negative: no
// bound): go() then blocks while the group is at the limit, and try_go()
// returns false instead of blocking. Changing the limit while goroutines are
// active is a panic with x/sync's words: "errgroup: modify limit while N
// goroutines in the group are still active".
//
// An exception escaping f does not end the process (as an exception
// escaping a plain goroutine does): the group captures the first one, with
// the goroutine's id and the site of the go() call that spawned it, cancels
// the context, and wait() throws it as a goro::task_exception (the original
// is its nested exception: std::rethrow_if_nested, or original()).
//
// Usable from goroutines and plain threads (go and wait).
//
// Memory ordering (x/sync's): everything an f did happens before wait()
// returns; the call to go(f) happens before f starts.
#pragma once

#include <cstdint>
#include <exception>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <system_error>
#include <type_traits>
#include <utility>
#include <variant>

#include "goro/chan.hpp"
#include "goro/context.hpp"
#include "goro/goroutine.hpp"
#include "goro/mutex.hpp"
#include "goro/panic.hpp"
#include "goro/wait_group.hpp"

namespace goro {

/// An exception that escaped a task of an errgroup, rethrown by wait().
class task_exception : public std::runtime_error, public std::nested_exception {
 public:
  task_exception(const std::string& what, std::uint64_t goroutine, source_location site)
      : std::runtime_error(what), goroutine_(goroutine), site_(site) {}
  /// The id of the goroutine the task ran on.
  std::uint64_t goroutine() const noexcept { return goroutine_; }
  /// Where go() was called for the task.
  const source_location& spawn_site() const noexcept { return site_; }
  /// The exception the task threw.
  std::exception_ptr original() const noexcept { return nested_ptr(); }

 private:
  std::uint64_t goroutine_;
  source_location site_;
};

class errgroup {
 public:
  /// A group without a cancellable context (Go's zero Group).
  errgroup() = default;
  /// Go's WithContext: context() is derived from parent and cancelled at the
  /// first failure or when wait() returns.
  explicit errgroup(const goro::context& parent) {
    auto [ctx, cancel] = with_cancel_cause(parent);
    ctx_ = std::move(ctx);
    cancel_ = std::move(cancel);
  }
  errgroup(const errgroup&) = delete;
  errgroup& operator=(const errgroup&) = delete;

  /// The group's context (see the constructors).
  const goro::context& context() const noexcept { return ctx_; }

  /// Runs f on a new goroutine; blocks first while the group is at its limit.
  template <class F>
  void go(F&& f, const source_location& site = source_location::current()) {
    if (sem_) sem_->send(std::monostate{});  // waits while len(sem) == limit
    start(std::forward<F>(f), site);
  }

  /// Like go(), but returns false instead of waiting at the limit.
  template <class F>
  bool try_go(F&& f, const source_location& site = source_location::current()) {
    if (sem_ && sem_->try_send(std::monostate{}) != chan_status::ok) return false;
    start(std::forward<F>(f), site);
    return true;
  }

  /// At most n goroutines active at once (negative: no limit).
  void set_limit(int n) {
    if (sem_ && sem_->len() != 0) {
      throw panic_error("errgroup: modify limit while " + std::to_string(sem_->len()) +
                        " goroutines in the group are still active");
    }
    if (n < 0) {
      sem_.reset();
      return;
    }
    sem_.emplace(make_chan<std::monostate>(static_cast<std::size_t>(n)));
  }

  /// Waits for every task; returns the first error, or throws the first
  /// captured exception (as task_exception).
  std::error_code wait() {
    wg_.wait();  // every task's effects happen before this returns
    std::error_code err;
    std::exception_ptr ex;
    {
      std::lock_guard lk(mu_);
      err = err_;
      ex = exception_;
    }
    cancel_(err);
    if (ex) std::rethrow_exception(ex);
    return err;
  }

 private:
  template <class F>
  void start(F&& f, const source_location& site) {
    wg_.add(1);
    detail::spawn(spawn_options{}, site, [this, fn = std::forward<F>(f)]() mutable {
      try {
        if constexpr (std::is_void_v<std::invoke_result_t<decltype(fn)&>>) {
          fn();
        } else {
          if (std::error_code ec = fn()) fail(ec, nullptr);
        }
      } catch (...) {
        fail({}, capture());
      }
      if (sem_) (void)sem_->try_recv();  // frees a slot (never empty here)
      wg_.done();
    });
  }

  // The current exception, wrapped with the goroutine's id and spawn site.
  static std::exception_ptr capture() {
    const std::uint64_t id = goroutine_id();
    const source_location site = spawn_site();
    std::string what = "errgroup: task in goroutine " + std::to_string(id) + " (spawned at " +
                       site.file_name() + ":" + std::to_string(site.line()) + ") threw";
    try {
      throw;
    } catch (const std::exception& e) {
      what += ": ";
      what += e.what();
    } catch (...) {
    }
    try {
      // Inside a handler, task_exception's nested_exception captures the
      // task's exception.
      throw task_exception(what, id, site);
    } catch (...) {
      return std::current_exception();
    }
  }

  void fail(std::error_code ec, std::exception_ptr ex) {
    bool first = false;
    {
      std::lock_guard lk(mu_);
      if (!failed_) {
        failed_ = true;
        first = true;
        err_ = ec;
        exception_ = ex;
      } else if (ex && !exception_) {
        exception_ = ex;  // an exception is never dropped for an earlier error
      }
    }
    if (first) cancel_(ec ? ec : make_error_code(errc::canceled));
  }

  goro::context ctx_;
  cancel_cause_func cancel_;
  wait_group wg_;
  std::optional<chan<std::monostate>> sem_;  // the limit: one element per active task
  mutex mu_;
  bool failed_ = false;           // guarded by mu_
  std::error_code err_;           // guarded by mu_: the first error
  std::exception_ptr exception_;  // guarded by mu_: the first exception
};

}  // namespace goro
