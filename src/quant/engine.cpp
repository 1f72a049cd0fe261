// The int8 network's forward pass (engine.h).
#include "quant/engine.h"

#include "core/error.h"
#include "data/dataset.h"
#include "data/loader.h"
#include "train/metrics.h"
#include "quant/kernels_int8.h"

namespace mixseg {

namespace {

// Whether tensor id is read by one op only and is none of the model's named tensors.
bool read_once(const QModel& m, int id) {
  int reads = 0;
  for (const DeployOp& op : m.ops) reads += (op.in0 == id) + (op.in1 == id);
  return reads == 1 && id != m.output && id != m.logits && id != m.input;
}

// Whether ops i, i + 1, i + 2 are the decoder's upsample, the concat of its
// output (first) with a skip, and a convolution of that concat, with
// nothing else reading the upsampled or the concatenated tensor.
bool upsample_concat_conv(const QModel& m, size_t i) {
  if (i + 2 >= m.ops.size()) return false;
  const DeployOp &up = m.ops[i], &cat = m.ops[i + 1], &conv = m.ops[i + 2];
  return up.kind == DeployOpKind::upsample && cat.kind == DeployOpKind::concat && cat.in0 == up.out &&
         conv.kind == DeployOpKind::conv && conv.in0 == cat.out && read_once(m, up.out) && read_once(m, cat.out);
}

// The forward pass into t (one buffer per tensor, resized as needed: every op
// writes all of its output, so reused buffers need no clearing). With fuse
// (the fast kernels), the decoder's upsample + concat + convolution run as
// one (conv2d_int8_upsample_concat_fast), and the upsampled and concatenated
// tensors are left unwritten.
void forward_int8(const QModel& m, const int8_t* images, int batch, bool fast, bool fuse,
                  std::vector<std::vector<int8_t>>& t) {
  if (batch < 1) fail("int8 inference needs a batch of at least 1, got {}", batch);
  t.resize(m.tensors.size());
  auto dims = [&](int id) {
    const QTensor& q = m.tensors[size_t(id)];
    return std::array<int, 3>{m.height >> q.level, m.width >> q.level, q.channels};
  };
  auto numel = [&](int id) {
    const auto d = dims(id);
    return size_t(batch) * d[0] * d[1] * d[2];
  };
  t[size_t(m.input)].assign(images, images + numel(m.input));  // reuses the capacity
  for (size_t i = 0; i < m.ops.size(); ++i) {
    const DeployOp& op = m.ops[i];
    const auto in = dims(op.in0);
    if (fast && fuse && upsample_concat_conv(m, i)) {
      const DeployOp &cat = m.ops[i + 1], &conv = m.ops[i + 2];
      const auto out = dims(conv.out);
      std::vector<int8_t>& y = t[size_t(conv.out)];
      y.resize(numel(conv.out));
      conv2d_int8_upsample_concat_fast(m.convs[size_t(conv.conv)], m.tensors[size_t(cat.out)].q,
                                       m.tensors[size_t(conv.out)].q, batch, out[0], out[1], t[size_t(op.in0)].data(),
                                       in[2], t[size_t(cat.in1)].data(), y.data());
      i += 2;
      continue;
    }
    const std::vector<int8_t>& x = t[size_t(op.in0)];
    std::vector<int8_t>& y = t[size_t(op.out)];
    y.resize(numel(op.out));
    switch (op.kind) {
      case DeployOpKind::conv: {
        const QConv& c = m.convs[size_t(op.conv)];
        const QParams xq = m.tensors[size_t(op.in0)].q, yq = m.tensors[size_t(op.out)].q;
        (fast ? conv2d_int8_fast : conv2d_int8_ref)(c, xq, yq, batch, in[0], in[1], x.data(), y.data());
        break;
      }
      case DeployOpKind::transposed_conv: {
        const QConv& c = m.convs[size_t(op.conv)];
        const QParams xq = m.tensors[size_t(op.in0)].q, yq = m.tensors[size_t(op.out)].q;
        (fast ? transposed_conv2x2_int8_fast : transposed_conv2x2_int8_ref)(c, xq, yq, batch, in[0], in[1], x.data(),
                                                                            y.data());
        break;
      }
      case DeployOpKind::maxpool: maxpool2x2_int8(batch, in[0], in[1], in[2], x.data(), y.data()); break;
      case DeployOpKind::upsample: upsample2x_int8(batch, in[0], in[1], in[2], x.data(), y.data()); break;
      case DeployOpKind::concat:
        concat_int8(size_t(batch) * in[0] * in[1], in[2], dims(op.in1)[2], x.data(), t[size_t(op.in1)].data(), y.data());
        break;
      case DeployOpKind::sigmoid: lookup_int8(y.size(), m.sigmoid_table, x.data(), y.data()); break;
    }
  }
}

}  // namespace

std::vector<std::vector<int8_t>> run_int8_all(const QModel& m, const int8_t* images, int batch, bool fast) {
  std::vector<std::vector<int8_t>> t;
  forward_int8(m, images, batch, fast, false, t);  // every tensor written
  return t;
}

std::vector<int8_t> run_int8(const QModel& m, const int8_t* images, int batch, bool fast) {
  // The activations stay allocated between calls on a thread: large fresh
  // allocations come from mmap, and touching them for the first time every
  // call cost more than some of the convolutions (batch 4 ran slower than 1).
  thread_local std::vector<std::vector<int8_t>> buffers;
  forward_int8(m, images, batch, fast, true, buffers);
  return buffers[size_t(m.output)];
}

std::vector<int8_t> quantize_input(const QModel& m, const float* images, size_t n) {
  std::vector<int8_t> q(n);
  const QParams p = m.tensors[size_t(m.input)].q;
  for (size_t i = 0; i < n; ++i) q[i] = quantize_value(images[i], p);
  return q;
}

std::vector<float> dequantize_output(const QModel& m, const std::vector<int8_t>& out) {
  std::vector<float> p(out.size());
  const QParams q = m.tensors[size_t(m.output)].q;
  for (size_t i = 0; i < out.size(); ++i) p[i] = dequantize_value(out[i], q);
  return p;
}

SegMetrics evaluate_int8(const QModel& m, const Dataset& data, int batch, bool fast) {
  if (data.h != m.height || data.w != m.width || data.channels != m.config.in_channels)
    fail("the int8 model takes {}x{} images with {} channels, the data has {}x{} with {}", m.height, m.width,
         m.config.in_channels, data.h, data.w, data.channels);
  MetricsAccumulator acc;
  std::vector<float> input, centred(data.pixels());
  std::vector<uint8_t> masks;
  for (size_t first = 0; first < data.size(); first += size_t(batch)) {
    const int b = int(std::min<size_t>(size_t(batch), data.size() - first));
    input.resize(size_t(b) * data.image_values());
    masks.resize(size_t(b) * centred.size());
    data.read(first, size_t(b), input.data(), masks.data());
    const std::vector<int8_t> q = quantize_input(m, input.data(), input.size());
    const std::vector<float> p = dequantize_output(m, run_int8(m, q.data(), b, fast));
    // Foreground where p > 1/2, i.e. where p - 1/2 is positive, as a logit would be.
    for (int i = 0; i < b; ++i) {
      for (size_t j = 0; j < centred.size(); ++j) centred[j] = p[size_t(i) * centred.size() + j] - 0.5f;
      acc.add_image(centred.data(), masks.data() + size_t(i) * centred.size(), centred.size());
    }
  }
  return acc.finish();
}

}  // namespace mixseg
