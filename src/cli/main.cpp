// `mixseg`: train, evaluate and run U-Net segmentation in mixed precision.
#include <fmt/format.h>

#include <cstdio>
#include <new>

#include "cli/commands.h"
#include "core/error.h"
#include "core/threads.h"

int main(int argc, char** argv) {
  CLI::App app{"mixseg: mixed-precision U-Net segmentation — train, evaluate, predict, measure"};
  app.require_subcommand(1);
  int threads = 0;
  app.add_option("--threads", threads, "CPU threads (0: OMP_NUM_THREADS where set, else all cores)")
      ->check(mixseg::cli::non_negative);
  app.parse_complete_callback([&] { mixseg::set_threads(threads); });
  mixseg::cli::add_train(app);
  mixseg::cli::add_eval(app);
  mixseg::cli::add_predict(app);
  mixseg::cli::add_info(app);
  mixseg::cli::add_synth(app);
  mixseg::cli::add_bench(app);
  mixseg::cli::add_quantize(app);
  mixseg::cli::add_export(app);
  mixseg::cli::add_infer(app);
  mixseg::cli::add_edgetpu_check(app);
  mixseg::cli::add_report(app);
  mixseg::cli::add_parity(app);
  mixseg::cli::add_advise(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const mixseg::Error& e) {
    std::fflush(stdout);
    fmt::print(stderr, "mixseg: error: {}\n", e.what());
    return 1;
  } catch (const std::bad_alloc&) {  // an allocation with no context of its own (the workspace's says more)
    std::fflush(stdout);
    fmt::print(stderr, "mixseg: error: out of memory\n");
    return 1;
  } catch (const std::exception& e) {
    std::fflush(stdout);
    fmt::print(stderr, "mixseg: unexpected error: {}\n", e.what());
    return 1;
  }
  return 0;
}
