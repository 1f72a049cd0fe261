// Accuracy parity (parity.h).
#include "train/parity.h"

#include <algorithm>

#include "core/error.h"
#include "model/deploy.h"
#include "quant/calibrate.h"
#include "quant/engine.h"

namespace mixseg {

std::vector<ParityRow> run_parity(const ParityConfig& cfg, const Dataset& data, Backend& backend,
                                  const std::function<void(const ParityRow&)>& on_row) {
  if (cfg.policies.empty() || cfg.seeds.empty()) fail("parity needs at least one precision and one seed");
  bool has_fp32 = false;
  for (Policy p : cfg.policies) has_fp32 = has_fp32 || p == Policy::fp32;
  if (cfg.int8 && !has_fp32) fail("parity: int8 quantizes the fp32 model, so fp32 must be among the precisions");
  std::vector<ParityRow> rows;
  auto add = [&](ParityRow r) {
    if (on_row) on_row(r);
    rows.push_back(std::move(r));
  };
  for (uint64_t seed : cfg.seeds) {
    auto [train_set, val_set] = split(data, cfg.val_fraction, seed);
    if (val_set.size() == 0) fail("parity: the validation split is empty (more images or a larger --val-fraction)");
    for (Policy p : cfg.policies) {
      TrainConfig tc = cfg.train;
      tc.policy = p;
      tc.seed = seed;
      tc.out_dir.clear();
      const TrainResult r = train(tc, train_set, val_set, backend);
      const UNet net = build_unet(tc.model);
      Weights w = r.last.weights;
      add(ParityRow{seed, std::string(policy_info(p).name), evaluate(net, w, backend, p, val_set, tc.batch)});
      if (cfg.int8 && p == Policy::fp32) {
        std::vector<size_t> idx;  // calibration: up to 200 training images, evenly spread
        const size_t n = std::min<size_t>(200, train_set.size());
        for (size_t i = 0; i < n; ++i) idx.push_back(i * train_set.size() / n);
        const Calibration cal = calibrate(net, w, backend, subset(train_set, idx), {});
        const QModel q = quantize_unet(fold_unet(net, r.last.weights), cal.ranges, data.h, data.w, cal.description);
        add(ParityRow{seed, "int8", evaluate_int8(q, val_set, tc.batch)});
      }
    }
  }
  return rows;
}

}  // namespace mixseg
