// The BAGLS U-Net as a static layer schedule (see DESIGN.md, "The network"):
// values (activation tensors, sized relative to the input), layers in
// execution order, and the parameter layout in one flat f32 buffer so that
// optimizers and (later) gradient all-reduce work on a single array.
#pragma once
#include <cstddef>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace mixseg {

// The decoder's x2 upsampling: nearest (no parameters), or a learned 2x2
// stride-2 transposed convolution, built as a 1x1 convolution to 4C
// channels and a depth-to-space move (its four outputs per input pixel are
// disjoint, so this is the same function), weights `dec{b}.up.conv.weight`.
enum class Upsampling { nearest, transposed };
const char* upsampling_name(Upsampling u);
Upsampling parse_upsampling(const std::string& s);  // throws naming s

struct UNetConfig {
  int filters = 8;      // channels of the first level; level b has filters * 2^b
  int depth = 4;        // number of poolings
  int in_channels = 1;  // 1 = grayscale
  int classes = 1;      // 1 = binary segmentation (sigmoid)
  Upsampling upsampling = Upsampling::nearest;
};

// Throws with a clear message for non-positive or unsupported settings.
void validate(const UNetConfig& c);
// Throws unless h and w are positive multiples of 2^depth (names the size and
// the multiple) and at most kMaxInputSide: a size read from a file that asks
// for terabytes of activations is an error, not an allocation failure.
inline constexpr int kMaxInputSide = 1 << 15;
void check_input_size(const UNetConfig& c, int h, int w);

struct Value {
  std::string name;
  int level;     // spatial size is (H >> level, W >> level)
  int channels;
  Shape shape(int batch, int h, int w) const { return {batch, h >> level, w >> level, channels}; }
};

enum class LayerKind { conv, bn_relu, maxpool, upsample, depth_to_space, concat };
const char* layer_kind_name(LayerKind k);

struct Layer {
  LayerKind kind;
  std::string name;
  int in0 = -1, in1 = -1, out = -1;  // value ids
  int param = -1;  // conv: its weight; bn_relu: gamma (beta is param + 1)
  int bn = -1;     // bn_relu: index into UNet::bns
};

enum class ParamKind { conv_weight, bn_gamma, bn_beta };

struct ParamInfo {
  std::string name;  // e.g. "enc0.0.conv.weight"
  ParamKind kind;
  Shape shape;       // conv: OHWI as {Cout, K, K, Cin}; BatchNorm: {1, 1, 1, C}
  size_t offset;     // into the flat parameter buffer
  size_t numel() const { return shape.numel(); }
};

struct BatchNormInfo {
  std::string name;      // e.g. "enc0.0.bn"
  int channels;
  size_t running_offset; // running_mean at offset, running_var at offset + channels
};

struct UNet {
  UNetConfig config;
  std::vector<Value> values;
  std::vector<Layer> layers;
  std::vector<ParamInfo> params;
  std::vector<BatchNormInfo> bns;
  size_t param_numel = 0;    // trainable parameters
  size_t running_numel = 0;  // BatchNorm running statistics
  int input = -1, logits = -1;

  // Forward multiply-adds per image of h x w (convolutions only; the rest is memory-bound).
  double conv_macs_per_image(int h, int w) const;
};

UNet build_unet(const UNetConfig& c);

}  // namespace mixseg
