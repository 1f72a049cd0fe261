// Shared option parsing for the subcommands.
#include <fmt/format.h>

#include <charconv>
#include <cmath>
#include <cstdlib>
#include <filesystem>

#include "cli/commands.h"
#include "core/arena.h"
#include "core/error.h"
#include "core/host_memory.h"
#include "cuda/device_query.h"
#include "data/synthetic.h"

namespace mixseg::cli {

namespace {

// The number in s, or an error message naming s.
std::string number_check(const std::string& s, bool zero_allowed) {
  char* end = nullptr;
  const double v = std::strtod(s.c_str(), &end);
  if (s.empty() || end != s.c_str() + s.size() || !std::isfinite(v)) return fmt::format("'{}' is not a number", s);
  if (v < 0 || (v == 0 && !zero_allowed))
    return fmt::format("{} is not a {} number", s, zero_allowed ? "non-negative" : "positive");
  return {};
}

}  // namespace

const CLI::Validator positive([](std::string& s) { return number_check(s, false); }, "POSITIVE");
const CLI::Validator non_negative([](std::string& s) { return number_check(s, true); }, "NONNEGATIVE");

std::pair<int, int> parse_size(const std::string& s) {
  const auto x = s.find('x');
  int h = 0, w = 0;
  if (x != std::string::npos) {
    const auto r1 = std::from_chars(s.data(), s.data() + x, h);
    const auto r2 = std::from_chars(s.data() + x + 1, s.data() + s.size(), w);
    if (r1.ec == std::errc() && r1.ptr == s.data() + x && r2.ec == std::errc() && r2.ptr == s.data() + s.size() && h > 0 &&
        w > 0)
      return {h, w};
  }
  fail("--size '{}' is not of the form HxW (e.g. 512x256)", s);
}

void add_data_options(CLI::App* c, DataOptions& d) {
  c->add_option("--data", d.data,
                "Data folder: BAGLS (N.png + N_seg.png) or nnU-Net-like (imagesTr/ + labelsTr/), recognised by its contents");
  c->add_option("--images", d.images, "Folder of images (with --masks; pairs matched by file stem)");
  c->add_option("--masks", d.masks, "Folder of masks (with --images); nonzero pixels are foreground");
  c->add_option("--mask-threshold", d.mask_threshold,
                "Foreground = mask value above this (for masks that are not binary); default: masks must be binary")
      ->check(CLI::Range(0, 254));
  c->add_flag("--pad", d.pad, "Pad smaller images (centred, zeros) to --size instead of resizing; larger ones are refused");
  c->add_option("--stream-data", d.stream,
                "Decode images from their files at each use instead of holding the set in memory: yes, no, or auto "
                "(stream when the set would take more than half the memory available)")
      ->capture_default_str()
      ->check(CLI::IsMember({"auto", "yes", "no"}));
}

void check_data_or_synthetic(const DataOptions& d, int synthetic, const char* what) {
  if (d.any() == (synthetic > 0))
    fail("give {}exactly one of --data DIR, --images DIR --masks DIR, or --synthetic N", what);
}

mixseg::Dataset load_data_or_synthetic(const DataOptions& d, int synthetic, uint64_t seed, int h, int w) {
  check_data_or_synthetic(d, synthetic);
  return synthetic > 0 ? mixseg::make_synthetic({h, w, seed, 0.05}, size_t(synthetic)) : load_data(d, h, w);
}

mixseg::Dataset load_data(const DataOptions& d, int h, int w) {
  const mixseg::Fit fit = d.pad ? mixseg::Fit::pad : mixseg::Fit::resize;
  mixseg::DataSource src{d.data, d.images, d.masks, d.mask_threshold, fit, d.channels};
  mixseg::FolderLayout layout;
  const auto items = mixseg::list_items(src, &layout);
  // auto: a set decoded into more than half the available memory is
  // streamed (the rest is for the model, the loader and everything else).
  // Its size comes from every file's header, so only auto reads them first.
  std::string why_streamed = "--stream-data yes";
  bool stream = d.stream == "yes";
  if (d.stream == "auto") {
    const size_t bytes = mixseg::load_bytes(items, h, w, fit, d.channels), available = mixseg::available_memory_bytes();
    stream = available > 0 && bytes > available / 2;
    why_streamed = fmt::format("in memory they would take {} of the {} available", mixseg::memory_size_text(bytes),
                               mixseg::memory_size_text(available));
  }
  mixseg::Dataset ds = stream ? mixseg::stream_items(items, h, w, d.mask_threshold, fit, d.channels)
                              : mixseg::load_items(items, h, w, d.mask_threshold, fit, d.channels);
  const std::string where =
      stream ? fmt::format("streamed from the files ({})", why_streamed)
             : fmt::format("in memory ({})",
                           mixseg::memory_size_text(ds.images8.size() + 2 * ds.images16.size() + ds.mask_bits.size()));
  fmt::print("data: {} {} images from {} ({}), {} to {}x{} where needed, {}\n", ds.size(),
             d.channels == 3 ? "RGB" : "gray", d.data.empty() ? d.images + " + " + d.masks : d.data,
             mixseg::folder_layout_name(layout),
             d.pad ? "padded (centred, zeros)" : "resized (bilinear images, nearest masks)", ds.h, ds.w, where);
  return ds;
}

void add_device_options(CLI::App* c, DeviceOptions& d, bool with_backend) {
  c->add_option("--device", d.device, "cpu (the default), cuda (the GPU) or auto (the GPU when one is visible)");
  if (with_backend)
    c->add_option("--backend", d.backend,
                  "On the CPU: fast (oneDNN and own kernels, the default) or ref (reference kernels); cuda means "
                  "--device cuda");
}

DeviceChoice resolve_device(const DeviceOptions& d) {
  if (!d.backend.empty() && d.backend != "ref" && d.backend != "fast" && d.backend != "cuda")
    fail("--backend '{}' is not ref, fast or cuda", d.backend);
  if (!d.device.empty() && d.device != "cpu" && d.device != "cuda" && d.device != "auto")
    fail("--device '{}' is not cpu, cuda or auto", d.device);
  const bool cpu_backend = d.backend == "ref" || d.backend == "fast";
  std::string device = d.device;
  if (device.empty()) device = d.backend == "cuda" ? "cuda" : "cpu";
  if (device == "auto") device = d.backend == "cuda" || (d.backend.empty() && cuda_device_count() > 0) ? "cuda" : "cpu";
  if (device == "cuda" && cpu_backend) fail("--device cuda runs the cuda backend, not --backend {}", d.backend);
  if (device == "cpu" && d.backend == "cuda") fail("--backend cuda is the GPU's; it needs --device cuda or auto, not cpu");
  return {device, !d.backend.empty() ? d.backend : device == "cuda" ? "cuda" : "fast"};
}

std::vector<std::string> split_list(const std::string& s) {
  std::vector<std::string> out;
  for (size_t b = 0; b <= s.size();) {
    size_t e = s.find(',', b);
    if (e == std::string::npos) e = s.size();
    out.push_back(s.substr(b, e - b));
    b = e + 1;
  }
  return out;
}

std::vector<int> parse_positive_list(const std::string& s, const char* option) {
  std::vector<int> out;
  for (const auto& item : split_list(s)) {
    int v = 0;
    const auto r = std::from_chars(item.data(), item.data() + item.size(), v);
    if (r.ec != std::errc() || r.ptr != item.data() + item.size() || v <= 0)
      fail("{} '{}': '{}' is not a positive integer", option, s, item);
    out.push_back(v);
  }
  return out;
}

FollowedChoices follow_conv_algorithms(Backend& be, const std::string& file, const std::string& resume) {
  FollowedChoices f;
  if (!file.empty()) {
    f.path = file;
    f.record = load_choice_record(file);
  } else if (!resume.empty()) {
    const std::string beside = (std::filesystem::path(resume).parent_path() / kChoiceRecordFile).string();
    if (!std::filesystem::exists(beside)) return f;
    ChoiceRecord r = load_choice_record(beside);
    if (r.backend != be.name()) {
      fmt::print("convolution algorithms: timed ({} beside the checkpoint was made by the {} backend)\n", beside,
                 r.backend);
      return f;
    }
    f.path = beside;
    f.record = std::move(r);
  } else {
    return f;
  }
  const std::string warning = replay_choice_record(be, *f.record, f.path);
  fmt::print("convolution algorithms: as recorded in {} ({} passes)\n", f.path, f.record->choices.size());
  if (!warning.empty()) fmt::print("  note: {}\n", warning);
  return f;
}

void note_choices_off_record(const Backend& be, const FollowedChoices& f) {
  if (!f.record) return;
  const std::vector<std::string> off = choices_off_record(be, *f.record);
  if (off.empty()) return;
  fmt::print("note: {} convolution pass{} not in {} (timed, so this run may differ from the recorded one): {}{}\n",
             off.size(), off.size() == 1 ? " was" : "es were", f.path, off.front(), off.size() > 1 ? ", ..." : "");
}

void add_conv_algorithms_option(CLI::App* c, std::string& file) {
  c->add_option("--conv-algorithms", file,
                fmt::format("Follow the convolution algorithms recorded in this file (a run's {}) instead of timing "
                            "them: on the fast backend, the same machine and thread count, the run repeats the "
                            "recorded one bit for bit (on the GPU: with the same cuDNN algorithms)",
                            kChoiceRecordFile));
}

void add_conv_algorithm_files_options(CLI::App* c, ConvAlgorithmFiles& files) {
  add_conv_algorithms_option(c, files.follow);
  c->add_option("--save-conv-algorithms", files.save,
                "Write the convolution algorithms this run used to this file: a later run given it with "
                "--conv-algorithms repeats the results to the last digit (the fast and CUDA backends time them per "
                "shape, so the last digits may otherwise differ between runs)");
}

void refuse_conv_algorithm_files_for_int8(const ConvAlgorithmFiles& files, const std::string& model) {
  if (!files.follow.empty() || !files.save.empty())
    fail(
        "{} is an int8 model: the int8 engine's kernels are fixed, --conv-algorithms and --save-conv-algorithms do "
        "not apply",
        model);
}

void save_conv_algorithms_if_asked(const Backend& be, const ConvAlgorithmFiles& files) {
  if (files.save.empty()) return;
  save_choice_record(be, files.save);
  fmt::print("wrote {} (--conv-algorithms {} repeats this run)\n", files.save, files.save);
}

}  // namespace mixseg::cli
