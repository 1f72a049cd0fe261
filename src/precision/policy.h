// Precision policies (a runtime choice): what dtype activations and the
// conv weights are stored in, whether f32 master weights and dynamic loss
// scaling are used, and whether the policy can train. BatchNorm statistics
// and affine math, the loss, the optimizer state and the loss scale are f32
// in every policy.
#pragma once
#include <string>
#include <string_view>

#include "core/dtype.h"

namespace mixseg {

enum class Policy { fp32, tf32, mixed_fp16, mixed_bf16, fp16, bf16 };

struct PolicyInfo {
  Policy policy;
  std::string_view name;
  DType storage;      // activations and the weights the convs read
  bool trainable;     // fp16/bf16 are inference-only
  bool masters;       // f32 master weights with 16-bit compute copies
  bool loss_scaling;  // dynamic loss scaling (mixed_fp16 only)
  std::string_view conv_math;
};

const PolicyInfo& policy_info(Policy p);
// Parses a policy name; the error lists the valid names (and says int8 needs a quantized model).
Policy parse_policy(std::string_view name);
std::string policy_names();
// Throws (naming the policy) unless it can train.
void check_trainable(Policy p);

}  // namespace mixseg
