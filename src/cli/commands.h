// The `mixseg` subcommands, one file each; shared option helpers.
#pragma once
#include <CLI/CLI.hpp>
#include <string>
#include <utility>
#include <vector>

namespace mixseg::cli {

void add_train(CLI::App& app);
void add_eval(CLI::App& app);
void add_predict(CLI::App& app);
void add_info(CLI::App& app);
void add_synth(CLI::App& app);
void add_bench(CLI::App& app);

// Parses "HxW" (e.g. 512x256); throws naming the text otherwise.
std::pair<int, int> parse_size(const std::string& s);
// Splits "a,b,c" at commas (an empty string gives one empty item).
std::vector<std::string> split_list(const std::string& s);
// Parses "1,4,8"; throws naming the option and the bad item.
std::vector<int> parse_positive_list(const std::string& s, const char* option);

}  // namespace mixseg::cli
