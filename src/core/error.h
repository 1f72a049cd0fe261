// Errors: one exception type whose message names what went wrong (the file,
// the value, the expected and actual), and a helper to throw it formatted.
#pragma once
#include <fmt/format.h>

#include <string>

#include "mixseg/error.h"

namespace mixseg {

template <class... Args>
[[noreturn]] void fail(fmt::format_string<Args...> f, Args&&... args) {
  throw Error(fmt::format(f, std::forward<Args>(args)...));
}

}  // namespace mixseg
