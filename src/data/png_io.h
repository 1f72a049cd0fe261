// Minimal PNG io through libpng's simplified API: read any PNG (8- or 16-bit,
// gray, gray+alpha, RGB, palette) as 8-bit gray, write 8-bit gray. Errors
// name the file and say what libpng found wrong.
//
// Sample values: 8-bit files are read as they are (RGB converted to gray
// with libpng's sRGB luminance). 16-bit files are read as their raw 16-bit
// values (libpng's "linear" formats, no gamma conversion), kept in `wide`,
// and scaled exactly to 8 bits (round(v * 255 / 65535)) for `pixels`; a
// 16-bit label mask whose foreground is 1 therefore stays nonzero in `wide`.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace mixseg {

struct GrayImage {
  int h = 0, w = 0;
  std::vector<uint8_t> pixels;  // row-major, h * w
  std::vector<uint16_t> wide;   // 16-bit files only: the raw values (else empty)
};

// An image for the network: h x w x c (c = 1 gray or 3 RGB, interleaved),
// values on a 16-bit scale (8-bit files x 257, 16-bit files raw).
struct Image {
  int h = 0, w = 0, c = 1;
  int bit_depth = 8;  // of the file's samples (8 or 16)
  std::vector<uint16_t> values;
};
// Reads any PNG as `channels` (1: gray, RGB converted by libpng's sRGB
// luminance; 3: RGB, gray replicated); alpha is dropped.
Image read_png(const std::string& path, int channels);
Image decode_png(const uint8_t* data, size_t size, const std::string& name, int channels);

// A PNG's size and sample depth from its header alone (no pixels decoded).
struct PngInfo {
  int h = 0, w = 0;
  int bit_depth = 8;  // 8 or 16, as read_png reads it
};
PngInfo read_png_info(const std::string& path);

GrayImage read_png_gray(const std::string& path);
// The same from bytes in memory (name only names the source in errors).
GrayImage decode_png_gray(const uint8_t* data, size_t size, const std::string& name);
// Writes atomically (temp file, then rename), so a failure leaves no partial file.
void write_png_gray(const std::string& path, const GrayImage& img);

}  // namespace mixseg
