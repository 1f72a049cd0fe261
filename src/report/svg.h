// Small SVG charts for the report: line charts (e.g. speedup over fp32 vs
// batch size, one line per model size and precision) and grouped bar charts
// (e.g. images per joule per precision). Self-contained SVG 1.1 text, well-
// formed XML (every text escaped), fixed 720x420 canvas, a legend on the right.
#pragma once
#include <limits>
#include <optional>
#include <string>
#include <vector>

namespace mixseg {

std::string xml_escape(const std::string& s);

struct LineSeries {
  std::string name;
  std::vector<std::pair<double, double>> points;  // (x, y), drawn in x order
};

struct LineChart {
  std::string title, x_label, y_label;
  std::vector<LineSeries> series;
  bool log2_x = false;                 // batch sizes 1, 2, 4, ... evenly spaced
  std::optional<double> reference_y;   // a dashed horizontal line (e.g. speedup 1)
};

struct BarSeries {
  std::string name;
  std::vector<double> values;  // one per category; NaN where there is no value
};

struct BarChart {
  std::string title, y_label;
  std::vector<std::string> categories;
  std::vector<BarSeries> series;
};

inline constexpr double kMissing = std::numeric_limits<double>::quiet_NaN();

std::string render_line_chart(const LineChart& c);
std::string render_bar_chart(const BarChart& c);

}  // namespace mixseg
