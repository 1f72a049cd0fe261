// cuDNN's convolutions as the CUDA backend calls them (src/cuda/conv2d.cpp),
// emulated on the CPU for the tests by the reference kernels
// (ops/conv2d_ref.h): NHWC activations, KRSC filters, stride 1, same padding,
// f32/f16/bf16 with f32 sums, each output rounded once (cuDNN's numerics up
// to the order of the sums); f32 with tensor-core math allowed (the tf32
// policy) rounds its inputs to TF32 first, as the tensor cores do. Anything
// else the descriptors could say is refused with CUDNN_STATUS_NOT_SUPPORTED,
// so a change of the backend's calls shows here.
//
// Each call checks its buffers lie in device memory, runs on the handle's
// stream (so it is captured into graphs like the kernels). Algorithm N needs
// N x 256 bytes of workspace (the Get...WorkspaceSize functions say so, and
// a convolution given less refuses to run), and the Find functions report
// one algorithm, 1, and count their calls (find_calls); Find while a stream
// is being captured invalidates the capture (it synchronises on a GPU).
#include <cudnn.h>

#include <cstdint>
#include <cstring>
#include <vector>

#include "core/dtype.h"
#include "cuda_emulation/emulation.h"
#include "ops/conv2d_ref.h"

struct cudnnContext {
  cudaStream_t stream = nullptr;
};
struct cudnnTensorStruct {
  cudnnTensorFormat_t format = CUDNN_TENSOR_NCHW;
  cudnnDataType_t type = CUDNN_DATA_FLOAT;
  int n = 0, c = 0, h = 0, w = 0;
};
struct cudnnFilterStruct {
  cudnnDataType_t type = CUDNN_DATA_FLOAT;
  cudnnTensorFormat_t format = CUDNN_TENSOR_NCHW;
  int k = 0, c = 0, h = 0, w = 0;
};
struct cudnnConvolutionStruct {
  int pad_h = 0, pad_w = 0, u = 1, v = 1, dilation_h = 1, dilation_w = 1;
  cudnnConvolutionMode_t mode = CUDNN_CONVOLUTION;
  cudnnDataType_t compute = CUDNN_DATA_FLOAT;
  cudnnMathType_t math = CUDNN_DEFAULT_MATH;
};

namespace mixseg::cuda_emulation {

namespace {

enum class Pass { fwd, bwd_data, bwd_filter };

struct Conv {
  ConvShape shape;
  cudnnDataType_t type;
  bool tf32;  // f32 inputs rounded to TF32
};

// The convolution the descriptors describe, if it is one the backend makes.
bool describe(const cudnnTensorStruct* x, const cudnnFilterStruct* w, const cudnnConvolutionStruct* c,
              const cudnnTensorStruct* y, Conv* out) {
  if (!x || !w || !c || !y) return false;
  const bool nhwc = x->format == CUDNN_TENSOR_NHWC && y->format == CUDNN_TENSOR_NHWC && w->format == CUDNN_TENSOR_NHWC;
  const bool types = x->type == y->type && x->type == w->type &&
                     (x->type == CUDNN_DATA_FLOAT || x->type == CUDNN_DATA_HALF || x->type == CUDNN_DATA_BFLOAT16);
  const bool shapes = x->n == y->n && x->h == y->h && x->w == y->w && w->c == x->c && w->k == y->c && w->h == w->w &&
                      w->h % 2 == 1 && x->n > 0 && x->h > 0 && x->w > 0 && x->c > 0 && y->c > 0;
  const bool conv = c->u == 1 && c->v == 1 && c->dilation_h == 1 && c->dilation_w == 1 && c->pad_h == w->h / 2 &&
                    c->pad_w == w->w / 2 && c->mode == CUDNN_CROSS_CORRELATION && c->compute == CUDNN_DATA_FLOAT;
  if (!nhwc || !types || !shapes || !conv) return false;
  out->shape = {x->n, x->h, x->w, x->c, y->c, w->h};
  out->type = x->type;
  out->tf32 = x->type == CUDNN_DATA_FLOAT && c->math != CUDNN_FMA_MATH;
  return true;
}

size_t type_size(cudnnDataType_t t) { return t == CUDNN_DATA_FLOAT ? 4 : 2; }

bool unit_scalars(const void* alpha, const void* beta) {
  return *static_cast<const float*>(alpha) == 1.0f && *static_cast<const float*>(beta) == 0.0f;
}

// TF32: f32 with 10 mantissa bits, rounded to nearest even.
std::vector<float> tf32_copy(const float* p, size_t n) {
  std::vector<float> r(p, p + n);
  for (float& v : r) {
    uint32_t u;
    std::memcpy(&u, &v, 4);
    if ((u & 0x7f800000u) != 0x7f800000u) u = (u + 0xfffu + ((u >> 13) & 1u)) & ~0x1fffu;
    std::memcpy(&v, &u, 4);
  }
  return r;
}

template <class T>
void run_typed(Pass pass, const ConvShape& s, bool tf32, const void* a, const void* b, void* out) {
  const size_t act_in = size_t(s.n) * s.h * s.w * s.cin, act_out = size_t(s.n) * s.h * s.w * s.cout;
  const T* ta = static_cast<const T*>(a);
  const T* tb = static_cast<const T*>(b);
  std::vector<float> ra, rb;
  if constexpr (std::is_same_v<T, float>) {
    if (tf32) {
      const size_t na = pass == Pass::bwd_data ? act_out : act_in,
                   nb = pass == Pass::bwd_filter ? act_out : s.weight_numel();
      ra = tf32_copy(ta, na);
      rb = tf32_copy(tb, nb);
      ta = ra.data();
      tb = rb.data();
    }
  }
  switch (pass) {
    case Pass::fwd: conv2d_fwd_ref<T>(s, ta, tb, static_cast<T*>(out)); return;
    case Pass::bwd_data: conv2d_bwd_data_ref<T>(s, ta, tb, static_cast<T*>(out)); return;
    case Pass::bwd_filter: {
      std::vector<float> dw(s.weight_numel());
      conv2d_bwd_weights_ref<T>(s, ta, tb, dw.data());
      T* o = static_cast<T*>(out);
      for (size_t i = 0; i < dw.size(); ++i) o[i] = store<T>(dw[i]);
      return;
    }
  }
}

// Checks the buffers (a and b inputs, out the output, in the pass's order),
// then runs the pass on the handle's stream.
cudnnStatus_t run(cudnnHandle_t h, Pass pass, const Conv& c, const void* a, const void* b, void* out) {
  const ConvShape& s = c.shape;
  const size_t e = type_size(c.type), x = size_t(s.n) * s.h * s.w * s.cin * e, y = size_t(s.n) * s.h * s.w * s.cout * e,
               w = s.weight_numel() * e;
  const size_t sizes[3][3] = {{x, w, y}, {y, w, x}, {x, y, w}};
  const size_t* z = sizes[int(pass)];
  if (!in_device_memory(a, z[0]) || !in_device_memory(b, z[1]) || !in_device_memory(out, z[2]))
    return CUDNN_STATUS_BAD_PARAM;
  submit(h->stream, [=] {
    switch (c.type) {
      case CUDNN_DATA_HALF: return run_typed<f16>(pass, s, false, a, b, out);
      case CUDNN_DATA_BFLOAT16: return run_typed<bf16>(pass, s, false, a, b, out);
      default: return run_typed<float>(pass, s, c.tf32, a, b, out);
    }
  });
  return CUDNN_STATUS_SUCCESS;
}

int g_find_calls = 0;

constexpr int kAlgorithms = 8;  // the emulation's algorithms: 0 .. kAlgorithms - 1

// The workspace algorithm `algo` needs.
size_t workspace_need(int algo) { return size_t(algo) * 256; }
// The Get...WorkspaceSize functions' answer for a convolution the
// descriptors describe (described) and an algorithm.
cudnnStatus_t workspace_size(bool described, int algo, size_t* bytes) {
  if (!described || algo < 0 || algo >= kAlgorithms) return CUDNN_STATUS_NOT_SUPPORTED;
  *bytes = workspace_need(algo);
  return CUDNN_STATUS_SUCCESS;
}
// Whether ws (bytes long) holds what `algo` needs.
bool workspace_ok(int algo, const void* ws, size_t bytes) {
  return algo >= 0 && algo < kAlgorithms && bytes >= workspace_need(algo) &&
         (bytes == 0 || in_device_memory(ws, bytes));
}

template <class Perf, class Algo>
cudnnStatus_t find(cudnnHandle_t h, Pass pass, const Conv& c, cudnnMathType_t math, const void* a, const void* b,
                   void* out, int requested, int* returned, Perf* perf) {
  if (capturing()) {
    invalidate_capture();
    return CUDNN_STATUS_NOT_SUPPORTED;
  }
  if (requested < 1) return CUDNN_STATUS_BAD_PARAM;
  ++g_find_calls;
  const cudnnStatus_t st = run(h, pass, c, a, b, out);  // Find runs the algorithms into the output
  if (st != CUDNN_STATUS_SUCCESS) return st;
  std::memset(perf, 0, sizeof *perf);
  perf->algo = Algo(1);
  perf->status = CUDNN_STATUS_SUCCESS;
  perf->memory = workspace_need(1);
  perf->determinism = CUDNN_DETERMINISTIC;
  perf->mathType = math;
  *returned = 1;
  return CUDNN_STATUS_SUCCESS;
}

}  // namespace

int find_calls() { return g_find_calls; }

}  // namespace mixseg::cuda_emulation

using namespace mixseg::cuda_emulation;
using mixseg::cuda_emulation::Conv;
using mixseg::cuda_emulation::Pass;

extern "C" {

size_t cudnnGetVersion() { return CUDNN_VERSION; }

const char* cudnnGetErrorString(cudnnStatus_t s) {
  switch (s) {
    case CUDNN_STATUS_SUCCESS: return "CUDNN_STATUS_SUCCESS";
    case CUDNN_STATUS_BAD_PARAM: return "CUDNN_STATUS_BAD_PARAM (emulation: a buffer outside device memory?)";
    case CUDNN_STATUS_NOT_SUPPORTED: return "CUDNN_STATUS_NOT_SUPPORTED (emulation: a convolution it does not know)";
    default: return "cuDNN error (emulation)";
  }
}

cudnnStatus_t cudnnCreate(cudnnHandle_t* h) { return make<CUDNN_STATUS_SUCCESS>(h); }
cudnnStatus_t cudnnDestroy(cudnnHandle_t h) { return destroy<CUDNN_STATUS_SUCCESS>(h); }
cudnnStatus_t cudnnSetStream(cudnnHandle_t h, cudaStream_t s) {
  h->stream = s;
  return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnCreateTensorDescriptor(cudnnTensorDescriptor_t* d) { return make<CUDNN_STATUS_SUCCESS>(d); }
cudnnStatus_t cudnnDestroyTensorDescriptor(cudnnTensorDescriptor_t d) { return destroy<CUDNN_STATUS_SUCCESS>(d); }
cudnnStatus_t cudnnSetTensor4dDescriptor(cudnnTensorDescriptor_t d, cudnnTensorFormat_t format, cudnnDataType_t type,
                                         int n, int c, int h, int w) {
  *d = {format, type, n, c, h, w};
  return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnCreateFilterDescriptor(cudnnFilterDescriptor_t* d) { return make<CUDNN_STATUS_SUCCESS>(d); }
cudnnStatus_t cudnnDestroyFilterDescriptor(cudnnFilterDescriptor_t d) { return destroy<CUDNN_STATUS_SUCCESS>(d); }
cudnnStatus_t cudnnSetFilter4dDescriptor(cudnnFilterDescriptor_t d, cudnnDataType_t type, cudnnTensorFormat_t format,
                                         int k, int c, int h, int w) {
  *d = {type, format, k, c, h, w};
  return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnCreateConvolutionDescriptor(cudnnConvolutionDescriptor_t* d) {
  return make<CUDNN_STATUS_SUCCESS>(d);
}
cudnnStatus_t cudnnDestroyConvolutionDescriptor(cudnnConvolutionDescriptor_t d) {
  return destroy<CUDNN_STATUS_SUCCESS>(d);
}
cudnnStatus_t cudnnSetConvolution2dDescriptor(cudnnConvolutionDescriptor_t d, int pad_h, int pad_w, int u, int v,
                                              int dilation_h, int dilation_w, cudnnConvolutionMode_t mode,
                                              cudnnDataType_t compute) {
  const cudnnMathType_t math = d->math;
  *d = {pad_h, pad_w, u, v, dilation_h, dilation_w, mode, compute, math};
  return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnSetConvolutionMathType(cudnnConvolutionDescriptor_t d, cudnnMathType_t math) {
  d->math = math;
  return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnConvolutionForward(cudnnHandle_t h, const void* alpha, const cudnnTensorDescriptor_t xd,
                                      const void* x, const cudnnFilterDescriptor_t wd, const void* w,
                                      const cudnnConvolutionDescriptor_t cd, cudnnConvolutionFwdAlgo_t algo, void* ws,
                                      size_t ws_bytes, const void* beta, const cudnnTensorDescriptor_t yd, void* y) {
  Conv c;
  if (!describe(xd, wd, cd, yd, &c) || !unit_scalars(alpha, beta)) return CUDNN_STATUS_NOT_SUPPORTED;
  if (!workspace_ok(algo, ws, ws_bytes)) return CUDNN_STATUS_BAD_PARAM;
  return run(h, Pass::fwd, c, x, w, y);
}

cudnnStatus_t cudnnConvolutionBackwardData(cudnnHandle_t h, const void* alpha, const cudnnFilterDescriptor_t wd,
                                           const void* w, const cudnnTensorDescriptor_t dyd, const void* dy,
                                           const cudnnConvolutionDescriptor_t cd, cudnnConvolutionBwdDataAlgo_t algo,
                                           void* ws, size_t ws_bytes, const void* beta,
                                           const cudnnTensorDescriptor_t dxd, void* dx) {
  Conv c;
  if (!describe(dxd, wd, cd, dyd, &c) || !unit_scalars(alpha, beta)) return CUDNN_STATUS_NOT_SUPPORTED;
  if (!workspace_ok(algo, ws, ws_bytes)) return CUDNN_STATUS_BAD_PARAM;
  return run(h, Pass::bwd_data, c, dy, w, dx);
}

cudnnStatus_t cudnnConvolutionBackwardFilter(cudnnHandle_t h, const void* alpha, const cudnnTensorDescriptor_t xd,
                                             const void* x, const cudnnTensorDescriptor_t dyd, const void* dy,
                                             const cudnnConvolutionDescriptor_t cd,
                                             cudnnConvolutionBwdFilterAlgo_t algo, void* ws, size_t ws_bytes,
                                             const void* beta, const cudnnFilterDescriptor_t dwd, void* dw) {
  Conv c;
  if (!describe(xd, dwd, cd, dyd, &c) || !unit_scalars(alpha, beta)) return CUDNN_STATUS_NOT_SUPPORTED;
  if (!workspace_ok(algo, ws, ws_bytes)) return CUDNN_STATUS_BAD_PARAM;
  return run(h, Pass::bwd_filter, c, x, dy, dw);
}

cudnnStatus_t cudnnFindConvolutionForwardAlgorithmEx(cudnnHandle_t h, const cudnnTensorDescriptor_t xd, const void* x,
                                                     const cudnnFilterDescriptor_t wd, const void* w,
                                                     const cudnnConvolutionDescriptor_t cd,
                                                     const cudnnTensorDescriptor_t yd, void* y, const int requested,
                                                     int* returned, cudnnConvolutionFwdAlgoPerf_t* perf, void*,
                                                     size_t) {
  Conv c;
  if (!describe(xd, wd, cd, yd, &c)) return CUDNN_STATUS_NOT_SUPPORTED;
  return find<cudnnConvolutionFwdAlgoPerf_t, cudnnConvolutionFwdAlgo_t>(h, Pass::fwd, c, cd->math, x, w, y, requested,
                                                                        returned, perf);
}

cudnnStatus_t cudnnFindConvolutionBackwardDataAlgorithmEx(cudnnHandle_t h, const cudnnFilterDescriptor_t wd,
                                                          const void* w, const cudnnTensorDescriptor_t dyd,
                                                          const void* dy, const cudnnConvolutionDescriptor_t cd,
                                                          const cudnnTensorDescriptor_t dxd, void* dx,
                                                          const int requested, int* returned,
                                                          cudnnConvolutionBwdDataAlgoPerf_t* perf, void*, size_t) {
  Conv c;
  if (!describe(dxd, wd, cd, dyd, &c)) return CUDNN_STATUS_NOT_SUPPORTED;
  return find<cudnnConvolutionBwdDataAlgoPerf_t, cudnnConvolutionBwdDataAlgo_t>(h, Pass::bwd_data, c, cd->math, dy, w,
                                                                                dx, requested, returned, perf);
}

cudnnStatus_t cudnnFindConvolutionBackwardFilterAlgorithmEx(cudnnHandle_t h, const cudnnTensorDescriptor_t xd,
                                                            const void* x, const cudnnTensorDescriptor_t dyd,
                                                            const void* dy, const cudnnConvolutionDescriptor_t cd,
                                                            const cudnnFilterDescriptor_t dwd, void* dw,
                                                            const int requested, int* returned,
                                                            cudnnConvolutionBwdFilterAlgoPerf_t* perf, void*, size_t) {
  Conv c;
  if (!describe(xd, dwd, cd, dyd, &c)) return CUDNN_STATUS_NOT_SUPPORTED;
  return find<cudnnConvolutionBwdFilterAlgoPerf_t, cudnnConvolutionBwdFilterAlgo_t>(h, Pass::bwd_filter, c, cd->math, x,
                                                                                    dy, dw, requested, returned, perf);
}

cudnnStatus_t cudnnGetConvolutionForwardWorkspaceSize(cudnnHandle_t, const cudnnTensorDescriptor_t xd,
                                                      const cudnnFilterDescriptor_t wd,
                                                      const cudnnConvolutionDescriptor_t cd,
                                                      const cudnnTensorDescriptor_t yd, cudnnConvolutionFwdAlgo_t algo,
                                                      size_t* bytes) {
  Conv c;
  return workspace_size(describe(xd, wd, cd, yd, &c), algo, bytes);
}

cudnnStatus_t cudnnGetConvolutionBackwardDataWorkspaceSize(cudnnHandle_t, const cudnnFilterDescriptor_t wd,
                                                           const cudnnTensorDescriptor_t dyd,
                                                           const cudnnConvolutionDescriptor_t cd,
                                                           const cudnnTensorDescriptor_t dxd,
                                                           cudnnConvolutionBwdDataAlgo_t algo, size_t* bytes) {
  Conv c;
  return workspace_size(describe(dxd, wd, cd, dyd, &c), algo, bytes);
}

cudnnStatus_t cudnnGetConvolutionBackwardFilterWorkspaceSize(cudnnHandle_t, const cudnnTensorDescriptor_t xd,
                                                             const cudnnTensorDescriptor_t dyd,
                                                             const cudnnConvolutionDescriptor_t cd,
                                                             const cudnnFilterDescriptor_t dwd,
                                                             cudnnConvolutionBwdFilterAlgo_t algo, size_t* bytes) {
  Conv c;
  return workspace_size(describe(xd, dwd, cd, dyd, &c), algo, bytes);
}

}  // extern "C"
