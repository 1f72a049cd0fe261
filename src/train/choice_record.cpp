// Saving and following a backend's choices (see choice_record.h).
#include "train/choice_record.h"

#include <fmt/format.h>

#include <algorithm>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/file_util.h"
#include "core/threads.h"

namespace mixseg {

void save_choice_record(const Backend& be, const std::string& path) {
  const nlohmann::json j = {
      {"what",
       "the backend's algorithm per convolution pass and shape, as chosen by timing in this run; "
       "`--conv-algorithms FILE` makes a later run choose the same (same machine and thread count: "
       "the same bits)"},
      {"backend", std::string(be.name())},
      {"threads", max_threads()},
      {"choices", be.choices()}};
  write_atomically(path, [&](const std::string& tmp) {
    std::ofstream f(tmp);
    f << j.dump(2) << '\n';
    if (!f.flush()) fail("cannot write {}", tmp);
  });
}

ChoiceRecord load_choice_record(const std::string& path) {
  const std::string text = read_file_text(path);
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    fail("{}: not JSON ({})", path, e.what());
  }
  ChoiceRecord r;
  try {
    r.backend = j.at("backend").get<std::string>();
    r.threads = j.at("threads").get<int>();
    r.choices = j.at("choices").get<std::vector<std::string>>();
  } catch (const nlohmann::json::exception& e) {
    fail(
        "{}: not a record of algorithm choices (needs \"backend\", \"threads\" and a \"choices\" list of "
        "strings: {})",
        path, e.what());
  }
  return r;
}

std::string replay_choice_record(Backend& be, const ChoiceRecord& rec, const std::string& path) {
  if (rec.backend != be.name())
    fail("{}: these choices were made by the {} backend; this run uses the {} backend", path, rec.backend, be.name());
  try {
    be.replay_choices(rec.choices);
  } catch (const Error& e) {
    fail("{}: {}", path, e.what());
  }
  if (rec.threads == max_threads()) return "";
  return fmt::format(
      "{} was recorded with {} threads, this run has {}: the same algorithms, but sums split "
      "across threads may round differently in the last bits",
      path, rec.threads, max_threads());
}

std::vector<std::string> choices_off_record(const Backend& be, const ChoiceRecord& rec) {
  std::vector<std::string> off;
  for (const std::string& line : be.choices())
    if (std::find(rec.choices.begin(), rec.choices.end(), line) == rec.choices.end()) off.push_back(line);
  return off;
}

}  // namespace mixseg
