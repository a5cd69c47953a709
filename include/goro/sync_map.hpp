// goro/sync_map.hpp: a concurrent map for read-mostly use (Go's sync.Map).
//
// Best, as in Go, when (1) an entry is written once and read many times, as
// in caches that only grow, or (2) goroutines read, write and overwrite
// disjoint sets of keys. Then loads, and stores to keys already present, take
// no lock. For write-heavy maps use goro::sharded_map.
//
// Go's design: a read-only map, loaded atomically (lock-free, see
// goro/detail/split_ref_ptr.hpp), plus a dirty map under a mutex holding
// the keys added since the read map was made. Entries are shared by both
// maps; an entry's value is itself an atomically replaced slot, so changing
// or deleting the value of a key in the read map is a lock-free CAS. A load
// that misses the read map while the dirty map has more keys ("amended")
// takes the mutex and counts a miss; when the misses reach the dirty map's
// size, the dirty map is promoted to be the new read map (copying nothing:
// the maps are shared_ptrs) and the next new key starts a new dirty map,
// copying the live entries of the read map (deleted entries are marked
// "expunged" then and left out).
//
// Values are returned as copies (std::optional<V>), so V must be copyable;
// compare_and_swap and compare_and_delete need V's operator==.
//
// range(f) calls f(key, value) for the keys in one consistent snapshot of the
// key set (as Go's Range, a value may be newer than the snapshot, and no key
// is visited twice); f returns false to stop. f may call into the map.
//
// Usable from goroutines and plain threads.
//
// Errors: exceptions from K's or V's copy, hash or comparison, or from
// allocation, propagate to the caller; the operation then has not happened.
//
// Memory ordering (Go's): a write operation (store, swap, a load_or_store
// that stores, a compare_and_swap that swaps, a delete) happens before any
// read operation (load, range, the load of load_or_store ...) that observes
// its effect.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <unordered_map>
#include <utility>

#include "goro/detail/split_ref_ptr.hpp"
#include "goro/mutex.hpp"

namespace goro {

namespace detail {
struct sync_map_inspect;  // tests' access to the private state
}  // namespace detail

template <class K, class V, class Hash = std::hash<K>, class KeyEqual = std::equal_to<K>>
class sync_map {
 public:
  sync_map() : read_(new read_node(std::make_shared<const map_type>(), false)) {}
  sync_map(const sync_map&) = delete;
  sync_map& operator=(const sync_map&) = delete;

  /// A copy of key's value, if present.
  std::optional<V> load(const K& key) const {
    std::optional<std::optional<V>> fast =
        read_.read([&](read_node* r) -> std::optional<std::optional<V>> {
          auto it = r->m->find(key);
          if (it != r->m->end()) return it->second->load();
          if (!r->amended) return std::optional<V>();
          return std::nullopt;  // ask the dirty map
        });
    if (fast) return std::move(*fast);
    std::shared_ptr<entry> e;
    {
      std::lock_guard lk(mu_);
      read_node* r = read_.peek();  // stable while mu_ is held
      if (auto it = r->m->find(key); it != r->m->end()) {
        e = it->second;
      } else if (r->amended) {
        if (auto d = dirty_->find(key); d != dirty_->end()) e = d->second;
        miss_locked();
      }
    }
    if (!e) return std::nullopt;
    return e->load();
  }

  /// Sets key's value.
  void store(const K& key, V value) { (void)swap(key, std::move(value)); }

  /// Sets key's value; returns the previous one, if any.
  std::optional<V> swap(const K& key, V value) {
    auto n = std::make_unique<value_node>(std::move(value));
    std::optional<std::optional<V>> fast =
        read_.read([&](read_node* r) -> std::optional<std::optional<V>> {
          auto it = r->m->find(key);
          if (it == r->m->end()) return std::nullopt;
          return it->second->try_swap(n);  // nullopt if expunged
        });
    if (fast) return std::move(*fast);
    std::lock_guard lk(mu_);
    read_node* r = read_.peek();
    if (auto it = r->m->find(key); it != r->m->end()) {
      if (it->second->unexpunge_locked()) (*dirty_)[key] = it->second;
      return it->second->swap_locked(n);
    }
    if (dirty_) {
      if (auto d = dirty_->find(key); d != dirty_->end()) return d->second->swap_locked(n);
    }
    add_dirty_locked(key, std::move(n));
    return std::nullopt;
  }

  /// Returns key's value and true if present; otherwise stores value and
  /// returns it and false.
  std::pair<V, bool> load_or_store(const K& key, V value) {
    std::unique_ptr<value_node> n;
    std::optional<std::pair<V, bool>> fast =
        read_.read([&](read_node* r) -> std::optional<std::pair<V, bool>> {
          auto it = r->m->find(key);
          if (it == r->m->end()) return std::nullopt;
          return it->second->try_load_or_store(value, n);  // nullopt if expunged
        });
    if (fast) return std::move(*fast);
    std::lock_guard lk(mu_);
    read_node* r = read_.peek();
    if (auto it = r->m->find(key); it != r->m->end()) {
      if (it->second->unexpunge_locked()) (*dirty_)[key] = it->second;
      return *it->second->try_load_or_store(value, n);
    }
    if (dirty_) {
      if (auto d = dirty_->find(key); d != dirty_->end()) {
        auto res = *d->second->try_load_or_store(value, n);
        miss_locked();
        return res;
      }
    }
    if (!n) n = std::make_unique<value_node>(value);
    add_dirty_locked(key, std::move(n));
    return {std::move(value), false};
  }

  /// Deletes key; returns its value if it was present.
  std::optional<V> load_and_delete(const K& key) {
    return with_entry(key, true, [](entry* e) { return e->remove(); });
  }
  /// Deletes key (Go's Delete; `delete` is a C++ keyword).
  void erase(const K& key) { (void)load_and_delete(key); }

  /// If key's value equals old, sets it to desired and returns true.
  bool compare_and_swap(const K& key, const V& old, V desired) {
    auto n = std::make_unique<value_node>(std::move(desired));
    std::optional<bool> fast = read_.read([&](read_node* r) -> std::optional<bool> {
      auto it = r->m->find(key);
      if (it != r->m->end()) return it->second->try_compare_and_swap(old, n);
      if (!r->amended) return false;
      return std::nullopt;
    });
    if (fast) return *fast;
    std::shared_ptr<entry> e;
    {
      std::lock_guard lk(mu_);
      read_node* r = read_.peek();
      if (auto it = r->m->find(key); it != r->m->end()) {
        e = it->second;
      } else if (dirty_) {
        if (auto d = dirty_->find(key); d != dirty_->end()) e = d->second;
        miss_locked();
      }
    }
    return e && e->try_compare_and_swap(old, n);
  }

  /// If key's value equals old, deletes it and returns true.
  bool compare_and_delete(const K& key, const V& old) {
    return with_entry(key, false, [&](entry* e) { return e->compare_and_remove(old); });
  }

  /// Calls f(key, value) for each key (see the header comment); stops when f
  /// returns false.
  template <class F>
  void range(F&& f) {
    std::shared_ptr<const map_type> m = read_.read(
        [&](read_node* r) { return r->amended ? std::shared_ptr<const map_type>() : r->m; });
    if (!m) {
      std::lock_guard lk(mu_);
      read_node* r = read_.peek();
      if (r->amended) promote_locked();
      m = read_.peek()->m;
    }
    for (const auto& [k, e] : *m) {
      std::optional<V> v = e->load();
      if (!v) continue;
      if (!f(k, *v)) break;
    }
  }

 private:
  friend struct detail::sync_map_inspect;

  // A value; the entry's slot points to one, or is null (deleted) or
  // expunged (deleted, and the key is in the read map but not in dirty_).
  struct value_node : detail::split_ref_node {
    template <class... A>
    explicit value_node(A&&... a) : value(std::forward<A>(a)...) {}
    V value;
  };
  using value_ptr = detail::split_ref_ptr<value_node>;
  static value_node* expunged() noexcept {
    return reinterpret_cast<value_node*>(std::uintptr_t{8});
  }

  struct entry {
    explicit entry(std::unique_ptr<value_node> n) : p(n.release()) {}
    value_ptr p;

    static bool absent(value_node* n) noexcept { return n == nullptr || n == expunged(); }

    std::optional<V> load() const {
      return p.read([](value_node* n) {
        return absent(n) ? std::optional<V>() : std::optional<V>(n->value);
      });
    }
    // Replaces the value unless expunged; nullopt when expunged. Takes n.
    std::optional<std::optional<V>> try_swap(std::unique_ptr<value_node>& n) {
      for (;;) {
        value_node* cur = p.peek();
        if (cur == expunged()) return std::nullopt;
        std::uint32_t count = 0;
        if (p.compare_exchange(cur, n.get(), count)) {
          n.release();
          return take(cur, count);
        }
      }
    }
    std::optional<V> swap_locked(std::unique_ptr<value_node>& n) {
      auto [old, count] = p.exchange(n.release());
      return take(old, count);
    }
    // Go's unexpungeLocked: expunged -> deleted; true if it was expunged
    // (the caller must then put the entry in dirty_).
    bool unexpunge_locked() {
      std::uint32_t count = 0;
      if (!p.compare_exchange(expunged(), nullptr, count)) return false;
      return true;
    }
    // Go's tryExpungeLocked: deleted -> expunged; true if expunged now.
    bool try_expunge_locked() {
      for (;;) {
        value_node* cur = p.peek();
        if (cur != nullptr) return cur == expunged();
        std::uint32_t count = 0;
        if (p.compare_exchange(nullptr, expunged(), count)) return true;
      }
    }
    // Go's tryLoadOrStore; nullopt when expunged. Creates n from value on
    // first need and keeps it for a retry.
    std::optional<std::pair<V, bool>> try_load_or_store(const V& value,
                                                        std::unique_ptr<value_node>& n) {
      for (;;) {
        bool is_expunged = false;
        std::optional<V> cur_value = p.read([&](value_node* cur) {
          is_expunged = cur == expunged();
          return absent(cur) ? std::optional<V>() : std::optional<V>(cur->value);
        });
        if (is_expunged) return std::nullopt;
        if (cur_value) return std::pair<V, bool>(std::move(*cur_value), true);
        if (!n) n = std::make_unique<value_node>(value);
        std::uint32_t count = 0;
        if (p.compare_exchange(nullptr, n.get(), count)) {
          n.release();
          return std::pair<V, bool>(value, false);
        }
      }
    }
    // Deletes the value; returns it if there was one.
    std::optional<V> remove() {
      for (;;) {
        value_node* cur = p.peek();
        if (absent(cur)) return std::nullopt;
        std::uint32_t count = 0;
        if (p.compare_exchange(cur, nullptr, count)) return take(cur, count);
      }
    }
    // The comparison and the exchange happen inside read(), whose count
    // keeps the compared node alive: its address cannot be reused by a new
    // value in between (no ABA).
    bool try_compare_and_swap(const V& old, std::unique_ptr<value_node>& n) {
      for (;;) {
        int r = p.read([&](value_node* cur) {
          if (absent(cur) || !(cur->value == old)) return 0;
          std::uint32_t count = 0;
          if (!p.compare_exchange(cur, n.get(), count)) return -1;  // changed: look again
          n.release();
          value_ptr::retire(cur, count);
          return 1;
        });
        if (r >= 0) return r == 1;
      }
    }
    bool compare_and_remove(const V& old) {
      for (;;) {
        int r = p.read([&](value_node* cur) {
          if (absent(cur) || !(cur->value == old)) return 0;
          std::uint32_t count = 0;
          if (!p.compare_exchange(cur, nullptr, count)) return -1;
          value_ptr::retire(cur, count);
          return 1;
        });
        if (r >= 0) return r == 1;
      }
    }

   private:
    // The value of a node we just removed from p (we own the slot's
    // reference until retire()).
    static std::optional<V> take(value_node* old, std::uint32_t count) {
      std::optional<V> prev;
      if (!absent(old)) prev.emplace(old->value);
      value_ptr::retire(old, count);
      return prev;
    }
  };

  using map_type = std::unordered_map<K, std::shared_ptr<entry>, Hash, KeyEqual>;

  struct read_node : detail::split_ref_node {
    read_node(std::shared_ptr<const map_type> map, bool a) : m(std::move(map)), amended(a) {}
    std::shared_ptr<const map_type> m;
    bool amended;  // dirty_ holds keys that m lacks
  };
  using read_ptr = detail::split_ref_ptr<read_node>;

  // Runs f on key's entry (from the read map, or under mu_ from the dirty
  // map, which erase_dirty removes the key from).
  template <class F>
  auto with_entry(const K& key, bool erase_dirty, F&& f) {
    using R = decltype(f(static_cast<entry*>(nullptr)));
    std::optional<R> fast = read_.read([&](read_node* r) -> std::optional<R> {
      auto it = r->m->find(key);
      if (it != r->m->end()) return f(it->second.get());
      if (!r->amended) return R();
      return std::nullopt;
    });
    if (fast) return std::move(*fast);
    std::shared_ptr<entry> e;
    {
      std::lock_guard lk(mu_);
      read_node* r = read_.peek();
      if (auto it = r->m->find(key); it != r->m->end()) {
        e = it->second;
      } else if (dirty_) {
        if (auto d = dirty_->find(key); d != dirty_->end()) {
          e = d->second;
          if (erase_dirty) dirty_->erase(d);
        }
        miss_locked();
      }
    }
    if (!e) return R();
    return f(e.get());
  }

  // Go's missLocked: promote the dirty map once the misses have cost as
  // much as copying it would.
  void miss_locked() const {
    ++misses_;
    if (!dirty_ || misses_ < dirty_->size()) return;
    promote_locked();
  }
  void promote_locked() const {
    std::shared_ptr<const map_type> m(dirty_ ? std::move(dirty_) : std::make_unique<map_type>());
    dirty_.reset();
    misses_ = 0;
    publish_locked(new read_node(std::move(m), false));
  }
  void publish_locked(read_node* r) const {
    auto [old, count] = read_.exchange(r);
    read_ptr::retire(old, count);
  }
  // A new key: start a dirty map if there is none, and mark the read map
  // amended.
  void add_dirty_locked(const K& key, std::unique_ptr<value_node> n) {
    read_node* r = read_.peek();
    if (!r->amended) {
      if (!dirty_) {
        dirty_ = std::make_unique<map_type>();
        dirty_->reserve(r->m->size() + 1);
        for (const auto& [k, e] : *r->m)
          if (!e->try_expunge_locked()) dirty_->emplace(k, e);
      }
      publish_locked(new read_node(r->m, true));
    }
    dirty_->emplace(key, std::make_shared<entry>(std::move(n)));
  }

  mutable read_ptr read_;
  mutable mutex mu_;
  // Guarded by mu_ (mutable: a const load() may promote the dirty map).
  mutable std::unique_ptr<map_type> dirty_;  // null exactly when the read map is not amended
  mutable std::size_t misses_ = 0;
};

}  // namespace goro
