// An in-memory segmentation dataset: images of one size with 1 (gray) or 3
// (RGB) interleaved channels on a 16-bit scale (8-bit sources x 257, so
// 16-bit PNGs keep their precision) and 0/1 masks, read from a folder
// (data/folders.h) or generated (data/synthetic.h).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace mixseg {

struct Dataset {
  int h = 0, w = 0, channels = 1;
  std::vector<std::string> names;  // file stem or synthetic index
  std::vector<uint16_t> images;    // size() * h * w * channels, 0..65535
  std::vector<uint8_t> masks;      // size() * h * w, 0 or 1

  size_t size() const { return names.size(); }
  size_t pixels() const { return size_t(h) * w; }
  size_t image_values() const { return pixels() * size_t(channels); }
  const uint16_t* image(size_t i) const { return images.data() + i * image_values(); }
  const uint8_t* mask(size_t i) const { return masks.data() + i * pixels(); }
};

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
