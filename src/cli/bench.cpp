// `mixseg bench`: measures training and inference throughput of mixseg over
// lists of precisions, model sizes and batch sizes, prints a table and
// appends rows in the design's CSV schema (the peers in bench/peers/ write
// the same schema, so one file can hold the whole comparison).
#include <fmt/format.h>

#include <dnnl.hpp>
#include <sys/resource.h>

#include <fstream>
#include <memory>
#include <optional>
#include <nlohmann/json.hpp>

#include "bench/energy.h"
#include "bench/measure.h"
#include "bench/result_row.h"
#include "bench/stats.h"
#include "cli/commands.h"
#include "quant/kernels_int8.h"
#include "core/error.h"
#include "core/threads.h"
#include "mixseg/mixseg.h"

#include "cuda/device_query.h"

#ifndef MIXSEG_GIT_COMMIT
#define MIXSEG_GIT_COMMIT "unknown"
#endif

namespace mixseg::cli {

namespace {

struct BenchOptions {
  DeviceOptions where;
  DataOptions data;  // --phase load: a folder instead of synthetic frames
  std::string precision = "fp32", phase = "infer,train", filters = "8", batch = "1", size = "512x256", out,
              conv_algorithm = "fastest", upsampling = "nearest";
  int depth = 4, warmup = 3, min_steps = 5, rounds = 1;
  double min_time = 2.0;
  bool verbose = false, conv_ceiling = false;
  int loader_threads = 1;
  uint64_t seed = 0;
  std::string energy = "auto", rapl_root = "/sys/class/powercap";
  double idle_seconds = 3.0, price_per_kwh = 0.30, grid_gco2_per_kwh = 400.0;
};

double peak_rss_mib() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return double(u.ru_maxrss) / 1024.0;  // kilobytes on Linux
}

// The run's metadata: versions, machine, settings, energy method, per-row extras.
nlohmann::json run_metadata(const BenchOptions& o, const std::string& device, const std::string& backend_name,
                            const std::string& device_name, const std::string& energy_domain,
                            const std::string& energy_why, double idle_w) {
  const auto* v = dnnl_version();
  return {{"tool", "mixseg bench"},
          {"mixseg_version", version()},
          {"git_commit", MIXSEG_GIT_COMMIT},
          {"timestamp", utc_timestamp()},
          {"device", device},
          {"device_name", device_name},
          {"threads", max_threads()},
          {"onednn_version", fmt::format("{}.{}.{}", v->major, v->minor, v->patch)},
          {"int8_convolutions", int8_conv_variant()},
          {"cuda", device == "cuda" ? cuda_versions() : std::string("not used (CPU benchmark)")},
          {"seed", o.seed},
          {"settings",
           {{"backend", backend_name},
            {"precision", o.precision},
            {"phase", o.phase},
            {"filters", o.filters},
            {"depth", o.depth},
            {"upsampling", o.upsampling},
            {"batch", o.batch},
            {"size", o.size},
            {"warmup", o.warmup},
            {"min_steps", o.min_steps},
            {"min_time", o.min_time},
            {"rounds", o.rounds},
            {"conv_algorithm", o.conv_algorithm},
            {"loader_threads", o.loader_threads},
            {"conv_ceiling", o.conv_ceiling}}},
          {"energy",
           {{"method", energy_domain.empty() ? std::string("unavailable")
                       : device == "cuda"    ? "nvml"
                                             : "rapl"},
            {"domain", energy_domain},
            {"unavailable_because", energy_why},
            {"idle_baseline_watts", idle_w},
            {"idle_seconds", o.idle_seconds},
            {"window_seconds_min", kMinEnergySeconds},
            {"joules_per_img", "net of the idle baseline (gross in rows[])"},
            {"price_per_kwh", o.price_per_kwh},
            {"grid_gco2_per_kwh", o.grid_gco2_per_kwh}}},
          {"rows", nlohmann::json::array()}};
}

void run_bench(const BenchOptions& o) {
  auto [h, w] = parse_size(o.size);
  // "int8" (inference only) is the int8 engine; the rest are policies.
  std::vector<std::string> precisions = split_list(o.precision);
  for (const auto& p : precisions)
    if (p != "int8") parse_policy(p);
  std::vector<std::string> phases;
  for (const auto& p : split_list(o.phase)) {
    if (p != "train" && p != "infer" && p != "load") fail("--phase '{}': '{}' is not train, infer or load", o.phase, p);
    phases.push_back(p);
  }
  std::optional<Dataset> data;
  if (o.data.any()) {
    if (phases != std::vector<std::string>{"load"})
      fail("--data is read by --phase load alone (train and infer time synthetic frames), not --phase {}", o.phase);
    data = load_data(o.data, h, w);
  }
  const std::vector<int> filters = parse_positive_list(o.filters, "--filters");
  const std::vector<int> batches = parse_positive_list(o.batch, "--batch");
  for (int f : filters) check_input_size({f, o.depth, 1, 1}, h, w);
  for (const auto& ph : phases)
    if (ph == "train")
      for (const auto& p : precisions)
        if (p != "int8") check_trainable(parse_policy(p));

  // The device decides the backend: the GPU runs the cuda backend, the CPU
  // the fast one unless --backend says ref (or fast).
  const DeviceChoice where = resolve_device(o.where);
  const std::string &device = where.device, &backend_name = where.backend;
  if (device == "cuda")
    for (const auto& p : precisions)
      if (p == "int8") fail("--precision int8 is the CPU's int8 engine; benchmark it with --device cpu");
  std::unique_ptr<Backend> backend;
  if (backend_name == "fast") {
    backend = make_fast_backend(parse_conv_algorithm(o.conv_algorithm));
  } else {
    backend = make_backend(backend_name);
  }
  if (!o.out.empty()) check_results_csv_appendable(o.out);  // before the sweep, not after its first row
  const std::string device_name = device == "cuda" ? cuda_device_name(0) : cpu_model_name();
  // Energy: RAPL on the CPU, NVML on the GPU, with an idle baseline before the sweep.
  std::unique_ptr<EnergyCounter> counter;
  std::string energy_why = "--energy none";
  if (o.energy != "none" && o.energy != "auto" && o.energy != "rapl" && o.energy != "nvml")
    fail("--energy must be auto, rapl, nvml or none, got {}", o.energy);
  if (o.energy == "rapl" || (o.energy == "auto" && device == "cpu")) counter = open_rapl(o.rapl_root, &energy_why);
  if (o.energy == "nvml" || (o.energy == "auto" && device == "cuda")) counter = open_nvml(0, &energy_why);
  if (!counter && (o.energy == "rapl" || o.energy == "nvml")) fail("--energy {}: {}", o.energy, energy_why);
  double idle_w = 0;
  if (counter) {
    energy_why.clear();
    if (o.idle_seconds > 0) {
      fmt::print("measuring the idle baseline for {} s ({})...\n", o.idle_seconds, counter->domain());
      idle_w = idle_watts(*counter, o.idle_seconds);
    }
    fmt::print("energy: {}, idle baseline {:.1f} W; J/img below is net of it\n", counter->domain(), idle_w);
  } else {
    fmt::print("energy: unavailable ({})\n", energy_why);
  }
  nlohmann::json meta = run_metadata(o, device, backend_name, device_name, counter ? counter->domain() : "", energy_why, idle_w);
  fmt::print("mixseg {} bench, backend {}, {} ({} threads), {}x{}; steady state: {} warm-up steps, then >= {} steps "
             "and >= {} s\n",
             version(), backend_name, device_name, max_threads(), h, w, o.warmup, o.min_steps, o.min_time);
  // The configurations, in sweep order; each round measures them all once,
  // so a configuration's rounds are spread over the run and neighbours in
  // time can be compared (this VM's speed drifts over minutes).
  struct Config {
    std::string phase, precision;
    int filters, batch;
  };
  std::vector<Config> configs;
  for (const auto& phase : phases)
    for (int f : filters)
      for (const auto& precision : precisions)
        for (int b : batches) {
          if (phase == "load" && (f != filters[0] || precision != precisions[0])) continue;  // no model or precision
          if (precision == "int8" && phase == "train") continue;                             // int8 is for inference
          configs.push_back({phase, precision, f, b});
        }
  const size_t total = configs.size() * size_t(o.rounds);
  size_t done = 0;
  fmt::print("{:>7} {:<6} {:<11} {:>7} {:>5} {:>9} {:>10} {:>9} {:>9} {:>9} {:>8}{}\n", "", "phase", "precision",
             "filters", "batch", "img/s", "ms/step", "p90 ms", "GFLOP/s", "mem MiB", "J/img",
             o.conv_ceiling ? fmt::format(" {:>9} {:>9} {:>7}", "convs ms", "ceil GF/s", "of ceil") : "");
  std::vector<ResultRow> rows;
  for (int round = 0; round < o.rounds; ++round)
    for (const Config& config : configs) {
      const std::string& phase = config.phase;
      const std::string& precision = config.precision;
      const int f = config.filters, b = config.batch;
      const bool train = phase == "train", load = phase == "load", int8 = precision == "int8";
      const Policy p = int8 ? Policy::fp32 : parse_policy(precision);
      BenchConfig cfg;
      cfg.model = {f, o.depth, 1, 1, parse_upsampling(o.upsampling)};
      cfg.policy = p;
      cfg.train = train;
      cfg.batch = b;
      cfg.height = h;
      cfg.width = w;
      cfg.warmup_steps = o.warmup;
      cfg.min_steps = o.min_steps;
      cfg.min_seconds = o.min_time;
      cfg.seed = o.seed;
      cfg.loader_threads = o.loader_threads;
      cfg.data = data ? &*data : nullptr;
      cfg.energy = counter.get();
      cfg.idle_watts = idle_w;
      cfg.conv_ceiling = o.conv_ceiling;
      BenchMeasurement m;
      try {
        m = load ? measure_loader(cfg) : int8 ? measure_int8(cfg, *backend) : measure(cfg, *backend);
      } catch (const OutOfMemory& e) {  // a configuration too large for the device: noted, and the sweep goes on
        ++done;
        fmt::print("{:>7} {:<6} {:<11} {:>7} {:>5} skipped: {}\n", fmt::format("[{}/{}]", done, total), phase, precision, f,
                   b, e.what());
        std::fflush(stdout);
        meta["skipped"].push_back({{"phase", phase}, {"precision", precision}, {"filters", f}, {"batch", b},
                                   {"round", round + 1}, {"reason", e.what()}});
        continue;
      }
      const TimingSummary t = summarize(m.step_seconds);
      ResultRow r;
      r.framework = "mixseg";
      const char* files = !data ? "" : data->streamed() ? ", files streamed" : ", files in memory";
      // The CSV has no column for the upsampling (the schema is the peers' too):
      // the transposed model's rows say it in their version, a series of their own.
      const char* up = o.upsampling == "transposed" ? ", transposed upsampling" : "";
      r.framework_version = load ? fmt::format("{} (loader, {} threads{})", version(), o.loader_threads, files)
                                 : fmt::format("{} ({}{})", version(), backend_name, up);
      r.device = device;
      r.device_name = device_name;
      r.precision = load ? "-" : int8 ? "int8" : std::string(policy_info(p).name);
      r.phase = phase;
      r.filters = f;
      r.depth = o.depth;
      r.batch = b;
      r.height = h;
      r.width = w;
      r.img_per_s = b / t.median;
      r.ms_per_step_median = t.median * 1e3;
      r.ms_p90 = t.p90 * 1e3;
      r.ms_p99 = t.p99 * 1e3;
      r.tflops = m.flops_per_image * r.img_per_s / 1e12;
      r.peak_mem_mib = double(m.arena_bytes) / (1024.0 * 1024.0);
      r.steps = t.count;
      r.warmup_steps = m.warmup_steps;
      r.git_commit = MIXSEG_GIT_COMMIT;
      r.timestamp = utc_timestamp();
      const double images = double(b) * double(m.step_seconds.size());
      r.energy_source = m.energy.source;
      if (m.energy.source != "unavailable") r.joules_per_img = m.energy.net_joules / images;
      meta["rows"].push_back({{"phase", r.phase}, {"precision", r.precision}, {"filters", f}, {"batch", b},
                              {"round", round + 1},
                              {"timestamp", r.timestamp}, {"energy_source", r.energy_source},
                              {"gross_joules", m.energy.gross_joules}, {"net_joules", m.energy.net_joules},
                              {"window_seconds", m.energy.seconds}, {"images", images},
                              {"peak_rss_mib", peak_rss_mib()}});
      std::string ceiling_columns;
      if (!m.conv_seconds.empty()) {  // the convolutions alone: the library's ceiling on these shapes
        const double conv_median = summarize(m.conv_seconds).median;
        const double ceiling = m.flops_per_image * b / conv_median / 1e12;
        auto& row = meta["rows"].back();
        row["conv_only_ms_median"] = conv_median * 1e3;
        row["conv_only_steps"] = m.conv_seconds.size();
        row["conv_ceiling_tflops"] = ceiling;
        row["share_of_conv_ceiling"] = r.tflops / ceiling;
        ceiling_columns = fmt::format(" {:>9.2f} {:>9.1f} {:>6.0f}%", conv_median * 1e3, ceiling * 1e3,
                                      100 * r.tflops / ceiling);
      }
      if (device == "cuda") {  // the GPU's state after the row: temperature, SM clock, memory in use (NVML)
        const GpuState g = read_gpu_state(0);
        auto& row = meta["rows"].back();
        if (g.temperature_c) row["gpu_temperature_c"] = *g.temperature_c;
        if (g.sm_clock_mhz) row["gpu_sm_clock_mhz"] = *g.sm_clock_mhz;
        if (g.memory_used_mib) row["gpu_memory_used_mib"] = *g.memory_used_mib;
      }
      ++done;
      fmt::print("{:>7} {:<6} {:<11} {:>7} {:>5} {:>9.2f} {:>10.2f} {:>9.2f} {:>9.1f} {:>9.1f} {:>8}{}\n",
                 fmt::format("[{}/{}]", done, total), r.phase, r.precision, f, b, r.img_per_s,
                 r.ms_per_step_median, r.ms_p90, r.tflops * 1e3, r.peak_mem_mib,
                 r.joules_per_img ? fmt::format("{:.3f}", *r.joules_per_img) : "-", ceiling_columns);
      std::fflush(stdout);
      rows.push_back(r);
      if (!o.out.empty()) append_results_csv(o.out, {r});  // row by row: an interrupted sweep keeps its rows
    }
  if (meta.contains("skipped")) {
    if (rows.empty()) fail("every configuration ran out of memory (above)");
    fmt::print("{} of {} measurements skipped: out of memory\n", meta["skipped"].size(), total);
  }
  if (o.verbose) {
    for (const auto& line : backend->choices()) fmt::print("  {}\n", line);
    for (const auto& line : backend->notes()) fmt::print("  {}\n", line);
  }
  meta["peak_rss_mib"] = peak_rss_mib();
  meta["backend_choices"] = backend->choices();  // algorithms per pass and shape
  meta["backend_notes"] = backend->notes();      // CUDA graphs, channel vectors
  if (!o.out.empty()) {
    // One JSON object per run, appended like the rows (the CSV can gather several runs).
    const std::string meta_path = o.out + ".meta.jsonl";
    std::ofstream f(meta_path, std::ios::app);
    f << meta.dump() << "\n";
    if (!f) fail("{}: cannot write the run's metadata", meta_path);
    fmt::print("appended {} rows to {} and the run's metadata to {}\n", rows.size(), o.out, meta_path);
  }
}

}  // namespace

void add_bench(CLI::App& app) {
  auto o = std::make_shared<BenchOptions>();
  CLI::App* c = app.add_subcommand("bench", "Measure training and inference throughput (steady state, CSV rows)");
  add_device_options(c, o->where);
  c->add_option("--precision", o->precision, "Comma-separated policies, and int8 (inference, the int8 engine)")
      ->capture_default_str();
  c->add_option("--phase", o->phase, "Comma-separated: train, infer, load (the data loader alone)")->capture_default_str();
  c->add_option("--loader-threads", o->loader_threads, "Background threads of the loader (phase load)")
      ->capture_default_str()->check(non_negative);
  add_data_options(c, o->data);
  c->add_option("--filters", o->filters, "Comma-separated model sizes (channels of the first level)")->capture_default_str();
  c->add_option("--batch", o->batch, "Comma-separated batch sizes")->capture_default_str();
  c->add_option("--depth", o->depth, "Number of poolings")->capture_default_str()->check(CLI::Range(1, 8));
  c->add_option("--upsampling", o->upsampling,
                "The decoder's x2 upsampling: nearest, or transposed (rows say \"transposed upsampling\" in "
                "framework_version)")
      ->capture_default_str()
      ->check(CLI::IsMember({"nearest", "transposed"}));
  c->add_option("--size", o->size, "Input size HxW")->capture_default_str();
  c->add_option("--warmup", o->warmup, "Warm-up steps (not measured)")->capture_default_str()->check(non_negative);
  c->add_option("--min-steps", o->min_steps, "Measured steps at least")->capture_default_str()->check(positive);
  c->add_option("--min-time", o->min_time, "Measured seconds at least")->capture_default_str()->check(non_negative);
  c->add_option("--rounds", o->rounds,
                 "Measure every configuration this many times, round by round (a row each; compare rounds "
                 "adjacent in time on a machine whose speed drifts)")
      ->capture_default_str()
      ->check(positive);
  c->add_option("--seed", o->seed, "Seed of weights and synthetic frames")->capture_default_str();
  c->add_option("--energy", o->energy, "auto (RAPL on the CPU, NVML on the GPU, when readable), rapl or nvml (required), or none")->capture_default_str();
  c->add_option("--idle-seconds", o->idle_seconds, "Idle baseline measured before the sweep (0: none, gross = net)")
      ->capture_default_str()->check(non_negative);
  c->add_option("--rapl-root", o->rapl_root, "The powercap tree RAPL is read from")->capture_default_str();
  c->add_option("--price-per-kwh", o->price_per_kwh, "Electricity price, for the report's cost (recorded in the metadata)")
      ->capture_default_str()->check(non_negative);
  c->add_option("--grid-gco2-per-kwh", o->grid_gco2_per_kwh, "Grid carbon intensity, for the report's CO2 (recorded)")
      ->capture_default_str()->check(non_negative);
  c->add_option("--conv-algorithm", o->conv_algorithm,
                 "Fast backend's convolutions: fastest (timed per shape and pass), direct, winograd (oneDNN's "
                 "F(4x4,3x3)), winograd_f2 (the own Winograd kernels, all three passes) or direct_banded (direct, "
                 "backward-weights on the image cut into bands where the batch is below the thread count)")
      ->capture_default_str()
      ->check(CLI::IsMember({"fastest", "direct", "winograd", "winograd_f2", "direct_banded"}));
  c->add_flag("--conv-ceiling", o->conv_ceiling,
              "Also time each configuration's convolutions alone (same shapes and buffers, right after its steps): "
              "the convolution library's ceiling, and the share of it the whole step reaches (training and "
              "inference rows of mixseg's backends; not int8)");
  c->add_flag("--verbose", o->verbose, "Also list the backend's choices (convolution algorithm per shape)");
  c->add_option("--out", o->out, "Append result rows to this CSV file");
  c->callback([o] { run_bench(*o); });
}

}  // namespace mixseg::cli
