// Folding the U-Net into its deployed graph (deploy.h).
#include "model/deploy.h"

#include <algorithm>

#include "core/error.h"

namespace mixseg {

const char* deploy_op_name(DeployOpKind k) {
  switch (k) {
    case DeployOpKind::conv: return "conv";
    case DeployOpKind::transposed_conv: return "transposed_conv2x2";
    case DeployOpKind::maxpool: return "maxpool2x2";
    case DeployOpKind::upsample: return "upsample2x";
    case DeployOpKind::concat: return "concat";
    case DeployOpKind::sigmoid: return "sigmoid";
  }
  return "?";
}

namespace {

// The 1x1 convolution to 4C channels whose output channel p*C + c the
// depth-to-space move puts at position p = 2a + b of each 2x2 block, as the
// transposed convolution's [C, 2, 2, Cin] filter: w[c, a, b] = w1x1[(2a + b)C + c].
DeployConv transposed_from_pointwise(const DeployConv& pointwise) {
  if (pointwise.k != 1 || pointwise.cout % 4 != 0)
    fail("internal: a depth-to-space move after a {}x{} convolution to {} channels", pointwise.k, pointwise.k,
         pointwise.cout);
  DeployConv t;
  t.k = 2;
  t.cin = pointwise.cin;
  t.cout = pointwise.cout / 4;
  t.weights.resize(pointwise.weights.size());
  const size_t cin = size_t(t.cin);
  for (int c = 0; c < t.cout; ++c)
    for (int p = 0; p < 4; ++p)  // p = 2a + b, the filter's tap (a, b) in OHWI order
      std::copy_n(pointwise.weights.begin() + long((size_t(p) * size_t(t.cout) + size_t(c)) * cin), cin,
                  t.weights.begin() + long((size_t(c) * 4 + size_t(p)) * cin));
  return t;
}

}  // namespace

DeployNet fold_unet(const UNet& net, const Weights& wt) {
  DeployNet d;
  d.config = net.config;
  std::vector<int> tensor_of(net.values.size(), -1);
  auto tensor = [&](int v) {
    if (tensor_of[size_t(v)] < 0) {
      const Value& val = net.values[size_t(v)];
      tensor_of[size_t(v)] = int(d.tensors.size());
      d.tensors.push_back({val.name, val.level, val.channels, v});
    }
    return tensor_of[size_t(v)];
  };
  d.input = tensor(net.input);
  for (size_t i = 0; i < net.layers.size(); ++i) {
    const Layer& l = net.layers[i];
    DeployOp op{};
    op.name = l.name;
    op.in0 = tensor(l.in0);
    switch (l.kind) {
      case LayerKind::conv: {
        const ParamInfo& p = net.params[size_t(l.param)];
        DeployConv c;
        c.cout = p.shape.n;
        c.k = p.shape.h;
        c.cin = p.shape.c;
        c.weights.assign(wt.params.begin() + long(p.offset), wt.params.begin() + long(p.offset + p.numel()));
        op.kind = DeployOpKind::conv;
        op.conv = int(d.convs.size());
        const Layer* next = i + 1 < net.layers.size() && net.layers[i + 1].in0 == l.out ? &net.layers[i + 1] : nullptr;
        if (next && next->kind == LayerKind::bn_relu) {
          c.relu = true;
          c.bias = fold_batchnorm(net, wt, *next, c.weights);
          op.name = next->name.substr(0, next->name.size() - 3);  // "enc0.0.bn" -> "enc0.0"
          op.out = tensor(next->out);
          ++i;
        } else if (next && next->kind == LayerKind::depth_to_space) {
          c = transposed_from_pointwise(c);
          op.kind = DeployOpKind::transposed_conv;
          op.name = next->name;  // "dec1.up"
          op.out = tensor(next->out);
          ++i;
        } else {
          op.out = tensor(l.out);
        }
        if (c.bias.empty()) c.bias.assign(size_t(c.cout), 0.0f);
        d.convs.push_back(std::move(c));
        break;
      }
      case LayerKind::bn_relu: fail("{}: BatchNorm without a convolution before it cannot be folded", l.name);
      case LayerKind::maxpool: op.kind = DeployOpKind::maxpool; op.out = tensor(l.out); break;
      case LayerKind::upsample: op.kind = DeployOpKind::upsample; op.out = tensor(l.out); break;
      case LayerKind::depth_to_space: fail("{}: a depth-to-space move without its 1x1 convolution before it", l.name);
      case LayerKind::concat:
        op.kind = DeployOpKind::concat;
        op.in1 = tensor(l.in1);
        op.out = tensor(l.out);
        break;
    }
    d.ops.push_back(op);
  }
  d.logits = tensor_of[size_t(net.logits)];
  d.output = int(d.tensors.size());
  d.tensors.push_back({"probabilities", 0, net.config.classes, -1});
  d.ops.push_back({DeployOpKind::sigmoid, "sigmoid", d.logits, -1, d.output, -1});
  return d;
}

}  // namespace mixseg
