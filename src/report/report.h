// The benchmark report: from results CSVs (mixseg's and the peers', one
// schema) and the runs' metadata, the paper's comparisons with our figures:
// throughput and speedup over fp32 per precision, model size and batch size;
// images per joule, kWh, cost and CO2 per million images where energy was
// measured; peak memory; frameworks side by side. The two comparisons come
// first as compact tables (each precision over the same framework's fp32 per
// configuration, with J/img against fp32's; mixseg over the fastest other
// framework per precision and configuration), then every row. Markdown plus a
// self-contained HTML page (well-formed XHTML with the SVG plots inline),
// and each plot as an .svg file. What could not be measured is listed, never
// filled in.
#pragma once
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "bench/result_row.h"
#include "train/parity_results.h"

namespace mixseg {

struct ReportConfig {
  double price_per_kwh = 0.30;       // currency units per kWh (stated in the report)
  double grid_gco2_per_kwh = 400.0;  // grams CO2-equivalent per kWh (stated in the report)
  std::vector<std::string> sources;  // the CSV files, named in the report
  std::vector<ParityRow> parity;     // from mixseg parity, if given: the accuracy side of the comparison
};

struct ReportFiles {
  std::string markdown, html;
  std::vector<std::pair<std::string, std::string>> svgs;  // file name, content
};

// Several rows for one configuration (repeated runs) are summarised by their median.
ReportFiles make_report(const std::vector<ResultRow>& rows, const std::vector<nlohmann::json>& run_metadata,
                        const ReportConfig& cfg);

}  // namespace mixseg
