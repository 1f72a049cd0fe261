// Augmentation: each transform moves image and mask together (checked on a
// sample whose image is a function of its mask and position), intensity
// transforms leave the mask alone, everything is reproducible per seed, and
// a disabled config changes nothing.
#include <gtest/gtest.h>

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

}  // namespace

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
