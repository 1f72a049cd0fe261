// Post-training calibration: runs the float network (fp32, BatchNorm folded,
// as it will be deployed) over a representative set and records the real
// range of every activation the int8 network keeps (each BatchNorm+ReLU
// output, each transposed-convolution upsampling's output and the logits),
// by min/max or by percentiles of a sample of the values (which clips rare
// outliers to buy resolution for the rest).
#pragma once
#include <string>
#include <vector>

#include "core/backend.h"
#include "data/dataset.h"
#include "model/network.h"
#include "quant/qmodel.h"

namespace mixseg {

struct CalibrationConfig {
  std::string method = "minmax";  // or "percentile"
  double percentile = 99.99;      // percentile: the range is [p(100 - this), p(this)]
  int batch = 4;
};

struct ValueStats {
  double min = 0, max = 0;   // over every value seen
  Range range;               // the range chosen
  double clipped = 0;        // fraction of the sampled values outside the range
  size_t samples = 0;
};

struct Calibration {
  std::vector<Range> ranges;       // per UNet value (zero for values not observed)
  std::vector<ValueStats> stats;   // per UNet value; samples == 0 for values not observed
  size_t images = 0;
  std::string description;         // e.g. "minmax over 100 images"
};

Calibration calibrate(const UNet& net, Weights& weights, Backend& backend, const Dataset& data,
                      const CalibrationConfig& cfg);

}  // namespace mixseg
