// The per-layer precision plan of a policy: the dtype of every layer's
// input, weights, accumulator and output, as a printable table.
#pragma once
#include <string>

#include "model/unet.h"
#include "precision/policy.h"

namespace mixseg {

std::string precision_plan(const UNet& net, Policy policy);

}  // namespace mixseg
