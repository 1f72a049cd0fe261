// mixseg::Error: every failure mixseg reports (bad input, bad checkpoint,
// unsupported setting) is thrown as this, with a message naming what is wrong.
#pragma once
#include <stdexcept>

namespace mixseg {

struct Error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// A network's workspace did not fit the device's memory (the message says
// how much it needed); a benchmark sweep skips such a configuration.
struct OutOfMemory : Error {
  using Error::Error;
};

}  // namespace mixseg
