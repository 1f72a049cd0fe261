// Seeded augmentation (see augment.h).
#include "data/augment.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/error.h"

namespace mixseg {

void flip_horizontal(int h, int w, int ch, float* image, uint8_t* mask) {
  for (int y = 0; y < h; ++y) {
    for (int x = 0; x < w / 2; ++x) {
      std::swap_ranges(image + (size_t(y) * w + size_t(x)) * size_t(ch), image + (size_t(y) * w + size_t(x) + 1) * size_t(ch),
                       image + (size_t(y) * w + size_t(w - 1 - x)) * size_t(ch));
    }
    std::reverse(mask + size_t(y) * w, mask + size_t(y + 1) * w);
  }
}

void flip_vertical(int h, int w, int ch, float* image, uint8_t* mask) {
  const size_t row = size_t(w) * size_t(ch);
  for (int y = 0; y < h / 2; ++y) {
    std::swap_ranges(image + size_t(y) * row, image + size_t(y + 1) * row, image + size_t(h - 1 - y) * row);
    std::swap_ranges(mask + size_t(y) * w, mask + size_t(y + 1) * w, mask + size_t(h - 1 - y) * w);
  }
}

void rotate90(int h, int w, int ch, int k, float* image, uint8_t* mask) {
  k = ((k % 4) + 4) % 4;
  if (k == 0) return;
  if (k == 2) {  // 180 degrees: both flips
    flip_horizontal(h, w, ch, image, mask);
    flip_vertical(h, w, ch, image, mask);
    return;
  }
  if (h != w) fail("rotate90: a rotation by {} degrees needs a square image, got {}x{}", 90 * k, h, w);
  const int n = h;
  std::vector<float> img(image, image + size_t(n) * n * size_t(ch));
  std::vector<uint8_t> msk(mask, mask + size_t(n) * n);
  for (int y = 0; y < n; ++y)
    for (int x = 0; x < n; ++x) {
      // counter-clockwise by 90: out(y, x) = in(x, n-1-y); by 270: out(y, x) = in(n-1-x, y)
      const size_t src = k == 1 ? size_t(x) * n + (n - 1 - y) : size_t(n - 1 - x) * n + y;
      const size_t dst = size_t(y) * n + x;
      std::copy_n(img.data() + src * size_t(ch), ch, image + dst * size_t(ch));
      mask[dst] = msk[src];
    }
}

void rotate_scale(int h, int w, int ch, double degrees, double scale, float* image, uint8_t* mask) {
  if (!(scale > 0)) fail("rotate_scale: scale must be positive, got {}", scale);
  const std::vector<float> img(image, image + size_t(h) * w * size_t(ch));
  const std::vector<uint8_t> msk(mask, mask + size_t(h) * w);
  const double a = degrees * 3.14159265358979323846 / 180.0, ca = std::cos(a) / scale, sa = std::sin(a) / scale;
  const double cy = (h - 1) / 2.0, cx = (w - 1) / 2.0;
  auto at = [&](int yy, int xx, int k) -> double {  // taps outside the frame count as 0
    return (yy >= 0 && yy < h && xx >= 0 && xx < w) ? img[(size_t(yy) * w + size_t(xx)) * size_t(ch) + size_t(k)] : 0.0;
  };
  for (int y = 0; y < h; ++y) {
    const double dy = y - cy, row_y = cy + ca * dy, row_x = cx + sa * dy;
    for (int x = 0; x < w; ++x) {
      const double dx = x - cx;
      const double sy = row_y - sa * dx, sx = row_x + ca * dx;  // inverse map
      const size_t o = size_t(y) * w + x;
      // Mask: nearest neighbour (rounding halves away from zero, as lround:
      // the index is in the frame exactly for -0.5 < s < n - 0.5); outside
      // the frame: background.
      const bool in = sy > -0.5 && sy < h - 0.5 && sx > -0.5 && sx < w - 0.5;
      mask[o] = in ? msk[size_t(sy + 0.5) * w + size_t(sx + 0.5)] : 0;
      // Image: bilinear per channel. floor by truncation of a value shifted
      // to be positive (coordinates outside [-1, n] only meet zero taps).
      if (!(sy > -1 && sy < h && sx > -1 && sx < w)) {
        for (int k = 0; k < ch; ++k) image[o * size_t(ch) + size_t(k)] = 0.0f;
        continue;
      }
      const int y0 = int(sy + 1) - 1, x0 = int(sx + 1) - 1;
      const double fy = sy - y0, fx = sx - x0;
      if (y0 >= 0 && y0 + 1 < h && x0 >= 0 && x0 + 1 < w) {  // all four taps inside: no checks
        const float* p = img.data() + (size_t(y0) * w + size_t(x0)) * size_t(ch);
        const float* q = p + size_t(w) * size_t(ch);
        for (int k = 0; k < ch; ++k)
          image[o * size_t(ch) + size_t(k)] = float((1 - fy) * ((1 - fx) * p[k] + fx * p[k + ch]) +
                                                    fy * ((1 - fx) * q[k] + fx * q[k + ch]));
        continue;
      }
      for (int k = 0; k < ch; ++k)
        image[o * size_t(ch) + size_t(k)] = float((1 - fy) * ((1 - fx) * at(y0, x0, k) + fx * at(y0, x0 + 1, k)) +
                                                  fy * ((1 - fx) * at(y0 + 1, x0, k) + fx * at(y0 + 1, x0 + 1, k)));
    }
  }
}

namespace {

// Standard normal values at the 4096 midpoint quantiles (i + 0.5) / 4096,
// scaled to unit variance: drawing an index uniformly gives a normal variate
// quantised to 4096 levels and cut at +-3.7 sd, which is what augmentation
// noise needs at a cost of 12 random bits and one load (the Box-Muller
// transform cost a log, a square root and a cosine per pixel, ~20% of the
// loader's time). Built once by bisection on erfc.
constexpr int kNormalBits = 12;
const std::vector<float>& normal_quantiles() {
  static const std::vector<float> table = [] {
    constexpr int n = 1 << kNormalBits;
    std::vector<double> q(n);
    double ss = 0;
    for (int i = 0; i < n; ++i) {
      const double p = (i + 0.5) / n;
      double lo = -10, hi = 10;
      for (int it = 0; it < 64; ++it) {
        const double mid = 0.5 * (lo + hi);
        (0.5 * std::erfc(-mid / std::sqrt(2.0)) < p ? lo : hi) = mid;
      }
      q[size_t(i)] = 0.5 * (lo + hi);
      ss += q[size_t(i)] * q[size_t(i)];
    }
    const double sd = std::sqrt(ss / n);
    std::vector<float> t(n);
    for (int i = 0; i < n; ++i) t[size_t(i)] = float(q[size_t(i)] / sd);
    return t;
  }();
  return table;
}

// v^gamma on [0, 1] by linear interpolation in a table of 4097 points: at
// most ~1e-4 from pow (the worst, gamma 0.8 near 0; an 8-bit step is 4e-3),
// and 4097 pow calls per image instead of one per pixel.
constexpr int kGammaSegments = 4096;
struct GammaTable {
  std::vector<float> y;
  explicit GammaTable(double gamma) : y(kGammaSegments + 1) {
    for (int i = 0; i <= kGammaSegments; ++i) y[size_t(i)] = float(std::pow(double(i) / kGammaSegments, gamma));
  }
  float operator()(float v) const {  // v in [0, 1]
    const float t = v * kGammaSegments;
    const int i = std::min(int(t), kGammaSegments - 1);
    return y[size_t(i)] + (t - float(i)) * (y[size_t(i) + 1] - y[size_t(i)]);
  }
};

}  // namespace

void augment(const AugmentConfig& c, Rng& rng, int h, int w, int ch, float* image, uint8_t* mask) {
  if (!c.enabled) return;
  const size_t n = size_t(h) * w * size_t(ch);
  // Draw every random number in a fixed order, whether or not it is used, so
  // that switching one transform off leaves the others' draws unchanged.
  const bool fh = rng.uniform() < 0.5, fv = rng.uniform() < 0.5;
  const int k = int(rng.below(4));
  const bool affine = rng.uniform() < c.affine_p;
  const double deg = rng.uniform(-c.rotate_degrees, c.rotate_degrees);
  const double sc = rng.uniform(1 - c.scale, 1 + c.scale);
  const double bright = rng.uniform(-c.brightness, c.brightness);
  const double contrast = rng.uniform(1 - c.contrast, 1 + c.contrast);
  const double gamma = rng.uniform(1 - c.gamma, 1 + c.gamma);
  const uint64_t noise_seed = rng.next();

  if (c.flips && fh) flip_horizontal(h, w, ch, image, mask);
  if (c.flips && fv) flip_vertical(h, w, ch, image, mask);
  if (c.rotate90) rotate90(h, w, ch, h == w ? k : (k & 2), image, mask);
  if (affine && (c.rotate_degrees > 0 || c.scale > 0)) rotate_scale(h, w, ch, deg, sc, image, mask);

  double mean = 0;
  for (size_t i = 0; i < n; ++i) mean += image[i];
  mean /= double(n);
  // v -> clamp((v - mean) * contrast + mean + bright), ^gamma, + noise, clamp.
  const float scale = float(contrast), offset = float(mean * (1 - contrast) + bright);
  const GammaTable power(gamma);
  for (size_t i = 0; i < n; ++i) image[i] = power(std::clamp(image[i] * scale + offset, 0.0f, 1.0f));
  if (c.noise_std > 0) {
    const std::vector<float>& z = normal_quantiles();
    const float sd = float(c.noise_std);
    constexpr int per_draw = 64 / kNormalBits;  // indices per 64 random bits
    constexpr uint64_t index_mask = (uint64_t(1) << kNormalBits) - 1;
    Rng noise(noise_seed);
    for (size_t i = 0; i < n; i += per_draw) {
      uint64_t r = noise.next();
      for (size_t j = i; j < std::min(n, i + per_draw); ++j, r >>= kNormalBits)
        image[j] = std::clamp(image[j] + sd * z[r & index_mask], 0.0f, 1.0f);
    }
  }
}

}  // namespace mixseg
