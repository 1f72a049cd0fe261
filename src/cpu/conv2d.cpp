// oneDNN convolutions (see conv2d.h).
#include "cpu/conv2d.h"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <dnnl.hpp>
#include <functional>
#include <optional>
#include <set>

#include "core/error.h"
#include "core/threads.h"
#include "cpu/conv2d_bwd_weights_rows.h"
#include "cpu/conv2d_winograd.h"

namespace mixseg {

namespace {

using dnnl::memory;
using tag = memory::format_tag;

memory::data_type dnnl_type(DType t) {
  switch (t) {
    case DType::f32: return memory::data_type::f32;
    case DType::f16: return memory::data_type::f16;
    case DType::bf16: return memory::data_type::bf16;
    default: fail("oneDNN convolutions take f32, f16 or bf16, not {}", dtype_name(t));
  }
}

// fwd: training forward. infer: inference forward with bias and ReLU post-op.
enum class Kind { fwd, infer, bwd_data, bwd_weights };
// winograd_f2: the own kernel (conv2d_winograd.h); direct_banded: oneDNN's
// direct backward-weights on the image cut into bands (see band_count);
// direct_rows: the own direct backward-weights (conv2d_bwd_weights_rows.h).
enum class Algo { direct, winograd, winograd_f2, direct_banded, direct_rows };

const char* algo_name(Algo a) {
  switch (a) {
    case Algo::direct: return "direct";
    case Algo::winograd: return "winograd";
    case Algo::winograd_f2: return "winograd_f2";
    case Algo::direct_banded: return "direct_banded";
    case Algo::direct_rows: return "direct_rows";
  }
  return "?";
}

// Backward-weights at a batch smaller than the thread count: oneDNN splits
// this pass over images and channel blocks, so at batch 1 with 8-32
// channels one thread did most of the work (1.0-1.3x from 2 threads,
// measured at f=8 in f32 and bf16, docs/performance.md v0.11). Banded, each
// image is cut into B horizontal bands of h/B rows; each band is copied with
// its k/2 halo rows above and below (zeros past the image's edge) into a
// batch of n*B short images, and oneDNN runs the pass on that batch without
// vertical padding. The weight gradient sums over the batch, so it is the
// same sum in another order; the output gradient's bands are its rows as
// they lie in memory (NHWC), no copy. B = threads / n (at least 2 where
// forced), lowered until it divides h; 0 where it does not apply. Like
// oneDNN's own split, the summation order thus depends on the thread count.
int band_count(const ConvShape& s, bool forced) {
  if (s.k != 3 && !forced) return 0;  // 1x1: oneDNN already scales there
  int b = std::max(max_threads() / s.n, forced ? 2 : 0);
  while (b >= 2 && (s.h % b || (!forced && s.h / b < 4))) --b;
  return b >= 2 ? b : 0;
}

const char* kind_name(Kind k) {
  switch (k) {
    case Kind::fwd: return "fwd";
    case Kind::infer: return "infer";
    case Kind::bwd_data: return "bwd_data";
    case Kind::bwd_weights: return "bwd_weights";
  }
  return "?";
}

// A pass and shape as the algorithm log names them ("bwd_data bf16
// 8x64x64x16->32 k3"); a log line is this, ": ", and what runs it.
std::string pass_key(Kind kind, DType dt, const ConvShape& s, bool bias, bool relu) {
  return fmt::format("{} {} {}x{}x{}x{}->{} k{}{}{}", kind_name(kind), dtype_name(dt), s.n, s.h, s.w, s.cin, s.cout,
                     s.k, bias ? " +bias" : "", relu ? " +relu" : "");
}

// What a log line may say runs a pass: one of oneDNN's algorithms (Algo),
// the own Winograd kernels, or, for a 16-bit pass, the f32 primitive on
// widened copies.
constexpr const char* kThroughF32 = "through f32";
bool known_decision(const std::string& d) {
  return d == "direct" || d == "winograd" || d == "direct_banded" || d == "winograd_f2" || d == "direct_rows" ||
         d == kThroughF32;
}

// kind, dtype, algo, n, h, w, cin, cout, k, bias, relu
using Key = std::tuple<int, int, int, int, int, int, int, int, int, bool, bool>;

Key make_key(Kind kind, DType dt, Algo algo, const ConvShape& s, bool bias, bool relu) {
  return {int(kind), int(dt), int(algo), s.n, s.h, s.w, s.cin, s.cout, s.k, bias, relu};
}

// The index of the fastest of runs: a warm-up each, then 5 rounds in which
// each runs once, in turn; the lowest median wins. Alternated, so that a
// drift in this machine's speed (other tenants) does not favour whichever
// ran first.
size_t fastest_alternated(const std::vector<std::function<void()>>& runs) {
  for (const auto& once : runs) once();
  std::vector<std::vector<double>> t(runs.size());
  for (int round = 0; round < 5; ++round)
    for (size_t i = 0; i < runs.size(); ++i) {
      const auto t0 = std::chrono::steady_clock::now();
      runs[i]();
      t[i].push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    }
  size_t best = 0;
  double best_t = 1e300;
  for (size_t i = 0; i < runs.size(); ++i) {
    std::sort(t[i].begin(), t[i].end());
    if (t[i][2] < best_t) {
      best_t = t[i][2];
      best = i;
    }
  }
  return best;
}

}  // namespace

struct DnnlConvolutions::Impl {
  dnnl::engine engine{dnnl::engine::kind::cpu, 0};
  dnnl::stream stream{engine};

  // One primitive with its memories; user pointers are set per call.
  //   a: the activation read first (x, or dy for backward-data),
  //   c: the other activation (y or dx written; dy read by backward-weights),
  //   b: the user's OHWI weights (f32 weight gradient for backward-weights).
  // Where the primitive wants other layouts (blocked activations for
  // Winograd; blocked or transformed weights), a_prim / c_prim live in the
  // shared scratch pools and w_prim in the entry, with reorders around the call.
  struct Entry {
    dnnl::primitive prim;
    memory a, b, c, bias;
    memory a_prim, c_prim, w_prim, w_mid;
    dnnl::reorder a_reorder, c_reorder, w_reorder, w_mid_reorder;  // w_mid: weights via oihw (see bind_weights)
    bool a_re = false, c_re = false, w_re = false, has_bias = false;
    bool c_is_input = false;         // backward-weights reads both activations
    const void* w_cached = nullptr;  // inference: the user weights whose reorder w_prim holds
    // direct_banded: x is copied into bands (see band_count) before the primitive runs.
    struct Bands {
      int count = 0, n = 0, h = 0, halo = 0;
      size_t row_bytes = 0;  // one image row: w * cin elements
    } bands;
  };
  std::map<Key, Entry> cache;
  std::map<Key, Algo> chosen;  // the algorithm picked per (kind, dtype, shape, bias, relu)
  std::vector<std::string> chosen_log;  // one line per pass and shape run: pass_key, ": ", what runs it (log_use)
  std::set<Key> logged;
  // Decisions to follow instead of timing (replay_choices): pass_key -> what
  // runs it, as a log line says.
  std::map<std::string, std::string> recorded;
  std::map<int, bool> native_ok;  // dtype -> native convolutions available
  ConvAlgorithm policy = ConvAlgorithm::fastest;
  // f32 copies for dtypes without native primitives. Grown, never
  // zero-filled: std::vector's resize writes zeros over every element it
  // adds, a pass over memory whenever a larger conv follows a smaller one
  // (3.6% of an f16 inference profile).
  struct F32Scratch {
    std::unique_ptr<float[]> data;
    size_t capacity = 0;
    float* get(size_t n) {
      if (n > capacity) {
        data.reset(new float[n]);
        capacity = n;
      }
      return data.get();
    }
  };
  F32Scratch scratch_a, scratch_b, scratch_c;
  std::vector<std::byte> pool_a, pool_c;               // activations in the primitive's layout
  std::vector<std::byte> pool_bands;                   // x cut into bands with halos (direct_banded)
  // Inference through f32 scratch: the widened weights per user pointer
  // (16-bit bytes they came from, f32 copy), kept until invalidate_weights.
  struct Widened {
    size_t bytes;
    std::vector<float> f32;
  };
  std::map<const void*, Widened> widened;
  // The own Winograd kernels: whether they run each (kind, dtype, shape,
  // bias, relu) of every pass (timed against the library path, conversions
  // included); the forward kernel's transformed weights per user pointer
  // for inference (kept until invalidate_weights), one buffer for training.
  std::map<Key, bool> own_chosen;
  // Backward-weights: whether the own direct kernel runs each shape (timed
  // against what runs it otherwise: own_chosen's choice).
  std::map<Key, bool> rows_chosen;
  // 16-bit passes that run through f32 although oneDNN has a primitive for
  // their dtype: timed per (kind, dtype, shape, bias, relu), because on a CPU
  // without the dtype's instructions (bf16 without AVX512-BF16 or AMX) oneDNN
  // emulates it, ~3x slower than widening to f32 for a whole mixed_bf16
  // training step (docs/performance.md, v0.14). The arithmetic is
  // the same: 16-bit values, exact in f32, products summed in f32.
  std::map<Key, bool> f32_chosen;
  struct OwnWeights {
    size_t bytes;
    WinogradF2Weights u;
  };
  std::map<const void*, OwnWeights> own_weights;
  WinogradF2Weights own_training;

  memory::desc act(const ConvShape& s, int c, memory::data_type dt, tag t = tag::nhwc) {
    return memory::desc({s.n, c, s.h, s.w}, dt, t);
  }
  memory::desc weights(const ConvShape& s, memory::data_type dt, tag t) {
    return memory::desc({s.cout, s.cin, s.k, s.k}, dt, t);
  }
  static dnnl::algorithm alg(Algo a) {
    return a == Algo::direct ? dnnl::algorithm::convolution_direct : dnnl::algorithm::convolution_winograd;
  }
  static tag act_tag(Algo a) { return a == Algo::direct ? tag::nhwc : tag::any; }

  dnnl::convolution_forward::primitive_desc fwd_pd(const ConvShape& s, memory::data_type dt, Algo algo) {
    const memory::dims stride{1, 1}, pad{s.k / 2, s.k / 2};
    dnnl::convolution_forward::desc d(dnnl::prop_kind::forward_training, alg(algo), act(s, s.cin, dt, act_tag(algo)),
                                      weights(s, dt, tag::any), act(s, s.cout, dt, act_tag(algo)), stride, pad, pad);
    return {d, engine};
  }
  dnnl::convolution_forward::primitive_desc infer_pd(const ConvShape& s, memory::data_type dt, Algo algo, bool bias,
                                                     bool relu) {
    const memory::dims stride{1, 1}, pad{s.k / 2, s.k / 2};
    dnnl::primitive_attr attr;
    if (relu) {
      dnnl::post_ops po;
      po.append_eltwise(1.0f, dnnl::algorithm::eltwise_relu, 0.0f, 0.0f);
      attr.set_post_ops(po);
    }
    const auto src = act(s, s.cin, dt, act_tag(algo)), dst = act(s, s.cout, dt, act_tag(algo));
    const auto w = weights(s, dt, tag::any);
    if (bias) {
      const memory::desc b({s.cout}, memory::data_type::f32, tag::x);
      dnnl::convolution_forward::desc d(dnnl::prop_kind::forward_inference, alg(algo), src, w, b, dst, stride, pad,
                                        pad);
      return {d, attr, engine};
    }
    dnnl::convolution_forward::desc d(dnnl::prop_kind::forward_inference, alg(algo), src, w, dst, stride, pad, pad);
    return {d, attr, engine};
  }

  // Activations: the primitive's layout is the user's NHWC, or a pool buffer
  // with a reorder (user -> primitive for inputs, back for outputs).
  void bind_act(const memory& user, const memory::desc& prim_md, memory& prim, dnnl::reorder& r, bool& needed,
                bool input) {
    needed = prim_md != user.get_desc();
    if (!needed) {
      prim = user;
      return;
    }
    prim = memory(prim_md, engine, nullptr);  // handle set to a pool per call
    r = input ? dnnl::reorder(user, prim) : dnnl::reorder(prim, user);
  }
  // Weights: owned buffer in the primitive's layout. oneDNN transforms
  // Winograd weights only from oihw, so when the direct reorder does not
  // exist the weights go through an oihw buffer (two reorders over the small
  // weights).
  void bind_weights(Entry& e, const memory::desc& prim_md, bool input) {
    e.w_re = prim_md != e.b.get_desc();
    if (!e.w_re) {
      e.w_prim = e.b;
      return;
    }
    e.w_prim = memory(prim_md, engine);
    try {
      e.w_reorder = input ? dnnl::reorder(e.b, e.w_prim) : dnnl::reorder(e.w_prim, e.b);
    } catch (const dnnl::error&) {
      const memory::desc& u = e.b.get_desc();
      e.w_mid = memory(memory::desc(u.dims(), u.data_type(), tag::oihw), engine);
      if (input) {
        e.w_mid_reorder = dnnl::reorder(e.b, e.w_mid);
        e.w_reorder = dnnl::reorder(e.w_mid, e.w_prim);
      } else {
        e.w_reorder = dnnl::reorder(e.w_prim, e.w_mid);
        e.w_mid_reorder = dnnl::reorder(e.w_mid, e.b);
      }
    }
  }

  Entry make(Kind kind, const ConvShape& s, memory::data_type dt, Algo algo, bool bias, bool relu) {
    const memory::dims stride{1, 1}, pad{s.k / 2, s.k / 2};
    Entry e;
    e.b = memory(weights(s, kind == Kind::bwd_weights ? memory::data_type::f32 : dt, tag::ohwi), engine, nullptr);
    const memory::desc x = act(s, s.cin, dt), y = act(s, s.cout, dt);
    if (kind == Kind::fwd || kind == Kind::infer) {
      auto pd = kind == Kind::fwd ? fwd_pd(s, dt, algo) : infer_pd(s, dt, algo, bias, relu);
      e.prim = dnnl::convolution_forward(pd);
      e.a = memory(x, engine, nullptr);
      e.c = memory(y, engine, nullptr);
      bind_act(e.a, pd.src_desc(), e.a_prim, e.a_reorder, e.a_re, true);
      bind_act(e.c, pd.dst_desc(), e.c_prim, e.c_reorder, e.c_re, false);
      bind_weights(e, pd.weights_desc(), true);
      if (bias) {
        e.has_bias = true;
        e.bias = memory(pd.bias_desc(), engine, nullptr);
      }
    } else if (kind == Kind::bwd_data) {
      dnnl::convolution_backward_data::desc d(alg(algo), act(s, s.cin, dt, act_tag(algo)), weights(s, dt, tag::any),
                                              act(s, s.cout, dt, act_tag(algo)), stride, pad, pad);
      dnnl::convolution_backward_data::primitive_desc pd(d, engine, fwd_pd(s, dt, algo));
      e.prim = dnnl::convolution_backward_data(pd);
      e.a = memory(y, engine, nullptr);  // dy
      e.c = memory(x, engine, nullptr);  // dx
      bind_act(e.a, pd.diff_dst_desc(), e.a_prim, e.a_reorder, e.a_re, true);
      bind_act(e.c, pd.diff_src_desc(), e.c_prim, e.c_reorder, e.c_re, false);
      bind_weights(e, pd.weights_desc(), true);
    } else if (algo == Algo::direct_banded) {
      // n*B bands of h/B rows, each read with its halo rows: no vertical padding.
      const int count = band_count(s, policy == ConvAlgorithm::direct_banded), halo = s.k / 2;
      if (count < 2) fail("banded backward-weights does not apply to {}x{}x{}x{}", s.n, s.h, s.w, s.cin);
      const ConvShape bs{s.n * count, s.h / count, s.w, s.cin, s.cout, s.k};
      const memory::dims band_pad{0, halo};  // none above and below: the halo rows are in the band
      const memory::desc bx({bs.n, s.cin, bs.h + 2 * halo, s.w}, dt, tag::nhwc), bdy = act(bs, s.cout, dt);
      const memory::desc bw = weights(s, dt, tag::any), bdw = weights(s, memory::data_type::f32, tag::any);
      dnnl::convolution_forward::desc hint_d(dnnl::prop_kind::forward_training, dnnl::algorithm::convolution_direct,
                                             bx, bw, bdy, stride, band_pad, band_pad);
      dnnl::convolution_forward::primitive_desc hint(hint_d, engine);
      dnnl::convolution_backward_weights::desc d(dnnl::algorithm::convolution_direct, bx, bdw, bdy, stride, band_pad,
                                                 band_pad);
      dnnl::convolution_backward_weights::primitive_desc pd(d, engine, hint);
      e.prim = dnnl::convolution_backward_weights(pd);
      e.c_is_input = true;
      e.a = memory(bx, engine, nullptr);   // x in bands (pool_bands)
      e.c = memory(bdy, engine, nullptr);  // dy as it is
      bind_act(e.a, pd.src_desc(), e.a_prim, e.a_reorder, e.a_re, true);
      bind_act(e.c, pd.diff_dst_desc(), e.c_prim, e.c_reorder, e.c_re, true);
      bind_weights(e, pd.diff_weights_desc(), false);
      e.bands = {count, s.n, s.h, halo, size_t(s.w) * s.cin * size_t(memory::data_type_size(dt))};
    } else {
      dnnl::convolution_backward_weights::desc d(alg(algo), act(s, s.cin, dt, act_tag(algo)),
                                                 weights(s, memory::data_type::f32, tag::any),
                                                 act(s, s.cout, dt, act_tag(algo)), stride, pad, pad);
      dnnl::convolution_backward_weights::primitive_desc pd(d, engine, fwd_pd(s, dt, algo));
      e.prim = dnnl::convolution_backward_weights(pd);
      e.c_is_input = true;
      e.a = memory(x, engine, nullptr);  // x
      e.c = memory(y, engine, nullptr);  // dy
      bind_act(e.a, pd.src_desc(), e.a_prim, e.a_reorder, e.a_re, true);
      bind_act(e.c, pd.diff_dst_desc(), e.c_prim, e.c_reorder, e.c_re, true);
      bind_weights(e, pd.diff_weights_desc(), false);
    }
    return e;
  }

  Entry& get(Kind kind, const ConvShape& s, DType dt, Algo algo, bool bias = false, bool relu = false) {
    const Key key = make_key(kind, dt, algo, s, bias, relu);
    auto it = cache.find(key);
    if (it == cache.end()) it = cache.emplace(key, make(kind, s, dnnl_type(dt), algo, bias, relu)).first;
    return it->second;
  }

  bool native(DType dt) {
    if (dt == DType::f32) return true;
    auto it = native_ok.find(int(dt));
    if (it != native_ok.end()) return it->second;
    // Probe all three primitives on a small shape: native only if oneDNN implements them all here.
    bool ok = true;
    try {
      const ConvShape probe{1, 8, 8, 16, 16, 3};
      for (Kind k : {Kind::fwd, Kind::bwd_data, Kind::bwd_weights}) make(k, probe, dnnl_type(dt), Algo::direct, false, false);
    } catch (const dnnl::error&) {
      ok = false;
    }
    native_ok[int(dt)] = ok;
    return ok;
  }

  static void* pool(std::vector<std::byte>& p, const memory& m) {
    const size_t need = m.get_desc().get_size();
    if (p.size() < need) p.resize(need);
    return p.data();
  }

  // x (n images of h rows) copied into n * count bands of h / count rows,
  // each with `halo` rows of its neighbours above and below, zeros past the
  // image's top and bottom; returns the copy.
  const void* copy_into_bands(const Entry::Bands& b, const void* x) {
    const int band_h = b.h / b.count, rows = band_h + 2 * b.halo;
    const size_t band_bytes = b.row_bytes * size_t(rows);
    if (pool_bands.size() < band_bytes * size_t(b.n) * b.count) pool_bands.resize(band_bytes * size_t(b.n) * b.count);
    const auto* src = static_cast<const std::byte*>(x);
    std::byte* dst = pool_bands.data();
#pragma omp parallel for schedule(static)
    for (int i = 0; i < b.n * b.count; ++i) {
      const int image = i / b.count, first = (i % b.count) * band_h - b.halo;  // image row of the band's row 0
      for (int r = 0; r < rows; ++r) {
        std::byte* out = dst + size_t(i) * band_bytes + size_t(r) * b.row_bytes;
        const int row = first + r;
        if (row < 0 || row >= b.h)
          std::memset(out, 0, b.row_bytes);
        else
          std::memcpy(out, src + (size_t(image) * b.h + row) * b.row_bytes, b.row_bytes);
      }
    }
    return dst;
  }

  // Runs entry e with the user's pointers a, b, c (see Entry) and bias.
  void run(Kind kind, Entry& e, const void* a, const void* b, const void* c, const float* bias = nullptr,
           bool cache_weights = true) {
    if (e.bands.count) a = copy_into_bands(e.bands, a);
    e.a.set_data_handle(const_cast<void*>(a));
    e.b.set_data_handle(const_cast<void*>(b));
    e.c.set_data_handle(const_cast<void*>(c));
    if (e.has_bias) e.bias.set_data_handle(const_cast<float*>(bias));
    if (e.a_re) e.a_prim.set_data_handle(pool(pool_a, e.a_prim));
    if (e.c_re) e.c_prim.set_data_handle(pool(pool_c, e.c_prim));
    // Inference weights stay in the primitive's layout (for Winograd: already
    // transformed) until the user's weights change (see invalidate_weights).
    const bool reuse = kind == Kind::infer && cache_weights && e.w_cached == b;
    if (kind != Kind::bwd_weights && e.w_re && !reuse) {
      if (e.w_mid) e.w_mid_reorder.execute(stream, e.b, e.w_mid);
      e.w_reorder.execute(stream, e.w_mid ? e.w_mid : e.b, e.w_prim);
    }
    e.w_cached = kind == Kind::infer && cache_weights ? b : nullptr;
    if (e.a_re) e.a_reorder.execute(stream, e.a, e.a_prim);
    if (e.c_re && e.c_is_input) e.c_reorder.execute(stream, e.c, e.c_prim);
    switch (kind) {
      case Kind::fwd:
      case Kind::infer: {
        std::unordered_map<int, memory> args{
            {DNNL_ARG_SRC, e.a_prim}, {DNNL_ARG_WEIGHTS, e.w_prim}, {DNNL_ARG_DST, e.c_prim}};
        if (e.has_bias) args[DNNL_ARG_BIAS] = e.bias;
        e.prim.execute(stream, args);
        break;
      }
      case Kind::bwd_data:
        e.prim.execute(stream,
                       {{DNNL_ARG_DIFF_DST, e.a_prim}, {DNNL_ARG_WEIGHTS, e.w_prim}, {DNNL_ARG_DIFF_SRC, e.c_prim}});
        break;
      case Kind::bwd_weights:
        e.prim.execute(stream,
                       {{DNNL_ARG_SRC, e.a_prim}, {DNNL_ARG_DIFF_DST, e.c_prim}, {DNNL_ARG_DIFF_WEIGHTS, e.w_prim}});
        if (e.w_re) {
          e.w_reorder.execute(stream, e.w_prim, e.w_mid ? e.w_mid : e.b);
          if (e.w_mid) e.w_mid_reorder.execute(stream, e.w_mid, e.b);
        }
        break;
    }
    if (e.c_re && !e.c_is_input) e.c_reorder.execute(stream, e.c_prim, e.c);
    stream.wait();
  }

  // The algorithm for this (kind, dtype, shape, bias, relu), chosen on first
  // use by timing the candidates in turn (fastest_alternated) on
  // zero-filled buffers of the real size
  // (zeros: no denormals to slow a candidate down by accident). Winograd is
  // a candidate for f32 3x3 convolutions with at least 16 channels in and
  // out (below that it never won here, and timing it costs startup time).
  Algo choose(Kind kind, const ConvShape& s, DType dt, bool bias, bool relu) {
    const Key key = make_key(kind, dt, Algo::direct, s, bias, relu);
    if (auto it = chosen.find(key); it != chosen.end()) return it->second;
    if (const std::string* r = recorded_for(kind, dt, s, bias, relu)) {
      if (std::optional<Algo> a = replayed_algo(*r, kind, s, dt, bias, relu)) {
        chosen[key] = *a;
        return *a;
      }
    }
    std::vector<Algo> candidates;
    const bool banded_forced = policy == ConvAlgorithm::direct_banded;
    const bool banded = kind == Kind::bwd_weights && (banded_forced || policy == ConvAlgorithm::fastest) &&
                        band_count(s, banded_forced) >= 2;
    if (policy != ConvAlgorithm::winograd && !(banded && banded_forced)) candidates.push_back(Algo::direct);
    if (banded) candidates.push_back(Algo::direct_banded);
    const bool wino_shape = dt == DType::f32 && s.k == 3 && (policy == ConvAlgorithm::winograd || (s.cin >= 16 && s.cout >= 16));
    if (policy != ConvAlgorithm::direct && policy != ConvAlgorithm::direct_banded && wino_shape) {
      try {
        get(kind, s, dt, Algo::winograd, bias, relu);
        candidates.push_back(Algo::winograd);
      } catch (const dnnl::error&) {
        // not implemented for this CPU, shape or pass
      }
    }
    if (candidates.empty()) candidates.push_back(Algo::direct);
    Algo best = candidates[0];
    if (candidates.size() > 1) {
      const size_t es = dtype_size(dt), px = size_t(s.n) * s.h * s.w;
      std::vector<std::byte> a(px * size_t(kind == Kind::bwd_data ? s.cout : s.cin) * es);
      std::vector<std::byte> c(px * size_t(kind == Kind::bwd_data ? s.cin : s.cout) * es);
      std::vector<std::byte> w(s.weight_numel() * (kind == Kind::bwd_weights ? sizeof(float) : es));
      std::vector<float> b(size_t(s.cout));
      // The warm-up also reorders inference weights, as in use.
      std::vector<Entry*> entries;
      std::vector<std::function<void()>> runs;
      for (Algo algo : candidates) {
        Entry* e = entries.emplace_back(&get(kind, s, dt, algo, bias, relu));
        runs.push_back([&, e] { run(kind, *e, a.data(), w.data(), c.data(), b.data()); });
      }
      best = candidates[fastest_alternated(runs)];
      for (Entry* e : entries) e->w_cached = nullptr;  // the scratch weights are freed below
    }
    chosen[key] = best;
    return best;
  }

  // Logs what ran this pass and shape, the first time it runs for real (not
  // while the candidates are timed): the own kernel, or the library's
  // algorithm, or "through f32" and the f32 primitive's algorithm. The
  // decisions are made by then, so asking for them again times nothing.
  void log_use(Kind kind, const ConvShape& s, DType dt, bool bias, bool relu) {
    if (!logged.insert(make_key(kind, dt, Algo::direct, s, bias, relu)).second) return;
    const std::string key = pass_key(kind, dt, s, bias, relu);
    if (kind == Kind::bwd_weights && use_rows(s, dt)) return chosen_log.push_back(key + ": direct_rows");
    if (use_own(kind, s, dt, bias, relu)) return chosen_log.push_back(key + ": winograd_f2");
    DType run_dt = dt;
    if (through_f32(kind, s, dt, bias, relu)) {
      chosen_log.push_back(key + ": " + kThroughF32);
      if (!logged.insert(make_key(kind, DType::f32, Algo::direct, s, bias, relu)).second) return;
      run_dt = DType::f32;
    }
    chosen_log.push_back(pass_key(kind, run_dt, s, bias, relu) + ": " + algo_name(choose(kind, s, run_dt, bias, relu)));
  }

  // The recorded decision for this pass and shape, if one was given and no
  // algorithm is forced.
  const std::string* recorded_for(Kind kind, DType dt, const ConvShape& s, bool bias, bool relu) const {
    if (policy != ConvAlgorithm::fastest || recorded.empty()) return nullptr;
    auto it = recorded.find(pass_key(kind, dt, s, bias, relu));
    return it == recorded.end() ? nullptr : &it->second;
  }

  // A recorded oneDNN algorithm (null for the own kernel or through f32,
  // which use_own and through_f32 follow). Banded backward-weights needs a
  // batch below the thread count: with more threads than when it was
  // recorded, direct runs, as timing would have left it (its line then
  // differs from the record's). Winograd that oneDNN lacks here is an error.
  std::optional<Algo> replayed_algo(const std::string& r, Kind kind, const ConvShape& s, DType dt, bool bias,
                                    bool relu) {
    if (r == "direct") return Algo::direct;
    if (r == "direct_banded") return band_count(s, false) >= 2 ? Algo::direct_banded : Algo::direct;
    if (r != "winograd") return std::nullopt;
    try {
      get(kind, s, dt, Algo::winograd, bias, relu);
    } catch (const dnnl::error&) {
      fail(
          "the recorded algorithm 'winograd' for '{}' is not available on this CPU (oneDNN has no Winograd "
          "convolution for it here)",
          pass_key(kind, dt, s, bias, relu));
    }
    return Algo::winograd;
  }

  Entry& entry(Kind kind, const ConvShape& s, DType dt, bool bias = false, bool relu = false) {
    return get(kind, s, dt, choose(kind, s, dt, bias, relu), bias, relu);
  }

  // Widens n elements of storage type dt into buf (resized), returns its data.
  static void widen_to(float* dst, DType dt, const void* src, size_t n) {
    dispatch_float(dt, [&]<class T>() { widen_parallel(static_cast<const T*>(src), dst, n); });
  }
  float* widen_into(F32Scratch& buf, DType dt, const void* src, size_t n) {
    float* f = buf.get(n);
    widen_to(f, dt, src, n);
    return f;
  }
  static void narrow_to(void* dst, DType dt, const float* src, size_t n) {
    dispatch_float(dt, [&]<class T>() { narrow_parallel(src, static_cast<T*>(dst), n); });
  }

  // Forward, inference forward or backward-data through oneDNN: activation
  // `in` (cin channels) and weights w give activation `out` (cout channels);
  // through f32 scratch when dt has no native primitive or that is faster
  // (through_f32).
  void run_library(Kind kind, const ConvShape& s, DType dt, const void* in, int cin, const void* w, void* out, int cout,
                   const float* bias = nullptr, bool relu = false) {
    run_library_as(through_f32(kind, s, dt, bias != nullptr, relu) ? DType::f32 : dt, kind, s, dt, in, cin, w, out,
                   cout, bias, relu);
  }

  // Whether this pass of 16-bit dtype dt runs through f32 (f32_chosen):
  // always without a native primitive, never when an algorithm is forced,
  // else whichever is faster on zero-filled buffers of the real size.
  bool through_f32(Kind kind, const ConvShape& s, DType dt, bool bias, bool relu) {
    if (dt == DType::f32) return false;
    if (!native(dt)) return true;
    if (policy != ConvAlgorithm::fastest) return false;
    const Key key = make_key(kind, dt, Algo::direct, s, bias, relu);
    if (auto it = f32_chosen.find(key); it != f32_chosen.end()) return it->second;
    if (const std::string* r = recorded_for(kind, dt, s, bias, relu); r && *r != "winograd_f2") {
      return f32_chosen[key] = *r == kThroughF32;
    }
    const size_t es = dtype_size(dt), px = size_t(s.n) * s.h * s.w;
    const bool wgrad = kind == Kind::bwd_weights;
    const ConvShape os = own_shape(kind, s);  // the pass's channels in and out (backward-data's swapped)
    const int cin = os.cin, cout = os.cout;
    std::vector<std::byte> a(px * cin * es), c(px * cout * es), w(s.weight_numel() * (wgrad ? sizeof(float) : es));
    std::vector<float> b(size_t(s.cout));
    const float* bp = bias ? b.data() : nullptr;
    auto* dw = reinterpret_cast<float*>(w.data());
    auto pass = [&](DType run_dt) {
      if (wgrad) return library_backward_weights_as(run_dt, s, dt, a.data(), c.data(), dw);
      run_library_as(run_dt, kind, s, dt, a.data(), cin, w.data(), c.data(), cout, bp, relu);
    };
    const bool widen = fastest_alternated({[&] { pass(dt); }, [&] { pass(DType::f32); }}) == 1;
    forget_weights(w.data(), w.size());
    f32_chosen[key] = widen;
    return widen;
  }

  // run_library's pass with the primitive of run_dt: dt's own, or f32 on
  // widened copies (the output narrowed back to dt).
  void run_library_as(DType run_dt, Kind kind, const ConvShape& s, DType dt, const void* in, int cin, const void* w,
                      void* out, int cout, const float* bias, bool relu) {
    Entry& e = entry(kind, s, run_dt, bias != nullptr, relu);
    if (run_dt == dt) return run(kind, e, in, w, out, bias);
    // Through f32 scratch. Inference widens each weight tensor once (its f32
    // copy has a stable address, so the primitive's reordered weights are
    // reused too); training widens into one buffer per call.
    const size_t pixels = size_t(s.n) * s.h * s.w;
    const float* in_f = widen_into(scratch_a, dt, in, pixels * cin);
    const float* w_f;
    if (kind == Kind::infer) {
      auto it = widened.find(w);
      if (it == widened.end()) {
        Widened wd{s.weight_numel() * dtype_size(dt), {}};
        wd.f32.resize(s.weight_numel());
        widen_to(wd.f32.data(), dt, w, s.weight_numel());
        it = widened.emplace(w, std::move(wd)).first;
      }
      w_f = it->second.f32.data();
    } else {
      w_f = widen_into(scratch_b, dt, w, s.weight_numel());
    }
    float* out_f = scratch_c.get(pixels * cout);
    run(kind, e, in_f, w_f, out_f, bias, kind == Kind::infer);
    narrow_to(out, dt, out_f, pixels * cout);
  }

  // The same through the own Winograd kernel where it was chosen
  // (backward-data as the forward convolution of dy with the transposed,
  // flipped weights).
  void run_activation_out(Kind kind, const ConvShape& s, DType dt, const void* in, int cin, const void* w, void* out,
                          int cout, const float* bias = nullptr, bool relu = false) {
    log_use(kind, s, dt, bias != nullptr, relu);
    if (use_own(kind, s, dt, bias != nullptr, relu)) return run_own(kind, s, dt, in, w, out, bias, relu);
    run_library(kind, s, dt, in, cin, w, out, cout, bias, relu);
  }

  // The convolution the own kernel runs for this pass: backward-data's
  // goes from s.cout to s.cin channels.
  static ConvShape own_shape(Kind kind, const ConvShape& s) {
    return kind == Kind::bwd_data ? ConvShape{s.n, s.h, s.w, s.cout, s.cin, s.k} : s;
  }

  bool own_candidate(Kind kind, const ConvShape& s, DType dt) const {
    return policy != ConvAlgorithm::direct && policy != ConvAlgorithm::winograd &&
           policy != ConvAlgorithm::direct_banded &&
           winograd_f2_applies(own_shape(kind, s), dt) && winograd_f2_available();
  }

  // Backward-weights through oneDNN (f32 weight gradient; 16-bit
  // activations widened to f32 scratch where oneDNN has no such primitive,
  // or where that is faster: through_f32).
  void library_backward_weights(const ConvShape& s, DType dt, const void* x, const void* dy, float* dw) {
    library_backward_weights_as(through_f32(Kind::bwd_weights, s, dt, false, false) ? DType::f32 : dt, s, dt, x, dy,
                                dw);
  }
  void library_backward_weights_as(DType run_dt, const ConvShape& s, DType dt, const void* x, const void* dy,
                                   float* dw) {
    if (run_dt == dt) return run(Kind::bwd_weights, entry(Kind::bwd_weights, s, dt), x, dw, dy);
    const size_t nx = size_t(s.n) * s.h * s.w * s.cin, ny = size_t(s.n) * s.h * s.w * s.cout;
    const float* xf = widen_into(scratch_a, dt, x, nx);
    const float* gf = widen_into(scratch_c, dt, dy, ny);
    run(Kind::bwd_weights, entry(Kind::bwd_weights, s, DType::f32), xf, dw, gf);
  }

  void run_own(Kind kind, const ConvShape& s, DType dt, const void* x, const void* w, void* y, const float* bias,
               bool relu) {
    if (kind != Kind::infer) {  // training: the weights change between calls
      winograd_f2_transform_weights(own_training, s, dt, w, kind == Kind::bwd_data);  // in its memory
      return conv2d_winograd_f2(own_shape(kind, s), dt, x, own_training, bias, y, relu);
    }
    conv2d_winograd_f2(s, dt, x, own_inference_weights(s, dt, w), bias, y, relu);
  }

  // Inference weights transformed once per weight pointer.
  const WinogradF2Weights& own_inference_weights(const ConvShape& s, DType dt, const void* w) {
    auto it = own_weights.find(w);
    if (it == own_weights.end())
      it = own_weights.emplace(w, OwnWeights{s.weight_numel() * dtype_size(dt), winograd_f2_transform_weights(s, dt, w)})
               .first;
    return it->second.u;
  }

  // Whether the own kernel runs this pass: forced, or faster than
  // the library path (its conversions through f32 included) when both are
  // timed on zero-filled buffers of the real size (own_is_faster).
  bool use_own(Kind kind, const ConvShape& s, DType dt, bool bias, bool relu) {
    // Decided once per pass and shape (no key formatting or record lookup on later calls).
    const Key key = make_key(kind, dt, Algo::winograd_f2, s, bias, relu);
    if (auto it = own_chosen.find(key); it != own_chosen.end()) return it->second;
    const std::string* r = recorded_for(kind, dt, s, bias, relu);
    if (!own_candidate(kind, s, dt)) {
      if (r && *r == "winograd_f2")
        fail(
            "the recorded algorithm 'winograd_f2' for '{}' does not run here (the own Winograd kernels need "
            "AVX-512)",
            pass_key(kind, dt, s, bias, relu));
      return own_chosen[key] = false;
    }
    const bool own = r                                      ? *r == "winograd_f2"
                     : policy == ConvAlgorithm::winograd_f2 ? true
                                                            : own_is_faster(kind, s, dt, bias, relu);
    own_chosen[key] = own;
    return own;
  }

  bool own_is_faster(Kind kind, const ConvShape& s, DType dt, bool bias, bool relu) {
    const size_t es = dtype_size(dt), px = size_t(s.n) * s.h * s.w;
    const ConvShape os = own_shape(kind, s);
    const int cin = os.cin, cout = os.cout;
    // a: the activation read (x, or dy for backward-data); c: the one written
    // (read too, as dy, by backward-weights); w: weights (f32 gradient for
    // backward-weights).
    const bool wgrad = kind == Kind::bwd_weights;
    std::vector<std::byte> a(px * cin * es), c(px * cout * es), w(s.weight_numel() * (wgrad ? sizeof(float) : es));
    std::vector<float> b(size_t(s.cout));
    const float* bp = bias ? b.data() : nullptr;
    auto* dw = reinterpret_cast<float*>(w.data());
    auto own = [&] {
      if (wgrad) return conv2d_winograd_f2_backward_weights(s, dt, a.data(), c.data(), dw);
      run_own(kind, s, dt, a.data(), w.data(), c.data(), bp, relu);
    };
    auto lib = [&] {
      if (wgrad) return library_backward_weights(s, dt, a.data(), c.data(), dw);
      run_library(kind, s, dt, a.data(), cin, w.data(), c.data(), cout, bp, relu);
    };
    const bool own_wins = fastest_alternated({own, lib}) == 0;
    forget_weights(w.data(), w.size());
    return own_wins;
  }

  // Whether the own direct weight gradient runs this shape: as recorded,
  // else timed against the pass's other way (the own Winograd kernel or the
  // library, as use_own decides); only when no algorithm is forced.
  bool use_rows(const ConvShape& s, DType dt) {
    const Key key = make_key(Kind::bwd_weights, dt, Algo::direct_rows, s, false, false);
    if (auto it = rows_chosen.find(key); it != rows_chosen.end()) return it->second;
    const std::string* r = recorded_for(Kind::bwd_weights, dt, s, false, false);
    if (policy != ConvAlgorithm::fastest || !conv2d_bwd_weights_rows_applies(s, dt) ||
        !conv2d_bwd_weights_rows_available()) {
      if (r && *r == "direct_rows")
        fail(
            "the recorded algorithm 'direct_rows' for '{}' does not run here (the own direct weight gradient needs "
            "AVX-512)",
            pass_key(Kind::bwd_weights, dt, s, false, false));
      return rows_chosen[key] = false;
    }
    if (r) return rows_chosen[key] = *r == "direct_rows";
    const size_t px = size_t(s.n) * s.h * s.w, es = dtype_size(dt);
    std::vector<std::byte> x(px * s.cin * es), dy(px * s.cout * es);
    std::vector<float> dw(s.weight_numel());
    auto rows = [&] { conv2d_bwd_weights_rows(s, dt, x.data(), dy.data(), dw.data()); };
    auto other = [&] {
      if (use_own(Kind::bwd_weights, s, dt, false, false))
        return conv2d_winograd_f2_backward_weights(s, dt, x.data(), dy.data(), dw.data());
      library_backward_weights(s, dt, x.data(), dy.data(), dw.data());
    };
    return rows_chosen[key] = fastest_alternated({rows, other}) == 0;
  }

  void forget_choices() {
    chosen.clear();
    own_chosen.clear();
    rows_chosen.clear();
    f32_chosen.clear();
    chosen_log.clear();
    logged.clear();
  }

  // Drops every cached form of the weights in [begin, begin + bytes)
  // (bytes = 0: all): widened copies, reordered primitive weights, own
  // transformed weights.
  void forget_weights(const void* begin, size_t bytes) {
    const auto* lo = static_cast<const std::byte*>(begin);
    auto overlaps = [&](const void* ptr, size_t size) {
      const auto* p = static_cast<const std::byte*>(ptr);
      return bytes == 0 || (p < lo + bytes && lo < p + size);
    };
    // Widened f32 copies of rewritten 16-bit weights go, and so does any
    // primitive weight cache made from such a copy (its address may be reused).
    for (auto it = widened.begin(); it != widened.end();) {
      if (overlaps(it->first, it->second.bytes)) {
        const float* f = it->second.f32.data();
        for (auto& [key, e] : cache)
          if (e.w_cached == f) e.w_cached = nullptr;
        it = widened.erase(it);
      } else {
        ++it;
      }
    }
    for (auto& [key, e] : cache)
      if (e.w_cached && overlaps(e.w_cached, e.b.get_desc().get_size())) e.w_cached = nullptr;
    for (auto it = own_weights.begin(); it != own_weights.end();)
      it = overlaps(it->first, it->second.bytes) ? own_weights.erase(it) : std::next(it);
  }
};

DnnlConvolutions::DnnlConvolutions() : impl_(std::make_unique<Impl>()) {}
DnnlConvolutions::~DnnlConvolutions() = default;

bool DnnlConvolutions::native(DType dt) { return impl_->native(dt); }
std::vector<std::string> DnnlConvolutions::chosen_algorithms() const { return impl_->chosen_log; }
void DnnlConvolutions::set_algorithm(ConvAlgorithm a) {
  impl_->policy = a;
  impl_->forget_choices();
}

void DnnlConvolutions::replay_choices(const std::vector<std::string>& lines) {
  std::map<std::string, std::string> recorded;
  for (const std::string& line : lines) {
    const size_t colon = line.rfind(": ");
    const std::string decision = colon == std::string::npos ? "" : line.substr(colon + 2);
    if (!known_decision(decision))
      fail(
          "'{}' is not a choice of the fast backend's convolutions (expected a pass and shape, ': ', and direct, "
          "winograd, direct_banded, winograd_f2, direct_rows or {})",
          line, kThroughF32);
    recorded[line.substr(0, colon)] = decision;
  }
  impl_->recorded = std::move(recorded);
  impl_->forget_choices();
}

void DnnlConvolutions::invalidate_weights(const void* begin, size_t bytes) { impl_->forget_weights(begin, bytes); }

void DnnlConvolutions::forward(const ConvShape& s, DType dt, const void* x, const void* w, void* y) {
  impl_->run_activation_out(Kind::fwd, s, dt, x, s.cin, w, y, s.cout);
}

void DnnlConvolutions::forward_bias(const ConvShape& s, DType dt, const void* x, const void* w, const float* bias,
                                    void* y, bool relu) {
  impl_->run_activation_out(Kind::infer, s, dt, x, s.cin, w, y, s.cout, bias, relu);
}

bool DnnlConvolutions::forward_bias_upsample_concat(const ConvShape& s, DType dt, const void* low, int c_low,
                                                    const void* skip, const void* w, const float* bias, void* y,
                                                    bool relu) {
  Impl& m = *impl_;
  if (s.h % 2 || s.w % 2 || !m.use_own(Kind::infer, s, dt, bias != nullptr, relu)) return false;
  m.log_use(Kind::infer, s, dt, bias != nullptr, relu);
  conv2d_winograd_f2_upsample_concat(s, dt, low, c_low, skip, m.own_inference_weights(s, dt, w), bias, y, relu);
  return true;
}

void DnnlConvolutions::backward_data(const ConvShape& s, DType dt, const void* dy, const void* w, void* dx) {
  impl_->run_activation_out(Kind::bwd_data, s, dt, dy, s.cout, w, dx, s.cin);
}

void DnnlConvolutions::backward_weights(const ConvShape& s, DType dt, const void* x, const void* dy, float* dw) {
  Impl& m = *impl_;
  m.log_use(Kind::bwd_weights, s, dt, false, false);
  if (m.use_rows(s, dt)) return conv2d_bwd_weights_rows(s, dt, x, dy, dw);
  if (m.use_own(Kind::bwd_weights, s, dt, false, false)) return conv2d_winograd_f2_backward_weights(s, dt, x, dy, dw);
  m.library_backward_weights(s, dt, x, dy, dw);
}

}  // namespace mixseg
