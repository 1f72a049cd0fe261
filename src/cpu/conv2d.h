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
#pragma once
#include <map>
#include <memory>
#include <tuple>
#include <vector>

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
  void backward_data(const ConvShape& s, DType dt, const void* dy, const void* w, void* dx);
  void backward_weights(const ConvShape& s, DType dt, const void* x, const void* dy, float* dw);
  // Whether convolutions of this dtype run natively in oneDNN (else through f32).
  bool native(DType dt);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace mixseg
