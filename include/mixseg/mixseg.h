// mixseg's public C++ API for programs that embed inference: load a trained
// checkpoint, run it on an 8-bit gray image, get per-pixel foreground
// probabilities or a binary mask. Link with mixseg::mixseg (find_package(mixseg)).
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "mixseg/error.h"

namespace mixseg {

struct ModelInfo {
  int filters = 0, depth = 0, in_channels = 0, classes = 0;
  int height = 0, width = 0;  // the size the model was trained at
  std::string trained_precision;
  std::string precision;      // the precision this predictor runs in
  std::string device;         // where it runs: "cpu" or "cuda"
  size_t parameters = 0;
};

class Predictor {
 public:
  // precision: "fp32" (default), "fp16", "bf16", or the name of a training
  // policy (runs in its storage dtype). An int8 model written by `mixseg
  // quantize` runs in int8 (TFLite's integer semantics) whatever precision
  // says. device: "cpu" (default), "cuda" (the GPU; an error without one or
  // in a build without CUDA) or "auto" (the GPU when one is visible); an int8
  // model runs on the CPU. Throws mixseg::Error naming the file if the
  // checkpoint is missing, corrupt or not a mixseg model.
  static Predictor load(const std::string& checkpoint_path, const std::string& precision = "fp32",
                        const std::string& device = "cpu");

  Predictor(Predictor&&) noexcept;
  Predictor& operator=(Predictor&&) noexcept;
  ~Predictor();

  // gray: height * width pixels, row-major. Any size: the image is resized to
  // the training size for the network and the result resized back.
  std::vector<float> probabilities(const uint8_t* gray, int height, int width);
  // 1 where the foreground probability exceeds threshold, else 0.
  std::vector<uint8_t> mask(const uint8_t* gray, int height, int width, float threshold = 0.5f);
  // Images with `channels` interleaved values per pixel (the model's input
  // channels: 1 gray, 3 RGB), 8-bit or 16-bit.
  std::vector<float> probabilities(const uint8_t* pixels, int height, int width, int channels);
  std::vector<float> probabilities(const uint16_t* pixels, int height, int width, int channels);
  ModelInfo info() const;

  // The CPU's fast backend and the GPU's choose each convolution's algorithm
  // by timing it (like cudnn.benchmark), so two processes may round
  // differently in the last bits. save_conv_algorithms writes the choices
  // made so far (after a first image) to a file; follow_conv_algorithms has
  // this predictor take the ones recorded in such a file (or in a `mixseg`
  // run's conv_algorithms.json) instead of timing them: on the same machine
  // and thread count, the same probabilities bit for bit. It returns a note
  // when the record was made with another thread count (empty otherwise).
  // Both throw for an int8 model (the int8 engine has no timed choices) and
  // name the file when it cannot be read or written.
  std::string follow_conv_algorithms(const std::string& path);
  void save_conv_algorithms(const std::string& path) const;

 private:
  template <class T>
  std::vector<float> run(const T* pixels, int height, int width, int channels);
  struct Impl;
  explicit Predictor(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

const char* version();

}  // namespace mixseg
