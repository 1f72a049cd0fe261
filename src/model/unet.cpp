// U-Net builder (see unet.h). Block names: enc{b}.{0,1}, bottleneck,
// dec{b}.{0,1}, final, head; each convblock is conv 3x3 -> BatchNorm -> ReLU.
#include "model/unet.h"

#include "core/error.h"

namespace mixseg {

void validate(const UNetConfig& c) {
  if (c.filters < 1) fail("filters must be >= 1, got {}", c.filters);
  if (c.depth < 1 || c.depth > 8) fail("depth must be between 1 and 8, got {}", c.depth);
  if (c.in_channels < 1) fail("input channels must be >= 1, got {}", c.in_channels);
  if (c.classes != 1) fail("classes must be 1 (binary segmentation with a sigmoid) in this version, got {}", c.classes);
  if (size_t(c.filters) << c.depth > (1u << 16)) fail("filters * 2^depth = {} is too large", size_t(c.filters) << c.depth);
}

void check_input_size(const UNetConfig& c, int h, int w) {
  if (h > kMaxInputSide || w > kMaxInputSide)
    fail("input size {}x{} (HxW) exceeds {} per side", h, w, kMaxInputSide);
  const int m = 1 << c.depth;
  if (h <= 0 || w <= 0 || h % m != 0 || w % m != 0)
    fail("input size {}x{} (HxW) is not a multiple of 2^depth = {} (depth {}): use for example {}x{}", h, w, m,
         c.depth, std::max(m, (h + m / 2) / m * m), std::max(m, (w + m / 2) / m * m));
}

const char* upsampling_name(Upsampling u) { return u == Upsampling::transposed ? "transposed" : "nearest"; }

Upsampling parse_upsampling(const std::string& s) {
  if (s == "nearest") return Upsampling::nearest;
  if (s == "transposed") return Upsampling::transposed;
  fail("upsampling '{}' is not nearest or transposed", s);
}

const char* layer_kind_name(LayerKind k) {
  switch (k) {
    case LayerKind::conv: return "conv";
    case LayerKind::bn_relu: return "batchnorm+relu";
    case LayerKind::maxpool: return "maxpool2x2";
    case LayerKind::upsample: return "upsample2x";
    case LayerKind::depth_to_space: return "depth_to_space";  // 2x2 blocks
    case LayerKind::concat: return "concat";
  }
  return "?";
}

double UNet::conv_macs_per_image(int h, int w) const {
  double macs = 0;
  for (const auto& l : layers)
    if (l.kind == LayerKind::conv) {
      const Shape ws = params[l.param].shape;
      const Value& v = values[l.out];
      macs += double(h >> v.level) * double(w >> v.level) * double(ws.numel());
    }
  return macs;
}

namespace {

struct Builder {
  UNet net;

  int value(std::string name, int level, int channels) {
    net.values.push_back({std::move(name), level, channels});
    return int(net.values.size()) - 1;
  }
  int param(std::string name, ParamKind kind, Shape shape) {
    net.params.push_back({std::move(name), kind, shape, net.param_numel});
    net.param_numel += shape.numel();
    return int(net.params.size()) - 1;
  }
  int conv(const std::string& block, int in, int cout, int k) {
    const Value v = net.values[in];
    Layer l{LayerKind::conv, block + ".conv"};
    l.in0 = in;
    l.param = param(block + ".conv.weight", ParamKind::conv_weight, {cout, k, k, v.channels});
    l.out = value(block + ".conv", v.level, cout);
    net.layers.push_back(l);
    return l.out;
  }
  int convblock(const std::string& block, int in, int c) {
    const int z = conv(block, in, c, 3);
    Layer l{LayerKind::bn_relu, block + ".bn"};
    l.in0 = z;
    l.param = param(block + ".bn.weight", ParamKind::bn_gamma, {1, 1, 1, c});
    param(block + ".bn.bias", ParamKind::bn_beta, {1, 1, 1, c});
    net.bns.push_back({block + ".bn", c, net.running_numel});
    net.running_numel += 2 * size_t(c);
    l.bn = int(net.bns.size()) - 1;
    l.out = value(block, net.values[z].level, c);
    net.layers.push_back(l);
    return l.out;
  }
  int unary(LayerKind kind, const std::string& name, int in, int level_change) {
    const Value v = net.values[in];
    Layer l{kind, name};
    l.in0 = in;
    l.out = value(name, v.level + level_change, v.channels);
    net.layers.push_back(l);
    return l.out;
  }
  int depth_to_space(const std::string& name, int in) {
    const Value v = net.values[in];
    Layer l{LayerKind::depth_to_space, name};
    l.in0 = in;
    l.out = value(name, v.level - 1, v.channels / 4);
    net.layers.push_back(l);
    return l.out;
  }
  int concat(const std::string& name, int a, int b) {
    Layer l{LayerKind::concat, name};
    l.in0 = a;
    l.in1 = b;
    l.out = value(name, net.values[a].level, net.values[a].channels + net.values[b].channels);
    net.layers.push_back(l);
    return l.out;
  }
};

}  // namespace

UNet build_unet(const UNetConfig& c) {
  validate(c);
  Builder b;
  b.net.config = c;
  int x = b.net.input = b.value("input", 0, c.in_channels);
  std::vector<int> skips;
  for (int lvl = 0; lvl < c.depth; ++lvl) {
    const std::string e = "enc" + std::to_string(lvl);
    x = b.convblock(e + ".0", x, c.filters << lvl);
    x = b.convblock(e + ".1", x, c.filters << lvl);
    skips.push_back(x);
    x = b.unary(LayerKind::maxpool, e + ".pool", x, +1);
  }
  x = b.convblock("bottleneck", x, c.filters << c.depth);
  for (int lvl = c.depth - 1; lvl >= 0; --lvl) {
    const std::string d = "dec" + std::to_string(lvl);
    x = b.convblock(d + ".0", x, c.filters << lvl);
    if (c.upsampling == Upsampling::transposed)
      x = b.depth_to_space(d + ".up", b.conv(d + ".up", x, 4 * (c.filters << lvl), 1));
    else
      x = b.unary(LayerKind::upsample, d + ".up", x, -1);
    x = b.concat(d + ".cat", x, skips[lvl]);
    x = b.convblock(d + ".1", x, c.filters << lvl);
  }
  x = b.convblock("final", x, c.filters);
  b.net.logits = b.conv("head", x, c.classes, 1);
  return b.net;
}

}  // namespace mixseg
