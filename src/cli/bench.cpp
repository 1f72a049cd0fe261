// `mixseg bench`: measures training and inference throughput of mixseg over
// lists of precisions, model sizes and batch sizes, prints a table and
// appends rows in the design's CSV schema (the peers in bench/peers/ write
// the same schema, so one file can hold the whole comparison).
#include <fmt/format.h>

#include <memory>

#include "bench/measure.h"
#include "bench/result_row.h"
#include "bench/stats.h"
#include "cli/commands.h"
#include "core/error.h"
#include "core/threads.h"
#include "mixseg/mixseg.h"

#ifndef MIXSEG_GIT_COMMIT
#define MIXSEG_GIT_COMMIT "unknown"
#endif

namespace mixseg::cli {

namespace {

struct BenchOptions {
  std::string backend = "fast", precision = "fp32", phase = "infer,train", filters = "8", batch = "1", size = "512x256",
              out, conv_algorithm = "fastest";
  int depth = 4, warmup = 3, min_steps = 5;
  double min_time = 2.0;
  bool verbose = false;
  int loader_threads = 1;
  uint64_t seed = 0;
};

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
  const std::vector<int> filters = parse_positive_list(o.filters, "--filters");
  const std::vector<int> batches = parse_positive_list(o.batch, "--batch");
  for (int f : filters) check_input_size({f, o.depth, 1, 1}, h, w);
  for (const auto& ph : phases)
    if (ph == "train")
      for (const auto& p : precisions)
        if (p != "int8") check_trainable(parse_policy(p));

  std::unique_ptr<Backend> backend;
  if (o.backend == "fast") {
    const ConvAlgorithm a = o.conv_algorithm == "direct"     ? ConvAlgorithm::direct
                            : o.conv_algorithm == "winograd" ? ConvAlgorithm::winograd
                                                             : ConvAlgorithm::fastest;
    backend = make_fast_backend(a);
  } else {
    backend = make_backend(o.backend);
  }
  const std::string device_name = cpu_model_name();
  fmt::print("mixseg {} bench, backend {}, {} ({} threads), {}x{}; steady state: {} warm-up steps, then >= {} steps "
             "and >= {} s\n",
             version(), o.backend, device_name, max_threads(), h, w, o.warmup, o.min_steps, o.min_time);
  fmt::print("{:<6} {:<11} {:>7} {:>5} {:>9} {:>10} {:>9} {:>9} {:>9}\n", "phase", "precision", "filters", "batch",
             "img/s", "ms/step", "p90 ms", "GFLOP/s", "mem MiB");
  std::vector<ResultRow> rows;
  for (const auto& phase : phases)
    for (int f : filters)
      for (const auto& precision : precisions)
        for (int b : batches) {
          const bool train = phase == "train", load = phase == "load", int8 = precision == "int8";
          if (load && (f != filters[0] || precision != precisions[0])) continue;  // the loader has no model or precision
          if (int8 && train) continue;  // int8 is for inference
          const Policy p = int8 ? Policy::fp32 : parse_policy(precision);
          BenchConfig cfg;
          cfg.model = {f, o.depth, 1, 1};
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
          const BenchMeasurement m = load ? measure_loader(cfg) : int8 ? measure_int8(cfg, *backend) : measure(cfg, *backend);
          const TimingSummary t = summarize(m.step_seconds);
          ResultRow r;
          r.framework = "mixseg";
          r.framework_version = fmt::format("{} ({})", version(), o.backend);
          r.device = "cpu";
          r.device_name = device_name;
          r.precision = load ? "-" : int8 ? "int8" : std::string(policy_info(p).name);
          r.phase = phase;
          if (load) r.framework_version = fmt::format("{} (loader, {} threads)", version(), o.loader_threads);
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
          fmt::print("{:<6} {:<11} {:>7} {:>5} {:>9.2f} {:>10.2f} {:>9.2f} {:>9.1f} {:>9.1f}\n", r.phase, r.precision, f,
                     b, r.img_per_s, r.ms_per_step_median, r.ms_p90, r.tflops * 1e3, r.peak_mem_mib);
          std::fflush(stdout);
          rows.push_back(r);
          if (!o.out.empty()) append_results_csv(o.out, {r});  // row by row: an interrupted sweep keeps its rows
        }
  if (o.verbose)
    for (const auto& line : backend->choices()) fmt::print("  {}\n", line);
  if (!o.out.empty()) fmt::print("appended {} rows to {}\n", rows.size(), o.out);
}

}  // namespace

void add_bench(CLI::App& app) {
  auto o = std::make_shared<BenchOptions>();
  CLI::App* c = app.add_subcommand("bench", "Measure training and inference throughput (steady state, CSV rows)");
  c->add_option("--backend", o->backend, "ref or fast")->capture_default_str();
  c->add_option("--precision", o->precision, "Comma-separated policies, and int8 (inference, the int8 engine)")
      ->capture_default_str();
  c->add_option("--phase", o->phase, "Comma-separated: train, infer, load (the data loader alone)")->capture_default_str();
  c->add_option("--loader-threads", o->loader_threads, "Background threads of the loader (phase load)")
      ->capture_default_str()->check(CLI::NonNegativeNumber);
  c->add_option("--filters", o->filters, "Comma-separated model sizes (channels of the first level)")->capture_default_str();
  c->add_option("--batch", o->batch, "Comma-separated batch sizes")->capture_default_str();
  c->add_option("--depth", o->depth, "Number of poolings")->capture_default_str()->check(CLI::Range(1, 8));
  c->add_option("--size", o->size, "Input size HxW")->capture_default_str();
  c->add_option("--warmup", o->warmup, "Warm-up steps (not measured)")->capture_default_str()->check(CLI::NonNegativeNumber);
  c->add_option("--min-steps", o->min_steps, "Measured steps at least")->capture_default_str()->check(CLI::PositiveNumber);
  c->add_option("--min-time", o->min_time, "Measured seconds at least")->capture_default_str()->check(CLI::NonNegativeNumber);
  c->add_option("--seed", o->seed, "Seed of weights and synthetic frames")->capture_default_str();
  c->add_option("--conv-algorithm", o->conv_algorithm,
                 "Fast backend's convolutions: fastest (timed per shape and pass), direct or winograd")
      ->capture_default_str()
      ->check(CLI::IsMember({"fastest", "direct", "winograd"}));
  c->add_flag("--verbose", o->verbose, "Also list the backend's choices (convolution algorithm per shape)");
  c->add_option("--out", o->out, "Append result rows to this CSV file");
  c->callback([o] { run_bench(*o); });
}

}  // namespace mixseg::cli
