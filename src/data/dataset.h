// An in-memory segmentation dataset: images of one size with 1 (gray) or 3
// (RGB) interleaved channels on a 16-bit scale (8-bit sources x 257, so
// 16-bit PNGs keep their precision) and 0/1 masks, read from a folder
// (data/folders.h) or generated (data/synthetic.h). A set whose values are
// all whole 8-bit steps (8-bit sources at their own size) is stored in 8
// bits: 2 bytes a gray pixel with its mask instead of 3 (the BAGLS training
// set: ~15 GB instead of ~22).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace mixseg {

struct Dataset {
  int h = 0, w = 0, channels = 1;
  std::vector<std::string> names;  // file stem or synthetic index
  // The image values, size() * h * w * channels, in one of the two: 8 bits
  // (v, meaning v * 257 on the 16-bit scale) or 16 bits (0..65535).
  std::vector<uint8_t> images8;
  std::vector<uint16_t> images16;
  std::vector<uint8_t> masks;  // size() * h * w, 0 or 1

  size_t size() const { return names.size(); }
  size_t pixels() const { return size_t(h) * w; }
  size_t image_values() const { return pixels() * size_t(channels); }
  bool sixteen_bit() const { return !images16.empty(); }
  // Value k of image i on the 16-bit scale.
  uint16_t value(size_t i, size_t k) const {
    const size_t at = i * image_values() + k;
    return sixteen_bit() ? images16[at] : uint16_t(images8[at] * 257u);
  }
  std::vector<uint16_t> image16(size_t i) const;  // image i on the 16-bit scale
  // Images [first, first + count) as network input: f32 in [0, 1], NHWC.
  void input_f32(size_t first, size_t count, float* out) const;
  const uint8_t* mask(size_t i) const { return masks.data() + i * pixels(); }
};

// Values on the 16-bit scale (or 8-bit values v, meaning v * 257) to network
// input in [0, 1]: v16 / 65535, the same floats for both.
void to_input(const uint16_t* values, size_t n, float* out);
void to_input(const uint8_t* values, size_t n, float* out);

// Picks the items at the given indices.
Dataset subset(const Dataset& d, const std::vector<size_t>& idx);

// A seeded split: returns (train, validation) with round(fraction * n)
// validation items (at least 1 if fraction > 0), each in the set's order.
// From an rvalue the training set is the given one, compacted in place (a
// large set is not held twice).
std::pair<Dataset, Dataset> split(const Dataset& d, double val_fraction, uint64_t seed);
std::pair<Dataset, Dataset> split(Dataset&& d, double val_fraction, uint64_t seed);

// Resizes an image of c interleaved channels (bilinear, half-pixel centres;
// integer results are rounded) or a mask (nearest). T is uint8_t, uint16_t
// or float.
template <class T>
std::vector<T> resize_bilinear(const T* src, int sh, int sw, int dh, int dw, int c = 1);
std::vector<uint8_t> resize_nearest(const uint8_t* src, int sh, int sw, int dh, int dw);

}  // namespace mixseg
