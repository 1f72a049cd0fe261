// Own Winograd F(2x2,3x3) convolution and its F(3x3,2x2) weight gradient
// (see conv2d_winograd.h); the weight gradient's plan is further down.
//
// The image's 2x2 output tiles are numbered (n, ty, tx) and taken 12 or 24 at
// a time (a chunk, one thread's unit of work). For a chunk:
//   1. input transform: each tile's 4x4 input patch (zeros outside the
//      image), per vector of 16 channels, becomes V[xi][tile][ci] = B^T d B;
//   2. 16 small matrix products M[xi] = V[xi] (tiles x cin) . U[xi]
//      (cin x cout_pad), register-blocked R tiles x NB vectors of 16 output
//      channels (R * NB = 24 accumulators); with bf16 products, V and U in
//      bf16 and one vdpbf16ps per pair of input channels; with up to 8
//      output channels (point pairs), 8 products of two points each, so
//      that no lane is idle;
//   3. output transform: Y = A^T M A per tile and 16 output channels, bias,
//      ReLU, stored (rounded once to f16 or bf16 where that is the storage
//      type), outputs beyond odd H or W skipped.
// V and M of a chunk stay in L1/L2. Every output is computed by one thread
// in a fixed order: results do not depend on the thread count.
#include "cpu/conv2d_winograd.h"

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "core/dtype_dispatch.h"
#include "core/error.h"

#if defined(__GNUC__) && defined(__x86_64__)
// GCC 12's AVX-512 intrinsics pass _mm512_undefined_ps() as the unused
// source of unmasked operations (max, cvtps_ph), which -Wmaybe-uninitialized
// reports inside the system headers once inlined here: a false positive.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>
#define MIXSEG_WINOGRAD_AVX512 1
// avx512bf16 lets the bf16 products' intrinsics compile; only those use its
// instructions (plain C++ has no bf16 arithmetic here), and they run only
// where winograd_f2_bf16_products_available says the CPU has them.
#define MIXSEG_AVX512_TARGET __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512bf16,fma,f16c")))
#endif

namespace mixseg {

namespace {
constexpr int kMaxLd = 4096;  // the most input channels the kernel takes

// bf16 products: the default for bf16 where the CPU has them; only there.
bool bf16_products_by_default(DType dt) { return dt == DType::bf16 && winograd_f2_bf16_products_available(); }
void require_bf16_products(DType dt) {
  if (!bf16_products_by_default(dt))
    fail("the Winograd kernels have bf16 products for bf16 on CPUs with AVX512_BF16 only (asked for {})",
         dtype_name(dt));
}
}  // namespace

bool winograd_f2_applies(const ConvShape& s, DType dt) {
  return s.k == 3 && (dt == DType::f32 || dt == DType::f16 || dt == DType::bf16) && s.cin >= 1 && s.cin <= kMaxLd &&
         s.cout >= 1;
}

WinogradF2Weights winograd_f2_transform_weights(const ConvShape& s, DType dt, const void* w_ohwi,
                                                bool for_backward_data) {
  return winograd_f2_transform_weights(s, dt, w_ohwi, for_backward_data, bf16_products_by_default(dt));
}

WinogradF2Weights winograd_f2_transform_weights(const ConvShape& s, DType dt, const void* w_ohwi,
                                                bool for_backward_data, bool bf16_products) {
  WinogradF2Weights u;
  winograd_f2_transform_weights(u, s, dt, w_ohwi, for_backward_data, bf16_products);
  return u;
}

void winograd_f2_transform_weights(WinogradF2Weights& u, const ConvShape& s, DType dt, const void* w_ohwi,
                                   bool for_backward_data) {
  winograd_f2_transform_weights(u, s, dt, w_ohwi, for_backward_data, bf16_products_by_default(dt));
}

namespace {

// Input channels per group: one thread's unit of the weight transform.
constexpr int kTransformGroup = 16;
// A plane's length: cout and one cache line more, so that the 144 tap
// planes the forward gather writes at once do not fall into the same few
// L1 sets (at a power-of-two length, 256 -> 256 took 1.3x the time).
size_t transform_plane(int cout) { return size_t(cout + 15) / 16 * 16 + 16; }
constexpr size_t kTransformPlanes = size_t(kTransformGroup) * 9 + 12 + 2 * 16;

// G = [1 0 0; 1/2 1/2 1/2; 1/2 -1/2 1/2; 0 0 1] applied along n channels:
// (d0, d1, d2, d3) = G (a, b, c). Arguments, not locals, carry __restrict
// (with restricted locals GCC 12 kept the loop scalar).
void apply_g(const float* __restrict a, const float* __restrict b, const float* __restrict c, float* __restrict d0,
             float* __restrict d1, float* __restrict d2, float* __restrict d3, int n) {
  for (int i = 0; i < n; ++i) {
    d0[i] = a[i];
    d1[i] = 0.5f * (a[i] + b[i] + c[i]);
    d2[i] = 0.5f * (a[i] - b[i] + c[i]);
    d3[i] = c[i];
  }
}

// U of input channels [c0, c0 + kTransformGroup) (of u.cin): U = G g G^T
// for every output channel, G = [1 0 0; 1/2 1/2 1/2; 1/2 -1/2 1/2; 0 0 1].
// The group's taps of all output channels are read first into planes
// taps[k][3 kh + kw][co] (the forward's OHWI weights hold the group's
// channels side by side: one short run per output channel and tap), then
// the transform runs along the output channel (loops the compiler
// vectorizes). In f32: G's entries are 0, +-1/2 and 1, so the products are
// exact and only the additions round (four per value at most); for f32
// weights within a few ulp of the exact U, which U's own rounding (bf16, or
// the f32 kernel's products) dwarfs. planes: kTransformPlanes of transform_plane(cout) floats.
template <class T>
void transform_group(WinogradF2Weights& u, const ConvShape& s, const T* w, bool for_backward_data, bool bf16_products,
                     int c0, float* planes) {
  const int cin = u.cin, cout = u.cout, cout_pad = u.cout_pad, count = std::min(kTransformGroup, cin - c0);
  const int cin_even = (cin + 1) / 2 * 2, step = bf16_products ? 2 : 1;
  const size_t plane = transform_plane(cout);
  float *taps = planes, *gg = taps + size_t(kTransformGroup) * 9 * plane, *out = gg + 12 * plane;  // out[k][xi][co]
  // Tap t = 3 kh + kw from output channel co to input channel ci of the
  // convolution u describes (backward-data: transposed and flipped).
  if (!for_backward_data) {
    for (int co = 0; co < cout; ++co)
      for (int t = 0; t < 9; ++t) {
        const T* src = w + (size_t(co) * 9 + size_t(t)) * s.cin + size_t(c0);
        float* dst = taps + size_t(t) * plane + size_t(co);
        for (int k = 0; k < count; ++k) dst[size_t(k) * 9 * plane] = to_f32(src[k]);
      }
  } else {
    for (int k = 0; k < count; ++k)
      for (int t = 0; t < 9; ++t) {
        const T* src = w + (size_t(c0 + k) * 9 + size_t(8 - t)) * s.cin;
        float* dst = taps + (size_t(k) * 9 + size_t(t)) * plane;
        for (int co = 0; co < cout; ++co) dst[co] = to_f32(src[co]);
      }
  }
  for (int k0 = 0; k0 < count; k0 += step) {
    for (int k = k0; k < k0 + step; ++k) {
      float* o = out + size_t(k - k0) * 16 * plane;
      if (k >= count) {  // the second channel of an odd last pair: zeros
        std::fill_n(o, 16 * plane, 0.0f);
        continue;
      }
      const float* tk = taps + size_t(k) * 9 * plane;
      for (int kw = 0; kw < 3; ++kw) {  // gg = G g: rows i of column kw
        const float* g0 = tk + size_t(kw) * plane;
        float* r0 = gg + size_t(kw) * plane;
        apply_g(g0, g0 + 3 * plane, g0 + 6 * plane, r0, r0 + 3 * plane, r0 + 6 * plane, r0 + 9 * plane, cout);
      }
      for (int i = 0; i < 4; ++i) {  // U = gg G^T: point xi = 4 i + j
        const float* a = gg + size_t(i * 3) * plane;
        float* u0 = o + size_t(4 * i) * plane;
        apply_g(a, a + plane, a + 2 * plane, u0, u0 + plane, u0 + 2 * plane, u0 + 3 * plane, cout);
      }
    }
    // Stores: point xi of output channel co at row xi (point pairs: row
    // xi / 2, lane 2 co + xi % 2); with bf16 products both channels of the
    // pair in one 32-bit word (the even channel low).
    const int ci = c0 + k0;
    for (int xi = 0; xi < 16; ++xi) {
      const int row = u.point_pairs ? xi / 2 : xi;
      const size_t lane0 = u.point_pairs ? size_t(xi % 2) : 0, stride = u.point_pairs ? 2 : 1;
      const float* o0 = out + size_t(xi) * plane;
      if (bf16_products) {
        const float* o1 = o0 + 16 * plane;
        uint32_t* dst =
            reinterpret_cast<uint32_t*>(u.u_pairs.data() + (size_t(row) * cin_even + ci) * cout_pad) + lane0;
        for (int co = 0; co < cout; ++co)
          dst[size_t(co) * stride] = uint32_t(f32_to_bf16(o0[co]).bits) | uint32_t(f32_to_bf16(o1[co]).bits) << 16;
      } else {
        float* dst = u.u.data() + (size_t(row) * cin + ci) * cout_pad + lane0;
        for (int co = 0; co < cout; ++co) dst[size_t(co) * stride] = o0[co];
      }
    }
  }
}

}  // namespace

// Each thread takes groups of input channels (kTransformGroup, an even
// count: bf16 products' pairs share their rows' runs): for each of the 16
// (8) rows of U, its channels' runs of cout_pad lanes, written along the
// output channels, zeros where no channel is (the lanes beyond cout). No
// run is shared between threads; every element of U is written, so the
// buffers keep their memory between training steps.
void winograd_f2_transform_weights(WinogradF2Weights& u, const ConvShape& s, DType dt, const void* w_ohwi,
                                   bool for_backward_data, bool bf16_products) {
  if (s.k != 3) fail("Winograd F(2x2,3x3) takes 3x3 kernels, not {}x{}", s.k, s.k);
  if (bf16_products) require_bf16_products(dt);
  if (dt != DType::f32 && dt != DType::f16 && dt != DType::bf16)
    fail("Winograd F(2x2,3x3) takes f32, f16 or bf16 weights, not {}", dtype_name(dt));
  u.cin = for_backward_data ? s.cout : s.cin;
  u.cout = for_backward_data ? s.cin : s.cout;
  u.cout_pad = (u.cout + 15) / 16 * 16;
  u.point_pairs = u.cout <= 8;
  const int cin = u.cin, cout = u.cout, cout_pad = u.cout_pad;
  const int cin_even = (cin + 1) / 2 * 2, rows = u.point_pairs ? 8 : 16;  // rows of U per input channel
  if (bf16_products) {
    u.u_pairs.resize(size_t(rows) * cin_even * cout_pad);
    u.u.clear();
  } else {
    u.u.resize(size_t(rows) * cin * cout_pad);
    u.u_pairs.clear();
  }
  const int step = bf16_products ? 2 : 1, groups = (cin + kTransformGroup - 1) / kTransformGroup;
  static_assert(kTransformGroup % 2 == 0, "pairs of input channels stay in one group");
  // The lanes beyond the written ones (point pairs write 2 cout).
  const size_t written = size_t(u.point_pairs ? 2 * cout : cout) * size_t(step);
  // One group (up to 16 input channels, the first levels' convolutions): on
  // this thread, without waking the others.
#pragma omp parallel if (groups > 1)
  {
    thread_local std::vector<float> planes;  // kept between calls
    planes.resize(kTransformPlanes * transform_plane(cout));
#pragma omp for schedule(static)
    for (int group = 0; group < groups; ++group) {
      const int c0 = group * kTransformGroup, c1 = std::min(cin, c0 + kTransformGroup);
      for (int row = 0; row < rows; ++row)
        for (int ci = c0; ci < c1; ci += step) {
          if (bf16_products) {
            bf16* run = u.u_pairs.data() + (size_t(row) * cin_even + ci) * cout_pad;
            std::fill(run + written, run + 2 * size_t(cout_pad), bf16{0});
          } else {
            float* run = u.u.data() + (size_t(row) * cin + ci) * cout_pad;
            std::fill(run + written, run + cout_pad, 0.0f);
          }
        }
      dispatch_float(dt, [&]<class T>() {
        transform_group(u, s, static_cast<const T*>(w_ohwi), for_backward_data, bf16_products, c0, planes.data());
      });
    }
  }
}

#ifdef MIXSEG_WINOGRAD_AVX512

bool winograd_f2_available() {
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
         __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq");
}
bool winograd_f2_bf16_products_available() { return winograd_f2_available() && __builtin_cpu_supports("avx512bf16"); }

namespace {

// Loads and stores of 16 channels (mask: the valid ones) in the storage type.
MIXSEG_AVX512_TARGET inline __m512 load16(const float* p, __mmask16 m) { return _mm512_maskz_loadu_ps(m, p); }
MIXSEG_AVX512_TARGET inline __m512 load16(const f16* p, __mmask16 m) {
  return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, p));
}
// bf16 is the upper half of an f32: widening is a shift (no instruction needed
// beyond AVX-512 F/BW, so the kernel runs bf16 on CPUs without AVX512_BF16).
MIXSEG_AVX512_TARGET inline __m512 widen_bf16(__m256i h) {
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}
MIXSEG_AVX512_TARGET inline __m512 load16(const bf16* p, __mmask16 m) {
  return widen_bf16(_mm256_maskz_loadu_epi16(m, p));
}
MIXSEG_AVX512_TARGET inline void store16(float* p, __m512 v, __mmask16 m) { _mm512_mask_storeu_ps(p, m, v); }
MIXSEG_AVX512_TARGET inline void store16(f16* p, __m512 v, __mmask16 m) {
  // Round to nearest even, once: the same rounding as narrow<f16>.
  _mm256_mask_storeu_epi16(p, m, _mm512_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
}
MIXSEG_AVX512_TARGET inline void store16(bf16* p, __m512 v, __mmask16 m) {
  // Round to nearest even, once, NaN kept quiet: f32_to_bf16 in 16 lanes.
  const __m512i u = _mm512_castps_si512(v);
  const __m512i odd = _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1));
  __m512i r = _mm512_srli_epi32(_mm512_add_epi32(u, _mm512_add_epi32(odd, _mm512_set1_epi32(0x7fff))), 16);
  const __mmask16 nan = _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
  r = _mm512_mask_or_epi32(r, nan, _mm512_srli_epi32(u, 16), _mm512_set1_epi32(0x0040));
  _mm256_mask_storeu_epi16(p, m, _mm512_cvtepi32_epi16(r));
}

inline __mmask16 lanes(int valid) { return valid >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << valid) - 1); }

struct Geometry {
  int n, h, w, cin, cout, th, tw;  // th x tw tiles per image
  size_t tiles;                    // n * th * tw
};

// The convolution's input: x itself, or (the decoder's fused form)
// concat(upsample2x(a), b) read on the fly: channels [0, ca) from a at half
// resolution (nearest), [ca, cin) from b. Plain: a = x, ca = cin, b null.
template <class T>
struct Input {
  const T* a;
  int ca;
  const T* b;  // null: plain
  int cb;
};

// The 16 lanes from channel c0 of one input pixel: lanes below ca - c0 from
// a's pixel pa (mask ma), the rest from b's pixel pb (mask mb); pb is
// addressed as if lane 0 were b's channel c0 - ca (lanes outside mb are not
// read, so the address may lie before the pixel).
MIXSEG_AVX512_TARGET inline __m512 load16_two(const float* pa, __mmask16 ma, const float* pb, __mmask16 mb) {
  return _mm512_mask_loadu_ps(_mm512_maskz_loadu_ps(ma, pa), mb, pb);
}
MIXSEG_AVX512_TARGET inline __m512 load16_two(const f16* pa, __mmask16 ma, const f16* pb, __mmask16 mb) {
  return _mm512_cvtph_ps(_mm256_mask_loadu_epi16(_mm256_maskz_loadu_epi16(ma, pa), mb, pb));
}
MIXSEG_AVX512_TARGET inline __m512 load16_two(const bf16* pa, __mmask16 ma, const bf16* pb, __mmask16 mb) {
  return widen_bf16(_mm256_mask_loadu_epi16(_mm256_maskz_loadu_epi16(ma, pa), mb, pb));
}

// One column of a tile row's 4-row input band, B^T applied down the column
// (B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1]); ra[i] null: zeros.
// Plain input: ra[i] is row i at channel c0. Fused: ra[i] / rb[i] are the
// rows of a (half resolution) and b, at channel c0 and c0 - ca.
template <class T, bool kFused>
MIXSEG_AVX512_TARGET inline void column(const T* const ra[4], const T* const rb[4], int ca, int cb, int xx, int w,
                                        __mmask16 ma, __mmask16 mb, __m512 e[4]) {
  __m512 d[4];
  const bool inside = xx >= 0 && xx < w;
#pragma GCC unroll 4
  for (int i = 0; i < 4; ++i) {
    if (!ra[i] || !inside)
      d[i] = _mm512_setzero_ps();
    else if constexpr (kFused)
      d[i] = load16_two(ra[i] + size_t(xx / 2) * ca, ma, rb[i] + size_t(xx) * cb, mb);
    else
      d[i] = load16(ra[i] + size_t(xx) * ca, ma);
  }
  e[0] = _mm512_sub_ps(d[0], d[2]);
  e[1] = _mm512_add_ps(d[1], d[2]);
  e[2] = _mm512_sub_ps(d[2], d[1]);
  e[3] = _mm512_sub_ps(d[1], d[3]);
}

// p moved by `elements` (possibly negative) without forming the pointer
// arithmetic C++ forbids outside an object: only masked lanes inside b's
// pixel are ever read through it.
template <class T>
const T* shifted(const T* p, ptrdiff_t elements) {
  return reinterpret_cast<const T*>(reinterpret_cast<uintptr_t>(p) + uintptr_t(elements * ptrdiff_t(sizeof(T))));
}

// V[xi][t][ci] (rows ld floats apart, xi_stride apart) for the tiles
// tx0 .. tx0 + count - 1 of tile row ty of image n, the first at row t0 of V.
// Neighbouring tiles share two input columns: each column is loaded and
// combined once per run, then (B^T d) B takes four columns per tile.
// Whole vectors are stored: channels from cin up to the next multiple of 16
// (ld is at least that) hold zeros, since the masked loads read zeros there.
// V's elements: f32, or bf16 for bf16 products (rounded to nearest even).
MIXSEG_AVX512_TARGET inline void store_v(float* p, __m512 v) { _mm512_storeu_ps(p, v); }
MIXSEG_AVX512_TARGET inline void store_v(bf16* p, __m512 v) {
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), (__m256i)_mm512_cvtneps_pbh(v));
}
// Point pairs (kPairs, see WinogradF2Weights): the 16 channels of two points
// a and b interleaved, channel by channel (f32: a0 b0 a1 b1 ...) or pair of
// channels by pair (bf16: a0 a1 b0 b1 a2 a3 ...), so that one 64-bit
// broadcast carries both points' operand.
// Lanes 0-7 and 8-15 of a vector interleaved (a permute index).
alignas(64) constexpr int32_t kInterleaveHalves[16] = {0, 8, 1, 9, 2, 10, 3, 11, 4, 12, 5, 13, 6, 14, 7, 15};
MIXSEG_AVX512_TARGET inline void store_points(float* p, __m512 a, __m512 b) {
  alignas(64) static constexpr int32_t kLow[16] = {0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23};
  alignas(64) static constexpr int32_t kHigh[16] = {8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31};
  _mm512_storeu_ps(p, _mm512_permutex2var_ps(a, _mm512_load_si512(kLow), b));
  _mm512_storeu_ps(p + 16, _mm512_permutex2var_ps(a, _mm512_load_si512(kHigh), b));
}
MIXSEG_AVX512_TARGET inline void store_points(bf16* p, __m512 a, __m512 b) {
  // _mm512_cvtne2ps_pbh(b, a) holds a's 16 lanes (8 channel pairs), then b's.
  const __m512i both = (__m512i)_mm512_cvtne2ps_pbh(b, a);
  _mm512_storeu_si512(p, _mm512_permutexvar_epi32(_mm512_load_si512(kInterleaveHalves), both));
}

// Stores of the narrow input transform below: v = [point a's 8 channels |
// point b's 8 channels], interleaved as store_points does (channels 0-7).
MIXSEG_AVX512_TARGET inline void store_narrow_points(float* p, __m512 v) {
  _mm512_storeu_ps(p, _mm512_permutexvar_ps(_mm512_load_si512(kInterleaveHalves), v));
}
MIXSEG_AVX512_TARGET inline void store_narrow_points(bf16* p, __m512 v) {
  // 8 pairs of channels: a's 4, then b's; interleaved pair by pair.
  const __m256i pairs = (__m256i)_mm512_cvtneps_pbh(v);
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(p),
                      _mm256_permutexvar_epi32(_mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7), pairs));
}
// B^T down columns xx and xx + 1 of a 4-row band of c <= 8 channels (rows[i]
// null, or columns outside [0, w): zeros), column xx + 1 in lanes 8-15.
template <class T>
MIXSEG_AVX512_TARGET inline void narrow_columns(const T* const rows[4], int c, int w, int xx, __m512 e[4]) {
  const __mmask16 one = lanes(c);
  const __mmask16 lo = xx >= 0 && xx < w ? one : 0, hi = xx + 1 >= 0 && xx + 1 < w ? one : 0;
  __m512 d[4];
#pragma GCC unroll 4
  for (int i = 0; i < 4; ++i) {
    if (!rows[i] || !(lo | hi))
      d[i] = _mm512_setzero_ps();
    else if (c == 8)
      d[i] = load16(shifted(rows[i], ptrdiff_t(xx) * 8), __mmask16(lo | hi << 8));
    else  // column xx + 1 read as if lane 8 were its channel 0
      d[i] = load16_two(shifted(rows[i], ptrdiff_t(xx) * c), lo, shifted(rows[i], ptrdiff_t(xx + 1) * c - 8),
                        __mmask16(hi << 8));
  }
  e[0] = _mm512_sub_ps(d[0], d[2]);
  e[1] = _mm512_add_ps(d[1], d[2]);
  e[2] = _mm512_sub_ps(d[2], d[1]);
  e[3] = _mm512_sub_ps(d[1], d[3]);
}

// The input transform of a plain input of up to 8 channels into point
// pairs, two columns per vector (lanes 8-15 the next column) instead of one
// column in half a vector: the same sums as input_transform's (the same
// bits), half the loads and arithmetic, and one store per pair of points.
// Tile t's columns are the pairs (x0 + 2t, + 1) and (x0 + 2t + 2, + 1), the
// second shared with the next tile. (Into one point per row, as the weight
// gradient and wider outputs take V, the extra shuffles and stores cost as
// much as they save: measured no faster.)
template <class T, class V>
MIXSEG_AVX512_TARGET void input_transform_narrow(const Geometry& g, const T* x, int n, int ty, int tx0, int count,
                                                 int t0, int ld, size_t xi_stride, V* v) {
  const int y0 = 2 * ty - 1, x0 = 2 * tx0 - 1, c = g.cin;
  const T* rows[4];
  for (int i = 0; i < 4; ++i) {
    const int yy = y0 + i;
    rows[i] = yy >= 0 && yy < g.h ? x + (size_t(n) * g.h + yy) * g.w * c : nullptr;
  }
  __m512 e01[4], e23[4];  // [row of B^T d]: columns 0 | 1 and 2 | 3 of the tile
  narrow_columns(rows, c, g.w, x0, e01);
  for (int t = 0; t < count; ++t) {
    narrow_columns(rows, c, g.w, x0 + 2 * t + 2, e23);
#pragma GCC unroll 4
    for (int i = 0; i < 4; ++i) {
      // Points 4i .. 4i + 3: [c0 - c2 | c1 + c2] and [c2 - c1 | c1 - c3].
      const __m512 c2c2 = _mm512_shuffle_f32x4(e23[i], e23[i], 0x44);
      const __m512 p01 = _mm512_mask_add_ps(_mm512_sub_ps(e01[i], c2c2), 0xFF00, e01[i], c2c2);
      const __m512 c2c1 = _mm512_mask_blend_ps(0xFF00, e23[i], e01[i]);
      const __m512 c1c3 = _mm512_shuffle_f32x4(e01[i], e23[i], 0xEE);
      const __m512 p23 = _mm512_sub_ps(c2c1, c1c3);
      V* o = v + size_t(t0 + t) * 2 * ld + 2 * i * xi_stride;
      store_narrow_points(o, p01);
      store_narrow_points(o + xi_stride, p23);
      e01[i] = e23[i];
    }
  }
}

// kPairs: V[xi / 2][t][ci][xi % 2] instead (rows 2 ld elements apart), see store_points.
template <class T, bool kFused, class V, bool kPairs = false>
MIXSEG_AVX512_TARGET void input_transform(const Geometry& g, const Input<T>& in, int n, int ty, int tx0, int count,
                                          int t0, int ld, size_t xi_stride, V* v) {
  if constexpr (kPairs && !kFused)
    if (g.cin <= 8) return input_transform_narrow<T, V>(g, in.a, n, ty, tx0, count, t0, ld, xi_stride, v);
  const int y0 = 2 * ty - 1, x0 = 2 * tx0 - 1;
  const T* rows_a[4];
  const T* rows_b[4] = {nullptr, nullptr, nullptr, nullptr};
  for (int i = 0; i < 4; ++i) {
    const int yy = y0 + i;
    const bool inside = yy >= 0 && yy < g.h;
    if (!kFused) {
      rows_a[i] = inside ? in.a + (size_t(n) * g.h + yy) * g.w * in.ca : nullptr;
    } else {
      rows_a[i] = inside ? in.a + (size_t(n) * (g.h / 2) + yy / 2) * (g.w / 2) * in.ca : nullptr;
      rows_b[i] = inside ? in.b + (size_t(n) * g.h + yy) * g.w * in.cb : nullptr;
    }
  }
  for (int c0 = 0; c0 < g.cin; c0 += 16) {
    const int a_lanes = std::clamp(in.ca - c0, 0, 16), all_lanes = std::min(g.cin - c0, 16);
    const __mmask16 m = lanes(all_lanes), ma = lanes(a_lanes), mb = __mmask16(m & ~ma);
    const T* ra[4];
    const T* rb[4];
    for (int i = 0; i < 4; ++i) {
      ra[i] = rows_a[i] ? rows_a[i] + std::min(c0, in.ca) : nullptr;
      rb[i] = kFused && rows_b[i] ? shifted(rows_b[i], ptrdiff_t(c0) - in.ca) : nullptr;
    }
    __m512 e[4][4];  // [column of the tile][row of B^T d]
    column<T, kFused>(ra, rb, in.ca, in.cb, x0, g.w, ma, mb, e[0]);
    column<T, kFused>(ra, rb, in.ca, in.cb, x0 + 1, g.w, ma, mb, e[1]);
    for (int t = 0; t < count; ++t) {
      column<T, kFused>(ra, rb, in.ca, in.cb, x0 + 2 * t + 2, g.w, ma, mb, e[2]);
      column<T, kFused>(ra, rb, in.ca, in.cb, x0 + 2 * t + 3, g.w, ma, mb, e[3]);
      if constexpr (kPairs) {
        V* o = v + size_t(t0 + t) * 2 * ld + 2 * c0;
#pragma GCC unroll 4
        for (int i = 0; i < 4; ++i, o += 2 * xi_stride) {  // points 4i, 4i + 1 and 4i + 2, 4i + 3
          store_points(o, _mm512_sub_ps(e[0][i], e[2][i]), _mm512_add_ps(e[1][i], e[2][i]));
          store_points(o + xi_stride, _mm512_sub_ps(e[2][i], e[1][i]), _mm512_sub_ps(e[1][i], e[3][i]));
        }
      } else {
        V* o = v + size_t(t0 + t) * ld + c0;
#pragma GCC unroll 4
        for (int i = 0; i < 4; ++i, o += 4 * xi_stride) {
          store_v(o, _mm512_sub_ps(e[0][i], e[2][i]));
          store_v(o + xi_stride, _mm512_add_ps(e[1][i], e[2][i]));
          store_v(o + 2 * xi_stride, _mm512_sub_ps(e[2][i], e[1][i]));
          store_v(o + 3 * xi_stride, _mm512_sub_ps(e[1][i], e[3][i]));
        }
      }
#pragma GCC unroll 4
      for (int i = 0; i < 4; ++i) {
        e[0][i] = e[2][i];
        e[1][i] = e[3][i];
      }
    }
  }
}

// One step of a register-blocked product: acc[r][b] += a[r * kStride] *
// w[16 b .. 16 b + 15], the R operands broadcast (from memory, one pointer
// plus constant offsets), the NB vectors loaded once. Always inlined: the
// accumulators must stay in registers. kPoints 2 (point pairs): the
// operand is the two points' a[r * kStride], a[r * kStride + 1], broadcast
// as 64 bits to alternate lanes, the weights' lanes alternating likewise.
template <int R, int NB, int kStride, int kPoints = 1>
[[gnu::always_inline]] MIXSEG_AVX512_TARGET inline void update_products(__m512 (&acc)[R][NB], const float* a,
                                                                        const float* w) {
  __m512 wv[NB];
#pragma GCC unroll 4
  for (int b = 0; b < NB; ++b) wv[b] = _mm512_loadu_ps(w + 16 * b);
#pragma GCC unroll 32
  for (int r = 0; r < R; ++r) {
    __m512 av;
    if constexpr (kPoints == 1) {
      av = _mm512_set1_ps(a[r * kStride]);
    } else {
      double both;
      std::memcpy(&both, a + r * kStride, sizeof both);
      av = _mm512_castpd_ps(_mm512_set1_pd(both));
    }
#pragma GCC unroll 4
    for (int b = 0; b < NB; ++b) acc[r][b] = _mm512_fmadd_ps(av, wv[b], acc[r][b]);
  }
}

// Stores an R x 16*NB block of accumulators at m, rows ldm apart.
template <int R, int NB>
[[gnu::always_inline]] MIXSEG_AVX512_TARGET inline void store_block(const __m512 (&acc)[R][NB], float* m,
                                                                 int ldm) {
#pragma GCC unroll 32
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 4
    for (int b = 0; b < NB; ++b) _mm512_storeu_ps(m + size_t(r) * ldm + 16 * b, acc[r][b]);
}

// The same step from bf16: acc[r][b] += the pair a[r * kStride], a[r *
// kStride + 1] dotted with w's pairs for output channels 16 b .. 16 b + 15
// (vdpbf16ps: f32 sums of the pairs' products), the R pairs broadcast as
// 32-bit lanes (kPoints 2: the two points' pairs as 64 bits).
template <int R, int NB, int kStride, int kPoints = 1>
[[gnu::always_inline]] MIXSEG_AVX512_TARGET inline void update_products(__m512 (&acc)[R][NB], const bf16* a,
                                                                        const bf16* w) {
  __m512bh wv[NB];
#pragma GCC unroll 4
  for (int b = 0; b < NB; ++b) wv[b] = (__m512bh)_mm512_loadu_si512(w + 32 * b);
#pragma GCC unroll 32
  for (int r = 0; r < R; ++r) {
    __m512bh av;
    if constexpr (kPoints == 1) {
      int32_t pair;
      std::memcpy(&pair, a + r * kStride, sizeof pair);
      av = (__m512bh)_mm512_set1_epi32(pair);
    } else {
      int64_t pairs;
      std::memcpy(&pairs, a + r * kStride, sizeof pairs);
      av = (__m512bh)_mm512_set1_epi64(pairs);
    }
#pragma GCC unroll 4
    for (int b = 0; b < NB; ++b) acc[r][b] = _mm512_dpbf16_ps(acc[r][b], av, wv[b]);
  }
}

// The elements one broadcast operand covers: one f32, or a pair of bf16.
template <class E>
constexpr int kStep = std::is_same_v<E, bf16> ? 2 : 1;

// m (R x 16*NB, row stride ldm) = v (R x cin, row stride LD) . u (cin x
// 16*NB, row stride ldu), in f32 or from bf16 (u_pairs' layout: cin even,
// V and U holding zeros beyond an odd count; input channels ci, ci + 1 at
// u + ci * ldu). LD is a compile-time constant so that the R broadcast
// operands are one pointer plus constant offsets (with a run-time stride
// the 24 row addresses do not fit the general registers and spill); the
// loops over R and NB are unrolled so that acc stays in registers.
// kPoints 2: point pairs, v's input channel ci at 2 ci (both points).
template <int R, int NB, int LD, class E, int kPoints = 1>
MIXSEG_AVX512_TARGET void gemm_block(const E* v, int cin, const E* u, int ldu, float* m, int ldm) {
  __m512 acc[R][NB];
#pragma GCC unroll 32
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 4
    for (int b = 0; b < NB; ++b) acc[r][b] = _mm512_setzero_ps();
  for (int ci = 0; ci < cin; ci += kStep<E>)
    update_products<R, NB, LD, kPoints>(acc, v + kPoints * ci, u + size_t(ci) * ldu);
  store_block<R, NB>(acc, m, ldm);
}

// The 16 products of a chunk (8 with point pairs: one per pair of points),
// NB vectors of output channels at a time; V's rows are LD elements apart
// (2 LD with point pairs; f32, or bf16 for bf16 products), M's product p
// starts at m + p * m_xi (M may overwrite f32 V, see run).
template <int R, int NB, int LD, class V, bool kPairs = false>
MIXSEG_AVX512_TARGET void chunk_products(const WinogradF2Weights& u, int tiles, const V* v, float* m, size_t m_xi) {
  const int cp = u.cout_pad;
  // bf16: U's rows are pairs of input channels, two elements per output channel.
  constexpr int kPair = kStep<V>;
  constexpr int kProducts = kPairs ? 8 : 16, kRow = kPairs ? 2 * LD : LD;
  const int cin = (u.cin + kPair - 1) / kPair * kPair;
  const V* ub;
  if constexpr (kPair == 2)
    ub = u.u_pairs.data();
  else
    ub = u.u.data();
  for (int p = 0; p < kProducts; ++p) {
    const V* vx = v + size_t(p) * tiles * kRow;
    const V* ux = ub + size_t(p) * cin * cp;
    float* mx = m + p * m_xi;
    for (int c0 = 0; c0 < cp; c0 += 16 * NB)
      for (int r0 = 0; r0 < tiles; r0 += R)
        gemm_block<R, NB, kRow, V, kPairs ? 2 : 1>(vx + r0 * kRow, cin, ux + kPair * c0, cp, mx + size_t(r0) * cp + c0,
                                                   cp);
  }
}

// 24 accumulators: 24 or 12 tiles x 16 channels (or 8 channels of two
// points), 12 x 32, 6 x 64 (the chunk's tiles a multiple of the rows).
template <int LD, class V>
void chunk_products_ld(int nb, const WinogradF2Weights& u, int tiles, const V* v, float* m, size_t m_xi) {
  if (u.point_pairs && tiles == 12)
    chunk_products<12, 1, LD, V, true>(u, tiles, v, m, m_xi);
  else if (u.point_pairs)
    chunk_products<24, 1, LD, V, true>(u, tiles, v, m, m_xi);
  else if (nb == 4)
    chunk_products<6, 4, LD>(u, tiles, v, m, m_xi);
  else if (nb == 2)
    chunk_products<12, 2, LD>(u, tiles, v, m, m_xi);
  else if (tiles == 12)
    chunk_products<12, 1, LD>(u, tiles, v, m, m_xi);
  else
    chunk_products<24, 1, LD>(u, tiles, v, m, m_xi);
}

// V's row stride: cin rounded up to a power of two from 16 (the
// instantiated strides, up to kMaxLd).
int v_stride(int cin) {
  int ld = 16;
  while (ld < cin) ld *= 2;
  return ld;
}

// Tiles per chunk (the rows of the 16 products). V of a 24-tile chunk is
// 16 x 24 x ld floats: 24 KB at ld = 16, 48 KB (all of L1) at ld = 32,
// where chunks of 12 tiles measured 0.87-1.04x the time (32->16, 32->32,
// paired in one process, 10 of 12 below 0.99); at 64 channels the
// products dominate and 12 tiles measured 1.02-1.10x.
int chunk_tiles(int ld) { return ld == 32 ? 12 : 24; }

template <class V>
void products(int ld, int nb, const WinogradF2Weights& u, int tiles, const V* v, float* m, size_t m_xi) {
  switch (ld) {
    case 16: return chunk_products_ld<16>(nb, u, tiles, v, m, m_xi);
    case 32: return chunk_products_ld<32>(nb, u, tiles, v, m, m_xi);
    case 64: return chunk_products_ld<64>(nb, u, tiles, v, m, m_xi);
    case 128: return chunk_products_ld<128>(nb, u, tiles, v, m, m_xi);
    case 256: return chunk_products_ld<256>(nb, u, tiles, v, m, m_xi);
    case 512: return chunk_products_ld<512>(nb, u, tiles, v, m, m_xi);
    case 1024: return chunk_products_ld<1024>(nb, u, tiles, v, m, m_xi);
    case 2048: return chunk_products_ld<2048>(nb, u, tiles, v, m, m_xi);
    case kMaxLd: return chunk_products_ld<kMaxLd>(nb, u, tiles, v, m, m_xi);
    default: fail("Winograd F(2x2,3x3): no kernel for a row stride of {}", ld);
  }
}

// Y = A^T M A (A^T = [1 1 1 0; 0 1 -1 -1]) + bias, ReLU, for the tiles
// tx0 .. tx0 + count - 1 of tile row ty of image n (rows t0.. of M);
// outputs beyond odd H or W are not stored.
template <class T>
MIXSEG_AVX512_TARGET void output_transform(const Geometry& g, const float* m, int cout_pad, size_t m_xi, int n,
                                           int ty, int tx0, int count, int t0, const float* bias, bool relu, T* y) {
  const int oy = 2 * ty;
  const bool row1 = oy + 1 < g.h;
  const size_t xi_stride = m_xi, down = size_t(g.w) * g.cout;
  for (int t = 0; t < count; ++t) {
    const int ox = 2 * (tx0 + t);
    const bool col1 = ox + 1 < g.w;
    const float* mt = m + size_t(t0 + t) * cout_pad;
    T* y00 = y + ((size_t(n) * g.h + oy) * g.w + ox) * g.cout;
    for (int c0 = 0; c0 < g.cout; c0 += 16) {
      const __mmask16 k = lanes(g.cout - c0);
      __m512 s0[4], s1[4];
#pragma GCC unroll 4
      for (int j = 0; j < 4; ++j) {
        const __m512 m0 = _mm512_loadu_ps(mt + size_t(j) * xi_stride + c0);
        const __m512 m1 = _mm512_loadu_ps(mt + size_t(4 + j) * xi_stride + c0);
        const __m512 m2 = _mm512_loadu_ps(mt + size_t(8 + j) * xi_stride + c0);
        const __m512 m3 = _mm512_loadu_ps(mt + size_t(12 + j) * xi_stride + c0);
        s0[j] = _mm512_add_ps(_mm512_add_ps(m0, m1), m2);
        s1[j] = _mm512_sub_ps(_mm512_sub_ps(m1, m2), m3);
      }
      const __m512 b = bias ? _mm512_maskz_loadu_ps(k, bias + c0) : _mm512_setzero_ps();
      __m512 o[2][2] = {{_mm512_add_ps(_mm512_add_ps(_mm512_add_ps(s0[0], s0[1]), s0[2]), b),
                         _mm512_add_ps(_mm512_sub_ps(_mm512_sub_ps(s0[1], s0[2]), s0[3]), b)},
                        {_mm512_add_ps(_mm512_add_ps(_mm512_add_ps(s1[0], s1[1]), s1[2]), b),
                         _mm512_add_ps(_mm512_sub_ps(_mm512_sub_ps(s1[1], s1[2]), s1[3]), b)}};
      if (relu)
        for (auto& row : o)
          for (auto& val : row) val = _mm512_max_ps(val, _mm512_setzero_ps());
      store16(y00 + c0, o[0][0], k);
      if (col1) store16(y00 + g.cout + c0, o[0][1], k);
      if (row1) {
        store16(y00 + down + c0, o[1][0], k);
        if (col1) store16(y00 + down + g.cout + c0, o[1][1], k);
      }
    }
  }
}

// The same with point pairs (cout <= 8): M's product p holds points 2p and
// 2p + 1 in alternate lanes, so row i of M (points 4i .. 4i + 3) is two
// vectors, q0 (columns 0, 1) and q1 (columns 2, 3), and A^T's columns are
// taken with the lanes swapped within each pair: output column 0 = m0 + m1 +
// m2 and column 1 = m1 - m2 - m3 land in the even lanes, the same sums in
// the same order as output_transform (the same bits). The two output pixels
// of a tile row are one vector: lanes [0, cout) and [cout, 2 cout), gathered
// and biased by PairOutput's tables (made once per convolution).
struct PairOutput {
  alignas(64) int32_t gather[16];  // pixel 0's channels from c0's even lanes, pixel 1's from c1's (index 16 +)
  alignas(64) float bias[16];      // the bias for both pixels (zeros without one)
};
PairOutput pair_output(int cout, const float* bias) {
  PairOutput po;
  for (int lane = 0; lane < 16; ++lane) {
    const int co = lane < cout ? lane : lane - cout;  // pixel 0, then pixel 1
    po.gather[lane] = lane < cout ? 2 * co : lane < 2 * cout ? 16 + 2 * co : 0;
    po.bias[lane] = bias && lane < 2 * cout ? bias[co] : 0.0f;
  }
  return po;
}
template <class T>
MIXSEG_AVX512_TARGET void output_transform_pairs(const Geometry& g, const float* m, int cout_pad, size_t m_xi, int n,
                                                 int ty, int tx0, int count, int t0, const PairOutput& po, bool relu,
                                                 T* y) {
  const __m512i order = _mm512_load_si512(po.gather);
  const __m512 b = _mm512_load_ps(po.bias);
  const __mmask16 one = lanes(g.cout), two = lanes(2 * g.cout);
  const int oy = 2 * ty;
  const bool row1 = oy + 1 < g.h;
  const size_t down = size_t(g.w) * g.cout;
  for (int t = 0; t < count; ++t) {
    const int ox = 2 * (tx0 + t);
    const float* mt = m + size_t(t0 + t) * cout_pad;
    __m512 s[2][2];  // [row of A^T M][columns 0, 1 or 2, 3]
#pragma GCC unroll 2
    for (int jj = 0; jj < 2; ++jj) {
      const __m512 m0 = _mm512_loadu_ps(mt + size_t(jj) * m_xi);
      const __m512 m1 = _mm512_loadu_ps(mt + size_t(2 + jj) * m_xi);
      const __m512 m2 = _mm512_loadu_ps(mt + size_t(4 + jj) * m_xi);
      const __m512 m3 = _mm512_loadu_ps(mt + size_t(6 + jj) * m_xi);
      s[0][jj] = _mm512_add_ps(_mm512_add_ps(m0, m1), m2);
      s[1][jj] = _mm512_sub_ps(_mm512_sub_ps(m1, m2), m3);
    }
    T* yr = y + ((size_t(n) * g.h + oy) * g.w + ox) * g.cout;
    const __mmask16 k = ox + 1 < g.w ? two : one;
    for (int r = 0; r < (row1 ? 2 : 1); ++r, yr += down) {
      const __m512 q0 = s[r][0], q1 = s[r][1];
      const __m512 q0s = _mm512_permute_ps(q0, 0xB1), q1s = _mm512_permute_ps(q1, 0xB1);  // pairs swapped
      const __m512 c0 = _mm512_add_ps(_mm512_add_ps(q0, q0s), q1);
      const __m512 c1 = _mm512_sub_ps(_mm512_sub_ps(q0s, q1), q1s);
      __m512 o = _mm512_add_ps(_mm512_permutex2var_ps(c0, order, c1), b);
      if (relu) o = _mm512_max_ps(o, _mm512_setzero_ps());
      store16(yr, o, k);
    }
  }
}

// Calls f(n, ty, tx0, count, t0) for each run of a chunk's tiles that lies
// in one tile row (a chunk may span rows and images).
template <class F>
void for_runs(const Geometry& g, size_t first, int count, F&& f) {
  for (int t = 0; t < count;) {
    const size_t tile = first + t;
    const size_t row = tile / g.tw;  // n * th + ty
    const int tx = int(tile % g.tw), run = std::min(count - t, g.tw - tx);
    f(int(row / g.th), int(row % g.th), tx, run, t);
    t += run;
  }
}

// V's elements are V: f32, or bf16 for bf16 products; kPairs: point pairs
// (u.point_pairs).
template <class T, bool kFused, class V, bool kPairs>
void run_with(const ConvShape& s, const Input<T>& in, const WinogradF2Weights& u, const float* bias, T* y, bool relu) {
  Geometry g{s.n, s.h, s.w, s.cin, s.cout, (s.h + 1) / 2, (s.w + 1) / 2, 0};
  g.tiles = size_t(s.n) * g.th * g.tw;
  const int ld = v_stride(s.cin), tiles = chunk_tiles(ld);
  // The chunk's products and the length of V's rows (a tile's channels for one point, or two).
  constexpr int kProducts = kPairs ? 8 : 16;
  const int row = kPairs ? 2 * ld : ld;
  const int64_t chunks = int64_t((g.tiles + tiles - 1) / tiles);
  const int nblk = u.cout_pad / 16;
  const int nb = nblk % 4 == 0 ? 4 : nblk % 2 == 0 ? 2 : 1;
  const PairOutput pairs = kPairs ? pair_output(s.cout, bias) : PairOutput{};
#pragma omp parallel
  {
    // Per-thread scratch, kept between calls (grows only; never read before written).
    // M overwrites V where each product block's output rows lie within the
    // V rows it has just read (one block of output channels, cout_pad <=
    // row): the chunk's scratch halves, and V + M of the first levels' convs
    // (2 x 24 KB) no longer fill L1 (16->16: 0.81-1.03x the time, paired).
    // (Not with bf16 V: M's rows are twice as wide as V's.)
    constexpr bool kFloatV = std::is_same_v<V, float>;
    const bool in_place = kFloatV && u.cout_pad == 16 * nb && u.cout_pad <= row;
    thread_local std::vector<V> v_buf;
    thread_local std::vector<float> m_buf;
    const size_t v_need = size_t(kProducts) * tiles * row, m_need = size_t(kProducts) * tiles * u.cout_pad;
    if (v_buf.size() < v_need) v_buf.resize(v_need);
    if (!in_place && m_buf.size() < m_need) m_buf.resize(m_need);
    V* v = v_buf.data();
    float* m;
    if constexpr (kFloatV)
      m = in_place ? v : m_buf.data();
    else
      m = m_buf.data();
    const size_t m_xi = size_t(tiles) * (in_place ? row : u.cout_pad);
#pragma omp for schedule(static)
    for (int64_t c = 0; c < chunks; ++c) {
      const size_t first = size_t(c) * tiles;
      const int count = int(std::min<size_t>(tiles, g.tiles - first));
      for_runs(g, first, count, [&](int n, int ty, int tx0, int run, int t0) {
        input_transform<T, kFused, V, kPairs>(g, in, n, ty, tx0, run, t0, ld, size_t(tiles) * row, v);
      });
      if (count < tiles)  // the last chunk's unused rows: zeros, not stale data
        for (int p = 0; p < kProducts; ++p)
          std::memset(v + (size_t(p) * tiles + count) * row, 0, sizeof(V) * size_t(tiles - count) * row);
      products(ld, nb, u, tiles, v, m, m_xi);
      for_runs(g, first, count, [&](int n, int ty, int tx0, int run, int t0) {
        if constexpr (kPairs)
          output_transform_pairs(g, m, u.cout_pad, m_xi, n, ty, tx0, run, t0, pairs, relu, y);
        else
          output_transform(g, m, u.cout_pad, m_xi, n, ty, tx0, run, t0, bias, relu, y);
      });
    }
  }
}

template <class T, bool kFused, class V>
void run_points(const ConvShape& s, const Input<T>& in, const WinogradF2Weights& u, const float* bias, T* y,
                bool relu) {
  if (u.point_pairs) return run_with<T, kFused, V, true>(s, in, u, bias, y, relu);
  run_with<T, kFused, V, false>(s, in, u, bias, y, relu);
}

template <class T, bool kFused>
void run(const ConvShape& s, const Input<T>& in, const WinogradF2Weights& u, const float* bias, T* y, bool relu) {
  if constexpr (std::is_same_v<T, bf16>)
    if (u.bf16_products()) return run_points<T, kFused, bf16>(s, in, u, bias, y, relu);
  run_points<T, kFused, float>(s, in, u, bias, y, relu);
}

// ---- Weight gradient: dw = sum over tiles of G^T [(A g A^T) . (B^T d B)] G ----
//
// By the transpose principle the forward formula turns into the gradient's:
// for one tile, sum_pq g[p][q] y[p][q] = sum_ij (A g A^T)[i][j] (G w G^T)[i][j]
// (B^T d B)[i][j], so the tile's contribution to dw is G^T [(A g A^T) .
// (B^T d B)] G with the same V = B^T d B as the forward pass. Summed over
// tiles this is 16 matrix products M[xi] (cin x cout) = sum_t V[xi][t][ci]
// DY[xi][t][co] with DY = A g A^T, reduced over the tiles: 16 multiplies per
// tile and channel pair instead of 36. G^T M G takes M back to 3x3 once, in
// double.
//
// Work is split into tasks (tile group, slice of output channels); a task
// owns its slice of its group's partial M and accumulates it in f32 over
// the group's tiles, chunk by chunk; the partials are summed in group order
// in double. Groups and chunks depend on the shape only: the result does
// not depend on the thread count.

// DY[xi][t][c] = A g A^T (rows width floats apart, xi_stride apart) for
// output channels co0 .. co0 + width - 1 (width a multiple of 16; channels
// from cout on give zeros) of the tiles tx0 .. tx0 + count - 1 of tile row
// ty of image n, the first at row t0. Outputs beyond odd H or W count as
// zero gradients. A = [1 0; 1 1; 1 -1; 0 -1].
template <class T>
MIXSEG_AVX512_TARGET void gradient_transform(const Geometry& g, const T* dy, int n, int ty, int tx0, int count,
                                             int t0, int co0, int width, size_t xi_stride, float* d) {
  const int oy = 2 * ty;
  const bool row1 = oy + 1 < g.h;
  const size_t down = size_t(g.w) * g.cout;
  for (int c = 0; c < width; c += 16) {
    const __mmask16 k = lanes(std::clamp(g.cout - (co0 + c), 0, 16));
    for (int t = 0; t < count; ++t) {
      const int ox = 2 * (tx0 + t);
      const bool col1 = ox + 1 < g.w;
      const T* p = dy + ((size_t(n) * g.h + oy) * g.w + ox) * g.cout + co0 + c;
      const __m512 zero = _mm512_setzero_ps();
      const __m512 g00 = load16(p, k), g01 = col1 ? load16(p + g.cout, k) : zero;
      const __m512 g10 = row1 ? load16(p + down, k) : zero, g11 = row1 && col1 ? load16(p + down + g.cout, k) : zero;
      // A g (4 rows x 2 columns), then (A g) A^T along each row.
      const __m512 r[4][2] = {{g00, g01},
                              {_mm512_add_ps(g00, g10), _mm512_add_ps(g01, g11)},
                              {_mm512_sub_ps(g00, g10), _mm512_sub_ps(g01, g11)},
                              {_mm512_sub_ps(zero, g10), _mm512_sub_ps(zero, g11)}};
      float* o = d + size_t(t0 + t) * width + c;
#pragma GCC unroll 4
      for (int i = 0; i < 4; ++i, o += 4 * xi_stride) {
        _mm512_storeu_ps(o, r[i][0]);
        _mm512_storeu_ps(o + xi_stride, _mm512_add_ps(r[i][0], r[i][1]));
        _mm512_storeu_ps(o + 2 * xi_stride, _mm512_sub_ps(r[i][0], r[i][1]));
        _mm512_storeu_ps(o + 3 * xi_stride, _mm512_sub_ps(zero, r[i][1]));
      }
    }
  }
}

// m (R x 16*NB, row stride ldm) += v^T . d over `rows` rows: v holds R
// input channels per row (row stride ldv), d 16*NB output channels (row
// stride ldd); first: m starts from zero instead. A row is a tile (f32), or
// a pair of tiles (bf16, from pack_tile_pairs: each element a pair). The R
// operands of a row are adjacent, broadcast from memory.
template <int R, int NB, class E>
MIXSEG_AVX512_TARGET void gradient_block(const E* v, int ldv, const E* d, int ldd, int rows, float* m, int ldm,
                                         bool first) {
  __m512 acc[R][NB];
#pragma GCC unroll 16
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 4
    for (int b = 0; b < NB; ++b)
      acc[r][b] = first ? _mm512_setzero_ps() : _mm512_loadu_ps(m + size_t(r) * ldm + 16 * b);
  for (int t = 0; t < rows; ++t, v += ldv, d += ldd) update_products<R, NB, kStep<E>>(acc, v, d);
  store_block<R, NB>(acc, m, ldm);
}

// Rows t and t + 1 of src (count rows of `width` f32, a multiple of 16, rows
// ld apart) rounded to bf16 and interleaved, the reduction's pairs for
// vdpbf16ps: dst[(t / 2) * 2 * width + 2 c + t % 2]; an odd count's last
// row is paired with zeros.
MIXSEG_AVX512_TARGET void pack_tile_pairs(const float* src, size_t ld, int count, int width, bf16* dst) {
  // _mm512_cvtne2ps_pbh(b, a) holds a's 16 lanes, then b's; this interleaves them.
  alignas(64) static constexpr int16_t kInterleave[32] = {0, 16, 1, 17, 2,  18, 3,  19, 4,  20, 5,  21, 6,  22, 7,  23,
                                                          8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31};
  const __m512i order = _mm512_load_si512(kInterleave);
  for (int t = 0; t < count; t += 2, dst += 2 * size_t(width)) {
    const float* a = src + size_t(t) * ld;
    const bool second = t + 1 < count;
    for (int c = 0; c < width; c += 16) {
      const __m512 va = _mm512_loadu_ps(a + c), vb = second ? _mm512_loadu_ps(a + ld + c) : _mm512_setzero_ps();
      const __m512i both = (__m512i)_mm512_cvtne2ps_pbh(vb, va);
      _mm512_storeu_si512(dst + 2 * c, _mm512_permutexvar_epi16(order, both));
    }
  }
}

// The 16 products of one chunk into a task's slice of M (16 accumulators:
// 16 input channels x 16 output channels, 8 x 32 or 4 x 64). With bf16
// scratch (vp, dp: pairs of tiles), V and DY of each xi are rounded to bf16
// and the products summed by vdpbf16ps.
template <int R, int NB>
void gradient_products(int ci_pad, int width, size_t v_xi, size_t d_xi, int count, const float* v, const float* d,
                       float* m, int ldm, bool first, bf16* vp, bf16* dp) {
  for (int xi = 0; xi < 16; ++xi) {
    const float* vx = v + xi * v_xi;
    const float* dx = d + xi * d_xi;
    float* mx = m + size_t(xi) * ci_pad * ldm;
    if (vp) {
      pack_tile_pairs(vx, ci_pad, count, ci_pad, vp);
      pack_tile_pairs(dx, width, count, width, dp);
    }
    const int pairs = (count + 1) / 2;
    for (int ci0 = 0; ci0 < ci_pad; ci0 += R)
      for (int c0 = 0; c0 < width; c0 += 16 * NB) {
        float* mb = mx + size_t(ci0) * ldm + c0;
        if (vp)
          gradient_block<R, NB>(vp + 2 * ci0, 2 * ci_pad, dp + 2 * c0, 2 * width, pairs, mb, ldm, first);
        else
          gradient_block<R, NB>(vx + ci0, ci_pad, dx + c0, width, count, mb, ldm, first);
      }
  }
}

template <class T>
void run_backward_weights(const ConvShape& s, const T* x, const T* dy, float* dw, bool bf16_products) {
  Geometry g{s.n, s.h, s.w, s.cin, s.cout, (s.h + 1) / 2, (s.w + 1) / 2, 0};
  g.tiles = size_t(s.n) * g.th * g.tw;
  const int ci_pad = (s.cin + 15) / 16 * 16, co_pad = (s.cout + 15) / 16 * 16;
  // Output-channel slices of up to 64 (the last one may be narrower).
  const int slice = std::min(co_pad, 64), slices = (co_pad + slice - 1) / slice;
  // Tile groups: ~256 tiles or more each, at most 64, their partials at
  // most 32 MB together.
  const size_t partial = size_t(16) * ci_pad * co_pad;
  const int groups = int(std::clamp<size_t>(
      std::min<size_t>(g.tiles / 256, (size_t(8) << 20) / partial), 1, 64));
  // Tiles per chunk. At 16 + 16 channels, 16 tiles: the whole chunk's V and
  // DY (32 KB) stay in L1 (0.76x the time of 64-tile chunks, one profiled
  // run each); wider, V and DY of one xi within 32 KB, so that the partial
  // M is loaded and stored once per 16 to 64 tiles (at 128 -> 128, one run
  // each: 4-tile chunks 3.3-3.7x the time of 64-tile ones, 10-tile 1.7x;
  // 128 or 256 tiles no faster from 32 to 256 channels).
  const int chunk = ci_pad + slice <= 32 ? 16 : std::clamp(8192 / (ci_pad + slice), 16, 64);
  // V's and DY's 16 planes xi are a chunk's rows apart plus one cache line,
  // so that a tile's 16 stores never fall 4 KB apart, in one L1 set (64
  // tiles x 16 channels is 4 KB); no difference was measurable at the sizes
  // timed, it only rules the conflict out.
  const size_t v_xi = size_t(chunk) * ci_pad + 16, d_xi = size_t(chunk) * slice + 16;
  // The partials, in the calling thread's scratch (grows only; each written
  // before it is read). Inside the parallel regions only the pointer is
  // used: there a thread_local name would mean each worker's own.
  thread_local std::vector<float> m_buf;
  if (m_buf.size() < size_t(groups) * partial) m_buf.resize(size_t(groups) * partial);
  float* const m = m_buf.data();
  const int64_t tasks = int64_t(groups) * slices;
  const Input<T> in{x, s.cin, nullptr, 0};
#pragma omp parallel for schedule(dynamic, 1)
  for (int64_t task = 0; task < tasks; ++task) {
    const int grp = int(task / slices), co0 = int(task % slices) * slice, width = std::min(slice, co_pad - co0);
    const size_t begin = g.tiles * grp / groups, end = g.tiles * (grp + 1) / groups;
    thread_local std::vector<float> v_buf, d_buf;  // grow only; rows read are always written first
    if (v_buf.size() < 16 * v_xi) v_buf.resize(16 * v_xi);
    if (d_buf.size() < 16 * d_xi) d_buf.resize(16 * d_xi);
    // bf16 products: one xi's V and DY in pairs of tiles (chunk rounded up to even).
    thread_local std::vector<bf16> vp_buf, dp_buf;
    const size_t pair_rows = size_t(chunk + 1) / 2 * 2;
    if (bf16_products && vp_buf.size() < pair_rows * ci_pad) vp_buf.resize(pair_rows * ci_pad);
    if (bf16_products && dp_buf.size() < pair_rows * slice) dp_buf.resize(pair_rows * slice);
    bf16* const vp = bf16_products ? vp_buf.data() : nullptr;
    bf16* const dp = bf16_products ? dp_buf.data() : nullptr;
    float* mp = m + grp * partial + co0;
    for (size_t first = begin; first < end; first += chunk) {
      const int count = int(std::min<size_t>(chunk, end - first));
      for_runs(g, first, count, [&](int n, int ty, int tx0, int run, int t0) {
        input_transform<T, false>(g, in, n, ty, tx0, run, t0, ci_pad, v_xi, v_buf.data());
        gradient_transform<T>(g, dy, n, ty, tx0, run, t0, co0, width, d_xi, d_buf.data());
      });
      const bool zero = first == begin;
      if (width % 64 == 0)
        gradient_products<4, 4>(ci_pad, width, v_xi, d_xi, count, v_buf.data(), d_buf.data(), mp, co_pad, zero, vp, dp);
      else if (width % 32 == 0)
        gradient_products<8, 2>(ci_pad, width, v_xi, d_xi, count, v_buf.data(), d_buf.data(), mp, co_pad, zero, vp, dp);
      else
        gradient_products<16, 1>(ci_pad, width, v_xi, d_xi, count, v_buf.data(), d_buf.data(), mp, co_pad, zero, vp,
                                 dp);
    }
  }
  // dw[co][kh][kw][ci] = G^T (sum over groups of M) G, in double, one input
  // channel at a time (the groups' rows summed in group order, contiguous
  // over output channels); G = [1 0 0; 1/2 1/2 1/2; 1/2 -1/2 1/2; 0 0 1].
  static constexpr double G[4][3] = {{1, 0, 0}, {0.5, 0.5, 0.5}, {0.5, -0.5, 0.5}, {0, 0, 1}};
#pragma omp parallel
  {
    std::vector<double> sum(size_t(16) * s.cout);  // [xi][co], per thread
#pragma omp for schedule(static)
    for (int ci = 0; ci < s.cin; ++ci) {
      std::fill(sum.begin(), sum.end(), 0.0);
      for (int grp = 0; grp < groups; ++grp)
        for (int xi = 0; xi < 16; ++xi) {
          const float* row = m + grp * partial + (size_t(xi) * ci_pad + ci) * co_pad;
          double* out = sum.data() + size_t(xi) * s.cout;
          for (int co = 0; co < s.cout; ++co) out[co] += row[co];
        }
      for (int co = 0; co < s.cout; ++co)
        for (int kh = 0; kh < 3; ++kh)
          for (int kw = 0; kw < 3; ++kw) {
            double acc = 0;
            for (int i = 0; i < 4; ++i)
              for (int j = 0; j < 4; ++j) acc += G[i][kh] * sum[size_t(4 * i + j) * s.cout + co] * G[j][kw];
            dw[((size_t(co) * 3 + kh) * 3 + kw) * s.cin + ci] = float(acc);
          }
    }
  }
}

// What every entry point requires of the call (what: the kernel's name).
void check_kernel(const ConvShape& s, DType dt, const char* what) {
  if (!winograd_f2_applies(s, dt))
    fail("{} does not take a {}x{} {} convolution with {} input channels", what, s.k, s.k, dtype_name(dt), s.cin);
  if (!winograd_f2_available()) fail("this CPU lacks AVX-512 for the Winograd F(2x2,3x3) kernel");
}

// What both forward entry points require, the weights included.
void check_call(const ConvShape& s, DType dt, const WinogradF2Weights& u) {
  check_kernel(s, dt, "Winograd F(2x2,3x3)");
  if (u.cin != s.cin || u.cout != s.cout)
    fail("Winograd weights are for {}->{} channels, not {}->{}", u.cin, u.cout, s.cin, s.cout);
  if (u.bf16_products() && dt != DType::bf16)
    fail("Winograd weights prepared for bf16 products do not take a {} convolution", dtype_name(dt));
}

}  // namespace

void conv2d_winograd_f2(const ConvShape& s, DType dt, const void* x, const WinogradF2Weights& u, const float* bias,
                        void* y, bool relu) {
  check_call(s, dt, u);
  dispatch_float(dt, [&]<class T>() {
    run<T, false>(s, {static_cast<const T*>(x), s.cin, nullptr, 0}, u, bias, static_cast<T*>(y), relu);
  });
}

void conv2d_winograd_f2_upsample_concat(const ConvShape& s, DType dt, const void* low, int c_low, const void* skip,
                                        const WinogradF2Weights& u, const float* bias, void* y, bool relu) {
  check_call(s, dt, u);
  if (s.h % 2 || s.w % 2) fail("upsample+concat+conv: {}x{} is not twice the low-resolution input", s.h, s.w);
  if (c_low < 1 || c_low >= s.cin) fail("upsample+concat+conv: {} upsampled of {} input channels", c_low, s.cin);
  const int cb = s.cin - c_low;
  dispatch_float(dt, [&]<class T>() {
    run<T, true>(s, {static_cast<const T*>(low), c_low, static_cast<const T*>(skip), cb}, u, bias, static_cast<T*>(y),
                 relu);
  });
}

void conv2d_winograd_f2_backward_weights(const ConvShape& s, DType dt, const void* x, const void* dy, float* dw) {
  conv2d_winograd_f2_backward_weights(s, dt, x, dy, dw, bf16_products_by_default(dt));
}

void conv2d_winograd_f2_backward_weights(const ConvShape& s, DType dt, const void* x, const void* dy, float* dw,
                                         bool bf16_products) {
  check_kernel(s, dt, "Winograd F(2x2,3x3) weight gradient");
  if (bf16_products) require_bf16_products(dt);
  dispatch_float(dt, [&]<class T>() {
    run_backward_weights<T>(s, static_cast<const T*>(x), static_cast<const T*>(dy), dw, bf16_products);
  });
}

#else

bool winograd_f2_available() { return false; }
bool winograd_f2_bf16_products_available() { return false; }
void conv2d_winograd_f2_backward_weights(const ConvShape&, DType, const void*, const void*, float*) {
  fail("this build has no AVX-512 Winograd F(2x2,3x3) kernel");
}
void conv2d_winograd_f2_backward_weights(const ConvShape&, DType, const void*, const void*, float*, bool) {
  fail("this build has no AVX-512 Winograd F(2x2,3x3) kernel");
}
void conv2d_winograd_f2(const ConvShape&, DType, const void*, const WinogradF2Weights&, const float*, void*, bool) {
  fail("this build has no AVX-512 Winograd F(2x2,3x3) kernel");
}
void conv2d_winograd_f2_upsample_concat(const ConvShape&, DType, const void*, int, const void*,
                                        const WinogradF2Weights&, const float*, void*, bool) {
  fail("this build has no AVX-512 Winograd F(2x2,3x3) kernel");
}

#endif

}  // namespace mixseg
