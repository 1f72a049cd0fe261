// One benchmark result in the design's tidy CSV schema (DESIGN.md,
// "Measuring"), shared by mixseg and the peer scripts in bench/peers/.
#pragma once
#include <optional>
#include <string>
#include <vector>

namespace mixseg {

struct ResultRow {
  std::string framework, framework_version, device, device_name, precision, phase;  // phase: train | infer
  int filters = 0, depth = 0, batch = 0, height = 0, width = 0;
  double img_per_s = 0, ms_per_step_median = 0, ms_p90 = 0, ms_p99 = 0, tflops = 0;
  std::optional<double> joules_per_img;       // empty when energy is unavailable
  std::string energy_source = "unavailable";  // e.g. rapl, nvml, unavailable
  double peak_mem_mib = 0;
  int steps = 0, warmup_steps = 0;
  std::string git_commit, timestamp;  // timestamp: ISO 8601 UTC
};

// The header line (no newline), columns in the schema's order.
std::string result_csv_header();
// One row (no newline); text fields are quoted when they hold a comma or quote.
std::string to_csv(const ResultRow& r);
// Throws naming the file if it exists with a header other than the schema's
// (a trailing CR is accepted); returns whether it is new or empty.
bool check_results_csv_appendable(const std::string& path);
// Appends rows to path, writing the header first when the file is new or
// empty; throws naming the file if an existing header differs.
void append_results_csv(const std::string& path, const std::vector<ResultRow>& rows);

// Reads a results CSV (ours or a peer's): the header must be the schema's;
// throws naming the file and line for a malformed row.
std::vector<ResultRow> read_results_csv(const std::string& path);
// The same from the file's text (path only names the source in errors).
std::vector<ResultRow> parse_results_csv(const std::string& text, const std::string& path);

// Now, as ISO 8601 UTC (2026-11-28T21:08:16Z).
std::string utc_timestamp();
// "model name" of /proc/cpuinfo, or "unknown cpu".
std::string cpu_model_name();

}  // namespace mixseg
