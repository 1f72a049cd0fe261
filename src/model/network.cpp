// Forward and backward over the U-Net schedule (see network.h).
#include "model/network.h"

#include <cmath>
#include <new>
#include <tuple>

#include "core/error.h"

#include <fmt/format.h>
#include "core/rng.h"

namespace mixseg {

Weights init_weights(const UNet& net, uint64_t seed) {
  Weights wt;
  wt.params.assign(net.param_numel, 0.0f);
  wt.running.assign(net.running_numel, 0.0f);
  Rng rng(seed);
  for (const auto& p : net.params) {
    float* d = wt.params.data() + p.offset;
    switch (p.kind) {
      case ParamKind::conv_weight: {
        const double fan_in = double(p.shape.h) * p.shape.w * p.shape.c;
        const double limit = std::sqrt(6.0 / fan_in);
        for (size_t i = 0; i < p.numel(); ++i) d[i] = float(rng.uniform(-limit, limit));
        break;
      }
      case ParamKind::bn_gamma: std::fill(d, d + p.numel(), 1.0f); break;
      case ParamKind::bn_beta: break;
    }
  }
  for (const auto& b : net.bns) std::fill_n(wt.running.data() + b.running_offset + b.channels, b.channels, 1.0f);
  return wt;
}

namespace {

// For each layer: the index of the bn_relu layer that directly consumes this
// conv's output (folded into it in inference), else -1.
std::vector<int> foldable_bns(const UNet& net) {
  std::vector<int> folded(net.layers.size(), -1);
  for (size_t i = 0; i + 1 < net.layers.size(); ++i) {
    const Layer &l = net.layers[i], &next = net.layers[i + 1];
    if (l.kind == LayerKind::conv && next.kind == LayerKind::bn_relu && next.in0 == l.out) folded[i] = int(i + 1);
  }
  return folded;
}

// Whether layer i is an upsample whose output only the next layer, a concat, reads.
bool upsample_feeds_concat(const UNet& net, size_t i) {
  return net.layers[i].kind == LayerKind::upsample && i + 1 < net.layers.size() &&
         net.layers[i + 1].kind == LayerKind::concat && net.layers[i + 1].in0 == net.layers[i].out;
}

// Zero-copy concat (training, on backends with Op::channel_slices): per
// value, the concat layer that holds it as a channel slice of its output
// (and its gradient as one of the output's gradient), else -1. The U-Net's
// skip connection (a bn_relu's output, also max-pooled) and the decoder's
// upsampled tensor (nearest, or the transposed convolution's depth-to-space
// move) qualify: their producers write their slice in place, the concat's
// forward copies nothing, and its backward is the decoder conv's data
// gradient itself, read in place by the upsampling's backward and the skip's
// BatchNorm backward. Both inputs of a concat qualify or neither: each made
// by a bn_relu, upsample or depth_to_space, read by slice-taking ops only
// (max pooling, this concat), and every other reader before the concat in
// the schedule, so in the backward the concat's gradient is complete before
// they add to it.
std::vector<int> concat_slices(const UNet& net, const Workspace& ws) {
  std::vector<int> in_concat(net.values.size(), -1);
  if (!ws.training || !ws.backend->supports(Op::channel_slices, ws.dtype)) return in_concat;
  std::vector<int> producer(net.values.size(), -1);
  for (size_t i = 0; i < net.layers.size(); ++i) producer[size_t(net.layers[i].out)] = int(i);
  auto qualifies = [&](int v, size_t cat) {
    const int p = producer[size_t(v)];
    if (v == net.input || p < 0) return false;
    const LayerKind k = net.layers[size_t(p)].kind;
    if (k != LayerKind::bn_relu && k != LayerKind::upsample && k != LayerKind::depth_to_space) return false;
    for (size_t i = 0; i < net.layers.size(); ++i) {
      const Layer& l = net.layers[i];
      if (i == cat || (l.in0 != v && l.in1 != v)) continue;
      if (l.kind != LayerKind::maxpool || i > cat) return false;
    }
    return true;
  };
  for (size_t i = 0; i < net.layers.size(); ++i) {
    const Layer& l = net.layers[i];
    if (l.kind == LayerKind::concat && l.in0 != l.in1 && qualifies(l.in0, i) && qualifies(l.in1, i))
      in_concat[size_t(l.in0)] = in_concat[size_t(l.in1)] = int(i);
  }
  return in_concat;
}

// The elements of scratch memory the backward needs for gradients that fan
// in (see backward()): the largest value whose gradient a consumer other
// than max pooling (which adds in place) meets already written, following
// the backward's order; 0 for the U-Net, whose one fan-in (the skip
// connection: concat, then max pooling) needs none.
size_t fan_in_scratch(const UNet& net, const Workspace& ws) {
  std::vector<uint8_t> written(net.values.size(), 0);
  size_t need = 0;
  for (auto it = net.layers.rbegin(); it != net.layers.rend(); ++it)
    for (int v : {it->in0, it->in1}) {
      if (v < 0 || v == net.input) continue;
      if (written[size_t(v)] && it->kind != LayerKind::maxpool && ws.in_concat[size_t(v)] < 0)
        need = std::max(need, net.values[size_t(v)].shape(ws.batch, ws.h, ws.w).numel());
      written[size_t(v)] = 1;
    }
  return need;
}

// Allocates everything a workspace holds from its two arenas; called twice
// (plan, then commit and allocate for real).
void allocate(const UNet& net, Workspace& ws) {
  ws.activations.reset();
  ws.weights.reset();
  // Inference stores neither the conv outputs folded away nor the upsampled
  // tensors (upsample and concat run fused; see forward()).
  std::vector<uint8_t> skip(net.values.size(), 0);
  if (!ws.training)
    for (size_t i = 0; i < net.layers.size(); ++i)
      if (ws.folded_bn[i] >= 0 || upsample_feeds_concat(net, i)) skip[net.layers[i].out] = 1;
  for (size_t v = 0; v < net.values.size(); ++v) {
    const Shape s = net.values[v].shape(ws.batch, ws.h, ws.w);
    if (!skip[v] && ws.in_concat[v] < 0) ws.act[v] = ws.activations.alloc(ws.dtype, s);
  }
  if (ws.dtype != DType::f32) ws.input_f32 = ws.activations.alloc(DType::f32, ws.act[net.input].shape);
  ws.bn_running = ws.weights.alloc(DType::f32, {1, 1, 1, int(net.running_numel)});
  if (ws.training) {
    for (size_t v = 0; v < net.values.size(); ++v)
      if (int(v) != net.input && ws.in_concat[v] < 0)
        ws.grad[v] = ws.activations.alloc(ws.dtype, net.values[v].shape(ws.batch, ws.h, ws.w));
    for (size_t i = 0; i < net.layers.size(); ++i) {  // the zero-copy concats' inputs: slices of the output
      const Layer& l = net.layers[i];
      if (l.kind != LayerKind::concat || ws.in_concat[size_t(l.in0)] != int(i)) continue;
      const int ca = net.values[size_t(l.in0)].channels, cb = net.values[size_t(l.in1)].channels;
      for (auto [v, c0, c] : {std::tuple{l.in0, 0, ca}, std::tuple{l.in1, ca, cb}}) {
        ws.act[size_t(v)] = ws.act[size_t(l.out)].channels(c0, c);
        ws.grad[size_t(v)] = ws.grad[size_t(l.out)].channels(c0, c);
      }
    }
    if (const size_t n = fan_in_scratch(net, ws)) ws.scratch = ws.activations.alloc(ws.dtype, {1, 1, 1, int(n)});
    for (size_t b = 0; b < net.bns.size(); ++b) ws.bn_saved[b] = ws.activations.alloc(DType::f32, {1, 1, 4, net.bns[b].channels});
    ws.target = ws.activations.alloc(DType::u8, ws.act[net.logits].shape);
    const Shape flat{1, 1, 1, int(net.param_numel)};
    ws.masters = ws.weights.alloc(DType::f32, flat);
    ws.moment1 = ws.weights.alloc(DType::f32, flat);
    ws.moment2 = ws.weights.alloc(DType::f32, flat);
    ws.param_grads = ws.weights.alloc(DType::f32, flat);
    ws.params_storage = ws.dtype == DType::f32 ? Tensor{nullptr, DType::f32, flat} : ws.weights.alloc(ws.dtype, flat);
    ws.control = ws.weights.alloc(DType::u8, {1, 1, 1, int(sizeof(StepControl))}).as<StepControl>();
    // The conv weights are views into the storage copy (or the masters).
    const Tensor& storage = ws.dtype == DType::f32 ? ws.masters : ws.params_storage;
    for (size_t p = 0; p < net.params.size(); ++p)
      if (net.params[p].kind == ParamKind::conv_weight && storage.data)
        ws.conv_w[p] = {static_cast<std::byte*>(storage.data) + net.params[p].offset * size_t(dtype_size(ws.dtype)),
                        ws.dtype, net.params[p].shape};
    return;
  }
  ws.bn_affine = ws.weights.alloc(DType::f32, {1, 1, 1, int(net.running_numel)});
  for (size_t p = 0; p < net.params.size(); ++p)
    if (net.params[p].kind == ParamKind::conv_weight) ws.conv_w[p] = ws.weights.alloc(ws.dtype, net.params[p].shape);
  if (!ws.training)
    for (size_t i = 0; i < net.layers.size(); ++i)
      if (ws.folded_bn[i] >= 0)
        ws.conv_bias[net.layers[i].param] = ws.weights.alloc(DType::f32, {1, 1, 1, net.params[net.layers[i].param].shape.n});
}

BatchNormState bn_state(const UNet& net, const Layer& l, Workspace& ws) {
  const BatchNormInfo& b = net.bns[l.bn];
  float* running = ws.bn_running.as<float>() + b.running_offset;
  if (ws.training) {  // gamma and beta straight from the masters
    const float* masters = ws.masters.as<float>();
    float* saved = ws.bn_saved[l.bn].as<float>();
    return {masters + net.params[l.param].offset, masters + net.params[l.param + 1].offset, running,
            running + b.channels, saved, saved + b.channels, saved + 2 * b.channels, saved + 3 * b.channels};
  }
  const float* affine = ws.bn_affine.as<float>() + b.running_offset;
  return {affine, affine + b.channels, running, running + b.channels, nullptr, nullptr};
}

Tensor view(const Tensor& t, const Shape& s) { return {t.data, t.dtype, s}; }

}  // namespace

std::unique_ptr<Workspace> make_workspace(const UNet& net, Backend& backend, Policy policy, int batch, int h, int w,
                                          bool training) {
  check_input_size(net.config, h, w);
  if (batch < 1) fail("batch size must be >= 1, got {}", batch);
  const PolicyInfo& pi = policy_info(policy);
  if (training) check_trainable(policy);
  if (!backend.supports(Op::conv2d_fwd, pi.storage))
    fail("backend '{}' does not support {} convolutions", backend.name(), dtype_name(pi.storage));
  auto ws = std::make_unique<Workspace>();
  ws->backend = &backend;
  ws->policy = policy;
  ws->dtype = pi.storage;
  ws->batch = batch;
  ws->h = h;
  ws->w = w;
  ws->training = training;
  ws->act.resize(net.values.size());
  ws->grad.resize(net.values.size());
  ws->conv_w.resize(net.params.size());
  ws->conv_bias.resize(net.params.size());
  ws->folded_bn = training ? std::vector<int>(net.layers.size(), -1) : foldable_bns(net);
  ws->bn_saved.resize(net.bns.size());
  ws->grad_written.assign(net.values.size(), 0);
  ws->in_concat = concat_slices(net, *ws);
  allocate(net, *ws);
  try {
    ws->activations.commit(backend);
    ws->weights.commit(backend);
  } catch (const Error& e) {  // say what needed the memory and what needs less
    throw OutOfMemory(fmt::format("{}: the {} workspace at batch {}, {}x{}, {} needs {} of activations and {} of weights; "
         "a smaller batch, input size or model{} needs less",
         e.what(), training ? "training" : "inference", batch, h, w, pi.name,
         memory_size_text(ws->activations.planned_bytes()), memory_size_text(ws->weights.planned_bytes()),
         pi.storage == DType::f32 ? ", or a 16-bit policy," : ""));
  }
  allocate(net, *ws);
  if (training) ws->control_host = new (backend.allocate_host(sizeof(StepControl))) StepControl;
  return ws;
}

std::vector<float> fold_batchnorm(const UNet& net, const Weights& wt, const Layer& bn, std::vector<float>& w) {
  const BatchNormInfo& b = net.bns[bn.bn];
  const float* gamma = wt.params.data() + net.params[bn.param].offset;
  const float* beta = wt.params.data() + net.params[bn.param + 1].offset;
  const float* mean = wt.running.data() + b.running_offset;
  const float* var = mean + b.channels;
  const size_t per_channel = w.size() / size_t(b.channels);
  std::vector<float> bias(size_t(b.channels));
  for (int c = 0; c < b.channels; ++c) {
    const double scale = double(gamma[c]) / std::sqrt(double(var[c]) + kBatchNormEps);
    for (size_t i = 0; i < per_channel; ++i) w[size_t(c) * per_channel + i] = float(w[size_t(c) * per_channel + i] * scale);
    bias[size_t(c)] = float(double(beta[c]) - double(mean[c]) * scale);
  }
  return bias;
}

void upload_weights(const UNet& net, const Weights& wt, Workspace& ws) {
  if (wt.params.size() != net.param_numel || wt.running.size() != net.running_numel)
    fail("weights hold {} parameters and {} statistics, the model has {} and {}", wt.params.size(), wt.running.size(),
         net.param_numel, net.running_numel);
  Backend& be = *ws.backend;
  be.copy_in(ws.bn_running.data, wt.running.data(), wt.running.size() * sizeof(float));
  std::vector<std::byte> tmp;
  if (ws.training) {  // the masters and their storage copy, whole
    be.copy_in(ws.masters.data, wt.params.data(), wt.params.size() * sizeof(float));
    if (ws.params_storage.data) be.convert(ws.masters, ws.params_storage);
    return;
  }
  std::vector<float> folded;
  std::vector<int> bn_of_param(net.params.size(), -1);
  for (size_t i = 0; i < net.layers.size(); ++i)
    if (ws.folded_bn[i] >= 0) bn_of_param[net.layers[i].param] = ws.folded_bn[i];
  for (size_t p = 0; p < net.params.size(); ++p) {
    const ParamInfo& info = net.params[p];
    if (info.kind != ParamKind::conv_weight) continue;
    const float* src = wt.params.data() + info.offset;
    if (bn_of_param[p] >= 0) {
      folded.assign(src, src + info.numel());
      const std::vector<float> bias = fold_batchnorm(net, wt, net.layers[size_t(bn_of_param[p])], folded);
      be.copy_in(ws.conv_bias[p].data, bias.data(), bias.size() * sizeof(float));
      src = folded.data();
    }
    tmp.resize(info.numel() * dtype_size(ws.dtype));
    dispatch_float(ws.dtype, [&]<class T>() { narrow(src, reinterpret_cast<T*>(tmp.data()), info.numel()); });
    be.copy_in(ws.conv_w[p].data, tmp.data(), tmp.size());
  }
  // BatchNorm: gamma and beta (flat params) into the running layout.
  std::vector<float> affine(net.running_numel);
  for (const Layer& l : net.layers) {
    if (l.kind != LayerKind::bn_relu) continue;
    const BatchNormInfo& b = net.bns[l.bn];
    const float* gamma = wt.params.data() + net.params[l.param].offset;
    const float* beta = wt.params.data() + net.params[l.param + 1].offset;
    std::copy_n(gamma, b.channels, affine.begin() + long(b.running_offset));
    std::copy_n(beta, b.channels, affine.begin() + long(b.running_offset + b.channels));
  }
  be.copy_in(ws.bn_affine.data, affine.data(), affine.size() * sizeof(float));
}

const float* host_f32(Workspace& ws, const Tensor& t, std::vector<float>& tmp) {
  if (t.dtype != DType::f32) fail("host_f32: {} tensor, expected f32", dtype_name(t.dtype));
  ws.backend->synchronize();
  if (ws.backend->host_memory()) return t.as<float>();
  tmp.resize(t.numel());
  ws.backend->copy_out(tmp.data(), t.data, t.bytes());
  return tmp.data();
}

void set_input(const UNet& net, Workspace& ws, const float* images) {
  const Tensor& in = ws.act[net.input];
  ws.backend->copy_in(ws.input_f32.data ? ws.input_f32.data : in.data, images, in.numel() * sizeof(float));
  convert_input(net, ws);
}

void convert_input(const UNet& net, Workspace& ws) {
  if (ws.input_f32.data) ws.backend->convert(ws.input_f32, ws.act[net.input]);
}

Workspace::~Workspace() {
  if (!backend) return;
  if (recording >= 0) backend->release_recording(recording);
  if (control_host) backend->deallocate_host(control_host);
}

void run_recorded(Workspace& ws, uint64_t key, const std::function<void()>& ops) {
  Backend& be = *ws.backend;
  if (ws.recording >= 0 && ws.recording_key != key) {
    be.release_recording(ws.recording);
    ws.recording = -1;
  }
  ++ws.runs;
  if (ws.recording >= 0) return be.replay(ws.recording);
  // The first run does the ops' one-time set-up (algorithm search, buffers),
  // which must not happen inside a recording.
  if (ws.runs == 1 || ws.recording == -2 || !be.begin_recording()) return ops();
  try {
    ops();
  } catch (...) {
    // An op refused to be recorded (e.g. a library call that synchronises
    // inside): end the recording and run the ops as usual from now on; an
    // error that was not the recording's comes again from that run.
    const int r = be.end_recording();
    if (r >= 0) be.release_recording(r);
    ws.recording = -2;
    return ops();
  }
  ws.recording = be.end_recording();
  ws.recording_key = key;
  if (ws.recording >= 0)
    be.replay(ws.recording);
  else
    ops(), ws.recording = -2;  // the backend could not record these: run them as usual from now on
}

std::vector<float> logits_f32(const UNet& net, Workspace& ws) {
  const Tensor& t = ws.act[net.logits];
  std::vector<std::byte> tmp(t.bytes());
  ws.backend->copy_out(tmp.data(), t.data, tmp.size());
  std::vector<float> out(t.numel());
  dispatch_float(ws.dtype, [&]<class T>() { widen(reinterpret_cast<const T*>(tmp.data()), out.data(), out.size()); });
  return out;
}

namespace {

void forward_ops(const UNet& net, Workspace& ws) {
  Backend& be = *ws.backend;
  be.allow_tf32(ws.policy == Policy::tf32);
  for (size_t i = 0; i < net.layers.size(); ++i) {
    const Layer& l = net.layers[i];
    const Tensor& x = ws.act[l.in0];
    const Tensor& y = ws.act[l.out];
    if (ws.folded_bn[i] >= 0) {  // inference: conv + folded BatchNorm + ReLU, then skip the BatchNorm layer
      const int b = ws.folded_bn[i];
      be.conv2d_fwd_bias(x, ws.conv_w[l.param], ws.conv_bias[l.param].as<float>(), ws.act[net.layers[size_t(b)].out],
                         true);
      i = size_t(b);
      continue;
    }
    if (upsample_feeds_concat(net, i) && i + 2 < net.layers.size() && ws.folded_bn[i + 2] >= 0 &&
        net.layers[i + 2].in0 == net.layers[i + 1].out) {  // inference: upsample + concat + conv (+ folded BN) in one op
      const Layer& cat = net.layers[i + 1];
      const Layer& conv = net.layers[i + 2];
      const int b = ws.folded_bn[i + 2];
      be.upsample_concat_conv2d_fwd_bias(x, ws.act[cat.in1], ws.act[cat.out], ws.conv_w[conv.param],
                                         ws.conv_bias[conv.param].as<float>(), ws.act[net.layers[size_t(b)].out], true);
      i = size_t(b);
      continue;
    }
    if (upsample_feeds_concat(net, i)) {  // the decoder's upsample + concat in one pass
      const Layer& cat = net.layers[i + 1];
      if (ws.in_concat[size_t(l.out)] >= 0)
        be.upsample_fwd(x, y);  // into its slice, beside the skip already there
      else
        be.upsample_concat_fwd(x, ws.act[cat.in1], ws.act[cat.out]);
      ++i;
      continue;
    }
    switch (l.kind) {
      case LayerKind::conv: be.conv2d_fwd(x, ws.conv_w[l.param], y); break;
      case LayerKind::bn_relu: {
        const BatchNormState st = bn_state(net, l, ws);
        if (ws.training)
          be.batchnorm_fwd_train(x, st, y, true);
        else
          be.batchnorm_fwd_infer(x, st, y, true);
        break;
      }
      case LayerKind::maxpool: be.maxpool_fwd(x, y); break;
      case LayerKind::upsample: be.upsample_fwd(x, y); break;
      case LayerKind::depth_to_space: be.depth_to_space_fwd(x, y); break;
      case LayerKind::concat:
        if (ws.in_concat[size_t(l.in0)] < 0) be.concat_fwd(x, ws.act[l.in1], y);  // else the inputs are in place
        break;
    }
  }
}

}  // namespace

void forward(const UNet& net, Workspace& ws) {
  if (ws.training) return forward_ops(net, ws);  // the training step records the whole step instead
  run_recorded(ws, 0, [&] { forward_ops(net, ws); });
}

namespace {

bool tensor_finite(Workspace& ws, const Tensor& t) {
  if (!t.data) return true;  // not stored (folded or fused away)
  // A channel slice: the span from its first to its last value, then its channels of each pixel.
  const size_t es = dtype_size(t.dtype), stride = size_t(t.stride()), c = size_t(t.shape.c);
  std::vector<std::byte> tmp(((t.shape.pixels() - 1) * stride + c) * es);
  ws.backend->copy_out(tmp.data(), t.data, tmp.size());
  std::vector<float> f(c);
  for (size_t p = 0; p < t.shape.pixels(); ++p) {
    dispatch_float(t.dtype,
                   [&]<class T>() { widen(reinterpret_cast<const T*>(tmp.data()) + p * stride, f.data(), c); });
    for (float v : f)
      if (!std::isfinite(v)) return false;
  }
  return true;
}

}  // namespace

std::string first_nonfinite(const UNet& net, Workspace& ws) {
  if (!tensor_finite(ws, ws.act[net.input])) return "the input batch";
  for (const Layer& l : net.layers)
    if (!tensor_finite(ws, ws.act[l.out]))
      return fmt::format("the output of {} ({}) in the forward pass", l.name, layer_kind_name(l.kind));
  if (!ws.training) return "";
  if (!tensor_finite(ws, ws.grad[net.logits])) return "the loss gradient (the logits' gradient)";
  for (auto it = net.layers.rbegin(); it != net.layers.rend(); ++it)
    if (it->in0 != net.input && !tensor_finite(ws, ws.grad[it->in0]))
      return fmt::format("the gradient {} ({}) passes back", it->name, layer_kind_name(it->kind));
  std::vector<float> tmp;
  const float* g = host_f32(ws, ws.param_grads, tmp);
  for (const ParamInfo& p : net.params)
    for (size_t i = 0; i < p.numel(); ++i)
      if (!std::isfinite(g[p.offset + i])) return fmt::format("the gradient of the weights {}", p.name);
  return "";
}

void convolutions_only(const UNet& net, Workspace& ws) {
  constexpr uint64_t kKey = 0x636f6e762d6f6e6cull;  // "conv-onl": not a step's settings key
  Backend& be = *ws.backend;
  run_recorded(ws, kKey, [&] {
    be.allow_tf32(ws.policy == Policy::tf32);
    for (size_t i = 0; i < net.layers.size(); ++i) {
      const Layer& l = net.layers[i];
      if (l.kind != LayerKind::conv) continue;
      if (ws.folded_bn[i] < 0) {
        be.conv2d_fwd(ws.act[l.in0], ws.conv_w[l.param], ws.act[l.out]);
        continue;
      }
      // Inference: a folded conv through the op the pass uses (the backend's
      // inference kernels) without its epilogue, into its BatchNorm's output
      // (the conv's own is not stored).
      be.conv2d_fwd_bias(ws.act[l.in0], ws.conv_w[l.param], nullptr, ws.act[net.layers[size_t(ws.folded_bn[i])].out],
                         false);
    }
    if (!ws.training) return;
    float* pg = ws.param_grads.as<float>();
    for (auto it = net.layers.rbegin(); it != net.layers.rend(); ++it) {
      if (it->kind != LayerKind::conv) continue;
      const ParamInfo& p = net.params[it->param];
      be.conv2d_bwd_weights(ws.act[it->in0], ws.grad[it->out], {pg + p.offset, DType::f32, p.shape});
      if (it->in0 != net.input) be.conv2d_bwd_data(ws.grad[it->out], ws.conv_w[it->param], ws.grad[it->in0]);
    }
  });
}

void backward(const UNet& net, Workspace& ws) {
  if (!ws.training) fail("backward() needs a workspace made for training");
  Backend& be = *ws.backend;
  be.allow_tf32(ws.policy == Policy::tf32);
  std::fill(ws.grad_written.begin(), ws.grad_written.end(), 0);
  ws.grad_written[net.logits] = 1;
  // A value's gradient is written by the first consumer (in reverse order) and
  // accumulated by later ones: max pooling adds in place, others write into
  // scratch (sized by fan_in_scratch), which is then added.
  bool scratch_busy = false;
  auto target = [&](int v) -> Tensor {
    if (!ws.grad_written[v]) return ws.grad[v];
    if (scratch_busy || ws.scratch.numel() < ws.grad[v].numel())
      fail("internal error: a gradient fans in without scratch memory planned for it");
    scratch_busy = true;
    return view(ws.scratch, ws.grad[v].shape);
  };
  auto done = [&](int v, const Tensor& written) {
    if (written.data != ws.grad[v].data) {
      be.add_inplace(written, ws.grad[v]);
      scratch_busy = false;
    }
    ws.grad_written[v] = 1;
  };
  float* pg = ws.param_grads.as<float>();
  for (auto it = net.layers.rbegin(); it != net.layers.rend(); ++it) {
    const Layer& l = *it;
    const Tensor& dy = ws.grad[l.out];
    if (!ws.grad_written[l.out]) fail("internal error: no gradient reached {}", net.values[l.out].name);
    switch (l.kind) {
      case LayerKind::conv: {
        const ParamInfo& p = net.params[l.param];
        be.conv2d_bwd_weights(ws.act[l.in0], dy, {pg + p.offset, DType::f32, p.shape});
        if (l.in0 != net.input) {
          const Tensor dx = target(l.in0);
          be.conv2d_bwd_data(dy, ws.conv_w[l.param], dx);
          done(l.in0, dx);
        }
        break;
      }
      case LayerKind::bn_relu: {
        const Tensor dx = target(l.in0);
        be.batchnorm_bwd(dy, &ws.act[l.out], ws.act[l.in0], bn_state(net, l, ws), dx, pg + net.params[l.param].offset,
                         pg + net.params[l.param + 1].offset);
        done(l.in0, dx);
        break;
      }
      case LayerKind::maxpool:  // where a gradient is there already (the skip's, from its concat), added to it
        be.maxpool_bwd(ws.act[l.in0], dy, ws.grad[l.in0], ws.grad_written[l.in0] != 0);
        ws.grad_written[l.in0] = 1;
        break;
      case LayerKind::upsample: {
        const Tensor dx = target(l.in0);
        be.upsample_bwd(dy, dx);
        done(l.in0, dx);
        break;
      }
      case LayerKind::depth_to_space: {
        const Tensor dx = target(l.in0);
        be.depth_to_space_bwd(dy, dx);
        done(l.in0, dx);
        break;
      }
      case LayerKind::concat: {
        if (ws.in_concat[size_t(l.in0)] >= 0) {  // the inputs' gradients are slices of dy: written
          ws.grad_written[size_t(l.in0)] = ws.grad_written[size_t(l.in1)] = 1;
          break;
        }
        const Tensor da = target(l.in0);
        const Tensor db = target(l.in1);
        be.concat_bwd(dy, da, db);
        done(l.in0, da);
        done(l.in1, db);
        break;
      }
    }
  }
}

}  // namespace mixseg
