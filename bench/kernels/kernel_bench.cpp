// Google Benchmark over the fast CPU backend's ops at the U-Net's own shapes
// (512x256 input, f=16 unless the name says otherwise): each convolution
// pass per storage dtype, the int8 convolution per kernel variant, max-pooling, upsample+concat and BatchNorm+ReLU,
// with FLOP/s (convolutions) or bytes/s (memory-bound ops) as counters; the
// memory-bound ops also through the reference backend, for comparison.
// It measures kernels alone; `mixseg bench` measures whole steps.
//   build/bench/mixseg_kernel_bench --benchmark_filter='conv/infer/f32'
// MIXSEG_CONV_ALGORITHM=direct|winograd|winograd_f2|direct_banded forces the
// fast backend's convolution algorithm (as `mixseg bench --conv-algorithm`).
// The buffers are zero-filled: no denormals (see docs/performance.md, v0.4).
#include <benchmark/benchmark.h>
#include <fmt/format.h>

#include <cstdlib>
#include <cstring>
#include <exception>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/backend.h"
#include "core/threads.h"
#include "cpu/conv2d_bwd_weights_rows.h"
#include "cpu/conv2d_winograd.h"
#include "ops/conv2d_ref.h"
#include "quant/kernels_int8.h"

using namespace mixseg;

namespace {

// A zero-filled tensor in the backend's memory.
struct Buffer {
  Backend* be;
  Tensor t;
  Buffer(Backend& b, DType dt, Shape s) : be(&b) {
    t = {b.allocate(s.numel() * dtype_size(dt)), dt, s};
    std::vector<std::byte> zeros(t.bytes());
    b.copy_in(t.data, zeros.data(), zeros.size());
  }
  ~Buffer() { be->deallocate(t.data); }
  Buffer(const Buffer&) = delete;
};

// Buffers the memory-op benchmarks use, freed before the backend.
std::vector<std::unique_ptr<Buffer>> buffers;
Buffer* buffer(DType dt, Shape s);

ConvAlgorithm conv_algorithm_from_env() {
  const char* e = std::getenv("MIXSEG_CONV_ALGORITHM");
  try {
    return parse_conv_algorithm(e ? e : "fastest");
  } catch (const std::exception& err) {
    fmt::print(stderr, "MIXSEG_CONV_ALGORITHM: {}\n", err.what());
    std::exit(2);
  }
}

std::unique_ptr<Backend>& backend() {
  static std::unique_ptr<Backend> be = make_fast_backend(conv_algorithm_from_env());
  return be;
}
// The reference backend, to show what each fast memory-bound kernel gains.
std::unique_ptr<Backend>& ref_backend() {
  static std::unique_ptr<Backend> be = make_ref_backend();
  return be;
}

Buffer* buffer(DType dt, Shape s) { return buffers.emplace_back(std::make_unique<Buffer>(*backend(), dt, s)).get(); }

// The 3x3 convolutions of the f=16 U-Net at 512x256 (encoder, the decoder's
// projection before upsampling, the decoder after the concat), one per
// distinct shape, plus the first level at f=8 (8->8, and the decoder's
// 16->8 after its concat) and the 1x1 head.
std::vector<ConvShape> unet_conv_shapes(int batch) {
  std::vector<ConvShape> s;
  for (int level = 0, h = 512, w = 256, c = 16; level < 5; ++level, h /= 2, w /= 2, c *= 2) {
    s.push_back({batch, h, w, level == 0 ? 1 : c / 2, c, 3});
    s.push_back({batch, h, w, c, c, 3});
    if (level < 4) s.push_back({batch, h, w, 2 * c, c, 3});
  }
  s.push_back({batch, 512, 256, 8, 8, 3});
  s.push_back({batch, 512, 256, 16, 8, 3});
  s.push_back({batch, 512, 256, 16, 1, 1});
  return s;
}

enum class Pass { infer, fwd, bwd_data, bwd_weights };
const char* pass_name(Pass p) {
  switch (p) {
    case Pass::infer: return "infer";
    case Pass::fwd: return "fwd";
    case Pass::bwd_data: return "bwd_data";
    case Pass::bwd_weights: return "bwd_weights";
  }
  return "?";
}

void conv(benchmark::State& state, Pass pass, DType dt, ConvShape s) {
  Backend& be = *backend();
  Buffer x(be, dt, {s.n, s.h, s.w, s.cin}), y(be, dt, {s.n, s.h, s.w, s.cout});
  Buffer w(be, pass == Pass::bwd_weights ? DType::f32 : dt, {s.cout, s.k, s.k, s.cin});
  Buffer wx(be, dt, {s.cout, s.k, s.k, s.cin});
  Buffer bias(be, DType::f32, {1, 1, 1, s.cout});
  auto once = [&] {
    switch (pass) {
      case Pass::infer: be.conv2d_fwd_bias(x.t, w.t, bias.t.as<float>(), y.t, true); break;
      case Pass::fwd: be.conv2d_fwd(x.t, w.t, y.t); break;
      case Pass::bwd_data: be.conv2d_bwd_data(y.t, w.t, x.t); break;
      case Pass::bwd_weights: be.conv2d_bwd_weights(x.t, y.t, w.t); break;
    }
    be.synchronize();
  };
  once();  // chooses the algorithm (timed candidates) and reorders weights
  for (auto _ : state) once();
  state.counters["FLOP/s"] = benchmark::Counter(2 * s.macs(), benchmark::Counter::kIsIterationInvariantRate);
}

// The own Winograd F(2x2,3x3) kernel alone (inference: bias and ReLU), to
// set beside conv/infer (the algorithm the backend chose for that shape);
// bf16 with bf16 products or with f32 ones.
void conv_winograd_f2(benchmark::State& state, DType dt, ConvShape s, bool bf16_products) {
  const size_t es = dtype_size(dt);
  std::vector<std::byte> x(size_t(s.n) * s.h * s.w * s.cin * es), y(size_t(s.n) * s.h * s.w * s.cout * es);
  std::vector<std::byte> w(s.weight_numel() * es);
  std::vector<float> bias(size_t(s.cout));
  const WinogradF2Weights u = winograd_f2_transform_weights(s, dt, w.data(), false, bf16_products);
  const ScopedFlushDenormals ftz;
  conv2d_winograd_f2(s, dt, x.data(), u, bias.data(), y.data(), true);
  for (auto _ : state) conv2d_winograd_f2(s, dt, x.data(), u, bias.data(), y.data(), true);
  state.counters["FLOP/s"] = benchmark::Counter(2 * s.macs(), benchmark::Counter::kIsIterationInvariantRate);
}

// The own Winograd F(3x3,2x2) weight gradient alone, beside
// conv/bwd_weights (the algorithm the backend chose for that shape).
void conv_winograd_f2_bwd_weights(benchmark::State& state, DType dt, ConvShape s, bool bf16_products) {
  const size_t es = dtype_size(dt);
  std::vector<std::byte> x(size_t(s.n) * s.h * s.w * s.cin * es), dy(size_t(s.n) * s.h * s.w * s.cout * es);
  std::vector<float> dw(s.weight_numel());
  const ScopedFlushDenormals ftz;
  conv2d_winograd_f2_backward_weights(s, dt, x.data(), dy.data(), dw.data(), bf16_products);
  for (auto _ : state) conv2d_winograd_f2_backward_weights(s, dt, x.data(), dy.data(), dw.data(), bf16_products);
  state.counters["FLOP/s"] = benchmark::Counter(2 * s.macs(), benchmark::Counter::kIsIterationInvariantRate);
}

// The own direct weight gradient alone (conv2d_bwd_weights_rows.h; bf16 by
// pixel pairs where the CPU has them), beside conv/bwd_weights.
void conv_bwd_weights_rows(benchmark::State& state, DType dt, ConvShape s) {
  const size_t es = dtype_size(dt);
  std::vector<std::byte> x(size_t(s.n) * s.h * s.w * s.cin * es), dy(size_t(s.n) * s.h * s.w * s.cout * es);
  std::vector<float> dw(s.weight_numel());
  const ScopedFlushDenormals ftz;
  conv2d_bwd_weights_rows(s, dt, x.data(), dy.data(), dw.data());
  for (auto _ : state) conv2d_bwd_weights_rows(s, dt, x.data(), dy.data(), dw.data());
  state.counters["FLOP/s"] = benchmark::Counter(2 * s.macs(), benchmark::Counter::kIsIterationInvariantRate);
}

// Memory-bound ops: bytes read and written per call as the counter.
// The int8 convolution through one kernel variant (kernels_int8.h), weights
// packed once as a loaded model's are.
using Int8ConvFn = void (*)(const QConv&, QParams, QParams, int, int, int, const int8_t*, int8_t*);
void conv_int8(benchmark::State& state, Int8ConvFn fn, ConvShape s) {
  QConv c;
  c.k = s.k, c.cin = s.cin, c.cout = s.cout, c.relu = true;
  c.weights.resize(size_t(s.cout) * s.k * s.k * s.cin);
  for (size_t i = 0; i < c.weights.size(); ++i) c.weights[i] = int8_t(int(i * 37 % 255) - 127);
  c.weight_scales.assign(size_t(s.cout), 1.0f);
  c.bias.assign(size_t(s.cout), 100);
  c.multipliers.assign(size_t(s.cout), quantize_multiplier(1e-3));
  c.out_min = -128;
  const QParams xq{0.05f, 3}, yq{0.1f, -5};
  c.packed = pack_conv_int8_fast(c, xq);
  std::vector<int8_t> x(size_t(s.n) * s.h * s.w * s.cin), y(size_t(s.n) * s.h * s.w * s.cout);
  for (size_t i = 0; i < x.size(); ++i) x[i] = int8_t(int(i * 13 % 255) - 127);
  fn(c, xq, yq, s.n, s.h, s.w, x.data(), y.data());
  for (auto _ : state) fn(c, xq, yq, s.n, s.h, s.w, x.data(), y.data());
  state.counters["MAC/s"] = benchmark::Counter(double(s.n) * s.h * s.w * s.cout * s.k * s.k * s.cin,
                                               benchmark::Counter::kIsIterationInvariantRate);
}

void memory_op(benchmark::State& state, const std::function<void()>& op, double bytes) {
  op();
  for (auto _ : state) op();
  state.counters["bytes/s"] = benchmark::Counter(bytes, benchmark::Counter::kIsIterationInvariantRate);
}

void register_all() {
  for (DType dt : {DType::f32, DType::f16, DType::bf16})
    for (Pass p : {Pass::infer, Pass::fwd, Pass::bwd_data, Pass::bwd_weights})
      for (int batch : {1, 4})
        for (const ConvShape& s : unet_conv_shapes(batch)) {
          if (p != Pass::infer && s.k == 1) continue;
          const std::string name = fmt::format("conv/{}/{}/{}x{}x{}x{}->{}/k{}", pass_name(p), dtype_name(dt), s.n,
                                               s.h, s.w, s.cin, s.cout, s.k);
          benchmark::RegisterBenchmark(name.c_str(), conv, p, dt, s)->Unit(benchmark::kMillisecond)->UseRealTime();
        }
  if (winograd_f2_available())
    for (DType dt : {DType::f32, DType::f16, DType::bf16})
      for (int batch : {1, 4})
        for (const ConvShape& s : unet_conv_shapes(batch)) {
          if (!winograd_f2_applies(s, dt)) continue;
          // bf16: "bf16" with bf16 products where the CPU has them, "bf16_f32products" the other form.
          for (bool bf16_products : {false, true}) {
            if (bf16_products && (dt != DType::bf16 || !winograd_f2_bf16_products_available())) continue;
            const bool other = dt == DType::bf16 && !bf16_products && winograd_f2_bf16_products_available();
            const std::string name = fmt::format("conv_winograd_f2/infer/{}{}/{}x{}x{}x{}->{}/k{}", dtype_name(dt),
                                                 other ? "_f32products" : "", s.n, s.h, s.w, s.cin, s.cout, s.k);
            benchmark::RegisterBenchmark(name.c_str(), conv_winograd_f2, dt, s, bf16_products)
                ->Unit(benchmark::kMillisecond)
                ->UseRealTime();
            const std::string wname =
                fmt::format("conv_winograd_f2/bwd_weights/{}{}/{}x{}x{}x{}->{}/k{}", dtype_name(dt),
                            other ? "_f32products" : "", s.n, s.h, s.w, s.cin, s.cout, s.k);
            benchmark::RegisterBenchmark(wname.c_str(), conv_winograd_f2_bwd_weights, dt, s, bf16_products)
                ->Unit(benchmark::kMillisecond)
                ->UseRealTime();
          }
        }
  if (conv2d_bwd_weights_rows_available()) {
    std::vector<ConvShape> shapes = unet_conv_shapes(1);
    for (ConvShape s : {ConvShape{1, 256, 128, 8, 16, 3}, {1, 256, 128, 16, 8, 3}})
      shapes.push_back(s);  // f=8's second level
    for (DType dt : {DType::f32, DType::f16, DType::bf16})
      for (const ConvShape& s : shapes)
        if (conv2d_bwd_weights_rows_applies(s, dt)) {
          const std::string name = fmt::format("conv_bwd_weights_rows/{}/{}x{}x{}x{}->{}/k{}", dtype_name(dt), s.n, s.h,
                                               s.w, s.cin, s.cout, s.k);
          benchmark::RegisterBenchmark(name.c_str(), conv_bwd_weights_rows, dt, s)
              ->Unit(benchmark::kMillisecond)
              ->UseRealTime();
        }
  }
  std::vector<std::pair<const char*, Int8ConvFn>> int8_variants = {{"avx2", conv2d_int8_avx2}};
  if (int8_vnni_available()) int8_variants.push_back({"vnni", conv2d_int8_vnni});
  if (int8_amx_available()) int8_variants.push_back({"amx", conv2d_int8_amx});
  std::vector<ConvShape> int8_shapes = unet_conv_shapes(1);
  for (ConvShape s : {ConvShape{1, 512, 256, 1, 8, 3}, {1, 512, 256, 8, 1, 1}})
    int8_shapes.push_back(s);  // the rest of the first level at f=8
  for (const auto& [variant, fn] : int8_variants)
    for (const ConvShape& s : int8_shapes) {
      const std::string name =
          fmt::format("conv_int8/{}/{}x{}x{}x{}->{}/k{}", variant, s.n, s.h, s.w, s.cin, s.cout, s.k);
      benchmark::RegisterBenchmark(name.c_str(), conv_int8, fn, s)->Unit(benchmark::kMillisecond)->UseRealTime();
    }
  for (const char* which : {"fast", "ref"})
    for (DType dt : {DType::f32, DType::f16, DType::bf16})
      for (int c : {8, 16, 32, 64}) {
        Backend* be = std::string(which) == "fast" ? backend().get() : ref_backend().get();
        // The level with c channels at f=16 (c=8: the first level at f=8).
        const int h = c == 8 ? 512 : 512 * 16 / c, w = h / 2;
        const double es = dtype_size(dt);
        auto reg = [&](const std::string& op, auto fn, double bytes) {
          const std::string name = fmt::format("{}/{}/{}/1x{}x{}x{}", op, which, dtype_name(dt), h, w, c);
          benchmark::RegisterBenchmark(name.c_str(), memory_op, fn, bytes)
              ->Unit(benchmark::kMicrosecond)
              ->UseRealTime();
        };
        Buffer *x = buffer(dt, {1, h, w, c}), *half = buffer(dt, {1, h / 2, w / 2, c});
        Buffer *cat = buffer(dt, {1, h, w, 2 * c}), *y = buffer(dt, {1, h, w, c});
        const double px = double(h) * w;
        reg("maxpool", [=] { be->maxpool_fwd(x->t, half->t); }, px * c * es * 1.25);
        reg("maxpool_bwd", [=] { be->maxpool_bwd(x->t, half->t, y->t, false); }, px * c * es * 2.25);
        reg("maxpool_bwd_add", [=] { be->maxpool_bwd(x->t, half->t, y->t, true); }, px * c * es * 3.25);
        reg("upsample_concat", [=] { be->upsample_concat_fwd(half->t, x->t, cat->t); }, px * c * es * (0.25 + 1 + 2));
        float* p = buffer(DType::f32, {1, 1, 6, c})->t.as<float>();
        const BatchNormState bn{p, p + c, p + 2 * c, p + 3 * c, p + 4 * c, p + 5 * c};
        reg("batchnorm_relu_train", [=] { be->batchnorm_fwd_train(x->t, bn, y->t, true); }, px * c * es * 3);
        // Backward: dy, x and the ReLU's output read twice (sums, then dx), dx written.
        Buffer *dy = buffer(dt, {1, h, w, c}), *dx = buffer(dt, {1, h, w, c});
        float* dgb = buffer(DType::f32, {1, 1, 2, c})->t.as<float>();
        reg("batchnorm_relu_bwd", [=] { be->batchnorm_bwd(dy->t, &y->t, x->t, bn, dx->t, dgb, dgb + c); },
            px * c * es * 7);
        reg("upsample_bwd", [=] { be->upsample_bwd(x->t, half->t); }, px * c * es * 1.25);
        reg("concat_bwd", [=] { be->concat_bwd(cat->t, x->t, y->t); }, px * c * es * 4);
        if (!be->supports(Op::channel_slices, dt)) continue;
        // The same ops on the skip's and the upsampled tensor's slices of a
        // concat buffer (training on the fast and CUDA backends): what a
        // level's copies cost against the strided accesses that replace them.
        const Tensor skip = cat->t.channels(c, c), up = cat->t.channels(0, c);
        Buffer* dcat = buffer(dt, {1, h, w, 2 * c});
        const Tensor dskip = dcat->t.channels(c, c), dup = dcat->t.channels(0, c);
        reg("maxpool_slice", [=] { be->maxpool_fwd(skip, half->t); }, px * c * es * 1.25);
        reg("maxpool_bwd_add_slice", [=] { be->maxpool_bwd(skip, half->t, dskip, true); }, px * c * es * 3.25);
        reg("upsample_slice", [=] { be->upsample_fwd(half->t, up); }, px * c * es * 1.25);
        reg("batchnorm_relu_train_slice", [=] { be->batchnorm_fwd_train(x->t, bn, skip, true); }, px * c * es * 3);
        reg("batchnorm_relu_bwd_slice", [=] { be->batchnorm_bwd(dskip, &skip, x->t, bn, dx->t, dgb, dgb + c); },
            px * c * es * 7);
        reg("upsample_bwd_slice", [=] { be->upsample_bwd(dup, half->t); }, px * c * es * 1.25);
      }
}

}  // namespace

int main(int argc, char** argv) {
  register_all();
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  buffers.clear();
  backend().reset();
  ref_backend().reset();
  return 0;
}
