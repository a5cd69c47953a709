// Fatal reports; see fault.hpp. Everything reachable from the signal handler
// is async-signal-safe: it formats into a stack buffer and uses write(2).
#include "runtime/fault.hpp"

#include <cxxabi.h>
#include <errno.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <memory>
#include <string>

#include "debug/dump.hpp"
#include "goro/panic.hpp"
#include "runtime/sched.hpp"

namespace goro::detail {

goro::panic_handler current_panic_handler() noexcept;

namespace {

// A fixed buffer formatter usable inside a signal handler.
class out {
 public:
  out& str(const char* s) noexcept {
    while (s != nullptr && *s != '\0' && len_ < sizeof(buf_)) buf_[len_++] = *s++;
    return *this;
  }
  out& num(unsigned long long v) noexcept {
    char tmp[24];
    int n = 0;
    do {
      tmp[n++] = static_cast<char>('0' + v % 10);
      v /= 10;
    } while (v != 0);
    while (n > 0 && len_ < sizeof(buf_)) buf_[len_++] = tmp[--n];
    return *this;
  }
  void flush() noexcept {
    std::size_t off = 0;
    while (off < len_) {
      ssize_t w = ::write(2, buf_ + off, len_ - off);
      if (w <= 0) break;
      off += static_cast<std::size_t>(w);
    }
    len_ = 0;
  }

 private:
  char buf_[2048];
  std::size_t len_ = 0;
};

void describe_goroutine(out& o, G* g, const char* state) noexcept {
  o.str("goroutine ").num(g->id);
  if (g->has_name()) o.str(" \"").str(g->display_name()).str("\"");
  o.str(" [").str(state).str("]:\n");
  o.str("\tcreated at ").str(g->site.file_name()).str(":").num(g->site.line());
  if (g->site.function_name() != nullptr && g->site.function_name()[0] != '\0')
    o.str(" in ").str(g->site.function_name());
  o.str("\n");
}

std::atomic<bool> handler_installed{false};
struct sigaction previous_segv;
struct sigaction previous_bus;

void on_fault(int sig, siginfo_t* info, void* uctx) {
  M* m = current_m();
  G* g = m != nullptr ? m->curg : nullptr;
  if (g != nullptr && g->stack_lo != nullptr) {
    const char* addr = static_cast<const char*>(info->si_addr);
    if (addr < g->stack_lo && addr >= g->stack_lo - guard_bytes - canary_bytes)
      fatal_goroutine_stack_overflow(g);
  }
  // Not ours: hand it to the previous handler, or die the default way.
  const struct sigaction& prev = sig == SIGBUS ? previous_bus : previous_segv;
  if ((prev.sa_flags & SA_SIGINFO) != 0 && prev.sa_sigaction != nullptr) {
    prev.sa_sigaction(sig, info, uctx);
    return;
  }
  if (prev.sa_handler != SIG_DFL && prev.sa_handler != SIG_IGN && prev.sa_handler != nullptr) {
    prev.sa_handler(sig);
    return;
  }
  signal(sig, SIG_DFL);  // returning re-executes the fault, now fatal
}

}  // namespace

void install_fault_handler() noexcept {
  bool expected = false;
  if (!handler_installed.compare_exchange_strong(expected, true)) return;
  struct sigaction sa;
  std::memset(&sa, 0, sizeof(sa));
  sa.sa_sigaction = &on_fault;
  sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGSEGV, &sa, &previous_segv);
  sigaction(SIGBUS, &sa, &previous_bus);
}

void* install_alt_stack() noexcept {
  const std::size_t size = 64 * 1024;
  void* mem = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (mem == MAP_FAILED) return nullptr;
  stack_t st{};
  st.ss_sp = mem;
  st.ss_size = size;
  st.ss_flags = 0;
  if (sigaltstack(&st, nullptr) != 0) {
    munmap(mem, size);
    return nullptr;
  }
  return mem;
}

void remove_alt_stack(void* alt) noexcept {
  if (alt == nullptr) return;
  stack_t st{};
  st.ss_flags = SS_DISABLE;
  sigaltstack(&st, nullptr);
  munmap(alt, 64 * 1024);
}

[[noreturn]] void fatal_goroutine_stack_overflow(G* g) noexcept {
  out o;
  o.str("runtime: goroutine ")
      .num(g->id)
      .str(" stack exceeds its ")
      .num(static_cast<unsigned long long>(g->stack_hi - g->stack_lo))
      .str("-byte limit\nfatal error: stack overflow\n\n");
  describe_goroutine(o, g, "running");
  o.flush();
  exit_now(2);
}

[[noreturn]] void exit_now(int code) noexcept {
  for (;;) ::syscall(SYS_exit_group, code);
}

void write_all(int fd, const std::string& s) noexcept {
  std::size_t off = 0;
  while (off < s.size()) {
    const ssize_t w = ::write(fd, s.data() + off, s.size() - off);
    if (w <= 0) {
      if (w < 0 && errno == EINTR) continue;
      return;
    }
    off += static_cast<std::size_t>(w);
  }
}

[[noreturn]] void fatal_report(const std::string& header, G* /*focus*/) noexcept {
  // Only the first fatal report is printed: others wait for the exit.
  static std::atomic<bool> reporting{false};
  if (reporting.exchange(true, std::memory_order_acq_rel)) {
    for (;;) pause();
  }
  std::string text;
  try {
    text = header;
    append_dump(text);
  } catch (...) {
    // Out of memory formatting the dump: the header alone, as it is.
    write_all(2, header);
    write_all(2, "runtime: out of memory formatting the goroutine dump\n");
    exit_now(2);
  }
  if (goro::panic_handler h = current_panic_handler()) {
    try {
      h(text);
    } catch (...) {
    }
  } else {
    write_all(2, text);
  }
  exit_now(2);
}

[[noreturn]] void fatal_escaped_exception(G* g) noexcept {
  std::string what = "(not a std::exception)";
  const char* mangled = nullptr;
  if (std::type_info* t = abi::__cxa_current_exception_type()) mangled = t->name();
  try {
    throw;
  } catch (const std::exception& e) {
    what = e.what();
  } catch (...) {
  }
  std::string type = mangled != nullptr ? mangled : "unknown";
  if (mangled != nullptr) {
    int status = 0;
    std::unique_ptr<char, void (*)(void*)> d(
        abi::__cxa_demangle(mangled, nullptr, nullptr, &status), std::free);
    if (status == 0 && d) type = d.get();
  }
  std::string header = "panic: " + what + "\n\t(exception of type " + type + " escaped goroutine " +
                       std::to_string(g->id);
  if (g->has_name()) header += std::string(" \"") + g->display_name() + "\"";
  header += ", created at ";
  header += g->site.file_name() != nullptr ? g->site.file_name() : "?";
  header += ":" + std::to_string(g->site.line()) + ")\n\n";
  fatal_report(header, g);
}

[[noreturn]] void fatal_error(const char* msg) noexcept {
  std::string header = "fatal error: ";
  header += msg;
  header += "\n\n";
  fatal_report(header, current_g());
}

}  // namespace goro::detail

namespace goro {

namespace {
std::atomic<panic_handler> the_panic_handler{nullptr};
}

panic_handler set_panic_handler(panic_handler h) noexcept {
  // acq_rel pairs with the acquire load in current_panic_handler.
  return the_panic_handler.exchange(h, std::memory_order_acq_rel);
}

}  // namespace goro

namespace goro::detail {

goro::panic_handler current_panic_handler() noexcept {
  return goro::the_panic_handler.load(std::memory_order_acquire);
}

}  // namespace goro::detail
