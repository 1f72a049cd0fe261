// Subsets, splits and resizing (see dataset.h).
#include "data/dataset.h"

#include <algorithm>
#include <array>
#include <bit>
#include <cmath>
#include <cstring>
#include <type_traits>

#include "core/error.h"
#include "core/rng.h"
#include "core/threads.h"
#include "data/folders.h"

namespace mixseg {

void to_input(const uint16_t* values, size_t n, float* out) {
  for (size_t i = 0; i < n; ++i) out[i] = float(values[i]) * (1.0f / 65535.0f);
}
void to_input(const uint8_t* values, size_t n, float* out) {
  for (size_t i = 0; i < n; ++i) out[i] = float(uint32_t(values[i]) * 257u) * (1.0f / 65535.0f);
}

std::vector<uint16_t> Dataset::image16(size_t i) const {
  if (streamed()) fail("dataset: image {} of a streamed set is read with Dataset::read", i);
  std::vector<uint16_t> v(image_values());
  for (size_t k = 0; k < v.size(); ++k) v[k] = value(i, k);
  return v;
}

namespace {

// Mask bits of one byte as 8 pixels (0/1), lowest bit first: one 8-byte
// store a byte when masks are unpacked.
constexpr std::array<uint64_t, 256> kBitsToBytes = [] {
  std::array<uint64_t, 256> t{};
  for (unsigned b = 0; b < 256; ++b)
    for (unsigned k = 0; k < 8; ++k) t[b] |= uint64_t((b >> k) & 1u) << (8 * k);
  return t;
}();

void unpack_mask(const uint8_t* bits, size_t n, uint8_t* out) {
  static_assert(std::endian::native == std::endian::little, "a table entry's lowest byte is pixel 0");
  size_t k = 0;
  for (; k + 8 <= n; k += 8) std::memcpy(out + k, &kBitsToBytes[bits[k / 8]], 8);
  for (; k < n; ++k) out[k] = (bits[k / 8] >> (k % 8)) & 1u;
}

}  // namespace

std::vector<uint8_t> Dataset::mask(size_t i) const {
  if (streamed()) fail("dataset: mask {} of a streamed set is read with Dataset::read", i);
  std::vector<uint8_t> m(pixels());
  unpack_mask(mask_bits.data() + i * mask_bytes(), m.size(), m.data());
  return m;
}

void Dataset::set_mask(size_t i, const uint8_t* mask) {
  uint8_t* bits = mask_bits.data() + i * mask_bytes();
  std::fill_n(bits, mask_bytes(), uint8_t(0));
  for (size_t k = 0; k < pixels(); ++k) bits[k / 8] |= uint8_t((mask[k] != 0) << (k % 8));
}

void Dataset::read(size_t first, size_t count, float* input, uint8_t* out_masks) const {
  if (first + count > size()) fail("dataset: images {}..{} asked of {}", first, first + count, size());
  const size_t iv = image_values(), px = pixels();
  if (streamed()) {  // decoding dominates (a PNG or two per item): items in parallel
    parallel_for_first_error(0, count, 1, [&](size_t k) {
      read_streamed_item(*this, first + k, input + k * iv, out_masks ? out_masks + k * px : nullptr);
    });
    return;
  }
  if (sixteen_bit())
    to_input(images16.data() + first * iv, count * iv, input);
  else
    to_input(images8.data() + first * iv, count * iv, input);
  if (out_masks)
    for (size_t k = 0; k < count; ++k)
      unpack_mask(mask_bits.data() + (first + k) * mask_bytes(), px, out_masks + k * px);
}

namespace {

// Copies image and mask `from` of src to slot `to` of dst (same size and
// storage; dst sized already). src and dst may be the same set, with to <= from.
void copy_item(const Dataset& src, size_t from, Dataset& dst, size_t to) {
  const size_t iv = src.image_values();
  if (src.streamed()) {
    dst.file_of[to] = src.file_of[from];
    return;
  }
  if (src.sixteen_bit())
    std::copy_n(src.images16.begin() + std::ptrdiff_t(from * iv), iv, dst.images16.begin() + std::ptrdiff_t(to * iv));
  else
    std::copy_n(src.images8.begin() + std::ptrdiff_t(from * iv), iv, dst.images8.begin() + std::ptrdiff_t(to * iv));
  const size_t mb = src.mask_bytes();
  std::copy_n(src.mask_bits.begin() + std::ptrdiff_t(from * mb), mb, dst.mask_bits.begin() + std::ptrdiff_t(to * mb));
}

// Sizes d's values and masks for n items in its storage (8 or 16 bits, or
// the file index of a streamed set).
void resize_items(Dataset& d, size_t n, bool sixteen_bit) {
  if (d.streamed()) {
    d.file_of.resize(n);
    return;
  }
  if (sixteen_bit) {
    d.images8.clear();
    d.images16.resize(n * d.image_values());
  } else {
    d.images16.clear();
    d.images8.resize(n * d.image_values());
  }
  d.mask_bits.resize(n * d.mask_bytes());
}

// lround for v >= 0 (halves away from zero), without the libm call: v - floor(v)
// is exact below 2^52, so the comparison with 0.5 decides as lround does.
// The comparison's result is added as an integer (a flag, no branch): on
// image data it is a coin toss, and the branch that a floating-point
// select compiled to made the resizer slower than lround (1.75 ms for a
// 512x512 -> 512x256 frame against 1.2; this way 0.37).
inline uint32_t round_half_up(double v) {
  const double r = std::floor(v);
  return uint32_t(r) + uint32_t(v - r >= 0.5);
}

}  // namespace

template <class T>
std::vector<T> resize_bilinear(const T* src, int sh, int sw, int dh, int dw, int c) {
  // Half-pixel centres, edges clamped. Each output column's two source
  // columns and weight are found once, not per pixel and channel; every
  // value is the same double expression as before, so results are unchanged
  // (tested against the per-pixel formula).
  struct Tap {
    size_t x0, x1;  // value offsets of the two source columns in a row
    double a;       // weight of x1
  };
  std::vector<Tap> taps(static_cast<size_t>(dw));
  for (int x = 0; x < dw; ++x) {
    const double fx = std::clamp((x + 0.5) * sw / dw - 0.5, 0.0, double(sw - 1));
    const int x0 = int(fx), x1 = std::min(x0 + 1, sw - 1);
    taps[size_t(x)] = {size_t(x0) * size_t(c), size_t(x1) * size_t(c), fx - x0};
  }
  std::vector<T> out(size_t(dh) * dw * size_t(c));
  T* o = out.data();
  for (int y = 0; y < dh; ++y) {
    const double fy = std::clamp((y + 0.5) * sh / dh - 0.5, 0.0, double(sh - 1));
    const int y0 = int(fy), y1 = std::min(y0 + 1, sh - 1);
    const double ay = fy - y0;
    const T* r0 = src + size_t(y0) * sw * size_t(c);
    const T* r1 = src + size_t(y1) * sw * size_t(c);
    for (const Tap& t : taps) {
      const double ax = t.a;
      for (int k = 0; k < c; ++k, ++o) {
        const double v = (1 - ay) * ((1 - ax) * double(r0[t.x0 + size_t(k)]) + ax * double(r0[t.x1 + size_t(k)])) +
                         ay * ((1 - ax) * double(r1[t.x0 + size_t(k)]) + ax * double(r1[t.x1 + size_t(k)]));
        if constexpr (std::is_integral_v<T>) {
          static_assert(std::is_unsigned_v<T>, "values of unsigned images are never negative");
          *o = T(round_half_up(v));
        } else {
          *o = T(v);
        }
      }
    }
  }
  return out;
}
template std::vector<uint8_t> resize_bilinear<uint8_t>(const uint8_t*, int, int, int, int, int);
template std::vector<uint16_t> resize_bilinear<uint16_t>(const uint16_t*, int, int, int, int, int);
template std::vector<float> resize_bilinear<float>(const float*, int, int, int, int, int);

std::vector<uint8_t> resize_nearest(const uint8_t* src, int sh, int sw, int dh, int dw) {
  std::vector<uint8_t> out(size_t(dh) * dw);
  for (int y = 0; y < dh; ++y) {
    const int sy = std::min(sh - 1, int((y + 0.5) * sh / dh));
    for (int x = 0; x < dw; ++x) out[size_t(y) * dw + x] = src[size_t(sy) * sw + std::min(sw - 1, int((x + 0.5) * sw / dw))];
  }
  return out;
}

Dataset subset(const Dataset& d, const std::vector<size_t>& idx) {
  Dataset s;
  s.h = d.h;
  s.w = d.w;
  s.channels = d.channels;
  s.files = d.files;
  resize_items(s, idx.size(), d.sixteen_bit());  // sized once: a full BAGLS set is 8-16 GB
  for (size_t k = 0; k < idx.size(); ++k) {
    s.names.push_back(d.names.at(idx[k]));
    copy_item(d, idx[k], s, k);
  }
  return s;
}

std::pair<Dataset, Dataset> split(const Dataset& d, double val_fraction, uint64_t seed) {
  return split(Dataset(d), val_fraction, seed);
}

std::pair<Dataset, Dataset> split(Dataset&& d, double val_fraction, uint64_t seed) {
  if (val_fraction < 0 || val_fraction >= 1) fail("validation fraction must be in [0, 1), got {}", val_fraction);
  std::vector<size_t> idx(d.size());
  for (size_t i = 0; i < idx.size(); ++i) idx[i] = i;
  Rng rng = Rng::derived(seed, 0x5b1u);
  for (size_t i = idx.size(); i > 1; --i) std::swap(idx[i - 1], idx[rng.below(i)]);
  size_t nval = size_t(std::lround(val_fraction * double(d.size())));
  if (val_fraction > 0 && nval == 0) nval = 1;
  if (nval >= d.size()) fail("validation fraction {} leaves no training images out of {}", val_fraction, d.size());
  std::vector<size_t> val(idx.begin(), idx.begin() + long(nval)), train(idx.begin() + long(nval), idx.end());
  std::sort(val.begin(), val.end());
  std::sort(train.begin(), train.end());
  // The validation items are copied out; the training items then move down
  // in place (train[k] >= k, so no item is overwritten before it moves): the
  // set is never held twice.
  Dataset v = subset(d, val);
  for (size_t k = 0; k < train.size(); ++k) {
    const size_t i = train[k];
    if (i == k) continue;
    d.names[k] = std::move(d.names[i]);
    copy_item(d, i, d, k);
  }
  d.names.resize(train.size());
  resize_items(d, train.size(), d.sixteen_bit());
  return {std::move(d), std::move(v)};
}

}  // namespace mixseg
