// The public Predictor (see include/mixseg/mixseg.h): a checkpoint, the
// reference backend and an inference workspace for batch 1.
#include <algorithm>
#include <cmath>
#include <limits>

#include "core/error.h"
#include "data/dataset.h"
#include "mixseg/mixseg.h"
#include "model/network.h"
#include "train/checkpoint.h"
#include "train/trainer.h"

namespace mixseg {

struct Predictor::Impl {
  Checkpoint ckpt;
  UNet net;
  Policy policy;
  std::unique_ptr<Backend> backend;
  std::unique_ptr<Workspace> ws;
};

Predictor::Predictor(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Predictor::Predictor(Predictor&&) noexcept = default;
Predictor& Predictor::operator=(Predictor&&) noexcept = default;
Predictor::~Predictor() = default;

Predictor Predictor::load(const std::string& path, const std::string& precision) {
  auto impl = std::make_unique<Impl>();
  impl->ckpt = load_checkpoint(path);
  impl->net = build_unet(impl->ckpt.config);
  impl->policy = parse_policy(precision);
  impl->backend = make_fast_backend();
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
  if (channels != m.ckpt.config.in_channels)
    fail("predict: the model takes {} input channels, the image has {}", m.ckpt.config.in_channels, channels);
  const int H = m.ckpt.height, W = m.ckpt.width;
  std::vector<T> resized;
  const T* src = pixels;
  if (height != H || width != W) {
    resized = resize_bilinear(pixels, height, width, H, W, channels);
    src = resized.data();
  }
  std::vector<float> input(size_t(H) * W * size_t(channels));
  for (size_t i = 0; i < input.size(); ++i) input[i] = scaled(src[i]);
  set_input(m.net, *m.ws, input.data());
  forward(m.net, m.ckpt.weights, *m.ws);
  std::vector<float> p = logits_f32(m.net, *m.ws);
  for (float& v : p) v = 1.0f / (1.0f + std::exp(-v));
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
  return {m.ckpt.config.filters, m.ckpt.config.depth, m.ckpt.config.in_channels, m.ckpt.config.classes,
          m.ckpt.height, m.ckpt.width, std::string(policy_info(m.ckpt.policy).name),
          std::string(policy_info(m.policy).name), m.net.param_numel};
}

const char* version() { return MIXSEG_VERSION; }

}  // namespace mixseg
