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
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x) {
      const double dy = y - cy, dx = x - cx;
      const double sy = cy + ca * dy - sa * dx, sx = cx + sa * dy + ca * dx;  // inverse map
      const size_t o = size_t(y) * w + x;
      // Mask: nearest neighbour; outside the frame: background.
      const long ny = std::lround(sy), nx = std::lround(sx);
      mask[o] = (ny >= 0 && ny < h && nx >= 0 && nx < w) ? msk[size_t(ny) * w + size_t(nx)] : 0;
      // Image: bilinear per channel, taps outside the frame count as 0.
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
  Rng noise(noise_seed);
  for (size_t i = 0; i < n; ++i) {
    double v = (image[i] - mean) * contrast + mean + bright;
    v = std::pow(std::clamp(v, 0.0, 1.0), gamma);
    if (c.noise_std > 0) v += c.noise_std * noise.normal();
    image[i] = float(std::clamp(v, 0.0, 1.0));
  }
}

}  // namespace mixseg
