// goro/sharded_map.hpp: a hash map for write-heavy concurrent use (the
// seeds' striped-lock map).
//
// The keys are split over a fixed number of shards by hash; each shard is a
// std::unordered_map behind its own goro::mutex, on its own cache line. Two
// operations contend only when their keys fall in the same shard. For
// read-mostly maps whose keys are written once and read many times, prefer
// goro::sync_map (reads take no lock there); for everything else, this.
//
// Operations on one key are linearizable (each runs under its shard's lock).
// range() and size() visit the shards one after another, each under its
// lock, so they see every key that was present during the whole call, and
// may or may not see keys inserted or erased concurrently.
//
// Usable from goroutines and plain threads. Callbacks (update, range) run
// with the shard locked: they must not call back into the map.
//
// Errors: exceptions from K's or V's operations, from a callback, or from
// allocation propagate to the caller with the shard unlocked.
//
// Memory ordering: every operation on a key happens after the operations on
// keys of the same shard that completed before it (the shard lock's edge:
// the n-th unlock happens before the (n+1)-th lock).
#pragma once

#include <cstddef>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <unordered_map>
#include <utility>

#include "goro/mutex.hpp"

namespace goro {

template <class K, class V, class Hash = std::hash<K>, class KeyEqual = std::equal_to<K>>
class sharded_map {
 public:
  /// shards is rounded up to a power of two (at least 1).
  explicit sharded_map(std::size_t shards = 64) {
    std::size_t n = 1;
    while (n < shards) n <<= 1;
    mask_ = n - 1;
    shards_ = std::make_unique<shard[]>(n);
  }
  sharded_map(const sharded_map&) = delete;
  sharded_map& operator=(const sharded_map&) = delete;

  /// A copy of the value for key, if present.
  std::optional<V> load(const K& key) const {
    shard& s = shard_for(key);
    std::lock_guard lk(s.mu);
    auto it = s.map.find(key);
    if (it == s.map.end()) return std::nullopt;
    return it->second;
  }

  /// Sets key to value.
  void store(const K& key, V value) {
    shard& s = shard_for(key);
    std::lock_guard lk(s.mu);
    s.map.insert_or_assign(key, std::move(value));
  }

  /// Inserts value unless key is present. Returns the value now in the map
  /// and true if it was already there (Go's LoadOrStore).
  std::pair<V, bool> load_or_store(const K& key, V value) {
    shard& s = shard_for(key);
    std::lock_guard lk(s.mu);
    auto [it, inserted] = s.map.try_emplace(key, std::move(value));
    return {it->second, !inserted};
  }

  /// Removes key; returns its value if it was present.
  std::optional<V> load_and_erase(const K& key) {
    shard& s = shard_for(key);
    std::lock_guard lk(s.mu);
    auto it = s.map.find(key);
    if (it == s.map.end()) return std::nullopt;
    std::optional<V> v(std::move(it->second));
    s.map.erase(it);
    return v;
  }

  /// Removes key; true if it was present.
  bool erase(const K& key) {
    shard& s = shard_for(key);
    std::lock_guard lk(s.mu);
    return s.map.erase(key) != 0;
  }

  /// Calls f(std::optional<V>&) with key's slot (empty if absent) under the
  /// shard lock: f may set, change or reset it (a read-modify-write of one
  /// key, e.g. a counter). Returns f's result.
  template <class F>
  decltype(auto) update(const K& key, F&& f) {
    shard& s = shard_for(key);
    std::lock_guard lk(s.mu);
    auto it = s.map.find(key);
    std::optional<V> slot;
    if (it != s.map.end()) slot.emplace(std::move(it->second));
    struct write_back {
      shard& s;
      const K& key;
      std::optional<V>& slot;
      typename map_type::iterator it;
      ~write_back() {
        if (slot) {
          if (it != s.map.end())
            it->second = std::move(*slot);
          else
            s.map.emplace(key, std::move(*slot));
        } else if (it != s.map.end()) {
          s.map.erase(it);
        }
      }
    } wb{s, key, slot, it};
    return std::forward<F>(f)(slot);
  }

  /// Calls f(key, value) for every entry, one shard at a time; stops early
  /// if f returns false.
  template <class F>
  void range(F&& f) const {
    for (std::size_t i = 0; i <= mask_; ++i) {
      shard& s = shards_[i];
      std::lock_guard lk(s.mu);
      for (const auto& [k, v] : s.map)
        if (!f(k, v)) return;
    }
  }

  /// The number of entries (see the consistency note above).
  std::size_t size() const {
    std::size_t n = 0;
    for (std::size_t i = 0; i <= mask_; ++i) {
      std::lock_guard lk(shards_[i].mu);
      n += shards_[i].map.size();
    }
    return n;
  }

  std::size_t shard_count() const noexcept { return mask_ + 1; }

 private:
  using map_type = std::unordered_map<K, V, Hash, KeyEqual>;
  struct alignas(64) shard {
    mutable mutex mu;
    map_type map;  // guarded by mu
  };

  shard& shard_for(const K& key) const {
    // Mix the hash: std::hash of an integer is the identity, whose low bits
    // would put consecutive keys in consecutive shards but strided keys in one.
    std::size_t h = Hash{}(key);
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    return shards_[h & mask_];
  }

  std::size_t mask_ = 0;
  std::unique_ptr<shard[]> shards_;
};

}  // namespace goro
