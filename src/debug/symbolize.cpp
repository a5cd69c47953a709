// Symbolization for goroutine dumps, with elfutils' libdw (libdwfl).
//
// Why libdw: it is the maintained DWARF reader of the Linux toolchain
// (elfutils, Debian's libdw-dev), reads the ELF symbol tables and DWARF line
// tables of every module mapped in the process (found through
// /proc/self/maps, so shared libraries and PIE work), and demangling is the
// C++ runtime's abi::__cxa_demangle. Function names come from the symbol
// table and need no debug information; file:line needs -g (Debug and
// RelWithDebInfo builds).
//
// The session (Dwfl) is made on first use and kept; modules mapped later
// (dlopen) are picked up by re-reporting when an address is not found.
// Results are cached per pc. Callers serialize (dump.cpp holds dump_lock).
#include <cxxabi.h>
#include <elfutils/libdwfl.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <unordered_map>

#include "debug/dump.hpp"

namespace goro::detail {
namespace {

char* no_debuginfo_path = nullptr;
const Dwfl_Callbacks callbacks = {
    dwfl_linux_proc_find_elf,
    dwfl_standard_find_debuginfo,
    nullptr,
    &no_debuginfo_path,
};

Dwfl* session = nullptr;

void report_modules() {
  if (session == nullptr) session = dwfl_begin(&callbacks);
  if (session == nullptr) return;
  dwfl_report_begin(session);
  dwfl_linux_proc_report(session, getpid());
  dwfl_report_end(session, nullptr, nullptr);
}

std::string demangle(const char* name) {
  int status = 0;
  std::unique_ptr<char, void (*)(void*)> d(abi::__cxa_demangle(name, nullptr, nullptr, &status),
                                           std::free);
  return status == 0 && d ? std::string(d.get()) : std::string(name);
}

std::string lookup(std::uintptr_t pc) {
  // pc is a return address: the call is the instruction before it.
  const Dwarf_Addr addr = pc - 1;
  if (session == nullptr) report_modules();
  Dwfl_Module* mod = session != nullptr ? dwfl_addrmodule(session, addr) : nullptr;
  if (mod == nullptr && session != nullptr) {
    report_modules();  // a module mapped since the last report
    mod = dwfl_addrmodule(session, addr);
  }
  char hex[32];
  std::snprintf(hex, sizeof(hex), "0x%lx", static_cast<unsigned long>(pc));
  if (mod == nullptr) return std::string("?? (") + hex + ")";
  std::string out;
  GElf_Off offset = 0;
  GElf_Sym sym;
  if (const char* name =
          dwfl_module_addrinfo(mod, addr, &offset, &sym, nullptr, nullptr, nullptr)) {
    out = demangle(name);
  } else {
    out = "??";
  }
  int line = 0;
  const char* file = nullptr;
  if (Dwfl_Line* l = dwfl_module_getsrc(mod, addr)) {
    file = dwfl_lineinfo(l, nullptr, &line, nullptr, nullptr, nullptr);
  }
  out += "\n\t";
  if (file != nullptr) {
    out += file;
    out += ':';
    out += std::to_string(line);
  } else {
    const char* modname =
        dwfl_module_info(mod, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr);
    out += modname != nullptr ? modname : "?";
  }
  char off[32];
  std::snprintf(off, sizeof(off), " +0x%lx", static_cast<unsigned long>(offset + 1));
  out += off;
  return out;
}

}  // namespace

const std::string& symbolize(std::uintptr_t pc) {
  static std::unordered_map<std::uintptr_t, std::string> cache;
  auto it = cache.find(pc);
  if (it != cache.end()) return it->second;
  return cache.emplace(pc, lookup(pc)).first->second;
}

}  // namespace goro::detail
