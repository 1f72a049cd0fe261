// Synthetic endoscopy-like frames for tests and the demo: a textured tissue
// background under an uneven light, two brighter vocal folds, and between
// them a dark glottis-like slit of varying length, opening, tilt, asymmetry
// and position, with sensor noise. The mask is exactly the slit's geometric
// predicate, so the labels are exact. A small fraction of frames show a
// closed glottis (empty mask), as real recordings do. Seeded: frame i of
// seed s is the same on every machine.
#pragma once
#include <cstdint>

#include "data/dataset.h"

namespace mixseg {

struct SyntheticConfig {
  int h = 128, w = 128;
  uint64_t seed = 0;
  double closed_fraction = 0.05;
};

// Draws frame `index` into image (h*w gray) and mask (h*w, 0/1).
void synthetic_frame(const SyntheticConfig& c, uint64_t index, uint8_t* image, uint8_t* mask);
Dataset make_synthetic(const SyntheticConfig& c, size_t count);

}  // namespace mixseg
