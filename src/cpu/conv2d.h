// Fast CPU convolutions through oneDNN: forward, backward-data and
// backward-weights on NHWC activations and OHWI weights, with primitives
// created once per (shape, dtype) and cached. oneDNN picks its own weight
// layout (format "any"); weights are reordered into it on each call, which
// costs a pass over the (small) weights, not the activations.
//
// 16-bit storage: where this CPU's oneDNN has native f16/bf16 convolutions
// (f32 accumulation inside), they are used on the 16-bit tensors directly;
// otherwise the inputs are widened to f32 scratch, the f32 primitive runs,
// and the output is rounded once to the storage type: the same rounding
// points either way. Weight gradients are always f32.
//
// Each pass (training forward, inference forward with a bias and ReLU
// post-op for BatchNorm folded in, backward-data, backward-weights) chooses
// its algorithm per shape the first time it meets it, by timing the
// candidates on that shape (like cudnn.benchmark): direct convolution on the
// NHWC tensors, or Winograd F(4x4,3x3) (f32 on AVX-512 only) in oneDNN's
// blocked layout with the reorders to and from NHWC counted in its time.
// Every pass also times the own Winograd kernels (cpu/conv2d_winograd.h:
// F(2x2,3x3) forward and backward-data, F(3x3,2x2) backward-weights), which
// read and write f16 directly, against that whole path (for f16:
// conversions included); backward-weights also times the own direct kernel
// for narrow layers (cpu/conv2d_bwd_weights_rows.h) against the winner.
// Winograd's transforms add rounding error; the tests hold it to the same
// tolerance as direct convolution (ops/tolerance.h).
#pragma once
#include <map>
#include <string>
#include <memory>
#include <tuple>
#include <vector>

#include "core/backend.h"
#include "core/dtype.h"
#include "ops/conv2d_ref.h"

namespace mixseg {

class DnnlConvolutions {
 public:
  DnnlConvolutions();
  ~DnnlConvolutions();
  DnnlConvolutions(const DnnlConvolutions&) = delete;
  DnnlConvolutions& operator=(const DnnlConvolutions&) = delete;

  void forward(const ConvShape& s, DType dt, const void* x, const void* w, void* y);
  // Inference: y = conv(x, w) + bias (f32 [Cout], or null), then ReLU if relu.
  void forward_bias(const ConvShape& s, DType dt, const void* x, const void* w, const float* bias, void* y, bool relu);
  // Inference on concat(upsample2x(low), skip) (c_low channels of low, the
  // rest of s.cin from skip) without storing that input, where the own
  // Winograd kernel runs this shape; false (nothing done) elsewhere.
  bool forward_bias_upsample_concat(const ConvShape& s, DType dt, const void* low, int c_low, const void* skip,
                                    const void* w, const float* bias, void* y, bool relu);
  void backward_data(const ConvShape& s, DType dt, const void* dy, const void* w, void* dx);
  void backward_weights(const ConvShape& s, DType dt, const void* x, const void* dy, float* dw);
  // Whether convolutions of this dtype run natively in oneDNN (else through f32).
  bool native(DType dt);
  // What ran each pass and shape so far, one line each in the order first
  // run, e.g. "infer f32 1x64x32x64->64 k3 +bias +relu: winograd" (a 16-bit
  // pass widened to f32: "...: through f32" and the f32 pass's own line).
  std::vector<std::string> chosen_algorithms() const;
  // Inference keeps each conv's weights in the primitive's layout (for
  // Winograd: transformed) between calls with the same weight pointer; the
  // owner calls this when memory in [begin, begin + bytes) is rewritten or
  // freed (bytes = 0: everything).
  void invalidate_weights(const void* begin, size_t bytes);
  // Follows these choices (lines as chosen_algorithms() writes them) instead
  // of timing, for the passes and shapes they name; the others are timed.
  // Throws naming a line that is not such a choice, and, when the pass
  // comes, a recorded algorithm that cannot run on this CPU.
  void replay_choices(const std::vector<std::string>& lines);
  // The algorithm: the fastest by timing (default), or one forced (Winograd
  // falls back to direct where oneDNN has none for the shape or pass).
  void set_algorithm(ConvAlgorithm a);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace mixseg
