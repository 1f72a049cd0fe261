// The CUDA backend. Every op runs on one stream of its own; memory is
// device memory (cudaMalloc), staging memory is pinned; copies in and out
// are synchronous except copy_in_async. The op semantics are the
// reference's (src/ops), checked op by op by the one op-test binary on a
// GPU, and in CI on the tests' emulated GPU (tests/cuda_emulation). The
// training step's loss, finite check, loss scaler and optimizer run
// on the device (no value comes back until the step is done), and recorded
// sequences of ops are CUDA graphs (stream capture), replayed with one launch;
// MIXSEG_CUDA_GRAPHS=0 turns recording off, MIXSEG_CUDA_PROFILE=1 times every
// op (op_profile.h). The skip connections' ops take channel slices
// (Op::channel_slices: training keeps concat inputs in the concat buffer,
// network.cpp). Still to come (docs/decisions.md): a fused conv epilogue.
#include "cuda/backend_cuda.h"

#include <cuda_runtime_api.h>
#include <fmt/format.h>

#include <cstdlib>
#include <cstring>

#include "core/arena.h"
#include "core/error.h"
#include "cuda/conv2d.h"
#include "cuda/device_buffer.h"
#include "cuda/device_query.h"
#include "cuda/float_type.h"
#include "cuda/kernels.h"
#include "cuda/op_profile.h"
#include "ops/backend_ref.h"
#include "ops/maxpool_ref.h"

namespace mixseg {

namespace {

void check(cudaError_t e, const char* what) {
  if (e != cudaSuccess) fail("CUDA {}: {}", what, cudaGetErrorString(e));
}

void same_dtype(const Tensor& a, const Tensor& b, const char* op) {
  if (a.dtype != b.dtype) fail("{}: dtype mismatch ({} vs {})", op, dtype_name(a.dtype), dtype_name(b.dtype));
}

// The backend's stream, destroyed after everything that uses it (declared first).
struct Stream {
  cudaStream_t s = nullptr;
  Stream() { check(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking), "stream creation"); }
  ~Stream() {
    if (s) cudaStreamDestroy(s);
  }
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;
};

// Profile keys: the op, the dtype, channels and the [n, h, w] of a tensor.
std::string key(const char* op, const Tensor& t) {
  return fmt::format("{} {} c{} {}x{}x{}", op, dtype_name(t.dtype), t.shape.c, t.shape.n, t.shape.h, t.shape.w);
}
std::string conv_key(const char* op, const Tensor& x, const Tensor& w) {
  return fmt::format("{} {} {}->{} k{} {}x{}x{}", op, dtype_name(x.dtype), w.shape.c, w.shape.n, w.shape.h, x.shape.n,
                     x.shape.h, x.shape.w);
}

// A profile entry: the key and the op's work, the bytes its kernels must move
// (each tensor pass once, as bench/gpu_floor.py counts them) or a
// convolution's FLOPs (x: the activation of the conv's input side, w: the
// weights or their gradient, OHWI).
struct Profiled {
  std::string key;
  double bytes = 0, flops = 0;
};
Profiled moves(const char* op, const Tensor& t, double bytes) { return {key(op, t), bytes, 0}; }
Profiled conv_op(const char* op, const Tensor& x, const Tensor& w) {
  const double flops = 2.0 * w.shape.h * w.shape.w * w.shape.c * w.shape.n * double(x.shape.pixels());
  return {conv_key(op, x, w), 0, flops};
}

// Times the op it is declared in when profiling (op_profile.h); the entry is
// only made then.
class Timed {
 public:
  template <class MakeEntry>
  Timed(OpProfile& p, MakeEntry make_entry) : p_(p) {
    if (!p_.enabled()) return;
    Profiled e = make_entry();
    p_.begin(std::move(e.key), e.bytes, e.flops);
  }
  ~Timed() { p_.end(); }
  Timed(const Timed&) = delete;
  Timed& operator=(const Timed&) = delete;

 private:
  OpProfile& p_;
};

// Recording is on unless MIXSEG_CUDA_GRAPHS=0 (to measure what graphs buy,
// or to rule them out when something looks wrong).
bool graphs_enabled() {
  const char* e = std::getenv("MIXSEG_CUDA_GRAPHS");
  return !e || std::strcmp(e, "0") != 0;
}

class CudaBackend final : public Backend {
 public:
  CudaBackend() : convs_(stream_), profile_(stream_) {}
  ~CudaBackend() override {
    cudaStreamSynchronize(stream_);
    for (cudaGraphExec_t g : graphs_)
      if (g) cudaGraphExecDestroy(g);
  }
  std::string_view name() const override { return "cuda"; }
  std::vector<std::string> choices() const override { return convs_.chosen_algorithms(); }
  void replay_choices(const std::vector<std::string>& lines) override { convs_.replay_choices(lines); }
  std::vector<std::string> notes() const override {
    std::vector<std::string> c;
    if (!cuda::vectors_enabled()) c.push_back("cuda channel vectors: off (MIXSEG_CUDA_VECTORS=0)");
    c.push_back(!graphs_enabled()     ? "cuda graphs: off (MIXSEG_CUDA_GRAPHS=0)"
                : profile_.enabled() ? "cuda graphs: off (MIXSEG_CUDA_PROFILE=1)"
                : graph_failures_ ? fmt::format("cuda graphs: {} recorded, {} captures failed ({})", graphs_.size(),
                                                graph_failures_, last_graph_error_)
                                  : fmt::format("cuda graphs: {} recorded", graphs_.size()));
    return c;
  }
  bool host_memory() const override { return false; }
  void allow_tf32(bool allowed) override { convs_.allow_tf32(allowed); }

  void* allocate(size_t bytes) override {
    void* p = nullptr;
    const cudaError_t e = cudaMalloc(&p, bytes ? bytes : 1);
    if (e != cudaSuccess) {
      // Out of memory is not sticky, but it stays the runtime's last error,
      // which the next kernel's launch check would report as its own: clear it
      // (a benchmark sweep goes on after a configuration that did not fit).
      cudaGetLastError();
      if (e == cudaErrorMemoryAllocation) return nullptr;  // the arena says how much and for what
      fail("CUDA allocation of {}: {}", memory_size_text(bytes), cudaGetErrorString(e));
    }
    return p;
  }
  void deallocate(void* p) override {
    if (p) cudaFree(p);
  }
  void* allocate_host(size_t bytes) override {
    void* p = nullptr;
    const cudaError_t e = cudaMallocHost(&p, bytes ? bytes : 1);
    if (e != cudaSuccess) {
      cudaGetLastError();  // as in allocate
      fail("CUDA pinned host allocation of {}: {}", memory_size_text(bytes), cudaGetErrorString(e));
    }
    return p;
  }
  void deallocate_host(void* p) override {
    if (p) cudaFreeHost(p);
  }
  void copy_in(void* dst, const void* host_src, size_t bytes) override {
    check(cudaMemcpyAsync(dst, host_src, bytes, cudaMemcpyHostToDevice, stream_), "copy to the device");
    check(cudaStreamSynchronize(stream_), "copy to the device");
  }
  void copy_in_async(void* dst, const void* host_src, size_t bytes) override {
    check(cudaMemcpyAsync(dst, host_src, bytes, cudaMemcpyHostToDevice, stream_), "copy to the device");
  }
  void copy_out(void* host_dst, const void* src, size_t bytes) override {
    check(cudaMemcpyAsync(host_dst, src, bytes, cudaMemcpyDeviceToHost, stream_), "copy from the device");
    check(cudaStreamSynchronize(stream_), "copy from the device");
    profile_.collect();
  }
  void synchronize() override {
    check(cudaStreamSynchronize(stream_), "synchronize");
    profile_.collect();
  }
  bool supports(Op, DType t) const override { return t == DType::f32 || t == DType::f16 || t == DType::bf16; }
  // (Op::channel_slices included: the ops it lists take slices; the others check require_dense().)

  void conv2d_fwd(const Tensor& x, const Tensor& w, const Tensor& y) override {
    const Timed timed(profile_, [&] { return conv_op("conv2d_fwd", x, w); });
    same_dtype(x, w, "conv2d_fwd");
    require_dense("conv2d_fwd", {&x, &y});
    convs_.forward(conv_shape(x, w), x.dtype, x.data, w.data, y.data);
  }
  void conv2d_fwd_bias(const Tensor& x, const Tensor& w, const float* bias, const Tensor& y, bool relu) override {
    const Timed timed(profile_, [&] { return conv_op("conv2d_fwd_bias", x, w); });
    same_dtype(x, w, "conv2d_fwd_bias");
    require_dense("conv2d_fwd_bias", {&x, &y});
    convs_.forward(conv_shape(x, w), x.dtype, x.data, w.data, y.data);
    if (bias || relu) cuda::bias_relu(float_type(y.dtype), y.shape.pixels(), y.shape.c, bias, relu, y.data, stream_);
  }
  void conv2d_bwd_data(const Tensor& dy, const Tensor& w, const Tensor& dx) override {
    const Timed timed(profile_, [&] { return conv_op("conv2d_bwd_data", dx, w); });
    same_dtype(dy, w, "conv2d_bwd_data");
    require_dense("conv2d_bwd_data", {&dy, &dx});
    convs_.backward_data(conv_shape(dx, w), dy.dtype, dy.data, w.data, dx.data);
  }
  void conv2d_bwd_weights(const Tensor& x, const Tensor& dy, const Tensor& dw) override {
    const Timed timed(profile_, [&] { return conv_op("conv2d_bwd_weights", x, dw); });
    same_dtype(x, dy, "conv2d_bwd_weights");
    require_dense("conv2d_bwd_weights", {&x, &dy});
    if (dw.dtype != DType::f32) fail("conv2d_bwd_weights: weight gradients are f32, got {}", dtype_name(dw.dtype));
    convs_.backward_weights(conv_shape(x, dw), x.dtype, x.data, dy.data, dw.as<float>());
  }

  void batchnorm_fwd_train(const Tensor& x, const BatchNormState& bn, const Tensor& y, bool relu) override {
    const Timed timed(profile_, [&] { return moves("batchnorm_fwd_train", x, 3.0 * x.bytes()); });
    same_dtype(x, y, "batchnorm_fwd_train");
    require_dense("batchnorm_fwd_train", {&x});
    cuda::batchnorm_fwd_train(float_type(x.dtype), x.shape.pixels(), x.shape.c, kBatchNormEps, kBatchNormMomentum,
                              x.data, bn.gamma, bn.beta, y.data, y.stride(), bn.save_mean, bn.save_invstd,
                              bn.running_mean, bn.running_var, bn.save_scale, bn.save_shift, relu,
                              bn_scratch(x.shape.c), bn_sums(x.shape.c), stream_);
  }
  void batchnorm_fwd_infer(const Tensor& x, const BatchNormState& bn, const Tensor& y, bool relu) override {
    const Timed timed(profile_, [&] { return moves("batchnorm_fwd_infer", x, 2.0 * x.bytes()); });
    same_dtype(x, y, "batchnorm_fwd_infer");
    require_dense("batchnorm_fwd_infer", {&x, &y});
    cuda::batchnorm_fwd_infer(float_type(x.dtype), x.shape.pixels(), x.shape.c, kBatchNormEps, x.data, bn.gamma,
                              bn.beta, bn.running_mean, bn.running_var, y.data, relu, bn_scratch(x.shape.c), stream_);
  }
  void batchnorm_bwd(const Tensor& dy, const Tensor* relu_y, const Tensor& x, const BatchNormState& bn,
                     const Tensor& dx, float* dgamma, float* dbeta) override {
    // The sums and dx each read dy and x (and the output for the mask, unless recomputed), dx is written.
    const Timed timed(profile_, [&] {
      const bool mask_read = relu_y && !(bn.save_scale && bn.save_shift);
      return moves("batchnorm_bwd", x, (mask_read ? 7.0 : 5.0) * x.bytes());
    });
    same_dtype(dy, x, "batchnorm_bwd");
    require_dense("batchnorm_bwd", {&x, &dx});
    cuda::batchnorm_bwd(float_type(x.dtype), x.shape.pixels(), x.shape.c, dy.data, dy.stride(),
                        relu_y ? relu_y->data : nullptr, relu_y ? relu_y->stride() : 0, x.data, bn.save_mean,
                        bn.save_invstd, bn.save_scale, bn.save_shift, bn.gamma, dx.data, dgamma, dbeta,
                        bn_scratch(x.shape.c), bn_sums(x.shape.c), stream_);
  }
  void relu_fwd(const Tensor& x, const Tensor& y) override {
    const Timed timed(profile_, [&] { return moves("relu_fwd", x, 2.0 * x.bytes()); });
    require_dense("relu_fwd", {&x, &y});
    cuda::relu_fwd(float_type(x.dtype), x.numel(), x.data, y.data, stream_);
  }
  void relu_bwd(const Tensor& dy, const Tensor& y, const Tensor& dx) override {
    const Timed timed(profile_, [&] { return moves("relu_bwd", dy, 3.0 * dy.bytes()); });
    require_dense("relu_bwd", {&dy, &y, &dx});
    cuda::relu_bwd(float_type(dy.dtype), dy.numel(), dy.data, y.data, dx.data, stream_);
  }
  void maxpool_fwd(const Tensor& x, const Tensor& y) override {
    const Timed timed(profile_, [&] { return moves("maxpool_fwd", x, 1.25 * x.bytes()); });
    check_maxpool2x2_shape(x.shape);
    require_dense("maxpool_fwd", {&y});
    cuda::maxpool_fwd(float_type(x.dtype), x.shape.n, x.shape.h, x.shape.w, x.shape.c, x.data, x.stride(), y.data,
                      stream_);
  }
  void maxpool_bwd(const Tensor& x, const Tensor& dy, const Tensor& dx, bool accumulate) override {
    const Timed timed(profile_, [&] {
      return moves(accumulate ? "maxpool_bwd_add" : "maxpool_bwd", x, (accumulate ? 3.25 : 2.25) * x.bytes());
    });
    check_maxpool2x2_shape(x.shape);
    require_dense("maxpool_bwd", {&dy});
    cuda::maxpool_bwd(float_type(x.dtype), x.shape.n, x.shape.h, x.shape.w, x.shape.c, x.data, x.stride(), dy.data,
                      dx.data, dx.stride(), accumulate, stream_);
  }
  void upsample_fwd(const Tensor& x, const Tensor& y) override {
    const Timed timed(profile_, [&] { return moves("upsample_fwd", y, double(x.bytes() + y.bytes())); });
    require_dense("upsample_fwd", {&x});
    cuda::upsample_fwd(float_type(x.dtype), x.shape.n, x.shape.h, x.shape.w, x.shape.c, x.data, y.data, y.stride(),
                       stream_);
  }
  void upsample_bwd(const Tensor& dy, const Tensor& dx) override {
    const Timed timed(profile_, [&] { return moves("upsample_bwd", dy, double(dy.bytes() + dx.bytes())); });
    require_dense("upsample_bwd", {&dx});
    cuda::upsample_bwd(float_type(dx.dtype), dx.shape.n, dx.shape.h, dx.shape.w, dx.shape.c, dy.data, dy.stride(),
                       dx.data, stream_);
  }
  void depth_to_space_fwd(const Tensor& x, const Tensor& y) override {
    const Timed timed(profile_, [&] { return moves("depth_to_space_fwd", y, 2.0 * y.bytes()); });
    require_dense("depth_to_space_fwd", {&x});
    check_depth_to_space(x, y, "depth_to_space_fwd");
    cuda::depth_to_space_fwd(float_type(x.dtype), x.shape.n, x.shape.h, x.shape.w, y.shape.c, x.data, y.data,
                             y.stride(), stream_);
  }
  void depth_to_space_bwd(const Tensor& dy, const Tensor& dx) override {
    const Timed timed(profile_, [&] { return moves("depth_to_space_bwd", dy, 2.0 * dy.bytes()); });
    require_dense("depth_to_space_bwd", {&dx});
    check_depth_to_space(dx, dy, "depth_to_space_bwd");
    cuda::depth_to_space_bwd(float_type(dx.dtype), dx.shape.n, dx.shape.h, dx.shape.w, dy.shape.c, dy.data, dy.stride(),
                             dx.data, stream_);
  }
  void concat_fwd(const Tensor& a, const Tensor& b, const Tensor& y) override {
    const Timed timed(profile_, [&] { return moves("concat_fwd", y, 2.0 * y.bytes()); });
    same_dtype(a, b, "concat_fwd");
    require_dense("concat_fwd", {&a, &b, &y});
    cuda::concat_fwd(float_type(a.dtype), a.shape.pixels(), a.shape.c, b.shape.c, a.data, b.data, y.data, stream_);
  }
  void upsample_concat_fwd(const Tensor& x, const Tensor& skip, const Tensor& y) override {
    const Timed timed(profile_,
                      [&] { return moves("upsample_concat_fwd", y, double(x.bytes() + skip.bytes() + y.bytes())); });
    same_dtype(x, skip, "upsample_concat_fwd");
    require_dense("upsample_concat_fwd", {&x, &skip, &y});
    if (skip.shape.n != x.shape.n || skip.shape.h != 2 * x.shape.h || skip.shape.w != 2 * x.shape.w ||
        y.shape.c != x.shape.c + skip.shape.c)
      fail("upsample_concat_fwd: shapes {} (x2) + {} do not make {}", to_string(x.shape), to_string(skip.shape),
           to_string(y.shape));
    cuda::upsample_concat_fwd(float_type(x.dtype), x.shape.n, x.shape.h, x.shape.w, x.shape.c, x.data, skip.shape.c,
                              skip.data, y.data, stream_);
  }
  void concat_bwd(const Tensor& dy, const Tensor& da, const Tensor& db) override {
    const Timed timed(profile_, [&] { return moves("concat_bwd", dy, 2.0 * dy.bytes()); });
    require_dense("concat_bwd", {&dy, &da, &db});
    cuda::concat_bwd(float_type(dy.dtype), da.shape.pixels(), da.shape.c, db.shape.c, dy.data, da.data, db.data,
                     stream_);
  }
  void loss(const Tensor& logits, const uint8_t* target, LossWeights w, StepControl* ctl,
            const Tensor* dlogits) override {
    // The sums read logits and targets; the gradient reads them again and writes its own.
    const Timed timed(profile_, [&] {
      const double pass = double(logits.bytes() + logits.numel());
      return moves("loss", logits, dlogits ? 2 * pass + double(logits.bytes()) : pass);
    });
    if (dlogits) same_dtype(logits, *dlogits, "loss");
    require_dense("loss", {&logits});
    cuda::loss(float_type(logits.dtype), logits.numel(), logits.data, target, w.bce, w.dice, kDiceSmooth, ctl,
               dlogits ? dlogits->data : nullptr, stream_);
  }
  void add_inplace(const Tensor& x, const Tensor& y) override {
    const Timed timed(profile_, [&] { return moves("add", y, 3.0 * y.bytes()); });
    same_dtype(x, y, "add_inplace");
    require_dense("add_inplace", {&x});
    if (x.shape != y.shape) fail("add_inplace: shapes {} and {}", to_string(x.shape), to_string(y.shape));
    cuda::add_inplace(float_type(x.dtype), x.shape.pixels(), x.shape.c, x.data, y.data, y.stride(), stream_);
  }
  void convert(const Tensor& x, const Tensor& y) override {
    const Timed timed(profile_, [&] { return moves("convert", y, double(x.bytes() + y.bytes())); });
    if (x.numel() != y.numel()) fail("convert: {} values into {}", x.numel(), y.numel());
    require_dense("convert", {&x, &y});
    cuda::convert(float_type(x.dtype), float_type(y.dtype), x.numel(), x.data, y.data, stream_);
  }
  void optimizer_step(const UpdateRule& rule, StepControl* ctl, float* params, const float* grads, float* m, float* v,
                      size_t n, const Tensor& storage) override {
    // The finite check reads the gradients; the update reads 4 f32 arrays and writes 3 (and the storage copy).
    const Timed timed(profile_, [&] {
      const double per = 4 + 16 + 12 + (storage.data ? double(dtype_size(storage.dtype)) : 0.0);
      return Profiled{fmt::format("optimizer_step {} params", n), per * double(n), 0};
    });
    cuda::optimizer_step(rule, ctl, params, grads, m, v, n,
                         storage.data ? float_type(storage.dtype) : cuda::FloatType::f32, storage.data, stream_);
  }

  bool begin_recording() override {
    if (!graphs_enabled() || profile_.enabled()) return false;
    return cudaStreamBeginCapture(stream_, cudaStreamCaptureModeThreadLocal) == cudaSuccess;
  }
  int end_recording() override {
    cudaGraph_t graph = nullptr;
    cudaError_t e = cudaStreamEndCapture(stream_, &graph);
    cudaGraphExec_t exec = nullptr;
    if (e == cudaSuccess && graph) e = cudaGraphInstantiate(&exec, graph, 0);
    if (graph) cudaGraphDestroy(graph);
    if (e != cudaSuccess || !exec) {
      cudaGetLastError();  // clear the capture's error: the stream works on as before
      // Said once (and kept for the benchmark's metadata): the ops still run,
      // one launch each, so only the speed tells otherwise.
      if (graph_failures_++ == 0)
        fmt::print(stderr, "warning: CUDA graph capture failed ({}); running the ops one by one\n",
                   cudaGetErrorString(e));
      last_graph_error_ = cudaGetErrorString(e);
      return -1;
    }
    graphs_.push_back(exec);
    return int(graphs_.size()) - 1;
  }
  void replay(int recording) override {
    if (recording < 0 || size_t(recording) >= graphs_.size() || !graphs_[size_t(recording)])
      fail("CUDA: no recording {}", recording);
    check(cudaGraphLaunch(graphs_[size_t(recording)], stream_), "graph launch");
  }
  void release_recording(int recording) override {
    if (recording < 0 || size_t(recording) >= graphs_.size() || !graphs_[size_t(recording)]) return;
    cudaStreamSynchronize(stream_);  // it may still be running
    cudaGraphExecDestroy(graphs_[size_t(recording)]);
    graphs_[size_t(recording)] = nullptr;
  }

 private:
  void* bn_scratch(int c) {
    if (c > cuda::batchnorm_max_channels())
      fail("BatchNorm on the GPU: {} channels, at most {}", c, cuda::batchnorm_max_channels());
    return bn_scratch_.get(cuda::batchnorm_scratch_bytes(c));
  }
  // The sums passes' totals: zero when first handed out (the kernels leave them so).
  void* bn_sums(int c) {
    const size_t had = bn_sums_.size();
    void* p = bn_sums_.get(cuda::batchnorm_sums_bytes(c));
    if (bn_sums_.size() != had) check(cudaMemsetAsync(p, 0, bn_sums_.size(), stream_), "clearing BatchNorm sums");
    return p;
  }

  Stream owned_stream_;
  cudaStream_t stream_ = owned_stream_.s;  // one stream for copies and kernels: one order
  CudnnConvolutions convs_;
  DeviceBuffer bn_scratch_{"BatchNorm scratch"};
  DeviceBuffer bn_sums_{"BatchNorm sums"};
  OpProfile profile_;
  std::vector<cudaGraphExec_t> graphs_;  // recordings by handle (null once released)
  int graph_failures_ = 0;
  std::string last_graph_error_;
};

}  // namespace

std::unique_ptr<Backend> make_cuda_backend() {
  if (cuda_device_count() == 0)
    fail("the CUDA backend needs a GPU, and the CUDA runtime sees none (no NVIDIA driver, or no device visible); "
         "use --device cpu (the default)");
  return std::make_unique<CudaBackend>();
}

}  // namespace mixseg
