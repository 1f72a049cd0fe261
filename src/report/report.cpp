// Building the report (report.h).
#include "report/report.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <set>
#include <tuple>

#include "bench/energy.h"
#include "report/svg.h"

namespace mixseg {

namespace {

// One configuration: framework, device, phase, model size, batch, input size, precision.
struct Key {
  std::string framework, device_name, phase;
  int filters, batch, height, width;
  std::string precision;
  auto tie() const { return std::tie(framework, device_name, phase, filters, batch, height, width, precision); }
  bool operator<(const Key& o) const { return tie() < o.tie(); }
  Key with_precision(std::string p) const {
    Key k = *this;
    k.precision = std::move(p);
    return k;
  }
};

struct Summary {
  double img_per_s = 0, ms_median = 0, ms_p90 = 0, mem_mib = 0;
  std::optional<double> joules_per_img;
  std::string energy_source;
  int runs = 0;
};

double median_of(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

std::map<Key, Summary> summarise(const std::vector<ResultRow>& rows) {
  std::map<Key, std::vector<const ResultRow*>> groups;
  for (const ResultRow& r : rows)
    if (r.phase == "train" || r.phase == "infer")
      // A framework is its name and version string (PyTorch 1.13 and 2.15, NCHW and channels_last, stay apart).
      groups[{r.framework + " " + r.framework_version, r.device_name, r.phase, r.filters, r.batch, r.height, r.width,
              r.precision}]
          .push_back(&r);
  std::map<Key, Summary> out;
  for (const auto& [k, g] : groups) {
    std::vector<double> ips, ms, p90, mem, joules;
    for (const ResultRow* r : g) {
      ips.push_back(r->img_per_s), ms.push_back(r->ms_per_step_median), p90.push_back(r->ms_p90);
      mem.push_back(r->peak_mem_mib);
      if (r->joules_per_img) joules.push_back(*r->joules_per_img);
    }
    Summary s{median_of(ips), median_of(ms), median_of(p90), median_of(mem), {}, g.front()->energy_source, int(g.size())};
    if (!joules.empty()) s.joules_per_img = median_of(joules);
    out[k] = s;
  }
  return out;
}

std::string num(double v, int digits = 3) { return fmt::format("{:.{}g}", v, digits); }

std::string precision_order_key(const std::string& p) {
  static const std::map<std::string, std::string> order = {{"fp32", "0"}, {"tf32", "1"}, {"mixed_fp16", "2"},
                                                           {"mixed_bf16", "3"}, {"fp16", "4"}, {"bf16", "5"},
                                                           {"int8", "6"}};
  auto it = order.find(p);
  return (it == order.end() ? "9" : it->second) + p;
}

using Table = std::vector<std::vector<std::string>>;

std::string markdown_table(const std::vector<std::string>& head, const Table& cells) {
  std::string md = "| " + fmt::format("{}", fmt::join(head, " | ")) + " |\n|";
  for (size_t i = 0; i < head.size(); ++i) md += "---|";
  md += "\n";
  for (const auto& row : cells) md += "| " + fmt::format("{}", fmt::join(row, " | ")) + " |\n";
  return md;
}

std::string html_table(const std::vector<std::string>& head, const Table& cells) {
  std::string h = "<table>\n<tr>";
  for (const auto& c : head) h += "<th>" + xml_escape(c) + "</th>";
  h += "</tr>\n";
  for (const auto& row : cells) {
    h += "<tr>";
    for (const auto& c : row) h += "<td>" + xml_escape(c) + "</td>";
    h += "</tr>\n";
  }
  return h + "</table>\n";
}

}  // namespace

ReportFiles make_report(const std::vector<ResultRow>& rows, const std::vector<nlohmann::json>& metas,
                        const ReportConfig& cfg) {
  const std::map<Key, Summary> table = summarise(rows);
  ReportFiles out;
  std::vector<std::string> not_measured;
  auto note_once = [&](const std::string& line) {  // sweeps repeat the same reason per row and run
    if (std::find(not_measured.begin(), not_measured.end(), line) == not_measured.end()) not_measured.push_back(line);
  };

  // ---- The key table ------------------------------------------------------
  struct Line {
    Key k;
    Summary s;
    std::optional<double> speedup;
  };
  std::vector<Line> lines;
  for (const auto& [k, s] : table) {
    Line l{k, s, {}};
    auto base = table.find(k.with_precision("fp32"));
    if (base != table.end() && base->second.img_per_s > 0) l.speedup = s.img_per_s / base->second.img_per_s;
    lines.push_back(l);
  }
  std::sort(lines.begin(), lines.end(), [](const Line& a, const Line& b) {
    return std::tuple(a.k.phase, a.k.device_name, a.k.filters, a.k.batch, a.k.framework, precision_order_key(a.k.precision)) <
           std::tuple(b.k.phase, b.k.device_name, b.k.filters, b.k.batch, b.k.framework, precision_order_key(b.k.precision));
  });
  std::set<std::string> missing_base;
  for (const Line& l : lines)
    if (!l.speedup && l.k.precision != "fp32")
      missing_base.insert(fmt::format("{} {} f={} batch {}", l.k.framework, l.k.phase, l.k.filters, l.k.batch));
  for (const auto& m : missing_base) not_measured.push_back(fmt::format("speedup of {}: no fp32 row to compare with", m));

  const std::vector<std::string> head = {"phase", "framework", "device", "f", "batch", "precision", "img/s",
                                         "x fp32", "ms/step", "p90 ms", "J/img", "img/J", "kWh / 1M img",
                                         "cost / 1M img", "kg CO2e / 1M img", "mem MiB", "runs"};
  Table cells;
  bool any_energy = false;
  for (const Line& l : lines) {
    const auto& j = l.s.joules_per_img;
    any_energy = any_energy || j.has_value();
    const double per_million = j ? *j * 1e6 : 0;
    cells.push_back({l.k.phase, l.k.framework, l.k.device_name, std::to_string(l.k.filters), std::to_string(l.k.batch),
                     l.k.precision, num(l.s.img_per_s), l.speedup ? num(*l.speedup) + "x" : "-", num(l.s.ms_median),
                     num(l.s.ms_p90), j ? num(*j) : "unavailable", j && *j > 0 ? num(1.0 / *j) : "-",
                     j ? num(kwh_from_joules(per_million)) : "-",
                     j ? num(cost_from_joules(per_million, cfg.price_per_kwh)) : "-",
                     j ? num(gco2_from_joules(per_million, cfg.grid_gco2_per_kwh) / 1000) : "-",
                     num(l.s.mem_mib), std::to_string(l.s.runs)});
  }

  // ---- The paper's two comparisons, compact ---------------------------------
  // Mixed precision over fp32: per framework and configuration, each other
  // precision's speedup over the same framework's fp32 (and J/img against
  // fp32's where measured). Frameworks side by side: per precision and
  // configuration, mixseg against the fastest other framework measured on
  // the same device. These are the tables docs/results.md quotes.
  std::vector<std::string> other_precisions;
  for (const Line& l : lines)
    if (l.k.precision != "fp32" &&
        std::find(other_precisions.begin(), other_precisions.end(), l.k.precision) == other_precisions.end())
      other_precisions.push_back(l.k.precision);
  std::sort(other_precisions.begin(), other_precisions.end(),
            [](const std::string& a, const std::string& b) { return precision_order_key(a) < precision_order_key(b); });
  auto size_of = [](const Key& k) { return fmt::format("{}x{}", k.height, k.width); };
  std::vector<std::string> headline_head = {"device", "framework", "phase", "size", "f", "batch", "fp32 img/s"};
  for (const std::string& p : other_precisions) headline_head.push_back(p);
  std::vector<std::string> energy_head = {"device", "framework", "phase", "size", "f", "batch", "fp32 J/img"};
  for (const std::string& p : other_precisions) energy_head.push_back(p + " J/img (x fp32)");
  Table headline_cells, energy_cells;
  for (const Line& l : lines) {
    if (l.k.precision != "fp32") continue;
    std::vector<std::string> sp = {l.k.device_name, l.k.framework, l.k.phase, size_of(l.k), std::to_string(l.k.filters),
                                   std::to_string(l.k.batch), num(l.s.img_per_s)};
    const size_t prefix = sp.size();  // the columns before the other precisions'
    std::vector<std::string> en = sp;
    const std::optional<double>& j32 = l.s.joules_per_img;
    en.back() = j32 ? num(*j32) : "unavailable";
    for (const std::string& p : other_precisions) {
      auto it = table.find(l.k.with_precision(p));
      const bool have = it != table.end() && l.s.img_per_s > 0;
      sp.push_back(have ? num(it->second.img_per_s / l.s.img_per_s) + "x" : "-");
      const std::optional<double> j = have ? it->second.joules_per_img : std::nullopt;
      en.push_back(!j ? "-" : j32 && *j32 > 0 ? fmt::format("{} ({}x)", num(*j), num(*j / *j32)) : num(*j));
    }
    // Only frameworks measured in another precision too (the CPU peers ran fp32 alone).
    auto measured = [prefix](const std::vector<std::string>& row) {
      return std::any_of(row.begin() + long(prefix), row.end(), [](const std::string& c) { return c != "-"; });
    };
    if (measured(sp)) {
      headline_cells.push_back(sp);
      if (j32 || measured(en)) energy_cells.push_back(en);
    }
  }
  auto is_mixseg = [](const std::string& framework) { return framework.rfind("mixseg ", 0) == 0; };
  // The energy columns only where some row measured energy (else "unavailable" throughout).
  std::vector<std::string> peers_head = {"device", "phase", "precision", "size", "f", "batch", "mixseg",
                                         "img/s", "fastest other framework", "img/s", "mixseg / other"};
  if (any_energy) peers_head.insert(peers_head.end(), {"mixseg J/img", "other J/img"});
  Table peers_cells;
  std::vector<const Line*> ours;
  for (const Line& l : lines)
    if (is_mixseg(l.k.framework)) ours.push_back(&l);
  std::sort(ours.begin(), ours.end(), [](const Line* a, const Line* b) {
    return std::tuple(a->k.device_name, a->k.phase, precision_order_key(a->k.precision), a->k.filters, a->k.batch,
                      a->k.framework) < std::tuple(b->k.device_name, b->k.phase, precision_order_key(b->k.precision),
                                                   b->k.filters, b->k.batch, b->k.framework);
  });
  for (const Line* m : ours) {
    const Line* best = nullptr;
    for (const Line& o : lines)
      if (!is_mixseg(o.k.framework) && o.k.device_name == m->k.device_name && o.k.phase == m->k.phase &&
          o.k.precision == m->k.precision && o.k.filters == m->k.filters && o.k.batch == m->k.batch &&
          o.k.height == m->k.height && o.k.width == m->k.width && (!best || o.s.img_per_s > best->s.img_per_s))
        best = &o;
    if (!best || best->s.img_per_s <= 0) continue;
    const auto& jm = m->s.joules_per_img;
    const auto& jo = best->s.joules_per_img;
    std::vector<std::string> row = {m->k.device_name, m->k.phase, m->k.precision, size_of(m->k),
                                    std::to_string(m->k.filters), std::to_string(m->k.batch), m->k.framework,
                                    num(m->s.img_per_s), best->k.framework, num(best->s.img_per_s),
                                    num(m->s.img_per_s / best->s.img_per_s) + "x"};
    if (any_energy) row.insert(row.end(), {jm ? num(*jm) : "unavailable", jo ? num(*jo) : "unavailable"});
    peers_cells.push_back(row);
  }
  const std::string headline_note =
      "Each precision's throughput over the same framework's fp32 on the same device, model size (f), batch and "
      "input size (the paper's headline: what mixed precision buys per model size and batch size).";
  const std::string energy_note =
      "Net joules per image (idle baseline subtracted), and in brackets the ratio to fp32's.";
  const std::string peers_note =
      "mixseg against the fastest other framework measured in the same precision, configuration and device "
      "(medians of repeated runs; a framework's variants, e.g. PyTorch NCHW and channels_last, count separately).";

  // ---- Energy method and what was not measured ------------------------------
  std::set<std::string> methods;
  for (const nlohmann::json& m : metas) {
    const nlohmann::json e = m.value("energy", nlohmann::json::object());
    const std::string why = e.value("unavailable_because", "");
    if (!why.empty()) {
      // Once per device and reason: every run of a sweep on one machine gives the same one.
      note_once(fmt::format("energy on {}: {}", m.value("device_name", "?"), why));
    } else {
      methods.insert(fmt::format("{} on {}: {}, idle baseline {:.1f} W measured for {} s before the sweep and "
                                 "subtracted (J/img is net; gross in the run metadata), windows of at least {} s",
                                 e.value("method", "?"), m.value("device_name", "?"), e.value("domain", "?"),
                                 e.value("idle_baseline_watts", 0.0), e.value("idle_seconds", 0.0),
                                 e.value("window_seconds_min", 2.0)));
    }
  }
  for (const nlohmann::json& m : metas)  // configurations a sweep skipped: too large for the device's memory
    for (const nlohmann::json& k : m.value("skipped", nlohmann::json::array()))
      note_once(fmt::format("{} {} f={} batch {} on {}: out of memory", k.value("phase", "?"), k.value("precision", "?"),
                            k.value("filters", 0), k.value("batch", 0), m.value("device_name", "?")));
  if (!any_energy && metas.empty()) not_measured.push_back("energy: no row has a measured value and no run metadata says why");
  if (cfg.parity.empty())
    not_measured.push_back("Dice parity across precisions: no parity results given (mixseg parity --out FILE, then "
                           "mixseg report --parity FILE)");
  const std::vector<ParitySummary> parity = summarize_parity(cfg.parity);
  if (!parity.empty()) {
    BarChart pc{"Dice per precision (mean over seeds, held-out images)", "Dice", {}, {{"Dice", {}}}};
    for (const ParitySummary& p : parity) {
      pc.categories.push_back(p.precision);
      pc.series[0].values.push_back(p.dice_mean);
    }
    out.svgs.push_back({"parity.svg", render_bar_chart(pc)});
  }
  const std::vector<std::string> parity_head = {"precision", "seeds", "Dice mean", "Dice sd", "IoU mean", "IoU sd",
                                                "Dice - fp32"};
  Table parity_cells;
  for (const ParitySummary& p : parity)
    parity_cells.push_back({p.precision, std::to_string(p.seeds), fmt::format("{:.4f}", p.dice_mean),
                            fmt::format("{:.4f}", p.dice_std), fmt::format("{:.4f}", p.iou_mean),
                            fmt::format("{:.4f}", p.iou_std), fmt::format("{:+.4f}", p.dice_vs_fp32)});

  // ---- The convolutions alone (mixseg bench --conv-ceiling) -----------------
  // Per device, phase, precision, model size and batch: the whole step's
  // TFLOP/s against the same convolutions run alone (the library's ceiling
  // on these shapes), medians over the runs that measured it.
  std::map<std::tuple<std::string, std::string, std::string, int, int>, std::vector<std::pair<double, double>>> ceil;
  for (const nlohmann::json& m : metas)
    for (const nlohmann::json& r : m.value("rows", nlohmann::json::array()))
      if (r.contains("conv_ceiling_tflops") && r.contains("share_of_conv_ceiling"))
        ceil[{m.value("device_name", "?"), r.value("phase", "?"), r.value("precision", "?"), r.value("filters", 0),
              r.value("batch", 0)}]
            .push_back({r["conv_ceiling_tflops"].get<double>(), r["share_of_conv_ceiling"].get<double>()});
  const std::vector<std::string> ceiling_head = {"device", "phase", "precision", "f", "batch", "step TFLOP/s",
                                                 "convolutions alone, TFLOP/s", "step / convolutions alone", "runs"};
  Table ceiling_cells;
  for (const auto& [k, v] : ceil) {
    std::vector<double> tf, share, step;
    for (const auto& [t, s] : v) tf.push_back(t), share.push_back(s), step.push_back(t * s);
    const auto& [device, phase, precision, f, b] = k;
    ceiling_cells.push_back({device, phase, precision, std::to_string(f), std::to_string(b), num(median_of(step)),
                             num(median_of(tf)), fmt::format("{:.0f}%", 100 * median_of(share)),
                             std::to_string(v.size())});
  }
  const std::string ceiling_note =
      "The step's convolutions run alone on the same shapes and buffers right after the step was measured (forward, "
      "and in training both gradients; FLOPs counted as for the step): the ceiling the convolution library sets. The "
      "share is what the whole step reaches of it; the rest is the memory-bound ops, launches and the optimizer.";

  // ---- Plots ---------------------------------------------------------------
  std::set<std::string> phases, frameworks;
  for (const Line& l : lines) phases.insert(l.k.phase), frameworks.insert(l.k.framework);
  for (const std::string& phase : phases) {
    // Speedup over fp32 vs batch size, one line per framework, model size and precision.
    LineChart sp{fmt::format("{}: speedup over fp32 vs batch size", phase), "batch size", "speedup over fp32 (x)", {},
                 true, 1.0};
    std::map<std::string, LineSeries> by_name;
    for (const Line& l : lines)
      if (l.k.phase == phase && l.speedup && l.k.precision != "fp32") {
        const std::string name = fmt::format("{} f={} {}", l.k.framework, l.k.filters, l.k.precision);
        by_name[name].name = name;
        by_name[name].points.push_back({double(l.k.batch), *l.speedup});
      }
    for (auto& [n, s] : by_name) sp.series.push_back(s);
    out.svgs.push_back({fmt::format("speedup_{}.svg", phase), render_line_chart(sp)});

    // Throughput, images per joule and peak memory per framework and
    // precision (a bar series each), per model size and batch (the categories).
    std::vector<std::tuple<int, int>> configs;
    std::vector<std::string> combos;
    for (const Line& l : lines)
      if (l.k.phase == phase) {
        if (std::find(configs.begin(), configs.end(), std::tuple(l.k.filters, l.k.batch)) == configs.end())
          configs.push_back({l.k.filters, l.k.batch});
        const std::string c = l.k.framework + " " + l.k.precision;
        if (std::find(combos.begin(), combos.end(), c) == combos.end()) combos.push_back(c);
      }
    BarChart tp{fmt::format("{}: throughput", phase), "images per second", {}, {}};
    for (auto [f, b] : configs) tp.categories.push_back(fmt::format("f={} b={}", f, b));
    BarChart en{fmt::format("{}: images per joule (net of idle)", phase), "images per joule", tp.categories, {}};
    BarChart mem{fmt::format("{}: peak memory (mixseg's arena; peers: their own figure)", phase), "MiB", tp.categories, {}};
    for (const std::string& c : combos)
      for (BarChart* chart : {&tp, &en, &mem}) chart->series.push_back({c, std::vector<double>(configs.size(), kMissing)});
    for (const Line& l : lines) {
      if (l.k.phase != phase) continue;
      const size_t i = size_t(std::find(configs.begin(), configs.end(), std::tuple(l.k.filters, l.k.batch)) - configs.begin());
      const size_t c = size_t(std::find(combos.begin(), combos.end(), l.k.framework + " " + l.k.precision) - combos.begin());
      tp.series[c].values[i] = l.s.img_per_s;
      if (l.s.joules_per_img && *l.s.joules_per_img > 0) en.series[c].values[i] = 1.0 / *l.s.joules_per_img;
      if (l.s.mem_mib > 0) mem.series[c].values[i] = l.s.mem_mib;
    }
    out.svgs.push_back({fmt::format("throughput_{}.svg", phase), render_bar_chart(tp)});
    if (any_energy) out.svgs.push_back({fmt::format("energy_{}.svg", phase), render_bar_chart(en)});
    out.svgs.push_back({fmt::format("memory_{}.svg", phase), render_bar_chart(mem)});
  }

  // ---- Markdown -------------------------------------------------------------
  std::set<std::string> devices, versions, stacks;
  for (const ResultRow& r : rows) {
    devices.insert(fmt::format("{} ({})", r.device_name, r.device));
    versions.insert(r.framework + " " + r.framework_version);
  }
  // What mixseg ran on, from its runs' metadata: the libraries and which
  // int8 convolution (AMX, VNNI, AVX2) the CPU took, since int8 figures from
  // two CPUs mean little without it.
  for (const nlohmann::json& m : metas) {
    if (!m.contains("onednn_version")) continue;
    std::string line = fmt::format("mixseg on {}: {} threads, oneDNN {}", m.value("device_name", "?"),
                                   m.value("threads", 0), m.value("onednn_version", "?"));
    if (m.contains("int8_convolutions")) line += ", int8 convolutions: " + m.value("int8_convolutions", "?");
    if (m.value("device", "") == "cuda") line += ", " + m.value("cuda", "?");
    stacks.insert(line);
  }

  std::string md = "# mixseg benchmark report\n\n";
  md += fmt::format("Sources: {}. {} rows, {} configurations (repeated runs of one configuration are summarised by "
                    "their median).\n\n",
                    cfg.sources.empty() ? std::string("(rows given directly)") : fmt::format("{}", fmt::join(cfg.sources, ", ")),
                    rows.size(), table.size());
  md += "## Hardware and software\n\n";
  for (const auto& d : devices) md += "- device: " + d + "\n";
  for (const auto& v : versions) md += "- framework: " + v + "\n";
  for (const auto& l : stacks) md += "- " + l + "\n";
  md += "\n## Energy method\n\n";
  if (methods.empty()) md += "- no energy was measured in these runs (see below)\n";
  for (const auto& m : methods) md += "- " + m + "\n";
  md += fmt::format("- cost at {} per kWh and CO2 at {} g CO2e per kWh (set with --price-per-kwh and "
                    "--grid-gco2-per-kwh)\n\n",
                    cfg.price_per_kwh, cfg.grid_gco2_per_kwh);
  // The tables, in order, each with its note (empty: none); a table without
  // rows is left out (all results always has some).
  struct Section {
    const char* title;
    const std::string& note;
    const std::vector<std::string>& head;
    const Table& cells;
  };
  const std::string no_note;
  const std::vector<Section> sections = {
      {"Mixed precision over fp32", headline_note, headline_head, headline_cells},
      {"Energy per image against fp32", energy_note, energy_head, energy_cells},
      {"Frameworks side by side", peers_note, peers_head, peers_cells},
      {"All results", no_note, head, cells},
      {"Against the convolutions alone", ceiling_note, ceiling_head, ceiling_cells},
      {"Accuracy parity", no_note, parity_head, parity_cells}};
  for (const Section& t : sections)
    if (!t.cells.empty())
      md += fmt::format("## {}\n\n{}", t.title, t.note.empty() ? "" : t.note + "\n\n") + markdown_table(t.head, t.cells) +
            "\n";
  md += "## Plots\n\n";
  for (const auto& [name, svg] : out.svgs) md += fmt::format("![{}]({})\n", name, name);
  md += "\n## Not measured\n\n";
  for (const auto& n : not_measured) md += "- " + n + "\n";
  out.markdown = md;

  // ---- HTML (well-formed XHTML, plots inline) ---------------------------------
  std::string h =
      "<!DOCTYPE html>\n<html xmlns=\"http://www.w3.org/1999/xhtml\" lang=\"en\">\n<head>\n<meta charset=\"utf-8\"/>\n"
      "<title>mixseg benchmark report</title>\n<style>body{font-family:sans-serif;margin:2em;max-width:1400px}"
      "table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ccc;padding:3px 6px;text-align:right}"
      "th{background:#f0f0f0}td:nth-child(-n+3){text-align:left}.plots svg{margin:8px;border:1px solid #eee}</style>\n"
      "</head>\n<body>\n<h1>mixseg benchmark report</h1>\n";
  h += "<h2>Hardware and software</h2>\n<ul>\n";
  for (const auto& d : devices) h += "<li>device: " + xml_escape(d) + "</li>\n";
  for (const auto& v : versions) h += "<li>framework: " + xml_escape(v) + "</li>\n";
  for (const auto& l : stacks) h += "<li>" + xml_escape(l) + "</li>\n";
  h += "</ul>\n<h2>Energy method</h2>\n<ul>\n";
  if (methods.empty()) h += "<li>no energy was measured in these runs (see below)</li>\n";
  for (const auto& m : methods) h += "<li>" + xml_escape(m) + "</li>\n";
  h += fmt::format("<li>cost at {} per kWh, CO2 at {} g CO2e per kWh</li>\n</ul>\n", cfg.price_per_kwh,
                   cfg.grid_gco2_per_kwh);
  for (const Section& t : sections)
    if (!t.cells.empty())
      h += fmt::format("<h2>{}</h2>\n{}", t.title, t.note.empty() ? "" : "<p>" + xml_escape(t.note) + "</p>\n") +
           html_table(t.head, t.cells);
  h += "<h2>Plots</h2>\n<div class=\"plots\">\n";
  for (const auto& [name, svg] : out.svgs) h += svg;
  h += "</div>\n<h2>Not measured</h2>\n<ul>\n";
  for (const auto& n : not_measured) h += "<li>" + xml_escape(n) + "</li>\n";
  h += "</ul>\n</body>\n</html>\n";
  out.html = h;
  return out;
}

}  // namespace mixseg
