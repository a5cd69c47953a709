// goro/error.hpp: goro's error values (Go's context.Canceled and
// context.DeadlineExceeded) as std::error_code.
//
// Go separates panics (misuse: goro::panic_error, see panic.hpp) from error
// values that a function returns and the caller handles. goro's error values
// are std::error_codes in goro's own category, so they compare, print and
// travel like any other:
//
//   if (std::error_code ec = jobs.send(ctx, j)) {
//     if (ec == goro::errc::deadline_exceeded) ...   // what Go writes as
//     return ec;                                      // errors.Is(err, context.DeadlineExceeded)
//   }
//
// message() is Go's text ("context canceled", "context deadline exceeded").
// Errors and memory ordering: none; these are plain values.
#pragma once

#include <system_error>

namespace goro {

enum class errc {
  canceled = 1,           // Go's context.Canceled
  deadline_exceeded = 2,  // Go's context.DeadlineExceeded
};

/// The category of goro's error codes; name() is "goro".
const std::error_category& goro_category() noexcept;

inline std::error_code make_error_code(errc e) noexcept {
  return {static_cast<int>(e), goro_category()};
}

}  // namespace goro

template <>
struct std::is_error_code_enum<goro::errc> : std::true_type {};
