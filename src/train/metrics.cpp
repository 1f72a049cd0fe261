// Dice, IoU and pixel accuracy (see metrics.h).
#include "train/metrics.h"

namespace mixseg {

Confusion confusion(const float* logits, const uint8_t* mask, size_t n) {
  Confusion c;
  for (size_t i = 0; i < n; ++i) {
    const bool p = logits[i] > 0.0f, t = mask[i] != 0;
    c.tp += p && t;
    c.fp += p && !t;
    c.fn += !p && t;
    c.tn += !p && !t;
  }
  return c;
}

double dice(const Confusion& c) {
  const uint64_t d = 2 * c.tp + c.fp + c.fn;
  return d == 0 ? 1.0 : 2.0 * double(c.tp) / double(d);
}

double iou(const Confusion& c) {
  const uint64_t d = c.tp + c.fp + c.fn;
  return d == 0 ? 1.0 : double(c.tp) / double(d);
}

double pixel_accuracy(const Confusion& c) {
  const uint64_t n = c.tp + c.fp + c.fn + c.tn;
  return n == 0 ? 1.0 : double(c.tp + c.tn) / double(n);
}

void MetricsAccumulator::add_image(const float* logits, const uint8_t* mask, size_t pixels) {
  const Confusion c = confusion(logits, mask, pixels);
  pooled += c;
  dice_sum += dice(c);
  iou_sum += iou(c);
  ++images;
}

SegMetrics MetricsAccumulator::finish() const {
  SegMetrics m;
  m.images = images;
  m.dice_mean = images ? dice_sum / double(images) : 0.0;
  m.iou_mean = images ? iou_sum / double(images) : 0.0;
  m.dice_pooled = dice(pooled);
  m.iou_pooled = iou(pooled);
  m.pixel_accuracy = pixel_accuracy(pooled);
  return m;
}

}  // namespace mixseg
