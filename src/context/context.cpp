// The context tree; see context_impl.hpp for the invariants, the hook
// protocol and the lock order.
//
// Memory ordering: err is stored (release) under the canceller's lock after
// cause, and read with acquire, so whoever sees err sees cause. done is
// closed under the same lock after err is stored; the channel's own edges
// (close before a "closed" receive) order a cancel before a done() receive.
// done_core is published with a release store (lazily, under the lock) and
// read with acquire. Node references follow chan_release: the release on
// every decrement pairs with the acquire of the one that frees.
#include <new>
#include <stdexcept>

#include "context/context_impl.hpp"
#include "goro/goroutine.hpp"
#include "platform/clock.hpp"
#include "platform/race.hpp"
#include "runtime/fault.hpp"
#include "runtime/sched.hpp"

namespace goro {

namespace {
class goro_category_impl final : public std::error_category {
 public:
  const char* name() const noexcept override { return "goro"; }
  std::string message(int ev) const override {
    switch (static_cast<errc>(ev)) {
      case errc::canceled:
        return "context canceled";
      case errc::deadline_exceeded:
        return "context deadline exceeded";
    }
    return "goro error " + std::to_string(ev);
  }
};
}  // namespace

const std::error_category& goro_category() noexcept {
  static const goro_category_impl category;
  return category;
}

}  // namespace goro

namespace goro::detail {

struct ctx_node {
  enum class kind_t : std::uint8_t { root, canceller, value, detached };

  ctx_node() noexcept { as_child.arg = this; }
  explicit ctx_node(bool immortal_node) noexcept : ctx_node() { immortal = immortal_node; }

  std::atomic<std::int32_t> refs{1};
  // cancel_func copies alive; the last one gone cancels (context.hpp).
  std::atomic<std::int32_t> cancel_refs{0};
  kind_t kind = kind_t::root;
  bool immortal = false;                // background() and todo()
  ctx_node* parent = nullptr;           // owned reference; nullptr for roots
  ctx_node* canceller = nullptr;        // self, the nearest cancelling ancestor, or nullptr
  std::int64_t deadline = no_deadline;  // effective: the earliest up the chain

  // value nodes
  const void* key = nullptr;
  std::shared_ptr<const void> value;

  // canceller nodes
  lock_t lock;
  // 0 while live; then the int value of goro::errc (release, under lock).
  std::atomic<int> err{0};
  std::error_code cause GORO_GUARDED_BY(lock);
  std::atomic<chan_core*> done_core{nullptr};  // lazily made; owned reference
  cancel_hook* hooks_first GORO_GUARDED_BY(lock) = nullptr;
  cancel_hook* hooks_last GORO_GUARDED_BY(lock) = nullptr;
  cancel_hook as_child;  // our entry in our parent canceller's list
  bool has_timer = false;
  timer deadline_timer;
  ctx_node* work_next = nullptr;  // cancel's work list (owned by one cancel)
};

struct ctx_after_func_rec {
  std::atomic<std::int32_t> refs{2};  // the stop handle and the hook list (or the run)
  cancel_hook hook;
  std::function<void()> f;
  ctx_after_func_rec() noexcept { hook.arg = this; }
};

namespace {

ctx_node background_node(true);
ctx_node todo_node(true);

void list_push(ctx_node* home, cancel_hook* h) GORO_REQUIRES(home->lock) {
  h->home = home;
  h->next = nullptr;
  h->prev = home->hooks_last;
  if (home->hooks_last != nullptr) {
    home->hooks_last->next = h;
  } else {
    home->hooks_first = h;
  }
  home->hooks_last = h;
  h->linked = true;
}

void list_unlink(ctx_node* home, cancel_hook* h) GORO_REQUIRES(home->lock) {
  if (h->prev != nullptr) {
    h->prev->next = h->next;
  } else {
    home->hooks_first = h->next;
  }
  if (h->next != nullptr) {
    h->next->prev = h->prev;
  } else {
    home->hooks_last = h->prev;
  }
  h->prev = h->next = nullptr;
  h->linked = false;
}

ctx_node* node_of_child_hook(cancel_hook* h) noexcept { return static_cast<ctx_node*>(h->arg); }
ctx_after_func_rec* rec_of_hook(cancel_hook* h) noexcept {
  return static_cast<ctx_after_func_rec*>(h->arg);
}

void after_func_unref(ctx_after_func_rec* r) noexcept {
  race_release(r);
  if (r->refs.fetch_sub(1, std::memory_order_acq_rel) != 1) return;
  race_acquire(r);
  race_ignore no_race_checks;  // freed by whoever lets go last (race.hpp)
  delete r;
}

// Starts f of a fired after_func registration (the list's reference moves
// into the goroutine).
void run_after_func(ctx_after_func_rec* r) noexcept {
  try {
    goro::go([r] {
      struct unref_at_exit {
        ctx_after_func_rec* r;
        ~unref_at_exit() { after_func_unref(r); }
      } guard{r};
      race_acquire(&r->f);  // pairs with race_release in ctx_after_func
      r->f();
    });
  } catch (...) {
    fatal_error("context: could not start an after_func goroutine");
  }
}

// One node of a cancel: sets its err and cause, closes done, fires its
// waiter hooks and appends its child nodes to *work (each with the list's
// reference) and its after_func records to *funcs. False if it was done
// already.
bool cancel_one(ctx_node* n, int err, std::error_code cause, ctx_node** work,
                cancel_hook** funcs) noexcept GORO_NO_TSA {
  n->lock.lock();
  if (n->err.load(std::memory_order_relaxed) != 0) {
    n->lock.unlock();
    return false;
  }
  n->cause = cause ? cause : std::error_code(static_cast<errc>(err));
  // TSan: the cancel happens before whatever observes it (race_done_acquire).
  race_release(&n->err);
  // Release pairs with the acquire loads in ctx_err / ctx_cause.
  n->err.store(err, std::memory_order_release);
  if (chan_core* c = n->done_core.load(std::memory_order_relaxed)) {
    chan_close(c);  // wakes every goroutine and thread waiting on done()
  }
  cancel_hook* h = n->hooks_first;
  n->hooks_first = n->hooks_last = nullptr;
  while (h != nullptr) {
    cancel_hook* next = h->next;
    h->prev = h->next = nullptr;
    h->linked = false;
    switch (h->k) {
      case cancel_hook::kind::waiter:
        h->fire(h);  // under our lock: ctx_disarm waits for it by taking the lock
        break;
      case cancel_hook::kind::child: {
        ctx_node* child = node_of_child_hook(h);
        child->work_next = *work;
        *work = child;
        break;
      }
      case cancel_hook::kind::after_func:
        h->next = *funcs;
        *funcs = h;
        break;
    }
    h = next;
  }
  n->lock.unlock();
  return true;
}

// Cancels root and its whole subtree. from_timer: called by root's own
// deadline timer, which must not be waited for.
void cancel_tree(ctx_node* root, int err, std::error_code cause, bool from_timer) noexcept {
  ctx_node* work = nullptr;
  cancel_hook* funcs = nullptr;
  if (!cancel_one(root, err, cause, &work, &funcs)) return;
  std::error_code root_cause;
  {
    lock_guard lk(root->lock);
    root_cause = root->cause;
  }
  if (!from_timer && root->has_timer) timer_stop(&root->deadline_timer);
  // Leave the parent's list: a done child needs no more news from it.
  if (ctx_node* pc = root->parent != nullptr ? root->parent->canceller : nullptr) {
    bool unlinked = false;
    {
      lock_guard lk(pc->lock);
      if (root->as_child.linked && root->as_child.home == pc) {
        list_unlink(pc, &root->as_child);
        unlinked = true;
      }
    }
    if (unlinked) ctx_release(root);  // the list's reference
  }
  // Descendants get the reason and cause of the node that was cancelled.
  while (work != nullptr) {
    ctx_node* n = work;
    work = n->work_next;
    n->work_next = nullptr;
    cancel_one(n, err, root_cause, &work, &funcs);
    if (n->has_timer) timer_stop(&n->deadline_timer);
    ctx_release(n);  // the list's reference
  }
  while (funcs != nullptr) {
    cancel_hook* h = funcs;
    funcs = h->next;
    h->next = nullptr;
    run_after_func(rec_of_hook(h));
  }
}

void deadline_fire(timer* t) noexcept {
  auto* n = static_cast<ctx_node*>(t->arg);
  // Take a reference only while the node is alive; at zero it is being
  // destroyed, and its destructor is waiting for this fire() to end.
  std::int32_t r = n->refs.load(std::memory_order_relaxed);
  while (r > 0 && !n->refs.compare_exchange_weak(r, r + 1, std::memory_order_acquire,
                                                 std::memory_order_relaxed)) {
  }
  if (r <= 0) {
    // Release pairs with timer_stop's acquire of busy.
    t->busy.store(0, std::memory_order_release);
    return;
  }
  cancel_tree(n, static_cast<int>(errc::deadline_exceeded), {}, true);
  t->busy.store(0, std::memory_order_release);  // before n may go
  ctx_release(n);
}

// Joins n (a new canceller) to its parent's canceller's list, or cancels it
// at once if that one is done already.
void propagate(ctx_node* n) noexcept {
  ctx_node* pc = n->parent->canceller;
  if (pc == nullptr) return;
  int perr = 0;
  std::error_code pcause;
  {
    lock_guard lk(pc->lock);
    perr = pc->err.load(std::memory_order_relaxed);
    if (perr == 0) {
      n->refs.fetch_add(1, std::memory_order_relaxed);  // the list's reference
      n->as_child.k = cancel_hook::kind::child;
      list_push(pc, &n->as_child);
      return;
    }
    pcause = pc->cause;
  }
  cancel_tree(n, perr, pcause, false);
}

ctx_node* new_node(ctx_node* parent, ctx_node::kind_t kind) {
  race_ignore no_race_checks;  // runtime allocation (race.hpp)
  auto* n = new ctx_node;
  n->kind = kind;
  n->parent = parent;
  ctx_retain(parent);
  n->deadline = parent->deadline;
  return n;
}

void destroy_chain(ctx_node* n) noexcept {
  // Iterative: dropping a node drops its parent reference, and a chain may
  // be a million nodes deep.
  while (n != nullptr) {
    ctx_node* parent = n->parent;
    if (n->has_timer) timer_stop(&n->deadline_timer);
    if (chan_core* c = n->done_core.load(std::memory_order_relaxed)) chan_release(c);
    {
      race_ignore no_race_checks;  // freed by whoever lets go last (race.hpp)
      delete n;
    }
    if (parent == nullptr || parent->immortal) return;
    race_release(parent);
    if (parent->refs.fetch_sub(1, std::memory_order_acq_rel) != 1) return;
    race_acquire(parent);
    n = parent;
  }
}

}  // namespace

void ctx_retain(ctx_node* n) noexcept {
  if (n->immortal) return;
  // Relaxed: a new reference is made from an existing one.
  n->refs.fetch_add(1, std::memory_order_relaxed);
}

void ctx_release(ctx_node* n) noexcept {
  if (n->immortal) return;
  race_release(n);
  // acq_rel: every use through other references happens before the free.
  if (n->refs.fetch_sub(1, std::memory_order_acq_rel) != 1) return;
  race_acquire(n);
  destroy_chain(n);
}

ctx_node* ctx_background() noexcept { return &background_node; }
ctx_node* ctx_todo() noexcept { return &todo_node; }

namespace {
// One closed channel shared by every context that was done before anyone
// asked for its done() (Go's closedchan): a tree cancelled before it is
// looked at makes no channels. Immortal: its reference count never drops to
// zero, since the function-local handle is never destroyed.
chan_core* closed_done_chan() {
  static chan<std::monostate>* const closed = [] {
    auto* c = new chan<std::monostate>(make_chan<std::monostate>(0));
    c->close();
    return c;
  }();
  return closed->core();
}
}  // namespace

namespace {
// TSan: whoever sees a canceller done is ordered after the cancel. A done()
// channel made before the cancel carries the edge itself (close before a
// "closed" receive); the shared closed channel handed out after it does not.
void race_done_acquire(const ctx_node* c) noexcept { race_acquire(&c->err); }
}  // namespace

chan_core* ctx_done_core(ctx_node* n) {
  ctx_node* c = n->canceller;
  if (c == nullptr) return nullptr;
  // Acquire pairs with the release stores below.
  if (chan_core* core = c->done_core.load(std::memory_order_acquire)) {
    if (core == closed_done_chan()) race_done_acquire(c);
    return core;
  }
  if (c->err.load(std::memory_order_acquire) != 0) {
    race_done_acquire(c);
    chan_core* core = closed_done_chan();
    lock_guard lk(c->lock);
    if (chan_core* made = c->done_core.load(std::memory_order_relaxed)) return made;
    chan_retain(core);  // the node's reference
    c->done_core.store(core, std::memory_order_release);
    return core;
  }
  chan<std::monostate> made = make_chan<std::monostate>(0);
  lock_guard lk(c->lock);
  if (chan_core* core = c->done_core.load(std::memory_order_relaxed)) return core;
  chan_core* core = made.core();
  chan_retain(core);  // the node's reference
  if (c->err.load(std::memory_order_relaxed) != 0) chan_close(core);
  c->done_core.store(core, std::memory_order_release);
  return core;
}

std::error_code ctx_err(const ctx_node* n) noexcept {
  const ctx_node* c = n->canceller;
  if (c == nullptr) return {};
  // Acquire pairs with the release store in cancel_one.
  const int e = c->err.load(std::memory_order_acquire);
  if (e == 0) return {};
  race_done_acquire(c);
  return static_cast<errc>(e);
}

std::error_code ctx_cause(const ctx_node* n) noexcept {
  ctx_node* c = n->canceller;
  if (c == nullptr) return {};
  if (c->err.load(std::memory_order_acquire) == 0) return {};
  race_done_acquire(c);
  lock_guard lk(c->lock);
  return c->cause;
}

std::int64_t ctx_deadline(const ctx_node* n) noexcept { return n->deadline; }

const void* ctx_value(const ctx_node* n, const void* key) noexcept {
  for (; n != nullptr; n = n->parent)
    if (n->kind == ctx_node::kind_t::value && n->key == key) return n->value.get();
  return nullptr;
}

namespace {
// A new canceller, not yet published. It holds two node references (the
// context handle and the cancel_func made with it) and one cancel reference.
ctx_node* new_canceller(ctx_node* parent) {
  ctx_node* n = new_node(parent, ctx_node::kind_t::canceller);
  n->canceller = n;
  n->cancel_refs.store(1, std::memory_order_relaxed);
  n->refs.store(2, std::memory_order_relaxed);
  return n;
}
}  // namespace

ctx_node* ctx_with_cancel(ctx_node* parent) {
  ctx_node* n = new_canceller(parent);
  propagate(n);
  return n;
}

ctx_node* ctx_with_deadline(ctx_node* parent, std::int64_t deadline_ns) {
  if (parent->deadline <= deadline_ns) return ctx_with_cancel(parent);  // as Go does
  ctx_node* n = new_canceller(parent);
  n->deadline = deadline_ns;
  // The timer is set up, and has_timer true, before the node is published
  // (propagate, timer_start): whoever cancels or frees it may stop a timer
  // that has not started yet, which is harmless.
  timer& t = n->deadline_timer;
  t.when = deadline_ns;
  t.fire = &deadline_fire;
  t.arg = n;
  t.fire_clears_busy = true;
  n->has_timer = true;
  propagate(n);
  if (n->err.load(std::memory_order_acquire) != 0) return n;  // the parent was done
  if (deadline_ns <= nanotime()) {
    cancel_tree(n, static_cast<int>(errc::deadline_exceeded), {}, false);
    return n;
  }
  try {
    timer_start(&t);
  } catch (...) {
    cancel_tree(n, static_cast<int>(errc::canceled), {}, false);
    ctx_release(n);
    ctx_release(n);
    throw;
  }
  return n;
}

ctx_node* ctx_with_value(ctx_node* parent, const void* key, std::shared_ptr<const void> value) {
  ctx_node* n = new_node(parent, ctx_node::kind_t::value);
  n->canceller = parent->canceller;
  n->key = key;
  n->value = std::move(value);
  return n;
}

ctx_node* ctx_without_cancel(ctx_node* parent) {
  ctx_node* n = new_node(parent, ctx_node::kind_t::detached);
  n->canceller = nullptr;
  n->deadline = no_deadline;
  return n;
}

void ctx_cancel(ctx_node* n, std::error_code cause) noexcept {
  cancel_tree(n, static_cast<int>(errc::canceled), cause, false);
}

// A cancel_func holds a cancel reference and a node reference: it may
// outlive every context handle of its node.
void ctx_cancel_ref(ctx_node* n) noexcept {
  // Relaxed: made from an existing cancel_func.
  n->cancel_refs.fetch_add(1, std::memory_order_relaxed);
  ctx_retain(n);
}

void ctx_cancel_unref(ctx_node* n) noexcept {
  if (n->cancel_refs.fetch_sub(1, std::memory_order_acq_rel) == 1) ctx_cancel(n, {});
  ctx_release(n);
}

arm_result ctx_arm(ctx_node* n, cancel_hook* h) noexcept {
  ctx_node* c = n->canceller;
  if (c == nullptr) return arm_result::never;
  lock_guard lk(c->lock);
  if (c->err.load(std::memory_order_relaxed) != 0) return arm_result::done;
  h->k = cancel_hook::kind::waiter;
  list_push(c, h);
  return arm_result::armed;
}

void ctx_disarm(cancel_hook* h) noexcept {
  ctx_node* home = h->home;
  if (home == nullptr) return;
  lock_guard lk(home->lock);
  if (h->linked) list_unlink(home, h);
}

ctx_after_func_rec* ctx_after_func(ctx_node* n, std::function<void()> f) {
  ctx_after_func_rec* r;
  {
    race_ignore no_race_checks;  // runtime allocation (race.hpp)
    r = new ctx_after_func_rec;
  }
  r->f = std::move(f);
  // TSan: everything before after_func happens before f runs (the spawn
  // edge is the canceller's, who may be another goroutine).
  race_release(&r->f);
  r->hook.k = cancel_hook::kind::after_func;
  ctx_node* c = n->canceller;
  if (c == nullptr) {
    r->refs.store(1, std::memory_order_relaxed);  // never runs: only the handle
    return r;
  }
  {
    lock_guard lk(c->lock);
    if (c->err.load(std::memory_order_relaxed) == 0) {
      list_push(c, &r->hook);
      return r;
    }
  }
  run_after_func(r);  // the list's reference goes to the goroutine
  return r;
}

bool ctx_after_func_stop(ctx_after_func_rec* r) noexcept {
  ctx_node* home = r->hook.home;
  if (home == nullptr) return false;  // never listed
  bool unlinked = false;
  {
    lock_guard lk(home->lock);
    if (r->hook.linked) {
      list_unlink(home, &r->hook);
      unlinked = true;
    }
  }
  if (unlinked) after_func_unref(r);  // the list's reference
  return unlinked;
}

void ctx_after_func_release(ctx_after_func_rec* r) noexcept { after_func_unref(r); }

std::size_t ctx_hook_count(ctx_node* n) noexcept {
  ctx_node* c = n->canceller;
  if (c == nullptr) return 0;
  lock_guard lk(c->lock);
  std::size_t k = 0;
  for (cancel_hook* h = c->hooks_first; h != nullptr; h = h->next) ++k;
  return k;
}

}  // namespace goro::detail
