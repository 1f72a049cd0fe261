// `mixseg predict`: mask PNGs (0/255) for one image or every PNG in a folder.
#include <fmt/format.h>

#include <deque>
#include <filesystem>
#include <future>
#include <memory>

#include "cli/commands.h"
#include "core/error.h"
#include "core/file_util.h"
#include "data/png_io.h"
#include "mixseg/mixseg.h"

namespace mixseg::cli {

namespace fs = std::filesystem;

namespace {

struct PredictOptions {
  std::string checkpoint, input, out, precision = "fp32";
  ConvAlgorithmFiles algorithms;
  DeviceOptions where;
  float threshold = 0.5f;
};

void run_predict(const PredictOptions& o) {
  std::vector<fs::path> files;
  if (fs::is_directory(o.input)) {
    for (const auto& e : fs::directory_iterator(o.input))
      if (e.is_regular_file() && e.path().extension() == ".png" && !e.path().stem().string().ends_with("_seg"))
        files.push_back(e.path());
    std::sort(files.begin(), files.end());
    if (files.empty()) fail("{}: no PNG images in this folder", o.input);
  } else if (fs::exists(o.input)) {
    files.push_back(o.input);
  } else {
    fail("{}: no such image or folder", o.input);
  }
  Predictor predictor = Predictor::load(o.checkpoint, o.precision, o.where.device.empty() ? "cpu" : o.where.device);
  if (predictor.info().precision == "int8") refuse_conv_algorithm_files_for_int8(o.algorithms, o.checkpoint);
  if (!o.algorithms.follow.empty()) {
    const std::string note = predictor.follow_conv_algorithms(o.algorithms.follow);
    fmt::print("convolution algorithms: as recorded in {}\n", o.algorithms.follow);
    if (!note.empty()) fmt::print("  note: {}\n", note);
  }
  ensure_writable_dir(o.out);
  // The model runs on this thread; the next images are decoded and the last
  // mask is written on others meanwhile (a PNG read and a PNG write cost
  // about what a small model's pass does on the CPU, and far more than it
  // on the GPU). Files are taken and reported in order; a failure (an
  // unreadable image, an unwritable mask) stops the run at that file, with
  // every mask before it written.
  const int channels = predictor.info().in_channels;
  constexpr size_t kReadAhead = 2;
  std::deque<std::future<Image>> reads;
  size_t next_read = 0;
  auto read_more = [&] {
    while (reads.size() < kReadAhead && next_read < files.size())
      reads.push_back(std::async(std::launch::async, [&f = files[next_read++], channels] {
        return read_png(f.string(), channels);  // 16-bit scale, the model's channels
      }));
  };
  std::future<void> written;
  read_more();
  for (const auto& f : files) {
    const Image img = reads.front().get();
    reads.pop_front();
    read_more();
    const std::vector<float> p = predictor.probabilities(img.values.data(), img.h, img.w, img.c);
    GrayImage m{img.h, img.w, std::vector<uint8_t>(p.size()), {}};
    size_t fg = 0;
    for (size_t i = 0; i < p.size(); ++i) fg += (m.pixels[i] = p[i] > o.threshold ? 255 : 0) != 0;
    if (written.valid()) written.get();
    written = std::async(std::launch::async, [&f, m = std::move(m), fg, &o] {
      const fs::path dst = fs::path(o.out) / (f.stem().string() + "_mask.png");
      write_png_gray(dst.string(), m);
      fmt::print("{} -> {} ({:.2f}% foreground)\n", f.string(), dst.string(),
                 100.0 * double(fg) / double(m.pixels.size()));
    });
  }
  if (written.valid()) written.get();
  if (!o.algorithms.save.empty()) {
    predictor.save_conv_algorithms(o.algorithms.save);
    fmt::print("wrote {} (--conv-algorithms {} repeats this run)\n", o.algorithms.save, o.algorithms.save);
  }
}

}  // namespace

void add_predict(CLI::App& app) {
  auto o = std::make_shared<PredictOptions>();
  CLI::App* c = app.add_subcommand("predict", "Write mask PNGs for an image or a folder of images");
  c->add_option("checkpoint", o->checkpoint, "Checkpoint, or int8 model from `mixseg quantize` (.safetensors)")->required();
  c->add_option("input", o->input, "A PNG image or a folder of PNGs")->required();
  c->add_option("--out", o->out, "Output folder for NAME_mask.png")->required();
  c->add_option("--precision", o->precision, "fp32, fp16 or bf16 (or a training policy's name); an int8 model runs in int8")->capture_default_str();
  add_device_options(c, o->where, false);
  c->add_option("--threshold", o->threshold, "Foreground probability threshold")->capture_default_str()->check(CLI::Range(0.0, 1.0));
  add_conv_algorithm_files_options(c, o->algorithms);
  c->callback([o] { run_predict(*o); });
}

}  // namespace mixseg::cli
