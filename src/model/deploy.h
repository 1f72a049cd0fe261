// The U-Net as it is deployed (exports, int8): each BatchNorm folded into the
// convolution before it (float weights and bias, as for float inference), the
// ReLU fused into that convolution, and a sigmoid after the logits. Ops and
// tensors are in execution order; every exporter and the quantizer walk this
// one graph.
#pragma once
#include <string>
#include <vector>

#include "model/network.h"
#include "model/unet.h"

namespace mixseg {

enum class DeployOpKind { conv, maxpool, upsample, concat, sigmoid };
const char* deploy_op_name(DeployOpKind k);

struct DeployTensor {
  std::string name;
  int level = 0;  // spatial size (H >> level, W >> level)
  int channels = 0;
  int value = -1;  // the UNet value it holds (-1: the sigmoid output)
};

struct DeployConv {
  int k = 3, cin = 0, cout = 0;
  bool relu = false;
  std::vector<float> weights;  // OHWI [cout, k, k, cin], BatchNorm folded
  std::vector<float> bias;     // [cout]
};

struct DeployOp {
  DeployOpKind kind;
  std::string name;  // e.g. "enc0.0" for a folded conv block, "enc0.pool", "sigmoid"
  int in0 = -1, in1 = -1, out = -1;  // tensor ids
  int conv = -1;                     // conv: index into DeployNet::convs
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
