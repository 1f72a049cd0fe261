// The `mixseg` subcommands, one file each; shared option helpers.
#pragma once
#include <CLI/CLI.hpp>
#include <string>
#include <utility>

namespace mixseg::cli {

void add_train(CLI::App& app);
void add_eval(CLI::App& app);
void add_predict(CLI::App& app);
void add_info(CLI::App& app);
void add_synth(CLI::App& app);

// Parses "HxW" (e.g. 512x256); throws naming the text otherwise.
std::pair<int, int> parse_size(const std::string& s);

}  // namespace mixseg::cli
