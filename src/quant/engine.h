// Running the int8 network on the CPU: the ops of a QModel in order over
// int8 NHWC buffers, with the reference or the fast convolution (bit-exact
// with each other), and the conversions at its edges.
#pragma once
#include <cstdint>
#include <vector>

#include "quant/qmodel.h"

namespace mixseg {

// images: [batch, H, W, C] int8 in the input tensor's quantization. Returns
// the sigmoid output [batch, H, W, classes] as int8 (probability (q + 128) / 256).
// The fast kernels run the decoder's upsample, concat and convolution as one
// op (the same bytes).
std::vector<int8_t> run_int8(const QModel& m, const int8_t* images, int batch, bool fast = true);
// Every tensor after a run (index: tensor id; each op run on its own), for
// tests and debugging.
std::vector<std::vector<int8_t>> run_int8_all(const QModel& m, const int8_t* images, int batch, bool fast = true);

// f32 images in [0, 1] to the input's int8 (TFLite QUANTIZE semantics).
std::vector<int8_t> quantize_input(const QModel& m, const float* images, size_t n);
// The output's int8 to probabilities in [0, 1).
std::vector<float> dequantize_output(const QModel& m, const std::vector<int8_t>& out);

// Dice, IoU and pixel accuracy of the int8 network on data (at the model's size).
struct Dataset;
struct SegMetrics;
SegMetrics evaluate_int8(const QModel& m, const Dataset& data, int batch, bool fast = true);

}  // namespace mixseg
