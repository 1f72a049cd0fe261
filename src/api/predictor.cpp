// The public Predictor (see include/mixseg/mixseg.h): a checkpoint, the fast
// backend (or the GPU's) and an inference workspace for batch 1; or an int8 model from
// `mixseg quantize`, run by the int8 engine.
#include <algorithm>
#include <cmath>
#include <limits>
#include <optional>

#include "core/error.h"
#include "cuda/device_query.h"
#include "data/dataset.h"
#include "mixseg/mixseg.h"
#include "model/network.h"
#include "quant/engine.h"
#include "train/checkpoint.h"
#include "train/choice_record.h"
#include "train/trainer.h"

namespace mixseg {

struct Predictor::Impl {
  Checkpoint ckpt;
  UNet net;
  Policy policy;
  std::unique_ptr<Backend> backend;
  std::unique_ptr<Workspace> ws;
  std::optional<QModel> int8;  // set for an int8 model (then the rest is unused)
};

Predictor::Predictor(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Predictor::Predictor(Predictor&&) noexcept = default;
Predictor& Predictor::operator=(Predictor&&) noexcept = default;
Predictor::~Predictor() = default;

Predictor Predictor::load(const std::string& path, const std::string& precision, const std::string& device) {
  if (device != "cpu" && device != "cuda" && device != "auto") fail("device '{}' is not cpu, cuda or auto", device);
  auto impl = std::make_unique<Impl>();
  if (is_int8_model(path)) {  // runs in int8 whatever `precision` says, as quantized
    if (device == "cuda") fail("{} is an int8 model: it runs on the CPU's int8 engine, not on cuda", path);
    impl->int8 = load_qmodel(path);
    return Predictor(std::move(impl));
  }
  if (precision == "int8")
    fail("{} is a float checkpoint: quantize it for int8 with `mixseg quantize {} --data DIR --out MODEL`", path, path);
  impl->ckpt = load_checkpoint(path);
  impl->net = build_unet(impl->ckpt.config);
  impl->policy = parse_policy(precision);
  const bool gpu = device == "cuda" || (device == "auto" && cuda_device_count() > 0);
  impl->backend = gpu ? make_backend("cuda") : make_fast_backend();
  impl->ws = make_workspace(impl->net, *impl->backend, impl->policy, 1, impl->ckpt.height, impl->ckpt.width, false);
  upload_weights(impl->net, impl->ckpt.weights, *impl->ws);
  return Predictor(std::move(impl));
}

namespace {

// Input values of type T (8- or 16-bit) to f32 in [0, 1].
template <class T>
float scaled(T v) {
  return float(v) / float(std::numeric_limits<T>::max());
}

}  // namespace

template <class T>
std::vector<float> Predictor::run(const T* pixels, int height, int width, int channels) {
  if (!pixels || height <= 0 || width <= 0) fail("predict: empty image ({}x{})", height, width);
  Impl& m = *impl_;
  const UNetConfig& config = m.int8 ? m.int8->config : m.ckpt.config;
  if (channels != config.in_channels)
    fail("predict: the model takes {} input channels, the image has {}", config.in_channels, channels);
  const int H = m.int8 ? m.int8->height : m.ckpt.height, W = m.int8 ? m.int8->width : m.ckpt.width;
  std::vector<T> resized;
  const T* src = pixels;
  if (height != H || width != W) {
    resized = resize_bilinear(pixels, height, width, H, W, channels);
    src = resized.data();
  }
  std::vector<float> input(size_t(H) * W * size_t(channels));
  for (size_t i = 0; i < input.size(); ++i) input[i] = scaled(src[i]);
  std::vector<float> p;
  if (m.int8) {
    const std::vector<int8_t> q = quantize_input(*m.int8, input.data(), input.size());
    p = dequantize_output(*m.int8, run_int8(*m.int8, q.data(), 1));
  } else {
    set_input(m.net, *m.ws, input.data());
    forward(m.net, *m.ws);
    p = logits_f32(m.net, *m.ws);
    for (float& v : p) v = 1.0f / (1.0f + std::exp(-v));
  }
  if (height == H && width == W) return p;
  return resize_bilinear(p.data(), H, W, height, width);  // back to the caller's size
}

std::vector<float> Predictor::probabilities(const uint8_t* gray, int height, int width) {
  return run(gray, height, width, 1);
}
std::vector<float> Predictor::probabilities(const uint8_t* pixels, int height, int width, int channels) {
  return run(pixels, height, width, channels);
}
std::vector<float> Predictor::probabilities(const uint16_t* pixels, int height, int width, int channels) {
  return run(pixels, height, width, channels);
}

std::vector<uint8_t> Predictor::mask(const uint8_t* gray, int height, int width, float threshold) {
  const std::vector<float> p = probabilities(gray, height, width);
  std::vector<uint8_t> m(p.size());
  for (size_t i = 0; i < p.size(); ++i) m[i] = p[i] > threshold;
  return m;
}

ModelInfo Predictor::info() const {
  const Impl& m = *impl_;
  if (m.int8) {
    const QModel& q = *m.int8;
    size_t params = 0;
    for (const QConv& c : q.convs) params += c.weights.size() + c.bias.size();
    return {q.config.filters, q.config.depth, q.config.in_channels, q.config.classes, q.height, q.width,
            "int8 (" + q.calibration + ")", "int8", "cpu", params};
  }
  return {m.ckpt.config.filters, m.ckpt.config.depth, m.ckpt.config.in_channels, m.ckpt.config.classes,
          m.ckpt.height, m.ckpt.width, std::string(policy_info(m.ckpt.policy).name),
          std::string(policy_info(m.policy).name), m.backend->name() == "cuda" ? "cuda" : "cpu", m.net.param_numel};
}

std::string Predictor::follow_conv_algorithms(const std::string& path) {
  Impl& m = *impl_;
  if (m.int8) fail("an int8 model has no convolution algorithms to follow (the int8 engine's kernels are fixed)");
  return replay_choice_record(*m.backend, load_choice_record(path), path);
}

void Predictor::save_conv_algorithms(const std::string& path) const {
  const Impl& m = *impl_;
  if (m.int8) fail("an int8 model has no convolution algorithms to save (the int8 engine's kernels are fixed)");
  save_choice_record(*m.backend, path);
}

const char* version() { return MIXSEG_VERSION; }

}  // namespace mixseg
