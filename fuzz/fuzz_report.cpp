// Fuzz target: a results CSV (mixseg's or a peer's) must become a report, or
// a mixseg::Error naming the input, never a crash; and no coordinate in the
// report's plots may be NaN or infinite (an SVG coordinate "nan" draws
// nothing, silently).
#include <cstddef>
#include <cstdint>
#include <regex>
#include <string>

#include "bench/result_row.h"
#include "core/error.h"
#include "report/report.h"

namespace {

// A NaN or infinity in a numeric SVG attribute (names and labels, which
// come from the CSV, may well contain "inf").
bool has_non_finite(const std::string& svg) {
  static const std::regex numeric(R"re(\b(x|y|x1|x2|y1|y2|cx|cy|r|width|height|points|d)="[^"]*(nan|inf))re",
                                  std::regex::icase);
  return std::regex_search(svg, numeric);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    const std::vector<mixseg::ResultRow> rows =
        mixseg::parse_results_csv(std::string(reinterpret_cast<const char*>(data), size), "fuzz input");
    const mixseg::ReportFiles r = mixseg::make_report(rows, {}, mixseg::ReportConfig{});
    if (has_non_finite(r.html)) __builtin_trap();  // the plots inline
    for (const auto& [name, svg] : r.svgs)
      if (has_non_finite(svg)) __builtin_trap();
  } catch (const mixseg::Error&) {
  }
  return 0;
}
