// Wall-clock schedules (goro/schedule.hpp), built on the public API: each
// schedule is one goroutine that sleeps on the monotonic clock in steps of
// at most wall_recheck, so that a wall-clock change is noticed within one
// step, and sends each tick without blocking into a channel of capacity 1.
//
// Protocol of stop(): cancel the goroutine's context, wait (wait_group) until
// it has returned, then drain the channel. After the wait no send can come;
// after the drain no tick from before is left: a later receive blocks.
#include "goro/schedule.hpp"

#include <ctime>
#include <stdexcept>

#include "goro/goroutine.hpp"
#include "goro/select.hpp"
#include "goro/sleep.hpp"
#include "goro/wait_group.hpp"

namespace goro {

namespace {

constexpr auto wall_recheck = std::chrono::seconds(1);

void check_hm(int hour, int minute) {
  if (hour < 0 || hour > 23) throw std::invalid_argument("goro::schedule_spec: hour must be 0..23");
  if (minute < 0 || minute > 59)
    throw std::invalid_argument("goro::schedule_spec: minute must be 0..59");
}

// The local time hour:minute:00 on the calendar day of tm (mday may be out of
// range: mktime normalizes it), as a wall-clock time. tm_isdst = -1 lets
// mktime pick daylight saving time for that instant.
wall_clock::time_point local_at(std::tm day, int hour, int minute) {
  day.tm_hour = hour;
  day.tm_min = minute;
  day.tm_sec = 0;
  day.tm_isdst = -1;
  const std::time_t t = std::mktime(&day);
  return wall_clock::from_time_t(t);
}

std::tm local_tm(wall_clock::time_point t) {
  const std::time_t tt = wall_clock::to_time_t(t);
  std::tm out{};
  localtime_r(&tt, &out);
  return out;
}

}  // namespace

schedule_spec schedule_spec::every(wall_clock::duration period, wall_clock::duration offset) {
  if (period <= wall_clock::duration::zero())
    throw std::invalid_argument("goro::schedule_spec::every: period must be positive");
  return schedule_spec([period, offset](wall_clock::time_point t) {
    const auto since = t.time_since_epoch() - offset;
    auto k = since / period;  // floor for since >= 0; truncation toward zero below
    if (since < wall_clock::duration::zero() && since % period != wall_clock::duration::zero()) --k;
    return wall_clock::time_point(offset + (k + 1) * period);
  });
}

schedule_spec schedule_spec::starting(wall_clock::time_point start, wall_clock::duration period) {
  if (period <= wall_clock::duration::zero())
    throw std::invalid_argument("goro::schedule_spec::starting: period must be positive");
  return schedule_spec([start, period](wall_clock::time_point t) {
    if (t < start) return start;
    return start + ((t - start) / period + 1) * period;
  });
}

schedule_spec schedule_spec::daily(int hour, int minute) {
  check_hm(hour, minute);
  return schedule_spec([hour, minute](wall_clock::time_point t) {
    std::tm day = local_tm(t);
    for (int i = 0; i < 3; ++i) {  // today, else the next day (DST days: one more)
      const wall_clock::time_point at = local_at(day, hour, minute);
      if (at > t) return at;
      ++day.tm_mday;
    }
    return local_at(day, hour, minute);
  });
}

schedule_spec schedule_spec::weekly(std::chrono::weekday wd, int hour, int minute) {
  check_hm(hour, minute);
  if (!wd.ok()) throw std::invalid_argument("goro::schedule_spec::weekly: invalid weekday");
  const int want = static_cast<int>(wd.c_encoding());  // 0 = Sunday, as tm_wday
  return schedule_spec([want, hour, minute](wall_clock::time_point t) {
    std::tm day = local_tm(t);
    day.tm_mday += (want - day.tm_wday + 7) % 7;
    for (int i = 0; i < 3; ++i) {
      const wall_clock::time_point at = local_at(day, hour, minute);
      if (at > t) return at;
      day.tm_mday += 7;
    }
    return local_at(day, hour, minute);
  });
}

wall_clock::time_point schedule_spec::next_after(wall_clock::time_point t) const {
  const wall_clock::time_point n = next_(t);
  if (n <= t) throw std::logic_error("goro::schedule_spec: next_after(t) must be after t");
  return n;
}

std::error_code wait_until(const context& ctx, wall_clock::time_point t) {
  for (;;) {
    const auto left = t - wall_clock::now();
    if (left <= wall_clock::duration::zero()) return {};
    const auto step = left < wall_recheck ? left : wall_clock::duration(wall_recheck);
    if (std::error_code ec = sleep_for(ctx, step)) return ec;
  }
}

struct schedule::state {
  context ctx;
  cancel_func cancel;
  wait_group done;
  chan<wall_clock::time_point> ticks;
};

schedule::schedule(schedule_spec spec) : st_(std::make_shared<state>()) {
  auto [ctx, cancel] = with_cancel(background());
  st_->ctx = ctx;
  st_->cancel = std::move(cancel);
  st_->ticks = make_chan<wall_clock::time_point>(1);
  c_ = st_->ticks;
  st_->done.add(1);
  std::shared_ptr<state> st = st_;
  try {
    go([st, spec = std::move(spec)] {
      struct done_at_exit {
        wait_group& wg;
        ~done_at_exit() { wg.done(); }
      } guard{st->done};
      wall_clock::time_point next = spec.next_after(wall_clock::now());
      for (;;) {
        if (wait_until(st->ctx, next)) return;  // stopped
        // Coalesce ticks missed while the clock jumped or the machine slept:
        // deliver the latest one, then go on from now.
        const wall_clock::time_point now = wall_clock::now();
        wall_clock::time_point tick = next;
        for (wall_clock::time_point n = spec.next_after(tick); n <= now; n = spec.next_after(n))
          tick = n;
        (void)st->ticks.try_send(tick);  // full: a slow receiver loses it
        next = spec.next_after(tick > now ? tick : now);
      }
    });
  } catch (...) {
    st_->done.done();
    throw;
  }
}

schedule& schedule::operator=(schedule&& o) noexcept {
  if (this != &o) {
    stop();
    st_ = std::move(o.st_);
    c_ = std::move(o.c_);
  }
  return *this;
}

void schedule::stop() {
  if (!st_) return;
  st_->cancel();
  st_->done.wait();
  while (st_->ticks.try_recv()) {
  }
  st_.reset();
}

}  // namespace goro
