// PNG read/write (see png_io.h).
#include "data/png_io.h"

#include <png.h>

#include <cstdio>
#include <cstring>

#include "core/error.h"
#include "core/file_util.h"

namespace mixseg {

GrayImage read_png_gray(const std::string& path) {
  const std::vector<uint8_t> bytes = read_file_bytes(path);
  return decode_png_gray(bytes.data(), bytes.size(), path);
}

namespace {

// libpng's simplified reader over the bytes, header read; throws naming the
// source when it is not a PNG or too large to hold.
png_image begin_read(const uint8_t* data, size_t size, const std::string& name) {
  png_image img;
  std::memset(&img, 0, sizeof img);
  img.version = PNG_IMAGE_VERSION;
  if (!png_image_begin_read_from_memory(&img, data, size)) fail("{}: not a readable PNG ({})", name, img.message);
  if (size_t(img.height) * img.width > (size_t(1) << 28)) {
    png_image_free(&img);
    fail("{}: image of {}x{} is too large", name, img.height, img.width);
  }
  return img;
}

void finish_read(png_image& img, void* pixels, const std::string& name) {
  if (!png_image_finish_read(&img, nullptr, pixels, 0, nullptr)) fail("{}: corrupt PNG ({})", name, img.message);
}

}  // namespace

Image decode_png(const uint8_t* data, size_t size, const std::string& name, int channels) {
  if (channels != 1 && channels != 3) fail("{}: images are read with 1 or 3 channels, not {}", name, channels);
  png_image img = begin_read(data, size, name);
  const bool sixteen = (img.format & PNG_FORMAT_FLAG_LINEAR) != 0;
  if (sixteen)
    img.format = channels == 1 ? PNG_FORMAT_LINEAR_Y : PNG_FORMAT_LINEAR_RGB;
  else
    img.format = channels == 1 ? PNG_FORMAT_GRAY : PNG_FORMAT_RGB;
  Image out;
  out.h = int(img.height);
  out.w = int(img.width);
  out.c = channels;
  out.bit_depth = sixteen ? 16 : 8;
  const size_t n = size_t(img.height) * img.width * size_t(channels);
  out.values.resize(n);
  if (sixteen) {
    finish_read(img, out.values.data(), name);
  } else {
    std::vector<uint8_t> v8(n);
    finish_read(img, v8.data(), name);
    for (size_t i = 0; i < n; ++i) out.values[i] = uint16_t(v8[i] * 257);
  }
  return out;
}

GrayImage decode_png_gray(const uint8_t* data, size_t size, const std::string& name) {
  png_image img = begin_read(data, size, name);
  if ((img.format & PNG_FORMAT_FLAG_LINEAR) == 0) {  // 8-bit: read as 8-bit gray directly
    img.format = PNG_FORMAT_GRAY;
    GrayImage out{int(img.height), int(img.width), std::vector<uint8_t>(size_t(img.height) * img.width), {}};
    finish_read(img, out.pixels.data(), name);
    return out;
  }
  png_image_free(&img);
  Image wide = decode_png(data, size, name, 1);
  GrayImage out{wide.h, wide.w, std::vector<uint8_t>(wide.values.size()), {}};
  // Scaled to 8 bits, rounded to nearest.
  for (size_t i = 0; i < wide.values.size(); ++i)
    out.pixels[i] = uint8_t((uint32_t(wide.values[i]) * 255 + 32767) / 65535);
  out.wide = std::move(wide.values);
  return out;
}

PngInfo read_png_info(const std::string& path) {
  png_image img;
  std::memset(&img, 0, sizeof img);
  img.version = PNG_IMAGE_VERSION;
  if (!png_image_begin_read_from_file(&img, path.c_str())) fail("{}: not a readable PNG ({})", path, img.message);
  const PngInfo info{int(img.height), int(img.width), (img.format & PNG_FORMAT_FLAG_LINEAR) != 0 ? 16 : 8};
  png_image_free(&img);
  return info;
}

Image read_png(const std::string& path, int channels) {
  const std::vector<uint8_t> bytes = read_file_bytes(path);
  return decode_png(bytes.data(), bytes.size(), path, channels);
}

void write_png_gray(const std::string& path, const GrayImage& in) {
  if (in.h <= 0 || in.w <= 0 || in.pixels.size() != size_t(in.h) * in.w)
    fail("{}: cannot write an image of {}x{} with {} pixels", path, in.h, in.w, in.pixels.size());
  png_image img;
  std::memset(&img, 0, sizeof img);
  img.version = PNG_IMAGE_VERSION;
  img.width = png_uint_32(in.w);
  img.height = png_uint_32(in.h);
  img.format = PNG_FORMAT_GRAY;
  write_atomically(path, [&](const std::string& tmp) {
    if (!png_image_write_to_file(&img, tmp.c_str(), 0, in.pixels.data(), 0, nullptr))
      fail("{}: cannot write PNG ({})", path, img.message);
  });
}

}  // namespace mixseg
