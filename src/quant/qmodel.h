// The int8 network: the U-Net with every BatchNorm folded into its convolution
// and quantized as TFLite (and the Edge TPU) wants it (see DESIGN.md, "Int8
// deployment"):
//   - weights int8 symmetric per output channel (zero point 0, [-127, 127]),
//   - activations int8 asymmetric per tensor, the range widened to hold 0,
//   - bias int32 with scale input_scale * weight_scale[c], zero point 0,
//   - a transposed convolution (the 2x2 stride-2 upsampling) quantized as
//     TFLite's TRANSPOSE_CONV: per output channel over its four taps, no bias,
//   - tensors joined by max-pooling, nearest upsampling and concatenation
//     share one scale and zero point (TFLite requires it of pooling and
//     resizing; for concatenation it is what the Edge TPU maps best), so
//     those ops move bytes and never requantize,
//   - input scale 1/255, zero point -128 (an 8-bit image's pixel value minus 128),
//   - sigmoid output scale 1/256, zero point -128 (TFLite's LOGISTIC rule).
// prepare() derives what the kernels need (multipliers, clamps, the sigmoid
// table) once, from exactly the float32 scales a .tflite file stores.
#pragma once
#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "model/deploy.h"
#include "quant/fixed_point.h"

namespace mixseg {

struct QParams {
  float scale = 1.0f;
  int32_t zero_point = 0;
};

// TFLite's asymmetric int8 parameters for the real range [lo, hi], widened
// to contain 0: scale (hi - lo) / 255, zero point round(-128 - lo / scale)
// clamped to [-128, 127]. An empty range gets a tiny positive one.
QParams int8_params_for_range(double lo, double hi);

struct QTensor {
  std::string name;
  int level = 0;  // spatial size (H >> level, W >> level)
  int channels = 0;
  QParams q;
};

struct PackedConvInt8;  // kernels_int8.h

struct QConv {
  int k = 3, cin = 0, cout = 0;
  bool relu = false;
  std::vector<int8_t> weights;       // OHWI [cout, k, k, cin] (transposed: as DeployConv, model/deploy.h)
  std::vector<float> weight_scales;  // per output channel
  std::vector<int32_t> bias;         // per output channel
  // Prepared: per output channel multiplier input_scale * weight_scale / output_scale,
  // and the output clamp (ReLU: [max(-128, zero point), 127]).
  std::vector<QuantizedMultiplier> multipliers;
  int32_t out_min = -128, out_max = 127;
  // Prepared: the weights packed for the fast kernel this CPU runs (shared by copies; immutable).
  std::shared_ptr<const PackedConvInt8> packed;
  // Prepared, transposed convolutions only: the same sums as a 1x1 convolution
  // to 4 * cout channels (channel p * cout + c is tap p = 2a + b of channel c,
  // its multiplier and bias repeated), which the fast kernel runs before
  // moving each pixel's four taps into their 2x2 block.
  std::shared_ptr<const QConv> pointwise;
};

struct QModel {
  UNetConfig config;
  int height = 0, width = 0;  // the static input size
  std::vector<QTensor> tensors;
  std::vector<QConv> convs;
  std::vector<DeployOp> ops;  // the deployed graph's (model/deploy.h), conv indexing convs
  int input = -1, logits = -1, output = -1;
  std::string calibration;  // how the activation ranges were found, for the record
  // Prepared: the sigmoid as a table indexed by (uint8) input byte.
  std::array<int8_t, 256> sigmoid_table{};
};

// The scales of a convolution op's int32 biases as the files store them:
// input scale * weight scale per output channel, in float32 (TFLite's rule).
std::vector<float> bias_scales(const QModel& m, const DeployOp& op);

// Quantizes and prepares the deployed graph: ranges[v] is the real range of
// UNet value v (used for BatchNorm+ReLU outputs and the logits; the rest
// follow from the sharing rules above).
struct Range {
  double lo = 0, hi = 0;
};
QModel quantize_unet(const DeployNet& net, const std::vector<Range>& ranges, int height, int width,
                     std::string calibration);

// Checks the invariants above and fills the prepared fields; throws naming the tensor or op.
void prepare(QModel& m);

// Saves and loads the int8 model (safetensors: int8 weights, int32 biases,
// scales and zero points, the graph in the metadata); load prepares it.
void save_qmodel(const std::string& path, const QModel& m);
QModel load_qmodel(const std::string& path);
// The same from the file's bytes (path only names the source in errors).
QModel parse_qmodel(const std::vector<uint8_t>& bytes, const std::string& path);
// Whether path is a safetensors file written by save_qmodel (false for a float checkpoint).
bool is_int8_model(const std::string& path);

// Quantizes real values to a tensor's int8 (TFLite QUANTIZE: round(x / scale)
// + zero point, clamped) and back.
int8_t quantize_value(float x, QParams q);
inline float dequantize_value(int8_t v, QParams q) { return q.scale * float(int32_t(v) - q.zero_point); }

}  // namespace mixseg
