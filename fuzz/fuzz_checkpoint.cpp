// Fuzz target: a float checkpoint (safetensors with the run's settings in its
// metadata) must load into weights of exactly the size its config asks for,
// or give a mixseg::Error naming the input, never a crash or a huge allocation.
#include <cstddef>
#include <cstdint>
#include <vector>

#include "core/error.h"
#include "train/checkpoint.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    const mixseg::Checkpoint c = mixseg::parse_checkpoint(std::vector<uint8_t>(data, data + size), "fuzz input");
    const mixseg::UNet net = mixseg::build_unet(c.config);
    if (c.weights.params.size() != net.param_numel || c.weights.running.size() != net.running_numel) __builtin_trap();
    if (!c.optimizer_state.m.empty() && c.optimizer_state.m.size() != net.param_numel) __builtin_trap();
  } catch (const mixseg::Error&) {
  }
  return 0;
}
