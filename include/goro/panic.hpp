// goro/panic.hpp: the exception goro throws where Go would panic.
//
// Go reports misuse of its concurrency primitives with a panic carrying a
// fixed message ("sync: negative WaitGroup counter", "close of closed
// channel", ...). goro throws goro::panic_error with exactly the same text, so
// the words a Go programmer knows are the words they see. Like any exception,
// a panic_error that escapes a goroutine ends the process (see goroutine.hpp).
//
// How the process ends: an exception escaping a goroutine prints Go's
//
//   panic: <what()>
//           (exception of type <demangled type> escaped goroutine <id>, created at <file:line>)
//
// followed by the goroutine dump (goro/debug.hpp), and exits with status 2.
// Fatal errors ("fatal error: all goroutines are asleep - deadlock!",
// "fatal error: sync: unlock of unlocked mutex") end the same way. A panic
// handler installed with set_panic_handler receives that whole report instead
// of stderr, e.g. to write it to a file; the process still exits with status
// 2 when the handler returns. (A stack overflow is reported from a signal
// handler and always goes to stderr, without the dump.)
//
// Memory ordering: set_panic_handler is meant to be called before goro::run;
// a handler installed while goroutines run is seen by later panics only.
#pragma once

#include <stdexcept>
#include <string>
#include <string_view>

namespace goro {

/// Thrown where Go panics on misuse. what() is Go's own message.
class panic_error : public std::logic_error {
 public:
  using std::logic_error::logic_error;
};

/// Receives the complete report of a panic or fatal error. Called once, on
/// the thread that failed, while the rest of the program may still run; it
/// must not use goro primitives. Exceptions it throws are ignored.
using panic_handler = void (*)(std::string_view report);

/// Installs h (nullptr: the default, stderr) and returns the previous one.
panic_handler set_panic_handler(panic_handler h) noexcept;

}  // namespace goro
