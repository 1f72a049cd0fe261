// cuDNN convolutions for the CUDA backend: forward, backward-data and
// backward-weights on NHWC activations and OHWI (cuDNN's NHWC / KRSC)
// weights, stride 1, same padding. Descriptors are made once per (pass,
// dtype, shape) and cached with the algorithm cuDNN's Find measured fastest
// on the first call's own buffers (like cudnn.benchmark); the workspace is one
// device buffer grown to the largest need. Math: FMA only for f32 (TF32 off,
// the fp32 policy's rule) unless TF32 is allowed (the tf32 policy), tensor
// cores for f16/bf16 with f32 accumulation.
// Weight gradients come out of cuDNN in the storage type and are widened to
// f32 (what mixed-precision frameworks do on GPUs; the CPU computes them in
// f32 directly).
#pragma once
#include <cuda_runtime_api.h>

#include <map>
#include <memory>
#include <string>
#include <tuple>
#include <vector>

#include "core/dtype.h"
#include "ops/conv2d_ref.h"

namespace mixseg {

class CudnnConvolutions {
 public:
  explicit CudnnConvolutions(cudaStream_t stream);
  ~CudnnConvolutions();
  CudnnConvolutions(const CudnnConvolutions&) = delete;
  CudnnConvolutions& operator=(const CudnnConvolutions&) = delete;

  void forward(const ConvShape& s, DType dt, const void* x, const void* w, void* y);
  void backward_data(const ConvShape& s, DType dt, const void* dy, const void* w, void* dx);
  // dw: f32 [Cout, K, K, Cin] in device memory, overwritten.
  void backward_weights(const ConvShape& s, DType dt, const void* x, const void* dy, float* dw);
  // Whether f32 convolutions from now on may use TF32 tensor cores (the tf32 policy).
  void allow_tf32(bool allowed);
  // "fwd f16 1x512x256x16->16 k3: algo 1 (tensor cores)", one per shape and pass.
  std::vector<std::string> chosen_algorithms() const;
  // Takes the algorithm and math of these lines (as chosen_algorithms writes
  // them) instead of running Find, for the passes and shapes they name (an
  // f32 line with tensor-core math for the tf32 policy's passes, without for
  // fp32's); throws naming a line that is not such a choice.
  void replay_choices(const std::vector<std::string>& lines);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace mixseg
