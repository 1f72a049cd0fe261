// The U-Net as it is deployed (exports, int8): each BatchNorm folded into the
// convolution before it (float weights and bias, as for float inference), the
// ReLU fused into that convolution, a transposed-convolution upsampling (a 1x1
// convolution to 4C and its depth-to-space move in training) as one 2x2
// stride-2 transposed convolution, and a sigmoid after the logits. Ops and
// tensors are in execution order; every exporter and the quantizer walk this
// one graph.
#pragma once
#include <string>
#include <vector>

#include "model/network.h"
#include "model/unet.h"

namespace mixseg {

enum class DeployOpKind { conv, transposed_conv, maxpool, upsample, concat, sigmoid };
const char* deploy_op_name(DeployOpKind k);
// Whether the op has weights (DeployOp::conv indexes them).
inline bool has_weights(DeployOpKind k) { return k == DeployOpKind::conv || k == DeployOpKind::transposed_conv; }

struct DeployTensor {
  std::string name;
  int level = 0;  // spatial size (H >> level, W >> level)
  int channels = 0;
  int value = -1;  // the UNet value it holds (-1: the sigmoid output)
};

// A convolution: stride 1, SAME padding. Or a transposed convolution (k 2,
// stride 2, no padding, no bias, no ReLU), whose weights [cout, 2, 2, cin] are
// laid out as TFLite's TRANSPOSE_CONV filter: output pixel (2y + a, 2x + b)
// channel c is sum over ci of x[y, x, ci] * weights[c, a, b, ci].
struct DeployConv {
  int k = 3, cin = 0, cout = 0;
  bool relu = false;
  std::vector<float> weights;  // OHWI [cout, k, k, cin], BatchNorm folded
  std::vector<float> bias;     // [cout] (zeros for a transposed convolution)
};

struct DeployOp {
  DeployOpKind kind;
  std::string name;  // e.g. "enc0.0" for a folded conv block, "enc0.pool", "sigmoid"
  int in0 = -1, in1 = -1, out = -1;  // tensor ids
  int conv = -1;                     // conv, transposed_conv: index into DeployNet::convs
};

struct DeployNet {
  UNetConfig config;
  std::vector<DeployTensor> tensors;
  std::vector<DeployConv> convs;
  std::vector<DeployOp> ops;
  int input = -1, logits = -1, output = -1;
};

DeployNet fold_unet(const UNet& net, const Weights& weights);

}  // namespace mixseg
