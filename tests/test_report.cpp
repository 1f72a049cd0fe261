// The report: results CSVs read back as written (and malformed ones refused
// by file and line), the key table's figures (median of repeated runs,
// speedup over the same framework's fp32, energy units per million images),
// what could not be measured listed, and the SVG charts' structure.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <fstream>

#include "report/advise.h"
#include "report/report.h"
#include "report/svg.h"
#include "test_util.h"

using namespace mixseg;

namespace {

ResultRow row(const std::string& precision, double img_per_s, std::optional<double> joules = {}) {
  ResultRow r;
  r.framework = "mixseg";
  r.framework_version = "0.1.0 (fast)";
  r.device = "cpu";
  r.device_name = "Test CPU, \"quoted\"";
  r.precision = precision;
  r.phase = "infer";
  r.filters = 8, r.depth = 4, r.batch = 2, r.height = 64, r.width = 64;
  r.img_per_s = img_per_s;
  r.ms_per_step_median = 2000.0 / img_per_s;
  r.ms_p90 = r.ms_p99 = r.ms_per_step_median * 1.1;
  r.joules_per_img = joules;
  r.energy_source = joules ? "rapl" : "unavailable";
  r.peak_mem_mib = 12.5;
  r.steps = 10, r.warmup_steps = 3;
  r.git_commit = "abc";
  r.timestamp = "2026-11-29T00:00:00Z";
  return r;
}

}  // namespace

TEST(ResultsCsv, ReadsBackWhatWasWritten) {
  const auto dir = test::temp_dir("csv");
  const std::string path = (dir / "r.csv").string();
  append_results_csv(path, {row("fp32", 10, 3.6), row("mixed_bf16", 20)});
  const std::vector<ResultRow> back = read_results_csv(path);
  ASSERT_EQ(back.size(), 2u);
  EXPECT_EQ(back[0].device_name, "Test CPU, \"quoted\"");
  EXPECT_EQ(back[0].joules_per_img, 3.6);
  EXPECT_FALSE(back[1].joules_per_img.has_value());
  EXPECT_EQ(back[1].img_per_s, 20);
  EXPECT_EQ(back[1].timestamp, "2026-11-29T00:00:00Z");
  std::ofstream(path, std::ios::app) << "mixseg,x,cpu,y,fp32,infer,8,4,2,64,64,fast!,1,1,1,1,,unavailable,1,1,1,a,b\n";
  test::expect_error_containing([&] { read_results_csv(path); }, path + ":4: column 12 is not a finite number");
  // Not finite, or a size that is no whole number (an int conversion of 1e300 would be undefined).
  for (const char* bad : {"8,4,2,64,64,nan,1", "8,4,2,64,64,inf,1", "1e300,4,2,64,64,5,1", "8,4,2.5,64,64,5,1"}) {
    append_results_csv(path + ".2", {row("fp32", 10)});
    std::ofstream(path + ".2", std::ios::app) << "mixseg,x,cpu,y,fp32,infer," << bad << ",1,1,1,,unavailable,1,1,1,a,b\n";
    test::expect_error_containing([&] { read_results_csv(path + ".2"); }, path + ".2:3: column");
    std::filesystem::remove(path + ".2");
  }
  std::filesystem::remove_all(dir);
}

TEST(Report, KeyTableFiguresAndWhatWasNotMeasured) {
  // Three runs of fp32 (median 10 img/s), one of mixed_bf16 at 20: speedup 2x.
  // 3.6 J per image is 1 kWh per million images: cost 0.3, 0.4 kg CO2e at the defaults.
  const std::vector<ResultRow> rows = {row("fp32", 9, 3.6), row("fp32", 10, 3.6), row("fp32", 50, 3.6),
                                       row("mixed_bf16", 20), row("int8", 5)};
  ResultRow lone = row("mixed_fp16", 7);
  lone.filters = 16;  // no fp32 row at f=16
  std::vector<ResultRow> all = rows;
  all.push_back(lone);
  const nlohmann::json meta = {{"device_name", "Test CPU"}, {"energy", {{"unavailable_because", "no powercap"}}}};
  const ReportFiles f = make_report(all, {meta, meta}, {});  // two runs with the same reason: said once
  EXPECT_NE(f.markdown.find("| fp32 | 10 | 1x | 200 | 220 | 3.6 | 0.278 | 1 | 0.3 | 0.4 | 12.5 | 3 |"), std::string::npos)
      << f.markdown;
  EXPECT_NE(f.markdown.find("| mixed_bf16 | 20 | 2x |"), std::string::npos);
  EXPECT_NE(f.markdown.find("| int8 | 5 | 0.5x |"), std::string::npos);
  EXPECT_NE(f.markdown.find("unavailable"), std::string::npos);
  const size_t said = f.markdown.find("energy on Test CPU: no powercap");
  EXPECT_NE(said, std::string::npos);
  EXPECT_EQ(f.markdown.find("energy on Test CPU: no powercap", said + 1), std::string::npos) << f.markdown;
  EXPECT_NE(f.markdown.find("speedup of mixseg 0.1.0 (fast) infer f=16 batch 2: no fp32 row"), std::string::npos);
  // A configuration the sweep skipped (out of memory) is listed once, though two runs skipped it.
  nlohmann::json skipped = meta;
  skipped["skipped"] = {{{"phase", "train"}, {"precision", "fp32"}, {"filters", 64}, {"batch", 32}, {"reason", "x"}}};
  const std::string sk = make_report(all, {skipped, skipped}, {}).markdown;
  const std::string said_oom = "- train fp32 f=64 batch 32 on Test CPU: out of memory\n";
  EXPECT_NE(sk.find(said_oom), std::string::npos) << sk;
  EXPECT_EQ(sk.find(said_oom, sk.find(said_oom) + 1), std::string::npos);
  // The libraries and the int8 convolution from mixseg's run metadata, once per distinct line.
  nlohmann::json stack = meta;
  stack["onednn_version"] = "2.6.3";
  stack["threads"] = 2;
  stack["int8_convolutions"] = "amx";
  const std::string sm = make_report(all, {stack, stack}, {}).markdown;
  const std::string said_stack = "- mixseg on Test CPU: 2 threads, oneDNN 2.6.3, int8 convolutions: amx\n";
  const size_t at = sm.find(said_stack);
  EXPECT_NE(at, std::string::npos) << sm;
  EXPECT_EQ(sm.find(said_stack, at + 1), std::string::npos);
  EXPECT_EQ(f.markdown.find("- mixseg on "), std::string::npos) << "no such line without the metadata";
  // Versions of one framework are kept apart: another version's fp32 is not this one's baseline.
  ResultRow other = row("mixed_bf16", 40);
  other.framework_version = "0.2.0 (fast)";
  const ReportFiles g = make_report({row("fp32", 10), other}, {}, {});
  EXPECT_NE(g.markdown.find("| mixseg 0.2.0 (fast) | Test CPU, \"quoted\" | 8 | 2 | mixed_bf16 | 40 | - |"), std::string::npos)
      << g.markdown;
  EXPECT_NE(f.markdown.find("Dice parity"), std::string::npos);
  EXPECT_NE(f.html.find("<td>Test CPU, &quot;quoted&quot;</td>"), std::string::npos);
  std::vector<std::string> names;
  for (const auto& [name, svg] : f.svgs) names.push_back(name);
  EXPECT_EQ(names, (std::vector<std::string>{"speedup_infer.svg", "throughput_infer.svg", "energy_infer.svg",
                                             "memory_infer.svg"}));
  ReportConfig priced;
  priced.price_per_kwh = 0.5;
  priced.grid_gco2_per_kwh = 100;
  EXPECT_NE(make_report(rows, {}, priced).markdown.find("| 3.6 | 0.278 | 1 | 0.5 | 0.1 |"), std::string::npos);
}

// The paper's two comparisons as compact tables: each precision over the
// same framework's fp32 per configuration (frameworks measured in fp32 alone
// left out), J/img against fp32's where measured, and mixseg against the
// fastest other framework in the same precision and configuration.
TEST(Report, MixedOverFp32AndFrameworksSideBySide) {
  auto peer = [](const std::string& framework, const std::string& precision, double img_per_s,
                 std::optional<double> joules = {}) {
    ResultRow r = row(precision, img_per_s, joules);
    r.framework = framework;
    r.framework_version = "1.0";
    return r;
  };
  ResultRow big = row("fp32", 4, 2.0), big_bf16 = row("mixed_bf16", 10, 0.5);
  big.filters = big_bf16.filters = 32;
  const std::vector<ResultRow> rows = {row("fp32", 10, 4.0),           row("fp32", 12, 4.0),
                                       row("mixed_bf16", 33, 1.0),     row("int8", 44),
                                       big,                            big_bf16,
                                       peer("pytorch", "fp32", 5, 8.0), peer("pytorch", "fp32", 7, 8.0),
                                       peer("jax", "fp32", 8),          peer("pytorch", "mixed_bf16", 20, 2.0)};
  const ReportFiles f = make_report(rows, {}, {});
  const std::string& md = f.markdown;
  const size_t mixed = md.find("## Mixed precision over fp32"), energy = md.find("## Energy per image against fp32"),
               peers = md.find("## Frameworks side by side"), all = md.find("## All results");
  ASSERT_NE(mixed, std::string::npos) << md;
  ASSERT_NE(energy, std::string::npos) << md;
  ASSERT_NE(peers, std::string::npos) << md;
  ASSERT_NE(all, std::string::npos) << md;
  EXPECT_TRUE(mixed < energy && energy < peers && peers < all) << md;
  const std::string mixed_md = md.substr(mixed, energy - mixed), energy_md = md.substr(energy, peers - energy),
                    peers_md = md.substr(peers, all - peers);
  // fp32 median of 10 and 12 is 11: bf16 33 / 11 = 3x, int8 44 / 11 = 4x; PyTorch 20 / 6 = 3.33x.
  EXPECT_NE(mixed_md.find("| device | framework | phase | size | f | batch | fp32 img/s | mixed_bf16 | int8 |"),
            std::string::npos)
      << mixed_md;
  const std::string dev = "Test CPU, \"quoted\"";
  EXPECT_NE(mixed_md.find("| " + dev + " | mixseg 0.1.0 (fast) | infer | 64x64 | 8 | 2 | 11 | 3x | 4x |"),
            std::string::npos)
      << mixed_md;
  EXPECT_NE(mixed_md.find("| " + dev + " | mixseg 0.1.0 (fast) | infer | 64x64 | 32 | 2 | 4 | 2.5x | - |"),
            std::string::npos)
      << mixed_md;
  EXPECT_NE(mixed_md.find("| pytorch 1.0 | infer | 64x64 | 8 | 2 | 6 | 3.33x | - |"), std::string::npos) << mixed_md;
  EXPECT_EQ(mixed_md.find("jax"), std::string::npos) << "a framework measured in fp32 alone has no row";
  // J/img and its ratio to fp32's; int8 measured no energy.
  EXPECT_NE(energy_md.find("| mixseg 0.1.0 (fast) | infer | 64x64 | 8 | 2 | 4 | 1 (0.25x) | - |"), std::string::npos)
      << energy_md;
  EXPECT_NE(energy_md.find("| mixseg 0.1.0 (fast) | infer | 64x64 | 32 | 2 | 2 | 0.5 (0.25x) | - |"), std::string::npos)
      << energy_md;
  // fp32: the fastest other framework is JAX (8) over PyTorch's median 6; bf16: PyTorch alone.
  EXPECT_NE(peers_md.find("| " + dev +
                          " | infer | fp32 | 64x64 | 8 | 2 | mixseg 0.1.0 (fast) | 11 | jax 1.0 | 8 | 1.38x | 4 | unavailable |"),
            std::string::npos)
      << peers_md;
  EXPECT_NE(
      peers_md.find("| infer | mixed_bf16 | 64x64 | 8 | 2 | mixseg 0.1.0 (fast) | 33 | pytorch 1.0 | 20 | 1.65x | 1 | 2 |"),
      std::string::npos)
      << peers_md;
  EXPECT_EQ(peers_md.find("| 32 |"), std::string::npos) << "no other framework measured f=32";
  EXPECT_EQ(peers_md.find("int8"), std::string::npos) << "no other framework measured int8";
  EXPECT_NE(f.html.find("<h2>Frameworks side by side</h2>"), std::string::npos);
  // Without any energy figure the energy table and columns are left out.
  const std::string plain = make_report({row("fp32", 10), row("mixed_fp16", 15), peer("pytorch", "fp32", 5)}, {}, {})
                                .markdown;
  EXPECT_EQ(plain.find("## Energy per image"), std::string::npos) << plain;
  EXPECT_NE(plain.find("| mixseg 0.1.0 (fast) | 10 | pytorch 1.0 | 5 | 2x |\n"), std::string::npos) << plain;
  // Nothing to set side by side: neither section.
  const std::string alone = make_report({row("fp32", 10)}, {}, {}).markdown;
  EXPECT_EQ(alone.find("## Mixed precision over fp32"), std::string::npos);
  EXPECT_EQ(alone.find("## Frameworks side by side"), std::string::npos);
}

// Runs of `mixseg bench --conv-ceiling`: the step against its convolutions
// alone, medians over runs per configuration; no section without them.
TEST(Report, StepAgainstItsConvolutionsAlone) {
  auto run = [](double ceiling, double share) {
    return nlohmann::json{{"device_name", "Test GPU"},
                          {"rows",
                           {{{"phase", "train"}, {"precision", "mixed_fp16"}, {"filters", 64}, {"batch", 8},
                             {"conv_ceiling_tflops", ceiling}, {"share_of_conv_ceiling", share}},
                            {{"phase", "infer"}, {"precision", "fp32"}, {"filters", 8}, {"batch", 1}}}}};
  };
  const ReportFiles f = make_report({row("fp32", 10)}, {run(400, 0.5), run(500, 0.6), run(600, 0.1)}, {});
  EXPECT_NE(f.markdown.find("## Against the convolutions alone"), std::string::npos) << f.markdown;
  EXPECT_NE(f.markdown.find("| Test GPU | train | mixed_fp16 | 64 | 8 | 200 | 500 | 50% | 3 |"), std::string::npos)
      << f.markdown;
  EXPECT_EQ(f.markdown.find("| Test GPU | infer |"), std::string::npos) << "a row without the ceiling is not listed";
  EXPECT_NE(f.html.find("<h2>Against the convolutions alone</h2>"), std::string::npos);
  EXPECT_EQ(make_report({row("fp32", 10)}, {}, {}).markdown.find("convolutions alone"), std::string::npos);
}

TEST(Svg, ChartsHaveTheirSeriesAndEscapeText) {
  EXPECT_EQ(xml_escape("a<b & \"c\" 'd'>"), "a&lt;b &amp; &quot;c&quot; &apos;d&apos;&gt;");
  LineChart lc{"speedup <train>", "batch", "x", {{"f=8 bf16", {{1, 1.5}, {4, 1.8}}}, {"f=8 int8", {{1, 0.5}, {4, 0.6}}}},
               true, 1.0};
  const std::string s = render_line_chart(lc);
  EXPECT_EQ(s.rfind("<svg xmlns=\"http://www.w3.org/2000/svg\"", 0), 0u);
  EXPECT_NE(s.find("speedup &lt;train&gt;"), std::string::npos);
  size_t lines = 0;
  for (size_t p = s.find("<polyline"); p != std::string::npos; p = s.find("<polyline", p + 1)) ++lines;
  EXPECT_EQ(lines, 2u);
  EXPECT_NE(s.find("stroke-dasharray"), std::string::npos);  // the reference line at 1
  const std::string b = render_bar_chart({"t", "img/s", {"a", "b"}, {{"fp32", {1, 2}}, {"bf16", {3, kMissing}}}});
  size_t bars = 0;
  for (size_t p = b.find("<rect x="); p != std::string::npos; p = b.find("<rect x=", p + 1)) ++bars;
  EXPECT_EQ(bars, 3u + 2u);  // three bars (one value missing) and two legend swatches
  EXPECT_NE(render_bar_chart({"t", "y", {}, {}}).find("no data"), std::string::npos);
  // Short legend names keep the 720 px chart; a long one widens it to fit
  // (its text starts 32 px into the 200 px legend column, ~7 px per character).
  EXPECT_NE(b.find("width=\"720\""), std::string::npos);
  const std::string long_name(60, 'n');
  const std::string w = render_bar_chart({"t", "img/s", {"a"}, {{long_name, {1}}}});
  EXPECT_NE(w.find(fmt::format("width=\"{}\"", 720 - 200 + 32 + 7 * 60 + 10)), std::string::npos) << w.substr(0, 200);
}

// Parity: mean and sample sd over seeds, the per-seed difference to fp32,
// the CSV read back, a bad file named; the report's parity table and plot.
TEST(Parity, SummaryCsvAndReport) {
  auto r = [](uint64_t seed, const char* p, double dice) {
    ParityRow row{seed, p, {}};
    row.val.dice_mean = dice;
    row.val.iou_mean = dice - 0.1;
    row.val.images = 10;
    return row;
  };
  const std::vector<ParityRow> rows = {r(1, "fp32", 0.90), r(1, "mixed_bf16", 0.91), r(2, "fp32", 0.94),
                                       r(2, "mixed_bf16", 0.93), r(1, "int8", 0.89), r(2, "int8", 0.95)};
  const std::vector<ParitySummary> s = summarize_parity(rows);
  ASSERT_EQ(s.size(), 3u);
  EXPECT_EQ(s[0].precision, "fp32");
  EXPECT_NEAR(s[0].dice_mean, 0.92, 1e-12);
  EXPECT_NEAR(s[0].dice_std, std::sqrt(0.0008), 1e-12);  // (0.02^2 + 0.02^2) / (2 - 1)
  EXPECT_NEAR(s[1].dice_vs_fp32, 0.0, 1e-12);            // +0.01 and -0.01
  EXPECT_NEAR(s[2].dice_vs_fp32, 0.0, 1e-12);            // -0.01 and +0.01
  EXPECT_EQ(s[2].seeds, 2);
  const auto dir = test::temp_dir("parity");
  const std::string path = (dir / "p.csv").string();
  write_parity_csv(path, rows);
  const std::vector<ParityRow> back = read_parity_csv(path);
  ASSERT_EQ(back.size(), rows.size());
  EXPECT_EQ(back[3].precision, "mixed_bf16");
  EXPECT_DOUBLE_EQ(back[3].val.dice_mean, 0.93);
  std::ofstream(path, std::ios::app) << "3,fp32,x,1,1,1,1,1\n";
  test::expect_error_containing([&] { read_parity_csv(path); }, path + ":8");
  ReportConfig cfg;
  cfg.parity = rows;
  const ReportFiles f = make_report({row("fp32", 10)}, {}, cfg);
  EXPECT_NE(f.markdown.find("| mixed_bf16 | 2 | 0.9200 | 0.0141 | 0.8200 | 0.0141 | +0.0000 |"), std::string::npos)
      << f.markdown;
  EXPECT_EQ(f.markdown.find("no parity results"), std::string::npos);
  EXPECT_TRUE(std::any_of(f.svgs.begin(), f.svgs.end(), [](const auto& svg) { return svg.first == "parity.svg"; }));
  std::filesystem::remove_all(dir);
}

// Advise: least J/img among the precisions within the Dice tolerance; by
// throughput (with a note) when energy is missing; nothing when all are out.
TEST(Advise, LeastEnergyWithinTheDiceTolerance) {
  auto at = [](const std::string& p, int batch, double ips, std::optional<double> j) {
    ResultRow r = row(p, ips, j);
    r.batch = batch;
    r.phase = "train";
    return r;
  };
  const std::vector<ResultRow> rows = {at("fp32", 1, 10, 5.0), at("fp32", 4, 14, 4.0), at("mixed_bf16", 4, 30, 2.0),
                                       at("mixed_fp16", 4, 25, 1.5)};
  auto p = [](const char* prec, double dice) {
    ParityRow r{1, prec, {}};
    r.val.dice_mean = dice;
    return r;
  };
  AdviseConfig cfg;
  cfg.filters = 8;
  const std::vector<ParityRow> parity = {p("fp32", 0.90), p("mixed_bf16", 0.895), p("mixed_fp16", 0.85)};
  const Advice a = advise(rows, parity, cfg);
  EXPECT_EQ(a.goal_used, "energy");
  EXPECT_EQ(a.ranked.front().precision, "mixed_bf16");  // mixed_fp16 uses less energy but loses 0.05 Dice
  EXPECT_EQ(a.ranked.back().precision, "mixed_fp16");
  EXPECT_FALSE(a.ranked.back().allowed);
  EXPECT_NE(a.ranked.back().why_not.find("-0.0500"), std::string::npos) << a.ranked.back().why_not;
  cfg.dice_tolerance = 0.1;
  EXPECT_EQ(advise(rows, parity, cfg).ranked.front().precision, "mixed_fp16");
  std::vector<ResultRow> no_energy = rows;
  no_energy[0].joules_per_img.reset();
  const Advice t = advise(no_energy, {}, cfg);
  EXPECT_EQ(t.goal_used, "throughput");
  EXPECT_EQ(t.ranked.front().precision, "mixed_bf16");
  ASSERT_EQ(t.notes.size(), 3u);  // energy missing, accuracy not checked, one run each
  EXPECT_NE(t.notes[2].find("one run"), std::string::npos) << t.notes[2];
  cfg.filters = 99;
  test::expect_error_containing([&] { advise(rows, parity, cfg); }, "filters 99");
}

// Several runs per configuration: the runner-up is said not to be told
// apart when its runs overlap the winner's, and nothing is said when they
// are apart.
TEST(Advise, SaysWhenTheRunnerUpIsNotToldApart) {
  auto at = [](const std::string& p, double ips) {
    ResultRow r = row(p, ips);
    r.phase = "train";
    return r;
  };
  AdviseConfig cfg;
  cfg.goal = "throughput";
  // bf16 median 20 (runs 17-21), fp32 median 18 (runs 16-19): overlap.
  const std::vector<ResultRow> close = {at("mixed_bf16", 17), at("mixed_bf16", 20), at("mixed_bf16", 21),
                                        at("fp32", 16),       at("fp32", 18),       at("fp32", 19)};
  const Advice a = advise(close, {}, cfg);
  EXPECT_EQ(a.ranked.front().precision, "mixed_bf16");
  EXPECT_EQ(a.ranked.front().img_per_s_runs.size(), 3u);
  const auto said = std::find_if(a.notes.begin(), a.notes.end(),
                                 [](const std::string& n) { return n.find("not told apart") != std::string::npos; });
  ASSERT_NE(said, a.notes.end());
  EXPECT_NE(said->find("fp32 at batch 2, is not told apart: its runs (16-19 img/s) overlap the recommended one's (17-21)"),
            std::string::npos)
      << *said;
  // Apart: bf16 runs 25-27 against fp32's 16-19.
  const std::vector<ResultRow> apart = {at("mixed_bf16", 25), at("mixed_bf16", 26), at("mixed_bf16", 27),
                                        at("fp32", 16),       at("fp32", 18),       at("fp32", 19)};
  for (const std::string& n : advise(apart, {}, cfg).notes)
    EXPECT_TRUE(n.find("told apart") == std::string::npos && n.find("one run") == std::string::npos) << n;
}
