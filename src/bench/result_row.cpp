// The benchmark CSV schema (see result_row.h).
#include "bench/result_row.h"

#include <fmt/format.h>

#include <cmath>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/error.h"
#include "core/file_util.h"

namespace mixseg {

namespace {

std::string field(const std::string& s) {
  if (s.find_first_of(",\"\n") == std::string::npos) return s;
  std::string q = "\"";
  for (char c : s) q += c == '"' ? std::string("\"\"") : std::string(1, c);
  return q + "\"";
}

std::string number(double v) { return fmt::format("{:.6g}", v); }

}  // namespace

std::string result_csv_header() {
  return "framework,framework_version,device,device_name,precision,phase,filters,depth,batch,height,width,img_per_s,"
         "ms_per_step_median,ms_p90,ms_p99,tflops,joules_per_img,energy_source,peak_mem_mib,steps,warmup_steps,"
         "git_commit,timestamp";
}

std::string to_csv(const ResultRow& r) {
  return fmt::format("{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{}", field(r.framework),
                     field(r.framework_version), field(r.device), field(r.device_name), field(r.precision),
                     field(r.phase), r.filters, r.depth, r.batch, r.height, r.width, number(r.img_per_s),
                     number(r.ms_per_step_median), number(r.ms_p90), number(r.ms_p99), number(r.tflops),
                     r.joules_per_img ? number(*r.joules_per_img) : std::string(), field(r.energy_source),
                     number(r.peak_mem_mib), r.steps, r.warmup_steps, field(r.git_commit), field(r.timestamp));
}

bool check_results_csv_appendable(const std::string& path) {
  std::error_code ec;
  const bool fresh = !std::filesystem::exists(path, ec) || std::filesystem::file_size(path, ec) == 0;
  if (!fresh) {
    check_readable_file(path);  // a folder, say, is named as one
    std::ifstream in(path);
    if (!in) fail("{}: cannot open for reading its header", path);
    std::string first;
    std::getline(in, first);
    if (!first.empty() && first.back() == '\r') first.pop_back();  // CRLF lines (Python's csv default)
    if (first != result_csv_header())
      fail("{}: exists with another header; not appending benchmark rows to it (first line: '{}')", path, first);
  }
  return fresh;
}

void append_results_csv(const std::string& path, const std::vector<ResultRow>& rows) {
  const bool fresh = check_results_csv_appendable(path);
  std::ofstream out(path, std::ios::app);
  if (!out) fail("{}: cannot open for appending", path);
  if (fresh) out << result_csv_header() << '\n';
  for (const auto& r : rows) out << to_csv(r) << '\n';
  out.flush();
  if (!out) fail("{}: write failed (disk full?)", path);
}

namespace {

// Splits one CSV line into fields (RFC 4180 quoting; no newlines inside fields).
std::vector<std::string> split_csv(const std::string& line) {
  std::vector<std::string> out(1);
  bool quoted = false;
  for (size_t i = 0; i < line.size(); ++i) {
    const char c = line[i];
    if (quoted) {
      if (c == '"' && i + 1 < line.size() && line[i + 1] == '"') out.back() += '"', ++i;
      else if (c == '"') quoted = false;
      else out.back() += c;
    } else if (c == '"') {
      quoted = true;
    } else if (c == ',') {
      out.emplace_back();
    } else if (c != '\r') {
      out.back() += c;
    }
  }
  return out;
}

}  // namespace

std::vector<ResultRow> read_results_csv(const std::string& path) {
  return parse_results_csv(read_file_text(path), path);
}

std::vector<ResultRow> parse_results_csv(const std::string& text, const std::string& path) {
  std::istringstream in(text);
  std::string line;
  std::getline(in, line);
  if (!line.empty() && line.back() == '\r') line.pop_back();
  if (line != result_csv_header()) fail("{}: not a results CSV in the design's schema (first line: '{}')", path, line);
  std::vector<ResultRow> rows;
  for (int n = 2; std::getline(in, line); ++n) {
    if (line.empty() || line == "\r") continue;
    const std::vector<std::string> f = split_csv(line);
    if (f.size() != 23) fail("{}:{}: {} fields, the schema has 23", path, n, f.size());
    auto num = [&](size_t i) {
      try {
        size_t used = 0;
        const double v = std::stod(f[i], &used);
        if (used != f[i].size() || !std::isfinite(v)) throw std::invalid_argument(f[i]);
        return v;
      } catch (const std::exception&) {
        fail("{}:{}: column {} is not a finite number: '{}'", path, n, i + 1, f[i]);
      }
    };
    auto count = [&](size_t i) {  // sizes and step counts: whole, non-negative, an int
      const double v = num(i);
      if (v < 0 || v > 2147483647.0 || v != std::floor(v))
        fail("{}:{}: column {} is not a whole number: '{}'", path, n, i + 1, f[i]);
      return int(v);
    };
    ResultRow r;
    r.framework = f[0], r.framework_version = f[1], r.device = f[2], r.device_name = f[3], r.precision = f[4];
    r.phase = f[5];
    r.filters = count(6), r.depth = count(7), r.batch = count(8), r.height = count(9), r.width = count(10);
    r.img_per_s = num(11), r.ms_per_step_median = num(12), r.ms_p90 = num(13), r.ms_p99 = num(14), r.tflops = num(15);
    if (!f[16].empty()) r.joules_per_img = num(16);
    r.energy_source = f[17];
    r.peak_mem_mib = num(18);
    r.steps = count(19), r.warmup_steps = count(20);
    r.git_commit = f[21], r.timestamp = f[22];
    rows.push_back(std::move(r));
  }
  return rows;
}

std::string utc_timestamp() {
  const std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

std::string cpu_model_name() {
  std::ifstream in("/proc/cpuinfo");
  for (std::string line; std::getline(in, line);)
    if (line.rfind("model name", 0) == 0) {
      const auto colon = line.find(':');
      if (colon != std::string::npos) return line.substr(line.find_first_not_of(' ', colon + 1));
    }
  return "unknown cpu";
}

}  // namespace mixseg
