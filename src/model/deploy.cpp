// Folding the U-Net into its deployed graph (deploy.h).
#include "model/deploy.h"

#include "core/error.h"

namespace mixseg {

const char* deploy_op_name(DeployOpKind k) {
  switch (k) {
    case DeployOpKind::conv: return "conv";
    case DeployOpKind::maxpool: return "maxpool2x2";
    case DeployOpKind::upsample: return "upsample2x";
    case DeployOpKind::concat: return "concat";
    case DeployOpKind::sigmoid: return "sigmoid";
  }
  return "?";
}

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
        const bool bn_next = i + 1 < net.layers.size() && net.layers[i + 1].kind == LayerKind::bn_relu &&
                             net.layers[i + 1].in0 == l.out;
        const ParamInfo& p = net.params[size_t(l.param)];
        DeployConv c;
        c.cout = p.shape.n;
        c.k = p.shape.h;
        c.cin = p.shape.c;
        c.relu = bn_next;
        c.weights.assign(wt.params.begin() + long(p.offset), wt.params.begin() + long(p.offset + p.numel()));
        c.bias.assign(size_t(c.cout), 0.0f);
        op.kind = DeployOpKind::conv;
        op.conv = int(d.convs.size());
        if (bn_next) {
          const Layer& bn = net.layers[i + 1];
          c.bias = fold_batchnorm(net, wt, bn, c.weights);
          op.name = bn.name.substr(0, bn.name.size() - 3);  // "enc0.0.bn" -> "enc0.0"
          op.out = tensor(bn.out);
          ++i;
        } else {
          op.out = tensor(l.out);
        }
        d.convs.push_back(std::move(c));
        break;
      }
      case LayerKind::bn_relu: fail("{}: BatchNorm without a convolution before it cannot be folded", l.name);
      case LayerKind::maxpool: op.kind = DeployOpKind::maxpool; op.out = tensor(l.out); break;
      case LayerKind::upsample: op.kind = DeployOpKind::upsample; op.out = tensor(l.out); break;
      case LayerKind::depth_to_space:
        fail(
            "{}: the transposed-convolution upsampling is not deployed yet (int8 engine, TFLite and ONNX exports); "
            "a model trained with --upsampling nearest is",
            l.name);
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
