// SVG charts (svg.h).
#include "report/svg.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

namespace mixseg {

namespace {

constexpr double kW = 720, kH = 420, kLeft = 70, kRight = 200, kTop = 40, kBottom = 55;
const char* const kColors[] = {"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd",
                               "#8c564b", "#e377c2", "#17becf", "#7f7f7f", "#bcbd22"};

const char* color(size_t i) { return kColors[i % (sizeof kColors / sizeof kColors[0])]; }

// A "nice" step for about n ticks over [0, hi].
double nice_step(double hi, int n) {
  const double raw = hi / n, p = std::pow(10.0, std::floor(std::log10(raw))), f = raw / p;
  return (f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10) * p;
}

std::string fmt_tick(double v) {
  if (v == 0) return "0";
  if (std::fabs(v) >= 1e6 || std::fabs(v) < 0.01) return fmt::format("{:.3g}", v);
  return fmt::format("{:g}", std::round(v * 1000) / 1000);
}

// The chart's width: the plot's, widened so the legend's longest name fits
// (~7 px per character at 12 px sans-serif; names were cut off at kW).
double chart_width(const std::vector<std::string>& names) {
  size_t longest = 0;
  for (const auto& n : names) longest = std::max(longest, n.size());
  return std::max(kW, kW - kRight + 32 + 7.0 * double(longest) + 10);
}

// The series' names, for the legend and the chart's width.
template <class Series>
std::vector<std::string> names_of(const std::vector<Series>& series) {
  std::vector<std::string> names;
  for (const auto& ser : series) names.push_back(ser.name);
  return names;
}

std::string header(const std::string& title, double width) {
  return fmt::format(
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{0}\" height=\"{1}\" viewBox=\"0 0 {0} {1}\" "
      "font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"{0}\" height=\"{1}\" fill=\"white\"/>\n"
      "<text x=\"{2}\" y=\"22\" font-size=\"15\" font-weight=\"bold\">{3}</text>\n",
      width, kH, kLeft, xml_escape(title));
}

// The y axis from 0 to hi with gridlines; returns the scale (pixels per unit).
std::string y_axis(double hi, const std::string& label, double* scale) {
  const double step = nice_step(hi, 5), top = std::ceil(hi / step) * step, plot_h = kH - kTop - kBottom;
  *scale = plot_h / top;
  std::string s;
  for (double v = 0; v <= top + step / 2; v += step) {
    const double y = kH - kBottom - v * *scale;
    s += fmt::format("<line x1=\"{}\" y1=\"{:.1f}\" x2=\"{}\" y2=\"{:.1f}\" stroke=\"#ddd\"/>\n", kLeft, y, kW - kRight, y);
    s += fmt::format("<text x=\"{}\" y=\"{:.1f}\" text-anchor=\"end\">{}</text>\n", kLeft - 6, y + 4, fmt_tick(v));
  }
  s += fmt::format("<text transform=\"translate(16 {:.1f}) rotate(-90)\" text-anchor=\"middle\">{}</text>\n",
                   kTop + plot_h / 2, xml_escape(label));
  s += fmt::format("<line x1=\"{0}\" y1=\"{1}\" x2=\"{0}\" y2=\"{2}\" stroke=\"black\"/>\n", kLeft, kTop, kH - kBottom);
  s += fmt::format("<line x1=\"{0}\" y1=\"{1}\" x2=\"{2}\" y2=\"{1}\" stroke=\"black\"/>\n", kLeft, kH - kBottom, kW - kRight);
  return s;
}

std::string legend(const std::vector<std::string>& names) {
  std::string s;
  for (size_t i = 0; i < names.size(); ++i) {
    const double y = kTop + 10 + double(i) * 18;
    s += fmt::format("<rect x=\"{}\" y=\"{:.1f}\" width=\"12\" height=\"12\" fill=\"{}\"/>\n", kW - kRight + 15, y - 10,
                     color(i));
    s += fmt::format("<text x=\"{}\" y=\"{:.1f}\">{}</text>\n", kW - kRight + 32, y, xml_escape(names[i]));
  }
  return s;
}

std::string empty_note(const std::string& what) {
  return fmt::format("<text x=\"{}\" y=\"{}\" fill=\"#888\">{}</text>\n", kLeft + 10, kH / 2, xml_escape(what));
}

}  // namespace

std::string xml_escape(const std::string& s) {
  std::string r;
  for (char c : s) {
    switch (c) {
      case '&': r += "&amp;"; break;
      case '<': r += "&lt;"; break;
      case '>': r += "&gt;"; break;
      case '"': r += "&quot;"; break;
      case '\'': r += "&apos;"; break;
      default:
        if (static_cast<unsigned char>(c) >= 0x20 || c == '\n' || c == '\t') r += c;  // no control characters in XML
    }
  }
  return r;
}

std::string render_line_chart(const LineChart& c) {
  const std::vector<std::string> series_names = names_of(c.series);
  std::string s = header(c.title, chart_width(series_names));
  double x_lo = INFINITY, x_hi = -INFINITY, y_hi = c.reference_y.value_or(0);
  auto xt = [&](double x) { return c.log2_x ? std::log2(x) : x; };
  for (const auto& ser : c.series)
    for (auto [x, y] : ser.points)
      if (std::isfinite(y) && (!c.log2_x || x > 0)) {
        x_lo = std::min(x_lo, xt(x)), x_hi = std::max(x_hi, xt(x)), y_hi = std::max(y_hi, y);
      }
  if (!std::isfinite(x_lo) || y_hi <= 0) return s + empty_note("no data") + "</svg>\n";
  if (x_hi == x_lo) x_lo -= 1, x_hi += 1;
  double sy = 0;
  s += y_axis(y_hi * 1.05, c.y_label, &sy);
  const double plot_w = kW - kLeft - kRight - 20;
  auto px = [&](double x) { return kLeft + 10 + (xt(x) - x_lo) / (x_hi - x_lo) * plot_w; };
  auto py = [&](double y) { return kH - kBottom - y * sy; };
  // x ticks at the data's x values.
  std::vector<double> xs;
  for (const auto& ser : c.series)
    for (auto [x, y] : ser.points) xs.push_back(x);
  std::sort(xs.begin(), xs.end());
  xs.erase(std::unique(xs.begin(), xs.end()), xs.end());
  for (double x : xs)
    s += fmt::format("<text x=\"{:.1f}\" y=\"{}\" text-anchor=\"middle\">{}</text>\n", px(x), kH - kBottom + 16, fmt_tick(x));
  s += fmt::format("<text x=\"{:.1f}\" y=\"{}\" text-anchor=\"middle\">{}</text>\n", kLeft + (kW - kLeft - kRight) / 2,
                   kH - 12, xml_escape(c.x_label));
  if (c.reference_y)
    s += fmt::format("<line x1=\"{}\" y1=\"{:.1f}\" x2=\"{}\" y2=\"{:.1f}\" stroke=\"#444\" stroke-dasharray=\"5,4\"/>\n",
                     kLeft, py(*c.reference_y), kW - kRight, py(*c.reference_y));
  for (size_t i = 0; i < c.series.size(); ++i) {
    auto pts = c.series[i].points;
    std::sort(pts.begin(), pts.end());
    std::string path;
    for (auto [x, y] : pts) {
      if (!std::isfinite(y)) continue;
      path += fmt::format("{}{:.1f},{:.1f}", path.empty() ? "" : " ", px(x), py(y));
      s += fmt::format("<circle cx=\"{:.1f}\" cy=\"{:.1f}\" r=\"3\" fill=\"{}\"/>\n", px(x), py(y), color(i));
    }
    s += fmt::format("<polyline points=\"{}\" fill=\"none\" stroke=\"{}\" stroke-width=\"2\"/>\n", path, color(i));
  }
  return s + legend(series_names) + "</svg>\n";
}

std::string render_bar_chart(const BarChart& c) {
  const std::vector<std::string> series_names = names_of(c.series);
  std::string s = header(c.title, chart_width(series_names));
  double hi = 0;
  for (const auto& ser : c.series)
    for (double v : ser.values)
      if (std::isfinite(v)) hi = std::max(hi, v);
  if (c.categories.empty() || c.series.empty() || hi <= 0) return s + empty_note("no data") + "</svg>\n";
  double sy = 0;
  s += y_axis(hi * 1.05, c.y_label, &sy);
  const double plot_w = kW - kLeft - kRight, group = plot_w / double(c.categories.size());
  const double bar = std::min(28.0, group * 0.8 / double(c.series.size()));
  for (size_t k = 0; k < c.categories.size(); ++k) {
    const double x0 = kLeft + group * double(k) + (group - bar * double(c.series.size())) / 2;
    for (size_t i = 0; i < c.series.size(); ++i) {
      const double v = k < c.series[i].values.size() ? c.series[i].values[k] : kMissing;
      if (!std::isfinite(v)) continue;
      s += fmt::format("<rect x=\"{:.1f}\" y=\"{:.1f}\" width=\"{:.1f}\" height=\"{:.1f}\" fill=\"{}\"><title>{}: {}</title></rect>\n",
                       x0 + bar * double(i), kH - kBottom - v * sy, bar - 1, v * sy, color(i),
                       xml_escape(c.series[i].name), fmt_tick(v));
    }
    s += fmt::format("<text x=\"{:.1f}\" y=\"{}\" text-anchor=\"middle\">{}</text>\n", kLeft + group * (double(k) + 0.5),
                     kH - kBottom + 16, xml_escape(c.categories[k]));
  }
  return s + legend(series_names) + "</svg>\n";
}

}  // namespace mixseg
