// `mixseg report`: the benchmark report from results CSVs (report/report.h):
// report.md, report.html and one .svg per plot in the output folder.
#include <fmt/format.h>

#include <filesystem>
#include <fstream>
#include <memory>

#include "bench/result_row.h"
#include "cli/commands.h"
#include "core/error.h"
#include "core/file_util.h"
#include "report/report.h"

namespace mixseg::cli {

namespace {

struct ReportOptions {
  std::vector<std::string> csvs;
  std::string out, parity;
  ReportConfig cfg;
};

void write_text(const std::string& path, const std::string& text) {
  write_atomically(path, [&](const std::string& tmp) {
    std::ofstream f(tmp, std::ios::binary);
    f << text;
    f.close();
    if (!f) fail("{}: cannot write", path);
  });
}

void run_report(ReportOptions o) {
  std::vector<ResultRow> rows;
  std::vector<nlohmann::json> metas;
  for (const std::string& csv : o.csvs) {
    const std::vector<ResultRow> r = read_results_csv(csv);
    rows.insert(rows.end(), r.begin(), r.end());
    std::ifstream meta(csv + ".meta.jsonl");  // written by mixseg bench next to its CSV; peers write none
    int n = 0;
    for (std::string line; std::getline(meta, line);) {
      ++n;
      if (line.empty()) continue;
      try {
        metas.push_back(nlohmann::json::parse(line));
      } catch (const nlohmann::json::exception& e) {
        fail("{}.meta.jsonl:{}: not JSON: {}", csv, n, e.what());
      }
    }
  }
  if (rows.empty()) fail("no benchmark rows in {}", fmt::join(o.csvs, ", "));
  o.cfg.sources = o.csvs;
  if (!o.parity.empty()) o.cfg.parity = read_parity_csv(o.parity);
  const ReportFiles files = make_report(rows, metas, o.cfg);
  ensure_writable_dir(o.out);
  namespace fs = std::filesystem;
  write_text((fs::path(o.out) / "report.md").string(), files.markdown);
  write_text((fs::path(o.out) / "report.html").string(), files.html);
  for (const auto& [name, svg] : files.svgs) write_text((fs::path(o.out) / name).string(), svg);
  fmt::print("wrote {}/report.md, report.html and {} plots from {} rows\n", o.out, files.svgs.size(), rows.size());
}

}  // namespace

void add_report(CLI::App& app) {
  auto o = std::make_shared<ReportOptions>();
  CLI::App* c = app.add_subcommand("report", "Report (Markdown, HTML, SVG plots) from benchmark CSVs, mixseg's and the peers'");
  c->add_option("csv", o->csvs, "Results CSVs in the design's schema (their .meta.jsonl is read when present)")
      ->required();
  c->add_option("--out", o->out, "Output folder")->required();
  c->add_option("--parity", o->parity, "Parity CSV from mixseg parity (the Dice side by side)");
  c->add_option("--price-per-kwh", o->cfg.price_per_kwh, "Electricity price for the cost column")
      ->capture_default_str()->check(non_negative);
  c->add_option("--grid-gco2-per-kwh", o->cfg.grid_gco2_per_kwh, "Grid carbon intensity for the CO2 column")
      ->capture_default_str()->check(non_negative);
  c->callback([o] { run_report(*o); });
}

}  // namespace mixseg::cli
