// goro/panic.hpp: the exception goro throws where Go would panic.
//
// Go reports misuse of its concurrency primitives with a panic carrying a
// fixed message ("sync: negative WaitGroup counter", "close of closed
// channel", ...). goro throws goro::panic_error with exactly the same text, so
// the words a Go programmer knows are the words they see. Like any exception,
// a panic_error that escapes a goroutine ends the process (see goroutine.hpp).
#pragma once

#include <stdexcept>
#include <string>

namespace goro {

/// Thrown where Go panics on misuse. what() is Go's own message.
class panic_error : public std::logic_error {
 public:
  using std::logic_error::logic_error;
};

}  // namespace goro
