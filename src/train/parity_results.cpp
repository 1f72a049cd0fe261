// Parity results: CSV and summary (parity_results.h).
#include "train/parity_results.h"

#include <fmt/format.h>

#include <cmath>
#include <fstream>
#include <map>
#include <sstream>

#include "core/error.h"
#include "core/file_util.h"

namespace mixseg {

namespace {
constexpr const char* kParityHeader = "seed,precision,dice,iou,dice_pooled,iou_pooled,pixel_accuracy,images";
}  // namespace

void write_parity_csv(const std::string& path, const std::vector<ParityRow>& rows) {
  write_atomically(path, [&](const std::string& tmp) {
    std::ofstream f(tmp);
    f << kParityHeader << "\n";
    for (const ParityRow& r : rows)
      f << fmt::format("{},{},{:.6f},{:.6f},{:.6f},{:.6f},{:.6f},{}\n", r.seed, r.precision, r.val.dice_mean,
                       r.val.iou_mean, r.val.dice_pooled, r.val.iou_pooled, r.val.pixel_accuracy, r.val.images);
    f.close();
    if (!f) fail("{}: cannot write", path);
  });
}

std::vector<ParityRow> read_parity_csv(const std::string& path) {
  std::istringstream f(read_file_text(path));
  std::string line;
  std::getline(f, line);
  if (line != kParityHeader)
    fail("{}: not a parity CSV from mixseg parity (first line: '{}')", path, line);
  std::vector<ParityRow> rows;
  for (int n = 2; std::getline(f, line); ++n) {
    if (line.empty()) continue;
    std::stringstream ss(line);
    std::string cell;
    std::vector<std::string> c;
    while (std::getline(ss, cell, ',')) c.push_back(cell);
    if (c.size() != 8) fail("{}:{}: {} fields, expected 8", path, n, c.size());
    try {
      ParityRow r;
      r.seed = std::stoull(c[0]);
      r.precision = c[1];
      r.val.dice_mean = std::stod(c[2]), r.val.iou_mean = std::stod(c[3]), r.val.dice_pooled = std::stod(c[4]);
      r.val.iou_pooled = std::stod(c[5]), r.val.pixel_accuracy = std::stod(c[6]), r.val.images = std::stoull(c[7]);
      rows.push_back(r);
    } catch (const std::exception&) {
      fail("{}:{}: not numbers where expected: '{}'", path, n, line);
    }
  }
  return rows;
}

std::vector<ParitySummary> summarize_parity(const std::vector<ParityRow>& rows) {
  std::vector<std::string> order;
  std::map<std::string, std::vector<const ParityRow*>> by;
  std::map<uint64_t, double> fp32_dice;
  for (const ParityRow& r : rows) {
    if (!by.count(r.precision)) order.push_back(r.precision);
    by[r.precision].push_back(&r);
    if (r.precision == "fp32") fp32_dice[r.seed] = r.val.dice_mean;
  }
  auto mean_std = [](const std::vector<double>& v, double* mean, double* sd) {
    double s = 0, q = 0;
    for (double x : v) s += x;
    *mean = s / double(v.size());
    for (double x : v) q += (x - *mean) * (x - *mean);
    *sd = v.size() > 1 ? std::sqrt(q / double(v.size() - 1)) : 0.0;
  };
  std::vector<ParitySummary> out;
  for (const std::string& p : order) {
    std::vector<double> dice, iou, diff;
    for (const ParityRow* r : by[p]) {
      dice.push_back(r->val.dice_mean), iou.push_back(r->val.iou_mean);
      if (fp32_dice.count(r->seed)) diff.push_back(r->val.dice_mean - fp32_dice[r->seed]);
    }
    ParitySummary s;
    s.precision = p;
    s.seeds = int(dice.size());
    mean_std(dice, &s.dice_mean, &s.dice_std);
    mean_std(iou, &s.iou_mean, &s.iou_std);
    double unused = 0;
    if (!diff.empty()) mean_std(diff, &s.dice_vs_fp32, &unused);
    out.push_back(s);
  }
  return out;
}

}  // namespace mixseg
