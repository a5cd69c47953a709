// Goroutine dumps: goro::dump, the SIGQUIT dump and the dump in every fatal
// report (Go's tracebackothers, with goroutine-inspect's folding).
//
// Protocol: the dump does not stop the world. It copies the registries of
// G records under sched.allgs_lock (the arena chunks of spawn records, the
// head of the list of goroutine records; records are never freed before the
// runtime shuts down, and list links never change), then reads each record
// with relaxed loads. A goroutine moving from its spawn record to its
// goroutine record meanwhile may be missed. A
// goroutine's stack is walked (traceback.cpp) only when it cannot be
// running: parked or runnable, or the dumping goroutine itself; stacks stay
// mapped until shutdown, and the walk checks every address, so a goroutine
// resumed meanwhile gives at worst a torn trace of itself. Fatal reports
// (deadlock) run when nothing else runs, so their dumps are exact.
//
// Folding: goroutines with the same state, wait reason, spawn site and stack
// form one entry listing a count and their ids, so 100,000 goroutines blocked
// at one place read as one entry (and the symbolizer runs once per distinct
// frame). Entries are ordered by their lowest goroutine id.
//
// Wait times come from G::wait_since, stamped at park from sched.coarse_now
// (sysmon's clock, at most ~10 ms behind): "how long" is accurate to about
// 10 ms. Running times come from sysmon's view of the goroutine's P
// (P::sysmon_when: when sysmon last saw the P switch goroutines).
#include "debug/dump.hpp"

#include <algorithm>
#include <cstdio>
#include <mutex>
#include <ostream>
#include <string_view>
#include <system_error>
#include <thread>
#include <unordered_map>
#include <vector>

#include "goro/debug.hpp"
#include "platform/clock.hpp"
#include "platform/race.hpp"
#include "runtime/sched.hpp"

namespace goro::detail {
namespace {

constexpr std::size_t max_frames = 64;
constexpr std::size_t max_listed_ids = 20;

std::mutex dump_lock;  // the symbolizer's cache and session

struct grec {
  std::uint64_t id;
  std::string label;       // "chan receive", "running", ...
  std::int64_t since = 0;  // wait or run start, 0 if unknown
  const char* file;
  const char* func;
  unsigned line;
  const char* name;
  std::string note;  // instead of a stack
  std::size_t pc_begin, pc_count;
};

struct group {
  std::vector<std::uint64_t> ids;
  std::size_t first;  // index of the first record
  std::int64_t min_since = 0, max_since = 0;
};

void append_duration(std::string& out, std::int64_t ns) {
  char buf[48];
  if (ns < 1'000'000'000)
    std::snprintf(buf, sizeof(buf), "%lld ms", static_cast<long long>(ns / 1'000'000));
  else if (ns < 120'000'000'000)
    std::snprintf(buf, sizeof(buf), "%.1f s", static_cast<double>(ns) / 1e9);
  else
    std::snprintf(buf, sizeof(buf), "%lld minutes", static_cast<long long>(ns / 60'000'000'000));
  out += buf;
}

// Reads one G; false if it is not a live goroutine.
bool read_g(G* g, G* self, std::uintptr_t self_fp, std::int64_t now, grec& r,
            std::vector<std::uintptr_t>& pcs) {
  const gstatus st = g->status.load(std::memory_order_acquire);
  if (st == gstatus::idle || st == gstatus::dead) return false;
  r.id = g->id;
  r.file = g->site.file_name();
  r.func = g->site.function_name();
  r.line = g->site.line();
  r.name = g->display_name();
  r.pc_begin = pcs.size();
  r.pc_count = 0;
  const wait_reason reason =
      std::atomic_ref<wait_reason>(g->reason).load(std::memory_order_relaxed);
  bool walk = false;
  if (st == gstatus::waiting) {
    r.label = wait_reason_string(reason);
    r.since = g->wait_since.load(std::memory_order_relaxed);
    walk = true;
  } else if (st == gstatus::runnable) {
    r.label = g->started ? "runnable" : "runnable, not started";
    walk = g->started;
  } else if (g == self) {
    r.label = "running";
    walk = true;
  } else if (reason == wait_reason::blocking_call) {
    r.label = "blocking call";
    r.since = g->wait_since.load(std::memory_order_relaxed);
    M* m = g->m.load(std::memory_order_relaxed);
    r.note = "\t(in a blocking call on thread M" + std::to_string(m != nullptr ? m->id : -1) +
             "; stack unavailable)\n";
  } else {
    r.label = "running";
    M* m = g->m.load(std::memory_order_relaxed);
    P* p = m != nullptr ? __atomic_load_n(&m->p, __ATOMIC_RELAXED) : nullptr;
    if (p != nullptr && p->sysmon_tick.load(std::memory_order_relaxed) ==
                            __atomic_load_n(&p->schedtick, __ATOMIC_RELAXED)) {
      r.since = p->sysmon_when.load(std::memory_order_relaxed);
      if (r.since != 0 && now - r.since > 10'000'000) r.label = "running, not yielding";
    }
    r.note = "\t(running on thread M" + std::to_string(m != nullptr ? m->id : -1) +
             "; stack unavailable)\n";
  }
  if (walk) {
    std::uintptr_t buf[max_frames];
    const std::size_t n = goroutine_stack(g, buf, max_frames, g == self ? self_fp : 0);
    pcs.insert(pcs.end(), buf, buf + n);
    r.pc_count = n;
  }
  return true;
}

std::string fold_key(const grec& r, const std::vector<std::uintptr_t>& pcs) {
  std::string k = r.label;
  k += '\0';
  k += r.note;
  k.append(reinterpret_cast<const char*>(&r.file), sizeof(r.file));
  k.append(reinterpret_cast<const char*>(&r.line), sizeof(r.line));
  k.append(reinterpret_cast<const char*>(pcs.data() + r.pc_begin),
           r.pc_count * sizeof(std::uintptr_t));
  return k;
}

// The dump proper. self: the goroutine asking (or nullptr), stopped with its
// frame pointer at self_fp.
void dump_from(std::string& out, G* self, std::uintptr_t self_fp) {
  race_ignore no_race_checks;  // runtime code (race.hpp)
  std::lock_guard lk(dump_lock);
  if (!sched.running.load(std::memory_order_acquire)) {
    out += "(no goro runtime is running)\n";
    return;
  }
  std::vector<G*> chunks;
  std::size_t last_used;
  G* started;
  {
    lock_guard l(sched.allgs_lock);
    chunks = sched.gchunks;
    last_used = sched.gchunk_used;
    // Acquire pairs with the release store that published the newest
    // goroutine record; older ones were published before it.
    started = sched.allg.load(std::memory_order_acquire);
  }
  const std::int64_t now = nanotime();
  std::vector<grec> recs;
  std::vector<std::uintptr_t> pcs;
  auto read = [&](G* g) {
    grec r;
    if (read_g(g, self, self_fp, now, r, pcs)) recs.push_back(std::move(r));
  };
  for (std::size_t c = 0; c < chunks.size(); ++c) {
    const std::size_t used = c + 1 == chunks.size() ? last_used : g_chunk_size;
    for (std::size_t i = 0; i < used; ++i) read(&chunks[c][i]);
  }
  for (G* g = started; g != nullptr; g = g->allg_next) read(g);
  std::sort(recs.begin(), recs.end(), [](const grec& a, const grec& b) { return a.id < b.id; });

  std::vector<group> groups;
  std::unordered_map<std::string, std::size_t> index;
  for (std::size_t i = 0; i < recs.size(); ++i) {
    auto [it, fresh] = index.try_emplace(fold_key(recs[i], pcs), groups.size());
    if (fresh) groups.push_back(group{{}, i, recs[i].since, recs[i].since});
    group& gr = groups[it->second];
    gr.ids.push_back(recs[i].id);
    gr.min_since = std::min(gr.min_since, recs[i].since);
    gr.max_since = std::max(gr.max_since, recs[i].since);
  }

  for (const group& gr : groups) {
    const grec& r = recs[gr.first];
    if (gr.ids.size() == 1) {
      out += "goroutine " + std::to_string(r.id);
      if (r.name != nullptr && r.name[0] != '\0') out += std::string(" \"") + r.name + "\"";
    } else {
      out += std::to_string(gr.ids.size()) + " goroutines";
    }
    out += " [" + r.label;
    if (gr.max_since != 0 && gr.min_since != 0) {
      out += ", ";
      // The longest wait is the earliest start.
      append_duration(out, std::max<std::int64_t>(0, now - gr.max_since));
      if (gr.min_since != gr.max_since) {
        out += "..";
        append_duration(out, std::max<std::int64_t>(0, now - gr.min_since));
      }
    }
    out += "]";
    if (gr.ids.size() > 1) {
      out += " (ids";
      for (std::size_t k = 0; k < gr.ids.size() && k < max_listed_ids; ++k)
        out += " " + std::to_string(gr.ids[k]);
      if (gr.ids.size() > max_listed_ids) out += " ... " + std::to_string(gr.ids.back());
      out += ")";
    }
    out += ":\n";
    out += r.note;
    for (std::size_t k = 0; k < r.pc_count; ++k) {
      out += symbolize(pcs[r.pc_begin + k]);
      out += '\n';
    }
    out += "created at ";
    out += r.file != nullptr ? r.file : "?";
    out += ":" + std::to_string(r.line);
    if (r.func != nullptr && r.func[0] != '\0') {
      out += " in ";
      out += r.func;
    }
    out += "\n\n";
  }
}

}  // namespace

void append_dump(std::string& out) {
  G* self = current_g();
  if (self == nullptr) {
    dump_from(out, nullptr, 0);
    return;
  }
  // On a goroutine: libdw needs more stack than a goroutine has (64 KiB by
  // default), so a helper thread formats while this goroutine waits, its
  // stack still and walkable from here.
  const auto fp = reinterpret_cast<std::uintptr_t>(__builtin_frame_address(0));
  try {
    std::thread helper([&] { dump_from(out, self, fp); });
    helper.join();
  } catch (const std::system_error&) {
    out += "(cannot start a thread to format the goroutine dump)\n";
  }
}

}  // namespace goro::detail

namespace goro {

void dump(std::ostream& os) {
  std::string text;
  detail::append_dump(text);
  os << text;
}

std::int64_t sysmon_retakes() noexcept {
  return detail::sched.sysmon_retakes.load(std::memory_order_relaxed);
}

}  // namespace goro
