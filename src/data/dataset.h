// An in-memory segmentation dataset: 8-bit gray images and 0/1 masks of one
// size, read from a folder (data/folders.h) or generated (data/synthetic.h).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace mixseg {

struct Dataset {
  int h = 0, w = 0;
  std::vector<std::string> names;  // file stem or synthetic index
  std::vector<uint8_t> images;     // size() * h * w, gray
  std::vector<uint8_t> masks;      // size() * h * w, 0 or 1

  size_t size() const { return names.size(); }
  size_t pixels() const { return size_t(h) * w; }
  const uint8_t* image(size_t i) const { return images.data() + i * pixels(); }
  const uint8_t* mask(size_t i) const { return masks.data() + i * pixels(); }
};

// Picks the items at the given indices.
Dataset subset(const Dataset& d, const std::vector<size_t>& idx);

// A seeded split: returns (train, validation) with round(fraction * n) validation items (at least 1 if fraction > 0).
std::pair<Dataset, Dataset> split(const Dataset& d, double val_fraction, uint64_t seed);

// Resizes a gray image (bilinear, half-pixel centres; 8-bit results are
// rounded) or a mask (nearest). T is uint8_t or float.
template <class T>
std::vector<T> resize_bilinear(const T* src, int sh, int sw, int dh, int dw);
std::vector<uint8_t> resize_nearest(const uint8_t* src, int sh, int sw, int dh, int dw);

}  // namespace mixseg
