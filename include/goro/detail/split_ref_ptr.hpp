// goro/detail/split_ref_ptr.hpp: an atomic pointer that readers dereference
// without a lock and without blocking, while writers replace and free the
// pointee (the split-reference-count scheme; internal to atomic_value and
// sync_map).
//
// The word packs the node pointer (low 48 bits: a user-space address on
// x86-64 and AArch64 Linux) and a count of readers currently inside read()
// (high 16 bits). Each node carries refs, which starts at bias: the slot's
// own reference, large enough that transient decrements never reach zero.
//
// Protocol:
//   read(f):   (1) w = word.fetch_add(one): announces us and yields the node;
//              the node stays alive while our count is outstanding.
//              (2) f(node).
//              (3) if the word still holds the node, CAS our count back out
//              of it; otherwise a writer has moved our count into node->refs
//              (step W2), and we decrement node->refs instead.
//   exchange:  (W1) old = word.exchange(new, count 0), taking ownership of
//              the slot's reference to the old node and of c = old's count.
//              (W2) retire(old, c): node->refs += c - bias: the c readers'
//              counts replace the slot's reference.
//   Whoever brings refs to 0 (a reader in step 3 or the writer in W2)
//   deletes the node. A reader that finishes step 3 before W2 only lowers
//   refs from bias, so the node survives until W2 has run.
// No ABA: a node is freed only after every reader counted on it has left, so
// while a reader's count is outstanding its node's address cannot be reused,
// and "the word still holds the node" in step 3 really means the same node.
// Lock-free: a reader never waits for a writer (its CAS retries only when
// other readers or a writer changed the word meanwhile).
//
// Limits: at most 65535 readers inside read() at once (a reader holds its
// count only while f runs; f must be short and must not block).
//
// Special pointers below 4096 (null and markers such as sync_map's
// "expunged") are never dereferenced or freed.
#pragma once

#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <utility>

namespace goro::detail {

/// Node must derive from split_ref_node and be allocated with new.
struct split_ref_node {
  static constexpr std::int64_t bias = std::int64_t{1} << 40;
  std::atomic<std::int64_t> refs{bias};
};

template <class Node>
class split_ref_ptr {
 public:
  static bool special(const Node* n) noexcept { return reinterpret_cast<std::uintptr_t>(n) < 4096; }

  split_ref_ptr() noexcept = default;
  explicit split_ref_ptr(Node* n) noexcept : word_(bits(n)) {}
  split_ref_ptr(const split_ref_ptr&) = delete;
  split_ref_ptr& operator=(const split_ref_ptr&) = delete;
  ~split_ref_ptr() { retire(ptr(word_.load(std::memory_order_acquire)), 0); }

  /// Calls f(node) with the current node (possibly special) kept alive for
  /// the duration of the call; returns f's result.
  template <class F>
  decltype(auto) read(F&& f) const {
    // Acquire pairs with the release (acq_rel) exchange / CAS of the writer
    // that installed the node: its contents are visible.
    const std::uint64_t w = word_.fetch_add(one, std::memory_order_acquire);
    struct leave {
      const split_ref_ptr* self;
      Node* n;
      ~leave() { self->leave_node(n); }
    } l{this, ptr(w)};
    return std::forward<F>(f)(l.n);
  }

  /// The current node, for callers that exclude every writer by other means
  /// (sync_map under its mutex). Acquire pairs with the writer's release.
  Node* peek() const noexcept { return ptr(word_.load(std::memory_order_acquire)); }

  /// Installs n; returns the previous node and its reader count, which the
  /// caller must pass to retire() once it no longer reads the old node.
  std::pair<Node*, std::uint32_t> exchange(Node* n) noexcept {
    // acq_rel: release publishes n's contents to readers' fetch_add; acquire
    // pairs with the readers' release CAS in leave_node, so their reads of
    // the old node happen before we free it.
    const std::uint64_t old = word_.exchange(bits(n), std::memory_order_acq_rel);
    return {ptr(old), static_cast<std::uint32_t>(old >> count_shift)};
  }

  /// Installs n if the current node is expected. On success returns true
  /// and sets prev_count: the caller retires expected with it.
  bool compare_exchange(Node* expected, Node* n, std::uint32_t& prev_count) noexcept {
    std::uint64_t w = word_.load(std::memory_order_relaxed);
    while (ptr(w) == expected) {
      // acq_rel: as in exchange().
      if (word_.compare_exchange_weak(w, bits(n), std::memory_order_acq_rel,
                                      std::memory_order_relaxed)) {
        prev_count = static_cast<std::uint32_t>(w >> count_shift);
        return true;
      }
    }
    return false;
  }

  /// Step W2: drops the slot's reference to a node removed by exchange or
  /// compare_exchange, handing it to the count readers that were inside.
  static void retire(Node* n, std::uint32_t count) noexcept {
    if (special(n)) return;
    // acq_rel: the last decrement (ours or a reader's) acquires every other
    // party's release before deleting.
    if (n->refs.fetch_add(std::int64_t{count} - split_ref_node::bias, std::memory_order_acq_rel) ==
        split_ref_node::bias - std::int64_t{count})
      delete n;
  }

 private:
  static constexpr int count_shift = 48;
  static constexpr std::uint64_t one = std::uint64_t{1} << count_shift;
  static constexpr std::uint64_t ptr_mask = one - 1;

  static std::uint64_t bits(Node* n) noexcept {
    const auto b = static_cast<std::uint64_t>(reinterpret_cast<std::uintptr_t>(n));
    if ((b & ~ptr_mask) != 0) std::abort();  // an address above 2^48: unsupported
    return b;
  }
  static Node* ptr(std::uint64_t w) noexcept {
    return reinterpret_cast<Node*>(static_cast<std::uintptr_t>(w & ptr_mask));
  }

  void leave_node(Node* n) const noexcept {
    std::uint64_t w = word_.load(std::memory_order_relaxed);
    while (ptr(w) == n) {
      // Release pairs with the writer's acq_rel exchange: our reads of n
      // happen before the writer (or whoever frees n) deletes it.
      if (word_.compare_exchange_weak(w, w - one, std::memory_order_release,
                                      std::memory_order_relaxed))
        return;
    }
    // A writer took our count with the node (step W1); settle it in refs.
    if (special(n)) return;
    // acq_rel: pairs with the other decrements and the writer's retire().
    if (n->refs.fetch_sub(1, std::memory_order_acq_rel) == 1) delete n;
  }

  mutable std::atomic<std::uint64_t> word_{0};
};

}  // namespace goro::detail
