// The context-taking blocking calls: every wait that a context can cut
// short goes through one of two mechanisms.
//  - Channel operations and sleeps are a select (select.cpp) with one more
//    receive case, on the context's done channel: Go's own idiom
//    `select { case op: case <-ctx.Done(): }`, so they share select's
//    guarantees (exactly one outcome; a cancelled operation leaves nothing
//    behind in the channel).
//  - Semaphore waits (mutex, wait_group) arm a cancel hook on the context
//    (context_impl.hpp) whose fire() cancels the semaphore wait
//    (sem_cancel): the hook runs under the context's lock and takes the
//    semaphore bucket's lock, the only order in which the two are nested.
#include "chan/chan_core.hpp"
#include "context/context_impl.hpp"
#include "goro/select.hpp"
#include "goro/sleep.hpp"
#include "runtime/sema.hpp"

namespace goro::detail {

std::error_code chan_send_ctx(chan_core* c, void* src, const context& ctx) {
  chan_core* done = ctx_done_core(ctx.node());
  if (done == nullptr) {
    (void)chan_send(c, src, true, no_deadline);
    return {};
  }
  const select_case_rec recs[2] = {{c, src, nullptr, true}, {done, nullptr, nullptr, false}};
  select_slot slots[2];
  const select_result r = select_impl(recs, slots, 2, false, no_deadline);
  if (r.index == 0) return {};
  return ctx.err();
}

chan_status chan_recv_ctx(chan_core* c, void* dst, chan_take_fn take, const context& ctx,
                          std::error_code& ec) {
  ec.clear();
  chan_core* done = ctx_done_core(ctx.node());
  if (done == nullptr) return chan_recv(c, dst, take, true, no_deadline);
  const select_case_rec recs[2] = {{c, dst, take, false}, {done, nullptr, nullptr, false}};
  select_slot slots[2];
  const select_result r = select_impl(recs, slots, 2, false, no_deadline);
  if (r.index == 0) return r.recv_ok ? chan_status::ok : chan_status::closed;
  ec = ctx.err();
  return chan_status::not_ready;
}

std::error_code sleep_until_ctx(std::int64_t deadline_ns, const context& ctx) {
  chan_core* done = ctx_done_core(ctx.node());
  if (done == nullptr) {
    sleep_until_ns(deadline_ns);
    return {};
  }
  const select_case_rec recs[1] = {{done, nullptr, nullptr, false}};
  select_slot slots[1];
  const select_result r = select_impl(recs, slots, 1, false, deadline_ns);
  if (r.index == select_timed_out) return {};
  return ctx.err();
}

namespace {
void sem_hook_fire(cancel_hook* h) noexcept { sem_cancel(*static_cast<sem_cancel_token*>(h->arg)); }
}  // namespace

bool ctx_sem_acquire(std::atomic<std::uint32_t>* addr, bool lifo, wait_reason reason,
                     const context& ctx, std::error_code& ec,
                     void (*stand_in)(void*, bool) noexcept, void* stand_in_arg) {
  ec.clear();
  sem_cancel_token tok(addr, stand_in, stand_in_arg);
  cancel_hook hook;
  hook.fire = &sem_hook_fire;
  hook.arg = &tok;
  switch (ctx_arm(ctx.node(), &hook)) {
    case arm_result::never:
      sem_acquire(addr, lifo, reason);
      return true;
    case arm_result::done:
      sem_cancel(tok);  // a free unit is still taken at once
      break;
    case arm_result::armed:
      break;
  }
  const bool taken = sem_acquire_cancellable(addr, lifo, reason, tok);
  ctx_disarm(&hook);
  if (!taken) ec = ctx.err();
  return taken;
}

}  // namespace goro::detail
