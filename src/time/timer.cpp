// Timers and tickers as channels (Go's time.Timer / time.Ticker, 1.23
// semantics), on the runtime's per-P timer heaps (runtime/timer.hpp).
//
// A timer_obj is one runtime timer plus what it delivers to: a channel of
// capacity 1 (timers and tickers) or a function to start in a goroutine
// (after_func).
//
// Ownership (refs):
//  - every goro::timer / goro::ticker handle holds one reference;
//  - a channel timer's channel holds one: the channel owns the timer, since
//    a copy of the channel alone must keep it running. The channel's
//    on_last_release hook stops the timer and drops that reference, so a
//    timer nobody can observe any more is gone at once. The heap holds no
//    reference to a channel timer: the hook stops it before the channel
//    (and the object) can go;
//  - a func timer holds one reference while it is in a heap (armed); the
//    fire moves it into the goroutine that runs f, stop() drops it when it
//    takes the timer out of the heap, reset() of an unarmed timer takes a
//    new one. Whoever takes the timer out of the heap (the firing M's pop,
//    or timer_stop's remove) owns the armed reference.
//
// stop and reset are serialized by mu. Both first timer_stop the runtime
// timer (which waits out a fire in progress, and takes out of its heap a
// ticker that its M re-armed), then discard any value that fired but was
// not received (chan_drain): after they return no value from before can be
// received. A fire never takes mu.
#include <new>

#include "chan/chan_core.hpp"
#include "goro/goroutine.hpp"
#include "goro/timer.hpp"
#include "platform/clock.hpp"
#include "platform/race.hpp"
#include "runtime/fault.hpp"
#include "runtime/sched.hpp"

namespace goro::detail {

struct timer_obj {
  std::atomic<std::int32_t> refs{2};
  timer t;
  chan_core* c = nullptr;   // channel timers; owns us
  std::function<void()> f;  // func timers
  lock_t mu;                // serializes stop and reset
};

namespace {

std::atomic<std::int64_t> live_objs{0};

timer_obj* new_obj() {
  race_ignore no_race_checks;  // runtime allocation (race.hpp)
  auto* o = new timer_obj;
  live_objs.fetch_add(1, std::memory_order_relaxed);
  return o;
}

void delete_obj(timer_obj* o) noexcept {
  live_objs.fetch_sub(1, std::memory_order_relaxed);
  race_ignore no_race_checks;
  delete o;
}

// A ticker's timer is periodic (timer::period): the M that fired it puts it
// back in a heap after this returns, so two fires never overlap.
void chan_fire(timer* t) noexcept {
  auto* o = static_cast<timer_obj*>(t->arg);
  time_point v{std::chrono::nanoseconds(nanotime())};
  try {
    // Non-blocking: a full channel (an unread tick) drops this one.
    (void)chan_send(o->c, &v, false, 0);
  } catch (...) {
    // Unreachable: the channel is never closed (its handles are receive-only).
  }
}

void func_fire(timer* t) noexcept {
  auto* o = static_cast<timer_obj*>(t->arg);
  try {
    // The armed reference moves into the goroutine.
    goro::go([o] {
      struct release_at_exit {
        timer_obj* o;
        ~release_at_exit() { timer_obj_release(o); }
      } guard{o};
      race_acquire(&o->f);  // pairs with race_release in timer_new_func / reset
      o->f();
    });
  } catch (...) {
    timer_obj_release(o);  // the runtime is shutting down: f does not run
  }
}

void chan_last_release(void* arg) noexcept {
  auto* o = static_cast<timer_obj*>(arg);
  (void)timer_stop(&o->t);
  timer_obj_release(o);  // the channel's reference
}

}  // namespace

timer_obj* timer_new_chan(std::int64_t when_ns, std::int64_t period_ns) {
  timer_obj* o = new_obj();
  o->t.period = period_ns;
  try {
    o->c = chan_make(&chan_ops_for<time_point>::ops, 1);
  } catch (...) {
    delete_obj(o);
    throw;
  }
  o->c->on_last_release = &chan_last_release;
  o->c->on_last_release_arg = o;
  o->t.when = when_ns;
  o->t.fire = &chan_fire;
  o->t.arg = o;
  try {
    timer_start(&o->t);
  } catch (...) {
    o->c->on_last_release = nullptr;
    chan_release(o->c);
    delete_obj(o);
    throw;
  }
  return o;
}

timer_obj* timer_new_func(std::int64_t when_ns, std::function<void()> f) {
  timer_obj* o = new_obj();
  o->f = std::move(f);
  // TSan: everything before after_func (or a reset) happens before f runs.
  race_release(&o->f);
  o->t.when = when_ns;
  o->t.fire = &func_fire;
  o->t.arg = o;
  try {
    timer_start(&o->t);  // the armed reference is the second of refs{2}
  } catch (...) {
    delete_obj(o);
    throw;
  }
  return o;
}

chan_core* timer_chan_core(const timer_obj* t) noexcept { return t->c; }

void timer_obj_retain(timer_obj* t) noexcept {
  // Relaxed: made from an existing reference.
  t->refs.fetch_add(1, std::memory_order_relaxed);
}

void timer_obj_release(timer_obj* t) noexcept {
  race_release(t);
  // acq_rel: every use through other references happens before the free.
  if (t->refs.fetch_sub(1, std::memory_order_acq_rel) != 1) return;
  race_acquire(t);
  delete_obj(t);
}

bool timer_obj_stop(timer_obj* o) noexcept {
  bool pending;
  {
    lock_guard lk(o->mu);
    pending = timer_stop(&o->t);
    if (o->c != nullptr) {
      if (chan_drain(o->c) > 0) pending = true;  // fired, not received: never will be
      return pending;
    }
  }
  if (pending) timer_obj_release(o);  // the armed reference: we took it out of the heap
  return pending;
}

bool timer_obj_reset(timer_obj* o, std::int64_t when_ns, std::int64_t period_ns) {
  lock_guard lk(o->mu);
  bool pending = timer_stop(&o->t);
  if (o->c != nullptr) {
    if (chan_drain(o->c) > 0) pending = true;
    o->t.period = period_ns;
  } else {
    race_release(&o->f);                // pairs with race_acquire before f runs
    if (!pending) timer_obj_retain(o);  // armed again
  }
  o->t.when = when_ns;
  try {
    timer_start(&o->t);
  } catch (...) {
    if (o->c == nullptr) timer_obj_release(o);  // not armed after all (never the last ref)
    throw;
  }
  return pending;
}

std::int64_t timer_obj_count() noexcept { return live_objs.load(std::memory_order_relaxed); }

}  // namespace goro::detail
