// Subsets, splits and resizing (see dataset.h).
#include "data/dataset.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "core/rng.h"

namespace mixseg {


template <class T>
std::vector<T> resize_bilinear(const T* src, int sh, int sw, int dh, int dw, int c) {
  std::vector<T> out(size_t(dh) * dw * size_t(c));
  for (int y = 0; y < dh; ++y) {
    const double fy = std::clamp((y + 0.5) * sh / dh - 0.5, 0.0, double(sh - 1));
    const int y0 = int(fy), y1 = std::min(y0 + 1, sh - 1);
    const double ay = fy - y0;
    for (int x = 0; x < dw; ++x) {
      const double fx = std::clamp((x + 0.5) * sw / dw - 0.5, 0.0, double(sw - 1));
      const int x0 = int(fx), x1 = std::min(x0 + 1, sw - 1);
      const double ax = fx - x0;
      for (int k = 0; k < c; ++k) {
        auto at = [&](int yy, int xx) { return double(src[(size_t(yy) * sw + size_t(xx)) * size_t(c) + size_t(k)]); };
        const double v = (1 - ay) * ((1 - ax) * at(y0, x0) + ax * at(y0, x1)) + ay * ((1 - ax) * at(y1, x0) + ax * at(y1, x1));
        T& o = out[(size_t(y) * dw + size_t(x)) * size_t(c) + size_t(k)];
        if constexpr (std::is_integral_v<T>)
          o = T(std::lround(v));
        else
          o = T(v);
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
  s.images.reserve(idx.size() * d.image_values());  // sized once: a full BAGLS set is ~20 GB
  s.masks.reserve(idx.size() * d.pixels());
  for (size_t i : idx) {
    s.names.push_back(d.names.at(i));
    s.images.insert(s.images.end(), d.image(i), d.image(i) + d.image_values());
    s.masks.insert(s.masks.end(), d.mask(i), d.mask(i) + d.pixels());
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
    std::copy(d.image(i), d.image(i) + d.image_values(), d.images.begin() + std::ptrdiff_t(k * d.image_values()));
    std::copy(d.mask(i), d.mask(i) + d.pixels(), d.masks.begin() + std::ptrdiff_t(k * d.pixels()));
  }
  d.names.resize(train.size());
  d.images.resize(train.size() * d.image_values());
  d.masks.resize(train.size() * d.pixels());
  return {std::move(d), std::move(v)};
}

}  // namespace mixseg
