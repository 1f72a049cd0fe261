// `mixseg synth`: write synthetic frames as a BAGLS-style folder (N.png and
// N_seg.png), for trying the folder workflow without real data.
#include <fmt/format.h>

#include <filesystem>
#include <memory>

#include "cli/commands.h"
#include "core/error.h"
#include "core/file_util.h"
#include "data/png_io.h"
#include "data/synthetic.h"

namespace mixseg::cli {

namespace {

struct SynthOptions {
  std::string out, size = "512x256";
  int count = 20;
  uint64_t seed = 0;
  double closed_fraction = 0.05;
};

void run_synth(const SynthOptions& o) {
  const auto [h, w] = parse_size(o.size);
  ensure_writable_dir(o.out);
  const SyntheticConfig c{h, w, o.seed, o.closed_fraction};
  // Frames are independent (each from its own seeded stream): generated and
  // written in parallel; the first failure in frame order is reported.
  std::vector<std::string> errors(size_t(o.count));
#pragma omp parallel
  {
    GrayImage img{h, w, std::vector<uint8_t>(size_t(h) * w), {}}, mask = img;
#pragma omp for schedule(dynamic)
    for (int i = 0; i < o.count; ++i) {
      try {
        synthetic_frame(c, uint64_t(i), img.pixels.data(), mask.pixels.data());
        for (auto& v : mask.pixels) v = v ? 255 : 0;
        write_png_gray((std::filesystem::path(o.out) / fmt::format("{}.png", i)).string(), img);
        write_png_gray((std::filesystem::path(o.out) / fmt::format("{}_seg.png", i)).string(), mask);
      } catch (const std::exception& e) {
        errors[size_t(i)] = e.what();
      }
    }
  }
  for (const std::string& e : errors)
    if (!e.empty()) fail("{}", e);
  fmt::print("wrote {} synthetic {}x{} frames with masks to {}\n", o.count, h, w, o.out);
}

}  // namespace

void add_synth(CLI::App& app) {
  auto o = std::make_shared<SynthOptions>();
  CLI::App* c = app.add_subcommand("synth", "Write synthetic endoscopy-like frames and masks as a BAGLS-style folder");
  c->add_option("--out", o->out, "Output folder")->required();
  c->add_option("--count", o->count, "Number of frames")->capture_default_str()->check(positive);
  c->add_option("--size", o->size, "Frame size HxW")->capture_default_str();
  c->add_option("--seed", o->seed, "Seed")->capture_default_str();
  c->add_option("--closed-fraction", o->closed_fraction, "Fraction of frames with a closed glottis (empty mask)")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 1.0));
  c->callback([o] { run_synth(*o); });
}

}  // namespace mixseg::cli
