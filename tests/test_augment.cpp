// Augmentation: each transform moves image and mask together (checked on a
// sample whose image is a function of its mask and position), intensity
// transforms leave the mask alone, everything is reproducible per seed, and
// a disabled config changes nothing.
#include <gtest/gtest.h>

#include <array>
#include <cmath>
#include <numeric>

#include "data/augment.h"
#include "test_util.h"

using namespace mixseg;

namespace {

struct Sample {
  int h, w;
  std::vector<float> image;
  std::vector<uint8_t> mask;
};

// An off-centre blob as the mask; the image encodes each pixel's position
// (so a geometric transform is recognisable) and is bright on the mask.
Sample make_sample(int h, int w) {
  Sample s{h, w, std::vector<float>(size_t(h) * w), std::vector<uint8_t>(size_t(h) * w)};
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x) {
      const double dy = (y - 0.3 * h) / (0.2 * h), dx = (x - 0.6 * w) / (0.15 * w);
      s.mask[size_t(y) * w + x] = dy * dy + dx * dx < 1.0;
      s.image[size_t(y) * w + x] = float(0.5 * (y * w + x) / double(h * w));
    }
  return s;
}

// rotate_scale by its definition: the inverse map per pixel, the mask's
// nearest neighbour by lround, bilinear taps checked one by one.
void rotate_scale_reference(int h, int w, int ch, double degrees, double scale, float* image, uint8_t* mask) {
  const std::vector<float> img(image, image + size_t(h) * w * size_t(ch));
  const std::vector<uint8_t> msk(mask, mask + size_t(h) * w);
  const double a = degrees * 3.14159265358979323846 / 180.0, ca = std::cos(a) / scale, sa = std::sin(a) / scale;
  const double cy = (h - 1) / 2.0, cx = (w - 1) / 2.0;
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x) {
      const double dy = y - cy, dx = x - cx;
      const double sy = cy + ca * dy - sa * dx, sx = cx + sa * dy + ca * dx;
      const size_t o = size_t(y) * w + x;
      const long ny = std::lround(sy), nx = std::lround(sx);
      mask[o] = (ny >= 0 && ny < h && nx >= 0 && nx < w) ? msk[size_t(ny) * w + size_t(nx)] : 0;
      const int y0 = int(std::floor(sy)), x0 = int(std::floor(sx));
      const double fy = sy - y0, fx = sx - x0;
      for (int k = 0; k < ch; ++k) {
        auto at = [&](int yy, int xx) -> double {
          return (yy >= 0 && yy < h && xx >= 0 && xx < w) ? img[(size_t(yy) * w + size_t(xx)) * size_t(ch) + size_t(k)]
                                                          : 0.0;
        };
        image[o * size_t(ch) + size_t(k)] = float((1 - fy) * ((1 - fx) * at(y0, x0) + fx * at(y0, x0 + 1)) +
                                                  fy * ((1 - fx) * at(y0 + 1, x0) + fx * at(y0 + 1, x0 + 1)));
      }
    }
}

}  // namespace

// The fast rotate_scale (no per-tap checks inside the frame, no libm
// rounding) against the definition: masks equal, images within f32 rounding,
// over angles, scales (zooming out brings the border in), odd sizes and 1 or 3 channels.
TEST(Augment, RotateScaleMatchesItsDefinition) {
  Rng rng(11);
  for (auto [h, w, ch] : {std::array<int, 3>{64, 48, 1}, {17, 33, 3}, {5, 4, 1}, {31, 31, 3}})
    for (int t = 0; t < 6; ++t) {
      const double deg = t == 0 ? 0.0 : rng.uniform(-40, 40), sc = t == 0 ? 1.0 : rng.uniform(0.6, 1.4);
      Sample s = make_sample(h, w);
      std::vector<float> img(size_t(h) * w * size_t(ch));
      for (size_t i = 0; i < img.size(); ++i) img[i] = float(rng.uniform());
      std::vector<float> ref_img = img;
      std::vector<uint8_t> ref_mask = s.mask;
      rotate_scale(h, w, ch, deg, sc, img.data(), s.mask.data());
      rotate_scale_reference(h, w, ch, deg, sc, ref_img.data(), ref_mask.data());
      ASSERT_EQ(s.mask, ref_mask) << h << "x" << w << " deg " << deg << " scale " << sc;
      for (size_t i = 0; i < img.size(); ++i) ASSERT_NEAR(img[i], ref_img[i], 1e-6) << i << " deg " << deg;
    }
}

TEST(Augment, FlipsAndRotationsMoveImageAndMaskTogether) {
  const Sample s = make_sample(12, 12);
  const int n = 12;
  Sample a = s;
  flip_horizontal(n, n, 1, a.image.data(), a.mask.data());
  for (int y = 0; y < n; ++y)
    for (int x = 0; x < n; ++x) {
      ASSERT_EQ(a.image[size_t(y) * n + x], s.image[size_t(y) * n + (n - 1 - x)]);
      ASSERT_EQ(a.mask[size_t(y) * n + x], s.mask[size_t(y) * n + (n - 1 - x)]);
    }
  a = s;
  flip_vertical(n, n, 1, a.image.data(), a.mask.data());
  for (int y = 0; y < n; ++y)
    for (int x = 0; x < n; ++x) {
      ASSERT_EQ(a.image[size_t(y) * n + x], s.image[size_t(n - 1 - y) * n + x]);
      ASSERT_EQ(a.mask[size_t(y) * n + x], s.mask[size_t(n - 1 - y) * n + x]);
    }
  a = s;
  rotate90(n, n, 1, 1, a.image.data(), a.mask.data());
  for (int y = 0; y < n; ++y)
    for (int x = 0; x < n; ++x) {
      ASSERT_EQ(a.image[size_t(y) * n + x], s.image[size_t(x) * n + (n - 1 - y)]);
      ASSERT_EQ(a.mask[size_t(y) * n + x], s.mask[size_t(x) * n + (n - 1 - y)]);
    }
  // Four quarter turns, and 90 then 270, are the identity.
  a = s;
  for (int i = 0; i < 4; ++i) rotate90(n, n, 1, 1, a.image.data(), a.mask.data());
  EXPECT_EQ(a.image, s.image);
  rotate90(n, n, 1, 1, a.image.data(), a.mask.data());
  rotate90(n, n, 1, 3, a.image.data(), a.mask.data());
  EXPECT_EQ(a.mask, s.mask);
  EXPECT_EQ(a.image, s.image);
  // A quarter turn of a non-square image is refused; a half turn works.
  Sample r = make_sample(8, 12);
  test::expect_error_containing([&] { rotate90(8, 12, 1, 1, r.image.data(), r.mask.data()); }, "square");
  rotate90(8, 12, 1, 2, r.image.data(), r.mask.data());
  EXPECT_EQ(r.mask[0], make_sample(8, 12).mask[8 * 12 - 1]);
}

TEST(Augment, SmallRotationAndScalingKeepImageAndMaskAligned) {
  const int h = 64, w = 48;
  Sample s = make_sample(h, w);
  for (size_t i = 0; i < s.image.size(); ++i) s.image[i] = s.mask[i] ? 0.9f : 0.1f;  // image = f(mask)
  Sample a = s;
  rotate_scale(h, w, 1, 9.0, 1.08, a.image.data(), a.mask.data());
  // Away from the blob's edge (where bilinear blends), the image still says
  // what the mask says; the blob moved (the transform did something).
  size_t agree = 0, moved = 0, total = 0;
  for (size_t i = 0; i < a.image.size(); ++i) {
    if (a.image[i] > 0.2f && a.image[i] < 0.8f) continue;  // blended edge pixel
    ++total;
    agree += (a.image[i] > 0.5f) == (a.mask[i] == 1);
    moved += a.mask[i] != s.mask[i];
  }
  EXPECT_EQ(agree, total);
  EXPECT_GT(moved, 10u);
  // Scaling up grows the blob by about scale^2.
  const auto area = [](const std::vector<uint8_t>& m) { return std::accumulate(m.begin(), m.end(), 0.0); };
  Sample b = s;
  rotate_scale(h, w, 1, 0.0, 1.2, b.image.data(), b.mask.data());
  EXPECT_NEAR(area(b.mask) / area(s.mask), 1.44, 0.15);
  // The identity leaves both unchanged.
  Sample c = s;
  rotate_scale(h, w, 1, 0.0, 1.0, c.image.data(), c.mask.data());
  EXPECT_EQ(c.mask, s.mask);
  for (size_t i = 0; i < c.image.size(); ++i) ASSERT_NEAR(c.image[i], s.image[i], 1e-6);
}

TEST(Augment, IntensityTransformsChangeTheImageOnly) {
  AugmentConfig c;
  c.flips = c.rotate90 = false;
  c.affine_p = 0;
  const Sample s = make_sample(32, 32);
  double changed = 0;
  for (uint64_t i = 0; i < 8; ++i) {
    Sample a = s;
    Rng rng = augment_rng(1, 0, i);
    augment(c, rng, 32, 32, 1, a.image.data(), a.mask.data());
    EXPECT_EQ(a.mask, s.mask);
    for (size_t p = 0; p < a.image.size(); ++p) {
      ASSERT_GE(a.image[p], 0.0f);
      ASSERT_LE(a.image[p], 1.0f);
      changed += std::fabs(a.image[p] - s.image[p]);
    }
  }
  EXPECT_GT(changed / (8.0 * 32 * 32), 0.01);
  // Noise alone: the difference has about the configured standard deviation.
  AugmentConfig nc = c;
  nc.brightness = nc.contrast = nc.gamma = 0;
  nc.noise_std = 0.05;
  Sample a = s;
  for (auto& v : a.image) v = 0.5f;
  Rng rng = augment_rng(2, 0, 0);
  augment(nc, rng, 32, 32, 1, a.image.data(), a.mask.data());
  double ss = 0;
  for (float v : a.image) ss += (v - 0.5) * (v - 0.5);
  EXPECT_NEAR(std::sqrt(ss / a.image.size()), 0.05, 0.01);
}

// Gamma alone (through its interpolation table): every pixel is v^g for the
// one g the sample drew, within the table's error (~1e-4; an 8-bit step is 4e-3).
TEST(Augment, GammaIsAPowerWithinTheTableError) {
  AugmentConfig c;
  c.flips = c.rotate90 = false;
  c.affine_p = 0;
  c.brightness = c.contrast = c.noise_std = 0;
  c.gamma = 0.2;
  std::vector<float> v(4096);
  for (size_t i = 0; i < v.size(); ++i) v[i] = float(i) / float(v.size() - 1);
  for (uint64_t sample = 0; sample < 6; ++sample) {
    std::vector<float> out = v;
    std::vector<uint8_t> mask(v.size());
    Rng rng = augment_rng(3, 0, sample);
    augment(c, rng, 64, 64, 1, out.data(), mask.data());
    const double g = std::log(double(out[2048])) / std::log(double(v[2048]));
    EXPECT_GE(g, 0.8 - 1e-3);
    EXPECT_LE(g, 1.2 + 1e-3);
    for (size_t i = 0; i < v.size(); ++i) ASSERT_NEAR(out[i], std::pow(double(v[i]), g), 2e-4) << i << " g " << g;
  }
}

TEST(Augment, ReproducibleForASeedAndOffWhenDisabled) {
  const AugmentConfig c;
  const Sample s = make_sample(24, 24);
  Sample a = s, b = s, d = s;
  Rng r1 = augment_rng(5, 3, 17), r2 = augment_rng(5, 3, 17), r3 = augment_rng(5, 3, 18);
  augment(c, r1, 24, 24, 1, a.image.data(), a.mask.data());
  augment(c, r2, 24, 24, 1, b.image.data(), b.mask.data());
  augment(c, r3, 24, 24, 1, d.image.data(), d.mask.data());
  EXPECT_EQ(a.image, b.image);
  EXPECT_EQ(a.mask, b.mask);
  EXPECT_NE(a.image, d.image);
  AugmentConfig off;
  off.enabled = false;
  Sample e = s;
  Rng r4 = augment_rng(5, 3, 17);
  augment(off, r4, 24, 24, 1, e.image.data(), e.mask.data());
  EXPECT_EQ(e.image, s.image);
  EXPECT_EQ(e.mask, s.mask);
}

// RGB: geometric transforms move all channels of a pixel together, and the
// channels stay distinguishable (no mixing).
TEST(Augment, ChannelsMoveTogether) {
  const int n = 10, ch = 3;
  std::vector<float> img(size_t(n) * n * ch);
  std::vector<uint8_t> mask(size_t(n) * n);
  for (int p = 0; p < n * n; ++p) {
    for (int k = 0; k < ch; ++k) img[size_t(p) * ch + size_t(k)] = float(p) + 0.25f * float(k);
    mask[size_t(p)] = p % 7 == 0;
  }
  auto check = [&](const std::vector<float>& a, const std::vector<uint8_t>& m) {
    for (int p = 0; p < n * n; ++p) {
      const float base = a[size_t(p) * ch];
      ASSERT_EQ(std::fmod(base, 1.0f), 0.0f);  // channel 0 holds a source pixel index
      for (int k = 1; k < ch; ++k) ASSERT_EQ(a[size_t(p) * ch + size_t(k)], base + 0.25f * float(k));
      ASSERT_EQ(m[size_t(p)], int(base) % 7 == 0) << "mask and image moved differently at " << p;
    }
  };
  auto a = img;
  auto m = mask;
  flip_horizontal(n, n, ch, a.data(), m.data());
  check(a, m);
  flip_vertical(n, n, ch, a.data(), m.data());
  check(a, m);
  rotate90(n, n, ch, 1, a.data(), m.data());
  check(a, m);
  EXPECT_NE(a, img);
}
