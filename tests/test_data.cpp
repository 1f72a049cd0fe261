// Data: PNG io (8-bit gray round trip, RGB and 16-bit read as gray), the
// BAGLS folder reader and its errors (each names the file), seeded splits,
// resizing, and the synthetic generator (deterministic, exact masks).
#include <gtest/gtest.h>
#include <png.h>

#include <cstring>
#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "core/host_memory.h"
#include "core/shape_check.h"
#include "data/dataset.h"
#include "data/folders.h"
#include "data/loader.h"
#include "data/npy.h"
#include "data/png_io.h"
#include "data/synthetic.h"
#include "test_util.h"
#include "train/safetensors.h"

using namespace mixseg;
using mixseg::test::temp_dir;
namespace fs = std::filesystem;

namespace {

GrayImage gradient(int h, int w) {
  GrayImage g{h, w, std::vector<uint8_t>(size_t(h) * w), {}};
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x) g.pixels[size_t(y) * w + x] = uint8_t((x * 7 + y * 13) % 256);
  return g;
}

// The gradient thresholded at 100: 0 or 255.
GrayImage binary_mask(int h, int w) {
  GrayImage m = gradient(h, w);
  for (auto& v : m.pixels) v = v > 100 ? 255 : 0;
  return m;
}

// Writes a PNG in another format (RGB 8-bit, or gray 16-bit linear) through libpng directly.
void write_png_format(const std::string& path, int h, int w, png_uint_32 format, const void* data) {
  png_image img;
  std::memset(&img, 0, sizeof img);
  img.version = PNG_IMAGE_VERSION;
  img.width = png_uint_32(w);
  img.height = png_uint_32(h);
  img.format = format;
  ASSERT_TRUE(png_image_write_to_file(&img, path.c_str(), 0, data, 0, nullptr)) << img.message;
}


}  // namespace

TEST(Png, GrayRoundTripIsExact) {
  const fs::path dir = temp_dir("png");
  const GrayImage g = gradient(13, 21);
  write_png_gray((dir / "a.png").string(), g);
  const GrayImage r = read_png_gray((dir / "a.png").string());
  EXPECT_EQ(r.h, 13);
  EXPECT_EQ(r.w, 21);
  EXPECT_EQ(r.pixels, g.pixels);
  fs::remove_all(dir);
}

TEST(Png, RgbIsReadAsGray) {
  const fs::path dir = temp_dir("rgb");
  // Equal R, G and B: gray is that value.
  std::vector<uint8_t> rgb(4 * 3 * 3);
  for (size_t i = 0; i < 12; ++i) rgb[3 * i] = rgb[3 * i + 1] = rgb[3 * i + 2] = uint8_t(i * 20);
  write_png_format((dir / "rgb.png").string(), 3, 4, PNG_FORMAT_RGB, rgb.data());
  const GrayImage r = read_png_gray((dir / "rgb.png").string());
  ASSERT_EQ(r.pixels.size(), 12u);
  for (size_t i = 0; i < 12; ++i) EXPECT_NEAR(r.pixels[i], i * 20, 1) << i;
  fs::remove_all(dir);
}

// 16-bit files keep their raw values (no gamma conversion) and scale exactly
// to 8 bits; a 16-bit label mask with foreground 1 stays foreground.
TEST(Png, SixteenBitIsReadExactly) {
  const fs::path dir = temp_dir("png16");
  std::vector<uint16_t> v{0, 1, 257, 32768, 65535, 1000};
  write_png_format((dir / "g16.png").string(), 2, 3, PNG_FORMAT_LINEAR_Y, v.data());
  const GrayImage g = read_png_gray((dir / "g16.png").string());
  ASSERT_EQ(g.wide, v);
  const std::vector<uint8_t> expect{0, 0, 1, 128, 255, 4};
  EXPECT_EQ(g.pixels, expect);
  fs::remove(dir / "g16.png");
  // A label mask (0/1) in 16 bits and an image beside it.
  std::vector<uint16_t> labels(64, 0);
  for (size_t i = 0; i < 64; i += 3) labels[i] = 1;
  write_png_format((dir / "1_seg.png").string(), 8, 8, PNG_FORMAT_LINEAR_Y, labels.data());
  write_png_gray((dir / "1.png").string(), gradient(8, 8));
  const Dataset d = load_bagls_folder(dir.string(), 0, 0);
  const std::vector<uint8_t> mask = d.mask(0);
  for (size_t i = 0; i < 64; ++i) ASSERT_EQ(mask[i], labels[i]) << i;
  // More than two 16-bit values: not binary.
  write_png_format((dir / "1_seg.png").string(), 2, 3, PNG_FORMAT_LINEAR_Y, v.data());
  write_png_gray((dir / "1.png").string(), gradient(2, 3));
  mixseg::test::expect_error_containing([&] { load_bagls_folder(dir.string(), 0, 0); }, "1_seg.png: mask is not binary");
  fs::remove_all(dir);
}

TEST(Png, BadFilesNameTheFile) {
  const fs::path dir = temp_dir("bad");
  mixseg::test::expect_error_containing([&] { read_png_gray((dir / "none.png").string()); }, "none.png");
  std::ofstream((dir / "text.png").string()) << "not a png";
  mixseg::test::expect_error_containing([&] { read_png_gray((dir / "text.png").string()); }, "text.png");
  // A truncated PNG: a valid file cut in half.
  write_png_gray((dir / "full.png").string(), gradient(64, 64));
  std::ifstream in(dir / "full.png", std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::ofstream(dir / "cut.png", std::ios::binary) << bytes.substr(0, bytes.size() / 2);
  mixseg::test::expect_error_containing([&] { read_png_gray((dir / "cut.png").string()); }, "cut.png");
  fs::remove_all(dir);
}

TEST(Bagls, ReadsImagePairsAndResizes) {
  const fs::path dir = temp_dir("bagls");
  for (int i = 0; i < 3; ++i) {
    write_png_gray((dir / (std::to_string(i) + ".png")).string(), gradient(16, 8));
    GrayImage m = gradient(16, 8);
    for (auto& v : m.pixels) v = v > 100 ? 255 : 0;
    write_png_gray((dir / (std::to_string(i) + "_seg.png")).string(), m);
  }
  const Dataset d = load_bagls_folder(dir.string(), 0, 0);
  ASSERT_EQ(d.size(), 3u);
  EXPECT_EQ(d.h, 16);
  EXPECT_EQ(d.w, 8);
  EXPECT_EQ(d.names[0], "0");
  const std::vector<uint8_t> mask = d.mask(0);
  for (size_t i = 0; i < d.pixels(); ++i) ASSERT_EQ(mask[i], d.value(0, i) > 100 * 257 ? 1 : 0);  // 8-bit values x 257
  EXPECT_FALSE(d.sixteen_bit()) << "8-bit files at their own size: stored in 8 bits";
  const Dataset r = load_bagls_folder(dir.string(), 32, 16);
  EXPECT_TRUE(r.sixteen_bit()) << "resized: the interpolated values keep 16 bits";
  EXPECT_EQ(r.h, 32);
  for (size_t i = 0; i < r.size(); ++i)
    for (uint8_t v : r.mask(i)) ASSERT_LE(v, 1);
  fs::remove_all(dir);
}

// The parallel reader: items of several sizes land in their slots in the
// folder's order, each fitted as alone; of two bad files the first in that
// order is named.
TEST(Bagls, ManyItemsReadInParallelKeepTheirOrder) {
  const fs::path dir = temp_dir("bagls_many");
  const int n = 40;
  for (int i = 0; i < n; ++i) {
    const int h = 12 + 4 * (i % 3), w = 8 + 2 * (i % 5);
    GrayImage g = gradient(h, w);
    for (auto& v : g.pixels) v = uint8_t(v + i);  // each image its own
    write_png_gray((dir / fmt::format("{:02}.png", i)).string(), g);
    write_png_gray((dir / fmt::format("{:02}_seg.png", i)).string(), binary_mask(h, w));
  }
  const Dataset d = load_bagls_folder(dir.string(), 16, 12);
  ASSERT_EQ(d.size(), size_t(n));
  for (int i = 0; i < n; ++i) {
    ASSERT_EQ(d.names[size_t(i)], fmt::format("{:02}", i));
    const Image alone = read_png((dir / fmt::format("{:02}.png", i)).string(), 1);
    const std::vector<uint16_t> fitted = resize_bilinear(alone.values.data(), alone.h, alone.w, 16, 12, 1);
    EXPECT_EQ(d.image16(size_t(i)), fitted) << i;
  }
  std::ofstream((dir / "31.png").string()) << "garbage";
  std::ofstream((dir / "17_seg.png").string()) << "garbage";
  mixseg::test::expect_error_containing([&] { load_bagls_folder(dir.string(), 16, 12); }, "17_seg.png");
  fs::remove_all(dir);
}

TEST(Bagls, BadFoldersGiveErrorsNamingTheFile) {
  const fs::path dir = temp_dir("baglsbad");
  mixseg::test::expect_error_containing([&] { load_bagls_folder((dir / "nope").string(), 0, 0); }, "nope");
  mixseg::test::expect_error_containing([&] { load_bagls_folder(dir.string(), 0, 0); }, "no PNG images");
  write_png_gray((dir / "1_seg.png").string(), binary_mask(8, 8));
  mixseg::test::expect_error_containing([&] { load_bagls_folder(dir.string(), 0, 0); }, "1_seg.png: mask without its image");
  write_png_gray((dir / "1.png").string(), gradient(8, 16));
  mixseg::test::expect_error_containing([&] { load_bagls_folder(dir.string(), 0, 0); }, "1_seg.png: mask is 8x8 but its image");
  write_png_gray((dir / "1.png").string(), gradient(8, 8));
  write_png_gray((dir / "2.png").string(), gradient(8, 8));
  mixseg::test::expect_error_containing([&] { load_bagls_folder(dir.string(), 0, 0); }, "2.png: image without its mask");
  std::ofstream((dir / "2_seg.png").string()) << "garbage";
  mixseg::test::expect_error_containing([&] { load_bagls_folder(dir.string(), 0, 0); }, "2_seg.png");
  fs::remove_all(dir);
}

// 8-bit storage feeds the network exactly the floats the 16-bit scale does.
TEST(Dataset, EightBitValuesGiveTheSameInputAsTheirSixteenBitScale) {
  std::vector<uint8_t> v8(256);
  std::vector<uint16_t> v16(256);
  for (int v = 0; v < 256; ++v) v8[size_t(v)] = uint8_t(v), v16[size_t(v)] = uint16_t(v * 257);
  std::vector<float> a(256), b(256);
  to_input(v8.data(), 256, a.data());
  to_input(v16.data(), 256, b.data());
  EXPECT_EQ(a, b);
  EXPECT_EQ(a[255], 1.0f);
}

// Masks are held a bit a pixel, each starting on a byte: 13x7 = 91 pixels
// take 12 bytes; every pixel comes back from mask() and read() as stored,
// through a split in place.
TEST(Dataset, MasksAreHeldAsBits) {
  Dataset d;
  d.h = 13;
  d.w = 7;
  const size_t n = 5, px = d.pixels();
  d.names = {"a", "b", "c", "d", "e"};
  d.images8.assign(n * px, 0);
  d.mask_bits.resize(n * d.mask_bytes());
  ASSERT_EQ(d.mask_bytes(), 12u);
  std::vector<uint8_t> all(n * px);
  uint32_t state = 7;
  for (uint8_t& v : all) v = (state = state * 1664525u + 1013904223u) >> 31;
  for (size_t i = 0; i < n; ++i) d.set_mask(i, all.data() + i * px);
  for (size_t i = 0; i < n; ++i)
    EXPECT_EQ(d.mask(i), std::vector<uint8_t>(all.begin() + long(i * px), all.begin() + long((i + 1) * px))) << i;
  std::vector<float> input(n * px);
  std::vector<uint8_t> read(n * px);
  d.read(0, n, input.data(), read.data());
  EXPECT_EQ(read, all);
  auto [train, val] = split(std::move(d), 0.4, 3);
  for (const Dataset* part : {&train, &val})
    for (size_t k = 0; k < part->size(); ++k) {
      const size_t i = size_t(part->names[k][0] - 'a');
      EXPECT_EQ(part->mask(k), std::vector<uint8_t>(all.begin() + long(i * px), all.begin() + long((i + 1) * px)));
    }
}

TEST(Dataset, SplitIsSeededAndDisjoint) {
  const Dataset d = make_synthetic({16, 16, 1, 0.0}, 50);
  auto [a, b] = split(d, 0.2, 7);
  auto [a2, b2] = split(d, 0.2, 7);
  auto [a3, b3] = split(d, 0.2, 8);
  EXPECT_EQ(a.size(), 40u);
  EXPECT_EQ(b.size(), 10u);
  EXPECT_EQ(b.names, b2.names);
  EXPECT_NE(b.names, b3.names);
  for (const auto& n : b.names) EXPECT_EQ(std::find(a.names.begin(), a.names.end(), n), a.names.end());
  EXPECT_THROW(split(d, 1.0, 0), Error);
  // Every item keeps its image and mask; in place (from an rvalue) gives the same sets.
  for (const Dataset* part : {&a, &b})
    for (size_t k = 0; k < part->size(); ++k) {
      const size_t i = size_t(std::find(d.names.begin(), d.names.end(), part->names[k]) - d.names.begin());
      ASSERT_LT(i, d.size());
      ASSERT_EQ(d.image16(i), part->image16(k));
      ASSERT_EQ(d.mask(i), part->mask(k));
    }
  auto [a4, b4] = split(Dataset(d), 0.2, 7);
  EXPECT_EQ(a4.names, a.names);
  EXPECT_EQ(a4.images8, a.images8);
  EXPECT_EQ(a4.mask_bits, a.mask_bits);
  EXPECT_EQ(b4.images8, b.images8);
  EXPECT_FALSE(a.sixteen_bit());  // synthetic frames are 8-bit, and stay so through the split
}

namespace {

// A BAGLS folder of n items of several sizes (the first at h x w) and depths
// (every fifth image 16-bit), for the streamed-set tests.
std::vector<DataItem> mixed_folder(const fs::path& dir, int n, int h, int w) {
  for (int i = 0; i < n; ++i) {
    const int ih = i == 0 ? h : h - 4 + 2 * (i % 3), iw = i == 0 ? w : w - 2 + 2 * (i % 2);
    GrayImage g = gradient(ih, iw);
    for (auto& v : g.pixels) v = uint8_t(v + 3 * i);
    const std::string image = (dir / fmt::format("{:02}.png", i)).string();
    if (i % 5 == 4) {
      std::vector<uint16_t> wide(g.pixels.size());
      for (size_t k = 0; k < wide.size(); ++k) wide[k] = uint16_t(g.pixels[k] * 251 + i);
      write_png_format(image, ih, iw, PNG_FORMAT_LINEAR_Y, wide.data());
    } else {
      write_png_gray(image, g);
    }
    write_png_gray((dir / fmt::format("{:02}_seg.png", i)).string(), binary_mask(ih, iw));
  }
  DataSource src;
  src.dir = dir.string();
  return list_items(src);
}

// All of a set's items as read: network input and masks.
std::pair<std::vector<float>, std::vector<uint8_t>> read_all(const Dataset& d) {
  std::vector<float> input(d.size() * d.image_values());
  std::vector<uint8_t> masks(d.size() * d.pixels());
  d.read(0, d.size(), input.data(), masks.data());
  return {input, masks};
}

}  // namespace

// A streamed set holds no pixels and reads exactly what the loaded set holds,
// through splits and subsets, resized or padded; load_bytes is what loading takes.
TEST(Streamed, ReadsWhatTheLoadedSetHolds) {
  const fs::path dir = temp_dir("streamed");
  const std::vector<DataItem> items = mixed_folder(dir, 11, 16, 12);
  for (Fit fit : {Fit::resize, Fit::pad}) {
    const int h = fit == Fit::pad ? 20 : 16, w = fit == Fit::pad ? 14 : 12;
    const Dataset loaded = load_items(items, h, w, -1, fit);
    const Dataset streamed = stream_items(items, h, w, -1, fit);
    ASSERT_TRUE(streamed.streamed());
    EXPECT_FALSE(loaded.streamed());
    EXPECT_TRUE(streamed.images8.empty() && streamed.images16.empty() && streamed.mask_bits.empty());
    EXPECT_EQ(streamed.names, loaded.names);
    EXPECT_EQ(streamed.h, h);
    EXPECT_EQ(read_all(streamed), read_all(loaded)) << (fit == Fit::pad ? "padded" : "resized");
    auto [lt, lv] = split(loaded, 0.3, 5);
    auto [st, sv] = split(stream_items(items, h, w, -1, fit), 0.3, 5);  // in place, as train splits
    EXPECT_EQ(st.names, lt.names);
    EXPECT_EQ(sv.names, lv.names);
    EXPECT_EQ(read_all(st), read_all(lt));
    EXPECT_EQ(read_all(sv), read_all(lv));
    EXPECT_EQ(read_all(subset(st, {4, 0, 2})), read_all(subset(lt, {4, 0, 2})));
    EXPECT_EQ(load_bytes(items, h, w, fit, 1),
              loaded.images8.size() + 2 * loaded.images16.size() + loaded.mask_bits.size());
  }
  // A set of 8-bit files at their own size is held in 8 bits: 1 byte a value.
  const std::vector<DataItem> eight(items.begin(), items.begin() + 1);
  const Dataset one = load_items(eight, 0, 0);
  EXPECT_EQ(load_bytes(eight, 0, 0, Fit::resize, 3), 16u * 12 * 3 + 16 * 12 / 8);
  EXPECT_EQ(load_bytes(eight, 0, 0, Fit::resize, 1), one.images8.size() + one.mask_bits.size());
  EXPECT_THROW(stream_items(eight, 0, 0).mask(0), Error) << "a streamed set's masks come through read()";
  fs::remove_all(dir);
}

// Streaming checks every file's header when it starts (a broken folder fails
// then, naming the file); a file broken later fails its read, naming the file,
// and the loader hands that error to the trainer.
TEST(Streamed, BrokenFilesAreNamedWhenStreamingStartsOrWhenRead) {
  const fs::path dir = temp_dir("streamed_bad");
  std::vector<DataItem> items = mixed_folder(dir, 6, 16, 12);
  write_png_gray((dir / "03_seg.png").string(), binary_mask(4, 4));
  mixseg::test::expect_error_containing([&] { stream_items(items, 16, 12); }, "03_seg.png: mask is 4x4 but its image");
  std::ofstream((dir / "02.png").string()) << "garbage";
  mixseg::test::expect_error_containing([&] { stream_items(items, 16, 12); }, "02.png: not a readable PNG");
  mixseg::test::expect_error_containing([&] { stream_items(items, 13, 12, -1, Fit::pad); }, "larger than the input");
  items = mixed_folder(dir, 6, 16, 12);
  const Dataset d = stream_items(items, 16, 12);
  std::vector<float> input(d.size() * d.image_values());
  std::vector<uint8_t> masks(d.size() * d.pixels());
  d.read(0, d.size(), input.data(), masks.data());
  const GrayImage now = read_png_gray((dir / "04.png").string());
  write_png_gray((dir / "04_seg.png").string(), gradient(now.h, now.w));
  mixseg::test::expect_error_containing([&] { d.read(0, d.size(), input.data(), masks.data()); },
                                        "04_seg.png: mask is not binary");
  write_png_gray((dir / "04_seg.png").string(), binary_mask(now.h, now.w));
  std::ofstream((dir / "01.png").string()) << "garbage";
  mixseg::test::expect_error_containing([&] { d.read(0, d.size(), input.data(), masks.data()); },
                                        "01.png: not a readable PNG");
  BatchLoader loader(d, AugmentConfig{}, 1, 2, 1);
  loader.start_epoch(0, 0, 3);
  mixseg::test::expect_error_containing(
      [&] {
        for (int s = 0; s < 3; ++s) loader.next();
      },
      "01.png: not a readable PNG");
  fs::remove_all(dir);
}

// What --stream-data auto weighs a set against: MemAvailable, capped by a
// cgroup's limit less its use (v2 "max" is no limit; v1's "unlimited" is a
// huge number); this machine's own figure is read and plausible.
TEST(HostMemory, AvailableIsMemAvailableCappedByTheGroupLimit) {
  const std::string meminfo = "MemTotal:       24684096 kB\nMemFree:  1000 kB\nMemAvailable:   2000000 kB\n";
  EXPECT_EQ(available_memory_bytes(meminfo, "", ""), 2000000u * 1024);
  EXPECT_EQ(available_memory_bytes(meminfo, "max\n", "5000\n"), 2000000u * 1024);
  EXPECT_EQ(available_memory_bytes(meminfo, "9223372036854771712\n", "267423744\n"), 2000000u * 1024);
  EXPECT_EQ(available_memory_bytes(meminfo, "1073741824\n", "73741824\n"), 1000000000u);
  EXPECT_EQ(available_memory_bytes(meminfo, "1000\n", "5000\n"), 0u) << "a group over its limit has nothing left";
  EXPECT_EQ(available_memory_bytes("", "1073741824", "0"), 1073741824u) << "no meminfo: the group's figure";
  EXPECT_EQ(available_memory_bytes("", "", ""), 0u);
  const size_t here = available_memory_bytes();
  EXPECT_GT(here, size_t(64) << 20);
  EXPECT_LT(here, size_t(1) << 50);
}

namespace {

// Bilinear resizing as first written: the weights per pixel and channel in
// double, integers rounded by lround. The resizer must give these values.
template <class T>
std::vector<T> resize_bilinear_per_pixel(const T* src, int sh, int sw, int dh, int dw, int c) {
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
        const double v =
            (1 - ay) * ((1 - ax) * at(y0, x0) + ax * at(y0, x1)) + ay * ((1 - ax) * at(y1, x0) + ax * at(y1, x1));
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

template <class T>
void expect_resize_matches_per_pixel(int sh, int sw, int dh, int dw, int c, uint32_t seed) {
  std::vector<T> src(size_t(sh) * sw * size_t(c));
  uint32_t state = seed;
  for (T& v : src) {
    state = state * 1664525u + 1013904223u;
    v = std::is_floating_point_v<T> ? T(float(state >> 8) / float(1 << 24)) : T(state >> (32 - 8 * sizeof(T)));
  }
  EXPECT_EQ(resize_bilinear(src.data(), sh, sw, dh, dw, c), resize_bilinear_per_pixel(src.data(), sh, sw, dh, dw, c))
      << sh << "x" << sw << " -> " << dh << "x" << dw << " c=" << c << " " << sizeof(T) << "-byte values";
}

}  // namespace

// Halving (every value an exact half: rounding ties), doubling, odd factors,
// one row or column, gray and RGB, for every value type the resizer takes.
TEST(Dataset, ResizeGivesThePerPixelFormulasValues) {
  const int shapes[][4] = {{32, 16, 16, 8}, {8, 6, 16, 12}, {13, 7, 5, 11},
                           {1, 9, 4, 3},    {9, 1, 2, 5},   {512, 512, 512, 256}};
  uint32_t seed = 1;
  for (const auto& s : shapes)
    for (int c : {1, 3}) {
      expect_resize_matches_per_pixel<uint8_t>(s[0], s[1], s[2], s[3], c, seed++);
      expect_resize_matches_per_pixel<uint16_t>(s[0], s[1], s[2], s[3], c, seed++);
      expect_resize_matches_per_pixel<float>(s[0], s[1], s[2], s[3], c, seed++);
    }
}

TEST(Dataset, ResizeKeepsConstantsAndMasksBinary) {
  std::vector<uint8_t> flat(6 * 4, 77);
  for (uint8_t v : resize_bilinear(flat.data(), 6, 4, 13, 9)) EXPECT_EQ(v, 77);
  std::vector<uint8_t> m = {0, 1, 1, 0};
  const auto up = resize_nearest(m.data(), 2, 2, 4, 4);
  EXPECT_EQ(up, (std::vector<uint8_t>{0, 0, 1, 1, 0, 0, 1, 1, 1, 1, 0, 0, 1, 1, 0, 0}));
}

TEST(Synthetic, DeterministicWithExactMasksAndVariety) {
  const SyntheticConfig c{64, 48, 5, 0.1};
  const Dataset a = make_synthetic(c, 40), b = make_synthetic(c, 40);
  EXPECT_EQ(a.images8, b.images8);
  EXPECT_EQ(a.mask_bits, b.mask_bits);
  const Dataset other = make_synthetic({64, 48, 6, 0.1}, 40);
  EXPECT_NE(a.images8, other.images8);
  size_t empty = 0;
  std::vector<double> fractions;
  for (size_t i = 0; i < a.size(); ++i) {
    double fg = 0, in_sum = 0, out_sum = 0;
    const std::vector<uint8_t> mask = a.mask(i);
    for (size_t p = 0; p < a.pixels(); ++p) {
      ASSERT_LE(mask[p], 1);
      fg += mask[p];
      (mask[p] ? in_sum : out_sum) += a.value(i, p);
    }
    if (fg == 0) {
      ++empty;
      continue;
    }
    fractions.push_back(fg / double(a.pixels()));
    // The glottis is dark against the tissue around it.
    EXPECT_LT(in_sum / fg, out_sum / (double(a.pixels()) - fg) - 40) << "frame " << i;
  }
  EXPECT_GE(empty, 1u);   // some closed frames at 10%
  EXPECT_LE(empty, 10u);
  const auto [lo, hi] = std::minmax_element(fractions.begin(), fractions.end());
  EXPECT_LT(*lo, 0.02);  // openings vary from a sliver ...
  EXPECT_GT(*hi, 0.04);  // ... to wide open
}

// nnU-Net-like folders: imagesTr/CASE_0000.png with labelsTr/CASE.png (0/1
// labels), imagesTs/ ignored; errors name the file.
TEST(Folders, NnUNetLayoutIsRecognisedAndRead) {
  const fs::path dir = temp_dir("nnunet");
  fs::create_directories(dir / "imagesTr");
  fs::create_directories(dir / "labelsTr");
  fs::create_directories(dir / "imagesTs");
  for (const char* c : {"case_001", "case_002"}) {
    write_png_gray((dir / "imagesTr" / (std::string(c) + "_0000.png")).string(), gradient(8, 16));
    GrayImage m = binary_mask(8, 16);
    for (auto& v : m.pixels) v = v ? 1 : 0;  // nnU-Net stores labels as 0/1
    write_png_gray((dir / "labelsTr" / (std::string(c) + ".png")).string(), m);
  }
  write_png_gray((dir / "imagesTs" / "case_900_0000.png").string(), gradient(8, 16));
  FolderLayout layout;
  const auto items = list_items({dir.string(), "", "", -1}, &layout);
  EXPECT_EQ(layout, FolderLayout::nnunet);
  ASSERT_EQ(items.size(), 2u);
  EXPECT_EQ(items[0].stem, "case_001");
  const Dataset d = load_dataset({dir.string(), "", "", -1}, 0, 0);
  ASSERT_EQ(d.size(), 2u);
  const std::vector<uint8_t> mask = d.mask(1);
  for (size_t i = 0; i < d.pixels(); ++i) ASSERT_EQ(mask[i], d.value(1, i) > 100 * 257 ? 1 : 0);
  fs::remove(dir / "labelsTr" / "case_002.png");
  mixseg::test::expect_error_containing([&] { list_items({dir.string(), "", "", -1}); },
                                        "case_002_0000.png: image without its mask");
  fs::remove_all(dir);
}

TEST(Folders, ImageAndMaskFoldersMatchByStem) {
  const fs::path dir = temp_dir("pairs");
  fs::create_directories(dir / "img");
  fs::create_directories(dir / "msk");
  for (const char* c : {"b", "a", "c"}) {
    write_png_gray((dir / "img" / (std::string(c) + ".png")).string(), gradient(8, 8));
    write_png_gray((dir / "msk" / (std::string(c) + ".png")).string(), binary_mask(8, 8));
  }
  FolderLayout layout;
  const DataSource src{"", (dir / "img").string(), (dir / "msk").string(), -1};
  const auto items = list_items(src, &layout);
  EXPECT_EQ(layout, FolderLayout::image_mask_dirs);
  ASSERT_EQ(items.size(), 3u);
  EXPECT_EQ(items[0].stem, "a");
  EXPECT_EQ(load_dataset(src, 16, 16).size(), 3u);
  write_png_gray((dir / "msk" / "d.png").string(), binary_mask(8, 8));
  mixseg::test::expect_error_containing([&] { list_items(src); }, "d.png: mask without its image");
  mixseg::test::expect_error_containing([&] { list_items({"", (dir / "img").string(), "", -1}); }, "masks");
  mixseg::test::expect_error_containing([&] { list_items({"x", (dir / "img").string(), "", -1}); }, "either");
  fs::remove_all(dir);
}

TEST(Folders, NonBinaryMasksNeedAThreshold) {
  const fs::path dir = temp_dir("nonbinary");
  write_png_gray((dir / "1.png").string(), gradient(8, 8));
  write_png_gray((dir / "1_seg.png").string(), gradient(8, 8));  // many distinct values
  mixseg::test::expect_error_containing([&] { load_bagls_folder(dir.string(), 0, 0); },
                                        "1_seg.png: mask is not binary");
  const Dataset d = load_dataset({dir.string(), "", "", 100}, 0, 0);
  const GrayImage g = gradient(8, 8);
  const std::vector<uint8_t> mask = d.mask(0);
  for (size_t i = 0; i < d.pixels(); ++i) ASSERT_EQ(mask[i], g.pixels[i] > 100 ? 1 : 0);
  // Two values, neither of them 0 is still binary: nonzero is foreground.
  EXPECT_EQ(binarize_mask({7, 9, 7}, -1, "m.png"), (std::vector<uint8_t>{1, 1, 1}));
  EXPECT_EQ(binarize_mask({0, 255, 0}, -1, "m.png"), (std::vector<uint8_t>{0, 1, 0}));
  fs::remove_all(dir);
}

// --pad: smaller images are centred on a zero canvas with their masks;
// larger ones are refused naming the file.
TEST(Folders, PaddingCentresSmallerImagesAndRefusesLargerOnes) {
  const fs::path dir = temp_dir("pad");
  write_png_gray((dir / "a.png").string(), gradient(4, 6));
  write_png_gray((dir / "a_seg.png").string(), binary_mask(4, 6));
  const Dataset d = load_dataset({dir.string(), "", "", -1, Fit::pad}, 8, 10);
  ASSERT_EQ(d.size(), 1u);
  const GrayImage g = gradient(4, 6), m = binary_mask(4, 6);
  const std::vector<uint8_t> mask = d.mask(0);
  for (int y = 0; y < 8; ++y)
    for (int x = 0; x < 10; ++x) {
      const bool inside = y >= 2 && y < 6 && x >= 2 && x < 8;
      const size_t src = size_t(y - 2) * 6 + size_t(x - 2);
      ASSERT_EQ(d.value(0, size_t(y) * 10 + x), inside ? g.pixels[src] * 257 : 0) << y << "," << x;
      ASSERT_EQ(mask[size_t(y) * 10 + x], inside ? (m.pixels[src] != 0) : 0);
    }
  mixseg::test::expect_error_containing([&] { load_dataset({dir.string(), "", "", -1, Fit::pad}, 2, 10); },
                                        "a.png: image of 4x6 is larger");
  fs::remove_all(dir);
}

// --channels 3: RGB files read as RGB (gray ones replicated), 16-bit files at
// full precision; the dataset holds interleaved channels.
TEST(Folders, RgbAndSixteenBitImagesKeepChannelsAndPrecision) {
  const fs::path dir = temp_dir("rgbdata");
  std::vector<uint8_t> rgb(2 * 3 * 3);
  for (size_t i = 0; i < rgb.size(); ++i) rgb[i] = uint8_t(i * 10);
  write_png_format((dir / "a.png").string(), 2, 3, PNG_FORMAT_RGB, rgb.data());
  write_png_gray((dir / "a_seg.png").string(), binary_mask(2, 3));
  std::vector<uint16_t> g16{0, 1, 2, 60000, 65535, 12345};
  write_png_format((dir / "b.png").string(), 2, 3, PNG_FORMAT_LINEAR_Y, g16.data());
  write_png_gray((dir / "b_seg.png").string(), binary_mask(2, 3));
  const Dataset d = load_dataset({dir.string(), "", "", -1, Fit::resize, 3}, 2, 3);
  ASSERT_EQ(d.channels, 3);
  ASSERT_EQ(d.images16.size(), 2u * 6 * 3);  // a 16-bit file in the set: all in 16 bits
  for (size_t i = 0; i < rgb.size(); ++i) EXPECT_EQ(d.value(0, i), rgb[i] * 257) << i;
  for (size_t p = 0; p < 6; ++p)
    for (int k = 0; k < 3; ++k) EXPECT_EQ(d.value(1, p * 3 + size_t(k)), g16[p]) << "16-bit gray replicated, raw";
  const Dataset g = load_dataset({dir.string(), "", "", -1, Fit::resize, 1}, 2, 3);
  ASSERT_EQ(g.channels, 1);
  for (size_t p = 0; p < 6; ++p) EXPECT_EQ(g.value(1, p), g16[p]) << "16-bit precision kept";
  fs::remove_all(dir);
}

// Shapes read from files: products that would wrap around size_t (2^40 x 2^24
// = 2^64, i.e. 0 elements, which a zero-byte payload would match) are refused.
TEST(FileShapes, OverflowingShapesAreRefused) {
  EXPECT_EQ(checked_numel({2, 3, 4}, 100), std::optional<size_t>(24));
  EXPECT_EQ(checked_numel({}, 100), std::optional<size_t>(1));
  EXPECT_EQ(checked_numel({0, 100}, 100), std::optional<size_t>(0));
  EXPECT_EQ(checked_numel({10, 10}, 100), std::optional<size_t>(100));
  EXPECT_FALSE(checked_numel({10, 11}, 100));
  EXPECT_FALSE(checked_numel({0, 101}, 100));
  EXPECT_FALSE(checked_numel({-1}, 100));
  EXPECT_FALSE(checked_numel({int64_t(1) << 40, int64_t(1) << 24}, size_t(1) << 40));

  auto bytes = [](const std::string& s) { return std::vector<uint8_t>(s.begin(), s.end()); };
  auto safetensors = [&](const std::string& shape) {
    const std::string header = R"({"t": {"dtype": "F32", "shape": )" + shape + R"(, "data_offsets": [0, 0]}})";
    std::string file(8, '\0');
    for (int i = 0; i < 8; ++i) file[size_t(i)] = char((header.size() >> (8 * i)) & 0xff);
    return bytes(file + header);
  };
  EXPECT_EQ(parse_safetensors(safetensors("[0, 3]"), "ok.safetensors").tensors.at("t").numel(), 0u);
  test::expect_error_containing([&] { parse_safetensors(safetensors("[1099511627776, 16777216]"), "wrap.safetensors"); },
                                "wrap.safetensors");

  auto npy = [&](const std::string& shape, size_t data_bytes) {
    std::string header = "{'descr': '<f4', 'fortran_order': False, 'shape': " + shape + ", }\n";
    const std::string len{char(header.size() & 0xff), char(header.size() >> 8)};
    return bytes(std::string("\x93NUMPY\x01\x00", 8) + len + header + std::string(data_bytes, '\0'));
  };
  const NpyArray a = parse_npy(npy("(2, 3)", 24), "ok.npy");
  EXPECT_EQ(a.shape, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(a.data.size(), 24u);
  test::expect_error_containing([&] { parse_npy(npy("(2, 3)", 20), "short.npy"); }, "short.npy: .npy data has 20 bytes");
  test::expect_error_containing([&] { parse_npy(npy("(1099511627776, 16777216)", 0), "wrap.npy"); },
                                "wrap.npy: .npy shape has too many elements");
  test::expect_error_containing([&] { parse_npy(npy("(99999999999999999999,)", 0), "long.npy"); }, "too large");
}
