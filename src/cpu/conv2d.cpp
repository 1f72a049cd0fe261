// oneDNN convolutions (see conv2d.h).
#include "cpu/conv2d.h"

#include <dnnl.hpp>

#include "core/error.h"

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

enum class Kind { fwd, bwd_data, bwd_weights };

using Key = std::tuple<int, int, int, int, int, int, int, int>;  // kind, dtype, n, h, w, cin, cout, k

}  // namespace

struct DnnlConvolutions::Impl {
  dnnl::engine engine{dnnl::engine::kind::cpu, 0};
  dnnl::stream stream{engine};

  // One cached primitive with its memories; user pointers are set per call.
  struct Entry {
    dnnl::primitive prim;
    memory a, b, c;           // arguments in the user's layouts (NHWC / OHWI)
    memory w_prim;            // weights (or their gradient) in the primitive's layout
    dnnl::reorder w_reorder;  // user OHWI <-> primitive layout (empty when equal)
    bool reorder_needed = false;
  };
  std::map<Key, Entry> cache;
  std::map<int, bool> native_ok;  // dtype -> native convolutions available
  std::vector<float> scratch_a, scratch_b, scratch_c;

  memory::desc act(const ConvShape& s, int c, memory::data_type dt) {
    return memory::desc({s.n, c, s.h, s.w}, dt, tag::nhwc);
  }
  memory::desc weights(const ConvShape& s, memory::data_type dt, tag t) {
    return memory::desc({s.cout, s.cin, s.k, s.k}, dt, t);
  }
  dnnl::convolution_forward::primitive_desc fwd_pd(const ConvShape& s, memory::data_type dt) {
    const memory::dims stride{1, 1}, pad{s.k / 2, s.k / 2};
    dnnl::convolution_forward::desc d(dnnl::prop_kind::forward_training, dnnl::algorithm::convolution_direct,
                                      act(s, s.cin, dt), weights(s, dt, tag::any), act(s, s.cout, dt), stride, pad,
                                      pad);
    return {d, engine};
  }

  Entry make(Kind kind, const ConvShape& s, memory::data_type dt) {
    const memory::dims stride{1, 1}, pad{s.k / 2, s.k / 2};
    Entry e;
    memory::desc w_user = weights(s, kind == Kind::bwd_weights ? memory::data_type::f32 : dt, tag::ohwi);
    memory::desc w_prim_md;
    if (kind == Kind::fwd) {
      auto pd = fwd_pd(s, dt);
      e.prim = dnnl::convolution_forward(pd);
      w_prim_md = pd.weights_desc();
      e.a = memory(act(s, s.cin, dt), engine, nullptr);
      e.c = memory(act(s, s.cout, dt), engine, nullptr);
    } else if (kind == Kind::bwd_data) {
      dnnl::convolution_backward_data::desc d(dnnl::algorithm::convolution_direct, act(s, s.cin, dt),
                                              weights(s, dt, tag::any), act(s, s.cout, dt), stride, pad, pad);
      dnnl::convolution_backward_data::primitive_desc pd(d, engine, fwd_pd(s, dt));
      e.prim = dnnl::convolution_backward_data(pd);
      w_prim_md = pd.weights_desc();
      e.a = memory(act(s, s.cout, dt), engine, nullptr);  // dy
      e.c = memory(act(s, s.cin, dt), engine, nullptr);   // dx
    } else {
      dnnl::convolution_backward_weights::desc d(dnnl::algorithm::convolution_direct, act(s, s.cin, dt),
                                                 weights(s, memory::data_type::f32, tag::any), act(s, s.cout, dt),
                                                 stride, pad, pad);
      dnnl::convolution_backward_weights::primitive_desc pd(d, engine, fwd_pd(s, dt));
      e.prim = dnnl::convolution_backward_weights(pd);
      w_prim_md = pd.diff_weights_desc();
      e.a = memory(act(s, s.cin, dt), engine, nullptr);   // x
      e.c = memory(act(s, s.cout, dt), engine, nullptr);  // dy
    }
    e.b = memory(w_user, engine, nullptr);
    e.reorder_needed = w_prim_md != w_user;
    e.w_prim = e.reorder_needed ? memory(w_prim_md, engine) : e.b;
    if (e.reorder_needed)
      e.w_reorder = kind == Kind::bwd_weights ? dnnl::reorder(e.w_prim, e.b) : dnnl::reorder(e.b, e.w_prim);
    return e;
  }

  Entry& get(Kind kind, const ConvShape& s, DType dt) {
    const Key key{int(kind), int(dt), s.n, s.h, s.w, s.cin, s.cout, s.k};
    auto it = cache.find(key);
    if (it == cache.end()) it = cache.emplace(key, make(kind, s, dnnl_type(dt))).first;
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
      for (Kind k : {Kind::fwd, Kind::bwd_data, Kind::bwd_weights}) make(k, probe, dnnl_type(dt));
    } catch (const dnnl::error&) {
      ok = false;
    }
    native_ok[int(dt)] = ok;
    return ok;
  }

  // Runs entry e with the user's pointers a (activation in), b (OHWI weights
  // or their gradient), c (activation out, or dy for bwd_weights).
  void run(Kind kind, Entry& e, const void* a, const void* b, const void* c) {
    e.a.set_data_handle(const_cast<void*>(a));
    e.b.set_data_handle(const_cast<void*>(b));
    e.c.set_data_handle(const_cast<void*>(c));
    if (kind != Kind::bwd_weights && e.reorder_needed) e.w_reorder.execute(stream, e.b, e.w_prim);
    switch (kind) {
      case Kind::fwd:
        e.prim.execute(stream, {{DNNL_ARG_SRC, e.a}, {DNNL_ARG_WEIGHTS, e.w_prim}, {DNNL_ARG_DST, e.c}});
        break;
      case Kind::bwd_data:
        e.prim.execute(stream, {{DNNL_ARG_DIFF_DST, e.a}, {DNNL_ARG_WEIGHTS, e.w_prim}, {DNNL_ARG_DIFF_SRC, e.c}});
        break;
      case Kind::bwd_weights:
        e.prim.execute(stream, {{DNNL_ARG_SRC, e.a}, {DNNL_ARG_DIFF_DST, e.c}, {DNNL_ARG_DIFF_WEIGHTS, e.w_prim}});
        if (e.reorder_needed) e.w_reorder.execute(stream, e.w_prim, e.b);
        break;
    }
    stream.wait();
  }

  // Widens n elements of storage type dt into buf (resized), returns its data.
  float* widen_into(std::vector<float>& buf, DType dt, const void* src, size_t n) {
    buf.resize(n);
    dispatch_float(dt, [&]<class T>() { widen(static_cast<const T*>(src), buf.data(), n); });
    return buf.data();
  }
  void narrow_from(const std::vector<float>& buf, DType dt, void* dst) {
    dispatch_float(dt, [&]<class T>() { narrow(buf.data(), static_cast<T*>(dst), buf.size()); });
  }

  // Forward or backward-data: activation `in` (cin channels) and weights w
  // give activation `out` (cout channels); through f32 scratch when dt has
  // no native primitive.
  void run_activation_out(Kind kind, const ConvShape& s, DType dt, const void* in, int cin, const void* w, void* out,
                          int cout) {
    if (native(dt)) return run(kind, get(kind, s, dt), in, w, out);
    const size_t pixels = size_t(s.n) * s.h * s.w;
    const float* in_f = widen_into(scratch_a, dt, in, pixels * cin);
    const float* w_f = widen_into(scratch_b, dt, w, s.weight_numel());
    scratch_c.resize(pixels * cout);
    run(kind, get(kind, s, DType::f32), in_f, w_f, scratch_c.data());
    narrow_from(scratch_c, dt, out);
  }
};

DnnlConvolutions::DnnlConvolutions() : impl_(std::make_unique<Impl>()) {}
DnnlConvolutions::~DnnlConvolutions() = default;

bool DnnlConvolutions::native(DType dt) { return impl_->native(dt); }

void DnnlConvolutions::forward(const ConvShape& s, DType dt, const void* x, const void* w, void* y) {
  impl_->run_activation_out(Kind::fwd, s, dt, x, s.cin, w, y, s.cout);
}

void DnnlConvolutions::backward_data(const ConvShape& s, DType dt, const void* dy, const void* w, void* dx) {
  impl_->run_activation_out(Kind::bwd_data, s, dt, dy, s.cout, w, dx, s.cin);
}

void DnnlConvolutions::backward_weights(const ConvShape& s, DType dt, const void* x, const void* dy, float* dw) {
  Impl& m = *impl_;
  if (m.native(dt)) return m.run(Kind::bwd_weights, m.get(Kind::bwd_weights, s, dt), x, dw, dy);
  const size_t nx = size_t(s.n) * s.h * s.w * s.cin, ny = size_t(s.n) * s.h * s.w * s.cout;
  const float* xf = m.widen_into(m.scratch_a, dt, x, nx);
  const float* gf = m.widen_into(m.scratch_c, dt, dy, ny);
  m.run(Kind::bwd_weights, m.get(Kind::bwd_weights, s, DType::f32), xf, dw, gf);
}

}  // namespace mixseg
