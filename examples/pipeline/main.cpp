// goro-pipeline: a word-frequency pipeline built on goro::pipeline.
//
//   goro-pipeline [--input FILE | --input -] [--workers N] [--top K]
//                 [--repeat R] [--progress]
//
// Reads lines (a file, standard input, or by default a built-in sample
// repeated R times), runs them through two parallel stages (tokenize: split
// and normalize words; count: per-line word counts) into a sink that merges
// the counts, and prints the totals and the K most frequent words.
//
// Shows what a goro program looks like end to end:
//  - Standard input is read by a plain std::thread that feeds a goro channel
//    (goro channels work between threads and goroutines), so a read() that
//    blocks never holds one of the runtime's processors.
//  - Ctrl-C (SIGINT) or SIGTERM cancels the pipeline's context from a signal
//    thread; every stage stops, and the program reports what it finished
//    and exits with 130.
//  - Bad input (a line that is not valid UTF-8, a file that cannot be read)
//    is the pipeline's first error: it cancels the other stages and the
//    program exits 1 with a message naming the line.
//  - Progress goes to stderr every 100 ms (a goro::ticker), when stderr is a
//    terminal or --progress is given.
//
// Exit codes: 0 done, 1 bad input, 2 usage, 130 interrupted.
#include <goro/goro.hpp>

#include <pthread.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <map>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

namespace {

using namespace std::chrono_literals;
using steady = std::chrono::steady_clock;

constexpr int exit_ok = 0, exit_bad_input = 1, exit_usage = 2, exit_interrupted = 130;

// Built-in sample, written for this example.
constexpr std::string_view sample_text =
    R"(A goroutine is a function that runs on its own, beside the others.
Channels carry values from one goroutine to another; a send waits for a receiver.
Select waits on several channels at once and takes the first that is ready.
A context carries a deadline and a cancel signal to every goroutine that needs them.
When the context is cancelled every stage of the pipeline stops and returns.
Workers take jobs from a channel, do the work, and send results to another channel.
The scheduler runs many goroutines on few threads and moves them when they block.
Errors travel on their own path, and the first one cancels the rest of the work.
Timers and tickers are channels too, so a select can wait for time as for data.
Übung macht den Meister: non-ASCII words are counted like any other word.)";

struct options {
  std::string input;  // "" = built-in sample, "-" = stdin, else a file
  int workers = 4;
  int top = 10;
  long repeat = 2000;
  bool progress = false;
};

[[noreturn]] void usage(const char* msg) {
  if (msg != nullptr) std::fprintf(stderr, "goro-pipeline: %s\n", msg);
  std::fprintf(stderr,
               "usage: goro-pipeline [--input FILE|-] [--workers N] [--top K] [--repeat R] "
               "[--progress]\n");
  std::exit(exit_usage);
}

long parse_count(const char* flag, const char* v, long lo, long hi) {
  char* end = nullptr;
  errno = 0;
  const long n = std::strtol(v, &end, 10);
  if (errno != 0 || end == v || *end != '\0' || n < lo || n > hi) {
    std::string m = std::string(flag) + " wants an integer in [" + std::to_string(lo) + ", " +
                    std::to_string(hi) + "], got '" + v + "'";
    usage(m.c_str());
  }
  return n;
}

options parse_args(int argc, char** argv) {
  options o;
  for (int i = 1; i < argc; ++i) {
    const std::string_view a = argv[i];
    auto value = [&]() -> const char* {
      if (i + 1 >= argc) usage((std::string(a) + " needs a value").c_str());
      return argv[++i];
    };
    if (a == "--input") {
      o.input = value();
    } else if (a == "--workers") {
      o.workers = static_cast<int>(parse_count("--workers", value(), 1, 256));
    } else if (a == "--top") {
      o.top = static_cast<int>(parse_count("--top", value(), 0, 1000));
    } else if (a == "--repeat") {
      o.repeat = parse_count("--repeat", value(), 1, 100000000);
    } else if (a == "--progress") {
      o.progress = true;
    } else if (a == "-h" || a == "--help") {
      usage(nullptr);
    } else {
      usage((std::string("unknown argument '") + std::string(a) + "'").c_str());
    }
  }
  return o;
}

// --- input --------------------------------------------------------------------

struct line {
  long number = 0;  // 1-based
  std::string text;
};

class bad_input : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// The offset of the first byte that breaks UTF-8 (RFC 3629: no overlongs, no
// surrogates, at most U+10FFFF), or npos.
std::size_t invalid_utf8_at(std::string_view s) {
  std::size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    std::size_t len = 0;
    unsigned lo = 0x80, hi = 0xBF;  // allowed range of the second byte
    if (c < 0x80) {
      ++i;
      continue;
    } else if (c >= 0xC2 && c <= 0xDF) {
      len = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
      len = 3;
      if (c == 0xE0) lo = 0xA0;
      if (c == 0xED) hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
      len = 4;
      if (c == 0xF0) lo = 0x90;
      if (c == 0xF4) hi = 0x8F;
    } else {
      return i;
    }
    if (i + len > s.size()) return i;
    for (std::size_t k = 1; k < len; ++k) {
      const auto b = static_cast<unsigned char>(s[i + k]);
      if (k == 1 ? (b < lo || b > hi) : (b < 0x80 || b > 0xBF)) return i;
    }
    i += len;
  }
  return std::string_view::npos;
}

void check_line(const line& l) {
  const std::size_t at = invalid_utf8_at(l.text);
  if (at == std::string_view::npos) return;
  char byte[8];
  std::snprintf(byte, sizeof byte, "0x%02x", static_cast<unsigned char>(l.text[at]));
  throw bad_input("line " + std::to_string(l.number) + ": invalid UTF-8 (byte " + byte +
                  " at column " + std::to_string(at + 1) + ")");
}

// --- the stages -----------------------------------------------------------------

using words = std::vector<std::string>;
using counts = std::unordered_map<std::string, long>;

// Lowercases ASCII letters; keeps letters, digits, apostrophes inside words
// and every non-ASCII byte (so UTF-8 words stay whole).
words tokenize(const line& l) {
  words out;
  std::string w;
  auto flush = [&] {
    while (!w.empty() && w.back() == '\'') w.pop_back();
    if (!w.empty()) out.push_back(std::move(w));
    w.clear();
  };
  for (const char ch : l.text) {
    const auto c = static_cast<unsigned char>(ch);
    if (c >= 0x80 || std::isalnum(c) != 0) {
      w.push_back(static_cast<char>(c < 0x80 ? std::tolower(c) : c));
    } else if (c == '\'' && !w.empty()) {
      w.push_back('\'');
    } else {
      flush();
    }
  }
  flush();
  return out;
}

counts count(words ws) {
  counts c;
  for (std::string& w : ws) ++c[std::move(w)];
  return c;
}

struct totals {
  std::atomic<long> lines{0};
  std::atomic<long> words{0};
  std::map<std::string, long> freq;  // only the sink goroutine writes it
};

// --- signals ----------------------------------------------------------------------

// Blocks SIGINT and SIGTERM (and SIGUSR2, used to stop the watcher) in this
// thread and every thread started after, so only the watcher's sigwait sees
// them. Called before goro::run starts the runtime's threads.
sigset_t block_signals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGUSR2);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  return set;
}

void print_summary(const totals& t, const options& o, steady::duration took, bool interrupted) {
  const double secs = std::chrono::duration<double>(took).count();
  std::printf("%s%ld lines, %ld words, %zu distinct, in %.3f s with %d workers per stage\n",
              interrupted ? "interrupted: processed " : "", t.lines.load(), t.words.load(),
              t.freq.size(), secs, o.workers);
  if (interrupted || o.top == 0) return;
  std::vector<std::pair<std::string, long>> v(t.freq.begin(), t.freq.end());
  const auto k = std::min<std::size_t>(static_cast<std::size_t>(o.top), v.size());
  std::partial_sort(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(k), v.end(),
                    [](const auto& a, const auto& b) {
                      return a.second != b.second ? a.second > b.second : a.first < b.first;
                    });
  std::printf("top %zu:\n", k);
  for (std::size_t i = 0; i < k; ++i) std::printf("  %8ld  %s\n", v[i].second, v[i].first.c_str());
}

int run_pipeline(const options& o, const sigset_t& signals) {
  auto [root, interrupt] = goro::with_cancel(goro::background());
  std::atomic<bool> interrupted{false};

  // The signal watcher: a plain thread; cancelling is safe from any thread.
  std::thread watcher([&, signals, interrupt = interrupt] {
    for (;;) {
      int sig = 0;
      if (sigwait(&signals, &sig) != 0) continue;
      if (sig == SIGUSR2) return;  // the program is done
      interrupted = true;
      interrupt();
      return;
    }
  });
  struct stop_watcher {
    std::thread& t;
    ~stop_watcher() {
      pthread_kill(t.native_handle(), SIGUSR2);
      t.join();
    }
  } watcher_guard{watcher};

  // Standard input: a plain thread that blocks in read and feeds a channel.
  goro::chan<std::string> stdin_lines = goro::make_chan<std::string>(256);
  if (o.input == "-") {
    std::thread([stdin_lines] {
      std::string s;
      while (std::getline(std::cin, s)) {
        if (stdin_lines.try_send(std::move(s)) == goro::chan_status::ok) continue;
        stdin_lines.send(std::move(s));
      }
      stdin_lines.close();
    }).detach();  // may stay blocked in read() after an interrupt: the process exits
  }

  totals t;
  const auto start = steady::now();
  goro::pipeline p(root);

  auto source = p.source<line>(
      "read",
      [&](auto emit) {
        long n = 0;
        auto send = [&](std::string text) {
          line l{++n, std::move(text)};
          check_line(l);
          return emit(std::move(l));
        };
        if (o.input.empty()) {
          for (long r = 0; r < o.repeat; ++r) {
            std::size_t pos = 0;
            while (pos <= sample_text.size()) {
              std::size_t nl = sample_text.find('\n', pos);
              if (nl == std::string_view::npos) nl = sample_text.size();
              if (!send(std::string(sample_text.substr(pos, nl - pos)))) return;
              pos = nl + 1;
            }
          }
        } else if (o.input == "-") {
          std::error_code ec;
          while (std::optional<std::string> s = stdin_lines.recv(p.ctx(), ec))
            if (!send(std::move(*s))) return;
        } else {
          std::ifstream in(o.input, std::ios::binary);
          if (!in) throw bad_input("cannot open '" + o.input + "': " + std::strerror(errno));
          for (std::string s; std::getline(in, s);)
            if (!send(std::move(s))) return;
          if (in.bad()) throw bad_input("reading '" + o.input + "' failed");
        }
      },
      64);
  auto tokens = p.map(
      "tokenize", source, o.workers, [](line l) { return tokenize(l); }, 64);
  auto per_line = p.map(
      "count", tokens, o.workers, [](words ws) { return count(std::move(ws)); }, 64);
  p.sink("merge", per_line, [&](counts c) {
    long n = 0;
    for (auto& [w, k] : c) {
      t.freq[w] += k;
      n += k;
    }
    t.words.fetch_add(n, std::memory_order_relaxed);
    t.lines.fetch_add(1, std::memory_order_relaxed);
  });

  // Progress: a ticker until the pipeline is done.
  const bool show = o.progress || isatty(STDERR_FILENO) == 1;
  goro::wait_group progress_done;
  auto [progress_ctx, stop_progress] = goro::with_cancel(goro::background());
  if (show) {
    progress_done.add(1);
    goro::go([&, progress_ctx = progress_ctx] {
      goro::ticker tick(100ms);
      const bool tty = isatty(STDERR_FILENO) == 1;
      for (bool more = true; more;) {
        goro::select(goro::on_recv(tick.c()), goro::on_done(progress_ctx, [&] { more = false; }));
        std::fprintf(stderr,
                     tty ? "\r  %ld lines, %ld words%s" : "progress: %ld lines, %ld words%s\n",
                     t.lines.load(), t.words.load(), !more && tty ? "\n" : "");
      }
      progress_done.done();
    });
  }

  int code = exit_ok;
  try {
    if (p.wait()) code = exit_interrupted;  // cancelled from outside: the signal
  } catch (const goro::pipeline_error& e) {
    try {
      std::rethrow_if_nested(e);
    } catch (const bad_input& bad) {
      stop_progress();
      progress_done.wait();
      std::fprintf(stderr, "goro-pipeline: bad input: %s\n", bad.what());
      return exit_bad_input;
    } catch (...) {
    }
    throw;
  }
  stop_progress();
  progress_done.wait();
  if (interrupted.load()) code = exit_interrupted;
  print_summary(t, o, steady::now() - start, code == exit_interrupted);
  return code;
}

}  // namespace

int main(int argc, char** argv) {
  const options o = parse_args(argc, argv);
  const sigset_t signals = block_signals();
  return goro::run([&] { return run_pipeline(o, signals); });
}
