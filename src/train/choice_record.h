// The backend's own choices (the convolution algorithm per pass and shape,
// chosen by timing like cudnn.benchmark) saved with a training run, and
// followed again by a later run so that it repeats the first bit for bit.
// Timing picks by speed, and speed on a shared machine varies, so two runs
// of the same command may pick differently for a shape where two algorithms
// are close; their rounding differs, and training amplifies that (val Dice
// 0.36-0.39 after two epochs of the same small run, docs/decisions.md).
// The file (JSON): {"backend": "fast", "threads": 2, "choices": [lines as
// Backend::choices() writes them]}.
#pragma once
#include <string>
#include <vector>

#include "core/backend.h"

namespace mixseg {

struct ChoiceRecord {
  std::string backend;  // the backend that made the choices
  int threads = 0;      // CPU threads of that run (oneDNN's sums, and banding, follow the thread count)
  std::vector<std::string> choices;
};

// Writes be's choices so far to path (replacing it atomically).
void save_choice_record(const Backend& be, const std::string& path);
// Reads a record; throws naming the file and what is wrong with it.
ChoiceRecord load_choice_record(const std::string& path);
// Has be follow rec (read from path): throws when another backend made it;
// returns a warning to print when the thread count differs (empty if none).
std::string replay_choice_record(Backend& be, const ChoiceRecord& rec, const std::string& path);
// be's choices that rec does not hold (passes it lacks, or decided otherwise):
// where a run that followed rec may differ from the recorded one.
std::vector<std::string> choices_off_record(const Backend& be, const ChoiceRecord& rec);

}  // namespace mixseg
