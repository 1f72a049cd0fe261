// cuDNN convolutions (see conv2d.h).
#include "cuda/conv2d.h"

#include <cudnn.h>
#include <fmt/format.h>

#include "core/error.h"
#include "cuda/kernels.h"

namespace mixseg {

namespace {

void check(cudnnStatus_t s, const char* what) {
  if (s != CUDNN_STATUS_SUCCESS) fail("cuDNN {}: {}", what, cudnnGetErrorString(s));
}
void check(cudaError_t e, const char* what) {
  if (e != cudaSuccess) fail("CUDA {}: {}", what, cudaGetErrorString(e));
}

cudnnDataType_t cudnn_type(DType t) {
  switch (t) {
    case DType::f32: return CUDNN_DATA_FLOAT;
    case DType::f16: return CUDNN_DATA_HALF;
    case DType::bf16: return CUDNN_DATA_BFLOAT16;
    default: fail("cuDNN convolutions take f32, f16 or bf16, not {}", dtype_name(t));
  }
}

cuda::FloatType float_type(DType t) {
  return t == DType::f16 ? cuda::FloatType::f16 : t == DType::bf16 ? cuda::FloatType::bf16 : cuda::FloatType::f32;
}

enum class Pass { fwd, bwd_data, bwd_weights };
const char* pass_name(Pass p) { return p == Pass::fwd ? "fwd" : p == Pass::bwd_data ? "bwd_data" : "bwd_weights"; }

// pass, dtype, n, h, w, cin, cout, k
using Key = std::tuple<int, int, int, int, int, int, int, int>;

}  // namespace

struct CudnnConvolutions::Impl {
  cudaStream_t stream;
  cudnnHandle_t handle = nullptr;
  void* workspace = nullptr;
  size_t workspace_bytes = 0;
  void* dw_scratch = nullptr;  // weight gradient in the storage type, before widening
  size_t dw_scratch_bytes = 0;

  struct Entry {
    cudnnTensorDescriptor_t x = nullptr, y = nullptr;
    cudnnFilterDescriptor_t w = nullptr;
    cudnnConvolutionDescriptor_t conv = nullptr;
    int algo = -1;  // chosen on the first call
    size_t workspace = 0;
  };
  std::map<Key, Entry> cache;
  std::vector<std::string> log;

  ~Impl() {
    for (auto& [key, e] : cache) {
      cudnnDestroyTensorDescriptor(e.x);
      cudnnDestroyTensorDescriptor(e.y);
      cudnnDestroyFilterDescriptor(e.w);
      cudnnDestroyConvolutionDescriptor(e.conv);
    }
    if (workspace) cudaFree(workspace);
    if (dw_scratch) cudaFree(dw_scratch);
    if (handle) cudnnDestroy(handle);
  }

  Entry& entry(Pass pass, const ConvShape& s, DType dt) {
    const Key key{int(pass), int(dt), s.n, s.h, s.w, s.cin, s.cout, s.k};
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
    check(cudnnSetConvolutionMathType(e.conv, dt == DType::f32 ? CUDNN_FMA_MATH : CUDNN_TENSOR_OP_MATH), "math type");
    return cache.emplace(key, e).first->second;
  }

  void* grow(void*& buf, size_t& have, size_t need) {
    if (need > have) {
      if (buf) check(cudaFree(buf), "free");
      buf = nullptr;
      check(cudaMalloc(&buf, need), "workspace allocation");
      have = need;
    }
    return buf;
  }

  // Workspace for cuDNN's Find: room for the algorithms worth trying, capped.
  static constexpr size_t kFindWorkspace = size_t(256) << 20;

  void note(Pass pass, const ConvShape& s, DType dt, int algo, cudnnMathType_t math) {
    log.push_back(fmt::format("{} {} {}x{}x{}x{}->{} k{}: algo {}{}", pass_name(pass), dtype_name(dt), s.n, s.h, s.w,
                              s.cin, s.cout, s.k, algo, math == CUDNN_TENSOR_OP_MATH ? " (tensor cores)" : ""));
  }

  // Picks the fastest successful result of a Find (they come sorted by time).
  template <class Perf>
  static const Perf* first_ok(const Perf* perf, int n) {
    for (int i = 0; i < n; ++i)
      if (perf[i].status == CUDNN_STATUS_SUCCESS) return &perf[i];
    return nullptr;
  }
};

CudnnConvolutions::CudnnConvolutions(cudaStream_t stream) : impl_(std::make_unique<Impl>()) {
  impl_->stream = stream;
  check(cudnnCreate(&impl_->handle), "create");
  check(cudnnSetStream(impl_->handle, stream), "set stream");
}
CudnnConvolutions::~CudnnConvolutions() = default;

std::vector<std::string> CudnnConvolutions::chosen_algorithms() const { return impl_->log; }

void CudnnConvolutions::forward(const ConvShape& s, DType dt, const void* x, const void* w, void* y) {
  Impl& m = *impl_;
  Impl::Entry& e = m.entry(Pass::fwd, s, dt);
  if (e.algo < 0) {
    cudnnConvolutionFwdAlgoPerf_t perf[CUDNN_CONVOLUTION_FWD_ALGO_COUNT];
    int n = 0;
    void* ws = m.grow(m.workspace, m.workspace_bytes, Impl::kFindWorkspace);
    check(cudnnFindConvolutionForwardAlgorithmEx(m.handle, e.x, x, e.w, w, e.conv, e.y, y,
                                                 CUDNN_CONVOLUTION_FWD_ALGO_COUNT, &n, perf, ws, m.workspace_bytes),
          "find forward algorithm");
    const auto* best = Impl::first_ok(perf, n);
    if (!best) fail("cuDNN has no forward algorithm for {} {}x{}x{}x{}->{}", dtype_name(dt), s.n, s.h, s.w, s.cin, s.cout);
    e.algo = int(best->algo);
    e.workspace = best->memory;
    m.note(Pass::fwd, s, dt, e.algo, best->mathType);
  }
  void* ws = m.grow(m.workspace, m.workspace_bytes, e.workspace);
  const float one = 1.0f, zero = 0.0f;
  check(cudnnConvolutionForward(m.handle, &one, e.x, x, e.w, w, e.conv, cudnnConvolutionFwdAlgo_t(e.algo), ws,
                                e.workspace, &zero, e.y, y),
        "convolution forward");
}

void CudnnConvolutions::backward_data(const ConvShape& s, DType dt, const void* dy, const void* w, void* dx) {
  Impl& m = *impl_;
  Impl::Entry& e = m.entry(Pass::bwd_data, s, dt);
  if (e.algo < 0) {
    cudnnConvolutionBwdDataAlgoPerf_t perf[CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT];
    int n = 0;
    void* ws = m.grow(m.workspace, m.workspace_bytes, Impl::kFindWorkspace);
    check(cudnnFindConvolutionBackwardDataAlgorithmEx(m.handle, e.w, w, e.y, dy, e.conv, e.x, dx,
                                                      CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT, &n, perf, ws,
                                                      m.workspace_bytes),
          "find backward-data algorithm");
    const auto* best = Impl::first_ok(perf, n);
    if (!best) fail("cuDNN has no backward-data algorithm for {} {}x{}x{}x{}->{}", dtype_name(dt), s.n, s.h, s.w, s.cin, s.cout);
    e.algo = int(best->algo);
    e.workspace = best->memory;
    m.note(Pass::bwd_data, s, dt, e.algo, best->mathType);
  }
  void* ws = m.grow(m.workspace, m.workspace_bytes, e.workspace);
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
  void* out = dw;
  if (dt != DType::f32) out = m.grow(m.dw_scratch, m.dw_scratch_bytes, s.weight_numel() * dtype_size(dt));
  if (e.algo < 0) {
    cudnnConvolutionBwdFilterAlgoPerf_t perf[CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT];
    int n = 0;
    void* ws = m.grow(m.workspace, m.workspace_bytes, Impl::kFindWorkspace);
    check(cudnnFindConvolutionBackwardFilterAlgorithmEx(m.handle, e.x, x, e.y, dy, e.conv, e.w, out,
                                                        CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT, &n, perf, ws,
                                                        m.workspace_bytes),
          "find backward-filter algorithm");
    const auto* best = Impl::first_ok(perf, n);
    if (!best) fail("cuDNN has no backward-filter algorithm for {} {}x{}x{}x{}->{}", dtype_name(dt), s.n, s.h, s.w, s.cin, s.cout);
    e.algo = int(best->algo);
    e.workspace = best->memory;
    m.note(Pass::bwd_weights, s, dt, e.algo, best->mathType);
  }
  void* ws = m.grow(m.workspace, m.workspace_bytes, e.workspace);
  const float one = 1.0f, zero = 0.0f;
  check(cudnnConvolutionBackwardFilter(m.handle, &one, e.x, x, e.y, dy, e.conv,
                                       cudnnConvolutionBwdFilterAlgo_t(e.algo), ws, e.workspace, &zero, e.w, out),
        "convolution backward filter");
  if (dt != DType::f32) cuda::widen_f32(float_type(dt), s.weight_numel(), out, dw, m.stream);
}

}  // namespace mixseg
