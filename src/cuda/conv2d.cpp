// cuDNN convolutions (see conv2d.h).
#include "cuda/conv2d.h"

#include <cudnn.h>
#include <fmt/format.h>

#include <charconv>
#include <optional>

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

// The math types as the algorithm log names them.
constexpr std::pair<cudnnMathType_t, const char*> kMathNames[] = {
    {CUDNN_FMA_MATH, "FMA only"},
    {CUDNN_DEFAULT_MATH, "default math"},
    {CUDNN_TENSOR_OP_MATH, "tensor cores"},
    {CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION, "tensor cores, conversion allowed"}};

// A pass and shape as the log names them ("fwd f16 8x512x256x16->16 k3").
std::string pass_key(Pass pass, const ConvShape& s, DType dt) {
  return fmt::format("{} {} {}x{}x{}x{}->{} k{}", pass_name(pass), dtype_name(dt), s.n, s.h, s.w, s.cin, s.cout, s.k);
}

// What the log says after a pass and shape: "algo 1 (tensor cores)"; FMA
// only goes unsaid ("algo 0"), except for the tf32 policy's f32 passes,
// which always say so, whatever math cuDNN's Find settled on: "algo 1
// (TF32 allowed, default math)" (so that they stay apart from fp32's).
std::string algo_text(bool tf32, int algo, cudnnMathType_t math) {
  const char* name = "unknown math";
  for (const auto& [m, n] : kMathNames)
    if (m == math) name = n;
  if (!tf32 && math == CUDNN_FMA_MATH) return fmt::format("algo {}", algo);
  return fmt::format("algo {} ({}{})", algo, tf32 ? "TF32 allowed, " : "", name);
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
    bool tf32 = false;  // an f32 pass of the tf32 policy (TF32 tensor cores allowed)
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
    e.tf32 = t32;
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

  // Choices to follow instead of Find (replay_choices), by pass_key, with
  // " tf32" added for the tf32 policy's f32 passes.
  struct Recorded {
    int algo;
    cudnnMathType_t math;
  };
  std::map<std::string, Recorded> recorded;

  // The algorithm of entry e, chosen on its first call: the recorded one
  // (its workspace size asked of cuDNN through `size`), or else `find` runs
  // cuDNN's Find for the pass into perf (results sorted by time) and the
  // fastest that succeeded is kept with its workspace size.
  template <class Perf, class FindFn, class SizeFn>
  void choose_once(Entry& e, Pass pass, const ConvShape& s, DType dt, FindFn find, SizeFn size) {
    if (e.algo >= 0) return;
    const std::string key = pass_key(pass, s, dt);
    const bool t32 = e.tf32;
    if (auto it = recorded.find(t32 ? key + " tf32" : key); it != recorded.end()) {
      if (e.math != CUDNN_FMA_MATH) {
        e.math = it->second.math;
        check(cudnnSetConvolutionMathType(e.conv, e.math), "math type");
      }
      const cudnnStatus_t st = size(it->second.algo, &e.workspace);
      if (st != CUDNN_STATUS_SUCCESS)
        fail("the recorded '{}: {}' cannot run here: cuDNN {}", key, algo_text(t32, it->second.algo, e.math),
             cudnnGetErrorString(st));
      e.algo = it->second.algo;
      log.push_back(key + ": " + algo_text(t32, e.algo, e.math));
      return;
    }
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
    log.push_back(key + ": " + algo_text(t32, e.algo, e.math));
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

void CudnnConvolutions::replay_choices(const std::vector<std::string>& lines) {
  std::map<std::string, Impl::Recorded> recorded;
  for (const std::string& line : lines) {
    auto bad = [&] {
      fail(
          "'{}' is not a choice of the cuda backend's convolutions (expected a pass and shape, ': algo N', and "
          "the math in parentheses unless FMA only)",
          line);
    };
    const size_t colon = line.rfind(": algo ");
    if (colon == std::string::npos) bad();
    const std::string key = line.substr(0, colon), rest = line.substr(colon + 7);
    int algo = -1;
    const auto [end, ec] = std::from_chars(rest.data(), rest.data() + rest.size(), algo);
    if (ec != std::errc() || algo < 0) bad();
    std::string math_text(end, rest.data() + rest.size());
    bool tf32 = false;
    if (math_text.empty()) {
      math_text = "FMA only";
    } else {
      if (!math_text.starts_with(" (") || !math_text.ends_with(")")) bad();
      math_text = math_text.substr(2, math_text.size() - 3);
      tf32 = math_text.starts_with("TF32 allowed, ");
      if (tf32) math_text = math_text.substr(14);
      if (tf32 && key.find(" f32 ") == std::string::npos) bad();  // only f32 passes have TF32
    }
    std::optional<cudnnMathType_t> math;
    for (const auto& [m, n] : kMathNames)
      if (math_text == n) math = m;
    if (!math) bad();
    recorded[tf32 ? key + " tf32" : key] = {algo, *math};
  }
  impl_->recorded = std::move(recorded);
}

void CudnnConvolutions::forward(const ConvShape& s, DType dt, const void* x, const void* w, void* y) {
  Impl& m = *impl_;
  Impl::Entry& e = m.entry(Pass::fwd, s, dt);
  m.choose_once<cudnnConvolutionFwdAlgoPerf_t>(
      e, Pass::fwd, s, dt,
      [&](auto* perf, int count, int* n, void* ws, size_t bytes) {
        return cudnnFindConvolutionForwardAlgorithmEx(m.handle, e.x, x, e.w, w, e.conv, e.y, y, count, n, perf, ws,
                                                      bytes);
      },
      [&](int algo, size_t* bytes) {
        return cudnnGetConvolutionForwardWorkspaceSize(m.handle, e.x, e.w, e.conv, e.y, cudnnConvolutionFwdAlgo_t(algo),
                                                       bytes);
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
      e, Pass::bwd_data, s, dt,
      [&](auto* perf, int count, int* n, void* ws, size_t bytes) {
        return cudnnFindConvolutionBackwardDataAlgorithmEx(m.handle, e.w, w, e.y, dy, e.conv, e.x, dx, count, n, perf,
                                                           ws, bytes);
      },
      [&](int algo, size_t* bytes) {
        return cudnnGetConvolutionBackwardDataWorkspaceSize(m.handle, e.w, e.y, e.conv, e.x,
                                                            cudnnConvolutionBwdDataAlgo_t(algo), bytes);
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
      e, Pass::bwd_weights, s, dt,
      [&](auto* perf, int count, int* n, void* ws, size_t bytes) {
        return cudnnFindConvolutionBackwardFilterAlgorithmEx(m.handle, e.x, x, e.y, dy, e.conv, e.w, out, count, n,
                                                             perf, ws, bytes);
      },
      [&](int algo, size_t* bytes) {
        return cudnnGetConvolutionBackwardFilterWorkspaceSize(m.handle, e.x, e.y, e.conv, e.w,
                                                              cudnnConvolutionBwdFilterAlgo_t(algo), bytes);
      });
  void* ws = m.workspace.get(e.workspace);
  const float one = 1.0f, zero = 0.0f;
  check(cudnnConvolutionBackwardFilter(m.handle, &one, e.x, x, e.y, dy, e.conv,
                                       cudnnConvolutionBwdFilterAlgo_t(e.algo), ws, e.workspace, &zero, e.w, out),
        "convolution backward filter");
  if (dt != DType::f32) cuda::convert(float_type(dt), cuda::FloatType::f32, s.weight_numel(), out, dw, m.stream);
}

}  // namespace mixseg
