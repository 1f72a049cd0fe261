// Calibration (calibrate.h).
#include "quant/calibrate.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "data/loader.h"

namespace mixseg {

namespace {

// Values sampled per tensor and image for percentiles (evenly strided, the
// start shifted per image); min and max always see every value.
constexpr size_t kSamplesPerImage = 4096;

double quantile(std::vector<float>& v, double q) {
  if (v.empty()) return 0;
  const size_t i = size_t(std::clamp(q, 0.0, 1.0) * double(v.size() - 1) + 0.5);
  std::nth_element(v.begin(), v.begin() + long(i), v.end());
  return v[i];
}

}  // namespace

Calibration calibrate(const UNet& net, Weights& weights, Backend& backend, const Dataset& data,
                      const CalibrationConfig& cfg) {
  if (cfg.method != "minmax" && cfg.method != "percentile")
    fail("calibration method must be minmax or percentile, got {}", cfg.method);
  if (cfg.method == "percentile" && !(cfg.percentile > 50 && cfg.percentile <= 100))
    fail("calibration percentile must be in (50, 100], got {}", cfg.percentile);
  if (data.size() == 0) fail("calibration needs at least one image");
  if (net.config.in_channels != data.channels)
    fail("the model takes {} input channels but the calibration images have {}", net.config.in_channels, data.channels);
  std::vector<int> observed;
  for (const Layer& l : net.layers)  // the transposed upsampling's output too (deploy.h: no BatchNorm after it)
    if (l.kind == LayerKind::bn_relu || l.kind == LayerKind::depth_to_space) observed.push_back(l.out);
  observed.push_back(net.logits);

  Calibration cal;
  cal.ranges.assign(net.values.size(), {});
  cal.stats.assign(net.values.size(), {});
  std::vector<std::vector<float>> samples(net.values.size());
  for (int v : observed) cal.stats[size_t(v)] = {INFINITY, -INFINITY, {}, 0, 0};

  std::unique_ptr<Workspace> ws;
  std::vector<float> input, host;
  const int batch = std::max(1, cfg.batch);
  for (size_t first = 0; first < data.size(); first += size_t(batch)) {
    const int b = int(std::min<size_t>(size_t(batch), data.size() - first));
    if (!ws || ws->batch != b) {
      ws = make_workspace(net, backend, Policy::fp32, b, data.h, data.w, false);
      upload_weights(net, weights, *ws);
    }
    input.resize(size_t(b) * data.image_values());
    data.input_f32(first, size_t(b), input.data());
    set_input(net, *ws, input.data());
    forward(net, *ws);
    for (int v : observed) {
      const Tensor& t = ws->act[size_t(v)];
      if (!t.data) fail("calibration: value {} is not kept by the inference workspace", net.values[size_t(v)].name);
      host.resize(t.numel());
      backend.copy_out(host.data(), t.data, t.bytes());
      ValueStats& s = cal.stats[size_t(v)];
      for (float x : host) {
        if (!std::isfinite(x)) fail("calibration: {} has a non-finite value (is the checkpoint diverged?)", net.values[size_t(v)].name);
        s.min = std::min(s.min, double(x));
        s.max = std::max(s.max, double(x));
      }
      const size_t per_image = host.size() / size_t(b);
      const size_t stride = std::max<size_t>(1, per_image / kSamplesPerImage);
      for (int i = 0; i < b; ++i)
        for (size_t j = (first + size_t(i)) % stride; j < per_image; j += stride)
          samples[size_t(v)].push_back(host[size_t(i) * per_image + j]);
    }
  }
  for (int v : observed) {
    ValueStats& s = cal.stats[size_t(v)];
    std::vector<float>& smp = samples[size_t(v)];
    s.samples = smp.size();
    s.range = {s.min, s.max};
    if (cfg.method == "percentile") {
      const double hi = quantile(smp, cfg.percentile / 100.0);
      const double lo = quantile(smp, 1.0 - cfg.percentile / 100.0);
      s.range = {lo, hi};
    }
    size_t out = 0;
    for (float x : smp) out += x < s.range.lo || x > s.range.hi;
    s.clipped = smp.empty() ? 0 : double(out) / double(smp.size());
    cal.ranges[size_t(v)] = s.range;
  }
  cal.images = data.size();
  cal.description = cfg.method == "percentile"
                        ? fmt::format("percentile {} over {} images", cfg.percentile, data.size())
                        : fmt::format("minmax over {} images", data.size());
  return cal;
}

}  // namespace mixseg
