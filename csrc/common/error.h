// pyruntime: internal error type. Errors are exceptions inside the C++ core and become
// status codes + a last-error message at the C boundary (csrc/capi) and Python exceptions in the
// bindings. Every message names what is wrong (section, tensor, node, shape).
#pragma once

#include <cstdint>
#include <sstream>
#include <stdexcept>
#include <string>

#include "pyruntime.h"

namespace pyrt {

class Error : public std::runtime_error {
 public:
  Error(pyrt_status status, const std::string& message) : std::runtime_error(message), status_(status) {}
  pyrt_status status() const { return status_; }

 private:
  pyrt_status status_;
};

namespace detail {
inline void append(std::ostringstream&) {}
template <typename T, typename... Rest>
void append(std::ostringstream& os, const T& value, const Rest&... rest) {
  os << value;
  append(os, rest...);
}
}  // namespace detail

// Builds a message from any streamable parts: fail(PYRT_BAD_FORMAT, "tensor '", name, "': ...").
template <typename... Parts>
[[noreturn]] void fail(pyrt_status status, const Parts&... parts) {
  std::ostringstream os;
  detail::append(os, parts...);
  throw Error(status, os.str());
}

}  // namespace pyrt

// Checks a condition on untrusted input; on failure throws pyrt::Error with the given status.
#define PYRT_CHECK(cond, status, ...)          \
  do {                                         \
    if (!(cond)) ::pyrt::fail(status, __VA_ARGS__); \
  } while (0)
