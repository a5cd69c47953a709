// The context tree (Go's context.go), and the cancel hooks through which
// cancellation reaches waiters of other layers.
//
// Nodes. Every context is a reference-counted ctx_node. A node that can be
// cancelled on its own (with_cancel / with_deadline) is a *canceller*; a
// value node or a plain child shares its nearest canceller's state
// (node->canceller), a without_cancel node and the roots have none. A node
// keeps its parent alive (parent reference), for value lookups.
//
// Hooks. A canceller keeps a list of cancel_hooks, guarded by its lock, of
// everything that must learn of its cancellation:
//  - child cancellers (the hook embedded in the child; the list holds a
//    reference to the child, dropped when the child leaves the list);
//  - after_func registrations (the list holds a reference to the record);
//  - waiters of blocking calls (a hook on the waiter's stack, from
//    ctx_arm). Their fire() runs under the canceller's lock, so once
//    ctx_disarm has taken that lock the hook is either still listed (and is
//    unlinked) or has fired completely: its memory may then go.
//
// Cancelling (ctx_cancel_node) is iterative, not recursive, so a chain of a
// million nested contexts cancels on any stack: under a node's lock it sets
// err (once), closes done, fires waiter hooks and detaches the rest of the
// list onto a work list; then, with no lock held, it cancels each detached
// child (with the parent's reason and cause) and starts each detached
// after_func. Locks are only ever taken parent before child (a child's
// cancel takes its parent's lock to leave the list only after releasing its
// own), so cancelling never deadlocks.
//
// Deadlines: a deadline node owns a runtime timer whose fire() cancels it
// with errc::deadline_exceeded. The timer holds no reference: fire() takes
// one only if the node is still alive (refs > 0), and a node being destroyed
// stops its timer first. fire() ends its busy state itself before dropping
// that reference (timer::fire_clears_busy), because dropping it may destroy
// the node, timer included.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <system_error>
#include <variant>

#include "goro/chan.hpp"
#include "goro/context.hpp"
#include "platform/lock.hpp"
#include "runtime/park.hpp"
#include "runtime/timer.hpp"

namespace goro::detail {

struct cancel_hook {
  enum class kind : std::uint8_t { waiter, child, after_func };
  kind k = kind::waiter;
  bool linked = false;  // guarded by home->lock
  cancel_hook* prev = nullptr;
  cancel_hook* next = nullptr;
  ctx_node* home = nullptr;  // the canceller whose list it joined
  // waiter hooks: runs under home->lock when home is cancelled; must be
  // short and must not take another context's lock.
  void (*fire)(cancel_hook*) noexcept = nullptr;
  void* arg = nullptr;
};

enum class arm_result : std::uint8_t {
  armed,  // h is listed; call ctx_disarm when done waiting
  done,   // the context is already done; h was not listed
  never,  // the context can never be cancelled; h was not listed
};

/// Lists waiter hook h (kind waiter, fire set) on ctx's canceller.
arm_result ctx_arm(ctx_node* n, cancel_hook* h) noexcept;
/// Unlists h if it is still listed; once this returns h has not fired or
/// has finished firing.
void ctx_disarm(cancel_hook* h) noexcept;

}  // namespace goro::detail

namespace goro::detail {

/// sem_acquire (runtime/sema.hpp) that gives up when ctx is done: true if a
/// unit was taken; false with ctx's error in ec if ctx was done first
/// (nothing taken). Never waits if a unit is free, even if ctx is done.
bool ctx_sem_acquire(std::atomic<std::uint32_t>* addr, bool lifo, wait_reason reason,
                     const context& ctx, std::error_code& ec);

}  // namespace goro::detail

namespace goro::detail {
/// Hooks (children, after_funcs, waiters) listed on n's canceller: for tests
/// that check a long-lived parent forgets its cancelled children.
std::size_t ctx_hook_count(ctx_node* n) noexcept;
}  // namespace goro::detail

#include "goro/mutex.hpp"

namespace goro::detail {
/// Tests: a mutex's state word (bit 0 locked, 1 woken, 2 starving, waiters
/// from bit 3).
struct mutex_inspector {
  static std::int32_t state(const goro::mutex& m) noexcept {
    return m.state_.load(std::memory_order_relaxed);
  }
};
}  // namespace goro::detail
