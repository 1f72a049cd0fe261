// Shared option parsing for the subcommands.
#include <charconv>

#include "cli/commands.h"
#include "core/error.h"

namespace mixseg::cli {

std::pair<int, int> parse_size(const std::string& s) {
  const auto x = s.find('x');
  int h = 0, w = 0;
  if (x != std::string::npos) {
    const auto r1 = std::from_chars(s.data(), s.data() + x, h);
    const auto r2 = std::from_chars(s.data() + x + 1, s.data() + s.size(), w);
    if (r1.ec == std::errc() && r1.ptr == s.data() + x && r2.ec == std::errc() && r2.ptr == s.data() + s.size() && h > 0 &&
        w > 0)
      return {h, w};
  }
  fail("--size '{}' is not of the form HxW (e.g. 512x256)", s);
}

}  // namespace mixseg::cli
