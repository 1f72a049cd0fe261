// mixseg::Error: every failure mixseg reports (bad input, bad checkpoint,
// unsupported setting) is thrown as this, with a message naming what is wrong.
#pragma once
#include <stdexcept>

namespace mixseg {

struct Error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

}  // namespace mixseg
