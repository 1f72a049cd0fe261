// Running the U-Net: the f32 weights (masters and BatchNorm running
// statistics), a workspace planned once per (backend, policy, batch, H, W)
// holding every activation in the policy's storage dtype, and the forward
// and backward passes over the static schedule.
//
// Inference workspaces fold each BatchNorm into the convolution before it
// (w' = w * gamma / sqrt(var + eps) per output channel, bias = beta - mean *
// gamma / sqrt(var + eps), computed in double from the f32 state and rounded
// once) and run conv + bias + ReLU as one op, so the pre-BatchNorm
// activations are never stored.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/arena.h"
#include "core/backend.h"
#include "model/unet.h"
#include "precision/policy.h"

namespace mixseg {

// The network's state in f32: trainable parameters (the masters) and
// BatchNorm running statistics, both flat, laid out by UNet::params / bns.
struct Weights {
  std::vector<float> params;
  std::vector<float> running;
};

// He-uniform conv weights (limit sqrt(6 / fan_in)), gamma 1, beta 0, running mean 0, var 1.
Weights init_weights(const UNet& net, uint64_t seed);

struct Workspace {
  Workspace() = default;
  Workspace(const Workspace&) = delete;
  Workspace& operator=(const Workspace&) = delete;
  ~Workspace();  // releases the recording and the host block

  Backend* backend = nullptr;
  Policy policy = Policy::fp32;
  DType dtype = DType::f32;  // storage dtype of activations and conv weights
  int batch = 0, h = 0, w = 0;
  bool training = false;

  Arena activations;  // activations, their gradients, BatchNorm saved statistics, scratch
  Arena weights;      // weights (and in training: masters, moments, gradients, the step's control block)
  std::vector<Tensor> act, grad;  // per value (channel slices of their concat's where concat_slices says)
  // Training on a backend with Op::channel_slices: per value, the concat
  // layer whose buffer holds it as a channel slice (its gradient likewise
  // in the concat's gradient), else -1; see concat_slices in network.cpp.
  std::vector<int> in_concat;
  std::vector<Tensor> conv_w;     // per parameter (only conv weights are set; folded in inference)
  std::vector<Tensor> conv_bias;  // inference: per conv weight parameter followed by BatchNorm, f32 [Cout]
  std::vector<int> folded_bn;     // inference: per layer, the BatchNorm layer folded into this conv, else -1
  std::vector<Tensor> bn_saved;   // per BatchNorm layer: [mean | invstd | scale | shift], f32
  // BatchNorm state in the backend's memory: the running statistics (f32,
  // laid out like Weights::running, per BatchNorm [mean | var] at its
  // running_offset) and, in inference, gamma and beta in the same layout
  // (training reads them from the masters).
  Tensor bn_affine, bn_running;
  Tensor input_f32;  // 16-bit policies: the f32 images on their way in (converted by the backend)
  Tensor scratch;    // for gradients that fan in

  // Training: the whole optimizer state lives in the backend's memory, so a
  // step needs the host only to read its control block back. The masters
  // (f32, UNet::params' flat layout) with their copy in the storage dtype
  // (16-bit policies; the conv weights conv_w are views into it, or into the
  // masters in fp32), the optimizer's moments, the weight gradients, the 0/1
  // targets, and the step's control block with its host mirror.
  Tensor masters, params_storage, moment1, moment2;
  Tensor param_grads;  // f32, UNet::param_numel elements
  Tensor target;       // u8, the logits' shape
  StepControl* control = nullptr;
  StepControl* control_host = nullptr;  // from Backend::allocate_host
  bool state_uploaded = false;          // masters, moments and control hold the run's state
  std::vector<uint8_t> grad_written;

  // The recorded step (training) or forward pass (inference), see run_recorded.
  int recording = -1;  // -1: none yet, -2: recording failed (run as usual)
  uint64_t recording_key = 0;
  int64_t runs = 0;
};

// Plans and allocates a workspace. Throws for sizes the network cannot take.
std::unique_ptr<Workspace> make_workspace(const UNet& net, Backend& backend, Policy policy, int batch, int h, int w,
                                          bool training);
// Writes the weights into the workspace: training workspaces get the f32
// masters, their storage-dtype copy and the running statistics; inference
// workspaces the conv weights in the storage dtype folded with the
// BatchNorm parameters and running statistics.
void upload_weights(const UNet& net, const Weights& weights, Workspace& ws);
// Folds BatchNorm layer `bn` (a bn_relu layer) into the conv weights w (OHWI,
// f32, the conv before it; scaled in place) and returns the bias, as above.
std::vector<float> fold_batchnorm(const UNet& net, const Weights& weights, const Layer& bn, std::vector<float>& w);
// Copies f32 images [batch, h, w, in_channels] into the input, rounding to the storage dtype.
void set_input(const UNet& net, Workspace& ws, const float* images);
// The ops that round ws.input_f32 into the input (16-bit policies; none in fp32).
void convert_input(const UNet& net, Workspace& ws);
// Forward pass; in training BatchNorm uses batch statistics and updates the
// running statistics in ws.bn_running. Inference replays a recording of the
// pass from its second call on where the backend records (run_recorded).
void forward(const UNet& net, Workspace& ws);
// Runs ops (a fixed sequence of backend ops on ws's buffers) through ws's
// recording: the first run as usual, the second recorded and replayed,
// later ones replayed; a different key (the settings baked into the ops)
// records anew. Where the backend does not record, ops simply run.
void run_recorded(Workspace& ws, uint64_t key, const std::function<void()>& ops);
// The pass's convolutions alone, on ws's buffers and in the pass's order:
// in training every conv's forward, then, in reverse, its weight gradient
// and (except on the input) its data gradient; in inference every conv's
// forward, the folded ones through the inference op without bias and ReLU
// (and the decoder's on its stored concat: no upsample fused in). What the
// convolution library reaches on the network's own shapes: the ceiling of a
// step made of these convolutions (`mixseg bench --conv-ceiling`). Recorded
// like a step under its own key; run it after the pass it stands for (whose
// first run did the set-up, e.g. cuDNN's algorithm search), which it leaves
// with meaningless values.
void convolutions_only(const UNet& net, Workspace& ws);
// Backward pass from ws.grad[net.logits] (already written, e.g. by the loss):
// fills ws.param_grads (f32, scaled like the loss gradient).
void backward(const UNet& net, Workspace& ws);
// After a step with non-finite values: where they first appear, following
// the schedule (the input, each layer's output in the forward pass, then each
// gradient in the backward pass, then the weight gradients), e.g. "the output
// of enc2.1.bn (bn_relu) in the forward pass"; empty if everything is finite.
std::string first_nonfinite(const UNet& net, Workspace& ws);
// An f32 tensor of the workspace readable on the host: the backend's memory
// itself where it is host memory, else a copy in tmp (after synchronising).
const float* host_f32(Workspace& ws, const Tensor& t, std::vector<float>& tmp);
// Logits of the last forward pass, widened to f32 [batch, h, w, classes].
std::vector<float> logits_f32(const UNet& net, Workspace& ws);

}  // namespace mixseg
