// goro/atomic_value.hpp: a value that is replaced as a whole and read
// without locks (Go's atomic.Value, for copy-on-write configuration).
//
//   goro::atomic_value<config> cfg(config{...});
//   std::shared_ptr<const config> c = cfg.load();   // readers: never block
//   cfg.store(config{...});                          // writers: publish a new one
//
// load() returns a shared_ptr to an immutable snapshot: a reader keeps using
// its snapshot while writers publish new ones, and the old snapshot is freed
// when its last reader drops it. Writers never wait for readers either.
//
// Readers never block: load() is lock-free (a fetch_add, a reference-count
// increment of the snapshot, and a compare-exchange that retries only when
// another load or a store changed the slot at that instant). This is why it
// does not use std::atomic<std::shared_ptr<T>>, which libstdc++ 12
// implements with a lock that a reader can find held by a writer. The scheme
// (split reference counts) is described in goro/detail/split_ref_ptr.hpp.
//
// Operations: load, store, swap (Go's Swap: returns the previous snapshot),
// compare_and_swap (succeeds if the current snapshot is the given one, by
// identity: Go compares interface values, and for a snapshot identity is the
// meaningful equality). Storing an empty shared_ptr is a panic, with Go's
// words: "sync/atomic: store of nil value into Value". An atomic_value made
// with the default constructor loads as empty until the first store.
//
// Memory ordering (Go's "synchronizes-with" for atomics): a store (swap,
// successful compare_and_swap) happens before every load that returns the
// snapshot it stored; everything the writer did to build the snapshot is
// visible to those readers.
#pragma once

#include <memory>
#include <utility>

#include "goro/detail/split_ref_ptr.hpp"
#include "goro/panic.hpp"

namespace goro {

template <class T>
class atomic_value {
 public:
  using snapshot = std::shared_ptr<const T>;

  atomic_value() noexcept = default;
  explicit atomic_value(T v) : slot_(new node(std::make_shared<const T>(std::move(v)))) {}
  explicit atomic_value(snapshot s) : slot_(new node(checked(std::move(s)))) {}
  atomic_value(const atomic_value&) = delete;
  atomic_value& operator=(const atomic_value&) = delete;

  /// The current snapshot (empty before the first store).
  snapshot load() const {
    return slot_.read([](node* n) { return node_ptr::special(n) ? snapshot() : n->value; });
  }

  /// Publishes v as the new snapshot.
  void store(T v) { swap(std::make_shared<const T>(std::move(v))); }
  void store(snapshot s) { swap(std::move(s)); }

  /// Publishes s and returns the previous snapshot.
  snapshot swap(snapshot s) {
    auto* n = new node(checked(std::move(s)));
    auto [old, count] = slot_.exchange(n);
    snapshot prev;
    if (!node_ptr::special(old)) prev = old->value;  // we still own the slot's reference
    node_ptr::retire(old, count);
    return prev;
  }
  snapshot swap(T v) { return swap(std::make_shared<const T>(std::move(v))); }

  /// If the current snapshot is `expected` (the same object; an empty
  /// expected matches an atomic_value never stored to), publishes desired
  /// and returns true.
  bool compare_and_swap(const snapshot& expected, snapshot desired) {
    auto* n = new node(checked(std::move(desired)));
    // Find the node holding expected while it is protected by read(), then
    // replace exactly that node (split_ref_ptr never reuses a live node's
    // address, so pointer equality is node identity).
    const bool ok = slot_.read([&](node* cur) {
      const T* cur_value = node_ptr::special(cur) ? nullptr : cur->value.get();
      if (cur_value != expected.get()) return false;
      std::uint32_t count = 0;
      if (!slot_.compare_exchange(cur, n, count)) return false;
      node_ptr::retire(cur, count);  // our own count is among them; read() settles it
      return true;
    });
    if (!ok) delete n;
    return ok;
  }

 private:
  struct node : detail::split_ref_node {
    explicit node(snapshot v) noexcept : value(std::move(v)) {}
    snapshot value;
  };
  using node_ptr = detail::split_ref_ptr<node>;

  static snapshot checked(snapshot s) {
    if (!s) throw panic_error("sync/atomic: store of nil value into Value");
    return s;
  }

  node_ptr slot_;
};

}  // namespace goro
