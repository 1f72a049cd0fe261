// Shape printing.
#include "core/tensor.h"

#include <fmt/format.h>

namespace mixseg {

std::string to_string(const Shape& s) { return fmt::format("{}x{}x{}x{}", s.n, s.h, s.w, s.c); }

}  // namespace mixseg
