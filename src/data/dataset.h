// A segmentation dataset: images of one size with 1 (gray) or 3 (RGB)
// interleaved channels on a 16-bit scale (8-bit sources x 257, so 16-bit
// PNGs keep their precision) and 0/1 masks, read from a folder
// (data/folders.h) or generated (data/synthetic.h). Held in memory, or
// streamed: a set too large for memory keeps only its file list, and each
// read decodes the item's files again (data/folders.h, stream_items). In
// memory, masks take a bit a pixel, and a set whose values are all whole
// 8-bit steps (8-bit sources at their own size) is stored in 8 bits: 1.125
// bytes a gray pixel with its mask instead of 2.125 (the BAGLS training
// set, 55,750 frames of 512x256: ~8.2 GB instead of ~15.5).
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace mixseg {

struct StreamedFiles;  // data/folders.h: the files of a streamed set and how they are fitted

struct Dataset {
  int h = 0, w = 0, channels = 1;
  std::vector<std::string> names;  // file stem or synthetic index
  // The image values, size() * h * w * channels, in one of the two: 8 bits
  // (v, meaning v * 257 on the 16-bit scale) or 16 bits (0..65535).
  std::vector<uint8_t> images8;
  std::vector<uint16_t> images16;
  // The masks, size() * mask_bytes(): pixel k of mask i is bit k % 8 of byte
  // i * mask_bytes() + k / 8 (each mask starts on a byte).
  std::vector<uint8_t> mask_bits;
  // A streamed set holds no values: item i is files->items[file_of[i]],
  // decoded from its files each time it is read.
  std::shared_ptr<const StreamedFiles> files;
  std::vector<size_t> file_of;

  size_t size() const { return names.size(); }
  bool streamed() const { return files != nullptr; }
  size_t pixels() const { return size_t(h) * w; }
  size_t image_values() const { return pixels() * size_t(channels); }
  size_t mask_bytes() const { return (pixels() + 7) / 8; }
  bool sixteen_bit() const { return !images16.empty(); }
  // Value k of image i on the 16-bit scale (a set in memory).
  uint16_t value(size_t i, size_t k) const {
    const size_t at = i * image_values() + k;
    return sixteen_bit() ? images16[at] : uint16_t(images8[at] * 257u);
  }
  std::vector<uint16_t> image16(size_t i) const;  // image i on the 16-bit scale (a set in memory)
  // Items [first, first + count): the images as network input (f32 in
  // [0, 1], NHWC) into `input` and, unless `masks` is null, the masks (0/1,
  // h * w each). A streamed set decodes the items in parallel; either way
  // the values are the same.
  void read(size_t first, size_t count, float* input, uint8_t* masks) const;
  void input_f32(size_t first, size_t count, float* out) const { read(first, count, out, nullptr); }
  std::vector<uint8_t> mask(size_t i) const;     // mask i, 0/1 a pixel (a set in memory)
  void set_mask(size_t i, const uint8_t* mask);  // stores mask i from 0/1 pixels (a set in memory)
};

// Values on the 16-bit scale (or 8-bit values v, meaning v * 257) to network
// input in [0, 1]: v16 / 65535, the same floats for both.
void to_input(const uint16_t* values, size_t n, float* out);
void to_input(const uint8_t* values, size_t n, float* out);

// Picks the items at the given indices (a streamed set stays streamed).
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
