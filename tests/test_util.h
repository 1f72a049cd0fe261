// Helpers shared by the tests: seeded random tensors, conversions between
// storage types, and the tolerance comparison.
#pragma once
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "core/dtype_dispatch.h"
#include "core/error.h"
#include "core/rng.h"
#include "core/threads.h"
#include "cuda/device_query.h"
#include "ops/backend_ref.h"
#include "ops/conv2d_ref.h"
#include "ops/kernel_types.h"
#include "ops/tolerance.h"

namespace mixseg::test {

// A CPU backend that "records" the way a CUDA backend does, for testing the
// caller's side (what is recorded when, what replayed): ops issued while
// recording still run here (tests that count them check `recording`),
// replays are only counted, and end_recording can be made to fail.
class RecordingBackend final : public RefBackend {
 public:
  bool recording = false, fail_end = false;
  int begun = 0, replays = 0, released = 0;
  std::vector<int> replayed;
  bool begin_recording() override {
    ++begun;
    return recording = true;
  }
  int end_recording() override {
    recording = false;
    return fail_end ? -1 : begun;
  }
  void replay(int r) override {
    ++replays;
    replayed.push_back(r);
  }
  void release_recording(int) override { ++released; }
};

// Whether GPU tests can run: a CUDA build that sees a GPU (they skip otherwise).
inline bool gpu_available() { return cuda_device_count() > 0; }

// A fresh, empty temporary folder for one test (removed by the caller).
inline std::filesystem::path temp_dir(const std::string& name) {
  const auto p = std::filesystem::temp_directory_path() / ("mixseg_test_" + name + "_" + std::to_string(::getpid()));
  std::filesystem::remove_all(p);
  std::filesystem::create_directories(p);
  return p;
}

// f() must throw mixseg::Error with needle in its message.
inline void expect_error_containing(const std::function<void()>& f, const std::string& needle) {
  try {
    f();
    ADD_FAILURE() << "no error; expected one mentioning " << needle;
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
}

inline std::vector<double> random_vec(size_t n, uint64_t seed, double lo = -1.0, double hi = 1.0) {
  Rng r(seed);
  std::vector<double> v(n);
  for (auto& x : v) x = r.uniform(lo, hi);
  return v;
}

// Rounds doubles to storage type T.
template <class T>
std::vector<T> to_storage(const std::vector<double>& v) {
  std::vector<T> out(v.size());
  for (size_t i = 0; i < v.size(); ++i) {
    if constexpr (std::is_same_v<T, double>)
      out[i] = v[i];
    else
      out[i] = from_f32<T>(float(v[i]));
  }
  return out;
}

template <class T>
std::vector<double> to_double(const std::vector<T>& v) {
  std::vector<double> out(v.size());
  for (size_t i = 0; i < v.size(); ++i) out[i] = double(load(v[i]));
  return out;
}

// The values a kernel in T actually sees: v rounded to T, as doubles.
template <class T>
std::vector<double> rounded(const std::vector<double>& v) {
  return to_double(to_storage<T>(v));
}

// A tensor in a backend's memory holding `values` rounded to dtype, freed
// with it (also when a test's op throws).
struct DeviceTensor {
  Backend* be;
  Tensor t;
  DeviceTensor(Backend& b, DType dt, Shape s, const std::vector<double>& values = {}) : be(&b) {
    t = {b.allocate(s.numel() * size_t(dtype_size(dt))), dt, s};
    if (!values.empty()) upload(values);
  }
  ~DeviceTensor() { be->deallocate(t.data); }
  DeviceTensor(const DeviceTensor&) = delete;
  void upload(const std::vector<double>& v) {
    dispatch_float(t.dtype, [&]<class T>() {
      const auto s = to_storage<T>(v);
      be->copy_in(t.data, s.data(), s.size() * sizeof(T));
    });
  }
  std::vector<double> download() const {
    return dispatch_float(t.dtype, [&]<class T>() {
      std::vector<T> s(t.numel());
      be->copy_out(s.data(), t.data, s.size() * sizeof(T));
      return to_double(s);
    });
  }
};

// Compares got against ref with the tolerance of (op, dtype, k).
// Element-wise |got - ref| <= tol * (|ref| + rms(ref)) (see ops/tolerance.h).
inline void expect_within(const std::vector<double>& got, const std::vector<double>& ref, double tol, DType dtype,
                          const std::string& what) {
  ASSERT_EQ(got.size(), ref.size()) << what;
  double ss = 0;
  for (double r : ref) ss += r * r;
  const double rms = ref.empty() ? 0 : std::sqrt(ss / double(ref.size()));
  size_t bad = 0;
  for (size_t i = 0; i < got.size(); ++i)
    if (!(std::fabs(got[i] - ref[i]) <= tol * (std::fabs(ref[i]) + rms))) {
      if (++bad <= 5)
        ADD_FAILURE() << what << " [" << dtype_name(dtype) << "] element " << i << ": got " << got[i] << ", expected "
                      << ref[i] << " (tolerance " << tol << " x " << std::fabs(ref[i]) + rms << ")";
    }
  EXPECT_EQ(bad, 0u) << what << ": " << bad << " of " << got.size() << " elements out of tolerance";
}

inline void expect_close(const std::vector<double>& got, const std::vector<double>& ref, Op op, DType dtype, size_t k,
                         const std::string& what) {
  expect_within(got, ref, tolerance(op, dtype, k), dtype, what);
}

// A weight-gradient kernel of the convolution s against the double-precision
// reference on random x and dy rounded to T: run(x, dy, dw) with x and dy
// in T's storage and dw f32 OHWI (pre-filled with a marker: it must be
// overwritten), under flush-to-zero as in training; held to the tolerance
// of tolerance_dtype over the pixel count. Returns dw.
template <class T, class Run>
std::vector<float> check_weight_gradient(const ConvShape& s, uint64_t seed, DType tolerance_dtype,
                                         const std::string& what, Run run) {
  const size_t nx = size_t(s.n) * s.h * s.w * s.cin, ny = size_t(s.n) * s.h * s.w * s.cout;
  const auto x = rounded<T>(random_vec(nx, seed)), dy = rounded<T>(random_vec(ny, seed + 1));
  std::vector<double> ref(s.weight_numel());
  conv2d_bwd_weights_ref<double>(s, x.data(), dy.data(), ref.data());
  const auto xs = to_storage<T>(x), dys = to_storage<T>(dy);
  std::vector<float> dw(ref.size(), 1e4f);
  {
    const ScopedFlushDenormals ftz;
    run(xs.data(), dys.data(), dw.data());
  }
  expect_close(std::vector<double>(dw.begin(), dw.end()), ref, Op::conv2d_bwd_weights, tolerance_dtype,
               size_t(s.n) * s.h * s.w, what);
  return dw;
}

}  // namespace mixseg::test
