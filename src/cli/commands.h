// The `mixseg` subcommands, one file each; shared option helpers.
#pragma once
#include <CLI/CLI.hpp>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "core/backend.h"
#include "data/folders.h"
#include "train/choice_record.h"

namespace mixseg::cli {

void add_train(CLI::App& app);
void add_eval(CLI::App& app);
void add_predict(CLI::App& app);
void add_info(CLI::App& app);
void add_synth(CLI::App& app);
void add_bench(CLI::App& app);
void add_quantize(CLI::App& app);
void add_export(CLI::App& app);
void add_infer(CLI::App& app);
void add_edgetpu_check(CLI::App& app);
void add_report(CLI::App& app);
void add_parity(CLI::App& app);
void add_advise(CLI::App& app);

// Parses "HxW" (e.g. 512x256); throws naming the text otherwise.
std::pair<int, int> parse_size(const std::string& s);
// Where the data comes from, as the train and eval commands take it.
struct DataOptions {
  std::string data, images, masks;
  int mask_threshold = -1;
  bool pad = false;  // pad smaller images instead of resizing
  int channels = 1;  // read images as gray (1) or RGB (3): the model's input channels
  std::string stream = "auto";  // --stream-data: yes, no, or auto (when the set would not fit in memory)
  bool any() const { return !data.empty() || !images.empty() || !masks.empty(); }
};
// Adds --data, --images, --masks, --mask-threshold, --pad and --stream-data to c.
void add_data_options(CLI::App* c, DataOptions& d);
// Loads the folder(s) at h x w, or streams them (--stream-data), and prints
// what was read (layout, count, memory or streamed).
mixseg::Dataset load_data(const DataOptions& d, int h, int w);
// For commands that take a folder or --synthetic N: throws unless exactly one
// is given (`what` names the set in the message, e.g. "the representative set: ").
void check_data_or_synthetic(const DataOptions& d, int synthetic, const char* what = "");
// The folder(s) at h x w, or N synthetic frames of that size from `seed`.
mixseg::Dataset load_data_or_synthetic(const DataOptions& d, int synthetic, uint64_t seed, int h, int w);

// Where a command runs: --device cpu|cuda|auto and, on the CPU, --backend
// ref|fast. `--backend cuda` alone still means the GPU (it did before
// --device existed).
struct DeviceOptions {
  std::string device;   // empty: not given (the CPU, unless --backend cuda)
  std::string backend;  // empty: the device's own (fast on the CPU, cuda on the GPU)
};
// Adds --device and, when with_backend, --backend to c.
void add_device_options(CLI::App* c, DeviceOptions& d, bool with_backend = true);
struct DeviceChoice {
  std::string device;   // "cpu" or "cuda"
  std::string backend;  // "ref", "fast" or "cuda"
};
// The device and backend that d asks for, with auto settled (the GPU when one
// is visible); throws naming the option for an unknown or conflicting value.
DeviceChoice resolve_device(const DeviceOptions& d);

// --conv-algorithms FILE for the commands that train or run a model: the backend follows
// the convolution algorithms recorded in FILE (mixseg::ChoiceRecord) instead
// of timing them, so the run repeats the recorded one (on the fast backend
// with the same machine and thread count, bit for bit). Without FILE, a --resume'd run follows the
// record beside its checkpoint (kChoiceRecordFile), if there is one made by
// this backend. Prints what it follows.
inline constexpr const char* kChoiceRecordFile = "conv_algorithms.json";
struct FollowedChoices {
  std::string path;  // empty: none followed
  std::optional<mixseg::ChoiceRecord> record;
};
FollowedChoices follow_conv_algorithms(mixseg::Backend& be, const std::string& file, const std::string& resume = "");
// After the run: names the passes that were timed anew (not in the record,
// or decided otherwise), where the run may differ from the recorded one.
void note_choices_off_record(const mixseg::Backend& be, const FollowedChoices& f);
// Adds --conv-algorithms to c.
void add_conv_algorithms_option(CLI::App* c, std::string& file);
// For the commands that run a model without training (eval, predict, infer):
// --save-conv-algorithms FILE writes the algorithms the run used, so that a
// later run given FILE with --conv-algorithms repeats its results exactly.
struct ConvAlgorithmFiles {
  std::string follow, save;  // empty: not given
};
void add_conv_algorithm_files_options(CLI::App* c, ConvAlgorithmFiles& files);
// Throws when either option is given for an int8 model (no timed choices there).
void refuse_conv_algorithm_files_for_int8(const ConvAlgorithmFiles& files, const std::string& model);
// After the run: writes files.save (if given) from be's choices, saying so.
void save_conv_algorithms_if_asked(const mixseg::Backend& be, const ConvAlgorithmFiles& files);

// Option checks whose errors say what was wanted ("--batch: 0 is not a
// positive number"; CLI11's PositiveNumber printed the range up to 1.8e308).
extern const CLI::Validator positive, non_negative;

// Splits "a,b,c" at commas (an empty string gives one empty item).
std::vector<std::string> split_list(const std::string& s);
// Parses "1,4,8"; throws naming the option and the bad item.
std::vector<int> parse_positive_list(const std::string& s, const char* option);

}  // namespace mixseg::cli
