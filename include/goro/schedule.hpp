// goro/schedule.hpp: ticks at wall-clock times ("every hour on the hour",
// "Tuesdays at 14:00", "every 10 minutes starting next Monday"), and
// wait_until for a single wall-clock instant. Cron without cron.
//
//   goro::schedule hourly(goro::schedule_spec::every(1h));   // 01:00, 02:00, ... UTC
//   goro::schedule report(goro::schedule_spec::weekly(std::chrono::Tuesday, 14, 0));
//   for (;;) goro::select(goro::on_recv(report.c(), [](auto t) { send_report(*t); }),
//                         goro::on_done(ctx));
//
// A schedule_spec says when ticks fall: next_after(t) is the first tick
// strictly after t. daily and weekly are in the process's local time zone
// (TZ), so 14:00 stays 14:00 across daylight-saving changes; every and
// starting count fixed durations on the wall clock (system_clock).
//
// Each tick delivers its scheduled wall-clock time on c(). A slow receiver
// loses ticks, as with goro::ticker: c() holds at most one undelivered tick.
//
// Missed ticks and clock changes: a schedule waits on the monotonic clock
// and re-reads the wall clock at least once a second. A tick is never
// early: if the wall clock is set back, the schedule waits for the wall
// clock to reach the tick again. If the wall clock jumps forward, or the
// machine slept, past one or more ticks, they are coalesced: one tick is
// delivered (carrying the latest missed time), at most about a second late,
// and the schedule carries on with the first tick after now; missed ticks
// are never replayed in a burst.
//
// A schedule runs one goroutine, so it needs a running runtime (goro::run).
// stop() (and the destructor) end it; once stop returns no tick can be
// received any more.
//
// Memory ordering: none beyond the channel's.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <system_error>

#include "goro/chan.hpp"
#include "goro/context.hpp"

namespace goro {

using wall_clock = std::chrono::system_clock;

class schedule_spec {
 public:
  using next_fn = std::function<wall_clock::time_point(wall_clock::time_point)>;

  /// A custom rule: next_after(t) must return a time after t.
  explicit schedule_spec(next_fn next_after) : next_(std::move(next_after)) {}

  /// Ticks at offset + k * period since the Unix epoch: every(1h) ticks on
  /// the hour, every(24h, 6h) daily at 06:00 UTC. Throws
  /// std::invalid_argument unless period > 0.
  static schedule_spec every(wall_clock::duration period, wall_clock::duration offset = {});
  /// Ticks at start + k * period for k >= 0 (the first tick is start).
  static schedule_spec starting(wall_clock::time_point start, wall_clock::duration period);
  /// Every day at hour:minute local time. Throws std::invalid_argument for
  /// an hour or minute out of range.
  static schedule_spec daily(int hour, int minute = 0);
  /// Every week on day at hour:minute local time.
  static schedule_spec weekly(std::chrono::weekday day, int hour, int minute = 0);

  /// The first tick strictly after t.
  wall_clock::time_point next_after(wall_clock::time_point t) const;

 private:
  next_fn next_;
};

class schedule {
 public:
  schedule() noexcept = default;
  /// Starts ticking (the first tick is spec.next_after(now)).
  explicit schedule(schedule_spec spec);
  schedule(schedule&&) noexcept = default;
  schedule& operator=(schedule&& o) noexcept;
  ~schedule() { stop(); }

  /// The channel ticks arrive on.
  const recv_chan<wall_clock::time_point>& c() const noexcept { return c_; }

  /// Ends the schedule; idempotent. Once it returns, no tick can be received.
  void stop();

 private:
  struct state;
  std::shared_ptr<state> st_;
  recv_chan<wall_clock::time_point> c_;
};

/// Waits until the wall clock reads t or ctx is done: {} or ctx's error.
/// Re-reads the wall clock at least once a second, as a schedule does.
std::error_code wait_until(const context& ctx, wall_clock::time_point t);

}  // namespace goro
