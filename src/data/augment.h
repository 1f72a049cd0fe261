// Seeded data augmentation for training: geometric transforms applied to an
// image and its mask together (flips, 90-degree rotations, small rotations
// and scaling), intensity transforms on the image only (brightness,
// contrast, gamma, Gaussian noise). Each sample's randomness comes from its
// own stream, Rng::derived(seed, epoch, sample index), so a run reproduces
// exactly for a seed whatever the thread that prepares the sample, and a
// resumed run sees the same augmentations as an uninterrupted one.
#pragma once
#include <cstdint>

#include "core/rng.h"

namespace mixseg {

struct AugmentConfig {
  bool enabled = true;
  bool flips = true;           // horizontal and vertical, each with p = 0.5
  bool rotate90 = true;        // k * 90 degrees, k uniform (square images; 180 only otherwise)
  double affine_p = 0.5;       // probability of a small rotation and scaling
  double rotate_degrees = 10;  // rotation uniform in [-r, r]
  double scale = 0.1;          // scale factor uniform in [1 - s, 1 + s]
  double brightness = 0.1;     // added offset uniform in [-b, b] (images are in [0, 1])
  double contrast = 0.1;       // factor uniform in [1 - c, 1 + c] around the image mean
  double gamma = 0.2;          // exponent uniform in [1 - g, 1 + g]
  double noise_std = 0.02;     // Gaussian noise with this standard deviation
};

// The stream of sample `index` in `epoch` (see the top of this file).
inline Rng augment_rng(uint64_t seed, int epoch, uint64_t index) {
  return Rng::derived(seed ^ 0xa5a5a5a5ull, uint64_t(epoch) + 1, index);
}

// Augments one sample in place: image h x w x ch (interleaved channels) in
// [0, 1] (clamped after the intensity transforms, which treat all channels
// alike), mask h x w of 0/1. Affine transforms sample the image bilinearly
// and the mask by nearest neighbour about the centre; pixels from outside
// the frame are 0 in both.
void augment(const AugmentConfig& c, Rng& rng, int h, int w, int ch, float* image, uint8_t* mask);

// The pieces, exposed for tests (ch: the image's channels).
void flip_horizontal(int h, int w, int ch, float* image, uint8_t* mask);
void flip_vertical(int h, int w, int ch, float* image, uint8_t* mask);
// Rotates by k * 90 degrees counter-clockwise; k odd needs h == w.
void rotate90(int h, int w, int ch, int k, float* image, uint8_t* mask);
// Output pixel (y, x) takes the input at the centre + R(-angle) (p - centre) / scale.
void rotate_scale(int h, int w, int ch, double degrees, double scale, float* image, uint8_t* mask);

}  // namespace mixseg
