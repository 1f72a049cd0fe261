// Synthetic glottis frames (see synthetic.h).
#include "data/synthetic.h"

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "core/rng.h"

namespace mixseg {

void synthetic_frame(const SyntheticConfig& c, uint64_t index, uint8_t* image, uint8_t* mask) {
  Rng r = Rng::derived(c.seed, index, 0x67u);
  const int H = c.h, W = c.w;
  const double S = std::min(H, W);
  // Tissue and light.
  const double tissue = r.uniform(0.45, 0.65);
  const double lx = r.uniform(0.3, 0.7) * W, ly = r.uniform(0.3, 0.7) * H;
  const double vignette = r.uniform(0.25, 0.5);
  const double grad_angle = r.uniform(0, 6.283185307179586), grad = r.uniform(-0.12, 0.12);
  // Low-frequency texture: a coarse random grid interpolated bilinearly, plus ripples.
  const int G = 9;
  std::vector<double> grid(G * G);
  for (auto& g : grid) g = r.uniform(-0.07, 0.07);
  double rip_a[3], rip_fx[3], rip_fy[3], rip_ph[3];
  for (int k = 0; k < 3; ++k) {
    rip_a[k] = r.uniform(0.0, 0.025);
    rip_fx[k] = r.uniform(-0.15, 0.15);
    rip_fy[k] = r.uniform(-0.15, 0.15);
    rip_ph[k] = r.uniform(0, 6.283185307179586);
  }
  // Glottis geometry: a slit along a tilted axis, half-width
  // open * (1 - t^2)^shape * (1 + asym * t) at position t in [-1, 1].
  const bool closed = r.uniform() < c.closed_fraction;
  const double cx = r.uniform(0.35, 0.65) * W, cy = r.uniform(0.35, 0.65) * H;
  const double half_len = r.uniform(0.14, 0.32) * H;
  const double tilt = r.uniform(-0.35, 0.35);
  const double open = closed ? 0.0 : r.uniform(0.02, 0.11) * S;
  const double asym = r.uniform(-0.4, 0.4), shape = r.uniform(0.5, 1.0);
  const double fold_width = r.uniform(0.05, 0.09) * S, fold_gain = r.uniform(0.08, 0.2);
  const double dark = r.uniform(0.04, 0.16);
  const double noise = r.uniform(0.01, 0.035);
  const double ct = std::cos(tilt), st = std::sin(tilt);

  for (int y = 0; y < H; ++y)
    for (int x = 0; x < W; ++x) {
      const double px = x + 0.5, py = y + 0.5;
      const double rx = (px - lx) / W, ry = (py - ly) / H;
      double v = tissue * (1.0 - vignette * (rx * rx + ry * ry) * 2.0);
      v += grad * ((px / W - 0.5) * std::cos(grad_angle) + (py / H - 0.5) * std::sin(grad_angle));
      const double gx = px / W * (G - 1), gy = py / H * (G - 1);
      const int ix = std::min(int(gx), G - 2), iy = std::min(int(gy), G - 2);
      const double ax = gx - ix, ay = gy - iy;
      v += (1 - ay) * ((1 - ax) * grid[iy * G + ix] + ax * grid[iy * G + ix + 1]) +
           ay * ((1 - ax) * grid[(iy + 1) * G + ix] + ax * grid[(iy + 1) * G + ix + 1]);
      for (int k = 0; k < 3; ++k) v += rip_a[k] * std::sin(rip_fx[k] * px + rip_fy[k] * py + rip_ph[k]);
      // Position in the slit's frame: along its axis (t) and across it.
      const double dx = px - cx, dy = py - cy;
      const double along = dy * ct + dx * st, across = dx * ct - dy * st;
      const double t = along / half_len;
      bool inside = false;
      if (std::fabs(t) < 1.0) {
        const double hw = open * std::pow(1.0 - t * t, shape) * (1.0 + asym * t);
        // The vocal folds: brighter bands on each side of the slit.
        const double d = std::fabs(across) - hw;
        if (d > 0 && d < fold_width) v += fold_gain * std::sin(3.141592653589793 * d / fold_width) * std::sqrt(1 - t * t);
        inside = std::fabs(across) < hw;
      }
      if (inside) v = dark + 0.3 * (v - tissue) * 0.3;
      v += noise * r.normal();
      image[size_t(y) * W + x] = uint8_t(std::lround(std::clamp(v, 0.0, 1.0) * 255.0));
      mask[size_t(y) * W + x] = inside;
    }
}

Dataset make_synthetic(const SyntheticConfig& c, size_t count) {
  Dataset d;
  d.h = c.h;
  d.w = c.w;
  d.images8.resize(count * d.pixels());  // 8-bit, like the PNGs `mixseg synth` writes
  d.mask_bits.resize(count * d.mask_bytes());
  d.names.resize(count);
#pragma omp parallel for schedule(dynamic)
  for (size_t i = 0; i < count; ++i) {
    std::vector<uint8_t> mask(d.pixels());
    synthetic_frame(c, i, d.images8.data() + i * d.pixels(), mask.data());
    d.set_mask(i, mask.data());  // its own bytes of the bits: no race with other frames
    d.names[i] = "synthetic_" + std::to_string(i);
  }
  return d;
}

}  // namespace mixseg
