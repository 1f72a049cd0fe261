// Segmentation metrics from logits (foreground where logit > 0, i.e. p > 0.5)
// against 0/1 masks: Dice and IoU per image (averaged) and pooled over all
// pixels, and pixel accuracy. An image whose prediction and mask are both
// empty scores 1 (a closed glottis correctly found closed).
#pragma once
#include <cstddef>
#include <cstdint>

namespace mixseg {

struct Confusion {
  uint64_t tp = 0, fp = 0, fn = 0, tn = 0;
  Confusion& operator+=(const Confusion& o) {
    tp += o.tp, fp += o.fp, fn += o.fn, tn += o.tn;
    return *this;
  }
};

Confusion confusion(const float* logits, const uint8_t* mask, size_t n);
double dice(const Confusion& c);
double iou(const Confusion& c);
double pixel_accuracy(const Confusion& c);

struct SegMetrics {
  double dice_mean = 0, iou_mean = 0;      // mean over images
  double dice_pooled = 0, iou_pooled = 0;  // over all pixels
  double pixel_accuracy = 0;
  size_t images = 0;
};

// Accumulates per-image scores; finish() gives the means.
struct MetricsAccumulator {
  Confusion pooled;
  double dice_sum = 0, iou_sum = 0;
  size_t images = 0;
  void add_image(const float* logits, const uint8_t* mask, size_t pixels);
  SegMetrics finish() const;
};

}  // namespace mixseg
