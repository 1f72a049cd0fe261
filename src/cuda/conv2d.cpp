// cuDNN convolutions (see conv2d.h).
#include "cuda/conv2d.h"

#include <cudnn.h>
#include <fmt/format.h>

#include "core/error.h"
#include "cuda/device_buffer.h"
#include "cuda/float_type.h"
#include "cuda/kernels.h"

namespace mixseg {

namespace {

void check(cudnnStatus_t s, const char* what) {
  if (s != CUDNN_STATUS_SUCCESS) fail("cuDNN {}: {}", what, cudnnGetErrorString(s));
}

cudnnDataType_t cudnn_type(DType t) {
  switch (t) {
    case DType::f32: return CUDNN_DATA_FLOAT;
    case DType::f16: return CUDNN_DATA_HALF;
    case DType::bf16: return CUDNN_DATA_BFLOAT16;
    default: fail("cuDNN convolutions take f32, f16 or bf16, not {}", dtype_name(t));
  }
}

enum class Pass { fwd, bwd_data, bwd_weights };
const char* pass_name(Pass p) { return p == Pass::fwd ? "fwd" : p == Pass::bwd_data ? "bwd_data" : "bwd_weights"; }

// pass, dtype, tf32 allowed, n, h, w, cin, cout, k
using Key = std::tuple<int, int, int, int, int, int, int, int, int>;

// The math a convolution may use: FMA only for f32 (the fp32 policy, TF32
// off), cuDNN's default for f32 with TF32 allowed (tensor cores on TF32-
// rounded inputs, the tf32 policy), tensor cores for f16/bf16.
cudnnMathType_t math_type(DType dt, bool tf32) {
  if (dt != DType::f32) return CUDNN_TENSOR_OP_MATH;
  return tf32 ? CUDNN_DEFAULT_MATH : CUDNN_FMA_MATH;
}

}  // namespace

struct CudnnConvolutions::Impl {
  cudaStream_t stream;
  cudnnHandle_t handle = nullptr;
  DeviceBuffer workspace{"cuDNN workspace"};
  DeviceBuffer dw_scratch{"weight gradient in 16 bits"};  // before widening

  struct Entry {
    cudnnTensorDescriptor_t x = nullptr, y = nullptr;
    cudnnFilterDescriptor_t w = nullptr;
    cudnnConvolutionDescriptor_t conv = nullptr;
    int algo = -1;  // chosen on the first call
    size_t workspace = 0;
    cudnnMathType_t math = CUDNN_FMA_MATH;
  };
  std::map<Key, Entry> cache;
  std::vector<std::string> log;
  bool tf32 = false;

  ~Impl() {
    for (auto& [key, e] : cache) {
      cudnnDestroyTensorDescriptor(e.x);
      cudnnDestroyTensorDescriptor(e.y);
      cudnnDestroyFilterDescriptor(e.w);
      cudnnDestroyConvolutionDescriptor(e.conv);
    }
    if (handle) cudnnDestroy(handle);
  }

  Entry& entry(Pass pass, const ConvShape& s, DType dt) {
    const bool t32 = tf32 && dt == DType::f32;
    const Key key{int(pass), int(dt), int(t32), s.n, s.h, s.w, s.cin, s.cout, s.k};
    auto it = cache.find(key);
    if (it != cache.end()) return it->second;
    Entry e;
    const cudnnDataType_t t = cudnn_type(dt);
    check(cudnnCreateTensorDescriptor(&e.x), "tensor descriptor");
    check(cudnnCreateTensorDescriptor(&e.y), "tensor descriptor");
    check(cudnnCreateFilterDescriptor(&e.w), "filter descriptor");
    check(cudnnCreateConvolutionDescriptor(&e.conv), "convolution descriptor");
    check(cudnnSetTensor4dDescriptor(e.x, CUDNN_TENSOR_NHWC, t, s.n, s.cin, s.h, s.w), "input descriptor");
    check(cudnnSetTensor4dDescriptor(e.y, CUDNN_TENSOR_NHWC, t, s.n, s.cout, s.h, s.w), "output descriptor");
    check(cudnnSetFilter4dDescriptor(e.w, t, CUDNN_TENSOR_NHWC, s.cout, s.cin, s.k, s.k), "filter descriptor");
    const int pad = s.k / 2;
    check(cudnnSetConvolution2dDescriptor(e.conv, pad, pad, 1, 1, 1, 1, CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT),
          "convolution descriptor");
    e.math = math_type(dt, t32);
    check(cudnnSetConvolutionMathType(e.conv, e.math), "math type");
    return cache.emplace(key, e).first->second;
  }

  // Workspace for cuDNN's Find: room for the algorithms worth trying, capped;
  // an eighth of it, or none, where the device has not that much left (Find
  // then tries the algorithms that fit). What the first Find got is what
  // every later one asks for, so the buffer does not grow again (the chosen
  // algorithms need no more than their Find had).
  static constexpr size_t kFindWorkspace = size_t(256) << 20;
  size_t find_bytes = kFindWorkspace;
  void* find_workspace() {
    for (size_t bytes : {find_bytes, find_bytes / 8}) {
      try {
        void* p = workspace.get(bytes);
        find_bytes = bytes;
        return p;
      } catch (const OutOfMemory&) {
      }
    }
    find_bytes = 0;
    return workspace.get(0);
  }

  void note(Pass pass, const ConvShape& s, DType dt, int algo, cudnnMathType_t math) {
    const char* how = math == CUDNN_FMA_MATH                              ? ""
                      : dt == DType::f32                                  ? " (TF32 allowed)"
                      : math == CUDNN_TENSOR_OP_MATH                      ? " (tensor cores)"
                      : math == CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION     ? " (tensor cores, conversion allowed)"
                                                                          : " (default math)";
    log.push_back(fmt::format("{} {} {}x{}x{}x{}->{} k{}: algo {}{}", pass_name(pass), dtype_name(dt), s.n, s.h, s.w,
                              s.cin, s.cout, s.k, algo, how));
  }

  // The algorithm of entry e, chosen on its first call: `find` runs cuDNN's
  // Find for the pass into perf (results sorted by time); the fastest that
  // succeeded is kept with its workspace size.
  template <class Perf, class FindFn>
  void choose_once(Entry& e, Pass pass, const ConvShape& s, DType dt, FindFn find) {
    if (e.algo >= 0) return;
    Perf perf[16];
    int n = 0;
    void* ws = find_workspace();
    check(find(perf, 16, &n, ws, workspace.size()), pass_name(pass));
    const Perf* best = nullptr;
    for (int i = 0; i < n && !best; ++i)
      if (perf[i].status == CUDNN_STATUS_SUCCESS) best = &perf[i];
    if (!best)
      fail("cuDNN has no {} algorithm for {} {}x{}x{}x{}->{} k{}", pass_name(pass), dtype_name(dt), s.n, s.h, s.w,
           s.cin, s.cout, s.k);
    e.algo = int(best->algo);
    e.workspace = best->memory;
    // The descriptor takes the math the measured run used (cuDNN may report
    // a variant of the one asked for), except that FMA-only stays FMA-only.
    if (e.math != CUDNN_FMA_MATH) {
      e.math = best->mathType;
      check(cudnnSetConvolutionMathType(e.conv, e.math), "math type");
    }
    note(pass, s, dt, e.algo, e.math);
  }
};

CudnnConvolutions::CudnnConvolutions(cudaStream_t stream) : impl_(std::make_unique<Impl>()) {
  impl_->stream = stream;
  check(cudnnCreate(&impl_->handle), "create");
  check(cudnnSetStream(impl_->handle, stream), "set stream");
}
CudnnConvolutions::~CudnnConvolutions() = default;

std::vector<std::string> CudnnConvolutions::chosen_algorithms() const { return impl_->log; }
void CudnnConvolutions::allow_tf32(bool allowed) { impl_->tf32 = allowed; }

void CudnnConvolutions::forward(const ConvShape& s, DType dt, const void* x, const void* w, void* y) {
  Impl& m = *impl_;
  Impl::Entry& e = m.entry(Pass::fwd, s, dt);
  m.choose_once<cudnnConvolutionFwdAlgoPerf_t>(e, Pass::fwd, s, dt, [&](auto* perf, int count, int* n, void* ws, size_t bytes) {
    return cudnnFindConvolutionForwardAlgorithmEx(m.handle, e.x, x, e.w, w, e.conv, e.y, y, count, n, perf, ws, bytes);
  });
  void* ws = m.workspace.get(e.workspace);
  const float one = 1.0f, zero = 0.0f;
  check(cudnnConvolutionForward(m.handle, &one, e.x, x, e.w, w, e.conv, cudnnConvolutionFwdAlgo_t(e.algo), ws,
                                e.workspace, &zero, e.y, y),
        "convolution forward");
}

void CudnnConvolutions::backward_data(const ConvShape& s, DType dt, const void* dy, const void* w, void* dx) {
  Impl& m = *impl_;
  Impl::Entry& e = m.entry(Pass::bwd_data, s, dt);
  m.choose_once<cudnnConvolutionBwdDataAlgoPerf_t>(
      e, Pass::bwd_data, s, dt, [&](auto* perf, int count, int* n, void* ws, size_t bytes) {
        return cudnnFindConvolutionBackwardDataAlgorithmEx(m.handle, e.w, w, e.y, dy, e.conv, e.x, dx, count, n, perf,
                                                           ws, bytes);
      });
  void* ws = m.workspace.get(e.workspace);
  const float one = 1.0f, zero = 0.0f;
  check(cudnnConvolutionBackwardData(m.handle, &one, e.w, w, e.y, dy, e.conv, cudnnConvolutionBwdDataAlgo_t(e.algo),
                                     ws, e.workspace, &zero, e.x, dx),
        "convolution backward data");
}

void CudnnConvolutions::backward_weights(const ConvShape& s, DType dt, const void* x, const void* dy, float* dw) {
  Impl& m = *impl_;
  Impl::Entry& e = m.entry(Pass::bwd_weights, s, dt);
  // cuDNN writes the weight gradient in the storage type: straight into dw
  // for f32, else into scratch that is widened afterwards.
  void* out = dt == DType::f32 ? static_cast<void*>(dw) : m.dw_scratch.get(s.weight_numel() * dtype_size(dt));
  m.choose_once<cudnnConvolutionBwdFilterAlgoPerf_t>(
      e, Pass::bwd_weights, s, dt, [&](auto* perf, int count, int* n, void* ws, size_t bytes) {
        return cudnnFindConvolutionBackwardFilterAlgorithmEx(m.handle, e.x, x, e.y, dy, e.conv, e.w, out, count, n,
                                                             perf, ws, bytes);
      });
  void* ws = m.workspace.get(e.workspace);
  const float one = 1.0f, zero = 0.0f;
  check(cudnnConvolutionBackwardFilter(m.handle, &one, e.x, x, e.y, dy, e.conv,
                                       cudnnConvolutionBwdFilterAlgo_t(e.algo), ws, e.workspace, &zero, e.w, out),
        "convolution backward filter");
  if (dt != DType::f32) cuda::convert(float_type(dt), cuda::FloatType::f32, s.weight_numel(), out, dw, m.stream);
}

}  // namespace mixseg
