// cortex::Error and the checking macro every public function uses.
#pragma once
#include <sstream>
#include <stdexcept>
#include <string>

namespace cortex {

// The one exception type of the project. Messages name the op or file, what was expected and what
// was found; the CLI prints what() on one line and exits non-zero.
class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& msg) : std::runtime_error(msg) {}
};

namespace detail {
template <class... Args>
std::string cat(const Args&... args) {
  std::ostringstream os;
  (os << ... << args);
  return os.str();
}
}  // namespace detail

// Throws cortex::Error(cat(args...)) when cond is false.
#define CORTEX_CHECK(cond, ...)                                      \
  do {                                                               \
    if (!(cond)) throw ::cortex::Error(::cortex::detail::cat(__VA_ARGS__)); \
  } while (0)

}  // namespace cortex
