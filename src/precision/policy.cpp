// The policy table (see policy.h).
#include "precision/policy.h"

#include <array>

#include "core/error.h"

namespace mixseg {

namespace {
constexpr std::array<PolicyInfo, 6> kPolicies{{
    {Policy::fp32, "fp32", DType::f32, true, false, false, "f32"},
    // TF32 is a tensor-core mode of NVIDIA GPUs; on the CPU it means plain f32.
    {Policy::tf32, "tf32", DType::f32, true, false, false, "tf32 on CUDA, f32 on the CPU"},
    {Policy::mixed_fp16, "mixed_fp16", DType::f16, true, true, true, "f16 in, f32 accumulate"},
    {Policy::mixed_bf16, "mixed_bf16", DType::bf16, true, true, false, "bf16 in, f32 accumulate"},
    {Policy::fp16, "fp16", DType::f16, false, false, false, "f16 in, f32 accumulate"},
    {Policy::bf16, "bf16", DType::bf16, false, false, false, "bf16 in, f32 accumulate"},
}};
}  // namespace

const PolicyInfo& policy_info(Policy p) { return kPolicies.at(size_t(p)); }

std::string policy_names() {
  std::string s;
  for (const auto& p : kPolicies) s += (s.empty() ? "" : ", ") + std::string(p.name);
  return s;
}

void check_trainable(Policy p) {
  if (!policy_info(p).trainable)
    fail("precision '{}' is for inference only; train with fp32, tf32, mixed_fp16 or mixed_bf16", policy_info(p).name);
}

Policy parse_policy(std::string_view name) {
  for (const auto& p : kPolicies)
    if (p.name == name) return p.policy;
  if (name == "int8") fail("precision 'int8' needs a quantized model, which this version cannot make yet");
  fail("unknown precision '{}' (expected one of {})", name, policy_names());
}

}  // namespace mixseg
