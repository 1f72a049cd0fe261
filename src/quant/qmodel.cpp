// Building, checking, saving and loading the int8 network (see qmodel.h).
#include "quant/qmodel.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <nlohmann/json.hpp>
#include <numeric>

#include "core/error.h"
#include "quant/kernels_int8.h"
#include "train/safetensors.h"

namespace mixseg {

namespace {

using json = nlohmann::json;

// The smallest real range an activation gets, so that a tensor that was all
// zeros in calibration still has a positive scale.
constexpr double kMinRange = 1e-6;

int8_t saturate_int8(int32_t v) { return int8_t(std::clamp(v, -128, 127)); }

// The largest int32 accumulator value a convolution may reach, less the room
// the requantization's zero-point add needs.
constexpr int64_t kMaxAccumulator = std::numeric_limits<int32_t>::max() - 256;

// The largest magnitude of sum(w * (x - zero point)) + bias over all inputs
// (|x - zero point| <= 255). Every kernel (reference, AVX2, VNNI, AMX) adds
// the same integers in its own order; wrap-around in between cancels in two's
// complement, but the result must fit an int32, and so must the
// requantization's left shift of it and its zero-point add (where TFLite's
// kernels leave overflow undefined). prepare() refuses a model that could
// overflow; quantize_unet clamps its biases so that its own never do.
int64_t accumulator_bound(const int8_t* w, size_t n, int32_t bias) {
  int64_t l1 = 0;
  for (size_t i = 0; i < n; ++i) l1 += std::abs(int32_t(w[i]));
  return 255 * l1 + std::abs(int64_t(bias));
}

// Disjoint sets over tensor ids: the tensors that must share quantization parameters.
struct SharedScales {
  std::vector<int> parent;
  explicit SharedScales(size_t n) : parent(n) { std::iota(parent.begin(), parent.end(), 0); }
  int find(int t) { return parent[size_t(t)] == t ? t : parent[size_t(t)] = find(parent[size_t(t)]); }
  void join(int a, int b) { parent[size_t(find(a))] = find(b); }
};

}  // namespace

QParams int8_params_for_range(double lo, double hi) {
  if (!std::isfinite(lo) || !std::isfinite(hi) || lo > hi) fail("invalid activation range [{}, {}]", lo, hi);
  lo = std::min(lo, 0.0);
  hi = std::max(hi, 0.0);
  if (hi - lo < kMinRange) hi = lo + kMinRange;
  QParams q;
  q.scale = float((hi - lo) / 255.0);
  q.zero_point = int32_t(std::clamp(std::round(-128.0 - lo / double(q.scale)), -128.0, 127.0));
  return q;
}

int8_t quantize_value(float x, QParams q) {
  const float r = std::round(x / q.scale);
  if (!(r == r)) return saturate_int8(q.zero_point);
  return saturate_int8(int32_t(std::clamp(r, -1e9f, 1e9f)) + q.zero_point);
}

std::vector<float> bias_scales(const QModel& m, const DeployOp& op) {
  const QConv& c = m.convs[size_t(op.conv)];
  const float in_scale = m.tensors[size_t(op.in0)].q.scale;
  std::vector<float> s(size_t(c.cout));
  for (int o = 0; o < c.cout; ++o) s[size_t(o)] = in_scale * c.weight_scales[size_t(o)];
  return s;
}

QModel quantize_unet(const DeployNet& net, const std::vector<Range>& ranges, int height, int width,
                     std::string calibration) {
  QModel m;
  m.config = net.config;
  m.height = height;
  m.width = width;
  m.calibration = std::move(calibration);
  m.ops = net.ops;
  m.input = net.input;
  m.logits = net.logits;
  m.output = net.output;
  for (const DeployTensor& t : net.tensors) {
    if (t.value >= int(ranges.size())) fail("calibration gave {} activation ranges; tensor {} needs more", ranges.size(), t.name);
    m.tensors.push_back({t.name, t.level, t.channels, {}});
  }

  // Activation parameters: the union of the calibrated ranges over each set of shared tensors.
  SharedScales shared(m.tensors.size());
  for (const DeployOp& op : m.ops)
    if (op.kind == DeployOpKind::maxpool || op.kind == DeployOpKind::upsample || op.kind == DeployOpKind::concat) {
      shared.join(op.in0, op.out);
      if (op.in1 >= 0) shared.join(op.in1, op.out);
    }
  std::vector<Range> set_range(m.tensors.size(), {INFINITY, -INFINITY});
  for (size_t t = 0; t < m.tensors.size(); ++t) {
    if (net.tensors[t].value < 0) continue;
    const Range r = ranges[size_t(net.tensors[t].value)];
    Range& s = set_range[size_t(shared.find(int(t)))];
    s.lo = std::min(s.lo, r.lo);
    s.hi = std::max(s.hi, r.hi);
  }
  for (size_t t = 0; t < m.tensors.size(); ++t) {
    const Range r = set_range[size_t(shared.find(int(t)))];
    m.tensors[t].q = int8_params_for_range(std::isfinite(r.lo) ? r.lo : 0.0, std::isfinite(r.hi) ? r.hi : 0.0);
  }
  m.tensors[size_t(m.input)].q = {1.0f / 255.0f, -128};
  m.tensors[size_t(m.output)].q = {1.0f / 256.0f, -128};

  // Convolutions (BatchNorm already folded): weights per output channel, then the bias.
  m.convs.resize(net.convs.size());
  for (const DeployOp& op : net.ops) {
    if (!has_weights(op.kind)) continue;
    const DeployConv& f = net.convs[size_t(op.conv)];
    QConv& c = m.convs[size_t(op.conv)];
    c.cout = f.cout;
    c.k = f.k;
    c.cin = f.cin;
    c.relu = f.relu;
    c.weights.resize(f.weights.size());
    c.weight_scales.resize(size_t(c.cout));
    c.bias.resize(size_t(c.cout));
    const float in_scale = m.tensors[size_t(op.in0)].q.scale;
    const size_t per = f.weights.size() / size_t(c.cout);
    for (int o = 0; o < c.cout; ++o) {
      const float* wo = f.weights.data() + size_t(o) * per;
      float amax = 0;
      for (size_t j = 0; j < per; ++j) amax = std::max(amax, std::fabs(wo[j]));
      const float s = amax > 0 ? amax / 127.0f : 1.0f;
      c.weight_scales[size_t(o)] = s;
      for (size_t j = 0; j < per; ++j)
        c.weights[size_t(o) * per + j] = int8_t(std::clamp(std::round(wo[j] / s), -127.0f, 127.0f));
      const double bias_scale = double(in_scale) * double(s);
      const double bias_limit =
          std::max(0.0, double(kMaxAccumulator - accumulator_bound(c.weights.data() + size_t(o) * per, per, 0)));
      c.bias[size_t(o)] = int32_t(std::clamp(std::round(double(f.bias[size_t(o)]) / bias_scale), -bias_limit, bias_limit));
    }
  }
  prepare(m);
  return m;
}

namespace {

// The graph's structure as the engine (engine.cpp) relies on it: every
// tensor a size the input size divides into, every op reading tensors already
// written and writing a new one whose size follows from its inputs, the input,
// logits and output where the engine expects them. A model file that breaks
// one of these is refused here, not read out of bounds later.
void check_graph(const QModel& m) {
  validate(m.config);
  check_input_size(m.config, m.height, m.width);
  const int nt = int(m.tensors.size());
  for (const QTensor& t : m.tensors)
    if (t.level < 0 || t.level > m.config.depth || t.channels < 1 || t.channels > (1 << 16))
      fail("int8 model: tensor {} has level {} (0..{}) and {} channels", t.name, t.level, m.config.depth, t.channels);
  auto check_id = [&](int t, const DeployOp& op) {
    if (t < 0 || t >= nt) fail("int8 model: op {} refers to tensor {} of {}", op.name, t, nt);
  };
  if (m.input < 0 || m.input >= nt || m.output < 0 || m.output >= nt || m.logits < 0 || m.logits >= nt)
    fail("int8 model: input, logits or output tensor missing");
  const QTensor &in = m.tensors[size_t(m.input)], &logits = m.tensors[size_t(m.logits)],
                &out = m.tensors[size_t(m.output)];
  if (in.level != 0 || in.channels != m.config.in_channels)
    fail("int8 model: input tensor {} is level {} with {} channels, the model takes {} at level 0", in.name, in.level,
         in.channels, m.config.in_channels);
  for (const QTensor* t : {&logits, &out})
    if (t->level != 0 || t->channels != m.config.classes)
      fail("int8 model: output tensor {} is level {} with {} channels, expected {} at level 0", t->name, t->level,
           t->channels, m.config.classes);
  std::vector<bool> written(size_t(nt), false);
  written[size_t(m.input)] = true;
  for (const DeployOp& op : m.ops) {
    const bool two_inputs = op.kind == DeployOpKind::concat;
    check_id(op.in0, op);
    if (two_inputs) check_id(op.in1, op);
    check_id(op.out, op);
    if (!written[size_t(op.in0)] || (two_inputs && !written[size_t(op.in1)]))
      fail("int8 model: op {} reads a tensor no earlier op wrote", op.name);
    if (written[size_t(op.out)]) fail("int8 model: op {} writes tensor {}, already written", op.name, op.out);
    written[size_t(op.out)] = true;
    const QTensor &a = m.tensors[size_t(op.in0)], &y = m.tensors[size_t(op.out)];
    const bool upsampling = op.kind == DeployOpKind::upsample || op.kind == DeployOpKind::transposed_conv;
    const int level_step = op.kind == DeployOpKind::maxpool ? 1 : upsampling ? -1 : 0;
    int channels = a.channels;  // what y must have (a conv's are checked against its weights in prepare)
    if (has_weights(op.kind)) channels = y.channels;
    if (two_inputs) {
      const QTensor& b = m.tensors[size_t(op.in1)];
      if (b.level != a.level) fail("int8 model: concat {} joins levels {} and {}", op.name, a.level, b.level);
      channels = a.channels + b.channels;
    }
    if (y.level != a.level + level_step || y.channels != channels)
      fail("int8 model: op {} ({}) turns level {} with {} channels into level {} with {}", op.name,
           deploy_op_name(op.kind), a.level, a.channels, y.level, y.channels);
  }
  if (!written[size_t(m.output)] || !written[size_t(m.logits)]) fail("int8 model: no op writes the output");
}

}  // namespace

void prepare(QModel& m) {
  check_graph(m);
  for (const QTensor& t : m.tensors)
    if (!(t.q.scale > 0) || !std::isfinite(t.q.scale) || t.q.zero_point < -128 || t.q.zero_point > 127)
      fail("int8 model: tensor {} has invalid quantization (scale {}, zero point {})", t.name, t.q.scale, t.q.zero_point);
  auto same = [&](int a, int b, const DeployOp& op) {
    const QParams x = m.tensors[size_t(a)].q, y = m.tensors[size_t(b)].q;
    if (x.scale != y.scale || x.zero_point != y.zero_point)
      fail("int8 model: {} ({}) needs {} and {} to share scale and zero point ({} {} vs {} {})", op.name,
           deploy_op_name(op.kind), m.tensors[size_t(a)].name, m.tensors[size_t(b)].name, x.scale, x.zero_point, y.scale,
           y.zero_point);
  };
  for (const DeployOp& op : m.ops) {
    switch (op.kind) {
      case DeployOpKind::conv:
      case DeployOpKind::transposed_conv: {
        if (op.conv < 0 || op.conv >= int(m.convs.size())) fail("int8 model: op {} has no convolution parameters", op.name);
        QConv& c = m.convs[size_t(op.conv)];
        const QTensor &in = m.tensors[size_t(op.in0)], &out = m.tensors[size_t(op.out)];
        const bool transposed = op.kind == DeployOpKind::transposed_conv;
        if (c.cin != in.channels || c.cout != out.channels || c.k < 1 || (transposed ? c.k != 2 : c.k % 2 == 0) ||
            c.weights.size() != size_t(c.cout) * c.k * c.k * c.cin || c.weight_scales.size() != size_t(c.cout) ||
            c.bias.size() != size_t(c.cout))
          fail("int8 model: convolution {} has inconsistent shapes (k {}, {} -> {} channels, tensors {} -> {})", op.name,
               c.k, c.cin, c.cout, in.channels, out.channels);
        if (transposed && (c.relu || std::any_of(c.bias.begin(), c.bias.end(), [](int32_t b) { return b != 0; })))
          fail("int8 model: transposed convolution {} has a bias or a ReLU (the deployed upsampling has neither)",
               op.name);
        c.multipliers.resize(size_t(c.cout));
        const size_t per_channel = size_t(c.k) * c.k * c.cin;
        for (int o = 0; o < c.cout; ++o) {
          const float ws = c.weight_scales[size_t(o)];
          if (!(ws > 0) || !std::isfinite(ws)) fail("int8 model: convolution {} channel {} has weight scale {}", op.name, o, ws);
          // As TFLite: (input_scale * filter_scale) / output_scale in double from the float32 scales.
          const QuantizedMultiplier qm = quantize_multiplier(double(in.q.scale) * double(ws) / double(out.q.scale));
          c.multipliers[size_t(o)] = qm;
          const int64_t bound =
              accumulator_bound(c.weights.data() + size_t(o) * per_channel, per_channel, c.bias[size_t(o)]);
          if (bound > kMaxAccumulator || (bound << std::max(qm.shift, 0)) > kMaxAccumulator)  // (no int64 overflow)
            fail("int8 model: convolution {} channel {} can overflow its int32 accumulator (bias {}, weights summing "
                 "to {} in magnitude, requantization shift {})",
                 op.name, o, c.bias[size_t(o)], (bound - std::abs(int64_t(c.bias[size_t(o)]))) / 255, qm.shift);
        }
        c.out_min = c.relu ? std::max(-128, out.q.zero_point) : -128;
        c.out_max = 127;
        if (transposed) {
          c.packed = nullptr;
          c.pointwise = pointwise_of_transposed(c, in.q);
        } else {
          c.packed = pack_conv_int8_fast(c, in.q);
        }
        break;
      }
      case DeployOpKind::maxpool:
      case DeployOpKind::upsample: same(op.in0, op.out, op); break;
      case DeployOpKind::concat:
        same(op.in0, op.out, op);
        same(op.in1, op.out, op);
        break;
      case DeployOpKind::sigmoid: {
        const QParams in = m.tensors[size_t(op.in0)].q, out = m.tensors[size_t(op.out)].q;
        if (out.scale != 1.0f / 256.0f || out.zero_point != -128)
          fail("int8 model: {} output must have scale 1/256 and zero point -128 (TFLite's LOGISTIC), has {} {}", op.name,
               out.scale, out.zero_point);
        // TFLite's lookup table for int8 LOGISTIC, computed in float as it does.
        const float inverse_scale = 1.0f / out.scale;
        for (int v = -128; v <= 127; ++v) {
          const float x = in.scale * float(v - in.zero_point);
          const float y = 1.0f / (1.0f + std::exp(-x));
          const float r = std::round(y * inverse_scale);
          m.sigmoid_table[uint8_t(int8_t(v))] = saturate_int8(int32_t(r + float(out.zero_point)));
        }
        break;
      }
    }
  }
}

// ---- Saving and loading ------------------------------------------------------

void save_qmodel(const std::string& path, const QModel& m) {
  SafeTensorsFile f;
  json g;
  g["format"] = "mixseg-int8-unet";
  g["version"] = 1;
  g["config"] = {{"filters", m.config.filters}, {"depth", m.config.depth}, {"in_channels", m.config.in_channels},
                 {"classes", m.config.classes}};
  g["height"] = m.height;
  g["width"] = m.width;
  g["calibration"] = m.calibration;
  g["input"] = m.input;
  g["logits"] = m.logits;
  g["output"] = m.output;
  for (const QTensor& t : m.tensors) g["tensors"].push_back({{"name", t.name}, {"level", t.level}, {"channels", t.channels}});
  for (const DeployOp& op : m.ops)
    g["ops"].push_back({{"kind", deploy_op_name(op.kind)}, {"name", op.name}, {"in0", op.in0}, {"in1", op.in1},
                        {"out", op.out}, {"conv", op.conv}});
  f.metadata["mixseg_int8"] = g.dump();
  auto bytes = [](const void* p, size_t n) {
    const auto* b = static_cast<const uint8_t*>(p);
    return std::vector<uint8_t>(b, b + n);
  };
  std::vector<float> scales;
  std::vector<int32_t> zps;
  for (const QTensor& t : m.tensors) {
    scales.push_back(t.q.scale);
    zps.push_back(t.q.zero_point);
  }
  const int64_t nt = int64_t(m.tensors.size());
  f.tensors["tensor_scales"] = {DType::f32, {nt}, bytes(scales.data(), scales.size() * 4)};
  f.tensors["tensor_zero_points"] = {DType::i32, {nt}, bytes(zps.data(), zps.size() * 4)};
  for (const DeployOp& op : m.ops) {
    if (!has_weights(op.kind)) continue;
    const QConv& c = m.convs[size_t(op.conv)];
    f.tensors[op.name + ".weight"] = {DType::i8, {c.cout, c.k, c.k, c.cin}, bytes(c.weights.data(), c.weights.size())};
    f.tensors[op.name + ".weight_scale"] = {DType::f32, {c.cout}, bytes(c.weight_scales.data(), size_t(c.cout) * 4)};
    f.tensors[op.name + ".bias"] = {DType::i32, {c.cout}, bytes(c.bias.data(), size_t(c.cout) * 4)};
  }
  write_safetensors(path, f);
}

bool is_int8_model(const std::string& path) {
  return read_safetensors_metadata(path).count("mixseg_int8") > 0;  // the header only
}

namespace {

// The model from a parsed file (path names it in errors).
QModel qmodel_from(const SafeTensorsFile& f, const std::string& path) {
  auto it = f.metadata.find("mixseg_int8");
  if (it == f.metadata.end()) fail("{}: not an int8 model from `mixseg quantize` (no mixseg_int8 metadata)", path);
  QModel m;
  try {
    const json g = json::parse(it->second);
    if (g.at("format") != "mixseg-int8-unet" || g.at("version") != 1) fail("unknown format or version");
    const json& c = g.at("config");
    m.config = {c.at("filters").get<int>(), c.at("depth").get<int>(), c.at("in_channels").get<int>(),
                c.at("classes").get<int>()};
    validate(m.config);
    m.height = g.at("height").get<int>();
    m.width = g.at("width").get<int>();
    check_input_size(m.config, m.height, m.width);
    m.calibration = g.at("calibration").get<std::string>();
    m.input = g.at("input").get<int>();
    m.logits = g.at("logits").get<int>();
    m.output = g.at("output").get<int>();
    for (const json& t : g.at("tensors"))
      m.tensors.push_back({t.at("name").get<std::string>(), t.at("level").get<int>(), t.at("channels").get<int>(), {}});
    for (const json& o : g.at("ops")) {
      const std::string kind = o.at("kind").get<std::string>();
      DeployOp op{};
      bool known = false;
      for (DeployOpKind k : {DeployOpKind::conv, DeployOpKind::transposed_conv, DeployOpKind::maxpool,
                             DeployOpKind::upsample, DeployOpKind::concat, DeployOpKind::sigmoid})
        if (kind == deploy_op_name(k)) op.kind = k, known = true;
      if (!known) fail("unknown op kind {}", kind);
      op.name = o.at("name").get<std::string>();
      op.in0 = o.at("in0").get<int>();
      op.in1 = o.at("in1").get<int>();
      op.out = o.at("out").get<int>();
      m.ops.push_back(op);
    }
  } catch (const json::exception& e) {
    fail("{}: malformed int8 model metadata: {}", path, e.what());
  } catch (const Error& e) {
    fail("{}: {}", path, e.what());
  }
  auto get = [&](const std::string& name, DType dt, int64_t numel) -> const SafeTensor& {
    auto t = f.tensors.find(name);
    if (t == f.tensors.end()) fail("{}: tensor {} is missing", path, name);
    if (t->second.dtype != dt || int64_t(t->second.numel()) != numel)
      fail("{}: tensor {} should be {} with {} elements, is {} with {}", path, name, dtype_name(dt), numel,
           dtype_name(t->second.dtype), t->second.numel());
    return t->second;
  };
  const int64_t nt = int64_t(m.tensors.size());
  const SafeTensor& scales = get("tensor_scales", DType::f32, nt);
  const SafeTensor& zps = get("tensor_zero_points", DType::i32, nt);
  for (size_t t = 0; t < m.tensors.size(); ++t) {
    std::memcpy(&m.tensors[t].q.scale, scales.data.data() + 4 * t, 4);
    std::memcpy(&m.tensors[t].q.zero_point, zps.data.data() + 4 * t, 4);
  }
  for (DeployOp& op : m.ops) {
    if (!has_weights(op.kind)) continue;
    if (op.in0 < 0 || op.in0 >= nt || op.out < 0 || op.out >= nt) fail("{}: op {} refers to a missing tensor", path, op.name);
    const auto wt = f.tensors.find(op.name + ".weight");
    if (wt == f.tensors.end()) fail("{}: tensor {}.weight is missing", path, op.name);
    const SafeTensor& w = wt->second;
    if (w.dtype != DType::i8 || w.shape.size() != 4) fail("{}: {}.weight must be int8 [Cout, K, K, Cin]", path, op.name);
    QConv c;
    c.cout = int(w.shape[0]);
    c.k = int(w.shape[1]);
    c.cin = int(w.shape[3]);
    c.relu = op.kind == DeployOpKind::conv && op.out != m.logits;  // every conv but the head's; never a transposed one
    c.weights.assign(reinterpret_cast<const int8_t*>(w.data.data()), reinterpret_cast<const int8_t*>(w.data.data()) + w.data.size());
    const SafeTensor& ws = get(op.name + ".weight_scale", DType::f32, c.cout);
    const SafeTensor& b = get(op.name + ".bias", DType::i32, c.cout);
    c.weight_scales.resize(size_t(c.cout));
    c.bias.resize(size_t(c.cout));
    std::memcpy(c.weight_scales.data(), ws.data.data(), ws.data.size());
    std::memcpy(c.bias.data(), b.data.data(), b.data.size());
    op.conv = int(m.convs.size());
    m.convs.push_back(std::move(c));
  }
  try {
    prepare(m);
  } catch (const Error& e) {
    fail("{}: {}", path, e.what());
  }
  return m;
}

}  // namespace

QModel parse_qmodel(const std::vector<uint8_t>& bytes, const std::string& path) {
  return qmodel_from(parse_safetensors(bytes, path), path);
}

QModel load_qmodel(const std::string& path) { return qmodel_from(read_safetensors(path), path); }

}  // namespace mixseg
