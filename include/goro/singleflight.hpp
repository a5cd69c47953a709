// goro/singleflight.hpp: duplicate call suppression (golang.org/x/sync's
// singleflight.Group).
//
//   goro::singleflight<std::string, config> group;
//   auto r = group.do_(key, [&] { return load_config(key); });
//   use(r.value);   // r.shared: true if other callers got this same result
//
// do_(key, f) runs f unless a call for key is already in flight; then it
// waits for that call and returns its result. Every caller of one flight
// gets a copy of the value, or, if f threw, the same exception rethrown
// (x/sync re-panics a panic in every waiting caller). shared is true, for
// every caller of the flight, if more than one caller received the result.
// Once the flight is over, the next do_ for key runs f again: this
// deduplicates concurrent calls, it does not cache. forget(key) makes the
// next do_ for key start a new flight even while the current one is still
// running (its existing callers still get its result).
//
// (do_ because `do` is a C++ keyword; the trailing underscore is the usual
// spelling for that.)
//
// Usable from goroutines and plain threads; waiting callers park or sleep.
// f runs on the first caller's goroutine or thread.
//
// Memory ordering: the return (or throw) of f happens before every do_ of
// that flight returns.
#pragma once

#include <cstddef>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <type_traits>
#include <unordered_map>
#include <utility>

#include "goro/mutex.hpp"
#include "goro/wait_group.hpp"

namespace goro {

template <class K, class V, class Hash = std::hash<K>, class KeyEqual = std::equal_to<K>>
class singleflight {
 public:
  struct result {
    V value;
    bool shared;  // more than one caller received this result
  };

  singleflight() = default;
  singleflight(const singleflight&) = delete;
  singleflight& operator=(const singleflight&) = delete;

  /// Runs f() (which returns something convertible to V) for key, or joins
  /// the flight in progress for key. Rethrows f's exception.
  template <class F>
  result do_(const K& key, F&& f) {
    std::unique_lock lk(mu_);
    if (auto it = calls_.find(key); it != calls_.end()) {
      std::shared_ptr<flight> c = it->second;
      ++c->dups;
      lk.unlock();
      c->wg.wait();  // pairs with done() below: f's result is visible
      if (c->error) std::rethrow_exception(c->error);
      return result{*c->value, true};
    }
    auto c = std::make_shared<flight>();
    c->wg.add(1);
    calls_.emplace(key, c);
    lk.unlock();

    try {
      c->value.emplace(std::forward<F>(f)());
    } catch (...) {
      c->error = std::current_exception();
    }
    lk.lock();
    // forget() may have removed (or replaced) our entry already.
    if (auto it = calls_.find(key); it != calls_.end() && it->second == c) calls_.erase(it);
    const bool shared = c->dups > 0;  // no caller joins after the erase
    lk.unlock();
    c->wg.done();  // the waiters may read c->value / c->error from now on
    if (c->error) std::rethrow_exception(c->error);
    return result{*c->value, shared};
  }

  /// The number of callers of key's flight in progress (the one running f
  /// and those waiting for it); 0 when there is none. For diagnostics and
  /// tests: the value may be stale as soon as it is returned.
  std::size_t callers(const K& key) const {
    std::lock_guard lk(mu_);
    auto it = calls_.find(key);
    return it == calls_.end() ? 0 : static_cast<std::size_t>(it->second->dups) + 1;
  }

  /// The next do_(key, ...) starts a new flight instead of joining the
  /// current one.
  void forget(const K& key) {
    std::lock_guard lk(mu_);
    calls_.erase(key);
  }

 private:
  struct flight {
    wait_group wg;
    std::optional<V> value;
    std::exception_ptr error;
    int dups = 0;  // guarded by the group's mu_
  };

  mutable mutex mu_;
  std::unordered_map<K, std::shared_ptr<flight>, Hash, KeyEqual> calls_;  // guarded by mu_
};

}  // namespace goro
