// Precision plan table (see plan.h).
#include "precision/plan.h"

#include <fmt/format.h>

namespace mixseg {

std::string precision_plan(const UNet& net, Policy policy) {
  const PolicyInfo& pi = policy_info(policy);
  const std::string t(dtype_name(pi.storage));
  const std::string acc = policy == Policy::tf32 ? "tf32/f32" : "f32";
  std::string s = fmt::format("precision plan for {} (conv math: {}{})\n", pi.name, pi.conv_math,
                              pi.loss_scaling ? "; dynamic loss scaling" : "");
  s += fmt::format("{:<22} {:<15} {:>6} {:>18} {:>9} {:>6}\n", "layer", "op", "input", "weights", "accum", "output");
  for (const Layer& l : net.layers) {
    std::string weights = "-", accum = "-";
    switch (l.kind) {
      case LayerKind::conv:
        weights = pi.masters ? t + " (f32 master)" : t;
        accum = acc;
        break;
      case LayerKind::bn_relu:
        weights = "f32";
        accum = "f32";
        break;
      case LayerKind::upsample: accum = "f32 (bwd)"; break;  // the backward sums each 2x2 block
      default: break;
    }
    s += fmt::format("{:<22} {:<15} {:>6} {:>18} {:>9} {:>6}\n", l.name, layer_kind_name(l.kind), t, weights, accum, t);
  }
  s += fmt::format("{:<22} {:<15} {:>6} {:>18} {:>9} {:>6}\n", "loss", "bce+dice", t, "-", "f32", "f32");
  s += fmt::format("{:<22} {:<15} {:>6} {:>18} {:>9} {:>6}\n", "optimizer", "adam/sgd", "f32", "f32", "f32", "f32");
  if (pi.masters)
    s += fmt::format("weight gradients are f32; the optimizer updates f32 masters and writes {} copies for the convs\n", t);
  return s;
}

}  // namespace mixseg
