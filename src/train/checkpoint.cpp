// Checkpoint save/load (see checkpoint.h).
#include "train/checkpoint.h"

#include <fmt/format.h>

#include <cmath>
#include <cstring>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "train/safetensors.h"

namespace mixseg {

namespace {

constexpr const char* kFormat = "mixseg-checkpoint-1";

std::vector<int64_t> dims(const Shape& s, bool is_bn) {
  if (is_bn) return {s.c};
  return {s.n, s.h, s.w, s.c};
}

std::string fmt_shape(const std::vector<int64_t>& s) { return fmt::format("[{}]", fmt::join(s, ", ")); }

// Copies a stored f32 tensor into dst after checking dtype and shape (only
// checks when dst is null).
void take(const SafeTensorsFile& f, const std::string& path, const std::string& name, const std::vector<int64_t>& shape,
          float* dst) {
  auto it = f.tensors.find(name);
  if (it == f.tensors.end()) fail("{}: tensor {} is missing (checkpoint of another model?)", path, name);
  const SafeTensor& t = it->second;
  if (t.dtype != DType::f32) fail("{}: tensor {} is {}, expected f32", path, name, dtype_name(t.dtype));
  if (t.shape != shape)
    fail("{}: tensor {} has shape {}, the model expects {} (checkpoint of another model?)", path, name,
         fmt_shape(t.shape), fmt_shape(shape));
  if (dst) std::memcpy(dst, t.data.data(), t.data.size());
}

const std::string& meta(const SafeTensorsFile& f, const std::string& path, const std::string& key) {
  auto it = f.metadata.find(key);
  if (it == f.metadata.end()) fail("{}: metadata '{}' is missing (not a mixseg checkpoint?)", path, key);
  return it->second;
}

}  // namespace

void save_checkpoint(const std::string& path, const UNet& net, const Checkpoint& c) {
  SafeTensorsFile f;
  for (const auto& p : net.params)
    f.tensors[p.name] = f32_tensor(c.weights.params.data() + p.offset, dims(p.shape, p.kind != ParamKind::conv_weight));
  for (const auto& b : net.bns) {
    f.tensors[b.name + ".running_mean"] = f32_tensor(c.weights.running.data() + b.running_offset, {b.channels});
    f.tensors[b.name + ".running_var"] = f32_tensor(c.weights.running.data() + b.running_offset + b.channels, {b.channels});
  }
  const auto& os = c.optimizer_state;
  if (!os.m.empty()) f.tensors["optimizer.m"] = f32_tensor(os.m.data(), {int64_t(os.m.size())});
  if (!os.v.empty()) f.tensors["optimizer.v"] = f32_tensor(os.v.data(), {int64_t(os.v.size())});
  const nlohmann::json config = {{"filters", c.config.filters},
                                 {"depth", c.config.depth},
                                 {"in_channels", c.config.in_channels},
                                 {"classes", c.config.classes},
                                 {"upsampling", upsampling_name(c.config.upsampling)}};
  auto& m = f.metadata;
  m["format"] = kFormat;
  m["model"] = "unet";
  m["config"] = config.dump();
  m["weight_layout"] = "OHWI";
  m["policy"] = std::string(policy_info(c.policy).name);
  m["height"] = std::to_string(c.height);
  m["width"] = std::to_string(c.width);
  m["epoch"] = std::to_string(c.epoch);
  m["step_in_epoch"] = std::to_string(c.step_in_epoch);
  m["best_dice"] = fmt::format("{:.17g}", c.best_dice);
  m["epochs_since_best"] = std::to_string(c.epochs_since_best);
  m["seed"] = std::to_string(c.seed);
  m["batch"] = std::to_string(c.batch);
  m["optimizer"] = optimizer_name(c.optimizer.kind);
  m["optimizer.lr"] = fmt::format("{:.17g}", c.optimizer.lr);
  m["optimizer.step"] = std::to_string(os.step);
  m["scaler.enabled"] = c.scaler.config.enabled ? "1" : "0";
  m["scaler.scale"] = fmt::format("{:.17g}", c.scaler.scale);
  m["scaler.clean_steps"] = std::to_string(c.scaler.clean_steps);
  m["scaler.skipped_steps"] = std::to_string(c.scaler.skipped_steps);
  write_safetensors(path, f);
}

namespace {

// The checkpoint in a parsed file (path names it in errors).
Checkpoint checkpoint_from(const SafeTensorsFile& f, const std::string& path) {
  if (meta(f, path, "format") != kFormat)
    fail("{}: checkpoint format '{}' is not {}", path, meta(f, path, "format"), kFormat);
  Checkpoint c;
  try {
    const auto cfg = nlohmann::json::parse(meta(f, path, "config"));
    c.config.filters = cfg.at("filters").get<int>();
    c.config.depth = cfg.at("depth").get<int>();
    c.config.in_channels = cfg.at("in_channels").get<int>();
    c.config.classes = cfg.at("classes").get<int>();
    // Absent in checkpoints written before the transposed option existed: nearest.
    try {
      c.config.upsampling = parse_upsampling(cfg.value("upsampling", "nearest"));
    } catch (const Error& e) {
      fail("{}: {}", path, e.what());
    }
    c.height = std::stoi(meta(f, path, "height"));
    c.width = std::stoi(meta(f, path, "width"));
    c.epoch = std::stoi(meta(f, path, "epoch"));
    // Optional (absent in checkpoints written before mid-epoch resume and early stopping existed).
    auto optional = [&](const char* key, const char* fallback) {
      auto it = f.metadata.find(key);
      return it == f.metadata.end() ? std::string(fallback) : it->second;
    };
    c.step_in_epoch = std::stoi(optional("step_in_epoch", "0"));
    c.best_dice = std::stod(optional("best_dice", "-1"));
    c.epochs_since_best = std::stoi(optional("epochs_since_best", "0"));
    c.seed = std::stoull(meta(f, path, "seed"));
    c.batch = std::stoi(meta(f, path, "batch"));
    c.optimizer.kind = parse_optimizer(meta(f, path, "optimizer"));
    c.optimizer.lr = std::stod(meta(f, path, "optimizer.lr"));
    c.optimizer_state.step = std::stoll(meta(f, path, "optimizer.step"));
    c.scaler.config.enabled = meta(f, path, "scaler.enabled") == "1";
    c.scaler.scale = std::stod(meta(f, path, "scaler.scale"));
    c.scaler.clean_steps = std::stoll(meta(f, path, "scaler.clean_steps"));
    c.scaler.skipped_steps = std::stoll(meta(f, path, "scaler.skipped_steps"));
  } catch (const Error&) {
    throw;
  } catch (const std::exception& e) {
    fail("{}: malformed checkpoint metadata ({})", path, e.what());
  }
  c.policy = parse_policy(meta(f, path, "policy"));
  // Counters a resumed run indexes by, and the loss scale it multiplies by.
  if (c.epoch < 0 || c.step_in_epoch < 0 || c.epochs_since_best < 0 || c.batch < 0 || c.optimizer_state.step < 0 ||
      c.scaler.clean_steps < 0 || c.scaler.skipped_steps < 0 || !(c.scaler.scale > 0) || !std::isfinite(c.scaler.scale))
    fail("{}: checkpoint metadata out of range (epoch {}, step in epoch {}, batch {}, optimizer step {}, loss scale {})",
         path, c.epoch, c.step_in_epoch, c.batch, c.optimizer_state.step, c.scaler.scale);
  try {
    validate(c.config);
    check_input_size(c.config, c.height, c.width);
  } catch (const Error& e) {
    fail("{}: {}", path, e.what());
  }
  const UNet net = build_unet(c.config);
  // Every weight tensor is checked (present, f32, its shape) before what the
  // config asks for is allocated: a config that does not match the tensors,
  // or a hostile one asking for billions of weights, gives an error naming
  // the file and the tensor, not an allocation failure.
  auto each_weight = [&](auto&& visit) {
    for (const auto& p : net.params)
      visit(p.name, dims(p.shape, p.kind != ParamKind::conv_weight), c.weights.params, p.offset);
    for (const auto& b : net.bns) {
      visit(b.name + ".running_mean", std::vector<int64_t>{b.channels}, c.weights.running, b.running_offset);
      visit(b.name + ".running_var", std::vector<int64_t>{b.channels}, c.weights.running, b.running_offset + b.channels);
    }
  };
  each_weight([&](const std::string& name, const std::vector<int64_t>& shape, std::vector<float>&, size_t) {
    take(f, path, name, shape, nullptr);
  });
  c.weights.params.assign(net.param_numel, 0.0f);
  c.weights.running.assign(net.running_numel, 0.0f);
  each_weight([&](const std::string& name, const std::vector<int64_t>& shape, std::vector<float>& to, size_t offset) {
    take(f, path, name, shape, to.data() + offset);
  });
  const int64_t n = int64_t(net.param_numel);
  if (f.tensors.count("optimizer.m")) {
    c.optimizer_state.m.resize(net.param_numel);
    take(f, path, "optimizer.m", {n}, c.optimizer_state.m.data());
  }
  if (f.tensors.count("optimizer.v")) {
    c.optimizer_state.v.resize(net.param_numel);
    take(f, path, "optimizer.v", {n}, c.optimizer_state.v.data());
  }
  return c;
}

}  // namespace

Checkpoint load_checkpoint(const std::string& path) { return checkpoint_from(read_safetensors(path), path); }

Checkpoint parse_checkpoint(const std::vector<uint8_t>& bytes, const std::string& path) {
  return checkpoint_from(parse_safetensors(bytes, path), path);
}

}  // namespace mixseg
